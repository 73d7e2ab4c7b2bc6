// A real OpenID provider (oidc-provider@8) standing in for Pro Santé Connect in the local demo
// and in tests. NEVER used by `caducee start`: production operators talk to the real PSC
// (config.auth.oidc.preset = 'psc').
//
// What it imitates from PSC (Keycloak realm "esante-wallet"):
//   - authorization code flow, PKCE S256 required (RFC 7636), acr_values=eidas1;
//   - access tokens are JWTs signed RS256 for one audience (RFC 8707 resource indicator,
//     RFC 9068 JWT profile), carrying `acr: "eidas1"` and `preferred_username: "8" + RPPS`
//     (the national identifier of a health professional, type 8 = RPPS);
//   - ID token and userinfo carry preferred_username, given_name, family_name;
//   - introspection (RFC 7662) and revocation (RFC 7009) endpoints.
// The login page is ours: French, server-rendered, no external asset; consent is automatic.
import http from 'node:http';
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, createLocalJWKSet, compactVerify, type JWK } from 'jose';
import type { Logger } from 'pino';
// oidc-provider@8 ships no type declarations (and @types/oidc-provider is not a dependency):
// the few members used here are typed by ProviderInstance below.
// @ts-ignore -- untyped module
import ProviderModule, { errors as oidcErrors } from 'oidc-provider';

export interface DemoOidcUser {
  /** 11-digit RPPS number. */
  rpps: string;
  givenName: string;
  familyName: string;
  login: string;
  password: string;
}

export interface DemoOidcClient {
  clientId: string;
  /** Absent: a public client (token endpoint auth "none", PKCE only). */
  clientSecret?: string;
  redirectUris: string[];
  /** Confidential clients: default client_secret_basic. */
  tokenEndpointAuthMethod?: 'client_secret_basic' | 'client_secret_post';
}

export interface DemoOidcProviderOptions {
  /** Default 127.0.0.1. Only loopback addresses are accepted. */
  host?: string;
  /** 0 = ephemeral. */
  port?: number;
  users: DemoOidcUser[];
  clients: DemoOidcClient[];
  /** `aud` of the access tokens (the resource server: the operator's IMAP/SMTP). */
  audience: string;
  /** Private signing keys (RS*, PS*, ES*); an RS256 key is generated when absent. */
  jwks?: { keys: JWK[] };
  accessTokenTtlSeconds?: number;
  /**
   * Accept a registered https://127.0.0.1 (or localhost, [::1]) redirect URI on any port, as
   * RFC 8252 §7.3 asks for loopback redirects: the demo operators' HTTPS ports are chosen by the
   * system when the demo runs on ephemeral ports, after the provider has started.
   */
  loopbackRedirectAnyPort?: boolean;
  logger?: Logger;
}

export interface DemoOidcProvider {
  issuer: string;
  port: number;
  /** Public half of the signing keys (what jwks_uri serves). */
  jwks: { keys: JWK[] };
  /** The resource indicator (RFC 8707) that maps to `audience`; `resource` parameter of requests. */
  resource: string;
  stop(): Promise<void>;
}

/** The acr PSC gives to a login with e-CPS or a CPS card (eIDAS substantial); our password login stands in for it. */
export const DEMO_ACR = 'eidas1';
const RESOURCE_SCOPES = 'scope_all';
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

// ---- the subset of oidc-provider's API used here ---------------------------------------
interface GrantInstance {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  addResourceScope(resource: string, scope: string): void;
  save(): Promise<string>;
}
interface InteractionDetails {
  uid: string;
  prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
  params: Record<string, unknown>;
  session?: { accountId?: string };
  grantId?: string;
}
interface ProviderInstance {
  callback(): (req: http.IncomingMessage, res: http.ServerResponse) => void;
  interactionDetails(req: http.IncomingMessage, res: http.ServerResponse): Promise<InteractionDetails>;
  interactionFinished(req: http.IncomingMessage, res: http.ServerResponse, result: object, opts?: { mergeWithLastSubmission?: boolean }): Promise<void>;
  Grant: { new (init: { accountId: string; clientId: string }): GrantInstance; find(id: string): Promise<GrantInstance | undefined> };
  on(event: string, listener: (...args: any[]) => void): void;
  // The client model (per provider instance); its redirectUriAllowed decides redirect URIs.
  Client: { prototype: { redirectUriAllowed(this: { redirectUris: string[] }, value: string): boolean } };
}
const Provider = ProviderModule as unknown as new (issuer: string, configuration: object) => ProviderInstance;

