// Message files are reference-counted by the store and removed by the collector once nothing
// references them: expunge, folder and mailbox deletion, queue items sent or failed, shared files,
// a put racing a removal, and a crash between the decision and the removal.
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { tempDir, waitFor } from '../../test/helpers.js';
import { BlobCollector } from './blob-collector.js';
import { BlobStore } from './blobs.js';
import { SqliteStore } from './sqlite/index.js';

async function setup(opts: { pinMs?: number } = {}) {
  const { dir, cleanup } = tempDir('caducee-blobs-');
  const store = SqliteStore.open(path.join(dir, 'db.sqlite'));
  const blobs = new BlobStore(path.join(dir, 'blobs'), store, { pinMs: opts.pinMs ?? 0 });
  const collector = new BlobCollector(store, blobs, pino({ level: 'silent' }));
  const st = await store.createStructure({ idType: 'SIRET', idValue: '13000000000019', name: 'X' });
  const mailbox = (address: string) => store.createMailbox({ address, type: 'ORG', displayName: address, ownerUserId: null, practitionerId: null, structureId: st.id, listeRouge: false });
  const a = await mailbox('a@x.test');
  const b = await mailbox('b@x.test');
  const inbox = async (m: { id: number }) => (await store.getFolder(m.id, 'INBOX'))!;
  const put = async (text: string) => {
    const info = await blobs.put(Buffer.from(`Subject: ${text}\r\n\r\n${text}\r\n`));
    await store.setBlobMeta(info.id, '{}');
    return info;
  };
  const onDisk = (id: string) => existsSync(blobs.pathOf(id));
  const done = async () => {
    await store.close();
    cleanup();
  };
  return { store, blobs, collector, a, b, inbox, put, onDisk, done };
}

const deleteAll = async (store: SqliteStore, folderId: number, uids: number[]) => {
  await store.storeFlags(folderId, uids, 'add', ['\\Deleted']);
  return store.expunge(folderId);
};

test('expunge: the file goes with its last reference, not before; its analysis goes too', async () => {
  const t = await setup();
  try {
    const blob = await t.put('partagé');
    // One file, two recipients (one delivery), then a COPY: three references.
    await t.store.deliver({ blobId: blob.id, size: blob.size, internalDate: new Date(), envelopeFrom: 'x@y.test', localMailboxIds: [t.a.id, t.b.id], remote: [] });
    const archive = await t.store.createFolder(t.a.id, 'Archives');
    await t.store.copyMessages((await t.inbox(t.a)).id, [1], archive.id, false);
    await deleteAll(t.store, (await t.inbox(t.a)).id, [1]);
    assert.deepEqual(await t.collector.run(), { removed: 0, kept: 1 });
    assert.ok(t.onDisk(blob.id), 'still referenced by b and by the copy');
    await deleteAll(t.store, (await t.inbox(t.b)).id, [1]);
    await t.collector.run();
    assert.ok(t.onDisk(blob.id), 'still referenced by the copy');
    await deleteAll(t.store, archive.id, [1]);
    assert.deepEqual(await t.collector.run(), { removed: 1, kept: 0 });
    assert.ok(!t.onDisk(blob.id));
    assert.equal(await t.store.getBlobMeta(blob.id), undefined);
    assert.deepEqual(await t.store.blobGarbage(10), []);
  } finally {
    await t.done();
  }
});

test('folder deletion and mailbox deletion release their files; a MOVE keeps the file', async () => {
  const t = await setup();
  try {
    const [m1, m2, m3] = [await t.put('un'), await t.put('deux'), await t.put('trois')];
    const projets = await t.store.createFolder(t.a.id, 'Projets');
    await t.store.appendMessage(projets.id, { blobId: m1.id, size: m1.size, flags: [], internalDate: new Date() });
    await t.store.appendMessage((await t.inbox(t.b)).id, { blobId: m2.id, size: m2.size, flags: [], internalDate: new Date() });
    await t.store.appendMessage((await t.inbox(t.a)).id, { blobId: m3.id, size: m3.size, flags: [], internalDate: new Date() });
    await t.store.copyMessages((await t.inbox(t.a)).id, [1], projets.id, true);
    await t.collector.run();
    assert.ok(t.onDisk(m3.id), 'moved, not deleted');
    await t.store.deleteFolder(projets.id);
    await t.collector.run();
    assert.ok(!t.onDisk(m1.id) && !t.onDisk(m3.id));
    await t.store.updateMailbox(t.b.id, { state: 'deleted' });
    await t.collector.run();
    assert.ok(!t.onDisk(m2.id));
    assert.deepEqual(await t.store.listFolders(t.b.id), [], 'a deleted mailbox keeps no folder');
    assert.equal((await t.store.getMailbox(t.b.id))?.state, 'deleted', 'the address stays reserved');
  } finally {
    await t.done();
  }
});

