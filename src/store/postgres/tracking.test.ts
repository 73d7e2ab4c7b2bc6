// Delivery tracking in the PostgreSQL store (the SQLite file's cases): rows written by deliver() and
// completeQueueItems() in their transactions, reports matched by ENVID or Message-ID, statuses never
// moving back, the once-only keyword of an MDN (docs/receipts.md) — and the same races across nodes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pgMailTestFile, testBlobId as blob, type PgOperator } from '../../../test/support/pg-mail.js';
import { KeywordAlreadySetError, type IncomingReport } from '../types.js';
import { PgMailboxes } from './mailboxes.js';
import type { PgStore } from './index.js';

const F = await pgMailTestFile();
const { skip } = F;

/** An operator of its own per test (submission ids start at 1), with a sender, a local recipient and a user. */
async function setup() {
  const op = await F.own();
  const sender = await op.mailbox('envoi@a.test');
  const local = await op.mailbox('local@a.test');
  const user = await op.user('u');
  return { op, s: op.s, sender, local, user };
}
const remote = (recipient: string) => ({ recipient, domain: 'b.test', notify: null, orcpt: null });

async function submit(o: { s: PgStore; sender: number; local: number; user: number }, n: number, envid: string | null = null) {
  return o.s.deliver({
    blobId: blob(n),
    size: 10,
    internalDate: new Date(),
    envelopeFrom: 'envoi@a.test',
    localMailboxIds: [o.local],
    remote: [remote('x@b.test'), remote('y@b.test')],
    senderMailboxId: o.sender,
    envid,
    tracking: { userId: o.user, messageId: `<m${n}@a.test>`, subject: `Objet ${n}` },
  });
}

const statuses = async (s: PgStore, id: number) => Object.fromEntries((await s.getSubmission(id))!.recipients.map((r) => [r.address, [r.status, r.detail]]));
const count = (op: PgOperator, table: string) => op.scalar(`SELECT COUNT(*) FROM ${table}`).then(Number);

test('a submission: local recipients delivered, remote ones queued, then relayed / failed / deferred by the queue', { skip }, async () => {
  const o = await setup();
  const r = await submit(o, 1, 'env-1');
  assert.deepEqual(r.submissionChanges, [{ id: 1, mailboxId: o.sender }]);
  const sub = (await o.s.getSubmission(1))!;
  assert.equal(sub.from, 'envoi@a.test');
  assert.equal(sub.messageId, '<m1@a.test>');
  assert.equal(sub.envid, 'env-1');
  assert.equal(sub.userId, o.user);
  assert.equal(sub.subject, 'Objet 1');
  assert.deepEqual(await statuses(o.s, 1), { 'local@a.test': ['delivered', null], 'x@b.test': ['queued', null], 'y@b.test': ['queued', null] });
  const [x, y] = await o.s.listQueue();
  assert.equal(x.submissionId, 1);
  const done = await o.s.completeQueueItems({ sent: [], failed: [], deferred: [{ id: y.id, error: '421 4.3.2 busy', nextAttemptAt: Date.now() + 1000 }], dsns: [] });
  assert.deepEqual(done.submissionChanges, [{ id: 1, mailboxId: o.sender }]);
  await o.s.completeQueueItems({ sent: [x.id], failed: [{ id: y.id, error: '550 5.1.1 unknown' }], deferred: [], dsns: [] });
  assert.deepEqual(await statuses(o.s, 1), { 'local@a.test': ['delivered', null], 'x@b.test': ['relayed', null], 'y@b.test': ['failed', '550 5.1.1 unknown'] });
  await o.s.setSubmissionEmail(1, 77);
  assert.equal((await o.s.getSubmission(1))!.emailId, 77);
  assert.equal(await o.s.getSubmission(2), undefined);
});

