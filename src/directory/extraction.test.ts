// The extraction format (Extraction_Correspondance_MSSante, annuaire.sante.fr) and the search
// normalisation rules.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { headerKey, parseHeader, parseLine } from './extraction.js';
import { COLUMNS, safeKey } from '../directory-model/entry.js';
import { entryTokens } from '../directory-model/tokens.js';
import { generateLines } from './generate.js';
import { clauseMatches } from '../directory-model/match.js';
import { cityOf } from '../directory-model/entry.js';
import { fold, joinedKey, words } from '../directory-model/normalize.js';

const HEADER = COLUMNS.map(([, h]) => h).join('|');
const line = (f: Record<string, string>) => COLUMNS.map(([k]) => f[k] ?? '').join('|');

test('keys: the safe ones as they are, any other character a dot, trimmed, at most 31 characters', () => {
  const rule = (s: string) => s.trim().replace(/[^A-Za-z0-9.]/g, '.').slice(0, 31);
  const keys = ['810001234567', '1750712184', '3.20000232676058', 'abcXYZ.09', ' 8100 ', '81-0001', 'é1', '', ' ', 'x'.repeat(31), 'x'.repeat(32), '9'.repeat(40), 'a b', 'A_B', '1/2', '0\t1'];
  for (const k of keys) assert.equal(safeKey(k), rule(k), JSON.stringify(k));
});

describe('extraction header', () => {
  test('the 31 published columns, matched by name', () => {
    const h = parseHeader(HEADER);
    assert.equal(h.fields.length, 31);
    assert.deepEqual(h.missing, []);
    assert.deepEqual(h.unknown, []);
  });

  test('tolerated variants: BOM, " structure BAL" suffixes, case, accents, reordered columns', () => {
    const variant = COLUMNS.map(([, h]) => (/^L\d|^NL4|Code postal|Département|Pays/.test(h) ? `${h} structure BAL` : h));
    variant.reverse();
    const h = parseHeader('\uFEFF' + variant.map((c) => c.toUpperCase().replace('É', 'E')).join('|'));
    assert.deepEqual(h.missing, []);
    assert.equal(h.fields[0], 'country');
    assert.equal(headerKey('Raison Sociale structure BAL'), headerKey('raison sociale'));
    assert.equal(headerKey("Civilité d’exercice"), headerKey("Civilité d'exercice"));
  });

  test('a file that is not an extraction is refused with what to do', () => {
    assert.throws(() => parseHeader('a;b;c'), /not an extraction header.*Extraction_Correspondance_MSSante/);
  });

  test('missing and unknown columns are reported, not fatal', () => {
    const h = parseHeader('Type de BAL|Adresse BAL|Nom d\'exercice|Colonne inconnue');
    assert.ok(h.missing.includes('Code postal'));
    assert.deepEqual(h.unknown, ['Colonne inconnue']);
    const r = parseLine("PER|x@y.mssante.fr|D'Arc|z", h);
    assert.equal(r.ok, false, 'a PER without Identifiant PP is rejected');
  });
});

