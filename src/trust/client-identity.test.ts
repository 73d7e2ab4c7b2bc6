// TrustService.identifyClient: strong authentication of mail clients by TLS client certificate
// (issue 5), checked through the same certificate path as trust-space peers, against the test
// IGC-Santé PKI. Also peerCertificateChain over a real TLS handshake.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { generateRsaKeyPair, importPrivateKeyPem, SIGNING_ALG } from '../pki/keys.js';
import { OID, buildName } from '../pki/names.js';
import { TestPki, x509, type IssuedCertificate, type TrustAnchors } from '../pki/index.js';
import { peerCertificateChain, TrustService, type ClientIdentity } from './index.js';
import { buildTrustListXml, parseTrustList } from './list.js';

const ders = (pem: string): Uint8Array[] => x509.PemConverter.decode(pem).map((b) => new Uint8Array(b));
const DAY = 86_400_000;

let tmp: string;
let pki: TestPki;
let other: TestPki;
let anchors: TrustAnchors;
let trust: TrustService;
let personal: IssuedCertificate;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'caducee-client-id-'));
  [pki, other] = await Promise.all([TestPki.create(join(tmp, 'pki')), TestPki.create(join(tmp, 'other'), { name: 'AUTRE PKI' })]);
  anchors = await pki.anchors();
  const list = parseTrustList(buildTrustListXml([{ domain: 'a.mssante.test', operatorDn: 'CN=mx.a.mssante.test,C=FR' }]));
  // anchors() is read at each decision, as in main.ts (CRL reloads).
  trust = new TrustService({ anchors: () => anchors, list: () => list, routes: {} });
  personal = await pki.issuePersonal({ rpps: '10001234567', givenName: 'Claire', surname: 'Martin', profession: 'Médecin' });
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A leaf signed by the test PKI's intermediate with any subject and EKU (what TestPki does not issue). */
async function customLeaf(subject: Array<[string, string]>, eku: string[]): Promise<Uint8Array[]> {
  const interKey = await importPrivateKeyPem(await readFile(join(pki.dir, 'intermediate.key.pem'), 'utf8'));
  const keys = await generateRsaKeyPair();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '7f' + Date.now().toString(16),
    subject: buildName(subject),
    issuer: pki.intermediateCert.subjectName,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + DAY),
    publicKey: keys.publicKey,
    signingKey: interKey,
    signingAlgorithm: SIGNING_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(eku, false),
    ],
  });
  return [new Uint8Array(cert.rawData), new Uint8Array(pki.intermediateCert.rawData)];
}

function refused(r: ClientIdentity): Extract<ClientIdentity, { ok: false }> {
  assert.equal(r.ok, false, `expected a refusal, got ${JSON.stringify(r)}`);
  return r as Extract<ClientIdentity, { ok: false }>;
}

