// Byte ↔ text helpers. Decoding itself is left to libraries: RFC 2047 words and charsets to
// libmime (iconv-lite underneath), quoted-printable to libqp, base64 to Node's Buffer.
import { Buffer } from 'node:buffer';
import libmime from 'libmime';
import libcharset from 'libmime/lib/charset.js';
import libqp from 'libqp';

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

function asBuffer(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Raw header bytes → text. Headers are supposed to be ASCII; 8-bit bytes are taken as UTF-8 when
 * they form valid UTF-8 (RFC 6532), otherwise as latin1 (legacy French mail writes é as 0xE9), so
 * no byte is lost or replaced. Dovecot passes such bytes through untouched; with valid UTF-8 input
 * the IMAP encoder writes back the very same bytes.
 */
export function bytesToText(buf: Uint8Array, start: number, end: number): string {
  let ascii = true;
  for (let i = start; i < end; i++) {
    if (buf[i] >= 0x80) {
      ascii = false;
      break;
    }
  }
  const b = asBuffer(buf);
  if (ascii) return b.toString('latin1', start, end);
  try {
    return utf8Fatal.decode(b.subarray(start, end));
  } catch {
    return b.toString('latin1', start, end);
  }
}

/** Raw bytes → "binary" string (one char per byte), the form the Dovecot ports work on. */
export function latin1(buf: Uint8Array, start: number, end: number): string {
  return asBuffer(buf).toString('latin1', start, end);
}

/** A "binary" string (one char per byte) → text, with the same UTF-8-else-latin1 rule. */
export function binToText(s: string): string {
  if (!/[\x80-\xff]/.test(s)) return s;
  const b = Buffer.from(s, 'latin1');
  try {
    return utf8Fatal.decode(b);
  } catch {
    return s;
  }
}

/** Second byte's range for a lead byte (RFC 3629 §4 UTF8-2/3/4), and how many bytes the sequence has; undefined: not a lead byte. */
function utf8Lead(c: number): { len: number; lo: number; hi: number } | undefined {
  if (c >= 0xc2 && c <= 0xdf) return { len: 2, lo: 0x80, hi: 0xbf };
  if (c === 0xe0) return { len: 3, lo: 0xa0, hi: 0xbf };
  if (c === 0xed) return { len: 3, lo: 0x80, hi: 0x9f }; // no surrogates
  if (c >= 0xe1 && c <= 0xef) return { len: 3, lo: 0x80, hi: 0xbf };
  if (c === 0xf0) return { len: 4, lo: 0x90, hi: 0xbf };
  if (c === 0xf4) return { len: 4, lo: 0x80, hi: 0x8f }; // nothing above U+10FFFF
  if (c >= 0xf1 && c <= 0xf3) return { len: 4, lo: 0x80, hi: 0xbf };
  return undefined;
}

/**
 * A "binary" string → text for what is compared and shown rather than sent (SEARCH and its header
 * index, the sort keys, the web's headers): each well-formed UTF-8 sequence (RFC 3629 §4) as its
 * character and each other byte as latin1, so the valid UTF-8 part of a field that also holds
 * legacy latin1 bytes reads right — as a UTF-8 IMAP session is sent it. binToText (whole string
 * UTF-8, else all latin1) stays for the envelope, which keeps the bytes of such a string.
 */
export function binToTextMixed(s: string): string {
  const whole = binToText(s);
  if (whole !== s || !/[\x80-\xff]/.test(s)) return whole;
  let out = '';
  let run = 0; // start of the bytes not decoded yet that are copied as they are (ASCII, latin1)
  for (let i = 0; i < s.length; ) {
    const c = s.charCodeAt(i);
    const lead = c >= 0x80 ? utf8Lead(c) : undefined;
    let ok = lead !== undefined && i + lead.len <= s.length;
    if (ok) {
      const b1 = s.charCodeAt(i + 1);
      ok = b1 >= lead!.lo && b1 <= lead!.hi;
      for (let k = 2; ok && k < lead!.len; k++) ok = (s.charCodeAt(i + k) & 0xc0) === 0x80;
    }
    if (!ok) {
      i++;
      continue;
    }
    out += s.slice(run, i) + utf8Fatal.decode(Buffer.from(s.slice(i, i + lead!.len), 'latin1'));
    i += lead!.len;
    run = i;
  }
  return out + s.slice(run);
}

/** RFC 2047 encoded-words → text (libmime). */
export function decodeWords(s: string): string {
  if (!s.includes('=?')) return s;
  try {
    return libmime.decodeWords(s);
  } catch {
    return s;
  }
}

/** Body bytes in a declared charset → text (libmime/iconv-lite; unknown charsets as UTF-8). */
export function decodeCharset(data: Uint8Array, charset: string | null): string {
  const b = asBuffer(data);
  if (charset === null || charset === '') return bytesToText(b, 0, b.length);
  try {
    return libcharset.decode(b, charset);
  } catch {
    return bytesToText(b, 0, b.length);
  }
}

/**
 * Quoted-printable body → bytes (libqp), line breaks coming out as CRLF like Dovecot's decoder.
 * null when the input is not valid quoted-printable by Dovecot's rules ("=" not followed by two hex
 * digits or by a soft line break, a CR not followed by LF): Dovecot then fails the BINARY fetch.
 */
export function decodeQuotedPrintable(data: Uint8Array, strict = false): Uint8Array | null {
  const s = asBuffer(data).toString('latin1').replace(/(?<!\r)\n/g, '\r\n');
  if (strict && /=(?![0-9A-Fa-f]{2}|[ \t]*\r\n)|\r(?!\n)/.test(s)) return null;
  return libqp.decode(Buffer.from(s, 'latin1'));
}

/**
 * Base64 body → bytes (Node's decoder). null when `strict` and the input is not what Dovecot's
 * decoder accepts: alphabet and whitespace only, complete quanta, padding only at the very end.
 */
export function decodeBase64(data: Uint8Array, strict = false): Uint8Array | null {
  const s = asBuffer(data).toString('latin1');
  if (strict) {
    const compact = s.replace(/[ \t\r\n]+/g, '');
    const m = /^[A-Za-z0-9+/]*(={0,2})$/.exec(compact);
    if (m === null) return null;
    const n = compact.length - m[1].length;
    const pad = m[1].length;
    if (!((n % 4 === 0 && pad === 0) || (n % 4 === 2 && pad === 2) || (n % 4 === 3 && pad === 1))) return null;
  }
  return Buffer.from(s, 'base64');
}

/**
 * Bytes → text for a UTF-8 IMAP session (RFC 6855 §3, RFC 9051 §4.3): every well-formed UTF-8
 * sequence (RFC 3629 §4: no overlong form, no surrogate, at most U+10FFFF) as it is, every other
 * byte as the latin1 character of the same value — the rule the rest of this module applies to
 * 8-bit header bytes, here per sequence, so that the valid UTF-8 parts of a header mixing both
 * stay as written. The result is always valid UTF-8 once encoded.
 */
export function utf8Lenient(b: Uint8Array): string {
  let out = '';
  let i = 0;
  const n = b.length;
  while (i < n) {
    const c = b[i];
    if (c < 0x80) {
      // ASCII run
      let j = i + 1;
      while (j < n && b[j] < 0x80) j++;
      out += asBuffer(b).toString('latin1', i, j);
      i = j;
      continue;
    }
    const len = utf8SequenceLength(b, i);
    if (len > 0) {
      out += asBuffer(b).toString('utf8', i, i + len);
      i += len;
    } else {
      out += String.fromCharCode(c);
      i++;
    }
  }
  return out;
}

/** Length of the well-formed UTF-8 sequence starting at b[i] (RFC 3629 §4 UTF8-2/3/4), 0 if none. */
function utf8SequenceLength(b: Uint8Array, i: number): number {
  const c = b[i];
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k] >= lo && b[i + k] <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}
