// The one persistence interface. Protocol code never sees SQL: it calls core/, which calls this.
// Every method is async so that a PostgreSQL implementation can follow without touching callers.
// `Store` is the whole of it, made of focused interfaces (accounts, credentials, web sessions,
// mailboxes, folders, delivery and queue, message-file records): a consumer that needs only
// part of the store is typed with that part, so what it can reach is visible at its signature.
import type {
  Folder,
  Grant,
  GrantRight,
  Mailbox,
  MailboxState,
  MailboxType,
  Practitioner,
  QueueItem,
  StoredMessage,
  Structure,
  StructureIdType,
  User,
  AppPassword,
  HttpSession,
  TotpFactor,
  ApiToken,
  Webhook,
} from '../model/index.js';
import type { Logger } from 'pino';
import type { ValueSealer } from './value-seal.js';
import type { ResealBatch, ResealSelection, RowKey, SealedColumn } from './sealed-rows.js';

export interface NewQueueItem {
  recipient: string;
  domain: string;
  notify: QueueItem['notify'];
  orcpt: string | null;
}

export interface DeliveryRequest {
  blobId: string;
  size: number;
  internalDate: Date;
  envelopeFrom: string;
  /** Local mailboxes receiving the message in their INBOX. */
  localMailboxIds: number[];
  /** Remote recipients queued for outbound delivery. */
  remote: NewQueueItem[];
  ret?: 'FULL' | 'HDRS' | null;
  envid?: string | null;
  senderMailboxId?: number | null;
  /** Local copies go to this folder (created when missing) with these flags, instead of INBOX. */
  filing?: { folder: string; flags: string[] } | null;
  /**
   * The sender's own copy (the mail API: the Sent folder of the From mailbox), stored in the same
   * transaction as the delivery: one commit, nothing half-stored. Returned as a copy with `sentCopy`.
   */
  senderCopy?: { mailboxId: number; folderId: number; flags: string[] } | null;
  /**
   * Recipients counted against a user's daily limit in the same transaction as the delivery;
   * over `limit`, nothing is stored and deliver() throws DailyRecipientLimitError.
   */
  dailyRecipients?: { userId: number; day: string; count: number; limit: number } | null;
  /** Content-free usage rows (audit/usage.ts), stored in the same transaction as the message. */
  usage?: UsageRow[];
  /**
   * A message submitted by `senderMailboxId`: its tracking rows (docs/receipts.md) are recorded in
   * this transaction — local recipients 'delivered', remote ones 'queued'.
   */
  tracking?: NewTracking | null;
  /**
   * Delivery / disposition reports this message carries (RFC 3464 DSN, RFC 8098 MDN), matched in
   * this transaction to the submissions of the local mailboxes receiving it.
   */
  reports?: IncomingReport[];
  /**
   * Sets `keyword` on a stored message in this transaction; when it is set already, nothing is
   * stored and deliver() throws KeywordAlreadySetError (RFC 3503 $MDNSent: one MDN per message).
   */
  markMessage?: { folderId: number; uid: number; keyword: string } | null;
  /** Patient conversations opened or closed by this message (policy/patient-service.ts), same transaction. */
  conversations?: PatientConversationChange[];
  /**
   * The message file's analysis, when the caller parsed the message already (the MX at intake,
   * mail/message-index.ts deliveryAnalysis): its blob_meta JSON and its header search row, written
   * in this transaction (as setBlobMeta and setSearchHeaders would, without commits of their own).
   */
  analysis?: DeliveryAnalysis | null;
  /**
   * The 'delivered' functional trace (docs/traces.md) recorded in this transaction for each local
   * copy but the sender's own (senderCopy): detail { folder, uid, fromDomain } as Core.trace writes it.
   */
  deliveredTrace?: DeliveredTrace | null;
  /**
   * Pins of message-file puts (PutBlob.pin) dropped in this transaction: the file is referenced
   * once it commits, so its put's protection ends with it (store/message-files.ts, P5) instead of
   * in a transaction of its own. The caller then calls PutBlob.releasedByCommit().
   */
  releasePins?: { blobId: string; token: string }[];
  /**
   * The Idempotency-Key of the mail API request sending this message (http/sending.ts), recorded
   * in this transaction with the answer: a retry after a crash, or on another process or node,
   * finds it (getIdempotentAnswer). When the key is recorded already (and not expired: `at` minus
   * `ttlMs`), nothing is stored and deliver() throws IdempotencyKeyTakenError.
   */
  idempotency?: NewIdempotentAnswer | null;
}

/** An Idempotency-Key and its answer, recorded by deliver() (DeliveryRequest.idempotency). */
export interface NewIdempotentAnswer {
  userId: number;
  /** The route (e.g. /api/v1/submissions): a key is scoped to its caller and route. */
  route: string;
  key: string;
  /** Epoch ms. */
  at: number;
  /** A row older than this is expired: replaced instead of conflicting. */
  ttlMs: number;
  /** The JSON answer, but its ids (filled from submissionId and emailId when read). */
  answer: string;
}

/** A recorded answer: the JSON, and the ids committed with it (the tracking row, the copy in Sent). */
export interface IdempotentAnswer {
  answer: string;
  submissionId: number | null;
  emailId: number | null;
  at: number;
}

/** A message of FolderStore.appendMessages. */
export interface AppendedMessage {
  blobId: string;
  size: number;
  flags: string[];
  internalDate: Date;
  /** Its file's analysis, recorded in the same transaction (null: recorded already). */
  analysis?: DeliveryAnalysis | null;
  /** Its file's put pin, dropped by the same commit (store/message-files.ts, P5). */
  pin?: { blobId: string; token: string } | null;
}

/** A message file's analysis recorded with its delivery (DeliveryRequest.analysis). */
export interface DeliveryAnalysis {
  /** blob_meta.info: the MessageInfo JSON (mime/). */
  info: string;
  /** The header search row (mail/header-index.ts) at `version`. */
  searchHeaders: { version: number; columns: Record<string, Buffer | null> };
}

/** The actor part of the 'delivered' traces of a delivery (DeliveryRequest.deliveredTrace). */
export type DeliveredTrace = Omit<MailboxTrace, 'id' | 'mailboxId' | 'action' | 'detail'> & { fromDomain: string | null };

