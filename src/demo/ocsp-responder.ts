// The demo PKI's OCSP responder (RFC 6960), served beside its CRLs by src/demo/crl-server.ts at
// `<base>/ocsp`, the URL the demo's end-entity certificates name in their Authority Information
// Access (RFC 5280 §4.2.2.1): operators ask it for their own certificate's status and staple the
// answer (trust/ocsp-stapling.ts). Requests over HTTP as RFC 6960 Appendix A.1 describes: POST with
// an application/ocsp-request body, or GET with the DER request base64-encoded (then URL-encoded)
// in the path. The answer is TestPki.ocspResponse's: signed by the issuing test CA, the status
// read from the PKI's state at each request, so a revocation (`caducee pki revoke`) shows at once.
import type http from 'node:http';
import { TestPki } from '../pki/index.js';

/** Largest request read (a one-certificate request is about 100 bytes). */
const MAX_REQUEST_BYTES = 16 * 1024;

export function ocspPath(pathname: string): boolean {
  return pathname === '/ocsp' || pathname.startsWith('/ocsp/');
}

/** An HTTP handler answering OCSP requests for the test PKI in `pkiDir` (loaded once, state re-read at each request). */
export function ocspResponder(pkiDir: string): (req: http.IncomingMessage, res: http.ServerResponse, pathname: string) => void {
  let pki: Promise<TestPki> | undefined;
  const answer = (res: http.ServerResponse, der: Uint8Array) => {
    res.writeHead(200, { 'content-type': 'application/ocsp-response', 'content-length': der.length, 'cache-control': 'no-cache' });
    res.end(Buffer.from(der.buffer, der.byteOffset, der.length));
  };
  const respond = (res: http.ServerResponse, request: Uint8Array) => {
    pki ??= TestPki.load(pkiDir).catch((e) => {
      pki = undefined;
      throw e;
    });
    pki
      .then((p) => p.ocspResponse(request))
      .then(
        (der) => answer(res, der),
        (e) => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`OCSP responder unavailable: ${e.message}\n`),
      );
  };
  return (req, res, pathname) => {
    if (req.method === 'GET' && pathname.startsWith('/ocsp/')) {
      // RFC 6960 Appendix A.1: GET {url}/{url-encoding of base-64 encoding of the DER OCSPRequest}.
      let request: Buffer;
      try {
        request = Buffer.from(decodeURIComponent(pathname.slice('/ocsp/'.length)), 'base64');
      } catch {
        request = Buffer.alloc(0);
      }
      return respond(res, request);
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST, GET', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_REQUEST_BYTES) {
        res.writeHead(413, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' }).end('request too large\n');
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      if (size <= MAX_REQUEST_BYTES) respond(res, Buffer.concat(chunks));
    });
  };
}
