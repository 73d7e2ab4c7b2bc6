// Seeded fuzz test of the SMTP submission and MX handlers over real sockets (see smtp-harness.ts):
// the stream mode (many iterations per long-lived session) and the per-session mode (greeting,
// commands before STARTTLS, STARTTLS, AUTH, client certificates, once per iteration).
// Fixed default seed; FUZZ_SEED=<n> explores another. Long runs: test/fuzz/cli.ts --target smtp (submission) or smtp-mx.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FuzzFailure, iterationSeed, testSeed } from './rng.js';
import { newSmtpStats, SmtpFuzzTarget, type SmtpStats, type StreamOptions } from './smtp-harness.js';

// The per-session mode: a connection (greeting, prelude, STARTTLS, AUTH or certificate) per iteration.
const SESSIONS = 20;
// Small sessions and a high cut rate, so that a few seconds see every way a session ends.
const STREAM = { iterations: 800, opts: { concurrency: 8, sessionIterations: 40, cutRate: 0.03 } satisfies StreamOptions };

/** The stream mode's run; FuzzFailure messages name the session to replay with the CLI. */
async function streamRun(target: SmtpFuzzTarget, seed: number): Promise<SmtpStats> {
  const stats = newSmtpStats();
  try {
    await target.stream(seed, STREAM.iterations, stats, STREAM.opts);
  } catch (e) {
    assert.fail(`seed ${seed}: ${e instanceof FuzzFailure ? e.message : e instanceof Error ? e.stack : String(e)}`);
  }
  return stats;
}

/** Every way a stream-mode session can go was seen. */
function assertStreamCoverage(stats: SmtpStats): void {
  assert.equal(stats.iterations, STREAM.iterations);
  assert.ok(stats.dataAccepted > 0 && stats.dataRefused + stats.dataCut > 0, 'DATA accepted, and refused or cut off');
  assert.ok(stats.cut > 0 && stats.closedByServer > 0, 'sessions cut by the client and closed by the server');
  assert.ok(stats.sessions > STREAM.opts.concurrency * (STREAM.iterations / STREAM.opts.concurrency / STREAM.opts.sessionIterations), 'sessions replaced');
  assert.ok((stats.replies['500'] ?? 0) > 0 && (stats.replies['503'] ?? 0) > 0, 'unknown verbs and bad sequences answered');
}

it('fuzz smtp stream: mutated command sequences on long-lived submission sessions; answers, survival, nothing half-stored', async (t) => {
  const seed = testSeed(0x53e70003);
  t.diagnostic(`fuzz seed ${seed} (override with FUZZ_SEED=<n>)`);
  const start = performance.now();
  const stats = await streamRun(target, seed);
  const { rows } = await target.check();
  t.diagnostic(`${stats.iterations} iterations over ${stats.sessions} sessions in ${(performance.now() - start).toFixed(0)} ms, ${rows} message rows: ${JSON.stringify(stats)}`);
  assertStreamCoverage(stats);
});
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
  assert.ok(stats.dataAccepted > 0, 'DATA accepted');
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
    assert.ok(stats.dataAccepted > 0, 'DATA accepted');
  });
  it('fuzz smtp-mx stream: mutated command sequences on long-lived MX sessions (peer certificate, none, personal); answers, survival, nothing half-stored', async (t) => {
    const seed = testSeed(0x53e70004);
    t.diagnostic(`fuzz seed ${seed} (override with FUZZ_SEED=<n>)`);
    const start = performance.now();
    const stats = await streamRun(mx, seed);
    const { rows } = await mx.check();
    t.diagnostic(`${stats.iterations} iterations over ${stats.sessions} sessions in ${(performance.now() - start).toFixed(0)} ms, ${rows} message rows: ${JSON.stringify(stats)}`);
    assertStreamCoverage(stats);
    assert.ok(stats.untrustedSessions > 0, 'sessions without the peer certificate');
  });
});