/** What submission knows of a message it tracks (the rest comes from the DeliveryRequest). */
export interface NewTracking {
  userId: number | null;
  /** The Message-ID header field, angle brackets included. */
  messageId: string | null;
  subject: string;
}

/** Where a recipient of a submitted message stands (docs/mail-api.md EmailSubmission). */
export const TRACKING_STATUSES = ['queued', 'relayed', 'delivered', 'failed', 'displayed', 'processed', 'error'] as const;
export type TrackingStatus = (typeof TRACKING_STATUSES)[number];

/** One report read from a delivered message (mime/report.ts): what it says of which recipients. */
export interface IncomingReport {
  kind: 'dsn' | 'mdn';
  /** DSN: Original-Envelope-Id (RFC 3464 §2.2.1). */
  envid: string | null;
  /** MDN: Original-Message-ID (RFC 8098 §3.2.5); DSN: the Message-ID of the returned header. */
  originalMessageId: string | null;
  recipients: { final: string | null; original: string | null; status: TrackingStatus; detail: string | null }[];
}

/** A submitted message and where each recipient stands (ids as numbers; the API maps them to s<n>, e<n>). */
export interface TrackedSubmission {
  id: number;
  mailboxId: number;
  userId: number | null;
  /** The copy in Sent, when one is linked (setSubmissionEmail). */
  emailId: number | null;
  messageId: string | null;
  from: string;
  subject: string;
  sentAt: string;
  envid: string | null;
  recipients: { address: string; status: TrackingStatus; detail: string | null; updatedAt: string }[];
}

/** A submission whose tracking changed in a store call ('submission' events). */
export interface SubmissionChange {
  id: number;
  mailboxId: number;
}

/** deliver()'s result: the local copies, and the submissions whose tracking changed. */
export type DeliveryResult = DeliveredCopy[] & { submissionChanges?: SubmissionChange[] };

/** A stored message as a receipt sees it (policy/mdn-service.ts). */
export interface ReceiptMessage {
  id: number;
  mailboxId: number;
  folderId: number;
  uid: number;
  blobId: string;
  flags: string[];
  /** The envelope sender it was delivered with; '' the null reverse-path; null unknown. */
  returnPath: string | null;
}

/** deliver() refused: the message to mark carries the keyword already (nothing was stored). */
export class KeywordAlreadySetError extends Error {
  override name = 'KeywordAlreadySetError';
  constructor(readonly keyword: string) {
    super(`the message already has ${keyword}`);
  }
}

/** deliver() refused: the user's recipients of `day` would exceed `limit` (nothing was stored). */
export class DailyRecipientLimitError extends Error {
  override name = 'DailyRecipientLimitError';
  constructor(
    readonly day: string,
    readonly limit: number,
  ) {
    super(`the daily recipient limit of ${limit} for ${day} would be exceeded`);
  }
}

export interface DeliveredCopy {
  mailboxId: number;
  folderId: number;
  uid: number;
  messageId: number;
  /** The sender's own copy (DeliveryRequest.senderCopy), not a delivery to a recipient. */
  sentCopy?: true;
}

export interface QueueCompletion {
  sent: number[];
  failed: { id: number; error: string }[];
  deferred: { id: number; error: string; nextAttemptAt: number }[];
  /** DSNs stored in the same transaction as the status change (so one failure yields one DSN). */
  dsns: { blobId: string; size: number; mailboxId: number }[];
}

export interface MailboxUpdate {
  state?: MailboxState;
  listeRouge?: boolean;
  displayName?: string;
  service?: string | null;
  description?: string | null;
  ownerUserId?: number | null;
}

/** A mailbox to create: the Mailbox fields its creator chooses (id, state and dates are the store's). */
export type NewMailbox = Pick<
  Mailbox,
  'address' | 'type' | 'displayName' | 'ownerUserId' | 'practitionerId' | 'structureId' | 'listeRouge'
> &
  Partial<Pick<Mailbox, 'service' | 'description'>>;

/** A message as an IMAP session sees it in a folder. */
export interface FolderMessage {
  uid: number;
  flags: string[];
  modseq: number;
  size: number;
  internalDate: string;
  blobId: string;
  recent: boolean;
}

export interface FolderStatus {
  messages: number;
  recent: number;
  unseen: number;
  deleted: number;
  size: number;
  uidNext: number;
  uidValidity: number;
  highestModseq: number;
  /** Sequence number of the first unseen message (SELECT's [UNSEEN n]). */
  firstUnseenSeq: number | null;
}

export interface FlagUpdate {
  uid: number;
  flags: string[];
  modseq: number;
}

