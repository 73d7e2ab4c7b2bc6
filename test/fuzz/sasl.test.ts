// Seeded fuzz test of the SASL codecs (see sasl-harness.ts). Fixed default seed; FUZZ_SEED=<n>
// explores another. Long runs: test/fuzz/cli.ts --target sasl.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { FuzzFailure, iterationSeed, testSeed } from './rng.js';
import { newSaslStats, saslIteration } from './sasl-harness.js';

const ITERATIONS = 20000;

it('fuzz sasl: XOAUTH2/OAUTHBEARER messages round-trip, mutated and random ones parse or give null', (t) => {
  const seed = testSeed(0x5a510001);
  t.diagnostic(`fuzz seed ${seed} (override with FUZZ_SEED=<n>)`);
  const stats = newSaslStats();
  const start = performance.now();
  for (let i = 0; i < ITERATIONS; i++) {
    try {
      saslIteration(iterationSeed(seed, i), stats);
    } catch (e) {
      assert.fail(`seed ${seed}, iteration ${i}: ${e instanceof FuzzFailure ? e.message : e instanceof Error ? e.stack : String(e)}`);
    }
  }
  t.diagnostic(`${ITERATIONS} iterations in ${(performance.now() - start).toFixed(0)} ms: ${JSON.stringify(stats)}`);
  assert.ok(stats.roundTrips === ITERATIONS && stats.parsed > ITERATIONS && stats.refused > ITERATIONS);
});
