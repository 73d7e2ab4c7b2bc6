// Seeded fuzz test of the extraction importer's header and line parsing (see
// extraction-harness.ts). Fixed default seed; FUZZ_SEED=<n> explores another. Long runs:
// test/fuzz/cli.ts --target extraction.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { extractionIteration, newExtractionStats } from './extraction-harness.js';
import { FuzzFailure, iterationSeed, testSeed } from './rng.js';

const ITERATIONS = 5000;

it('fuzz extraction: mutated headers and lines give an entry, a reason or an ExtractionError', (t) => {
  const seed = testSeed(0xe7a0001);
  t.diagnostic(`fuzz seed ${seed} (override with FUZZ_SEED=<n>)`);
  const stats = newExtractionStats();
  const start = performance.now();
  for (let i = 0; i < ITERATIONS; i++) {
    try {
      extractionIteration(iterationSeed(seed, i), stats);
    } catch (e) {
      assert.fail(`seed ${seed}, iteration ${i}: ${e instanceof FuzzFailure ? e.message : e instanceof Error ? e.stack : String(e)}`);
    }
  }
  t.diagnostic(`${ITERATIONS} iterations in ${(performance.now() - start).toFixed(0)} ms: ${JSON.stringify(stats)}`);
  assert.ok(stats.ok > 0 && stats.rejected > 0 && stats.headersRejected > 0 && stats.storedAsIs > 0, 'every outcome reached');
});
