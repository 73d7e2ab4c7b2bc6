// The signature algorithms our CRL and OCSP readers verify (RFC 4055 §5, RFC 5758 §3.2,
// RFC 8410 §3), keyed by dotted OID, each with its node:crypto digest (null: Ed25519 signs the
// message itself). One table for both readers: crl.ts looks algorithms up by the DER content of
// the OID it walks (`byDerHex`), ocsp.ts by the dotted OID @peculiar/asn1-ocsp gives.
export interface SignatureAlgorithm {
  name: string;
  digest: string | null;
}

export const SIGNATURE_ALGORITHMS: Record<string, SignatureAlgorithm> = {
  '1.2.840.113549.1.1.11': { name: 'sha256WithRSAEncryption', digest: 'sha256' },
  '1.2.840.113549.1.1.12': { name: 'sha384WithRSAEncryption', digest: 'sha384' },
  '1.2.840.113549.1.1.13': { name: 'sha512WithRSAEncryption', digest: 'sha512' },
  '1.2.840.10045.4.3.2': { name: 'ecdsa-with-SHA256', digest: 'sha256' },
  '1.2.840.10045.4.3.3': { name: 'ecdsa-with-SHA384', digest: 'sha384' },
  '1.2.840.10045.4.3.4': { name: 'ecdsa-with-SHA512', digest: 'sha512' },
  '1.3.101.112': { name: 'Ed25519', digest: null },
};

/** The DER content octets of a dotted OID, in hex (X.690 §8.19: base 128, the first two arcs as 40·a + b). */
function derHex(oid: string): string {
  const arcs = oid.split('.').map(Number);
  const out: number[] = [];
  for (const arc of [40 * arcs[0]! + arcs[1]!, ...arcs.slice(2)]) {
    const groups = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) groups.unshift((v & 0x7f) | 0x80);
    out.push(...groups);
  }
  return Buffer.from(out).toString('hex');
}

/** The same table keyed by the hex of each OID's DER content octets. */
export const SIGNATURE_ALGORITHMS_BY_DER_HEX: Record<string, SignatureAlgorithm> = Object.fromEntries(Object.entries(SIGNATURE_ALGORITHMS).map(([oid, a]) => [derHex(oid), a]));
