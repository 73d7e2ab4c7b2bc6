// PostgreSQL store (issue 12): several stateless nodes over one database. The only place, with
// the other store implementations, that knows table names.
//
// PgStore is composed of parts over one pool (connection.ts), one part per focused interface of
// store/types.ts, as SqliteStore is. This file opens and migrates the database and exposes every
// part's methods on the one store object.
import pg from 'pg';
import { SEARCH_COLUMNS, storedInfo, UPSERT_BLOB_META, upsertSearchHeaders, writeAnalyses } from './blob-meta.js';
import { openValue } from '../sealed-rows.js';
import { PgSealedValues } from './sealed-values.js';
import type { AbsenceStore, AccountStore, CredentialStore, DeliveryStore, FolderStore, HttpSessionStore, IntegrationStore, LeaseStore, LockoutStore, MailboxStore, NotificationChannelOptions, PatientStore, RulesStore, SealedValueStore, Store, TraceStore, TrackingStore, UrlAuthKeyStore, UsageStore, MetadataStore } from '../types.js';
import { PgAbsences } from './absences.js';
import * as pins from './blob-pins.js';
import { PgAccounts } from './accounts.js';
import { checkSchemaName, now, PgConnection, type PgConnectionOptions, type PgPart } from './connection.js';
import { PgCredentials } from './credentials.js';
import { PgDelivery } from './delivery.js';
import { PgFolders } from './folders.js';
import { PgIntegrations } from './integrations.js';
import { PgLeases, PgLockout } from './leases.js';
import { PgUrlAuthKeys } from './urlauth-keys.js';
import { PgMetadata } from './metadata.js';
import { PgMailboxes } from './mailboxes.js';
import { PgNotificationChannel } from './notifications.js';
import { PG_MIGRATIONS } from './migrations.js';
import { PgPatients } from './patients.js';
import { PgRules } from './rules.js';
import { PgHttpSessions } from './sessions.js';
import { PgTracking } from './tracking.js';
import { PgTraces } from './traces.js';
import { PgUsage } from './usage.js';
import type { ValueSealer } from '../value-seal.js';
import { headerAnswer, headerQueryPlan, type HeaderCandidate } from '../search-seal.js';

export { StoreConflictError } from '../errors.js';

export type PgStoreOptions = PgConnectionOptions;

/** The methods PgStore takes from its parts (assigned in the constructor). */
export interface PgStore extends AccountStore, CredentialStore, HttpSessionStore, MailboxStore, FolderStore, DeliveryStore, AbsenceStore, RulesStore, UsageStore, TraceStore, TrackingStore, IntegrationStore, PatientStore, LeaseStore, LockoutStore, SealedValueStore, UrlAuthKeyStore, MetadataStore {}

export class PgStore implements Store {
  readonly connection: PgConnection;
  readonly #url: string;

