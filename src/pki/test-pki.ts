/**
 * A test PKI shaped like France's IGC-Santé (the ANS health-sector PKI):
 * a root "AC RACINE <name> ELEMENTAIRE" and one intermediate
 * "AC <name> ELEMENTAIRE ORGANISATIONS" that issues server, personal (CPS-like)
 * and organisation certificates, plus CRLs.
 *
 * Differences from the real thing, on purpose: one intermediate issues every
 * kind of certificate (IGC-Santé has separate "PERSONNES" and
 * "ORGANISATIONS" CAs); no certificatePolicies (the ANS policy OIDs belong to
 * the ANS). Given a `crlBaseUrl` at creation, every
 * certificate it issues carries a CRL distribution point (RFC 5280
 * §4.2.1.13) as IGC-Santé certificates do: `<base>/intermediate.crl` in the
 * end-entity certificates, `<base>/root.crl` in the intermediate; whoever
 * serves `dir` over HTTP (the demo, src/demo/crl-server.ts) publishes them.
 * Given an `ocspUrl`, end-entity certificates also name that OCSP responder
 * in their Authority Information Access (RFC 5280 §4.2.2.1), and
 * `ocspResponse` answers requests as that responder (src/demo/ocsp-responder.ts
 * serves it).
 *
 * Files in `dir`:
 *   root.crt.pem, root.key.pem, intermediate.crt.pem, intermediate.key.pem,
 *   ca-bundle.pem (root + intermediate), crl.pem (intermediate CRL, then root
 *   CRL), intermediate.crl and root.crl (the same CRLs, DER, as published at
 *   the distribution points), state.json (serial counter, issued and revoked
 *   certificates, crlBaseUrl, ocspUrl).
 * Keys are written with mode 0600. Every state change re-reads state.json
 * first, so several TestPki instances (or processes, one after the other) on
 * the same directory keep distinct serials and a common revocation list;
 * truly simultaneous writers from different processes are not supported.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CRLNumber, id_ce_cRLNumber } from '@peculiar/asn1-x509';
import { x509 } from './x509.js';
import { type CryptoKey, exportPrivateKeyPem, generateRsaKeyPair, importPrivateKeyPem, keyMatchesCert, SIGNING_ALG, withNewline } from './keys.js';
import { buildName, OID, subjectDnOf } from './names.js';
import { loadTrustAnchors, type TrustAnchors } from './verify.js';
import { certIdIssuedBy, certIdSerialHex, ocspErrorResponse, parseOcspRequest, signOcspResponse, type OcspAnswer } from './ocsp.js';
import { id_kp_OCSPSigning, OCSPResponseStatus } from '@peculiar/asn1-ocsp';

export interface IssuedCertificate {
  certPem: string;
  keyPem: string;
  /** Leaf + intermediate, PEM concatenated. */
  chainPem: string;
  /** Lower-case hex, as in X509Certificate.serialNumber. */
  serialHex: string;
  /** RFC 4514, most specific first. */
  subjectDn: string;
}

export interface ValidityOptions {
  notBefore?: Date;
  notAfter?: Date;
}

export interface IssueServerOptions extends ValidityOptions {
  host: string;
  /** 14 digits; the subject OU is "3" + siret (IGC-Santé structure id type 3 = SIRET). */
  siret: string;
  org: string;
  /** Department, e.g. "Paris (75)". */
  dept: string;
  /** More DNS names; IPv4/IPv6 literals become iPAddress SANs. */
  altNames?: string[];
}

export interface IssuePersonalOptions extends ValidityOptions {
  /** 11 digits; the national id in serialNumber is "8" + rpps. */
  rpps: string;
  givenName: string;
  surname: string;
  /** e.g. "Médecin"; goes in the title attribute. */
  profession?: string;
}

export interface IssueOrganisationOptions extends ValidityOptions {
  /** FINESS (9 characters) or SIRET (14 digits). */
  id: string;
  idType: 'FINESS' | 'SIRET';
  org: string;
  /** Unit or service name; becomes the CN (default: org). */
  unit?: string;
}

export interface RevokedRecord {
  serialHex: string;
  revokedAt: string;
  reason?: number;
  /** Which CA's CRL lists it. */
  by: 'intermediate' | 'root';
}

