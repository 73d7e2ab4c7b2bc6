// Web sessions (HTTPS only). A session is a random 32-byte token in the cookie
// `__Host-caducee_session` (Secure, HttpOnly, SameSite=Strict, Path=/); the store keeps only its
// SHA-256. A login first opens a *pending* session (stage 'second-factor' or
// 'enrol-second-factor', 10 minutes at most) that opens nothing but the second-factor routes;
// when both factors are done a new *full* session replaces it (new token, new CSRF token: no
// session fixation). Full sessions end after `auth.session.idleMinutes` without a request and
// `auth.session.maxHours` after the login, whichever comes first.
//
// CSRF: state-changing requests (POST, PUT, PATCH, DELETE) made with a full session carry the
// header X-CSRF-Token equal to the session's csrfToken; a request whose Origin header names
// another origin is refused whatever it carries; the login endpoints take JSON only (a
// cross-site HTML form cannot send application/json without a CORS preflight, which we never
// grant).
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sameSecret, secretDigest } from '../auth/index.js';
import type { HttpSession, User } from '../model/index.js';
import type { AccountStore, HttpSessionStore } from '../store/types.js';
import { HttpProblem } from './problem.js';

export const SESSION_COOKIE = '__Host-caducee_session';
export const CSRF_HEADER = 'x-csrf-token';
/** A pending session (between the password and the second factor) lives this long at most. */
export const PENDING_SESSION_MS = 10 * 60_000;
/** Wrong second-factor codes allowed on one pending session; then it is revoked (start again). */
export const MAX_PENDING_FAILURES = 5;

/**
 * An /api failure with a stable machine `code` (and optional response headers) on top of the
 * RFC 9457 fields. `detail` is French: the webmail shows it to health professionals.
 */
export class AuthProblem extends HttpProblem {
  constructor(
    status: number,
    readonly code: string,
    detail: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
    title?: string,
  ) {
    super(status, title ?? TITLES[status] ?? 'Error', detail);
  }
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

export const NOT_AUTHENTICATED = () => new AuthProblem(401, 'not-authenticated', 'Vous n’êtes pas connecté, ou votre session a expiré : veuillez vous reconnecter.');

export interface SessionPolicy {
  idleMs: number;
  maxMs: number;
}

export interface CurrentSession {
  session: HttpSession;
  user: User;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The session named by the cookie, valid (any stage), resolved once per request; null: none. */
    caduceeSession?: CurrentSession | null;
  }
  interface FastifyInstance {
    sessions: SessionManager;
  }
}

const isStateChanging = (method: string) => method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'DELETE';

export class SessionManager {
  constructor(
    readonly store: HttpSessionStore & Pick<AccountStore, 'getUser'>,
    readonly policy: SessionPolicy,
    private readonly now: () => number = Date.now,
  ) {}

  /** Opens a session and sets its cookie. Pending stages live 10 minutes at most. */
  async open(reply: FastifyReply, req: FastifyRequest, user: User, method: string, stage: HttpSession['stage']): Promise<HttpSession> {
    const t = this.now();
    const token = randomBytes(32).toString('base64url');
    const lifetime = stage === 'full' ? this.policy.maxMs : Math.min(PENDING_SESSION_MS, this.policy.maxMs);
    const session = await this.store.createHttpSession({
      tokenHash: secretDigest(token),
      userId: user.id,
      method,
      stage,
      csrfToken: randomBytes(32).toString('base64url'),
      createdAt: t,
      lastSeenAt: t,
      expiresAt: t + lifetime,
      remote: req.ip ?? null,
      userAgent: typeof req.headers['user-agent'] === 'string' ? req.headers['user-agent'].slice(0, 300) : null,
    });
    reply.setCookie(SESSION_COOKIE, token, { path: '/', secure: true, httpOnly: true, sameSite: 'strict', maxAge: Math.floor(lifetime / 1000) });
    req.caduceeSession = { session, user };
    return session;
  }

  /**
   * Replaces the request's session by a new full one (new token and CSRF token) and revokes the
   * old: the stage change never keeps a token an attacker could have planted or seen.
   */
  async promote(reply: FastifyReply, req: FastifyRequest, current: CurrentSession, method: string): Promise<HttpSession> {
    await this.store.revokeHttpSession(current.user.id, current.session.id);
    return this.open(reply, req, current.user, method, 'full');
  }

