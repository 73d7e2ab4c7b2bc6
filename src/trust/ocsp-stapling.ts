// OCSP stapling of our own server certificate (docs/trust-space.md, "Revocation: OCSP stapling";
// TLS profile, issue 13).
//
// In the background, on a schedule and before the held response's nextUpdate, the operator asks
// the OCSP responder of its own certificate (tls.ocsp.responderUrl, else the id-ad-ocsp URL of the
// certificate's Authority Information Access, RFC 5280 §4.2.2.1) for its status: an RFC 6960
// request POSTed as application/ocsp-request (RFC 6960 Appendix A.1), the exchange bounded in time
// and size as CRL downloads are (trust/crl-refresh.ts). The response is checked as a client would
// check it (pki/ocsp.ts checkOcspResponse, RFC 6960 §3.2, §4.2.2.2) and, when good, replaces the one
// held, in one swap. Every TLS listener staples the one held (RFC 6066 §8, RFC 8446 §4.4.2.1) when
// a client asks: Node's 'OCSPRequest' event. With no valid response held — none obtained yet, or
// the one held past its nextUpdate — no staple is sent: never a stale, revoked or badly signed one.
// A failed refresh keeps the previous good response (until its own nextUpdate), is logged and is
// counted (caducee_ocsp_refreshes_total{outcome="failed"}).
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { boundedFetch } from './bounded-fetch.js';
import { x509 } from '../pki/index.js';
import { issuerDnOf, nameKey, subjectDnOf } from '../pki/names.js';
import { buildOcspRequest, checkOcspResponse, OcspResponseError, ocspUrlsOf, type OcspFailure, type OcspStatusInfo } from '../pki/ocsp.js';

export interface OcspStaplerOptions {
  /** Our server certificate (the leaf the listeners present). */
  cert: x509.X509Certificate;
  /** The CA certificate that issued it (from tls.chain / tls.cert, else tls.ca). */
  issuer: x509.X509Certificate;
  /** The responder asked (http:// or https://). */
  url: string;
  /** Longest time between two requests; the next one comes earlier when the held response's nextUpdate is near. */
  refreshMs: number;
  timeoutMs: number;
  maxBytes: number;
  logger: Logger;
  now?: () => number;
}

export type OcspRefreshOutcome = 'updated' | 'unchanged' | 'failed';
/** Why a refresh failed: a check of pki/ocsp.ts, 'fetch' (the HTTP exchange), 'older' (a response older than the one held). */
export type OcspRefreshFailure = OcspFailure | 'fetch' | 'older';

export type OcspStaplerEvents = {
  /** A new good response is held (and stapled). */
  updated: [info: OcspStatusInfo];
  /** A request or check failed: `failure` is the pki/ocsp.ts reason, or 'fetch' for the exchange itself. */
  'refresh-failed': [failure: OcspRefreshFailure, error: string];
  /** A refresh has finished. */
  refreshed: [outcome: OcspRefreshOutcome];
};

export interface OcspStaplingStatus {
  url: string;
  /** The response held and stapled, if any (absent once past its nextUpdate). */
  held?: { thisUpdate: Date; nextUpdate?: Date; producedAt: Date; signer: string; fetchedAt: Date };
  lastAttemptAt?: Date;
  /** The last attempt's error, cleared by a good one. */
  lastError?: string;
}

/** Shortest wait before the next request (a responder answering with a nextUpdate in seconds must not be hammered). */
const MIN_DELAY_MS = 30_000;
/** After a failure, ask again within this time (or refreshMs if shorter). */
const RETRY_DELAY_MS = 5 * 60_000;

export class OcspStapler extends EventEmitter<OcspStaplerEvents> {
  private held?: { info: OcspStatusInfo; der: Buffer; fetchedAt: number };
  private attempt?: { at: Date; error?: string };
  private timer?: NodeJS.Timeout;
  private inflight?: Promise<OcspRefreshOutcome>;
  private stopped = true;
  private readonly certDer: Buffer;
  private readonly now: () => number;

