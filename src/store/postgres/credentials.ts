// Second factors, app passwords and the authentication audit trail (CredentialStore) in PostgreSQL.
import type { AuthAuditEntry, CredentialStore } from '../types.js';
import { now, PgPart } from './connection.js';
import { hasNul, storable } from './text.js';
import { rowAppPassword, rowAuthAudit, rowTotp } from '../rows.js';

export class PgCredentials extends PgPart implements CredentialStore {
  async createAppPassword(a: { userId: number; label: string; secretHash: string }) {
    const [r] = await this.query('INSERT INTO app_passwords (user_id, label, secret_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING *', [a.userId, storable(a.label), a.secretHash, now()]);
    return rowAppPassword(r);
  }
  async listAppPasswords(userId: number) {
    return (await this.query('SELECT * FROM app_passwords WHERE user_id = $1 ORDER BY id DESC', [userId])).map(rowAppPassword);
  }
  async findAppPassword(userId: number, secretHash: string) {
    if (hasNul(secretHash)) return undefined; // no stored digest has one (text.ts)
    return this.one('SELECT * FROM app_passwords WHERE user_id = $1 AND secret_hash = $2 AND revoked_at IS NULL', rowAppPassword, userId, secretHash);
  }
  async touchAppPassword(id: number, at: string, from: string | null) {
    await this.query('UPDATE app_passwords SET last_used_at = $1, last_used_from = $2 WHERE id = $3', [at, storable(from), id]);
  }
  async revokeAppPassword(userId: number, id: number) {
    return (await this.run('UPDATE app_passwords SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL', [now(), id, userId])) > 0;
  }

  async getTotp(userId: number) {
    return this.one('SELECT * FROM totp_factors WHERE user_id = $1', rowTotp, userId);
  }
  async setPendingTotp(userId: number, secret: string) {
    // One statement: replaces an unconfirmed enrolment, never a confirmed factor (even one
    // confirmed by another node a moment ago).
    const rows = await this.query(
      `INSERT INTO totp_factors (user_id, secret, confirmed_at, last_step, created_at) VALUES ($1, $2, NULL, 0, $3)
       ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, confirmed_at = NULL, last_step = 0, created_at = excluded.created_at
       WHERE totp_factors.confirmed_at IS NULL RETURNING user_id`,
      [userId, secret, now()],
    );
    if (!rows.length) throw new Error('a confirmed second factor exists: remove it before enrolling another');
  }
  async confirmTotp(userId: number, step: number, recoveryCodeHashes: string[]) {
    await this.tx(async (c) => {
      const r = await c.query('UPDATE totp_factors SET confirmed_at = $1, last_step = $2 WHERE user_id = $3 AND confirmed_at IS NULL', [now(), step, userId]);
      if (!r.rowCount) throw new Error('no second-factor enrolment in progress');
      await c.query('DELETE FROM recovery_codes WHERE user_id = $1', [userId]);
      if (recoveryCodeHashes.length) await c.query('INSERT INTO recovery_codes (user_id, code_hash) SELECT $1, unnest($2::text[])', [userId, recoveryCodeHashes]);
    });
  }
  async useTotpStep(userId: number, step: number) {
    // RFC 6238 §5.2: a verified OTP must not be accepted again; one atomic compare-and-set (the
    // row lock makes a second node's update re-check last_step after the first commits).
    return (await this.run('UPDATE totp_factors SET last_step = $1 WHERE user_id = $2 AND last_step < $1 AND confirmed_at IS NOT NULL', [step, userId])) > 0;
  }
  async useRecoveryCode(userId: number, codeHash: string) {
    if (hasNul(codeHash)) return false;
    // A second node using the same code waits for the row lock, then sees used_at set: false.
    return (await this.run('UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL', [now(), userId, codeHash])) > 0;
  }
  async remainingRecoveryCodes(userId: number) {
    const [r] = await this.query('SELECT COUNT(*) n FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL', [userId]);
    return r.n as number;
  }
  async deleteTotp(userId: number) {
    await this.tx(async (c) => {
      await c.query('DELETE FROM totp_factors WHERE user_id = $1', [userId]);
      await c.query('DELETE FROM recovery_codes WHERE user_id = $1', [userId]);
    });
  }

  async recordAuth(e: AuthAuditEntry) {
    await this.query('INSERT INTO auth_audit (at, login, user_id, protocol, method, remote, success, reason, actor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)', [
      // What a client sent may hold NUL (text.ts): audited with U+FFFD in its place.
      e.at,
      storable(e.login.slice(0, 320)),
      e.userId,
      storable(e.protocol),
      storable(e.method),
      storable(e.remote),
      e.success ? 1 : 0,
      storable(e.reason),
      storable(e.actor?.slice(0, 320) ?? null),
    ]);
  }

  async listAuthAudit(limit: number) {
    return (await this.query('SELECT * FROM auth_audit ORDER BY id DESC LIMIT $1', [limit])).map(rowAuthAudit);
  }
}
