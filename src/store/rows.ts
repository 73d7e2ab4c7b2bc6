// Row mappers shared by both store engines (sqlite/ and postgres/): the two schemas have the same
// column names and types (booleans are INTEGER 0/1 in both, flags one space-separated TEXT, JSON
// kept as TEXT), and pg parses int8 to number (postgres/connection.ts), so one mapper turns a row
// of either engine into the model; and the column names both engines write. A column read
// differently by one engine does not belong here: it stays in that engine, with a comment.
import type { ApiToken, AppPassword, Folder, Grant, HttpSession, Mailbox, Practitioner, QueueItem, StoredMessage, Structure, TotpFactor, User, Webhook } from '../model/index.js';
import type { AbsenceSettings, ActivityKind, AuthAuditEntry, FolderMessage, InboundMessage, MailboxActivity, MailboxTrace, MailboxUpdate, PatientConversation, ReceiptMessage, RuleNotice, TrackedSubmission, UsageConnectionCount, UsageMailboxCount, UsageMessageCount } from './types.js';

/** A space-separated flags column as a list (no flag is the empty string). */
export function splitFlags(flags: string | null | undefined): string[] {
  return flags ? flags.split(' ') : [];
}

export function rowAbsence(r: any): AbsenceSettings {
  return {
    mailboxId: r.mailbox_id,
    startsAt: r.starts_at,
    endsAt: r.ends_at,
    subject: r.subject,
    body: r.body,
    externalBody: r.external_body,
    substitute: r.substitute,
    updatedAt: r.updated_at,
    updatedBy: r.updated_by,
  };
}

export function rowStructure(r: any): Structure {
  return { id: r.id, idType: r.id_type, idValue: r.id_value, name: r.name, createdAt: r.created_at };
}

