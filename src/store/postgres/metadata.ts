// RFC 5464 METADATA entries (MetadataStore) in PostgreSQL: table metadata (migration 7, as
// SQLite's 24), one row per folder (NULL: the server), user (NULL: a /shared entry) and entry
// name; removed with the folder or the user (foreign keys). A changed entry gets a new row whose
// id is drawn before it is written, its value sealed under that id (store/metadata.ts). One
// SERIALIZABLE transaction: two sessions changing one folder's entries at once cannot both pass
// the TOOMANY count (the loser is retried by tx()).
import { metadataRows, openMetadataValue, sealMetadataValue } from '../metadata.js';
import type { MetadataStore } from '../types.js';
import { first, now, PgPart } from './connection.js';

export class PgMetadata extends PgPart implements MetadataStore {
  async listMetadata(folderId: number | null, userId: number) {
    const rows = await this.query('SELECT id, entry, value FROM metadata WHERE folder_id IS NOT DISTINCT FROM $1 AND (user_id IS NULL OR user_id = $2) ORDER BY entry', [folderId, userId]);
    return rows.map((r) => ({ entry: r.entry as string, value: openMetadataValue(this.connection.sealer, Number(r.id), r.value) }));
  }

  async setMetadata(folderId: number | null, userId: number, changes: { entry: string; value: Buffer | null }[], maxEntries: number) {
    const sealer = this.connection.sealer;
    const tx = this.tx(async (c) => {
      for (const ch of metadataRows(userId, changes)) {
        await c.query('DELETE FROM metadata WHERE folder_id IS NOT DISTINCT FROM $1 AND user_id IS NOT DISTINCT FROM $2 AND entry = $3', [folderId, ch.userId, ch.entry]);
        if (ch.value === null) continue;
        const { id } = (await first(c, "SELECT nextval(pg_get_serial_sequence('metadata', 'id')) AS id"))!;
        await c.query('INSERT INTO metadata (id, folder_id, user_id, entry, value, updated_at) VALUES ($1, $2, $3, $4, $5, $6)', [id, folderId, ch.userId, ch.entry, sealMetadataValue(sealer, Number(id), ch.value), now()]);
      }
      const { n } = (await first(c, 'SELECT count(*)::int AS n FROM metadata WHERE folder_id IS NOT DISTINCT FROM $1 AND (user_id IS NULL OR user_id = $2)', [folderId, userId]))!;
      // RFC 5464 §4.3 TOOMANY: nothing changes.
      if (n > maxEntries) throw TOO_MANY; // rolled back by tx()
      return true;
    }, 'serializable');
    return tx.catch((e) => {
      if (e === TOO_MANY) return false;
      throw e;
    });
  }
}

const TOO_MANY = Symbol('too many metadata entries');
