// The row values sealed at rest (docs/encryption.md, "Values in rows"): which columns, the context
// each value is sealed under, and sealing / opening as both engines store them. The value format
// itself is value-seal.ts's.
//
// Context (bound into each value's AAD): `<table>.<column>:<row key>`, the row key being the
// column's primary key — blob_meta.info:<blob id>, submissions.subject:<submission id>,
// absences.subject|body|external_body:<mailbox id>, urlauth_keys.secret:<key row id>,
// metadata.value:<entry row id>. A value
// copied into another row or column fails to open (SealedValueError) instead of reading as that
// row's. One key column per table: a table whose natural key is composite (urlauth_keys: user and
// folder) has an integer id as its primary key, its natural key UNIQUE.
//
// Plaintext values (written before encryption was configured, or with it off) stay readable: a
// sealed value starts with the magic (NUL "CV" v1), text never does (SQLite keeps it as TEXT;
// PostgreSQL keeps every value as BYTEA, its text with NUL replaced beforehand, postgres/text.ts).
// The binary columns: urlauth_keys.secret holds 32 random bytes in plaintext: its reader tells
// them by their length (store/urlauth-keys.ts); the SQL below by the magic, which a random key
// starts with once in 2^32 (that key would be counted as sealed and reported as not opening).
// metadata.value holds a value's octets: one starting with the magic is refused (store/metadata.ts).
import { isSealedValue, SealedValueError, VALUE_MAGIC, valueKeyId, type ValueSealer } from './value-seal.js';

/** The columns holding sealed values; `caducee keys` re-seals and counts them. */
export const SEALED_COLUMNS = ['blob_meta.info', 'submissions.subject', 'absences.subject', 'absences.body', 'absences.external_body', 'urlauth_keys.secret', 'metadata.value'] as const;
export type SealedColumn = (typeof SEALED_COLUMNS)[number];

/** Where each sealed column lives: its table and column, and the primary key bound into the context. */
export const SEALED_COLUMN_PLACES: Record<SealedColumn, { table: string; column: string; key: string; keyType: 'text' | 'integer' }> = {
  'blob_meta.info': { table: 'blob_meta', column: 'info', key: 'blob_id', keyType: 'text' },
  'submissions.subject': { table: 'submissions', column: 'subject', key: 'id', keyType: 'integer' },
  'absences.subject': { table: 'absences', column: 'subject', key: 'mailbox_id', keyType: 'integer' },
  'absences.body': { table: 'absences', column: 'body', key: 'mailbox_id', keyType: 'integer' },
  'absences.external_body': { table: 'absences', column: 'external_body', key: 'mailbox_id', keyType: 'integer' },
  'urlauth_keys.secret': { table: 'urlauth_keys', column: 'secret', key: 'id', keyType: 'integer' },
  'metadata.value': { table: 'metadata', column: 'value', key: 'id', keyType: 'integer' },
};

/** A row of a sealed column, by its primary key (a cursor of resealValues). */
export type RowKey = string | number;

/** Which values a batch of resealValues takes: sealed by another KEK than the current one, plaintext, or sealed by one KEK. */
export type ResealSelection = 'stale' | 'plain' | { keyId: string };

/** The result of one batch of resealValues. */
export interface ResealBatch {
  /** Values now sealed under the current KEK. */
  resealed: number;
  /** Values that would not open (altered, moved, or sealed by a key not in the keyring): left as they are. */
  failed: { row: RowKey; error: string }[];
  /** The cursor of the next batch; null when the column has no more rows. */
  next: RowKey | null;
}

/** What resealValues needs on either engine: the sealer (encryption at rest must be on) and where `column` lives. */
export function resealTarget(sealer: ValueSealer | undefined, column: SealedColumn): { sealer: ValueSealer; place: (typeof SEALED_COLUMN_PLACES)[SealedColumn] } {
  if (!sealer) throw new Error('re-sealing row values needs the keyring: encryption at rest is not configured (store.encryption)');
  const place = SEALED_COLUMN_PLACES[column];
  if (!place) throw new Error(`${column} is not a sealed column (store/sealed-rows.ts)`);
  return { sealer, place };
}

