// Medical-only content (MSSanté memo: « contenu strictement médical, pas de publicité »): the
// decisions of the content policy, pure (no store, no network; policy/content-service.ts acts
// on them). Every refusal names its rule (`rule`, an English id) and says in French first what
// was refused and what to do (docs/policy.md, "Medical-only content").
import { Headers } from '@zone-eu/mailsplit';
import type { MailboxType } from '../model/index.js';

/** The rules a refusal can name (logged, and quoted in the SMTP reply). */
export type ContentRule = 'recipients-per-message' | 'recipients-per-day' | 'no-bulk-mail';

export interface ContentRefusal {
  rule: ContentRule;
  code: number;
  enhanced: string;
  /** The human text of the reply, French first, naming the rule. */
  text: string;
}

export interface ContentSettings {
  /** At most this many recipients per submitted message. */
  maxRecipientsPerMessage: number;
  /** At most this many recipients per user and per day (Europe/Paris). */
  maxRecipientsPerDay: number;
  /** APP mailboxes' declared daily volume (recipients a day), by address (lower case). */
  appDailyVolume: Record<string, number>;
  /** Where inbound bulk-looking mail is filed instead of INBOX. */
  nonMedicalFolder: string;
}

/** The keyword set on inbound bulk-looking mail (an IMAP keyword, RFC 9051 §2.3.2). */
export const NON_MEDICAL_KEYWORD = '$NonMedical';

export const CONTENT_DEFAULTS: ContentSettings = {
  maxRecipientsPerMessage: 50,
  maxRecipientsPerDay: 500,
  appDailyVolume: {},
  nonMedicalFolder: 'Non médical',
};

/** The sending limits of a submission: `perMessage` null when the message has none of its own. */
export interface SendingLimits {
  perMessage: number | null;
  perDay: number;
  /** Why perDay has its value, for the refusal text. */
  source: 'default' | 'declared-volume';
}

/**
 * The limits for a message sent from `sender`. An APP mailbox with a declared daily volume sends
 * up to that volume a day and has no per-message limit (software sends results in batches; the
 * SMTP server's own recipient cap still holds); everyone else gets the defaults.
 */
export function sendingLimits(sender: { address: string; type: MailboxType }, s: ContentSettings): SendingLimits {
  const declared = sender.type === 'APP' ? s.appDailyVolume[sender.address.toLowerCase()] : undefined;
  if (declared !== undefined) return { perMessage: null, perDay: declared, source: 'declared-volume' };
  return { perMessage: s.maxRecipientsPerMessage, perDay: s.maxRecipientsPerDay, source: 'default' };
}

/** The calendar day (YYYY-MM-DD) of `at` in France (Europe/Paris): the daily counter's key. */
export function parisDay(at: Date): string {
  // en-CA formats dates as YYYY-MM-DD.
  return new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Paris', year: 'numeric', month: '2-digit', day: '2-digit' }).format(at);
}

/**
 * Whether one more recipient (the next RCPT) is accepted: `inMessage` recipients already accepted
 * in this transaction, `sentToday` recipients already committed today for the user.
 */
export function decideRecipient(o: { inMessage: number; sentToday: number; limits: SendingLimits }): ContentRefusal | null {
  const { limits } = o;
  if (limits.perMessage !== null && o.inMessage >= limits.perMessage)
    // RFC 5321 §4.5.3.1.10: a server limiting the number of RCPT commands answers 452 (RFC 3463
    // X.5.3 "too many recipients"); the client sends the rest in another transaction, which the
    // daily limit below still counts.
    return {
      rule: 'recipients-per-message',
      code: 452,
      enhanced: '4.5.3',
      text: `trop de destinataires : au plus ${limits.perMessage} par message ; envoyez les suivants dans un autre message (too many recipients)`,
    };
  if (o.sentToday + o.inMessage >= limits.perDay) return dailyLimitRefusal(limits);
  return null;
}