  constructor(private readonly opts: OcspStaplerOptions) {
    super();
    if (!/^https?:\/\//i.test(opts.url)) throw new TypeError(`OCSP responder URL ${opts.url}: expected an http:// or https:// URL`);
    this.certDer = Buffer.from(opts.cert.rawData);
    this.now = opts.now ?? Date.now;
  }

  get url(): string {
    return this.opts.url;
  }

  /**
   * The DER response to staple now, or undefined: only a response that passed every check and is
   * not past its nextUpdate (a response without nextUpdate, RFC 6960 §4.2.2.1, is used until the
   * next refresh is due, plus the time that refresh may take).
   */
  current(): Buffer | undefined {
    const h = this.held;
    if (!h) return undefined;
    const until = h.info.nextUpdate?.getTime() ?? h.fetchedAt + this.opts.refreshMs + this.opts.timeoutMs;
    return this.now() < until ? h.der : undefined;
  }

  status(): OcspStaplingStatus {
    const h = this.current() && this.held;
    return {
      url: this.opts.url,
      ...(h
        ? {
            held: {
              thisUpdate: h.info.thisUpdate,
              ...(h.info.nextUpdate ? { nextUpdate: h.info.nextUpdate } : {}),
              producedAt: h.info.producedAt,
              signer: h.info.signer,
              fetchedAt: new Date(h.fetchedAt),
            },
          }
        : {}),
      ...(this.attempt ? { lastAttemptAt: this.attempt.at, ...(this.attempt.error !== undefined ? { lastError: this.attempt.error } : {}) } : {}),
    };
  }

  /**
   * Node's tls.Server 'OCSPRequest' listener (RFC 6066 §8 status_request): the held response when
   * the certificate in use is ours, nothing otherwise. Never waits for the network.
   */
  readonly onOcspRequest = (certificate: Buffer, _issuer: Buffer, callback: (err: Error | null, resp?: Buffer) => void): void => {
    const der = this.current();
    if (der && certificate && Buffer.compare(certificate, this.certDer) === 0) callback(null, der);
    else callback(null);
  };

  /**
   * Staples on every TLS socket of `server`: a tls.Server (implicit TLS, HTTPS), or the net.Server
   * of a STARTTLS listener whose TLSSockets are made with `server` pointing at it (smtp-server does
   * so). Node reads the certificate of the handshake from the SNI context, else from
   * `server._sharedCreds`, which only a tls.Server has: without it a client that sends no SNI (an
   * MTA connecting to an IP address, `openssl s_client -connect 127.0.0.1:…`) would get no staple,
   * so a plain server is given the listener's own secure context there. Call before listening.
   */
  attach(server: net.Server | tls.Server, secureContextOptions?: tls.SecureContextOptions): void {
    if (!(server instanceof tls.Server) && secureContextOptions && !(server as any)._sharedCreds) {
      (server as any)._sharedCreds = tls.createSecureContext(secureContextOptions);
    }
    server.on('OCSPRequest', this.onOcspRequest);
  }

  /**
   * A tls.Server that never listens, to hand as the `server` option of TLSSockets made by hand
   * (IMAP STARTTLS): Node asks that server's 'OCSPRequest' listeners for the staple.
   */
  holder(secureContextOptions: tls.SecureContextOptions): tls.Server {
    const s = tls.createServer(secureContextOptions);
    s.on('OCSPRequest', this.onOcspRequest);
    return s;
  }

  /** Asks now, then again before the held response expires (at most every refreshMs). The timer does not keep the process alive. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.refresh();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Asks the responder and checks the answer. Never throws; concurrent calls share one request. */
  refresh(): Promise<OcspRefreshOutcome> {
    this.inflight ??= this.round().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private schedule(outcome: OcspRefreshOutcome): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    let delay = this.opts.refreshMs;
    const next = this.held?.info.nextUpdate?.getTime();
    // Before nextUpdate: at half the time left, so that a failure still leaves time to retry.
    if (next !== undefined) delay = Math.min(delay, Math.max(MIN_DELAY_MS, (next - this.now()) / 2));
    if (outcome === 'failed') delay = Math.min(delay, RETRY_DELAY_MS);
    this.timer = setTimeout(() => void this.refresh(), Math.max(MIN_DELAY_MS, delay));
    this.timer.unref();
  }

  private async round(): Promise<OcspRefreshOutcome> {
    const outcome = await this.fetchAndCheck();
    this.schedule(outcome);
    this.emit('refreshed', outcome);
    return outcome;
  }

  private async fetchAndCheck(): Promise<OcspRefreshOutcome> {
    const at = new Date(this.now());
    const log = this.opts.logger;
    let failure = 'fetch' as OcspRefreshFailure;
    try {
      const request = buildOcspRequest(this.opts.cert, this.opts.issuer);
      const der = await boundedFetch({
        url: this.opts.url,
        body: request,
        timeoutMs: this.opts.timeoutMs,
        maxBytes: this.opts.maxBytes,
        what: 'the OCSP response',
        settings: 'tls.ocsp',
        // RFC 6960 Appendix A.1: application/ocsp-request, answered with application/ocsp-response.
        headers: { 'user-agent': 'caducee-ocsp', 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
      });
      const prev = this.held;
      if (prev && prev.der.equals(der) && this.current()) {
        this.attempt = { at };
        return 'unchanged';
      }
      let info: OcspStatusInfo;
      try {
        info = await checkOcspResponse(new Uint8Array(der.buffer, der.byteOffset, der.length), this.opts.cert, this.opts.issuer, this.now());
      } catch (e) {
        if (e instanceof OcspResponseError) failure = e.failure;
        throw e;
      }
      // A response older than the one held is not taken (a replay must not shorten the staple's life).
      if (prev && this.current() && info.thisUpdate.getTime() < prev.info.thisUpdate.getTime()) {
        failure = 'older';
        throw new Error(`the response served (thisUpdate ${info.thisUpdate.toISOString()}) is older than the one held (thisUpdate ${prev.info.thisUpdate.toISOString()})`);
      }
      this.held = { info, der, fetchedAt: at.getTime() };
      this.attempt = { at };
      log.info({ url: this.opts.url, thisUpdate: info.thisUpdate.toISOString(), nextUpdate: info.nextUpdate?.toISOString(), signer: info.signer, delegated: info.delegated }, 'OCSP response for our certificate updated (stapled)');
      this.emit('updated', info);
      return 'updated';
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      this.attempt = { at, error };
      const kept = this.current() ? this.held : undefined;
      const fields = { url: this.opts.url, failure, error, certificate: subjectDnOf(this.opts.cert), kept: kept ? { thisUpdate: kept.info.thisUpdate.toISOString(), nextUpdate: kept.info.nextUpdate?.toISOString() } : null };
      const msg = kept ? 'OCSP refresh failed; the previous response is still stapled' : 'OCSP refresh failed; no OCSP response is stapled';
      // Our own certificate said revoked is an operator emergency, not a network hiccup.
      if (failure === 'revoked') log.error(fields, msg);
      else log.warn(fields, msg);
      this.emit('refresh-failed', failure, error);
      return 'failed';
    }
  }
}

/**
 * The OCSP stapler of an operator's certificate, from tls.ocsp, or why there is none (stapling
 * off, or no responder known). `certs`: our leaf first, then the rest of tls.cert / tls.chain;
 * `anchors`: the tls.ca certificates, searched for the issuer when the chain lacks it.
 */
export function ocspStaplerFor(
  settings: { staple: boolean; responderUrl?: string; refreshMinutes: number; timeoutSeconds: number; maxBytes: number },
  certs: x509.X509Certificate[],
  anchors: x509.X509Certificate[],
  logger: Logger,
): { stapler: OcspStapler } | { stapler?: undefined; reason: string } {
  if (!settings.staple) return { reason: 'tls.ocsp.staple is false' };
  const leaf = certs[0];
  if (!leaf) return { reason: 'the certificate of tls.cert could not be read' };
  const url = settings.responderUrl ?? ocspUrlsOf(leaf)[0];
  if (!url) return { reason: 'our certificate names no OCSP responder (Authority Information Access) and tls.ocsp.responderUrl is not set' };
  const issuer = issuerOf(leaf, [...certs.slice(1), ...anchors]);
  if (!issuer) return { reason: `the CA that issued our certificate (${issuerDnOf(leaf)}) is neither in tls.chain nor in tls.ca: the OCSP request names it` };
  return {
    stapler: new OcspStapler({
      cert: leaf,
      issuer,
      url,
      refreshMs: settings.refreshMinutes * 60_000,
      timeoutMs: settings.timeoutSeconds * 1000,
      maxBytes: settings.maxBytes,
      logger,
    }),
  };
}

function issuerOf(leaf: x509.X509Certificate, candidates: x509.X509Certificate[]): x509.X509Certificate | undefined {
  const aki = leaf.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId?.toLowerCase();
  return candidates.find((c) => {
    if (nameKey(c.subjectName) !== nameKey(leaf.issuerName)) return false;
    const ski = c.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId.toLowerCase();
    return !aki || !ski || aki === ski;
  });
}
