// The CRL reader (crl.ts) against CRLs written by @peculiar/x509 (the test PKI) and by OpenSSL.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CRLNumber, id_ce_cRLNumber } from '@peculiar/asn1-x509';
import { CrlFormatError, distributionPointUrls, RevocationList } from './crl.js';
import { generateRsaKeyPair, SIGNING_ALG } from './keys.js';
import { TestPki, x509 } from './index.js';

const run = promisify(execFile);

describe('RevocationList', () => {
  let tmp: string;
  let pki: TestPki;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'caducee-crl-'));
    pki = await TestPki.create(join(tmp, 'pki'), { crlBaseUrl: 'http://127.0.0.1:8079/crl/' });
  });
  after(() => rm(tmp, { recursive: true, force: true }));

  test('reads what @peculiar/x509 writes: issuer, dates, number, key id, entries with reasons', async () => {
    const a = await pki.issueServer({ host: 'mx.a.test', siret: '26750045200011', org: 'A', dept: 'Paris (75)' });
    const b = await pki.issuePersonal({ rpps: '10001234567', givenName: 'Claire', surname: 'Martin' });
    await pki.revoke(a.serialHex, 1);
    await pki.revoke(b.serialHex);
    const der = new Uint8Array(await readFile(pki.intermediateCrlPath));
    const mine = RevocationList.parse(der);
    const ref = new x509.X509Crl(der);
    assert.equal(mine.size, 2);
    assert.equal(mine.thisUpdate.getTime(), ref.thisUpdate.getTime());
    assert.equal(mine.nextUpdate?.getTime(), ref.nextUpdate?.getTime());
    assert.equal(mine.issuerName.toString(), ref.issuerName.toString());
    assert.equal(mine.signatureAlgorithm, 'sha256WithRSAEncryption');
    assert.ok(mine.crlNumber! >= 1n);
    const ski = pki.intermediateCert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId.toLowerCase();
    assert.equal(mine.authorityKeyId, ski);
    assert.equal(mine.findRevoked(a.serialHex)?.reason, 1);
    assert.equal(mine.findRevoked(a.serialHex.toUpperCase())?.serialHex, a.serialHex, 'any hex case');
    assert.equal(mine.findRevoked('00' + b.serialHex)?.reason, undefined, 'leading zero octets ignored; no reason given');
    assert.ok(mine.findRevoked(b.serialHex));
    assert.equal(mine.findRevoked('01'), undefined);
    assert.equal(await mine.verify(pki.intermediateCert), true);
    assert.equal(await mine.verify(pki.rootCert), false, 'another key');
    const forged = der.slice();
    forged[forged.length - 1]! ^= 0x01;
    assert.equal(await RevocationList.parse(forged).verify(pki.intermediateCert), false);
  });

  test('the test PKI names each certificate\'s CRL (RFC 5280 §4.2.1.13) and writes it in DER there', async () => {
    const leaf = new x509.X509Certificate((await pki.issueServer({ host: 'mx.b.test', siret: '26750045200011', org: 'B', dept: 'Paris (75)' })).certPem);
    const urls = distributionPointUrls;
    assert.deepEqual(urls(leaf), ['http://127.0.0.1:8079/crl/intermediate.crl']);
    assert.deepEqual(urls(pki.intermediateCert), ['http://127.0.0.1:8079/crl/root.crl']);
    assert.equal(pki.rootCert.getExtension(x509.CRLDistributionPointsExtension), null, 'a root names no CRL for itself');
    const root = RevocationList.parse(await readFile(pki.rootCrlPath));
    assert.equal(await root.verify(pki.rootCert), true);
    // OpenSSL reads the distribution point as testssl.sh does.
    await writeFile(join(tmp, 'leaf.pem'), leaf.toString('pem'));
    const text = (await run('openssl', ['x509', '-in', join(tmp, 'leaf.pem'), '-noout', '-ext', 'crlDistributionPoints'])).stdout;
    assert.match(text, /URI:http:\/\/127\.0\.0\.1:8079\/crl\/intermediate\.crl/);
    // A PKI made without a base URL issues certificates without the extension, as before.
    const plain = await TestPki.create(join(tmp, 'plain'));
    const c = new x509.X509Certificate((await plain.issueServer({ host: 'mx.c.test', siret: '26750045200011', org: 'C', dept: 'Paris (75)' })).certPem);
    assert.equal(c.getExtension(x509.CRLDistributionPointsExtension), null);
  });

  test('reads an OpenSSL CRL of 12,000 entries, which @peculiar/x509 refuses to parse', async () => {
    const dir = join(tmp, 'openssl-ca');
    await run('mkdir', ['-p', dir]);
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-subj', '/CN=Big CA', '-days', '30']);
    const lines: string[] = [];
    for (let i = 0; i < 12_000; i++) lines.push(`R\t301231235959Z\t250101000000Z,keyCompromise\t${(0x10000000 + i).toString(16).toUpperCase()}\tunknown\t/CN=x${i}`);
    await writeFile(join(dir, 'index.txt'), lines.join('\n') + '\n');
    await writeFile(join(dir, 'crlnumber'), '2A\n');
    await writeFile(join(dir, 'ca.cnf'), '[ ca ]\ndefault_ca = d\n[ d ]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\ndefault_crl_days = 7\n');
    await run('openssl', ['ca', '-config', 'ca.cnf', '-gencrl', '-keyfile', 'ca.key', '-cert', 'ca.crt', '-out', 'crl.pem'], { cwd: dir });
    await run('openssl', ['crl', '-in', join(dir, 'crl.pem'), '-outform', 'DER', '-out', join(dir, 'crl.der')]);
    const der = await readFile(join(dir, 'crl.der'));
    assert.throws(() => new x509.X509Crl(der), /Maximum ASN.1 node count exceeded/, 'the library limit this reader exists for');
    const crl = RevocationList.parse(der);
    assert.equal(crl.size, 12_000);
    assert.equal(crl.crlNumber, 0x2an);
    assert.equal(crl.findRevoked('10002edf')?.reason, 1); // 0x10000000 + 11999
    assert.equal(crl.findRevoked('10002ee0'), undefined);
    assert.equal(await crl.verify(new x509.X509Certificate(await readFile(join(dir, 'ca.crt'), 'utf8'))), true);
    // parseAsync, what a running operator uses for a download, lets the event loop run between chunks.
    let turns = 0;
    let spinning = true;
    const spin = () => {
      turns++;
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    const again = await RevocationList.parseAsync(der);
    spinning = false;
    assert.equal(again.size, 12_000);
    assert.ok(turns >= 5, `the event loop turned ${turns} times while 12,000 entries were read`);
  });

  test('refuses what it cannot honour: critical unknown extensions, garbage, trailing bytes, BER lengths', async () => {
    const keys = await generateRsaKeyPair();
    const make = async (critical: boolean) =>
      x509.X509CrlGenerator.create({
        issuer: 'CN=X',
        thisUpdate: new Date(),
        nextUpdate: new Date(Date.now() + 86400e3),
        signingKey: keys.privateKey,
        signingAlgorithm: SIGNING_ALG,
        extensions: [
          new x509.Extension(id_ce_cRLNumber, false, AsnConvert.serialize(new CRLNumber(7))),
          new x509.Extension('2.5.29.28', critical, new Uint8Array([0x30, 0x03, 0x81, 0x01, 0xff])), // issuingDistributionPoint, onlyContainsUserCerts
        ],
      });
    const critical = new Uint8Array((await make(true)).rawData);
    assert.throws(() => RevocationList.parse(critical), /unsupported critical CRL extension: issuingDistributionPoint/);
    assert.equal(RevocationList.parse(new Uint8Array((await make(false)).rawData)).crlNumber, 7n, 'non-critical: ignored');
    const good = new Uint8Array(await readFile(pki.intermediateCrlPath));
    assert.throws(() => RevocationList.parse(new Uint8Array([1, 2, 3])), CrlFormatError);
    assert.throws(() => RevocationList.parse(new Uint8Array([...good, 0])), /bytes after the end/);
    assert.throws(() => RevocationList.parse(good.subarray(0, good.length - 10)), CrlFormatError);
    assert.throws(() => RevocationList.parse(new Uint8Array([0x30, 0x80, 0, 0])), /indefinite length/);
    assert.throws(() => RevocationList.parse(new TextEncoder().encode('-----BEGIN X509 CRL-----')), CrlFormatError);
  });
});
