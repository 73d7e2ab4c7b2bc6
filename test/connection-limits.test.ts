// Resource limits (issue 13): per-address connection limits on IMAP (STARTTLS listener answers
// `* BYE [UNAVAILABLE]`, implicit TLS closes before any handshake work), a connection freed is
// counted back, and an unauthenticated connection is closed after limits.preAuthSeconds.
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { prepareDemo, startDemo, type RunningDemo } from '../src/demo/space.js';
import { tempDir, testLogger } from './helpers.js';

const { dir, cleanup } = tempDir('caducee-limits-');
let demo: RunningDemo;
let ports: RunningDemo['layout']['operators'][number]['ports'];

before(async () => {
  const layout = await prepareDemo(dir, { ports: 'ephemeral' });
  demo = await startDemo(layout, { logger: testLogger(), psc: false, configOverrides: { limits: { connectionsPerAddress: 3, preAuthSeconds: 1.5, connectionsPerAddressPerMinute: 12 } } });
  ports = demo.operators[0].ports;
});
after(async () => {
  await demo?.stop();
  cleanup();
});

/** Opens a plain connection and resolves with the first line the server sends. */
function greet(port: number): Promise<{ socket: net.Socket; line: string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    let buf = '';
    socket.on('data', (d) => {
      buf += d;
      const i = buf.indexOf('\r\n');
      if (i >= 0) resolve({ socket, line: buf.slice(0, i), closed });
    });
    socket.once('error', reject);
  });
}

test('IMAP: a fourth connection from one address is refused with BYE [UNAVAILABLE]; a freed one is counted back', async () => {
  const open = [await greet(ports.imap), await greet(ports.imap), await greet(ports.imap)];
  for (const o of open) assert.match(o.line, /^\* OK \[CAPABILITY /);
  const fourth = await greet(ports.imap);
  assert.match(fourth.line, /^\* BYE \[UNAVAILABLE\] too many connections from your address \(at most 3\)/);
  await fourth.closed;
  // Implicit TLS: closed before the handshake.
  await assert.rejects(
    new Promise((resolve, reject) => {
      const s = tls.connect({ port: ports.imaps, host: '127.0.0.1', rejectUnauthorized: false }, () => resolve(s));
      s.once('error', reject);
    }),
  );
  open[0].socket.destroy();
  await open[0].closed;
  await new Promise((r) => setTimeout(r, 50));
  const again = await greet(ports.imap);
  assert.match(again.line, /^\* OK /, 'the freed slot is available again');
  for (const o of [...open.slice(1), again]) o.socket.destroy();
});

test('IMAP: a connection that does not authenticate in time is closed with BYE', async () => {
  await new Promise((r) => setTimeout(r, 100));
  const c = await greet(ports.imap);
  let rest = '';
  c.socket.on('data', (d) => (rest += d));
  await c.closed;
  // Only the pre-authentication timer says this (the 30-minute autologout has its own text).
  assert.match(rest, /\* BYE \[UNAVAILABLE\] no authentication in time/);
});

test('SMTP (MX and submission): over the per-address limit the greeting is 421 4.7.0', async () => {
  for (const port of [ports.mx, ports.submission]) {
    const open = [await greet(port), await greet(port), await greet(port)];
    for (const o of open) assert.match(o.line, /^220 /);
    const fourth = await greet(port);
    assert.match(fourth.line, /^421 4\.7\.0 too many connections from your address \(at most 3\)/);
    await fourth.closed;
    for (const o of open) o.socket.destroy();
    await Promise.all(open.map((o) => o.closed));
  }
});

test('HTTPS: over the per-address limit the connection is closed before TLS', async () => {
  const httpsPort = ports.https;
  const open: tls.TLSSocket[] = [];
  for (let i = 0; i < 3; i++)
    open.push(await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ port: httpsPort, host: '127.0.0.1', rejectUnauthorized: false }, () => resolve(s));
      s.once('error', reject);
    }));
  await assert.rejects(
    new Promise((resolve, reject) => {
      const s = tls.connect({ port: httpsPort, host: '127.0.0.1', rejectUnauthorized: false }, () => resolve(s));
      s.once('error', reject);
    }),
  );
  for (const s of open) s.destroy();
});

test('SMTP: an address opening more than connectionsPerAddressPerMinute new connections is refused 421 4.7.0, others are not', async () => {
  const from = (port: number, localAddress: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress });
      let buf = '';
      socket.on('data', (d) => {
        buf += d;
        const i = buf.indexOf('\r\n');
        if (i >= 0) {
          socket.destroy();
          resolve(buf.slice(0, i));
        }
      });
      socket.once('error', reject);
    });
  // One at a time, each closed at once: the open count never reaches the per-address limit.
  for (let i = 0; i < 12; i++) assert.match(await from(ports.mx, '127.0.0.4'), /^220 /, `connection ${i + 1} of the minute`);
  assert.match(await from(ports.mx, '127.0.0.4'), /^421 4\.7\.0 too many new connections from your address \(at most 12 a minute\)/);
  assert.match(await from(ports.mx, '127.0.0.5'), /^220 /, 'another address is not slowed down');
});