/**
 * The daily limit is reached. 450 4.7.1 (RFC 5321 §4.2.2, RFC 3463 X.7.1): temporary, since the
 * counter starts again at midnight, Paris time; a client that queues tries again later.
 */
export function dailyLimitRefusal(limits: SendingLimits): ContentRefusal {
  const what = limits.source === 'declared-volume' ? 'le volume quotidien déclaré pour cette BAL applicative' : 'la limite quotidienne';
  return {
    rule: 'recipients-per-day',
    code: 450,
    enhanced: '4.7.1',
    text: `${what} de ${limits.perDay} destinataires est atteinte ; réessayez demain (le compteur repart à minuit, heure de Paris) (daily recipient limit reached)`,
  };
}

/** Markers of a mass mailing in a header block. `inbound` also counts List-Id (RFC 2919). */
export function bulkMarkers(header: Buffer | string, o: { inbound: boolean }): string[] {
  const h = new Headers(typeof header === 'string' ? Buffer.from(header) : header);
  // Delivery and read reports are never bulk (RFC 3464 DSN, RFC 8098 MDN; RFC 6522 multipart/report).
  const ctype = h.getFirst('content-type').toLowerCase();
  if (/^\s*multipart\/report\b/.test(ctype) || /^\s*message\/(delivery-status|disposition-notification)\b/.test(ctype)) return [];
  const found: string[] = [];
  // RFC 2369 §3.2 List-Unsubscribe; RFC 8058 one-click List-Unsubscribe-Post.
  for (const f of ['List-Unsubscribe', 'List-Unsubscribe-Post']) if (h.hasHeader(f.toLowerCase())) found.push(f);
  if (o.inbound && h.hasHeader('list-id')) found.push('List-Id'); // RFC 2919
  // Precedence (RFC 2076 §3.9, RFC 3834 §3.1.8): bulk, list, junk mark mass or list mail.
  const precedence = h.getFirst('precedence').trim().toLowerCase();
  if (['bulk', 'list', 'junk'].includes(precedence)) found.push(`Precedence: ${precedence}`);
  return found;
}

/**
 * A submitted message with bulk markers from a person's mailbox is refused (550 5.7.1, RFC 3463
 * X.7.1 "delivery not authorized, message refused"): MSSanté carries medical content only. APP
 * mailboxes (software) may mark their automatic mail `Precedence: bulk`.
 */
export function decideSubmittedContent(o: { header: Buffer | string; senderType: MailboxType }): ContentRefusal | null {
  if (o.senderType === 'APP') return null;
  const markers = bulkMarkers(o.header, { inbound: false });
  if (!markers.length) return null;
  return {
    rule: 'no-bulk-mail',
    code: 550,
    enhanced: '5.7.1',
    text: `message refusé (${markers.join(', ')}) : règle : pas de diffusion de masse ni de publicité sur MSSanté, la messagerie est réservée aux échanges médicaux ; retirez ces en-têtes ou utilisez un autre service (bulk mail refused)`,
  };
}

/** Inbound: where bulk-looking mail goes instead of INBOX (delivered, never refused); null: INBOX. */
export function inboundFiling(header: Buffer | string, s: Pick<ContentSettings, 'nonMedicalFolder'>): { folder: string; flags: string[]; markers: string[] } | null {
  const markers = bulkMarkers(header, { inbound: true });
  return markers.length ? { folder: s.nonMedicalFolder, flags: [NON_MEDICAL_KEYWORD], markers } : null;
}

/**
 * The reply text of a refusal: RFC 5321 §4.2 reply text is US-ASCII (textstring), so the French
 * text loses its accents on the wire; the rule id ends it.
 */
export function replyText(r: ContentRefusal): string {
  const ascii = r.text.normalize('NFD').replace(/\p{M}/gu, '').replace(/[^\x20-\x7e]/g, '?');
  return `${ascii} [rule ${r.rule}]`;
}
