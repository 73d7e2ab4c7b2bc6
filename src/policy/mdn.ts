// Message Disposition Notifications (RFC 8098) and the ANS integration acknowledgement: whether a
// message may be answered with an MDN, and the MDN itself (multipart/report, RFC 6522) with a
// French human part. Pure: no store, no network (policy/mdn-service.ts acts on it).
// ANS guide "Transmission au LPS de documents CDA provenant d'un courriel MSSanté"
// (ansforge/IG-hl7v2-volet-trans-lps-doc-cda-courriel-mss: struct-msg-mdn, error-codes).
import { randomBytes } from 'node:crypto';
import { Headers } from '@zone-eu/mailsplit';
import libmime from 'libmime';
import MailComposer from 'nodemailer/lib/mail-composer';
import MimeNode from 'nodemailer/lib/mime-node';
import addressparser from 'nodemailer/lib/addressparser';
import { rfc5322Date } from '../mime/date.js';
import { msgIdOf, reportType } from '../mime/report.js';

/** RFC 3503 §3.1: the keyword that says an MDN was sent (or its sending settled) for a message. */
export const MDN_SENT = '$MDNSent';

/**
 * Integration error codes of the ANS guide (table applicationErrorCondition, "error-codes"):
 * 900–905 with the guide's labels; 906 ("autre") is not in the guide's table as published
 * (v1.1.1): its label is ours.
 */
export const INTEGRATION_ERRORS: Readonly<Record<number, string>> = {
  900: "Version du document incorrecte lors d'une demande de remplacement/suppression",
  901: 'Auteur non autorisé à remplacer ou supprimer un document',
  902: 'Identifiant patient inconnu',
  903: 'INS non présent dans le document',
  904: "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur",
  905: "L'INS transmis n'est pas complet",
  906: "Autre erreur d'intégration",
};

export type MdnRefusal =
  /** RFC 3503: $MDNSent is set already (one MDN per message). */
  | 'already-sent'
  /** RFC 8098 §2.1: no Disposition-Notification-To. */
  | 'not-requested'
  /** RFC 8098 §2.1 / RFC 3464: never an MDN for a report (MDN or DSN). */
  | 'is-report'
  /** RFC 3834 §2: an automatic message (Auto-Submitted other than "no") is not acknowledged. */
  | 'auto-submitted'
  /** The message came with the null reverse-path (a report, an automatic reply). */
  | 'null-return-path'
  /** RFC 8098 §2.1: Disposition-Notification-To differs from the return path (or it is unknown). */
  | 'different-address';

export type MdnDecision = { send: true; to: string[] } | { send: false; reason: MdnRefusal; detail: string };

function addresses(value: string): string[] {
  const out: string[] = [];
  const walk = (list: any[]) => {
    for (const a of list) {
      if (a.group) walk(a.group);
      else if (a.address) out.push(String(a.address));
    }
  };
  walk(addressparser(value) as any[]);
  return out;
}

/**
 * Whether a message gets an MDN, and to whom. `automatic`: sent without the user's action
 * (integration acknowledgements); `confirmed`: the user was shown the address and agreed, as
 * RFC 8098 §2.1 requires before sending to an address other than the return path.
 */
export function decideMdn(o: { header: Buffer; returnPath: string | null; flags: string[]; automatic: boolean; confirmed?: boolean }): MdnDecision {
  if (o.flags.some((f) => f.toLowerCase() === MDN_SENT.toLowerCase())) return { send: false, reason: 'already-sent', detail: `${MDN_SENT} is set` };
  const h = new Headers(o.header);
  const dnt = h.getFirst('disposition-notification-to');
  const to = dnt ? addresses(dnt) : [];
  // RFC 8098 §2.1: an MDN is only ever sent when the sender asked for one.
  if (!to.length) return { send: false, reason: 'not-requested', detail: 'no Disposition-Notification-To' };
  // RFC 8098 §2.1 ("MDNs MUST NOT be generated in response to MDNs"), and no more for DSNs.
  if (reportType(o.header)) return { send: false, reason: 'is-report', detail: 'the message is a multipart/report' };
  const auto = h.getFirst('auto-submitted').trim().toLowerCase().split(';')[0].trim();
  if (auto && auto !== 'no') return { send: false, reason: 'auto-submitted', detail: `Auto-Submitted: ${auto}` };
  if (o.returnPath === '') return { send: false, reason: 'null-return-path', detail: 'the message came with the null reverse-path <>' };
  // RFC 8098 §2.1: when the return path differs from Disposition-Notification-To, the MDN is not
  // sent automatically, and a manual one needs the user's explicit confirmation.
  const rp = o.returnPath?.toLowerCase() ?? null;
  const differs = rp === null || to.some((a) => a.toLowerCase() !== rp);
  if (differs && (o.automatic || !o.confirmed))
    return { send: false, reason: 'different-address', detail: rp === null ? 'the return path is not known' : `Disposition-Notification-To ${to.join(', ')} differs from the return path ${o.returnPath}` };
  return { send: true, to };
}

