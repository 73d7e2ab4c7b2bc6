// The store contract (test/store/contract.ts) on the PostgreSQL engine: one throw-away database
// per run (test/support/postgres.ts), dropped at the end. Each test area opens its own PgStore on
// it (its own pool: another node of the same database; the first one migrates); an area asking to
// be isolated gets a schema of its own. PostgreSQL unreachable: the contract skips off CI and fails
// on CI (pgTestDatabase throws).
import { after } from 'node:test';
import { PgStore } from '../../src/store/postgres/index.js';
import { pgTestDatabase } from '../support/postgres.js';
import { storeContract } from './contract.js';

const db = await pgTestDatabase();
after(async () => {
  if (!('skip' in db)) await db.drop();
});
let schemas = 0;

storeContract('PostgreSQL', async (opts = {}) => {
  if ('skip' in db) return db;
  const schema = opts.isolated ? `area${++schemas}` : undefined;
  const store = await PgStore.open(db.url, { poolSize: 8, schema, sealer: opts.sealer });
  const others: PgStore[] = [];
  return {
    store,
    async close() {
      for (const o of others) await o.close();
      await store.close();
    },
    async reopen(o) {
      const s = await PgStore.open(db.url, { poolSize: 4, schema, sealer: o.sealer });
      others.push(s);
      return s;
    },
    // Names come from the contract's own list (store/sealed-rows.ts), never from input.
    raw: {
      read: async (table, column, key, row) => ((await store.connection.query(`SELECT ${column} AS v FROM ${table} WHERE ${key} = $1`, [row]))[0]?.v as Buffer | null | undefined) ?? null,
      write: async (table, column, key, row, v) => void (await store.connection.query(`UPDATE ${table} SET ${column} = $1 WHERE ${key} = $2`, [v, row])),
    },
  };
});
