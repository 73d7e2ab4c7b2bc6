// The one place that decides trust (architecture invariant 2). Inbound MX sessions and outbound
// deliveries both call this service; no protocol module checks certificates or domains itself.
//
// Decision rule (inferred from the data model of the ANS liste blanche,
// github.com/ansforge/MSS-liste-blanche): inbound, the peer's client certificate must chain to
// the configured anchors, be valid and unrevoked, and its subject DN must be listed for the
// envelope sender's domain; outbound, the recipient domain must be listed and the server
// certificate must chain to the anchors and carry a DN listed for that domain.
import { promises as dns } from 'node:dns';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { normalizeSerialHex, verifyChain, x509, type ChainFailure, type TrustAnchors } from '../pki/index.js';
import { normalizeDn } from '../pki/dn.js';
import type { TrustList } from './list.js';

export type TrustDecision =
  | { ok: true; dn: string }
  | {
      ok: false;
      /** SMTP reply code and RFC 3463 enhanced status code to use when refusing. */
      code: number;
      enhanced: string;
      message: string;
      /** Whether a later attempt may succeed (outbound: defer rather than bounce at once). */
      temporary: boolean;
    };

/**
 * Who a TLS client certificate designates, for strong authentication of mail clients (issue 5):
 * a health professional with a personal CPS-like certificate, or software acting for a structure
 * with an IGC-Santé organisation certificate (ANS MSSanté référentiel #2 for client software,
 * industriels.esante.gouv.fr: card (CPS) login is TLS client authentication with a personal
 * certificate; applications use an IGC-Santé organisation certificate). Which mailboxes the
 * identity opens is decided by core/, not here.
 */
export type ClientIdentity =
  | { ok: true; kind: 'personal'; rpps: string; subjectDn: string; serial: string }
  | { ok: true; kind: 'organisation'; structure: { idType: 'FINESS' | 'SIRET'; idValue: string }; subjectDn: string; serial: string }
  | {
      ok: false;
      reason: 'no-certificate' | 'untrusted' | 'expired' | 'revoked' | 'not-client-auth' | 'unrecognised-subject';
      detail: string;
    };

/** Certificate verdict shared by every trust decision (peers and clients alike). */
type CertificateCheck =
  | { ok: true; dn: string; leaf: x509.X509Certificate }
  | { ok: false; failure: ChainFailure; detail: string; refusal: Extract<TrustDecision, { ok: false }> };

export interface Route {
  host: string;
  port: number;
  /** How the route was found: a static route from the configuration, or a DNS MX record. */
  via: 'static' | 'mx' | 'a';
}

/** Extracts the DER certificates (leaf first) from Node's detailed peer certificate object. */
export function peerChainFromTls(cert: PeerCertificate | { raw?: Buffer; issuerCertificate?: any } | null | undefined): Uint8Array[] {
  const out: Uint8Array[] = [];
  const seen = new Set<string>();
  let c: any = cert;
  while (c && c.raw && Buffer.isBuffer(c.raw)) {
    const key = c.fingerprint256 ?? c.raw.toString('base64');
    if (seen.has(key)) break;
    seen.add(key);
    out.push(new Uint8Array(c.raw));
    if (!c.issuerCertificate || c.issuerCertificate === c) break;
    c = c.issuerCertificate;
  }
  return out;
}

/**
 * The certificate chain a TLS peer presented (leaf first, then each issuer Node knows of), as DER;
 * empty when the peer sent no certificate or the socket is not (yet) a TLS socket. Servers must
 * have asked for it (`requestCert: true`).
 */
export function peerCertificateChain(socket: TLSSocket): Uint8Array[] {
  if (!socket || typeof socket.getPeerCertificate !== 'function') return [];
  return peerChainFromTls(socket.getPeerCertificate(true));
}

