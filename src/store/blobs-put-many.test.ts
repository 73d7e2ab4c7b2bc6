// BlobStore.putMany (a MULTIAPPEND's files, issue 15): the same files, ids and pins as put() one
// by one, plaintext and sealed; pins taken in one store call (with put()'s wait when a removal is
// claimed); every file under its name before it resolves; on a failure no copy and no pin left.
// put() of bytes in hand (the MX's message): the file, id and size limit of a streamed put.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { tempDir, waitFor } from '../../test/helpers.js';
import { BlobStore } from './blobs.js';
import { KeyRing } from './keyring.js';
import type { BlobPinStore } from './message-files.js';
import { SqliteStore } from './sqlite/index.js';

async function setup(keys?: KeyRing) {
  const { dir, cleanup } = tempDir('caducee-putmany-');
  const store = SqliteStore.open(path.join(dir, 'db.sqlite'));
  const calls: string[] = [];
  // The store's handshake, counting the calls (the pins of a batch: one pinBlobs).
  const pins: BlobPinStore = {
    pinBlob: (...a) => (calls.push('pinBlob'), store.pinBlob(...a)),
    pinBlobs: (...a) => (calls.push(`pinBlobs ${a[0].length}`), store.pinBlobs(...a)),
    unpinBlobs: (l) => store.unpinBlobs(l),
    pruneBlobPins: (n) => store.pruneBlobPins(n),
    claimBlobRemoval: (...a) => store.claimBlobRemoval(...a),
    forgetBlobGarbage: (...a) => store.forgetBlobGarbage(...a),
  };
  const blobsDir = path.join(dir, 'blobs');
  const blobs = new BlobStore(blobsDir, pins, { keys });
  const pinned = () => store.db.prepare('SELECT count(*) FROM blob_pins').pluck().get() as number;
  const tmpFiles = () => readdirSync(path.join(blobsDir, 'tmp'));
  const done = async () => {
    await store.close();
    cleanup();
  };
  return { store, blobs, calls, pinned, tmpFiles, done };
}

const messages = (n: number) => Array.from({ length: n }, (_, i) => Buffer.from(`Subject: message ${i}\r\n\r\nCorps ${i} ${'x'.repeat(i * 37)}\r\n`));

test('putMany: the files and ids put() gives, all pinned in one call until released, no copy left', async () => {
  const t = await setup();
  try {
    const sources = [...messages(40), messages(1)[0]]; // the last one twice: same id, two pins
    const puts = await t.blobs.putMany(sources);
    assert.deepEqual(t.calls, ['pinBlobs 41']);
    assert.equal(puts.length, sources.length);
    for (const [k, p] of puts.entries()) {
      assert.equal(p.id, createHash('sha256').update(sources[k]).digest('hex'));
      assert.equal(p.size, sources[k].length);
      assert.ok(readFileSync(t.blobs.pathOf(p.id)).equals(sources[k]), `file ${k} whole under its name`);
    }
    assert.equal(puts[40].id, puts[0].id);
    assert.equal(t.pinned(), 41, 'every put pinned');
    assert.deepEqual(t.tmpFiles(), []);
    await Promise.all(puts.map((p) => p.release()));
    assert.equal(t.pinned(), 0);
    // The same content put alone: the same id and file.
    const one = await t.blobs.put(sources[7]);
    assert.equal(one.id, puts[7].id);
    await one.release();
  } finally {
    await t.done();
  }
});

test('putMany with encryption at rest: sealed files, read back as sent', async () => {
  const t = await setup(KeyRing.generate(new Date('2026-12-07T00:00:00Z')));
  try {
    const sources = messages(12);
    const puts = await t.blobs.putMany(sources);
    for (const [k, p] of puts.entries()) {
      assert.ok(!readFileSync(t.blobs.pathOf(p.id)).includes(Buffer.from(`Corps ${k} `)), 'no plaintext on disk');
      assert.ok((await t.blobs.read(p.id)).equals(sources[k]));
      assert.equal(p.size, sources[k].length);
    }
    assert.equal((await t.blobs.putMany([sources[3]]))[0].id, puts[3].id, 'the same content, the same id');
  } finally {
    await t.done();
  }
});

test('putMany: an id whose removal is claimed waits for it, then is pinned and written again', async () => {
  const t = await setup();
  try {
    const [a, b] = messages(2);
    const old = await t.blobs.put(b);
    await old.release();
    // A removal claimed (by another process) and not finished: b's pin is refused until it ends.
    const since = Date.now();
    assert.equal(await t.store.claimBlobRemoval(old.id, since, 30_000), true);
    let settled = false;
    const batch = t.blobs.putMany([a, b]).finally(() => (settled = true));
    // The batch's pins refused for b, put()'s wait then asks again alone.
    await waitFor(async () => t.calls.includes('pinBlobs 2') && t.calls.includes('pinBlob'), 'the pins asked for');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(settled, false, 'waits while the removal is claimed');
    await t.store.forgetBlobGarbage(old.id, since);
    const puts = await batch;
    assert.ok(readFileSync(t.blobs.pathOf(puts[1].id)).equals(b));
    assert.equal(t.pinned(), 2);
  } finally {
    await t.done();
  }
});

