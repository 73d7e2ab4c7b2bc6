// Where revocation lists come from at run time, and how they stay fresh (docs/trust-space.md,
// "Revocation").
//
// The trust anchors of the configuration (tls.ca, and the CRL files of tls.crl) are the base.
// On a schedule, the CRLs published at the distribution points (RFC 5280 §4.2.1.13) named by the
// CA bundle's certificates and by our own certificate chain — IGC-Santé certificates carry them
// (../shared/docs/mssante.md: "Revocation is published as CRLs") — plus any configured URL, are
// downloaded in the background, checked, and swapped in whole: verifyChain then sees a new
// TrustAnchors object (the base certificates, the base CRLs and the fetched ones); a handshake in
// progress keeps the object it started with, and no handshake ever waits for a download.
//
// A downloaded CRL is used only when (RFC 5280 §6.3.3): it is a DER (or PEM) CRL this reader can
// honour (pki/crl.ts); its issuer is a CA of the bundle (name, and key identifier when both say)
// whose keyUsage allows cRLSign (§6.3.3 (f)) and whose key verifies its signature (§6.3.3 (g));
// and it is not older than the CRL already held for that URL (lower cRLNumber, §5.2.3, or earlier
// thisUpdate): over plain HTTP, a replayed old CRL must not undo a revocation. Otherwise the
// previous CRL stays in force, and the failure is logged and counted. Staleness (nextUpdate
// passed) is judged by verifyChain with the grace period trust/ gives it (TrustService).
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { boundedFetch } from './bounded-fetch.js';
import { CrlFormatError, distributionPointUrls, RevocationList, x509, type TrustAnchors } from '../pki/index.js';
import { dnToString, nameKey, subjectDnOf } from '../pki/names.js';

export interface CrlRefreshOptions {
  /** The anchors of the configuration (CA bundle + CRL files); read at every use (SIGHUP reloads it). */
  base: () => TrustAnchors;
  /** Certificates whose distribution points are followed too: our own leaf and its chain. */
  ownCertificates?: x509.X509Certificate[];
  /** Follow the distribution points of the base certificates and ownCertificates (default true). */
  distributionPoints?: boolean;
  /** More CRL URLs (http:// or https://). */
  urls?: string[];
  intervalMs: number;
  timeoutMs: number;
  maxBytes: number;
  logger: Logger;
}

export interface CrlSourceStatus {
  url: string;
  /** RFC 4514 issuer of the CRL in force from this URL. */
  issuer?: string;
  thisUpdate?: Date;
  nextUpdate?: Date;
  crlNumber?: string;
  entries?: number;
  /** When the CRL in force was fetched. */
  fetchedAt?: Date;
  lastAttemptAt?: Date;
  /** The last attempt's error, cleared by a good one. */
  lastError?: string;
}

export interface CrlRefreshRound {
  updated: number;
  unchanged: number;
  failed: number;
}

export type CrlRefreshEvents = {
  /** A new CRL from `url` is in force. */
  updated: [url: string, crl: RevocationList];
  /** A download or check failed; the previous CRL from `url` (if any) stays in force. */
  'refresh-failed': [url: string, error: string];
  /** A refresh of every URL has finished. */
  refreshed: [round: CrlRefreshRound];
};

interface Held {
  crl: RevocationList;
  issuerDn: string;
  fetchedAt: Date;
}

export class CrlRefresher extends EventEmitter<CrlRefreshEvents> {
  private readonly held = new Map<string, Held>();
  private readonly attempts = new Map<string, { at: Date; error?: string }>();
  private combined?: { base: TrustAnchors; version: number; anchors: TrustAnchors };
  private version = 0;
  private timer?: NodeJS.Timeout;
  private inflight?: Promise<CrlRefreshRound>;

  constructor(private readonly opts: CrlRefreshOptions) {
    super();
    for (const u of opts.urls ?? []) {
      if (!isHttpUrl(u)) throw new TypeError(`CRL URL ${u}: expected an http:// or https:// URL`);
    }
  }

