// `caducee api-client …` and `caducee webhook …` as an administrator uses them: real processes,
// real store (docs/software-api.md).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { tempDir } from './helpers.js';

const BIN = path.resolve('bin/caducee.js');
const caducee = (args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

let tmp: ReturnType<typeof tempDir>;
let c: string[];
before(() => {
  tmp = tempDir();
  const config = path.join(tmp.dir, 'caducee.yaml');
  writeFileSync(config, 'operator:\n  hostname: mx.x.mssante.test\n  domains: [x.mssante.test]\ndataDir: ./data\n');
  c = ['--config', config];
});
after(() => tmp.cleanup());

test('an API client gets grants through Core and a token shown once; webhooks need https and the read right', () => {
  assert.equal(caducee(['structure', 'create', '--id-type', 'FINESS', '--id', '750712184', '--name', 'CHU Démo', ...c]).code, 0);
  assert.equal(caducee(['mailbox', 'create', '--address', 'dpi@x.mssante.test', '--type', 'APP', '--name', 'DPI', '--structure', 'FINESS:750712184', ...c]).code, 0);

  const bad = caducee(['api-client', 'create', '--name', 'dpi', '--display-name', 'DPI Nord', '--mailbox', 'nobody@x.mssante.test', ...c]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^caducee: .*nobody@x\.mssante\.test/);

  const made = caducee(['api-client', 'create', '--name', 'dpi', '--display-name', 'DPI Nord', '--mailbox', 'dpi@x.mssante.test', ...c]);
  assert.equal(made.code, 0, made.stderr);
  const token = /token #(\d+): (cad_\S+)/.exec(made.stdout);
  assert.ok(token, made.stdout);
  assert.match(made.stdout, /read\+send on dpi@x\.mssante\.test/);

  const again = caducee(['api-client', 'create', '--name', 'dpi', '--display-name', 'DPI Nord', '--mailbox', 'dpi@x.mssante.test', ...c]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /exists already/);

  const list = caducee(['api-client', 'token', 'list', '--json', ...c]);
  assert.equal(list.code, 0);
  assert.ok(!list.stdout.includes(token[2]), 'the token is never shown again');
  assert.equal(JSON.parse(list.stdout.trim().split('\n')[0]).label, 'DPI Nord — jeton initial');

  const insecure = caducee(['webhook', 'add', '--login', 'api.dpi', '--mailbox', 'dpi@x.mssante.test', '--url', 'http://127.0.0.1:9/hook', ...c]);
  assert.equal(insecure.code, 2);
  assert.match(insecure.stderr, /must use https/);
  assert.equal(caducee(['user', 'create', '--login', 'stranger', '--name', 'Sans droit', ...c]).code, 0);
  const denied = caducee(['webhook', 'add', '--login', 'stranger', '--mailbox', 'dpi@x.mssante.test', '--url', 'https://127.0.0.1:9/hook', ...c]);
  assert.equal(denied.code, 2);
  assert.match(denied.stderr, /may not read/);
  const hook = caducee(['webhook', 'add', '--login', 'api.dpi', '--mailbox', 'dpi@x.mssante.test', '--url', 'https://127.0.0.1:9/hook', ...c]);
  assert.equal(hook.code, 0, hook.stderr);
  assert.match(hook.stdout, /signing secret: \S{43}/);

  const revoked = caducee(['api-client', 'token', 'revoke', '--id', token[1], ...c]);
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.equal(caducee(['api-client', 'token', 'revoke', '--id', token[1], ...c]).code, 2, 'revoking twice is an error');
});
