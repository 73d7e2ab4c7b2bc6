// SQLite shared by several processes (`caducee start --workers N`): three processes write to one
// folder at once, each transaction reading before it writes (\Recent claims). Every transaction
// begins IMMEDIATE (store/sqlite/connection.ts immediateTransactions): one writer at a time, the
// others wait (busy timeout) instead of failing with SQLITE_BUSY; every UID is given once.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, test } from 'node:test';
import { Core } from '../src/core/index.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { tempDir } from './helpers.js';

const { dir, cleanup } = tempDir('caducee-sqlite-processes-');
after(() => cleanup());

function writer(file: string, folderId: number, n: number): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.resolve('test/support/sqlite-writer.ts'), file, String(folderId), String(n)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, out })));
}

test('three processes writing one folder at once: no SQLITE_BUSY, every UID once', async () => {
  const file = path.join(dir, 'data', 'caducee.sqlite');
  const store = SqliteStore.open(file);
  const core = new Core(store, ['x.mssante.test']);
  await core.createPractitioner({ rpps: '10101010101', familyName: 'Martin', givenName: 'Claire' });
  await core.createUser({ login: 'claire', displayName: 'Claire Martin', rpps: '10101010101' });
  const m = await core.createMailbox({ address: 'claire.martin@x.mssante.test', type: 'PER', displayName: 'Dr Claire Martin', owner: 'claire' });
  const inbox = (await store.getFolder(m.id, 'INBOX'))!;
  const n = 150;
  const results = await Promise.all([writer(file, inbox.id, n), writer(file, inbox.id, n), writer(file, inbox.id, n)]);
  for (const r of results) assert.equal(r.code, 0, r.out);
  const uids = await store.folderUids(inbox.id);
  assert.equal(uids.length, 3 * n);
  assert.equal(new Set(uids).size, 3 * n);
  assert.deepEqual(uids, Array.from({ length: 3 * n }, (_, i) => i + 1));
  await store.close();
});
