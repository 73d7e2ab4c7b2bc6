// Pure IMAP response encoding helpers (RFC 9051 §4 data formats, §7 responses, §9 formal
// syntax). No I/O.
//
// String in, string out: helpers given JS strings return JS strings, which may embed a literal
// ("{n}\r\n" + text) whose n is the UTF-8 byte length — so such strings MUST be written to the
// socket as UTF-8 (the Node default). Helpers given bytes (Uint8Array) return Buffers.

import { utf8Lenient } from '../../mime/text.js';

/** Options for string encoding: `utf8` = the session takes UTF-8 (ENABLE UTF8=ACCEPT, RFC 6855 §3, or IMAP4rev2, RFC 9051 §4.3). */
export interface StringOptions {
  utf8?: boolean;
}

const CRLF = '\r\n';

function toBytes(s: string | Uint8Array): Buffer {
  return typeof s === 'string' ? Buffer.from(s, 'utf8') : Buffer.from(s.buffer, s.byteOffset, s.byteLength);
}

/**
 * RFC 9051 §9: ATOM-CHAR = any CHAR except atom-specials; atom-specials = "(" / ")" / "{" / SP /
 * CTL / list-wildcards ("%" / "*") / quoted-specials (DQUOTE / "\") / resp-specials ("]").
 */
export function isAtomChar(c: number): boolean {
  if (c <= 0x20 || c >= 0x7f) return false; // CTL, SP, 8-bit (CHAR = %x01-7F)
  switch (c) {
    case 0x28: // (
    case 0x29: // )
    case 0x7b: // {
    case 0x25: // %
    case 0x2a: // *
    case 0x22: // "
    case 0x5c: // \
    case 0x5d: // ]
      return false;
    default:
      return true;
  }
}

/** RFC 9051 §9: ASTRING-CHAR = ATOM-CHAR / resp-specials. */
export function isAstringChar(c: number): boolean {
  return c === 0x5d || isAtomChar(c);
}

/**
 * True when `s` can be sent as a quoted string (RFC 9051 §4.3, §9 quoted): no NUL, CR or LF
 * (TEXT-CHAR), and only 7-bit characters unless UTF8=ACCEPT is enabled (RFC 6855 §3).
 */
export function canQuote(s: string, opts: StringOptions = {}): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d) return false;
    if (c >= 0x80) {
      if (!opts.utf8) return false;
      if (c >= 0xd800 && c <= 0xdfff) {
        // only a well-formed surrogate pair is valid UTF-8 once encoded
        const hi = c <= 0xdbff;
        const next = s.charCodeAt(i + 1);
        if (!hi || !(next >= 0xdc00 && next <= 0xdfff)) return false;
        i++;
      }
    }
  }
  return true;
}

/**
 * RFC 9051 §9 literal = "{" number64 "}" CRLF *CHAR8 (server→client literals carry no "+").
 * A string gives a string whose count is its UTF-8 byte length; bytes give a Buffer.
 */
export function literal(data: string): string;
export function literal(data: Uint8Array): Buffer;
export function literal(data: string | Uint8Array): string | Buffer;
export function literal(data: string | Uint8Array): string | Buffer {
  if (typeof data === 'string') return `{${Buffer.byteLength(data, 'utf8')}}${CRLF}${data}`;
  const bytes = toBytes(data);
  return Buffer.concat([Buffer.from(`{${bytes.length}}${CRLF}`, 'latin1'), bytes]);
}

/** RFC 3516 §7 / RFC 9051 §9 literal8 = "~{" number64 "}" CRLF *OCTET (binary data, may contain NUL). */
export function literal8(data: Uint8Array): Buffer {
  const bytes = toBytes(data);
  return Buffer.concat([Buffer.from(`~{${bytes.length}}${CRLF}`, 'latin1'), bytes]);
}

