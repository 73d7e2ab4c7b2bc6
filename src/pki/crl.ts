/**
 * Certificate revocation lists (RFC 5280 §5), read in one linear pass over the DER.
 *
 * Why not @peculiar/x509's X509Crl: its ASN.1 layer (asn1js) needs about 60 s of CPU to parse a
 * 2.2 MB CRL of 60,000 entries (5 s for 10,000), on the event loop, and its findRevoked walks
 * every entry (150-500 ms per look-up at that size) — a national PKI's CRL would stall the
 * process at each refresh and slow every handshake. A CRL is a flat list: this reader walks
 * the DER TLVs once (a few milliseconds for the same file), keeps the entries in a Map keyed by
 * serial, and leaves names (x509.Name, small) and signatures (node:crypto, off the event loop)
 * to the libraries. @peculiar/x509 still generates the test PKI's CRLs.
 *
 * Only DER is accepted (RFC 5280 §5: CRLs are DER encoded): definite lengths, one-byte tags.
 * Critical extensions this reader does not process make the CRL unusable, as RFC 5280 §5.2 and
 * §5.3 require: deltaCRLIndicator, issuingDistributionPoint (partitioned or indirect CRLs),
 * certificateIssuer. Delta CRLs are not supported.
 */
import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { x509 } from './x509.js';
import { SIGNATURE_ALGORITHMS_BY_DER_HEX } from './sig-algs.js';

export class CrlFormatError extends Error {
  override name = 'CrlFormatError';
}

export interface CrlEntry {
  /** Lower-case hex, no leading zero octet (the form of normalizeSerialHex). */
  serialHex: string;
  revocationDate: Date;
  /** RFC 5280 §5.3.1 CRLReason, when the entry says. */
  reason?: number;
}

// DER tags (X.690 §8): universal class, and the context-specific [0] of crlExtensions.
const T = { INTEGER: 0x02, BIT_STRING: 0x03, OCTET_STRING: 0x04, OID: 0x06, ENUMERATED: 0x0a, SEQUENCE: 0x30, UTC: 0x17, GEN: 0x18, BOOLEAN: 0x01, CTX0: 0xa0 } as const;

// OIDs as the hex of their DER content.
const EXT = {
  reasonCode: '551d15', // 2.5.29.21 (RFC 5280 §5.3.1)
  invalidityDate: '551d18', // 2.5.29.24 (§5.3.2)
  certificateIssuer: '551d1d', // 2.5.29.29 (§5.3.3): indirect CRLs, not supported
  crlNumber: '551d14', // 2.5.29.20 (§5.2.3)
  authorityKeyIdentifier: '551d23', // 2.5.29.35 (§5.2.1)
  deltaCrlIndicator: '551d1b', // 2.5.29.27 (§5.2.4)
  issuingDistributionPoint: '551d1c', // 2.5.29.28 (§5.2.5)
} as const;

/** Signature algorithms verified (pki/sig-algs.ts, shared with the OCSP reader). */
const SIG_ALGS = SIGNATURE_ALGORITHMS_BY_DER_HEX;

/** Entries read between two turns of the event loop in parseAsync (a few ms on a quiet machine). */
const ENTRIES_PER_TURN = 2000;

interface Tlv {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the content. */
  content: number;
  /** Offset just past the content. */
  end: number;
}

