// Golden rules 1 and 2 at work (docs/policy.md): the reading guard (notices about unread mail)
// and unused addresses (warning, suspension, deletion with a final export and unpublication).
// `run(now)` applies both once and is idempotent per Paris day; the operator calls it on a
// timer, `caducee rules run` from the command line. Acts through Core and the store interface;
// every notice goes through Core.deliver like any message (local INBOX, or the outbound queue).
import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { Headers } from '@zone-eu/mailsplit';
import libmime from 'libmime';
import type { Logger } from 'pino';
import { CoreError, domainOf, type Core, type Mailbox, type User } from '../core/index.js';
import type { MessageFiles } from '../store/message-files.js';
import type { MailboxActivity, RuleNotice } from '../store/types.js';
import { DAY_MS, headerBlock } from './absence.js';
import { businessHoursBetween, parisDay } from './calendar.js';
import { buildNotice, readingAudiences, readingLevel, readingNoticeText, unusedNoticeText, unusedStep, type ReadingAudience } from './rules.js';

export interface RulesSettings {
  /** Sender of the notices; default ne-pas-repondre@<first operator domain>. */
  systemAddress: string;
  /** Administrators told about ORG mailboxes nobody reads and about unused mailboxes. */
  administrators: string[];
  readingThresholdHours: number;
  unusedDays: number;
  graceDays: number;
}

export interface RulesEngineOptions extends RulesSettings {
  core: Core;
  blobs: MessageFiles;
  hostname: string;
  /** Where final exports are written (dataDir/exports). */
  exportDir: string;
  /** Withdraws a deleted mailbox from the national directory (FHIR PATCH delete): wired by the caller. */
  unpublish?: (address: string) => Promise<{ published: boolean; detail: string }>;
  logger: Logger;
}

/** One mailbox as rules 1 and 2 see it at a given time. */
export interface RulesReportRow {
  mailbox: string;
  type: string;
  state: Mailbox['state'];
  /** Rule 1: unread messages waiting for longer than the threshold, the oldest's wait in business hours. */
  reading: { thresholdHours: number; overdue: number; oldestBusinessHours: number | null; level: number };
  /** Rule 2: the last use (login, read, sent, creation or objection) and the days since. */
  unused: { lastUse: string; idleDays: number; warnedAt: string | null; suspendedAt: string | null; step: string };
}

export interface RulesRunResult {
  at: string;
  readingNotices: { mailbox: string; level: number; to: string[] }[];
  unused: { mailbox: string; action: string }[];
  errors: { mailbox: string; error: string }[];
}

const HEADER_READ_LIMIT = 64 * 1024;
/** At most this many unread messages are listed in a notice. */
const NOTICE_LIST_LIMIT = 20;
const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

export class RulesEngine {
  private readonly log: Logger;

  constructor(private readonly o: RulesEngineOptions) {
    this.log = o.logger.child({ component: 'rules' });
  }

  get settings(): RulesSettings {
    const { systemAddress, administrators, readingThresholdHours, unusedDays, graceDays } = this.o;
    return { systemAddress, administrators, readingThresholdHours, unusedDays, graceDays };
  }

  private get store() {
    return this.o.core.store;
  }

  private threshold(a: MailboxActivity | undefined): number {
    return a?.readingThresholdHours ?? this.o.readingThresholdHours;
  }

  /** The last use of a mailbox: login, read, sent, objection — or its creation. */
  private lastUse(m: Mailbox, a: MailboxActivity | undefined): number {
    return Math.max(Date.parse(m.createdAt), a?.lastLoginAt ?? 0, a?.lastReadAt ?? 0, a?.lastSentAt ?? 0, a?.objectionAt ?? 0);
  }

  /** Rule 1 for one mailbox: its overdue unread messages and the escalation level. */
  async readingStatus(m: Mailbox, now: Date, a?: MailboxActivity) {
    const thresholdHours = this.threshold(a ?? (await this.store.getActivity(m.id)));
    const unread = await this.store.unreadMessages(m.id, 500);
    const overdue = unread.filter((u) => businessHoursBetween(Date.parse(u.internalDate), now) >= thresholdHours);
    const oldestBusinessHours = unread.length ? businessHoursBetween(Date.parse(unread[0].internalDate), now) : null;
    return { thresholdHours, overdue, oldestBusinessHours, level: readingLevel(oldestBusinessHours ?? 0, thresholdHours) };
  }

