// The domain services and the one access decision point (architecture invariant 3): every
// protocol asks here whether a user may read, send as, or administer a mailbox.
import { EventEmitter } from 'node:events';
import type { ActivityKind, DeliveredCopy, DeliveryRequest, DeliveryResult, IncomingReport, Store, SubmissionChange, TraceAction, TraceProtocol } from '../store/types.js';
import {
  GRANT_RIGHTS,
  MAILBOX_TYPES,
  type Grant,
  type GrantRight,
  type Mailbox,
  type MailboxType,
  type StructureIdType,
  type User,
} from '../model/index.js';

export * from '../model/index.js';

/** A request the domain refuses; the message says what failed and what to do. */
export class CoreError extends Error {
  override name = 'CoreError';
}

/** What the request names does not exist (a user, a mailbox): IMAP NONEXISTENT, HTTP 404. */
export class NotFound extends CoreError {
  override name = 'NotFound';
}

/** The actor may not do this (e.g. read or change a mailbox's ACL): IMAP NOPERM, HTTP 403. */
export class AccessDenied extends CoreError {
  override name = 'AccessDenied';
}

/** RFC 5321 §4.1.2 Mailbox, restricted to the dot-atom form MSSanté addresses use. */
const ADDRESS_RE = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

export function isValidAddress(a: string): boolean {
  return a.length <= 254 && ADDRESS_RE.test(a);
}

export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase();
}

export type RecipientResolution =
  | { kind: 'local'; mailbox: Mailbox }
  | { kind: 'unknown' }
  /** `substitute`: the address the operator names to senders (golden rule 2), when one was given. */
  | { kind: 'deleted'; substitute: string | null }
  | { kind: 'suspended'; mailbox: Mailbox }
  | { kind: 'remote'; domain: string };

export type SendDecision =
  | { ok: true; mailbox: Mailbox; onBehalf: boolean }
  | { ok: false; reason: string };

/** Rights asked for in an ACL change: grant terms, or RFC 4314 §2.1 letters (mapped by aclToRights). */
export type AclRights = { rights: GrantRight[] } | { letters: string };
/** Replace the rights, add to them or remove from them (RFC 4314 §3.1 SETACL "", "+", "-"). */
export type AclMode = 'set' | 'add' | 'remove';

/** One line of a mailbox's ACL: who, in grant terms and as RFC 4314 letters. */
export interface AclEntry {
  login: string;
  owner: boolean;
  rights: GrantRight[];
  acl: string;
}

/**
 * Where an action on a mailbox comes from, for its functional trace (docs/traces.md): the way
 * (protocol), the user acting (none: the operator itself, or an administrator at the command
 * line named by `actor`), the remote address.
 */
export interface TraceOrigin {
  protocol: TraceProtocol;
  user?: User | null;
  /** Who acted when no user did: the administrator's account at the command line; default 'system'. */
  actor?: string;
  remote?: string | null;
}

/** The operator's own doing (notices, replies, rules): the default origin of a change. */
const SYSTEM_ORIGIN: TraceOrigin = { protocol: 'system' };

export interface MailboxEvent {
  mailboxId: number;
  folderId: number;
  uid: number;
}

/**
 * Event 'folders-changed': the folder list or the subscriptions of a mailbox changed (IMAP
 * CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE; the mail service creating a special-use folder).
 * Ids only: a session that watches the mailbox (RFC 5465 NOTIFY MailboxName, SubscriptionChange)
 * reads the folders again and reports the difference.
 */
export interface FoldersChange {
  mailboxId: number;
}

/** Event 'metadata-changed': METADATA entries (RFC 5464) of a folder (folderId null: the server) were set or removed. */
export interface MetadataChange {
  mailboxId: number | null;
  folderId: number | null;
  /** /shared entries (lower case): changed for every holder of the mailbox. */
  shared: string[];
  /** /private entries (lower case): changed for `userId` only. */
  private: string[];
  userId: number;
}

/** Maps grant rights to RFC 4314 §2.1 rights letters. */
export function rightsToAcl(rights: Set<GrantRight>, owner: boolean): string {
  if (owner) return 'lrswipkxtea';
  let acl = '';
  if (rights.has('read') || rights.has('manage')) acl += 'lrs';
  if (rights.has('manage')) acl += 'wipkxtea';
  return acl;
}

