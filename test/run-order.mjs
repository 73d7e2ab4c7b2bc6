#!/usr/bin/env node
// The test files `npm test` runs, longest first (plain Node, no tsx: it runs before the suite).
// With --test-concurrency=2 the runner starts the files in the order given, two at a time: a long
// file started last would run alone at the end and stretch the wall time, so the known long ones
// go first and the rest follow in name order. Every *.test.ts under test/ and src/ is listed
// exactly once whatever LONGEST_FIRST says (test/run-order.test.ts checks it against its own walk);
// a name in LONGEST_FIRST that no longer exists is an error, so the list cannot go stale silently.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Longest first: per-file durations of a whole-suite run (node --test --test-reporter tap,
 * sum of the top-level tests' duration_ms); see README "Tests".
 */
export const LONGEST_FIRST = [
  // Ranked from the quiet run of 8 December 2026 (12 min 46 s; seconds of its tests in brackets).
  'src/mail/header-index.test.ts', // (189) random search keys × 200 messages, SQLite and PostgreSQL, plain and sealed
  'test/testssl.test.ts', // (121) testssl.sh's whole scan on the MX
  'test/crash-safety.test.ts', // (90) SIGKILL of real operator processes, restarted and checked
  'test/webmail.test.ts', // (77) Chromium
  'test/nodes.test.ts', // (47) two nodes of one operator on PostgreSQL
  'test/keys-cli.test.ts', // (40) `caducee keys` processes, SQLite and PostgreSQL
  'test/cli.test.ts', // (37) one `caducee` process per command (~3 s of CPU each)
  'test/demo-nodes-cli.test.ts', // (29) `caducee demo --postgres --nodes 2` processes
  'test/slow-clients.test.ts', // 2,000 slow connections
  'test/absence-cli.test.ts', // (23)
  'test/workers.test.ts', // (22) `caducee start --workers 2`
  'test/directory-publish.test.ts', // (22)
  'test/rules.test.ts', // (21)
  'test/api-client-cli.test.ts', // (18)
  'test/traces.test.ts', // (16)
  'test/imap-conformance/caducee.test.ts', // imaptest's scripts
  'test/imap-conformance/conformance.test.ts', // (14) imaptest's scripts against Dovecot
  'test/mbsync.test.ts', // (14)
  'test/queue-claims-postgres.test.ts', // (13)
  'test/peers/postfix.test.ts',
  'test/postfix-interop.test.ts',
  'test/demo-cli.test.ts',
  'test/content-policy.test.ts',
  'test/demo-psc.test.ts',
  'test/connection-limits.test.ts',
];

/** Every *.test.ts under the given directories, relative to `root`, in name order. */
export function testFiles(root, dirs = ['test', 'src']) {
  const out = [];
  const walk = (rel) => {
    for (const e of readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const p = path.posix.join(rel, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && e.name.endsWith('.test.ts')) out.push(p);
    }
  };
  for (const d of dirs) walk(d);
  return out.sort();
}

/** LONGEST_FIRST, then every other test file in name order. */
export function runOrder(root) {
  const all = testFiles(root);
  const missing = LONGEST_FIRST.filter((f) => !all.includes(f));
  if (missing.length) throw new Error(`test/run-order.mjs names test files that do not exist: ${missing.join(', ')}; remove or rename them in LONGEST_FIRST`);
  return [...LONGEST_FIRST, ...all.filter((f) => !LONGEST_FIRST.includes(f))];
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(runOrder(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')).join('\n') + '\n');
}
