// Pro Santé Connect (PSC) access tokens, as presented over IMAP and SMTP with SASL XOAUTH2 or
// OAUTHBEARER (RFC 7628). PSC is an OpenID Connect provider (Keycloak); its access tokens are
// JWTs signed with the keys of its jwks_uri. We check them either locally (signature, issuer,
// audience, lifetime, acr) or by RFC 7662 introspection, and match the person by the national
// identifier carried in a claim (PSC: preferred_username = "8" + RPPS), never by name or e-mail.
// Tokens are secrets: never logged, never put in an error detail.
import type { Logger } from 'pino';
import * as jose from 'jose';
import * as client from 'openid-client';
import type { Config } from '../config/index.js';

export type OidcConfig = NonNullable<Config['auth']['oidc']>;

export interface OidcSettings {
  issuer: string;
  clientId: string;
  clientSecret?: string;
  /** Where the provider sends the browser back (web login); undefined when neither set nor derivable. */
  redirectUri?: string;
  scopes: string[];
  /** acr_values asked for at login; a presented access token must carry one of them (empty: no check). */
  acrValues: string[];
  /** Accepted `aud` values (any one of them). */
  audience: string[];
  identifierClaim: string;
  introspection: boolean;
  jwksCacheSeconds: number;
  allowInsecureLoopback: boolean;
}

const PSC_PRESET = {
  scopes: ['openid', 'scope_all'],
  acrValues: ['eidas1'],
  identifierClaim: 'preferred_username',
};
export const OIDC_PRESETS: Record<'psc' | 'psc-bas', typeof PSC_PRESET & { issuer: string }> = {
  /** Pro Santé Connect, production. */
  psc: { ...PSC_PRESET, issuer: 'https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet' },
  /** Pro Santé Connect, "bac à sable" (test) environment. */
  'psc-bas': { ...PSC_PRESET, issuer: 'https://auth.bas.esw.esante.gouv.fr/auth/realms/esante-wallet' },
};

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);

function isLoopback(u: URL): boolean {
  return LOOPBACK_HOSTS.has(u.hostname.replace(/^\[|\]$/g, ''));
}

/** https://, or http:// on a loopback host when explicitly allowed; throws otherwise. */
function checkProviderUrl(what: string, value: string, allowInsecureLoopback: boolean): URL {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new Error(`${what} ${JSON.stringify(value)} is not a URL`);
  }
  if (u.protocol === 'https:') return u;
  if (u.protocol === 'http:') {
    if (allowInsecureLoopback && isLoopback(u)) return u;
    throw new Error(
      allowInsecureLoopback
        ? `${what} ${value} uses http:// on a host that is not loopback (127.0.0.1, ::1, localhost); use https://`
        : `${what} ${value} uses http://; use https:// (auth.oidc.allowInsecureLoopback allows http on a loopback address, for a local demo only)`,
    );
  }
  throw new Error(`${what} ${value}: only https:// is accepted`);
}

/** The effective OpenID settings: the preset, then the explicit fields over it, then defaults. */
export function resolveOidcSettings(cfg: OidcConfig, publicUrl?: string): OidcSettings {
  const preset = cfg.preset ? OIDC_PRESETS[cfg.preset] : undefined;
  const issuer = cfg.issuer ?? preset?.issuer;
  if (!issuer) throw new Error("auth.oidc.issuer is missing: set it, or set auth.oidc.preset to 'psc' (Pro Santé Connect) or 'psc-bas' (its test environment)");
  if (!cfg.clientId) throw new Error('auth.oidc.clientId is missing: the client_id the provider gave this operator');
  const allowInsecureLoopback = cfg.allowInsecureLoopback ?? false;
  checkProviderUrl('auth.oidc.issuer', issuer, allowInsecureLoopback);
  const introspection = cfg.introspection ?? false;
  if (introspection && !cfg.clientSecret)
    throw new Error('auth.oidc.clientSecret is missing: introspection (auth.oidc.introspection: true) authenticates to the provider with it (CADUCEE_OIDC_CLIENT_SECRET)');
  const redirectUri = cfg.redirectUri ?? (publicUrl ? `${publicUrl.replace(/\/+$/, '')}/api/auth/oidc/callback` : undefined);
  return {
    issuer,
    clientId: cfg.clientId,
    ...(cfg.clientSecret ? { clientSecret: cfg.clientSecret } : {}),
    ...(redirectUri ? { redirectUri } : {}),
    scopes: cfg.scopes ?? preset?.scopes ?? ['openid'],
    acrValues: cfg.acrValues ?? preset?.acrValues ?? [],
    audience: cfg.audience ?? [cfg.clientId],
    identifierClaim: cfg.identifierClaim ?? preset?.identifierClaim ?? 'preferred_username',
    introspection,
    jwksCacheSeconds: cfg.jwksCacheSeconds ?? 600,
    allowInsecureLoopback,
  };
}

