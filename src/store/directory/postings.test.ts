// The snapshot's postings index against a brute-force answer: several segments, chunks boundaries,
// AND / OR / prefix cursors, and the duplicate-address set.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { AddressSet, CHUNK, cursorOf, END, ListCache, postingsDDL, PostingsBuilder, postingsTable, ranksOf, TermTable, type Expr } from './postings.js';

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('postings index', () => {
  const db = new Database(':memory:');
  db.exec(postingsDDL('p'));
  const rand = rng(7);
  const MAX = 5000;
  // Terms of very different frequencies, codes with "_", a term with non-ASCII letters.
  const vocabulary = ['a', 'ab', 'abc', 'abd', 'b', 'ba', 'pp_1', 'pp_2', 'p', 'pa', 'x1', 'x2', 'zé'];
  const freq = [0.9, 0.3, 0.05, 0.002, 0.5, 0.1, 0.01, 0.4, 0.2, 0.6, 0.001, 0.07, 0.02];
  const truth = new Map<string, number[]>(vocabulary.map((t) => [t, []]));
  const builder = new PostingsBuilder(db, 'p', 997); // small segments: terms span several of them
  db.exec('BEGIN');
  for (let rank = 1; rank <= MAX; rank++) {
    vocabulary.forEach((t, i) => {
      if (rand() < freq[i]) {
        builder.add(t, rank);
        builder.add(t, rank); // a repeat in one entry is indexed once
        truth.get(t)!.push(rank);
      }
    });
  }
  builder.flush();
  db.exec('COMMIT');
  const table = postingsTable(db, 'p', MAX);
  const run = (e: Expr) => [...ranksOf(cursorOf(table, e))];
  const term = (t: string): Expr => ({ op: 'term', term: t });
  const set = (t: string) => new Set(truth.get(t));

  it('gives every term its ranks, ascending, across segments and chunks', () => {
    assert.ok(truth.get('a')!.length > 3 * CHUNK);
    for (const t of vocabulary) assert.deepEqual(run(term(t)), truth.get(t), t);
    assert.deepEqual(run(term('absent')), []);
  });

  it('intersects (AND) and unites (OR) in rank order', () => {
    const and = truth.get('a')!.filter((r) => set('x2').has(r) && set('ba').has(r));
    assert.ok(and.length > 0);
    assert.deepEqual(run({ op: 'and', of: [term('a'), term('x2'), term('ba')] }), and);
    const or = [...new Set([...truth.get('abd')!, ...truth.get('x1')!, ...truth.get('pp_1')!])].sort((x, y) => x - y);
    assert.deepEqual(run({ op: 'or', of: [term('abd'), term('x1'), term('pp_1')] }), or);
    const mixed = truth.get('b')!.filter((r) => set('abc').has(r) || set('x2').has(r));
    assert.deepEqual(run({ op: 'and', of: [term('b'), { op: 'or', of: [term('abc'), term('x2')] }] }), mixed);
  });

  it('gives the same answers with long lists read into memory, through loads mid-query and evictions', () => {
    // Budgets: everything fits; a few lists at a time (evictions); none fits (every list refused).
    for (const budget of [1 << 24, 6000, 2500, 100]) {
      const cache = new ListCache(budget);
      const cached = postingsTable(db, 'p', MAX, cache);
      const runCached = (e: Expr) => [...ranksOf(cursorOf(cached, e))];
      for (let pass = 0; pass < 2; pass++) {
        for (const t of vocabulary) assert.deepEqual(runCached(term(t)), truth.get(t), `${t}, budget ${budget}`);
        const and = truth.get('a')!.filter((r) => set('x2').has(r) && set('ba').has(r));
        assert.deepEqual(runCached({ op: 'and', of: [term('a'), term('x2'), term('ba')] }), and);
        const mixed = truth.get('b')!.filter((r) => set('abc').has(r) || set('x2').has(r));
        assert.deepEqual(runCached({ op: 'and', of: [term('b'), { op: 'or', of: [term('abc'), term('x2')] }] }), mixed);
        // Seeks that jump over chunks (galloping), against the list itself.
        const rand = rng(pass + budget);
        for (const t of ['a', 'b', 'pa', 'x2']) {
          const c = cursorOf(cached, term(t));
          const list = truth.get(t)!;
          for (let x = 1; x <= MAX + 1; x += 1 + Math.floor(rand() * 600)) {
            const want = list.find((r) => r >= x) ?? END;
            assert.equal(c.seek(x), want, `${t} seek ${x}, budget ${budget}`);
          }
          // Exactly at chunk ends, skipping 0 to 6 chunks between seeks (a binary search after galloping), and just past them.
          const lasts = db.prepare('SELECT last FROM p WHERE term = ? ORDER BY last').pluck().all(t) as number[];
          const d = cursorOf(cached, term(t));
          for (let i = pass; i < lasts.length; i += 1 + (i % 7)) {
            assert.equal(d.seek(lasts[i]), lasts[i], `${t} seek to a chunk's last ${lasts[i]}`);
            assert.equal(d.seek(lasts[i] + 1), list.find((r) => r > lasts[i]) ?? END);
          }
        }
      }
      assert.ok(cache.size <= budget, `${cache.size} bytes held, budget ${budget}`);
      if (budget === 100) assert.equal(cache.size, 0);
      else assert.ok(cache.size > 0);
    }
  });

  it('reads a prefix as every word of its range, codes ("_") left out', () => {
    const ab = [...new Set([...truth.get('ab')!, ...truth.get('abc')!, ...truth.get('abd')!])].sort((x, y) => x - y);
    assert.deepEqual(run({ op: 'prefix', term: 'ab' }), ab);
    const p = [...new Set([...truth.get('p')!, ...truth.get('pa')!])].sort((x, y) => x - y);
    assert.deepEqual(run({ op: 'prefix', term: 'p' }), p, 'pp_1 and pp_2 are codes, not words starting with p');
    assert.deepEqual(run({ op: 'prefix', term: 'q' }), []);
    // A prefix served by a term of its own (idx_names keeps "*" + prefix).
    assert.deepEqual([...ranksOf(cursorOf(table, { op: 'prefix', term: 'x' }, (t) => (t === 'x' ? 'x1' : undefined)))], truth.get('x1'));
  });
});

