// Unit tests of the imaptest runner's pieces, no server needed: script parsing (every script
// of the suite, and each construct), reply matching, variable expansion, mbox reading.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, type ImapArg } from './imap-args.js';
import { expandAll, FULL, matchArgs, UninitializedVariable, type MatchContext } from './match.js';
import { imapDateTime, MboxSource, parseFromLine, parseMbox } from './mbox.js';
import { commandText, listScripts, loadScript, parseScript, ScriptParseError } from './script.js';
import { decodeMutf7, defaultTestsDir, mailboxUrl } from './runner.js';
import { inCI } from '../peers/which.js';

const dir = defaultTestsDir();
const haveScripts = existsSync(dir);
if (!haveScripts && inCI()) throw new Error(`CI must not skip: imaptest scripts missing in ${dir}`);
const noScripts = haveScripts ? undefined : `imaptest scripts not found in ${dir}`;

const parse = (text: string) => parseScript(text, { name: 't', env: {} });

function ctx(vars: Record<string, string> = {}, seqmap: number[] = []): MatchContext {
  return {
    vars: new Map(Object.entries(vars)),
    relativeSeq: (n) => (n > seqmap.length ? '<out of range>' : seqmap[n - 1] === 0 ? '<expunged>' : String(seqmap[n - 1])),
  };
}

/** Matches an expected untagged line (as written in a script, defaults applied) against a reply line. */
function matchLine(expected: string, reply: string, c = ctx(), prefix = false): number {
  const s = parse(`state: auth\n\nok noop\n* ${expected}\n`);
  return matchArgs(c, s.groups[0]!.untagged[0]!.args, parseArgs(reply, { tolerant: true }), Number.POSITIVE_INFINITY, prefix);
}

describe('imap-args', () => {
  it('reads atoms, strings, literals, NIL and lists like Dovecot with ATOM_ALLCHARS', () => {
    const a = parseArgs('1 FETCH (BODY[HEADER.FIELDS (FROM)] {5}\r\nab\r\nc UID 7 X NIL "q\\"s")');
    const list = (a[2] as { items: ImapArg[] }).items;
    assert.deepEqual(list[0], { type: 'atom', value: 'BODY[HEADER.FIELDS' });
    assert.deepEqual(list[1], { type: 'list', items: [{ type: 'atom', value: 'FROM' }] });
    assert.deepEqual(list[2], { type: 'atom', value: ']' });
    assert.deepEqual(list[3], { type: 'string', value: 'ab\r\nc', form: 'literal' });
    assert.deepEqual(list[7], { type: 'nil' });
    assert.deepEqual(list[8], { type: 'string', value: 'q"s', form: 'quoted' });
    assert.deepEqual(parseArgs('~{2}\r\n\x00\xff')[0], { type: 'string', value: '\x00\xff', form: 'literal8' });
  });
  it('is tolerant of free text in server replies, strict for scripts', () => {
    assert.doesNotThrow(() => parseArgs('OK [ALERT] it is "unbalanced (', { tolerant: true }));
    assert.throws(() => parseArgs('x "unbalanced'));
    assert.deepEqual(parseArgs('OK done)', { tolerant: true })[1], { type: 'atom', value: 'done)' });
  });
});

