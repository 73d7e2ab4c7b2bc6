// OidcTokenVerifier against a real OpenID provider (oidc-provider, through src/demo/oidc-provider.ts)
// on 127.0.0.1: genuine tokens come from the authorization code flow driven like a browser;
// the bad ones are signed with jose, with the provider's own key (which we generated and gave
// it) or with another key.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { SignJWT, importJWK, decodeJwt, type JWK, type JWTPayload } from 'jose';
import { OidcTokenVerifier, nationalIdToRpps, resolveOidcSettings, type OidcSettings, type TokenCheck } from './oidc.js';
import { startDemoOidcProvider, generateSigningJwk, type DemoOidcProvider } from '../demo/oidc-provider.js';
import { loginWithBrowserFlow } from '../../test/support/oidc-browser.js';

const silent = pino({ level: 'silent' });
const RPPS = '10001234567';
const AUDIENCE = 'caducee';
const LPS = { clientId: 'lps-messagerie', clientSecret: 'lps-secret-' + randomBytes(8).toString('hex'), redirectUris: ['http://127.0.0.1:9/callback'] };
const OPERATOR = { clientId: 'caducee', clientSecret: 'op-secret-' + randomBytes(8).toString('hex'), redirectUris: ['http://127.0.0.1:9/api/auth/oidc/callback'] };
const USERS = [{ rpps: RPPS, givenName: 'Claire', familyName: 'Martin', login: 'claire.martin', password: 'mot-de-passe-1' }];

let signingKey: JWK;
let psc: DemoOidcProvider;
let other: DemoOidcProvider;
let genuine: { accessToken: string; idToken?: string };

function settingsFor(issuer: string, extra: Partial<OidcSettings> = {}): OidcSettings {
  return resolveOidcSettings({
    issuer,
    clientId: OPERATOR.clientId,
    clientSecret: OPERATOR.clientSecret,
    acrValues: ['eidas1'],
    audience: [AUDIENCE],
    introspection: false,
    jwksCacheSeconds: 600,
    allowInsecureLoopback: true,
    ...extra,
  } as never);
}

function browserLogin(p: DemoOidcProvider) {
  return loginWithBrowserFlow({
    issuer: p.issuer,
    clientId: LPS.clientId,
    clientSecret: LPS.clientSecret,
    redirectUri: LPS.redirectUris[0]!,
    login: USERS[0]!.login,
    password: USERS[0]!.password,
  });
}

/** A token shaped like the provider's, signed with `key` (default: the provider's own key). */
async function forge(claims: JWTPayload, opts: { key?: JWK; kid?: string; alg?: string } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const key = opts.key ?? signingKey;
  const payload: JWTPayload = {
    iss: psc.issuer,
    aud: AUDIENCE,
    sub: RPPS,
    iat: now,
    exp: now + 300,
    jti: randomBytes(8).toString('hex'),
    scope: 'scope_all',
    client_id: LPS.clientId,
    acr: 'eidas1',
    preferred_username: '8' + RPPS,
    ...claims,
  };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  return new SignJWT(payload)
    .setProtectedHeader({ alg: opts.alg ?? 'RS256', kid: opts.kid ?? key.kid, typ: 'at+jwt' })
    .sign(await importJWK(key, opts.alg ?? 'RS256'));
}

function refused(r: TokenCheck, reason: string): void {
  assert.equal(r.ok, false, `expected ${reason}, got ${JSON.stringify(r)}`);
  if (!r.ok) assert.equal(r.reason, reason, r.detail);
}

before(async () => {
  signingKey = await generateSigningJwk('psc-demo-1');
  psc = await startDemoOidcProvider({ users: USERS, clients: [LPS, OPERATOR], audience: AUDIENCE, jwks: { keys: [signingKey] } });
  other = await startDemoOidcProvider({ users: USERS, clients: [LPS], audience: AUDIENCE });
  genuine = await browserLogin(psc);
});

after(async () => {
  await psc?.stop();
  await other?.stop();
});

