// IMAP URLs (RFC 5092) naming a message or a part of one, as CATENATE (RFC 4469 §5) and URLAUTH
// (RFC 4467) take them: the absolute form "imap://[user@]host[:port]/<path>" or the
// server-relative "/<path>", with <path> = enc-mailbox [";UIDVALIDITY=" nz-number] "/;UID="
// nz-number ["/;SECTION=" enc-section] ["/;PARTIAL=" number ["." nz-number]], then optionally
// RFC 5092 §11 iurlauth = [";EXPIRE=" date-time] ";URLAUTH=" access [":" mechanism ":" token].
// Pure: no I/O; a plain left-to-right scan (no regular expression built from client input, linear
// in the URL's length).
import { INCOMPLETE, parseCommand } from './grammar.js';
import type { Section } from './types.js';

export interface ImapMessageUrl {
  /** The authority of an absolute URL (lower-cased host, without port), else undefined (relative). */
  host?: string;
  /** The user of an absolute URL ("imap://user@host/"), percent-decoded. */
  user?: string;
  /** The mailbox name (RFC 5092 §5: UTF-8, percent-decoded; not modified UTF-7). */
  mailbox: string;
  uidValidity?: number;
  uid: number;
  /** The section (RFC 5092 §5 enc-section, as in FETCH BODY[...]); undefined: the whole message. */
  section?: Section;
  /** RFC 5092 §5 ipartial: octets from `offset`, at most `length` of them. */
  partial?: { offset: number; length?: number };
  /** ";URLAUTH=..." present (RFC 4467): `auth` describes it. */
  urlauth: boolean;
  /** The URLAUTH component (RFC 4467 §2, RFC 5092 §11), when `urlauth`. */
  auth?: UrlAuthPart;
}

/** RFC 4467 §2.2 access identifier: who may fetch a URLAUTH URL. */
export type UrlAuthAccess = { kind: 'user' | 'submit'; user: string } | { kind: 'authuser' } | { kind: 'anonymous' };

/** RFC 5092 §11 iurlauth: the rump (what the token signs), its expiry, access, mechanism and token. */
export interface UrlAuthPart {
  /** RFC 4467 §2.4 "rump URL": the URL as sent, up to and including ";URLAUTH=<access>". */
  rump: string;
  /** RFC 5092 §11 expire: milliseconds since the epoch (RFC 3339 date-time). */
  expire?: number;
  access: UrlAuthAccess;
  /** RFC 4467 §2.3 uauth-mechanism, upper-cased ("INTERNAL"); absent in a rump URL (GENURLAUTH). */
  mechanism?: string;
  /** RFC 4467 §2.4 enc-urlauth: 32 or more hex digits, lower-cased; absent in a rump URL. */
  token?: string;
}

const MAX_URL = 4096;

/** RFC 3986 §2.1 percent-decoding as UTF-8; null on a bad escape or invalid UTF-8. */
function percentDecode(s: string): string | null {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      const h = s.slice(i + 1, i + 3);
      if (h.length !== 2 || !/^[0-9A-Fa-f]{2}$/.test(h)) return null;
      bytes.push(parseInt(h, 16));
      i += 2;
    } else if (c < 0x80) bytes.push(c);
    else bytes.push(...Buffer.from(s[i], 'utf8'));
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    return null;
  }
}

function nz(s: string, max = 4294967295): number | null {
  if (!/^[0-9]{1,10}$/.test(s)) return null;
  const n = Number(s);
  return n >= 1 && n <= max ? n : null;
}

/** A FETCH section text ("HEADER", "1.2.MIME", "HEADER.FIELDS (FROM)") parsed by the command grammar itself. */
function parseSection(text: string): Section | null {
  if (/[\r\n\]]/.test(text) || text.length > 1024) return null;
  try {
    const p = parseCommand({ lines: [Buffer.from(`x FETCH 1 BODY[${text}]`, 'utf8')], literals: [], complete: true }, { utf8Accept: false, binary: false });
    if (!p.ok || p.command.name !== 'FETCH') return null;
    const a = p.command.attributes[0];
    return a?.kind === 'body' && !a.partial ? a.section : null;
  } catch (e) {
    if (e === INCOMPLETE) return null;
    throw e;
  }
}

