// `caducee rules report|run|threshold|keep|delete`: golden rules 1 and 2 (docs/policy.md) from the
// command line. `--now` shows or applies what a given day would do (tests, administrators).
import { InvalidArgumentError, type Command } from 'commander';
import pino from 'pino';
import { loadConfig, type Config } from '../config/index.js';
import { Core } from '../core/index.js';
import { planPublication, publish } from '../directory/publish.js';
import { openPublicationStore } from '../directory/runtime.js';
import { openStore } from '../open-store.js';
import type { RulesEngine, RulesReportRow } from '../policy/rules-engine.js';
import { openMessageFiles } from '../store/open-message-files.js';
import type { Store } from '../store/types.js';

const configOption = ['-c, --config <file>', 'operator configuration file (YAML or JSON; or CADUCEE_CONFIG)'] as const;
const nowOption = ['--now <date-time>', 'act as if it were this ISO 8601 date-time (default: now)'] as const;

function parseNow(v: string | undefined): Date {
  if (v === undefined) return new Date();
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new InvalidArgumentError(`--now ${JSON.stringify(v)} is not an ISO 8601 date-time (e.g. 2026-03-12T10:00:00+01:00)`);
  return new Date(t);
}

/**
 * Withdraws one deleted mailbox from the national directory: the publication plan's delete of
 * that address only (FHIR PATCH, src/directory/publish.ts), sent to directory.publish.endpoint.
 */
function unpublisher(config: Config, store: Store) {
  return async (address: string) => {
    const endpoint = config.directory.publish.endpoint;
    if (!endpoint) return { published: false, detail: 'no national directory endpoint (directory.publish.endpoint): run caducee directory publish once it is set' };
    const pub = openPublicationStore(config);
    try {
      const plan = await planPublication(store, pub);
      const mine = plan.requests.filter((r) => r.operations.every((op) => op.address.toLowerCase() === address.toLowerCase() && op.type === 'delete'));
      if (!mine.length) return { published: false, detail: `${address} was not published in the national directory: nothing to withdraw` };
      const r = await publish({ requests: mine, skipped: [] }, pub, {
        endpoint,
        apiKey: config.directory.publish.apiKey,
        apiKeyHeader: config.directory.publish.apiKeyHeader,
        retryDelaysMs: config.directory.publish.retryDelaysSeconds.map((s) => s * 1000),
        timeoutMs: config.directory.publish.timeoutSeconds * 1000,
      });
      return r.failed.length
        ? { published: false, detail: `withdrawal from the national directory failed (${r.failed[0].error}); caducee directory publish sends it again` }
        : { published: true, detail: `withdrawn from the national directory (${r.sent} FHIR PATCH request(s))` };
    } finally {
      await pub.close();
    }
  };
}

async function withRules<T>(o: { config?: string }, fn: (r: RulesEngine) => Promise<T>): Promise<T> {
  const config = loadConfig(o.config);
  const store = await openStore(config);
  try {
    const core = new Core(store, config.operator.domains);
    const logger = pino({ level: config.log.level }, pino.destination(2));
    // Notices go through Core.deliver: local recipients straight to their INBOX; remote ones are
    // queued, and the running operator's outbound worker sends them.
    // The rules engine comes with the operator's services: loaded only by the commands that run it.
    const { rulesEngine } = await import('../main.js');
    return await fn(rulesEngine(config, core, await openMessageFiles(config, store), logger, unpublisher(config, store)));
  } finally {
    await store.close();
  }
}

function printReport(rows: RulesReportRow[]) {
  const late = rows.filter((r) => r.reading.overdue > 0);
  const idle = rows.filter((r) => r.unused.step !== 'none' || r.state === 'suspended' || r.unused.warnedAt);
  process.stdout.write(`Rule 1 — unread beyond the threshold: ${late.length} mailbox(es)\n`);
  for (const r of late)
    process.stdout.write(`  ${r.mailbox}: ${r.reading.overdue} message(s), oldest waiting ${r.reading.oldestBusinessHours} business hours (threshold ${r.reading.thresholdHours} h, level ${r.reading.level})\n`);
  process.stdout.write(`Rule 2 — unused mailboxes: ${idle.length}\n`);
  for (const r of idle)
    process.stdout.write(
      `  ${r.mailbox} (${r.state}): last use ${r.unused.lastUse}, ${r.unused.idleDays} day(s) ago${r.unused.warnedAt ? `, warned ${r.unused.warnedAt}` : ''}${r.unused.suspendedAt ? `, suspended ${r.unused.suspendedAt}` : ''}; next: ${r.unused.step}\n`,
    );
}