/** Folder operations behind IMAP (and later the webmail). All mutations bump the folder's HIGHESTMODSEQ. */
export interface FolderStore {
  getFolder(mailboxId: number, name: string): Promise<Folder | undefined>;
  listFolders(mailboxId: number): Promise<Folder[]>;
  listMessages(folderId: number): Promise<StoredMessage[]>;
  /** One message row by its id (the mail API's Email id), or by folder and UID. */
  getMessage(id: number): Promise<StoredMessage | undefined>;
  getMessageByUid(folderId: number, uid: number): Promise<StoredMessage | undefined>;
  /**
   * One page of a folder's messages ordered by received date or size, then id (keyset paging:
   * the rows strictly after `after`), and the folder's message count.
   */
  pageMessages(folderId: number, o: { by: 'internalDate' | 'size'; desc: boolean; after?: { key: string | number; id: number } | null; limit: number }): Promise<{ messages: StoredMessage[]; total: number }>;
  createFolder(mailboxId: number, name: string, specialUse?: string | null): Promise<Folder>;
  /** Deletes the folder and its messages. */
  deleteFolder(folderId: number): Promise<void>;
  /** Renames a folder and its descendants (names under `from` + delimiter). */
  renameFolder(mailboxId: number, from: string, to: string, delimiter: string): Promise<void>;
  getFolderById(folderId: number): Promise<Folder | undefined>;
  listSubscriptions(mailboxId: number): Promise<string[]>;
  setSubscribed(mailboxId: number, name: string, subscribed: boolean): Promise<void>;
  folderStatus(folderId: number): Promise<FolderStatus>;
  /** The folder's HIGHESTMODSEQ alone (cheap: sessions poll it to catch up). */
  folderModseq(folderId: number): Promise<number>;
  /** Every message of the folder in UID order. `clearRecent`: this session claims \Recent (RFC 3501 §2.3.2). */
  folderMessages(folderId: number, opts?: { clearRecent?: boolean }): Promise<FolderMessage[]>;
  /**
   * What SELECT needs, read in one transaction: the messages (as folderMessages, \\Recent cleared
   * when asked), UIDNEXT and HIGHESTMODSEQ; `recentFrom`: every message with a lower UID has
   * \\Recent cleared in the store (a message's \\Recent only ever goes from set to cleared).
   */
  openFolder(folderId: number, opts?: { clearRecent?: boolean }): Promise<{ messages: FolderMessage[]; uidNext: number; highestModseq: number; recentFrom: number }>;
  /**
   * SELECT from a snapshot taken by openFolder or reopenFolder (issue 15, imap/folder-snapshots.ts):
   * UIDNEXT, HIGHESTMODSEQ, the messages changed or added (modseq > since.modseq, as changedSince)
   * and the UIDs expunged since then, read in one transaction; `recentUids` the messages holding
   * \Recent (claimed, and cleared, when `clearRecent`). `recentFrom` (as openFolder's): every message
   * with a lower UID has \Recent cleared; `since.recentFrom` is the snapshot's.
   */
  reopenFolder(
    folderId: number,
    since: { modseq: number; recentFrom: number },
    opts?: { clearRecent?: boolean },
  ): Promise<{ uidNext: number; highestModseq: number; changed: FolderMessage[]; expunged: number[]; recentUids: number[]; recentFrom: number }>;
  /** Clears \\Recent on these messages; returns the UIDs that still had it (claimed by the caller). */
  claimRecent(folderId: number, uids: number[]): Promise<number[]>;
  /** How many messages of the folder have a UID ≤ `uid`. */
  countMessagesUpTo(folderId: number, uid: number): Promise<number>;
  /** The folder's UIDs, ascending. */
  folderUids(folderId: number): Promise<number[]>;
  /** Messages whose modseq is greater than `modseq` (new or changed). */
  changedSince(folderId: number, modseq: number): Promise<FolderMessage[]>;
  /** UIDs expunged with a modseq greater than `modseq`. */
  expungedSince(folderId: number, modseq: number): Promise<number[]>;
  appendMessage(folderId: number, m: { blobId: string; size: number; flags: string[]; internalDate: Date }): Promise<{ uid: number; modseq: number }>;
  /**
   * Appends several messages in one transaction, all or none (RFC 3502 MULTIAPPEND): consecutive
   * UIDs in the order given, one new modseq shared by all (RFC 7162 §3.1.1, as a COPY). A
   * message's `analysis`, when given, is recorded in the same transaction before the rows (as
   * DeliveryRequest.analysis: the rows find their header search row), so that one commit records
   * the analyses and the messages, or neither (issue 15). A message's `pin` (PutBlob.pin) is
   * dropped in the same commit (as DeliveryRequest.releasePins: no transaction of its own).
   */
  appendMessages(folderId: number, ms: AppendedMessage[]): Promise<{ uids: number[]; modseq: number }>;
  /** Applies a flag change; messages whose modseq exceeds `unchangedSince` are left and reported (RFC 7162 §3.1.3). */
  storeFlags(
    folderId: number,
    uids: number[],
    op: 'set' | 'add' | 'remove',
    flags: string[],
    unchangedSince?: number,
  ): Promise<{ updated: FlagUpdate[]; modifiedUids: number[] }>;
  /** Expunges messages flagged \Deleted (restricted to `uids` when given); returns the UIDs removed. */
  expunge(folderId: number, uids?: number[]): Promise<number[]>;
  /** Copies (or moves) messages into another folder in one transaction; returns the UID mapping. */
  copyMessages(fromFolderId: number, uids: number[], toFolderId: number, move: boolean): Promise<{ from: number; to: number }[]>;
  /** Bytes used by all messages of a mailbox (BAL), for QUOTA (RFC 9208). */
  mailboxUsage(mailboxId: number): Promise<{ bytes: number; messages: number }>;
}

