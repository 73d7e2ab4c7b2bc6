// Message files on disk (dataDir/blobs/ab/<sha256>, or store.blobs.dir: a mount shared by the
// nodes, docs/configuration.md). A file is written and fsynced *before* the database transaction
// that references it commits, so an acknowledged message is always complete on disk; a crash in
// between leaves only an unreferenced file (an orphan, removed by the collector's scan).
//
// Removal races with a put of the same content, possibly on another process or node: both sides
// meet in the store (the pin/removal handshake of store/message-files.ts, with its interleavings).
// In this process, a put of an id whose removal runs here waits for that removal's promise
// instead of polling the store.
//
// With a keyring (store.encryption, docs/encryption.md) every file written is sealed
// (store/sealed.ts: AES-256-GCM in 64 KiB chunks under a per-file data key wrapped by the KEK, the
// id an HMAC of the plaintext), the temporary copy included; files written before encryption was
// configured (plaintext, SHA-256 ids) stay readable, told apart by their first byte, and `caducee
// keys encrypt-existing` seals them in place (seal()).
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs, { mkdirSync } from 'node:fs';
import { open, readdir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import type { KeyRing } from './keyring.js';
import { BlobSizeExceededError, DEFAULT_PIN_MS, DEFAULT_REMOVAL_LEASE_MS, PinReleaser, sleep, eachLimited, type BlobPinStore, type KeyState, type MessageFiles, type PinTimes, type PutBlob } from './message-files.js';
import { HEADER_SIZE, headerKeyIds, isSealed, openBuffer, openHeader, openRange, plainSizeOf, rewrapSlots, sealBuffer, Sealer, SLOTS_OFFSET } from './sealed.js';

export { BlobSizeExceededError, type BlobInfo, type MessageFiles, type PutBlob } from './message-files.js';

export class BlobStore implements MessageFiles {
  private readonly tmpDir: string;
  /** ids whose removal runs in this process; a put of the same id here waits for it. */
  private readonly removals = new Map<string, Promise<void>>();
  private readonly releaser: PinReleaser;
  private readonly pinMs: number;
  private readonly leaseMs: number;
  private readonly keys?: KeyRing;

  /**
   * `pins`: the store holding the handshake (every Store is one); `onError` hears a failed pin
   * release (harmless: the pin expires); `keys`: seal every file written (encryption at rest).
   */
  constructor(
    readonly dir: string,
    private readonly pins: BlobPinStore,
    opts: PinTimes & { onError?: (err: unknown) => void; keys?: KeyRing } = {},
  ) {
    this.keys = opts.keys;
    this.tmpDir = path.join(dir, 'tmp');
    mkdirSync(this.tmpDir, { recursive: true, mode: 0o700 }); // service user only (store/permissions.ts)
    this.pinMs = opts.pinMs ?? DEFAULT_PIN_MS;
    this.leaseMs = opts.removalLeaseMs ?? DEFAULT_REMOVAL_LEASE_MS;
    this.releaser = new PinReleaser(pins, opts.onError);
  }

  pathOf(id: string): string {
    if (!/^[0-9a-f]{64}$/.test(id)) throw new Error(`invalid blob id ${JSON.stringify(id)}`);
    return path.join(this.dir, id.slice(0, 2), id);
  }

  async put(source: Readable | Buffer, opts: { prefix?: Buffer; maxSize?: number } = {}): Promise<PutBlob> {
    // Bytes in hand (the MX's whole message): one write through a file descriptor (#tempOf).
    const { tmp, id, size } = Buffer.isBuffer(source) ? await this.#tempOf(bufferWithin(source, opts)) : await this.#temp(source, opts);
    // P2: the pin, once no removal of the id is claimed.
    const token = randomUUID();
    try {
      await this.pin(id, token);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    const put = this.releaser.putBlob(id, size, token);
    // P3: the copy becomes the file.
    const final = this.pathOf(id);
    try {
      await this.#renameIntoShard(tmp, final);
      await fsyncDir(path.dirname(final));
    } catch (e) {
      await rm(tmp, { force: true });
      void put.release();
      throw e;
    }
    return put;
  }

  /**
   * put() of several whole messages (a MULTIAPPEND's, issue 15): the same steps for each, batched.
   * P1 every temporary copy written and fsynced, PUT_MANY_PARALLEL at a time (their fsyncs overlap
   * on libuv's pool); P2 every pin in one store transaction (pinBlobs; an id whose removal is
   * claimed waits as put() does); P3 every rename, then each shard directory fsynced once, after
   * all the renames into it. Resolves only once every file is durable under its name; on a
   * failure, the copies are removed and the pins released (a file already renamed stays, an
   * orphan like one of a put whose transaction failed).
   */
  async putMany(sources: Buffer[]): Promise<PutBlob[]> {
    const temps: { tmp: string; id: string; size: number }[] = [];
    const puts: PutBlob[] = [];
    try {
      await eachLimited(sources, PUT_MANY_PARALLEL, async (source, k) => {
        temps[k] = await this.#tempOf(source);
      });
      // P2
      const pins = temps.map((t) => ({ blobId: t.id, token: randomUUID() }));
      const pinned = this.pins.pinBlobs && !pins.some((p) => this.removals.has(p.blobId)) ? await this.pins.pinBlobs(pins, Date.now(), this.pinMs, this.leaseMs) : pins.map(() => false);
      for (const [k, p] of pins.entries()) {
        if (!pinned[k]) await this.pin(p.blobId, p.token);
        puts[k] = this.releaser.putBlob(p.blobId, temps[k].size, p.token);
      }
      // P3: the renames, then one fsync per shard directory (the renames into it all before it).
      const dirs = new Set<string>();
      await eachLimited(temps, PUT_MANY_PARALLEL, async (t) => {
        const final = this.pathOf(t.id);
        dirs.add(path.dirname(final));
        await this.#renameIntoShard(t.tmp, final);
      });
      await eachLimited([...dirs], PUT_MANY_PARALLEL, fsyncDir);
      return puts;
    } catch (e) {
      await Promise.all(temps.map((t) => t && rm(t.tmp, { force: true })));
      for (const p of puts) void p?.release();
      throw e;
    }
  }

  /**
   * Shard directories known to exist durably (never removed): each made at most once per process,
   * the promise kept so that a concurrent put into a directory being made waits for its parent's
   * fsync too.
   */
  readonly #shardDirs = new Map<string, Promise<void>>();

  /**
   * Makes sure the shard directory exists and that its entry is durable: a directory created
   * here has its parent fsynced (each one created, up to the first that existed), before any
   * file renamed into it is reported durable (docs/crash-safety.md: a file's name is durable
   * only when every directory on its path is). Known directories cost nothing (issue 15: the
   * fill called mkdir on every file of every batch).
   */
  #shardDir(dir: string): Promise<void> {
    let made = this.#shardDirs.get(dir);
    if (!made) {
      made = (async () => {
        const first = mkdirSync(dir, { recursive: true, mode: 0o700 });
        if (first === undefined) return;
        for (let d = dir; ; d = path.dirname(d)) {
          await syncDir(path.dirname(d));
          if (d === first || path.dirname(d) === d) break;
        }
      })();
      this.#shardDirs.set(dir, made);
      made.catch(() => this.#shardDirs.delete(dir));
    }
    return made;
  }

  /** P3's rename into its shard directory; one removed behind our back (by hand) is made again. */
  async #renameIntoShard(tmp: string, final: string): Promise<void> {
    const dir = path.dirname(final);
    await this.#shardDir(dir);
    await cb.rename(tmp, final).catch(async (e) => {
      if (e?.code !== 'ENOENT') throw e;
      this.#shardDirs.delete(dir);
      await this.#shardDir(dir);
      await cb.rename(tmp, final);
    });
  }

  readonly #tmpPrefix = randomBytes(8).toString('hex');
  #tmpSeq = 0;

  /**
   * #temp() of bytes in hand (putMany): the file written at once through file descriptors, not
   * FileHandles (issue 15: about half the CPU per file of fs/promises on this path).
   */
  async #tempOf(source: Buffer): Promise<{ tmp: string; id: string; size: number }> {
    // Unique across the processes and nodes sharing the directory: this store's random prefix and a counter.
    const tmp = path.join(this.tmpDir, `${Date.now()}-${this.#tmpPrefix}-${++this.#tmpSeq}`);
    let id: string;
    let parts: Buffer[];
    if (this.keys) {
      const sealer = new Sealer(this.keys);
      parts = [...sealer.update(source), ...sealer.final()];
      id = sealer.id();
    } else {
      parts = [source];
      id = createHash('sha256').update(source).digest('hex');
    }
    const fd = await cb.open(tmp, 'w', 0o600);
    try {
      for (let k = 0, off = 0; k < parts.length; ) {
        const { bytesWritten: n } = await cb.writev(fd, k === 0 && off === 0 ? parts : [parts[k].subarray(off), ...parts.slice(k + 1)]);
        // A short write: resume after the bytes written.
        off += n;
        while (k < parts.length && off >= parts[k].length) off -= parts[k++].length;
      }
      await cb.fsync(fd);
    } catch (e) {
      await cb.close(fd).catch(() => {});
      await rm(tmp, { force: true });
      throw e;
    }
    await cb.close(fd);
    return { tmp, id, size: source.length };
  }

  /** P1 (store/message-files.ts): a temporary copy, fsynced; its id and size. */
  async #temp(source: Readable | Buffer, opts: { prefix?: Buffer; maxSize?: number }): Promise<{ tmp: string; id: string; size: number }> {
    const tmp = path.join(this.tmpDir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
    const fh = await open(tmp, 'w', 0o600);
    const hash = this.keys ? undefined : createHash('sha256');
    const sealer = this.keys ? new Sealer(this.keys) : undefined;
    let size = 0;
    let exceeded = false;
    const writeAll = async (parts: Buffer[]) => {
      if (parts.length === 1) await fh.write(parts[0]);
      else if (parts.length) await fh.writev(parts);
    };
    const write = async (chunk: Buffer) => {
      size += chunk.length;
      if (opts.maxSize !== undefined && size > opts.maxSize) exceeded = true;
      if (exceeded) return; // keep draining so the protocol layer can answer cleanly
      if (sealer) await writeAll(sealer.update(chunk));
      else {
        hash!.update(chunk);
        await fh.write(chunk);
      }
    };
    try {
      if (opts.prefix) await write(opts.prefix);
      if (Buffer.isBuffer(source)) await write(source);
      else for await (const chunk of source) await write(chunk as Buffer);
      if (exceeded) throw new BlobSizeExceededError(opts.maxSize!);
      if (sealer) await writeAll(sealer.final());
      await fh.sync();
    } catch (e) {
      await fh.close().catch(() => {});
      await rm(tmp, { force: true });
      throw e;
    }
    await fh.close();
    return { tmp, id: sealer ? sealer.id() : hash!.digest('hex'), size };
  }

  private async pin(id: string, token: string): Promise<void> {
    for (let wait = 5; ; wait = Math.min(wait * 2, 250)) {
      const local = this.removals.get(id);
      if (local) {
        await local;
        continue;
      }
      if (await this.pins.pinBlob(id, token, Date.now(), this.pinMs, this.leaseMs)) return;
      await sleep(wait); // a removal claimed by another process or node: it takes milliseconds
    }
  }

  async read(id: string): Promise<Buffer> {
    const bytes = await readFile(this.pathOf(id));
    return isSealed(bytes) ? openBuffer(bytes, this.keys, `message file ${id}`) : bytes;
  }

  stream(id: string, range?: { start: number; end: number }): Readable {
    const file = this.pathOf(id);
    const keys = this.keys;
    // One open file for the whole read: a concurrent put of the same content renaming its copy
    // over this one (or a seal in place) cannot mix two files' bytes.
    async function* bytes(): AsyncGenerator<Buffer> {
      const fh = await open(file, 'r');
      try {
        const head = await readAt(fh, 0, HEADER_SIZE);
        if (!isSealed(head)) {
          yield* fh.createReadStream({ ...range, autoClose: false });
          return;
        }
        const o = openHeader(head, keys, `message file ${id}`);
        const plain = plainSizeOf((await fh.stat()).size, o.chunk);
        yield* openRange(o, plain, (a, b) => readAt(fh, a, b - a), `message file ${id}`, range);
      } finally {
        await fh.close();
      }
    }
    return Readable.from(bytes(), { objectMode: false });
  }

  async size(id: string): Promise<number> {
    const fh = await open(this.pathOf(id), 'r');
    try {
      const head = await readAt(fh, 0, HEADER_SIZE);
      const raw = (await fh.stat()).size;
      return isSealed(head) ? plainSizeOf(raw, head.readUInt32BE(8)) : raw;
    } finally {
      await fh.close();
    }
  }

  async keyState(id: string): Promise<KeyState> {
    const fh = await open(this.pathOf(id), 'r').catch((e) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
    if (!fh) return { kind: 'missing' };
    try {
      const head = await readAt(fh, 0, HEADER_SIZE);
      return isSealed(head) ? { kind: 'sealed', keyIds: headerKeyIds(head) } : { kind: 'plain' };
    } finally {
      await fh.close();
    }
  }

  /**
   * Re-wraps the file's data key under the current KEK (key rotation): only the 160 bytes of the
   * key slots are written, in two fsynced steps (store/sealed.ts), never the content.
   */
  async rewrap(id: string): Promise<'rewrapped' | 'current' | 'plain' | 'missing'> {
    const keys = this.requireKeys();
    const fh = await open(this.pathOf(id), 'r+').catch((e) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
    if (!fh) return 'missing';
    try {
      const head = await readAt(fh, 0, HEADER_SIZE);
      if (!isSealed(head)) return 'plain';
      const steps = rewrapSlots(head, keys, `message file ${id}`);
      if (!steps) return 'current';
      for (const slots of [steps.first, steps.final]) {
        await fh.write(slots, 0, slots.length, SLOTS_OFFSET);
        await fh.sync();
      }
      return 'rewrapped';
    } finally {
      await fh.close();
    }
  }

  /**
   * Seals a plaintext file written before encryption was configured, in place (a sealed copy
   * renamed over it; its id, the SHA-256 of the content, stays: docs/encryption.md). Pinned
   * meanwhile, so that the collector does not remove it under us.
   */
  async seal(id: string): Promise<'sealed' | 'already' | 'missing'> {
    const keys = this.requireKeys();
    const file = this.pathOf(id);
    const token = randomUUID();
    await this.pin(id, token);
    try {
      const plain = await readFile(file).catch((e) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
      if (!plain) return 'missing';
      if (isSealed(plain)) return 'already';
      const tmp = path.join(this.tmpDir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.write(sealBuffer(keys, plain, id).bytes);
        await fh.sync();
      } catch (e) {
        await fh.close().catch(() => {});
        await rm(tmp, { force: true });
        throw e;
      }
      await fh.close();
      await rename(tmp, file);
      await syncDir(path.dirname(file));
      return 'sealed';
    } finally {
      await this.releaser.release(id, token);
    }
  }

  private requireKeys(): KeyRing {
    if (!this.keys) throw new Error('no keyring configured (store.encryption): nothing to seal or re-wrap with');
    return this.keys;
  }

  async removeIfUnreferenced(id: string): Promise<boolean> {
    const file = this.pathOf(id);
    if (this.removals.has(id)) return false;
    let done!: () => void;
    this.removals.set(id, new Promise<void>((r) => (done = r)));
    try {
      // C1: the claim (refused for a pinned, claimed or referenced id).
      const since = Date.now();
      if (!(await this.pins.claimBlobRemoval(id, since, this.leaseMs))) return false;
      // C2: only well inside the claim's lease (a put may take an expired claim over).
      if (Date.now() - since >= this.leaseMs / 2) return false;
      await rm(file, { force: true });
      await syncDir(path.dirname(file), { missingOk: true });
      // C3
      await this.pins.forgetBlobGarbage(id, since);
      return true;
    } finally {
      this.removals.delete(id);
      done();
    }
  }

  async prunePins(): Promise<void> {
    await this.pins.pruneBlobPins(Date.now());
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

/** The callback API of node:fs as promises: lighter than fs/promises' FileHandles (putMany). */
const cb = {
  open: promisify(fs.open) as (file: string, flags: string, mode?: number) => Promise<number>,
  writev: promisify(fs.writev),
  fsync: promisify(fs.fsync),
  close: promisify(fs.close),
  rename: promisify(fs.rename),
};

/** A directory fsynced (a rename into it made durable) through a file descriptor: lighter than a FileHandle. */
async function fsyncDir(dir: string): Promise<void> {
  const fd = await cb.open(dir, 'r');
  try {
    await cb.fsync(fd);
  } finally {
    await cb.close(fd);
  }
}

/** put()'s bytes in hand: `prefix` then `source`, within `maxSize` (else BlobSizeExceededError, as for a stream). */
function bufferWithin(source: Buffer, opts: { prefix?: Buffer; maxSize?: number }): Buffer {
  const size = (opts.prefix?.length ?? 0) + source.length;
  if (opts.maxSize !== undefined && size > opts.maxSize) throw new BlobSizeExceededError(opts.maxSize);
  return opts.prefix ? Buffer.concat([opts.prefix, source], size) : source;
}

/** Files of one putMany() written, renamed or directories synced at once at most. */
const PUT_MANY_PARALLEL = 16;

/** Up to `length` bytes at `position` (fewer at the end of the file). */
async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

async function syncDir(dir: string, opts: { missingOk?: boolean } = {}) {
  const fh = await open(dir, 'r').catch((e) => {
    if (opts.missingOk && e?.code === 'ENOENT') return undefined;
    throw e;
  });
  if (!fh) return; // never created: nothing was removed from it
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
