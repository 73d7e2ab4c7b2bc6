// URLAUTH mailbox access keys (UrlAuthKeyStore, RFC 4467 §3) in SQLite: table urlauth_keys
// (migration 23), one row per user and folder, removed with either.
import type { UrlAuthKeyStore } from '../types.js';
import { newUrlAuthKey, openUrlAuthKey, sealUrlAuthKey } from '../urlauth-keys.js';
import { now, SqlitePart } from './connection.js';

export class SqliteUrlAuthKeys extends SqlitePart implements UrlAuthKeyStore {
  async urlAuthKey(userId: number, folderId: number, create: boolean) {
    const sealer = this.connection.sealer;
    const read = () => {
      const r = this.q('SELECT secret FROM urlauth_keys WHERE user_id = ? AND folder_id = ?').get(userId, folderId) as { secret: Buffer } | undefined;
      return r ? openUrlAuthKey(sealer, userId, folderId, r.secret) : undefined;
    };
    if (!create) return read();
    return this.db.transaction(() => {
      const k = read();
      if (k) return k;
      // None, or one that does not open here (a retired KEK): a new one.
      const key = newUrlAuthKey();
      this.q('INSERT OR REPLACE INTO urlauth_keys (user_id, folder_id, secret, created_at) VALUES (?, ?, ?, ?)').run(userId, folderId, sealUrlAuthKey(sealer, userId, folderId, key), now());
      return key;
    }).immediate();
  }

  async resetUrlAuthKey(userId: number, folderId: number) {
    const key = newUrlAuthKey();
    this.q('INSERT OR REPLACE INTO urlauth_keys (user_id, folder_id, secret, created_at) VALUES (?, ?, ?, ?)').run(userId, folderId, sealUrlAuthKey(this.connection.sealer, userId, folderId, key), now());
  }

  async removeUrlAuthKeys(userId: number) {
    return this.q('DELETE FROM urlauth_keys WHERE user_id = ?').run(userId).changes;
  }
}
