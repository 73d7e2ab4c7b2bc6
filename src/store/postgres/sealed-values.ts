// The values sealed in rows (SealedValueStore) in PostgreSQL: counted per KEK and re-sealed in
// batches for `caducee keys` (docs/encryption.md, "Values in rows"). Every sealed column is BYTEA
// (migrations 4 and 6): a sealed value starts with the magic of value-seal.ts, a plaintext one is
// UTF-8 (urlauth_keys.secret: the key's 32 bytes).
import { openBytes, resealTarget, SEALED_COLUMN_PLACES, SEALED_COLUMNS, sealedHead, valueContext, type ResealBatch, type ResealSelection, type RowKey, type SealedColumn } from '../sealed-rows.js';
import type { SealedValueStore } from '../types.js';
import { VALUE_MAGIC } from '../value-seal.js';
import { PgPart } from './connection.js';

export class PgSealedValues extends PgPart implements SealedValueStore {
  async countSealedValues() {
    const out: { column: SealedColumn; keyId: string | null; count: number }[] = [];
    for (const column of SEALED_COLUMNS) {
      const { table, column: col } = SEALED_COLUMN_PLACES[column];
      // value-seal.ts's layout: magic (4 bytes), the id's length (1 byte, at offset 4), the id (ASCII).
      const rows = await this.query(
        `SELECT CASE WHEN substring(${col} from 1 for 4) = $1 THEN convert_from(substring(${col} from 6 for get_byte(${col}, 4)), 'LATIN1') END AS key_id, count(*) AS n
         FROM ${table} WHERE ${col} IS NOT NULL GROUP BY 1 ORDER BY 1`,
        [VALUE_MAGIC],
      );
      for (const r of rows) out.push({ column, keyId: r.key_id as string | null, count: r.n as number });
    }
    return out;
  }

  async resealValues(column: SealedColumn, which: ResealSelection, after: RowKey | null, limit: number): Promise<ResealBatch> {
    const { sealer, place } = resealTarget(this.connection.sealer, column);
    const { table, column: col, key, keyType } = place;
    // The selection as a prefix test on the stored bytes (value-seal.ts's layout); $1 the limit, then the selection's, then the cursor.
    let test: string;
    let args: unknown[];
    if (which === 'stale') {
      const head = sealedHead(sealer.keys.currentId);
      (test = `substring(${col} from 1 for 4) = $2 AND substring(${col} from 1 for ${head.length}) <> $3`), (args = [VALUE_MAGIC, head]);
    } else if (which === 'plain') (test = `substring(${col} from 1 for 4) <> $2`), (args = [VALUE_MAGIC]);
    else {
      const head = sealedHead(which.keyId);
      (test = `substring(${col} from 1 for ${head.length}) = $2`), (args = [head]);
    }
    const pgKey = keyType === 'text' ? 'text' : 'bigint';
    const from = after === null ? '' : `${key} > $${args.length + 2}::${pgKey} AND `;
    return this.tx(async (c): Promise<ResealBatch> => {
      const rows = (
        await c.query(`SELECT ${key} AS k, ${col} AS v FROM ${table} WHERE ${from}${col} IS NOT NULL AND ${test} ORDER BY ${key} LIMIT $1`, [limit, ...args, ...(after === null ? [] : [after])])
      ).rows as { k: RowKey; v: Buffer }[];
      const batch: ResealBatch = { resealed: 0, failed: [], next: rows.length === limit ? rows[rows.length - 1]!.k : null };
      const done: { k: RowKey; old: Buffer; v: Buffer }[] = [];
      for (const r of rows) {
        try {
          done.push({ k: r.k, old: r.v, v: sealer.seal(openBytes(sealer, column, r.k, r.v), valueContext(column, r.k)) });
        } catch (e: any) {
          batch.failed.push({ row: r.k, error: e.message });
        }
      }
      // Compare-and-set, one statement: a value a node's writer replaced since the SELECT is theirs.
      if (done.length)
        batch.resealed = (
          await c.query(`UPDATE ${table} t SET ${col} = u.v FROM unnest($1::${pgKey}[], $2::bytea[], $3::bytea[]) AS u(k, old, v) WHERE t.${key} = u.k AND t.${col} = u.old`, [
            done.map((d) => d.k),
            done.map((d) => d.old),
            done.map((d) => d.v),
          ])
        ).rowCount ?? 0;
      return batch;
    });
  }
}
