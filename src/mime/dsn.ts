// Delivery Status Notifications (RFC 3464, multipart/report of RFC 6522) with a French
// human-readable part, delivered to the sender's INBOX.
import { Headers } from '@zone-eu/mailsplit';
import libmime from 'libmime';
import MimeNode from 'nodemailer/lib/mime-node';
import { rfc5322Date } from './date.js';

export interface DsnRecipient {
  recipient: string;
  orcpt: string | null;
  action: 'failed' | 'delivered' | 'delayed';
  /** RFC 3463 status, e.g. 5.1.1 */
  status: string;
  remoteMta?: string;
  /** Last SMTP reply from the remote server, or our own explanation. */
  diagnostic?: string;
  lastAttempt: Date;
}

export interface DsnInput {
  reportingMta: string;
  postmaster: string;
  to: string;
  envid: string | null;
  arrivalDate: Date;
  ret: 'FULL' | 'HDRS' | null;
  recipients: DsnRecipient[];
  original: Buffer;
}

/** RFC 3464 §2.1.1 xtext-free text: drop CR/LF so one field stays one line. */
const oneLine = (s: string) => s.replace(/[\r\n]+/g, ' ').trim();

/**
 * RFC 2045 §6.2: without a Content-Transfer-Encoding, a part is 7bit (no octet above 127);
 * RFC 2046 §5.2.1: message/* parts cannot be quoted-printable or base64, so a part carrying
 * 8-bit octets (UTF-8 diagnostics, an 8BITMIME original) declares 8bit.
 */
function declare8bit(node: MimeNode, content: Buffer | string): void {
  if (/[^\x00-\x7f]/.test(typeof content === 'string' ? content : content.toString('latin1'))) node.setHeader('Content-Transfer-Encoding', '8bit');
}

function originalHeader(original: Buffer): Buffer {
  const i = original.indexOf('\r\n\r\n');
  return i >= 0 ? original.subarray(0, i + 4) : original;
}

function humanPart(d: DsnInput, subject: string): string {
  const failed = d.recipients.filter((r) => r.action === 'failed');
  const delivered = d.recipients.filter((r) => r.action === 'delivered');
  const delayed = d.recipients.filter((r) => r.action === 'delayed');
  const lines: string[] = ['Bonjour,', ''];
  const date = d.arrivalDate.toLocaleString('fr-FR', { timeZone: 'Europe/Paris' });
  if (failed.length) {
    lines.push(`Votre message « ${subject} » déposé le ${date} n'a pas pu être remis aux destinataires suivants :`, '');
    for (const r of failed) lines.push(`  - ${r.recipient}`, `    Raison : ${oneLine(r.diagnostic ?? r.status)}`);
    lines.push('', "Le message n'a pas été distribué à ces destinataires. Vérifiez l'adresse dans l'annuaire santé, puis renvoyez-le si nécessaire.");
  }
  if (delayed.length) {
    lines.push(`La remise de votre message « ${subject} » est retardée pour :`, '');
    for (const r of delayed) lines.push(`  - ${r.recipient}`, `    Raison : ${oneLine(r.diagnostic ?? r.status)}`);
    lines.push('', 'De nouvelles tentatives seront faites automatiquement ; aucune action de votre part n’est nécessaire pour le moment.');
  }
  if (delivered.length) {
    if (failed.length || delayed.length) lines.push('');
    lines.push(`Votre message « ${subject} » a bien été remis au serveur de messagerie des destinataires suivants :`, '');
    for (const r of delivered) lines.push(`  - ${r.recipient}`);
  }
  lines.push(
    '',
    'Rappel : la messagerie sécurisée de santé ne doit pas être utilisée pour des informations urgentes.',
    '',
    `-- \nService de messagerie MSSanté ${d.reportingMta}`,
    '',
  );
  return lines.join('\r\n');
}

/** Builds the DSN message (RFC 3464 §2, RFC 6522). */
export async function buildDsn(d: DsnInput): Promise<Buffer> {
  const origHeaders = new Headers(originalHeader(d.original));
  // RFC 2047 encoded words (e.g. an accented French subject) are decoded before being quoted.
  const subject = oneLine(libmime.decodeWords(origHeaders.getFirst('subject'))) || '(sans objet)';
  const failed = d.recipients.some((r) => r.action === 'failed');
  const delayed = d.recipients.some((r) => r.action === 'delayed');
  const root = new MimeNode('multipart/report; report-type=delivery-status');
  root.setHeader({
    From: `"Service de messagerie MSSanté" <${d.postmaster}>`,
    To: d.to,
    Subject: `${failed ? 'Échec de distribution' : delayed ? 'Distribution retardée' : 'Distribution réussie'} : ${subject}`,
    Date: rfc5322Date(),
    'Auto-Submitted': 'auto-replied', // RFC 3834 §5
  });
  const msgId = origHeaders.getFirst('message-id');
  if (msgId) root.setHeader({ 'In-Reply-To': msgId, References: msgId });
  root.createChild('text/plain; charset=utf-8').setContent(humanPart(d, subject));
  // RFC 3464 §2.2 per-message fields, §2.3 per-recipient fields.
  const fields: string[] = [`Reporting-MTA: dns; ${d.reportingMta}`];
  if (d.envid) fields.push(`Original-Envelope-Id: ${oneLine(d.envid)}`);
  fields.push(`Arrival-Date: ${rfc5322Date(d.arrivalDate)}`, '');
  for (const r of d.recipients) {
    if (r.orcpt) fields.push(`Original-Recipient: ${oneLine(r.orcpt.includes(';') ? r.orcpt : `rfc822;${r.orcpt}`)}`);
    fields.push(`Final-Recipient: rfc822; ${r.recipient}`, `Action: ${r.action}`, `Status: ${r.status}`);
    if (r.remoteMta) fields.push(`Remote-MTA: dns; ${r.remoteMta}`);
    if (r.diagnostic) fields.push(`Diagnostic-Code: smtp; ${oneLine(r.diagnostic)}`);
    fields.push(`Last-Attempt-Date: ${rfc5322Date(r.lastAttempt)}`, '');
  }
  const status = fields.join('\r\n');
  const statusPart = root.createChild('message/delivery-status');
  declare8bit(statusPart, status);
  statusPart.setContent(status);
  // RFC 3461 §4.3: RET=FULL returns the whole message, otherwise the headers only.
  if (d.ret === 'FULL') {
    const full = root.createChild('message/rfc822');
    declare8bit(full, d.original);
    full.setContent(d.original);
  } else root.createChild('text/rfc822-headers').setContent(originalHeader(d.original));
  return new Promise((resolve, reject) => root.build((err: Error | null, buf: Buffer) => (err ? reject(err) : resolve(buf))));
}

/** RFC 3461 §4.1: NOTIFY absent means FAILURE (and DELAY at the MTA's discretion). */
export function wantsDsn(notify: readonly string[] | null | undefined, kind: 'SUCCESS' | 'FAILURE' | 'DELAY'): boolean {
  if (!notify || notify.length === 0) return kind !== 'SUCCESS';
  if (notify.includes('NEVER')) return false;
  return notify.includes(kind);
}
