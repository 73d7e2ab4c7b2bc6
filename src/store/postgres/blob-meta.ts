// The message-file records a delivery may write in its own transaction (DeliveryRequest.analysis)
// and that PgStore.setBlobMeta / setSearchHeaders write alone: one SQL text for both.
import { SEARCH_COLUMN_LIST } from '../sqlite/migrations.js';
import { storedSearchRow } from '../search-seal.js';
import type { DeliveryAnalysis } from '../types.js';
import { sealBytes } from '../sealed-rows.js';
import type { ValueSealer } from '../value-seal.js';
import type { PgClient } from './connection.js';
import { storable } from './text.js';

/**
 * The columns of search_headers (PG migration 1 has SQLite migration 17's; a later migration
 * adding one, in both engines, adds it to SEARCH_COLUMN_LIST), the only names interpolated in SQL.
 */
export const SEARCH_COLUMNS = new Set<string>(SEARCH_COLUMN_LIST);

export const UPSERT_BLOB_META = 'INSERT INTO blob_meta (blob_id, info) VALUES ($1, $2) ON CONFLICT (blob_id) DO UPDATE SET info = excluded.info';

/**
 * Replaces the whole search row, as SQLite's INSERT OR REPLACE: columns not given become NULL.
 * The upsert fires search_headers_indexed (INSERT OR UPDATE), which marks the file's messages.
 * With a sealer the row holds tokens and sealed values, not the values (store/search-seal.ts).
 * Parameters from $`first`: the blob id, the version, the key id, the sealed values, then the columns.
 */
export function upsertSearchHeaders(blobId: string, version: number, columns: Record<string, Buffer | null>, sealer: ValueSealer | undefined, first = 1): { sql: string; args: unknown[] } {
  const row = storedSearchRow(sealer, blobId, columns);
  const names = Object.keys(row.columns);
  for (const n of names) if (!SEARCH_COLUMNS.has(n)) throw new Error(`unknown search column ${n}`);
  return {
    sql: `INSERT INTO search_headers (blob_id, version, key_id, vals${names.map((n) => ', ' + n).join('')}) VALUES ($${first}, $${first + 1}, $${first + 2}, $${first + 3}${names.map((_, i) => `, $${first + i + 4}`).join('')})
       ON CONFLICT (blob_id) DO UPDATE SET version = excluded.version, key_id = excluded.key_id, vals = excluded.vals${SEARCH_COLUMN_LIST.map((n) => `, ${n} = excluded.${n}`).join('')}`,
    args: [blobId, version, row.keyId, row.vals, ...names.map((n) => row.columns[n])],
  };
}

/** blob_meta.info as stored (BYTEA, migration 4): sealed when encryption at rest is on (docs/encryption.md, "Values in rows"). */
export const storedInfo = (sealer: ValueSealer | undefined, blobId: string, info: string): Buffer => sealBytes(sealer, 'blob_meta.info', blobId, storable(info));

/** A delivery's analysis: blob_meta and the search row in one statement (one round trip). */
export function analysisStatement(blobId: string, a: DeliveryAnalysis, sealer: ValueSealer | undefined): { sql: string; args: unknown[] } {
  const h = upsertSearchHeaders(blobId, a.searchHeaders.version, a.searchHeaders.columns, sealer, 3);
  return {
    sql: `WITH meta AS (INSERT INTO blob_meta (blob_id, info) VALUES ($1, $2) ON CONFLICT (blob_id) DO UPDATE SET info = excluded.info) ${h.sql}`,
    args: [blobId, storedInfo(sealer, blobId, a.info), ...h.args],
  };
}

/**
 * The analyses of several files inside the caller's transaction (setBlobAnalyses, APPEND's
 * appendMessages): blob_meta in one statement, then each file's search row.
 */
export async function writeAnalyses(c: PgClient, sealer: ValueSealer | undefined, entries: { blobId: string; analysis: DeliveryAnalysis }[]): Promise<void> {
  if (entries.length === 0) return;
  const upserts = entries.map((e) => upsertSearchHeaders(e.blobId, e.analysis.searchHeaders.version, e.analysis.searchHeaders.columns, sealer));
  await c.query('INSERT INTO blob_meta (blob_id, info) SELECT * FROM unnest($1::text[], $2::bytea[]) ON CONFLICT (blob_id) DO UPDATE SET info = excluded.info', [
    entries.map((e) => e.blobId),
    entries.map((e) => storedInfo(sealer, e.blobId, e.analysis.info)),
  ]);
  for (const q of upserts) await c.query(q.sql, q.args);
}