describe('script parser', () => {
  it('parses every script of the suite', { skip: noScripts }, () => {
    const names = listScripts(dir);
    assert.ok(names.length >= 70, `only ${names.length} scripts`);
    assert.ok(!names.includes('broken') && !names.includes('default.mbox'));
    for (const n of names) {
      const { script, mboxPath } = loadScript(dir, n, {});
      assert.ok(script.groups.length > 0, n);
      const mbox = parseMbox(readFileSync(mboxPath).toString('latin1'), mboxPath);
      assert.ok(mbox.length > 0, n);
    }
  });

  it('reads the header, with the documented defaults', () => {
    const s = parse('capabilities: SORT  THREAD=REFERENCES\nconnections: 2\nuser 2: $user2\n\n1 ok noop\n');
    assert.deepEqual(s.capabilities, ['SORT', 'THREAD=REFERENCES']);
    assert.equal(s.connections, 2);
    assert.equal(s.state, 'selected');
    assert.equal(s.messages, 'all');
    assert.equal(s.ignoreExtraUntagged, true);
    assert.equal(s.requireUser2, true);
    assert.deepEqual(s.users[1], { kind: 'user2' });
    const t = parse('state: Nonauth\nmessages: 3\nignore_extra_untagged: no\n\nok noop\n');
    assert.equal(t.state, 'nonauth');
    assert.equal(t.messages, 3);
    assert.equal(t.ignoreExtraUntagged, false);
    assert.throws(() => parse('colour: blue\n\nok noop\n'), ScriptParseError);
  });

  it('reads the three command methods and adds the closing LOGOUT', () => {
    const s = parse(
      [
        'connections: 2',
        '',
        '# method 1',
        '1 ok select $mailbox',
        '* 0 exists',
        '# method 2, reply without and with the connection number',
        '2 examine $mailbox',
        '* ok [uidvalidity $v]',
        'ok [read-only]',
        '1 select $mailbox',
        '1 ok [read-write]',
        '# method 3',
        '1 tag1 status ${mailbox} (messages)',
        '1 tag2 status ${mailbox}2 (messages)',
        '* status ${mailbox} (messages 0)',
        'tag2 ok',
        '1 tag1 ""',
        '2 "" delete ${mailbox}2',
        '',
      ].join('\n'),
    );
    const g = s.groups;
    assert.equal(g.length, 6);
    assert.deepEqual([g[0]!.connection, commandText(g[0]!.commands[0]!), g[0]!.commands[0]!.reply], [0, 'select $mailbox', [{ type: 'atom', value: 'ok' }]]);
    assert.equal(g[0]!.untagged[0]!.existence, 'must');
    assert.equal(g[1]!.connection, 1);
    assert.deepEqual(g[1]!.commands[0]!.reply, [
      { type: 'atom', value: 'ok' },
      { type: 'atom', value: '[read-only]' },
    ]);
    assert.deepEqual(g[2]!.commands[0]!.reply[1], { type: 'atom', value: '[read-write]' });
    assert.deepEqual(
      g[3]!.commands.map((c) => [c.tag, commandText(c)]),
      [
        [1, 'status ${mailbox} (messages)'],
        [2, 'status ${mailbox}2 (messages)'],
      ],
    );
    assert.deepEqual(g[3]!.commands[0]!.reply, [{ type: 'string', value: '', form: 'quoted' }]);
    assert.deepEqual(g[4]!.commands[0]!.reply, [{ type: 'atom', value: '' }]);
    assert.deepEqual([g[5]!.connection, commandText(g[5]!.commands[0]!), g[5]!.commands[0]!.line], [0, 'logout', 0]);
  });

  it('rejects a missing reply, a missing connection number, mixed connections in a pipeline', () => {
    assert.throws(() => parse('state: auth\n\nnoop\n'), /missing reply/);
    assert.throws(() => parse('state: auth\n\nnoop\nnoop\nok\n'), /missing reply from previous command group/);
    assert.throws(() => parse('connections: 2\n\nok noop\n'), /missing connection number/);
    assert.throws(() => parse('connections: 2\n\n1 tag1 noop\n2 tag2 noop\n1 tag1 ok\n2 tag2 ok\n'), /same connection/);
    assert.throws(() => parse('state: auth\n\ntag1 noop\ntag1 noop\ntag1 ok\n'), /tag reused/);
  });

  it('builds multi-line literals as imaptest does (CRLF lines, last line end dropped; ~{{{ keeps bytes, LF)', () => {
    const s = parse('state: auth\n\nok append $mailbox {{{\nFrom: a\n\nbody\n}}} {{{\nx\n}}}\nok fetch 1 body[]\n* 1 fetch (body[] ~{{{\na\r\nb\n\n}}})\n');
    const parts = s.groups[0]!.commands[0]!.parts;
    assert.deepEqual(parts, [
      { kind: 'text', text: 'append $mailbox ' },
      { kind: 'literal', data: 'From: a\r\n\r\nbody', binary: false },
      { kind: 'text', text: ' ' },
      { kind: 'literal', data: 'x', binary: false },
    ]);
    const fetchList = (s.groups[1]!.untagged[0]!.args[2] as { items: ImapArg[] }).items;
    assert.deepEqual(fetchList[fetchList.length - 1], { type: 'string', value: 'a\r\nb\n', form: 'literal8' });
  });

  it('inserts the default directives (FETCH pairs, FLAGS, LIST, STATUS) unless the list has its own', () => {
    const s = parse(
      'state: auth\n\nok noop\n* 1 fetch (uid 1 flags (\\seen))\n* list (\\noselect) "/" x\n* status x (messages 1)\n* 2 fetch (flags ($!extra))\n',
    );
    const u = s.groups[0]!.untagged.map((x) => x.args);
    const items = (a: ImapArg | undefined) => (a as { items: ImapArg[] }).items.map((i) => (i.type === 'atom' ? i.value : i.type));
    assert.deepEqual(items(u[0]![2]), ['$!unordered=2', 'uid', '1', 'flags', 'list']);
    assert.deepEqual(items((u[0]![2] as { items: ImapArg[] }).items[4]), [
      '$!unordered',
      '$!noextra',
      '$!ignore=\\recent',
      '$!ignore=$HasAttachment',
      '$!ignore=$HasNoAttachment',
      '\\seen',
    ]);
    assert.deepEqual(items(u[1]![1]), ['$!unordered', '\\noselect']);
    assert.deepEqual(items(u[2]![2]), ['$!unordered=2', 'messages', '1']);
    assert.deepEqual(items((u[3]![2] as { items: ImapArg[] }).items[2]), ['$!extra']);
    assert.throws(() => parse('state: auth\n\nok noop\n* 1 fetch ($!unordered=2 uid)\n'), /chain size=2/);
    assert.throws(() => parse('state: auth\n\nok noop\n* x ($!sorted a)\n'), /unknown directive/);
  });

  it('honours !ifenv / !ifnenv / !else / !endif and !sleep', () => {
    const text = 'state: auth\n\n!ifenv FOO\nok foo\n!else\nok bar\n!endif\n!ifnenv FOO\nok baz\n!sleep 250ms\n!endif\n';
    const without = parseScript(text, { name: 't', env: {} });
    assert.deepEqual(without.groups.map((g) => commandText(g.commands[0]!)), ['bar', 'baz', 'logout']);
    assert.equal(without.groups[1]!.sleepMs, 250);
    const withFoo = parseScript(text, { name: 't', env: { FOO: '1' } });
    assert.deepEqual(withFoo.groups.map((g) => commandText(g.commands[0]!)), ['foo', 'logout']);
  });

  it('does not add LOGOUT when the script logs out or expects BYE', () => {
    const s = parse('state: nonauth\n\nok logout\n* bye\n');
    assert.equal(s.groups.length, 1);
    assert.equal(s.groups[0]!.expectsBye, true);
  });
});

