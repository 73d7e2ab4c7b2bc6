// The key-encryption keys (KEKs) of encryption at rest (docs/encryption.md). A KEK never
// encrypts content: it wraps the random data key of each message file (store/sealed.ts). The
// keyring holds several KEKs at once, each under an id: the current one wraps new data keys,
// older ones still unwrap what they wrapped until `caducee keys rotate` has re-wrapped it and
// `caducee keys retire` removed them.
//
// Where the keyring comes from (store.encryption, docs/configuration.md):
// - keyFile: a JSON file (below) readable by the service user only. A file that group or others
//   may read or write, a symbolic link or a file owned by another user stops the operator with
//   the command that fixes it. Kept outside the data directory and its backups.
// - keyCommand: an argv array run at start without a shell (execFile: no string built from input
//   is ever parsed by a shell), e.g. a KMS / HSM client printing the same JSON on stdout.
//
// Format: {"format":"caducee-keyring/1","current":"<id>","keys":[{"id":"<id>","key":"<base64 of
// 32 bytes>","created":"<ISO date>"}]}. Ids: 1 to 16 of [A-Za-z0-9._-] (they sit in a fixed-size
// field of each file's header).
import { execFileSync } from 'node:child_process';
import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const KEYRING_FORMAT = 'caducee-keyring/1';
export const KEY_ID = /^[A-Za-z0-9._-]{1,16}$/;

export class KeyRingError extends Error {
  override name = 'KeyRingError';
}

export interface Kek {
  id: string;
  key: Buffer;
  created?: string;
}

export class KeyRing {
  private readonly byId = new Map<string, Kek>();
  private address?: Buffer;

  constructor(
    keys: Kek[],
    readonly currentId: string,
  ) {
    for (const k of keys) {
      if (!KEY_ID.test(k.id)) throw new KeyRingError(`key id ${JSON.stringify(k.id)}: 1 to 16 of letters, digits, '.', '_', '-'`);
      if (k.key.length !== 32) throw new KeyRingError(`key ${k.id}: 32 bytes expected, got ${k.key.length}`);
      if (this.byId.has(k.id)) throw new KeyRingError(`key id ${k.id} appears twice`);
      this.byId.set(k.id, k);
    }
    if (!this.byId.has(currentId)) throw new KeyRingError(`the current key ${JSON.stringify(currentId)} is not among the keys`);
  }

  get current(): Kek {
    return this.byId.get(this.currentId)!;
  }

  get(id: string): Kek | undefined {
    return this.byId.get(id);
  }

  get keys(): Kek[] {
    return [...this.byId.values()];
  }

  /**
   * The key of the message-file ids: HMAC-SHA-256 under this key addresses a file by its content
   * (deduplication) without a plain hash of it, which would let anyone holding a candidate text
   * confirm it is stored. Derived from the current KEK (HKDF, RFC 5869): after a rotation the same
   * content gets another id, which only costs a second copy.
   */
  addressKey(): Buffer {
    return (this.address ??= Buffer.from(hkdfSync('sha256', this.current.key, Buffer.alloc(0), 'caducee message-file id v1', 32)));
  }

  /** A short, non-secret fingerprint of a key (for `keys status`): the first 8 hex of SHA-256 over a derived value. */
  static fingerprint(k: Kek): string {
    return createHash('sha256').update(Buffer.from(hkdfSync('sha256', k.key, Buffer.alloc(0), 'caducee key fingerprint', 32))).digest('hex').slice(0, 8);
  }

  /** A new keyring with a fresh KEK as current (the old ones stay, for unwrapping). */
  withNewCurrent(now = new Date()): KeyRing {
    const k = newKek(now, (id) => this.byId.has(id));
    return new KeyRing([...this.keys, k], k.id);
  }

  /** The keyring without `id` (never the current key). */
  without(id: string): KeyRing {
    if (id === this.currentId) throw new KeyRingError(`${id} is the current key: rotate first (caducee keys rotate), then retire it`);
    if (!this.byId.has(id)) throw new KeyRingError(`no key ${id} in the keyring`);
    return new KeyRing(
      this.keys.filter((k) => k.id !== id),
      this.currentId,
    );
  }

  static generate(now = new Date()): KeyRing {
    const k = newKek(now, () => false);
    return new KeyRing([k], k.id);
  }

  serialize(): string {
    return (
      JSON.stringify(
        { format: KEYRING_FORMAT, current: this.currentId, keys: this.keys.map((k) => ({ id: k.id, key: k.key.toString('base64'), created: k.created })) },
        null,
        2,
      ) + '\n'
    );
  }

