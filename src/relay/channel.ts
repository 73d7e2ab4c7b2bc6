// The relay's store transport: the operator's processes and nodes sharing a PostgreSQL store reach
// each other through the store's notification channel (NotificationChannel, store/types.ts;
// LISTEN/NOTIFY in store/postgres/notifications.ts). The relay knows no SQL and no driver: it
// subscribes to one name — the operator's host name, scoped by the store to its schema — and
// publishes there. A reconnection of the channel is a gap (every session re-reads the store by
// modseq, relay/index.ts); a publication that fails is lost (the others are asked to resync).
import type { Logger } from 'pino';
import type { NotificationChannel } from '../store/types.js';
import type { RelayHandlers, RelayTransport } from './index.js';

export class StoreChannelTransport implements RelayTransport {
  readonly kind: string;
  readonly maxPayloadBytes: number;
  private closed = false;
  private handlers?: RelayHandlers;
  private readonly log: Logger;

  /** `name`: the operator's channel (its host name); the transport closes `channel` with itself. */
  constructor(
    readonly channel: NotificationChannel,
    readonly name: string,
    o: { logger: Logger },
  ) {
    this.kind = channel.kind;
    this.maxPayloadBytes = channel.maxPayloadBytes;
    this.log = o.logger.child({ component: 'relay', channel: name });
  }

  async start(h: RelayHandlers): Promise<void> {
    this.handlers = h;
    this.channel.onReconnect(() => {
      if (!this.closed) h.gap();
    });
    try {
      await this.channel.subscribe(this.name, (payload) => h.message(payload));
    } catch (e: any) {
      await this.channel.close().catch(() => {});
      throw new Error(`cannot listen for the event relay on the store's ${this.kind} notification channel (${e.message}): check the store's connection settings and that the server is up`);
    }
  }

  publish(payload: string): boolean {
    if (this.closed) return false;
    this.channel.publish(this.name, payload).catch((e) => {
      if (this.closed) return;
      // Lost for the others: they re-read the store at their next resync (safety poll).
      this.log.warn({ err: e.message }, 'publishing a relay message failed: other nodes are asked to resync once it works again');
      this.handlers?.lost();
    });
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.channel.close();
  }
}
