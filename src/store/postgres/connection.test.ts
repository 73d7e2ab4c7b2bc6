// PgConnection: transactions roll back on a throw, are retried whole on a serialization failure,
// statements time out when asked; pgTestDatabase skips off CI and fails on CI when PostgreSQL is
// unreachable.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pgTestDatabase } from '../../../test/support/postgres.js';
import { PgConnection } from './connection.js';

const db = await pgTestDatabase();
const skip = 'skip' in db ? db.skip : false;
let c: PgConnection;
before(async () => {
  if ('skip' in db) return;
  c = new PgConnection(db.url, { poolSize: 4 });
  await c.query('CREATE TABLE counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)');
  await c.query('INSERT INTO counter VALUES (1, 0)');
});
after(async () => {
  if ('skip' in db) return;
  await c?.end();
  await db.drop();
});

test('tx: committed when fn resolves, rolled back when it throws', { skip }, async () => {
  await c.tx((x) => x.query('UPDATE counter SET n = n + 1 WHERE id = 1'));
  await assert.rejects(
    c.tx(async (x) => {
      await x.query('UPDATE counter SET n = n + 100 WHERE id = 1');
      throw new Error('refused');
    }),
    /refused/,
  );
  assert.equal((await c.query('SELECT n FROM counter'))[0].n, 1);
});

test('tx: a serialization failure runs the whole function again (read-then-write at SERIALIZABLE keeps both increments)', { skip }, async () => {
  const [{ n: start }] = await c.query('SELECT n FROM counter');
  let runs = 0;
  let arrived = 0;
  let release!: () => void;
  const bothRead = new Promise<void>((r) => (release = r));
  const increment = () =>
    c.tx(async (x) => {
      runs++;
      const [{ n }] = (await x.query('SELECT n FROM counter WHERE id = 1')).rows;
      // The first attempts of both read before either writes: one of them must fail to commit.
      if (++arrived === 2) release();
      if (arrived <= 2) await bothRead;
      await x.query('UPDATE counter SET n = $1 WHERE id = 1', [n + 1]);
    }, 'serializable');
  await Promise.all([increment(), increment()]);
  assert.equal((await c.query('SELECT n FROM counter'))[0].n, start + 2, 'no lost update');
  assert.ok(runs >= 3, `retried (${runs} runs)`);
});

test('statementTimeoutMs cancels a statement running longer', { skip }, async () => {
  const slow = new PgConnection((db as { url: string }).url, { poolSize: 1, statementTimeoutMs: 50 });
  try {
    await assert.rejects(slow.query('SELECT pg_sleep(2)'), /statement timeout/);
    assert.equal((await slow.query('SELECT 1 AS one'))[0].one, 1, 'the pool goes on');
  } finally {
    await slow.end();
  }
});

test('pgTestDatabase: an unreachable server is a skip off CI, an error on CI', async () => {
  const saved = { url: process.env.CADUCEE_TEST_PG_URL, ci: process.env.CI };
  process.env.CADUCEE_TEST_PG_URL = 'postgres://postgres@127.0.0.1:1/test';
  try {
    delete process.env.CI;
    const r = await pgTestDatabase();
    assert.ok('skip' in r && /PostgreSQL unreachable at postgres:\/\/127\.0\.0\.1:1\/test/.test(r.skip), JSON.stringify(r));
    process.env.CI = 'true';
    await assert.rejects(pgTestDatabase(), /PostgreSQL unreachable/);
  } finally {
    if (saved.url === undefined) delete process.env.CADUCEE_TEST_PG_URL;
    else process.env.CADUCEE_TEST_PG_URL = saved.url;
    if (saved.ci === undefined) delete process.env.CI;
    else process.env.CI = saved.ci;
  }
});
