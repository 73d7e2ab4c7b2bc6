// URLAUTH mailbox access keys (UrlAuthKeyStore, RFC 4467 §3) in SQLite: table urlauth_keys
// (migration 23), one row per user and folder, removed with either. The secret is sealed under its
// row's id (store/urlauth-keys.ts): a new row is inserted, then its secret sealed with the id, in
// one transaction (as submissions.subject, store/sqlite/tracking.ts); a replaced key keeps the row.
import type { UrlAuthKeyStore } from '../types.js';
import { newUrlAuthKey, openUrlAuthKey, sealUrlAuthKey } from '../urlauth-keys.js';
import { now, SqlitePart } from './connection.js';

export class SqliteUrlAuthKeys extends SqlitePart implements UrlAuthKeyStore {
  private row(userId: number, folderId: number) {
    return this.q('SELECT id, secret FROM urlauth_keys WHERE user_id = ? AND folder_id = ?').get(userId, folderId) as { id: number; secret: Buffer } | undefined;
  }

  /** Stores a new key for the user and folder (inside a transaction): in the existing row, or a new one. */
  private store(userId: number, folderId: number): Buffer {
    const key = newUrlAuthKey();
    const sealer = this.connection.sealer;
    const { id } = this.q(
      `INSERT INTO urlauth_keys (user_id, folder_id, secret, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (user_id, folder_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at RETURNING id`,
    ).get(userId, folderId, sealer ? Buffer.alloc(0) : key, now()) as { id: number };
    if (sealer) this.q('UPDATE urlauth_keys SET secret = ? WHERE id = ?').run(sealUrlAuthKey(sealer, id, key), id);
    return key;
  }

  async urlAuthKey(userId: number, folderId: number, create: boolean) {
    const read = () => {
      const r = this.row(userId, folderId);
      return r ? openUrlAuthKey(this.connection.sealer, r.id, r.secret) : undefined;
    };
    if (!create) return read();
    // None, or one that does not open here (a retired KEK): a new one.
    return this.db.transaction(() => read() ?? this.store(userId, folderId)).immediate();
  }

  async resetUrlAuthKey(userId: number, folderId: number) {
    this.db.transaction(() => void this.store(userId, folderId)).immediate();
  }

  async removeUrlAuthKeys(userId: number) {
    return this.q('DELETE FROM urlauth_keys WHERE user_id = ?').run(userId).changes;
  }
}
