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
