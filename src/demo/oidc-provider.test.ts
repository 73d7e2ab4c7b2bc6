// The demo Pro Santé Connect stand-in, driven like a browser and a mail client would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import * as client from 'openid-client';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { startDemoOidcProvider, escapeHtml, type DemoOidcProvider } from './oidc-provider.js';
import { loginWithBrowserFlow, LoginRefusedError, findLoginFormAction } from '../../test/support/oidc-browser.js';
import { OidcTokenVerifier, resolveOidcSettings } from '../auth/oidc.js';

const USERS = [
  { rpps: '10001234567', givenName: 'Claire', familyName: 'Martin', login: 'claire.martin', password: 'Mdp-claire-1' },
  { rpps: '10009876543', givenName: 'Paul', familyName: 'Bernard', login: 'paul.bernard', password: 'Mdp-paul-2' },
];
const CONFIDENTIAL = { clientId: 'lps-basic', clientSecret: randomBytes(16).toString('hex'), redirectUris: ['http://127.0.0.1:9/cb'] };
const POST_CLIENT = { clientId: 'lps-post', clientSecret: randomBytes(16).toString('hex'), redirectUris: ['http://127.0.0.1:9/cb'], tokenEndpointAuthMethod: 'client_secret_post' as const };
const PUBLIC = { clientId: 'thunderbird-like', redirectUris: ['http://127.0.0.1:9/public-cb'] };
const AUDIENCE = 'caducee-imap-smtp';

let idp: DemoOidcProvider;

before(async () => {
  idp = await startDemoOidcProvider({
    users: USERS,
    clients: [CONFIDENTIAL, POST_CLIENT, PUBLIC],
    audience: AUDIENCE,
    accessTokenTtlSeconds: 300,
    logger: pino({ level: 'silent' }),
  });
});
after(async () => {
  await idp?.stop();
});

const flow = (over: Partial<Parameters<typeof loginWithBrowserFlow>[0]> = {}) =>
  loginWithBrowserFlow({
    issuer: idp.issuer,
    clientId: CONFIDENTIAL.clientId,
    clientSecret: CONFIDENTIAL.clientSecret,
    redirectUri: CONFIDENTIAL.redirectUris[0]!,
    login: USERS[0]!.login,
    password: USERS[0]!.password,
    ...over,
  });

test('issuer on loopback http, ephemeral port, PSC-like discovery metadata', async () => {
  assert.match(idp.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(idp.issuer, `http://127.0.0.1:${idp.port}`);
  const meta = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()) as Record<string, any>;
  assert.equal(meta.issuer, idp.issuer);
  assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);
  assert.deepEqual(meta.acr_values_supported, ['eidas1']);
  assert.ok(meta.introspection_endpoint && meta.revocation_endpoint && meta.jwks_uri);
  assert.ok(meta.scopes_supported.includes('scope_all'));
  const jwks = (await (await fetch(meta.jwks_uri)).json()) as { keys: Record<string, unknown>[] };
  assert.equal(jwks.keys.length, 1);
  assert.equal(jwks.keys[0]!.d, undefined, 'no private member published');
  assert.deepEqual(idp.jwks.keys.map((k) => k.kid), jwks.keys.map((k) => k.kid));
  await assert.rejects(startDemoOidcProvider({ host: '0.0.0.0', users: USERS, clients: [], audience: AUDIENCE }), /loopback only/);
});

test('browser flow: JWT access token for the operator, PSC-like claims, ID token, refresh token; the verifier accepts it', async () => {
  const t = await flow();
  const header = decodeProtectedHeader(t.accessToken);
  assert.equal(header.alg, 'RS256');
  assert.equal(header.typ, 'at+jwt');
  assert.equal(header.kid, idp.jwks.keys[0]!.kid);
  const at = decodeJwt(t.accessToken);
  assert.equal(at.iss, idp.issuer);
  assert.equal(at.aud, AUDIENCE);
  assert.equal(at.acr, 'eidas1');
  assert.equal(at.preferred_username, '810001234567');
  assert.equal(at.sub, '10001234567');
  assert.equal(at.client_id, CONFIDENTIAL.clientId);
  assert.equal(at.scope, 'scope_all');
  assert.equal(at.exp! - at.iat!, 300);

  assert.ok(t.idToken);
  const id = decodeJwt(t.idToken!);
  assert.equal(id.aud, CONFIDENTIAL.clientId);
  assert.equal(id.acr, 'eidas1');
  assert.equal(id.preferred_username, '810001234567');
  assert.equal(id.given_name, 'Claire');
  assert.equal(id.family_name, 'Martin');
  assert.ok(t.refreshToken);

  const verifier = new OidcTokenVerifier(
    resolveOidcSettings({ issuer: idp.issuer, clientId: 'caducee', audience: [AUDIENCE], acrValues: ['eidas1'], introspection: false, jwksCacheSeconds: 600, allowInsecureLoopback: true }),
    pino({ level: 'silent' }),
  );
  const r = await verifier.verify(t.accessToken);
  assert.deepEqual(r, { ok: true, rpps: '10001234567', subject: '10001234567', expiresAt: at.exp });

  // The refresh token gives a new access token of the same shape.
  const config = await client.discovery(new URL(idp.issuer), CONFIDENTIAL.clientId, undefined, client.ClientSecretBasic(CONFIDENTIAL.clientSecret), {
    execute: [client.allowInsecureRequests],
  });
  const refreshed = await client.refreshTokenGrant(config, t.refreshToken!);
  assert.notEqual(refreshed.access_token, t.accessToken);
  assert.equal(decodeJwt(refreshed.access_token).preferred_username, '810001234567');
  assert.equal((await verifier.verify(refreshed.access_token)).ok, true);
});

