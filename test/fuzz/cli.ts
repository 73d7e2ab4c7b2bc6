// Long fuzz runs (same properties as the *.test.ts files of this folder, more iterations):
//   node --import tsx test/fuzz/cli.ts --target mime|sasl|trust|extraction|smtp|smtp-mx|xdm --iterations 1000000 [--seed 7]
// Prints progress and rates; on a failure prints the seed, iteration and iteration seed, exits 1.
import { extractionIteration, newExtractionStats } from './extraction-harness.js';
import { mimeIteration, newMimeStats } from './mime-harness.js';
import { iterationSeed } from './rng.js';
import { newSaslStats, saslIteration } from './sasl-harness.js';
import { newSmtpStats, SmtpFuzzTarget } from './smtp-harness.js';
import { newTrustStats, trustIteration } from './trust-harness.js';
import { newXdmStats, xdmIteration } from './xdm-harness.js';

interface Target {
  stats(): object;
  iteration(iseed: number, stats: any): void | Promise<void>;
  close?(): Promise<void>;
}

/** The SMTP fuzzer on the submission port or the MX; after the run, the stored-message check. */
async function smtpTarget(mode: 'submission' | 'mx') {
  const t = await SmtpFuzzTarget.start(mode);
  return {
    stats: newSmtpStats,
    iteration: (iseed: number, stats: ReturnType<typeof newSmtpStats>) => t.iteration(iseed, stats),
    async close() {
      try {
        console.log(`stored-message check: ${JSON.stringify(await t.check())}`);
      } finally {
        await t.close();
      }
    },
  };
}

const TARGETS: Record<string, () => Promise<Target>> = {
  mime: async () => ({ stats: newMimeStats, iteration: mimeIteration }),
  extraction: async () => ({ stats: newExtractionStats, iteration: extractionIteration }),
  sasl: async () => ({ stats: newSaslStats, iteration: saslIteration }),
  smtp: () => smtpTarget('submission'),
  'smtp-mx': () => smtpTarget('mx'),
  trust: async () => ({ stats: newTrustStats, iteration: trustIteration }),
  xdm: async () => ({ stats: newXdmStats, iteration: xdmIteration }),
};

function arg(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : process.argv[i + 1];
}

function num(name: string, fallback: number): number {
  const v = Number(arg(name, String(fallback)));
  if (!Number.isFinite(v) || v < 0) {
    console.error(`invalid --${name} ${arg(name)}`);
    process.exit(2);
  }
  return v;
}

const name = arg('target');
if (!name || !TARGETS[name]) {
  console.error(`--target must be one of: ${Object.keys(TARGETS).join(', ')}`);
  process.exit(2);
}
const iterations = num('iterations', 10000);
const seed = num('seed', Date.now() % 0x100000000) >>> 0;
console.log(`fuzzing ${name}: ${iterations} iterations, seed ${seed}`);
const target = await TARGETS[name]();
const stats = target.stats();
const start = performance.now();
let lastReport = start;
for (let i = 0; i < iterations; i++) {
  const iseed = iterationSeed(seed, i);
  try {
    await target.iteration(iseed, stats);
  } catch (e) {
    console.error(`FAILED at iteration ${i} (seed ${seed}, iteration seed ${iseed}):`);
    console.error(e instanceof Error ? e.message : String(e));
    await target.close?.();
    process.exit(1);
  }
  const now = performance.now();
  if (now - lastReport > 30000) {
    lastReport = now;
    console.log(`  ${i + 1} iterations, ${((i + 1) / ((now - start) / 1000)).toFixed(0)} it/s`);
  }
}
await target.close?.();
const secs = (performance.now() - start) / 1000;
console.log(JSON.stringify(stats));
console.log(`${name}: ${iterations} iterations in ${secs.toFixed(1)} s (${(iterations / secs).toFixed(0)} it/s), seed ${seed}, no failure`);