  /**
   * The trust anchors in force: the base certificates, the base CRLs and every fetched CRL. The same
   * object until the base or a fetched CRL changes (verifyChain indexes it once).
   */
  anchors(): TrustAnchors {
    const base = this.opts.base();
    const c = this.combined;
    if (c && c.base === base && c.version === this.version) return c.anchors;
    const anchors: TrustAnchors = { certs: base.certs, crls: [...base.crls, ...[...this.held.values()].map((h) => h.crl)] };
    this.combined = { base, version: this.version, anchors };
    return anchors;
  }

  /** The URLs refreshed: configured ones, then distribution points (http/https only), without duplicates. */
  urls(): string[] {
    const out = new Set(this.opts.urls ?? []);
    if (this.opts.distributionPoints !== false) {
      for (const cert of [...this.opts.base().certs, ...(this.opts.ownCertificates ?? [])]) {
        for (const u of distributionPointUrls(cert)) if (isHttpUrl(u)) out.add(u); // ldap:// and others: not followed
      }
    }
    return [...out];
  }

  status(): CrlSourceStatus[] {
    return this.urls().map((url) => {
      const h = this.held.get(url);
      const a = this.attempts.get(url);
      return {
        url,
        ...(h
          ? {
              issuer: h.issuerDn,
              thisUpdate: h.crl.thisUpdate,
              ...(h.crl.nextUpdate ? { nextUpdate: h.crl.nextUpdate } : {}),
              ...(h.crl.crlNumber !== undefined ? { crlNumber: h.crl.crlNumber.toString() } : {}),
              entries: h.crl.size,
              fetchedAt: h.fetchedAt,
            }
          : {}),
        ...(a ? { lastAttemptAt: a.at, ...(a.error !== undefined ? { lastError: a.error } : {}) } : {}),
      };
    });
  }

  /**
   * Issuers (RFC 4514) whose newest CRL in force — base files and fetched ones — is past its
   * nextUpdate at `now`, with that date. For metrics and logs; the decision is verifyChain's.
   */
  staleIssuers(now = Date.now()): Array<{ issuer: string; nextUpdate: Date }> {
    const newest = new Map<string, { issuer: string; next: number }>();
    for (const crl of this.anchors().crls) {
      let key: string;
      try {
        key = nameKey(crl.issuerDer);
      } catch {
        continue;
      }
      const next = crl.nextUpdate?.getTime() ?? Infinity;
      const cur = newest.get(key);
      if (!cur || next > cur.next) newest.set(key, { issuer: dnToString(crl.issuerName), next });
    }
    return [...newest.values()].filter((n) => n.next < now).map((n) => ({ issuer: n.issuer, nextUpdate: new Date(n.next) }));
  }

