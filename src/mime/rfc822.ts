// RFC 822/2822 tokenizer, MIME Content-Type / parameter parsing and RFC 2231 parameter merging.
//
// This is a faithful port of Dovecot 2.3's lib-mail rfc822-parser.c and rfc2231-parser.c, working on
// a JS string (a header value whose bytes were turned into characters: UTF-8 when valid, else
// latin1). Characters >= 0x80 count as atext, as Dovecot's table does for 8-bit bytes. Keeping the
// exact same tokenizer is what makes BODYSTRUCTURE parameters, ENVELOPE addresses and dates come out
// exactly as Dovecot's (which the imaptest conformance scripts expect); it is structure parsing, not
// content decoding (RFC 2047 words and charsets are left to libmime).

const NUL_REPLACEMENT = '\uFFFD';

// atext chars are 1, alpha and digits 2, atext-but-MIME-tspecial ('/', '=', '?') 4.
const ATEXT = new Uint8Array(128);
(() => {
  const table = [
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1,
    1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 4, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 4, 0, 4, 0, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 0,
  ];
  ATEXT.set(table);
})();

export function isAtext(c: number): boolean {
  return c >= 128 ? true : ATEXT[c] !== 0;
}
function isAtextNonTspecial(c: number): boolean {
  return c >= 128 ? true : (ATEXT[c] & 3) !== 0;
}
/** RFC 2045 §5.1 token characters as Dovecot reads them: atext without tspecials, plus '.'. */
function isMimeTokenChar(c: number): boolean {
  return isAtextNonTspecial(c) || c === 0x2e;
}
function isAtextOrDot(c: number): boolean {
  return isAtext(c) || c === 0x2e;
}

/** Character code at i, or -1 past the end (Dovecot reads a NUL terminator there). */
export class Rfc822Parser {
  i = 0;
  readonly end: number;
  /** When not null, the text of the last comment skipped (for "addr (Real Name)"). */
  lastComment: string | null;
  nulReplacement = false;

  constructor(
    readonly s: string,
    opts: { lastComment?: boolean } = {},
  ) {
    this.end = s.length;
    this.lastComment = opts.lastComment ? '' : null;
  }

  /** The current character code, or 0 at the end (like reading Dovecot's terminating NUL). */
  cur(): number {
    return this.i < this.end ? this.s.charCodeAt(this.i) : 0;
  }
  atEnd(): boolean {
    return this.i >= this.end;
  }

  skipComment(): number {
    const s = this.s;
    let level = 1;
    if (this.lastComment !== null) this.lastComment = '';
    let start = ++this.i;
    const out = { v: '' };
    for (; this.i < this.end; this.i++) {
      const c = s.charCodeAt(this.i);
      switch (c) {
        case 0:
        case 0x0a:
          if (this.lastComment !== null) start = this.appendUpToNulOrLf(out, start);
          break;
        case 0x28: // (
          level++;
          break;
        case 0x29: // )
          if (--level === 0) {
            if (this.lastComment !== null) this.lastComment = out.v + s.slice(start, this.i);
            this.i++;
            return this.i < this.end ? 1 : 0;
          }
          break;
        case 0x5c: // backslash
          start = this.unquotePair(this.lastComment !== null ? out : null, start);
          if (start < 0) return -1;
          break;
      }
    }
    if (this.lastComment !== null) this.lastComment = out.v;
    return -1;
  }

  /**
   * At a NUL or LF inside a comment, quoted-string or domain-literal (this.i on it): appends the
   * text since `start` to out.v and returns where the text resumes. An LF is a fold (RFC 5322
   * §3.2.2: unfolding removes the CRLF); a NUL becomes U+FFFD when nulReplacement is on and is
   * otherwise left in the text (`start` returned unchanged), as in Dovecot's rfc822-parser.c.
   */
  private appendUpToNulOrLf(out: { v: string }, start: number): number {
    const s = this.s;
    if (s.charCodeAt(this.i) === 0) {
      if (!this.nulReplacement) return start;
      out.v += s.slice(start, this.i) + NUL_REPLACEMENT;
      return this.i + 1;
    }
    let len = this.i - start;
    if (len > 0 && s.charCodeAt(start + len - 1) === 0x0d) len--;
    out.v += s.slice(start, start + len);
    return this.i + 1;
  }

