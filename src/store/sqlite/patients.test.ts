// Patient conversations (migration 15) written in the delivery's own transaction: opened, closed
// ([FIN]), reopened by a new message of the professional; rolled back with a refused delivery.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DailyRecipientLimitError } from '../types.js';
import { SqliteStore } from './index.js';

test('conversations: open, close, reopen, per professional; nothing recorded when the delivery rolls back', async () => {
  const s = SqliteStore.open(':memory:');
  const st = await s.createStructure({ idType: 'SIRET', idValue: '18000000000017', name: 'MES' });
  const mb = await s.createMailbox({ address: '185057512345673@patient.test', type: 'ORG', displayName: 'P', ownerUserId: null, practitionerId: null, structureId: st.id, listeRouge: true });
  const user = await s.createUser({ login: 'u', displayName: 'U', practitionerId: null, passwordHash: null });
  let n = 0;
  const deliver = (action: 'open' | 'close', at: string, professional = 'Dr@A.test', extra = {}) =>
    s.deliver({ blobId: (++n).toString(16).padStart(64, '0'), size: 1, internalDate: new Date(), envelopeFrom: 'dr@a.test', localMailboxIds: [mb.id], remote: [], conversations: [{ patientMailboxId: mb.id, professional, action, at }], ...extra });
  assert.equal(await s.getPatientConversation(mb.id, 'dr@a.test'), undefined);
  await deliver('open', '2026-12-01T10:00:00.000Z');
  await deliver('open', '2026-12-02T10:00:00.000Z');
  assert.deepEqual(await s.getPatientConversation(mb.id, 'dr@a.test'), { patientMailboxId: mb.id, professional: 'dr@a.test', openedAt: '2026-12-01T10:00:00.000Z', lastMessageAt: '2026-12-02T10:00:00.000Z', closedAt: null });
  await deliver('close', '2026-12-03T10:00:00.000Z');
  assert.equal((await s.getPatientConversation(mb.id, 'DR@a.test'))!.closedAt, '2026-12-03T10:00:00.000Z');
  assert.equal(await s.getPatientConversation(mb.id, 'other@a.test'), undefined, 'per professional');
  await deliver('open', '2026-12-04T10:00:00.000Z');
  const reopened = (await s.getPatientConversation(mb.id, 'dr@a.test'))!;
  assert.deepEqual([reopened.openedAt, reopened.closedAt], ['2026-12-04T10:00:00.000Z', null], 'a new exchange');
  // A delivery refused at commit records no conversation change.
  await assert.rejects(
    deliver('close', '2026-12-05T10:00:00.000Z', 'dr@a.test', { dailyRecipients: { userId: user.id, day: '2026-12-05', count: 2, limit: 1 } }),
    DailyRecipientLimitError,
  );
  assert.equal((await s.getPatientConversation(mb.id, 'dr@a.test'))!.closedAt, null);
  s.db.close();
});
