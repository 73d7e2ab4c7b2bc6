// Delivery tracking (TrackingStore) in SQLite: one row per submitted message, one per recipient
// (docs/receipts.md). The writes happen inside the delivery's and the queue's own transactions
// (delivery.ts calls the functions below), so a status never disagrees with what was committed.
import type Database from 'better-sqlite3';
import type { DeliveryRequest, IncomingReport, ReceiptMessage, SubmissionChange, TrackedSubmission, TrackingStatus, TrackingStore } from '../types.js';
import { KeywordAlreadySetError } from '../types.js';
import { SqlitePart } from './connection.js';
import { bareAddress } from '../report-address.js';
import { rowReceipt, rowSubmission } from '../rows.js';
import { openValue, sealValue } from '../sealed-rows.js';
import type { ValueSealer } from '../value-seal.js';

/**
 * How far a recipient has gone. A report never moves a recipient back: a "relayed" recorded after
 * the destination's "delivered" DSN came back (the two race) leaves "delivered". A failure ranks
 * with delivery (a relay may accept, then fail); any MDN ranks above both.
 */
const RANK: Record<TrackingStatus, number> = { queued: 0, relayed: 1, delivered: 2, failed: 2, displayed: 3, processed: 3, error: 3 };

/** Sets a recipient's status unless it would move it back; true when the row changed. */
export function setRecipientStatus(db: Database.Database, recipientId: number, status: TrackingStatus, detail: string | null, at: string): boolean {
  const cur = db.prepare('SELECT status, detail FROM submission_recipients WHERE id = ?').get(recipientId) as { status: TrackingStatus; detail: string | null } | undefined;
  if (!cur || RANK[status] < RANK[cur.status]) return false;
  if (cur.status === status && cur.detail === detail) return false;
  db.prepare('UPDATE submission_recipients SET status = ?, detail = ?, updated_at = ? WHERE id = ?').run(status, detail, at, recipientId);
  return true;
}

/**
 * Records a submitted message and its recipients (inside deliver()'s transaction): local ones
 * delivered at once, remote ones queued. Returns the submission id and the row of each remote
 * recipient (the queue items name them).
 */
export function recordSubmission(db: Database.Database, req: DeliveryRequest, at: string, sealer: ValueSealer | undefined): { id: number; mailboxId: number; remote: Map<string, number> } | undefined {
  const t = req.tracking;
  if (!t || req.senderMailboxId == null) return undefined;
  const sender = db.prepare('SELECT address FROM mailboxes WHERE id = ?').get(req.senderMailboxId) as { address: string } | undefined;
  if (!sender) return undefined;
  const s = db
    .prepare('INSERT INTO submissions (mailbox_id, user_id, message_id, from_address, subject, sent_at, envid) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id')
    .get(req.senderMailboxId, t.userId, t.messageId, sender.address, sealer ? '' : t.subject, at, req.envid ?? null) as { id: number };
  // The subject is content: sealed at rest under a context naming this row (docs/encryption.md,
  // "Values in rows"), so written once its id is known, in the same transaction.
  if (sealer) db.prepare('UPDATE submissions SET subject = ? WHERE id = ?').run(sealValue(sealer, 'submissions.subject', s.id, t.subject), s.id);
  const ins = db.prepare('INSERT INTO submission_recipients (submission_id, address, status, detail, updated_at) VALUES (?, ?, ?, NULL, ?) RETURNING id');
  const addressOf = db.prepare('SELECT address FROM mailboxes WHERE id = ?');
  for (const id of new Set(req.localMailboxIds)) {
    const m = addressOf.get(id) as { address: string } | undefined;
    if (m) ins.get(s.id, m.address, 'delivered', at); // stored in the recipient's INBOX in this very transaction
  }
  const remote = new Map<string, number>();
  for (const r of req.remote) {
    const key = r.recipient.toLowerCase();
    if (!remote.has(key)) remote.set(key, (ins.get(s.id, r.recipient, 'queued', at) as { id: number }).id);
  }
  return { id: s.id, mailboxId: req.senderMailboxId, remote };
}

/**
 * Matches reports carried by a message delivered to `mailboxIds` (inside deliver()'s transaction)
 * to the submissions of those mailboxes: by Original-Envelope-Id first, else by the original
 * Message-ID; then each recipient by its final or original address.
 */
