// Several queue workers on one outbound queue (issue 12: processes and nodes of one operator):
// each worker attempts only the items it claimed, so a burst is delivered exactly once; a live
// worker renews the short leases of its items, so a long attempt keeps them (cut and deferred at
// its time limit), while a dead owner's items are taken once its lease ends.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { SMTPServer } from 'smtp-server';
import type { DemoLayout } from '../src/demo/space.js';
import { parseConfig } from '../src/config/index.js';
import { startOperator, type Operator } from '../src/main.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { folderMessages, testLogger, waitFor } from './helpers.js';
import { startQueueDemo, type QueueDemo } from './support/queue-demo.js';

describe('queue claims between workers', () => {
  let space: QueueDemo;
  let layout: DemoLayout;
  let A: Operator;
  let B: Operator;

  before(async () => {
    space = await startQueueDemo();
    ({ layout, A, B } = space);
  });
  after(async () => {
    await space?.stop();
  });

  /** A second queue worker of operator A, as another process has it: its own connection to A's database file. */
  function secondWorker(o: { leaseSeconds?: number; attemptLimitSeconds?: number; stopGraceSeconds?: number; concurrency?: number; logger?: pino.Logger } = {}) {
    return space.worker(SqliteStore.open(path.join(A.config.dataDir, 'caducee.sqlite')), o);
  }

  /** Queues one message from A's first user to B's first user (as submission would), returns its subject. */
  async function queue(subject: string) {
    const from = layout.operators[0].users[0].addresses[0];
    const to = layout.operators[1].users[0].addresses[0];
    const raw = Buffer.from(`From: <${from}>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@a.test>\r\n\r\nBonjour.\r\n`);
    const blob = await A.blobs.put(raw);
    await A.store.deliver({ blobId: blob.id, size: blob.size, internalDate: new Date(), envelopeFrom: from, localMailboxIds: [], remote: [{ recipient: to, domain: to.split('@')[1], notify: null, orcpt: null }] });
    blob.release();
  }

  test('two workers on one queue: a burst of 40 messages arrives once each', async (t) => {
    const lines: string[] = [];
    const worker = secondWorker({ logger: pino({ level: 'info' }, { write: (l: string) => void lines.push(l) }) });
    worker.start();
    const subjects = Array.from({ length: 40 }, (_, i) => `Lot ${i + 1}`);
    for (const s of subjects) await queue(s);
    A.core.events.emit('queued');
    const paul = layout.operators[1].users[0].addresses[0];
    const counts = await waitFor(async () => {
      const q = await A.store.listQueue({ status: 'queued' });
      if (q.length) return undefined;
      const got = (await folderMessages(B, paul)).map((m) => /^Subject: (.*)\r$/m.exec(m.toString())?.[1]);
      return subjects.map((s) => got.filter((g) => g === s).length);
    }, 'the queue drained', 60_000);
    assert.deepEqual(counts, subjects.map(() => 1), 'each message exactly once at B');
    const second = lines.filter((l) => JSON.parse(l).msg === 'delivered').length;
    t.diagnostic(`the second worker delivered ${second} of 40 (the first the rest)`);
    assert.equal((await A.store.listQueue({ status: 'sent' })).length, 40);
    await worker.stop(); // the tests below choose their workers
  });

  test("an attempt outliving its short lease keeps its item (renewed: no other owner can claim it), is cut and deferred at its time limit or past stop()'s grace period; stop() gives back what it did not attempt", async (t) => {
    await A.outbound.stop(); // only the short-lease worker below may claim
    const b = layout.operators[1];
    let connected = 0;
    let closed = 0;
    let data = 0;
    // A node of B (its certificate) that takes the message's data and never answers it.
    const stalled = new SMTPServer({
      secure: false,
      key: readFileSync(b.key),
      cert: readFileSync(b.chain),
      authOptional: true,
      logger: false,
      onConnect(_s, cb) {
        connected++;
        cb();
      },
      onData(stream) {
        data++;
        stream.resume();
      },
      onClose() {
        closed++;
      },
    });
    await new Promise<void>((r) => stalled.listen(0, '127.0.0.1', () => r()));
    space.closers.push(() => new Promise((r) => stalled.close(() => r(undefined))));
    A.config.routes[b.domain] = `127.0.0.1:${(stalled.server.address() as AddressInfo).port}`;
    await queue('Sans réponse');
    // A 1 s lease, renewed every third of a second; the attempt's time limit 4 s.
    const worker = secondWorker({ leaseSeconds: 1, attemptLimitSeconds: 4 });
    worker.start();
    await waitFor(() => data >= 1, 'the attempt sending its data to the stalled node');
    // Another process (its own connection) tries to claim while the attempt runs, past the lease's
    // length several times over: the live worker's renewed lease keeps the item its own.
    const other = SqliteStore.open(path.join(A.config.dataDir, 'caducee.sqlite'));
    let tries = 0;
    const stolen: number[] = [];
    const item = await waitFor(async () => {
      const got = await other.claimQueueItems('other-process', Date.now(), 10, 1000);
      tries++;
      // Once an attempt is recorded (deferred, due again) anyone may claim the item: only a claim of
      // an item no attempt has ended yet would be a theft.
      stolen.push(...got.filter((i) => i.attempts === 0).map((i) => i.id));
      await other.releaseQueueItems('other-process', got.map((i) => i.id));
      const i = (await A.store.listQueue({ status: 'queued' })).at(-1);
      return i && i.attempts >= 1 ? i : undefined;
    }, 'the attempt recorded');
    await other.close();
    t.diagnostic(`another owner tried to claim ${tries} times while the attempt ran`);
    assert.deepEqual(stolen, [], 'no other owner claimed the item of a live attempt');
    assert.match(item.lastError ?? '', /attempt cut after 4 s, its time limit/, 'the attempt ran 4 s on a 1 s lease, then was cut');
    await worker.stop();
    await waitFor(() => closed === connected, "the first worker's sessions closed");
    const before = (await A.store.listQueue({ status: 'queued' })).at(-1)!;
    assert.equal(before.id, item.id);
    await queue('Sans réponse 2');
    // A worker with the default lease and one slot: it claims both items, attempts one, and the
    // other waits for the slot; stop() waits 0.5 s for the attempt, cuts it, gives the other back.
    const sentBefore = data; // the first worker's attempt may have been cut before its data (a slow machine)
    const patient = secondWorker({ stopGraceSeconds: 0.5, concurrency: 1 });
    patient.start();
    await waitFor(() => data > sentBefore, 'the second attempt sending its data');
    await patient.stop();
    const q = await A.store.listQueue({ status: 'queued' });
    const [one, two] = [q.find((i) => i.id === item.id)!, q.at(-1)!];
    const cut = [one, two].filter((i) => /attempt cut: the queue worker is stopping/.test(i.lastError ?? ''));
    assert.equal(cut.length, 1, 'one attempt, cut by stop()');
    const prior = new Map([
      [one.id, before.attempts],
      [two.id, 0],
    ]);
    for (const i of [one, two]) assert.equal(i.attempts, prior.get(i.id)! + (i === cut[0] ? 1 : 0), 'one attempt recorded; the waiting item not attempted');
    const peek = SqliteStore.open(path.join(A.config.dataDir, 'caducee.sqlite'));
    const leases = peek.db.prepare('SELECT lease_owner FROM outbound_queue WHERE id IN (?, ?)').pluck(true).all(one.id, two.id);
    await peek.close();
    assert.deepEqual(leases, [null, null], 'the cut attempt was recorded (lease cleared), the waiting item given back');
    A.config.routes[b.domain] = `127.0.0.1:${B.ports.mx}`; // back to B for what follows
  });

  test("a dead owner's claim (never renewed) is taken after its short lease by a live worker, and delivered once", async () => {
    await A.outbound.stop();
    // The tests above leave deferred items: ended here, so that only this test's item is queued.
    const left = await A.store.listQueue({ status: 'queued' });
    await A.store.completeQueueItems({ sent: [], failed: left.map((i) => ({ id: i.id, error: '550 5.0.0 ended by the test' })), deferred: [], dsns: [] });
    const paul = layout.operators[1].users[0].addresses[0];
    await queue('Reprise après panne');
    // A process claims the item with a 1 s lease and dies (SIGKILL: no release, no renewal).
    const dead = SqliteStore.open(path.join(A.config.dataDir, 'caducee.sqlite'));
    const claimedAt = Date.now();
    const [claimed] = await dead.claimQueueItems('dead-process', claimedAt, 10, 1000);
    await dead.close();
    assert.equal(claimed?.recipient, paul, 'the dead process held the item');
    assert.deepEqual(await A.store.claimQueueItems('someone', claimedAt + 999, 10, 1000), [], 'not claimable before its lease ends');
    const worker = secondWorker({ leaseSeconds: 1 });
    worker.start();
    const done = await waitFor(async () => (await A.store.listQueue({ status: 'sent' })).find((i) => i.id === claimed.id), "the live worker delivering the dead process's item");
    assert.equal(done.attempts, 1);
    const got = (await folderMessages(B, paul)).map((m) => /^Subject: (.*)\r$/m.exec(m.toString())?.[1]).filter((g) => g === 'Reprise après panne');
    assert.equal(got.length, 1, 'delivered once at B');
    await worker.stop();
  });

  test('a second process on the same store: the leader services run in one process only, and pass to the other when it stops', async () => {
    // Operator A again, as a second process would run it: the same data directory, its own ports.
    const listen = { ...A.config.listen, mx: 0, submission: 0, submissions: 0, http: 0, https: 0, imap: 0, imaps: 0 };
    const second = await startOperator(parseConfig({ ...structuredClone(A.config), listen } as any), { logger: testLogger() });
    space.closers.push(() => second.stop());
    assert.equal(A.leadership.isLeader, true, 'A started first: it leads');
    assert.equal(second.leadership.isLeader, false, 'the second process runs no leader service');
    await second.leadership.tick();
    assert.equal(second.leadership.isLeader, false, 'A renews: still not');
    await A.leadership.stop(); // A's leader services stop and the lease is released
    await second.leadership.tick();
    assert.equal(second.leadership.isLeader, true, 'the second process took over at its next renewal');
  });
});
