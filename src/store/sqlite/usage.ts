// What the usage indicators and the metrics read (UsageStore) in SQLite: counts only, never an
// address, a subject or content (docs/indicators.md).
import type { UsageConnectionCount, UsageMailboxCount, UsageMessageCount, UsageStore } from '../types.js';
import { SqlitePart } from './connection.js';
import { rowUsageConnection, rowUsageMessage, usageMailboxCounts } from '../rows.js';

export class SqliteUsage extends SqlitePart implements UsageStore {
  async usageMessages(from: string, to: string): Promise<UsageMessageCount[]> {
    return this.q(
      `SELECT structure_id, mailbox_type, flow, peer, COUNT(*) n, SUM(attachment) a, SUM(xdm) x
       FROM usage_messages WHERE at >= ? AND at < ?
       GROUP BY structure_id, mailbox_type, flow, peer ORDER BY structure_id, mailbox_type, flow, peer`,
    )
      .all(from, to)
      .map(rowUsageMessage);
  }

  async usageMailboxes(from: string, to: string): Promise<UsageMailboxCount[]> {
    // A mailbox's state at `to`: its last change before `to`, else 'active' (every mailbox is
    // created active).
    const boxes = this.q(
      `SELECT m.structure_id, m.type, m.created_at,
         COALESCE((SELECT c.state FROM mailbox_state_changes c WHERE c.mailbox_id = m.id AND c.at < ? ORDER BY c.at DESC, c.id DESC LIMIT 1), 'active') state_then
       FROM mailboxes m WHERE m.created_at < ?`,
    ).all(to, to);
    const changes = this.q(
      `SELECT m.structure_id, m.type, c.state, COUNT(*) n FROM mailbox_state_changes c JOIN mailboxes m ON m.id = c.mailbox_id
       WHERE c.at >= ? AND c.at < ? AND c.state IN ('suspended', 'deleted') GROUP BY m.structure_id, m.type, c.state`,
    ).all(from, to);
    return usageMailboxCounts(boxes, changes, from);
  }

  async usageConnections(from: string, to: string): Promise<UsageConnectionCount[]> {
    // actor IS NULL: authentication attempts; credential management (actor set) is not a connection.
    return this.q(
      `SELECT protocol, method, success, COUNT(*) n FROM auth_audit WHERE actor IS NULL AND at >= ? AND at < ?
       GROUP BY protocol, method, success ORDER BY protocol, method, success DESC`,
    )
      .all(from, to)
      .map(rowUsageConnection);
  }

  async queueStats() {
    const r: any = this.q("SELECT COUNT(*) n, MIN(queued_at) oldest FROM outbound_queue WHERE status = 'queued'").get();
    return { depth: r.n as number, oldestQueuedAt: (r.oldest as number | null) ?? null };
  }

  async countLiveHttpSessions(now: number) {
    const r: any = this.q("SELECT COUNT(*) n FROM http_sessions WHERE revoked_at IS NULL AND stage = 'full' AND expires_at > ?").get(now);
    return r.n as number;
  }
}
