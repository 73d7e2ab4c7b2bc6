// The submission pipeline (RFC 6409) shared by SMTP submission (smtp/submission.ts) and the mail
// API's POST /api/v1/submissions: the same checks, in the same order, with the same outcome.
//  - envelope sender: Core.maySendAs (owner, or send-on-behalf grant);
//  - each recipient: Core.resolveRecipient (local state), the trust space for remote domains,
//    the content policy's recipient limits;
//  - the header: every From: author through Core.maySendAs, Sender: set for send-on-behalf
//    (RFC 5322 §3.6.2), bulk refusal, missing Date / Message-ID added (RFC 6409 §8.2–8.3);
//  - commit: usage rows, Core.deliver (one transaction: local copies + remote queue items), then
//    the sending mailbox's activity and the absence replies of local recipients.
// A refusal is a SubmissionRefusal carrying the SMTP reply code, the enhanced status code
// (RFC 3463) and an English text; `kind` lets the web API word it in French.
import { randomBytes } from 'node:crypto';
import type { Headers } from '@zone-eu/mailsplit';
import addressparser from 'nodemailer/lib/addressparser';
import type { Logger } from 'pino';
import type { Core, Mailbox, User } from '../core/index.js';
import type { TrustService } from '../trust/index.js';
import type { AbsenceResponder } from '../policy/absence-service.js';
import type { ContentPolicy, ContentSender } from '../policy/content-service.js';
import { replyText } from '../policy/content.js';
import type { UsageMeter } from '../audit/usage.js';
import { rfc5322Date } from '../mime/date.js';
import type { DeliveredCopy, DeliveryRequest, DeliveryResult, NewQueueItem } from '../store/types.js';
import { trackingFields } from '../mime/report.js';
import { patientReplyText } from '../policy/patients.js';
import type { PatientPolicy } from '../policy/patient-service.js';
import type { TraceOrigin } from '../core/index.js';

export type RefusalKind = 'sender' | 'no-from' | 'no-such-mailbox' | 'suspended' | 'outside-trust-space' | 'content' | 'temporary' | 'patient' | 'mss-header' | 'size';

/** A refusal of the pipeline: SMTP code + RFC 3463 enhanced code + English text. */
export class SubmissionRefusal extends Error {
  override name = 'SubmissionRefusal';
  constructor(
    readonly code: number,
    readonly enhanced: string,
    text: string,
    readonly kind: RefusalKind,
    /** The recipient concerned, for a recipient refusal. */
    readonly address?: string,
    /** The reason in French, for what a health professional reads (the web API), when the rule has one. */
    readonly detail?: string,
  ) {
    super(text);
  }
}

export interface SubmissionPipelineOptions {
  core: Core;
  trust: Pick<TrustService, 'isTrustedDomain'>;
  hostname: string;
  logger: Logger;
  absence?: Pick<AbsenceResponder, 'afterDelivery'>;
  content?: ContentPolicy;
  usage?: UsageMeter;
  /** Patients (Mon espace santé) and the X-MSS-* fields (policy/patient-service.ts). */
  patients?: PatientPolicy;
}

/** Who submits, as what: set once the envelope sender is accepted. */
export interface Submitter {
  user: User;
  senderMailboxId: number;
  /** The MAIL FROM mailbox, whose type and address set the content policy's limits. */
  sender: ContentSender;
}

export interface AcceptedRecipient {
  address: string;
  /** Local mailbox id, or the remote domain. */
  local?: number;
  domain?: string;
  notify: NewQueueItem['notify'];
  orcpt: string | null;
}

/** The addresses of an address-list header value (groups flattened). */
export function addressesIn(value: string): string[] {
  const out: string[] = [];
  const walk = (list: any[]) => {
    for (const a of list) {
      if (a.group) walk(a.group);
      else if (a.address) out.push(a.address);
    }
  };
  walk(addressparser(value) as any[]);
  return out;
}

const contentRefusal = (r: { code: number; enhanced: string } & Parameters<typeof replyText>[0]) => new SubmissionRefusal(r.code, r.enhanced, replyText(r), 'content');

export class SubmissionPipeline {
  constructor(readonly o: SubmissionPipelineOptions) {}

  /** MAIL FROM: may `user` send as `address`? */
  async checkEnvelopeSender(user: User, address: string): Promise<Submitter> {
    if (!address) throw new SubmissionRefusal(550, '5.7.1', 'the null sender <> cannot be used for submission', 'sender');
    const d = await this.o.core.maySendAs(user, address);
    if (!d.ok) throw new SubmissionRefusal(550, '5.7.1', d.reason, 'sender');
    return { user, senderMailboxId: d.mailbox.id, sender: { address: d.mailbox.address, type: d.mailbox.type } };
  }

