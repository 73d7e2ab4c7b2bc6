// A browser plus a mail client (LPS) going through the authorization code flow of the demo
// OpenID provider (src/demo/oidc-provider.ts): PKCE S256, state, nonce, cookies kept in a
// tough-cookie jar, redirects followed by hand, the French login form filled in, the code
// exchanged at the token endpoint. For tests and developer scripts only (tough-cookie is a
// devDependency): the operator never imports this file.
import * as client from 'openid-client';
import { CookieJar } from 'tough-cookie';

export interface BrowserFlowOptions {
  issuer: string;
  clientId: string;
  /** Absent: a public client (token endpoint auth "none"). */
  clientSecret?: string;
  /** How a confidential client authenticates at the token endpoint; default basic. */
  clientAuth?: 'basic' | 'post';
  redirectUri: string;
  login: string;
  password: string;
  /** Default "openid scope_all" (PSC's scopes). */
  scope?: string;
  /** RFC 8707 resource indicator, sent at the authorization and token endpoints. */
  resource?: string;
  /** Default "eidas1"; an empty string sends no acr_values. */
  acrValues?: string;
}

export interface BrowserFlowTokens {
  accessToken: string;
  idToken?: string;
  refreshToken?: string;
}

/** The login page answered again with an error (wrong credentials): its message is in `message`. */
export class LoginRefusedError extends Error {
  override name = 'LoginRefusedError';
  constructor(message: string, readonly html: string) {
    super(message);
  }
}

const MAX_STEPS = 20;

function decodeEntities(s: string): string {
  return s.replace(/&(amp|lt|gt|quot|#39);/g, (_m, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[e]!);
}

/** The action of the login form (the one with a password field) in an HTML page, or null. */
export function findLoginFormAction(html: string): string | null {
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    if (!/type="password"/i.test(m[2]!)) continue;
    const action = /\baction="([^"]*)"/i.exec(m[1]!);
    return action ? decodeEntities(action[1]!) : null;
  }
  return null;
}

export async function loginWithBrowserFlow(opts: BrowserFlowOptions): Promise<BrowserFlowTokens> {
  const auth = opts.clientSecret
    ? opts.clientAuth === 'post'
      ? client.ClientSecretPost(opts.clientSecret)
      : client.ClientSecretBasic(opts.clientSecret)
    : client.None();
  const config = await client.discovery(new URL(opts.issuer), opts.clientId, undefined, auth, {
    execute: new URL(opts.issuer).protocol === 'http:' ? [client.allowInsecureRequests] : [],
  });

  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const params: Record<string, string> = {
    redirect_uri: opts.redirectUri,
    scope: opts.scope ?? 'openid scope_all',
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  };
  const acr = opts.acrValues ?? 'eidas1';
  if (acr) params.acr_values = acr;
  if (opts.resource) params.resource = opts.resource;

  const jar = new CookieJar();
  let url = client.buildAuthorizationUrl(config, params).href;
  let init: { method: string; body?: URLSearchParams } = { method: 'GET' };
  let callback: URL | null = null;
  for (let step = 0; step < MAX_STEPS && !callback; step++) {
    const headers: Record<string, string> = { accept: 'text/html' };
    const cookie = await jar.getCookieString(url);
    if (cookie) headers.cookie = cookie;
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) await jar.setCookie(c, url);
    const wasPost = init.method === 'POST';
    init = { method: 'GET' };
    if (res.status >= 300 && res.status < 400) {
      const location = res.headers.get('location');
      await res.body?.cancel();
      if (!location) throw new Error(`redirect without Location from ${new URL(url).pathname}`);
      const next = new URL(location, url);
      if (next.href.startsWith(opts.redirectUri)) callback = next;
      else url = next.href;
      continue;
    }
    const html = await res.text();
    if (res.status !== 200) throw new Error(`the provider answered ${res.status} at ${new URL(url).pathname}`);
    const action = findLoginFormAction(html);
    if (!action) throw new Error(`no login form at ${new URL(url).pathname}`);
    if (wasPost) {
      const msg = /<p class="erreur"[^>]*>([^<]*)<\/p>/.exec(html);
      throw new LoginRefusedError(msg ? decodeEntities(msg[1]!) : 'login refused', html);
    }
    url = new URL(action, url).href;
    init = { method: 'POST', body: new URLSearchParams({ identifiant: opts.login, motdepasse: opts.password }) };
  }
  if (!callback) throw new Error(`no redirect to ${opts.redirectUri} after ${MAX_STEPS} steps`);
  const error = callback.searchParams.get('error');
  if (error) throw new Error(`authorization refused: ${error}${callback.searchParams.get('error_description') ? ` (${callback.searchParams.get('error_description')})` : ''}`);

  let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
  try {
    tokens = await client.authorizationCodeGrant(
      config,
      callback,
      { pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce, idTokenExpected: params.scope!.split(' ').includes('openid') },
      opts.resource ? { resource: opts.resource } : undefined,
    );
  } catch (err) {
    // Name the OAuth error (invalid_client, invalid_grant…) whether it came in the body or a WWW-Authenticate challenge.
    if (err instanceof client.ResponseBodyError) throw new Error(`token endpoint refused: ${err.error}`, { cause: err });
    if (err instanceof client.WWWAuthenticateChallengeError)
      throw new Error(`token endpoint refused: ${err.cause[0]?.parameters.error ?? `HTTP ${err.status}`}`, { cause: err });
    throw err;
  }
  return { accessToken: tokens.access_token, idToken: tokens.id_token, refreshToken: tokens.refresh_token };
}
