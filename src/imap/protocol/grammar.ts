// Recursive-descent grammar for IMAP client commands, run by parser.ts on one framed command
// (its text lines and the literal data between them). Implements RFC 9051 §9 (IMAP4rev2) and
// RFC 3501 §9 (IMAP4rev1) formal syntax plus the extensions listed at each production.
// Pure: no I/O, no timers. All names are case-insensitive (RFC 9051 §9 preamble).

import { TextDecoder } from 'node:util';
import { isAstringChar, isAtomChar } from './encoder.js';
import type {
  AppendMessage,
  CatenatePart,
  NotifyEvent,
  NotifyFilter,
  NotifyGroup,
  Command,
  FetchAttribute,
  MetadataDepth,
  ParsedCommand,
  PartialRange,
  SearchKey,
  SearchReturn,
  Section,
  SequenceSet,
  SortKey,
  StatusItem,
  StoreAction,
  UrlFetchArg,
} from './types.js';

/** One framed command: text lines (without CRLF) and the literal data that follows each line but the last. */
export interface CommandInput {
  lines: Uint8Array[];
  /** literals[i] follows lines[i] (whose text ends with the literal announcement). */
  literals: Uint8Array[];
  /** false while a synchronizing literal is awaited: reaching it throws {@link INCOMPLETE}. */
  complete: boolean;
}

export interface GrammarOptions {
  /** RFC 6855 §3 UTF8=ACCEPT enabled: UTF-8 allowed in quoted strings. */
  utf8Accept: boolean;
  /** RFC 3516 BINARY announced: literal8 allowed in APPEND. */
  binary: boolean;
}

/** Thrown (as this exact object) when parsing needs literal data not received yet. */
export const INCOMPLETE: unique symbol = Symbol('imap-incomplete');

class ImapSyntaxError {
  constructor(readonly message: string, readonly code?: string) {}
}

const MAX_UINT32 = 4294967295;
const MAX_MODSEQ = 2n ** 63n - 1n; // RFC 7162 §7: mod-sequence-value is a positive 63-bit integer
const MAX_DEPTH = 100; // nesting limit for search keys (NOT/OR/parentheses)
const UTF8 = new TextDecoder('utf-8', { fatal: true });

const SP = 0x20;
const DQUOTE = 0x22;
const LPAREN = 0x28;
const RPAREN = 0x29;
const BACKSLASH = 0x5c;

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function latin1(b: Uint8Array, s: number, e: number): string {
  let out = '';
  for (let i = s; i < e; i++) out += String.fromCharCode(b[i]);
  return out;
}

const MONTHS: Record<string, number> = { JAN: 1, FEB: 2, MAR: 3, APR: 4, MAY: 5, JUN: 6, JUL: 7, AUG: 8, SEP: 9, OCT: 10, NOV: 11, DEC: 12 };

function daysInMonth(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(m) ? 30 : 31;
}

const SYSTEM_FLAGS: Record<string, string> = {
  '\\ANSWERED': '\\Answered',
  '\\FLAGGED': '\\Flagged',
  '\\DELETED': '\\Deleted',
  '\\SEEN': '\\Seen',
  '\\DRAFT': '\\Draft',
  '\\RECENT': '\\Recent',
};

// RFC 6154 §6 use-attr (canonical spelling; other "\" atoms are use-attr-ext, kept as sent).
const USE_ATTRS: Record<string, string> = {
  '\\ALL': '\\All',
  '\\ARCHIVE': '\\Archive',
  '\\DRAFTS': '\\Drafts',
  '\\FLAGGED': '\\Flagged',
  '\\JUNK': '\\Junk',
  '\\SENT': '\\Sent',
  '\\TRASH': '\\Trash',
};

