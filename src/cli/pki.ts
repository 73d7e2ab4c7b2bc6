/**
 * `caducee pki …` — manage the IGC-Santé-shaped test PKI (src/pki).
 *
 *   caducee pki init --dir DIR [--name NAME]
 *   caducee pki issue-server --dir DIR --host H --siret S --org O --dept D [--alt NAME...] --out BASENAME_PATH
 *   caducee pki issue-personal --dir DIR --rpps N --given G --surname S [--profession P] --out BASENAME_PATH
 *   caducee pki issue-org --dir DIR --id ID --id-type FINESS|SIRET --org O [--unit U] --out BASENAME_PATH
 *   caducee pki revoke --dir DIR --serial HEX [--reason CODE|NAME]
 *   caducee pki crl --dir DIR
 *
 * Errors go to stderr with what failed and what to do; the exit code is 2,
 * for usage errors too (this subtree installs its own commander exitOverride).
 */
import { basename, dirname } from 'node:path';
import { Command, Option } from 'commander';
import { normalizeSerialHex, subjectDnOf, TestPki, type IssuedCertificate } from '../pki/index.js';

export interface PkiCliIo {
  out: { write(s: string): unknown };
  err: { write(s: string): unknown };
  /** Called for commander usage errors / help; must not return normally in production. */
  exit: (code: number) => void;
  /** Records the exit code of a failed action (the process keeps running to flush output). */
  setExitCode: (code: number) => void;
}

const defaultIo: PkiCliIo = {
  out: process.stdout,
  err: process.stderr,
  exit: (code) => process.exit(code),
  setExitCode: (code) => {
    process.exitCode = code;
  },
};

/** RFC 5280 §5.3.1 CRLReason names usable on a full CRL (removeFromCRL is for delta CRLs). */
const REASONS: Record<string, number> = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
  aACompromise: 10,
};

class CliError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

function parseReason(v: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : REASONS[v];
  if (n === undefined || !Object.values(REASONS).includes(n)) throw new CliError(`unknown revocation reason "${v}"`, `use a code (0-6, 9, 10) or one of: ${Object.keys(REASONS).join(', ')}`);
  return n;
}

async function loadPki(dir: string): Promise<TestPki> {
  try {
    return await TestPki.load(dir);
  } catch (e) {
    throw new CliError(`cannot load the test PKI: ${(e as Error).message}`, `create one with: caducee pki init --dir ${dir}`);
  }
}

function splitOut(out: string): { dir: string; base: string } {
  const base = basename(out);
  if (!base || out.endsWith('/')) throw new CliError(`--out "${out}" has no file name part`, 'give a path prefix such as ./certs/mx (writes mx.crt.pem, mx.key.pem, mx.chain.pem)');
  return { dir: dirname(out), base };
}

