// OCSP stapling (issue 13, TLS profile; docs/trust-space.md "OCSP stapling"). Real peers: OpenSSL's
// own OCSP responder code (`openssl ocsp -index … -reqin … -respout …`, one run per request, behind
// a small HTTP front bound to 127.0.0.1 only: `openssl ocsp -port` listens on every interface)
// answers operator A; real TLS clients check the staple: `openssl s_client -status` (STARTTLS SMTP
// and IMAP, implicit-TLS IMAP) and Node's `tls.connect({ requestOCSP: true })` (submissions, IMAPS,
// HTTPS). Then the demo's own responder, named in the demo certificates, with `openssl ocsp` as the
// client.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import type { Operator } from '../src/main.js';
import { TestPki, x509 } from '../src/pki/index.js';
import { buildOcspRequest, checkOcspResponse } from '../src/pki/ocsp.js';
import { tempDir, testLogger, waitFor } from './helpers.js';

const run = promisify(execFile);

/** The value of a counter or gauge of an operator's metrics, for the given labels. */
async function metric(op: Operator, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await op.metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (m?.values ?? []).find((x) => Object.entries(labels).every(([k, val]) => (x.labels as Record<string, unknown>)[k] === val));
  return Number(v?.value ?? 0);
}

/** The OCSP response a Node TLS client receives on an implicit-TLS port (undefined: none stapled). */
function nodeStaple(port: number, ca: string): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    let staple: Buffer | undefined;
    const s = tls.connect({ host: '127.0.0.1', port, ca, requestOCSP: true } as tls.ConnectionOptions);
    s.on('OCSPResponse', (r: Buffer) => (staple = r && r.length ? r : undefined));
    s.once('secureConnect', () => {
      s.end();
      resolve(staple);
    });
    s.once('error', reject);
  });
}

/** `openssl s_client -status` on a port (STARTTLS when `starttls`), its output. */
function sClient(port: number, ca: string, starttls?: 'smtp' | 'imap', servername?: string): Promise<string> {
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-status', '-CAfile', ca, '-verify_return_error', ...(starttls ? ['-starttls', starttls] : []), ...(servername ? ['-servername', servername] : ['-noservername'])];
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', args, { timeout: 15000 }, (err, stdout, stderr) => {
      if (err && !stdout.includes('OCSP')) return reject(new Error(`openssl ${args.join(' ')}: ${err.message}\n${stderr}`));
      resolve(stdout);
    });
    child.stdin?.end();
  });
}

const stapledGood = (out: string) => /OCSP Response Status: successful \(0x0\)/.test(out) && /Cert Status: good/.test(out);

type Mode = 'good' | 'revoked' | 'other-key' | 'uncertified-responder' | 'expired' | 'short-lived' | 'down';

