// Web sessions (HttpSessionStore) in PostgreSQL: a digest of each token, never the token.
import type { HttpSession } from '../../model/index.js';
import type { HttpSessionStore } from '../types.js';
import { PgPart } from './connection.js';
import { hasNul, storable } from './text.js';
import { rowSession } from '../rows.js';

export class PgHttpSessions extends PgPart implements HttpSessionStore {
  async createHttpSession(s: Omit<HttpSession, 'id' | 'revokedAt'> & { tokenHash: string }) {
    const [r] = await this.query(
      'INSERT INTO http_sessions (token_hash, user_id, method, stage, csrf_token, created_at, last_seen_at, expires_at, remote, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *',
      [s.tokenHash, s.userId, s.method, s.stage, s.csrfToken, s.createdAt, s.lastSeenAt, s.expiresAt, storable(s.remote), storable(s.userAgent)],
    );
    return rowSession(r);
  }
  async findHttpSession(tokenHash: string) {
    if (hasNul(tokenHash)) return undefined; // no stored digest has one (text.ts)
    return this.one('SELECT * FROM http_sessions WHERE token_hash = $1 AND revoked_at IS NULL', rowSession, tokenHash);
  }
  async touchHttpSession(id: number, lastSeenAt: number) {
    await this.query('UPDATE http_sessions SET last_seen_at = $1 WHERE id = $2', [lastSeenAt, id]);
  }
  async listHttpSessions(userId: number, at: number) {
    return (await this.query('SELECT * FROM http_sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY last_seen_at DESC', [userId, at])).map(rowSession);
  }
  async revokeHttpSession(userId: number, id: number) {
    return (await this.run('UPDATE http_sessions SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL', [Date.now(), id, userId])) > 0;
  }
  async revokeHttpSessions(userId: number, exceptId?: number) {
    return (await this.run('UPDATE http_sessions SET revoked_at = $1 WHERE user_id = $2 AND id <> $3 AND revoked_at IS NULL', [Date.now(), userId, exceptId ?? -1]));
  }
}