// Subject conventions of IGC-Santé end-entity certificates (ANS, IGC-Santé certificate profiles;
// identifier types of the "Identification nationale" used across the ANS repositories, cf. the
// ANS Annuaire Santé FHIR IG, github.com/ansforge/IG-fhir-annuaire):
//  - personal (CPS / "personne physique") certificates carry the national PP identifier in the
//    subject serialNumber attribute (2.5.4.5): one type digit then the identifier, type 8 = RPPS
//    (11 digits), so "8" + RPPS. Type 0 (ADELI) professionals have no RPPS and are not accepted
//    here: MSSanté personal mailboxes are attached to an RPPS.
//  - organisation ("personne morale") and server certificates carry the structure identifier in
//    the OU: type 1 = FINESS (9 characters, Corsica "2A"/"2B"), type 3 = SIRET (14 digits).
const OID_SERIAL_NUMBER = '2.5.4.5';
const OID_OU = '2.5.4.11';
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const RPPS_NATIONAL_ID = /^8(\d{11})$/;
const FINESS_OU = /^1(\d{9}|2[AB]\d{7})$/;
const SIRET_OU = /^3(\d{14})$/;

function failureToReason(f: ChainFailure): Extract<ClientIdentity, { ok: false }>['reason'] {
  switch (f) {
    case 'no-certificate':
      return 'no-certificate';
    case 'expired':
    case 'not-yet-valid': // outside its validity period either way (RFC 5280 §6.1.3 (a)(2))
      return 'expired';
    case 'revoked':
      return 'revoked';
    case 'revocation-unknown': // the issuer's CRL is stale beyond the grace period (docs/trust-space.md)
      return 'untrusted';
    case 'wrong-usage': // the EKU does not allow clientAuth (RFC 5280 §4.2.1.12)
      return 'not-client-auth';
    case 'untrusted':
    case 'bad-signature':
    case 'not-a-ca':
    case 'malformed':
      return 'untrusted';
  }
}

/** Classifies a leaf that already passed chain validation for clientAuth. */
function classifyClientLeaf(leaf: x509.X509Certificate, subjectDn: string, serial: string): ClientIdentity {
  const refuse = (detail: string): ClientIdentity => ({ ok: false, reason: 'unrecognised-subject', detail: `certificate ${subjectDn}: ${detail}` });
  // A CA certificate never identifies a person or a structure (RFC 5280 §4.2.1.9).
  if (leaf.getExtension(x509.BasicConstraintsExtension)?.ca) return refuse('is a CA certificate, not an end-entity certificate');
  // IGC-Santé server certificates ("SERV SSL") also carry OU = "3" + SIRET and clientAuth (for
  // mutual TLS between operators), but they identify a host, not a structure's software: an
  // operator's MX certificate must not open the APP mailboxes of its own legal entity.
  const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension)?.usages.map(String) ?? [];
  if (eku.includes(OID_SERVER_AUTH)) return refuse('is a TLS server certificate (extendedKeyUsage serverAuth), not a personal or organisation certificate');
  const serials = leaf.subjectName.getField(OID_SERIAL_NUMBER);
  const ous = leaf.subjectName.getField(OID_OU);
  if (serials.length > 1) return refuse('has several subject serialNumber attributes');
  if (serials.length === 1) {
    const m = RPPS_NATIONAL_ID.exec(serials[0]!);
    if (!m) return refuse(`subject serialNumber "${serials[0]}" is not an RPPS national identifier ("8" followed by the 11-digit RPPS)`);
    return { ok: true, kind: 'personal', rpps: m[1]!, subjectDn, serial };
  }
  const structures: Array<{ idType: 'FINESS' | 'SIRET'; idValue: string }> = [];
  for (const ou of ous) {
    let m: RegExpExecArray | null;
    if ((m = FINESS_OU.exec(ou))) structures.push({ idType: 'FINESS', idValue: m[1]! });
    else if ((m = SIRET_OU.exec(ou))) structures.push({ idType: 'SIRET', idValue: m[1]! });
  }
  if (structures.length === 1) return { ok: true, kind: 'organisation', structure: structures[0]!, subjectDn, serial };
  if (structures.length > 1) return refuse('names several structures in its OU attributes');
  return refuse('has neither an RPPS serialNumber ("8" + RPPS) nor a structure OU ("1" + FINESS or "3" + SIRET)');
}

