// Folder operations of the PostgreSQL store beyond the store contract (test/store/contract.ts runs
// the common cases on both engines): flags' case and one modseq per STORE, copy order, conflicts,
// keyset pages past the end, and what several sessions or nodes doing the same at once need.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pgMailTestFile, testBlobId as blob } from '../../../test/support/pg-mail.js';

const F = await pgMailTestFile();
const { skip } = F;

/** One operator (schema) for the file; each test has a mailbox of its own in it. */
let boxes = 0;
async function setup() {
  const op = await F.shared();
  const mb = await op.mailbox(`folders${++boxes}@x.test`);
  const inbox = (await op.s.getFolder(mb, 'INBOX'))!;
  return { op, s: op.s, mb, inbox };
}
const message = (n: number, flags: string[] = []) => ({ blobId: blob(n), size: n, flags, internalDate: new Date(Date.UTC(2026, 0, 1, 0, 0, n)) });

test('flags compare without case; a store that changes nothing keeps the modseq', { skip }, async () => {
  const { s, inbox } = await setup();
  await s.appendMessage(inbox.id, message(1, ['\\seen', '$Label']));
  await s.appendMessage(inbox.id, message(2, ['\\DELETED']));
  const st = await s.folderStatus(inbox.id);
  assert.deepEqual([st.unseen, st.deleted, st.firstUnseenSeq], [1, 1, 2], 'system flags match whatever their case (RFC 9051 §2.3.2)');
  const before = await s.folderModseq(inbox.id);
  const own = (await s.folderMessages(inbox.id))[0].modseq;
  const r = await s.storeFlags(inbox.id, [1], 'add', ['$label', '\\Seen']);
  assert.deepEqual(r.updated, [{ uid: 1, flags: ['\\seen', '$Label'], modseq: own }], 'reported with its own modseq (RFC 7162 §3.2)');
  assert.equal(await s.folderModseq(inbox.id), before, 'no change, no new modseq');
  const set = await s.storeFlags(inbox.id, [1, 2, 99], 'set', ['\\Flagged', '\\Recent']);
  assert.deepEqual(set.updated.map((u) => [u.uid, u.flags]), [[1, ['\\Flagged']], [2, ['\\Flagged']]], '\\Recent is not stored; an unknown UID is left out');
  assert.equal(set.updated[0].modseq, before + 1, 'one modseq for the whole STORE');
  assert.deepEqual((await s.storeFlags(inbox.id, [1], 'remove', ['\\FLAGGED'])).updated[0].flags, []);
  assert.deepEqual(await s.expunge(inbox.id), [], 'nothing \\Deleted any more');
});

test('copy and move keep UIDs increasing and record the source expunge', { skip }, async () => {
  const { s, mb, inbox } = await setup();
  const dst = await s.createFolder(mb, 'Archives');
  for (let i = 1; i <= 3; i++) await s.appendMessage(inbox.id, { blobId: blob(i), size: i, flags: [], internalDate: new Date() });
  await s.storeFlags(inbox.id, [3], 'add', ['\\Answered']);
  const copied = await s.copyMessages(inbox.id, [3, 1], dst.id, false);
  assert.deepEqual(copied, [{ from: 3, to: 1 }, { from: 1, to: 2 }], 'in the order asked');
  assert.deepEqual((await s.getMessageByUid(dst.id, 1))!.flags, ['\\Answered'], 'flags copied');
  const moved = await s.copyMessages(inbox.id, [2, 42], dst.id, true);
  assert.deepEqual(moved, [{ from: 2, to: 3 }]);
  assert.deepEqual((await s.folderMessages(inbox.id)).map((m) => m.uid), [1, 3]);
  assert.deepEqual(await s.expungedSince(inbox.id, 0), [2]);
  assert.deepEqual(await s.mailboxUsage(mb), { bytes: 1 + 2 + 3 + 1 + 3, messages: 5 });
  assert.deepEqual(await s.copyMessages(inbox.id, [42], dst.id, false), [], 'nothing to copy: nothing changes');
  assert.equal((await s.folderStatus(dst.id)).uidNext, 4);
});

