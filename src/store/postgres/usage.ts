// What the usage indicators and the metrics read (UsageStore) in PostgreSQL: counts only, never
// an address, a subject or content (docs/indicators.md).
import type { UsageConnectionCount, UsageMailboxCount, UsageMessageCount, UsageStore } from '../types.js';
import { PgPart } from './connection.js';
import { rowUsageConnection, rowUsageMessage, usageMailboxCounts } from '../rows.js';

export class PgUsage extends PgPart implements UsageStore {
  async usageMessages(from: string, to: string): Promise<UsageMessageCount[]> {
    // NULLS FIRST: SQLite's order (no structure before any structure).
    return (
      await this.query(
        `SELECT structure_id, mailbox_type, flow, peer, COUNT(*) n, SUM(attachment) a, SUM(xdm) x
         FROM usage_messages WHERE at >= $1 AND at < $2
         GROUP BY structure_id, mailbox_type, flow, peer ORDER BY structure_id NULLS FIRST, mailbox_type, flow, peer`,
        [from, to],
      )
    ).map(rowUsageMessage);
  }

  async usageMailboxes(from: string, to: string): Promise<UsageMailboxCount[]> {
    // A mailbox's state at `to`: its last change before `to`, else 'active' (every mailbox is
    // created active). One snapshot for both reads.
    return this.tx(async (c) => {
      const boxes = await c.query(
        `SELECT m.structure_id, m.type, m.created_at,
           COALESCE((SELECT c.state FROM mailbox_state_changes c WHERE c.mailbox_id = m.id AND c.at < $1 ORDER BY c.at DESC, c.id DESC LIMIT 1), 'active') state_then
         FROM mailboxes m WHERE m.created_at < $1`,
        [to],
      );
      const changes = await c.query(
        `SELECT m.structure_id, m.type, c.state, COUNT(*) n FROM mailbox_state_changes c JOIN mailboxes m ON m.id = c.mailbox_id
         WHERE c.at >= $1 AND c.at < $2 AND c.state IN ('suspended', 'deleted') GROUP BY m.structure_id, m.type, c.state`,
        [from, to],
      );
      return usageMailboxCounts(boxes.rows, changes.rows, from);
    }, 'repeatable read');
  }

  async usageConnections(from: string, to: string): Promise<UsageConnectionCount[]> {
    // actor IS NULL: authentication attempts; credential management (actor set) is not a connection.
    return (
      await this.query(
        `SELECT protocol, method, success, COUNT(*) n FROM auth_audit WHERE actor IS NULL AND at >= $1 AND at < $2
         GROUP BY protocol, method, success ORDER BY protocol, method, success DESC`,
        [from, to],
      )
    ).map(rowUsageConnection);
  }

  async queueStats() {
    const [r] = await this.query("SELECT COUNT(*) n, MIN(queued_at) oldest FROM outbound_queue WHERE status = 'queued'");
    return { depth: r.n as number, oldestQueuedAt: (r.oldest as number | null) ?? null };
  }

  async countLiveHttpSessions(now: number) {
    const [r] = await this.query("SELECT COUNT(*) n FROM http_sessions WHERE revoked_at IS NULL AND stage = 'full' AND expires_at > $1", [now]);
    return r.n as number;
  }
}
