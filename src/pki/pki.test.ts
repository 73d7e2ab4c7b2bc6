import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { webcrypto } from 'node:crypto';
import { readFile, rm, stat, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { importPrivateKeyPem } from './keys.js';
import {
  loadTrustAnchors,
  RevocationList,
  subjectDnOf,
  TestPki,
  verifyChain,
  x509,
  type IssuedCertificate,
  type TrustAnchors,
} from './index.js';

const run = promisify(execFile);

/** DER blocks of a PEM text, as a TLS peer would present them. */
const ders = (pem: string): Uint8Array[] => x509.PemConverter.decode(pem).map((b) => new Uint8Array(b));

async function openssl(args: string[], cwd: string): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run('openssl', args, { cwd });
    return { code: 0, out: stdout + stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, out: (err.stdout ?? '') + (err.stderr ?? '') };
  }
}

const SERVER = { host: 'mx.a.mssante.test', siret: '18751234500012', org: 'Hopital A', dept: 'Paris (75)' };
const SERVER_DN = 'CN=mx.a.mssante.test,OU=318751234500012,O=Hopital A,ST=Paris (75),C=FR';

let tmp: string;
let pki: TestPki; // "TEST IGC-SANTE"
let other: TestPki; // independent PKI, another name
let server: IssuedCertificate;
let anchors: TrustAnchors;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'caducee-pki-'));
  [pki, other] = await Promise.all([TestPki.create(join(tmp, 'a')), TestPki.create(join(tmp, 'b'), { name: 'AUTRE PKI' })]);
  server = await pki.issueServer({ ...SERVER, altNames: ['127.0.0.1', 'mx2.a.mssante.test'] });
  anchors = await pki.anchors();
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('TestPki', () => {
  test('writes the CA files and an IGC-Santé-shaped hierarchy', async () => {
    for (const p of [pki.rootPath, pki.intermediatePath, pki.caBundlePath, pki.crlPath, pki.statePath]) await stat(p);
    assert.equal(subjectDnOf(pki.rootCert), 'CN=AC RACINE TEST IGC-SANTE ELEMENTAIRE,OU=TEST IGC-SANTE ELEMENTAIRE,O=CADUCEE TEST,C=FR');
    assert.equal(
      subjectDnOf(pki.intermediateCert),
      'CN=AC TEST IGC-SANTE ELEMENTAIRE ORGANISATIONS,OU=TEST IGC-SANTE ELEMENTAIRE,O=CADUCEE TEST,C=FR',
    );
    assert.match(subjectDnOf(other.rootCert), /^CN=AC RACINE AUTRE PKI ELEMENTAIRE,/);
    const bundle = loadTrustAnchors(await readFile(pki.caBundlePath, 'utf8'));
    assert.equal(bundle.certs.length, 2);
    const crls = loadTrustAnchors([], await readFile(pki.crlPath, 'utf8')).crls;
    assert.equal(crls.length, 2, 'intermediate CRL + root CRL');
    assert.equal(crls[0]!.size, 0, 'initially empty');
    assert.match(await readFile(pki.crlPath, 'utf8'), /^-----BEGIN X509 CRL-----/);
    assert.equal((await stat(join(pki.dir, 'intermediate.key.pem'))).mode & 0o777, 0o600);
  });

  test('server certificate: subject, SANs, usages, key and signature algorithm', () => {
    assert.equal(server.subjectDn, SERVER_DN);
    const c = new x509.X509Certificate(server.certPem);
    assert.equal(c.serialNumber.toLowerCase(), server.serialHex);
    const san = c.getExtension(x509.SubjectAlternativeNameExtension)!;
    assert.deepEqual(
      san.names.items.map((n) => `${n.type}:${n.value}`),
      ['dns:mx.a.mssante.test', 'ip:127.0.0.1', 'dns:mx2.a.mssante.test'],
    );
    const eku = c.getExtension(x509.ExtendedKeyUsageExtension)!;
    assert.deepEqual([...eku.usages], [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
    const ku = c.getExtension(x509.KeyUsagesExtension)!;
    assert.equal(ku.usages, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    assert.equal(c.getExtension(x509.BasicConstraintsExtension)!.ca, false);
    assert.equal((c.publicKey.algorithm as { modulusLength?: number }).modulusLength, 2048);
    assert.deepEqual(c.signatureAlgorithm, { name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-256' } });
    assert.match(server.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.equal(ders(server.chainPem).length, 2);
  });

  test('Node tls loads the key and chain, and a real handshake verifies both ways', async () => {
    const ca = await readFile(pki.caBundlePath, 'utf8');
    tls.createSecureContext({ key: server.keyPem, cert: server.chainPem });
    const person = await pki.issuePersonal({ rpps: '10001234567', givenName: 'Jeanne', surname: 'Martin' });
    const srv = tls.createServer({ key: server.keyPem, cert: server.chainPem, requestCert: true, rejectUnauthorized: false });
    const peerChain = new Promise<Uint8Array[]>((resolve) => {
      srv.on('secureConnection', (s) => {
        const out: Uint8Array[] = [];
        for (let c = s.getPeerCertificate(true); c?.raw && !out.some((d) => Buffer.from(d).equals(c.raw)); c = c.issuerCertificate) {
          out.push(new Uint8Array(c.raw));
        }
        resolve(out);
        s.end();
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    try {
      const client = tls.connect({ host: '127.0.0.1', port, servername: SERVER.host, ca, key: person.keyPem, cert: person.chainPem });
      await new Promise<void>((resolve, reject) => {
        client.once('secureConnect', resolve);
        client.once('error', reject);
      });
      assert.equal(client.authorized, true, String(client.authorizationError));
      const fromServer = client.getPeerCertificate(true);
      const r = await verifyChain({ chain: [fromServer.raw], anchors, usage: 'serverAuth' }); // a Buffer view is fine
      assert.ok(r.ok && r.subjectDn === SERVER_DN);
      client.end();
      const fromClient = await peerChain;
      const rc = await verifyChain({ chain: fromClient, anchors, usage: 'clientAuth' });
      assert.ok(rc.ok, JSON.stringify(rc));
      assert.equal(rc.subjectDn, 'CN=Jeanne MARTIN,serialNumber=810001234567,GN=Jeanne,SN=MARTIN,C=FR');
    } finally {
      srv.close();
    }
  });

  test('load() and loadOrCreate() reuse the directory; serials keep counting', async () => {
    const before = pki.issued.length;
    const reloaded = await TestPki.load(pki.dir);
    assert.equal(reloaded.name, 'TEST IGC-SANTE');
    assert.equal(reloaded.rootCert.serialNumber, pki.rootCert.serialNumber);
    assert.equal(reloaded.issued.length, before);
    const again = await TestPki.loadOrCreate(pki.dir);
    assert.equal(again.intermediateCert.serialNumber, pki.intermediateCert.serialNumber);
    const c = await reloaded.issueOrganisation({ id: '18751234500012', idType: 'SIRET', org: 'Clinique B' });
    const last = BigInt('0x' + pki.issued.at(-1)!.serialHex);
    assert.equal(BigInt('0x' + c.serialHex), last + 1n, 'next serial after the last one issued before reload');
    assert.ok(!pki.issued.some((r) => r.serialHex === c.serialHex));
    const third = await TestPki.load(pki.dir);
    assert.equal(third.issued.at(-1)!.serialHex, c.serialHex);
    await assert.rejects(TestPki.create(pki.dir), /already exists/);
    await assert.rejects(TestPki.loadOrCreate(pki.dir, { name: 'X' }), /is named "TEST IGC-SANTE"/);
    await assert.rejects(TestPki.load(join(tmp, 'nothing')), /no test PKI/);
    // the original instance must not reuse serials the reloaded one handed out
    pki = third;
  });

  test('two instances on one directory share serials and revocations', async () => {
    const one = await TestPki.load(pki.dir);
    const two = await TestPki.load(pki.dir);
    const a = await one.issueServer({ ...SERVER, host: 'one.a.mssante.test' });
    const b = await two.issueServer({ ...SERVER, host: 'two.a.mssante.test' });
    assert.notEqual(a.serialHex, b.serialHex);
    await one.revoke(b.serialHex, 4); // issued by the other instance
    await two.writeCrl(); // must keep one's revocation
    const anchorsNow = await two.anchors();
    const r = await verifyChain({ chain: ders(b.chainPem), anchors: anchorsNow });
    assert.equal(!r.ok && r.failure, 'revoked');
    assert.match(!r.ok ? r.detail : '', /reason superseded/);
    assert.ok((await verifyChain({ chain: ders(a.chainPem), anchors: anchorsNow })).ok);
  });

  test('input validation', async () => {
    await assert.rejects(pki.issueServer({ ...SERVER, siret: '123' }), /siret must be 14 digits/);
    await assert.rejects(pki.issueServer({ ...SERVER, host: 'bad host' }), /not a valid DNS name/);
    await assert.rejects(pki.issuePersonal({ rpps: '1', givenName: 'A', surname: 'B' }), /rpps must be 11 digits/);
    await assert.rejects(pki.issueOrganisation({ id: '12', idType: 'FINESS', org: 'X' }), /FINESS id/);
    await assert.rejects(pki.revoke('abcdef'), /was not issued/);
  });

  test('writeIssued writes leaf, 0600 key and chain', async () => {
    const out = join(tmp, 'out');
    const paths = await pki.writeIssued(out, 'mx', server);
    assert.equal(await readFile(paths.certPath, 'utf8'), server.certPem);
    assert.equal(await readFile(paths.chainPath, 'utf8'), server.chainPem);
    assert.equal((await stat(paths.keyPath)).mode & 0o777, 0o600);
  });
});

describe('openssl agrees', () => {
  test('openssl verify -crl_check accepts the chain; subject matches RFC 2253 output', async () => {
    const { certPath } = await pki.writeIssued(join(tmp, 'ossl'), 'mx', server);
    const v = await openssl(['verify', '-CAfile', pki.caBundlePath, '-crl_check_all', '-CRLfile', pki.crlPath, certPath], tmp);
    assert.equal(v.code, 0, v.out);
    assert.match(v.out, /: OK/);
    const s = await openssl(['x509', '-in', certPath, '-noout', '-subject', '-nameopt', 'RFC2253,-esc_msb'], tmp);
    assert.equal(s.out.trim(), `subject=${SERVER_DN}`);
    const t = await openssl(['x509', '-in', certPath, '-noout', '-text'], tmp);
    assert.match(t.out, /Signature Algorithm: sha256WithRSAEncryption/);
    assert.match(t.out, /Public-Key: \(2048 bit\)/);
    assert.match(t.out, /TLS Web Server Authentication, TLS Web Client Authentication/);
    const k = await openssl(['pkey', '-in', join(tmp, 'ossl', 'mx.key.pem'), '-noout'], tmp);
    assert.equal(k.code, 0, k.out);
  });
});

describe('verifyChain', () => {
  test('accepts leaf + intermediate, and leaf alone', async () => {
    const r = await verifyChain({ chain: ders(server.chainPem), anchors, usage: 'serverAuth' });
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.subjectDn, SERVER_DN);
    assert.equal(r.leaf.serialNumber.toLowerCase(), server.serialHex);
    assert.deepEqual(
      r.path.map((c) => c.serialNumber),
      [r.leaf.serialNumber, pki.intermediateCert.serialNumber, pki.rootCert.serialNumber],
    );
    const alone = await verifyChain({ chain: ders(server.certPem), anchors, usage: 'clientAuth' });
    assert.ok(alone.ok);
  });

  test('expired and not-yet-valid certificates', async () => {
    const [old, future] = await Promise.all([
      pki.issueServer({ ...SERVER, notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2024-01-01T00:00:00Z') }),
      pki.issueServer({ ...SERVER, notBefore: new Date(Date.now() + 86_400_000), notAfter: new Date(Date.now() + 2 * 86_400_000) }),
    ]);
    const r = await verifyChain({ chain: ders(old.chainPem), anchors });
    assert.deepEqual(r, { ok: false, failure: 'expired', detail: `certificate ${SERVER_DN} expired on 2024-01-01T00:00:00Z` });
    const f = await verifyChain({ chain: ders(future.chainPem), anchors });
    assert.equal(!f.ok && f.failure, 'not-yet-valid');
    // `at` moves the clock: the valid server certificate is not valid in 2016
    const at = await verifyChain({ chain: ders(server.chainPem), anchors, at: new Date('2016-01-01T00:00:00Z') });
    assert.equal(!at.ok && at.failure, 'not-yet-valid');
  });

  test('a certificate from another PKI is untrusted, naming its issuer', async () => {
    const foreign = await other.issueServer(SERVER);
    const r = await verifyChain({ chain: ders(foreign.certPem), anchors });
    assert.equal(!r.ok && r.failure, 'untrusted');
    assert.match(!r.ok ? r.detail : '', /issued by CN=AC AUTRE PKI ELEMENTAIRE ORGANISATIONS,OU=AUTRE PKI ELEMENTAIRE,O=CADUCEE TEST,C=FR, which is not in the trust anchors/);
    const full = await verifyChain({ chain: ders(foreign.chainPem), anchors });
    assert.equal(!full.ok && full.failure, 'untrusted');
    assert.match(!full.ok ? full.detail : '', /AC RACINE AUTRE PKI ELEMENTAIRE/);
    // and the other way round
    const back = await verifyChain({ chain: ders(server.chainPem), anchors: await other.anchors() });
    assert.equal(!back.ok && back.failure, 'untrusted');
  });

  test('the path must reach a self-signed anchor: an intermediate-only bundle is not enough', async () => {
    const only = loadTrustAnchors(await readFile(pki.intermediatePath, 'utf8'));
    const r = await verifyChain({ chain: ders(server.chainPem), anchors: only });
    assert.equal(!r.ok && r.failure, 'untrusted');
    assert.match(!r.ok ? r.detail : '', /issued by CN=AC RACINE TEST IGC-SANTE ELEMENTAIRE/);
  });

  test('revoked after revoke() + CRL reload; openssl agrees; forged CRLs are ignored', async () => {
    const victim = await pki.issueServer({ ...SERVER, host: 'old.a.mssante.test' });
    assert.ok((await verifyChain({ chain: ders(victim.chainPem), anchors: await pki.anchors() })).ok);
    await pki.revoke(victim.serialHex, 1);
    // old anchors still carry the old CRL
    assert.ok((await verifyChain({ chain: ders(victim.chainPem), anchors })).ok);
    const reloaded = await (await TestPki.load(pki.dir)).anchors();
    const r = await verifyChain({ chain: ders(victim.chainPem), anchors: reloaded });
    assert.equal(!r.ok && r.failure, 'revoked');
    assert.match(!r.ok ? r.detail : '', /^certificate CN=old\.a\.mssante\.test,.* \(serial [0-9a-f]+\) was revoked on .*Z, reason keyCompromise/);
    assert.ok((await verifyChain({ chain: ders(server.chainPem), anchors: reloaded })).ok, 'others stay valid');
    assert.ok(pki.revoked.some((x) => x.serialHex === victim.serialHex && x.reason === 1 && x.by === 'intermediate'));

    const { certPath } = await pki.writeIssued(join(tmp, 'revoked'), 'old', victim);
    const v = await openssl(['verify', '-CAfile', pki.caBundlePath, '-crl_check', '-CRLfile', pki.crlPath, certPath], tmp);
    assert.notEqual(v.code, 0);
    assert.match(v.out, /certificate revoked/);

    // a CRL whose signature does not verify is ignored
    const crlDer = ders(await readFile(pki.crlPath, 'utf8'))[0]!;
    const forged = crlDer.slice();
    forged[forged.length - 1]! ^= 0xff;
    const forgedAnchors: TrustAnchors = { certs: reloaded.certs, crls: [RevocationList.parse(forged)] };
    assert.ok((await verifyChain({ chain: ders(victim.chainPem), anchors: forgedAnchors })).ok);
  });

  test('a tampered signature is rejected', async () => {
    const [leaf, inter] = ders(server.chainPem);
    const bad = leaf!.slice();
    bad[bad.length - 1]! ^= 0x01; // last byte of signatureValue
    const r = await verifyChain({ chain: [bad, inter!], anchors });
    assert.ok(!r.ok && (r.failure === 'bad-signature' || r.failure === 'untrusted'));
    assert.equal(!r.ok && r.failure, 'bad-signature');
    assert.match(!r.ok ? r.detail : '', /signature of certificate CN=mx\.a\.mssante\.test/);
  });

  test('a CA with the same name but another key is untrusted', async () => {
    const twin = await TestPki.create(join(tmp, 'twin')); // default name again
    const c = await twin.issueServer(SERVER);
    const r = await verifyChain({ chain: ders(c.chainPem), anchors });
    assert.equal(!r.ok && r.failure, 'untrusted');
    assert.match(!r.ok ? r.detail : '', /another key/);
    // its own trust space accepts it, until the intermediate is revoked on the root CRL
    assert.ok((await verifyChain({ chain: ders(c.chainPem), anchors: await twin.anchors() })).ok);
    await twin.revoke(twin.intermediateCert.serialNumber, 2);
    const gone = await verifyChain({ chain: ders(c.chainPem), anchors: await twin.anchors() });
    assert.equal(!gone.ok && gone.failure, 'revoked');
    assert.match(!gone.ok ? gone.detail : '', /^certificate CN=AC TEST IGC-SANTE ELEMENTAIRE ORGANISATIONS,.*reason cACompromise, per the CRL of CN=AC RACINE/);
    await assert.rejects(twin.revoke(twin.rootCert.serialNumber), /root CA itself/);
  });

  test('an end-entity certificate used as a CA is not-a-ca', async () => {
    const leafCert = new x509.X509Certificate(server.certPem);
    const keys = (await crypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      true,
      ['sign', 'verify'],
    )) as webcrypto.CryptoKeyPair;
    const sub = await x509.X509CertificateGenerator.create({
      subject: 'CN=sub.a.mssante.test',
      issuer: leafCert.subjectName,
      publicKey: keys.publicKey,
      signingKey: await importPrivateKeyPem(server.keyPem),
      signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    });
    const r = await verifyChain({ chain: [new Uint8Array(sub.rawData), ...ders(server.chainPem)], anchors });
    assert.equal(!r.ok && r.failure, 'not-a-ca');
    assert.match(!r.ok ? r.detail : '', /^certificate CN=mx\.a\.mssante\.test,.* issued CN=sub\.a\.mssante\.test but is not a CA/);
  });

  test('pathLenConstraint: the intermediate (pathLen 0) cannot have a sub-CA', async () => {
    const gen = async () =>
      (await crypto.subtle.generateKey(
        { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
        true,
        ['sign', 'verify'],
      )) as webcrypto.CryptoKeyPair;
    const [subKeys, leafKeys] = await Promise.all([gen(), gen()]);
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    const subCa = await x509.X509CertificateGenerator.create({
      subject: 'C=FR, O=CADUCEE TEST, CN=AC SOUS-ORDONNEE',
      issuer: pki.intermediateCert.subjectName,
      publicKey: subKeys.publicKey,
      signingKey: await importPrivateKeyPem(await readFile(join(pki.dir, 'intermediate.key.pem'), 'utf8')),
      signingAlgorithm: alg,
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
    });
    const leaf = await x509.X509CertificateGenerator.create({
      subject: 'CN=deep.a.mssante.test',
      issuer: subCa.subjectName,
      publicKey: leafKeys.publicKey,
      signingKey: subKeys.privateKey,
      signingAlgorithm: alg,
    });
    const r = await verifyChain({ chain: [new Uint8Array(leaf.rawData), new Uint8Array(subCa.rawData)], anchors });
    assert.equal(!r.ok && r.failure, 'not-a-ca');
    assert.match(!r.ok ? r.detail : '', /^certificate CN=AC SOUS-ORDONNEE,O=CADUCEE TEST,C=FR exceeds the pathLenConstraint/);
  });

  test('extended key usage is enforced', async () => {
    const org = await pki.issueOrganisation({ id: '750712184', idType: 'FINESS', org: 'Hôpital A' });
    assert.ok((await verifyChain({ chain: ders(org.chainPem), anchors, usage: 'clientAuth' })).ok);
    const r = await verifyChain({ chain: ders(org.chainPem), anchors, usage: 'serverAuth' });
    assert.equal(!r.ok && r.failure, 'wrong-usage');
    assert.match(!r.ok ? r.detail : '', /not valid for serverAuth: its extendedKeyUsage allows clientAuth/);
  });

  test('no certificate and garbage', async () => {
    const none = await verifyChain({ chain: [], anchors });
    assert.equal(!none.ok && none.failure, 'no-certificate');
    const junk = await verifyChain({ chain: [new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])], anchors });
    assert.equal(!junk.ok && junk.failure, 'malformed');
    const junkInter = await verifyChain({ chain: [ders(server.certPem)[0]!, new Uint8Array([1, 2, 3])], anchors });
    assert.equal(!junkInter.ok && junkInter.failure, 'malformed');
  });

  test('repeat verifications succeed (cost printed, not asserted: benchmarks measure speed)', async (t) => {
    const chain = ders(server.chainPem);
    await verifyChain({ chain, anchors });
    const n = 200;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const r = await verifyChain({ chain: [chain[0]!.slice(), chain[1]!.slice()], anchors, usage: 'serverAuth' });
      assert.ok(r.ok);
    }
    const per = (performance.now() - t0) / n;
    t.diagnostic(`${per.toFixed(3)} ms per verification`);
  });
});

describe('names', () => {
  test('subjectDnOf is RFC 4514: most specific first, no spaces, escaped', async () => {
    const der = ders(server.certPem)[0]!;
    assert.equal(subjectDnOf(der), SERVER_DN);
    assert.equal(subjectDnOf(new x509.X509Certificate(der)), SERVER_DN);
    // @peculiar/x509's own Name.toString() keeps ASN.1 order (C first) and ", "
    assert.equal(new x509.X509Certificate(der).subject, 'C=FR, ST=Paris (75), O=Hopital A, OU=318751234500012, CN=mx.a.mssante.test');

    const odd = await pki.issueOrganisation({ id: '18751234500012', idType: 'SIRET', org: '#Hôpital, "A"+B ', unit: 'Service <Radio>; étage 2' });
    assert.equal(odd.subjectDn, 'CN=Service \\<Radio\\>\\; étage 2,OU=318751234500012,O=\\#Hôpital\\, \\"A\\"\\+B\\ ,C=FR');
    const { certPath } = await pki.writeIssued(join(tmp, 'odd'), 'odd', odd);
    const s = await openssl(['x509', '-in', certPath, '-noout', '-subject', '-nameopt', 'RFC2253,-esc_msb'], tmp);
    assert.equal(s.out.trim(), `subject=${odd.subjectDn}`);

    const person = await pki.issuePersonal({ rpps: '10101010101', givenName: 'Élise', surname: 'Lefèvre', profession: 'Médecin' });
    assert.equal(person.subjectDn, 'CN=Élise LEFÈVRE,serialNumber=810101010101,GN=Élise,SN=LEFÈVRE,title=Médecin,C=FR');
    const p = await pki.writeIssued(join(tmp, 'person'), 'p', person);
    const ps = await openssl(['x509', '-in', p.certPath, '-noout', '-subject', '-nameopt', 'RFC2253,-esc_msb'], tmp);
    assert.equal(ps.out.trim(), `subject=${person.subjectDn}`);
  });

  test('loadTrustAnchors parses several PEM blocks per string and rejects junk', async () => {
    const bundle = await readFile(pki.caBundlePath, 'utf8');
    const crl = await readFile(pki.crlPath, 'utf8');
    const a = loadTrustAnchors([bundle, await readFile(other.caBundlePath, 'utf8'), bundle], [crl]);
    assert.equal(a.certs.length, 4, 'duplicates dropped');
    assert.equal(a.crls.length, 2);
    assert.throws(() => loadTrustAnchors('not a pem'), /no PEM block/);
  });
});
