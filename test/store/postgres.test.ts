// The store contract (test/store/contract.ts) on the PostgreSQL engine: one throw-away database
// per run (test/support/postgres.ts), dropped at the end. Each test area opens its own PgStore on
// it (its own pool: another node of the same database; the first one migrates). PostgreSQL
// unreachable: the contract skips off CI and fails on CI (pgTestDatabase throws).
import { after } from 'node:test';
import { PgStore } from '../../src/store/postgres/index.js';
import { pgTestDatabase } from '../support/postgres.js';
import { storeContract } from './contract.js';

const db = await pgTestDatabase();
after(async () => {
  if (!('skip' in db)) await db.drop();
});

storeContract('PostgreSQL', async () => {
  if ('skip' in db) return db;
  const store = await PgStore.open(db.url, { poolSize: 8 });
  return { store, close: () => store.close() };
});
