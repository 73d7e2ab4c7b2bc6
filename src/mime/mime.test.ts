// Unit tests of src/mime on hand-made messages. Expected values are Dovecot 2.3's output (checked
// against a live Dovecot by test/mime/dovecot-diff.test.ts where one is installed).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { CORPUS, crlf, lf, randomCorpus } from '../../test/mime/corpus.js';
import { IMAPTEST_DIR, readMbox } from '../../test/mime/imaptest-harness.js';
import { sexpToBytes, sexpToString } from '../imap/fetch.js';
import {
  analyzeMessage,
  binaryContent,
  bodyStructure,
  envelopeSexp,
  hasEightBitHeader,
  headerValues,
  MESSAGE_INFO_VERSION,
  utf8Lenient,
  normalizeForSearch,
  searchableText,
  sectionBytes,
  sectionRange,
  type MessageInfo,
  type Part,
  type SectionSpec,
} from './index.js';

const corpus = (name: string) => {
  const c = CORPUS.find((m) => m.name === name);
  if (c === undefined) throw new Error(name);
  return { raw: c.raw, info: analyzeMessage(c.raw) };
};
const str = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString('latin1'));
const utf8 = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString('utf8'));
const sec = (raw: Buffer, info: MessageInfo, s: SectionSpec) => str(sectionBytes(raw, info, s));

test('nested multipart: BODYSTRUCTURE, BODY, offsets and sections', () => {
  const { raw, info } = corpus('nested multipart');
  assert.equal(
    sexpToString(bodyStructure(info, true)),
    '((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 21 0 NIL NIL NIL NIL)("text" "html" ("charset" "utf-8") NIL NIL "7bit" 14 0 NIL NIL NIL NIL) "alternative" ("boundary" "inner") NIL NIL NIL)' +
      '("application" "pdf" ("name" "cr.pdf") "<part1@x>" "Compte rendu" "base64" 12 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("attachment" ("filename" "cr.pdf" "size" "12")) ("fr" "en-GB") "http://example/cr.pdf") ' +
      '"mixed" ("boundary" "outer") NIL NIL NIL)',
  );
  assert.equal(
    sexpToString(bodyStructure(info, false)),
    '((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 21 0)("text" "html" ("charset" "utf-8") NIL NIL "7bit" 14 0) "alternative")("application" "pdf" ("name" "cr.pdf") "<part1@x>" "Compte rendu" "base64" 12) "mixed")',
  );
  const p11 = info.root.children![0].children![0];
  assert.deepEqual(p11.path, [1, 1]);
  assert.equal(raw.subarray(p11.bodyStart, p11.bodyEnd).toString(), 'Bonjour =C3=A9t=C3=A9');
  assert.equal(sec(raw, info, { kind: 'part', part: [1, 2] }), '<p>Bonjour</p>');
  assert.equal(sec(raw, info, { kind: 'mime', part: [1, 2] }), 'Content-Type: text/html; charset="utf-8"\r\n\r\n');
  assert.equal(sec(raw, info, { kind: 'part', part: [2] }), 'JVBERi0xLjQK');
  assert.equal(utf8(binaryContent(raw, info, [1, 1]) && (binaryContent(raw, info, [1, 1]) as { data: Uint8Array }).data), 'Bonjour été');
  assert.equal(str((binaryContent(raw, info, [2]) as { data: Uint8Array }).data), '%PDF-1.4\n');
  // the preamble and epilogue belong to the multipart's body
  assert.match(sec(raw, info, { kind: 'text', part: [] })!, /^This is a multi-part message in MIME format\.\r\n--outer\r\n[\s\S]*--outer--\r\nepilogue text\r\n$/);
  assert.equal(info.envelope.subject, 'Résultats');
  assert.equal(info.sentDate, '2025-02-03T10:20:30+01:00');
  assert.equal(info.messageId, 'abc.123@hopital.example');
});

