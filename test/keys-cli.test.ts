// `caducee keys init|status|encrypt-existing|rotate|rewrap|retire` as an administrator uses them
// (docs/encryption.md): real processes on a real store and message-file directory. Files and row
// values (the cached analysis, the tracking subject, the absence texts, a URLAUTH access key)
// written before encryption was configured are sealed in place, a rotation re-wraps / re-seals them
// all, the old key is retired only once nothing needs it, and everything reads back the same
// through the keyring (the URL issued before it all still verifies).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { urlAuthToken, urlAuthTokenMatches } from '../src/imap/urlauth-token.js';
import { BlobStore } from '../src/store/blobs.js';
import { KeyRing, readKeyFile } from '../src/store/keyring.js';
import { PgStore } from '../src/store/postgres/index.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { isSealedValue, ValueSealer, valueKeyId } from '../src/store/value-seal.js';
import { tempDir } from './helpers.js';
import { pgTestDatabase } from './support/postgres.js';

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
  // Messages written before encryption, with their rows: an analysis, a tracked submission, an absence.
  const texts = [Buffer.from('Subject: un\r\n\r\nPremier message\r\n'), Buffer.alloc(300_000, 'b')];
  const ids: string[] = [];
  const dbFile = path.join(dir, 'data', 'caducee.sqlite');
  const MARK = 'Rows-marker-5519';
  const info = JSON.stringify({ subject: `Premier ${MARK}` });
  let mailboxId = 0;
  let submissionId = 0;
  // A URLAUTH URL issued before encryption (RFC 4467 §7 GENURLAUTH): its user, folder, key, token.
  const url = { userId: 0, folderId: 0, key: Buffer.alloc(0) as Buffer, rump: 'imap://claire@mx.x.mssante.test/INBOX/;UIDVALIDITY=1/;UID=1;urlauth=user+claire', token: '' };
  {
    const store = SqliteStore.open(dbFile);
    const files = new BlobStore(path.join(dir, 'data', 'blobs'), store, { pinMs: 0 });
    for (const t of texts) {
      const p = await files.put(t);
      await p.release();
      ids.push(p.id);
    }
    const st = await store.createStructure({ idType: 'SIRET', idValue: '13000000000019', name: 'Cabinet' });
    const m = await store.createMailbox({ address: 'accueil@x.mssante.test', type: 'ORG', displayName: 'Accueil', ownerUserId: null, practitionerId: null, structureId: st.id, listeRouge: false });
    mailboxId = m.id;
    await store.setBlobMeta(ids[0], info);
    const r = await store.deliver({
      blobId: ids[0], size: texts[0].length, internalDate: new Date(), envelopeFrom: m.address, localMailboxIds: [], senderMailboxId: m.id,
      remote: [{ recipient: 'dr@y.mssante.test', domain: 'y.mssante.test', notify: null, orcpt: null }],
      tracking: { userId: null, messageId: '<1@x.mssante.test>', subject: `Objet ${MARK}` },
    });
    submissionId = r.submissionChanges![0].id;
    await store.setAbsence({ mailboxId: m.id, startsAt: null, endsAt: null, subject: `Congés ${MARK}`, body: `Absente ${MARK}`, externalBody: null, substitute: null, updatedBy: 'admin' });
    url.userId = (await store.createUser({ login: 'claire', displayName: 'Claire', practitionerId: null, passwordHash: null })).id;
    url.folderId = (await store.getFolder(m.id, 'INBOX'))!.id;
    url.key = (await store.urlAuthKey(url.userId, url.folderId, true))!;
    url.token = urlAuthToken(url.key, url.rump);
    await store.close();
  }
  /** The stored row values: [column, key id or 'plain', holds the marker (the URLAUTH key: its bytes)]. */
  const rowsOnDisk = () => {
    const db = SqliteStore.open(dbFile).db;
    try {
      const v = (sql: string, ...a: unknown[]) => (db.prepare(sql).get(...a) as { v: Buffer | string }).v;
      return (
        [
          ['blob_meta.info', v('SELECT info v FROM blob_meta WHERE blob_id = ?', ids[0])],
          ['submissions.subject', v('SELECT subject v FROM submissions WHERE id = ?', submissionId)],
          ['absences.subject', v('SELECT subject v FROM absences WHERE mailbox_id = ?', mailboxId)],
          ['absences.body', v('SELECT body v FROM absences WHERE mailbox_id = ?', mailboxId)],
          ['urlauth_keys.secret', v('SELECT secret v FROM urlauth_keys WHERE user_id = ?', url.userId)],
        ] as const
      ).map(([c, x]) => [c, typeof x === 'string' || !isSealedValue(x) ? 'plain' : valueKeyId(x), c === 'urlauth_keys.secret' ? (x as Buffer).includes(url.key) : x.includes(MARK)]);
    } finally {
      db.close();
    }
  };
  /** The rows as the store reads them with `ring`. */
  const rowsRead = async (ring: KeyRing) => {
    const store = SqliteStore.open(dbFile, { sealer: new ValueSealer(ring) });
    try {
      return [
        await store.getBlobMeta(ids[0]),
        (await store.getSubmission(submissionId))!.subject,
        (await store.getAbsence(mailboxId))!.subject,
        (await store.getAbsence(mailboxId))!.body,
        urlAuthTokenMatches(await store.urlAuthKey(url.userId, url.folderId, false), url.rump, url.token),
      ];
    } finally {
      await store.close();
    }
  };
  const plainRows = [info, `Objet ${MARK}`, `Congés ${MARK}`, `Absente ${MARK}`, true];
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
  assert.deepEqual(r.json.at(-1), { files: 0, sealed: 0, plaintext: 2, rows: { sealed: 0, plaintext: 5 }, unknownKeys: [] });
  assert.deepEqual(r.json.find((l) => l.column === 'absences.subject'), { column: 'absences.subject', byKey: {}, plaintext: 1 });
  assert.deepEqual(r.json.find((l) => l.column === 'urlauth_keys.secret'), { column: 'urlauth_keys.secret', byKey: {}, plaintext: 1 });
  assert.deepEqual(rowsOnDisk(), [
    ['blob_meta.info', 'plain', true],
    ['submissions.subject', 'plain', true],
    ['absences.subject', 'plain', true],
    ['absences.body', 'plain', true],
    ['urlauth_keys.secret', 'plain', true],
  ]);

  r = caducee(['keys', 'encrypt-existing', '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.json[0], { sealed: 2, already: 0, gone: 0, failed: 0, rows: { sealed: 5, failed: 0 } });
  for (const id of ids) assert.equal(readFileSync(path.join(dir, 'data', 'blobs', id.slice(0, 2), id)).includes('Premier message'), false);
  assert.deepEqual(
    rowsOnDisk().map(([c, k, m]) => [c, k === first, m]),
    [
      ['blob_meta.info', true, false],
      ['submissions.subject', true, false],
      ['absences.subject', true, false],
      ['absences.body', true, false],
      ['urlauth_keys.secret', true, false],
    ],
  );
  assert.deepEqual(await rowsRead(readKeyFile(keyFile)), plainRows);

  r = caducee(['keys', 'rotate', '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  const second = r.json[0].current as string;
  assert.notEqual(second, first);
  assert.deepEqual(r.json[1], { rewrapped: 2, current: 0, plaintext: 0, failed: 0, rows: { resealed: 5, failed: 0 } });
  assert.deepEqual(rowsOnDisk().map(([, k]) => k), [second, second, second, second, second]);
  r = caducee(['keys', 'status', '--config', config]);
  assert.deepEqual(
    r.json.filter((l) => !l.column).map((k) => [k.key, k.current, k.files, k.rows]),
    [
      [first, false, 0, 0],
      [second, true, 2, 5],
      [undefined, undefined, 2, { sealed: 5, plaintext: 0 }],
    ],
  );
  assert.deepEqual(r.json.find((l) => l.column === 'blob_meta.info'), { column: 'blob_meta.info', byKey: { [second]: 1 }, plaintext: 0 });

  // An operator not restarted since the rotation sealed with the old key (an analysis, two URLAUTH
  // keys), and one value of each column was moved to another row (it no longer opens): retire
  // re-seals what it can, then refuses.
  const late = { userId: 0, key: Buffer.alloc(0) as Buffer, movedId: 0 };
  {
    const ring = readKeyFile(keyFile);
    const stale = SqliteStore.open(dbFile, { sealer: new ValueSealer(new KeyRing(ring.keys, first)) });
    await stale.setBlobMeta('f'.repeat(64), '{"late":1}');
    await stale.setBlobMeta('e'.repeat(64), '{"moved":1}');
    const moved = (stale.db.prepare('SELECT info FROM blob_meta WHERE blob_id = ?').get('f'.repeat(64)) as { info: Buffer }).info;
    stale.db.prepare('UPDATE blob_meta SET info = ? WHERE blob_id = ?').run(moved, 'e'.repeat(64));
    const newUser = async (login: string) => (await stale.createUser({ login, displayName: login, practitionerId: null, passwordHash: null })).id;
    late.userId = await newUser('late');
    late.key = (await stale.urlAuthKey(late.userId, url.folderId, true))!;
    const other = await newUser('moved');
    await stale.urlAuthKey(other, url.folderId, true);
    const lateSecret = (stale.db.prepare('SELECT secret FROM urlauth_keys WHERE user_id = ?').get(late.userId) as { secret: Buffer }).secret;
    late.movedId = (stale.db.prepare('UPDATE urlauth_keys SET secret = ? WHERE user_id = ? RETURNING id').get(lateSecret, other) as { id: number }).id;
    await stale.close();
  }
  r = caducee(['keys', 'status', '--config', config]);
  assert.deepEqual(r.json.find((l) => l.column === 'blob_meta.info'), { column: 'blob_meta.info', byKey: { [first]: 2, [second]: 1 }, plaintext: 0 });
  assert.deepEqual(r.json.find((l) => l.column === 'urlauth_keys.secret'), { column: 'urlauth_keys.secret', byKey: { [first]: 2, [second]: 1 }, plaintext: 0 });
  assert.equal(caducee(['keys', 'retire', second, '--config', config]).code, 2, 'the current key is never retired');
  r = caducee(['keys', 'retire', first, '--config', config]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`blob_meta\\.info:${'e'.repeat(64)}: sealed value does not authenticate`));
  assert.match(r.stderr, new RegExp(`urlauth_keys\\.secret:${late.movedId}: sealed value does not authenticate`));
  assert.match(r.stderr, new RegExp(`0 message file\\(s\\) and 2 row value\\(s\\) still sealed by ${first} \\(failed: 0 file\\(s\\), 2 row value\\(s\\)\\): the key stays`));
  assert.equal(readKeyFile(keyFile).keys.length, 2, 'the key stays');
  // The moved analysis removed (it is recomputed on use), the moved URLAUTH key replaced (RESETKEY,
  // by an operator with the new key): the old key goes.
  {
    const db = SqliteStore.open(dbFile, { sealer: new ValueSealer(readKeyFile(keyFile)) });
    db.db.prepare('DELETE FROM blob_meta WHERE blob_id = ?').run('e'.repeat(64));
    await db.resetUrlAuthKey((db.db.prepare('SELECT user_id FROM urlauth_keys WHERE id = ?').get(late.movedId) as { user_id: number }).user_id, url.folderId);
    await db.close();
  }
  r = caducee(['keys', 'retire', first, '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.json[0], { retired: first, rewrapped: 0, resealed: 0, current: second });
  const ring = readKeyFile(keyFile);
  assert.deepEqual(
    ring.keys.map((k) => k.id),
    [second],
  );
  assert.deepEqual(await rowsRead(ring), plainRows);
  {
    const store = SqliteStore.open(dbFile, { sealer: new ValueSealer(ring) });
    assert.deepEqual(await store.urlAuthKey(late.userId, url.folderId, false), late.key, 'the key the stale operator made, re-sealed by retire');
    await store.close();
  }
  r = caducee(['keys', 'rewrap', '--config', config]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.json[0], { current: second, rewrapped: 0, unchanged: 2, plaintext: 0, failed: 0, rows: { resealed: 0, failed: 0 } });

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

test('keys on PostgreSQL: a URLAUTH key made before encryption is sealed, re-sealed by rotate, and its URL verifies once the old key is retired', async (t) => {
  const db = await pgTestDatabase();
  if ('skip' in db) return t.skip(db.skip);
  try {
    const base = path.join(dir, 'pg');
    const keyFile = path.join(base, 'keys', 'keyring.json');
    const config = path.join(base, 'caducee.yaml');
    mkdirSync(base, { recursive: true });
    writeFileSync(config, `operator:\n  hostname: mx.x.mssante.test\n  domains: [x.mssante.test]\ndataDir: ./data\nstore:\n  kind: postgres\n  url: ${db.url}\n  encryption:\n    keyFile: ${keyFile}\n`);
    const rump = 'imap://claire@mx.x.mssante.test/INBOX/;UIDVALIDITY=1/;UID=1;urlauth=user+claire';
    let userId = 0;
    let folderId = 0;
    let token = '';
    {
      const store = await PgStore.open(db.url);
      const st = await store.createStructure({ idType: 'SIRET', idValue: '13000000000019', name: 'Cabinet' });
      const m = await store.createMailbox({ address: 'accueil@x.mssante.test', type: 'ORG', displayName: 'Accueil', ownerUserId: null, practitionerId: null, structureId: st.id, listeRouge: false });
      userId = (await store.createUser({ login: 'claire', displayName: 'Claire', practitionerId: null, passwordHash: null })).id;
      folderId = (await store.getFolder(m.id, 'INBOX'))!.id;
      token = urlAuthToken((await store.urlAuthKey(userId, folderId, true))!, rump);
      await store.close();
    }
    /** The stored secret's KEK id ('plain' for the key's own bytes). */
    const onDisk = async () => {
      const store = await PgStore.open(db.url);
      try {
        const [r] = await store.connection.query('SELECT secret FROM urlauth_keys WHERE user_id = $1', [userId]);
        return isSealedValue(r.secret) ? valueKeyId(r.secret) : 'plain';
      } finally {
        await store.close();
      }
    };
    const verifies = async (ring: KeyRing) => {
      const store = await PgStore.open(db.url, { sealer: new ValueSealer(ring) });
      try {
        return urlAuthTokenMatches(await store.urlAuthKey(userId, folderId, false), rump, token);
      } finally {
        await store.close();
      }
    };
    let r = caducee(['keys', 'init', '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    const first = r.json[0].current as string;
    r = caducee(['keys', 'status', '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json.find((l) => l.column === 'urlauth_keys.secret'), { column: 'urlauth_keys.secret', byKey: {}, plaintext: 1 });
    r = caducee(['keys', 'encrypt-existing', '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json[0].rows, { sealed: 1, failed: 0 });
    assert.equal(await onDisk(), first);
    r = caducee(['keys', 'rotate', '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    const second = r.json[0].current as string;
    assert.deepEqual(r.json[1].rows, { resealed: 1, failed: 0 });
    assert.equal(await onDisk(), second);
    r = caducee(['keys', 'status', '--config', config]);
    assert.deepEqual(r.json.find((l) => l.column === 'urlauth_keys.secret'), { column: 'urlauth_keys.secret', byKey: { [second]: 1 }, plaintext: 0 });
    r = caducee(['keys', 'retire', first, '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    const ring = readKeyFile(keyFile);
    assert.deepEqual(ring.keys.map((k) => k.id), [second]);
    assert.equal(await verifies(ring), true, 'the URL issued before encryption verifies with the keyring left');
  } finally {
    await db.drop();
  }
});