export interface IssuedRecord {
  serialHex: string;
  kind: 'root' | 'intermediate' | 'server' | 'personal' | 'organisation' | 'ocsp-responder';
  subjectDn: string;
  notAfter: string;
}

interface PkiState {
  format: 'caducee-test-pki/1';
  name: string;
  /** Random per-PKI prefix so two PKIs created in turn never reuse issuer+serial. */
  serialPrefix: string;
  nextSerial: number;
  crlNumber: number;
  /** http:// base of the CRL distribution points, when the PKI was created with one. */
  crlBaseUrl?: string;
  /** http:// URL of the OCSP responder named in end-entity certificates (AIA), when created with one. */
  ocspUrl?: string;
  issued: IssuedRecord[];
  revoked: RevokedRecord[];
}

interface Ca {
  cert: x509.X509Certificate;
  key: CryptoKey;
}

const DAY = 86_400_000;
const YEAR = 365 * DAY;
const DEFAULT_NAME = 'TEST IGC-SANTE';
const ORG = 'CADUCEE TEST';
/** IGC-Santé structure id prefixes (first character of OU for structures). */
const ID_PREFIX = { FINESS: '1', SIRET: '3' } as const;
/** RFC 5280 §5.3.1 reason codes for a full CRL (7 is unused; 8 removeFromCRL is for delta CRLs only). */
const VALID_REASONS = new Set([0, 1, 2, 3, 4, 5, 6, 9, 10]);

const FILES = {
  root: 'root.crt.pem',
  rootKey: 'root.key.pem',
  intermediate: 'intermediate.crt.pem',
  intermediateKey: 'intermediate.key.pem',
  bundle: 'ca-bundle.pem',
  crl: 'crl.pem',
  /** DER CRLs at the distribution points (RFC 5280 §4.2.1.13: a DER CRL over HTTP). */
  intermediateCrl: 'intermediate.crl',
  rootCrl: 'root.crl',
  state: 'state.json',
} as const;

/** Canonical serial form: lower-case hex, no separators, no redundant leading zero octets. */
export function normalizeSerialHex(s: string): string {
  let h = s.trim().toLowerCase().replace(/^0x/, '').replace(/[\s:]/g, '');
  if (!/^[0-9a-f]+$/.test(h)) throw new Error(`serial "${s}" is not hexadecimal`);
  if (h.length % 2) h = '0' + h;
  while (h.length > 2 && h.startsWith('00')) h = h.slice(2);
  return h;
}

function parseState(text: string, path: string): PkiState {
  let state: PkiState;
  try {
    state = JSON.parse(text) as PkiState;
  } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (
    state?.format !== 'caducee-test-pki/1' ||
    !Number.isInteger(state.nextSerial) ||
    !Number.isInteger(state.crlNumber) ||
    !/^[0-9a-f]{8}$/.test(state.serialPrefix) ||
    !Array.isArray(state.revoked) ||
    !Array.isArray(state.issued)
  ) {
    throw new Error(`${path} is not a caducee test PKI state file`);
  }
  return state;
}

function certPem(c: x509.X509Certificate): string {
  return withNewline(c.toString('pem'));
}

async function writeAtomic(path: string, data: string | Buffer, mode = 0o644): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, data, { mode });
  await chmod(tmp, mode);
  await rename(tmp, path);
}

function checkText(what: string, v: string): void {
  if (typeof v !== 'string' || v.trim() === '') throw new Error(`${what} must not be empty`);
  if (/[\u0000-\u001f\u007f]/u.test(v)) throw new Error(`${what} must not contain control characters`);
}

function checkHost(host: string): void {
  // RFC 1035 §2.3.1 / RFC 1123 §2.1 label syntax; a leading "*." wildcard is allowed (RFC 6125 §6.4.3).
  const label = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;
  const labels = host.replace(/^\*\./, '').split('.');
  if (host.length > 253 || labels.length < 1 || !labels.every((l) => label.test(l))) {
    throw new Error(`host "${host}" is not a valid DNS name`);
  }
}

function checkValidity(o: ValidityOptions, defaultYears: number): { notBefore: Date; notAfter: Date } {
  const notBefore = o.notBefore ?? new Date(Date.now() - 5 * 60_000); // 5 min of clock-skew slack
  const notAfter = o.notAfter ?? new Date(notBefore.getTime() + defaultYears * YEAR);
  if (Number.isNaN(notBefore.getTime()) || Number.isNaN(notAfter.getTime())) throw new Error('notBefore/notAfter must be valid dates');
  if (notAfter.getTime() <= notBefore.getTime()) throw new Error('notAfter must be later than notBefore');
  return { notBefore, notAfter };
}

