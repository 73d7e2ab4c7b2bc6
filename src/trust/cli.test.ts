// Tests of `caducee trust …` (src/cli/trust.ts), in-process and through a real process.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import { EXIT_LISTED, EXIT_NOT_LISTED, EXIT_UNREADABLE, registerTrustCommands } from '../cli/trust.js';
import { buildTrustListXml } from './list.js';
import { sha256Hex } from './source.js';
import { trustDataDir } from '../../test/support/reference-data.js';

const REPO = new URL('../../', import.meta.url).pathname;
const DATA = trustDataDir();
const MARCH = `${DATA}/listeblanchemssante-2025-03-14.xml`;
const MAY = `${DATA}/listeblanchemssante-2025-05.xml`;
const MAY_SHA256 = 'fcec0113fe62c11c551882adc97f9eb254665d41fc31404cf984a0672cd9b2b2';
const skipNoData = existsSync(MAY) && existsSync(MARCH) ? false : `reference data not found in ${DATA}`;
// In CI nothing skips: the reference data is part of the CI checkout.
if (skipNoData && process.env['CI']) throw new Error(`${skipNoData}: CI must run the real-list tests`);

const DN_A1 = 'CN=mss1.a.fr,OU=1,O=A,C=FR';
const DN_A2 = 'CN=mss2.a.fr, OU=1, O=A, C=FR';
const XML = buildTrustListXml(
  [
    { domain: 'a.mssante.fr', operatorDn: DN_A1 },
    { domain: 'A.mssante.fr', operatorDn: 'cn=MSS1.a.fr,ou=1,o=a,c=fr' }, // same DN, other spelling
    { domain: 'a.mssante.fr', operatorDn: DN_A2 },
    { domain: 'b.mssante.fr', operatorDn: 'CN=mss.b.fr,C=FR' },
  ],
  new Date('2025-04-01T00:00:00Z'),
);

async function run(args: string[]): Promise<{ stdout: string; stderr: string; code: number | undefined }> {
  let stdout = '';
  let stderr = '';
  let code: number | undefined;
  const program = new Command('caducee')
    .exitOverride()
    .configureOutput({ writeOut: (s) => void (stdout += s), writeErr: (s) => void (stderr += s) });
  registerTrustCommands(program, {
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    setExitCode: (c) => void (code = c),
  });
  await program.parseAsync(['node', 'caducee', ...args]);
  return { stdout, stderr, code };
}

