import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  astring,
  canQuote,
  continuation,
  encodeValue,
  headerString,
  imapDate,
  list,
  literal,
  literal8,
  mailboxName,
  nstring,
  orderedSequenceSet,
  quoted,
  sequenceSet,
  tagged,
  untagged,
  untaggedStatus,
} from './encoder.js';
import { CommandParser } from './parser.js';

describe('strings', () => {
  it('quoted: escapes DQUOTE and backslash', () => {
    assert.equal(quoted('hello world'), '"hello world"');
    assert.equal(quoted('a"b\\c'), '"a\\"b\\\\c"');
    assert.equal(quoted(''), '""');
  });
  it('quoted falls back to a literal for CR, LF, NUL, or 8-bit without UTF8=ACCEPT', () => {
    assert.equal(quoted('a\r\nb'), '{4}\r\na\r\nb');
    assert.equal(quoted('a\0b'), '{3}\r\na\0b');
    assert.equal(quoted('café'), '{5}\r\ncafé'); // the count is the UTF-8 length
    assert.equal(quoted('café', { utf8: true }), '"café"');
    assert.equal(quoted('a\nb', { utf8: true }), '{3}\r\na\nb');
  });
  it('canQuote rejects lone surrogates even with UTF8=ACCEPT', () => {
    assert.equal(canQuote('😀', { utf8: true }), true);
    assert.equal(canQuote('\ud83d', { utf8: true }), false);
    assert.equal(canQuote('\ude00x', { utf8: true }), false);
  });
  it('astring: atom when possible, NIL and specials quoted', () => {
    assert.equal(astring('INBOX'), 'INBOX');
    assert.equal(astring('a]b'), 'a]b');
    assert.equal(astring('NIL'), '"NIL"');
    assert.equal(astring('nil'), '"nil"');
    assert.equal(astring(''), '""');
    assert.equal(astring('a b'), '"a b"');
    assert.equal(astring('50%'), '"50%"');
    assert.equal(astring('x*'), '"x*"');
    assert.equal(astring('(x)'), '"(x)"');
    assert.equal(astring('{1}'), '"{1}"');
    assert.equal(astring('é'), '{2}\r\né');
  });
  it('nstring: NIL, a string, or bytes as a literal', () => {
    assert.equal(nstring(null), 'NIL');
    assert.equal(nstring('NIL'), '"NIL"');
    assert.equal(nstring('x y'), '"x y"');
    assert.deepEqual(nstring(Buffer.from('ab\0')), Buffer.from('{3}\r\nab\0'));
  });
  it('headerString, IMAP4rev1: the stored bytes, quoted when 7-bit, else a literal of exactly those bytes (RFC 3501 §4.3)', () => {
    const b = (s: string) => Buffer.from(s, 'latin1');
    assert.deepEqual(headerString(b('Re: a "b" \\ c')), b('"Re: a \\"b\\" \\\\ c"'));
    assert.deepEqual(headerString(b('r\xe9sum\xe9')), b('{6}\r\nr\xe9sum\xe9')); // Latin-1 as is, not C3 A9
    assert.deepEqual(headerString(b('caf\xc3\xa9 caf\xe9')), b('{10}\r\ncaf\xc3\xa9 caf\xe9')); // mixed: every byte as is
    assert.deepEqual(headerString(b('a\r\nb')), b('{4}\r\na\r\nb'));
    assert.deepEqual(headerString(b('')), b('""'));
  });
  it('headerString, UTF-8 session: valid UTF-8 quoted as is, other bytes as Latin-1 characters (RFC 6855 §3)', () => {
    const b = (s: string) => Buffer.from(s, 'latin1');
    assert.deepEqual(headerString(b('caf\xc3\xa9'), { utf8: true }), Buffer.from('"café"'));
    assert.deepEqual(headerString(b('r\xe9sum\xe9'), { utf8: true }), Buffer.from('"résumé"'));
    assert.deepEqual(headerString(b('caf\xc3\xa9 caf\xe9 \xe2\x80\x94'), { utf8: true }), Buffer.from('"café café —"'));
    assert.deepEqual(headerString(b('a"\xe9\r\n'), { utf8: true }), Buffer.from('{6}\r\na"é\r\n'));
    // the result always decodes as UTF-8
    for (const s of ['\xc3', '\xed\xa0\x80', '\xf4\x90\x80\x80', '\xc0\xaf', '\xf0\x9f\x98']) {
      const out = headerString(b(s), { utf8: true });
      assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(out), JSON.stringify(s));
    }
  });
  it('literal and literal8', () => {
    assert.equal(literal('abc'), '{3}\r\nabc');
    assert.deepEqual(literal(Uint8Array.of(1, 2)), Buffer.from([0x7b, 0x32, 0x7d, 13, 10, 1, 2]));
    assert.deepEqual(literal8(Uint8Array.of(0, 255)), Buffer.concat([Buffer.from('~{2}\r\n'), Buffer.from([0, 255])]));
    assert.equal(literal(''), '{0}\r\n');
  });
  it('mailboxName: INBOX normalised, others as astring of the encoded name', () => {
    assert.equal(mailboxName('inbox'), 'INBOX');
    assert.equal(mailboxName('Sent'), 'Sent');
    assert.equal(mailboxName('&AOk-t&AOk-'), '&AOk-t&AOk-');
    assert.equal(mailboxName('Boîte reçue', { utf8: true }), '"Boîte reçue"');
    assert.equal(mailboxName('a/*'), '"a/*"');
  });
  it('list: strings give a string, bytes a Buffer', () => {
    assert.equal(list(['\\Seen', '\\Answered']), '(\\Seen \\Answered)');
    assert.equal(list([]), '()');
    assert.deepEqual(list(['A', Buffer.from('{1}\r\n\0')]), Buffer.from('(A {1}\r\n\0)'));
  });
});

