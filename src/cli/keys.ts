// `caducee keys …`: the key-encryption keys of encryption at rest (docs/encryption.md).
//   init               creates the key file (store.encryption.keyFile or --file), never overwriting
//   status             the keys, and how many message files and row values each one seals (and
//                      how many are plaintext)
//   rotate             a new KEK becomes current in the key file, then every file is re-wrapped and
//                      every row value re-sealed
//   rewrap             re-wraps every file not wrapped by the current KEK alone, and re-seals every
//                      row value sealed by another KEK (after a rotation made in a KMS behind
//                      keyCommand, or after restarting operators that had sealed with the old key)
//   retire <id>        re-wraps / re-seals what the KEK still seals, checks nothing does any more,
//                      removes it
//   encrypt-existing   seals the plaintext files and row values written before encryption was configured
// Never prints a key. Re-wrapping rewrites 160 bytes per file, never the content; a row value
// (docs/encryption.md, "Values in rows": store/sealed-rows.ts's SEALED_COLUMNS, the URLAUTH access
// keys and METADATA values among them) is small and sealed again whole, ROW_BATCH rows per transaction so that a big
// store never holds one long transaction.
import { InvalidArgumentError, type Command } from 'commander';
import path from 'node:path';
import { loadConfig, type Config } from '../config/index.js';
import { openStore } from '../open-store.js';
import { KeyRing, KeyRingError, readKeyFile, runKeyCommand, writeKeyFile } from '../store/keyring.js';
import type { MessageFiles } from '../store/message-files.js';
import { SEALED_COLUMNS, type ResealSelection, type RowKey } from '../store/sealed-rows.js';
import type { Store } from '../store/types.js';
import { openMessageFiles } from '../store/open-message-files.js';

const configOption = ['-c, --config <file>', 'operator configuration file (YAML or JSON; or CADUCEE_CONFIG)'] as const;

function ringOf(config: Config): KeyRing {
  const e = config.store.encryption;
  if (e.keyFile) return readKeyFile(e.keyFile);
  if (e.keyCommand) return runKeyCommand(e.keyCommand);
  throw new KeyRingError('encryption at rest is not configured: set store.encryption.keyFile (created by `caducee keys init`) or store.encryption.keyCommand (docs/encryption.md)');
}

