// Password authentication: audit trail and brute-force lockout (per login and per address).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Core } from '../core/index.js';
import { SqliteStore } from '../store/sqlite/index.js';
import { randomBytes } from 'node:crypto';
import { Authenticator } from './index.js';
import { SecretBox } from './secret-box.js';

test('lockout after repeated failures, for known and unknown logins alike, then release', async () => {
  const store = SqliteStore.open(':memory:');
  const core = new Core(store, ['x.mssante.test']);
  await core.createUser({ login: 'jeanne', displayName: 'J', password: 'correct horse battery' });
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

test('mail clients: app passwords only — created once, accepted, revoked; the account password is refused', async () => {
  const store = SqliteStore.open(':memory:');
  const core = new Core(store, ['x.mssante.test']);
  const u = await core.createUser({ login: 'jeanne', displayName: 'J', password: 'correct horse battery' });
  const auth = new Authenticator(store);
  const ctx = { protocol: 'imap' as const, method: 'LOGIN', remote: '192.0.2.1' };
  assert.deepEqual(await auth.mailPassword('jeanne', 'correct horse battery', ctx), { ok: false, reason: 'bad-password' });
  const a = await auth.createAppPassword(u.id, 'Thunderbird — poste du cabinet');
  assert.match(a.password, /^[a-z2-9]{5}(-[a-z2-9]{5}){3}$/);
  const b = await auth.createAppPassword(u.id, 'Téléphone');
  assert.notEqual(a.password, b.password);
  assert.equal((await auth.mailPassword('jeanne', a.password, ctx)).ok, true);
  // Typed in capitals and with spaces instead of dashes, as people copy it.
  assert.equal((await auth.mailPassword('jeanne', a.password.toUpperCase().replace(/-/g, ' '), ctx)).ok, true);
  // Another user's login with this password: refused.
  await core.createUser({ login: 'paul', displayName: 'P' });
  assert.equal((await auth.mailPassword('paul', a.password, ctx)).ok, false);
  const listed = await store.listAppPasswords(u.id);
  assert.equal(listed.length, 2);
  assert.equal(listed.find((p) => p.id === a.appPassword.id)!.lastUsedFrom, '192.0.2.1');
  assert.equal(await store.revokeAppPassword(u.id, a.appPassword.id), true);
  assert.equal(await store.revokeAppPassword(u.id, a.appPassword.id), false);
  assert.deepEqual(await auth.mailPassword('jeanne', a.password, ctx), { ok: false, reason: 'bad-password' });
  assert.equal((await auth.mailPassword('jeanne', b.password, ctx)).ok, true);
  await assert.rejects(auth.createAppPassword(u.id, '  '), /label/);
  const trail = JSON.stringify(await store.listAuthAudit(100));
  assert.ok(!trail.includes(a.password) && !trail.includes(b.password) && !trail.includes('correct horse'));
  await store.close();
});

test('TOTP second factor (RFC 6238): enrolment, drift of one step, replay refused, recovery codes single-use', async () => {
  const { generate } = await import('otplib');
  const store = SqliteStore.open(':memory:');
  const core = new Core(store, ['x.mssante.test']);
  const u = await core.createUser({ login: 'jeanne', displayName: 'J', password: 'correct horse battery' });
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