export type DispositionOutcome =
  | { mode: 'manual'; type: 'displayed' }
  | { mode: 'automatic'; type: 'processed'; error?: { code: number; label: string } };

/** RFC 8098 §3.2.6 Disposition field; the ANS guide's error form `processed/Error: <code>^<libellé>`. */
export function dispositionField(d: DispositionOutcome): string {
  if (d.mode === 'manual') return 'manual-action/MDN-sent-manually; displayed';
  return `automatic-action/MDN-sent-automatically; processed${d.error ? `/Error: ${d.error.code}^${oneLine(d.error.label)}` : ''}`;
}

const oneLine = (s: string) => s.replace(/[\r\n]+/g, ' ').trim();

/** The original's subject (decoded) and Message-ID. */
function original(header: Buffer): { subject: string; messageId: string | null; references: string[]; originalRecipient: string } {
  const h = new Headers(header);
  const messageId = msgIdOf(h.getFirst('message-id'));
  const references = [...((h.getFirst('references') || h.getFirst('in-reply-to')).match(/<[^<>\s]+>/g) ?? [])];
  if (messageId) references.push(messageId);
  return { subject: oneLine(libmime.decodeWords(h.getFirst('subject'))), messageId, references: references.slice(-20), originalRecipient: oneLine(h.getFirst('original-recipient')) };
}

/** ANS guide: an integration error's subject is `[KO Intégration système !][<code>] <original subject>`. */
export function integrationErrorSubject(code: number, subject: string): string {
  return `[KO Intégration système !][${code}] ${subject}`.trim();
}

function parisDate(d: Date): string {
  return d.toLocaleString('fr-FR', { timeZone: 'Europe/Paris' });
}

function humanText(mailbox: string, subject: string, d: DispositionOutcome, now: Date): string {
  const s = subject || '(sans objet)';
  const lines = ['Bonjour,', ''];
  if (d.mode === 'manual') {
    lines.push(
      `Votre message « ${s} » adressé à ${mailbox} a été affiché par son destinataire le ${parisDate(now)}.`,
      '',
      "Cet accusé de lecture indique que le message a été affiché ; il ne garantit pas qu'il a été lu ni compris.",
    );
  } else if (!d.error) {
    lines.push(`Votre message « ${s} » adressé à ${mailbox} a été intégré automatiquement par le logiciel destinataire le ${parisDate(now)}.`);
  } else {
    lines.push(
      `Le message « ${s} » adressé à ${mailbox} n'a pas pu être intégré automatiquement dans le logiciel destinataire pour la raison suivante :`,
      '',
      `  ${d.error.code} : ${oneLine(d.error.label)}`,
      '',
      "Les documents du message d'origine sont joints à nouveau. Vérifiez l'identité du patient et le document, puis renvoyez-le si nécessaire ou prenez contact avec le destinataire.",
    );
  }
  lines.push('', `-- \nMessagerie sécurisée de santé — ${mailbox}`, '');
  return lines.join('\r\n');
}

export interface ReattachedFile {
  filename: string;
  contentType: string;
  content: Buffer;
}

export interface MdnInput {
  /** The mailbox that received the message and now reports on it (Final-Recipient). */
  mailbox: { address: string; displayName: string };
  to: string[];
  /** The original message's header block. */
  originalHeader: Buffer;
  disposition: DispositionOutcome;
  /** Reporting-UA (RFC 8098 §3.2.1): our host name. */
  hostname: string;
  /** ANS guide: an integration error attaches the original IHE_XDM.ZIP and PDF again. */
  attachments?: ReattachedFile[];
  date?: Date;
}

/** RFC 2045 §6.2 / RFC 2046 §5.2.1: a message/* part with 8-bit octets declares 8bit (as mime/dsn.ts). */
function declare8bit(node: MimeNode, content: string): void {
  if (/[^\x00-\x7f]/.test(content)) node.setHeader('Content-Transfer-Encoding', '8bit');
}

