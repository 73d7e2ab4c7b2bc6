import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeyRing } from './keyring.js';
import { isSealedValue, SealedValueError, ValueSealer, valueKeyId } from './value-seal.js';

const ring = KeyRing.generate(new Date('2026-12-07T00:00:00Z'));

test('a sealed value opens in its context only, and holds no plaintext', () => {
  const s = new ValueSealer(ring);
  const v = s.seal('Compte rendu MARQUEUR', 'blob_meta.info:abc');
  assert.ok(isSealedValue(v));
  assert.equal(valueKeyId(v), ring.currentId);
  assert.ok(!v.includes(Buffer.from('MARQUEUR')));
  assert.equal(s.open(v, 'blob_meta.info:abc').toString('utf8'), 'Compte rendu MARQUEUR');
  assert.throws(() => s.open(v, 'blob_meta.info:abd'), SealedValueError);
  for (const i of [0, 5 + ring.currentId.length, v.length - 1, Math.floor(v.length / 2)]) {
    if (i < 4) continue;
    const t = Buffer.from(v);
    t[i]! ^= 1;
    assert.throws(() => s.open(t, 'blob_meta.info:abc'), SealedValueError, `byte ${i}`);
  }
  assert.throws(() => s.open(v.subarray(0, 20), 'blob_meta.info:abc'), SealedValueError);
  assert.notDeepEqual(s.seal('x', 'c'), s.seal('x', 'c'), 'a fresh nonce each time');
});

test('plaintext passes through; rotation: old values open, are stale, and re-seal under the new key', () => {
  const s = new ValueSealer(ring);
  assert.equal(s.open(Buffer.from('{"a":1}'), 'x').toString(), '{"a":1}');
  assert.ok(s.stale(Buffer.from('{"a":1}')));
  const old = s.seal('sujet', 'submissions.subject');
  const rotated = new ValueSealer(ring.withNewCurrent(new Date('2026-12-08T00:00:00Z')));
  assert.equal(rotated.open(old, 'submissions.subject').toString(), 'sujet');
  assert.ok(rotated.stale(old));
  const again = rotated.seal(rotated.open(old, 'submissions.subject'), 'submissions.subject');
  assert.ok(!rotated.stale(again));
  assert.throws(() => s.open(again, 'submissions.subject'), /not in the keyring/);
});

test('search tokens are keyed: stable under one key, different under another', () => {
  const a = new ValueSealer(ring);
  assert.deepEqual(a.token('dur'), new ValueSealer(ring).token('dur'));
  assert.notDeepEqual(a.token('dur'), a.token('dus'));
  assert.equal(a.token('dur').length, 8);
  assert.notDeepEqual(a.token('dur'), new ValueSealer(ring.withNewCurrent()).token('dur'));
});

test('block tokens: one AES block per input, keyed, stable under one key, distinct inputs distinct', () => {
  const a = new ValueSealer(ring);
  const blocks = ValueSealer.tokenBlocks([Buffer.from('dur'), Buffer.from('dus'), Buffer.from('dur'), Buffer.alloc(0), Buffer.from('x'.repeat(15))]);
  const t = a.blockTokens(blocks);
  assert.equal(t.length, 5 * 16);
  const tok = (i: number) => t.subarray(16 * i, 16 * i + 16);
  assert.deepEqual(tok(0), tok(2));
  assert.notDeepEqual(tok(0), tok(1));
  assert.notDeepEqual(tok(3), tok(0), 'the length byte separates inputs (an empty input is not zeros)');
  assert.deepEqual(new ValueSealer(ring).blockTokens(blocks), t);
  assert.notDeepEqual(new ValueSealer(ring.withNewCurrent()).blockTokens(blocks), t);
  assert.ok(!t.includes(Buffer.from('dur')));
  assert.throws(() => ValueSealer.tokenBlocks([Buffer.alloc(16)]), /at most 15/);
  const bad = Buffer.alloc(16);
  bad[0] = 16;
  assert.throws(() => a.blockTokens(bad), /at most 15/);
  assert.throws(() => a.blockTokens(Buffer.alloc(17)), /multiple of 16/);
});
