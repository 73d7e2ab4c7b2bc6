// Password authentication: audit trail and brute-force lockout (per login and per address);
// credential management (app passwords, second factor, password policy), audited.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Core } from '../core/index.js';
import { SqliteStore } from '../store/sqlite/index.js';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AuthError, Authenticator, hashNewPassword, PASSWORD_MIN_LENGTH, type AdminContext } from './index.js';
import { SecretBox } from './secret-box.js';

test('lockout after repeated failures, for known and unknown logins alike, then release', async () => {
  const store = SqliteStore.open(':memory:');
  const core = new Core(store, ['x.mssante.test']);
  await core.createUser({ login: 'jeanne', displayName: 'J', passwordHash: await hashNewPassword('correct horse battery') });
  let now = 1_000_000;
  const auth = new Authenticator(store, { lockout: { windowMs: 60_000, maxPerLogin: 3, maxPerAddress: 5 }, now: () => now });
  const ctx = { protocol: 'imap' as const, method: 'LOGIN', remote: '192.0.2.1' };
  for (let i = 0; i < 3; i++) assert.deepEqual(await auth.password('jeanne', 'wrong', ctx), { ok: false, reason: 'bad-password' });
  // Locked now: even the right password is refused, without being checked.
  assert.deepEqual(await auth.password('jeanne', 'correct horse battery', ctx), { ok: false, reason: 'locked' });
  // An unknown login is locked the same way (a lockout reveals nothing about existence).
  for (let i = 0; i < 3; i++) await auth.password('personne', 'x', { ...ctx, remote: '192.0.2.2' });
  assert.equal((await auth.password('personne', 'x', { ...ctx, remote: '192.0.2.2' }) as any).reason, 'locked');
  // Per address: five failures from one address lock it for every login.
  now += 61_000;
  for (let i = 0; i < 5; i++) await auth.password(`u${i}`, 'x', { ...ctx, remote: '198.51.100.7' });
  assert.equal((await auth.password('jeanne', 'correct horse battery', { ...ctx, remote: '198.51.100.7' }) as any).reason, 'locked');
  // After the window the account works again, and a success clears its count.
  now += 61_000;
  assert.equal((await auth.password('jeanne', 'correct horse battery', ctx)).ok, true);
  const trail = await store.listAuthAudit(100);
  assert.ok(trail.some((e) => e.reason === 'locked' && e.login === 'jeanne'));
  assert.ok(trail.every((e) => !JSON.stringify(e).includes('correct horse')));
  await store.close();
});

test('lockout across processes: failures counted on one store connection lock the login on another; the purge keeps the window', async () => {
  // Two processes (or nodes) of one operator: two SqliteStore connections to one file, an Authenticator each.
  const dir = mkdtempSync(path.join(tmpdir(), 'caducee-lockout-'));
  const one = SqliteStore.open(path.join(dir, 'store.db'));
  const two = SqliteStore.open(path.join(dir, 'store.db'));
  await new Core(one, ['x.mssante.test']).createUser({ login: 'Jeanne', displayName: 'J', passwordHash: await hashNewPassword('correct horse battery') });
  let now = 5_000_000;
  const lockout = { windowMs: 60_000, maxPerLogin: 3, maxPerAddress: 100 };
  const a = new Authenticator(one, { lockout, now: () => now });
  const b = new Authenticator(two, { lockout, now: () => now });
  const ctx = (remote: string) => ({ protocol: 'imap' as const, method: 'LOGIN', remote });
  await a.password('jeanne', 'wrong', ctx('192.0.2.1'));
  await b.password('JEANNE', 'wrong', ctx('192.0.2.2'));
  await a.password('jeanne', 'wrong', ctx('192.0.2.3'));
  // Three failures spread over both processes and three addresses: the login is locked on both.
  assert.deepEqual(await b.password('jeanne', 'correct horse battery', ctx('192.0.2.4')), { ok: false, reason: 'locked' });
  assert.deepEqual(await a.password('jeanne', 'correct horse battery', ctx('192.0.2.5')), { ok: false, reason: 'locked' });
  // Unknown logins alike.
  for (let i = 0; i < 3; i++) await (i % 2 ? a : b).password('personne', 'x', ctx('198.51.100.1'));
  assert.equal(((await a.password('personne', 'x', ctx('198.51.100.2'))) as any).reason, 'locked');
  // The purge, run by one process, forgets only failures out of the window.
  now += 30_000;
  assert.equal(await b.purgeLockout(), 0);
  now += 30_000;
  assert.equal(await b.purgeLockout(), 12, 'the six failures (a login row and an address row each) are a full window old');
  assert.equal((await a.password('jeanne', 'correct horse battery', ctx('192.0.2.1'))).ok, true);
  await one.close();
  await two.close();
  rmSync(dir, { recursive: true, force: true });
});

