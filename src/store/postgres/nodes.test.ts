// Two PgStore instances (two pools, as two nodes have them) on one database: the conditional
// claims of pg-core's parts are won exactly once, whichever node asks (shared spec of issue 12:
// single statements, so two nodes never both win).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pgTwoNodes } from '../../../test/support/pg-nodes.js';
import { StoreConflictError } from '../errors.js';
import type { PgStore } from './index.js';

const nodes = await pgTwoNodes({ poolSize: 8 });
const skip = 'skip' in nodes ? nodes.skip : false;
let a!: PgStore;
let b!: PgStore;
if (!('skip' in nodes)) ({ a, b } = nodes);

const ROUNDS = 20;
let seq = 0;
const uniq = (p: string) => `${p}${++seq}`;
const mailbox = () => a.createMailbox({ address: `${uniq('n')}@op.test`, type: 'PER', displayName: 'N', ownerUserId: null, practitionerId: null, structureId: null, listeRouge: false });
/** Runs `fn` on both nodes at once, `per` times each; the results. */
const race = <T>(per: number, fn: (s: PgStore, i: number) => Promise<T>) => Promise.all(Array.from({ length: per * 2 }, (_, i) => fn(i % 2 ? b : a, i)));
const wins = (r: boolean[]) => r.filter(Boolean).length;

test('useTotpStep: the same step on both nodes at once is accepted once (RFC 6238 §5.2)', { skip }, async () => {
  const u = await a.createUser({ login: uniq('totp'), displayName: 'T', practitionerId: null, passwordHash: null });
  await a.setPendingTotp(u.id, 'S');
  await b.confirmTotp(u.id, 1, ['r1']);
  for (let step = 2; step < 2 + ROUNDS; step++) assert.equal(wins(await race(3, (s) => s.useTotpStep(u.id, step))), 1, `step ${step}`);
  assert.equal(wins(await race(3, (s) => s.useRecoveryCode(u.id, 'r1'))), 1, 'a recovery code, once');
});

test('claimAbsenceReply and claimUrgencyReply: one reply per sender and period across nodes, whatever the case', { skip }, async () => {
  const mb = await mailbox();
  for (let i = 0; i < ROUNDS; i++) {
    const at = 1000 * (i + 1);
    assert.equal(wins(await race(2, (s, k) => s.claimAbsenceReply(mb.id, k % 2 ? `Dr${i}@Peer.test` : `dr${i}@peer.test`, at, 0))), 1, `absence sender ${i}`);
    assert.equal(wins(await race(2, (s) => s.claimUrgencyReply(mb.id, `dr${i}@peer.test`, at, 0))), 1, `urgency sender ${i}`);
  }
  // A later period: again exactly one.
  assert.equal(wins(await race(2, (s) => s.claimAbsenceReply(mb.id, 'dr0@peer.test', 10_000_000, 5_000_000))), 1);
});

test('claimRuleNotice: one notice per mailbox, rule and day across nodes', { skip }, async () => {
  const mb = await mailbox();
  for (let i = 0; i < ROUNDS; i++) assert.equal(wins(await race(2, (s, k) => s.claimRuleNotice({ mailboxId: mb.id, kind: 'reading', day: `2026-12-${String(i + 1).padStart(2, '0')}`, level: k, sentAt: k }))), 1);
});

test('acquireLease: two owners at once, one wins; the other takes it after expiry, not before', { skip }, async () => {
  for (let i = 0; i < ROUNDS; i++) {
    const name = uniq('lease');
    const t = 1_000_000;
    const [ra, rb] = await Promise.all([a.acquireLease(name, 'node-a', t, 3000), b.acquireLease(name, 'node-b', t, 3000)]);
    assert.equal(Number(ra) + Number(rb), 1, `lease ${name}: exactly one holder`);
    const [winner, loser, loserName] = ra ? [a, b, 'node-b'] : [b, a, 'node-a'];
    assert.equal(await loser.acquireLease(name, loserName, t + 2999, 3000), false, 'live');
    assert.equal(await loser.acquireLease(name, loserName, t + 3000, 3000), true, 'expired: taken over');
    assert.equal(await winner.acquireLease(name, ra ? 'node-a' : 'node-b', t + 3001, 3000), false, 'lost');
  }
  // Both trying to take over an expired lease at once: one.
  const name = uniq('lease');
  await a.acquireLease(name, 'old', 0, 1);
  assert.equal(wins(await race(3, (s, i) => s.acquireLease(name, `n${i}`, 10, 1000))), 1);
});