export function registerPkiCommands(program: Command, io: PkiCliIo = defaultIo): Command {
  const say = (s: string): void => void io.out.write(s + '\n');

  const pki = program
    .command('pki')
    .description('test PKI shaped like IGC-Santé: CA, server/personal/organisation certificates, CRL')
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ writeOut: (s) => void io.out.write(s), writeErr: (s) => void io.err.write(s) })
    // Commander usage errors exit 1 by default; this CLI uses 2 for every failure.
    .exitOverride((err) => io.exit(err.exitCode === 0 ? 0 : 2));

  /** Runs an action; failures are reported on stderr and set exit code 2. */
  const action =
    <A extends unknown[]>(name: string, fn: (...args: A) => Promise<void>) =>
    async (...args: A): Promise<void> => {
      try {
        await fn(...args);
      } catch (e) {
        const hint = e instanceof CliError ? e.hint : `check the options (caducee pki ${name} --help)`;
        io.err.write(`caducee pki ${name}: ${(e as Error).message}\n  ${hint}\n`);
        io.setExitCode(2);
      }
    };

  const printIssued = async (p: TestPki, kind: string, out: string, c: IssuedCertificate): Promise<void> => {
    const { dir, base } = splitOut(out);
    const paths = await p.writeIssued(dir, base, c);
    say(`issued ${kind} certificate`);
    say(`  subject:   ${c.subjectDn}`);
    say(`  serial:    ${c.serialHex}`);
    say(`  cert:      ${paths.certPath}`);
    say(`  key:       ${paths.keyPath}`);
    say(`  chain:     ${paths.chainPath}`);
    say(`  CA bundle: ${p.caBundlePath}`);
  };

  pki
    .command('init')
    .description('create a test PKI in DIR (or report the one already there)')
    .requiredOption('--dir <dir>', 'PKI directory')
    .option('--name <name>', 'PKI name, distinguishes independent PKIs', 'TEST IGC-SANTE')
    .action(
      action('init', async (o: { dir: string; name: string }) => {
        const existed = TestPki.exists(o.dir);
        let p: TestPki;
        try {
          p = await TestPki.loadOrCreate(o.dir, { name: o.name });
        } catch (e) {
          throw new CliError((e as Error).message, existed ? 'use another --dir, or the existing PKI name' : `check that ${o.dir} is writable`);
        }
        say(existed ? `test PKI "${p.name}" already exists in ${p.dir}` : `created test PKI "${p.name}" in ${p.dir}`);
        say(`  root:         ${p.rootPath}`);
        say(`                ${subjectDnOf(p.rootCert)}`);
        say(`  intermediate: ${p.intermediatePath}`);
        say(`                ${subjectDnOf(p.intermediateCert)}`);
        say(`  CA bundle:    ${p.caBundlePath}`);
        say(`  CRL:          ${p.crlPath}`);
      }),
    );

  /**
   * An issue-* subcommand: --dir, its own options, then --out. Its action checks --out before it
   * opens the PKI, issues with `issue` and prints what it wrote.
   */
  const issueCommand = <O extends { dir: string; out: string }>(
    name: string,
    description: string,
    kind: string,
    options: (c: Command) => Command,
    issue: (p: TestPki, o: O) => Promise<IssuedCertificate>,
  ): void => {
    options(pki.command(name).description(description).requiredOption('--dir <dir>', 'PKI directory'))
      .requiredOption('--out <basename_path>', 'output path prefix: writes <prefix>.crt.pem, .key.pem, .chain.pem')
      .action(
        action(name, async (o: O) => {
          splitOut(o.out);
          const p = await loadPki(o.dir);
          await printIssued(p, kind, o.out, await issue(p, o));
        }),
      );
  };

  issueCommand(
    'issue-server',
    'issue a TLS server certificate (EKU serverAuth + clientAuth) for an MSSanté host',
    'server',
    (c) =>
      c
        .requiredOption('--host <host>', 'DNS name (CN and first subjectAltName)')
        .requiredOption('--siret <siret>', 'SIRET of the structure, 14 digits (OU = "3" + SIRET)')
        .requiredOption('--org <org>', 'organisation name (O)')
        .requiredOption('--dept <dept>', 'department, e.g. "Paris (75)" (ST)')
        .option('--alt <name...>', 'more subjectAltNames: DNS names or IP addresses'),
    (p, o: { dir: string; host: string; siret: string; org: string; dept: string; alt?: string[]; out: string }) =>
      p.issueServer({ host: o.host, siret: o.siret, org: o.org, dept: o.dept, altNames: o.alt }),
  );

  issueCommand(
    'issue-personal',
    'issue a personal certificate shaped like a CPS (EKU clientAuth + emailProtection)',
    'personal',
    (c) =>
      c
        .requiredOption('--rpps <rpps>', 'RPPS number, 11 digits (serialNumber = "8" + RPPS)')
        .requiredOption('--given <given>', 'given name (GN)')
        .requiredOption('--surname <surname>', 'surname (SN, upper-cased)')
        .option('--profession <profession>', 'profession, e.g. "Médecin" (title)'),
    (p, o: { dir: string; rpps: string; given: string; surname: string; profession?: string; out: string }) =>
      p.issuePersonal({ rpps: o.rpps, givenName: o.given, surname: o.surname, profession: o.profession }),
  );

  issueCommand(
    'issue-org',
    'issue an organisation certificate (EKU clientAuth)',
    'organisation',
    (c) =>
      c
        .requiredOption('--id <id>', 'structure id: FINESS (9 characters) or SIRET (14 digits)')
        .addOption(new Option('--id-type <type>', 'kind of structure id').choices(['FINESS', 'SIRET']).makeOptionMandatory())
        .requiredOption('--org <org>', 'organisation name (O)')
        .option('--unit <unit>', 'unit or service name (CN; default: the organisation name)'),
    (p, o: { dir: string; id: string; idType: 'FINESS' | 'SIRET'; org: string; unit?: string; out: string }) =>
      p.issueOrganisation({ id: o.id, idType: o.idType, org: o.org, unit: o.unit }),
  );

  pki
    .command('revoke')
    .description('revoke a certificate by serial number and rewrite the CRL')
    .requiredOption('--dir <dir>', 'PKI directory')
    .requiredOption('--serial <hex>', 'serial number in hex, as printed at issuance')
    .option('--reason <reason>', `RFC 5280 reason code or name (${Object.keys(REASONS).join(', ')})`)
    .action(
      action('revoke', async (o: { dir: string; serial: string; reason?: string }) => {
        const reason = o.reason === undefined ? undefined : parseReason(o.reason);
        const p = await loadPki(o.dir);
        try {
          await p.revoke(o.serial, reason);
        } catch (e) {
          throw new CliError((e as Error).message, `list the issued serials in ${p.statePath}`);
        }
        const serial = normalizeSerialHex(o.serial);
        const rec = p.issued.find((r) => r.serialHex === serial);
        say(`revoked serial ${serial}`);
        if (rec) say(`  subject: ${rec.subjectDn}`);
        say(`  CRL:     ${p.crlPath}`);
      }),
    );

  pki
    .command('crl')
    .description('rewrite the CRL file (fresh thisUpdate/nextUpdate)')
    .requiredOption('--dir <dir>', 'PKI directory')
    .action(
      action('crl', async (o: { dir: string }) => {
        const p = await loadPki(o.dir);
        const path = await p.writeCrl();
        say(`wrote CRL of ${subjectDnOf(p.intermediateCert)} (${p.revoked.length} revoked)`);
        say(`  CRL: ${path}`);
      }),
    );

  return pki;
}

