// `caducee demo` brings its own stand-in for Pro Santé Connect (a real OpenID provider whose
// users are the demo practitioners): mail software gets a token from it and logs in over IMAP
// and SMTP; a professional logs in to the web through it (authorization code + PKCE, the
// provider's login form, back to the operator's HTTPS callback on a system-chosen port).
import assert from 'node:assert/strict';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import { CookieJar } from 'tough-cookie';
import { findLoginFormAction, loginWithBrowserFlow } from './support/oidc-browser.js';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { folderMessages, tempDir, testLogger, waitFor } from './helpers.js';

describe('the demo Pro Santé Connect stand-in', () => {
  const { dir, cleanup } = tempDir('caducee-demo-psc-');
  let layout: DemoLayout;
  let demo: RunningDemo;
  let ca: string;
  before(async () => {
    layout = await prepareDemo(dir, { ports: 'ephemeral' });
    demo = await startDemo(layout, { logger: testLogger() });
    ca = readFileSync(layout.caBundle, 'utf8');
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  const tokenFor = (login: string, password: string) =>
    loginWithBrowserFlow({ issuer: layout.psc!.issuer, clientId: layout.psc!.softwareClient.clientId, redirectUri: layout.psc!.softwareClient.redirectUri, login, password, resource: layout.psc!.resource }).then(
      (t) => t.accessToken,
    );

  test('the layout names the provider; its tokens open IMAP (OAUTHBEARER) and SMTP (XOAUTH2) at the right operator only', async () => {
    assert.match(layout.psc!.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(
      layout.psc!.users.map((u) => u.login),
      layout.operators.map((op) => op.certificates.personal.login),
    );
    const [A, B] = layout.operators;
    const claire = A.users[0];
    const paul = B.users[0];
    const token = await tokenFor(claire.login, claire.password);
    const imap = new ImapFlow({ host: '127.0.0.1', port: A.ports.imaps, secure: true, tls: { ca, servername: 'localhost' }, auth: { user: claire.login, accessToken: token }, logger: false });
    await imap.connect();
    assert.ok((await imap.list()).some((f) => f.path === 'INBOX'));
    await imap.logout();
    const subject = `Jeton PSC demo ${Date.now()}`;
    await nodemailer
      .createTransport({ host: '127.0.0.1', port: A.ports.submission, secure: false, requireTLS: true, tls: { ca, servername: 'localhost' }, auth: { type: 'OAuth2', user: claire.login, accessToken: token } } as any)
      .sendMail({ from: claire.addresses[0], to: paul.addresses[0], subject, text: 'Envoyé avec un jeton du fournisseur de démonstration.' });
    await waitFor(async () => (await folderMessages(demo.operators[1], paul.addresses[0])).some((m) => m.toString().includes(subject)), 'delivery at B');
    // Claire's RPPS is unknown at operator B: her token opens nothing there.
    const atB = new ImapFlow({ host: '127.0.0.1', port: B.ports.imaps, secure: true, tls: { ca, servername: 'localhost' }, auth: { user: claire.login, accessToken: token }, logger: false });
    await assert.rejects(atB.connect());
    atB.close();
    // Paul's token works at B.
    const paulToken = await tokenFor(paul.login, paul.password);
    const atB2 = new ImapFlow({ host: '127.0.0.1', port: B.ports.imaps, secure: true, tls: { ca, servername: 'localhost' }, auth: { user: paul.login, accessToken: paulToken }, logger: false });
    await atB2.connect();
    await atB2.logout();
  });

  test('web login through the stand-in lands with a full session on the operator', async () => {
    const A = layout.operators[0];
    const claire = A.users[0];
    const jar = new CookieJar();
    const get = (url: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}) =>
      new Promise<{ status: number; location?: string; text: string; type?: string }>(async (resolve, reject) => {
        const u = new URL(url);
        const headers: Record<string, string> = { ...init.headers };
        const cookie = await jar.getCookieString(u.href);
        if (cookie) headers.cookie = cookie;
        const lib = u.protocol === 'https:' ? https : await import('node:http');
        const r = (lib as typeof https).request(u, { method: init.method ?? 'GET', headers, ca, agent: false } as https.RequestOptions, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d) => (text += d));
          res.on('end', async () => {
            for (const c of res.headers['set-cookie'] ?? []) await jar.setCookie(c, u.href);
            resolve({ status: res.statusCode!, location: res.headers.location, text, type: res.headers['content-type'] });
          });
        });
        r.on('error', reject);
        r.end(init.body);
      });
    let url = `${A.https}/api/auth/oidc/login`;
    let body: string | undefined;
    let landed = false;
    for (let i = 0; i < 20 && !landed; i++) {
      const r = await get(url, body ? { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } } : {});
      body = undefined;
      if (r.status >= 300 && r.status < 400 && r.location) {
        const next = new URL(r.location, url);
        if (url.includes('/api/auth/oidc/callback')) landed = true;
        url = next.href;
        continue;
      }
      assert.equal(r.status, 200, `${url}: ${r.text.slice(0, 300)}`);
      const action = findLoginFormAction(r.text);
      assert.ok(action, `a login form at ${url}`);
      url = new URL(action!, url).href;
      body = new URLSearchParams({ identifiant: claire.login, motdepasse: claire.password }).toString();
    }
    assert.ok(landed, 'came back through the callback');
    const session = await get(`${A.https}/api/auth/session`, { headers: { accept: 'application/json' } });
    assert.equal(session.status, 200, session.text);
    const s = JSON.parse(session.text);
    assert.equal(s.user.login, claire.login);
    const audit = await demo.operators[0].store.listAuthAudit(20);
    assert.ok(audit.some((e) => e.success && e.protocol === 'http' && /OIDC/i.test(e.method)), JSON.stringify(audit));
  });
});
