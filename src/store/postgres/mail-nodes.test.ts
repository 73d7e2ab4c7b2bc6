// Two nodes (two PgStore pools) on one PostgreSQL database, doing mail at the same time: appends to
// one folder, a CONDSTORE reader catching up by modseq, queue workers claiming in batches, leases
// expiring (issue 12: several stateless nodes per operator).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pgMailTestFile, testBlobId as blob } from '../../../test/support/pg-mail.js';

const F = await pgMailTestFile();
const { skip } = F;


test('50 appends from each of two nodes at once: UIDs 1..100, modseqs increasing with them, every snapshot consistent', { skip }, async () => {
  const op = await F.own();
  const [a, b] = [op.s, await op.node()];
  const mb = await op.mailbox('a@x.test');
  const inbox = (await a.getFolder(mb, 'INBOX'))!;
  const start = await a.folderModseq(inbox.id);
  let writing = true;
  const snapshots: string[] = [];
  // A third party reading while they write: SELECT's view and STATUS each describe one state.
  const reader = (async () => {
    while (writing) {
      const v = await b.openFolder(inbox.id);
      const uids = v.messages.map((m) => m.uid);
      if (uids.length !== v.uidNext - 1 || uids.some((u, i) => u !== i + 1)) snapshots.push(`SELECT: uids ${uids.join(',')} with UIDNEXT ${v.uidNext}`);
      if (v.highestModseq !== start + uids.length) snapshots.push(`SELECT: HIGHESTMODSEQ ${v.highestModseq} with ${uids.length} messages`);
      const st = await a.folderStatus(inbox.id);
      if (st.messages !== st.uidNext - 1 || st.highestModseq !== start + st.messages || st.recent !== st.messages || st.unseen !== st.messages)
        snapshots.push(`STATUS: ${JSON.stringify(st)}`);
    }
  })();
  const results = await Promise.all(
    Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).appendMessage(inbox.id, { blobId: blob(i), size: 100 + i, flags: [], internalDate: new Date() })),
  );
  writing = false;
  await reader;
  assert.deepEqual(snapshots, [], 'no snapshot mixed two states');
  assert.deepEqual(results.map((r) => r.uid).sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i + 1), 'distinct, consecutive UIDs');
  const stored = await a.folderMessages(inbox.id);
  assert.deepEqual(stored.map((m) => m.uid), Array.from({ length: 100 }, (_, i) => i + 1));
  for (let i = 1; i < stored.length; i++) assert.ok(stored[i].modseq > stored[i - 1].modseq, `modseq of uid ${i + 1} above uid ${i}'s`);
  for (const r of results) assert.equal(stored[r.uid - 1].modseq, r.modseq, 'each append returned what it stored');
  const st = await b.folderStatus(inbox.id);
  assert.deepEqual([st.messages, st.uidNext, st.highestModseq, st.size], [100, 101, start + 100, results.reduce((n, _r, i) => n + 100 + i, 0)]);
  assert.equal(st.highestModseq, stored[99].modseq);
});

test('a CONDSTORE reader on one node catching up by modseq misses nothing two other nodes write at once (RFC 7162 §3.1.1)', { skip }, async () => {
  const op = await F.own();
  const [w1, w2, r] = [op.s, await op.node(), await op.node()];
  const mb = await op.mailbox('b@x.test');
  const inbox = (await w1.getFolder(mb, 'INBOX'))!;
  for (let i = 0; i < 20; i++) await w1.appendMessage(inbox.id, { blobId: blob(i), size: 1, flags: [], internalDate: new Date() });
  const initial = await r.folderModseq(inbox.id);
  let last = initial;
  const seen = new Map<number, number>(); // uid → the highest modseq read for it
  const catchUp = async () => {
    // What an IMAP session does after a notification (or on a timer): the changes above the
    // highest modseq it has seen, then that modseq moves up.
    for (const m of await r.changedSince(inbox.id, last)) {
      seen.set(m.uid, Math.max(seen.get(m.uid) ?? 0, m.modseq));
      last = Math.max(last, m.modseq);
    }
  };
  let writing = true;
  const reader = (async () => {
    while (writing) await catchUp();
  })();
  const writes: Promise<unknown>[] = [];
  for (let i = 0; i < 40; i++) {
    const node = i % 2 ? w1 : w2;
    writes.push(i % 4 < 2 ? node.appendMessage(inbox.id, { blobId: blob(100 + i), size: 1, flags: [], internalDate: new Date() }) : node.storeFlags(inbox.id, [1 + (i % 20)], 'add', [`$k${i}`]));
  }
  await Promise.all(writes);
  writing = false;
  await reader;
  await catchUp(); // a change committed below `last` after the reader moved past it would be lost here
  const final = await r.folderMessages(inbox.id);
  const missed = final.filter((m) => m.modseq > initial && seen.get(m.uid) !== m.modseq);
  assert.deepEqual(missed.map((m) => m.uid), [], 'every change seen at its final modseq');
  assert.equal(last, await r.folderModseq(inbox.id));
});

