// Content-addressed message blobs on disk (dataDir/blobs/ab/<sha256>). A blob is written and
// fsynced *before* the database transaction that references it commits, so an acknowledged
// message is always complete on disk; a crash in between leaves only an unreferenced file.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync } from 'node:fs';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
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

export class BlobStore {
  private readonly tmpDir: string;
  constructor(readonly dir: string) {
    this.tmpDir = path.join(dir, 'tmp');
    mkdirSync(this.tmpDir, { recursive: true });
  }

  pathOf(id: string): string {
    if (!/^[0-9a-f]{64}$/.test(id)) throw new Error(`invalid blob id ${JSON.stringify(id)}`);
    return path.join(this.dir, id.slice(0, 2), id);
  }

  /**
   * Writes `prefix` then the stream's bytes; returns the blob id. Throws BlobSizeExceededError
   * (after draining the stream) when the content exceeds `maxSize`.
   */
  async put(source: Readable | Buffer, opts: { prefix?: Buffer; maxSize?: number } = {}): Promise<BlobInfo> {
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
    const final = this.pathOf(id);
    mkdirSync(path.dirname(final), { recursive: true });
    await rename(tmp, final);
    await syncDir(path.dirname(final));
    return { id, size };
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

  async remove(id: string): Promise<void> {
    await rm(this.pathOf(id), { force: true });
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
