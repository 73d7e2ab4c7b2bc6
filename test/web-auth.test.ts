// Web authentication over real HTTPS (docs/authentication.md): password + TOTP (enrolled at the
// first login), recovery codes, client certificates, sessions (cookie attributes, rotation,
// revocation), CSRF and Origin checks, app passwords used by a real IMAP client, lockout, plain
// HTTP refused, the audit trail free of secrets, and the OpenAPI document covering every route.
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { RouteOptions } from 'fastify';
import { ImapFlow } from 'imapflow';
import { generate } from 'otplib';
import { Cookie, CookieJar } from 'tough-cookie';
import { Authenticator } from '../src/auth/index.js';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { findLoginFormAction } from './support/oidc-browser.js';
import { startDemoOidcProvider, type DemoOidcProvider } from '../src/demo/oidc-provider.js';
import { safeReturnTo } from '../src/http/oidc-routes.js';
import { PENDING_SESSION_MS, SESSION_COOKIE, SessionManager } from '../src/http/session.js';
import { buildHttpApp } from '../src/http/app.js';
import { resolveOidcSettings } from '../src/auth/oidc.js';
import { TestPki } from '../src/pki/index.js';
import { tempDir, testLogger } from './helpers.js';

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
}

/** A browser: a cookie jar (tough-cookie enforces Secure and the __Host- prefix), the demo CA. */
class Browser {
  jar = new CookieJar();
  csrf: string | undefined;
  constructor(
    readonly base: string,
    readonly ca: string,
    readonly clientCert?: { cert: string; key: string },
  ) {}

  async req(method: string, path: string, o: { json?: unknown; form?: URLSearchParams; headers?: Record<string, string>; csrf?: boolean } = {}): Promise<Res> {
    const url = new URL(path, this.base);
    const headers: Record<string, string> = { accept: 'application/json', ...o.headers };
    const cookie = await this.jar.getCookieString(url.href);
    if (cookie) headers.cookie = cookie;
    if (o.csrf !== false && this.csrf && !('x-csrf-token' in headers)) headers['x-csrf-token'] = this.csrf;
    let payload: string | undefined;
    if (o.json !== undefined) {
      payload = JSON.stringify(o.json);
      headers['content-type'] ??= 'application/json';
    }
    if (o.form) {
      payload = o.form.toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    }
    const lib = url.protocol === 'https:' ? https : http;
    const res = await new Promise<http.IncomingMessage & { text: string }>((resolve, reject) => {
      const r = lib.request(
        url,
        {
          method,
          headers,
          ca: this.ca,
          agent: false, // one connection per request: the client certificate is per handshake
          ...(this.clientCert ? { cert: this.clientCert.cert, key: this.clientCert.key } : {}),
        } as https.RequestOptions,
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve(Object.assign(res, { text })));
        },
      );
      r.on('error', reject);
      r.end(payload);
    });
    for (const c of res.headers['set-cookie'] ?? []) await this.jar.setCookie(c, url.href);
    const body = res.text && /json/.test(String(res.headers['content-type'])) ? JSON.parse(res.text) : res.text;
    if (body?.csrfToken) this.csrf = body.csrfToken;
    return { status: res.statusCode!, headers: res.headers, body };
  }

  async sessionToken(): Promise<string | undefined> {
    return (await this.jar.getCookies(this.base)).find((c) => c.key === '__Host-caducee_session')?.value;
  }
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });

const totp = (secret: string, offsetSeconds = 0) => generate({ secret, epoch: Math.floor(Date.now() / 1000) + offsetSeconds });