  /** Revokes the request's session (if any) and clears the cookie. */
  async close(reply: FastifyReply, req: FastifyRequest): Promise<void> {
    const cur = await this.current(req);
    if (cur) await this.store.revokeHttpSession(cur.user.id, cur.session.id);
    req.caduceeSession = null;
    this.clearCookie(reply);
  }

  clearCookie(reply: FastifyReply) {
    reply.clearCookie(SESSION_COOKIE, { path: '/', secure: true, httpOnly: true, sameSite: 'strict' });
  }

  /** When a full session stops being valid if no request comes (idle) — never after expiresAt. */
  idleDeadline(s: HttpSession): number {
    return Math.min(s.expiresAt, s.lastSeenAt + this.policy.idleMs);
  }

  /**
   * The valid session named by the request's cookie (any stage), or null. Expired sessions
   * (absolute or idle) are revoked on sight. Touches lastSeenAt.
   */
  async current(req: FastifyRequest): Promise<CurrentSession | null> {
    if (req.caduceeSession !== undefined) return req.caduceeSession;
    req.caduceeSession = null;
    const token = req.cookies?.[SESSION_COOKIE];
    if (!token || token.length > 100) return null;
    const session = await this.store.findHttpSession(secretDigest(token));
    if (!session) return null;
    const t = this.now();
    const idleOver = session.stage === 'full' && t >= session.lastSeenAt + this.policy.idleMs;
    if (t >= session.expiresAt || idleOver) {
      await this.store.revokeHttpSession(session.userId, session.id);
      return null;
    }
    const user = await this.store.getUser(session.userId);
    if (!user || user.state !== 'active') {
      await this.store.revokeHttpSession(session.userId, session.id);
      return null;
    }
    await this.store.touchHttpSession(session.id, t);
    session.lastSeenAt = t;
    req.caduceeSession = { session, user };
    return req.caduceeSession;
  }
}

/** The full session of the request, or HttpProblem 401. For every authenticated route (webmail…). */
export async function requireSession(req: FastifyRequest): Promise<CurrentSession> {
  const cur = await req.server.sessions.current(req);
  if (!cur || cur.session.stage !== 'full') throw NOT_AUTHENTICATED();
  return cur;
}

/** The pending session of the request in `stage`, or 401. */
export async function requirePending(req: FastifyRequest, stage: 'second-factor' | 'enrol-second-factor'): Promise<CurrentSession> {
  const cur = await req.server.sessions.current(req);
  if (!cur || cur.session.stage !== stage)
    throw new AuthProblem(401, 'no-pending-login', 'Aucune connexion en cours à cette étape (elle a peut-être expiré après 10 minutes) : saisissez à nouveau votre identifiant et votre mot de passe.');
  return cur;
}

/** Our own origin: the configured public URL, else https://<Host of the request>. */
export function ownOrigin(req: FastifyRequest, publicUrl?: string): string {
  if (publicUrl) return new URL(publicUrl).origin;
  return `https://${req.host}`;
}

/**
 * Installs cookie parsing, the session manager and the request guards on an HTTPS app:
 * foreign Origin refused on /api/auth and on every state-changing request; X-CSRF-Token
 * checked on state-changing requests made with a full session.
 */
export function registerSessions(app: FastifyInstance, sessions: SessionManager, opts: { publicUrl?: string }) {
  app.decorate('sessions', sessions);
  // Before the body is read.
  app.addHook('onRequest', async (req) => {
    const origin = req.headers.origin;
    if (origin === undefined || !(isStateChanging(req.method) || req.url.startsWith('/api/auth/'))) return;
    if (origin !== ownOrigin(req, opts.publicUrl)) throw new AuthProblem(403, 'foreign-origin', 'Requête refusée : elle provient d’un autre site que celui de la messagerie.');
  });
  // After the cookie is parsed (the session decides whether the header is needed).
  app.addHook('preHandler', async (req) => {
    if (!isStateChanging(req.method)) return;
    const cur = await sessions.current(req);
    if (cur?.session.stage !== 'full') return;
    const sent = req.headers[CSRF_HEADER];
    if (typeof sent !== 'string' || !sameSecret(sent, cur.session.csrfToken))
      throw new AuthProblem(403, 'csrf', 'Requête refusée : le jeton anti-falsification (en-tête X-CSRF-Token) est absent ou incorrect. Rechargez la page.');
  });
}
