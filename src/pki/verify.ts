/**
 * Certification path building and validation for the MSSanté trust space.
 *
 * A simplified but real RFC 5280 §6.1 validation:
 *  - path building from the leaf through presented intermediates and the
 *    CA bundle (issuer name match, RFC 5280 §6.1.4 (d)/(e); key identifiers
 *    used to pick candidates, RFC 4158 §3.5.12);
 *  - the path must end at a self-signed certificate that is in the bundle;
 *  - every signature verified (§6.1.3 (a)(1));
 *  - every certificate within its validity period (§6.1.3 (a)(2));
 *  - revocation against the CRLs of the bundle (§6.1.3 (a)(3), §6.3.3);
 *  - every issuer is a CA: basicConstraints cA (§6.1.4 (k)), keyCertSign
 *    (§6.1.4 (n)) and pathLenConstraint (§6.1.4 (l)(m));
 *  - unknown critical extensions reject the certificate (§6.1.4 (o));
 *  - extended key usage of the leaf (RFC 5280 §4.2.1.12).
 *
 * Not implemented: certificate policies and policy constraints (§6.1.3 (d)-
 * (f), §6.1.4 (g)-(j)), name constraints (a critical nameConstraints
 * extension therefore rejects the certificate), delta CRLs and issuing
 * distribution points. Revocation is soft-fail: with no CRL from a
 * certificate's issuer, the certificate is considered not revoked. A stale
 * CRL (nextUpdate passed) is still used, since a listed serial stays
 * revoked; CRL entries apply whatever `at` is. When the caller gives
 * `crlGraceMs`, a certificate whose issuer's newest valid CRL is past its
 * nextUpdate by more than that is refused as 'revocation-unknown' (RFC 5280
 * §6.3.3 (a): no current CRL could be obtained, the status is undetermined);
 * trust/ sets the grace from the configuration (docs/trust-space.md).
 *
 * Performance: anchors are indexed once per TrustAnchors object; parsed
 * peer certificates and signature results are kept in small LRU caches keyed
 * by DER digest, so a repeat connection from the same peer costs a few hash
 * computations and map look-ups.
 */
import { createHash } from 'node:crypto';
import { x509 } from './x509.js';
import { CrlFormatError, RevocationList } from './crl.js';
import { isoSeconds, nameKey, dnToString, subjectDnOf } from './names.js';

export type ChainFailure =
  | 'no-certificate'
  | 'untrusted'
  | 'expired'
  | 'not-yet-valid'
  | 'revoked'
  | 'bad-signature'
  | 'not-a-ca'
  | 'wrong-usage'
  | 'revocation-unknown'
  | 'malformed';

/** Roots and intermediates from a CA bundle, plus CRLs. Treat as immutable once built. */
export interface TrustAnchors {
  certs: x509.X509Certificate[];
  crls: RevocationList[];
}

export type VerifyChainResult =
  | { ok: true; leaf: x509.X509Certificate; subjectDn: string; path: x509.X509Certificate[] }
  | { ok: false; failure: ChainFailure; detail: string };

export interface VerifyChainInput {
  /** DER certificates as presented by the peer, leaf first; may be leaf only. */
  chain: Uint8Array[];
  anchors: TrustAnchors;
  /** Validation time (RFC 5280 §6.1.1 (b)); default now. */
  at?: Date;
  /** Required extended key usage of the leaf, when it has an EKU extension. */
  usage?: 'serverAuth' | 'clientAuth';
  /**
   * Stale-CRL rule: refuse ('revocation-unknown') a certificate whose issuer has CRLs here but
   * whose newest validly signed one passed its nextUpdate more than this long before `at`.
   * Undefined: stale CRLs are used as they are.
   */
  crlGraceMs?: number;
}

// ---------------------------------------------------------------------------
// Loading anchors

function asList(x: string | string[] | undefined): string[] {
  if (x === undefined) return [];
  return Array.isArray(x) ? x : [x];
}

