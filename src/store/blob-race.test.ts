// Two processes (or nodes) share one data directory and one database: node 1 puts the
// same content again and commits a message referencing it while node 2's collector removes the
// unreferenced file. Each side has its own BlobStore and its own connection, so nothing of the
// in-process fast path is shared: only the store's handshake (store/message-files.ts) keeps them
// apart (odd rounds put through putMany, a MULTIAPPEND's batch). Seeded delays (event-loop
// turns) around every store call vary the interleavings; after each round, every committed
// reference must have its file, whole. Once on SQLite (two
// processes of one machine), once on PostgreSQL (two nodes sharing a file system mount).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Rng } from '../../test/fuzz/rng.js';
import { pgMailFixture } from '../../test/support/pg-mail.js';
import { tempDir } from '../../test/helpers.js';
import { BlobStore } from './blobs.js';
import type { BlobPinStore } from './message-files.js';
import type { Store } from './types.js';
import { SqliteStore } from './sqlite/index.js';

const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

/** The store's handshake methods, each preceded and followed by a seeded number of event-loop turns. */
function jittered(store: BlobPinStore, r: Rng, seen: (event: string) => void = () => {}): BlobPinStore {
  const wrap =
    <A extends unknown[], T>(name: string, fn: (...a: A) => Promise<T>) =>
    async (...a: A): Promise<T> => {
      seen(`${name} called`);
      await turns(r.int(4));
      const v = await fn(...a);
      seen(`${name} done`);
      await turns(r.int(4));
      return v;
    };
  return {
    pinBlob: wrap('pin', store.pinBlob.bind(store)),
    ...(store.pinBlobs ? { pinBlobs: wrap('pin', store.pinBlobs.bind(store)) } : {}),
    unpinBlobs: wrap('unpin', store.unpinBlobs.bind(store)),
    pruneBlobPins: wrap('prune', store.pruneBlobPins.bind(store)),
    claimBlobRemoval: wrap('claim', store.claimBlobRemoval.bind(store)),
    forgetBlobGarbage: wrap('forget', store.forgetBlobGarbage.bind(store)),
  };
}

/** Promises of events, each resolved when first seen (reset per round). */
class Moments {
  private waiting = new Map<string, () => void>();
  private happened = new Set<string>();
  seen = (event: string) => {
    this.happened.add(event);
    this.waiting.get(event)?.();
  };
  when(event: string): Promise<void> {
    if (this.happened.has(event)) return Promise.resolve();
    return new Promise((r) => this.waiting.set(event, r));
  }
  reset() {
    this.waiting.clear();
    this.happened.clear();
  }
}

/**
 * `rounds` rounds of the race between node 1 (store1, its own BlobStore on `dir`) and node 2
 * (store2, another BlobStore on the same `dir`) over one folder.
 */
async function race(store1: Store, store2: Store, folderId: number, dir: string, what: string) {
  const seed = Number(process.env.BLOB_RACE_SEED ?? 20261207);
  const rounds = Number(process.env.BLOB_RACE_ROUNDS ?? 100);
  const r = new Rng(seed);
  const moments = new Moments();
  const blobs1 = new BlobStore(dir, jittered(store1, r, moments.seen));
  const blobs2 = new BlobStore(dir, jittered(store2, r));
  const content = Buffer.from(`Subject: toujours le même (${what})\r\n\r\nLe même contenu, encore et encore.\r\n`);
  const id = createHash('sha256').update(content).digest('hex');
  const outcomes = { removedFirst: 0, pinnedFirst: 0 };
  const manyOutcomes = { removedFirst: 0, pinnedFirst: 0 };
  for (let round = 0; round < rounds; round++) {
    // Node 1: put, commit a message referencing it, release. Node 2: remove if unreferenced,
    // starting at a seeded moment of node 1's put.
    moments.reset();
    const put = (async () => {
      moments.seen('start');
      // Odd rounds: a MULTIAPPEND's putMany (its pins in one pinBlobs call) with another file.
      const many = round % 2 === 1 ? await blobs1.putMany([Buffer.from(`Subject: autre ${round} (${what})\r\n\r\nx\r\n`), content]) : undefined;
      const blob = many ? many[1] : await blobs1.put(content);
      moments.seen('put');
      await turns(r.int(4));
      await store1.appendMessage(folderId, { blobId: blob.id, size: blob.size, flags: [], internalDate: new Date() });
      for (const b of many ?? [blob]) await b.release();
    })();
    const removal = (async () => {
      await moments.when(r.pick(['start', 'pin called', 'pin called', 'pin done', 'put']));
      await turns(r.int(6));
      return blobs2.removeIfUnreferenced(id);
    })();
    const [, removed] = await Promise.all([put, removal]);
    for (const o of round % 2 === 1 ? [outcomes, manyOutcomes] : [outcomes]) {
      if (removed) o.removedFirst++;
      else o.pinnedFirst++;
    }
    const referencing = (await store2.listMessages(folderId)).filter((m) => m.blobId === id);
    const where = `${what}, round ${round} (seed ${seed})`;
    assert.equal(referencing.length, 1, where);
    assert.ok(existsSync(blobs2.pathOf(id)), `${where}: a committed message references a removed file`);
    assert.ok(readFileSync(blobs2.pathOf(id)).equals(content), `${where}: the file is whole`);
    // The message goes: the file is a candidate again for the next round.
    await store1.storeFlags(folderId, [referencing[0].uid], 'add', ['\\Deleted']);
    await store1.expunge(folderId);
  }
  // Both orders happened (otherwise the race was not exercised and the test proves nothing).
  assert.ok(outcomes.removedFirst > 0 && outcomes.pinnedFirst > 0, `${what}, seed ${seed}: ${JSON.stringify(outcomes)}`);
  assert.ok(manyOutcomes.removedFirst > 0 && manyOutcomes.pinnedFirst > 0, `${what}, seed ${seed}, putMany rounds: ${JSON.stringify(manyOutcomes)}`);
}

test('SQLite, two processes: put on one against removal on the other of the same content, never a committed reference without its file', async () => {
  const { dir, cleanup } = tempDir('caducee-blob-race-');
  const db = path.join(dir, 'caducee.sqlite');
  const store1 = SqliteStore.open(db);
  const store2 = SqliteStore.open(db);
  try {
    const st = await store1.createStructure({ idType: 'SIRET', idValue: '13000000000019', name: 'X' });
    const mb = await store1.createMailbox({ address: 'a@x.test', type: 'ORG', displayName: 'A', ownerUserId: null, practitionerId: null, structureId: st.id, listeRouge: false });
    await race(store1, store2, (await store1.getFolder(mb.id, 'INBOX'))!.id, path.join(dir, 'blobs'), 'SQLite');
  } finally {
    await store1.close();
    await store2.close();
    cleanup();
  }
});

const pg = await pgMailFixture();

test('PostgreSQL, two nodes sharing a file system: the same race, never a committed reference without its file', { skip: 'skip' in pg ? pg.skip : false }, async () => {
  if ('skip' in pg) return;
  const { dir, cleanup } = tempDir('caducee-blob-race-');
  try {
    const op = await pg.operator();
    const node2 = await op.node();
    await race(op.s, node2, (await op.s.getFolder(await op.mailbox('a@x.test'), 'INBOX'))!.id, path.join(dir, 'blobs'), 'PostgreSQL');
  } finally {
    await pg.close();
    cleanup();
  }
});
