// Seeded fuzz test of the SMTP submission handlers over real sockets (see smtp-harness.ts).
// Fixed default seed; FUZZ_SEED=<n> explores another. Long runs: test/fuzz/cli.ts --target smtp (submission) or smtp-mx.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FuzzFailure, iterationSeed, testSeed } from './rng.js';
import { newSmtpStats, SmtpFuzzTarget } from './smtp-harness.js';

const SESSIONS = 60;
let target: SmtpFuzzTarget;

before(async () => {
  target = await SmtpFuzzTarget.start();
});
after(async () => {
  await target?.close();
});

it('fuzz smtp: random sessions always get answers, the server survives, nothing half-stored', async (t) => {
  const seed = testSeed(0x53e70001);
  t.diagnostic(`fuzz seed ${seed} (override with FUZZ_SEED=<n>)`);
  const stats = newSmtpStats();
  const start = performance.now();
  for (let i = 0; i < SESSIONS; i++) {
    try {
      await target.iteration(iterationSeed(seed, i), stats);
    } catch (e) {
      assert.fail(`seed ${seed}, session ${i}: ${e instanceof FuzzFailure ? e.message : e instanceof Error ? e.stack : String(e)}`);
    }
  }
  const { rows } = await target.check();
  t.diagnostic(`${SESSIONS} sessions in ${(performance.now() - start).toFixed(0)} ms, ${rows} message rows: ${JSON.stringify(stats)}`);
  assert.ok(stats.dataAccepted > 0 && stats.dataRefused + stats.dataCut > 0, 'DATA accepted, and refused or cut off');
});

describe('MX (mutual TLS between operators)', () => {
  let mx: SmtpFuzzTarget;
  before(async () => {
    mx = await SmtpFuzzTarget.start('mx');
  });
  after(async () => {
    await mx?.close();
  });
  it('fuzz smtp-mx: random sessions with the peer certificate, none or a personal one; answers, survival, nothing half-stored', async (t) => {
    const seed = testSeed(0x53e70002);
    t.diagnostic(`fuzz seed ${seed} (override with FUZZ_SEED=<n>)`);
    const stats = newSmtpStats();
    for (let i = 0; i < SESSIONS; i++) {
      try {
        await mx.iteration(iterationSeed(seed, i), stats);
      } catch (e) {
        assert.fail(`seed ${seed}, session ${i}: ${e instanceof FuzzFailure ? e.message : e instanceof Error ? e.stack : String(e)}`);
      }
    }
    const { rows } = await mx.check();
    t.diagnostic(`${SESSIONS} MX sessions, ${rows} message rows: ${JSON.stringify(stats)}`);
    assert.ok(stats.dataAccepted > 0 && stats.dataRefused + stats.dataCut > 0, 'DATA accepted, and refused or cut off');
  });
});