  /** What rules 1 and 2 see now, every mailbox not deleted. */
  async report(now: Date): Promise<RulesReportRow[]> {
    const rows: RulesReportRow[] = [];
    let n = 0;
    for (const m of await this.store.listMailboxes()) {
      if (m.state === 'deleted') continue;
      if (++n % 16 === 0) await yieldToClients();
      const a = await this.store.getActivity(m.id);
      const r = await this.readingStatus(m, now, a);
      const lastUse = this.lastUse(m, a);
      const step = unusedStep({ state: m.state, lastUse, warnedAt: a?.unusedWarnedAt ?? null, suspendedAt: a?.suspendedAt ?? null, now: now.getTime(), days: this.o.unusedDays, graceDays: this.o.graceDays });
      rows.push({
        mailbox: m.address,
        type: m.type,
        state: m.state,
        reading: { thresholdHours: r.thresholdHours, overdue: r.overdue.length, oldestBusinessHours: r.oldestBusinessHours === null ? null : Math.round(r.oldestBusinessHours * 10) / 10, level: r.level },
        unused: {
          lastUse: new Date(lastUse).toISOString(),
          idleDays: Math.floor((now.getTime() - lastUse) / DAY_MS),
          warnedAt: iso(a?.unusedWarnedAt ?? null),
          suspendedAt: iso(a?.suspendedAt ?? null),
          step: step.step,
        },
      });
    }
    return rows;
  }

  /** Applies rules 1 and 2 once, as of `now`. Idempotent per Paris day; one mailbox's failure does not stop the others. */
  async run(now: Date = new Date()): Promise<RulesRunResult> {
    const result: RulesRunResult = { at: now.toISOString(), readingNotices: [], unused: [], errors: [] };
    let n = 0;
    for (const m of await this.store.listMailboxes()) {
      if (m.state === 'deleted') continue;
      if (++n % 16 === 0) await yieldToClients();
      try {
        const a = await this.store.getActivity(m.id);
        const action = await this.applyUnused(m, a, now);
        if (action) result.unused.push({ mailbox: m.address, action });
        if (m.state === 'active' && action !== 'suspended') {
          const sent = await this.applyReading(m, a, now);
          if (sent) result.readingNotices.push({ mailbox: m.address, ...sent });
        }
      } catch (e: any) {
        result.errors.push({ mailbox: m.address, error: e?.message ?? String(e) });
        this.log.error({ mailboxId: m.id, err: e?.message ?? String(e) }, 'golden rules: mailbox not processed');
      }
    }
    this.log.info({ reading: result.readingNotices.length, unused: result.unused.length, errors: result.errors.length }, 'golden rules applied');
    return result;
  }

  // ---- rule 1 ---------------------------------------------------------------------------------

  private async applyReading(m: Mailbox, a: MailboxActivity | undefined, now: Date): Promise<{ level: number; to: string[] } | undefined> {
    const r = await this.readingStatus(m, now, a);
    if (r.level === 0 || !r.overdue.length) return undefined;
    const owner = m.ownerUserId !== null ? await this.store.getUser(m.ownerUserId) : undefined;
    const delegates: User[] = [];
    for (const g of await this.store.listGrants({ mailboxId: m.id })) {
      if (!g.rights.includes('read') && !g.rights.includes('manage')) continue;
      const u = await this.store.getUser(g.userId);
      if (u && u.state === 'active') delegates.push(u);
    }
    const hasReaders = (!!owner && owner.state === 'active') || delegates.length > 0;
    const audiences = readingAudiences(r.level, { type: m.type, hasReaders });
    const to = await this.recipients(audiences, owner, delegates);
    if (!to.length) return undefined;
    // At most one notice per mailbox per (Paris) day: claimed before it is built and sent.
    const day = parisDay(now);
    if (!(await this.store.claimRuleNotice({ mailboxId: m.id, kind: 'reading', day, level: r.level, sentAt: now.getTime() }))) return undefined;
    const listed = await Promise.all(r.overdue.slice(0, NOTICE_LIST_LIMIT).map(async (u) => ({ from: await this.senderOf(u.blobId), date: u.internalDate })));
    const raw = await buildNotice({
      from: this.o.systemAddress,
      to,
      subject: `Messages non lus dans ${m.address}`,
      text: readingNoticeText({ mailbox: m.address, thresholdHours: r.thresholdHours, unread: listed, more: r.overdue.length - listed.length, level: r.level }),
      hostname: this.o.hostname,
      date: now,
    });
    await this.send(m, 'reading', day, raw, to, now);
    this.log.info({ mailboxId: m.id, level: r.level, recipients: to.length }, 'reading notice sent');
    return { level: r.level, to };
  }

  /** The addresses of an audience: a user's own active mailbox; administrators as configured (and manage delegates). */
  private async recipients(audiences: ReadingAudience[], owner: User | undefined, delegates: User[]): Promise<string[]> {
    const out = new Set<string>();
    const mailboxOf = async (u: User) => (await this.o.core.primaryMailboxOf(u))?.address;
    if (audiences.includes('owner') && owner && owner.state === 'active') {
      const a = await mailboxOf(owner);
      if (a) out.add(a);
    }
    if (audiences.includes('delegates'))
      for (const u of delegates) {
        const a = await mailboxOf(u);
        if (a) out.add(a);
      }
    if (audiences.includes('administrators')) for (const a of this.o.administrators) out.add(a);
    return [...out];
  }

