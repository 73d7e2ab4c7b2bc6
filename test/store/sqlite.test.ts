// The store contract (test/store/contract.ts) on the embedded SQLite engine: each test area gets
// a fresh database file in a temporary directory (WAL, as in production), removed at the end.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import path from 'node:path';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { tempDir } from '../helpers.js';
import { assertRecomputed, messageWithOldIndexRow } from '../support/reindex-fixture.js';
import { storeContract } from './contract.js';

const tmp = tempDir('caducee-store-contract-');
after(() => tmp.cleanup());
let n = 0;
const SQLITE_LATEST = Math.max(...MIGRATIONS.map((m) => m.version));

storeContract('SQLite', async (opts = {}) => {
  const file = path.join(tmp.dir, `store-${++n}`, 'caducee.db');
  const store = SqliteStore.open(file, { sealer: opts.sealer });
  const others: SqliteStore[] = [];
  return {
    store,
    async close() {
      for (const o of others) await o.close();
      await store.close();
    },
    async reopen(o) {
      const s = SqliteStore.open(file, { sealer: o.sealer });
      others.push(s);
      return s;
    },
    // Names come from the contract's own list (store/sealed-rows.ts), never from input.
    raw: {
      read: async (table, column, key, row) => (store.db.prepare(`SELECT ${column} AS v FROM ${table} WHERE ${key} = ?`).get(row) as { v: Buffer | string | null } | undefined)?.v ?? null,
      write: async (table, column, key, row, v) => void store.db.prepare(`UPDATE ${table} SET ${column} = ? WHERE ${key} = ?`).run(v, row),
    },
  };
});

test('migration 25 initialises the usage counters of a store that already holds messages (issue 15)', async () => {
  // A store as it was before migration 25: messages in two folders, no counters, no triggers.
  const file = path.join(tmp.dir, 'usage-init', 'caducee.db');
  const s = SqliteStore.open(file);
  const mb = await s.createMailbox({ address: 'u@op.test', type: 'PER', displayName: 'U', ownerUserId: null, practitionerId: null, structureId: null, listeRouge: false });
  const box = (await s.getFolder(mb.id, 'INBOX'))!;
  const arch = await s.createFolder(mb.id, 'Archives');
  await s.appendMessages(box.id, [10, 20, 30].map((size, i) => ({ blobId: String(i).repeat(64), size, flags: [], internalDate: new Date() })));
  await s.appendMessage(arch.id, { blobId: 'a'.repeat(64), size: 5, flags: [], internalDate: new Date() });
  s.db.exec(`DROP TRIGGER messages_usage_added; DROP TRIGGER messages_usage_removed; DROP TRIGGER messages_usage_moved;
    ALTER TABLE folders DROP COLUMN usage_messages; ALTER TABLE folders DROP COLUMN usage_bytes; DELETE FROM schema_migrations WHERE version = 25`);
  await s.close();
  const t = SqliteStore.open(file);
  assert.equal(t.schemaVersion(), SQLITE_LATEST);
  assert.deepEqual(t.db.prepare('SELECT id, usage_messages, usage_bytes FROM folders WHERE id IN (?, ?) ORDER BY id').all(box.id, arch.id), [
    { id: box.id, usage_messages: 3, usage_bytes: 60 },
    { id: arch.id, usage_messages: 1, usage_bytes: 5 },
  ]);
  assert.deepEqual(await t.mailboxUsage(mb.id), { bytes: 65, messages: 4 });
  await t.close();
});

test('migration 26 drops the header index rows: the messages are searched by reading until the backfill records them again (issue 15, mixed-charset fields)', async () => {
  // A store as it was before migration 26: a message whose file has its row (values computed by
  // the old decoding), flagged indexed.
  const file = path.join(tmp.dir, 'reindex', 'caducee.db');
  const s = SqliteStore.open(file);
  const folderId = await messageWithOldIndexRow(s);
  s.db.exec('DELETE FROM schema_migrations WHERE version = 26');
  await s.close();
  const t = SqliteStore.open(file);
  assert.equal(t.schemaVersion(), SQLITE_LATEST);
  assert.equal((t.db.prepare('SELECT COUNT(*) n FROM search_headers').get() as { n: number }).n, 0);
  await assertRecomputed(t, folderId);
  await t.close();
});
