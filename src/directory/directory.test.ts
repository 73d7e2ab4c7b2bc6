// Import (streaming, atomic re-import, summary) and search (ranking, tolerance, filters, our
// own mailboxes, liste rouge) against the real SQLite files.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { KNOWN, extractionText, ourMailboxes, writeExtraction } from '../../test/directory-fixture.js';
import { tempDir } from '../../test/helpers.js';
import { SqliteDirectoryReader } from '../store/directory/reader.js';
import { SqliteSnapshotWriter } from '../store/directory/snapshot-writer.js';
import { importExtraction } from './import.js';
import { DirectoryService, PUBLIC } from './service.js';

const imp = async (dataDir: string, file: string, threaded = true) => importExtraction({ file, writer: await SqliteSnapshotWriter.open(dataDir, { threaded }) });

describe('directory import', () => {
  let dir: string;
  let cleanup = () => {};
  before(() => ({ dir, cleanup } = tempDir()));
  after(() => cleanup());

  test('a ZIP with BOM, CRLF and suffixed headers: summary with rejected line numbers and reasons', async () => {
    const file = writeExtraction(dir, 'ext.zip', extractionText(), true);
    const s = await imp(path.join(dir, 'a'), file);
    assert.equal(s.sourceEntry, 'Extraction_Correspondance_MSSante_202501010000.txt');
    assert.equal(s.linesRead, KNOWN.length + 2);
    assert.equal(s.imported, KNOWN.length);
    assert.equal(s.rejected, 2);
    assert.deepEqual(
      s.rejections.map((r) => r.line),
      [5, KNOWN.length + 3],
    );
    assert.match(s.rejections[0].reason, /unknown Type de BAL "XYZ"/);
    assert.match(s.rejections[1].reason, /duplicate Adresse BAL eloise\.lecoeur@medecin\.mssante\.fr \(first on line 2\)/);
    assert.deepEqual([s.added, s.removed, s.changed], [KNOWN.length, 0, 0]);
    assert.deepEqual(s.missingColumns, []);
  });

  test('the same file in one thread gives the same snapshot', async () => {
    const file = writeExtraction(dir, 'ext.txt', extractionText());
    const s = await imp(path.join(dir, 'b'), file, false);
    assert.equal(s.imported, KNOWN.length);
    assert.equal(s.rejected, 2);
  });

  test('lines read while the worker starts are kept; a worker that cannot start leaves the import to this thread', async () => {
    // 20,000 lines more than the fixture: about ten batches, read while the worker boots.
    const file = writeExtraction(dir, 'boot.zip', extractionText([], { noise: 20_000 }), true);
    const threaded = await imp(path.join(dir, 'boot-a'), file);
    const single = await imp(path.join(dir, 'boot-b'), file, false);
    const reasons: string[] = [];
    const writer = await SqliteSnapshotWriter.open(path.join(dir, 'boot-c'), {
      workerModule: 'data:text/javascript,throw new Error("no worker today")',
      onFallback: (r) => reasons.push(r),
    });
    const fallback = await importExtraction({ file, writer });
    assert.match(reasons.join('\n'), /import worker unavailable \(.*no worker today.*\); importing in one thread/);
    for (const s of [threaded, fallback]) assert.deepEqual([s.linesRead, s.imported, s.rejected], [single.linesRead, single.imported, single.rejected]);
    assert.ok(single.imported > 20_000);
    const counts = await Promise.all(['boot-a', 'boot-b', 'boot-c'].map(async (d) => {
      const r = new SqliteDirectoryReader(path.join(dir, d), { recheckMs: 0 });
      const n = [await r.count(), (await r.byAddress(KNOWN[3].address!))?.family];
      await r.close();
      return n;
    }));
    assert.deepEqual(counts[0], counts[1]);
    assert.deepEqual(counts[2], counts[1]);
    assert.deepEqual(readdirSync(path.join(dir, 'boot-c')).sort(), ['directory.sqlite']);
  });

  test('re-import: added / removed / changed, switched atomically under a reader that stays open', async () => {
    const dataDir = path.join(dir, 'c');
    await imp(dataDir, writeExtraction(dir, 'v1.txt', extractionText()));
    const reader = new SqliteDirectoryReader(dataDir, { recheckMs: 0 });
    assert.equal(await reader.count(), KNOWN.length);
    const changed = { ...KNOWN[4], l6: '69008 LYON', postalCode: '69008' };
    const v2 = extractionText([{ balType: 'ORG', address: 'accueil@chu-saint-martin.mssante.fr', stId: '1750712184', stIdType: '1', legalName: 'CHU' }], {
      omit: [KNOWN[8].address!],
      change: changed,
    });
    const s = await imp(dataDir, writeExtraction(dir, 'v2.txt', v2));
    assert.deepEqual([s.added, s.removed, s.changed], [1, 1, 1]);
    assert.equal(await reader.count(), KNOWN.length, 'the running reader now serves the new snapshot');
    assert.equal((await reader.byAddress('paul.martin@medecin.mssante.fr'))?.postalCode, '69008');
    assert.equal(await reader.byAddress(KNOWN[8].address!), undefined);

    // A failed import (not an extraction) leaves the snapshot in force, and no leftovers.
    const before = (await reader.info())!.generation;
    await assert.rejects(imp(dataDir, writeExtraction(dir, 'bad.txt', 'hello|world\r\nx|y\r\n')), /not an extraction header/);
    await assert.rejects(imp(dataDir, writeExtraction(dir, 'empty.txt', extractionText().split('\r\n')[0] + '\r\n')), /no valid line/);
    writeFileSync(path.join(dir, 'trunc.zip'), (await import('node:fs')).readFileSync(path.join(dir, 'ext.zip')).subarray(0, 200));
    await assert.rejects(imp(dataDir, path.join(dir, 'trunc.zip')), /truncated|corrupt|not a readable ZIP|without an extraction/);
    assert.equal((await reader.info())!.generation, before);
    assert.equal(await reader.count(), KNOWN.length);
    assert.deepEqual(readdirSync(dataDir).sort(), ['directory.sqlite']);
    await reader.close();
  });

  test('a failure in the middle of a large import (after early write-backs) keeps the previous snapshot, and no leftovers', async () => {
    const dataDir = path.join(dir, 'mid');
    await imp(dataDir, writeExtraction(dir, 'mid-v1.txt', extractionText()));
    const reader = new SqliteDirectoryReader(dataDir, { recheckMs: 0 });
    const before = (await reader.info())!.generation;
    // 60,000 lines: some 30 batches reach the worker (a write-back every 24) before the ZIP ends.
    const big = writeExtraction(dir, 'mid-big.zip', extractionText([], { noise: 60_000 }), true);
    const { readFileSync, statSync } = await import('node:fs');
    writeFileSync(path.join(dir, 'mid-cut.zip'), readFileSync(big).subarray(0, Math.floor(statSync(big).size * 0.8)));
    let read = 0;
    const writer = await SqliteSnapshotWriter.open(dataDir);
    await assert.rejects(
      importExtraction({ file: path.join(dir, 'mid-cut.zip'), writer, onProgress: (p) => (read = Math.max(read, p.lines)) }),
      /ends before the end|truncated|corrupt|not a readable ZIP/,
    );
    assert.ok(read > 48_000, `${read} lines read before the failure`);
    assert.equal((await reader.info())!.generation, before);
    assert.equal(await reader.count(), KNOWN.length);
    assert.deepEqual(readdirSync(dataDir).sort(), ['directory.sqlite']);
    // The same file whole imports (the failure was the cut, not the size).
    const s = await imp(dataDir, big);
    assert.ok(s.imported > 60_000);
    assert.equal(await reader.count(), s.imported);
    await reader.close();
  });

  test('re-import over a snapshot without entry digests (an older version): the same counts, from the entries', async () => {
    const dataDir = path.join(dir, 'c2');
    await imp(dataDir, writeExtraction(dir, 'w1.txt', extractionText()));
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(path.join(dataDir, 'directory.sqlite'));
    db.exec('DROP TABLE entry_digest');
    db.close();
    const v2 = extractionText([{ balType: 'ORG', address: 'accueil@chu-saint-martin.mssante.fr', stId: '1750712184', stIdType: '1', legalName: 'CHU' }], {
      omit: [KNOWN[8].address!, KNOWN[2].address!],
      change: { ...KNOWN[4], l6: '69008 LYON', postalCode: '69008' },
    });
    const s = await imp(dataDir, writeExtraction(dir, 'w2.txt', v2));
    assert.deepEqual([s.added, s.removed, s.changed], [1, 2, 1]);
    // And the next one compares by digests again (the new snapshot has them).
    const s3 = await imp(dataDir, writeExtraction(dir, 'w3.txt', extractionText()));
    assert.deepEqual([s3.added, s3.removed, s3.changed], [2, 1, 1]);
  });

  test('a second import while one runs is refused; a stale lock is taken over', async () => {
    const dataDir = path.join(dir, 'd');
    const w = await SqliteSnapshotWriter.open(dataDir, { threaded: false });
    await assert.rejects(SqliteSnapshotWriter.open(dataDir), /another directory import is running/);
    await w.abort();
    writeFileSync(path.join(dataDir, 'directory.sqlite.lock'), '999999999');
    const w2 = await SqliteSnapshotWriter.open(dataDir, { threaded: false });
    await w2.abort();
    assert.ok(!existsSync(path.join(dataDir, 'directory.sqlite.lock')));
  });
});

