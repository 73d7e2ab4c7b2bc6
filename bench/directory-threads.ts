// The two threads of a directory import measured alone, in one thread each, CPU time
// (process.cpuUsage), so that a change to one side is measured without the other's scheduling:
// - reading: read, inflate, split, parse, number terms and encode the batches (then dropped:
//   the import hands them to the SQLite worker), inflating on libuv's pool included;
// - sqlite: the batches (of a second, untimed reading) replayed into a SnapshotBuilder (the worker's work: load, then commit:
//   indexes, comparison, fsync and rename into DIR).
//
//   node --import tsx bench/directory-threads.ts FILE.zip [--rounds 3] [--dir DIR]
//
// Keeps every batch in memory (about 330 bytes per line): use the 200,000-line file
// (`caducee directory generate --lines 200000 --seed 7 --out FILE.zip`). See docs/directory.md.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { importExtraction } from '../src/directory/import.js';
import { SnapshotBuilder } from '../src/store/directory/snapshot-builder.js';
import { BatchEncoder, type Batch } from '../src/store/directory/snapshot-format.js';
import type { SnapshotWriter } from '../src/store/directory/types.js';
import { TermDictionary } from '../src/store/directory/vocabulary.js';

const { values: args, positionals } = parseArgs({ allowPositionals: true, options: { rounds: { type: 'string', default: '3' }, dir: { type: 'string' } } });
const file = positionals[0];
if (!file) {
  process.stderr.write('usage: bench/directory-threads.ts FILE.zip [--rounds 3] [--dir DIR]\n');
  process.exit(2);
}
const dir = args.dir ? path.resolve(args.dir) : mkdtempSync(path.join(os.tmpdir(), 'caducee-bench-threads-'));
const cpuMs = (c: NodeJS.CpuUsage) => Math.round((c.user + c.system) / 1000);

/** Reads FILE as an import does; the batches are kept only when `keep` (kept, their fresh pages would count). */
async function read(keep: boolean) {
  const dictionary = new TermDictionary();
  const encoder = new BatchEncoder(dictionary);
  const batches: Batch[] = [];
  let rank = 0;
  const writer: SnapshotWriter = {
    add(e, lineNo) {
      encoder.add(++rank, e, lineNo);
      if (encoder.rows >= 2000) {
        const b = encoder.take();
        if (keep) batches.push(b);
      }
    },
    async commit() {
      if (encoder.rows) batches.push(encoder.take());
      return {} as any;
    },
    async abort() {},
  };
  await importExtraction({ file, writer });
  return { batches, rank, dictionary };
}

for (let round = 0; round < Number(args.rounds); round++) {
  let c0 = process.cpuUsage();
  await read(false);
  const reading = process.cpuUsage(c0);
  const { batches, rank, dictionary } = await read(true);

  const dataDir = path.join(dir, `round-${round}`);
  rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  const builder = new SnapshotBuilder(dataDir, path.join(dataDir, 'directory.sqlite.build'));
  c0 = process.cpuUsage();
  for (const b of batches) builder.addBatch(b);
  const load = process.cpuUsage(c0);
  batches.length = 0;
  c0 = process.cpuUsage();
  builder.commit({ source: file, sourceEntry: null, linesRead: rank, rejected: 0, rejections: [] }, { started: Date.now(), readMs: 0, vocabularyComplete: !dictionary.full });
  const commit = process.cpuUsage(c0);
  process.stdout.write(
    `round ${round}: ${rank.toLocaleString('en-US')} lines · reading thread ${cpuMs(reading)} ms CPU · SQLite thread: load ${cpuMs(load)} ms + commit ${cpuMs(commit)} ms CPU · load average ${os.loadavg()[0].toFixed(1)}\n`,
  );
}
if (!args.dir) rmSync(dir, { recursive: true, force: true });
