// Password authentication: audit trail and brute-force lockout (per login and per address).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Core } from '../core/index.js';
import { SqliteStore } from '../store/sqlite/index.js';
import { Authenticator } from './index.js';

test('lockout after repeated failures, for known and unknown logins alike, then release', async () => {
  const store = SqliteStore.open(':memory:');
  const core = new Core(store, ['x.mssante.test']);
  await core.createUser({ login: 'jeanne', displayName: 'J', password: 'correct horse battery' });
  let now = 1_000_000;
  const auth = new Authenticator(store, { windowMs: 60_000, maxPerLogin: 3, maxPerAddress: 5 }, () => now);
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
