// Seeded fuzz test of MIME analysis (see mime-harness.ts for what is mutated and checked).
// Fixed default seed; FUZZ_SEED=<n> explores another. Long runs: test/fuzz/cli.ts --target mime.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { mimeIteration, newMimeStats } from './mime-harness.js';
import { FuzzFailure, iterationSeed, testSeed } from './rng.js';

const ITERATIONS = 2000;

it('fuzz mime: mutated real messages analyze, ranges stay inside, sections/BODYSTRUCTURE/BINARY work', (t) => {
  const seed = testSeed(0x6d1e0001);
  t.diagnostic(`fuzz seed ${seed} (override with FUZZ_SEED=<n>)`);
  const stats = newMimeStats();
  const start = performance.now();
  for (let i = 0; i < ITERATIONS; i++) {
    try {
      mimeIteration(iterationSeed(seed, i), stats);
    } catch (e) {
      assert.fail(`seed ${seed}, iteration ${i}: ${e instanceof FuzzFailure ? e.message : e instanceof Error ? e.stack : String(e)}`);
    }
  }
  t.diagnostic(`${ITERATIONS} iterations in ${(performance.now() - start).toFixed(0)} ms: ${JSON.stringify(stats)}`);
  assert.ok(stats.bareLf > 0 && stats.nul > 0 && stats.binaryErrors > 0 && stats.parts > ITERATIONS, 'the mutations reach bare LFs, NULs, bad encodings and nested parts');
});