test('queue: the sender-side file goes once every queued item is sent or failed', async () => {
  const t = await setup();
  try {
    const blob = await t.put('vers un autre opérateur');
    const remote = (recipient: string) => ({ recipient, domain: 'autre.test', notify: null, orcpt: null });
    await t.store.deliver({ blobId: blob.id, size: blob.size, internalDate: new Date(), envelopeFrom: 'a@x.test', localMailboxIds: [], remote: [remote('r1@autre.test'), remote('r2@autre.test')] });
    const [q1, q2] = await t.store.listQueue({ status: 'queued' });
    await t.store.completeQueueItems({ sent: [q1.id], failed: [], deferred: [{ id: q2.id, error: '451 later', nextAttemptAt: Date.now() + 60_000 }], dsns: [] });
    await t.collector.run();
    assert.ok(t.onDisk(blob.id), 'one recipient still queued');
    await t.store.completeQueueItems({ sent: [], failed: [{ id: q2.id, error: '550 no' }], deferred: [], dsns: [] });
    await t.collector.run();
    assert.ok(!t.onDisk(blob.id));
  } finally {
    await t.done();
  }
});

test('a put of the same content pins the file: a removal in between cannot leave a dangling row', async () => {
  const t = await setup({ pinMs: 60_000 });
  try {
    const first = await t.put('même contenu');
    await t.store.appendMessage((await t.inbox(t.a)).id, { blobId: first.id, size: first.size, flags: [], internalDate: new Date() });
    await deleteAll(t.store, (await t.inbox(t.a)).id, [1]);
    // The same bytes arrive again (put done, its transaction not yet committed).
    const again = await t.put('même contenu');
    assert.equal(again.id, first.id);
    assert.deepEqual(await t.collector.run(), { removed: 0, kept: 1 });
    assert.ok(t.onDisk(first.id), 'pinned by the put');
    assert.deepEqual(await t.store.blobGarbage(10), [first.id], 'the candidate waits for the pin to expire');
    await t.store.appendMessage((await t.inbox(t.b)).id, { blobId: again.id, size: again.size, flags: [], internalDate: new Date() });
    assert.ok(t.onDisk(again.id));
  } finally {
    await t.done();
  }
});

test('a removal in progress holds a concurrent put of the same content until the file is gone', async () => {
  const t = await setup();
  try {
    const blob = await t.put('course');
    let putDone = false;
    let again: Promise<unknown> | undefined;
    // While the removal holds the id (claimed, file not yet removed), the same content is put
    // again in this process: it waits for the removal, then writes the file again.
    const claim = t.store.claimBlobRemoval.bind(t.store);
    t.store.claimBlobRemoval = async (...args) => {
      const claimed = await claim(...args);
      again = t.blobs.put(Buffer.from('Subject: course\r\n\r\ncourse\r\n')).then(() => (putDone = true));
      await new Promise((r) => setTimeout(r, 20));
      return claimed;
    };
    assert.equal(await t.blobs.removeIfUnreferenced(blob.id), true);
    assert.equal(putDone, false, 'the put waited for the removal');
    await again;
    assert.ok(t.onDisk(blob.id), 'the put wrote the file again after the removal');
  } finally {
    await t.done();
  }
});

test('a removal claimed elsewhere holds the candidate and puts until done or past its lease', async () => {
  const t = await setup();
  try {
    const blob = await t.put('réclamé');
    await t.store.appendMessage((await t.inbox(t.a)).id, { blobId: blob.id, size: blob.size, flags: [], internalDate: new Date() });
    await deleteAll(t.store, (await t.inbox(t.a)).id, [1]);
    // Another node's collector claimed it a moment ago: this one leaves it alone, and a put of
    // the same content is refused its pin (it would wait).
    const since = Date.now();
    assert.equal(await t.store.claimBlobRemoval(blob.id, since, 30_000), true);
    assert.deepEqual(await t.collector.run(), { removed: 0, kept: 1 });
    assert.equal(await t.store.pinBlob(blob.id, 'p1', Date.now(), 60_000, 30_000), false, 'no pin while the removal is claimed');
    // Its collector crashed: past the lease, a put takes the claim over, and the claim gives way.
    assert.equal(await t.store.pinBlob(blob.id, 'p1', since + 30_000, 60_000, 30_000), true);
    assert.equal(await t.store.claimBlobRemoval(blob.id, since + 30_001, 30_000), false, 'pinned');
    await t.store.forgetBlobGarbage(blob.id, since);
    assert.deepEqual(await t.store.blobGarbage(10), [blob.id], 'the claim was taken over: its owner forgets nothing');
    await t.store.unpinBlobs([{ blobId: blob.id, token: 'p1' }]);
    assert.deepEqual(await t.collector.run(), { removed: 1, kept: 0 });
    assert.ok(!t.onDisk(blob.id));
  } finally {
    await t.done();
  }
});

