// ENVELOPE: Dovecot 2.3.21 message_part_envelope_parse_from_header() + imap_envelope_write().
// Date/Subject/In-Reply-To/Message-ID: the last such header wins; address headers of the same kind
// are concatenated (as if comma-separated); Sender and Reply-To default to From. Strings go out
// as Dovecot writes them: Date/In-Reply-To/Message-ID unfolded ("nolf"), Subject and display names
// whitespace-normalized ("for humans"), nothing RFC 2047-decoded (that is the client's job).
import { parseAddressList, type RawAddress } from './address.js';
import { fieldValueImap, type RawField } from './headers.js';
import { binToText } from './text.js';
import type { Addr, Envelope, Sexp } from './types.js';

/** message_header_strdup(): NULs become U+FFFD (in the "binary" string: its UTF-8 bytes). */
export function headerStrdup(s: string): string {
  return s.includes('\0') ? s.replace(/\0/g, '\xef\xbf\xbd') : s;
}

/** imap_append_nstring_nolf(): CR/LF removed, a space inserted where a line didn't start with LWSP. */
export function nolf(s: string): string {
  if (!/[\r\n]/.test(s)) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c !== '\r' && c !== '\n') {
      out += c;
    } else {
      const n = s[i + 1];
      if (n !== undefined && n !== ' ' && n !== '\t' && n !== '\r' && n !== '\n') out += ' ';
    }
  }
  return out;
}

/** imap_append_string_for_humans(): whitespace runs → one space, trimmed, NUL → U+FFFD. */
export function forHumans(s: string): string {
  let out = '';
  let lastLwsp = true;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      if (!lastLwsp) out += ' ';
      lastLwsp = true;
    } else {
      out += c === '\0' ? '\xef\xbf\xbd' : c;
      lastLwsp = false;
    }
  }
  if (out.endsWith(' ')) out = out.slice(0, -1);
  return out;
}

/** An address with its strings as stored bytes ("binary" strings). */
function toAddr(a: RawAddress): Addr {
  return {
    name: a.name === null ? null : forHumans(a.name),
    adl: a.route,
    mailbox: a.mailbox,
    host: a.domain,
  };
}

/**
 * Makes "binary" strings text (binToText) and remembers whether one of them was not UTF-8 (read
 * as latin1 then, so its bytes must be kept for the wire). Specialised per shape: it runs on
 * every string of every analysis.
 */
export class TextOf {
  bad = false;

  str(s: string): string;
  str(s: string | null): string | null;
  str(s: string | null): string | null {
    if (s === null || !EIGHT_BIT.test(s)) return s;
    const text = binToText(s);
    if (text === s) this.bad = true; // not UTF-8: read as latin1
    return text;
  }

  pairs(ps: [string, string][]): [string, string][] {
    return ps.map(([k, v]) => [this.str(k), this.str(v)]);
  }

  addrs(l: Addr[] | null): Addr[] | null {
    return l === null ? null : l.map((a) => ({ name: this.str(a.name), adl: this.str(a.adl), mailbox: this.str(a.mailbox), host: this.str(a.host) }));
  }
}

const EIGHT_BIT = /[\x80-\xff]/;

type AddrKey = 'from' | 'sender' | 'replyTo' | 'to' | 'cc' | 'bcc';
type StrKey = 'date' | 'subject' | 'inReplyTo' | 'messageId';

const FIELDS: Record<string, AddrKey | StrKey> = {
  date: 'date',
  subject: 'subject',
  from: 'from',
  sender: 'sender',
  'reply-to': 'replyTo',
  to: 'to',
  cc: 'cc',
  bcc: 'bcc',
  'in-reply-to': 'inReplyTo',
  'message-id': 'messageId',
};
const ADDR_KEYS = new Set<string>(['from', 'sender', 'replyTo', 'to', 'cc', 'bcc']);

/**
 * The envelope of a message whose header fields are `fields`, as text, and as the stored bytes
 * (`wire`, "binary" strings) when a field's bytes are not valid UTF-8 (issue 15: IMAP sends those
 * bytes exactly as stored, as Dovecot does).
 */
