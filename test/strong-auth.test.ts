// Strong authentication over the mail protocols, end to end on real sockets: Pro Santé
// Connect-style access tokens (a real OpenID provider, oidc-provider, standing in for PSC)
// with SASL XOAUTH2 / OAUTHBEARER from imapflow, nodemailer and raw dialogues, and TLS client
// certificates (CPS-like personal, IGC-Santé organisation) with SASL EXTERNAL — and the
// refusals: other issuer, expired, wrong audience, forged signature, revoked certificate,
// unknown practitioner, identity mismatch.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { SignJWT, importJWK, type JWK } from 'jose';
import nodemailer from 'nodemailer';
import { generateSigningJwk, startDemoOidcProvider, type DemoOidcProvider } from '../src/demo/oidc-provider.js';
import { loginWithBrowserFlow } from './support/oidc-browser.js';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { TestPki } from '../src/pki/index.js';
import { dialogue, folderMessages, rawImap, smtpSession, tempDir, testLogger, waitFor } from './helpers.js';

const AUDIENCE = 'https://caducee.test/mail';
const CLIENT = { clientId: 'lps-demo', redirectUris: ['http://127.0.0.1/lps-callback'] };

/** An SMTP session over implicit TLS (465-style), optionally with a client certificate (file paths). */
const smtpConn = (port: number, ca: string, cert?: { cert: string; key: string }) =>
  smtpSession({ port, implicitTls: true, ca, ...(cert ? { cert: readFileSync(cert.cert, 'utf8'), key: readFileSync(cert.key, 'utf8') } : {}) });

const b64 = (s: string) => Buffer.from(s).toString('base64');
const xoauth2 = (user: string, token: string) => b64(`user=${user}\x01auth=Bearer ${token}\x01\x01`);
const oauthbearer = (user: string, token: string) => b64(`n,a=${user},\x01host=localhost\x01auth=Bearer ${token}\x01\x01`);

