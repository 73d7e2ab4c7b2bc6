// Delivery tracking in the SQLite store: rows written by deliver() and completeQueueItems() in
// their transactions, reports matched by ENVID or Message-ID, statuses never moving back, and
// the once-only keyword of an MDN (docs/receipts.md).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeywordAlreadySetError, type IncomingReport } from '../types.js';
import { SqliteStore } from './index.js';

async function setup() {
  const s = SqliteStore.open(':memory:');
  const st = await s.createStructure({ idType: 'SIRET', idValue: '13000000000019', name: 'X' });
  const box = (address: string) => s.createMailbox({ address, type: 'ORG', displayName: address, ownerUserId: null, practitionerId: null, structureId: st.id, listeRouge: false });
  const sender = await box('envoi@a.test');
  const local = await box('local@a.test');
  const user = await s.createUser({ login: 'u', displayName: 'U', practitionerId: null, passwordHash: null });
  return { s, sender, local, user };
}
const blob = (n: number) => n.toString(16).padStart(64, '0');
const remote = (recipient: string) => ({ recipient, domain: 'b.test', notify: null, orcpt: null });

async function submit(o: Awaited<ReturnType<typeof setup>>, n: number, envid: string | null = null) {
  return o.s.deliver({
    blobId: blob(n),
    size: 10,
    internalDate: new Date(),
    envelopeFrom: 'envoi@a.test',
    localMailboxIds: [o.local.id],
    remote: [remote('x@b.test'), remote('y@b.test')],
    senderMailboxId: o.sender.id,
    envid,
    tracking: { userId: o.user.id, messageId: `<m${n}@a.test>`, subject: `Objet ${n}` },
  });
}

const statuses = async (s: SqliteStore, id: number) => Object.fromEntries((await s.getSubmission(id))!.recipients.map((r) => [r.address, [r.status, r.detail]]));

test('a submission: local recipients delivered, remote ones queued, then relayed / failed / deferred by the queue', async () => {
  const o = await setup();
  const r = await submit(o, 1, 'env-1');
  assert.deepEqual(r.submissionChanges, [{ id: 1, mailboxId: o.sender.id }]);
  const sub = (await o.s.getSubmission(1))!;
  assert.equal(sub.from, 'envoi@a.test');
  assert.equal(sub.messageId, '<m1@a.test>');
  assert.equal(sub.envid, 'env-1');
  assert.deepEqual(await statuses(o.s, 1), { 'local@a.test': ['delivered', null], 'x@b.test': ['queued', null], 'y@b.test': ['queued', null] });
  const [x, y] = await o.s.listQueue();
  assert.equal(x.submissionId, 1);
  const done = await o.s.completeQueueItems({ sent: [], failed: [], deferred: [{ id: y.id, error: '421 4.3.2 busy', nextAttemptAt: Date.now() + 1000 }], dsns: [] });
  assert.deepEqual(done.submissionChanges, [{ id: 1, mailboxId: o.sender.id }]);
  await o.s.completeQueueItems({ sent: [x.id], failed: [{ id: y.id, error: '550 5.1.1 unknown' }], deferred: [], dsns: [] });
  assert.deepEqual(await statuses(o.s, 1), { 'local@a.test': ['delivered', null], 'x@b.test': ['relayed', null], 'y@b.test': ['failed', '550 5.1.1 unknown'] });
  o.s.db.close();
});