describe('postings of numbered and text terms', () => {
  it('mixes both kinds, repeats in one entry indexed once even when a segment fills inside an entry', () => {
    const db = new Database(':memory:');
    db.exec(postingsDDL('q'));
    const numbered = new TermTable();
    const builder = new PostingsBuilder(db, 'q', 7, numbered).trigrams(); // a segment fills inside most entries
    const truth = new Map<string, number[]>();
    const note = (t: string, rank: number) => {
      const l = truth.get(t) ?? truth.set(t, []).get(t)!;
      if (l[l.length - 1] !== rank) l.push(rank);
    };
    const rand = rng(11);
    db.exec('BEGIN');
    for (let rank = 1; rank <= 400; rank++) {
      if (rank % 50 === 1) numbered.append([`n${rank}`, `m${rank}`]); // new numbers arrive with batches
      for (let i = 0; i < 4; i++) {
        // Each term twice in a row within the entry: the segment may be written between the two.
        const id = Math.floor(rand() * numbered.terms.length);
        builder.addId(id, rank);
        builder.addId(id, rank);
        note(numbered.terms[id], rank);
        const text = `t${Math.floor(rand() * 9)}`;
        builder.add(text, rank);
        builder.add(text, rank);
        note(text, rank);
      }
      builder.addTrigrams('abcabcab', rank); // abc, bca, cab twice each
      for (const g of ['abc', 'bca', 'cab']) note(g, rank);
      if (rank % 3 === 0) builder.add('bca', rank); // a text term that is also a trigram (a domain "@ab"): one list
    }
    builder.flush();
    db.exec('COMMIT');
    const table = postingsTable(db, 'q', 400);
    for (const [t, ranks] of truth) assert.deepEqual([...ranksOf(cursorOf(table, { op: 'term', term: t }))], ranks, t);
    assert.ok(numbered.terms.every((_, id) => builder.hasId(id) === truth.has(numbered.terms[id])));
  });
});

describe('duplicate addresses', () => {
  it('finds each repeat exactly, through growth and hash collisions', () => {
    const stored = new Map<number, string>();
    const set = new AddressSet((r) => stored.get(r), 4);
    const addresses = Array.from({ length: 3000 }, (_, i) => `user${i}@h${i % 7}.mssante.fr`);
    addresses.forEach((a, i) => {
      assert.equal(set.addOrFind(a, i + 1), 0);
      stored.set(i + 1, a);
    });
    addresses.forEach((a, i) => assert.equal(set.addOrFind(a, 10_000 + i), i + 1));
    assert.equal(set.addOrFind('user1@h1.mssante.fr.', 20_000), 0);
  });

  it('does not take a hash match for a duplicate without the same stored address', () => {
    // addressOf answers another address for every rank: as if every hash collided.
    const set = new AddressSet(() => 'someone@else.fr', 4);
    assert.equal(set.addOrFind('a@b.fr', 1), 0);
    assert.equal(set.addOrFind('a@b.fr', 2), 0);
  });
});
