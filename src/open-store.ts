// Opening an operator's store from its configuration, without loading the services (main.ts):
// the CLI's administration commands (`caducee mailbox list`, `user create`, …) come through here
// and start in a fraction of the time the whole operator takes to load.
import path from 'node:path';
import type { Config } from './config/index.js';
import { SqliteStore } from './store/sqlite/index.js';
import type { Store } from './store/types.js';
import { loadKeyRing } from './store/open-message-files.js';
import { ValueSealer } from './store/value-seal.js';
import type { KeyRing } from './store/keyring.js';

/** A start-up failure the administrator can mend (its message says what and how): printed as one line. */
export class StartupError extends Error {
  override name = 'StartupError';
}

/** Opens the store of an operator without starting anything (CLI administration commands). */
export async function openStore(config: Config, opts: { keys?: KeyRing | null } = {}): Promise<Store> {
  const st = config.store;
  // docs/encryption.md: the keyring of store.encryption seals message files and row values alike
  // (`keys`: this keyring instead, e.g. the one `caducee keys rotate` is writing; null: none).
  let sealer: ValueSealer | undefined;
  try {
    const keys = opts.keys === null ? undefined : (opts.keys ?? loadKeyRing(config));
    sealer = keys && new ValueSealer(keys);
  } catch (e: any) {
    throw new StartupError(e.message, { cause: e });
  }
  if (st.kind === 'sqlite') return SqliteStore.open(path.join(config.dataDir, 'caducee.sqlite'), { sealer });
  // PostgreSQL (issue 12): several processes and nodes of the operator share it (docs/configuration.md).
  // Loaded only here: an operator or a CLI command on SQLite never loads the driver and its modules.
  const { PgStore, redactUrl } = await import('./store/postgres/index.js');
  try {
    return await PgStore.open(st.url!, { schema: st.schema, poolSize: st.poolSize, statementTimeoutMs: st.statementTimeoutMs, connectTimeoutMs: st.connectTimeoutMs, sealer });
  } catch (e: any) {
    // The driver's own words (a connection failure comes wrapped with the server's name: unwrapped, it is named once).
    const detail = /^cannot connect to PostgreSQL/.test(e.message) && e.cause instanceof Error ? e.cause.message : e.message;
    throw new StartupError(
      `cannot open the PostgreSQL store at ${redactUrl(st.url!)} (schema ${st.schema}): ${detail}. ` +
        `Check store.url (host, port, database, user; the password in PGPASSWORD or ~/.pgpass), that the server is up and accepts this host (pg_hba.conf), ` +
        `and that the user may create the schema and its tables (or that a previous start migrated them)`,
      { cause: e },
    );
  }
}
