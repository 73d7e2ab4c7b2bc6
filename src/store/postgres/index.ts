// PostgreSQL store (issue 12): several stateless nodes over one database. The only place, with
// the other store implementations, that knows table names.
//
// PgStore is composed of parts over one pool (connection.ts), one part per focused interface of
// store/types.ts, as SqliteStore is. This file opens and migrates the database and exposes every
// part's methods on the one store object.
import pg from 'pg';
import { now, PgConnection, type PgConnectionOptions, type PgPart } from './connection.js';
import { PG_MIGRATIONS } from './migrations.js';
import type { DeliveryStore, FolderStore, TrackingStore } from '../types.js';
import { PgDelivery } from './delivery.js';
import { PgFolders } from './folders.js';
import { PgTracking } from './tracking.js';

export { StoreConflictError } from '../errors.js';

export type PgStoreOptions = PgConnectionOptions;

/** The methods PgStore takes from its parts (assigned in the constructor). */
export interface PgStore extends FolderStore, DeliveryStore, TrackingStore {}

export class PgStore {
  readonly connection: PgConnection;

  private constructor(connection: PgConnection) {
    this.connection = connection;
    const c = connection;
    // One part per focused interface: the tuple's type checks that every one is implemented.
    const parts: [FolderStore, DeliveryStore, TrackingStore] & PgPart[] = [new PgFolders(c), new PgDelivery(c), new PgTracking(c)];
    const self = this as unknown as Record<string, unknown>;
    for (const part of parts) {
      const proto = Object.getPrototypeOf(part);
      for (const name of Object.getOwnPropertyNames(proto)) {
        if (name === 'constructor') continue;
        if (name in self) throw new Error(`PgStore: two parts define ${name}`);
        self[name] = proto[name].bind(part);
      }
    }
  }

  /**
   * Connects to `url` (postgres://…), creates the schema when missing and applies pending
   * migrations under an advisory lock (several nodes starting at once migrate once).
   */
  static async open(url: string, opts: PgStoreOptions = {}): Promise<PgStore> {
    const connection = new PgConnection(url, opts);
    try {
      await migrate(url, connection.schema);
    } catch (e) {
      await connection.end();
      throw e;
    }
    return new PgStore(connection);
  }

  async schemaVersion(): Promise<number> {
    const [r] = await this.connection.query<{ v: number | null }>('SELECT MAX(version) v FROM schema_migrations');
    return r?.v ?? 0;
  }

  /** Ends the pool (waits for the queries running). */
  async close(): Promise<void> {
    await this.connection.end();
  }
}

/** The advisory lock key of a schema's migrations (one per schema: operators sharing a server do not wait for each other). */
const MIGRATION_LOCK = 'SELECT pg_advisory_lock(hashtext($1))';
const MIGRATION_UNLOCK = 'SELECT pg_advisory_unlock(hashtext($1))';

/**
 * Applies PG_MIGRATIONS missing from `schema`, each in its own transaction, on one dedicated
 * connection holding the schema's advisory lock (a session lock: released by unlock or when the
 * connection ends, even on a crash).
 */
async function migrate(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const key = `caducee-migrations:${schema}`;
  try {
    await client.query(MIGRATION_LOCK, [key]);
    try {
      // Checked first: CREATE SCHEMA needs the CREATE privilege on the database even when the schema exists.
      const exists = (await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rowCount;
      if (!exists) await client.query(`CREATE SCHEMA ${schema}`);
      await client.query(`SET search_path = ${schema}`);
      await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
      const applied = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
      for (const m of PG_MIGRATIONS) {
        if (applied.has(m.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(m.sql);
          await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, now()]);
          await client.query('COMMIT');
        } catch (e) {
          await client.query('ROLLBACK');
          throw new Error(`PostgreSQL migration ${m.version} (${m.name}) failed in schema ${schema}: ${(e as Error).message}`, { cause: e });
        }
      }
    } finally {
      await client.query(MIGRATION_UNLOCK, [key]);
    }
  } finally {
    await client.end();
  }
}
