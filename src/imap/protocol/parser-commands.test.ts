// IMAP command parser: the grammar of each command (RFC 9051 §6 and extensions).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SearchKey } from './types.js';
import { events, commands, cmd, bad, searchKey, set, INF } from '../../../test/imap/parser-helpers.js';

describe('sequence sets', () => {
  const fetchSet = (s: string) => {
    const c = cmd(`a FETCH ${s} UID`);
    assert.ok(c.name === 'FETCH');
    return c.set;
  };
  it('numbers, ranges, "*", normalised order (RFC 9051 §9)', () => {
    assert.deepEqual(fetchSet('1'), set([1, 1]));
    assert.deepEqual(fetchSet('2:4,7,9:*'), set([2, 4], [7, 7], [9, INF]));
    assert.deepEqual(fetchSet('*'), set([INF, INF]));
    assert.deepEqual(fetchSet('*:5,10:3'), set([5, INF], [3, 10]));
    assert.deepEqual(fetchSet('4294967295'), set([4294967295, 4294967295]));
  });
  it('"$" alone is the saved search result (RFC 5182)', () => {
    assert.deepEqual(fetchSet('$'), { ranges: [], saved: true });
    assert.equal(bad('a FETCH $,1 UID').message, '"$" must be used alone as a sequence set (RFC 5182) at offset 9');
  });
  it('rejects 0, out of range numbers and empty elements', () => {
    assert.equal(bad('a FETCH 0 UID').message, 'expected sequence number (non-zero), found 0 at offset 8');
    assert.equal(bad('a FETCH 4294967296 UID').message, 'number 4294967296 out of range (max 4294967295) at offset 8');
    assert.equal(bad('a FETCH 1,,2 UID').message, 'expected sequence number at offset 10, found ","');
    assert.equal(bad('a FETCH 1: UID').message, 'expected sequence number at offset 10, found SP');
  });
});

describe('FETCH (RFC 9051 §6.4.5)', () => {
  it('RFC 9051 example: A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])', () => {
    assert.deepEqual(cmd('A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])'), {
      name: 'FETCH',
      set: set([2, 4]),
      attributes: [{ kind: 'flags' }, { kind: 'body', section: { kind: 'header.fields', part: [], fields: ['DATE', 'FROM'], not: false }, peek: false }],
    });
  });
  it('macros ALL / FAST / FULL', () => {
    assert.deepEqual(cmd('a FETCH 1 all'), { name: 'FETCH', set: set([1, 1]), macro: 'ALL', attributes: [{ kind: 'flags' }, { kind: 'internaldate' }, { kind: 'rfc822.size' }, { kind: 'envelope' }] });
    assert.deepEqual(cmd('a FETCH 1 FAST'), { name: 'FETCH', set: set([1, 1]), macro: 'FAST', attributes: [{ kind: 'flags' }, { kind: 'internaldate' }, { kind: 'rfc822.size' }] });
    assert.deepEqual(cmd('a FETCH 1 FULL'), {
      name: 'FETCH',
      set: set([1, 1]),
      macro: 'FULL',
      attributes: [{ kind: 'flags' }, { kind: 'internaldate' }, { kind: 'rfc822.size' }, { kind: 'envelope' }, { kind: 'body-structure' }],
    });
    assert.equal(bad('a FETCH 1 (ALL)').message, 'unknown fetch attribute "ALL" at offset 11');
  });
  it('every simple attribute', () => {
    const c = cmd('a FETCH 1 (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY RFC822 RFC822.HEADER RFC822.TEXT MODSEQ SAVEDATE EMAILID)');
    assert.ok(c.name === 'FETCH');
    assert.deepEqual(
      c.attributes.map((a) => a.kind),
      ['uid', 'flags', 'internaldate', 'rfc822.size', 'envelope', 'bodystructure', 'body-structure', 'rfc822', 'rfc822.header', 'rfc822.text', 'modseq', 'savedate', 'emailid'],
    );
  });
  it('sections, BODY.PEEK and partials', () => {
    const c = cmd('a FETCH 1 (BODY[] BODY.PEEK[TEXT]<0.2048> body[1.2.HEADER.FIELDS.NOT (Received "X-Spam" {3+}\r\nA B)] BODY[1.2] BODY[3.MIME] BODY[2.HEADER] BODY[4.1.TEXT] BODY[]<100.1>)');
    assert.ok(c.name === 'FETCH');
    assert.deepEqual(c.attributes, [
      { kind: 'body', section: { kind: 'full' }, peek: false },
      { kind: 'body', section: { kind: 'text', part: [] }, peek: true, partial: { offset: 0, length: 2048 } },
      { kind: 'body', section: { kind: 'header.fields', part: [1, 2], fields: ['Received', 'X-Spam', 'A B'], not: true }, peek: false },
      { kind: 'body', section: { kind: 'part', part: [1, 2] }, peek: false },
      { kind: 'body', section: { kind: 'mime', part: [3] }, peek: false },
      { kind: 'body', section: { kind: 'header', part: [2] }, peek: false },
      { kind: 'body', section: { kind: 'text', part: [4, 1] }, peek: false },
      { kind: 'body', section: { kind: 'full' }, peek: false, partial: { offset: 100, length: 1 } },
    ]);
  });
  it('BINARY, BINARY.PEEK, BINARY.SIZE (RFC 3516 §4.2)', () => {
    const c = cmd('a UID FETCH 7 (BINARY[] BINARY.PEEK[1.3]<0.64> BINARY.SIZE[2])');
    assert.ok(c.name === 'UID FETCH');
    assert.deepEqual(c.attributes, [
      { kind: 'binary', part: [], peek: false },
      { kind: 'binary', part: [1, 3], peek: true, partial: { offset: 0, length: 64 } },
      { kind: 'binary.size', part: [2] },
    ]);
    assert.equal(bad('a FETCH 1 BINARY[TEXT]').message, 'expected section part number at offset 17, found "T"');
    assert.equal(bad('a FETCH 1 BINARY.SIZE[1]<0.1>').message, 'expected end of command at offset 24, found "<"');
  });
  it('precise section errors', () => {
    assert.equal(bad('a FETCH 1 BODY[MIME]').message, 'MIME section requires a part number (e.g. 1.MIME) at offset 15');
    assert.equal(bad('a FETCH 1 BODY[1.FOO]').message, 'unknown section text "FOO" at offset 17');
    assert.equal(bad('a FETCH 1 BODY[HEADER').message, 'expected "]" closing the section at offset 21, found end of line');
    assert.equal(bad('a FETCH 1 BODY.PEEK').message, 'expected "[" at offset 19, found end of line');
    assert.equal(bad('a FETCH 1 BODY[]<0.0>').message, 'expected partial length (non-zero), found 0 at offset 19');
    assert.equal(bad('a FETCH 1 (FLAGS').message, 'expected SP or ")" in fetch attribute list at offset 16, found end of line');
    assert.equal(bad('a FETCH 1 ()').message, 'expected fetch attribute at offset 11, found ")"');
    assert.equal(bad('a FETCH 1 BODY[HEADER.FIELDS ()]').message, 'expected header-fld-name at offset 30, found ")"');
  });
  it('CHANGEDSINCE and VANISHED modifiers (RFC 7162 §3.1.4, §3.2.6)', () => {
    assert.deepEqual(cmd('s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)'), {
      name: 'UID FETCH',
      set: set([300, 500]),
      attributes: [{ kind: 'flags' }],
      changedSince: 12345n,
      vanished: true,
    });
    assert.deepEqual(cmd('a FETCH 1:* (UID FLAGS) (CHANGEDSINCE 9223372036854775807)'), {
      name: 'FETCH',
      set: set([1, INF]),
      attributes: [{ kind: 'uid' }, { kind: 'flags' }],
      changedSince: 9223372036854775807n,
    });
    assert.equal(bad('a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)').message, 'mod-sequence 9223372036854775808 out of range (max 9223372036854775807) at offset 30');
    assert.equal(bad('a FETCH 1 FLAGS (CHANGEDSINCE 0)').message, 'expected mod-sequence-value (non-zero), found 0 at offset 30');
    assert.equal(bad('a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)').message, 'VANISHED is only allowed in UID FETCH at offset 32');
    assert.equal(bad('a UID FETCH 1 FLAGS (VANISHED)').message, 'VANISHED requires CHANGEDSINCE (RFC 7162 §3.2.6) at offset 30');
    assert.equal(bad('a FETCH 1 FLAGS (PRIORITY 2)').message, 'unknown fetch modifier "PRIORITY" at offset 17');
  });
});

