// Messaging with patients through the demo's Mon espace santé stand-in (issue 11), over real
// sockets: operator A's submission refuses a malformed INS, a message over the patient size
// limit and malformed X-MSS-* fields; a professional starts a conversation, the patient answers
// inside it, [FIN] ends it and the patient's next answer is refused; a patient cannot start a
// conversation; an unknown or closed patient mailbox gets the service's automatic answer.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { prepareDemo, startDemo, type DemoLayout, type DemoPatientServiceInfo, type DemoUser, type RunningDemo } from '../src/demo/space.js';
import type { Operator } from '../src/main.js';
import { folderMessages, probe, sqliteDb, submitAs, tempDir, testLogger, totalMessages, waitFor } from './helpers.js';

const LIMIT = 64 * 1024; // patients.maxMessageSize for this test (25 MB by default)
const OVERRIDES = { queue: { retrySeconds: [0.3], pollSeconds: 0.1, giveUpSeconds: 600, connectTimeoutSeconds: 5 }, patients: { maxMessageSize: LIMIT } };

const headerOf = (raw: Buffer) => raw.toString('utf8').split('\r\n\r\n', 1)[0];

describe('patients (Mon espace santé stand-in)', () => {
  let dir: string;
  let cleanup = () => {};
  let layout: DemoLayout;
  let demo: RunningDemo;
  let A: Operator;
  let B: Operator;
  let MES: Operator;
  let ps: DemoPatientServiceInfo;
  let claire: DemoUser;
  let paul: DemoUser;
  let jean: DemoPatientServiceInfo['users'][number];
  const run = `${process.pid}.${Date.now()}`;

  before(async () => {
    ({ dir, cleanup } = tempDir('caducee-patients-'));
    layout = await prepareDemo(path.join(dir, 'space'), { ports: 'ephemeral', configOverrides: OVERRIDES });
    demo = await startDemo(layout, { logger: testLogger(), configOverrides: OVERRIDES, psc: false });
    [A, B] = demo.operators;
    MES = demo.patientService!;
    ps = layout.patientService!;
    claire = layout.operators[0].users[0];
    paul = layout.operators[1].users[0];
    jean = ps.users.find((u) => u.login === 'patient.dupont')!;
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  const auth = (u: DemoUser) => ({ user: u.login, pass: u.appPassword });
  const ca = () => readFileSync(layout.caBundle, 'utf8');

  test('the demo layout: a third operator on patient.mssante.test, in the trust list, with patients', () => {
    assert.equal(ps.domain, 'patient.mssante.test');
    assert.equal(layout.operators.length, 2, 'existing consumers still see the two operators of professionals');
    assert.ok(ps.ports.mx > 0 && ps.ports.submission > 0 && ps.ports.imaps > 0);
    assert.match(readFileSync(layout.trustList, 'utf8'), /<Nom>patient\.mssante\.test<\/Nom>/);
    assert.equal(jean.addresses[0], `${jean.ins}@patient.mssante.test`);
    assert.ok(ps.users.some((u) => u.state === 'closed'));
    assert.equal(MES.config.patients.domain, 'patient.mssante.test');
    assert.equal(A.config.patients.domain, 'patient.mssante.test');
  });

  test('bad INS refused at RCPT: 553 5.1.3 naming the rule', async () => {
    const bad = `${jean.ins.slice(0, 13)}${jean.ins.slice(13) === '00' ? '01' : '00'}@patient.mssante.test`;
    for (const [to, why] of [
      [bad, /cle \d\d au lieu de \d\d/],
      ['jean.dupont@patient.mssante.test', /15 caracteres|caracteres au lieu de 15/],
      ['18505751234567@patient.mssante.test', /14 caracteres au lieu de 15/],
    ] as const) {
      const r = await probe({ port: A.ports.submission, ca: ca(), auth: auth(claire), from: claire.addresses[0], to: [to] });
      assert.equal(r.stage, 'rcpt', JSON.stringify(r));
      assert.equal(r.code, 553);
      assert.match(r.response!, /^553 5\.1\.3 /);
      assert.match(r.response!, why);
      assert.match(r.response!, /INS de 15 chiffres, cle NIR valide, @patient\.mssante\.test \[rule patient-address\]$/);
    }
  });

  test('over the size limit towards patients: 552 5.3.4 naming the limit (declared SIZE at RCPT, actual size at DATA)', async () => {
    const before = totalMessages(MES);
    const big = `From: <${claire.addresses[0]}>\r\nTo: <${jean.addresses[0]}>\r\nSubject: gros\r\n\r\n${'x'.repeat(76) + '\r\n'}`.repeat(1) + `${'y'.repeat(76)}\r\n`.repeat(Math.ceil(LIMIT / 78) + 10);
    const declared = await probe({ port: A.ports.submission, ca: ca(), auth: auth(claire), from: claire.addresses[0], to: [jean.addresses[0]], raw: big, size: Buffer.byteLength(big) });
    assert.equal(declared.stage, 'rcpt', JSON.stringify(declared));
    assert.match(declared.response!, /^552 5\.3\.4 .*la limite vers les patients est de 65536 octets .*\[rule patient-size\]$/);
    const actual = await probe({ port: A.ports.submission, ca: ca(), auth: auth(claire), from: claire.addresses[0], to: [jean.addresses[0]], raw: big });
    assert.equal(actual.stage, 'data', JSON.stringify(actual));
    assert.match(actual.response!, /^552 5\.3\.4 message trop volumineux pour un patient \(Mon espace sante\) : \d+ octets, la limite vers les patients est de 65536 octets/);
    // The same message to a professional is accepted: the limit is towards patients only.
    const toPro = await probe({ port: A.ports.submission, ca: ca(), auth: auth(claire), from: claire.addresses[0], to: [paul.addresses[0]], raw: big });
    assert.equal(toPro.stage, 'sent', JSON.stringify(toPro));
    assert.equal((await A.store.listQueue()).filter((q) => q.domain === 'patient.mssante.test').length, 0, 'nothing queued towards patients');
    assert.equal(totalMessages(MES), before);
  });

  test('bad X-MSS-* fields refused 550 5.6.0; X-MSS-MES: FIN only towards patients', async () => {
    const msg = (extra: string, to: string) => `From: <${claire.addresses[0]}>\r\nTo: <${to}>\r\nSubject: x\r\n${extra}\r\n\r\nx\r\n`;
    const ins = await probe({ port: A.ports.submission, ca: ca(), auth: auth(claire), from: claire.addresses[0], to: [paul.addresses[0]], raw: msg('X-MSS-INS: Oui', paul.addresses[0]) });
    assert.equal(ins.stage, 'data');
    assert.match(ins.response!, /^550 5\.6\.0 X-MSS-INS: "Oui" invalide ; valeurs admises : O \(INS qualifie\) ou N \(INS non qualifie\) \[rule x-mss-ins\]$/);
    const mes = await probe({ port: A.ports.submission, ca: ca(), auth: auth(claire), from: claire.addresses[0], to: [paul.addresses[0]], raw: msg('X-MSS-MES: FIN', paul.addresses[0]) });
    assert.match(mes.response!, /^550 5\.6\.0 X-MSS-MES: FIN s'emploie seulement vers des patients \(@patient\.mssante\.test\) ; destinataire\(s\) non patient\(s\) : paul\.bernard@b\.mssante\.test \[rule x-mss-mes-recipients\]$/);
    const cda = await probe({ port: A.ports.submission, ca: ca(), auth: auth(claire), from: claire.addresses[0], to: [paul.addresses[0]], raw: msg('X-MSS-CODECDA: 11488-4;34133-9', paul.addresses[0]) });
    assert.match(cda.response!, /^550 5\.6\.0 X-MSS-CODECDA : code "11488-4;34133-9" invalide/);
  });

  test('conversation: the professional starts, the patient answers, [FIN] ends it, the next answer is refused', async () => {
    const subject = `Résultats ${run}`;
    const header = ['X-MSS-INS: O', 'X-MSS-CODECDA: 11502-2'];
    const raw = [`From: Dr Claire Martin <${claire.addresses[0]}>`, `To: <${jean.addresses[0]}>`, `Subject: ${subject}`, `Message-ID: <start.${run}@a>`, ...header, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', 'Bonjour, vos résultats sont normaux.', ''].join('\r\n');
    await submitAs(A.ports.submission, layout.caBundle, claire, { envelope: { from: claire.addresses[0], to: [jean.addresses[0]] }, raw });
    const arrived = await waitFor(async () => (await folderMessages(MES, jean.addresses[0])).find((m) => m.includes(`<start.${run}@a>`)), 'the message in the patient mailbox', 20_000);
    for (const h of header) assert.ok(headerOf(arrived).split('\r\n').includes(h), `${h} kept at the stand-in`);
    // Usage indicators count it towards patients (patients.domain, docs/indicators.md).
    assert.ok((sqliteDb(A).prepare("SELECT COUNT(*) n FROM usage_messages WHERE flow = 'sent' AND peer = 'patient'").get() as any).n >= 1);
    // The patient reads it over IMAP with their own credentials (they log in like any user).
    const imap = new ImapFlow({ host: '127.0.0.1', port: ps.ports.imaps, secure: true, tls: { ca: ca(), servername: 'localhost' }, auth: { user: jean.login, pass: jean.appPassword }, logger: false });
    await imap.connect();
    try {
      const lock = await imap.getMailboxLock('INBOX');
      try {
        const found = await imap.search({ header: { 'message-id': `<start.${run}@a>` } });
        assert.equal((found as number[]).length, 1);
      } finally {
        lock.release();
      }
    } finally {
      await imap.logout();
    }
    // The patient answers: accepted, delivered to the professional at operator A.
    await submitAs(ps.ports.submission, layout.caBundle, jean, { from: jean.addresses[0], to: claire.addresses[0], subject: `Re: ${subject}`, text: 'Merci docteur.', inReplyTo: `<start.${run}@a>` });
    await waitFor(async () => (await folderMessages(A, claire.addresses[0])).find((m) => m.includes(`Subject: Re: ${subject}`) || m.includes('Merci docteur')), 'the patient’s answer at A', 20_000);
    // The patient cannot start a conversation with another professional.
    const notStarted = await probe({ port: ps.ports.submission, ca: ca(), auth: auth(jean), from: jean.addresses[0], to: [paul.addresses[0]] });
    assert.equal(notStarted.stage, 'rcpt', JSON.stringify(notStarted));
    assert.match(notStarted.response!, /^550 5\.7\.1 paul\.bernard@b\.mssante\.test : seul un professionnel de sante peut engager un echange avec un patient.*\[rule patient-conversation-not-started\]$/);
    // Nor write to another patient.
    const other = ps.users.find((u) => u.login === 'patient.leroy')!;
    assert.match((await probe({ port: ps.ports.submission, ca: ca(), auth: auth(jean), from: jean.addresses[0], to: [other.addresses[0]] })).response!, /^550 5\.7\.1 .*\[rule patient-conversation-not-started\]$/);
    // [FIN]: the professional ends the conversation (subject exactly [FIN]).
    await submitAs(A.ports.submission, layout.caBundle, claire, { from: claire.addresses[0], to: jean.addresses[0], subject: '[FIN]', text: 'Bonne continuation.', messageId: `<fin.${run}@a>` });
    await waitFor(async () => (await folderMessages(MES, jean.addresses[0])).find((m) => m.includes(`<fin.${run}@a>`)), 'the [FIN] message at the stand-in', 20_000);
    const closed = await probe({ port: ps.ports.submission, ca: ca(), auth: auth(jean), from: jean.addresses[0], to: [claire.addresses[0]] });
    assert.equal(closed.stage, 'rcpt', JSON.stringify(closed));
    assert.match(closed.response!, /^550 5\.7\.1 claire\.martin@a\.mssante\.test : le professionnel a clos cet echange \(\[FIN\]\) le \d{4}-\d\d-\d\d ; il n'est plus possible d'y repondre \[rule patient-conversation-closed\]$/);
    // A new message from the professional opens a new exchange.
    await submitAs(A.ports.submission, layout.caBundle, claire, { from: claire.addresses[0], to: jean.addresses[0], subject: `Nouveau ${run}`, text: 'Nouvel échange.', messageId: `<again.${run}@a>` });
    await waitFor(async () => (await folderMessages(MES, jean.addresses[0])).find((m) => m.includes(`<again.${run}@a>`)), 'the new message at the stand-in', 20_000);
    assert.equal((await probe({ port: ps.ports.submission, ca: ca(), auth: auth(jean), from: jean.addresses[0], to: [claire.addresses[0]] })).stage, 'sent');
  });

  test('X-MSS-MES: FIN ends the conversation too', async () => {
    const leroy = ps.users.find((u) => u.login === 'patient.leroy')!;
    await submitAs(A.ports.submission, layout.caBundle, claire, { from: claire.addresses[0], to: leroy.addresses[0], subject: 'Ordonnance', text: 'Voici.', messageId: `<l1.${run}@a>` });
    await waitFor(async () => (await folderMessages(MES, leroy.addresses[0])).find((m) => m.includes(`<l1.${run}@a>`)), 'first message', 20_000);
    assert.equal((await probe({ port: ps.ports.submission, ca: ca(), auth: auth(leroy), from: leroy.addresses[0], to: [claire.addresses[0]] })).stage, 'sent');
    await submitAs(A.ports.submission, layout.caBundle, claire, { from: claire.addresses[0], to: leroy.addresses[0], subject: 'Dernier message', text: 'Au revoir.', messageId: `<l2.${run}@a>`, headers: { 'X-MSS-MES': 'FIN' } });
    const last = await waitFor(async () => (await folderMessages(MES, leroy.addresses[0])).find((m) => m.includes(`<l2.${run}@a>`)), 'the X-MSS-MES: FIN message', 20_000);
    assert.match(headerOf(last), /^X-MSS-MES: FIN$/im); // nodemailer writes the name as X-Mss-Mes
    assert.match((await probe({ port: ps.ports.submission, ca: ca(), auth: auth(leroy), from: leroy.addresses[0], to: [claire.addresses[0]] })).response!, /\[rule patient-conversation-closed\]$/);
  });

  test('unknown and closed patient mailboxes, the test address: the automatic answer (French, Auto-Submitted), nothing stored', async () => {
    const closedPatient = ps.users.find((u) => u.state === 'closed')!;
    const storedBefore = totalMessages(MES);
    for (const [to, why] of [
      [ps.unknownAddress, "aucune messagerie Mon espace santé n'est ouverte pour ce patient"],
      [closedPatient.addresses[0], 'la messagerie Mon espace santé de ce patient est fermée'],
      // mssante.md §8: the service's test address (not an INS: not refused at A) answers too.
      [`reponse.automatique-test@${ps.domain}`, 'a bien été reçu par Mon espace santé ; il n\'est remis à aucun patient'],
    ] as const) {
      const id = `<unknown.${Math.random().toString(36).slice(2)}@a>`;
      await submitAs(A.ports.submission, layout.caBundle, claire, { from: claire.addresses[0], to, subject: `Pour ${to}`, text: 'Bonjour.', messageId: id });
      const answer = await waitFor(async () => (await folderMessages(A, claire.addresses[0])).find((m) => m.includes(`In-Reply-To: ${id}`)), `the automatic answer for ${to}`, 20_000);
      const { simpleParser } = await import('mailparser');
      const parsed = await simpleParser(answer);
      assert.equal(parsed.headers.get('auto-submitted'), 'auto-replied');
      assert.equal(parsed.from?.value[0].address, 'ne-pas-repondre@patient.mssante.test');
      assert.equal(parsed.subject, `Réponse automatique : Pour ${to}`);
      assert.ok(parsed.text?.replace(/\s+/g, ' ').includes(why), parsed.text);
      assert.ok(parsed.text?.includes(to));
    }
    assert.equal(totalMessages(MES), storedBefore, 'the stand-in stored nothing for them');
    // The MX sent no "delivered" DSN and the queue item towards the stand-in is done.
    await waitFor(async () => (await A.store.listQueue({ status: 'queued' })).length === 0, 'A’s queue to empty');
  });

  test('the stand-in’s MX, as a peer operator sees it: bad INS 553 5.1.3, over the limit 552 5.3.4, null sender to an unknown patient 550 5.1.1', async () => {
    const a = layout.operators[0];
    const peer = { port: ps.ports.mx, cert: readFileSync(a.chain, 'utf8'), key: readFileSync(a.key, 'utf8'), ca: ca() };
    const bad = await probe({ ...peer, from: claire.addresses[0], to: ['123456789012345@patient.mssante.test'] });
    assert.equal(bad.stage, 'rcpt', JSON.stringify(bad));
    assert.match(bad.response!, /^553 5\.1\.3 .*\[rule patient-address\]$/);
    const big = `From: <${claire.addresses[0]}>\r\nTo: <${jean.addresses[0]}>\r\nSubject: gros\r\n\r\n` + `${'z'.repeat(76)}\r\n`.repeat(Math.ceil(LIMIT / 78) + 10);
    const declared = await probe({ ...peer, from: claire.addresses[0], to: [jean.addresses[0]], raw: big, size: Buffer.byteLength(big) });
    assert.match(declared.response!, /^552 5\.3\.4 .*\[rule patient-size\]$/);
    const stored = totalMessages(MES);
    const actual = await probe({ ...peer, from: claire.addresses[0], to: [jean.addresses[0]], raw: big });
    assert.equal(actual.stage, 'data', JSON.stringify(actual));
    assert.match(actual.response!, /^552 5\.3\.4 message trop volumineux pour un patient/);
    assert.equal(totalMessages(MES), stored, 'nothing stored');
    const nullSender = await probe({ ...peer, from: '', to: [ps.unknownAddress] });
    assert.equal(nullSender.stage, 'rcpt', JSON.stringify(nullSender));
    assert.match(nullSender.response!, /^550 5\.1\.1 \d{15}@patient\.mssante\.test : aucune messagerie Mon espace sante pour ce patient/);
  });

  test('B, another operator, checks patient addresses the same way', async () => {
    const r = await probe({ port: B.ports.submission, ca: ca(), auth: auth(paul), from: paul.addresses[0], to: ['123@patient.mssante.test'] });
    assert.match(r.response ?? '', /^553 5\.1\.3 .*\[rule patient-address\]$/);
  });
});
