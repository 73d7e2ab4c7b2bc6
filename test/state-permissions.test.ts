// State files are for the service user only (issue 13, "Hardening"): after a start, the data
// directory and blob directories are 0700 and the SQLite database, its -wal and -shm and the
// secrets key are 0600; a start over a database or data directory other users can read stops
// with a StartupError naming the path and the chmod that fixes it.
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { startOperator, StartupError } from '../src/main.js';
import { folderMessages, probe, sqliteDb, tempDir, testLogger } from './helpers.js';

const modeOf = (p: string) => (statSync(p).mode & 0o777).toString(8);

describe('state file permissions', () => {
  let layout: DemoLayout;
  let demo: RunningDemo | undefined;
  let cleanup = () => {};
  before(async () => {
    let dir: string;
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral' });
    demo = await startDemo(layout, { logger: testLogger(), psc: false });
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  test('a started operator: directories 0700, database, -wal, -shm, secrets key and message files 0600', async () => {
    const op = demo!.operators[0];
    const a = layout.operators[0];
    const user = a.users[0];
    // One message stored, so that the blob tree has a shard directory and a file.
    const r = await probe({ port: op.ports.submission, ca: readFileSync(layout.caBundle, 'utf8'), auth: { user: user.login, pass: user.appPassword }, from: user.addresses[0], to: [user.addresses[0]] });
    assert.equal(r.stage, 'sent', JSON.stringify(r));
    assert.equal((await folderMessages(op, user.addresses[0])).length >= 1, true);
    const data = a.dataDir;
    for (const d of [data, path.join(data, 'blobs'), path.join(data, 'blobs', 'tmp')]) assert.equal(modeOf(d), '700', d);
    for (const f of ['caducee.sqlite', 'caducee.sqlite-wal', 'caducee.sqlite-shm', 'secrets.key']) assert.equal(modeOf(path.join(data, f)), '600', f);
    const blob = (sqliteDb(op).prepare('SELECT blob_id id FROM messages LIMIT 1').get() as { id: string }).id;
    assert.equal(modeOf(path.dirname(op.blobs.pathOf(blob))), '700', 'blob shard directory');
    assert.equal(modeOf(op.blobs.pathOf(blob)), '600', 'message file');
  });

  test('a database or data directory readable by others: the start stops, naming the file and the fix', async () => {
    const config = demo!.operators[0].config;
    await demo!.stop();
    demo = undefined;
    const db = path.join(config.dataDir, 'caducee.sqlite');
    chmodSync(db, 0o644);
    await assert.rejects(startOperator(config, { logger: testLogger() }), (e: any) => {
      assert.ok(e instanceof StartupError, String(e));
      assert.match(e.message, new RegExp(`${db.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} has mode 0644`));
      assert.match(e.message, /`chmod 600 \S+caducee\.sqlite`/);
      return true;
    });
    chmodSync(db, 0o600);
    chmodSync(config.dataDir, 0o755);
    await assert.rejects(startOperator(config, { logger: testLogger() }), /has mode 0755.*`chmod 700 /);
  });
});