describe('STORE (RFC 9051 §6.4.6)', () => {
  it('RFC 9051 example: A003 STORE 2:4 +FLAGS (\\Deleted)', () => {
    assert.deepEqual(cmd('A003 STORE 2:4 +FLAGS (\\Deleted)'), { name: 'STORE', set: set([2, 4]), action: { op: 'add', silent: false, flags: ['\\Deleted'] } });
  });
  it('set, remove, .SILENT, flags without parentheses, system flag case', () => {
    assert.deepEqual(cmd('a STORE 1 FLAGS ()'), { name: 'STORE', set: set([1, 1]), action: { op: 'set', silent: false, flags: [] } });
    assert.deepEqual(cmd('a UID STORE 1,3 -flags.silent \\SEEN $Forwarded custom'), {
      name: 'UID STORE',
      set: set([1, 1], [3, 3]),
      action: { op: 'remove', silent: true, flags: ['\\Seen', '$Forwarded', 'custom'] },
    });
  });
  it('UNCHANGEDSINCE (RFC 7162 §3.1.3 example)', () => {
    assert.deepEqual(cmd('a106 STORE 100:150 (UNCHANGEDSINCE 212030000000) +FLAGS.SILENT ($Processed)'), {
      name: 'STORE',
      set: set([100, 150]),
      action: { op: 'add', silent: true, flags: ['$Processed'] },
      unchangedSince: 212030000000n,
    });
    assert.equal(bad('a STORE 1 (UNCHANGEDSINCE 1 UNCHANGEDSINCE 2) FLAGS x').message, 'only a single UNCHANGEDSINCE may be specified at offset 28');
  });
  it('errors', () => {
    assert.equal(bad('a STORE 1 +FLAGZ (x)').message, 'expected FLAGS or FLAGS.SILENT, found "FLAGZ" at offset 11');
    assert.equal(bad('a STORE 1 FLAGS (\\*)').message, 'expected flag name after "\\" at offset 18, found "*"');
    assert.equal(bad('a STORE 1 FLAGS').message, 'expected SP after FLAGS at offset 15, found end of line');
  });
});