describe('caducee trust (in-process)', () => {
  let dir: string;
  let list: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'caducee-trust-cli-'));
    list = join(dir, 'liste.xml');
    writeFileSync(list, XML);
    writeFileSync(join(dir, 'page.html'), '<!doctype html><html><head><title>Oops</title></head></html>');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('lookup prints each distinct DN of a listed domain and exits 0', async () => {
    const r = await run(['trust', 'lookup', '--list', list, 'A.MSSANTE.FR']);
    assert.equal(r.code, EXIT_LISTED);
    assert.equal(r.stdout, `${DN_A1}\n${DN_A2}\n`);
    assert.equal(r.stderr, '');
  });

  it('lookup exits 3 with a message on stderr when the domain is not listed', async () => {
    const r = await run(['trust', 'lookup', '--list', list, 'c.mssante.fr']);
    assert.equal(r.code, EXIT_NOT_LISTED);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `caducee trust lookup: c.mssante.fr is not in the trust list ${list} generated 2025-04-01T00:00:00Z\n`);
  });

  it('lookup exits 2 naming the file when it cannot be read', async () => {
    const missing = join(dir, 'missing.xml');
    const r = await run(['trust', 'lookup', '--list', missing, 'a.mssante.fr']);
    assert.equal(r.code, EXIT_UNREADABLE);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`^caducee trust lookup: cannot read trust list ${missing}: ENOENT`));
  });

  it('lookup exits 2 naming the file and the problem when it is not a list', async () => {
    const page = join(dir, 'page.html');
    const r = await run(['trust', 'lookup', '--list', page, 'a.mssante.fr']);
    assert.equal(r.code, EXIT_UNREADABLE);
    assert.equal(
      r.stderr,
      `caducee trust lookup: ${page} is not a usable trust list: expected an XML document with root element <ListeBlancheMSSante>, found an HTML page (title "Oops")\n`,
    );
  });

  it('check prints a summary and exits 0; exits 2 on a checksum mismatch', async () => {
    const digest = sha256Hex(Buffer.from(XML));
    const ok = await run(['trust', 'check', '--list', list, '--sha256', digest]);
    assert.equal(ok.code, 0);
    assert.match(ok.stdout, new RegExp(`^sha256: +${digest} \\(matches\\)$`, 'm'));
    assert.match(ok.stdout, /^generated: +2025-04-01T00:00:00Z$/m);
    assert.match(ok.stdout, /^entries: +4$/m);
    assert.match(ok.stdout, /^domains: +2$/m);
    assert.match(ok.stdout, /^operator DNs: +3 distinct as distinguished names \(4 spellings\)$/m);
    assert.match(ok.stdout, /^warnings: +2$/m);

    const bad = await run(['trust', 'check', '--list', list, '--sha256', '0'.repeat(64)]);
    assert.equal(bad.code, EXIT_UNREADABLE);
    assert.equal(bad.stdout, '');
    assert.equal(bad.stderr, `caducee trust check: SHA-256 mismatch for ${list}: expected ${'0'.repeat(64)}, got ${digest}\n`);

    const sumFile = join(dir, 'checksum');
    writeFileSync(sumFile, digest + digest);
    assert.equal((await run(['trust', 'check', '--list', list, '--sha256', sumFile])).code, 0);

    const invalid = await run(['trust', 'check', '--list', list, '--sha256', 'xyz']);
    assert.equal(invalid.code, EXIT_UNREADABLE);
    assert.match(invalid.stderr, /^caducee trust check: invalid --sha256 xyz: neither a hex digest nor a readable checksum file: ENOENT/);
  });

  it('check exits 2 on a file that is not a list', async () => {
    const r = await run(['trust', 'check', '--list', join(dir, 'page.html')]);
    assert.equal(r.code, EXIT_UNREADABLE);
    assert.match(r.stderr, /is not a usable trust list: .*found an HTML page/);
  });

  it('check reads the real May list with its published checksum', { skip: skipNoData }, async () => {
    const r = await run(['trust', 'check', '--list', MAY, '--sha256', MAY_SHA256]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^entries: +619$/m);
  });
});

describe('caducee trust (real process)', { skip: skipNoData }, () => {
  // process.exitCode as seen by the shell, with the default process I/O.
  const script =
    "import { Command } from 'commander'; import { registerTrustCommands } from './src/cli/trust.ts';" +
    "const p = new Command('caducee'); registerTrustCommands(p); await p.parseAsync(process.argv.slice(1), { from: 'user' });";
  const spawn = (...args: string[]) => {
    const started = performance.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, '--', ...args], {
      cwd: REPO,
      encoding: 'utf8',
    });
    return { ...r, ms: performance.now() - started };
  };

  it('exits 0, 3 and 2 on the national list', (t) => {
    const listed = spawn('trust', 'lookup', '--list', MARCH, 'mssante.apicrypt.org');
    t.diagnostic(`lookup on the March list: ${listed.ms.toFixed(0)} ms wall, including Node and tsx start-up`);
    assert.equal(listed.status, 0, listed.stderr);
    assert.deepEqual(listed.stdout.trim().split('\n'), [
      'CN=mailin2.interop-mssante.apicrypt.org,OU=343975235300037,O=APICEM SARL,ST=Nord (59),C=FR',
      'CN=mailin.interop-mssante.apicrypt.org, OU=343975235300037, O=APICEM, ST=Nord (59), C=FR',
    ]);

    const absent = spawn('trust', 'lookup', '--list', MARCH, 'absent.mssante.fr');
    assert.equal(absent.status, 3);
    assert.match(absent.stderr, /absent\.mssante\.fr is not in the trust list/);

    const broken = spawn('trust', 'lookup', '--list', join(REPO, 'package.json'), 'a.mssante.fr');
    assert.equal(broken.status, 2);
    assert.match(broken.stderr, /package\.json is not a usable trust list: expected an XML document .* found JSON/);

    const check = spawn('trust', 'check', '--list', MARCH);
    t.diagnostic(`check on the March list: ${check.ms.toFixed(0)} ms wall; ${/parse time: .*/.exec(check.stdout)?.[0]}`);
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /^entries: +6554$/m);
  });
});
