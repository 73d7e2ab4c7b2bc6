// The event relay (architecture invariant 6, "a cross-node bus when several nodes share a
// database"): Core.events is an in-process EventEmitter; when several processes (`caducee start
// --workers N`) or nodes (PostgreSQL) serve one operator, a delivery accepted by one must wake
// the IMAP IDLE sessions, event streams, queue workers and webhook dispatchers of the others.
//
// The relay listens to the local emits of RELAYED_EVENTS, publishes them through a transport (the
// store's notification channel, PostgreSQL LISTEN/NOTIFY: relay/channel.ts; node:cluster IPC:
// relay/cluster.ts), and re-emits what other processes publish on the local Core.events, marked
// (FROM_RELAY) so that it is never published again: no echo loops. Payloads are ids only
// (sanitize() keeps the numeric ids and the kind of change, never content, addresses or
// subjects): every consumer re-reads the shared store, which is the truth; an event only says
// where to look.
//
// A transport that may have missed messages (a reconnection) reports a gap: the relay then
// emits a local 'resync' ({ reason }) on which every IMAP IDLE session compares its folder's
// HIGHESTMODSEQ with the store's and the event streams catch up; a safety poll emits the same
// every `resyncEveryMs` (what no transport can promise, a periodic read of the store repairs).
import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { Logger } from 'pino';

/** The Core.events names that cross processes. 'stored' stays local: the process that stored a file indexes it. */
export const RELAYED_EVENTS = ['delivered', 'folder-changed', 'grants-changed', 'folders-changed', 'metadata-changed', 'submission', 'queued'] as const;
export type RelayedEvent = (typeof RELAYED_EVENTS)[number];

/** Set on the payload of an event re-emitted from another process (consumers may read it; the relay skips it). */
export const FROM_RELAY: unique symbol = Symbol.for('caducee.relay.remote');

/** Why the local 'resync' was emitted: the safety poll, our own reconnection, or another process's. */
export type ResyncReason = 'poll' | 'gap' | 'peer-gap';
export interface ResyncEvent {
  reason: ResyncReason;
}

/** True when the event payload came from another process through the relay. */
export function isRelayed(payload: unknown): boolean {
  return typeof payload === 'object' && payload !== null && (payload as Record<symbol, unknown>)[FROM_RELAY] === true;
}

/** What a transport gives the relay. */
export interface RelayHandlers {
  /** One message published by another process (or this one: the relay drops its own by origin). */
  message(payload: string): void;
  /** Messages may have been missed (a reconnection): everything must be re-read. */
  gap(): void;
  /** A message accepted by publish() could not be sent after all: the others must re-read. */
  lost(): void;
}

/** A way to reach the other processes or nodes of the operator. */
export interface RelayTransport {
  /** 'postgres' or 'cluster' (logs, counters). */
  readonly kind: string;
  /** Largest message in bytes (PostgreSQL NOTIFY: < 8000). */
  readonly maxPayloadBytes: number;
  start(h: RelayHandlers): Promise<void>;
  /** Sends one message to every other process; false when it could not be sent now (disconnected). */
  publish(payload: string): boolean;
  close(): Promise<void>;
}

interface WireMessage {
  v: 1;
  /** The publishing relay (random per relay: says nothing of the operator). */
  o: string;
  t: RelayedEvent | 'resync';
  p?: Record<string, unknown>;
}

const id = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined);
/** The mail API's object ids in 'folder-changed' (`e123`, `f4`, …). */
const API_ID = /^[a-z]{1,2}\d{1,15}$/;
const KINDS = new Set(['created', 'changed', 'destroyed']);
/** An RFC 5464 §3.2 entry name as METADATA stores it (lower case, printable ASCII). */
const ENTRY_NAME = /^\/(private|shared)(\/[\x21-\x7e]{1,200}){1,10}$/;

/**
 * The ids an event may carry across processes, and nothing else (never content, addresses or
 * subjects); null when a required id is missing (the event is then not relayed, and logged).
 */
export function sanitize(event: RelayedEvent, p: any): Record<string, unknown> | null {
  const o = typeof p === 'object' && p !== null ? p : {};
  const need = (...keys: string[]) => {
    const out: Record<string, unknown> = {};
    for (const k of keys) {
      const v = id(o[k]);
      if (v === undefined) return null;
      out[k] = v;
    }
    return out;
  };
  switch (event) {
    case 'delivered': {
      const r = need('mailboxId', 'folderId', 'uid', 'messageId');
      if (r && o.sentCopy === true) r.sentCopy = true;
      return r;
    }
    case 'folder-changed': {
      const r = need('folderId');
      if (!r) return null;
      if (typeof o.kind === 'string' && KINDS.has(o.kind) && Array.isArray(o.ids) && o.ids.every((i: unknown) => typeof i === 'string' && API_ID.test(i))) {
        r.kind = o.kind;
        r.ids = o.ids;
      }
      return r;
    }
    case 'grants-changed':
      return need('mailboxId', 'userId');
    case 'folders-changed':
      return need('mailboxId'); // never the folder names
    case 'metadata-changed': {
      // RFC 5464 entry names (protocol identifiers such as /shared/comment, never values): kept
      // when they look like entry names (printable ASCII, at most 100 of 200 octets each), else
      // the event goes without them (then not reported by the other processes' NOTIFY sessions).
      const r = need('userId');
      if (!r) return null;
      for (const k of ['mailboxId', 'folderId']) r[k] = o[k] === null ? null : id(o[k]) ?? null;
      const names = (v: unknown) => (Array.isArray(v) && v.length <= 100 && v.every((x) => typeof x === 'string' && ENTRY_NAME.test(x)) ? v : []);
      r.shared = names(o.shared);
      r.private = names(o.private);
      return r;
    }
    case 'submission':
      return need('id', 'mailboxId');
    case 'queued':
      return {};
  }
}

