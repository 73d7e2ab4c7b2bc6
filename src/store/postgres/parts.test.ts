// The PostgreSQL parts of branch pg-core, one scenario per focused interface, with the
// semantics of their SQLite twins (src/store/sqlite/*.ts): accounts, credentials, sessions,
// mailboxes, absences, rules, usage, traces, integrations, patients, leases, lockout, message
// file records.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pgTestDatabase } from '../../../test/support/postgres.js';
import { StoreConflictError } from '../errors.js';
import { PgStore } from './index.js';

const db = await pgTestDatabase();
const skip = 'skip' in db ? db.skip : false;
let s: PgStore;
before(async () => {
  if (!('skip' in db)) s = await PgStore.open(db.url);
});
after(async () => {
  if ('skip' in db) return;
  await s?.close();
  await db.drop();
});

const blob = (n: number) => n.toString(16).padStart(64, '0');
let seq = 0;
const uniq = (p: string) => `${p}${++seq}`;

async function mailbox(address = `${uniq('bal')}@op.test`) {
  return s.createMailbox({ address, type: 'PER', displayName: 'BAL', ownerUserId: null, practitionerId: null, structureId: null, listeRouge: false });
}

/** A message in a folder, appended through the folder part; its row id and UID. */
async function insertMessage(folderId: number, blobId: string, flags = '', internalDate = new Date().toISOString()) {
  const { uid } = await s.appendMessage(folderId, { blobId, size: 10, flags: flags ? flags.split(' ') : [], internalDate: new Date(internalDate) });
  const m = await s.getMessageByUid(folderId, uid);
  return { id: m!.id, uid };
}
async function inbox(mailboxId: number) {
  const [f] = await s.connection.query("SELECT id FROM folders WHERE mailbox_id = $1 AND name = 'INBOX'", [mailboxId]);
  return f.id as number;
}

test('accounts: structures, practitioners, users (logins unique whatever their case), preferences, application account', { skip }, async () => {
  const st = await s.createStructure({ idType: 'FINESS', idValue: '750000001', name: 'CH' });
  assert.deepEqual(await s.findStructure('FINESS', '750000001'), st);
  assert.deepEqual(await s.getStructure(st.id), st);
  await assert.rejects(s.createStructure({ idType: 'FINESS', idValue: '750000001', name: 'x' }), (e: Error) => e instanceof StoreConflictError && /structure FINESS 750000001 already exists/.test(e.message));
  assert.ok((await s.listStructures()).some((x) => x.id === st.id));
  const p = await s.createPractitioner({ rpps: '10001234567', familyName: 'Martin', givenName: 'Anne', civility: 'DR', professionCode: '10' });
  assert.equal(typeof p.id, 'number');
  assert.deepEqual(await s.findPractitionerByRpps('10001234567'), p);
  assert.deepEqual(await s.getPractitioner(p.id), p);
  await assert.rejects(s.createPractitioner({ rpps: '10001234567', familyName: 'x', givenName: 'y', civility: null, professionCode: null }), StoreConflictError);
  const u = await s.createUser({ login: 'Anne.Martin', displayName: 'Anne Martin', practitionerId: p.id, passwordHash: 'h1' });
  assert.deepEqual(u, { id: u.id, login: 'Anne.Martin', displayName: 'Anne Martin', practitionerId: p.id, structureId: null, state: 'active', createdAt: u.createdAt });
  await assert.rejects(s.createUser({ login: 'anne.MARTIN', displayName: 'x', practitionerId: null, passwordHash: null }), StoreConflictError);
  assert.equal((await s.findUserByLogin('ANNE.martin'))?.passwordHash, 'h1');
  await s.setUserPassword(u.id, 'h2');
  assert.equal((await s.findUserByLogin('anne.martin'))?.passwordHash, 'h2');
  assert.deepEqual(await s.findUserByRpps('10001234567'), u);
  assert.deepEqual(await s.getUser(u.id), u);
  assert.ok((await s.listUsers()).some((x) => x.id === u.id));
  assert.equal(await s.getPreferences(u.id), undefined);
  await s.setPreferences(u.id, '{"a":1}');
  await s.setPreferences(u.id, '{"a":2}');
  assert.equal(await s.getPreferences(u.id), '{"a":2}');
  const [app1, app2] = await Promise.all([s.applicationAccount(st), s.applicationAccount(st)]);
  assert.deepEqual(app1, app2, 'one application account, even asked twice at once');
  assert.equal(app1.login, 'app:finess:750000001');
  assert.equal(app1.structureId, st.id);
});

