// The demo PKI's CRL distribution points over plain HTTP (RFC 5280 §4.2.1.13: "the URI MUST point
// to a single DER encoded CRL", media type application/pkix-crl per RFC 2585 §4.2): GET or HEAD
// /crl/intermediate.crl and /crl/root.crl, read from the PKI directory at each request, so a
// revocation (`caducee pki revoke`, TestPki.revoke) is published at once. The same server answers
// OCSP requests at /ocsp (src/demo/ocsp-responder.ts), the responder the demo certificates name.
// Nothing else is served.
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { ocspPath, ocspResponder } from './ocsp-responder.js';

export interface CrlServer {
  host: string;
  port: number;
  /** http://host:port/crl: the test PKI's crlBaseUrl. */
  baseUrl: string;
  server: http.Server;
  close(): Promise<void>;
}

const FILES: Record<string, string> = { '/crl/intermediate.crl': 'intermediate.crl', '/crl/root.crl': 'root.crl' };

export function crlBaseUrl(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}/crl`;
}

/** The demo PKI's OCSP responder, on the CRL server (RFC 5280 §4.2.2.1 names it in the certificates). */
export function ocspUrl(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}/ocsp`;
}

/** Listens on host:port (0: any free port) and serves the DER CRLs of the test PKI in `pkiDir`. */
export function startCrlServer(pkiDir: string, host: string, port: number): Promise<CrlServer> {
  const ocsp = ocspResponder(pkiDir);
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (ocspPath(path)) return ocsp(req, res, path);
    const file = FILES[path];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    readFile(join(pkiDir, file)).then(
      (der) => {
        res.writeHead(200, { 'content-type': 'application/pkix-crl', 'content-length': der.length, 'cache-control': 'no-cache' });
        res.end(req.method === 'HEAD' ? undefined : der);
      },
      () => res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('no CRL published yet\n'),
    );
  });
  server.keepAliveTimeout = 1000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const actual = (server.address() as { port: number }).port;
      resolve({
        host,
        port: actual,
        baseUrl: crlBaseUrl(host, actual),
        server,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}
