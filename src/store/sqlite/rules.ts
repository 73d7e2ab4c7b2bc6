// Golden rules 1, 2 and 4 (RulesStore) in SQLite: mailbox activity, rule notices, urgency replies.
import type { ActivityKind, MailboxActivity, RuleNotice, RulesStore } from '../types.js';
import { SqlitePart } from './connection.js';
import { ACTIVITY_COLUMN, LIFECYCLE_COLUMN, rowActivity, rowRuleNotice } from '../rows.js';

export class SqliteRules extends SqlitePart implements RulesStore {
  async recordActivity(mailboxIds: number[], kind: ActivityKind, at: number) {
    const col = ACTIVITY_COLUMN[kind];
    const st = this.q(
      `INSERT INTO mailbox_activity (mailbox_id, ${col}) VALUES (?, ?)
       ON CONFLICT (mailbox_id) DO UPDATE SET ${col} = MAX(COALESCE(${col}, 0), excluded.${col})`,
    );
    this.db.transaction(() => {
      for (const id of new Set(mailboxIds)) st.run(id, at);
    })();
  }

  async getActivity(mailboxId: number) {
    return this.one('SELECT * FROM mailbox_activity WHERE mailbox_id = ?', rowActivity, mailboxId);
  }

  async updateActivity(mailboxId: number, u: Partial<Omit<MailboxActivity, 'mailboxId' | 'lastLoginAt' | 'lastReadAt' | 'lastSentAt'>>) {
    const entries = Object.entries(u).filter(([k, v]) => v !== undefined && LIFECYCLE_COLUMN[k]);
    return this.db.transaction(() => {
      this.q('INSERT OR IGNORE INTO mailbox_activity (mailbox_id) VALUES (?)').run(mailboxId);
      if (entries.length)
        this.db.prepare(`UPDATE mailbox_activity SET ${entries.map(([k]) => `${LIFECYCLE_COLUMN[k]} = ?`).join(', ')} WHERE mailbox_id = ?`).run(...entries.map(([, v]) => v), mailboxId);
      return rowActivity(this.q('SELECT * FROM mailbox_activity WHERE mailbox_id = ?').get(mailboxId));
    })();
  }

  async unreadMessages(mailboxId: number, limit: number) {
    return this.q(
      `SELECT m.blob_id, m.internal_date FROM messages m JOIN folders f ON f.id = m.folder_id
       WHERE f.mailbox_id = ? AND f.name = 'INBOX'
         AND (' ' || m.flags || ' ') NOT LIKE '% \\Seen %' AND (' ' || m.flags || ' ') NOT LIKE '% \\Deleted %'
         AND m.blob_id NOT IN (SELECT blob_id FROM rule_notices WHERE blob_id IS NOT NULL)
       ORDER BY m.internal_date, m.uid LIMIT ?`,
    )
      .all(mailboxId, limit)
      .map((r: any) => ({ blobId: r.blob_id as string, internalDate: r.internal_date as string }));
  }

  async claimRuleNotice(n: Omit<RuleNotice, 'blobId'>) {
    // One statement: two runs racing for the same day send one notice.
    return this.q('INSERT OR IGNORE INTO rule_notices (mailbox_id, kind, day, level, sent_at) VALUES (?, ?, ?, ?, ?)').run(n.mailboxId, n.kind, n.day, n.level, n.sentAt).changes > 0;
  }

  async setRuleNoticeBlob(mailboxId: number, kind: RuleNotice['kind'], day: string, blobId: string) {
    this.q('UPDATE rule_notices SET blob_id = ? WHERE mailbox_id = ? AND kind = ? AND day = ?').run(blobId, mailboxId, kind, day);
  }

  async listRuleNotices(mailboxId: number) {
    return this.q('SELECT * FROM rule_notices WHERE mailbox_id = ? ORDER BY day, kind')
      .all(mailboxId)
      .map(rowRuleNotice);
  }

  async claimUrgencyReply(mailboxId: number, sender: string, at: number, since: number) {
    const r = this.q(
      `INSERT INTO urgency_replies (mailbox_id, sender, last_reply_at) VALUES (?, ?, ?)
       ON CONFLICT (mailbox_id, sender) DO UPDATE SET last_reply_at = excluded.last_reply_at WHERE urgency_replies.last_reply_at < ?`,
    ).run(mailboxId, sender.toLowerCase(), at, since);
    return r.changes > 0;
  }
}