  /** The From of a stored message, decoded, for a notice (the header only is read). */
  private async senderOf(blobId: string): Promise<string> {
    try {
      const chunks: Buffer[] = [];
      for await (const c of this.o.blobs.stream(blobId, { start: 0, end: HEADER_READ_LIMIT - 1 })) chunks.push(c as Buffer);
      const h = new Headers(headerBlock(Buffer.concat(chunks)));
      return libmime.decodeWords(h.getFirst('from')).replace(/[\r\n]+/g, ' ').trim() || '(expéditeur inconnu)';
    } catch {
      return '(expéditeur inconnu)';
    }
  }

  /** Delivers a notice from the system address (null MAIL FROM, RFC 3834 §3.3) through Core. */
  private async send(m: Mailbox, kind: RuleNotice['kind'], day: string, raw: Buffer, to: string[], now: Date): Promise<void> {
    const local: number[] = [];
    const remote: { recipient: string; domain: string; notify: ['NEVER']; orcpt: null }[] = [];
    for (const address of to) {
      const r = await this.o.core.resolveRecipient(address);
      if (r.kind === 'local') local.push(r.mailbox.id);
      else if (r.kind === 'remote') remote.push({ recipient: address, domain: domainOf(address), notify: ['NEVER'], orcpt: null });
    }
    const blob = await this.o.blobs.put(raw);
    try {
      // Recorded first: the notice never counts as unread mail in its recipients' INBOX.
      await this.store.setRuleNoticeBlob(m.id, kind, day, blob.id);
      await this.o.core.deliver({ blobId: blob.id, size: blob.size, internalDate: now, envelopeFrom: '', localMailboxIds: local, remote });
    } finally {
      blob.release();
    }
  }

  // ---- rule 2 ---------------------------------------------------------------------------------

  private async applyUnused(m: Mailbox, a: MailboxActivity | undefined, now: Date): Promise<string | undefined> {
    const lastUse = this.lastUse(m, a);
    const s = unusedStep({ state: m.state, lastUse, warnedAt: a?.unusedWarnedAt ?? null, suspendedAt: a?.suspendedAt ?? null, now: now.getTime(), days: this.o.unusedDays, graceDays: this.o.graceDays });
    switch (s.step) {
      case 'none':
        return undefined;
      case 'reset':
        await this.store.updateActivity(m.id, { unusedWarnedAt: null });
        return 'used again: warning withdrawn';
      case 'reactivate':
        await this.o.core.setMailboxState(m.address, 'active', { protocol: 'rules' });
        await this.store.updateActivity(m.id, { unusedWarnedAt: null, suspendedAt: null });
        this.log.info({ mailboxId: m.id }, 'unused mailbox used again: reactivated');
        return 'reactivated';
      case 'warn': {
        const day = parisDay(now);
        if (!(await this.store.claimRuleNotice({ mailboxId: m.id, kind: 'unused', day, level: 1, sentAt: now.getTime() }))) return undefined;
        await this.store.updateActivity(m.id, { unusedWarnedAt: now.getTime() });
        const owner = m.ownerUserId !== null ? await this.store.getUser(m.ownerUserId) : undefined;
        // The owner hears of it in the mailbox itself (that reading it counts as use is the point).
        const to = [...new Set([...(owner ? [m.address] : []), ...this.o.administrators])];
        if (to.length) {
          const raw = await buildNotice({
            from: this.o.systemAddress,
            to,
            subject: `Adresse inutilisée : ${m.address}`,
            text: unusedNoticeText({ mailbox: m.address, days: this.o.unusedDays, lastUse, suspendOn: now.getTime() + this.o.graceDays * DAY_MS }),
            hostname: this.o.hostname,
            date: now,
          });
          await this.send(m, 'unused', day, raw, to, now);
        }
        this.log.info({ mailboxId: m.id, recipients: to.length }, 'unused mailbox: owner and administrators warned');
        return 'warned';
      }
      case 'suspend':
        // MX then answers 450 4.2.1 (smtp/mx.ts): senders retry, nothing is lost while it is suspended.
        await this.o.core.setMailboxState(m.address, 'suspended', { protocol: 'rules' });
        await this.store.updateActivity(m.id, { suspendedAt: now.getTime() });
        this.log.info({ mailboxId: m.id }, 'unused mailbox suspended');
        return 'suspended';
    }
  }

