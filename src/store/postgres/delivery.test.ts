// Delivery in the PostgreSQL store: the SQLite file's cases (filing into a folder made on demand,
// the daily recipient counter), then deliver() as one transaction (nothing half-stored when it
// throws), and the outbound queue's claims, leases and outcomes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pgMailTestFile, testBlobId as blob } from '../../../test/support/pg-mail.js';
import { DailyRecipientLimitError, KeywordAlreadySetError, type DeliveryRequest } from '../types.js';

const F = await pgMailTestFile();
const { skip } = F;

/**
 * One operator (schema) for the file, each test with a mailbox and a user of its own in it; `own`:
 * an operator of its own (a queue no other test fills).
 */
let boxes = 0;
async function setup(o: { own?: boolean } = {}) {
  const op = await (o.own ? F.own() : F.shared());
  const n = ++boxes;
  const mb = await op.mailbox(`delivery${n}@x.test`);
  const user = await op.user(`u${n}`);
  return { op, s: op.s, mb, user };
}
const req = (n: number, mailboxId: number): DeliveryRequest => ({ blobId: blob(n), size: 10, internalDate: new Date(), envelopeFrom: 'x@y.test', localMailboxIds: [mailboxId], remote: [] });
const remote = (recipient: string) => ({ recipient, domain: recipient.split('@')[1].toUpperCase(), notify: null, orcpt: null });

test('filing: the folder is created on first use, keeps its UIDs after, and the copy carries the flags', { skip }, async () => {
  const { op, s, mb } = await setup();
  assert.equal(await s.getFolder(mb, 'Non médical'), undefined);
  const filing = { folder: 'Non médical', flags: ['$NonMedical'] };
  const [c1] = await s.deliver({ ...req(1, mb), filing });
  const [c2] = await s.deliver({ ...req(2, mb), filing });
  const folder = (await s.getFolder(mb, 'Non médical'))!;
  assert.deepEqual([c1.folderId, c2.folderId, c1.uid, c2.uid], [folder.id, folder.id, 1, 2]);
  assert.deepEqual((await s.listMessages(folder.id)).map((m) => m.flags), [['$NonMedical'], ['$NonMedical']]);
  const [c3] = await s.deliver(req(3, mb));
  assert.equal(c3.folderId, (await s.getFolder(mb, 'INBOX'))!.id, 'without filing: INBOX, no flags');
});

test('filing on two nodes at once into a folder that does not exist yet: one folder, every message in it', { skip }, async () => {
  const { op, s, mb } = await setup();
  const other = await op.node();
  const filing = { folder: 'Non médical', flags: [] };
  const copies = (await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? s : other).deliver({ ...req(i, mb), filing })))).flat();
  const folder = (await s.getFolder(mb, 'Non médical'))!;
  assert.ok(copies.every((c) => c.folderId === folder.id));
  assert.deepEqual(copies.map((c) => c.uid).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
});

test('daily counter: counted at commit; over the limit nothing is stored and the count stays', { skip }, async () => {
  const { op, s, mb, user } = await setup();
  const count = async (table: string) => Number(await op.scalar(`SELECT COUNT(*) FROM ${table}`));
  const day = '2026-12-10';
  const messages = await count('messages');
  await s.deliver({ ...req(1, mb), dailyRecipients: { userId: user, day, count: 3, limit: 4 } });
  assert.equal(await s.recipientsSentOn(user, day), 3);
  await assert.rejects(s.deliver({ ...req(2, mb), dailyRecipients: { userId: user, day, count: 2, limit: 4 } }), DailyRecipientLimitError);
  assert.equal(await s.recipientsSentOn(user, day), 3, 'rolled back');
  assert.equal(await count('messages'), messages + 1, 'the refused message was not stored');
  await s.deliver({ ...req(3, mb), dailyRecipients: { userId: user, day, count: 1, limit: 4 } });
  assert.equal(await s.recipientsSentOn(user, day), 4);
  // A new day starts from zero (and the old day's row is dropped).
  await s.deliver({ ...req(4, mb), dailyRecipients: { userId: user, day: '2026-12-11', count: 4, limit: 4 } });
  assert.equal(await s.recipientsSentOn(user, '2026-12-11'), 4);
  assert.equal(await s.recipientsSentOn(user, day), 0);
});

test('daily counter on two nodes at once: exactly the limit gets through', { skip }, async () => {
  const { op, s, mb, user } = await setup();
  const count = async (table: string) => Number(await op.scalar(`SELECT COUNT(*) FROM ${table}`));
  const other = await op.node();
  const day = '2026-12-12';
  const results = await Promise.allSettled(Array.from({ length: 16 }, (_, i) => (i % 2 ? s : other).deliver({ ...req(100 + i, mb), dailyRecipients: { userId: user, day, count: 1, limit: 10 } })));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 10);
  assert.ok(results.every((r) => r.status === 'fulfilled' || r.reason instanceof DailyRecipientLimitError));
  assert.equal(await s.recipientsSentOn(user, day), 10);
  assert.equal((await s.folderStatus((await s.getFolder(mb, 'INBOX'))!.id)).messages, 10);
});

