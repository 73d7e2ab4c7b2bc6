// The store contract (test/store/contract.ts) on the embedded SQLite engine: each test area gets
// a fresh database file in a temporary directory (WAL, as in production), removed at the end.
import { after } from 'node:test';
import path from 'node:path';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { tempDir } from '../helpers.js';
import { storeContract } from './contract.js';

const tmp = tempDir('caducee-store-contract-');
after(() => tmp.cleanup());
let n = 0;

storeContract('SQLite', async () => {
  const store = SqliteStore.open(path.join(tmp.dir, `store-${++n}`, 'caducee.db'));
  return { store, close: () => store.close() };
});
