// Schema 7: practitioner and structure conditions ("pp_…", "st_…" code clauses) are answered
// from the entries' indexes on pp_key / st_key for keys of [0-9A-Z], from idx_all's lists for the
// others (vocabulary.ts keyIndexed, reader.ts keyCursor). The answers must be those of one
// postings list per key: every entry whose code token is the clause's, in rank order — checked
// here against the in-memory matching (directory-model/match.ts) over every entry.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { KNOWN, extractionText, importedReader, writeExtraction } from '../../../test/directory-fixture.js';
import type { DirectoryEntry, ExtractionFields, ResourceKind } from '../../directory-model/entry.js';
import { allClausesMatch, type Clause } from '../../directory-model/match.js';
import { codeToken } from '../../directory-model/normalize.js';
import { entryTokens } from '../../directory-model/tokens.js';
import { importExtraction } from '../../directory/import.js';
import { SqliteDirectoryReader } from './reader.js';
import { SqliteSnapshotWriter } from './snapshot-writer.js';
import { SNAPSHOT_FILE } from './snapshot-format.js';
import { keyIndexed } from './vocabulary.js';

const code = (prefix: string, key: string): Clause => {
  const t = codeToken(prefix, key);
  return { column: 'codes', words: [{ parts: [t], joined: t }], prefix: false };
};

/** Keys that fold to the same token as indexed ones ("1750.712184", "abc1" → "st_1750712184", "pp_abc1"), and others. */
function extraLines(): Partial<ExtractionFields>[] {
  const out: Partial<ExtractionFields>[] = [];
  const st = (stId: string, i: number, balType = 'ORG') => ({ balType, address: `s${i}.${stId.replace(/\./g, '-dot-')}@k.mssante.fr`, stIdType: '1', stId, legalName: `Structure ${i}` });
  const pp = (ppNatId: string, i: number, stId = '') => ({ balType: 'PER', address: `p${i}.${ppNatId.replace(/\./g, '-dot-')}@k.mssante.fr`, ppIdType: '8', ppNatId, family: `Nom${i}`, given: 'Anne', ...(stId ? { stIdType: '1', stId } : {}) });
  // A structure with more entries than a slice of its index (KEY_SLICE = 64), of every kind,
  // interleaved with its dotted twin and with entries of other keys.
  for (let i = 0; i < 150; i++) {
    out.push(i % 3 === 0 ? st('1750712184', i) : pp(`8100${i}`, i, '1750712184'));
    if (i % 10 === 0) out.push(st('1750.712184', i));
    if (i % 7 === 0) out.push(pp('810000000001', 1000 + i, i % 2 ? '1750712184' : ''));
  }
  out.push(pp('abc1', 1), pp('ABC1', 2), pp('8.10', 3), pp('810', 4), st('ST.9', 5, 'APP'), st('st9', 6), st('ST9', 7));
  return out;
}