test('login by RPPS or national identifier; public client (PKCE only); client_secret_post', async () => {
  const byRpps = await flow({ login: USERS[1]!.rpps, password: USERS[1]!.password });
  assert.equal(decodeJwt(byRpps.accessToken).preferred_username, '810009876543');
  const byNationalId = await flow({ login: '8' + USERS[1]!.rpps, password: USERS[1]!.password });
  assert.equal(decodeJwt(byNationalId.accessToken).sub, USERS[1]!.rpps);

  const pub = await loginWithBrowserFlow({
    issuer: idp.issuer,
    clientId: PUBLIC.clientId,
    redirectUri: PUBLIC.redirectUris[0]!,
    login: USERS[0]!.login,
    password: USERS[0]!.password,
    resource: idp.resource,
  });
  assert.equal(decodeJwt(pub.accessToken).client_id, PUBLIC.clientId);
  assert.equal(decodeJwt(pub.accessToken).aud, AUDIENCE);

  const post = await flow({ clientId: POST_CLIENT.clientId, clientSecret: POST_CLIENT.clientSecret, clientAuth: 'post' });
  assert.equal(decodeJwt(post.accessToken).client_id, POST_CLIENT.clientId);
  // oidc-provider takes client_secret_basic and client_secret_post as one family: either works.
  assert.equal(decodeJwt((await flow({ clientAuth: 'post' })).accessToken).client_id, CONFIDENTIAL.clientId);
  // A wrong secret does not, with either.
  await assert.rejects(flow({ clientSecret: 'wrong' }), /invalid_client/);
  await assert.rejects(flow({ clientSecret: 'wrong', clientAuth: 'post' }), /invalid_client/);
});

test('wrong password or unknown login: the French login page again, with an error and the identifier escaped', async () => {
  await assert.rejects(flow({ password: 'pas le bon' }), (err: unknown) => {
    assert.ok(err instanceof LoginRefusedError);
    assert.equal(err.message, 'Identifiant ou mot de passe incorrect.');
    assert.match(err.html, /<html lang="fr">/);
    assert.match(err.html, /value="claire\.martin"/);
    assert.ok(findLoginFormAction(err.html)?.startsWith('/interaction/'));
    return true;
  });
  const hostile = '"><script>alert(1)</script>';
  await assert.rejects(flow({ login: hostile }), (err: unknown) => {
    assert.ok(err instanceof LoginRefusedError);
    assert.equal(err.message, 'Identifiant ou mot de passe incorrect.');
    assert.ok(!err.html.includes('<script>'));
    assert.ok(err.html.includes(escapeHtml(hostile)));
    return true;
  });
  // The other user's password does not open this account.
  await assert.rejects(flow({ password: USERS[1]!.password }), LoginRefusedError);
});

async function authorize(params: Record<string, string>): Promise<Response> {
  const url = new URL('/auth', idp.issuer);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return fetch(url, { redirect: 'manual' });
}

test('PKCE is required, S256 only', async () => {
  const base = { client_id: CONFIDENTIAL.clientId, response_type: 'code', scope: 'openid scope_all', redirect_uri: CONFIDENTIAL.redirectUris[0]!, state: 'st' };
  const variants: Record<string, string>[] = [{}, { code_challenge: 'x'.repeat(43), code_challenge_method: 'plain' }];
  for (const extra of variants) {
    const res = await authorize({ ...base, ...extra });
    assert.equal(res.status, 303);
    const loc = new URL(res.headers.get('location')!);
    assert.equal(loc.origin + loc.pathname, CONFIDENTIAL.redirectUris[0]);
    assert.equal(loc.searchParams.get('error'), 'invalid_request');
    assert.equal(loc.searchParams.get('state'), 'st');
    assert.equal(loc.searchParams.get('code'), null);
  }
  // With S256 the same request goes to our login page.
  const ok = await authorize({ ...base, code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()), code_challenge_method: 'S256' });
  assert.equal(ok.status, 303);
  assert.match(ok.headers.get('location')!, /^\/interaction\/[A-Za-z0-9_-]+$/);
  // A resource other than the operator's: invalid_target (RFC 8707 §2).
  const other = await authorize({ ...base, resource: 'https://elsewhere.example/api', code_challenge: 'y'.repeat(43), code_challenge_method: 'S256' });
  assert.equal(new URL(other.headers.get('location')!).searchParams.get('error'), 'invalid_target');
  // An unregistered redirect_uri is never redirected to.
  const bad = await authorize({ ...base, redirect_uri: 'http://127.0.0.1:9/evil' });
  assert.equal(bad.status, 400);
  assert.match(await bad.text(), /lang="fr"/);
});

test('interaction pages without the browser cookie are refused', async () => {
  const res = await fetch(`${idp.issuer}/interaction/nope`);
  assert.equal(res.status, 400);
  assert.match(await res.text(), /Session expirée/);
  const post = await fetch(`${idp.issuer}/interaction/nope/login`, { method: 'POST', body: new URLSearchParams({ identifiant: 'claire.martin', motdepasse: USERS[0]!.password }) });
  assert.equal(post.status, 400);
});
