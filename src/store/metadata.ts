// RFC 5464 METADATA values as both engines store them (MetadataStore, store/types.ts): the value's
// octets, sealed at rest by the store's sealer when encryption is on. `metadata.value` is one of
// the sealed columns of store/sealed-rows.ts, sealed under `metadata.value:<row id>` (the table's
// integer primary key; folder, user and entry are its unique natural key), so a value copied to
// another row does not open, and `caducee keys` counts, re-seals and retires these values with
// the others (docs/encryption.md, "Values in rows"). A value is user content (a comment on a
// folder may name a patient): it is never logged.
import { openBytes, valueContext } from './sealed-rows.js';
import { isSealedValue, type ValueSealer } from './value-seal.js';

/** What to store for `value` in row `id`: sealed when encryption at rest is on, else the octets. */
export function sealMetadataValue(sealer: ValueSealer | undefined, id: number, value: Buffer): Buffer {
  return sealer ? sealer.seal(value, valueContext('metadata.value', id)) : value;
}

/** The octets the stored value of row `id` holds (SealedValueError when a sealed one does not open here). */
export function openMetadataValue(sealer: ValueSealer | undefined, id: number, stored: Uint8Array): Buffer {
  return openBytes(sealer, 'metadata.value', id, stored);
}

/**
 * Whether `value` can be stored: a plaintext value (encryption at rest off) is told from a sealed
 * one by the seal's magic bytes (value-seal.ts), so one that starts with them cannot be kept as it is.
 */
export function storableMetadataValue(value: Uint8Array): boolean {
  return !isSealedValue(value);
}

/** The changes of one setMetadata with the user each row belongs to (null: a /shared entry). */
export function metadataRows(userId: number, changes: { entry: string; value: Buffer | null }[]): { entry: string; userId: number | null; value: Buffer | null }[] {
  return changes.map((c) => ({ entry: c.entry.toLowerCase(), userId: c.entry.toLowerCase().startsWith('/private') ? userId : null, value: c.value }));
}
