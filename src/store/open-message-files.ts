// Chooses where message files live from the configuration (store.blobs, docs/configuration.md):
// files under a directory (BlobStore; a mount shared by the nodes when there are several) or rows
// of the PostgreSQL store (PgMessageFiles). Either way the pins of the removal handshake live in
// `store` (store/message-files.ts).
import path from 'node:path';
import type { Config } from '../config/index.js';
import { BlobStore } from './blobs.js';
import { readKeyFile, runKeyCommand, type KeyRing } from './keyring.js';
import type { MessageFiles, PinTimes } from './message-files.js';
import type { Store } from './types.js';

export async function openMessageFiles(
  config: Pick<Config, 'store' | 'dataDir'>,
  store: Store,
  opts: PinTimes & { onError?: (err: unknown) => void; keys?: KeyRing | null } = {},
): Promise<MessageFiles> {
  const blobs = config.store.blobs;
  // `keys: null`: plaintext even if configured (never used by the operator itself).
  const keys = opts.keys === null ? undefined : (opts.keys ?? loadKeyRing(config));
  if (blobs.kind === 'files') return new BlobStore(blobs.dir ?? path.join(config.dataDir, 'blobs'), store, { ...opts, keys });
  // The PostgreSQL modules (and the driver) are loaded only when message files live there.
  const [{ PgStore }, { PgMessageFiles }] = await Promise.all([import('./postgres/index.js'), import('./postgres/message-files.js')]);
  if (!(store instanceof PgStore))
    throw new Error("store.blobs.kind 'postgres' keeps message files in the PostgreSQL store, but this operator's store is SQLite: configure the PostgreSQL store, or set store.blobs.kind to 'files'");
  return new PgMessageFiles(store.connection, { ...opts, keys });
}

/**
 * The keyring of store.encryption (docs/encryption.md), or undefined when encryption is off.
 * Throws KeyRingError with what to do (a key file readable by others, a failing key command).
 */
export function loadKeyRing(config: Pick<Config, 'store'>): KeyRing | undefined {
  const e = config.store.encryption;
  if (e.keyFile) return readKeyFile(e.keyFile);
  if (e.keyCommand) return runKeyCommand(e.keyCommand);
  return undefined;
}
