// Embedded SQLite store (better-sqlite3). The only place, with the other store
// implementations, that knows table names.
//
// SqliteStore is composed of parts over one connection (connection.ts), one part per focused
// interface of store/types.ts: accounts.ts, credentials.ts, sessions.ts, mailboxes.ts,
// folders.ts, delivery.ts, absences.ts, rules.ts, usage.ts, traces.ts, tracking.ts, integrations.ts, patients.ts, leases.ts (leases and lockout). This file opens and migrates the database, keeps the message-file
// records (BlobMetaStore), and exposes every part's methods on the one Store object.
import Database from 'better-sqlite3';
import { ensurePrivateDir, ensurePrivateFile } from '../permissions.js';
import path from 'node:path';
import type { AbsenceStore, AccountStore, CredentialStore, DeliveryStore, FolderStore, HttpSessionStore, LeaseStore, LockoutStore, MailboxStore, PatientStore, RulesStore, Store, TraceStore, TrackingStore, IntegrationStore, SealedValueStore, UrlAuthKeyStore, UsageStore, MetadataStore } from '../types.js';
import { SqliteAbsences } from './absences.js';
import { SqliteAccounts } from './accounts.js';
import { immediateTransactions, now, SqliteConnection, type SqlitePart } from './connection.js';
import { SqliteCredentials } from './credentials.js';
import { SqliteDelivery } from './delivery.js';
import { SqliteFolders } from './folders.js';
import { SqliteIntegrations } from './integrations.js';
import { SqliteLeases, SqliteLockout } from './leases.js';
import { SqliteMailboxes } from './mailboxes.js';
import { SqliteUrlAuthKeys } from './urlauth-keys.js';
import { SqliteMetadata } from './metadata.js';
import { MIGRATIONS } from './migrations.js';
import { checkSearchColumns, SEARCH_COLUMNS, writeAnalysis, writeBlobMeta, writeSearchHeaders } from './blob-meta.js';
import { SqliteRules } from './rules.js';
import { SqliteHttpSessions } from './sessions.js';
import { SqliteTraces } from './traces.js';
import { SqliteTracking } from './tracking.js';
import { SqlitePatients } from './patients.js';
import { SqliteUsage } from './usage.js';
import type { ValueSealer } from '../value-seal.js';
import { headerAnswer, headerQueryPlan, type HeaderCandidate } from '../search-seal.js';
import { openValue } from '../sealed-rows.js';
import { SqliteSealedValues } from './sealed-values.js';

/**
 * The header search's narrowing queries (exported for their query-plan test). `test` uses the
 * named parameters @t0…; @key is the key_id of a usable row (NULL: plaintext rows): a row of
 * another key is returned whatever the test (ok = 0: the message is unindexed). `select` names
 * the columns after uid and ok (headerSelect).
 */
export const headerScanSql = (test: string, select = 'NULL AS sure, s.blob_id, NULL AS vals') =>
  `SELECT m.uid, s.key_id IS @key AS ok, ${select} FROM search_headers s CROSS JOIN messages m ON m.blob_id = s.blob_id WHERE s.version = 1 AND (s.key_id IS NOT @key OR (${test})) AND +m.folder_id = @folder`;
/** Probing the index row of each message of the folder. */
export const headerProbeSql = (test: string, select = 'NULL AS sure, s.blob_id, NULL AS vals') =>
  `SELECT m.uid, s.key_id IS @key AS ok, ${select} FROM messages m JOIN search_headers s ON s.blob_id = m.blob_id AND s.version = 1 WHERE m.folder_id = @folder AND m.header_indexed = 1 AND (s.key_id IS NOT @key OR (${test}))`;

export { StoreConflictError } from './connection.js';

/** The methods SqliteStore takes from its parts (assigned in the constructor). */
export interface SqliteStore extends AccountStore, CredentialStore, HttpSessionStore, MailboxStore, FolderStore, DeliveryStore, AbsenceStore, RulesStore, UsageStore, TraceStore, TrackingStore, IntegrationStore, PatientStore, LeaseStore, LockoutStore, SealedValueStore, UrlAuthKeyStore, MetadataStore {}

export class SqliteStore implements Store {
  readonly db: Database.Database;

  private readonly connection: SqliteConnection;

