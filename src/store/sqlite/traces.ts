// Functional traces (TraceStore) in SQLite: one row per action on a mailbox, content-free
// (docs/traces.md).
import type { MailboxTrace, TraceStore } from '../types.js';
import { SqlitePart, type SqliteConnection } from './connection.js';
import { rowTrace } from '../rows.js';

/** One trace row, alone or inside the caller's transaction (a delivery's 'delivered' traces). */
export function insertTrace(c: SqliteConnection, t: Omit<MailboxTrace, 'id'>): void {
  c.q(
    `INSERT INTO mailbox_traces (at, mailbox_id, action, actor_user_id, actor_login, delegate, protocol, remote, detail)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  ).run(t.at, t.mailboxId, t.action, t.actorUserId, t.actorLogin, t.delegate ? 1 : 0, t.protocol, t.remote, JSON.stringify(t.detail));
}

export class SqliteTraces extends SqlitePart implements TraceStore {
  async recordTrace(t: Omit<MailboxTrace, 'id'>) {
    insertTrace(this.connection, t);
  }

  async listTraces(mailboxId: number, range: { from?: string; to?: string } = {}) {
    return this.q('SELECT * FROM mailbox_traces WHERE mailbox_id = ? AND at >= ? AND at < ? ORDER BY at, id')
      .all(mailboxId, range.from ?? '', range.to ?? '\uffff')
      .map(rowTrace);
  }

  async purgeTraces(before: string) {
    return this.q('DELETE FROM mailbox_traces WHERE at < ?').run(before).changes;
  }
}
