// Content-addressed message blobs on disk (dataDir/blobs/ab/<sha256>). A blob is written and
// fsynced *before* the database transaction that references it commits, so an acknowledged
// message is always complete on disk; a crash in between leaves only an unreferenced file.
//
// Removal (store/blob-collector.ts) races with a put of the same content: the put's file may be
// the one being removed, and the transaction that references it commits afterwards. Both sides
// meet here, in this process: a put pins its id before it renames the file into place, and first
// waits for any removal of that id in progress; the caller releases the pin once its transaction
// has committed (unreleased pins expire after `pinMs`); a removal is refused for a pinned id and
// holds the id until the file is gone.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync } from 'node:fs';
import { open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';

export class BlobSizeExceededError extends Error {
  override name = 'BlobSizeExceededError';
  constructor(readonly limit: number) {
    super(`message exceeds the size limit of ${limit} bytes`);
  }
}

export interface BlobInfo {
  id: string;
  size: number;
}

export interface PutBlob extends BlobInfo {
  /**
   * Ends the put's protection of the file against removal: call it once the transaction that
   * references the blob has committed (or will not). Unreleased, the protection ends by itself
   * after the store's pin time.
   */
  release(): void;
}

export class BlobStore {
  private readonly tmpDir: string;
  /** id → puts whose reference is not committed yet, and when their protection expires. */
  private readonly pins = new Map<string, { count: number; until: number }>();
  /** ids whose removal is in progress; a put of the same id waits for it. */
  private readonly removals = new Map<string, Promise<void>>();

  constructor(
    readonly dir: string,
    private readonly opts: { pinMs?: number } = {},
  ) {
    this.tmpDir = path.join(dir, 'tmp');
    mkdirSync(this.tmpDir, { recursive: true, mode: 0o700 }); // service user only (store/permissions.ts)
  }

  pathOf(id: string): string {
    if (!/^[0-9a-f]{64}$/.test(id)) throw new Error(`invalid blob id ${JSON.stringify(id)}`);
    return path.join(this.dir, id.slice(0, 2), id);
  }

  /**
   * Writes `prefix` then the stream's bytes; returns the blob id. Throws BlobSizeExceededError
   * (after draining the stream) when the content exceeds `maxSize`.
   */
  async put(source: Readable | Buffer, opts: { prefix?: Buffer; maxSize?: number } = {}): Promise<PutBlob> {
    const tmp = path.join(this.tmpDir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
    const fh = await open(tmp, 'w', 0o600);
    const hash = createHash('sha256');
    let size = 0;
    let exceeded = false;
    const write = async (chunk: Buffer) => {
      size += chunk.length;
      if (opts.maxSize !== undefined && size > opts.maxSize) exceeded = true;
      if (exceeded) return; // keep draining so the protocol layer can answer cleanly
      hash.update(chunk);
      await fh.write(chunk);
    };
    try {
      if (opts.prefix) await write(opts.prefix);
      if (Buffer.isBuffer(source)) await write(source);
      else for await (const chunk of source) await write(chunk as Buffer);
      if (exceeded) throw new BlobSizeExceededError(opts.maxSize!);
      await fh.sync();
    } catch (e) {
      await fh.close().catch(() => {});
      await rm(tmp, { force: true });
      throw e;
    }
    await fh.close();
    const id = hash.digest('hex');
    while (this.removals.has(id)) await this.removals.get(id);
    const until = Date.now() + (this.opts.pinMs ?? 10 * 60_000);
    const pin = this.pins.get(id);
    if (pin) (pin.count++, (pin.until = Math.max(pin.until, until)));
    else this.pins.set(id, { count: 1, until });
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const p = this.pins.get(id);
      if (p && --p.count <= 0) this.pins.delete(id);
    };
    const final = this.pathOf(id);
    mkdirSync(path.dirname(final), { recursive: true, mode: 0o700 });
    try {
      await rename(tmp, final);
      await syncDir(path.dirname(final));
    } catch (e) {
      release();
      throw e;
    }
    return { id, size, release };
  }

  read(id: string): Promise<Buffer> {
    return readFile(this.pathOf(id));
  }

  stream(id: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.pathOf(id), range);
  }

  async size(id: string): Promise<number> {
    return (await stat(this.pathOf(id))).size;
  }

  /**
   * Removes the file if `confirm` (run while the id is held) says nothing references it; false
   * when the id is pinned by a recent put or `confirm` refuses. The directory is fsynced, so a
   * removal reported done survives a crash.
   */
  async removeIfUnreferenced(id: string, confirm: () => Promise<boolean>): Promise<boolean> {
    const file = this.pathOf(id);
    if (this.isPinned(id) || this.removals.has(id)) return false;
    let release!: () => void;
    this.removals.set(id, new Promise<void>((r) => (release = r)));
    try {
      if (!(await confirm())) return false;
      await rm(file, { force: true });
      await syncDir(path.dirname(file));
      return true;
    } finally {
      this.removals.delete(id);
      release();
    }
  }

  private isPinned(id: string): boolean {
    const pin = this.pins.get(id);
    if (pin === undefined) return false;
    if (pin.until > Date.now()) return true;
    this.pins.delete(id);
    return false;
  }

  /** Forgets expired pins (called by the collector so the map stays small). */
  prunePins(): void {
    const t = Date.now();
    for (const [id, pin] of this.pins) if (pin.until <= t) this.pins.delete(id);
  }

  /** Every blob id on disk (the orphan scan: files a crash left before their transaction). */
  async *ids(): AsyncGenerator<string> {
    for (const sub of await readdir(this.dir).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{2}$/.test(sub)) continue;
      for (const name of await readdir(path.join(this.dir, sub)).catch(() => [] as string[])) {
        if (/^[0-9a-f]{64}$/.test(name) && name.startsWith(sub)) yield name;
      }
    }
  }

  /** Removes temporary files older than `olderThanMs` (puts a crash interrupted). */
  async cleanTmp(olderThanMs: number): Promise<number> {
    let n = 0;
    const limit = Date.now() - olderThanMs;
    for (const name of await readdir(this.tmpDir).catch(() => [] as string[])) {
      const file = path.join(this.tmpDir, name);
      const st = await stat(file).catch(() => undefined);
      if (st && st.mtimeMs < limit) {
        await rm(file, { force: true });
        n++;
      }
    }
    return n;
  }
}

async function syncDir(dir: string) {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