test('reports: matched by ENVID, else by Message-ID, only in the sender mailbox; a status never moves back', async () => {
  const o = await setup();
  await submit(o, 1, 'env-1');
  await submit(o, 2);
  const report = (r: Partial<IncomingReport> & Pick<IncomingReport, 'recipients'>): IncomingReport => ({ kind: 'dsn', envid: null, originalMessageId: null, ...r });
  const deliverReport = (mailboxId: number, reports: IncomingReport[], n: number) =>
    o.s.deliver({ blobId: blob(100 + n), size: 5, internalDate: new Date(), envelopeFrom: '', localMailboxIds: [mailboxId], remote: [], reports });
  // ENVID wins over a Message-ID naming another submission.
  let r = await deliverReport(o.sender.id, [report({ envid: 'env-1', originalMessageId: '<m2@a.test>', recipients: [{ final: 'rfc822; X@b.test', original: null, status: 'delivered', detail: null }] })], 1);
  assert.deepEqual(r.submissionChanges, [{ id: 1, mailboxId: o.sender.id }]);
  assert.equal((await statuses(o.s, 1))['x@b.test'][0], 'delivered');
  assert.equal((await statuses(o.s, 2))['x@b.test'][0], 'queued');
  // By Message-ID, recipient by its original address.
  await deliverReport(o.sender.id, [report({ originalMessageId: '<m2@a.test>', recipients: [{ final: 'alias@b.test', original: 'rfc822;y@b.test', status: 'failed', detail: 'mailbox full' }] })], 2);
  assert.deepEqual((await statuses(o.s, 2))['y@b.test'], ['failed', 'mailbox full']);
  // Delivered to another mailbox than the sender's: not matched.
  r = await deliverReport(o.local.id, [report({ originalMessageId: '<m2@a.test>', recipients: [{ final: 'x@b.test', original: null, status: 'failed', detail: 'x' }] })], 3);
  assert.deepEqual(r.submissionChanges, []);
  // The queue's late "relayed" does not undo "delivered"; an MDN goes further.
  const x1 = (await o.s.listQueue()).find((q) => q.submissionId === 1 && q.recipient === 'x@b.test')!;
  await o.s.completeQueueItems({ sent: [x1.id], failed: [], deferred: [], dsns: [] });
  assert.equal((await statuses(o.s, 1))['x@b.test'][0], 'delivered');
  await deliverReport(o.sender.id, [{ kind: 'mdn', envid: null, originalMessageId: '<m1@a.test>', recipients: [{ final: 'x@b.test', original: null, status: 'error', detail: '902^Identifiant patient inconnu' }] }], 4);
  assert.deepEqual((await statuses(o.s, 1))['x@b.test'], ['error', '902^Identifiant patient inconnu']);
  await deliverReport(o.sender.id, [report({ envid: 'env-1', recipients: [{ final: 'x@b.test', original: null, status: 'delivered', detail: null }] })], 5);
  assert.equal((await statuses(o.s, 1))['x@b.test'][0], 'error', 'a DSN after the MDN changes nothing');
  // Listing: newest first, paged by id, only the mailboxes asked for.
  assert.deepEqual((await o.s.listSubmissions([o.sender.id], { limit: 10 })).map((s) => s.id), [2, 1]);
  assert.deepEqual((await o.s.listSubmissions([o.sender.id], { beforeId: 2, limit: 10 })).map((s) => s.id), [1]);
  assert.deepEqual(await o.s.listSubmissions([o.local.id], { limit: 10 }), []);
  o.s.db.close();
});

test('markMessage: the keyword and the delivery commit together, once', async () => {
  const o = await setup();
  const [copy] = await o.s.deliver({ blobId: blob(1), size: 5, internalDate: new Date(), envelopeFrom: 'someone@b.test', localMailboxIds: [o.local.id], remote: [] });
  const msg = (await o.s.getReceiptMessage({ emailId: copy.messageId }))!;
  assert.equal(msg.returnPath, 'someone@b.test');
  assert.deepEqual(await o.s.getReceiptMessage({ folderId: copy.folderId, uid: copy.uid }), msg);
  const modseq = await o.s.folderModseq(copy.folderId);
  const mdn = { blobId: blob(2), size: 5, internalDate: new Date(), envelopeFrom: '', localMailboxIds: [o.sender.id], remote: [], markMessage: { folderId: copy.folderId, uid: copy.uid, keyword: '$MDNSent' } };
  await o.s.deliver(mdn);
  assert.deepEqual((await o.s.getReceiptMessage({ emailId: copy.messageId }))!.flags, ['$MDNSent']);
  assert.ok((await o.s.folderModseq(copy.folderId)) > modseq, 'IMAP sees the change');
  const before = (o.s.db.prepare('SELECT COUNT(*) n FROM messages').get() as any).n;
  await assert.rejects(o.s.deliver({ ...mdn, blobId: blob(3) }), KeywordAlreadySetError);
  assert.equal((o.s.db.prepare('SELECT COUNT(*) n FROM messages').get() as any).n, before, 'the second MDN was not stored');
  // Settled without sending anything (markMessageOnce): once as well.
  const [other] = await o.s.deliver({ blobId: blob(4), size: 5, internalDate: new Date(), envelopeFrom: 'x@b.test', localMailboxIds: [o.local.id], remote: [] });
  const mark = { folderId: other.folderId, uid: other.uid, keyword: '$MDNSent' };
  assert.equal(await o.s.markMessageOnce(mark), true);
  assert.equal(await o.s.markMessageOnce(mark), false);
  o.s.db.close();
});

test('a deleted mailbox loses its tracking (subjects are content); its queued items go on untracked', async () => {
  const o = await setup();
  await submit(o, 1);
  await o.s.updateMailbox(o.sender.id, { state: 'deleted' });
  assert.equal(await o.s.getSubmission(1), undefined);
  assert.equal((o.s.db.prepare('SELECT COUNT(*) n FROM submission_recipients').get() as any).n, 0);
  const queued = await o.s.listQueue({ status: 'queued' });
  assert.equal(queued.length, 2);
  assert.ok(queued.every((q) => q.submissionId === null));
  await o.s.completeQueueItems({ sent: [queued[0].id], failed: [], deferred: [], dsns: [] });
  o.s.db.close();
});
