// Seeded fuzz test of the trust-list parser (see trust-harness.ts). Fixed default seed;
// FUZZ_SEED=<n> explores another. Long runs: test/fuzz/cli.ts --target trust.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { FuzzFailure, iterationSeed, testSeed } from './rng.js';
import { newTrustStats, trustIteration } from './trust-harness.js';

const ITERATIONS = 3000;

it('fuzz trust list: mutated real and built lists parse or throw TrustListError, lookups agree', (t) => {
  const seed = testSeed(0x7057001);
  t.diagnostic(`fuzz seed ${seed} (override with FUZZ_SEED=<n>)`);
  const stats = newTrustStats();
  const start = performance.now();
  for (let i = 0; i < ITERATIONS; i++) {
    try {
      trustIteration(iterationSeed(seed, i), stats);
    } catch (e) {
      assert.fail(`seed ${seed}, iteration ${i}: ${e instanceof FuzzFailure ? e.message : e instanceof Error ? e.stack : String(e)}`);
    }
  }
  t.diagnostic(`${ITERATIONS} iterations in ${(performance.now() - start).toFixed(0)} ms: ${JSON.stringify(stats)}`);
  assert.ok(stats.parsed > 0 && stats.rejected > 0 && stats.entries > 0 && stats.roundTrips > 0, 'both outcomes and round trips reached');
});
