// The `caducee` command line.
import { AuthError, Authenticator, hashNewPassword, type AdminContext } from '../auth/index.js';
import { Command, InvalidArgumentError } from 'commander';
import cluster from 'node:cluster';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { ConfigError, loadConfig } from '../config/index.js';
import { Core, CoreError, GRANT_RIGHTS, MAILBOX_TYPES, type GrantRight, type MailboxType, type StructureIdType, type TraceOrigin } from '../core/index.js';
import type { RunningDemo } from '../demo/space.js';
// `start` and `demo` load the operator's services (main.ts, demo/, workers.ts) when they run:
// the administration commands below only open the store.
import { openStore, StartupError } from '../open-store.js';
import { StoreConflictError } from '../store/sqlite/index.js';
import { KeyRing, KeyRingError, writeKeyFile } from '../store/keyring.js';

function newProgram(): Command {
  return new Command().name('caducee').description('Caducée — an MSSanté operator').showHelpAfterError();
}

const program = newProgram();

/** Known errors print one clear line and exit 2; anything else is a bug and shows its stack. */
function fail(e: any): never {
  if (e instanceof ConfigError || e instanceof CoreError || e instanceof AuthError || e instanceof StartupError || e instanceof StoreConflictError || e instanceof InvalidArgumentError || e instanceof KeyRingError) {
    process.stderr.write(`caducee: ${e.message}\n`);
  } else {
    process.stderr.write(`caducee: unexpected error: ${e?.stack ?? e}\n`);
  }
  process.exit(2);
}

async function withCore<T>(opts: { config?: string }, fn: (core: Core) => Promise<T>): Promise<T> {
  const config = loadConfig(opts.config);
  const store = await openStore(config);
  try {
    return await fn(new Core(store, config.operator.domains));
  } finally {
    await store.close();
  }
}

/** Credential management at the command line is audited as done by the system account running it. */
function cliContext(): AdminContext {
  let actor: string;
  try {
    actor = os.userInfo().username;
  } catch {
    actor = process.env.USER ?? process.env.LOGNAME ?? 'unknown';
  }
  return { protocol: 'cli', actor, remote: null };
}

/** A change made at the command line, for the mailbox's functional trace: the administrator's account. */
function cliOrigin(): TraceOrigin {
  return { protocol: 'cli', actor: cliContext().actor };
}

function print(rows: object[], json: boolean) {
  if (json) for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
  else if (rows.length) console.table(rows);
  else process.stdout.write('(none)\n');
}

const configOption = ['-c, --config <file>', 'operator configuration file (YAML or JSON; or CADUCEE_CONFIG)'] as const;

function parseWorkers(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new InvalidArgumentError(`--workers expects a whole number of processes from 1 to 256, got ${v}`);
  return n;
}

program
  .command('start')
  .description('start an operator (MX, submission, outbound queue) from its configuration')
  .option(...configOption)
  .option('--workers <n>', 'processes serving the operator on this machine (default: one per available CPU; 1: a single process)', parseWorkers)
  .action(async (opts) => {
    try {
      const config = loadConfig(opts.config);
      const [{ startOperator }, { runPrimary, runWorker }, { ensureWebmailBuilt }] = await Promise.all([import('../main.js'), import('../workers.js'), import('./webmail-build.js')]);
      // A worker forked by the primary below (the same command line): it runs the operator.
      if (cluster.isWorker) return void (await runWorker(config));
      if (config.http.webmailDir === undefined) ensureWebmailBuilt();
      const workers: number = opts.workers ?? os.availableParallelism();
      if (workers > 1) {
        const logger = pino({ level: config.log.level, base: { operator: config.operator.hostname, pid: process.pid } });
        process.exit(await runPrimary({ workers, logger }));
      }
      const op = await startOperator(config);
      let stopping: Promise<void> | undefined;
      const stop = () =>
        (stopping ??= op.stop().then(() => process.exit(0)));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      process.on('SIGHUP', () => op.reloadAnchors());
      // Started with an IPC channel by a parent (`caducee demo --nodes`): its end — the parent
      // gone, even killed — stops this process too (no node left running on its own).
      if (process.send) process.once('disconnect', stop);
    } catch (e) {
      fail(e);
    }
  });

