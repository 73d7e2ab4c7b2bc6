// One bounded HTTP exchange for what the trust decision downloads in the background: CRLs
// (crl-refresh.ts, GET) and OCSP responses (ocsp-stapling.ts, POST, RFC 6960 Appendix A.1).
// http: or https: (system roots) only; up to 3 redirects, to http(s) URLs only (a POST is sent
// again as it was); the whole exchange, redirects included, bounded by `timeoutMs`, and the body
// by `maxBytes`, streamed: the connection is dropped as soon as it is exceeded, or as soon as a
// Content-Length says it would be.
import http from 'node:http';
import https from 'node:https';

export interface BoundedFetch {
  url: string;
  timeoutMs: number;
  maxBytes: number;
  /** What the body is, in errors ("the CRL", "the OCSP response"). */
  what: string;
  /** The settings that bound it, named in errors (e.g. "tls.crlRefresh"). */
  settings: string;
  headers: Record<string, string | number>;
  /** Sent with POST when set; GET otherwise. */
  body?: Uint8Array;
}

export function boundedFetch(o: BoundedFetch, redirectsLeft = 3, deadline = Date.now() + o.timeoutMs): Promise<Buffer> {
  const { url, timeoutMs, maxBytes, what, settings, body } = o;
  return new Promise<Buffer>((resolve, reject) => {
    const u = new URL(url);
    const request = u.protocol === 'https:' ? https.request : u.protocol === 'http:' ? http.request : undefined;
    if (!request) return reject(new Error(`unsupported URL scheme in ${url}`));
    const left = deadline - Date.now();
    if (left <= 0) return reject(new Error(`no complete response from ${url} within ${timeoutMs} ms (${settings}.timeoutSeconds)`));
    const headers = body ? { ...o.headers, 'content-length': body.length } : o.headers;
    const req = request(u, { method: body ? 'POST' : 'GET', headers }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        clearTimeout(timer);
        if (redirectsLeft <= 0) return reject(new Error(`too many redirects from ${url}`));
        const next = new URL(res.headers.location, url);
        if (!/^https?:$/.test(next.protocol)) return reject(new Error(`refusing the redirect from ${url} to ${next.href}`));
        return resolve(boundedFetch({ ...o, url: next.href }, redirectsLeft - 1, deadline));
      }
      if (status < 200 || status >= 300) {
        res.resume();
        clearTimeout(timer);
        return reject(new Error(`HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''} from ${url}`));
      }
      const declared = Number(res.headers['content-length']);
      if (declared > maxBytes) {
        req.destroy(new Error(`${what} from ${url} declares ${declared} bytes, more than the ${maxBytes} accepted (${settings}.maxBytes)`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) req.destroy(new Error(`${what} from ${url} exceeds the ${maxBytes} bytes accepted (${settings}.maxBytes)`));
        else chunks.push(chunk);
      });
      res.on('end', () => {
        clearTimeout(timer);
        if (!res.complete) reject(new Error(`connection closed before the whole of ${what} from ${url} was received`));
        else resolve(Buffer.concat(chunks));
      });
      res.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`no complete response from ${url} within ${timeoutMs} ms (${settings}.timeoutSeconds)`)), left);
    timer.unref();
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end(body);
  });
}
