// Message files inside PostgreSQL (store.blobs.kind = 'postgres'): content-addressed like the
// files of store/blobs.ts, kept as 256 KiB bytea chunks (blob_chunks) under one blob_files row,
// written once. Every node of the operator reads and writes them through the database: no shared
// file system is needed.
//
// A put streams its bytes in, computing the SHA-256 on the way. A message of one chunk (most of
// them) is written by its final statement; a bigger one goes in chunk by chunk, each committed
// under a staging id ('tmp:<epoch ms>:<random>', never a valid blob id), so neither the message
// nor a transaction is held for the time the client takes to send it. The final statement,
// blob_put() (PG migration 2), one transaction under the blob id's advisory lock (blob-pins.ts):
// a removal of the id claimed elsewhere → the put waits and tries again; else INSERT INTO
// blob_files … ON CONFLICT DO NOTHING — the first writer of the content renames its staged chunks
// to the id, a later one drops its own — and the pin. Committed before the put returns, hence
// before the transaction referencing the id (invariant 1).
//
// A removal is one transaction under the same lock: the check of pins, claims and references,
// then the rows (analysis, header row, chunks, file, candidate) go together — no window between a
// decision and the removal, unlike a file system. Staged chunks of a put a crash interrupted are
// removed by cleanTmp (at the collector's start).
//
// With a keyring (store.encryption, docs/encryption.md) the chunks hold a sealed file
// (store/sealed.ts): the put seals while streaming, the id is an HMAC of the plaintext, and
// blob_files.size is the plaintext's size; a read fetches the header with the size, then only
// the byte ranges of the sealed chunks holding the range asked for. Rows written before keep
// working (told apart by their first byte); seal() encrypts one in place.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { KeyRing } from '../keyring.js';
import { BlobSizeExceededError, DEFAULT_PIN_MS, DEFAULT_REMOVAL_LEASE_MS, PinReleaser, sleep, eachLimited, type KeyState, type MessageFiles, type PinTimes, type PutBlob } from '../message-files.js';
import { HEADER_SIZE, headerKeyIds, isSealed, openBuffer, openHeader, openRange, rewrapSlots, sealBuffer, Sealer, SLOTS_OFFSET } from '../sealed.js';
import * as pins from './blob-pins.js';
import type { PgConnection } from './connection.js';

/** Bytes per chunk (shared spec of issue 12). */
export const CHUNK_SIZE = 256 * 1024;
/** Chunks fetched per query when streaming (1 MiB in memory at most). */
const CHUNKS_PER_READ = 4;
const ID = /^[0-9a-f]{64}$/;

function checkId(id: string): string {
  if (!ID.test(id)) throw new Error(`invalid blob id ${JSON.stringify(id)}`);
  return id;
}

/** What fs reports for a missing file, so callers treat both kinds alike. */
function missing(id: string): Error {
  return Object.assign(new Error(`message file ${id} not found in PostgreSQL (blob_files)`), { code: 'ENOENT' });
}

export class PgMessageFiles implements MessageFiles {
  private readonly releaser: PinReleaser;
  private readonly pinMs: number;
  private readonly leaseMs: number;
  private readonly keys?: KeyRing;

  constructor(
    private readonly pg: PgConnection,
    opts: PinTimes & { onError?: (err: unknown) => void; keys?: KeyRing } = {},
  ) {
    this.keys = opts.keys;
    this.pinMs = opts.pinMs ?? DEFAULT_PIN_MS;
    this.leaseMs = opts.removalLeaseMs ?? DEFAULT_REMOVAL_LEASE_MS;
    this.releaser = new PinReleaser({ unpinBlobs: (list) => pins.unpinBlobs(pg, list) }, opts.onError);
  }

