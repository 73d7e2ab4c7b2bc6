// Folder operations of the SQLite store: UIDs, flags and modseqs, expunge history, copy/move.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SqliteStore } from './index.js';

async function setup() {
  const s = SqliteStore.open(':memory:');
  const st = await s.createStructure({ idType: 'SIRET', idValue: '13000000000019', name: 'X' });
  const mb = await s.createMailbox({ address: 'a@x.test', type: 'ORG', displayName: 'A', ownerUserId: null, practitionerId: null, structureId: st.id, listeRouge: false });
  const inbox = (await s.getFolder(mb.id, 'INBOX'))!;
  return { s, mb, inbox };
}
const blob = (n: number) => n.toString(16).padStart(64, '0');

test('append, flags with modseq, UNCHANGEDSINCE, expunge history', async () => {
  const { s, inbox } = await setup();
  const a = await s.appendMessage(inbox.id, { blobId: blob(1), size: 10, flags: ['\\Seen', 'projet'], internalDate: new Date() });
  const b = await s.appendMessage(inbox.id, { blobId: blob(2), size: 20, flags: [], internalDate: new Date() });
  assert.deepEqual([a.uid, b.uid], [1, 2]);
  assert.ok(b.modseq > a.modseq);
  let st = await s.folderStatus(inbox.id);
  assert.deepEqual([st.messages, st.unseen, st.size, st.uidNext, st.firstUnseenSeq], [2, 1, 30, 3, 2]);
  const r = await s.storeFlags(inbox.id, [1, 2], 'add', ['\\Deleted'], a.modseq);
  assert.deepEqual(r.modifiedUids, [2], 'uid 2 changed after the given modseq');
  assert.deepEqual(r.updated.map((u) => u.uid), [1]);
  assert.deepEqual((await s.changedSince(inbox.id, b.modseq)).map((m) => m.uid), [1]);
  const gone = await s.expunge(inbox.id);
  assert.deepEqual(gone, [1]);
  st = await s.folderStatus(inbox.id);
  assert.deepEqual(await s.expungedSince(inbox.id, b.modseq), [1]);
  assert.equal(st.messages, 1);
  assert.equal(st.deleted, 0);
});

test('copy and move keep UIDs increasing and record the source expunge', async () => {
  const { s, mb, inbox } = await setup();
  const dst = await s.createFolder(mb.id, 'Archives');
  for (let i = 1; i <= 3; i++) await s.appendMessage(inbox.id, { blobId: blob(i), size: i, flags: [], internalDate: new Date() });
  const copied = await s.copyMessages(inbox.id, [1, 3], dst.id, false);
  assert.deepEqual(copied, [{ from: 1, to: 1 }, { from: 3, to: 2 }]);
  const moved = await s.copyMessages(inbox.id, [2], dst.id, true);
  assert.deepEqual(moved, [{ from: 2, to: 3 }]);
  assert.deepEqual((await s.folderMessages(inbox.id)).map((m) => m.uid), [1, 3]);
  assert.deepEqual(await s.expungedSince(inbox.id, 0), [2]);
  assert.deepEqual(await s.mailboxUsage(mb.id), { bytes: 1 + 2 + 3 + 1 + 3, messages: 5 });
});

test('rename moves descendants; a recreated folder gets a new UIDVALIDITY', async () => {
  const { s, mb } = await setup();
  const p = await s.createFolder(mb.id, 'Projets');
  await s.createFolder(mb.id, 'Projets/2026');
  await s.renameFolder(mb.id, 'Projets', 'Archives', '/');
  assert.ok(await s.getFolder(mb.id, 'Archives/2026'));
  assert.equal(await s.getFolder(mb.id, 'Projets'), undefined);
  await s.deleteFolder((await s.getFolder(mb.id, 'Archives/2026'))!.id);
  const again = await s.createFolder(mb.id, 'Projets');
  assert.notEqual(again.uidValidity, p.uidValidity);
});