/** What the store knows of message files (store/blobs.ts holds the files themselves). */
export interface BlobMetaStore {
  /** The analysis of a message file (mime/ MessageInfo as JSON), recorded once by setBlobMeta. */
  getBlobMeta(blobId: string): Promise<string | undefined>;
  setBlobMeta(blobId: string, info: string): Promise<void>;
  /**
   * Records the header search row of a message file (mail/header-index.ts; migration 17): per
   * column, the folded values joined by "\n" (null: field absent), computed at `version`. With a
   * sealer the store keeps keyed tokens and one sealed value instead (store/search-seal.ts).
   */
  setSearchHeaders(blobId: string, version: number, columns: Record<string, Buffer | null>): Promise<void>;
  /**
   * setBlobMeta and setSearchHeaders for several files in one transaction (a MULTIAPPEND's files,
   * issue 15). Derived data (the files are the truth): SQLite commits it without its own sync, the
   * next durable commit (the messages') syncs it.
   */
  setBlobAnalyses(entries: { blobId: string; info: string; searchVersion: number; searchColumns: Record<string, Buffer | null> }[]): Promise<void>;
  /** Up to `limit` files of messages without a usable header search row (none, or of another key than the current KEK): the backfill's work list. */
  blobsWithoutSearchHeaders(limit: number): Promise<string[]>;
  /** Whether the file has its header search row at `version`, made under the current KEK (or in plaintext when encryption is off). */
  hasSearchHeaders(blobId: string, version: number): Promise<boolean>;
  /**
   * Header search candidates in a folder: `matched` = UIDs whose indexed `column` (at `version`)
   * contains `needle` (an empty needle: the field exists); `unindexed` = UIDs whose message file
   * has no usable row at that version yet (none, of another key, or sealed values that do not
   * open; the caller decides them by reading the message). `folderSize`
   * (about how many messages the folder has) only chooses how the query runs.
   */
  searchHeaderCandidates(folderId: number, column: string, needle: Buffer, version: number, folderSize: number): Promise<{ matched: number[]; unindexed: number[] }>;
  /** Whether a message or a queued item still references the blob. */
  isBlobReferenced(blobId: string): Promise<boolean>;
  /**
   * Message files that lost a reference (recorded in the transaction that removed it), oldest
   * first: candidates for removal, some of them still referenced elsewhere.
   */
  blobGarbage(limit: number): Promise<string[]>;
  // The pin/removal handshake between a put and the collector, shared by every process and node
  // of the operator (the protocol and the interleavings it survives: store/message-files.ts).
  /**
   * One write transaction: pins the file of a put in progress until `now + pinMs` under `token`,
   * unless its removal is claimed (blob_garbage.removing_since set, and more recent than
   * `now - removalLeaseMs`): then nothing is written and false is returned (the put waits and
   * asks again). A claim older than the lease was abandoned (a collector that crashed): it is
   * cleared and the pin taken.
   */
  pinBlob(blobId: string, token: string, now: number, pinMs: number, removalLeaseMs: number): Promise<boolean>;
  /**
   * pinBlob() of several files (a MULTIAPPEND's, BlobStore.putMany): each pinned or refused as
   * pinBlob() would, the answers in order (SQLite: in one write transaction).
   */
  pinBlobs(pins: { blobId: string; token: string }[], now: number, pinMs: number, removalLeaseMs: number): Promise<boolean[]>;
  /** Ends pins (their referencing transaction committed, or will not). */
  unpinBlobs(pins: { blobId: string; token: string }[]): Promise<void>;
  /** Removes pins expired at `now`; returns how many. */
  pruneBlobPins(now: number): Promise<number>;
  /**
   * One write transaction: if a live pin (until > now) or a removal claimed less than
   * `removalLeaseMs` ago holds the blob, false is returned and the blob stays (or becomes) a
   * candidate for a later run — an orphan of a crashed put is pinned until its pin expires; if a message or a queued item references it, the candidate is dropped
   * and false returned; else its analysis and header search row are forgotten, the removal is
   * claimed (removing_since = now; the candidate row is created for an orphan) and true returned
   * — the caller then removes the file and calls forgetBlobGarbage(blobId, now). The candidate row
   * stays until the file is gone, so a crash between the two steps only repeats the removal (once
   * the claim's lease has passed).
   */
  claimBlobRemoval(blobId: string, now: number, removalLeaseMs: number): Promise<boolean>;
  /** Forgets the candidate whose removal was claimed at `since` (not one claimed again since). */
  forgetBlobGarbage(blobId: string, since: number): Promise<void>;
}

/** One authentication attempt: who, how, from where, when, outcome — never a secret. */
export interface AuthAuditEntry {
  at: string;
  login: string;
  userId: number | null;
  protocol: 'smtp' | 'imap' | 'http' | string;
  method: string;
  remote: string | null;
  success: boolean;
  reason: string | null;
  /**
   * Who managed `login`'s credentials (app password listed, created or revoked, second factor
   * reset, password set): the user on the web, the system account at the command line. null
   * for an authentication attempt, where `login` is the one acting.
   */
  actor: string | null;
}

/** Structures, practitioners and user accounts (core/ administration, authentication's lookups). */
export interface AccountStore {
  /** A user's web preferences (signature, display) as the mail API validated them (JSON text); undefined: defaults. */
  getPreferences(userId: number): Promise<string | undefined>;
  setPreferences(userId: number, json: string): Promise<void>;
  createStructure(s: { idType: StructureIdType; idValue: string; name: string }): Promise<Structure>;
  findStructure(idType: StructureIdType, idValue: string): Promise<Structure | undefined>;
  getStructure(id: number): Promise<Structure | undefined>;
  listStructures(): Promise<Structure[]>;

  createPractitioner(p: Omit<Practitioner, 'id' | 'createdAt'>): Promise<Practitioner>;
  findPractitionerByRpps(rpps: string): Promise<Practitioner | undefined>;
  getPractitioner(id: number): Promise<Practitioner | undefined>;
  listPractitioners(): Promise<Practitioner[]>;

  createUser(u: { login: string; displayName: string; practitionerId: number | null; passwordHash: string | null }): Promise<User>;
  getUser(id: number): Promise<User | undefined>;
  findUserByLogin(login: string): Promise<(User & { passwordHash: string | null }) | undefined>;
  setUserPassword(id: number, passwordHash: string): Promise<void>;
  listUsers(): Promise<User[]>;
  /** The active or disabled user linked to the practitioner with this RPPS, if any. */
  findUserByRpps(rpps: string): Promise<User | undefined>;
  /** The application account of a structure, created on first use (organisation certificates). */
  applicationAccount(structure: Structure): Promise<User>;
}

/** Second factors and app passwords of user accounts, and the authentication audit trail (auth/). */
export interface CredentialStore {
  createAppPassword(a: { userId: number; label: string; secretHash: string }): Promise<AppPassword>;
  /** Every app password of a user, revoked ones included, newest first. */
  listAppPasswords(userId: number): Promise<AppPassword[]>;
  /** The unrevoked app password of `userId` with this digest. */
  findAppPassword(userId: number, secretHash: string): Promise<AppPassword | undefined>;
  touchAppPassword(id: number, at: string, from: string | null): Promise<void>;
  /** false when no such unrevoked app password of this user exists. */
  revokeAppPassword(userId: number, id: number): Promise<boolean>;

  getTotp(userId: number): Promise<TotpFactor | undefined>;
  /** Starts (or restarts) an enrolment: an unconfirmed secret replaces any unconfirmed one. */
  setPendingTotp(userId: number, secret: string): Promise<void>;
  /** Confirms the enrolment at `step` and replaces the recovery codes, in one transaction. */
  confirmTotp(userId: number, step: number, recoveryCodeHashes: string[]): Promise<void>;
  /** Records `step` as used if it is later than the last used one; false on a replay. */
  useTotpStep(userId: number, step: number): Promise<boolean>;
  /** Marks an unused recovery code used; false when there is none with this digest. */
  useRecoveryCode(userId: number, codeHash: string): Promise<boolean>;
  remainingRecoveryCodes(userId: number): Promise<number>;
  deleteTotp(userId: number): Promise<void>;