export interface EventRelayOptions {
  logger: Logger;
  /** Safety poll: a local 'resync' this often (0: none). Default 30 s. */
  resyncEveryMs?: number;
}

/** Publishes the local relayed events and re-emits the others' (see the file header). */
export class EventRelay {
  /** This relay's id in its messages (its own come back over PostgreSQL: dropped). */
  readonly origin = randomBytes(8).toString('hex');
  /** Published, received from others, not sent (disconnected or unrelayable), resyncs emitted. */
  readonly counters = { published: 0, received: 0, dropped: 0, resyncs: 0 };
  private readonly listeners = new Map<RelayedEvent, (p: unknown) => void>();
  private pollTimer?: NodeJS.Timeout;
  private started = false;
  /** A message of ours was lost: the others are asked to resync with the next message or poll. */
  private owesResync = false;
  private readonly log: Logger;

  constructor(
    private readonly events: EventEmitter,
    private readonly transport: RelayTransport,
    private readonly o: EventRelayOptions,
  ) {
    this.log = o.logger.child({ component: 'relay', transport: transport.kind });
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.transport.start({
      message: (m) => this.receive(m),
      gap: () => this.onGap(),
      lost: () => {
        this.counters.dropped++;
        this.owesResync = true;
      },
    });
    for (const name of RELAYED_EVENTS) {
      const l = (p: unknown) => {
        if (!isRelayed(p)) this.publishEvent(name, p);
      };
      this.listeners.set(name, l);
      this.events.on(name, l);
    }
    const every = this.o.resyncEveryMs ?? 30_000;
    if (every > 0) {
      this.pollTimer = setInterval(() => {
        this.resync('poll');
        if (this.owesResync) this.askPeersToResync();
      }, every);
      this.pollTimer.unref();
    }
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    for (const [name, l] of this.listeners) this.events.off(name, l);
    this.listeners.clear();
    clearInterval(this.pollTimer);
    await this.transport.close();
  }

  private askPeersToResync() {
    this.owesResync = false;
    this.send({ v: 1, o: this.origin, t: 'resync' });
  }

  private send(m: WireMessage): boolean {
    if (this.owesResync && m.t !== 'resync') this.askPeersToResync();
    let text = JSON.stringify(m);
    if (Buffer.byteLength(text) > this.transport.maxPayloadBytes && m.t === 'folder-changed' && m.p) {
      // Too many ids (a large expunge): the folder alone, and its watchers re-read it.
      text = JSON.stringify({ ...m, p: { folderId: m.p.folderId } });
    }
    if (Buffer.byteLength(text) > this.transport.maxPayloadBytes) {
      this.counters.dropped++;
      this.log.error({ event: m.t, bytes: Buffer.byteLength(text) }, 'event larger than the transport allows: not relayed (other processes catch up at the next resync)');
      return false;
    }
    if (!this.transport.publish(text)) {
      this.counters.dropped++;
      this.owesResync = true;
      return false;
    }
    this.counters.published++;
    return true;
  }

  private publishEvent(name: RelayedEvent, payload: unknown) {
    const p = sanitize(name, payload);
    if (!p) {
      this.counters.dropped++;
      this.log.warn({ event: name }, 'event without the ids the relay needs: not relayed');
      return;
    }
    this.send({ v: 1, o: this.origin, t: name, p });
  }

  private receive(text: string) {
    let m: WireMessage;
    try {
      m = JSON.parse(text);
    } catch {
      this.log.warn({ bytes: text.length }, 'unreadable relay message ignored');
      return;
    }
    if (m?.v !== 1 || typeof m.o !== 'string' || m.o === this.origin) return;
    if (m.t === 'resync') {
      this.counters.received++;
      this.resync('peer-gap');
      return;
    }
    if (!(RELAYED_EVENTS as readonly string[]).includes(m.t)) return;
    // Only the ids pass, whatever another version of this code sent.
    const p = sanitize(m.t, m.p);
    if (!p) return;
    this.counters.received++;
    // The mark is not enumerable: consumers copying the payload ({ ...e }) do not carry it on.
    this.events.emit(m.t, Object.defineProperty(p, FROM_RELAY, { value: true, enumerable: false }));
  }

  private onGap() {
    this.log.info('relay reconnected: every session re-reads its folder (notifications may have been missed)');
    this.resync('gap');
    // What we published while disconnected was lost too: the others re-read as well.
    this.askPeersToResync();
  }

  /** Emits the local 'resync' (IMAP IDLE sessions and event streams re-read the store). */
  resync(reason: ResyncReason) {
    this.counters.resyncs++;
    this.events.emit('resync', { reason } satisfies ResyncEvent);
  }
}
