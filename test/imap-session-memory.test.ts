// What issue 15 changed in how IMAP sessions hold memory, checked from the outside:
// - a listener notifies its sessions through one subscription to core's events: an IDLE session
//   sees a delivery, also after another session of the listener has closed;
// - a connection upgraded with STARTTLS is counted back by the per-address limit when it ends
//   (the upgrade used to drop the plain socket's 'close' listeners, the limit's among them);
// - sessions of one user share an equal namespace; a changed one (a new grant) is not shared;
// - the pre-authentication limit (one sweep per listener, no timer per connection) closes an
//   unauthenticated connection and leaves an authenticated one alone.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { prepareDemo, startDemo, type RunningDemo } from '../src/demo/space.js';
import { UserNamespace, OTHER_PREFIX } from '../src/imap/namespace.js';
import { rawImap, submitAs, tempDir, testLogger } from './helpers.js';

const { dir, cleanup } = tempDir('caducee-imap-memory-');
let demo: RunningDemo;

before(async () => {
  const layout = await prepareDemo(dir, { ports: 'ephemeral' });
  demo = await startDemo(layout, { logger: testLogger(), psc: false, configOverrides: { limits: { connectionsPerAddress: 2, connectionsPerAddressPerMinute: 1000, preAuthSeconds: 1.5 } } });
});
after(async () => {
  await demo?.stop();
  cleanup();
});

/** A line reader over a socket: `line(re)` resolves with the first line (from now on) matching `re`. */
function lines(socket: net.Socket) {
  let buf = '';
  let waiting: (() => void) | undefined;
  socket.on('data', (d: Buffer) => {
    buf += d.toString();
    waiting?.();
  });
  return async (re: RegExp): Promise<string> => {
    for (;;) {
      let i;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const l = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (re.test(l)) return l;
      }
      await new Promise<void>((r) => (waiting = r));
    }
  };
}

test('a delivery reaches an idling session, also after another session of the listener closed', async () => {
  const a = demo.layout.operators[0];
  const claire = a.users[0];
  const ca = readFileSync(demo.layout.caBundle, 'utf8');
  const gone = await rawImap(a.ports.imaps, ca);
  assert.match((await gone.cmd(`LOGIN ${claire.login} ${claire.appPassword}`)).at(-1)!, /OK/);
  assert.match((await gone.cmd('SELECT INBOX')).at(-1)!, /OK/);
  const socket = tls.connect({ host: '127.0.0.1', port: a.ports.imaps, ca, servername: 'localhost' });
  const line = lines(socket);
  await line(/^\* OK/);
  socket.write(`a LOGIN ${claire.login} ${claire.appPassword}\r\na SELECT INBOX\r\n`);
  const exists = Number(/^\* (\d+) EXISTS$/.exec(await line(/^\* \d+ EXISTS$/))![1]);
  await line(/^a OK .*SELECT/);
  gone.close();
  socket.write('b IDLE\r\n');
  await line(/^\+ /);
  await submitAs(a.ports.submission, demo.layout.caBundle, claire, { from: claire.addresses[0], to: claire.addresses[0], subject: 'idle', text: 'x' });
  assert.equal(await line(/^\* \d+ EXISTS$/), `* ${exists + 1} EXISTS`);
  socket.write('DONE\r\n');
  assert.match(await line(/^b /), /^b OK/);
  socket.destroy();
});

test('STARTTLS: an upgraded connection is counted back by the per-address limit when it ends', async () => {
  const a = demo.layout.operators[0];
  const ca = readFileSync(demo.layout.caBundle, 'utf8');
  // The limit is 2: three upgraded connections one after the other, then a fourth, all admitted.
  for (let i = 0; i < 4; i++) {
    const socket = net.connect(a.ports.imap, '127.0.0.1');
    let buf = '';
    const line = (re: RegExp) =>
      new Promise<string>((resolve, reject) => {
        const check = () => {
          const m = buf.split('\r\n').find((l) => re.test(l));
          if (m) {
            socket.off('data', onData);
            resolve(m);
          }
        };
        const onData = (d: Buffer) => ((buf += d.toString()), check());
        socket.on('data', onData);
        socket.once('error', reject);
        check();
      });
    assert.match(await line(/^\* /), /^\* OK /, `connection ${i + 1} is greeted, not refused`);
    socket.write('s1 STARTTLS\r\n');
    await line(/^s1 /);
    const secure = tls.connect({ socket, ca, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    secure.on('data', () => {});
    secure.write('s2 LOGOUT\r\n');
    await closed;
    await new Promise((r) => setTimeout(r, 50));
  }
});

test('sessions of one user share an equal namespace; a changed grant gives a new one', async () => {
  const core = demo.operators[0].core;
  const [claire, other] = demo.layout.operators[0].users;
  const u1 = (await core.store.findUserByLogin(claire.login))!;
  const u2 = (await core.store.findUserByLogin(other.login))!;
  const n1 = await UserNamespace.load(core, u1);
  assert.equal(await UserNamespace.load(core, { ...u1 }), n1, 'an equal namespace is shared');
  const n2 = await UserNamespace.load(core, u2);
  assert.notEqual(n2, n1);
  const prefix = `${OTHER_PREFIX}${claire.addresses[0]}/`;
  const had = n2.entries.some((e) => e.prefix === prefix);
  // Grant the other user read access to claire's mailbox, or take it away if the demo gave it.
  await core.setAcl(u1, claire.addresses[0], other.login, { letters: had ? '' : 'lr' }, 'set');
  const n2b = await UserNamespace.load(core, u2);
  assert.notEqual(n2b, n2, 'a changed namespace is not shared');
  assert.equal(n2b.entries.some((e) => e.prefix === prefix), !had);
  assert.equal(n2.entries.some((e) => e.prefix === prefix), had, 'the earlier one is unchanged');
});

test('the pre-authentication limit closes an unauthenticated connection, not an authenticated one', async () => {
  const a = demo.layout.operators[0];
  const claire = a.users[0];
  const ca = readFileSync(demo.layout.caBundle, 'utf8');
  const authed = await rawImap(a.ports.imaps, ca);
  assert.match((await authed.cmd(`LOGIN ${claire.login} ${claire.appPassword}`)).at(-1)!, /OK/);
  const socket = tls.connect({ host: '127.0.0.1', port: a.ports.imaps, ca, servername: 'localhost' });
  const line = lines(socket);
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  await line(/^\* OK/);
  // 1.5 s limit, swept every 375 ms: the BYE comes within about 2 s.
  assert.match(await line(/^\* BYE/), /^\* BYE \[UNAVAILABLE\] no authentication in time/);
  await closed;
  assert.match((await authed.cmd('NOOP')).at(-1)!, /^t\d+ OK/, 'the authenticated session is still served');
  authed.close();
});
