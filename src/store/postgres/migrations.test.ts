// PostgreSQL migrations: idempotent, and safe when several nodes open one empty database at once.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { pgTestDatabase } from '../../../test/support/postgres.js';
import { assertRecomputed, messageWithOldIndexRow } from '../../../test/support/reindex-fixture.js';
import { PgStore } from './index.js';
import { PG_MIGRATIONS } from './migrations.js';

const db = await pgTestDatabase();
const skip = 'skip' in db ? db.skip : false;
const url = 'skip' in db ? '' : db.url;
after(async () => {
  if (!('skip' in db)) await db.drop();
});

const latest = Math.max(...PG_MIGRATIONS.map((m) => m.version));

async function tables(schema: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query("SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name", [schema])).rows.map((r) => r.table_name);
  } finally {
    await c.end();
  }
}

test('migrating twice applies each migration once', { skip }, async () => {
  const a = await PgStore.open(url, { schema: 'twice' });
  assert.equal(await a.schemaVersion(), latest);
  await a.close();
  const b = await PgStore.open(url, { schema: 'twice' });
  assert.equal(await b.schemaVersion(), latest);
  const [{ n }] = await b.connection.query('SELECT COUNT(*) n FROM schema_migrations');
  assert.equal(n, PG_MIGRATIONS.length);
  await b.close();
  const t = await tables('twice');
  for (const name of ['users', 'mailboxes', 'messages', 'outbound_queue', 'leases', 'auth_failures', 'search_headers', 'schema_migrations']) assert.ok(t.includes(name), `table ${name}`);
});

test('two stores opening one empty database at once both succeed, migrating once', { skip }, async () => {
  const [a, b] = await Promise.all([PgStore.open(url), PgStore.open(url)]);
  assert.equal(await a.schemaVersion(), latest);
  assert.equal(await b.schemaVersion(), latest);
  const [{ n }] = await a.connection.query('SELECT COUNT(*) n FROM schema_migrations');
  assert.equal(n, PG_MIGRATIONS.length);
  await Promise.all([a.close(), b.close()]);
});

test('the schema option keeps operators apart on one database', { skip }, async () => {
  const a = await PgStore.open(url, { schema: 'op_a' });
  const b = await PgStore.open(url, { schema: 'op_b' });
  await a.connection.query("INSERT INTO leases (name, owner, until) VALUES ('x', 'a', 1)");
  assert.equal((await b.connection.query('SELECT * FROM leases')).length, 0);
  assert.equal((await a.connection.query('SELECT * FROM leases')).length, 1);
  await Promise.all([a.close(), b.close()]);
  await assert.rejects(PgStore.open(url, { schema: 'Bad-Name' }), /not a plain identifier/);
});

test('a unique violation is a StoreConflictError; int8 are numbers', { skip }, async () => {
  const s = await PgStore.open(url, { schema: 'conflict' });
  const { StoreConflictError } = await import('../errors.js');
  await s.connection.query("INSERT INTO users (login, display_name, state, created_at) VALUES ('Dr.Martin', 'M', 'active', 'x')");
  await assert.rejects(s.connection.query("INSERT INTO users (login, display_name, state, created_at) VALUES ('dr.martin', 'M', 'active', 'x')"), StoreConflictError);
  await assert.rejects(s.connection.tx((c) => c.query("INSERT INTO users (login, display_name, state, created_at) VALUES ('DR.MARTIN', 'M', 'active', 'x')")), StoreConflictError);
  const [r] = await s.connection.query('SELECT COUNT(*) n, SUM(id) total, MAX(id) m FROM users');
  assert.deepEqual(r, { n: 1, total: r.m, m: r.m });
  assert.equal(typeof r.m, 'number');
  await s.close();
});

test('triggers write their own schema\'s tables whatever the session\'s search_path', { skip }, async () => {
  const s = await PgStore.open(url, { schema: 'pinned' });
  const mb = await s.createMailbox({ address: 'x@op.test', type: 'PER', displayName: 'X', ownerUserId: null, practitionerId: null, structureId: null, listeRouge: false });
  const box = (await s.getFolder(mb.id, 'INBOX'))!;
  await s.appendMessage(box.id, { blobId: 'b'.repeat(64), size: 1, flags: [], internalDate: new Date() });
  await s.close();
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    // An administrator's session: default search_path, tables named with their schema.
    await c.query('DELETE FROM pinned.messages');
    assert.deepEqual((await c.query('SELECT blob_id FROM pinned.blob_garbage')).rows, [{ blob_id: 'b'.repeat(64) }]);
  } finally {
    await c.end();
  }
});

