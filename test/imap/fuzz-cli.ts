// Long fuzz runs of the IMAP command parser (same properties as fuzz.test.ts, more iterations).
//   node --import tsx test/imap/fuzz-cli.ts --iterations 100000 --seed 7 [--bytewise-every 8]
// Prints counts and rates; on a failure prints the seed, iteration and iteration seed, exits 1.
import { fuzzIteration, iterationSeed, newStats } from './fuzz-harness.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) {
    console.error(`invalid --${name} ${process.argv[i + 1]}`);
    process.exit(2);
  }
  return v;
}

const iterations = arg('iterations', 10000);
const seed = arg('seed', Date.now() % 0x100000000) >>> 0;
const bytewiseEvery = arg('bytewise-every', 8);
console.log(`fuzzing the IMAP parser: ${iterations} iterations, seed ${seed}, bytewise feeding every ${bytewiseEvery || 'never'}`);

const stats = newStats();
const start = performance.now();
let lastReport = start;
for (let i = 0; i < iterations; i++) {
  const iseed = iterationSeed(seed, i);
  try {
    fuzzIteration(iseed, stats, { bytewise: bytewiseEvery > 0 && i % bytewiseEvery === 0 });
  } catch (e) {
    console.error(`FAILED at iteration ${i} (seed ${seed}, iteration seed ${iseed}):`);
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(1);
  }
  const now = performance.now();
  if (now - lastReport > 5000) {
    lastReport = now;
    console.log(`  ${i + 1} iterations, ${((i + 1) / ((now - start) / 1000)).toFixed(0)} it/s`);
  }
}
const secs = (performance.now() - start) / 1000;
const { names, ...counts } = stats;
console.log(JSON.stringify(counts, null, 2));
console.log(`command names generated: ${Object.keys(names).length} (${Object.entries(names).map(([n, c]) => `${n}=${c}`).join(', ')})`);
console.log(`${iterations} iterations in ${secs.toFixed(2)} s: ${(iterations / secs).toFixed(0)} iterations/s, ${(stats.bytes / secs / 1e6).toFixed(2)} MB/s of generated input (each fed 2-3 times)`);
