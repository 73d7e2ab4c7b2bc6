// Names-only searches with several prefix words (free text's second tier, autocomplete of a
// full name) run on idx_all persons and structures apart when their words expand
// (query-plan.ts namesByNamespace), else on idx_names led by the words' prefix terms ("*mar" for
// "martin…", prefixGuard). The answers must stay those of the in-memory matching
// (directory-model/match.ts) over every entry, in rank order: pairs and triples of prefixes
// taken from one entry (matches) and from different entries (mostly none), compound words and
// prefixes of three characters or fewer (no guard) among them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { importedReader } from '../../../test/directory-fixture.js';
import type { DirectoryEntry } from '../../directory-model/entry.js';
import { allClausesMatch, type Clause } from '../../directory-model/match.js';
import { words } from '../../directory-model/normalize.js';
import { entryTokens } from '../../directory-model/tokens.js';
import { namesByNamespace, planQuery } from './query-plan.js';
import type { SqliteDirectoryReader } from './reader.js';

describe('names-only searches led by the prefix terms of their words', () => {
  let cleanup = () => {};
  let reader: SqliteDirectoryReader;
  let everything: DirectoryEntry[];
  before(async () => {
    const extra = [
      { balType: 'PER', address: 'jp.dalembert2@k.mssante.fr', family: "D'Alembert", given: 'Jean-Pierre' },
      { balType: 'PER', address: 'marie.d.arcy@k.mssante.fr', family: 'D Arcy', given: 'Marie' },
      { balType: 'PER', address: 'martine.saintonge@k.mssante.fr', family: 'Saintonge', given: 'Martine' },
    ];
    ({ reader, everything, cleanup } = await importedReader(extra, 2000));
  });
  after(async () => {
    await reader.close();
    cleanup();
  });

  const clauses = (q: string, prefix = true): Clause[] => words(q).map((w) => ({ column: 'names', words: [w], prefix }));
  const expected = (c: Clause[]) => everything.filter((e) => allClausesMatch(entryTokens(e), c)).map((e) => e.address);
  const found = (c: Clause[], limit = 10_000) => reader.searchSync({ clauses: c }, limit).entries.map((e) => e.address);

  test('the plan leads with an AND of the prefix terms when two words are longer than them', () => {
    const plan = planQuery(clauses('martin saint'), (p) => [p + 'x', p + 'y'], 'names');
    assert.ok(plan);
    assert.deepEqual(plan.expr.op === 'and' && plan.expr.of[0], { op: 'and', of: [{ op: 'prefix', term: 'mar' }, { op: 'prefix', term: 'sai' }] });
    // One long word, or compound words: no guard (nothing to intersect, or not implied).
    const one = planQuery(clauses('martin sa'), (p) => [p + 'x'], 'names');
    assert.ok(one && !JSON.stringify(one.expr).includes('"prefix"'));
    const compound = planQuery(clauses("jean-pierre d'alembert"), (p) => [p + 'x'], 'names');
    assert.ok(compound && !JSON.stringify(compound.expr).includes('"prefix"'));
  });

  test('persons and structures apart: OR(AND of the n_ words, AND of the m_ words), a side without a term dropped', () => {
    const vocab = ['n_martin', 'n_martine', 'n_saint', 'm_saint', 'm_sainte'];
    const expand = (p: string) => vocab.filter((t) => t.startsWith(p));
    const term = (t: string) => ({ op: 'term', term: t });
    assert.deepEqual(namesByNamespace(clauses('mart sain'), expand), {
      op: 'and',
      of: [{ op: 'or', of: [term('n_martin'), term('n_martine')] }, term('n_saint')],
    });
    assert.deepEqual(namesByNamespace(clauses('sain sain'), expand), {
      op: 'or',
      of: [{ op: 'and', of: [term('n_saint'), term('n_saint')] }, { op: 'and', of: [{ op: 'or', of: [term('m_saint'), term('m_sainte')] }, { op: 'or', of: [term('m_saint'), term('m_sainte')] }] }],
    });
    assert.equal(namesByNamespace(clauses('mart zzz'), expand), null);
    assert.equal(namesByNamespace(clauses('martin'), expand), undefined, 'one word: idx_names');
    assert.equal(namesByNamespace(clauses('mart sain'), () => undefined), undefined, 'a word too broad to expand: idx_names');
  });

  test('pairs and triples of prefixes: the same entries as the in-memory rules, in rank order', () => {
    // Name words of every 7th entry, cut to 4–6 characters.
    const names = everything.filter((_, i) => i % 7 === 0).map((e) => entryTokens(e).names.filter((w) => w.length >= 4));
    const queries: string[] = ['mart sain', 'martin saintonge', 'dale jean', "d'al jean-pi", 'darc mari', 'd arc', 'ma sa', 'mar saint', 'zzzz mart'];
    names.forEach((ws, i) => {
      if (ws.length >= 2) queries.push(`${ws[0].slice(0, 4 + (i % 3))} ${ws[1].slice(0, 4)}`); // one entry's: matches
      const other = names[(i * 13 + 5) % names.length];
      if (ws.length && other.length) queries.push(`${ws[0].slice(0, 4)} ${other[other.length - 1].slice(0, 5)}`); // two entries': mostly none
      if (ws.length >= 2 && other.length) queries.push(`${ws[0].slice(0, 5)} ${ws[1].slice(0, 4)} ${other[0].slice(0, 4)}`);
    });
    let nonEmpty = 0;
    for (const q of queries) {
      const c = clauses(q);
      const want = expected(c);
      if (want.length) nonEmpty++;
      assert.deepEqual(found(c), want, q);
      assert.deepEqual(found(c, 3), want.slice(0, 3), `${q}, first page`);
    }
    assert.ok(queries.length > 300 && nonEmpty > 100, `${queries.length} queries, ${nonEmpty} with matches`);
  });
});