describe('matching', () => {
  it('compares case-insensitively and types loosely (atom, string, literal alike)', () => {
    assert.equal(matchLine('1 fetch (flags (\\seen))', '1 FETCH (FLAGS (\\Seen))'), FULL);
    assert.equal(matchLine('list () "/" "Foo"', 'LIST () "/" {3}\r\nfoo'), FULL);
    assert.notEqual(matchLine('1 fetch (uid 5)', '1 FETCH (UID 6)'), FULL);
    assert.notEqual(matchLine('search 1 2', 'SEARCH 1 2 3'), FULL);
    assert.notEqual(matchLine('search 1 2 3', 'SEARCH 1 2'), FULL);
  });

  it('captures variables on first match, then requires the same value', () => {
    const c = ctx();
    assert.equal(matchLine('1 fetch (uid $uid1)', '1 FETCH (UID 42)', c), FULL);
    assert.equal(c.vars.get('uid1'), '42');
    assert.equal(matchLine('search $uid1', 'SEARCH 42', c), FULL);
    assert.notEqual(matchLine('search $uid1', 'SEARCH 43', c), FULL);
    const d = ctx();
    assert.equal(matchLine('esearch (tag $tag) uid all $a:$b,$c', 'ESEARCH (TAG "1.5") UID ALL 3:5,9', d), FULL);
    assert.deepEqual([d.vars.get('tag'), d.vars.get('a'), d.vars.get('b'), d.vars.get('c')], ['1.5', '3', '5', '9']);
    const e = ctx({ sep: '/' });
    assert.equal(matchLine('list () $sep ${mailbox}${sep}x', 'LIST () "/" imaptest/x', e), FULL);
    assert.equal(e.vars.get('mailbox'), 'imaptest');
    assert.equal(matchLine('1 fetch (flags ($$hello))', '1 FETCH (FLAGS ($hello))'), FULL);
  });

  it('$ matches any one argument, a list too; a named variable neither a list nor NIL', () => {
    assert.equal(matchLine('1 fetch (uid $ flags $)', '1 FETCH (UID 3 FLAGS (\\Seen))'), FULL);
    assert.notEqual(matchLine('1 fetch (flags $f)', '1 FETCH (FLAGS (\\Seen))'), FULL);
    assert.notEqual(matchLine('urlfetch x $v', 'URLFETCH x NIL'), FULL);
    assert.equal(matchLine('urlfetch x nil', 'URLFETCH x NIL'), FULL);
  });

  it('matches FETCH items in any order, FLAGS as a set without extras but \\Recent', () => {
    assert.equal(matchLine('1 fetch (uid 3 flags (\\seen \\flagged))', '1 FETCH (FLAGS (\\Flagged \\Recent \\Seen) UID 3)'), FULL);
    assert.notEqual(matchLine('1 fetch (flags (\\seen))', '1 FETCH (FLAGS (\\Seen \\Draft))'), FULL);
    assert.notEqual(matchLine('1 fetch (flags ())', '1 FETCH (FLAGS (\\Seen))'), FULL);
    assert.equal(matchLine('1 fetch (flags ())', '1 FETCH (FLAGS (\\Recent))'), FULL);
    // Extra FETCH items are fine; explicit $!noextra makes them not.
    assert.equal(matchLine('1 fetch (uid 3)', '1 FETCH (UID 3 MODSEQ (5))'), FULL);
    assert.notEqual(matchLine('1 fetch ($!unordered=2 $!noextra uid 3)', '1 FETCH (UID 3 MODSEQ (5))'), FULL);
    // $!ban with the default "extra" of an unordered list.
    assert.notEqual(matchLine('list ($!unordered $!ban=\\noselect \\subscribed) "/" x', 'LIST (\\Subscribed \\NoSelect) "/" x'), FULL);
    assert.equal(matchLine('list ($!unordered $!ban=\\noselect \\subscribed) "/" x', 'LIST (\\Subscribed \\NonExistent) "/" x'), FULL);
  });

  it('matches status replies and tagged replies as a prefix', () => {
    assert.equal(matchLine('ok [uidvalidity $v]', 'OK [UIDVALIDITY 77] UIDs valid', ctx(), true), FULL);
    const s = parse('state: auth\n\nselect x\nok [read-write]\n');
    const reply = s.groups[0]!.commands[0]!.reply;
    const got = (r: string) => matchArgs(ctx(), reply, parseArgs(r, { tolerant: true }), Number.POSITIVE_INFINITY, true);
    assert.equal(got('OK [READ-WRITE] Select completed.'), FULL);
    assert.notEqual(got('OK [READ-ONLY] Select completed.'), FULL);
    assert.notEqual(got('NO [READ-WRITE] x'), FULL);
    const any = parse('state: auth\n\n"" delete x\n').groups[0]!.commands[0]!.reply;
    assert.equal(matchArgs(ctx(), any, parseArgs('NO no such mailbox'), Number.POSITIVE_INFINITY, true), FULL);
  });

  it('expands $N to the current sequence of message N after expunges', () => {
    const c = ctx({}, [0, 1, 0, 2]); // 1 and 3 expunged
    assert.equal(matchLine('$4 fetch (flags (\\flagged))', '2 FETCH (FLAGS (\\Flagged))', c), FULL);
    assert.notEqual(matchLine('$1 expunge', '1 EXPUNGE', c), FULL);
  });

  it('compares strings up to their first NUL, as imaptest (C strings)', () => {
    assert.equal(matchLine('1 fetch (binary[1] ~{{{\n\x00ab\n}}})', '1 FETCH (BINARY[1] ~{4}\r\n\x00xyz)'), FULL);
    assert.notEqual(matchLine('1 fetch (binary[1] ~{{{\na\x00b\n}}})', '1 FETCH (BINARY[1] ~{4}\r\nc\x00yz)'), FULL);
  });

  it('expands command variables ($$, $!, ${name}, relative sequences) and refuses unknown ones', () => {
    const c = ctx({ mailbox: 'imaptest', uid1: '7' }, [1, 0, 2]);
    assert.equal(expandAll(c, 'store $uid1,$3 flags ($$kw) ${mailbox}2 $'), 'store 7,2 flags ($kw) imaptest2 $');
    assert.throws(() => expandAll(c, 'fetch $nope uid'), UninitializedVariable);
  });
});