function parseNodes(v: string): number {
  const n = Number(v);
  // Fixed ports: node i listens on the documented ports + i - 1 (3525, 3526, …); nine keep them apart.
  if (!Number.isInteger(n) || n < 1 || n > 9) throw new InvalidArgumentError(`--nodes expects a whole number of nodes from 1 to 9, got ${v}`);
  return n;
}

function parsePeer(v: string, prev: { domain: string; host: string; port: number }[] = []) {
  const m = /^([A-Za-z0-9.-]+)=(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(v);
  if (!m) throw new InvalidArgumentError(`--peer expects DOMAIN=HOST:PORT, got ${v}`);
  return [...prev, { domain: m[1].toLowerCase(), host: m[2].replace(/^\[|\]$/g, ''), port: Number(m[3]) }];
}

program
  .command('demo')
  .description('start a local MSSanté trust space: test PKI, two operators and a Mon espace santé stand-in, trust list, demo mailboxes')
  .option('--dir <dir>', 'where state lives (default: a fresh temporary directory)')
  .option('--json', 'print one JSON line for scripts once every listener is up')
  .option('--ephemeral-ports', 'let the system choose free ports instead of the documented ones')
  .option('--peer <domain=host:port>', 'join an external operator (repeatable)', parsePeer, [])
  .option('--patient-domain <domain>', 'domain of the Mon espace santé stand-in (patients)', 'patient.mssante.test')
  .option('--no-patients', 'no Mon espace santé stand-in')
  .option('--postgres <url>', 'keep every operator\'s store in this PostgreSQL database (postgres://user@host:port/database), a schema per operator; operator B then runs as node processes')
  .option('--nodes <n>', 'with --postgres: operator B runs as this many nodes (processes on one store), the others routing to each', parseNodes)
  .option('--encrypt', 'encrypt message files at rest: a keyring in DIR/keyring.json (created once) as every operator\'s store.encryption.keyFile (docs/encryption.md)')
  .action(async (opts) => {
    let demo: RunningDemo | undefined;
    try {
      const dir = path.resolve(opts.dir ?? mkdtempSync(path.join(os.tmpdir(), 'caducee-demo-')));
      if (opts.nodes !== undefined && !opts.postgres) throw new InvalidArgumentError('--nodes needs --postgres: the nodes of an operator share a PostgreSQL store');
      const [{ prepareDemo, startDemo }, { ensureWebmailBuilt }, { prettyDestination }] = await Promise.all([import('../demo/space.js'), import('./webmail-build.js'), import('./pretty-log.js')]);
      const layout = await prepareDemo(dir, {
        peers: opts.peer,
        ports: opts.ephemeralPorts ? 'ephemeral' : 'fixed',
        patients: opts.patients === false ? false : { domain: opts.patientDomain },
        ...(opts.postgres ? { postgres: { url: opts.postgres } } : {}),
      });
      if (!opts.json) ensureWebmailBuilt();
      // For a person at a terminal: one readable line per record (JSON stays `caducee start`'s default).
      const pretty = prettyDestination(process.stderr, { hold: true });
      const logger = pino({ level: opts.json ? 'warn' : 'info' }, opts.json ? pino.destination(2) : pretty);
      // --encrypt: one keyring for the space, outside the operators' data directories.
      let configOverrides: Record<string, unknown> | undefined;
      if (opts.encrypt) {
        const keyFile = path.join(dir, 'keyring.json');
        if (!existsSync(keyFile)) writeKeyFile(keyFile, KeyRing.generate(), { exclusive: true });
        configOverrides = { store: { encryption: { keyFile } } };
      }
      demo = await startDemo(layout, { logger, configOverrides, ...(opts.nodes !== undefined ? { nodes: opts.nodes } : {}) });
      if (opts.json) process.stdout.write(JSON.stringify(demo.layout) + '\n');
      else printDemo(demo);
      pretty.release();
    } catch (e) {
      await demo?.stop();
      fail(e);
    }
    const stop = async () => {
      await demo?.stop();
      process.exit(0);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

function printDemo(demo: RunningDemo) {
  const l = demo.layout;
  const out: string[] = [
    '',
    'Espace de confiance MSSanté local démarré / local MSSanté trust space is up',
    '',
    'Webmail (ouvrez dans un navigateur ; certificat de test : acceptez-le ou faites confiance à la CA ci-dessous)',
  ];
  for (const op of l.operators) out.push(`  ${op.domain.padEnd(16)} https://${op.host}:${op.ports.https}/`);
  out.push('', 'Comptes de démonstration / demo accounts (web: password then TOTP enrolment; mail clients: app password)');
  const rows = l.operators.flatMap((op) =>
    op.users.map((u) => ({ operator: op.domain, login: u.login, 'web password': u.password, 'app password (IMAP, SMTP)': u.appPassword, mailboxes: [...u.addresses, ...u.delegated.map((d) => `${d} (délégation)`)].join(', ') })),
  );
  out.push(...table(rows).map((r) => '  ' + r), '', 'Ports');
  out.push(
    ...table(
      // An operator running as several nodes: one row per node (its process id too).
      l.operators.flatMap((op) => (op.nodes?.length ? op.nodes.map((n) => ({ op, label: `${op.domain} node ${n.node} (pid ${n.pid})`, ports: n.ports })) : [{ op, label: op.domain, ports: op.ports }])).map(({ label, ports }) => ({
        operator: label,
        'HTTPS (webmail, APIs)': ports.https,
        'HTTP (directory, FHIR)': ports.http,
        MX: ports.mx,
        submission: ports.submission,
        submissions: ports.submissions,
        IMAP: ports.imap,
        IMAPS: ports.imaps,
      })),
    ).map((r) => '  ' + r),
    '',
  );
  out.push(`  state directory : ${l.dir}`, `  test CA bundle  : ${l.caBundle}   (trust this CA in your mail client or browser)`, `  trust list      : ${l.trustList}`);
  if (l.crlServer) out.push(`  CRLs (HTTP)     : ${l.crlServer.baseUrl}/intermediate.crl, ${l.crlServer.baseUrl}/root.crl   (the certificates' distribution points)`);
  out.push('');
  for (const op of l.operators) {
    out.push(`${op.name}  — domain ${op.domain}`);
    out.push(`  API description (OpenAPI)    : https://${op.host}:${op.ports.https}/api/openapi.json`);
    out.push(`  directory API and FHIR       : http://${op.host}:${op.ports.http}/fhir/metadata`);
    if (l.psc) out.push(`  web login (Pro Santé Connect): https://${op.host}:${op.ports.https}/api/auth/oidc/login`);
    out.push(`  administration               : npx caducee mailbox list --config ${op.config}`);
    const c = op.certificates;
    out.push(`  CPS-like certificate of ${c.personal.login}: ${c.personal.cert} (key ${c.personal.key}) — SASL EXTERNAL, HTTPS`);
    out.push(`  organisation certificate (${c.organisation.structure}, opens ${c.organisation.appMailbox}): ${c.organisation.cert}`);
    out.push('');
  }
  const ps = l.patientService;
  if (ps) {
    out.push(`${ps.name}  — domain ${ps.domain}`);
    out.push(`  MX (trust space, mutual TLS) : ${ps.host}:${ps.ports.mx}`);
    out.push(`  submission STARTTLS / TLS    : ${ps.host}:${ps.ports.submission} / ${ps.host}:${ps.ports.submissions}`);
    out.push(`  IMAP STARTTLS / TLS          : ${ps.host}:${ps.ports.imap} / ${ps.host}:${ps.ports.imaps}`);
    out.push(`  administration               : npx caducee mailbox list --config ${ps.config}`);
    for (const u of ps.users) {
      out.push(`  patient ${u.login.padEnd(17)} app password (IMAP, SMTP) ${u.appPassword}   web password ${u.password} (then TOTP)`);
      out.push(`       ${u.displayName}, INS ${u.ins}: ${u.addresses[0]}${u.state === 'closed' ? ' (profil clos : réponse automatique)' : ''}`);
    }
    out.push(`  unknown patient (automatic answer): ${ps.unknownAddress}`);
    out.push(`  test address (automatic answer)   : reponse.automatique-test@${ps.domain}`);
    out.push('  a professional starts each conversation; the patient may answer until a message with subject [FIN] (or X-MSS-MES: FIN)');
    out.push('');
  }
  if (l.psc) {
    out.push(`Pro Santé Connect stand-in (demo OpenID provider): ${l.psc.issuer}`);
    out.push(`  log in as ${l.psc.users.map((u) => u.login).join(' or ')} with the web password above; tokens for mail software:`);
    out.push(`  public client ${l.psc.softwareClient.clientId}, redirect ${l.psc.softwareClient.redirectUri}, PKCE S256, resource ${l.psc.resource}`);
    out.push('  then IMAP/SMTP SASL XOAUTH2 or OAUTHBEARER with the access token', '');
  }
  for (const p of l.peers) out.push(`External peer ${p.domain} → ${p.host}:${p.port}; its certificate ${p.cert}, key ${p.key}`);
  out.push('Try: swaks --server 127.0.0.1:' + l.operators[0].ports.submission + ' --tls --tls-ca-path ' + l.caBundle + ' --auth PLAIN \\');
  out.push(`        --auth-user ${l.operators[0].users[0].login} --auth-password '${l.operators[0].users[0].appPassword}' \\`);
  out.push(`        --from ${l.operators[0].users[0].addresses[0]} --to ${l.operators[1].users[0].addresses[0]}`);
  out.push('Ctrl-C stops every operator. Log lines follow.', '');
  process.stdout.write(out.join('\n') + '\n');
}

/** A plain-text table (column widths from the content), header then rows. */
function table(rows: Record<string, string | number>[]): string[] {
  if (!rows.length) return [];
  const cols = Object.keys(rows[0]!);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '').length)));
  const line = (cells: string[]) => cells.map((v, i) => v.padEnd(width[i]!)).join('  ').trimEnd();
  return [line(cols), line(width.map((w) => '-'.repeat(w))), ...rows.map((r) => line(cols.map((c) => String(r[c] ?? ''))))];
}

