// Message files as chunked bytea in PostgreSQL (PgMessageFiles), on a real server: round trips at
// the chunk borders, ranges across them, content addressing (a duplicate is written once), the
// size limit, interrupted puts, and put against removal of the same content on two "nodes"
// (two stores, two PgMessageFiles on one database).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { after, test } from 'node:test';
import { Rng } from '../../../test/fuzz/rng.js';
import { waitFor } from '../../../test/helpers.js';
import { pgMailFixture, type PgOperator } from '../../../test/support/pg-mail.js';
import { BlobCollector } from '../blob-collector.js';
import { BlobSizeExceededError } from '../message-files.js';
import { CHUNK_SIZE, PgMessageFiles } from './message-files.js';
import { pino } from 'pino';

const fx = await pgMailFixture();
const skip = 'skip' in fx ? fx.skip : false;
if (!('skip' in fx)) after(() => fx.close());
/** One operator (schema) for the whole file. */
const F = ('skip' in fx ? undefined : await fx.operator()) as PgOperator;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** The bytes in odd-sized pieces, as a socket delivers them. */
const pieces = (b: Buffer, r: Rng) => {
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; ) {
    const n = Math.min(b.length - i, 1 + r.int(100_000));
    parts.push(b.subarray(i, i + n));
    i += n;
  }
  return Readable.from(parts);
};
const collect = async (s: Readable) => {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
};
const count = (sql: string, args: unknown[] = []) => F.scalar(sql, args).then(Number);

test('round trip at 0 B, 1 B, 256 KiB ± 1 and 5 MB, from a buffer and from a stream', { skip }, async () => {
  const files = new PgMessageFiles(F.s.connection);
  const r = new Rng(12);
  for (const n of [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 5_000_000]) {
    const bytes = r.bytes(n);
    const fromStream = n % 2 === 0;
    const put = fromStream ? await files.put(pieces(bytes, r)) : await files.put(bytes);
    assert.equal(put.id, sha(bytes), `${n} B: the id is the content's SHA-256`);
    assert.equal(put.size, n);
    await put.release();
    assert.equal(await files.size(put.id), n);
    assert.ok((await files.read(put.id)).equals(bytes), `${n} B read`);
    assert.ok((await collect(files.stream(put.id))).equals(bytes), `${n} B streamed`);
    assert.equal(await count('SELECT count(*) FROM blob_chunks WHERE blob_id = $1', [put.id]), Math.max(1, Math.ceil(n / CHUNK_SIZE)), `${n} B: chunks of 256 KiB`);
  }
  // A prefix (the Received: line the MX adds) is part of the content.
  const prefix = Buffer.from('Received: from a\r\n');
  const body = r.bytes(CHUNK_SIZE * 2);
  const p = await files.put(pieces(body, r), { prefix });
  assert.equal(p.id, sha(Buffer.concat([prefix, body])));
  assert.ok((await files.read(p.id)).equals(Buffer.concat([prefix, body])));
  assert.equal(await count("SELECT count(*) FROM blob_chunks WHERE blob_id LIKE 'tmp:%'"), 0, 'no staged chunk left');
  await assert.rejects(files.read('0'.repeat(64)), (e: any) => e.code === 'ENOENT');
  await assert.rejects(collect(files.stream('0'.repeat(64))), (e: any) => e.code === 'ENOENT');
  await assert.rejects(files.size('0'.repeat(64)), (e: any) => e.code === 'ENOENT');
});

test('putMany (a MULTIAPPEND): the ids and bytes of put(), each pinned until released', { skip }, async () => {
  const files = new PgMessageFiles(F.s.connection);
  const r = new Rng(15);
  const sources = [r.bytes(10), r.bytes(CHUNK_SIZE + 3), r.bytes(700)];
  sources.push(sources[0]); // the same content twice
  const puts = await files.putMany(sources);
  assert.deepEqual(
    puts.map((p) => [p.id, p.size]),
    sources.map((b) => [sha(b), b.length]),
  );
  for (const [k, p] of puts.entries()) assert.ok((await files.read(p.id)).equals(sources[k]), `file ${k}`);
  assert.equal(await count('SELECT count(*) FROM blob_pins WHERE blob_id = ANY($1)', [puts.map((p) => p.id)]), 4, 'one pin per put');
  await Promise.all(puts.map((p) => p.release()));
  assert.equal(await count('SELECT count(*) FROM blob_pins WHERE blob_id = ANY($1)', [puts.map((p) => p.id)]), 0);
});