describe('TrustService.identifyClient', () => {
  test('personal CPS-like certificate: the RPPS comes from serialNumber "8" + RPPS', async () => {
    const r = await trust.identifyClient(ders(personal.chainPem));
    assert.deepEqual(r, { ok: true, kind: 'personal', rpps: '10001234567', subjectDn: personal.subjectDn, serial: personal.serialHex });
    // The leaf alone is enough: the intermediate is in the anchors.
    assert.equal((await trust.identifyClient(ders(personal.certPem))).ok, true);
  });

  test('organisation certificate, FINESS (OU "1" + FINESS)', async () => {
    const c = await pki.issueOrganisation({ id: '750000001', idType: 'FINESS', org: 'CH DEMO A', unit: 'Logiciel de démonstration' });
    const r = await trust.identifyClient(ders(c.chainPem));
    assert.deepEqual(r, { ok: true, kind: 'organisation', structure: { idType: 'FINESS', idValue: '750000001' }, subjectDn: c.subjectDn, serial: c.serialHex });
    const corsica = await pki.issueOrganisation({ id: '2A0000011', idType: 'FINESS', org: 'CH AJACCIO' });
    assert.deepEqual((await trust.identifyClient(ders(corsica.chainPem))) as any, {
      ok: true,
      kind: 'organisation',
      structure: { idType: 'FINESS', idValue: '2A0000011' },
      subjectDn: corsica.subjectDn,
      serial: corsica.serialHex,
    });
  });

  test('organisation certificate, SIRET (OU "3" + SIRET)', async () => {
    const c = await pki.issueOrganisation({ id: '13000000000019', idType: 'SIRET', org: 'MSP DEMO B' });
    const r = await trust.identifyClient(ders(c.chainPem));
    assert.deepEqual(r, { ok: true, kind: 'organisation', structure: { idType: 'SIRET', idValue: '13000000000019' }, subjectDn: c.subjectDn, serial: c.serialHex });
  });

  test('expired (and not yet valid) certificates', async () => {
    const old = await pki.issuePersonal({ rpps: '10001234568', givenName: 'Old', surname: 'Card', notBefore: new Date(Date.now() - 400 * DAY), notAfter: new Date(Date.now() - DAY) });
    const r = refused(await trust.identifyClient(ders(old.chainPem)));
    assert.equal(r.reason, 'expired');
    assert.match(r.detail, /expired on/);
    const future = await pki.issuePersonal({ rpps: '10001234569', givenName: 'Future', surname: 'Card', notBefore: new Date(Date.now() + DAY) });
    assert.equal(refused(await trust.identifyClient(ders(future.chainPem))).reason, 'expired');
  });

  test('revoked by the CRL', async () => {
    const c = await pki.issueOrganisation({ id: '750000002', idType: 'FINESS', org: 'CH REVOQUE' });
    assert.equal((await trust.identifyClient(ders(c.chainPem))).ok, true);
    await pki.revoke(c.serialHex, 1);
    anchors = await pki.anchors();
    const r = refused(await trust.identifyClient(ders(c.chainPem)));
    assert.equal(r.reason, 'revoked');
    assert.match(r.detail, /keyCompromise/);
    // Others stay accepted.
    assert.equal((await trust.identifyClient(ders(personal.chainPem))).ok, true);
  });

  test('issued by another CA: untrusted', async () => {
    const c = await other.issuePersonal({ rpps: '10001234567', givenName: 'Claire', surname: 'Martin' });
    const r = refused(await trust.identifyClient(ders(c.chainPem)));
    assert.equal(r.reason, 'untrusted');
    assert.match(r.detail, /AUTRE PKI/);
  });

  test('a server certificate is refused, even though it has clientAuth and OU "3" + SIRET', async () => {
    const c = await pki.issueServer({ host: 'mx.a.mssante.test', siret: '26750045200011', org: 'CH DEMO A', dept: 'Paris (75)' });
    const r = refused(await trust.identifyClient(ders(c.chainPem)));
    assert.equal(r.reason, 'unrecognised-subject');
    assert.match(r.detail, /server certificate/);
  });

  test('a serverAuth-only certificate is not valid for client authentication', async () => {
    const chain = await customLeaf(
      [
        [OID.countryName, 'FR'],
        [OID.organizationName, 'CH DEMO A'],
        [OID.organizationalUnitName, '1750000001'],
        [OID.commonName, 'serveur'],
      ],
      [x509.ExtendedKeyUsage.serverAuth],
    );
    assert.equal(refused(await trust.identifyClient(chain)).reason, 'not-client-auth');
  });

  test('subjects outside the conventions are unrecognised', async () => {
    const adeli = await customLeaf(
      [
        [OID.countryName, 'FR'],
        [OID.serialNumber, '0751234567'],
        [OID.commonName, 'Infirmier ADELI'],
      ],
      [x509.ExtendedKeyUsage.clientAuth],
    );
    assert.equal(refused(await trust.identifyClient(adeli)).reason, 'unrecognised-subject');
    const bare = await customLeaf([[OID.commonName, 'quelqu’un']], [x509.ExtendedKeyUsage.clientAuth]);
    assert.equal(refused(await trust.identifyClient(bare)).reason, 'unrecognised-subject');
    // A personal serialNumber wins over a structure OU (a CPS "personne physique" of a structure).
    const both = await customLeaf(
      [
        [OID.countryName, 'FR'],
        [OID.organizationalUnitName, '1750000001'],
        [OID.serialNumber, '810001234567'],
        [OID.commonName, 'Claire MARTIN'],
      ],
      [x509.ExtendedKeyUsage.clientAuth],
    );
    const r = await trust.identifyClient(both);
    assert.equal(r.ok && r.kind, 'personal');
  });

  test('empty chain: no-certificate', async () => {
    const r = refused(await trust.identifyClient([]));
    assert.equal(r.reason, 'no-certificate');
  });
});

describe('peerCertificateChain', () => {
  test('a server that requests (not requires) a client certificate sees it, and clients without one still connect', async () => {
    const server = await pki.issueServer({ host: 'localhost', siret: '26750045200011', org: 'CH DEMO A', dept: 'Paris (75)' });
    const ca = await readFile(pki.caBundlePath, 'utf8');
    const waiting: Array<(chain: Uint8Array[]) => void> = [];
    const srv = tls.createServer({ key: server.keyPem, cert: server.chainPem, ca, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, (s) => {
      waiting.shift()?.(peerCertificateChain(s));
      s.end();
    });
    const nextChain = () => new Promise<Uint8Array[]>((r) => waiting.push(r));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    const connect = (opts: tls.ConnectionOptions) =>
      new Promise<void>((resolve, reject) => {
        const c = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ...opts }, () => {
          c.resume();
          c.on('end', () => (c.destroy(), resolve()));
        });
        c.on('error', reject);
      });
    try {
      let seen = nextChain();
      await connect({ key: personal.keyPem, cert: personal.chainPem });
      const withCert = await seen;
      seen = nextChain();
      await connect({});
      const without = await seen;
      assert.ok(withCert.length >= 1);
      assert.equal(Buffer.from(withCert[0]!).equals(Buffer.from(ders(personal.certPem)[0]!)), true);
      const id = await trust.identifyClient(withCert);
      assert.equal(id.ok && id.kind === 'personal' && id.rpps, '10001234567');
      assert.deepEqual(without, []);
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });
});
