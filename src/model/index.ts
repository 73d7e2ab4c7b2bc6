// The domain model of an MSSanté operator. Vocabulary: a *mailbox* is an MSSanté BAL (one
// address, a type, an owner, a state); a *folder* is an IMAP mailbox inside it.

/** TRE_R257-TypeBAL (ANS): PER personal, ORG organisational, APP applicative, CAB practice. */
export const MAILBOX_TYPES = ['PER', 'ORG', 'APP', 'CAB'] as const;
export type MailboxType = (typeof MAILBOX_TYPES)[number];
export const MAILBOX_STATES = ['active', 'suspended', 'deleted'] as const;
export type MailboxState = (typeof MAILBOX_STATES)[number];
export const STRUCTURE_ID_TYPES = ['FINESS', 'SIRET'] as const;
export type StructureIdType = (typeof STRUCTURE_ID_TYPES)[number];
/** Delegation rights: read the mailbox, send on behalf of it, manage it (grants, settings). */
export const GRANT_RIGHTS = ['read', 'send', 'manage'] as const;
export type GrantRight = (typeof GRANT_RIGHTS)[number];

export interface Structure {
  id: number;
  idType: StructureIdType;
  idValue: string;
  name: string;
  createdAt: string;
}

export interface Practitioner {
  id: number;
  /** RPPS number (11 digits). The national id ("Identification nationale PP") is "8" + RPPS. */
  rpps: string;
  familyName: string;
  givenName: string;
  civility?: string | null;
  professionCode?: string | null;
  createdAt: string;
}

export interface User {
  id: number;
  login: string;
  displayName: string;
  practitionerId: number | null;
  /**
   * Set on the application account of a structure: the principal an organisation certificate
   * logs in as. Such an account reaches only the APP mailboxes of that structure.
   */
  structureId: number | null;
  state: 'active' | 'disabled';
  createdAt: string;
}

/** A per-device password for a mail client (IMAP, SMTP); the secret itself is never stored. */
export interface AppPassword {
  id: number;
  userId: number;
  label: string;
  createdAt: string;
  lastUsedAt: string | null;
  lastUsedFrom: string | null;
  revokedAt: string | null;
}

/**
 * A credential of medical software for the mail API (issue 11): a bearer token `cad_…` held by an
 * API client's user account, created by an administrator, scoped by that user's grants.
 */
export interface ApiToken {
  id: number;
  userId: number;
  label: string;
  createdAt: string;
  createdBy: string;
  lastUsedAt: string | null;
  lastUsedFrom: string | null;
  revokedAt: string | null;
}

/** An HTTPS endpoint of medical software told of each message arriving in a mailbox's INBOX. */
export interface Webhook {
  id: number;
  userId: number;
  mailboxId: number;
  url: string;
  createdAt: string;
  revokedAt: string | null;
  /** Messages (row ids) up to this one have been acknowledged by the endpoint (or abandoned). */
  cursor: number;
  attempts: number;
  /** Epoch ms of the next try of the event after `cursor`. */
  nextAttemptAt: number;
  /** Epoch ms of the first failed try of the current event; null when the last try succeeded. */
  failingSince: number | null;
  lastError: string | null;
  delivered: number;
  abandoned: number;
}

/** A web session; `stage` is 'full' once both factors are done. */
export interface HttpSession {
  id: number;
  userId: number;
  method: string;
  stage: 'full' | 'second-factor' | 'enrol-second-factor';
  csrfToken: string;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  remote: string | null;
  userAgent: string | null;
  revokedAt: number | null;
}

export interface TotpFactor {
  userId: number;
  secret: string;
  confirmedAt: string | null;
  lastStep: number;
}

export interface Mailbox {
  id: number;
  address: string;
  type: MailboxType;
  displayName: string;
  /** The user who owns the mailbox (PER/CAB: the practitioner's user; ORG/APP: optional responsible). */
  ownerUserId: number | null;
  practitionerId: number | null;
  structureId: number | null;
  state: MailboxState;
  /** Liste rouge: not published in the national directory. */
  listeRouge: boolean;
  service: string | null;
  description: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface Grant {
  id: number;
  mailboxId: number;
  userId: number;
  rights: GrantRight[];
  createdAt: string;
}

export interface Folder {
  id: number;
  mailboxId: number;
  name: string;
  specialUse: string | null;
  uidValidity: number;
  uidNext: number;
}

export interface StoredMessage {
  id: number;
  folderId: number;
  uid: number;
  blobId: string;
  size: number;
  internalDate: string;
  flags: string[];
}

/** DSN request parameters (RFC 3461 §4.1–4.4) carried with each recipient and envelope. */
export interface DsnRequest {
  /** NOTIFY: NEVER, or any of SUCCESS, FAILURE, DELAY. Undefined: the default (FAILURE, DELAY). */
  notify?: ('NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY')[];
  /** ORCPT as received: "rfc822;addr". */
  orcpt?: string;
}

export interface QueueItem {
  id: number;
  blobId: string;
  size: number;
  envelopeFrom: string;
  recipient: string;
  domain: string;
  notify: DsnRequest['notify'] | null;
  orcpt: string | null;
  ret: 'FULL' | 'HDRS' | null;
  envid: string | null;
  status: 'queued' | 'sent' | 'failed';
  attempts: number;
  nextAttemptAt: number;
  queuedAt: number;
  lastError: string | null;
  /** Mailbox of the sender, to receive DSNs. */
  senderMailboxId: number | null;
  /** The tracked submission this item delivers (docs/receipts.md); null for operator mail (DSNs, replies). */
  submissionId?: number | null;
}

export const DEFAULT_FOLDERS: { name: string; specialUse: string | null }[] = [
  { name: 'INBOX', specialUse: null },
  { name: 'Sent', specialUse: '\\Sent' }, // RFC 6154
  { name: 'Drafts', specialUse: '\\Drafts' },
  { name: 'Trash', specialUse: '\\Trash' },
  { name: 'Junk', specialUse: '\\Junk' },
];