// ---- storage ---------------------------------------------------------------------------
// A per-provider in-memory adapter (oidc-provider's own MemoryAdapter is one LRU shared by
// every provider of the process). JWT access tokens are never stored by oidc-provider (their
// value is self-contained), so introspection and revocation could not find them: the JWT
// customizer records each one under its jti here, and find() of a JWT verifies its signature
// with our own keys before returning that record.
type Payload = Record<string, any>;
interface Entry { payload: Payload; expiresAt: number | null }

class Storage {
  readonly entries = new Map<string, Entry>();
  get(key: string): Payload | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt !== null && e.expiresAt <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.payload;
  }
  set(key: string, payload: Payload, expiresInSeconds?: number): void {
    this.entries.set(key, { payload, expiresAt: expiresInSeconds ? Date.now() + expiresInSeconds * 1000 : null });
  }
  delete(key: string): void {
    this.entries.delete(key);
  }
}

function adapterFactory(storage: Storage, verifyOwnJwt: (jwt: string) => Promise<string | null>) {
  return class DemoAdapter {
    constructor(private readonly model: string) {}
    private key(id: string): string {
      return `${this.model}:${id}`;
    }
    async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
      storage.set(this.key(id), payload, expiresIn);
      if (this.model === 'Session' && payload.uid) storage.set(`sessionUid:${payload.uid}`, { id }, expiresIn);
      if (payload.grantId) {
        const g = storage.get(`grant:${payload.grantId}`) ?? { keys: [] as string[] };
        g.keys.push(this.key(id));
        storage.set(`grant:${payload.grantId}`, g);
      }
      if (payload.userCode) storage.set(`userCode:${payload.userCode}`, { id }, expiresIn);
    }
    async find(id: string): Promise<Payload | undefined> {
      if (this.model === 'AccessToken' && id.split('.').length === 3) {
        const jti = await verifyOwnJwt(id);
        return jti ? storage.get(this.key(jti)) : undefined;
      }
      return storage.get(this.key(id));
    }
    async findByUid(uid: string): Promise<Payload | undefined> {
      const ref = storage.get(`sessionUid:${uid}`);
      return ref ? this.find(ref.id) : undefined;
    }
    async findByUserCode(userCode: string): Promise<Payload | undefined> {
      const ref = storage.get(`userCode:${userCode}`);
      return ref ? this.find(ref.id) : undefined;
    }
    async consume(id: string): Promise<void> {
      const p = storage.get(this.key(id));
      if (p) p.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string): Promise<void> {
      storage.delete(this.key(id));
    }
    async revokeByGrantId(grantId: string): Promise<void> {
      const g = storage.get(`grant:${grantId}`);
      for (const k of g?.keys ?? []) storage.delete(k);
      storage.delete(`grant:${grantId}`);
    }
  };
}

// ---- keys ------------------------------------------------------------------------------
const PUBLIC_MEMBERS: Record<string, string[]> = { RSA: ['kty', 'n', 'e'], EC: ['kty', 'crv', 'x', 'y'], OKP: ['kty', 'crv', 'x'] };

function publicJwk(k: JWK): JWK {
  const out: JWK = {};
  for (const m of PUBLIC_MEMBERS[k.kty ?? ''] ?? []) (out as any)[m] = (k as any)[m];
  for (const m of ['kid', 'alg', 'use'] as const) if (k[m] !== undefined) out[m] = k[m];
  return out;
}

/** An RS256 private signing key as a JWK, with a kid. */
export async function generateSigningJwk(kid: string = randomUUID()): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
}

