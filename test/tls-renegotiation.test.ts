// Client-initiated TLS renegotiation is refused on every TLS listener (issue 14): a TLS 1.2
// client that asks to renegotiate gets an error and the connection closed, where before a
// client could renegotiate without limit (each one costs the server a full handshake). TLS 1.3
// has no renegotiation at all (RFC 8446 §4.1.2: a ClientHello after the handshake is an
// unexpected_message); the attack applies to TLS 1.2 (RFC 5246 §7.4.1.2, RFC 5746).
// A normal exchange over TLS 1.2 still works on each listener.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { tempDir, testLogger } from './helpers.js';
import { tlsListeners } from './support/line-conn.js';

/**
 * Asks for a renegotiation and waits until the connection is closed (the refusal) or a second
 * handshake completes; the error seen on the way, if any.
 */
function renegotiate(s: tls.TLSSocket): Promise<{ outcome: 'closed' | 'renegotiated'; error?: Error }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('neither a second handshake nor a closed connection within 10 s')), 10_000);
    let error: Error | undefined;
    const done = (outcome: 'closed' | 'renegotiated') => {
      clearTimeout(timer);
      resolve({ outcome, error });
    };
    s.once('error', (e) => (error ??= e));
    s.once('close', () => done('closed'));
    s.renegotiate({}, (e) => (e ? (error ??= e) : done('renegotiated')));
  });
}

describe('TLS renegotiation is refused on every listener', () => {
  let layout: DemoLayout;
  let demo: RunningDemo;
  let ca: string;
  let cleanup = () => {};
  before(async () => {
    let dir: string;
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral' });
    demo = await startDemo(layout, { logger: testLogger(), psc: false });
    ca = readFileSync(layout.caBundle, 'utf8');
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });
  const ports = () => demo.operators[0].ports;

  // Each listener kind: a TLS 1.2 session (the only version with renegotiation), proven to work
  // with one protocol exchange.
  const listeners = tlsListeners(ports);

  for (const [name, open] of Object.entries(listeners)) {
    test(`${name}: a TLS 1.2 session works, a renegotiation is refused`, async () => {
      const c = await open({ ca, maxVersion: 'TLSv1.2' });
      const s = c.socket as tls.TLSSocket;
      try {
        assert.equal(s.getProtocol(), 'TLSv1.2');
        const r = await renegotiate(s);
        assert.equal(r.outcome, 'closed');
        // OpenSSL's client ends the connection on the server's no_renegotiation alert.
        assert.match(String(r.error?.message), /no renegotiation/i);
      } finally {
        s.destroy();
      }
    });
  }
});