test('rename moves descendants; a recreated folder gets a new UIDVALIDITY; a taken name is a conflict', { skip }, async () => {
  const { s, mb } = await setup();
  const p = await s.createFolder(mb, 'Projets');
  await s.createFolder(mb, 'Projets/2026');
  await s.createFolder(mb, 'Projets2');
  await s.renameFolder(mb, 'Projets', 'Archives', '/');
  assert.ok(await s.getFolder(mb, 'Archives/2026'));
  assert.ok(await s.getFolder(mb, 'Projets2'), 'a name merely starting with the old one stays');
  assert.equal(await s.getFolder(mb, 'Projets'), undefined);
  await s.deleteFolder((await s.getFolder(mb, 'Archives/2026'))!.id);
  const again = await s.createFolder(mb, 'Projets');
  assert.notEqual(again.uidValidity, p.uidValidity);
  await assert.rejects(s.createFolder(mb, 'Projets'), { name: 'StoreConflictError', message: 'folder Projets already exists' });
  await assert.rejects(s.renameFolder(mb, 'Projets', 'Archives', '/'), { name: 'StoreConflictError' });
  assert.ok(await s.getFolder(mb, 'Projets'), 'the refused rename changed nothing');
});

test('subscriptions and keyset pages', { skip }, async () => {
  const { s, mb, inbox } = await setup();
  await s.setSubscribed(mb, 'Projets', true);
  await s.setSubscribed(mb, 'Projets', true);
  await s.setSubscribed(mb, 'Archives', true);
  await s.setSubscribed(mb, 'Archives', false);
  assert.deepEqual(await s.listSubscriptions(mb), ['Projets']);
  for (const n of [3, 1, 2]) await s.appendMessage(inbox.id, message(n));
  const first = await s.pageMessages(inbox.id, { by: 'internalDate', desc: true, limit: 2 });
  assert.deepEqual([first.messages.map((m) => m.size), first.total], [[3, 2], 3]);
  const last = first.messages[1];
  const next = await s.pageMessages(inbox.id, { by: 'internalDate', desc: true, after: { key: last.internalDate, id: last.id }, limit: 2 });
  assert.deepEqual([next.messages.map((m) => m.size), next.total], [[1], 3]);
  const bySize = await s.pageMessages(inbox.id, { by: 'size', desc: false, after: { key: 1, id: next.messages[0].id }, limit: 5 });
  assert.deepEqual(bySize.messages.map((m) => m.size), [2, 3]);
  const past = await s.pageMessages(inbox.id, { by: 'size', desc: false, after: { key: 3, id: Number.MAX_SAFE_INTEGER }, limit: 5 });
  assert.deepEqual([past.messages, past.total], [[], 3]);
  const m = (await s.getMessage(first.messages[0].id))!;
  assert.deepEqual([m.uid, m.folderId, m.blobId], [1, inbox.id, blob(3)]);
  assert.deepEqual(await s.folderUids(inbox.id), [1, 2, 3]);
  assert.equal(await s.countMessagesUpTo(inbox.id, 2), 2);
});

