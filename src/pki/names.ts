/**
 * Distinguished Name handling: building IGC-Santé-shaped subject names and
 * rendering names as RFC 4514 strings.
 *
 * Ordering pitfall (checked against @peculiar/x509 2.2.0): `x509.Name`
 * keeps RDNs in ASN.1 SEQUENCE order both ways — `new Name("C=FR, CN=x")`
 * encodes C first, and `Name.toString()` prints the SEQUENCE front to back
 * ("C=FR, ST=…, O=…, OU=…, CN=…", joined with ", "), even though its doc
 * comment cites RFC 2253. RFC 4514 §2.1 wants the reverse (last RDN of the
 * SEQUENCE first) and no space after the comma. It also does not escape NUL
 * and escapes only the first control character of a value. Hence our own
 * reading of the ASN.1 structure decoded by @peculiar/asn1-x509 (the schema
 * library @peculiar/x509 itself is built on) into RDNs, which dn.ts — the one
 * RFC 4514 serialiser and the one DN comparison rule — formats and compares.
 */
import { formatDn, normalizeDn, type Rdn } from './dn.js';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate as AsnCertificate, Name as AsnName, type AttributeValue } from '@peculiar/asn1-x509';
import { x509 } from './x509.js';

/** Attribute type OIDs used by IGC-Santé subjects. */
export const OID = {
  commonName: '2.5.4.3',
  surname: '2.5.4.4',
  serialNumber: '2.5.4.5',
  countryName: '2.5.4.6',
  localityName: '2.5.4.7',
  stateOrProvinceName: '2.5.4.8',
  organizationName: '2.5.4.10',
  organizationalUnitName: '2.5.4.11',
  title: '2.5.4.12',
  givenName: '2.5.4.42',
} as const;

/**
 * Attribute type names for string output. The first block is RFC 4514 §3's
 * table; the rest are the names OpenSSL prints with `-nameopt RFC2253`
 * (what Postfix logs and operators compare against). Anything else is
 * printed as a dotted OID, as §3 requires.
 */
const TYPE_NAMES: Record<string, string> = {
  // RFC 4514 §3
  '2.5.4.3': 'CN',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.6': 'C',
  '2.5.4.9': 'STREET',
  '0.9.2342.19200300.100.1.25': 'DC',
  '0.9.2342.19200300.100.1.1': 'UID',
  // OpenSSL short/long names
  '2.5.4.4': 'SN',
  '2.5.4.42': 'GN',
  '2.5.4.5': 'serialNumber',
  '2.5.4.12': 'title',
  '2.5.4.43': 'initials',
  '2.5.4.44': 'generationQualifier',
  '2.5.4.46': 'dnQualifier',
  '2.5.4.65': 'pseudonym',
  '2.5.4.17': 'postalCode',
  '2.5.4.97': 'organizationIdentifier',
  '1.2.840.113549.1.9.1': 'emailAddress',
};


function isStringValue(v: AttributeValue): boolean {
  return (
    v.utf8String !== undefined ||
    v.printableString !== undefined ||
    v.ia5String !== undefined ||
    v.bmpString !== undefined ||
    v.universalString !== undefined ||
    v.teletexString !== undefined
  );
}

function stringValue(v: AttributeValue): string {
  return v.utf8String ?? v.printableString ?? v.ia5String ?? v.bmpString ?? v.universalString ?? v.teletexString ?? '';
}

function asnNameOf(name: x509.Name | ArrayBuffer | ArrayBufferView): AsnName {
  const der = name instanceof x509.Name ? name.toArrayBuffer() : name;
  return AsnConvert.parse(der, AsnName);
}

/**
 * The RDNs of a decoded Name in RFC 4514 string order: the last RDN of the ASN.1
 * SEQUENCE first (§2.1). Types are named from TYPE_NAMES (dotted OID otherwise, §3);
 * values of non-string types are '#' + hex of their BER encoding (§2.4).
 */
function rdnsOf(asn: AsnName): Rdn[] {
  const rdns: Rdn[] = [];
  for (const rdn of asn) {
    rdns.push(
      rdn.map((atv) => {
        const type = TYPE_NAMES[atv.type] ?? atv.type;
        const v = atv.value;
        if (isStringValue(v)) return { type, value: stringValue(v) };
        const ber = v.anyValue ? new Uint8Array(v.anyValue) : new Uint8Array(0);
        return { type, value: `#${Buffer.from(ber).toString('hex').toUpperCase()}`, binary: true };
      }),
    );
  }
  return rdns.reverse();
}

/**
 * RFC 4514 string of a Name: RDNs from the last of the ASN.1 SEQUENCE to the
 * first (§2.1), ',' between RDNs and '+' inside a multi-valued RDN (§2.2),
 * no spaces; values escaped by dn.ts (§2.4).
 */
export function dnToString(name: x509.Name | ArrayBuffer | ArrayBufferView): string {
  return formatDn(rdnsOf(asnNameOf(name)));
}

/**
 * Comparison key for names (chain building, CRL issuers): dn.ts's normalizeDn, the
 * same rule the trust list uses (RFC 4518-style value preparation, attribute types
 * canonicalised, AVAs inside an RDN sorted, RDN order kept). Two names match iff
 * their keys are equal.
 */
export function nameKey(name: x509.Name | ArrayBuffer | ArrayBufferView): string {
  return normalizeDn(rdnsOf(asnNameOf(name)));
}

const dnCache = new WeakMap<x509.X509Certificate, string>();

/**
 * Subject DN of a certificate as an RFC 4514 string, most specific RDN first,
 * e.g. "CN=mx.a.mssante.test,OU=318751234500012,O=Hopital A,ST=Paris (75),C=FR".
 * Accepts a parsed certificate or its DER encoding.
 */
export function subjectDnOf(cert: x509.X509Certificate | Uint8Array): string {
  if (cert instanceof x509.X509Certificate) {
    let dn = dnCache.get(cert);
    if (dn === undefined) {
      dn = dnToString(cert.subjectName);
      dnCache.set(cert, dn);
    }
    return dn;
  }
  // RFC 5280 §4.1: Certificate → tbsCertificate → subject
  const parsed = AsnConvert.parse(cert, AsnCertificate);
  return formatDn(rdnsOf(parsed.tbsCertificate.subject));
}

/** Issuer DN of a certificate as an RFC 4514 string. */
export function issuerDnOf(cert: x509.X509Certificate): string {
  return dnToString(cert.issuerName);
}

/**
 * Builds an x509.Name from attributes listed most-general first (ASN.1
 * SEQUENCE order: C, ST, O, OU, CN), one attribute per RDN. Value encodings
 * follow RFC 5280 §4.1.2.4 (UTF8String for DirectoryString) and Appendix A
 * (countryName and serialNumber are PrintableString).
 */
export function buildName(attrs: ReadonlyArray<readonly [oid: string, value: string]>): x509.Name {
  const printable = new Set<string>([OID.countryName, OID.serialNumber]);
  return new x509.Name(
    attrs.map(([oid, value]) => ({
      [oid]: [printable.has(oid) ? { printableString: value } : { utf8String: value }],
    })),
  );
}

/** ISO 8601 UTC without milliseconds, e.g. "2024-01-01T00:00:00Z". */
export function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
