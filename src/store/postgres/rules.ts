// Golden rules 1, 2 and 4 (RulesStore) in PostgreSQL: mailbox activity, rule notices, urgency replies.
import type { ActivityKind, MailboxActivity, RuleNotice, RulesStore } from '../types.js';
import { PgPart } from './connection.js';
import { storable } from './text.js';
import { ACTIVITY_COLUMN, LIFECYCLE_COLUMN, rowActivity, rowRuleNotice } from '../rows.js';

export class PgRules extends PgPart implements RulesStore {
  async recordActivity(mailboxIds: number[], kind: ActivityKind, at: number) {
    const col = ACTIVITY_COLUMN[kind];
    // Sorted ids: two nodes recording activity of the same mailboxes lock them in one order.
    const ids = [...new Set(mailboxIds)].sort((a, b) => a - b);
    if (!ids.length) return;
    await this.query(
      `INSERT INTO mailbox_activity (mailbox_id, ${col}) SELECT id, $2::bigint FROM unnest($1::bigint[]) AS ids(id)
       ON CONFLICT (mailbox_id) DO UPDATE SET ${col} = GREATEST(COALESCE(mailbox_activity.${col}, 0), excluded.${col})`,
      [ids, at],
    );
  }

  async getActivity(mailboxId: number) {
    return this.one('SELECT * FROM mailbox_activity WHERE mailbox_id = $1', rowActivity, mailboxId);
  }

  async updateActivity(mailboxId: number, u: Partial<Omit<MailboxActivity, 'mailboxId' | 'lastLoginAt' | 'lastReadAt' | 'lastSentAt'>>) {
    const entries = Object.entries(u).filter(([k, v]) => v !== undefined && LIFECYCLE_COLUMN[k]);
    return this.tx(async (c) => {
      await c.query('INSERT INTO mailbox_activity (mailbox_id) VALUES ($1) ON CONFLICT (mailbox_id) DO NOTHING', [mailboxId]);
      if (entries.length)
        await c.query(`UPDATE mailbox_activity SET ${entries.map(([k], i) => `${LIFECYCLE_COLUMN[k]} = $${i + 2}`).join(', ')} WHERE mailbox_id = $1`, [mailboxId, ...entries.map(([, v]) => (typeof v === 'string' ? storable(v) : v))]);
      return rowActivity((await c.query('SELECT * FROM mailbox_activity WHERE mailbox_id = $1', [mailboxId])).rows[0]);
    });
  }

  async unreadMessages(mailboxId: number, limit: number) {
    // Flags are one space-separated string: ' \seen ' in its lower-case padded form (SQLite's LIKE
    // compares ASCII case-insensitively; PostgreSQL's LIKE would read the backslash as an escape).
    return (
      await this.query(
        `SELECT m.blob_id, m.internal_date FROM messages m JOIN folders f ON f.id = m.folder_id
         WHERE f.mailbox_id = $1 AND f.name = 'INBOX'
           AND strpos(lower(' ' || m.flags || ' '), ' \\seen ') = 0 AND strpos(lower(' ' || m.flags || ' '), ' \\deleted ') = 0
           AND NOT EXISTS (SELECT 1 FROM rule_notices n WHERE n.blob_id = m.blob_id)
         ORDER BY m.internal_date, m.uid LIMIT $2`,
        [mailboxId, limit],
      )
    ).map((r: any) => ({ blobId: r.blob_id as string, internalDate: r.internal_date as string }));
  }

  async claimRuleNotice(n: Omit<RuleNotice, 'blobId'>) {
    // One statement: two runs (two nodes) racing for the same day send one notice.
    const rows = await this.query('INSERT INTO rule_notices (mailbox_id, kind, day, level, sent_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING mailbox_id', [
      n.mailboxId,
      n.kind,
      n.day,
      n.level,
      n.sentAt,
    ]);
    return rows.length > 0;
  }

  async setRuleNoticeBlob(mailboxId: number, kind: RuleNotice['kind'], day: string, blobId: string) {
    await this.query('UPDATE rule_notices SET blob_id = $1 WHERE mailbox_id = $2 AND kind = $3 AND day = $4', [blobId, mailboxId, kind, day]);
  }

  async listRuleNotices(mailboxId: number) {
    return (await this.query('SELECT * FROM rule_notices WHERE mailbox_id = $1 ORDER BY day, kind', [mailboxId])).map(rowRuleNotice);
  }

  async claimUrgencyReply(mailboxId: number, sender: string, at: number, since: number) {
    const rows = await this.query(
      `INSERT INTO urgency_replies (mailbox_id, sender, last_reply_at) VALUES ($1, $2, $3)
       ON CONFLICT (mailbox_id, lower(sender)) DO UPDATE SET last_reply_at = excluded.last_reply_at WHERE urgency_replies.last_reply_at < $4
       RETURNING mailbox_id`,
      [mailboxId, storable(sender.toLowerCase()), at, since],
    );
    return rows.length > 0;
  }
}
