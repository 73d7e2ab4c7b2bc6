// OpenID Connect web login (Pro Santé Connect, or any compliant provider), registered only when
// auth.oidc is configured. Authorization code flow with PKCE S256, state and nonce
// (openid-client v6). The transaction (verifier, state, nonce, where to land) stays on the
// server; the browser holds only its random id in the short-lived cookie __Host-caducee_oidc
// (SameSite=Lax, so the provider's redirect back — a cross-site top-level GET — carries it).
// The professional is found by the national identifier claim (PSC: preferred_username =
// "8" + RPPS), never by name or e-mail. PSC authenticates with e-CPS or a CPS card, so a
// session opened this way is full (no TOTP asked). See docs/authentication.md.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import * as client from 'openid-client';
import type { Logger } from 'pino';
import type { AuthResult, Authenticator } from '../auth/index.js';
import { nationalIdToRpps, type OidcSettings } from '../auth/oidc.js';
import type { AccountStore } from '../store/types.js';
import { AuthProblem, ownOrigin, type SessionManager } from './session.js';

export const OIDC_COOKIE = '__Host-caducee_oidc';
const TRANSACTION_MS = 10 * 60_000;
const MAX_TRANSACTIONS = 10_000;
const HTTP_TIMEOUT_SECONDS = 10;
const DISCOVERY_TTL_MS = 3600_000;

export interface OidcRoutesOptions {
  settings: OidcSettings;
  auth: Authenticator;
  store: Pick<AccountStore, 'findUserByRpps'>;
  sessions: SessionManager;
  publicUrl?: string;
  logger: Logger;
}

interface Transaction {
  codeVerifier: string;
  state: string;
  nonce: string;
  redirectUri: string;
  returnTo: string;
  expiresAt: number;
}

/** A path of this site: one leading "/", no scheme, no "//" or "/\" (open redirects), printable. */
export function safeReturnTo(v: unknown): string {
  if (typeof v !== 'string' || v.length > 1000) return '/';
  if (!/^\/(?![/\\])/.test(v) || /[\x00-\x20\x7f\\]/.test(v)) return '/';
  return v;
}

const unavailable = () =>
  new AuthProblem(502, 'oidc-unavailable', 'Le service d’identification (Pro Santé Connect) ne répond pas pour le moment. Réessayez dans quelques instants, ou connectez-vous autrement.');