test('ranges across chunk borders read what fs.createReadStream would', { skip }, async () => {
  const files = new PgMessageFiles(F.s.connection);
  const r = new Rng(34);
  const n = 5 * CHUNK_SIZE + 1234;
  const bytes = r.bytes(n);
  const { id } = await files.put(bytes);
  const C = CHUNK_SIZE;
  const ranges: [number, number][] = [
    [0, 0],
    [0, 65_535], // a header read
    [C - 1, C], // the two sides of a border
    [C, C],
    [C - 10, 3 * C + 5], // four chunks, partial at both ends
    [2 * C, 3 * C - 1], // exactly one chunk
    [0, n - 1],
    [n - 1, n - 1],
    [n - 5, n + 1000], // past the end: up to the end
    [n, n + 10], // from the end: nothing
    [n + 10, n + 20],
  ];
  for (let i = 0; i < 40; i++) {
    const a = r.int(n);
    ranges.push([a, a + r.int(3 * C)]);
  }
  for (const [start, end] of ranges) {
    const got = await collect(files.stream(id, { start, end }));
    assert.ok(got.equals(bytes.subarray(start, end + 1)), `range ${start}-${end}: ${got.length} bytes`);
  }
});

test('the same content twice is written once; a put over the size limit leaves nothing', { skip }, async () => {
  const files = new PgMessageFiles(F.s.connection);
  const r = new Rng(56);
  const bytes = r.bytes(3 * CHUNK_SIZE + 7);
  const [a, b] = await Promise.all([files.put(pieces(bytes, r)), files.put(pieces(bytes, r))]);
  assert.equal(a.id, b.id);
  assert.equal(await count('SELECT count(*) FROM blob_files WHERE blob_id = $1', [a.id]), 1);
  assert.equal(await count('SELECT count(*) FROM blob_chunks WHERE blob_id = $1', [a.id]), 4);
  assert.equal(await count("SELECT count(*) FROM blob_chunks WHERE blob_id LIKE 'tmp:%'"), 0, 'the second copy dropped');
  assert.ok((await files.read(a.id)).equals(bytes));
  assert.equal(await count('SELECT count(*) FROM blob_pins WHERE blob_id = $1', [a.id]), 2, 'both puts pinned it');
  await Promise.all([a.release(), b.release()]);
  assert.equal(await count('SELECT count(*) FROM blob_pins WHERE blob_id = $1', [a.id]), 0);

  // Too big: refused after the whole stream was drained (the SMTP layer then answers 552).
  const big = r.bytes(2 * CHUNK_SIZE + 10);
  const source = pieces(big, r);
  await assert.rejects(files.put(source, { maxSize: CHUNK_SIZE + 5 }), (e) => e instanceof BlobSizeExceededError && e.limit === CHUNK_SIZE + 5);
  assert.equal(source.readableEnded, true, 'drained');
  assert.equal(await count('SELECT count(*) FROM blob_files WHERE blob_id = $1', [sha(big)]), 0);
  assert.equal(await count("SELECT count(*) FROM blob_chunks WHERE blob_id LIKE 'tmp:%'"), 0, 'staged chunks removed');
  // Exactly at the limit: accepted.
  const exact = await files.put(big, { maxSize: big.length });
  assert.equal(exact.size, big.length);
  // A source failing mid-way: the error reaches the caller, staged chunks go.
  const failing = Readable.from(
    (async function* () {
      yield r.bytes(CHUNK_SIZE + 1);
      throw new Error('client gone');
    })(),
  );
  await assert.rejects(files.put(failing), /client gone/);
  assert.equal(await count("SELECT count(*) FROM blob_chunks WHERE blob_id LIKE 'tmp:%'"), 0);
  // A put so slow that another node's start swept its staged chunks: refused, not stored partial.
  const slow = new PassThrough();
  const slowPut = files.put(slow);
  slow.write(r.bytes(CHUNK_SIZE + 1));
  await waitFor(async () => (await count("SELECT count(*) FROM blob_chunks WHERE blob_id LIKE 'tmp:%'")) === 1, 'chunk 0 staged');
  assert.equal(await files.cleanTmp(-1), 1);
  slow.end(r.bytes(CHUNK_SIZE));
  await assert.rejects(slowPut, /1 of its 2 staged chunks were swept as stale/);
  assert.equal(await count("SELECT count(*) FROM blob_chunks WHERE blob_id LIKE 'tmp:%'"), 0);
});

