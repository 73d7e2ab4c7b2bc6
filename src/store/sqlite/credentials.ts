// Second factors, app passwords and the authentication audit trail (CredentialStore) in SQLite.
import type { AuthAuditEntry, CredentialStore } from '../types.js';
import { now, SqlitePart } from './connection.js';
import { rowAppPassword, rowAuthAudit, rowTotp } from '../rows.js';

export class SqliteCredentials extends SqlitePart implements CredentialStore {
  async createAppPassword(a: { userId: number; label: string; secretHash: string }) {
    return rowAppPassword(this.q('INSERT INTO app_passwords (user_id, label, secret_hash, created_at) VALUES (?, ?, ?, ?) RETURNING *').get(a.userId, a.label, a.secretHash, now()));
  }
  async listAppPasswords(userId: number) {
    return this.q('SELECT * FROM app_passwords WHERE user_id = ? ORDER BY id DESC').all(userId).map(rowAppPassword);
  }
  async findAppPassword(userId: number, secretHash: string) {
    return this.one('SELECT * FROM app_passwords WHERE user_id = ? AND secret_hash = ? AND revoked_at IS NULL', rowAppPassword, userId, secretHash);
  }
  async touchAppPassword(id: number, at: string, from: string | null) {
    this.q('UPDATE app_passwords SET last_used_at = ?, last_used_from = ? WHERE id = ?').run(at, from, id);
  }
  async revokeAppPassword(userId: number, id: number) {
    return this.q('UPDATE app_passwords SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL').run(now(), id, userId).changes > 0;
  }

  async getTotp(userId: number) {
    const r: any = this.q('SELECT * FROM totp_factors WHERE user_id = ?').get(userId);
    return r ? rowTotp(r) : undefined;
  }
  async setPendingTotp(userId: number, secret: string) {
    this.db.transaction(() => {
      const cur: any = this.q('SELECT confirmed_at FROM totp_factors WHERE user_id = ?').get(userId);
      if (cur?.confirmed_at) throw new Error('a confirmed second factor exists: remove it before enrolling another');
      this.q('INSERT OR REPLACE INTO totp_factors (user_id, secret, confirmed_at, last_step, created_at) VALUES (?, ?, NULL, 0, ?)').run(userId, secret, now());
    })();
  }
  async confirmTotp(userId: number, step: number, recoveryCodeHashes: string[]) {
    this.db.transaction(() => {
      const n = this.q('UPDATE totp_factors SET confirmed_at = ?, last_step = ? WHERE user_id = ? AND confirmed_at IS NULL').run(now(), step, userId).changes;
      if (!n) throw new Error('no second-factor enrolment in progress');
      this.q('DELETE FROM recovery_codes WHERE user_id = ?').run(userId);
      const ins = this.q('INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)');
      for (const h of recoveryCodeHashes) ins.run(userId, h);
    })();
  }
  async useTotpStep(userId: number, step: number) {
    // RFC 6238 §5.2: a verified OTP must not be accepted again; one atomic compare-and-set.
    return this.q('UPDATE totp_factors SET last_step = ? WHERE user_id = ? AND last_step < ? AND confirmed_at IS NOT NULL').run(step, userId, step).changes > 0;
  }
  async useRecoveryCode(userId: number, codeHash: string) {
    return this.q('UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL').run(now(), userId, codeHash).changes > 0;
  }
  async remainingRecoveryCodes(userId: number) {
    return (this.q('SELECT COUNT(*) n FROM recovery_codes WHERE user_id = ? AND used_at IS NULL').get(userId) as any).n as number;
  }
  async deleteTotp(userId: number) {
    this.db.transaction(() => {
      this.q('DELETE FROM totp_factors WHERE user_id = ?').run(userId);
      this.q('DELETE FROM recovery_codes WHERE user_id = ?').run(userId);
    })();
  }

  async recordAuth(e: AuthAuditEntry) {
    this.q('INSERT INTO auth_audit (at, login, user_id, protocol, method, remote, success, reason, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)').run(
      e.at,
      e.login.slice(0, 320),
      e.userId,
      e.protocol,
      e.method,
      e.remote,
      e.success ? 1 : 0,
      e.reason,
      e.actor?.slice(0, 320) ?? null,
    );
  }

  async listAuthAudit(limit: number) {
    return this.q('SELECT * FROM auth_audit ORDER BY id DESC LIMIT ?')
      .all(limit)
      .map(rowAuthAudit);
  }
}
