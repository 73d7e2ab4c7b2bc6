// Core's access decisions, table-driven (architecture invariant 3: one place decides access).
// One fixture — owner, delegates (read, send, manage, read+send), an unrelated user, a
// structure's application account — and mailboxes of each type (PER, CAB, ORG, APP) and state
// (active, suspended, deleted); then one row per (actor, mailbox). Every expected cell comes
// from a written rule, not from the code's output:
//   - rightsOn: the owner holds every right, others what their grant says; the application
//     account holds every right on its structure's APP mailboxes and nothing else — no PER, no
//     ORG, no delegation (docs/authentication.md "Certificates"; core rightsOn). Rights are what
//     a user holds: the mailbox's state does not change them (state is decided where a mailbox
//     is listed, sent from or delivered to — the three columns below).
//   - maySendAs: unknown or deleted → refused; suspended → refused; owner (or the application
//     account on its APP mailbox) → as itself; a `send` grant → on behalf (Sender: set);
//     `read` and `manage` give no right to send.
//   - accessibleMailboxes: owned ones and those with a grant, never deleted ones, suspended ones
//     kept; readableMailboxes: owned ones and grants with read or manage, not send alone.
//   - imapRights (docs/imap.md "Access", RFC 4314 §2.1): owner `lrswipkxtea`, `read` → `lrs`,
//     `manage` → `lrswipkxtea`, `send` → no letter.
//   - mayActAs: the user's own login, or the address of a mailbox they may read.
//   - resolveRecipient (docs/architecture.md "A message's way through"): active → local,
//     suspended → suspended (4.x), deleted → deleted (5.1.1), unknown → unknown, other domain → remote.
//
// To extend: a new actor or mailbox goes into FIXTURE_* and gets its cells in DECISIONS (the
// per-actor tests check that every mailbox of the fixture has a row, so a forgotten cell
// fails). A new decision is a new column in `Row` and one assertion in the row test. ACL
// changes are the ACL_CHANGES table: one step = an operation and the decisions expected after
// it; Core.listAcl / setAcl / removeAcl become new `op` kinds there.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import path from 'node:path';
import { tempDir } from '../../test/helpers.js';
import { SqliteStore } from '../store/sqlite/index.js';
import { Core, CoreError, type GrantRight, type Mailbox, type MailboxState, type MailboxType, type User } from './index.js';

const DOMAIN = 'hopital.mssante.test';
const S1 = { idType: 'FINESS', idValue: '750712184' } as const;
const S2 = { idType: 'SIRET', idValue: '12345678901234' } as const;
const RPPS = '10001234567';

type ActorKey = 'owner' | 'reader' | 'sender' | 'manager' | 'secretary' | 'stranger' | 'app';
type MailboxKey = 'per' | 'per-suspended' | 'per-deleted' | 'cab' | 'org' | 'org-app-owned' | 'app' | 'app-suspended' | 'app-deleted' | 'app-other';

/** Persons (logins); `app` is the application account of structure S1 (login app:finess:…). */
const FIXTURE_PERSONS: ActorKey[] = ['owner', 'reader', 'sender', 'manager', 'secretary', 'stranger'];

const FIXTURE_MAILBOXES: Record<MailboxKey, { type: MailboxType; state: MailboxState; owner?: ActorKey; structure?: typeof S1 | typeof S2 }> = {
  per: { type: 'PER', state: 'active', owner: 'owner', structure: S1 },
  'per-suspended': { type: 'PER', state: 'suspended', owner: 'owner' },
  'per-deleted': { type: 'PER', state: 'deleted', owner: 'owner' },
  cab: { type: 'CAB', state: 'active', owner: 'owner' },
  org: { type: 'ORG', state: 'active', structure: S1 },
  // An ORG mailbox whose responsible (owner) is the application account: still not one of its
  // APP mailboxes, so the account reaches nothing there.
  'org-app-owned': { type: 'ORG', state: 'active', owner: 'app', structure: S1 },
  app: { type: 'APP', state: 'active', structure: S1 },
  'app-suspended': { type: 'APP', state: 'suspended', structure: S1 },
  'app-deleted': { type: 'APP', state: 'deleted', structure: S1 },
  'app-other': { type: 'APP', state: 'active', structure: S2 },
};