/**
 * The RPPS number in a national identifier. "Identification nationale PP" is the identifier
 * type followed by the identifier (TRE_G08-TypeIdentifiantPersonne: 8 = RPPS, 0 = ADELI), so
 * "8" + 11 digits is an RPPS; bare 11 digits are taken as an RPPS as well. ADELI and anything
 * else: null.
 */
export function nationalIdToRpps(value: string): string | null {
  if (/^8[0-9]{11}$/.test(value)) return value.slice(1);
  if (/^[0-9]{11}$/.test(value)) return value;
  return null;
}

export type TokenRefusal =
  | 'malformed'
  | 'bad-signature'
  | 'wrong-issuer'
  | 'wrong-audience'
  | 'expired'
  | 'not-yet-valid'
  | 'insufficient-acr'
  | 'no-identifier'
  | 'inactive'
  | 'provider-unavailable';

export type TokenCheck =
  | { ok: true; rpps: string; subject: string; expiresAt: number /* epoch s */ }
  | { ok: false; reason: TokenRefusal; detail: string };

/** Asymmetric signatures only: never "none", never HS* (a shared secret would let the client forge). */
export const ACCEPTED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
const CLOCK_TOLERANCE_SECONDS = 30;
const MAX_TOKEN_LENGTH = 16 * 1024;
/** RFC 6750 §2.1 b64token: what a Bearer credential may contain. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const HTTP_TIMEOUT_SECONDS = 5;
const DISCOVERY_TTL_MS = 3600_000;
const DISCOVERY_RETRY_MS = 60_000;

class Refused extends Error {
  constructor(readonly reason: TokenRefusal, readonly detail: string) {
    super(detail);
  }
}

interface Discovered {
  config: client.Configuration;
  jwks: ReturnType<typeof jose.createRemoteJWKSet> | null;
  jwksUri: string | null;
  fetchedAt: number;
}

function errorText(err: unknown): string {
  if (err instanceof client.ResponseBodyError) return `${err.error}${err.status ? ` (HTTP ${err.status})` : ''}`;
  if (err instanceof client.WWWAuthenticateChallengeError) {
    const c = err.cause[0];
    return `${c?.parameters.error ?? 'challenge'} (HTTP ${err.status}, ${c?.scheme ?? 'unknown'} challenge)`;
  }
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const code = (cause as { code?: string } | undefined)?.code;
    return code ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

export class OidcTokenVerifier {
  private discovered: Discovered | null = null;
  private inflight: Promise<Discovered> | null = null;

  constructor(
    readonly settings: OidcSettings,
    private readonly logger: Logger,
  ) {
    checkProviderUrl('auth.oidc.issuer', settings.issuer, settings.allowInsecureLoopback);
    if (settings.introspection && !settings.clientSecret) throw new Error('auth.oidc.clientSecret is missing: introspection needs it');
  }

  /** Check an access token presented by a client. Never throws; never logs the token. */
  async verify(token: string): Promise<TokenCheck> {
    try {
      const result = this.settings.introspection ? await this.introspect(token) : await this.verifyLocally(token);
      this.logger.debug({ rpps: result.rpps, mode: this.settings.introspection ? 'introspection' : 'jwks' }, 'OIDC access token accepted');
      return result;
    } catch (err) {
      const refusal = err instanceof Refused ? err : new Refused('provider-unavailable', `unexpected error: ${errorText(err)}`);
      this.logger.info({ reason: refusal.reason, detail: refusal.detail }, 'OIDC access token refused');
      return { ok: false, reason: refusal.reason, detail: refusal.detail };
    }
  }

  // ---- provider metadata ----------------------------------------------------------------

  /** Discovery (OpenID Connect Discovery 1.0 §4), cached; a stale copy is kept when a refresh fails. */
  private async provider(): Promise<Discovered> {
    const d = this.discovered;
    if (d && Date.now() - d.fetchedAt < DISCOVERY_TTL_MS) return d;
    this.inflight ??= this.discover()
      .then(
        (fresh) => (this.discovered = fresh),
        (err) => {
          if (d) {
            this.logger.warn({ error: errorText(err) }, 'OIDC discovery refresh failed; keeping the previous metadata');
            d.fetchedAt = Date.now() - DISCOVERY_TTL_MS + DISCOVERY_RETRY_MS;
            return d;
          }
          throw new Refused('provider-unavailable', `discovery of ${this.settings.issuer} failed: ${errorText(err)}`);
        },
      )
      .finally(() => (this.inflight = null));
    return this.inflight;
  }

  private async discover(): Promise<Discovered> {
    const s = this.settings;
    const issuerUrl = new URL(s.issuer);
    const auth = s.clientSecret ? client.ClientSecretBasic(s.clientSecret) : client.None();
    // openid-client checks that the metadata's "issuer" is exactly ours (Discovery 1.0 §4.3).
    const config = await client.discovery(issuerUrl, s.clientId, undefined, auth, {
      execute: issuerUrl.protocol === 'http:' ? [client.allowInsecureRequests] : [],
      timeout: HTTP_TIMEOUT_SECONDS,
    });
    const meta = config.serverMetadata();
    let jwks = this.discovered?.jwks ?? null;
    const jwksUri = meta.jwks_uri ?? null;
    if (!s.introspection) {
      if (!jwksUri) throw new Error('the provider metadata has no jwks_uri');
      checkProviderUrl('jwks_uri', jwksUri, s.allowInsecureLoopback);
      if (!jwks || jwksUri !== this.discovered?.jwksUri) {
        // jose refetches at once for an unknown kid (after a 30 s cooldown), else after cacheMaxAge.
        jwks = jose.createRemoteJWKSet(new URL(jwksUri), {
          cacheMaxAge: s.jwksCacheSeconds * 1000,
          timeoutDuration: HTTP_TIMEOUT_SECONDS * 1000,
        });
      }
    } else if (!meta.introspection_endpoint) {
      throw new Error('the provider metadata has no introspection_endpoint');
    }
    return { config, jwks, jwksUri, fetchedAt: Date.now() };
  }

  // ---- local verification (JWKS) ----------------------------------------------------------

  private async verifyLocally(token: string): Promise<Extract<TokenCheck, { ok: true }>> {
    checkSyntax(token);
    let header: jose.ProtectedHeaderParameters;
    let unverified: jose.JWTPayload;
    try {
      header = jose.decodeProtectedHeader(token);
      unverified = jose.decodeJwt(token);
    } catch (err) {
      throw new Refused('malformed', `not a signed JWT: ${errorText(err)}`);
    }
    if (!header.alg || !ACCEPTED_ALGORITHMS.includes(header.alg)) throw new Refused('bad-signature', `signature algorithm ${header.alg ?? '(none)'} is not accepted`);
    // The issuer first: a token from another provider is told apart before any key lookup.
    if (unverified.iss !== this.settings.issuer) throw new Refused('wrong-issuer', `issuer ${JSON.stringify(unverified.iss ?? null)} is not ${this.settings.issuer}`);

    const { jwks } = await this.provider();
    // Keys: errors fetching the JWKS mean the provider is unavailable, not that the token is bad.
    const getKey: jose.JWTVerifyGetKey = async (h, t) => {
      try {
        return await jwks!(h, t);
      } catch (err) {
        if (err instanceof jose.errors.JWKSNoMatchingKey || err instanceof jose.errors.JWKSMultipleMatchingKeys) throw err;
        throw new Refused('provider-unavailable', `JWKS of ${this.settings.issuer} unavailable: ${errorText(err)}`);
      }
    };
    let payload: jose.JWTPayload;
    try {
      ({ payload } = await jose.jwtVerify(token, getKey, {
        algorithms: ACCEPTED_ALGORITHMS,
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (err) {
      throw mapJoseError(err, this.settings.audience);
    }
    // An ID token is not an access token even when its aud (our client_id) is accepted.
    if (payload.typ === 'ID' || 'nonce' in payload || 'at_hash' in payload)
      throw new Refused('malformed', 'an ID token was presented instead of an access token');
    return this.judge(payload);
  }

  // ---- introspection (RFC 7662) -----------------------------------------------------------

  private async introspect(token: string): Promise<Extract<TokenCheck, { ok: true }>> {
    checkSyntax(token);
    const { config } = await this.provider();
    let claims: client.IntrospectionResponse;
    try {
      // RFC 7662 §2.1: POST token + token_type_hint, authenticated as our client (client_secret_basic).
      claims = await client.tokenIntrospection(config, token, { token_type_hint: 'access_token' });
    } catch (err) {
      throw new Refused('provider-unavailable', `introspection at ${this.settings.issuer} failed: ${errorText(err)}`);
    }
    // RFC 7662 §2.2: "active" is the only required member; false says nothing more.
    if (claims.active !== true) throw new Refused('inactive', 'the provider says the token is not active (expired, revoked or unknown)');
    if (claims.iss !== undefined && claims.iss !== this.settings.issuer)
      throw new Refused('wrong-issuer', `issuer ${JSON.stringify(claims.iss)} is not ${this.settings.issuer}`);
    const aud = claims.aud === undefined ? [] : Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.some((a) => this.settings.audience.includes(a)))
      throw new Refused('wrong-audience', `audience ${JSON.stringify(claims.aud ?? null)} is not one of ${JSON.stringify(this.settings.audience)}`);
    const now = Math.floor(Date.now() / 1000);
    if (typeof claims.exp !== 'number') throw new Refused('malformed', 'the introspection response has no exp');
    if (claims.exp <= now - CLOCK_TOLERANCE_SECONDS) throw new Refused('expired', `expired at ${new Date(claims.exp * 1000).toISOString()}`);
    if (typeof claims.nbf === 'number' && claims.nbf > now + CLOCK_TOLERANCE_SECONDS)
      throw new Refused('not-yet-valid', `not valid before ${new Date(claims.nbf * 1000).toISOString()}`);
    if (typeof claims.sub !== 'string') throw new Refused('malformed', 'the introspection response has no sub');
    return this.judge(claims as jose.JWTPayload);
  }

  // ---- what both modes check on verified claims ------------------------------------------

  private judge(claims: jose.JWTPayload): Extract<TokenCheck, { ok: true }> {
    const { acrValues, identifierClaim } = this.settings;
    if (acrValues.length && (typeof claims.acr !== 'string' || !acrValues.includes(claims.acr)))
      throw new Refused('insufficient-acr', `acr ${JSON.stringify(claims.acr ?? null)} is not one of ${JSON.stringify(acrValues)}`);
    const raw = claims[identifierClaim];
    const rpps = typeof raw === 'string' ? nationalIdToRpps(raw) : null;
    if (!rpps) throw new Refused('no-identifier', `claim ${identifierClaim} does not hold an RPPS national identifier`);
    return { ok: true, rpps, subject: String(claims.sub), expiresAt: claims.exp! };
  }
}

function checkSyntax(token: string): void {
  if (!token) throw new Refused('malformed', 'empty token');
  if (token.length > MAX_TOKEN_LENGTH) throw new Refused('malformed', `token longer than ${MAX_TOKEN_LENGTH} characters`);
  if (!B64TOKEN.test(token)) throw new Refused('malformed', 'token has characters a Bearer token cannot hold (RFC 6750 §2.1)');
}

function mapJoseError(err: unknown, audience: string[]): Refused {
  if (err instanceof Refused) return err;
  const e = jose.errors;
  if (err instanceof e.JWTExpired) return new Refused('expired', `expired (${err.reason})`);
  if (err instanceof e.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return new Refused('wrong-audience', `audience ${JSON.stringify(err.payload.aud ?? null)} is not one of ${JSON.stringify(audience)}`);
    if (err.claim === 'iss') return new Refused('wrong-issuer', `issuer check failed (${err.reason})`);
    if (err.claim === 'nbf') return new Refused('not-yet-valid', `not valid yet (${err.reason})`);
    return new Refused('malformed', `claim ${err.claim}: ${err.reason}`);
  }
  if (err instanceof e.JWSSignatureVerificationFailed) return new Refused('bad-signature', 'signature verification failed');
  if (err instanceof e.JWKSNoMatchingKey) return new Refused('bad-signature', 'no key of the provider matches the token (kid/alg)');
  if (err instanceof e.JWKSMultipleMatchingKeys) return new Refused('bad-signature', 'no matching key of the provider verifies the signature');
  if (err instanceof e.JOSEAlgNotAllowed) return new Refused('bad-signature', 'signature algorithm not accepted');
  if (err instanceof e.JWSInvalid || err instanceof e.JWTInvalid || err instanceof e.JOSENotSupported) return new Refused('malformed', err.message);
  return new Refused('provider-unavailable', `verification failed: ${errorText(err)}`);
}