describe('resolveOidcSettings', () => {
  test('preset psc: issuer, scopes, acr, identifier claim; audience defaults to the client id', () => {
    const s = resolveOidcSettings({ preset: 'psc', clientId: 'caducee-prod', introspection: false, jwksCacheSeconds: 600, allowInsecureLoopback: false }, 'https://mss.example.fr/');
    assert.equal(s.issuer, 'https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet');
    assert.deepEqual(s.scopes, ['openid', 'scope_all']);
    assert.deepEqual(s.acrValues, ['eidas1']);
    assert.equal(s.identifierClaim, 'preferred_username');
    assert.deepEqual(s.audience, ['caducee-prod']);
    assert.equal(s.redirectUri, 'https://mss.example.fr/api/auth/oidc/callback');
  });

  test('preset psc-bas, explicit fields win over the preset', () => {
    const s = resolveOidcSettings({
      preset: 'psc-bas',
      clientId: 'c',
      scopes: ['openid'],
      acrValues: [],
      identifierClaim: 'SubjectNameID',
      audience: ['a', 'b'],
      redirectUri: 'https://x.example/cb',
      introspection: false,
      jwksCacheSeconds: 60,
      allowInsecureLoopback: false,
    });
    assert.equal(s.issuer, 'https://auth.bas.esw.esante.gouv.fr/auth/realms/esante-wallet');
    assert.deepEqual(s.scopes, ['openid']);
    assert.deepEqual(s.acrValues, []);
    assert.equal(s.identifierClaim, 'SubjectNameID');
    assert.deepEqual(s.audience, ['a', 'b']);
    assert.equal(s.redirectUri, 'https://x.example/cb');
    assert.equal(s.jwksCacheSeconds, 60);
  });

  test('no preset: defaults', () => {
    const s = resolveOidcSettings({ issuer: 'https://idp.example/realms/x', clientId: 'c', introspection: false, jwksCacheSeconds: 600, allowInsecureLoopback: false });
    assert.deepEqual(s.scopes, ['openid']);
    assert.deepEqual(s.acrValues, []);
    assert.equal(s.identifierClaim, 'preferred_username');
    assert.deepEqual(s.audience, ['c']);
    assert.equal(s.redirectUri, undefined);
  });

  test('missing settings and insecure issuers are refused with the setting named', () => {
    const base = { introspection: false, jwksCacheSeconds: 600, allowInsecureLoopback: false };
    assert.throws(() => resolveOidcSettings({ ...base, clientId: 'c' }), /auth\.oidc\.issuer is missing/);
    assert.throws(() => resolveOidcSettings({ ...base, preset: 'psc' }), /auth\.oidc\.clientId is missing/);
    assert.throws(() => resolveOidcSettings({ ...base, preset: 'psc', clientId: 'c', introspection: true }), /auth\.oidc\.clientSecret is missing/);
    assert.throws(() => resolveOidcSettings({ ...base, issuer: 'http://127.0.0.1:8080', clientId: 'c' }), /http:\/\/.*allowInsecureLoopback/);
    assert.throws(() => resolveOidcSettings({ ...base, allowInsecureLoopback: true, issuer: 'http://idp.example', clientId: 'c' }), /not loopback/);
    assert.throws(() => resolveOidcSettings({ ...base, issuer: 'ftp://idp.example', clientId: 'c' }), /only https/);
    for (const issuer of ['http://127.0.0.1:8080', 'http://localhost:1/realms/x', 'http://[::1]:9000'])
      assert.equal(resolveOidcSettings({ ...base, allowInsecureLoopback: true, issuer, clientId: 'c' }).issuer, issuer);
  });
});

test('nationalIdToRpps: "8" + RPPS (TRE_G08 type 8), bare RPPS, nothing else', () => {
  assert.equal(nationalIdToRpps('810001234567'), '10001234567');
  assert.equal(nationalIdToRpps('10001234567'), '10001234567');
  for (const v of ['010001234567', '0123456789', '8100012345678', 'claire.martin', '', ' 810001234567', '8１0001234567', '1000123456a'])
    assert.equal(nationalIdToRpps(v), null, v);
});

