// A message's way in and out (DeliveryStore) in PostgreSQL: local INBOXes and the outbound queue,
// each call one transaction (architecture invariant 1: nothing acknowledged is lost; nothing is
// half-stored when a call throws). Same semantics as sqlite/delivery.ts, statement for statement;
// on top, the queue is shared by several nodes: items are claimed with leases (`FOR UPDATE SKIP
// LOCKED`), so two queue workers never attempt the same item at the same time.
import type { QueueItem } from '../../model/index.js';
import { DailyRecipientLimitError, type DeliveredCopy, type DeliveryRequest, type DeliveryResult, type DeliveryStore, type QueueCompletion, type SubmissionChange } from '../types.js';
import { PgPart, type PgClient } from './connection.js';
import { insertFolder } from './folders-shared.js';
import { applyConversationChanges } from './conversations.js';
import { applyReports, markMessageOnce, recordSubmission, setRecipientStatus } from './tracking.js';
import { storable } from './text.js';
import { rowQueue } from '../rows.js';
import { analysisStatement } from './blob-meta.js';
import { dropPins } from './blob-pins.js';
import { traceStatement } from './traces.js';
import { IdempotencyKeyTakenError } from '../errors.js';

/** A message row inserted with the UID and modseq taken under its folder's row lock (one statement). */
const APPEND_TO_NAMED_FOLDER = `
WITH f AS (UPDATE folders SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1 WHERE mailbox_id = $1 AND name = $2 RETURNING id, uid_next - 1 AS uid, highest_modseq)
INSERT INTO messages (folder_id, uid, blob_id, size, internal_date, flags, modseq, return_path)
SELECT f.id, f.uid, $3, $4, $5, $6, f.highest_modseq, $7 FROM f RETURNING id, folder_id, uid`;

/**
 * Appends one message to a mailbox's INBOX inside the caller's transaction; with `filing`, to that
 * folder instead (created when missing) with its flags.
 */
async function appendToInbox(c: PgClient, mailboxId: number, blobId: string, size: number, internalDate: string, returnPath: string, filing?: DeliveryRequest['filing']): Promise<DeliveredCopy> {
  const folder = filing?.folder ?? 'INBOX';
  const args = [mailboxId, folder, blobId, size, internalDate, filing?.flags.join(' ') ?? '', returnPath];
  let m = (await c.query(APPEND_TO_NAMED_FOLDER, args)).rows[0];
  if (!m && filing) {
    // Two nodes filing into a folder that does not exist yet: the second one waits on the mailbox
    // row (insertFolder's UIDVALIDITY), then its insert is a unique violation once the first
    // commits; rolled back to the savepoint, it appends to the folder the first created.
    await c.query('SAVEPOINT filing_folder');
    try {
      await insertFolder(c, mailboxId, folder, null);
      await c.query('RELEASE SAVEPOINT filing_folder');
    } catch (e) {
      if ((e as { code?: string }).code !== '23505') throw e;
      await c.query('ROLLBACK TO SAVEPOINT filing_folder');
    }
    m = (await c.query(APPEND_TO_NAMED_FOLDER, args)).rows[0];
  }
  if (!m) throw new Error(`mailbox #${mailboxId} has no ${folder}`);
  return { mailboxId, folderId: m.folder_id, uid: m.uid, messageId: m.id };
}

/** Adds `count` to the user's recipients of `day`; over `limit`, throws (the caller's transaction rolls back). */
async function countRecipients(c: PgClient, d: NonNullable<DeliveryRequest['dailyRecipients']>): Promise<void> {
  await c.query('DELETE FROM recipients_per_day WHERE user_id = $1 AND day < $2', [d.userId, d.day]); // only today's row is ever read
  // One statement: two nodes counting for one user at once add up (the second waits on the row).
  const r = (
    await c.query(
      'INSERT INTO recipients_per_day (user_id, day, count) VALUES ($1, $2, $3) ON CONFLICT (user_id, day) DO UPDATE SET count = recipients_per_day.count + EXCLUDED.count RETURNING count',
      [d.userId, d.day, d.count],
    )
  ).rows[0];
  if (r.count > d.limit) throw new DailyRecipientLimitError(d.day, d.limit);
}

export class PgDelivery extends PgPart implements DeliveryStore {
  async recipientsSentOn(userId: number, day: string) {
    const r = (await this.query('SELECT count FROM recipients_per_day WHERE user_id = $1 AND day = $2', [userId, day]))[0];
    return (r?.count as number | undefined) ?? 0;
  }