test('removal: refused while pinned or referenced; the collector removes every row of an unreferenced file; stale staged chunks are swept', { skip }, async () => {
  const files = new PgMessageFiles(F.s.connection, { pinMs: 60_000 });
  const collector = new BlobCollector(F.s, files, pino({ level: 'silent' }));
  const inbox = (await F.s.getFolder(await F.mailbox('removal@x.test'), 'INBOX'))!;
  const bytes = Buffer.from('Subject: à supprimer\r\n\r\nCorps.\r\n');
  const put = await files.put(bytes);
  assert.equal(await files.removeIfUnreferenced(put.id), false, 'pinned: the put has not committed its reference yet');
  await F.s.appendMessage(inbox.id, { blobId: put.id, size: put.size, flags: ['\\Deleted'], internalDate: new Date() });
  await put.release();
  await F.s.setBlobMeta(put.id, '{}');
  assert.equal(await files.removeIfUnreferenced(put.id), false, 'referenced');
  await F.s.expunge(inbox.id);
  assert.ok((await F.s.blobGarbage(1000)).includes(put.id), 'the expunge recorded the candidate');
  const before = await collector.run();
  assert.ok(before.removed >= 1);
  for (const table of ['blob_files', 'blob_chunks', 'blob_meta', 'blob_garbage']) assert.equal(await count(`SELECT count(*) FROM ${table} WHERE blob_id = $1`, [put.id]), 0, table);
  await assert.rejects(files.read(put.id), (e: any) => e.code === 'ENOENT');
  // A put a crash interrupted: staged chunks older than the limit go, a fresh one (a put in progress) stays.
  const old = `tmp:${Date.now() - 7_200_000}:0123456789abcdef`;
  const fresh = `tmp:${Date.now()}:fedcba9876543210`;
  for (const id of [old, fresh]) await F.s.connection.query('INSERT INTO blob_chunks (blob_id, seq, data) VALUES ($1, 0, $2), ($1, 1, $2)', [id, Buffer.from('x')]);
  assert.equal(await files.cleanTmp(3_600_000), 1);
  assert.equal(await count('SELECT count(*) FROM blob_chunks WHERE blob_id = $1', [fresh]), 2);
  await F.s.connection.query('DELETE FROM blob_chunks WHERE blob_id = $1', [fresh]);
  // The orphan scan: a file no row references (its put's transaction never committed).
  const orphan = await files.put(Buffer.from('Subject: orphelin\r\n\r\n.\r\n'));
  await orphan.release();
  const ids: string[] = [];
  for await (const id of files.ids()) ids.push(id);
  assert.ok(ids.includes(orphan.id));
  assert.ok((await collector.scanOrphans()) >= 1);
  assert.equal(await count('SELECT count(*) FROM blob_files WHERE blob_id = $1', [orphan.id]), 0);
});

test('put on node 1 against removal on node 2 of the same content: never a committed reference without its file', { skip }, async () => {
  const seed = Number(process.env.BLOB_RACE_SEED ?? 20261207);
  const r = new Rng(seed);
  const s2 = await F.node();
  const files1 = new PgMessageFiles(F.s.connection);
  const files2 = new PgMessageFiles(s2.connection);
  const inbox = (await F.s.getFolder(await F.mailbox('race@x.test'), 'INBOX'))!;
  const content = Buffer.concat([Buffer.from('Subject: encore\r\n\r\n'), new Rng(1).bytes(CHUNK_SIZE + 100)]); // staged: two chunks
  const id = sha(content);
  const turns = async (n: number) => {
    for (let i = 0; i < n; i++) await new Promise((res) => setImmediate(res));
  };
  const outcomes = { removed: 0, kept: 0 };
  for (let round = 0; round < 60; round++) {
    const put = (async () => {
      await turns(r.int(20));
      const blob = await files1.put(content);
      await turns(r.int(5));
      await F.s.appendMessage(inbox.id, { blobId: blob.id, size: blob.size, flags: [], internalDate: new Date() });
      await blob.release();
    })();
    const removal = (async () => {
      await turns(r.int(40));
      return files2.removeIfUnreferenced(id);
    })();
    const [, removed] = await Promise.all([put, removal]);
    outcomes[removed ? 'removed' : 'kept']++;
    const refs = (await s2.listMessages(inbox.id)).filter((m) => m.blobId === id);
    assert.equal(refs.length, 1);
    assert.ok((await files2.read(id)).equals(content), `round ${round} (seed ${seed}): a committed message references a removed or partial file`);
    await s2.storeFlags(inbox.id, [refs[0].uid], 'add', ['\\Deleted']);
    await s2.expunge(inbox.id);
  }
  assert.ok(outcomes.removed > 0 && outcomes.kept > 0, `seed ${seed}: both orders happened: ${JSON.stringify(outcomes)}`);
});
