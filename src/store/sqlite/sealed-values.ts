// The values sealed in rows (SealedValueStore) in SQLite: counted per KEK and re-sealed in batches
// for `caducee keys` (docs/encryption.md, "Values in rows"). A sealed value is a BLOB starting with
// the magic of value-seal.ts; a plaintext one is TEXT (a BLOB compares unequal to any TEXT), or
// for urlauth_keys.secret the key's 32 bytes (a BLOB not starting with the magic).
import { openBytes, resealTarget, SEALED_COLUMN_PLACES, SEALED_COLUMNS, sealedHead, valueContext, type ResealBatch, type ResealSelection, type RowKey, type SealedColumn } from '../sealed-rows.js';
import type { SealedValueStore } from '../types.js';
import { VALUE_MAGIC } from '../value-seal.js';
import { SqlitePart } from './connection.js';

export class SqliteSealedValues extends SqlitePart implements SealedValueStore {
  async countSealedValues() {
    const out: { column: SealedColumn; keyId: string | null; count: number }[] = [];
    for (const column of SEALED_COLUMNS) {
      const { table, column: col } = SEALED_COLUMN_PLACES[column];
      // value-seal.ts's layout: magic (4), the id's length (1 byte, 1..16: an ASCII code point), the id.
      const rows = this.q(
        `SELECT CASE WHEN substr(${col}, 1, 4) = ? THEN CAST(substr(${col}, 6, unicode(CAST(substr(${col}, 5, 1) AS TEXT))) AS TEXT) END AS key_id, count(*) AS n
         FROM ${table} WHERE ${col} IS NOT NULL GROUP BY key_id ORDER BY key_id`,
      ).all(VALUE_MAGIC) as { key_id: string | null; n: number }[];
      for (const r of rows) out.push({ column, keyId: r.key_id, count: r.n });
    }
    return out;
  }

  async resealValues(column: SealedColumn, which: ResealSelection, after: RowKey | null, limit: number): Promise<ResealBatch> {
    const { sealer, place } = resealTarget(this.connection.sealer, column);
    const { table, column: col, key } = place;
    // The selection as a prefix test on the stored bytes (value-seal.ts's layout).
    const magicTest = `substr(${col}, 1, 4) = ?`;
    let test: string;
    let args: unknown[];
    if (which === 'stale') {
      const head = sealedHead(sealer.keys.currentId);
      (test = `${magicTest} AND substr(${col}, 1, ${head.length}) <> ?`), (args = [VALUE_MAGIC, head]);
    } else if (which === 'plain') (test = `NOT (${magicTest})`), (args = [VALUE_MAGIC]);
    else {
      const head = sealedHead(which.keyId);
      (test = `substr(${col}, 1, ${head.length}) = ?`), (args = [head]);
    }
    const from = after === null ? '' : `${key} > ? AND `;
    return this.db.transaction((): ResealBatch => {
      const rows = this.q(`SELECT ${key} AS k, ${col} AS v FROM ${table} WHERE ${from}${col} IS NOT NULL AND ${test} ORDER BY ${key} LIMIT ?`).all(...(after === null ? [] : [after]), ...args, limit) as { k: RowKey; v: Buffer | string }[];
      const update = this.q(`UPDATE ${table} SET ${col} = ? WHERE ${key} = ? AND ${col} = ?`);
      const batch: ResealBatch = { resealed: 0, failed: [], next: rows.length === limit ? rows[rows.length - 1]!.k : null };
      for (const r of rows) {
        let plain: Buffer;
        try {
          plain = openBytes(sealer, column, r.k, r.v);
        } catch (e: any) {
          batch.failed.push({ row: r.k, error: e.message });
          continue;
        }
        // Compare-and-set: a value a writer replaced meanwhile is theirs (the transaction is
        // IMMEDIATE, so on SQLite nothing can; the same statement as PostgreSQL's).
        batch.resealed += update.run(sealer.seal(plain, valueContext(column, r.k)), r.k, r.v).changes;
      }
      return batch;
    }).immediate();
  }
}