/**
 * Parses CA bundle PEM text(s) (roots and intermediates, any number of
 * CERTIFICATE blocks per string) and CRL PEM text(s) (X509 CRL blocks).
 * Blocks are sorted by their PEM label (RFC 7468 §5, §6), so a CRL appended
 * to a bundle is accepted too. Duplicate certificates/CRLs are dropped.
 * Throws on text that holds no PEM block, on unsupported labels and on
 * undecodable blocks: a broken bundle is a configuration error.
 */
export function loadTrustAnchors(caBundlePem: string | string[], crlPem?: string | string[]): TrustAnchors {
  const certs: x509.X509Certificate[] = [];
  const crls: RevocationList[] = [];
  const seen = new Set<string>();
  const sources: Array<[string, string]> = [
    ...asList(caBundlePem).map((t, i): [string, string] => [`CA bundle #${i + 1}`, t]),
    ...asList(crlPem).map((t, i): [string, string] => [`CRL text #${i + 1}`, t]),
  ];
  for (const [what, text] of sources) {
    if (text.trim() === '') continue;
    let blocks: x509.PemStruct[];
    try {
      blocks = x509.PemConverter.decodeWithHeaders(text);
    } catch (e) {
      throw new Error(`${what}: cannot decode PEM (${(e as Error).message})`);
    }
    if (blocks.length === 0) throw new Error(`${what}: no PEM block found (expected -----BEGIN CERTIFICATE----- or -----BEGIN X509 CRL-----)`);
    blocks.forEach((b, i) => {
      const digest = sha256(new Uint8Array(b.rawData));
      if (seen.has(digest)) return;
      seen.add(digest);
      try {
        if (b.type === 'CERTIFICATE') certs.push(new x509.X509Certificate(b.rawData));
        // RFC 7468 §6 "X509 CRL"; "CRL" is what @peculiar/x509's toString('pem') writes.
        else if (b.type === 'X509 CRL' || b.type === 'CRL') crls.push(RevocationList.parse(new Uint8Array(b.rawData)));
        else throw new Error(`unsupported PEM label "${b.type}"`);
      } catch (e) {
        if (e instanceof CrlFormatError) throw new Error(`${what}, PEM block ${i + 1} (${b.type}): not a usable CRL: ${e.message}`);
        throw new Error(`${what}, PEM block ${i + 1} (${b.type}): ${(e as Error).message}`);
      }
    });
  }
  return { certs, crls };
}

// ---------------------------------------------------------------------------
// Per-certificate facts, computed once per parsed object

const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_EXT_KEY_USAGE = '2.5.29.37';
const OID_ANY_EKU = '2.5.29.37.0'; // RFC 5280 §4.2.1.12 anyExtendedKeyUsage
/** Critical extensions this validator processes or may safely ignore. */
const UNDERSTOOD_CRITICAL = new Set([
  OID_BASIC_CONSTRAINTS,
  OID_KEY_USAGE,
  OID_EXT_KEY_USAGE,
  '2.5.29.17', // subjectAltName — RFC 5280 §4.2.1.6 (critical when subject is empty)
  '2.5.29.14', // subjectKeyIdentifier
  '2.5.29.35', // authorityKeyIdentifier
  '2.5.29.32', // certificatePolicies — no policy processing: no initial policy set required
]);
const EKU_OIDS = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2' } as const;
const EKU_NAMES: Record<string, string> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
  [OID_ANY_EKU]: 'anyExtendedKeyUsage',
};
const CRL_REASONS = [
  'unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded',
  'cessationOfOperation', 'certificateHold', '7', 'removeFromCRL', 'privilegeWithdrawn', 'aACompromise',
];

interface CertInfo {
  cert: x509.X509Certificate;
  digest: string; // SHA-256 of the DER, hex
  subjectDn: string;
  issuerDn: string;
  subjectKey: string;
  issuerKey: string;
  selfIssued: boolean;
  ca?: { ca: boolean; pathLength?: number };
  keyUsage?: number;
  eku?: string[];
  skid?: string;
  akid?: string;
  unknownCritical: string[];
}

