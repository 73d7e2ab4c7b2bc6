// The MSSanté header fields X-MSS-CODECDA, X-MSS-INS, X-MSS-NIL (and X-MSS-MES towards a
// patient) kept byte for byte end to end (issue 11): submitted at operator A, relayed to
// operator B (directly, and through Debian's Postfix as a third hop), stored, and served by
// B's IMAP server — folding, spacing and letter case as the software wrote them.
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { prepareDemo, startDemo, type DemoLayout, type DemoPeerInfo, type DemoUser, type RunningDemo } from '../src/demo/space.js';
import type { Operator } from '../src/main.js';
import { buildTrustListXml } from '../src/trust/list.js';
import { folderMessages, submitAs, tempDir, testLogger, waitFor } from './helpers.js';
import { PostfixPeer, freePort } from './peers/postfix.js';
import { requirePeer } from './peers/which.js';

const skipPostfix = requirePeer('postfix');
const OVERRIDES = { queue: { retrySeconds: [0.3], pollSeconds: 0.1, giveUpSeconds: 600, connectTimeoutSeconds: 5 } };
const RELAY = 'relais.mssante.test';

/** The fields as an LPS might write them: a folded multi-value field, no space after a colon, odd case. */
const MSS_BLOCK = ['X-MSS-CODECDA: 11488-4,', '\t34133-9, CERT_DECL', 'X-MSS-INS:O', 'X-MSS-NIL: LPS-Demo/2.1 (build 42)', 'x-mss-ins-comment: kept too'].join('\r\n') + '\r\n';

