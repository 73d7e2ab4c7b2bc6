// `caducee absence set|show|clear` as an administrator uses it: real processes, real store.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tempDir } from './helpers.js';

const BIN = path.resolve('bin/caducee.js');

function caducee(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('caducee absence', () => {
  let dir: string;
  let cleanup = () => {};
  let c: string[];
  before(() => {
    ({ dir, cleanup } = tempDir());
    const config = path.join(dir, 'caducee.yaml');
    writeFileSync(config, 'operator:\n  hostname: mx.x.mssante.test\n  domains: [x.mssante.test]\ndataDir: ./data\n');
    c = ['--config', config];
    for (const args of [
      ['practitioner', 'create', '--rpps', '10003333333', '--family', 'Darc', '--given', 'Jeanne'],
      ['user', 'create', '--login', 'jeanne', '--name', 'Dr Jeanne Darc', '--rpps', '10003333333'],
      ['mailbox', 'create', '--address', 'jeanne.darc@x.mssante.test', '--type', 'PER', '--name', 'Dr Jeanne Darc', '--owner', 'jeanne'],
      ['mailbox', 'create', '--address', 'cabinet.darc@x.mssante.test', '--type', 'CAB', '--name', 'Cabinet', '--owner', 'jeanne'],
    ]) {
      const r = caducee([...args, ...c]);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(() => cleanup());

  test('set, show, clear; bad input is refused with what to do', () => {
    const text = path.join(dir, 'texte.txt');
    writeFileSync(text, 'Je suis en congés.\nBien confraternellement.\n');
    const set = caducee(['absence', 'set', '--mailbox', 'jeanne.darc@x.mssante.test', '--start', '2026-01-01', '--end', '2099-01-10T18:00:00+01:00', '--subject', 'Congés', '--text-file', text, '--substitute', 'cabinet.darc@x.mssante.test', '--json', ...c]);
    assert.equal(set.code, 0, set.stderr);
    const shown = JSON.parse(caducee(['absence', 'show', '--mailbox', 'jeanne.darc@x.mssante.test', '--json', ...c]).stdout);
    assert.deepEqual(
      [shown.startsAt, shown.endsAt, shown.subject, shown.body, shown.substitute, shown.active],
      ['2026-01-01T00:00:00.000Z', '2099-01-10T17:00:00.000Z', 'Congés', 'Je suis en congés.\nBien confraternellement.\n', 'cabinet.darc@x.mssante.test', true],
    );
    assert.match(shown.updatedBy, /\(command line\)$/);
    for (const [args, error] of [
      [['--end', 'demain'], /not an ISO 8601 date-time/],
      [['--start', '2099-02-01', '--end', '2099-01-01'], /must come after the start/],
      [['--substitute', 'personne@x.mssante.test'], /not an active mailbox of this operator/],
      [['--substitute', 'jeanne.darc@x.mssante.test'], /another mailbox than the absent one/],
      [['--substitute', 'quelquun@ailleurs.mssante.fr'], /not in the national directory/],
    ] as const) {
      const r = caducee(['absence', 'set', '--mailbox', 'jeanne.darc@x.mssante.test', ...args, ...c]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr, error);
    }
    assert.equal(caducee(['absence', 'show', '--mailbox', 'inconnu@x.mssante.test', ...c]).code, 2);
    assert.match(caducee(['absence', 'clear', '--mailbox', 'jeanne.darc@x.mssante.test', ...c]).stdout, /removed/);
    assert.equal(caducee(['absence', 'show', '--mailbox', 'jeanne.darc@x.mssante.test', '--json', ...c]).stdout.trim(), 'null');
  });
});