const infoCache = new WeakMap<x509.X509Certificate, CertInfo>();

function sha256(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

/** Extracts everything validation needs; throws if the certificate cannot be decoded. */
function infoOf(cert: x509.X509Certificate, digest?: string): CertInfo {
  const cached = infoCache.get(cert);
  if (cached) return cached;
  const subjectKey = nameKey(cert.subjectName);
  const issuerKey = nameKey(cert.issuerName);
  const info: CertInfo = {
    cert,
    digest: digest ?? sha256(new Uint8Array(cert.rawData)),
    subjectDn: subjectDnOf(cert),
    issuerDn: dnToString(cert.issuerName),
    subjectKey,
    issuerKey,
    selfIssued: subjectKey === issuerKey, // RFC 5280 §6.1: "self-issued"
    unknownCritical: [],
  };
  for (const ext of cert.extensions) {
    if (ext instanceof x509.BasicConstraintsExtension) info.ca = { ca: ext.ca, pathLength: ext.pathLength };
    else if (ext instanceof x509.KeyUsagesExtension) info.keyUsage = ext.usages;
    else if (ext instanceof x509.ExtendedKeyUsageExtension) info.eku = ext.usages.map(String);
    else if (ext instanceof x509.SubjectKeyIdentifierExtension) info.skid = ext.keyId.toLowerCase();
    else if (ext instanceof x509.AuthorityKeyIdentifierExtension) info.akid = ext.keyId?.toLowerCase();
    if (ext.critical && !UNDERSTOOD_CRITICAL.has(ext.type)) info.unknownCritical.push(ext.type);
  }
  infoCache.set(cert, info);
  return info;
}

// ---------------------------------------------------------------------------
// Caches

class Lru<V> {
  private readonly m = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(k: string): V | undefined {
    const v = this.m.get(k);
    if (v !== undefined) {
      this.m.delete(k);
      this.m.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    this.m.delete(k);
    this.m.set(k, v);
    if (this.m.size > this.max) this.m.delete(this.m.keys().next().value!);
  }
}

/** Parsed peer certificates by DER digest. */
const parsedCache = new Lru<x509.X509Certificate>(1024);
/** Signature verification results by "<child digest>:<issuer digest>" (pure function of the two DERs). */
const sigCache = new Lru<Promise<boolean>>(4096);

function verifySignature(child: CertInfo, issuer: CertInfo): Promise<boolean> {
  const k = `${child.digest}:${issuer.digest}`;
  let p = sigCache.get(k);
  if (!p) {
    // RFC 5280 §6.1.3 (a)(1); signatureOnly: validity is checked separately.
    p = child.cert.verify({ publicKey: issuer.cert.publicKey, signatureOnly: true }).catch(() => false);
    sigCache.set(k, p);
  }
  return p;
}

interface AnchorIndex {
  certsRef: x509.X509Certificate[];
  certsLen: number;
  crlsRef: RevocationList[];
  crlsLen: number;
  bySubject: Map<string, CertInfo[]>;
  anchorDigests: Set<string>;
  crlsByIssuer: Map<string, RevocationList[]>;
  /** CRL signature results by CRL object then issuer digest. */
  crlOk: Map<RevocationList, Map<string, Promise<boolean>>>;
}

const indexCache = new WeakMap<TrustAnchors, AnchorIndex>();

function indexOf(anchors: TrustAnchors): AnchorIndex {
  const cached = indexCache.get(anchors);
  if (
    cached &&
    cached.certsRef === anchors.certs &&
    cached.certsLen === anchors.certs.length &&
    cached.crlsRef === anchors.crls &&
    cached.crlsLen === anchors.crls.length
  ) {
    return cached;
  }
  const idx: AnchorIndex = {
    certsRef: anchors.certs,
    certsLen: anchors.certs.length,
    crlsRef: anchors.crls,
    crlsLen: anchors.crls.length,
    bySubject: new Map(),
    anchorDigests: new Set(),
    crlsByIssuer: new Map(),
    crlOk: new Map(),
  };
  for (const cert of anchors.certs) {
    let info: CertInfo;
    try {
      info = infoOf(cert);
    } catch {
      continue; // an undecodable anchor can never be part of a path
    }
    if (idx.anchorDigests.has(info.digest)) continue;
    idx.anchorDigests.add(info.digest);
    const list = idx.bySubject.get(info.subjectKey) ?? [];
    list.push(info);
    idx.bySubject.set(info.subjectKey, list);
  }
  for (const crl of anchors.crls) {
    let key: string;
    try {
      key = nameKey(crl.issuerDer);
    } catch {
      continue;
    }
    const list = idx.crlsByIssuer.get(key) ?? [];
    list.push(crl);
    idx.crlsByIssuer.set(key, list);
  }
  indexCache.set(anchors, idx);
  return idx;
}

function crlSignedBy(idx: AnchorIndex, crl: RevocationList, issuer: CertInfo): Promise<boolean> {
  let byIssuer = idx.crlOk.get(crl);
  if (!byIssuer) {
    byIssuer = new Map();
    idx.crlOk.set(crl, byIssuer);
  }
  let p = byIssuer.get(issuer.digest);
  if (!p) {
    // RFC 5280 §6.3.3 (f): if the issuer has keyUsage, it must assert cRLSign.
    if (issuer.keyUsage !== undefined && !(issuer.keyUsage & x509.KeyUsageFlags.cRLSign)) {
      p = Promise.resolve(false);
    } else {
      // §6.3.3 (g), with the CRL's own signatureAlgorithm.
      p = crl.verify(issuer.cert);
    }
    byIssuer.set(issuer.digest, p);
  }
  return p;
}

// ---------------------------------------------------------------------------
// Path building

type Fail = { ok: false; failure: ChainFailure; detail: string };
const fail = (failure: ChainFailure, detail: string): Fail => ({ ok: false, failure, detail });

const MAX_PATH = 8;

async function isSelfSigned(info: CertInfo): Promise<boolean> {
  return info.selfIssued && (await verifySignature(info, info));
}

async function buildPath(
  path: CertInfo[],
  presented: CertInfo[],
  idx: AnchorIndex,
): Promise<{ ok: true; path: CertInfo[] } | Fail> {
  const cur = path[path.length - 1]!;
  const curIsAnchor = idx.anchorDigests.has(cur.digest);
  if (await isSelfSigned(cur)) {
    if (curIsAnchor) return { ok: true, path };
    return fail('untrusted', `self-signed certificate ${cur.subjectDn} is not in the trust anchors`);
  }
  if (path.length >= MAX_PATH) {
    return fail('untrusted', `no trust anchor reached within ${MAX_PATH} certificates from ${path[0]!.subjectDn}`);
  }
  // Candidates: issuer name == subject name (RFC 5280 §6.1.4 (e)); anchors first.
  const byName: CertInfo[] = [];
  const seen = new Set(path.map((p) => p.digest));
  for (const c of [...(idx.bySubject.get(cur.issuerKey) ?? []), ...presented.filter((p) => p.subjectKey === cur.issuerKey)]) {
    if (seen.has(c.digest)) continue;
    seen.add(c.digest);
    byName.push(c);
  }
  // RFC 5280 §4.2.1.1 / RFC 4158 §3.5.12: the authority key identifier names
  // the issuer's key; a CA with the right name but another key is a different CA.
  const candidates = cur.akid ? byName.filter((c) => !c.skid || c.skid === cur.akid) : byName;
  if (candidates.length === 0) {
    const other = byName.length > 0 ? ` (a CA with that name is known, but with another key: authority key id ${cur.akid})` : '';
    return fail('untrusted', `certificate ${cur.subjectDn} was issued by ${cur.issuerDn}, which is not in the trust anchors${other}`);
  }
  let first: Fail | undefined;
  for (const cand of candidates) {
    let r: { ok: true; path: CertInfo[] } | Fail;
    if (!(await verifySignature(cur, cand))) {
      r = fail('bad-signature', `signature of certificate ${cur.subjectDn} does not verify with the key of ${cand.subjectDn}`);
    } else {
      r = await buildPath([...path, cand], presented, idx);
    }
    if (r.ok) return r;
    first ??= r;
  }
  return first!;
}

// ---------------------------------------------------------------------------
// Validation

async function revocationFailure(c: CertInfo, issuer: CertInfo, idx: AnchorIndex, at: Date, crlGraceMs?: number): Promise<Fail | undefined> {
  let newest: RevocationList | undefined;
  for (const crl of idx.crlsByIssuer.get(c.issuerKey) ?? []) {
    // §6.3.3 (b)(f)(g): CRL from this issuer (name) with a valid signature by its key.
    if (!(await crlSignedBy(idx, crl, issuer))) continue; // forged or foreign CRL: ignored
    if (!newest || (crl.nextUpdate?.getTime() ?? Infinity) > (newest.nextUpdate?.getTime() ?? Infinity)) newest = crl;
    const entry = crl.findRevoked(c.cert.serialNumber);
    if (!entry) continue;
    const reason = entry.reason;
    if (reason === x509.X509CrlReason.removeFromCRL) continue; // RFC 5280 §5.3.1, delta CRLs only
    const why = reason !== undefined ? `, reason ${CRL_REASONS[reason] ?? reason}` : '';
    return fail(
      'revoked',
      `certificate ${c.subjectDn} (serial ${c.cert.serialNumber.toLowerCase()}) was revoked on ${isoSeconds(entry.revocationDate)}${why}, per the CRL of ${issuer.subjectDn}`,
    );
  }
  // §6.3.3 (a): the newest CRL is past its nextUpdate and no newer one could be had: beyond the
  // grace period, the revocation status is undetermined and the certificate is not accepted.
  if (crlGraceMs !== undefined && newest?.nextUpdate && at.getTime() > newest.nextUpdate.getTime() + crlGraceMs) {
    return fail(
      'revocation-unknown',
      `the CRL of ${issuer.subjectDn} is stale (its nextUpdate ${isoSeconds(newest.nextUpdate)} has passed by more than the ${graceText(crlGraceMs)} allowed and no newer CRL was obtained): the revocation status of ${c.subjectDn} is unknown`,
    );
  }
  return undefined;
}

function graceText(ms: number): string {
  return ms >= 3_600_000 && ms % 3_600_000 === 0 ? `${ms / 3_600_000} h` : `${Math.round(ms / 60_000)} min`;
}

async function validatePath(path: CertInfo[], at: Date, idx: AnchorIndex, usage?: 'serverAuth' | 'clientAuth', crlGraceMs?: number): Promise<Fail | undefined> {
  const n = path.length;
  // §6.1.2 (k): max_path_length starts at n; decremented for every
  // non-self-issued CA certificate, capped by pathLenConstraint.
  let maxPathLength = n;
  // RFC 5280 §6.1.3 processes certificates from the trust anchor down to the leaf.
  for (let i = n - 1; i >= 0; i--) {
    const c = path[i]!;
    // §6.1.3 (a)(2): validity period.
    if (at.getTime() < c.cert.notBefore.getTime()) {
      return fail('not-yet-valid', `certificate ${c.subjectDn} is not valid before ${isoSeconds(c.cert.notBefore)}`);
    }
    if (at.getTime() > c.cert.notAfter.getTime()) {
      return fail('expired', `certificate ${c.subjectDn} expired on ${isoSeconds(c.cert.notAfter)}`);
    }
    // §6.1.3 (a)(3): revocation status (the trust anchor itself is not checked).
    if (i < n - 1) {
      const r = await revocationFailure(c, path[i + 1]!, idx, at, crlGraceMs);
      if (r) return r;
    }
    // §6.1.4 (o) / §6.1.5 (f): unrecognised critical extensions.
    if (c.unknownCritical.length > 0) {
      return fail('malformed', `certificate ${c.subjectDn} has unsupported critical extension(s) ${c.unknownCritical.join(', ')}`);
    }
    if (i === 0) break;
    // §6.1.4: preparation for the next certificate — c is an issuer.
    const child = path[i - 1]!;
    // §6.1.4 (k): basicConstraints cA must be TRUE (applied to the anchor too).
    if (!c.ca?.ca) {
      return fail('not-a-ca', `certificate ${c.subjectDn} issued ${child.subjectDn} but is not a CA (basicConstraints cA is not TRUE)`);
    }
    // §6.1.4 (l): a non-self-issued CA certificate consumes one unit of path length.
    if (i < n - 1 && !c.selfIssued) {
      if (maxPathLength <= 0) {
        return fail('not-a-ca', `certificate ${c.subjectDn} exceeds the pathLenConstraint of a CA above it`);
      }
      maxPathLength--;
    }
    // §6.1.4 (m): pathLenConstraint.
    if (c.ca.pathLength !== undefined && c.ca.pathLength < maxPathLength) maxPathLength = c.ca.pathLength;
    // §6.1.4 (n): keyUsage, when present, must allow certificate signing.
    if (c.keyUsage !== undefined && !(c.keyUsage & x509.KeyUsageFlags.keyCertSign)) {
      return fail('not-a-ca', `certificate ${c.subjectDn} issued ${child.subjectDn} but its keyUsage lacks keyCertSign`);
    }
  }
  // RFC 5280 §4.2.1.12: if the leaf has extendedKeyUsage, the purpose must be
  // listed (or anyExtendedKeyUsage).
  const leaf = path[0]!;
  if (usage && leaf.eku && !leaf.eku.includes(EKU_OIDS[usage]) && !leaf.eku.includes(OID_ANY_EKU)) {
    const has = leaf.eku.map((o) => EKU_NAMES[o] ?? o).join(', ') || 'none';
    return fail('wrong-usage', `certificate ${leaf.subjectDn} is not valid for ${usage}: its extendedKeyUsage allows ${has}`);
  }
  return undefined;
}

function parsePresented(der: Uint8Array): CertInfo {
  const digest = sha256(der);
  let cert = parsedCache.get(digest);
  if (!cert) {
    cert = new x509.X509Certificate(der);
    const info = infoOf(cert, digest); // throws on undecodable content before caching
    parsedCache.set(digest, cert);
    return info;
  }
  return infoOf(cert, digest);
}

/**
 * Validates the chain a peer presented against the trust anchors.
 * Never throws: every problem maps to a ChainFailure with an English detail
 * naming the certificate concerned.
 */
export async function verifyChain(input: VerifyChainInput): Promise<VerifyChainResult> {
  const { chain, anchors, usage } = input;
  const at = input.at ?? new Date();
  if (!chain || chain.length === 0) return fail('no-certificate', 'the peer presented no certificate');
  let idx: AnchorIndex;
  try {
    idx = indexOf(anchors);
  } catch (e) {
    return fail('malformed', `trust anchors could not be indexed: ${(e as Error).message}`);
  }
  const presented: CertInfo[] = [];
  for (let i = 0; i < chain.length; i++) {
    try {
      presented.push(parsePresented(chain[i]!));
    } catch (e) {
      const which = i === 0 ? 'leaf certificate' : `certificate #${i + 1} of the presented chain`;
      return fail('malformed', `${which} cannot be decoded as X.509 DER: ${(e as Error).message}`);
    }
  }
  const leaf = presented[0]!;
  try {
    const built = await buildPath([leaf], presented.slice(1), idx);
    if (!built.ok) return built;
    const bad = await validatePath(built.path, at, idx, usage, input.crlGraceMs);
    if (bad) return bad;
    return { ok: true, leaf: leaf.cert, subjectDn: leaf.subjectDn, path: built.path.map((p) => p.cert) };
  } catch (e) {
    return fail('malformed', `certificate ${leaf.subjectDn} could not be validated: ${(e as Error).message}`);
  }
}