/** Grants made while every mailbox is still active (states are set afterwards). */
const DELEGATED: MailboxKey[] = ['per', 'per-suspended', 'per-deleted', 'cab', 'org', 'app'];
const FIXTURE_GRANTS: { actor: ActorKey; mailboxes: MailboxKey[]; rights: GrantRight[] }[] = [
  { actor: 'reader', mailboxes: DELEGATED, rights: ['read'] },
  { actor: 'sender', mailboxes: DELEGATED, rights: ['send'] },
  { actor: 'manager', mailboxes: DELEGATED, rights: ['manage'] },
  { actor: 'secretary', mailboxes: ['per', 'org'], rights: ['read', 'send'] },
  // Delegation does not apply to an application account (docs/authentication.md): Core refuses
  // such a grant, and one stored before that rule (written to the store directly) opens nothing.
  { actor: 'app', mailboxes: ['org'], rights: ['read', 'send'] },
];

const addressOf = (m: MailboxKey) => `${m}@${DOMAIN}`;

interface Fixture {
  core: Core;
  close: () => Promise<void>;
  users: Record<ActorKey, User>;
  mailboxes: Record<MailboxKey, Mailbox>;
}

async function buildFixture(dir: string): Promise<Fixture> {
  const store = SqliteStore.open(path.join(dir, 'caducee.db'));
  const core = new Core(store, [DOMAIN]);
  const s1 = await core.createStructure(S1.idType, S1.idValue, 'Hôpital Saint-Exemple');
  await core.createStructure(S2.idType, S2.idValue, 'Clinique Autre');
  await core.createPractitioner({ rpps: RPPS, familyName: 'Martin', givenName: 'Claire' });
  const users = {} as Record<ActorKey, User>;
  for (const a of FIXTURE_PERSONS) users[a] = await core.createUser({ login: a, displayName: a, ...(a === 'owner' ? { rpps: RPPS } : {}) });
  users.app = await store.applicationAccount(s1);
  const mailboxes = {} as Record<MailboxKey, Mailbox>;
  for (const [key, m] of Object.entries(FIXTURE_MAILBOXES) as [MailboxKey, (typeof FIXTURE_MAILBOXES)[MailboxKey]][]) {
    await core.createMailbox({ address: addressOf(key), type: m.type, displayName: key, owner: m.owner && users[m.owner].login, structure: m.structure });
  }
  for (const g of FIXTURE_GRANTS) {
    for (const m of g.mailboxes) {
      if (g.actor === 'app') await store.setGrant((await core.requireMailbox(addressOf(m))).id, users.app.id, g.rights);
      else await core.grant(addressOf(m), users[g.actor].login, g.rights);
    }
  }
  for (const key of Object.keys(FIXTURE_MAILBOXES) as MailboxKey[]) {
    const { state } = FIXTURE_MAILBOXES[key];
    mailboxes[key] = state === 'active' ? await core.requireMailbox(addressOf(key)) : await core.setMailboxState(addressOf(key), state);
  }
  return { core, users, mailboxes, close: () => store.close() };
}

/** maySendAs: as itself, on behalf (Sender:), or refused (the reason's words). */
type Send = 'self' | 'on-behalf' | 'refused' | 'suspended' | 'unknown';
const SEND_REFUSAL: Record<Exclude<Send, 'self' | 'on-behalf'>, RegExp> = {
  refused: /may not send as .*neither its owner nor holder of a send-on-behalf grant/,
  suspended: /is suspended/,
  unknown: /is not a mailbox of this operator/,
};
/** Where the mailbox appears: readableMailboxes (and so accessibleMailboxes), accessibleMailboxes only, nowhere. */
type Listed = 'readable' | 'accessible' | 'none';

interface Row {
  rights: GrantRight[];
  send: Send;
  listed: Listed;
  acl: string;
}

