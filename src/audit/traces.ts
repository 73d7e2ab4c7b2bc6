// Functional traces per mailbox (issue 10, docs/traces.md): Core records them as things happen;
// this file keeps them for the configured period and exports them (`caducee audit mailbox`).
// Exports carry the stable columns below and nothing else: never content.
import type { Logger } from 'pino';
import type { MailboxTrace, TraceStore } from '../store/types.js';

/** The export's columns, in order (CSV header; the keys of each JSON line). */
export const TRACE_COLUMNS = ['at', 'mailbox', 'action', 'actor', 'delegate', 'protocol', 'remote', 'detail'] as const;

export interface TraceLine {
  at: string;
  mailbox: string;
  action: string;
  actor: string;
  delegate: boolean;
  protocol: string;
  remote: string | null;
  detail: Record<string, unknown>;
}

export function traceLine(address: string, t: MailboxTrace): TraceLine {
  return { at: t.at, mailbox: address, action: t.action, actor: t.actorLogin, delegate: t.delegate, protocol: t.protocol, remote: t.remote, detail: t.detail };
}

/** RFC 4180 §2: a field with a comma, a quote or a line break is quoted, quotes doubled. */
function csvField(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/** One CSV record (RFC 4180, CRLF-terminated); `detail` as compact JSON. */
export function traceCsv(l: TraceLine): string {
  const cells = [l.at, l.mailbox, l.action, l.actor, l.delegate ? 'true' : 'false', l.protocol, l.remote ?? '', JSON.stringify(l.detail)];
  return cells.map(csvField).join(',') + '\r\n';
}

export const TRACE_CSV_HEADER = TRACE_COLUMNS.join(',') + '\r\n';

/** The first instant kept: `now` minus `months` calendar months (UTC). */
export function retentionCutoff(now: Date, months: number): Date {
  const d = new Date(now.getTime());
  const day = d.getUTCDate();
  d.setUTCDate(1);
  d.setUTCMonth(d.getUTCMonth() - months);
  // The same day of that month, or its last day (31 March minus one month: 28/29 February).
  const last = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
  d.setUTCDate(Math.min(day, last));
  return d;
}

/** Removes the traces older than the retention period; returns how many. */
export async function purgeTraces(store: Pick<TraceStore, 'purgeTraces'>, months: number, now: Date = new Date()): Promise<number> {
  return store.purgeTraces(retentionCutoff(now, months).toISOString());
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** A running operator's daily purge (now, then every 24 hours; never keeps the process alive). */
export function startTracePurge(store: Pick<TraceStore, 'purgeTraces'>, months: number, logger: Logger): () => void {
  const run = () =>
    purgeTraces(store, months).then(
      (n) => n && logger.info({ removed: n, retentionMonths: months }, 'old functional traces removed'),
      (e) => logger.error({ err: e?.message ?? String(e) }, 'functional trace purge failed'),
    );
  void run();
  const timer = setInterval(run, DAY_MS);
  timer.unref();
  return () => clearInterval(timer);
}