  async deliver(req: DeliveryRequest): Promise<DeliveryResult> {
    return this.tx(async (c) => {
      // The statements of SqliteDelivery.deliver, in one transaction, with the folder appends last:
      // a folder's row lock (its UID and modseq) serializes the deliveries into that folder until
      // they commit, so it is taken when nothing but the appends and COMMIT remains. (The order is
      // not observable: everything commits at once or not at all.)
      if (req.dailyRecipients) await countRecipients(c, req.dailyRecipients);
      // RFC 3503 $MDNSent: the keyword and the MDN commit together, or neither does.
      if (req.markMessage) await markMessageOnce(c, req.markMessage);
      const internalDate = req.internalDate.toISOString();
      const localIds = [...new Set(req.localMailboxIds)];
      const t = Date.now();
      const at = new Date(t).toISOString();
      // Delivery tracking (docs/receipts.md): the submission's rows, then the reports this message carries.
      const tracked = await recordSubmission(c, req, at, this.connection.sealer);
      const submissionChanges: SubmissionChange[] = tracked ? [{ id: tracked.id, mailboxId: tracked.mailboxId }] : [];
      if (req.remote.length)
        // One statement for every remote recipient, in the order given (ids follow it).
        await c.query(
          `INSERT INTO outbound_queue (blob_id, size, envelope_from, recipient, domain, notify, orcpt, ret, envid, sender_mailbox_id, next_attempt_at, queued_at, submission_id, submission_recipient_id)
           SELECT $1, $2, $3, r.recipient, r.domain, r.notify, r.orcpt, $4, $5, $6, $7, $7, $8, r.srid
           FROM unnest($9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[]) WITH ORDINALITY AS r(recipient, domain, notify, orcpt, srid, n) ORDER BY r.n`,
          [
            // ENVID and ORCPT are xtext a client may have spelt NUL in (RFC 3461 §4): stored as U+FFFD (text.ts).
            req.blobId, req.size, req.envelopeFrom, req.ret ?? null, storable(req.envid ?? null), req.senderMailboxId ?? null, t, tracked?.id ?? null,
            req.remote.map((r) => r.recipient), req.remote.map((r) => r.domain.toLowerCase()), req.remote.map((r) => r.notify?.join(',') ?? null), req.remote.map((r) => storable(r.orcpt)),
            req.remote.map((r) => tracked?.remote.get(r.recipient.toLowerCase()) ?? null),
          ],
        );
      if (req.reports?.length && localIds.length) submissionChanges.push(...(await applyReports(c, localIds, req.reports, at)));
      // The put's pin ends with the commit that references the file (store/message-files.ts, P5).
      await dropPins(c, req.releasePins ?? []);
      // The file's analysis before the appends: the messages inserted below find its header search
      // row (messages_header_indexed marks them indexed). One statement for both rows.
      if (req.analysis) {
        const a = analysisStatement(req.blobId, req.analysis, this.connection.sealer);
        await c.query(a.sql, a.args);
      }
      // Usage indicators: counted exactly when the message is committed (docs/indicators.md).
      const usage = req.usage ?? [];
      if (usage.length)
        await c.query(
          `INSERT INTO usage_messages (at, structure_id, mailbox_type, flow, peer, attachment, xdm)
           SELECT u.at, u.s, u.t, u.f, u.p, u.a, u.x FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[]) WITH ORDINALITY AS u(at, s, t, f, p, a, x, n) ORDER BY u.n`,
          [usage.map((u) => u.at), usage.map((u) => u.structureId), usage.map((u) => u.mailboxType), usage.map((u) => u.flow), usage.map((u) => u.peer), usage.map((u) => (u.attachment ? 1 : 0)), usage.map((u) => (u.xdm ? 1 : 0))],
        );
      // Patient conversations (Mon espace santé stand-in): opened or closed with the message.
      if (req.conversations?.length) await applyConversationChanges(c, req.conversations);
      // The copies. The INBOX rows are locked in mailbox order (two deliveries to the same
      // mailboxes never wait on each other crosswise); the copies are returned in the order asked.
      const byId = new Map<number, DeliveredCopy>();
      for (const id of [...localIds].sort((a, b) => a - b)) byId.set(id, await appendToInbox(c, id, req.blobId, req.size, internalDate, req.envelopeFrom, req.filing));
      const copies: DeliveredCopy[] = localIds.map((id) => byId.get(id)!);
      // docs/traces.md: one 'delivered' trace per local copy, committed with it.
      if (req.deliveredTrace) {
        const { fromDomain, ...actor } = req.deliveredTrace;
        for (const cp of copies) await c.query(...traceStatement({ ...actor, mailboxId: cp.mailboxId, action: 'delivered', detail: { folder: req.filing?.folder ?? 'INBOX', uid: cp.uid, fromDomain } }));
      }
      if (req.senderCopy) {
        const sc = req.senderCopy;
        const m = (
          await c.query(
            `WITH f AS (UPDATE folders SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1 WHERE id = $1 AND mailbox_id = $2 RETURNING id, uid_next - 1 AS uid, highest_modseq)
             INSERT INTO messages (folder_id, uid, blob_id, size, internal_date, flags, modseq) SELECT f.id, f.uid, $3, $4, $5, $6, f.highest_modseq FROM f RETURNING id, folder_id, uid`,
            [sc.folderId, sc.mailboxId, req.blobId, req.size, internalDate, sc.flags.join(' ')],
          )
        ).rows[0];
        if (!m) throw new Error(`folder #${sc.folderId} of mailbox #${sc.mailboxId} not found`);
        copies.push({ mailboxId: sc.mailboxId, folderId: m.folder_id, uid: m.uid, messageId: m.id, sentCopy: true });
        // The copy kept in Sent (web sending) is the submission's emailId in the mail API.
        if (tracked) await c.query('UPDATE submissions SET email_id = $1 WHERE id = $2', [m.id, tracked.id]);
      }
      // The request's Idempotency-Key with its answer, committed with the message (http/sending.ts).
      // Two nodes with one key: the second waits on the first's row until it commits, then its
      // upsert matches nothing (not expired), and all of this rolls back.
      if (req.idempotency) {
        const k = req.idempotency;
        const sentCopy = copies.find((cp) => cp.sentCopy);
        const won = await c.query(
          `INSERT INTO idempotency_keys (user_id, route, key, created_at, submission_id, email_id, answer) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (user_id, route, key) DO UPDATE SET created_at = EXCLUDED.created_at, submission_id = EXCLUDED.submission_id, email_id = EXCLUDED.email_id, answer = EXCLUDED.answer
           WHERE idempotency_keys.created_at < $8 RETURNING 1 AS won`,
          [k.userId, storable(k.route), storable(k.key), k.at, tracked?.id ?? null, sentCopy?.messageId ?? null, storable(k.answer), k.at - k.ttlMs],
        );
        if (!won.rows.length) throw new IdempotencyKeyTakenError(`Idempotency-Key already recorded for user #${k.userId} on ${k.route}`);
      }
      return Object.assign(copies, { submissionChanges });
    });
  }