const ALL: GrantRight[] = ['read', 'send', 'manage'];
const FULL = 'lrswipkxtea';
const r = (rights: GrantRight[], send: Send, listed: Listed, acl: string): Row => ({ rights, send, listed, acl });
/** No rights at all: only the mailbox's state decides how a send is refused. */
const none = (send: Send): Row => r([], send, 'none', '');
/** The cells of an actor who holds nothing on any mailbox but those given. */
const nothingBut = (given: Partial<Record<MailboxKey, Row>>): Record<MailboxKey, Row> => ({
  per: none('refused'),
  'per-suspended': none('suspended'),
  'per-deleted': none('unknown'),
  cab: none('refused'),
  org: none('refused'),
  'org-app-owned': none('refused'),
  app: none('refused'),
  'app-suspended': none('suspended'),
  'app-deleted': none('unknown'),
  'app-other': none('refused'),
  ...given,
});

const DECISIONS: Record<ActorKey, Record<MailboxKey, Row>> = {
  owner: nothingBut({
    per: r(ALL, 'self', 'readable', FULL),
    // Suspended: the owner still reads it, but nothing is sent from it.
    'per-suspended': r(ALL, 'suspended', 'readable', FULL),
    // Deleted: never listed, never sent from; the rights held are unchanged (see the header).
    'per-deleted': r(ALL, 'unknown', 'none', FULL),
    cab: r(ALL, 'self', 'readable', FULL),
  }),
  // Deleting a mailbox removes the grants on it (store: updateMailbox), so no delegate keeps a
  // right on 'per-deleted' — the cell is nothingBut's default.
  reader: nothingBut({
    per: r(['read'], 'refused', 'readable', 'lrs'),
    'per-suspended': r(['read'], 'suspended', 'readable', 'lrs'),
    cab: r(['read'], 'refused', 'readable', 'lrs'),
    org: r(['read'], 'refused', 'readable', 'lrs'),
    app: r(['read'], 'refused', 'readable', 'lrs'),
  }),
  // Send on behalf alone: listed among the accessible mailboxes, but the content is not readable.
  sender: nothingBut({
    per: r(['send'], 'on-behalf', 'accessible', ''),
    'per-suspended': r(['send'], 'suspended', 'accessible', ''),
    cab: r(['send'], 'on-behalf', 'accessible', ''),
    org: r(['send'], 'on-behalf', 'accessible', ''),
    app: r(['send'], 'on-behalf', 'accessible', ''),
  }),
  // Manage reads and administers, but does not send.
  manager: nothingBut({
    per: r(['manage'], 'refused', 'readable', FULL),
    'per-suspended': r(['manage'], 'suspended', 'readable', FULL),
    cab: r(['manage'], 'refused', 'readable', FULL),
    org: r(['manage'], 'refused', 'readable', FULL),
    app: r(['manage'], 'refused', 'readable', FULL),
  }),
  secretary: nothingBut({
    per: r(['read', 'send'], 'on-behalf', 'readable', 'lrs'),
    org: r(['read', 'send'], 'on-behalf', 'readable', 'lrs'),
  }),
  stranger: nothingBut({}),
  // The application account: its structure's APP mailboxes only — not the ORG one it was
  // granted, not the ORG one it is responsible for, not another structure's APP mailbox.
  app: nothingBut({
    app: r(ALL, 'self', 'readable', FULL),
    'app-suspended': r(ALL, 'suspended', 'readable', FULL),
    'app-deleted': r(ALL, 'unknown', 'none', FULL),
  }),
};

const RECIPIENTS: Record<MailboxKey, 'local' | 'suspended' | 'deleted'> = {
  per: 'local',
  'per-suspended': 'suspended',
  'per-deleted': 'deleted',
  cab: 'local',
  org: 'local',
  'org-app-owned': 'local',
  app: 'local',
  'app-suspended': 'suspended',
  'app-deleted': 'deleted',
  'app-other': 'local',
};

