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

function toAddr(a: RawAddress): Addr {
  return {
    name: a.name === null ? null : binToText(forHumans(a.name)),
    adl: a.route === null ? null : binToText(a.route),
    mailbox: a.mailbox === null ? null : binToText(a.mailbox),
    host: a.domain === null ? null : binToText(a.domain),
  };
}

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

/** The envelope of a message whose header fields are `fields` (null when there is no header at all). */
export function buildEnvelope(buf: Uint8Array, fields: RawField[]): Envelope {
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
    date: strs.date === undefined ? null : binToText(nolf(strs.date)),
    subject: strs.subject === undefined ? null : binToText(forHumans(strs.subject)),
    from,
    sender: list('sender') ?? from,
    replyTo: list('replyTo') ?? from,
    to: list('to'),
    cc: list('cc'),
    bcc: list('bcc'),
    inReplyTo: strs.inReplyTo === undefined ? null : binToText(nolf(strs.inReplyTo)),
    messageId: strs.messageId === undefined ? null : binToText(nolf(strs.messageId)),
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

function addrListSexp(l: Addr[] | null): Sexp {
  return l === null ? null : l.map((a) => [a.name, a.adl, a.mailbox, a.host]);
}

/** ENVELOPE as an IMAP list: (date subject from sender reply-to to cc bcc in-reply-to message-id). */
export function envelopeSexp(env: Envelope): Sexp {
  return [
    env.date,
    env.subject,
    addrListSexp(env.from),
    addrListSexp(env.sender),
    addrListSexp(env.replyTo),
    addrListSexp(env.to),
    addrListSexp(env.cc),
    addrListSexp(env.bcc),
    env.inReplyTo,
    env.messageId,
  ];
}
