// The store contract (issue 12, test 1): one suite, run on every engine (test/store/sqlite.test.ts,
// test/store/postgres.test.ts). It speaks to the engine through the Store interface only — no SQL,
// no engine internals — and asserts what callers rely on: UIDs, modseqs and UIDNEXT, flags,
// expunge history, copy/move mappings, what deliver() commits together or not at all, the queue,
// accounts and credentials, claims that two callers never both win, and so on.
//
// Every test area opens its own store object; the engine's file decides whether it is a fresh
// database (SQLite: a new file per area) or a new connection to the run's one database
// (PostgreSQL: another "node"). Tests therefore assert exactly only on rows they created themselves
// (their own mailboxes, users, blob ids), and the queue tests first end every queued item.
// The last test checks that every method of the Store interface (read from src/store/types.ts)
// exists on the store and was called by this suite.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it, type TestContext } from 'node:test';
import pino from 'pino';
import { fileURLToPath } from 'node:url';
import { FolderSnapshots } from '../../src/imap/folder-snapshots.js';
import { urlAuthToken, urlAuthTokenMatches } from '../../src/imap/urlauth-token.js';
import { HEADER_INDEX_VERSION, headerIndexRow, indexedColumn, indexNeedle } from '../../src/mail/header-index.js';
import { analyzeMessage } from '../../src/mime/index.js';
import type { Mailbox, QueueItem, Structure, User } from '../../src/model/index.js';
import { IdempotencyKeyTakenError, StoreConflictError } from '../../src/store/errors.js';
import { DailyRecipientLimitError, KeywordAlreadySetError, type DeliveryRequest, type IncomingReport, type Store } from '../../src/store/types.js';
import { KeyRing } from '../../src/store/keyring.js';
import { SEALED_COLUMN_PLACES, SEALED_COLUMNS, type RowKey, type SealedColumn } from '../../src/store/sealed-rows.js';
import { isSealedValue, SealedValueError, ValueSealer, valueKeyId } from '../../src/store/value-seal.js';

export interface OpenedStore {
  store: Store;
  /** Releases the store and whatever the engine's file made for it (a directory, a schema). */
  close(): Promise<void>;
  /**
   * Another store object on the same database (another process or node, or the operator
   * restarted with another keyring), with its own sealer; released by close().
   */
  reopen(opts: { sealer?: ValueSealer }): Promise<Store>;
  /**
   * The stored value of `table`.`column` in the row whose `key` column is `row`, as the engine
   * returns it (what is on disk), and its replacement: the engine's SQL, for the tests of what
   * encryption at rest stores (docs/encryption.md, "Values in rows").
   */
  raw: {
    read(table: string, column: string, key: string, row: string | number): Promise<Buffer | string | null>;
    write(table: string, column: string, key: string, row: string | number, v: Buffer | string): Promise<void>;
  };
}
export interface OpenOptions {
  /** Seals row values (encryption at rest on). */
  sealer?: ValueSealer;
  /** A database (or schema) of the area's own: its tests count every row of it. */
  isolated?: boolean;
}
export type OpenStore = (opts?: OpenOptions) => Promise<OpenedStore | { skip: string }>;

