// The data directory holds subjects, addresses, the audit trail, password hashes, message files
// and the TOTP secrets key: readable by the service user only (issue 13, "Hardening"). The
// directory is created 0700 and files in it 0600; at start, a directory or state file that
// other local users can read stops the operator with the file and the command that fixes it.
import { closeSync, lstatSync, mkdirSync, openSync, type Stats } from 'node:fs';
import path from 'node:path';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Creates `dir` (and missing parents) 0700 if it does not exist; an existing one is left as is. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
}

/**
 * Creates `file` empty with mode 0600 if it does not exist, so that a library creating it later
 * (SQLite) does not create it with its own default mode; SQLite gives the `-wal` and `-shm` files
 * the mode of the database file.
 */
export function ensurePrivateFile(file: string): void {
  closeSync(openSync(file, 'a', PRIVATE_FILE_MODE));
}

const statOrNull = (p: string): Stats | null => {
  try {
    return lstatSync(p);
  } catch (e: any) {
    if (e.code === 'ENOENT') return null;
    throw e;
  }
};

/**
 * The state paths under `dataDir` that group or others may access, each with the command that
 * fixes it: the data directory itself (its 0700 protects everything below it), the blob tree's
 * top directories (`blobsDir`: store.blobs.dir when the message files live elsewhere, a shared
 * mount), and the state files directly in it (the SQLite database and its `-wal`/`-shm`, the
 * secrets key). Paths that do not exist are skipped.
 */
export function exposedStatePaths(dataDir: string, blobsDir = path.join(dataDir, 'blobs')): { path: string; mode: string; fix: string }[] {
  const out: { path: string; mode: string; fix: string }[] = [];
  const check = (p: string, dir: boolean) => {
    const st = statOrNull(p);
    if (!st || (st.mode & 0o077) === 0) return;
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    out.push({ path: p, mode, fix: `chmod ${dir ? '700' : '600'} ${p}` });
  };
  check(dataDir, true);
  // Message files: <dataDir>/blobs, or store.blobs.dir (a mount shared by the nodes).
  for (const d of [blobsDir, path.join(blobsDir, 'tmp')]) check(d, true);
  for (const f of ['caducee.sqlite', 'caducee.sqlite-wal', 'caducee.sqlite-shm', 'secrets.key']) check(path.join(dataDir, f), false);
  return out;
}
