// A stored row decodes to the entry it was made of: every field of the extraction in COLUMNS'
// order (decodeEntry names them one by one), the keys, nothing else.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COLUMNS } from '../../directory-model/entry.js';
import { decodeEntry } from './snapshot-format.js';

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
});
