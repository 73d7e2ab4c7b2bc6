// Webhooks of medical software (issue 11, docs/software-api.md): every message arriving in the
// INBOX of a mailbox is POSTed, as JSON, to the HTTPS endpoints registered for it.
//
// Guarantees: at-least-once, in arrival order per webhook, with a stable event id (the message's
// row id: a retry or a replay carries the same id, so the receiver deduplicates). The feed's
// position is the webhook's cursor in the store, moved only after the endpoint answered 2xx
// (compare-and-set): a crash between the POST and the cursor update repeats that one event.
// Failures are retried with exponential backoff (5 s doubling, at most 1 h apart) for
// `retryHours` (24 h by default); an event still refused then is abandoned (counted, logged,
// and still available by pull: GET /api/v1/mailboxes/{address}/inbound).
//
// Signature (Stripe-style, so that existing verifiers fit): header
//   Caducee-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
// The receiver recomputes it over the raw body and refuses a timestamp older than a few minutes.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import type { Logger } from 'pino';
import type { Core } from '../core/index.js';
import type { Mailbox, User, Webhook } from '../model/index.js';
import type { InboundMessage, IntegrationStore, MailboxStore } from '../store/types.js';
import type { SecretBox } from '../auth/secret-box.js';

export const SIGNATURE_HEADER = 'caducee-signature';
export const EVENT_ID_HEADER = 'caducee-event-id';

/** The stable id of the event "message `id` arrived": the same for every try and every webhook. */
export const inboundEventId = (messageRowId: number) => `m${messageRowId}`;

/** `Caducee-Signature` value for `body` at `t` (unix seconds). */
export function signWebhookBody(secret: string, body: string, t: number): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

/** Checks a `Caducee-Signature` header (receivers and tests): constant-time, with a tolerance on t. */
export function verifyWebhookSignature(secret: string, body: string, header: string, nowSeconds = Math.floor(Date.now() / 1000), toleranceSeconds = 300): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header.trim());
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  const want = Buffer.from(signWebhookBody(secret, body, t).slice(`t=${t},v1=`.length), 'hex');
  const got = Buffer.from(m[2], 'hex');
  return want.length === got.length && timingSafeEqual(want, got);
}

/** Describes one inbound message for the endpoint (JSON; links rather than content where large). */
export type InboundDescriber = (mailbox: Mailbox, message: InboundMessage) => Promise<Record<string, unknown>>;

export interface WebhookDispatcherOptions {
  store: IntegrationStore & Pick<MailboxStore, 'getMailbox'>;
  core: Pick<Core, 'events' | 'rightsOn'> & { store: { getUser(id: number): Promise<User | undefined> } };
  secrets: SecretBox;
  describe: InboundDescriber;
  logger: Logger;
  /** How long one event is retried before it is abandoned (default 24). */
  retryHours?: number;
  /** Polling period when no delivery wakes the dispatcher (default 5 s). */
  pollSeconds?: number;
  /** Extra CA certificates (PEM) trusted for endpoints besides the system's (private PKIs, tests). */
  ca?: string;
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
  /** Clock (tests). */
  now?: () => number;
}

const FIRST_RETRY_MS = 5_000;
const MAX_RETRY_MS = 3_600_000;
const MAX_PARALLEL = 4;

/** Delay before try n+1 after n failures (n ≥ 1): 5 s, 10 s, 20 s … capped at 1 h, ±20 % jitter. */
export function webhookBackoffMs(failures: number, random = Math.random()): number {
  const base = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.min(30, failures - 1));
  return Math.round(base * (0.8 + 0.4 * random));
}

/** The AAD binding a webhook's sealed secret to its owner, mailbox and endpoint. */
export const webhookSecretContext = (w: { userId: number; mailboxId: number; url: string }) => `webhook:${w.userId}:${w.mailboxId}:${w.url}`;

export class WebhookError extends Error {
  override name = 'WebhookError';
}

/**
 * Registers a webhook for `address` on behalf of `user` (an API client or a person): the user must
 * hold the read right (Core decides); the endpoint must be https:// (no credentials, no fragment).
 * Returns the signing secret, shown once.
 */
export async function registerWebhook(
  o: { core: Pick<Core, 'requireMailbox' | 'rightsOn'>; store: IntegrationStore; secrets: SecretBox },
  user: User,
  address: string,
  url: string,
  since: 'now' | 'all' = 'now',
): Promise<{ webhook: Webhook; secret: string }> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new WebhookError(`${url} is not a URL: give the https:// address of the endpoint`);
  }
  if (u.protocol !== 'https:') throw new WebhookError(`${url}: a webhook endpoint must use https:// (messages are medical data)`);
  if (u.username || u.password) throw new WebhookError(`${url}: no credentials in the URL; verify the Caducee-Signature header instead`);
  if (u.hash) throw new WebhookError(`${url}: no #fragment in a webhook URL`);
  const mailbox = await o.core.requireMailbox(address);
  if (!(await o.core.rightsOn(user, mailbox)).has('read')) throw new WebhookError(`${user.login} may not read ${mailbox.address}: a webhook needs the read right`);
  const secret = randomBytes(32).toString('base64url');
  const sealed = o.secrets.seal(secret, webhookSecretContext({ userId: user.id, mailboxId: mailbox.id, url: u.href }));
  const webhook = await o.store.createWebhook({ userId: user.id, mailboxId: mailbox.id, url: u.href, secret: sealed, since });
  return { webhook, secret };
}