test('an unreachable server: open names where it tried, never the password', async () => {
  await assert.rejects(PgStore.open('postgres://caducee:s3cret@127.0.0.1:1/db'), (e: Error) => /cannot connect to PostgreSQL at postgres:\/\/127\.0\.0\.1:1\/db: /.test(e.message) && !e.message.includes('s3cret'));
});

test('the PostgreSQL schema has every table and column of the SQLite schema (same names: one set of row mappers)', { skip }, async () => {
  const { SqliteStore } = await import('../sqlite/index.js');
  const lite = SqliteStore.open(':memory:');
  const liteTables = new Map<string, string[]>();
  for (const { name } of lite.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as { name: string }[])
    liteTables.set(name, (lite.db.prepare(`SELECT name FROM pragma_table_info(?)`).all(name) as { name: string }[]).map((c) => c.name).sort());
  await lite.close();
  const s = await PgStore.open(url, { schema: 'parity' });
  const rows = await s.connection.query("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'parity'");
  await s.close();
  const pgTables = new Map<string, string[]>();
  for (const r of rows) pgTables.set(r.table_name, [...(pgTables.get(r.table_name) ?? []), r.column_name]);
  for (const [table, columns] of liteTables) assert.deepEqual(pgTables.get(table)?.sort(), columns, `table ${table}`);
  // Tables only PostgreSQL has: message files kept in the database (PG migration 2, branch blobs).
  const pgOnly = [...pgTables.keys()].filter((t) => !liteTables.has(t));
  assert.deepEqual(pgOnly.filter((t) => !['blob_chunks', 'blob_files'].includes(t)), []);
});

test('migration 8 initialises the usage counters of a store that already holds messages (issue 15)', { skip }, async () => {
  // A store as it was before migration 8: messages in two folders, no counters, no triggers.
  const s = await PgStore.open(url, { schema: 'usage_init' });
  const mb = await s.createMailbox({ address: 'u@op.test', type: 'PER', displayName: 'U', ownerUserId: null, practitionerId: null, structureId: null, listeRouge: false });
  const box = (await s.getFolder(mb.id, 'INBOX'))!;
  const arch = await s.createFolder(mb.id, 'Archives');
  await s.appendMessages(box.id, [10, 20, 30].map((size, i) => ({ blobId: String(i).repeat(64), size, flags: [], internalDate: new Date() })));
  await s.appendMessage(arch.id, { blobId: 'a'.repeat(64), size: 5, flags: [], internalDate: new Date() });
  await s.connection.query(`DROP TRIGGER messages_usage_added ON messages; DROP TRIGGER messages_usage_removed ON messages; DROP TRIGGER messages_usage_moved ON messages;
    DROP FUNCTION messages_usage_added(); DROP FUNCTION messages_usage_removed(); DROP FUNCTION messages_usage_moved();
    ALTER TABLE folders DROP COLUMN usage_messages, DROP COLUMN usage_bytes; DELETE FROM schema_migrations WHERE version = 8`);
  await s.close();
  const t = await PgStore.open(url, { schema: 'usage_init' });
  assert.equal(await t.schemaVersion(), latest);
  const rows = await t.connection.query('SELECT id, usage_messages, usage_bytes FROM folders WHERE id IN ($1, $2) ORDER BY id', [box.id, arch.id]);
  assert.deepEqual(rows, [{ id: box.id, usage_messages: 3, usage_bytes: 60 }, { id: arch.id, usage_messages: 1, usage_bytes: 5 }]);
  assert.deepEqual(await t.mailboxUsage(mb.id), { bytes: 65, messages: 4 });
  await t.close();
});

test('migration 9 drops the header index rows: the messages are searched by reading until the backfill records them again (issue 15, mixed-charset fields)', { skip }, async () => {
  const s = await PgStore.open(url, { schema: 'reindex' });
  const folderId = await messageWithOldIndexRow(s);
  await s.connection.query('DELETE FROM schema_migrations WHERE version = 9');
  await s.close();
  const t = await PgStore.open(url, { schema: 'reindex' });
  assert.equal(await t.schemaVersion(), latest);
  assert.deepEqual(await t.connection.query('SELECT COUNT(*)::int AS n FROM search_headers'), [{ n: 0 }]);
  await assertRecomputed(t, folderId);
  await t.close();
});
