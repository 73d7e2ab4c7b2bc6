// Message files: puts and reads per second for each place they can live (store.blobs,
// docs/configuration.md) — files with the pins in SQLite, files with the pins in PostgreSQL, and
// chunked bytea in PostgreSQL — at a few message sizes and concurrencies. What a put costs is part
// of an MX intake's cost per message (issue 12's capacity model).
//
//   node --import tsx bench/message-files.ts [--sizes 10k,1m] [--messages N] [--concurrency M] [--encrypt] [--json]
//
// --encrypt: each place also sealed (encryption at rest, docs/encryption.md), measured right after
// the plaintext row in the same run; the CPU columns (this process: the puts' hashing/sealing, the
// reads' opening) give the cost per message.
//
// PostgreSQL: CADUCEE_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/test); a database of
// its own is created and dropped. Unreachable: the PostgreSQL rows are left out, saying why.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pgTestDatabase } from '../test/support/postgres.js';
import { BlobStore } from '../src/store/blobs.js';
import type { MessageFiles } from '../src/store/message-files.js';
import { PgStore } from '../src/store/postgres/index.js';
import { PgMessageFiles } from '../src/store/postgres/message-files.js';
import { KeyRing } from '../src/store/keyring.js';
import { SqliteStore } from '../src/store/sqlite/index.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}
const parseSize = (s: string) => Math.round(parseFloat(s) * (s.endsWith('m') ? 1024 * 1024 : s.endsWith('k') ? 1024 : 1));
const sizes = arg('sizes', '10k,1m').split(',').map(parseSize);
const concurrency = Number(arg('concurrency', '4'));
const json = process.argv.includes('--json');
const encrypt = process.argv.includes('--encrypt');
const keys = KeyRing.generate();

interface Row {
  place: string;
  size: number;
  messages: number;
  putsPerSecond: number;
  readsPerSecond: number;
  headReadsPerSecond: number;
  /** CPU of this process (user + system) per put, per whole read, per head read (ms). */
  putCpuMs: number;
  readCpuMs: number;
  headCpuMs: number;
}

async function measure(place: string, files: MessageFiles, size: number): Promise<Row> {
  const messages = Number(arg('messages', size >= 512 * 1024 ? '60' : '600'));
  const bodies = Array.from({ length: messages }, () => randomBytes(size));
  const ids: string[] = [];
  const cpu: number[] = [];
  const run = async (work: (i: number) => Promise<void>) => {
    let next = 0;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (let i = next++; i < messages; i = next++) await work(i);
      }),
    );
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000 / messages);
    return messages / ((performance.now() - t0) / 1000);
  };
  const putsPerSecond = await run(async (i) => {
    const p = await files.put(bodies[i]);
    ids[i] = p.id;
    void p.release();
  });
  const readsPerSecond = await run(async (i) => {
    for await (const _ of files.stream(ids[i]));
  });
  // The first 64 KiB: what the policies and the IMAP header fetch read.
  const headReadsPerSecond = await run(async (i) => {
    for await (const _ of files.stream(ids[i], { start: 0, end: 65_535 }));
  });
  return { place, size, messages, putsPerSecond, readsPerSecond, headReadsPerSecond, putCpuMs: cpu[0], readCpuMs: cpu[1], headCpuMs: cpu[2] };
}

const rows: Row[] = [];
const dir = mkdtempSync(path.join(os.tmpdir(), 'caducee-bench-files-'));
try {
  const sqlite = SqliteStore.open(path.join(dir, 'caducee.sqlite'));
  for (const size of sizes) {
    rows.push(await measure('files, pins in SQLite', new BlobStore(path.join(dir, 'blobs-sqlite'), sqlite), size));
    if (encrypt) rows.push(await measure('files, pins in SQLite, sealed', new BlobStore(path.join(dir, 'blobs-sqlite'), sqlite, { keys }), size));
  }
  await sqlite.close();
  const db = await pgTestDatabase();
  if ('skip' in db) console.error(`PostgreSQL rows left out: ${db.skip}`);
  else {
    const pg = await PgStore.open(db.url);
    try {
      for (const size of sizes) rows.push(await measure('files, pins in PostgreSQL', new BlobStore(path.join(dir, 'blobs-pg'), pg), size));
      for (const size of sizes) {
        rows.push(await measure('PostgreSQL bytea', new PgMessageFiles(pg.connection), size));
        if (encrypt) rows.push(await measure('PostgreSQL bytea, sealed', new PgMessageFiles(pg.connection, { keys }), size));
      }
    } finally {
      await pg.close();
      await db.drop();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const fmt = (n: number) => n.toFixed(n < 100 ? 1 : 0);
console.log(`concurrency ${concurrency}`);
console.log('| place | size | messages | puts/s | whole reads/s | 64 KiB head reads/s | CPU ms/put | CPU ms/read | CPU ms/head read |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
const ms = (n: number) => n.toFixed(3);
for (const r of rows)
  console.log(
    `| ${r.place} | ${r.size >= 1024 * 1024 ? r.size / 1024 / 1024 + ' MiB' : r.size / 1024 + ' KiB'} | ${r.messages} | ${fmt(r.putsPerSecond)} | ${fmt(r.readsPerSecond)} | ${fmt(r.headReadsPerSecond)} | ${ms(r.putCpuMs)} | ${ms(r.readCpuMs)} | ${ms(r.headCpuMs)} |`,
  );
if (json) console.log(JSON.stringify({ concurrency, rows }));