/** Maps RFC 4314 rights letters back to grant rights (what SETACL can express). */
export function aclToRights(acl: string): GrantRight[] {
  const out: GrantRight[] = [];
  if (/[lr]/.test(acl)) out.push('read');
  if (/a/.test(acl)) out.push('manage');
  return out;
}

/**
 * Reads the delivery / disposition reports a stored message carries (policy/receipts.ts, over
 * mime/report.ts): given to Core by the composition root, as Core cannot parse MIME itself.
 */
export type ReportReader = (blobId: string) => Promise<IncomingReport[]>;

export class Core {
  /**
   * Emits 'delivered' (MailboxEvent) after a message is committed; IMAP IDLE etc. subscribe.
   * 'submission' (SubmissionChange: { id, mailboxId }) when a submitted message's tracking
   * changed (docs/receipts.md; the SSE stream subscribes).
   * Also 'folder-changed' { folderId, kind?, ids? } (IMAP and the mail service), 'grants-changed'
   * { mailboxId, userId }, 'folders-changed' (FoldersChange), 'metadata-changed' (MetadataChange),
   * 'stored', 'queued'.
   */
  readonly events = new EventEmitter();
  private readonly localDomains: Set<string>;
  /** Set by the composition root: reports in delivered messages update the sender's tracking. */
  reportReader?: ReportReader;

  constructor(
    readonly store: Store,
    localDomains: string[],
  ) {
    this.localDomains = new Set(localDomains.map((d) => d.toLowerCase()));
    this.events.setMaxListeners(0);
  }

  isLocalDomain(domain: string): boolean {
    return this.localDomains.has(domain.toLowerCase());
  }

  // ---- administration -------------------------------------------------------------------

  async createStructure(idType: StructureIdType, idValue: string, name: string) {
    // FINESS: 9 characters (digits, 2A/2B for Corsica); SIRET: 14 digits.
    if (idType === 'FINESS' && !/^[0-9][0-9AB][0-9]{7}$/.test(idValue)) throw new CoreError(`FINESS ${idValue} must be 9 characters (e.g. 750712184)`);
    if (idType === 'SIRET' && !/^[0-9]{14}$/.test(idValue)) throw new CoreError(`SIRET ${idValue} must be 14 digits`);
    return this.store.createStructure({ idType, idValue, name });
  }

  async createPractitioner(p: { rpps: string; familyName: string; givenName: string; civility?: string; professionCode?: string }) {
    if (!/^[0-9]{11}$/.test(p.rpps)) throw new CoreError(`RPPS ${p.rpps} must be 11 digits`);
    return this.store.createPractitioner({ ...p, civility: p.civility ?? null, professionCode: p.professionCode ?? null });
  }

  /** `passwordHash`: from auth's `hashNewPassword` (the policy and hashing live in auth/). */
  async createUser(u: { login: string; displayName: string; passwordHash?: string; rpps?: string }): Promise<User> {
    // Logins with ":" are reserved for application accounts (app:<FINESS|SIRET>:<id>).
    if (!/^[A-Za-z0-9._@+-]{1,128}$/.test(u.login)) throw new CoreError(`login ${JSON.stringify(u.login)} is not valid: use letters, digits and . _ @ + - (1–128 characters)`);
    let practitionerId: number | null = null;
    if (u.rpps) {
      const p = await this.store.findPractitionerByRpps(u.rpps);
      if (!p) throw new CoreError(`no practitioner with RPPS ${u.rpps}: create it first (caducee practitioner create)`);
      practitionerId = p.id;
    }
    return this.store.createUser({ login: u.login, displayName: u.displayName, practitionerId, passwordHash: u.passwordHash ?? null });
  }

  async requireUser(login: string): Promise<User> {
    const u = await this.store.findUserByLogin(login);
    if (!u) throw new NotFound(`no user ${login}`);
    const { passwordHash: _h, ...user } = u;
    return user;
  }

  async requireMailbox(address: string): Promise<Mailbox> {
    const m = await this.store.findMailboxByAddress(address);
    if (!m) throw new NotFound(`no mailbox ${address}`);
    return m;
  }

