// LIST pattern matcher (RFC 9051 §6.3.9): same answers as the plain wildcard semantics, and a
// pathological pattern costs |name| × |pattern| steps, not an exponential search.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileListPattern, ListPatternTooLong, MAX_LIST_PATTERN } from './list-pattern.js';

/** Reference semantics by plain recursion (exponential, so only for the short random cases). */
function reference(p: string, n: string): boolean {
  if (p === '') return n === '';
  const c = p[0];
  if (c === '*') return reference(p.slice(1), n) || (n !== '' && reference(p, n.slice(1)));
  if (c === '%') return reference(p.slice(1), n) || (n !== '' && n[0] !== '/' && reference(p, n.slice(1)));
  return n !== '' && n[0] === c && reference(p.slice(1), n.slice(1));
}

test('wildcards: "*" crosses the delimiter, "%" does not; literals exact; INBOX case-insensitive', () => {
  const cases: [string, string, boolean][] = [
    ['*', 'Partagés/accueil@b.mssante.test/Drafts', true],
    ['%', 'Partagés/accueil@b.mssante.test/Drafts', false],
    ['%', 'Sent', true],
    ['Partagés/%', 'Partagés/accueil@b.mssante.test', true],
    ['Partagés/%', 'Partagés/accueil@b.mssante.test/Drafts', false],
    ['Partagés/%/%', 'Partagés/accueil@b.mssante.test/Drafts', true],
    ['*Drafts', 'Partagés/accueil@b.mssante.test/Drafts', true],
    ['%Drafts', 'Partagés/accueil@b.mssante.test/Drafts', false],
    ['S%t', 'Sent', true],
    ['S%t', 'Sen/t', false],
    ['', '', true],
    ['', 'INBOX', false],
    ['a.b', 'axb', false], // no regular-expression meaning leaks through
    ['(x)+', '(x)+', true],
    ['inbox', 'INBOX', true],
    ['Inbox/%', 'INBOX/Projets', true],
    ['inbox', 'inbox', true], // a name is compared as given (the store keeps INBOX upper-case)
    ['sent', 'Sent', false], // only INBOX is case-insensitive
  ];
  for (const [p, n, want] of cases) assert.equal(compileListPattern(p)(n), want, `${JSON.stringify(p)} vs ${JSON.stringify(n)}`);
});

test('random patterns agree with the reference semantics', () => {
  let state = 20261207;
  const rnd = () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 8) / 2 ** 24; // fixed-seed LCG
  const alphabet = ['a', 'b', '/', '*', '%'];
  const names = ['', 'a', 'ab', 'a/b', 'ba/ab', 'a/b/a', 'aaa/bb', 'b//a', 'abab/abab/a'];
  for (let i = 0; i < 3000; i++) {
    const len = Math.floor(rnd() * 9);
    let p = '';
    for (let k = 0; k < len; k++) p += alphabet[Math.floor(rnd() * alphabet.length)];
    const m = compileListPattern(p);
    for (const n of names) assert.equal(m(n), reference(p, n), `${JSON.stringify(p)} vs ${JSON.stringify(n)}`);
  }
});

// The regular expression this replaces blocked the process 3.8 s with 8 "*%" pairs and 128 s with
// 10; here 500 pairs against a long name answer at once (a regression would hang this test).
test('pathological patterns from the IMAP fuzz corpus answer without backtracking', () => {
  const name = 'Partagés/accueil@b.mssante.test/Drafts';
  for (const pattern of ['*%*%*%*%*%*%*%*%a', '*%*%*%*%*%*%*%*%*%*%a', '*%'.repeat(500) + 'a', '%*'.repeat(300) + 'x' + '*a'.repeat(100), '*a'.repeat(200) + '%']) {
    const m = compileListPattern(pattern);
    assert.equal(m(name), false, pattern.slice(0, 40));
    assert.equal(m(name.repeat(20)), false);
  }
  assert.equal(compileListPattern('*%'.repeat(400) + 's')(name), true);
  assert.equal(compileListPattern('*a*a*a*a*a*a*a*a*a*a*a*b')('a'.repeat(5000)), false);
});

test('patterns longer than the limit are refused', () => {
  assert.doesNotThrow(() => compileListPattern('*'.repeat(MAX_LIST_PATTERN)));
  assert.throws(() => compileListPattern('*'.repeat(MAX_LIST_PATTERN + 1)), ListPatternTooLong);
});
