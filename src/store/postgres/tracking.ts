// Delivery tracking (TrackingStore) in PostgreSQL: one row per submitted message, one per
// recipient (docs/receipts.md). As in sqlite/tracking.ts, the writes happen inside the delivery's
// and the queue's own transactions (delivery.ts calls the functions below with the transaction's
// client), so a status never disagrees with what was committed. Rows changed by a read-modify-write
// are locked first (FOR UPDATE): a DSN received on one node and the queue's outcome recorded on
// another never overwrite each other's rank.
import type { DeliveryRequest, IncomingReport, ReceiptMessage, SubmissionChange, TrackedSubmission, TrackingStatus, TrackingStore } from '../types.js';
import { KeywordAlreadySetError } from '../types.js';
import { PgPart, type PgClient } from './connection.js';
import { hasNul, storable } from './text.js';
import { lockFolders } from './folders.js';
import { bareAddress } from '../report-address.js';
import { rowReceipt, rowSubmission } from '../rows.js';
import { openValue, sealBytes } from '../sealed-rows.js';
import type { ValueSealer } from '../value-seal.js';

/**
 * How far a recipient has gone. A report never moves a recipient back: a "relayed" recorded after
 * the destination's "delivered" DSN came back (the two race) leaves "delivered". A failure ranks
 * with delivery (a relay may accept, then fail); any MDN ranks above both.
 */
const RANK: Record<TrackingStatus, number> = { queued: 0, relayed: 1, delivered: 2, failed: 2, displayed: 3, processed: 3, error: 3 };

/** Sets a recipient's status unless it would move it back (inside the caller's transaction); true when the row changed. */
export async function setRecipientStatus(c: PgClient, recipientId: number, status: TrackingStatus, detail: string | null, at: string): Promise<boolean> {
  detail = storable(detail); // a peer's text (DSN diagnostic, SMTP reply): NUL as U+FFFD (text.ts)
  const cur = (await c.query('SELECT status, detail FROM submission_recipients WHERE id = $1 FOR UPDATE', [recipientId])).rows[0] as { status: TrackingStatus; detail: string | null } | undefined;
  if (!cur || RANK[status] < RANK[cur.status]) return false;
  if (cur.status === status && cur.detail === detail) return false;
  await c.query('UPDATE submission_recipients SET status = $1, detail = $2, updated_at = $3 WHERE id = $4', [status, detail, at, recipientId]);
  return true;
}

/**
 * Records a submitted message and its recipients (inside deliver()'s transaction): local ones
 * delivered at once, remote ones queued. Returns the submission id and the row of each remote
 * recipient (the queue items name them).
 */
export async function recordSubmission(c: PgClient, req: DeliveryRequest, at: string, sealer: ValueSealer | undefined): Promise<{ id: number; mailboxId: number; remote: Map<string, number> } | undefined> {
  const t = req.tracking;
  if (!t || req.senderMailboxId == null) return undefined;
  // The subject is content: sealed at rest under a context naming this row (docs/encryption.md,
  // "Values in rows"), so with encryption on the row's id is drawn first (one more round trip).
  const id = sealer ? ((await c.query("SELECT nextval(pg_get_serial_sequence('submissions', 'id')) AS id")).rows[0].id as number) : null;
  const subject = storable(t.subject); // header text: NUL as U+FFFD (text.ts)
  // The sender's address read and the submission written in one statement (no row: no such mailbox).
  const s = (
    await c.query(
      'INSERT INTO submissions (id, mailbox_id, user_id, message_id, from_address, subject, sent_at, envid) SELECT COALESCE($7, nextval(pg_get_serial_sequence(\'submissions\', \'id\'))), id, $2, $3, address, $4, $5, $6 FROM mailboxes WHERE id = $1 RETURNING id',
      [req.senderMailboxId, t.userId, storable(t.messageId), id === null ? Buffer.from(subject, 'utf8') : sealBytes(sealer, 'submissions.subject', id, subject), at, storable(req.envid ?? null), id],
    )
  ).rows[0] as { id: number } | undefined;
  if (!s) return undefined;
  // Local recipients: stored in their INBOX in this very transaction, so delivered (in the order given).
  const local = [...new Set(req.localMailboxIds)];
  if (local.length)
    await c.query(
      `INSERT INTO submission_recipients (submission_id, address, status, detail, updated_at)
       SELECT $1, m.address, 'delivered', NULL, $2 FROM unnest($3::bigint[]) WITH ORDINALITY AS u(id, n) JOIN mailboxes m ON m.id = u.id ORDER BY u.n`,
      [s.id, at, local],
    );
  // Remote recipients: one row per address (compared without case), queued.
  const remote = new Map<string, number>();
  const addresses: string[] = [];
  const seen = new Set<string>();
  for (const r of req.remote) {
    const key = r.recipient.toLowerCase();
    if (!seen.has(key)) (seen.add(key), addresses.push(r.recipient));
  }
  if (addresses.length) {
    const rows = (
      await c.query(
        `INSERT INTO submission_recipients (submission_id, address, status, detail, updated_at)
         SELECT $1, a, 'queued', NULL, $2 FROM unnest($3::text[]) WITH ORDINALITY AS u(a, n) ORDER BY u.n RETURNING id, address`,
        [s.id, at, addresses],
      )
    ).rows;
    for (const r of rows) remote.set((r.address as string).toLowerCase(), r.id);
  }
  return { id: s.id, mailboxId: req.senderMailboxId, remote };
}

/**
 * Matches reports carried by a message delivered to `mailboxIds` (inside deliver()'s transaction)
 * to the submissions of those mailboxes: by Original-Envelope-Id first, else by the original
 * Message-ID; then each recipient by its final or original address (compared without case, as
 * SQLite's NOCASE column does).
 */
