// SORT / THREAD / SEARCH helpers, after Dovecot 2.3: imap-base-subject.c (RFC 5256 base subject),
// message-date.c (lenient Date: parsing), message-id.c (msg-id extraction), index-sort.c (address
// and display sort keys) and the i;unicode-casemap-like "decomposed titlecase" normalizer.
import { Rfc822Parser } from './rfc822.js';

/**
 * Dovecot's uni_utf8_to_decomposed_titlecase(): each character mapped to its titlecase (approximated
 * by a single-character uppercase mapping) and then decomposed (NFKD). Used for SORT keys and, on
 * both sides, for SEARCH substring matching ("é" and "É" both become "E\u0301").
 */
export function normalizeForSearch(s: string): string {
  let out = '';
  let ascii = true;
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return s.toUpperCase();
  for (const ch of s) {
    const up = ch.toUpperCase();
    out += [...up].length === 1 ? up : ch;
  }
  return out.normalize('NFKD');
}

function packWhitespace(s: string): string {
  return s.replace(/[ \t\r\n]+/g, ' ');
}

function removeBlob(s: string, i: number): number {
  // returns the index after "[...]" and one optional space, or -1
  if (s[i] !== '[') return -1;
  let j = i + 1;
  while (j < s.length && s[j] !== '[' && s[j] !== ']') j++;
  if (s[j] !== ']') return -1;
  j++;
  if (s[j] === ' ') j++;
  return j;
}

/**
 * RFC 5256 §2.1 base subject (imap_get_base_subject_cased): `subject` is the decoded subject; the
 * result is a comparison key (decomposed titlecase), and whether it was a reply or forward.
 */
