// `caducee directory …`: import the national extraction, generate a synthetic one, search,
// publish our mailboxes, export them. Every command but `generate` acts on an operator through
// its configuration (--config FILE, as `caducee start`); a running operator serves a finished
// import without a restart.
import { Command, InvalidArgumentError } from 'commander';
import { createWriteStream } from 'node:fs';
import { ConfigError, loadConfig, type Config } from '../config/index.js';
import { MAILBOX_TYPES, type MailboxType } from '../model/index.js';
import { ExtractionError } from '../directory/extraction.js';
import { COLUMNS } from '../directory-model/entry.js';
import { writeGeneratedExtraction } from '../directory/generate.js';
import { importExtraction, progressBar, type ImportSummary } from '../directory/import.js';
import { displayName } from '../directory-model/entry.js';
import { planPublication, publish, requestUrl } from '../directory/publish.js';
import { openDirectory, openPublicationStore, openSnapshotWriter } from '../directory/runtime.js';
import { DirectoryError, entrySummary, localEntry, PUBLIC, type SearchParams, type Viewer } from '../directory/service.js';
// The operator's store (open-store.ts) is loaded only by the commands that read our mailboxes, so
// that `caducee directory import` starts without it (start time and memory).
const operator = () => import('../open-store.js');
import { DirectoryStoreError } from '../store/directory/snapshot-format.js';

const configOption = ['-c, --config <file>', 'operator configuration file (YAML or JSON; or CADUCEE_CONFIG)'] as const;

function fail(e: any): never {
  const known = [ConfigError, DirectoryError, ExtractionError, DirectoryStoreError, InvalidArgumentError];
  if (known.some((k) => e instanceof k) || e?.name === 'StartupError') process.stderr.write(`caducee: ${e.message}\n`);
  else process.stderr.write(`caducee: unexpected error: ${e?.stack ?? e}\n`);
  process.exit(2);
}

/** A command action whose failure is reported by fail() (message on stderr, exit code 2). */
const failing =
  <A extends unknown[]>(fn: (...args: A) => Promise<void>) =>
  async (...args: A): Promise<void> => {
    try {
      await fn(...args);
    } catch (e) {
      fail(e);
    }
  };

