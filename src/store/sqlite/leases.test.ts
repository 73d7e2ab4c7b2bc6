// Queue claims, leader leases and the lockout of the SQLite store across two connections to one
// file, as two processes of one operator have them (migration 18).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SqliteStore } from './index.js';

function twoProcesses() {
  const dir = mkdtempSync(path.join(tmpdir(), 'caducee-leases-'));
  const file = path.join(dir, 'store.db');
  const a = SqliteStore.open(file);
  const b = SqliteStore.open(file);
  return {
    a,
    b,
    async done() {
      await a.close();
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const blob = (n: number) => n.toString(16).padStart(64, '0');

async function queue(s: SqliteStore, n: number) {
  const remote = Array.from({ length: n }, (_, i) => ({ recipient: `r${i}@peer.test`, domain: 'peer.test', notify: null, orcpt: null }));
  await s.deliver({ blobId: blob(1), size: 10, internalDate: new Date(), envelopeFrom: 'x@op.test', localMailboxIds: [], remote });
  return (await s.listQueue()).map((i) => i.id);
}

test('claims: two connections claiming in turns get disjoint items, oldest first, until none is left', async () => {
  const { a, b, done } = twoProcesses();
  const ids = await queue(a, 25);
  const now = Date.now() + 1;
  const got: number[][] = [];
  for (let turn = 0; turn < 8; turn++) {
    const s = turn % 2 ? b : a;
    got.push((await s.claimQueueItems(turn % 2 ? 'b' : 'a', now, 4, 60_000)).map((i) => i.id));
  }
  const all = got.flat();
  assert.equal(new Set(all).size, all.length, 'no item claimed twice');
  assert.deepEqual(all, ids, 'every item once, in queue order');
  assert.deepEqual(got.slice(6), [[ids[24]], []]);
  await done();
});

test('claims: four processes claiming from one file at once never get the same item', async (t) => {
  const { a, done } = twoProcesses();
  const ids = await queue(a, 600);
  const file = a.db.name;
  const fixture = fileURLToPath(new URL('./claim-race.fixture.ts', import.meta.url));
  const owners = ['p1', 'p2', 'p3', 'p4'];
  const procs = owners.map((owner) => {
    const p = spawn(process.execPath, ['--import', 'tsx', fixture, file, owner], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    const ready = new Promise<void>((resolve) => p.stdout.on('data', (d) => (out += d) && out.startsWith('ready\n') && resolve()));
    const ids = new Promise<number[]>((resolve, reject) => p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.slice('ready\n'.length))) : reject(new Error(`claiming process ${owner} exited with ${code}`)))));
    return { p, ready, ids };
  });
  await Promise.all(procs.map((x) => x.ready));
  for (const x of procs) x.p.stdin.write('go\n');
  const claimed = await Promise.all(procs.map((x) => x.ids));
  const all = claimed.flat();
  assert.equal(new Set(all).size, all.length, 'no item claimed by two processes');
  assert.deepEqual([...all].sort((x, y) => x - y), ids, 'every item claimed');
  const held = a.db.prepare('SELECT lease_owner FROM outbound_queue WHERE id = ?').pluck(true);
  owners.forEach((owner, i) => assert.ok(claimed[i].every((id) => held.get(id) === owner), `the store leases ${owner}'s items to ${owner}`));
  t.diagnostic(`items per process: ${claimed.map((c) => c.length).join(', ')}`);
  await done();
});

test('claims: an expired lease is claimable again; a live one is not; release gives items back', async () => {
  const { a, b, done } = twoProcesses();
  const ids = await queue(a, 3);
  const t = Date.now() + 1;
  assert.deepEqual((await a.claimQueueItems('a', t, 10, 1000)).map((i) => i.id), ids);
  assert.deepEqual(await b.claimQueueItems('b', t + 999, 10, 1000), [], 'leased to a until t+1000');
  assert.deepEqual((await b.claimQueueItems('b', t + 1000, 1, 1000)).map((i) => i.id), [ids[0]], 'a\'s lease expired: b takes the oldest');
  // a gives back what it did not attempt: only items it still holds are released.
  await a.releaseQueueItems('a', ids);
  assert.deepEqual(await a.claimQueueItems('a', t + 1001, 10, 1000).then((r) => r.map((i) => i.id)), [ids[1], ids[2]], 'released items are claimable at once; b\'s item stays b\'s');
  await done();
});

