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