describe('SEARCH (RFC 9051 §6.4.4)', () => {
  it('RFC 9051 examples', () => {
    assert.deepEqual(cmd('A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"'), {
      name: 'SEARCH',
      returns: ['MIN', 'COUNT'],
      key: {
        kind: 'and',
        keys: [
          { kind: 'flag', flag: '\\Flagged', set: true },
          { kind: 'date', which: 'internal', op: 'since', date: '1994-02-01' },
          { kind: 'not', key: { kind: 'header', field: 'From', value: 'Smith', viaKeyword: true } },
        ],
      },
    });
    const c = cmd('A283 SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"');
    assert.ok(c.name === 'SEARCH');
    assert.deepEqual(c.returns, []);
    assert.deepEqual(cmd('A284 SEARCH TEXT "string not in mailbox"'), { name: 'SEARCH', key: { kind: 'text', value: 'string not in mailbox' } });
    assert.deepEqual(cmd('A285 SEARCH CHARSET UTF-8 TEXT {12+}\r\nинформ'), { name: 'SEARCH', charset: 'UTF-8', key: { kind: 'text', value: 'информ' } });
  });
  it('every search key', () => {
    const line =
      'a SEARCH ALL ANSWERED BCC b BEFORE 1-Jan-2020 BODY x CC c DELETED DRAFT FLAGGED FROM f HEADER X-Y "z z" KEYWORD $Junk LARGER 100 NEW NOT SEEN OLD ON 29-Feb-2024 OR 1 2 RECENT SEEN SENTBEFORE 1-Jan-2020 SENTON 2-Jan-2020 SENTSINCE 3-Jan-2020 SINCE 4-Jan-2020 SMALLER 5 SUBJECT s TEXT t TO u UID 5:* UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNKEYWORD k UNSEEN 1:3 * $ OLDER 60 YOUNGER 3600 MODSEQ 5';
    const k = searchKey(line);
    assert.ok(k.kind === 'and');
    const expected: SearchKey[] = [
      { kind: 'all' },
      { kind: 'flag', flag: '\\Answered', set: true },
      { kind: 'header', field: 'Bcc', value: 'b', viaKeyword: true },
      { kind: 'date', which: 'internal', op: 'before', date: '2020-01-01' },
      { kind: 'body', value: 'x' },
      { kind: 'header', field: 'Cc', value: 'c', viaKeyword: true },
      { kind: 'flag', flag: '\\Deleted', set: true },
      { kind: 'flag', flag: '\\Draft', set: true },
      { kind: 'flag', flag: '\\Flagged', set: true },
      { kind: 'header', field: 'From', value: 'f', viaKeyword: true },
      { kind: 'header', field: 'X-Y', value: 'z z' },
      { kind: 'flag', flag: '$Junk', set: true },
      { kind: 'size', op: 'larger', n: 100 },
      { kind: 'new' },
      { kind: 'not', key: { kind: 'flag', flag: '\\Seen', set: true } },
      { kind: 'old' },
      { kind: 'date', which: 'internal', op: 'on', date: '2024-02-29' },
      { kind: 'or', a: { kind: 'seq', set: set([1, 1]) }, b: { kind: 'seq', set: set([2, 2]) } },
      { kind: 'recent', set: true },
      { kind: 'flag', flag: '\\Seen', set: true },
      { kind: 'date', which: 'sent', op: 'before', date: '2020-01-01' },
      { kind: 'date', which: 'sent', op: 'on', date: '2020-01-02' },
      { kind: 'date', which: 'sent', op: 'since', date: '2020-01-03' },
      { kind: 'date', which: 'internal', op: 'since', date: '2020-01-04' },
      { kind: 'size', op: 'smaller', n: 5 },
      { kind: 'header', field: 'Subject', value: 's', viaKeyword: true },
      { kind: 'text', value: 't' },
      { kind: 'header', field: 'To', value: 'u', viaKeyword: true },
      { kind: 'uid', set: set([5, INF]) },
      { kind: 'flag', flag: '\\Answered', set: false },
      { kind: 'flag', flag: '\\Deleted', set: false },
      { kind: 'flag', flag: '\\Draft', set: false },
      { kind: 'flag', flag: '\\Flagged', set: false },
      { kind: 'flag', flag: 'k', set: false },
      { kind: 'flag', flag: '\\Seen', set: false },
      { kind: 'seq', set: set([1, 3]) },
      { kind: 'seq', set: set([INF, INF]) },
      { kind: 'savedresult' },
      { kind: 'older', seconds: 60 },
      { kind: 'younger', seconds: 3600 },
      { kind: 'modseq', modseq: 5n },
    ];
    assert.deepEqual(k.keys, expected);
  });
  it('nested parentheses, OR and NOT', () => {
    assert.deepEqual(searchKey('a SEARCH OR (SEEN FLAGGED) NOT (OR DELETED (DRAFT))'), {
      kind: 'or',
      a: { kind: 'and', keys: [{ kind: 'flag', flag: '\\Seen', set: true }, { kind: 'flag', flag: '\\Flagged', set: true }] },
      b: { kind: 'not', key: { kind: 'or', a: { kind: 'flag', flag: '\\Deleted', set: true }, b: { kind: 'flag', flag: '\\Draft', set: true } } },
    });
    assert.equal(bad('a SEARCH (SEEN').message, 'expected SP or ")" in search key list at offset 14, found end of line');
    assert.equal(bad('a SEARCH SEEN)').message, 'expected end of command at offset 13, found ")"');
    assert.equal(bad('a SEARCH OR SEEN').message, 'expected SP between OR operands at offset 16, found end of line');
    assert.equal(bad(`a SEARCH ${'NOT '.repeat(200)}SEEN`).message, 'search keys nested too deeply (max 100) at offset 413');
  });
  it('MODSEQ with an entry (RFC 7162 §3.1.5 example)', () => {
    assert.deepEqual(searchKey('a SEARCH MODSEQ "/flags/\\\\draft" all 620162338'), { kind: 'modseq', modseq: 620162338n, entry: { name: '/flags/\\draft', type: 'all' } });
    assert.deepEqual(searchKey('a SEARCH MODSEQ 0'), { kind: 'modseq', modseq: 0n });
    assert.equal(bad('a SEARCH MODSEQ "/flags/\\\\seen" both 1').message, 'invalid MODSEQ entry type "both" (expected priv, shared or all) at offset 32');
    assert.equal(bad('a SEARCH MODSEQ "/meta/x" all 1').message, 'invalid MODSEQ entry name "/meta/x" (expected "/flags/<flag>") at offset 16');
  });
  it('dates: quoted, 1 or 2 digit day, validated, case-insensitive month', () => {
    assert.deepEqual(searchKey('a SEARCH ON "5-jan-2021"'), { kind: 'date', which: 'internal', op: 'on', date: '2021-01-05' });
    assert.equal(bad('a SEARCH ON 29-Feb-2023').message, 'invalid date "29-Feb-2023" at offset 12');
    assert.equal(bad('a SEARCH ON 1-Foo-2023').message, 'invalid date "1-Foo-2023" at offset 12');
    assert.equal(bad('a SEARCH ON 2023-01-01').message, 'invalid date "2023-01-01" (expected d-Mon-yyyy) at offset 12');
  });
  it('CHARSET: UTF-8 and US-ASCII, others NO [BADCHARSET] once the command parses', () => {
    assert.deepEqual(cmd('a SEARCH CHARSET us-ascii SUBJECT hello'), { name: 'SEARCH', charset: 'us-ascii', key: { kind: 'header', field: 'Subject', value: 'hello', viaKeyword: true } });
    assert.deepEqual(bad('a SEARCH CHARSET X-UNKNOWN-42 ALL'), { ok: false, tag: 'a', message: 'unsupported charset "X-UNKNOWN-42" at offset 17', code: 'BADCHARSET' });
    assert.equal(bad('a SEARCH CHARSET X-UNKNOWN-42 FROB').code, undefined);
    // a literal in another known charset is decoded with it
    const latin1 = Buffer.concat([Buffer.from('a SEARCH CHARSET ISO-8859-1 BODY {3+}\r\n'), Buffer.from([0x63, 0x61, 0xe9]), Buffer.from('\r\n')]);
    assert.deepEqual(commands(latin1)[0], { ok: true, tag: 'a', command: { name: 'SEARCH', charset: 'ISO-8859-1', key: { kind: 'body', value: 'caé' } } });
  });
  it('RETURN options (RFC 4731, RFC 5182 SAVE) and errors', () => {
    const c = cmd('a UID SEARCH RETURN (SAVE ALL MIN MAX COUNT) UID 1:*');
    assert.deepEqual(c, { name: 'UID SEARCH', returns: ['SAVE', 'ALL', 'MIN', 'MAX', 'COUNT'], key: { kind: 'uid', set: set([1, INF]) } });
    assert.equal(bad('a SEARCH RETURN (FIRST) ALL').message, 'unknown search return option "FIRST" at offset 17');
    assert.equal(bad('a SEARCH FOO').message, 'unknown search key "FOO" at offset 9');
    assert.equal(bad('a SEARCH').message, 'expected SP after SEARCH at offset 8, found end of line');
    assert.equal(bad('a SEARCH LARGER x').message, 'expected number at offset 16, found "x"');
    assert.equal(bad('a SEARCH KEYWORD \\Seen').message, 'expected flag-keyword at offset 17, found "\\"');
    assert.equal(bad('a SEARCH YOUNGER 0').message, 'expected interval (seconds) (non-zero), found 0 at offset 17');
  });
});