describe('extraction lines', () => {
  const h = parseHeader(HEADER);
  test('PER with RPPS only: Practitioner; with a structure: PractitionerRole; ORG/APP: Organization', () => {
    const per = parseLine(line({ balType: 'PER', address: 'jeanne.darc@medecin.mssante.fr', ppIdType: '8', ppId: '10001234567', ppNatId: '810001234567', family: "D'ARC", given: 'Jeanne' }), h);
    assert.ok(per.ok);
    assert.equal(per.entry.kind, 'Practitioner');
    assert.equal(per.entry.ppKey, '810001234567');
    const role = parseLine(line({ balType: 'PER', address: 'j@chu.mssante.fr', ppNatId: '810001234567', stIdType: '1', stId: '1750712184' }), h);
    assert.ok(role.ok && role.entry.kind === 'PractitionerRole' && role.entry.stKey === '1750712184');
    const cab = parseLine(line({ balType: 'cab', address: 'cabinet@x.mssante.fr', ppNatId: '810001234567', stId: '1750712184' }), h);
    assert.ok(cab.ok && cab.entry.kind === 'Practitioner' && cab.entry.type === 'CAB');
    const org = parseLine(line({ balType: 'ORG', address: 'urgences@chu.mssante.fr', stId: '1750712184', legalName: 'CHU' }), h);
    assert.ok(org.ok && org.entry.kind === 'Organization');
  });

  test('rejections say why', () => {
    const reasons = [
      [line({ balType: 'XYZ', address: 'a@b.fr' }), /unknown Type de BAL "XYZ"/],
      [line({ balType: 'PER', address: '' }), /empty Adresse BAL/],
      [line({ balType: 'PER', address: 'not an address', ppNatId: '8100' }), /is not a mail address/],
      [line({ balType: 'ORG', address: 'a@b.fr' }), /ORG mailbox without Identification Structure/],
      ['PER|a@b.fr|8', /3 fields where the header has 31/],
    ] as const;
    for (const [l, re] of reasons) {
      const r = parseLine(l, h);
      assert.equal(r.ok, false, l);
      assert.match((r as any).reason, re);
    }
    assert.ok(parseLine(line({ balType: 'ORG', address: 'a@b.fr', stId: '1750712184' }) + '|', h).ok, 'a trailing | is tolerated');
  });

  test('city from the ligne d’acheminement', () => {
    assert.equal(cityOf({ l6: '75012 PARIS CEDEX 12', postalCode: '75012' }), 'PARIS');
    assert.equal(cityOf({ l6: "94240 L'HAŸ-LES-ROSES", postalCode: '94240' }), "L'HAŸ-LES-ROSES");
  });
});

describe('normalisation', () => {
  test('accents, case, ligatures and apostrophe / dash variants', () => {
    assert.equal(fold('Éloïse LECŒUR'), 'eloise lecoeur');
    assert.equal(fold('D’Arc – Müller'), "d'arc - muller");
  });
  test('compound words keep their parts and their joined form', () => {
    assert.deepEqual(words("Jean-Pierre D'Arc"), [
      { parts: ['jean', 'pierre'], joined: 'jeanpierre' },
      { parts: ['d', 'arc'], joined: 'darc' },
    ]);
    assert.equal(joinedKey('Saint-Étienne'), 'saintetienne');
  });
  test('a name is found without its hyphen or apostrophe, by prefix, in any case', () => {
    const h = parseHeader(HEADER);
    const r = parseLine(line({ balType: 'PER', address: 'jp@x.mssante.fr', ppNatId: '810001234567', family: "D'ALEMBERT", given: 'Jean-Pierre' }), h);
    assert.ok(r.ok);
    const t = entryTokens(r.entry);
    for (const q of ['dalembert', "d'alemb", 'd alembert', 'DʼAlembert', 'jeanpierre', 'jean pierre', 'jean-pi', 'JEAN']) {
      const ok = words(q).every((w) => clauseMatches(t, { column: 'names', words: [w], prefix: true }));
      assert.ok(ok, q);
    }
    assert.ok(!words('darcy').every((w) => clauseMatches(t, { column: 'names', words: [w], prefix: true })));
  });
});

describe('synthetic extraction', () => {
  test('deterministic, every BAL type, valid lines, accents and several mailboxes per person', () => {
    const a = [...generateLines({ lines: 3000, seed: 7 })];
    const b = [...generateLines({ lines: 3000, seed: 7 })];
    assert.deepEqual(a, b);
    assert.equal(a.length, 3001);
    const h = parseHeader(a[0]);
    const entries = a.slice(1).map((l) => parseLine(l, h));
    assert.ok(entries.every((r) => r.ok), 'every generated line is valid');
    const ok = entries.map((r) => (r as any).entry);
    assert.deepEqual(new Set(ok.map((e) => e.type)), new Set(['PER', 'ORG', 'APP', 'CAB']));
    assert.deepEqual(new Set(ok.map((e) => e.kind)), new Set(['Practitioner', 'PractitionerRole', 'Organization']));
    assert.ok(ok.some((e) => /[éèêëàâçôîïüœ]/i.test(e.family + e.given)));
    assert.ok(ok.some((e) => e.family.includes("'")));
    assert.ok(ok.some((e) => e.specialityCode.startsWith('SM')));
    const perPerson = new Map<string, number>();
    for (const e of ok) if (e.ppKey) perPerson.set(e.ppKey, (perPerson.get(e.ppKey) ?? 0) + 1);
    assert.ok([...perPerson.values()].some((n) => n >= 3));
    assert.equal(new Set(ok.map((e) => e.address)).size, ok.length, 'addresses are unique');
  });
});
