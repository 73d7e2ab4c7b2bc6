// Autoconfiguration for mail software (src/http/autoconfig.ts, docs/lps.md): Thunderbird's
// config-v1.1.xml on both URLs, Microsoft Autodiscover POX, over real HTTP and HTTPS listeners;
// every answer parsed with fast-xml-parser and checked against the configuration; and
// `caducee dns records` (RFC 6186 SRV + MX) from a configuration file.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import { XMLParser } from 'fast-xml-parser';
import { registerDnsCommands } from '../src/cli/dns.js';
import { parseConfig } from '../src/config/index.js';
import { startHttpServer, type HttpServer } from '../src/http/app.js';
import { clientSettings } from '../src/http/autoconfig.js';
import { TestPki } from '../src/pki/test-pki.js';
import { tempDir, testLogger } from './helpers.js';

const RAW = {
  operator: { name: 'Caducée Santé', hostname: 'mail.caducee.test', domains: ['caducee.mssante.fr', 'ch-test.mssante.fr'] },
  clients: { imapHost: 'imap.caducee.test', imapsPort: 993, imapPort: 143, submissionsPort: 465, submissionPort: 587, shortName: 'Caducée' },
  auth: { oidc: { preset: 'psc', clientId: 'caducee-test' } },
  http: { publicUrl: 'https://webmail.caducee.test' },
};

const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@_', parseTagValue: false, isArray: (n) => ['incomingServer', 'outgoingServer', 'authentication', 'domain', 'Protocol'].includes(n) });

