// XDM end to end across two operators of a local demo trust space: buildXdm + xdmMessage →
// SMTP submission at A (nodemailer) → A's queue → B's MX (mutual TLS) → B's store → IMAP
// (imapflow) → mailparser → readXdm. The documents come back byte-identical with their hashes
// checked, and the MSSanté header fields are still there, byte for byte.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { XMLParser } from 'fast-xml-parser';
import { after, before, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { simpleParser } from 'mailparser';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../../src/demo/space.js';
import { buildXdm, readXdm, xdmMessage } from '../../src/xdm/index.js';
import { submitAs, tempDir, testLogger, waitFor } from '../helpers.js';
import { PATIENT, sampleCda, sampleInput, samplePdf } from './corpus.js';

const FAST_QUEUE = { queue: { retrySeconds: [0.3], pollSeconds: 0.1, giveUpSeconds: 600, connectTimeoutSeconds: 3 } };

let cleanup = () => {};
let layout: DemoLayout;
let demo: RunningDemo;
before(async () => {
  let dir: string;
  ({ dir, cleanup } = tempDir('caducee-xdm-e2e-'));
  layout = await prepareDemo(dir, { ports: 'ephemeral', configOverrides: FAST_QUEUE });
  demo = await startDemo(layout, { logger: testLogger(), configOverrides: FAST_QUEUE, psc: false });
});
after(async () => {
  await demo?.stop();
  cleanup();
});

test('XDM with CDA and PDF: submission at A → B → IMAP → parse: same documents, hashes, X-MSS headers', async () => {
  const claire = layout.operators[0].users[0];
  const paulUser = layout.operators[1].users[0];
  const from = claire.addresses[0]!;
  const to = paulUser.addresses[0]!;
  const pdf = samplePdf('CR biologie');
  const cdas = [Buffer.from(sampleCda()), Buffer.from(sampleCda({ code: '34112-3', displayName: "CR d'hospitalisation" }))];
  const built = buildXdm(sampleInput({ documents: cdas.map((bytes) => ({ mimeType: 'text/xml' as const, bytes })), author: { email: from, family: 'DUPONT', given: 'Claire' } }));
  const m = await xdmMessage({ from, to: [to], label: "CR d'examens biologiques", patient: PATIENT, zip: built.zip, cdaCodes: built.cdaCodes, pdf: { bytes: pdf, filename: 'CR.PDF' }, nil: 'CADUCEE-TEST' });
  const token = `xdm-${Date.now()}`;
  const raw = Buffer.concat([Buffer.from(`X-Test-Token: ${token}\r\n`), m.raw]);
  await submitAs(layout.operators[0].ports.submission, layout.caBundle, claire, { raw, envelope: { from, to: [to] } });

  const ca = readFileSync(layout.caBundle, 'utf8');
  const imap = new ImapFlow({ host: '127.0.0.1', port: layout.operators[1].ports.imaps, secure: true, tls: { ca, servername: 'localhost' }, auth: { user: paulUser.login, pass: paulUser.appPassword }, logger: false });
  await imap.connect();
  try {
    const source = await waitFor(async () => {
      const lock = await imap.getMailboxLock('INBOX');
      try {
        await imap.noop(); // new messages are announced as EXISTS on the next command
        if (!imap.mailbox || imap.mailbox.exists === 0) return undefined;
        for await (const msg of imap.fetch('1:*', { source: true })) if (msg.source?.includes(token)) return msg.source;
      } finally {
        lock.release();
      }
      return undefined;
    }, 'the XDM message in B’s INBOX over IMAP');
    const head = source.subarray(0, source.indexOf('\r\n\r\n')).toString('latin1');
    const lines = head.split(/\r\n(?![ \t])/);
    assert.deepEqual(lines.filter((l) => /^X-MSS-/i.test(l)), ['X-MSS-CODECDA: 11502-2', 'X-MSS-CODECDA: 34112-3', 'X-MSS-INS: O', 'X-MSS-NIL: CADUCEE-TEST']);
    const parsed = await simpleParser(source);
    assert.equal(parsed.subject, "XDM/1.0/DDM+CR d'examens biologiques DURAND Élodie 12/03/1979");
    const zip = parsed.attachments.find((a) => a.filename === 'IHE_XDM.ZIP');
    assert.ok(zip, 'IHE_XDM.ZIP attached');
    assert.deepEqual(zip.content, Buffer.from(built.zip));
    assert.deepEqual(parsed.attachments.find((a) => a.filename === 'CR.PDF')?.content, pdf);
    const pkg = readXdm(zip.content);
    assert.deepEqual(pkg.warnings, []);
    assert.deepEqual(pkg.documents.map((d) => Buffer.from(d.bytes)), cdas);
    for (const d of pkg.documents) assert.equal(d.declaredHash, d.hash);
    assert.deepEqual(pkg.documents.map((d) => d.cda?.code), ['11502-2', '34112-3']);
    assert.deepEqual(pkg.documents.map((d) => d.uniqueId), built.documents.map((d) => d.uniqueId));
  } finally {
    await imap.logout();
  }
});

test('a started operator serves its autoconfiguration on HTTP and HTTPS, with its own ports', async () => {
  const op = layout.operators[0];
  const ca = readFileSync(layout.caBundle, 'utf8');
  const fetchText = (url: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const u = new URL(url);
      (u.protocol === 'https:' ? https : http)
        .get(u, { ca, servername: 'localhost' } as any, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        })
        .on('error', reject);
    });
  for (const base of [op.http!, op.https!]) {
    const r = await fetchText(`${base}/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=${encodeURIComponent(op.users[0]!.addresses[0]!)}`);
    assert.equal(r.status, 200, base);
    const ep = new XMLParser({ ignoreAttributes: false, parseTagValue: false }).parse(r.body).clientConfig.emailProvider;
    assert.equal(ep.domain, op.domain);
    assert.deepEqual(ep.incomingServer.map((s: any) => [s.hostname, Number(s.port), s.socketType]), [
      [op.hostname, op.ports.imaps, 'SSL'],
      [op.hostname, op.ports.imap, 'STARTTLS'],
    ]);
    assert.deepEqual(ep.outgoingServer.map((s: any) => [s.hostname, Number(s.port), s.socketType]), [
      [op.hostname, op.ports.submissions, 'SSL'],
      [op.hostname, op.ports.submission, 'STARTTLS'],
    ]);
  }
});
