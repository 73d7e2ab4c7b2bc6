// Leader lease between two processes of one operator: two SqliteStore connections to one file,
// a Leadership each, the clock given by the test (each tick is one renewal).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { Leadership, type LeaderService } from './leader.js';
import { SqliteStore } from './sqlite/index.js';

const TTL = 60_000;

function setup() {
  const dir = mkdtempSync(path.join(tmpdir(), 'caducee-leader-'));
  const file = path.join(dir, 'store.db');
  const clock = { now: 10_000_000 };
  const events: string[] = [];
  const service = (name: string): LeaderService => ({
    name,
    start: () => void events.push(`${name} start`),
    stop: async () => void events.push(`${name} stop`),
  });
  const node = (id: string) => {
    const store = SqliteStore.open(file);
    const leader = new Leadership({ store, leaseName: 'operator-leader', owner: id, ttlMs: TTL, services: [service(`${id}.rules`), service(`${id}.collector`)], logger: pino({ level: 'silent' }), now: () => clock.now });
    return { store, leader };
  };
  const a = node('a');
  const b = node('b');
  return {
    a,
    b,
    clock,
    events,
    async done() {
      await a.leader.stop();
      await b.leader.stop();
      await a.store.close();
      await b.store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('one leader at a time: the first takes the lease, renews it; the other takes over only after it expires; the loser stops its services', async () => {
  const { a, b, clock, events, done } = setup();
  await a.leader.start();
  await b.leader.start();
  assert.deepEqual([a.leader.isLeader, b.leader.isLeader], [true, false]);
  assert.deepEqual(events, ['a.rules start', 'a.collector start']);
  clock.now += TTL / 3;
  await a.leader.tick(); // renewed until now + TTL
  clock.now += TTL - 1;
  await b.leader.tick();
  assert.equal(b.leader.isLeader, false, 'the renewal holds until its end');
  clock.now += 1;
  await b.leader.tick();
  assert.equal(b.leader.isLeader, true, 'a did not renew in time: b takes over');
  await a.leader.tick();
  assert.equal(a.leader.isLeader, false);
  assert.deepEqual(events, ['a.rules start', 'a.collector start', 'b.rules start', 'b.collector start', 'a.collector stop', 'a.rules stop']);
  await done();
});

test('stop() stops the services and releases the lease: the other process takes over at its next renewal', async () => {
  const { a, b, events, done } = setup();
  await a.leader.start();
  await b.leader.start();
  await a.leader.stop();
  assert.equal(a.leader.isLeader, false);
  await b.leader.tick();
  assert.equal(b.leader.isLeader, true, 'no wait for the ttl');
  assert.deepEqual(events, ['a.rules start', 'a.collector start', 'a.collector stop', 'a.rules stop', 'b.rules start', 'b.collector start']);
  await done();
});

test('a store error during a renewal stops the services first; the lease is taken again once the store answers', async () => {
  const { a, b, clock, events, done } = setup();
  await a.leader.start();
  await b.leader.start();
  // a's database connection fails (closed under it): the renewal throws.
  a.store.db.close();
  await a.leader.tick();
  assert.equal(a.leader.isLeader, false);
  assert.deepEqual(events, ['a.rules start', 'a.collector start', 'a.collector stop', 'a.rules stop']);
  // Nobody leads until a's lease expires (a may have been cut off from the store only).
  await b.leader.tick();
  assert.equal(b.leader.isLeader, false);
  clock.now += TTL;
  await b.leader.tick();
  assert.equal(b.leader.isLeader, true);
  await done();
});
