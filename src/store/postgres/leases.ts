// Named leader leases (LeaseStore) and the shared brute-force lockout (LockoutStore) in
// PostgreSQL: what several processes and nodes on one database agree on.
import type { LeaseStore, LockoutStore } from '../types.js';
import { PgPart } from './connection.js';
import { storable } from './text.js';

export class PgLeases extends PgPart implements LeaseStore {
  async acquireLease(name: string, owner: string, now: number, ttlMs: number) {
    // One statement: inserted when free, taken over when expired, renewed when `owner` holds it;
    // otherwise the conditional DO UPDATE changes nothing and no row comes back. Two nodes racing
    // for a free name: one inserts, the other's ON CONFLICT waits for it, then re-checks the WHERE
    // against the committed row (READ COMMITTED upsert semantics) and loses.
    const rows = await this.query(
      `INSERT INTO leases (name, owner, until) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
       WHERE leases.owner = excluded.owner OR leases.until <= $4
       RETURNING owner`,
      [name, owner, now + ttlMs, now],
    );
    return rows.length > 0;
  }

  async releaseLease(name: string, owner: string) {
    await this.query('DELETE FROM leases WHERE name = $1 AND owner = $2', [name, owner]);
  }
}

export class PgLockout extends PgPart implements LockoutStore {
  // A key holds what a client sent (a login may hold NUL): U+FFFD in its place, the same on
  // record, count and clear (text.ts).
  async recordAuthFailure(key: string, at: number) {
    await this.query('INSERT INTO auth_failures (key, at) VALUES ($1, $2)', [storable(key), at]);
  }

  async countAuthFailures(key: string, since: number) {
    const [r] = await this.query('SELECT COUNT(*) n FROM auth_failures WHERE key = $1 AND at >= $2', [storable(key), since]);
    return r.n as number;
  }

  async clearAuthFailures(key: string) {
    await this.query('DELETE FROM auth_failures WHERE key = $1', [storable(key)]);
  }

  async purgeAuthFailures(before: number) {
    return (await this.run('DELETE FROM auth_failures WHERE at < $1', [before]));
  }
}
