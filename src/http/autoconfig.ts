// Autoconfiguration for mail software (docs/lps.md; ANS DST TM3.3C "AutoConfig/AutoDiscover",
// mssante.md §4): what IMAP and submission servers to use, with implicit TLS preferred
// (RFC 8314 §3.3: 993 and 465 first, STARTTLS 143/587 as alternatives).
//  - Thunderbird: GET /.well-known/autoconfig/mail/config-v1.1.xml and /mail/config-v1.1.xml
//    (?emailaddress=…), the "clientConfig 1.1" format of the Mozilla ISPDB;
//  - Microsoft Autodiscover "POX": POST /autodiscover/autodiscover.xml (also /Autodiscover/…),
//    request parsed with fast-xml-parser, response schema outlook/responseschema/2006a;
//  - DNS: an RFC 6186 zone snippet (SRV _imaps/_imap/_submissions/_submission, RFC 8314 §5.1
//    priorities) plus MX, printed by `caducee dns records`.
// They carry no secret and are served on the HTTP and the HTTPS listener alike.
import type { FastifyInstance } from 'fastify';
import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import { resolveOidcSettings } from '../auth/oidc.js';
import type { Config } from '../config/index.js';
import { HttpProblem } from './problem.js';

export interface ClientSettings {
  /** Operator name (displayName) and short name. */
  name: string;
  shortName: string;
  /** Mail domains hosted. */
  domains: string[];
  imap: { host: string; imaps: number; imap: number };
  smtp: { host: string; submissions: number; submission: number };
  /** Pro Santé Connect (or another OpenID provider) for SASL XOAUTH2/OAUTHBEARER, when configured. */
  oauth?: { issuer: string; scopes: string[] };
  /** The MX host name (operator.hostname). */
  mx: string;
  /** The host serving the autoconfiguration over HTTPS: http.publicUrl's host, else operator.hostname. */
  web: string;
}

/**
 * The settings mail software is given, from the operator's configuration (`clients`, then
 * `operator` and `listen`). `bound`: the ports the listeners really got, used where `listen.*`
 * is 0 (any free port: demo, tests) and no `clients.*` port is set.
 */
export function clientSettings(config: Config, bound?: { imap: number; imaps: number; submission: number; submissions: number }): ClientSettings {
  const c = config.clients;
  let oauth: ClientSettings['oauth'];
  if (config.auth.oidc) {
    const o = resolveOidcSettings(config.auth.oidc, config.http.publicUrl);
    oauth = { issuer: o.issuer, scopes: o.scopes };
  }
  return {
    name: config.operator.name,
    shortName: c.shortName ?? config.operator.name,
    domains: config.operator.domains,
    imap: { host: c.imapHost ?? config.operator.hostname, imaps: c.imapsPort ?? (config.listen.imaps || bound?.imaps || 0), imap: c.imapPort ?? (config.listen.imap || bound?.imap || 0) },
    smtp: {
      host: c.smtpHost ?? config.operator.hostname,
      submissions: c.submissionsPort ?? (config.listen.submissions || bound?.submissions || 0),
      submission: c.submissionPort ?? (config.listen.submission || bound?.submission || 0),
    },
    ...(oauth ? { oauth } : {}),
    mx: config.operator.hostname,
    web: config.http.publicUrl ? new URL(config.http.publicUrl).hostname : config.operator.hostname,
  };
}

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', format: true, processEntities: true });
const xmlDecl = { '?xml': { '@_version': '1.0', '@_encoding': 'UTF-8' } };

/** Thunderbird's clientConfig 1.1 (Mozilla ISPDB format, wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat). */
export function thunderbirdConfig(s: ClientSettings, emailDomain?: string): string {
  // Login is the full address; password means an application password (docs/authentication.md),
  // OAuth2 a Pro Santé Connect access token over SASL XOAUTH2.
  const auth = [...(s.oauth ? ['OAuth2'] : []), 'password-cleartext'];
  const server = (type: string, host: string, port: number, socketType: 'SSL' | 'STARTTLS') => ({ '@_type': type, hostname: host, port, socketType, authentication: auth, username: '%EMAILADDRESS%' });
  return builder.build({
    ...xmlDecl,
    clientConfig: {
      '@_version': '1.1',
      emailProvider: {
        '@_id': emailDomain ?? s.domains[0] ?? s.mx,
        domain: s.domains.length ? s.domains : [s.mx],
        displayName: s.name,
        displayShortName: s.shortName,
        incomingServer: [server('imap', s.imap.host, s.imap.imaps, 'SSL'), server('imap', s.imap.host, s.imap.imap, 'STARTTLS')],
        outgoingServer: [server('smtp', s.smtp.host, s.smtp.submissions, 'SSL'), server('smtp', s.smtp.host, s.smtp.submission, 'STARTTLS')],
      },
      ...(s.oauth ? { oAuth2: { issuer: s.oauth.issuer, scope: s.oauth.scopes.join(' ') } } : {}),
    },
  }) as string;
}