function get(base: string, p: string, ca?: string, method = 'GET', body?: string): Promise<{ status: number; type: string; body: string }> {
  const u = new URL(p, base);
  const lib = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(u, { method, ...(ca ? { ca } : {}), headers: body ? { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(body) } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const AUTODISCOVER_REQUEST = (email: string) => `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request><EMailAddress>${email}</EMailAddress>
  <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request>
</Autodiscover>`;

describe('autoconfiguration over HTTP and HTTPS', () => {
  const tmp = tempDir('caducee-autoconfig-');
  let plain: HttpServer;
  let tls: HttpServer;
  let ca: string;
  let bases: [string, string | undefined][];
  before(async () => {
    const settings = clientSettings(parseConfig(RAW));
    const pki = await TestPki.create(path.join(tmp.dir, 'pki'));
    const leaf = await pki.issueServer({ host: 'localhost', siret: '12345678900011', org: 'Caducée', dept: 'Paris (75)', altNames: ['127.0.0.1'] });
    ca = `${pki.rootCert.toString('pem')}\n${pki.intermediateCert.toString('pem')}\n`;
    plain = await startHttpServer({ host: '127.0.0.1', port: 0, logger: testLogger(), autoconfig: settings });
    tls = await startHttpServer({ host: '127.0.0.1', port: 0, logger: testLogger(), autoconfig: settings, https: { key: leaf.keyPem, cert: leaf.chainPem, ca } });
    bases = [
      [`http://127.0.0.1:${plain.port}`, undefined],
      [`https://127.0.0.1:${tls.port}`, ca],
    ];
  });
  after(async () => {
    await plain?.close();
    await tls?.close();
    tmp.cleanup();
  });

  it('Thunderbird config-v1.1.xml: IMAP 993 SSL + 143 STARTTLS, SMTP 465 SSL + 587 STARTTLS, OAuth2 (PSC) and password', async () => {
    for (const [base, c] of bases)
      for (const p of ['/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=dr.martin%40ch-test.mssante.fr', '/mail/config-v1.1.xml?emailaddress=dr.martin@ch-test.mssante.fr', '/mail/config-v1.1.xml']) {
        const r = await get(base, p, c);
        assert.equal(r.status, 200, `${base}${p}`);
        assert.match(r.type, /^application\/xml/);
        const doc = parser.parse(r.body, true);
        const cc = doc.clientConfig;
        assert.equal(cc['@_version'], '1.1');
        const ep = cc.emailProvider;
        assert.equal(ep['@_id'], p.includes('emailaddress') ? 'ch-test.mssante.fr' : 'caducee.mssante.fr');
        assert.deepEqual(ep.domain, RAW.operator.domains);
        assert.equal(ep.displayName, 'Caducée Santé');
        assert.equal(ep.displayShortName, 'Caducée');
        const srv = (s: any) => [s['@_type'], s.hostname, s.port, s.socketType, s.username, s.authentication.join(',')];
        assert.deepEqual(ep.incomingServer.map(srv), [
          ['imap', 'imap.caducee.test', '993', 'SSL', '%EMAILADDRESS%', 'OAuth2,password-cleartext'],
          ['imap', 'imap.caducee.test', '143', 'STARTTLS', '%EMAILADDRESS%', 'OAuth2,password-cleartext'],
        ]);
        assert.deepEqual(ep.outgoingServer.map(srv), [
          ['smtp', 'mail.caducee.test', '465', 'SSL', '%EMAILADDRESS%', 'OAuth2,password-cleartext'],
          ['smtp', 'mail.caducee.test', '587', 'STARTTLS', '%EMAILADDRESS%', 'OAuth2,password-cleartext'],
        ]);
        assert.equal(cc.oAuth2.issuer, 'https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet');
        assert.match(cc.oAuth2.scope, /openid/);
      }
  });

  it('an address of another operator: 404 problem in French', async () => {
    const r = await get(bases[0]![0], '/mail/config-v1.1.xml?emailaddress=x@autre.mssante.fr');
    assert.equal(r.status, 404);
    assert.match(JSON.parse(r.body).detail, /n’est pas une adresse de cette messagerie/);
  });

  it('Autodiscover POX: IMAP and SMTP with implicit TLS first, login = address', async () => {
    for (const [base, c] of bases)
      for (const p of ['/autodiscover/autodiscover.xml', '/Autodiscover/Autodiscover.xml']) {
        const r = await get(base, p, c, 'POST', AUTODISCOVER_REQUEST('dr.martin@caducee.mssante.fr'));
        assert.equal(r.status, 200, r.body);
        assert.match(r.type, /^text\/xml/);
        const doc = parser.parse(r.body, true);
        assert.equal(doc.Autodiscover['@_xmlns'], 'http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006');
        const resp = doc.Autodiscover.Response;
        assert.equal(resp['@_xmlns'], 'http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a');
        assert.equal(resp.Account.AccountType, 'email');
        assert.equal(resp.Account.Action, 'settings');
        const prot = resp.Account.Protocol.map((x: any) => [x.Type, x.Server, x.Port, x.SSL ?? x.Encryption, x.LoginName, x.AuthRequired]);
        assert.deepEqual(prot, [
          ['IMAP', 'imap.caducee.test', '993', 'on', 'dr.martin@caducee.mssante.fr', 'on'],
          ['SMTP', 'mail.caducee.test', '465', 'SSL', 'dr.martin@caducee.mssante.fr', 'on'],
          ['IMAP', 'imap.caducee.test', '143', 'TLS', 'dr.martin@caducee.mssante.fr', 'on'],
          ['SMTP', 'mail.caducee.test', '587', 'TLS', 'dr.martin@caducee.mssante.fr', 'on'],
        ]);
      }
  });

  it('Autodiscover: bad requests get the error response (600), entities refused, other domains 500', async () => {
    const base = bases[0]![0];
    for (const body of ['<Autodiscover><Request/></Autodiscover>', '<Autodiscover', `<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]>${AUTODISCOVER_REQUEST('a@caducee.mssante.fr').replace(/<\?xml[^>]*\?>/, '')}`]) {
      const r = await get(base, '/autodiscover/autodiscover.xml', undefined, 'POST', body);
      assert.equal(r.status, 400, body);
      const e = parser.parse(r.body, true).Autodiscover.Response.Error;
      assert.equal(e.ErrorCode, '600');
      assert.match(e.Message, /^Invalid Request: /);
    }
    const other = parser.parse((await get(base, '/autodiscover/autodiscover.xml', undefined, 'POST', AUTODISCOVER_REQUEST('x@autre.mssante.fr'))).body, true);
    assert.equal(other.Autodiscover.Response.Error.ErrorCode, '500');
  });
});

describe('caducee dns records', () => {
  const run = async (args: string[]) => {
    const out = { stdout: '', stderr: '', code: -1 };
    const program = new Command().name('caducee').exitOverride();
    registerDnsCommands(program, { stdout: (t) => void (out.stdout += t), stderr: (t) => void (out.stderr += t), setExitCode: (c) => void (out.code = c) });
    await program.parseAsync(['dns', 'records', ...args], { from: 'user' });
    return out;
  };
  it('prints RFC 6186 SRV records (implicit TLS preferred) and the MX for every domain', async () => {
    const tmp = tempDir('caducee-dns-');
    try {
      const file = path.join(tmp.dir, 'caducee.json');
      writeFileSync(file, JSON.stringify({ ...RAW, auth: undefined }));
      const r = await run(['--config', file, '--ttl', '300']);
      assert.equal(r.code, 0, r.stderr);
      const rows = r.stdout.split('\n').filter((l) => l && !l.startsWith(';')).map((l) => l.split('\t'));
      for (const d of RAW.operator.domains) {
        const of = (name: string) => rows.filter((x) => x[0] === name).map((x) => [x[1], x[2], x[3], x[4]]);
        assert.deepEqual(of(`${d}.`), [['300', 'IN', 'MX', '10 mail.caducee.test.']]);
        assert.deepEqual(of(`_imaps._tcp.${d}.`), [['300', 'IN', 'SRV', '0 1 993 imap.caducee.test.']]);
        assert.deepEqual(of(`_imap._tcp.${d}.`), [['300', 'IN', 'SRV', '10 1 143 imap.caducee.test.']]);
        assert.deepEqual(of(`_submissions._tcp.${d}.`), [['300', 'IN', 'SRV', '0 1 465 mail.caducee.test.']]);
        assert.deepEqual(of(`_submission._tcp.${d}.`), [['300', 'IN', 'SRV', '10 1 587 mail.caducee.test.']]);
        assert.deepEqual(of(`_pop3s._tcp.${d}.`), [['300', 'IN', 'SRV', '0 0 0 .']]);
        assert.deepEqual(of(`autoconfig.${d}.`), [['300', 'IN', 'CNAME', 'webmail.caducee.test.']]);
        assert.deepEqual(of(`_autodiscover._tcp.${d}.`), [['300', 'IN', 'SRV', '0 1 443 webmail.caducee.test.']]);
      }
      const bad = await run(['--config', path.join(tmp.dir, 'absent.yaml')]);
      assert.equal(bad.code, 2);
      assert.equal(bad.stderr.trim().split('\n').length, 1);
      assert.match(bad.stderr, /^caducee dns records: /);
    } finally {
      tmp.cleanup();
    }
  });
});
