// IMAP URLs (RFC 5092) naming a message or a part of one, as CATENATE (RFC 4469 §5) takes them:
// the absolute form "imap://[user@]host[:port]/<path>" or the server-relative "/<path>", with
// <path> = enc-mailbox [";UIDVALIDITY=" nz-number] "/;UID=" nz-number ["/;SECTION=" enc-section]
// ["/;PARTIAL=" number ["." nz-number]]. Pure: no I/O; a plain left-to-right scan (no regular
// expression built from client input, linear in the URL's length).
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
  /** ";URLAUTH=..." present (RFC 4467), which this server does not grant. */
  urlauth: boolean;
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

/** Parses an IMAP message URL; null when it is not one (the caller answers NO [BADURL]). */
export function parseImapMessageUrl(url: string): ImapMessageUrl | null {
  if (url.length === 0 || url.length > MAX_URL) return null;
  let rest = url;
  let host: string | undefined;
  let user: string | undefined;
  if (rest.slice(0, 7).toLowerCase() === 'imap://') {
    // RFC 5092 §11: iserver = [iuserinfo "@"] host [":" port]
    const slash = rest.indexOf('/', 7);
    if (slash === -1) return null;
    let authority = rest.slice(7, slash);
    const atSign = authority.lastIndexOf('@');
    if (atSign >= 0) {
      const u = percentDecode(authority.slice(0, atSign).split(';')[0]);
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
  // Split "/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]][;URLAUTH=...]" at "/;".
  const pieces = rest.slice(1).split('/;');
  const first = pieces[0];
  const semi = first.indexOf(';');
  const encMailbox = semi === -1 ? first : first.slice(0, semi);
  const mailbox = percentDecode(encMailbox);
  if (!mailbox) return null;
  const out: ImapMessageUrl = { mailbox, uid: 0, urlauth: false, ...(host !== undefined ? { host } : {}), ...(user !== undefined ? { user } : {}) };
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
    // ";URLAUTH=" and ";EXPIRE=" follow without a "/" (RFC 4467 §7)
    const [main, ...extra] = piece.split(';');
    if (extra.some((e) => !/^(URLAUTH|EXPIRE)=/i.test(e))) return null;
    if (extra.length) out.urlauth = true;
    const [k, v] = splitParam(main);
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
