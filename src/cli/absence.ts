// `caducee absence set|show|clear --mailbox ADDR`: golden rule 3, the absence message of a
// mailbox, set by the operator's administrator (the owner or a manage delegate set it on the web).
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { InvalidArgumentError, type Command } from 'commander';
import { loadConfig } from '../config/index.js';
import { CoreError, Core } from '../core/index.js';
import { openDirectory } from '../directory/runtime.js';
import { openStore } from '../open-store.js';
import { AbsenceSettingsService, type AbsenceActor, type AbsenceView } from '../policy/absence-service.js';

const configOption = ['-c, --config <file>', 'operator configuration file (YAML or JSON; or CADUCEE_CONFIG)'] as const;

function administrator(): AbsenceActor {
  let name: string;
  try {
    name = os.userInfo().username;
  } catch {
    name = process.env.USER ?? process.env.LOGNAME ?? 'unknown';
  }
  return { administrator: name };
}

async function withAbsences<T>(o: { config?: string }, fn: (s: AbsenceSettingsService) => Promise<T>): Promise<T> {
  const config = loadConfig(o.config);
  const store = await openStore(config);
  // A substitute at another operator is checked against the national directory (the last import).
  const directory = openDirectory(config, store);
  try {
    const core = new Core(store, config.operator.domains);
    return await fn(new AbsenceSettingsService({ core, directoryKnows: async (a) => !!(await directory.service.byAddress(a)) }));
  } finally {
    await directory.close();
    await store.close();
  }
}

function textOption(inline: string | undefined, file: string | undefined, what: string): string | undefined {
  if (inline !== undefined && file !== undefined) throw new InvalidArgumentError(`give ${what} inline or from a file, not both`);
  if (file === undefined) return inline;
  try {
    return readFileSync(file, 'utf8');
  } catch (e: any) {
    throw new CoreError(`cannot read ${what} from ${file}: ${e.code ?? e.message}`);
  }
}

function show(v: AbsenceView | undefined, address: string, json: boolean) {
  if (json) return void process.stdout.write(JSON.stringify(v ?? null) + '\n');
  if (!v) return void process.stdout.write(`${address}: no absence message\n`);
  const lines = [
    `${v.mailbox}: absence message ${v.active ? 'ACTIVE (replies go out)' : 'set, not active now'}`,
    `  from        : ${v.startsAt ?? '(now)'}`,
    `  until       : ${v.endsAt ?? '(until cleared)'}`,
    `  subject     : ${v.subject ?? 'Absence'} : <original subject>`,
    `  substitute  : ${v.substitute ?? '(none)'}`,
    `  text        : ${v.body ? JSON.stringify(v.body) : '(default French text)'}`,
    `  text outside the structure: ${v.externalBody ? JSON.stringify(v.externalBody) : '(same text)'}`,
    `  set by ${v.updatedBy} at ${v.updatedAt}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

export function registerAbsenceCommands(program: Command, fail: (e: unknown) => never): void {
  const absence = program.command('absence').description('absence message of a mailbox (golden rule 3): automatic replies during leave');
  absence
    .command('set')
    .description('set (replace) the absence message; replies follow RFC 3834 / RFC 5230: one per sender per period, never to automatic mail')
    .requiredOption('--mailbox <address>')
    .option('--start <date-time>', 'ISO 8601, e.g. 2026-12-24T18:00:00+01:00 (default: now)')
    .option('--end <date-time>', 'ISO 8601 (default: until cleared)')
    .option('--subject <prefix>', 'subject prefix of the replies (default "Absence"): "<prefix> : <original subject>"')
    .option('--text <text>', 'the reply text (default: a French text with the end date)')
    .option('--text-file <file>', 'the reply text, from a UTF-8 file')
    .option('--external-text <text>', 'another text for senders outside the mailbox’s structure')
    .option('--external-text-file <file>', 'the same, from a UTF-8 file')
    .option('--substitute <address>', '"Pendant mon absence, écrivez à …": an MSSanté address (ours, or listed in the directory)')
    .option('--json')
    .option(...configOption)
    .action((o) =>
      withAbsences(o, async (s) => {
        const v = await s.set(administrator(), o.mailbox, {
          startsAt: o.start,
          endsAt: o.end,
          subject: o.subject,
          body: textOption(o.text, o.textFile, 'the text'),
          externalBody: textOption(o.externalText, o.externalTextFile, 'the external text'),
          substitute: o.substitute,
        });
        show(v, o.mailbox, !!o.json);
      }).catch(fail),
    );
  absence
    .command('show')
    .requiredOption('--mailbox <address>')
    .option('--json')
    .option(...configOption)
    .action((o) => withAbsences(o, async (s) => show(await s.get(administrator(), o.mailbox), o.mailbox, !!o.json)).catch(fail));
  absence
    .command('clear')
    .description('remove the absence message: no more replies')
    .requiredOption('--mailbox <address>')
    .option(...configOption)
    .action((o) =>
      withAbsences(o, async (s) => {
        const had = await s.clear(administrator(), o.mailbox);
        process.stdout.write(had ? `absence message of ${o.mailbox} removed\n` : `${o.mailbox} had no absence message\n`);
      }).catch(fail),
    );
}