test('putMany: a failure of the pins leaves no copy, no pin and no file', async () => {
  const t = await setup();
  try {
    const sources = messages(20);
    const failing = new BlobStore(t.blobs.dir, {
      pinBlob: () => Promise.reject(new Error('disk full')),
      pinBlobs: () => Promise.reject(new Error('disk full')),
      unpinBlobs: (l) => t.store.unpinBlobs(l),
      pruneBlobPins: (n) => t.store.pruneBlobPins(n),
      claimBlobRemoval: (...a) => t.store.claimBlobRemoval(...a),
      forgetBlobGarbage: (...a) => t.store.forgetBlobGarbage(...a),
    });
    await assert.rejects(failing.putMany(sources), /disk full/);
    assert.deepEqual(t.tmpFiles(), []);
    assert.equal(t.pinned(), 0);
    for (const s of sources) assert.ok(!existsSync(t.blobs.pathOf(createHash('sha256').update(s).digest('hex'))));
  } finally {
    await t.done();
  }
});

test('a shard directory created by put or putMany has its entry fsynced in the parent, once per process', async () => {
  // fs/promises.open spied (syncDir opens a directory read-only to fsync it); the ESM bindings
  // follow the patched object through syncBuiltinESMExports.
  const fsp = (await import('node:module')).createRequire(import.meta.url)('node:fs/promises');
  const { syncBuiltinESMExports } = await import('node:module');
  const realOpen = fsp.open;
  const opened: string[] = [];
  fsp.open = (p: string, flags?: string, ...rest: unknown[]) => (flags === 'r' && opened.push(path.resolve(p)), realOpen(p, flags, ...rest));
  syncBuiltinESMExports();
  const s = await setup();
  try {
    const root = path.resolve(s.blobs.dir);
    const shards = (ids: string[]) => new Set(ids.map((id) => id.slice(0, 2))).size;
    const batch = messages(20);
    const first = await s.blobs.putMany(batch);
    assert.equal(opened.filter((p) => p === root).length, shards(first.map((b) => b.id)), 'the blob directory fsynced once per shard directory created');
    opened.length = 0;
    const again = await s.blobs.putMany(messages(20).map((m) => Buffer.concat([m, Buffer.from('!')])).filter((m) => first.some((b) => b.id.slice(0, 2) === createHash('sha256').update(m).digest('hex').slice(0, 2))));
    const one = await s.blobs.put(Buffer.from('Subject: one\r\n\r\nx\r\n'));
    const newShards = first.some((b) => b.id.slice(0, 2) === one.id.slice(0, 2)) ? 0 : 1;
    assert.equal(opened.filter((p) => p === root).length, newShards, 'known shard directories are not synced in their parent again');
    for (const b of [...first, ...again, one]) await b.release();
  } finally {
    fsp.open = realOpen;
    syncBuiltinESMExports();
    await s.done();
  }
});

test('put of bytes in hand: prefix and size limit as for a stream; a shard directory removed by hand is made again', async () => {
  const t = await setup();
  try {
    const prefix = Buffer.from('Received: from a\r\n');
    const body = messages(3)[2];
    const whole = Buffer.concat([prefix, body]);
    const fromBytes = await t.blobs.put(body, { prefix, maxSize: whole.length });
    const { Readable } = await import('node:stream');
    const fromStream = await t.blobs.put(Readable.from([body]), { prefix, maxSize: whole.length });
    assert.equal(fromBytes.id, createHash('sha256').update(whole).digest('hex'));
    assert.equal(fromBytes.id, fromStream.id);
    assert.equal(fromBytes.size, whole.length);
    assert.ok(readFileSync(t.blobs.pathOf(fromBytes.id)).equals(whole));
    await assert.rejects(t.blobs.put(body, { prefix, maxSize: whole.length - 1 }), { name: 'BlobSizeExceededError' });
    assert.deepEqual(t.tmpFiles(), []);
    await Promise.all([fromBytes.release(), fromStream.release()]);
    // The shard directory goes (by hand: the store never removes one); the next put into it works.
    const { rmSync } = await import('node:fs');
    rmSync(path.dirname(t.blobs.pathOf(fromBytes.id)), { recursive: true });
    const again = await t.blobs.put(body, { prefix });
    assert.ok(readFileSync(t.blobs.pathOf(again.id)).equals(whole));
    await again.release();
  } finally {
    await t.done();
  }
});
