// Two operators exchanging mail across a local MSSanté trust space, over real TCP and TLS.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { zipSync, strToU8 } from 'fflate';
import { simpleParser } from 'mailparser';
import MailComposer from 'nodemailer/lib/mail-composer';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { parseConfig } from '../src/config/index.js';
import { startOperator, type Operator } from '../src/main.js';
import { TestPki } from '../src/pki/index.js';
import { dialogue, folderMessages, submitAs, probe, tempDir, testLogger, totalMessages, waitFor } from './helpers.js';

/**
 * Restarts an operator on the ports it had (its peer's route names them). Between the stop and the
 * restart, another process's outgoing connection may briefly hold one of them as its local port:
 * retry for a few seconds on EADDRINUSE only.
 */
async function restartOnSamePorts(config: Parameters<typeof startOperator>[0]): Promise<Operator> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOperator(config, { logger: testLogger() });
    } catch (e) {
      if (!(e instanceof Error && /EADDRINUSE/.test(e.message)) || attempt >= 20) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

const FAST_QUEUE = { queue: { retrySeconds: [0.3], pollSeconds: 0.1, giveUpSeconds: 600, connectTimeoutSeconds: 3 }, smtp: { maxMessageSize: 10 * 1024 * 1024 } };

function compose(mail: any): Promise<Buffer> {
  return new Promise((resolve, reject) => new MailComposer(mail).compile().build((err: any, buf: Buffer) => (err ? reject(err) : resolve(buf))));
}

function xdmZip(): Uint8Array {
  // IHE XDM layout (../shared/docs/mssante.md §5), 8.3 upper-case names.
  return zipSync({
    'README.TXT': strToU8('Exemple de lot XDM\r\n'),
    'INDEX.HTM': strToU8('<html><body><a href="IHE_XDM/SUBSET01/DOC0001.XML">CR</a></body></html>'),
    'IHE_XDM/SUBSET01/METADATA.XML': strToU8('<?xml version="1.0"?><SubmitObjectsRequest/>'),
    'IHE_XDM/SUBSET01/DOC0001.XML': strToU8('<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"/>'),
  });
}

describe('local trust space: two operators', () => {
  let dir: string;
  let layout: DemoLayout;
  let cleanup = () => {};
  let demo: RunningDemo;
  let A: Operator;
  let B: Operator;
  let claire: { login: string; password: string; appPassword: string; addresses: string[] };
  let secretary: { login: string; password: string; appPassword: string };
  let paul: string;

  before(async (t) => {
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral', configOverrides: FAST_QUEUE });
    demo = await startDemo(layout, { logger: testLogger(), configOverrides: FAST_QUEUE });
    [A, B] = demo.operators;
    claire = layout.operators[0].users[0];
    secretary = layout.operators[0].users[1];
    paul = layout.operators[1].users[0].addresses[0];
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  const submit = (mail: any, user = claire) => submitAs(A.ports.submission, layout.caBundle, user, mail);

  test('a 5 MB PDF and an IHE_XDM.ZIP arrive byte-identical at the other operator', async () => {
    const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n'), randomBytes(5 * 1024 * 1024), Buffer.from('\n%%EOF\n')]);
    const zip = Buffer.from(xdmZip());
    const raw = await compose({
      from: `Dr Claire Martin <${claire.addresses[0]}>`,
      to: paul,
      subject: 'XDM/1.0/DDM+Compte rendu DUPONT Jean 19700101',
      text: 'Bonjour, veuillez trouver le compte rendu.',
      headers: { 'X-MSS-INS': 'O' },
      attachments: [
        { filename: 'compte-rendu.pdf', content: pdf, contentType: 'application/pdf' },
        { filename: 'IHE_XDM.ZIP', content: zip, contentType: 'application/zip' },
      ],
    });
    await submit({ envelope: { from: claire.addresses[0], to: [paul] }, raw });
    const [stored] = await waitFor(async () => {
      const m = await folderMessages(B, paul);
      return m.length ? m : undefined;
    }, 'the message at B');
    // Everything after the trace headers is the submitted message, byte for byte.
    assert.ok(stored.subarray(stored.length - raw.length).equals(raw), 'stored message ends with the submitted bytes');
    const prefix = stored.subarray(0, stored.length - raw.length).toString();
    assert.match(prefix, /^Received: from [^\r\n]+\r\n\tby mx\.b\.mssante\.test/);
    assert.equal((prefix.match(/^Received:/gm) ?? []).length, 2, 'only the two Received headers were added');
    const parsed = await simpleParser(stored);
    assert.equal(parsed.attachments.length, 2);
    assert.ok(parsed.attachments[0].content.equals(pdf));
    assert.ok(parsed.attachments[1].content.equals(zip));
    assert.equal(parsed.headers.get('x-mss-ins'), 'O');
    // Nothing left in A's queue, delivered once.
    await waitFor(async () => (await A.store.listQueue({ status: 'queued' })).length === 0, 'empty queue');
    assert.equal((await A.store.listQueue({ status: 'sent' })).length, 1);
  });

  test('a secretary sends on behalf of the physician: Sender is set; others are refused with 5.7.1', async () => {
    const before = (await folderMessages(B, paul)).length;
    await submit({ from: claire.addresses[0], to: paul, subject: 'Pour le Dr Martin', text: 'RDV confirmé' }, { ...secretary, addresses: [] } as any);
    const msgs = await waitFor(async () => {
      const m = await folderMessages(B, paul);
      return m.length > before ? m : undefined;
    }, 'delegated message');
    const parsed = await simpleParser(msgs[msgs.length - 1]);
    assert.equal(parsed.from?.value[0].address, claire.addresses[0]);
    assert.equal(parsed.headers.get('sender') && (parsed.headers.get('sender') as any).value[0].address, layout.operators[0].users[1].addresses[0]);
    // The physician's practice mailbox is not delegated to the secretary.
    const r = await probe({ port: A.ports.submission, ca: readFileSync(layout.caBundle, 'utf8'), auth: { user: secretary.login, pass: secretary.appPassword }, from: claire.addresses[1], to: [paul] });
    assert.equal(r.stage, 'mail');
    assert.equal(r.code, 550);
    assert.match(r.response!, /^550 5\.7\.1 .*may not send as cabinet\.martin@a\.mssante\.test/);
  });

  test('submission: AUTH only after TLS, wrong password 535 5.7.8, recipient outside the trust space refused at RCPT', async () => {
    const ca = readFileSync(layout.caBundle, 'utf8');
    const plain = await probe({ port: A.ports.submission, noTls: true, auth: { user: claire.login, pass: claire.appPassword }, from: claire.addresses[0], to: [paul] });
    assert.equal(plain.stage, 'auth');
    assert.notEqual(plain.code, 235);
    const bad = await probe({ port: A.ports.submission, ca, auth: { user: claire.login, pass: 'not-the-password' }, from: claire.addresses[0], to: [paul] });
    assert.equal(bad.code, 535);
    assert.match(bad.response!, /535 5\.7\.8/);
    const outside = await probe({ port: A.ports.submissions, implicitTls: true, ca, auth: { user: claire.login, pass: claire.appPassword }, from: claire.addresses[0], to: ['someone@gmail.com'] });
    assert.equal(outside.stage, 'rcpt');
    assert.equal(outside.code, 550);
    assert.match(outside.response!, /5\.7\.1 gmail\.com is outside the MSSanté trust space/);
  });

  describe('B refuses, with nothing stored', () => {
    let other: TestPki;
    const files: Record<string, { cert: string; key: string }> = {};
    before(async () => {
      const pki = await TestPki.load(layout.pkiDir);
      other = await TestPki.create(path.join(dir, 'other-pki'), { name: 'AUTRE IGC' });
      const a = layout.operators[0];
      const issue = async (name: string, p: TestPki, o: any) => {
        const c = await p.issueServer({ host: a.hostname, siret: '26750045200011', org: 'CENTRE HOSPITALIER DEMO A', dept: 'Paris (75)', ...o });
        files[name] = { cert: c.chainPem, key: c.keyPem };
        return c;
      };
      await issue('otherCa', other, {});
      await issue('expired', pki, { notBefore: new Date(Date.now() - 3 * 86400e3), notAfter: new Date(Date.now() - 86400e3) });
      const revoked = await issue('revoked', pki, {});
      await pki.revoke(revoked.serialHex);
      await issue('unlisted', pki, { host: 'intrus.a.mssante.test' });
      B.reloadAnchors(); // picks up the new CRL
      files.good = { cert: readFileSync(a.chain, 'utf8'), key: readFileSync(a.key, 'utf8') };
    });

    const from = 'claire.martin@a.mssante.test';
    const cases: [string, () => any, string, number, RegExp][] = [
      ['no TLS', () => ({ noTls: true }), 'mail', 530, /^530 5\.7\.0 Must issue a STARTTLS/],
      ['no client certificate', () => ({}), 'mail', 454, /^454 4\.7\.0 client presented no certificate/],
      ['a certificate from another CA', () => files.otherCa, 'mail', 454, /^454 4\.7\.5 client certificate refused \(untrusted\)/],
      ['an expired certificate', () => files.expired, 'mail', 454, /^454 4\.7\.5 client certificate refused \(expired\)/],
      ['a revoked certificate', () => files.revoked, 'mail', 454, /^454 4\.7\.5 client certificate refused \(revoked\)/],
      ['a DN not listed for the MAIL FROM domain', () => files.unlisted, 'mail', 550, /^550 5\.7\.1 certificate CN=intrus\.a\.mssante\.test.* is not listed for sender domain a\.mssante\.test/],
    ];
    for (const [name, opts, stage, code, re] of cases) {
      test(name, async () => {
        const before = totalMessages(B);
        const r = await probe({ port: B.ports.mx, from, to: [paul], ...opts() });
        assert.equal(r.stage, stage, JSON.stringify(r));
        assert.equal(r.code, code, r.response);
        assert.match(r.response!, re);
        assert.equal(totalMessages(B), before);
      });
    }

    test('a MAIL FROM domain not in the list', async () => {
      const r = await probe({ port: B.ports.mx, from: 'x@pirate.test', to: [paul], ...files.good });
      assert.equal(r.stage, 'mail');
      assert.match(r.response!, /^550 5\.7\.1 sender domain pirate\.test is not in the MSSanté trust list/);
    });

    test('unknown, deleted and suspended recipients; relaying to a third domain', async () => {
      await B.core.createMailbox({ address: 'ancien@b.mssante.test', type: 'ORG', displayName: 'Ancien', structure: { idType: 'SIRET', idValue: '13000000000019' } });
      await B.core.setMailboxState('ancien@b.mssante.test', 'deleted');
      await B.core.createMailbox({ address: 'conges@b.mssante.test', type: 'ORG', displayName: 'Congés', structure: { idType: 'SIRET', idValue: '13000000000019' } });
      await B.core.setMailboxState('conges@b.mssante.test', 'suspended');
      const before = totalMessages(B);
      const r = await probe({
        port: B.ports.mx,
        from,
        to: ['inconnu@b.mssante.test', 'ancien@b.mssante.test', 'conges@b.mssante.test', 'quelquun@a.mssante.test', 'x@ailleurs.test'],
        ...files.good,
      });
      assert.equal(r.stage, 'rcpt');
      const by = Object.fromEntries(r.rejected!.map((x) => [x.recipient, x.response]));
      assert.match(by['inconnu@b.mssante.test']!, /^550 5\.1\.1 /);
      assert.match(by['ancien@b.mssante.test']!, /^550 5\.1\.1 /);
      assert.match(by['conges@b.mssante.test']!, /^450 4\.2\.1 .*suspended/);
      assert.match(by['quelquun@a.mssante.test']!, /^550 5\.7\.1 relaying denied/);
      assert.match(by['x@ailleurs.test']!, /^550 5\.7\.1 relaying denied/);
      assert.equal(totalMessages(B), before);
    });

    test('an oversized message: declared SIZE and actual size', async () => {
      const before = totalMessages(B);
      const tmpBefore = readdirSync(path.join(B.config.dataDir, 'blobs', 'tmp')).length;
      // RFC 1870 §6.2: a declared SIZE over the limit is refused at MAIL FROM.
      const [declared] = await dialogue({ port: B.ports.mx, ...files.good, commands: [`MAIL FROM:<${from}> SIZE=${11 * 1024 * 1024}`] });
      assert.match(declared, /^552 5\.3\.4 /);
      const big = Buffer.concat([Buffer.from(`From: <${from}>\r\nTo: <${paul}>\r\nSubject: gros\r\n\r\n`), Buffer.alloc(11 * 1024 * 1024, 'A\r\n')]);
      const actual = await probe({ port: B.ports.mx, from, to: [paul], raw: big, ...files.good });
      assert.equal(actual.stage, 'data');
      assert.match(actual.response!, /^552 5\.3\.4 message too big/);
      assert.equal(totalMessages(B), before);
      assert.equal(readdirSync(path.join(B.config.dataDir, 'blobs', 'tmp')).length, tmpBefore, 'no partial file left');
    });
  });

  test('NOTIFY=SUCCESS: the destination operator sends a "delivered" DSN back through the trust space', async () => {
    const before = (await folderMessages(A, claire.addresses[0])).length;
    await submit({ from: claire.addresses[0], to: paul, subject: 'Accusé demandé', text: 'x', dsn: { id: 'env-42', return: 'headers', notify: ['success', 'failure'], recipient: claire.addresses[0] } });
    const msgs = await waitFor(async () => {
      const m = await folderMessages(A, claire.addresses[0]);
      return m.length > before ? m : undefined;
    }, 'success DSN');
    const dsn = msgs[msgs.length - 1].toString();
    assert.match(dsn, /Content-Type: multipart\/report;\s+report-type=delivery-status/i);
    assert.match(dsn, /Reporting-MTA: dns; mx\.b\.mssante\.test/);
    assert.match(dsn, /Original-Envelope-Id: env-42/);
    assert.match(dsn, /Action: delivered/);
    assert.match(dsn, /Status: 2\.0\.0/);
  });

  test('B down: A defers, then delivers once B is back; a permanent failure yields exactly one DSN', async () => {
    const bConfig = parseConfig({ ...structuredClone(B.config), listen: { ...B.config.listen, mx: B.ports.mx, submission: 0, submissions: 0 } } as any);
    await B.stop();
    const sentBefore = (await A.store.listQueue({ status: 'sent' })).length;
    await submit({ from: claire.addresses[0], to: paul, subject: 'Pendant la panne', text: 'B est arrêté' });
    await waitFor(async () => (await A.store.listQueue({ status: 'queued' })).some((q) => q.attempts >= 2), 'two failed attempts');
    const q = (await A.store.listQueue({ status: 'queued' }))[0];
    assert.match(q.lastError!, /ECONNREFUSED|connect/i);
    B = await restartOnSamePorts(bConfig);
    demo.operators[1] = B;
    await waitFor(async () => (await A.store.listQueue({ status: 'sent' })).length === sentBefore + 1, 'delivery after B is back');
    const inbox = await folderMessages(B, paul);
    assert.equal(inbox.filter((m) => m.includes('Subject: Pendant la panne')).length, 1);

    const dsnBefore = (await folderMessages(A, claire.addresses[0])).length;
    await submit({ from: claire.addresses[0], to: 'personne@b.mssante.test', subject: 'Adresse inexistante', text: 'x' });
    const failed = await waitFor(async () => (await A.store.listQueue({ status: 'failed' })).find((f) => f.recipient === 'personne@b.mssante.test'), 'permanent failure');
    assert.match(failed.lastError!, /550 5\.1\.1/);
    const msgs = await waitFor(async () => {
      const m = await folderMessages(A, claire.addresses[0]);
      return m.length > dsnBefore ? m : undefined;
    }, 'failure DSN');
    await new Promise((r) => setTimeout(r, 800)); // would a second DSN appear?
    const after = await folderMessages(A, claire.addresses[0]);
    assert.equal(after.length, dsnBefore + 1, 'exactly one DSN');
    const dsn = await simpleParser(msgs[msgs.length - 1]);
    assert.match(dsn.subject!, /^Échec de distribution : Adresse inexistante/);
    assert.match(dsn.text!, /n'a pas pu être remis/);
    const raw = msgs[msgs.length - 1].toString();
    assert.match(raw, /Final-Recipient: rfc822; personne@b\.mssante\.test/);
    assert.match(raw, /Action: failed/);
    assert.match(raw, /Status: 5\.1\.1/);
    assert.match(raw, /Remote-MTA: dns; 127\.0\.0\.1/);
  });

  test('A restarted with a non-empty queue delivers everything once', async () => {
    const bConfig = parseConfig({ ...structuredClone(B.config), listen: { ...B.config.listen, mx: B.ports.mx, submission: 0, submissions: 0 } } as any);
    const aConfig = parseConfig({ ...structuredClone(A.config), listen: { ...A.config.listen, mx: A.ports.mx, submission: A.ports.submission, submissions: 0 } } as any);
    await B.stop();
    const subjects = ['Relance 1', 'Relance 2', 'Relance 3'];
    for (const s of subjects) await submit({ from: claire.addresses[0], to: paul, subject: s, text: s });
    await waitFor(async () => (await A.store.listQueue({ status: 'queued' })).length === 3, 'three queued');
    await A.stop();
    B = await restartOnSamePorts(bConfig);
    demo.operators[1] = B;
    A = await restartOnSamePorts(aConfig);
    demo.operators[0] = A;
    await waitFor(async () => (await A.store.listQueue({ status: 'queued' })).length === 0, 'queue drained after restart');
    await new Promise((r) => setTimeout(r, 500));
    const inbox = (await folderMessages(B, paul)).map((m) => m.toString());
    for (const s of subjects) assert.equal(inbox.filter((m) => m.includes(`Subject: ${s}\r\n`)).length, 1, s);
  });
});