test('\\Recent: SELECT claims it once; two sessions claiming at once never both get a UID (RFC 3501 §2.3.2)', { skip }, async () => {
  const { op, s, inbox } = await setup();
  for (let i = 1; i <= 40; i++) await s.appendMessage(inbox.id, message(i));
  const examine = await s.openFolder(inbox.id);
  assert.equal(examine.messages.filter((m) => m.recent).length, 40, 'EXAMINE sees them recent and leaves them');
  assert.deepEqual([examine.uidNext, examine.highestModseq], [41, await s.folderModseq(inbox.id)]);
  const other = await op.node();
  const uids = Array.from({ length: 40 }, (_, i) => i + 1);
  const [a, b] = await Promise.all([s.claimRecent(inbox.id, uids.slice(0, 30)), other.claimRecent(inbox.id, uids.slice(10))]);
  assert.equal(a.length + b.length, 40);
  assert.deepEqual([...a, ...b].sort((x, y) => x - y), uids, 'each UID claimed by exactly one session');
  // SELECT on two nodes at once: the new messages are recent for one of them only.
  for (let i = 41; i <= 60; i++) await s.appendMessage(inbox.id, message(i));
  const [x, y] = await Promise.all([s.openFolder(inbox.id, { clearRecent: true }), other.folderMessages(inbox.id, { clearRecent: true })]);
  const rx = x.messages.filter((m) => m.recent).map((m) => m.uid);
  const ry = y.filter((m) => m.recent).map((m) => m.uid);
  assert.deepEqual([...rx, ...ry].sort((p, q) => p - q), uids.map((u) => u + 40).slice(0, 20));
  assert.equal((await s.folderStatus(inbox.id)).recent, 0);
  assert.deepEqual((await s.openFolder(inbox.id, { clearRecent: true })).messages.filter((m) => m.recent), []);
  const empty = await s.createFolder((await s.getFolderById(inbox.id))!.mailboxId, 'Vide');
  assert.deepEqual(await s.openFolder(empty.id), { messages: [], uidNext: 1, highestModseq: 1, recentFrom: 1 });
});

test('two nodes storing flags on the same messages at once lose no change (rows locked before read)', { skip }, async () => {
  const { op, s, inbox } = await setup();
  for (let i = 1; i <= 5; i++) await s.appendMessage(inbox.id, message(i));
  const other = await op.node();
  const keywords = Array.from({ length: 20 }, (_, i) => `$k${i}`);
  await Promise.all(keywords.map((k, i) => (i % 2 ? s : other).storeFlags(inbox.id, [1, 2, 3, 4, 5], 'add', [k])));
  for (const m of await s.folderMessages(inbox.id)) assert.deepEqual([...m.flags].sort(), [...keywords].sort(), `uid ${m.uid} has every keyword`);
  const modseqs = (await s.folderMessages(inbox.id)).map((m) => m.modseq);
  assert.equal(new Set(modseqs).size, 1, 'the last STORE touched all five');
  assert.equal(modseqs[0], await s.folderModseq(inbox.id));
  assert.equal(await s.folderModseq(inbox.id), 1 + 5 + 20, 'one modseq per append, one per STORE');
});

test('two nodes moving the same message at once move it once', { skip }, async () => {
  const { op, s, mb, inbox } = await setup();
  const dst = await s.createFolder(mb, 'Classement');
  await s.appendMessage(inbox.id, message(1));
  const other = await op.node();
  const [a, b] = await Promise.all([s.copyMessages(inbox.id, [1], dst.id, true), other.copyMessages(inbox.id, [1], dst.id, true)]);
  assert.deepEqual([...a, ...b], [{ from: 1, to: 1 }]);
  assert.deepEqual((await s.folderMessages(dst.id)).map((m) => m.uid), [1]);
  assert.deepEqual(await s.folderUids(inbox.id), []);
});

test('a UID named twice: stored, claimed and moved once (as the SQLite store does)', { skip }, async () => {
  const { s, mb, inbox } = await setup();
  for (let i = 1; i <= 3; i++) await s.appendMessage(inbox.id, message(i));
  const r = await s.storeFlags(inbox.id, [1, 1], 'add', ['\\Flagged']);
  assert.deepEqual(r.updated.map((u) => [u.uid, u.flags]), [[1, ['\\Flagged']], [1, ['\\Flagged']]]);
  assert.equal(r.updated[0].modseq, r.updated[1].modseq);
  assert.deepEqual(await s.claimRecent(inbox.id, [3, 2, 3]), [3, 2]);
  const dst = await s.createFolder(mb, 'Double');
  assert.deepEqual(await s.copyMessages(inbox.id, [2, 2], dst.id, true), [{ from: 2, to: 1 }, { from: 2, to: 2 }]);
  assert.deepEqual(await s.expungedSince(inbox.id, 0), [2]);
  assert.deepEqual(await s.folderUids(inbox.id), [1, 3]);
});
