// URLAUTH mailbox access keys (UrlAuthKeyStore, RFC 4467 §3) in PostgreSQL: table urlauth_keys
// (migration 6, as SQLite's 23), one row per user and folder, removed with either. The secret is
// sealed under its row's id (store/urlauth-keys.ts): with encryption at rest on, a new row's id is
// drawn before it is written (as submissions.subject, store/postgres/tracking.ts).
import type { UrlAuthKeyStore } from '../types.js';
import { newUrlAuthKey, openUrlAuthKey, sealUrlAuthKey } from '../urlauth-keys.js';
import { PgPart } from './connection.js';

export class PgUrlAuthKeys extends PgPart implements UrlAuthKeyStore {
  /** An id for a new row when its secret is sealed (bound into the seal); null: the column's default. */
  private async newId(): Promise<number | null> {
    if (!this.connection.sealer) return null;
    const [r] = await this.query("SELECT nextval(pg_get_serial_sequence('urlauth_keys', 'id')) AS id");
    return Number(r.id);
  }

  async urlAuthKey(userId: number, folderId: number, create: boolean) {
    const sealer = this.connection.sealer;
    const [r] = await this.query('SELECT id, secret FROM urlauth_keys WHERE user_id = $1 AND folder_id = $2', [userId, folderId]);
    const k = r ? openUrlAuthKey(sealer, Number(r.id), r.secret) : undefined;
    if (k || !create) return k;
    const key = newUrlAuthKey();
    // A stored key that does not open here (`k` undefined while row `r` exists) is replaced in its row.
    const id = r ? Number(r.id) : await this.newId();
    const stored = id === null ? key : sealUrlAuthKey(sealer, id, key);
    // One winner when two sessions create it at once: the row that is there after the upsert (a
    // row is only replaced when it still holds the value read above).
    const [w] = await this.query(
      `INSERT INTO urlauth_keys (id, user_id, folder_id, secret, created_at) VALUES (COALESCE($1, nextval(pg_get_serial_sequence('urlauth_keys', 'id'))), $2, $3, $4, $5)
       ON CONFLICT (user_id, folder_id) DO UPDATE SET secret = CASE WHEN urlauth_keys.id = excluded.id AND urlauth_keys.secret = $6 THEN excluded.secret ELSE urlauth_keys.secret END
       RETURNING id, secret`,
      [id, userId, folderId, stored, new Date().toISOString(), r?.secret ?? null],
    );
    return openUrlAuthKey(sealer, Number(w.id), w.secret);
  }

  async resetUrlAuthKey(userId: number, folderId: number) {
    const key = newUrlAuthKey();
    const id = await this.newId();
    // The row takes the new id its secret is sealed under.
    await this.query(
      `INSERT INTO urlauth_keys (id, user_id, folder_id, secret, created_at) VALUES (COALESCE($1, nextval(pg_get_serial_sequence('urlauth_keys', 'id'))), $2, $3, $4, $5)
       ON CONFLICT (user_id, folder_id) DO UPDATE SET id = excluded.id, secret = excluded.secret, created_at = excluded.created_at`,
      [id, userId, folderId, id === null ? key : sealUrlAuthKey(this.connection.sealer, id, key), new Date().toISOString()],
    );
  }

  async removeUrlAuthKeys(userId: number) {
    return this.run('DELETE FROM urlauth_keys WHERE user_id = $1', [userId]);
  }
}
