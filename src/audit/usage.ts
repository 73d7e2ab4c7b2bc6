// The content-free rows the usage indicators count (issue 10, docs/indicators.md): for each
// message accepted by the MX or by submission, one row per way (sent by a mailbox of ours,
// received into one) with the mailbox's structure and type, the peer class and two flags (an
// attachment, an IHE XDM package). The rows are stored in the delivery's own transaction
// (store.deliver), so a message is counted exactly when it is committed. Never an address, a
// subject or content: the message is read only to find its attachments.
import type { Logger } from 'pino';
import { analyzeMessage, type MessageInfo, type Part } from '../mime/index.js';
import type { Mailbox, MailboxType } from '../model/index.js';
import type { MessageFiles } from '../store/message-files.js';
import type { BlobMetaStore, MailboxStore, UsageRow } from '../store/types.js';
import type { Metrics } from './metrics.js';

/** Mon espace santé: patients' MSSanté addresses are `<INS>@patient.mssante.fr` (docs/mssante.md §8). */
export const PATIENT_DOMAIN = 'patient.mssante.fr';

/** IHE XDM on MSSanté: the package travels as an attachment named IHE_XDM.ZIP (docs/mssante.md §5). */
const XDM_NAME = 'ihe_xdm.zip';

export type Peer = UsageRow['peer'];

/** The peer class of a correspondent outside this operator: a patient, or another operator. */
export function remotePeer(address: string, patientDomain = PATIENT_DOMAIN): Peer {
  const domain = address.slice(address.lastIndexOf('@') + 1).toLowerCase();
  return domain === patientDomain.toLowerCase() ? 'patient' : 'operator';
}

function param(list: [string, string][] | null | undefined, name: string): string | undefined {
  return list?.find(([k]) => k.toLowerCase() === name)?.[1];
}

/** The file name a part carries (Content-Disposition filename, else Content-Type name), if any. */
function fileName(p: Part): string | undefined {
  return param(p.disposition?.[1], 'filename') ?? param(p.params, 'name');
}

/**
 * Whether a message carries an attachment, and an IHE XDM package. An attachment is a part
 * with `Content-Disposition: attachment` (RFC 2183 §2.2) or a named non-text leaf (clients
 * that omit the disposition); the XDM package is an attachment named IHE_XDM.ZIP, any case.
 */
export function messageTraits(info: MessageInfo): { attachment: boolean; xdm: boolean } {
  let attachment = false;
  let xdm = false;
  const walk = (p: Part, top: boolean) => {
    if (p.children) {
      for (const c of p.children) walk(c, false);
      return;
    }
    const name = fileName(p);
    const disposition = p.disposition?.[0].toLowerCase();
    const isAttachment = !top && (disposition === 'attachment' || (!!name && p.type.toLowerCase() !== 'text'));
    if (isAttachment) attachment = true;
    if (isAttachment && name?.toLowerCase() === XDM_NAME) xdm = true;
  };
  walk(info.root, true);
  return { attachment, xdm };
}

export interface UsageMeterOptions {
  store: Pick<MailboxStore, 'getMailbox'> & Pick<BlobMetaStore, 'getBlobMeta' | 'setBlobMeta'>;
  blobs: Pick<MessageFiles, 'read'>;
  metrics?: Metrics;
  logger?: Logger;
  now?: () => Date;
  /** The patients' domain (config patients.domain, docs/patients.md); default patient.mssante.fr. */
  patientDomain?: string;
}

/** Builds the usage rows of a message before its delivery, and counts them once committed. */
export class UsageMeter {
  constructor(private readonly o: UsageMeterOptions) {}

  /**
   * The analysis of a stored message (recorded once, as the IMAP index does, so that IMAP reads
   * it instead of parsing again). A message that cannot be analysed counts without attachment.
   */
  private async traits(blobId: string): Promise<{ attachment: boolean; xdm: boolean }> {
    try {
      const stored = await this.o.store.getBlobMeta(blobId);
      let info: MessageInfo;
      if (stored) info = JSON.parse(stored) as MessageInfo;
      else {
        info = analyzeMessage(await this.o.blobs.read(blobId));
        await this.o.store.setBlobMeta(blobId, JSON.stringify(info));
      }
      return messageTraits(info);
    } catch (e: any) {
      this.o.logger?.warn({ blobId, err: e?.message }, 'message analysis failed: counted without attachment in the usage indicators');
      return { attachment: false, xdm: false };
    }
  }

  private async owners(ids: readonly number[]): Promise<{ structureId: number | null; mailboxType: MailboxType }[]> {
    const out = [];
    for (const id of new Set(ids)) {
      const m = await this.o.store.getMailbox(id);
      if (m) out.push({ structureId: m.structureId, mailboxType: m.type });
    }
    return out;
  }

  /**
   * A message submitted by a user of ours as `senderMailboxId`: one `sent` row per peer class
   * among its recipients, and one `received` (internal) row per local recipient mailbox.
   */
  async submitted(m: { blobId: string; senderMailboxId: number | null; localMailboxIds: readonly number[]; remoteRecipients: readonly string[] }): Promise<UsageRow[]> {
    const t = await this.traits(m.blobId);
    const at = (this.o.now?.() ?? new Date()).toISOString();
    const peers = new Set<Peer>(m.remoteRecipients.map((a) => remotePeer(a, this.o.patientDomain)));
    if (m.localMailboxIds.length) peers.add('internal');
    const rows: UsageRow[] = [];
    const [sender] = m.senderMailboxId === null ? [] : await this.owners([m.senderMailboxId]);
    if (sender) for (const peer of (['internal', 'operator', 'patient'] as const).filter((p) => peers.has(p))) rows.push({ at, ...sender, flow: 'sent', peer, ...t });
    for (const r of await this.owners(m.localMailboxIds)) rows.push({ at, ...r, flow: 'received', peer: 'internal', ...t });
    return rows;
  }

  /** A message received from another operator by the MX: one `received` row per local recipient mailbox. */
  async received(m: { blobId: string; envelopeFrom: string; localMailboxIds: readonly number[]; info?: MessageInfo; mailboxes?: readonly Pick<Mailbox, 'id' | 'structureId' | 'type'>[] }): Promise<UsageRow[]> {
    // `info`: the caller analysed the message already (the MX at intake; recorded with the delivery).
    const t = m.info ? messageTraits(m.info) : await this.traits(m.blobId);
    const at = (this.o.now?.() ?? new Date()).toISOString();
    // A null reverse-path (a DSN, an automatic reply) comes from another operator's server.
    const peer = m.envelopeFrom ? remotePeer(m.envelopeFrom, this.o.patientDomain) : 'operator';
    // `mailboxes`: the recipients' mailboxes the caller resolved already (the MX at DATA), not read again.
    const owners = m.mailboxes
      ? [...new Map(m.mailboxes.map((x) => [x.id, { structureId: x.structureId, mailboxType: x.type }])).values()]
      : await this.owners(m.localMailboxIds);
    return owners.map((r) => ({ at, ...r, flow: 'received' as const, peer, ...t }));
  }

  /** The delivery carrying `rows` was committed: the message counters move. */
  committed(rows: readonly UsageRow[]): void {
    this.o.metrics?.committed(rows);
  }
}
