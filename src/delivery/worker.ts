// Outbound delivery to other operators of the trust space: durable queue (in the store),
// routing and peer checks through trust/, mutual TLS, retries with backoff, DSNs.
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { isIP } from 'node:net';
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
  store: Pick<DeliveryStore, 'dueQueueItems' | 'completeQueueItems'> & Pick<MailboxStore, 'getMailbox'>;
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

  constructor(private readonly o: OutboundOptions) {
    this.log = o.logger.child({ component: 'outbound' });
  }

  start(): void {
    this.stopped = false;
    this.o.core.events.on('queued', this.onQueued);
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.o.core.events.off('queued', this.onQueued);
    if (this.timer) clearTimeout(this.timer);
    await Promise.allSettled([...this.active]);
    await Promise.allSettled([...this.closing]);
  }

  /** Runs a pass now (new mail queued, or a test wants it). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    this.pass()
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
    const due = (await this.o.store.dueQueueItems(Date.now(), 500)).filter((i) => !this.inFlight.has(i.id));
    const groups = new Map<string, QueueItem[]>();
    for (const i of due) {
      const k = groupKey(i);
      const g = groups.get(k);
      if (g) g.push(i);
      else groups.set(k, [i]);
    }
    for (const g of groups.values()) {
      while (this.active.size >= this.o.concurrency) await Promise.race(this.active);
      if (this.stopped) return;
      for (const i of g) this.inFlight.add(i.id);
      const p: Promise<void> = this.attempt(g)
        .catch((e) => this.log.error({ err: e }, 'delivery attempt crashed'))
        .finally(() => {
          for (const i of g) this.inFlight.delete(i.id);
          this.active.delete(p);
        });
      this.active.add(p);
    }
  }

  private async attempt(items: QueueItem[]): Promise<void> {
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
        const res = await this.sendTo(r.host, r.port, items).catch((e: any) => ({ connectError: String(e?.message ?? e) }));
        if ('connectError' in res) {
          lastError = `${r.host}:${r.port}: ${res.connectError}`;
          continue; // RFC 5321 §5.1: try the next MX
        }
        outcomes = res.outcomes;
        break;
      }
      if (outcomes.length === 0) outcomes = items.map((item) => ({ item, kind: 'deferred', status: '4.4.1', diagnostic: lastError }));
    }
    await this.record(outcomes);
  }

  /** One SMTP session to host:port over verified mutual TLS; per-recipient outcomes. */
  private async sendTo(host: string, port: number, items: QueueItem[]): Promise<{ outcomes: Outcome[] }> {
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
    try {
      await new Promise<void>((resolve, reject) => {
        conn.once('error', reject);
        conn.connect(() => {
          conn.off('error', reject);
          resolve();
        });
      });
      const socket = (conn as any)._socket as TLSSocket | undefined;
      if (!conn.secure || !socket || typeof socket.getPeerCertificate !== 'function') throw new Error('TLS was not established');
      const decision = await this.o.trust.checkOutboundPeer(peerChainFromTls(socket.getPeerCertificate(true)), first.domain);
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
      const stream = this.o.blobs.stream(first.blobId);
      const envelope: any = { from: first.envelopeFrom, to: items.map((i) => i.recipient) };
      // RFC 3461 §4: pass DSN parameters on to a DSN-capable peer.
      if (first.notify || first.orcpt || first.ret || first.envid)
        envelope.dsn = { notify: first.notify ?? undefined, orcpt: first.orcpt ?? undefined, ret: first.ret ?? undefined, envid: first.envid ?? undefined };
      const info: any = await new Promise((resolve, reject) => {
        conn.send(envelope, stream as any, (err: any, inf: any) => (err ? reject(err) : resolve(inf)));
      }).catch((err: any) => ({ error: err }));
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
      conn.close();
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
