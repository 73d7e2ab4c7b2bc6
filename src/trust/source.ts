// Where the trust list comes from and how it stays fresh.
//
// The ANS publishes listeblanchemssante.xml and, beside it, a `checksum` file holding
// the hex SHA-256 of the XML bytes (https://github.com/ansforge/MSS-liste-blanche,
// README "Utilisation du checksum"; some published copies hold the digest twice in a
// row). A refresh that cannot fetch, verify or parse a new list keeps the last good
// list in force (this operator's choice, no ANS source fixes it: a failed or malformed
// refresh must not empty the trust space).

import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { parseTrustList, TrustListError, type TrustList } from './list.js';

export interface TrustListSourceOptions {
  /** File path, file: URL or https:// URL of listeblanchemssante.xml. */
  source: string;
  /**
   * Expected SHA-256 of the raw bytes: a hex digest (pins one exact list), or the path /
   * https:// URL of a checksum file (such as the ANS `checksum`), fetched at every refresh.
   */
  sha256?: string;
  /** Period of start()'s refreshes; default one hour. */
  refreshIntervalMs?: number;
  /** Defaults to a pino logger writing to stderr. */
  logger?: Logger;
  /** Used for https:// sources; defaults to the global fetch (undici). Takes precedence over `ca`. */
  fetchImpl?: typeof fetch;
  /** Extra CA certificate(s), PEM, trusted in addition to the system roots for HTTPS. */
  ca?: string | Buffer;
  /** Per-request timeout; default 30 s. */
  timeoutMs?: number;
  /** Largest accepted download; default 64 MiB (the national list is about 4 MB). */
  maxBytes?: number;
}

export type RefreshResult =
  | { ok: true; list: TrustList; /** false when the bytes were identical to the list in force */ changed: boolean; sha256: string }
  | { ok: false; error: string };

export interface TrustListStatus {
  source: string;
  /** SHA-256 of the list in force. */
  sha256?: string;
  generatedAt?: string;
  loadedAt?: Date;
  lastAttemptAt?: Date;
  /** Error of the last refresh, cleared by a successful one. */
  lastError?: string;
}

export type TrustListSourceEvents = {
  /** A new list (different bytes) is in force. */
  updated: [list: TrustList];
  /** A refresh failed; the last good list (if any) stays in force. */
  'refresh-failed': [error: string];
};

const DEFAULT_REFRESH_MS = 60 * 60 * 1000;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

export class TrustListSource extends EventEmitter<TrustListSourceEvents> {
  private readonly opts: TrustListSourceOptions;
  private readonly logger: Logger;
  private readonly fixedDigest?: string;
  private list?: TrustList;
  private digest?: string;
  private loadedAt?: Date;
  private lastAttemptAt?: Date;
  private lastError?: string;
  private timer?: NodeJS.Timeout;
  private inflight?: Promise<RefreshResult>;

  constructor(opts: TrustListSourceOptions) {
    super();
    this.opts = opts;
    checkLocation(opts.source, 'source');
    if (opts.sha256 !== undefined) {
      if (/^\s*[0-9a-fA-F]+\s*$/.test(opts.sha256)) this.fixedDigest = parseChecksumText(opts.sha256);
      else checkLocation(opts.sha256, 'sha256');
    }
    if (opts.refreshIntervalMs !== undefined && !(opts.refreshIntervalMs > 0)) {
      throw new RangeError(`refreshIntervalMs must be a positive number of milliseconds, found ${opts.refreshIntervalMs}`);
    }
    this.logger = opts.logger ?? pino({ name: 'caducee.trust' }, pino.destination({ dest: 2, sync: true }));
  }

  /** Initial load: fetches, verifies and parses the list; throws TrustListError when no valid list can be obtained. */
  async load(): Promise<TrustList> {
    const r = await this.refresh();
    if (!r.ok) throw new TrustListError(`cannot load the trust list from ${this.opts.source}: ${r.error}`);
    return r.list;
  }

  /** The last good list. Throws before the first successful load. */
  current(): TrustList {
    if (!this.list) throw new Error(`the trust list from ${this.opts.source} is not loaded yet (call load() first)`);
    return this.list;
  }

