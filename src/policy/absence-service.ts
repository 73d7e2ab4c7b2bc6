// Golden rule 3 at work: the absence settings of a mailbox (who may set them, what is accepted)
// and the responder that answers delivered messages. Acts through Core and the store interface;
// the MX and submission call the responder after their commit (docs/policy.md).
import type { Logger } from 'pino';
import { CoreError, isValidAddress, type Core, type Mailbox, type TraceOrigin, type User } from '../core/index.js';
import type { MessageFiles } from '../store/message-files.js';
import type { AbsenceSettings } from '../store/types.js';
import type { RuleNotices } from '../audit/metrics.js';
import { replyTarget, sendAutomaticReply } from './automatic-reply.js';
import { buildAbsenceReply, DAY_MS, decideAbsenceReply, DEFAULT_PERIOD_DAYS, headerBlock, MIN_PERIOD_DAYS } from './absence.js';

/** Who changes an absence: a user (owner or `manage` delegate, decided by Core), or the operator's administrator (CLI). */
export type AbsenceActor = { user: User; remote?: string | null } | { administrator: string };

export interface AbsenceInput {
  /** ISO 8601 date-time; absent or null: from now on. */
  startsAt?: string | null;
  /** ISO 8601 date-time; absent or null: until cleared. */
  endsAt?: string | null;
  subject?: string | null;
  body?: string | null;
  externalBody?: string | null;
  substitute?: string | null;
}

/** An absence as shown to users and the API. */
export interface AbsenceView extends Omit<AbsenceSettings, 'mailboxId'> {
  mailbox: string;
  /** Whether replies go out now (inside the period). */
  active: boolean;
}

/** Absence settings change on the web (a user) or at the command line (the administrator). */
function traceOrigin(actor: AbsenceActor): TraceOrigin {
  return 'user' in actor ? { protocol: 'web', user: actor.user, remote: actor.remote ?? null } : { protocol: 'cli', actor: actor.administrator };
}

const MAX_SUBJECT = 200;
const MAX_TEXT = 10_000;

function parseInstant(v: string | null | undefined, what: string): string | null {
  if (v === undefined || v === null || v === '') return null;
  // ISO 8601 with a time zone (or a plain date, taken at midnight UTC) so the instant is unambiguous.
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(v))
    throw new CoreError(`${what} ${JSON.stringify(v)} is not an ISO 8601 date-time: write e.g. 2026-12-24T18:00:00+01:00 or 2026-12-24`);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new CoreError(`${what} ${JSON.stringify(v)} is not a valid date`);
  return new Date(t).toISOString();
}

function text(v: string | null | undefined, what: string, max: number, oneLine = false): string | null {
  if (v === undefined || v === null || v.trim() === '') return null;
  if (v.length > max) throw new CoreError(`${what} is ${v.length} characters long: at most ${max}`);
  if (oneLine && /[\r\n]/.test(v)) throw new CoreError(`${what} must fit on one line`);
  return oneLine ? v.trim() : v;
}

/** Settings: read, set, clear — each time the mailbox's administrators only (Core decides). */
export class AbsenceSettingsService {
  constructor(
    private readonly o: {
      core: Core;
      /** Whether the national directory lists `address` (a substitute at another operator). */
      directoryKnows?: (address: string) => Promise<boolean>;
      now?: () => Date;
    },
  ) {}

  private async mailbox(actor: AbsenceActor, address: string): Promise<Mailbox> {
    if ('user' in actor) return this.o.core.requireAdministered(actor.user, address);
    const m = await this.o.core.requireMailbox(address);
    if (m.state === 'deleted') throw new CoreError(`${address} is deleted: it receives no mail and needs no absence message`);
    return m;
  }

