// The one place that decides trust (architecture invariant 2). Inbound MX sessions and outbound
// deliveries both call this service; no protocol module checks certificates or domains itself.
//
// Decision rule (ANS data model, ../shared/docs/mssante.md §3): inbound, the peer's client
// certificate must chain to the configured anchors, be valid and unrevoked, and its subject DN
// must be listed for the envelope sender's domain; outbound, the recipient domain must be listed
// and the server certificate must chain to the anchors and carry a DN listed for that domain.
import { promises as dns } from 'node:dns';
import type { PeerCertificate } from 'node:tls';
import type { Logger } from 'pino';
import { verifyChain, type TrustAnchors } from '../pki/index.js';
import { normalizeDn } from './dn.js';
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

export interface TrustServiceOptions {
  anchors: () => TrustAnchors;
  list: () => TrustList;
  routes: Record<string, string>;
  logger?: Logger;
  resolveMx?: (domain: string) => Promise<{ exchange: string; priority: number }[]>;
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

  private async checkCertificate(chain: Uint8Array[], usage: 'serverAuth' | 'clientAuth', who: string): Promise<TrustDecision> {
    // Certificate problems are answered with temporary codes: a peer whose certificate is
    // missing, expired or not yet in our CRL view is usually misconfigured, and its mail should
    // wait in its queue until fixed rather than bounce at once (Postfix answers 421 4.7.1 here).
    if (chain.length === 0)
      return {
        ok: false,
        code: 454,
        enhanced: '4.7.0',
        message: `${who} presented no certificate: an IGC-Santé server certificate is required in the MSSanté trust space`,
        temporary: true,
      };
    const r = await verifyChain({ chain, anchors: this.opts.anchors(), usage });
    if (r.ok) return { ok: true, dn: r.subjectDn };
    // RFC 3463 X.7.5: cryptographic failure (untrusted, expired, revoked, badly signed certificate).
    return { ok: false, code: 454, enhanced: '4.7.5', message: `${who} certificate refused (${r.failure}): ${r.detail}`, temporary: true };
  }

  /**
   * Inbound: may the peer that presented `chain` send mail with envelope sender domain
   * `mailFromDomain`? For the null reverse-path (DSNs, RFC 5321 §4.5.5) there is no domain: the
   * certificate must then be listed for at least one domain (inference; no ANS source says).
   */
  async checkInboundPeer(chain: Uint8Array[], mailFromDomain: string | null): Promise<TrustDecision> {
    const cert = await this.checkCertificate(chain, 'clientAuth', 'client');
    if (!cert.ok) return cert;
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
    const cert = await this.checkCertificate(chain, 'serverAuth', `server for ${domain}`);
    if (!cert.ok) return cert;
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

  /** Where to deliver mail for `domain`: a static route, else DNS MX (RFC 5321 §5.1), port 25. */
  async routeFor(domain: string): Promise<{ ok: true; routes: Route[] } | { ok: false; temporary: boolean; message: string }> {
    const d = domain.toLowerCase();
    if (!this.isTrustedDomain(d)) return { ok: false, temporary: true, message: `${d} is not in the MSSanté trust list (liste blanche)` };
    const hp = this.opts.routes[d];
    if (hp) {
      const i = hp.lastIndexOf(':');
      return { ok: true, routes: [{ host: hp.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(hp.slice(i + 1)), via: 'static' }] };
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