const positiveInt = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${what} must be a whole number`);
  return n;
};

const nf = (n: number) => n.toLocaleString('en-US');

export function printImportSummary(s: ImportSummary, out: NodeJS.WritableStream = process.stdout) {
  const lines = [
    `Imported ${s.source}${s.sourceEntry ? ` (${s.sourceEntry})` : ''} in ${(s.durationMs / 1000).toFixed(1)} s`,
    `  lines read : ${nf(s.linesRead)}`,
    `  imported   : ${nf(s.imported)}`,
    `  rejected   : ${nf(s.rejected)}`,
  ];
  for (const r of s.rejections.slice(0, 10)) lines.push(`    line ${r.line}: ${r.reason}`);
  if (s.rejected > 10) lines.push(`    … ${nf(s.rejected - 10)} more (caducee directory status --json lists the first ${s.rejections.length})`);
  lines.push(`  since the previous import: ${nf(s.added)} added, ${nf(s.removed)} removed, ${nf(s.changed)} changed`);
  if (s.missingColumns.length) lines.push(`  columns missing from the header (left empty): ${s.missingColumns.join(', ')}`);
  if (s.unknownColumns.length) lines.push(`  unknown columns (ignored): ${s.unknownColumns.join(', ')}`);
  out.write(lines.join('\n') + '\n');
}

function searchParams(query: string | undefined, o: any): SearchParams {
  const types = o.type
    ?.split(',')
    .map((t: string) => t.trim().toUpperCase())
    .filter(Boolean);
  for (const t of types ?? []) if (!MAILBOX_TYPES.includes(t)) throw new InvalidArgumentError(`--type ${t}: use ${MAILBOX_TYPES.join(', ')}`);
  return {
    q: query,
    profession: o.profession,
    speciality: o.speciality,
    city: o.city,
    postalCode: o.postalCode,
    structure: o.structure,
    types: types as MailboxType[] | undefined,
    address: o.address,
    addressMatch: o.addressExact ? 'exact' : 'contains',
  };
}

async function viewerFor(config: Config, o: { admin?: boolean; as?: string }, store: Awaited<ReturnType<Awaited<ReturnType<typeof operator>>["openStore"]>>): Promise<Viewer> {
  if (o.admin) return { admin: true };
  if (o.as) {
    const u = await store.findUserByLogin(o.as);
    if (!u) throw new DirectoryError(`no user ${o.as} (caducee user list --config ${config ? '…' : ''})`);
    return { userId: u.id };
  }
  return PUBLIC;
}

export function registerDirectoryCommands(program: Command) {
  const dir = program.command('directory').description('national directory (Annuaire Santé): import, search, FHIR, publication');

  dir
    .command('import')
    .description('import the national extraction (Extraction_Correspondance_MSSante_*.txt or its ZIP); replaces the previous one atomically')
    .argument('<file>', 'extraction .txt or .zip')
    .option(...configOption)
    .option('--json', 'print the summary as one JSON line')
    .option('--no-threads', 'do everything in one thread (slower; for constrained hosts)')
    .action(
      failing(async (file: string, o) => {
        const config = loadConfig(o.config);
        const bar = progressBar();
        const writer = await openSnapshotWriter(config, { threaded: o.threads, onFallback: (reason) => process.stderr.write(`caducee: ${reason}\n`) });
        let summary: ImportSummary;
        try {
          summary = await importExtraction({ file, writer, onProgress: (p) => bar.update(p) });
        } finally {
          bar.done();
        }
        if (o.json) process.stdout.write(JSON.stringify(summary) + '\n');
        else printImportSummary(summary);
      }),
    );

  dir
    .command('generate')
    .description('write a realistic synthetic extraction (tests, benchmarks)')
    .requiredOption('--lines <n>', 'number of mailbox lines', positiveInt('--lines'))
    .requiredOption('--out <file>', 'output .txt (or .zip holding the .txt)')
    .option('--seed <n>', 'random seed (same seed, same file)', positiveInt('--seed'), 1)
    .option('--bom', 'start with a UTF-8 byte order mark')
    .option('--crlf', 'CRLF line ends')
    .option('--structure-suffix', 'header variant: " structure BAL" after the address columns')
    .action(
      failing(async (o) => {
        const t = Date.now();
        const r = await writeGeneratedExtraction(o.out, { lines: o.lines, seed: o.seed, bom: !!o.bom, crlf: !!o.crlf, structureSuffix: !!o.structureSuffix });
        process.stdout.write(`wrote ${nf(r.lines)} lines (${nf(r.bytes)} bytes of text) to ${r.file} in ${((Date.now() - t) / 1000).toFixed(1)} s\n`);
      }),
    );

  dir
    .command('search')
    .description('search the directory (national extraction + our mailboxes), ranked')
    .argument('[query]', 'free text: names, structure, profession, city, postal code')
    .option(...configOption)
    .option('--json', 'one JSON line per result')
    .option('--limit <n>', 'results (max 100)', positiveInt('--limit'), 20)
    .option('--offset <n>', 'skip the first results', positiveInt('--offset'), 0)
    .option('--type <types>', 'mailbox types, comma-separated: PER,ORG,APP,CAB')
    .option('--profession <code|text>', 'profession code (e.g. 10) or label words')
    .option('--speciality <code|text>', 'savoir-faire code (e.g. SM26) or label words')
    .option('--city <city>', 'city (starts with)')
    .option('--postal-code <code>', 'postal code (starts with)')
    .option('--structure <id|text>', 'structure FINESS / SIRET / national id, or name words')
    .option('--address <text>', 'mailbox address contains this')
    .option('--address-exact', 'with --address: the exact address')
    .option('--admin', 'as an administrator: liste-rouge mailboxes included')
    .option('--as <login>', 'as this user: their own liste-rouge mailboxes included')
    .action(
      failing(async (query: string | undefined, o) => {
        const config = loadConfig(o.config);
        const store = await (await operator()).openStore(config);
        const rt = openDirectory(config, store);
        try {
          const params = searchParams(query, o);
          if (!Object.values(params).some((v) => v !== undefined && v !== 'contains')) throw new DirectoryError('give a query or a filter (--city, --profession, …)');
          const viewer = await viewerFor(config, o, store);
          const r = await rt.service.search(params, { limit: Math.min(o.limit, 100), offset: o.offset }, viewer);
          if (!(await rt.service.info())) process.stderr.write('caducee: no national extraction imported yet (caducee directory import FILE); our own mailboxes only\n');
          if (o.json) for (const e of r.entries) process.stdout.write(JSON.stringify(entrySummary(e)) + '\n');
          else {
            if (!r.entries.length) process.stdout.write('(no match)\n');
            for (const e of r.entries) {
              const s = entrySummary(e);
              const detail = [s.profession?.label, s.speciality?.label, s.structure?.name, s.service, [s.postalCode, s.city].filter(Boolean).join(' ')].filter(Boolean).join(' — ');
              process.stdout.write(`${e.address.padEnd(44)} ${e.type}  ${displayName(e)}${detail ? ' — ' + detail : ''}${e.listeRouge ? '  [liste rouge]' : ''}${e.source === 'local' ? '  [ours]' : ''}\n`);
            }
            if (r.more) process.stdout.write(`… more: --offset ${o.offset + r.entries.length}\n`);
          }
        } finally {
          await rt.close();
          await store.close();
        }
      }),
    );

  dir
    .command('status')
    .description('the snapshot in force: when, from which file, counts, first rejections')
    .option(...configOption)
    .option('--json')
    .action(
      failing(async (o) => {
        const config = loadConfig(o.config);
        const rt = openDirectory(config);
        try {
          const info = await rt.service.info();
          if (o.json) process.stdout.write(JSON.stringify(info ?? null) + '\n');
          else if (!info) process.stdout.write('no national extraction imported yet: caducee directory import FILE\n');
          else printImportSummary({ ...info, missingColumns: [], unknownColumns: [] });
        } finally {
          await rt.close();
        }
      }),
    );

  dir
    .command('publish')
    .description('publish changes of our mailboxes to the national directory (FHIR PATCH)')
    .option(...configOption)
    .option('--dry-run', 'print the PATCH requests without sending them')
    .option('--json', 'one JSON line per request (dry run) or a JSON result')
    .action(
      failing(async (o) => {
        const config = loadConfig(o.config);
        const store = await (await operator()).openStore(config);
        const pub = openPublicationStore(config);
        try {
          const plan = await planPublication(store, pub);
          const endpoint = config.directory.publish.endpoint;
          for (const s of plan.skipped) process.stderr.write(`caducee: not published: ${s.address}: ${s.reason}\n`);
          if (o.dryRun) {
            const base = endpoint ?? '[directory.publish.endpoint]';
            if (!plan.requests.length) process.stdout.write(o.json ? '' : 'nothing to publish: the national directory is up to date\n');
            for (const r of plan.requests) {
              const url = requestUrl(base, r);
              if (o.json) process.stdout.write(JSON.stringify({ method: 'PATCH', url, operations: r.operations.map((x) => `${x.type} ${x.address}`), body: r.body }) + '\n');
              else process.stdout.write(`PATCH ${url}\nContent-Type: application/fhir+json\n\n${JSON.stringify(r.body, null, 2)}\n\n`);
            }
            return;
          }
          if (!endpoint) throw new DirectoryError('no national directory endpoint: set directory.publish.endpoint in the configuration (or use --dry-run)');
          const logger = (await import('pino')).default({ level: config.log.level }, (await import('pino')).default.destination(2));
          const result = await publish(plan, pub, {
            endpoint,
            apiKey: config.directory.publish.apiKey,
            apiKeyHeader: config.directory.publish.apiKeyHeader,
            retryDelaysMs: config.directory.publish.retryDelaysSeconds.map((s) => s * 1000),
            timeoutMs: config.directory.publish.timeoutSeconds * 1000,
            logger,
          });
          if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
          else {
            process.stdout.write(`${result.sent} request(s) sent; ${result.published.length} mailbox change(s) published\n`);
            for (const f of result.failed) process.stdout.write(`  FAILED ${f.resource}: ${f.error} (after ${f.attempts} attempt(s)); it will be sent again next time\n`);
          }
          if (result.failed.length) process.exitCode = 1;
        } finally {
          await pub.close();
          await store.close();
        }
      }),
    );

  dir
    .command('export')
    .description('export our public mailboxes in the extraction format (liste rouge never included)')
    .option(...configOption)
    .requiredOption('--out <file>', 'output .txt')
    .action(
      failing(async (o) => {
        const config = loadConfig(o.config);
        const store = await (await operator()).openStore(config);
        try {
          const [mailboxes, practitioners, structures] = await Promise.all([store.listMailboxes(), store.listPractitioners(), store.listStructures()]);
          const pById = new Map(practitioners.map((p) => [p.id, p]));
          const sById = new Map(structures.map((s) => [s.id, s]));
          const out = createWriteStream(o.out);
          out.write(COLUMNS.map(([, h]) => h).join('|') + '\n');
          let n = 0;
          for (const m of mailboxes) {
            if (m.state === 'deleted' || m.listeRouge) continue; // public export: liste rouge never
            const e = localEntry(m, m.practitionerId ? pById.get(m.practitionerId) : undefined, m.structureId ? sById.get(m.structureId) : undefined);
            if (!e) continue;
            out.write(COLUMNS.map(([f]) => String(e[f] ?? '').replace(/[|\r\n]/g, ' ')).join('|') + '\n');
            n++;
          }
          await new Promise<void>((res, rej) => out.end((err?: Error | null) => (err ? rej(err) : res())));
          process.stdout.write(`exported ${n} mailbox(es) to ${o.out}\n`);
        } finally {
          await store.close();
        }
      }),
    );
}
