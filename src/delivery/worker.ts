// Outbound delivery to other operators of the trust space: durable queue (in the store),
// routing and peer checks through trust/, mutual TLS, retries with backoff, DSNs.
//
// Several processes and nodes run this worker on one queue (issue 12). Each claims the items it
// attempts (DeliveryStore.claimQueueItems): the claim leases them to this worker's `owner` for
// `leaseMs` (short: 90 s by default), so no other worker attempts them meanwhile; the outcome's
// commit ends the lease. While the worker holds items it renews their leases every leaseMs/3
// (DeliveryStore.renewQueueItems), so a long attempt keeps its items, and a worker that dies
// leaves leases that expire within leaseMs: its items are attempted again by another (the
// at-least-once window of docs/architecture.md, nothing lost). A lease never expires under a live
// attempt: an attempt is cut (deferred) before the end of its lease when renewals fail, at once
// when a renewal finds the lease gone, and in any case at its time limit (every host's
// connection and greeting timeouts plus a generous transfer budget).
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { Core } from '../core/index.js';
import type { QueueItem } from '../model/index.js';
import type { MessageFiles, PutBlob } from '../store/message-files.js';
import type { DeliveryStore, MailboxStore, QueueCompletion } from '../store/types.js';
import { peerChainFromTls, type TrustService } from '../trust/index.js';
import { buildDsn, wantsDsn, type DsnRecipient } from '../mime/dsn.js';
import type { Metrics } from '../audit/metrics.js';

export interface OutboundOptions {
  /** The queue, and the sender's mailbox of a DSN. */
  store: Pick<DeliveryStore, 'claimQueueItems' | 'renewQueueItems' | 'releaseQueueItems' | 'completeQueueItems'> & Pick<MailboxStore, 'getMailbox'>;
  core: Core;
  blobs: MessageFiles;
  trust: TrustService;
  hostname: string;
  postmaster: string;
  tls: () => { key: string; cert: string; ca: string };
  retrySeconds: number[];
  giveUpSeconds: number;
  pollSeconds: number;
  concurrency: number;
  connectTimeoutSeconds: number;
  logger: Logger;
  /** Prometheus: attempts by result (audit/metrics.ts). */
  metrics?: Metrics;
  /** This worker's name on its queue leases, unique per process (default: host:pid:random). */
  owner?: string;
  /** How long a claim or a renewal leases queue items (default DEFAULT_QUEUE_LEASE_SECONDS); renewed every third of it. */
  leaseSeconds?: number;
  /** The longest an attempt may run before it is cut and deferred (default attemptLimitMs(connectTimeoutSeconds)). */
  attemptLimitSeconds?: number;
  /** How long stop() lets attempts in flight finish before it cuts them, deferred (default 10). */
  stopGraceSeconds?: number;
}

/**
 * Queue items claimed per free attempt slot. A message's recipients at one domain go in one
 * session when claimed together (up to this many: the default per-message recipient limit); the
 * groups beyond the free slots wait in this worker for the next free slot, so a worker holds at
 * most concurrency × this many items and the others claim the rest.
 */
const CLAIM_PER_SLOT = 50;
/** Transfer budget of one attempt: a message of the MSSanté size limit over a slow link, and the peer's replies. */
const TRANSFER_BUDGET_MS = 15 * 60_000;
/** Hosts of a domain an attempt may try (MX records or a static route's list) within its lease. */
const HOSTS_PER_ATTEMPT = 3;
/** Time left at an attempt's deadline, before its lease expires, to record the outcome (at most). */
const RECORD_MARGIN_MS = 30_000;
const recordMargin = (leaseMs: number) => Math.min(RECORD_MARGIN_MS, leaseMs / 10);

/**
 * How long a claim leases queue items by default (queue.leaseSeconds): renewed every third of it
 * while the worker lives, so it bounds how long the items of a worker that died wait, not how
 * long an attempt may run.
 */
export const DEFAULT_QUEUE_LEASE_SECONDS = 90;

/**
 * The longest attempt: for each host tried, the connection and the greeting timeouts; then the
 * transfer budget — about 18 minutes with the 30 s connect timeout. An attempt still running
 * then is cut and deferred.
 */
export function attemptLimitMs(connectTimeoutSeconds: number): number {
  return HOSTS_PER_ATTEMPT * 2 * connectTimeoutSeconds * 1000 + TRANSFER_BUDGET_MS;
}

