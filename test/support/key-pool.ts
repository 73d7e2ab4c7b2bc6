// RSA keys for the test PKIs, generated once and reused by every test process.
//
// A demo space (prepareDemo) issues about a dozen certificates, each with a new RSA 2048 key
// (src/pki/test-pki.ts), and generating one costs about 0.3 s of CPU: some 4 s per demo, in
// forty test files. The n-th key a test process asks for is the pool's n-th key, so the keys of
// one process are all distinct (two PKIs, two operators, a certificate and a rogue one never
// share a key) while the processes of a run, and later runs, reuse the same files. Child
// processes (the CLI under test) do not load this module and generate fresh keys.
// test/helpers.ts installs the pool; the tests of src/pki/ keep the real generator.
import { createPublicKey, type webcrypto } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exportPrivateKeyPem, generateFreshRsaKeyPair, RSA_ALG, setRsaKeyPairSource, type CryptoKeyPair } from '../../src/pki/keys.js';

/** One directory per user (keys are private: 0700 directory, 0600 files). */
export const KEY_POOL_DIR = path.join(os.tmpdir(), `caducee-test-rsa2048-${process.getuid?.() ?? 'user'}`);

/** The pool directory when it is ours and private; otherwise no pool (fresh keys). */
function poolDir(): string | null {
  try {
    mkdirSync(KEY_POOL_DIR, { recursive: true, mode: 0o700 });
    const st = lstatSync(KEY_POOL_DIR);
    if (!st.isDirectory() || (process.getuid && st.uid !== process.getuid()) || (st.mode & 0o077) !== 0) return null;
    return KEY_POOL_DIR;
  } catch {
    return null;
  }
}

async function importPair(pem: string): Promise<CryptoKeyPair> {
  const privateKey = await crypto.subtle.importKey('pkcs8', pemBody(pem), RSA_ALG, true, ['sign']);
  const spki = createPublicKey(pem).export({ type: 'spki', format: 'der' });
  const publicKey = await crypto.subtle.importKey('spki', spki, RSA_ALG, true, ['verify']);
  return { privateKey, publicKey } as CryptoKeyPair;
}

function pemBody(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----(BEGIN|END) PRIVATE KEY-----|\s/g, ''), 'base64');
}

/** A key source handing out the pool's keys in order: key `start`, `start + 1`, … */
export function keyPool(start = 0): () => Promise<webcrypto.CryptoKeyPair> {
  let next = start;
  return async () => {
    const i = next++;
    const file = (dir: string) => path.join(dir, `${i}.pem`);
    const dir = poolDir();
    if (dir) {
      try {
        return await importPair(readFileSync(file(dir), 'utf8'));
      } catch {}
    }
    const keys = await generateFreshRsaKeyPair();
    if (dir) {
      // Written under a temporary name then renamed: a concurrent reader sees all of it or nothing.
      const tmp = `${file(dir)}.${process.pid}.tmp`;
      writeFileSync(tmp, await exportPrivateKeyPem(keys.privateKey), { mode: 0o600 });
      renameSync(tmp, file(dir));
    }
    return keys;
  };
}

/** Makes generateRsaKeyPair take its keys from the pool in this process. */
export function installKeyPool(): void {
  setRsaKeyPairSource(keyPool());
}