describe('X-MSS-* header fields byte-identical across operators', () => {
  let dir: string;
  let cleanup = () => {};
  let layout: DemoLayout;
  let demo: RunningDemo;
  let A: Operator;
  let B: Operator;
  let claire: DemoUser;
  let paul: DemoUser;
  let relay: DemoPeerInfo;
  let postfix: PostfixPeer | undefined;
  let relayPort: number;
  const run = `${process.pid}.${Date.now()}`;

  before(async () => {
    ({ dir, cleanup } = tempDir('caducee-mss-headers-'));
    chmodSync(dir, 0o755); // Postfix's delivery agents run as other users and must traverse it
    relayPort = await freePort();
    layout = await prepareDemo(path.join(dir, 'space'), { ports: 'ephemeral', peers: [{ domain: RELAY, host: '127.0.0.1', port: relayPort }], configOverrides: OVERRIDES });
    relay = layout.peers[0];
    // The relay is one more MTA of both operators (a domain may be listed once per operator
    // certificate, mssante.md §3): its DN is listed for a.mssante.test (B accepts A's mail from
    // it) and for b.mssante.test (A accepts it as a server for B's domain).
    writeFileSync(
      layout.trustList,
      buildTrustListXml([
        ...layout.operators.map((o) => ({ domain: o.domain, operatorDn: o.dn, description: o.name })),
        ...layout.operators.map((o) => ({ domain: o.domain, operatorDn: relay.dn, description: `Relais Postfix de ${o.domain}` })),
        ...layout.peers.map((p) => ({ domain: p.domain, operatorDn: p.dn, description: p.domain })),
        ...(layout.patientService ? [{ domain: layout.patientService.domain, operatorDn: layout.patientService.dn, description: layout.patientService.name }] : []),
      ]),
    );
    demo = await startDemo(layout, { logger: testLogger(), configOverrides: OVERRIDES, psc: false });
    [A, B] = demo.operators;
    claire = layout.operators[0].users[0];
    paul = layout.operators[1].users[0];
  });
  after(async () => {
    await postfix?.stop().catch(() => undefined);
    await demo?.stop();
    cleanup();
  });

  const rawMessage = (id: string, to: string, extra = MSS_BLOCK) =>
    [`From: Dr Claire Martin <${claire.addresses[0]}>`, `To: <${to}>`, `Subject: Compte rendu ${id}`, `Message-ID: <${id}>`, `Date: ${new Date().toUTCString()}`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8'].join('\r\n') +
    '\r\n' +
    extra +
    '\r\nCompte rendu joint.\r\n';

  /** B's stored copy and B's IMAP view of the message with this Message-ID, both checked for the block. */
  async function assertKeptAtB(id: string): Promise<Buffer> {
    const stored = await waitFor(async () => (await folderMessages(B, paul.addresses[0])).find((m) => m.includes(`<${id}>`)), `${id} at B`, 20_000);
    assert.ok(stored.includes(MSS_BLOCK), `the X-MSS block is byte-identical in B's store:\n${stored.toString().split('\r\n\r\n')[0]}`);
    const imap = new ImapFlow({ host: '127.0.0.1', port: B.ports.imaps, secure: true, tls: { ca: readFileSync(layout.caBundle, 'utf8'), servername: 'localhost' }, auth: { user: paul.login, pass: paul.appPassword }, logger: false });
    await imap.connect();
    try {
      const lock = await imap.getMailboxLock('INBOX');
      try {
        const [uid] = (await imap.search({ header: { 'message-id': `<${id}>` } }, { uid: true })) as number[];
        assert.ok(uid, 'found over IMAP');
        const msg = await imap.fetchOne(String(uid), { source: true, headers: ['x-mss-codecda', 'x-mss-ins', 'x-mss-nil'] }, { uid: true });
        assert.ok(msg && msg.source!.includes(MSS_BLOCK), 'BODY[] carries the block unchanged');
        // RFC 3501 §6.4.5 BODY[HEADER.FIELDS (…)]: the fields' lines exactly, then the empty line.
        assert.equal(msg.headers!.toString(), 'X-MSS-CODECDA: 11488-4,\r\n\t34133-9, CERT_DECL\r\nX-MSS-INS:O\r\nX-MSS-NIL: LPS-Demo/2.1 (build 42)\r\n\r\n');
      } finally {
        lock.release();
      }
    } finally {
      await imap.logout();
    }
    return stored;
  }

  test('A → B: submission, A’s queue, B’s MX and IMAP keep them byte for byte', async () => {
    const id = `direct.${run}@a.mssante.test`;
    await submitAs(A.ports.submission, layout.caBundle, claire, { envelope: { from: claire.addresses[0], to: [paul.addresses[0]] }, raw: rawMessage(id, paul.addresses[0]) });
    await assertKeptAtB(id);
  });

  test('A → Postfix (relay) → B: a third hop keeps them byte for byte', { skip: skipPostfix }, async () => {
    postfix = await PostfixPeer.start({
      dir: path.join(dir, 'postfix-relay'),
      domain: RELAY,
      hostname: `mx.${RELAY}`,
      port: relayPort,
      certFile: relay.chain,
      keyFile: relay.key,
      caFile: layout.caBundle,
      requireClientCert: true,
      relayDomains: ['b.mssante.test'],
      routes: { 'b.mssante.test': { host: '127.0.0.1', port: B.ports.mx, certName: 'mx.b.mssante.test' } },
    });
    // A sends B's mail through the relay from now on (its routes are read at each delivery).
    A.config.routes['b.mssante.test'] = `127.0.0.1:${relayPort}`;
    try {
      const id = `relayed.${run}@a.mssante.test`;
      await submitAs(A.ports.submission, layout.caBundle, claire, { envelope: { from: claire.addresses[0], to: [paul.addresses[0]] }, raw: rawMessage(id, paul.addresses[0]) });
      const stored = await assertKeptAtB(id);
      // It did go through Postfix: its Received line sits between A's and B's.
      const head = stored.toString('utf8').split('\r\n\r\n', 1)[0];
      assert.match(head, /^Received: from mx\.relais\.mssante\.test /m, 'B received it from the relay');
      assert.match(head, /by mx\.relais\.mssante\.test \(Postfix\) with ESMTPS/, 'the relay’s own Received line');
      await postfix.waitForLog(/status=sent \(250 2\.6\.0 /);
    } finally {
      A.config.routes['b.mssante.test'] = `127.0.0.1:${B.ports.mx}`;
    }
  });

  test('towards a patient: X-MSS-MES: FIN and the others kept at the Mon espace santé stand-in', async () => {
    const ps = layout.patientService!;
    const patient = ps.users.find((u) => u.state === 'active')!;
    const id = `patient.${run}@a.mssante.test`;
    const block = MSS_BLOCK + 'X-MSS-MES: FIN\r\n';
    await submitAs(A.ports.submission, layout.caBundle, claire, { envelope: { from: claire.addresses[0], to: [patient.addresses[0]] }, raw: rawMessage(id, patient.addresses[0], block) });
    const stored = await waitFor(async () => (await folderMessages(demo.patientService!, patient.addresses[0])).find((m) => m.includes(`<${id}>`)), 'at the stand-in', 20_000);
    assert.ok(stored.includes(block), stored.toString().split('\r\n\r\n')[0]);
  });
});
