// Reading delivery and disposition reports (RFC 6522 multipart/report): what a DSN (RFC 3464)
// or an MDN (RFC 8098) says of which recipients of which message. Pure: the MIME structure comes
// from analyze.ts (the message parser IMAP uses), the field lists are read as header blocks by
// mailsplit; only the RFC 3464 / RFC 8098 field grammar is interpreted here.
import { Headers } from '@zone-eu/mailsplit';
import libmime from 'libmime';
import type { IncomingReport, TrackingStatus } from '../store/types.js';
import { analyzeMessage } from './analyze.js';
import { binaryContent } from './section.js';
import type { Part } from './types.js';

/** The first msg-id of a Message-ID-like field, angle brackets kept (RFC 5322 §3.6.4); null if none. */
export function msgIdOf(value: string | null | undefined): string | null {
  const m = /<[^<>\s]+>/.exec(value ?? '');
  return m ? m[0] : null;
}

/** The Content-Type of a header block: type/subtype (lower case) and its parameters. */
function contentType(h: Headers): { type: string; params: Record<string, string> } {
  const v = libmime.parseHeaderValue(h.getFirst('content-type') || 'text/plain');
  return { type: String(v.value).trim().toLowerCase(), params: Object.fromEntries(Object.entries(v.params ?? {}).map(([k, x]) => [k.toLowerCase(), String(x)])) };
}

/** RFC 6522 §3: which report a message is, from its header block (null: not a report). */
export function reportType(header: Buffer | string): 'delivery-status' | 'disposition-notification' | null {
  const ct = contentType(new Headers(Buffer.isBuffer(header) ? header : Buffer.from(header)));
  if (ct.type !== 'multipart/report') return null;
  const t = (ct.params['report-type'] ?? '').toLowerCase();
  // RFC 6533 §6: global-delivery-status / global-disposition-notification carry the same fields.
  if (t === 'delivery-status' || t === 'global-delivery-status') return 'delivery-status';
  if (t === 'disposition-notification' || t === 'global-disposition-notification') return 'disposition-notification';
  return null;
}

/** What a submission's tracking keeps of its header: the Message-ID and the decoded subject. */
export function trackingFields(header: Buffer): { messageId: string | null; subject: string } {
  const h = new Headers(header);
  return { messageId: msgIdOf(h.getFirst('message-id')), subject: libmime.decodeWords(h.getFirst('subject')).replace(/[\r\n]+/g, ' ').trim() };
}

/** RFC 3464 §2.1: the status body is header-style groups separated by empty lines. */
function fieldGroups(body: Buffer): Headers[] {
  const text = body.toString('utf8').replace(/\r?\n/g, '\r\n');
  return text
    .split(/\r\n(?:[ \t]*\r\n)+/)
    .filter((g) => g.trim())
    .map((g) => new Headers(Buffer.from(g.replace(/^(\r\n)+/, '') + '\r\n\r\n')));
}

/** RFC 3464 §2.3.3 / RFC 8098 §3.2: "type; value" → value. */
const typedValue = (v: string) => v.replace(/^[^;]*;/, '').trim();
const oneLine = (v: string) => libmime.decodeWords(v).replace(/\s+/g, ' ').trim();

function partBody(raw: Buffer, info: ReturnType<typeof analyzeMessage>, p: Part): Buffer {
  const c = binaryContent(raw, info, p.path);
  return c && 'data' in c ? Buffer.from(c.data) : raw.subarray(p.bodyStart, p.bodyEnd);
}

/** RFC 3464 §2.3.3 Action → where the recipient stands; null: says nothing final (delayed). */
function dsnStatus(action: string): TrackingStatus | null {
  switch (action.trim().toLowerCase()) {
    case 'delivered':
      return 'delivered';
    case 'failed':
      return 'failed';
    case 'relayed':
    case 'expanded':
      return 'relayed';
    default:
      return null;
  }
}

/**
 * RFC 8098 §3.2.6 Disposition: `action-mode/sending-mode; disposition-type[/modifier]`, where the
 * ANS guide writes an integration error as `processed/Error: <code>^<libellé>`.
 */