  /**
   * RCPT TO: the recipient's fate (local mailbox state, trust space for a remote domain), then
   * the content policy's limits for a recipient that would otherwise be accepted (`accepted`:
   * how many were accepted before it in this message).
   */
  async checkRecipient(
    s: Submitter,
    address: string,
    dsn: { notify?: NewQueueItem['notify']; orcpt?: string | null },
    accepted: number,
    sessionId: string,
    /** RFC 1870 SIZE declared at MAIL FROM, when there was one. */
    declaredSize?: number,
  ): Promise<AcceptedRecipient> {
    const base = { address, notify: dsn.notify ?? null, orcpt: dsn.orcpt ?? null };
    // Patients (docs/patients.md): INS address (553 5.1.3), declared size towards patients, the
    // stand-in's conversation rule; then the usual resolution.
    if (this.o.patients) {
      const p = await this.o.patients.checkRecipient(address, { address: s.sender.address, mailboxId: s.senderMailboxId }, declaredSize, sessionId).catch((e) => {
        this.o.logger.error({ err: e }, 'patient recipient check failed');
        throw new SubmissionRefusal(451, '4.3.0', 'temporary failure checking the recipient', 'temporary', address);
      });
      if (p) throw new SubmissionRefusal(p.code, p.enhanced, patientReplyText(p), 'patient', address, p.text);
    }
    const r = await this.o.core.resolveRecipient(address);
    let rcpt: AcceptedRecipient;
    switch (r.kind) {
      case 'local':
        rcpt = { ...base, local: r.mailbox.id };
        break;
      case 'unknown':
      case 'deleted':
        throw new SubmissionRefusal(550, '5.1.1', `${address}: no such mailbox`, 'no-such-mailbox', address);
      case 'suspended':
        throw new SubmissionRefusal(450, '4.2.1', `${address}: mailbox temporarily suspended`, 'suspended', address);
      case 'remote':
        if (!this.o.trust.isTrustedDomain(r.domain))
          throw new SubmissionRefusal(
            550,
            '5.7.1',
            `${r.domain} is outside the MSSanté trust space (not in the liste blanche): MSSanté mail can only be sent to MSSanté addresses`,
            'outside-trust-space',
            address,
          );
        rcpt = { ...base, domain: r.domain };
        break;
    }
    // Medical-only content: the per-message and per-day recipient limits (the reply names the rule).
    if (this.o.content) {
      const refusal = await this.o.content.checkRecipient(s.user, s.sender, accepted, sessionId).catch((e) => {
        this.o.logger.error({ err: e }, 'recipient limit check failed');
        throw new SubmissionRefusal(451, '4.3.0', 'temporary failure checking the recipient limits', 'temporary', address);
      });
      if (refusal) throw new SubmissionRefusal(refusal.code, refusal.enhanced, replyText(refusal), 'content', address);
    }
    return rcpt;
  }

  /**
   * The submitted header, changed in place: every From: author must be a mailbox the user may
   * send as; Sender: names the user's own mailbox when sending on behalf; bulk refused; Date and
   * Message-ID added when missing. `header`: the raw header block (for the bulk check).
   */
  async prepareHeader(s: Submitter, headers: Headers, header: Buffer, sessionId: string, recipients: string[]): Promise<{ onBehalf: boolean; sender: Mailbox | null }> {
    // RFC 5322 §3.6: From is required. Every author must be a mailbox the user may send as.
    const fromValue = headers.getFirst('from');
    const authors = fromValue ? addressesIn(fromValue) : [];
    if (authors.length === 0) throw new SubmissionRefusal(550, '5.6.0', 'the message has no From: header with an address (RFC 5322 §3.6.2)', 'no-from');
    let onBehalf = false;
    let allApp = true;
    for (const a of authors) {
      const d = await this.o.core.maySendAs(s.user, a);
      if (!d.ok) throw new SubmissionRefusal(550, '5.7.1', `From: ${d.reason}`, 'sender');
      onBehalf ||= d.onBehalf;
      allApp &&= d.mailbox.type === 'APP';
    }
    let sender: Mailbox | null = null;
    // RFC 5322 §3.6.2: when the author is not the agent sending, Sender names the agent.
    if (onBehalf || authors.length > 1) {
      const own = await this.o.core.primaryMailboxOf(s.user);
      // Software holding the send grant on an APP mailbox (an API client, docs/software-api.md)
      // has no mailbox of its own: it is the application's agent, the APP mailbox the author.
      if (!own && allApp && authors.length === 1) return this.finishHeader(s, headers, header, sessionId, recipients, { onBehalf, sender: null });
      if (!own) throw new SubmissionRefusal(550, '5.7.1', `${s.user.login} has no mailbox of their own to appear as Sender: of a message sent on behalf of ${authors[0]}`, 'sender');
      headers.update('Sender', own.address);
      sender = own;
    } else if (headers.hasHeader('sender')) {
      headers.remove('sender');
    }
    return this.finishHeader(s, headers, header, sessionId, recipients, { onBehalf, sender });
  }