test('reports: matched by ENVID, else by Message-ID, only in the sender mailbox; a status never moves back', { skip }, async () => {
  const o = await setup();
  await submit(o, 1, 'env-1');
  await submit(o, 2);
  const report = (r: Partial<IncomingReport> & Pick<IncomingReport, 'recipients'>): IncomingReport => ({ kind: 'dsn', envid: null, originalMessageId: null, ...r });
  const deliverReport = (mailboxId: number, reports: IncomingReport[], n: number) =>
    o.s.deliver({ blobId: blob(100 + n), size: 5, internalDate: new Date(), envelopeFrom: '', localMailboxIds: [mailboxId], remote: [], reports });
  // ENVID wins over a Message-ID naming another submission; the address compares without case.
  let r = await deliverReport(o.sender, [report({ envid: 'env-1', originalMessageId: '<m2@a.test>', recipients: [{ final: 'rfc822; X@b.test', original: null, status: 'delivered', detail: null }] })], 1);
  assert.deepEqual(r.submissionChanges, [{ id: 1, mailboxId: o.sender }]);
  assert.equal((await statuses(o.s, 1))['x@b.test'][0], 'delivered');
  assert.equal((await statuses(o.s, 2))['x@b.test'][0], 'queued');
  // By Message-ID, recipient by its original address.
  await deliverReport(o.sender, [report({ originalMessageId: '<m2@a.test>', recipients: [{ final: 'alias@b.test', original: 'rfc822;y@b.test', status: 'failed', detail: 'mailbox full' }] })], 2);
  assert.deepEqual((await statuses(o.s, 2))['y@b.test'], ['failed', 'mailbox full']);
  // Delivered to another mailbox than the sender's: not matched.
  r = await deliverReport(o.local, [report({ originalMessageId: '<m2@a.test>', recipients: [{ final: 'x@b.test', original: null, status: 'failed', detail: 'x' }] })], 3);
  assert.deepEqual(r.submissionChanges, []);
  // The queue's late "relayed" does not undo "delivered"; an MDN goes further.
  const x1 = (await o.s.listQueue()).find((q) => q.submissionId === 1 && q.recipient === 'x@b.test')!;
  await o.s.completeQueueItems({ sent: [x1.id], failed: [], deferred: [], dsns: [] });
  assert.equal((await statuses(o.s, 1))['x@b.test'][0], 'delivered');
  await deliverReport(o.sender, [{ kind: 'mdn', envid: null, originalMessageId: '<m1@a.test>', recipients: [{ final: 'x@b.test', original: null, status: 'error', detail: '902^Identifiant patient inconnu' }] }], 4);
  assert.deepEqual((await statuses(o.s, 1))['x@b.test'], ['error', '902^Identifiant patient inconnu']);
  await deliverReport(o.sender, [report({ envid: 'env-1', recipients: [{ final: 'x@b.test', original: null, status: 'delivered', detail: null }] })], 5);
  assert.equal((await statuses(o.s, 1))['x@b.test'][0], 'error', 'a DSN after the MDN changes nothing');
  // Listing: newest first, paged by id, only the mailboxes asked for.
  assert.deepEqual((await o.s.listSubmissions([o.sender], { limit: 10 })).map((s) => s.id), [2, 1]);
  assert.deepEqual((await o.s.listSubmissions([o.sender], { beforeId: 2, limit: 10 })).map((s) => s.id), [1]);
  assert.deepEqual((await o.s.listSubmissions([o.sender, o.local], { limit: 1 })).map((s) => s.id), [2]);
  assert.deepEqual(await o.s.listSubmissions([o.local], { limit: 10 }), []);
  assert.deepEqual(await o.s.listSubmissions([], { limit: 10 }), []);
});

test('markMessage: the keyword and the delivery commit together, once — also when two nodes send the MDN at once', { skip }, async () => {
  const o = await setup();
  const [copy] = await o.s.deliver({ blobId: blob(1), size: 5, internalDate: new Date(), envelopeFrom: 'someone@b.test', localMailboxIds: [o.local], remote: [] });
  const msg = (await o.s.getReceiptMessage({ emailId: copy.messageId }))!;
  assert.equal(msg.returnPath, 'someone@b.test');
  assert.deepEqual([msg.mailboxId, msg.folderId, msg.uid, msg.blobId], [o.local, copy.folderId, copy.uid, blob(1)]);
  assert.deepEqual(await o.s.getReceiptMessage({ folderId: copy.folderId, uid: copy.uid }), msg);
  assert.equal(await o.s.getReceiptMessage({ emailId: copy.messageId + 1000 }), undefined);
  const modseq = await o.s.folderModseq(copy.folderId);
  const mdn = (n: number) => ({ blobId: blob(n), size: 5, internalDate: new Date(), envelopeFrom: '', localMailboxIds: [o.sender], remote: [], markMessage: { folderId: copy.folderId, uid: copy.uid, keyword: '$MDNSent' } });
  const before = await count(o.op, 'messages');
  const other = await o.op.node();
  const results = await Promise.allSettled([o.s.deliver(mdn(2)), other.deliver(mdn(3)), o.s.deliver(mdn(4)), other.deliver(mdn(5))]);
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'one MDN sent');
  assert.ok(results.every((r) => r.status === 'fulfilled' || r.reason instanceof KeywordAlreadySetError));
  assert.equal(await count(o.op, 'messages'), before + 1, 'the refused MDNs were not stored');
  assert.deepEqual((await o.s.getReceiptMessage({ emailId: copy.messageId }))!.flags, ['$MDNSent']);
  assert.ok((await o.s.folderModseq(copy.folderId)) > modseq, 'IMAP sees the change');
  assert.equal((await o.s.changedSince(copy.folderId, modseq)).length, 1);
  // Settled without sending anything (markMessageOnce): once as well.
  const [other2] = await o.s.deliver({ blobId: blob(6), size: 5, internalDate: new Date(), envelopeFrom: 'x@b.test', localMailboxIds: [o.local], remote: [] });
  const mark = { folderId: other2.folderId, uid: other2.uid, keyword: '$MDNSent' };
  assert.deepEqual((await Promise.all([o.s.markMessageOnce(mark), other.markMessageOnce(mark)])).sort(), [false, true]);
  assert.equal(await o.s.markMessageOnce(mark), false);
  await assert.rejects(o.s.markMessageOnce({ ...mark, uid: 999 }), /no message 999/);
});

