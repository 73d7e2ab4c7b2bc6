// MessageIndex and the analysis layout version (blob_meta.info): a row recorded at an older
// MESSAGE_INFO_VERSION is analysed again when read, so that IMAP gets the fields the current
// version has (issue 15: the header bytes of 8-bit fields that are not UTF-8).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { analyzeMessage, MESSAGE_INFO_VERSION } from '../mime/index.js';
import { BlobStore } from '../store/blobs.js';
import { SqliteStore } from '../store/sqlite/index.js';
import { KeyRing } from '../store/keyring.js';
import { SealedValueError, ValueSealer } from '../store/value-seal.js';
import { MessageIndex } from './message-index.js';

test('an analysis recorded at an older version is computed again, then recorded at the current one', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'caducee-message-index-'));
  const store = SqliteStore.open(':memory:');
  try {
    const blobs = new BlobStore(path.join(dir, 'blobs'), store, { pinMs: 0 });
    const raw = Buffer.from('Subject: r\xe9sum\xe9\r\nFrom: \xc9mile <e@x.example>\r\n\r\nx\r\n', 'latin1');
    const b = await blobs.put(raw);
    // as version 1 recorded it: the latin1 reading only, no wire bytes
    const { envelopeWire: _w, ...v1 } = { ...analyzeMessage(raw), version: 1 };
    await store.setBlobMeta(b.id, JSON.stringify(v1));

    const info = await new MessageIndex(store, blobs).ensure(b.id);
    assert.equal(info.version, MESSAGE_INFO_VERSION);
    assert.equal(info.envelopeWire?.subject, 'r\xe9sum\xe9');
    const stored = JSON.parse((await store.getBlobMeta(b.id))!);
    assert.equal(stored.version, MESSAGE_INFO_VERSION);
    assert.equal(stored.envelopeWire.from[0].name, '\xc9mile');

    // ensureAllFrom (APPEND) also records the current version over an old row
    const raw2 = Buffer.from('Subject: \xe9t\xe9\r\n\r\ny\r\n', 'latin1');
    const b2 = await blobs.put(raw2);
    await store.setBlobMeta(b2.id, JSON.stringify({ ...analyzeMessage(raw2), version: 1, envelopeWire: undefined }));
    await new MessageIndex(store, blobs).ensureAllFrom([{ blobId: b2.id, raw: raw2 }]);
    assert.equal(JSON.parse((await store.getBlobMeta(b2.id))!).envelopeWire.subject, '\xe9t\xe9');
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a sealed analysis that does not open (moved from another row) is computed again from the file, not an error', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'caducee-message-index-'));
  const keys = KeyRing.generate();
  const store = SqliteStore.open(':memory:', { sealer: new ValueSealer(keys) });
  try {
    const blobs = new BlobStore(path.join(dir, 'blobs'), store, { pinMs: 0, keys });
    const a = await blobs.put(Buffer.from('Subject: premier\r\n\r\na\r\n'));
    const b = await blobs.put(Buffer.from('Subject: second\r\n\r\nb\r\n'));
    const index = new MessageIndex(store, blobs);
    await index.ensure(a.id);
    await index.ensure(b.id);
    // b's row now holds a's sealed value: its context (blob id) no longer matches.
    store.db.prepare('UPDATE blob_meta SET info = (SELECT info FROM blob_meta WHERE blob_id = ?) WHERE blob_id = ?').run(a.id, b.id);
    await assert.rejects(store.getBlobMeta(b.id), SealedValueError);
    const fresh = new MessageIndex(store, blobs);
    assert.equal((await fresh.ensure(b.id)).subject, 'second');
    assert.equal(JSON.parse((await store.getBlobMeta(b.id))!).subject, 'second', 'the row is recorded anew');
    // the batch path (APPEND) too
    store.db.prepare('UPDATE blob_meta SET info = (SELECT info FROM blob_meta WHERE blob_id = ?) WHERE blob_id = ?').run(b.id, a.id);
    await new MessageIndex(store, blobs).ensureAllFrom([{ blobId: a.id, raw: Buffer.from('Subject: premier\r\n\r\na\r\n') }]);
    assert.equal(JSON.parse((await store.getBlobMeta(a.id))!).subject, 'premier');
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
