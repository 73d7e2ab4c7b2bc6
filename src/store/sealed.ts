// The sealed message-file format (encryption at rest, docs/encryption.md): what both places that
// keep message files (store/blobs.ts, store/postgres/message-files.ts) write when a keyring is
// configured, and read back. Pure: no I/O, the callers read and write the bytes.
//
// Layout (all integers big-endian):
//   0   8  magic "\0CDCENC" + version 0x01 (a message never starts with NUL: legacy plaintext
//          files are told apart by their first byte)
//   8   4  plaintext bytes per chunk (C = 65536)
//   12  16 salt, random per file
//   28  2 × 80  two key slots: generation u32 | key id (16 bytes, NUL padded) | nonce (12) |
//          the data key wrapped by that KEK (AES-256-GCM: 32 bytes + 16-byte tag). AAD: bytes
//          0–27, the generation and the key id. An all-zero slot is empty.
//   188 …  the chunks: AES-256-GCM under the file's random data key; chunk i (0-based) holds C
//          plaintext bytes (the last one 0 to C) + its 16-byte tag; nonce = i (u64) ‖ final flag
//          (u32, 1 on the last chunk only), AAD = bytes 0–27. The index in the nonce refuses
//          reordered chunks, the final flag a truncation at a chunk border, the tag any altered
//          byte (the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár, 2015).
//
// Why the wrapped key lives in the file's header and not in a store row: a file then describes
// itself — two puts of the same content (content addressing) each rename a complete, readable
// file, PostgreSQL's first writer wins, the removal handshake (store/message-files.ts) and the
// orphan scan need no second row to keep consistent, and a backup of the files with the keyring
// is restorable on its own. Re-wrapping (key rotation) rewrites only the 160 slot bytes, never
// the content: the new wrap goes into the slot not in use (generation + 1) and is made durable
// before the old slot is zeroed, so a crash in between leaves two valid slots, never none, and
// once done no copy of the data key wrapped by the old KEK remains in the file.
//
// The size of the plaintext follows from the size of the file (no read needed): with H = 188 and
// R the file's size, n = ceil((R − H) / (C + 16)) chunks and R − H − 16·n plaintext bytes.
import { createCipheriv, createDecipheriv, createHmac, randomBytes, type Hmac } from 'node:crypto';
import type { KeyRing } from './keyring.js';

export const MAGIC = Buffer.from([0x00, 0x43, 0x44, 0x43, 0x45, 0x4e, 0x43, 0x01]);
export const PLAIN_CHUNK = 65536;
const TAG = 16;
const FIXED = 28;
const SLOT = 80;
const SLOT_ID = 16;
export const HEADER_SIZE = FIXED + 2 * SLOT;
/** Offset and length of the two key slots (what a re-wrap rewrites). */
export const SLOTS_OFFSET = FIXED;
export const SLOTS_SIZE = 2 * SLOT;

/** A sealed file that cannot be opened or whose bytes fail authentication: never wrong bytes. */
export class SealedFileError extends Error {
  override name = 'SealedFileError';
}

export const isSealed = (head: Buffer): boolean => head.length >= MAGIC.length && head.subarray(0, MAGIC.length).equals(MAGIC);

/** Chunks of a sealed file with `plain` plaintext bytes (at least one, possibly empty). */
export const chunkCount = (plain: number, c = PLAIN_CHUNK): number => Math.max(1, Math.ceil(plain / c));
/** The size of the sealed file holding `plain` bytes. */
export const sealedSize = (plain: number, c = PLAIN_CHUNK): number => HEADER_SIZE + plain + TAG * chunkCount(plain, c);
/** The plaintext size of a sealed file of `raw` bytes. */
export function plainSizeOf(raw: number, c = PLAIN_CHUNK): number {
  const rem = raw - HEADER_SIZE;
  if (rem < TAG) throw new SealedFileError(`sealed file of ${raw} bytes is shorter than its header and one chunk: truncated`);
  const n = Math.ceil(rem / (c + TAG));
  return rem - TAG * n;
}