  /**
   * Creates an MSSanté mailbox. ANS rules: PER belongs to a practitioner (RPPS), optionally in a
   * structure; CAB to a practitioner; ORG and APP to a structure (FINESS/SIRET).
   */
  async createMailbox(m: {
    address: string;
    type: MailboxType;
    displayName: string;
    owner?: string;
    rpps?: string;
    structure?: { idType: StructureIdType; idValue: string };
    listeRouge?: boolean;
    service?: string;
    description?: string;
  }): Promise<Mailbox> {
    const address = m.address.trim();
    if (!isValidAddress(address)) throw new CoreError(`${address} is not a valid mail address`);
    if (!MAILBOX_TYPES.includes(m.type)) throw new CoreError(`mailbox type must be one of ${MAILBOX_TYPES.join(', ')}`);
    if (!this.isLocalDomain(domainOf(address)))
      throw new CoreError(`${domainOf(address)} is not one of this operator's domains (${[...this.localDomains].join(', ') || 'none configured'})`);
    const owner = m.owner ? await this.requireUser(m.owner) : null;
    let practitionerId: number | null = null;
    if (m.rpps) {
      const p = await this.store.findPractitionerByRpps(m.rpps);
      if (!p) throw new CoreError(`no practitioner with RPPS ${m.rpps}`);
      practitionerId = p.id;
    } else if (owner?.practitionerId && (m.type === 'PER' || m.type === 'CAB')) {
      practitionerId = owner.practitionerId;
    }
    let structureId: number | null = null;
    if (m.structure) {
      const s = await this.store.findStructure(m.structure.idType, m.structure.idValue);
      if (!s) throw new CoreError(`no structure ${m.structure.idType} ${m.structure.idValue}`);
      structureId = s.id;
    }
    if ((m.type === 'PER' || m.type === 'CAB') && practitionerId === null)
      throw new CoreError(`a ${m.type} mailbox belongs to a practitioner: give --rpps or an owner linked to a practitioner`);
    if ((m.type === 'ORG' || m.type === 'APP') && structureId === null)
      throw new CoreError(`an ${m.type} mailbox belongs to a structure: give --structure FINESS:id or SIRET:id`);
    return this.store.createMailbox({
      address,
      type: m.type,
      displayName: m.displayName,
      ownerUserId: owner?.id ?? null,
      practitionerId,
      structureId,
      listeRouge: !!m.listeRouge,
      service: m.service ?? null,
      description: m.description ?? null,
    });
  }

  async setMailboxState(address: string, state: Mailbox['state'], origin: TraceOrigin = SYSTEM_ORIGIN) {
    const m = await this.requireMailbox(address);
    if (m.state === 'deleted' && state !== 'deleted') throw new CoreError(`${address} is deleted; a deleted address is never reused`);
    const updated = await this.store.updateMailbox(m.id, { state });
    if (m.state !== state) await this.trace(m, 'state-changed', origin, { from: m.state, to: state });
    return updated;
  }

  /**
   * Puts a mailbox on the liste rouge (`on`: no longer published in the national directory) or
   * takes it off. Nothing else to trigger: both consumers read this flag from the store — the
   * directory's public output at its next refresh of our mailboxes (seconds), and the next
   * publication run (`caducee directory publish`), which deletes a published mailbox that went on
   * the liste rouge and inserts one taken off it (docs/directory.md).
   */
  async setListeRouge(address: string, on: boolean, origin: TraceOrigin = SYSTEM_ORIGIN): Promise<Mailbox> {
    const m = await this.requireMailbox(address);
    if (m.state === 'deleted') throw new CoreError(`${address} is deleted: a deleted mailbox is never published, on the liste rouge or not`);
    const updated = await this.store.updateMailbox(m.id, { listeRouge: on });
    if (m.listeRouge !== on) await this.trace(m, 'liste-rouge', origin, { on });
    return updated;
  }

  /** Gives `login` exactly `rights` on the mailbox `address` (operator administration; none: removes the grant). */
  async grant(address: string, login: string, rights: GrantRight[], origin: TraceOrigin = SYSTEM_ORIGIN): Promise<Grant | undefined> {
    return this.changeGrant(await this.requireMailbox(address), login, { rights }, 'set', origin);
  }

  // ---- access control lists (who holds which rights on a mailbox) ---------------------------

