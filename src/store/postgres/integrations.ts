// Medical software integration (IntegrationStore) in PostgreSQL: API tokens (digests only) and
// webhooks with their feed cursor (docs/software-api.md).
import type { InboundMessage, IntegrationStore } from '../types.js';
import { now, PgPart } from './connection.js';
import { hasNul, storable } from './text.js';
import { rowInboundMessage, rowToken, rowWebhook, rowWebhookWithSecret } from '../rows.js';


/** The INBOX of mailbox $1: its messages are the inbound feed. */
const INBOX = "SELECT id FROM folders WHERE mailbox_id = $1 AND name = 'INBOX'";

export class PgIntegrations extends PgPart implements IntegrationStore {
  async createApiToken(t: { userId: number; label: string; secretHash: string; createdBy: string }) {
    const [r] = await this.query('INSERT INTO api_tokens (user_id, label, secret_hash, created_at, created_by) VALUES ($1, $2, $3, $4, $5) RETURNING *', [
      t.userId,
      storable(t.label),
      t.secretHash,
      now(),
      storable(t.createdBy),
    ]);
    return rowToken(r);
  }
  async findApiToken(secretHash: string) {
    if (hasNul(secretHash)) return undefined; // no stored digest has one (text.ts)
    return this.one('SELECT * FROM api_tokens WHERE secret_hash = $1 AND revoked_at IS NULL', rowToken, secretHash);
  }
  async listApiTokens(userId?: number) {
    const rows = userId === undefined ? await this.query('SELECT * FROM api_tokens ORDER BY id DESC') : await this.query('SELECT * FROM api_tokens WHERE user_id = $1 ORDER BY id DESC', [userId]);
    return rows.map(rowToken);
  }
  async touchApiToken(id: number, at: string, from: string | null) {
    await this.query('UPDATE api_tokens SET last_used_at = $1, last_used_from = $2 WHERE id = $3', [at, storable(from), id]);
  }
  async revokeApiToken(id: number) {
    return this.one('UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING *', rowToken, now(), id);
  }

  async createWebhook(w: { userId: number; mailboxId: number; url: string; secret: string; since: 'now' | 'all' }) {
    // 'now': start after the newest message of the INBOX at registration (one statement). Under
    // READ COMMITTED a delivery committing meanwhile is either seen (skipped) or later (fed).
    const [r] = await this.query(
      `INSERT INTO webhooks (user_id, mailbox_id, url, secret, created_at, cursor)
       VALUES ($2, $1, $3, $4, $5, CASE WHEN $6 THEN (SELECT COALESCE(MAX(id), 0) FROM messages WHERE folder_id IN (${INBOX})) ELSE 0 END) RETURNING *`,
      [w.mailboxId, w.userId, w.url, w.secret, now(), w.since === 'now'],
    );
    return rowWebhook(r);
  }
  async getWebhook(id: number) {
    return this.one('SELECT * FROM webhooks WHERE id = $1', rowWebhookWithSecret, id);
  }
  async listWebhooks(filter: { userId?: number; mailboxId?: number } = {}) {
    return (
      await this.query('SELECT * FROM webhooks WHERE ($1::bigint IS NULL OR user_id = $1) AND ($2::bigint IS NULL OR mailbox_id = $2) ORDER BY id', [filter.userId ?? null, filter.mailboxId ?? null])
    ).map(rowWebhook);
  }
  async revokeWebhook(id: number) {
    return (await this.run('UPDATE webhooks SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [now(), id])) > 0;
  }
  async dueWebhooks(nowMs: number, limit: number) {
    return (await this.query('SELECT * FROM webhooks WHERE revoked_at IS NULL AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2', [nowMs, limit])).map(rowWebhookWithSecret);
  }
  async webhookAcknowledged(id: number, from: number, cursor: number) {
    // Compare-and-set on the cursor: of two nodes acknowledging the same event, one wins.
    return (
      (
        await this.query(
          'UPDATE webhooks SET cursor = $1, attempts = 0, next_attempt_at = 0, failing_since = NULL, last_error = NULL, delivered = delivered + 1 WHERE id = $2 AND cursor = $3 RETURNING id',
          [cursor, id, from],
        )
      ).length > 0
    );
  }
  async webhookFailed(id: number, f: { error: string; nextAttemptAt: number; failingSince: number }) {
    await this.query('UPDATE webhooks SET attempts = attempts + 1, next_attempt_at = $1, failing_since = $2, last_error = $3 WHERE id = $4', [f.nextAttemptAt, f.failingSince, storable(f.error), id]);
  }
  async webhookAbandoned(id: number, from: number, cursor: number, error: string) {
    return (
      (
        await this.query(
          'UPDATE webhooks SET cursor = $1, attempts = 0, next_attempt_at = 0, failing_since = NULL, last_error = $2, abandoned = abandoned + 1 WHERE id = $3 AND cursor = $4 RETURNING id',
          [cursor, storable(error), id, from],
        )
      ).length > 0
    );
  }
  async inboundAfter(mailboxId: number, afterId: number, limit: number): Promise<InboundMessage[]> {
    return (
      await this.query(`SELECT id, folder_id, uid, blob_id, size, internal_date FROM messages WHERE folder_id IN (${INBOX}) AND id > $2 ORDER BY id LIMIT $3`, [mailboxId, afterId, limit])
    ).map(rowInboundMessage);
  }
}