/** An attempt in flight: its items, its time limit, and whether a renewal found one of its leases gone. */
interface Attempt {
  ids: number[];
  startedAt: number;
  limit: number;
  lost: boolean;
  /** Its outcome is being recorded (the commit ends its leases: a renewal then finds them gone). */
  recording: boolean;
  /** Cuts the session open now, if any. */
  cut?: (e: Error) => void;
}

/** An attempt ran out of its lease, or its worker is stopping: closed and deferred (another worker may claim the items). */
class AttemptCutError extends Error {
  override name = 'AttemptCutError';
}

interface Outcome {
  item: QueueItem;
  kind: 'sent' | 'failed' | 'deferred';
  /** RFC 3463 status for the DSN. */
  status: string;
  diagnostic: string;
  remoteMta?: string;
  /** Remote server announced DSN: it takes over success notification (RFC 3461 §5.2.2). */
  remoteDsn?: boolean;
}

function groupKey(i: QueueItem): string {
  return JSON.stringify([i.blobId, i.domain, i.envelopeFrom, i.notify, i.orcpt, i.ret, i.envid]);
}

function statusFromReply(code: number | undefined, response: string | undefined, fallback: string): string {
  const m = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(response ?? '');
  if (m) return m[1];
  if (code && code >= 500) return '5.0.0';
  if (code && code >= 400) return '4.0.0';
  return fallback;
}

export class OutboundWorker {
  private timer?: NodeJS.Timeout;
  private running = false;
  private stopped = true;
  private again = false;
  private readonly inFlight = new Set<number>();
  private readonly active = new Set<Promise<void>>();
  /** Sessions closing after their outcome was handed to record(). */
  private readonly closing = new Set<Promise<void>>();
  private readonly log: Logger;
  private readonly onQueued = () => this.kick();
  /** This worker's name on its leases. */
  readonly owner: string;
  private readonly leaseMs: number;
  private readonly attemptLimitMs: number;
  /** Claimed items not handed to an attempt yet (given back on stop()). */
  private readonly held = new Set<number>();
  /** The end of the lease (epoch ms, as the store has it) of every item this worker holds: held or in flight, until recorded. */
  private readonly leases = new Map<number, number>();
  /** The attempts in flight, by queue item id. */
  private readonly attempts = new Map<number, Attempt>();
  private renewTimer?: NodeJS.Timeout;
  private renewing?: Promise<void>;
  private current?: Promise<void>;
  /** Cuts each session in flight (stop() past its grace period). */
  private readonly cutters = new Set<(e: Error) => void>();

  constructor(private readonly o: OutboundOptions) {
    this.log = o.logger.child({ component: 'outbound' });
    this.owner = o.owner ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    this.leaseMs = (o.leaseSeconds ?? DEFAULT_QUEUE_LEASE_SECONDS) * 1000;
    this.attemptLimitMs = o.attemptLimitSeconds ? o.attemptLimitSeconds * 1000 : attemptLimitMs(o.connectTimeoutSeconds);
  }

  start(): void {
    this.stopped = false;
    this.o.core.events.on('queued', this.onQueued);
    clearInterval(this.renewTimer);
    this.renewTimer = setInterval(() => void this.renewLeases(), this.leaseMs / 3);
    this.renewTimer.unref();
    this.kick();
  }

  /**
   * Renews the leases of every item this worker holds (one statement; the timer calls it every
   * leaseMs/3, never twice at once). An item whose lease the store no longer has for this worker is
   * dropped: its attempt, if one runs, is cut at once and its deferral not recorded.
   */
  renewLeases(): Promise<void> {
    this.renewing ??= this.#renew().finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  async #renew(): Promise<void> {
    const ids = [...this.leases.keys()];
    if (!ids.length) return;
    const now = Date.now();
    let renewed: number[];
    try {
      renewed = await this.o.store.renewQueueItems(this.owner, ids, now, this.leaseMs);
    } catch (err) {
      // Each attempt is cut before its lease ends if no renewal succeeds by then.
      this.log.warn({ err, items: ids.length }, 'queue lease renewal failed; attempts are cut before their leases end unless a renewal succeeds');
      return;
    }
    const kept = new Set(renewed);
    const lost: number[] = [];
    for (const id of ids) {
      if (!this.leases.has(id)) continue; // recorded or given back meanwhile
      if (kept.has(id)) {
        this.leases.set(id, now + this.leaseMs);
        continue;
      }
      this.leases.delete(id);
      const a = this.attempts.get(id);
      if (a?.recording) continue; // completed meanwhile
      lost.push(id);
      this.held.delete(id);
      if (a && !a.lost) {
        a.lost = true;
        a.cut?.(new AttemptCutError('attempt cut: its queue lease was lost (another worker may attempt the items)'));
      }
    }
    if (lost.length) this.log.warn({ items: lost.length }, 'queue leases lost (expired before their renewal): those items are left to the worker holding them now');
  }