  async put(source: Readable | Buffer, opts: { prefix?: Buffer; maxSize?: number } = {}): Promise<PutBlob> {
    const hash = this.keys ? undefined : createHash('sha256');
    const sealer = this.keys ? new Sealer(this.keys) : undefined;
    let size = 0;
    let exceeded = false;
    /** Bytes not yet in a full chunk. */
    let pending: Buffer[] = [];
    let pendingSize = 0;
    let staging: string | undefined;
    let seq = 0;
    const flush = async (chunk: Buffer) => {
      staging ??= `tmp:${Date.now()}:${randomBytes(8).toString('hex')}`;
      await this.pg.query('SELECT blob_stage($1, $2, $3)', [staging, seq++, chunk]);
    };
    const write = async (data: Buffer) => {
      size += data.length;
      if (opts.maxSize !== undefined && size > opts.maxSize) exceeded = true;
      if (exceeded) return; // keep draining so the protocol layer can answer cleanly
      if (sealer) for (const part of sealer.update(data)) await stored(part);
      else {
        hash!.update(data);
        await stored(data);
      }
    };
    /** Bytes as stored (sealed or not), cut into chunks. */
    const stored = async (data: Buffer) => {
      pending.push(data);
      pendingSize += data.length;
      while (pendingSize >= CHUNK_SIZE) {
        const all = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingSize); // no copy of a big buffer's rest
        await flush(all.subarray(0, CHUNK_SIZE));
        pending = [all.subarray(CHUNK_SIZE)];
        pendingSize -= CHUNK_SIZE;
      }
    };
    try {
      if (opts.prefix) await write(opts.prefix);
      if (Buffer.isBuffer(source)) await write(source);
      else for await (const chunk of source) await write(chunk as Buffer);
      if (exceeded) throw new BlobSizeExceededError(opts.maxSize!);
      if (sealer) for (const part of sealer.final()) await stored(part);
      const id = sealer ? sealer.id() : hash!.digest('hex');
      const last = pendingSize > 0 || seq === 0 ? Buffer.concat(pending, pendingSize) : undefined;
      const token = randomUUID();
      await this.commit(id, size, staging, seq, last, token);
      staging = undefined; // renamed or dropped in the commit
      return this.releaser.putBlob(id, size, token);
    } finally {
      if (staging) await this.pg.query('DELETE FROM blob_chunks WHERE blob_id = $1', [staging]).catch(() => {}); // else cleanTmp
    }
  }

  /** put() of each, a few at a time (each its own transaction, as put()); none left pinned on a failure. */
  async putMany(sources: Buffer[]): Promise<PutBlob[]> {
    const puts: PutBlob[] = [];
    try {
      await eachLimited(sources, 8, async (source, k) => {
        puts[k] = await this.put(source);
      });
    } catch (e) {
      for (const p of puts) void p?.release();
      throw e;
    }
    return puts;
  }

  /**
   * The put's final transaction: the file (unless it exists) and the pin, once no removal of the
   * id is claimed. Staged chunks 0..count-1 are under `staging`; `last` (the tail, or the whole
   * of a small message) is written here.
   */
  private async commit(id: string, size: number, staging: string | undefined, count: number, last: Buffer | undefined, token: string): Promise<void> {
    for (let wait = 5; ; wait = Math.min(wait * 2, 250)) {
      // blob_put() (PG migration 2): lock, pin, file written once — one statement, one transaction.
      const [r] = await this.pg.query<{ pinned: boolean }>('SELECT blob_put($1, $2, $3, $4, $5, $6, $7, $8, $9) pinned', [
        id,
        size,
        staging ?? null,
        count,
        last ?? null,
        token,
        Date.now(),
        this.pinMs,
        this.leaseMs,
      ]);
      if (r.pinned) return;
      await sleep(wait); // a removal claimed through a file-system store on the same database (mixed setups)
    }
  }

  async read(id: string): Promise<Buffer> {
    checkId(id);
    const rows = await this.pg.query<{ data: Buffer }>('SELECT data FROM blob_chunks WHERE blob_id = $1 ORDER BY seq', [id]);
    if (rows.length === 0 && !(await this.exists(id))) throw missing(id);
    const bytes = Buffer.concat(rows.map((r) => r.data));
    return isSealed(bytes) ? openBuffer(bytes, this.keys, `message file ${id}`) : bytes;
  }

  private async exists(id: string): Promise<boolean> {
    return (await this.pg.query('SELECT 1 FROM blob_files WHERE blob_id = $1', [id])).length > 0;
  }

  stream(id: string, range?: { start: number; end: number }): Readable {
    checkId(id);
    const keys = this.keys;
    const raw = (r?: { start: number; end: number }) => this.rawStream(id, r);
    // The first bytes and the plaintext size in one round trip; a sealed file is then read by the
    // byte ranges of the chunks holding the range.
    const head = () =>
      this.pg.query<{ size: string | number; head: Buffer | null }>(
        'SELECT f.size, (SELECT substring(data FROM 1 FOR $2) FROM blob_chunks c WHERE c.blob_id = f.blob_id AND c.seq = 0) AS head FROM blob_files f WHERE f.blob_id = $1',
        [id, HEADER_SIZE],
      );
    async function* bytes(): AsyncGenerator<Buffer> {
      const [r] = await head();
      if (!r) throw missing(id);
      if (!r.head || !isSealed(r.head)) {
        yield* raw(range);
        return;
      }
      const o = openHeader(r.head, keys, `message file ${id}`);
      const readRaw = async (a: number, b: number) => {
        const parts: Buffer[] = [];
        for await (const p of raw({ start: a, end: b - 1 })) parts.push(p as Buffer);
        return Buffer.concat(parts);
      };
      yield* openRange(o, Number(r.size), readRaw, `message file ${id}`, range);
    }
    return Readable.from(bytes(), { objectMode: false });
  }

  /** The stored bytes (sealed or not) `range.start`..`range.end` inclusive. */
  private rawStream(id: string, range?: { start: number; end: number }): Readable {
    const pg = this.pg;
    const exists = () => this.exists(id);
    // Inclusive end, as fs.createReadStream; past the end of the file: up to its end.
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    async function* chunks(): AsyncGenerator<Buffer> {
      if (start > end) return;
      // Only the chunks holding the range, and of the first and last only the bytes needed
      // (substring on uncompressed EXTERNAL storage reads just those TOAST slices); one round
      // trip for up to CHUNKS_PER_READ chunks, none for the file's size.
      const lastSeq = Math.floor(end / CHUNK_SIZE);
      for (let seq = Math.floor(start / CHUNK_SIZE); ; seq += CHUNKS_PER_READ) {
        const upto = Math.min(seq + CHUNKS_PER_READ - 1, lastSeq);
        const rows = await pg.query<{ data: Buffer }>(
          `SELECT substring(data FROM greatest($3::bigint - seq::bigint * $5, 0)::int + 1
                              FOR (least($4::bigint + 1 - seq::bigint * $5, $5) - greatest($3::bigint - seq::bigint * $5, 0))::int) AS data
           FROM blob_chunks WHERE blob_id = $1 AND seq >= $2 AND seq <= $6 ORDER BY seq`,
          [id, seq, start, end, CHUNK_SIZE, upto],
        );
        // Nothing at all: a missing file, or a range starting past its end.
        if (rows.length === 0 && seq === Math.floor(start / CHUNK_SIZE) && !(await exists())) throw missing(id);
        for (const r of rows) if (r.data.length) yield r.data;
        if (upto === lastSeq || rows.length < upto - seq + 1) return;
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }

  async size(id: string): Promise<number> {
    const size = await this.pg.one('SELECT size FROM blob_files WHERE blob_id = $1', (r) => r.size as number, checkId(id));
    if (size === undefined) throw missing(id);
    return size;
  }

  async keyState(id: string): Promise<KeyState> {
    checkId(id);
    const [r] = await this.pg.query<{ head: Buffer | null }>(
      'SELECT (SELECT substring(data FROM 1 FOR $2) FROM blob_chunks c WHERE c.blob_id = f.blob_id AND c.seq = 0) AS head FROM blob_files f WHERE f.blob_id = $1',
      [id, HEADER_SIZE],
    );
    if (!r) return { kind: 'missing' };
    return r.head && isSealed(r.head) ? { kind: 'sealed', keyIds: headerKeyIds(r.head) } : { kind: 'plain' };
  }

  /** Key rotation: the slot bytes of chunk 0 rewritten in one transaction (the content is not touched). */
  async rewrap(id: string): Promise<'rewrapped' | 'current' | 'plain' | 'missing'> {
    checkId(id);
    const keys = this.requireKeys();
    return this.pg.tx(async (c) => {
      await pins.lockBlob(c, id);
      const { rows } = await c.query<{ head: Buffer }>('SELECT substring(data FROM 1 FOR $2) AS head FROM blob_chunks WHERE blob_id = $1 AND seq = 0', [id, HEADER_SIZE]);
      if (rows.length === 0) return 'missing';
      const head = rows[0].head;
      if (!isSealed(head)) return 'plain';
      const steps = rewrapSlots(head, keys, `message file ${id}`);
      if (!steps) return 'current';
      // One transaction: the new slot and the old one zeroed are committed together.
      await c.query('UPDATE blob_chunks SET data = overlay(data PLACING $2 FROM $3) WHERE blob_id = $1 AND seq = 0', [id, steps.final, SLOTS_OFFSET + 1]);
      return 'rewrapped';
    });
  }

  /** Seals a plaintext file in place: its chunks replaced in one transaction under the id's lock. */
  async seal(id: string): Promise<'sealed' | 'already' | 'missing'> {
    checkId(id);
    const keys = this.requireKeys();
    return this.pg.tx(async (c) => {
      await pins.lockBlob(c, id);
      if ((await c.query('SELECT 1 FROM blob_files WHERE blob_id = $1', [id])).rows.length === 0) return 'missing';
      const { rows } = await c.query<{ data: Buffer }>('SELECT data FROM blob_chunks WHERE blob_id = $1 ORDER BY seq', [id]);
      const plain = Buffer.concat(rows.map((r) => r.data));
      if (isSealed(plain)) return 'already';
      const sealed = sealBuffer(keys, plain, id).bytes;
      await c.query('DELETE FROM blob_chunks WHERE blob_id = $1', [id]);
      for (let seq = 0; seq * CHUNK_SIZE < sealed.length; seq++)
        await c.query('INSERT INTO blob_chunks (blob_id, seq, data) VALUES ($1, $2, $3)', [id, seq, sealed.subarray(seq * CHUNK_SIZE, (seq + 1) * CHUNK_SIZE)]);
      return 'sealed';
    });
  }

  private requireKeys(): KeyRing {
    if (!this.keys) throw new Error('no keyring configured (store.encryption): nothing to seal or re-wrap with');
    return this.keys;
  }

  async *ids(): AsyncGenerator<string> {
    let after = '';
    for (;;) {
      const rows = await this.pg.query<{ blob_id: string }>('SELECT blob_id FROM blob_files WHERE blob_id > $1 ORDER BY blob_id LIMIT 1000', [after]);
      for (const r of rows) yield r.blob_id;
      if (rows.length < 1000) return;
      after = rows[rows.length - 1].blob_id;
    }
  }

  async removeIfUnreferenced(id: string): Promise<boolean> {
    checkId(id);
    const now = Date.now();
    return this.pg.tx(async (c) => {
      await pins.lockBlob(c, id);
      if ((await pins.removalCheck(c, id, now, this.leaseMs)) !== 'free') return false;
      for (const table of ['blob_meta', 'search_headers', 'blob_chunks', 'blob_files', 'blob_garbage']) await c.query(`DELETE FROM ${table} WHERE blob_id = $1`, [id]);
      return true;
    });
  }

  async cleanTmp(olderThanMs: number): Promise<number> {
    const before = Date.now() - olderThanMs;
    const [r] = await this.pg.query<{ n: number }>(
      // 'tmp:' ≤ staging ids < 'tmp;' in the "C" collation: a range of the primary key.
      "WITH d AS (DELETE FROM blob_chunks WHERE blob_id >= 'tmp:' AND blob_id < 'tmp;' AND split_part(blob_id, ':', 2)::bigint < $1 RETURNING blob_id) SELECT count(DISTINCT blob_id) n FROM d",
      [before],
    );
    return r.n;
  }

  async prunePins(): Promise<void> {
    await pins.pruneBlobPins(this.pg, Date.now());
  }
}