  private constructor(db: Database.Database) {
    this.db = db;
    this.connection = new SqliteConnection(db);
    const c = this.connection;
    // One part per focused interface: the tuple's type checks that every one is implemented.
    const parts: [AccountStore, CredentialStore, HttpSessionStore, MailboxStore, FolderStore, DeliveryStore, AbsenceStore, RulesStore, UsageStore, TraceStore, TrackingStore, IntegrationStore, PatientStore, LeaseStore, LockoutStore, SealedValueStore, UrlAuthKeyStore, MetadataStore] & SqlitePart[] = [
      new SqliteAccounts(c),
      new SqliteCredentials(c),
      new SqliteHttpSessions(c),
      new SqliteMailboxes(c),
      new SqliteFolders(c),
      new SqliteDelivery(c),
      new SqliteAbsences(c),
      new SqliteRules(c),
      new SqliteUsage(c),
      new SqliteTraces(c),
      new SqliteTracking(c),
      new SqliteIntegrations(c),
      new SqlitePatients(c),
      new SqliteLeases(c),
      new SqliteLockout(c),
      new SqliteSealedValues(c),
      new SqliteUrlAuthKeys(c),
      new SqliteMetadata(c),
    ];
    const self = this as unknown as Record<string, unknown>;
    for (const part of parts) {
      const proto = Object.getPrototypeOf(part);
      for (const name of Object.getOwnPropertyNames(proto)) {
        if (name === 'constructor') continue;
        if (name in self) throw new Error(`SqliteStore: two parts define ${name}`);
        self[name] = proto[name].bind(part);
      }
    }
  }

  /** The sealer of values kept in rows (docs/encryption.md), or undefined when encryption at rest is off. */
  get sealer(): ValueSealer | undefined {
    return this.connection.sealer;
  }

  private q(sql: string): Database.Statement {
    return this.connection.q(sql);
  }

  /** Opens (creating if needed) the database file and applies pending migrations. */
  static open(file: string, opts: { sealer?: ValueSealer } = {}): SqliteStore {
    if (file !== ':memory:') {
      // 0700 directory, 0600 database (SQLite gives -wal and -shm the database file's mode).
      ensurePrivateDir(path.dirname(file));
      ensurePrivateFile(file);
    }
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    // synchronous=FULL: a commit is on disk before we acknowledge (architecture invariant 1).
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    immediateTransactions(db);
    const store = new SqliteStore(db);
    store.connection.sealer = opts.sealer;
    store.migrate();
    return store;
  }

  migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
    const applied = new Set(this.q('SELECT version FROM schema_migrations').all().map((r: any) => r.version));
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      this.db.transaction(() => {
        this.db.exec(m.sql);
        this.q('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, now());
      })();
    }
  }

  schemaVersion(): number {
    return (this.q('SELECT MAX(version) v FROM schema_migrations').get() as any).v ?? 0;
  }

  async close() {
    if (this.db.open) this.db.close();
  }

  /** NotificationStore: none on SQLite (the processes of one machine talk through the cluster primary, src/relay/cluster.ts). */
  openNotificationChannel(): undefined {
    return undefined;
  }

  async isBlobReferenced(blobId: string) {
    return this.referenced(blobId);
  }

  private referenced(blobId: string): boolean {
    return !!(
      this.q('SELECT 1 FROM messages WHERE blob_id = ? LIMIT 1').get(blobId) ||
      this.q("SELECT 1 FROM outbound_queue WHERE blob_id = ? AND status = 'queued' LIMIT 1").get(blobId)
    );
  }

  async blobGarbage(limit: number) {
    return this.q('SELECT blob_id FROM blob_garbage ORDER BY since, blob_id LIMIT ?')
      .all(limit)
      .map((r: any) => r.blob_id as string);
  }

  // The pin/removal handshake (store/message-files.ts). Each is one IMMEDIATE transaction: it
  // takes SQLite's one write lock before reading, so a pin and a claim of the same id from two
  // processes run one after the other, each seeing what the other committed.

  async pinBlob(blobId: string, token: string, now: number, pinMs: number, removalLeaseMs: number) {
    return this.#transient(() => this.#pin(blobId, token, now, pinMs, removalLeaseMs));
  }

  async pinBlobs(pins: { blobId: string; token: string }[], now: number, pinMs: number, removalLeaseMs: number) {
    if (pins.length === 0) return [];
    return this.#transient(() => pins.map((p) => this.#pin(p.blobId, p.token, now, pinMs, removalLeaseMs)));
  }

  #pin(blobId: string, token: string, now: number, pinMs: number, removalLeaseMs: number): boolean {
    // A claim older than its lease was abandoned (its collector crashed): cleared.
    this.q('UPDATE blob_garbage SET removing_since = NULL WHERE blob_id = ? AND removing_since <= ?').run(blobId, now - removalLeaseMs);
    if (this.q('SELECT 1 FROM blob_garbage WHERE blob_id = ? AND removing_since IS NOT NULL').get(blobId)) return false;
    this.q('INSERT OR REPLACE INTO blob_pins (blob_id, token, until) VALUES (?, ?, ?)').run(blobId, token, now + pinMs);
    return true;
  }

  async unpinBlobs(pins: { blobId: string; token: string }[]) {
    if (pins.length === 0) return;
    this.#transient(() => {
      for (const p of pins) this.q('DELETE FROM blob_pins WHERE blob_id = ? AND token = ?').run(p.blobId, p.token);
    });
  }

  async pruneBlobPins(now: number) {
    // An expired pin is a put that never released it: its process died between the file and the
    // commit (or the commit failed). The file may be an orphan: a candidate, so that the next
    // collection run on any process or node removes it if nothing references it.
    return this.db.transaction(() => {
      this.q('INSERT OR IGNORE INTO blob_garbage (blob_id, since) SELECT DISTINCT blob_id, ? FROM blob_pins WHERE until <= ?').run(new Date(now).toISOString(), now);
      return this.q('DELETE FROM blob_pins WHERE until <= ?').run(now).changes;
    })();
  }

  /**
   * A write transaction whose commit other processes see at once but that is not fsynced: pins
   * protect puts of a live process only (a crash ends the put, and its pin with it), so losing
   * the last ones in a power cut is harmless. WAL with synchronous=NORMAL appends without a sync;
   * the next FULL commit syncs the log with these frames in it. better-sqlite3 is synchronous, so
   * nothing else of this connection runs between the two pragmas.
   */
  #transient<T>(fn: () => T): T {
    this.db.pragma('synchronous = NORMAL');
    try {
      return this.db.transaction(fn).immediate();
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  async claimBlobRemoval(blobId: string, now: number, removalLeaseMs: number) {
    return this.db.transaction(() => {
      if (
        this.q('SELECT 1 FROM blob_pins WHERE blob_id = ? AND until > ? LIMIT 1').get(blobId, now) ||
        this.q('SELECT 1 FROM blob_garbage WHERE blob_id = ? AND removing_since > ?').get(blobId, now - removalLeaseMs)
      ) {
        // Held: a candidate (if it was not one) so that a later run looks again — an orphan whose
        // put crashed stays pinned until its pin expires, and the orphan scan runs only at start.
        this.q('INSERT OR IGNORE INTO blob_garbage (blob_id, since) VALUES (?, ?)').run(blobId, new Date(now).toISOString());
        return false;
      }
      if (this.referenced(blobId)) {
        this.q('DELETE FROM blob_garbage WHERE blob_id = ?').run(blobId);
        return false;
      }
      this.q('DELETE FROM blob_meta WHERE blob_id = ?').run(blobId);
      this.q('DELETE FROM search_headers WHERE blob_id = ?').run(blobId);
      this.q('INSERT INTO blob_garbage (blob_id, since, removing_since) VALUES (?, ?, ?) ON CONFLICT (blob_id) DO UPDATE SET removing_since = excluded.removing_since').run(blobId, new Date(now).toISOString(), now);
      return true;
    }).immediate();
  }

  async forgetBlobGarbage(blobId: string, since: number) {
    this.q('DELETE FROM blob_garbage WHERE blob_id = ? AND removing_since = ?').run(blobId, since);
  }

  async getBlobMeta(blobId: string) {
    const r: any = this.q('SELECT info FROM blob_meta WHERE blob_id = ?').get(blobId);
    return r ? openValue(this.connection.sealer, 'blob_meta.info', blobId, r.info as Buffer | string) : undefined;
  }

  async setBlobMeta(blobId: string, info: string) {
    writeBlobMeta(this.connection, blobId, info);
  }

  async setSearchHeaders(blobId: string, version: number, columns: Record<string, Buffer | null>) {
    writeSearchHeaders(this.connection, blobId, version, columns);
  }

  async setBlobAnalyses(entries: { blobId: string; info: string; searchVersion: number; searchColumns: Record<string, Buffer | null> }[]) {
    if (entries.length === 0) return;
    for (const e of entries) checkSearchColumns(e.searchColumns);
    this.#transient(() => {
      for (const e of entries) writeAnalysis(this.connection, e.blobId, { info: e.info, searchHeaders: { version: e.searchVersion, columns: e.searchColumns } });
    });
  }

  async blobsWithoutSearchHeaders(limit: number) {
    const ids = this.q('SELECT DISTINCT blob_id FROM messages WHERE header_indexed = 0 LIMIT ?').pluck(true).all(limit) as string[];
    if (ids.length >= limit) return ids;
    // Rows of another key than the current one (a rotation; encryption turned on or off):
    // recorded again (store/search-seal.ts).
    const stale = this.q('SELECT s.blob_id FROM search_headers s WHERE s.key_id IS NOT ? AND EXISTS (SELECT 1 FROM messages m WHERE m.blob_id = s.blob_id) LIMIT ?').pluck(true);
    return [...ids, ...(stale.all(this.sealer?.keys.currentId ?? null, limit - ids.length) as string[])];
  }

  async hasSearchHeaders(blobId: string, version: number) {
    return this.q('SELECT 1 FROM search_headers WHERE blob_id = ? AND version = ? AND key_id IS ?').get(blobId, version, this.sealer?.keys.currentId ?? null) !== undefined;
  }

  /** Messages of the store, counted at most once a minute (chooses how a header search runs). */
  #messageCount = { n: 0, at: -Infinity };

  async searchHeaderCandidates(folderId: number, column: string, needle: Buffer, version: number, folderSize: number) {
    if (!SEARCH_COLUMNS.has(column)) throw new Error(`unknown search column ${column}`);
    if (version !== 1) throw new Error(`header index version ${version}: messages.header_indexed tracks version 1 (migration 17)`);
    // Plaintext: instr(column, needle); sealed (store/search-seal.ts): every token of the
    // needle's trigrams inside the column's tokens, then the exact test on the opened values.
    const plan = headerQueryPlan(this.sealer, column, needle);
    let test = plan.terms === null ? `s.${column} IS NOT NULL` : plan.terms.map((_, i) => `instr(s.${column}, @t${i}) > 0`).join(' AND ');
    const params: Record<string, unknown> = { key: plan.keyId, folder: folderId };
    plan.terms?.forEach((t, i) => (params[`t${i}`] = t));
    // Sealed: a row holding the needle's word token is a match without opening its values.
    // (The trigram tests are then skipped for it, and its file and values not fetched.)
    let select = 'NULL AS sure, s.blob_id, NULL AS vals';
    if (plan.verify && plan.sure) {
      params.w = plan.sure;
      const w = `instr(s.${column}, @w) > 0`;
      select = `${w} AS sure, CASE WHEN ${w} THEN NULL ELSE s.blob_id END AS blob_id, CASE WHEN ${w} THEN NULL ELSE s.vals END AS vals`;
      test = `${w} OR (${test})`;
    } else if (plan.verify) select = 'NULL AS sure, s.blob_id, s.vals';
    if (Date.now() - this.#messageCount.at > 60_000) this.#messageCount = { n: (this.q('SELECT COUNT(*) n FROM messages').get() as { n: number }).n, at: Date.now() };
    // A folder holding a good part of the store: scan the index's rows (sequential, no probe for
    // rows that do not match), then find the folder's messages of the matching files (by blob_id:
    // `+` keeps SQLite from walking the folder's index for every row instead); a small
    // folder in a big store: probe the row of each of its messages.
    const rows = this.q(folderSize * 3 >= this.#messageCount.n ? headerScanSql(test, select) : headerProbeSql(test, select)).all(params) as HeaderCandidate[];
    const answer = headerAnswer(this.sealer, plan, column, needle, rows);
    const unindexed = this.q('SELECT uid FROM messages WHERE folder_id = ? AND header_indexed = 0').pluck(true).all(folderId) as number[];
    return { matched: answer.matched, unindexed: answer.unindexed.length === 0 ? unindexed : [...unindexed, ...answer.unindexed] };
  }
}