describe('directory search', () => {
  let dir: string;
  let cleanup = () => {};
  let svc: DirectoryService;
  let ownerId: number;
  let store: Awaited<ReturnType<typeof ourMailboxes>>['store'];
  let core: Awaited<ReturnType<typeof ourMailboxes>>['core'];
  before(async () => {
    ({ dir, cleanup } = tempDir());
    await imp(dir, writeExtraction(dir, 'ext.txt', extractionText([], { noise: 3000 })));
    ({ store, core, ownerId } = await ourMailboxes(dir));
    svc = new DirectoryService(new SqliteDirectoryReader(dir), store);
  });
  after(async () => {
    await store.close();
    await svc.snapshot.close();
    cleanup();
  });
  const addresses = async (p: Parameters<DirectoryService['search']>[0], limit = 20, viewer = PUBLIC) => (await svc.search(p, { limit }, viewer)).entries.map((e) => e.address);

  test('accent- and case-insensitive, prefix, tolerant of a missing hyphen or apostrophe', async () => {
    for (const q of ['eloise lecoeur', 'ÉLOÏSE LECŒUR', 'lecoe', 'LeCoeur Elo']) assert.ok((await addresses({ q })).includes('eloise.lecoeur@medecin.mssante.fr'), q);
    for (const q of ['dalembert', "d'alembert", 'd alembert', 'jeanpierre', 'jean pierre dal', 'jean-pi']) assert.ok((await addresses({ q })).includes('jp.dalembert@medecin.mssante.fr'), q);
  });

  test('ranked: whole name words, then name prefixes, then other fields; ours first in a tier', async () => {
    const r = await addresses({ q: 'martin' }, 100);
    const paul = r.indexOf('paul.martin@medecin.mssante.fr');
    const zoe = r.indexOf('zoe.martinez@infirmier.mssante.fr');
    const luc = r.indexOf('luc.durand@chu-saint-martin.mssante.fr'); // "martin" only in the structure's name
    assert.ok(paul >= 0 && zoe > paul && luc > zoe, `${paul} < ${zoe} < ${luc}`);
    const elo = await addresses({ q: 'lecoeur' });
    assert.equal(elo[0], 'eloise.lecoeur@x.mssante.test', 'our own mailbox first');
  });

  test('profession / savoir-faire (code or words), city, postal code, structure, type', async () => {
    assert.ok((await svc.search({ profession: '60', city: 'lyon' }, { limit: 50 })).entries.every((e) => e.professionCode === '60' && /LYON/.test(e.l6)));
    assert.ok((await addresses({ profession: 'kine', structure: '750712184' })).includes('luc.durand@chu-saint-martin.mssante.fr'));
    assert.ok((await addresses({ speciality: 'SM04', postalCode: '750' })).includes('eloise.lecoeur@medecin.mssante.fr'));
    assert.ok((await addresses({ speciality: 'cardiologie', city: 'saint-et' })).includes('eloise.lecoeur@chu-saint-martin.mssante.fr'));
    assert.ok((await addresses({ city: "l'hay les" })).includes('jp.dalembert@medecin.mssante.fr'));
    const orgs = await svc.search({ structure: 'chu saint-martin', types: ['ORG', 'APP'] }, { limit: 20 });
    assert.deepEqual(new Set(orgs.entries.map((e) => e.address)), new Set(['urgences@chu-saint-martin.mssante.fr', 'dmp-app@chu-saint-martin.mssante.fr']));
  });

  test('address :contains and :exact', async () => {
    assert.deepEqual(await addresses({ address: 'JP.DALEMBERT@medecin.mssante.fr', addressMatch: 'exact' }), ['jp.dalembert@medecin.mssante.fr']);
    assert.ok((await addresses({ address: 'alembert@medec' })).includes('jp.dalembert@medecin.mssante.fr'));
    assert.ok((await addresses({ address: 'te.lecoeur' })).length === 0);
    assert.ok((await svc.search({ address: 'chu-saint-martin', q: 'durand' }, { limit: 5 })).entries.every((e) => e.address.includes('chu-saint-martin') && e.family === 'Durand'));
  });

  test('autocomplete returns at most ten', async () => {
    const r = await svc.autocomplete('m', 50);
    assert.equal(r.length, 10);
    assert.deepEqual(await svc.autocomplete('   '), []);
  });

  test('paging: offsets give disjoint pages; a page past the limit is refused', async () => {
    const p1 = await addresses({ q: 'ma' }, 10);
    const p2 = (await svc.search({ q: 'ma' }, { limit: 10, offset: 10 })).entries.map((e) => e.address);
    assert.equal(p1.length, 10);
    assert.equal(p2.length, 10);
    assert.equal(new Set([...p1, ...p2]).size, 20);
    await assert.rejects(svc.search({ q: 'ma' }, { limit: 10, offset: 995 }), /at most 1000 results/);
  });

  test('liste rouge: never public; its owner and administrators see it', async () => {
    const q = { q: 'secret rouge' };
    assert.deepEqual(await addresses(q), []);
    assert.deepEqual(await addresses({ address: 'rouge.secret', addressMatch: 'contains' }), []);
    assert.equal(await svc.byAddress('rouge.secret@x.mssante.test'), undefined);
    assert.deepEqual(await addresses(q, 20, { userId: ownerId }), ['rouge.secret@x.mssante.test']);
    assert.deepEqual(await addresses(q, 20, { userId: ownerId + 1 }), []);
    assert.deepEqual(await addresses(q, 20, { admin: true }), ['rouge.secret@x.mssante.test']);
    assert.deepEqual(await svc.practitionerEntries('810000000099'), []);
  });

  test('a mailbox put on the liste rouge disappears from public output at the next refresh', async () => {
    assert.deepEqual(await addresses({ address: 'cardio@x.mssante.test', addressMatch: 'exact' }), ['cardio@x.mssante.test']);
    assert.ok((await addresses({ q: 'cardiologie' }, 100)).includes('cardio@x.mssante.test'), 'found by its service while public');
    // Core.setListeRouge: what `caducee mailbox set --liste-rouge` calls.
    assert.equal((await core.setListeRouge('cardio@x.mssante.test', true)).listeRouge, true);
    svc.invalidateLocal();
    assert.deepEqual(await addresses({ address: 'cardio@x.mssante.test', addressMatch: 'exact' }), []);
    assert.ok(!(await addresses({ q: 'cardiologie' }, 100)).includes('cardio@x.mssante.test'), 'not found by its service either');
    assert.deepEqual(await addresses({ address: 'cardio@x.mssante.test', addressMatch: 'exact' }, 20, { admin: true }), ['cardio@x.mssante.test']);
    await core.setListeRouge('cardio@x.mssante.test', false);
    svc.invalidateLocal();
    assert.deepEqual(await addresses({ address: 'cardio@x.mssante.test', addressMatch: 'exact' }), ['cardio@x.mssante.test'], 'public again off the liste rouge');
  });

  test('our mailboxes merge with the national data of the same practitioner', async () => {
    const all = (await svc.practitionerEntries('810000000001')).map((e) => `${e.source}:${e.address}`);
    assert.deepEqual(all, [
      'local:eloise.lecoeur@x.mssante.test',
      'national:eloise.lecoeur@medecin.mssante.fr',
      'national:cabinet.lecoeur@cabinet-paris.mssante.fr',
      'national:eloise.lecoeur@chu-saint-martin.mssante.fr',
    ]);
  });
});