test('message/rfc822 inside a multipart: envelope, HEADER/TEXT/MIME of the part', () => {
  const { raw, info } = corpus('message/rfc822 in multipart');
  const p2 = info.root.children![1];
  assert.equal(p2.type, 'message');
  assert.equal(p2.lines, 16);
  assert.equal(
    sexpToString(envelopeSexp(p2.message!.envelope)),
    '("1 Jan 99 12:00 GMT" "=?utf-8?q?caf=C3=A9?=" (("Orig" NIL "orig" "x.example")) (("Orig" NIL "orig" "x.example")) (("Orig" NIL "orig" "x.example")) ' +
      '((NIL NIL "group" NIL)(NIL NIL "m1" "x.example")(NIL NIL "m2" "x.example")(NIL NIL NIL NIL)("Q \\"quoted\\" name" NIL "q" "x.example")) ' +
      '((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL "<prev@x.example> (comment)" "<orig@x.example>")',
  );
  assert.equal(sec(raw, info, { kind: 'mime', part: [2] }), 'Content-Type: message/rfc822; name=orig.eml\r\nContent-Disposition: inline\r\n\r\n');
  assert.match(sec(raw, info, { kind: 'header', part: [2] })!, /^From: Orig <orig@x\.example>\r\n[\s\S]*boundary=YY\r\n\r\n$/);
  assert.equal(sec(raw, info, { kind: 'text', part: [2] }), '--YY\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\ncaf\xe9\r\n--YY--\r\n');
  assert.equal(sec(raw, info, { kind: 'part', part: [2, 1] }), 'caf\xe9');
  assert.equal(sec(raw, info, { kind: 'mime', part: [2, 1] }), 'Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n');
  assert.equal(
    sec(raw, info, { kind: 'header.fields', part: [2], fields: ['subject', 'X-None'], not: false }),
    'Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\n',
  );
  // HEADER/TEXT of a part that isn't message/rfc822, and parts that don't exist: ""
  assert.equal(sec(raw, info, { kind: 'header', part: [1] }), '');
  assert.equal(sec(raw, info, { kind: 'part', part: [3] }), '');
  // a leaf's only subpart is itself: [1.1] of a text/plain part [1] is [1]
  assert.equal(sec(raw, info, { kind: 'part', part: [1, 1] }), 'see attached');
  assert.equal(sec(raw, info, { kind: 'part', part: [1, 2] }), '');
  assert.equal(sec(raw, info, { kind: 'mime', part: [] }), null);
  assert.equal(searchableText(raw, info, 'body').includes('café'), true); // iso-8859-1 converted
});

test('top-level non-multipart message: part 1 is the body, message/rfc822 numbering continues inside', () => {
  const raw = crlf('Content-Type: message/rfc822\n\nSubject: in\n\nhello\n');
  const info = analyzeMessage(raw);
  assert.equal(sec(raw, info, { kind: 'part', part: [1] }), 'Subject: in\r\n\r\nhello\r\n');
  assert.equal(sec(raw, info, { kind: 'part', part: [1, 1] }), 'hello\r\n');
  assert.equal(sec(raw, info, { kind: 'header', part: [1] }), 'Subject: in\r\n\r\n');
  assert.equal(sec(raw, info, { kind: 'mime', part: [1] }), 'Content-Type: message/rfc822\r\n\r\n');
  assert.equal(sec(raw, info, { kind: 'part', part: [2] }), '');
});

test('5 MB attachment: analysis time, sizes, BINARY decoding', () => {
  const payload = randomBytes(5 * 1024 * 1024);
  const b64 = payload.toString('base64').replace(/.{76}/g, '$&\r\n');
  const raw = Buffer.from(
    'From: a@b.example\r\nSubject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="xyz"\r\n\r\n' +
      '--xyz\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n' +
      `--xyz\r\nContent-Type: application/pdf; name=big.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64}\r\n--xyz--\r\n`,
  );
  analyzeMessage(raw); // warm-up
  const runs: number[] = [];
  let info!: MessageInfo;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    info = analyzeMessage(raw);
    runs.push(performance.now() - t0);
  }
  const best = Math.min(...runs);
  console.log(`# analyzeMessage of a ${(raw.length / 1e6).toFixed(1)} MB message (5 MB attachment): best ${best.toFixed(1)} ms, runs ${runs.map((r) => r.toFixed(1)).join(' ')} ms`);
  assert.ok(JSON.stringify(info).length < 4000);
  const att = info.root.children![1];
  assert.equal(att.size, b64.length);
  assert.equal(att.lines, undefined); // only text/* and message/rfc822 have a line count
  const bin = binaryContent(raw, info, [2]) as { data: Uint8Array };
  assert.ok(Buffer.from(bin.data).equals(payload));
  assert.deepEqual(sectionRange(info, { kind: 'part', part: [2] }), { start: att.bodyStart, end: att.bodyEnd });
});

