// A message's way in and out (DeliveryStore) in SQLite: local INBOXes and the outbound queue,
// each call one transaction (architecture invariant 1: nothing acknowledged is lost).
import type { QueueItem } from '../../model/index.js';
import { DailyRecipientLimitError, type DeliveredCopy, type DeliveryRequest, type DeliveryResult, type DeliveryStore, type QueueCompletion, type SubmissionChange } from '../types.js';
import { SqlitePart } from './connection.js';
import { insertFolder } from './folders.js';
import { applyReports, markMessageOnce, recordSubmission, setRecipientStatus } from './tracking.js';
import { applyConversationChanges } from './patients.js';
import { rowQueue } from '../rows.js';
import { writeAnalysis } from './blob-meta.js';
import { insertTrace } from './traces.js';
import { IdempotencyKeyTakenError } from '../errors.js';

export class SqliteDelivery extends SqlitePart implements DeliveryStore {
  /**
   * Appends one message to a mailbox's INBOX inside the caller's transaction; with `filing`, to
   * that folder instead (created when missing) with its flags.
   */
  #appendToInbox(mailboxId: number, blobId: string, size: number, internalDate: string, returnPath: string, filing?: DeliveryRequest['filing']): DeliveredCopy {
    const folder = filing?.folder ?? 'INBOX';
    const bump = () =>
      this.q('UPDATE folders SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1 WHERE mailbox_id = ? AND name = ? RETURNING id, uid_next - 1 AS uid, highest_modseq').get(mailboxId, folder) as any;
    let f = bump();
    if (!f && filing) {
      insertFolder(this.db, mailboxId, folder, null);
      f = bump();
    }
    if (!f) throw new Error(`mailbox #${mailboxId} has no ${folder}`);
    const m: any = this
      .q('INSERT INTO messages (folder_id, uid, blob_id, size, internal_date, flags, modseq, return_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id')
      .get(f.id, f.uid, blobId, size, internalDate, filing?.flags.join(' ') ?? '', f.highest_modseq, returnPath);
    return { mailboxId, folderId: f.id, uid: f.uid, messageId: m.id };
  }

  /** Adds `count` to the user's recipients of `day`; over `limit`, throws (the caller's transaction rolls back). */
  #countRecipients(d: NonNullable<DeliveryRequest['dailyRecipients']>): void {
    this.q('DELETE FROM recipients_per_day WHERE user_id = ? AND day < ?').run(d.userId, d.day); // only today's row is ever read
    const r: any = this.q(
      'INSERT INTO recipients_per_day (user_id, day, count) VALUES (?, ?, ?) ON CONFLICT (user_id, day) DO UPDATE SET count = count + excluded.count RETURNING count',
    ).get(d.userId, d.day, d.count);
    if (r.count > d.limit) throw new DailyRecipientLimitError(d.day, d.limit);
  }

  async getIdempotentAnswer(userId: number, route: string, key: string, since: number) {
    const r: any = this.q('SELECT answer, submission_id, email_id, created_at FROM idempotency_keys WHERE user_id = ? AND route = ? AND key = ? AND created_at >= ?').get(userId, route, key, since);
    return r ? { answer: r.answer as string, submissionId: r.submission_id as number | null, emailId: r.email_id as number | null, at: r.created_at as number } : undefined;
  }

  async purgeIdempotentAnswers(before: number) {
    return this.q('DELETE FROM idempotency_keys WHERE created_at < ?').run(before).changes;
  }

  async recipientsSentOn(userId: number, day: string) {
    const r: any = this.q('SELECT count FROM recipients_per_day WHERE user_id = ? AND day = ?').get(userId, day);
    return r?.count ?? 0;
  }

  /** Deliveries asked for in this turn of the event loop, committed together (#flush). */
  #pending: { req: DeliveryRequest; resolve: (r: DeliveryResult) => void; reject: (e: unknown) => void }[] | undefined;

  /**
   * Group commit: the deliveries asked for in one turn of the event loop (concurrent SMTP
   * sessions, API calls) share one transaction — one durable commit (synchronous=FULL: one WAL
   * fsync) instead of one each. Each delivery runs in a SAVEPOINT of its own, so one that throws
   * (DailyRecipientLimitError, KeywordAlreadySetError, an unknown mailbox) is rolled back alone and
   * rejects alone; every promise settles only after the COMMIT (architecture invariant 1: the
   * caller acknowledges after it), and a failed COMMIT rejects them all (nothing was stored).
   */
  async deliver(req: DeliveryRequest): Promise<DeliveryResult> {
    return new Promise((resolve, reject) => {
      if (!this.#pending) {
        this.#pending = [];
        setImmediate(() => this.#flush());
      }
      this.#pending.push({ req, resolve, reject });
    });
  }

  #flush(): void {
    const batch = this.#pending ?? [];
    this.#pending = undefined;
    if (batch.length === 1) {
      const [{ req, resolve, reject }] = batch;
      try {
        resolve(this.#deliverOne(req));
      } catch (e) {
        reject(e);
      }
      return;
    }
    const outcomes: ({ ok: true; result: DeliveryResult } | { ok: false; error: unknown })[] = [];
    try {
      this.db.transaction(() => {
        for (const { req } of batch) {
          try {
            outcomes.push({ ok: true, result: this.#deliverOne(req) }); // nested: a SAVEPOINT
          } catch (error) {
            outcomes.push({ ok: false, error });
          }
        }
      })();
    } catch (e) {
      for (const b of batch) b.reject(e);
      return;
    }
    batch.forEach((b, i) => {
      const o = outcomes[i];
      if (o.ok) b.resolve(o.result);
      else b.reject(o.error);
    });
  }

  /** One delivery in one transaction (a SAVEPOINT inside #flush's). */
  #deliverOne(req: DeliveryRequest): DeliveryResult {
    return this.db.transaction(() => {
      if (req.dailyRecipients) this.#countRecipients(req.dailyRecipients);
      // RFC 3503 $MDNSent: the keyword and the MDN commit together, or neither does.
      if (req.markMessage) markMessageOnce(this.db, req.markMessage);
      const internalDate = req.internalDate.toISOString();
      const localIds = [...new Set(req.localMailboxIds)];
      // The put's pin ends with the commit that references the file (store/message-files.ts, P5).
      for (const p of req.releasePins ?? []) this.q('DELETE FROM blob_pins WHERE blob_id = ? AND token = ?').run(p.blobId, p.token);
      // The file's analysis first: the messages inserted below find its header search row (the
      // trigger of migration 17 marks them indexed).
      if (req.analysis) writeAnalysis(this.connection, req.blobId, req.analysis);
      const copies = localIds.map((id) => this.#appendToInbox(id, req.blobId, req.size, internalDate, req.envelopeFrom, req.filing));
      // docs/traces.md: one 'delivered' trace per local copy, committed with it.
      if (req.deliveredTrace) {
        const { fromDomain, ...actor } = req.deliveredTrace;
        for (const c of copies) insertTrace(this.connection, { ...actor, mailboxId: c.mailboxId, action: 'delivered', detail: { folder: req.filing?.folder ?? 'INBOX', uid: c.uid, fromDomain } });
      }
      if (req.senderCopy) {
        const sc = req.senderCopy;
        const f = this.q('UPDATE folders SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1 WHERE id = ? AND mailbox_id = ? RETURNING id, uid_next - 1 AS uid, highest_modseq').get(sc.folderId, sc.mailboxId) as any;
        if (!f) throw new Error(`folder #${sc.folderId} of mailbox #${sc.mailboxId} not found`);
        const m: any = this.q('INSERT INTO messages (folder_id, uid, blob_id, size, internal_date, flags, modseq) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id').get(f.id, f.uid, req.blobId, req.size, internalDate, sc.flags.join(' '), f.highest_modseq);
        copies.push({ mailboxId: sc.mailboxId, folderId: f.id, uid: f.uid, messageId: m.id, sentCopy: true });
      }
      const ins = this.q(
        `INSERT INTO outbound_queue (blob_id, size, envelope_from, recipient, domain, notify, orcpt, ret, envid, sender_mailbox_id, next_attempt_at, queued_at, submission_id, submission_recipient_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      const t = Date.now();
      const at = new Date(t).toISOString();
      // Delivery tracking (docs/receipts.md): the submission's rows, then the reports this message carries.
      const tracked = recordSubmission(this.db, req, at, this.connection.sealer);
      const submissionChanges: SubmissionChange[] = tracked ? [{ id: tracked.id, mailboxId: tracked.mailboxId }] : [];
      // The copy kept in Sent (web sending) is the submission's emailId in the mail API.
      const sentCopy = copies.find((c) => c.sentCopy);
      if (tracked && sentCopy) this.q('UPDATE submissions SET email_id = ? WHERE id = ?').run(sentCopy.messageId, tracked.id);
      for (const r of req.remote) {
        ins.run(
          req.blobId, req.size, req.envelopeFrom, r.recipient, r.domain.toLowerCase(), r.notify?.join(',') ?? null, r.orcpt, req.ret ?? null, req.envid ?? null, req.senderMailboxId ?? null, t, t,
          tracked?.id ?? null, tracked?.remote.get(r.recipient.toLowerCase()) ?? null,
        );
      }
      if (req.reports?.length && localIds.length) submissionChanges.push(...applyReports(this.db, localIds, req.reports, at));
      // Usage indicators: counted exactly when the message is committed (docs/indicators.md).
      const usage = this.q('INSERT INTO usage_messages (at, structure_id, mailbox_type, flow, peer, attachment, xdm) VALUES (?, ?, ?, ?, ?, ?, ?)');
      for (const u of req.usage ?? []) usage.run(u.at, u.structureId, u.mailboxType, u.flow, u.peer, u.attachment ? 1 : 0, u.xdm ? 1 : 0);
      // Patient conversations (Mon espace santé stand-in): opened or closed with the message.
      if (req.conversations?.length) applyConversationChanges(this.connection, req.conversations);
      // The request's Idempotency-Key with its answer, committed with the message (http/sending.ts):
      // a key recorded already (not expired) rolls all of this back.
      if (req.idempotency) {
        const k = req.idempotency;
        const won = this.q(
          `INSERT INTO idempotency_keys (user_id, route, key, created_at, submission_id, email_id, answer) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (user_id, route, key) DO UPDATE SET created_at = excluded.created_at, submission_id = excluded.submission_id, email_id = excluded.email_id, answer = excluded.answer
           WHERE idempotency_keys.created_at < ? RETURNING 1 AS won`,
        ).get(k.userId, k.route, k.key, k.at, tracked?.id ?? null, sentCopy?.messageId ?? null, k.answer, k.at - k.ttlMs);
        if (!won) throw new IdempotencyKeyTakenError(`Idempotency-Key already recorded for user #${k.userId} on ${k.route}`);
      }
      return Object.assign(copies, { submissionChanges });
    })();
  }

  async claimQueueItems(owner: string, now: number, limit: number, leaseMs: number) {
    // One statement: SQLite takes the write lock when the UPDATE starts (before its subquery reads),
    // so two connections — processes — claiming at once are serialized and never get the same item.
    const rows = this.q(
      `UPDATE outbound_queue SET lease_owner = ?, lease_until = ?
       WHERE id IN (SELECT id FROM outbound_queue WHERE status = 'queued' AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?)
                    ORDER BY next_attempt_at, id LIMIT ?)
       RETURNING *`,
    ).all(owner, now + leaseMs, now, now, limit) as any[];
    // RETURNING gives no order: oldest first, as the subquery chose them.
    return rows.sort((a, b) => a.next_attempt_at - b.next_attempt_at || a.id - b.id).map(rowQueue);
  }
  async renewQueueItems(owner: string, ids: number[], now: number, leaseMs: number) {
    if (!ids.length) return [];
    // Only the owner's own unexpired leases move (an expired one may be claimed by another already).
    const rows = this.q(
      `UPDATE outbound_queue SET lease_until = ?
       WHERE lease_owner = ? AND lease_until > ? AND status = 'queued' AND id IN (SELECT value FROM json_each(?))
       RETURNING id`,
    ).all(now + leaseMs, owner, now, JSON.stringify(ids)) as { id: number }[];
    return rows.map((r) => r.id).sort((a, b) => a - b);
  }
  async releaseQueueItems(owner: string, ids: number[]) {
    if (!ids.length) return;
    this.q('UPDATE outbound_queue SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ? AND id IN (SELECT value FROM json_each(?))').run(owner, JSON.stringify(ids));
  }
  async nextQueueAttempt() {
    const r: any = this.q("SELECT MIN(next_attempt_at) t FROM outbound_queue WHERE status = 'queued'").get();
    return r?.t ?? undefined;
  }
  async listQueue(filter: { status?: QueueItem['status'] } = {}) {
    const sql = filter.status ? 'SELECT * FROM outbound_queue WHERE status = ? ORDER BY id' : 'SELECT * FROM outbound_queue ORDER BY id';
    return (filter.status ? this.q(sql).all(filter.status) : this.q(sql).all()).map(rowQueue);
  }
  async completeQueueItems(c: QueueCompletion): Promise<DeliveryResult> {
    return this.db.transaction(() => {
      const t = Date.now();
      const at = new Date(t).toISOString();
      // Delivery tracking (docs/receipts.md): the peer's 250 → relayed; a permanent failure or the
      // end of retries → failed with the reason; a deferral stays queued with the last error.
      const changed = new Map<number, SubmissionChange>();
      const tracking = this.q("SELECT submission_id, submission_recipient_id, sender_mailbox_id FROM outbound_queue WHERE id = ? AND status = 'queued'");
      const track = (id: number, status: 'relayed' | 'failed' | 'queued', detail: string | null) => {
        const q = tracking.get(id) as any;
        if (q?.submission_recipient_id && setRecipientStatus(this.db, q.submission_recipient_id, status, detail, at))
          changed.set(q.submission_id, { id: q.submission_id, mailboxId: q.sender_mailbox_id });
      };
      for (const id of c.sent) track(id, 'relayed', null);
      for (const f of c.failed) track(f.id, 'failed', f.error);
      for (const d of c.deferred) track(d.id, 'queued', d.error);
      // Each outcome ends the item's lease (claimQueueItems): a deferred item is claimable again when due.
      const sent = this.q("UPDATE outbound_queue SET status = 'sent', attempts = attempts + 1, last_error = NULL, done_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND status = 'queued'");
      const failed = this.q("UPDATE outbound_queue SET status = 'failed', attempts = attempts + 1, last_error = ?, done_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND status = 'queued'");
      const deferred = this.q("UPDATE outbound_queue SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND status = 'queued'");
      for (const id of c.sent) sent.run(t, id);
      for (const f of c.failed) failed.run(f.error, t, f.id);
      for (const d of c.deferred) deferred.run(d.error, d.nextAttemptAt, d.id);
      // RFC 3461 §6.2: a DSN travels with the null reverse-path.
      return Object.assign(
        c.dsns.map((d) => this.#appendToInbox(d.mailboxId, d.blobId, d.size, at, '')),
        { submissionChanges: [...changed.values()] },
      );
    })();
  }
}
