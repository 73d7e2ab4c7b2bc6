// Golden rule 3, the absence message: whether a delivered message gets an automatic reply, and
// the reply itself. Pure: no store, no network (policy/absence-service.ts acts on it).
// References: RFC 3834 (automatic responses), RFC 5230 (Sieve vacation, whose rules every
// mail server's "out of office" follows).
import { randomBytes } from 'node:crypto';
import { Headers } from '@zone-eu/mailsplit';
import libmime from 'libmime';
import MailComposer from 'nodemailer/lib/mail-composer';
import addressparser from 'nodemailer/lib/addressparser';

export const DAY_MS = 24 * 3600 * 1000;
/** RFC 5230 §4.1 (":days"): 7 days when not given, and a minimum of 1 day. */
export const DEFAULT_PERIOD_DAYS = 7;
export const MIN_PERIOD_DAYS = 1;

export type NoReplyReason =
  | 'not-in-period'
  | 'null-sender'
  | 'automatic-sender'
  | 'auto-submitted'
  | 'precedence'
  | 'list'
  | 'report'
  | 'not-addressed'
  | 'own-address'
  | 'already-replied';

export type AbsenceDecision = { reply: true; sender: string } | { reply: false; reason: NoReplyReason; detail: string };

export interface AbsenceWindow {
  /** ISO 8601; null: already started / open-ended. */
  startsAt: string | null;
  endsAt: string | null;
}

/** The header block of a message (up to and including the empty line, RFC 5322 §2.1). */
export function headerBlock(message: Buffer): Buffer {
  const i = message.indexOf('\r\n\r\n');
  if (i >= 0) return message.subarray(0, i + 4);
  const j = message.indexOf('\n\n');
  return j >= 0 ? message.subarray(0, j + 2) : message;
}

function addresses(values: string[]): string[] {
  const out: string[] = [];
  const walk = (list: any[]) => {
    for (const a of list) {
      if (a.group) walk(a.group);
      else if (a.address) out.push(String(a.address).toLowerCase());
    }
  };
  for (const v of values) walk(addressparser(v) as any[]);
  return out;
}

/**
 * RFC 5230 §4.6: no reply when the return path is "MAILER-DAEMON", "owner-*" or "*-request"
 * (list and system software); postmaster and the no-reply addresses of automatic senders are of
 * the same kind (BSD vacation(1) refuses the same list).
 */
const AUTOMATIC_LOCAL_PART = /^(mailer-daemon|postmaster|listserv|majordomo|owner-.*|.*-request|no-?reply|do-?not-?reply|ne-?pas-?repondre|nepasrepondre)$/i;

export function isAutomaticSender(address: string): boolean {
  return AUTOMATIC_LOCAL_PART.test(address.slice(0, address.lastIndexOf('@')));
}

/**
 * Whether `mailbox` answers this delivered message with its absence message. Checked in the
 * order a reader would: the period, then the envelope, then the header fields, then the memory
 * of replies already sent.
 */
export function decideAbsenceReply(o: {
  window: AbsenceWindow;
  /** The absent mailbox's address. */
  mailbox: string;
  /** MAIL FROM of the delivered message; '' for the null reverse-path. */
  envelopeFrom: string;
  /** The delivered message's header block (or the whole message). */
  header: Buffer | string;
  now: Date;
  /** When this sender last got a reply from this mailbox (epoch ms). */
  lastReplyAt?: number;
  periodMs: number;
}): AbsenceDecision {
  const no = (reason: NoReplyReason, detail: string): AbsenceDecision => ({ reply: false, reason, detail });
  const t = o.now.getTime();
  if (o.window.startsAt && t < Date.parse(o.window.startsAt)) return no('not-in-period', `the absence starts at ${o.window.startsAt}`);
  if (o.window.endsAt && t >= Date.parse(o.window.endsAt)) return no('not-in-period', `the absence ended at ${o.window.endsAt}`);
  // RFC 3834 §4: the response goes to the envelope sender (Return-Path); RFC 3834 §2 and
  // RFC 5230 §4.6: never to a null return path (a DSN, another automatic message).
  const sender = o.envelopeFrom.trim().toLowerCase();
  if (!sender) return no('null-sender', 'the message has a null return path (<>)');
  if (isAutomaticSender(sender)) return no('automatic-sender', `the return path ${sender} is a mailing-list or system address`);
  const mailbox = o.mailbox.toLowerCase();
  // RFC 3834 §2 (avoid loops): never reply to oneself.
  if (sender === mailbox) return no('own-address', 'the message comes from the absent mailbox itself');
  const h = new Headers(typeof o.header === 'string' ? Buffer.from(o.header) : headerBlock(o.header));
  // RFC 3834 §2 / §5 and RFC 5230 §4.6: MUST NOT respond to a message whose Auto-Submitted
  // is anything other than "no".
  const autoSubmitted = h.getFirst('auto-submitted').split(';')[0].trim().toLowerCase();
  if (autoSubmitted && autoSubmitted !== 'no') return no('auto-submitted', `Auto-Submitted: ${autoSubmitted}`);
  // RFC 3834 §2 ("Precedence: bulk, list, junk" are signs of automatic or mass mail) and
  // RFC 5230 §4.6 (SHOULD NOT reply to "bulk" or "junk").
  const precedence = h.getFirst('precedence').trim().toLowerCase();
  if (['bulk', 'list', 'junk'].includes(precedence)) return no('precedence', `Precedence: ${precedence}`);
  // RFC 3834 §2 and RFC 5230 §4.6: no reply to list mail (RFC 2369 List-* fields, RFC 2919 List-Id).
  const listField = ['list-id', 'list-help', 'list-subscribe', 'list-unsubscribe', 'list-post', 'list-owner', 'list-archive'].find((f) => h.hasHeader(f));
  if (listField) return no('list', `the message carries a ${listField} field (mailing list)`);
  // RFC 3834 §2: never answer a delivery report (RFC 3464 DSN) or a read receipt (RFC 8098 MDN);
  // most carry Auto-Submitted or a null return path already, this catches the others.
  const ctype = h.getFirst('content-type').toLowerCase();
  if (/^\s*multipart\/report\b/.test(ctype) || /^\s*message\/(delivery-status|disposition-notification)\b/.test(ctype))
    return no('report', `the message is a delivery or read report (${ctype.split(';')[0].trim()})`);
  // RFC 5230 §4.5: reply only when the user's address is in To or Cc (Bcc, lists and
  // forwards do not address the user by name). Resent-To/Cc count too (RFC 5322 §3.6.6).
  const named = addresses([...h.get('to'), ...h.get('cc'), ...h.get('resent-to'), ...h.get('resent-cc')]);
  if (!named.includes(mailbox)) return no('not-addressed', `${mailbox} is not in the To or Cc fields (e.g. a Bcc copy)`);
  // RFC 5230 §4.1–4.2 (previous response tracking): at most one reply per sender per period.
  if (o.lastReplyAt !== undefined && o.lastReplyAt > t - o.periodMs) return no('already-replied', `${sender} was already answered on ${new Date(o.lastReplyAt).toISOString()}`);
  return { reply: true, sender };
}