const AUTODISCOVER_RESPONSE = 'http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006';
const OUTLOOK_RESPONSE = 'http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a';

const requestParser = new XMLParser({ removeNSPrefix: true, ignoreAttributes: true, processEntities: false, parseTagValue: false, trimValues: true });

/** The e-mail address of an Autodiscover POX request, or an HttpProblem-worthy reason. */
export function parseAutodiscoverRequest(body: string): { email: string } | { error: string } {
  if (/<!DOCTYPE|<!ENTITY/i.test(body)) return { error: 'DOCTYPE or entity declarations are not accepted' };
  let doc: any;
  try {
    doc = requestParser.parse(body, true);
  } catch (e) {
    return { error: `not well-formed XML: ${(e as Error).message.split('\n')[0]}` };
  }
  const email = doc?.Autodiscover?.Request?.EMailAddress;
  if (typeof email !== 'string' || !/^[^@\s<>]+@[^@\s<>]+$/.test(email)) return { error: 'no Autodiscover/Request/EMailAddress' };
  return { email };
}

/** Outlook POX response (MS-OXDSCLI §2.2.4): IMAP and SMTP, implicit TLS first. */
export function autodiscoverResponse(s: ClientSettings, email: string): string {
  const imap = (port: number, ssl: boolean) => ({ Type: 'IMAP', Server: s.imap.host, Port: port, DomainRequired: 'off', LoginName: email, SPA: 'off', ...(ssl ? { SSL: 'on' } : { Encryption: 'TLS' }), AuthRequired: 'on' });
  const smtp = (port: number, ssl: boolean) => ({ Type: 'SMTP', Server: s.smtp.host, Port: port, DomainRequired: 'off', LoginName: email, SPA: 'off', Encryption: ssl ? 'SSL' : 'TLS', AuthRequired: 'on', UsePOPAuth: 'off', SMTPLast: 'off' });
  return builder.build({
    ...xmlDecl,
    Autodiscover: {
      '@_xmlns': AUTODISCOVER_RESPONSE,
      Response: {
        '@_xmlns': OUTLOOK_RESPONSE,
        User: { DisplayName: email, AutoDiscoverSMTPAddress: email },
        Account: { AccountType: 'email', Action: 'settings', Protocol: [imap(s.imap.imaps, true), smtp(s.smtp.submissions, true), imap(s.imap.imap, false), smtp(s.smtp.submission, false)] },
      },
    },
  }) as string;
}

/** MS-OXDSCLI §2.2.4.2.1: the error answer to a request that cannot be understood. */
export function autodiscoverError(code: 500 | 600, message: string): string {
  return builder.build({
    ...xmlDecl,
    Autodiscover: {
      '@_xmlns': AUTODISCOVER_RESPONSE,
      Response: { Error: { '@_Time': new Date().toISOString().slice(11, 19), '@_Id': '1', ErrorCode: code, Message: message, DebugData: '' } },
    },
  }) as string;
}