  /** When `a` must end: its time limit, or the margin before the earliest lease of its items ends; at once when one is lost. */
  private deadlineOf(a: Attempt): number {
    if (a.lost) return 0;
    let until = Infinity;
    for (const id of a.ids) until = Math.min(until, this.leases.get(id) ?? 0);
    return Math.min(a.limit, until - recordMargin(this.leaseMs));
  }

  private cutReason(a: Attempt): AttemptCutError {
    if (a.lost) return new AttemptCutError('attempt cut: its queue lease was lost (another worker may attempt the items)');
    if (this.deadlineOf(a) >= a.limit) return new AttemptCutError(`attempt cut after ${Math.round((a.limit - a.startedAt) / 1000)} s, its time limit`);
    return new AttemptCutError('attempt cut: its queue lease could not be renewed in time (the store did not answer)');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.o.core.events.off('queued', this.onQueued);
    if (this.timer) clearTimeout(this.timer);
    // Attempts in flight may finish; one that lingers (a peer that does not answer) is cut and deferred.
    const grace = setTimeout(() => {
      for (const cut of this.cutters) cut(new AttemptCutError(`attempt cut: the queue worker is stopping`));
    }, (this.o.stopGraceSeconds ?? 10) * 1000);
    grace.unref();
    await Promise.allSettled([this.current]); // a pass waiting for a free slot ends with the first attempt to end
    await Promise.allSettled([...this.active]);
    clearTimeout(grace);
    await Promise.allSettled([...this.closing]);
    // Items claimed but not attempted go back to the queue now rather than when their lease ends.
    await this.release([...this.held]);
    clearInterval(this.renewTimer);
    await this.renewing;
  }

  private async release(ids: number[]): Promise<void> {
    if (!ids.length) return;
    for (const id of ids) {
      this.held.delete(id);
      this.leases.delete(id);
    }
    await this.o.store.releaseQueueItems(this.owner, ids).catch((e) => this.log.error({ err: e, items: ids.length }, 'giving back claimed queue items failed (they return when their lease ends)'));
  }