const sorted = (s: Iterable<GrantRight>) => [...s].sort();
/** Ownership as the rules define it: the mailbox's owner; for the application account, its structure's APP mailboxes. */
const owns = (actor: ActorKey, mb: MailboxKey) =>
  actor === 'app' ? FIXTURE_MAILBOXES[mb].type === 'APP' && FIXTURE_MAILBOXES[mb].structure === S1 : FIXTURE_MAILBOXES[mb].owner === actor;
const ACTORS = Object.keys(DECISIONS) as ActorKey[];
const MAILBOXES = Object.keys(FIXTURE_MAILBOXES) as MailboxKey[];

let fx: Fixture;
const tmp = tempDir('caducee-decisions-');
before(async () => {
  fx = await buildFixture(tmp.dir);
});
after(async () => {
  await fx?.close();
  tmp.cleanup();
});

for (const actor of ACTORS) {
  for (const mb of MAILBOXES) {
    const row = DECISIONS[actor][mb];
    const name = `${actor} × ${mb}`;
    test(`decisions: ${name}`, async () => {
      const { core } = fx;
      const user = fx.users[actor];
      const mailbox = fx.mailboxes[mb];
      assert.deepEqual(sorted(await core.rightsOn(user, mailbox)), sorted(row.rights), `${name}: rightsOn`);

      const d = await core.maySendAs(user, mailbox.address);
      if (row.send === 'self' || row.send === 'on-behalf') {
        assert.ok(d.ok, `${name}: maySendAs should allow, got ${JSON.stringify(d)}`);
        assert.equal(d.onBehalf, row.send === 'on-behalf', `${name}: maySendAs onBehalf`);
        assert.equal(d.mailbox.id, mailbox.id, `${name}: maySendAs mailbox`);
      } else {
        assert.ok(!d.ok, `${name}: maySendAs should refuse (${row.send}), got ${JSON.stringify(d)}`);
        assert.match(d.reason, SEND_REFUSAL[row.send], `${name}: maySendAs reason`);
      }

      const accessible = (await core.accessibleMailboxes(user)).find((a) => a.mailbox.id === mailbox.id);
      const readable = (await core.readableMailboxes(user)).find((a) => a.mailbox.id === mailbox.id);
      assert.equal(!!accessible, row.listed !== 'none', `${name}: in accessibleMailboxes`);
      assert.equal(!!readable, row.listed === 'readable', `${name}: in readableMailboxes`);
      if (accessible) {
        // The rights a listing carries are the decision's own.
        assert.deepEqual(sorted(accessible.rights), sorted(row.rights), `${name}: rights listed`);
        assert.equal(accessible.owned, owns(actor, mb), `${name}: owned`);
      }

      assert.equal(await core.imapRights(user, mailbox), row.acl, `${name}: imapRights`);
      // mayActAs: a mailbox's address is an identity the user may act under iff they may read it
      // (any case: addresses compare without case).
      assert.equal(await core.mayActAs(user, mailbox.address.toUpperCase()), row.listed === 'readable', `${name}: mayActAs address`);
    });
  }
}

for (const actor of ACTORS) {
  test(`decisions: ${actor} — listings hold exactly the table's mailboxes; mayActAs own login only`, async () => {
    const { core } = fx;
    const user = fx.users[actor];
    // Every mailbox of the fixture has a cell (a forgotten one is a table error, not a pass).
    assert.deepEqual(Object.keys(DECISIONS[actor]).sort(), [...MAILBOXES].sort(), `${actor}: the table covers every mailbox`);
    const want = (l: Listed[]) => MAILBOXES.filter((m) => l.includes(DECISIONS[actor][m].listed)).map(addressOf).sort();
    const got = async (list: { mailbox: Mailbox }[]) => list.map((a) => a.mailbox.address).sort();
    assert.deepEqual(await got(await core.accessibleMailboxes(user)), want(['readable', 'accessible']), `${actor}: accessibleMailboxes`);
    assert.deepEqual(await got(await core.readableMailboxes(user)), want(['readable']), `${actor}: readableMailboxes`);
    assert.equal(await core.mayActAs(user, user.login), true, `${actor}: mayActAs own login`);
    assert.equal(await core.mayActAs(user, ` ${user.login.toUpperCase()} `), true, `${actor}: mayActAs own login, other case and spaces`);
    for (const other of ACTORS) if (other !== actor) assert.equal(await core.mayActAs(user, fx.users[other].login), false, `${actor}: mayActAs ${other}'s login`);
    assert.equal(await core.mayActAs(user, `nobody@${DOMAIN}`), false, `${actor}: mayActAs an unknown address`);
  });
}