  private constructor(url: string, connection: PgConnection) {
    this.#url = url;
    this.connection = connection;
    const c = connection;
    // One part per focused interface: the tuple's type checks that every one is implemented.
    const parts: [AccountStore, CredentialStore, HttpSessionStore, MailboxStore, FolderStore, DeliveryStore, AbsenceStore, RulesStore, UsageStore, TraceStore, TrackingStore, IntegrationStore, PatientStore, LeaseStore, LockoutStore, SealedValueStore, UrlAuthKeyStore, MetadataStore] & PgPart[] = [
      new PgAccounts(c),
      new PgCredentials(c),
      new PgHttpSessions(c),
      new PgMailboxes(c),
      new PgFolders(c),
      new PgDelivery(c),
      new PgAbsences(c),
      new PgRules(c),
      new PgUsage(c),
      new PgTraces(c),
      new PgTracking(c),
      new PgIntegrations(c),
      new PgPatients(c),
      new PgLeases(c),
      new PgLockout(c),
      new PgSealedValues(c),
      new PgUrlAuthKeys(c),
      new PgMetadata(c),
    ];
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
      await migrate(url, connection.schema, opts.connectTimeoutMs);
    } catch (e) {
      await connection.end();
      throw e;
    }
    return new PgStore(url, connection);
  }

  /** The sealer of values kept in rows (docs/encryption.md), or undefined when encryption at rest is off. */
  get sealer(): ValueSealer | undefined {
    return this.connection.sealer;
  }

  /** NotificationStore: LISTEN/NOTIFY on connections of the channel's own (notifications.ts), scoped to this schema. */
  openNotificationChannel(opts: NotificationChannelOptions): PgNotificationChannel {
    return new PgNotificationChannel(this.#url, this.connection.schema, opts);
  }

  async schemaVersion(): Promise<number> {
    const [r] = await this.connection.query<{ v: number | null }>('SELECT MAX(version) v FROM schema_migrations');
    return r?.v ?? 0;
  }

  /** Ends the pool (waits for the queries running). */
  async close(): Promise<void> {
    await this.connection.end();
  }

  // BlobMetaStore: the records of message files (store/blobs.ts holds the files themselves).

  async isBlobReferenced(blobId: string) {
    const [r] = await this.connection.query(pins.REFERENCED_SQL, [blobId]);
    return r.referenced as boolean;
  }

  async blobGarbage(limit: number) {
    return (await this.connection.query('SELECT blob_id FROM blob_garbage ORDER BY since, blob_id LIMIT $1', [limit])).map((r) => r.blob_id as string);
  }

  // The pin/removal handshake (store/message-files.ts; SQL and why it serializes: blob-pins.ts).

  async pinBlob(blobId: string, token: string, now: number, pinMs: number, removalLeaseMs: number) {
    return pins.pinBlob(this.connection, blobId, token, now, pinMs, removalLeaseMs);
  }

  async pinBlobs(list: { blobId: string; token: string }[], now: number, pinMs: number, removalLeaseMs: number) {
    // One statement (and transaction) each: blob_pin() takes its id's advisory lock (blob-pins.ts).
    const out: boolean[] = [];
    for (const p of list) out.push(await pins.pinBlob(this.connection, p.blobId, p.token, now, pinMs, removalLeaseMs));
    return out;
  }

  async unpinBlobs(list: { blobId: string; token: string }[]) {
    await pins.unpinBlobs(this.connection, list);
  }

  async pruneBlobPins(now: number) {
    return pins.pruneBlobPins(this.connection, now);
  }

  async claimBlobRemoval(blobId: string, now: number, removalLeaseMs: number) {
    return pins.claimBlobRemoval(this.connection, blobId, now, removalLeaseMs);
  }

  async forgetBlobGarbage(blobId: string, since: number) {
    await pins.forgetBlobGarbage(this.connection, blobId, since);
  }

  async getBlobMeta(blobId: string) {
    return this.connection.one('SELECT info FROM blob_meta WHERE blob_id = $1', (r) => openValue(this.connection.sealer, 'blob_meta.info', blobId, r.info as Buffer), blobId);
  }

  async setBlobMeta(blobId: string, info: string) {
    await this.connection.query(UPSERT_BLOB_META, [blobId, storedInfo(this.connection.sealer, blobId, info)]);
  }

  async setSearchHeaders(blobId: string, version: number, columns: Record<string, Buffer | null>) {
    const q = searchHeadersUpsert(blobId, version, columns, this.sealer);
    await this.connection.query(q.text, q.values);
  }

  async setBlobAnalyses(entries: { blobId: string; info: string; searchVersion: number; searchColumns: Record<string, Buffer | null> }[]) {
    if (entries.length === 0) return;
    await this.connection.tx((c) => writeAnalyses(c, this.connection.sealer, entries.map((e) => ({ blobId: e.blobId, analysis: { info: e.info, searchHeaders: { version: e.searchVersion, columns: e.searchColumns } } }))));
  }

  async blobsWithoutSearchHeaders(limit: number) {
    const ids = (await this.connection.query('SELECT DISTINCT blob_id FROM messages WHERE header_indexed = 0 LIMIT $1', [limit])).map((r) => r.blob_id as string);
    if (ids.length >= limit) return ids;
    // Rows of another key than the current one (a rotation; encryption turned on or off):
    // recorded again (store/search-seal.ts).
    const stale = await this.connection.query(
      'SELECT s.blob_id FROM search_headers s WHERE s.key_id IS DISTINCT FROM $1::text AND EXISTS (SELECT 1 FROM messages m WHERE m.blob_id = s.blob_id) LIMIT $2',
      [this.sealer?.keys.currentId ?? null, limit - ids.length],
    );
    return [...ids, ...stale.map((r) => r.blob_id as string)];
  }

  async hasSearchHeaders(blobId: string, version: number) {
    return (await this.connection.query('SELECT 1 FROM search_headers WHERE blob_id = $1 AND version = $2 AND key_id IS NOT DISTINCT FROM $3::text', [blobId, version, this.sealer?.keys.currentId ?? null])).length > 0;
  }

  async searchHeaderCandidates(folderId: number, column: string, needle: Buffer, version: number, folderSize: number) {
    if (!SEARCH_COLUMNS.has(column)) throw new Error(`unknown search column ${column}`);
    if (version !== 1) throw new Error(`header index version ${version}: messages.header_indexed tracks version 1 (migration 17)`);
    void folderSize; // PostgreSQL's planner chooses between walking the folder and scanning the index rows.
    // Plaintext: position(needle in column); sealed (store/search-seal.ts): every token of the
    // needle's trigrams inside the column's tokens, then the exact test on the opened values. A row
    // of another key than $2 comes back whatever the test (ok false: the message is unindexed).
    const plan = headerQueryPlan(this.sealer, column, needle);
    let test = plan.terms === null ? `s.${column} IS NOT NULL` : plan.terms.map((_, i) => `position($${i + 3}::bytea in s.${column}) > 0`).join(' AND ');
    const args: unknown[] = [folderId, plan.keyId, ...(plan.terms ?? [])];
    // Sealed: a row holding the needle's word token is a match without opening its values.
    // (The trigram tests are then skipped for it, and its file and values not fetched.)
    let select = 'NULL AS sure, s.blob_id, NULL::bytea AS vals';
    if (plan.verify && plan.sure) {
      args.push(plan.sure);
      const w = `position($${args.length}::bytea in s.${column}) > 0`;
      select = `${w} AS sure, CASE WHEN ${w} THEN NULL ELSE s.blob_id END AS blob_id, CASE WHEN ${w} THEN NULL ELSE s.vals END AS vals`;
      test = `${w} OR (${test})`;
    } else if (plan.verify) select = 'NULL AS sure, s.blob_id, s.vals';
    // One snapshot for both lists: a message indexed meanwhile is in exactly one of them.
    return this.connection.tx(async (c) => {
      const rows = await c.query(
        `SELECT m.uid, s.key_id IS NOT DISTINCT FROM $2::text AS ok, ${select} FROM messages m JOIN search_headers s ON s.blob_id = m.blob_id AND s.version = 1
          WHERE m.folder_id = $1 AND m.header_indexed = 1 AND (s.key_id IS DISTINCT FROM $2::text OR (${test})) ORDER BY m.uid`,
        args,
      );
      const answer = headerAnswer(this.sealer, plan, column, needle, rows.rows as HeaderCandidate[]);
      const unindexed = await c.query('SELECT uid FROM messages WHERE folder_id = $1 AND header_indexed = 0 ORDER BY uid', [folderId]);
      const stale = answer.unindexed;
      return { matched: answer.matched, unindexed: [...unindexed.rows.map((r) => r.uid as number), ...stale] };
    }, 'repeatable read');
  }
}