// ---- administration ------------------------------------------------------------------------

const structure = program.command('structure').description('structures (FINESS / SIRET)');
structure
  .command('create')
  .requiredOption('--id-type <type>', 'FINESS or SIRET')
  .requiredOption('--id <id>', 'FINESS (9) or SIRET (14)')
  .requiredOption('--name <name>', 'legal name')
  .option(...configOption)
  .action((o) => withCore(o, async (core) => print([await core.createStructure(o.idType.toUpperCase() as StructureIdType, o.id, o.name)], false)).catch(fail));
structure
  .command('list')
  .option('--json')
  .option(...configOption)
  .action((o) => withCore(o, async (core) => print(await core.store.listStructures(), !!o.json)).catch(fail));

const practitioner = program.command('practitioner').description('health professionals (RPPS)');
practitioner
  .command('create')
  .requiredOption('--rpps <rpps>', 'RPPS number (11 digits)')
  .requiredOption('--family <name>')
  .requiredOption('--given <name>')
  .option('--civility <c>', 'civilité d’exercice, e.g. DR')
  .option('--profession <code>', 'profession code (TRE_G15), e.g. 10 médecin')
  .option(...configOption)
  .action((o) =>
    withCore(o, async (core) =>
      print([await core.createPractitioner({ rpps: o.rpps, familyName: o.family, givenName: o.given, civility: o.civility, professionCode: o.profession })], false),
    ).catch(fail),
  );