test('mail clients: app passwords only — created once, accepted, revoked; the account password is refused', async () => {
  const store = SqliteStore.open(':memory:');
  const core = new Core(store, ['x.mssante.test']);
  const u = await core.createUser({ login: 'jeanne', displayName: 'J', passwordHash: await hashNewPassword('correct horse battery') });
  const auth = new Authenticator(store);
  const ctx = { protocol: 'imap' as const, method: 'LOGIN', remote: '192.0.2.1' };
  assert.deepEqual(await auth.mailPassword('jeanne', 'correct horse battery', ctx), { ok: false, reason: 'bad-password' });
  const admin: AdminContext = { protocol: 'http', actor: 'jeanne', remote: '192.0.2.1' };
  const a = await auth.createAppPassword(u, 'Thunderbird — poste du cabinet', admin);
  assert.match(a.password, /^[a-z2-9]{5}(-[a-z2-9]{5}){3}$/);
  const b = await auth.createAppPassword(u, 'Téléphone', admin);
  assert.notEqual(a.password, b.password);
  assert.equal((await auth.mailPassword('jeanne', a.password, ctx)).ok, true);
  // Typed in capitals and with spaces instead of dashes, as people copy it.
  assert.equal((await auth.mailPassword('jeanne', a.password.toUpperCase().replace(/-/g, ' '), ctx)).ok, true);
  // Another user's login with this password: refused.
  await core.createUser({ login: 'paul', displayName: 'P' });
  assert.equal((await auth.mailPassword('paul', a.password, ctx)).ok, false);
  const listed = await auth.listAppPasswords(u, admin);
  assert.equal(listed.length, 2);
  assert.equal(listed.find((p) => p.id === a.appPassword.id)!.lastUsedFrom, '192.0.2.1');
  assert.equal(await auth.revokeAppPassword(u, a.appPassword.id, admin), true);
  assert.equal(await auth.revokeAppPassword(u, a.appPassword.id, admin), false);
  assert.deepEqual(await auth.mailPassword('jeanne', a.password, ctx), { ok: false, reason: 'bad-password' });
  assert.equal((await auth.mailPassword('jeanne', b.password, ctx)).ok, true);
  await assert.rejects(auth.createAppPassword(u, '  ', admin), (e: Error) => e instanceof AuthError && /label/.test(e.message));
  const trail = JSON.stringify(await store.listAuthAudit(100));
  assert.ok(!trail.includes(a.password) && !trail.includes(b.password) && !trail.includes('correct horse'));
  await store.close();
});