describe('OCSP stapling, with OpenSSL as the responder', () => {
  let dir: string;
  let cleanup = () => {};
  let layout: DemoLayout;
  let demo: RunningDemo;
  let A: Operator;
  let B: Operator;
  let pki: TestPki;
  let responder: http.Server;
  let mode: Mode = 'good';
  /** Operators whose certificate the responder says revoked whatever the mode (B: never a good response). */
  const alwaysRevoked = new Set<string>();
  const files = { index: '', other: { cert: '', key: '' }, signer: { cert: '', key: '' } };
  let serials: { A: string; B: string };
  let requests = 0;

  /** OpenSSL's CA database line (apps/ca.c "index.txt"): status, expiry, revocation, serial, file, subject. */
  function writeIndex(revoked: Set<string>) {
    const t = (d: Date) => d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
    const lines = Object.values(serials).map((serial) => {
      const up = serial.toUpperCase();
      return revoked.has(serial) ? `R\t${t(new Date(Date.now() + 365 * 864e5))}\t${t(new Date(Date.now() - 60_000))},keyCompromise\t${up}\tunknown\t/CN=x` : `V\t${t(new Date(Date.now() + 365 * 864e5))}\t\t${up}\tunknown\t/CN=x`;
    });
    writeFileSync(files.index, lines.join('\n') + '\n');
  }

  async function answer(req: Buffer): Promise<Buffer> {
    if (mode === 'expired') return Buffer.from(await pki.ocspResponse(req, { thisUpdate: new Date(Date.now() - 2 * 864e5), nextUpdate: new Date(Date.now() - 864e5) }));
    if (mode === 'short-lived') return Buffer.from(await pki.ocspResponse(req, { nextUpdate: new Date(Date.now() + 2000) }));
    writeIndex(mode === 'revoked' ? new Set(Object.values(serials)) : new Set([...alwaysRevoked]));
    const reqFile = path.join(dir, `req-${++requests}.der`);
    const respFile = `${reqFile}.resp`;
    writeFileSync(reqFile, req);
    const signer = mode === 'other-key' || mode === 'uncertified-responder' ? files.other : files.signer;
    // RFC 6960 §4.2.2.2: a delegated responder (EKU id-kp-OCSPSigning, issued by the CA); in the
    // other modes a key the CA never certified, named as the CA (byName) or by its key hash.
    execFileSync('openssl', [
      'ocsp', '-index', files.index, '-CA', pki.intermediatePath, '-rsigner', signer.cert, '-rkey', signer.key,
      '-reqin', reqFile, '-respout', respFile, '-ndays', '1', ...(mode === 'uncertified-responder' ? ['-resp_key_id'] : []),
    ], { stdio: 'pipe' });
    return readFileSync(respFile);
  }

  before(async () => {
    ({ dir, cleanup } = tempDir());
    responder = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (mode === 'down') return void res.writeHead(503).end();
        assert.equal(req.method, 'POST');
        assert.equal(req.headers['content-type'], 'application/ocsp-request');
        answer(Buffer.concat(chunks)).then(
          (der) => res.writeHead(200, { 'content-type': 'application/ocsp-response' }).end(der),
          (e) => res.writeHead(500).end(String(e)),
        );
      });
    });
    await new Promise<void>((r) => responder.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(responder.address() as AddressInfo).port}/`;
    const overrides = { tls: { ocsp: { responderUrl: url } } };
    layout = await prepareDemo(dir, { ports: 'ephemeral', patients: false, configOverrides: overrides });
    pki = await TestPki.load(layout.pkiDir);
    files.index = path.join(dir, 'index.txt');
    const signer = await pki.issueOcspResponder();
    Object.assign(files.signer, await pki.writeIssued(dir, 'ocsp-signer', signer).then((f) => ({ cert: f.certPath, key: f.keyPath })));
    files.other = { cert: path.join(dir, 'other.crt.pem'), key: path.join(dir, 'other.key.pem') };
    const interSubject = '/C=FR/O=CADUCEE TEST/OU=TEST IGC-SANTE ELEMENTAIRE/CN=AC TEST IGC-SANTE ELEMENTAIRE ORGANISATIONS';
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', files.other.key, '-out', files.other.cert, '-days', '2', '-subj', interSubject, '-addext', 'extendedKeyUsage=OCSPSigning'], { stdio: 'pipe' });
    const serialOf = (f: string) => new x509.X509Certificate(readFileSync(f, 'utf8')).serialNumber.toLowerCase();
    serials = { A: serialOf(layout.operators[0]!.cert), B: serialOf(layout.operators[1]!.cert) };
    alwaysRevoked.add(serials.B);
    demo = await startDemo(layout, { logger: testLogger(), psc: false, configOverrides: overrides });
    [A, B] = demo.operators as [Operator, Operator];
    await waitFor(() => A.ocsp?.current(), 'A\'s first OCSP response');
    await waitFor(async () => (await metric(B, 'caducee_ocsp_refreshes_total', { outcome: 'failed' })) >= 1, 'B\'s first OCSP refusal');
  });
  after(async () => {
    await demo?.stop();
    await new Promise((r) => responder?.close(r));
    cleanup();
  });

  test('every TLS listener of A staples the good response OpenSSL signed (delegated responder)', async () => {
    assert.equal(A.ocsp!.status().held?.signer, 'CN=OCSP TEST IGC-SANTE ELEMENTAIRE ORGANISATIONS,O=CADUCEE TEST,C=FR');
    const held = A.ocsp!.current()!;
    const ca = readFileSync(layout.caBundle, 'utf8');
    // openssl s_client: STARTTLS SMTP on the MX and submission, STARTTLS IMAP, implicit-TLS IMAP.
    for (const [port, starttls, what] of [
      [A.ports.mx, 'smtp', 'MX (STARTTLS)'],
      [A.ports.submission, 'smtp', 'submission (STARTTLS)'],
      [A.ports.imap, 'imap', 'IMAP (STARTTLS)'],
      [A.ports.imaps, undefined, 'IMAPS'],
    ] as const) {
      const out = await sClient(port, layout.caBundle, starttls);
      assert.ok(stapledGood(out), `${what}: ${out.slice(0, 1500)}`);
      assert.match(out, /Verify return code: 0 \(ok\)/, what);
    }
    // With SNI too (smtp-server then takes the certificate from the SNI context).
    assert.ok(stapledGood(await sClient(A.ports.mx, layout.caBundle, 'smtp', 'mx.a.mssante.test')), 'MX with SNI');
    // Node's client: the bytes held are the bytes stapled, and they check out as a client would.
    for (const port of [A.ports.submissions, A.ports.imaps, A.ports.https]) {
      const staple = await nodeStaple(port, ca);
      assert.ok(staple, `a staple on port ${port}`);
      assert.deepEqual(staple, held);
      const leaf = new x509.X509Certificate(readFileSync(layout.operators[0]!.cert, 'utf8'));
      const info = await checkOcspResponse(staple!, leaf, pki.intermediateCert);
      assert.equal(info.delegated, true);
    }
    assert.equal(await metric(A, 'caducee_ocsp_stapled'), 1);
    assert.ok((await metric(A, 'caducee_ocsp_refreshes_total', { outcome: 'updated' })) >= 1);
  });

  test('an operator holding no valid response staples nothing (B: the responder says revoked)', async () => {
    assert.equal(B.ocsp!.current(), undefined);
    assert.match(B.ocsp!.status().lastError ?? '', /revoked since .*\(reason 1\)/);
    assert.equal(await metric(B, 'caducee_ocsp_stapled'), 0);
    const out = await sClient(B.ports.imaps, layout.caBundle);
    assert.match(out, /OCSP response: no response sent/);
    assert.equal(await nodeStaple(B.ports.https, readFileSync(layout.caBundle, 'utf8')), undefined);
    assert.match(await sClient(B.ports.mx, layout.caBundle, 'smtp'), /OCSP response: no response sent/);
  });

  test('a revoked status, a response signed by another key, an uncertified responder, an expired response or a failed request: refused, counted, the good one still stapled', async () => {
    const good = Buffer.from(A.ocsp!.current()!);
    const ca = readFileSync(layout.caBundle, 'utf8');
    const cases: Array<[Mode, RegExp]> = [
      ['revoked', /revoked since/],
      ['other-key', /signature of the response does not verify with the key of CN=AC TEST IGC-SANTE ELEMENTAIRE ORGANISATIONS/],
      ['uncertified-responder', /is not signed by the key of CN=AC TEST IGC-SANTE ELEMENTAIRE ORGANISATIONS/],
      ['expired', /nextUpdate .* has passed/],
      ['down', /HTTP 503/],
    ];
    try {
      for (const [m, error] of cases) {
        mode = m;
        const failedBefore = await metric(A, 'caducee_ocsp_refreshes_total', { outcome: 'failed' });
        assert.equal(await A.ocsp!.refresh(), 'failed', m);
        assert.match(A.ocsp!.status().lastError ?? '', error, m);
        assert.equal(await metric(A, 'caducee_ocsp_refreshes_total', { outcome: 'failed' }), failedBefore + 1, `${m}: counted`);
        assert.deepEqual(A.ocsp!.current(), good, `${m}: the previous good response is kept`);
        assert.deepEqual(await nodeStaple(A.ports.imaps, ca), good, `${m}: and stapled`);
      }
    } finally {
      mode = 'good';
    }
    assert.equal(await A.ocsp!.refresh(), 'updated');
    assert.equal(A.ocsp!.status().lastError, undefined);
  });

  test('a response past its nextUpdate is no longer stapled', async () => {
    const ca = readFileSync(layout.caBundle, 'utf8');
    try {
      mode = 'short-lived';
      assert.equal(await A.ocsp!.refresh(), 'updated');
      const short = A.ocsp!.current()!;
      assert.deepEqual(await nodeStaple(A.ports.imaps, ca), short);
      await new Promise((r) => setTimeout(r, 2100));
      assert.equal(A.ocsp!.current(), undefined);
      assert.equal(await nodeStaple(A.ports.imaps, ca), undefined);
      assert.match(await sClient(A.ports.mx, layout.caBundle, 'smtp'), /OCSP response: no response sent/);
    } finally {
      mode = 'good';
    }
    assert.equal(await A.ocsp!.refresh(), 'updated');
    assert.ok(await nodeStaple(A.ports.imaps, ca));
  });
});

describe('the demo\'s own OCSP responder', () => {
  let dir: string;
  let cleanup = () => {};
  let demo: RunningDemo;
  let layout: DemoLayout;

  before(async () => {
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral', patients: false });
    demo = await startDemo(layout, { logger: testLogger(), psc: false });
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  test('the demo certificates name it, an operator staples its answer at start, and openssl ocsp finds it good', async () => {
    const A = demo.operators[0]!;
    const pki = await TestPki.load(layout.pkiDir);
    const leaf = new x509.X509Certificate(readFileSync(layout.operators[0]!.cert, 'utf8'));
    assert.equal(pki.ocspUrl, `http://127.0.0.1:${layout.crlServer!.port}/ocsp`);
    assert.equal(A.ocsp?.url, pki.ocspUrl, 'the URL of the certificate\'s Authority Information Access');
    await waitFor(() => A.ocsp!.current(), 'the first OCSP response from the demo responder');
    const staple = await nodeStaple(A.ports.imaps, readFileSync(layout.caBundle, 'utf8'));
    assert.ok(staple);
    const info = await checkOcspResponse(staple!, leaf, pki.intermediateCert);
    assert.equal(info.delegated, false);
    assert.equal(info.signer, 'CN=AC TEST IGC-SANTE ELEMENTAIRE ORGANISATIONS,OU=TEST IGC-SANTE ELEMENTAIRE,O=CADUCEE TEST,C=FR');
    // OpenSSL as the client of the demo responder (POST), verifying the signature against the CA bundle.
    // (Asynchronously: the responder runs in this process.)
    const ask = async () => (await run('openssl', ['ocsp', '-issuer', pki.intermediatePath, '-cert', layout.operators[0]!.cert, '-url', pki.ocspUrl!, '-CAfile', layout.caBundle, '-timeout', '10'])).stdout;
    const out = await ask();
    assert.match(out, new RegExp(`${layout.operators[0]!.cert.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: good`));
    // GET as RFC 6960 Appendix A.1 allows (base64, then URL-encoded), and a request it cannot read.
    const get = await fetch(`${pki.ocspUrl}/${encodeURIComponent(Buffer.from(buildOcspRequest(leaf, pki.intermediateCert)).toString('base64'))}`);
    assert.equal(get.status, 200);
    assert.equal(get.headers.get('content-type'), 'application/ocsp-response');
    assert.equal((await checkOcspResponse(new Uint8Array(await get.arrayBuffer()), leaf, pki.intermediateCert)).delegated, false);
    const bad = await fetch(pki.ocspUrl!, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body: 'not DER' });
    await assert.rejects(checkOcspResponse(new Uint8Array(await bad.arrayBuffer()), leaf, pki.intermediateCert), /malformedRequest/);
    // A revocation shows at once; the operator refuses it and keeps the good response.
    await pki.revoke(leaf.serialNumber, 1);
    const revoked = await ask();
    assert.match(revoked, /: revoked/);
    assert.equal(await A.ocsp!.refresh(), 'failed');
    assert.deepEqual(A.ocsp!.current(), staple);
  });
});