test('claims: completing an item clears its lease; a deferred item is claimable when due', async () => {
  const { a, b, done } = twoProcesses();
  const ids = await queue(a, 2);
  const t = Date.now() + 1;
  await a.claimQueueItems('a', t, 10, 3_600_000);
  await a.completeQueueItems({ sent: [ids[0]], failed: [], deferred: [{ id: ids[1], error: '421 busy', nextAttemptAt: t + 5000 }], dsns: [] });
  const rows = a.db.prepare('SELECT id, status, lease_owner, lease_until FROM outbound_queue ORDER BY id').all();
  assert.deepEqual(rows, [
    { id: ids[0], status: 'sent', lease_owner: null, lease_until: null },
    { id: ids[1], status: 'queued', lease_owner: null, lease_until: null },
  ]);
  assert.deepEqual(await b.claimQueueItems('b', t + 4999, 10, 1000), [], 'not due yet');
  const again = await b.claimQueueItems('b', t + 5000, 10, 1000);
  assert.deepEqual(again.map((i) => [i.id, i.attempts, i.lastError]), [[ids[1], 1, '421 busy']]);
  await done();
});

test('leader lease: acquire, renew by the holder, refused to another, taken over after expiry, released', async () => {
  const { a, b, done } = twoProcesses();
  const t = 1_000_000;
  assert.equal(await a.acquireLease('leader', 'a', t, 3000), true, 'free');
  assert.equal(await b.acquireLease('leader', 'b', t + 1, 3000), false, 'held by a');
  assert.equal(await a.acquireLease('leader', 'a', t + 2000, 3000), true, 'renewed to t+5000');
  assert.equal(await b.acquireLease('leader', 'b', t + 4999, 3000), false, 'the renewal holds');
  assert.equal(await b.acquireLease('other', 'b', t + 4999, 3000), true, 'names are independent');
  assert.equal(await b.acquireLease('leader', 'b', t + 5000, 3000), true, 'expired: b takes it');
  assert.equal(await a.acquireLease('leader', 'a', t + 5001, 3000), false, 'a lost it');
  await a.releaseLease('leader', 'a');
  assert.equal(await a.acquireLease('leader', 'a', t + 5002, 3000), false, 'releasing what a does not hold changes nothing');
  await b.releaseLease('leader', 'b');
  assert.equal(await a.acquireLease('leader', 'a', t + 5003, 3000), true, 'freed by its holder');
  await done();
});

test('lockout: failures recorded on one connection are counted on the other; clear and purge', async () => {
  const { a, b, done } = twoProcesses();
  await a.recordAuthFailure('login:alice', 1000);
  await a.recordAuthFailure('login:alice', 2000);
  await b.recordAuthFailure('login:alice', 3000);
  await b.recordAuthFailure('addr:192.0.2.1', 3000);
  assert.equal(await b.countAuthFailures('login:alice', 0), 3);
  assert.equal(await b.countAuthFailures('login:alice', 2000), 2, 'at or after since');
  assert.equal(await a.countAuthFailures('login:bob', 0), 0);
  assert.equal(await a.purgeAuthFailures(2000), 1, 'older than 2000: one');
  assert.equal(await b.countAuthFailures('login:alice', 0), 2);
  await b.clearAuthFailures('login:alice');
  assert.equal(await a.countAuthFailures('login:alice', 0), 0);
  assert.equal(await a.countAuthFailures('addr:192.0.2.1', 0), 1, 'other keys kept');
  await done();
});
