// Authentication over the PostgreSQL store, on two nodes (two Authenticators on two PgStore
// pools over one database): a TOTP code (RFC 6238 §5.2), a recovery code and an app password
// behave as on SQLite (auth.test.ts), a code sent to both nodes at once is accepted once, and the
// brute-force lockout holds across nodes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { pgTwoNodes } from '../../test/support/pg-nodes.js';
import { Core } from '../core/index.js';
import type { PgStore } from '../store/postgres/index.js';
import { Authenticator, hashNewPassword } from './index.js';
import { SecretBox } from './secret-box.js';

const nodes = await pgTwoNodes({ poolSize: 4 });
const skip = 'skip' in nodes ? nodes.skip : false;
let a!: PgStore;
let b!: PgStore;
if (!('skip' in nodes)) ({ a, b } = nodes);

test('TOTP on two nodes: enrolled on one, used on the other; the same code on both at once is accepted once; recovery codes once', { skip }, async () => {
  const { generate } = await import('otplib');
  const core = new Core(a, ['x.mssante.test']);
  const u = await core.createUser({ login: 'Jeanne', displayName: 'J', passwordHash: await hashNewPassword('correct horse battery') });
  let now = Date.UTC(2026, 10, 26, 9, 0, 5);
  const key = SecretBox.fromKey(randomBytes(32));
  const onA = new Authenticator(a, { now: () => now, secrets: key });
  const onB = new Authenticator(b, { now: () => now, secrets: key });
  const ctx = { protocol: 'http' as const, method: 'TOTP', remote: '192.0.2.1' };
  const { secret } = await onA.beginTotpEnrolment(u, 'Caducée MSSanté');
  const code = (t: number) => generate({ secret, epoch: Math.floor(t / 1000) });
  const recovery = await onB.confirmTotpEnrolment(u, await code(now), ctx);
  assert.ok(recovery && recovery.length === 10);
  assert.equal(((await onA.secondFactor(u, await code(now), ctx)) as any).reason, 'replayed-code', 'the enrolment step, used on the other node');
  for (let i = 0; i < 5; i++) {
    now += 30_000;
    const c = await code(now);
    const results = await Promise.all([onA.secondFactor(u, c, ctx), onB.secondFactor(u, c, ctx), onA.secondFactor(u, c, ctx), onB.secondFactor(u, c, ctx)]);
    assert.equal(results.filter((r) => r.ok).length, 1, `step ${i}: one acceptance`);
    assert.ok(results.filter((r) => !r.ok).every((r) => (r as any).reason === 'replayed-code'));
  }
  const r = await Promise.all([onA.secondFactor(u, recovery![0], ctx), onB.secondFactor(u, recovery![0], ctx)]);
  assert.equal(r.filter((x) => x.ok).length, 1, 'a recovery code once');
  assert.equal(await b.remainingRecoveryCodes(u.id), 9);
  // The password, under any case of the login.
  assert.equal((await onB.password('JEANNE', 'correct horse battery', { protocol: 'imap', method: 'LOGIN', remote: null })).ok, true);
});

test('app passwords: created on one node, accepted and revoked on the other', { skip }, async () => {
  const core = new Core(b, ['x.mssante.test']);
  const u = await core.createUser({ login: 'paul', displayName: 'P' });
  const onA = new Authenticator(a);
  const onB = new Authenticator(b);
  const admin = { protocol: 'http' as const, actor: 'paul', remote: null };
  const ctx = { protocol: 'imap' as const, method: 'LOGIN', remote: '192.0.2.5' };
  const created = await onA.createAppPassword(u, 'Thunderbird', admin);
  assert.equal((await onB.mailPassword('paul', created.password, ctx)).ok, true);
  assert.equal((await onA.listAppPasswords(u, admin))[0].lastUsedFrom, '192.0.2.5');
  assert.equal(await onB.revokeAppPassword(u, created.appPassword.id, admin), true);
  assert.equal((await onA.mailPassword('paul', created.password, ctx)).ok, false);
  const trail = JSON.stringify(await a.listAuthAudit(100));
  assert.ok(!trail.includes(created.password), 'no secret in the audit trail');
});

test('lockout across nodes (issue 12 test 4): failures on either node lock the login on both; the purge keeps the window', { skip }, async () => {
  await new Core(a, ['x.mssante.test']).createUser({ login: 'Marie', displayName: 'M', passwordHash: await hashNewPassword('correct horse battery') });
  let now = 5_000_000;
  const lockout = { windowMs: 60_000, maxPerLogin: 3, maxPerAddress: 100 };
  const onA = new Authenticator(a, { lockout, now: () => now });
  const onB = new Authenticator(b, { lockout, now: () => now });
  const ctx = (remote: string) => ({ protocol: 'imap' as const, method: 'LOGIN', remote });
  // Three failures at once over both nodes and three addresses.
  await Promise.all([onA.password('marie', 'wrong', ctx('192.0.2.1')), onB.password('MARIE', 'wrong', ctx('192.0.2.2')), onA.password('Marie', 'wrong', ctx('192.0.2.3'))]);
  assert.deepEqual(await onB.password('marie', 'correct horse battery', ctx('192.0.2.4')), { ok: false, reason: 'locked' });
  assert.deepEqual(await onA.password('marie', 'correct horse battery', ctx('192.0.2.5')), { ok: false, reason: 'locked' });
  for (let i = 0; i < 3; i++) await (i % 2 ? onA : onB).password('personne', 'x', ctx('198.51.100.1'));
  assert.equal(((await onA.password('personne', 'x', ctx('198.51.100.2'))) as any).reason, 'locked', 'unknown logins alike');
  now += 61_000;
  assert.ok((await onB.purgeLockout()) >= 12, 'the failures out of the window are purged');
  assert.equal((await onA.password('marie', 'correct horse battery', ctx('192.0.2.1'))).ok, true);
});