test('malformed boundaries', () => {
  // no closing boundary: the last part runs to the end
  let { raw, info } = corpus('missing closing boundary');
  assert.equal(sexpToString(bodyStructure(info, false)), '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 8 0)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 18 1) "mixed")');
  assert.equal(sec(raw, info, { kind: 'part', part: [2] }), 'part two, no end\r\n');
  // prefix matches ("--bx" is a "b" boundary), an outer boundary closing an inner multipart,
  // "--b--trailing garbage" closing, text after the close delimiter going to the epilogue
  ({ raw, info } = corpus('boundary prefixes and garbage boundary lines'));
  assert.equal(
    sexpToString(bodyStructure(info, false)),
    '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")',
  );
  // (the header has no blank line: the newline before the next boundary belongs to it)
  assert.equal(sec(raw, info, { kind: 'mime', part: [3] }), 'outer boundary closes inner without its end');
  assert.match(sec(raw, info, { kind: 'text', part: [] })!, /--b--trailing garbage\r\n--b\r\nafter the end: epilogue\r\n$/);
  // a boundary line inside a part's header ends the header there
  ({ raw, info } = corpus('boundary in header'));
  assert.equal(sec(raw, info, { kind: 'mime', part: [1] }), 'Content-Type: text/plain');
  assert.equal(sec(raw, info, { kind: 'part', part: [1] }), '');
  // multipart without boundary parameter, or without any part: one empty text/plain part
  ({ info } = corpus('no boundary parameter'));
  assert.equal(sexpToString(bodyStructure(info, false)), '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")');
  ({ info } = corpus('empty multipart'));
  assert.equal(
    sexpToString(bodyStructure(info, true)),
    '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" ("boundary" "e") NIL NIL NIL)',
  );
  assert.equal(info.root.children!.length, 0);
  // nesting deeper than 100 levels stops being parsed, no stack trouble
  const deep = crlf(
    Array.from({ length: 150 }, (_, i) => `Content-Type: multipart/mixed; boundary=d${i}\n\n--d${i}\n`).join('') + '\nx\n',
  );
  const di = analyzeMessage(deep);
  let depth = 0;
  for (let p: Part | undefined = di.root; p?.children; p = p.children[0]) depth++;
  assert.equal(depth, 99);
});

test('LF-only and mixed line ends: CRLF-counted sizes, CRLF output, no raw ranges', () => {
  const { raw, info } = corpus('LF-only message');
  assert.equal(info.bareLf, true);
  assert.equal(info.rawSize, raw.length);
  assert.equal(info.size, raw.length + (raw.toString('latin1').match(/\n/g) ?? []).length);
  assert.equal(sec(raw, info, { kind: 'full' })!.length, info.size);
  assert.equal(sec(raw, info, { kind: 'part', part: [1] }), 'line 1\r\nline 2\r\n');
  assert.equal(str((binaryContent(raw, info, [2]) as { data: Uint8Array }).data), 'hello\n');
  assert.equal(sectionRange(info, { kind: 'part', part: [1] }), null);
  const crlfInfo = analyzeMessage(crlf(raw.toString('latin1')));
  assert.equal(sexpToString(bodyStructure(info, true)), sexpToString(bodyStructure(crlfInfo, true)));
  const mixed = corpus('mixed CRLF and LF');
  assert.equal(mixed.info.size, mixed.raw.length + 3);
  assert.equal(sec(mixed.raw, mixed.info, { kind: 'text', part: [] }), 'line\r\nline2\r\n\r\n');
});

