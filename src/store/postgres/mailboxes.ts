// Mailboxes (BAL) and grants (MailboxStore) in PostgreSQL.
import { DEFAULT_FOLDERS, type GrantRight } from '../../model/index.js';
import type { MailboxStore, MailboxUpdate, NewMailbox } from '../types.js';
import { now, PgPart, wrapUnique } from './connection.js';
import { checkStorableName, hasNul, storable } from './text.js';
import { MAILBOX_UPDATE_COLUMNS, rowGrant, rowMailbox } from '../rows.js';

export class PgMailboxes extends PgPart implements MailboxStore {
  async createMailbox(m: NewMailbox) {
    // Addresses are unique whatever the case of their ASCII letters (the mailboxes_address index
    // on lower(address) in the "C" collation: SQLite's NOCASE, migrations.ts).
    checkStorableName('address', m.address);
    return wrapUnique(`mailbox ${m.address}`, () =>
      this.tx(async (c) => {
        const t = now();
        // RFC 9051 §2.3.1.1: UIDVALIDITY must change if UIDs are reassigned; folders created later
        // take values above last_uid_validity (folders-shared.ts nextUidValidity).
        const uv = Math.floor(Date.now() / 1000) >>> 0;
        const r = await c.query(
          `INSERT INTO mailboxes (address, type, display_name, owner_user_id, practitioner_id, structure_id, liste_rouge, service, description, created_at, updated_at, last_uid_validity)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING *`,
          [m.address, m.type, storable(m.displayName), m.ownerUserId, m.practitionerId, m.structureId, m.listeRouge ? 1 : 0, storable(m.service ?? null), storable(m.description ?? null), t, t, uv],
        );
        const mb = rowMailbox(r.rows[0]);
        await c.query('INSERT INTO folders (mailbox_id, name, special_use, uid_validity) SELECT $1, name, special_use, $4 FROM unnest($2::text[], $3::text[]) AS f(name, special_use)', [
          mb.id,
          DEFAULT_FOLDERS.map((f) => f.name),
          DEFAULT_FOLDERS.map((f) => f.specialUse),
          uv,
        ]);
        return mb;
      }),
    );
  }
  async getMailbox(id: number) {
    return this.one('SELECT * FROM mailboxes WHERE id = $1', rowMailbox, id);
  }
  async findMailboxByAddress(address: string) {
    if (hasNul(address)) return undefined; // no stored address has one (text.ts)
    return this.one('SELECT * FROM mailboxes WHERE lower(address) = lower($1::text COLLATE "C")', rowMailbox, address);
  }
  async listMailboxes(filter: Parameters<MailboxStore['listMailboxes']>[0] = {}) {
    const where: string[] = [];
    const args: unknown[] = [];
    const add = (col: string, v: unknown) => (args.push(v), where.push(`${col} = $${args.length}`));
    if (filter.ownerUserId !== undefined) add('owner_user_id', filter.ownerUserId);
    if (filter.state !== undefined) add('state', filter.state);
    if (filter.structureId !== undefined) add('structure_id', filter.structureId);
    if (filter.type !== undefined) add('type', filter.type);
    return (await this.query(`SELECT * FROM mailboxes ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id`, args)).map(rowMailbox);
  }
  async updateMailbox(id: number, u: MailboxUpdate) {
    const sets: string[] = [];
    const args: unknown[] = [];
    const set = (col: string, v: unknown) => (args.push(v), sets.push(`${col} = $${args.length}`));
    for (const [k, col] of MAILBOX_UPDATE_COLUMNS) if (u[k] !== undefined) set(col, typeof u[k] === 'string' ? storable(u[k] as string) : u[k]);
    if (u.listeRouge !== undefined) set('liste_rouge', u.listeRouge ? 1 : 0);
    set('updated_at', now());
    args.push(id);
    return this.tx(async (c) => {
      const r = await c.query(`UPDATE mailboxes SET ${sets.join(', ')} WHERE id = $${args.length} RETURNING *`, args);
      if (!r.rows.length) throw new Error(`mailbox #${id} not found`);
      if (u.state === 'deleted') {
        // A deleted address is never reused and never read again: its folders and messages go in
        // the same transaction (their files follow through blob_garbage), the address row stays.
        const folders = 'SELECT id FROM folders WHERE mailbox_id = $1';
        // Folder rows first, as a delivery or an append locks them (uid_next) before inserting a
        // message: one on another node waits for this deletion instead of slipping a message in
        // between the two DELETEs (which would fail this one's folder DELETE on the foreign key).
        await c.query(`${folders} ORDER BY id FOR UPDATE`, [id]);
        await c.query(`DELETE FROM messages WHERE folder_id IN (${folders})`, [id]);
        await c.query(`DELETE FROM expunged WHERE folder_id IN (${folders})`, [id]);
        await c.query('DELETE FROM folders WHERE mailbox_id = $1', [id]);
        await c.query('DELETE FROM subscriptions WHERE mailbox_id = $1', [id]);
        await c.query('DELETE FROM grants WHERE mailbox_id = $1', [id]);
        // Its delivery tracking too (subjects are content; docs/receipts.md): queued items keep
        // going, untracked.
        const subs = 'SELECT id FROM submissions WHERE mailbox_id = $1';
        await c.query(`UPDATE outbound_queue SET submission_id = NULL, submission_recipient_id = NULL WHERE submission_id IN (${subs})`, [id]);
        await c.query('DELETE FROM submissions WHERE mailbox_id = $1', [id]); // recipients: ON DELETE CASCADE
      }
      return rowMailbox(r.rows[0]);
    });
  }

  async setGrant(mailboxId: number, userId: number, rights: GrantRight[]) {
    const [r] = await this.query(
      `INSERT INTO grants (mailbox_id, user_id, rights, created_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (mailbox_id, user_id) DO UPDATE SET rights = excluded.rights RETURNING *`,
      [mailboxId, userId, [...new Set(rights)].sort().join(','), now()],
    );
    return rowGrant(r);
  }
  async removeGrant(mailboxId: number, userId: number) {
    return (await this.run('DELETE FROM grants WHERE mailbox_id = $1 AND user_id = $2', [mailboxId, userId])) > 0;
  }
  async listGrants(filter: { mailboxId?: number; userId?: number } = {}) {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.mailboxId !== undefined) (args.push(filter.mailboxId), where.push(`mailbox_id = $${args.length}`));
    if (filter.userId !== undefined) (args.push(filter.userId), where.push(`user_id = $${args.length}`));
    return (await this.query(`SELECT * FROM grants ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id`, args)).map(rowGrant);
  }
}