test('TOTP second factor (RFC 6238): enrolment, drift of one step, replay refused, recovery codes single-use', async () => {
  const { generate } = await import('otplib');
  const store = SqliteStore.open(':memory:');
  const core = new Core(store, ['x.mssante.test']);
  const u = await core.createUser({ login: 'jeanne', displayName: 'J', passwordHash: await hashNewPassword('correct horse battery') });
  let now = Date.UTC(2026, 10, 26, 9, 0, 5);
  const auth = new Authenticator(store, { now: () => now, secrets: SecretBox.fromKey(randomBytes(32)) });
  const ctx = { protocol: 'http' as const, method: 'TOTP', remote: '192.0.2.1' };
  assert.equal(((await auth.secondFactor(u, '123456', ctx)) as any).reason, 'not-configured');
  const { secret, uri } = await auth.beginTotpEnrolment(u, 'Caducée MSSanté');
  assert.match(uri, /^otpauth:\/\/totp\/.*secret=[A-Z2-7]+.*issuer=Caduc/);
  const code = (t: number) => generate({ secret, epoch: Math.floor(t / 1000) });
  assert.equal(await auth.confirmTotpEnrolment(u, String((Number(await code(now)) + 1) % 1_000_000).padStart(6, '0'), ctx), null);
  const recovery = await auth.confirmTotpEnrolment(u, await code(now), ctx);
  assert.ok(recovery && recovery.length === 10 && new Set(recovery).size === 10);
  // The enrolment code itself cannot be used again for a login (same step).
  assert.equal(((await auth.secondFactor(u, await code(now), ctx)) as any).reason, 'replayed-code');
  now += 30_000;
  const next = await code(now);
  assert.equal((await auth.secondFactor(u, next, ctx)).ok, true);
  assert.equal(((await auth.secondFactor(u, next, ctx)) as any).reason, 'replayed-code');
  // A code from the previous step is still within tolerance but older than the last used one.
  now += 30_000;
  assert.equal(((await auth.secondFactor(u, next, ctx)) as any).reason, 'replayed-code');
  // One step of drift ahead is accepted.
  assert.equal((await auth.secondFactor(u, await code(now + 30_000), ctx)).ok, true);
  // Far off: refused.
  now += 30_000;
  assert.equal(((await auth.secondFactor(u, await code(now + 300_000), ctx)) as any).reason, 'bad-code');
  // Recovery codes: once each, typed loosely.
  assert.equal((await auth.secondFactor(u, recovery![0].toUpperCase().replace('-', ' '), ctx)).ok, true);
  assert.equal(((await auth.secondFactor(u, recovery![0], ctx)) as any).reason, 'bad-code');
  assert.equal(await store.remainingRecoveryCodes(u.id), 9);
  const trail = JSON.stringify(await store.listAuthAudit(100));
  assert.ok(!trail.includes(secret) && !trail.includes(recovery![1]));
  // At rest the secret is sealed (AES-256-GCM, bound to the user): the database alone reveals
  // nothing, and another key (or no key) cannot use it.
  const stored = (await store.getTotp(u.id))!.secret;
  assert.match(stored, /^v1:/);
  assert.ok(!stored.includes(secret));
  const otherKey = new Authenticator(store, { now: () => now, secrets: SecretBox.fromKey(randomBytes(32)) });
  now += 60_000;
  assert.equal(((await otherKey.secondFactor(u, await code(now), ctx)) as any).reason, 'not-configured');
  assert.equal(((await new Authenticator(store, { now: () => now }).secondFactor(u, await code(now), ctx)) as any).reason, 'not-configured');
  assert.equal((await auth.secondFactor(u, await code(now), ctx)).ok, true);
  await store.close();
});

