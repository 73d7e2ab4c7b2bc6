// Resource limits under load and bad input (issue 13): thousands of slow connections
// ("slowloris": a partial line, then nothing) held open on every listener family (IMAP, MX,
// submission, HTTP) plus clients sending an endless line. While they are open, a normal client from
// another address is served on each protocol; the endless lines are cut by each protocol's line
// limit (nothing buffered without bound); the server's memory growth per slow connection stays
// small; once a family's total limit is reached the next client is refused in its protocol's
// words (IMAP `* BYE [UNAVAILABLE]`, SMTP `421 4.3.2`). All on loopback: the slow clients come
// from 127.0.0.2 and 127.0.0.3, the normal ones from 127.0.0.1 (per-address limits apart).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { after, before, test } from 'node:test';
import { prepareDemo, startDemo, type RunningDemo } from '../src/demo/space.js';
import { rawImap, tempDir, testLogger } from './helpers.js';

const PER_FAMILY = 500; // slow connections per listener family: 2,000 in all
const TOTAL = PER_FAMILY + 20; // limits.connections per family
const { dir, cleanup } = tempDir('caducee-slow-');
let demo: RunningDemo;
let ca = '';
const sockets: net.Socket[] = [];

before(async () => {
  const layout = await prepareDemo(dir, { ports: 'ephemeral' });
  demo = await startDemo(layout, { logger: testLogger(), psc: false, configOverrides: { limits: { connectionsPerAddress: 2 * TOTAL, connections: TOTAL } } });
  ca = readFileSync(layout.caBundle, 'utf8');
});
after(async () => {
  for (const s of sockets) s.destroy();
  await demo?.stop();
  cleanup();
});

/** Connects from `from` and resolves with the socket and the first line it got (or '' for HTTP, which says nothing first). */
function open(port: number, from: string, waitGreeting: boolean): Promise<{ socket: net.Socket; first: string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: from });
    sockets.push(socket);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('error', (e) => (waitGreeting ? reject(e) : undefined));
    if (!waitGreeting) return socket.once('connect', () => resolve({ socket, first: '', closed }));
    let buf = '';
    socket.on('data', (d) => {
      buf += d;
      const i = buf.indexOf('\r\n');
      if (i >= 0) resolve({ socket, first: buf.slice(0, i), closed });
    });
  });
}

// A full collection before each reading, so that garbage does not blur the figure.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
/** JavaScript heap plus external memory (buffers) after a full collection: what sessions hold. */
const rssKiB = () => {
  gc();
  const m = process.memoryUsage();
  return Math.round((m.heapUsed + m.external) / 1024);
};

