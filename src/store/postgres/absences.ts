// Absence messages (AbsenceStore) in PostgreSQL: the settings of each mailbox and, per sender,
// when the last reply went out.
import type { AbsenceSettings, AbsenceStore } from '../types.js';
import { now, PgPart } from './connection.js';
import { storable } from './text.js';
import { rowAbsence } from '../rows.js';
import { openAbsenceTexts, sealBytes, type SealedColumn } from '../sealed-rows.js';

export class PgAbsences extends PgPart implements AbsenceStore {
  async getAbsence(mailboxId: number) {
    return this.one('SELECT * FROM absences WHERE mailbox_id = $1', (r) => rowAbsence(openAbsenceTexts(this.connection.sealer, r)), mailboxId);
  }

  async setAbsence(s: Omit<AbsenceSettings, 'updatedAt'>) {
    return this.tx(async (c) => {
      // A new absence starts a new period for every sender.
      await c.query('DELETE FROM absence_replies WHERE mailbox_id = $1', [s.mailboxId]);
      // The texts a professional writes: BYTEA (migration 4), sealed at rest when encryption is on (docs/encryption.md, "Values in rows").
      const seal = (column: SealedColumn, v: string | null) => sealBytes(this.connection.sealer, column, s.mailboxId, storable(v));
      const r = await c.query(
        `INSERT INTO absences (mailbox_id, starts_at, ends_at, subject, body, external_body, substitute, updated_at, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (mailbox_id) DO UPDATE SET starts_at = excluded.starts_at, ends_at = excluded.ends_at, subject = excluded.subject, body = excluded.body,
           external_body = excluded.external_body, substitute = excluded.substitute, updated_at = excluded.updated_at, updated_by = excluded.updated_by
         RETURNING *`,
        [s.mailboxId, s.startsAt, s.endsAt, seal('absences.subject', s.subject), seal('absences.body', s.body), seal('absences.external_body', s.externalBody), storable(s.substitute), now(), s.updatedBy],
      );
      return rowAbsence(openAbsenceTexts(this.connection.sealer, r.rows[0]));
    });
  }

  async clearAbsence(mailboxId: number) {
    return this.tx(async (c) => {
      await c.query('DELETE FROM absence_replies WHERE mailbox_id = $1', [mailboxId]);
      return ((await c.query('DELETE FROM absences WHERE mailbox_id = $1', [mailboxId])).rowCount ?? 0) > 0;
    });
  }

  async claimAbsenceReply(mailboxId: number, sender: string, at: number, since: number) {
    // Senders are compared as SQLite does: lower-cased here (JavaScript: every script, RFC 6531
    // addresses too), then NOCASE (lower() in the "C" collation: ASCII letters only). One statement, so two deliveries racing for the same sender (on two nodes) cannot both
    // win: the loser's upsert waits for the winner's row, then its WHERE sees the new time.
    const rows = await this.query(
      `INSERT INTO absence_replies (mailbox_id, sender, last_reply_at) VALUES ($1, $2, $3)
       ON CONFLICT (mailbox_id, lower(sender)) DO UPDATE SET last_reply_at = excluded.last_reply_at WHERE absence_replies.last_reply_at < $4
       RETURNING mailbox_id`,
      [mailboxId, storable(sender.toLowerCase()), at, since],
    );
    return rows.length > 0;
  }

  async lastAbsenceReply(mailboxId: number, sender: string) {
    return this.one('SELECT last_reply_at FROM absence_replies WHERE mailbox_id = $1 AND lower(sender) = lower($2::text COLLATE "C")', (r) => r.last_reply_at as number, mailboxId, storable(sender.toLowerCase()));
  }
}
