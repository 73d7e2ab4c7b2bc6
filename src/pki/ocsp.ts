/**
 * OCSP (RFC 6960) for stapling our own certificate's status, and the test PKI's responder.
 *
 * Every ASN.1 structure is encoded and decoded by @peculiar/asn1-ocsp (the OCSP schema of the
 * asn1-schema family, as asn1-x509 is for certificates); signatures are checked with node:crypto
 * and made with WebCrypto. Nothing here touches the network: trust/ocsp-stapling.ts fetches, the
 * demo (src/demo/ocsp-responder.ts) serves.
 *
 * The request follows the lightweight profile most responders are built for (RFC 5019 §2.1):
 * one certificate, a SHA-1 CertID, no nonce, unsigned.
 */
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Certificate, CRLReason } from '@peculiar/asn1-x509';
import {
  BasicOCSPResponse,
  CertID,
  CertStatus,
  id_kp_OCSPSigning,
  id_pkix_ocsp_basic,
  OCSPRequest,
  OCSPResponse,
  OCSPResponseStatus,
  Request,
  ResponderID,
  ResponseBytes,
  ResponseData,
  RevokedInfo,
  SingleResponse,
  TBSRequest,
} from '@peculiar/asn1-ocsp';
import { x509 } from './x509.js';
import { issuerDnOf, nameKey, subjectDnOf } from './names.js';
import type { CryptoKey } from './keys.js';
import { SIGNATURE_ALGORITHMS } from './sig-algs.js';

/** SHA-1 (RFC 6960 §4.1.1: the hash of CertID; RFC 5019 §2.1.1: SHA-1 is what responders accept). */
const ID_SHA1 = '1.3.14.3.2.26';
const ID_SHA256 = '2.16.840.1.101.3.4.2.1';
const CERTID_HASHES: Record<string, string> = { [ID_SHA1]: 'sha1', [ID_SHA256]: 'sha256' };

/** Signature algorithms verified (pki/sig-algs.ts, shared with the CRL reader). */
const SIG_ALGS = SIGNATURE_ALGORITHMS;

/** Clock skew tolerated on thisUpdate (the responder's clock a little ahead of ours), as OpenSSL's OCSP_check_validity. */
export const OCSP_CLOCK_SKEW_MS = 5 * 60_000;

/** Why a response is not one we may staple (logs and metrics name it). */
export type OcspFailure =
  | 'malformed' // not an OCSPResponse we can read
  | 'status' // responseStatus other than successful (RFC 6960 §4.2.1)
  | 'signer' // no acceptable signer: neither the CA nor a delegated responder it certified (§4.2.2.2)
  | 'signature' // the signature does not verify with the signer's key
  | 'certid' // no SingleResponse for our certificate (§3.2 (1))
  | 'revoked' // certStatus revoked (§2.2)
  | 'unknown' // certStatus unknown
  | 'not-yet-valid' // thisUpdate in the future (§3.2 (4))
  | 'expired'; // nextUpdate passed (§3.2 (5))

