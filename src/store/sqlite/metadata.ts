// RFC 5464 METADATA entries (MetadataStore) in SQLite: table metadata (migration 24), one row per
// folder (NULL: the server), user (NULL: a /shared entry) and entry name; removed with the folder
// or the user (foreign keys). A value is sealed under its row's id (store/metadata.ts): a changed
// entry gets a new row (AUTOINCREMENT: an id is never reused), then its value sealed with the id,
// in one IMMEDIATE transaction, which also makes the TOOMANY count exact.
import { metadataRows, openMetadataValue, sealMetadataValue } from '../metadata.js';
import type { MetadataStore } from '../types.js';
import { now, SqlitePart } from './connection.js';

export class SqliteMetadata extends SqlitePart implements MetadataStore {
  async listMetadata(folderId: number | null, userId: number) {
    const rows = this.q('SELECT id, entry, value FROM metadata WHERE folder_id IS ? AND (user_id IS NULL OR user_id = ?) ORDER BY entry').all(folderId, userId) as { id: number; entry: string; value: Buffer }[];
    return rows.map((r) => ({ entry: r.entry, value: openMetadataValue(this.connection.sealer, r.id, r.value) }));
  }

  async setMetadata(folderId: number | null, userId: number, changes: { entry: string; value: Buffer | null }[], maxEntries: number) {
    const sealer = this.connection.sealer;
    const tx = this.db.transaction((): boolean => {
        const del = this.q('DELETE FROM metadata WHERE folder_id IS ? AND user_id IS ? AND entry = ?');
        const ins = this.q('INSERT INTO metadata (folder_id, user_id, entry, value, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING id');
        const seal = this.q('UPDATE metadata SET value = ? WHERE id = ?');
        for (const c of metadataRows(userId, changes)) {
          del.run(folderId, c.userId, c.entry);
          if (c.value === null) continue;
          const { id } = ins.get(folderId, c.userId, c.entry, sealer ? Buffer.alloc(0) : c.value, now()) as { id: number };
          if (sealer) seal.run(sealMetadataValue(sealer, id, c.value), id);
        }
        const { n } = this.q('SELECT count(*) AS n FROM metadata WHERE folder_id IS ? AND (user_id IS NULL OR user_id = ?)').get(folderId, userId) as { n: number };
        // RFC 5464 §4.3 TOOMANY: nothing changes (the transaction is rolled back by the throw).
        if (n > maxEntries) throw TOO_MANY;
        return true;
      });
    try {
      return tx.immediate();
    } catch (e) {
      if (e === TOO_MANY) return false;
      throw e;
    }
  }
}

const TOO_MANY = Symbol('too many metadata entries');
