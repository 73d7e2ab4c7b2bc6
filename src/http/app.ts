// The operator's HTTP servers (Fastify): JSON APIs under /api, the FHIR directory under /fhir,
// web authentication under /api/auth. One app builder serves the plain HTTP listener and the
// HTTPS one (listen.https; client certificates requested, not required, so a CPS card can log
// in). /api/auth answers only over TLS: on plain HTTP every /api/auth request gets 403 before
// its body is read. Errors are RFC 9457 problem+json under /api and FHIR OperationOutcome under /fhir.
import Fastify, { LogController, type FastifyInstance, type FastifyRequest, type RouteOptions } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import type { ConnectionLimiter } from '../net/limits.js';
import type { Logger } from 'pino';
import { FhirError } from '../directory/fhir.js';
import { DirectoryError } from '../directory/service.js';
import { serverTlsOptions } from '../pki/tls-server.js';
import { addSecurityHeaders } from './security-headers.js';
import { registerDirectoryRoutes, type DirectoryRoutesOptions } from './directory-routes.js';
import { HttpProblem, PROBLEM_JSON, sendOutcome, sendProblem } from './problem.js';
import { registerAuthRoutes, type AuthRoutesOptions } from './auth-routes.js';
import { registerOpenApi } from './openapi.js';
import { AuthProblem, registerSessions, SessionManager } from './session.js';
import { registerOidcRoutes, type OidcRoutesOptions } from './oidc-routes.js';
import { registerAbsenceRoutes, type AbsenceRoutesOptions } from './absence-routes.js';
import { registerComposeRoutes, type ComposeRoutesOptions } from './compose-routes.js';
import { registerWebmailAssets } from './webmail-assets.js';
import { registerMailRoutes, type MailRoutesOptions } from './mail-routes.js';
import { registerEventsRoutes, type EventsRoutesOptions } from './events-routes.js';
import { registerSoftwareRoutes, type SoftwareRoutesOptions } from './software-routes.js';
import { ApiSender } from './sending.js';
import { registerAutoconfigRoutes, type ClientSettings } from './autoconfig.js';

export { HttpProblem };

const isFhir = (req: FastifyRequest) => req.url === '/fhir' || req.url.startsWith('/fhir/') || req.url.startsWith('/fhir?');

const TITLES: Record<number, string> = { 400: 'Bad Request', 404: 'Not Found', 406: 'Not Acceptable', 413: 'Payload Too Large', 415: 'Unsupported Media Type', 500: 'Internal Server Error' };

/** Web authentication: sessions, login routes, app passwords (docs/authentication.md). */
export interface WebAuthOptions extends Omit<AuthRoutesOptions, 'sessions' | 'store'> {
  /** What the login routes, the session manager and the OpenID routes use of the store. */
  store: AuthRoutesOptions['store'] & SessionManager['store'] & OidcRoutesOptions['store'];
  session: { idleMs: number; maxMs: number };
  /** Public base URL (https://…): our origin for the Origin check; default: https://<Host>. */
  publicUrl?: string;
  /** OpenID Connect web login (Pro Santé Connect), when auth.oidc is configured. */
  oidc?: Pick<OidcRoutesOptions, 'settings' | 'logger'>;
  /** Absence messages (golden rule 3), /api/v1/mailboxes/:address/absence. */
  absence?: AbsenceRoutesOptions;
  /** Golden rule 4: the composer's check before sending, POST /api/v1/compose/check. */
  compose?: ComposeRoutesOptions;
  /** The mail API /api/v1 (docs/mail-api.md) and its event stream; `software`: the software API (docs/software-api.md). */
  mail?: Omit<MailRoutesOptions, 'auth' | 'sender'> & {
    events?: Pick<EventsRoutesOptions, 'history' | 'keepaliveMs'>;
    software?: Omit<SoftwareRoutesOptions, 'auth' | 'core' | 'mail' | 'sender' | 'maxMessageSize'>;
  };
}

export interface HttpOptions {
  host: string;
  port: number;
  logger: Logger;
  directory?: DirectoryRoutesOptions;
  web?: WebAuthOptions;
  /** Serve HTTPS with this key and certificate; `ca`: the CAs client certificates are asked from. */
  https?: { key: string; cert: string; ca: string };
  /** Autoconfiguration for mail software (Thunderbird, Autodiscover; docs/lps.md): no secret, both listeners. */
  autoconfig?: ClientSettings | (() => ClientSettings);
  /** The webmail's build output (docs/webmail.md), served at / of the HTTPS listener only. */
  webmail?: { dir: string };
  /** Called for every route registered (tests: the OpenAPI document must describe every one). */
  onRoute?: (route: RouteOptions) => void;
  /** Open connections per client address and in all (issue 13); beyond, the socket is closed at once. */
  limiter?: ConnectionLimiter;
}

export interface HttpServer {
  app: FastifyInstance;
  port: number;
  close(): Promise<void>;
}

const isAuthPath = (url: string) => url === '/api/auth' || url.startsWith('/api/auth/') || url.startsWith('/api/auth?');
const isMailApiPath = (url: string) => url.startsWith('/api/v1/');

