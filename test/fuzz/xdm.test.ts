// Seeded fuzz test of the XDM reader (see xdm-harness.ts). Fixed default seed; FUZZ_SEED=<n>
// explores another. Long runs: test/fuzz/cli.ts --target xdm.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { FuzzFailure, iterationSeed, testSeed } from './rng.js';
import { newXdmStats, xdmIteration } from './xdm-harness.js';

const ITERATIONS = 2000;

it('fuzz xdm reader: mutated built and wild packages are read (checked) or refused with XdmError', (t) => {
  const seed = testSeed(0x0d0c5);
  t.diagnostic(`fuzz seed ${seed} (override with FUZZ_SEED=<n>)`);
  const stats = newXdmStats();
  const start = performance.now();
  for (let i = 0; i < ITERATIONS; i++) {
    try {
      xdmIteration(iterationSeed(seed, i), stats);
    } catch (e) {
      assert.fail(`seed ${seed}, iteration ${i}: ${e instanceof FuzzFailure ? e.message : e instanceof Error ? e.stack : String(e)}`);
    }
  }
  t.diagnostic(`${ITERATIONS} iterations in ${(performance.now() - start).toFixed(0)} ms: ${JSON.stringify(stats)}`);
  assert.ok(stats.read > 0 && Object.keys(stats.rejected).length > 2 && stats.roundTrips > 0 && stats.warnings > 0, 'both outcomes and round trips reached');
});
