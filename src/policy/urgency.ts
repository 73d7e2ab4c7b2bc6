// Golden rule 4 at work: the service is not for urgent information. A delivered message that
// carries urgency markers, for a recipient who is away (rule 3) or behind on reading (rule 1),
// gets at once an automatic answer to its sender (RFC 3834, the same decision as absence
// replies) saying it will not be read soon and that urgent matters need a phone call. The
// composer's check (POST /api/v1/compose/check) asks the same questions before sending.
import type { Logger } from 'pino';
import { simpleParser } from 'mailparser';
import { type Core, type Mailbox } from '../core/index.js';
import type { MessageFiles } from '../store/message-files.js';
import type { AbsenceSettings } from '../store/types.js';
import type { MessageInfo, Part } from '../mime/types.js';
import { DAY_MS, decideAbsenceReply, headerBlock } from './absence.js';
import { replyTarget, sendAutomaticReply } from './automatic-reply.js';
import { buildUrgencyReply, urgencyMarkers, urgencyReplyText } from './rules.js';

/** Why a mailbox will not read a message soon. */
export type NotReadSoon = { reason: 'absent'; until: string | null; substitute: string | null } | { reason: 'unread'; substitute: string | null };

export interface UrgencyOptions {
  core: Core;
  blobs: MessageFiles;
  trust: { isTrustedDomain(domain: string): boolean };
  hostname: string;
  /** Whether the mailbox has mail unread beyond its reading threshold now (RulesEngine). */
  behindOnReading: (m: Mailbox, now: Date) => Promise<boolean>;
  /** At most one answer per sender and mailbox per this many days. */
  periodDays: number;
  logger: Logger;
  now?: () => Date;
}

/** The first bytes of a message: its header and its first lines (the rest is never read). */
const READ_LIMIT = 64 * 1024;

/**
 * A message committed for local mailboxes, for the answers after the commit (urgency, absence).
 * `raw` and `info`: its bytes and analysis when the caller holds them (the MX at intake), so the
 * file is not read again.
 */
export interface DeliveredMessage {
  blobId: string;
  envelopeFrom: string;
  mailboxIds: number[];
  raw?: Buffer;
  info?: MessageInfo;
}

const PARSE_OPTIONS = { skipHtmlToText: false, skipImageLinks: true, skipTextLinks: true } as const;

/**
 * The urgency markers of a message from its first bytes `head` (urgencyMarkers: the subject and
 * the first lines of the text as mailparser decodes them, the priority fields). With the
 * message's analysis, mailparser reads only up to the last text/* or message/* part: the parts
 * after it (attachments: images, PDF, base64 of any size) never add to the text, and decoding
 * them was most of the cost at intake. Same markers as a parse of the whole head (test:
 * src/policy/urgency.test.ts).
 */
export async function messageUrgencyMarkers(head: Buffer, info?: MessageInfo): Promise<string[]> {
  const header = headerBlock(head);
  const parsed = await simpleParser(info ? textBearingPrefix(head, header, info) : head, PARSE_OPTIONS).catch(() => undefined);
  return urgencyMarkers({ subject: parsed?.subject, text: parsed?.text ?? '', header });
}

/**
 * `head` cut before the leaf parts that follow its last text/* or message/* part: at the CRLF
 * that opens the boundary delimiter of the first of them (RFC 2046 §5.1.1: that CRLF belongs to
 * the delimiter, so the text part before keeps its exact body). No such part: the header alone.
 */
export function textBearingPrefix(head: Buffer, header: Buffer, info: MessageInfo): Buffer {
  const leaves: { part: Part; boundary?: string }[] = [];
  const walk = (p: Part, boundary?: string) => {
    if (p.children?.length) {
      const b = p.params.find(([k]) => k.toLowerCase() === 'boundary')?.[1];
      for (const c of p.children) walk(c, b);
    } else if (!p.children) leaves.push({ part: p, boundary });
  };
  walk(info.root);
  const inHead = leaves.filter((l) => l.part.headerStart < head.length);
  let last = -1;
  inHead.forEach((l, k) => {
    const type = l.part.type.toLowerCase();
    if (type === 'text' || type === 'message') last = k;
  });
  if (last < 0) return header;
  const next = inHead[last + 1];
  if (!next) return head;
  // The delimiter line ends where the next part's header starts. Cut only at an exact one,
  // "--" boundary and transport padding (RFC 2046 §5.1.1), which every parser reads alike: a
  // looser line (read as a delimiter by one parser, as text by another) keeps the whole head.
  const lineStart = head.lastIndexOf(0x0a, next.part.headerStart - 2) + 1;
  if (lineStart <= 0 || next.boundary === undefined) return head;
  const line = head.toString('latin1', lineStart, next.part.headerStart).replace(/\r?\n$/, '');
  if (!/^[ \t]*$/.test(line.slice(2 + next.boundary.length)) || line.slice(0, 2 + next.boundary.length) !== `--${next.boundary}`) return head;
  const cut = head[lineStart - 2] === 0x0d ? lineStart - 2 : lineStart - 1;
  return head.subarray(0, cut);
}