  recordAuth(e: AuthAuditEntry): Promise<void>;
  /** Most recent first. */
  listAuthAudit(limit: number): Promise<AuthAuditEntry[]>;
}

/** Web sessions (http/session.ts): only a digest of each session token is stored. */
export interface HttpSessionStore {
  createHttpSession(s: Omit<HttpSession, 'id' | 'revokedAt'> & { tokenHash: string }): Promise<HttpSession>;
  /** The unrevoked session with this token digest (expiry is the caller's check). */
  findHttpSession(tokenHash: string): Promise<HttpSession | undefined>;
  touchHttpSession(id: number, lastSeenAt: number): Promise<void>;
  listHttpSessions(userId: number, now: number): Promise<HttpSession[]>;
  /** Revokes one session of a user (false if none), or all but `exceptId`. */
  revokeHttpSession(userId: number, id: number): Promise<boolean>;
  revokeHttpSessions(userId: number, exceptId?: number): Promise<number>;
}

/** MSSanté mailboxes (BAL) and the grants (delegations) on them. */
export interface MailboxStore {
  /** Creates the mailbox and its default folders in one transaction. */
  createMailbox(m: NewMailbox): Promise<Mailbox>;
  getMailbox(id: number): Promise<Mailbox | undefined>;
  findMailboxByAddress(address: string): Promise<Mailbox | undefined>;
  listMailboxes(filter?: { ownerUserId?: number; state?: MailboxState; structureId?: number; type?: MailboxType }): Promise<Mailbox[]>;
  updateMailbox(id: number, update: MailboxUpdate): Promise<Mailbox>;

  setGrant(mailboxId: number, userId: number, rights: GrantRight[]): Promise<Grant>;
  removeGrant(mailboxId: number, userId: number): Promise<boolean>;
  listGrants(filter?: { mailboxId?: number; userId?: number }): Promise<Grant[]>;
}

/** A message's way in and out: delivery to local INBOXes and the outbound queue, each in one transaction. */
export interface DeliveryStore {
  /**
   * Stores a message for all its local recipients and queues its remote ones, in one transaction
   * (with its tracking rows, the reports it carries, the keyword it sets: see DeliveryRequest).
   */
  deliver(req: DeliveryRequest): Promise<DeliveryResult>;
  /** The answer recorded for (userId, route, key) at or after `since` (epoch ms), if any. */
  getIdempotentAnswer(userId: number, route: string, key: string, since: number): Promise<IdempotentAnswer | undefined>;
  /** Removes the Idempotency-Key rows recorded before `before` (epoch ms); returns how many. */
  purgeIdempotentAnswers(before: number): Promise<number>;
  /** Recipients of the messages `userId` submitted on `day` (YYYY-MM-DD, Europe/Paris). */
  recipientsSentOn(userId: number, day: string): Promise<number>;

  /**
   * Claims up to `limit` queued items due at `now` (epoch ms) whose lease is absent or expired,
   * oldest first, leasing them to `owner` until now+leaseMs; one statement/transaction: two
   * concurrent callers (processes, nodes) never get the same item.
   */
  claimQueueItems(owner: string, now: number, limit: number, leaseMs: number): Promise<QueueItem[]>;
  /**
   * Extends to now+leaseMs the leases `owner` holds on `ids` and that have not expired at `now`
   * (the heartbeat of a worker's attempts, so that a short lease covers a long attempt); one
   * statement. Returns the ids renewed, ascending: one missing was completed, released, or its
   * lease expired (then another owner may hold it) — its attempt must not go on as if it held it.
   */
  renewQueueItems(owner: string, ids: number[], now: number, leaseMs: number): Promise<number[]>;
  /** Gives back leased items not attempted (shutdown): their lease is cleared if `owner` holds it. */
  releaseQueueItems(owner: string, ids: number[]): Promise<void>;
  nextQueueAttempt(): Promise<number | undefined>;
  listQueue(filter?: { status?: QueueItem['status'] }): Promise<QueueItem[]>;
  /**
   * Records the outcome of delivery attempts (and the tracking of their recipients) and stores DSNs,
   * in one transaction; clears the lease (lease_owner, lease_until) of every item it records.
   */
  completeQueueItems(c: QueueCompletion): Promise<DeliveryResult>;
}

/**
 * Delivery tracking (docs/receipts.md): per submitted message and recipient. Written by deliver()
 * and completeQueueItems() in their own transactions; read by the mail API.
 */
export interface TrackingStore {
  /** The submissions of these mailboxes, newest first; `beforeId`: the page after that id. */
  listSubmissions(mailboxIds: number[], page: { beforeId?: number; limit: number }): Promise<TrackedSubmission[]>;
  getSubmission(id: number): Promise<TrackedSubmission | undefined>;
  /** Links the copy kept in Sent (the API's emailId). */
  setSubmissionEmail(id: number, emailId: number): Promise<void>;
  /** Sets `keyword` on a message unless it has it (one transaction); false when it had it (RFC 3503 $MDNSent). */
  markMessageOnce(m: { folderId: number; uid: number; keyword: string }): Promise<boolean>;
  /** A stored message by its row id (the API's e<n>), or by folder and UID. */
  getReceiptMessage(ref: { emailId: number } | { folderId: number; uid: number }): Promise<ReceiptMessage | undefined>;
}

/** An absence message (golden rule 3) as stored for one mailbox; policy/ decides what it means. */
export interface AbsenceSettings {
  mailboxId: number;
  /** ISO 8601 instants; null: from now on / open-ended. */
  startsAt: string | null;
  endsAt: string | null;
  /** Subject prefix of the replies ("Absence" when null): `<subject> : <original subject>`. */
  subject: string | null;
  /** The reply's text; null: policy/'s default French text. */
  body: string | null;
  /** Text for senders outside the mailbox's structure; null: `body`. */
  externalBody: string | null;
  /** "Pendant mon absence, écrivez à …": an address checked when set. */
  substitute: string | null;
  updatedAt: string;
  /** Who set it: a login, or the system account at the command line. */
  updatedBy: string;
}

