// The imaptest conformance suite as one call, for any IMAP server: runConformance(target,
// knownFailures) runs every script and reports what is wrong — a failure not listed as known,
// a listed failure that now passes, a listed name that is no script. conformance.test.ts
// points it at a private Dovecot; the same call takes Caducée's IMAP server, e.g.
//
//   const op = await startOperator({ ..., imap: { port } });
//   const report = await runConformance(
//     { name: 'Caducée', host: '127.0.0.1', port, tls: 'implicit', ca: caPem, user, password },
//     CADUCEE_KNOWN_FAILURES,
//   );
//   assert.deepEqual(report.problems, [], formatReport(report));
import { runAll, type RunOptions, type RunSummary, type ScriptResult } from './runner.js';
import type { DovecotPeer } from '../peers/dovecot.js';
import { DOVECOT_SKIPS } from './known-failures.js';

export interface ConformanceTarget extends RunOptions {
  /** Name used in reports, e.g. "Dovecot 2.3" or "Caducée". */
  name: string;
  /** Scripts not to run against this target: name -> reason (run anyway when named in `only`). */
  skip?: Record<string, string>;
}

export interface ConformanceReport extends RunSummary {
  target: string;
  /** What makes the run fail: new failures, listed failures that pass, unknown names. Empty when all is as expected. */
  problems: string[];
}

export interface ConformanceOptions {
  only?: string[];
  onResult?: (r: ScriptResult) => void;
}

/** Runs all imaptest scripts against `target`; `knownFailures` (name -> reason) are expected to fail. */
export async function runConformance(
  target: ConformanceTarget,
  knownFailures: Record<string, string> = {},
  o: ConformanceOptions = {},
): Promise<ConformanceReport> {
  const { name, skip, ...opts } = target;
  const summary = await runAll(opts, { only: o.only, knownFailures, skip, onResult: o.onResult });
  const problems: string[] = [];
  for (const r of summary.newFailures) problems.push(`${r.name} failed (not a known failure):\n${indent(r.reason ?? '', 2)}`);
  for (const n of summary.fixed) problems.push(`${n} passed but is listed as a known failure ("${knownFailures[n]}"): remove it from the list`);
  for (const n of summary.unknownKnownFailures) problems.push(`${n} is listed as a known failure but there is no such script`);
  return { ...summary, target: name, problems };
}

/** The report as text lines: counts, skips and known failures with reasons, then problems. */
export function formatReport(r: ConformanceReport, knownFailures: Record<string, string> = {}): string {
  const lines: string[] = [];
  lines.push(
    `imaptest conformance against ${r.target}: ${r.total} scripts in ${(r.durationMs / 1000).toFixed(1)} s — ` +
      `ran ${r.ran}, passed ${r.passed}, failed ${r.failed} (${r.knownFailed.length} known), skipped ${r.skipped}`,
  );
  const skipped = r.results.filter((x) => x.status === 'skip');
  if (skipped.length > 0) {
    lines.push('skipped:');
    for (const x of skipped) lines.push(`  ${x.name}: ${x.reason ?? ''}`);
  }
  if (r.knownFailed.length > 0) {
    lines.push('known failures:');
    for (const x of r.knownFailed) lines.push(`  ${x.name}: ${knownFailures[x.name] ?? '(listed)'}`);
  }
  if (r.problems.length > 0) {
    lines.push('PROBLEMS:');
    for (const p of r.problems) lines.push(indent(p, 2));
  }
  return lines.join('\n');
}

/** The target for a DovecotPeer started with `urlauth: true` (users without a domain: $domain is then the host, as URLAUTH wants). */
export function dovecotTarget(peer: DovecotPeer): ConformanceTarget {
  return {
    name: 'Dovecot (Debian dovecot-imapd)',
    host: peer.host,
    port: peer.port,
    tls: 'implicit',
    ca: peer.certPem,
    user: 'imaptest',
    password: peer.password,
    user2: 'imaptest2',
    password2: peer.password,
    skip: DOVECOT_SKIPS,
  };
}

function indent(s: string, n: number): string {
  const pad = ' '.repeat(n);
  return s
    .split('\n')
    .map((l) => pad + l)
    .join('\n');
}
