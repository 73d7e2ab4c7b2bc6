// GET /api/v1/events: the mail API's Server-Sent Events stream (WHATWG HTML §9.2), fed by
// Core.events (architecture invariant 6: events, not polling): 'delivered' (a message committed
// in a folder), 'folder-changed' (flags, moves, expunges by IMAP or the API), 'grants-changed',
// 'submission' (the delivery tracking of a sent message changed: `event: submission`).
// Each event has an id (the resume token); a client reconnecting with Last-Event-ID (or
// ?since=) gets the events it missed while they are still held (the last `history` events of
// this process), otherwise one `event: reset` (reload everything). A comment line every
// `keepaliveMs` keeps proxies from closing the stream. A caller only sees the events of the
// mailboxes whose content it may read (Core.readableMailboxes, re-read when grants change).
// With several processes or nodes (src/relay) the events of the others arrive on Core.events
// too; on 'resync' (the safety poll, or a relay reconnection after which events may be missing)
// the hub compares the HIGHESTMODSEQ of every folder its clients watch with the store's and sends
// `event: folder` for each that moved; after a reconnection every client also gets `event: reset`
// (grants, tracking and folder lists may have changed unannounced).
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../auth/index.js';
import type { Core, User } from '../core/index.js';
import type { DeliveredCopy, SubmissionChange } from '../store/types.js';
import { requireCaller } from './caller.js';

export interface EventsRoutesOptions {
  auth: Authenticator;
  core: Core;
  /** Events kept for resuming (default 1000). */
  history?: number;
  /** Keepalive comment period (default 25 s). */
  keepaliveMs?: number;
}

interface HubEvent {
  seq: number;
  /** The mailbox concerned (null: grants of `userIds`). */
  mailboxId: number | null;
  userIds?: number[];
  type: 'email' | 'folder' | 'mailboxes' | 'submission' | 'reset';
  data: Record<string, unknown>;
}

/** The process's event log: a ring of the last events, each with a sequence number; listeners get each new one. */
export class EventHub {
  /** Distinguishes this process's sequence numbers from a previous run's (a resume across a restart is a reset). */
  readonly epoch = randomBytes(4).toString('hex');
  private seq = 0;
  private readonly ring: HubEvent[] = [];
  private readonly listeners = new Set<(e: HubEvent) => void>();
  private readonly folderMailbox = new Map<number, { mailboxId: number; address: string }>();
  private readonly detach: () => void;

  constructor(
    private readonly core: Core,
    private readonly history = 1000,
  ) {
    const onDelivered = (c: DeliveredCopy) => void this.delivered(c);
    const onChanged = (e: { folderId: number; kind?: 'changed' | 'destroyed' | 'created'; ids?: string[] }) => void this.folderChanged(e);
    const onGrants = (e: { mailboxId: number; userId: number }) => this.push({ mailboxId: null, userIds: [e.userId], type: 'mailboxes', data: {} });
    // Delivery tracking changed (docs/receipts.md): the submission's id, to re-read GET /api/v1/submissions/{id}.
    const onSubmission = (c: SubmissionChange) => void this.submission(c);
    core.events.on('delivered', onDelivered);
    core.events.on('submission', onSubmission);
    core.events.on('folder-changed', onChanged);
    core.events.on('grants-changed', onGrants);
    const onResync = (e: { reason?: string } | undefined) => this.track(this.resync(e?.reason !== 'poll'));
    core.events.on('resync', onResync);
    this.detach = () => {
      core.events.off('resync', onResync);
      core.events.off('delivered', onDelivered);
      core.events.off('folder-changed', onChanged);
      core.events.off('grants-changed', onGrants);
      core.events.off('submission', onSubmission);
    };
  }

  /** Mailboxes watched by open streams (reference counts) and the HIGHESTMODSEQ last seen of each of their folders. */
  private readonly watched = new Map<number, number>();
  private readonly baseline = new Map<number, Map<number, number>>();
  private resyncing = false;

  /** An open stream reads these mailboxes: their folders are checked at each resync. Returns the unwatch. */
  watch(mailboxIds: Iterable<number>): () => void {
    const ids = [...mailboxIds];
    for (const id of ids) {
      const n = this.watched.get(id) ?? 0;
      this.watched.set(id, n + 1);
      if (n === 0) this.track(this.check(id, false));
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      for (const id of ids) {
        const n = (this.watched.get(id) ?? 1) - 1;
        if (n > 0) this.watched.set(id, n);
        else {
          this.watched.delete(id);
          this.baseline.delete(id);
        }
      }
    };
  }

  private readonly pending = new Set<Promise<void>>();
  private track(p: Promise<void>) {
    const t = p.catch(() => {}).finally(() => this.pending.delete(t));
    this.pending.add(t);
  }

  /** Resolves once the resync work under way is done (tests). */
  async idle(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }

  /** Compares a mailbox's folders with what was last seen; `announce`: push `folder` for each that moved. */
  private async check(mailboxId: number, announce: boolean) {
    const folders = await this.core.store.listFolders(mailboxId);
    const before = this.baseline.get(mailboxId);
    const now = new Map<number, number>();
    for (const f of folders) {
      const modseq = await this.core.store.folderModseq(f.id);
      now.set(f.id, modseq);
      if (announce && before && before.get(f.id) !== modseq) await this.folderChanged({ folderId: f.id });
    }
    if (this.watched.has(mailboxId)) this.baseline.set(mailboxId, now);
  }