  /**
   * The ACL of `address` as seen by `actor`: the owner (all rights), then every grant, each in
   * grant terms and as RFC 4314 §2.1 letters (send-on-behalf alone gives no letter). Only those
   * who administer the mailbox (owner, `manage` delegate, its application account) may read it.
   */
  async listAcl(actor: User, address: string): Promise<AclEntry[]> {
    const m = await this.requireAdministered(actor, address);
    const out: AclEntry[] = [];
    if (m.ownerUserId !== null) {
      const owner = await this.store.getUser(m.ownerUserId);
      if (owner) out.push({ login: owner.login, owner: true, rights: [...GRANT_RIGHTS], acl: rightsToAcl(new Set(GRANT_RIGHTS), true) });
    }
    for (const g of await this.store.listGrants({ mailboxId: m.id })) {
      const u = await this.store.getUser(g.userId);
      if (u) out.push({ login: u.login, owner: false, rights: g.rights, acl: rightsToAcl(new Set(g.rights), false) });
    }
    return out;
  }

  /**
   * Changes what `login` holds on `address`, on behalf of `actor` (who must administer it):
   * `rights` in grant terms, or RFC 4314 letters (which cannot express send-on-behalf: it is
   * kept as it is); `mode` replaces them, adds to them or removes from them (RFC 4314 §3.1
   * "+"/"-"). The same checks as `grant` apply. Returns the grant, undefined once none is left.
   */
  async setAcl(actor: User, address: string, login: string, rights: AclRights, mode: AclMode = 'set', origin: Omit<TraceOrigin, 'user'> = { protocol: 'imap' }): Promise<Grant | undefined> {
    return this.changeGrant(await this.requireAdministered(actor, address), login, rights, mode, { ...origin, user: actor });
  }

  /**
   * Removes what `login` holds on `address` (actor: as for `setAcl`). `terms` 'imap' removes the
   * rights IMAP expresses (RFC 4314 §3.2 DELETEACL) and keeps send-on-behalf; 'grant' the whole grant.
   */
  async removeAcl(actor: User, address: string, login: string, terms: 'imap' | 'grant' = 'grant', origin: Omit<TraceOrigin, 'user'> = { protocol: 'imap' }): Promise<Grant | undefined> {
    return this.setAcl(actor, address, login, terms === 'imap' ? { letters: '' } : { rights: [] }, 'set', origin);
  }

  /**
   * The mailbox `address`, if `actor` may administer it (read and change its ACL, its absence
   * message): its owner or a delegate with the manage right.
   */
  async requireAdministered(actor: User, address: string): Promise<Mailbox> {
    const m = await this.requireMailbox(address);
    if (m.state === 'deleted') throw new NotFound(`no mailbox ${address}: it is deleted`);
    if (!(await this.rightsOn(actor, m)).has('manage'))
      throw new AccessDenied(`${actor.login} may not administer ${address} (who has access, its absence message): only its owner or a delegate with the manage right may`);
    return m;
  }

  /** The one place a grant changes: checks, then the new rights computed from the current ones. */
  private async changeGrant(m: Mailbox, login: string, asked: AclRights, mode: AclMode, origin: TraceOrigin): Promise<Grant | undefined> {
    const wanted = 'letters' in asked ? aclToRights(asked.letters) : asked.rights;
    for (const r of wanted) if (!GRANT_RIGHTS.includes(r)) throw new CoreError(`unknown right ${r}: use ${GRANT_RIGHTS.join(', ')}`);
    const u = await this.requireUser(login);
    const current = (await this.store.listGrants({ mailboxId: m.id, userId: u.id }))[0]?.rights ?? [];
    // Letters only speak of the rights IMAP expresses (read, manage); the others stay as they are.
    const scope: readonly GrantRight[] = 'letters' in asked ? aclToRights(rightsToAcl(new Set(GRANT_RIGHTS), true)) : GRANT_RIGHTS;
    const kept = current.filter((r) => !scope.includes(r));
    // What the letters see of the current rights (manage implies read in RFC 4314 terms).
    const inScope = 'letters' in asked ? aclToRights(rightsToAcl(new Set(current), false)) : current.filter((r) => scope.includes(r));
    const changed = mode === 'add' ? [...new Set([...inScope, ...wanted])] : mode === 'remove' ? inScope.filter((r) => !wanted.includes(r)) : wanted;
    const rights = [...kept, ...changed];
    if (rights.length === 0) {
      // Also clears a grant the owner or an application account may hold from before the checks
      // below (it opens nothing).
      if (await this.store.removeGrant(m.id, u.id)) {
        await this.trace(m, 'grant-changed', origin, { user: u.login, before: current, rights: [] });
        this.events.emit('grants-changed', { mailboxId: m.id, userId: u.id });
      }
      return undefined;
    }
    // As IMAP SETACL (RFC 4314 §3.1): the owner holds every right already; a grant to them would
    // only show twice in GETACL.
    if (m.ownerUserId === u.id) throw new CoreError(`${login} owns ${m.address} and holds every right on it: the owner's rights cannot be changed`);
    // An application account's rights come from its structure (rightsOn), never from grants.
    if (u.structureId !== null) throw new CoreError(`${login} is an application account: its rights come from its structure's APP mailboxes, not from grants`);
    if (m.state === 'deleted') throw new CoreError(`${m.address} is deleted: its content is erased and its address never reused, so no right is given on it`);
    const g = await this.store.setGrant(m.id, u.id, rights);
    await this.trace(m, 'grant-changed', origin, { user: u.login, before: current, rights: g.rights });
    // The grantee's clients (the mail API's event stream) re-read what they may open.
    this.events.emit('grants-changed', { mailboxId: m.id, userId: u.id });
    return g;
  }

