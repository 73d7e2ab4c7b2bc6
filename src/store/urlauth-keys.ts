// URLAUTH mailbox access keys (RFC 4467 §3) as both engines store them: 32 random bytes, sealed at
// rest by the store's sealer when encryption is on. `urlauth_keys.secret` is one of the sealed
// columns of store/sealed-rows.ts, sealed under `urlauth_keys.secret:<row id>` (the table's
// integer primary key; user and folder are its UNIQUE natural key), so a key copied to another row
// does not open, and `caducee keys` counts, re-seals and retires these values with the others
// (docs/encryption.md, "Values in rows"). A stored key that does not open here (altered, moved, or
// its KEK not in the keyring) counts as no key: the URLs made with it stop working, and the next
// GENURLAUTH makes a new one.
import { randomBytes } from 'node:crypto';
import { valueContext } from './sealed-rows.js';
import type { ValueSealer } from './value-seal.js';

const KEY_BYTES = 32;

export const newUrlAuthKey = (): Buffer => randomBytes(KEY_BYTES);

/** What to store for `key` in row `id`: sealed when encryption at rest is on, else the bytes. */
export function sealUrlAuthKey(sealer: ValueSealer | undefined, id: number, key: Buffer): Buffer {
  return sealer ? sealer.seal(key, valueContext('urlauth_keys.secret', id)) : key;
}

/** The key the stored value of row `id` holds, or undefined when it cannot be opened here. */
export function openUrlAuthKey(sealer: ValueSealer | undefined, id: number, stored: Uint8Array): Buffer | undefined {
  const b = Buffer.from(stored);
  if (b.length === KEY_BYTES) return b; // a plaintext key (sealed values are longer)
  if (!sealer) return undefined;
  try {
    const k = sealer.open(b, valueContext('urlauth_keys.secret', id));
    return k.length === KEY_BYTES ? k : undefined;
  } catch {
    return undefined;
  }
}
