// The TLS profile of every listener (issue 13, "Hardening"; pki/tls-server.ts): TLS 1.2 and 1.3
// only, ECDHE + AEAD suites only (a client offering only CBC or only RSA key transport suites
// cannot connect), the server's cipher order wins, and the full chain (leaf + intermediate) is
// presented so that a client trusting only the root verifies it. On HTTPS, the security headers.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { SECURITY_HEADERS } from '../src/http/security-headers.js';
import { TLS12_CIPHERS } from '../src/pki/tls-server.js';
import { tempDir, testLogger } from './helpers.js';
import { Conn, connectTls, plain, tlsListeners } from './support/line-conn.js';

/** The DER fingerprints of the chain the server presented, leaf first (`getPeerCertificate(true)`). */
function presentedChain(s: tls.TLSSocket): string[] {
  const out: string[] = [];
  let c: tls.DetailedPeerCertificate | undefined = s.getPeerCertificate(true);
  while (c && c.fingerprint256 && !out.includes(c.fingerprint256)) {
    out.push(c.fingerprint256);
    c = c.issuerCertificate;
  }
  return out;
}


describe('TLS profile of every listener', () => {
  let layout: DemoLayout;
  let demo: RunningDemo;
  let root: string;
  let cleanup = () => {};
  before(async () => {
    let dir: string;
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral' });
    demo = await startDemo(layout, { logger: testLogger(), psc: false });
    root = readFileSync(path.join(layout.pkiDir, 'root.crt.pem'), 'utf8');
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });
  const ports = () => demo.operators[0].ports;
  const listeners = tlsListeners(ports);

  for (const [name, open] of Object.entries(listeners)) {
    test(`${name}: TLS 1.3 with the full chain; TLS 1.2 ECDHE-AEAD in the server's order; CBC, RSA key transport and TLS 1.1 refused`, async () => {
      // A client that trusts only the root: verification succeeds only if the server sent the
      // intermediate (RFC 8446 §4.4.2, RFC 5246 §7.4.2: the sender's chain follows the leaf).
      const c13 = await open({ ca: root });
      const s13 = c13.socket as tls.TLSSocket;
      try {
        assert.equal(s13.getProtocol(), 'TLSv1.3');
        assert.equal(s13.authorized, true);
        const chain = presentedChain(s13);
        const { X509Certificate } = await import('node:crypto');
        const intermediate = new X509Certificate(readFileSync(path.join(layout.pkiDir, 'intermediate.crt.pem'))).fingerprint256;
        assert.ok(chain.includes(intermediate), `${name}: the intermediate is in the verified chain`);
      } finally {
        s13.destroy();
      }

      // TLS 1.2: the client prefers AES-128, the server's order (AES-256 first) wins.
      const c12 = await open({ ca: root, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384' });
      const s12 = c12.socket as tls.TLSSocket;
      try {
        assert.equal(s12.getProtocol(), 'TLSv1.2');
        assert.equal(s12.getCipher().name, 'ECDHE-RSA-AES256-GCM-SHA384');
        assert.ok(s12.getEphemeralKeyInfo() && (s12.getEphemeralKeyInfo() as any).type === 'ECDH', 'ephemeral ECDH key exchange');
      } finally {
        s12.destroy();
      }

      // Refused: CBC suites with forward secrecy (LUCKY13 class), AEAD without forward secrecy
      // (RSA key transport), and TLS 1.1 (ANS: TLS 1.2 minimum).
      for (const refused of [
        { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA' },
        { maxVersion: 'TLSv1.2', ciphers: 'AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256' },
        { maxVersion: 'TLSv1.2', ciphers: 'DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384' },
        { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' },
      ] as tls.ConnectionOptions[]) {
        await assert.rejects(open({ ca: root, ...refused }), (e: any) => /handshake failure|no ciphers|unsupported protocol|version|socket hang up|ECONNRESET|closed before/i.test(String(e?.message ?? e)), `${name}: ${JSON.stringify(refused)} must be refused`);
      }
    });
  }

  test('the TLS 1.2 list is ECDHE with AEAD only', () => {
    for (const suite of TLS12_CIPHERS.split(':')) assert.match(suite, /^ECDHE-(RSA|ECDSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
  });

  test('HTTPS responses carry HSTS, CSP, nosniff, the frame ban and no-referrer; plain HTTP does not send HSTS', async () => {
    for (const p of ['/healthz', '/no-such-path']) {
      const c = new Conn(await connectTls({ port: ports().https }, { ca: root }));
      try {
        c.socket.write(`GET ${p} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
        const head: string[] = [];
        for (let line = await c.lineMatching(/^HTTP\/1\.1 /); line !== ''; line = await c.lineMatching(/.*/)) head.push(line.toLowerCase());
        for (const [name, value] of Object.entries(SECURITY_HEADERS)) assert.ok(head.includes(`${name}: ${value}`.toLowerCase()), `${p}: ${name}: ${value} in ${head.join(' | ')}`);
      } finally {
        c.socket.destroy();
      }
    }
    assert.match(SECURITY_HEADERS['strict-transport-security'], /max-age=31536000/);
    assert.match(SECURITY_HEADERS['content-security-policy'], /frame-ancestors 'none'/);
    const h = new Conn(await plain(ports().http));
    try {
      h.socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      const head: string[] = [];
      for (let line = await h.lineMatching(/^HTTP\/1\.1 200/); line !== ''; line = await h.lineMatching(/.*/)) head.push(line.toLowerCase());
      assert.ok(!head.some((l) => l.startsWith('strict-transport-security:')), 'RFC 6797 §7.2: no HSTS over plain HTTP');
    } finally {
      h.socket.destroy();
    }
  });
});
