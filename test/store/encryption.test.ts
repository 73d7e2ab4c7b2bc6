// Encryption at rest of message files (docs/encryption.md, store/sealed.ts), on both places that
// keep them: files under a directory (BlobStore, pins in SQLite) and PostgreSQL bytea
// (PgMessageFiles; skipped off CI when no server answers). For each: round trips at the chunk
// borders, ranges across them, nothing of the content in the stored bytes, dedup by a keyed id,
// tamper detection (a flipped byte anywhere, truncation, reordered chunks: an error, never wrong
// bytes), key rotation (re-wrap without touching the content, then the old KEK retired),
// plaintext files written before encryption still read and sealed in place, the keyring's file
// permissions and key command.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { BlobStore } from '../../src/store/blobs.js';
import { KeyRing, KeyRingError, readKeyFile, runKeyCommand, writeKeyFile } from '../../src/store/keyring.js';
import type { MessageFiles } from '../../src/store/message-files.js';
import { CHUNK_SIZE, PgMessageFiles } from '../../src/store/postgres/message-files.js';
import { HEADER_SIZE, PLAIN_CHUNK, SealedFileError } from '../../src/store/sealed.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { Rng } from '../fuzz/rng.js';
import { tempDir } from '../helpers.js';
import { pgMailFixture, type PgOperator } from '../support/pg-mail.js';

const collect = async (s: Readable) => {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
};
const pieces = (b: Buffer, r: Rng) => {
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; ) {
    const n = Math.min(b.length - i, 1 + r.int(100_000));
    parts.push(b.subarray(i, i + n));
    i += n;
  }
  return Readable.from(parts);
};
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** One place holding message files, with access to the stored bytes. */
interface Backend {
  files(keys: KeyRing | undefined): MessageFiles;
  raw(id: string): Promise<Buffer>;
  setRaw(id: string, bytes: Buffer): Promise<void>;
}

const { dir, cleanup } = tempDir('caducee-encryption-');
after(cleanup);
const sqlite = SqliteStore.open(path.join(dir, 'db.sqlite'));
after(() => sqlite.close());
const blobDir = path.join(dir, 'blobs');

const filesBackend: Backend = {
  files: (keys) => new BlobStore(blobDir, sqlite, { pinMs: 0, keys }),
  raw: (id) => readFile(path.join(blobDir, id.slice(0, 2), id)),
  setRaw: (id, bytes) => writeFile(path.join(blobDir, id.slice(0, 2), id), bytes),
};

const fx = await pgMailFixture();
const pgSkip = 'skip' in fx ? fx.skip : false;
if (!('skip' in fx)) after(() => fx.close());
const F = ('skip' in fx ? undefined : await fx.operator()) as PgOperator;
const pgBackend: Backend = {
  files: (keys) => new PgMessageFiles(F.s.connection, { pinMs: 0, keys }),
  async raw(id) {
    const rows = await F.rows('SELECT data FROM blob_chunks WHERE blob_id = $1 ORDER BY seq', [id]);
    return Buffer.concat(rows.map((r) => r.data));
  },
  async setRaw(id, bytes) {
    await F.rows('DELETE FROM blob_chunks WHERE blob_id = $1', [id]);
    for (let seq = 0; seq * CHUNK_SIZE < bytes.length || seq === 0; seq++)
      await F.rows('INSERT INTO blob_chunks (blob_id, seq, data) VALUES ($1, $2, $3)', [id, seq, bytes.subarray(seq * CHUNK_SIZE, (seq + 1) * CHUNK_SIZE)]);
  },
};

const MARK = 'XQZMARKER-encrypt-7731';

