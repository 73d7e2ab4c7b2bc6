// Delivery variants of the SQLite store used by the content policy: filing into a folder made on
// demand, with flags; the daily recipient counter, counted in the delivery's own transaction.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DailyRecipientLimitError } from '../types.js';
import { SqliteStore } from './index.js';

async function setup() {
  const s = SqliteStore.open(':memory:');
  const st = await s.createStructure({ idType: 'SIRET', idValue: '13000000000019', name: 'X' });
  const mb = await s.createMailbox({ address: 'a@x.test', type: 'ORG', displayName: 'A', ownerUserId: null, practitionerId: null, structureId: st.id, listeRouge: false });
  const user = await s.createUser({ login: 'u', displayName: 'U', practitionerId: null, passwordHash: null });
  return { s, mb, user };
}
const blob = (n: number) => n.toString(16).padStart(64, '0');
const req = (n: number, mailboxId: number) => ({ blobId: blob(n), size: 10, internalDate: new Date(), envelopeFrom: 'x@y.test', localMailboxIds: [mailboxId], remote: [] });

test('filing: the folder is created on first use, keeps its UIDs after, and the copy carries the flags', async () => {
  const { s, mb } = await setup();
  assert.equal(await s.getFolder(mb.id, 'Non médical'), undefined);
  const filing = { folder: 'Non médical', flags: ['$NonMedical'] };
  const [c1] = await s.deliver({ ...req(1, mb.id), filing });
  const [c2] = await s.deliver({ ...req(2, mb.id), filing });
  const folder = (await s.getFolder(mb.id, 'Non médical'))!;
  assert.deepEqual([c1.folderId, c2.folderId, c1.uid, c2.uid], [folder.id, folder.id, 1, 2]);
  assert.deepEqual((await s.listMessages(folder.id)).map((m) => m.flags), [['$NonMedical'], ['$NonMedical']]);
  const [c3] = await s.deliver(req(3, mb.id));
  assert.equal(c3.folderId, (await s.getFolder(mb.id, 'INBOX'))!.id, 'without filing: INBOX, no flags');
  s.db.close();
});

test('daily counter: counted at commit; over the limit nothing is stored and the count stays', async () => {
  const { s, mb, user } = await setup();
  const day = '2026-12-10';
  await s.deliver({ ...req(1, mb.id), dailyRecipients: { userId: user.id, day, count: 3, limit: 4 } });
  assert.equal(await s.recipientsSentOn(user.id, day), 3);
  await assert.rejects(s.deliver({ ...req(2, mb.id), dailyRecipients: { userId: user.id, day, count: 2, limit: 4 } }), DailyRecipientLimitError);
  assert.equal(await s.recipientsSentOn(user.id, day), 3, 'rolled back');
  assert.equal((s.db.prepare('SELECT COUNT(*) n FROM messages').get() as any).n, 1, 'the refused message was not stored');
  await s.deliver({ ...req(3, mb.id), dailyRecipients: { userId: user.id, day, count: 1, limit: 4 } });
  assert.equal(await s.recipientsSentOn(user.id, day), 4);
  // A new day starts from zero (and the old day's row is dropped).
  await s.deliver({ ...req(4, mb.id), dailyRecipients: { userId: user.id, day: '2026-12-11', count: 4, limit: 4 } });
  assert.equal(await s.recipientsSentOn(user.id, '2026-12-11'), 4);
  assert.equal(await s.recipientsSentOn(user.id, day), 0);
  s.db.close();
});