test('decisions: application account — its login is reserved and names its structure', () => {
  assert.equal(fx.users.app.login, `app:${S1.idType.toLowerCase()}:${S1.idValue}`);
  assert.equal(fx.users.app.structureId, fx.mailboxes.app.structureId);
});

for (const mb of MAILBOXES) {
  test(`decisions: resolveRecipient ${mb}`, async () => {
    const res = await fx.core.resolveRecipient(addressOf(mb).toUpperCase());
    assert.equal(res.kind, RECIPIENTS[mb], `resolveRecipient ${mb}`);
    if (res.kind === 'local' || res.kind === 'suspended') assert.equal(res.mailbox.id, fx.mailboxes[mb].id);
  });
}

test('decisions: resolveRecipient of an unknown local address and of another domain', async () => {
  assert.deepEqual(await fx.core.resolveRecipient(`nobody@${DOMAIN}`), { kind: 'unknown' });
  assert.deepEqual(await fx.core.resolveRecipient(`someone@AUTRE.mssante.test`), { kind: 'remote', domain: 'autre.mssante.test' });
  assert.deepEqual(await fx.core.maySendAs(fx.users.owner, `someone@autre.mssante.test`), { ok: false, reason: 'someone@autre.mssante.test is not a mailbox of this operator' });
});

// ---- ACL changes ------------------------------------------------------------------------------
// Each case runs its steps, in order, on a fresh fixture; a step is an operation and either the
// error it must raise or the decisions expected right after it (`rows`: cells as in DECISIONS).

type AclOp = { op: 'grant'; mailbox: MailboxKey | string; login: ActorKey | string; rights: string[] };
interface AclStep {
  does: AclOp;
  error?: RegExp;
  rows?: Partial<Record<ActorKey, Partial<Record<MailboxKey, Row>>>>;
}

const loginOf = (f: Fixture, l: string) => (l in f.users ? f.users[l as ActorKey].login : l);
const addressIn = (m: string) => (m in FIXTURE_MAILBOXES ? addressOf(m as MailboxKey) : m);

