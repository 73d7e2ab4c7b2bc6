// The store contract (test/store/contract.ts) on the PostgreSQL engine: one throw-away database
// per run (test/support/postgres.ts), one fresh schema per test area (PgStore.open creates it and
// migrates it), the database dropped at the end. PostgreSQL unreachable: the contract skips off CI,
// fails on CI (pgTestDatabase throws).
import { after } from 'node:test';
import { PgStore } from '../../src/store/postgres/index.js';
import type { Store } from '../../src/store/types.js';
import { pgTestDatabase } from '../support/postgres.js';
import { storeContract } from './contract.js';

const db = await pgTestDatabase();
after(async () => {
  if (!('skip' in db)) await db.drop();
});
let n = 0;

storeContract('PostgreSQL', async () => {
  if ('skip' in db) return db;
  const store = await PgStore.open(db.url, { schema: `contract_${++n}`, poolSize: 8 });
  // PgStore implements Store once every part is composed (branches pg-core, pg-mail); until
  // then the contract reports the methods it lacks (its last test) and the tests calling them fail.
  return { store: store as unknown as Store, close: () => store.close() };
});
