// Address `:contains` through idx_addr (the local part's trigrams with its "@", the domain as one
// term) against a brute-force answer over a generated extraction: every kind of value — inside
// the local part, across the "@", inside or at the start of a domain, short, absent.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../../../test/helpers.js';
import { writeGeneratedExtraction } from '../../directory/generate.js';
import { importExtraction } from '../../directory/import.js';
import type { ResourceKind } from '../../directory-model/entry.js';
import { containsExpression, Domains, DOMAINS_MAX } from './query-plan.js';
import { SqliteDirectoryReader } from './reader.js';
import { SqliteSnapshotWriter } from './snapshot-writer.js';

describe('address contains', () => {
  let dir: string;
  let cleanup = () => {};
  let reader: SqliteDirectoryReader;
  let addresses: string[] = [];
  let kinds: ResourceKind[] = [];
  before(async () => {
    ({ dir, cleanup } = tempDir());
    const file = path.join(dir, 'ext.txt');
    await writeGeneratedExtraction(file, { lines: 3000, seed: 5 });
    await importExtraction({ file, writer: await SqliteSnapshotWriter.open(path.join(dir, 'data'), { threaded: false }) });
    reader = new SqliteDirectoryReader(path.join(dir, 'data'));
    const all = await reader.search({ clauses: [] }, 10_000);
    addresses = all.entries.map((e) => e.address.toLowerCase());
    kinds = all.entries.map((e) => e.kind);
  });
  after(async () => {
    await reader?.close();
    cleanup();
  });

  it('finds exactly the addresses containing the value, in rank order', async () => {
    assert.ok(addresses.length > 2900);
    const values = new Set<string>(['zzqx', '@@', 'a', 'e.', 'mssante', '.fr', '@', 'sante.fr', 'x@y']);
    for (let i = 0; i < addresses.length; i += 97) {
      const a = addresses[i];
      const at = a.indexOf('@');
      values.add(a.slice(1, 7)); // inside the local part
      values.add(a.slice(at - 3, at + 4)); // across the "@"
      values.add(a.slice(at - 1, at + 1)); // "x@"
      values.add(a.slice(at, at + 5)); // "@" + the domain's start
      values.add(a.slice(at + 2, at + 9)); // inside the domain
      values.add(a.slice(at + 1)); // the whole domain
    }
    for (const v of values) {
      const expected = addresses.filter((a) => a.includes(v)).slice(0, 500);
      const got = (await reader.search({ clauses: [], address: { value: v, mode: 'contains' } }, 500)).entries.map((e) => e.address.toLowerCase());
      assert.deepEqual(got, expected, JSON.stringify(v));
    }
  });

  it('a value the index cannot narrow reads at most scanRows addresses, and then says `more`', async () => {
    // Values of fewer than 3 characters, or inside more than DOMAINS_MAX domains, are scanned:
    // capped so that no value reads the whole directory on the shared event loop.
    const capped = new SqliteDirectoryReader(path.join(dir, 'data'), { scanRows: 1000, warm: false });
    try {
      assert.equal(containsExpression('zq', new Domains([])), 'scan');
      const within = addresses.slice(0, 1000);
      for (const v of ['zq', 'ab', 'e.', 'a']) {
        const r = await capped.search({ clauses: [], address: { value: v, mode: 'contains' } }, 500);
        const inCap = within.filter((a) => a.includes(v));
        assert.deepEqual(r.entries.map((e) => e.address.toLowerCase()), inCap.slice(0, 500), v);
        assert.equal(r.more, true, `${v}: more, whether the page filled or the cap was reached`);
        assert.equal(r.capped, inCap.length <= 500 ? true : undefined, `${v}: capped only when the cap stopped it`);
      }
      // A kind no scanned address has: nothing found, and `more` (the rest was not read).
      const none = await capped.search({ clauses: [], address: { value: 'zq', mode: 'contains' }, kinds: ['Organization'] }, 10);
      assert.deepEqual(none, { entries: [], more: true, capped: true });
      // The default cap (far above this directory) reads it all: a complete answer, no `more`.
      const full = await reader.search({ clauses: [], address: { value: 'ab', mode: 'contains' } }, 3000);
      assert.deepEqual(full.entries.map((e) => e.address.toLowerCase()), addresses.filter((a) => a.includes('ab')));
      assert.equal(full.more, false);
    } finally {
      await capped.close();
    }
  });

  it('finds the domains containing or starting with a value as a scan of them all would', () => {
    // Unsorted, with repeated trigrams, non-ASCII letters, more matches than DOMAINS_MAX.
    const terms: string[] = [];
    for (let i = 0; i < 400; i++) terms.push(`@${['cabinet', 'clinique', 'ehpad', 'cé', 'aaaa'][i % 5]}-${(i * 7919) % 1000}.mssante.fr`);
    terms.push('@xn--caf-dma.fr', '@café.fr', '@a.b', '@abcxbcd.fr', '@abcd.fr'); // abc and bcd without abcd
    const d = new Domains(terms);
    const sliced = new Domains(terms); // its trigram index built in slices, as the reader's warm-up does
    let slices = 0;
    while (!sliced.indexSome(7)) slices++;
    assert.ok(slices > 10);
    const sorted = [...terms].sort();
    const values = ['abcd', 'bcxb', 'abinet', 'cabinet-1', 'aaa', 'aaaa-', '.mssante.fr', 'é', 'cé-', 'café', 'né', '@c', '@cl', '@café', '@a.b', '-9', 'zzz', 'e-1', '@', 'fr', 'b'];
    for (const v of values) {
      const contains = sorted.filter((t) => t.includes(v)).slice(0, DOMAINS_MAX + 1);
      assert.deepEqual(d.matching(v, false), contains, `contains ${v}`);
      assert.deepEqual(sliced.matching(v, false), contains, `contains ${v}, index built in slices`);
      const starts = sorted.filter((t) => t.startsWith(v)).slice(0, DOMAINS_MAX + 1);
      assert.deepEqual(d.matching(v, true), starts, `starts ${v}`);
    }
  });

  it('keeps only the resource kinds asked for (FHIR: the resource that carries the mailbox)', async () => {
    const values = ['mssante', 'e.', 'cabinet', 'secr', '@medecin', 'in@', 'zzqx'];
    for (let i = 0; i < addresses.length; i += 211) values.push(addresses[i].slice(1, 7));
    const sets: ResourceKind[][] = [['Organization'], ['Practitioner'], ['PractitionerRole'], ['Organization', 'PractitionerRole'], ['Practitioner', 'PractitionerRole']];
    let nonEmpty = 0;
    for (const v of values)
      for (const ks of sets) {
        const expected = addresses.filter((a, i) => a.includes(v) && ks.includes(kinds[i])).slice(0, 300);
        const got = (await reader.search({ clauses: [], address: { value: v, mode: 'contains' }, kinds: ks }, 300)).entries.map((e) => e.address.toLowerCase());
        assert.deepEqual(got, expected, `${JSON.stringify(v)} ${ks.join(',')}`);
        if (expected.length) nonEmpty++;
      }
    assert.ok(nonEmpty > 20);
  });

  it('plans: nothing for two "@" or an unknown domain, a scan when too short, domains by one search', () => {
    const d = new Domains(['@a.mssante.fr', '@b.mssante.fr', '@medecin.mssante.fr']);
    assert.deepEqual(d.matching('@m', true), ['@medecin.mssante.fr']);
    assert.deepEqual(d.matching('mssante', false), ['@a.mssante.fr', '@b.mssante.fr', '@medecin.mssante.fr']);
    assert.deepEqual(d.matching('a.m', false), ['@a.mssante.fr']);
    assert.equal(containsExpression('a@b@c', d), null);
    assert.equal(containsExpression('x@zz', d), null);
    assert.equal(containsExpression('ab', d), 'scan');
    assert.equal(containsExpression('x@', d), 'scan');
    const t = (term: string) => ({ op: 'term', term });
    assert.deepEqual(containsExpression('ne@b', d), { op: 'and', of: [{ op: 'and', of: [t('ne@'), t('e@b')] }, t('@b.mssante.fr')] });
    assert.deepEqual(containsExpression('@me', d), { op: 'and', of: [t('@me'), t('@medecin.mssante.fr')] });
    const five = new Domains(['@a.mssante.fr', '@b.mssante.fr', '@c.mssante.fr', '@d.mssante.fr', '@e.mssante.fr']);
    assert.deepEqual((containsExpression('mssante', five) as { of: unknown[] }).of[1], { op: 'or', of: five.terms.map(t) });
    assert.deepEqual(containsExpression('mssante', d), { op: 'or', of: [{ op: 'and', of: [t('mss'), t('ssa'), t('san'), t('ant'), t('nte')] }, { op: 'or', of: d.terms.map(t) }] });
  });
});
