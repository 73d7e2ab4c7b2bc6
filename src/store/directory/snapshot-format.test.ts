// A stored row decodes to the entry it was made of: every field of the extraction in COLUMNS'
// order (decodeEntry names them one by one), the keys, nothing else.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COLUMNS, type DirectoryEntry } from '../../directory-model/entry.js';
import { parseHeader, parseLine } from '../../directory/extraction.js';
import { BatchEncoder, decodeEntry, ROW_FIELDS } from './snapshot-format.js';
import { TermDictionary } from './vocabulary.js';

describe('snapshot rows', () => {
  it('decode every field in the extraction order', () => {
    const values = COLUMNS.map(([k], i) => (i === 0 ? 'PER' : `${k}-${i}`));
    const e = decodeEntry({ f: values.join('|'), pp_key: '810001', st_key: '1750', kind: 'PractitionerRole' });
    COLUMNS.forEach(([k], i) => assert.equal(e[k], values[i], k));
    const extra = { source: 'national', type: 'PER', ppKey: '810001', stKey: '1750', kind: 'PractitionerRole', sortKey: '', listeRouge: false, description: '', ownerUserId: null };
    assert.deepEqual(Object.keys(e).sort(), [...COLUMNS.map(([k]) => k), ...Object.keys(extra)].sort());
    for (const [k, v] of Object.entries(extra)) assert.equal((e as any)[k], v, k);
  });

  it('gives missing trailing fields as empty', () => {
    const e = decodeEntry({ f: 'ORG|a@b.fr', pp_key: '', st_key: '1', kind: 'Organization' });
    assert.equal(e.address, 'a@b.fr');
    assert.equal(e.country, '');
    assert.equal(e.postalCode, '');
  });

  it('a batch carries every text field as it was, ASCII or not, short or long', () => {
    const header = parseHeader(COLUMNS.map(([, h]) => h).join('|'));
    const line = (f: Record<string, string>) => COLUMNS.map(([k]) => f[k] ?? '').join('|');
    const lines = [
      line({ balType: 'PER', address: 'Claire.Martin@a.mssante.fr', ppNatId: '810001', family: 'Martin' }),
      // Not stored as it is (a value with spaces around it): the fields are joined again, with accents.
      line({ balType: 'per', address: 'e@b.fr', ppNatId: '8.1', family: ' Lecœur ', given: 'Éloïse' }),
      line({ balType: 'ORG', address: 'x@c.fr', stId: '1750', legalName: 'É'.repeat(200) }),
    ];
    const encoder = new BatchEncoder(new TermDictionary(), 64); // a small buffer: it grows
    const entries: DirectoryEntry[] = lines.map((l, i) => {
      const r = parseLine(l, header);
      assert.ok(r.ok);
      if (r.entry.line === l) r.entry.lineBytes = Buffer.from(l);
      encoder.add(i + 1, r.entry, i + 2);
      return r.entry;
    });
    // A key that is not ASCII (none is, in an import: the encoder must still carry it).
    const odd = { ...entries[0], address: 'z@d.fr', ppKey: 'é1', stKey: 'k' + 'ß'.repeat(100), line: undefined, lineBytes: undefined };
    encoder.add(4, odd, 5);
    const b = encoder.take();
    const fields = Buffer.from(b.text, 0, b.textLength).toString('utf8').split('\u0001');
    assert.equal(fields.length, 4 * ROW_FIELDS + 1);
    [...entries, odd].forEach((e, i) => {
      const row = fields.slice(i * ROW_FIELDS, (i + 1) * ROW_FIELDS);
      assert.deepEqual(row.slice(0, 4), [e.address.toLowerCase(), e.ppKey, e.stKey, e.kind]);
      assert.deepEqual(decodeEntry({ f: row[4], pp_key: e.ppKey, st_key: e.stKey, kind: e.kind }).family, e.family);
    });
    assert.equal(fields[1 * ROW_FIELDS + 4], line({ balType: 'PER', address: 'e@b.fr', ppNatId: '8.1', family: 'Lecœur', given: 'Éloïse' }));
    assert.equal(fields[2 * ROW_FIELDS + 4], lines[2]);
  });
});