function readTlv(b: Uint8Array, off: number, limit: number, what: string): Tlv {
  if (off + 2 > limit) throw new CrlFormatError(`${what}: truncated at byte ${off}`);
  const tag = b[off]!;
  if ((tag & 0x1f) === 0x1f) throw new CrlFormatError(`${what}: multi-byte tag at byte ${off}`);
  let len = b[off + 1]!;
  let p = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    // X.690 §10.1: DER uses the definite form, in the fewest octets.
    if (n === 0) throw new CrlFormatError(`${what}: indefinite length at byte ${off} (not DER)`);
    if (n > 4 || p + n > limit) throw new CrlFormatError(`${what}: bad length at byte ${off}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[p + i]!;
    p += n;
  }
  if (p + len > limit) throw new CrlFormatError(`${what}: length ${len} at byte ${off} runs past its container`);
  return { tag, start: off, content: p, end: p + len };
}

function expect(t: Tlv, tag: number, what: string): Tlv {
  if (t.tag !== tag) throw new CrlFormatError(`${what}: expected tag 0x${tag.toString(16)}, found 0x${t.tag.toString(16)}`);
  return t;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
function hex(b: Uint8Array, from: number, to: number): string {
  let s = '';
  for (let i = from; i < to; i++) s += HEX[b[i]!];
  return s;
}

/** `n` decimal digits at `at` (ASCII), or NaN. */
function digits(b: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let i = at; i < at + n; i++) {
    const d = b[i]! - 0x30;
    if (d < 0 || d > 9) return NaN;
    v = v * 10 + d;
  }
  return v;
}

/** RFC 5280 §4.1.2.5.1 UTCTime YYMMDDHHMMSSZ (YY < 50 → 20YY) / §4.1.2.5.2 GeneralizedTime YYYYMMDDHHMMSSZ. */
function readTime(b: Uint8Array, t: Tlv, what: string): Date {
  const len = t.end - t.content;
  const c = t.content;
  let year: number;
  let at: number;
  if (t.tag === T.UTC && len === 13) {
    const yy = digits(b, c, 2);
    year = yy < 50 ? 2000 + yy : 1900 + yy;
    at = c + 2;
  } else if (t.tag === T.GEN && len === 15) {
    year = digits(b, c, 4);
    at = c + 4;
  } else {
    throw new CrlFormatError(`${what}: not a UTCTime or GeneralizedTime of RFC 5280 §4.1.2.5`);
  }
  if (b[t.end - 1] !== 0x5a /* Z */) throw new CrlFormatError(`${what}: time not in Z`);
  const ms = Date.UTC(year, digits(b, at, 2) - 1, digits(b, at + 2, 2), digits(b, at + 4, 2), digits(b, at + 6, 2), digits(b, at + 8, 2));
  if (Number.isNaN(ms)) throw new CrlFormatError(`${what}: invalid date`);
  return new Date(ms);
}

/** INTEGER content as canonical serial hex: lower case, no redundant leading zero octets. */
function serialOf(b: Uint8Array, t: Tlv): string {
  let from = t.content;
  while (t.end - from > 1 && b[from] === 0) from++;
  if (from === t.end) throw new CrlFormatError('empty INTEGER');
  return hex(b, from, t.end);
}

interface Extension {
  oid: string;
  critical: boolean;
  value: Tlv; // the OCTET STRING
}

/** Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension (RFC 5280 §4.1). */
function readExtensions(b: Uint8Array, seq: Tlv, what: string): Extension[] {
  const out: Extension[] = [];
  for (let p = seq.content; p < seq.end; ) {
    const ext = expect(readTlv(b, p, seq.end, what), T.SEQUENCE, what);
    p = ext.end;
    const oid = expect(readTlv(b, ext.content, ext.end, what), T.OID, what);
    let q = oid.end;
    let critical = false;
    let next = readTlv(b, q, ext.end, what);
    if (next.tag === T.BOOLEAN) {
      critical = next.end - next.content === 1 && b[next.content] !== 0;
      q = next.end;
      next = readTlv(b, q, ext.end, what);
    }
    out.push({ oid: hex(b, oid.content, oid.end), critical, value: expect(next, T.OCTET_STRING, what) });
  }
  return out;
}

/** A Node KeyObject of a certificate's public key, once per certificate. */
const keyCache = new WeakMap<x509.X509Certificate, KeyObject>();
function publicKeyOf(cert: x509.X509Certificate): KeyObject {
  let k = keyCache.get(cert);
  if (!k) {
    k = createPublicKey({ key: Buffer.from(cert.publicKey.rawData), format: 'der', type: 'spki' });
    keyCache.set(cert, k);
  }
  return k;
}

export class RevocationList {
  readonly der: Uint8Array;
  /** The issuer field, DER (compare with names.ts nameKey). */
  readonly issuerDer: Uint8Array;
  readonly thisUpdate: Date;
  /** RFC 5280 §5.1.2.5: conforming issuers always set it; absent, the CRL never goes stale here. */
  readonly nextUpdate?: Date;
  /** RFC 5280 §5.2.3 cRLNumber. */
  readonly crlNumber?: bigint;
  /** RFC 5280 §5.2.1: the issuer's key identifier, lower-case hex. */
  readonly authorityKeyId?: string;
  readonly signatureAlgorithm: string;
  private readonly entries: Map<string, CrlEntry>;
  private readonly tbs: Uint8Array;
  private readonly signature: Uint8Array;
  private readonly digest: string | null;
  private issuerCache?: x509.Name;

  private constructor(init: {
    der: Uint8Array;
    issuerDer: Uint8Array;
    thisUpdate: Date;
    nextUpdate?: Date;
    crlNumber?: bigint;
    authorityKeyId?: string;
    signatureAlgorithm: string;
    digest: string | null;
    entries: Map<string, CrlEntry>;
    tbs: Uint8Array;
    signature: Uint8Array;
  }) {
    this.der = init.der;
    this.issuerDer = init.issuerDer;
    this.thisUpdate = init.thisUpdate;
    if (init.nextUpdate) this.nextUpdate = init.nextUpdate;
    if (init.crlNumber !== undefined) this.crlNumber = init.crlNumber;
    if (init.authorityKeyId !== undefined) this.authorityKeyId = init.authorityKeyId;
    this.signatureAlgorithm = init.signatureAlgorithm;
    this.digest = init.digest;
    this.entries = init.entries;
    this.tbs = init.tbs;
    this.signature = init.signature;
  }

  /** The issuer name (parsed on first use). */
  get issuerName(): x509.Name {
    return (this.issuerCache ??= new x509.Name(this.issuerDer));
  }

  /** Number of revoked certificates listed. */
  get size(): number {
    return this.entries.size;
  }

  /** Every entry, in no particular order. */
  list(): IterableIterator<CrlEntry> {
    return this.entries.values();
  }

  /** The entry for a serial (any hex form: colons, case, leading zeros), or undefined. */
  findRevoked(serial: string): CrlEntry | undefined {
    let h = serial.toLowerCase().replace(/[\s:]/g, '');
    if (h.length % 2) h = '0' + h;
    while (h.length > 2 && h.startsWith('00')) h = h.slice(2);
    return this.entries.get(h);
  }

  /**
   * RFC 5280 §6.3.3 (g): does the signature verify with `issuer`'s public key? Runs in libuv's
   * thread pool (node:crypto's callback form). Never throws: false on any failure.
   */
  verify(issuer: x509.X509Certificate): Promise<boolean> {
    return new Promise((resolve) => {
      try {
        cryptoVerify(this.digest, this.tbs, publicKeyOf(issuer), this.signature, (err, ok) => resolve(!err && ok));
      } catch {
        resolve(false);
      }
    });
  }

  /**
   * Reads a DER CRL (RFC 5280 §5.1). Throws CrlFormatError on anything malformed, on an
   * unsupported signature algorithm and on critical extensions this reader cannot honour.
   */
  static parse(input: Uint8Array | ArrayBuffer): RevocationList {
    const steps = RevocationList.steps(input);
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
    }
  }

  /**
   * parse(), giving the event loop a turn every ENTRIES_PER_TURN entries (setImmediate): what a
   * running server uses for a downloaded CRL, however large.
   */
  static async parseAsync(input: Uint8Array | ArrayBuffer): Promise<RevocationList> {
    const steps = RevocationList.steps(input);
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** The parse, yielding between chunks of entries. */
  private static *steps(input: Uint8Array | ArrayBuffer): Generator<void, RevocationList> {
    const der = input instanceof Uint8Array ? input : new Uint8Array(input);
    const outer = expect(readTlv(der, 0, der.length, 'CertificateList'), T.SEQUENCE, 'CertificateList');
    if (outer.end !== der.length) throw new CrlFormatError(`CertificateList: ${der.length - outer.end} bytes after the end`);
    const tbsT = expect(readTlv(der, outer.content, outer.end, 'tbsCertList'), T.SEQUENCE, 'tbsCertList');
    const algT = expect(readTlv(der, tbsT.end, outer.end, 'signatureAlgorithm'), T.SEQUENCE, 'signatureAlgorithm');
    const sigT = expect(readTlv(der, algT.end, outer.end, 'signatureValue'), T.BIT_STRING, 'signatureValue');
    if (sigT.end !== outer.end) throw new CrlFormatError('CertificateList: unexpected field after signatureValue');
    if (sigT.end - sigT.content < 2 || der[sigT.content] !== 0) throw new CrlFormatError('signatureValue: not a whole number of octets');

    // TBSCertList (RFC 5280 §5.1.2).
    let p = tbsT.content;
    const what = 'tbsCertList';
    let t = readTlv(der, p, tbsT.end, what);
    if (t.tag === T.INTEGER) {
      // §5.1.2.1: version v2 (1) when present.
      if (!(t.end - t.content === 1 && der[t.content] === 1)) throw new CrlFormatError('tbsCertList: unsupported version');
      p = t.end;
      t = readTlv(der, p, tbsT.end, what);
    }
    const innerAlg = expect(t, T.SEQUENCE, 'tbsCertList.signature');
    // §5.1.1.2: signatureAlgorithm MUST be the same as tbsCertList.signature.
    if (hex(der, innerAlg.start, innerAlg.end) !== hex(der, algT.start, algT.end)) {
      throw new CrlFormatError('signatureAlgorithm differs from tbsCertList.signature (RFC 5280 §5.1.1.2)');
    }
    const algOid = expect(readTlv(der, algT.content, algT.end, 'signatureAlgorithm'), T.OID, 'signatureAlgorithm');
    const alg = SIG_ALGS[hex(der, algOid.content, algOid.end)];
    if (!alg) throw new CrlFormatError(`unsupported signature algorithm (OID content ${hex(der, algOid.content, algOid.end)})`);
    const issuerT = expect(readTlv(der, innerAlg.end, tbsT.end, 'issuer'), T.SEQUENCE, 'issuer');
    const thisT = readTlv(der, issuerT.end, tbsT.end, 'thisUpdate');
    const thisUpdate = readTime(der, thisT, 'thisUpdate');
    p = thisT.end;
    let nextUpdate: Date | undefined;
    const entries = new Map<string, CrlEntry>();
    let crlNumber: bigint | undefined;
    let authorityKeyId: string | undefined;
    while (p < tbsT.end) {
      t = readTlv(der, p, tbsT.end, what);
      p = t.end;
      if ((t.tag === T.UTC || t.tag === T.GEN) && nextUpdate === undefined && entries.size === 0) {
        nextUpdate = readTime(der, t, 'nextUpdate');
      } else if (t.tag === T.SEQUENCE) {
        yield* readEntries(der, t, entries);
      } else if (t.tag === T.CTX0) {
        // crlExtensions [0] EXPLICIT Extensions.
        const exts = readExtensions(der, expect(readTlv(der, t.content, t.end, 'crlExtensions'), T.SEQUENCE, 'crlExtensions'), 'crlExtensions');
        for (const e of exts) {
          if (e.oid === EXT.crlNumber) {
            const n = expect(readTlv(der, e.value.content, e.value.end, 'cRLNumber'), T.INTEGER, 'cRLNumber');
            // X.690 §8.3.1: an INTEGER has at least one content octet (serialOf refuses an empty one).
            crlNumber = BigInt('0x' + serialOf(der, n));
          } else if (e.oid === EXT.authorityKeyIdentifier) {
            // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING OPTIONAL, ... }
            const seq = expect(readTlv(der, e.value.content, e.value.end, 'authorityKeyIdentifier'), T.SEQUENCE, 'authorityKeyIdentifier');
            if (seq.content < seq.end) {
              const k = readTlv(der, seq.content, seq.end, 'authorityKeyIdentifier');
              if (k.tag === 0x80) authorityKeyId = hex(der, k.content, k.end);
            }
          } else if (e.critical) {
            // §5.2: a critical CRL extension we cannot process makes the CRL unusable
            // (deltaCRLIndicator, issuingDistributionPoint, anything unknown).
            const name = e.oid === EXT.deltaCrlIndicator ? 'deltaCRLIndicator (delta CRLs are not supported)' : e.oid === EXT.issuingDistributionPoint ? 'issuingDistributionPoint (partitioned CRLs are not supported)' : `OID content ${e.oid}`;
            throw new CrlFormatError(`unsupported critical CRL extension: ${name}`);
          }
        }
      } else {
        throw new CrlFormatError(`tbsCertList: unexpected field with tag 0x${t.tag.toString(16)}`);
      }
    }
    return new RevocationList({
      der,
      issuerDer: der.slice(issuerT.start, issuerT.end),
      thisUpdate,
      ...(nextUpdate ? { nextUpdate } : {}),
      ...(crlNumber !== undefined ? { crlNumber } : {}),
      ...(authorityKeyId !== undefined ? { authorityKeyId } : {}),
      signatureAlgorithm: alg.name,
      digest: alg.digest,
      entries,
      tbs: der.subarray(tbsT.start, tbsT.end),
      signature: der.subarray(sigT.content + 1, sigT.end),
    });
  }
}

/** revokedCertificates: SEQUENCE OF SEQUENCE { userCertificate, revocationDate, crlEntryExtensions OPTIONAL }. */
function* readEntries(der: Uint8Array, list: Tlv, into: Map<string, CrlEntry>): Generator<void, void> {
  const what = 'revokedCertificates';
  for (let p = list.content, n = 0; p < list.end; n++) {
    if (n > 0 && n % ENTRIES_PER_TURN === 0) yield;
    const e = expect(readTlv(der, p, list.end, what), T.SEQUENCE, what);
    p = e.end;
    const serialT = expect(readTlv(der, e.content, e.end, what), T.INTEGER, 'userCertificate');
    const dateT = readTlv(der, serialT.end, e.end, what);
    const entry: CrlEntry = { serialHex: serialOf(der, serialT), revocationDate: readTime(der, dateT, 'revocationDate') };
    if (dateT.end < e.end) {
      const extsT = expect(readTlv(der, dateT.end, e.end, what), T.SEQUENCE, 'crlEntryExtensions');
      for (const x of readExtensions(der, extsT, 'crlEntryExtensions')) {
        if (x.oid === EXT.reasonCode) {
          const r = expect(readTlv(der, x.value.content, x.value.end, 'reasonCode'), T.ENUMERATED, 'reasonCode');
          if (r.end - r.content === 1) entry.reason = der[r.content]!;
        } else if (x.critical) {
          // §5.3: a critical entry extension we cannot process (certificateIssuer of indirect CRLs, …).
          throw new CrlFormatError(`unsupported critical CRL entry extension${x.oid === EXT.certificateIssuer ? ': certificateIssuer (indirect CRLs are not supported)' : ` (OID content ${x.oid})`}`);
        }
      }
    }
    into.set(entry.serialHex, entry);
  }
}

/**
 * The URLs of a certificate's CRL distribution points (RFC 5280 §4.2.1.13): the
 * uniformResourceIdentifier fullNames, in order. Distribution points with reasons or a cRLIssuer
 * (partitioned or indirect CRLs) are left out; so is anything that cannot be decoded.
 */
export function distributionPointUrls(cert: x509.X509Certificate): string[] {
  let ext: x509.CRLDistributionPointsExtension | null;
  try {
    ext = cert.getExtension(x509.CRLDistributionPointsExtension);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const dp of ext?.distributionPoints ?? []) {
    if (dp.reasons || dp.cRLIssuer) continue;
    for (const n of dp.distributionPoint?.fullName ?? []) if (n.uniformResourceIdentifier) out.push(n.uniformResourceIdentifier);
  }
  return out;
}