test('createUser and createMailbox: the same login or address differing in case, on two nodes at once → one row, StoreConflictError for the other', { skip }, async () => {
  for (let i = 0; i < ROUNDS; i++) {
    const login = uniq('Dr.Dupont');
    const r = await Promise.allSettled([
      a.createUser({ login, displayName: 'D', practitionerId: null, passwordHash: null }),
      b.createUser({ login: login.toUpperCase(), displayName: 'D', practitionerId: null, passwordHash: null }),
    ]);
    assert.equal(r.filter((x) => x.status === 'fulfilled').length, 1, login);
    const failed = r.find((x) => x.status === 'rejected') as PromiseRejectedResult;
    assert.ok(failed.reason instanceof StoreConflictError, String(failed.reason));
    assert.match(failed.reason.message, /^user .* already exists$/);
  }
  const address = `${uniq('Accueil')}@op.test`;
  const r = await Promise.allSettled([address, address.toLowerCase(), address.toUpperCase()].map((x, i) =>
    (i % 2 ? b : a).createMailbox({ address: x, type: 'ORG', displayName: 'A', ownerUserId: null, practitionerId: null, structureId: null, listeRouge: false }),
  ));
  assert.equal(r.filter((x) => x.status === 'fulfilled').length, 1);
  assert.ok(r.every((x) => x.status === 'fulfilled' || x.reason instanceof StoreConflictError));
  const [{ n }] = await a.connection.query('SELECT COUNT(*) n FROM folders f JOIN mailboxes m ON m.id = f.mailbox_id WHERE lower(m.address) = lower($1)', [address]);
  const { DEFAULT_FOLDERS } = await import('../../model/index.js');
  assert.equal(n, DEFAULT_FOLDERS.length, 'the losers left no folder');
});

test('applicationAccount: asked on both nodes at once, one account', { skip }, async () => {
  for (let i = 0; i < ROUNDS; i++) {
    const st = await a.createStructure({ idType: 'FINESS', idValue: uniq('9100'), name: 'S' });
    const accounts = await race(3, (s) => s.applicationAccount(st));
    assert.equal(new Set(accounts.map((u) => u.id)).size, 1);
  }
});

test('webhook cursor: two dispatchers acknowledging the same event, one wins', { skip }, async () => {
  const u = await a.createUser({ login: uniq('hook'), displayName: 'H', practitionerId: null, passwordHash: null });
  const mb = await mailbox();
  const w = await a.createWebhook({ userId: u.id, mailboxId: mb.id, url: 'https://x.test', secret: 's', since: 'all' });
  for (let i = 0; i < ROUNDS; i++) assert.equal(wins(await race(2, (s) => s.webhookAcknowledged(w.id, i, i + 1))), 1, `event ${i + 1}`);
  assert.equal((await b.getWebhook(w.id))?.delivered, ROUNDS);
});

test('createFolder on two nodes at once: distinct UIDVALIDITY, never reused (RFC 9051 §2.3.1.1)', { skip }, async () => {
  const mb = await mailbox();
  const folders = await race(5, (s, i) => s.createFolder(mb.id, `F${i}`));
  const all = await a.listFolders(mb.id);
  const values = all.map((f) => f.uidValidity);
  assert.equal(new Set(values.filter((_, i) => all[i].name.startsWith('F'))).size, folders.length);
  const [{ last_uid_validity }] = await a.connection.query('SELECT last_uid_validity FROM mailboxes WHERE id = $1', [mb.id]);
  assert.equal(last_uid_validity, Math.max(...values));
});

test('lockout: failures recorded on one node lock the login on the other', { skip }, async () => {
  const key = `login:${uniq('victim')}`;
  await race(5, (s, i) => s.recordAuthFailure(key, 1000 + i));
  assert.equal(await b.countAuthFailures(key, 0), 10);
  await a.clearAuthFailures(key);
  assert.equal(await b.countAuthFailures(key, 0), 0);
});

test('deleting a mailbox while another node appends to its INBOX: the deletion succeeds, nothing is left behind', { skip }, async () => {
  for (let i = 0; i < 10; i++) {
    const mb = await mailbox();
    const box = (await a.getFolder(mb.id, 'INBOX'))!;
    const appends = Array.from({ length: 6 }, (_, k) => b.appendMessage(box.id, { blobId: `${i}-${k}`.padStart(64, '0'), size: 1, flags: [], internalDate: new Date() }).then(() => 'stored', (e: Error) => e.message));
    await new Promise((r) => setImmediate(r));
    await a.updateMailbox(mb.id, { state: 'deleted' });
    const outcomes = await Promise.all(appends);
    assert.ok(outcomes.every((o) => o === 'stored' || /folder #\d+ not found/.test(o)), outcomes.join(', '));
    const [{ n }] = await a.connection.query('SELECT COUNT(*) n FROM messages WHERE folder_id = $1', [box.id]);
    assert.equal(n, 0);
  }
});