/** RFC 3339 §5.6 date-time ("2026-12-08T10:00:00Z", "...T10:00:00.5+01:00"), as epoch ms; null if malformed. */
export function parseRfc3339(s: string): number | null {
  const m = /^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$/.exec(s);
  if (!m) return null;
  const [Y, M, D, h, mi, sec] = [1, 2, 3, 4, 5, 6].map((k) => Number(m[k]));
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || sec > 60) return null;
  const ms = Date.UTC(Y, M - 1, D, h, mi, Math.min(sec, 59), m[7] ? Math.floor(Number(`0${m[7]}`) * 1000) : 0);
  if (new Date(Date.UTC(Y, M - 1, D)).getUTCDate() !== D) return null; // 31 February
  const z = m[8];
  const offset = z === 'Z' || z === 'z' ? 0 : (z[0] === '-' ? -1 : 1) * (Number(z.slice(1, 3)) * 60 + Number(z.slice(4, 6))) * 60000;
  return ms - offset;
}

/**
 * RFC 5092 §11 iurlauth at the end of `url`: [";EXPIRE=" date-time] ";URLAUTH=" access
 * [":" uauth-mechanism ":" enc-urlauth]. Returns the URL without it and the part, undefined when
 * the URL has none, null when it is malformed.
 */
function splitUrlAuth(url: string): { base: string; auth: UrlAuthPart } | undefined | null {
  const lower = url.toLowerCase();
  const at = lower.lastIndexOf(';urlauth=');
  if (at === -1) return lower.includes(';expire=') ? null : undefined;
  let base = url.slice(0, at);
  const tail = url.slice(at + ';urlauth='.length);
  // RFC 4467 §2.3: access ":" mechanism ":" token; the access itself holds no ":" (enc-user is achar).
  const [accessText, mechanism, token, ...more] = tail.split(':');
  if (more.length || (mechanism === undefined) !== (token === undefined)) return null;
  let access: UrlAuthAccess;
  const a = accessText.toLowerCase();
  if (a === 'authuser') access = { kind: 'authuser' };
  else if (a === 'anonymous') access = { kind: 'anonymous' };
  else if (a.startsWith('user+') || a.startsWith('submit+')) {
    // RFC 5092 §11: enc-user = 1*achar (percent-encoded)
    const plus = accessText.indexOf('+');
    const name = percentDecode(accessText.slice(plus + 1));
    if (!name || /[\x00-\x1f\x7f]/.test(name)) return null;
    access = { kind: a.startsWith('user+') ? 'user' : 'submit', user: name };
  } else return null;
  const rump = url.slice(0, at + ';urlauth='.length + accessText.length);
  const auth: UrlAuthPart = { rump, access };
  if (mechanism !== undefined) {
    // RFC 4467 §2.3 uauth-mechanism = "INTERNAL" / 1*(ALPHA / DIGIT / "-" / "."); §2.4 enc-urlauth = 32*HEXDIG
    if (!/^[A-Za-z0-9.-]{1,64}$/.test(mechanism) || !/^[0-9A-Fa-f]{32,256}$/.test(token!)) return null;
    auth.mechanism = mechanism.toUpperCase();
    auth.token = token!.toLowerCase();
  }
  const lowerBase = base.toLowerCase();
  const e = lowerBase.lastIndexOf(';expire=');
  if (e !== -1) {
    const when = parseRfc3339(base.slice(e + ';expire='.length));
    if (when === null) return null;
    auth.expire = when;
    base = base.slice(0, e);
  }
  return { base, auth };
}