function chunkNonce(i: number, final: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(BigInt(i), 0);
  n.writeUInt32BE(final ? 1 : 0, 8);
  return n;
}

function slotAad(fixed: Buffer, gen: number, id: Buffer): Buffer {
  const g = Buffer.alloc(4);
  g.writeUInt32BE(gen);
  return Buffer.concat([fixed, g, id]);
}

function slotId(id: string): Buffer {
  const b = Buffer.alloc(SLOT_ID);
  b.write(id, 'latin1');
  return b;
}

/** The 80 bytes of a slot wrapping `dataKey` under `kek`. */
function wrapSlot(fixed: Buffer, gen: number, kekId: string, kek: Buffer, dataKey: Buffer): Buffer {
  const id = slotId(kekId);
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', kek, nonce);
  c.setAAD(slotAad(fixed, gen, id));
  const wrapped = Buffer.concat([c.update(dataKey), c.final()]);
  const g = Buffer.alloc(4);
  g.writeUInt32BE(gen);
  return Buffer.concat([g, id, nonce, wrapped, c.getAuthTag()]);
}

interface Slot {
  index: 0 | 1;
  gen: number;
  keyId: string;
}

function readSlots(header: Buffer): (Slot & { raw: Buffer })[] {
  const out: (Slot & { raw: Buffer })[] = [];
  for (const index of [0, 1] as const) {
    const raw = header.subarray(FIXED + index * SLOT, FIXED + (index + 1) * SLOT);
    const gen = raw.readUInt32BE(0);
    if (gen === 0) continue;
    const keyId = raw.subarray(4, 4 + SLOT_ID).toString('latin1').replace(/\0+$/, '');
    out.push({ index, gen, keyId, raw });
  }
  return out.sort((a, b) => b.gen - a.gen);
}

/** An opened header: the data key and what the chunks need. */
export interface Opened {
  dataKey: Buffer;
  fixed: Buffer;
  chunk: number;
  /** The slot the data key came from. */
  slot: Slot;
  /** Every slot in use (a re-wrap interrupted by a crash leaves two). */
  slots: Slot[];
}

/** The key ids a sealed header's slots name, without unwrapping (keys status). */
export function headerKeyIds(header: Buffer): string[] {
  if (!isSealed(header) || header.length < HEADER_SIZE) throw new SealedFileError('not a sealed header');
  return readSlots(header).map((s) => s.keyId);
}

/** Unwraps the data key from the newest slot this keyring can open. `what` names the file in errors. */
export function openHeader(header: Buffer, keys: KeyRing | undefined, what: string): Opened {
  if (!isSealed(header) || header.length < HEADER_SIZE) throw new SealedFileError(`${what}: not a sealed message file, or its header is truncated`);
  if (!keys) throw new SealedFileError(`${what} is encrypted but no key is configured (store.encryption.keyFile or keyCommand, docs/encryption.md)`);
  const fixed = Buffer.from(header.subarray(0, FIXED));
  const chunk = fixed.readUInt32BE(8);
  if (chunk < 1024 || chunk > 16 << 20) throw new SealedFileError(`${what}: chunk size ${chunk} out of range: altered header`);
  const slots = readSlots(header);
  const problems: string[] = [];
  for (const s of slots) {
    const kek = keys.get(s.keyId);
    if (!kek) {
      problems.push(`key ${JSON.stringify(s.keyId)} is not in the keyring`);
      continue;
    }
    try {
      const d = createDecipheriv('aes-256-gcm', kek.key, s.raw.subarray(4 + SLOT_ID, 4 + SLOT_ID + 12));
      d.setAAD(slotAad(fixed, s.gen, s.raw.subarray(4, 4 + SLOT_ID)));
      d.setAuthTag(s.raw.subarray(64, 80));
      const dataKey = Buffer.concat([d.update(s.raw.subarray(32, 64)), d.final()]);
      return { dataKey, fixed, chunk, slot: { index: s.index, gen: s.gen, keyId: s.keyId }, slots: slots.map(({ index, gen, keyId }) => ({ index, gen, keyId })) };
    } catch {
      problems.push(`the data key wrapped by ${s.keyId} fails authentication (altered header, or another key under that id)`);
    }
  }
  throw new SealedFileError(`${what}: cannot unwrap its data key: ${problems.join('; ') || 'no key slot in use (altered header)'}`);
}

