// The test suite's RSA key pool (test/support/key-pool.ts): keys distinct within a process,
// the same files reused by the next process, and usable by the test PKI.
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { describe, test } from 'node:test';
import { exportPrivateKeyPem, generateRsaKeyPair, SIGNING_ALG, type CryptoKeyPair } from '../src/pki/keys.js';
import { keyPool } from './support/key-pool.js';
import './helpers.js';

const pem = async (k: CryptoKeyPair) => exportPrivateKeyPem(k.privateKey);

describe('RSA key pool of the test suite', () => {
  test('keys are distinct within a process and reused, in the same order, by another', async () => {
    const a = keyPool(1000);
    const first = await Promise.all([a(), a(), a()]);
    const pems = await Promise.all(first.map(pem));
    assert.equal(new Set(pems).size, 3, 'three distinct keys');
    const b = keyPool(1000); // what the next test process sees
    assert.deepEqual(await Promise.all([b(), b(), b()].map(async (k) => pem(await k))), pems);
    for (const p of pems) assert.equal(createPrivateKey(p).asymmetricKeyDetails?.modulusLength, 2048);
  });

  test('generateRsaKeyPair takes pool keys here: each signs, and its public key verifies', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const k = await generateRsaKeyPair();
      const p = await pem(k);
      assert.ok(!seen.has(p), 'a new key each time in one process');
      seen.add(p);
      const data = Buffer.from(`message ${i}`);
      const sig = await crypto.subtle.sign(SIGNING_ALG, k.privateKey, data);
      assert.ok(await crypto.subtle.verify(SIGNING_ALG, k.publicKey, sig, data));
    }
  });
});