export function buildHttpApp(opts: Omit<HttpOptions, 'host' | 'port'>): FastifyInstance {
  const app = Fastify({
    loggerInstance: opts.logger.child({ component: 'http' }) as any,
    // One debug line per request below instead of Fastify's, without the query (it may hold names).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    // Client certificates are asked for, not required: the handshake succeeds without one and
    // POST /api/auth/certificate judges whatever was presented (trust service: chain, CRL, EKU).
    ...(opts.https ? { https: { key: opts.https.key, cert: opts.https.cert, ca: opts.https.ca, requestCert: true, rejectUnauthorized: false, ...serverTlsOptions } } : {}),
  }) as unknown as FastifyInstance;
  if (opts.onRoute) app.addHook('onRoute', opts.onRoute);
  if (opts.https) addSecurityHeaders(app); // HSTS, CSP, nosniff, frame ban (security-headers.ts)
  // Credentials never travel in clear: /api/auth over plain HTTP is refused before the body is read.
  app.addHook('onRequest', async (req) => {
    if ((isAuthPath(req.url) || isMailApiPath(req.url)) && !(req.raw.socket as TLSSocket).encrypted)
      throw new AuthProblem(403, 'https-required', 'Connexion refusée : utilisez l’adresse https:// de la messagerie. Les identifiants ne sont jamais acceptés sans chiffrement.', {}, {}, 'HTTPS required');
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
    } else if (err instanceof AuthProblem) {
      for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
      return reply
        .code(err.status)
        .type(PROBLEM_JSON)
        .send({ type: 'about:blank', title: err.title, status: err.status, detail: err.message, code: err.code, ...err.extra, instance: req.url.split('?')[0] });
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
    if (isAuthPath(req.url) && status === 415)
      return reply
        .code(415)
        .type(PROBLEM_JSON)
        .send({ type: 'about:blank', title: TITLES[415], status, detail: 'Cette requête doit être envoyée en JSON (Content-Type: application/json).', code: 'json-required', instance: req.url.split('?')[0] });
    if (isAuthPath(req.url) && status < 500)
      return reply
        .code(status)
        .type(PROBLEM_JSON)
        .send({ type: 'about:blank', title: TITLES[status] ?? 'Error', status, detail: `Requête invalide : ${message}`, code: 'invalid-request', instance: req.url.split('?')[0] });
    return sendProblem(reply, status, err instanceof HttpProblem ? err.title : (TITLES[status] ?? 'Error'), message, req.url.split('?')[0]);
  });

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0];
    if (isFhir(req)) return sendOutcome(reply, 404, 'not-found', `no FHIR endpoint ${req.method} ${path}: see /fhir/metadata`);
    return sendProblem(reply, 404, 'Not Found', `no endpoint ${req.method} ${path}`, path);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  if (opts.directory) registerDirectoryRoutes(app, opts.directory);
  if (opts.autoconfig) registerAutoconfigRoutes(app, opts.autoconfig);
  if (opts.web) {
    const w = opts.web;
    app.register(fastifyCookie);
    const sessions = new SessionManager(w.store, w.session);
    registerSessions(app, sessions, { publicUrl: w.publicUrl });
    registerAuthRoutes(app, { auth: w.auth, store: w.store, sessions, totpIssuer: w.totpIssuer, lockoutSeconds: w.lockoutSeconds });
    if (w.oidc) registerOidcRoutes(app, { ...w.oidc, auth: w.auth, store: w.store, sessions, publicUrl: w.publicUrl });
    if (w.absence) registerAbsenceRoutes(app, w.absence);
    if (w.compose) registerComposeRoutes(app, w.compose);
    if (w.mail) {
      const { events, software, ...mail } = w.mail;
      // One sending path for POST /submissions and POST /documents (http/sending.ts).
      const sender = new ApiSender({ mail: mail.mail, pipeline: mail.pipeline, blobs: mail.blobs, maxMessageSize: mail.maxMessageSize });
      registerMailRoutes(app, { ...mail, auth: w.auth, sender });
      if (software) registerSoftwareRoutes(app, { ...software, auth: w.auth, core: mail.core, mail: mail.mail, sender, maxMessageSize: mail.maxMessageSize });
      registerEventsRoutes(app, { auth: w.auth, core: mail.core, ...events });
    }
  }
  registerOpenApi(app, { oidc: !!opts.web?.oidc, mail: !!opts.web?.mail });
  // The webmail needs the session cookie (Secure): HTTPS only, like /api/auth.
  if (opts.https && opts.webmail) registerWebmailAssets(app, { dir: opts.webmail.dir, logger: opts.logger });
  return app;
}

/** Builds the app and listens on host:port (0 = any free port), HTTPS when `opts.https` is given. */
export async function startHttpServer(opts: HttpOptions): Promise<HttpServer> {
  const app = buildHttpApp(opts);
  try {
    await app.listen({ host: opts.host, port: opts.port });
  } catch (e: any) {
    await app.close().catch(() => {});
    const setting = opts.https ? 'listen.https' : 'listen.http';
    const hint = e.code === 'EADDRINUSE' ? ` (port already in use: choose another in ${setting})` : '';
    throw Object.assign(new Error(`cannot listen for ${opts.https ? 'HTTPS' : 'HTTP'} on ${opts.host}:${opts.port}: ${e.code ?? e.message}${hint}`), { code: e.code });
  }
  // Slowloris: the request line and headers must arrive within 20 s (Node's default is 60 s;
  // no whole-request timeout: uploads may be slow, and /api/v1/events streams for hours).
  app.server.headersTimeout = 20_000;
  if (opts.limiter) {
    const limiter = opts.limiter;
    // Counted at the TCP connection, before any TLS work: beyond a limit there is no HTTP to
    // answer in yet, so the socket is closed (a browser retries; a client sees a reset).
    app.server.prependListener('connection', (socket: Socket) => {
      const a = limiter.admit(socket.remoteAddress);
      if (a.ok) return void socket.once('close', a.release);
      opts.logger.warn({ component: 'http', remote: socket.remoteAddress, reason: a.reason, limit: a.limit }, 'connection refused: limit reached');
      socket.destroy();
    });
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
