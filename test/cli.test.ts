// The `caducee` command line as an administrator uses it: real processes, real store.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig, ConfigError } from '../src/config/index.js';
import { tempDir } from './helpers.js';

const BIN = path.resolve('bin/caducee.js');

function caducee(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('caducee administration commands', () => {
  let dir: string;
  let cleanup = () => {};
  let config: string;
  before(() => {
    ({ dir, cleanup } = tempDir());
    config = path.join(dir, 'caducee.yaml');
    writeFileSync(config, 'operator:\n  hostname: mx.x.mssante.test\n  domains: [x.mssante.test]\ndataDir: ./data\n');
  });
  after(() => cleanup());

  test('structures, practitioners, users, mailboxes and grants', () => {
    const c = ['--config', config];
    assert.equal(caducee(['structure', 'create', '--id-type', 'FINESS', '--id', '750712184', '--name', 'CHU Démo', ...c]).code, 0);
    assert.equal(caducee(['practitioner', 'create', '--rpps', '10003333333', '--family', "D'Arc", '--given', 'Jeanne', ...c]).code, 0);
    const u = caducee(['user', 'create', '--login', 'jeanne', '--name', "Dr Jeanne D'Arc", '--rpps', '10003333333', ...c], { CADUCEE_PASSWORD: 'correct horse battery' });
    assert.equal(u.code, 0, u.stderr);
    assert.equal(caducee(['user', 'create', '--login', 'secretariat', '--name', 'Secrétariat', ...c]).code, 0);
    assert.equal(caducee(['mailbox', 'create', '--address', 'jeanne.darc@x.mssante.test', '--type', 'PER', '--name', 'Dr Jeanne D’Arc', '--owner', 'jeanne', ...c]).code, 0);
    const org = caducee(['mailbox', 'create', '--address', 'urgences@x.mssante.test', '--type', 'ORG', '--name', 'Urgences', '--structure', 'FINESS:750712184', '--liste-rouge', ...c]);
    assert.equal(org.code, 0, org.stderr);
    assert.equal(caducee(['grant', 'set', '--mailbox', 'jeanne.darc@x.mssante.test', '--user', 'secretariat', '--rights', 'read,send', ...c]).code, 0);
    const list = caducee(['mailbox', 'list', '--json', ...c]);
    const rows = list.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(
      rows.map((r) => [r.address, r.type, r.state, r.listeRouge]),
      [
        ['jeanne.darc@x.mssante.test', 'PER', 'active', false],
        ['urgences@x.mssante.test', 'ORG', 'active', true],
      ],
    );
    const grants = caducee(['grant', 'list', '--mailbox', 'jeanne.darc@x.mssante.test', '--json', ...c]).stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(grants[0].rights, ['read', 'send']);
    assert.equal(caducee(['mailbox', 'delete', 'urgences@x.mssante.test', ...c]).code, 0);
    const again = caducee(['mailbox', 'activate', 'urgences@x.mssante.test', ...c]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /is deleted; a deleted address is never reused/);
  });

  test('mailbox set --liste-rouge true|false changes the liste rouge of an existing mailbox', () => {
    const c = ['--config', config];
    const addr = 'jeanne.darc@x.mssante.test';
    const listeRouge = () =>
      caducee(['mailbox', 'list', '--json', ...c])
        .stdout.trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .find((r) => r.address === addr).listeRouge;
    assert.equal(listeRouge(), false);
    const on = caducee(['mailbox', 'set', '--liste-rouge', 'true', addr, ...c]);
    assert.equal(on.code, 0, on.stderr);
    assert.match(on.stdout, /jeanne\.darc@x\.mssante\.test is on the liste rouge: gone from public directory output; the next `caducee directory publish` withdraws it/);
    assert.equal(listeRouge(), true);
    // A bad value is refused before anything changes.
    assert.equal(caducee(['mailbox', 'set', '--liste-rouge', 'non', addr, ...c]).code, 2);
    assert.equal(listeRouge(), true);
    const off = caducee(['mailbox', 'set', addr, '--liste-rouge', 'FALSE', ...c]);
    assert.equal(off.code, 0, off.stderr);
    assert.match(off.stdout, /is off the liste rouge: back in public directory output/);
    assert.equal(listeRouge(), false);
  });

  test('app passwords and second-factor reset by the administrator', async () => {
    const c = ['--config', config];
    assert.equal(caducee(['user', 'create', '--login', 'martin', '--name', 'Martin', ...c], { CADUCEE_PASSWORD: 'correct horse battery' }).code, 0);
    const add = caducee(['user', 'app-password', 'add', '--login', 'martin', '--label', 'Thunderbird — accueil', ...c]);
    assert.equal(add.code, 0, add.stderr);
    const pw = /: ([a-z2-9]{5}(?:-[a-z2-9]{5}){3})\n/.exec(add.stdout)?.[1];
    assert.ok(pw, add.stdout);
    const list = caducee(['user', 'app-password', 'list', '--login', 'martin', '--json', ...c]).stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(list.length, 1);
    assert.equal(list[0].label, 'Thunderbird — accueil');
    assert.ok(!JSON.stringify(list).includes(pw!), 'the password is never listed');
    // The password really works for mail and stops working once revoked.
    const { SqliteStore } = await import('../src/store/sqlite/index.js');
    const { Authenticator } = await import('../src/auth/index.js');
    const cfg = loadConfig(config);
    const check = async () => {
      const store = SqliteStore.open(path.join(cfg.dataDir, 'caducee.sqlite'));
      try {
        return (await new Authenticator(store).mailPassword('martin', pw!, { protocol: 'imap', method: 'LOGIN', remote: null })).ok;
      } finally {
        await store.close();
      }
    };
    assert.equal(await check(), true);
    assert.equal(caducee(['user', 'app-password', 'revoke', '--login', 'martin', '--id', String(list[0].id), ...c]).code, 0);
    assert.equal(await check(), false);
    const again = caducee(['user', 'app-password', 'revoke', '--login', 'martin', '--id', String(list[0].id), ...c]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /no active app password/);
    const reset = caducee(['user', 'reset-second-factor', '--login', 'martin', ...c]);
    assert.equal(reset.code, 0, reset.stderr);
    assert.match(reset.stdout, /second factor of martin removed/);
    assert.equal(caducee(['user', 'passwd', '--login', 'martin', '--password', 'another long passphrase', ...c]).code, 0);
    // Each credential operation went through the Authenticator: one audit row, protocol 'cli',
    // the acting system account named, never a secret.
    const tail = caducee(['audit', 'tail', '--json', '-n', '100', ...c]);
    assert.equal(tail.code, 0, tail.stderr);
    const rows = tail.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.login === 'martin' && r.protocol === 'cli');
    assert.deepEqual(
      rows.map((r) => [r.method, r.success, r.reason]),
      [
        ['APP-PASSWORD-CREATE', true, null],
        ['APP-PASSWORD-LIST', true, null],
        ['APP-PASSWORD-REVOKE', true, null],
        ['APP-PASSWORD-REVOKE', false, 'not-found'],
        ['SECOND-FACTOR-RESET', true, null],
        ['PASSWORD-SET', true, null],
      ],
    );
    for (const r of rows) assert.ok(typeof r.actor === 'string' && r.actor.length > 0, JSON.stringify(r));
    assert.ok(!tail.stdout.includes(pw!) && !tail.stdout.includes('another long passphrase') && !tail.stdout.includes('correct horse'), 'no secret in the audit trail');
    const text = caducee(['audit', 'tail', '-n', '1', ...c]).stdout;
    assert.match(text, /OK +cli\/PASSWORD-SET martin by \S+ from \?/);
  });

  test('bad input: one clear line on stderr and exit code 2', () => {
    const c = ['--config', config];
    const cases: [string[], RegExp][] = [
      [['structure', 'create', '--id-type', 'FINESS', '--id', '12', '--name', 'x', ...c], /FINESS 12 must be 9 characters/],
      [['mailbox', 'create', '--address', 'a@ailleurs.fr', '--type', 'PER', '--name', 'x', ...c], /ailleurs\.fr is not one of this operator's domains/],
      [['mailbox', 'create', '--address', 'svc@x.mssante.test', '--type', 'ORG', '--name', 'x', ...c], /an ORG mailbox belongs to a structure/],
      [['mailbox', 'create', '--address', 'jeanne.darc@x.mssante.test', '--type', 'PER', '--name', 'x', '--owner', 'jeanne', ...c], /mailbox jeanne\.darc@x\.mssante\.test already exists/],
      [['user', 'create', '--login', 'z', '--name', 'z', '--password', 'short', ...c], /at least 12 characters/],
      [['mailbox', 'list', '--config', path.join(dir, 'missing.yaml')], /cannot read configuration file .*missing\.yaml/],
      [['mailbox', 'set', '--liste-rouge', 'oui', 'jeanne.darc@x.mssante.test', ...c], /--liste-rouge takes true or false, not "oui"/],
      [['mailbox', 'set', 'jeanne.darc@x.mssante.test', ...c], /nothing to change: give --liste-rouge true\|false/],
      [['mailbox', 'set', '--liste-rouge', 'true', 'personne@x.mssante.test', ...c], /no mailbox personne@x\.mssante\.test/],
      [['mailbox', 'set', '--liste-rouge', 'true', 'urgences@x.mssante.test', ...c], /urgences@x\.mssante\.test is deleted/],
    ];
    for (const [args, re] of cases) {
      const r = caducee(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace for a user error');
    }
  });
});

describe('configuration', () => {
  test('defaults need no setup; environment overrides the file; errors name the setting', (t) => {
    const { dir, cleanup } = tempDir();
    t.after(cleanup);
    const d = loadConfig(undefined, {});
    assert.equal(d.listen.mx, 2525);
    assert.equal(d.smtp.maxMessageSize, 50 * 1024 * 1024);
    const f = path.join(dir, 'c.yaml');
    writeFileSync(f, 'listen:\n  mx: 2600\ntls:\n  cert: certs/x.pem\nroutes:\n  B.mssante.test: "127.0.0.1:3525"\n');
    const c = loadConfig(f, { CADUCEE_MX_PORT: '2700', CADUCEE_DOMAINS: 'a.mssante.test, b.mssante.test' });
    assert.equal(c.listen.mx, 2700);
    assert.deepEqual(c.operator.domains, ['a.mssante.test', 'b.mssante.test']);
    assert.equal(c.tls.cert, path.join(dir, 'certs/x.pem'));
    assert.deepEqual(c.routes, { 'b.mssante.test': '127.0.0.1:3525' });
    writeFileSync(f, 'listen:\n  mx: "vingt-cinq"\nroutes:\n  b.mssante.test: nowhere\nbogus: 1\n');
    assert.throws(
      () => loadConfig(f, {}),
      (e: any) => e instanceof ConfigError && /listen\.mx/.test(e.message) && /routes\.b\.mssante\.test: expected HOST:PORT/.test(e.message) && /bogus/.test(e.message),
    );
  });
});