test('a removal stalled past half its lease after its claim gives up before unlinking (a put may have taken the claim over)', async () => {
  const t = await setup();
  try {
    const blob = await t.put('lent');
    await blob.release();
    const claim = t.store.claimBlobRemoval.bind(t.store);
    // The claim answers, then this process stalls (event loop, GC, NFS) for more than lease/2.
    const stalled = new BlobStore(t.blobs.dir, {
      claimBlobRemoval: async (...args) => {
        const claimed = await claim(...args);
        await new Promise((r) => setTimeout(r, 30));
        return claimed;
      },
      forgetBlobGarbage: t.store.forgetBlobGarbage.bind(t.store),
      pinBlob: t.store.pinBlob.bind(t.store),
      unpinBlobs: t.store.unpinBlobs.bind(t.store),
      pruneBlobPins: t.store.pruneBlobPins.bind(t.store),
    }, { removalLeaseMs: 40 });
    assert.equal(await stalled.removeIfUnreferenced(blob.id), false);
    assert.ok(t.onDisk(blob.id), 'not unlinked');
    assert.deepEqual(await t.store.blobGarbage(10), [blob.id], 'the candidate stays for a later run');
  } finally {
    await t.done();
  }
});

test('a put waits for a removal claimed by another process, then writes the file again', async () => {
  const t = await setup();
  try {
    const raw = 'Subject: ailleurs\r\n\r\nailleurs\r\n';
    const blob = await t.put('ailleurs');
    await blob.release();
    // Process 2 claims the removal (through the store: nothing in this process knows of it).
    const since = Date.now();
    assert.equal(await t.store.claimBlobRemoval(blob.id, since, 30_000), true);
    let done = false;
    const again = t.blobs.put(Buffer.from(raw)).then((p) => ((done = true), p));
    await waitFor(async () => (await t.store.pinBlob(blob.id, 'probe', Date.now(), 0, 30_000)) === false && !done, 'the put polling');
    assert.equal(done, false, 'no pin while the removal is claimed');
    // Process 2 removes the file and forgets its candidate: the put goes on and writes it again.
    rmSync(t.blobs.pathOf(blob.id));
    await t.store.forgetBlobGarbage(blob.id, since);
    const p = await again;
    assert.equal(p.id, blob.id);
    assert.ok(t.onDisk(blob.id));
  } finally {
    await t.done();
  }
});

test('the orphan of a put that crashed keeps its pin: the scan makes it a candidate, removed once the pin expires', async () => {
  const t = await setup();
  try {
    // Another process put a file and died before its transaction (and its release).
    const crashed = new BlobStore(t.blobs.dir, t.store, { pinMs: 60_000 });
    const orphan = await crashed.put(Buffer.from('Subject: interrompu\r\n\r\n.\r\n'));
    assert.equal(await t.collector.scanOrphans(), 0, 'pinned: not removed at start');
    assert.deepEqual(await t.store.blobGarbage(10), [orphan.id], 'but recorded as a candidate');
    assert.deepEqual(await t.collector.run(), { removed: 0, kept: 1 });
    t.store.db.prepare('UPDATE blob_pins SET until = ? WHERE blob_id = ?').run(Date.now() - 1, orphan.id); // ten minutes later
    assert.deepEqual(await t.collector.run(), { removed: 1, kept: 0 });
    assert.ok(!t.onDisk(orphan.id));
    assert.deepEqual(await t.store.blobGarbage(10), []);
  } finally {
    await t.done();
  }
});

test('a crash after the decision only repeats the removal; orphans and stale temporary files are swept', async () => {
  const t = await setup();
  try {
    const blob = await t.put('interrompu');
    await t.store.appendMessage((await t.inbox(t.a)).id, { blobId: blob.id, size: blob.size, flags: [], internalDate: new Date() });
    await deleteAll(t.store, (await t.inbox(t.a)).id, [1]);
    await blob.release();
    // Crash simulated after step 1 (decision committed, a lease ago) and before the file was removed.
    assert.equal(await t.store.claimBlobRemoval(blob.id, Date.now() - 30_000, 30_000), true);
    assert.ok(t.onDisk(blob.id));
    assert.deepEqual(await t.store.blobGarbage(10), [blob.id], 'the candidate survives the decision');
    assert.deepEqual(await t.collector.run(), { removed: 1, kept: 0 });
    assert.ok(!t.onDisk(blob.id));
    // A put whose transaction never committed (crash): no row, no candidate; the scan finds it.
    const orphan = await t.blobs.put(Buffer.from('Subject: orphelin\r\n\r\n.\r\n'));
    const kept = await t.put('gardé');
    await t.store.appendMessage((await t.inbox(t.b)).id, { blobId: kept.id, size: kept.size, flags: [], internalDate: new Date() });
    assert.equal(await t.collector.scanOrphans(), 1);
    assert.ok(!t.onDisk(orphan.id) && t.onDisk(kept.id));
    const tmp = path.join(t.blobs.dir, 'tmp', 'interrupted-put');
    writeFileSync(tmp, 'partial');
    assert.equal(await t.blobs.cleanTmp(60_000), 0, 'a fresh temporary file may be a put in progress');
    assert.equal(await t.blobs.cleanTmp(-1), 1);
    assert.ok(!existsSync(tmp));
  } finally {
    await t.done();
  }
});