/**
 * A string (RFC 9051 §4.3): quoted ("..." with \" and \\ escapes) when possible, otherwise a
 * literal — the latter when the text contains CR, LF or NUL, or 8-bit characters while
 * UTF8=ACCEPT is not enabled.
 */
export function quoted(s: string, opts: StringOptions = {}): string {
  if (!canQuote(s, opts)) return literal(s);
  return '"' + s.replace(/["\\]/g, '\\$&') + '"';
}

/** RFC 9051 §9 astring = 1*ASTRING-CHAR / string. "NIL" is quoted to stay unambiguous. */
export function astring(s: string, opts: StringOptions = {}): string {
  if (s.length > 0 && s.toUpperCase() !== 'NIL') {
    let atom = true;
    for (let i = 0; i < s.length && atom; i++) atom = isAstringChar(s.charCodeAt(i));
    if (atom) return s;
  }
  return quoted(s, opts);
}

/**
 * RFC 9051 §9 nstring = string / nil. A string is quoted or literal (see {@link quoted}); bytes
 * (message content) are always sent as a literal.
 */
export function nstring(s: string | null, opts?: StringOptions): string;
export function nstring(s: Uint8Array, opts?: StringOptions): Buffer;
export function nstring(s: string | Uint8Array | null, opts?: StringOptions): string | Buffer;
export function nstring(s: string | Uint8Array | null, opts: StringOptions = {}): string | Buffer {
  if (s === null) return 'NIL';
  if (typeof s !== 'string') return literal(s);
  return quoted(s, opts);
}

/**
 * A string made of a message's own header bytes (ENVELOPE and BODYSTRUCTURE fields, issue 15):
 * - IMAP4rev1 session: the bytes exactly as stored, no charset guessing. Quoted when they are
 *   7-bit TEXT-CHARs, otherwise a literal (RFC 3501 §4.3: 8-bit characters only in literals;
 *   a literal is any CHAR8, §9). This is what Dovecot sends.
 * - UTF-8 session (ENABLE UTF8=ACCEPT, RFC 6855 §3, or IMAP4rev2, RFC 9051 §4.3): header strings
 *   are UTF-8 (RFC 6532 §3), so valid UTF-8 goes out as it is, quoted when possible, and a byte
 *   that is not part of a valid UTF-8 sequence goes out as the latin1 character of the same value,
 *   made UTF-8 (utf8Lenient, src/mime/text.ts): never invalid UTF-8 to a client told to expect it.
 */
export function headerString(bytes: Uint8Array, opts: StringOptions = {}): Buffer {
  if (opts.utf8) return Buffer.from(quoted(utf8Lenient(bytes), { utf8: true }), 'utf8');
  const b = toBytes(bytes);
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c === 0 || c === 0x0a || c === 0x0d || c >= 0x80) return literal(b);
  }
  return Buffer.from('"' + b.toString('latin1').replace(/["\\]/g, '\\$&') + '"', 'latin1');
}

/**
 * A mailbox name in a response (RFC 9051 §9 mailbox = "INBOX" / astring). The caller passes the
 * already-encoded name (modified UTF-7 for IMAP4rev1 sessions, UTF-8 after UTF8=ACCEPT).
 * Names with list wildcards or other specials are quoted.
 */
export function mailboxName(name: string, opts: StringOptions = {}): string {
  if (name.toUpperCase() === 'INBOX') return 'INBOX';
  return astring(name, opts);
}

/**
 * A parenthesised list (RFC 9051 §4.4) of already-encoded items, separated by SP: a string
 * when every item is a string, else a Buffer.
 */
export function list(items: readonly string[]): string;
export function list(items: readonly (string | Uint8Array)[]): string | Buffer;
export function list(items: readonly (string | Uint8Array)[]): string | Buffer {
  if (items.every((x) => typeof x === 'string')) return `(${items.join(' ')})`;
  const parts: Buffer[] = [Buffer.from('(', 'latin1')];
  items.forEach((item, i) => {
    if (i > 0) parts.push(Buffer.from(' ', 'latin1'));
    parts.push(toBytes(item));
  });
  parts.push(Buffer.from(')', 'latin1'));
  return Buffer.concat(parts);
}

function oneLine(text: string): string {
  // Response text is TEXT-CHAR only (RFC 9051 §9 resp-text): never let CR/LF/NUL through, it
  // would let a caller-provided string inject a response line.
  return text.replace(/[\r\n\0]/g, ' ');
}

function codeText(code: string | undefined): string {
  return code ? `[${oneLine(code).replace(/\]/g, ' ')}] ` : '';
}

/** `tag OK|NO|BAD [CODE] text CRLF` (RFC 9051 §7.1, §9 response-tagged). */
export function tagged(tag: string, status: 'OK' | 'NO' | 'BAD', text: string, code?: string): string {
  return `${oneLine(tag)} ${status} ${codeText(code)}${oneLine(text)}${CRLF}`;
}

/** `* OK|NO|BAD|BYE|PREAUTH [CODE] text CRLF` (RFC 9051 §7.1). */
export function untaggedStatus(status: 'OK' | 'NO' | 'BAD' | 'BYE' | 'PREAUTH', text: string, code?: string): string {
  return `* ${status} ${codeText(code)}${oneLine(text)}${CRLF}`;
}

/**
 * `* payload CRLF` (RFC 9051 §9 response-data). A string payload is sanitised (no CR/LF) and a
 * string is returned; a byte payload (e.g. a FETCH response holding literals, built with
 * {@link encodeValue}) is emitted as is and a Buffer is returned.
 */
export function untagged(text: string): string;
export function untagged(payload: Uint8Array): Buffer;
export function untagged(payload: string | Uint8Array): string | Buffer {
  if (typeof payload === 'string') return `* ${oneLine(payload)}${CRLF}`;
  return Buffer.concat([Buffer.from('* ', 'latin1'), toBytes(payload), Buffer.from(CRLF, 'latin1')]);
}

/** `+ text CRLF` (RFC 3501 §7.5 command continuation request, RFC 9051 §9 continue-req; text may be base64 for SASL). */
export function continuation(text = ''): string {
  return `+ ${oneLine(text)}${CRLF}`;
}

/**
 * RFC 9051 §9 sequence-set from message numbers or UIDs: sorted, de-duplicated, consecutive
 * runs compressed ("1:3,5"). Throws RangeError on an empty list or a value that is not an
 * nz-number (1..4294967295).
 */
export function sequenceSet(numbers: readonly number[]): string {
  if (numbers.length === 0) throw new RangeError('a sequence set cannot be empty');
  for (const n of numbers) {
    if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw new RangeError(`not an nz-number: ${n}`);
  }
  // Sorted without repeats, every run is ascending: the order-keeping form compresses it.
  const sorted = [...numbers].sort((a, b) => a - b).filter((n, i, a) => i === 0 || n !== a[i - 1]);
  return orderedSequenceSet(sorted);
}

/**
 * A sequence set that keeps the order of `numbers` (an ESEARCH result in sort order, RFC 5267
 * §3.2): only ascending runs of consecutive numbers become ranges ("5,3:4,2,1"), never "12:10".
 */
export function orderedSequenceSet(numbers: readonly number[]): string {
  if (numbers.length === 0) throw new RangeError('a sequence set cannot be empty');
  const parts: string[] = [];
  let start = numbers[0];
  let prev = start;
  for (let i = 1; i <= numbers.length; i++) {
    const n = numbers[i];
    if (n === prev + 1) {
      prev = n;
      continue;
    }
    parts.push(start === prev ? `${start}` : `${start}:${prev}`);
    start = prev = n;
  }
  return parts.join(',');
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * RFC 9051 §9 date-time contents, in UTC: `dd-Mon-yyyy hh:mm:ss +0000` (without the DQUOTEs;
 * wrap with {@link quoted} or `{ quoted: imapDate(d) }`). The day is 2DIGIT (date-day-fixed).
 */
export function imapDate(d: Date): string {
  const t = d.getTime();
  if (!Number.isFinite(t)) throw new RangeError('invalid Date');
  const y = d.getUTCFullYear();
  if (y < 0 || y > 9999) throw new RangeError(`year ${y} is not representable as 4DIGIT`);
  const p2 = (n: number) => String(n).padStart(2, '0');
  return `${p2(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${String(y).padStart(4, '0')} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} +0000`;
}

/**
 * A small tree of IMAP values, to build FETCH (and other) responses:
 * - `string`: an atom or pre-formatted token (e.g. `\Seen`, `BODY[HEADER.FIELDS (FROM)]`), emitted verbatim;
 * - `number` / `bigint`: a non-negative integer (number, number64, mod-sequence);
 * - `null`: NIL;
 * - an array or `{ list }`: a parenthesised list;
 * - `{ quoted }`: a string, quoted or a literal when needed (see {@link quoted});
 * - `{ literal }` / `{ literal8 }`: forced literal / literal8;
 * - `{ nstring }`: NIL, a string, or bytes sent as a literal;
 * - `{ astring }`: an atom when possible, otherwise a string;
 * - `{ raw }`: pre-encoded bytes, emitted verbatim.
 */
export type ImapValue =
  | string
  | number
  | bigint
  | null
  | readonly ImapValue[]
  | { quoted: string }
  | { literal: string | Uint8Array }
  | { literal8: Uint8Array }
  | { nstring: string | Uint8Array | null }
  | { astring: string }
  | { list: readonly ImapValue[] }
  | { raw: string | Uint8Array };

const MAX_DEPTH = 64;

function encodeInto(v: ImapValue, opts: StringOptions, out: Buffer[], depth: number): void {
  if (depth > MAX_DEPTH) throw new RangeError('ImapValue nested too deeply');
  if (v === null) {
    out.push(Buffer.from('NIL', 'latin1'));
  } else if (typeof v === 'string') {
    if (v.length === 0 || /[\r\n\0]/.test(v)) throw new RangeError(`invalid atom ${JSON.stringify(v)}`);
    out.push(Buffer.from(v, 'utf8'));
  } else if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`invalid IMAP number ${v}`);
    out.push(Buffer.from(String(v), 'latin1'));
  } else if (typeof v === 'bigint') {
    if (v < 0n) throw new RangeError(`invalid IMAP number ${v}`);
    out.push(Buffer.from(v.toString(), 'latin1'));
  } else if (Array.isArray(v) || 'list' in (v as object)) {
    const items = (Array.isArray(v) ? v : (v as { list: readonly ImapValue[] }).list) as readonly ImapValue[];
    out.push(Buffer.from('(', 'latin1'));
    items.forEach((item, i) => {
      if (i > 0) out.push(Buffer.from(' ', 'latin1'));
      encodeInto(item, opts, out, depth + 1);
    });
    out.push(Buffer.from(')', 'latin1'));
  } else if ('quoted' in v) {
    out.push(toBytes(quoted(v.quoted, opts)));
  } else if ('literal' in v) {
    out.push(toBytes(literal(v.literal)));
  } else if ('literal8' in v) {
    out.push(literal8(v.literal8));
  } else if ('nstring' in v) {
    out.push(toBytes(nstring(v.nstring, opts)));
  } else if ('astring' in v) {
    out.push(toBytes(astring(v.astring, opts)));
  } else if ('raw' in v) {
    out.push(toBytes(v.raw));
  } else {
    throw new TypeError('unknown ImapValue');
  }
}

/** Encodes an {@link ImapValue} tree. Throws RangeError/TypeError on an invalid value. */
export function encodeValue(v: ImapValue, opts: StringOptions = {}): Buffer {
  const out: Buffer[] = [];
  encodeInto(v, opts, out, 0);
  return Buffer.concat(out);
}
