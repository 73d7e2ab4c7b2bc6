// `caducee xdm inspect` and `caducee xdm build` (src/cli/xdm.ts): in-process through commander
// with captured output, and once through the real entry point (bin path, exit status).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { simpleParser } from 'mailparser';
import { registerXdmCommands } from '../../src/cli/xdm.js';
import { readXdm, xdmMessage } from '../../src/xdm/index.js';
import { tempDir } from '../helpers.js';
import { lieAboutSize, PATIENT, sampleCda, samplePackage, samplePdf } from './corpus.js';

async function xdm(...args: string[]) {
  const out = { stdout: '', stderr: '', code: -1 };
  const program = new Command().name('caducee').exitOverride();
  registerXdmCommands(program, { stdout: (t) => void (out.stdout += t), stderr: (t) => void (out.stderr += t), setExitCode: (c) => void (out.code = c) });
  await program.parseAsync(['xdm', ...args], { from: 'user' });
  return out;
}

describe('caducee xdm', () => {
  it('build → inspect: the zip, the .eml, and an .mbox of two messages', async () => {
    const tmp = tempDir('caducee-xdm-cli-');
    try {
      const f = (n: string) => path.join(tmp.dir, n);
      writeFileSync(f('cr.xml'), sampleCda());
      writeFileSync(f('cr.pdf'), samplePdf());
      const b = await xdm('build', '--cda', f('cr.xml'), '--pdf', f('cr.pdf'), '--ins', PATIENT.ins, '--oid', PATIENT.oid, '--family', 'Durand', '--given', 'Élodie', '--birth-date', '1979-03-12', '--qualified', '--out', f('IHE_XDM.ZIP'), '--eml', f('msg.eml'), '--from', 'paul.martin@ch-test.mssante.fr', '--to', 'labo@ch-test.mssante.fr');
      assert.equal(b.code, 0, b.stderr);
      assert.match(b.stdout, /IHE_XDM\.ZIP: 1 document\(s\), \d+ bytes, CDA codes 11502-2/);
      assert.match(b.stdout, /msg\.eml: XDM\/1\.0\/DDM\+CR d'examens biologiques DURAND Élodie 12\/03\/1979/);
      const pkg = readXdm(readFileSync(f('IHE_XDM.ZIP')));
      assert.deepEqual(pkg.warnings, []);
      assert.deepEqual(Buffer.from(pkg.documents[0]!.bytes), readFileSync(f('cr.xml')));
      const mail = await simpleParser(readFileSync(f('msg.eml')));
      assert.equal(mail.headers.get('x-mss-codecda'), '11502-2');
      assert.equal(mail.headers.get('x-mss-ins'), 'O');
      assert.deepEqual(mail.attachments.map((a) => a.filename), ['IHE_XDM.ZIP', 'CR.PDF']);
      assert.deepEqual(mail.attachments[1]!.content, readFileSync(f('cr.pdf')));

      const zip = await xdm('inspect', f('IHE_XDM.ZIP'));
      assert.equal(zip.code, 0, zip.stderr);
      assert.match(zip.stdout, /IHE_XDM\.ZIP: 1 document\(s\), metadata IHE_XDM\/SUBSET01\/METADATA\.XML/);
      assert.match(zip.stdout, /IHE_XDM\/SUBSET01\/DOC0001\.XML: text\/xml, \d+ bytes, SHA-1 [0-9a-f]{40}/);
      assert.match(zip.stdout, /size checked; hash checked/);
      assert.match(zip.stdout, /CDA patient: DURAND Élodie Marie, born 19790312, F, INS 279035121518989 \(test\)/);
      assert.match(zip.stdout, /warnings: 0/);

      const eml = await xdm('inspect', f('msg.eml'), '--json');
      assert.equal(eml.code, 0, eml.stderr);
      const j = JSON.parse(eml.stdout);
      assert.match(j.source, /attachment IHE_XDM\.ZIP/);
      assert.equal(j.documents[0].cda.code, '11502-2');
      assert.equal(j.documents[0].bytes, undefined);

      const second = await xdmMessage({ from: 'a@x.mssante.fr', to: ['b@y.mssante.fr'], label: 'CR', patient: PATIENT, zip: samplePackage().zip, cdaCodes: samplePackage().cdaCodes });
      writeFileSync(f('box.mbox'), Buffer.concat([Buffer.from('From a@x Mon Dec  7 09:00:00 2026\n'), readFileSync(f('msg.eml')), Buffer.from('\nFrom a@x Mon Dec  7 09:01:00 2026\n'), second.raw, Buffer.from('\n')]));
      const mbox = await xdm('inspect', f('box.mbox'), '--json');
      assert.equal(mbox.code, 0, mbox.stderr);
      const lines = mbox.stdout.trim().split('\n').map((l) => JSON.parse(l));
      assert.deepEqual(lines.map((l) => [l.source.split(',')[0], l.documents.length]), [['message 1', 1], ['message 2', 2]]);
    } finally {
      tmp.cleanup();
    }
  });

  it('bad input: exit 2 with one precise line', async () => {
    const tmp = tempDir('caducee-xdm-cli-');
    try {
      const f = (n: string) => path.join(tmp.dir, n);
      writeFileSync(f('note.txt'), 'Bonjour');
      writeFileSync(f('liar.zip'), lieAboutSize(samplePackage().zip, 'IHE_XDM/SUBSET01/METADATA.XML', 10));
      writeFileSync(f('cr.xml'), sampleCda());
      writeFileSync(f('other.xml'), sampleCda({ ins: '123456789012345' }));
      const common = ['--ins', PATIENT.ins, '--oid', PATIENT.oid, '--family', 'Durand', '--given', 'Élodie', '--birth-date', '1979-03-12', '--out', f('o.zip')];
      const cases: [string[], RegExp][] = [
        [['inspect', f('absent.zip')], /^caducee xdm inspect: cannot read file .*absent\.zip: ENOENT$/],
        [['inspect', f('note.txt')], /neither a zip archive nor a message with a zip attachment$/],
        [['inspect', f('liar.zip')], /liar\.zip: entry "IHE_XDM\/SUBSET01\/METADATA\.XML" inflates to more than the 10 bytes it declares$/],
        [['build', ...common], /give at least one --cda or a --pdf$/],
        [['build', '--cda', f('other.xml'), ...common], /the CDA patient 123456789012345/],
        [['build', '--cda', f('cr.xml'), ...common.map((a) => (a === PATIENT.oid ? '1.2.3' : a))], /OID 1\.2\.3 is not an INS OID/],
        [['build', '--cda', f('cr.xml'), '--gender', 'X', ...common], /--gender "X" must be M, F or U$/],
        [['build', '--pdf', f('cr.xml'), ...common], /is not a PDF/],
        [['build', '--cda', f('cr.xml'), '--eml', f('m.eml'), ...common], /--eml needs --from and at least one --to$/],
      ];
      for (const [args, re] of cases) {
        const r = await xdm(...args);
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}`);
        assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
        assert.match(r.stderr.trimEnd(), re);
      }
    } finally {
      tmp.cleanup();
    }
  });

  it('through the real entry point: exit status 2 and the line on stderr', async () => {
    const main = path.resolve(import.meta.dirname, '../../src/cli/main.ts');
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
      execFile(process.execPath, ['--import', 'tsx', main, 'xdm', 'inspect', '/nonexistent/IHE_XDM.ZIP'], (err, _o, stderr) => resolve({ code: err ? (err as any).code : 0, stderr })),
    );
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'caducee xdm inspect: cannot read file /nonexistent/IHE_XDM.ZIP: ENOENT\n');
  });
});