  private finishHeader(s: Submitter, headers: Headers, header: Buffer, sessionId: string, recipients: string[], r: { onBehalf: boolean; sender: Mailbox | null }): { onBehalf: boolean; sender: Mailbox | null } {
    if (!r.sender && headers.hasHeader('sender')) headers.remove('sender');
    // Medical-only content: no mass mailing from a person (550 5.7.1 naming the rule).
    const bulk = this.o.content?.checkSubmittedHeader(header, s.sender, s.user, sessionId);
    if (bulk) throw contentRefusal(bulk);
    // X-MSS-* fields' syntax, X-MSS-MES: FIN only towards patients (ANS ECO.2.4.x; 550 5.6.0).
    const mss = this.o.patients?.checkHeader(header, recipients, sessionId);
    if (mss) throw new SubmissionRefusal(mss.code, mss.enhanced, patientReplyText(mss), 'mss-header', undefined, mss.text);
    // RFC 6409 §8.2–8.3: the submission server may add a missing Date and Message-ID.
    if (!headers.hasHeader('date')) headers.add('Date', rfc5322Date(), Infinity);
    if (!headers.hasHeader('message-id')) headers.add('Message-ID', `<${randomBytes(12).toString('hex')}@${this.o.hostname}>`, Infinity);
    return r;
  }

  /** The size limit towards patients (552 5.3.4 naming it), checked before anything is committed. */
  checkSize(size: number, recipients: string[], sessionId: string): void {
    const tooBig = this.o.patients?.checkSize(size, recipients, sessionId);
    if (tooBig) throw new SubmissionRefusal(tooBig.code, tooBig.enhanced, patientReplyText(tooBig), 'size', undefined, tooBig.text);
  }

  /**
   * Commits the stored message file for its recipients (Core.deliver: local copies and remote
   * queue items in one transaction), then the activity and absence replies. Resolves only once
   * committed: the caller acknowledges (250, 201) after this.
   */
  async commit(m: {
    submitter: Submitter;
    rcpts: AcceptedRecipient[];
    blob: { id: string; size: number };
    envelopeFrom: string;
    ret?: 'FULL' | 'HDRS' | null;
    envid?: string | null;
    origin: TraceOrigin;
    sessionId: string;
    /** The sender's copy (Sent), committed with the delivery. */
    senderCopy?: DeliveryRequest['senderCopy'];
    /** The message's header block as stored: Message-ID and Subject for its delivery tracking. */
    header: Buffer;
    /** The mail API request's Idempotency-Key and answer, committed with the message (http/sending.ts). */
    idempotency?: DeliveryRequest['idempotency'];
  }): Promise<DeliveryResult> {
    const { submitter: s, rcpts } = m;
    const localIds = rcpts.filter((r) => r.local !== undefined).map((r) => r.local!);
    const usage = await this.o.usage?.submitted({
      blobId: m.blob.id,
      senderMailboxId: s.senderMailboxId,
      localMailboxIds: localIds,
      remoteRecipients: rcpts.filter((r) => r.domain).map((r) => r.address),
    });
    const copies = await this.o.core
      .deliver(
        {
          blobId: m.blob.id,
          size: m.blob.size,
          internalDate: new Date(),
          envelopeFrom: m.envelopeFrom,
          localMailboxIds: localIds,
          remote: rcpts.filter((r) => r.domain).map((r) => ({ recipient: r.address, domain: r.domain!, notify: r.notify ?? null, orcpt: r.orcpt ?? null })),
          ret: m.ret ?? null,
          envid: m.envid ?? null,
          senderMailboxId: s.senderMailboxId,
          // Counted at commit, in the delivery's transaction: concurrent sessions cannot overshoot.
          dailyRecipients: this.o.content?.dailyCounter(s.user, s.sender, rcpts.length) ?? null,
          usage,
          senderCopy: m.senderCopy ?? null,
          // Delivery tracking (docs/receipts.md): recorded in the delivery's transaction.
          tracking: { ...trackingFields(m.header), userId: s.user.id },
          // A retried mail API request finds its answer, after a crash or on another process.
          idempotency: m.idempotency ?? null,
        },
        m.origin,
      )
      .catch((e) => {
        const refusal = this.o.content?.refusalFor(e, s.user, s.sender, m.sessionId);
        throw refusal ? contentRefusal(refusal) : e;
      });
    if (usage) this.o.usage!.committed(usage);
    // Golden rule 2: a message sent is activity of the sending mailbox (never its content).
    await this.o.core.recordActivity([s.senderMailboxId], 'sent');
    // Local recipients who are away answer after the commit, off the reply path.
    if (this.o.absence && localIds.length) {
      const absence = this.o.absence;
      setImmediate(() => void absence.afterDelivery({ blobId: m.blob.id, envelopeFrom: m.envelopeFrom, mailboxIds: localIds }));
    }
    return copies;
  }
}
