// Two nodes' queue workers on one outbound queue kept in PostgreSQL (issue 12: several nodes of one
// operator): the real OutboundWorker, each over its own PgStore pool, sends a burst to a real peer
// (operator B of the demo trust space); every message arrives exactly once (counted at B).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
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
  async function node(name: string, lines: string[]) {
    if ('skip' in db) throw new Error(db.skip);
    const store = await PgStore.open(db.url, { poolSize: 4 });
    const worker = space.worker(store, { logger: pino({ level: 'info', base: { node: name } }, { write: (l: string) => void lines.push(l) }) });
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
  });
});