  // ---- delivery ---------------------------------------------------------------------------

  /**
   * Commits a message for its local recipients and queues its remote ones in one transaction,
   * then announces it: 'delivered' per local copy (IMAP IDLE, webhooks), 'queued' for the
   * outbound worker. Callers acknowledge (250, APPEND OK) only after this resolves.
   */
  async deliver(req: DeliveryRequest, origin: TraceOrigin = SYSTEM_ORIGIN): Promise<DeliveryResult> {
    // A DSN or MDN reaching a local mailbox updates the tracking of the message it reports on, in
    // the delivery's own transaction (docs/receipts.md). Unreadable: delivered all the same.
    if (!req.reports && req.localMailboxIds.length && this.reportReader) {
      const reports = await this.reportReader(req.blobId).catch(() => []);
      if (reports.length) req = { ...req, reports };
    }
    // docs/traces.md: the 'delivered' traces commit with the copies (one transaction, no commit of
    // their own). The recipient's trace names neither the sending user nor their client's address
    // (a correspondent's); a peer MX's address is the operator's, kept.
    const deliveredTrace = {
      at: new Date().toISOString(),
      actorUserId: null,
      actorLogin: 'system',
      delegate: origin.protocol === 'cli',
      protocol: origin.protocol,
      remote: origin.protocol === 'mx' ? (origin.remote ?? null) : null,
      fromDomain: req.envelopeFrom ? domainOf(req.envelopeFrom) : null,
    };
    const copies = await this.store.deliver({ ...req, deliveredTrace });
    // `indexed`: the analysis committed with the copies, nothing left to index (main.ts).
    if (copies.length) this.events.emit('stored', { blobId: req.blobId, indexed: !!req.analysis });
    for (const c of copies) this.events.emit('delivered', c satisfies MailboxEvent);
    if (req.remote.length) this.events.emit('queued');
    this.announceSubmissions(copies.submissionChanges);
    await this.traceSent(req, origin);
    return copies;
  }

  /** 'submission' events for tracking changes the store committed (delivery, queue outcome). */
  announceSubmissions(changes: SubmissionChange[] | undefined): void {
    for (const c of changes ?? []) this.events.emit('submission', c satisfies SubmissionChange);
  }

  /**
   * The 'sent' trace of a committed delivery on the sending mailbox (how many recipients, never
   * who). The 'delivered' traces, per local copy (its folder, its UID, the sending DOMAIN only:
   * never the sender's address), are committed with the delivery (DeliveryRequest.deliveredTrace).
   */
  private async traceSent(req: DeliveryRequest, origin: TraceOrigin): Promise<void> {
    if (req.senderMailboxId != null && origin.user)
      await this.trace(req.senderMailboxId, 'sent', origin, { recipients: req.localMailboxIds.length + req.remote.length });
  }

  // ---- activity (golden rules 1 and 2: when a mailbox is used; never content) ---------------

  /**
   * Records a use of mailboxes: `read` (\Seen set by an entitled user), `sent` (a message
   * submitted from it). Never throws: activity is bookkeeping, it never fails the action.
   */
  async recordActivity(mailboxIds: number[], kind: ActivityKind, at: Date = new Date()): Promise<void> {
    if (!mailboxIds.length) return;
    await this.store.recordActivity(mailboxIds, kind, at.getTime()).catch(() => undefined);
  }

