// Long fuzz runs (same properties as the *.test.ts files of this folder, more iterations):
//   node --import tsx test/fuzz/cli.ts --target mime|sasl|trust|extraction|smtp|smtp-mx|xdm --iterations 1000000 [--seed 7]
// Prints progress and rates; on a failure prints the seed, iteration and iteration seed, exits 1.
// Ctrl-C ends any run early; the summary then says how many iterations ran.
// smtp and smtp-mx: --mode stream (default: many iterations per long-lived session, see
// smtp-harness.ts; --concurrency 12 sessions at once, --session-iterations 1000, --cut-rate 0.01,
// --replay worker:first:last replays one session of a failed run) or --mode sessions (one
// session per iteration).
import { extractionIteration, newExtractionStats } from './extraction-harness.js';
import { mimeIteration, newMimeStats } from './mime-harness.js';
import { iterationSeed } from './rng.js';
import { newSaslStats, saslIteration } from './sasl-harness.js';
import { DEFAULT_STREAM, newSmtpStats, SmtpFuzzTarget, type SmtpStats } from './smtp-harness.js';
import { newTrustStats, trustIteration } from './trust-harness.js';
import { newXdmStats, xdmIteration } from './xdm-harness.js';

interface Target {
  stats(): object;
  iteration(iseed: number, stats: any): void | Promise<void>;
  /** Runs all iterations itself (SMTP stream mode) instead of one `iteration` call each. */
  run?(seed: number, iterations: number, stats: any, progress: (done: number) => void): Promise<void>;
  close?(): Promise<void>;
}

/** The SMTP fuzzer on the submission port or the MX; after the run, the stored-message check. */
async function smtpTarget(mode: 'submission' | 'mx') {
  const t = await SmtpFuzzTarget.start(mode);
  const streamMode = arg('mode', 'stream') === 'stream';
  if (!streamMode && arg('mode') !== 'sessions') {
    console.error('--mode must be stream or sessions');
    process.exit(2);
  }
  const replay = arg('replay')?.split(':').map(Number);
  const opts = {
    concurrency: num('concurrency', DEFAULT_STREAM.concurrency),
    sessionIterations: num('session-iterations', DEFAULT_STREAM.sessionIterations),
    cutRate: num('cut-rate', DEFAULT_STREAM.cutRate),
    only: replay ? { worker: replay[0]!, from: replay[1]!, to: replay[2]! } : undefined,
  };
  if (streamMode) console.log(`stream mode: ${JSON.stringify(opts)} (Ctrl-C ends the run early, with the stored-message check)`);
  return {
    stats: newSmtpStats,
    iteration: (iseed: number, stats: SmtpStats) => t.iteration(iseed, stats),
    run: streamMode ? (seed: number, iterations: number, stats: SmtpStats, progress: (done: number) => void) => t.stream(seed, iterations, stats, { ...opts, progress, stop: () => stopping }) : undefined,
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

/** Ctrl-C (SIGINT) ends a run early: the iterations under way finish, then the summary (and the SMTP check). */
let stopping = false;
process.once('SIGINT', () => {
  stopping = true;
  console.log('SIGINT: finishing the iterations under way, then the summary');
});

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
const progress = (done: number) => {
  const now = performance.now();
  if (now - lastReport > 30000) {
    lastReport = now;
    console.log(`  ${done} iterations, ${(done / ((now - start) / 1000)).toFixed(0)} it/s${'sessions' in stats ? `, ${stats.sessions} sessions` : ''}`);
  }
};
if (target.run) {
  try {
    await target.run(seed, iterations, stats, progress);
  } catch (e) {
    console.error(`FAILED (seed ${seed}):`);
    console.error(e instanceof Error ? e.message : String(e));
    console.error(JSON.stringify(stats));
    await target.close?.();
    process.exit(1);
  }
}
let done = 0;
for (let i = 0; !target.run && i < iterations && !stopping; i++, done++) {
  const iseed = iterationSeed(seed, i);
  try {
    await target.iteration(iseed, stats);
  } catch (e) {
    console.error(`FAILED at iteration ${i} (seed ${seed}, iteration seed ${iseed}):`);
    console.error(e instanceof Error ? e.message : String(e));
    await target.close?.();
    process.exit(1);
  }
  progress(i + 1);
  // synchronous targets: let the event loop run now and then, or the SIGINT handler never would
  if (i % 256 === 255) await new Promise((r) => setImmediate(r));
}
await target.close?.();
const secs = (performance.now() - start) / 1000;
console.log(JSON.stringify(stats));
const ran = target.run ? (stats as SmtpStats).iterations : done;
console.log(`${name}: ${ran}${ran < iterations ? ` of ${iterations} (stopped early)` : ''} iterations${'sessions' in stats ? ` over ${stats.sessions} sessions` : ''} in ${secs.toFixed(1)} s (${(ran / secs).toFixed(0)} it/s), seed ${seed}, no failure`);
