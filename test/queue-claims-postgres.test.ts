// Two nodes' queue workers on one outbound queue kept in PostgreSQL (issue 12: several nodes of one
// operator): the real OutboundWorker, each over its own PgStore pool, sends a burst to a real peer
// (operator B of the demo trust space); every message arrives exactly once (counted at B). A live
// node renews the short leases of what it attempts, so the other node never takes them; a dead
// node's claim is taken once its lease ends.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { SMTPServer } from 'smtp-server';
import type { DemoLayout } from '../src/demo/space.js';
import type { Operator } from '../src/main.js';
import { PgStore } from '../src/store/postgres/index.js';
import { folderMessages, waitFor } from './helpers.js';
import { pgTestDatabase } from './support/postgres.js';
import { startQueueDemo, type QueueDemo } from './support/queue-demo.js';

const db = await pgTestDatabase();

describe('queue workers of two nodes on a PostgreSQL queue', { skip: 'skip' in db ? db.skip : false }, () => {
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
    if (!('skip' in db)) await db.drop();
  });

  /** One node of operator A: its own pool on the shared database and its own queue worker (files: A's message files). */
  async function node(name: string, lines: string[], o: { leaseSeconds?: number; attemptLimitSeconds?: number } = {}) {
    if ('skip' in db) throw new Error(db.skip);
    const store = await PgStore.open(db.url, { poolSize: 4 });
    const worker = space.worker(store, { ...o, logger: pino({ level: 'info', base: { node: name } }, { write: (l: string) => void lines.push(l) }) });
    return { store, worker };
  }

  test('a burst of 60 messages, both workers running: each arrives once at the peer, every item sent', async (t) => {
    const lines: string[] = [];
    const [n1, n2] = [await node('node-1', lines), await node('node-2', lines)];
    const from = layout.operators[0].users[0].addresses[0];
    const to = layout.operators[1].users[0].addresses[0];
    const subjects = Array.from({ length: 60 }, (_, i) => `Rafale ${i + 1}`);
    // Queued on both nodes (as their submission servers would), the workers already running.
    n1.worker.start();
    n2.worker.start();
    await Promise.all(
      subjects.map(async (subject, i) => {
        const raw = Buffer.from(`From: <${from}>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nMessage-ID: <rafale${i}@a.test>\r\n\r\nBonjour.\r\n`);
        const blob = await A.blobs.put(raw);
        await (i % 2 ? n1 : n2).store.deliver({ blobId: blob.id, size: blob.size, internalDate: new Date(), envelopeFrom: from, localMailboxIds: [], remote: [{ recipient: to, domain: to.split('@')[1], notify: null, orcpt: null }] });
        blob.release();
      }),
    );
    const counts = await waitFor(async () => {
      if ((await n1.store.listQueue({ status: 'queued' })).length) return undefined;
      const got = (await folderMessages(B, to)).map((m) => /^Subject: (.*)\r$/m.exec(m.toString())?.[1]);
      return subjects.map((s) => got.filter((g) => g === s).length);
    }, 'the queue drained', 90_000);
    assert.deepEqual(counts, subjects.map(() => 1), 'each message exactly once at B');
    const sent = await n2.store.listQueue({ status: 'sent' });
    assert.equal(sent.length, 60);
    assert.ok(sent.every((q) => q.attempts === 1), 'one attempt each');
    const byNode = (n: string) => lines.filter((l) => JSON.parse(l).node === n && JSON.parse(l).msg === 'delivered').length;
    t.diagnostic(`delivered by node-1: ${byNode('node-1')}, by node-2: ${byNode('node-2')}`);
    assert.equal(byNode('node-1') + byNode('node-2'), 60, 'each item attempted by one worker');
    assert.equal(await n1.store.connection.query("SELECT 1 FROM outbound_queue WHERE lease_owner IS NOT NULL").then((r) => r.length), 0, 'every lease cleared');
    await Promise.all([n1.worker.stop(), n2.worker.stop()]); // the test below chooses its workers
  });

  test("a dead node's claim is taken after its 1 s lease; a live node's attempts keep their items past it (renewed), the other node never claims them", async (t) => {
    if ('skip' in db) return t.skip(db.skip);
    const b = layout.operators[1];
    let data = 0;
    // A node of B that takes the data and never answers: each attempt runs to its time limit.
    const stalled = new SMTPServer({ secure: false, key: readFileSync(b.key), cert: readFileSync(b.chain), authOptional: true, logger: false, onData: (stream) => void (data++, stream.resume()) });
    await new Promise<void>((r) => stalled.listen(0, '127.0.0.1', () => r()));
    space.closers.push(() => new Promise((r) => stalled.close(() => r(undefined))));
    A.config.routes[b.domain] = `127.0.0.1:${(stalled.server.address() as AddressInfo).port}`;
    const lines: string[] = [];
    const live = await node('node-1', lines, { leaseSeconds: 1, attemptLimitSeconds: 3 });
    const other = await PgStore.open(db.url, { poolSize: 2 });
    space.closers.push(() => other.close());
    const from = layout.operators[0].users[0].addresses[0];
    const to = b.users[0].addresses[0];
    const enqueue = async (subject: string) => {
      const blob = await A.blobs.put(Buffer.from(`From: <${from}>\r\nTo: <${to}>\r\nSubject: ${subject}\r\n\r\nBonjour.\r\n`));
      await live.store.deliver({ blobId: blob.id, size: blob.size, internalDate: new Date(), envelopeFrom: from, localMailboxIds: [], remote: [{ recipient: to, domain: b.domain, notify: null, orcpt: null }] });
      blob.release();
      return (await live.store.listQueue({ status: 'queued' })).at(-1)!.id;
    };
    // A node claims an item for 1 s and dies (no release, no renewal).
    const x = await enqueue('Nœud tombé');
    const dead = await PgStore.open(db.url, { poolSize: 1 });
    assert.deepEqual((await dead.claimQueueItems('dead-node', Date.now(), 10, 1000)).map((i) => i.id), [x]);
    await dead.close();
    const y = await enqueue('Longue attente');
    live.worker.start();
    // Once node 1 attempts both (the dead node's item after its lease, which anyone may take then),
    // the other node tries to claim while those attempts run, until both are recorded.
    await waitFor(() => data >= 2, 'node 1 sending both messages to the stalled node', 30_000);
    const stolen: number[] = [];
    let tries = 0;
    const done = await waitFor(async () => {
      const got = await other.claimQueueItems('node-2', Date.now(), 10, 1000);
      tries++;
      // Once an attempt is recorded (deferred, due again) anyone may claim the item: only a claim of
      // an item no attempt has ended yet would be a theft.
      stolen.push(...got.filter((i) => i.attempts === 0).map((i) => i.id));
      await other.releaseQueueItems('node-2', got.map((i) => i.id));
      const q = (await other.listQueue({ status: 'queued' })).filter((i) => i.id === x || i.id === y);
      return q.length === 2 && q.every((i) => i.attempts >= 1) ? q : undefined;
    }, "node 1's attempts of both items recorded", 30_000);
    await live.worker.stop();
    t.diagnostic(`node 2 tried to claim ${tries} times; the stalled peer got ${data} messages' data`);
    assert.deepEqual(stolen, [], "node 2 never got an item of node 1's live attempts");
    for (const i of done) assert.match(i.lastError ?? '', /attempt cut after 3 s, its time limit/, `item ${i.id === x ? 'of the dead node' : 'queued'}: node 1's attempt ran past its 1 s lease, renewed, until its time limit`);
    const attempted = lines.filter((l) => /attempt cut after 3 s/.test(JSON.parse(l).reason ?? '')).map((l) => JSON.parse(l).queueId);
    assert.ok(attempted.includes(x) && attempted.includes(y), "node 1 attempted both, the dead node's item too");
    A.config.routes[b.domain] = `127.0.0.1:${B.ports.mx}`;
  });
});
