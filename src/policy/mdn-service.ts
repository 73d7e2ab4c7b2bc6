// Receipts sent by a mailbox about a message it received (RFC 8098 MDNs, the ANS integration
// acknowledgement): the two entry points the webmail and the software API call. Access goes
// through Core; the MDN and the $MDNSent keyword commit in one transaction (Core.deliver with
// markMessage), so a message is acknowledged at most once, even by two racing calls.
import type { Logger } from 'pino';
import { simpleParser } from 'mailparser';
import { Headers } from '@zone-eu/mailsplit';
import addressparser from 'nodemailer/lib/addressparser';
import { CoreError, NotFound, type Core, type Mailbox, type User } from '../core/index.js';
import type { MessageFiles } from '../store/message-files.js';
import { KeywordAlreadySetError, type ReceiptMessage } from '../store/types.js';
import { headerBlock } from './absence.js';
import { replyTarget, type ReplyTarget } from './automatic-reply.js';
import { buildIntegrationErrorMessage, buildMdn, decideMdn, INTEGRATION_ERRORS, MDN_SENT, type DispositionOutcome, type MdnRefusal, type ReattachedFile } from './mdn.js';

/** A received message: its row id (the API's e<n>), or its folder and UID (IMAP). */
export type MessageRef = { emailId: number } | { folderId: number; uid: number };

/** An integration outcome reported by the software reading an APP mailbox. */
export type IntegrationOutcome = { ok: true } | { code: number; label?: string };

/** The receipt was not sent: `reason` says why (the API maps already-sent to 409, the rest to 400). */
export class ReceiptRefused extends CoreError {
  override name = 'ReceiptRefused';
  constructor(
    readonly reason: MdnRefusal | 'cannot-receive' | 'not-app-mailbox' | 'invalid-code',
    message: string,
  ) {
    super(message);
  }
}

const FRENCH: Record<ReceiptRefused['reason'], string> = {
  'already-sent': 'Un accusé a déjà été envoyé pour ce message.',
  'not-requested': "L'expéditeur n'a pas demandé d'accusé de lecture pour ce message.",
  'is-report': "Ce message est lui-même un accusé ou un avis de distribution : on n'y répond pas par un accusé.",
  'auto-submitted': "Ce message a été envoyé automatiquement : on n'y répond pas par un accusé.",
  'null-return-path': "Ce message n'a pas d'adresse de retour : aucun accusé ne peut lui être envoyé.",
  'different-address': "L'adresse demandée pour l'accusé diffère de l'adresse de retour du message : confirmez l'envoi à cette adresse.",
  'cannot-receive': "L'adresse demandée pour l'accusé ne peut pas recevoir de message de l'espace de confiance MSSanté.",
  'not-app-mailbox': "L'accusé d'intégration n'existe que pour une boîte applicative (APP).",
  'invalid-code': "Le code d'erreur d'intégration doit être compris entre 900 et 906.",
};

/** The French sentence for a refusal (problem `detail`). */
export function receiptRefusalText(reason: ReceiptRefused['reason']): string {
  return FRENCH[reason];
}

export interface ReceiptServiceOptions {
  core: Core;
  blobs: MessageFiles;
  /** The trust space: receipts go only to its domains. */
  trust: { isTrustedDomain(domain: string): boolean };
  hostname: string;
  logger: Logger;
  now?: () => Date;
}

/** ANS guide: the files an integration error sends back (the XDM package and the PDF rendition). */
async function documentsOf(raw: Buffer): Promise<ReattachedFile[]> {
  const parsed = await simpleParser(raw, { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true });
  return parsed.attachments
    .filter((a) => /^ihe_xdm\.zip$/i.test(a.filename ?? '') || a.contentType.toLowerCase() === 'application/pdf')
    .map((a) => ({ filename: a.filename ?? (a.contentType === 'application/pdf' ? 'document.pdf' : 'IHE_XDM.ZIP'), contentType: a.contentType, content: a.content }));
}

export class ReceiptService {
  private readonly log: Logger;