describe('OidcTokenVerifier, local (JWKS)', () => {
  test('a genuine access token from the browser flow is accepted', async () => {
    const v = new OidcTokenVerifier(settingsFor(psc.issuer), silent);
    const r = await v.verify(genuine.accessToken);
    assert.equal(r.ok, true, JSON.stringify(r));
    if (!r.ok) return;
    assert.equal(r.rpps, RPPS);
    assert.equal(r.subject, RPPS);
    assert.equal(r.expiresAt, decodeJwt(genuine.accessToken).exp);
    assert.ok(r.expiresAt > Date.now() / 1000);
    // The same verifier again (discovery and keys cached).
    assert.equal((await v.verify(genuine.accessToken)).ok, true);
  });

  test('a token of another provider: wrong-issuer', async () => {
    const fromOther = await browserLogin(other);
    refused(await new OidcTokenVerifier(settingsFor(psc.issuer), silent).verify(fromOther.accessToken), 'wrong-issuer');
    // And the other way round, the genuine one is foreign to a verifier of the other provider.
    refused(await new OidcTokenVerifier(settingsFor(other.issuer), silent).verify(genuine.accessToken), 'wrong-issuer');
  });

  test('expired, not yet valid, wrong audience', async () => {
    const v = new OidcTokenVerifier(settingsFor(psc.issuer), silent);
    const now = Math.floor(Date.now() / 1000);
    refused(await v.verify(await forge({ iat: now - 900, exp: now - 120 })), 'expired');
    // Within the 30 s clock tolerance: still accepted.
    assert.equal((await v.verify(await forge({ iat: now - 900, exp: now - 10 }))).ok, true);
    refused(await v.verify(await forge({ nbf: now + 600 })), 'not-yet-valid');
    refused(await v.verify(await forge({ aud: 'another-service' })), 'wrong-audience');
    refused(await v.verify(await forge({ aud: undefined })), 'wrong-audience');
    assert.equal((await v.verify(await forge({ aud: ['another-service', AUDIENCE] }))).ok, true);
    refused(await v.verify(await forge({ exp: undefined })), 'malformed');
  });

  test('forged signature (another key under the same kid), alg none, HS256: bad-signature', async () => {
    const v = new OidcTokenVerifier(settingsFor(psc.issuer), silent);
    const stranger = await generateSigningJwk(signingKey.kid);
    refused(await v.verify(await forge({}, { key: stranger })), 'bad-signature');
    // Unknown kid, after jose has refetched the JWKS: no key, so bad-signature as well.
    refused(await v.verify(await forge({}, { key: stranger, kid: 'unknown-kid' })), 'bad-signature');
    // The genuine token with its payload altered (signature no longer matches).
    const [h, , s] = genuine.accessToken.split('.');
    const altered = Buffer.from(JSON.stringify({ ...decodeJwt(genuine.accessToken), preferred_username: '819999999999' })).toString('base64url');
    refused(await v.verify(`${h}.${altered}.${s}`), 'bad-signature');
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const claims = decodeJwt(genuine.accessToken);
    refused(await v.verify(`${enc({ alg: 'none', typ: 'at+jwt' })}.${enc(claims)}.`), 'bad-signature');
    refused(await v.verify(`${enc({ alg: 'none', typ: 'at+jwt' })}.${enc(claims)}.c2ln`), 'bad-signature');
    const hs = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: signingKey.kid }).sign(randomBytes(32));
    refused(await v.verify(hs), 'bad-signature');
  });

  test('acr missing or not eidas1: insufficient-acr; no acr required: accepted', async () => {
    const v = new OidcTokenVerifier(settingsFor(psc.issuer), silent);
    refused(await v.verify(await forge({ acr: undefined })), 'insufficient-acr');
    refused(await v.verify(await forge({ acr: 'eidas0' })), 'insufficient-acr');
    const lax = new OidcTokenVerifier(settingsFor(psc.issuer, { acrValues: [] }), silent);
    assert.equal((await lax.verify(await forge({ acr: undefined }))).ok, true);
  });

  test('no RPPS in the identifier claim: no-identifier; another claim can be configured', async () => {
    const v = new OidcTokenVerifier(settingsFor(psc.issuer), silent);
    refused(await v.verify(await forge({ preferred_username: 'claire.martin' })), 'no-identifier');
    refused(await v.verify(await forge({ preferred_username: '010001234567' })), 'no-identifier'); // ADELI
    refused(await v.verify(await forge({ preferred_username: undefined })), 'no-identifier');
    const custom = new OidcTokenVerifier(settingsFor(psc.issuer, { identifierClaim: 'SubjectNameID' }), silent);
    const r = await custom.verify(await forge({ SubjectNameID: '819999999999' }));
    assert.ok(r.ok && r.rpps === '19999999999', JSON.stringify(r));
  });

  test('garbage and ID tokens: malformed', async () => {
    const v = new OidcTokenVerifier(settingsFor(psc.issuer, { audience: [AUDIENCE, LPS.clientId] }), silent);
    for (const t of ['', 'garbage', 'a.b.c', 'not a token', 'é', 'x'.repeat(20_000), 'eyJhbGciOiJSUzI1NiJ9.e30']) refused(await v.verify(t), 'malformed');
    // The ID token is signed by the same provider and its aud (the client id) is accepted here.
    assert.ok(genuine.idToken);
    refused(await v.verify(genuine.idToken!), 'malformed');
  });

  test('provider down: provider-unavailable; keys already fetched keep working', async () => {
    const key = await generateSigningJwk();
    const gone = await startDemoOidcProvider({ users: USERS, clients: [LPS], audience: AUDIENCE, jwks: { keys: [key] } });
    const token = (await browserLogin(gone)).accessToken;
    const warm = new OidcTokenVerifier(settingsFor(gone.issuer), silent);
    assert.equal((await warm.verify(token)).ok, true);
    await gone.stop();
    const cold = new OidcTokenVerifier(settingsFor(gone.issuer), silent);
    refused(await cold.verify(token), 'provider-unavailable');
    assert.equal((await warm.verify(token)).ok, true, 'cached metadata and JWKS');
  });

  test('the token never appears in logs or details', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const v = new OidcTokenVerifier(settingsFor(psc.issuer), pino({ level: 'trace' }, sink));
    const tokens = [genuine.accessToken, await forge({ aud: 'x' }), await forge({ acr: 'low' }), 'garbage-token-value', genuine.idToken!];
    const results = [];
    for (const t of tokens) results.push(await v.verify(t));
    assert.ok(lines.length >= tokens.length);
    for (const t of tokens) {
      const secretPart = t.split('.').at(-1)!;
      for (const l of lines) assert.ok(!l.includes(secretPart), 'token in a log line');
      for (const r of results) if (!r.ok) assert.ok(!r.detail.includes(secretPart), 'token in a detail');
    }
  });
});

