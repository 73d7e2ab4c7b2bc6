// The webmail's built assets (webmail/, React + Vite; docs/webmail.md) served at `/` of the HTTPS
// listener. The build output is read once at start into memory (a few hundred kilobytes): a
// request is a map lookup, never a path joined from the URL, so no request can reach a file
// outside the build. Hashed files under /assets/ are cached for a year (their name changes with
// their content); index.html is revalidated each time (RFC 9111 §5.2.2.4 no-cache) so a new
// build is picked up at once. Any other GET asking for HTML gets index.html: the webmail's
// client routes (/lire/…, /reglages) survive a reload. /api and /fhir keep their JSON 404s.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webmanifest': 'application/manifest+json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};
// HTML is never compressed: the page documents (/, client routes) are where a BREACH-style
// attack (compression + reflected input + a secret in one response) would be looked for, and
// testssl flags any compressed answer on `/`. The static bundles (JS, CSS: no secret, no input
// reflected) are the bulk of the bytes and stay gzipped.
const COMPRESSIBLE = new Set(['.js', '.css', '.json', '.svg', '.webmanifest', '.txt']);

interface Asset {
  body: Buffer;
  gzip?: Buffer;
  type: string;
  etag: string;
  immutable: boolean;
}

export interface WebmailAssetsOptions {
  /** The Vite build output (contains index.html and assets/). */
  dir: string;
  logger?: Logger;
}

/** Reads every file of the build into memory; empty map when the build is missing. */
export function loadWebmailAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  if (!existsSync(path.join(dir, 'index.html'))) return assets;
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(dir, rel))) {
      const relPath = rel ? `${rel}/${name}` : name;
      const full = path.join(dir, relPath);
      if (statSync(full).isDirectory()) {
        walk(relPath);
        continue;
      }
      const ext = path.extname(name).toLowerCase();
      const type = TYPES[ext];
      if (!type) continue;
      const body = readFileSync(full);
      const gzip = COMPRESSIBLE.has(ext) && body.length > 512 ? gzipSync(body, { level: 9 }) : undefined;
      assets.set('/' + relPath, {
        body,
        gzip,
        type,
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
        immutable: relPath.startsWith('assets/'),
      });
    }
  };
  walk('');
  return assets;
}

const isApi = (p: string) => p === '/api' || p.startsWith('/api/') || p === '/fhir' || p.startsWith('/fhir/') || p === '/healthz';

/** Registers GET / (and every client route) on an HTTPS app. */
export function registerWebmailAssets(app: FastifyInstance, o: WebmailAssetsOptions) {
  const assets = loadWebmailAssets(o.dir);
  if (!assets.size) o.logger?.warn({ dir: o.dir }, 'webmail not built: run npm run build:webmail (npm install and npm start build it)');

  const send = (req: FastifyRequest, reply: FastifyReply, a: Asset) => {
    reply.header('content-type', a.type).header('etag', a.etag).header('vary', 'Accept-Encoding');
    reply.header('cache-control', a.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    if (req.headers['if-none-match'] === a.etag) return reply.code(304).send();
    // RFC 9110 §12.5.3: gzip only when the client lists it.
    if (a.gzip && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) return reply.header('content-encoding', 'gzip').send(a.gzip);
    return reply.send(a.body);
  };

  app.get('/*', async (req, reply) => {
    let p: string;
    try {
      p = decodeURIComponent(req.url.split('?')[0]!);
    } catch {
      return reply.callNotFound(); // malformed percent-encoding: no such file
    }
    if (isApi(p)) return reply.callNotFound();
    const a = assets.get(p === '/' ? '/index.html' : p);
    if (a) return send(req, reply, a);
    const index = assets.get('/index.html');
    const wantsHtml = /text\/html/.test(String(req.headers.accept ?? ''));
    // A client route (no file extension) asked by a browser: the single-page app answers it.
    if (index && wantsHtml && !p.startsWith('/assets/') && !path.extname(p)) return send(req, reply, index);
    if (!index && wantsHtml)
      return reply
        .code(503)
        .type('text/html; charset=utf-8')
        .header('cache-control', 'no-store')
        .send(
          '<!doctype html><html lang="fr"><meta charset="utf-8"><title>Caducée</title><main><h1>Messagerie indisponible</h1><p>Le webmail n’a pas été construit sur ce serveur (<code>npm run build:webmail</code>).</p></main></html>',
        );
    return reply.callNotFound();
  });
}