const inWindow = (s: AbsenceSettings, t: number) => (!s.startsAt || t >= Date.parse(s.startsAt)) && (!s.endsAt || t < Date.parse(s.endsAt));

export class UrgencyResponder {
  private readonly log: Logger;

  constructor(private readonly o: UrgencyOptions) {
    this.log = o.logger.child({ component: 'urgency' });
  }

  /** Whether `m` will not read a message soon, and why: away (absence in force), or mail unread beyond the threshold. */
  async notReadSoon(m: Mailbox, now: Date): Promise<NotReadSoon | undefined> {
    const absence = await this.o.core.store.getAbsence(m.id);
    if (absence && inWindow(absence, now.getTime())) return { reason: 'absent', until: absence.endsAt, substitute: absence.substitute };
    if (await this.o.behindOnReading(m, now)) return { reason: 'unread', substitute: absence?.substitute ?? null };
    return undefined;
  }

  /**
   * Called once a message is committed for local mailboxes (before the absence responder, which
   * then stays silent for a sender answered here). Never throws: the delivery is acknowledged.
   */
  async afterDelivery(d: DeliveredMessage): Promise<void> {
    let markers: string[] | undefined;
    let header: Buffer | undefined;
    for (const id of new Set(d.mailboxIds)) {
      try {
        const now = this.o.now?.() ?? new Date();
        if (!markers) {
          const head = d.raw ? d.raw.subarray(0, READ_LIMIT) : await this.readStart(d.blobId);
          header = headerBlock(head);
          markers = await messageUrgencyMarkers(head, d.info);
        }
        if (!markers.length) return;
        const m = await this.o.core.store.getMailbox(id);
        if (!m || m.state !== 'active') continue;
        const why = await this.notReadSoon(m, now);
        if (!why) continue;
        await this.answer(m, why, d.envelopeFrom, header!, now);
      } catch (e: any) {
        this.log.error({ err: e?.message ?? String(e), mailboxId: id }, 'urgency answer failed');
      }
    }
  }

  private async readStart(blobId: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of this.o.blobs.stream(blobId, { start: 0, end: READ_LIMIT - 1 })) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  private async answer(m: Mailbox, why: NotReadSoon, envelopeFrom: string, header: Buffer, now: Date): Promise<void> {
    const store = this.o.core.store;
    // The RFC 3834 §2 / RFC 5230 §4 checks of absence replies, in force at all times here.
    const decision = decideAbsenceReply({ window: { startsAt: null, endsAt: null }, mailbox: m.address, envelopeFrom, header, now, periodMs: this.o.periodDays * DAY_MS });
    if (!decision.reply) {
      this.log.debug({ mailboxId: m.id, reason: decision.reason }, 'no urgency answer');
      return;
    }
    const target = await replyTarget(this.o.core, this.o.trust, decision.sender);
    if ('refused' in target) return;
    // Claimed before sending (at most one per sender per period); a sender answered here gets no
    // absence reply for this message as well (one automatic answer, RFC 3834 §2: avoid excess).
    if (!(await store.claimUrgencyReply(m.id, decision.sender, now.getTime(), now.getTime() - this.o.periodDays * DAY_MS))) return;
    if (why.reason === 'absent') await store.claimAbsenceReply(m.id, decision.sender, now.getTime(), Number.MAX_SAFE_INTEGER);
    const raw = await buildUrgencyReply({
      mailbox: m,
      to: decision.sender,
      originalHeader: header,
      text: urgencyReplyText({ mailbox: m.address, reason: why.reason, until: why.reason === 'absent' ? why.until : null, substitute: why.substitute }),
      hostname: this.o.hostname,
      date: now,
    });
    await sendAutomaticReply(this.o, raw, decision.sender, target, now);
    this.log.info({ mailboxId: m.id, reason: why.reason, to: target.kind }, 'urgency answer sent');
  }
}