describe('CONTEXT=SEARCH / CONTEXT=SORT / ESORT (RFC 5267)', () => {
  it('UPDATE, CONTEXT and PARTIAL return options (§4.2–4.4, §5)', () => {
    assert.deepEqual(cmd('B01 UID SEARCH RETURN (UPDATE COUNT) DELETED KEYWORD $Junk'), {
      name: 'UID SEARCH',
      returns: ['UPDATE', 'COUNT'],
      key: { kind: 'and', keys: [{ kind: 'flag', flag: '\\Deleted', set: true }, { kind: 'flag', flag: '$Junk', set: true }] },
    });
    assert.deepEqual(cmd('A02 UID SEARCH RETURN (PARTIAL 23500:24000) UNDELETED'), {
      name: 'UID SEARCH',
      returns: ['PARTIAL'],
      partial: { from: 23500, to: 24000 },
      key: { kind: 'flag', flag: '\\Deleted', set: false },
    });
    // "A range 500:400 is the same as 400:500"
    const c = cmd('a SEARCH RETURN (context partial 4:2 count) ALL');
    assert.ok(c.name === 'SEARCH');
    assert.deepEqual([c.returns, c.partial], [['CONTEXT', 'PARTIAL', 'COUNT'], { from: 2, to: 4 }]);
    assert.deepEqual(cmd('a SORT RETURN (PARTIAL 1:6) (REVERSE ARRIVAL) US-ASCII ALL'), {
      name: 'SORT',
      keys: [{ key: 'ARRIVAL', reverse: true }],
      charset: 'US-ASCII',
      key: { kind: 'all' },
      returns: ['PARTIAL'],
      partial: { from: 1, to: 6 },
    });
  });
  it('PARTIAL errors: no "*", a range, not with ALL, once (§4.4, §5)', () => {
    assert.equal(bad('a SEARCH RETURN (PARTIAL 1) ALL').message, 'expected ":" in partial range at offset 26, found ")"');
    assert.equal(bad('a SEARCH RETURN (PARTIAL 1:*) ALL').message, 'expected partial range end at offset 27, found "*"');
    assert.equal(bad('a SEARCH RETURN (PARTIAL *:1) ALL').message, 'expected partial range start at offset 25, found "*"');
    assert.equal(bad('a SEARCH RETURN (PARTIAL 0:1) ALL').message, 'expected partial range start (non-zero), found 0 at offset 25');
    assert.equal(bad('a SEARCH RETURN (PARTIAL 1:2 ALL) ALL').message, 'PARTIAL and ALL cannot be used together (RFC 5267 §4.4) at offset 33');
    assert.equal(bad('a SORT RETURN (ALL PARTIAL 1:2) (DATE) UTF-8 ALL').message, 'PARTIAL and ALL cannot be used together (RFC 5267 §4.4) at offset 31');
    assert.equal(bad('a SEARCH RETURN (PARTIAL 1:2 PARTIAL 3:4) ALL').message, 'PARTIAL given twice at offset 29');
  });
  it('CANCELUPDATE 1*(SP quoted) (§4.3.5)', () => {
    assert.deepEqual(cmd('B04 CANCELUPDATE "B01"'), { name: 'CANCELUPDATE', tags: ['B01'] });
    assert.deepEqual(cmd('a cancelupdate "x1" "y\\"z"'), { name: 'CANCELUPDATE', tags: ['x1', 'y"z'] });
    assert.equal(bad('a CANCELUPDATE').message, 'expected SP after CANCELUPDATE at offset 14, found end of line');
    assert.equal(bad('a CANCELUPDATE B01').message, 'expected quoted tag at offset 15, found "B"');
    assert.equal(bad('a CANCELUPDATE "B01" ').message, 'expected quoted tag at offset 21, found end of line');
  });
});

describe('NOTIFY (RFC 5465)', () => {
  it('RFC 5465 §3.1 examples, NONE, mailbox lists, MessageNew FETCH attributes', () => {
    assert.deepEqual(cmd('b notify set status (selected (MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge)) (subtree Lists (MessageNew MessageExpunge))'), {
      name: 'NOTIFY',
      status: true,
      groups: [
        {
          filter: { kind: 'SELECTED' },
          events: [{ name: 'MESSAGENEW', fetch: [{ kind: 'uid' }, { kind: 'body', section: { kind: 'header.fields', part: [], fields: ['from', 'to', 'subject'], not: false }, peek: true }] }, { name: 'MESSAGEEXPUNGE' }],
        },
        { filter: { kind: 'SUBTREE', mailboxes: ['Lists'] }, events: [{ name: 'MESSAGENEW' }, { name: 'MESSAGEEXPUNGE' }] },
      ],
    });
    assert.deepEqual(cmd('a NOTIFY NONE'), { name: 'NOTIFY', status: false, groups: null });
    assert.deepEqual(cmd('a NOTIFY SET (MAILBOXES (INBOX "a b") NONE) (personal (SubscriptionChange))'), {
      name: 'NOTIFY',
      status: false,
      groups: [
        { filter: { kind: 'MAILBOXES', mailboxes: ['INBOX', 'a b'] }, events: [] },
        { filter: { kind: 'PERSONAL' }, events: [{ name: 'SUBSCRIPTIONCHANGE' }] },
      ],
    });
  });
  it('a lone message event for folders other than the selected one is accepted (deviation from §5, as Dovecot)', () => {
    for (const events of ['MessageNew', 'MessageExpunge', 'FlagChange', 'MessageExpunge FlagChange']) {
      const c = cmd(`a NOTIFY SET STATUS (MAILBOXES Watched (${events}))`);
      assert.deepEqual(c, { name: 'NOTIFY', status: true, groups: [{ filter: { kind: 'MAILBOXES', mailboxes: ['Watched'] }, events: events.toUpperCase().split(' ').map((name) => ({ name })) }] });
    }
    assert.deepEqual(cmd('a NOTIFY SET (PERSONAL (FlagChange MailboxName))'), { name: 'NOTIFY', status: false, groups: [{ filter: { kind: 'PERSONAL' }, events: [{ name: 'FLAGCHANGE' }, { name: 'MAILBOXNAME' }] }] });
  });
  it('the BAD cases of §5 and §6.1, syntax errors', () => {
    assert.equal(bad('a NOTIFY SET (SELECTED (MessageNew))').message, 'MessageNew and MessageExpunge must be given together with SELECTED (RFC 5465 §5) at offset 14');
    assert.equal(bad('a NOTIFY SET (SELECTED-DELAYED (MessageExpunge FlagChange))').message, 'MessageNew and MessageExpunge must be given together with SELECTED-DELAYED (RFC 5465 §5) at offset 14');
    assert.equal(bad('a NOTIFY SET (SELECTED (FlagChange))').message, 'FlagChange and AnnotationChange need MessageNew and MessageExpunge with SELECTED (RFC 5465 §5) at offset 14');
    assert.equal(bad('a NOTIFY SET (PERSONAL (MessageNew)) (SELECTED (MessageExpunge))').message, 'MessageNew and MessageExpunge must be given together with SELECTED (RFC 5465 §5) at offset 38');
    assert.equal(bad('a NOTIFY SET (SELECTED (MailboxName))').message, 'MAILBOXNAME cannot be used with SELECTED (RFC 5465 §6.1: message events only) at offset 24');
    assert.equal(bad('a NOTIFY SET (SELECTED NONE) (SELECTED-DELAYED NONE)').message, 'only one SELECTED or SELECTED-DELAYED group is allowed (RFC 5465 §6.1) at offset 30');
    assert.equal(bad('a NOTIFY SET (ALL NONE)').message, 'unknown mailbox specifier "ALL" at offset 14');
    assert.equal(bad('a NOTIFY SET').message, 'expected SP after SET at offset 12, found end of line');
    assert.equal(bad('a NOTIFY GET').message, 'expected SET or NONE, found "GET" at offset 9');
    assert.equal(bad('a NOTIFY NONE (x)').message, 'expected end of command at offset 13, found SP');
  });
});

