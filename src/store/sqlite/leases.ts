// Named leader leases (LeaseStore) and the shared brute-force lockout (LockoutStore) in SQLite
// (migration 18): what several processes on one database file agree on.
import type { LeaseStore, LockoutStore } from '../types.js';
import { SqlitePart } from './connection.js';

export class SqliteLeases extends SqlitePart implements LeaseStore {
  async acquireLease(name: string, owner: string, now: number, ttlMs: number) {
    // One statement: inserted when free, taken over when expired, renewed when `owner` holds it;
    // otherwise the conditional DO UPDATE changes nothing and no row comes back.
    const r = this.q(
      `INSERT INTO leases (name, owner, until) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
       WHERE leases.owner = excluded.owner OR leases.until <= ?
       RETURNING owner`,
    ).get(name, owner, now + ttlMs, now);
    return r !== undefined;
  }

  async releaseLease(name: string, owner: string) {
    this.q('DELETE FROM leases WHERE name = ? AND owner = ?').run(name, owner);
  }
}

export class SqliteLockout extends SqlitePart implements LockoutStore {
  async recordAuthFailure(key: string, at: number) {
    this.q('INSERT INTO auth_failures (key, at) VALUES (?, ?)').run(key, at);
  }

  async countAuthFailures(key: string, since: number) {
    return (this.q('SELECT COUNT(*) n FROM auth_failures WHERE key = ? AND at >= ?').get(key, since) as { n: number }).n;
  }

  async clearAuthFailures(key: string) {
    this.q('DELETE FROM auth_failures WHERE key = ?').run(key);
  }

  async purgeAuthFailures(before: number) {
    return this.q('DELETE FROM auth_failures WHERE at < ?').run(before).changes;
  }
}