test('a report and the queue outcome for one recipient on two nodes at once: the higher rank stays', { skip }, async () => {
  const o = await setup();
  const other = await o.op.node();
  for (let n = 1; n <= 6; n++) {
    await submit(o, n);
    const item = (await o.s.listQueue({ status: 'queued' })).find((q) => q.submissionId === n && q.recipient === 'x@b.test')!;
    await Promise.all([
      other.completeQueueItems({ sent: [item.id], failed: [], deferred: [], dsns: [] }),
      o.s.deliver({ blobId: blob(100 + n), size: 5, internalDate: new Date(), envelopeFrom: '', localMailboxIds: [o.sender], remote: [], reports: [{ kind: 'mdn', envid: null, originalMessageId: `<m${n}@a.test>`, recipients: [{ final: 'x@b.test', original: null, status: 'displayed', detail: null }] }] }),
    ]);
    assert.equal((await statuses(o.s, n))['x@b.test'][0], 'displayed', `submission ${n}`);
  }
});

test('a deleted mailbox loses its tracking (subjects are content); its queued items go on untracked', { skip }, async () => {
  const o = await setup();
  await submit(o, 1);
  await new PgMailboxes(o.s.connection).updateMailbox(o.sender, { state: 'deleted' });
  assert.equal(await o.s.getSubmission(1), undefined);
  assert.equal(await count(o.op, 'submission_recipients'), 0);
  const queued = await o.s.listQueue({ status: 'queued' });
  assert.equal(queued.length, 2);
  assert.ok(queued.every((q) => q.submissionId === null));
  await o.s.completeQueueItems({ sent: [queued[0].id], failed: [], deferred: [], dsns: [] });
  assert.equal((await o.s.listQueue({ status: 'sent' })).length, 1);
});

test('text PostgreSQL cannot hold (NUL) from peers and headers: stored as U+FFFD, matched likewise; lookups by it find nothing', { skip }, async () => {
  const o = await setup();
  const r = await o.s.deliver({
    blobId: blob(1),
    size: 10,
    internalDate: new Date(),
    envelopeFrom: 'envoi@a.test',
    localMailboxIds: [],
    remote: [{ ...remote('x@b.test'), orcpt: 'rfc822;x\0@b.test' }],
    senderMailboxId: o.sender,
    envid: 'env\0-1',
    tracking: { userId: o.user, messageId: '<m\0@a.test>', subject: 'Objet \0 nul' },
  });
  const sub = (await o.s.getSubmission(r.submissionChanges![0].id))!;
  assert.deepEqual([sub.subject, sub.messageId, sub.envid], ['Objet \uFFFD nul', '<m\uFFFD@a.test>', 'env\uFFFD-1']);
  const [item] = await o.s.listQueue();
  assert.deepEqual([item.envid, item.orcpt], ['env\uFFFD-1', 'rfc822;x\uFFFD@b.test']);
  // A DSN naming it (as the peer read it back) matches; its diagnostic is stored.
  const dsn = { kind: 'dsn' as const, envid: 'env\0-1', originalMessageId: null, recipients: [{ final: 'x\0@b.test', original: 'x@b.test', status: 'failed' as const, detail: '550 \0 no' }] };
  const d = await o.s.deliver({ blobId: blob(2), size: 5, internalDate: new Date(), envelopeFrom: '', localMailboxIds: [o.sender], remote: [], reports: [dsn] });
  assert.deepEqual(d.submissionChanges, [{ id: sub.id, mailboxId: o.sender }]);
  assert.deepEqual(await statuses(o.s, sub.id), { 'x@b.test': ['failed', '550 \uFFFD no'] });
  await o.s.completeQueueItems({ sent: [], failed: [], deferred: [{ id: item.id, error: '421 \0', nextAttemptAt: 0 }], dsns: [] });
  assert.equal((await o.s.listQueue())[0].lastError, '421 \uFFFD');
  // Names: a lookup finds nothing, a write says why it is refused.
  assert.equal(await o.s.getFolder(o.sender, 'INBOX\0'), undefined);
  await o.s.renameFolder(o.sender, 'INBOX\0', 'Autre', '/');
  await assert.rejects(o.s.createFolder(o.sender, 'A\0B'), /NUL character/);
  await o.s.setSubscribed(o.sender, 'A\0B', false);
  assert.deepEqual(await o.s.listSubscriptions(o.sender), []);
  const inbox = (await o.s.getFolder(o.sender, 'INBOX'))!;
  assert.deepEqual((await o.s.storeFlags(inbox.id, [1], 'remove', ['$a\0'])).updated.map((u) => u.uid), [1]);
  await assert.rejects(o.s.storeFlags(inbox.id, [1], 'add', ['$a\0']), /flag "\$a\\u0000" contains a NUL/);
});
