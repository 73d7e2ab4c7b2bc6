// Medical-only content at work: the submission server asks it about each RCPT and each message,
// the MX asks where bulk-looking mail goes. Decisions are in policy/content.ts; this adds the
// store (the daily counter), the message's header and the log of every refusal (rule, never
// content). docs/policy.md, "Medical-only content".
import type { Logger } from 'pino';
import { domainOf, type Mailbox, type User } from '../core/index.js';
import type { MessageFiles } from '../store/message-files.js';
import { DailyRecipientLimitError, type DeliveryRequest, type DeliveryStore } from '../store/types.js';
import { headerBlock } from './absence.js';
import {
  dailyLimitRefusal,
  decideRecipient,
  decideSubmittedContent,
  inboundFiling,
  parisDay,
  sendingLimits,
  type ContentRefusal,
  type ContentSettings,
  type SendingLimits,
} from './content.js';

const HEADER_READ_LIMIT = 256 * 1024;

export type ContentSender = Pick<Mailbox, 'address' | 'type'>;

export class ContentPolicy {
  private readonly log: Logger;

  constructor(
    private readonly o: {
      settings: ContentSettings;
      store: Pick<DeliveryStore, 'recipientsSentOn'>;
      blobs: MessageFiles;
      logger: Logger;
      now?: () => Date;
    },
  ) {
    this.log = o.logger.child({ component: 'content-policy' });
  }

  private now(): Date {
    return this.o.now?.() ?? new Date();
  }

  limits(sender: ContentSender): SendingLimits {
    return sendingLimits(sender, this.o.settings);
  }

  /** Whether the next RCPT of `user` sending as `sender` is accepted; `inMessage` already accepted. */
  async checkRecipient(user: User, sender: ContentSender, inMessage: number, session: string): Promise<ContentRefusal | null> {
    const sentToday = await this.o.store.recipientsSentOn(user.id, parisDay(this.now()));
    const r = decideRecipient({ inMessage, sentToday, limits: this.limits(sender) });
    if (r) this.refused(r, { session, user: user.login, senderDomain: domainOf(sender.address) });
    return r;
  }

  /** Whether the submitted message's header block is acceptable from `sender`. */
  checkSubmittedHeader(header: Buffer, sender: ContentSender, user: User, session: string): ContentRefusal | null {
    const r = decideSubmittedContent({ header, senderType: sender.type });
    if (r) this.refused(r, { session, user: user.login, senderDomain: domainOf(sender.address) });
    return r;
  }

  /** The DeliveryRequest field that counts `count` recipients against the user's daily limit at commit. */
  dailyCounter(user: User, sender: ContentSender, count: number): NonNullable<DeliveryRequest['dailyRecipients']> {
    return { userId: user.id, day: parisDay(this.now()), count, limit: this.limits(sender).perDay };
  }

  /** When deliver() refused over the daily limit (a concurrent session used the rest): the refusal. */
  refusalFor(e: unknown, user: User, sender: ContentSender, session: string): ContentRefusal | null {
    if (!(e instanceof DailyRecipientLimitError)) return null;
    const r = dailyLimitRefusal(this.limits(sender));
    this.refused(r, { session, user: user.login, senderDomain: domainOf(sender.address), atCommit: true });
    return r;
  }

  /** Inbound: the filing of a stored message (its blob's header), or null for INBOX. */
  async inboundFiling(blobId: string, session: string, raw?: Buffer): Promise<DeliveryRequest['filing']> {
    // `raw`: the message's bytes when the caller holds them (the MX at intake), else read from the file.
    let prefix: Buffer;
    if (raw) prefix = raw.subarray(0, HEADER_READ_LIMIT);
    else {
      const chunks: Buffer[] = [];
      for await (const c of this.o.blobs.stream(blobId, { start: 0, end: HEADER_READ_LIMIT - 1 })) chunks.push(c as Buffer);
      prefix = Buffer.concat(chunks);
    }
    const f = inboundFiling(headerBlock(prefix), this.o.settings);
    if (!f) return null;
    this.log.info({ session, markers: f.markers, folder: f.folder }, 'inbound bulk-looking message filed out of INBOX');
    return { folder: f.folder, flags: f.flags };
  }

  private refused(r: ContentRefusal, ctx: Record<string, unknown>): void {
    this.log.info({ ...ctx, rule: r.rule, code: `${r.code} ${r.enhanced}` }, 'content policy refusal');
  }
}
