// URLAUTH mailbox access keys (UrlAuthKeyStore, RFC 4467 §3) in PostgreSQL: table urlauth_keys
// (migration 6, as SQLite's 23), one row per user and folder, removed with either.
import type { UrlAuthKeyStore } from '../types.js';
import { newUrlAuthKey, openUrlAuthKey, sealUrlAuthKey } from '../urlauth-keys.js';
import { PgPart } from './connection.js';

export class PgUrlAuthKeys extends PgPart implements UrlAuthKeyStore {
  async urlAuthKey(userId: number, folderId: number, create: boolean) {
    const sealer = this.connection.sealer;
    const [r] = await this.query('SELECT secret FROM urlauth_keys WHERE user_id = $1 AND folder_id = $2', [userId, folderId]);
    const k = r ? openUrlAuthKey(sealer, userId, folderId, r.secret) : undefined;
    if (k || !create) return k;
    const key = newUrlAuthKey();
    const stored = sealUrlAuthKey(sealer, userId, folderId, key);
    // One winner when two sessions create it at once: the row that is there after the upsert. A
    // stored key that does not open here (`k` undefined while a row exists) is replaced.
    const [w] = await this.query(
      `INSERT INTO urlauth_keys (user_id, folder_id, secret, created_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (user_id, folder_id) DO UPDATE SET secret = CASE WHEN urlauth_keys.secret = $5 THEN excluded.secret ELSE urlauth_keys.secret END
       RETURNING secret`,
      [userId, folderId, stored, new Date().toISOString(), r?.secret ?? null],
    );
    return openUrlAuthKey(sealer, userId, folderId, w.secret);
  }

  async resetUrlAuthKey(userId: number, folderId: number) {
    const key = newUrlAuthKey();
    await this.query(
      `INSERT INTO urlauth_keys (user_id, folder_id, secret, created_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (user_id, folder_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at`,
      [userId, folderId, sealUrlAuthKey(this.connection.sealer, userId, folderId, key), new Date().toISOString()],
    );
  }

  async removeUrlAuthKeys(userId: number) {
    return this.run('DELETE FROM urlauth_keys WHERE user_id = $1', [userId]);
  }
}
