// The connection shared by the parts of PgStore (index.ts): one pg Pool. Each part implements
// one focused interface of store/types.ts, as the parts of SqliteStore do over their handle.
import pg from 'pg';
import { StoreConflictError } from '../errors.js';
import type { ValueSealer } from '../value-seal.js';

export { StoreConflictError };

export const now = () => new Date().toISOString();

/** Something that runs a query: the pool (one statement, autocommit) or the client of a transaction. */
export interface PgClient {
  query<R extends pg.QueryResultRow = any>(sql: string, args?: unknown[]): Promise<pg.QueryResult<R>>;
}

/**
 * The type parsers of our pools (not pg's global ones, which other code may share): int8
 * (COUNT(*), BIGINT columns: ids and epoch ms, all below 2^53) and numeric (SUM over BIGINT) as
 * JS numbers, like SQLite's integers.
 */
const parseNumber = (v: string) => Number(v);
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === pg.types.builtins.INT8 || oid === pg.types.builtins.NUMERIC) return parseNumber;
    return pg.types.getTypeParser(oid, format as any);
  },
} as unknown as pg.CustomTypesConfig;

/** unique_violation, serialization_failure, deadlock_detected (PostgreSQL error codes, appendix A). */
const UNIQUE_VIOLATION = '23505';
const RETRIED = new Set(['40001', '40P01']);
const TX_ATTEMPTS = 5;

/** A PostgreSQL unique violation as the engine-agnostic StoreConflictError (the original as cause). */
export function conflict(e: unknown, what?: string): unknown {
  const err = e as { code?: string; constraint?: string };
  // Already turned into one by query()/tx() below the caller's wrapUnique: name what it was.
  if (e instanceof StoreConflictError) return what ? Object.assign(new StoreConflictError(`${what} already exists`), { cause: e.cause ?? e }) : e;
  if (err?.code !== UNIQUE_VIOLATION) return e;
  const c = new StoreConflictError(what ? `${what} already exists` : `a row with the same key exists already (constraint ${err.constraint ?? 'unknown'})`);
  (c as { cause?: unknown }).cause = e;
  return c;
}

/** Runs `fn`, turning a unique violation into StoreConflictError(`${what} already exists`) as SQLite's wrapUnique does. */
export async function wrapUnique<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw conflict(e, what);
  }
}

/** Schema names are interpolated (search_path, CREATE SCHEMA): plain lower-case identifiers only. */
export function checkSchemaName(schema: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`PostgreSQL schema name "${schema}" is not a plain identifier: use lower-case letters, digits and _`);
  return schema;
}

export interface PgConnectionOptions {
  /** The PostgreSQL schema holding every table (default public). */
  schema?: string;
  /** Connections of the pool (default 10). */
  poolSize?: number;
  /** Cancels a statement running longer than this (ms; default: none). */
  statementTimeoutMs?: number;
  /** Gives up opening a connection to the server after this long (ms; default: no limit). */
  connectTimeoutMs?: number;
  /** Seals values kept in rows (docs/encryption.md); absent when encryption at rest is off. */
  sealer?: ValueSealer;
}

/** One pool over one schema; transactions on one pooled client. */
export class PgConnection {
  readonly pool: pg.Pool;
  readonly schema: string;
  /** Seals values kept in rows (docs/encryption.md, "Values in rows"); undefined when encryption at rest is off. */
  readonly sealer: ValueSealer | undefined;

  constructor(url: string, opts: PgConnectionOptions = {}) {
    this.schema = checkSchemaName(opts.schema ?? 'public');
    this.sealer = opts.sealer;
    this.pool = new pg.Pool({
      connectionString: url,
      max: opts.poolSize ?? 10,
      types,
      // Every connection resolves table names in the configured schema (shared spec, issue 12).
      options: `-c search_path=${this.schema}`,
      ...(opts.statementTimeoutMs ? { statement_timeout: opts.statementTimeoutMs } : {}),
      ...(opts.connectTimeoutMs ? { connectionTimeoutMillis: opts.connectTimeoutMs } : {}),
    });
    // An idle client losing its connection (server restart) must not crash the process: the
    // pool drops it and the next query opens a new one.
    this.pool.on('error', () => {});
  }

  /** One statement outside a transaction; rows as returned. */
  async query<R extends pg.QueryResultRow = any>(sql: string, args: unknown[] = []): Promise<R[]> {
    try {
      return (await this.pool.query<R>(sql, args)).rows;
    } catch (e) {
      throw conflict(e);
    }
  }

  /** One statement outside a transaction; how many rows it inserted, updated or deleted. */
  async run(sql: string, args: unknown[] = []): Promise<number> {
    try {
      return (await this.pool.query(sql, args)).rowCount ?? 0;
    } catch (e) {
      throw conflict(e);
    }
  }

  /** The row `sql` selects with `args`, turned into a record by `row`; undefined when there is none. */
  async one<T>(sql: string, row: (r: any) => T, ...args: unknown[]): Promise<T | undefined> {
    const rows = await this.query(sql, args);
    return rows.length ? row(rows[0]) : undefined;
  }

  /**
   * BEGIN … COMMIT on one pooled client; ROLLBACK when `fn` throws. The whole of `fn` runs again
   * (up to 5 times) on a serialization failure or a deadlock, so `fn` must not have effects
   * outside the database. `isolation` defaults to READ COMMITTED.
   */
  async tx<T>(fn: (c: PgClient) => Promise<T>, isolation?: 'serializable' | 'repeatable read'): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      let broken = false;
      try {
        await client.query(isolation ? `BEGIN ISOLATION LEVEL ${isolation.toUpperCase()}` : 'BEGIN');
        const result = await fn(client);
        await client.query('COMMIT');
        return result;
      } catch (e) {
        try {
          await client.query('ROLLBACK');
        } catch {
          broken = true; // the connection is gone: do not give it back to the pool
        }
        const code = (e as { code?: string })?.code;
        if (code && RETRIED.has(code) && attempt < TX_ATTEMPTS) continue;
        throw conflict(e);
      } finally {
        client.release(broken);
      }
    }
  }

  async end(): Promise<void> {
    await this.pool.end();
  }
}

/**
 * A part of PgStore: the methods of one focused interface over the shared connection. PgStore
 * exposes the methods of each part's own class (helpers are #private, so they stay inside the part).
 */
export abstract class PgPart {
  constructor(protected readonly connection: PgConnection) {}

  protected query<R extends pg.QueryResultRow = any>(sql: string, args: unknown[] = []): Promise<R[]> {
    return this.connection.query<R>(sql, args);
  }

  protected run(sql: string, args: unknown[] = []): Promise<number> {
    return this.connection.run(sql, args);
  }

  protected one<T>(sql: string, row: (r: any) => T, ...args: unknown[]): Promise<T | undefined> {
    return this.connection.one(sql, row, ...args);
  }

  protected tx<T>(fn: (c: PgClient) => Promise<T>, isolation?: 'serializable' | 'repeatable read'): Promise<T> {
    return this.connection.tx(fn, isolation);
  }
}

/** The rows of `sql` on a client (inside a transaction: tx() turns a unique violation into StoreConflictError). */
export async function rows<R extends pg.QueryResultRow = any>(c: PgClient, sql: string, args: unknown[] = []): Promise<R[]> {
  return (await c.query<R>(sql, args)).rows;
}

/** The first row of `sql` on a client, or undefined. */
export async function first<R extends pg.QueryResultRow = any>(c: PgClient, sql: string, args: unknown[] = []): Promise<R | undefined> {
  return (await c.query<R>(sql, args)).rows[0];
}
