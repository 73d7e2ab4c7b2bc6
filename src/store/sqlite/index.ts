// Embedded SQLite store (better-sqlite3). The only place, with the other store
// implementations, that knows table names.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  DEFAULT_FOLDERS,
  type Folder,
  type Grant,
  type GrantRight,
  type Mailbox,
  type Practitioner,
  type QueueItem,
  type StoredMessage,
  type Structure,
  type StructureIdType,
  type User,
  type AppPassword,
  type HttpSession,
} from '../../core/model.js';
import type { AuthAuditEntry, DeliveredCopy, DeliveryRequest, FlagUpdate, FolderMessage, FolderStatus, MailboxUpdate, QueueCompletion, Store } from '../types.js';
import { MIGRATIONS } from './migrations.js';

const now = () => new Date().toISOString();

export class StoreConflictError extends Error {
  override name = 'StoreConflictError';
}

function rowStructure(r: any): Structure {
  return { id: r.id, idType: r.id_type, idValue: r.id_value, name: r.name, createdAt: r.created_at };
}
function rowPractitioner(r: any): Practitioner {
  return {
    id: r.id,
    rpps: r.rpps,
    familyName: r.family_name,
    givenName: r.given_name,
    civility: r.civility,
    professionCode: r.profession_code,
    createdAt: r.created_at,
  };
}
function rowUser(r: any): User {
  return {
    id: r.id,
    login: r.login,
    displayName: r.display_name,
    practitionerId: r.practitioner_id,
    structureId: r.structure_id ?? null,
    state: r.state,
    createdAt: r.created_at,
  };
}
function rowAppPassword(r: any): AppPassword {
  return { id: r.id, userId: r.user_id, label: r.label, createdAt: r.created_at, lastUsedAt: r.last_used_at, lastUsedFrom: r.last_used_from, revokedAt: r.revoked_at };
}
function rowSession(r: any): HttpSession {
  return {
    id: r.id,
    userId: r.user_id,
    method: r.method,
    stage: r.stage,
    csrfToken: r.csrf_token,
    createdAt: r.created_at,
    lastSeenAt: r.last_seen_at,
    expiresAt: r.expires_at,
    remote: r.remote,
    userAgent: r.user_agent,
    revokedAt: r.revoked_at,
  };
}
function rowMailbox(r: any): Mailbox {
  return {
    id: r.id,
    address: r.address,
    type: r.type,
    displayName: r.display_name,
    ownerUserId: r.owner_user_id,
    practitionerId: r.practitioner_id,
    structureId: r.structure_id,
    state: r.state,
    listeRouge: !!r.liste_rouge,
    service: r.service,
    description: r.description,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
function rowGrant(r: any): Grant {
  return { id: r.id, mailboxId: r.mailbox_id, userId: r.user_id, rights: r.rights.split(',').filter(Boolean), createdAt: r.created_at };
}
function rowFolder(r: any): Folder {
  return { id: r.id, mailboxId: r.mailbox_id, name: r.name, specialUse: r.special_use, uidValidity: r.uid_validity, uidNext: r.uid_next };
}
function rowMessage(r: any): StoredMessage {
  return {
    id: r.id,
    folderId: r.folder_id,
    uid: r.uid,
    blobId: r.blob_id,
    size: r.size,
    internalDate: r.internal_date,
    flags: r.flags ? r.flags.split(' ') : [],
  };
}
function rowFolderMessage(r: any): FolderMessage {
  return { uid: r.uid, flags: r.flags ? r.flags.split(' ') : [], modseq: r.modseq, size: r.size, internalDate: r.internal_date, blobId: r.blob_id, recent: !!r.recent };
}

/** Flags are kept as one space-separated string; system flags keep their RFC 9051 §2.3.2 spelling. */
function normaliseFlags(flags: string[]): string[] {
  const seen = new Map<string, string>();
  for (const f of flags) if (f && f !== '\\Recent') seen.set(f.toLowerCase(), f);
  return [...seen.values()];
}

function rowQueue(r: any): QueueItem {
  return {
    id: r.id,
    blobId: r.blob_id,
    size: r.size,
    envelopeFrom: r.envelope_from,
    recipient: r.recipient,
    domain: r.domain,
    notify: r.notify ? r.notify.split(',') : null,
    orcpt: r.orcpt,
    ret: r.ret,
    envid: r.envid,
    status: r.status,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    queuedAt: r.queued_at,
    lastError: r.last_error,
    senderMailboxId: r.sender_mailbox_id,
  };
}

function wrapUnique<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e: any) {
    if (e?.code === 'SQLITE_CONSTRAINT_UNIQUE') throw new StoreConflictError(`${what} already exists`);
    throw e;
  }
}