export class OcspResponseError extends Error {
  override name = 'OcspResponseError';
  constructor(
    readonly failure: OcspFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface OcspStatusInfo {
  /** The DER response, as received: what is stapled. */
  der: Uint8Array;
  producedAt: Date;
  thisUpdate: Date;
  nextUpdate?: Date;
  /** RFC 4514 subject of the certificate that signed it (the CA, or its delegated responder). */
  signer: string;
  delegated: boolean;
}

function bytes(b: ArrayBuffer | ArrayBufferView): Buffer {
  return ArrayBuffer.isView(b) ? Buffer.from(b.buffer, b.byteOffset, b.byteLength) : Buffer.from(b);
}

function hash(alg: string, data: ArrayBuffer | ArrayBufferView): Buffer {
  return createHash(alg).update(bytes(data)).digest();
}

/** A serial INTEGER's content without the leading zero octets of a positive number, for comparison. */
function serialKey(b: ArrayBuffer | ArrayBufferView): string {
  let h = bytes(b).toString('hex');
  while (h.length > 2 && h.startsWith('00')) h = h.slice(2);
  return h;
}

function asn1Cert(cert: x509.X509Certificate): Certificate {
  return AsnConvert.parse(cert.rawData, Certificate);
}

/** The responder URLs of a certificate's Authority Information Access (RFC 5280 §4.2.2.1, id-ad-ocsp), http(s) only. */
export function ocspUrlsOf(cert: x509.X509Certificate): string[] {
  const aia = cert.getExtension(x509.AuthorityInfoAccessExtension);
  if (!aia) return [];
  return aia.ocsp.filter((g) => g.type === 'url' && /^https?:\/\//i.test(g.value)).map((g) => g.value);
}

/**
 * The CertID naming `cert` (RFC 6960 §4.1.1): hashes of the issuer's DER subject name and of the
 * issuer's public key (the BIT STRING's value, without tag, length and unused-bits octet), and
 * the certificate's serial number.
 */
export function certIdOf(cert: x509.X509Certificate, issuer: x509.X509Certificate, hashOid = ID_SHA1): CertID {
  const alg = CERTID_HASHES[hashOid];
  if (!alg) throw new Error(`CertID hash algorithm ${hashOid} is not supported (SHA-1 or SHA-256)`);
  const iss = asn1Cert(issuer).tbsCertificate;
  const leaf = asn1Cert(cert).tbsCertificate;
  return new CertID({
    hashAlgorithm: new AlgorithmIdentifier({ algorithm: hashOid, parameters: null }),
    issuerNameHash: new OctetString(hash(alg, AsnConvert.serialize(iss.subject))),
    issuerKeyHash: new OctetString(hash(alg, iss.subjectPublicKeyInfo.subjectPublicKey)),
    serialNumber: leaf.serialNumber,
  });
}

function sameCertId(a: CertID, b: CertID): boolean {
  return (
    a.hashAlgorithm.algorithm === b.hashAlgorithm.algorithm &&
    bytes(a.issuerNameHash.buffer).equals(bytes(b.issuerNameHash.buffer)) &&
    bytes(a.issuerKeyHash.buffer).equals(bytes(b.issuerKeyHash.buffer)) &&
    serialKey(a.serialNumber) === serialKey(b.serialNumber)
  );
}

/** An OCSPRequest for `cert` (RFC 6960 §4.1.1), DER: unsigned, no nonce (RFC 5019 §2.1). */
export function buildOcspRequest(cert: x509.X509Certificate, issuer: x509.X509Certificate): Uint8Array {
  const req = new OCSPRequest({ tbsRequest: new TBSRequest({ requestList: [new Request({ reqCert: certIdOf(cert, issuer) })] }) });
  return new Uint8Array(AsnConvert.serialize(req));
}

/** The CertIDs asked for in a DER OCSPRequest (the demo responder reads them). */
export function parseOcspRequest(der: Uint8Array): CertID[] {
  let req: OCSPRequest;
  try {
    req = AsnConvert.parse(der, OCSPRequest);
  } catch (e) {
    throw new OcspResponseError('malformed', `not a DER OCSPRequest: ${(e as Error).message}`);
  }
  return req.tbsRequest.requestList.map((r) => r.reqCert);
}

function publicKeyOf(cert: x509.X509Certificate): KeyObject {
  return createPublicKey({ key: Buffer.from(cert.publicKey.rawData), format: 'der', type: 'spki' });
}

function verifySignature(algOid: string, data: Buffer, sig: Buffer, key: KeyObject): Promise<boolean> {
  const alg = SIG_ALGS[algOid];
  if (!alg) throw new OcspResponseError('signature', `the response is signed with an unsupported algorithm (${algOid})`);
  return new Promise((resolve) => cryptoVerify(alg.digest, data, key, sig, (err, ok) => resolve(!err && ok)));
}

function ekuAllowsOcspSigning(cert: x509.X509Certificate): boolean {
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  return !!eku && eku.usages.some((u) => u === id_kp_OCSPSigning);
}

function responderIdNames(id: ResponderID, cert: x509.X509Certificate): boolean {
  if (id.byName) return nameKey(AsnConvert.serialize(id.byName)) === nameKey(cert.subjectName);
  if (id.byKey) return bytes(id.byKey.buffer).equals(hash('sha1', asn1Cert(cert).tbsCertificate.subjectPublicKeyInfo.subjectPublicKey));
  return false;
}

/**
 * Reads and checks a DER OCSPResponse about `cert` (issued by `issuer`) at `now`, as a client
 * would (RFC 6960 §3.2); throws an OcspResponseError naming the first check that fails:
 * responseStatus successful (§4.2.1) with a basic response (§4.2.1); signed by the issuer itself
 * or by a delegated responder whose certificate the issuer signed and whose extendedKeyUsage has
 * id-kp-OCSPSigning (§4.2.2.2), named by the responderID; a SingleResponse whose CertID is our
 * certificate's (§3.2 (1)); certStatus good; thisUpdate not in the future (OCSP_CLOCK_SKEW_MS
 * allowed) and nextUpdate, when present, not passed (§3.2 (4)(5), §4.2.2.1).
 *
 * The delegated responder's own revocation is not checked (RFC 6960 §4.2.2.2.1 leaves it to the
 * CA, which usually marks it id-pkix-ocsp-nocheck).
 */
export async function checkOcspResponse(der: Uint8Array, cert: x509.X509Certificate, issuer: x509.X509Certificate, now = Date.now()): Promise<OcspStatusInfo> {
  let resp: OCSPResponse;
  let basic: BasicOCSPResponse;
  try {
    resp = AsnConvert.parse(der, OCSPResponse);
  } catch (e) {
    throw new OcspResponseError('malformed', `not a DER OCSPResponse: ${(e as Error).message}`);
  }
  // RFC 6960 §4.2.1: only "successful" carries responseBytes.
  if (resp.responseStatus !== OCSPResponseStatus.successful)
    throw new OcspResponseError('status', `the responder answered ${OCSPResponseStatus[resp.responseStatus] ?? resp.responseStatus} (responseStatus ${resp.responseStatus})`);
  if (!resp.responseBytes) throw new OcspResponseError('malformed', 'a successful OCSPResponse without responseBytes');
  if (resp.responseBytes.responseType !== id_pkix_ocsp_basic)
    throw new OcspResponseError('malformed', `responseType ${resp.responseBytes.responseType} is not id-pkix-ocsp-basic (RFC 6960 §4.2.1)`);
  try {
    basic = AsnConvert.parse(resp.responseBytes.response.buffer, BasicOCSPResponse);
  } catch (e) {
    throw new OcspResponseError('malformed', `not a DER BasicOCSPResponse: ${(e as Error).message}`);
  }
  const tbs = basic.tbsResponseDataRaw;
  if (!tbs) throw new OcspResponseError('malformed', 'the bytes of tbsResponseData could not be kept');
  const data = basic.tbsResponseData;

  // RFC 6960 §4.2.2.2: the signer is the CA that issued the certificate, or a responder the CA
  // certified for it (signed by the CA, id-kp-OCSPSigning), carried in `certs`. The responderID
  // (§4.2.2.3) says which.
  const issuerDn = subjectDnOf(issuer);
  let signer: x509.X509Certificate | undefined;
  let delegated = false;
  if (responderIdNames(data.responderID, issuer)) signer = issuer;
  else {
    for (const c of basic.certs ?? []) {
      const candidate = new x509.X509Certificate(AsnConvert.serialize(c));
      if (!responderIdNames(data.responderID, candidate)) continue;
      if (nameKey(candidate.issuerName) !== nameKey(issuer.subjectName))
        throw new OcspResponseError('signer', `the response is signed by ${subjectDnOf(candidate)}, whose certificate is issued by ${issuerDnOf(candidate)}, not by ${issuerDn} (RFC 6960 §4.2.2.2)`);
      if (!(await candidate.verify({ publicKey: issuer.publicKey, signatureOnly: true })))
        throw new OcspResponseError('signer', `the responder certificate ${subjectDnOf(candidate)} is not signed by the key of ${issuerDn} (RFC 6960 §4.2.2.2)`);
      if (!ekuAllowsOcspSigning(candidate))
        throw new OcspResponseError('signer', `the responder certificate ${subjectDnOf(candidate)} lacks id-kp-OCSPSigning in its extendedKeyUsage (RFC 6960 §4.2.2.2)`);
      if (candidate.notBefore.getTime() > now || candidate.notAfter.getTime() < now)
        throw new OcspResponseError('signer', `the responder certificate ${subjectDnOf(candidate)} is outside its validity (${candidate.notBefore.toISOString()} – ${candidate.notAfter.toISOString()})`);
      signer = candidate;
      delegated = true;
      break;
    }
  }
  if (!signer) throw new OcspResponseError('signer', `the response is signed neither by ${issuerDn} nor by a responder certificate it carries for that CA (RFC 6960 §4.2.2.2)`);
  if (!(await verifySignature(basic.signatureAlgorithm.algorithm, bytes(tbs), bytes(basic.signature), publicKeyOf(signer))))
    throw new OcspResponseError('signature', `the signature of the response does not verify with the key of ${subjectDnOf(signer)}`);

  // RFC 6960 §3.2 (1): the response is about the certificate asked for.
  const hashOid = data.responses.map((r) => r.certID.hashAlgorithm.algorithm).find((a) => CERTID_HASHES[a]) ?? ID_SHA1;
  const ours = certIdOf(cert, issuer, hashOid);
  const single = data.responses.find((r) => sameCertId(r.certID, ours));
  if (!single) throw new OcspResponseError('certid', `the response has no status for our certificate (serial ${cert.serialNumber}, issuer ${issuerDn})`);
  if (single.certStatus.revoked) {
    const r = single.certStatus.revoked;
    throw new OcspResponseError('revoked', `the responder says our certificate (serial ${cert.serialNumber}) is revoked since ${r.revocationTime.toISOString()}${r.revocationReason ? ` (reason ${r.revocationReason.reason})` : ''}`);
  }
  if (single.certStatus.good === undefined) throw new OcspResponseError('unknown', `the responder does not know our certificate (serial ${cert.serialNumber}): certStatus unknown`);
  // RFC 6960 §3.2 (4)(5), §4.2.2.1.
  if (single.thisUpdate.getTime() > now + OCSP_CLOCK_SKEW_MS) throw new OcspResponseError('not-yet-valid', `thisUpdate ${single.thisUpdate.toISOString()} is in the future`);
  if (single.nextUpdate && single.nextUpdate.getTime() <= now) throw new OcspResponseError('expired', `nextUpdate ${single.nextUpdate.toISOString()} has passed`);
  return {
    der,
    producedAt: data.producedAt,
    thisUpdate: single.thisUpdate,
    ...(single.nextUpdate ? { nextUpdate: single.nextUpdate } : {}),
    signer: subjectDnOf(signer),
    delegated,
  };
}

/** What a responder says about one CertID. */
export type OcspAnswer = { status: 'good' } | { status: 'revoked'; revokedAt: Date; reason?: number } | { status: 'unknown' };

/** An OCSPResponse with an error status and no responseBytes (RFC 6960 §4.2.1). */
export function ocspErrorResponse(status: Exclude<OCSPResponseStatus, OCSPResponseStatus.successful>): Uint8Array {
  return new Uint8Array(AsnConvert.serialize(new OCSPResponse({ responseStatus: status })));
}

/**
 * A signed basic OCSPResponse (RFC 6960 §4.2.1), DER, answering each CertID. The signer is the
 * issuing CA or its delegated responder (`signerCert`, RSA with SHA-256, key usable for 'sign');
 * a delegated responder's certificate is carried in `certs` (§4.2.2.2). The responderID is by key
 * hash (§4.2.2.3).
 */
export async function signOcspResponse(o: {
  answers: Array<{ certId: CertID; answer: OcspAnswer }>;
  signerCert: x509.X509Certificate;
  signerKey: CryptoKey;
  thisUpdate: Date;
  nextUpdate?: Date;
  producedAt?: Date;
  includeSigner?: boolean;
}): Promise<Uint8Array> {
  const spki = asn1Cert(o.signerCert).tbsCertificate.subjectPublicKeyInfo.subjectPublicKey;
  const data = new ResponseData({
    responderID: new ResponderID({ byKey: new OctetString(hash('sha1', spki)) }),
    producedAt: o.producedAt ?? new Date(),
    responses: o.answers.map(
      ({ certId, answer }) =>
        new SingleResponse({
          certID: certId,
          certStatus:
            answer.status === 'good'
              ? new CertStatus({ good: null })
              : answer.status === 'revoked'
                ? new CertStatus({ revoked: new RevokedInfo({ revocationTime: answer.revokedAt, ...(answer.reason !== undefined ? { revocationReason: new CRLReason(answer.reason) } : {}) }) })
                : new CertStatus({ unknown: null }),
          thisUpdate: o.thisUpdate,
          ...(o.nextUpdate ? { nextUpdate: o.nextUpdate } : {}),
        }),
    ),
  });
  const tbs = AsnConvert.serialize(data);
  // sha256WithRSAEncryption (RFC 4055 §5), NULL parameters (RFC 8017 Appendix A.2.4).
  const signature = await crypto.subtle.sign({ name: 'RSASSA-PKCS1-v1_5' }, o.signerKey, tbs);
  const basic = new BasicOCSPResponse({
    tbsResponseData: data,
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: '1.2.840.113549.1.1.11', parameters: null }),
    signature,
    ...(o.includeSigner ? { certs: [asn1Cert(o.signerCert)] } : {}),
  });
  const resp = new OCSPResponse({
    responseStatus: OCSPResponseStatus.successful,
    responseBytes: new ResponseBytes({ responseType: id_pkix_ocsp_basic, response: new OctetString(AsnConvert.serialize(basic)) }),
  });
  return new Uint8Array(AsnConvert.serialize(resp));
}

/** Does `certId` name a certificate `issuer` issued (name and key hashes; any serial)? */
export function certIdIssuedBy(certId: CertID, issuer: x509.X509Certificate): boolean {
  const alg = CERTID_HASHES[certId.hashAlgorithm.algorithm];
  if (!alg) return false;
  const iss = asn1Cert(issuer).tbsCertificate;
  return (
    bytes(certId.issuerNameHash.buffer).equals(hash(alg, AsnConvert.serialize(iss.subject))) &&
    bytes(certId.issuerKeyHash.buffer).equals(hash(alg, iss.subjectPublicKeyInfo.subjectPublicKey))
  );
}

/** The serial a CertID names, lower-case hex without leading zero octets (normalizeSerialHex's form). */
export function certIdSerialHex(certId: CertID): string {
  return serialKey(certId.serialNumber);
}