  /**
   * A successful authentication of `user`: a login on every mailbox whose content they may read
   * (owned, or delegated with read or manage). Chosen over "a folder was opened" so that a
   * webmail, IMAP and API login count alike (docs/policy.md, rule 2).
   */
  async recordLogin(user: User, at: Date = new Date()): Promise<void> {
    try {
      await this.recordActivity((await this.readableMailboxes(user)).map((a) => a.mailbox.id), 'login', at);
    } catch {
      // bookkeeping only
    }
  }

  // ---- functional traces (docs/traces.md: who did what to a mailbox, when, from where) -------

  /**
   * Records an action on a mailbox: `detail` is content-free (folder names, counts, UIDs,
   * rights, dates — never a subject, a correspondent's address or content). The actor is a
   * delegate when it is not the mailbox's owner (a delegate, the application account, an
   * administrator at the command line); the operator's own doings are not. Never throws:
   * the trace never fails the action.
   */
  async trace(mailbox: Mailbox | number, action: TraceAction, origin: TraceOrigin, detail: Record<string, unknown> = {}, at: Date = new Date()): Promise<void> {
    try {
      const m = typeof mailbox === 'number' ? await this.store.getMailbox(mailbox) : mailbox;
      if (!m) return;
      const user = origin.user ?? null;
      const delegate = user ? m.ownerUserId !== user.id : origin.protocol === 'cli';
      await this.store.recordTrace({
        at: at.toISOString(),
        mailboxId: m.id,
        action,
        actorUserId: user?.id ?? null,
        actorLogin: user?.login ?? origin.actor ?? 'system',
        delegate,
        protocol: origin.protocol,
        remote: origin.remote ?? null,
        detail,
      });
    } catch {
      // bookkeeping only
    }
  }

  // ---- decisions --------------------------------------------------------------------------

  /** What happens to mail for `address`: local delivery, refusal, or a remote domain. */
  async resolveRecipient(address: string): Promise<RecipientResolution> {
    const domain = domainOf(address);
    if (!this.isLocalDomain(domain)) return { kind: 'remote', domain };
    const m = await this.store.findMailboxByAddress(address);
    if (!m) return { kind: 'unknown' };
    if (m.state === 'deleted') return { kind: 'deleted', substitute: (await this.store.getActivity(m.id))?.deletedSubstitute ?? null };
    if (m.state === 'suspended') return { kind: 'suspended', mailbox: m };
    return { kind: 'local', mailbox: m };
  }

  /** The rights `user` holds on `mailbox`: the owner holds all; others through a grant. */
  async rightsOn(user: User, mailbox: Mailbox): Promise<Set<GrantRight>> {
    // An organisation certificate's application account holds every right on the APP
    // mailboxes of its structure and nothing else (MSSanté: applications use an IGC-Santé
    // organisation certificate); grants and ownership do not apply to it.
    if (user.structureId !== null) return mailbox.type === 'APP' && mailbox.structureId === user.structureId ? new Set(GRANT_RIGHTS) : new Set();
    if (mailbox.ownerUserId === user.id) return new Set(GRANT_RIGHTS);
    const grants = await this.store.listGrants({ mailboxId: mailbox.id, userId: user.id });
    return new Set(grants.flatMap((g) => g.rights));
  }

  /** May `user` send with `from` as author? Owner: yes; send grant: yes, on behalf (Sender: set). */
  async maySendAs(user: User, from: string): Promise<SendDecision> {
    const m = await this.store.findMailboxByAddress(from);
    if (!m || m.state === 'deleted') return { ok: false, reason: `${from} is not a mailbox of this operator` };
    if (m.state !== 'active') return { ok: false, reason: `mailbox ${from} is suspended` };
    if (this.holdsAsOwner(user, m)) return { ok: true, mailbox: m, onBehalf: false };
    const rights = await this.rightsOn(user, m);
    if (rights.has('send')) return { ok: true, mailbox: m, onBehalf: true };
    return { ok: false, reason: `${user.login} may not send as ${from}: neither its owner nor holder of a send-on-behalf grant` };
  }

