// The connection shared by the parts of SqliteStore (index.ts): one better-sqlite3 handle and
// its prepared statements. Each part implements one focused interface of store/types.ts.
import type Database from 'better-sqlite3';

export const now = () => new Date().toISOString();

import { StoreConflictError } from '../errors.js';
import type { ValueSealer } from '../value-seal.js';

export { StoreConflictError };

export function wrapUnique<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e: any) {
    if (e?.code === 'SQLITE_CONSTRAINT_UNIQUE') throw new StoreConflictError(`${what} already exists`);
    throw e;
  }
}

/**
 * Makes every transaction of `db` begin IMMEDIATE (better-sqlite3's default is DEFERRED).
 * Several processes share the database file (`caducee start --workers N`, WAL mode): a DEFERRED
 * transaction that reads before it writes (claims, \Recent, UID allocation) fails at once with
 * SQLITE_BUSY_SNAPSHOT when another process committed in between, the busy timeout not applying
 * to that upgrade (SQLite, "File Locking And Concurrency", WAL: "isolation"). IMMEDIATE takes the
 * write lock first, waiting up to busy_timeout for the other writer: one writer at a time, and
 * readers outside transactions never wait. Nested calls still become SAVEPOINTs.
 */
export function immediateTransactions(db: Database.Database): void {
  const transaction = db.transaction.bind(db);
  db.transaction = ((fn: (...args: any[]) => any) => {
    const t = transaction(fn);
    return Object.assign((...args: any[]) => t.immediate(...args), { default: t.immediate, deferred: t.deferred, immediate: t.immediate, exclusive: t.exclusive });
  }) as typeof db.transaction;
}

/** One SQLite connection and its prepared statements. */
export class SqliteConnection {
  private readonly statements = new Map<string, Database.Statement>();

  /**
   * Seals values kept in rows (docs/encryption.md, "Values in rows"); undefined when encryption
   * at rest is off (values are then stored as they are).
   */
  sealer: ValueSealer | undefined;

  constructor(readonly db: Database.Database) {}

  /** A prepared statement, compiled once per SQL text (preparing costs more than most queries). */
  q(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) this.statements.set(sql, (st = this.db.prepare(sql)));
    return st;
  }
}

/**
 * A part of SqliteStore: the methods of one focused interface over the shared connection.
 * SqliteStore exposes the methods of each part's own class (helpers are #private, so they stay
 * inside the part).
 */
export abstract class SqlitePart {
  protected readonly db: Database.Database;

  constructor(protected readonly connection: SqliteConnection) {
    this.db = connection.db;
  }

  protected q(sql: string): Database.Statement {
    return this.connection.q(sql);
  }

  /** The row `sql` selects with `args`, turned into a record by `row`; undefined when there is none. */
  protected one<T>(sql: string, row: (r: any) => T, ...args: unknown[]): T | undefined {
    const r = this.q(sql).get(...args);
    return r ? row(r) : undefined;
  }
}