describe('web authentication over HTTPS', { timeout: 180_000 }, () => {
  let layout: DemoLayout;
  let demo: RunningDemo;
  let cleanup = () => {};
  let ca: string;
  let base: string;
  /** Every secret the tests handled: none may appear in the audit trail. */
  const secrets: string[] = [];
  let totpSecret = '';
  let recoveryCodes: string[] = [];
  let provider: DemoOidcProvider;
  const OIDC_CLIENT = { clientId: 'caducee-web', clientSecret: 'demo-client-secret-for-tests' };
  const A = () => layout.operators[0];
  const claire = () => A().users[0];

  before(async () => {
    let dir: string;
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral' });
    // The demo OpenID provider (standing in for Pro Santé Connect) needs the operator's callback
    // URL, known once the operator listens: its port is chosen first, it starts after the demo
    // (the operator discovers the provider at the first OIDC login).
    const oidcPort = await freePort();
    const oidc = {
      issuer: `http://127.0.0.1:${oidcPort}`,
      ...OIDC_CLIENT,
      scopes: ['openid', 'scope_all'],
      acrValues: ['eidas1'],
      identifierClaim: 'preferred_username',
      allowInsecureLoopback: true,
    };
    demo = await startDemo(layout, { logger: testLogger(), configOverrides: { auth: { lockout: { maxPerLogin: 5, maxPerAddress: 1000 }, oidc } } });
    provider = await startDemoOidcProvider({
      port: oidcPort,
      users: [
        { rpps: A().certificates.personal.rpps, givenName: 'Claire', familyName: 'Martin', login: 'claire.psc', password: 'psc-password-claire' },
        { rpps: '10009999998', givenName: 'Inès', familyName: 'Inconnue', login: 'ines.psc', password: 'psc-password-ines' },
      ],
      clients: [{ ...OIDC_CLIENT, redirectUris: layout.operators.map((op) => `${op.https}/api/auth/oidc/callback`) }],
      audience: OIDC_CLIENT.clientId,
      logger: testLogger(),
    });
    assert.equal(provider.issuer, oidc.issuer);
    ca = readFileSync(layout.caBundle, 'utf8');
    base = A().https!;
    assert.match(base, /^https:\/\/127\.0\.0\.1:\d+$/);
    secrets.push(claire().password, claire().appPassword);
  });
  after(async () => {
    await provider?.stop();
    await demo?.stop();
    cleanup();
  });

  test('plain HTTP never takes credentials: every /api/auth route answers 403', async () => {
    const b = new Browser(A().http!, ca);
    for (const [method, path] of [
      ['POST', '/api/auth/login'],
      ['GET', '/api/auth/session'],
      ['POST', '/api/auth/certificate'],
      ['GET', '/api/auth/nothing-here'],
    ]) {
      const r = await b.req(method, path, method === 'POST' ? { json: { login: claire().login, password: claire().password } } : {});
      assert.equal(r.status, 403, `${method} ${path}`);
      assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
      assert.equal(r.body.code, 'https-required');
      assert.equal(r.body.title, 'HTTPS required');
      assert.match(r.body.detail, /https:\/\//);
    }
    assert.equal(A().ports.https, demo.operators[0].ports.https);
    // The directory is still served over plain HTTP.
    assert.equal((await b.req('GET', '/healthz')).status, 200);
  });

  test('first login: password, then TOTP enrolment; cookie attributes; token rotated at full stage', async () => {
    const b = new Browser(base, ca);
    const bad = await b.req('POST', '/api/auth/login', { json: { login: claire().login, password: 'wrong-password' } });
    assert.equal(bad.status, 401);
    assert.equal(bad.body.code, 'bad-credentials');
    const unknown = await b.req('POST', '/api/auth/login', { json: { login: 'nobody.here', password: 'wrong-password' } });
    assert.equal(unknown.status, 401);
    assert.equal(unknown.body.detail, bad.body.detail, 'unknown login and wrong password answer alike');
    // Login endpoints take JSON only.
    const form = await b.req('POST', '/api/auth/login', { json: `login=${claire().login}`, headers: { 'content-type': 'text/plain' } });
    assert.equal(form.status, 415);
    assert.equal(form.body.code, 'json-required');
    const urlencoded = await b.req('POST', '/api/auth/login', { form: new URLSearchParams({ login: claire().login, password: claire().password }) });
    assert.equal(urlencoded.status, 415);
    assert.equal(urlencoded.body.code, 'json-required');

    const r = await b.req('POST', '/api/auth/login', { json: { login: claire().login, password: claire().password } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.stage, 'enrol-second-factor');
    assert.match(r.body.totp.uri, /^otpauth:\/\/totp\//);
    totpSecret = r.body.totp.secret;
    secrets.push(totpSecret);
    const setCookie = String(r.headers['set-cookie']);
    assert.match(setCookie, /^__Host-caducee_session=[A-Za-z0-9_-]{43};/);
    for (const attr of [/; Secure/i, /; HttpOnly/i, /; SameSite=Strict/i, /; Path=\//]) assert.match(setCookie, attr);
    assert.doesNotMatch(setCookie, /Domain=/i);
    const parsed = Cookie.parse(setCookie)!;
    assert.ok(parsed.secure && parsed.httpOnly && parsed.sameSite === 'strict' && parsed.path === '/');
    const pendingToken = (await b.sessionToken())!;
    assert.ok(pendingToken);
    secrets.push(pendingToken);

    // A pending session opens nothing.
    assert.equal((await b.req('GET', '/api/auth/session')).body.stage, 'enrol-second-factor');
    assert.equal((await b.req('GET', '/api/auth/app-passwords')).status, 401);
    // The second-factor route of the other stage is refused.
    assert.equal((await b.req('POST', '/api/auth/second-factor', { json: { code: '000000' } })).body.code, 'no-pending-login');

    const wrong = await b.req('POST', '/api/auth/second-factor/enrol', { json: { code: (Number(await totp(totpSecret)) + 1).toString().padStart(6, '0').slice(-6) } });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.code, 'bad-code');

    const code = await totp(totpSecret);
    secrets.push(code);
    const full = await b.req('POST', '/api/auth/second-factor/enrol', { json: { code } });
    assert.equal(full.status, 200, JSON.stringify(full.body));
    assert.equal(full.body.stage, 'full');
    assert.deepEqual(full.body.user, { login: claire().login, displayName: claire().displayName });
    assert.ok(full.body.csrfToken && Date.parse(full.body.expiresAt) > Date.now());
    assert.equal(full.body.recoveryCodes.length, 10);
    recoveryCodes = full.body.recoveryCodes;
    secrets.push(...recoveryCodes, full.body.csrfToken);

    // No fixation: the full session has a new token; the pending one is dead.
    const fullToken = (await b.sessionToken())!;
    secrets.push(fullToken);
    assert.notEqual(fullToken, pendingToken);
    const old = new Browser(base, ca);
    await old.jar.setCookie(`__Host-caducee_session=${pendingToken}; Secure; HttpOnly; SameSite=Strict; Path=/`, base);
    assert.equal((await old.req('GET', '/api/auth/session')).status, 401);

    const s = await b.req('GET', '/api/auth/session');
    assert.equal(s.status, 200);
    assert.equal(s.body.stage, 'full');
    assert.equal(s.body.method, 'PASSWORD+TOTP');

    // Logout: the cookie is cleared and the token no longer works anywhere.
    const out = await b.req('POST', '/api/auth/logout');
    assert.equal(out.status, 204);
    assert.equal((await b.req('GET', '/api/auth/session')).status, 401);
    const replay = new Browser(base, ca);
    await replay.jar.setCookie(`__Host-caducee_session=${fullToken}; Secure; HttpOnly; SameSite=Strict; Path=/`, base);
    const gone = await replay.req('GET', '/api/auth/session');
    assert.equal(gone.status, 401);
    assert.equal(gone.body.code, 'not-authenticated');
  });

  test('later logins: TOTP (never twice), recovery codes (once each)', async () => {
    assert.ok(totpSecret, 'runs after the enrolment test');
    const b = new Browser(base, ca);
    const r = await b.req('POST', '/api/auth/login', { json: { login: claire().login, password: claire().password } });
    assert.deepEqual(r.body, { stage: 'second-factor' });
    // The next time step (the enrolment used the current one).
    const code = await totp(totpSecret, 30);
    secrets.push(code);
    const ok = await b.req('POST', '/api/auth/second-factor', { json: { code } });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.stage, 'full');
    assert.equal(ok.body.method, 'PASSWORD+TOTP');

    const b2 = new Browser(base, ca);
    await b2.req('POST', '/api/auth/login', { json: { login: claire().login, password: claire().password } });
    const replayed = await b2.req('POST', '/api/auth/second-factor', { json: { code } });
    assert.equal(replayed.status, 401);
    assert.equal(replayed.body.code, 'replayed-code');
    assert.match(replayed.body.detail, /déjà été utilisé/);

    const rc = await b2.req('POST', '/api/auth/second-factor', { json: { code: recoveryCodes[0] } });
    assert.equal(rc.status, 200, JSON.stringify(rc.body));
    assert.equal(rc.body.method, 'PASSWORD+RECOVERY-CODE');
    assert.equal(rc.body.recoveryCodesLeft, 9);

    const b3 = new Browser(base, ca);
    await b3.req('POST', '/api/auth/login', { json: { login: claire().login, password: claire().password } });
    const again = await b3.req('POST', '/api/auth/second-factor', { json: { code: recoveryCodes[0] } });
    assert.equal(again.status, 401);
    assert.equal(again.body.code, 'bad-code');
    // Recovery codes are accepted as typed: spaces, capitals, no dash.
    const typed = recoveryCodes[1].toUpperCase().replace('-', ' ');
    assert.equal((await b3.req('POST', '/api/auth/second-factor', { json: { code: typed } })).status, 200);
  });

  test('a pending login ends after 5 wrong codes', async () => {
    const paul = layout.operators[1].users[0];
    const b = new Browser(layout.operators[1].https!, ca);
    assert.equal((await b.req('POST', '/api/auth/login', { json: { login: paul.login, password: paul.password } })).body.stage, 'enrol-second-factor');
    const answers: string[] = [];
    for (let i = 0; i < 5; i++) answers.push((await b.req('POST', '/api/auth/second-factor/enrol', { json: { code: 'abcdef' } })).body.code);
    assert.deepEqual(answers, ['bad-code', 'bad-code', 'bad-code', 'bad-code', 'too-many-codes']);
    assert.equal((await b.req('GET', '/api/auth/session')).status, 401);
    assert.equal((await b.req('POST', '/api/auth/second-factor/enrol', { json: { code: 'abcdef' } })).body.code, 'no-pending-login');
  });

  test('certificate login: the demo practitioner’s CPS-like certificate opens a full session; others are refused', async () => {
    const personal = A().certificates.personal;
    const b = new Browser(base, ca, { cert: readFileSync(personal.cert, 'utf8'), key: readFileSync(personal.key, 'utf8') });
    const r = await b.req('POST', '/api/auth/certificate', { json: {} });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.stage, 'full');
    assert.equal(r.body.user.login, personal.login);
    assert.equal(r.body.method, 'CERTIFICATE');

    const none = await new Browser(base, ca).req('POST', '/api/auth/certificate', { json: {} });
    assert.equal(none.status, 401);
    assert.equal(none.body.code, 'certificate-refused');
    assert.equal(none.body.reason, 'no-certificate');

    const pki = await TestPki.load(layout.pkiDir);
    const unknown = await pki.issuePersonal({ rpps: '10008888889', givenName: 'Marc', surname: 'Absent' });
    const revoked = await pki.issuePersonal({ rpps: personal.rpps, givenName: 'Claire', surname: 'Martin' });
    await pki.revoke(revoked.serialHex);
    demo.operators[0].reloadAnchors();
    for (const [issued, reason] of [
      [unknown, 'unknown-identifier'],
      [revoked, 'revoked'],
    ] as const) {
      const c = new Browser(base, ca, { cert: issued.chainPem ?? issued.certPem, key: issued.keyPem });
      const refused = await c.req('POST', '/api/auth/certificate', { json: {} });
      assert.equal(refused.status, 401, reason);
      assert.equal(refused.body.code, 'certificate-refused');
      assert.equal(refused.body.reason, reason);
      assert.equal(await c.sessionToken(), undefined);
    }
  });

  test('CSRF header and Origin checked; sessions listed and revoked; app passwords work with IMAP until revoked', async () => {
    const personal = A().certificates.personal;
    const b = new Browser(base, ca, { cert: readFileSync(personal.cert, 'utf8'), key: readFileSync(personal.key, 'utf8') });
    assert.equal((await b.req('POST', '/api/auth/certificate', { json: {} })).status, 200);
    const other = new Browser(base, ca, b.clientCert);
    assert.equal((await other.req('POST', '/api/auth/certificate', { json: {} })).status, 200);
    secrets.push(b.csrf!, other.csrf!);

    // CSRF: missing or wrong header → 403; foreign Origin → 403 even with the right token.
    const missing = await b.req('POST', '/api/auth/app-passwords', { json: { label: 'Thunderbird' }, csrf: false });
    assert.equal(missing.status, 403);
    assert.equal(missing.body.code, 'csrf');
    const wrong = await b.req('POST', '/api/auth/app-passwords', { json: { label: 'Thunderbird' }, headers: { 'x-csrf-token': other.csrf! } });
    assert.equal(wrong.status, 403);
    assert.equal(wrong.body.code, 'csrf');
    const foreign = await b.req('POST', '/api/auth/app-passwords', { json: { label: 'Thunderbird' }, headers: { origin: 'https://evil.example' } });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.body.code, 'foreign-origin');
    const foreignLogin = await new Browser(base, ca).req('POST', '/api/auth/login', { json: { login: claire().login, password: claire().password }, headers: { origin: 'https://evil.example' } });
    assert.equal(foreignLogin.status, 403);
    assert.equal((await b.req('POST', '/api/auth/logout', { csrf: false })).status, 403, 'logout needs the CSRF header too');
    // Our own origin is fine.
    const created = await b.req('POST', '/api/auth/app-passwords', { json: { label: 'Thunderbird' }, headers: { origin: base } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.label, 'Thunderbird');
    assert.match(created.body.password, /^[a-z2-9]{5}(-[a-z2-9]{5}){3}$/);
    secrets.push(created.body.password);
    const listed = await b.req('GET', '/api/auth/app-passwords');
    assert.ok(listed.body.appPasswords.some((a: any) => a.id === created.body.id && a.label === 'Thunderbird' && !('password' in a)));

    const imap = (pass: string) =>
      new ImapFlow({
        host: '127.0.0.1',
        port: demo.operators[0].ports.imaps,
        secure: true,
        auth: { user: claire().login, pass },
        tls: { ca, servername: 'localhost' },
        logger: false,
      } as any);
    const c = imap(created.body.password);
    await c.connect();
    assert.ok((await c.list()).some((m) => m.path === 'INBOX'));
    await c.logout();
    // The account password is not a mail-client password.
    await assert.rejects(() => imap(claire().password).connect());

    assert.equal((await b.req('DELETE', `/api/auth/app-passwords/${created.body.id}`)).status, 204);
    await assert.rejects(() => imap(created.body.password).connect());
    assert.equal((await b.req('DELETE', `/api/auth/app-passwords/${created.body.id}`)).status, 404);
    // The web goes through the same audited Authenticator methods as the command line: the user
    // acting on their own account, from their address, protocol 'http'.
    const managed = (await demo.operators[0].store.listAuthAudit(200)).filter((e) => e.protocol === 'http' && e.method.startsWith('APP-PASSWORD-')).reverse();
    assert.deepEqual(
      managed.slice(-4).map((e) => [e.method, e.login, e.actor, e.success, e.reason]),
      [
        ['APP-PASSWORD-CREATE', claire().login, claire().login, true, null],
        ['APP-PASSWORD-LIST', claire().login, claire().login, true, null],
        ['APP-PASSWORD-REVOKE', claire().login, claire().login, true, null],
        ['APP-PASSWORD-REVOKE', claire().login, claire().login, false, 'not-found'],
      ],
    );
    assert.ok(managed.every((e) => e.remote), 'the address is recorded');

    // Sessions: both listed, the current one marked; revoking the other ends it.
    const list = await b.req('GET', '/api/auth/sessions');
    assert.equal(list.status, 200);
    const mine = list.body.sessions.filter((s: any) => s.current);
    assert.equal(mine.length, 1);
    assert.equal(mine[0].method, 'CERTIFICATE');
    assert.equal(mine[0].remote, '127.0.0.1');
    const otherId = (await other.req('GET', '/api/auth/sessions')).body.sessions.find((s: any) => s.current).id;
    assert.notEqual(otherId, mine[0].id);
    assert.ok(list.body.sessions.some((s: any) => s.id === otherId && !s.current));
    assert.equal((await b.req('DELETE', `/api/auth/sessions/${otherId}`, { csrf: false })).status, 403);
    assert.equal((await b.req('DELETE', `/api/auth/sessions/${otherId}`)).status, 204);
    const dead = await other.req('GET', '/api/auth/session');
    assert.equal(dead.status, 401);
    assert.equal((await b.req('GET', '/api/auth/session')).status, 200);
  });

  test('lockout after repeated failures: 429 with Retry-After, even with the right password', async () => {
    const sec = A().users[1];
    const b = new Browser(base, ca);
    for (let i = 0; i < 5; i++) assert.equal((await b.req('POST', '/api/auth/login', { json: { login: sec.login, password: `wrong-${i}` } })).status, 401);
    const r = await b.req('POST', '/api/auth/login', { json: { login: sec.login, password: sec.password } });
    assert.equal(r.status, 429);
    assert.equal(r.body.code, 'locked');
    assert.ok(Number(r.headers['retry-after']) > 0);
    secrets.push(sec.password);
  });

  /** Browser flow: /api/auth/oidc/login → provider's login page → form → back to our callback. */
  const oidcFlow = async (b: Browser, login: string, password: string, returnTo = '/boite-de-reception'): Promise<Res> => {
    const start = await b.req('GET', `/api/auth/oidc/login?returnTo=${encodeURIComponent(returnTo)}`);
    assert.equal(start.status, 302, JSON.stringify(start.body));
    const txCookie = String(start.headers['set-cookie']);
    assert.match(txCookie, /^__Host-caducee_oidc=[A-Za-z0-9_-]+;/);
    for (const attr of [/; Secure/i, /; HttpOnly/i, /; SameSite=Lax/i, /; Path=\//]) assert.match(txCookie, attr);
    const authUrl = new URL(start.headers.location!);
    assert.equal(authUrl.origin, provider.issuer);
    assert.equal(authUrl.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(authUrl.searchParams.get('acr_values'), 'eidas1');
    assert.ok(authUrl.searchParams.get('state') && authUrl.searchParams.get('nonce') && authUrl.searchParams.get('code_challenge'));
    assert.equal(authUrl.searchParams.get('redirect_uri'), `${base}/api/auth/oidc/callback`);
    let url = authUrl.href;
    let form: URLSearchParams | undefined;
    for (let step = 0; step < 20; step++) {
      const r = await b.req(form ? 'POST' : 'GET', url, form ? { form } : {});
      form = undefined;
      if (url.startsWith(`${base}/api/auth/oidc/callback`)) return r;
      if (r.status >= 300 && r.status < 400) {
        url = new URL(r.headers.location!, url).href;
        continue;
      }
      assert.equal(r.status, 200, `${url}: ${r.status}`);
      const action = findLoginFormAction(String(r.body));
      assert.ok(action, `no login form at ${url}`);
      url = new URL(action, url).href;
      form = new URLSearchParams({ identifiant: login, motdepasse: password });
    }
    throw new Error('the OIDC flow never came back to the callback');
  };

  test('OpenID Connect web login (demo Pro Santé Connect): full session for a known RPPS, 403 for an unknown one', async () => {
    const b = new Browser(base, ca);
    const r = await oidcFlow(b, 'claire.psc', 'psc-password-claire');
    assert.equal(r.status, 302, JSON.stringify(r.body));
    assert.equal(r.headers.location, '/boite-de-reception');
    assert.match(String(r.headers['set-cookie']), /__Host-caducee_session=[A-Za-z0-9_-]{43};.*SameSite=Strict/);
    const s = await b.req('GET', '/api/auth/session');
    assert.equal(s.status, 200);
    assert.equal(s.body.stage, 'full');
    assert.equal(s.body.method, 'OIDC');
    assert.equal(s.body.user.login, claire().login);
    secrets.push('psc-password-claire', (await b.sessionToken())!);

    // The transaction is single use: replaying the callback is refused.
    const again = await b.req('GET', `/api/auth/oidc/callback?code=x&state=y`);
    assert.equal(again.status, 400);
    assert.equal(again.body.code, 'oidc-invalid');

    const stranger = new Browser(base, ca);
    const refused = await oidcFlow(stranger, 'ines.psc', 'psc-password-ines');
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.equal(refused.body.code, 'unknown-identifier');
    assert.match(refused.body.detail, /aucun compte de messagerie/);
    assert.equal(await stranger.sessionToken(), undefined);

    const audit = await demo.operators[0].store.listAuthAudit(100);
    assert.ok(audit.some((e) => e.method === 'OIDC' && e.success && e.login === claire().login));
    assert.ok(audit.some((e) => e.method === 'OIDC' && !e.success && e.reason === 'unknown-identifier' && e.login === 'rpps:10009999998'));
    // returnTo is a path of this site only.
    assert.equal(safeReturnTo('//evil.example/x'), '/');
    assert.equal(safeReturnTo('https://evil.example/'), '/');
    assert.equal(safeReturnTo('/\\evil.example'), '/');
    assert.equal(safeReturnTo('/dossiers?x=1'), '/dossiers?x=1');
  });

  test('sessions end after the idle time and the absolute lifetime; pending ones after 10 minutes', async () => {
    const store = demo.operators[0].store;
    const user = (await store.findUserByLogin(claire().login))!;
    let now = Date.now();
    const idleMs = 30 * 60_000;
    const maxMs = 12 * 3_600_000;
    const m = new SessionManager(store, { idleMs, maxMs }, () => now);
    const open = async (stage: 'full' | 'second-factor') => {
      let token = '';
      const reply = { setCookie: (_n: string, v: string) => (token = v) } as any;
      await m.open(reply, { headers: {}, ip: '127.0.0.1' } as any, user, 'TEST', stage);
      return token;
    };
    const current = (token: string) => m.current({ cookies: { [SESSION_COOKIE]: token }, headers: {} } as any);

    // Idle: each request pushes the idle deadline; a pause longer than idleMs ends the session.
    const idle = await open('full');
    now += idleMs - 1000;
    assert.ok(await current(idle));
    now += idleMs - 1000;
    assert.ok(await current(idle), 'the previous request reset the idle clock');
    now += idleMs;
    assert.equal(await current(idle), null);
    now -= idleMs; // revoked on sight: coming back in time does not revive it
    assert.equal(await current(idle), null);

    // Absolute: active all along, still over after maxMs.
    const start = (now = Date.now());
    const busy = await open('full');
    while (now + idleMs / 2 < start + maxMs) {
      now += idleMs / 2;
      assert.ok(await current(busy));
    }
    now = start + maxMs;
    assert.equal(await current(busy), null);

    now = Date.now();
    const pending = await open('second-factor');
    now += PENDING_SESSION_MS - 1000;
    assert.ok(await current(pending));
    now += 2000;
    assert.equal(await current(pending), null);
  });

  test('the audit trail records web attempts and no secret', async () => {
    const audit = await demo.operators[0].store.listAuthAudit(500);
    const web = audit.filter((e) => e.protocol === 'http');
    for (const m of ['PASSWORD', 'TOTP', 'TOTP-ENROL', 'RECOVERY-CODE', 'CERTIFICATE']) assert.ok(web.some((e) => e.method === m), `audited: ${m}`);
    assert.ok(web.some((e) => e.reason === 'replayed-code'));
    assert.ok(web.some((e) => e.reason === 'locked'));
    const text = JSON.stringify(audit);
    for (const s of secrets) assert.ok(!text.includes(s), 'a secret leaked into the audit trail');
  });

  test('OpenAPI: every registered /api/auth route is described', async () => {
    const routes: RouteOptions[] = [];
    const op = demo.operators[0];
    const app = buildHttpApp({
      logger: testLogger(),
      onRoute: (r) => routes.push(r),
      web: {
        auth: new Authenticator(demo.operators[0].store),
        store: demo.operators[0].store,
        totpIssuer: 'test',
        lockoutSeconds: 60,
        session: { idleMs: 60_000, maxMs: 3_600_000 },
        oidc: { settings: resolveOidcSettings(op.config.auth.oidc!), logger: testLogger() },
      },
    });
    await app.ready();
    const doc = (await app.inject({ method: 'GET', url: '/api/openapi.json' })).json();
    await app.close();
    assert.equal(doc.openapi, '3.1.0');
    const auth = routes.filter((r) => r.url.startsWith('/api/auth'));
    assert.ok(auth.length >= 14);
    assert.ok(auth.some((r) => r.url === '/api/auth/oidc/callback'));
    // Every /api route (the mail API /api/v1 too: test/mail-api.test.ts builds the app with it).
    for (const r of routes.filter((x) => x.url.startsWith('/api/') && x.url !== '/api/openapi.json'))
      for (const m of [r.method].flat()) {
        if (m === 'HEAD') continue;
        const p = r.url.replace(/:(\w+)/g, '{$1}');
        assert.ok(doc.paths[p]?.[m.toLowerCase()], `${m} ${r.url} is not in the OpenAPI document`);
      }
    assert.ok(doc.components.securitySchemes.session.name === '__Host-caducee_session');
    assert.ok(doc.components.securitySchemes.csrf.name === 'X-CSRF-Token');
    // And the served document is the same over HTTPS.
    assert.deepEqual((await new Browser(base, ca).req('GET', '/api/openapi.json')).body.paths['/api/auth/login'], doc.paths['/api/auth/login']);
  });
});
