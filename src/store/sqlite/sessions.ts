// Web sessions (HttpSessionStore) in SQLite: a digest of each token, never the token.
import type { HttpSession } from '../../model/index.js';
import type { HttpSessionStore } from '../types.js';
import { SqlitePart } from './connection.js';
import { rowSession } from '../rows.js';

export class SqliteHttpSessions extends SqlitePart implements HttpSessionStore {
  async createHttpSession(s: Omit<HttpSession, 'id' | 'revokedAt'> & { tokenHash: string }) {
    return rowSession(
      this.q(
        'INSERT INTO http_sessions (token_hash, user_id, method, stage, csrf_token, created_at, last_seen_at, expires_at, remote, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *',
      ).get(s.tokenHash, s.userId, s.method, s.stage, s.csrfToken, s.createdAt, s.lastSeenAt, s.expiresAt, s.remote, s.userAgent),
    );
  }
  async findHttpSession(tokenHash: string) {
    return this.one('SELECT * FROM http_sessions WHERE token_hash = ? AND revoked_at IS NULL', rowSession, tokenHash);
  }
  async touchHttpSession(id: number, lastSeenAt: number) {
    this.q('UPDATE http_sessions SET last_seen_at = ? WHERE id = ?').run(lastSeenAt, id);
  }
  async listHttpSessions(userId: number, at: number) {
    return this.q('SELECT * FROM http_sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY last_seen_at DESC').all(userId, at).map(rowSession);
  }
  async revokeHttpSession(userId: number, id: number) {
    return this.q('UPDATE http_sessions SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL').run(Date.now(), id, userId).changes > 0;
  }
  async revokeHttpSessions(userId: number, exceptId?: number) {
    return this.q('UPDATE http_sessions SET revoked_at = ? WHERE user_id = ? AND id != ? AND revoked_at IS NULL').run(Date.now(), userId, exceptId ?? -1).changes;
  }
}
