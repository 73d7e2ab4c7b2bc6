// Plays the imaptest scripted tests that concern message semantics (FETCH BODY/BODYSTRUCTURE/
// ENVELOPE/BODY[]/BINARY[], SEARCH on headers/addresses/bodies, SORT keys) against src/mime and
// checks every expected reply line, the way imaptest matches them (test/imap-conformance's
// script reader and matcher; structures written by the IMAP server's serialiser).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sexpToString } from '../../src/imap/fetch.js';
import { bodyStructure, envelopeSexp } from '../../src/mime/index.js';
import {
  checkFetch,
  commandLine,
  expectedReplies,
  loadImaptest,
  matchContext,
  searchMatch,
  tokenize,
  type Imaptest,
  type Mailbox,
} from './imaptest-harness.js';
import { atom } from '../imap-conformance/imap-args.js';

const FETCH_SCRIPTS = [
  'fetch-bodystructure',
  'fetch-envelope',
  'fetch-body',
  'fetch-body-message-rfc822',
  'fetch-body-message-rfc822-mime',
  'fetch-body-message-rfc822-x2',
  'fetch-body-mime',
  'fetch-binary-mime',
  'fetch-binary-mime-base64',
  'fetch-binary-mime-qp',
];

for (const name of FETCH_SCRIPTS) {
  test(`imaptest ${name}`, () => {
    const t = loadImaptest(name);
    const ctx = matchContext();
    let checked = 0;
    const problems: string[] = [];
    for (const group of t.script.groups) {
      const r = checkFetch(t, group, ctx);
      checked += r.checked;
      problems.push(...r.problems);
    }
    assert.deepEqual(problems, []);
    assert.ok(checked > 0, 'some expectations were checked');
  });
}

/** Each one-command group with an expected `* SEARCH n…` / `* SORT n…` reply: the command and the numbers. */
function numberReplies(t: Imaptest, reply: 'search' | 'sort'): [string, number[]][] {
  const out: [string, number[]][] = [];
  for (const g of t.script.groups) {
    const e = expectedReplies(g, reply)[0];
    if (g.commands.length !== 1 || e === undefined) continue;
    out.push([commandLine(t.script, g.commands[0]!), e.args.slice(1).map((a) => Number(atom(a)))]);
  }
  return out;
}

function runSearch(mb: Mailbox, criteria: string): number[] {
  const tokens = tokenize(criteria);
  const out: number[] = [];
  mb.msgs.forEach((m, i) => {
    if (searchMatch(m, tokens)) out.push(i + 1);
  });
  return out;
}

for (const name of ['search-header', 'search-addresses', 'search-body', 'nil']) {
  test(`imaptest ${name}`, () => {
    const t = loadImaptest(name);
    let checked = 0;
    for (const [command, expected] of numberReplies(t, 'search')) {
      const m = /^search\s+(.*)$/i.exec(command);
      if (m === null) continue;
      assert.deepEqual(runSearch(t.mailbox, m[1]), expected, command);
      checked++;
    }
    assert.ok(checked > 0);
  });
}

type SortKey = 'from' | 'to' | 'cc' | 'subject' | 'displayfrom' | 'displayto' | 'date' | 'size' | 'arrival';

/** Emulates SORT with this module's keys; ties broken by sequence number (as Dovecot does). */
function runSort(mb: Mailbox, program: string): number[] {
  const words = program.toLowerCase().split(/\s+/);
  const keys: { key: SortKey; reverse: boolean }[] = [];
  for (let i = 0; i < words.length; i++) {
    if (words[i] === 'reverse') keys.push({ key: words[++i] as SortKey, reverse: true });
    else keys.push({ key: words[i] as SortKey, reverse: false });
  }
  const value = (seq: number, key: SortKey): string | number => {
    const m = mb.msgs[seq - 1];
    const i = m.info;
    switch (key) {
      case 'from':
        return i.fromSort;
      case 'to':
        return i.toSort;
      case 'cc':
        return i.ccSort;
      case 'subject':
        return i.baseSubject;
      case 'displayfrom':
        return i.displayFrom;
      case 'displayto':
        return i.displayTo;
      case 'size':
        return i.size;
      case 'date':
        return i.sentDate !== null ? Date.parse(i.sentDate) : m.time.getTime();
      case 'arrival':
        return m.time.getTime();
    }
  };
  const seqs = mb.msgs.map((_, k) => k + 1);
  return seqs.sort((a, b) => {
    for (const k of keys) {
      const va = value(a, k.key);
      const vb = value(b, k.key);
      if (va !== vb) return (va < vb ? -1 : 1) * (k.reverse ? -1 : 1);
    }
    return a - b;
  });
}

for (const name of ['sort-addresses', 'sort-display-from', 'sort-display-to', 'sort-subject', 'sort-date', 'sort-size']) {
  test(`imaptest ${name}`, () => {
    const t = loadImaptest(name);
    let checked = 0;
    for (const [command, expected] of numberReplies(t, 'sort')) {
      const m = /^sort\s+\((.*)\)\s+us-ascii\s+all$/i.exec(command);
      if (m === null) continue;
      assert.deepEqual(runSort(t.mailbox, m[1]), expected, command);
      checked++;
    }
    assert.ok(checked > 0);
  });
}

// The same expectations as text: BODY/BODYSTRUCTURE/ENVELOPE replies of the scripts, byte for
// byte (case aside, as imaptest compares), against what the IMAP server's serialiser writes.
for (const name of ['fetch-bodystructure', 'fetch-envelope']) {
  test(`imaptest ${name}: serialized replies`, () => {
    const t = loadImaptest(name);
    let n = 0;
    for (const g of t.script.groups) {
      for (const e of expectedReplies(g, 'fetch')) {
        const m = /^(\d+) FETCH \((BODY|BODYSTRUCTURE|ENVELOPE) (.*)\)$/i.exec(e.text);
        if (m === null) continue;
        const info = t.mailbox.msgs[Number(m[1]) - 1].info;
        const item = m[2].toUpperCase();
        const mine = item === 'ENVELOPE' ? envelopeSexp(info.envelope) : bodyStructure(info, item === 'BODYSTRUCTURE');
        assert.equal(sexpToString(mine).toLowerCase(), m[3].toLowerCase(), e.source);
        n++;
      }
    }
    assert.ok(n > 0);
  });
}

test('Dovecot 2.3.19 output for fetch-body-mime.mbox, byte for byte', () => {
  const info = loadImaptest('fetch-body-mime').mailbox.msgs[0].info;
  assert.equal(
    sexpToString(bodyStructure(info, true)),
    '(("text" "x-myown" ("charset" "us-ascii") NIL NIL "7bit" 7 1 NIL NIL NIL NIL)("message" "rfc822" NIL NIL NIL "7bit" 298 ' +
      '("Sun, 12 Aug 2012 12:34:56 +0300" "submsg" ((NIL NIL "sub" "domain.org")) ((NIL NIL "sub" "domain.org")) ((NIL NIL "sub" "domain.org")) NIL NIL NIL NIL NIL) ' +
      '(("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 20 1 NIL NIL NIL NIL)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 21 1 NIL NIL NIL NIL) "alternative" ("boundary" "sub1") NIL NIL NIL) ' +
      '18 NIL NIL NIL NIL) "mixed" ("boundary" "foo bar") NIL NIL NIL)',
  );
  assert.equal(info.size, 602);
});