  /** Runs a pass now (new mail queued, or a test wants it). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    this.current = this.pass()
      .catch((e) => this.log.error({ err: e }, 'queue pass failed'))
      .finally(() => {
        this.running = false;
        if (this.again) {
          this.again = false;
          this.kick();
        } else this.schedule();
      });
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.kick(), this.o.pollSeconds * 1000);
    this.timer.unref();
  }

  /** Resolves when no attempt is in flight (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.active.size || this.running) await Promise.allSettled([...this.active, new Promise((r) => setTimeout(r, 10))]);
  }

  private async pass(): Promise<void> {
    // Groups claimed and waiting for a free slot, with the time of their claim.
    const pending: { group: QueueItem[]; claimedAt: number }[] = [];
    let more = true;
    for (;;) {
      while (this.active.size >= this.o.concurrency) await Promise.race(this.active);
      if (this.stopped) return; // stop() gives the pending items back
      if (!pending.length) {
        if (!more) return;
        const free = this.o.concurrency - this.active.size;
        const limit = free * CLAIM_PER_SLOT;
        const claimedAt = Date.now();
        const claimed = (await this.o.store.claimQueueItems(this.owner, claimedAt, limit, this.leaseMs)).filter((i) => !this.inFlight.has(i.id));
        for (const i of claimed) {
          this.held.add(i.id);
          this.leases.set(i.id, claimedAt + this.leaseMs);
        }
        if (this.stopped) return;
        if (!claimed.length) return;
        more = claimed.length >= limit;
        const groups = new Map<string, QueueItem[]>();
        for (const i of claimed) {
          const k = groupKey(i);
          const g = groups.get(k);
          if (g) g.push(i);
          else groups.set(k, [i]);
        }
        for (const group of groups.values()) pending.push({ group, claimedAt });
      }
      const next = pending.shift()!;
      // Items whose lease a renewal found gone are no longer this worker's.
      const group = next.group.filter((i) => this.held.has(i.id));
      if (!group.length) continue;
      // A group that waited for a slot through half a lease goes back to the queue (claimed anew by
      // this worker or another, which may have a free slot) rather than wait on here.
      if (Date.now() - next.claimedAt > (this.leaseMs - recordMargin(this.leaseMs)) / 2) {
        await this.release(group.map((i) => i.id));
        continue;
      }
      const now = Date.now();
      const a: Attempt = { ids: group.map((i) => i.id), startedAt: now, limit: now + this.attemptLimitMs, lost: false, recording: false };
      for (const i of group) {
        this.held.delete(i.id);
        this.inFlight.add(i.id);
        this.attempts.set(i.id, a);
      }
      const p: Promise<void> = this.attempt(group, a)
        .catch((e) => this.log.error({ err: e }, 'delivery attempt crashed'))
        .finally(() => {
          for (const i of group) {
            this.inFlight.delete(i.id);
            this.attempts.delete(i.id);
            this.leases.delete(i.id);
          }
          this.active.delete(p);
        });
      this.active.add(p);
    }
  }

  /** One delivery attempt of a group of claimed items, which must end (cut if need be) by deadlineOf(a). */
  private async attempt(items: QueueItem[], a: Attempt): Promise<void> {
    const first = items[0];
    const domain = first.domain;
    let outcomes: Outcome[];
    const route = await this.o.trust.routeFor(domain);
    if (!route.ok) {
      outcomes = items.map((item) => ({ item, kind: route.temporary ? 'deferred' : 'failed', status: route.temporary ? '4.4.0' : '5.4.4', diagnostic: route.message }));
    } else {
      outcomes = [];
      let lastError = 'no route';
      for (const r of route.routes) {
        if (Date.now() >= this.deadlineOf(a)) {
          lastError = this.cutReason(a).message;
          break;
        }
        const res = await this.sendTo(r.host, r.port, items, a).catch((e: any) => ({ connectError: String(e?.message ?? e), cut: e instanceof AttemptCutError }));
        if ('connectError' in res) {
          lastError = `${r.host}:${r.port}: ${res.connectError}`;
          if (res.cut) break;
          continue; // RFC 5321 §5.1: try the next MX
        }
        outcomes = res.outcomes;
        break;
      }
      if (outcomes.length === 0) outcomes = items.map((item) => ({ item, kind: 'deferred', status: '4.4.1', diagnostic: lastError }));
    }
    if (a.lost) {
      // Another worker may hold these items now: what the peer answered (sent, failed) is recorded,
      // a deferral is left to that worker (it would end its lease).
      outcomes = outcomes.filter((o) => o.kind !== 'deferred');
      if (!outcomes.length) return;
    }
    // The leases are still renewed while the outcome is recorded (a DSN to build); its commit ends them.
    a.recording = true;
    await this.record(outcomes);
  }

