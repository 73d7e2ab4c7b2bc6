// Web authentication (HTTPS only): password then TOTP (enrolled at the first login), TLS
// client certificate (CPS-like), sessions and app passwords for mail clients. Every attempt
// goes through the shared Authenticator (audit trail, lockout). Errors are problem+json with a
// French `detail` (shown to health professionals by the webmail) and a stable machine `code`.
// See docs/authentication.md.
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AdminContext, Authenticator, AuthContext, AuthFailureReason } from '../auth/index.js';
import type { HttpSession, User } from '../model/index.js';
import type { CredentialStore, HttpSessionStore } from '../store/types.js';
import { peerCertificateChain } from '../trust/index.js';
import { AuthProblem, MAX_PENDING_FAILURES, requirePending, requireSession, type CurrentSession, type SessionManager } from './session.js';

export interface AuthRoutesOptions {
  auth: Authenticator;
  store: CredentialStore & HttpSessionStore;
  sessions: SessionManager;
  /** otpauth:// issuer shown in authenticator apps (auth.totpIssuer). */
  totpIssuer: string;
  /** Retry-After (seconds) when a login is locked out: the lockout window. */
  lockoutSeconds: number;
}

const ctx = (req: FastifyRequest, method: string): AuthContext => ({ protocol: 'http', method, remote: req.ip ?? null });
/** On the web, a user manages their own credentials. */
const selfService = (req: FastifyRequest, user: User): AdminContext => ({ protocol: 'http', actor: user.login, remote: req.ip ?? null });

/** Login endpoints take JSON only: a cross-site HTML form cannot send it without a CORS preflight. */
function requireJson(req: FastifyRequest) {
  const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new AuthProblem(415, 'json-required', 'Cette requête doit être envoyée en JSON (Content-Type: application/json).');
}

function stringField(body: unknown, name: string, max: number): string {
  const v = body && typeof body === 'object' ? (body as Record<string, unknown>)[name] : undefined;
  if (typeof v !== 'string' || v.length === 0) throw new AuthProblem(400, 'invalid-request', `Le champ « ${name} » est obligatoire.`, { field: name });
  if (v.length > max) throw new AuthProblem(400, 'invalid-request', `Le champ « ${name} » est trop long.`, { field: name });
  return v;
}

const BAD_CREDENTIALS = () => new AuthProblem(401, 'bad-credentials', 'Identifiant ou mot de passe incorrect.');

function locked(o: AuthRoutesOptions) {
  return new AuthProblem(
    429,
    'locked',
    `Trop de tentatives de connexion échouées : la connexion est bloquée pendant ${Math.ceil(o.lockoutSeconds / 60)} minutes. Réessayez plus tard.`,
    {},
    { 'retry-after': String(o.lockoutSeconds) },
  );
}

function codeRefused(reason: AuthFailureReason) {
  if (reason === 'replayed-code')
    return new AuthProblem(401, 'replayed-code', 'Ce code a déjà été utilisé : attendez le code suivant de votre application d’authentification (30 secondes).');
  return new AuthProblem(401, 'bad-code', 'Code incorrect : saisissez le code à 6 chiffres affiché par votre application d’authentification, ou un code de secours.');
}

const iso = (ms: number) => new Date(ms).toISOString();

/** What a full session tells the webmail. */
function fullBody(s: HttpSession, user: User, sessions: SessionManager) {
  return {
    stage: 'full' as const,
    user: { login: user.login, displayName: user.displayName },
    method: s.method,
    csrfToken: s.csrfToken,
    expiresAt: iso(s.expiresAt),
    idleExpiresAt: iso(sessions.idleDeadline(s)),
  };
}

/** French text for each class of certificate refusal (reason from the Authenticator / trust service). */
const CERTIFICATE_REFUSALS: Record<string, string> = {
  'no-certificate': 'Aucun certificat n’a été présenté : insérez votre carte CPS (ou choisissez votre certificat) puis réessayez.',
  untrusted: 'Ce certificat n’est pas émis par une autorité de l’IGC-Santé reconnue par cet opérateur.',
  expired: 'Ce certificat est expiré ou pas encore valide.',
  revoked: 'Ce certificat a été révoqué.',
  'not-client-auth': 'Ce certificat ne permet pas l’authentification d’un utilisateur.',
  'unrecognised-subject': 'Ce certificat n’identifie ni un professionnel (RPPS) ni une structure (FINESS, SIRET).',
  'unknown-identifier': 'Ce certificat est valide, mais aucun compte de cet opérateur ne correspond à son titulaire.',
  disabled: 'Le compte correspondant à ce certificat est désactivé.',
  'identity-mismatch': 'Ce certificat ne correspond pas au compte demandé.',
  'not-configured': 'La connexion par certificat n’est pas disponible sur ce serveur.',
};