describe('strong authentication over IMAP and SMTP', () => {
  const { dir, cleanup } = tempDir('caducee-strong-');
  let layout: DemoLayout;
  let demo: RunningDemo;
  let provider: DemoOidcProvider;
  let otherProvider: DemoOidcProvider;
  let signingKey: JWK;
  let ca: string;
  let token: string;
  let providerStopped = false;
  const A = () => layout.operators[0];
  const claire = () => A().users[0];
  const secretary = () => A().users[1];

  before(async () => {
    layout = await prepareDemo(dir, { ports: 'ephemeral' });
    ca = readFileSync(layout.caBundle, 'utf8');
    signingKey = await generateSigningJwk('psc-demo-key');
    const users = layout.operators.flatMap((op) => {
      const pr = op.certificates.personal;
      const u = op.users.find((x) => x.login === pr.login)!;
      const [givenName, familyName] = u.displayName.replace(/^Dr /, '').split(' ');
      return [{ rpps: pr.rpps, givenName, familyName, login: u.login, password: u.password }];
    });
    // A practitioner known to the provider but to no operator.
    users.push({ rpps: '10009999999', givenName: 'Inès', familyName: 'Inconnue', login: 'ines.inconnue', password: 'mot-de-passe-ines' });
    provider = await startDemoOidcProvider({ users, clients: [CLIENT], audience: AUDIENCE, jwks: { keys: [signingKey] }, logger: testLogger() });
    otherProvider = await startDemoOidcProvider({ users, clients: [CLIENT], audience: AUDIENCE, logger: testLogger() });
    demo = await startDemo(layout, {
      logger: testLogger(),
      // Many refusals in a row for one login below: keep the lockout out of the way here
      // (it has its own tests in src/auth and test/web-auth).
      configOverrides: { auth: { lockout: { maxPerLogin: 1000, maxPerAddress: 1000 }, oidc: { issuer: provider.issuer, clientId: 'caducee', audience: [AUDIENCE], acrValues: ['eidas1'], allowInsecureLoopback: true } } },
    });
    token = (await loginWithBrowserFlow({ issuer: provider.issuer, clientId: CLIENT.clientId, redirectUri: CLIENT.redirectUris[0], login: claire().login, password: claire().password, resource: provider.resource })).accessToken;
  });
  after(async () => {
    await demo?.stop();
    if (!providerStopped) await provider?.stop();
    await otherProvider?.stop();
    cleanup();
  });

  test('imapflow logs in with a PSC-style access token (OAUTHBEARER) and sees the mailbox', async () => {
    const c = await rawImap(A().ports.imaps, ca);
    assert.match(c.greeting, /AUTH=XOAUTH2/);
    assert.match(c.greeting, /AUTH=OAUTHBEARER/);
    assert.doesNotMatch(c.greeting, /AUTH=EXTERNAL/, 'EXTERNAL is offered only to a client that presented a certificate');
    c.close();
    const client = new ImapFlow({ host: '127.0.0.1', port: A().ports.imaps, secure: true, tls: { ca, servername: 'localhost' }, auth: { user: claire().login, accessToken: token }, logger: false });
    await client.connect();
    const list = await client.list();
    assert.ok(list.some((f) => f.path === 'INBOX'));
    await client.logout();
  });

  test('XOAUTH2 over raw IMAP: success, and the error challenge then NO for a bad token', async () => {
    const c = await rawImap(A().ports.imaps, ca);
    const bad = await c.cmd(`AUTHENTICATE XOAUTH2 ${xoauth2(claire().login, token.slice(0, -4) + 'AAAA')}`);
    const challenge = bad.find((l) => l.startsWith('+ '))!;
    assert.ok(challenge, bad.join('\n'));
    const err = JSON.parse(Buffer.from(challenge.slice(2), 'base64').toString());
    assert.equal(err.status, '401');
    assert.equal(err.schemes, 'bearer');
    assert.match(bad.at(-1)!, /^t1 NO \[AUTHENTICATIONFAILED\]/);
    const ok = await c.cmd(`AUTHENTICATE XOAUTH2 ${xoauth2(claire().addresses[0], token)}`);
    assert.match(ok.at(-1)!, /^t2 OK /, ok.join('\n'));
    c.close();
  });

  test('SMTP submission: nodemailer sends with XOAUTH2; OAUTHBEARER works too', async () => {
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: A().ports.submissions,
      secure: true,
      tls: { ca, servername: 'localhost' },
      auth: { type: 'OAuth2', user: claire().login, accessToken: token },
    } as any);
    const paul = layout.operators[1].users[0].addresses[0];
    const subject = `Jeton PSC ${Date.now()}`;
    await transport.sendMail({ from: claire().addresses[0], to: paul, subject, text: 'Compte rendu envoyé avec un jeton Pro Santé Connect.' });
    await waitFor(async () => (await folderMessages(demo.operators[1], paul)).some((m) => m.toString().includes(subject)), 'delivery to B');
    const s = await smtpConn(A().ports.submissions, ca);
    assert.match(await s.send(`AUTH OAUTHBEARER ${oauthbearer(claire().login, token)}`), /^235 2\.7\.0/);
    s.close();
  });

  test('refused tokens: other issuer, expired, wrong audience, forged signature, low acr, unknown practitioner, other user', async () => {
    const key = await importJWK(signingKey, 'RS256');
    const now = Math.floor(Date.now() / 1000);
    const claims = { preferred_username: `8${A().certificates.personal.rpps}`, acr: 'eidas1', scope: 'openid scope_all' };
    const sign = (c: Record<string, unknown>, o: { iat?: number; exp?: number; aud?: string; k?: any; kid?: string } = {}) =>
      new SignJWT(c)
        .setProtectedHeader({ alg: 'RS256', kid: o.kid ?? 'psc-demo-key', typ: 'at+jwt' })
        .setIssuer(provider.issuer)
        .setAudience(o.aud ?? AUDIENCE)
        .setSubject('sub-claire')
        .setIssuedAt(o.iat ?? now)
        .setExpirationTime(o.exp ?? now + 300)
        .sign(o.k ?? key);
    // Sanity: a token we sign with the provider's own key the same way is accepted.
    const good = await sign(claims);
    const forgedKey = await importJWK(await generateSigningJwk('psc-demo-key'), 'RS256');
    const cases: [string, string, string][] = [
      ['other issuer', (await loginWithBrowserFlow({ issuer: otherProvider.issuer, clientId: CLIENT.clientId, redirectUri: CLIENT.redirectUris[0], login: claire().login, password: claire().password, resource: otherProvider.resource })).accessToken, claire().login],
      ['expired', await sign(claims, { iat: now - 7200, exp: now - 3600 }), claire().login],
      ['wrong audience', await sign(claims, { aud: 'https://autre-service.test' }), claire().login],
      ['forged signature', await sign(claims, { k: forgedKey }), claire().login],
      ['acr too low', await sign({ ...claims, acr: 'eidas0' }), claire().login],
      ['unknown practitioner', await sign({ ...claims, preferred_username: '810009999999' }), 'ines.inconnue'],
      ['someone else', good, secretary().login],
    ];
    const c = await rawImap(A().ports.imaps, ca);
    for (const [what, t, user] of cases) {
      const r = await c.cmd(`AUTHENTICATE OAUTHBEARER ${oauthbearer(user, t)}`, ['\x01']);
      assert.match(r.at(-1)!, /^t\d+ NO \[(AUTHENTICATIONFAILED|AUTHORIZATIONFAILED)\]/, `${what}: ${r.join(' | ')}`);
      const s = await smtpConn(A().ports.submissions, ca);
      const first = await s.send(`AUTH XOAUTH2 ${xoauth2(user, t)}`);
      assert.match(first, /^334 /, what);
      assert.match(await s.send(''), /^535 5\.7\.8 /, what);
      s.close();
    }
    const ok = await c.cmd(`AUTHENTICATE OAUTHBEARER ${oauthbearer(claire().login, good)}`);
    assert.match(ok.at(-1)!, /OK/);
    c.close();
    const audit = await demo.operators[0].store.listAuthAudit(200);
    const oauthRows = audit.filter((e) => e.method === 'OAUTHBEARER' || e.method === 'XOAUTH2');
    assert.ok(oauthRows.some((e) => e.success) && oauthRows.filter((e) => !e.success).length >= cases.length * 2);
    assert.ok(oauthRows.some((e) => !e.success && e.reason === 'unknown-identifier'));
    assert.ok(oauthRows.some((e) => !e.success && e.reason === 'identity-mismatch'));
    const dump = JSON.stringify(audit);
    for (const [, t] of cases) assert.ok(!dump.includes(t.slice(-20)), 'no token in the audit trail');
  });

  test('provider unreachable: a server that has no keys yet fails temporarily; cached keys still work', async () => {
    // Operator A fetched the provider's keys at the first login; operator B (same provider
    // settings) has never needed them. Now the provider goes away.
    await provider.stop();
    providerStopped = true;
    const B = layout.operators[1];
    const c = await rawImap(B.ports.imaps, ca);
    const r = await c.cmd(`AUTHENTICATE OAUTHBEARER ${oauthbearer(claire().login, token)}`, ['\x01']);
    assert.match(r.at(-1)!, /^t1 NO \[UNAVAILABLE\] .*try again/, r.join(' | '));
    c.close();
    const s = await smtpConn(B.ports.submissions, ca);
    assert.match(await s.send(`AUTH XOAUTH2 ${xoauth2(claire().login, token)}`), /^334 /);
    assert.match(await s.send(''), /^454 4\.7\.0 /);
    s.close();
    const atA = await rawImap(A().ports.imaps, ca);
    const ok = await atA.cmd(`AUTHENTICATE XOAUTH2 ${xoauth2(claire().login, token)}`);
    assert.match(ok.at(-1)!, /^t1 OK /, ok.join(' | '));
    atA.close();
    const audit = await demo.operators[1].store.listAuthAudit(10);
    assert.ok(audit.some((e) => e.reason === 'unavailable'));
  });

  test('personal certificate: SASL EXTERNAL logs its practitioner in over IMAP and SMTP', async () => {
    const cert = A().certificates.personal;
    const c = await rawImap(A().ports.imaps, ca, cert);
    assert.match(c.greeting, /AUTH=EXTERNAL/);
    const r = await c.cmd('AUTHENTICATE EXTERNAL =');
    assert.match(r.at(-1)!, /^t1 OK /, r.join('\n'));
    const list = await c.cmd('LIST "" "*"');
    assert.ok(list.some((l) => /"INBOX"|INBOX$/.test(l)));
    // Authorisation identity naming someone else's mailbox: refused.
    const c2 = await rawImap(A().ports.imaps, ca, cert);
    const r2 = await c2.cmd(`AUTHENTICATE EXTERNAL ${b64(layout.operators[0].users[1].addresses[0] + 'x')}`);
    assert.match(r2.at(-1)!, /NO \[AUTHORIZATIONFAILED\]/);
    c.close();
    c2.close();
    const s = await smtpConn(A().ports.submissions, ca, cert);
    assert.match(await s.send('AUTH EXTERNAL ='), /^235 /);
    assert.match(await s.send(`MAIL FROM:<${claire().addresses[0]}>`), /^250/);
    s.close();
    // Without a certificate, EXTERNAL fails cleanly.
    const s2 = await smtpConn(A().ports.submissions, ca);
    assert.match(await s2.send('AUTH EXTERNAL ='), /^535 5\.7\.8 .*certificate/);
    s2.close();
  });

  test('EXTERNAL after STARTTLS too (IMAP 143-style, submission 587-style)', async () => {
    const cert = A().certificates.personal;
    const net = await import('node:net');
    const plain = net.connect(A().ports.imap, '127.0.0.1');
    let buf = '';
    const onData = (d: Buffer) => (buf += d.toString());
    plain.on('data', onData);
    const waitLine = async (re: RegExp) => {
      for (let i = 0; i < 200 && !re.test(buf); i++) await new Promise((r) => setTimeout(r, 10));
      assert.match(buf, re);
    };
    await waitLine(/^\* OK .*\r\n/);
    assert.doesNotMatch(buf, /AUTH=/, 'no mechanism before TLS');
    plain.write('s1 STARTTLS\r\n');
    await waitLine(/s1 OK/);
    plain.off('data', onData);
    const secure = tls.connect({ socket: plain, ca, servername: 'localhost', cert: readFileSync(cert.cert), key: readFileSync(cert.key) });
    await new Promise<void>((resolve, reject) => (secure.once('secureConnect', () => resolve()), secure.once('error', reject)));
    buf = '';
    secure.on('data', onData);
    secure.write('s2 CAPABILITY\r\n');
    await waitLine(/s2 OK/);
    assert.match(buf, /AUTH=EXTERNAL/);
    secure.write('s3 AUTHENTICATE EXTERNAL =\r\n');
    await waitLine(/s3 (OK|NO|BAD)/);
    assert.match(buf, /s3 OK /);
    secure.destroy();
    const replies = await dialogue({ port: A().ports.submission, cert: readFileSync(cert.cert, 'utf8'), key: readFileSync(cert.key, 'utf8'), commands: ['AUTH EXTERNAL =', `MAIL FROM:<${claire().addresses[0]}>`] });
    assert.match(replies[0], /^235 /);
    assert.match(replies[1], /^250 /);
  });

  test('organisation certificate opens only the APP mailboxes of its structure', async () => {
    const org = A().certificates.organisation;
    const c = await rawImap(A().ports.imaps, ca, org);
    const r = await c.cmd('AUTHENTICATE EXTERNAL =');
    assert.match(r.at(-1)!, /^t1 OK /, r.join('\n'));
    const list = (await c.cmd('LIST "" "*"')).join('\n');
    assert.match(list, /INBOX/);
    assert.doesNotMatch(list, new RegExp(claire().addresses[0].replace('.', '\\.')), 'no personal mailbox of the practitioner');
    assert.doesNotMatch(list, /Autres utilisateurs|Partagés/);
    const other = await c.cmd(`SELECT "Autres utilisateurs/${claire().addresses[0]}/INBOX"`);
    assert.match(other.at(-1)!, /NO/);
    c.close();
    // Sending: as the APP mailbox yes, as the practitioner no.
    const s = await smtpConn(A().ports.submissions, ca, org);
    assert.match(await s.send('AUTH EXTERNAL ='), /^235 /);
    assert.match(await s.send(`MAIL FROM:<${org.appMailbox}>`), /^250/);
    await s.send('RSET');
    assert.match(await s.send(`MAIL FROM:<${claire().addresses[0]}>`), /^550 5\.7\.1/);
    s.close();
  });

  test('revoked certificate and certificate of an unknown practitioner are refused', async () => {
    const pki = await TestPki.load(layout.pkiDir);
    const unknown = await pki.issuePersonal({ rpps: '10008888888', givenName: 'Marc', surname: 'Absent' });
    const revoked = await pki.issuePersonal({ rpps: A().certificates.personal.rpps, givenName: 'Claire', surname: 'Martin' });
    await pki.revoke(revoked.serialHex);
    await pki.writeCrl();
    demo.operators[0].reloadAnchors();
    const tmp = tempDir('caducee-certs-');
    try {
      for (const [what, issued] of [
        ['unknown practitioner', unknown],
        ['revoked', revoked],
      ] as const) {
        const files = await pki.writeIssued(tmp.dir, what.replace(' ', '-'), issued);
        const c = await rawImap(A().ports.imaps, ca, { cert: files.chainPath, key: files.keyPath });
        const r = await c.cmd('AUTHENTICATE EXTERNAL =');
        assert.match(r.at(-1)!, /^t1 NO \[AUTHENTICATIONFAILED\]/, `${what}: ${r.join(' | ')}`);
        c.close();
      }
    } finally {
      tmp.cleanup();
    }
    const audit = await demo.operators[0].store.listAuthAudit(50);
    assert.ok(audit.some((e) => e.method === 'EXTERNAL' && e.reason === 'unknown-identifier'));
    assert.ok(audit.some((e) => e.method === 'EXTERNAL' && e.reason === 'bad-certificate'));
    // The demo's own (unrevoked) certificate still works.
    const c = await rawImap(A().ports.imaps, ca, A().certificates.personal);
    assert.match((await c.cmd('AUTHENTICATE EXTERNAL =')).at(-1)!, /OK/);
    c.close();
  });
});