  view(m: Mailbox, s: AbsenceSettings): AbsenceView {
    const { mailboxId: _id, ...rest } = s;
    const t = (this.o.now?.() ?? new Date()).getTime();
    const active = (!s.startsAt || t >= Date.parse(s.startsAt)) && (!s.endsAt || t < Date.parse(s.endsAt));
    return { mailbox: m.address, ...rest, active };
  }

  async get(actor: AbsenceActor, address: string): Promise<AbsenceView | undefined> {
    const m = await this.mailbox(actor, address);
    const s = await this.o.core.store.getAbsence(m.id);
    return s && this.view(m, s);
  }

  async set(actor: AbsenceActor, address: string, input: AbsenceInput): Promise<AbsenceView> {
    const m = await this.mailbox(actor, address);
    const startsAt = parseInstant(input.startsAt, 'start');
    const endsAt = parseInstant(input.endsAt, 'end');
    if (startsAt && endsAt && endsAt <= startsAt) throw new CoreError(`the end (${endsAt}) must come after the start (${startsAt})`);
    if (endsAt && Date.parse(endsAt) <= (this.o.now?.() ?? new Date()).getTime()) throw new CoreError(`the end (${endsAt}) is already past: no message would ever be answered`);
    const substitute = await this.checkSubstitute(m, input.substitute);
    const s = await this.o.core.store.setAbsence({
      mailboxId: m.id,
      startsAt,
      endsAt,
      subject: text(input.subject, 'the subject', MAX_SUBJECT, true),
      body: text(input.body, 'the text', MAX_TEXT),
      externalBody: text(input.externalBody, 'the text for senders outside the structure', MAX_TEXT),
      substitute,
      updatedBy: 'user' in actor ? actor.user.login : `${actor.administrator} (command line)`,
    });
    // Functional trace: the period and whether a substitute is named — never the texts or the substitute's address.
    await this.o.core.trace(m, 'absence-set', traceOrigin(actor), { startsAt: s.startsAt, endsAt: s.endsAt, substitute: s.substitute !== null });
    return this.view(m, s);
  }

  async clear(actor: AbsenceActor, address: string): Promise<boolean> {
    const m = await this.mailbox(actor, address);
    const had = await this.o.core.store.clearAbsence(m.id);
    if (had) await this.o.core.trace(m, 'absence-cleared', traceOrigin(actor));
    return had;
  }

  /** "Pendant mon absence, écrivez à …": a mailbox of the trust space, never the absent one. */
  private async checkSubstitute(m: Mailbox, v: string | null | undefined): Promise<string | null> {
    const a = v?.trim();
    if (!a) return null;
    if (!isValidAddress(a)) throw new CoreError(`the substitute ${JSON.stringify(a)} is not a mail address`);
    if (a.toLowerCase() === m.address.toLowerCase()) throw new CoreError('the substitute must be another mailbox than the absent one');
    const r = await this.o.core.resolveRecipient(a);
    if (r.kind === 'local') return r.mailbox.address;
    if (r.kind !== 'remote') throw new CoreError(`the substitute ${a} is not an active mailbox of this operator (${r.kind})`);
    if (!this.o.directoryKnows || !(await this.o.directoryKnows(a)))
      throw new CoreError(`the substitute ${a} is not in the national directory (annuaire santé): give an MSSanté address listed there`);
    return a;
  }
}

export interface AbsenceResponderOptions {
  core: Core;
  blobs: MessageFiles;
  /** The trust space: replies go only to its domains (trust.isTrustedDomain). */
  trust: { isTrustedDomain(domain: string): boolean };
  hostname: string;
  /** At most one reply per sender per this many days (RFC 5230 §4.1: default 7, minimum 1). */
  periodDays?: number;
  logger: Logger;
  now?: () => Date;
  /** Counts each reply sent (metrics: rule notices, rule "absence"). */
  notices?: RuleNotices;
}

/** The first bytes of a message, enough for its header block (the rest is never read). */
const HEADER_READ_LIMIT = 256 * 1024;