/** Wrong codes per pending session: after MAX_PENDING_FAILURES the pending login is revoked. */
async function pendingFailure(o: AuthRoutesOptions, pendingFailures: Map<number, number>, cur: CurrentSession, reply: FastifyReply) {
  const n = (pendingFailures.get(cur.session.id) ?? 0) + 1;
  pendingFailures.set(cur.session.id, n);
  if (n < MAX_PENDING_FAILURES) return;
  pendingFailures.delete(cur.session.id);
  await o.store.revokeHttpSession(cur.user.id, cur.session.id);
  o.sessions.clearCookie(reply);
  throw new AuthProblem(401, 'too-many-codes', 'Trop de codes incorrects : recommencez la connexion avec votre identifiant et votre mot de passe.');
}

export function registerAuthRoutes(app: FastifyInstance, o: AuthRoutesOptions) {
  const { auth, store, sessions } = o;
  // Per app (one store): session ids are only unique within a store. Entries go when the
  // pending login succeeds or is revoked; an abandoned one is a few bytes until restart.
  const pendingFailures = new Map<number, number>();

  // ---- password, then TOTP ---------------------------------------------------------------
  app.post('/api/auth/login', async (req, reply) => {
    requireJson(req);
    const login = stringField(req.body, 'login', 200).trim();
    const password = stringField(req.body, 'password', 1000);
    const r = await auth.password(login, password, ctx(req, 'PASSWORD'));
    if (!r.ok) {
      if (r.reason === 'locked') throw locked(o);
      // Unknown login, wrong password, disabled account, no password: one answer (non-revealing).
      throw BAD_CREDENTIALS();
    }
    // A new login replaces whatever session this browser had.
    await sessions.close(reply, req);
    const totp = await store.getTotp(r.user.id);
    if (totp?.confirmedAt) {
      await sessions.open(reply, req, r.user, 'PASSWORD', 'second-factor');
      return { stage: 'second-factor' };
    }
    // The web never opens on a password alone: enrolling a second factor is part of the first login.
    const enrolment = await auth.beginTotpEnrolment(r.user, o.totpIssuer);
    await sessions.open(reply, req, r.user, 'PASSWORD', 'enrol-second-factor');
    return { stage: 'enrol-second-factor', totp: enrolment };
  });

  app.post('/api/auth/second-factor', async (req, reply) => {
    requireJson(req);
    const cur = await requirePending(req, 'second-factor');
    const code = stringField(req.body, 'code', 50);
    const isTotp = /^\d{6}$/.test(code.replace(/\s+/g, ''));
    const r = await auth.secondFactor(cur.user, code, ctx(req, isTotp ? 'TOTP' : 'RECOVERY-CODE'));
    if (!r.ok) {
      if (r.reason === 'locked') throw locked(o);
      await pendingFailure(o, pendingFailures, cur, reply);
      throw codeRefused(r.reason);
    }
    pendingFailures.delete(cur.session.id);
    const s = await sessions.promote(reply, req, cur, isTotp ? 'PASSWORD+TOTP' : 'PASSWORD+RECOVERY-CODE');
    const remaining = isTotp ? undefined : await store.remainingRecoveryCodes(cur.user.id);
    return { ...fullBody(s, cur.user, sessions), ...(remaining !== undefined ? { recoveryCodesLeft: remaining } : {}) };
  });

  app.post('/api/auth/second-factor/enrol', async (req, reply) => {
    requireJson(req);
    const cur = await requirePending(req, 'enrol-second-factor');
    const code = stringField(req.body, 'code', 50);
    const recoveryCodes = await auth.confirmTotpEnrolment(cur.user, code, ctx(req, 'TOTP-ENROL'));
    if (!recoveryCodes) {
      await pendingFailure(o, pendingFailures, cur, reply);
      throw new AuthProblem(401, 'bad-code', 'Code incorrect : vérifiez que votre application d’authentification a bien enregistré le compte et saisissez le code à 6 chiffres affiché.');
    }
    pendingFailures.delete(cur.session.id);
    const s = await sessions.promote(reply, req, cur, 'PASSWORD+TOTP');
    // Shown once: only their digests are kept.
    return { ...fullBody(s, cur.user, sessions), recoveryCodes };
  });

  // ---- TLS client certificate (CPS card, organisation certificate) ------------------------
  app.post('/api/auth/certificate', async (req, reply) => {
    requireJson(req);
    const chain = peerCertificateChain(req.raw.socket as TLSSocket);
    const r = await auth.certificate(chain, null, ctx(req, 'CERTIFICATE'));
    if (!r.ok) {
      if (r.reason === 'locked') throw locked(o);
      // bad-certificate carries the trust service's class first ("revoked: …").
      const cls = r.reason === 'bad-certificate' ? (chain.length ? (r.detail?.split(':')[0] ?? 'untrusted') : 'no-certificate') : r.reason;
      throw new AuthProblem(401, 'certificate-refused', CERTIFICATE_REFUSALS[cls] ?? CERTIFICATE_REFUSALS.untrusted!, { reason: cls });
    }
    await sessions.close(reply, req);
    // A CPS card is itself two factors (possession of the card, knowledge of its PIN).
    const s = await sessions.open(reply, req, r.user, 'CERTIFICATE', 'full');
    return fullBody(s, r.user, sessions);
  });

  // ---- the session -------------------------------------------------------------------------
  app.get('/api/auth/session', async (req) => {
    const cur = await sessions.current(req);
    if (!cur) throw new AuthProblem(401, 'not-authenticated', 'Vous n’êtes pas connecté, ou votre session a expiré : veuillez vous reconnecter.');
    if (cur.session.stage !== 'full') return { stage: cur.session.stage, expiresAt: iso(cur.session.expiresAt) };
    return fullBody(cur.session, cur.user, sessions);
  });

  app.post('/api/auth/logout', async (req, reply) => {
    await sessions.close(reply, req);
    return reply.code(204).send();
  });

  app.get('/api/auth/sessions', async (req) => {
    const { session, user } = await requireSession(req);
    const now = Date.now();
    const list = (await store.listHttpSessions(user.id, now)).filter((s) => s.stage === 'full' && sessions.idleDeadline(s) > now);
    return {
      sessions: list.map((s) => ({
        id: s.id,
        method: s.method,
        createdAt: iso(s.createdAt),
        lastSeenAt: iso(s.lastSeenAt),
        expiresAt: iso(s.expiresAt),
        remote: s.remote,
        userAgent: s.userAgent,
        current: s.id === session.id,
      })),
    };
  });

  app.delete('/api/auth/sessions/:id', async (req, reply) => {
    const { session, user } = await requireSession(req);
    const id = Number((req.params as { id: string }).id);
    if (!Number.isSafeInteger(id) || !(await store.revokeHttpSession(user.id, id))) throw new AuthProblem(404, 'not-found', 'Aucune session ouverte ne porte ce numéro.');
    if (id === session.id) sessions.clearCookie(reply);
    return reply.code(204).send();
  });

  // ---- app passwords (mail clients) ----------------------------------------------------------
  app.get('/api/auth/app-passwords', async (req) => {
    const { user } = await requireSession(req);
    const list = await auth.listAppPasswords(user, selfService(req, user));
    return {
      appPasswords: list
        .filter((a) => !a.revokedAt)
        .map((a) => ({ id: a.id, label: a.label, createdAt: a.createdAt, lastUsedAt: a.lastUsedAt, lastUsedFrom: a.lastUsedFrom })),
    };
  });

  app.post('/api/auth/app-passwords', async (req, reply) => {
    requireJson(req);
    const { user } = await requireSession(req);
    const label = stringField(req.body, 'label', 100).trim();
    if (!label || /[\x00-\x1f\x7f]/.test(label))
      throw new AuthProblem(400, 'invalid-request', 'Donnez un nom à ce mot de passe d’application (1 à 100 caractères, par exemple le nom de l’appareil).', { field: 'label' });
    const { appPassword, password } = await auth.createAppPassword(user, label, selfService(req, user));
    // The clear value is returned once and never stored.
    return reply.code(201).send({ id: appPassword.id, label: appPassword.label, createdAt: appPassword.createdAt, password });
  });

  app.delete('/api/auth/app-passwords/:id', async (req, reply) => {
    const { user } = await requireSession(req);
    const id = Number((req.params as { id: string }).id);
    if (!Number.isSafeInteger(id) || !(await auth.revokeAppPassword(user, id, selfService(req, user))))
      throw new AuthProblem(404, 'not-found', 'Aucun mot de passe d’application actif ne porte ce numéro.');
    return reply.code(204).send();
  });
}
