// Absence messages (AbsenceStore) in SQLite: the settings of each mailbox and, per sender, when
// the last reply went out.
import type { AbsenceSettings, AbsenceStore } from '../types.js';
import { now, SqlitePart } from './connection.js';
import { rowAbsence } from '../rows.js';
import { openAbsenceTexts, sealValue } from '../sealed-rows.js';

export class SqliteAbsences extends SqlitePart implements AbsenceStore {
  async getAbsence(mailboxId: number) {
    const r = this.q('SELECT * FROM absences WHERE mailbox_id = ?').get(mailboxId);
    return r ? rowAbsence(openAbsenceTexts(this.connection.sealer, r as any)) : undefined;
  }

  async setAbsence(s: Omit<AbsenceSettings, 'updatedAt'>) {
    return this.db.transaction(() => {
      // A new absence starts a new period for every sender.
      this.q('DELETE FROM absence_replies WHERE mailbox_id = ?').run(s.mailboxId);
      // The texts a professional writes are sealed at rest (docs/encryption.md, "Values in rows").
      const seal = (column: 'absences.subject' | 'absences.body' | 'absences.external_body', v: string | null) => sealValue(this.connection.sealer, column, s.mailboxId, v);
      const r = this.q(
        `INSERT OR REPLACE INTO absences (mailbox_id, starts_at, ends_at, subject, body, external_body, substitute, updated_at, updated_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
      ).get(s.mailboxId, s.startsAt, s.endsAt, seal('absences.subject', s.subject), seal('absences.body', s.body), seal('absences.external_body', s.externalBody), s.substitute, now(), s.updatedBy);
      return rowAbsence({ ...(r as object), subject: s.subject, body: s.body, external_body: s.externalBody });
    })();
  }

  async clearAbsence(mailboxId: number) {
    return this.db.transaction(() => {
      this.q('DELETE FROM absence_replies WHERE mailbox_id = ?').run(mailboxId);
      return this.q('DELETE FROM absences WHERE mailbox_id = ?').run(mailboxId).changes > 0;
    })();
  }

  async claimAbsenceReply(mailboxId: number, sender: string, at: number, since: number) {
    // One statement, so two deliveries racing for the same sender cannot both win.
    const r = this.q(
      `INSERT INTO absence_replies (mailbox_id, sender, last_reply_at) VALUES (?, ?, ?)
       ON CONFLICT (mailbox_id, sender) DO UPDATE SET last_reply_at = excluded.last_reply_at WHERE absence_replies.last_reply_at < ?`,
    ).run(mailboxId, sender.toLowerCase(), at, since);
    return r.changes > 0;
  }

  async lastAbsenceReply(mailboxId: number, sender: string) {
    const r: any = this.q('SELECT last_reply_at FROM absence_replies WHERE mailbox_id = ? AND sender = ?').get(mailboxId, sender.toLowerCase());
    return r?.last_reply_at as number | undefined;
  }
}
