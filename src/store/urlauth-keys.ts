// URLAUTH mailbox access keys (RFC 4467 §3) as both engines store them: 32 random bytes, sealed at
// rest by the store's sealer when encryption is on (value-seal.ts; context
// `urlauth_keys.secret:<user id>:<folder id>`, so a key copied to another row does not open). A
// stored key that does not open (its KEK retired from the keyring) counts as no key: the URLs made
// with it stop working, and the next GENURLAUTH makes a new one.
import { randomBytes } from 'node:crypto';
import type { ValueSealer } from './value-seal.js';

const KEY_BYTES = 32;

export const newUrlAuthKey = (): Buffer => randomBytes(KEY_BYTES);

const context = (userId: number, folderId: number) => `urlauth_keys.secret:${userId}:${folderId}`;

/** What to store for `key`: sealed when encryption at rest is on, else the bytes. */
export function sealUrlAuthKey(sealer: ValueSealer | undefined, userId: number, folderId: number, key: Buffer): Buffer {
  return sealer ? sealer.seal(key, context(userId, folderId)) : key;
}

/** The key a stored value holds, or undefined when it cannot be opened here. */
export function openUrlAuthKey(sealer: ValueSealer | undefined, userId: number, folderId: number, stored: Uint8Array): Buffer | undefined {
  const b = Buffer.from(stored);
  if (b.length === KEY_BYTES) return b; // a plaintext key (sealed values are longer)
  if (!sealer) return undefined;
  try {
    const k = sealer.open(b, context(userId, folderId));
    return k.length === KEY_BYTES ? k : undefined;
  } catch {
    return undefined;
  }
}
