// Functional traces (TraceStore) in PostgreSQL: one row per action on a mailbox, content-free
// (docs/traces.md).
import type { MailboxTrace, TraceStore } from '../types.js';
import { PgPart } from './connection.js';
import { storable } from './text.js';
import { rowTrace } from '../rows.js';

/** One trace row's statement, alone or inside the caller's transaction (a delivery's 'delivered' traces). */
export function traceStatement(t: Omit<MailboxTrace, 'id'>): [string, unknown[]] {
  return [
    `INSERT INTO mailbox_traces (at, mailbox_id, action, actor_user_id, actor_login, delegate, protocol, remote, detail)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [t.at, t.mailboxId, t.action, t.actorUserId, storable(t.actorLogin), t.delegate ? 1 : 0, t.protocol, storable(t.remote), JSON.stringify(t.detail)],
  ];
}

export class PgTraces extends PgPart implements TraceStore {
  async recordTrace(t: Omit<MailboxTrace, 'id'>) {
    await this.query(...traceStatement(t));
  }

  async listTraces(mailboxId: number, range: { from?: string; to?: string } = {}) {
    return (
      await this.query('SELECT * FROM mailbox_traces WHERE mailbox_id = $1 AND ($2::text IS NULL OR at >= $2) AND ($3::text IS NULL OR at < $3) ORDER BY at, id', [
        mailboxId,
        range.from ?? null,
        range.to ?? null,
      ])
    ).map(rowTrace);
  }

  async purgeTraces(before: string) {
    return (await this.run('DELETE FROM mailbox_traces WHERE at < $1', [before]));
  }
}
