// The store chosen by configuration (issue 12): `store: { kind: postgres, url, schema, poolSize,
// statementTimeoutMs, connectTimeoutMs }` opens the PostgreSQL store, a server that cannot be
// reached stops the start naming it (password hidden) and what to check; `caducee demo --nodes`
// without `--postgres` is refused.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { ConfigError, loadConfig, parseConfig } from '../src/config/index.js';
import { openStore, StartupError } from '../src/main.js';
import { PgStore } from '../src/store/postgres/index.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { tempDir } from './helpers.js';
import { pgTestDatabase } from './support/postgres.js';

test('store: SQLite by default; postgres needs a url; CADUCEE_POSTGRES_URL selects it; a schema must be a plain identifier', () => {
  const d = parseConfig({}).store;
  assert.equal(d.kind, 'sqlite');
  assert.deepEqual({ ...d, blobs: undefined }, { kind: 'sqlite', schema: 'public', poolSize: 10, statementTimeoutMs: 30_000, connectTimeoutMs: 10_000, blobs: undefined, encryption: {} });
  const pgc = parseConfig({ store: { kind: 'postgres', url: 'postgres://caducee@db:5432/caducee', schema: 'op_b', poolSize: 4 } }).store;
  assert.deepEqual([pgc.kind, pgc.url, pgc.schema, pgc.poolSize], ['postgres', 'postgres://caducee@db:5432/caducee', 'op_b', 4]);
  assert.throws(() => parseConfig({ store: { kind: 'postgres' } }), (e: Error) => e instanceof ConfigError && /store\.url: store\.kind postgres needs store\.url/.test(e.message));
  assert.throws(() => parseConfig({ store: { url: 'postgres://db/x' } }), (e: Error) => e instanceof ConfigError && /store\.url is only read with store\.kind postgres/.test(e.message));
  assert.throws(() => parseConfig({ store: { kind: 'postgres', url: 'postgres://db/x', schema: 'Op-B' } }), (e: Error) => e instanceof ConfigError && /store\.schema/.test(e.message));
  assert.throws(() => parseConfig({ store: { kind: 'postgres', url: 'postgres://db/x', poolsize: 3 } }), ConfigError, 'unknown keys are refused');
  const env = loadConfig(undefined, { CADUCEE_POSTGRES_URL: 'postgres://caducee@db/caducee' }).store;
  assert.deepEqual([env.kind, env.url, env.schema], ['postgres', 'postgres://caducee@db/caducee', 'public']);
});

test('openStore: an unreachable PostgreSQL server is a StartupError naming it (no password) and what to check', async () => {
  // A port nobody listens on: taken, then freed.
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const { dir, cleanup } = tempDir('caducee-store-config-');
  try {
    const config = parseConfig({ dataDir: dir, store: { kind: 'postgres', url: `postgres://caducee:s3cret-pw@127.0.0.1:${port}/caducee`, connectTimeoutMs: 2000 } });
    await assert.rejects(openStore(config), (e: Error) => {
      assert.ok(e instanceof StartupError, String(e));
      assert.match(e.message, new RegExp(`^cannot open the PostgreSQL store at postgres://127\\.0\\.0\\.1:${port}/caducee \\(schema public\\): `));
      assert.match(e.message, /ECONNREFUSED/);
      assert.match(e.message, /Check store\.url .*\(pg_hba\.conf\)/);
      assert.doesNotMatch(e.message, /s3cret-pw/);
      return true;
    });
    // SQLite: the file in dataDir.
    const sqlite = await openStore(parseConfig({ dataDir: dir }));
    assert.ok(sqlite instanceof SqliteStore);
    await sqlite.close();
  } finally {
    cleanup();
  }
});

test('openStore: kind postgres opens the PostgreSQL store in its schema (created, migrated), with the pool settings', async (t) => {
  const db = await pgTestDatabase();
  if ('skip' in db) return t.skip(db.skip);
  const { dir, cleanup } = tempDir('caducee-store-config-');
  try {
    const config = parseConfig({ dataDir: dir, store: { kind: 'postgres', url: db.url, schema: 'op_b', poolSize: 3, statementTimeoutMs: 5000 } });
    const store = await openStore(config);
    try {
      assert.ok(store instanceof PgStore);
      assert.equal(store.connection.schema, 'op_b');
      assert.equal(store.connection.pool.options.max, 3);
      await store.createUser({ login: 'config.user', displayName: 'Config', practitionerId: null, passwordHash: null });
      assert.equal((await store.findUserByLogin('config.user'))?.login, 'config.user');
    } finally {
      await store.close();
    }
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const r = await c.query("SELECT COUNT(*)::int n FROM information_schema.tables WHERE table_schema = 'op_b' AND table_name IN ('users', 'outbound_queue', 'leases')");
      assert.equal(r.rows[0].n, 3, 'the tables are in the configured schema');
      assert.equal((await c.query("SELECT COUNT(*)::int n FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'users'")).rows[0].n, 0);
    } finally {
      await c.end();
    }
  } finally {
    cleanup();
    await db.drop();
  }
});

test('caducee demo --nodes without --postgres is refused, saying why', () => {
  const { dir, cleanup } = tempDir('caducee-store-config-');
  try {
    const r = spawnSync(process.execPath, [path.resolve('bin/caducee.js'), 'demo', '--dir', dir, '--json', '--nodes', '2'], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--nodes needs --postgres/);
  } finally {
    cleanup();
  }
});
