// store.blobs in the configuration, and the message files it opens.
import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { pgTestDatabase } from '../../test/support/postgres.js';
import { tempDir } from '../../test/helpers.js';
import { ConfigError, loadConfig, parseConfig } from '../config/index.js';
import { BlobStore } from './blobs.js';
import { openMessageFiles } from './open-message-files.js';
import { exposedStatePaths } from './permissions.js';
import { PgStore } from './postgres/index.js';
import { PgMessageFiles } from './postgres/message-files.js';
import { SqliteStore } from './sqlite/index.js';

test('store.blobs: files under <dataDir>/blobs by default, a directory resolved from the file, or postgres', () => {
  const base = '/etc/caducee';
  assert.deepEqual(parseConfig({ dataDir: '/var/lib/caducee' }, base).store.blobs, { kind: 'files', dir: '/var/lib/caducee/blobs' });
  assert.deepEqual(parseConfig({ store: { blobs: { kind: 'files', dir: 'partage/blobs' } } }, base).store.blobs, { kind: 'files', dir: '/etc/caducee/partage/blobs' });
  assert.deepEqual(parseConfig({ store: { blobs: { kind: 'postgres' } } }, base).store.blobs, { kind: 'postgres' });
  assert.throws(() => parseConfig({ store: { blobs: { kind: 's3' } } }, base), (e) => e instanceof ConfigError && /store\.blobs\.kind/.test(e.message));
  assert.throws(() => parseConfig({ store: { blobs: { kind: 'postgres', dir: '/mnt' } } }, base), (e) => e instanceof ConfigError && /store\.blobs/.test(e.message), 'no directory for postgres');
  assert.deepEqual(loadConfig(undefined, { CADUCEE_BLOBS_DIR: '/mnt/cephfs/caducee-b' }).store.blobs, { kind: 'files', dir: '/mnt/cephfs/caducee-b' });
});

test('openMessageFiles: a BlobStore on the configured directory; postgres refused on SQLite, PgMessageFiles on PostgreSQL', async (t) => {
  const { dir, cleanup } = tempDir('caducee-open-files-');
  const sqlite = SqliteStore.open(path.join(dir, 'caducee.sqlite'));
  t.after(async () => {
    await sqlite.close();
    cleanup();
  });
  const files = await openMessageFiles(parseConfig({ dataDir: dir, store: { blobs: { kind: 'files', dir: 'shared' } } }, dir), sqlite);
  assert.ok(files instanceof BlobStore && files.dir === path.join(dir, 'shared'));
  // The start's permission check looks at that directory (created 0700), wherever it is.
  chmodSync(path.join(dir, 'shared'), 0o755);
  assert.deepEqual(exposedStatePaths(dir, path.join(dir, 'shared')).map((e) => e.fix), [`chmod 700 ${path.join(dir, 'shared')}`]);
  chmodSync(path.join(dir, 'shared'), 0o700);
  const put = await files.put(Buffer.from('Subject: x\r\n\r\n.\r\n'));
  await put.release();
  assert.equal(await files.size(put.id), 17);
  await assert.rejects(openMessageFiles(parseConfig({ dataDir: dir, store: { blobs: { kind: 'postgres' } } }, dir), sqlite), /store is SQLite: configure the PostgreSQL store, or set store.blobs.kind to 'files'/);

  const db = await pgTestDatabase();
  if ('skip' in db) return t.skip(db.skip);
  const pg = await PgStore.open(db.url);
  try {
    const inPg = await openMessageFiles(parseConfig({ dataDir: dir, store: { blobs: { kind: 'postgres' } } }, dir), pg);
    assert.ok(inPg instanceof PgMessageFiles);
    const p = await inPg.put(Buffer.from('Subject: y\r\n\r\n.\r\n'));
    await p.release();
    assert.equal((await inPg.read(p.id)).toString(), 'Subject: y\r\n\r\n.\r\n');
  } finally {
    await pg.close();
    await db.drop();
  }
});
