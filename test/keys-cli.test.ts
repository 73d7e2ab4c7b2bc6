// `caducee keys init|status|encrypt-existing|rotate|rewrap|retire` as an administrator uses them
// (docs/encryption.md): real processes on a real store and message-file directory. Files written
// before encryption was configured are sealed in place, a rotation re-wraps them all, the old key
// is retired only once nothing needs it, and every file reads back the same through the keyring.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { BlobStore } from '../src/store/blobs.js';
import { readKeyFile } from '../src/store/keyring.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { tempDir } from './helpers.js';

const BIN = path.resolve('bin/caducee.js');
const { dir, cleanup } = tempDir('caducee-keys-cli-');
after(cleanup);

function caducee(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json: r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
}

test('keys: init, encrypt-existing, status, rotate, retire; files read back the same all along', async () => {
  const keyFile = path.join(dir, 'keys', 'keyring.json');
  const plainConfig = path.join(dir, 'plain.yaml');
  const config = path.join(dir, 'caducee.yaml');
  writeFileSync(plainConfig, 'operator:\n  hostname: mx.x.mssante.test\n  domains: [x.mssante.test]\ndataDir: ./data\n');
  writeFileSync(config, `operator:\n  hostname: mx.x.mssante.test\n  domains: [x.mssante.test]\ndataDir: ./data\nstore:\n  encryption:\n    keyFile: ${keyFile}\n`);
  // Messages written before encryption.
  const texts = [Buffer.from('Subject: un\r\n\r\nPremier message\r\n'), Buffer.alloc(300_000, 'b')];
  const ids: string[] = [];
  {
    const store = SqliteStore.open(path.join(dir, 'data', 'caducee.sqlite'));
    const files = new BlobStore(path.join(dir, 'data', 'blobs'), store, { pinMs: 0 });
    for (const t of texts) {
      const p = await files.put(t);
      await p.release();
      ids.push(p.id);
    }
    await store.close();
  }
  // No keyring configured: the commands say what to set.
  let r = caducee(['keys', 'status', '--config', plainConfig]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /encryption at rest is not configured: set store\.encryption\.keyFile/);

  r = caducee(['keys', 'init', '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  const first = r.json[0].current as string;
  assert.equal(statSync(keyFile).mode & 0o777, 0o600);
  assert.equal(readKeyFile(keyFile).currentId, first);

  r = caducee(['keys', 'status', '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.json.at(-1), { files: 0, sealed: 0, plaintext: 2, unknownKeys: [] });

  r = caducee(['keys', 'encrypt-existing', '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.json[0], { sealed: 2, already: 0, gone: 0, failed: 0 });
  for (const id of ids) assert.equal(readFileSync(path.join(dir, 'data', 'blobs', id.slice(0, 2), id)).includes('Premier message'), false);

  r = caducee(['keys', 'rotate', '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  const second = r.json[0].current as string;
  assert.notEqual(second, first);
  assert.deepEqual(r.json[1], { rewrapped: 2, current: 0, plaintext: 0, failed: 0 });
  r = caducee(['keys', 'status', '--config', config]);
  assert.deepEqual(
    r.json.map((k) => [k.key, k.current, k.files]),
    [
      [first, false, 0],
      [second, true, 2],
      [undefined, undefined, 2],
    ],
  );

  assert.equal(caducee(['keys', 'retire', second, '--config', config]).code, 2, 'the current key is never retired');
  r = caducee(['keys', 'retire', first, '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json[0].retired, first);
  const ring = readKeyFile(keyFile);
  assert.deepEqual(
    ring.keys.map((k) => k.id),
    [second],
  );

  // Everything reads back the same with the keyring that is left.
  const store = SqliteStore.open(path.join(dir, 'data', 'caducee.sqlite'));
  const files = new BlobStore(path.join(dir, 'data', 'blobs'), store, { keys: ring });
  for (const [i, id] of ids.entries()) assert.ok((await files.read(id)).equals(texts[i]));
  await store.close();

  // A key file others may read: refused, with the fix.
  chmodSync(keyFile, 0o644);
  r = caducee(['keys', 'status', '--config', config]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /has mode 0644, readable or writable by other local users: run `chmod 600 /);
});
