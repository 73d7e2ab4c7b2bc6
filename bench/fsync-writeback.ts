// What an early write-back saves at the end of a directory import (snapshot-builder.ts
// writeBack): writes 512 MB in 32 KiB pages spread over ~6 s of CPU work (as the import's load
// writes its ~520 MB file at 1M lines), then times the final fsync — without, then with an
// fdatasync on libuv's pool every 48 MB. No SQLite: the file system's side only.
//
//   node --import tsx bench/fsync-writeback.ts [--rounds 2] [--dir DIR]
import { fdatasync, fsyncSync, openSync, closeSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { rounds: { type: 'string' }, dir: { type: 'string' } } });
const file = path.join(values.dir ?? os.tmpdir(), `fsync-writeback-${process.pid}.bin`);
const PAGE = Buffer.alloc(32768, 7);
const PAGES = 512 * 32;

function run(background: boolean): Promise<number> {
  rmSync(file, { force: true });
  const fd = openSync(file, 'w');
  const syncFd = openSync(file, 'r');
  let n = 0;
  let syncing = false;
  return new Promise((resolve) => {
    const step = () => {
      const t = Date.now();
      for (let i = 0; i < 512 && n < PAGES; i++, n++) writeSync(fd, PAGE, 0, PAGE.length, n * PAGE.length);
      if (background && !syncing && n % (3 * 512) === 0) {
        syncing = true;
        fdatasync(syncFd, () => (syncing = false));
      }
      while (Date.now() - t < 180) {} // the load's CPU between two batches of writes
      if (n < PAGES) return setImmediate(step);
      const t0 = performance.now();
      fsyncSync(fd);
      const ms = performance.now() - t0;
      closeSync(fd);
      closeSync(syncFd);
      rmSync(file, { force: true });
      resolve(ms);
    };
    step();
  });
}

for (let r = 0; r < Number(values.rounds ?? 2); r++) {
  const off = await run(false);
  const on = await run(true);
  process.stdout.write(`round ${r}: final fsync of 512 MB ${off.toFixed(0)} ms without early write-back, ${on.toFixed(0)} ms with · load average ${os.loadavg()[0].toFixed(1)}\n`);
}