export async function applyReports(c: PgClient, mailboxIds: number[], reports: IncomingReport[], at: string): Promise<SubmissionChange[]> {
  const changes: SubmissionChange[] = [];
  // Values from the report (a peer's text): stored ones had NUL replaced (recordSubmission), so compare likewise.
  const find = async (column: 'envid' | 'message_id', mailboxId: number, value: string) =>
    (await c.query(`SELECT id FROM submissions WHERE mailbox_id = $1 AND ${column} = $2 ORDER BY id DESC LIMIT 1`, [mailboxId, storable(value)])).rows[0] as { id: number } | undefined;
  for (const mailboxId of new Set(mailboxIds)) {
    for (const r of reports) {
      const s = (r.envid ? await find('envid', mailboxId, r.envid) : undefined) ?? (r.originalMessageId ? await find('message_id', mailboxId, r.originalMessageId) : undefined);
      if (!s) continue;
      let changed = false;
      for (const rc of r.recipients) {
        let row: { id: number } | undefined;
        for (const a of [bareAddress(rc.final), bareAddress(rc.original)]) {
          if (!a || hasNul(a)) continue; // no stored address has one
          // Folded as the column is (COLLATE "C": ASCII letters only, as SQLite's NOCASE), not with the database's collation.
          row = (await c.query('SELECT id FROM submission_recipients WHERE submission_id = $1 AND lower(address) = lower($2 COLLATE "C") ORDER BY id LIMIT 1', [s.id, a])).rows[0];
          if (row) break;
        }
        if (row && (await setRecipientStatus(c, row.id, rc.status, rc.detail, at))) changed = true;
      }
      if (changed) changes.push({ id: s.id, mailboxId });
    }
  }
  return changes;
}

/**
 * RFC 3503: sets `keyword` on a message once (inside the caller's transaction); throws when set
 * already. The folder and the row are locked before the row is read, so of two nodes sending an
 * MDN for one message at once, the second waits, then sees the keyword and throws (one MDN per message).
 */
export async function markMessageOnce(c: PgClient, m: { folderId: number; uid: number; keyword: string }): Promise<void> {
  await lockFolders(c, [m.folderId]); // folder row before message row (docs/postgres-store.md)
  const r = (await c.query('SELECT flags FROM messages WHERE folder_id = $1 AND uid = $2 FOR UPDATE', [m.folderId, m.uid])).rows[0] as { flags: string } | undefined;
  if (!r) throw new Error(`no message ${m.uid} in folder #${m.folderId}`);
  const flags = r.flags ? r.flags.split(' ') : [];
  if (flags.some((f) => f.toLowerCase() === m.keyword.toLowerCase())) throw new KeywordAlreadySetError(m.keyword);
  // RFC 7162 §3.1: the change gets a new modseq, so IMAP sessions (CONDSTORE, polling) see it.
  await c.query(
    `WITH f AS (UPDATE folders SET highest_modseq = highest_modseq + 1 WHERE id = $1 RETURNING highest_modseq)
     UPDATE messages SET flags = $3, modseq = f.highest_modseq FROM f WHERE folder_id = $1 AND uid = $2`,
    [m.folderId, m.uid, [...flags, m.keyword].join(' ')],
  );
}

export class PgTracking extends PgPart implements TrackingStore {
  /** Submissions with their recipients, read in one statement (one snapshot). */
  async #submissions(where: string, args: unknown[]): Promise<TrackedSubmission[]> {
    const rows = await this.query(
      `SELECT s.*, COALESCE((SELECT json_agg(json_build_object('address', r.address, 'status', r.status, 'detail', r.detail, 'updatedAt', r.updated_at) ORDER BY r.id)
                             FROM submission_recipients r WHERE r.submission_id = s.id), '[]'::json) AS recipients
       FROM submissions s WHERE ${where}`,
      args,
    );
    return rows.map((r) => rowSubmission({ ...r, subject: openValue(this.connection.sealer, 'submissions.subject', r.id, r.subject as Buffer) }, r.recipients));
  }

  async listSubmissions(mailboxIds: number[], page: { beforeId?: number; limit: number }) {
    const ids = [...new Set(mailboxIds)].filter(Number.isInteger);
    if (!ids.length) return [];
    const limit = Math.max(1, Math.min(page.limit, 1000));
    return this.#submissions('s.mailbox_id = ANY($1::bigint[]) AND s.id < $2 ORDER BY s.id DESC LIMIT $3', [ids, page.beforeId ?? Number.MAX_SAFE_INTEGER, limit]);
  }

  async getSubmission(id: number) {
    return (await this.#submissions('s.id = $1', [id]))[0];
  }

  async setSubmissionEmail(id: number, emailId: number) {
    await this.query('UPDATE submissions SET email_id = $1 WHERE id = $2', [emailId, id]);
  }

  async markMessageOnce(m: { folderId: number; uid: number; keyword: string }) {
    try {
      await this.tx((c) => markMessageOnce(c, m));
      return true;
    } catch (e) {
      if (e instanceof KeywordAlreadySetError) return false;
      throw e;
    }
  }

  async getReceiptMessage(ref: { emailId: number } | { folderId: number; uid: number }): Promise<ReceiptMessage | undefined> {
    const sql = 'SELECT m.id, m.folder_id, m.uid, m.blob_id, m.flags, m.return_path, f.mailbox_id FROM messages m JOIN folders f ON f.id = m.folder_id WHERE ';
    return 'emailId' in ref ? this.one(sql + 'm.id = $1', rowReceipt, ref.emailId) : this.one(sql + 'm.folder_id = $1 AND m.uid = $2', rowReceipt, ref.folderId, ref.uid);
  }
}
