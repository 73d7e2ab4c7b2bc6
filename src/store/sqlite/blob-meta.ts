// The message-file records a delivery may write in its own transaction (DeliveryRequest.analysis)
// and that SqliteStore.setBlobMeta / setSearchHeaders write alone: one SQL text for both.
import { storedSearchRow } from '../search-seal.js';
import type { SqliteConnection } from './connection.js';
import { SEARCH_COLUMN_LIST } from './migrations.js';
import { sealValue } from '../sealed-rows.js';
import type { DeliveryAnalysis } from '../types.js';

/** The columns of the header search index (migration 17), the only names interpolated in its SQL. */
export const SEARCH_COLUMNS = new Set<string>(SEARCH_COLUMN_LIST);

/** Records a file's analysis, sealed when encryption at rest is on (docs/encryption.md, "Values in rows"). */
export function writeBlobMeta(c: SqliteConnection, blobId: string, info: string): void {
  c.q('INSERT OR REPLACE INTO blob_meta (blob_id, info) VALUES (?, ?)').run(blobId, sealValue(c.sealer, 'blob_meta.info', blobId, info));
}

/**
 * Replaces the file's header search row; the triggers of migration 17 mark its messages indexed.
 * With a sealer the row holds tokens and sealed values, not the values (store/search-seal.ts).
 */
export function writeSearchHeaders(c: SqliteConnection, blobId: string, version: number, columns: Record<string, Buffer | null>): void {
  const row = storedSearchRow(c.sealer, blobId, columns);
  const names = Object.keys(row.columns);
  c.q(`INSERT OR REPLACE INTO search_headers (blob_id, version, key_id, vals${names.map((n) => ', ' + n).join('')}) VALUES (?, ?, ?, ?${names.map(() => ', ?').join('')})`).run(
    blobId,
    version,
    row.keyId,
    row.vals,
    ...names.map((n) => row.columns[n]),
  );
}

/** Refuses a column name outside the index's (they are interpolated in writeSearchHeaders' SQL). */
export function checkSearchColumns(columns: Record<string, Buffer | null>): void {
  for (const n of Object.keys(columns)) if (!SEARCH_COLUMNS.has(n)) throw new Error(`unknown search column ${n}`);
}

/** A file's analysis and header search row, inside the caller's transaction (delivery, APPEND). */
export function writeAnalysis(c: SqliteConnection, blobId: string, a: DeliveryAnalysis): void {
  writeBlobMeta(c, blobId, a.info);
  writeSearchHeaders(c, blobId, a.searchHeaders.version, a.searchHeaders.columns);
}