/** How long after a delivery its webhook pass starts at the latest (deliveries meanwhile share it). */
const DELIVERED_KICK_MS = 50;

export class WebhookDispatcher {
  private timer?: NodeJS.Timeout;
  private stopped = true;
  private running?: Promise<void>;
  private again = false;
  private readonly log: Logger;
  private readonly now: () => number;
  /**
   * A delivery asks for a pass within DELIVERED_KICK_MS, not at once: under a steady intake that
   * is one due-webhooks query per interval instead of one per message (a pass sends every event
   * after each cursor anyway); an event waits at most that long more.
   */
  private kickSoon?: NodeJS.Timeout;
  private readonly onDelivered = () => {
    this.kickSoon ??= setTimeout(() => {
      this.kickSoon = undefined;
      this.kick();
    }, DELIVERED_KICK_MS);
  };

  constructor(private readonly o: WebhookDispatcherOptions) {
    this.log = o.logger.child({ component: 'webhooks' });
    this.now = o.now ?? Date.now;
  }

  start(): void {
    this.stopped = false;
    this.o.core.events.on('delivered', this.onDelivered);
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.o.core.events.off('delivered', this.onDelivered);
    if (this.timer) clearTimeout(this.timer);
    if (this.kickSoon) clearTimeout(this.kickSoon);
    await this.running;
  }

  /** Runs a pass now (or right after the current one). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.running = this.pass()
      .catch((err) => this.log.error({ err }, 'webhook pass failed'))
      .finally(() => {
        this.running = undefined;
        if (this.stopped) return;
        if (this.again) {
          this.again = false;
          return this.kick();
        }
        this.timer = setTimeout(() => this.kick(), (this.o.pollSeconds ?? 5) * 1000);
        this.timer.unref();
      });
  }

  /** One pass: every due webhook sends its pending events in order until one fails or none is left. */
  async pass(): Promise<void> {
    const due = await this.o.store.dueWebhooks(this.now(), 100);
    for (let i = 0; i < due.length; i += MAX_PARALLEL) await Promise.all(due.slice(i, i + MAX_PARALLEL).map((w) => this.drain(w)));
  }

  private async drain(w: Webhook & { secret: string }): Promise<void> {
    const mailbox = await this.o.store.getMailbox(w.mailboxId);
    const user = await this.o.core.store.getUser(w.userId);
    // The access decision is Core's, at every pass: a withdrawn grant stops the feed.
    if (!mailbox || !user || mailbox.state === 'deleted' || !(await this.o.core.rightsOn(user, mailbox)).has('read')) {
      await this.o.store.revokeWebhook(w.id);
      this.log.warn({ webhook: w.id }, 'webhook revoked: its user may no longer read the mailbox');
      return;
    }
    const secret = this.o.secrets.open(w.secret, webhookSecretContext(w));
    let cursor = w.cursor;
    let failingSince = w.failingSince;
    for (let sent = 0; !this.stopped && sent < 1000; sent++) {
      const [next] = await this.o.store.inboundAfter(w.mailboxId, cursor, 1);
      if (!next) return;
      const error = await this.post(w, secret, mailbox, next);
      if (!error) {
        if (!(await this.o.store.webhookAcknowledged(w.id, cursor, next.id))) return; // changed meanwhile
        cursor = next.id;
        failingSince = null;
        continue;
      }
      const t = this.now();
      const since = failingSince ?? t;
      if (t - since >= (this.o.retryHours ?? 24) * 3_600_000) {
        await this.o.store.webhookAbandoned(w.id, cursor, next.id, error);
        this.log.warn({ webhook: w.id, event: inboundEventId(next.id), error }, 'webhook event abandoned after the retry period; still available by pull');
        cursor = next.id;
        failingSince = null;
        continue;
      }
      await this.o.store.webhookFailed(w.id, { error, nextAttemptAt: t + webhookBackoffMs(w.attempts + 1), failingSince: since });
      this.log.info({ webhook: w.id, event: inboundEventId(next.id), error, attempts: w.attempts + 1 }, 'webhook delivery failed; will retry');
      return;
    }
  }

  /** POSTs one event; resolves to null on a 2xx answer, else to the reason (for the log and the webhook's row). */
  private async post(w: Webhook, secret: string, mailbox: Mailbox, m: InboundMessage): Promise<string | null> {
    let body: string;
    try {
      body = JSON.stringify({ id: inboundEventId(m.id), type: 'email.received', mailbox: mailbox.address, createdAt: new Date(this.now()).toISOString(), data: await this.o.describe(mailbox, m) });
    } catch (e: any) {
      return `cannot describe the message: ${e.message}`;
    }
    const t = Math.floor(this.now() / 1000);
    const url = new URL(w.url);
    return new Promise<string | null>((resolve) => {
      const req = https.request(
        url,
        {
          method: 'POST',
          ...(this.o.ca ? { ca: [...rootCertificates, this.o.ca] } : {}),
          timeout: this.o.timeoutMs ?? 10_000,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            'user-agent': 'Caducee-Webhook/1',
            [EVENT_ID_HEADER]: inboundEventId(m.id),
            [SIGNATURE_HEADER]: signWebhookBody(secret, body, t),
          },
        },
        (res) => {
          res.resume(); // the answer's body is not used
          const status = res.statusCode ?? 0;
          resolve(status >= 200 && status < 300 ? null : `HTTP ${status}`);
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (e: any) => resolve(e.code ?? e.message));
      req.end(body);
    });
  }
}
