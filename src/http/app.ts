// The operator's HTTP server (Fastify): JSON APIs under /api, the FHIR directory under /fhir.
// Errors are RFC 9457 problem+json under /api and FHIR OperationOutcome under /fhir.
// Later issues (webmail, admin API, authentication) register their routes here too.
import Fastify, { LogController, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { FhirError } from '../directory/fhir.js';
import { DirectoryError } from '../directory/service.js';
import { registerDirectoryRoutes, type DirectoryRoutesOptions } from './directory-routes.js';
import { HttpProblem, sendOutcome, sendProblem } from './problem.js';

export { HttpProblem };

const isFhir = (req: FastifyRequest) => req.url === '/fhir' || req.url.startsWith('/fhir/') || req.url.startsWith('/fhir?');

const TITLES: Record<number, string> = { 400: 'Bad Request', 404: 'Not Found', 406: 'Not Acceptable', 413: 'Payload Too Large', 500: 'Internal Server Error' };

export interface HttpOptions {
  host: string;
  port: number;
  logger: Logger;
  directory?: DirectoryRoutesOptions;
}

export interface HttpServer {
  app: FastifyInstance;
  port: number;
  close(): Promise<void>;
}

export function buildHttpApp(opts: Omit<HttpOptions, 'host' | 'port'>): FastifyInstance {
  const app = Fastify({
    loggerInstance: opts.logger.child({ component: 'http' }) as any,
    // One debug line per request below instead of Fastify's, without the query (it may hold names).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
  });
  app.addHook('onResponse', async (req, reply) => {
    req.log.debug({ method: req.method, path: req.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }, 'request');
  });

  app.setErrorHandler((err: any, req, reply) => {
    let status = 500;
    let code = 'exception';
    let message = 'internal error: the server log has the details';
    if (err instanceof FhirError) {
      status = err.status;
      code = err.code;
      message = err.message;
    } else if (err instanceof DirectoryError || err instanceof HttpProblem) {
      status = err.status;
      code = status === 404 ? 'not-found' : 'invalid';
      message = err.message;
    } else if (err?.validation || (typeof err?.statusCode === 'number' && err.statusCode < 500)) {
      status = err.statusCode ?? 400;
      code = 'invalid';
      message = err.message;
    } else {
      req.log.error({ err }, 'request failed');
    }
    if (isFhir(req)) return sendOutcome(reply, status, code, message);
    return sendProblem(reply, status, err instanceof HttpProblem ? err.title : (TITLES[status] ?? 'Error'), message, req.url.split('?')[0]);
  });

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0];
    if (isFhir(req)) return sendOutcome(reply, 404, 'not-found', `no FHIR endpoint ${req.method} ${path}: see /fhir/metadata`);
    return sendProblem(reply, 404, 'Not Found', `no endpoint ${req.method} ${path}`, path);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  if (opts.directory) registerDirectoryRoutes(app, opts.directory);
  return app;
}

/** Builds the app and listens on host:port (0 = any free port). */
export async function startHttpServer(opts: HttpOptions): Promise<HttpServer> {
  const app = buildHttpApp(opts);
  try {
    await app.listen({ host: opts.host, port: opts.port });
  } catch (e: any) {
    await app.close().catch(() => {});
    const hint = e.code === 'EADDRINUSE' ? ' (port already in use: choose another in listen.http)' : '';
    throw Object.assign(new Error(`cannot listen for HTTP on ${opts.host}:${opts.port}: ${e.code ?? e.message}${hint}`), { code: e.code });
  }
  const port = (app.server.address() as AddressInfo).port;
  return {
    app,
    port,
    async close() {
      await app.close();
    },
  };
}