export function applyReports(db: Database.Database, mailboxIds: number[], reports: IncomingReport[], at: string): SubmissionChange[] {
  const changes: SubmissionChange[] = [];
  const byEnvid = db.prepare('SELECT id FROM submissions WHERE mailbox_id = ? AND envid = ? ORDER BY id DESC LIMIT 1');
  const byMessageId = db.prepare('SELECT id FROM submissions WHERE mailbox_id = ? AND message_id = ? ORDER BY id DESC LIMIT 1');
  const recipient = db.prepare('SELECT id FROM submission_recipients WHERE submission_id = ? AND address = ? LIMIT 1');
  for (const mailboxId of new Set(mailboxIds)) {
    for (const r of reports) {
      const s = ((r.envid && byEnvid.get(mailboxId, r.envid)) || (r.originalMessageId && byMessageId.get(mailboxId, r.originalMessageId))) as { id: number } | undefined;
      if (!s) continue;
      let changed = false;
      for (const rc of r.recipients) {
        const row = [bareAddress(rc.final), bareAddress(rc.original)]
          .filter((a): a is string => !!a)
          .map((a) => recipient.get(s.id, a) as { id: number } | undefined)
          .find(Boolean);
        if (row && setRecipientStatus(db, row.id, rc.status, rc.detail, at)) changed = true;
      }
      if (changed) changes.push({ id: s.id, mailboxId });
    }
  }
  return changes;
}

/** RFC 3503: sets `keyword` on a message once (inside the caller's transaction); throws when set already. */
export function markMessageOnce(db: Database.Database, m: { folderId: number; uid: number; keyword: string }): void {
  const r = db.prepare('SELECT flags FROM messages WHERE folder_id = ? AND uid = ?').get(m.folderId, m.uid) as { flags: string } | undefined;
  if (!r) throw new Error(`no message ${m.uid} in folder #${m.folderId}`);
  const flags = r.flags ? r.flags.split(' ') : [];
  if (flags.some((f) => f.toLowerCase() === m.keyword.toLowerCase())) throw new KeywordAlreadySetError(m.keyword);
  // RFC 7162 §3.1: the change gets a new modseq, so IMAP sessions (CONDSTORE, polling) see it.
  const f = db.prepare('UPDATE folders SET highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING highest_modseq').get(m.folderId) as { highest_modseq: number };
  db.prepare('UPDATE messages SET flags = ?, modseq = ? WHERE folder_id = ? AND uid = ?').run([...flags, m.keyword].join(' '), f.highest_modseq, m.folderId, m.uid);
}

export class SqliteTracking extends SqlitePart implements TrackingStore {
  #submission(r: any): TrackedSubmission {
    const recipients = this.q('SELECT address, status, detail, updated_at FROM submission_recipients WHERE submission_id = ? ORDER BY id')
      .all(r.id)
      .map((x: any) => ({ address: x.address as string, status: x.status as TrackingStatus, detail: x.detail as string | null, updatedAt: x.updated_at as string }));
    return rowSubmission({ ...r, subject: openValue(this.connection.sealer, 'submissions.subject', r.id, r.subject) }, recipients);
  }

  async listSubmissions(mailboxIds: number[], page: { beforeId?: number; limit: number }) {
    const ids = [...new Set(mailboxIds)].filter(Number.isInteger);
    if (!ids.length) return [];
    const limit = Math.max(1, Math.min(page.limit, 1000));
    return this.db
      .prepare(`SELECT * FROM submissions WHERE mailbox_id IN (${ids.map(() => '?').join(',')}) AND id < ? ORDER BY id DESC LIMIT ?`)
      .all(...ids, page.beforeId ?? Number.MAX_SAFE_INTEGER, limit)
      .map((r) => this.#submission(r));
  }

  async getSubmission(id: number) {
    return this.one('SELECT * FROM submissions WHERE id = ?', (r) => this.#submission(r), id);
  }

  async setSubmissionEmail(id: number, emailId: number) {
    this.q('UPDATE submissions SET email_id = ? WHERE id = ?').run(emailId, id);
  }

  async markMessageOnce(m: { folderId: number; uid: number; keyword: string }) {
    try {
      this.db.transaction(() => markMessageOnce(this.db, m))();
      return true;
    } catch (e) {
      if (e instanceof KeywordAlreadySetError) return false;
      throw e;
    }
  }

  async getReceiptMessage(ref: { emailId: number } | { folderId: number; uid: number }): Promise<ReceiptMessage | undefined> {
    const sql = 'SELECT m.id, m.folder_id, m.uid, m.blob_id, m.flags, m.return_path, f.mailbox_id FROM messages m JOIN folders f ON f.id = m.folder_id WHERE ';
    return 'emailId' in ref ? this.one(sql + 'm.id = ?', rowReceipt, ref.emailId) : this.one(sql + 'm.folder_id = ? AND m.uid = ?', rowReceipt, ref.folderId, ref.uid);
  }
}