  /**
   * At a backslash in a comment or quoted-string (this.i on it): an RFC 5322 §3.2.1 quoted-pair.
   * The backslash is dropped: the text since `start` goes to out (when given) and the quoted
   * character's index, now this.i, is returned as the new start. Before CR, LF or NUL the
   * backslash stays as text (Dovecot's rule) and `start` is returned unchanged; -1 when the input
   * ends after the backslash.
   */
  private unquotePair(out: { v: string } | null, start: number): number {
    this.i++;
    if (this.i >= this.end) return -1;
    const n = this.s.charCodeAt(this.i);
    if (n === 0x0d || n === 0x0a || n === 0) {
      this.i--;
      return start;
    }
    if (out !== null) out.v += this.s.slice(start, this.i - 1);
    return this.i;
  }

  /**
   * Appends the run of characters from here that `accepts` takes to out.v, then skips CFWS:
   * 1 when more follows, 0 at the end, -1 on a broken comment.
   */
  private appendRun(out: { v: string }, accepts: (c: number) => boolean): number {
    const start = this.i;
    while (this.i < this.end && accepts(this.s.charCodeAt(this.i))) this.i++;
    out.v += this.s.slice(start, this.i);
    return this.i < this.end ? this.skipLwsp() : 0;
  }

  skipLwsp(): number {
    while (this.i < this.end) {
      const c = this.s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a) {
        this.i++;
        continue;
      }
      if (c !== 0x28) break;
      if (this.skipComment() < 0) return -1;
    }
    return this.i < this.end ? 1 : 0;
  }

  /** atom = [CFWS] 1*atext [CFWS]; appends to out.v */
  parseAtom(out: { v: string }): number {
    if (this.i >= this.end || !isAtext(this.s.charCodeAt(this.i))) return -1;
    return this.appendRun(out, isAtext);
  }

  parseDotAtom(out: { v: string }): number {
    if (this.i >= this.end || !isAtext(this.s.charCodeAt(this.i))) return -1;
    let start = this.i++;
    while (this.i < this.end) {
      if (isAtext(this.s.charCodeAt(this.i))) {
        this.i++;
        continue;
      }
      if (start === this.i) return -1;
      out.v += this.s.slice(start, this.i);
      let ret = this.skipLwsp();
      if (ret <= 0) return ret;
      if (this.s.charCodeAt(this.i) !== 0x2e) return 1;
      this.i++;
      out.v += '.';
      ret = this.skipLwsp();
      if (ret <= 0) return -1;
      start = this.i;
    }
    out.v += this.s.slice(start, this.i);
    return 0;
  }

  parseMimeToken(out: { v: string }): number {
    return this.appendRun(out, isMimeTokenChar);
  }

  parseQuotedString(out: { v: string }): number {
    const s = this.s;
    this.i++;
    let start = this.i;
    for (; this.i < this.end; this.i++) {
      const c = s.charCodeAt(this.i);
      switch (c) {
        case 0:
        case 0x0a:
          start = this.appendUpToNulOrLf(out, start);
          break;
        case 0x22:
          out.v += s.slice(start, this.i);
          this.i++;
          return this.skipLwsp();
        case 0x5c:
          start = this.unquotePair(out, start);
          if (start < 0) return -1;
          break;
      }
    }
    return -1;
  }

  private parseAtomOrDot(out: { v: string }): number {
    return this.appendRun(out, isAtextOrDot);
  }

  parsePhrase(out: { v: string }): number {
    if (this.i >= this.end) return 0;
    if (this.s.charCodeAt(this.i) === 0x2e) return -1;
    for (;;) {
      const ret = this.cur() === 0x22 ? this.parseQuotedString(out) : this.parseAtomOrDot(out);
      if (ret <= 0) return ret;
      const c = this.cur();
      if (!isAtextOrZero(c) && c !== 0x22 && c !== 0x2e) break;
      out.v += ' ';
    }
    return this.skipLwsp();
  }

  private parseDomainLiteral(out: { v: string }): number {
    const s = this.s;
    let start = this.i++;
    for (; this.i < this.end; this.i++) {
      const c = s.charCodeAt(this.i);
      switch (c) {
        case 0:
        case 0x0a:
          start = this.appendUpToNulOrLf(out, start);
          break;
        case 0x5b:
          return -1;
        case 0x5d:
          out.v += s.slice(start, this.i + 1);
          this.i++;
          return this.skipLwsp();
        case 0x5c: {
          this.i++;
          if (this.i >= this.end) return -1;
          const n = s.charCodeAt(this.i);
          if (n === 0x0d || n === 0x0a || n === 0) {
            out.v += s.slice(start, this.i);
            start = this.i;
            this.i--;
          }
          break;
        }
      }
    }
    return -1;
  }

  /** At '@': domain = dot-atom / domain-literal. */
  parseDomain(out: { v: string }): number {
    this.i++;
    if (this.skipLwsp() <= 0) return -1;
    if (this.s.charCodeAt(this.i) === 0x5b) return this.parseDomainLiteral(out);
    return this.parseDotAtom(out);
  }

  /**
   * type "/" subtype, Dovecot 2.3.21 semantics: both must be non-empty and the subtype must be
   * followed by ';' or the end; on failure out.v is left as it was (empty) and -1 is returned.
   */
  parseContentType(out: { v: string }): number {
    const pos0 = out.v.length;
    if (this.skipLwsp() <= 0) return -1;
    if (this.parseMimeToken(out) <= 0 || out.v.length === pos0) return -1;
    if (this.cur() !== 0x2f) {
      out.v = out.v.slice(0, pos0);
      return -1;
    }
    this.i++;
    if (this.skipLwsp() <= 0) {
      out.v = out.v.slice(0, pos0);
      return -1;
    }
    out.v += '/';
    const pos = out.v.length;
    const ret = this.parseMimeToken(out);
    if (ret < 0 || out.v.length === pos || (this.i !== this.end && this.cur() !== 0x3b)) {
      out.v = out.v.slice(0, pos0);
      return -1;
    }
    return ret;
  }

  /** ";" attribute "=" value. Returns 0 at end, -1 broken, 1 ok. */
  parseContentParam(): { ret: number; key: string | null; value: string } {
    const value = { v: '' };
    if (this.i >= this.end) return { ret: 0, key: null, value: '' };
    if (this.s.charCodeAt(this.i) !== 0x3b) return { ret: -1, key: null, value: '' };
    this.i++;
    if (this.skipLwsp() <= 0) return { ret: -1, key: null, value: '' };
    const key = { v: '' };
    if (this.parseMimeToken(key) <= 0) return { ret: -1, key: null, value: '' };
    if (this.cur() !== 0x3d) return { ret: -1, key: null, value: '' };
    this.i++;
    let ret = this.skipLwsp();
    if (ret <= 0) {
      /* broken / no value */
    } else if (this.s.charCodeAt(this.i) === 0x22) {
      ret = this.parseQuotedString(value);
    } else if (this.s.charCodeAt(this.i) === 0x3d) {
      // workaround for broken input: name==?utf-8?b?...?=
      while (this.i < this.end) {
        const c = this.s.charCodeAt(this.i);
        if (c === 0x3b || c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a) break;
        value.v += this.s[this.i];
        this.i++;
      }
    } else {
      ret = this.parseMimeToken(value);
    }
    return { ret: ret < 0 ? -1 : 1, key: key.v, value: value.v };
  }
}

