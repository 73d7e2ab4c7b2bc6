// Client-initiated TLS renegotiation is refused on every TLS listener (issue 14): a TLS 1.2
// client that asks to renegotiate gets an error and the connection closed, where before a
// client could renegotiate without limit (each one costs the server a full handshake). TLS 1.3
// has no renegotiation at all (RFC 8446 §4.1.2: a ClientHello after the handshake is an
// unexpected_message); the attack applies to TLS 1.2 (RFC 5246 §7.4.1.2, RFC 5746).
// A normal exchange over TLS 1.2 still works on each listener.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { tempDir, testLogger } from './helpers.js';

/** A line-oriented connection whose socket can be upgraded to TLS in place (STARTTLS). */
class Conn {
  private buf = '';
  private wake?: () => void;
  private ended = false;
  constructor(public socket: net.Socket) {
    this.listen();
  }
  private listen() {
    this.socket.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      this.wake?.();
    });
    this.socket.once('close', () => {
      this.ended = true;
      this.wake?.();
    });
    this.socket.on('error', () => {});
  }
  /** Reads up to and including the first line matching `re`; fails if the connection ends first. */
  async lineMatching(re: RegExp): Promise<string> {
    for (;;) {
      let i;
      while ((i = this.buf.indexOf('\r\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 2);
        if (re.test(line)) return line;
      }
      if (this.ended) throw new Error(`connection closed before a line matching ${re}`);
      await new Promise<void>((r) => (this.wake = r));
    }
  }
  async send(text: string, re: RegExp): Promise<string> {
    this.socket.write(text + '\r\n');
    return this.lineMatching(re);
  }
  /** STARTTLS: the server's go-ahead has been read; the handshake runs over the same socket. */
  async upgrade(ca: string): Promise<void> {
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('close');
    this.socket = await connectTls({ socket: this.socket }, ca);
    this.buf = '';
    this.listen();
  }
}

/** A TLS 1.2 client (the only version with renegotiation), verifying the demo certificate. */
function connectTls(o: { port: number } | { socket: net.Socket }, ca: string): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ ...('port' in o ? { host: '127.0.0.1', port: o.port } : { socket: o.socket }), ca, servername: 'localhost', maxVersion: 'TLSv1.2' }, () => resolve(s));
    s.once('error', reject);
  });
}

const plain = (port: number) =>
  new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });

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

  // Each listener kind: open a TLS 1.2 session and prove it works with one protocol exchange.
  const listeners: Record<string, () => Promise<Conn>> = {
    'IMAP over implicit TLS': async () => {
      const c = new Conn(await connectTls({ port: ports().imaps }, ca));
      await c.lineMatching(/^\* OK/);
      await c.send('a1 NOOP', /^a1 OK/);
      return c;
    },
    'IMAP STARTTLS': async () => {
      const c = new Conn(await plain(ports().imap));
      await c.lineMatching(/^\* OK/);
      await c.send('a1 STARTTLS', /^a1 OK/);
      await c.upgrade(ca);
      await c.send('a2 CAPABILITY', /^a2 OK/);
      return c;
    },
    ...Object.fromEntries(
      (['mx', 'submission'] as const).map((k) => [
        `SMTP STARTTLS (${k})`,
        async () => {
          const c = new Conn(await plain(ports()[k]));
          await c.lineMatching(/^220 /);
          await c.send('EHLO client.test', /^250 /);
          await c.send('STARTTLS', /^220 /);
          await c.upgrade(ca);
          await c.send('EHLO client.test', /^250 /);
          return c;
        },
      ]),
    ),
    'SMTP submission over implicit TLS': async () => {
      const c = new Conn(await connectTls({ port: ports().submissions }, ca));
      await c.lineMatching(/^220 /);
      await c.send('EHLO client.test', /^250 /);
      return c;
    },
    HTTPS: async () => {
      const c = new Conn(await connectTls({ port: ports().https }, ca));
      await c.send('GET /healthz HTTP/1.1\r\nHost: localhost\r\n', /^HTTP\/1\.1 200 /);
      return c;
    },
  };

  for (const [name, open] of Object.entries(listeners)) {
    test(`${name}: a TLS 1.2 session works, a renegotiation is refused`, async () => {
      const c = await open();
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
