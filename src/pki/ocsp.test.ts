// pki/ocsp.ts against OpenSSL: the request we build is byte for byte the one `openssl ocsp` builds,
// the responses the test PKI signs verify with `openssl ocsp -respin`, and each check of
// checkOcspResponse refuses what it must (RFC 6960 §3.2, §4.2.1, §4.2.2.2).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { OCSPResponseStatus } from '@peculiar/asn1-ocsp';
import { tempDir } from '../../test/helpers.js';
import { importPrivateKeyPem } from './keys.js';
import { buildOcspRequest, certIdOf, checkOcspResponse, OCSP_CLOCK_SKEW_MS, ocspErrorResponse, OcspResponseError, ocspUrlsOf, signOcspResponse } from './ocsp.js';
import { TestPki } from './test-pki.js';
import { x509 } from './x509.js';

describe('OCSP requests and responses (RFC 6960)', () => {
  let dir: string;
  let cleanup = () => {};
  let pki: TestPki;
  let leaf: x509.X509Certificate;
  let other: x509.X509Certificate;
  let leafPath: string;

  before(async () => {
    ({ dir, cleanup } = tempDir());
    pki = await TestPki.create(path.join(dir, 'pki'), { ocspUrl: 'http://127.0.0.1:9/ocsp' });
    const issued = await pki.issueServer({ host: 'mx.a.mssante.test', siret: '26750045200011', org: 'A', dept: 'Paris (75)' });
    leafPath = (await pki.writeIssued(dir, 'leaf', issued)).certPath;
    leaf = new x509.X509Certificate(issued.certPem);
    other = new x509.X509Certificate((await pki.issueServer({ host: 'mx.b.mssante.test', siret: '13000000000019', org: 'B', dept: 'Rhône (69)' })).certPem);
  });
  after(() => cleanup());

  test('the certificates name the responder (AIA, RFC 5280 §4.2.2.1), and our request is the one openssl ocsp builds', () => {
    assert.deepEqual(ocspUrlsOf(leaf), ['http://127.0.0.1:9/ocsp']);
    assert.deepEqual(ocspUrlsOf(pki.intermediateCert), [], 'CA certificates name none');
    const theirs = path.join(dir, 'openssl-req.der');
    execFileSync('openssl', ['ocsp', '-issuer', pki.intermediatePath, '-cert', leafPath, '-no_nonce', '-reqout', theirs], { stdio: 'pipe' });
    assert.deepEqual(Buffer.from(buildOcspRequest(leaf, pki.intermediateCert)), readFileSync(theirs));
  });

  test('a response the test PKI signs verifies with openssl and passes our checks', async () => {
    const resp = await pki.ocspResponse(buildOcspRequest(leaf, pki.intermediateCert));
    const file = path.join(dir, 'resp.der');
    writeFileSync(file, resp);
    const out = execFileSync('openssl', ['ocsp', '-respin', file, '-issuer', pki.intermediatePath, '-cert', leafPath, '-CAfile', pki.caBundlePath], { encoding: 'utf8', stdio: 'pipe' });
    assert.match(out, /: good/);
    const info = await checkOcspResponse(resp, leaf, pki.intermediateCert);
    assert.equal(info.delegated, false);
    assert.ok(info.nextUpdate && info.nextUpdate.getTime() > Date.now());
  });

  test('each check refuses what it must', async () => {
    const key = await importPrivateKeyPem(readFileSync(path.join(pki.dir, 'intermediate.key.pem'), 'utf8'));
    const sign = (o: Partial<Parameters<typeof signOcspResponse>[0]>) =>
      signOcspResponse({ answers: [{ certId: certIdOf(leaf, pki.intermediateCert), answer: { status: 'good' } }], signerCert: pki.intermediateCert, signerKey: key, thisUpdate: new Date(), ...o });
    const refusal = async (der: Uint8Array | Promise<Uint8Array>, failure: string, cert = leaf, message = /./) => {
      await assert.rejects(checkOcspResponse(await der, cert, pki.intermediateCert), (e: unknown) => e instanceof OcspResponseError && e.failure === failure && message.test(e.message));
    };
    await refusal(new Uint8Array([0x30, 0x03, 0x02, 0x01]), 'malformed');
    await refusal(ocspErrorResponse(OCSPResponseStatus.tryLater), 'status');
    await refusal(sign({ answers: [{ certId: certIdOf(leaf, pki.intermediateCert), answer: { status: 'unknown' } }] }), 'unknown');
    await refusal(sign({ answers: [{ certId: certIdOf(leaf, pki.intermediateCert), answer: { status: 'revoked', revokedAt: new Date(), reason: 1 } }] }), 'revoked');
    await refusal(sign({}), 'certid', other);
    await refusal(sign({ thisUpdate: new Date(Date.now() + OCSP_CLOCK_SKEW_MS + 60_000) }), 'not-yet-valid');
    await checkOcspResponse(await sign({ thisUpdate: new Date(Date.now() + OCSP_CLOCK_SKEW_MS - 60_000) }), leaf, pki.intermediateCert); // within the skew
    await refusal(sign({ thisUpdate: new Date(Date.now() - 7200_000), nextUpdate: new Date(Date.now() - 1000) }), 'expired');
    // Signed by the root (a CA, but not the one that issued the leaf), named as itself.
    const rootKey = await importPrivateKeyPem(readFileSync(path.join(pki.dir, 'root.key.pem'), 'utf8'));
    await refusal(sign({ signerCert: pki.rootCert, signerKey: rootKey }), 'signer');
    await refusal(sign({ signerCert: pki.rootCert, signerKey: rootKey, includeSigner: true }), 'signer', leaf, /whose certificate is issued by CN=AC RACINE TEST IGC-SANTE ELEMENTAIRE/);
    // The issuer's name and key hash, but another key's signature.
    const good = await sign({});
    const forged = Buffer.from(good);
    forged[forged.length - 1]! ^= 0x01;
    await refusal(forged, 'signature');
    // A delegated responder the CA certified (RFC 6960 §4.2.2.2) is accepted.
    const responder = await pki.issueOcspResponder();
    const responderKey = await importPrivateKeyPem(responder.keyPem);
    const delegated = await sign({ signerCert: new x509.X509Certificate(responder.certPem), signerKey: responderKey, includeSigner: true });
    assert.equal((await checkOcspResponse(delegated, leaf, pki.intermediateCert)).delegated, true);
    // Not without its certificate in the response, nor when it lacks id-kp-OCSPSigning.
    await refusal(sign({ signerCert: new x509.X509Certificate(responder.certPem), signerKey: responderKey }), 'signer');
    const notResponder = await pki.issueServer({ host: 'ocsp.a.mssante.test', siret: '26750045200011', org: 'A', dept: 'Paris (75)' });
    await refusal(sign({ signerCert: new x509.X509Certificate(notResponder.certPem), signerKey: await importPrivateKeyPem(notResponder.keyPem), includeSigner: true }), 'signer');
  });
});