test('credentials: app passwords, TOTP enrolment and replay, recovery codes once, audit trail', { skip }, async () => {
  const u = await s.createUser({ login: uniq('cred'), displayName: 'C', practitionerId: null, passwordHash: null });
  const a1 = await s.createAppPassword({ userId: u.id, label: 'phone', secretHash: uniq('sh') });
  const a2 = await s.createAppPassword({ userId: u.id, label: 'laptop', secretHash: uniq('sh') });
  assert.deepEqual((await s.listAppPasswords(u.id)).map((a) => a.id), [a2.id, a1.id], 'newest first');
  await s.touchAppPassword(a1.id, '2026-12-01T00:00:00.000Z', '192.0.2.1');
  const found = await s.findAppPassword(u.id, (await s.connection.query('SELECT secret_hash FROM app_passwords WHERE id = $1', [a1.id]))[0].secret_hash);
  assert.deepEqual([found?.lastUsedAt, found?.lastUsedFrom], ['2026-12-01T00:00:00.000Z', '192.0.2.1']);
  assert.equal(await s.revokeAppPassword(u.id, a1.id), true);
  assert.equal(await s.revokeAppPassword(u.id, a1.id), false, 'once');
  assert.equal(await s.findAppPassword(u.id, found!.id.toString()), undefined);

  assert.equal(await s.getTotp(u.id), undefined);
  await s.setPendingTotp(u.id, 'S1');
  await s.setPendingTotp(u.id, 'S2');
  assert.deepEqual(await s.getTotp(u.id), { userId: u.id, secret: 'S2', confirmedAt: null, lastStep: 0 });
  assert.equal(await s.useTotpStep(u.id, 5), false, 'not confirmed yet');
  await s.confirmTotp(u.id, 10, ['r1', 'r2']);
  await assert.rejects(s.confirmTotp(u.id, 11, []), /no second-factor enrolment in progress/);
  await assert.rejects(s.setPendingTotp(u.id, 'S3'), /a confirmed second factor exists/);
  assert.equal(await s.useTotpStep(u.id, 10), false, 'the confirming step is used');
  assert.equal(await s.useTotpStep(u.id, 11), true);
  assert.equal(await s.useTotpStep(u.id, 11), false, 'RFC 6238 §5.2: never twice');
  assert.equal(await s.remainingRecoveryCodes(u.id), 2);
  assert.equal(await s.useRecoveryCode(u.id, 'r1'), true);
  assert.equal(await s.useRecoveryCode(u.id, 'r1'), false);
  assert.equal(await s.remainingRecoveryCodes(u.id), 1);
  await s.deleteTotp(u.id);
  assert.equal(await s.getTotp(u.id), undefined);
  assert.equal(await s.remainingRecoveryCodes(u.id), 0);

  const at = '2026-12-07T10:00:00.000Z';
  await s.recordAuth({ at, login: 'x'.repeat(400), userId: null, protocol: 'imap', method: 'PLAIN', remote: '192.0.2.9', success: false, reason: 'bad password', actor: null });
  await s.recordAuth({ at, login: u.login, userId: u.id, protocol: 'http', method: 'password', remote: null, success: true, reason: null, actor: 'admin' });
  const [last, prev] = await s.listAuthAudit(2);
  assert.deepEqual(last, { at, login: u.login, userId: u.id, protocol: 'http', method: 'password', remote: null, success: true, reason: null, actor: 'admin' });
  assert.equal(prev.login.length, 320, 'logins kept to 320 characters');
  assert.equal(prev.success, false);
});