export interface TrustServiceOptions {
  anchors: () => TrustAnchors;
  list: () => TrustList;
  /** Static routes: domain → HOST:PORT, or several tried in order (config `routes`). */
  routes: Record<string, string | string[]>;
  logger?: Logger;
  resolveMx?: (domain: string) => Promise<{ exchange: string; priority: number }[]>;
  /**
   * Stale-CRL rule (docs/trust-space.md, "Revocation"): how long past its nextUpdate the newest CRL
   * of an issuer is still used; beyond, that issuer's certificates are refused. Undefined: no limit.
   */
  crlGraceMs?: number;
  /** Called on every refused certificate with the reason (metrics). */
  onCertificateRefused?: (failure: ChainFailure) => void;
}

export class TrustService {
  private listedDnsFor?: { list: TrustList; dns: Set<string> };

  constructor(private readonly opts: TrustServiceOptions) {}

  private listedAnywhere(dn: string): boolean {
    const list = this.opts.list();
    if (this.listedDnsFor?.list !== list) {
      this.listedDnsFor = { list, dns: new Set(list.entries.map((e) => safeNormalize(e.operatorDn)).filter((x): x is string => !!x)) };
    }
    const n = safeNormalize(dn);
    return !!n && this.listedDnsFor.dns.has(n);
  }

  /** Is `domain` part of the trust space (listed in the liste blanche)? */
  isTrustedDomain(domain: string): boolean {
    return this.opts.list().isListed(domain.toLowerCase());
  }

  private async checkCertificate(chain: Uint8Array[], usage: 'serverAuth' | 'clientAuth', who: string): Promise<CertificateCheck> {
    // Certificate problems are answered with temporary codes: a peer whose certificate is
    // missing, expired or not yet in our CRL view is usually misconfigured, and its mail should
    // wait in its queue until fixed rather than bounce at once (Postfix answers 421 4.7.1 here).
    if (chain.length === 0)
      return {
        ok: false,
        failure: 'no-certificate',
        detail: `${who} presented no certificate`,
        refusal: {
          ok: false,
          code: 454,
          enhanced: '4.7.0',
          message: `${who} presented no certificate: an IGC-Santé server certificate is required in the MSSanté trust space`,
          temporary: true,
        },
      };
    const r = await verifyChain({ chain, anchors: this.opts.anchors(), usage, ...(this.opts.crlGraceMs !== undefined ? { crlGraceMs: this.opts.crlGraceMs } : {}) });
    if (r.ok) return { ok: true, dn: r.subjectDn, leaf: r.leaf };
    this.opts.onCertificateRefused?.(r.failure);
    // A stale CRL refuses every certificate of its issuer: worth an operator's attention at once.
    if (r.failure === 'revocation-unknown') this.opts.logger?.error({ who, detail: r.detail }, 'certificate refused: its issuer\'s CRL is stale beyond the grace period');
    // RFC 3463 X.7.5: cryptographic failure (untrusted, expired, revoked, badly signed certificate).
    return {
      ok: false,
      failure: r.failure,
      detail: r.detail,
      refusal: { ok: false, code: 454, enhanced: '4.7.5', message: `${who} certificate refused (${r.failure}): ${r.detail}`, temporary: true },
    };
  }

  /**
   * Strong authentication of a mail client (IMAP / submission, SASL EXTERNAL over TLS client
   * authentication): whose certificate is `chain`? Chain, validity, CA constraints, CRL revocation
   * and the clientAuth extended key usage are checked exactly as for trust-space peers; then the
   * leaf's subject is read by the IGC-Santé conventions (see classifyClientLeaf). No trust-list
   * look-up: a client is not an operator.
   */
  async identifyClient(chain: Uint8Array[]): Promise<ClientIdentity> {
    const c = await this.checkCertificate(chain, 'clientAuth', 'client');
    if (!c.ok) {
      const detail = c.failure === 'no-certificate' ? 'the client presented no certificate' : c.detail;
      return { ok: false, reason: failureToReason(c.failure), detail };
    }
    return classifyClientLeaf(c.leaf, c.dn, normalizeSerialHex(c.leaf.serialNumber));
  }