/** RFC 6186 §3 (SRV for IMAP and submission) with RFC 8314 §5.1 (implicit TLS preferred: lower priority value), and MX (RFC 5321 §5.1). */
export function dnsRecords(s: ClientSettings, ttl = 3600): string {
  const fqdn = (h: string) => (h.endsWith('.') ? h : `${h}.`);
  const lines: string[] = [`; ${s.name}: DNS records for mail software (RFC 6186, RFC 8314) and the MX`, `; generated by caducee dns records`];
  const domains = s.domains.length ? s.domains : [s.mx];
  for (const d of domains) {
    const z = fqdn(d);
    lines.push('', `; ${d}`);
    lines.push(`${z}\t${ttl}\tIN\tMX\t10 ${fqdn(s.mx)}`);
    lines.push(`_imaps._tcp.${z}\t${ttl}\tIN\tSRV\t0 1 ${s.imap.imaps} ${fqdn(s.imap.host)}`);
    lines.push(`_imap._tcp.${z}\t${ttl}\tIN\tSRV\t10 1 ${s.imap.imap} ${fqdn(s.imap.host)}`);
    lines.push(`_submissions._tcp.${z}\t${ttl}\tIN\tSRV\t0 1 ${s.smtp.submissions} ${fqdn(s.smtp.host)}`);
    lines.push(`_submission._tcp.${z}\t${ttl}\tIN\tSRV\t10 1 ${s.smtp.submission} ${fqdn(s.smtp.host)}`);
    // Where Thunderbird (autoconfig.<domain>) and Outlook (autodiscover.<domain>, or the SRV
    // record of MS-OXDSCLI §3.1.5.2) look for the documents served by this operator's HTTPS.
    lines.push(`autoconfig.${z}\t${ttl}\tIN\tCNAME\t${fqdn(s.web)}`);
    lines.push(`autodiscover.${z}\t${ttl}\tIN\tCNAME\t${fqdn(s.web)}`);
    lines.push(`_autodiscover._tcp.${z}\t${ttl}\tIN\tSRV\t0 1 443 ${fqdn(s.web)}`);
    // RFC 6186 §3.4: "." target = service not offered; POP3 is not offered by Caducée.
    lines.push(`_pop3s._tcp.${z}\t${ttl}\tIN\tSRV\t0 0 0 .`);
    lines.push(`_pop3._tcp.${z}\t${ttl}\tIN\tSRV\t0 0 0 .`);
  }
  return `${lines.join('\n')}\n`;
}

/** The autoconfiguration routes (both listeners); `settings` is read at each request (ports known once every listener is up). */
export function registerAutoconfigRoutes(app: FastifyInstance, settings: ClientSettings | (() => ClientSettings)): void {
  const current = typeof settings === 'function' ? settings : () => settings;
  const hosted = (s: ClientSettings, email: string | undefined) => email === undefined || s.domains.length === 0 || s.domains.some((d) => email.toLowerCase().endsWith(`@${d.toLowerCase()}`));
  const thunderbird = async (req: { query: unknown }, reply: any) => {
    const s = current();
    const email = (req.query as Record<string, unknown>)?.emailaddress;
    if (email !== undefined && typeof email !== 'string') throw new HttpProblem(400, 'Bad Request', 'Le paramètre emailaddress doit être donné une seule fois.');
    if (!hosted(s, email)) throw new HttpProblem(404, 'Not Found', `${email} n’est pas une adresse de cette messagerie.`);
    reply.header('cache-control', 'public, max-age=3600');
    return reply.type('application/xml; charset=utf-8').send(thunderbirdConfig(s, email?.split('@')[1]?.toLowerCase()));
  };
  app.get('/.well-known/autoconfig/mail/config-v1.1.xml', thunderbird);
  app.get('/mail/config-v1.1.xml', thunderbird);

  app.register(async (scope) => {
    // Outlook posts text/xml; the body is at most a few hundred bytes.
    scope.addContentTypeParser(['text/xml', 'application/xml'], { parseAs: 'string', bodyLimit: 16 * 1024 }, (_req, body, done) => done(null, body));
    const autodiscover = async (req: { body: unknown }, reply: any) => {
      const s = current();
      reply.type('text/xml; charset=utf-8');
      const r = typeof req.body === 'string' ? parseAutodiscoverRequest(req.body) : { error: 'the request must be text/xml' };
      if ('error' in r) return reply.code(400).send(autodiscoverError(600, `Invalid Request: ${r.error}`));
      if (!hosted(s, r.email)) return reply.code(200).send(autodiscoverError(500, `${r.email} n’est pas une adresse de cette messagerie.`));
      return reply.send(autodiscoverResponse(s, r.email));
    };
    scope.post('/autodiscover/autodiscover.xml', autodiscover);
    scope.post('/Autodiscover/Autodiscover.xml', autodiscover);
  });
}