/** One header line: no CR/LF from user text (RFC 5322 §2.2). */
const oneLine = (s: string) => s.replace(/[\r\n]+/g, ' ').trim();

const dateFr = (iso: string) =>
  new Date(iso).toLocaleString('fr-FR', { timeZone: 'Europe/Paris', day: 'numeric', month: 'long', year: 'numeric', hour: '2-digit', minute: '2-digit' });

/** The default French text, with the period and the substitute when there are. */
export function defaultAbsenceText(o: { endsAt: string | null; substitute: string | null }): string {
  const lines = ['Bonjour,', '', o.endsAt ? `Je suis absent(e) jusqu'au ${dateFr(o.endsAt)}.` : 'Je suis actuellement absent(e).'];
  lines.push("Votre message a bien été reçu ; il sera lu à mon retour.");
  return lines.join('\r\n');
}

export interface AbsenceReplyInput {
  /** The absent mailbox (From of the reply). */
  mailbox: { address: string; displayName: string };
  /** The envelope sender of the delivered message (To of the reply). */
  to: string;
  /** The delivered message's header block. */
  originalHeader: Buffer;
  settings: { subject: string | null; text: string | null; endsAt: string | null; substitute: string | null };
  hostname: string;
  date?: Date;
}

/** The body of the reply: the user's text (or the default), the substitute, the golden rule 4 reminder. */
export function absenceText(s: AbsenceReplyInput['settings']): string {
  const lines = [(s.text ?? defaultAbsenceText(s)).replace(/\r?\n/g, '\r\n').trimEnd()];
  if (s.substitute) lines.push('', `Pendant mon absence, écrivez à ${s.substitute}.`);
  lines.push('', 'Rappel : la messagerie sécurisée de santé ne doit pas être utilisée pour des informations urgentes.', '', '-- ', 'Message automatique (absence) : inutile d’y répondre.', '');
  return lines.join('\r\n');
}

/** Builds the reply message (RFC 3834 §3, RFC 5230 §5). */
export async function buildAbsenceReply(r: AbsenceReplyInput): Promise<Buffer> {
  const h = new Headers(r.originalHeader);
  const original = oneLine(libmime.decodeWords(h.getFirst('subject')));
  // RFC 3834 §3.1 and RFC 5230 §5: a subject derived from the original one ("Auto: " in the
  // RFCs; French "Absence : " here, or the user's own prefix).
  const prefix = oneLine(r.settings.subject ?? '') || 'Absence';
  const subject = original ? `${prefix} : ${original}` : prefix;
  // RFC 5322 §3.6.4 (and RFC 3834 §3.1, RFC 5230 §5): In-Reply-To is the original Message-ID;
  // References its References (or In-Reply-To) followed by that Message-ID.
  const msgId = h.getFirst('message-id').trim();
  const refs: string[] = [...((h.getFirst('references') || h.getFirst('in-reply-to')).match(/<[^<>\s]+>/g) ?? [])];
  if (msgId) refs.push(msgId);
  const mail: any = {
    from: { name: oneLine(r.mailbox.displayName), address: r.mailbox.address },
    to: r.to,
    subject,
    date: r.date ?? new Date(),
    text: absenceText(r.settings),
    headers: {
      // RFC 3834 §5 (and RFC 5230 §5): marks the reply as automatic, so that no other
      // responder answers it.
      'Auto-Submitted': 'auto-replied',
    },
  };
  if (msgId) mail.inReplyTo = msgId;
  if (refs.length) mail.references = refs.slice(-20);
  // RFC 5322 §3.6.4: a unique Message-ID under our host name.
  mail.messageId = `<absence.${randomBytes(12).toString('hex')}@${r.hostname}>`;
  const composer = new MailComposer(mail).compile();
  return new Promise((resolve, reject) => composer.build((err: Error | null, buf: Buffer) => (err ? reject(err) : resolve(buf))));
}