  /** Rule 2: someone objects to the removal of a mailbox (the administrator, at the owner's request). */
  async object(address: string, now: Date = new Date()): Promise<void> {
    const m = await this.o.core.requireMailbox(address);
    if (m.state === 'deleted') throw new CoreError(`${address} is deleted: it cannot be kept any more`);
    await this.store.updateActivity(m.id, { objectionAt: now.getTime(), unusedWarnedAt: null });
    if (m.state === 'suspended' && (await this.store.getActivity(m.id))?.suspendedAt) {
      await this.o.core.setMailboxState(address, 'active', { protocol: 'rules' });
      await this.store.updateActivity(m.id, { suspendedAt: null });
    }
  }

  /** Rule 1: this mailbox's own reading threshold (business hours); null: back to the default. */
  async setThreshold(address: string, hours: number | null): Promise<number> {
    if (hours !== null && !(hours > 0 && hours <= 24 * 30)) throw new CoreError(`the reading threshold must be between 0 and 720 business hours, not ${hours}`);
    const m = await this.o.core.requireMailbox(address);
    return this.threshold(await this.store.updateActivity(m.id, { readingThresholdHours: hours }));
  }

  /**
   * Rule 2, on an administrator's confirmation: deletes a mailbox the rule suspended — a final
   * export (mbox) for its owner, then the deletion (its content is erased, the address never
   * reused; MX: 550 5.1.1 naming the substitute of its absence message, if any), then its
   * withdrawal from the national directory.
   */
  async deleteUnused(address: string, now: Date = new Date()): Promise<{ export: string; messages: number; substitute: string | null; unpublished: { published: boolean; detail: string } }> {
    const m = await this.o.core.requireMailbox(address);
    const a = await this.store.getActivity(m.id);
    if (m.state !== 'suspended' || !a?.suspendedAt)
      throw new CoreError(`${address} was not suspended by the unused-address rule (state ${m.state}): only such a mailbox is deleted here; see caducee rules report`);
    const exported = await this.exportMbox(m, now);
    const substitute = (await this.store.getAbsence(m.id))?.substitute ?? null;
    await this.store.updateActivity(m.id, { deletedSubstitute: substitute });
    await this.o.core.setMailboxState(address, 'deleted', { protocol: 'rules' });
    const unpublished = this.o.unpublish ? await this.o.unpublish(m.address) : { published: false, detail: 'no national directory endpoint configured (directory.publish.endpoint)' };
    this.log.info({ mailboxId: m.id, messages: exported.messages, unpublished: unpublished.published }, 'unused mailbox deleted');
    return { export: exported.file, messages: exported.messages, substitute, unpublished };
  }

  /** Every folder's messages in one mbox file (mboxrd: "From " lines quoted with ">"). */
  private async exportMbox(m: Mailbox, now: Date): Promise<{ file: string; messages: number }> {
    mkdirSync(this.o.exportDir, { recursive: true, mode: 0o700 });
    const file = path.join(this.o.exportDir, `${m.address.replace(/[^A-Za-z0-9@._-]/g, '_')}-${now.toISOString().replace(/[:.]/g, '-')}.mbox`);
    const out = createWriteStream(file, { mode: 0o600 });
    let n = 0;
    const write = async (s: string | Buffer) => {
      if (!out.write(s)) await once(out, 'drain');
    };
    try {
      for (const f of await this.store.listFolders(m.id)) {
        for (const msg of await this.store.listMessages(f.id)) {
          const chunks: Buffer[] = [];
          for await (const c of this.o.blobs.stream(msg.blobId)) chunks.push(c as Buffer);
          const body = Buffer.concat(chunks).toString('latin1').replace(/\r\n/g, '\n');
          const d = new Date(msg.internalDate);
          await write(`From MAILER-DAEMON ${d.toUTCString().replace(/^(\w+), (\d+) (\w+) (\d+) ([\d:]+) GMT$/, '$1 $3 $2 $5 $4')}\nX-Folder: ${f.name}\n`);
          // mboxrd: any line starting with ">*From " gets one more ">".
          await write(Buffer.from(body.replace(/^(>*From )/gm, '>$1'), 'latin1'));
          await write(body.endsWith('\n') ? '\n' : '\n\n');
          n++;
        }
      }
    } finally {
      out.end();
      await once(out, 'close');
    }
    return { file, messages: n };
  }
}

/** The default system address: ne-pas-repondre@<first operator domain>. */
export function defaultSystemAddress(domains: string[], hostname: string): string {
  return `ne-pas-repondre@${domains[0] ?? hostname}`;
}

/**
 * The store answers synchronously (SQLite): a run over thousands of mailboxes would hold the one
 * event loop every client shares. Between mailboxes, let pending I/O (IMAP, SMTP, HTTP) run.
 */
function yieldToClients(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