// RFC 9051 §9 status-att (+ RFC 3501 RECENT, RFC 7162 §3.1.7 HIGHESTMODSEQ, RFC 7889 APPENDLIMIT).
const STATUS_ITEMS = new Set<StatusItem>(['MESSAGES', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN', 'DELETED', 'SIZE', 'RECENT', 'HIGHESTMODSEQ', 'APPENDLIMIT']);

class Reader {
  private li = 0;
  private base = 0; // absolute offset of the current line's first byte in the command
  line: Uint8Array;
  pos = 0;

  constructor(private readonly input: CommandInput, readonly opts: GrammarOptions) {
    this.line = input.lines[0];
  }

  get offset(): number {
    return this.base + this.pos;
  }

  peek(k = 0): number {
    const p = this.pos + k;
    return p < this.line.length ? this.line[p] : -1;
  }

  atEnd(): boolean {
    return this.pos >= this.line.length;
  }

  private found(): string {
    const c = this.peek();
    if (c === -1) return 'end of line';
    if (c === SP) return 'SP';
    if (c === DQUOTE) return 'DQUOTE';
    if (c > SP && c < 0x7f) return `"${String.fromCharCode(c)}"`;
    return `byte 0x${c.toString(16).padStart(2, '0').toUpperCase()}`;
  }

  /** Throws "expected X at offset N, found Y". */
  fail(expected: string): never {
    throw new ImapSyntaxError(`expected ${expected} at offset ${this.offset}, found ${this.found()}`);
  }

  /** Throws "message at offset N". */
  error(message: string, at = this.offset, code?: string): never {
    throw new ImapSyntaxError(`${message} at offset ${at}`, code);
  }

  eat(c: number): boolean {
    if (this.peek() === c) {
      this.pos++;
      return true;
    }
    return false;
  }

  expect(c: number, what: string): void {
    if (!this.eat(c)) this.fail(what);
  }

  /** RFC 9051 §2.2.1 / RFC 3501 §2.2.1: exactly one SP between arguments. */
  sp(context?: string): void {
    if (!this.eat(SP)) this.fail(context ? `SP ${context}` : 'SP');
  }

  /** End of the command (no extraneous arguments, RFC 9051 §2.2.1). */
  end(): void {
    if (!this.atEnd()) this.fail('end of command');
  }

  /** RFC 9051 §9 atom = 1*ATOM-CHAR. */
  atom(what = 'atom'): string {
    const s = this.pos;
    while (this.pos < this.line.length && isAtomChar(this.line[this.pos])) this.pos++;
    if (this.pos === s) this.fail(what);
    return latin1(this.line, s, this.pos);
  }

  /** An upper-cased keyword (atom) — command names, search keys, options. */
  keyword(what: string): string {
    return this.atom(what).toUpperCase();
  }

  /** The upper-cased atom at the cursor, without consuming it ('' if none). */
  peekKeyword(): string {
    let p = this.pos;
    while (p < this.line.length && isAtomChar(this.line[p])) p++;
    return latin1(this.line, this.pos, p).toUpperCase();
  }

  /** Consumes keyword `kw` if it is the whole atom at the cursor. */
  eatKeyword(kw: string): boolean {
    if (this.peekKeyword() !== kw) return false;
    this.pos += kw.length;
    return true;
  }

  private digits(what: string): { text: string; at: number } {
    const at = this.offset;
    const s = this.pos;
    while (this.pos < this.line.length && isDigit(this.line[this.pos])) this.pos++;
    if (this.pos === s) this.fail(what);
    return { text: latin1(this.line, s, this.pos).replace(/^0+(?=\d)/, ''), at };
  }

  /** RFC 9051 §9 number: unsigned 32-bit. */
  number(what = 'number'): number {
    const { text, at } = this.digits(what);
    if (text.length > 10 || Number(text) > MAX_UINT32) this.error(`number ${text.length > 20 ? text.slice(0, 20) + '…' : text} out of range (max ${MAX_UINT32})`, at);
    return Number(text);
  }

  /** RFC 9051 §9 nz-number: 1..4294967295. */
  nzNumber(what = 'nz-number'): number {
    const at = this.offset;
    const n = this.number(what);
    if (n === 0) this.error(`expected ${what} (non-zero), found 0`, at);
    return n;
  }

  /** RFC 9051 §9 number64 (limited to Number.MAX_SAFE_INTEGER so it stays exact as a JS number). */
  number64(what = 'number'): number {
    const { text, at } = this.digits(what);
    if (text.length > 16 || !Number.isSafeInteger(Number(text))) this.error(`number ${text.length > 20 ? text.slice(0, 20) + '…' : text} too large (max ${Number.MAX_SAFE_INTEGER})`, at);
    return Number(text);
  }

  /** RFC 7162 §7 mod-sequence-value (1..2^63-1) / mod-sequence-valzer (0..2^63-1). */
  modseq(allowZero: boolean): bigint {
    const what = allowZero ? 'mod-sequence-valzer' : 'mod-sequence-value';
    const { text, at } = this.digits(what);
    if (text.length > 19 || BigInt(text) > MAX_MODSEQ) this.error(`mod-sequence ${text.length > 20 ? text.slice(0, 20) + '…' : text} out of range (max ${MAX_MODSEQ})`, at);
    const v = BigInt(text);
    if (!allowZero && v === 0n) this.error(`expected ${what} (non-zero), found 0`, at);
    return v;
  }

  /** RFC 9051 §9 quoted = DQUOTE *QUOTED-CHAR DQUOTE; returns the unescaped bytes. */
  quoted(): Uint8Array {
    const at = this.offset;
    this.expect(DQUOTE, 'DQUOTE');
    const out: number[] = [];
    let eightBit = false;
    for (;;) {
      const c = this.peek();
      if (c === -1) this.error('unterminated quoted string starting', at);
      this.pos++;
      if (c === DQUOTE) break;
      if (c === BACKSLASH) {
        // QUOTED-CHAR =/ "\" quoted-specials
        const e = this.peek();
        if (e !== DQUOTE && e !== BACKSLASH) this.error(`invalid escape in quoted string (only \\" and \\\\ are allowed)`, this.offset - 1);
        this.pos++;
        out.push(e);
        continue;
      }
      if (c === 0) this.error('NUL in quoted string', this.offset - 1);
      if (c === 0x0d || c === 0x0a) this.error('CR or LF in quoted string (use a literal)', this.offset - 1);
      if (c >= 0x80) {
        // RFC 9051 §9 QUOTED-CHAR =/ UTF8-2 / UTF8-3 / UTF8-4, usable only once UTF8=ACCEPT is
        // enabled (RFC 6855 §3); IMAP4rev1 quoted strings are 7-bit (RFC 3501 §4.3).
        if (!this.opts.utf8Accept) this.error('8-bit character in quoted string (requires ENABLE UTF8=ACCEPT; use a literal)', this.offset - 1);
        eightBit = true;
      }
      out.push(c);
    }
    const bytes = Uint8Array.from(out);
    if (eightBit) {
      try {
        UTF8.decode(bytes);
      } catch {
        this.error('invalid UTF-8 in quoted string starting', at);
      }
    }
    return bytes;
  }

  /**
   * RFC 9051 §9 literal = "{" number64 ["+"] "}" CRLF *CHAR8 (RFC 7888 adds the "+" form), and
   * literal8 = "~{" number64 ["+"] "}" CRLF *OCTET (RFC 3516 §7, RFC 4466 §3) when allow8.
   */
  literal(allow8: boolean): { data: Uint8Array; binary: boolean } {
    const at = this.offset;
    let binary = false;
    if (this.peek() === 0x7e) {
      binary = true;
      this.pos++;
    }
    this.expect(0x7b, binary ? '"{" after "~"' : '"{"');
    this.digits('literal size');
    this.eat(0x2b);
    this.expect(0x7d, '"}"');
    if (!this.atEnd()) this.fail('CRLF after literal announcement');
    if (binary && !allow8) this.error('literal8 is only allowed for APPEND message data (RFC 3516 §4.4)', at);
    if (binary && !this.opts.binary) this.error('literal8 requires the BINARY extension', at);
    if (this.li >= this.input.literals.length) {
      if (!this.input.complete) throw INCOMPLETE;
      this.error('missing literal data', at);
    }
    const data = this.input.literals[this.li];
    if (!binary) {
      // CHAR8 = %x01-ff: a literal cannot hold NUL (RFC 9051 §4.3.1; binary data needs literal8)
      const z = data.indexOf(0);
      if (z !== -1) this.error(`NUL octet in literal (octet ${z}; use literal8)`, at);
    }
    this.base += this.line.length + 2 + data.length;
    this.li++;
    this.line = this.input.lines[this.li];
    this.pos = 0;
    return { data, binary };
  }

  /** RFC 9051 §9 string = quoted / literal; returns raw bytes and whether it was a literal. */
  string(what = 'string'): { bytes: Uint8Array; literal: boolean } {
    const c = this.peek();
    if (c === DQUOTE) return { bytes: this.quoted(), literal: false };
    if (c === 0x7b) return { bytes: this.literal(false).data, literal: true };
    if (c === 0x7e && this.peek(1) === 0x7b) this.literal(false); // throws: literal8 is for APPEND data only
    this.fail(what);
  }

  /** RFC 9051 §9 astring = 1*ASTRING-CHAR / string; raw bytes. */
  astringBytes(what = 'astring'): { bytes: Uint8Array; literal: boolean } {
    const c = this.peek();
    if (c === DQUOTE || c === 0x7b || (c === 0x7e && this.peek(1) === 0x7b)) return this.string(what);
    const s = this.pos;
    while (this.pos < this.line.length && isAstringChar(this.line[this.pos])) this.pos++;
    if (this.pos === s) this.fail(what);
    return { bytes: this.line.subarray(s, this.pos), literal: false };
  }

  text(bytes: Uint8Array, at: number): string {
    try {
      return UTF8.decode(bytes);
    } catch {
      this.error('invalid UTF-8 in string', at);
    }
  }

  astring(what = 'astring'): string {
    const at = this.offset;
    return this.text(this.astringBytes(what).bytes, at);
  }

  /** RFC 9051 §9 nstring = string / nil. */
  nstring(what = 'nstring'): string | null {
    if (this.eatKeyword('NIL')) return null;
    const at = this.offset;
    return this.text(this.string(what).bytes, at);
  }

  /** RFC 9051 §9 mailbox = "INBOX" / astring; INBOX is case-insensitive (§5.1). */
  mailbox(): string {
    const name = this.astring('mailbox');
    return name.toUpperCase() === 'INBOX' ? 'INBOX' : name;
  }

  /** RFC 9051 §9 list-mailbox = 1*list-char / string; list-char = ATOM-CHAR / list-wildcards / resp-specials. */
  listMailbox(): string {
    const c = this.peek();
    if (c === DQUOTE || c === 0x7b || (c === 0x7e && this.peek(1) === 0x7b)) return this.astring('list-mailbox');
    const s = this.pos;
    for (;;) {
      const b = this.peek();
      if (b === -1 || !(isAtomChar(b) || b === 0x25 || b === 0x2a || b === 0x5d)) break;
      this.pos++;
    }
    if (this.pos === s) this.fail('list-mailbox');
    return latin1(this.line, s, this.pos);
  }

  /** RFC 9051 §9 seq-number = nz-number / "*" ("*" is Infinity). */
  private seqNumber(allowStar: boolean): number {
    if (this.peek() === 0x2a) {
      if (!allowStar) this.error('"*" is not allowed in this sequence set');
      this.pos++;
      return Infinity;
    }
    return this.nzNumber('sequence number');
  }

  /**
   * RFC 9051 §9 sequence-set = (seq-number / seq-range) ["," sequence-set], seq-range =
   * seq-number ":" seq-number (either order); RFC 5182 §3 sequence-set =/ "$".
   */
  sequenceSet(opts: { star?: boolean; dollar?: boolean } = {}): SequenceSet {
    const allowStar = opts.star !== false;
    if (this.peek() === 0x24) {
      if (opts.dollar === false) this.error('"$" is not allowed here');
      this.pos++;
      const n = this.peek();
      if (n !== -1 && n !== SP && n !== RPAREN) this.error('"$" must be used alone as a sequence set (RFC 5182)');
      return { ranges: [], saved: true };
    }
    const c = this.peek();
    if (!(isDigit(c) || c === 0x2a)) this.fail('sequence-set');
    const ranges: { from: number; to: number }[] = [];
    do {
      const a = this.seqNumber(allowStar);
      let b = a;
      if (this.eat(0x3a)) b = this.seqNumber(allowStar);
      ranges.push(a <= b ? { from: a, to: b } : { from: b, to: a });
    } while (this.eat(0x2c));
    return { ranges };
  }

  /** RFC 9051 §9 flag = "\Answered" / ... / flag-keyword / flag-extension ("\" atom). System flags get canonical case. */
  flag(): string {
    if (this.eat(BACKSLASH)) {
      const name = '\\' + this.atom('flag name after "\\"');
      return SYSTEM_FLAGS[name.toUpperCase()] ?? name;
    }
    return this.atom('flag');
  }

  /** RFC 9051 §9 flag-list = "(" [flag *(SP flag)] ")". */
  flagList(): string[] {
    this.expect(LPAREN, '"(" (flag list)');
    const flags: string[] = [];
    if (this.eat(RPAREN)) return flags;
    do flags.push(this.flag());
    while (this.eat(SP));
    this.expect(RPAREN, 'SP or ")" in flag list');
    return flags;
  }
}

// ---------------------------------------------------------------------------------------------
// Dates

/**
 * RFC 9051 §9 date = date-text / DQUOTE date-text DQUOTE; date-text = date-day "-" date-month
 * "-" date-year (date-day = 1*2DIGIT). Returns YYYY-MM-DD.
 */
function searchDate(r: Reader): string {
  const at = r.offset;
  const q = r.eat(DQUOTE);
  const s = r.pos;
  while (r.peek() !== -1 && r.peek() !== SP && r.peek() !== RPAREN && r.peek() !== DQUOTE) r.pos++;
  const text = latin1(r.line, s, r.pos);
  if (q) r.expect(DQUOTE, 'closing DQUOTE of date');
  const m = /^(\d{1,2})-([A-Za-z]{3})-(\d{4})$/.exec(text);
  if (!m) r.error(`invalid date "${text}" (expected d-Mon-yyyy)`, at);
  const day = Number(m[1]);
  const month = MONTHS[m[2].toUpperCase()];
  const year = Number(m[3]);
  if (!month || day < 1 || day > daysInMonth(year, month)) r.error(`invalid date "${text}"`, at);
  return `${m[3]}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
}

/**
 * RFC 9051 §9 date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone
 * DQUOTE; date-day-fixed = (SP DIGIT) / 2DIGIT. Returned as sent, without the DQUOTEs.
 */
function dateTime(r: Reader): string {
  const at = r.offset;
  const raw = r.quoted();
  const text = latin1(raw, 0, raw.length);
  const m = /^( \d|\d\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$/.exec(text);
  if (!m) r.error(`invalid date-time "${text}" (expected "dd-Mon-yyyy hh:mm:ss +zzzz")`, at);
  const day = Number(m[1].trim());
  const month = MONTHS[m[2].toUpperCase()];
  const year = Number(m[3]);
  if (!month || day < 1 || day > daysInMonth(year, month) || Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6]) > 60 || Number(m[9]) > 59) {
    r.error(`invalid date-time "${text}"`, at);
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// SEARCH (RFC 9051 §6.4.4, RFC 3501 §6.4.4)

interface SearchContext {
  /** Decodes a search string; literals use the CHARSET, atoms/quoted strings are UTF-8/ASCII. */
  decode(bytes: Uint8Array, literal: boolean, at: number): string;
}

function charsetToken(r: Reader): string {
  // RFC 4466 §3 charset = atom / quoted
  if (r.peek() === DQUOTE) {
    const at = r.offset;
    return r.text(r.quoted(), at);
  }
  return r.atom('charset');
}

/** A decoder for a SEARCH/SORT/THREAD CHARSET, or null when unsupported (→ NO [BADCHARSET]). */
function charsetDecoder(charset: string): TextDecoder | null {
  const cs = charset.toUpperCase();
  // RFC 9051 §6.4.4: US-ASCII and UTF-8 MUST be supported. US-ASCII is decoded as UTF-8 (a superset).
  if (cs === 'UTF-8' || cs === 'US-ASCII' || cs === 'UTF8') return UTF8;
  try {
    return new TextDecoder(charset, { fatal: true });
  } catch {
    return null;
  }
}

function makeSearchContext(r: Reader, charset: string | undefined): { ctx: SearchContext; unsupported: boolean } {
  const dec = charset === undefined ? UTF8 : charsetDecoder(charset);
  const ctx: SearchContext = {
    decode(bytes, literal, at) {
      const d = literal && dec ? dec : UTF8;
      if (!dec && literal) return latin1(bytes, 0, bytes.length); // placeholder: the command fails with BADCHARSET
      try {
        return d.decode(bytes);
      } catch {
        return r.error(`search string is not valid ${literal && charset ? charset : 'UTF-8'}`, at);
      }
    },
  };
  return { ctx, unsupported: dec === null };
}

function searchString(r: Reader, s: SearchContext): string {
  const at = r.offset;
  const { bytes, literal } = r.astringBytes('search string (astring)');
  return s.decode(bytes, literal, at);
}

const FLAG_KEYS: Record<string, [string, boolean]> = {
  ANSWERED: ['\\Answered', true],
  DELETED: ['\\Deleted', true],
  DRAFT: ['\\Draft', true],
  FLAGGED: ['\\Flagged', true],
  SEEN: ['\\Seen', true],
  UNANSWERED: ['\\Answered', false],
  UNDELETED: ['\\Deleted', false],
  UNDRAFT: ['\\Draft', false],
  UNFLAGGED: ['\\Flagged', false],
  UNSEEN: ['\\Seen', false],
};

const HEADER_KEYS: Record<string, string> = { BCC: 'Bcc', CC: 'Cc', FROM: 'From', SUBJECT: 'Subject', TO: 'To' };

const DATE_KEYS: Record<string, ['internal' | 'sent', 'before' | 'on' | 'since']> = {
  BEFORE: ['internal', 'before'],
  ON: ['internal', 'on'],
  SINCE: ['internal', 'since'],
  SENTBEFORE: ['sent', 'before'],
  SENTON: ['sent', 'on'],
  SENTSINCE: ['sent', 'since'],
};

/** RFC 9051 §9 search-key (+ RFC 3501 NEW/OLD/RECENT, RFC 7162 §3.1.5 MODSEQ, RFC 5032 §3 OLDER/YOUNGER, RFC 5182 "$"). */
function searchKey(r: Reader, s: SearchContext, depth: number): SearchKey {
  if (depth > MAX_DEPTH) r.error(`search keys nested too deeply (max ${MAX_DEPTH})`);
  const c = r.peek();
  if (c === LPAREN) {
    // "(" search-key *(SP search-key) ")"
    r.pos++;
    const keys = [searchKey(r, s, depth + 1)];
    while (r.eat(SP)) keys.push(searchKey(r, s, depth + 1));
    r.expect(RPAREN, 'SP or ")" in search key list');
    return keys.length === 1 ? keys[0] : { kind: 'and', keys };
  }
  if (c === 0x24) {
    r.sequenceSet(); // RFC 5182 §2.1: "$" as a search key is the saved result
    return { kind: 'savedresult' };
  }
  if (isDigit(c) || c === 0x2a) return { kind: 'seq', set: r.sequenceSet() };
  const at = r.offset;
  const name = r.keyword('search key');
  const flag = FLAG_KEYS[name];
  if (flag) return { kind: 'flag', flag: flag[0], set: flag[1] };
  const header = HEADER_KEYS[name];
  if (header) {
    r.sp(`after ${name}`);
    return { kind: 'header', field: header, value: searchString(r, s), viaKeyword: true };
  }
  const date = DATE_KEYS[name];
  if (date) {
    r.sp(`after ${name}`);
    return { kind: 'date', which: date[0], op: date[1], date: searchDate(r) };
  }
  switch (name) {
    case 'ALL':
      return { kind: 'all' };
    case 'NEW': // RFC 3501 §6.4.4 (removed in IMAP4rev2)
      return { kind: 'new' };
    case 'OLD':
      return { kind: 'old' };
    case 'RECENT':
      return { kind: 'recent', set: true };
    case 'KEYWORD':
    case 'UNKEYWORD':
      r.sp(`after ${name}`);
      return { kind: 'flag', flag: r.atom('flag-keyword'), set: name === 'KEYWORD' };
    case 'BODY':
    case 'TEXT':
      r.sp(`after ${name}`);
      return { kind: name === 'BODY' ? 'body' : 'text', value: searchString(r, s) };
    case 'HEADER': {
      r.sp('after HEADER');
      const fat = r.offset;
      const field = r.text(r.astringBytes('header-fld-name').bytes, fat);
      r.sp('after header field name');
      return { kind: 'header', field, value: searchString(r, s) };
    }
    case 'LARGER':
    case 'SMALLER':
      r.sp(`after ${name}`);
      return { kind: 'size', op: name === 'LARGER' ? 'larger' : 'smaller', n: r.number64() };
    case 'NOT':
      r.sp('after NOT');
      return { kind: 'not', key: searchKey(r, s, depth + 1) };
    case 'OR': {
      r.sp('after OR');
      const a = searchKey(r, s, depth + 1);
      r.sp('between OR operands');
      const b = searchKey(r, s, depth + 1);
      return { kind: 'or', a, b };
    }
    case 'UID':
      r.sp('after UID');
      return { kind: 'uid', set: r.sequenceSet() };
    case 'OLDER':
    case 'YOUNGER': // RFC 5032 §3
      r.sp(`after ${name}`);
      return { kind: name === 'OLDER' ? 'older' : 'younger', seconds: r.nzNumber('interval (seconds)') };
    case 'MODSEQ': {
      // RFC 7162 §3.1.5, §7: "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer
      r.sp('after MODSEQ');
      if (r.peek() === DQUOTE) {
        const eat = r.offset;
        const entry = r.text(r.quoted(), eat);
        if (!entry.toLowerCase().startsWith('/flags/') || entry.length === 7) r.error(`invalid MODSEQ entry name "${entry}" (expected "/flags/<flag>")`, eat);
        r.sp('after MODSEQ entry name');
        const tat = r.offset;
        const type = r.keyword('entry-type-req (priv, shared or all)').toLowerCase();
        if (type !== 'priv' && type !== 'shared' && type !== 'all') r.error(`invalid MODSEQ entry type "${type}" (expected priv, shared or all)`, tat);
        r.sp('after MODSEQ entry type');
        return { kind: 'modseq', modseq: r.modseq(true), entry: { name: entry, type } };
      }
      return { kind: 'modseq', modseq: r.modseq(true) };
    }
    default:
      return r.error(`unknown search key "${name}"`, at);
  }
}

/** search-key *(SP search-key) up to the end of the command; one key is returned as is, several as 'and'. */
function searchKeys(r: Reader, s: SearchContext): SearchKey {
  const keys = [searchKey(r, s, 0)];
  while (r.eat(SP)) keys.push(searchKey(r, s, 0));
  r.end();
  return keys.length === 1 ? keys[0] : { kind: 'and', keys };
}

/**
 * RFC 4466 §3 search-return-opts / RFC 4731 §4, RFC 5182 §3 (SAVE), RFC 9051 §9 search-return-opt,
 * RFC 5267 §5 modifier-context / modifier-partial / modifier-update.
 */
function searchReturnOpts(r: Reader): { returns: SearchReturn; partial?: PartialRange } {
  r.sp('after RETURN');
  r.expect(LPAREN, '"(" after RETURN');
  const opts: SearchReturn = [];
  let partial: PartialRange | undefined;
  if (r.eat(RPAREN)) return { returns: opts }; // RFC 4731 §3.1: RETURN () means ALL
  do {
    const at = r.offset;
    const o = r.keyword('search return option');
    if (o !== 'MIN' && o !== 'MAX' && o !== 'ALL' && o !== 'COUNT' && o !== 'SAVE' && o !== 'CONTEXT' && o !== 'UPDATE' && o !== 'PARTIAL') r.error(`unknown search return option "${o}"`, at);
    if (o === 'PARTIAL') {
      // RFC 5267 §5: modifier-partial = "PARTIAL" SP partial-range; partial-range = nz-number ":"
      // nz-number ("500:400 is the same as 400:500", never "*").
      r.sp('after PARTIAL');
      const a = r.nzNumber('partial range start');
      r.expect(0x3a, '":" in partial range');
      const b = r.nzNumber('partial range end');
      if (partial) r.error('PARTIAL given twice', at);
      partial = a <= b ? { from: a, to: b } : { from: b, to: a };
    }
    if (!opts.includes(o)) opts.push(o);
  } while (r.eat(SP));
  r.expect(RPAREN, 'SP or ")" in RETURN options');
  // RFC 5267 §4.4: "A single command MUST NOT contain more than one PARTIAL or ALL search return option".
  if (partial && opts.includes('ALL')) r.error('PARTIAL and ALL cannot be used together (RFC 5267 §4.4)', r.offset);
  return partial ? { returns: opts, partial } : { returns: opts };
}

function withCharset<T extends object>(r: Reader, charset: string | undefined, charsetAt: number, build: (s: SearchContext) => T): T {
  const { ctx, unsupported } = makeSearchContext(r, charset);
  const result = build(ctx);
  // Reported only once the whole command parsed: a syntax error is BAD, an unknown charset NO [BADCHARSET].
  if (unsupported) r.error(`unsupported charset "${charset}"`, charsetAt, 'BADCHARSET');
  return result;
}

/** RFC 9051 §9 search-return-opts (SEARCH; SORT with RFC 5267 ESORT): optional "RETURN" (...) SP. */
function optionalReturnOpts(r: Reader): { returns?: SearchReturn; partial?: PartialRange } {
  if (!r.eatKeyword('RETURN')) return {};
  const opts = searchReturnOpts(r);
  r.sp('after RETURN options');
  return opts;
}

/** RFC 5256 §5 search-criteria = charset 1*(SP search-key), for SORT and THREAD. */
function searchCriteria(r: Reader): { charset: string; key: SearchKey } {
  const charsetAt = r.offset;
  const charset = charsetToken(r);
  r.sp('after charset');
  const key = withCharset(r, charset, charsetAt, (s) => searchKeys(r, s));
  return { charset, key };
}

function searchCommand(r: Reader, uid: boolean): Command {
  // RFC 9051 §9 search = "SEARCH" [search-return-opts] SP search-program
  r.sp('after SEARCH');
  const { returns, partial } = optionalReturnOpts(r);
  let charset: string | undefined;
  let charsetAt = 0;
  if (r.eatKeyword('CHARSET')) {
    r.sp('after CHARSET');
    charsetAt = r.offset;
    charset = charsetToken(r);
    r.sp('after charset');
  }
  const key = withCharset(r, charset, charsetAt, (s) => searchKeys(r, s));
  return {
    name: uid ? 'UID SEARCH' : 'SEARCH',
    ...(charset !== undefined ? { charset } : {}),
    ...(returns ? { returns } : {}),
    ...(partial ? { partial } : {}),
    key,
  };
}

const SORT_KEYS = new Set(['ARRIVAL', 'CC', 'DATE', 'FROM', 'SIZE', 'SUBJECT', 'TO', 'DISPLAYFROM', 'DISPLAYTO']);

function sortCommand(r: Reader, uid: boolean): Command {
  // RFC 5256 §5: sort = ["UID" SP] "SORT" SP sort-criteria SP search-criteria;
  // RFC 5267 (ESORT) adds [search-return-opts] after "SORT"; RFC 5957 adds DISPLAYFROM/DISPLAYTO.
  r.sp('after SORT');
  const { returns, partial } = optionalReturnOpts(r);
  r.expect(LPAREN, '"(" (sort criteria)');
  const keys: SortKey[] = [];
  do {
    let reverse = false;
    let at = r.offset;
    let k = r.keyword('sort key');
    if (k === 'REVERSE') {
      reverse = true;
      r.sp('after REVERSE');
      at = r.offset;
      k = r.keyword('sort key');
    }
    if (!SORT_KEYS.has(k)) r.error(`unknown sort key "${k}"`, at);
    keys.push({ key: k as SortKey['key'], reverse });
  } while (r.eat(SP));
  r.expect(RPAREN, 'SP or ")" in sort criteria');
  r.sp('after sort criteria');
  const { charset, key } = searchCriteria(r);
  return { name: uid ? 'UID SORT' : 'SORT', keys, charset, key, ...(returns ? { returns } : {}), ...(partial ? { partial } : {}) };
}

function threadCommand(r: Reader, uid: boolean): Command {
  // RFC 5256 §5: thread = ["UID" SP] "THREAD" SP thread-alg SP search-criteria
  r.sp('after THREAD');
  const algorithm = r.keyword('thread algorithm');
  r.sp('after thread algorithm');
  const { charset, key } = searchCriteria(r);
  return { name: uid ? 'UID THREAD' : 'THREAD', algorithm, charset, key };
}

// ---------------------------------------------------------------------------------------------
// FETCH (RFC 9051 §6.4.5)

function fetchAttName(r: Reader): string {
  const s = r.pos;
  for (;;) {
    const c = r.peek();
    if (c === -1) break;
    const alnum = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || isDigit(c);
    if (!alnum && c !== 0x2e && c !== 0x2d && c !== 0x5f) break;
    r.pos++;
  }
  return latin1(r.line, s, r.pos).toUpperCase();
}

/** RFC 9051 §9 section-part = nz-number *("." nz-number). */
function sectionPart(r: Reader): number[] {
  const part = [r.nzNumber('section part number')];
  while (r.peek() === 0x2e && isDigit(r.peek(1))) {
    r.pos++;
    part.push(r.nzNumber('section part number'));
  }
  return part;
}

/**
 * RFC 9051 §9 section = "[" [section-spec] "]"; section-spec = section-msgtext / (section-part
 * ["." section-text]); section-msgtext = "HEADER" / "HEADER.FIELDS" [".NOT"] SP header-list /
 * "TEXT"; section-text = section-msgtext / "MIME"; header-list = "(" header-fld-name *(SP
 * header-fld-name) ")".
 */
function section(r: Reader): Section {
  r.expect(0x5b, '"["');
  if (r.eat(0x5d)) return { kind: 'full' };
  let part: number[] = [];
  if (isDigit(r.peek())) {
    part = sectionPart(r);
    if (r.eat(0x5d)) return { kind: 'part', part };
    r.expect(0x2e, '"." or "]" after section part');
  }
  const at = r.offset;
  const text = fetchAttName(r);
  let result: Section;
  switch (text) {
    case 'HEADER':
      result = { kind: 'header', part };
      break;
    case 'TEXT':
      result = { kind: 'text', part };
      break;
    case 'MIME':
      if (part.length === 0) r.error('MIME section requires a part number (e.g. 1.MIME)', at);
      result = { kind: 'mime', part };
      break;
    case 'HEADER.FIELDS':
    case 'HEADER.FIELDS.NOT': {
      r.sp(`after ${text}`);
      r.expect(LPAREN, '"(" (header field list)');
      const fields: string[] = [];
      do {
        const fat = r.offset;
        fields.push(r.text(r.astringBytes('header-fld-name').bytes, fat));
      } while (r.eat(SP));
      r.expect(RPAREN, 'SP or ")" in header field list');
      result = { kind: 'header.fields', part, fields, not: text === 'HEADER.FIELDS.NOT' };
      break;
    }
    default:
      if (text === '') r.fail('section text (HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT or MIME)');
      r.error(`unknown section text "${text}"`, at);
  }
  r.expect(0x5d, '"]" closing the section');
  return result;
}

/** RFC 9051 §9 partial = "<" number64 "." nz-number64 ">" (RFC 3501: number / nz-number). */
function partial(r: Reader): { offset: number; length: number } | undefined {
  if (!r.eat(0x3c)) return undefined;
  const offset = r.number64('partial offset');
  r.expect(0x2e, '"." in partial');
  const at = r.offset;
  const length = r.number64('partial length');
  if (length === 0) r.error('expected partial length (non-zero), found 0', at);
  r.expect(0x3e, '">" closing partial');
  return { offset, length };
}

/** RFC 3516 §7 section-binary = "[" [section-part] "]". */
function sectionBinary(r: Reader): number[] {
  r.expect(0x5b, '"[" (section-binary)');
  if (r.eat(0x5d)) return [];
  const part = sectionPart(r);
  r.expect(0x5d, '"]" closing section-binary');
  return part;
}

const SIMPLE_FETCH: Record<string, FetchAttribute> = {
  UID: { kind: 'uid' },
  FLAGS: { kind: 'flags' },
  INTERNALDATE: { kind: 'internaldate' },
  'RFC822.SIZE': { kind: 'rfc822.size' },
  ENVELOPE: { kind: 'envelope' },
  BODYSTRUCTURE: { kind: 'bodystructure' },
  RFC822: { kind: 'rfc822' },
  'RFC822.HEADER': { kind: 'rfc822.header' },
  'RFC822.TEXT': { kind: 'rfc822.text' },
  MODSEQ: { kind: 'modseq' }, // RFC 7162 §3.1.4
  SAVEDATE: { kind: 'savedate' }, // RFC 8514
  EMAILID: { kind: 'emailid' }, // RFC 8474
};

/** RFC 9051 §9 fetch-att (+ RFC 3516 §4.2 BINARY, RFC 7162 MODSEQ). */
function fetchAtt(r: Reader): FetchAttribute {
  const at = r.offset;
  const name = fetchAttName(r);
  if (name === '') r.fail('fetch attribute');
  const simple = SIMPLE_FETCH[name];
  if (simple) return { ...simple };
  switch (name) {
    case 'BODY':
    case 'BODY.PEEK': {
      if (name === 'BODY' && r.peek() !== 0x5b) return { kind: 'body-structure' };
      const sec = section(r);
      const p = partial(r);
      return { kind: 'body', section: sec, peek: name === 'BODY.PEEK', ...(p ? { partial: p } : {}) };
    }
    case 'BINARY':
    case 'BINARY.PEEK': {
      const part = sectionBinary(r);
      const p = partial(r);
      return { kind: 'binary', part, peek: name === 'BINARY.PEEK', ...(p ? { partial: p } : {}) };
    }
    case 'BINARY.SIZE':
      return { kind: 'binary.size', part: sectionBinary(r) };
    default:
      return r.error(`unknown fetch attribute "${name}"`, at);
  }
}

const MACROS: Record<'ALL' | 'FAST' | 'FULL', FetchAttribute['kind'][]> = {
  // RFC 9051 §6.4.5 macros
  ALL: ['flags', 'internaldate', 'rfc822.size', 'envelope'],
  FAST: ['flags', 'internaldate', 'rfc822.size'],
  FULL: ['flags', 'internaldate', 'rfc822.size', 'envelope', 'body-structure'],
};

function fetchCommand(r: Reader, uid: boolean): Command {
  // RFC 4466 §3: fetch = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att /
  //   "(" fetch-att *(SP fetch-att) ")") [fetch-modifiers]
  r.sp('after FETCH');
  const set = r.sequenceSet();
  r.sp('after sequence set');
  let attributes: FetchAttribute[];
  let macro: 'ALL' | 'FAST' | 'FULL' | undefined;
  if (r.eat(LPAREN)) {
    attributes = [fetchAtt(r)];
    while (r.eat(SP)) attributes.push(fetchAtt(r));
    r.expect(RPAREN, 'SP or ")" in fetch attribute list');
  } else {
    const save = r.pos;
    const word = fetchAttName(r);
    if ((word === 'ALL' || word === 'FAST' || word === 'FULL') && (r.peek() === -1 || r.peek() === SP)) {
      macro = word;
      attributes = MACROS[word].map((kind) => ({ kind }) as FetchAttribute);
    } else {
      r.pos = save;
      attributes = [fetchAtt(r)];
    }
  }
  let changedSince: bigint | undefined;
  let vanished = false;
  if (r.eat(SP)) {
    // fetch-modifiers = SP "(" fetch-modifier *(SP fetch-modifier) ")"
    r.expect(LPAREN, '"(" (fetch modifiers)');
    do {
      const at = r.offset;
      const m = r.keyword('fetch modifier');
      if (m === 'CHANGEDSINCE') {
        // RFC 7162 §3.1.4: chgsince-fetch-mod = "CHANGEDSINCE" SP mod-sequence-value
        r.sp('after CHANGEDSINCE');
        changedSince = r.modseq(false);
      } else if (m === 'VANISHED') {
        // RFC 7162 §3.2.6: only in UID FETCH, only together with CHANGEDSINCE (else BAD)
        if (!uid) r.error('VANISHED is only allowed in UID FETCH', at);
        vanished = true;
      } else {
        r.error(`unknown fetch modifier "${m}"`, at);
      }
    } while (r.eat(SP));
    r.expect(RPAREN, 'SP or ")" in fetch modifiers');
    if (vanished && changedSince === undefined) r.error('VANISHED requires CHANGEDSINCE (RFC 7162 §3.2.6)', r.offset);
  }
  r.end();
  return {
    name: uid ? 'UID FETCH' : 'FETCH',
    set,
    attributes,
    ...(macro ? { macro } : {}),
    ...(changedSince !== undefined ? { changedSince } : {}),
    ...(vanished ? { vanished } : {}),
  };
}

function storeCommand(r: Reader, uid: boolean): Command {
  // RFC 4466 §3: store = "STORE" SP sequence-set [store-modifiers] SP store-att-flags
  // RFC 9051 §9: store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))
  r.sp('after STORE');
  const set = r.sequenceSet();
  r.sp('after sequence set');
  let unchangedSince: bigint | undefined;
  if (r.eat(LPAREN)) {
    do {
      const at = r.offset;
      const m = r.keyword('store modifier');
      if (m !== 'UNCHANGEDSINCE') r.error(`unknown store modifier "${m}"`, at);
      // RFC 7162 §3.1.3: "UNCHANGEDSINCE" SP mod-sequence-valzer; only a single one (RFC 4551 §4)
      if (unchangedSince !== undefined) r.error('only a single UNCHANGEDSINCE may be specified', at);
      r.sp('after UNCHANGEDSINCE');
      unchangedSince = r.modseq(true);
    } while (r.eat(SP));
    r.expect(RPAREN, 'SP or ")" in store modifiers');
    r.sp('after store modifiers');
  }
  let op: StoreAction['op'] = 'set';
  if (r.eat(0x2b)) op = 'add';
  else if (r.eat(0x2d)) op = 'remove';
  const at = r.offset;
  const item = r.keyword('FLAGS or FLAGS.SILENT');
  if (item !== 'FLAGS' && item !== 'FLAGS.SILENT') r.error(`expected FLAGS or FLAGS.SILENT, found "${item}"`, at);
  r.sp(`after ${item}`);
  let flags: string[];
  if (r.peek() === LPAREN) flags = r.flagList();
  else {
    flags = [r.flag()];
    while (r.eat(SP)) flags.push(r.flag());
  }
  r.end();
  return {
    name: uid ? 'UID STORE' : 'STORE',
    set,
    action: { op, silent: item === 'FLAGS.SILENT', flags },
    ...(unchangedSince !== undefined ? { unchangedSince } : {}),
  };
}

function copyMove(r: Reader, name: 'COPY' | 'UID COPY' | 'MOVE' | 'UID MOVE'): Command {
  // RFC 9051 §9 copy = "COPY" SP sequence-set SP mailbox; move = "MOVE" SP sequence-set SP mailbox (RFC 6851 §3.1)
  r.sp(`after ${name}`);
  const set = r.sequenceSet();
  r.sp('after sequence set');
  const mailbox = r.mailbox();
  r.end();
  return { name, set, mailbox };
}

// ---------------------------------------------------------------------------------------------
// Mailbox commands

function selectCommand(r: Reader, name: 'SELECT' | 'EXAMINE'): Command {
  // RFC 4466 §2.1/§3: select = "SELECT" SP mailbox [select-params]
  r.sp(`after ${name}`);
  const mailbox = r.mailbox();
  let condstore = false;
  let qresync: Extract<Command, { name: 'SELECT' | 'EXAMINE' }>['qresync'];
  if (r.eat(SP)) {
    r.expect(LPAREN, '"(" (select parameters)');
    do {
      const at = r.offset;
      const p = r.keyword('select parameter');
      if (p === 'CONDSTORE') {
        condstore = true; // RFC 7162 §3.1.8
      } else if (p === 'QRESYNC') {
        // RFC 7162 §3.2.5, §7: "QRESYNC" SP "(" uidvalidity SP mod-sequence-value [SP known-uids]
        //   [SP seq-match-data] ")"; known-uids / known-sequence-set / known-uid-set forbid "*"
        r.sp('after QRESYNC');
        r.expect(LPAREN, '"(" after QRESYNC');
        const uidValidity = r.nzNumber('uidvalidity');
        r.sp('after uidvalidity');
        const modseq = r.modseq(false);
        const q: NonNullable<typeof qresync> = { uidValidity, modseq };
        if (r.eat(SP)) {
          let match = r.peek() === LPAREN;
          if (!match) {
            q.knownUids = r.sequenceSet({ star: false, dollar: false });
            if (r.eat(SP)) {
              if (r.peek() !== LPAREN) r.fail('"(" (seq-match-data)');
              match = true;
            }
          }
          if (match) {
            r.pos++;
            const seqs = r.sequenceSet({ star: false, dollar: false });
            r.sp('in seq-match-data');
            const uids = r.sequenceSet({ star: false, dollar: false });
            r.expect(RPAREN, '")" closing seq-match-data');
            q.seqMatch = { seqs, uids };
          }
        }
        r.expect(RPAREN, '")" closing QRESYNC parameters');
        qresync = q;
      } else {
        r.error(`unknown ${name} parameter "${p}"`, at);
      }
    } while (r.eat(SP));
    r.expect(RPAREN, 'SP or ")" in select parameters');
  }
  r.end();
  return { name, mailbox, condstore, ...(qresync ? { qresync } : {}) };
}

function createCommand(r: Reader): Command {
  // RFC 4466 §2.2: create = "CREATE" SP mailbox [create-params]; RFC 6154 §6 create-param =/ "USE" SP "(" [use-attr *(SP use-attr)] ")"
  r.sp('after CREATE');
  const mailbox = r.mailbox();
  let specialUse: string[] | undefined;
  if (r.eat(SP)) {
    r.expect(LPAREN, '"(" (create parameters)');
    do {
      const at = r.offset;
      const p = r.keyword('create parameter');
      if (p !== 'USE') r.error(`unknown CREATE parameter "${p}"`, at);
      r.sp('after USE');
      r.expect(LPAREN, '"(" after USE');
      const attrs: string[] = [];
      if (!r.eat(RPAREN)) {
        do {
          r.expect(BACKSLASH, '"\\" (special-use attribute)');
          const a = '\\' + r.atom('special-use attribute name');
          const canon = USE_ATTRS[a.toUpperCase()] ?? a;
          if (!attrs.includes(canon)) attrs.push(canon);
        } while (r.eat(SP));
        r.expect(RPAREN, 'SP or ")" in USE list');
      }
      specialUse = attrs;
    } while (r.eat(SP));
    r.expect(RPAREN, 'SP or ")" in create parameters');
  }
  r.end();
  return { name: 'CREATE', mailbox, ...(specialUse ? { specialUse } : {}) };
}

function statusAtt(r: Reader): StatusItem {
  const at = r.offset;
  const a = r.keyword('status attribute');
  if (!STATUS_ITEMS.has(a as StatusItem)) r.error(`unknown status attribute "${a}"`, at);
  return a as StatusItem;
}

function statusAttList(r: Reader): StatusItem[] {
  r.expect(LPAREN, '"(" (status attributes)');
  const items: StatusItem[] = [];
  do {
    const a = statusAtt(r);
    if (!items.includes(a)) items.push(a);
  } while (r.eat(SP));
  r.expect(RPAREN, 'SP or ")" in status attributes');
  return items;
}

const LIST_SELECT = new Set(['SUBSCRIBED', 'REMOTE', 'RECURSIVEMATCH', 'SPECIAL-USE']);
// RFC 5258 §6, RFC 6154 §6, RFC 5819 §4 (STATUS), RFC 8440 §3 (MYRIGHTS).
const LIST_RETURN = new Set(['SUBSCRIBED', 'CHILDREN', 'SPECIAL-USE', 'STATUS', 'MYRIGHTS']);

function listCommand(r: Reader): Command {
  // RFC 5258 §6 / RFC 9051 §9: list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]
  r.sp('after LIST');
  const selection: string[] = [];
  if (r.eat(LPAREN)) {
    if (!r.eat(RPAREN)) {
      do {
        const at = r.offset;
        const o = r.keyword('LIST selection option');
        // RFC 5258 §3: "A server MUST respond to options it does not recognize with a BAD response";
        // options given twice count once. RFC 6154 §6 adds SPECIAL-USE.
        if (!LIST_SELECT.has(o)) r.error(`unknown LIST selection option "${o}"`, at);
        if (!selection.includes(o)) selection.push(o);
      } while (r.eat(SP));
      r.expect(RPAREN, 'SP or ")" in LIST selection options');
    }
    // RFC 5258 §3.1: RECURSIVEMATCH MUST NOT occur alone or only with REMOTE (→ BAD); SUBSCRIBED is
    // the only base option known here (SPECIAL-USE is an independent option, RFC 6154 §6).
    if (selection.includes('RECURSIVEMATCH') && !selection.includes('SUBSCRIBED')) {
      r.error('RECURSIVEMATCH requires another selection option such as SUBSCRIBED (RFC 5258 §3.1)', r.offset);
    }
    r.sp('after LIST selection options');
  }
  const refAt = r.offset;
  const reference = r.text(r.astringBytes('reference name (mailbox)').bytes, refAt);
  r.sp('after reference name');
  const patterns: string[] = [];
  if (r.eat(LPAREN)) {
    // patterns = "(" list-mailbox *(SP list-mailbox) ")"
    do patterns.push(r.listMailbox());
    while (r.eat(SP));
    r.expect(RPAREN, 'SP or ")" in mailbox patterns');
  } else {
    patterns.push(r.listMailbox());
  }
  const returns: { name: string; items?: string[] }[] = [];
  if (r.eat(SP)) {
    // list-return-opts = "RETURN" SP "(" [return-option *(SP return-option)] ")"
    const at = r.offset;
    const kw = r.keyword('RETURN');
    if (kw !== 'RETURN') r.error(`expected RETURN, found "${kw}"`, at);
    r.sp('after RETURN');
    r.expect(LPAREN, '"(" after RETURN');
    if (!r.eat(RPAREN)) {
      do {
        const oat = r.offset;
        const o = r.keyword('LIST return option');
        if (!LIST_RETURN.has(o)) r.error(`unknown LIST return option "${o}"`, oat);
        let entry: { name: string; items?: string[] } = { name: o };
        if (o === 'STATUS') {
          // RFC 5819 §4: status-option = "STATUS" SP "(" status-att *(SP status-att) ")"
          r.sp('after STATUS');
          entry = { name: o, items: statusAttList(r) };
        }
        const prev = returns.findIndex((x) => x.name === o);
        if (prev === -1) returns.push(entry);
        else returns[prev] = entry;
      } while (r.eat(SP));
      r.expect(RPAREN, 'SP or ")" in LIST return options');
    }
  }
  r.end();
  return { name: 'LIST', reference, patterns, selection, returns };
}

function appendCommand(r: Reader): Command {
  // RFC 3502 (MULTIAPPEND) / RFC 4466 §3: append = "APPEND" SP mailbox 1*append-message;
  // append-message = append-opts SP append-data; append-opts = [SP flag-list] [SP date-time];
  // append-data = literal / literal8 (RFC 3516 §4.4).
  r.sp('after APPEND');
  const mailbox = r.mailbox();
  const messages: AppendMessage[] = [];
  do {
    r.sp(messages.length ? 'before next message (MULTIAPPEND)' : 'after mailbox');
    let flags: string[] = [];
    let date: string | undefined;
    if (r.peek() === LPAREN) {
      flags = r.flagList();
      r.sp('after flag list');
    }
    if (r.peek() === DQUOTE) {
      date = dateTime(r);
      r.sp('after date-time');
    }
    if (r.eatKeyword('CATENATE')) {
      messages.push({ flags, ...(date !== undefined ? { date } : {}), data: new Uint8Array(0), binary: false, catenate: catenateParts(r) });
      continue;
    }
    if (r.eatKeyword('UTF8')) {
      // RFC 6855 §4: append-data =/ utf8-literal; utf8-literal = "UTF8" SP "(" literal8 ")"
      messages.push({ flags, ...(date !== undefined ? { date } : {}), data: utf8Literal(r), binary: true, utf8: true });
      continue;
    }
    const c = r.peek();
    if (c !== 0x7b && !(c === 0x7e && r.peek(1) === 0x7b)) r.fail('message literal ({n} or ~{n}), CATENATE or UTF8');
    const { data, binary } = r.literal(true);
    messages.push({ flags, ...(date !== undefined ? { date } : {}), data, binary });
  } while (!r.atEnd());
  return { name: 'APPEND', mailbox, messages };
}

/** RFC 6855 §4: the "(" literal8 ")" after UTF8 (the literal8's own "~" is required). */
function utf8Literal(r: Reader): Uint8Array {
  r.sp('after UTF8');
  r.expect(LPAREN, '"(" after UTF8');
  if (r.peek() !== 0x7e) r.fail('literal8 (~{n}) in UTF8 (RFC 6855 §4)');
  const { data } = r.literal(true);
  r.expect(RPAREN, '")" after the UTF8 literal8');
  return data;
}

/** Most parts in one CATENATE (RFC 4469 sets no limit; each URL part is a message read). */
const MAX_CATENATE_PARTS = 100;

/**
 * RFC 4469 §5: append-data =/ "CATENATE" SP "(" cat-part *(SP cat-part) ")"; cat-part =
 * text-literal / url; text-literal = "TEXT" SP literal; url = "URL" SP astring.
 */
function catenateParts(r: Reader): CatenatePart[] {
  r.sp('after CATENATE');
  r.expect(LPAREN, '"(" after CATENATE');
  const parts: CatenatePart[] = [];
  do {
    const at = r.offset;
    const kind = r.keyword('TEXT, URL or UTF8');
    if (parts.length === MAX_CATENATE_PARTS) r.error(`more than ${MAX_CATENATE_PARTS} CATENATE parts`, at);
    if (kind === 'TEXT') {
      r.sp('after TEXT');
      if (r.peek() !== 0x7b) r.fail('literal after TEXT');
      parts.push({ kind: 'text', data: r.literal(false).data });
    } else if (kind === 'URL') {
      r.sp('after URL');
      const uat = r.offset;
      parts.push({ kind: 'url', url: r.text(r.astringBytes('URL (astring)').bytes, uat) });
    } else if (kind === 'UTF8') {
      // RFC 6855 §4: cat-part =/ utf8-literal
      parts.push({ kind: 'text', data: utf8Literal(r), utf8: true });
    } else r.error(`expected TEXT, URL or UTF8, found "${kind}"`, at);
  } while (r.eat(SP));
  r.expect(RPAREN, 'SP or ")" in CATENATE parts');
  return parts;
}

// ---------------------------------------------------------------------------------------------
// Any-state / not-authenticated commands

function authenticateCommand(r: Reader): Command {
  // RFC 9051 §9 authenticate = "AUTHENTICATE" SP auth-type [SP initial-resp] *(CRLF base64);
  // initial-resp = (base64 / "=") (RFC 4959 SASL-IR: "=" is an empty response); the CRLF base64 lines arrive in line mode.
  r.sp('after AUTHENTICATE');
  const mechanism = r.keyword('SASL mechanism');
  let initialResponse: string | undefined;
  if (r.eat(SP)) {
    const at = r.offset;
    const s = r.pos;
    while (!r.atEnd() && r.peek() !== SP) r.pos++;
    const ir = latin1(r.line, s, r.pos);
    // base64 = *(4base64-char) [base64-terminal]
    if (ir !== '=' && !(ir.length > 0 && ir.length % 4 === 0 && /^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$/.test(ir))) {
      r.error('invalid initial response (expected base64 or "=")', at);
    }
    initialResponse = ir;
  }
  r.end();
  return { name: 'AUTHENTICATE', mechanism, ...(initialResponse !== undefined ? { initialResponse } : {}) };
}

function idCommand(r: Reader): Command {
  // RFC 2971 §4: id ::= "ID" SPACE id_params_list; id_params_list ::= "(" #(string SPACE nstring) ")" / nil
  r.sp('after ID');
  if (r.eatKeyword('NIL')) {
    r.end();
    return { name: 'ID', params: null };
  }
  r.expect(LPAREN, '"(" or NIL');
  const params: Record<string, string | null> = Object.create(null);
  let count = 0;
  if (!r.eat(RPAREN)) {
    do {
      const kat = r.offset;
      const key = r.text(r.string('ID field name (string)').bytes, kat);
      r.sp('after ID field name');
      const vat = r.offset;
      const value = r.nstring('ID field value (nstring)');
      // RFC 2971 §3.3: fields <= 30 octets, values <= 1024 octets, at most 30 pairs
      if (Buffer.byteLength(key) > 30) r.error('ID field name longer than 30 octets', kat);
      if (value !== null && Buffer.byteLength(value) > 1024) r.error('ID field value longer than 1024 octets', vat);
      if (++count > 30) r.error('more than 30 ID field-value pairs', kat);
      params[key] = value;
    } while (r.eat(SP));
    r.expect(RPAREN, 'SP or ")" in ID parameter list');
  }
  r.end();
  return { name: 'ID', params };
}

function enableCommand(r: Reader): Command {
  // RFC 5161 §4: command-any =/ "ENABLE" 1*(SP capability)
  const capabilities: string[] = [];
  do {
    r.sp(capabilities.length ? 'between capabilities' : 'after ENABLE');
    capabilities.push(r.keyword('capability'));
  } while (!r.atEnd());
  return { name: 'ENABLE', capabilities };
}

function setQuota(r: Reader): Command {
  // RFC 9208 §4.1.3, formal syntax: setquota = "SETQUOTA" SP quota-root-name SP setquota-list;
  // setquota-list = "(" [setquota-resource *(SP setquota-resource)] ")"; setquota-resource =
  // resource-name SP resource-limit; resource-limit = number64
  r.sp('after SETQUOTA');
  const root = r.astring('quota root name');
  r.sp('after quota root name');
  r.expect(LPAREN, '"(" (quota resource list)');
  const limits: { resource: string; limit: number }[] = [];
  if (!r.eat(RPAREN)) {
    do {
      const resource = r.keyword('quota resource name');
      r.sp('after quota resource name');
      limits.push({ resource, limit: r.number64('resource limit') });
    } while (r.eat(SP));
    r.expect(RPAREN, 'SP or ")" in quota resource list');
  }
  r.end();
  return { name: 'SETQUOTA', root, limits };
}

const MESSAGE_EVENTS = new Set(['MESSAGENEW', 'MESSAGEEXPUNGE', 'FLAGCHANGE', 'ANNOTATIONCHANGE']);

/** RFC 5465 §8: one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")". */
function oneOrMoreMailbox(r: Reader): string[] {
  if (!r.eat(LPAREN)) return [r.mailbox()];
  const out = [r.mailbox()];
  while (r.eat(SP)) out.push(r.mailbox());
  r.expect(RPAREN, 'SP or ")" in mailbox list');
  return out;
}

/**
 * RFC 5465 §8: notify = "NOTIFY" SP (notify-set / notify-none); notify-set = "SET"
 * [SP "STATUS"] SP event-groups; event-group = "(" filter-mailboxes SP events ")"; events =
 * ("(" event *(SP event) ")") / "NONE". The §5 and §6.1 rules that call for BAD are checked here.
 */
function notifyCommand(r: Reader): Command {
  r.sp('after NOTIFY');
  const at = r.offset;
  const verb = r.keyword('SET or NONE');
  if (verb === 'NONE') {
    r.end();
    return { name: 'NOTIFY', status: false, groups: null };
  }
  if (verb !== 'SET') r.error(`expected SET or NONE, found "${verb}"`, at);
  r.sp('after SET');
  const status = r.eatKeyword('STATUS');
  if (status) r.sp('after STATUS');
  const groups: NotifyGroup[] = [];
  let selected = false;
  do {
    if (groups.length) r.sp('between event groups');
    r.expect(LPAREN, '"(" (event group)');
    const fat = r.offset;
    const f = r.keyword('mailbox specifier');
    let filter: NotifyFilter;
    if (f === 'SUBTREE' || f === 'MAILBOXES') {
      r.sp(`after ${f}`);
      filter = { kind: f, mailboxes: oneOrMoreMailbox(r) };
    } else if (f === 'SELECTED' || f === 'SELECTED-DELAYED' || f === 'INBOXES' || f === 'PERSONAL' || f === 'SUBSCRIBED') filter = { kind: f };
    else r.error(`unknown mailbox specifier "${f}"`, fat);
    const isSelected = filter.kind === 'SELECTED' || filter.kind === 'SELECTED-DELAYED';
    // RFC 5465 §6.1: only one of SELECTED and SELECTED-DELAYED in a NOTIFY command.
    if (isSelected && selected) r.error('only one SELECTED or SELECTED-DELAYED group is allowed (RFC 5465 §6.1)', fat);
    selected ||= isSelected;
    r.sp('after mailbox specifier');
    const events: NotifyEvent[] = [];
    if (!r.eatKeyword('NONE')) {
      r.expect(LPAREN, '"(" (events) or NONE');
      do {
        const eat = r.offset;
        const e = r.keyword('event');
        if (e === 'MESSAGENEW' && r.peek() === SP && r.peek(1) === LPAREN) {
          r.sp();
          r.pos++;
          const fetch = [fetchAtt(r)];
          while (r.eat(SP)) fetch.push(fetchAtt(r));
          r.expect(RPAREN, 'SP or ")" in MessageNew fetch attributes');
          events.push({ name: e, fetch });
        } else events.push({ name: e });
        if (isSelected && !MESSAGE_EVENTS.has(e)) r.error(`${e} cannot be used with ${filter.kind} (RFC 5465 §6.1: message events only)`, eat);
      } while (r.eat(SP));
      r.expect(RPAREN, 'SP or ")" in events');
      // RFC 5465 §5 (and the §8 ABNF comment): MessageNew and MessageExpunge go together, and
      // FlagChange / AnnotationChange need both, "Otherwise, the server MUST respond with the
      // tagged BAD response". Enforced for the selected folder, where the rule protects the
      // client's message sequence numbers (an EXISTS without the EXPUNGEs, or FETCH FLAGS for
      // messages it was never told of, would leave them wrong). For other folders the events
      // only choose which STATUS items are sent (§3.1, §5.1–5.3), so a lone event has a clear
      // meaning: accepted, as Dovecot does (cmd-notify.c checks the pairs for SELECTED only) and
      // as imaptest's `notify` script expects — a deliberate deviation (docs/imap.md, "NOTIFY").
      if (isSelected) {
        const has = (n: string) => events.some((x) => x.name === n);
        if (has('MESSAGENEW') !== has('MESSAGEEXPUNGE')) r.error(`MessageNew and MessageExpunge must be given together with ${filter.kind} (RFC 5465 §5)`, fat);
        if ((has('FLAGCHANGE') || has('ANNOTATIONCHANGE')) && !has('MESSAGENEW')) r.error(`FlagChange and AnnotationChange need MessageNew and MessageExpunge with ${filter.kind} (RFC 5465 §5)`, fat);
      }
    }
    r.expect(RPAREN, '")" closing the event group');
    groups.push({ filter, events });
  } while (!r.atEnd());
  return { name: 'NOTIFY', status, groups };
}

type Handler = (r: Reader) => Command;

function simple(name: 'CAPABILITY' | 'NOOP' | 'LOGOUT' | 'STARTTLS' | 'IDLE' | 'NAMESPACE' | 'UNSELECT' | 'CLOSE' | 'EXPUNGE' | 'CHECK'): Handler {
  return (r) => {
    r.end();
    return { name };
  };
}

function oneMailbox(name: 'DELETE' | 'SUBSCRIBE' | 'UNSUBSCRIBE' | 'GETQUOTAROOT' | 'GETACL' | 'MYRIGHTS'): Handler {
  return (r) => {
    r.sp(`after ${name}`);
    const mailbox = r.mailbox();
    r.end();
    return { name, mailbox };
  };
}

// RFC 4314 §9: deleteacl / listrights = name SP mailbox SP identifier
function mailboxAndIdentifier(name: 'DELETEACL' | 'LISTRIGHTS'): Handler {
  return (r) => {
    r.sp(`after ${name}`);
    const mailbox = r.mailbox();
    r.sp('after mailbox');
    const identifier = r.astring('identifier');
    r.end();
    return { name, mailbox, identifier };
  };
}

function uidCommand(r: Reader): Command {
  // RFC 9051 §6.4.9 / §9: uid = "UID" SP (copy / move / fetch / search / store / uid-expunge);
  // RFC 5256 adds SORT and THREAD, RFC 4315 §2.1 UID EXPUNGE.
  r.sp('after UID');
  const sub = r.keyword('UID command');
  switch (sub) {
    case 'FETCH':
      return fetchCommand(r, true);
    case 'STORE':
      return storeCommand(r, true);
    case 'COPY':
      return copyMove(r, 'UID COPY');
    case 'MOVE':
      return copyMove(r, 'UID MOVE');
    case 'SEARCH':
      return searchCommand(r, true);
    case 'SORT':
      return sortCommand(r, true);
    case 'THREAD':
      return threadCommand(r, true);
    case 'EXPUNGE': {
      r.sp('after UID EXPUNGE');
      const set = r.sequenceSet();
      r.end();
      return { name: 'UID EXPUNGE', set };
    }
    default:
      throw new ImapSyntaxError(`unknown command UID ${sub}`);
  }
}

/** URLs in one GENURLAUTH or URLFETCH (RFC 4467 sets no limit; each URL is a store read). */
const MAX_URLAUTH_URLS = 100;

/** RFC 4467 §9 mechanism = "INTERNAL" / 1*(ALPHA / DIGIT / "-" / "."), upper-cased. */
function urlMechanism(r: Reader): string {
  const at = r.offset;
  const m = r.atom('URLAUTH mechanism');
  if (!/^[A-Za-z0-9.-]+$/.test(m)) r.error(`${JSON.stringify(m)} is not a URLAUTH mechanism (RFC 4467 §9)`, at);
  return m.toUpperCase();
}

/**
 * RFC 4467 §9 urlfetch = "URLFETCH" 1*(SP url), extended by RFC 5524 §3: an argument may be
 * "(" url *(SP url-fetch-param) ")", url-fetch-param = "BODY" / "BINARY" / "BODYPARTSTRUCTURE"
 * (BODY and BINARY exclusive, none repeated).
 */
function urlFetchCommand(r: Reader): Command {
  const urls: UrlFetchArg[] = [];
  do {
    r.sp(urls.length ? 'before the next URL' : 'after URLFETCH');
    if (r.eat(LPAREN)) {
      const url = r.astring('URL (astring)');
      const params: UrlFetchArg['params'] = [];
      while (!r.eat(RPAREN)) {
        r.sp('or ")" after URL');
        const at = r.offset;
        const p = r.keyword('URLFETCH parameter (BODY, BINARY or BODYPARTSTRUCTURE)');
        if (p !== 'BODY' && p !== 'BINARY' && p !== 'BODYPARTSTRUCTURE') r.error(`unknown URLFETCH parameter ${p} (RFC 5524 §3: BODY, BINARY, BODYPARTSTRUCTURE)`, at);
        if (params.includes(p)) r.error(`URLFETCH parameter ${p} given twice`, at);
        if ((p === 'BODY' && params.includes('BINARY')) || (p === 'BINARY' && params.includes('BODY'))) r.error('BODY and BINARY exclude each other (RFC 5524 §3)', at);
        params.push(p);
      }
      urls.push({ url, extended: true, params });
    } else {
      urls.push({ url: r.astring('URL (astring)'), extended: false, params: [] });
    }
    if (urls.length > MAX_URLAUTH_URLS) r.error(`more than ${MAX_URLAUTH_URLS} URLs in one command`, r.offset, 'LIMIT');
  } while (!r.atEnd());
  return { name: 'URLFETCH', urls };
}

/** Entries in one GETMETADATA or SETMETADATA (RFC 5464 sets no limit; the store keeps at most 100 per folder and user). */
const MAX_METADATA_ENTRIES = 100;

/**
 * RFC 5464 §5 entry = astring: a slash-separated path, case-insensitive (§3.2), under /private or
 * /shared (§3.2: "/private" and "/shared" are the two top-level names); §3.2.1: no "*" or "%", no
 * two slashes together, none at the end, UTF-8 without NUL (and here no control characters).
 * `top`: "/private" or "/shared" alone is allowed (GETMETADATA with DEPTH, §4.2.2).
 */
function metadataEntry(r: Reader, top: boolean): string {
  const at = r.offset;
  const entry = r.astring('entry name');
  const lower = entry.toLowerCase();
  if (!/^\/(private|shared)(\/|$)/.test(lower)) r.error(`entry ${JSON.stringify(entry)} must start with /private or /shared (RFC 5464 §3.2)`, at);
  if (/[*%]/.test(entry)) r.error(`entry ${JSON.stringify(entry)} holds "*" or "%" (RFC 5464 §3.2.1)`, at);
  // eslint-disable-next-line no-control-regex
  if (/\/\/|\/$|[\x00-\x1f\x7f]/.test(entry)) r.error(`entry ${JSON.stringify(entry)} has an empty component, a trailing "/" or a control character (RFC 5464 §3.2.1)`, at);
  if (!top && /^\/(private|shared)$/.test(lower)) r.error(`entry ${JSON.stringify(entry)} names the top of a hierarchy: give an entry below it (RFC 5464 §3.2)`, at);
  return entry;
}

/**
 * RFC 5464 §5: getmetadata = "GETMETADATA" [SP getmetadata-options] SP mailbox SP entries;
 * getmetadata-options = "(" getmetadata-option *(SP getmetadata-option) ")", the options being
 * MAXSIZE SP number (§4.2.1) and DEPTH SP ("0" / "1" / "infinity") (§4.2.2);
 * entries = entry / "(" entry *(SP entry) ")".
 */
function getMetadataCommand(r: Reader): Command {
  r.sp('after GETMETADATA');
  const opts: { maxSize?: number; depth?: MetadataDepth } = {};
  if (r.peek() === LPAREN) {
    metadataOptions(r, opts);
    r.sp('after GETMETADATA options');
  }
  const mailbox = r.mailbox();
  r.sp('after mailbox');
  // RFC 5464 §4.2.1's and §4.2.2's examples put the options after the mailbox (and clients
  // follow them): taken there as well, told from a list of entries by not starting with "/".
  if (opts.maxSize === undefined && opts.depth === undefined && r.peek() === LPAREN && /[A-Za-z]/.test(String.fromCharCode(r.peek(1)))) {
    metadataOptions(r, opts);
    r.sp('after GETMETADATA options');
  }
  const entries: string[] = [];
  if (r.eat(LPAREN)) {
    do {
      entries.push(metadataEntry(r, true));
      if (entries.length > MAX_METADATA_ENTRIES) r.error(`more than ${MAX_METADATA_ENTRIES} entries in one command`, r.offset, 'LIMIT');
    } while (r.eat(SP));
    r.expect(RPAREN, 'SP or ")" in entries');
  } else entries.push(metadataEntry(r, true));
  r.end();
  return { name: 'GETMETADATA', mailbox, ...(opts.maxSize !== undefined ? { maxSize: opts.maxSize } : {}), depth: opts.depth ?? 0, entries };
}

/** RFC 5464 §5 getmetadata-options = "(" getmetadata-option *(SP getmetadata-option) ")". */
function metadataOptions(r: Reader, opts: { maxSize?: number; depth?: MetadataDepth }): void {
  r.expect(LPAREN, '"(" (GETMETADATA options)');
  do {
    const at = r.offset;
    const o = r.keyword('GETMETADATA option (MAXSIZE or DEPTH)');
    r.sp(`after ${o}`);
    if (o === 'MAXSIZE' && opts.maxSize === undefined) opts.maxSize = r.number('MAXSIZE value'); // §4.2.1
    else if (o === 'DEPTH' && opts.depth === undefined) {
      // §4.2.2: "0", "1" or "infinity"
      const dat = r.offset;
      const d = r.keyword('DEPTH value');
      if (d === '0' || d === '1') opts.depth = Number(d) as 0 | 1;
      else if (d === 'INFINITY') opts.depth = 'infinity';
      else r.error(`DEPTH must be 0, 1 or infinity (RFC 5464 §4.2.2), not ${d}`, dat);
    } else r.error(o === 'MAXSIZE' || o === 'DEPTH' ? `${o} given twice` : `unknown GETMETADATA option ${o} (RFC 5464 §4.2: MAXSIZE, DEPTH)`, at);
  } while (r.eat(SP));
  r.expect(RPAREN, 'SP or ")" in GETMETADATA options');
}

/**
 * RFC 5464 §5: setmetadata = "SETMETADATA" SP mailbox SP "(" entry-value *(SP entry-value) ")";
 * entry-value = entry SP value; value = nstring / literal8 (a binary value; NIL removes the entry).
 */
function setMetadataCommand(r: Reader): Command {
  r.sp('after SETMETADATA');
  const mailbox = r.mailbox();
  r.sp('after mailbox');
  r.expect(LPAREN, '"(" before the entries and values');
  const values: { entry: string; value: Uint8Array | null }[] = [];
  do {
    const entry = metadataEntry(r, false);
    r.sp('after entry name');
    let value: Uint8Array | null;
    if (r.eatKeyword('NIL')) value = null;
    else if (r.peek() === 0x7e) value = r.literal(true).data;
    else value = r.string('value (string, literal8 or NIL)').bytes;
    values.push({ entry, value });
    if (values.length > MAX_METADATA_ENTRIES) r.error(`more than ${MAX_METADATA_ENTRIES} entries in one command`, r.offset, 'LIMIT');
  } while (r.eat(SP));
  r.expect(RPAREN, 'SP or ")" after an entry\'s value');
  r.end();
  return { name: 'SETMETADATA', mailbox, values };
}

const HANDLERS: Record<string, Handler> = {
  // any state (RFC 9051 §6.1)
  CAPABILITY: simple('CAPABILITY'),
  NOOP: simple('NOOP'),
  LOGOUT: simple('LOGOUT'),
  ID: idCommand,
  // not authenticated (§6.2)
  STARTTLS: simple('STARTTLS'),
  AUTHENTICATE: authenticateCommand,
  LOGIN: (r) => {
    // RFC 9051 §9 login = "LOGIN" SP userid SP password (both astring)
    r.sp('after LOGIN');
    const user = r.astring('user name (astring)');
    r.sp('after user name');
    const password = r.astring('password (astring)');
    r.end();
    return { name: 'LOGIN', user, password };
  },
  // authenticated (§6.3)
  ENABLE: enableCommand,
  SELECT: (r) => selectCommand(r, 'SELECT'),
  EXAMINE: (r) => selectCommand(r, 'EXAMINE'),
  CREATE: createCommand,
  DELETE: oneMailbox('DELETE'),
  RENAME: (r) => {
    r.sp('after RENAME');
    const from = r.mailbox();
    r.sp('after existing mailbox name');
    const to = r.mailbox();
    r.end();
    return { name: 'RENAME', from, to };
  },
  SUBSCRIBE: oneMailbox('SUBSCRIBE'),
  UNSUBSCRIBE: oneMailbox('UNSUBSCRIBE'),
  LIST: listCommand,
  LSUB: (r) => {
    // RFC 3501 §6.3.9 / §9: lsub = "LSUB" SP mailbox SP list-mailbox
    r.sp('after LSUB');
    const at = r.offset;
    const reference = r.text(r.astringBytes('reference name (mailbox)').bytes, at);
    r.sp('after reference name');
    const pattern = r.listMailbox();
    r.end();
    return { name: 'LSUB', reference, pattern };
  },
  NAMESPACE: simple('NAMESPACE'),
  STATUS: (r) => {
    // RFC 9051 §9 status = "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")"
    r.sp('after STATUS');
    const mailbox = r.mailbox();
    r.sp('after mailbox');
    const items = statusAttList(r);
    r.end();
    return { name: 'STATUS', mailbox, items };
  },
  APPEND: appendCommand,
  IDLE: simple('IDLE'), // RFC 2177 §3
  GETQUOTA: (r) => {
    // RFC 9208 §4.1.1: getquota = "GETQUOTA" SP quota-root-name (astring)
    r.sp('after GETQUOTA');
    const root = r.astring('quota root name');
    r.end();
    return { name: 'GETQUOTA', root };
  },
  GETQUOTAROOT: oneMailbox('GETQUOTAROOT'), // RFC 9208 §4.1.2
  SETQUOTA: setQuota,
  // RFC 4314 §3, §7 (identifier = astring, mod-rights = astring)
  SETACL: (r) => {
    r.sp('after SETACL');
    const mailbox = r.mailbox();
    r.sp('after mailbox');
    const identifier = r.astring('identifier');
    r.sp('after identifier');
    const rights = r.astring('rights');
    r.end();
    return { name: 'SETACL', mailbox, identifier, rights };
  },
  DELETEACL: mailboxAndIdentifier('DELETEACL'),
  GETACL: oneMailbox('GETACL'),
  LISTRIGHTS: mailboxAndIdentifier('LISTRIGHTS'),
  MYRIGHTS: oneMailbox('MYRIGHTS'),
  // RFC 4467 §9: genurlauth = "GENURLAUTH" 1*(SP url-rump SP mechanism)
  GENURLAUTH: (r) => {
    const urls: { url: string; mechanism: string }[] = [];
    do {
      r.sp(urls.length ? 'before the next URL' : 'after GENURLAUTH');
      const url = r.astring('URL (astring)');
      r.sp('after URL');
      const mechanism = urlMechanism(r);
      urls.push({ url, mechanism });
      if (urls.length > MAX_URLAUTH_URLS) r.error(`more than ${MAX_URLAUTH_URLS} URLs in one command`, r.offset, 'LIMIT');
    } while (!r.atEnd());
    return { name: 'GENURLAUTH', urls };
  },
  URLFETCH: urlFetchCommand,
  GETMETADATA: getMetadataCommand, // RFC 5464 §4.2
  SETMETADATA: setMetadataCommand, // RFC 5464 §4.3
  // RFC 4467 §9: resetkey = "RESETKEY" [SP mailbox *(SP mechanism)]
  RESETKEY: (r) => {
    if (r.atEnd()) return { name: 'RESETKEY', mechanisms: [] };
    r.sp('after RESETKEY');
    const mailbox = r.mailbox();
    const mechanisms: string[] = [];
    while (!r.atEnd()) {
      r.sp('before mechanism');
      mechanisms.push(urlMechanism(r));
    }
    return { name: 'RESETKEY', mailbox, mechanisms };
  },
  // selected (§6.4)
  CHECK: simple('CHECK'), // RFC 3501 §6.4.1 (removed in IMAP4rev2)
  CLOSE: simple('CLOSE'),
  UNSELECT: simple('UNSELECT'),
  EXPUNGE: simple('EXPUNGE'),
  SEARCH: (r) => searchCommand(r, false),
  FETCH: (r) => fetchCommand(r, false),
  STORE: (r) => storeCommand(r, false),
  COPY: (r) => copyMove(r, 'COPY'),
  MOVE: (r) => copyMove(r, 'MOVE'),
  SORT: (r) => sortCommand(r, false),
  THREAD: (r) => threadCommand(r, false),
  NOTIFY: notifyCommand, // RFC 5465
  CANCELUPDATE: (r) => {
    // RFC 5267 §5: command-select =/ "CANCELUPDATE" 1*(SP quoted)
    const tags: string[] = [];
    do {
      r.sp(tags.length ? 'between tags' : 'after CANCELUPDATE');
      const at = r.offset;
      if (r.peek() !== DQUOTE) r.fail('quoted tag');
      tags.push(r.text(r.quoted(), at));
    } while (!r.atEnd());
    return { name: 'CANCELUPDATE', tags };
  },
  UID: uidCommand,
};

/** The command names this grammar knows (plus the UID forms). */
export const COMMAND_NAMES: readonly string[] = Object.keys(HANDLERS);

/**
 * RFC 9051 §9 tag = 1*<any ASTRING-CHAR except "+">. Returns the tag of a command line when
 * it starts with a valid tag followed by SP, else null (used for errors raised while framing).
 */
export function tagOf(line: Uint8Array): string | null {
  let i = 0;
  while (i < line.length && line[i] !== 0x2b && isAstringChar(line[i])) i++;
  if (i === 0 || line[i] !== SP) return null;
  return latin1(line, 0, i);
}

/**
 * Parses one framed command (RFC 9051 §9 command = tag SP (command-any / command-auth /
 * command-nonauth / command-select) CRLF). Never throws, except {@link INCOMPLETE} when
 * `input.complete` is false and the parse reached the awaited literal.
 */
export function parseCommand(input: CommandInput, opts: GrammarOptions): ParsedCommand {
  const r = new Reader(input, opts);
  let tag: string | null = null;
  try {
    const s = r.pos;
    while (!r.atEnd() && r.peek() !== 0x2b && isAstringChar(r.peek())) r.pos++;
    if (r.pos === s) r.fail('tag');
    const t = latin1(r.line, s, r.pos);
    // the tag is reported in errors only when it is delimited (SP or end of line)
    if (r.peek() === SP || r.atEnd()) tag = t;
    r.sp('after tag');
    const name = r.keyword('command name');
    const handler = HANDLERS[name];
    if (!handler) return { ok: false, tag: t, message: `unknown command ${name}` };
    return { ok: true, tag: t, command: handler(r) };
  } catch (e) {
    if (e === INCOMPLETE) throw e;
    if (e instanceof ImapSyntaxError) return { ok: false, tag, message: e.message, ...(e.code ? { code: e.code } : {}) };
    return { ok: false, tag, message: `internal parser error: ${e instanceof Error ? e.message : String(e)}` };
  }
}
