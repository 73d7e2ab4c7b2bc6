// A MULTIAPPEND's store writes while another process holds SQLite's write lock (`caducee start
// --workers N`, issue 15): the waiting connection keeps its event loop free (writeWhenFree) and
// commits once the lock is released, with the UIDs after the other's.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { SqliteStore } from './index.js';

const blob = (n: number) => n.toString(16).padStart(64, '0');
const message = (n: number) => ({ blobId: blob(n), size: 100 + n, flags: ['\\Seen'], internalDate: new Date() });

test('appendMessages and pinBlobs wait for another connection\'s write lock without blocking the event loop', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'caducee-write-lock-'));
  const file = path.join(dir, 'store.db');
  const a = SqliteStore.open(file);
  const b = SqliteStore.open(file);
  try {
    const mailbox = await a.createMailbox({ address: 'x@op.test', type: 'PER', displayName: 'X', ownerUserId: null, practitionerId: null, structureId: null, listeRouge: false });
    const folder = await a.createFolder(mailbox.id, 'Lots');
    // The other process's transaction: it holds the write lock until COMMIT.
    a.db.exec('BEGIN IMMEDIATE');
    const first = await a.appendMessages(folder.id, [message(1), message(2)]);
    let appended: { uids: number[] } | undefined;
    let pinned: boolean[] | undefined;
    const append = b.appendMessages(folder.id, [message(3), message(4)]).then((r) => (appended = r));
    const pin = b.pinBlobs([{ blobId: blob(9), token: 't' }], Date.now(), 60_000, 60_000).then((r) => (pinned = r));
    // Timers run meanwhile: the event loop is free (SQLite's busy handler would sleep in the call).
    let ticks = 0;
    const start = Date.now();
    while (Date.now() - start < 100) {
      await new Promise((r) => setTimeout(r, 5));
      ticks++;
    }
    assert.ok(ticks >= 5, `timers ran while waiting (${ticks})`);
    assert.equal(appended, undefined, 'not committed while the other holds the lock');
    assert.equal(pinned, undefined);
    a.db.exec('COMMIT');
    await Promise.all([append, pin]);
    assert.deepEqual(first.uids, [1, 2]);
    assert.deepEqual(appended!.uids, [3, 4], "after the other's UIDs");
    assert.deepEqual(pinned, [true]);
    const usage = a.db.prepare('SELECT usage_messages n, usage_bytes b, uid_next u FROM folders WHERE id = ?').get(folder.id) as { n: number; b: number; u: number };
    assert.deepEqual(usage, { n: 4, b: 101 + 102 + 103 + 104, u: 5 });
    // The connection's settings are back: FULL commits, the usual busy timeout.
    assert.equal(b.db.pragma('synchronous', { simple: true }), 2);
    assert.equal(b.db.pragma('busy_timeout', { simple: true }), 5000);
  } finally {
    if (a.db.inTransaction) a.db.exec('ROLLBACK');
    await a.close();
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