describe('response lines', () => {
  it('tagged, with and without a response code', () => {
    assert.equal(tagged('a1', 'OK', 'LOGIN completed'), 'a1 OK LOGIN completed\r\n');
    assert.equal(tagged('a2', 'NO', 'too big', 'TOOBIG'), 'a2 NO [TOOBIG] too big\r\n');
    assert.equal(tagged('a3', 'BAD', 'bad', 'BADCHARSET (US-ASCII UTF-8)'), 'a3 BAD [BADCHARSET (US-ASCII UTF-8)] bad\r\n');
  });
  it('never lets CR/LF through into a response line', () => {
    assert.equal(tagged('a', 'NO', 'x\r\n* BYE injected'), 'a NO x  * BYE injected\r\n');
    assert.equal(tagged('a', 'NO', 'x', 'CODE]\r\nz'), 'a NO [CODE   z] x\r\n');
    assert.equal(untagged('1 EXISTS\r\nX'), '* 1 EXISTS  X\r\n');
    assert.equal(continuation('go\nahead'), '+ go ahead\r\n');
  });
  it('untagged, untaggedStatus, continuation', () => {
    assert.equal(untagged('3 EXISTS'), '* 3 EXISTS\r\n');
    assert.deepEqual(untagged(Buffer.from('1 FETCH (BODY[] {1}\r\n\0)')), Buffer.from('* 1 FETCH (BODY[] {1}\r\n\0)\r\n'));
    assert.equal(untaggedStatus('OK', 'ready', 'CAPABILITY IMAP4rev2'), '* OK [CAPABILITY IMAP4rev2] ready\r\n');
    assert.equal(continuation(), '+ \r\n');
    assert.equal(continuation('idling'), '+ idling\r\n');
  });
});

describe('orderedSequenceSet (RFC 5267 §3.2)', () => {
  it('keeps the order; only ascending runs become ranges', () => {
    assert.equal(orderedSequenceSet([5, 3, 4, 2, 1]), '5,3:4,2,1');
    assert.equal(orderedSequenceSet([23765, 23764, 23763, 23761]), '23765,23764,23763,23761');
    assert.equal(orderedSequenceSet([1, 2, 3, 7, 8, 4]), '1:3,7:8,4');
    assert.equal(orderedSequenceSet([9]), '9');
    assert.throws(() => orderedSequenceSet([]), RangeError);
  });
});

describe('sequenceSet', () => {
  it('sorts, de-duplicates and compresses runs', () => {
    assert.equal(sequenceSet([1, 2, 3, 5]), '1:3,5');
    assert.equal(sequenceSet([5, 3, 1, 2, 2, 9, 10, 11, 7]), '1:3,5,7,9:11');
    assert.equal(sequenceSet([42]), '42');
    assert.equal(sequenceSet([4294967295, 4294967294]), '4294967294:4294967295');
  });
  it('rejects empty lists and non nz-numbers', () => {
    assert.throws(() => sequenceSet([]), RangeError);
    assert.throws(() => sequenceSet([0]), RangeError);
    assert.throws(() => sequenceSet([1.5]), RangeError);
    assert.throws(() => sequenceSet([4294967296]), RangeError);
  });
});