test('8-bit headers: UTF-8 as is, invalid UTF-8 read as latin1', () => {
  let { raw, info } = corpus('8-bit UTF-8 headers');
  assert.equal(info.envelope.subject, 'Compte-rendu opératoire — été');
  assert.deepEqual(info.envelope.from, [{ name: 'Émile Zola', adl: null, mailbox: 'emile', host: 'zola.example' }]);
  assert.deepEqual(info.root.disposition, ['attachment', [['filename', 'rapport-é.txt']]]);
  assert.equal(info.displayTo, normalizeForSearch('Zoé'));
  assert.deepEqual(headerValues(raw, info, 'SUBJECT'), ['Compte-rendu opératoire — été']);
  ({ raw, info } = corpus('8-bit latin1 headers'));
  assert.equal(info.envelope.subject, 'résumé');
  assert.equal(info.envelope.from![0].name, 'Émile');
  // RFC 2047 words are decoded for SEARCH/SORT, never in ENVELOPE
  const ew = analyzeMessage(crlf('Subject: =?iso-8859-1?q?r=E9sum=E9?= du =?utf-8?b?w6l0w6k=?=\n\nx\n'));
  assert.equal(ew.envelope.subject, '=?iso-8859-1?q?r=E9sum=E9?= du =?utf-8?b?w6l0w6k=?=');
  assert.equal(ew.subject, 'résumé du été');
});