test('200 queued items claimed in batches by two nodes at once: disjoint, covering all, oldest first per batch', { skip }, async () => {
  const op = await F.own();
  const [a, b] = [op.s, await op.node()];
  const mb = await op.mailbox('c@x.test');
  await a.deliver({
    blobId: blob(1),
    size: 10,
    internalDate: new Date(),
    envelopeFrom: 'c@x.test',
    localMailboxIds: [],
    remote: Array.from({ length: 200 }, (_, i) => ({ recipient: `r${i}@peer.test`, domain: 'peer.test', notify: null, orcpt: null })),
    senderMailboxId: mb,
  });
  const all = (await a.listQueue({ status: 'queued' })).map((q) => q.id);
  assert.equal(all.length, 200);
  const now = Date.now();
  // Every worker waits after its first batch until all three have one, so that both nodes
  // take part whatever the scheduling (one node alone could otherwise drain the queue first).
  let first = 0;
  let allStarted!: () => void;
  const started = new Promise<void>((r) => (allStarted = r));
  const worker = async (store: typeof a, owner: string) => {
    const got: number[] = [];
    for (;;) {
      const batch = await store.claimQueueItems(owner, now, 7, 60_000);
      if (got.length === 0) {
        if (++first === 3) allStarted();
        await started;
      }
      if (batch.length === 0) return got;
      assert.deepEqual(batch.map((q) => q.id), [...batch.map((q) => q.id)].sort((x, y) => x - y), 'a batch comes oldest first');
      got.push(...batch.map((q) => q.id));
    }
  };
  const [x, y, z] = await Promise.all([worker(a, 'node-1'), worker(b, 'node-2'), worker(b, 'node-2b')]);
  const claimed = [...x, ...y, ...z];
  assert.equal(new Set(claimed).size, claimed.length, 'no item claimed twice');
  assert.deepEqual(claimed.sort((p, q) => p - q), all, 'every item claimed');
  assert.ok(x.length > 0 && y.length + z.length > 0, `both nodes worked (${x.length} / ${y.length + z.length})`);
  const owners = await op.rows('SELECT lease_owner, COUNT(*)::int AS n FROM outbound_queue GROUP BY lease_owner ORDER BY lease_owner');
  assert.deepEqual(owners, [{ lease_owner: 'node-1', n: x.length }, { lease_owner: 'node-2', n: y.length }, { lease_owner: 'node-2b', n: z.length }].filter((o) => o.n > 0));
  // node-1 dies: its leases expire and node 2 takes its items; completing clears each lease.
  assert.deepEqual(await b.claimQueueItems('node-2', now + 59_999, 500, 60_000), [], 'not before the lease ends');
  const retaken = await b.claimQueueItems('node-2', now + 60_000, 500, 60_000);
  assert.deepEqual(retaken.map((q) => q.id).sort((p, q) => p - q), [...y, ...z, ...x].sort((p, q) => p - q), 'every expired lease, whoever held it');
  await a.completeQueueItems({ sent: x, failed: [], deferred: y.map((id) => ({ id, error: '421 4.3.2 busy', nextAttemptAt: now + 120_000 })), dsns: [] });
  const rows = await op.rows('SELECT status, lease_owner IS NULL AS free, COUNT(*)::int AS n FROM outbound_queue GROUP BY 1, 2 ORDER BY 1, 2');
  assert.deepEqual(rows, [{ status: 'queued', free: false, n: z.length }, { status: 'queued', free: true, n: y.length }, { status: 'sent', free: true, n: x.length }].filter((r) => r.n > 0));
  assert.deepEqual((await a.claimQueueItems('node-1', now + 120_000, 500, 60_000)).map((q) => q.id).sort((p, q) => p - q), [...y, ...z].sort((p, q) => p - q), 'deferred items when due, expired leases');
});

test('deliveries to the same mailboxes named in different orders on two nodes: all stored, UIDs consecutive per folder, copies in the order asked', { skip }, async () => {
  const op = await F.own();
  const [a, b] = [op.s, await op.node()];
  const boxes = [await op.mailbox('d1@x.test'), await op.mailbox('d2@x.test'), await op.mailbox('d3@x.test')];
  const orders = [[0, 1, 2], [2, 1, 0], [1, 2, 0], [0, 2, 1]];
  const results = await Promise.all(
    Array.from({ length: 24 }, (_, i) => {
      const to = orders[i % orders.length].map((k) => boxes[k]);
      return (i % 2 ? a : b).deliver({ blobId: blob(i), size: 1, internalDate: new Date(), envelopeFrom: 'x@y.test', localMailboxIds: to, remote: [] }).then((copies) => ({ to, copies }));
    }),
  );
  for (const r of results) assert.deepEqual(r.copies.map((c) => c.mailboxId), r.to);
  for (const mb of boxes) {
    const inbox = (await a.getFolder(mb, 'INBOX'))!;
    assert.deepEqual(await a.folderUids(inbox.id), Array.from({ length: 24 }, (_, i) => i + 1));
    const uids = results.map((r) => r.copies.find((c) => c.mailboxId === mb)!.uid).sort((x, y) => x - y);
    assert.deepEqual(uids, Array.from({ length: 24 }, (_, i) => i + 1), 'each delivery got its own UID');
  }
});

test('a folder deleted on one node while another stores flags, expunges and moves in it: every call ends without error', { skip }, async () => {
  const op = await F.own();
  const [a, b] = [op.s, await op.node()];
  const mb = await op.mailbox('e@x.test');
  const archive = await a.createFolder(mb, 'Archive');
  for (let round = 0; round < 8; round++) {
    const f = await a.createFolder(mb, `Temp${round}`);
    for (let i = 0; i < 5; i++) await a.appendMessage(f.id, { blobId: blob(i), size: 1, flags: i % 2 ? ['\\Deleted'] : [], internalDate: new Date() });
    const results = await Promise.allSettled([
      b.storeFlags(f.id, [1, 2, 3, 4, 5], 'add', ['\\Seen']),
      b.expunge(f.id),
      b.copyMessages(f.id, [1, 3], archive.id, true),
      a.deleteFolder(f.id),
    ]);
    assert.deepEqual(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)), [], `round ${round}`);
    assert.equal(await a.getFolderById(f.id), undefined);
    assert.equal(await op.scalar('SELECT COUNT(*) FROM messages WHERE folder_id = $1', [f.id]).then(Number), 0);
  }
});
