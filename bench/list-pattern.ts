// LIST wildcard matching (bench/README.md): the regular-expression matcher removed in issue 14
// (the baseline, run here with a small pair count only) against src/imap/list-pattern.ts.
//   node --import tsx bench/list-pattern.ts [--max-pairs N]
// For k = 1..N "*%" pairs followed by "a", both match a delegated mailbox name; the figure is the
// wall time per match and the ratio old / new. The old matcher doubles (or worse) per pair: keep
// N small: on the 2-core development machine 4 pairs already take seconds, 6 minutes.
import { compileListPattern } from '../src/imap/list-pattern.js';

/** The matcher src/imap/session.ts had before issue 14 (RFC 9051 §6.3.9 wildcards as a RegExp). */
function regexMatcher(pattern: string): (name: string) => boolean {
  let re = '^';
  for (const ch of pattern) {
    if (ch === '*') re += '.*';
    else if (ch === '%') re += '[^/]*';
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  const rx = new RegExp(re + '$', 's');
  return (name) => rx.test(name);
}

const arg = process.argv.indexOf('--max-pairs');
const maxPairs = arg > 0 ? Number(process.argv[arg + 1]) : 4;
const name = 'Partagés/accueil@b.mssante.test/Drafts';

function time(fn: () => boolean, minMs = 50): { ms: number; result: boolean } {
  let n = 0;
  let result = false;
  const t0 = performance.now();
  do {
    result = fn();
    n++;
  } while (performance.now() - t0 < minMs);
  return { ms: (performance.now() - t0) / n, result };
}

// Warm both up (JIT) on a harmless pattern first.
for (let i = 0; i < 1000; i++) (regexMatcher('*a')(name), compileListPattern('*a')(name));
console.log(`name: ${name}`);
console.log('pairs  regex ms/match   linear ms/match   ratio');
for (let k = 1; k <= maxPairs; k++) {
  const pattern = '*%'.repeat(k) + 'a';
  const old = regexMatcher(pattern);
  const now = compileListPattern(pattern);
  const a = time(() => old(name), 0);
  const b = time(() => now(name));
  if (a.result !== b.result) throw new Error(`matchers disagree on ${pattern}`);
  console.log(`${String(k).padStart(5)}  ${a.ms.toFixed(4).padStart(15)}   ${b.ms.toFixed(4).padStart(15)}   ${(a.ms / b.ms).toFixed(0).padStart(5)}×`);
}
for (const k of [100, 500]) {
  const pattern = '*%'.repeat(k) + 'a';
  console.log(`${String(k).padStart(5)}  ${'(not run)'.padStart(15)}   ${time(() => compileListPattern(pattern)(name)).ms.toFixed(4).padStart(15)}`);
}