function subjectOf(i: { disposition: DispositionOutcome }, subject: string): string {
  if (i.disposition.mode === 'manual') return `Accusé de lecture : ${subject || '(sans objet)'}`;
  // ANS guide: success keeps the original subject; an error gets the [KO Intégration système !] prefix.
  return i.disposition.error ? integrationErrorSubject(i.disposition.error.code, subject) : subject || '(sans objet)';
}

/** Builds the MDN (RFC 8098 §3, RFC 6522). */
export async function buildMdn(i: MdnInput): Promise<Buffer> {
  const now = i.date ?? new Date();
  const o = original(i.originalHeader);
  const root = new MimeNode('multipart/report; report-type=disposition-notification');
  root.setHeader({
    From: { name: oneLine(i.mailbox.displayName), address: i.mailbox.address } as any,
    To: i.to.join(', '),
    Subject: subjectOf(i, o.subject),
    Date: rfc5322Date(now),
    'Message-ID': `<mdn.${randomBytes(12).toString('hex')}@${i.hostname}>`,
  });
  // RFC 3834 §5: an MDN sent without the user's action is an automatic answer.
  if (i.disposition.mode === 'automatic') root.setHeader('Auto-Submitted', 'auto-replied');
  if (o.messageId) root.setHeader({ 'In-Reply-To': o.messageId, References: o.references.join(' ') });
  root.createChild('text/plain; charset=utf-8').setContent(humanText(i.mailbox.address, o.subject, i.disposition, now));
  // RFC 8098 §3.1 fields: Reporting-UA (§3.2.1), Original-Recipient (§3.2.3: the address the
  // message was delivered to, reliably known here), Final-Recipient (§3.2.4),
  // Original-Message-ID (§3.2.5), Disposition (§3.2.6).
  const fields = [`Reporting-UA: ${i.hostname}; Caducée`];
  fields.push(`Original-Recipient: ${o.originalRecipient || `rfc822;${i.mailbox.address}`}`);
  fields.push(`Final-Recipient: rfc822;${i.mailbox.address}`);
  if (o.messageId) fields.push(`Original-Message-ID: ${o.messageId}`);
  fields.push(`Disposition: ${dispositionField(i.disposition)}`, '');
  const status = fields.join('\r\n');
  const statusPart = root.createChild('message/disposition-notification');
  declare8bit(statusPart, status);
  statusPart.setContent(status);
  // RFC 8098 §3: the third part returns the original's header (RFC 6522 text/rfc822-headers).
  const headerPart = root.createChild('text/rfc822-headers');
  declare8bit(headerPart, i.originalHeader.toString('latin1'));
  headerPart.setContent(i.originalHeader);
  // ANS guide: the error MDN carries the IHE_XDM.ZIP and PDF again, after the report's parts
  // (a deviation from RFC 6522's "two or three parts" the guide asks for; docs/receipts.md).
  for (const a of i.attachments ?? []) {
    root.createChild(a.contentType, { filename: a.filename }).setHeader('Content-Disposition', 'attachment').setContent(a.content);
  }
  return new Promise((resolve, reject) => root.build((err: Error | null, buf: Buffer) => (err ? reject(err) : resolve(buf))));
}

/**
 * ANS guide: when no receipt was asked for (or none may go automatically), an integration error
 * is still reported, by an ordinary readable message with the same subject and attachments.
 */
export async function buildIntegrationErrorMessage(i: Omit<MdnInput, 'disposition'> & { error: { code: number; label: string } }): Promise<Buffer> {
  const now = i.date ?? new Date();
  const o = original(i.originalHeader);
  const mail: any = {
    from: { name: oneLine(i.mailbox.displayName), address: i.mailbox.address },
    to: i.to,
    subject: integrationErrorSubject(i.error.code, o.subject),
    date: now,
    text: humanText(i.mailbox.address, o.subject, { mode: 'automatic', type: 'processed', error: i.error }, now),
    headers: { 'Auto-Submitted': 'auto-generated' }, // RFC 3834 §5
    attachments: (i.attachments ?? []).map((a) => ({ filename: a.filename, contentType: a.contentType, content: a.content })),
    messageId: `<integration.${randomBytes(12).toString('hex')}@${i.hostname}>`,
  };
  if (o.messageId) {
    mail.inReplyTo = o.messageId;
    mail.references = o.references;
  }
  const composer = new MailComposer(mail).compile();
  return new Promise((resolve, reject) => composer.build((err: Error | null, buf: Buffer) => (err ? reject(err) : resolve(buf))));
}
