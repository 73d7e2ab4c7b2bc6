import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Command } from 'commander';
import { registerPkiCommands } from '../cli/pki.js';
import { loadTrustAnchors, verifyChain, x509 } from './index.js';

class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** Runs `caducee pki …` in-process; returns stdout, stderr and the exit code. */
async function cli(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '';
  let err = '';
  let code = 0;
  const program = new Command('caducee');
  registerPkiCommands(program, {
    out: { write: (s: string) => (out += s) },
    err: { write: (s: string) => (err += s) },
    exit: (c) => {
      throw new Exit(c);
    },
    setExitCode: (c) => {
      code = c;
    },
  });
  try {
    await program.parseAsync(['pki', ...args], { from: 'user' });
  } catch (e) {
    if (!(e instanceof Exit)) throw e;
    code = e.code;
  }
  return { out, err, code };
}

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'caducee-pki-cli-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

test('caducee pki: init, issue-*, revoke, crl and errors', async () => {
  const dir = join(tmp, 'pki');
  const init = await cli('init', '--dir', dir, '--name', 'CLI PKI');
  assert.equal(init.code, 0, init.err);
  assert.match(init.out, /created test PKI "CLI PKI"/);
  assert.match(init.out, /CN=AC RACINE CLI PKI ELEMENTAIRE,OU=CLI PKI ELEMENTAIRE,O=CADUCEE TEST,C=FR/);
  assert.match(init.out, new RegExp(`CA bundle: +${join(dir, 'ca-bundle.pem')}`));
  const again = await cli('init', '--dir', dir);
  assert.equal(again.code, 2, 'default name differs from the existing one');
  assert.match(again.err, /named "CLI PKI"/);
  const same = await cli('init', '--dir', dir, '--name', 'CLI PKI');
  assert.equal(same.code, 0);
  assert.match(same.out, /already exists/);

  const out = join(tmp, 'certs', 'mx');
  const srv = await cli('issue-server', '--dir', dir, '--host', 'mx.b.mssante.test', '--siret', '18751234500012', '--org', 'Clinique B', '--dept', 'Rhône (69)', '--alt', '127.0.0.1', 'smtp.b.mssante.test', '--out', out);
  assert.equal(srv.code, 0, srv.err);
  assert.match(srv.out, /subject: +CN=mx\.b\.mssante\.test,OU=318751234500012,O=Clinique B,ST=Rhône \(69\),C=FR/);
  assert.match(srv.out, new RegExp(`key: +${out}\\.key\\.pem`));
  assert.equal((await stat(`${out}.key.pem`)).mode & 0o777, 0o600);
  const serial = /serial: +([0-9a-f]+)/.exec(srv.out)![1]!;
  const chain = x509.PemConverter.decode(await readFile(`${out}.chain.pem`, 'utf8')).map((b) => new Uint8Array(b));
  const anchors = () => Promise.all([readFile(join(dir, 'ca-bundle.pem'), 'utf8'), readFile(join(dir, 'crl.pem'), 'utf8')]).then(([b, c]) => loadTrustAnchors(b, c));
  assert.ok((await verifyChain({ chain, anchors: await anchors(), usage: 'serverAuth' })).ok);

  const per = await cli('issue-personal', '--dir', dir, '--rpps', '10001234567', '--given', 'Jean', '--surname', 'Dupont', '--out', join(tmp, 'certs', 'jean'));
  assert.equal(per.code, 0, per.err);
  assert.match(per.out, /subject: +CN=Jean DUPONT,serialNumber=810001234567,GN=Jean,SN=DUPONT,C=FR/);
  const org = await cli('issue-org', '--dir', dir, '--id', '750712184', '--id-type', 'FINESS', '--org', 'Hôpital C', '--out', join(tmp, 'certs', 'org'));
  assert.equal(org.code, 0, org.err);
  assert.match(org.out, /subject: +CN=Hôpital C,OU=1750712184,O=Hôpital C,C=FR/);

  const rev = await cli('revoke', '--dir', dir, '--serial', serial.toUpperCase(), '--reason', 'keyCompromise');
  assert.equal(rev.code, 0, rev.err);
  assert.match(rev.out, new RegExp(`revoked serial ${serial}`));
  const r = await verifyChain({ chain, anchors: await anchors() });
  assert.equal(!r.ok && r.failure, 'revoked');
  const crl = await cli('crl', '--dir', dir);
  assert.equal(crl.code, 0, crl.err);
  assert.match(crl.out, /\(1 revoked\)/);

  // errors: stderr names what failed and what to do; exit code 2
  const noPki = await cli('issue-server', '--dir', join(tmp, 'none'), '--host', 'a.b', '--siret', '18751234500012', '--org', 'O', '--dept', 'D', '--out', join(tmp, 'x'));
  assert.equal(noPki.code, 2);
  assert.match(noPki.err, /cannot load the test PKI: no test PKI in .*\n  create one with: caducee pki init --dir /);
  const badSiret = await cli('issue-server', '--dir', dir, '--host', 'a.b', '--siret', '42', '--org', 'O', '--dept', 'D', '--out', join(tmp, 'x'));
  assert.equal(badSiret.code, 2);
  assert.match(badSiret.err, /siret must be 14 digits/);
  const missing = await cli('issue-org', '--dir', dir, '--id', '750712184', '--org', 'X', '--out', join(tmp, 'x'));
  assert.equal(missing.code, 2);
  assert.match(missing.err, /--id-type/);
  const unknown = await cli('revoke', '--dir', dir, '--serial', 'abcdef');
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /was not issued .*\n  list the issued serials in .*state\.json/);
  const badReason = await cli('revoke', '--dir', dir, '--serial', serial, '--reason', '7');
  assert.equal(badReason.code, 2);
  assert.match(badReason.err, /unknown revocation reason "7"/);
});
