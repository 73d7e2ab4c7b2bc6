// Static routes with several hosts per domain (issue 12: an operator served by several nodes):
// the hosts are tried in order like MX records of equal preference (RFC 5321 §5.1) — a host that
// cannot be reached moves the attempt to the next; a host that replies decides it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import type { Operator } from '../src/main.js';
import { folderMessages, submitAs, tempDir, testLogger, waitFor } from './helpers.js';

const FAST_QUEUE = { queue: { retrySeconds: [0.3], pollSeconds: 0.1, giveUpSeconds: 600, connectTimeoutSeconds: 3 } };

/** A 127.0.0.1 port nothing listens on (bound, then closed): connections to it are refused. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('static routes with several hosts', () => {
  let layout: DemoLayout;
  let demo: RunningDemo;
  let A: Operator;
  let B: Operator;
  let cleanup = () => {};
  const fakes: SMTPServer[] = [];

  before(async () => {
    let dir: string;
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral', configOverrides: FAST_QUEUE });
    demo = await startDemo(layout, { logger: testLogger(), configOverrides: FAST_QUEUE });
    [A, B] = demo.operators;
  });
  after(async () => {
    await demo?.stop();
    await Promise.all(fakes.map((s) => new Promise((r) => s.close(() => r(undefined)))));
    cleanup();
  });

  const claire = () => layout.operators[0].users[0];
  const paul = () => layout.operators[1].users[0].addresses[0];
  const send = (subject: string) =>
    submitAs(A.ports.submission, layout.caBundle, claire(), { from: claire().addresses[0], to: paul(), subject, text: 'Bonjour.' });

  test('a host that refuses connections is skipped: delivered through the next one, in the same attempt', async () => {
    A.config.routes[B.config.operator.domains[0]] = [`127.0.0.1:${await closedPort()}`, `127.0.0.1:${B.ports.mx}`];
    await send('Route de secours');
    const stored = await waitFor(async () => {
      for (const m of await folderMessages(B, paul())) if (m.toString().includes('Route de secours')) return m;
    }, 'the message at B through the second host');
    assert.ok(stored);
    const item = await waitFor(async () => {
      const i = (await A.store.listQueue()).at(-1);
      return i?.status === 'sent' ? i : undefined;
    }, 'the queue item recorded as sent');
    assert.equal(item.attempts, 1, 'one attempt: the refused host, then the next');
  });

  test('a host that replies 4xx decides the attempt: deferred, the next host is not tried', async () => {
    // The first host has B's own certificate (a node of B that accepts nothing right now).
    const b = layout.operators[1];
    let rcpts = 0;
    const busy = new SMTPServer({
      secure: false,
      key: readFileSync(b.key),
      cert: readFileSync(b.chain),
      authOptional: true,
      logger: false,
      onRcptTo(_a, _s, cb) {
        rcpts++;
        cb(Object.assign(new Error('4.3.2 node draining, try again later'), { responseCode: 451 }));
      },
    });
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    fakes.push(busy);
    A.config.routes[B.config.operator.domains[0]] = [`127.0.0.1:${(busy.server.address() as AddressInfo).port}`, `127.0.0.1:${B.ports.mx}`];
    const before = (await A.store.listQueue()).length;
    await send('Noeud occupé');
    const item = await waitFor(async () => {
      const q = await A.store.listQueue();
      const i = q.length > before ? q.at(-1) : undefined;
      return i && i.attempts >= 1 ? i : undefined;
    }, 'the first attempt recorded');
    assert.equal(item.status, 'queued', 'deferred, not sent through the second host');
    assert.match(item.lastError ?? '', /^451 /);
    assert.ok(rcpts >= 1);
    assert.ok(!(await folderMessages(B, paul())).some((m) => m.toString().includes('Noeud occupé')), 'B never received it');
  });
});
