// The relay's PostgreSQL transport: LISTEN on a channel of the operator (one pg Client dedicated
// to it, reconnected with backoff), NOTIFY through a small pool of its own. Every node and
// process of the operator listening on the same database and channel gets every message.
//
// PostgreSQL: a NOTIFY payload is shorter than 8000 bytes (docs, SQL command NOTIFY); a
// notification is delivered to every session listening at the time of the commit, so one sent
// while our LISTEN connection was down is lost: the reconnection is reported as a gap and every
// session re-reads the store (relay/index.ts).
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import type { RelayHandlers, RelayTransport } from './index.js';

/**
 * The channel of an operator: its PostgreSQL schema and domain, so two operators sharing a
 * database (the demo, tests) never hear each other. A valid unquoted identifier of at most 63 bytes.
 */
export function relayChannel(schema: string, domain: string): string {
  const base = `caducee_${schema}_${domain}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  if (base.length <= 63) return base;
  const h = createHash('sha256').update(`${schema}\0${domain}`).digest('hex').slice(0, 16);
  return `${base.slice(0, 46)}_${h}`;
}

export interface PgRelayOptions {
  logger: Logger;
  /** First and longest delay between reconnection attempts (default 200 ms, 15 s). */
  backoffMs?: { min: number; max: number };
}

export class PgRelayTransport implements RelayTransport {
  readonly kind = 'postgres';
  /** NOTIFY's limit is 8000 bytes, terminator included. */
  readonly maxPayloadBytes = 7999;
  private listener?: pg.Client;
  private readonly notifier: pg.Pool;
  private handlers?: RelayHandlers;
  private closed = false;
  private attempt = 0;
  private retryTimer?: NodeJS.Timeout;
  private readonly log: Logger;
  /** Reconnections done, and attempts that failed (tests, logs). */
  reconnects = 0;
  failedAttempts = 0;

  constructor(
    private readonly url: string,
    readonly channel: string,
    private readonly o: PgRelayOptions,
  ) {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(channel)) throw new Error(`relay channel ${JSON.stringify(channel)} is not a plain identifier of at most 63 bytes: derive it with relayChannel()`);
    this.log = o.logger.child({ component: 'relay', channel });
    this.notifier = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 5000, application_name: 'caducee-relay-notify' });
    // A pooled connection dropped by the server: the pool opens a new one at the next NOTIFY.
    this.notifier.on('error', () => {});
  }

  /** The server process of the LISTEN connection (tests terminate it). */
  get backendPid(): number | undefined {
    return (this.listener as unknown as { processID?: number } | undefined)?.processID;
  }

  async start(h: RelayHandlers): Promise<void> {
    this.handlers = h;
    try {
      await this.connect();
    } catch (e: any) {
      await this.notifier.end().catch(() => {});
      throw new Error(`cannot LISTEN for the event relay on PostgreSQL (${e.message}): check the store's connection settings and that the server is up`);
    }
  }

  private async connect(): Promise<void> {
    const c = new pg.Client({ connectionString: this.url, application_name: 'caducee-relay-listen', connectionTimeoutMillis: 5000 });
    // Only the connection in service reports its loss; one failing inside connect() is reported
    // by connect()'s rejection (its 'error' event then changes nothing).
    const onLost = (err?: Error) => {
      if (this.listener !== c) return;
      this.listener = undefined;
      c.removeAllListeners('notification');
      c.end().catch(() => {});
      if (this.closed) return;
      this.log.warn({ err: err?.message }, 'event relay LISTEN connection lost; reconnecting');
      this.scheduleReconnect();
    };
    c.on('error', onLost);
    c.on('end', () => onLost());
    c.on('notification', (n) => {
      if (n.channel === this.channel && n.payload !== undefined) this.handlers?.message(n.payload);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${this.channel}`);
    } catch (e) {
      c.end().catch(() => {});
      throw e;
    }
    if (this.closed) {
      await c.end().catch(() => {});
      return;
    }
    this.listener = c;
  }

  private scheduleReconnect() {
    const { min, max } = this.o.backoffMs ?? { min: 200, max: 15_000 };
    // Exponential backoff with jitter, so nodes do not all come back at the same instant.
    const delay = Math.min(max, min * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt++;
    this.retryTimer = setTimeout(() => {
      this.connect().then(
        () => {
          if (this.closed) return;
          this.attempt = 0;
          this.reconnects++;
          this.log.info({ reconnects: this.reconnects }, 'event relay listening again');
          this.handlers?.gap();
        },
        (e) => {
          if (this.closed) return;
          this.failedAttempts++;
          this.log.warn({ err: e.message, attempt: this.attempt }, 'event relay reconnection failed; retrying');
          this.scheduleReconnect();
        },
      );
    }, delay);
    this.retryTimer.unref();
  }

  publish(payload: string): boolean {
    if (this.closed) return false;
    this.notifier.query('SELECT pg_notify($1, $2)', [this.channel, payload]).catch((e) => {
      // Lost for the others: they re-read the store at their next resync (safety poll).
      this.log.warn({ err: e.message }, 'NOTIFY failed: other nodes are asked to resync once it works again');
      this.handlers?.lost();
    });
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    const c = this.listener;
    this.listener = undefined;
    await Promise.all([c?.end().catch(() => {}), this.notifier.end().catch(() => {})]);
  }
}