for (const [name, B, skip] of [
  ['files', filesBackend, false],
  ['PostgreSQL bytea', pgBackend, pgSkip],
] as const) {
  test(`${name}: round trip at the chunk borders, ranges, a keyed id, no plaintext stored`, { skip }, async () => {
    const keys = KeyRing.generate();
    const files = B.files(keys);
    const r = new Rng(7);
    for (const n of [0, 1, PLAIN_CHUNK - 1, PLAIN_CHUNK, PLAIN_CHUNK + 1, 3 * PLAIN_CHUNK, 2_500_001]) {
      // Text with the marker at the start, across the first border and at the end.
      const bytes = Buffer.alloc(n, 'a');
      for (const at of [0, PLAIN_CHUNK - 5, n - MARK.length]) if (at >= 0 && at + MARK.length <= n) bytes.write(MARK, at);
      const put = n % 2 ? await files.put(bytes) : await files.put(pieces(bytes, r));
      await put.release();
      assert.equal(put.size, n);
      assert.notEqual(put.id, sha(bytes), `${n} B: the id is not the content's SHA-256`);
      assert.match(put.id, /^[0-9a-f]{64}$/);
      assert.equal(await files.size(put.id), n, `${n} B: size`);
      assert.ok((await files.read(put.id)).equals(bytes), `${n} B read`);
      assert.ok((await collect(files.stream(put.id))).equals(bytes), `${n} B streamed`);
      const raw = await B.raw(put.id);
      assert.equal(raw.includes(MARK), false, `${n} B: the marker is not in the stored bytes`);
      // Nor in base64 (the three alignments: the characters fixed by the marker alone).
      for (const k of [0, 1, 2]) {
        const b64 = Buffer.concat([Buffer.alloc(k), Buffer.from(MARK)]).toString('base64').slice([0, 2, 3][k], Math.floor((k + MARK.length) / 3) * 4);
        assert.equal(raw.includes(b64), false, `${n} B: the marker's base64 (alignment ${k}) is not in the stored bytes`);
      }
      assert.equal(raw.includes(Buffer.alloc(64, 'a')), false, `${n} B: no run of the plaintext either`);
      for (let k = 0; k < 20 && n > 0; k++) {
        const start = r.int(n);
        const end = Math.min(n - 1, start + r.int(3 * PLAIN_CHUNK));
        assert.ok((await collect(files.stream(put.id, { start, end }))).equals(bytes.subarray(start, end + 1)), `${n} B range ${start}-${end}`);
      }
      // Past the end: up to the end, as fs.createReadStream.
      assert.ok((await collect(files.stream(put.id, { start: Math.max(0, n - 3), end: n + 100 }))).equals(bytes.subarray(Math.max(0, n - 3))));
      assert.equal((await files.keyState(put.id)).kind, 'sealed');
    }
    // A prefix is content; the same content twice is one file (dedup by the keyed id).
    const a = await files.put(Readable.from([Buffer.from('body\r\n')]), { prefix: Buffer.from('Received: x\r\n') });
    const b = await files.put(Buffer.from('Received: x\r\nbody\r\n'));
    await a.release();
    await b.release();
    assert.equal(a.id, b.id);
    assert.equal((await files.read(a.id)).toString(), 'Received: x\r\nbody\r\n');
    // Another keyring addresses the same content elsewhere (the id is keyed).
    const other = await B.files(KeyRing.generate()).put(Buffer.from('Received: x\r\nbody\r\n'));
    await other.release();
    assert.notEqual(other.id, a.id);
  });

  test(`${name}: a flipped byte, a truncation, swapped chunks: a clear error, never wrong bytes`, { skip }, async () => {
    const keys = KeyRing.generate();
    const files = B.files(keys);
    const bytes = new Rng(3).bytes(3 * PLAIN_CHUNK + 1000);
    const put = await files.put(bytes);
    await put.release();
    const good = await B.raw(put.id);
    const expectFail = async (what: string, range?: { start: number; end: number }) => {
      await assert.rejects(files.read(put.id), SealedFileError, `${what}: read`);
      await assert.rejects(collect(files.stream(put.id, range)), SealedFileError, `${what}: stream`);
    };
    // Header (salt, chunk size), both slot fields, a chunk's body, a tag, the last byte.
    for (const at of [13, 9, HEADER_SIZE - 100, HEADER_SIZE + 5, HEADER_SIZE + PLAIN_CHUNK + 3, HEADER_SIZE + 2 * (PLAIN_CHUNK + 16) + 7, good.length - 1]) {
      const bad = Buffer.from(good);
      bad[at] ^= 0x01;
      await B.setRaw(put.id, bad);
      const inChunk = at >= HEADER_SIZE ? Math.floor((at - HEADER_SIZE) / (PLAIN_CHUNK + 16)) : 0;
      await expectFail(`byte ${at} flipped`, { start: inChunk * PLAIN_CHUNK, end: inChunk * PLAIN_CHUNK + 10 });
    }
    // A range not touching the altered chunk still reads (the chunks are independent).
    const bad = Buffer.from(good);
    bad[HEADER_SIZE + 2 * (PLAIN_CHUNK + 16) + 7] ^= 0x01;
    await B.setRaw(put.id, bad);
    assert.ok((await collect(files.stream(put.id, { start: 10, end: 20 }))).equals(bytes.subarray(10, 21)));
    // Truncated at a chunk border (the new last chunk was not sealed as final), and in a chunk.
    await B.setRaw(put.id, good.subarray(0, HEADER_SIZE + 3 * (PLAIN_CHUNK + 16)));
    await expectFail('truncated at a border');
    await B.setRaw(put.id, good.subarray(0, good.length - 5));
    await expectFail('truncated inside the last chunk');
    // Chunks 0 and 1 swapped.
    const c0 = good.subarray(HEADER_SIZE, HEADER_SIZE + PLAIN_CHUNK + 16);
    const c1 = good.subarray(HEADER_SIZE + PLAIN_CHUNK + 16, HEADER_SIZE + 2 * (PLAIN_CHUNK + 16));
    await B.setRaw(put.id, Buffer.concat([good.subarray(0, HEADER_SIZE), c1, c0, good.subarray(HEADER_SIZE + 2 * (PLAIN_CHUNK + 16))]));
    await expectFail('chunks swapped', { start: 0, end: 100 });
    // Another file's key slots: the wrap is bound to the file's salt.
    const o = await files.put(Buffer.from('another'));
    await o.release();
    const swapped = Buffer.from(good);
    (await B.raw(o.id)).copy(swapped, 28, 28, HEADER_SIZE);
    await B.setRaw(put.id, swapped);
    await expectFail('key slots of another file');
    // Put right back: readable again.
    await B.setRaw(put.id, good);
    assert.ok((await files.read(put.id)).equals(bytes));
    // Without the keyring: refused with what to configure.
    await assert.rejects(B.files(undefined).read(put.id), /encrypted but no key is configured \(store\.encryption/);
  });

  test(`${name}: rotation re-wraps without touching the content; the old KEK can then go`, { skip }, async () => {
    const k1 = KeyRing.generate();
    const before = B.files(k1);
    const texts = [Buffer.from(`Subject: ${MARK}\r\n\r\nsmall\r\n`), new Rng(5).bytes(PLAIN_CHUNK * 2 + 17)];
    const ids: string[] = [];
    for (const t of texts) {
      const p = await before.put(t);
      await p.release();
      ids.push(p.id);
    }
    const k2 = k1.withNewCurrent();
    assert.notEqual(k2.currentId, k1.currentId);
    const during = B.files(k2);
    for (const id of ids) {
      const raw = await B.raw(id);
      assert.deepEqual((await during.keyState(id)) as unknown, { kind: 'sealed', keyIds: [k1.currentId] });
      assert.equal(await during.rewrap(id), 'rewrapped');
      assert.equal(await during.rewrap(id), 'current', 'a second run has nothing to do');
      assert.deepEqual((await during.keyState(id)) as unknown, { kind: 'sealed', keyIds: [k2.currentId] });
      const after = await B.raw(id);
      assert.equal(after.length, raw.length);
      assert.ok(after.subarray(HEADER_SIZE).equals(raw.subarray(HEADER_SIZE)), 'the chunks are untouched');
      assert.ok(after.subarray(0, 28).equals(raw.subarray(0, 28)));
    }
    // The old KEK retired: everything still reads; the old keyring alone no longer does.
    const retired = k2.without(k1.currentId);
    const now = B.files(retired);
    for (const [i, id] of ids.entries()) assert.ok((await now.read(id)).equals(texts[i]));
    await assert.rejects(B.files(k1).read(ids[0]), /key "k[0-9a-f]+" is not in the keyring/);
    // New messages are sealed under the new key.
    const p = await now.put(Buffer.from('after rotation'));
    await p.release();
    assert.deepEqual((await now.keyState(p.id)) as unknown, { kind: 'sealed', keyIds: [retired.currentId] });
    assert.throws(() => retired.without(retired.currentId), /is the current key: rotate first/);
  });

  test(`${name}: plaintext files written before encryption read as before, and are sealed in place`, { skip }, async () => {
    const plain = B.files(undefined);
    const text = Buffer.from(`Subject: ${MARK}\r\n\r\n${MARK} in the body\r\n`);
    const p = await plain.put(text);
    await p.release();
    assert.equal(p.id, sha(text), 'legacy ids: SHA-256');
    const keys = KeyRing.generate();
    const files = B.files(keys);
    assert.ok((await files.read(p.id)).equals(text));
    assert.ok((await collect(files.stream(p.id, { start: 9, end: 20 }))).equals(text.subarray(9, 21)));
    assert.equal(await files.size(p.id), text.length);
    assert.deepEqual((await files.keyState(p.id)) as unknown, { kind: 'plain' });
    assert.equal(await files.rewrap(p.id), 'plain');
    assert.equal(await files.seal(p.id), 'sealed');
    assert.equal(await files.seal(p.id), 'already');
    assert.equal((await B.raw(p.id)).includes(MARK), false);
    assert.ok((await files.read(p.id)).equals(text));
    assert.equal(await files.size(p.id), text.length);
    assert.equal(await files.seal('0'.repeat(64)), 'missing');
  });
}

test('keyring: key file refused unless 0600, a regular file of the service user; keys init never overwrites; key command without a shell', async () => {
  const file = path.join(dir, 'keys', 'caducee-keyring.json');
  const ring = KeyRing.generate();
  writeKeyFile(file, ring, { exclusive: true });
  assert.throws(() => writeKeyFile(file, KeyRing.generate(), { exclusive: true }), /exists already; it is never overwritten/);
  const read = readKeyFile(file);
  assert.equal(read.currentId, ring.currentId);
  assert.ok(read.current.key.equals(ring.current.key));
  chmodSync(file, 0o640);
  assert.throws(() => readKeyFile(file), (e: any) => e instanceof KeyRingError && /has mode 0640, readable or writable by other local users: run `chmod 600 /.test(e.message));
  chmodSync(file, 0o600);
  const link = path.join(dir, 'keys', 'link.json');
  symlinkSync(file, link);
  assert.throws(() => readKeyFile(link), /is a symbolic link/);
  assert.throws(() => readKeyFile(path.join(dir, 'keys', 'none.json')), /does not exist: create it with `caducee keys init`/);
  // Rotation keeps the old key for unwrapping.
  writeKeyFile(file, read.withNewCurrent());
  const rotated = readKeyFile(file);
  assert.equal(rotated.keys.length, 2);
  assert.ok(rotated.get(ring.currentId));
  assert.equal((readFileSync(file, 'utf8').match(/"key"/g) ?? []).length, 2);
  // A broken file names itself, never a key.
  writeFileSync(path.join(dir, 'keys', 'bad.json'), '{"format":"caducee-keyring/1","current":"x","keys":[{"id":"x","key":"AAAA"}]}', { mode: 0o600 });
  assert.throws(() => readKeyFile(path.join(dir, 'keys', 'bad.json')), /bad\.json: key x: 32 bytes expected, got 3/);
  // keyCommand: argv run as is — a ';' or '$(...)' in an argument is no shell syntax.
  const script = path.join(dir, 'keys', 'print.js');
  writeFileSync(script, `try { process.stdout.write(require('fs').readFileSync(process.argv[2], 'utf8')) } catch { process.exit(1) }`);
  const fromCommand = runKeyCommand([process.execPath, script, file]);
  assert.equal(fromCommand.currentId, rotated.currentId);
  assert.throws(() => runKeyCommand([process.execPath, script, `${file}; echo $(id)`]), /the key command .* failed: exit status 1/);
  assert.throws(() => runKeyCommand([path.join(dir, 'no-such-command')]), /failed: ENOENT/);
});
