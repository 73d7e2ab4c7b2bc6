// `caducee demo --json` as a script uses it (the README's quick start, on ephemeral ports): one
// JSON line once every listener is up, whose credentials work — the app password over IMAP,
// a token from the Pro Santé Connect stand-in over IMAP, the account password refused by IMAP,
// a patient's app password at the Mon espace santé stand-in —
// and a clean stop on SIGTERM.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { loginWithBrowserFlow } from './support/oidc-browser.js';
import { tempDir } from './helpers.js';

const { dir, cleanup } = tempDir('caducee-demo-cli-');
after(() => cleanup());

test('caducee demo --json --ephemeral-ports: the printed credentials work, SIGTERM stops it', async () => {
  const child = spawn(process.execPath, [path.resolve('bin/caducee.js'), 'demo', '--dir', path.join(dir, 'space'), '--json', '--ephemeral-ports'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        const i = out.indexOf('\n');
        if (i >= 0) resolve(out.slice(0, i));
      });
      child.once('exit', (code) => reject(new Error(`demo exited (${code}) before printing its JSON line: ${stderr}`)));
    });
    const layout = JSON.parse(line);
    const [A] = layout.operators;
    for (const k of ['mx', 'submission', 'submissions', 'http', 'https', 'imap', 'imaps']) assert.ok(A.ports[k] > 0, `port ${k}`);
    assert.match(A.https, /^https:\/\/127\.0\.0\.1:\d+$/);
    const claire = A.users[0];
    assert.ok(claire.password && claire.appPassword && claire.password !== claire.appPassword);
    assert.ok(readFileSync(A.certificates.personal.cert, 'utf8').includes('BEGIN CERTIFICATE'));
    assert.ok(readFileSync(A.certificates.personal.key, 'utf8').includes('PRIVATE KEY'));
    assert.match(layout.psc.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
    const ca = readFileSync(layout.caBundle, 'utf8');
    const imap = (auth: { user: string; pass?: string; accessToken?: string }) =>
      new ImapFlow({ host: '127.0.0.1', port: A.ports.imaps, secure: true, tls: { ca, servername: 'localhost' }, auth: auth as any, logger: false });
    const byApp = imap({ user: claire.login, pass: claire.appPassword });
    await byApp.connect();
    await byApp.logout();
    const byAccount = imap({ user: claire.login, pass: claire.password });
    await assert.rejects(byAccount.connect(), (e: any) => e.serverResponseCode === 'AUTHENTICATIONFAILED' || /AUTHENTICATIONFAILED/.test(String(e.response ?? '')));
    byAccount.close();
    const { accessToken } = await loginWithBrowserFlow({
      issuer: layout.psc.issuer,
      clientId: layout.psc.softwareClient.clientId,
      redirectUri: layout.psc.softwareClient.redirectUri,
      resource: layout.psc.resource,
      login: claire.login,
      password: claire.password,
    });
    const byToken = imap({ user: claire.login, accessToken });
    await byToken.connect();
    await byToken.logout();
    // The Mon espace santé stand-in (docs/patients.md): a patient logs in with the printed app password.
    const ps = layout.patientService;
    assert.equal(ps.domain, 'patient.mssante.test');
    const patient = ps.users[0];
    assert.match(patient.addresses[0], /^[0-9]{15}@patient\.mssante\.test$/);
    const byPatient = new ImapFlow({ host: '127.0.0.1', port: ps.ports.imaps, secure: true, tls: { ca, servername: 'localhost' }, auth: { user: patient.login, pass: patient.appPassword }, logger: false });
    await byPatient.connect();
    assert.ok((await byPatient.list()).some((f) => f.path === 'INBOX'));
    await byPatient.logout();
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, stderr);
});