/** The method names of the Store interface, read from src/store/types.ts (its `extends` list, recursively). */
export function storeInterfaceMethods(): string[] {
  const src = readFileSync(fileURLToPath(new URL('../../src/store/types.ts', import.meta.url)), 'utf8');
  const methods = new Set<string>();
  const visit = (name: string) => {
    const m = new RegExp(`^export interface ${name}\\b(?:<[^>]*>)?(?:\\s+extends\\s+([^{]+))?\\s*\\{\\n([\\s\\S]*?)^\\}`, 'm').exec(src);
    if (!m) throw new Error(`interface ${name} not found in src/store/types.ts`);
    for (const parent of (m[1] ?? '').split(',').map((p) => p.trim()).filter(Boolean)) visit(parent.replace(/<.*$/, ''));
    for (const line of m[2].split('\n')) {
      const sig = /^ {2}(\w+)\s*(?:<[^>]*>)?\(/.exec(line);
      if (sig) methods.add(sig[1]);
    }
  };
  visit('Store');
  return [...methods].sort();
}

export function storeContract(engine: string, open: OpenStore): void {
  /** Methods the suite called, through the Proxy every store is wrapped in. */
  const called = new Set<string>();
  const tracked = (s: Store): Store =>
    new Proxy(s, {
      get(target, prop) {
        const v = Reflect.get(target, prop, target);
        if (typeof v !== 'function' || typeof prop !== 'string') return v;
        return (...args: unknown[]) => {
          called.add(prop);
          return v.apply(target, args);
        };
      },
    });

  let seq = 0;
  const next = () => ++seq;
  const blob = (tag = '') => createHash('sha256').update(`${engine} blob ${next()} ${tag}`).digest('hex');

  type Area = (title: string, fn: (s: Store, t: TestContext, env: OpenedStore) => Promise<void>) => void;
  /** A describe block with its own fresh store; `t` registers a test that receives it. */
  function area(name: string, body: (t: Area) => void, opts?: OpenOptions) {
    describe(`${engine} store contract: ${name}`, () => {
      let env: OpenedStore | { skip: string } | undefined;
      before(async () => {
        const e = await open(opts);
        env = 'skip' in e ? e : { ...e, store: tracked(e.store) };
      });
      after(async () => {
        if (env && 'store' in env) await env.close();
      });
      body((title, fn) =>
        it(title, async (t) => {
          if (!env) throw new Error(`${engine}: the store did not open`);
          if ('skip' in env) return t.skip(env.skip);
          await fn(env.store, t, env);
        }),
      );
    });
  }

  // ---- fixtures (through the interface) -------------------------------------------------------
  const siret = () => String(13000000000000 + next());
  async function structure(s: Store, name = 'Centre hospitalier'): Promise<Structure> {
    return s.createStructure({ idType: 'SIRET', idValue: siret(), name });
  }
  async function mailbox(s: Store, o: { structureId?: number | null; type?: Mailbox['type']; ownerUserId?: number | null; local?: string } = {}): Promise<Mailbox> {
    const n = next();
    return s.createMailbox({
      address: `${o.local ?? 'secretariat'}.${n}@hopital-${engine.toLowerCase()}.mssante.test`,
      type: o.type ?? 'ORG',
      displayName: `Secrétariat ${n}`,
      ownerUserId: o.ownerUserId ?? null,
      practitionerId: null,
      structureId: o.structureId === undefined ? (await structure(s)).id : o.structureId,
      listeRouge: false,
    });
  }
  async function user(s: Store, login?: string): Promise<User> {
    const n = next();
    return s.createUser({ login: login ?? `user${n}`, displayName: `Utilisateur ${n}`, practitionerId: null, passwordHash: null });
  }
  async function inbox(s: Store, mailboxId: number) {
    const f = await s.getFolder(mailboxId, 'INBOX');
    assert.ok(f, 'every mailbox has an INBOX');
    return f;
  }
  const local = (mailboxIds: number[], extra: Partial<DeliveryRequest> = {}): DeliveryRequest => ({
    blobId: blob(),
    size: 1234,
    internalDate: new Date(),
    envelopeFrom: 'dr.dupont@clinique.mssante.test',
    localMailboxIds: mailboxIds,
    remote: [],
    ...extra,
  });
  const remote = (recipient: string) => ({ recipient, domain: recipient.split('@')[1], notify: null, orcpt: null });
  const append = (s: Store, folderId: number, o: { flags?: string[]; size?: number; date?: Date; blobId?: string } = {}) =>
    s.appendMessage(folderId, { blobId: o.blobId ?? blob(), size: o.size ?? 100, flags: o.flags ?? [], internalDate: o.date ?? new Date() });
  const sortNum = (a: number[]) => [...a].sort((x, y) => x - y);
  /**
   * Ends every queued item (as sent), so that a queue test starts from an empty queue even when
   * the engine's file hands every area the same database (earlier areas leave items queued).
   */
  async function drainQueue(s: Store) {
    const q = await s.listQueue({ status: 'queued' });
    if (q.length) await s.completeQueueItems({ sent: q.map((i) => i.id), failed: [], deferred: [], dsns: [] });
    assert.deepEqual(await s.listQueue({ status: 'queued' }), [], 'the queue drained');
  }

  // ---- accounts ------------------------------------------------------------------------------
  area('structures, practitioners, users', (t) => {
    t('structures: found by id type and value and by id, listed in creation order; a duplicate is a StoreConflictError', async (s) => {
      const v = siret();
      const a = await s.createStructure({ idType: 'FINESS', idValue: v, name: 'Clinique du Parc' });
      assert.ok(Number.isInteger(a.id) && a.id > 0);
      assert.deepEqual([a.idType, a.idValue, a.name], ['FINESS', v, 'Clinique du Parc']);
      assert.ok(!Number.isNaN(Date.parse(a.createdAt)), 'createdAt is an ISO instant');
      const b = await s.createStructure({ idType: 'SIRET', idValue: v, name: 'Same value, other type' });
      assert.notEqual(a.id, b.id);
      assert.deepEqual(await s.findStructure('FINESS', v), a);
      assert.deepEqual(await s.findStructure('SIRET', v), b);
      assert.deepEqual(await s.getStructure(b.id), b);
      assert.equal(await s.findStructure('FINESS', siret()), undefined);
      assert.equal(await s.getStructure(b.id + 10_000), undefined);
      const listed = (await s.listStructures()).filter((x) => x.id === a.id || x.id === b.id);
      assert.deepEqual(listed, [a, b]);
      await assert.rejects(s.createStructure({ idType: 'FINESS', idValue: v, name: 'Duplicate' }), StoreConflictError);
      assert.deepEqual(await s.findStructure('FINESS', v), a, 'the duplicate changed nothing');
    });

    t('practitioners: found by RPPS and id, listed; a second RPPS is a StoreConflictError', async (s) => {
      const rpps = String(10000000000 + next());
      const p = await s.createPractitioner({ rpps, familyName: 'Martin', givenName: 'Claire', civility: 'DR', professionCode: '10' });
      assert.deepEqual([p.rpps, p.familyName, p.givenName, p.civility, p.professionCode], [rpps, 'Martin', 'Claire', 'DR', '10']);
      const q = await s.createPractitioner({ rpps: String(10000000000 + next()), familyName: 'Durand', givenName: 'Luc' });
      assert.deepEqual([q.civility, q.professionCode], [null, null], 'optional fields default to null');
      assert.deepEqual(await s.findPractitionerByRpps(rpps), p);
      assert.deepEqual(await s.getPractitioner(q.id), q);
      assert.equal(await s.findPractitionerByRpps('00000000000'), undefined);
      assert.equal(await s.getPractitioner(q.id + 10_000), undefined);
      assert.deepEqual((await s.listPractitioners()).filter((x) => x.id === p.id || x.id === q.id), [p, q]);
      await assert.rejects(s.createPractitioner({ rpps, familyName: 'X', givenName: 'Y' }), StoreConflictError);
    });

    t('users: login is case-insensitive (lookup and uniqueness); the password hash only through findUserByLogin', async (s) => {
      const p = await s.createPractitioner({ rpps: String(10000000000 + next()), familyName: 'Martin', givenName: 'Claire' });
      const login = `Claire.Martin${next()}`;
      const u = await s.createUser({ login, displayName: 'Dr Claire Martin', practitionerId: p.id, passwordHash: '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA' });
      assert.deepEqual({ ...u, id: 0, createdAt: '' }, { id: 0, login, displayName: 'Dr Claire Martin', practitionerId: p.id, structureId: null, state: 'active', createdAt: '' });
      assert.deepEqual(await s.getUser(u.id), u, 'getUser carries no password hash');
      const found = await s.findUserByLogin(login.toUpperCase());
      assert.equal(found?.id, u.id, 'found whatever the case');
      assert.equal(found?.passwordHash, '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA');
      assert.equal(await s.findUserByLogin(`${login}x`), undefined);
      await s.setUserPassword(u.id, '$argon2id$new');
      assert.equal((await s.findUserByLogin(login.toLowerCase()))?.passwordHash, '$argon2id$new');
      await assert.rejects(s.createUser({ login: login.toLowerCase(), displayName: 'Twin', practitionerId: null, passwordHash: null }), StoreConflictError);
      assert.deepEqual(await s.findUserByRpps(p.rpps), u);
      assert.equal(await s.findUserByRpps('99999999999'), undefined);
      const w = await user(s);
      assert.equal((await s.findUserByLogin(w.login))?.passwordHash, null);
      assert.deepEqual((await s.listUsers()).filter((x) => x.id === u.id || x.id === w.id), [u, w]);
      assert.equal(await s.getUser(w.id + 10_000), undefined);
    });

    t('applicationAccount: one account per structure, created on first use, the same after', async (s) => {
      const st = await structure(s, 'Laboratoire');
      const other = await structure(s, 'Pharmacie');
      const app = await s.applicationAccount(st);
      assert.deepEqual([app.structureId, app.practitionerId, app.state], [st.id, null, 'active']);
      assert.deepEqual(await s.applicationAccount(st), app);
      const app2 = await s.applicationAccount(other);
      assert.notEqual(app2.id, app.id);
      assert.equal(app2.structureId, other.id);
      assert.deepEqual(await s.getUser(app.id), app);
      assert.equal((await s.listUsers()).filter((x) => x.structureId === st.id).length, 1);
    });

    t('preferences: undefined until set, then replaced', async (s) => {
      const u = await user(s);
      assert.equal(await s.getPreferences(u.id), undefined);
      await s.setPreferences(u.id, '{"signature":"Dr Martin"}');
      assert.equal(await s.getPreferences(u.id), '{"signature":"Dr Martin"}');
      await s.setPreferences(u.id, '{"signature":"Dr C. Martin","density":"compact"}');
      assert.equal(await s.getPreferences(u.id), '{"signature":"Dr C. Martin","density":"compact"}');
      assert.equal(await s.getPreferences((await user(s)).id), undefined, 'per user');
    });
  });

  // ---- credentials ---------------------------------------------------------------------------
  area('credentials', (t) => {
    t('app passwords: newest first, found unrevoked by owner and digest, touched, revoked once', async (s) => {
      const u = await user(s);
      const v = await user(s);
      const a = await s.createAppPassword({ userId: u.id, label: 'Thunderbird', secretHash: 'h-a' });
      const b = await s.createAppPassword({ userId: u.id, label: 'iPhone', secretHash: 'h-b' });
      assert.deepEqual([a.userId, a.label, a.lastUsedAt, a.lastUsedFrom, a.revokedAt], [u.id, 'Thunderbird', null, null, null]);
      assert.deepEqual((await s.listAppPasswords(u.id)).map((x) => x.id), [b.id, a.id]);
      assert.deepEqual(await s.listAppPasswords(v.id), []);
      assert.deepEqual(await s.findAppPassword(u.id, 'h-a'), a);
      assert.equal(await s.findAppPassword(v.id, 'h-a'), undefined, "another user's digest");
      await s.touchAppPassword(a.id, '2026-12-07T10:00:00.000Z', '192.0.2.10');
      const touched = (await s.findAppPassword(u.id, 'h-a'))!;
      assert.deepEqual([touched.lastUsedAt, touched.lastUsedFrom], ['2026-12-07T10:00:00.000Z', '192.0.2.10']);
      assert.equal(await s.revokeAppPassword(v.id, a.id), false, 'not the owner');
      assert.equal(await s.revokeAppPassword(u.id, a.id), true);
      assert.equal(await s.revokeAppPassword(u.id, a.id), false, 'revoked already');
      assert.equal(await s.findAppPassword(u.id, 'h-a'), undefined);
      const listed = await s.listAppPasswords(u.id);
      assert.equal(listed.length, 2, 'revoked ones stay listed');
      assert.ok(listed.find((x) => x.id === a.id)!.revokedAt);
      assert.equal(listed.find((x) => x.id === b.id)!.revokedAt, null);
    });

    t('TOTP: pending, confirmed at a step, steps used once and in order (RFC 6238 §5.2), recovery codes once, deleted', async (s) => {
      const u = await user(s);
      assert.equal(await s.getTotp(u.id), undefined);
      await s.setPendingTotp(u.id, 'SECRETONE');
      await s.setPendingTotp(u.id, 'SECRETTWO');
      assert.deepEqual(await s.getTotp(u.id), { userId: u.id, secret: 'SECRETTWO', confirmedAt: null, lastStep: 0 });
      assert.equal(await s.useTotpStep(u.id, 5), false, 'not confirmed yet');
      await s.confirmTotp(u.id, 1000, ['rc-1', 'rc-2']);
      const f = (await s.getTotp(u.id))!;
      assert.ok(f.confirmedAt && !Number.isNaN(Date.parse(f.confirmedAt)));
      assert.equal(f.lastStep, 1000);
      assert.equal(await s.useTotpStep(u.id, 1000), false, 'the confirming step is used');
      assert.equal(await s.useTotpStep(u.id, 1001), true);
      assert.equal(await s.useTotpStep(u.id, 1001), false, 'replay');
      assert.equal(await s.useTotpStep(u.id, 999), false, 'an earlier step');
      assert.equal((await s.getTotp(u.id))!.lastStep, 1001);
      await assert.rejects(s.setPendingTotp(u.id, 'OTHER'), 'a confirmed factor is not replaced by an enrolment');
      await assert.rejects(s.confirmTotp(u.id, 2000, []), 'nothing pending to confirm');
      assert.equal(await s.remainingRecoveryCodes(u.id), 2);
      assert.equal(await s.useRecoveryCode(u.id, 'rc-1'), true);
      assert.equal(await s.useRecoveryCode(u.id, 'rc-1'), false, 'once');
      assert.equal(await s.useRecoveryCode(u.id, 'rc-unknown'), false);
      const v = await user(s);
      assert.equal(await s.useRecoveryCode(v.id, 'rc-2'), false, "another user's code");
      assert.equal(await s.remainingRecoveryCodes(u.id), 1);
      await s.deleteTotp(u.id);
      assert.equal(await s.getTotp(u.id), undefined);
      assert.equal(await s.remainingRecoveryCodes(u.id), 0);
      assert.equal(await s.useTotpStep(u.id, 5000), false);
      await s.setPendingTotp(u.id, 'AGAIN');
      await s.confirmTotp(u.id, 3000, ['rc-3']);
      assert.equal(await s.remainingRecoveryCodes(u.id), 1, 'the new codes replace the old ones');
    });

    t('authentication audit: most recent first, limited, fields kept', async (s) => {
      const entries = [
        { at: '2026-12-07T08:00:00.000Z', login: 'claire.martin', userId: null, protocol: 'imap', method: 'password', remote: '192.0.2.1', success: false, reason: 'bad password', actor: null },
        { at: '2026-12-07T08:00:01.000Z', login: 'claire.martin', userId: 1, protocol: 'smtp', method: 'app-password', remote: '192.0.2.1', success: true, reason: null, actor: null },
        { at: '2026-12-07T08:00:02.000Z', login: 'claire.martin', userId: 1, protocol: 'http', method: 'app-password-created', remote: null, success: true, reason: null, actor: 'admin' },
      ];
      for (const e of entries) await s.recordAuth(e);
      assert.deepEqual(await s.listAuthAudit(2), [entries[2], entries[1]]);
      assert.deepEqual((await s.listAuthAudit(10)).slice(0, 3), [entries[2], entries[1], entries[0]]);
    });
  });

  // ---- web sessions --------------------------------------------------------------------------
  area('web sessions', (t) => {
    t('created, found by digest, touched, listed live, revoked one by one or all but one; live full sessions counted', async (s) => {
      const u = await user(s);
      const v = await user(s);
      const now = Date.now();
      const base = { userId: u.id, method: 'password', csrfToken: 'csrf', remote: '192.0.2.1', userAgent: 'Firefox' };
      const liveBefore = await s.countLiveHttpSessions(now);
      const s1 = await s.createHttpSession({ ...base, tokenHash: `t1-${engine}`, stage: 'full', createdAt: now, lastSeenAt: now, expiresAt: now + 3_600_000 });
      const s2 = await s.createHttpSession({ ...base, tokenHash: `t2-${engine}`, stage: 'second-factor', createdAt: now, lastSeenAt: now - 10, expiresAt: now + 3_600_000, remote: null, userAgent: null });
      const s3 = await s.createHttpSession({ ...base, tokenHash: `t3-${engine}`, stage: 'full', createdAt: now - 7_200_000, lastSeenAt: now - 7_200_000, expiresAt: now - 1 });
      const s4 = await s.createHttpSession({ ...base, userId: v.id, tokenHash: `t4-${engine}`, stage: 'full', createdAt: now, lastSeenAt: now, expiresAt: now + 60_000 });
      assert.deepEqual(s1, { ...base, id: s1.id, stage: 'full', createdAt: now, lastSeenAt: now, expiresAt: now + 3_600_000, revokedAt: null });
      assert.deepEqual([s2.remote, s2.userAgent], [null, null]);
      assert.deepEqual(await s.findHttpSession(`t1-${engine}`), s1);
      assert.equal(await s.findHttpSession('unknown'), undefined);
      assert.equal(await s.countLiveHttpSessions(now), liveBefore + 2, 's1 and s4: full, unexpired (s2 is pending, s3 expired)');
      await s.touchHttpSession(s1.id, now + 500);
      assert.equal((await s.findHttpSession(`t1-${engine}`))!.lastSeenAt, now + 500);
      assert.deepEqual((await s.listHttpSessions(u.id, now)).map((x) => x.id), [s1.id, s2.id], 'live ones, last seen first');
      assert.equal(await s.revokeHttpSession(v.id, s1.id), false, 'not the owner');
      assert.equal(await s.revokeHttpSession(u.id, s1.id), true);
      assert.equal(await s.revokeHttpSession(u.id, s1.id), false);
      assert.equal(await s.findHttpSession(`t1-${engine}`), undefined);
      assert.equal(await s.countLiveHttpSessions(now), liveBefore + 1);
      assert.equal(await s.revokeHttpSessions(u.id, s2.id), 1, 'the expired s3 (s1 is revoked, s2 kept)');
      assert.deepEqual((await s.listHttpSessions(u.id, now)).map((x) => x.id), [s2.id]);
      assert.equal(await s.revokeHttpSessions(u.id), 1);
      assert.deepEqual(await s.listHttpSessions(u.id, now), []);
      assert.deepEqual((await s.listHttpSessions(v.id, now)).map((x) => x.id), [s4.id], "another user's sessions untouched");
      assert.equal(s3.expiresAt, now - 1);
    });
  });

  // ---- mailboxes and grants ------------------------------------------------------------------
  area('mailboxes and grants', (t) => {
    t('createMailbox: the mailbox and its default folders; the address is unique whatever its case and found case-insensitively', async (s) => {
      const st = await structure(s);
      const owner = await user(s);
      const address = `Claire.Martin${next()}@Hopital.mssante.test`;
      const m = await s.createMailbox({ address, type: 'PER', displayName: 'Dr Claire Martin', ownerUserId: owner.id, practitionerId: null, structureId: st.id, listeRouge: true, service: 'Cardiologie' });
      assert.deepEqual({ ...m, id: 0, createdAt: '', updatedAt: '' }, {
        id: 0, address, type: 'PER', displayName: 'Dr Claire Martin', ownerUserId: owner.id, practitionerId: null, structureId: st.id,
        state: 'active', listeRouge: true, service: 'Cardiologie', description: null, createdAt: '', updatedAt: '',
      });
      const folders = await s.listFolders(m.id);
      assert.deepEqual(folders.map((f) => [f.name, f.specialUse, f.uidNext]), [
        ['INBOX', null, 1], ['Sent', '\\Sent', 1], ['Drafts', '\\Drafts', 1], ['Trash', '\\Trash', 1], ['Junk', '\\Junk', 1],
      ]);
      assert.ok(folders.every((f) => f.mailboxId === m.id && Number.isInteger(f.uidValidity) && f.uidValidity > 0));
      assert.deepEqual(await s.getMailbox(m.id), m);
      assert.deepEqual(await s.findMailboxByAddress(address.toLowerCase()), m);
      assert.equal(await s.findMailboxByAddress(`x${address}`), undefined);
      assert.equal(await s.getMailbox(m.id + 10_000), undefined);
      await assert.rejects(s.createMailbox({ address: address.toUpperCase(), type: 'ORG', displayName: 'Twin', ownerUserId: null, practitionerId: null, structureId: st.id, listeRouge: false }), StoreConflictError);
    });

    t('listMailboxes filters by owner, state, structure and type', async (s) => {
      const st = await structure(s);
      const owner = await user(s);
      const a = await mailbox(s, { structureId: st.id, type: 'PER', ownerUserId: owner.id });
      const b = await mailbox(s, { structureId: st.id, type: 'ORG' });
      const c = await mailbox(s, { type: 'APP' });
      await s.updateMailbox(b.id, { state: 'suspended' });
      const ids = async (f: Parameters<Store['listMailboxes']>[0]) => (await s.listMailboxes(f)).map((x) => x.id).filter((id) => [a.id, b.id, c.id].includes(id));
      assert.deepEqual(await ids(undefined), [a.id, b.id, c.id]);
      assert.deepEqual(await ids({ ownerUserId: owner.id }), [a.id]);
      assert.deepEqual(await ids({ structureId: st.id }), [a.id, b.id]);
      assert.deepEqual(await ids({ state: 'suspended' }), [b.id]);
      assert.deepEqual(await ids({ state: 'active', structureId: st.id }), [a.id]);
      assert.deepEqual(await ids({ type: 'APP' }), [c.id]);
      assert.ok((await s.listMailboxes({ type: 'APP' })).every((x) => x.type === 'APP'));
    });

    t('updateMailbox: changes the given fields only; an unknown mailbox rejects', async (s) => {
      const m = await mailbox(s);
      const owner = await user(s);
      const u = await s.updateMailbox(m.id, { displayName: 'Accueil', listeRouge: true, service: 'Urgences', description: 'Accueil des urgences', ownerUserId: owner.id });
      assert.deepEqual({ ...u, updatedAt: '' }, { ...m, displayName: 'Accueil', listeRouge: true, service: 'Urgences', description: 'Accueil des urgences', ownerUserId: owner.id, updatedAt: '' });
      assert.ok(u.updatedAt >= m.updatedAt);
      assert.deepEqual(await s.getMailbox(m.id), u);
      const v = await s.updateMailbox(m.id, { service: null, state: 'suspended' });
      assert.deepEqual([v.service, v.description, v.state, v.listeRouge], [null, 'Accueil des urgences', 'suspended', true]);
      await assert.rejects(s.updateMailbox(m.id + 10_000, { displayName: 'x' }));
    });

    t('a deleted mailbox loses folders, messages and grants in one step; its address stays taken', async (s) => {
      const m = await mailbox(s);
      const u = await user(s);
      const [copy] = await s.deliver(local([m.id]));
      const b = (await s.getMessage(copy.messageId))!.blobId;
      await s.setGrant(m.id, u.id, ['read']);
      await s.setSubscribed(m.id, 'INBOX', true);
      const d = await s.updateMailbox(m.id, { state: 'deleted' });
      assert.equal(d.state, 'deleted');
      assert.deepEqual(await s.listFolders(m.id), []);
      assert.equal(await s.getMessage(copy.messageId), undefined);
      assert.deepEqual(await s.listGrants({ mailboxId: m.id }), []);
      assert.deepEqual(await s.listSubscriptions(m.id), []);
      assert.deepEqual(await s.mailboxUsage(m.id), { bytes: 0, messages: 0 });
      assert.equal(await s.isBlobReferenced(b), false);
      assert.ok((await s.blobGarbage(100_000)).includes(b), "the message's file is a removal candidate");
      assert.equal((await s.findMailboxByAddress(m.address))?.state, 'deleted');
      await assert.rejects(s.createMailbox({ address: m.address, type: 'ORG', displayName: 'Reuse', ownerUserId: null, practitionerId: null, structureId: m.structureId, listeRouge: false }), StoreConflictError);
    });

    t('grants: set (rights deduplicated), replaced in place, listed by mailbox and user, removed once', async (s) => {
      const m = await mailbox(s);
      const m2 = await mailbox(s);
      const u = await user(s);
      const v = await user(s);
      const g = await s.setGrant(m.id, u.id, ['send', 'read', 'read']);
      assert.deepEqual([g.mailboxId, g.userId, [...g.rights].sort()], [m.id, u.id, ['read', 'send']]);
      const g2 = await s.setGrant(m.id, u.id, ['manage']);
      assert.deepEqual([g2.id, g2.rights], [g.id, ['manage']], 'one grant per (mailbox, user)');
      const h = await s.setGrant(m.id, v.id, ['read']);
      const k = await s.setGrant(m2.id, u.id, ['read']);
      assert.deepEqual((await s.listGrants({ mailboxId: m.id })).map((x) => x.id), [g.id, h.id]);
      assert.deepEqual((await s.listGrants({ userId: u.id })).map((x) => x.id), [g.id, k.id]);
      assert.deepEqual((await s.listGrants({ mailboxId: m.id, userId: v.id })).map((x) => x.id), [h.id]);
      assert.deepEqual((await s.listGrants()).map((x) => x.id).filter((id) => [g.id, h.id, k.id].includes(id)), [g.id, h.id, k.id]);
      assert.equal(await s.removeGrant(m.id, u.id), true);
      assert.equal(await s.removeGrant(m.id, u.id), false);
      assert.deepEqual((await s.listGrants({ mailboxId: m.id })).map((x) => x.id), [h.id]);
    });
  });

  // ---- folders and messages ------------------------------------------------------------------
  area('folders and messages', (t) => {
    t('appendMessage: UIDs from 1, strictly increasing modseqs, UIDNEXT and HIGHESTMODSEQ follow; flags normalised, \\Recent never stored', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      const start = await s.folderModseq(f.id);
      const d1 = new Date('2026-12-01T09:30:00.123Z');
      const a = await s.appendMessage(f.id, { blobId: blob(), size: 10, flags: ['\\Seen', '\\Recent', 'Projet', 'projet'], internalDate: d1 });
      const b = await append(s, f.id, { size: 20 });
      const c = await append(s, f.id, { size: 30, flags: ['\\Flagged'] });
      assert.deepEqual([a.uid, b.uid, c.uid], [1, 2, 3]);
      assert.ok(start < a.modseq && a.modseq < b.modseq && b.modseq < c.modseq);
      assert.equal(await s.folderModseq(f.id), c.modseq);
      assert.equal((await s.getFolderById(f.id))!.uidNext, 4);
      const msgs = await s.listMessages(f.id);
      assert.deepEqual(msgs.map((x) => x.uid), [1, 2, 3]);
      assert.equal(msgs[0].internalDate, '2026-12-01T09:30:00.123Z', 'the internal date as an ISO instant, to the millisecond');
      assert.equal(msgs[0].folderId, f.id);
      assert.deepEqual(msgs[0].flags.map((x) => x.toLowerCase()).sort(), ['\\seen', 'projet'], 'case-insensitive duplicates collapse; \\Recent is not a stored flag');
      assert.deepEqual(await s.getMessage(msgs[1].id), msgs[1]);
      assert.deepEqual(await s.getMessageByUid(f.id, 3), msgs[2]);
      assert.equal(await s.getMessageByUid(f.id, 4), undefined);
      assert.equal(await s.getMessage(msgs[2].id + 10_000), undefined);
      await assert.rejects(append(s, f.id + 10_000), 'an unknown folder rejects');
    });

    t('folderStatus, openFolder, folderMessages and claimRecent: counts, first unseen, \\Recent claimed once', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      await append(s, f.id, { size: 10, flags: ['\\Seen'] });
      await append(s, f.id, { size: 20 });
      const last = await append(s, f.id, { size: 30, flags: ['\\Seen', '\\Deleted'] });
      const st = await s.folderStatus(f.id);
      assert.deepEqual(st, { messages: 3, recent: 3, unseen: 1, deleted: 1, size: 60, uidNext: 4, uidValidity: f.uidValidity, highestModseq: last.modseq, firstUnseenSeq: 2 });
      const opened = await s.openFolder(f.id, { clearRecent: true });
      assert.deepEqual([opened.uidNext, opened.highestModseq], [4, last.modseq]);
      assert.deepEqual(opened.messages.map((x) => [x.uid, x.size, x.recent]), [[1, 10, true], [2, 20, true], [3, 30, true]]);
      assert.deepEqual(opened.messages[2].flags.slice().sort(), ['\\Deleted', '\\Seen']);
      assert.equal((await s.folderStatus(f.id)).recent, 0, 'claimed by the session that opened with clearRecent');
      assert.deepEqual((await s.folderMessages(f.id)).map((x) => x.recent), [false, false, false]);
      await append(s, f.id);
      await append(s, f.id);
      const fm = await s.folderMessages(f.id);
      assert.deepEqual(fm.map((x) => [x.uid, x.recent]), [[1, false], [2, false], [3, false], [4, true], [5, true]]);
      assert.deepEqual(fm[0], { ...opened.messages[0], recent: false });
      assert.deepEqual(sortNum(await s.claimRecent(f.id, [5, 1, 99])), [5]);
      assert.deepEqual(await s.claimRecent(f.id, [5]), [], 'once');
      assert.deepEqual((await s.folderMessages(f.id, { clearRecent: true })).map((x) => x.recent), [false, false, false, true, false]);
      assert.deepEqual((await s.openFolder(f.id)).messages.map((x) => x.recent), [false, false, false, false, false]);
      const empty = await s.folderStatus((await s.getFolder(m.id, 'Drafts'))!.id);
      assert.deepEqual([empty.messages, empty.unseen, empty.size, empty.uidNext, empty.firstUnseenSeq], [0, 0, 0, 1, null]);
      assert.equal(await s.countMessagesUpTo(f.id, 3), 3);
      assert.equal(await s.countMessagesUpTo(f.id, 0), 0);
      assert.deepEqual(await s.folderUids(f.id), [1, 2, 3, 4, 5]);
      await assert.rejects(s.folderStatus(f.id + 10_000));
    });

    t('appendMessages (RFC 3502 MULTIAPPEND): consecutive UIDs, one modseq, flags normalised; all or none', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      await append(s, f.id);
      const before = await s.folderStatus(f.id);
      const d = new Date('2026-12-07T16:00:00.000Z');
      const ids = [blob(), blob(), blob()];
      const r = await s.appendMessages(f.id, ids.map((blobId, i) => ({ blobId, size: 10 + i, flags: i === 1 ? ['\\Seen', '\\Recent', 'Lot', 'lot'] : [], internalDate: d })));
      assert.deepEqual(r.uids, [2, 3, 4]);
      assert.ok(r.modseq > before.highestModseq);
      const st = await s.folderStatus(f.id);
      assert.deepEqual([st.messages, st.uidNext, st.highestModseq, st.recent], [4, 5, r.modseq, 4]);
      const msgs = await s.folderMessages(f.id);
      assert.deepEqual(msgs.slice(1).map((x) => [x.uid, x.blobId, x.size, x.internalDate, x.modseq]), ids.map((id, i) => [2 + i, id, 10 + i, '2026-12-07T16:00:00.000Z', r.modseq]));
      assert.deepEqual(msgs[2].flags.map((x) => x.toLowerCase()).sort(), ['\\seen', 'lot']);
      assert.deepEqual((await s.changedSince(f.id, before.highestModseq)).map((x) => x.uid), [2, 3, 4], 'seen by other sessions as new');
      await assert.rejects(s.appendMessages(f.id + 10_000, [{ blobId: blob(), size: 1, flags: [], internalDate: d }]), 'an unknown folder rejects');
      assert.deepEqual(await s.folderStatus(f.id), st, 'nothing changed');
    });

    t('appendMessages with the analyses and pins (issue 15): analyses recorded and pins dropped in the same transaction, the rows marked indexed; nothing of either when it fails', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      const analysis = (n: number) => ({ info: JSON.stringify({ version: 0, n }), searchHeaders: { version: 1, columns: { h_subject: Buffer.from(`objet ${n}`), h_from: null } } });
      const ids = [blob(), blob(), blob()];
      // The second is recorded already (analysis null): left as it is.
      await s.setBlobAnalyses([{ blobId: ids[1], info: '{"kept":true}', searchVersion: 1, searchColumns: { h_subject: Buffer.from('gardé') } }]);
      await s.appendMessages(f.id, ids.map((blobId, i) => ({ blobId, size: 10, flags: [], internalDate: new Date(), analysis: i === 1 ? null : analysis(i) })));
      assert.deepEqual(await Promise.all(ids.map((id) => s.getBlobMeta(id))), [JSON.stringify({ version: 0, n: 0 }), '{"kept":true}', JSON.stringify({ version: 0, n: 2 })]);
      for (const id of ids) assert.equal(await s.hasSearchHeaders(id, 1), true);
      const unindexed = new Set(await s.blobsWithoutSearchHeaders(100_000));
      assert.deepEqual(ids.filter((id) => unindexed.has(id)), [], 'the messages are marked indexed');
      // A put's pin given with a message ends with the commit (here on a file no row references,
      // so that a removal claim shows whether it is still held), and stays when the batch fails.
      const other = blob('pin-released-by-append');
      const now = Date.now();
      assert.equal(await s.pinBlob(other, 'put-b', now, 600_000, 60_000), true);
      const failed = [blob(), blob()];
      await assert.rejects(s.appendMessages(f.id + 10_000, failed.map((blobId, i) => ({ blobId, size: 1, flags: [], internalDate: new Date(), analysis: analysis(10 + i), pin: i === 0 ? { blobId: other, token: 'put-b' } : null }))), 'an unknown folder rejects');
      for (const id of failed) {
        assert.equal(await s.getBlobMeta(id), undefined, 'no analysis left by the failed batch');
        assert.equal(await s.hasSearchHeaders(id, 1), false, 'no search row left by the failed batch');
      }
      assert.equal(await s.claimBlobRemoval(other, now + 1, 60_000), false, 'the pin stays when the batch fails');
      await s.appendMessages(f.id, [{ blobId: blob(), size: 1, flags: [], internalDate: new Date(), pin: { blobId: other, token: 'put-b' } }]);
      assert.equal(await s.claimBlobRemoval(other, now + 2, 60_000), true, 'the pin ended with the commit');
    });

    t('reopenFolder and FolderSnapshots (issue 15): a snapshot brought up to date equals the folder read whole, \\Recent claimed once', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      const other = await s.createFolder(m.id, `Autre ${next()}`);
      const snaps = new FolderSnapshots(1, 10_000);
      const folder = { id: f.id, mailboxId: m.id, uidValidity: f.uidValidity };
      // A seeded walk of appends, flag changes, expunges, copies in, claims and SELECT/EXAMINE.
      let seed = 15;
      const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
      const flagSets = [[], ['\\Seen'], ['\\Seen', '$Label1'], ['\\Deleted'], ['\\Flagged', 'Urgent']];
      const view = (msgs: { uid: number; flags: string[]; modseq: number; size: number; internalDate: string; blobId: string; recent: boolean }[]) =>
        msgs.map((x) => [x.uid, [...x.flags].sort().join(' '), x.modseq, x.size, x.internalDate, x.blobId, x.recent]);
      for (let step = 0; step < 60; step++) {
        const uids = await s.folderUids(f.id);
        const pick = () => uids.filter(() => rnd(3) === 0);
        const op = rnd(7);
        if (op <= 1) for (let k = rnd(4); k >= 0; k--) await append(s, f.id, { flags: flagSets[rnd(flagSets.length)], size: 10 + rnd(100) });
        else if (op === 2) await s.storeFlags(f.id, pick(), (['set', 'add', 'remove'] as const)[rnd(3)], flagSets[rnd(flagSets.length)]);
        else if (op === 3) await s.expunge(f.id, pick());
        else if (op === 4) {
          await append(s, other.id);
          await s.copyMessages(other.id, await s.folderUids(other.id), f.id, rnd(2) === 0);
        } else if (op === 5) await s.claimRecent(f.id, pick());
        const expected = await s.folderMessages(f.id); // \\Recent as the store has it: what the session must see
        const clear = rnd(2) === 0;
        const opened = await snaps.open(s, folder, clear);
        assert.deepEqual(view(opened.messages), view(expected), `step ${step}: the session's messages`);
        const st = await s.folderStatus(f.id);
        assert.deepEqual([opened.uidNext, opened.highestModseq], [st.uidNext, st.highestModseq], `step ${step}: UIDNEXT, HIGHESTMODSEQ`);
        const after = await s.folderMessages(f.id);
        assert.deepEqual(after.map((x) => x.recent), clear ? after.map(() => false) : expected.map((x) => x.recent), `step ${step}: \\Recent ${clear ? 'claimed' : 'kept'}`);
      }
      assert.ok(snaps.size > 0, 'the folder has a snapshot');
      // reopenFolder itself: nothing changed since the snapshot's modseq; the \\Recent rows from recentFrom.
      const o = await s.openFolder(f.id);
      const r = await s.reopenFolder(f.id, { modseq: o.highestModseq, recentFrom: o.recentFrom });
      assert.deepEqual([r.changed, r.expunged, r.uidNext, r.highestModseq], [[], [], o.uidNext, o.highestModseq]);
      await append(s, f.id, { flags: ['\\Seen'] });
      const r2 = await s.reopenFolder(f.id, { modseq: o.highestModseq, recentFrom: o.recentFrom }, { clearRecent: true });
      assert.deepEqual([r2.changed.map((x) => [x.uid, x.recent]), r2.recentUids, r2.recentFrom], [[[o.uidNext, true]], [o.uidNext], o.uidNext + 1]);
      assert.deepEqual((await s.reopenFolder(f.id, { modseq: o.highestModseq, recentFrom: o.recentFrom })).recentUids, [], 'claimed once');
      await assert.rejects(s.reopenFolder(f.id + 10_000, { modseq: 0, recentFrom: 1 }));
    });

    t('storeFlags: set/add/remove, one new modseq per change, unchanged messages reported with their modseq, UNCHANGEDSINCE (RFC 7162 §3.1.3)', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      const a = await append(s, f.id, { flags: ['\\Seen'] });
      const b = await append(s, f.id);
      const r1 = await s.storeFlags(f.id, [1, 2, 7], 'add', ['\\Seen']);
      assert.deepEqual(r1.modifiedUids, []);
      assert.deepEqual(r1.updated.map((u) => [u.uid, u.flags]), [[1, ['\\Seen']], [2, ['\\Seen']]], 'UID 7 does not exist');
      assert.equal(r1.updated[0].modseq, a.modseq, 'unchanged: its modseq stays');
      assert.ok(r1.updated[1].modseq > b.modseq);
      const top = await s.folderModseq(f.id);
      assert.equal(top, r1.updated[1].modseq);
      const same = await s.storeFlags(f.id, [1], 'add', ['\\seen']);
      assert.equal(same.updated[0].modseq, a.modseq);
      assert.equal(await s.folderModseq(f.id), top, 'no change, no new modseq');
      const r2 = await s.storeFlags(f.id, [1, 2], 'set', ['$Label1', '\\Answered']);
      assert.deepEqual(r2.updated.map((u) => [u.uid, [...u.flags].sort()]), [[1, ['$Label1', '\\Answered']], [2, ['$Label1', '\\Answered']]]);
      assert.ok(r2.updated.every((u) => u.modseq > top));
      const r3 = await s.storeFlags(f.id, [2], 'remove', ['$label1']);
      assert.deepEqual(r3.updated.map((u) => u.flags), [['\\Answered']], 'keywords compare case-insensitively');
      assert.deepEqual((await s.getMessageByUid(f.id, 2))!.flags, ['\\Answered']);
      const since = r2.updated[0].modseq;
      const r4 = await s.storeFlags(f.id, [1, 2], 'add', ['\\Deleted'], since);
      assert.deepEqual(r4.modifiedUids, [2], 'UID 2 changed after the given modseq');
      assert.deepEqual(r4.updated.map((u) => u.uid), [1]);
      assert.deepEqual((await s.changedSince(f.id, r3.updated[0].modseq)).map((x) => x.uid), [1]);
      assert.deepEqual((await s.changedSince(f.id, 0)).map((x) => x.uid), [1, 2]);
      assert.deepEqual(await s.changedSince(f.id, await s.folderModseq(f.id)), []);
    });

    t('system flags in any case: \\SEEN counts as seen, \\DELETED is expunged (RFC 9051 §2.3.2: flags are case-insensitive)', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      await append(s, f.id);
      await append(s, f.id, { flags: ['\\SEEN'] });
      await append(s, f.id, { flags: ['\\seen', '\\DELETED'] });
      const st = await s.folderStatus(f.id);
      assert.deepEqual([st.unseen, st.deleted, st.firstUnseenSeq], [1, 1, 1]);
      assert.equal((await s.unreadMessages(m.id, 10)).length, 1);
      await s.storeFlags(f.id, [1], 'add', ['\\Seen']);
      await s.storeFlags(f.id, [2], 'remove', ['\\Seen']);
      assert.equal((await s.folderStatus(f.id)).firstUnseenSeq, 2);
      assert.deepEqual(await s.expunge(f.id), [3]);
    });

    t('expunge: only \\Deleted messages (restricted to the UIDs given), recorded for expungedSince with a new modseq', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      for (let i = 0; i < 4; i++) await append(s, f.id, { flags: i === 1 ? [] : ['\\Deleted'] });
      const before = await s.folderModseq(f.id);
      assert.deepEqual(await s.expunge(f.id, [3, 2]), [3], 'UID 2 has no \\Deleted, UID 1 and 4 not asked');
      const mid = await s.folderModseq(f.id);
      assert.ok(mid > before);
      assert.deepEqual(await s.expungedSince(f.id, before), [3]);
      assert.deepEqual(await s.expungedSince(f.id, mid), []);
      assert.deepEqual(await s.expunge(f.id), [1, 4]);
      assert.deepEqual(await s.expungedSince(f.id, before), [1, 3, 4]);
      assert.deepEqual(await s.expungedSince(f.id, mid), [1, 4]);
      const top = await s.folderModseq(f.id);
      assert.deepEqual(await s.expunge(f.id), [], 'nothing left to expunge');
      assert.equal(await s.folderModseq(f.id), top, 'an empty expunge changes no modseq');
      assert.deepEqual(await s.folderUids(f.id), [2]);
      const st = await s.folderStatus(f.id);
      assert.deepEqual([st.messages, st.deleted, st.uidNext], [1, 0, 5], 'UIDs are never reused');
      assert.equal(st.highestModseq, await s.folderModseq(f.id), 'the status reports the modseq the expunge left');
    });

    t('copyMessages: UID mapping, UIDNEXT of the target, flags kept; a move expunges the source (RFC 6851 §3.3)', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      const dst = await s.createFolder(m.id, 'Archives');
      for (let i = 1; i <= 3; i++) await append(s, f.id, { size: i, flags: i === 3 ? ['\\Flagged'] : [] });
      await append(s, dst.id, { size: 100 });
      const before = await s.folderModseq(dst.id);
      assert.deepEqual(await s.copyMessages(f.id, [1, 3, 9], dst.id, false), [{ from: 1, to: 2 }, { from: 3, to: 3 }]);
      assert.ok((await s.folderModseq(dst.id)) > before);
      const copied = await s.getMessageByUid(dst.id, 3);
      const orig = await s.getMessageByUid(f.id, 3);
      assert.deepEqual([copied!.blobId, copied!.size, copied!.flags, copied!.internalDate], [orig!.blobId, 3, ['\\Flagged'], orig!.internalDate]);
      assert.deepEqual((await s.folderMessages(dst.id)).map((x) => x.recent), [true, true, true]);
      const srcModseq = await s.folderModseq(f.id);
      assert.deepEqual(await s.copyMessages(f.id, [2], dst.id, true), [{ from: 2, to: 4 }]);
      assert.deepEqual(await s.folderUids(f.id), [1, 3]);
      assert.deepEqual(await s.expungedSince(f.id, srcModseq), [2]);
      assert.deepEqual(await s.folderUids(dst.id), [1, 2, 3, 4]);
      assert.equal((await s.getFolderById(dst.id))!.uidNext, 5);
      assert.deepEqual(await s.copyMessages(f.id, [42], dst.id, false), [], 'nothing to copy');
      assert.deepEqual(await s.mailboxUsage(m.id), { bytes: 1 + 3 + 100 + 1 + 3 + 2, messages: 6 });
      const other = await mailbox(s);
      assert.deepEqual(await s.mailboxUsage(other.id), { bytes: 0, messages: 0 });
    });

    t('usage counters (issue 15): each folder\'s count and bytes equal its rows after appends, deliveries, copies, moves, expunges and deletions', async (s, _t, env) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      const a = await s.createFolder(m.id, `Archives ${next()}`);
      const b = await s.createFolder(m.id, `Projets ${next()}`);
      /** The counters as stored (folders.usage_messages / usage_bytes) against the rows, folder by folder; and mailboxUsage. */
      const check = async (step: string) => {
        let messages = 0;
        let bytes = 0;
        for (const x of await s.listFolders(m.id)) {
          const rows = await s.folderMessages(x.id);
          const want = [rows.length, rows.reduce((n, r) => n + r.size, 0)];
          const got = [Number(await env.raw.read('folders', 'usage_messages', 'id', x.id)), Number(await env.raw.read('folders', 'usage_bytes', 'id', x.id))];
          assert.deepEqual(got, want, `${step}: the counters of ${x.name}`);
          messages += want[0];
          bytes += want[1];
        }
        assert.deepEqual(await s.mailboxUsage(m.id), { bytes, messages }, `${step}: mailboxUsage`);
      };
      await check('empty');
      for (let i = 1; i <= 3; i++) await append(s, f.id, { size: 10 * i, flags: i === 2 ? ['\\Deleted'] : [] });
      await check('appendMessage');
      await s.appendMessages(a.id, [1, 2, 3, 4].map((i) => ({ blobId: blob(), size: 1000 + i, flags: i % 2 ? ['\\Deleted'] : [], internalDate: new Date() })));
      await check('appendMessages');
      await s.deliver(local([m.id], { size: 777 }));
      await check('deliver');
      await s.copyMessages(f.id, [1, 3], b.id, false);
      await check('copy');
      await s.copyMessages(a.id, [2, 4], f.id, true);
      await check('move');
      await s.expunge(a.id);
      await check('expunge');
      await s.storeFlags(f.id, await s.folderUids(f.id), 'add', ['\\Deleted']);
      await s.expunge(f.id, [1, 2]);
      await check('UID EXPUNGE');
      await s.deleteFolder(b.id);
      await check('deleteFolder');
      assert.ok((await s.mailboxUsage(m.id)).messages > 0);
      await s.updateMailbox(m.id, { state: 'deleted' });
      assert.deepEqual(await s.mailboxUsage(m.id), { bytes: 0, messages: 0 }, 'a deleted mailbox');
    });

    t('createFolder, renameFolder (with descendants), deleteFolder, a new UIDVALIDITY for a recreated name, subscriptions', async (s) => {
      const m = await mailbox(s);
      const p = await s.createFolder(m.id, 'Projets');
      assert.deepEqual([p.mailboxId, p.name, p.specialUse, p.uidNext], [m.id, 'Projets', null, 1]);
      const arch = await s.createFolder(m.id, 'Archive', '\\Archive');
      assert.equal(arch.specialUse, '\\Archive');
      assert.deepEqual(await s.getFolderById(p.id), p);
      assert.deepEqual(await s.getFolder(m.id, 'Projets'), p);
      assert.equal(await s.getFolder(m.id, 'projets'), undefined, 'folder names are case-sensitive (except INBOX, the caller maps it)');
      await assert.rejects(s.createFolder(m.id, 'Projets'), StoreConflictError);
      const child = await s.createFolder(m.id, 'Projets/2026');
      await s.createFolder(m.id, 'ProjetsX');
      const msg = await append(s, child.id, { flags: ['\\Seen'] });
      await assert.rejects(s.renameFolder(m.id, 'Projets', 'ProjetsX', '/'), StoreConflictError);
      await s.renameFolder(m.id, 'Projets', 'Dossiers', '/');
      assert.equal(await s.getFolder(m.id, 'Projets'), undefined);
      const moved = (await s.getFolder(m.id, 'Dossiers/2026'))!;
      assert.deepEqual([moved.id, moved.uidValidity], [child.id, child.uidValidity], 'renamed, same folder');
      assert.equal((await s.getMessageByUid(moved.id, msg.uid))?.flags[0], '\\Seen', 'its messages follow');
      assert.ok(await s.getFolder(m.id, 'ProjetsX'), 'a name merely starting with the old one is not a descendant');
      const b = (await s.getMessageByUid(moved.id, 1))!.blobId;
      await s.deleteFolder(moved.id);
      assert.equal(await s.getFolderById(moved.id), undefined);
      assert.equal(await s.getMessageByUid(moved.id, 1), undefined);
      assert.ok((await s.blobGarbage(100_000)).includes(b), 'the messages of a deleted folder release their files');
      const again = await s.createFolder(m.id, 'Dossiers/2026');
      assert.notEqual(again.uidValidity, child.uidValidity, 'RFC 9051 §2.3.1.1');
      assert.deepEqual((await s.listFolders(m.id)).map((x) => x.name), ['INBOX', 'Sent', 'Drafts', 'Trash', 'Junk', 'Dossiers', 'Archive', 'ProjetsX', 'Dossiers/2026']);
      assert.deepEqual(await s.listSubscriptions(m.id), []);
      await s.setSubscribed(m.id, 'Dossiers', true);
      await s.setSubscribed(m.id, 'Archive', true);
      await s.setSubscribed(m.id, 'Archive', true);
      assert.deepEqual(await s.listSubscriptions(m.id), ['Archive', 'Dossiers']);
      await s.setSubscribed(m.id, 'Archive', false);
      await s.setSubscribed(m.id, 'Inexistant', false);
      assert.deepEqual(await s.listSubscriptions(m.id), ['Dossiers']);
    });

    t('pageMessages: keyset pages by received date or size, ascending or descending, ties broken by id; the total', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      const spec: [number, string][] = [[30, '2026-12-01T10:00:00.000Z'], [10, '2026-12-03T10:00:00.000Z'], [20, '2026-12-02T10:00:00.000Z'], [10, '2026-12-02T10:00:00.000Z'], [50, '2026-11-30T10:00:00.000Z']];
      for (const [size, date] of spec) await append(s, f.id, { size, date: new Date(date) });
      const all = await s.listMessages(f.id);
      const id = (uid: number) => all.find((x) => x.uid === uid)!.id;
      const uids = (r: { messages: { uid: number }[] }) => r.messages.map((x) => x.uid);
      let r = await s.pageMessages(f.id, { by: 'size', desc: false, limit: 2 });
      assert.deepEqual([uids(r), r.total], [[2, 4], 5]);
      r = await s.pageMessages(f.id, { by: 'size', desc: false, limit: 2, after: { key: 10, id: id(4) } });
      assert.deepEqual(uids(r), [3, 1]);
      r = await s.pageMessages(f.id, { by: 'size', desc: false, limit: 10, after: { key: 10, id: id(2) } });
      assert.deepEqual(uids(r), [4, 3, 1, 5], 'the tie on size 10 continues by id');
      r = await s.pageMessages(f.id, { by: 'size', desc: true, limit: 3 });
      assert.deepEqual(uids(r), [5, 1, 3]);
      r = await s.pageMessages(f.id, { by: 'size', desc: true, limit: 3, after: { key: 20, id: id(3) } });
      assert.deepEqual(uids(r), [4, 2]);
      r = await s.pageMessages(f.id, { by: 'internalDate', desc: true, limit: 2 });
      assert.deepEqual(uids(r), [2, 4]);
      r = await s.pageMessages(f.id, { by: 'internalDate', desc: true, limit: 2, after: { key: '2026-12-02T10:00:00.000Z', id: id(4) } });
      assert.deepEqual(uids(r), [3, 1]);
      r = await s.pageMessages(f.id, { by: 'internalDate', desc: false, limit: 10, after: null });
      assert.deepEqual([uids(r), r.total], [[5, 1, 3, 4, 2], 5]);
      assert.deepEqual(r.messages[0], all[4]);
      r = await s.pageMessages((await s.getFolder(m.id, 'Sent'))!.id, { by: 'size', desc: false, limit: 10 });
      assert.deepEqual([r.messages, r.total], [[], 0]);
    });
  });

  // ---- delivery ------------------------------------------------------------------------------
  area('deliver()', (t) => {
    t('local copies: one per distinct mailbox in its INBOX, UIDs and message ids, the envelope sender kept', async (s) => {
      const a = await mailbox(s);
      const b = await mailbox(s);
      const ia = await inbox(s, a.id);
      await append(s, ia.id);
      const req = local([a.id, b.id, a.id], { internalDate: new Date('2026-12-07T11:00:00.000Z') });
      const copies = await s.deliver(req);
      assert.equal(copies.length, 2);
      assert.deepEqual(copies.map((c) => [c.mailboxId, c.folderId, c.uid]), [[a.id, ia.id, 2], [b.id, (await inbox(s, b.id)).id, 1]]);
      assert.deepEqual(copies.submissionChanges ?? [], []);
      assert.notEqual(copies[0].messageId, copies[1].messageId);
      const msg = (await s.getMessage(copies[0].messageId))!;
      assert.deepEqual([msg.folderId, msg.uid, msg.blobId, msg.size, msg.internalDate, msg.flags], [ia.id, 2, req.blobId, 1234, '2026-12-07T11:00:00.000Z', []]);
      assert.equal((await s.getReceiptMessage({ emailId: copies[1].messageId }))!.returnPath, 'dr.dupont@clinique.mssante.test');
      assert.equal((await s.folderMessages(ia.id)).at(-1)!.recent, true);
      const st = await s.folderStatus(ia.id);
      assert.deepEqual([st.uidNext, st.highestModseq >= 2], [3, true]);
      assert.deepEqual(await s.listQueue({ status: 'queued' }).then((q) => q.filter((x) => x.blobId === req.blobId)), []);
      await assert.rejects(s.deliver(local([a.id + 10_000])), 'an unknown mailbox rejects');
    });

    t('remote recipients: queue rows with the envelope and DSN parameters (RFC 3461), domain lower-cased', async (s) => {
      const sender = await mailbox(s);
      const t0 = Date.now();
      const req = local([], {
        envelopeFrom: sender.address,
        remote: [
          { recipient: 'Jean.Dupont@Clinique-Nord.MSSante.test', domain: 'Clinique-Nord.MSSante.test', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;Jean.Dupont@Clinique-Nord.MSSante.test' },
          { recipient: 'accueil@labo.mssante.test', domain: 'labo.mssante.test', notify: ['NEVER'], orcpt: null },
        ],
        ret: 'HDRS',
        envid: 'QQ314159',
        senderMailboxId: sender.id,
      });
      const copies = await s.deliver(req);
      assert.equal(copies.length, 0);
      const t1 = Date.now();
      const q = (await s.listQueue()).filter((x) => x.blobId === req.blobId);
      assert.equal(q.length, 2);
      const { id, nextAttemptAt, queuedAt, ...first } = q[0];
      assert.deepEqual(first, {
        blobId: req.blobId, size: 1234, envelopeFrom: sender.address, recipient: 'Jean.Dupont@Clinique-Nord.MSSante.test', domain: 'clinique-nord.mssante.test',
        notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;Jean.Dupont@Clinique-Nord.MSSante.test', ret: 'HDRS', envid: 'QQ314159', status: 'queued', attempts: 0,
        lastError: null, senderMailboxId: sender.id, submissionId: null,
      });
      assert.ok(t0 <= queuedAt && queuedAt <= t1 && nextAttemptAt === queuedAt, 'due at once');
      assert.deepEqual([q[1].notify, q[1].orcpt, q[1].domain], [['NEVER'], null, 'labo.mssante.test']);
      assert.ok(q[1].id > id);
      assert.equal(await s.isBlobReferenced(req.blobId), true, 'a queued item references its file');
      const bare = local([], { remote: [remote('x@y.mssante.test')] });
      await s.deliver(bare);
      const b = (await s.listQueue({ status: 'queued' })).find((x) => x.blobId === bare.blobId)!;
      assert.deepEqual([b.notify, b.ret, b.envid, b.senderMailboxId], [null, null, null, null]);
    });

    t('senderCopy: the sender’s copy in its Sent folder with its flags, in the same commit', async (s) => {
      const sender = await mailbox(s);
      const rcpt = await mailbox(s);
      const sent = (await s.getFolder(sender.id, 'Sent'))!;
      const req = local([rcpt.id], { senderMailboxId: sender.id, senderCopy: { mailboxId: sender.id, folderId: sent.id, flags: ['\\Seen'] }, remote: [remote('ext@autre.mssante.test')] });
      const copies = await s.deliver(req);
      assert.equal(copies.length, 2);
      const sc = copies.find((c) => c.sentCopy)!;
      assert.deepEqual([sc.mailboxId, sc.folderId, sc.uid], [sender.id, sent.id, 1]);
      assert.equal(copies.filter((c) => c.sentCopy).length, 1);
      assert.deepEqual((await s.getMessage(sc.messageId))!.flags, ['\\Seen']);
      assert.deepEqual((await s.getMessageByUid((await inbox(s, rcpt.id)).id, 1))!.flags, []);
      await assert.rejects(s.deliver(local([], { senderCopy: { mailboxId: rcpt.id, folderId: sent.id, flags: [] } })), 'a folder of another mailbox rejects');
      assert.deepEqual(await s.folderUids(sent.id), [1], 'and stores nothing');
    });

    t('idempotency: the key and its answer commit with the delivery; a second delivery with the key stores nothing (IdempotencyKeyTakenError); expired rows are replaced and purged', async (s) => {
      const u = await user(s);
      const sender = await mailbox(s, { ownerUserId: u.id });
      const rcpt = await mailbox(s);
      const sent = (await s.getFolder(sender.id, 'Sent'))!;
      const t0 = 1_800_000_000_000;
      const ttlMs = 24 * 3600_000;
      const req = (at: number, answer: string) =>
        local([rcpt.id], {
          senderMailboxId: sender.id,
          senderCopy: { mailboxId: sender.id, folderId: sent.id, flags: ['\\Seen'] },
          remote: [remote('ext@autre.mssante.test')],
          tracking: { userId: u.id, messageId: `<idem-${at}@hopital.test>`, subject: 'Clé' },
          idempotency: { userId: u.id, route: '/api/v1/submissions', key: 'clé-1', at, ttlMs, answer },
        });
      assert.equal(await s.getIdempotentAnswer(u.id, '/api/v1/submissions', 'clé-1', t0 - ttlMs), undefined);
      const copies = await s.deliver(req(t0, '{"n":1}'));
      const sc = copies.find((c) => c.sentCopy)!;
      const got = (await s.getIdempotentAnswer(u.id, '/api/v1/submissions', 'clé-1', t0 - ttlMs))!;
      assert.deepEqual(got, { answer: '{"n":1}', submissionId: copies.submissionChanges![0].id, emailId: sc.messageId, at: t0 });
      assert.equal(await s.getIdempotentAnswer(u.id, '/api/v1/documents', 'clé-1', 0), undefined, 'scoped to the route');
      assert.equal(await s.getIdempotentAnswer((await user(s)).id, '/api/v1/submissions', 'clé-1', 0), undefined, 'and to the user');
      assert.equal(await s.getIdempotentAnswer(u.id, '/api/v1/submissions', 'clé-1', t0 + 1), undefined, 'older than `since`: not found');
      // The same key again (a retry on another process): nothing of it is stored.
      const queued = (await s.listQueue()).length;
      const again = req(t0 + 1000, '{"n":2}');
      await assert.rejects(s.deliver(again), (e: unknown) => e instanceof IdempotencyKeyTakenError && e instanceof StoreConflictError);
      assert.deepEqual(await s.folderUids(sent.id), [1]);
      assert.deepEqual(await s.folderUids((await inbox(s, rcpt.id)).id), [1]);
      assert.equal((await s.listQueue()).length, queued);
      assert.equal(await s.isBlobReferenced(again.blobId), false);
      assert.equal((await s.listSubmissions([sender.id], { limit: 10 })).length, 1);
      assert.equal((await s.getIdempotentAnswer(u.id, '/api/v1/submissions', 'clé-1', 0))!.answer, '{"n":1}');
      // Once expired, the key may be used again: the row is replaced.
      await s.deliver(req(t0 + ttlMs + 1, '{"n":3}'));
      assert.equal((await s.getIdempotentAnswer(u.id, '/api/v1/submissions', 'clé-1', t0 + 1))!.answer, '{"n":3}');
      await s.deliver(local([rcpt.id], { idempotency: { userId: u.id, route: '/api/v1/documents', key: 'k', at: t0, ttlMs, answer: '{}' } }));
      assert.deepEqual(await s.getIdempotentAnswer(u.id, '/api/v1/documents', 'k', 0), { answer: '{}', submissionId: null, emailId: null, at: t0 });
      assert.equal(await s.purgeIdempotentAnswers(t0 + 1), 1, 'the documents row');
      assert.equal(await s.getIdempotentAnswer(u.id, '/api/v1/documents', 'k', 0), undefined);
      assert.equal(await s.purgeIdempotentAnswers(t0 + 1), 0);
      assert.ok(await s.getIdempotentAnswer(u.id, '/api/v1/submissions', 'clé-1', 0));
    });

    t('filing: local copies go to the folder (created on first use) with the flags', async (s) => {
      const m = await mailbox(s);
      assert.equal(await s.getFolder(m.id, 'Non médical'), undefined);
      const filing = { folder: 'Non médical', flags: ['$NonMedical'] };
      const [c1] = await s.deliver(local([m.id], { filing }));
      const [c2] = await s.deliver(local([m.id], { filing }));
      const folder = (await s.getFolder(m.id, 'Non médical'))!;
      assert.deepEqual([c1.folderId, c2.folderId, c1.uid, c2.uid], [folder.id, folder.id, 1, 2]);
      assert.deepEqual((await s.listMessages(folder.id)).map((x) => x.flags), [['$NonMedical'], ['$NonMedical']]);
      const [c3] = await s.deliver(local([m.id], { filing: null }));
      assert.equal(c3.folderId, (await inbox(s, m.id)).id);
      assert.equal((await s.listFolders(m.id)).filter((f) => f.name === 'Non médical').length, 1);
    });

    t('dailyRecipients: counted at commit; over the limit DailyRecipientLimitError and nothing stored (copies, queue, usage, tracking, conversations)', async (s) => {
      const st = await structure(s);
      const m = await mailbox(s, { structureId: st.id });
      const patient = await mailbox(s, { structureId: st.id });
      const u = await user(s);
      const day = '2026-12-10';
      await s.deliver(local([m.id], { dailyRecipients: { userId: u.id, day, count: 3, limit: 4 } }));
      assert.equal(await s.recipientsSentOn(u.id, day), 3);
      const usageBefore = await s.usageMessages('2026-01-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z');
      const ib = await inbox(s, m.id);
      const statusBefore = await s.folderStatus(ib.id);
      const refused = local([m.id, patient.id], {
        senderMailboxId: m.id,
        remote: [remote('ext@autre.mssante.test')],
        dailyRecipients: { userId: u.id, day, count: 2, limit: 4 },
        usage: [{ at: '2026-12-10T10:00:00.000Z', structureId: st.id, mailboxType: 'ORG', flow: 'sent', peer: 'operator', attachment: false, xdm: false }],
        tracking: { userId: u.id, messageId: '<refused@hopital.test>', subject: 'Refusé' },
        conversations: [{ patientMailboxId: patient.id, professional: 'dr.dupont@clinique.mssante.test', action: 'open', at: '2026-12-10T10:00:00.000Z' }],
      });
      await assert.rejects(s.deliver(refused), (e: unknown) => e instanceof DailyRecipientLimitError && e.limit === 4 && e.day === day);
      assert.equal(await s.recipientsSentOn(u.id, day), 3, 'the count rolled back');
      assert.deepEqual(await s.folderStatus(ib.id), statusBefore, 'no copy, no modseq');
      assert.deepEqual(await s.folderUids((await inbox(s, patient.id)).id), []);
      assert.equal((await s.listQueue()).filter((x) => x.blobId === refused.blobId).length, 0);
      assert.equal(await s.isBlobReferenced(refused.blobId), false);
      assert.deepEqual(await s.listSubmissions([m.id], { limit: 10 }), []);
      assert.deepEqual(await s.usageMessages('2026-01-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z'), usageBefore);
      assert.equal(await s.getPatientConversation(patient.id, 'dr.dupont@clinique.mssante.test'), undefined);
      await s.deliver(local([m.id], { dailyRecipients: { userId: u.id, day, count: 1, limit: 4 } }));
      assert.equal(await s.recipientsSentOn(u.id, day), 4, 'up to the limit');
      await s.deliver(local([m.id], { dailyRecipients: { userId: u.id, day: '2026-12-11', count: 4, limit: 4 } }));
      assert.equal(await s.recipientsSentOn(u.id, '2026-12-11'), 4, 'a new day starts from zero');
      assert.equal(await s.recipientsSentOn((await user(s)).id, day), 0);
    });

    t('markMessage: the keyword and the delivery commit together; a second time KeywordAlreadySetError and nothing stored (RFC 3503)', async (s) => {
      const a = await mailbox(s);
      const b = await mailbox(s);
      const [copy] = await s.deliver(local([a.id]));
      const modseq = await s.folderModseq(copy.folderId);
      const mdn = (extra: Partial<DeliveryRequest> = {}) => local([b.id], { envelopeFrom: '', markMessage: { folderId: copy.folderId, uid: copy.uid, keyword: '$MDNSent' }, ...extra });
      await s.deliver(mdn());
      assert.deepEqual((await s.getReceiptMessage({ emailId: copy.messageId }))!.flags, ['$MDNSent']);
      const after1 = await s.folderModseq(copy.folderId);
      assert.ok(after1 > modseq, 'IMAP sees the change (RFC 7162 §3.1)');
      assert.deepEqual((await s.changedSince(copy.folderId, modseq)).map((x) => x.uid), [copy.uid]);
      const ib = await inbox(s, b.id);
      const before = await s.folderStatus(ib.id);
      const second = mdn({ remote: [remote('x@autre.mssante.test')] });
      await assert.rejects(s.deliver(second), (e: unknown) => e instanceof KeywordAlreadySetError && e.keyword === '$MDNSent');
      assert.deepEqual(await s.folderStatus(ib.id), before, 'the second MDN was not stored');
      assert.equal((await s.listQueue()).filter((x) => x.blobId === second.blobId).length, 0);
      assert.equal(await s.folderModseq(copy.folderId), after1);
      await assert.rejects(s.deliver(local([b.id], { markMessage: { folderId: copy.folderId, uid: 999, keyword: '$MDNSent' } })), 'an unknown message rejects');
    });

    t('usage rows: committed with the message, counted by usageMessages per structure, type, flow and peer', async (s) => {
      const st = await structure(s);
      const m = await mailbox(s, { structureId: st.id, type: 'PER' });
      const row = (at: string, flow: 'sent' | 'received', peer: 'internal' | 'operator' | 'patient', attachment: boolean, xdm: boolean) => ({ at, structureId: st.id, mailboxType: 'PER' as const, flow, peer, attachment, xdm });
      await s.deliver(local([m.id], { usage: [row('2025-03-03T10:00:00.000Z', 'received', 'operator', true, false), row('2025-03-03T10:00:00.000Z', 'sent', 'internal', false, false)] }));
      await s.deliver(local([m.id], { usage: [row('2025-03-31T23:59:59.999Z', 'received', 'operator', true, true)] }));
      await s.deliver(local([m.id], { usage: [row('2025-04-01T00:00:00.000Z', 'received', 'operator', false, false), { ...row('2025-03-15T00:00:00.000Z', 'received', 'patient', false, false), structureId: null }] }));
      const march = (await s.usageMessages('2025-03-01T00:00:00.000Z', '2025-04-01T00:00:00.000Z')).sort((x, y) => `${x.flow}${x.peer}`.localeCompare(`${y.flow}${y.peer}`));
      assert.deepEqual(march, [
        { structureId: st.id, mailboxType: 'PER', flow: 'received', peer: 'operator', messages: 2, withAttachment: 2, withXdm: 1 },
        { structureId: null, mailboxType: 'PER', flow: 'received', peer: 'patient', messages: 1, withAttachment: 0, withXdm: 0 },
        { structureId: st.id, mailboxType: 'PER', flow: 'sent', peer: 'internal', messages: 1, withAttachment: 0, withXdm: 0 },
      ]);
      assert.deepEqual(await s.usageMessages('2025-04-01T00:00:00.000Z', '2025-05-01T00:00:00.000Z'), [
        { structureId: st.id, mailboxType: 'PER', flow: 'received', peer: 'operator', messages: 1, withAttachment: 0, withXdm: 0 },
      ]);
      assert.deepEqual(await s.usageMessages('2024-01-01T00:00:00.000Z', '2024-02-01T00:00:00.000Z'), []);
    });

    t('conversations: opened, closed, reopened per professional (case-insensitive), with the message', async (s) => {
      const p = await mailbox(s, { local: '185057512345673' });
      const conv = (action: 'open' | 'close', at: string, professional = 'Dr.Dupont@Clinique.MSSante.test') => s.deliver(local([p.id], { conversations: [{ patientMailboxId: p.id, professional, action, at }] }));
      assert.equal(await s.getPatientConversation(p.id, 'dr.dupont@clinique.mssante.test'), undefined);
      await conv('open', '2026-12-01T10:00:00.000Z');
      await conv('open', '2026-12-02T10:00:00.000Z');
      assert.deepEqual(await s.getPatientConversation(p.id, 'dr.dupont@clinique.mssante.test'), {
        patientMailboxId: p.id, professional: 'dr.dupont@clinique.mssante.test', openedAt: '2026-12-01T10:00:00.000Z', lastMessageAt: '2026-12-02T10:00:00.000Z', closedAt: null,
      });
      await conv('close', '2026-12-03T10:00:00.000Z');
      assert.equal((await s.getPatientConversation(p.id, 'DR.DUPONT@clinique.mssante.test'))!.closedAt, '2026-12-03T10:00:00.000Z');
      assert.equal(await s.getPatientConversation(p.id, 'autre@clinique.mssante.test'), undefined);
      await conv('open', '2026-12-04T10:00:00.000Z');
      const re = (await s.getPatientConversation(p.id, 'dr.dupont@clinique.mssante.test'))!;
      assert.deepEqual([re.openedAt, re.lastMessageAt, re.closedAt], ['2026-12-04T10:00:00.000Z', '2026-12-04T10:00:00.000Z', null], 'a new exchange');
      await conv('close', '2026-12-05T10:00:00.000Z', 'nouveau@clinique.mssante.test');
      assert.deepEqual(await s.getPatientConversation(p.id, 'nouveau@clinique.mssante.test'), {
        patientMailboxId: p.id, professional: 'nouveau@clinique.mssante.test', openedAt: '2026-12-05T10:00:00.000Z', lastMessageAt: '2026-12-05T10:00:00.000Z', closedAt: '2026-12-05T10:00:00.000Z',
      });
    });
  });

  // ---- delivery tracking ---------------------------------------------------------------------
  area('delivery tracking', (t) => {
    async function setup(s: Store) {
      const st = await structure(s);
      const sender = await mailbox(s, { structureId: st.id, local: 'envoi' });
      const rcpt = await mailbox(s, { structureId: st.id, local: 'local' });
      const u = await user(s);
      let n = 0;
      const submit = (envid: string | null = null, extra: Partial<DeliveryRequest> = {}) => {
        const k = ++n;
        return s.deliver(
          local([rcpt.id], {
            envelopeFrom: sender.address,
            remote: [remote('X@b.mssante.test'), remote('y@b.mssante.test')],
            senderMailboxId: sender.id,
            envid,
            tracking: { userId: u.id, messageId: `<m${k}.${sender.id}@a.test>`, subject: `Objet ${k}` },
            ...extra,
          }),
        );
      };
      return { sender, rcpt, u, submit };
    }
    const statuses = async (s: Store, id: number) => Object.fromEntries((await s.getSubmission(id))!.recipients.map((r) => [r.address.toLowerCase(), [r.status, r.detail]]));

    t('a submission: local recipients delivered, remote ones queued, then relayed / failed by the queue', async (s) => {
      const o = await setup(s);
      const r = await o.submit('env-1');
      assert.equal(r.submissionChanges?.length, 1);
      const subId = r.submissionChanges![0].id;
      assert.deepEqual(r.submissionChanges, [{ id: subId, mailboxId: o.sender.id }]);
      const sub = (await s.getSubmission(subId))!;
      assert.deepEqual([sub.mailboxId, sub.userId, sub.emailId, sub.messageId, sub.from, sub.subject, sub.envid], [o.sender.id, o.u.id, null, `<m1.${o.sender.id}@a.test>`, o.sender.address, 'Objet 1', 'env-1']);
      assert.ok(!Number.isNaN(Date.parse(sub.sentAt)));
      assert.deepEqual(await statuses(s, subId), { [o.rcpt.address.toLowerCase()]: ['delivered', null], 'x@b.mssante.test': ['queued', null], 'y@b.mssante.test': ['queued', null] });
      const q = (await s.listQueue({ status: 'queued' })).filter((x) => x.submissionId === subId);
      assert.equal(q.length, 2);
      const x = q.find((i) => i.recipient === 'X@b.mssante.test')!;
      const y = q.find((i) => i.recipient === 'y@b.mssante.test')!;
      const d = await s.completeQueueItems({ sent: [], failed: [], deferred: [{ id: y.id, error: '421 4.3.2 busy', nextAttemptAt: Date.now() + 1000 }], dsns: [] });
      assert.deepEqual(d.submissionChanges, [{ id: subId, mailboxId: o.sender.id }], 'the deferral is recorded (detail)');
      assert.deepEqual((await statuses(s, subId))['y@b.mssante.test'], ['queued', '421 4.3.2 busy']);
      await s.completeQueueItems({ sent: [x.id], failed: [{ id: y.id, error: '550 5.1.1 unknown' }], deferred: [], dsns: [] });
      assert.deepEqual(await statuses(s, subId), { [o.rcpt.address.toLowerCase()]: ['delivered', null], 'x@b.mssante.test': ['relayed', null], 'y@b.mssante.test': ['failed', '550 5.1.1 unknown'] });
    });

    t('reports: matched by ENVID, else by Message-ID, only in the sender mailbox; a status never moves back', async (s) => {
      const o = await setup(s);
      const s1 = (await o.submit('env-r1')).submissionChanges![0].id;
      const s2 = (await o.submit()).submissionChanges![0].id;
      const m2 = (await s.getSubmission(s2))!.messageId!;
      const m1 = (await s.getSubmission(s1))!.messageId!;
      const report = (r: Partial<IncomingReport> & Pick<IncomingReport, 'recipients'>): IncomingReport => ({ kind: 'dsn', envid: null, originalMessageId: null, ...r });
      const deliverReport = (mailboxId: number, reports: IncomingReport[]) => s.deliver(local([mailboxId], { envelopeFrom: '', reports }));
      let r = await deliverReport(o.sender.id, [report({ envid: 'env-r1', originalMessageId: m2, recipients: [{ final: 'rfc822; x@b.mssante.test', original: null, status: 'delivered', detail: null }] })]);
      assert.deepEqual(r.submissionChanges, [{ id: s1, mailboxId: o.sender.id }], 'ENVID wins over the Message-ID');
      assert.equal((await statuses(s, s1))['x@b.mssante.test'][0], 'delivered');
      assert.equal((await statuses(s, s2))['x@b.mssante.test'][0], 'queued');
      await deliverReport(o.sender.id, [report({ originalMessageId: m2, recipients: [{ final: 'alias@b.mssante.test', original: 'rfc822;y@b.mssante.test', status: 'failed', detail: 'mailbox full' }] })]);
      assert.deepEqual((await statuses(s, s2))['y@b.mssante.test'], ['failed', 'mailbox full'], 'by Message-ID, recipient by its original address');
      r = await deliverReport(o.rcpt.id, [report({ originalMessageId: m2, recipients: [{ final: 'x@b.mssante.test', original: null, status: 'failed', detail: 'x' }] })]);
      assert.deepEqual(r.submissionChanges, [], 'delivered to another mailbox than the sender’s: not matched');
      const x1 = (await s.listQueue()).find((q) => q.submissionId === s1 && q.recipient === 'X@b.mssante.test')!;
      await s.completeQueueItems({ sent: [x1.id], failed: [], deferred: [], dsns: [] });
      assert.equal((await statuses(s, s1))['x@b.mssante.test'][0], 'delivered', 'a late relayed does not undo delivered');
      await deliverReport(o.sender.id, [{ kind: 'mdn', envid: null, originalMessageId: m1, recipients: [{ final: 'x@b.mssante.test', original: null, status: 'error', detail: '902^Identifiant patient inconnu' }] }]);
      assert.deepEqual((await statuses(s, s1))['x@b.mssante.test'], ['error', '902^Identifiant patient inconnu']);
      await deliverReport(o.sender.id, [report({ envid: 'env-r1', recipients: [{ final: 'x@b.mssante.test', original: null, status: 'delivered', detail: null }] })]);
      assert.equal((await statuses(s, s1))['x@b.mssante.test'][0], 'error', 'a DSN after the MDN changes nothing');
    });

    t('listSubmissions: newest first, paged by id, only the mailboxes asked for; the Sent copy linked as emailId', async (s) => {
      const o = await setup(s);
      const ids: number[] = [];
      for (let i = 0; i < 3; i++) ids.push((await o.submit()).submissionChanges![0].id);
      const other = await setup(s);
      const oid = (await other.submit()).submissionChanges![0].id;
      assert.deepEqual((await s.listSubmissions([o.sender.id], { limit: 10 })).map((x) => x.id), [ids[2], ids[1], ids[0]]);
      assert.deepEqual((await s.listSubmissions([o.sender.id], { limit: 2 })).map((x) => x.id), [ids[2], ids[1]]);
      assert.deepEqual((await s.listSubmissions([o.sender.id], { beforeId: ids[1], limit: 2 })).map((x) => x.id), [ids[0]]);
      assert.deepEqual((await s.listSubmissions([o.sender.id, other.sender.id], { limit: 2 })).map((x) => x.id), [oid, ids[2]]);
      assert.deepEqual(await s.listSubmissions([o.rcpt.id], { limit: 10 }), []);
      assert.deepEqual(await s.listSubmissions([], { limit: 10 }), []);
      const [page] = await s.listSubmissions([o.sender.id], { limit: 1 });
      assert.deepEqual(page, await s.getSubmission(ids[2]));
      assert.equal(await s.getSubmission(oid + 10_000), undefined);
      const sent = (await s.getFolder(o.sender.id, 'Sent'))!;
      const r = await o.submit(null, { senderCopy: { mailboxId: o.sender.id, folderId: sent.id, flags: ['\\Seen'] } });
      const sc = r.find((c) => c.sentCopy)!;
      assert.equal((await s.getSubmission(r.submissionChanges![0].id))!.emailId, sc.messageId, 'deliver() links the Sent copy');
      const [other1] = await s.deliver(local([o.sender.id]));
      await s.setSubmissionEmail(ids[0], other1.messageId);
      assert.equal((await s.getSubmission(ids[0]))!.emailId, other1.messageId);
    });

    t('markMessageOnce and getReceiptMessage', async (s) => {
      const o = await setup(s);
      const [copy] = await s.deliver(local([o.rcpt.id], { envelopeFrom: 'someone@b.mssante.test' }));
      const msg = (await s.getReceiptMessage({ emailId: copy.messageId }))!;
      assert.deepEqual(msg, { id: copy.messageId, mailboxId: o.rcpt.id, folderId: copy.folderId, uid: copy.uid, blobId: (await s.getMessage(copy.messageId))!.blobId, flags: [], returnPath: 'someone@b.mssante.test' });
      assert.deepEqual(await s.getReceiptMessage({ folderId: copy.folderId, uid: copy.uid }), msg);
      assert.equal(await s.getReceiptMessage({ emailId: copy.messageId + 10_000 }), undefined);
      const [dsn] = await s.deliver(local([o.rcpt.id], { envelopeFrom: '' }));
      assert.equal((await s.getReceiptMessage({ emailId: dsn.messageId }))!.returnPath, '', 'the null reverse-path');
      const mark = { folderId: copy.folderId, uid: copy.uid, keyword: '$MDNSent' };
      const before = await s.folderModseq(copy.folderId);
      assert.equal(await s.markMessageOnce(mark), true);
      assert.equal(await s.markMessageOnce({ ...mark, keyword: '$mdnsent' }), false, 'keywords compare case-insensitively');
      assert.deepEqual((await s.getReceiptMessage({ emailId: copy.messageId }))!.flags, ['$MDNSent']);
      assert.ok((await s.folderModseq(copy.folderId)) > before);
      await assert.rejects(s.markMessageOnce({ ...mark, uid: 999 }), 'an unknown message rejects');
    });

    t('a deleted mailbox loses its tracking; its queued items go on untracked', async (s) => {
      const o = await setup(s);
      const id = (await o.submit()).submissionChanges![0].id;
      await s.updateMailbox(o.sender.id, { state: 'deleted' });
      assert.equal(await s.getSubmission(id), undefined);
      const queued = (await s.listQueue({ status: 'queued' })).filter((q) => q.senderMailboxId === o.sender.id);
      assert.equal(queued.length, 2);
      assert.ok(queued.every((q) => q.submissionId === null));
      const r = await s.completeQueueItems({ sent: [queued[0].id], failed: [], deferred: [], dsns: [] });
      assert.deepEqual(r.submissionChanges, []);
    });
  });

  // ---- the outbound queue --------------------------------------------------------------------
  area('outbound queue', (t) => {
    t('due items oldest first, next attempt, completion (sent, failed, deferred) with DSNs in one transaction, stats, the file released', async (s) => {
      const sender = await mailbox(s);
      await drainQueue(s);
      assert.equal(await s.nextQueueAttempt(), undefined, 'an empty queue');
      assert.deepEqual(await s.queueStats(), { depth: 0, oldestQueuedAt: null });
      const req = local([], { envelopeFrom: sender.address, senderMailboxId: sender.id, remote: ['a', 'b', 'c'].map((x) => remote(`${x}@peer.mssante.test`)) });
      const t0 = Date.now();
      await s.deliver(req);
      const q = (await s.listQueue()).filter((x) => x.blobId === req.blobId);
      assert.deepEqual(q.map((x) => x.recipient), ['a@peer.mssante.test', 'b@peer.mssante.test', 'c@peer.mssante.test']);
      const [a, b, c] = q;
      const queuedAt = a.queuedAt;
      assert.ok(queuedAt >= t0);
      assert.equal(await s.nextQueueAttempt(), a.nextAttemptAt);
      assert.deepEqual(await s.claimQueueItems('worker', queuedAt - 1, 10, 60_000), [], 'nothing due yet');
      const claimed = await s.claimQueueItems('worker', queuedAt, 2, 60_000);
      assert.deepEqual(claimed.map((x) => x.id), [a.id, b.id], 'due items, oldest first, up to the limit');
      assert.deepEqual(claimed[0], a, 'the queue item as listed');
      await s.releaseQueueItems('worker', [a.id, b.id]);
      assert.deepEqual((await s.claimQueueItems('worker', queuedAt, 10, 60_000)).map((x) => x.id), [a.id, b.id, c.id]);
      assert.deepEqual(await s.queueStats(), { depth: 3, oldestQueuedAt: queuedAt });
      const later = Date.now() + 3_600_000;
      const dsnBlob = blob('dsn');
      const copies = await s.completeQueueItems({
        sent: [a.id],
        failed: [{ id: b.id, error: '550 5.1.1 user unknown' }],
        deferred: [{ id: c.id, error: '451 4.4.1 no answer', nextAttemptAt: later }],
        dsns: [{ blobId: dsnBlob, size: 777, mailboxId: sender.id }],
      });
      assert.equal(copies.length, 1);
      const dsn = (await s.getReceiptMessage({ emailId: copies[0].messageId }))!;
      assert.deepEqual([copies[0].mailboxId, copies[0].folderId, copies[0].uid, dsn.blobId, dsn.returnPath], [sender.id, (await inbox(s, sender.id)).id, 1, dsnBlob, ''], 'the DSN in the sender INBOX, null reverse-path (RFC 3461 §6.2)');
      const after1 = (await s.listQueue()).filter((x) => x.blobId === req.blobId);
      const by = (id: number) => after1.find((x) => x.id === id)!;
      assert.deepEqual([by(a.id).status, by(a.id).attempts, by(a.id).lastError], ['sent', 1, null]);
      assert.deepEqual([by(b.id).status, by(b.id).attempts, by(b.id).lastError], ['failed', 1, '550 5.1.1 user unknown']);
      assert.deepEqual([by(c.id).status, by(c.id).attempts, by(c.id).lastError, by(c.id).nextAttemptAt], ['queued', 1, '451 4.4.1 no answer', later]);
      const mine = (l: QueueItem[]) => l.filter((x) => x.blobId === req.blobId).map((x) => x.id);
      assert.deepEqual(mine(await s.listQueue({ status: 'sent' })), [a.id]);
      assert.deepEqual(mine(await s.listQueue({ status: 'failed' })), [b.id]);
      assert.deepEqual((await s.listQueue({ status: 'queued' })).map((x) => x.id), [c.id]);
      assert.equal(await s.nextQueueAttempt(), later);
      assert.deepEqual(await s.claimQueueItems('worker', later - 1, 10, 60_000), [], 'deferred: not due before its next attempt');
      assert.deepEqual((await s.claimQueueItems('worker', later, 10, 60_000)).map((x) => x.id), [c.id], 'completion cleared its lease; sent and failed items are never claimed');
      assert.deepEqual(await s.queueStats(), { depth: 1, oldestQueuedAt: queuedAt });
      await s.completeQueueItems({ sent: [a.id], failed: [{ id: a.id, error: 'x' }], deferred: [], dsns: [] });
      const again = (await s.listQueue()).filter((x) => x.id === a.id);
      assert.deepEqual(again.map((x) => [x.status, x.attempts, x.lastError]), [['sent', 1, null]], 'a finished item is not recorded again');
      assert.equal(await s.isBlobReferenced(req.blobId), true, 'the deferred item still holds the file');
      await s.completeQueueItems({ sent: [c.id], failed: [], deferred: [], dsns: [] });
      assert.equal(await s.isBlobReferenced(req.blobId), false);
      assert.ok((await s.blobGarbage(100_000)).includes(req.blobId), 'the last queue item done: the file is a candidate');
      assert.equal(await s.nextQueueAttempt(), undefined);
      assert.deepEqual(await s.queueStats(), { depth: 0, oldestQueuedAt: null });
    });
  });

  // ---- absences and golden rules --------------------------------------------------------------
  area('absences', (t) => {
    t('set, read, replaced (forgetting the replies sent), cleared; replies claimed once per period', async (s) => {
      const m = await mailbox(s);
      assert.equal(await s.getAbsence(m.id), undefined);
      const settings = { mailboxId: m.id, startsAt: '2026-12-20T00:00:00.000Z', endsAt: null, subject: 'Congés', body: 'Je suis absente.', externalBody: null, substitute: 'remplacant@hopital.mssante.test', updatedBy: 'claire.martin' };
      const a = await s.setAbsence(settings);
      assert.deepEqual({ ...a, updatedAt: '' }, { ...settings, updatedAt: '' });
      assert.ok(!Number.isNaN(Date.parse(a.updatedAt)));
      assert.deepEqual(await s.getAbsence(m.id), a);
      assert.equal(await s.lastAbsenceReply(m.id, 'dr.dupont@clinique.mssante.test'), undefined);
      assert.equal(await s.claimAbsenceReply(m.id, 'Dr.Dupont@Clinique.MSSante.test', 1_000_000, 0), true);
      assert.equal(await s.lastAbsenceReply(m.id, 'dr.dupont@clinique.mssante.test'), 1_000_000, 'the sender compares case-insensitively');
      assert.equal(await s.claimAbsenceReply(m.id, 'dr.dupont@clinique.mssante.test', 1_000_500, 1_000_000), false, 'one recorded at or after since');
      assert.equal(await s.claimAbsenceReply(m.id, 'dr.dupont@clinique.mssante.test', 2_000_000, 1_000_001), true, 'the period passed');
      assert.equal(await s.lastAbsenceReply(m.id, 'dr.dupont@clinique.mssante.test'), 2_000_000);
      assert.equal(await s.claimAbsenceReply(m.id, 'autre@clinique.mssante.test', 2_000_000, 1_000_001), true, 'per sender');
      const b = await s.setAbsence({ ...settings, body: null, subject: null, substitute: null, endsAt: '2027-01-05T00:00:00.000Z' });
      assert.deepEqual([b.body, b.subject, b.substitute, b.endsAt], [null, null, null, '2027-01-05T00:00:00.000Z']);
      assert.equal(await s.lastAbsenceReply(m.id, 'dr.dupont@clinique.mssante.test'), undefined, 'a new absence, a new period');
      const other = await mailbox(s);
      assert.equal(await s.claimAbsenceReply(other.id, 'dr.dupont@clinique.mssante.test', 1, 0), true, 'per mailbox');
      assert.equal(await s.clearAbsence(m.id), true);
      assert.equal(await s.clearAbsence(m.id), false);
      assert.equal(await s.getAbsence(m.id), undefined);
    });
  });

  // ---- URLAUTH mailbox access keys (RFC 4467 §3; docs/imap.md "URLAUTH") ----------------------
  for (const sealed of [false, true]) {
    area(
      `URLAUTH mailbox access keys${sealed ? ' (sealed at rest)' : ''}`,
      (t) => {
        t('per user and folder, created once, replaced by a reset, removed per user and with the folder', async (s, _t, env) => {
          const [a, b] = [await user(s), await user(s)];
          const m = await mailbox(s, { ownerUserId: a.id });
          const box = await inbox(s, m.id);
          const other = await s.createFolder(m.id, `URL ${next()}`);
          assert.equal(await s.urlAuthKey(a.id, box.id, false), undefined, 'none before GENURLAUTH');
          const k1 = (await s.urlAuthKey(a.id, box.id, true))!;
          assert.equal(k1.length, 32);
          assert.deepEqual(await s.urlAuthKey(a.id, box.id, true), k1, 'created once');
          assert.deepEqual(await s.urlAuthKey(a.id, box.id, false), k1);
          const racing = await Promise.all(Array.from({ length: 6 }, () => s.urlAuthKey(b.id, box.id, true)));
          assert.ok(racing.every((k) => k!.equals(racing[0]!)), 'concurrent creations: one key');
          assert.ok(!racing[0]!.equals(k1), 'per user');
          const k3 = (await s.urlAuthKey(a.id, other.id, true))!;
          assert.ok(!k3.equals(k1), 'per folder');
          // What is on disk: never the key itself when sealed.
          const raw = (await env.raw.read('urlauth_keys', 'secret', 'folder_id', other.id)) as Buffer;
          assert.ok(Buffer.isBuffer(raw));
          if (sealed) assert.ok(isSealedValue(raw) && !raw.includes(k3), 'sealed');
          else assert.deepEqual(raw, k3);
          if (sealed) {
            // Sealed under its row (`urlauth_keys.secret:<id>`, store/sealed-rows.ts): copied into
            // another user's row, it does not open there — no key, not someone else's.
            const own = (await env.raw.read('urlauth_keys', 'secret', 'user_id', b.id)) as Buffer;
            await env.raw.write('urlauth_keys', 'secret', 'user_id', b.id, raw);
            assert.equal(await s.urlAuthKey(b.id, box.id, false), undefined, 'a moved key does not open');
            await env.raw.write('urlauth_keys', 'secret', 'user_id', b.id, own);
            assert.deepEqual(await s.urlAuthKey(b.id, box.id, false), racing[0]);
          }
          await s.resetUrlAuthKey(a.id, box.id);
          const k4 = (await s.urlAuthKey(a.id, box.id, false))!;
          assert.ok(k4 && !k4.equals(k1), 'RESETKEY mailbox: a new key');
          assert.deepEqual(await s.urlAuthKey(b.id, box.id, false), racing[0], "another user's key unchanged");
          assert.equal(await s.removeUrlAuthKeys(a.id), 2);
          assert.equal(await s.urlAuthKey(a.id, box.id, false), undefined);
          assert.equal(await s.urlAuthKey(a.id, other.id, false), undefined);
          await s.deleteFolder(box.id);
          assert.equal(await s.urlAuthKey(b.id, box.id, false), undefined, 'removed with the folder');
          assert.equal(await s.removeUrlAuthKeys(b.id), 0);
        });
      },
      sealed ? { sealer: new ValueSealer(KeyRing.generate(new Date('2026-12-07T00:00:00Z'))) } : undefined,
    );
  }

  // ---- METADATA entries (RFC 5464; docs/imap.md "METADATA") --------------------------------
  for (const sealed of [false, true]) {
    area(
      `METADATA entries${sealed ? ' (sealed at rest)' : ''}`,
      (t) => {
        t('shared and per-user private entries per folder and for the server; TOOMANY changes nothing; removed with the folder, kept by RENAME', async (s, _t, env) => {
          const [a, b] = [await user(s), await user(s)];
          const m = await mailbox(s, { ownerUserId: a.id });
          const box = await inbox(s, m.id);
          const other = await s.createFolder(m.id, `Meta ${next()}`);
          const v = (x: string) => Buffer.from(x, 'utf8');
          const list = async (folderId: number | null, userId: number) => (await s.listMetadata(folderId, userId)).map((e) => [e.entry, e.value.toString('utf8')]);
          assert.deepEqual(await list(box.id, a.id), []);
          assert.equal(await s.setMetadata(box.id, a.id, [{ entry: '/shared/Comment', value: v('Dossiers patients') }, { entry: '/private/comment', value: v('à trier') }], 10), true);
          assert.equal(await s.setMetadata(box.id, b.id, [{ entry: '/private/comment', value: v('de B') }], 10), true);
          assert.deepEqual(await list(box.id, a.id), [['/private/comment', 'à trier'], ['/shared/comment', 'Dossiers patients']], 'names in lower case');
          assert.deepEqual(await list(box.id, b.id), [['/private/comment', 'de B'], ['/shared/comment', 'Dossiers patients']], 'private per user, shared for all');
          assert.deepEqual(await list(other.id, a.id), [], 'per folder');
          const theme = `/private/vendor/x/theme${next()}`;
          assert.equal(await s.setMetadata(null, a.id, [{ entry: theme, value: v('sombre') }], 10), true);
          assert.deepEqual(await list(null, a.id), [[theme, 'sombre']], 'server entries');
          assert.deepEqual(await list(null, b.id), []);
          // What is on disk: never the value itself when sealed.
          const raw = (await env.raw.read('metadata', 'value', 'user_id', b.id)) as Buffer;
          if (sealed) assert.ok(isSealedValue(raw) && !raw.includes(v('de B')), 'sealed');
          else assert.deepEqual(Buffer.from(raw), v('de B'));
          if (sealed) {
            // Sealed under its row (`metadata.value:<id>`): copied into another row, it does not open.
            const own = (await env.raw.read('metadata', 'value', 'entry', theme)) as Buffer;
            await env.raw.write('metadata', 'value', 'entry', theme, raw);
            await assert.rejects(s.listMetadata(null, a.id), /metadata\.value/);
            await env.raw.write('metadata', 'value', 'entry', theme, own);
            assert.deepEqual(await list(null, a.id), [[theme, 'sombre']]);
          }
          // Replaced, removed (NIL), and a change that would pass the limit changes nothing.
          assert.equal(await s.setMetadata(box.id, a.id, [{ entry: '/shared/comment', value: v('Résultats') }, { entry: '/private/comment', value: null }], 3), true);
          assert.deepEqual(await list(box.id, a.id), [['/shared/comment', 'Résultats']]);
          assert.equal(await s.setMetadata(box.id, a.id, [{ entry: '/private/a', value: v('1') }, { entry: '/private/b', value: v('2') }, { entry: '/shared/comment', value: v('x') }], 2), false, 'TOOMANY');
          assert.deepEqual(await list(box.id, a.id), [['/shared/comment', 'Résultats']], 'nothing half-stored');
          assert.equal(await s.setMetadata(box.id, a.id, [{ entry: '/private/a', value: v('1') }], 3), true, "b's private entry is not counted for a");
          await s.setMetadata(other.id, a.id, [{ entry: '/shared/comment', value: v('suit') }], 10);
          await s.renameFolder(m.id, other.name, `${other.name} bis`, '/');
          assert.deepEqual(await list((await s.getFolder(m.id, `${other.name} bis`))!.id, a.id), [['/shared/comment', 'suit']], 'follows RENAME');
          await s.deleteFolder(box.id);
          assert.deepEqual(await list(box.id, b.id), [], 'removed with the folder');
          assert.equal((await env.raw.read('metadata', 'value', 'user_id', b.id)) ?? null, null);
        });
      },
      sealed ? { sealer: new ValueSealer(KeyRing.generate(new Date('2026-12-07T00:00:00Z'))) } : undefined,
    );
  }

  area('golden rules', (t) => {
    t('activity: the latest time per kind kept; lifecycle fields updated (the row created when missing)', async (s) => {
      const a = await mailbox(s);
      const b = await mailbox(s);
      assert.equal(await s.getActivity(a.id), undefined);
      await s.recordActivity([a.id, b.id, a.id], 'login', 1_000);
      await s.recordActivity([a.id], 'login', 500);
      await s.recordActivity([a.id], 'read', 700);
      assert.deepEqual(await s.getActivity(a.id), {
        mailboxId: a.id, lastLoginAt: 1_000, lastReadAt: 700, lastSentAt: null, readingThresholdHours: null, unusedWarnedAt: null, objectionAt: null, suspendedAt: null, deletedSubstitute: null,
      });
      await s.recordActivity([b.id], 'sent', 2_000);
      assert.deepEqual([(await s.getActivity(b.id))!.lastLoginAt, (await s.getActivity(b.id))!.lastSentAt], [1_000, 2_000]);
      const u = await s.updateActivity(a.id, { readingThresholdHours: 48, unusedWarnedAt: 3_000 });
      assert.deepEqual(u, { ...(await s.getActivity(a.id))!, readingThresholdHours: 48, unusedWarnedAt: 3_000, lastLoginAt: 1_000 });
      const v = await s.updateActivity(a.id, { unusedWarnedAt: null, objectionAt: 4_000 });
      assert.deepEqual([v.readingThresholdHours, v.unusedWarnedAt, v.objectionAt], [48, null, 4_000]);
      const c = await mailbox(s);
      const w = await s.updateActivity(c.id, { suspendedAt: 5_000, deletedSubstitute: 'accueil@hopital.mssante.test' });
      assert.deepEqual([w.mailboxId, w.lastLoginAt, w.suspendedAt, w.deletedSubstitute], [c.id, null, 5_000, 'accueil@hopital.mssante.test']);
    });

    t('unread INBOX messages oldest first, rule notices left out; one notice per mailbox, kind and day', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      const d = (day: number) => new Date(`2026-12-0${day}T08:00:00.000Z`);
      const b1 = blob();
      await append(s, f.id, { date: d(3), blobId: b1 });
      await append(s, f.id, { date: d(1), flags: ['\\Seen'] });
      const b3 = blob();
      await append(s, f.id, { date: d(2), blobId: b3 });
      await append(s, f.id, { date: d(1), flags: ['\\Deleted'] });
      await append(s, (await s.getFolder(m.id, 'Sent'))!.id, { date: d(1) });
      assert.deepEqual(await s.unreadMessages(m.id, 10), [{ blobId: b3, internalDate: d(2).toISOString() }, { blobId: b1, internalDate: d(3).toISOString() }]);
      assert.deepEqual(await s.unreadMessages(m.id, 1), [{ blobId: b3, internalDate: d(2).toISOString() }]);
      const n = { mailboxId: m.id, kind: 'reading' as const, day: '2026-12-07', level: 1, sentAt: 10_000 };
      assert.equal(await s.claimRuleNotice(n), true);
      assert.equal(await s.claimRuleNotice({ ...n, level: 2, sentAt: 20_000 }), false, 'once per day');
      assert.equal(await s.claimRuleNotice({ ...n, kind: 'unused' }), true, 'per kind');
      assert.equal(await s.claimRuleNotice({ ...n, day: '2026-12-08' }), true, 'per day');
      const noticeBlob = blob('notice');
      await s.setRuleNoticeBlob(m.id, 'reading', '2026-12-07', noticeBlob);
      await s.deliver(local([m.id], { blobId: noticeBlob, internalDate: d(1) }));
      assert.deepEqual((await s.unreadMessages(m.id, 10)).map((x) => x.blobId), [b3, b1], 'the notice is not mail to read');
      assert.deepEqual(await s.listRuleNotices(m.id), [
        { mailboxId: m.id, kind: 'reading', day: '2026-12-07', level: 1, blobId: noticeBlob, sentAt: 10_000 },
        { mailboxId: m.id, kind: 'unused', day: '2026-12-07', level: 1, blobId: null, sentAt: 10_000 },
        { mailboxId: m.id, kind: 'reading', day: '2026-12-08', level: 1, blobId: null, sentAt: 10_000 },
      ]);
      assert.deepEqual(await s.listRuleNotices((await mailbox(s)).id), []);
    });

    t('urgency replies claimed once per period and sender', async (s) => {
      const m = await mailbox(s);
      assert.equal(await s.claimUrgencyReply(m.id, 'Urgence@Clinique.MSSante.test', 1_000, 0), true);
      assert.equal(await s.claimUrgencyReply(m.id, 'urgence@clinique.mssante.test', 1_500, 1_000), false);
      assert.equal(await s.claimUrgencyReply(m.id, 'urgence@clinique.mssante.test', 5_000, 1_001), true);
      assert.equal(await s.claimUrgencyReply(m.id, 'autre@clinique.mssante.test', 5_000, 1_001), true);
      assert.equal(await s.claimAbsenceReply(m.id, 'urgence@clinique.mssante.test', 5_000, 4_000), true, 'absence replies are a separate memory');
    });
  });

  // ---- usage indicators and metrics ---------------------------------------------------------
  area('usage indicators', (t) => {
    t('usageMailboxes: active at the end of the period, created, suspended and deleted in it, per structure and type', async (s) => {
      const st = await structure(s);
      const [m1, m2, m3] = [await mailbox(s, { structureId: st.id, type: 'PER' }), await mailbox(s, { structureId: st.id, type: 'PER' }), await mailbox(s, { structureId: st.id, type: 'PER' })];
      const org = await mailbox(s, { structureId: st.id, type: 'ORG' });
      await s.updateMailbox(m2.id, { state: 'suspended' });
      await s.updateMailbox(m3.id, { state: 'deleted' });
      const from = new Date(Date.parse(m1.createdAt) - 86_400_000).toISOString();
      const to = new Date(Date.now() + 86_400_000).toISOString();
      const mine = (await s.usageMailboxes(from, to)).filter((x) => x.structureId === st.id);
      assert.deepEqual(mine.sort((a, b) => a.mailboxType.localeCompare(b.mailboxType)), [
        { structureId: st.id, mailboxType: 'ORG', active: 1, created: 1, suspended: 0, deleted: 0 },
        { structureId: st.id, mailboxType: 'PER', active: 1, created: 3, suspended: 1, deleted: 1 },
      ]);
      assert.deepEqual((await s.usageMailboxes('2000-01-01T00:00:00.000Z', '2000-02-01T00:00:00.000Z')).filter((x) => x.structureId === st.id), [], 'before they existed');
      assert.ok(org.id > m1.id);
    });

    t('usageConnections: authentication attempts per protocol, method and outcome (credential management left out)', async (s) => {
      const e = (at: string, protocol: string, method: string, success: boolean, actor: string | null = null) => ({ at, login: 'claire.martin', userId: null, protocol, method, remote: null, success, reason: null, actor });
      for (const x of [
        e('2024-05-01T10:00:00.000Z', 'imap', 'password', true),
        e('2024-05-02T10:00:00.000Z', 'imap', 'password', true),
        e('2024-05-03T10:00:00.000Z', 'imap', 'password', false),
        e('2024-05-31T23:59:59.999Z', 'smtp', 'app-password', false),
        e('2024-05-04T10:00:00.000Z', 'http', 'app-password-created', true, 'admin'),
        e('2024-06-01T00:00:00.000Z', 'imap', 'password', true),
      ])
        await s.recordAuth(x);
      const got = (await s.usageConnections('2024-05-01T00:00:00.000Z', '2024-06-01T00:00:00.000Z')).sort((a, b) => `${a.protocol}${a.method}${+a.success}`.localeCompare(`${b.protocol}${b.method}${+b.success}`));
      assert.deepEqual(got, [
        { protocol: 'imap', method: 'password', success: false, count: 1 },
        { protocol: 'imap', method: 'password', success: true, count: 2 },
        { protocol: 'smtp', method: 'app-password', success: false, count: 1 },
      ]);
    });
  });

  // ---- traces --------------------------------------------------------------------------------
  area('functional traces', (t) => {
    t('recorded, listed per mailbox oldest first within [from, to), purged before an instant', async (s) => {
      const m = await mailbox(s);
      const other = await mailbox(s);
      const tr = (at: string, mailboxId = m.id) => ({
        at, mailboxId, action: 'moved' as const, actorUserId: null, actorLogin: 'claire.martin', delegate: true, protocol: 'imap' as const, remote: '192.0.2.7', detail: { from: 'INBOX', to: 'Archives', count: 2, uids: [4, 5] },
      });
      await s.recordTrace(tr('2026-03-02T10:00:00.000Z'));
      await s.recordTrace(tr('2026-03-01T10:00:00.000Z'));
      await s.recordTrace({ ...tr('2026-03-03T10:00:00.000Z'), action: 'delivered', delegate: false, protocol: 'mx', remote: null, actorLogin: 'system', detail: { folder: 'INBOX', uid: 1, domain: 'clinique.mssante.test' } });
      await s.recordTrace(tr('2026-03-02T12:00:00.000Z', other.id));
      const all = await s.listTraces(m.id);
      assert.deepEqual(all.map((x) => x.at), ['2026-03-01T10:00:00.000Z', '2026-03-02T10:00:00.000Z', '2026-03-03T10:00:00.000Z']);
      const { id, ...first } = all[0];
      assert.ok(Number.isInteger(id));
      assert.deepEqual(first, tr('2026-03-01T10:00:00.000Z'));
      assert.deepEqual([all[2].action, all[2].delegate, all[2].protocol, all[2].remote, all[2].detail], ['delivered', false, 'mx', null, { folder: 'INBOX', uid: 1, domain: 'clinique.mssante.test' }]);
      assert.deepEqual((await s.listTraces(m.id, { from: '2026-03-02T10:00:00.000Z', to: '2026-03-03T10:00:00.000Z' })).map((x) => x.at), ['2026-03-02T10:00:00.000Z']);
      assert.deepEqual((await s.listTraces(m.id, { from: '2026-03-02T00:00:00.000Z' })).length, 2);
      assert.deepEqual((await s.listTraces(m.id, { to: '2026-03-02T00:00:00.000Z' })).length, 1);
      assert.equal(await s.purgeTraces('2026-03-02T11:00:00.000Z'), 2);
      assert.deepEqual((await s.listTraces(m.id)).map((x) => x.at), ['2026-03-03T10:00:00.000Z']);
      assert.equal((await s.listTraces(other.id)).length, 1);
      assert.equal(await s.purgeTraces('2026-03-02T11:00:00.000Z'), 0);
    });
  });

  // ---- integrations --------------------------------------------------------------------------
  area('software integration', (t) => {
    t('API tokens: created, found active by digest, listed newest first, touched, revoked once', async (s) => {
      const u = await user(s);
      const v = await user(s);
      const a = await s.createApiToken({ userId: u.id, label: 'Logiciel de cabinet', secretHash: `sha-a-${engine}`, createdBy: 'admin' });
      const b = await s.createApiToken({ userId: v.id, label: 'LIS', secretHash: `sha-b-${engine}`, createdBy: 'admin' });
      assert.deepEqual([a.userId, a.label, a.createdBy, a.lastUsedAt, a.lastUsedFrom, a.revokedAt], [u.id, 'Logiciel de cabinet', 'admin', null, null, null]);
      assert.deepEqual(await s.findApiToken(`sha-a-${engine}`), a);
      assert.equal(await s.findApiToken('sha-unknown'), undefined);
      assert.deepEqual((await s.listApiTokens()).map((x) => x.id).filter((id) => id === a.id || id === b.id), [b.id, a.id]);
      assert.deepEqual((await s.listApiTokens(u.id)).map((x) => x.id), [a.id]);
      await s.touchApiToken(a.id, '2026-12-07T12:00:00.000Z', '198.51.100.4');
      const touched = (await s.findApiToken(`sha-a-${engine}`))!;
      assert.deepEqual([touched.lastUsedAt, touched.lastUsedFrom], ['2026-12-07T12:00:00.000Z', '198.51.100.4']);
      const r = await s.revokeApiToken(a.id);
      assert.equal(r?.id, a.id);
      assert.ok(r?.revokedAt);
      assert.equal(await s.revokeApiToken(a.id), undefined, 'once');
      assert.equal(await s.findApiToken(`sha-a-${engine}`), undefined);
      assert.ok((await s.listApiTokens(u.id))[0].revokedAt, 'revoked ones stay listed');
    });

    t('webhooks and the inbound feed: cursor from registration, due tries, acknowledgement and abandon as compare-and-set', async (s) => {
      const u = await user(s);
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      const [c1] = await s.deliver(local([m.id], { internalDate: new Date('2026-12-07T08:00:00.000Z') }));
      const [c2] = await s.deliver(local([m.id], { internalDate: new Date('2026-12-07T08:01:00.000Z') }));
      await append(s, (await s.getFolder(m.id, 'Sent'))!.id);
      const feed = await s.inboundAfter(m.id, 0, 10);
      const m1 = (await s.getMessage(c1.messageId))!;
      assert.deepEqual(feed, [
        { id: c1.messageId, folderId: f.id, uid: c1.uid, blobId: m1.blobId, size: 1234, internalDate: '2026-12-07T08:00:00.000Z' },
        { id: c2.messageId, folderId: f.id, uid: c2.uid, blobId: (await s.getMessage(c2.messageId))!.blobId, size: 1234, internalDate: '2026-12-07T08:01:00.000Z' },
      ], 'INBOX only, in arrival order');
      assert.deepEqual((await s.inboundAfter(m.id, c1.messageId, 10)).map((x) => x.id), [c2.messageId]);
      assert.deepEqual((await s.inboundAfter(m.id, 0, 1)).map((x) => x.id), [c1.messageId]);
      const now = await s.createWebhook({ userId: u.id, mailboxId: m.id, url: 'https://logiciel.test/hook', secret: 'whsec-1', since: 'now' });
      const all = await s.createWebhook({ userId: u.id, mailboxId: m.id, url: 'https://logiciel.test/hook2', secret: 'whsec-2', since: 'all' });
      assert.equal(now.cursor, c2.messageId, "'now': after the newest message of the INBOX");
      assert.equal(all.cursor, 0);
      assert.deepEqual([now.userId, now.mailboxId, now.url, now.revokedAt, now.attempts, now.failingSince, now.lastError, now.delivered, now.abandoned], [u.id, m.id, 'https://logiciel.test/hook', null, 0, null, null, 0, 0]);
      assert.deepEqual(await s.getWebhook(now.id), { ...now, secret: 'whsec-1' });
      assert.equal(await s.getWebhook(all.id + 10_000), undefined);
      const listed = await s.listWebhooks({ mailboxId: m.id });
      assert.deepEqual(listed, [now, all]);
      assert.ok(listed.every((w) => !('secret' in w)), 'listing never shows the secret');
      assert.deepEqual((await s.listWebhooks({ userId: u.id })).map((w) => w.id), [now.id, all.id]);
      assert.deepEqual(await s.listWebhooks({ userId: (await user(s)).id }), []);
      assert.deepEqual((await s.listWebhooks()).map((w) => w.id).filter((id) => id === now.id || id === all.id), [now.id, all.id]);
      const t0 = Date.now();
      assert.deepEqual((await s.dueWebhooks(t0, 10)).filter((w) => w.mailboxId === m.id).map((w) => [w.id, w.secret]), [[now.id, 'whsec-1'], [all.id, 'whsec-2']]);
      assert.equal(await s.webhookAcknowledged(all.id, 0, c1.messageId), true);
      assert.equal(await s.webhookAcknowledged(all.id, 0, c1.messageId), false, 'compare-and-set on the old cursor');
      const acked = (await s.getWebhook(all.id))!;
      assert.deepEqual([acked.cursor, acked.delivered, acked.attempts, acked.failingSince, acked.lastError], [c1.messageId, 1, 0, null, null]);
      await s.webhookFailed(all.id, { error: 'HTTP 503', nextAttemptAt: t0 + 60_000, failingSince: t0 });
      await s.webhookFailed(all.id, { error: 'HTTP 502', nextAttemptAt: t0 + 120_000, failingSince: t0 });
      const failing = (await s.getWebhook(all.id))!;
      assert.deepEqual([failing.attempts, failing.nextAttemptAt, failing.failingSince, failing.lastError, failing.cursor], [2, t0 + 120_000, t0, 'HTTP 502', c1.messageId]);
      assert.deepEqual((await s.dueWebhooks(t0 + 119_999, 10)).map((w) => w.id).filter((id) => id === now.id || id === all.id), [now.id], 'not due before its next try');
      assert.deepEqual((await s.dueWebhooks(t0 + 120_000, 10)).map((w) => w.id).filter((id) => id === now.id || id === all.id), [now.id, all.id]);
      assert.equal(await s.webhookAbandoned(all.id, 0, c2.messageId, 'gave up'), false, 'wrong cursor');
      assert.equal(await s.webhookAbandoned(all.id, c1.messageId, c2.messageId, 'gave up after 24 h'), true);
      const abandoned = (await s.getWebhook(all.id))!;
      assert.deepEqual([abandoned.cursor, abandoned.abandoned, abandoned.delivered, abandoned.attempts, abandoned.failingSince, abandoned.lastError], [c2.messageId, 1, 1, 0, null, 'gave up after 24 h']);
      assert.equal(await s.revokeWebhook(now.id), true);
      assert.equal(await s.revokeWebhook(now.id), false);
      assert.ok((await s.getWebhook(now.id))!.revokedAt);
      assert.ok(!(await s.dueWebhooks(t0 + 10_000_000, 100)).some((w) => w.id === now.id), 'a revoked webhook is never due');
    });
  });

  // ---- message files -------------------------------------------------------------------------
  area('message files: analysis, header search, garbage', (t) => {
    /** The handshake's signatures of branch `blobs` (engines before it ignore the extra arguments). */
    interface BlobHandshake {
      pinBlob(blobId: string, token: string, now: number, pinMs: number, removalLeaseMs: number): Promise<boolean>;
      unpinBlobs(pins: { blobId: string; token: string }[]): Promise<void>;
      pruneBlobPins(now: number): Promise<number>;
      claimBlobRemoval(blobId: string, now: number, removalLeaseMs: number): Promise<boolean>;
      forgetBlobGarbage(blobId: string, since: number): Promise<void>;
    }
    const raw = (headers: string) => Buffer.from(`${headers}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBonjour,\r\nle compte rendu suit.\r\n`);
    const messages = {
      a: raw('From: "Dr Claire Martin" <claire.martin@hopital.mssante.test>\r\nTo: accueil@clinique.mssante.test\r\nSubject: Compte rendu opératoire\r\nMessage-ID: <a1@hopital.mssante.test>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0100'),
      b: raw('From: labo@labo.mssante.test\r\nTo: accueil@clinique.mssante.test\r\nCc: "Dr Jean Dupont" <jean.dupont@clinique.mssante.test>\r\nSubject: =?UTF-8?Q?R=C3=A9sultats_biologiques?=\r\nMessage-ID: <b2@labo.mssante.test>\r\nDate: Mon, 07 Dec 2026 11:00:00 +0100'),
      c: raw('From: "Secrétariat Martin" <secretariat@hopital.mssante.test>\r\nTo: accueil@clinique.mssante.test\r\nSubject: Rendez-vous\r\nMessage-ID: <c3@hopital.mssante.test>\r\nDate: Mon, 07 Dec 2026 12:00:00 +0100'),
    };
    const id = (b: Buffer) => createHash('sha256').update(b).update(engine).digest('hex');

    t('blob meta: undefined until recorded, then the same JSON', async (s) => {
      const b = id(messages.a);
      assert.equal(await s.getBlobMeta(b), undefined);
      const info = JSON.stringify(analyzeMessage(messages.a));
      await s.setBlobMeta(b, info);
      assert.equal(await s.getBlobMeta(b), info);
      assert.deepEqual(JSON.parse((await s.getBlobMeta(b))!), JSON.parse(info));
    });

    t('setBlobAnalyses: the analyses and header search rows of several files at once, as setBlobMeta and setSearchHeaders would record them', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      const files = [messages.a, messages.b].map((b) => ({ b, id: createHash('sha256').update(b).update(`${engine} analyses`).digest('hex') }));
      await s.setBlobAnalyses([]);
      await s.setBlobAnalyses(files.map(({ b, id }) => ({ blobId: id, info: JSON.stringify(analyzeMessage(b)), searchVersion: HEADER_INDEX_VERSION, searchColumns: headerIndexRow(analyzeMessage(b), b) })));
      for (const { b, id } of files) {
        assert.deepEqual(JSON.parse((await s.getBlobMeta(id))!), JSON.parse(JSON.stringify(analyzeMessage(b))));
        assert.equal(await s.hasSearchHeaders(id, HEADER_INDEX_VERSION), true);
      }
      const { uids } = await s.appendMessages(f.id, files.map(({ b, id }) => ({ blobId: id, size: b.length, flags: [], internalDate: new Date() })));
      const r = await s.searchHeaderCandidates(f.id, indexedColumn('from', true)!, indexNeedle('martin')!, HEADER_INDEX_VERSION, 2);
      assert.deepEqual([r.matched, r.unindexed], [[uids[0]], []], 'the rows answer searches of the appended messages');
      await assert.rejects(s.setBlobAnalyses([{ blobId: files[0].id, info: '{}', searchVersion: HEADER_INDEX_VERSION, searchColumns: { nope: null } }]), /unknown search column/);
    });

    t('search headers: rows set before or after the delivery both count; matched and unindexed UIDs; an empty needle matches the field’s presence', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      const row = (b: Buffer) => headerIndexRow(analyzeMessage(b), b);
      const [ba, bb, bc] = [id(messages.a), id(messages.b), id(messages.c)];
      await s.setSearchHeaders(ba, HEADER_INDEX_VERSION, row(messages.a)); // analysed before its delivery (usage indicators)
      await s.deliver(local([m.id], { blobId: ba, size: messages.a.length }));
      await s.deliver(local([m.id], { blobId: bb, size: messages.b.length }));
      await s.deliver(local([m.id], { blobId: bc, size: messages.c.length }));
      await s.setSearchHeaders(bb, HEADER_INDEX_VERSION, row(messages.b));
      assert.equal(await s.hasSearchHeaders(ba, HEADER_INDEX_VERSION), true);
      assert.equal(await s.hasSearchHeaders(bc, HEADER_INDEX_VERSION), false);
      assert.equal(await s.hasSearchHeaders(ba, HEADER_INDEX_VERSION + 1), false, 'another version');
      const without = await s.blobsWithoutSearchHeaders(100_000);
      assert.ok(without.includes(bc) && !without.includes(ba) && !without.includes(bb), `the backfill's list names the file without its row: ${without}`);
      const from = indexedColumn('from', true)!;
      const subject = indexedColumn('subject', true)!;
      const cc = indexedColumn('cc', false)!;
      for (const folderSize of [3, 1_000_000]) {
        const search = async (column: string, needle: Buffer) => {
          const r = await s.searchHeaderCandidates(f.id, column, needle, HEADER_INDEX_VERSION, folderSize);
          return { matched: sortNum(r.matched), unindexed: sortNum(r.unindexed) };
        };
        assert.deepEqual(await search(from, indexNeedle('MARTIN')!), { matched: [1], unindexed: [3] }, `folderSize ${folderSize}: FROM martin (case-folded)`);
        assert.deepEqual(await search(subject, indexNeedle('résultats')!), { matched: [2], unindexed: [3] }, 'SUBJECT on the decoded text');
        assert.deepEqual(await search(cc, Buffer.alloc(0)), { matched: [2], unindexed: [3] }, 'RFC 9051 §6.4.4: an empty string matches every message with the field');
        assert.deepEqual(await search(from, indexNeedle('nobody')!), { matched: [], unindexed: [3] });
        assert.deepEqual(await search(from, Buffer.from('%')), { matched: [], unindexed: [3] }, 'a needle is bytes, never a pattern');
        assert.deepEqual(await search(from, Buffer.from('_')), { matched: [], unindexed: [3] });
        assert.deepEqual(await search(cc, Buffer.from([0x00, 0xff])), { matched: [], unindexed: [3] });
      }
      await s.setSearchHeaders(bc, HEADER_INDEX_VERSION, { ...row(messages.c), h_cc: Buffer.from([0x61, 0x00, 0xff, 0x62]) });
      assert.deepEqual((await s.searchHeaderCandidates(f.id, cc, Buffer.from([0x00, 0xff]), HEADER_INDEX_VERSION, 3)).matched, [3], 'values and needles are bytes (NUL and 0xFF included)');
      assert.deepEqual((await s.searchHeaderCandidates(f.id, cc, Buffer.from([0x62, 0x00]), HEADER_INDEX_VERSION, 3)).matched, []);
      assert.deepEqual(sortNum((await s.searchHeaderCandidates(f.id, from, indexNeedle('martin')!, HEADER_INDEX_VERSION, 3)).matched), [1, 3], 'the display name too');
      assert.deepEqual((await s.searchHeaderCandidates(f.id, from, indexNeedle('martin')!, HEADER_INDEX_VERSION, 3)).unindexed, []);
      assert.ok(!(await s.blobsWithoutSearchHeaders(100_000)).includes(bc));
      const other = await mailbox(s);
      assert.deepEqual(await s.searchHeaderCandidates((await inbox(s, other.id)).id, from, indexNeedle('martin')!, HEADER_INDEX_VERSION, 0), { matched: [], unindexed: [] }, 'only the folder asked for');
      await assert.rejects(s.searchHeaderCandidates(f.id, 'subject; DROP TABLE messages', Buffer.from('x'), HEADER_INDEX_VERSION, 3), 'an unknown column rejects');
    });

    t('garbage: a file losing its last reference becomes a candidate; claimed (analysis forgotten) then forgotten; a still-referenced one is dropped', async (s) => {
      const h = s as Store & BlobHandshake;
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      const g = blob('g');
      await s.deliver(local([m.id], { blobId: g }));
      await s.setBlobMeta(g, '{"x":1}');
      await s.setSearchHeaders(g, HEADER_INDEX_VERSION, { s_subject: Buffer.from('x') });
      assert.equal(await s.isBlobReferenced(g), true);
      assert.ok(!(await s.blobGarbage(100_000)).includes(g));
      await s.storeFlags(f.id, [1], 'add', ['\\Deleted']);
      await s.expunge(f.id);
      assert.equal(await s.isBlobReferenced(g), false);
      assert.ok((await s.blobGarbage(100_000)).includes(g));
      assert.equal((await s.blobGarbage(1)).length, 1, 'up to the limit');
      const claimedAt = Date.now();
      assert.equal(await h.claimBlobRemoval(g, claimedAt, 60_000), true);
      assert.equal(await s.getBlobMeta(g), undefined, 'its analysis is forgotten');
      assert.equal(await s.hasSearchHeaders(g, HEADER_INDEX_VERSION), false);
      assert.ok((await s.blobGarbage(100_000)).includes(g), 'the candidate stays until the file is gone');
      await h.forgetBlobGarbage(g, claimedAt);
      assert.ok(!(await s.blobGarbage(100_000)).includes(g));
      const k = blob('k');
      await s.deliver(local([m.id], { blobId: k }));
      await s.setBlobMeta(k, '{"k":1}');
      const arch = await s.createFolder(m.id, 'Archives');
      await s.copyMessages(f.id, [2], arch.id, false);
      await s.storeFlags(f.id, [2], 'add', ['\\Deleted']);
      await s.expunge(f.id);
      assert.ok((await s.blobGarbage(100_000)).includes(k), 'one reference gone');
      assert.equal(await s.isBlobReferenced(k), true, 'the copy in Archives holds it');
      assert.equal(await h.claimBlobRemoval(k, Date.now(), 60_000), false);
      assert.ok(!(await s.blobGarbage(100_000)).includes(k), 'dropped from the candidates');
      assert.equal(await s.getBlobMeta(k), '{"k":1}', 'its analysis kept');
    });

    // Branch `blobs` (shared spec of issue 12): the pin/removal handshake between a put and the
    // collector of every process and node. Registered once the Store interface has it.
    if (storeInterfaceMethods().includes('pinBlob'))
      t('pins and removal claims: a live pin holds the file, a claimed removal refuses pins until its lease passes, forget ends only its own claim', async (s) => {
        const p = s as Store & BlobHandshake;
        const now = 1_000_000_000_000;
        const b = blob('pinned');
        assert.equal(await p.pinBlob(b, 'put-1', now, 30_000, 60_000), true, 'a file no one claimed: pinned');
        assert.equal(await p.claimBlobRemoval(b, now + 1, 60_000), false, 'a live pin holds it');
        await p.unpinBlobs([{ blobId: b, token: 'put-1' }]);
        assert.equal(await p.claimBlobRemoval(b, now + 2, 60_000), true, 'unpinned and unreferenced: its removal claimed');
        assert.ok((await s.blobGarbage(100_000)).includes(b), 'the claim made it a candidate');
        assert.equal(await p.pinBlob(b, 'put-2', now + 3, 30_000, 60_000), false, 'a claimed removal refuses a pin');
        assert.equal(await p.claimBlobRemoval(b, now + 4, 60_000), false, 'claimed once within the lease');
        assert.equal(await p.pinBlob(b, 'put-3', now + 2 + 60_000, 30_000, 60_000), true, 'a claim older than its lease was abandoned: the pin clears it');
        assert.equal(await p.claimBlobRemoval(b, now + 2 + 60_001, 60_000), false, 'pinned again');
        await p.unpinBlobs([{ blobId: b, token: 'put-3' }]);
        const t2 = now + 2 + 60_002;
        assert.equal(await p.claimBlobRemoval(b, t2, 60_000), true);
        await p.forgetBlobGarbage(b, now + 2);
        assert.ok((await s.blobGarbage(100_000)).includes(b), 'forgetting the old claim leaves the new one');
        await p.forgetBlobGarbage(b, t2);
        assert.ok(!(await s.blobGarbage(100_000)).includes(b));
        const c = blob('expiring');
        assert.equal(await p.pinBlob(c, 'put-4', now, 10, 60_000), true);
        assert.ok(!(await s.blobGarbage(100_000)).includes(c), 'a pinned file is no candidate');
        assert.ok((await p.pruneBlobPins(now + 10)) >= 1, 'the expired pin pruned');
        // Its put never released it (the process died before its commit): the file may be an orphan.
        assert.ok((await s.blobGarbage(100_000)).includes(c), 'an expired pin makes its file a candidate');
        assert.equal(await p.claimBlobRemoval(c, now + 10, 60_000), true, 'an expired pin holds nothing');
        const m = await mailbox(s);
        const r = blob('referenced');
        await s.deliver(local([m.id], { blobId: r }));
        assert.equal(await p.claimBlobRemoval(r, Date.now(), 60_000), false, 'a referenced file is never claimed');
        assert.equal(await p.pinBlob(r, 'put-5', Date.now(), 30_000, 60_000), true, 'and may be pinned');
        await p.unpinBlobs([{ blobId: r, token: 'put-5' }]);
        for (let i = 0; i < 5; i++) {
          const d = blob(`race-${i}`);
          const [pinned, claimed] = await Promise.all([p.pinBlob(d, 'put-6', now, 30_000, 60_000), p.claimBlobRemoval(d, now, 60_000)]);
          assert.notEqual(pinned, claimed, 'a pin and a removal claim of one file never both win, nor both lose');
        }
      });

    // Branch imapfill (issue 15): a MULTIAPPEND's pins asked for at once, each answered as pinBlob().
    if (storeInterfaceMethods().includes('pinBlobs'))
      t('pinBlobs: each file pinned or refused as pinBlob() would, the answers in order', async (s) => {
        const p = s as Store & BlobHandshake & { pinBlobs(pins: { blobId: string; token: string }[], now: number, pinMs: number, removalLeaseMs: number): Promise<boolean[]> };
        const now = 1_000_000_000_000;
        const [free, claimed, twice] = [blob('batch-free'), blob('batch-claimed'), blob('batch-twice')];
        assert.equal(await p.claimBlobRemoval(claimed, now, 60_000), true);
        const pins = [
          { blobId: free, token: 'm-1' },
          { blobId: claimed, token: 'm-2' },
          { blobId: twice, token: 'm-3' },
          { blobId: twice, token: 'm-4' },
        ];
        assert.deepEqual(await p.pinBlobs(pins, now + 1, 30_000, 60_000), [true, false, true, true]);
        assert.deepEqual(await p.pinBlobs([], now + 1, 30_000, 60_000), []);
        assert.equal(await p.claimBlobRemoval(free, now + 2, 60_000), false, 'a live pin holds it');
        await p.unpinBlobs([{ blobId: twice, token: 'm-3' }]);
        assert.equal(await p.claimBlobRemoval(twice, now + 2, 60_000), false, 'its other pin still holds it');
        await p.unpinBlobs([pins[0], pins[3]]);
        assert.equal(await p.claimBlobRemoval(twice, now + 3, 60_000), true, 'both pins gone');
        assert.deepEqual(await p.pinBlobs([pins[1]], now + 60_001, 30_000, 60_000), [true], 'a claim older than its lease is cleared');
      });

    // The MX's one commit per message (DeliveryRequest.analysis, deliveredTrace, releasePins):
    // the file's analysis, its header search row, the 'delivered' traces and the end of the put's
    // pin commit with the copies, or none of them does.
    t('deliver() with the analysis, the delivered traces and the pins: all committed with the copies, nothing when it fails', async (s) => {
      const p = s as Store & BlobHandshake;
      const m = await mailbox(s);
      const info = analyzeMessage(messages.c);
      const analysis = { info: JSON.stringify(info), searchHeaders: { version: HEADER_INDEX_VERSION, columns: headerIndexRow(info, messages.c) } };
      const deliveredTrace = { at: '2026-12-07T16:00:00.000Z', actorUserId: null, actorLogin: 'system', delegate: false, protocol: 'mx' as const, remote: '192.0.2.7', fromDomain: 'hopital.mssante.test' };
      // A pinned file the delivery does not reference: once its pin is gone it can be claimed.
      const other = blob('pin-released-by-delivery');
      const now = Date.now();
      assert.equal(await p.pinBlob(other, 'put-a', now, 600_000, 60_000), true);
      const failing = local([m.id + 10_000], { blobId: blob('failing'), size: messages.c.length, analysis, deliveredTrace, releasePins: [{ blobId: other, token: 'put-a' }] });
      await assert.rejects(s.deliver(failing), 'an unknown mailbox rejects');
      assert.equal(await s.getBlobMeta(failing.blobId), undefined, 'no analysis without the copies');
      assert.equal(await s.hasSearchHeaders(failing.blobId, HEADER_INDEX_VERSION), false, 'no search row without the copies');
      assert.equal(await p.claimBlobRemoval(other, now + 1, 60_000), false, 'the pin stays when the delivery fails');
      const req = local([m.id], { blobId: blob('analysed'), size: messages.c.length, analysis, deliveredTrace, releasePins: [{ blobId: other, token: 'put-a' }] });
      const [copy] = await s.deliver(req);
      assert.equal(await s.getBlobMeta(req.blobId), analysis.info, 'the analysis committed with the copy');
      assert.equal(await s.hasSearchHeaders(req.blobId, HEADER_INDEX_VERSION), true, 'the search row too');
      assert.ok(!(await s.blobsWithoutSearchHeaders(100_000)).includes(req.blobId), 'and the copy is marked indexed');
      const traces = (await s.listTraces(m.id)).map(({ id, ...tr }) => tr);
      assert.deepEqual(traces, [
        { at: deliveredTrace.at, mailboxId: m.id, action: 'delivered', actorUserId: null, actorLogin: 'system', delegate: false, protocol: 'mx', remote: '192.0.2.7', detail: { folder: 'INBOX', uid: copy.uid, fromDomain: 'hopital.mssante.test' } },
      ]);
      assert.equal(await p.claimBlobRemoval(other, now + 2, 60_000), true, 'the pin ended with the commit');
    });
  });

  // ---- one transaction: all or nothing ---------------------------------------------------------
  area('failed calls change nothing', (t) => {
    t('deliver() to a known and an unknown mailbox rejects and stores nothing (copies, queue rows, usage)', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      const before = await s.folderStatus(f.id);
      const req = local([m.id, m.id + 10_000], { remote: [remote('x@autre.mssante.test')], usage: [{ at: '2023-01-05T00:00:00.000Z', structureId: m.structureId, mailboxType: 'ORG', flow: 'received', peer: 'operator', attachment: false, xdm: false }] });
      await assert.rejects(s.deliver(req));
      assert.deepEqual(await s.folderStatus(f.id), before);
      assert.equal((await s.listQueue()).filter((x) => x.blobId === req.blobId).length, 0);
      assert.deepEqual(await s.usageMessages('2023-01-01T00:00:00.000Z', '2023-02-01T00:00:00.000Z'), []);
      assert.equal(await s.isBlobReferenced(req.blobId), false);
    });

    t('completeQueueItems with a DSN for an unknown mailbox rejects and records no outcome', async (s) => {
      const sender = await mailbox(s);
      const req = local([], { senderMailboxId: sender.id, remote: [remote('x@autre.mssante.test')] });
      await s.deliver(req);
      const [item] = (await s.listQueue({ status: 'queued' })).filter((x) => x.blobId === req.blobId);
      await assert.rejects(s.completeQueueItems({ sent: [], failed: [{ id: item.id, error: '550 5.1.1' }], deferred: [], dsns: [{ blobId: blob('dsn'), size: 10, mailboxId: sender.id + 10_000 }] }));
      const [again] = (await s.listQueue()).filter((x) => x.id === item.id);
      assert.deepEqual([again.status, again.attempts, again.lastError], ['queued', 0, null]);
    });

    t('renameFolder onto an existing descendant name rejects and renames nothing', async (s) => {
      const m = await mailbox(s);
      await s.createFolder(m.id, 'P');
      await s.createFolder(m.id, 'P/2026');
      await s.createFolder(m.id, 'Q/2026');
      await assert.rejects(s.renameFolder(m.id, 'P', 'Q', '/'), StoreConflictError);
      const names = (await s.listFolders(m.id)).map((x) => x.name);
      assert.ok(names.includes('P') && names.includes('P/2026') && !names.includes('Q'), `nothing renamed: ${names}`);
    });

    t('a move to an unknown folder rejects and leaves the source intact', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      await append(s, f.id);
      const modseq = await s.folderModseq(f.id);
      await assert.rejects(s.copyMessages(f.id, [1], f.id + 10_000, true));
      assert.deepEqual(await s.folderUids(f.id), [1]);
      assert.equal(await s.folderModseq(f.id), modseq);
      assert.deepEqual(await s.expungedSince(f.id, 0), []);
    });

    t('a refused enrolment or confirmation leaves the second factor and its codes as they were', async (s) => {
      const u = await user(s);
      await s.setPendingTotp(u.id, 'FIRST');
      await s.confirmTotp(u.id, 10, ['c1', 'c2']);
      const before = await s.getTotp(u.id);
      await assert.rejects(s.setPendingTotp(u.id, 'SECOND'));
      await assert.rejects(s.confirmTotp(u.id, 20, ['c3']));
      assert.deepEqual(await s.getTotp(u.id), before);
      assert.equal(await s.remainingRecoveryCodes(u.id), 2);
      assert.equal(await s.useRecoveryCode(u.id, 'c3'), false);
    });
  });

  // ---- text as clients send it -----------------------------------------------------------------
  area('text as clients send it', (t) => {
    // A login or address is whatever a client sent (SMTP AUTH LOGIN's base64 may decode to a NUL,
    // so may a JSON login on the web): a lookup answers "no such row", the failed attempt is still
    // audited and counted by the lockout, never an engine error.
    const nul = 'claire\u0000martin';
    t('lookups with a NUL character find nothing (no engine error)', async (s) => {
      const m = await mailbox(s);
      assert.equal(await s.findUserByLogin(nul), undefined);
      assert.equal(await s.findMailboxByAddress(`${nul}@hopital.mssante.test`), undefined);
      assert.equal(await s.findHttpSession(nul), undefined);
      assert.equal(await s.findApiToken(nul), undefined);
      assert.equal(await s.getFolder(m.id, `INBOX${nul}`), undefined);
    });

    t('a failed attempt with a NUL in its login is audited and counted by the lockout', async (s) => {
      await s.recordAuth({ at: '2026-12-07T09:00:00.000Z', login: nul, userId: null, protocol: 'smtp', method: 'LOGIN', remote: '203.0.113.9', success: false, reason: 'unknown-user', actor: null });
      const [last] = await s.listAuthAudit(1);
      assert.deepEqual([last.protocol, last.method, last.remote, last.success, last.reason], ['smtp', 'LOGIN', '203.0.113.9', false, 'unknown-user']);
      assert.ok(last.login.startsWith('claire') && last.login.endsWith('martin'), `the login as audited: ${JSON.stringify(last.login)}`);
      // Instants no other area uses: on PostgreSQL every area shares one database (other nodes),
      // and the lockout area counts what its purge removes.
      await s.recordAuthFailure(`login:${nul}`, 9_000_001_000);
      await s.recordAuthFailure(`login:${nul}`, 9_000_002_000);
      assert.equal(await s.countAuthFailures(`login:${nul}`, 0), 2);
      assert.equal(await s.countAuthFailures('login:claire', 0), 0, 'another key');
    });

    t('non-ASCII text: a login and an address are found by the exact spelling they were created with', async (s) => {
      // core/ admits ASCII logins and addresses only; the store itself takes any text.
      const u = await s.createUser({ login: `Élodie.Lefèvre${next()}`, displayName: 'Élodie Lefèvre', practitionerId: null, passwordHash: 'h' });
      assert.equal((await s.findUserByLogin(u.login))?.id, u.id);
      const m = await s.createMailbox({ address: `élodie.lefèvre${next()}@hôpital.mssante.test`, type: 'PER', displayName: 'x', ownerUserId: null, practitionerId: null, structureId: null, listeRouge: false });
      assert.equal((await s.findMailboxByAddress(m.address))?.id, m.id);
    });

    t('an SMTPUTF8 sender (RFC 6531): one absence or urgency reply per period whatever the case of its letters, its last reply found', async (s) => {
      const m = await mailbox(s);
      assert.equal(await s.claimAbsenceReply(m.id, 'Élodie@Hôpital.test', 1_000, 0), true);
      assert.equal(await s.lastAbsenceReply(m.id, 'Élodie@Hôpital.test'), 1_000, 'the exact spelling');
      assert.equal(await s.lastAbsenceReply(m.id, 'élodie@hôpital.test'), 1_000, 'lower case');
      assert.equal(await s.claimAbsenceReply(m.id, 'élodie@hôpital.test', 1_500, 1_000), false, 'the same sender within the period');
      assert.equal(await s.claimUrgencyReply(m.id, 'Élodie@Hôpital.test', 1_000, 0), true);
      assert.equal(await s.claimUrgencyReply(m.id, 'ÉLODIE@HÔPITAL.TEST', 1_500, 1_000), false);
    });

    t('a submitted message whose Subject and Message-ID decode to a NUL: tracked, and matched by its reports', async (s) => {
      const sender = await mailbox(s);
      const mid = `<a\u0000b.${next()}@hopital.mssante.test>`;
      const r = await s.deliver(local([], { senderMailboxId: sender.id, envelopeFrom: sender.address, remote: [remote('x@peer.mssante.test')], tracking: { userId: null, messageId: mid, subject: 'Résultats\u0000 biologiques' } }));
      const id = r.submissionChanges![0].id;
      const sub = (await s.getSubmission(id))!;
      assert.ok(sub.subject.startsWith('Résultats') && sub.subject.endsWith(' biologiques'), `subject as tracked: ${JSON.stringify(sub.subject)}`);
      const dsn = await s.deliver(local([sender.id], { envelopeFrom: '', reports: [{ kind: 'dsn', envid: null, originalMessageId: mid, recipients: [{ final: 'x@peer.mssante.test', original: null, status: 'failed', detail: 'mailbox\u0000full' }] }] }));
      assert.deepEqual(dsn.submissionChanges, [{ id, mailboxId: sender.id }], 'matched by the same Message-ID');
      const rc = (await s.getSubmission(id))!.recipients[0];
      assert.equal(rc.status, 'failed');
      assert.ok(rc.detail?.startsWith('mailbox') && rc.detail.endsWith('full'));
    });

    t('logins and audit rows of 1 000 characters: the audit keeps 320 of them', async (s) => {
      const long = 'x'.repeat(1000);
      assert.equal(await s.findUserByLogin(long), undefined);
      await s.recordAuth({ at: '2026-12-07T09:00:01.000Z', login: long, userId: null, protocol: 'imap', method: 'LOGIN', remote: null, success: false, reason: 'unknown-user', actor: long });
      const [last] = await s.listAuthAudit(1);
      assert.deepEqual([last.login.length, last.actor?.length], [320, 320]);
    });
  });

  // ---- concurrency through one engine instance ------------------------------------------------
  area('concurrent calls on one store', (t) => {
    t('20 appendMessage at once: distinct UIDs 1..20 and distinct modseqs', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      const r = await Promise.all(Array.from({ length: 20 }, () => append(s, f.id)));
      assert.deepEqual(sortNum(r.map((x) => x.uid)), Array.from({ length: 20 }, (_, i) => i + 1));
      assert.equal(new Set(r.map((x) => x.modseq)).size, 20);
      assert.equal(await s.folderModseq(f.id), Math.max(...r.map((x) => x.modseq)));
      assert.deepEqual(await s.folderUids(f.id), Array.from({ length: 20 }, (_, i) => i + 1));
    });

    t('SELECT and STATUS while 20 appends run: every snapshot consistent (messages, UIDNEXT, HIGHESTMODSEQ)', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      const reads: Promise<void>[] = [];
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < 20; i++) {
        writes.push(append(s, f.id));
        reads.push(
          s.openFolder(f.id).then((o) => {
            assert.equal(o.uidNext, o.messages.length + 1, `SELECT: ${o.messages.length} messages, UIDNEXT ${o.uidNext}`);
            // Appends only: the newest message carries the folder's HIGHESTMODSEQ.
            if (o.messages.length) assert.equal(o.highestModseq, Math.max(...o.messages.map((x) => x.modseq)), 'SELECT: HIGHESTMODSEQ of the messages read');
          }),
          s.folderStatus(f.id).then((st) => assert.equal(st.uidNext, st.messages + 1, `STATUS: ${st.messages} messages, UIDNEXT ${st.uidNext}`)),
        );
      }
      await Promise.all([...writes, ...reads]);
      assert.equal((await s.folderStatus(f.id)).messages, 20);
    });

    t('10 deliveries at once to the same INBOXes: distinct UIDs per mailbox', async (s) => {
      const a = await mailbox(s);
      const b = await mailbox(s);
      const r = await Promise.all(Array.from({ length: 10 }, () => s.deliver(local([a.id, b.id]))));
      for (const mb of [a, b]) assert.deepEqual(sortNum(r.map((copies) => copies.find((c) => c.mailboxId === mb.id)!.uid)), Array.from({ length: 10 }, (_, i) => i + 1));
      assert.equal((await s.folderStatus((await inbox(s, a.id)).id)).messages, 10);
    });

    t('10 deliveries at once naming the same three mailboxes in different orders: all stored (no deadlock surfaces)', async (s) => {
      const boxes = [await mailbox(s), await mailbox(s), await mailbox(s)].map((m) => m.id);
      const orders = [[0, 1, 2], [2, 1, 0], [1, 2, 0], [0, 2, 1], [2, 0, 1]];
      const r = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => s.deliver(local(orders[i % 5].map((k) => boxes[k]), { senderMailboxId: boxes[i % 3], tracking: { userId: null, messageId: `<o${i}@x.test>`, subject: 'x' } }))));
      assert.deepEqual(r.filter((x) => x.status === 'rejected').map((x) => String((x as PromiseRejectedResult).reason)), []);
      for (const id of boxes) assert.deepEqual(await s.folderUids((await inbox(s, id)).id), Array.from({ length: 10 }, (_, i) => i + 1));
    });

    t('\\Recent claimed at once by several sessions: each message recent in exactly one (RFC 3501 §2.3.2)', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      for (let i = 0; i < 6; i++) await append(s, f.id);
      const opened = await Promise.all([
        s.openFolder(f.id, { clearRecent: true }).then((o) => o.messages.filter((x) => x.recent).map((x) => x.uid)),
        s.openFolder(f.id, { clearRecent: true }).then((o) => o.messages.filter((x) => x.recent).map((x) => x.uid)),
        s.folderMessages(f.id, { clearRecent: true }).then((l) => l.filter((x) => x.recent).map((x) => x.uid)),
        s.claimRecent(f.id, [1, 2, 3, 4, 5, 6]),
      ]);
      assert.deepEqual(sortNum(opened.flat()), [1, 2, 3, 4, 5, 6], `claims: ${JSON.stringify(opened)}`);
    });

    t('activity recorded at once with 10 different times: the latest kept', async (s) => {
      const m = await mailbox(s);
      const times = [5, 9, 1, 10, 3, 7, 2, 8, 6, 4].map((x) => x * 1_000);
      await Promise.all(times.map((at) => s.recordActivity([m.id], 'read', at)));
      assert.equal((await s.getActivity(m.id))!.lastReadAt, 10_000);
    });

    t('10 useTotpStep of the same step at once: exactly one true (RFC 6238 §5.2)', async (s) => {
      const u = await user(s);
      await s.setPendingTotp(u.id, 'SECRET');
      await s.confirmTotp(u.id, 100, []);
      const r = await Promise.all(Array.from({ length: 10 }, () => s.useTotpStep(u.id, 101)));
      assert.equal(r.filter(Boolean).length, 1);
    });

    t('conditional claims at once: one absence reply, one rule notice, one urgency reply, one recovery code use', async (s) => {
      const m = await mailbox(s);
      const u = await user(s);
      const ten = <T>(fn: () => Promise<T>) => Promise.all(Array.from({ length: 10 }, fn));
      assert.equal((await ten(() => s.claimAbsenceReply(m.id, 'x@y.mssante.test', 5_000, 1_000))).filter(Boolean).length, 1);
      assert.equal((await ten(() => s.claimUrgencyReply(m.id, 'x@y.mssante.test', 5_000, 1_000))).filter(Boolean).length, 1);
      assert.equal((await ten(() => s.claimRuleNotice({ mailboxId: m.id, kind: 'reading', day: '2026-12-07', level: 1, sentAt: 1 }))).filter(Boolean).length, 1);
      await s.setPendingTotp(u.id, 'S');
      await s.confirmTotp(u.id, 1, ['only-code']);
      assert.equal((await ten(() => s.useRecoveryCode(u.id, 'only-code'))).filter(Boolean).length, 1);
    });

    t('one queue item completed twice at once (sent and failed): one outcome recorded, one attempt counted', async (s) => {
      const req = local([], { remote: [remote('x@peer.mssante.test')] });
      await s.deliver(req);
      const [item] = (await s.listQueue({ status: 'queued' })).filter((x) => x.blobId === req.blobId);
      await Promise.all([
        s.completeQueueItems({ sent: [item.id], failed: [], deferred: [], dsns: [] }),
        s.completeQueueItems({ sent: [], failed: [{ id: item.id, error: '550 5.1.1' }], deferred: [], dsns: [] }),
      ]);
      const [done] = (await s.listQueue()).filter((x) => x.id === item.id);
      assert.equal(done.attempts, 1);
      assert.ok((done.status === 'sent' && done.lastError === null) || (done.status === 'failed' && done.lastError === '550 5.1.1'), `one outcome whole: ${done.status}, ${done.lastError}`);
    });

    t('the same login created 5 times at once: one user, the others StoreConflictError', async (s) => {
      const login = `concurrent${next()}`;
      const r = await Promise.allSettled(Array.from({ length: 5 }, () => s.createUser({ login, displayName: 'X', practitionerId: null, passwordHash: null })));
      assert.equal(r.filter((x) => x.status === 'fulfilled').length, 1);
      for (const x of r) if (x.status === 'rejected') assert.ok(x.reason instanceof StoreConflictError, `rejected with ${x.reason}`);
    });

    t('webhook acknowledgements racing on one cursor: one wins', async (s) => {
      const u = await user(s);
      const m = await mailbox(s);
      const [c] = await s.deliver(local([m.id]));
      const w = await s.createWebhook({ userId: u.id, mailboxId: m.id, url: 'https://x.test/h', secret: 's', since: 'all' });
      const r = await Promise.all(Array.from({ length: 10 }, () => s.webhookAcknowledged(w.id, 0, c.messageId)));
      assert.equal(r.filter(Boolean).length, 1);
      assert.equal((await s.getWebhook(w.id))!.delivered, 1);
    });

    t('10 flag additions at once on one message: no lost update, one modseq each', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      await append(s, f.id);
      const r = await Promise.all(Array.from({ length: 10 }, (_, i) => s.storeFlags(f.id, [1], 'add', [`$K${i}`])));
      assert.deepEqual([...(await s.getMessageByUid(f.id, 1))!.flags].sort(), Array.from({ length: 10 }, (_, i) => `$K${i}`).sort());
      assert.equal(new Set(r.map((x) => x.updated[0].modseq)).size, 10, 'each change its own modseq');
      assert.equal(await s.folderModseq(f.id), Math.max(...r.map((x) => x.updated[0].modseq)));
    });

    t('the same message moved to two folders at once: moved once', async (s) => {
      const m = await mailbox(s);
      const f = await inbox(s, m.id);
      await append(s, f.id);
      const [a, b] = [await s.createFolder(m.id, 'A'), await s.createFolder(m.id, 'B')];
      const r = await Promise.all([s.copyMessages(f.id, [1], a.id, true), s.copyMessages(f.id, [1], b.id, true)]);
      assert.equal(r.filter((x) => x.length === 1).length, 1, `one move maps the message: ${JSON.stringify(r)}`);
      assert.equal((await s.folderUids(a.id)).length + (await s.folderUids(b.id)).length, 1, 'one copy exists');
      assert.deepEqual(await s.folderUids(f.id), []);
    });

    t('10 deliveries at once over a daily limit of 5: exactly 5 stored, the others DailyRecipientLimitError (no overshoot)', async (s) => {
      const m = await mailbox(s);
      const u = await user(s);
      const r = await Promise.allSettled(Array.from({ length: 10 }, () => s.deliver(local([m.id], { dailyRecipients: { userId: u.id, day: '2026-12-07', count: 1, limit: 5 } }))));
      assert.equal(r.filter((x) => x.status === 'fulfilled').length, 5);
      for (const x of r) if (x.status === 'rejected') assert.ok(x.reason instanceof DailyRecipientLimitError, `rejected with ${x.reason}`);
      assert.equal(await s.recipientsSentOn(u.id, '2026-12-07'), 5);
      assert.equal((await s.folderStatus((await inbox(s, m.id)).id)).messages, 5);
    });

    t('5 deliveries at once filing into a folder that does not exist yet: all stored, one folder, UIDs 1..5', async (s) => {
      const m = await mailbox(s);
      const filing = { folder: 'Non médical', flags: ['$NonMedical'] };
      const r = await Promise.allSettled(Array.from({ length: 5 }, () => s.deliver(local([m.id], { filing }))));
      assert.deepEqual(r.filter((x) => x.status === 'rejected').map((x) => String((x as PromiseRejectedResult).reason)), []);
      const folders = (await s.listFolders(m.id)).filter((x) => x.name === 'Non médical');
      assert.equal(folders.length, 1);
      assert.deepEqual(await s.folderUids(folders[0].id), [1, 2, 3, 4, 5]);
    });

    t('one MDN keyword set by 5 deliveries at once: one stored, the others KeywordAlreadySetError', async (s) => {
      const a = await mailbox(s);
      const b = await mailbox(s);
      const [copy] = await s.deliver(local([a.id]));
      const r = await Promise.allSettled(Array.from({ length: 5 }, () => s.deliver(local([b.id], { envelopeFrom: '', markMessage: { folderId: copy.folderId, uid: copy.uid, keyword: '$MDNSent' } }))));
      assert.equal(r.filter((x) => x.status === 'fulfilled').length, 1);
      for (const x of r) if (x.status === 'rejected') assert.ok(x.reason instanceof KeywordAlreadySetError, `rejected with ${x.reason}`);
      assert.equal((await s.folderStatus((await inbox(s, b.id)).id)).messages, 1);
      assert.deepEqual((await s.getReceiptMessage({ emailId: copy.messageId }))!.flags, ['$MDNSent']);
    });

    t('the application account of a structure asked 5 times at once: one account', async (s) => {
      const st = await structure(s);
      const r = await Promise.allSettled(Array.from({ length: 5 }, () => s.applicationAccount(st)));
      const ok = r.filter((x): x is PromiseFulfilledResult<User> => x.status === 'fulfilled').map((x) => x.value.id);
      assert.deepEqual(r.filter((x) => x.status === 'rejected').map((x) => String((x as PromiseRejectedResult).reason)), []);
      assert.equal(new Set(ok).size, 1);
      assert.equal((await s.listUsers()).filter((x) => x.structureId === st.id).length, 1);
    });

    t('the same folder created 5 times at once, the same grant set 5 times at once: one each', async (s) => {
      const m = await mailbox(s);
      const u = await user(s);
      const r = await Promise.allSettled(Array.from({ length: 5 }, () => s.createFolder(m.id, 'Dossiers')));
      assert.equal(r.filter((x) => x.status === 'fulfilled').length, 1);
      for (const x of r) if (x.status === 'rejected') assert.ok(x.reason instanceof StoreConflictError, `rejected with ${x.reason}`);
      const g = await Promise.allSettled(Array.from({ length: 5 }, () => s.setGrant(m.id, u.id, ['read'])));
      assert.deepEqual(g.filter((x) => x.status === 'rejected').map((x) => String((x as PromiseRejectedResult).reason)), []);
      assert.equal((await s.listGrants({ mailboxId: m.id })).length, 1);
    });

    t('the analysis and the header row of one file recorded 5 times at once: no error, one row', async (s) => {
      const b = blob('shared');
      const m = await mailbox(s);
      await s.deliver(local([m.id], { blobId: b }));
      const r = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => Promise.all([s.setBlobMeta(b, `{"n":${i}}`), s.setSearchHeaders(b, HEADER_INDEX_VERSION, { s_subject: Buffer.from('rendez-vous') })])));
      assert.deepEqual(r.filter((x) => x.status === 'rejected').map((x) => String((x as PromiseRejectedResult).reason)), []);
      assert.match((await s.getBlobMeta(b))!, /^\{"n":[0-4]\}$/);
      const f = await inbox(s, m.id);
      assert.deepEqual(await s.searchHeaderCandidates(f.id, 's_subject', Buffer.from('rendez'), HEADER_INDEX_VERSION, 1), { matched: [1], unindexed: [] });
    });
  });

  // ---- the shared specification of issue 12 (branch `leases`) ---------------------------------
  area('queue claims, leader leases, lockout (issue 12 shared spec)', (t) => {
    t('claimQueueItems: due items oldest first, never the same item to two owners; released or expired leases claimable again; completion clears the lease', async (s) => {
      const q = s;
      const sender = await mailbox(s);
      await drainQueue(s);
      await s.deliver(local([], { senderMailboxId: sender.id, remote: ['a', 'b', 'c', 'd', 'e'].map((x) => remote(`${x}@peer.mssante.test`)) }));
      const items = await s.listQueue({ status: 'queued' });
      assert.equal(items.length, 5);
      const now = Math.max(...items.map((i) => i.nextAttemptAt));
      const [one, two] = await Promise.all([q.claimQueueItems('node-a', now, 3, 60_000), q.claimQueueItems('node-b', now, 3, 60_000)]);
      const ids = [...one, ...two].map((i) => i.id);
      assert.equal(ids.length, 5, 'all five claimed between the two');
      assert.equal(new Set(ids).size, 5, 'no item claimed twice');
      const first = one.length === 3 ? one : two;
      assert.deepEqual(first.map((i) => i.id), sortNum(first.map((i) => i.id)), 'oldest first');
      assert.deepEqual(await q.claimQueueItems('node-c', now + 59_999, 10, 60_000), [], 'leased until now+leaseMs');
      const aIds = one.map((i) => i.id);
      await q.releaseQueueItems('node-b', aIds);
      assert.deepEqual(await q.claimQueueItems('node-c', now, 10, 60_000), [], "releasing another owner's items does nothing");
      await q.releaseQueueItems('node-a', aIds);
      assert.deepEqual(sortNum((await q.claimQueueItems('node-c', now + 30_000, 10, 60_000)).map((i) => i.id)), sortNum(aIds), 'released: claimable at once (leased to node-c until now+90 000)');
      const expired = await q.claimQueueItems('node-d', now + 60_001, 10, 60_000);
      assert.deepEqual(sortNum(expired.map((i) => i.id)), sortNum(two.map((i) => i.id)), "node-b's expired lease");
      const d = expired[0];
      await s.completeQueueItems({ sent: [], failed: [], deferred: [{ id: d.id, error: '451', nextAttemptAt: now + 1 }], dsns: [] });
      assert.deepEqual((await q.claimQueueItems('node-e', now + 1, 10, 60_000)).map((i) => i.id), [d.id], 'the deferred item is due again, its lease cleared by completeQueueItems');
      assert.deepEqual(await q.claimQueueItems('node-e', now + 1, 10, 60_000), []);
    });

    t("renewQueueItems: only the owner's own unexpired claims move; a renewed claim outlives its first lease, a dead owner's is taken at its end", async (s) => {
      const sender = await mailbox(s);
      await drainQueue(s);
      await s.deliver(local([], { senderMailboxId: sender.id, remote: ['a', 'b', 'c'].map((x) => remote(`${x}@peer.mssante.test`)) }));
      const items = await s.listQueue({ status: 'queued' });
      assert.equal(items.length, 3);
      const now = Math.max(...items.map((i) => i.nextAttemptAt));
      const [x, y] = (await s.claimQueueItems('live', now, 2, 60_000)).map((i) => i.id);
      const [z] = (await s.claimQueueItems('dead', now, 10, 60_000)).map((i) => i.id);
      assert.deepEqual(await s.renewQueueItems('live', [], now, 60_000), []);
      assert.deepEqual(await s.renewQueueItems('live', [z, y, x], now + 50_000, 60_000), sortNum([x, y]), "renewed until now+110 000; another owner's claim does not move");
      assert.deepEqual(await s.renewQueueItems('intruder', [x], now + 50_000, 600_000), [], 'not the owner: nothing moves');
      assert.deepEqual((await s.claimQueueItems('successor', now + 60_000, 10, 60_000)).map((i) => i.id), [z], "at the first lease's end only the unrenewed claim is taken");
      assert.deepEqual(await s.renewQueueItems('dead', [z], now + 60_000, 60_000), [], 'a claim another owner took is not renewed by the old one');
      assert.deepEqual(await s.claimQueueItems('successor', now + 109_999, 10, 60_000), [], "the live owner's claims hold until now+110 000");
      assert.deepEqual(await s.renewQueueItems('live', [x, y], now + 110_000, 60_000), [], 'expired (until <= now): not renewed, even though nobody took it yet');
      assert.deepEqual(sortNum((await s.claimQueueItems('successor', now + 110_000, 10, 60_000)).map((i) => i.id)), sortNum([x, y]));
      await s.completeQueueItems({ sent: [x, y, z], failed: [], deferred: [], dsns: [] });
      assert.deepEqual(await s.renewQueueItems('successor', [x, y, z], now + 110_001, 60_000), [], 'completed items have no lease to renew');
    });

    t('acquireLease / releaseLease: one holder, renewed by it, taken over after expiry; 10 candidates at once, one leader', async (s) => {
      const l = s;
      assert.equal(await l.acquireLease('queue-leader', 'a', 1_000, 10_000), true);
      assert.equal(await l.acquireLease('queue-leader', 'b', 5_000, 10_000), false);
      assert.equal(await l.acquireLease('queue-leader', 'a', 9_000, 10_000), true, 'renewed to 19 000');
      assert.equal(await l.acquireLease('queue-leader', 'b', 18_999, 10_000), false);
      assert.equal(await l.acquireLease('other-lease', 'b', 18_999, 10_000), true, 'per name');
      assert.equal(await l.acquireLease('queue-leader', 'b', 19_000, 10_000), true, 'expired (until <= now)');
      assert.equal(await l.acquireLease('queue-leader', 'a', 20_000, 10_000), false);
      await l.releaseLease('queue-leader', 'a');
      assert.equal(await l.acquireLease('queue-leader', 'a', 20_000, 10_000), false, 'a release by a non-holder does nothing');
      await l.releaseLease('queue-leader', 'b');
      assert.equal(await l.acquireLease('queue-leader', 'a', 20_000, 10_000), true, 'free after its release');
      const r = await Promise.all(Array.from({ length: 10 }, (_, i) => l.acquireLease('race', `n${i}`, 50_000, 10_000)));
      assert.equal(r.filter(Boolean).length, 1);
    });

    t('lockout: failures recorded, counted since an instant, cleared per key, purged before an instant', async (s) => {
      const k = s;
      for (const at of [1_000, 2_000, 3_000]) await k.recordAuthFailure('login:claire.martin', at);
      await k.recordAuthFailure('addr:192.0.2.1', 2_500);
      assert.equal(await k.countAuthFailures('login:claire.martin', 2_000), 2);
      assert.equal(await k.countAuthFailures('login:claire.martin', 0), 3);
      assert.equal(await k.countAuthFailures('addr:192.0.2.1', 0), 1);
      await Promise.all(Array.from({ length: 10 }, () => k.recordAuthFailure('addr:192.0.2.9', 4_000)));
      assert.equal(await k.countAuthFailures('addr:192.0.2.9', 4_000), 10, 'concurrent records all counted');
      await k.clearAuthFailures('login:claire.martin');
      assert.equal(await k.countAuthFailures('login:claire.martin', 0), 0);
      assert.equal(await k.purgeAuthFailures(3_000), 1, "the 2 500 failure of 192.0.2.1");
      assert.equal(await k.countAuthFailures('addr:192.0.2.9', 0), 10);
    });
  });

  // ---- notifications between the processes sharing the store ---------------------------------
  area('notification channel', (t) => {
    t('none, or channels that carry each payload to every subscriber of its name (the publisher too), refuse oversized payloads, and close', async (s) => {
      const logger = pino({ level: 'silent' });
      const a = s.openNotificationChannel({ logger });
      if (!a) return; // the engine has none (SQLite: processes of one machine talk through the cluster primary)
      const b = s.openNotificationChannel({ logger })!;
      const name = `contract-${engine}-${next()}`;
      const heard = { a: [] as string[], b: [] as string[], other: [] as string[] };
      try {
        assert.ok(a.maxPayloadBytes >= 1000 && typeof a.kind === 'string');
        await a.subscribe(name, (p) => heard.a.push(p));
        await b.subscribe(name, (p) => heard.b.push(p));
        await b.subscribe(`${name}-other`, (p) => heard.other.push(p));
        await assert.rejects(a.publish(name, 'é'.repeat(a.maxPayloadBytes)), RangeError, 'larger than maxPayloadBytes: refused');
        await a.publish(name, '{"n":1}');
        await b.publish(name, 'é'.repeat(Math.floor(a.maxPayloadBytes / 2)));
        await a.publish(name, '{"n":3}');
        const wait = async (ok: () => boolean, what: string) => {
          for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
          assert.ok(ok(), what);
        };
        await wait(() => heard.a.length === 3 && heard.b.length === 3, 'every subscriber hears the three payloads');
        assert.deepEqual(heard.a.map((p) => p.length), [7, Math.floor(a.maxPayloadBytes / 2), 7]);
        assert.deepEqual(heard.a.filter((p) => p.startsWith('{')), ['{"n":1}', '{"n":3}'], "one publisher's payloads in order");
        assert.deepEqual(heard.b, heard.a);
        assert.deepEqual(heard.other, [], 'another name hears nothing');
      } finally {
        await a.close();
        await b.close();
      }
      await assert.rejects(a.publish(name, 'x'), 'closed: publish rejects');
    });
  });

  // ---- row values sealed at rest (docs/encryption.md, "Values in rows") ----------------------
  {
    const ring = KeyRing.generate(new Date('2026-12-07T00:00:00Z'));
    const MARK = 'XQZ-rows-7731';
    /** Every sealed column's values in this area's rows, by column and KEK id (null: plaintext). */
    const tally = async (s: Store) => Object.fromEntries((await s.countSealedValues()).map((c) => [`${c.column} ${c.keyId ?? 'plain'}`, c.count]));
    /** resealValues over every sealed column, `limit` rows a batch: what was re-sealed, what failed. */
    async function resealAll(s: Store, which: Parameters<Store['resealValues']>[1], limit = 2) {
      let resealed = 0;
      const failed: { column: SealedColumn; row: RowKey }[] = [];
      for (const column of SEALED_COLUMNS) {
        let after: RowKey | null = null;
        do {
          const b = await s.resealValues(column, which, after, limit);
          assert.ok(b.resealed <= limit);
          resealed += b.resealed;
          failed.push(...b.failed.map((f) => ({ column, row: f.row })));
          after = b.next;
        } while (after !== null);
      }
      return { resealed, failed };
    }
    /** A submission of `sender` tracked with `subject`; its id. */
    const submitted = async (s: Store, sender: Mailbox, subject: string) =>
      (await s.deliver(local([], { senderMailboxId: sender.id, envelopeFrom: sender.address, remote: [remote('x@peer.mssante.test')], tracking: { userId: null, messageId: `<r${next()}@hopital.test>`, subject } }))).submissionChanges![0].id;
    const absence = (mailboxId: number, tag: string) => ({
      mailboxId,
      startsAt: null,
      endsAt: null,
      subject: `Congés ${MARK} ${tag}`,
      body: `Je suis absente ${MARK} ${tag}.`,
      externalBody: `Écrivez au secrétariat ${MARK} ${tag}.`,
      substitute: null,
      updatedBy: 'claire.martin',
    });

    area(
      'row values sealed at rest',
      (t) => {
        t('the analysis, the tracking subject and the absence texts are stored sealed under the current key, and read back', async (s, _t, env) => {
          assert.equal(s.sealer?.keys.currentId, ring.currentId);
          const m = await mailbox(s);
          const a = absence(m.id, 'a');
          assert.deepEqual({ ...(await s.setAbsence(a)), updatedAt: '' }, { ...a, updatedAt: '' });
          assert.deepEqual({ ...(await s.getAbsence(m.id))!, updatedAt: '' }, { ...a, updatedAt: '' });
          const subject = `Compte rendu ${MARK} été`;
          const sub = await submitted(s, m, subject);
          assert.equal((await s.getSubmission(sub))!.subject, subject);
          assert.equal((await s.listSubmissions([m.id], { limit: 5 }))[0].subject, subject);
          // The analysis, three ways: setBlobMeta, setBlobAnalyses, deliver().
          const info = (k: string) => JSON.stringify({ envelope: { subject: `${MARK} ${k}` }, attachments: [`cr-${MARK}.pdf`] });
          const [b1, b2, b3] = [blob('sealed meta'), blob('sealed analyses'), blob('sealed delivery')];
          await s.setBlobMeta(b1, info('1'));
          await s.setBlobAnalyses([{ blobId: b2, info: info('2'), searchVersion: HEADER_INDEX_VERSION, searchColumns: {} }]);
          await s.deliver(local([m.id], { blobId: b3, analysis: { info: info('3'), searchHeaders: { version: HEADER_INDEX_VERSION, columns: {} } } }));
          for (const [b, k] of [[b1, '1'], [b2, '2'], [b3, '3']]) assert.equal(await s.getBlobMeta(b), info(k));
          // What is on disk: sealed values of the current key, no marker.
          const stored: [SealedColumn, RowKey][] = [
            ['absences.subject', m.id],
            ['absences.body', m.id],
            ['absences.external_body', m.id],
            ['submissions.subject', sub],
            ['blob_meta.info', b1],
            ['blob_meta.info', b2],
            ['blob_meta.info', b3],
          ];
          for (const [column, row] of stored) {
            const p = SEALED_COLUMN_PLACES[column];
            const v = await env.raw.read(p.table, p.column, p.key, row);
            assert.ok(Buffer.isBuffer(v) && isSealedValue(v), `${column} of ${row}: sealed`);
            assert.equal(valueKeyId(v), ring.currentId);
            assert.equal(v.includes(MARK), false, `${column} of ${row}: no marker in the stored bytes`);
            assert.equal(v.includes(Buffer.from(MARK).toString('base64').slice(0, 12)), false);
          }
          // Absent texts stay absent.
          const b = await s.setAbsence({ ...a, subject: null, body: null, externalBody: null });
          assert.deepEqual([b.subject, b.body, b.externalBody], [null, null, null]);
          assert.equal(await env.raw.read('absences', 'subject', 'mailbox_id', m.id), null);
          await s.setAbsence(a);
        });

        t('a sealed value moved to another row or column, or altered, fails to open: SealedValueError naming the place', async (s, _t, env) => {
          const [m1, m2] = [await mailbox(s), await mailbox(s)];
          await s.setAbsence(absence(m1.id, '1'));
          await s.setAbsence(absence(m2.id, '2'));
          const [s1, s2] = [await submitted(s, m1, `Objet ${MARK} 1`), await submitted(s, m2, `Objet ${MARK} 2`)];
          const [b1, b2] = [blob('moved 1'), blob('moved 2')];
          await s.setBlobMeta(b1, '{"n":1}');
          await s.setBlobMeta(b2, '{"n":2}');
          /** Puts `v` in place of `column` of `row`, runs `check`, then puts the original back. */
          const swapped = async (column: SealedColumn, row: RowKey, v: Buffer | string, check: () => Promise<unknown>) => {
            const p = SEALED_COLUMN_PLACES[column];
            const original = (await env.raw.read(p.table, p.column, p.key, row))!;
            await env.raw.write(p.table, p.column, p.key, row, v);
            try {
              await check();
            } finally {
              await env.raw.write(p.table, p.column, p.key, row, original);
            }
          };
          const read = (column: SealedColumn, row: RowKey) => env.raw.read(SEALED_COLUMN_PLACES[column].table, SEALED_COLUMN_PLACES[column].column, SEALED_COLUMN_PLACES[column].key, row) as Promise<Buffer>;
          const refused = (place: string) => (e: unknown) => e instanceof SealedValueError && e.message.startsWith(place) && /does not authenticate/.test(e.message);
          await swapped('absences.subject', m2.id, await read('absences.subject', m1.id), () => assert.rejects(s.getAbsence(m2.id), refused(`absences.subject:${m2.id}`), 'another row'));
          await swapped('absences.subject', m1.id, await read('absences.body', m1.id), () => assert.rejects(s.getAbsence(m1.id), refused(`absences.subject:${m1.id}`), 'another column'));
          await swapped('submissions.subject', s2, await read('submissions.subject', s1), async () => {
            await assert.rejects(s.getSubmission(s2), refused(`submissions.subject:${s2}`));
            await assert.rejects(s.listSubmissions([m2.id], { limit: 5 }), SealedValueError);
          });
          await swapped('blob_meta.info', b2, await read('blob_meta.info', b1), () => assert.rejects(s.getBlobMeta(b2), refused(`blob_meta.info:${b2}`)));
          const flipped = Buffer.from(await read('blob_meta.info', b1));
          flipped[flipped.length - 3] ^= 1;
          await swapped('blob_meta.info', b1, flipped, () => assert.rejects(s.getBlobMeta(b1), refused(`blob_meta.info:${b1}`), 'a flipped byte'));
          // Put back, everything reads again.
          assert.equal((await s.getAbsence(m2.id))!.subject, absence(m2.id, '2').subject);
          assert.equal((await s.getSubmission(s2))!.subject, `Objet ${MARK} 2`);
          assert.equal(await s.getBlobMeta(b2), '{"n":2}');
          // A store without the keyring (encryption at rest turned off): refused, saying what to configure.
          const plain = await env.reopen({});
          await assert.rejects(plain.getBlobMeta(b1), (e: unknown) => e instanceof SealedValueError && e.message.includes(`sealed by key ${ring.currentId}, but encryption at rest is not configured: set store.encryption`));
          await assert.rejects(plain.resealValues('blob_meta.info', 'stale', null, 10), /encryption at rest is not configured/);
        });

        t('plaintext rows stay readable and are sealed in batches; rotation re-seals every row; then the old key holds none', async (s, _t, env) => {
          // Rows written before encryption was configured (or on a node without it).
          const plain = await env.reopen({});
          const m = await mailbox(plain);
          const a = absence(m.id, 'clair');
          await plain.setAbsence(a);
          const sub = await submitted(plain, m, `Objet clair ${MARK}`);
          const b = blob('plain meta');
          await plain.setBlobMeta(b, `{"clair":"${MARK}"}`);
          // URLAUTH access keys (RFC 4467 §3): one made in plaintext, one sealed by the first key;
          // the token of a URL each issued (imap/urlauth-token.ts) must verify to the end.
          const [u1, u2] = [await user(plain), await user(s)];
          const box = await inbox(s, m.id);
          const rump = `imap://${u1.login}@mx.hopital.mssante.test/INBOX/;UIDVALIDITY=1/;UID=1;urlauth=user+${u1.login}`;
          const keyPlain = (await plain.urlAuthKey(u1.id, box.id, true))!;
          const keySealed = (await s.urlAuthKey(u2.id, box.id, true))!;
          const tokens = [urlAuthToken(keyPlain, rump), urlAuthToken(keySealed, rump)];
          const urlsVerify = async (st: Store) => [urlAuthTokenMatches(await st.urlAuthKey(u1.id, box.id, false), rump, tokens[0]!), urlAuthTokenMatches(await st.urlAuthKey(u2.id, box.id, false), rump, tokens[1]!)];
          assert.deepEqual(await urlsVerify(s), [true, true]);
          const written = (await env.raw.read('blob_meta', 'info', 'blob_id', b))!;
          assert.ok(typeof written === 'string' || !isSealedValue(written), 'written in plaintext');
          assert.equal(written.includes(MARK), true);
          // Read by the store that has the keyring.
          assert.deepEqual({ ...(await s.getAbsence(m.id))!, updatedAt: '' }, { ...a, updatedAt: '' });
          assert.equal((await s.getSubmission(sub))!.subject, `Objet clair ${MARK}`);
          assert.equal(await s.getBlobMeta(b), `{"clair":"${MARK}"}`);
          // Counted: this area's rows (the two tests above wrote 3 mailboxes' absences, 3
          // submissions and 5 analyses, all sealed; this one one of each in plaintext).
          const k1 = ring.currentId;
          const before = {
            [`absences.subject ${k1}`]: 3,
            [`absences.body ${k1}`]: 3,
            [`absences.external_body ${k1}`]: 3,
            [`submissions.subject ${k1}`]: 3,
            [`blob_meta.info ${k1}`]: 5,
            'absences.subject plain': 1,
            'absences.body plain': 1,
            'absences.external_body plain': 1,
            'submissions.subject plain': 1,
            'blob_meta.info plain': 1,
            [`urlauth_keys.secret ${k1}`]: 1,
            'urlauth_keys.secret plain': 1,
          };
          assert.deepEqual(await tally(s), before);
          // keys encrypt-existing: the plaintext values sealed, two rows a batch.
          assert.deepEqual(await resealAll(s, 'plain'), { resealed: 6, failed: [] });
          assert.deepEqual(await resealAll(s, 'plain'), { resealed: 0, failed: [] }, 'nothing left');
          assert.equal((await env.raw.read('blob_meta', 'info', 'blob_id', b))!.includes(MARK), false);
          assert.equal(await s.getBlobMeta(b), `{"clair":"${MARK}"}`);
          assert.deepEqual(await tally(s), { [`absences.subject ${k1}`]: 4, [`absences.body ${k1}`]: 4, [`absences.external_body ${k1}`]: 4, [`submissions.subject ${k1}`]: 4, [`blob_meta.info ${k1}`]: 6, [`urlauth_keys.secret ${k1}`]: 2 });
          assert.deepEqual(await urlsVerify(s), [true, true], 'the plaintext key sealed as it was, byte for byte');
          // keys rotate: a store with the new keyring re-seals every value of the old key.
          const ring2 = ring.withNewCurrent(new Date('2026-12-08T00:00:00Z'));
          const k2 = ring2.currentId;
          const rotated = await env.reopen({ sealer: new ValueSealer(ring2) });
          assert.deepEqual(await resealAll(rotated, 'stale', 3), { resealed: 24, failed: [] });
          assert.deepEqual(await tally(rotated), { [`absences.subject ${k2}`]: 4, [`absences.body ${k2}`]: 4, [`absences.external_body ${k2}`]: 4, [`submissions.subject ${k2}`]: 4, [`blob_meta.info ${k2}`]: 6, [`urlauth_keys.secret ${k2}`]: 2 });
          // A process not restarted since seals with the old key; `keys retire` re-seals what that key holds.
          const late = blob('sealed by the old key');
          await s.setBlobMeta(late, '{"late":1}');
          const u3 = await user(s);
          const lateKey = (await s.urlAuthKey(u3.id, box.id, true))!;
          assert.equal((await tally(rotated))[`blob_meta.info ${k1}`], 1);
          assert.equal((await tally(rotated))[`urlauth_keys.secret ${k1}`], 1);
          assert.deepEqual(await resealAll(rotated, { keyId: ring2.keys.find((k) => k.id !== k2)!.id }), { resealed: 2, failed: [] });
          assert.equal((await tally(rotated))[`blob_meta.info ${k1}`], undefined);
          assert.equal((await tally(rotated))[`urlauth_keys.secret ${k1}`], undefined);
          assert.deepEqual(await rotated.urlAuthKey(u3.id, box.id, false), lateKey);
          // A value that does not open is reported and left as it is; the batch goes on past it.
          const bad = Buffer.from((await env.raw.read('blob_meta', 'info', 'blob_id', late)) as Buffer);
          const older = await env.reopen({ sealer: new ValueSealer(ring) });
          const gone = blob('sealed, then moved');
          await older.setBlobMeta(gone, '{"moved":1}');
          await env.raw.write('blob_meta', 'info', 'blob_id', gone, bad); // another row's value (under k2)
          await env.raw.write('blob_meta', 'info', 'blob_id', late, (await env.raw.read('blob_meta', 'info', 'blob_id', b)) as Buffer);
          const r = await resealAll(rotated, 'stale', 1);
          assert.deepEqual(r.failed, [], 'values of the current key are not stale, even moved ones');
          const ringK3 = ring2.withNewCurrent(new Date('2026-12-09T00:00:00Z'));
          const again = await env.reopen({ sealer: new ValueSealer(ringK3) });
          const all = await resealAll(again, 'stale', 4);
          assert.deepEqual(all.failed.map((f) => f.row).sort(), [gone, late].sort(), 'the moved values are reported by row');
          assert.equal(all.resealed, 25);
          // After the retirement, a keyring without the old key reads everything left.
          const ring3 = ringK3.without(k1).without(k2);
          const retired = await env.reopen({ sealer: new ValueSealer(ring3) });
          assert.deepEqual({ ...(await retired.getAbsence(m.id))!, updatedAt: '' }, { ...a, updatedAt: '' });
          assert.equal((await retired.getSubmission(sub))!.subject, `Objet clair ${MARK}`);
          assert.equal(await retired.getBlobMeta(b), `{"clair":"${MARK}"}`);
          assert.deepEqual(await urlsVerify(retired), [true, true], 'the URLs issued before the rotation still verify');
          assert.deepEqual(await retired.urlAuthKey(u3.id, box.id, false), lateKey);
          // Stored under the current key now: a keyring without the old ones opens it.
          const raw = (await env.raw.read('urlauth_keys', 'secret', 'user_id', u1.id)) as Buffer;
          assert.equal(valueKeyId(raw), ringK3.currentId);
        });
      },
      { sealer: new ValueSealer(ring), isolated: true },
    );
  }

  // ---- close, and the whole interface covered -------------------------------------------------
  describe(`${engine} store contract: the interface`, () => {
    it('close(): the store ends, later calls reject', async (t) => {
      const e = await open();
      if ('skip' in e) return t.skip(e.skip);
      const s = tracked(e.store);
      assert.equal(typeof (await s.listStructures()).length, 'number');
      await s.close();
      await assert.rejects(s.listStructures());
      // e.close() would close the store again: the engine's file drops what it made at its end.
    });

    it('every method of the Store interface exists on the store and was exercised by this suite', async (t) => {
      const e = await open();
      if ('skip' in e) return t.skip(e.skip);
      try {
        const methods = storeInterfaceMethods();
        assert.ok(methods.length > 100 && methods.includes('deliver') && methods.includes('close'), `parsed ${methods.length} methods from src/store/types.ts`);
        const missing = methods.filter((n) => typeof (e.store as unknown as Record<string, unknown>)[n] !== 'function');
        assert.deepEqual(missing, [], `${engine} lacks these Store methods`);
        const untested = methods.filter((n) => !called.has(n));
        assert.deepEqual(untested, [], 'Store methods no contract test called (add a test for each)');
      } finally {
        await e.close();
      }
    });
  });
}