// ---- HTML ------------------------------------------------------------------------------
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
body{font-family:system-ui,sans-serif;background:#f3f6fa;margin:0;color:#1b2a3a}
main{max-width:26rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}
h1{font-size:1.3rem;margin-top:0}label{display:block;margin:1rem 0 .3rem}
input{width:100%;padding:.5rem;box-sizing:border-box}button{margin-top:1.2rem;padding:.6rem 1.2rem}
.erreur{background:#fde8e8;color:#8a1010;padding:.6rem;border-radius:4px}.note{font-size:.85rem;color:#556}
</style></head><body><main>${body}</main></body></html>`;
}

function loginPage(uid: string, clientId: string, error?: string, identifier = ''): string {
  const u = encodeURIComponent(uid);
  return page(
    'Connexion — Pro Santé Connect (démonstration)',
    `<h1>Pro Santé Connect — démonstration</h1>
<p class="note">Fournisseur d'identité local qui tient lieu de Pro Santé Connect. Application : <strong>${escapeHtml(clientId)}</strong></p>
${error ? `<p class="erreur" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${u}/login" autocomplete="off">
<label for="identifiant">Identifiant ou numéro RPPS</label>
<input id="identifiant" name="identifiant" required value="${escapeHtml(identifier)}" autofocus>
<label for="motdepasse">Mot de passe</label>
<input id="motdepasse" name="motdepasse" type="password" required>
<button type="submit">Se connecter</button>
</form>
<form method="post" action="/interaction/${u}/abort"><button type="submit">Annuler</button></form>`,
  );
}

function send(res: http.ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    'x-frame-options': 'DENY',
  });
  res.end(html);
}