export function baseSubject(decoded: string): { key: string; replyOrForward: boolean } {
  let s = packWhitespace(normalizeForSearch(decoded));
  let start = 0;
  let rf = false;
  for (;;) {
    // (2) trailers: "(fwd)" and WSP
    let size = s.length;
    while (size > start) {
      if (s[size - 1] === ' ') size--;
      else if (size >= 5 && s.slice(size - 5, size) === '(FWD)') {
        rf = true;
        size -= 5;
      } else break;
    }
    s = s.slice(0, size);
    let found: boolean;
    do {
      found = false;
      // (3) subj-leader
      let i = start;
      if (s[i] === ' ') {
        i++;
        start = i;
        found = true;
      }
      let j = i;
      let blobOk = true;
      while (s[j] === '[') {
        const k = removeBlob(s, j);
        if (k < 0) {
          blobOk = false;
          break;
        }
        j = k;
      }
      if (blobOk) {
        let k = -1;
        if (s.startsWith('RE', j)) k = j + 2;
        else if (s.startsWith('FWD', j)) k = j + 3;
        else if (s.startsWith('FW', j)) k = j + 2;
        if (k >= 0) {
          if (s[k] === ' ') k++;
          let ok = true;
          if (s[k] === '[') {
            const m = removeBlob(s, k);
            if (m < 0) ok = false;
            else k = m;
          }
          if (ok && s[k] === ':') {
            start = k + 1;
            rf = true;
            found = true;
          }
        }
      }
      // (4) a blob at the start, if something remains after it
      if (s[start] === '[') {
        const k = removeBlob(s, start);
        if (k >= 0 && k < s.length) {
          start = k;
          found = true;
        }
      }
    } while (found);
    // (6) [fwd: ...]
    if (s.startsWith('[FWD:', start) && s.length >= 1 && s[s.length - 1] === ']') {
      rf = true;
      s = s.slice(0, -1);
      start += 5;
      continue;
    }
    break;
  }
  return { key: s.slice(start), replyOrForward: rf };
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

function parseTimezone(z: string): number {
  if (z.length === 5 && (z[0] === '+' || z[0] === '-')) {
    if (!/^[+-]\d{4}$/.test(z)) return 0;
    const off = Number(z.slice(1, 3)) * 60 + Number(z.slice(3, 5));
    return z[0] === '+' ? off : -off;
  }
  if (z.length === 1) {
    const c = z.toUpperCase();
    const code = z.charCodeAt(0);
    if (c < 'J') return (code - 0x41 + 1) * 60;
    if (c === 'J') return 0;
    if (c <= 'M') return (code - 0x41) * 60;
    if (c < 'Z') return (0x4d - code) * 60;
    return 0;
  }
  if (z.length === 2 && z.toUpperCase() === 'UT') return 0;
  if (z.length === 3 && z[2] === 'T') {
    const base: Record<string, number> = { E: -300, C: -360, M: -420, P: -480 };
    const o = base[z[0].toUpperCase()];
    if (o === undefined) return 0;
    const d = z[1].toUpperCase();
    if (d === 'D') return o + 60;
    if (d === 'S') return o;
  }
  return 0;
}

/** message_date_parse(): epoch seconds and zone offset (minutes), or null. */
export function parseDate(value: string): { time: number; tz: number } | null {
  const p = new Rfc822Parser(value);
  const tok = (): { ret: number; v: string } => {
    const o = { v: '' };
    const ret = p.i >= p.end ? 0 : p.parseAtom(o);
    return { ret: ret < 0 ? -1 : o.v.length > 0 ? 1 : 0, v: o.v };
  };
  const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
  p.skipLwsp();
  let t = tok();
  if (t.ret <= 0) return null;
  if (t.v.length === 3) {
    if (p.cur() !== 0x2c) return null;
    p.i++;
    p.skipLwsp();
    t = tok();
    if (t.ret <= 0) return null;
  }
  if (t.v.length < 1 || t.v.length > 2 || !isDigit(t.v[0])) return null;
  if (t.v.length === 2 && !isDigit(t.v[1])) return null;
  const mday = Number(t.v);
  t = tok();
  if (t.ret <= 0 || t.v.length < 3) return null;
  const mon = MONTHS.indexOf(t.v.slice(0, 3).toLowerCase());
  if (mon < 0) return null;
  t = tok();
  if (t.ret <= 0 || (t.v.length !== 2 && t.v.length !== 4) || !/^\d+$/.test(t.v)) return null;
  let year = Number(t.v);
  if (t.v.length === 2) year += year < 70 ? 2000 : 1900;
  else if (year < 1900) return null;
  t = tok();
  if (t.ret <= 0 || t.v.length < 1 || t.v.length > 2 || !/^\d+$/.test(t.v)) return null;
  const hour = Number(t.v);
  const sep = () => p.cur() === 0x3a || p.cur() === 0x2e;
  if (!sep()) return null;
  p.i++;
  p.skipLwsp();
  t = tok();
  if (t.ret < 0 || t.v.length !== 2 || !/^\d\d$/.test(t.v)) return null;
  const min = Number(t.v);
  let sec = 0;
  if (p.i < p.end && sep()) {
    p.i++;
    p.skipLwsp();
    t = tok();
    if (t.ret <= 0 || !/^\d\d$/.test(t.v)) return null;
    sec = Number(t.v);
  }
  t = tok();
  if (t.ret < 0) return null;
  const tz = t.ret === 0 ? 0 : parseTimezone(t.v);
  // utc_mktime(): a leap second 60 counts as 59; any other out-of-range field makes it invalid
  if (sec === 60) sec = 59;
  const local = Date.UTC(year, mon, mday, hour, min, sec);
  const d = new Date(local);
  if (
    !Number.isFinite(local) ||
    d.getUTCFullYear() !== year ||
    d.getUTCMonth() !== mon ||
    d.getUTCDate() !== mday ||
    d.getUTCHours() !== hour ||
    d.getUTCMinutes() !== min ||
    d.getUTCSeconds() !== sec
  ) {
    return null;
  }
  return { time: local / 1000 - tz * 60, tz };
}

/** ISO 8601 with the header's own offset, e.g. "2007-02-15T01:02:03+02:00". */
export function isoWithOffset(time: number, tz: number): string {
  const d = new Date((time + tz * 60) * 1000);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const sign = tz < 0 ? '-' : '+';
  const a = Math.abs(tz);
  return (
    `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` +
    `T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}` +
    `${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`
  );
}

function getUntokenizedMsgid(s: string, i: number): { id: string; next: number } | null {
  const p = new Rfc822Parser(s);
  p.i = i;
  const out = { v: '' };
  p.skipLwsp();
  const ret = p.cur() === 0x22 ? p.parseQuotedString(out) : p.parseDotAtom(out);
  if (ret > 0 && p.cur() === 0x40) {
    out.v += '@';
    p.i++;
    p.skipLwsp();
    if (p.parseDotAtom(out) > 0 && p.cur() === 0x3e) return { id: out.v, next: p.i + 1 };
  }
  return null;
}

/** message_id_get_next() over a header value: every valid msg-id, in order, without brackets. */
export function messageIds(value: string, max = Infinity): string[] {
  const ids: string[] = [];
  let i = 0;
  const n = value.length;
  while (ids.length < max) {
    const lt = value.indexOf('<', i);
    if (lt < 0) break;
    i = lt + 1;
    let p = i;
    let foundAt = false;
    let stop = '';
    for (; p < n; p++) {
      const c = value[p];
      if (c.charCodeAt(0) >= 0x41) continue;
      if (c === '@') foundAt = true;
      if (c === '>' || c === '"' || c === '(' || c === '[') {
        stop = c;
        break;
      }
      if (c === '\0') break;
    }
    if (p >= n || stop === '') break;
    if (stop === '>') {
      const raw = value.slice(i, p);
      i = p + 1;
      if (foundAt) ids.push(raw.replace(/[ \t\r\n]/g, ''));
    } else {
      const r = getUntokenizedMsgid(value, i);
      if (r !== null) {
        ids.push(r.id);
        i = r.next;
      }
    }
  }
  return ids;
}