practitioner
  .command('list')
  .option('--json')
  .option(...configOption)
  .action((o) => withCore(o, async (core) => print(await core.store.listPractitioners(), !!o.json)).catch(fail));

const user = program.command('user').description('users (people who log in)');
user
  .command('create')
  .requiredOption('--login <login>')
  .requiredOption('--name <displayName>')
  .option('--rpps <rpps>', 'link to a practitioner')
  .option('--password <password>', 'initial password (or CADUCEE_PASSWORD)')
  .option(...configOption)
  .action((o) =>
    withCore(o, async (core) => {
      const password: string | undefined = o.password ?? process.env.CADUCEE_PASSWORD;
      const passwordHash = password !== undefined ? await hashNewPassword(password) : undefined;
      print([await core.createUser({ login: o.login, displayName: o.name, rpps: o.rpps, passwordHash })], false);
    }).catch(fail),
  );
user
  .command('passwd')
  .requiredOption('--login <login>')
  .requiredOption('--password <password>')
  .option(...configOption)
  .action((o) =>
    withCore(o, async (core) => {
      await new Authenticator(core.store).setPassword(await core.requireUser(o.login), o.password, cliContext());
      console.log(`password of ${o.login} changed`);
    }).catch(fail),
  );
user
  .command('list')
  .option('--json')
  .option(...configOption)
  .action((o) => withCore(o, async (core) => print(await core.store.listUsers(), !!o.json)).catch(fail));