/** The AAD context of the value of `column` in row `row` (value-seal.ts). */
export const valueContext = (column: SealedColumn, row: RowKey): string => `${column}:${row}`;

/**
 * What to store for `plain` in `column` of row `row`: the sealed bytes when encryption at rest is
 * on, else the text itself (a PostgreSQL BYTEA column takes its UTF-8 bytes: plainBytes).
 */
export function sealValue(sealer: ValueSealer | undefined, column: SealedColumn, row: RowKey, plain: string): Buffer | string;
export function sealValue(sealer: ValueSealer | undefined, column: SealedColumn, row: RowKey, plain: string | null): Buffer | string | null;
export function sealValue(sealer: ValueSealer | undefined, column: SealedColumn, row: RowKey, plain: string | null): Buffer | string | null {
  if (plain === null) return null;
  return sealer ? sealer.seal(plain, valueContext(column, row)) : plain;
}

/** sealValue as bytes (PostgreSQL's BYTEA columns). */
export function sealBytes(sealer: ValueSealer | undefined, column: SealedColumn, row: RowKey, plain: string): Buffer;
export function sealBytes(sealer: ValueSealer | undefined, column: SealedColumn, row: RowKey, plain: string | null): Buffer | null;
export function sealBytes(sealer: ValueSealer | undefined, column: SealedColumn, row: RowKey, plain: string | null): Buffer | null {
  const v = sealValue(sealer, column, row, plain);
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}

/**
 * The text of a stored value of `column` in row `row`: a sealed one opened (SealedValueError when
 * it does not authenticate there, or when no keyring is configured), a plaintext one as it is.
 */
export function openValue(sealer: ValueSealer | undefined, column: SealedColumn, row: RowKey, v: Buffer | Uint8Array | string): string;
export function openValue(sealer: ValueSealer | undefined, column: SealedColumn, row: RowKey, v: Buffer | Uint8Array | string | null): string | null;
export function openValue(sealer: ValueSealer | undefined, column: SealedColumn, row: RowKey, v: Buffer | Uint8Array | string | null | undefined): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  return openBytes(sealer, column, row, v).toString('utf8');
}

/**
 * The bytes a stored value of `column` in row `row` holds: a sealed one opened (SealedValueError
 * as openValue), a plaintext one as it is (SQLite's TEXT as its UTF-8). What `caducee keys`
 * re-seals, so that a binary value (urlauth_keys.secret) goes through unchanged.
 */
export function openBytes(sealer: ValueSealer | undefined, column: SealedColumn, row: RowKey, v: Buffer | Uint8Array | string): Buffer {
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  const b = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (!isSealedValue(b)) return b;
  const context = valueContext(column, row);
  if (!sealer)
    throw new SealedValueError(
      `${context}: sealed by key ${valueKeyId(b)}, but encryption at rest is not configured: set store.encryption (keyFile or keyCommand) to the keyring holding that key (docs/encryption.md)`,
    );
  return sealer.open(b, context);
}

/** The first bytes of every value sealed by the KEK `keyId` (value-seal.ts's layout: magic, id length, id). */
export function sealedHead(keyId: string): Buffer {
  const id = Buffer.from(keyId, 'latin1');
  return Buffer.concat([VALUE_MAGIC, Buffer.from([id.length]), id]);
}

/** An absences row with its three texts opened (both engines' getAbsence). */
export function openAbsenceTexts<R extends { mailbox_id: number; subject: unknown; body: unknown; external_body: unknown }>(sealer: ValueSealer | undefined, r: R): R {
  const open = (column: SealedColumn, v: unknown) => openValue(sealer, column, r.mailbox_id, v as Buffer | string | null);
  return { ...r, subject: open('absences.subject', r.subject), body: open('absences.body', r.body), external_body: open('absences.external_body', r.external_body) };
}