/** Answers delivered messages for the mailboxes that are away (after the delivery's commit). */
export class AbsenceResponder {
  private readonly periodMs: number;
  private readonly log: Logger;

  constructor(private readonly o: AbsenceResponderOptions) {
    const days = o.periodDays ?? DEFAULT_PERIOD_DAYS;
    if (!(days >= MIN_PERIOD_DAYS)) throw new CoreError(`the absence reply period must be at least ${MIN_PERIOD_DAYS} day (RFC 5230 §4.1), not ${days}`);
    this.periodMs = days * DAY_MS;
    this.log = o.logger.child({ component: 'absence' });
  }

  /**
   * Called once a message is committed for local mailboxes: each one that is away may answer
   * the envelope sender. Never throws (errors are logged): the delivery is already acknowledged.
   */
  async afterDelivery(d: { blobId: string; envelopeFrom: string; mailboxIds: number[]; raw?: Buffer }): Promise<void> {
    let header: Buffer | undefined;
    for (const id of new Set(d.mailboxIds)) {
      try {
        const settings = await this.o.core.store.getAbsence(id);
        if (!settings) continue;
        const mailbox = await this.o.core.store.getMailbox(id);
        if (!mailbox || mailbox.state !== 'active') continue;
        header ??= d.raw ? headerBlock(d.raw.subarray(0, HEADER_READ_LIMIT)) : await this.readHeader(d.blobId);
        await this.answer(mailbox, settings, d.envelopeFrom, header);
      } catch (e: any) {
        this.log.error({ err: e?.message ?? String(e), mailboxId: id }, 'absence reply failed');
      }
    }
  }

  private async readHeader(blobId: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of this.o.blobs.stream(blobId, { start: 0, end: HEADER_READ_LIMIT - 1 })) chunks.push(c as Buffer);
    return headerBlock(Buffer.concat(chunks));
  }

  private async answer(mailbox: Mailbox, settings: AbsenceSettings, envelopeFrom: string, header: Buffer): Promise<void> {
    const now = this.o.now?.() ?? new Date();
    const store = this.o.core.store;
    const sender = envelopeFrom.trim().toLowerCase();
    const decision = decideAbsenceReply({
      window: settings,
      mailbox: mailbox.address,
      envelopeFrom,
      header,
      now,
      lastReplyAt: sender ? await store.lastAbsenceReply(mailbox.id, sender) : undefined,
      periodMs: this.periodMs,
    });
    if (!decision.reply) {
      this.log.debug({ mailboxId: mailbox.id, reason: decision.reason }, 'no absence reply');
      return;
    }
    // Where the reply can go: a local mailbox, or a domain of the trust space (never outside it).
    const target = await replyTarget(this.o.core, this.o.trust, decision.sender);
    if ('refused' in target) {
      this.log.info({ mailboxId: mailbox.id, reason: target.refused, detail: target.detail }, 'no absence reply: the sender cannot get one');
      return;
    }
    // Claimed before sending: two deliveries racing for one sender yield one reply; a failure
    // after the claim loses this reply rather than risking two (RFC 3834 §2: avoid excess).
    if (!(await store.claimAbsenceReply(mailbox.id, decision.sender, now.getTime(), now.getTime() - this.periodMs))) return;
    const inside = target.kind === 'local' && mailbox.structureId !== null && target.mailbox.structureId === mailbox.structureId;
    const raw = await buildAbsenceReply({
      mailbox,
      to: decision.sender,
      originalHeader: header,
      settings: {
        subject: settings.subject,
        text: inside ? settings.body : (settings.externalBody ?? settings.body),
        endsAt: settings.endsAt,
        substitute: settings.substitute,
      },
      hostname: this.o.hostname,
      date: now,
    });
    await sendAutomaticReply(this.o, raw, decision.sender, target, now);
    this.o.notices?.noticeSent('absence');
    this.log.info({ mailboxId: mailbox.id, to: target.kind }, 'absence reply sent');
  }
}

