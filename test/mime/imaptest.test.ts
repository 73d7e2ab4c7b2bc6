// Plays the imaptest scripted tests that concern message semantics (FETCH BODY/BODYSTRUCTURE/
// ENVELOPE/BODY[]/BINARY[], SEARCH on headers/addresses/bodies, SORT keys) against src/mime and
// checks every expected reply line, the way imaptest matches them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bodyStructure, envelopeSexp } from '../../src/mime/index.js';
import {
  argMatch,
  checkFetch,
  loadMailbox,
  parseArgs,
  readScript,
  searchMatch,
  ser,
  tokenize,
  type Arg,
  type Mailbox,
} from './imaptest-harness.js';

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
    const mb = loadMailbox(name);
    const { commands } = readScript(name);
    const vars = new Map<string, Arg>();
    let checked = 0;
    const problems: string[] = [];
    for (const cmd of commands) {
      if (!/^fetch\s/i.test(cmd.command)) continue;
      const r = checkFetch(mb, cmd, vars);
      checked += r.checked;
      problems.push(...r.problems);
    }
    assert.deepEqual(problems, []);
    assert.ok(checked > 0, 'some expectations were checked');
  });
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
    const mb = loadMailbox(name);
    const { commands } = readScript(name);
    let checked = 0;
    for (const cmd of commands) {
      const m = /^search\s+(.*)$/i.exec(cmd.command);
      if (m === null || cmd.expect.length === 0) continue;
      const expected = parseArgs(cmd.expect[0].line)
        .slice(1)
        .map((a) => Number((a as { v: string }).v));
      assert.deepEqual(runSearch(mb, m[1]), expected, cmd.command);
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
        return i.sentDate !== null ? Date.parse(i.sentDate) : internalDate(m.fromLine);
      case 'arrival':
        return internalDate(m.fromLine);
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

/** The mbox "From " line date (imaptest appends with it as INTERNALDATE). */
function internalDate(fromLine: string): number {
  const m = /(\w{3}) (\w{3})\s+(\d+) (\d+):(\d+):(\d+) (\d{4})(?: ([+-]\d{4}))?/.exec(fromLine)!;
  const mon = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'].indexOf(m[2].toLowerCase());
  const tz = m[8] ? (m[8][0] === '-' ? -1 : 1) * (Number(m[8].slice(1, 3)) * 60 + Number(m[8].slice(3))) : 0;
  return Date.UTC(Number(m[7]), mon, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) - tz * 60000;
}

for (const name of ['sort-addresses', 'sort-display-from', 'sort-display-to', 'sort-subject', 'sort-date', 'sort-size']) {
  test(`imaptest ${name}`, () => {
    const mb = loadMailbox(name);
    const { commands } = readScript(name);
    let checked = 0;
    for (const cmd of commands) {
      const m = /^sort\s+\((.*)\)\s+us-ascii\s+all$/i.exec(cmd.command);
      if (m === null || cmd.expect.length === 0) continue;
      const expected = parseArgs(cmd.expect[0].line)
        .slice(1)
        .map((a) => Number((a as { v: string }).v));
      assert.deepEqual(runSort(mb, m[1]), expected, cmd.command);
      checked++;
    }
    assert.ok(checked > 0);
  });
}

// The same expectations as serialized text: BODY/BODYSTRUCTURE/ENVELOPE replies of the scripts
// compared with ser() of this module's data (case-insensitively, as imaptest compares).
for (const name of ['fetch-bodystructure', 'fetch-envelope']) {
  test(`imaptest ${name}: serialized replies`, () => {
    const mb = loadMailbox(name);
    let n = 0;
    for (const cmd of readScript(name).commands) {
      for (const e of cmd.expect) {
        const m = /^(\d+) FETCH \((BODY|BODYSTRUCTURE|ENVELOPE) (.*)\)$/i.exec(e.line);
        if (m === null) continue;
        const info = mb.msgs[Number(m[1]) - 1].info;
        const item = m[2].toUpperCase();
        const mine = item === 'ENVELOPE' ? envelopeSexp(info.envelope) : bodyStructure(info, item === 'BODYSTRUCTURE');
        assert.equal(ser(mine).toLowerCase(), m[3].toLowerCase(), e.line);
        n++;
      }
    }
    assert.ok(n > 0);
  });
}

test('Dovecot 2.3.19 output for fetch-body-mime.mbox, byte for byte', () => {
  const info = loadMailbox('fetch-body-mime').msgs[0].info;
  assert.equal(
    ser(bodyStructure(info, true)),
    '(("text" "x-myown" ("charset" "us-ascii") NIL NIL "7bit" 7 1 NIL NIL NIL NIL)("message" "rfc822" NIL NIL NIL "7bit" 298 ' +
      '("Sun, 12 Aug 2012 12:34:56 +0300" "submsg" ((NIL NIL "sub" "domain.org")) ((NIL NIL "sub" "domain.org")) ((NIL NIL "sub" "domain.org")) NIL NIL NIL NIL NIL) ' +
      '(("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 20 1 NIL NIL NIL NIL)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 21 1 NIL NIL NIL NIL) "alternative" ("boundary" "sub1") NIL NIL NIL) ' +
      '18 NIL NIL NIL NIL) "mixed" ("boundary" "foo bar") NIL NIL NIL)',
  );
  assert.equal(info.size, 602);
});

test('argMatch follows imaptest rules', () => {
  const vars = new Map<string, Arg>();
  assert.ok(argMatch(parseArgs('"TEXT"')[0], { t: 'str', v: 'text' }, vars));
  assert.ok(argMatch(parseArgs('$x')[0], { t: 'str', v: 'a' }, vars));
  assert.ok(!argMatch(parseArgs('$x')[0], { t: 'str', v: 'b' }, vars));
  assert.ok(!argMatch(parseArgs('NIL')[0], { t: 'str', v: '' }, vars));
});