// Mail clients use per-device app passwords (never the account password): normally created by
// the user in the webmail; the administrator can create, list and revoke them here too.
const appPasswords = user.command('app-password').description('per-device passwords for mail clients (IMAP, SMTP)');
appPasswords
  .command('add')
  .requiredOption('--login <login>')
  .requiredOption('--label <label>', 'the device or software, e.g. "Thunderbird — poste accueil"')
  .option(...configOption)
  .action((o) =>
    withCore(o, async (core) => {
      const u = await core.requireUser(o.login);
      const r = await new Authenticator(core.store).createAppPassword(u, o.label, cliContext());
      process.stdout.write(`app password #${r.appPassword.id} for ${u.login} (${r.appPassword.label}): ${r.password}\nIt is shown only now: give it to the user through a safe channel.\n`);
    }).catch(fail),
  );
appPasswords
  .command('list')
  .requiredOption('--login <login>')
  .option('--json')
  .option(...configOption)
  .action((o) => withCore(o, async (core) => print(await new Authenticator(core.store).listAppPasswords(await core.requireUser(o.login), cliContext()), !!o.json)).catch(fail));
appPasswords
  .command('revoke')
  .requiredOption('--login <login>')
  .requiredOption('--id <id>', 'app password number (see list)')
  .option(...configOption)
  .action((o) =>
    withCore(o, async (core) => {
      const u = await core.requireUser(o.login);
      if (!(await new Authenticator(core.store).revokeAppPassword(u, Number(o.id), cliContext()))) throw new CoreError(`${u.login} has no active app password #${o.id}`);
      process.stdout.write(`app password #${o.id} of ${u.login} revoked: mail clients using it are refused from now on\n`);
    }).catch(fail),
  );
user
  .command('reset-second-factor')
  .description('remove the TOTP second factor and recovery codes (lost phone): the user enrols again at the next web login; their web sessions are closed')
  .requiredOption('--login <login>')
  .option(...configOption)
  .action((o) =>
    withCore(o, async (core) => {
      const u = await core.requireUser(o.login);
      const n = await new Authenticator(core.store).resetSecondFactor(u, cliContext());
      process.stdout.write(`second factor of ${u.login} removed; ${n} web session(s) closed\n`);
    }).catch(fail),
  );