export class TestPki {
  readonly dir: string;
  readonly rootPath: string;
  readonly intermediatePath: string;
  readonly caBundlePath: string;
  readonly crlPath: string;
  /** DER CRL of the intermediate (served at `<crlBaseUrl>/intermediate.crl`). */
  readonly intermediateCrlPath: string;
  /** DER CRL of the root (served at `<crlBaseUrl>/root.crl`). */
  readonly rootCrlPath: string;
  readonly statePath: string;

  private root!: Ca;
  private inter!: Ca;
  private state!: PkiState;
  /** Serialises state/CRL writes. */
  private lock: Promise<unknown> = Promise.resolve();

  private constructor(dir: string) {
    this.dir = dir;
    this.rootPath = join(dir, FILES.root);
    this.intermediatePath = join(dir, FILES.intermediate);
    this.caBundlePath = join(dir, FILES.bundle);
    this.crlPath = join(dir, FILES.crl);
    this.intermediateCrlPath = join(dir, FILES.intermediateCrl);
    this.rootCrlPath = join(dir, FILES.rootCrl);
    this.statePath = join(dir, FILES.state);
  }

  /** Name given at creation ("TEST IGC-SANTE" by default). */
  get name(): string {
    return this.state.name;
  }
  get rootCert(): x509.X509Certificate {
    return this.root.cert;
  }
  get intermediateCert(): x509.X509Certificate {
    return this.inter.cert;
  }
  /** Base URL of the CRL distribution points (undefined: certificates carry none). */
  get crlBaseUrl(): string | undefined {
    return this.state.crlBaseUrl;
  }
  /** The OCSP responder named in end-entity certificates (undefined: they name none). */
  get ocspUrl(): string | undefined {
    return this.state.ocspUrl;
  }
  /** The distribution point of the CRL `ca` signs (undefined without a crlBaseUrl). */
  crlUrlOf(ca: 'intermediate' | 'root'): string | undefined {
    return this.state.crlBaseUrl === undefined ? undefined : `${this.state.crlBaseUrl}/${ca === 'root' ? FILES.rootCrl : FILES.intermediateCrl}`;
  }

  static exists(dir: string): boolean {
    return existsSync(join(dir, FILES.state));
  }


