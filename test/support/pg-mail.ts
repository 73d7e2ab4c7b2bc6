// The PostgreSQL store of one test file (branch pg-mail's tests of folders, delivery and tracking):
// a throw-away database (test/support/postgres.ts), PgStore "nodes" opened on it, and the rows
// those tests start from (a structure, mailboxes with their default folders, a user) written with
// plain SQL, so that they depend only on the parts under test.
import { DEFAULT_FOLDERS } from '../../src/model/index.js';
import { PgStore } from '../../src/store/postgres/index.js';
import { pgTestDatabase } from './postgres.js';

export interface PgMailFixture {
  /** The first node's store. */
  s: PgStore;
  /** Opens another store on the same database (another node). */
  node(): Promise<PgStore>;
  /** A mailbox with its default folders (as MailboxStore.createMailbox makes them); its id. */
  mailbox(address: string): Promise<number>;
  /** A user; its id. */
  user(login: string): Promise<number>;
  /** One value of a SQL query (for assertions on rows no store method reads). */
  scalar(sql: string, args?: unknown[]): Promise<any>;
  /** Closes every store and drops the database. */
  close(): Promise<void>;
}

export async function pgMailFixture(): Promise<PgMailFixture | { skip: string }> {
  const db = await pgTestDatabase();
  if ('skip' in db) return db;
  const stores: PgStore[] = [];
  const node = async () => {
    const st = await PgStore.open(db.url, { poolSize: 8 });
    stores.push(st);
    return st;
  };
  const s = await node();
  const q = async (sql: string, args: unknown[] = []) => (await s.connection.query(sql, args))[0];
  const t = new Date().toISOString();
  const structureId = (await q("INSERT INTO structures (id_type, id_value, name, created_at) VALUES ('SIRET', '13000000000019', 'X', $1) RETURNING id", [t])).id as number;
  return {
    s,
    node,
    async mailbox(address) {
      const id = (
        await q("INSERT INTO mailboxes (address, type, display_name, structure_id, created_at, updated_at, last_uid_validity) VALUES ($1, 'ORG', $1, $2, $3, $3, $4) RETURNING id", [
          address,
          structureId,
          t,
          Math.floor(Date.now() / 1000),
        ])
      ).id as number;
      for (const f of DEFAULT_FOLDERS) await q('INSERT INTO folders (mailbox_id, name, special_use, uid_validity) VALUES ($1, $2, $3, $4)', [id, f.name, f.specialUse, Math.floor(Date.now() / 1000)]);
      return id;
    },
    async user(login) {
      return (await q('INSERT INTO users (login, display_name, created_at) VALUES ($1, $1, $2) RETURNING id', [login, t])).id as number;
    },
    async scalar(sql, args = []) {
      const r = await q(sql, args);
      return r ? Object.values(r)[0] : undefined;
    },
    async close() {
      for (const st of stores) await st.close();
      await db.drop();
    },
  };
}