test('web sessions: create, find by digest, touch, list live ones, revoke one or all but one', { skip }, async () => {
  const u = await s.createUser({ login: uniq('web'), displayName: 'W', practitionerId: null, passwordHash: null });
  const base = { userId: u.id, method: 'password', stage: 'full' as const, csrfToken: 'c', createdAt: 1000, lastSeenAt: 1000, expiresAt: 10_000, remote: null, userAgent: 'ua' };
  const a = await s.createHttpSession({ ...base, tokenHash: uniq('t') });
  const b = await s.createHttpSession({ ...base, tokenHash: uniq('t'), lastSeenAt: 2000 });
  const c = await s.createHttpSession({ ...base, tokenHash: uniq('t'), expiresAt: 1500 });
  await s.touchHttpSession(a.id, 3000);
  assert.deepEqual((await s.listHttpSessions(u.id, 2000)).map((x) => x.id), [a.id, b.id], 'live ones, last seen first');
  const [{ token_hash }] = await s.connection.query('SELECT token_hash FROM http_sessions WHERE id = $1', [b.id]);
  assert.equal((await s.findHttpSession(token_hash))?.id, b.id);
  assert.equal(await s.countLiveHttpSessions(2000) >= 2, true);
  assert.equal(await s.revokeHttpSession(u.id, b.id), true);
  assert.equal(await s.revokeHttpSession(u.id, b.id), false);
  assert.equal(await s.findHttpSession(token_hash), undefined);
  assert.equal(await s.revokeHttpSessions(u.id, a.id), 1, 'c only');
  assert.deepEqual((await s.listHttpSessions(u.id, 0)).map((x) => x.id), [a.id]);
  void c;
});