  async getIdempotentAnswer(userId: number, route: string, key: string, since: number) {
    const r = (await this.query('SELECT answer, submission_id, email_id, created_at FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND key = $3 AND created_at >= $4', [userId, storable(route), storable(key), since]))[0];
    return r ? { answer: r.answer as string, submissionId: r.submission_id == null ? null : Number(r.submission_id), emailId: r.email_id == null ? null : Number(r.email_id), at: Number(r.created_at) } : undefined;
  }

  async purgeIdempotentAnswers(before: number) {
    return this.run('DELETE FROM idempotency_keys WHERE created_at < $1', [before]);
  }

  /**
   * Claims up to `limit` due items whose lease is absent or expired, oldest first, leased to
   * `owner` until now + leaseMs. One statement: rows another worker is claiming at this instant
   * are skipped (SKIP LOCKED), rows it has claimed no longer match (`lease_until > now`), so two
   * workers — processes or nodes — never get the same item (shared spec of issue 12).
   */
  async claimQueueItems(owner: string, now: number, limit: number, leaseMs: number): Promise<QueueItem[]> {
    const rows = await this.query(
      `UPDATE outbound_queue SET lease_owner = $1, lease_until = $2
       WHERE id IN (SELECT id FROM outbound_queue
                    WHERE status = 'queued' AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
                    ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
       RETURNING *`,
      [owner, now + leaseMs, now, limit],
    );
    return rows.sort((a, b) => a.next_attempt_at - b.next_attempt_at || a.id - b.id).map(rowQueue);
  }

  /**
   * Extends `owner`'s unexpired leases on `ids` to now + leaseMs (a worker's heartbeat). A row a
   * claim is taking at this instant is locked by it: this UPDATE waits, then re-checks the WHERE
   * against the committed row (READ COMMITTED), so a lease another owner took never moves.
   */
  async renewQueueItems(owner: string, ids: number[], now: number, leaseMs: number): Promise<number[]> {
    if (ids.length === 0) return [];
    const rows = await this.query(
      `UPDATE outbound_queue SET lease_until = $1
       WHERE lease_owner = $2 AND lease_until > $3 AND status = 'queued' AND id = ANY($4::bigint[])
       RETURNING id`,
      [now + leaseMs, owner, now, ids],
    );
    return rows.map((r) => r.id as number).sort((a, b) => a - b);
  }