  /** One SMTP session to host:port over verified mutual TLS; per-recipient outcomes. */
  private async sendTo(host: string, port: number, items: QueueItem[], a: Attempt): Promise<{ outcomes: Outcome[] }> {
    const first = items[0];
    const tls = this.o.tls();
    const conn = new SMTPConnection({
      host,
      port,
      name: this.o.hostname,
      secure: false,
      requireTLS: true, // RFC 3207: the trust space never sends in cleartext
      connectionTimeout: this.o.connectTimeoutSeconds * 1000,
      greetingTimeout: this.o.connectTimeoutSeconds * 1000,
      socketTimeout: 5 * 60 * 1000,
      tls: {
        key: tls.key,
        cert: tls.cert, // our IGC-Santé certificate, presented as client certificate
        ca: tls.ca,
        minVersion: 'TLSv1.2',
        // The certificate is judged by trust/ right after the handshake (chain, validity, CRL,
        // DN listed for the domain), before any envelope is sent.
        rejectUnauthorized: false,
        servername: isIP(host) ? undefined : host,
      },
    } as any);
    const closed = new Promise<void>((resolve) => conn.once('end', () => resolve()));
    conn.on('error', () => {});
    // The lease's deadline: the session is closed and every step still awaited fails with it.
    let reject!: (e: Error) => void;
    const cutOff = new Promise<never>((_, r) => (reject = r));
    cutOff.catch(() => {});
    const cut = (e: Error) => {
      reject(e);
      conn.close();
    };
    this.cutters.add(cut);
    a.cut = cut;
    // The attempt's deadline, pushed back by each lease renewal (renewLeases): re-armed when it fired early.
    let deadlineTimer: NodeJS.Timeout | undefined;
    const arm = () => {
      const wait = this.deadlineOf(a) - Date.now();
      if (wait <= 0) return cut(this.cutReason(a));
      deadlineTimer = setTimeout(arm, wait);
    };
    arm();
    const within = <T>(p: Promise<T>) => Promise.race([p, cutOff]);
    let stream: ReturnType<MessageFiles['stream']> | undefined;
    try {
      await within(new Promise<void>((resolve, reject) => {
        conn.once('error', reject);
        conn.connect(() => {
          conn.off('error', reject);
          resolve();
        });
      }));
      const socket = (conn as any)._socket as TLSSocket | undefined;
      if (!conn.secure || !socket || typeof socket.getPeerCertificate !== 'function') throw new Error('TLS was not established');
      const decision = await within(this.o.trust.checkOutboundPeer(peerChainFromTls(socket.getPeerCertificate(true)), first.domain));
      if (!decision.ok) {
        this.log.warn({ domain: first.domain, host, port, reason: decision.message }, 'peer certificate refused');
        return {
          outcomes: items.map((item) => ({
            item,
            kind: decision.temporary ? 'deferred' : 'failed',
            status: decision.enhanced.replace(/^[45]/, decision.temporary ? '4' : '5'),
            diagnostic: decision.message,
            remoteMta: host,
          })),
        };
      }
      const remoteDsn = ((conn as any)._supportedExtensions ?? []).includes('DSN');
      stream = this.o.blobs.stream(first.blobId);
      const envelope: any = { from: first.envelopeFrom, to: items.map((i) => i.recipient) };
      // RFC 3461 §4: pass DSN parameters on to a DSN-capable peer.
      if (first.notify || first.orcpt || first.ret || first.envid)
        envelope.dsn = { notify: first.notify ?? undefined, orcpt: first.orcpt ?? undefined, ret: first.ret ?? undefined, envid: first.envid ?? undefined };
      const info: any = await within(
        new Promise((resolve, reject) => {
          conn.send(envelope, stream as any, (err: any, inf: any) => (err ? reject(err) : resolve(inf)));
        }).catch((err: any) => ({ error: err })),
      );
      conn.quit();
      if (info.error) {
        const err = info.error;
        if (err.code === 'ECONNECTION' || err.code === 'ETIMEDOUT' || err.code === 'ESOCKET') throw err;
        const rejected: any[] = err.rejectedErrors ?? [];
        return {
          outcomes: items.map((item) => {
            const e = rejected.find((r) => r.recipient?.toLowerCase() === item.recipient.toLowerCase()) ?? err;
            const code: number | undefined = e.responseCode;
            const temporary = !code || code < 500;
            return { item, kind: temporary ? 'deferred' : 'failed', status: statusFromReply(code, e.response, temporary ? '4.0.0' : '5.0.0'), diagnostic: e.response ?? e.message, remoteMta: host };
          }),
        };
      }
      const rejectedErrors: any[] = info.rejectedErrors ?? [];
      return {
        outcomes: items.map((item) => {
          const e = rejectedErrors.find((r) => r.recipient?.toLowerCase() === item.recipient.toLowerCase());
          if (!e) return { item, kind: 'sent', status: '2.0.0', diagnostic: info.response ?? '250', remoteMta: host, remoteDsn };
          const code: number | undefined = e.responseCode;
          const temporary = !code || code < 500;
          return { item, kind: temporary ? 'deferred' : 'failed', status: statusFromReply(code, e.response, temporary ? '4.0.0' : '5.0.0'), diagnostic: e.response ?? e.message, remoteMta: host };
        }),
      };
    } finally {
      clearTimeout(deadlineTimer);
      this.cutters.delete(cut);
      a.cut = undefined;
      conn.close();
      stream?.destroy(); // a cut transfer leaves the file open otherwise
      // The outcome is recorded without waiting for the socket to close: between the peer's 250
      // and our commit lies the at-least-once window (a crash there sends the message again;
      // docs/architecture.md), so nothing may stand in it. stop() waits for the closes.
      const settled: Promise<void> = Promise.race([closed, new Promise<void>((r) => setTimeout(r, 100))]).finally(() => this.closing.delete(settled));
      this.closing.add(settled);
    }
  }