async function readForm(req: http.IncomingMessage, limit = 16 * 1024): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new Error('form too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// ---- the provider ----------------------------------------------------------------------
export async function startDemoOidcProvider(opts: DemoOidcProviderOptions): Promise<DemoOidcProvider> {
  const host = opts.host ?? '127.0.0.1';
  if (!LOOPBACK.has(host)) throw new Error(`the demo OpenID provider listens on loopback only, not ${host}`);
  for (const u of opts.users) if (!/^\d{11}$/.test(u.rpps)) throw new Error(`demo user ${u.login}: RPPS must be 11 digits`);
  const log = opts.logger;
  const keys = opts.jwks?.keys?.length ? opts.jwks.keys : [await generateSigningJwk()];
  for (const k of keys) if (!k.d) throw new Error('startDemoOidcProvider: jwks must hold private keys');
  const publicJwks = { keys: keys.map(publicJwk) };
  const localJwks = createLocalJWKSet(publicJwks);

  const byAccount = new Map(opts.users.map((u) => [u.rpps, u]));
  const findUser = (identifier: string): DemoOidcUser | undefined => {
    const id = identifier.trim();
    const rpps = /^8\d{11}$/.test(id) ? id.slice(1) : id;
    return opts.users.find((u) => u.login === id) ?? byAccount.get(rpps);
  };

  let handler: http.RequestListener = (_req, res) => {
    res.writeHead(503).end();
  };
  const server = http.createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  // RFC 8707 §2: a resource indicator is an absolute URI; an audience such as a client_id is not.
  const resource = /^[a-z][a-z0-9+.-]*:/i.test(opts.audience) ? opts.audience : `urn:caducee:audience:${encodeURIComponent(opts.audience)}`;

  const storage = new Storage();
  const verifyOwnJwt = async (jwt: string): Promise<string | null> => {
    try {
      // Signature only: expiry is checked by oidc-provider on the stored record.
      const { payload } = await compactVerify(jwt, localJwks);
      const claims = JSON.parse(Buffer.from(payload).toString('utf8'));
      return claims.iss === issuer && typeof claims.jti === 'string' ? claims.jti : null;
    } catch {
      return null;
    }
  };

  const configuration = {
    adapter: adapterFactory(storage, verifyOwnJwt),
    clients: opts.clients.map((c) => ({
      client_id: c.clientId,
      ...(c.clientSecret ? { client_secret: c.clientSecret } : {}),
      redirect_uris: c.redirectUris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: c.clientSecret ? (c.tokenEndpointAuthMethod ?? 'client_secret_basic') : 'none',
    })),
    jwks: { keys },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    // Claims by scope. PSC releases the whole identity with scope_all.
    claims: {
      acr: null,
      openid: ['sub'],
      profile: ['given_name', 'family_name', 'preferred_username'],
      scope_all: ['given_name', 'family_name', 'preferred_username'],
    },
    scopes: ['openid', 'offline_access', 'profile', RESOURCE_SCOPES],
    acrValues: [DEMO_ACR],
    // The ID token carries the profile claims (as PSC's does), not only userinfo.
    conformIdTokenClaims: false,
    pkce: { methods: ['S256'], required: () => true },
    // Like Keycloak: a refresh token whenever the client may use one (not only with offline_access).
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) => client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: opts.accessTokenTtlSeconds ?? 600,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 8 * 3600,
      Interaction: 600,
      Session: 8 * 3600,
      Grant: 8 * 3600,
    },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      introspection: {
        enabled: true,
        // Any authenticated confidential client (the operator) may introspect; public ones only their own tokens.
        allowedPolicy: async (_ctx: unknown, client: { clientAuthMethod: string; clientId: string }, token: { clientId: string }) =>
          client.clientAuthMethod !== 'none' || token.clientId === client.clientId,
      },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => resource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx: unknown, indicator: string) => {
          if (indicator !== resource) throw new (oidcErrors as { InvalidTarget: new (description?: string) => Error }).InvalidTarget('unknown resource indicator');
          return {
            scope: RESOURCE_SCOPES,
            audience: opts.audience,
            accessTokenFormat: 'jwt',
            accessTokenTTL: opts.accessTokenTtlSeconds ?? 600,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    findAccount: async (_ctx: unknown, sub: string) => {
      const u = byAccount.get(sub);
      if (!u) return undefined;
      return {
        accountId: sub,
        claims: async () => ({ sub, preferred_username: `8${u.rpps}`, given_name: u.givenName, family_name: u.familyName }),
      };
    },
    // PSC-like access token claims: the national identifier and the acr of the login.
    extraTokenClaims: async (ctx: any, token: { accountId?: string }) => {
      const u = token.accountId ? byAccount.get(token.accountId) : undefined;
      if (!u) return undefined;
      const entities = ctx?.oidc?.entities ?? {};
      const acr = entities.AuthorizationCode?.acr ?? entities.RefreshToken?.acr ?? DEMO_ACR;
      return { acr, preferred_username: `8${u.rpps}` };
    },
    formats: {
      customizers: {
        // Record every JWT access token so introspection and revocation can find it (see Storage).
        jwt: async (_ctx: unknown, token: any, structured: { payload: Payload }) => {
          if (token.kind !== 'AccessToken') return;
          const p = structured.payload;
          const record: Payload = { kind: 'AccessToken', jti: p.jti, iat: p.iat, exp: p.exp };
          for (const k of token.constructor.IN_PAYLOAD as string[]) if (token[k] !== undefined && !(k in record)) record[k] = token[k];
          storage.set(`AccessToken:${p.jti}`, record, Math.max(1, p.exp - Math.floor(Date.now() / 1000)));
          if (record.grantId) {
            const g = storage.get(`grant:${record.grantId}`) ?? { keys: [] as string[] };
            g.keys.push(`AccessToken:${p.jti}`);
            storage.set(`grant:${record.grantId}`, g);
          }
        },
      },
    },
    renderError: async (ctx: any, out: Record<string, string>) => {
      ctx.type = 'html';
      ctx.body = page(
        'Erreur — Pro Santé Connect (démonstration)',
        `<h1>La demande ne peut pas aboutir</h1><p class="erreur">${escapeHtml(out.error ?? 'erreur')}${
          out.error_description ? ` : ${escapeHtml(out.error_description)}` : ''
        }</p>`,
      );
    },
  };

  const provider = new Provider(issuer, configuration);
  if (opts.loopbackRedirectAnyPort) {
    const proto = provider.Client.prototype;
    const strict = proto.redirectUriAllowed;
    const portless = (u: string): string | null => {
      try {
        const x = new URL(u);
        if (!LOOPBACK.has(x.hostname.replace(/^\[|\]$/g, ''))) return null;
        x.port = '';
        return x.href;
      } catch {
        return null;
      }
    };
    proto.redirectUriAllowed = function (this: { redirectUris: string[] }, value: string) {
      if (strict.call(this, value)) return true;
      const v = portless(value);
      return !!v && this.redirectUris.some((r) => portless(r) === v);
    };
  }
  provider.on('server_error', (_ctx: unknown, err: Error) => log?.error({ err: err.message }, 'demo OIDC provider: server error'));
  for (const ev of ['authorization.error', 'grant.error', 'introspection.error', 'revocation.error'])
    provider.on(ev, (_ctx: unknown, err: Error) => log?.debug({ event: ev, error: err.message }, 'demo OIDC provider'));
  const callback = provider.callback();

  async function interaction(req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<void> {
    const m = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|abort))?$/.exec(path);
    if (!m) return send(res, 404, page('Introuvable', '<h1>Page introuvable</h1>'));
    const action = m[2];
    let details: InteractionDetails;
    try {
      details = await provider.interactionDetails(req, res);
    } catch {
      return send(res, 400, page('Session expirée', '<h1>Session expirée</h1><p>Relancez la connexion depuis votre logiciel.</p>'));
    }
    if (details.uid !== m[1]) return send(res, 400, page('Session expirée', '<h1>Session expirée</h1><p>Relancez la connexion depuis votre logiciel.</p>'));
    const clientId = String(details.params.client_id ?? '');

    if (!action && req.method === 'GET') {
      if (details.prompt.name === 'login') return send(res, 200, loginPage(details.uid, clientId));
      if (details.prompt.name === 'consent') {
        // Automatic consent: the professional already chose to connect this software.
        const accountId = details.session?.accountId;
        if (!accountId) return send(res, 400, page('Erreur', '<h1>Session invalide</h1>'));
        const grant = (details.grantId && (await provider.Grant.find(details.grantId))) || new provider.Grant({ accountId, clientId });
        const d = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
        if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
        if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
        for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
        const grantId = await grant.save();
        return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      }
      return send(res, 400, page('Erreur', '<h1>Étape inconnue</h1>'));
    }
    if (req.method !== 'POST') return send(res, 405, page('Erreur', '<h1>Méthode non permise</h1>'));
    if (action === 'abort') {
      return provider.interactionFinished(req, res, { error: 'access_denied', error_description: "connexion annulée par l'utilisateur" }, { mergeWithLastSubmission: false });
    }
    if (details.prompt.name !== 'login') return send(res, 400, page('Erreur', '<h1>Étape inattendue</h1>'));
    const form = await readForm(req);
    const identifier = form.get('identifiant') ?? '';
    const password = form.get('motdepasse') ?? '';
    const user = findUser(identifier);
    // Same message for an unknown identifier and a wrong password.
    if (!user || user.password !== password) {
      log?.info({ client: clientId }, 'demo OIDC provider: login refused');
      return send(res, 200, loginPage(details.uid, clientId, 'Identifiant ou mot de passe incorrect.', identifier));
    }
    log?.info({ client: clientId, rpps: user.rpps }, 'demo OIDC provider: login');
    return provider.interactionFinished(req, res, { login: { accountId: user.rpps, acr: DEMO_ACR, amr: ['pwd'] } }, { mergeWithLastSubmission: false });
  }

  handler = (req, res) => {
    const path = new URL(req.url ?? '/', issuer).pathname;
    if (path.startsWith('/interaction/')) {
      interaction(req, res, path).catch((err: Error) => {
        log?.error({ err: err.message }, 'demo OIDC provider: interaction failed');
        if (!res.headersSent) send(res, 500, page('Erreur', '<h1>Erreur interne</h1>'));
        else res.end();
      });
      return;
    }
    callback(req, res);
  };

  return {
    issuer,
    port,
    jwks: publicJwks,
    resource,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
