// Seeded fuzz test of the command parser (see fuzz-harness.ts for what is generated and checked).
// Default seed is fixed so the suite is reproducible; FUZZ_SEED=<n> explores another one.
// Longer runs: node --import tsx test/imap/fuzz-cli.ts --iterations 100000 --seed 7
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { COMMAND_NAMES } from '../../src/imap/protocol/grammar.js';
import { fuzzIteration, iterationSeed, newStats } from './fuzz-harness.js';

const DEFAULT_SEED = 0x0cad0cee;
const ITERATIONS = 600;

it('fuzz: no exception, chunking-invariant events, valid commands parse, recovery after garbage', (t) => {
  const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : DEFAULT_SEED;
  t.diagnostic(`fuzz seed ${seed} (override with FUZZ_SEED=<n>)`);
  console.log(`fuzz seed ${seed}`);
  const stats = newStats();
  const start = performance.now();
  for (let i = 0; i < ITERATIONS; i++) {
    try {
      fuzzIteration(iterationSeed(seed, i), stats, { bytewise: i % 8 === 0 });
    } catch (e) {
      assert.fail(`seed ${seed}, iteration ${i}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const ms = performance.now() - start;
  t.diagnostic(`${ITERATIONS} iterations in ${ms.toFixed(0)} ms: ${JSON.stringify({ ...stats, names: Object.keys(stats.names).length })}`);
  // the grammar generator reached every command
  const expected = new Set([...COMMAND_NAMES.filter((n) => n !== 'UID'), 'UID FETCH', 'UID STORE', 'UID COPY', 'UID MOVE', 'UID SEARCH', 'UID SORT', 'UID THREAD', 'UID EXPUNGE']);
  const missing = [...expected].filter((n) => !stats.names[n]);
  assert.deepEqual(missing, [], 'commands never generated');
  assert.ok(stats.errorEvents > 0 && stats.continueEvents > 0 && stats.lineEvents > 0);
});
