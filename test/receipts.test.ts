// Delivery tracking and receipts across two operators (docs/receipts.md): DSNs (RFC 3464) and
// MDNs (RFC 8098) coming back update the sender's tracking; read receipts and the ANS integration
// acknowledgement leave from the recipient's operator. Real SMTP, TLS and IMAP between them.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { simpleParser } from 'mailparser';
import { strToU8, zipSync } from 'fflate';
import MimeNode from 'nodemailer/lib/mime-node';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import type { Operator } from '../src/main.js';
import type { StoredMessage, User } from '../src/model/index.js';
import { buildDsn } from '../src/mime/dsn.js';
import { ReceiptRefused } from '../src/policy/mdn-service.js';
import type { TrackedSubmission, TrackingStatus } from '../src/store/types.js';
import { folderMessages, submitAs, tempDir, testLogger, waitFor } from './helpers.js';

const FAST_QUEUE = { queue: { retrySeconds: [0.3], pollSeconds: 0.1, giveUpSeconds: 600, connectTimeoutSeconds: 3 } };

describe('delivery tracking and receipts between two operators', () => {
  let layout: DemoLayout;
  let demo: RunningDemo;
  let cleanup = () => {};
  let A: Operator;
  let B: Operator;
  let claire: DemoLayout['operators'][number]['users'][number];
  let paulLogin: DemoLayout['operators'][number]['users'][number];
  let paul: string;
  let paulUser: User;
  let claireUser: User;
  let claireMailboxId: number;

  before(async () => {
    let dir: string;
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral', configOverrides: FAST_QUEUE });
    demo = await startDemo(layout, { logger: testLogger(), configOverrides: FAST_QUEUE });
    [A, B] = demo.operators;
    claire = layout.operators[0].users[0];
    paulLogin = layout.operators[1].users[0];
    paul = paulLogin.addresses[0];
    paulUser = await B.core.requireUser(paulLogin.login);
    claireUser = await A.core.requireUser(claire.login);
    claireMailboxId = (await A.store.findMailboxByAddress(claire.addresses[0]))!.id;
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  const submit = (mail: any) => submitAs(A.ports.submission, layout.caBundle, claire, { from: claire.addresses[0], ...mail });
  const subjectTag = (s: string) => `${s} ${randomBytes(3).toString('hex')}`;

  /** Claire's submission with this subject (the tracking store as the API reads it). */
  async function submissionOf(subject: string): Promise<TrackedSubmission | undefined> {
    return (await A.store.listSubmissions([claireMailboxId], { limit: 100 })).find((s) => s.subject === subject);
  }
  const statusOf = async (subject: string, address = paul) => (await submissionOf(subject))?.recipients.find((r) => r.address === address);
  const waitStatus = (subject: string, status: TrackingStatus, address = paul) =>
    waitFor(async () => {
      const r = await statusOf(subject, address);
      return r?.status === status ? r : undefined;
    }, `${subject}: ${address} ${status}`);

  /** The stored copy of the message with this subject in `address`'s INBOX at `op`. */
  async function received(op: Operator, address: string, subject: string): Promise<StoredMessage> {
    return waitFor(async () => {
      const mb = await op.store.findMailboxByAddress(address);
      const inbox = await op.store.getFolder(mb!.id, 'INBOX');
      for (const m of await op.store.listMessages(inbox!.id)) if ((await op.blobs.read(m.blobId)).includes(`Subject: ${subject}`)) return m;
      return undefined;
    }, `${subject} in ${address}`);
  }

  test('NOTIFY=SUCCESS: queued, then relayed (peer 250), then delivered when the destination DSN comes back', async () => {
    const subject = subjectTag('Suivi accuse');
    const seen: TrackingStatus[] = [];
    const onChange = (e: { id: number; mailboxId: number }) => {
      assert.equal(e.mailboxId, claireMailboxId);
      // The store answers synchronously: this is the state the event announces.
      void A.store.getSubmission(e.id).then((s) => {
        const st = s?.subject === subject ? s.recipients[0].status : undefined;
        if (st && seen[seen.length - 1] !== st) seen.push(st);
      });
    };
    A.core.events.on('submission', onChange);
    try {
      const inboxBefore = (await folderMessages(A, claire.addresses[0])).length;
      await submit({ to: paul, subject, text: 'x', dsn: { id: 'env-suivi-1', return: 'headers', notify: ['success', 'failure'], recipient: claire.addresses[0] } });
      const s = (await submissionOf(subject))!;
      assert.ok(s, 'recorded with the delivery');
      assert.equal(s.from, claire.addresses[0]);
      assert.equal(s.envid, 'env-suivi-1');
      assert.match(s.messageId!, /^<.+@.+>$/);
      await waitStatus(subject, 'delivered');
      assert.deepEqual(seen, ['queued', 'relayed', 'delivered']);
      assert.equal((await statusOf(subject))!.detail, null);
      // The DSN itself is still delivered to the sender's INBOX, as before.
      const inbox = await folderMessages(A, claire.addresses[0]);
      assert.ok(inbox.length > inboxBefore && inbox.some((m) => m.includes('Original-Envelope-Id: env-suivi-1')));
    } finally {
      A.core.events.off('submission', onChange);
    }
  });

  test('a local recipient is delivered at once; a refusal by the peer is failed with its reason', async () => {
    const subject = subjectTag('Suivi local et refus');
    const local = layout.operators[0].users[1].addresses[0];
    await submit({ to: [local, 'personne@b.mssante.test'], subject, text: 'x' });
    assert.equal((await statusOf(subject, local))!.status, 'delivered');
    const failed = await waitStatus(subject, 'failed', 'personne@b.mssante.test');
    assert.match(failed.detail!, /550 5\.1\.1/);
  });

  test('a failure DSN from the other operator (matched by the returned Message-ID) marks the recipient failed', async () => {
    const subject = subjectTag('Suivi echec tardif');
    await submit({ to: paul, subject, text: 'x' });
    await waitStatus(subject, 'relayed');
    const copy = await received(B, paul, subject);
    // B reports a late failure, as a relay would: RFC 3464, sent back through the trust space.
    const dsn = await buildDsn({
      reportingMta: B.config.operator.hostname,
      postmaster: `postmaster@${B.config.operator.domains[0]}`,
      to: claire.addresses[0],
      envid: null,
      arrivalDate: new Date(),
      ret: 'HDRS',
      recipients: [{ recipient: paul, orcpt: null, action: 'failed', status: '5.2.2', diagnostic: '552 5.2.2 boîte pleine', lastAttempt: new Date() }],
      original: await B.blobs.read(copy.blobId),
    });
    const blob = await B.blobs.put(dsn);
    await B.core.deliver({ blobId: blob.id, size: blob.size, internalDate: new Date(), envelopeFrom: '', localMailboxIds: [], remote: [{ recipient: claire.addresses[0], domain: 'a.mssante.test', notify: ['NEVER'], orcpt: null }] });
    blob.release();
    const r = await waitStatus(subject, 'failed');
    assert.equal(r.detail, '552 5.2.2 boîte pleine');
  });

  test('read receipt: sendReadReceipt → displayed at the sender; once only ($MDNSent, seen over IMAP); never for a report, never to another address than the return path', async () => {
    const subject = subjectTag('Lecture demandee');
    await submit({ to: paul, subject, text: 'x', headers: { 'Disposition-Notification-To': claire.addresses[0] } });
    const copy = await received(B, paul, subject);
    // The recipient's mail client has INBOX open (IDLE) while the receipt leaves.
    const imap = new ImapFlow({ host: '127.0.0.1', port: B.ports.imaps, secure: true, auth: { user: paulLogin.login, pass: paulLogin.appPassword }, tls: { ca: readFileSync(layout.caBundle), servername: 'localhost' } as any, logger: false } as any);
    await imap.connect();
    try {
      await imap.mailboxOpen('INBOX');
      const flagged = new Promise<Set<string>>((resolve) => imap.on('flags', (e: any) => e.flags?.has('$MDNSent') && resolve(e.flags)));
      void imap.idle();
      const res = await B.receipts.sendReadReceipt(paulUser, { emailId: copy.id });
      assert.deepEqual(res.to, [claire.addresses[0]]);
      // RFC 3503: the keyword reaches the open session (IDLE) without a new command.
      await Promise.race([flagged, new Promise((_, rej) => setTimeout(() => rej(new Error('no FETCH FLAGS with $MDNSent during IDLE')), 5000))]);
      const m = await imap.fetchOne(String(copy.uid), { flags: true }, { uid: true });
      assert.ok(m && m.flags?.has('$MDNSent'));
    } finally {
      await imap.logout();
    }
    const r = await waitStatus(subject, 'displayed');
    assert.equal(r.detail, null);
    const mdn = (await folderMessages(A, claire.addresses[0])).find((m) => m.includes('disposition-notification') && m.includes('MDN-sent-manually') && m.includes(subject))!;
    assert.ok(mdn, 'the MDN reached the sender');
    const text = mdn.toString();
    assert.match(text, /Content-Type: multipart\/report;\s+report-type=disposition-notification/i);
    assert.match(text, /Disposition: manual-action\/MDN-sent-manually; displayed/);
    assert.match(text, new RegExp(`Final-Recipient: rfc822;${paul}`));
    assert.match(text, /Original-Message-ID: <.+>/);
    assert.equal((await simpleParser(mdn)).subject, `Accusé de lecture : ${subject}`);
    await assert.rejects(B.receipts.sendReadReceipt(paulUser, { emailId: copy.id }), (e: any) => e instanceof ReceiptRefused && e.reason === 'already-sent');

    // Never in answer to a report: a multipart/report asking for a receipt gets none.
    const reportSubject = subjectTag('Rapport avec DNT');
    const report = new MimeNode('multipart/report; report-type=disposition-notification');
    report.setHeader({ From: claire.addresses[0], To: paul, Subject: reportSubject, 'Disposition-Notification-To': claire.addresses[0] });
    report.createChild('text/plain').setContent('rapport');
    report.createChild('message/disposition-notification').setContent(`Final-Recipient: rfc822;${claire.addresses[0]}\r\nDisposition: manual-action/MDN-sent-manually; displayed\r\n`);
    const raw: Buffer = await new Promise((res, rej) => report.build((err: any, b: Buffer) => (err ? rej(err) : res(b))));
    await submit({ envelope: { from: claire.addresses[0], to: [paul] }, raw });
    const reportCopy = await received(B, paul, reportSubject);
    await assert.rejects(B.receipts.sendReadReceipt(paulUser, { emailId: reportCopy.id }), (e: any) => e instanceof ReceiptRefused && e.reason === 'is-report');

    // RFC 8098 §2.1: Disposition-Notification-To other than the return path: not without confirmation.
    const otherSubject = subjectTag('Accuse ailleurs');
    await submit({ to: paul, subject: otherSubject, text: 'x', headers: { 'Disposition-Notification-To': claire.addresses[1] } });
    const otherCopy = await received(B, paul, otherSubject);
    await assert.rejects(B.receipts.sendReadReceipt(paulUser, { emailId: otherCopy.id }), (e: any) => e instanceof ReceiptRefused && e.reason === 'different-address');
    const after = await B.store.getReceiptMessage({ emailId: otherCopy.id });
    assert.ok(!after!.flags.includes('$MDNSent'), 'nothing sent, nothing marked');
    // Someone without a right on the mailbox cannot tell that the message exists.
    const stranger = await B.core.createUser({ login: `inconnu-${randomBytes(3).toString('hex')}`, displayName: 'Sans droit' });
    await assert.rejects(B.receipts.sendReadReceipt(stranger, { emailId: otherCopy.id }), (e: any) => e.name === 'NotFound');
  });

  test('integration error 902 from an APP mailbox: MDN with the ANS subject, Disposition and both documents; tracking error with the code', async () => {
    const app = layout.operators[1].certificates.organisation.appMailbox;
    const [idType, idValue] = layout.operators[1].certificates.organisation.structure.split(':') as ['FINESS' | 'SIRET', string];
    const appUser = await B.store.applicationAccount((await B.store.findStructure(idType, idValue))!);
    const zip = Buffer.from(zipSync({ 'README.TXT': strToU8('Lot XDM\r\n'), 'IHE_XDM/SUBSET01/METADATA.XML': strToU8('<SubmitObjectsRequest/>') }));
    const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n'), randomBytes(2048), Buffer.from('\n%%EOF\n')]);
    const subject = subjectTag('XDM/1.0/DDM+Compte rendu DUPONT Jean 01/02/1960');
    const attachments = [
      { filename: 'IHE_XDM.ZIP', content: zip, contentType: 'application/zip' },
      { filename: 'compte-rendu.pdf', content: pdf, contentType: 'application/pdf' },
    ];
    await submit({ to: app, subject, text: 'Document', attachments, headers: { 'Disposition-Notification-To': claire.addresses[0] } });
    const copy = await received(B, app, subject);
    const res = await B.receipts.acknowledgeIntegration(appUser, { emailId: copy.id }, { code: 902 });
    assert.equal(res.sent, 'mdn');
    const r = await waitStatus(subject, 'error', app);
    assert.equal(r.detail, '902^Identifiant patient inconnu');
    const raw = (await folderMessages(A, claire.addresses[0])).find((m) => m.includes('processed/Error: 902'))!;
    assert.ok(raw, 'the MDN reached the sender');
    const text = raw.toString();
    assert.match(text, /report-type=disposition-notification/);
    assert.match(text, /Disposition: automatic-action\/MDN-sent-automatically; processed\/Error: 902\^Identifiant patient inconnu/);
    assert.match(text, new RegExp(`Original-Recipient: rfc822;${app}`));
    assert.match(text, new RegExp(`Final-Recipient: rfc822;${app}`));
    const mdn = await simpleParser(raw);
    assert.equal(mdn.subject, `[KO Intégration système !][902] ${subject}`);
    const back = (name: string) => mdn.attachments.find((a) => a.filename === name)?.content;
    assert.ok(back('IHE_XDM.ZIP')?.equals(zip), 'IHE_XDM.ZIP attached again, byte-identical');
    assert.ok(back('compte-rendu.pdf')?.equals(pdf), 'PDF attached again, byte-identical');
    await assert.rejects(B.receipts.acknowledgeIntegration(appUser, { emailId: copy.id }, { ok: true }), (e: any) => e instanceof ReceiptRefused && e.reason === 'already-sent');

    // Integrated: `processed`, the original subject kept (ANS guide), no attachment sent back.
    const okSubject = subjectTag('XDM/1.0/DDM+Compte rendu LEROY Paul 05/06/1980');
    await submit({ to: app, subject: okSubject, text: 'Document', attachments, headers: { 'Disposition-Notification-To': claire.addresses[0] } });
    const okCopy = await received(B, app, okSubject);
    assert.equal((await B.receipts.acknowledgeIntegration(appUser, { emailId: okCopy.id }, { ok: true })).sent, 'mdn');
    assert.equal((await waitStatus(okSubject, 'processed', app)).detail, null);
    const okMdn = (await folderMessages(A, claire.addresses[0])).find((m) => m.includes('MDN-sent-automatically; processed\r\n') && m.includes(okSubject))!;
    assert.ok(okMdn, 'the processed MDN reached the sender');
    const okParsed = await simpleParser(okMdn);
    assert.equal(okParsed.subject, okSubject);
    assert.equal(okParsed.attachments.filter((a) => a.filename === 'IHE_XDM.ZIP').length, 0);
    // Only an APP mailbox acknowledges integration.
    const perSubject = subjectTag('Pas une BAL applicative');
    await submit({ to: paul, subject: perSubject, text: 'x', headers: { 'Disposition-Notification-To': claire.addresses[0] } });
    const perCopy = await received(B, paul, perSubject);
    await assert.rejects(B.receipts.acknowledgeIntegration(paulUser, { emailId: perCopy.id }, { code: 902 }), (e: any) => e instanceof ReceiptRefused && e.reason === 'not-app-mailbox');
    await assert.rejects(B.receipts.acknowledgeIntegration(appUser, { emailId: okCopy.id }, { code: 899 }), (e: any) => e instanceof ReceiptRefused && e.reason === 'invalid-code');

    // No receipt asked for: the error still reaches the sender, as an ordinary message.
    const plainSubject = subjectTag('XDM/1.0/DDM+Compte rendu MARTIN Anne 03/04/1970');
    await submit({ to: app, subject: plainSubject, text: 'Document', attachments });
    const plainCopy = await received(B, app, plainSubject);
    assert.equal((await B.receipts.acknowledgeIntegration(appUser, { emailId: plainCopy.id }, { code: 903 })).sent, 'message');
    const [note, parsed] = await waitFor(async () => {
      for (const m of await folderMessages(A, claire.addresses[0])) {
        const p = await simpleParser(m);
        if (p.subject?.endsWith(plainSubject) && p.subject !== plainSubject) return [m, p] as const;
      }
      return undefined;
    }, 'the integration error message');
    assert.equal(parsed.subject, `[KO Intégration système !][903] ${plainSubject}`);
    assert.doesNotMatch(note.toString(), /multipart\/report/);
    assert.match(parsed.text!, /INS non présent dans le document/);
    assert.equal(parsed.attachments.length, 2);
    assert.equal((await statusOf(plainSubject, app))!.status, 'relayed', 'an ordinary message is no report: the tracking stays');

    // Integrated, no receipt asked for: nothing sent, settled once all the same.
    const quietSubject = subjectTag('XDM/1.0/DDM+Compte rendu PETIT Luc 07/08/1990');
    await submit({ to: app, subject: quietSubject, text: 'Document', attachments });
    const quietCopy = await received(B, app, quietSubject);
    assert.deepEqual(await B.receipts.acknowledgeIntegration(appUser, { emailId: quietCopy.id }, { ok: true }), { sent: 'none', to: [], reason: 'not-requested' });
    assert.ok((await B.store.getReceiptMessage({ emailId: quietCopy.id }))!.flags.includes('$MDNSent'));
    await assert.rejects(B.receipts.acknowledgeIntegration(appUser, { emailId: quietCopy.id }, { code: 906 }), (e: any) => e instanceof ReceiptRefused && e.reason === 'already-sent');
  });
});