  constructor(private readonly o: ReceiptServiceOptions) {
    this.log = o.logger.child({ component: 'receipts' });
  }

  /** The message and its mailbox, if `user` may read it (else NotFound: never reveals that it exists). */
  private async readable(user: User, ref: MessageRef): Promise<{ msg: ReceiptMessage; mailbox: Mailbox }> {
    const store = this.o.core.store;
    const msg = await store.getReceiptMessage(ref);
    const mailbox = msg && (await store.getMailbox(msg.mailboxId));
    if (!msg || !mailbox || mailbox.state === 'deleted') throw new NotFound('no such message');
    const rights = await this.o.core.rightsOn(user, mailbox);
    if (!rights.has('read') && !rights.has('manage')) throw new NotFound('no such message');
    return { msg, mailbox };
  }

  private async targets(to: string[]): Promise<{ address: string; target: ReplyTarget }[]> {
    const out: { address: string; target: ReplyTarget }[] = [];
    for (const address of to) {
      const target = await replyTarget(this.o.core, this.o.trust, address);
      if ('refused' in target) throw new ReceiptRefused('cannot-receive', `${address} cannot receive a receipt (${target.refused}: ${target.detail})`);
      out.push({ address, target });
    }
    return out;
  }

  /**
   * Stores and sends `raw` to `to` and sets $MDNSent on the message, in one transaction. RFC 8098
   * §2.1 (and RFC 3834 §3.3): sent with the null reverse-path, asking for no DSN.
   */
  private async send(msg: ReceiptMessage, raw: Buffer, to: { address: string; target: ReplyTarget }[]): Promise<void> {
    const blob = await this.o.blobs.put(raw);
    try {
      await this.o.core.deliver({
        blobId: blob.id,
        size: blob.size,
        internalDate: this.o.now?.() ?? new Date(),
        envelopeFrom: '',
        localMailboxIds: to.flatMap((t) => (t.target.kind === 'local' ? [t.target.mailbox.id] : [])),
        remote: to.flatMap((t) => (t.target.kind === 'remote' ? [{ recipient: t.address, domain: t.target.domain, notify: ['NEVER' as const], orcpt: null }] : [])),
        markMessage: { folderId: msg.folderId, uid: msg.uid, keyword: MDN_SENT },
      });
    } catch (e) {
      if (e instanceof KeywordAlreadySetError) throw new ReceiptRefused('already-sent', `a receipt was already sent for this message (${MDN_SENT})`);
      throw e;
    } finally {
      blob.release();
    }
    this.flagsChanged(msg);
  }

  /** IMAP sessions with the folder open (IDLE) learn of the new keyword at once. */
  private flagsChanged(msg: ReceiptMessage): void {
    this.o.core.events.emit('folder-changed', { folderId: msg.folderId });
  }

  /**
   * The reader displayed the message and agrees to tell its sender (RFC 8098
   * `manual-action/MDN-sent-manually; displayed`): the webmail's "send the read receipt".
   * `confirmed`: the user was shown the receipt's address when it differs from the return path.
   */
  async sendReadReceipt(user: User, ref: MessageRef, opts: { confirmed?: boolean } = {}): Promise<{ to: string[] }> {
    const { msg, mailbox } = await this.readable(user, ref);
    const raw = await this.o.blobs.read(msg.blobId);
    const header = headerBlock(raw);
    const d = decideMdn({ header, returnPath: msg.returnPath, flags: msg.flags, automatic: false, confirmed: opts.confirmed });
    if (!d.send) throw new ReceiptRefused(d.reason, d.detail);
    const to = await this.targets(d.to);
    const mdn = await buildMdn({ mailbox, to: d.to, originalHeader: header, disposition: { mode: 'manual', type: 'displayed' }, hostname: this.o.hostname, date: this.o.now?.() });
    await this.send(msg, mdn, to);
    this.log.info({ mailboxId: mailbox.id, messageId: msg.id }, 'read receipt sent');
    return { to: d.to };
  }