const parseStructure = (v: string) => {
  const m = /^(FINESS|SIRET):(\w+)$/i.exec(v);
  if (!m) throw new InvalidArgumentError('expected FINESS:id or SIRET:id');
  return { idType: m[1].toUpperCase() as StructureIdType, idValue: m[2] };
};
const mailbox = program.command('mailbox').description('MSSanté mailboxes (BAL)');
mailbox
  .command('create')
  .requiredOption('--address <address>')
  .requiredOption('--type <type>', MAILBOX_TYPES.join(' | '))
  .requiredOption('--name <displayName>')
  .option('--owner <login>', 'owning user')
  .option('--rpps <rpps>', 'practitioner (PER, CAB)')
  .option('--structure <FINESS:id|SIRET:id>', 'structure (ORG, APP; optional for PER)', parseStructure)
  .option('--liste-rouge', 'do not publish in the national directory')
  .option('--service <service>', 'service de rattachement')
  .option(...configOption)
  .action((o) =>
    withCore(o, async (core) =>
      print(
        [
          await core.createMailbox({
            address: o.address,
            type: o.type.toUpperCase() as MailboxType,
            displayName: o.name,
            owner: o.owner,
            rpps: o.rpps,
            structure: o.structure,
            listeRouge: !!o.listeRouge,
            service: o.service,
          }),
        ],
        false,
      ),
    ).catch(fail),
  );
mailbox
  .command('list')
  .option('--json')
  .option(...configOption)
  .action((o) => withCore(o, async (core) => print(await core.store.listMailboxes(), !!o.json)).catch(fail));
for (const [cmd, state, what] of [
  ['suspend', 'suspended', 'suspend (mail is deferred)'],
  ['activate', 'active', 'reactivate'],
  ['delete', 'deleted', 'delete (mail is refused; the address is never reused)'],
] as const) {
  mailbox
    .command(cmd)
    .description(what)
    .argument('<address>')
    .option(...configOption)
    .action((address, o) => withCore(o, async (core) => print([await core.setMailboxState(address, state, cliOrigin())], false)).catch(fail));
}

/** A yes/no option given as true or false (any case); anything else is a usage error (exit 2). */
const parseTrueFalse = (option: string, v: string): boolean => {
  if (/^true$/i.test(v)) return true;
  if (/^false$/i.test(v)) return false;
  throw new InvalidArgumentError(`${option} takes true or false, not "${v}"`);
};
mailbox
  .command('set')
  .description('change a mailbox; --liste-rouge true: no longer published in the national directory')
  .argument('<address>')
  .option('--liste-rouge <true|false>', 'put the mailbox on the liste rouge (true) or take it off (false)')
  .option(...configOption)
  .action((address: string, o) =>
    (async () => {
      // The value is checked before anything is opened: a typo never touches the store.
      if (o.listeRouge === undefined) throw new InvalidArgumentError('nothing to change: give --liste-rouge true|false');
      const on = parseTrueFalse('--liste-rouge', o.listeRouge);
      await withCore(o, async (core) => {
        const m = await core.setListeRouge(address, on, cliOrigin());
        print([m], false);
        process.stdout.write(
          on
            ? `${m.address} is on the liste rouge: gone from public directory output; the next \`caducee directory publish\` withdraws it from the national directory\n`
            : `${m.address} is off the liste rouge: back in public directory output; the next \`caducee directory publish\` publishes it\n`,
        );
      });
    })().catch(fail),
  );

const parseRights = (v: string) => {
  const r = v.split(',').map((s) => s.trim()).filter(Boolean) as GrantRight[];
  for (const x of r) if (!GRANT_RIGHTS.includes(x)) throw new InvalidArgumentError(`rights are ${GRANT_RIGHTS.join(',')}`);
  return r;
};
const grant = program.command('grant').description('delegations on a mailbox');
grant
  .command('set')
  .requiredOption('--mailbox <address>')
  .requiredOption('--user <login>')
  .requiredOption('--rights <list>', 'comma-separated: read,send,manage', parseRights)
  .option(...configOption)
  .action((o) => withCore(o, async (core) => print([(await core.grant(o.mailbox, o.user, o.rights, cliOrigin()))!], false)).catch(fail));