/**
 * The new slot bytes (offset SLOTS_OFFSET, SLOTS_SIZE long) re-wrapping the file's data key under
 * the keyring's current KEK, the old slot zeroed; undefined when it is wrapped by the current KEK
 * alone already. Callers needing crash safety on a file write it in two steps (rewrapSteps).
 */
export function rewrapSlots(header: Buffer, keys: KeyRing, what: string): { first: Buffer; final: Buffer } | undefined {
  const o = openHeader(header, keys, what);
  if (o.slot.keyId === keys.currentId && o.slots.length === 1) return undefined;
  const slots = Buffer.from(header.subarray(SLOTS_OFFSET, SLOTS_OFFSET + SLOTS_SIZE));
  let target: 0 | 1 = o.slot.index === 0 ? 1 : 0;
  let gen = o.slot.gen;
  if (o.slot.keyId !== keys.currentId) {
    // The new wrap in the other slot, one generation up.
    gen = o.slot.gen + 1;
    wrapSlot(o.fixed, gen, keys.currentId, keys.current.key, o.dataKey).copy(slots, target * SLOT);
  } else target = o.slot.index; // wrapped by the current key already: only the stale slot goes
  const first = Buffer.from(slots);
  slots.fill(0, (1 - target) * SLOT, (2 - target) * SLOT);
  return { first, final: slots };
}

/**
 * Seals a stream of plaintext: update() returns the bytes to write (the header first), final()
 * the last chunk; id() is the keyed content address (HMAC-SHA-256 under the keyring's address
 * key, hex), or the one given (sealing a legacy file in place keeps its id).
 */
export class Sealer {
  private readonly dataKey = randomBytes(32);
  private readonly fixed: Buffer;
  private readonly mac?: Hmac;
  private header?: Buffer;
  private pending: Buffer[] = [];
  private pendingSize = 0;
  private index = 0;

  constructor(
    keys: KeyRing,
    private readonly fixedId?: string,
  ) {
    this.fixed = Buffer.alloc(FIXED);
    MAGIC.copy(this.fixed, 0);
    this.fixed.writeUInt32BE(PLAIN_CHUNK, 8);
    randomBytes(16).copy(this.fixed, 12);
    this.header = Buffer.concat([this.fixed, wrapSlot(this.fixed, 1, keys.currentId, keys.current.key, this.dataKey), Buffer.alloc(SLOT)]);
    if (!fixedId) this.mac = createHmac('sha256', keys.addressKey());
  }

  private seal(plain: Buffer, final: boolean): Buffer {
    const c = createCipheriv('aes-256-gcm', this.dataKey, chunkNonce(this.index++, final));
    c.setAAD(this.fixed);
    const a = c.update(plain);
    const b = c.final();
    return Buffer.concat([a, b, c.getAuthTag()]);
  }

  update(plain: Buffer): Buffer[] {
    const out: Buffer[] = [];
    if (this.header) {
      out.push(this.header);
      this.header = undefined;
    }
    this.mac?.update(plain);
    this.pending.push(plain);
    this.pendingSize += plain.length;
    // Only chunks known not to be the last: the final flag is bound in.
    if (this.pendingSize > PLAIN_CHUNK) {
      let all = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingSize);
      while (all.length > PLAIN_CHUNK) {
        out.push(this.seal(all.subarray(0, PLAIN_CHUNK), false));
        all = all.subarray(PLAIN_CHUNK);
      }
      this.pending = [all];
      this.pendingSize = all.length;
    }
    return out;
  }

  final(): Buffer[] {
    const out: Buffer[] = [];
    if (this.header) {
      out.push(this.header);
      this.header = undefined;
    }
    out.push(this.seal(Buffer.concat(this.pending, this.pendingSize), true));
    this.pending = [];
    this.pendingSize = 0;
    return out;
  }

  id(): string {
    return this.fixedId ?? this.mac!.digest('hex');
  }
}

