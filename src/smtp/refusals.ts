// Counts every SMTP refusal for the metrics (audit/metrics.ts): the MAIL, RCPT and DATA hooks of
// an smtp-server options table are wrapped so that each error reply (4xx/5xx, RFC 5321 §4.2.1)
// is counted by listener, stage and enhanced status code (RFC 3463), whatever check refused.
import type { Metrics } from '../audit/metrics.js';

const STAGES = { onMailFrom: 'mail', onRcptTo: 'rcpt', onData: 'data' } as const;

/** Returns `options` with its MAIL/RCPT/DATA hooks counting refusals (unchanged without metrics). */
export function meterRefusals<T extends Record<string, any>>(options: T, metrics: Metrics | undefined, listener: string): T {
  if (!metrics) return options;
  const out: Record<string, any> = { ...options };
  for (const [hook, stage] of Object.entries(STAGES)) {
    const inner = options[hook];
    if (typeof inner !== 'function') continue;
    out[hook] = (arg: unknown, session: unknown, cb: (err?: (Error & { responseCode?: number }) | null, ...rest: unknown[]) => void) =>
      inner(arg, session, (err?: (Error & { responseCode?: number }) | null, ...rest: unknown[]) => {
        if (err && (err.responseCode ?? 0) >= 400) metrics.refusal(listener, stage, err.message);
        cb(err, ...rest);
      });
  }
  return out as T;
}
