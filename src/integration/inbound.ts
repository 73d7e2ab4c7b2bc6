// What the software API tells about one inbound message: the webhook payload's `data` and each
// item of the pull feed (GET /api/v1/mailboxes/{address}/inbound) — one describer for both.
// Identifiers, the mail service's summary, the MSSanté header fields as received (mssante.md §4),
// the attachments with their part ids and download links, and the documents of an IHE_XDM.ZIP
// read with src/xdm — never the body text (the software fetches what it needs over the API,
// authenticated). The caller has already asked Core whether the reader may read the mailbox.
import type { Mailbox } from '../model/index.js';
import type { MailService } from '../mail/service.js';
import type { InboundMessage } from '../store/types.js';

/** The stable public id of a stored message in the mail API (docs/mail-api.md). */
export const emailId = (messageRowId: number) => `e${messageRowId}`;

export function inboundDescriber(o: { mail: Pick<MailService, 'describe'>; messages: { getMessage(id: number): Promise<import('../model/index.js').StoredMessage | undefined> }; publicUrl: (mailbox: Mailbox) => string }) {
  return async (mailbox: Mailbox, m: InboundMessage): Promise<Record<string, unknown>> => {
    const stored = await o.messages.getMessage(m.id);
    if (!stored) throw new Error(`message ${m.id} is gone`);
    const d = await o.mail.describe(mailbox, stored);
    const s = d.summary;
    const base = `${o.publicUrl(mailbox).replace(/\/$/, '')}/api/v1/emails/${emailId(m.id)}`;
    return {
      emailId: s.id,
      folder: 'INBOX',
      folderId: s.folderId,
      threadId: s.threadId,
      receivedAt: s.receivedAt,
      size: s.size,
      messageId: d.messageId,
      subject: s.subject,
      date: s.sentAt,
      from: s.from,
      to: s.to,
      cc: s.cc,
      patient: s.patient,
      xdm: s.xdm,
      readReceiptRequested: s.readReceiptRequested,
      // ANS client référentiel ECO.2.4.x: kept as received (X-MSS-CODECDA may repeat).
      mss: d.mss,
      dispositionNotificationTo: d.dispositionNotificationTo,
      attachments: d.attachments.map((a) => ({ partId: a.partId, name: a.name, type: a.type, size: a.size, download: `${base}/parts/${a.partId}` })),
      documents: (d.xdm?.documents ?? []).map((doc) => ({ ...doc, download: `${base}/parts/${doc.partId}` })),
      ...(d.xdm?.unreadable.length ? { documentErrors: d.xdm.unreadable } : {}),
      links: { email: base, raw: `${base}/raw`, mdn: `${base}/mdn`, integration: `${base}/integration` },
    };
  };
}