test('secret box: sealed values open only with the same key and context; key file created 0600', async () => {
  const { mkdtempSync, statSync, writeFileSync, rmSync } = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'caducee-secrets-'));
  try {
    const file = path.join(dir, 'keys', 'secrets.key');
    const box = SecretBox.fromFile(file);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const sealed = box.seal('JBSWY3DPEHPK3PXP', 'totp:1');
    assert.notEqual(box.seal('JBSWY3DPEHPK3PXP', 'totp:1'), sealed, 'a fresh IV each time');
    assert.equal(SecretBox.fromFile(file).open(sealed, 'totp:1'), 'JBSWY3DPEHPK3PXP');
    assert.throws(() => box.open(sealed, 'totp:2'));
    assert.throws(() => SecretBox.fromKey(randomBytes(32)).open(sealed, 'totp:1'));
    const tampered = sealed.slice(0, -2) + (sealed.endsWith('A') ? 'BB' : 'AA');
    assert.throws(() => box.open(tampered, 'totp:1'));
    writeFileSync(path.join(dir, 'short.key'), 'c2hvcnQ=\n');
    assert.throws(() => SecretBox.fromFile(path.join(dir, 'short.key')), /must hold 32 bytes/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('credential management (app passwords, second-factor reset, password) writes one audit row each: who acted, on whom, how, outcome — never a secret', async () => {
  const store = SqliteStore.open(':memory:');
  const core = new Core(store, ['x.mssante.test']);
  const u = await core.createUser({ login: 'jeanne', displayName: 'J', passwordHash: await hashNewPassword('correct horse battery') });
  let now = Date.UTC(2026, 10, 26, 9, 0, 0);
  const auth = new Authenticator(store, { now: () => now, secrets: SecretBox.fromKey(randomBytes(32)) });
  const web: AdminContext = { protocol: 'http', actor: 'jeanne', remote: '192.0.2.1' };
  const cli: AdminContext = { protocol: 'cli', actor: 'root', remote: null };
  const rows = async () => (await store.listAuthAudit(1000)).reverse();
  const before = (await rows()).length;
  const created = await auth.createAppPassword(u, 'Thunderbird', web);
  await auth.listAppPasswords(u, cli);
  assert.equal(await auth.revokeAppPassword(u, created.appPassword.id, web), true);
  assert.equal(await auth.revokeAppPassword(u, created.appPassword.id + 100, cli), false);
  // A second factor and a web session to reset.
  await auth.beginTotpEnrolment(u, 'Caducée');
  await store.createHttpSession({ tokenHash: 'x'.repeat(64), userId: u.id, method: 'PASSWORD+TOTP', stage: 'full', csrfToken: 'c', createdAt: now, lastSeenAt: now, expiresAt: now + 3_600_000, remote: null, userAgent: null });
  assert.equal(await auth.resetSecondFactor(u, cli), 1);
  assert.equal(await store.getTotp(u.id), undefined);
  assert.equal(await auth.resetSecondFactor(u, cli), 0, 'the sessions are closed already');
  await assert.rejects(auth.setPassword(u, 'short', cli), (e: Error) => e instanceof AuthError && /at least 12 characters/.test(e.message));
  await auth.setPassword(u, 'another long passphrase', cli);
  assert.equal((await auth.password('jeanne', 'another long passphrase')).ok, true);
  const trail = (await rows()).slice(before).filter((e) => e.method !== 'PASSWORD');
  assert.deepEqual(
    trail.map((e) => [e.method, e.login, e.userId, e.protocol, e.actor, e.remote, e.success, e.reason]),
    [
      ['APP-PASSWORD-CREATE', 'jeanne', u.id, 'http', 'jeanne', '192.0.2.1', true, null],
      ['APP-PASSWORD-LIST', 'jeanne', u.id, 'cli', 'root', null, true, null],
      ['APP-PASSWORD-REVOKE', 'jeanne', u.id, 'http', 'jeanne', '192.0.2.1', true, null],
      ['APP-PASSWORD-REVOKE', 'jeanne', u.id, 'cli', 'root', null, false, 'not-found'],
      ['SECOND-FACTOR-RESET', 'jeanne', u.id, 'cli', 'root', null, true, null],
      ['SECOND-FACTOR-RESET', 'jeanne', u.id, 'cli', 'root', null, true, null],
      ['PASSWORD-SET', 'jeanne', u.id, 'cli', 'root', null, false, 'password-policy'],
      ['PASSWORD-SET', 'jeanne', u.id, 'cli', 'root', null, true, null],
    ],
  );
  // Authentication attempts carry no actor: the login is the one acting.
  assert.equal((await rows()).find((e) => e.method === 'PASSWORD')!.actor, null);
  const text = JSON.stringify(await rows());
  for (const secret of [created.password, 'another long passphrase', 'correct horse battery', 'short']) assert.ok(!text.includes(secret), 'no secret in the audit trail');
  await store.close();
});

test('password policy and hashing live in auth: too short refused before hashing; argon2id hash stored, never the password', async () => {
  await assert.rejects(hashNewPassword('x'.repeat(PASSWORD_MIN_LENGTH - 1)), AuthError);
  const h = await hashNewPassword('x'.repeat(PASSWORD_MIN_LENGTH));
  // RFC 9106 §4 parameters, PHC string format.
  assert.match(h, /^\$argon2id\$v=19\$m=65536,t=3,p=1\$/);
  const store = SqliteStore.open(':memory:');
  await new Core(store, ['x.mssante.test']).createUser({ login: 'paul', displayName: 'P', passwordHash: h });
  assert.equal((await store.findUserByLogin('paul'))!.passwordHash, h);
  assert.equal((await new Authenticator(store).password('paul', 'x'.repeat(PASSWORD_MIN_LENGTH))).ok, true);
  await store.close();
});
