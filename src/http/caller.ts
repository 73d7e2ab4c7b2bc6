// Who calls /api/v1 (docs/mail-api.md §Authentication): one `requireCaller(req)` for every route.
// Three ways, tried in this order:
//  1. `Authorization: Bearer <access token>` (Pro Santé Connect or the configured OpenID
//     provider), validated by the shared Authenticator exactly as IMAP's OAUTHBEARER (RFC 7628)
//     validates it: the professional is found by the token's RPPS. RFC 6750 §3: a refused token
//     answers 401 with `WWW-Authenticate: Bearer error="invalid_token"`.
//  2. The web session cookie (http/session.ts); the CSRF header and the Origin check on
//     state-changing requests are enforced by the session hooks registered in session.ts.
//  3. The TLS client certificate presented in the handshake (CPS card, organisation
//     certificate), judged by the Authenticator as SASL EXTERNAL (RFC 4422 appendix A) is:
//     trust service (chain, CRL, EKU), then the RPPS or the structure's application account.
//     The result is kept per TLS connection, so a keep-alive connection is judged once.
// A browser may present a CPS card on its own: a cross-site request then carries the card
// without the user's intent, so state-changing requests authenticated by certificate are refused
// when they carry an Origin other than ours (the session.ts onRequest hook) — browsers always
// send Origin on cross-origin POST/PUT/PATCH/DELETE.
// HTTPS only: over plain HTTP every /api/v1 request is refused (403 https-required).
import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import type { Authenticator, AuthContext, AuthResult } from '../auth/index.js';
import type { User } from '../model/index.js';
import { peerCertificateChain } from '../trust/index.js';
import { AuthProblem, NOT_AUTHENTICATED, requireSession, SESSION_COOKIE } from './session.js';

export type CallerMethod = 'session' | 'bearer' | 'certificate';

export interface Caller {
  user: User;
  method: CallerMethod;
}

declare module 'fastify' {
  interface FastifyRequest {
    caduceeCaller?: Caller;
  }
}

/** The judged certificate of a TLS connection (its chain cannot change without a new handshake: renegotiation is off). */
const byConnection = new WeakMap<object, AuthResult>();

export function requireHttps(req: FastifyRequest): void {
  if (!(req.raw.socket as TLSSocket).encrypted)
    throw new AuthProblem(403, 'https-required', 'Connexion refusée : utilisez l’adresse https:// de la messagerie.', {}, {}, 'HTTPS required');
}

const ctx = (req: FastifyRequest, method: string): AuthContext => ({ protocol: 'http', method, remote: req.ip ?? null });

/** The authenticated caller of an /api/v1 request, or a 401/403 problem. */
export async function requireCaller(req: FastifyRequest, auth: Authenticator): Promise<Caller> {
  if (req.caduceeCaller) return req.caduceeCaller;
  requireHttps(req);
  const authorization = req.headers.authorization;
  if (typeof authorization === 'string' && authorization.length) {
    // RFC 6750 §2.1: "Bearer" b64token (case-insensitive scheme).
    const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(authorization.trim());
    if (!m)
      throw new AuthProblem(401, 'not-authenticated', 'En-tête Authorization non reconnu : utilisez « Bearer <jeton d’accès> ».', {}, { 'www-authenticate': 'Bearer error="invalid_request"' });
    const r = await auth.bearer(m[1]!, null, ctx(req, 'BEARER'));
    if (!r.ok) {
      if (r.reason === 'unavailable') throw new AuthProblem(503, 'temporary', 'Le fournisseur d’identité (Pro Santé Connect) ne répond pas : réessayez dans un instant.');
      if (r.reason === 'locked') throw new AuthProblem(429, 'locked', 'Trop de tentatives de connexion échouées : réessayez plus tard.');
      throw new AuthProblem(401, 'not-authenticated', 'Jeton d’accès refusé (expiré, invalide ou sans compte associé).', {}, { 'www-authenticate': 'Bearer error="invalid_token"' });
    }
    return (req.caduceeCaller = { user: r.user, method: 'bearer' });
  }
  if (req.cookies?.[SESSION_COOKIE]) {
    const { user } = await requireSession(req);
    return (req.caduceeCaller = { user, method: 'session' });
  }
  const socket = req.raw.socket as TLSSocket;
  const chain = peerCertificateChain(socket);
  if (chain.length) {
    let r = byConnection.get(socket);
    if (!r) {
      r = await auth.certificate(chain, null, ctx(req, 'CERTIFICATE'));
      // A lockout or a temporary failure is not remembered for the connection.
      if (r.ok || (r.reason !== 'locked' && r.reason !== 'unavailable')) byConnection.set(socket, r);
    }
    if (!r.ok) throw new AuthProblem(401, 'not-authenticated', 'Certificat client refusé (inconnu, révoqué ou hors de l’espace de confiance MSSanté).', { reason: r.reason });
    return (req.caduceeCaller = { user: r.user, method: 'certificate' });
  }
  throw NOT_AUTHENTICATED();
}