/** Parses an IMAP message URL; null when it is not one (the caller answers NO [BADURL]). */
export function parseImapMessageUrl(url: string): ImapMessageUrl | null {
  if (url.length === 0 || url.length > MAX_URL) return null;
  // RFC 3986 §2: a URI is printable ASCII; anything else (space, quote, backslash, 8-bit) is percent-encoded.
  if (!/^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/.test(url)) return null;
  const split = splitUrlAuth(url);
  if (split === null) return null;
  let rest = split ? split.base : url;
  let host: string | undefined;
  let user: string | undefined;
  if (rest.slice(0, 7).toLowerCase() === 'imap://') {
    // RFC 5092 §11: iserver = [iuserinfo "@"] host [":" port]
    const slash = rest.indexOf('/', 7);
    if (slash === -1) return null;
    let authority = rest.slice(7, slash);
    const atSign = authority.lastIndexOf('@');
    if (atSign >= 0) {
      const userinfo = authority.slice(0, atSign);
      // RFC 5092 §11 authimapurl = "imap://" enc-user "@" hostport: no ";AUTH=" in a URLAUTH URL.
      if (split && userinfo.includes(';')) return null;
      const u = percentDecode(userinfo.split(';')[0]);
      if (u === null) return null;
      user = u;
      authority = authority.slice(atSign + 1);
    }
    const colon = authority.lastIndexOf(':');
    if (colon >= 0 && !authority.endsWith(']')) authority = authority.slice(0, colon);
    if (!authority) return null;
    host = authority.toLowerCase();
    rest = rest.slice(slash);
  }
  if (!rest.startsWith('/')) return null;
  // RFC 5092 §11: a URLAUTH URL is absolute and names its user (authimapurl).
  if (split && (host === undefined || user === undefined || user === '')) return null;
  // Split "/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]][;URLAUTH=...]" at "/;".
  const pieces = rest.slice(1).split('/;');
  const first = pieces[0];
  const semi = first.indexOf(';');
  const encMailbox = semi === -1 ? first : first.slice(0, semi);
  const mailbox = percentDecode(encMailbox);
  if (!mailbox) return null;
  const out: ImapMessageUrl = { mailbox, uid: 0, urlauth: !!split, ...(host !== undefined ? { host } : {}), ...(user !== undefined ? { user } : {}), ...(split ? { auth: split.auth } : {}) };
  if (semi !== -1) {
    const [k, v] = splitParam(first.slice(semi + 1));
    if (k !== 'UIDVALIDITY') return null;
    const n = nz(v);
    if (n === null) return null;
    out.uidValidity = n;
  }
  const order = ['UID', 'SECTION', 'PARTIAL'];
  let last = -1;
  for (const piece of pieces.slice(1)) {
    // ";URLAUTH=" and ";EXPIRE=" (RFC 4467 §7) were taken off by splitUrlAuth: nothing else follows a value.
    if (piece.includes(';')) return null;
    const [k, v] = splitParam(piece);
    const idx = order.indexOf(k);
    if (idx <= last) return null; // unknown, repeated or out of order
    last = idx;
    if (k === 'UID') {
      const n = nz(v);
      if (n === null) return null;
      out.uid = n;
    } else if (k === 'SECTION') {
      const text = percentDecode(v);
      const sec = text === null ? null : parseSection(text);
      if (!sec) return null;
      out.section = sec;
    } else {
      const dot = v.indexOf('.');
      const off = dot === -1 ? v : v.slice(0, dot);
      if (!/^[0-9]{1,15}$/.test(off)) return null;
      out.partial = { offset: Number(off) };
      if (dot !== -1) {
        const len = nz(v.slice(dot + 1), Number.MAX_SAFE_INTEGER);
        if (len === null) return null;
        out.partial.length = len;
      }
    }
  }
  if (out.uid === 0) return null; // RFC 4469 §5: the URL must name a message
  return out;
}

function splitParam(p: string): [string, string] {
  const eq = p.indexOf('=');
  return eq === -1 ? [p.toUpperCase(), ''] : [p.slice(0, eq).toUpperCase(), p.slice(eq + 1)];
}