/** The whole sealed file `plain` in one buffer (tests, sealing a legacy file). */
export function sealBuffer(keys: KeyRing, plain: Buffer, fixedId?: string): { id: string; bytes: Buffer } {
  const s = new Sealer(keys, fixedId);
  const parts = [...s.update(plain), ...s.final()];
  return { id: s.id(), bytes: Buffer.concat(parts) };
}

/** Chunks decrypted per read of the underlying bytes (1 MiB of plaintext at most in memory). */
const CHUNKS_PER_READ = 16;

/**
 * The plaintext bytes `start`..`end` (inclusive, as fs.createReadStream; an end past the file is
 * its end) of a sealed file of `plainSize` bytes, reading through `readRaw(start, endExclusive)`
 * only the chunks that hold the range, a batch at a time. Throws SealedFileError on any chunk that
 * fails authentication (nothing of it is yielded).
 */
export async function* openRange(
  o: Opened,
  plainSize: number,
  readRaw: (start: number, endExclusive: number) => Promise<Buffer>,
  what: string,
  range?: { start?: number; end?: number },
): AsyncGenerator<Buffer> {
  const start = range?.start ?? 0;
  const end = Math.min(range?.end ?? Infinity, plainSize - 1);
  if (start > end) return;
  const c = o.chunk;
  const n = chunkCount(plainSize, c);
  const lastLen = plainSize - (n - 1) * c;
  for (let first = Math.floor(start / c); first <= Math.floor(end / c); first += CHUNKS_PER_READ) {
    const last = Math.min(first + CHUNKS_PER_READ - 1, Math.floor(end / c));
    const rawStart = HEADER_SIZE + first * (c + TAG);
    const rawEnd = HEADER_SIZE + last * (c + TAG) + (last === n - 1 ? lastLen : c) + TAG;
    const raw = await readRaw(rawStart, rawEnd);
    if (raw.length !== rawEnd - rawStart) throw new SealedFileError(`${what}: truncated (chunk ${first}–${last} short)`);
    for (let i = first; i <= last; i++) {
      const off = (i - first) * (c + TAG);
      const len = i === n - 1 ? lastLen : c;
      const d = createDecipheriv('aes-256-gcm', o.dataKey, chunkNonce(i, i === n - 1));
      d.setAAD(o.fixed);
      d.setAuthTag(raw.subarray(off + len, off + len + TAG));
      let plain: Buffer;
      try {
        plain = Buffer.concat([d.update(raw.subarray(off, off + len)), d.final()]);
      } catch {
        throw new SealedFileError(`${what}: chunk ${i} of ${n} fails authentication: the file was altered, truncated or reordered`);
      }
      const from = i === Math.floor(start / c) ? start - i * c : 0;
      const to = i === Math.floor(end / c) ? end - i * c + 1 : len;
      if (to > from) yield from === 0 && to === len ? plain : plain.subarray(from, to);
    }
  }
}

/** The whole plaintext of a sealed file held in memory. */
export async function openBuffer(bytes: Buffer, keys: KeyRing | undefined, what: string): Promise<Buffer> {
  const o = openHeader(bytes.subarray(0, HEADER_SIZE), keys, what);
  const size = plainSizeOf(bytes.length, o.chunk);
  const parts: Buffer[] = [];
  for await (const p of openRange(o, size, async (a, b) => bytes.subarray(a, b), what)) parts.push(p);
  return Buffer.concat(parts, size);
}