test('mailboxes: default folders in the transaction, addresses unique whatever their case, update and deletion, grants', { skip }, async () => {
  const owner = await s.createUser({ login: uniq('own'), displayName: 'O', practitionerId: null, passwordHash: null });
  const mb = await s.createMailbox({ address: 'Secretariat.Cardio@op.test', type: 'ORG', displayName: 'Cardio', ownerUserId: owner.id, practitionerId: null, structureId: null, listeRouge: true, service: 'Cardiologie' });
  assert.equal(mb.listeRouge, true);
  assert.equal(mb.service, 'Cardiologie');
  assert.equal(mb.description, null);
  const folders = await s.connection.query('SELECT name, special_use, uid_validity FROM folders WHERE mailbox_id = $1 ORDER BY id', [mb.id]);
  const { DEFAULT_FOLDERS } = await import('../../model/index.js');
  assert.deepEqual(folders.map((f) => [f.name, f.special_use]), DEFAULT_FOLDERS.map((f) => [f.name, f.specialUse]));
  const [{ last_uid_validity }] = await s.connection.query('SELECT last_uid_validity FROM mailboxes WHERE id = $1', [mb.id]);
  assert.equal(folders[0].uid_validity, last_uid_validity);
  await assert.rejects(mailbox('secretariat.CARDIO@op.test'), (e: Error) => e instanceof StoreConflictError && /mailbox secretariat.CARDIO@op.test already exists/.test(e.message));
  assert.equal((await s.connection.query('SELECT COUNT(*) n FROM folders f JOIN mailboxes m ON m.id = f.mailbox_id WHERE lower(m.address) = $1', ['secretariat.cardio@op.test']))[0].n, DEFAULT_FOLDERS.length, 'the refused mailbox left no folder');
  assert.equal((await s.findMailboxByAddress('SECRETARIAT.cardio@OP.test'))?.id, mb.id);
  assert.deepEqual(await s.getMailbox(mb.id), mb);
  assert.ok((await s.listMailboxes({ ownerUserId: owner.id, type: 'ORG', state: 'active' })).every((m) => m.id === mb.id));
  assert.deepEqual(await s.listMailboxes({ ownerUserId: owner.id, type: 'PER' }), []);

  const u = await s.createUser({ login: uniq('del'), displayName: 'D', practitionerId: null, passwordHash: null });
  const g = await s.setGrant(mb.id, u.id, ['send', 'read', 'read'] as any);
  assert.deepEqual(g.rights, ['read', 'send']);
  assert.deepEqual((await s.setGrant(mb.id, u.id, ['read'] as any)).rights, ['read']);
  assert.deepEqual((await s.listGrants({ userId: u.id })).map((x) => [x.mailboxId, x.rights]), [[mb.id, ['read']]]);

  const up = await s.updateMailbox(mb.id, { displayName: 'Cardiologie', listeRouge: false, description: 'desc', state: 'suspended' });
  assert.deepEqual([up.displayName, up.listeRouge, up.description, up.state], ['Cardiologie', false, 'desc', 'suspended']);
  const changes = await s.connection.query('SELECT state FROM mailbox_state_changes WHERE mailbox_id = $1', [mb.id]);
  assert.deepEqual(changes.map((c) => c.state), ['suspended'], 'the trigger records state changes');
  await insertMessage(await inbox(mb.id), blob(0xdead));
  await s.updateMailbox(mb.id, { state: 'deleted' });
  assert.equal((await s.connection.query('SELECT COUNT(*) n FROM folders WHERE mailbox_id = $1', [mb.id]))[0].n, 0, 'folders and messages gone');
  assert.deepEqual(await s.listGrants({ mailboxId: mb.id }), []);
  assert.ok(await s.connection.query('SELECT 1 FROM blob_garbage WHERE blob_id = $1', [blob(0xdead)]).then((r) => r.length === 1), 'the file is a removal candidate');
  assert.equal(await s.removeGrant(mb.id, u.id), false);
  await assert.rejects(s.updateMailbox(999_999, { displayName: 'x' }), /mailbox #999999 not found/);
});

test('absences: set replaces and forgets replies; one reply per sender per period whatever its case; clear', { skip }, async () => {
  const mb = await mailbox();
  const a = await s.setAbsence({ mailboxId: mb.id, startsAt: null, endsAt: '2026-12-31T00:00:00.000Z', subject: 'Absent', body: 'b', externalBody: null, substitute: null, updatedBy: 'me' });
  assert.deepEqual(await s.getAbsence(mb.id), a);
  assert.equal(await s.claimAbsenceReply(mb.id, 'Dr@Peer.test', 1000, 0), true);
  assert.equal(await s.claimAbsenceReply(mb.id, 'dr@peer.test', 2000, 500), false, 'replied at 1000, after since');
  assert.equal(await s.lastAbsenceReply(mb.id, 'DR@PEER.TEST'), 1000);
  assert.equal(await s.claimAbsenceReply(mb.id, 'dr@peer.test', 3000, 1001), true, 'a new period');
  assert.equal(await s.lastAbsenceReply(mb.id, 'dr@peer.test'), 3000);
  const b = await s.setAbsence({ mailboxId: mb.id, startsAt: null, endsAt: null, subject: null, body: null, externalBody: 'ext', substitute: 'x@op.test', updatedBy: 'me' });
  assert.equal(b.externalBody, 'ext');
  assert.equal(b.subject, null);
  assert.equal(await s.lastAbsenceReply(mb.id, 'dr@peer.test'), undefined, 'a new absence forgets the replies');
  assert.equal(await s.clearAbsence(mb.id), true);
  assert.equal(await s.clearAbsence(mb.id), false);
  assert.equal(await s.getAbsence(mb.id), undefined);
});

test('rules: activity keeps the latest time, lifecycle updates, unread INBOX messages without notices, notices once a day, urgency replies', { skip }, async () => {
  const m1 = await mailbox();
  const m2 = await mailbox();
  await s.recordActivity([m1.id, m2.id, m1.id], 'login', 5000);
  await s.recordActivity([m1.id], 'login', 4000);
  await s.recordActivity([m1.id], 'read', 4500);
  assert.deepEqual([(await s.getActivity(m1.id))?.lastLoginAt, (await s.getActivity(m1.id))?.lastReadAt, (await s.getActivity(m2.id))?.lastLoginAt], [5000, 4500, 5000]);
  const act = await s.updateActivity(m1.id, { readingThresholdHours: 1.5, unusedWarnedAt: 7000 });
  assert.deepEqual([act.readingThresholdHours, act.unusedWarnedAt, act.lastLoginAt, act.objectionAt], [1.5, 7000, 5000, null]);
  const fresh = await mailbox();
  assert.equal((await s.updateActivity(fresh.id, {})).mailboxId, fresh.id, 'created when missing');

  const box = await inbox(m1.id);
  await insertMessage(box, blob(1), '', '2026-12-01T00:00:00.000Z');
  await insertMessage(box, blob(2), '\\Seen', '2026-12-01T00:00:01.000Z');
  await insertMessage(box, blob(3), '$Label \\deleted', '2026-12-01T00:00:02.000Z');
  await insertMessage(box, blob(4), 'Seen', '2026-12-01T00:00:03.000Z');
  await insertMessage(box, blob(5), '', '2026-12-01T00:00:04.000Z');
  assert.equal(await s.claimRuleNotice({ mailboxId: m1.id, kind: 'reading', day: '2026-12-07', level: 1, sentAt: 1 }), true);
  assert.equal(await s.claimRuleNotice({ mailboxId: m1.id, kind: 'reading', day: '2026-12-07', level: 2, sentAt: 2 }), false, 'once a day');
  assert.equal(await s.claimRuleNotice({ mailboxId: m1.id, kind: 'unused', day: '2026-12-07', level: 1, sentAt: 3 }), true);
  await s.setRuleNoticeBlob(m1.id, 'reading', '2026-12-07', blob(5));
  assert.deepEqual(
    (await s.unreadMessages(m1.id, 10)).map((m) => m.blobId),
    [blob(1), blob(4)],
    'neither \\Seen nor \\Deleted (any case), notices left out',
  );
  assert.deepEqual(await s.listRuleNotices(m1.id), [
    { mailboxId: m1.id, kind: 'reading', day: '2026-12-07', level: 1, blobId: blob(5), sentAt: 1 },
    { mailboxId: m1.id, kind: 'unused', day: '2026-12-07', level: 1, blobId: null, sentAt: 3 },
  ]);
  assert.equal(await s.claimUrgencyReply(m1.id, 'A@b.test', 100, 0), true);
  assert.equal(await s.claimUrgencyReply(m1.id, 'a@B.test', 200, 50), false);
  assert.equal(await s.claimUrgencyReply(m1.id, 'a@b.test', 300, 101), true);
});

test('usage: message counts, mailbox counts at a period end, connections, queue stats', { skip }, async () => {
  const st = await s.createStructure({ idType: 'SIRET', idValue: uniq('1234'), name: 'S' });
  const from = '2030-01-01T00:00:00.000Z';
  const to = '2030-02-01T00:00:00.000Z';
  await s.connection.query(
    `INSERT INTO usage_messages (at, structure_id, mailbox_type, flow, peer, attachment, xdm) VALUES
     ('2030-01-05T00:00:00.000Z', $1, 'PER', 'sent', 'operator', 1, 0), ('2030-01-06T00:00:00.000Z', $1, 'PER', 'sent', 'operator', 1, 1),
     ('2030-01-07T00:00:00.000Z', NULL, 'ORG', 'received', 'internal', 0, 0), ('2030-02-07T00:00:00.000Z', NULL, 'ORG', 'received', 'internal', 0, 0)`,
    [st.id],
  );
  assert.deepEqual(await s.usageMessages(from, to), [
    { structureId: null, mailboxType: 'ORG', flow: 'received', peer: 'internal', messages: 1, withAttachment: 0, withXdm: 0 },
    { structureId: st.id, mailboxType: 'PER', flow: 'sent', peer: 'operator', messages: 2, withAttachment: 2, withXdm: 1 },
  ]);
  await s.recordAuth({ at: '2030-01-02T00:00:00.000Z', login: 'a', userId: null, protocol: 'imap', method: 'PLAIN', remote: null, success: true, reason: null, actor: null });
  await s.recordAuth({ at: '2030-01-02T00:00:00.000Z', login: 'a', userId: null, protocol: 'imap', method: 'PLAIN', remote: null, success: false, reason: null, actor: null });
  await s.recordAuth({ at: '2030-01-02T00:00:00.000Z', login: 'a', userId: null, protocol: 'imap', method: 'PLAIN', remote: null, success: false, reason: null, actor: 'admin' });
  assert.deepEqual(await s.usageConnections(from, to), [
    { protocol: 'imap', method: 'PLAIN', success: true, count: 1 },
    { protocol: 'imap', method: 'PLAIN', success: false, count: 1 },
  ]);
  const mb = await s.createMailbox({ address: `${uniq('u')}@op.test`, type: 'CAB', displayName: 'C', ownerUserId: null, practitionerId: null, structureId: st.id, listeRouge: false });
  await s.updateMailbox(mb.id, { state: 'suspended' });
  const now = new Date();
  const period = [new Date(now.getTime() - 3_600_000).toISOString(), new Date(now.getTime() + 3_600_000).toISOString()] as const;
  const row = (await s.usageMailboxes(...period)).find((r) => r.structureId === st.id);
  assert.deepEqual(row, { structureId: st.id, mailboxType: 'CAB', active: 0, created: 1, suspended: 1, deleted: 0 });
  const stats = await s.queueStats();
  assert.equal(typeof stats.depth, 'number');
});

test('traces: record, list by range oldest first, purge', { skip }, async () => {
  const mb = await mailbox();
  const t = (at: string) => ({ at, mailboxId: mb.id, action: 'read' as const, actorUserId: null, actorLogin: 'system', delegate: false, protocol: 'imap' as const, remote: null, detail: { uids: [1] } });
  await s.recordTrace(t('2026-01-02T00:00:00.000Z'));
  await s.recordTrace(t('2026-01-01T00:00:00.000Z'));
  await s.recordTrace({ ...t('2026-01-03T00:00:00.000Z'), delegate: true });
  const all = await s.listTraces(mb.id);
  assert.deepEqual(all.map((x) => x.at), ['2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z', '2026-01-03T00:00:00.000Z']);
  assert.deepEqual(all[0].detail, { uids: [1] });
  assert.equal(all[2].delegate, true);
  assert.deepEqual((await s.listTraces(mb.id, { from: '2026-01-02T00:00:00.000Z', to: '2026-01-03T00:00:00.000Z' })).map((x) => x.at), ['2026-01-02T00:00:00.000Z']);
  assert.equal(await s.purgeTraces('2026-01-02T00:00:00.000Z'), 1);
  assert.equal((await s.listTraces(mb.id)).length, 2);
});

test('integrations: tokens, webhooks from now or all, cursor compare-and-set, failures, inbound feed', { skip }, async () => {
  const u = await s.createUser({ login: uniq('api'), displayName: 'A', practitionerId: null, passwordHash: null });
  const mb = await mailbox();
  const tok = await s.createApiToken({ userId: u.id, label: 'dpi', secretHash: uniq('h'), createdBy: 'admin' });
  const hash = (await s.connection.query('SELECT secret_hash FROM api_tokens WHERE id = $1', [tok.id]))[0].secret_hash;
  assert.deepEqual(await s.findApiToken(hash), tok);
  await s.touchApiToken(tok.id, '2026-12-07T00:00:00.000Z', '192.0.2.3');
  assert.equal((await s.listApiTokens(u.id))[0].lastUsedFrom, '192.0.2.3');
  assert.equal((await s.revokeApiToken(tok.id))?.id, tok.id);
  assert.equal(await s.revokeApiToken(tok.id), undefined);
  assert.equal(await s.findApiToken(hash), undefined);
  assert.ok((await s.listApiTokens()).some((t) => t.id === tok.id));

  const box = await inbox(mb.id);
  const first = await insertMessage(box, blob(10));
  const all = await s.createWebhook({ userId: u.id, mailboxId: mb.id, url: 'https://dpi.test/h', secret: 'k', since: 'all' });
  const fromNow = await s.createWebhook({ userId: u.id, mailboxId: mb.id, url: 'https://dpi.test/h2', secret: 'k2', since: 'now' });
  assert.deepEqual([all.cursor, fromNow.cursor], [0, first.id]);
  const second = await insertMessage(box, blob(11));
  assert.deepEqual((await s.inboundAfter(mb.id, 0, 10)).map((m) => [m.id, m.blobId]), [[first.id, blob(10)], [second.id, blob(11)]]);
  assert.deepEqual((await s.inboundAfter(mb.id, first.id, 10)).map((m) => m.id), [second.id]);
  assert.equal((await s.getWebhook(all.id))?.secret, 'k');
  assert.deepEqual((await s.listWebhooks({ mailboxId: mb.id })).map((w) => w.id), [all.id, fromNow.id]);
  assert.deepEqual((await s.listWebhooks({ userId: u.id, mailboxId: -1 })), []);
  assert.ok((await s.dueWebhooks(Date.now(), 100)).some((w) => w.id === all.id));
  assert.equal(await s.webhookAcknowledged(all.id, 0, first.id), true);
  assert.equal(await s.webhookAcknowledged(all.id, 0, first.id), false, 'compare-and-set on the old cursor');
  await s.webhookFailed(all.id, { error: '503', nextAttemptAt: 9e12, failingSince: 5 });
  const failed = await s.getWebhook(all.id);
  assert.deepEqual([failed?.attempts, failed?.nextAttemptAt, failed?.failingSince, failed?.lastError, failed?.delivered], [1, 9e12, 5, '503', 1]);
  assert.ok(!(await s.dueWebhooks(Date.now(), 100)).some((w) => w.id === all.id));
  assert.equal(await s.webhookAbandoned(all.id, first.id, second.id, 'gave up'), true);
  const ab = await s.getWebhook(all.id);
  assert.deepEqual([ab?.cursor, ab?.abandoned, ab?.attempts, ab?.lastError], [second.id, 1, 0, 'gave up']);
  assert.equal(await s.revokeWebhook(all.id), true);
  assert.equal(await s.revokeWebhook(all.id), false);
});

test('patients: a conversation read by professional, whatever its case', { skip }, async () => {
  const { applyConversationChanges } = await import('./patients.js');
  const mb = await mailbox();
  await s.connection.tx((c) => applyConversationChanges(c, [{ patientMailboxId: mb.id, professional: 'Dr@A.test', action: 'open', at: '2026-12-01T10:00:00.000Z' }]));
  await s.connection.tx((c) => applyConversationChanges(c, [{ patientMailboxId: mb.id, professional: 'dr@a.test', action: 'open', at: '2026-12-02T10:00:00.000Z' }]));
  assert.deepEqual(await s.getPatientConversation(mb.id, 'DR@a.test'), { patientMailboxId: mb.id, professional: 'dr@a.test', openedAt: '2026-12-01T10:00:00.000Z', lastMessageAt: '2026-12-02T10:00:00.000Z', closedAt: null });
  await s.connection.tx((c) => applyConversationChanges(c, [{ patientMailboxId: mb.id, professional: 'dr@a.test', action: 'close', at: '2026-12-03T10:00:00.000Z' }]));
  assert.equal((await s.getPatientConversation(mb.id, 'dr@a.test'))?.closedAt, '2026-12-03T10:00:00.000Z');
  await s.connection.tx((c) => applyConversationChanges(c, [{ patientMailboxId: mb.id, professional: 'dr@a.test', action: 'open', at: '2026-12-04T10:00:00.000Z' }]));
  const re = await s.getPatientConversation(mb.id, 'dr@a.test');
  assert.deepEqual([re?.openedAt, re?.closedAt], ['2026-12-04T10:00:00.000Z', null], 'a new exchange');
  assert.equal(await s.getPatientConversation(mb.id, 'other@a.test'), undefined);
});

test('leases and lockout: acquire, renew, expiry, release; failures counted, cleared, purged', { skip }, async () => {
  const t = 1_000_000;
  assert.equal(await s.acquireLease('leader', 'a', t, 3000), true);
  assert.equal(await s.acquireLease('leader', 'b', t + 1, 3000), false);
  assert.equal(await s.acquireLease('leader', 'a', t + 2000, 3000), true, 'renewed to t+5000');
  assert.equal(await s.acquireLease('leader', 'b', t + 4999, 3000), false);
  assert.equal(await s.acquireLease('leader', 'b', t + 5000, 3000), true, 'expired');
  await s.releaseLease('leader', 'a');
  assert.equal(await s.acquireLease('leader', 'a', t + 5001, 3000), false, 'a released nothing it held');
  await s.releaseLease('leader', 'b');
  assert.equal(await s.acquireLease('leader', 'a', t + 5002, 3000), true);
  await s.recordAuthFailure('login:alice', 1000);
  await s.recordAuthFailure('login:alice', 2000);
  await s.recordAuthFailure('addr:192.0.2.1', 3000);
  assert.equal(await s.countAuthFailures('login:alice', 2000), 1);
  assert.equal(await s.purgeAuthFailures(2000), 1);
  await s.clearAuthFailures('login:alice');
  assert.equal(await s.countAuthFailures('login:alice', 0), 0);
  assert.equal(await s.countAuthFailures('addr:192.0.2.1', 0), 1);
});

test('message files: analysis, header search rows (matched, unindexed, empty needle), garbage and removal claims', { skip }, async () => {
  const mb = await mailbox();
  const box = await inbox(mb.id);
  const [b1, b2, b3] = [blob(0x101), blob(0x102), blob(0x103)];
  await s.setBlobMeta(b1, '{"v":1}');
  await s.setBlobMeta(b1, '{"v":2}');
  assert.equal(await s.getBlobMeta(b1), '{"v":2}');
  await s.setSearchHeaders(b1, 1, { s_subject: Buffer.from('bilan sanguin\nrésultats'), a_from: Buffer.from('dr@a.test') });
  const m1 = await insertMessage(box, b1);
  const m2 = await insertMessage(box, b2);
  const m3 = await insertMessage(box, b3);
  assert.deepEqual((await s.blobsWithoutSearchHeaders(100)).filter((b) => [b1, b2, b3].includes(b)).sort(), [b2, b3]);
  assert.equal(await s.hasSearchHeaders(b1, 1), true);
  assert.equal(await s.hasSearchHeaders(b1, 2), false);
  assert.deepEqual(await s.searchHeaderCandidates(box, 's_subject', Buffer.from('résultats'), 1, 3), { matched: [m1.uid], unindexed: [m2.uid, m3.uid] });
  await s.setSearchHeaders(b2, 1, { s_subject: Buffer.from('autre') });
  assert.deepEqual(await s.searchHeaderCandidates(box, 's_subject', Buffer.from('bilan'), 1, 3), { matched: [m1.uid], unindexed: [m3.uid] }, 'the row marks the messages of its file');
  assert.deepEqual(await s.searchHeaderCandidates(box, 'a_from', Buffer.alloc(0), 1, 3), { matched: [m1.uid], unindexed: [m3.uid] }, 'empty needle: the field exists');
  await s.setSearchHeaders(b1, 1, { s_subject: Buffer.from('remplacé') });
  assert.deepEqual((await s.searchHeaderCandidates(box, 'a_from', Buffer.alloc(0), 1, 3)).matched, [], 'a new row replaces the whole row');
  const m4 = await insertMessage(box, b1);
  assert.deepEqual((await s.searchHeaderCandidates(box, 's_subject', Buffer.from('remplac'), 1, 3)).matched, [m1.uid, m4.uid], 'a message of an indexed file is indexed on insert');
  await assert.rejects(s.searchHeaderCandidates(box, 'x; DROP TABLE messages', Buffer.from('a'), 1, 3), /unknown search column/);
  await assert.rejects(s.setSearchHeaders(b1, 1, { evil: null }), /unknown search column/);

  assert.equal(await s.isBlobReferenced(b3), true);
  await s.connection.query('DELETE FROM messages WHERE id = $1', [m3.id]);
  assert.equal(await s.isBlobReferenced(b3), false);
  await s.connection.query('DELETE FROM messages WHERE id IN ($1, $2)', [m1.id, m4.id]);
  const garbage = await s.blobGarbage(100);
  assert.ok(garbage.includes(b1) && garbage.includes(b3) && !garbage.includes(b2));
  await insertMessage(box, b3); // referenced again meanwhile
  assert.equal(await s.claimBlobRemoval(b3, Date.now(), 30_000), false, 'still referenced: the candidate is dropped');
  assert.ok(!(await s.blobGarbage(100)).includes(b3));
  const since = Date.now();
  assert.equal(await s.claimBlobRemoval(b1, since, 30_000), true);
  assert.equal(await s.getBlobMeta(b1), undefined);
  assert.equal(await s.hasSearchHeaders(b1, 1), false);
  assert.ok((await s.blobGarbage(100)).includes(b1), 'the candidate stays until the file is gone');
  await s.forgetBlobGarbage(b1, since);
  assert.ok(!(await s.blobGarbage(100)).includes(b1));
});
