// The PostgreSQL store of one test file (branch pg-mail's tests of folders, delivery and tracking):
// a throw-away database (test/support/postgres.ts) and, per test, a schema of its own (an operator:
// its queue and counters see no other test's rows) with PgStore "nodes" opened on it, and the rows
// those tests start from (a structure, mailboxes with their default folders, a user) written with
// plain SQL, so that they depend only on the parts under test.
import { after } from 'node:test';
import { DEFAULT_FOLDERS } from '../../src/model/index.js';
import { PgStore } from '../../src/store/postgres/index.js';
import { pgTestDatabase } from './postgres.js';

export interface PgOperator {
  /** The first node's store. */
  s: PgStore;
  /** Opens another store on the same schema (another node). */
  node(): Promise<PgStore>;
  /** A mailbox with its default folders (as MailboxStore.createMailbox makes them); its id. */
  mailbox(address: string): Promise<number>;
  /** A user; its id. */
  user(login: string): Promise<number>;
  /** The rows of a SQL query (assertions on columns no store method reads). */
  rows(sql: string, args?: unknown[]): Promise<any[]>;
  /** The first column of the first row of a SQL query. */
  scalar(sql: string, args?: unknown[]): Promise<any>;
}

export interface PgMailFixture {
  /** A new schema on the test database, migrated, with one structure. */
  operator(): Promise<PgOperator>;
  /** Closes every store and drops the database. */
  close(): Promise<void>;
}

export async function pgMailFixture(): Promise<PgMailFixture | { skip: string }> {
  const db = await pgTestDatabase();
  if ('skip' in db) return db;
  const stores: PgStore[] = [];
  let schemas = 0;
  return {
    async operator() {
      const schema = `op${++schemas}`;
      const node = async () => {
        const st = await PgStore.open(db.url, { schema, poolSize: 6 });
        stores.push(st);
        return st;
      };
      const s = await node();
      const rows = async (sql: string, args: unknown[] = []) => s.connection.query(sql, args);
      const one = async (sql: string, args: unknown[] = []) => (await rows(sql, args))[0];
      const t = new Date().toISOString();
      const uidValidity = Math.floor(Date.now() / 1000);
      const structureId = (await one("INSERT INTO structures (id_type, id_value, name, created_at) VALUES ('SIRET', '13000000000019', 'X', $1) RETURNING id", [t])).id as number;
      return {
        s,
        node,
        rows,
        async mailbox(address) {
          const id = (
            await one("INSERT INTO mailboxes (address, type, display_name, structure_id, created_at, updated_at, last_uid_validity) VALUES ($1, 'ORG', $1, $2, $3, $3, $4) RETURNING id", [address, structureId, t, uidValidity])
          ).id as number;
          for (const f of DEFAULT_FOLDERS) await one('INSERT INTO folders (mailbox_id, name, special_use, uid_validity) VALUES ($1, $2, $3, $4)', [id, f.name, f.specialUse, uidValidity]);
          return id;
        },
        async user(login) {
          return (await one('INSERT INTO users (login, display_name, created_at) VALUES ($1, $1, $2) RETURNING id', [login, t])).id as number;
        },
        async scalar(sql, args = []) {
          const r = await one(sql, args);
          return r ? Object.values(r)[0] : undefined;
        },
      };
    },
    async close() {
      for (const st of stores) await st.close();
      await db.drop();
    },
  };
}

export interface PgMailTestFile {
  /** Why the file's tests skip (PostgreSQL unreachable off CI), or false. */
  skip: string | false;
  /** The file's shared operator, made on first use (each test then makes mailboxes of its own). */
  shared(): Promise<PgOperator>;
  /** An operator of its own (a queue and counters no other test fills). */
  own(): Promise<PgOperator>;
}

/** The fixture of one test file, closed (stores closed, database dropped) after its tests by an after() hook registered here. */
export async function pgMailTestFile(): Promise<PgMailTestFile> {
  const fx = await pgMailFixture();
  if ('skip' in fx) {
    const skipped = async (): Promise<PgOperator> => {
      throw new Error(fx.skip);
    };
    return { skip: fx.skip, shared: skipped, own: skipped };
  }
  after(() => fx.close());
  let shared: Promise<PgOperator> | undefined;
  return { skip: false, shared: () => (shared ??= fx.operator()), own: () => fx.operator() };
}

/** A blob id (64 hex digits, as BlobStore names files) made of `n`: tests that store no real file. */
export const testBlobId = (n: number) => n.toString(16).padStart(64, '0');