  /** 'resync' (src/relay): folders that moved unannounced get `folder`; after a gap everyone gets `reset`. */
  private async resync(gap: boolean) {
    if (gap) this.push({ mailboxId: null, type: 'reset', data: {} });
    if (this.resyncing) return;
    this.resyncing = true;
    try {
      for (const id of [...this.watched.keys()]) await this.check(id, true).catch(() => {});
    } finally {
      this.resyncing = false;
    }
  }

  close() {
    this.detach();
    this.listeners.clear();
  }

  get current() {
    return this.seq;
  }

  token(seq: number) {
    return `${this.epoch}-${seq}`;
  }

  private async folder(folderId: number) {
    let f = this.folderMailbox.get(folderId);
    if (!f) {
      const folder = await this.core.store.getFolderById(folderId);
      const m = folder ? await this.core.store.getMailbox(folder.mailboxId) : undefined;
      if (!folder || !m) return undefined;
      f = { mailboxId: m.id, address: m.address };
      this.folderMailbox.set(folderId, f);
    }
    return f;
  }

  private async delivered(c: DeliveredCopy) {
    const f = await this.folder(c.folderId).catch(() => undefined);
    if (!f) return;
    this.push({ mailboxId: f.mailboxId, type: 'email', data: { mailbox: f.address, folderId: `f${c.folderId}`, kind: 'created', ids: [`e${c.messageId}`] } });
  }

  private async submission(c: SubmissionChange) {
    const m = await this.core.store.getMailbox(c.mailboxId).catch(() => undefined);
    if (!m) return;
    this.push({ mailboxId: m.id, type: 'submission', data: { mailbox: m.address, id: `s${c.id}` } });
  }

  private async folderChanged(e: { folderId: number; kind?: string; ids?: string[] }) {
    const f = await this.folder(e.folderId).catch(() => undefined);
    if (!f) return;
    if (e.kind && e.ids) this.push({ mailboxId: f.mailboxId, type: 'email', data: { mailbox: f.address, folderId: `f${e.folderId}`, kind: e.kind, ids: e.ids } });
    else this.push({ mailboxId: f.mailboxId, type: 'folder', data: { mailbox: f.address, folderId: `f${e.folderId}` } });
  }

  private push(e: Omit<HubEvent, 'seq'>) {
    const ev = { ...e, seq: ++this.seq };
    this.ring.push(ev);
    if (this.ring.length > this.history) this.ring.shift();
    for (const l of this.listeners) l(ev);
  }

  /** The events after `token`, or null when they are no longer all held (or the token is another run's). */
  since(token: string): HubEvent[] | null {
    const m = /^([0-9a-f]{8})-(\d{1,15})$/.exec(token);
    if (!m || m[1] !== this.epoch) return null;
    const after = Number(m[2]);
    if (after > this.seq) return null;
    const oldest = this.ring[0]?.seq ?? this.seq + 1;
    if (after < oldest - 1) return null;
    return this.ring.filter((e) => e.seq > after);
  }

  subscribe(l: (e: HubEvent) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

export function registerEventsRoutes(app: FastifyInstance, o: EventsRoutesOptions) {
  const hub = new EventHub(o.core, o.history ?? 1000);
  const open = new Set<ServerResponse>();
  app.addHook('preClose', async () => {
    for (const res of open) res.end();
    open.clear();
    hub.close();
  });

  app.get('/api/v1/events', async (req, reply) => {
    const { user } = await requireCaller(req, o.auth);
    const readable = async (u: User) => new Set((await o.core.readableMailboxes(u)).map((a) => a.mailbox.id));
    let mailboxes = await readable(user);
    const lastId = req.headers['last-event-id'] ?? (req.query as { since?: string }).since;
    const res = reply.raw;
    reply.hijack();
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    });
    open.add(res);
    // Events arriving while the backlog is written wait in order.
    let chain = Promise.resolve();
    const visible = (e: HubEvent) => (e.type === 'reset' ? true : e.mailboxId === null ? e.userIds?.includes(user.id) : mailboxes.has(e.mailboxId));
    let unwatch = hub.watch(mailboxes);
    const write = (e: HubEvent) => {
      chain = chain.then(async () => {
        if ((e.type === 'mailboxes' && e.userIds?.includes(user.id)) || e.type === 'reset') {
          mailboxes = await readable(user).catch(() => mailboxes);
          unwatch();
          unwatch = hub.watch(mailboxes);
        }
        if (!visible(e) || res.writableEnded) return;
        res.write(`id: ${hub.token(e.seq)}\nevent: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`);
      });
    };
    const unsubscribe = hub.subscribe(write);
    res.write(`retry: 2000\n: caducee events\n\n`);
    if (typeof lastId === 'string' && lastId.length) {
      const missed = hub.since(lastId.slice(0, 40));
      if (missed === null) res.write(`id: ${hub.token(hub.current)}\nevent: reset\ndata: {}\n\n`);
      else for (const e of missed) write(e);
    }
    const keepalive = setInterval(() => res.write(`: keepalive\n\n`), o.keepaliveMs ?? 25_000);
    keepalive.unref();
    const done = () => {
      clearInterval(keepalive);
      unsubscribe();
      unwatch();
      open.delete(res);
    };
    req.raw.on('close', done);
    res.on('close', done);
  });
}
