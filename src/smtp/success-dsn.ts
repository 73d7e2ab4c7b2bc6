// Success DSNs from the final delivering MTA (RFC 3461 §5.2.2: "delivered"). In MSSanté this is the
// destination server's receipt (RFC 3464; ANS guide
// ansforge/IG-hl7v2-volet-trans-lps-doc-cda-courriel-mss). The DSN goes to the envelope sender:
// into its INBOX when local, else through the outbound queue with a null sender.
import type { Logger } from 'pino';
import { domainOf, type Core } from '../core/index.js';
import type { MessageFiles } from '../store/message-files.js';
import { buildDsn, wantsDsn } from '../mime/dsn.js';

export interface DeliveredRecipient {
  address: string;
  notify: string[] | null;
  orcpt: string | null;
}

export async function sendDeliveredDsn(o: {
  core: Core;
  blobs: MessageFiles;
  hostname: string;
  postmaster: string;
  envelopeFrom: string;
  envid: string | null;
  ret: 'FULL' | 'HDRS' | null;
  arrivalDate: Date;
  blobId: string;
  recipients: DeliveredRecipient[];
  logger: Logger;
}): Promise<void> {
  // RFC 3461 §6.2: never a DSN for a message with a null reverse-path.
  if (!o.envelopeFrom) return;
  const wanted = o.recipients.filter((r) => wantsDsn(r.notify, 'SUCCESS'));
  if (wanted.length === 0) return;
  const raw = await buildDsn({
    reportingMta: o.hostname,
    postmaster: o.postmaster,
    to: o.envelopeFrom,
    envid: o.envid,
    arrivalDate: o.arrivalDate,
    ret: o.ret === 'FULL' ? 'HDRS' : o.ret, // success DSNs carry headers only (RFC 3461 §4.3 allows it)
    recipients: wanted.map((r) => ({ recipient: r.address, orcpt: r.orcpt, action: 'delivered', status: '2.0.0', lastAttempt: new Date() })),
    original: await o.blobs.read(o.blobId),
  });
  const blob = await o.blobs.put(raw);
  try {
    const target = await o.core.resolveRecipient(o.envelopeFrom);
    if (target.kind === 'local') {
      await o.core.deliver({ blobId: blob.id, size: blob.size, internalDate: new Date(), envelopeFrom: '', localMailboxIds: [target.mailbox.id], remote: [] });
    } else if (target.kind === 'remote') {
      await o.core.deliver({
        blobId: blob.id,
        size: blob.size,
        internalDate: new Date(),
        envelopeFrom: '',
        localMailboxIds: [],
        remote: [{ recipient: o.envelopeFrom, domain: domainOf(o.envelopeFrom), notify: ['NEVER'], orcpt: null }],
      });
    } else {
      o.logger.info({ reason: target.kind }, 'success DSN not sent: the envelope sender cannot receive mail');
    }
  } finally {
    blob.release();
  }
}