export function parseDisposition(v: string): { type: string; error: string | null; automatic: boolean } | null {
  const m = /^\s*([\w-]+)\s*\/\s*([\w-]+)\s*;\s*([\w-]+)\s*(?:\/\s*(.*))?$/s.exec(v);
  if (!m) return null;
  const modifier = (m[4] ?? '').trim();
  const err = /^error\s*(?::\s*(.*))?$/is.exec(modifier);
  return { type: m[3].toLowerCase(), error: err ? (err[1] ?? '').replace(/\s+/g, ' ').trim() || 'error' : null, automatic: m[1].toLowerCase() === 'automatic-action' };
}

function mdnStatus(d: NonNullable<ReturnType<typeof parseDisposition>>): TrackingStatus {
  if (d.error) return 'error';
  // deleted / dispatched: the message was handled without being shown (RFC 8098 §3.2.6.2).
  return d.type === 'displayed' ? 'displayed' : 'processed';
}

/**
 * How much of a report is read. The parts that matter come first (RFC 6522 §3: human part, then
 * the fields, then the returned content, of which only the header is needed); a DSN returning a
 * 10 MB message (RET=FULL) must not hold the event loop for a parse of all of it.
 */
export const REPORT_READ_LIMIT = 64 * 1024;

/**
 * Reads the report a message carries: null when it is not a DSN or an MDN, or says nothing this
 * code can use. Reads at most the first REPORT_READ_LIMIT octets (a cut-off returned message is
 * fine: only its header is read). Never throws on malformed input (returns null).
 */
export function parseReport(message: Buffer): IncomingReport | null {
  try {
    const raw = message.length > REPORT_READ_LIMIT ? message.subarray(0, REPORT_READ_LIMIT) : message;
    const info = analyzeMessage(raw);
    const kind = reportType(raw.subarray(0, info.root.bodyStart));
    if (!kind || !info.root.children?.length) return null;
    const children = info.root.children;
    const sub = (p: Part) => `${p.type}/${p.subtype}`.toLowerCase();
    const fieldsPart = children.find((p) =>
      kind === 'delivery-status' ? /^message\/(global-)?delivery-status$/.test(sub(p)) : /^message\/(global-)?disposition-notification$/.test(sub(p)),
    );
    if (!fieldsPart) return null;
    const groups = fieldGroups(partBody(raw, info, fieldsPart));
    if (!groups.length) return null;
    if (kind === 'disposition-notification') {
      // RFC 8098 §3.1: one group; Final-Recipient and Disposition are required.
      const g = groups[0];
      const d = parseDisposition(g.getFirst('disposition'));
      const final = g.getFirst('final-recipient');
      if (!d || !final) return null;
      const errorField = oneLine(g.getFirst('error')); // RFC 8098 §3.2.8
      return {
        kind: 'mdn',
        envid: null,
        originalMessageId: msgIdOf(g.getFirst('original-message-id')),
        recipients: [{ final: typedValue(final), original: g.getFirst('original-recipient') ? typedValue(g.getFirst('original-recipient')) : null, status: mdnStatus(d), detail: d.error ?? (errorField || null) }],
      };
    }
    // RFC 3464 §2.2: the per-message group, then one group per recipient (§2.3).
    const [perMessage, ...perRecipient] = groups;
    const envid = perMessage.getFirst('original-envelope-id').trim() || null;
    // The returned content (RFC 3462 text/rfc822-headers, or the whole message): its Message-ID.
    let originalMessageId: string | null = null;
    const returned = children.find((p) => /^(text\/rfc822-headers|message\/rfc822|message\/global|message\/global-headers)$/.test(sub(p)));
    if (returned) originalMessageId = msgIdOf(new Headers(partBody(raw, info, returned)).getFirst('message-id'));
    const recipients: IncomingReport['recipients'] = [];
    for (const g of perRecipient) {
      const status = dsnStatus(g.getFirst('action'));
      const final = g.getFirst('final-recipient');
      if (!status || !final) continue;
      const diagnostic = oneLine(typedValue(g.getFirst('diagnostic-code')));
      const code = g.getFirst('status').trim();
      recipients.push({
        final: typedValue(final),
        original: g.getFirst('original-recipient') ? typedValue(g.getFirst('original-recipient')) : null,
        status,
        detail: status === 'failed' ? diagnostic || code || null : null,
      });
    }
    if (!recipients.length || (!envid && !originalMessageId)) return null;
    return { kind: 'dsn', envid, originalMessageId, recipients };
  } catch {
    return null;
  }
}