export function rowPractitioner(r: any): Practitioner {
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

export function rowUser(r: any): User {
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

export function rowAppPassword(r: any): AppPassword {
  return { id: r.id, userId: r.user_id, label: r.label, createdAt: r.created_at, lastUsedAt: r.last_used_at, lastUsedFrom: r.last_used_from, revokedAt: r.revoked_at };
}

export function rowToken(r: any): ApiToken {
  return { id: r.id, userId: r.user_id, label: r.label, createdAt: r.created_at, createdBy: r.created_by, lastUsedAt: r.last_used_at, lastUsedFrom: r.last_used_from, revokedAt: r.revoked_at };
}

export function rowWebhook(r: any): Webhook {
  return {
    id: r.id,
    userId: r.user_id,
    mailboxId: r.mailbox_id,
    url: r.url,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
    cursor: r.cursor,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    failingSince: r.failing_since,
    lastError: r.last_error,
    delivered: r.delivered,
    abandoned: r.abandoned,
  };
}

export function rowMailbox(r: any): Mailbox {
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

export function rowGrant(r: any): Grant {
  return { id: r.id, mailboxId: r.mailbox_id, userId: r.user_id, rights: r.rights.split(',').filter(Boolean), createdAt: r.created_at };
}

export function rowActivity(r: any): MailboxActivity {
  return {
    mailboxId: r.mailbox_id,
    lastLoginAt: r.last_login_at,
    lastReadAt: r.last_read_at,
    lastSentAt: r.last_sent_at,
    readingThresholdHours: r.reading_threshold_hours,
    unusedWarnedAt: r.unused_warned_at,
    objectionAt: r.objection_at,
    suspendedAt: r.suspended_at,
    deletedSubstitute: r.deleted_substitute,
  };
}

export function rowSession(r: any): HttpSession {
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

export function rowTrace(r: any): MailboxTrace {
  return {
    id: r.id,
    at: r.at,
    mailboxId: r.mailbox_id,
    action: r.action,
    actorUserId: r.actor_user_id,
    actorLogin: r.actor_login,
    delegate: !!r.delegate,
    protocol: r.protocol,
    remote: r.remote,
    detail: JSON.parse(r.detail),
  };
}

export function rowFolder(r: any): Folder {
  return { id: r.id, mailboxId: r.mailbox_id, name: r.name, specialUse: r.special_use, uidValidity: r.uid_validity, uidNext: r.uid_next };
}

export function rowMessage(r: any): StoredMessage {
  return {
    id: r.id,
    folderId: r.folder_id,
    uid: r.uid,
    blobId: r.blob_id,
    size: r.size,
    internalDate: r.internal_date,
    flags: splitFlags(r.flags),
  };
}

export function rowFolderMessage(r: any): FolderMessage {
  return { uid: r.uid, flags: splitFlags(r.flags), modseq: r.modseq, size: r.size, internalDate: r.internal_date, blobId: r.blob_id, recent: !!r.recent };
}

export function rowQueue(r: any): QueueItem {
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
    submissionId: r.submission_id ?? null,
  };
}

/** A message with the mailbox of its folder (getReceiptMessage: m.*, f.mailbox_id). */
export function rowReceipt(r: any): ReceiptMessage {
  return { id: r.id, mailboxId: r.mailbox_id, folderId: r.folder_id, uid: r.uid, blobId: r.blob_id, flags: splitFlags(r.flags), returnPath: r.return_path };
}

/** A submissions row with its recipients, which each engine reads its own way. */
export function rowSubmission(r: any, recipients: TrackedSubmission['recipients']): TrackedSubmission {
  return {
    id: r.id,
    mailboxId: r.mailbox_id,
    userId: r.user_id,
    emailId: r.email_id,
    messageId: r.message_id,
    from: r.from_address,
    subject: r.subject,
    sentAt: r.sent_at,
    envid: r.envid,
    recipients,
  };
}

/** A usage_messages group (usageMessages: COUNT(*) n, SUM(attachment) a, SUM(xdm) x). */
export function rowUsageMessage(r: any): UsageMessageCount {
  return { structureId: r.structure_id, mailboxType: r.mailbox_type, flow: r.flow, peer: r.peer, messages: r.n, withAttachment: r.a, withXdm: r.x };
}

/** An auth_audit group (usageConnections: COUNT(*) n). */
export function rowUsageConnection(r: any): UsageConnectionCount {
  return { protocol: r.protocol, method: r.method, success: !!r.success, count: r.n };
}

/**
 * The mailbox counts of usageMailboxes from its two reads: `boxes` (structure_id, type,
 * created_at, state_then: each mailbox created before `to`, with its state at `to`) and `changes`
 * (structure_id, type, state, n: suspensions and deletions in the period), per structure and type.
 */
export function usageMailboxCounts(boxes: any[], changes: any[], from: string): UsageMailboxCount[] {
  const out = new Map<string, UsageMailboxCount>();
  const entry = (structureId: number | null, mailboxType: any) => {
    const k = `${structureId ?? ''}|${mailboxType}`;
    let e = out.get(k);
    if (!e) out.set(k, (e = { structureId, mailboxType, active: 0, created: 0, suspended: 0, deleted: 0 }));
    return e;
  };
  for (const b of boxes) {
    const e = entry(b.structure_id, b.type);
    if (b.state_then === 'active') e.active++;
    if (b.created_at >= from) e.created++;
  }
  for (const c of changes) {
    const e = entry(c.structure_id, c.type);
    if (c.state === 'suspended') e.suspended += c.n;
    else e.deleted += c.n;
  }
  return [...out.values()].sort((a, b) => (a.structureId ?? 0) - (b.structureId ?? 0) || a.mailboxType.localeCompare(b.mailboxType));
}

/** A webhooks row with its secret (only the webhook worker reads it). */
export function rowWebhookWithSecret(r: any): Webhook & { secret: string } {
  return { ...rowWebhook(r), secret: r.secret as string };
}

/** An INBOX message of the inbound feed (IntegrationStore.inboundAfter). */
export function rowInboundMessage(r: any): InboundMessage {
  return { id: r.id, folderId: r.folder_id, uid: r.uid, blobId: r.blob_id, size: r.size, internalDate: r.internal_date };
}

export function rowRuleNotice(r: any): RuleNotice {
  return { mailboxId: r.mailbox_id, kind: r.kind, day: r.day, level: r.level, blobId: r.blob_id, sentAt: r.sent_at };
}

export function rowAuthAudit(r: any): AuthAuditEntry {
  return { at: r.at, login: r.login, userId: r.user_id, protocol: r.protocol, method: r.method, remote: r.remote, success: !!r.success, reason: r.reason, actor: r.actor };
}

export function rowTotp(r: any): TotpFactor {
  return { userId: r.user_id, secret: r.secret, confirmedAt: r.confirmed_at, lastStep: r.last_step };
}

export function rowPatientConversation(r: any): PatientConversation {
  return { patientMailboxId: r.patient_mailbox_id, professional: r.professional, openedAt: r.opened_at, lastMessageAt: r.last_message_at, closedAt: r.closed_at };
}

// ---- columns written by both engines ----

/** The mailbox_activity column of each activity (RulesStore.recordActivity). */
export const ACTIVITY_COLUMN: Record<ActivityKind, string> = { login: 'last_login_at', read: 'last_read_at', sent: 'last_sent_at' };
/** The mailbox_activity column of each lifecycle field (RulesStore.updateActivity). */
export const LIFECYCLE_COLUMN: Record<string, string> = {
  readingThresholdHours: 'reading_threshold_hours',
  unusedWarnedAt: 'unused_warned_at',
  objectionAt: 'objection_at',
  suspendedAt: 'suspended_at',
  deletedSubstitute: 'deleted_substitute',
};
/** The mailboxes column of each MailboxUpdate field written as it is (liste_rouge, a boolean, is written apart). */
export const MAILBOX_UPDATE_COLUMNS: [keyof MailboxUpdate, string][] = [
  ['state', 'state'],
  ['displayName', 'display_name'],
  ['service', 'service'],
  ['description', 'description'],
  ['ownerUserId', 'owner_user_id'],
];
