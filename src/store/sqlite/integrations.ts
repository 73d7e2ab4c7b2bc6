// Medical software integration (IntegrationStore) in SQLite: API tokens (digests only) and
// webhooks with their feed cursor (docs/software-api.md).
import type { InboundMessage, IntegrationStore } from '../types.js';
import { now, SqlitePart } from './connection.js';
import { rowInboundMessage, rowToken, rowWebhook, rowWebhookWithSecret } from '../rows.js';


/** The INBOX of a mailbox: its messages are the inbound feed. */
const INBOX = "SELECT id FROM folders WHERE mailbox_id = ? AND name = 'INBOX'";

export class SqliteIntegrations extends SqlitePart implements IntegrationStore {
  async createApiToken(t: { userId: number; label: string; secretHash: string; createdBy: string }) {
    return rowToken(this.q('INSERT INTO api_tokens (user_id, label, secret_hash, created_at, created_by) VALUES (?, ?, ?, ?, ?) RETURNING *').get(t.userId, t.label, t.secretHash, now(), t.createdBy));
  }
  async findApiToken(secretHash: string) {
    return this.one('SELECT * FROM api_tokens WHERE secret_hash = ? AND revoked_at IS NULL', rowToken, secretHash);
  }
  async listApiTokens(userId?: number) {
    const rows = userId === undefined ? this.q('SELECT * FROM api_tokens ORDER BY id DESC').all() : this.q('SELECT * FROM api_tokens WHERE user_id = ? ORDER BY id DESC').all(userId);
    return rows.map(rowToken);
  }
  async touchApiToken(id: number, at: string, from: string | null) {
    this.q('UPDATE api_tokens SET last_used_at = ?, last_used_from = ? WHERE id = ?').run(at, from, id);
  }
  async revokeApiToken(id: number) {
    return this.one('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING *', rowToken, now(), id);
  }

  async createWebhook(w: { userId: number; mailboxId: number; url: string; secret: string; since: 'now' | 'all' }) {
    return this.db.transaction(() => {
      // 'now': start after the newest message of the INBOX at registration (same transaction).
      const top: any = w.since === 'now' ? this.q(`SELECT COALESCE(MAX(id), 0) m FROM messages WHERE folder_id IN (${INBOX})`).get(w.mailboxId) : { m: 0 };
      return rowWebhook(
        this.q('INSERT INTO webhooks (user_id, mailbox_id, url, secret, created_at, cursor) VALUES (?, ?, ?, ?, ?, ?) RETURNING *').get(w.userId, w.mailboxId, w.url, w.secret, now(), top.m),
      );
    })();
  }
  async getWebhook(id: number) {
    return this.one('SELECT * FROM webhooks WHERE id = ?', rowWebhookWithSecret, id);
  }
  async listWebhooks(filter: { userId?: number; mailboxId?: number } = {}) {
    return this.q('SELECT * FROM webhooks WHERE (? IS NULL OR user_id = ?) AND (? IS NULL OR mailbox_id = ?) ORDER BY id')
      .all(filter.userId ?? null, filter.userId ?? null, filter.mailboxId ?? null, filter.mailboxId ?? null)
      .map(rowWebhook);
  }
  async revokeWebhook(id: number) {
    return this.q('UPDATE webhooks SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(now(), id).changes > 0;
  }
  async dueWebhooks(nowMs: number, limit: number) {
    return this.q('SELECT * FROM webhooks WHERE revoked_at IS NULL AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?').all(nowMs, limit).map(rowWebhookWithSecret);
  }
  async webhookAcknowledged(id: number, from: number, cursor: number) {
    return (
      this.q('UPDATE webhooks SET cursor = ?, attempts = 0, next_attempt_at = 0, failing_since = NULL, last_error = NULL, delivered = delivered + 1 WHERE id = ? AND cursor = ?').run(cursor, id, from)
        .changes > 0
    );
  }
  async webhookFailed(id: number, f: { error: string; nextAttemptAt: number; failingSince: number }) {
    this.q('UPDATE webhooks SET attempts = attempts + 1, next_attempt_at = ?, failing_since = ?, last_error = ? WHERE id = ?').run(f.nextAttemptAt, f.failingSince, f.error, id);
  }
  async webhookAbandoned(id: number, from: number, cursor: number, error: string) {
    return (
      this.q('UPDATE webhooks SET cursor = ?, attempts = 0, next_attempt_at = 0, failing_since = NULL, last_error = ?, abandoned = abandoned + 1 WHERE id = ? AND cursor = ?').run(cursor, error, id, from)
        .changes > 0
    );
  }
  async inboundAfter(mailboxId: number, afterId: number, limit: number): Promise<InboundMessage[]> {
    return this.q(`SELECT id, folder_id, uid, blob_id, size, internal_date FROM messages WHERE folder_id IN (${INBOX}) AND id > ? ORDER BY id LIMIT ?`)
      .all(mailboxId, afterId, limit)
      .map(rowInboundMessage);
  }
}