async function withFiles<T>(config: Config, keys: KeyRing, fn: (files: MessageFiles, store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(config, { keys });
  try {
    return await fn(await openMessageFiles(config, store, { keys }), store);
  } finally {
    await store.close();
  }
}

/** Row values re-sealed per transaction. */
const ROW_BATCH = 500;

/** Re-seals the row values `which` selects in every sealed column, ROW_BATCH a transaction; failures on stderr. */
async function resealRows(store: Store, which: ResealSelection): Promise<{ resealed: number; failed: number }> {
  const t = { resealed: 0, failed: 0 };
  for (const column of SEALED_COLUMNS) {
    let after: RowKey | null = null;
    do {
      const b = await store.resealValues(column, which, after, ROW_BATCH);
      t.resealed += b.resealed;
      for (const f of b.failed) {
        t.failed++;
        process.stderr.write(`caducee: ${f.error}\n`); // names the column and the row, never the value
      }
      after = b.next;
    } while (after !== null);
  }
  return t;
}

/** Row values per KEK id over every sealed column ('plaintext' for the others). */
async function rowTally(store: Store): Promise<Tally> {
  const t: Tally = {};
  for (const c of await store.countSealedValues()) t[c.keyId ?? 'plaintext'] = (t[c.keyId ?? 'plaintext'] ?? 0) + c.count;
  return t;
}

type Tally = Record<string, number>;
const bump = (t: Tally, k: string) => (t[k] = (t[k] ?? 0) + 1);

/** Re-wraps every file; `only`: just those with a slot under that key id. */
async function rewrapAll(files: MessageFiles, only?: string): Promise<Tally> {
  const t: Tally = {};
  for await (const id of files.ids()) {
    if (only) {
      const s = await files.keyState(id);
      if (s.kind !== 'sealed' || !s.keyIds.includes(only)) continue;
    }
    try {
      bump(t, await files.rewrap(id));
    } catch (e: any) {
      bump(t, 'failed');
      process.stderr.write(`caducee: ${e.message}\n`);
    }
  }
  return t;
}

const say = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');

export function registerKeysCommands(program: Command, fail: (e: unknown) => never): void {
  const keys = program.command('keys').description('encryption at rest: the key-encryption keys (docs/encryption.md)');

  keys
    .command('init')
    .description('create the key file (mode 0600) with a first key; an existing file is never overwritten')
    .option(...configOption)
    .option('--file <path>', 'where to create it (default: store.encryption.keyFile)')
    .action(async (o) => {
      try {
        const config = loadConfig(o.config);
        const file = o.file ? path.resolve(o.file) : config.store.encryption.keyFile;
        if (!file) throw new InvalidArgumentError('no key file: set store.encryption.keyFile in the configuration, or give --file');
        const ring = KeyRing.generate();
        writeKeyFile(file, ring, { exclusive: true });
        say({ keyFile: file, current: ring.currentId, fingerprint: KeyRing.fingerprint(ring.current) });
        const inData = !path.relative(config.dataDir, file).startsWith('..');
        if (inData) process.stderr.write(`caducee: warning: ${file} is inside the data directory ${config.dataDir}: keep the key out of the data's backups (docs/encryption.md)\n`);
        if (config.store.encryption.keyFile !== file) process.stderr.write(`caducee: set store.encryption.keyFile: ${file} in the configuration (or CADUCEE_ENCRYPTION_KEY_FILE) to encrypt new message files\n`);
      } catch (e) {
        fail(e);
      }
    });

  keys
    .command('status')
    .description('the keys (ids, fingerprints, which is current) and how many message files and row values each seals')
    .option(...configOption)
    .action(async (o) => {
      try {
        const config = loadConfig(o.config);
        const ring = ringOf(config);
        const byKey: Tally = {};
        const t: Tally = {};
        const rows = await withFiles(config, ring, async (files, store) => {
          for await (const id of files.ids()) {
            const s = await files.keyState(id);
            bump(t, s.kind);
            if (s.kind === 'sealed') for (const k of s.keyIds) bump(byKey, k);
          }
          return { byKey: await rowTally(store), byColumn: await store.countSealedValues() };
        });
        for (const k of ring.keys) say({ key: k.id, current: k.id === ring.currentId, created: k.created ?? null, fingerprint: KeyRing.fingerprint(k), files: byKey[k.id] ?? 0, rows: rows.byKey[k.id] ?? 0 });
        // docs/encryption.md, "Values in rows": each sealed column, its values per key id.
        for (const column of SEALED_COLUMNS) {
          const counts = rows.byColumn.filter((c) => c.column === column);
          say({ column, byKey: Object.fromEntries(counts.filter((c) => c.keyId !== null).map((c) => [c.keyId, c.count])), plaintext: counts.find((c) => c.keyId === null)?.count ?? 0 });
        }
        const unknown = [...new Set([...Object.keys(byKey), ...Object.keys(rows.byKey).filter((k) => k !== 'plaintext')])].filter((id) => !ring.get(id));
        const rowsSealed = Object.entries(rows.byKey).reduce((n, [k, c]) => (k === 'plaintext' ? n : n + c), 0);
        say({ files: t.sealed ?? 0, sealed: t.sealed ?? 0, plaintext: t.plain ?? 0, rows: { sealed: rowsSealed, plaintext: rows.byKey.plaintext ?? 0 }, unknownKeys: unknown });
      } catch (e) {
        fail(e);
      }
    });

  keys
    .command('rotate')
    .description('a new key becomes current in the key file; every message file is re-wrapped under it (the content is not re-encrypted), every row value re-sealed')
    .option(...configOption)
    .action(async (o) => {
      try {
        const config = loadConfig(o.config);
        const file = config.store.encryption.keyFile;
        if (!file)
          throw new KeyRingError(
            'keys rotate writes the key file (store.encryption.keyFile); with store.encryption.keyCommand, make the new key current in the KMS (the command prints both), then run `caducee keys rewrap`',
          );
        const ring = readKeyFile(file).withNewCurrent();
        writeKeyFile(file, ring);
        say({ rotated: true, current: ring.currentId, fingerprint: KeyRing.fingerprint(ring.current) });
        const [t, rows] = await withFiles(config, ring, async (files, store) => [await rewrapAll(files), await resealRows(store, 'stale')] as const);
        say({ rewrapped: t.rewrapped ?? 0, current: t.current ?? 0, plaintext: t.plain ?? 0, failed: t.failed ?? 0, rows });
        process.stderr.write(
          'caducee: running operators keep sealing new files and row values with the previous key until restarted: restart them, run `caducee keys rewrap`, then `caducee keys retire <old id>`\n',
        );
        if (t.failed || rows.failed) process.exitCode = 1;
      } catch (e) {
        fail(e);
      }
    });

  keys
    .command('rewrap')
    .description('re-wrap every message file not wrapped by the current key alone, re-seal every row value sealed by another key')
    .option(...configOption)
    .action(async (o) => {
      try {
        const config = loadConfig(o.config);
        const ring = ringOf(config);
        const [t, rows] = await withFiles(config, ring, async (files, store) => [await rewrapAll(files), await resealRows(store, 'stale')] as const);
        say({ current: ring.currentId, rewrapped: t.rewrapped ?? 0, unchanged: t.current ?? 0, plaintext: t.plain ?? 0, failed: t.failed ?? 0, rows });
        if (t.failed || rows.failed) process.exitCode = 1;
      } catch (e) {
        fail(e);
      }
    });

  keys
    .command('retire <id>')
    .description('re-wrap / re-seal what the key still seals (files and row values), check that nothing does any more, then remove it from the key file')
    .option(...configOption)
    .action(async (id: string, o) => {
      try {
        const config = loadConfig(o.config);
        const ring = ringOf(config);
        const without = ring.without(id); // refuses the current key and an unknown one
        const t = await withFiles(config, ring, async (files, store) => {
          const t = await rewrapAll(files, id);
          const rows = await resealRows(store, { keyId: id });
          // The check after: a file still naming the key (a failure, or one sealed meanwhile by an
          // operator not restarted since the rotation) keeps the key.
          let left = 0;
          for await (const f of files.ids()) {
            const s = await files.keyState(f);
            if (s.kind === 'sealed' && s.keyIds.includes(id)) left++;
          }
          const rowsLeft = (await rowTally(store))[id] ?? 0;
          return { rewrapped: t.rewrapped ?? 0, failed: t.failed ?? 0, left, rows: { resealed: rows.resealed, failed: rows.failed, left: rowsLeft } };
        });
        if (t.left || t.rows.left)
          throw new KeyRingError(
            `${t.left} message file(s) and ${t.rows.left} row value(s) still sealed by ${id} (failed: ${t.failed} file(s), ${t.rows.failed} row value(s)): the key stays; restart the operators, then run keys retire again`,
          );
        if (config.store.encryption.keyFile) {
          writeKeyFile(config.store.encryption.keyFile, without);
          say({ retired: id, rewrapped: t.rewrapped ?? 0, resealed: t.rows.resealed, current: without.currentId });
        } else say({ retirable: id, rewrapped: t.rewrapped ?? 0, resealed: t.rows.resealed, detail: 'no message file or row value needs it any more: remove it from what store.encryption.keyCommand prints' });
      } catch (e) {
        fail(e);
      }
    });

  keys
    .command('encrypt-existing')
    .description('seal the plaintext message files (in place; their ids stay) and row values written before encryption was configured')
    .option(...configOption)
    .action(async (o) => {
      try {
        const config = loadConfig(o.config);
        const ring = ringOf(config);
        const t: Tally = {};
        const rows = await withFiles(config, ring, async (files, store) => {
          for await (const id of files.ids()) {
            try {
              bump(t, await files.seal(id));
            } catch (e: any) {
              bump(t, 'failed');
              process.stderr.write(`caducee: message file ${id}: ${e.message}\n`);
            }
          }
          const r = await resealRows(store, 'plain');
          return { sealed: r.resealed, failed: r.failed };
        });
        say({ sealed: t.sealed ?? 0, already: t.already ?? 0, gone: t.missing ?? 0, failed: t.failed ?? 0, rows });
        if (t.failed || rows.failed) process.exitCode = 1;
      } catch (e) {
        fail(e);
      }
    });
}