  status(): TrustListStatus {
    return {
      source: this.opts.source,
      ...(this.digest !== undefined ? { sha256: this.digest } : {}),
      ...(this.list?.generatedAt !== undefined ? { generatedAt: this.list.generatedAt } : {}),
      ...(this.loadedAt ? { loadedAt: this.loadedAt } : {}),
      ...(this.lastAttemptAt ? { lastAttemptAt: this.lastAttemptAt } : {}),
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
    };
  }

  /** Refreshes every refreshIntervalMs (default one hour). The timer does not keep the process alive. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.refresh(), this.opts.refreshIntervalMs ?? DEFAULT_REFRESH_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Fetches, verifies and parses the list. Never throws: on failure it logs a warning,
   * emits 'refresh-failed' and keeps the last good list. Concurrent calls share one attempt.
   */
  refresh(): Promise<RefreshResult> {
    this.inflight ??= this.attempt().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async attempt(): Promise<RefreshResult> {
    const source = this.opts.source;
    this.lastAttemptAt = new Date();
    try {
      const [bytes, expected] = await Promise.all([
        this.fetchBytes(source),
        this.fixedDigest !== undefined
          ? Promise.resolve(this.fixedDigest)
          : this.opts.sha256 !== undefined
            ? this.fetchChecksum(this.opts.sha256)
            : Promise.resolve(undefined),
      ]);
      const digest = sha256Hex(bytes);
      if (expected !== undefined && expected !== digest) {
        throw new Error(`SHA-256 mismatch: expected ${expected}, got ${digest}`);
      }
      if (this.list && digest === this.digest) {
        this.lastError = undefined;
        this.logger.debug({ source, sha256: digest }, 'trust list unchanged');
        return { ok: true, list: this.list, changed: false, sha256: digest };
      }
      const list = parseTrustList(bytes);
      if (list.entries.length === 0 && this.list && this.list.entries.length > 0) {
        throw new TrustListError('the new list has no usable entry; refusing to replace a non-empty list with it');
      }
      this.list = list;
      this.digest = digest;
      this.loadedAt = new Date();
      this.lastError = undefined;
      this.logger.info(
        {
          source,
          sha256: digest,
          checksumVerified: expected !== undefined,
          generatedAt: list.generatedAt,
          entries: list.entries.length,
          domains: list.domains,
          dns: list.dns,
          warnings: list.warnings,
        },
        'trust list updated',
      );
      this.emit('updated', list);
      return { ok: true, list, changed: true, sha256: digest };
    } catch (err) {
      const error = describeError(err);
      this.lastError = error;
      const kept = this.list
        ? { generatedAt: this.list.generatedAt, entries: this.list.entries.length, sha256: this.digest, loadedAt: this.loadedAt }
        : null;
      this.logger.warn(
        { source, error, keptList: kept },
        kept ? 'trust list refresh failed; keeping the last good list' : 'trust list load failed; no list is in force',
      );
      this.emit('refresh-failed', error);
      return { ok: false, error };
    }
  }

  private async fetchChecksum(location: string): Promise<string> {
    let bytes: Buffer;
    try {
      bytes = await this.fetchBytes(location);
    } catch (err) {
      throw new Error(`cannot fetch the checksum file: ${describeError(err)}`);
    }
    return parseChecksumText(bytes.toString('utf8'), location);
  }

  private async fetchBytes(location: string): Promise<Buffer> {
    const maxBytes = this.opts.maxBytes ?? DEFAULT_MAX_BYTES;
    const timeoutMs = this.opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (/^https:\/\//i.test(location)) {
      if (this.opts.ca !== undefined && this.opts.fetchImpl === undefined) {
        // Node's `ca` replaces the default roots, so pass both to *add* the extra CA.
        return httpsGet(location, { ca: [...tls.rootCertificates, this.opts.ca], timeoutMs, maxBytes }, 5);
      }
      return fetchWith(this.opts.fetchImpl ?? fetch, location, timeoutMs, maxBytes);
    }
    const path = /^file:/i.test(location) ? fileURLToPath(location) : location;
    const bytes = await readFile(path);
    if (bytes.length > maxBytes) throw new Error(`${path} is ${bytes.length} bytes, more than the ${maxBytes} accepted`);
    return bytes;
  }
}

function checkLocation(location: string, what: string): void {
  if (typeof location !== 'string' || location.trim() === '') throw new TypeError(`${what}: expected a file path or an https:// URL`);
  if (/^http:\/\//i.test(location)) {
    throw new TypeError(`${what}: plain http:// is not accepted for the trust list (${location}); use https:// or a file path`);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location) && !/^(https|file):/i.test(location)) {
    throw new TypeError(`${what}: unsupported URL scheme in ${location}; expected a file path or an https:// URL`);
  }
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Reads a SHA-256 checksum text: a bare hex digest as in the ANS `checksum` file,
 * the same digest written twice in a row (with or without white space between),
 * or `sha256sum` / BSD `SHA256 (file) = hex` output. Returns the lower-case digest.
 */
export function parseChecksumText(text: string, where = 'checksum'): string {
  const digests = new Set<string>();
  for (const token of text.split(/[\s=()]+/)) {
    if (/^[0-9a-f]{64}$/i.test(token)) digests.add(token.toLowerCase());
    else if (/^[0-9a-f]{128}$/i.test(token)) {
      const a = token.slice(0, 64).toLowerCase();
      const b = token.slice(64).toLowerCase();
      if (a !== b) throw new Error(`${where}: 128 hex digits that are not one SHA-256 digest written twice`);
      digests.add(a);
    } else if (/^[0-9a-f]+$/i.test(token)) {
      throw new Error(`${where}: expected a SHA-256 hex digest (64 hex digits), found ${token.length} hex digits`);
    }
  }
  if (digests.size === 0) throw new Error(`${where}: expected a SHA-256 hex digest (64 hex digits), found none`);
  if (digests.size > 1) throw new Error(`${where}: holds ${digests.size} different SHA-256 digests`);
  return [...digests][0]!;
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  let msg = err.message;
  // undici reports "fetch failed" and puts the reason in `cause`.
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as { code?: string }).code;
    msg += `: ${code && !cause.message.includes(code) ? `${code} ` : ''}${cause.message}`;
  }
  return msg;
}

