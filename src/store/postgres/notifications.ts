// The notification channel of the PostgreSQL store (NotificationChannel, store/types.ts): LISTEN
// on one pg Client dedicated to it (reconnected with backoff), NOTIFY through a small pool of its
// own, so that a busy store pool never delays an event. Every process and node listening on the
// same database and name gets every payload. src/relay carries Core events over it.
//
// PostgreSQL (SQL command NOTIFY): a payload is shorter than 8000 bytes; a notification is
// delivered to every session listening at the time of the commit, so one sent while our LISTEN
// connection was down is lost: the reconnection is reported to the onReconnect handlers, which
// re-read the store.
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import type { NotificationChannel, NotificationChannelOptions } from '../types.js';
import { checkSchemaName } from './connection.js';

/** A plain unquoted identifier of at most 63 bytes (NAMEDATALEN - 1): what LISTEN takes as is. */
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * The PostgreSQL channel of `name` in `schema`: `caducee_<schema>_<name>` folded to a plain
 * identifier, cut and suffixed with a hash when longer than 63 bytes. The schema keeps two
 * operators sharing a database (the demo, tests) apart. The relay names its channel by the
 * operator's host name, which gives the channel of earlier versions (nodes of both hear each other).
 */
export function notificationChannelName(schema: string, name: string): string {
  const base = `caducee_${schema}_${name}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  if (base.length <= 63) return base;
  const h = createHash('sha256').update(`${schema}\0${name}`).digest('hex').slice(0, 16);
  return `${base.slice(0, 46)}_${h}`;
}

export class PgNotificationChannel implements NotificationChannel {
  readonly kind = 'postgres';
  /** NOTIFY's limit is 8000 bytes, terminator included. */
  readonly maxPayloadBytes = 7999;
  readonly #url: string;
  readonly #schema: string;
  readonly #backoff: { min: number; max: number };
  readonly #log: Logger;
  readonly #notifier: pg.Pool;
  /** Handlers by PostgreSQL channel name. */
  readonly #subs = new Map<string, Set<(payload: string) => void>>();
  readonly #onReconnect: (() => void)[] = [];
  #listener?: pg.Client;
  /** The channels LISTENed on #listener. */
  #listened = new Set<string>();
  /** The first connection (made by the first subscribe()). */
  #first?: Promise<void>;
  #closed = false;
  #attempt = 0;
  #retryTimer?: NodeJS.Timeout;
  /** Reconnections done, and attempts that failed (tests, logs). */
  reconnects = 0;
  failedAttempts = 0;

  constructor(url: string, schema: string, o: NotificationChannelOptions) {
    this.#url = url;
    this.#schema = checkSchemaName(schema);
    this.#backoff = o.backoffMs ?? { min: 200, max: 15_000 };
    this.#log = o.logger.child({ component: 'notifications', schema });
    this.#notifier = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 5000, application_name: 'caducee-relay-notify' });
    // A pooled connection dropped by the server: the pool opens a new one at the next NOTIFY.
    this.#notifier.on('error', () => {});
  }

  /** The server process of the LISTEN connection (tests terminate it). */
  get backendPid(): number | undefined {
    return (this.#listener as unknown as { processID?: number } | undefined)?.processID;
  }

  async subscribe(name: string, handler: (payload: string) => void): Promise<void> {
    if (this.#closed) throw new Error('the notification channel is closed');
    const channel = notificationChannelName(this.#schema, name);
    let handlers = this.#subs.get(channel);
    if (!handlers) this.#subs.set(channel, (handlers = new Set()));
    handlers.add(handler);
    try {
      this.#first ??= this.#connect().catch((e) => {
        this.#first = undefined;
        throw e;
      });
      await this.#first;
      const c = this.#listener;
      if (c && !this.#listened.has(channel)) {
        this.#listened.add(channel);
        // A connection lost meanwhile is replaced, and its successor LISTENs to every channel.
        await c.query(`LISTEN ${channel}`).catch((e) => {
          if (this.#listener === c) throw e;
        });
      }
    } catch (e) {
      handlers.delete(handler);
      if (!handlers.size) this.#subs.delete(channel);
      throw e;
    }
  }

  onReconnect(handler: () => void): void {
    this.#onReconnect.push(handler);
  }

  async #connect(): Promise<void> {
    const c = new pg.Client({ connectionString: this.#url, application_name: 'caducee-relay-listen', connectionTimeoutMillis: 5000 });
    // Only the connection in service reports its loss; one failing inside #connect() is reported
    // by #connect()'s rejection (its 'error' event then changes nothing).
    const onLost = (err?: Error) => {
      if (this.#listener !== c) return;
      this.#listener = undefined;
      c.removeAllListeners('notification');
      c.end().catch(() => {});
      if (this.#closed) return;
      this.#log.warn({ err: err?.message }, 'LISTEN connection lost; reconnecting');
      this.#scheduleReconnect();
    };
    c.on('error', onLost);
    c.on('end', () => onLost());
    c.on('notification', (n) => {
      if (n.payload === undefined) return;
      for (const h of this.#subs.get(n.channel) ?? []) {
        try {
          h(n.payload);
        } catch (err) {
          this.#log.error({ err }, 'notification handler failed');
        }
      }
    });
    const listened = new Set<string>();
    try {
      await c.connect();
      // Every name is a plain identifier (notificationChannelName): LISTEN takes no parameters.
      for (const channel of this.#subs.keys()) {
        if (!IDENTIFIER.test(channel)) throw new Error(`notification channel ${JSON.stringify(channel)} is not a plain identifier`);
        await c.query(`LISTEN ${channel}`);
        listened.add(channel);
      }
    } catch (e) {
      c.end().catch(() => {});
      throw e;
    }
    if (this.#closed) {
      await c.end().catch(() => {});
      return;
    }
    this.#listener = c;
    this.#listened = listened;
  }

  #scheduleReconnect() {
    const { min, max } = this.#backoff;
    // Exponential backoff with jitter, so nodes do not all come back at the same instant.
    const delay = Math.min(max, min * 2 ** this.#attempt) * (0.5 + Math.random() / 2);
    this.#attempt++;
    this.#retryTimer = setTimeout(() => {
      this.#connect().then(
        () => {
          if (this.#closed) return;
          this.#attempt = 0;
          this.reconnects++;
          this.#log.info({ reconnects: this.reconnects }, 'listening again');
          for (const h of this.#onReconnect) {
            try {
              h();
            } catch (err) {
              this.#log.error({ err }, 'reconnection handler failed');
            }
          }
        },
        (e) => {
          if (this.#closed) return;
          this.failedAttempts++;
          this.#log.warn({ err: e.message, attempt: this.#attempt }, 'LISTEN reconnection failed; retrying');
          this.#scheduleReconnect();
        },
      );
    }, delay);
    this.#retryTimer.unref();
  }

  async publish(name: string, payload: string): Promise<void> {
    if (this.#closed) throw new Error('the notification channel is closed');
    // PostgreSQL NOTIFY: the payload "must be shorter than 8000 bytes"; text holds no NUL.
    const bytes = Buffer.byteLength(payload);
    if (bytes > this.maxPayloadBytes) throw new RangeError(`notification payload of ${bytes} bytes: at most ${this.maxPayloadBytes}`);
    if (payload.includes('\0')) throw new RangeError('a notification payload cannot hold NUL');
    await this.#notifier.query('SELECT pg_notify($1, $2)', [notificationChannelName(this.#schema, name), payload]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    const c = this.#listener;
    this.#listener = undefined;
    await Promise.all([c?.end().catch(() => {}), this.#notifier.end().catch(() => {})]);
  }
}