  /**
   * Creates a new PKI in `dir` (created if missing). Fails if one is already there.
   * `crlBaseUrl`: an http:// or https:// URL (no trailing slash needed) under which
   * intermediate.crl and root.crl will be served; every certificate then names its CRL there.
   */
  static async create(dir: string, opts: { name?: string; crlBaseUrl?: string; ocspUrl?: string } = {}): Promise<TestPki> {
    const name = opts.name ?? DEFAULT_NAME;
    checkText('PKI name', name);
    const httpUrl = (what: string, v: string): string => {
      let u: URL;
      try {
        u = new URL(v);
      } catch {
        throw new Error(`${what} "${v}" is not a URL`);
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`${what} must be an http:// or https:// URL, got "${v}"`);
      return v;
    };
    const crlBaseUrl = opts.crlBaseUrl === undefined ? undefined : httpUrl('crlBaseUrl', opts.crlBaseUrl).replace(/\/+$/, '');
    const ocspUrl = opts.ocspUrl === undefined ? undefined : httpUrl('ocspUrl', opts.ocspUrl);
    if (TestPki.exists(dir)) {
      throw new Error(`a test PKI already exists in ${dir} (${FILES.state} is present); load it instead`);
    }
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const pki = new TestPki(dir);
    const prefix = randomBytes(4);
    prefix[0] = (prefix[0]! & 0x7f) | 0x10; // positive INTEGER (RFC 5280 §4.1.2.2), fixed width
    pki.state = {
      format: 'caducee-test-pki/1',
      name,
      serialPrefix: prefix.toString('hex'),
      nextSerial: 1,
      crlNumber: 0,
      ...(crlBaseUrl !== undefined ? { crlBaseUrl } : {}),
      ...(ocspUrl !== undefined ? { ocspUrl } : {}),
      issued: [],
      revoked: [],
    };

    const [rootKeys, interKeys] = await Promise.all([generateRsaKeyPair(), generateRsaKeyPair()]);
    const now = Date.now();
    const caUnit = `${name} ELEMENTAIRE`;
    // The CA subjects differ only in their CN.
    const caName = (cn: string) =>
      buildName([
        [OID.countryName, 'FR'],
        [OID.organizationName, ORG],
        [OID.organizationalUnitName, caUnit],
        [OID.commonName, cn],
      ]);

    const rootCert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: pki.allocSerial(),
      name: caName(`AC RACINE ${name} ELEMENTAIRE`),
      keys: rootKeys,
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 20 * YEAR),
      signingAlgorithm: SIGNING_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true), // RFC 5280 §4.2.1.9: critical in CA certs
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true), // §4.2.1.3
        await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey), // §4.2.1.2 method (1)
      ],
    });
    pki.root = { cert: rootCert, key: rootKeys.privateKey };

    const interCert = await x509.X509CertificateGenerator.create({
      serialNumber: pki.allocSerial(),
      subject: caName(`AC ${name} ELEMENTAIRE ORGANISATIONS`),
      issuer: rootCert.subjectName, // byte-identical issuer name (RFC 5280 §4.1.2.4)
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 10 * YEAR),
      publicKey: interKeys.publicKey,
      signingKey: rootKeys.privateKey,
      signingAlgorithm: SIGNING_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true), // §4.2.1.9: issues end-entity certificates only
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(interKeys.publicKey),
        pki.akiFor(pki.root), // §4.2.1.1
        ...pki.cdpFor('root'),
      ],
    });
    pki.inter = { cert: interCert, key: interKeys.privateKey };

    pki.recordIssued('root', rootCert);
    pki.recordIssued('intermediate', interCert);
    const [rootKeyPem, interKeyPem] = await Promise.all([exportPrivateKeyPem(rootKeys.privateKey), exportPrivateKeyPem(interKeys.privateKey)]);
    await writeAtomic(join(dir, FILES.rootKey), rootKeyPem, 0o600);
    await writeAtomic(join(dir, FILES.intermediateKey), interKeyPem, 0o600);
    await writeAtomic(pki.rootPath, certPem(rootCert));
    await writeAtomic(pki.intermediatePath, certPem(interCert));
    await writeAtomic(pki.caBundlePath, certPem(rootCert) + certPem(interCert));
    await pki.writeCrl(); // also saves the state
    return pki;
  }

  /** Loads a PKI written by create(). */
  static async load(dir: string): Promise<TestPki> {
    const pki = new TestPki(dir);
    const read = async (f: string): Promise<string> => {
      try {
        return await readFile(join(dir, f), 'utf8');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new Error(
          code === 'ENOENT' ? `no test PKI in ${dir}: ${f} is missing` : `cannot read ${join(dir, f)}: ${(e as Error).message}`,
        );
      }
    };
    const [stateText, rootPem, rootKeyPem, interPem, interKeyPem] = await Promise.all([
      read(FILES.state),
      read(FILES.root),
      read(FILES.rootKey),
      read(FILES.intermediate),
      read(FILES.intermediateKey),
    ]);
    pki.state = parseState(stateText, pki.statePath);
    const rootCert = new x509.X509Certificate(rootPem);
    const interCert = new x509.X509Certificate(interPem);
    if (!keyMatchesCert(rootKeyPem, rootCert)) throw new Error(`${FILES.rootKey} does not match ${FILES.root} in ${dir}`);
    if (!keyMatchesCert(interKeyPem, interCert)) throw new Error(`${FILES.intermediateKey} does not match ${FILES.intermediate} in ${dir}`);
    pki.root = { cert: rootCert, key: await importPrivateKeyPem(rootKeyPem) };
    pki.inter = { cert: interCert, key: await importPrivateKeyPem(interKeyPem) };
    return pki;
  }

  /** Loads the PKI in `dir`, or creates it if there is none. */
  static async loadOrCreate(dir: string, opts: { name?: string } = {}): Promise<TestPki> {
    if (!TestPki.exists(dir)) return TestPki.create(dir, opts);
    const pki = await TestPki.load(dir);
    if (opts.name !== undefined && opts.name !== pki.name) {
      throw new Error(`the test PKI in ${dir} is named "${pki.name}", not "${opts.name}"; use another directory`);
    }
    return pki;
  }

  /** Trust anchors (CA bundle + current CRLs) read from this PKI's files. */
  async anchors(): Promise<TrustAnchors> {
    const [bundle, crl] = await Promise.all([readFile(this.caBundlePath, 'utf8'), readFile(this.crlPath, 'utf8')]);
    return loadTrustAnchors(bundle, crl);
  }

  /** Serials issued so far (including the CA certificates), oldest first. */
  get issued(): ReadonlyArray<Readonly<IssuedRecord>> {
    return this.state.issued;
  }

  /** Serials revoked so far. */
  get revoked(): ReadonlyArray<Readonly<RevokedRecord>> {
    return this.state.revoked;
  }

  // -------------------------------------------------------------------------
  // Issuance

  /**
   * TLS server certificate for an MSSanté operator host, IGC-Santé
   * "serveur applicatif" style: subject CN=<host>,OU=3<siret>,O=<org>,ST=<dept>,C=FR.
   */
  async issueServer(o: IssueServerOptions): Promise<IssuedCertificate> {
    checkHost(o.host);
    if (!/^\d{14}$/.test(o.siret)) throw new Error(`siret must be 14 digits, got "${o.siret}"`);
    checkText('org', o.org);
    checkText('dept', o.dept);
    const sans: x509.JsonGeneralNames = [{ type: 'dns', value: o.host }];
    for (const alt of o.altNames ?? []) {
      if (isIP(alt)) sans.push({ type: 'ip', value: alt });
      else {
        checkHost(alt);
        sans.push({ type: 'dns', value: alt });
      }
    }
    return this.issue(
      'server',
      [
        [OID.countryName, 'FR'],
        [OID.stateOrProvinceName, o.dept],
        [OID.organizationName, o.org],
        [OID.organizationalUnitName, ID_PREFIX.SIRET + o.siret],
        [OID.commonName, o.host],
      ],
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
      [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
      sans,
      o,
    );
  }

  /**
   * Personal certificate in the style of a CPS (Carte de Professionnel de
   * Santé) authentication certificate: CN="<given> <SURNAME>", serialNumber
   * (2.5.4.5) = "8" + RPPS (national id type 8 = RPPS), GN and SN attributes.
   */
  async issuePersonal(o: IssuePersonalOptions): Promise<IssuedCertificate> {
    if (!/^\d{11}$/.test(o.rpps)) throw new Error(`rpps must be 11 digits, got "${o.rpps}"`);
    checkText('givenName', o.givenName);
    checkText('surname', o.surname);
    if (o.profession !== undefined) checkText('profession', o.profession);
    const surname = o.surname.toLocaleUpperCase('fr-FR');
    const attrs: Array<[string, string]> = [[OID.countryName, 'FR']];
    if (o.profession) attrs.push([OID.title, o.profession]);
    attrs.push([OID.surname, surname], [OID.givenName, o.givenName], [OID.serialNumber, '8' + o.rpps], [OID.commonName, `${o.givenName} ${surname}`]);
    return this.issue(
      'personal',
      attrs,
      x509.KeyUsageFlags.digitalSignature,
      [x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.emailProtection],
      undefined,
      o,
    );
  }

  /**
   * Organisation ("personne morale") certificate: OU carries the structure
   * id with its IGC-Santé prefix ("1" FINESS, "3" SIRET), CN the unit (or org).
   */
  async issueOrganisation(o: IssueOrganisationOptions): Promise<IssuedCertificate> {
    if (o.idType === 'FINESS') {
      // FINESS: 9 characters, digits except Corsica's 2A/2B department prefix.
      if (!/^(\d{9}|2[AB]\d{7})$/.test(o.id)) throw new Error(`FINESS id must be 9 characters (digits, or 2A/2B + 7 digits), got "${o.id}"`);
    } else if (o.idType === 'SIRET') {
      if (!/^\d{14}$/.test(o.id)) throw new Error(`SIRET id must be 14 digits, got "${o.id}"`);
    } else {
      throw new Error(`idType must be FINESS or SIRET, got "${String(o.idType)}"`);
    }
    checkText('org', o.org);
    if (o.unit !== undefined) checkText('unit', o.unit);
    return this.issue(
      'organisation',
      [
        [OID.countryName, 'FR'],
        [OID.organizationName, o.org],
        [OID.organizationalUnitName, ID_PREFIX[o.idType] + o.id],
        [OID.commonName, o.unit ?? o.org],
      ],
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
      [x509.ExtendedKeyUsage.clientAuth],
      undefined,
      o,
    );
  }

  /**
   * A delegated OCSP responder certificate (RFC 6960 §4.2.2.2): issued by the intermediate, with
   * extendedKeyUsage id-kp-OCSPSigning only and keyUsage digitalSignature, so that it may sign
   * responses about the intermediate's certificates. It names no OCSP responder itself.
   */
  async issueOcspResponder(o: ValidityOptions & { cn?: string } = {}): Promise<IssuedCertificate> {
    const cn = o.cn ?? `OCSP ${this.state.name} ELEMENTAIRE ORGANISATIONS`;
    checkText('cn', cn);
    return this.issue(
      'ocsp-responder',
      [
        [OID.countryName, 'FR'],
        [OID.organizationName, ORG],
        [OID.commonName, cn],
      ],
      x509.KeyUsageFlags.digitalSignature,
      [id_kp_OCSPSigning],
      undefined,
      o,
    );
  }

  /**
   * Answers a DER OCSPRequest (RFC 6960 §4.1) as this PKI's responder would: each certificate the
   * intermediate issued is good or revoked as state.json says (the root answers for the
   * intermediate), a serial it never issued is unknown; a request about another CA's certificate
   * gets "unauthorized" (§2.3), an unreadable one "malformedRequest". Signed by the CA itself
   * (§4.2.2.2), thisUpdate now, nextUpdate one day later unless given (tests pass dates in the
   * past to make an expired response).
   */
  async ocspResponse(requestDer: Uint8Array, opts: { thisUpdate?: Date; nextUpdate?: Date } = {}): Promise<Uint8Array> {
    let certIds;
    try {
      certIds = parseOcspRequest(requestDer);
    } catch {
      return ocspErrorResponse(OCSPResponseStatus.malformedRequest);
    }
    if (certIds.length === 0) return ocspErrorResponse(OCSPResponseStatus.malformedRequest);
    const ca = [this.inter, this.root].find((c) => certIds.every((id) => certIdIssuedBy(id, c.cert)));
    if (!ca) return ocspErrorResponse(OCSPResponseStatus.unauthorized);
    this.refreshState();
    const by = ca === this.root ? 'root' : 'intermediate';
    const answers = certIds.map((certId) => {
      const serial = certIdSerialHex(certId);
      const issued = this.state.issued.find((r) => r.serialHex === serial && (by === 'root' ? r.kind === 'intermediate' : r.kind !== 'root' && r.kind !== 'intermediate'));
      const revoked = this.state.revoked.find((r) => r.serialHex === serial && r.by === by);
      const answer: OcspAnswer = !issued
        ? { status: 'unknown' }
        : revoked
          ? { status: 'revoked', revokedAt: new Date(revoked.revokedAt), ...(revoked.reason !== undefined ? { reason: revoked.reason } : {}) }
          : { status: 'good' };
      return { certId, answer };
    });
    const thisUpdate = new Date(Math.floor((opts.thisUpdate ?? new Date()).getTime() / 1000) * 1000);
    return signOcspResponse({ answers, signerCert: ca.cert, signerKey: ca.key, thisUpdate, nextUpdate: opts.nextUpdate ?? new Date(thisUpdate.getTime() + DAY) });
  }

  private async issue(
    kind: 'server' | 'personal' | 'organisation' | 'ocsp-responder',
    subject: Array<[string, string]>,
    keyUsage: number,
    eku: string[],
    sans: x509.JsonGeneralNames | undefined,
    validity: ValidityOptions,
  ): Promise<IssuedCertificate> {
    const { notBefore, notAfter } = checkValidity(validity, 3); // IGC-Santé end-entity certificates: 3 years
    // Reserve the serial on disk first: other instances on this directory see it.
    const serialNumber = await this.locked(async () => {
      this.refreshState();
      const serial = this.allocSerial();
      await this.saveState();
      return serial;
    });
    const keys = await generateRsaKeyPair();
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true), // RFC 5280 §4.2.1.9
      new x509.KeyUsagesExtension(keyUsage, true), // §4.2.1.3
      new x509.ExtendedKeyUsageExtension(eku, false), // §4.2.1.12
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey), // §4.2.1.2
      this.akiFor(this.inter), // §4.2.1.1
      ...this.cdpFor('intermediate'),
      ...this.aiaFor(kind),
    ];
    if (sans) extensions.push(new x509.SubjectAlternativeNameExtension(sans, false)); // §4.2.1.6
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber,
      subject: buildName(subject),
      issuer: this.inter.cert.subjectName,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: this.inter.key,
      signingAlgorithm: SIGNING_ALG,
      extensions,
    });
    const leafPem = certPem(cert);
    const issued: IssuedCertificate = {
      certPem: leafPem,
      keyPem: await exportPrivateKeyPem(keys.privateKey),
      chainPem: leafPem + certPem(this.inter.cert),
      serialHex: normalizeSerialHex(cert.serialNumber),
      subjectDn: subjectDnOf(cert),
    };
    await this.locked(async () => {
      this.refreshState();
      this.recordIssued(kind, cert);
      await this.saveState();
    });
    return issued;
  }

  // -------------------------------------------------------------------------
  // Revocation

  /**
   * Revokes a certificate issued by this PKI (end-entity certificates go on
   * the intermediate's CRL, the intermediate on the root's) and rewrites
   * crl.pem. `reason` is an RFC 5280 §5.3.1 CRLReason code. Revoking twice
   * keeps the first record.
   */
  async revoke(serialHex: string, reason?: number): Promise<void> {
    const serial = normalizeSerialHex(serialHex);
    if (reason !== undefined && !VALID_REASONS.has(reason)) {
      throw new Error(`reason must be an RFC 5280 CRLReason code (0-6, 9, 10), got ${reason}`);
    }
    await this.locked(async () => {
      this.refreshState();
      const rec = this.state.issued.find((r) => r.serialHex === serial);
      if (!rec) throw new Error(`serial ${serial} was not issued by the test PKI in ${this.dir}`);
      if (rec.kind === 'root') throw new Error(`serial ${serial} is the root CA itself; a root cannot be revoked by CRL`);
      if (!this.state.revoked.some((r) => r.serialHex === serial)) {
        this.state.revoked.push({
          serialHex: serial,
          revokedAt: new Date(Math.floor(Date.now() / 1000) * 1000).toISOString(),
          ...(reason !== undefined ? { reason } : {}),
          by: rec.kind === 'intermediate' ? 'root' : 'intermediate',
        });
        await this.saveState();
      }
    });
    await this.writeCrl();
  }

  /**
   * Writes crl.pem: a fresh CRL of the intermediate followed by one of the
   * root (RFC 5280 §5), each with a new cRLNumber; and the same two CRLs in
   * DER as intermediate.crl and root.crl. thisUpdate defaults to now,
   * nextUpdate to 7 days after it (tests pass dates in the past to make a
   * stale CRL). Returns the path of crl.pem.
   */
  async writeCrl(opts: { thisUpdate?: Date; nextUpdate?: Date } = {}): Promise<string> {
    return this.locked(async () => {
      this.refreshState();
      const thisUpdate = new Date(Math.floor((opts.thisUpdate ?? new Date()).getTime() / 1000) * 1000);
      const nextUpdate = opts.nextUpdate ?? new Date(thisUpdate.getTime() + 7 * DAY);
      if (Number.isNaN(thisUpdate.getTime()) || Number.isNaN(nextUpdate.getTime())) throw new Error('thisUpdate/nextUpdate must be valid dates');
      if (nextUpdate.getTime() <= thisUpdate.getTime()) throw new Error('nextUpdate must be later than thisUpdate');
      this.state.crlNumber += 1;
      const pems: string[] = [];
      const ders: Array<[string, ArrayBuffer]> = [];
      for (const [ca, by] of [[this.inter, 'intermediate'], [this.root, 'root']] as const) {
        const crl = await x509.X509CrlGenerator.create({
          issuer: ca.cert.subjectName, // must match the certificates' issuer field (RFC 5280 §5.1.2.3)
          thisUpdate,
          nextUpdate, // RFC 5280 §5.1.2.5: conforming CRL issuers MUST include nextUpdate
          signingKey: ca.key,
          signingAlgorithm: SIGNING_ALG,
          extensions: [
            this.akiFor(ca), // RFC 5280 §5.2.1: MUST
            // RFC 5280 §5.2.3: cRLNumber, MUST; encoded by the asn1-x509 schema.
            new x509.Extension(id_ce_cRLNumber, false, AsnConvert.serialize(new CRLNumber(this.state.crlNumber))),
          ],
          entries: this.state.revoked
            .filter((r) => r.by === by)
            .map((r) => ({
              serialNumber: r.serialHex,
              revocationDate: new Date(r.revokedAt),
              ...(r.reason !== undefined ? { reason: r.reason as x509.X509CrlReason } : {}),
            })),
        });
        // RFC 7468 §6 label "X509 CRL": @peculiar/x509's toString('pem') writes
        // "BEGIN CRL", which OpenSSL (hence Postfix) does not read.
        pems.push(withNewline(x509.PemConverter.encode(crl.rawData, 'X509 CRL')));
        ders.push([by === 'root' ? this.rootCrlPath : this.intermediateCrlPath, crl.rawData]);
      }
      for (const [path, der] of ders) await writeAtomic(path, Buffer.from(der));
      await writeAtomic(this.crlPath, pems.join(''));
      await this.saveState();
      return this.crlPath;
    });
  }

  // -------------------------------------------------------------------------
  // Files

  /**
   * Writes <basename>.crt.pem (leaf only), <basename>.key.pem (mode 0600) and
   * <basename>.chain.pem (leaf + intermediate) into `dir` (created if missing).
   */
  async writeIssued(dir: string, basename: string, c: IssuedCertificate): Promise<{ certPath: string; keyPath: string; chainPath: string }> {
    const certPath = join(dir, `${basename}.crt.pem`);
    const keyPath = join(dir, `${basename}.key.pem`);
    const chainPath = join(dir, `${basename}.chain.pem`);
    await mkdir(dirname(certPath), { recursive: true });
    await writeAtomic(keyPath, c.keyPem, 0o600);
    await writeAtomic(certPath, c.certPem);
    await writeAtomic(chainPath, c.chainPem);
    return { certPath, keyPath, chainPath };
  }

  // -------------------------------------------------------------------------
  // Internals

  private allocSerial(): string {
    const n = this.state.nextSerial++;
    if (n > 0xffffffff) throw new Error('serial counter exhausted');
    return this.state.serialPrefix + n.toString(16).padStart(8, '0');
  }

  private recordIssued(kind: IssuedRecord['kind'], cert: x509.X509Certificate): void {
    this.state.issued.push({
      serialHex: normalizeSerialHex(cert.serialNumber),
      kind,
      subjectDn: subjectDnOf(cert),
      notAfter: cert.notAfter.toISOString(),
    });
  }

  /** RFC 5280 §4.2.1.13: where the CRL covering a certificate signed by `ca` is (none without a base URL). */
  private cdpFor(ca: 'intermediate' | 'root'): x509.Extension[] {
    const url = this.crlUrlOf(ca);
    return url === undefined ? [] : [new x509.CRLDistributionPointsExtension([url], false)];
  }

  /** RFC 5280 §4.2.2.1: where the status of an end-entity certificate is told (none without an ocspUrl, nor for the responder itself). */
  private aiaFor(kind: IssuedRecord['kind']): x509.Extension[] {
    const url = this.state.ocspUrl;
    return url === undefined || kind === 'ocsp-responder' ? [] : [new x509.AuthorityInfoAccessExtension({ ocsp: [new x509.GeneralName('url', url)] }, false)];
  }

  private akiFor(ca: Ca): x509.AuthorityKeyIdentifierExtension {
    const ski = ca.cert.getExtension(x509.SubjectKeyIdentifierExtension);
    if (!ski) throw new Error(`CA certificate ${subjectDnOf(ca.cert)} has no subjectKeyIdentifier`);
    return new x509.AuthorityKeyIdentifierExtension(ski.keyId, false);
  }

  /** Re-reads state.json (if written yet) so changes by other instances are not lost. */
  private refreshState(): void {
    let text: string;
    try {
      text = readFileSync(this.statePath, 'utf8');
    } catch {
      return; // not written yet (during create)
    }
    this.state = parseState(text, this.statePath);
  }

  private async saveState(): Promise<void> {
    await writeAtomic(this.statePath, JSON.stringify(this.state, null, 2) + '\n', 0o600);
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }
}