describe('mbox', () => {
  it('splits on From_ lines, keeps the blank line before the next one, CRLF, no >From unescaping', () => {
    const m = parseMbox(
      'From a@b  Sat Mar 24 23:00:00 2007 +0200\nSubject: 1\n\n>From here\nFrom nobody parses this\n\nFrom x  Fri Feb 22 17:06:23 2008\nSubject: 2\r\n\r\nb\n',
    );
    assert.equal(m.length, 2);
    assert.equal(m[0]!.data, 'Subject: 1\r\n\r\n>From here\r\nFrom nobody parses this\r\n\r\n');
    assert.equal(m[1]!.data, 'Subject: 2\r\n\r\nb\r\n');
    assert.equal(imapDateTime(m[0]!), '24-Mar-2007 23:00:00 +0200');
    assert.equal(m[0]!.time.toISOString(), '2007-03-24T21:00:00.000Z');
    assert.throws(() => parseMbox('Subject: no From_ line\n'));
  });

  it('reads From_ dates without a zone in local time; wraps around', () => {
    const f = parseFromLine('From user@domain  Fri Feb  2 17:06:23 2008')!;
    const local = new Date(2008, 1, 2, 17, 6, 23);
    assert.equal(f.time.getTime(), local.getTime());
    assert.equal(f.tzOffsetMinutes, -local.getTimezoneOffset());
    const src = new MboxSource(parseMbox('From a  Sat Mar 24 23:00:00 2007\n1\nFrom a  Sat Mar 24 23:00:00 2007\n2\n'));
    assert.deepEqual([src.next().data, src.eof(), src.next().data, src.eof(), src.next().data], ['1\r\n', false, '2\r\n', true, '1\r\n']);
  });

  it('reads the suite fixtures', { skip: noScripts }, () => {
    const m = parseMbox(readFileSync(join(dir, 'fetch-body.mbox')).toString('latin1'));
    assert.equal(m.length, 4);
    assert.ok(m[0]!.data.endsWith('body1\r\n\r\n'));
  });
});

describe('mailbox URL', () => {
  it('decodes modified UTF-7 and percent-encodes for the URL path', () => {
    assert.equal(decodeMutf7('p&AOQA5A-&-x'), 'pää&x');
    assert.equal(mailboxUrl('imaptest/p&AOQA5A-;x'), 'imaptest/p%C3%A4%C3%A4%3Bx');
  });
});