  /**
   * Every mailbox `user` may open, with the rights held: owned mailboxes (all rights) and
   * delegated ones (grants). Deleted mailboxes are never listed; suspended ones are (their
   * owner may still read them).
   */
  async accessibleMailboxes(user: User): Promise<{ mailbox: Mailbox; rights: Set<GrantRight>; owned: boolean }[]> {
    const out: { mailbox: Mailbox; rights: Set<GrantRight>; owned: boolean }[] = [];
    if (user.structureId !== null) {
      for (const m of await this.store.listMailboxes({ structureId: user.structureId, type: 'APP' })) if (m.state !== 'deleted') out.push({ mailbox: m, rights: new Set(GRANT_RIGHTS), owned: true });
      return out;
    }
    for (const m of await this.store.listMailboxes({ ownerUserId: user.id })) if (m.state !== 'deleted') out.push({ mailbox: m, rights: new Set(GRANT_RIGHTS), owned: true });
    for (const g of await this.store.listGrants({ userId: user.id })) {
      if (out.some((o) => o.mailbox.id === g.mailboxId)) continue;
      const m = await this.store.getMailbox(g.mailboxId);
      if (m && m.state !== 'deleted' && g.rights.length) out.push({ mailbox: m, rights: new Set(g.rights), owned: false });
    }
    return out;
  }

  /**
   * Mailboxes whose content `user` may read (IMAP, webmail): owned ones and those delegated with
   * a read or manage right. A send-on-behalf grant alone gives no access to the content.
   */
  async readableMailboxes(user: User): Promise<{ mailbox: Mailbox; rights: Set<GrantRight>; owned: boolean }[]> {
    return (await this.accessibleMailboxes(user)).filter((a) => a.owned || a.rights.has('read') || a.rights.has('manage'));
  }

  /**
   * May `user`, once authenticated, act under the authorization identity `name` (SASL authzid,
   * the user named with a token or a certificate)? Their own login, or the address of a mailbox
   * they may read.
   */
  async mayActAs(user: User, name: string): Promise<boolean> {
    const n = name.trim().toLowerCase();
    if (user.login.toLowerCase() === n) return true;
    return (await this.readableMailboxes(user)).some((a) => a.mailbox.address.toLowerCase() === n);
  }

  /**
   * RFC 4314 rights of `user` on `mailbox`, derived from the grants (one decision point):
   * owner: all; `read` → l r s (see, read, keep \Seen); `manage` → w i p k x t e a as well
   * (write flags, insert, post, create, delete, expunge, administer); `send` has no IMAP right.
   */
  async imapRights(user: User, mailbox: Mailbox): Promise<string> {
    return rightsToAcl(await this.rightsOn(user, mailbox), this.holdsAsOwner(user, mailbox));
  }

  /**
   * What `user` may do with the METADATA entries (RFC 5464) of the folders of `mailbox`, or of the
   * server (null). RFC 5464 §3.3: with ACL, private and shared mailbox entries may be read and set
   * only with the "l" right and any one of "r", "s", "w", "i" or "p" (so a read grant suffices
   * for one's own /private entries); Caducée also asks "w" (the manage grant) to set a /shared
   * entry, which every holder of the mailbox sees (as Cyrus, which asks "r" and "w"). Server
   * entries: each user's /private ones are theirs; /shared ones are the operator's (read-only).
   */
  async metadataRights(user: User, mailbox: Mailbox | null): Promise<{ read: boolean; writePrivate: boolean; writeShared: boolean }> {
    if (!mailbox) return { read: true, writePrivate: true, writeShared: false };
    const acl = await this.imapRights(user, mailbox);
    const may = acl.includes('l') && /[rswip]/.test(acl);
    return { read: may, writePrivate: may, writeShared: may && acl.includes('w') };
  }

  /**
   * Does `user` hold `mailbox` as its owner? An application account only its structure's APP
   * mailboxes, even one it is named the owner (responsible) of; anyone else the mailboxes they own.
   */
  private holdsAsOwner(user: User, mailbox: Mailbox): boolean {
    return user.structureId !== null ? this.isApplicationMailbox(user, mailbox) : mailbox.ownerUserId === user.id;
  }

  /** Is `mailbox` an APP mailbox of the structure whose application account `user` is? */
  private isApplicationMailbox(user: User, mailbox: Mailbox): boolean {
    return user.structureId !== null && mailbox.type === 'APP' && mailbox.structureId === user.structureId;
  }

  /** The address `user` sends as by default in a Sender: header (their own active mailbox). */
  async primaryMailboxOf(user: User): Promise<Mailbox | undefined> {
    if (user.structureId !== null) return (await this.store.listMailboxes({ structureId: user.structureId, type: 'APP', state: 'active' }))[0];
    const own = await this.store.listMailboxes({ ownerUserId: user.id, state: 'active' });
    return own.find((m) => m.type === 'PER') ?? own[0];
  }
}
