/**
 * Key generation and (de)serialisation with Node's WebCrypto.
 *
 * IGC-Santé issues RSA 2048 keys signed with sha256WithRSAEncryption
 * (RSASSA-PKCS1-v1_5, RFC 8017 §8.2; OID per RFC 4055 §5). Private keys are
 * written as unencrypted PKCS#8 (RFC 5208 / RFC 5958) "PRIVATE KEY" PEM
 * (RFC 7468 §10), which Node's `tls` and Postfix (OpenSSL) load as is.
 */
import { createPrivateKey, createPublicKey, type webcrypto } from 'node:crypto';
import { x509 } from './x509.js';

export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;

export const RSA_ALG: webcrypto.RsaHashedKeyGenParams = {
  name: 'RSASSA-PKCS1-v1_5',
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]), // F4 = 65537
  hash: 'SHA-256',
};

/** Signature algorithm handed to the certificate and CRL generators. */
export const SIGNING_ALG = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;

/** A new RSA 2048 key pair (extractable private key), freshly generated. */
export async function generateFreshRsaKeyPair(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(RSA_ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
}

let rsaKeyPairSource: () => Promise<CryptoKeyPair> = generateFreshRsaKeyPair;

/**
 * Where generateRsaKeyPair takes its keys. The product always generates fresh ones; the test
 * suite (test/support/key-pool.ts) hands each test process keys it has already generated,
 * distinct within the process, because an RSA 2048 key costs about 0.3 s of CPU and a demo
 * space a dozen of them.
 */
export function setRsaKeyPairSource(source: () => Promise<CryptoKeyPair>): void {
  rsaKeyPairSource = source;
}

/** An RSA 2048 key pair for a certificate (IGC-Santé key size), extractable private key. */
export async function generateRsaKeyPair(): Promise<CryptoKeyPair> {
  return rsaKeyPairSource();
}

/** PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), newline-terminated. */
export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key);
  return withNewline(x509.PemConverter.encode(der, 'PRIVATE KEY'));
}

/** Imports a PKCS#8 PEM RSA key for signing with SHA-256. */
export async function importPrivateKeyPem(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return crypto.subtle.importKey('pkcs8', der, { name: RSA_ALG.name, hash: RSA_ALG.hash }, false, ['sign']);
}

/** True when the PEM private key is the counterpart of the certificate's public key. */
export function keyMatchesCert(keyPem: string, cert: x509.X509Certificate): boolean {
  const spki = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  return Buffer.compare(spki, Buffer.from(cert.publicKey.rawData)) === 0;
}

export function withNewline(s: string): string {
  return s.endsWith('\n') ? s : s + '\n';
}