  /** Refreshes now, then every intervalMs. The timer does not keep the process alive. */
  start(): void {
    if (this.timer) return;
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Downloads and checks every URL in parallel. Never throws; concurrent calls share one round. */
  refresh(): Promise<CrlRefreshRound> {
    this.inflight ??= this.round().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async round(): Promise<CrlRefreshRound> {
    const urls = this.urls();
    const results = await Promise.all(urls.map((u) => this.refreshOne(u)));
    const round: CrlRefreshRound = {
      updated: results.filter((r) => r === 'updated').length,
      unchanged: results.filter((r) => r === 'unchanged').length,
      failed: results.filter((r) => r === 'failed').length,
    };
    for (const s of this.staleIssuers()) {
      this.opts.logger.warn({ issuer: s.issuer, nextUpdate: s.nextUpdate.toISOString() }, 'CRL past its nextUpdate and no newer one obtained');
    }
    this.emit('refreshed', round);
    return round;
  }

  private async refreshOne(url: string): Promise<'updated' | 'unchanged' | 'failed'> {
    const at = new Date();
    try {
      const bytes = await boundedFetch({ url, timeoutMs: this.opts.timeoutMs, maxBytes: this.opts.maxBytes, what: 'the CRL', settings: 'tls.crlRefresh', headers: { 'user-agent': 'caducee-crl', accept: 'application/pkix-crl, */*' } });
      const crl = await parseCrlBytes(bytes);
      const issuer = await this.issuerOf(crl);
      const prev = this.held.get(url);
      if (prev) {
        if (Buffer.compare(Buffer.from(prev.crl.der), Buffer.from(crl.der)) === 0) {
          this.attempts.set(url, { at });
          return 'unchanged';
        }
        // RFC 5280 §5.2.3: cRLNumber increases; a CRL older than the one in force is refused
        // (a replay over plain HTTP must not bring a revoked certificate back).
        if (prev.crl.crlNumber !== undefined && crl.crlNumber !== undefined && crl.crlNumber < prev.crl.crlNumber && nameKey(prev.crl.issuerDer) === nameKey(crl.issuerDer))
          throw new Error(`the CRL served (cRLNumber ${crl.crlNumber}) is older than the one in force (cRLNumber ${prev.crl.crlNumber})`);
        if (crl.thisUpdate.getTime() < prev.crl.thisUpdate.getTime() && nameKey(prev.crl.issuerDer) === nameKey(crl.issuerDer))
          throw new Error(`the CRL served (thisUpdate ${crl.thisUpdate.toISOString()}) is older than the one in force (thisUpdate ${prev.crl.thisUpdate.toISOString()})`);
      }
      this.held.set(url, { crl, issuerDn: subjectDnOf(issuer), fetchedAt: at });
      this.version++;
      this.attempts.set(url, { at });
      this.opts.logger.info(
        { url, issuer: subjectDnOf(issuer), crlNumber: crl.crlNumber?.toString(), thisUpdate: crl.thisUpdate.toISOString(), nextUpdate: crl.nextUpdate?.toISOString(), entries: crl.size },
        'CRL updated',
      );
      this.emit('updated', url, crl);
      return 'updated';
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      this.attempts.set(url, { at, error });
      const kept = this.held.get(url);
      this.opts.logger.warn(
        { url, error, kept: kept ? { crlNumber: kept.crl.crlNumber?.toString(), nextUpdate: kept.crl.nextUpdate?.toISOString() } : null },
        kept ? 'CRL refresh failed; the previous CRL stays in force' : 'CRL download failed',
      );
      this.emit('refresh-failed', url, error);
      return 'failed';
    }
  }

  /** The CA of the base anchors that signed `crl` (RFC 5280 §6.3.3 (f)(g)); throws naming what is wrong. */
  private async issuerOf(crl: RevocationList): Promise<x509.X509Certificate> {
    const key = nameKey(crl.issuerDer);
    const named = this.opts.base().certs.filter((c) => {
      try {
        return nameKey(c.subjectName) === key;
      } catch {
        return false;
      }
    });
    const issuerDn = dnToString(crl.issuerName);
    if (named.length === 0) throw new Error(`the CRL is issued by ${issuerDn}, which is not among the trust anchors (tls.ca)`);
    for (const ca of named) {
      const ski = ca.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId.toLowerCase();
      if (crl.authorityKeyId && ski && crl.authorityKeyId !== ski) continue;
      const ku = ca.getExtension(x509.KeyUsagesExtension);
      if (ku && !(ku.usages & x509.KeyUsageFlags.cRLSign)) continue;
      if (await crl.verify(ca)) return ca;
    }
    throw new Error(`the signature of the CRL does not verify with the key of ${issuerDn} in the trust anchors`);
  }
}

function isHttpUrl(u: string): boolean {
  return /^https?:\/\//i.test(u);
}

/**
 * A CRL as served: DER (RFC 5280 §4.2.1.13), or PEM ("X509 CRL", RFC 7468 §6) for lenience. Read
 * in chunks of entries, the event loop served in between.
 */
async function parseCrlBytes(bytes: Buffer): Promise<RevocationList> {
  try {
    if (bytes.subarray(0, 64).toString('latin1').includes('-----BEGIN')) {
      const blocks = x509.PemConverter.decodeWithHeaders(bytes.toString('latin1')).filter((b) => b.type === 'X509 CRL' || b.type === 'CRL');
      if (blocks.length !== 1) throw new CrlFormatError(`expected one PEM "X509 CRL" block, found ${blocks.length}`);
      return await RevocationList.parseAsync(new Uint8Array(blocks[0]!.rawData));
    }
    return await RevocationList.parseAsync(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
  } catch (e) {
    throw new Error(`not a usable CRL: ${e instanceof Error ? e.message : String(e)}`);
  }
}
