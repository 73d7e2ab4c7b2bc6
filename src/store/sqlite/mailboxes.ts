// Mailboxes (BAL) and grants (MailboxStore) in SQLite.
import { DEFAULT_FOLDERS, type GrantRight } from '../../model/index.js';
import type { MailboxStore, MailboxUpdate, NewMailbox } from '../types.js';
import { now, SqlitePart, wrapUnique } from './connection.js';
import { MAILBOX_UPDATE_COLUMNS, rowGrant, rowMailbox } from '../rows.js';

export class SqliteMailboxes extends SqlitePart implements MailboxStore {
  async createMailbox(m: NewMailbox) {
    return wrapUnique(`mailbox ${m.address}`, () =>
      this.db.transaction(() => {
        const t = now();
        const r = this.db
          .prepare(
            `INSERT INTO mailboxes (address, type, display_name, owner_user_id, practitioner_id, structure_id, liste_rouge, service, description, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
          )
          .get(m.address, m.type, m.displayName, m.ownerUserId, m.practitionerId, m.structureId, m.listeRouge ? 1 : 0, m.service ?? null, m.description ?? null, t, t);
        const mb = rowMailbox(r);
        const ins = this.q('INSERT INTO folders (mailbox_id, name, special_use, uid_validity) VALUES (?, ?, ?, ?)');
        // RFC 9051 §2.3.1.1: UIDVALIDITY must change if UIDs are reassigned; folders created later
        // take values above last_uid_validity (see createFolder).
        const uv = Math.floor(Date.now() / 1000) >>> 0;
        for (const f of DEFAULT_FOLDERS) ins.run(mb.id, f.name, f.specialUse, uv);
        this.q('UPDATE mailboxes SET last_uid_validity = ? WHERE id = ?').run(uv, mb.id);
        return mb;
      })(),
    );
  }
  async getMailbox(id: number) {
    return this.one('SELECT * FROM mailboxes WHERE id = ?', rowMailbox, id);
  }
  async findMailboxByAddress(address: string) {
    return this.one('SELECT * FROM mailboxes WHERE address = ?', rowMailbox, address);
  }
  async listMailboxes(filter: Parameters<MailboxStore['listMailboxes']>[0] = {}) {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.ownerUserId !== undefined) (where.push('owner_user_id = ?'), args.push(filter.ownerUserId));
    if (filter.state !== undefined) (where.push('state = ?'), args.push(filter.state));
    if (filter.structureId !== undefined) (where.push('structure_id = ?'), args.push(filter.structureId));
    if (filter.type !== undefined) (where.push('type = ?'), args.push(filter.type));
    const sql = `SELECT * FROM mailboxes ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id`;
    return this.q(sql).all(...args).map(rowMailbox);
  }
  async updateMailbox(id: number, u: MailboxUpdate) {
    const sets: string[] = [];
    const args: unknown[] = [];
    for (const [k, col] of MAILBOX_UPDATE_COLUMNS) if (u[k] !== undefined) (sets.push(`${col} = ?`), args.push(u[k]));
    if (u.listeRouge !== undefined) (sets.push('liste_rouge = ?'), args.push(u.listeRouge ? 1 : 0));
    sets.push('updated_at = ?');
    args.push(now());
    return this.db.transaction(() => {
      const r = this.q(`UPDATE mailboxes SET ${sets.join(', ')} WHERE id = ? RETURNING *`).get(...args, id);
      if (!r) throw new Error(`mailbox #${id} not found`);
      if (u.state === 'deleted') {
        // A deleted address is never reused and never read again: its folders and messages go in
        // the same transaction (their files follow through blob_garbage), the address row stays.
        const folders = 'SELECT id FROM folders WHERE mailbox_id = ?';
        this.q(`DELETE FROM messages WHERE folder_id IN (${folders})`).run(id);
        this.q(`DELETE FROM expunged WHERE folder_id IN (${folders})`).run(id);
        this.q('DELETE FROM folders WHERE mailbox_id = ?').run(id);
        this.q('DELETE FROM subscriptions WHERE mailbox_id = ?').run(id);
        this.q('DELETE FROM grants WHERE mailbox_id = ?').run(id);
        // Its delivery tracking too (subjects are content; docs/receipts.md): queued items keep
        // going, untracked.
        const subs = 'SELECT id FROM submissions WHERE mailbox_id = ?';
        this.q(`UPDATE outbound_queue SET submission_id = NULL, submission_recipient_id = NULL WHERE submission_id IN (${subs})`).run(id);
        this.q('DELETE FROM submissions WHERE mailbox_id = ?').run(id); // recipients: ON DELETE CASCADE
      }
      return rowMailbox(r);
    })();
  }

  async setGrant(mailboxId: number, userId: number, rights: GrantRight[]) {
    const r = this.db
      .prepare(
        `INSERT INTO grants (mailbox_id, user_id, rights, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (mailbox_id, user_id) DO UPDATE SET rights = excluded.rights RETURNING *`,
      )
      .get(mailboxId, userId, [...new Set(rights)].sort().join(','), now());
    return rowGrant(r);
  }
  async removeGrant(mailboxId: number, userId: number) {
    return this.q('DELETE FROM grants WHERE mailbox_id = ? AND user_id = ?').run(mailboxId, userId).changes > 0;
  }
  async listGrants(filter: { mailboxId?: number; userId?: number } = {}) {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.mailboxId !== undefined) (where.push('mailbox_id = ?'), args.push(filter.mailboxId));
    if (filter.userId !== undefined) (where.push('user_id = ?'), args.push(filter.userId));
    return this.db
      .prepare(`SELECT * FROM grants ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id`)
      .all(...args)
      .map(rowGrant);
  }
}