  /** Parses the JSON format; `source` names where it came from in errors (never the keys). */
  static parse(text: string, source: string): KeyRing {
    let j: any;
    try {
      j = JSON.parse(text);
    } catch {
      throw new KeyRingError(`${source}: not a keyring (JSON expected, format ${KEYRING_FORMAT})`);
    }
    if (j?.format !== KEYRING_FORMAT) throw new KeyRingError(`${source}: format ${JSON.stringify(j?.format)}, expected ${KEYRING_FORMAT}`);
    if (!Array.isArray(j.keys) || j.keys.length === 0) throw new KeyRingError(`${source}: no keys`);
    try {
      return new KeyRing(
        j.keys.map((k: any) => {
          if (typeof k?.id !== 'string' || typeof k?.key !== 'string') throw new KeyRingError('each key needs a string id and a base64 key');
          return { id: k.id, key: Buffer.from(k.key, 'base64'), created: typeof k.created === 'string' ? k.created : undefined };
        }),
        String(j.current),
      );
    } catch (e: any) {
      throw new KeyRingError(`${source}: ${e.message}`);
    }
  }
}

function newKek(now: Date, taken: (id: string) => boolean): Kek {
  for (;;) {
    // k + yymmdd + 6 hex: sorts by date, 13 characters.
    const id = `k${now.toISOString().slice(2, 10).replace(/-/g, '')}${randomBytes(3).toString('hex')}`;
    if (!taken(id)) return { id, key: randomBytes(32), created: now.toISOString() };
  }
}

/**
 * The key file's permission problem, with the command that fixes it, or null: it must be a
 * regular file (not a symbolic link) of the service user, neither readable nor writable by group
 * or others.
 */
export function keyFileProblem(file: string): string | null {
  let st;
  try {
    st = lstatSync(file);
  } catch (e: any) {
    if (e.code === 'ENOENT') return `the key file ${file} (store.encryption.keyFile) does not exist: create it with \`caducee keys init\``;
    return `cannot read the key file ${file} (store.encryption.keyFile): ${e.code ?? e.message}`;
  }
  if (st.isSymbolicLink()) return `the key file ${file} (store.encryption.keyFile) is a symbolic link: point keyFile at the file itself`;
  if (!st.isFile()) return `the key file ${file} (store.encryption.keyFile) is not a regular file`;
  if (typeof process.getuid === 'function' && st.uid !== process.getuid())
    return `the key file ${file} (store.encryption.keyFile) belongs to uid ${st.uid}, not to the service user (uid ${process.getuid()}): run \`chown ${process.getuid()} ${file}\``;
  if ((st.mode & 0o077) !== 0)
    return `the key file ${file} (store.encryption.keyFile) has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, readable or writable by other local users: run \`chmod 600 ${file}\` as the service user, then start again`;
  return null;
}

/** The keyring in `file`, refused (KeyRingError) unless its permissions are strict. */
export function readKeyFile(file: string): KeyRing {
  const problem = keyFileProblem(file);
  if (problem) throw new KeyRingError(problem);
  return KeyRing.parse(readFileSync(file, 'utf8'), `the key file ${file}`);
}

/** The keyring printed by `argv` (no shell), run once; stderr goes to ours, the keys never to a log. */
export function runKeyCommand(argv: string[], timeoutMs = 30_000): KeyRing {
  if (argv.length === 0) throw new KeyRingError('store.encryption.keyCommand is empty');
  let out: string;
  try {
    out = execFileSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 });
  } catch (e: any) {
    throw new KeyRingError(`the key command ${argv[0]} (store.encryption.keyCommand) failed: ${e.code ?? (e.status !== undefined ? `exit status ${e.status}` : e.message)}`);
  }
  return KeyRing.parse(out, `the output of the key command ${argv[0]}`);
}

/**
 * Writes the keyring to `file` atomically (a 0600 temporary file in the same directory, fsynced,
 * renamed, the directory fsynced): a crash leaves either the old keyring or the new one.
 * `exclusive`: refuse to replace an existing file (keys init).
 */
export function writeKeyFile(file: string, ring: KeyRing, opts: { exclusive?: boolean } = {}): void {
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}`);
  writeFileSync(tmp, ring.serialize(), { mode: 0o600, flag: 'wx' });
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  if (opts.exclusive) {
    // link(2) fails on an existing name: no check-then-write race.
    try {
      linkSync(tmp, file);
    } catch (e: any) {
      throw new KeyRingError(e.code === 'EEXIST' ? `the key file ${file} exists already; it is never overwritten (keys rotate adds a key to it)` : `cannot create the key file ${file}: ${e.code ?? e.message}`);
    } finally {
      unlinkSync(tmp);
    }
  } else renameSync(tmp, file);
  const d = openSync(dir, 'r');
  try {
    fsyncSync(d);
  } finally {
    closeSync(d);
  }
}