test('deliver is one transaction: copies, sender copy, queue, tracking, usage, conversations commit together or not at all', { skip }, async () => {
  const { op, s, mb, user } = await setup();
  const count = async (table: string) => Number(await op.scalar(`SELECT COUNT(*) FROM ${table}`));
  const patient = await op.mailbox(`patient${boxes}@x.test`);
  const sent = (await s.getFolder(mb, 'Sent'))!;
  const full: DeliveryRequest = {
    ...req(1, patient),
    localMailboxIds: [patient, patient],
    remote: [remote('x@b.test'), remote('X@b.test'), remote('y@c.test')],
    senderMailboxId: mb,
    envelopeFrom: `delivery${boxes}@x.test`,
    ret: 'HDRS',
    envid: 'env-1',
    senderCopy: { mailboxId: mb, folderId: sent.id, flags: ['\\Seen'] },
    tracking: { userId: user, messageId: '<m1@x.test>', subject: 'Objet' },
    usage: [{ at: new Date().toISOString(), structureId: null, mailboxType: 'ORG', flow: 'sent', peer: 'operator', attachment: true, xdm: false }],
    conversations: [{ action: 'open', patientMailboxId: patient, professional: 'Dr@X.test', at: '2026-12-07T10:00:00.000Z' }],
  };
  const tables = ['messages', 'outbound_queue', 'submissions', 'submission_recipients', 'usage_messages', 'patient_conversations'];
  const before = await Promise.all(tables.map(count));
  const modseqs = [await s.folderModseq(sent.id), await s.folderModseq((await s.getFolder(patient, 'INBOX'))!.id)];
  // A sender copy naming another mailbox's folder fails after every local copy was appended.
  await assert.rejects(s.deliver({ ...full, senderCopy: { ...full.senderCopy!, mailboxId: patient } }), /folder #\d+ of mailbox #\d+ not found/);
  assert.deepEqual(await Promise.all(tables.map(count)), before, 'nothing half-stored');
  assert.deepEqual([await s.folderModseq(sent.id), await s.folderModseq((await s.getFolder(patient, 'INBOX'))!.id)], modseqs, 'no UID or modseq taken');
  const r = await s.deliver(full);
  assert.deepEqual(r.map((c) => [c.mailboxId, c.uid, c.sentCopy ?? false]), [[patient, 1, false], [mb, 1, true]], 'one copy per mailbox, then the sender copy');
  assert.equal(r.submissionChanges!.length, 1);
  const sub = (await s.getSubmission(r.submissionChanges![0].id))!;
  assert.equal(sub.emailId, r[1].messageId, 'the Sent copy is the submission email');
  assert.deepEqual(sub.recipients.map((x) => [x.address, x.status]), [[`patient${boxes}@x.test`, 'delivered'], ['x@b.test', 'queued'], ['y@c.test', 'queued']]);
  const queue = (await s.listQueue()).filter((q) => q.submissionId === sub.id);
  assert.deepEqual(queue.map((q) => [q.recipient, q.domain, q.ret, q.envid, q.senderMailboxId]), [['x@b.test', 'b.test', 'HDRS', 'env-1', mb], ['X@b.test', 'b.test', 'HDRS', 'env-1', mb], ['y@c.test', 'c.test', 'HDRS', 'env-1', mb]]);
  assert.deepEqual((await s.getMessage(r[1].messageId))!.flags, ['\\Seen']);
  assert.equal((await s.getReceiptMessage({ emailId: r[0].messageId }))!.returnPath, `delivery${boxes}@x.test`);
  assert.deepEqual(await Promise.all(tables.map(count)), before.map((n, i) => n + [2, 3, 1, 3, 1, 1][i]));
  const conv = await op.scalar('SELECT professional FROM patient_conversations WHERE patient_mailbox_id = $1', [patient]);
  assert.equal(conv, 'dr@x.test');
  // The MDN's keyword set already: KeywordAlreadySetError, and again nothing stored.
  await s.deliver({ ...req(5, mb), markMessage: { folderId: r[0].folderId, uid: r[0].uid, keyword: '$MDNSent' } });
  const after1 = await Promise.all(tables.map(count));
  await assert.rejects(s.deliver({ ...full, markMessage: { folderId: r[0].folderId, uid: r[0].uid, keyword: '$mdnsent' } }), KeywordAlreadySetError);
  assert.deepEqual(await Promise.all(tables.map(count)), after1);
});

test('queue: claims take due, unleased items oldest first; release, outcomes and expired leases', { skip }, async () => {
  const { op, s, mb } = await setup({ own: true });
  const t0 = Date.now();
  await s.deliver({ ...req(1, mb), localMailboxIds: [], remote: ['a', 'b', 'c', 'd'].map((x) => remote(`${x}@q.test`)), senderMailboxId: mb });
  const ids = (await s.listQueue({ status: 'queued' })).filter((q) => q.recipient.endsWith('@q.test')).map((q) => q.id);
  assert.equal(ids.length, 4);
  assert.equal(await s.claimQueueItems('w1', t0 - 60_000, 10, 30_000).then((x) => x.length), 0, 'not due yet');
  const now = Date.now();
  const a = await s.claimQueueItems('w1', now, 2, 30_000);
  assert.deepEqual(a.map((q) => q.id), ids.slice(0, 2), 'oldest first, up to the limit');
  const b = await s.claimQueueItems('w2', now, 10, 30_000);
  assert.deepEqual(b.map((q) => q.id), ids.slice(2), 'leased items are not claimed again');
  assert.deepEqual(await s.claimQueueItems('w3', now, 10, 30_000), []);
  assert.equal(await op.scalar('SELECT lease_until FROM outbound_queue WHERE id = $1', [ids[0]]), now + 30_000);
  // Shutdown: w1 gives back the item it did not attempt (w2 cannot give back w1's items).
  await s.releaseQueueItems('w2', [ids[1]]);
  assert.deepEqual(await s.claimQueueItems('w3', now, 10, 30_000), []);
  await s.releaseQueueItems('w1', [ids[1]]);
  assert.deepEqual((await s.claimQueueItems('w3', now, 10, 30_000)).map((q) => q.id), [ids[1]]);
  // Outcomes clear the lease: a deferred item is claimable once due again, a sent one never.
  await s.completeQueueItems({ sent: [ids[0]], failed: [{ id: ids[2], error: '550 5.1.1 unknown' }], deferred: [{ id: ids[3], error: '421 4.3.2 busy', nextAttemptAt: now + 5_000 }], dsns: [] });
  const leases = await op.rows('SELECT id, status, lease_owner, lease_until, attempts, next_attempt_at FROM outbound_queue WHERE id = ANY($1::bigint[]) ORDER BY id', [ids]);
  assert.deepEqual(leases.map((r) => [r.status, r.lease_owner, r.lease_until, r.attempts]), [['sent', null, null, 1], ['queued', 'w3', now + 30_000, 0], ['failed', null, null, 1], ['queued', null, null, 1]]);
  assert.deepEqual(await s.claimQueueItems('w4', now + 1_000, 10, 30_000), [], 'deferred: not due; ids[1]: still leased to w3');
  assert.deepEqual((await s.claimQueueItems('w4', now + 5_000, 10, 30_000)).map((q) => q.id), [ids[3]]);
  // w3 stopped without a word: its lease expires and another worker takes the item.
  assert.deepEqual((await s.claimQueueItems('w5', now + 30_000, 10, 30_000)).map((q) => [q.id, q.attempts]), [[ids[1], 0]]);
  assert.equal(await s.nextQueueAttempt().then((x) => typeof x), 'number');
});

test('completeQueueItems stores the DSNs with the null reverse-path, and leaves items completed elsewhere alone', { skip }, async () => {
  const { op, s, mb } = await setup();
  await s.deliver({ ...req(1, mb), localMailboxIds: [], remote: [remote('z@q.test')], senderMailboxId: mb });
  const item = (await s.listQueue({ status: 'queued' })).find((q) => q.recipient === 'z@q.test')!;
  const r = await s.completeQueueItems({ sent: [], failed: [{ id: item.id, error: '550 5.1.1 unknown' }], deferred: [], dsns: [{ blobId: blob(9), size: 99, mailboxId: mb }] });
  assert.deepEqual(r.map((c) => [c.mailboxId, c.uid]), [[mb, 1]]);
  assert.equal((await s.getReceiptMessage({ emailId: r[0].messageId }))!.returnPath, '');
  // A second outcome for the same item (its lease had expired and another worker finished it): ignored.
  await s.completeQueueItems({ sent: [item.id], failed: [], deferred: [{ id: item.id, error: 'x', nextAttemptAt: 0 }], dsns: [] });
  const row = (await s.listQueue({ status: 'failed' })).find((q) => q.id === item.id)!;
  assert.deepEqual([row.status, row.attempts, row.lastError], ['failed', 1, '550 5.1.1 unknown']);
});