/** Absence messages and the memory of the replies sent (at most one per sender per period). */
export interface AbsenceStore {
  getAbsence(mailboxId: number): Promise<AbsenceSettings | undefined>;
  /** Sets (replaces) the absence of a mailbox and forgets the replies sent under the previous one. */
  setAbsence(s: Omit<AbsenceSettings, 'updatedAt'>): Promise<AbsenceSettings>;
  /** Removes the absence and its reply memory; false when there was none. */
  clearAbsence(mailboxId: number): Promise<boolean>;
  /**
   * One transaction: records a reply from `mailboxId` to `sender` at `at` (epoch ms) unless one
   * was recorded at or after `since`; true when recorded (the caller then sends the reply).
   */
  claimAbsenceReply(mailboxId: number, sender: string, at: number, since: number): Promise<boolean>;
  /** When the last reply to `sender` was recorded (epoch ms). */
  lastAbsenceReply(mailboxId: number, sender: string): Promise<number | undefined>;
}

/** What a mailbox's use looks like to golden rules 1 and 2 (never content); epoch ms. */
export interface MailboxActivity {
  mailboxId: number;
  /** Last successful authentication of a user who may read the mailbox. */
  lastLoginAt: number | null;
  /** Last time \Seen was set on one of its messages by an entitled user. */
  lastReadAt: number | null;
  /** Last message submitted from it. */
  lastSentAt: number | null;
  /** Rule 1: this mailbox's reading threshold (business hours); null: the configured default. */
  readingThresholdHours: number | null;
  /** Rule 2: when the owner and administrators were warned that it looks unused. */
  unusedWarnedAt: number | null;
  /** Rule 2: when someone objected to its removal (keeps it). */
  objectionAt: number | null;
  /** Rule 2: when the rule suspended it. */
  suspendedAt: number | null;
  /** Rule 2: the address the MX names once it is deleted (550 5.1.1). */
  deletedSubstitute: string | null;
}

export type ActivityKind = 'login' | 'read' | 'sent';

/** A notice sent by a golden rule (at most one per mailbox, rule and Paris day). */
export interface RuleNotice {
  mailboxId: number;
  kind: 'reading' | 'unused';
  /** YYYY-MM-DD, Paris time. */
  day: string;
  level: number;
  blobId: string | null;
  sentAt: number;
}

/** Golden rules 1, 2 and 4 (policy/rules-engine.ts): activity, notices, urgency replies. */
export interface RulesStore {
  /** Records a use of these mailboxes (keeps the latest time per kind). */
  recordActivity(mailboxIds: number[], kind: ActivityKind, at: number): Promise<void>;
  getActivity(mailboxId: number): Promise<MailboxActivity | undefined>;
  updateActivity(mailboxId: number, u: Partial<Omit<MailboxActivity, 'mailboxId' | 'lastLoginAt' | 'lastReadAt' | 'lastSentAt'>>): Promise<MailboxActivity>;
  /**
   * The unread messages of the mailbox's INBOX (no \Seen, no \Deleted), oldest first, rule
   * notices left out (they are not mail to read).
   */
  unreadMessages(mailboxId: number, limit: number): Promise<{ blobId: string; internalDate: string }[]>;
  /** One statement: records the notice unless one of this kind exists for the mailbox and day; true when recorded. */
  claimRuleNotice(n: Omit<RuleNotice, 'blobId'>): Promise<boolean>;
  /** Names the message file of a claimed notice (so it never counts as unread mail). */
  setRuleNoticeBlob(mailboxId: number, kind: RuleNotice['kind'], day: string, blobId: string): Promise<void>;
  listRuleNotices(mailboxId: number): Promise<RuleNotice[]>;
  /** As claimAbsenceReply, for urgency answers (golden rule 4). */
  claimUrgencyReply(mailboxId: number, sender: string, at: number, since: number): Promise<boolean>;
}

/**
 * One message counted for the usage indicators (docs/indicators.md): who (the mailbox's
 * structure and type, never an address), which way, with what kind of attachment. No address,
 * subject or content is ever stored here.
 */
export interface UsageRow {
  /** ISO 8601 instant. */
  at: string;
  structureId: number | null;
  mailboxType: MailboxType;
  /** sent: by a mailbox of ours; received: into a mailbox of ours. */
  flow: 'sent' | 'received';
  /** internal: both ends at this operator; operator: another MSSanté operator; patient: Mon espace santé. */
  peer: 'internal' | 'operator' | 'patient';
  attachment: boolean;
  xdm: boolean;
}

/** Message counts of one month for one (structure, mailbox type, flow, peer). */
export interface UsageMessageCount {
  structureId: number | null;
  mailboxType: MailboxType;
  flow: UsageRow['flow'];
  peer: UsageRow['peer'];
  messages: number;
  withAttachment: number;
  withXdm: number;
}

/** Mailbox counts of one month for one (structure, mailbox type). */
export interface UsageMailboxCount {
  structureId: number | null;
  mailboxType: MailboxType;
  /** Active at the end of the period. */
  active: number;
  created: number;
  suspended: number;
  deleted: number;
}

/** Authentication attempts (the auth audit trail, credential management excluded) of one month. */
export interface UsageConnectionCount {
  protocol: string;
  method: string;
  success: boolean;
  count: number;
}

/** What the usage indicators and the metrics read (audit/); periods are [from, to) ISO instants. */
export interface UsageStore {
  usageMessages(from: string, to: string): Promise<UsageMessageCount[]>;
  usageMailboxes(from: string, to: string): Promise<UsageMailboxCount[]>;
  usageConnections(from: string, to: string): Promise<UsageConnectionCount[]>;
  /** Queued outbound items and the enqueue time (epoch ms) of the oldest, null when empty. */
  queueStats(): Promise<{ depth: number; oldestQueuedAt: number | null }>;
  /** Full (not pending) web sessions neither revoked nor past their expiry at `now` (epoch ms). */
  countLiveHttpSessions(now: number): Promise<number>;
}

/** What happened to a mailbox (docs/traces.md): one word per kind of action. */
export const TRACE_ACTIONS = [
  'delivered',
  'sent',
  'read',
  'marked-deleted',
  'deleted',
  'moved',
  'copied',
  'folder-deleted',
  'grant-changed',
  'absence-set',
  'absence-cleared',
  'state-changed',
  'liste-rouge',
] as const;
export type TraceAction = (typeof TRACE_ACTIONS)[number];