test('8-bit headers on the wire (issue 15): the stored bytes kept where they are not UTF-8, text values unchanged', () => {
  // valid UTF-8: nothing kept beside the text, its UTF-8 is the stored bytes
  let { info } = corpus('8-bit UTF-8 headers');
  assert.equal(info.version, MESSAGE_INFO_VERSION);
  assert.equal(info.envelopeWire, undefined);
  assert.equal(info.root.wire, undefined);
  // Latin-1: the text for SEARCH/SORT/the web, the bytes for IMAP
  ({ info } = corpus('8-bit latin1 headers'));
  assert.equal(info.envelope.subject, 'résumé');
  assert.equal(info.envelopeWire?.subject, 'r\xe9sum\xe9');
  assert.equal(info.envelopeWire?.from?.[0].name, '\xc9mile');
  assert.equal(sexpToBytes(envelopeSexp(info.envelope, info.envelopeWire)).toString('latin1'), '(NIL {6}\r\nr\xe9sum\xe9 (({5}\r\n\xc9mile NIL "emile" "zola.example")) (({5}\r\n\xc9mile NIL "emile" "zola.example")) (({5}\r\n\xc9mile NIL "emile" "zola.example")) NIL NIL NIL NIL NIL)');
  assert.equal(sexpToString(envelopeSexp(info.envelope, info.envelopeWire), { utf8: true }), '(NIL "résumé" (("Émile" NIL "emile" "zola.example")) (("Émile" NIL "emile" "zola.example")) (("Émile" NIL "emile" "zola.example")) NIL NIL NIL NIL NIL)');
  // one field mixing valid UTF-8, Latin-1 and an encoded-word: every byte as stored
  const mix = analyzeMessage(crlf('Subject: caf\xc3\xa9 caf\xe9 =?utf-8?q?caf=C3=A9?=\nMIME-Version: 1.0\nContent-Type: application/pdf; name="r\xe9sultat.pdf"\nContent-Disposition: attachment; filename="\xc3\xa9t\xc3\xa9.pdf"\n\nx\n'));
  assert.equal(mix.envelope.subject, 'cafÃ© café =?utf-8?q?caf=C3=A9?='); // the text stays the latin1 reading (SEARCH, the web)
  assert.equal(mix.envelopeWire?.subject, 'caf\xc3\xa9 caf\xe9 =?utf-8?q?caf=C3=A9?=');
  assert.deepEqual(mix.root.wire, { params: [['name', 'r\xe9sultat.pdf']] }); // the UTF-8 filename needs nothing kept
  assert.deepEqual(mix.root.params, [['name', 'résultat.pdf']]);
  assert.equal(
    sexpToBytes(bodyStructure(mix, true)).toString('latin1'),
    '("application" "pdf" ("name" {12}\r\nr\xe9sultat.pdf) NIL NIL "7bit" 3 NIL ("attachment" ("filename" {9}\r\n\xc3\xa9t\xc3\xa9.pdf)) NIL NIL)',
  );
  assert.equal(sexpToString(bodyStructure(mix, true), { utf8: true }), '("application" "pdf" ("name" "résultat.pdf") NIL NIL "7bit" 3 NIL ("attachment" ("filename" "été.pdf")) NIL NIL)');
  // an encapsulated message's envelope too; JSON round trip keeps it
  const inner = analyzeMessage(crlf('Content-Type: message/rfc822\n\nSubject: \xe9cho\n\nx\n'));
  const copy = JSON.parse(JSON.stringify(inner)) as MessageInfo;
  assert.equal(copy.root.message?.envelopeWire?.subject, '\xe9cho');
  assert.match(sexpToBytes(bodyStructure(copy, false)).toString('latin1'), /\(NIL \{4\}\r\n\xe9cho NIL/);
});

test('utf8Lenient: well-formed UTF-8 sequences kept, other bytes as Latin-1 characters', () => {
  const b = (s: string) => Buffer.from(s, 'latin1');
  assert.equal(utf8Lenient(b('caf\xc3\xa9 caf\xe9')), 'café café');
  assert.equal(utf8Lenient(b('\xf0\x9f\x98\x80!')), '😀!');
  assert.equal(utf8Lenient(b('\xc0\xaf')), 'À¯'); // overlong form: two bytes
  assert.equal(utf8Lenient(b('\xed\xa0\x80')), 'í\xa0\x80'); // a surrogate is not UTF-8
  assert.equal(utf8Lenient(b('\xf4\x90\x80\x80')), 'ô\x90\x80\x80'); // beyond U+10FFFF
  assert.equal(utf8Lenient(b('\xe2\x82')), 'â\x82'); // cut short
  assert.equal(utf8Lenient(b('\xe2\x82\xac')), '€');
});

test('hasEightBitHeader: any header block of the message, never the bodies', () => {
  assert.equal(hasEightBitHeader(crlf('Subject: x\n\ncorps accentu\xe9\n')), false);
  assert.equal(hasEightBitHeader(crlf('Subject: \xe9\n\nx\n')), true);
  const part = (h: string) => crlf(`MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n${h}\n\n\xe9\n--b--\n`);
  assert.equal(hasEightBitHeader(part('Content-Type: text/plain')), false);
  assert.equal(hasEightBitHeader(part('Content-Disposition: attachment; filename="\xe9.pdf"')), true);
  assert.equal(hasEightBitHeader(crlf('Content-Type: message/rfc822\n\nSubject: \xc3\xa9\n\nx\n')), true);
});

test('RFC 2231 parameters: continuations merged, extended values kept encoded (Dovecot 2.3)', () => {
  const { info } = corpus('RFC 2231 parameters');
  const [p1, p2, p3] = info.root.children!;
  assert.deepEqual(p1.params, [['name', 'longname.txt']]);
  assert.deepEqual(p1.disposition, ['attachment', [['filename*', "utf-8''%C3%A9t%C3%A9-suite.txt"]]]);
  // out of order sections are sorted; a missing section leaves them unmerged
  assert.deepEqual(p2.params, [
    ['FORMAT', 'flowed'],
    ['title*', "us-ascii'en'This%20isodd"],
    ['charset', 'us-ascii'],
  ]);
  assert.deepEqual(p2.disposition, ['inline', [['filename*0', 'a'], ['filename*2', 'c']]]);
  // broken "name==?..?=" value kept, empty ";;" skipped, quoted-pair unescaped
  assert.deepEqual(p3.params, [['charset', 'utf-8'], ['name', '=?utf-8?b?w6l0w6k=?='], ['x', 'y']]);
  assert.deepEqual(p3.disposition![1][0], ['filename', 'a"b']);
});

test('addresses, groups and ENVELOPE defaults', () => {
  const { raw, info } = corpus('addresses');
  const env = info.envelope;
  assert.deepEqual(env.from, [
    { name: 'Real Name', adl: null, mailbox: 'user', host: 'domain' },
    { name: null, adl: '@route1,@route2', mailbox: 'r', host: 'd.example' },
    { name: null, adl: null, mailbox: 'e', host: 'd.example' },
  ]);
  assert.deepEqual(env.sender, env.from); // empty Sender: → From
  assert.deepEqual(env.replyTo, [{ name: 'broken', adl: null, mailbox: 'a', host: 'SYNTAX_ERROR' }]);
  assert.deepEqual(
    env.cc!.map((a) => [a.mailbox, a.host]),
    [['group', null], [null, null], ['empty', null], [null, null], ['=?utf-8?q?Gr=C3=BCppe?=', null], ['g', 'x.example'], [null, null]],
  );
  assert.equal(env.subject, 'spaced out subject');
  assert.equal(env.messageId, ' <folded@id>');
  assert.equal(info.messageId, 'folded@id');
  assert.deepEqual(info.references, ['b@c']);
  assert.deepEqual(headerValues(raw, info, 'from', 'address'), ['"Real Name" <user@domain>, <@route1,@route2:r@d.example>, <e@d.example>']);
  assert.deepEqual(headerValues(raw, info, 'cc', 'address'), ['group:;, empty:;, Grüppe: <g@x.example>;']);
  assert.deepEqual(headerValues(raw, info, 'subject', 'subject'), [' spaced out subject ']);
  assert.deepEqual(headerValues(raw, info, 'x-none'), []);
});

test('duplicate headers: first Content-*, last Date/Subject/Message-ID, From merged', () => {
  const { raw, info } = corpus('duplicate headers');
  assert.equal(sexpToString(bodyStructure(info, false)), '("text" "plain" ("charset" "a") NIL NIL "base64" 6 1)');
  assert.equal(info.envelope.subject, 'second');
  assert.equal(info.envelope.from!.length, 2);
  // SORT and THREAD use the first header
  assert.equal(info.subject, 'first');
  assert.equal(info.messageId, 'one@x');
  assert.equal(info.sentDate, '2020-01-01T00:00:00+00:00');
  // BINARY decodes with the last Content-Transfer-Encoding (7bit here)
  assert.equal(str((binaryContent(raw, info, [1]) as { data: Uint8Array }).data), 'eA==\r\n');
});

test('BINARY errors: unknown encoding, invalid base64 / quoted-printable', () => {
  let { raw, info } = corpus('unknown transfer encoding');
  assert.deepEqual(binaryContent(raw, info, [1]), { error: 'UNKNOWN-CTE' });
  assert.deepEqual(binaryContent(raw, info, []), { error: 'UNKNOWN-CTE' });
  raw = crlf('MIME-Version: 1.0\nContent-Transfer-Encoding: base64\n\naGVsbG8\n');
  info = analyzeMessage(raw);
  assert.deepEqual(binaryContent(raw, info, [1]), { error: 'PARSE' });
  raw = crlf('MIME-Version: 1.0\nContent-Transfer-Encoding: quoted-printable\n\nbad=ZZ\n');
  info = analyzeMessage(raw);
  assert.deepEqual(binaryContent(raw, info, [1]), { error: 'PARSE' });
  assert.deepEqual(binaryContent(raw, info, [0]), null);
  assert.deepEqual(binaryContent(raw, info, [5]), { data: new Uint8Array(0) });
  // Content-Transfer-Encoding without MIME-Version/Content-Type: BODYSTRUCTURE says 7bit
  // (Content-* ignored), BINARY still decodes, as Dovecot does
  ({ raw, info } = corpus('CTE without MIME-Version is ignored'));
  assert.equal(info.root.encoding, '7bit');
  assert.equal(info.root.disposition, null);
  assert.equal(str((binaryContent(raw, info, [1]) as { data: Uint8Array }).data), 'hi');
});

test('NUL bytes: 0x80 in BODY[], kept in BINARY[], no raw range', () => {
  const { raw, info } = corpus('NUL bytes');
  assert.equal(info.nul, true);
  assert.equal(sec(raw, info, { kind: 'text', part: [] }), 'body \x80 nul\r\n');
  assert.equal(str((binaryContent(raw, info, [1]) as { data: Uint8Array }).data), 'body \x00 nul\r\n');
  assert.equal(sectionRange(info, { kind: 'full' }), null);
  assert.equal(info.envelope.subject, 'a\uFFFDb');
});

test('HEADER.FIELDS: matching lines as written, blank line, NOT', () => {
  const { raw, info } = corpus('header oddities');
  assert.equal(
    sec(raw, info, { kind: 'header.fields', part: [], fields: ['SUBJECT', 'content-type'], not: false }),
    'Subject : colon after space\r\nContent-Type: text/plain\r\n ; charset=us-ascii\r\n ; format=flowed\r\n\r\n',
  );
  assert.equal(
    sec(raw, info, { kind: 'header.fields', part: [], fields: ['subject', 'content-type', 'from'], not: true }),
    'X-No-Colon line\r\n continued no colon\r\nX-Empty:\r\nX-Tab:\tvalue\r\n\r\n',
  );
  assert.equal(sec(raw, info, { kind: 'header.fields', part: [], fields: ['xyz'], not: false }), '\r\n');
  assert.deepEqual(info.root.params, [['charset', 'us-ascii'], ['format', 'flowed']]);
  assert.deepEqual(info.envelope.from, [{ name: null, adl: null, mailbox: 'folded', host: 'example.org' }]);
});

test('sort and thread keys', () => {
  const { info } = corpus('subjects for SORT');
  assert.equal(info.baseSubject, 'COMPTE RENDU');
  assert.equal(info.subjectIsReplyOrForward, true);
  assert.equal(info.displayFrom, normalizeForSearch('Élise'));
  assert.equal(info.displayTo, normalizeForSearch('Éva'));
  const mk = (h: string) => analyzeMessage(crlf(h + '\n\nx\n'));
  assert.equal(mk('Subject: Re: Re: [PATCH] fix (fwd)').baseSubject, 'FIX');
  assert.equal(mk('Subject: Re: Re: [PATCH] fix (fwd)').subjectIsReplyOrForward, true);
  assert.equal(mk('Subject: [PATCH]').baseSubject, '[PATCH]');
  assert.equal(mk('Subject: [fwd: hello]').baseSubject, 'HELLO');
  assert.equal(mk('Subject: [only a blob]').baseSubject, '[ONLY A BLOB]');
  assert.equal(mk('Subject: Fw: été').baseSubject, 'E\u0301TE\u0301');
  assert.equal(mk('Date: 5 Jan 21 01:02 PST').sentDate, '2021-01-05T01:02:00-08:00');
  assert.equal(mk('Date: Mon, 32 Jan 2020 10:00:00 +0000').sentDate, null);
  assert.equal(mk('Date: garbage').sentDate, null);
  const t = mk('Message-ID: <a@b>\nReferences: <r1@x>\n\t<r2@x> junk <r3 @ x>\nIn-Reply-To: <irt@x>');
  assert.equal(t.messageId, 'a@b');
  assert.deepEqual(t.references, ['r1@x', 'r2@x', 'r3@x']);
  assert.deepEqual(mk('In-Reply-To: <irt@x> <other@x>').references, ['irt@x']);
  assert.deepEqual(mk('References: no ids here\nIn-Reply-To: <irt@x>').references, ['irt@x']);
  // thread fixtures: the ids THREAD=REFERENCES starts from
  const msgs = readMbox(`${IMAPTEST_DIR}/thread.mbox`).map((m) => analyzeMessage(m.raw));
  assert.deepEqual(
    msgs.map((m) => [m.messageId, m.references]),
    [
      ['a@b', []],
      ['b@b', ['a@b', 'c@b']],
      ['c@b', ['b@b']],
    ],
  );
});

test('searchableText: TEXT adds headers, BODY only text bodies, decoded', () => {
  const { raw, info } = corpus('nested multipart');
  const body = searchableText(raw, info, 'body');
  assert.ok(body.includes('Bonjour été'));
  assert.ok(!body.includes('JVBERi0')); // application/pdf is not searched
  assert.ok(!body.includes('Résultats'));
  const text = searchableText(raw, info, 'text');
  assert.ok(text.includes('Subject: Résultats'));
  assert.ok(text.includes('Content-Description: Compte rendu'));
  assert.ok(normalizeForSearch(text).includes(normalizeForSearch('bonjour ÉTÉ')));
});

/** Every section of every part (and some missing ones) of a message. */
function allSpecs(info: MessageInfo): SectionSpec[] {
  const specs: SectionSpec[] = [{ kind: 'full' }];
  const paths: number[][] = [[], [1], [9], [1, 1]];
  const walk = (p: Part) => {
    p.children?.forEach((c) => {
      paths.push(c.path, [...c.path, 1], [...c.path, 7]);
      walk(c);
    });
    if (p.message) walk(p.message.root);
  };
  walk(info.root);
  for (const part of paths) {
    for (const kind of ['header', 'text', 'mime', 'part'] as const) specs.push({ kind, part });
    specs.push({ kind: 'header.fields', part, fields: ['From', 'subject'], not: false });
    specs.push({ kind: 'header.fields', part, fields: ['From'], not: true });
  }
  return specs;
}

function everyMessage(): { name: string; raw: Buffer }[] {
  const out: { name: string; raw: Buffer }[] = [...CORPUS, ...randomCorpus(200, 3)];
  for (const f of readdirSync(IMAPTEST_DIR).filter((f) => f.endsWith('.mbox'))) {
    readMbox(`${IMAPTEST_DIR}/${f}`).forEach((m, i) => out.push({ name: `${f}#${i + 1}`, raw: m.raw }));
  }
  // the same messages stored with LF line ends
  for (const c of CORPUS) out.push({ name: `${c.name} (LF)`, raw: lf(c.raw.toString('latin1').replace(/\r\n/g, '\n')) });
  return out;
}

test('sectionRange agrees with sectionBytes; offsets nest; JSON round trip', () => {
  let ranges = 0;
  for (const m of everyMessage()) {
    const info = analyzeMessage(m.raw);
    const copy = JSON.parse(JSON.stringify(info)) as MessageInfo;
    assert.deepEqual(copy, info, m.name);
    const check = (p: Part, lo: number, hi: number) => {
      assert.ok(lo <= p.headerStart && p.headerStart <= p.bodyStart && p.bodyStart <= p.bodyEnd && p.bodyEnd <= hi, `${m.name} ${p.path}`);
      p.children?.forEach((c) => check(c, p.bodyStart, p.bodyEnd));
      if (p.message) check(p.message.root, p.bodyStart, p.bodyEnd);
    };
    check(info.root, 0, m.raw.length);
    assert.equal(info.root.headerStart, 0);
    assert.equal(info.root.bodyEnd, m.raw.length);
    for (const s of allSpecs(copy)) {
      const bytes = sectionBytes(m.raw, copy, s);
      const range = sectionRange(copy, s);
      if (range !== null) {
        ranges++;
        assert.ok(bytes !== null && Buffer.from(bytes).equals(m.raw.subarray(range.start, range.end)), `${m.name} ${JSON.stringify(s)}`);
      }
      if (s.kind === 'full') assert.equal(bytes!.length, info.size, m.name);
    }
  }
  assert.ok(ranges > 1000);
});

test('never throws on garbage', () => {
  const pieces = ['--a\r\n', '--a--\r\n', 'Content-Type: multipart/mixed; boundary=a\r\n', 'Content-Type: message/rfc822\r\n', '\r\n', '\n', 'x: y\r\n', ' folded\r\n', '=?utf-8?q?', '\x00', '\xff', '"', '(', '<', '@', ';', '\r'];
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  for (let i = 0; i < 500; i++) {
    let s = '';
    for (let k = rnd(60); k > 0; k--) s += pieces[rnd(pieces.length)];
    const raw = i % 5 === 0 ? randomBytes(rnd(300)) : Buffer.from(s, 'latin1');
    const info = analyzeMessage(raw);
    bodyStructure(info, true);
    envelopeSexp(info.envelope);
    for (const spec of allSpecs(info)) sectionBytes(raw, info, spec);
    binaryContent(raw, info, []);
    searchableText(raw, info, 'text');
    headerValues(raw, info, 'from', 'address');
  }
});