export function buildEnvelopes(buf: Uint8Array, fields: RawField[]): { envelope: Envelope; wire?: Envelope } {
  const bin = buildBinaryEnvelope(buf, fields);
  const t = new TextOf();
  const envelope: Envelope = {
    date: t.str(bin.date),
    subject: t.str(bin.subject),
    from: t.addrs(bin.from),
    sender: t.addrs(bin.sender),
    replyTo: t.addrs(bin.replyTo),
    to: t.addrs(bin.to),
    cc: t.addrs(bin.cc),
    bcc: t.addrs(bin.bcc),
    inReplyTo: t.str(bin.inReplyTo),
    messageId: t.str(bin.messageId),
  };
  return t.bad ? { envelope, wire: bin } : { envelope };
}

/** The text envelope (see buildEnvelopes). */
export function buildEnvelope(buf: Uint8Array, fields: RawField[]): Envelope {
  return buildEnvelopes(buf, fields).envelope;
}

function buildBinaryEnvelope(buf: Uint8Array, fields: RawField[]): Envelope {
  const strs: Partial<Record<StrKey, string>> = {};
  const addrs: Partial<Record<AddrKey, RawAddress[]>> = {};
  for (const f of fields) {
    const key = FIELDS[f.name.toLowerCase()];
    if (key === undefined) continue;
    const value = fieldValueImap(buf, f);
    if (ADDR_KEYS.has(key)) {
      const list = parseAddressList(value);
      (addrs[key as AddrKey] ??= []).push(...list);
    } else {
      strs[key as StrKey] = headerStrdup(value);
    }
  }
  const list = (k: AddrKey): Addr[] | null => {
    const l = addrs[k];
    return l === undefined || l.length === 0 ? null : l.map(toAddr);
  };
  const from = list('from');
  return {
    date: strs.date === undefined ? null : nolf(strs.date),
    subject: strs.subject === undefined ? null : forHumans(strs.subject),
    from,
    sender: list('sender') ?? from,
    replyTo: list('replyTo') ?? from,
    to: list('to'),
    cc: list('cc'),
    bcc: list('bcc'),
    inReplyTo: strs.inReplyTo === undefined ? null : nolf(strs.inReplyTo),
    messageId: strs.messageId === undefined ? null : nolf(strs.messageId),
  };
}

export function emptyEnvelope(): Envelope {
  return {
    date: null,
    subject: null,
    from: null,
    sender: null,
    replyTo: null,
    to: null,
    cc: null,
    bcc: null,
    inReplyTo: null,
    messageId: null,
  };
}

/** A "binary" string (one char per byte) as the bytes it stands for. */
export function wireBytes(s: string | null): Uint8Array | null {
  return s === null ? null : Buffer.from(s, 'latin1');
}

/**
 * ENVELOPE as an IMAP list: (date subject from sender reply-to to cc bcc in-reply-to message-id).
 * With `wire` (MessageInfo.envelopeWire), strings are the header bytes as stored.
 */
export function envelopeSexp(env: Envelope, wire?: Envelope): Sexp {
  if (wire !== undefined) {
    const b = wireBytes;
    const addrs = (l: Addr[] | null): Sexp => (l === null ? null : l.map((a) => [b(a.name), b(a.adl), b(a.mailbox), b(a.host)]));
    return [b(wire.date), b(wire.subject), addrs(wire.from), addrs(wire.sender), addrs(wire.replyTo), addrs(wire.to), addrs(wire.cc), addrs(wire.bcc), b(wire.inReplyTo), b(wire.messageId)];
  }
  const addrs = (l: Addr[] | null): Sexp => (l === null ? null : l.map((a) => [a.name, a.adl, a.mailbox, a.host]));
  return [env.date, env.subject, addrs(env.from), addrs(env.sender), addrs(env.replyTo), addrs(env.to), addrs(env.cc), addrs(env.bcc), env.inReplyTo, env.messageId];
}