describe('practitioner and structure conditions from the entries indexes (schema 7)', () => {
  let dir: string;
  let cleanup = () => {};
  let reader: SqliteDirectoryReader;
  let everything: DirectoryEntry[];
  before(async () => {
    let imported: number;
    ({ dir, reader, everything, imported, cleanup } = await importedReader(extraLines(), 2000));
    assert.ok(imported > 2000);
  });
  after(async () => {
    await reader.close();
    cleanup();
  });

  /** The entries matching, by the in-memory rules, in rank (file) order. */
  const expected = (clauses: Clause[], kinds?: ResourceKind[]) =>
    everything.filter((e) => (!kinds || kinds.includes(e.kind)) && allClausesMatch(entryTokens(e), clauses)).map((e) => e.address);
  const found = (clauses: Clause[], kinds?: ResourceKind[], limit = 10_000) => reader.searchSync({ clauses, kinds }, limit).entries.map((e) => e.address);

  test('keys of [0-9A-Z] have no postings row; the others keep theirs', () => {
    const db = new Database(path.join(dir, 'data', SNAPSHOT_FILE), { readonly: true });
    try {
      const terms = (db.prepare("SELECT DISTINCT term FROM idx_all WHERE term >= 'pp_' AND term < 'pp`' OR term >= 'st_' AND term < 'st`'").pluck().all() as string[]).sort();
      assert.deepEqual(terms, ['pp_810', 'pp_abc1', 'st_1750712184', 'st_st9']);
    } finally {
      db.close();
    }
    assert.ok(keyIndexed('810000000001') && keyIndexed('1750712184') && keyIndexed('ABC1'));
    assert.ok(!keyIndexed('abc1') && !keyIndexed('8.10') && !keyIndexed('') && !keyIndexed('É1'));
  });

  test('every key of the file, alone, with a kind, with another condition, and absent keys: the same entries as the in-memory rules', () => {
    const keys = new Set<string>(['0', '99999', 'ZZZ', '1750712184', '1750.712184', 'abc1', 'ABC1', '8.10', 'ST.9']);
    for (const e of everything) {
      if (e.ppKey) keys.add('p' + e.ppKey);
      if (e.stKey) keys.add('s' + e.stKey);
    }
    let nonEmpty = 0;
    for (const k of keys) {
      const prefixes = k.length > 1 && (k[0] === 'p' || k[0] === 's') ? [k[0] === 'p' ? 'pp_' : 'st_'] : ['pp_', 'st_'];
      const key = prefixes.length === 1 ? k.slice(1) : k;
      for (const prefix of prefixes) {
        const c = code(prefix, key);
        const want = expected([c]);
        if (want.length) nonEmpty++;
        assert.deepEqual(found([c]), want, `${prefix}${key}`);
      }
    }
    assert.ok(nonEmpty > 1000);
    const big = code('st_', '1750712184');
    assert.ok(expected([big]).length > 150, 'several slices of the index');
    for (const kinds of [['Organization'], ['PractitionerRole'], ['Practitioner', 'Organization']] as ResourceKind[][]) assert.deepEqual(found([big], kinds), expected([big], kinds), kinds.join());
    // In an AND with other lists: the leapfrog seeks into the middle of the index's slices.
    const t = (v: string): Clause => ({ column: 'codes', words: [{ parts: ['t_' + v], joined: 't_' + v }], prefix: false });
    for (const other of [t('org'), t('per'), code('pp_', '810000000001'), { column: 'names', words: [{ parts: ['nom147'], joined: 'nom147' }], prefix: false } as Clause]) {
      const want = expected([big, other]);
      assert.deepEqual(found([big, other]), want, JSON.stringify(other));
      assert.deepEqual(found([other, big]), want, JSON.stringify(other));
    }
    assert.ok(expected([code('pp_', '810000000001'), big]).length >= 10);
    // Several structures at once (the `structure` filter's identifier forms): an OR.
    const either: Clause = { column: 'codes', words: ['st_1750712184', 'st_st9', 'st_9'].map((x) => ({ parts: [x], joined: x })), prefix: false };
    assert.deepEqual(found([either]), expected([either]));
    // A page: the first entries in rank order, and `more`.
    const page = reader.searchSync({ clauses: [big] }, 70);
    assert.deepEqual(
      page.entries.map((e) => e.address),
      expected([big]).slice(0, 70),
    );
    assert.equal(page.more, true);
  });

  test('a snapshot without any such list (every key of [0-9A-Z]): the entries indexes alone', async () => {
    const dataDir = path.join(dir, 'plain');
    await importExtraction({ file: writeExtraction(dir, 'plain.txt', extractionText([], { noise: 300 })), writer: await SqliteSnapshotWriter.open(dataDir, { threaded: false }) });
    const db = new Database(path.join(dataDir, SNAPSHOT_FILE), { readonly: true });
    assert.equal(db.prepare("SELECT COUNT(*) FROM idx_all WHERE term >= 'pp_' AND term < 'pp`' OR term >= 'st_' AND term < 'st`'").pluck().get(), 0);
    db.close();
    const plain = new SqliteDirectoryReader(dataDir, { recheckMs: 0, warm: false });
    try {
      const all = plain.searchSync({ clauses: [] }, 100_000).entries;
      let n = 0;
      for (const c of [...new Set(all.flatMap((e) => [e.ppKey && codeToken('pp_', e.ppKey), e.stKey && codeToken('st_', e.stKey)]).filter(Boolean))].map((t) => code(t.slice(0, 3), t.slice(3)))) {
        const want = all.filter((e) => allClausesMatch(entryTokens(e), [c])).map((e) => e.address);
        assert.deepEqual(
          plain.searchSync({ clauses: [c] }, 10_000).entries.map((e) => e.address),
          want,
          c.words[0].joined,
        );
        n += want.length;
      }
      assert.ok(n > 300);
    } finally {
      await plain.close();
    }
  });

  test('FHIR lookups by key still read the entries indexes', async () => {
    assert.deepEqual(
      (await reader.byStructure('1750712184', 'Organization', 1000)).map((e) => e.address),
      everything.filter((e) => e.stKey === '1750712184' && e.kind === 'Organization').map((e) => e.address),
    );
    assert.deepEqual(
      (await reader.byPractitioner('810000000001', 1000)).map((e) => e.address),
      everything.filter((e) => e.ppKey === '810000000001').map((e) => e.address),
    );
    assert.ok(KNOWN.length > 0);
  });

  test('the statements walk the key indexes in rank order (no sort, no table scan)', () => {
    const db = new Database(path.join(dir, 'data', SNAPSHOT_FILE), { readonly: true });
    try {
      const plan = (sql: string, ...params: unknown[]) => (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((r) => r.detail).join(' | ');
      // The reader's statements (reader.ts keyCursor, byStructure).
      const q = (column: string) => `SELECT rank FROM entries WHERE ${column} = ? AND ${column} <> '' AND rank >= ? ORDER BY rank LIMIT 64`;
      assert.match(plan(q('pp_key'), '1', 1), /^SEARCH entries USING COVERING INDEX entries_pp \(pp_key=\? AND rank>\?\)$/);
      assert.match(plan(q('st_key'), '1', 1), /^SEARCH entries USING COVERING INDEX entries_st \(st_key=\? AND rank>\?\)$/);
      assert.match(plan("SELECT * FROM entries WHERE st_key = ? AND st_key <> '' AND kind = ? ORDER BY rank LIMIT ?", '1', 'Organization', 5), /^SEARCH entries USING INDEX entries_st \(st_key=\?\)$/);
    } finally {
      db.close();
    }
  });

  test('a schema 6 snapshot (before the upgrade) is still served, its key conditions read from idx_all; schema 5 is refused', async () => {
    // A copy of this schema 7 file labelled 6: the reader must open it and take the schema 6 path
    // (every key's list in idx_all, which a real schema 6 file has). Here only the odd keys have
    // one, so a key of [0-9A-Z] finds only its odd-keyed twins on that path (all on schema 7's).
    const { copyFileSync, mkdirSync } = await import('node:fs');
    const label = (name: string, schema: number) => {
      const d = path.join(dir, name);
      mkdirSync(d, { recursive: true });
      copyFileSync(path.join(dir, 'data', SNAPSHOT_FILE), path.join(d, SNAPSHOT_FILE));
      const db = new Database(path.join(d, SNAPSHOT_FILE));
      db.prepare("UPDATE meta SET value = ? WHERE key = 'schema'").run(String(schema));
      db.close();
      return d;
    };
    const errors: string[] = [];
    const six = new SqliteDirectoryReader(label('six', 6), { recheckMs: 0, warm: false, onError: (m) => errors.push(m) });
    const five = new SqliteDirectoryReader(label('five', 5), { recheckMs: 0, warm: false, onError: (m) => errors.push(m) });
    try {
      assert.equal(six.searchSync({ clauses: [] }, 100_000).entries.length, everything.length);
      const indexed = code('st_', '1750712184');
      assert.ok(found([indexed]).length > 150);
      /** The entries of `c` that have a list in idx_all (their key not of [0-9A-Z]). */
      const listedOf = (c: Clause, key: 'ppKey' | 'stKey') => {
        const listed = new Set(everything.filter((e) => e[key] && !keyIndexed(e[key])).map((e) => e.address));
        return expected([c]).filter((a) => listed.has(a));
      };
      const onlyListed = listedOf(indexed, 'stKey');
      assert.ok(onlyListed.length > 0 && onlyListed.length < found([indexed]).length);
      assert.deepEqual(
        six.searchSync({ clauses: [indexed] }, 10_000).entries.map((e) => e.address),
        onlyListed,
        'schema 6: the key read from idx_all alone (here only the dotted twin has a list), not from the entries index',
      );
      const odd = code('pp_', 'abc1');
      assert.deepEqual(six.searchSync({ clauses: [odd] }, 10_000).entries.map((e) => e.address), listedOf(odd, 'ppKey'));
      assert.equal(listedOf(odd, 'ppKey').length, 1);
      assert.deepEqual(errors, []);
      assert.equal(five.searchSync({ clauses: [] }, 10).entries.length, 0);
      assert.match(errors.join('\n'), /schema version 5, expected 7/);
    } finally {
      await six.close();
      await five.close();
    }
  });
});