// In C the string is NUL terminated and IS_ATEXT('\0') is false.
function isAtextOrZero(c: number): boolean {
  return c !== 0 && isAtext(c);
}

interface Rfc2231Param {
  key: string;
  value: string;
  idx: number;
  extended: boolean;
}

/**
 * Dovecot's rfc2231_parse(): the parameters after a Content-Type / Content-Disposition value.
 * RFC 2231 continuations (name*0, name*1*, ...) are merged; extended values are NOT decoded: the
 * merged key becomes "name*" and the value keeps its charset'lang'%XX form (Dovecot 2.3 behaviour).
 * Names keep the case they were written in.
 */
export function rfc2231Parse(p: Rfc822Parser): { params: [string, string][]; broken: boolean } {
  const result: [string, string][] = [];
  const ext: Rfc2231Param[] = [];
  let broken = false;
  const prevNul = p.nulReplacement;
  p.nulReplacement = true;
  for (;;) {
    const { ret, key, value } = p.parseContentParam();
    if (ret === 0) break;
    if (ret < 0 || key === null) {
      broken = true;
      if (p.i >= p.end) break;
      p.i++;
      continue;
    }
    const star = key.indexOf('*');
    let plain = true;
    if (star >= 0) {
      let q = star;
      let idx = 0;
      if (q + 1 < key.length) {
        q++;
        for (; q < key.length && key.charCodeAt(q) >= 0x30 && key.charCodeAt(q) <= 0x39; q++) {
          idx = idx * 10 + (key.charCodeAt(q) - 0x30);
        }
      }
      let extended = false;
      if (key[q] === '*') {
        extended = true;
        q++;
      }
      if (q >= key.length) {
        ext.push({ key: key.slice(0, star), value, idx, extended });
        plain = false;
      }
    }
    if (plain) result.push([key, value]);
  }
  p.nulReplacement = prevNul;
  if (ext.length === 0) return { params: result, broken };

  ext.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.idx - b.idx));
  for (let i = 0, next = 0; i < ext.length; i = next) {
    let ok = true;
    let haveExtended = false;
    let nextIdx = 0;
    let j = i;
    for (; j < ext.length; j++) {
      if (ext[i].key.toLowerCase() !== ext[j].key.toLowerCase()) break;
      if (ext[j].idx !== nextIdx) ok = false;
      if (ext[j].extended) haveExtended = true;
      nextIdx++;
    }
    next = j;
    if (!ok) {
      for (j = i; j < next; j++) {
        result.push([`${ext[j].key}*${ext[j].idx}${ext[j].extended ? '*' : ''}`, ext[j].value]);
      }
    } else {
      let v = '';
      if (!ext[i].extended && haveExtended) v += "''";
      for (j = i; j < next; j++) {
        if (!ext[j].extended && haveExtended) v += ext[j].value.replace(/%/g, '%25');
        else v += ext[j].value;
      }
      result.push([haveExtended ? ext[i].key + '*' : ext[i].key, v]);
    }
  }
  return { params: result, broken };
}

/** Content-Type value → "type/subtype" as parsed (possibly partial) + params. */
export function parseContentTypeValue(value: string): {
  type: string;
  subtype: string;
  typeSubtype: string;
  ok: boolean;
  params: [string, string][];
} {
  const p = new Rfc822Parser(value);
  p.skipLwsp();
  const str = { v: '' };
  const ret = p.parseContentType(str);
  const slash = str.v.indexOf('/');
  const type = slash >= 0 ? str.v.slice(0, slash) : str.v;
  const subtype = slash >= 0 ? str.v.slice(slash + 1) : '';
  if (ret < 0) return { type, subtype, typeSubtype: str.v, ok: false, params: [] };
  return { type, subtype, typeSubtype: str.v, ok: true, params: rfc2231Parse(p).params };
}