test(`${4 * PER_FAMILY} slow connections and endless lines: a normal client is still served, memory stays bounded, the total limit refuses in each protocol's words`, { timeout: 180_000 }, async (t) => {
  const A = demo.operators[0];
  const families = [
    { name: 'imap', port: A.ports.imap, greeting: true, partial: 'a1 LOGIN claire' },
    { name: 'mx', port: A.ports.mx, greeting: true, partial: 'EHLO slow.example' },
    { name: 'submission', port: A.ports.submission, greeting: true, partial: 'EHLO slow.example' },
    { name: 'http', port: A.ports.http, greeting: false, partial: 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ' },
  ];
  const before = rssKiB();
  for (const f of families) {
    for (let i = 0; i < PER_FAMILY; i += 50) {
      const batch = await Promise.all(Array.from({ length: Math.min(50, PER_FAMILY - i) }, () => open(f.port, '127.0.0.2', f.greeting)));
      for (const c of batch) {
        if (f.greeting) assert.match(c.first, f.name === 'imap' ? /^\* OK / : /^220 /, `${f.name}: slow client greeted`);
        c.socket.write(f.partial); // and never the end of the line
      }
    }
  }
  await new Promise((r) => setTimeout(r, 500));
  const held = rssKiB();
  const perConnection = (held - before) / (4 * PER_FAMILY);
  t.diagnostic(`heap + external ${before} KiB → ${held} KiB with ${4 * PER_FAMILY} slow connections (server and client ends in this process): ${perConnection.toFixed(1)} KiB each`);
  // Both ends of each connection live in this process; a session buffering without bound or a
  // per-connection cost in the hundreds of KiB would show here.
  assert.ok(perConnection < 32, `${perConnection.toFixed(1)} KiB per slow connection`);

  // A normal client from another address is served on every protocol, now.
  const imap = await rawImap(A.ports.imaps, ca);
  const u = demo.layout.operators[0].users[0]!;
  assert.match((await imap.cmd(`LOGIN ${u.login} "${u.appPassword}"`)).at(-1)!, /^t\d+ OK /);
  assert.match((await imap.cmd('SELECT INBOX')).at(-1)!, /^t\d+ OK /);
  imap.close();
  for (const port of [A.ports.mx, A.ports.submission]) {
    const c = await open(port, '127.0.0.1', true);
    assert.match(c.first, /^220 /);
    const reply = new Promise<string>((r) => c.socket.once('data', (d) => r(String(d))));
    c.socket.write('EHLO normal.example\r\n');
    assert.match(await reply, /^250[- ]/);
    c.socket.destroy();
  }
  const health = await fetch(`http://127.0.0.1:${A.ports.http}/healthz`);
  assert.equal(health.status, 200);

  // Endless lines: each protocol's line limit decides, nothing is buffered without bound. SMTP
  // (smtp-server's command-length limit) and HTTP (Node's 16 KiB header limit) close the
  // connection; IMAP answers the command BAD at its line limit and skips the rest of the line
  // (src/imap/protocol/parser.ts), keeping the connection.
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const CAP = 16 * 1024 * 1024;
  for (const f of families) {
    const c = await open(f.port, '127.0.0.3', f.greeting);
    let got = '';
    c.socket.on('data', (d) => (got += String(d).slice(0, 1000)));
    c.socket.on('error', () => {});
    let sent = 0;
    while (!c.socket.destroyed && c.socket.writable && sent < CAP) {
      const ok = c.socket.write(chunk);
      sent += chunk.length;
      if (!ok) await Promise.race([new Promise((r) => c.socket.once('drain', r)), c.closed]);
    }
    const closed = await Promise.race([c.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 3000).unref())]);
    t.diagnostic(`${f.name}: ${closed ? 'closed' : 'kept open'} after ${Math.round(sent / 1024)} KiB sent; answered ${JSON.stringify(got.slice(0, 120))}`);
    if (f.name === 'imap') assert.match(got, /^\* BAD [^\r]*line too long/m, 'imap: the endless line is answered BAD at the line limit');
    else assert.ok(closed && sent < CAP, `${f.name}: the server closes an endless line (closed ${closed} after ${sent} bytes)`);
    c.socket.destroy();
  }
  const afterLines = rssKiB();
  t.diagnostic(`heap + external after the endless lines: ${afterLines} KiB`);
  assert.ok(afterLines - held < 16 * 1024, `memory after ${families.length} endless lines: +${afterLines - held} KiB`);

  // The total limit of a family: the next connections are refused in the protocol's words.
  await new Promise((r) => setTimeout(r, 200));
  for (const f of families.filter((x) => x.greeting)) {
    const extra = [];
    for (let i = 0; i < TOTAL - PER_FAMILY + 1; i++) extra.push(await open(f.port, '127.0.0.3', true));
    const refused = extra.filter((c) => !/^(\* OK|220) /.test(c.first));
    assert.ok(refused.length >= 1, `${f.name}: one over ${TOTAL} is refused`);
    for (const c of refused)
      assert.match(c.first, f.name === 'imap' ? /^\* BYE \[UNAVAILABLE\] too many connections to this server/ : /^421 4\.3\.2 too many connections to this server/);
    for (const c of extra) c.socket.destroy();
  }
});
