// Prometheus metrics of one operator (issue 10; docs/indicators.md lists every series). One
// registry per operator, not prom-client's global one: a demo or a test runs two operators in one
// process. Counters move where things happen (smtp/, delivery/, auth/'s record path, policy/);
// gauges are read from the store and the listeners when Prometheus scrapes. Labels are bounded
// sets (flows, peer classes, enhanced status codes, method names): never an address or a login.
import { Counter, Gauge, Registry } from 'prom-client';
import type { UsageRow, UsageStore } from '../store/types.js';

/** What a golden rule calls when it sends a notice (absence reply, reading reminder, …). */
export interface RuleNotices {
  /** `rule`: a stable short name, e.g. "absence". */
  noticeSent(rule: string): void;
}

export interface MetricsOptions {
  store: Pick<UsageStore, 'queueStats' | 'countLiveHttpSessions'>;
  /** Open IMAP connections (both listeners), read on scrape. */
  imapSessions?: () => number;
  /** Issuers whose newest CRL is past its nextUpdate (trust/crl-refresh.ts), read on scrape. */
  staleCrlIssuers?: () => number;
  /** Whether a valid OCSP response for our certificate is held and stapled (trust/ocsp-stapling.ts), read on scrape. */
  ocspStapled?: () => boolean;
  now?: () => number;
}

export class Metrics implements RuleNotices {
  readonly registry = new Registry();
  /** Messages committed, by way (received into / sent by a mailbox of ours) and peer class. */
  readonly messages: Counter<'flow' | 'peer'>;
  /** Outbound delivery attempts by the queue worker, by result (sent, deferred, failed). */
  readonly outbound: Counter<'result'>;
  /** SMTP replies refusing a command: listener (mx, submission), stage (mail, rcpt, data), enhanced code. */
  readonly refusals: Counter<'listener' | 'stage' | 'code'>;
  /** Authentication attempts: protocol (imap, smtp, http), method (PLAIN, XOAUTH2, …), outcome. */
  readonly logins: Counter<'protocol' | 'method' | 'outcome'>;
  /** Notices sent by the golden rules (policy/). */
  readonly ruleNotices: Counter<'rule'>;
  /** Peer and client certificates refused by trust/, by reason (revoked, revocation-unknown, expired, …). */
  readonly certificateRefusals: Counter<'failure'>;
  /** CRL downloads by outcome (updated, unchanged, failed). */
  readonly crlRefreshes: Counter<'outcome'>;
  /** OCSP requests for our own certificate by outcome (updated, unchanged, failed). */
  readonly ocspRefreshes: Counter<'outcome'>;

  constructor(o: MetricsOptions) {
    const registers = [this.registry];
    const now = o.now ?? Date.now;
    this.messages = new Counter({ name: 'caducee_messages_total', help: 'Messages committed, by flow (received, sent) and peer (internal, operator, patient)', labelNames: ['flow', 'peer'], registers });
    this.outbound = new Counter({ name: 'caducee_outbound_attempts_total', help: 'Outbound delivery attempts by result (sent, deferred, failed)', labelNames: ['result'], registers });
    this.refusals = new Counter({
      name: 'caducee_smtp_refusals_total',
      help: 'SMTP commands refused, by listener, stage and enhanced status code (RFC 3463)',
      labelNames: ['listener', 'stage', 'code'],
      registers,
    });
    this.logins = new Counter({ name: 'caducee_logins_total', help: 'Authentication attempts by protocol, method and outcome', labelNames: ['protocol', 'method', 'outcome'], registers });
    this.ruleNotices = new Counter({ name: 'caducee_rule_notices_total', help: 'Notices sent by the golden rules, by rule', labelNames: ['rule'], registers });
    this.certificateRefusals = new Counter({
      name: 'caducee_certificate_refusals_total',
      help: 'Certificates refused by the trust decision, by failure (revoked, revocation-unknown: stale CRL, expired, untrusted, …)',
      labelNames: ['failure'],
      registers,
    });
    this.crlRefreshes = new Counter({ name: 'caducee_crl_refreshes_total', help: 'CRL downloads from distribution points, by outcome (updated, unchanged, failed)', labelNames: ['outcome'], registers });
    this.ocspRefreshes = new Counter({ name: 'caducee_ocsp_refreshes_total', help: 'OCSP requests for our own certificate (stapling), by outcome (updated, unchanged, failed)', labelNames: ['outcome'], registers });
    const ocspStapled = o.ocspStapled;
    new Gauge({
      name: 'caducee_ocsp_stapled',
      help: '1 when a valid OCSP response for our certificate is held and stapled, 0 otherwise',
      registers,
      collect() {
        this.set(ocspStapled?.() ? 1 : 0);
      },
    });
    const staleCrlIssuers = o.staleCrlIssuers;
    new Gauge({
      name: 'caducee_crl_stale_issuers',
      help: 'CAs whose newest CRL is past its nextUpdate (no newer one obtained)',
      registers,
      collect() {
        this.set(staleCrlIssuers?.() ?? 0);
      },
    });
    const store = o.store;
    new Gauge({
      name: 'caducee_queue_depth',
      help: 'Outbound queue items waiting for delivery',
      registers,
      async collect() {
        this.set((await store.queueStats()).depth);
      },
    });
    new Gauge({
      name: 'caducee_queue_oldest_age_seconds',
      help: 'Age of the oldest item waiting in the outbound queue (0 when empty)',
      registers,
      async collect() {
        const q = await store.queueStats();
        this.set(q.oldestQueuedAt === null ? 0 : Math.max(0, (now() - q.oldestQueuedAt) / 1000));
      },
    });
    const imapSessions = o.imapSessions;
    new Gauge({
      name: 'caducee_imap_sessions',
      help: 'Open IMAP connections',
      registers,
      collect() {
        this.set(imapSessions?.() ?? 0);
      },
    });
    new Gauge({
      name: 'caducee_web_sessions',
      help: 'Web sessions signed in (neither revoked nor expired)',
      registers,
      async collect() {
        this.set(await store.countLiveHttpSessions(now()));
      },
    });
  }

  noticeSent(rule: string): void {
    this.ruleNotices.inc({ rule });
  }

  /** Called on every authentication attempt recorded in the audit trail. */
  login(e: { protocol: string; method: string; success: boolean }): void {
    this.logins.inc({ protocol: e.protocol, method: e.method, outcome: e.success ? 'success' : 'failure' });
  }

  /** An SMTP refusal; `message` starts with the enhanced status code (smtp/common.ts smtpError). */
  refusal(listener: string, stage: string, message: string): void {
    const code = /^([245]\.\d{1,3}\.\d{1,3})\b/.exec(message)?.[1] ?? 'none';
    this.refusals.inc({ listener, stage, code });
  }

  /** Messages just committed (the usage rows of their delivery). */
  committed(rows: readonly UsageRow[]): void {
    for (const r of rows) this.messages.inc({ flow: r.flow, peer: r.peer });
  }

  /** The exposition text (Prometheus text format 0.0.4) and its content type. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
