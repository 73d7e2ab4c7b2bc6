// What the software API tells about one inbound message (webhook payload `data`, pull feed):
// identifiers, envelope headers, the MSSanté headers (mssante.md §4) and the attachments with
// links — never the body text (the software fetches what it needs over the API, authenticated).
import { simpleParser, type AddressObject } from 'mailparser';
import type { Mailbox } from '../model/index.js';
import type { BlobStore } from '../store/blobs.js';
import type { InboundMessage } from '../store/types.js';
import { createReadStream } from 'node:fs';

type Addr = { name: string | null; email: string };

function addresses(v: AddressObject | AddressObject[] | undefined): Addr[] {
  const list = v === undefined ? [] : Array.isArray(v) ? v : [v];
  return list.flatMap((o) => o.value.flatMap((a) => (a.group ? a.group : [a]))).map((a) => ({ name: a.name || null, email: a.address ?? '' }));
}

const headerText = (v: unknown) => (v === undefined || v === null ? null : typeof v === 'string' ? v : typeof v === 'object' && 'text' in (v as object) ? String((v as { text: unknown }).text) : String(v));

/** The stable public id of a stored message in the mail API (docs/mail-api.md). */
export const emailId = (messageRowId: number) => `e${messageRowId}`;

export function inboundDescriber(o: { blobs: Pick<BlobStore, 'pathOf'>; publicUrl: (mailbox: Mailbox) => string }) {
  return async (mailbox: Mailbox, m: InboundMessage): Promise<Record<string, unknown>> => {
    // mailparser reads the stored file as a stream (size bounded by the operator's message limit).
    const p = await simpleParser(createReadStream(o.blobs.pathOf(m.blobId)), { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true });
    const base = `${o.publicUrl(mailbox)}/api/v1/emails/${emailId(m.id)}`;
    const mss = (name: string) => headerText(p.headers.get(name));
    return {
      emailId: emailId(m.id),
      folder: 'INBOX',
      receivedAt: new Date(m.internalDate).toISOString(),
      size: m.size,
      messageId: p.messageId ?? null,
      subject: p.subject ?? '',
      date: p.date?.toISOString() ?? null,
      from: addresses(p.from),
      to: addresses(p.to),
      cc: addresses(p.cc),
      // ANS client référentiel ECO.2.4.x: kept as received.
      mss: { codeCda: mss('x-mss-codecda'), ins: mss('x-mss-ins'), nil: mss('x-mss-nil'), mes: mss('x-mss-mes') },
      dispositionNotificationTo: headerText(p.headers.get('disposition-notification-to')),
      attachments: p.attachments.map((a, i) => ({ index: i, name: a.filename ?? null, type: a.contentType, size: a.size, checksum: a.checksum })),
      links: { email: base, raw: `${base}/raw` },
    };
  };
}
