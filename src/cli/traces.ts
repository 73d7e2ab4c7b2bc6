// `caducee audit mailbox --mailbox ADDR [--since DATE] [--until DATE] [--json]`: one mailbox's
// functional traces over a period (issue 10; columns in docs/traces.md), CSV by default or JSON
// lines. `caducee audit purge`: removes those older than audit.traceRetentionMonths now.
import { InvalidArgumentError, type Command } from 'commander';
import { purgeTraces, traceCsv, traceLine, TRACE_CSV_HEADER } from '../audit/traces.js';
import { loadConfig } from '../config/index.js';
import { Core } from '../core/index.js';
import { openStore } from '../open-store.js';

/** A day (YYYY-MM-DD, midnight UTC) or an ISO 8601 instant with its zone, as an ISO instant. */
function instant(option: string, v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(v) || Number.isNaN(Date.parse(v)))
    throw new InvalidArgumentError(`${option} ${JSON.stringify(v)}: give a date (2026-01-31, midnight UTC) or an ISO 8601 instant with its zone (2026-01-31T08:00:00+01:00)`);
  return new Date(Date.parse(v)).toISOString();
}

export function registerTraceCommands(audit: Command, fail: (e: unknown) => never): void {
  audit
    .command('mailbox')
    .description("one mailbox's functional traces: who did what, when, from where (content-free; docs/traces.md)")
    .requiredOption('--mailbox <address>', 'the mailbox (BAL) address')
    .option('--since <date>', 'from this date or instant (included)')
    .option('--until <date>', 'up to this date or instant (excluded)')
    .option('--json', 'JSON lines instead of CSV (RFC 4180, with a header line)')
    .option('-c, --config <file>', 'operator configuration file (YAML or JSON; or CADUCEE_CONFIG)')
    .action(async (o) => {
      try {
        const from = instant('--since', o.since);
        const to = instant('--until', o.until);
        if (from && to && to <= from) throw new InvalidArgumentError(`--until (${to}) must come after --since (${from})`);
        const config = loadConfig(o.config);
        const store = await openStore(config);
        try {
          const m = await new Core(store, config.operator.domains).requireMailbox(o.mailbox);
          const lines = (await store.listTraces(m.id, { from, to })).map((t) => traceLine(m.address, t));
          if (o.json) for (const l of lines) process.stdout.write(JSON.stringify(l) + '\n');
          else process.stdout.write(TRACE_CSV_HEADER + lines.map(traceCsv).join(''));
        } finally {
          await store.close();
        }
      } catch (e) {
        fail(e);
      }
    });
  audit
    .command('purge')
    .description('remove the functional traces older than audit.traceRetentionMonths (a running operator does it daily)')
    .option('-c, --config <file>', 'operator configuration file (YAML or JSON; or CADUCEE_CONFIG)')
    .action(async (o) => {
      try {
        const config = loadConfig(o.config);
        const store = await openStore(config);
        try {
          const n = await purgeTraces(store, config.audit.traceRetentionMonths);
          process.stdout.write(`${n} trace(s) older than ${config.audit.traceRetentionMonths} month(s) removed\n`);
        } finally {
          await store.close();
        }
      } catch (e) {
        fail(e);
      }
    });
}