const ACL_CHANGES: Record<string, AclStep[]> = {
  'give, change (rights are replaced, not added), then remove a delegation': [
    { does: { op: 'grant', mailbox: 'per', login: 'stranger', rights: ['read'] }, rows: { stranger: { per: r(['read'], 'refused', 'readable', 'lrs') } } },
    { does: { op: 'grant', mailbox: 'per', login: 'stranger', rights: ['send'] }, rows: { stranger: { per: r(['send'], 'on-behalf', 'accessible', '') } } },
    { does: { op: 'grant', mailbox: 'per', login: 'stranger', rights: ['send', 'manage', 'send'] }, rows: { stranger: { per: r(['manage', 'send'], 'on-behalf', 'readable', FULL) } } },
    { does: { op: 'grant', mailbox: 'per', login: 'stranger', rights: [] }, rows: { stranger: { per: none('refused') } } },
    // Removing what is not there is not an error.
    { does: { op: 'grant', mailbox: 'per', login: 'stranger', rights: [] }, rows: { stranger: { per: none('refused') } } },
  ],
  'removing a delegate leaves the owner and the other delegates as they were': [
    {
      does: { op: 'grant', mailbox: 'per', login: 'reader', rights: [] },
      rows: { reader: { per: none('refused') }, owner: { per: DECISIONS.owner.per }, sender: { per: DECISIONS.sender.per }, manager: { per: DECISIONS.manager.per } },
    },
  ],
  // IMAP SETACL refuses it too ("the owner's rights cannot be changed"); a stored grant to the
  // owner would be listed a second time by GETACL.
  'the owner’s rights cannot be changed': [
    { does: { op: 'grant', mailbox: 'per', login: 'owner', rights: ['read'] }, error: /owner/, rows: { owner: { per: DECISIONS.owner.per } } },
    // Removing clears a stray grant to the owner, if any: the owner keeps every right.
    { does: { op: 'grant', mailbox: 'per', login: 'owner', rights: [] }, rows: { owner: { per: DECISIONS.owner.per } } },
  ],
  'unknown right, login or mailbox: refused, nothing changed': [
    { does: { op: 'grant', mailbox: 'per', login: 'stranger', rights: ['read', 'admin'] }, error: /unknown right admin: use read, send, manage/, rows: { stranger: { per: none('refused') } } },
    { does: { op: 'grant', mailbox: 'per', login: 'personne', rights: ['read'] }, error: /no user personne/ },
    { does: { op: 'grant', mailbox: `nobody@${DOMAIN}`, login: 'stranger', rights: ['read'] }, error: /no mailbox nobody@/ },
  ],
  // A deleted address is never reused nor read again: no grant is given on it.
  'a grant on a deleted mailbox is refused': [
    { does: { op: 'grant', mailbox: 'per-deleted', login: 'stranger', rights: ['read', 'send'] }, error: /is deleted/, rows: { stranger: { 'per-deleted': none('unknown') } } },
  ],
  // An application account is never a delegate (docs/authentication.md).
  'a grant to the application account is refused': [
    { does: { op: 'grant', mailbox: 'per', login: 'app', rights: ['read', 'send', 'manage'] }, error: /application account/, rows: { app: { per: none('refused') } } },
  ],
};

for (const [title, steps] of Object.entries(ACL_CHANGES)) {
  test(`ACL changes: ${title}`, async () => {
    const t = tempDir('caducee-acl-');
    const f = await buildFixture(t.dir);
    try {
      for (const [i, step] of steps.entries()) {
        const what = `step ${i + 1} (${step.does.op} ${step.does.mailbox} ${step.does.login} [${step.does.rights}])`;
        const run = () => f.core.grant(addressIn(step.does.mailbox), loginOf(f, step.does.login), step.does.rights as GrantRight[]);
        if (step.error) await assert.rejects(run, (e: unknown) => e instanceof CoreError && step.error!.test(e.message), `${what}: should fail with ${step.error}`);
        else await run();
        for (const [actor, cells] of Object.entries(step.rows ?? {}) as [ActorKey, Partial<Record<MailboxKey, Row>>][]) {
          for (const [mb, row] of Object.entries(cells) as [MailboxKey, Row][]) {
            const name = `${what}: ${actor} × ${mb}`;
            const user = f.users[actor];
            const mailbox = f.mailboxes[mb];
            assert.deepEqual(sorted(await f.core.rightsOn(user, mailbox)), sorted(row.rights), `${name}: rightsOn`);
            const d = await f.core.maySendAs(user, mailbox.address);
            if (row.send === 'self' || row.send === 'on-behalf') assert.ok(d.ok && d.onBehalf === (row.send === 'on-behalf'), `${name}: maySendAs ${row.send}, got ${JSON.stringify(d)}`);
            else assert.ok(!d.ok && SEND_REFUSAL[row.send].test(d.reason), `${name}: maySendAs ${row.send}, got ${JSON.stringify(d)}`);
            const listed = (await f.core.readableMailboxes(user)).some((a) => a.mailbox.id === mailbox.id)
              ? 'readable'
              : (await f.core.accessibleMailboxes(user)).some((a) => a.mailbox.id === mailbox.id)
                ? 'accessible'
                : 'none';
            assert.equal(listed, row.listed, `${name}: listed`);
            assert.equal(await f.core.imapRights(user, mailbox), row.acl, `${name}: imapRights`);
          }
        }
      }
    } finally {
      await f.close();
      t.cleanup();
    }
  });
}