/** The way the action came: a protocol, the command line, a golden rule, the operator itself. */
export type TraceProtocol = 'imap' | 'submission' | 'mx' | 'web' | 'cli' | 'rules' | 'system';

/**
 * One functional trace of a mailbox: who did what, when, from where. Content-free: `detail`
 * holds folder names, counts, UIDs, rights, dates — never a subject, a correspondent's address
 * or content (for 'delivered', the sending domain only).
 */
export interface MailboxTrace {
  id: number;
  /** ISO 8601 instant. */
  at: string;
  mailboxId: number;
  action: TraceAction;
  /** The user who acted; null: the operator (a peer's delivery, a notice) or an administrator at the command line. */
  actorUserId: number | null;
  /** The acting user's login, 'system', or the administrator's account at the command line. */
  actorLogin: string;
  /** The actor is not the mailbox's owner: a delegate, the application account, an administrator. */
  delegate: boolean;
  protocol: TraceProtocol;
  remote: string | null;
  detail: Record<string, unknown>;
}

/** Functional traces (audit/traces.ts records and purges them; `caducee audit mailbox` exports them). */
export interface TraceStore {
  recordTrace(t: Omit<MailboxTrace, 'id'>): Promise<void>;
  /** The traces of a mailbox in [from, to) (ISO instants; absent: unbounded), oldest first. */
  listTraces(mailboxId: number, range?: { from?: string; to?: string }): Promise<MailboxTrace[]>;
  /** Removes the traces older than `before` (ISO instant); returns how many. */
  purgeTraces(before: string): Promise<number>;
}

/** A message that arrived in a mailbox's INBOX: the unit of the software API's inbound feed. */
export interface InboundMessage {
  /** The message row id: increasing, the feed's cursor. */
  id: number;
  folderId: number;
  uid: number;
  blobId: string;
  size: number;
  internalDate: string;
}

/** Medical software integration (issue 11): API tokens and webhooks (docs/software-api.md). */
export interface IntegrationStore {
  createApiToken(t: { userId: number; label: string; secretHash: string; createdBy: string }): Promise<ApiToken>;
  /** The active token with this digest (never a revoked one). */
  findApiToken(secretHash: string): Promise<ApiToken | undefined>;
  /** Every token (of one user when given), revoked ones included, newest first. */
  listApiTokens(userId?: number): Promise<ApiToken[]>;
  touchApiToken(id: number, at: string, from: string | null): Promise<void>;
  revokeApiToken(id: number): Promise<ApiToken | undefined>;

  /** `since: 'now'`: only messages arriving after the registration; 'all': the INBOX from its start. */
  createWebhook(w: { userId: number; mailboxId: number; url: string; secret: string; since: 'now' | 'all' }): Promise<Webhook>;
  getWebhook(id: number): Promise<(Webhook & { secret: string }) | undefined>;
  listWebhooks(filter?: { userId?: number; mailboxId?: number }): Promise<Webhook[]>;
  revokeWebhook(id: number): Promise<boolean>;
  /** Active webhooks whose next try is due at `nowMs`, oldest due first. */
  dueWebhooks(nowMs: number, limit: number): Promise<(Webhook & { secret: string })[]>;
  /** Records the endpoint's acknowledgement of the event of message `cursor` (compare-and-set on the old cursor). */
  webhookAcknowledged(id: number, from: number, cursor: number): Promise<boolean>;
  /** Records a failed try: when to try again, since when it fails. */
  webhookFailed(id: number, f: { error: string; nextAttemptAt: number; failingSince: number }): Promise<void>;
  /** Gives up on the event of message `cursor` (retried for too long): the feed moves past it. */
  webhookAbandoned(id: number, from: number, cursor: number, error: string): Promise<boolean>;
  /** Messages of the mailbox's INBOX with a row id above `afterId`, in arrival order. */
  inboundAfter(mailboxId: number, afterId: number, limit: number): Promise<InboundMessage[]>;
}

/** A professional's message to a patient mailbox: opens the conversation, or closes it ([FIN]). */
export interface PatientConversationChange {
  patientMailboxId: number;
  /** The professional's address, lower case. */
  professional: string;
  action: 'open' | 'close';
  /** ISO instant. */
  at: string;
}

export interface PatientConversation {
  patientMailboxId: number;
  professional: string;
  openedAt: string;
  lastMessageAt: string;
  closedAt: string | null;
}

/** Conversations between patient mailboxes and professionals (the Mon espace santé stand-in). */
export interface PatientStore {
  getPatientConversation(patientMailboxId: number, professional: string): Promise<PatientConversation | undefined>;
}

/** Named leader leases (core/leader.ts): one holder per name across processes and nodes. */
export interface LeaseStore {
  /**
   * true when `owner` holds `name` afterwards: it was free, expired (until <= now) or already
   * held by `owner` (renewed to now+ttlMs). One statement/transaction.
   */
  acquireLease(name: string, owner: string, now: number, ttlMs: number): Promise<boolean>;
  /** Frees it if `owner` holds it. */
  releaseLease(name: string, owner: string): Promise<void>;
}

/**
 * The brute-force lockout (auth/), shared by every process and node: failed attempts per key,
 * epoch ms.
 */
export interface LockoutStore {
  /** Records one failed attempt for `key` ('login:<lower-case login>' or 'addr:<ip>') at `at` (epoch ms). */
  recordAuthFailure(key: string, at: number): Promise<void>;
  /** Failures of `key` at or after `since`. */
  countAuthFailures(key: string, since: number): Promise<number>;
  /** Forgets `key`'s failures (a success). */
  clearAuthFailures(key: string): Promise<void>;
  /** Removes failures older than `before`; returns how many. */
  purgeAuthFailures(before: number): Promise<number>;
}

/** RFC 5464 METADATA: one entry as the store keeps it (its name in lower case, its value's octets). */
export interface MetadataEntry {
  entry: string;
  value: Buffer;
}