export class SqliteStore implements Store {
  readonly db: Database.Database;

  private readonly statements = new Map<string, Database.Statement>();

  private constructor(db: Database.Database) {
    this.db = db;
  }

  /** A prepared statement, compiled once per SQL text (preparing costs more than most queries). */
  private q(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) this.statements.set(sql, (st = this.db.prepare(sql)));
    return st;
  }

  /** Opens (creating if needed) the database file and applies pending migrations. */
  static open(file: string): SqliteStore {
    if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true });
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    // synchronous=FULL: a commit is on disk before we acknowledge (architecture invariant 1).
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    const store = new SqliteStore(db);
    store.migrate();
    return store;
  }

  migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
    const applied = new Set(this.q('SELECT version FROM schema_migrations').all().map((r: any) => r.version));
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      this.db.transaction(() => {
        this.db.exec(m.sql);
        this.q('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, now());
      })();
    }
  }

  schemaVersion(): number {
    return (this.q('SELECT MAX(version) v FROM schema_migrations').get() as any).v ?? 0;
  }

  async close() {
    if (this.db.open) this.db.close();
  }

  async createStructure(s: { idType: StructureIdType; idValue: string; name: string }) {
    return wrapUnique(`structure ${s.idType} ${s.idValue}`, () => {
      const r = this.db
        .prepare('INSERT INTO structures (id_type, id_value, name, created_at) VALUES (?, ?, ?, ?) RETURNING *')
        .get(s.idType, s.idValue, s.name, now());
      return rowStructure(r);
    });
  }
  async findStructure(idType: StructureIdType, idValue: string) {
    const r = this.q('SELECT * FROM structures WHERE id_type = ? AND id_value = ?').get(idType, idValue);
    return r ? rowStructure(r) : undefined;
  }
  async getStructure(id: number) {
    const r = this.q('SELECT * FROM structures WHERE id = ?').get(id);
    return r ? rowStructure(r) : undefined;
  }
  async listStructures() {
    return this.q('SELECT * FROM structures ORDER BY id').all().map(rowStructure);
  }

  async createPractitioner(p: Omit<Practitioner, 'id' | 'createdAt'>) {
    return wrapUnique(`practitioner RPPS ${p.rpps}`, () =>
      rowPractitioner(
        this.db
          .prepare('INSERT INTO practitioners (rpps, family_name, given_name, civility, profession_code, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING *')
          .get(p.rpps, p.familyName, p.givenName, p.civility ?? null, p.professionCode ?? null, now()),
      ),
    );
  }
  async findPractitionerByRpps(rpps: string) {
    const r = this.q('SELECT * FROM practitioners WHERE rpps = ?').get(rpps);
    return r ? rowPractitioner(r) : undefined;
  }
  async getPractitioner(id: number) {
    const r = this.q('SELECT * FROM practitioners WHERE id = ?').get(id);
    return r ? rowPractitioner(r) : undefined;
  }
  async listPractitioners() {
    return this.q('SELECT * FROM practitioners ORDER BY id').all().map(rowPractitioner);
  }

  async createUser(u: { login: string; displayName: string; practitionerId: number | null; passwordHash: string | null }) {
    return wrapUnique(`user ${u.login}`, () =>
      rowUser(
        this.db
          .prepare('INSERT INTO users (login, display_name, practitioner_id, password_hash, created_at) VALUES (?, ?, ?, ?, ?) RETURNING *')
          .get(u.login, u.displayName, u.practitionerId, u.passwordHash, now()),
      ),
    );
  }
  async getUser(id: number) {
    const r = this.q('SELECT * FROM users WHERE id = ?').get(id);
    return r ? rowUser(r) : undefined;
  }
  async findUserByLogin(login: string) {
    const r: any = this.q('SELECT * FROM users WHERE login = ?').get(login);
    return r ? { ...rowUser(r), passwordHash: r.password_hash as string | null } : undefined;
  }
  async setUserPassword(id: number, passwordHash: string) {
    this.q('UPDATE users SET password_hash = ? WHERE id = ?').run(passwordHash, id);
  }
  async listUsers() {
    return this.q('SELECT * FROM users ORDER BY id').all().map(rowUser);
  }
  async findUserByRpps(rpps: string) {
    const r = this.q('SELECT u.* FROM users u JOIN practitioners p ON p.id = u.practitioner_id WHERE p.rpps = ? ORDER BY u.id LIMIT 1').get(rpps);
    return r ? rowUser(r) : undefined;
  }
  async applicationAccount(structure: Structure) {
    return this.db.transaction(() => {
      const r = this.q('SELECT * FROM users WHERE structure_id = ?').get(structure.id);
      if (r) return rowUser(r);
      // A login that no person can choose (":" is refused in user logins by the CLI and core).
      const login = `app:${structure.idType.toLowerCase()}:${structure.idValue}`;
      return rowUser(
        this.q('INSERT INTO users (login, display_name, practitioner_id, password_hash, created_at, structure_id) VALUES (?, ?, NULL, NULL, ?, ?) RETURNING *').get(
          login,
          `Application — ${structure.name}`,
          now(),
          structure.id,
        ),
      );
    })();
  }

  async createAppPassword(a: { userId: number; label: string; secretHash: string }) {
    return rowAppPassword(this.q('INSERT INTO app_passwords (user_id, label, secret_hash, created_at) VALUES (?, ?, ?, ?) RETURNING *').get(a.userId, a.label, a.secretHash, now()));
  }
  async listAppPasswords(userId: number) {
    return this.q('SELECT * FROM app_passwords WHERE user_id = ? ORDER BY id DESC').all(userId).map(rowAppPassword);
  }
  async findAppPassword(userId: number, secretHash: string) {
    const r = this.q('SELECT * FROM app_passwords WHERE user_id = ? AND secret_hash = ? AND revoked_at IS NULL').get(userId, secretHash);
    return r ? rowAppPassword(r) : undefined;
  }
  async touchAppPassword(id: number, at: string, from: string | null) {
    this.q('UPDATE app_passwords SET last_used_at = ?, last_used_from = ? WHERE id = ?').run(at, from, id);
  }
  async revokeAppPassword(userId: number, id: number) {
    return this.q('UPDATE app_passwords SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL').run(now(), id, userId).changes > 0;
  }

  async getTotp(userId: number) {
    const r: any = this.q('SELECT * FROM totp_factors WHERE user_id = ?').get(userId);
    return r ? { userId: r.user_id, secret: r.secret, confirmedAt: r.confirmed_at, lastStep: r.last_step } : undefined;
  }
  async setPendingTotp(userId: number, secret: string) {
    this.db.transaction(() => {
      const cur: any = this.q('SELECT confirmed_at FROM totp_factors WHERE user_id = ?').get(userId);
      if (cur?.confirmed_at) throw new Error('a confirmed second factor exists: remove it before enrolling another');
      this.q('INSERT OR REPLACE INTO totp_factors (user_id, secret, confirmed_at, last_step, created_at) VALUES (?, ?, NULL, 0, ?)').run(userId, secret, now());
    })();
  }
  async confirmTotp(userId: number, step: number, recoveryCodeHashes: string[]) {
    this.db.transaction(() => {
      const n = this.q('UPDATE totp_factors SET confirmed_at = ?, last_step = ? WHERE user_id = ? AND confirmed_at IS NULL').run(now(), step, userId).changes;
      if (!n) throw new Error('no second-factor enrolment in progress');
      this.q('DELETE FROM recovery_codes WHERE user_id = ?').run(userId);
      const ins = this.q('INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)');
      for (const h of recoveryCodeHashes) ins.run(userId, h);
    })();
  }
  async useTotpStep(userId: number, step: number) {
    // RFC 6238 §5.2: a verified OTP must not be accepted again; one atomic compare-and-set.
    return this.q('UPDATE totp_factors SET last_step = ? WHERE user_id = ? AND last_step < ? AND confirmed_at IS NOT NULL').run(step, userId, step).changes > 0;
  }
  async useRecoveryCode(userId: number, codeHash: string) {
    return this.q('UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL').run(now(), userId, codeHash).changes > 0;
  }
  async remainingRecoveryCodes(userId: number) {
    return (this.q('SELECT COUNT(*) n FROM recovery_codes WHERE user_id = ? AND used_at IS NULL').get(userId) as any).n as number;
  }
  async deleteTotp(userId: number) {
    this.db.transaction(() => {
      this.q('DELETE FROM totp_factors WHERE user_id = ?').run(userId);
      this.q('DELETE FROM recovery_codes WHERE user_id = ?').run(userId);
    })();
  }

  async createHttpSession(s: Omit<HttpSession, 'id' | 'revokedAt'> & { tokenHash: string }) {
    return rowSession(
      this.q(
        'INSERT INTO http_sessions (token_hash, user_id, method, stage, csrf_token, created_at, last_seen_at, expires_at, remote, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *',
      ).get(s.tokenHash, s.userId, s.method, s.stage, s.csrfToken, s.createdAt, s.lastSeenAt, s.expiresAt, s.remote, s.userAgent),
    );
  }
  async findHttpSession(tokenHash: string) {
    const r = this.q('SELECT * FROM http_sessions WHERE token_hash = ? AND revoked_at IS NULL').get(tokenHash);
    return r ? rowSession(r) : undefined;
  }
  async touchHttpSession(id: number, lastSeenAt: number) {
    this.q('UPDATE http_sessions SET last_seen_at = ? WHERE id = ?').run(lastSeenAt, id);
  }
  async listHttpSessions(userId: number, at: number) {
    return this.q('SELECT * FROM http_sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY last_seen_at DESC').all(userId, at).map(rowSession);
  }
  async revokeHttpSession(userId: number, id: number) {
    return this.q('UPDATE http_sessions SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL').run(Date.now(), id, userId).changes > 0;
  }
  async revokeHttpSessions(userId: number, exceptId?: number) {
    return this.q('UPDATE http_sessions SET revoked_at = ? WHERE user_id = ? AND id != ? AND revoked_at IS NULL').run(Date.now(), userId, exceptId ?? -1).changes;
  }

  async createMailbox(m: Parameters<Store['createMailbox']>[0]) {
    return wrapUnique(`mailbox ${m.address}`, () =>
      this.db.transaction(() => {
        const t = now();
        const r = this.db
          .prepare(
            `INSERT INTO mailboxes (address, type, display_name, owner_user_id, practitioner_id, structure_id, liste_rouge, service, description, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
          )
          .get(m.address, m.type, m.displayName, m.ownerUserId, m.practitionerId, m.structureId, m.listeRouge ? 1 : 0, m.service ?? null, m.description ?? null, t, t);
        const mb = rowMailbox(r);
        const ins = this.q('INSERT INTO folders (mailbox_id, name, special_use, uid_validity) VALUES (?, ?, ?, ?)');
        // RFC 9051 §2.3.1.1: UIDVALIDITY must change if UIDs are reassigned; folders created later
        // take values above last_uid_validity (see createFolder).
        const uv = Math.floor(Date.now() / 1000) >>> 0;
        for (const f of DEFAULT_FOLDERS) ins.run(mb.id, f.name, f.specialUse, uv);
        this.q('UPDATE mailboxes SET last_uid_validity = ? WHERE id = ?').run(uv, mb.id);
        return mb;
      })(),
    );
  }
  async getMailbox(id: number) {
    const r = this.q('SELECT * FROM mailboxes WHERE id = ?').get(id);
    return r ? rowMailbox(r) : undefined;
  }
  async findMailboxByAddress(address: string) {
    const r = this.q('SELECT * FROM mailboxes WHERE address = ?').get(address);
    return r ? rowMailbox(r) : undefined;
  }
  async listMailboxes(filter: Parameters<Store['listMailboxes']>[0] = {}) {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.ownerUserId !== undefined) (where.push('owner_user_id = ?'), args.push(filter.ownerUserId));
    if (filter.state !== undefined) (where.push('state = ?'), args.push(filter.state));
    if (filter.structureId !== undefined) (where.push('structure_id = ?'), args.push(filter.structureId));
    if (filter.type !== undefined) (where.push('type = ?'), args.push(filter.type));
    const sql = `SELECT * FROM mailboxes ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id`;
    return this.q(sql).all(...args).map(rowMailbox);
  }
  async updateMailbox(id: number, u: MailboxUpdate) {
    const sets: string[] = [];
    const args: unknown[] = [];
    const map: [keyof MailboxUpdate, string][] = [
      ['state', 'state'],
      ['displayName', 'display_name'],
      ['service', 'service'],
      ['description', 'description'],
      ['ownerUserId', 'owner_user_id'],
    ];
    for (const [k, col] of map) if (u[k] !== undefined) (sets.push(`${col} = ?`), args.push(u[k]));
    if (u.listeRouge !== undefined) (sets.push('liste_rouge = ?'), args.push(u.listeRouge ? 1 : 0));
    sets.push('updated_at = ?');
    args.push(now());
    const r = this.q(`UPDATE mailboxes SET ${sets.join(', ')} WHERE id = ? RETURNING *`).get(...args, id);
    if (!r) throw new Error(`mailbox #${id} not found`);
    return rowMailbox(r);
  }

  async setGrant(mailboxId: number, userId: number, rights: GrantRight[]) {
    const r = this.db
      .prepare(
        `INSERT INTO grants (mailbox_id, user_id, rights, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (mailbox_id, user_id) DO UPDATE SET rights = excluded.rights RETURNING *`,
      )
      .get(mailboxId, userId, [...new Set(rights)].sort().join(','), now());
    return rowGrant(r);
  }
  async removeGrant(mailboxId: number, userId: number) {
    return this.q('DELETE FROM grants WHERE mailbox_id = ? AND user_id = ?').run(mailboxId, userId).changes > 0;
  }
  async listGrants(filter: { mailboxId?: number; userId?: number } = {}) {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.mailboxId !== undefined) (where.push('mailbox_id = ?'), args.push(filter.mailboxId));
    if (filter.userId !== undefined) (where.push('user_id = ?'), args.push(filter.userId));
    return this.db
      .prepare(`SELECT * FROM grants ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id`)
      .all(...args)
      .map(rowGrant);
  }

  async getFolder(mailboxId: number, name: string) {
    const r = this.q('SELECT * FROM folders WHERE mailbox_id = ? AND name = ?').get(mailboxId, name);
    return r ? rowFolder(r) : undefined;
  }
  async listFolders(mailboxId: number) {
    return this.q('SELECT * FROM folders WHERE mailbox_id = ? ORDER BY id').all(mailboxId).map(rowFolder);
  }
  async listMessages(folderId: number) {
    return this.q('SELECT * FROM messages WHERE folder_id = ? ORDER BY uid').all(folderId).map(rowMessage);
  }

  /** Appends one message to a mailbox's INBOX inside the caller's transaction. */
  private appendToInbox(mailboxId: number, blobId: string, size: number, internalDate: string): DeliveredCopy {
    const f: any = this.db
      .prepare("UPDATE folders SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1 WHERE mailbox_id = ? AND name = 'INBOX' RETURNING id, uid_next - 1 AS uid, highest_modseq")
      .get(mailboxId);
    if (!f) throw new Error(`mailbox #${mailboxId} has no INBOX`);
    const m: any = this.db
      .prepare('INSERT INTO messages (folder_id, uid, blob_id, size, internal_date, flags, modseq) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id')
      .get(f.id, f.uid, blobId, size, internalDate, '', f.highest_modseq);
    return { mailboxId, folderId: f.id, uid: f.uid, messageId: m.id };
  }

  async deliver(req: DeliveryRequest) {
    return this.db.transaction(() => {
      const internalDate = req.internalDate.toISOString();
      const copies = [...new Set(req.localMailboxIds)].map((id) => this.appendToInbox(id, req.blobId, req.size, internalDate));
      const ins = this.q(
        `INSERT INTO outbound_queue (blob_id, size, envelope_from, recipient, domain, notify, orcpt, ret, envid, sender_mailbox_id, next_attempt_at, queued_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      const t = Date.now();
      for (const r of req.remote) {
        ins.run(req.blobId, req.size, req.envelopeFrom, r.recipient, r.domain.toLowerCase(), r.notify?.join(',') ?? null, r.orcpt, req.ret ?? null, req.envid ?? null, req.senderMailboxId ?? null, t, t);
      }
      return copies;
    })();
  }

  async dueQueueItems(at: number, limit: number) {
    return this.db
      .prepare("SELECT * FROM outbound_queue WHERE status = 'queued' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?")
      .all(at, limit)
      .map(rowQueue);
  }
  async nextQueueAttempt() {
    const r: any = this.q("SELECT MIN(next_attempt_at) t FROM outbound_queue WHERE status = 'queued'").get();
    return r?.t ?? undefined;
  }
  async listQueue(filter: { status?: QueueItem['status'] } = {}) {
    const sql = filter.status ? 'SELECT * FROM outbound_queue WHERE status = ? ORDER BY id' : 'SELECT * FROM outbound_queue ORDER BY id';
    return (filter.status ? this.q(sql).all(filter.status) : this.q(sql).all()).map(rowQueue);
  }
  async completeQueueItems(c: QueueCompletion) {
    return this.db.transaction(() => {
      const t = Date.now();
      const sent = this.q("UPDATE outbound_queue SET status = 'sent', attempts = attempts + 1, last_error = NULL, done_at = ? WHERE id = ? AND status = 'queued'");
      const failed = this.q("UPDATE outbound_queue SET status = 'failed', attempts = attempts + 1, last_error = ?, done_at = ? WHERE id = ? AND status = 'queued'");
      const deferred = this.q("UPDATE outbound_queue SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ? AND status = 'queued'");
      for (const id of c.sent) sent.run(t, id);
      for (const f of c.failed) failed.run(f.error, t, f.id);
      for (const d of c.deferred) deferred.run(d.error, d.nextAttemptAt, d.id);
      const at = new Date(t).toISOString();
      return c.dsns.map((d) => this.appendToInbox(d.mailboxId, d.blobId, d.size, at));
    })();
  }

  async isBlobReferenced(blobId: string) {
    return !!(
      this.q('SELECT 1 FROM messages WHERE blob_id = ? LIMIT 1').get(blobId) ||
      this.q("SELECT 1 FROM outbound_queue WHERE blob_id = ? AND status = 'queued' LIMIT 1").get(blobId)
    );
  }

  // ---- folders (IMAP) ----------------------------------------------------------------------

  /** Bumps and returns the folder's HIGHESTMODSEQ (RFC 7162 §3.1.1: strictly increasing). */
  private bumpModseq(folderId: number): number {
    const r: any = this.q('UPDATE folders SET highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING highest_modseq').get(folderId);
    if (!r) throw new Error(`folder #${folderId} not found`);
    return r.highest_modseq;
  }

  async createFolder(mailboxId: number, name: string, specialUse: string | null = null) {
    return wrapUnique(`folder ${name}`, () => {
      return this.db.transaction(() => {
        // A recreated name must get a new UIDVALIDITY (RFC 9051 §2.3.1.1): the mailbox remembers
        // the last one it issued, so none is ever reused, even for a folder deleted meanwhile.
        const prev: any = this.q('SELECT last_uid_validity v FROM mailboxes WHERE id = ?').get(mailboxId);
        const uidValidity = Math.max(Math.floor(Date.now() / 1000), (prev?.v ?? 0) + 1) >>> 0;
        this.q('UPDATE mailboxes SET last_uid_validity = ? WHERE id = ?').run(uidValidity, mailboxId);
        const r = this.db
          .prepare('INSERT INTO folders (mailbox_id, name, special_use, uid_validity) VALUES (?, ?, ?, ?) RETURNING *')
          .get(mailboxId, name, specialUse, uidValidity);
        return rowFolder(r);
      })();
    });
  }

  async deleteFolder(folderId: number) {
    this.db.transaction(() => {
      this.q('DELETE FROM messages WHERE folder_id = ?').run(folderId);
      this.q('DELETE FROM expunged WHERE folder_id = ?').run(folderId);
      this.q('DELETE FROM folders WHERE id = ?').run(folderId);
    })();
  }

  async renameFolder(mailboxId: number, from: string, to: string, delimiter: string) {
    wrapUnique(`folder ${to}`, () =>
      this.db.transaction(() => {
        const rows: any[] = this.q('SELECT id, name FROM folders WHERE mailbox_id = ? AND (name = ? OR substr(name, 1, ?) = ?)').all(mailboxId, from, from.length + delimiter.length, from + delimiter);
        const upd = this.q('UPDATE folders SET name = ? WHERE id = ?');
        for (const r of rows) upd.run(to + r.name.slice(from.length), r.id);
      })(),
    );
  }

  async getFolderById(folderId: number) {
    const r = this.q('SELECT * FROM folders WHERE id = ?').get(folderId);
    return r ? rowFolder(r) : undefined;
  }

  async listSubscriptions(mailboxId: number) {
    return this.q('SELECT name FROM subscriptions WHERE mailbox_id = ? ORDER BY name').all(mailboxId).map((r: any) => r.name as string);
  }

  async setSubscribed(mailboxId: number, name: string, subscribed: boolean) {
    if (subscribed) this.q('INSERT OR IGNORE INTO subscriptions (mailbox_id, name) VALUES (?, ?)').run(mailboxId, name);
    else this.q('DELETE FROM subscriptions WHERE mailbox_id = ? AND name = ?').run(mailboxId, name);
  }

  async folderModseq(folderId: number) {
    const r: any = this.q('SELECT highest_modseq FROM folders WHERE id = ?').get(folderId);
    if (!r) throw new Error(`folder #${folderId} not found`);
    return r.highest_modseq as number;
  }

  async folderStatus(folderId: number): Promise<FolderStatus> {
    const f: any = this.q('SELECT * FROM folders WHERE id = ?').get(folderId);
    if (!f) throw new Error(`folder #${folderId} not found`);
    const c: any = this.db
      .prepare(
        `SELECT COUNT(*) n, COALESCE(SUM(size), 0) size, COALESCE(SUM(recent), 0) recent,
                COALESCE(SUM(CASE WHEN (' ' || flags || ' ') LIKE '% \\Seen %' THEN 0 ELSE 1 END), 0) unseen,
                COALESCE(SUM(CASE WHEN (' ' || flags || ' ') LIKE '% \\Deleted %' THEN 1 ELSE 0 END), 0) deleted
         FROM messages WHERE folder_id = ?`,
      )
      .get(folderId);
    let firstUnseenSeq: number | null = null;
    if (c.unseen > 0) {
      const u: any = this.db
        .prepare(
          `SELECT (SELECT COUNT(*) FROM messages m2 WHERE m2.folder_id = m.folder_id AND m2.uid <= m.uid) seq
           FROM messages m WHERE m.folder_id = ? AND (' ' || m.flags || ' ') NOT LIKE '% \\Seen %' ORDER BY m.uid LIMIT 1`,
        )
        .get(folderId);
      firstUnseenSeq = u?.seq ?? null;
    }
    return {
      messages: c.n,
      recent: c.recent,
      unseen: c.unseen,
      deleted: c.deleted,
      size: c.size,
      uidNext: f.uid_next,
      uidValidity: f.uid_validity,
      highestModseq: f.highest_modseq,
      firstUnseenSeq,
    };
  }

  async folderMessages(folderId: number, opts: { clearRecent?: boolean } = {}) {
    return this.db.transaction(() => {
      const rows = this.q('SELECT uid, flags, modseq, size, internal_date, blob_id, recent FROM messages WHERE folder_id = ? ORDER BY uid').all(folderId).map(rowFolderMessage);
      if (opts.clearRecent && rows.some((r) => r.recent)) this.q('UPDATE messages SET recent = 0 WHERE folder_id = ? AND recent = 1').run(folderId);
      return rows;
    })();
  }

  async claimRecent(folderId: number, uids: number[]) {
    return this.db.transaction(() => {
      const upd = this.q('UPDATE messages SET recent = 0 WHERE folder_id = ? AND uid = ? AND recent = 1');
      return uids.filter((u) => upd.run(folderId, u).changes > 0);
    })();
  }

  async changedSince(folderId: number, modseq: number) {
    return this.db
      .prepare('SELECT uid, flags, modseq, size, internal_date, blob_id, recent FROM messages WHERE folder_id = ? AND modseq > ? ORDER BY uid')
      .all(folderId, modseq)
      .map(rowFolderMessage);
  }

  async expungedSince(folderId: number, modseq: number) {
    return this.q('SELECT uid FROM expunged WHERE folder_id = ? AND modseq > ? ORDER BY uid').all(folderId, modseq).map((r: any) => r.uid as number);
  }

  async appendMessage(folderId: number, m: { blobId: string; size: number; flags: string[]; internalDate: Date }) {
    return this.db.transaction(() => {
      const f: any = this.db
        .prepare('UPDATE folders SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING uid_next - 1 AS uid, highest_modseq')
        .get(folderId);
      if (!f) throw new Error(`folder #${folderId} not found`);
      this.db
        .prepare('INSERT INTO messages (folder_id, uid, blob_id, size, internal_date, flags, modseq) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(folderId, f.uid, m.blobId, m.size, m.internalDate.toISOString(), normaliseFlags(m.flags).join(' '), f.highest_modseq);
      return { uid: f.uid as number, modseq: f.highest_modseq as number };
    })();
  }

  async storeFlags(folderId: number, uids: number[], op: 'set' | 'add' | 'remove', flags: string[], unchangedSince?: number) {
    return this.db.transaction(() => {
      const updated: FlagUpdate[] = [];
      const modifiedUids: number[] = [];
      const get = this.q('SELECT flags, modseq FROM messages WHERE folder_id = ? AND uid = ?');
      const set = this.q('UPDATE messages SET flags = ?, modseq = ? WHERE folder_id = ? AND uid = ?');
      const wanted = normaliseFlags(flags);
      let modseq = 0;
      for (const uid of uids) {
        const r: any = get.get(folderId, uid);
        if (!r) continue;
        if (unchangedSince !== undefined && r.modseq > unchangedSince) {
          modifiedUids.push(uid);
          continue;
        }
        const cur: string[] = r.flags ? r.flags.split(' ') : [];
        let next: string[];
        if (op === 'set') next = wanted;
        else if (op === 'add') next = normaliseFlags([...cur, ...wanted]);
        else {
          const drop = new Set(wanted.map((f) => f.toLowerCase()));
          next = cur.filter((f) => !drop.has(f.toLowerCase()));
        }
        const same = next.length === cur.length && next.every((f) => cur.some((c) => c.toLowerCase() === f.toLowerCase()));
        if (same) {
          // Unchanged: still reported to the client, with its current modseq (RFC 7162 §3.2).
          updated.push({ uid, flags: cur, modseq: r.modseq });
          continue;
        }
        if (!modseq) modseq = this.bumpModseq(folderId);
        set.run(next.join(' '), modseq, folderId, uid);
        updated.push({ uid, flags: next, modseq });
      }
      return { updated, modifiedUids };
    })();
  }

  async expunge(folderId: number, uids?: number[]) {
    return this.db.transaction(() => {
      const rows: any[] = this.q("SELECT uid FROM messages WHERE folder_id = ? AND (' ' || flags || ' ') LIKE '% \\Deleted %' ORDER BY uid").all(folderId);
      const only = uids ? new Set(uids) : undefined;
      const gone = rows.map((r) => r.uid as number).filter((u) => !only || only.has(u));
      if (gone.length === 0) return [];
      const modseq = this.bumpModseq(folderId);
      const del = this.q('DELETE FROM messages WHERE folder_id = ? AND uid = ?');
      const rec = this.q('INSERT OR REPLACE INTO expunged (folder_id, uid, modseq) VALUES (?, ?, ?)');
      for (const u of gone) {
        del.run(folderId, u);
        rec.run(folderId, u, modseq);
      }
      return gone;
    })();
  }

  async copyMessages(fromFolderId: number, uids: number[], toFolderId: number, move: boolean) {
    return this.db.transaction(() => {
      const get = this.q('SELECT * FROM messages WHERE folder_id = ? AND uid = ?');
      const ins = this.q('INSERT INTO messages (folder_id, uid, blob_id, size, internal_date, flags, modseq, recent) VALUES (?, ?, ?, ?, ?, ?, ?, 1)');
      const map: { from: number; to: number }[] = [];
      const rows = uids.map((u) => get.get(fromFolderId, u) as any).filter(Boolean);
      if (rows.length === 0) return map;
      const dst: any = this.db
        .prepare('UPDATE folders SET uid_next = uid_next + ?, highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING uid_next - ? AS first, highest_modseq')
        .get(rows.length, toFolderId, rows.length);
      rows.forEach((r, i) => {
        ins.run(toFolderId, dst.first + i, r.blob_id, r.size, r.internal_date, r.flags, dst.highest_modseq);
        map.push({ from: r.uid, to: dst.first + i });
      });
      if (move) {
        // RFC 6851 §3.3: the source messages are expunged as part of the same operation.
        const modseq = this.bumpModseq(fromFolderId);
        const del = this.q('DELETE FROM messages WHERE folder_id = ? AND uid = ?');
        const rec = this.q('INSERT OR REPLACE INTO expunged (folder_id, uid, modseq) VALUES (?, ?, ?)');
        for (const r of rows) {
          del.run(fromFolderId, r.uid);
          rec.run(fromFolderId, r.uid, modseq);
        }
      }
      return map;
    })();
  }

  async mailboxUsage(mailboxId: number) {
    const r: any = this.db
      .prepare('SELECT COUNT(*) n, COALESCE(SUM(m.size), 0) bytes FROM messages m JOIN folders f ON f.id = m.folder_id WHERE f.mailbox_id = ?')
      .get(mailboxId);
    return { bytes: r.bytes as number, messages: r.n as number };
  }

  async recordAuth(e: AuthAuditEntry) {
    this.q('INSERT INTO auth_audit (at, login, user_id, protocol, method, remote, success, reason, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)').run(
      e.at,
      e.login.slice(0, 320),
      e.userId,
      e.protocol,
      e.method,
      e.remote,
      e.success ? 1 : 0,
      e.reason,
      e.actor?.slice(0, 320) ?? null,
    );
  }

  async listAuthAudit(limit: number) {
    return this.q('SELECT * FROM auth_audit ORDER BY id DESC LIMIT ?')
      .all(limit)
      .map((r: any) => ({ at: r.at, login: r.login, userId: r.user_id, protocol: r.protocol, method: r.method, remote: r.remote, success: !!r.success, reason: r.reason, actor: r.actor }));
  }

  async getBlobMeta(blobId: string) {
    const r: any = this.q('SELECT info FROM blob_meta WHERE blob_id = ?').get(blobId);
    return r?.info as string | undefined;
  }

  async setBlobMeta(blobId: string, info: string) {
    this.q('INSERT OR REPLACE INTO blob_meta (blob_id, info) VALUES (?, ?)').run(blobId, info);
  }
}
