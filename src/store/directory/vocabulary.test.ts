// The import numbers an entry's index terms from caches keyed by field value (TermDictionary
// namesOf / allOf); they must give exactly the terms of entryTokens (directory-model/tokens.ts),
// the one definition the in-memory matching of our own mailboxes uses too.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KNOWN, line } from '../../../test/directory-fixture.js';
import { COLUMNS, type DirectoryEntry, type ExtractionFields } from '../../directory-model/entry.js';
import { entryTokens } from '../../directory-model/tokens.js';
import { entryFromFields, parseHeader, parseLine } from '../../directory/extraction.js';
import { generateLines } from '../../directory/generate.js';
import { TermDictionary, type TermSink } from './vocabulary.js';

/** The terms a dictionary gives an entry (numbers turned back into terms), sorted, without repeats. */
function termsOf(d: TermDictionary, known: string[], fill: (out: TermSink) => void): string[] {
  const out = new Set<string>();
  const ids: number[] = [];
  fill({ id: (id) => ids.push(id), literal: (t) => out.add(t) });
  known.push(...d.take());
  for (const id of ids) out.add(known[id]);
  return [...out].sort();
}

describe('term dictionary: cached terms of an entry', () => {
  it('namesOf / allOf give the terms of entryTokens, for fixture, tricky and generated entries, cached or not', () => {
    const entries: DirectoryEntry[] = [];
    const fields = (f: Partial<ExtractionFields>) => Object.fromEntries(COLUMNS.map(([k]) => [k, f[k] ?? ''])) as unknown as ExtractionFields;
    for (const f of KNOWN) {
      const r = entryFromFields(fields(f), 'national');
      if (r.ok) entries.push(r.entry);
    }
    const tricky: Partial<ExtractionFields>[] = [
      { balType: 'PER', address: 'a@b.fr', ppNatId: '8.10-ABc', family: "D'Œuvre-Lœtitia", given: 'Jean‐Pierre', l6: '42000 SAINT-ÉTIENNE CEDEX 2', postalCode: '42000', professionCode: 'X.1', specialityCode: 'sm 26' },
      { balType: 'ORG', address: 'o@b.fr', stId: '1750712184', legalName: 'CHU de Saint-Étienne', tradeName: "L'Hôpital Nord", service: 'Urgences (adultes)', l6: 'LYON', postalCode: '' },
      { balType: 'APP', address: 'p@b.fr', stId: 'ST.9', legalName: '', tradeName: '', service: '', l6: '', postalCode: '69001' },
      { balType: 'CAB', address: 'c@b.fr', ppNatId: '810001', stId: '3123', family: '', given: 'Zoé', legalName: 'Cabinet Zoé', l6: '69001 LYON 1ER', postalCode: '69001' },
      { balType: 'PER', address: 'x@b.fr', ppNatId: '8', family: '---', given: "''", professionLabel: 'Infirmier(e) D.E.', specialityLabel: 'Médecine générale' },
      // The same l6 with another postal code (the place cache is keyed by l6).
      { balType: 'PER', address: 'y@b.fr', ppNatId: '9', family: 'Zoé', l6: '69001 LYON 1ER', postalCode: '69002' },
      { balType: 'PER', address: 'z@b.fr', ppNatId: '10', family: 'Zoé', l6: '69001 LYON 1ER', postalCode: '' },
    ];
    for (const f of tricky) {
      const r = entryFromFields(fields(f), 'national');
      assert.ok(r.ok, JSON.stringify(r));
      entries.push(r.entry);
    }
    const header = parseHeader(COLUMNS.map(([, h]) => h).join('|'));
    let n = 0;
    for (const l of generateLines({ lines: 3000, seed: 11 })) {
      if (n++ === 0) continue;
      const r = parseLine(l, header);
      if (r.ok) entries.push(r.entry);
    }
    assert.ok(entries.length > 3000);
    assert.ok(line({ balType: 'PER' }).startsWith('PER|'));
    const cached = new TermDictionary();
    const direct = new TermDictionary();
    const cachedTerms: string[] = [];
    const directTerms: string[] = [];
    // Twice: the second pass is served from the caches.
    for (const e of [...entries, ...entries]) {
      const t = entryTokens(e);
      assert.deepEqual(
        termsOf(cached, cachedTerms, (out) => cached.namesOf(e, out)),
        termsOf(direct, directTerms, (out) => direct.names(t, out)),
        `names of ${e.address}`,
      );
      assert.deepEqual(
        termsOf(cached, cachedTerms, (out) => cached.allOf(e, out)),
        termsOf(direct, directTerms, (out) => direct.all(t, out, e)),
        `all of ${e.address}`,
      );
    }
    assert.equal(cached.size, direct.size);
  });
});