/**
 * RFC 5464 METADATA entries (docs/imap.md "METADATA"), per folder or for the server (`folderId`
 * null), each either shared (`/shared/…`, userId null) or private to one user (`/private/…`).
 * Entry names are stored in lower case (RFC 5464 §3.2: case-insensitive). Values are sealed at
 * rest with the store's sealer when encryption is on (sealed column `metadata.value`, context
 * `metadata.value:<row id>`: `caducee keys` re-seals it). A folder's entries go with the folder
 * (and follow its RENAME: same folder row), a user's private entries with the user.
 */
export interface MetadataStore {
  /** The entries of the folder (null: the server) visible to `userId`: every shared one and `userId`'s private ones. */
  listMetadata(folderId: number | null, userId: number): Promise<MetadataEntry[]>;
  /**
   * Sets (value) or removes (null) entries, all in one transaction: shared ones (names under
   * /shared) with no user, private ones (under /private) for `userId`. When the folder would then
   * hold more than `maxEntries` entries visible to `userId`, nothing changes and false is returned
   * (RFC 5464 §4.3 [METADATA TOOMANY]).
   */
  setMetadata(folderId: number | null, userId: number, changes: { entry: string; value: Buffer | null }[], maxEntries: number): Promise<boolean>;
}

/**
 * URLAUTH mailbox access keys (RFC 4467 §3): per user and per folder, a random 256-bit secret the
 * URLAUTH tokens of the URLs that user issued for that folder are computed with (imap/urlauth-token.ts).
 * Replacing or removing a key invalidates every URL made with it. Sealed at rest with the store's
 * sealer when encryption is on (a sealed column of store/sealed-rows.ts, context
 * `urlauth_keys.secret:<row id>`: `caducee keys` re-seals it); never logged.
 * A folder's keys go with the folder, a user's with the user.
 */
export interface UrlAuthKeyStore {
  /** The key of (`userId`, `folderId`); with `create`, a new random one when there is none (one winner under races). */
  urlAuthKey(userId: number, folderId: number, create: boolean): Promise<Buffer | undefined>;
  /** RFC 4467 §7 RESETKEY mailbox: a new random key for (`userId`, `folderId`), replacing any. */
  resetUrlAuthKey(userId: number, folderId: number): Promise<void>;
  /** RFC 4467 §7 RESETKEY without arguments: removes every key of `userId`; returns how many. */
  removeUrlAuthKeys(userId: number): Promise<number>;
}

/**
 * A notification channel between the processes and nodes sharing a store (PostgreSQL:
 * LISTEN/NOTIFY on a connection of its own; src/relay carries Core events over it). Delivery is
 * best effort: a payload published while a subscriber's connection is down is lost to it, and the
 * subscriber is told by its onReconnect handlers (it must then re-read the store, the truth).
 * Names are scoped to the store (its schema): two operators sharing a database never hear each other.
 */
export interface NotificationChannel {
  /** The engine carrying it ('postgres'): logs, counters. */
  readonly kind: string;
  /** Largest payload publish() sends, in UTF-8 bytes (PostgreSQL NOTIFY: below 8000). */
  readonly maxPayloadBytes: number;
  /**
   * Calls `handler` with every payload published on `name` from now on, by any process of the
   * store including this one (in publication order per publisher). Resolves once listening;
   * rejects when the first connection cannot be made (later losses reconnect by themselves).
   */
  subscribe(name: string, handler: (payload: string) => void): Promise<void>;
  /**
   * Sends `payload` to every subscriber of `name`; resolves once the engine accepted it, rejects
   * when it could not be sent (disconnected, closed, or larger than maxPayloadBytes: nothing sent).
   */
  publish(name: string, payload: string): Promise<void>;
  /** `handler` runs each time the listening connection came back after a loss: payloads may have been missed. */
  onReconnect(handler: () => void): void;
  /** Stops listening and closes the channel's connections; publish() rejects afterwards. */
  close(): Promise<void>;
}

export interface NotificationChannelOptions {
  logger: Logger;
  /** First and longest delay between reconnection attempts (default 200 ms, 15 s). */
  backoffMs?: { min: number; max: number };
}

/** Opens notification channels over the store's engine, when it has one. */
export interface NotificationStore {
  /**
   * A new channel with connections of its own (the caller closes it); undefined when the engine
   * has none (SQLite: the processes of one machine talk through the cluster primary, src/relay).
   */
  openNotificationChannel(opts: NotificationChannelOptions): NotificationChannel | undefined;
}

/**
 * The values sealed in rows (docs/encryption.md, "Values in rows"; the columns: sealed-rows.ts),
 * for `caducee keys status|rewrap|rotate|retire|encrypt-existing`.
 */
export interface SealedValueStore {
  /** How many values of each sealed column each KEK sealed (keyId null: plaintext values). Zero counts are left out. */
  countSealedValues(): Promise<{ column: SealedColumn; keyId: string | null; count: number }[]>;
  /**
   * One batch, in one transaction: up to `limit` values of `column` that `which` selects, in rows
   * after `after` (null: from the first row, by primary key), opened and sealed again under the
   * current KEK. A value a writer changed meanwhile is left as the writer wrote it. Throws when
   * encryption at rest is off (no sealer). Call again with `next` until it is null.
   */
  resealValues(column: SealedColumn, which: ResealSelection, after: RowKey | null, limit: number): Promise<ResealBatch>;
}

/**
 * The whole store, as one engine (sqlite/, postgres/ later) implements it. Consumers that need
 * only part of it take the focused interface(s) above, or a Pick of them.
 */
export interface Store extends AccountStore, CredentialStore, HttpSessionStore, MailboxStore, FolderStore, DeliveryStore, BlobMetaStore, AbsenceStore, RulesStore, UsageStore, TraceStore, TrackingStore, IntegrationStore, PatientStore, LeaseStore, LockoutStore, NotificationStore, SealedValueStore, UrlAuthKeyStore, MetadataStore {
  /**
   * Seals the values this store keeps in rows (docs/encryption.md, "Values in rows"), built from
   * store.encryption's keyring by openStore; undefined when encryption at rest is off. Its
   * keyring is the one the message files use.
   */
  readonly sealer: ValueSealer | undefined;
  close(): Promise<void>;
}