async function fetchWith(fetchImpl: typeof fetch, url: string, timeoutMs: number, maxBytes: number): Promise<Buffer> {
  const res = await fetchImpl(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' });
  if (res.url && !/^https:/i.test(res.url)) {
    throw new Error(`refusing the response from ${res.url}: redirected away from HTTPS`);
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    throw new Error(`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''} from ${url}`);
  }
  const declared = Number(res.headers.get('content-length'));
  if (declared > maxBytes) {
    await res.body?.cancel().catch(() => {});
    throw new Error(`response from ${url} declares ${declared} bytes, more than the ${maxBytes} accepted`);
  }
  const bytes = Buffer.from(await res.arrayBuffer());
  if (bytes.length > maxBytes) throw new Error(`response from ${url} is ${bytes.length} bytes, more than the ${maxBytes} accepted`);
  return bytes;
}

function httpsGet(
  url: string,
  opts: { ca: (string | Buffer)[]; timeoutMs: number; maxBytes: number },
  redirectsLeft: number,
): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const req = https.get(url, { ca: opts.ca, timeout: opts.timeoutMs, headers: { 'user-agent': 'caducee-trust-list' } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (redirectsLeft <= 0) return reject(new Error(`too many redirects fetching ${url}`));
        const next = new URL(res.headers.location, url);
        if (next.protocol !== 'https:') return reject(new Error(`refusing the redirect from ${url} to ${next.href}: not HTTPS`));
        return resolve(httpsGet(next.href, opts, redirectsLeft - 1));
      }
      if (status < 200 || status >= 300) {
        res.resume();
        return reject(new Error(`HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''} from ${url}`));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > opts.maxBytes) req.destroy(new Error(`response from ${url} exceeds the ${opts.maxBytes} bytes accepted`));
        else chunks.push(chunk);
      });
      res.on('end', () => {
        if (!res.complete) reject(new Error(`connection closed before the whole response from ${url} was received`));
        else resolve(Buffer.concat(chunks));
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no response from ${url} within ${opts.timeoutMs} ms`)));
    req.on('error', reject);
  });
}