  /** Gives back leased items not attempted (shutdown): due again for any worker at once. */
  async releaseQueueItems(owner: string, ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.query('UPDATE outbound_queue SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1 AND id = ANY($2::bigint[])', [owner, ids]);
  }

  async nextQueueAttempt() {
    const r = (await this.query("SELECT MIN(next_attempt_at) AS t FROM outbound_queue WHERE status = 'queued'"))[0];
    return (r?.t as number | null) ?? undefined;
  }

  async listQueue(filter: { status?: QueueItem['status'] } = {}) {
    const rows = filter.status ? await this.query('SELECT * FROM outbound_queue WHERE status = $1 ORDER BY id', [filter.status]) : await this.query('SELECT * FROM outbound_queue ORDER BY id');
    return rows.map(rowQueue);
  }

  async completeQueueItems(c0: QueueCompletion): Promise<DeliveryResult> {
    return this.tx(async (c) => {
      const t = Date.now();
      const at = new Date(t).toISOString();
      // The items still queued, locked: an item completed meanwhile elsewhere (its lease expired
      // and another worker took it) is no longer 'queued' once this waits for it, and is left alone.
      const ids = [...c0.sent, ...c0.failed.map((f) => f.id), ...c0.deferred.map((d) => d.id)];
      const queued = new Map<number, { submission_id: number | null; submission_recipient_id: number | null; sender_mailbox_id: number | null }>();
      if (ids.length)
        for (const r of (await c.query("SELECT id, submission_id, submission_recipient_id, sender_mailbox_id FROM outbound_queue WHERE id = ANY($1::bigint[]) AND status = 'queued' ORDER BY id FOR UPDATE", [ids])).rows)
          queued.set(r.id, r);
      // Delivery tracking (docs/receipts.md): the peer's 250 → relayed; a permanent failure or the
      // end of retries → failed with the reason; a deferral stays queued with the last error.
      const changed = new Map<number, SubmissionChange>();
      const track = async (id: number, status: 'relayed' | 'failed' | 'queued', detail: string | null) => {
        const q = queued.get(id);
        if (q?.submission_recipient_id && q.submission_id != null && (await setRecipientStatus(c, q.submission_recipient_id, status, detail, at)))
          changed.set(q.submission_id, { id: q.submission_id, mailboxId: q.sender_mailbox_id! });
      };
      for (const id of c0.sent) await track(id, 'relayed', null);
      for (const f of c0.failed) await track(f.id, 'failed', f.error);
      for (const d of c0.deferred) await track(d.id, 'queued', d.error);
      // Each outcome also ends the item's lease (shared spec of issue 12).
      if (c0.sent.length)
        await c.query(
          "UPDATE outbound_queue SET status = 'sent', attempts = attempts + 1, last_error = NULL, done_at = $1, lease_owner = NULL, lease_until = NULL WHERE id = ANY($2::bigint[]) AND status = 'queued'",
          [t, c0.sent],
        );
      if (c0.failed.length)
        await c.query(
          `UPDATE outbound_queue q SET status = 'failed', attempts = q.attempts + 1, last_error = x.error, done_at = $1, lease_owner = NULL, lease_until = NULL
           FROM unnest($2::bigint[], $3::text[]) AS x(id, error) WHERE q.id = x.id AND q.status = 'queued'`,
          [t, c0.failed.map((f) => f.id), c0.failed.map((f) => storable(f.error))], // a peer's reply: NUL as U+FFFD (text.ts)
        );
      if (c0.deferred.length)
        await c.query(
          `UPDATE outbound_queue q SET attempts = q.attempts + 1, last_error = x.error, next_attempt_at = x.next, lease_owner = NULL, lease_until = NULL
           FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS x(id, error, next) WHERE q.id = x.id AND q.status = 'queued'`,
          [c0.deferred.map((d) => d.id), c0.deferred.map((d) => storable(d.error)), c0.deferred.map((d) => d.nextAttemptAt)],
        );
      // RFC 3461 §6.2: a DSN travels with the null reverse-path.
      const dsns: DeliveredCopy[] = [];
      for (const d of c0.dsns) dsns.push(await appendToInbox(c, d.mailboxId, d.blobId, d.size, at, ''));
      return Object.assign(dsns, { submissionChanges: [...changed.values()] });
    });
  }
}