describe('SORT and THREAD (RFC 5256)', () => {
  it('RFC 5256 examples', () => {
    assert.deepEqual(cmd('A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994'), {
      name: 'SORT',
      keys: [{ key: 'SUBJECT', reverse: false }],
      charset: 'UTF-8',
      key: { kind: 'date', which: 'internal', op: 'since', date: '1994-02-01' },
    });
    assert.deepEqual(cmd('A283 SORT (SUBJECT REVERSE DATE) UTF-8 ALL'), {
      name: 'SORT',
      keys: [
        { key: 'SUBJECT', reverse: false },
        { key: 'DATE', reverse: true },
      ],
      charset: 'UTF-8',
      key: { kind: 'all' },
    });
    assert.deepEqual(cmd('A283 THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000'), {
      name: 'THREAD',
      algorithm: 'ORDEREDSUBJECT',
      charset: 'UTF-8',
      key: { kind: 'date', which: 'internal', op: 'since', date: '2000-03-05' },
    });
    assert.deepEqual(cmd('A284 UID THREAD references US-ASCII TEXT "gewp"'), { name: 'UID THREAD', algorithm: 'REFERENCES', charset: 'US-ASCII', key: { kind: 'text', value: 'gewp' } });
  });
  it('UID SORT with RETURN (RFC 5267), DISPLAYFROM (RFC 5957), errors', () => {
    assert.deepEqual(cmd('a UID SORT RETURN (COUNT) (DISPLAYFROM REVERSE ARRIVAL) "UTF-8" UNSEEN'), {
      name: 'UID SORT',
      keys: [
        { key: 'DISPLAYFROM', reverse: false },
        { key: 'ARRIVAL', reverse: true },
      ],
      charset: 'UTF-8',
      key: { kind: 'flag', flag: '\\Seen', set: false },
      returns: ['COUNT'],
    });
    assert.equal(bad('a SORT (COLOUR) UTF-8 ALL').message, 'unknown sort key "COLOUR" at offset 8');
    assert.equal(bad('a SORT (DATE) ALL').message, 'expected SP after charset at offset 17, found end of line');
    assert.equal(bad('a SORT () UTF-8 ALL').message, 'expected sort key at offset 8, found ")"');
    assert.equal(bad('a THREAD REFERENCES KOI9-X ALL').code, 'BADCHARSET');
  });
});

describe('SELECT / EXAMINE', () => {
  it('plain, CONDSTORE (RFC 7162 §3.1.8), INBOX case-insensitive', () => {
    assert.deepEqual(cmd('A142 SELECT INBOX'), { name: 'SELECT', mailbox: 'INBOX', condstore: false });
    assert.deepEqual(cmd('a EXAMINE "inBox" (CONDSTORE)'), { name: 'EXAMINE', mailbox: 'INBOX', condstore: true });
    assert.deepEqual(cmd('a SELECT {7+}\r\nArchive'), { name: 'SELECT', mailbox: 'Archive', condstore: false });
  });
  it('QRESYNC (RFC 7162 §3.2.5 examples)', () => {
    assert.deepEqual(cmd('A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))'), {
      name: 'SELECT',
      mailbox: 'INBOX',
      condstore: false,
      qresync: { uidValidity: 67890007, modseq: 20050715194045000n, knownUids: set([41, 41], [43, 211], [214, 541]) },
    });
    assert.deepEqual(cmd('B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997)))').name, 'SELECT');
    assert.deepEqual(cmd('a SELECT x (CONDSTORE QRESYNC (1 2 (1:2 3:4)))'), {
      name: 'SELECT',
      mailbox: 'x',
      condstore: true,
      qresync: { uidValidity: 1, modseq: 2n, seqMatch: { seqs: set([1, 2]), uids: set([3, 4]) } },
    });
    assert.deepEqual(cmd('a SELECT x (QRESYNC (1 9223372036854775807))'), { name: 'SELECT', mailbox: 'x', condstore: false, qresync: { uidValidity: 1, modseq: 9223372036854775807n } });
  });
  it('QRESYNC errors', () => {
    assert.equal(bad('a SELECT x (QRESYNC (1 2 1:*))').message, '"*" is not allowed in this sequence set at offset 27');
    assert.equal(bad('a SELECT x (QRESYNC (0 2))').message, 'expected uidvalidity (non-zero), found 0 at offset 21');
    assert.equal(bad('a SELECT x (QRESYNC (1 0))').message, 'expected mod-sequence-value (non-zero), found 0 at offset 23');
    assert.equal(bad('a SELECT x (QRESYNC (1 2 3 4))').message, 'expected "(" (seq-match-data) at offset 27, found "4"');
    assert.equal(bad('a SELECT x (FOO)').message, 'unknown SELECT parameter "FOO" at offset 12');
  });
});

