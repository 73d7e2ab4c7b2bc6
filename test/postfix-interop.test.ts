// Debian's Postfix as a third operator C (c.mssante.test) of the local trust space, joined the
// way `caducee demo --peer c.mssante.test=127.0.0.1:PORT` does it: its server certificate is
// issued by the demo PKI, its DN is in the trust list, and both demo operators route
// c.mssante.test to its port. Everything below runs over real, verified mutual TLS.
import assert from 'node:assert/strict';
import { chmodSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { prepareDemo, startDemo, type DemoLayout, type DemoPeerInfo, type RunningDemo } from '../src/demo/space.js';
import type { Operator } from '../src/main.js';
import { folderMessages, submitAs, tempDir, testLogger, totalMessages, waitFor } from './helpers.js';
import { PostfixPeer, freePort, type PostfixRoute } from './peers/postfix.js';
import { requirePeer } from './peers/which.js';

const skip = requirePeer('postfix');

const OVERRIDES = { queue: { retrySeconds: [0.3], pollSeconds: 0.1, giveUpSeconds: 600, connectTimeoutSeconds: 5 } };
const C_DOMAIN = 'c.mssante.test';
const C_HOSTNAME = 'mx.c.mssante.test';

/** The Received comment Caducée writes for a client certificate DN (see receivedHeader in src/smtp/common.ts). */
const receivedDn = (dn: string) => dn.replace(/[()\\]/g, '');
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function rawMessage(o: { from: string; to: string; subject: string; id: string; body: string }): string {
  return [
    `From: <${o.from}>`,
    `To: <${o.to}>`,
    `Subject: ${o.subject}`,
    `Message-ID: <${o.id}>`,
    `Date: ${new Date().toUTCString()}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    o.body,
    '',
  ].join('\r\n');
}

/** The header block of a stored message, unfolded lines kept as stored. */
const headerOf = (raw: Buffer) => raw.toString('utf8').split('\r\n\r\n', 1)[0];

describe('Postfix as operator C of the trust space', { skip }, () => {
  let dir: string;
  let cleanup = () => {};
  let layout: DemoLayout;
  let demo: RunningDemo | undefined;
  let A: Operator;
  let B: Operator;
  let C: DemoPeerInfo;
  let postfix: PostfixPeer | undefined;
  let noCert: PostfixPeer | undefined;
  let routes: Record<string, PostfixRoute>;
  let paul: string;
  const runId = `${process.pid}.${Date.now()}`;

  before(async () => {
    ({ dir, cleanup } = tempDir('caducee-postfix-interop-'));
    chmodSync(dir, 0o755); // Postfix's virtual delivery agent runs as nobody and must traverse it
    const cPort = await freePort();
    layout = await prepareDemo(path.join(dir, 'space'), {
      ports: 'ephemeral',
      peers: [{ domain: C_DOMAIN, host: '127.0.0.1', port: cPort }],
      configOverrides: OVERRIDES,
    });
    C = layout.peers[0];
    assert.equal(C.domain, C_DOMAIN);
    assert.equal(C.port, cPort);
    // Before Postfix: the demo operators' MX ports are known only once they listen.
    demo = await startDemo(layout, { logger: testLogger(), configOverrides: OVERRIDES });
    [A, B] = demo.operators;
    paul = layout.operators[1].users[0].addresses[0];
    routes = {
      'a.mssante.test': { host: '127.0.0.1', port: demo.operators[0].ports.mx, certName: 'mx.a.mssante.test' },
      'b.mssante.test': { host: '127.0.0.1', port: demo.operators[1].ports.mx, certName: 'mx.b.mssante.test' },
    };
    postfix = await PostfixPeer.start({
      dir: path.join(dir, 'postfix-c'),
      domain: C_DOMAIN,
      hostname: C_HOSTNAME,
      port: cPort,
      certFile: C.chain, // leaf + intermediate, so that the intermediate is sent too
      keyFile: C.key,
      caFile: layout.caBundle,
      requireClientCert: true,
      routes,
    });
  });

  after(async () => {
    await Promise.allSettled([postfix?.stop(), noCert?.stop()]);
    await demo?.stop().catch(() => undefined);
    cleanup();
  });

  test('C → B: Postfix delivers to B over verified mutual TLS; B records C’s certificate DN', async () => {
    const id = `c-to-b.${runId}@${C_HOSTNAME}`;
    await postfix!.sendmail(rawMessage({ from: `dr.c@${C_DOMAIN}`, to: paul, subject: 'De C vers B', id, body: 'Bonjour de Postfix.' }), `dr.c@${C_DOMAIN}`, [paul]);
    const stored = await waitFor(async () => (await folderMessages(B, paul)).find((m) => m.includes(`Message-ID: <${id}>`)), 'the message from C in B’s INBOX', 20_000);
    const bPort = B.ports.mx;
    await postfix!.waitForLog(new RegExp(`Verified TLS connection established to 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${bPort}: TLSv1\\.[23]`));
    await postfix!.waitForLog(new RegExp(`to=<${escapeRe(paul)}>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${bPort},.* status=sent \\(250 `));
    const head = headerOf(stored);
    // B's own Received header comes first and names the client certificate it checked.
    const [received] = head.split(/\r\n(?=\S)/);
    assert.match(received, /^Received: from mx\.c\.mssante\.test \(\[127\.0\.0\.1\]\)\r\n\tby mx\.b\.mssante\.test \(Caducée\) with ESMTPS /);
    assert.ok(received.includes(`; client certificate ${receivedDn(C.dn)})`), `B's Received header names C's DN ${C.dn}:\n${received}`);
    // Postfix's own pickup trace is below it.
    assert.match(head, /^Received: by mx\.c\.mssante\.test \(Postfix, from userid \d+\)/m);
  });

  test('A → C: A delivers to Postfix, which verifies A’s client certificate', async () => {
    const claire = layout.operators[0].users[0];
    const before = (await postfix!.maildirMessages()).length;
    const subject = `De A vers C ${runId}`;
    await submitAs(A.ports.submission, layout.caBundle, claire, { from: claire.addresses[0], to: `someone@${C_DOMAIN}`, subject, text: 'Bonjour de Caducée.' });
    const msgs = await postfix!.waitForMessages(before + 1, 20_000);
    const arrived = msgs.find((m) => m.raw.includes(`Subject: ${subject}`));
    assert.ok(arrived, 'the message from A is in C’s Maildir');
    assert.deepEqual(
      (await postfix!.messagesFor(`someone@${C_DOMAIN}`)).map((m) => m.path),
      [arrived.path],
    );
    await postfix!.waitForLog(/postfix\/smtpd\[\d+\]: Trusted TLS connection established from \S+\[127\.0\.0\.1\]/);
    // smtpd_tls_received_header: Postfix recorded the verified client certificate of A.
    const head = headerOf(arrived.raw);
    assert.match(head, /^Received: from mx\.a\.mssante\.test \(/m);
    assert.match(head, /\(Client CN "mx\.a\.mssante\.test", Issuer "[^"]+" \(verified OK\)\)/);
    const sent = await waitFor(
      async () => (await A.store.listQueue({ status: 'sent' })).find((q) => q.recipient === `someone@${C_DOMAIN}`),
      'A’s queue item for someone@c.mssante.test to be sent',
    );
    assert.equal(sent.domain, C_DOMAIN);
    assert.equal((await A.store.listQueue({ status: 'queued' })).filter((q) => q.domain === C_DOMAIN).length, 0);
  });

  test('C without its client certificate: B refuses with 454 4.7.0, Postfix defers, nothing is stored', async () => {
    noCert = await PostfixPeer.start({
      dir: path.join(dir, 'postfix-c-nocert'),
      domain: C_DOMAIN,
      hostname: C_HOSTNAME,
      certFile: C.chain,
      keyFile: C.key,
      caFile: layout.caBundle,
      clientCert: false,
      routes: { 'b.mssante.test': routes['b.mssante.test'] },
    });
    const storedBefore = totalMessages(B);
    const id = `c-nocert.${runId}@${C_HOSTNAME}`;
    await noCert.sendmail(rawMessage({ from: `dr.c@${C_DOMAIN}`, to: paul, subject: 'Sans certificat client', id, body: 'x' }), `dr.c@${C_DOMAIN}`, [paul]);
    const bPort = B.ports.mx;
    // TLS itself is fine (B's server certificate verified), only the client certificate is missing.
    await noCert.waitForLog(new RegExp(`Verified TLS connection established to 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${bPort}`));
    const [line] = await noCert.waitForLog(new RegExp(`to=<${escapeRe(paul)}>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${bPort},.* status=\\w+ \\(.*$`, 'm'), 15_000);
    // B's reply is 454 4.7.0 at MAIL FROM (docs/trust-space.md): temporary, so the misconfigured
    // peer keeps the message in its queue until its certificate is fixed, instead of bouncing it.
    assert.match(line, /dsn=4\.7\.0, status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 454 4\.7\.0 client presented no certificate: .* \(in reply to MAIL FROM command\)\)$/);
    assert.equal(totalMessages(B), storedBefore, 'B stored nothing');
    assert.equal((await folderMessages(B, paul)).filter((m) => m.includes(`Message-ID: <${id}>`)).length, 0);
  });
});