  /**
   * Inbound: may the peer that presented `chain` send mail with envelope sender domain
   * `mailFromDomain`? For the null reverse-path (DSNs, RFC 5321 §4.5.5) there is no domain: the
   * certificate must then be listed for at least one domain (inference; no ANS source says).
   */
  async checkInboundPeer(chain: Uint8Array[], mailFromDomain: string | null): Promise<TrustDecision> {
    const checked = await this.checkCertificate(chain, 'clientAuth', 'client');
    if (!checked.ok) return checked.refusal;
    const cert = { ok: true as const, dn: checked.dn };
    if (mailFromDomain === null) {
      if (this.listedAnywhere(cert.dn)) return cert;
      return { ok: false, code: 550, enhanced: '5.7.1', message: `certificate ${cert.dn} is not listed for any domain of the MSSanté trust list`, temporary: false };
    }
    const list = this.opts.list();
    const domain = mailFromDomain.toLowerCase();
    if (!list.isListed(domain))
      return { ok: false, code: 550, enhanced: '5.7.1', message: `sender domain ${domain} is not in the MSSanté trust list (liste blanche)`, temporary: false };
    if (!list.isDnListedFor(domain, cert.dn))
      return {
        ok: false,
        code: 550,
        enhanced: '5.7.1',
        message: `certificate ${cert.dn} is not listed for sender domain ${domain} in the MSSanté trust list`,
        temporary: false,
      };
    return cert;
  }

  /** Outbound: is the server that presented `chain` a listed operator for `domain`? */
  async checkOutboundPeer(chain: Uint8Array[], domain: string): Promise<TrustDecision> {
    const checked = await this.checkCertificate(chain, 'serverAuth', `server for ${domain}`);
    if (!checked.ok) return checked.refusal;
    const cert = { ok: true as const, dn: checked.dn };
    if (!this.opts.list().isDnListedFor(domain.toLowerCase(), cert.dn))
      return {
        ok: false,
        code: 550,
        enhanced: '5.7.1',
        message: `server certificate ${cert.dn} is not listed for ${domain} in the MSSanté trust list`,
        temporary: true,
      };
    return cert;
  }

  /**
   * Where to deliver mail for `domain`, in the order to try: a static route (its hosts in the
   * configured order, like MX records of equal preference), else DNS MX (RFC 5321 §5.1), port 25.
   * The caller moves to the next route when a host cannot be reached, not when it replies.
   */
  async routeFor(domain: string): Promise<{ ok: true; routes: Route[] } | { ok: false; temporary: boolean; message: string }> {
    const d = domain.toLowerCase();
    if (!this.isTrustedDomain(d)) return { ok: false, temporary: true, message: `${d} is not in the MSSanté trust list (liste blanche)` };
    const hp = this.opts.routes[d];
    if (hp?.length) {
      const route = (h: string): Route => {
        const i = h.lastIndexOf(':');
        return { host: h.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(h.slice(i + 1)), via: 'static' };
      };
      return { ok: true, routes: (typeof hp === 'string' ? [hp] : hp).map(route) };
    }
    const resolveMx = this.opts.resolveMx ?? ((x: string) => dns.resolveMx(x));
    try {
      const mx = (await resolveMx(d)).sort((a, b) => a.priority - b.priority);
      // RFC 7505: a single "." exchange is a null MX, the domain accepts no mail.
      if (mx.length === 1 && (mx[0].exchange === '' || mx[0].exchange === '.'))
        return { ok: false, temporary: false, message: `${d} publishes a null MX (RFC 7505): it accepts no mail` };
      if (mx.length) return { ok: true, routes: mx.map((m) => ({ host: m.exchange, port: 25, via: 'mx' as const })) };
    } catch (e: any) {
      if (e?.code !== 'ENODATA' && e?.code !== 'ENOTFOUND') return { ok: false, temporary: true, message: `DNS MX lookup for ${d} failed: ${e?.code ?? e}` };
    }
    // RFC 5321 §5.1: no MX, the domain itself is the implicit MX.
    return { ok: true, routes: [{ host: d, port: 25, via: 'a' }] };
  }
}

function safeNormalize(dn: string): string | undefined {
  try {
    return normalizeDn(dn);
  } catch {
    return undefined;
  }
}