grant
  .command('remove')
  .requiredOption('--mailbox <address>')
  .requiredOption('--user <login>')
  .option(...configOption)
  .action((o) => withCore(o, async (core) => (await core.grant(o.mailbox, o.user, [], cliOrigin()), console.log('grant removed'))).catch(fail));
grant
  .command('list')
  .option('--mailbox <address>')
  .option('--json')
  .option(...configOption)
  .action((o) =>
    withCore(o, async (core) => {
      const mb = o.mailbox ? await core.requireMailbox(o.mailbox) : undefined;
      print(await core.store.listGrants(mb ? { mailboxId: mb.id } : {}), !!o.json);
    }).catch(fail),
  );

program
  .command('queue')
  .description('outbound queue')
  .option('--status <status>', 'queued | sent | failed')
  .option('--json')
  .option(...configOption)
  .action((o) =>
    withCore(o, async (core) =>
      print(
        (await core.store.listQueue(o.status ? { status: o.status } : {})).map((q) => ({
          id: q.id,
          recipient: q.recipient,
          status: q.status,
          attempts: q.attempts,
          next: new Date(q.nextAttemptAt).toISOString(),
          lastError: q.lastError,
        })),
        !!o.json,
      ),
    ).catch(fail),
  );

const audit = program.command('audit').description('audit trails: authentication (tail), functional traces per mailbox (mailbox, purge)');
audit
  .command('tail')
  .description('authentication audit trail (who, method, address, when — never a secret)')
  .option('-n, --lines <n>', 'how many entries, most recent last', '20')
  .option('--json')
  .option(...configOption)
  .action((o) =>
    withCore(o, async (core) => {
      const n = Number(o.lines);
      if (!Number.isInteger(n) || n < 1 || n > 100000) throw new InvalidArgumentError('--lines must be an integer from 1 to 100000');
      const rows = (await core.store.listAuthAudit(n)).reverse();
      if (o.json) for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
      else for (const r of rows) process.stdout.write(`${r.at} ${r.success ? 'OK  ' : 'FAIL'} ${r.protocol}/${r.method} ${r.login}${r.actor ? ` by ${r.actor}` : ''} from ${r.remote ?? '?'}${r.reason ? ` (${r.reason})` : ''}\n`);
    }).catch(fail),
  );

// The other command groups, each in its own module with what it needs (policy, audit, PKI, …):
// loaded when the command line names one of them, or all of them for help and unknown commands.
// An administration command above (`mailbox list`, `user create`, …) loads none of them and
// starts in about a second instead of four (each module is compiled and linked on every run).
const groups: [names: string[], register: () => Promise<unknown>][] = [
  [['audit'], async () => (await import('./traces.js')).registerTraceCommands(audit, fail)],
  [['pki'], async () => (await import('./pki.js')).registerPkiCommands(program)],
  [['trust'], async () => (await import('./trust.js')).registerTrustCommands(program)],
  [['directory'], async () => (await import('./directory.js')).registerDirectoryCommands(program)],
  [['absence'], async () => (await import('./absence.js')).registerAbsenceCommands(program, fail)],
  [['rules'], async () => (await import('./rules.js')).registerRulesCommands(program, fail)],
  [['indicators'], async () => (await import('./indicators.js')).registerIndicatorsCommands(program, fail)],
  [['keys'], async () => (await import('./keys.js')).registerKeysCommands(program, fail)],
  [['api-client', 'webhook'], async () => (await import('./integrations.js')).registerIntegrationCommands(program, { fail, withCore, cliContext, cliOrigin, print })],
  [['xdm'], async () => (await import('./xdm.js')).registerXdmCommands(program)],
  [['dns'], async () => (await import('./dns.js')).registerDnsCommands(program)],
];
const sub = process.argv[2];
const own = new Set(program.commands.map((c) => c.name()).filter((n) => n !== 'audit'));
// Registration order is help's order: every group in the order above.
for (const [names, register] of groups) if (sub === undefined || !own.has(sub) || names.includes(sub)) await register();

export { program };