  private nextDelay(attempts: number): number {
    const s = this.o.retrySeconds;
    return s[Math.min(attempts, s.length - 1)] * 1000;
  }

  private async record(outcomes: Outcome[]): Promise<void> {
    const now = Date.now();
    const c: QueueCompletion = { sent: [], failed: [], deferred: [], dsns: [] };
    const dsnRcpts: DsnRecipient[] = [];
    for (const o of outcomes) {
      const i = o.item;
      if (o.kind === 'sent') {
        c.sent.push(i.id);
        this.log.info({ queueId: i.id, domain: i.domain, host: o.remoteMta, attempts: i.attempts + 1 }, 'delivered');
        // RFC 3461 §5.2.2: a peer that announced DSN reports delivery itself; otherwise we say "relayed".
        if (wantsDsn(i.notify, 'SUCCESS') && !o.remoteDsn)
          dsnRcpts.push({ recipient: i.recipient, orcpt: i.orcpt, action: 'delivered', status: '2.0.0', remoteMta: o.remoteMta, diagnostic: o.diagnostic, lastAttempt: new Date(now) });
        continue;
      }
      const expired = now - i.queuedAt >= this.o.giveUpSeconds * 1000;
      if (o.kind === 'failed' || expired) {
        const diagnostic = o.kind === 'failed' ? o.diagnostic : `${o.diagnostic} (gave up after ${Math.round((now - i.queuedAt) / 1000)} s and ${i.attempts + 1} attempts)`;
        c.failed.push({ id: i.id, error: diagnostic });
        this.log.warn({ queueId: i.id, domain: i.domain, attempts: i.attempts + 1, reason: o.diagnostic }, expired && o.kind !== 'failed' ? 'gave up' : 'permanent failure');
        if (wantsDsn(i.notify, 'FAILURE'))
          dsnRcpts.push({ recipient: i.recipient, orcpt: i.orcpt, action: 'failed', status: o.status.replace(/^4/, '5'), remoteMta: o.remoteMta, diagnostic, lastAttempt: new Date(now) });
      } else {
        const next = now + this.nextDelay(i.attempts);
        c.deferred.push({ id: i.id, error: o.diagnostic, nextAttemptAt: Math.min(next, i.queuedAt + this.o.giveUpSeconds * 1000) });
        this.log.info({ queueId: i.id, domain: i.domain, attempts: i.attempts + 1, retryInMs: next - now, reason: o.diagnostic }, 'deferred');
      }
    }
    const first = outcomes[0]?.item;
    let dsnBlob: PutBlob | undefined;
    if (dsnRcpts.length && first?.senderMailboxId) {
      const sender = await this.o.store.getMailbox(first.senderMailboxId);
      if (sender && sender.state !== 'deleted') {
        const raw = await buildDsn({
          reportingMta: this.o.hostname,
          postmaster: this.o.postmaster,
          to: sender.address,
          envid: first.envid,
          arrivalDate: new Date(first.queuedAt),
          ret: first.ret,
          recipients: dsnRcpts,
          original: await this.o.blobs.read(first.blobId),
        });
        dsnBlob = await this.o.blobs.put(raw);
        c.dsns.push({ blobId: dsnBlob.id, size: dsnBlob.size, mailboxId: sender.id });
      }
    }
    const copies = await this.o.store.completeQueueItems(c).finally(() => dsnBlob?.release());
    if (this.o.metrics) {
      const m = this.o.metrics.outbound;
      if (c.sent.length) m.inc({ result: 'sent' }, c.sent.length);
      if (c.deferred.length) m.inc({ result: 'deferred' }, c.deferred.length);
      if (c.failed.length) m.inc({ result: 'failed' }, c.failed.length);
    }
    for (const d of c.dsns) this.o.core.events.emit('stored', { blobId: d.blobId });
    for (const copy of copies) this.o.core.events.emit('delivered', copy);
    // Delivery tracking: relayed / failed / still queued (docs/receipts.md).
    this.o.core.announceSubmissions(copies.submissionChanges);
  }
}