describe('mailbox commands', () => {
  it('CREATE, with USE (RFC 6154)', () => {
    assert.deepEqual(cmd('A003 CREATE owatagusiam/'), { name: 'CREATE', mailbox: 'owatagusiam/' });
    assert.deepEqual(cmd('t1 CREATE "Important Messages" (USE (\\Important))').name, 'CREATE');
    assert.deepEqual(cmd('a CREATE MySpecial (USE (\\drafts \\Sent))'), { name: 'CREATE', mailbox: 'MySpecial', specialUse: ['\\Drafts', '\\Sent'] });
    assert.deepEqual(cmd('a CREATE x (USE ())'), { name: 'CREATE', mailbox: 'x', specialUse: [] });
    assert.equal(bad('a CREATE x (FOO)').message, 'unknown CREATE parameter "FOO" at offset 12');
    assert.equal(bad('a CREATE x (USE (Drafts))').message, 'expected "\\" (special-use attribute) at offset 17, found "D"');
  });
  it('DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE', () => {
    assert.deepEqual(cmd('A683 DELETE blurdybloop'), { name: 'DELETE', mailbox: 'blurdybloop' });
    assert.deepEqual(cmd('A682 RENAME blurdybloop sarasoop'), { name: 'RENAME', from: 'blurdybloop', to: 'sarasoop' });
    assert.deepEqual(cmd('A002 SUBSCRIBE #news.comp.mail.mime'), { name: 'SUBSCRIBE', mailbox: '#news.comp.mail.mime' });
    assert.deepEqual(cmd('A002 UNSUBSCRIBE "a b"'), { name: 'UNSUBSCRIBE', mailbox: 'a b' });
    assert.equal(bad('a RENAME x').message, 'expected SP after existing mailbox name at offset 10, found end of line');
  });
  it('LIST basic (RFC 9051 §6.3.9 examples)', () => {
    assert.deepEqual(cmd('A101 LIST "" ""'), { name: 'LIST', reference: '', patterns: [''], selection: [], returns: [] });
    assert.deepEqual(cmd('A102 LIST #news.comp.mail.misc ""'), { name: 'LIST', reference: '#news.comp.mail.misc', patterns: [''], selection: [], returns: [] });
    assert.deepEqual(cmd('A103 LIST /usr/staff/jones ""').name, 'LIST');
    assert.deepEqual(cmd('A202 LIST ~/Mail/ %'), { name: 'LIST', reference: '~/Mail/', patterns: ['%'], selection: [], returns: [] });
    assert.deepEqual(cmd('a LIST "" INBOX/*]'), { name: 'LIST', reference: '', patterns: ['INBOX/*]'], selection: [], returns: [] });
  });
  it('LIST-EXTENDED (RFC 5258), SPECIAL-USE (RFC 6154), LIST-STATUS (RFC 5819)', () => {
    assert.deepEqual(cmd('A02 LIST (SUBSCRIBED) "" "*"'), { name: 'LIST', reference: '', patterns: ['*'], selection: ['SUBSCRIBED'], returns: [] });
    assert.deepEqual(cmd('A03 LIST () "" "%" RETURN (CHILDREN)'), { name: 'LIST', reference: '', patterns: ['%'], selection: [], returns: [{ name: 'CHILDREN' }] });
    assert.deepEqual(cmd('A04 LIST (REMOTE subscribed RECURSIVEMATCH remote) "" ("INBOX" Drafts {4+}\r\nSent) RETURN (SUBSCRIBED SPECIAL-USE)'), {
      name: 'LIST',
      reference: '',
      patterns: ['INBOX', 'Drafts', 'Sent'],
      selection: ['REMOTE', 'SUBSCRIBED', 'RECURSIVEMATCH'],
      returns: [{ name: 'SUBSCRIBED' }, { name: 'SPECIAL-USE' }],
    });
    assert.deepEqual(cmd('A01 LIST "" % RETURN (STATUS (MESSAGES UNSEEN))'), {
      name: 'LIST',
      reference: '',
      patterns: ['%'],
      selection: [],
      returns: [{ name: 'STATUS', items: ['MESSAGES', 'UNSEEN'] }],
    });
    assert.deepEqual(cmd('t1 LIST (SPECIAL-USE) "" "*" RETURN (STATUS (SIZE HIGHESTMODSEQ APPENDLIMIT))').name, 'LIST');
  });
  it('LIST RETURN (MYRIGHTS) (RFC 8440 §3)', () => {
    assert.deepEqual(cmd('a LIST "" "*" RETURN (MYRIGHTS STATUS (MESSAGES))'), {
      name: 'LIST',
      reference: '',
      patterns: ['*'],
      selection: [],
      returns: [{ name: 'MYRIGHTS' }, { name: 'STATUS', items: ['MESSAGES'] }],
    });
  });
  it('LIST errors (RFC 5258 §3, §3.1)', () => {
    assert.equal(bad('a LIST (RECURSIVEMATCH) "" *').message, 'RECURSIVEMATCH requires another selection option such as SUBSCRIBED (RFC 5258 §3.1) at offset 23');
    assert.equal(bad('a LIST (REMOTE RECURSIVEMATCH) "" *').code, undefined);
    assert.equal(bad('a LIST (VIRTUAL) "" *').message, 'unknown LIST selection option "VIRTUAL" at offset 8');
    assert.equal(bad('a LIST "" * RETURN (METADATA)').message, 'unknown LIST return option "METADATA" at offset 20');
    assert.equal(bad('a LIST "" * RETURNS (CHILDREN)').message, 'expected RETURN, found "RETURNS" at offset 12');
    assert.equal(bad('a LIST "" ()').message, 'expected list-mailbox at offset 11, found ")"');
    assert.equal(bad('a LIST "" * RETURN (STATUS (FOO))').message, 'unknown status attribute "FOO" at offset 28');
  });
  it('LSUB, NAMESPACE, STATUS', () => {
    assert.deepEqual(cmd('A002 LSUB "#news." "comp.mail.*"'), { name: 'LSUB', reference: '#news.', pattern: 'comp.mail.*' });
    assert.deepEqual(cmd('A001 NAMESPACE'), { name: 'NAMESPACE' });
    assert.deepEqual(cmd('A042 STATUS blurdybloop (UIDNEXT MESSAGES)'), { name: 'STATUS', mailbox: 'blurdybloop', items: ['UIDNEXT', 'MESSAGES'] });
    assert.deepEqual(cmd('a STATUS inbox (messages recent uidnext uidvalidity unseen deleted size highestmodseq appendlimit)'), {
      name: 'STATUS',
      mailbox: 'INBOX',
      items: ['MESSAGES', 'RECENT', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN', 'DELETED', 'SIZE', 'HIGHESTMODSEQ', 'APPENDLIMIT'],
    });
    assert.equal(bad('a STATUS x ()').message, 'expected status attribute at offset 12, found ")"');
    assert.equal(bad('a STATUS x (FOO)').message, 'unknown status attribute "FOO" at offset 12');
  });
});

describe('APPEND (RFC 9051 §6.3.12, RFC 3502, RFC 3516)', () => {
  const msg = 'Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nFrom: Fred Foobar <foobar@Blurdybloop.example>\r\nSubject: afternoon meeting\r\n\r\nHello Joe\r\n';
  it('RFC 9051 example with a synchronizing literal', () => {
    const ev = events(`A003 APPEND saved-messages (\\Seen) {${msg.length}}\r\n${msg}\r\n`);
    assert.equal(ev[0].type, 'continue');
    assert.equal(ev.length, 2);
    const p = ev[1].type === 'command' ? ev[1].parsed : assert.fail('command expected');
    assert.ok(p.ok && p.command.name === 'APPEND');
    assert.equal(p.command.mailbox, 'saved-messages');
    assert.deepEqual(p.command.messages.map((m) => ({ ...m, data: Buffer.from(m.data).toString() })), [{ flags: ['\\Seen'], data: msg, binary: false }]);
  });
  it('with a date-time and no flags', () => {
    const c = cmd('a APPEND INBOX "07-Feb-1994 21:52:25 -0800" {3+}\r\nabc');
    assert.ok(c.name === 'APPEND');
    assert.deepEqual(c.messages.map((m) => ({ ...m, data: Buffer.from(m.data).toString() })), [{ flags: [], date: '07-Feb-1994 21:52:25 -0800', data: 'abc', binary: false }]);
    assert.equal(bad('a APPEND INBOX "30-Feb-1994 21:52:25 -0800" {3+}\r\nabc').message, 'invalid date-time "30-Feb-1994 21:52:25 -0800" at offset 15');
    assert.equal(bad('a APPEND INBOX "7-Feb-1994 21:52:25 -0800" {3+}\r\nabc').message, 'invalid date-time "7-Feb-1994 21:52:25 -0800" (expected "dd-Mon-yyyy hh:mm:ss +zzzz") at offset 15');
  });
  it('MULTIAPPEND (RFC 3502 example shape) with literal8', () => {
    const c = cmd('A003 APPEND saved-messages (\\Seen) {3+}\r\none (\\Seen $Work) " 7-Feb-1994 22:43:04 -0800" {3+}\r\ntwo ~{4+}\r\nth\0e');
    assert.ok(c.name === 'APPEND');
    assert.deepEqual(
      c.messages.map((m) => ({ ...m, data: Buffer.from(m.data).toString('latin1') })),
      [
        { flags: ['\\Seen'], data: 'one', binary: false },
        { flags: ['\\Seen', '$Work'], date: ' 7-Feb-1994 22:43:04 -0800', data: 'two', binary: false },
        { flags: [], data: 'th\0e', binary: true },
      ],
    );
  });
  it('each synchronizing literal of a MULTIAPPEND gets its continuation', () => {
    const ev = events('a APPEND x {1}\r\n1 {1}\r\n2\r\n');
    assert.deepEqual(ev.map((e) => e.type), ['continue', 'continue', 'command']);
  });
  it('errors', () => {
    assert.equal(bad('a APPEND INBOX').message, 'expected SP after mailbox at offset 14, found end of line');
    assert.equal(bad('a APPEND INBOX (\\Seen)').message, 'expected SP after flag list at offset 22, found end of line');
    assert.equal(bad('a APPEND INBOX hello').message, 'expected message literal ({n} or ~{n}), CATENATE or UTF8 at offset 15, found "h"');
    assert.equal(bad('a APPEND INBOX {1+}\r\nx ').message, 'expected message literal ({n} or ~{n}), CATENATE or UTF8 at offset 23, found end of line');
  });
  it('CATENATE (RFC 4469 §5), also mixed with plain messages in a MULTIAPPEND', () => {
    const c = cmd('a APPEND Drafts (\\Seen) CATENATE (URL "/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1" TEXT {4+}\r\nabcd URL /INBOX/;UID=2) {2+}\r\nhi CATENATE (TEXT {1+}\r\nz)');
    assert.ok(c.name === 'APPEND');
    const show = (m: (typeof c.messages)[number]) => ({ ...m, data: Buffer.from(m.data).toString(), ...(m.catenate ? { catenate: m.catenate.map((p) => (p.kind === 'text' ? { kind: 'text', data: Buffer.from(p.data).toString() } : p)) } : {}) });
    assert.deepEqual(c.messages.map(show), [
      { flags: ['\\Seen'], data: '', binary: false, catenate: [{ kind: 'url', url: '/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1' }, { kind: 'text', data: 'abcd' }, { kind: 'url', url: '/INBOX/;UID=2' }] },
      { flags: [], data: 'hi', binary: false },
      { flags: [], data: '', binary: false, catenate: [{ kind: 'text', data: 'z' }] },
    ]);
    // a synchronizing TEXT literal gets its continuation once the command so far is valid
    assert.deepEqual(events('a APPEND x CATENATE (TEXT {1}\r\n1)\r\n').map((e) => e.type), ['continue', 'command']);
    // an invalid part is refused before its literal is asked for (RFC 3501 §2.2.1)
    assert.ok(!events('a APPEND x CATENATE (FOO {1}\r\n').some((e) => e.type === 'continue'));
    assert.equal(bad('a APPEND x CATENATE ()').message, 'expected TEXT, URL or UTF8 at offset 21, found ")"');
    assert.equal(bad('a APPEND x CATENATE (TEXT "abc")').message, 'expected literal after TEXT at offset 26, found DQUOTE');
    assert.equal(bad('a APPEND x CATENATE (TEXT ~{1+}\r\nz)').message, 'expected literal after TEXT at offset 26, found "~"');
    assert.equal(bad('a APPEND x CATENATE (URL "/a/;UID=1" BODY "x")').message, 'expected TEXT, URL or UTF8, found "BODY" at offset 37');
    assert.equal(bad(`a APPEND x CATENATE (${Array(101).fill('URL x').join(' ')})`).message, 'more than 100 CATENATE parts at offset 621');
  });
  it('the UTF8 data item (RFC 6855 §4): a literal8 in parentheses, also as a CATENATE part', () => {
    const c = cmd('a APPEND x (\\Seen) UTF8 (~{4+}\r\nab\0z) utf8 (~{1+}\r\ny) CATENATE (TEXT {1+}\r\na UTF8 (~{2+}\r\nb\0))');
    assert.ok(c.name === 'APPEND');
    const show = (m: (typeof c.messages)[number]) => ({ ...m, data: Buffer.from(m.data).toString('latin1'), ...(m.catenate ? { catenate: m.catenate.map((p) => (p.kind === 'text' ? { ...p, data: Buffer.from(p.data).toString('latin1') } : p)) } : {}) });
    assert.deepEqual(c.messages.map(show), [
      { flags: ['\\Seen'], data: 'ab\0z', binary: true, utf8: true },
      { flags: [], data: 'y', binary: true, utf8: true },
      { flags: [], data: '', binary: false, catenate: [{ kind: 'text', data: 'a' }, { kind: 'text', data: 'b\0', utf8: true }] },
    ]);
    // a synchronizing literal8 gets its continuation
    assert.deepEqual(events('a APPEND x UTF8 (~{1}\r\n1)\r\n').map((e) => e.type), ['continue', 'command']);
    assert.equal(bad('a APPEND x UTF8 {1+}\r\nz').message, 'expected "(" after UTF8 at offset 16, found "{"');
    assert.equal(bad('a APPEND x UTF8 ({1+}\r\nz)').message, 'expected literal8 (~{n}) in UTF8 (RFC 6855 §4) at offset 17, found "{"');
    assert.equal(bad('a APPEND x UTF8 (~{1+}\r\nz').message, 'expected ")" after the UTF8 literal8 at offset 25, found end of line');
  });
});

describe('authentication and session commands', () => {
  it('AUTHENTICATE with and without initial response (RFC 4959)', () => {
    assert.deepEqual(cmd('a AUTHENTICATE plain'), { name: 'AUTHENTICATE', mechanism: 'PLAIN' });
    assert.deepEqual(cmd('a AUTHENTICATE PLAIN AHVzZXIAcGFzcw=='), { name: 'AUTHENTICATE', mechanism: 'PLAIN', initialResponse: 'AHVzZXIAcGFzcw==' });
    assert.deepEqual(cmd('a AUTHENTICATE EXTERNAL ='), { name: 'AUTHENTICATE', mechanism: 'EXTERNAL', initialResponse: '=' });
    assert.equal(bad('a AUTHENTICATE PLAIN abc').message, 'invalid initial response (expected base64 or "=") at offset 21');
    assert.equal(bad('a AUTHENTICATE PLAIN a=bc').message, 'invalid initial response (expected base64 or "=") at offset 21');
    assert.equal(bad('a AUTHENTICATE').message, 'expected SP after AUTHENTICATE at offset 14, found end of line');
  });
  it('ID (RFC 2971)', () => {
    assert.deepEqual(cmd('a023 ID ("name" "sodr" "version" "19.34" "vendor" "Pink Floyd Music Limited")'), {
      name: 'ID',
      params: Object.assign(Object.create(null), { name: 'sodr', version: '19.34', vendor: 'Pink Floyd Music Limited' }),
    });
    assert.deepEqual(cmd('a ID NIL'), { name: 'ID', params: null });
    assert.deepEqual(cmd('a ID ()'), { name: 'ID', params: Object.create(null) });
    assert.deepEqual(cmd('a ID ("os" NIL "__proto__" "x")'), { name: 'ID', params: Object.assign(Object.create(null), { os: null, ['__proto__']: 'x' }) });
    assert.equal(bad('a ID (name "x")').message, 'expected ID field name (string) at offset 6, found "n"');
    assert.equal(bad(`a ID ("${'f'.repeat(31)}" "x")`).message, 'ID field name longer than 30 octets at offset 6');
    assert.equal(bad(`a ID (${Array.from({ length: 31 }, (_, i) => `"k${i}" NIL`).join(' ')})`).message.startsWith('more than 30 ID field-value pairs'), true);
  });
  it('ENABLE (RFC 5161)', () => {
    assert.deepEqual(cmd('t2 ENABLE CONDSTORE X-GOOD-IDEA utf8=accept'), { name: 'ENABLE', capabilities: ['CONDSTORE', 'X-GOOD-IDEA', 'UTF8=ACCEPT'] });
    assert.equal(bad('t2 ENABLE').message, 'expected SP after ENABLE at offset 9, found end of line');
  });
  it('QUOTA (RFC 9208 §4.1)', () => {
    assert.deepEqual(cmd('G0001 GETQUOTA "!partition.sda4"'), { name: 'GETQUOTA', root: '!partition.sda4' });
    assert.deepEqual(cmd('A003 GETQUOTAROOT INBOX'), { name: 'GETQUOTAROOT', mailbox: 'INBOX' });
    assert.deepEqual(cmd('S0000 SETQUOTA "#user/alice" (STORAGE 510 message 100000)'), {
      name: 'SETQUOTA',
      root: '#user/alice',
      limits: [
        { resource: 'STORAGE', limit: 510 },
        { resource: 'MESSAGE', limit: 100000 },
      ],
    });
    assert.deepEqual(cmd('a SETQUOTA "" ()'), { name: 'SETQUOTA', root: '', limits: [] });
    assert.equal(bad('a SETQUOTA x (STORAGE)').message, 'expected SP after quota resource name at offset 21, found ")"');
  });
  it('ACL (RFC 4314 §3 examples)', () => {
    assert.deepEqual(cmd('A035 SETACL INBOX/Drafts John lrQswicda'), { name: 'SETACL', mailbox: 'INBOX/Drafts', identifier: 'John', rights: 'lrQswicda' });
    assert.deepEqual(cmd('A002 SETACL INBOX/Drafts Chris +cda'), { name: 'SETACL', mailbox: 'INBOX/Drafts', identifier: 'Chris', rights: '+cda' });
    assert.deepEqual(cmd('A036 DELETEACL INBOX/Drafts Chris'), { name: 'DELETEACL', mailbox: 'INBOX/Drafts', identifier: 'Chris' });
    assert.deepEqual(cmd('A002 GETACL INBOX'), { name: 'GETACL', mailbox: 'INBOX' });
    assert.deepEqual(cmd('a001 LISTRIGHTS ~/Mail/saved smith'), { name: 'LISTRIGHTS', mailbox: '~/Mail/saved', identifier: 'smith' });
    assert.deepEqual(cmd('A003 MYRIGHTS INBOX'), { name: 'MYRIGHTS', mailbox: 'INBOX' });
  });
  it('METADATA (RFC 5464 §4.2, §4.3 examples and §5 syntax)', () => {
    assert.deepEqual(cmd('a GETMETADATA "" /shared/comment'), { name: 'GETMETADATA', mailbox: '', depth: 0, entries: ['/shared/comment'] });
    assert.deepEqual(cmd('a GETMETADATA INBOX (/shared/comment /private/comment)'), { name: 'GETMETADATA', mailbox: 'INBOX', depth: 0, entries: ['/shared/comment', '/private/comment'] });
    assert.deepEqual(cmd('a GETMETADATA (MAXSIZE 1024 DEPTH infinity) INBOX /shared'), { name: 'GETMETADATA', mailbox: 'INBOX', maxSize: 1024, depth: 'infinity', entries: ['/shared'] });
    // §4.2.1's example puts the options after the mailbox.
    assert.deepEqual(cmd('a GETMETADATA INBOX (DEPTH 1) (/private/filters/values)'), { name: 'GETMETADATA', mailbox: 'INBOX', depth: 1, entries: ['/private/filters/values'] });
    assert.deepEqual(cmd('a SETMETADATA INBOX (/private/comment {5}\r\nhello /shared/comment NIL)'), {
      name: 'SETMETADATA',
      mailbox: 'INBOX',
      values: [
        { entry: '/private/comment', value: Buffer.from('hello') },
        { entry: '/shared/comment', value: null },
      ],
    });
    assert.match(bad('a GETMETADATA INBOX /comment').message, /must start with \/private or \/shared \(RFC 5464 §3\.2\)/);
    assert.match(bad('a GETMETADATA INBOX "/shared/a%"').message, /"\*" or "%"/);
    assert.match(bad('a GETMETADATA INBOX /shared//a').message, /empty component/);
    assert.match(bad('a GETMETADATA (DEPTH 2) INBOX /shared').message, /DEPTH must be 0, 1 or infinity/);
    assert.match(bad('a GETMETADATA (MAXSIZE 1 MAXSIZE 2) INBOX /shared').message, /MAXSIZE given twice/);
    assert.match(bad('a SETMETADATA INBOX (/shared "x")').message, /names the top of a hierarchy/);
    assert.match(bad('a SETMETADATA INBOX (/shared/comment)').message, /expected SP after entry name/);
  });
});

describe('selected-state commands', () => {
  it('COPY, MOVE (RFC 6851), UID variants, UID EXPUNGE (RFC 4315)', () => {
    assert.deepEqual(cmd('A003 COPY 2:4 MEETING'), { name: 'COPY', set: set([2, 4]), mailbox: 'MEETING' });
    assert.deepEqual(cmd('a MOVE 1:3 Trash'), { name: 'MOVE', set: set([1, 3]), mailbox: 'Trash' });
    assert.deepEqual(cmd('a UID COPY $ "Sent Items"'), { name: 'UID COPY', set: { ranges: [], saved: true }, mailbox: 'Sent Items' });
    assert.deepEqual(cmd('a UID MOVE 42:69 inbox'), { name: 'UID MOVE', set: set([42, 69]), mailbox: 'INBOX' });
    assert.deepEqual(cmd('A003 UID EXPUNGE 3000:3002'), { name: 'UID EXPUNGE', set: set([3000, 3002]) });
    assert.deepEqual(cmd('a uid search uid 1:*'), { name: 'UID SEARCH', key: { kind: 'uid', set: set([1, INF]) } });
    assert.deepEqual(cmd('a UID SORT (SIZE) UTF-8 ALL').name, 'UID SORT');
    assert.equal(bad('a UID EXPUNGE').message, 'expected SP after UID EXPUNGE at offset 13, found end of line');
    assert.equal(bad('a COPY 1').message, 'expected SP after sequence set at offset 8, found end of line');
  });
});
