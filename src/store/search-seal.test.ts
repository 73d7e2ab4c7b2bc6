// The sealed form of a header search row: what it keeps, and that the values come back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeyRing } from './keyring.js';
import { columnFromVals, headerQueryPlan, searchValsContext, storedSearchRow, TRIGRAM_TOKEN_BYTES } from './search-seal.js';
import { ValueSealer } from './value-seal.js';

const ring = KeyRing.generate(new Date('2026-12-07T00:00:00Z'));

test('a sealed row: absent fields stay NULL, present ones (even empty) hold tokens, the values open back', () => {
  const s = new ValueSealer(ring);
  const cols = { a_from: Buffer.from('dr paul bernard <paul.bernard@b.mssante.test>\nx@y.fr'), a_cc: null, h_bcc: Buffer.alloc(0), s_subject: Buffer.from('compte rendu irm') };
  const row = storedSearchRow(s, 'b1', cols);
  assert.equal(row.keyId, ring.currentId);
  assert.equal(row.columns.a_cc, null);
  assert.deepEqual(row.columns.h_bcc, Buffer.alloc(0), 'HEADER Bcc "" still finds the field');
  const opened = s.open(row.vals!, searchValsContext('b1'));
  for (const [c, v] of Object.entries(cols)) assert.deepEqual(columnFromVals(opened, c), v, c);
  assert.throws(() => s.open(row.vals!, searchValsContext('b2')), /does not authenticate/);
  // The trigram tokens come first, sorted (no order of the text), then the word tokens.
  const subject = row.columns.s_subject!;
  const grams = new Set<string>();
  for (let i = 0; i + 3 <= 'compte rendu irm'.length; i++) grams.add('compte rendu irm'.slice(i, i + 3));
  const tri = Array.from({ length: grams.size }, (_, i) => subject.readUInt32BE(TRIGRAM_TOKEN_BYTES * i));
  assert.deepEqual(tri, [...tri].sort((a, b) => a - b));
  assert.equal(subject.length, TRIGRAM_TOKEN_BYTES * grams.size + 8 * 3, '14 trigrams, 3 words');
  for (const w of ['compte', 'rendu', 'bernard', 'mssante']) assert.ok(!Buffer.concat(Object.values(row.columns).filter((x): x is Buffer => x !== null)).includes(Buffer.from(w)));
  // Without a sealer: the columns as given.
  assert.deepEqual(storedSearchRow(undefined, 'b1', cols), { keyId: null, columns: cols, vals: null });
  assert.throws(() => storedSearchRow(s, 'b1', { evil: null }), /unknown search column/);
});

test('the query plan: trigram tokens of the needle found in the row, the word token for a word', () => {
  const s = new ValueSealer(ring);
  const row = storedSearchRow(s, 'b1', { a_from: Buffer.from('dr paul bernard <paul.bernard@b.mssante.test>') });
  const col = row.columns.a_from!;
  const word = headerQueryPlan(s, 'a_from', Buffer.from('bernard'));
  assert.equal(word.terms!.length, 5);
  assert.ok(word.terms!.every((t) => col.includes(t)));
  assert.ok(word.sure && col.includes(word.sure));
  const address = headerQueryPlan(s, 'a_from', Buffer.from('paul.bernard@b.mssante.test'));
  assert.ok(address.sure && col.includes(address.sure), 'a whole address is a word');
  assert.equal(address.terms!.length, 6, 'at most 6 trigram tokens narrow');
  const part = headerQueryPlan(s, 'a_from', Buffer.from('bern'));
  assert.ok(part.sure && !col.includes(part.sure), 'not a word of the row: its values decide');
  assert.equal(headerQueryPlan(s, 'a_from', Buffer.from('<paul')).sure, undefined, 'a delimiter: never a word');
  assert.deepEqual(headerQueryPlan(s, 's_subject', Buffer.from('bernard')).terms!.filter((t) => col.includes(t)), [], 'tokens are per column');
  const short = headerQueryPlan(s, 'a_from', Buffer.from('dr'));
  assert.equal(short.terms, null);
  assert.equal(short.verify, true);
  assert.deepEqual(headerQueryPlan(undefined, 'a_from', Buffer.from('dr')), { terms: [Buffer.from('dr')], verify: false, sure: undefined, keyId: null });
});