/** The URL without its user and password (for messages and logs). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(an unparsable PostgreSQL URL)';
  }
}

/**
 * Drops `schema` and everything in it (a fresh `caducee demo --postgres` operator starts from an
 * empty schema): the one place outside migrations where the demo's SQL lives.
 */
export async function dropSchema(url: string, schema: string, connectTimeoutMs = 10_000): Promise<void> {
  checkSchemaName(schema);
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: connectTimeoutMs });
  try {
    await client.connect();
  } catch (e) {
    throw new Error(`cannot connect to PostgreSQL at ${redactUrl(url)}: ${(e as Error).message}`, { cause: e });
  }
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
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
async function migrate(url: string, schema: string, connectTimeoutMs?: number): Promise<void> {
  const client = new pg.Client({ connectionString: url, ...(connectTimeoutMs ? { connectionTimeoutMillis: connectTimeoutMs } : {}) });
  try {
    await client.connect();
  } catch (e) {
    throw new Error(`cannot connect to PostgreSQL at ${redactUrl(url)}: ${(e as Error).message}; check the store's URL and that the server accepts this host and user`, { cause: e });
  }
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

/** The search_headers upsert of one file (setSearchHeaders, setBlobAnalyses). */
function searchHeadersUpsert(blobId: string, version: number, columns: Record<string, Buffer | null>, sealer: ValueSealer | undefined): { text: string; values: unknown[] } {
  const { sql, args } = upsertSearchHeaders(blobId, version, columns, sealer);
  return { text: sql, values: args };
}