describe('imapDate', () => {
  it('formats dd-Mon-yyyy hh:mm:ss +0000 in UTC', () => {
    assert.equal(imapDate(new Date(Date.UTC(1994, 1, 7, 21, 52, 25))), '07-Feb-1994 21:52:25 +0000');
    assert.equal(imapDate(new Date('2024-12-31T23:59:59.999-01:00')), '01-Jan-2025 00:59:59 +0000');
  });
  it('is parsed back by the APPEND date-time grammar', () => {
    const p = new CommandParser();
    const d = imapDate(new Date(Date.UTC(2024, 1, 29, 1, 2, 3)));
    const [ev] = p.push(Buffer.from(`a APPEND x "${d}" {1+}\r\nz\r\n`));
    assert.ok(ev.type === 'command' && ev.parsed.ok && ev.parsed.command.name === 'APPEND');
    assert.equal(ev.parsed.command.messages[0].date, '29-Feb-2024 01:02:03 +0000');
  });
  it('rejects an invalid Date', () => {
    assert.throws(() => imapDate(new Date(NaN)), RangeError);
  });
});

describe('encodeValue', () => {
  it('encodes a FETCH response tree', () => {
    const v = [
      'UID',
      42,
      'FLAGS',
      ['\\Seen', '$Forwarded'],
      'MODSEQ',
      [12345678901234567890n],
      'INTERNALDATE',
      { quoted: imapDate(new Date(Date.UTC(2020, 0, 2, 3, 4, 5))) },
      'ENVELOPE',
      [{ nstring: 'Mon, 7 Feb 1994' }, { nstring: 'Re: "x"' }, null],
      'BODY[HEADER.FIELDS (FROM)]',
      { literal: 'From: a\r\n\r\n' },
      'BINARY[1]',
      { literal8: Uint8Array.of(0, 1) },
      'X',
      { list: [{ astring: 'a b' }, { astring: 'ab' }] },
      'R',
      { raw: '"pre-encoded"' },
    ] as const;
    assert.equal(
      encodeValue(v).toString('latin1'),
      '(UID 42 FLAGS (\\Seen $Forwarded) MODSEQ (12345678901234567890) INTERNALDATE "02-Jan-2020 03:04:05 +0000" ENVELOPE ("Mon, 7 Feb 1994" "Re: \\"x\\"" NIL) BODY[HEADER.FIELDS (FROM)] {11}\r\nFrom: a\r\n\r\n BINARY[1] ~{2}\r\n\0\x01 X ("a b" ab) R "pre-encoded")',
    );
  });
  it('uses literals for 8-bit strings unless UTF8=ACCEPT', () => {
    assert.equal(encodeValue({ quoted: 'é' }).toString('utf8'), '{2}\r\né');
    assert.equal(encodeValue({ quoted: 'é' }, { utf8: true }).toString('utf8'), '"é"');
    assert.equal(encodeValue({ nstring: Buffer.from('body') }).toString(), '{4}\r\nbody');
  });
  it('rejects invalid values', () => {
    assert.throws(() => encodeValue(-1), RangeError);
    assert.throws(() => encodeValue(1.5), RangeError);
    assert.throws(() => encodeValue(-1n), RangeError);
    assert.throws(() => encodeValue('a\r\nb'), RangeError);
    assert.throws(() => encodeValue(''), RangeError);
    let deep: unknown = 'x';
    for (let i = 0; i < 100; i++) deep = [deep];
    assert.throws(() => encodeValue(deep as never), RangeError);
  });
  it('round-trips through the parser: an encoded astring is parsed back', () => {
    for (const s of ['plain', 'with space', 'quote"back\\slash', 'multi\r\nline', 'NIL', '', 'x]y', '%*']) {
      const p = new CommandParser();
      const bytes = Buffer.concat([Buffer.from('t LOGIN '), Buffer.from(astring(s)), Buffer.from(' pw\r\n')]);
      const out = [...p.push(bytes)].filter((e) => e.type === 'command');
      assert.ok(out.length === 1 && out[0].type === 'command' && out[0].parsed.ok, `astring ${JSON.stringify(s)}`);
      const c = out[0].parsed.command;
      assert.ok(c.name === 'LOGIN');
      assert.equal(c.user, s);
    }
  });
});