export function registerRulesCommands(program: Command, fail: (e: unknown) => never): void {
  const failing =
    <A extends unknown[]>(fn: (...a: A) => Promise<void>) =>
    (...a: A) =>
      fn(...a).catch(fail);
  const rules = program.command('rules').description('golden rules 1 and 2: reading guard, unused addresses (docs/policy.md)');
  rules
    .command('report')
    .description('mailboxes with unread mail beyond the threshold, and unused ones')
    .option(...configOption)
    .option(...nowOption)
    .option('--json', 'one JSON document')
    .action(
      failing(async (o) => {
        const now = parseNow(o.now);
        const rows = await withRules(o, (r) => r.report(now));
        if (o.json) process.stdout.write(JSON.stringify({ at: now.toISOString(), mailboxes: rows }) + '\n');
        else printReport(rows);
      }),
    );
  rules
    .command('run')
    .description('apply rules 1 and 2 once (notices, warnings, suspensions); idempotent per day')
    .option(...configOption)
    .option(...nowOption)
    .option('--json', 'one JSON document')
    .action(
      failing(async (o) => {
        const now = parseNow(o.now);
        const r = await withRules(o, (e) => e.run(now));
        if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
        else {
          for (const n of r.readingNotices) process.stdout.write(`reading notice for ${n.mailbox} (level ${n.level}) to ${n.to.join(', ')}\n`);
          for (const u of r.unused) process.stdout.write(`${u.mailbox}: ${u.action}\n`);
          for (const e of r.errors) process.stdout.write(`FAILED ${e.mailbox}: ${e.error}\n`);
          if (!r.readingNotices.length && !r.unused.length && !r.errors.length) process.stdout.write('nothing to do\n');
        }
        if (r.errors.length) process.exitCode = 1;
      }),
    );
  rules
    .command('threshold')
    .description("set a mailbox's reading threshold (business hours), or --default")
    .option(...configOption)
    .requiredOption('--mailbox <address>', 'the mailbox')
    .option('--hours <n>', 'business hours', (v) => {
      const n = Number(v);
      if (!Number.isFinite(n)) throw new InvalidArgumentError(`--hours ${v} is not a number`);
      return n;
    })
    .option('--default', 'back to policy.reading.thresholdHours')
    .action(
      failing(async (o) => {
        if ((o.hours === undefined) === !o.default) throw new InvalidArgumentError('give either --hours N or --default');
        const h = await withRules(o, (r) => r.setThreshold(o.mailbox, o.default ? null : o.hours));
        process.stdout.write(`${o.mailbox}: reading threshold ${h} business hours\n`);
      }),
    );
  rules
    .command('keep')
    .description('object to the removal of an unused mailbox (reactivates it if the rule suspended it)')
    .option(...configOption)
    .option(...nowOption)
    .requiredOption('--mailbox <address>', 'the mailbox')
    .action(
      failing(async (o) => {
        await withRules(o, (r) => r.object(o.mailbox, parseNow(o.now)));
        process.stdout.write(`${o.mailbox}: kept (objection recorded)\n`);
      }),
    );
  rules
    .command('delete')
    .description('delete a mailbox the unused rule suspended: final export, deletion, withdrawal from the national directory')
    .option(...configOption)
    .option(...nowOption)
    .requiredOption('--mailbox <address>', 'the mailbox')
    .option('--confirm', "the administrator's confirmation (required)")
    .option('--json', 'one JSON document')
    .action(
      failing(async (o) => {
        if (!o.confirm) throw new InvalidArgumentError(`deleting ${o.mailbox} erases its content: add --confirm`);
        const r = await withRules(o, (e) => e.deleteUnused(o.mailbox, parseNow(o.now)));
        if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
        else
          process.stdout.write(
            `${o.mailbox} deleted; ${r.messages} message(s) exported to ${r.export} (give it to the owner)\n${r.unpublished.detail}\n${r.substitute ? `senders are told to write to ${r.substitute}\n` : ''}`,
          );
        if (!r.unpublished.published && /failed/.test(r.unpublished.detail)) process.exitCode = 1;
      }),
    );
}