describe('OidcTokenVerifier, introspection (RFC 7662)', () => {
  test('the genuine token is active; a revoked one, an unknown one or a self-signed one is inactive', async () => {
    const v = new OidcTokenVerifier(settingsFor(psc.issuer, { introspection: true }), silent);
    const r = await v.verify(genuine.accessToken);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.rpps, RPPS);
    assert.equal(r.expiresAt, decodeJwt(genuine.accessToken).exp);

    // Unknown to the provider, even when signed with its key: only issued tokens are active.
    refused(await v.verify(randomBytes(32).toString('base64url')), 'inactive');
    refused(await v.verify(await forge({})), 'inactive');
    refused(await v.verify('garbage token'), 'malformed');

    // RFC 7009 revocation by the client, then introspection says inactive.
    const fresh = await browserLogin(psc);
    assert.equal((await v.verify(fresh.accessToken)).ok, true);
    const res = await fetch(`${psc.issuer}/token/revocation`, {
      method: 'POST',
      headers: {
        authorization: 'Basic ' + Buffer.from(`${encodeURIComponent(LPS.clientId)}:${encodeURIComponent(LPS.clientSecret)}`).toString('base64'),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token: fresh.accessToken, token_type_hint: 'access_token' }),
    });
    assert.equal(res.status, 200);
    refused(await v.verify(fresh.accessToken), 'inactive');
    // Local verification cannot know about revocation (that is what introspection is for).
    assert.equal((await new OidcTokenVerifier(settingsFor(psc.issuer), silent).verify(fresh.accessToken)).ok, true);
  });

  test('introspected claims are judged too: audience, acr', async () => {
    const wrongAud = new OidcTokenVerifier(settingsFor(psc.issuer, { introspection: true, audience: ['someone-else'] }), silent);
    refused(await wrongAud.verify(genuine.accessToken), 'wrong-audience');
    const strictAcr = new OidcTokenVerifier(settingsFor(psc.issuer, { introspection: true, acrValues: ['eidas2'] }), silent);
    refused(await strictAcr.verify(genuine.accessToken), 'insufficient-acr');
  });

  test('wrong client secret or provider down: provider-unavailable', async () => {
    const badSecret = new OidcTokenVerifier(settingsFor(psc.issuer, { introspection: true, clientSecret: 'wrong' }), silent);
    const r = await badSecret.verify(genuine.accessToken);
    refused(r, 'provider-unavailable');
    assert.ok(!r.ok && /invalid_client/.test(r.detail), !r.ok ? r.detail : '');

    const gone = await startDemoOidcProvider({ users: USERS, clients: [LPS, OPERATOR], audience: AUDIENCE });
    const token = (await browserLogin(gone)).accessToken;
    const v = new OidcTokenVerifier(settingsFor(gone.issuer, { introspection: true }), silent);
    assert.equal((await v.verify(token)).ok, true);
    await gone.stop();
    refused(await v.verify(token), 'provider-unavailable');
    refused(await new OidcTokenVerifier(settingsFor(gone.issuer, { introspection: true }), silent).verify(token), 'provider-unavailable');
  });
});