  /**
   * Software reading an APP mailbox reports whether it integrated the message (ANS guide):
   * `automatic-action/MDN-sent-automatically; processed[/Error: <code>^<libellé>]`. An error is
   * always reported: by the MDN when one was asked for and may go automatically, otherwise by an
   * ordinary message with the same subject and documents. A success without a request sends
   * nothing. Either way $MDNSent is set: the message is acknowledged once.
   */
  async acknowledgeIntegration(user: User, ref: MessageRef, outcome: IntegrationOutcome): Promise<{ sent: 'mdn' | 'message' | 'none'; to: string[]; reason?: MdnRefusal }> {
    let error: { code: number; label: string } | undefined;
    if (!('ok' in outcome)) {
      if (!Number.isInteger(outcome.code) || outcome.code < 900 || outcome.code > 906) throw new ReceiptRefused('invalid-code', `integration error code ${outcome.code} is not one of 900–906`);
      const label = outcome.label?.replace(/[\r\n]+/g, ' ').trim().slice(0, 200) || INTEGRATION_ERRORS[outcome.code];
      // The code^label syntax: a caret inside the label would split it (ANS guide).
      error = { code: outcome.code, label: label.replace(/\^/g, ' ') };
    }
    const { msg, mailbox } = await this.readable(user, ref);
    if (mailbox.type !== 'APP') throw new ReceiptRefused('not-app-mailbox', `${mailbox.address} is a ${mailbox.type} mailbox: integration acknowledgements are for APP mailboxes`);
    const raw = await this.o.blobs.read(msg.blobId);
    const header = headerBlock(raw);
    const d = decideMdn({ header, returnPath: msg.returnPath, flags: msg.flags, automatic: true });
    if (!d.send && d.reason === 'already-sent') throw new ReceiptRefused('already-sent', d.detail);
    const attachments = error ? await documentsOf(raw) : [];
    const now = this.o.now?.() ?? new Date();
    if (d.send) {
      const disposition: DispositionOutcome = { mode: 'automatic', type: 'processed', ...(error ? { error } : {}) };
      const mdn = await buildMdn({ mailbox, to: d.to, originalHeader: header, disposition, hostname: this.o.hostname, attachments, date: now });
      await this.send(msg, mdn, await this.targets(d.to));
      this.log.info({ mailboxId: mailbox.id, messageId: msg.id, error: error?.code ?? null }, 'integration MDN sent');
      return { sent: 'mdn', to: d.to };
    }
    // No MDN may go: an error still reaches the sender (the return path; else the From author),
    // unless the message is itself automatic (a report, an automatic reply: nobody to tell).
    const silent = d.reason === 'is-report' || d.reason === 'auto-submitted' || d.reason === 'null-return-path';
    if (error && !silent) {
      const to = msg.returnPath ? [msg.returnPath] : fromOf(header);
      if (to.length) {
        const text = await buildIntegrationErrorMessage({ mailbox, to, originalHeader: header, hostname: this.o.hostname, attachments, error, date: now });
        await this.send(msg, text, await this.targets(to));
        this.log.info({ mailboxId: mailbox.id, messageId: msg.id, error: error.code, reason: d.reason }, 'integration error reported by message');
        return { sent: 'message', to, reason: d.reason };
      }
    }
    await this.markOnly(msg);
    return { sent: 'none', to: [], reason: d.reason };
  }

  /** RFC 3503: the acknowledgement is settled though nothing was sent. */
  private async markOnly(msg: ReceiptMessage): Promise<void> {
    if (!(await this.o.core.store.markMessageOnce({ folderId: msg.folderId, uid: msg.uid, keyword: MDN_SENT }))) throw new ReceiptRefused('already-sent', `${MDN_SENT} is set`);
    this.flagsChanged(msg);
  }
}

/** The first author of the From field (RFC 5322 §3.6.2). */
function fromOf(header: Buffer): string[] {
  const list = addressparser(new Headers(header).getFirst('from')) as any[];
  const first = list.flatMap((a) => (a.group ? a.group : [a])).find((a) => a.address);
  return first ? [String(first.address)] : [];
}