export function registerOidcRoutes(app: FastifyInstance, o: OidcRoutesOptions) {
  const s = o.settings;
  const log = o.logger.child({ component: 'oidc-web' });
  const transactions = new Map<string, Transaction>();
  let discovered: { config: client.Configuration; at: number } | null = null;

  const configuration = async (): Promise<client.Configuration> => {
    if (discovered && Date.now() - discovered.at < DISCOVERY_TTL_MS) return discovered.config;
    try {
      const issuer = new URL(s.issuer);
      const config = await client.discovery(issuer, s.clientId, undefined, s.clientSecret ? client.ClientSecretBasic(s.clientSecret) : client.None(), {
        // http:// only for a loopback issuer explicitly allowed (resolveOidcSettings checked it).
        execute: issuer.protocol === 'http:' && s.allowInsecureLoopback ? [client.allowInsecureRequests] : [],
        timeout: HTTP_TIMEOUT_SECONDS,
      });
      discovered = { config, at: Date.now() };
      return config;
    } catch (err) {
      log.warn({ issuer: s.issuer, err: (err as Error).message }, 'OpenID provider discovery failed');
      if (discovered) return discovered.config;
      throw unavailable();
    }
  };

  const sweep = (now: number) => {
    for (const [id, t] of transactions) if (t.expiresAt <= now) transactions.delete(id);
  };

  app.get('/api/auth/oidc/login', async (req, reply) => {
    const config = await configuration();
    const now = Date.now();
    sweep(now);
    if (transactions.size >= MAX_TRANSACTIONS) throw new AuthProblem(503, 'busy', 'Trop de connexions en cours : réessayez dans quelques minutes.');
    const tx: Transaction = {
      codeVerifier: client.randomPKCECodeVerifier(),
      state: client.randomState(),
      nonce: client.randomNonce(),
      redirectUri: s.redirectUri ?? `${ownOrigin(req, o.publicUrl)}/api/auth/oidc/callback`,
      returnTo: safeReturnTo((req.query as Record<string, unknown>).returnTo),
      expiresAt: now + TRANSACTION_MS,
    };
    const id = randomBytes(32).toString('base64url');
    transactions.set(id, tx);
    const params: Record<string, string> = {
      redirect_uri: tx.redirectUri,
      scope: s.scopes.join(' '),
      code_challenge: await client.calculatePKCECodeChallenge(tx.codeVerifier),
      code_challenge_method: 'S256',
      state: tx.state,
      nonce: tx.nonce,
    };
    if (s.acrValues.length) params.acr_values = s.acrValues.join(' ');
    reply.setCookie(OIDC_COOKIE, id, { path: '/', secure: true, httpOnly: true, sameSite: 'lax', maxAge: TRANSACTION_MS / 1000 });
    return reply.redirect(client.buildAuthorizationUrl(config, params).href, 302);
  });

  app.get('/api/auth/oidc/callback', async (req, reply) => {
    const id = req.cookies?.[OIDC_COOKIE];
    const tx = id ? transactions.get(id) : undefined;
    if (id) transactions.delete(id); // single use, whatever happens next
    reply.clearCookie(OIDC_COOKIE, { path: '/', secure: true, httpOnly: true, sameSite: 'lax' });
    if (!tx || tx.expiresAt <= Date.now())
      throw new AuthProblem(400, 'oidc-invalid', 'Aucune connexion Pro Santé Connect n’est en cours dans ce navigateur (ou elle a expiré) : recommencez la connexion.');
    const config = await configuration();
    const current = new URL(tx.redirectUri);
    current.search = new URL(req.url, 'https://callback.invalid').search;

    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      tokens = await client.authorizationCodeGrant(
        config,
        current,
        { pkceCodeVerifier: tx.codeVerifier, expectedState: tx.state, expectedNonce: tx.nonce, idTokenExpected: true },
        { redirect_uri: tx.redirectUri },
      );
    } catch (err) {
      if (err instanceof client.AuthorizationResponseError) {
        log.info({ error: err.error }, 'OpenID provider refused the authorization');
        throw new AuthProblem(401, 'oidc-refused', 'La connexion a été annulée ou refusée par Pro Santé Connect.', { error: err.error });
      }
      const code = (err as { code?: unknown }).code;
      if (err instanceof client.ResponseBodyError || (typeof code === 'string' && code.startsWith('OAUTH_'))) {
        log.warn({ err: (err as Error).message }, 'OpenID callback failed its checks');
        throw new AuthProblem(400, 'oidc-invalid', 'La réponse de Pro Santé Connect n’a pas pu être vérifiée : recommencez la connexion.');
      }
      log.warn({ err: (err as Error).message }, 'OpenID token request failed');
      throw unavailable();
    }

    const claims: Record<string, unknown> = tokens.claims() ?? {};
    if (s.acrValues.length && (typeof claims.acr !== 'string' || !s.acrValues.includes(claims.acr)))
      throw new AuthProblem(403, 'insufficient-acr', 'Le niveau d’authentification Pro Santé Connect est insuffisant : connectez-vous avec votre carte CPS ou l’application e-CPS.');
    let raw: unknown = claims[s.identifierClaim];
    if (typeof raw !== 'string' && typeof claims.sub === 'string') {
      try {
        raw = (await client.fetchUserInfo(config, tokens.access_token, claims.sub))[s.identifierClaim];
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'userinfo request failed');
      }
    }
    const rpps = typeof raw === 'string' ? nationalIdToRpps(raw) : null;
    const user = rpps ? await o.store.findUserByRpps(rpps) : undefined;
    const result: AuthResult = !rpps
      ? { ok: false, reason: 'unknown-identifier', detail: `claim ${s.identifierClaim} holds no RPPS national identifier` }
      : !user
        ? { ok: false, reason: 'unknown-identifier', detail: `no account for RPPS ${rpps}` }
        : user.state !== 'active'
          ? { ok: false, reason: 'disabled' }
          : { ok: true, user };
    const r = await o.auth.recordOutcome(user?.login ?? (rpps ? `rpps:${rpps}` : 'oidc'), { protocol: 'http', method: 'OIDC', remote: req.ip ?? null }, result);
    if (!r.ok) {
      if (r.reason === 'locked') throw new AuthProblem(429, 'locked', 'Trop de tentatives de connexion échouées : réessayez plus tard.');
      if (r.reason === 'disabled') throw new AuthProblem(403, 'disabled', 'Votre compte de messagerie est désactivé : contactez votre administrateur.');
      throw new AuthProblem(
        403,
        'unknown-identifier',
        rpps
          ? `Votre identité a bien été vérifiée par Pro Santé Connect, mais aucun compte de messagerie de cet opérateur n’est rattaché à votre numéro RPPS (${rpps}). Contactez votre administrateur.`
          : 'Pro Santé Connect n’a pas transmis de numéro RPPS : la connexion à la messagerie est impossible.',
      );
    }
    await o.sessions.close(reply, req);
    await o.sessions.open(reply, req, r.user, 'OIDC', 'full');
    return reply.redirect(tx.returnTo, 302);
  });
}
