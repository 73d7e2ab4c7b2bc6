// Versioned schema migrations for the embedded SQLite store. Append only: never edit a
// migration that has shipped; add a new one.
/**
 * The columns of search_headers (migration 17; a later migration adding one adds it here);
 * mail/header-index.ts fills them.
 */
export const SEARCH_COLUMN_LIST = [
  'a_from', 'a_to', 'a_cc', 'a_bcc', 's_subject',
  'h_from', 'h_to', 'h_cc', 'h_bcc', 'h_subject', 'h_message_id', 'h_in_reply_to', 'h_references', 'h_reply_to', 'h_sender',
] as const;

export const MIGRATIONS: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'domain model, messages, outbound queue',
    sql: `
CREATE TABLE structures (
  id INTEGER PRIMARY KEY,
  id_type TEXT NOT NULL CHECK (id_type IN ('FINESS','SIRET')),
  id_value TEXT NOT NULL,
  name TEXT NOT NULL,
  created_at TEXT NOT NULL,
  UNIQUE (id_type, id_value)
);
CREATE TABLE practitioners (
  id INTEGER PRIMARY KEY,
  rpps TEXT NOT NULL UNIQUE,
  family_name TEXT NOT NULL,
  given_name TEXT NOT NULL,
  civility TEXT,
  profession_code TEXT,
  created_at TEXT NOT NULL
);
CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  login TEXT NOT NULL UNIQUE COLLATE NOCASE,
  display_name TEXT NOT NULL,
  practitioner_id INTEGER REFERENCES practitioners(id),
  password_hash TEXT,
  state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active','disabled')),
  created_at TEXT NOT NULL
);
CREATE TABLE mailboxes (
  id INTEGER PRIMARY KEY,
  address TEXT NOT NULL UNIQUE COLLATE NOCASE,
  type TEXT NOT NULL CHECK (type IN ('PER','ORG','APP','CAB')),
  display_name TEXT NOT NULL,
  owner_user_id INTEGER REFERENCES users(id),
  practitioner_id INTEGER REFERENCES practitioners(id),
  structure_id INTEGER REFERENCES structures(id),
  state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active','suspended','deleted')),
  liste_rouge INTEGER NOT NULL DEFAULT 0,
  service TEXT,
  description TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE TABLE grants (
  id INTEGER PRIMARY KEY,
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
  user_id INTEGER NOT NULL REFERENCES users(id),
  rights TEXT NOT NULL,
  created_at TEXT NOT NULL,
  UNIQUE (mailbox_id, user_id)
);
CREATE TABLE folders (
  id INTEGER PRIMARY KEY,
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
  name TEXT NOT NULL,
  special_use TEXT,
  uid_validity INTEGER NOT NULL,
  uid_next INTEGER NOT NULL DEFAULT 1,
  highest_modseq INTEGER NOT NULL DEFAULT 1,
  subscribed INTEGER NOT NULL DEFAULT 1,
  UNIQUE (mailbox_id, name)
);
CREATE TABLE messages (
  id INTEGER PRIMARY KEY,
  folder_id INTEGER NOT NULL REFERENCES folders(id),
  uid INTEGER NOT NULL,
  blob_id TEXT NOT NULL,
  size INTEGER NOT NULL,
  internal_date TEXT NOT NULL,
  flags TEXT NOT NULL DEFAULT '',
  modseq INTEGER NOT NULL DEFAULT 1,
  UNIQUE (folder_id, uid)
);
CREATE INDEX messages_blob ON messages(blob_id);
CREATE TABLE outbound_queue (
  id INTEGER PRIMARY KEY,
  blob_id TEXT NOT NULL,
  size INTEGER NOT NULL,
  envelope_from TEXT NOT NULL,
  recipient TEXT NOT NULL,
  domain TEXT NOT NULL,
  notify TEXT,
  orcpt TEXT,
  ret TEXT,
  envid TEXT,
  sender_mailbox_id INTEGER REFERENCES mailboxes(id),
  status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued','sent','failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  queued_at INTEGER NOT NULL,
  last_error TEXT,
  done_at INTEGER
);
CREATE INDEX outbound_due ON outbound_queue(status, next_attempt_at);
CREATE INDEX outbound_blob ON outbound_queue(blob_id);
`,
  },
  {
    version: 2,
    name: 'IMAP: message metadata, recent, expunge history, subscriptions, quota',
    sql: `
CREATE TABLE blob_meta (
  blob_id TEXT PRIMARY KEY,
  info TEXT NOT NULL
);
ALTER TABLE messages ADD COLUMN recent INTEGER NOT NULL DEFAULT 1;
CREATE INDEX messages_folder_modseq ON messages(folder_id, modseq);
CREATE TABLE expunged (
  folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
  uid INTEGER NOT NULL,
  modseq INTEGER NOT NULL,
  PRIMARY KEY (folder_id, uid)
);
CREATE INDEX expunged_modseq ON expunged(folder_id, modseq);
CREATE TABLE subscriptions (
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
  name TEXT NOT NULL,
  PRIMARY KEY (mailbox_id, name)
);
INSERT INTO subscriptions (mailbox_id, name) SELECT mailbox_id, name FROM folders WHERE subscribed = 1;
ALTER TABLE mailboxes ADD COLUMN quota_bytes INTEGER;
`,
  },
  {
    version: 3,
    name: 'UIDVALIDITY never reused within a mailbox',
    sql: `
ALTER TABLE mailboxes ADD COLUMN last_uid_validity INTEGER NOT NULL DEFAULT 0;
UPDATE mailboxes SET last_uid_validity = COALESCE((SELECT MAX(uid_validity) FROM folders WHERE folders.mailbox_id = mailboxes.id), 0);
`,
  },
  {
    version: 4,
    name: 'authentication audit',
    sql: `
CREATE TABLE auth_audit (
  id INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  login TEXT NOT NULL,
  user_id INTEGER REFERENCES users(id),
  protocol TEXT NOT NULL,
  method TEXT NOT NULL,
  remote TEXT,
  success INTEGER NOT NULL,
  reason TEXT
);
CREATE INDEX auth_audit_at ON auth_audit(at);
`,
  },
  {
    version: 5,
    name: 'strong authentication: app passwords, TOTP, recovery codes, web sessions, application accounts',
    sql: `
-- The application account of a structure: the principal an organisation certificate logs in as
-- (it opens only the APP mailboxes of that structure).
ALTER TABLE users ADD COLUMN structure_id INTEGER REFERENCES structures(id);
CREATE UNIQUE INDEX users_structure_account ON users(structure_id) WHERE structure_id IS NOT NULL;
-- Per-device passwords for mail clients: random, shown once, kept as a SHA-256 digest.
CREATE TABLE app_passwords (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id),
  label TEXT NOT NULL,
  secret_hash TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  last_used_at TEXT,
  last_used_from TEXT,
  revoked_at TEXT
);
CREATE INDEX app_passwords_user ON app_passwords(user_id);
-- RFC 6238 TOTP: the shared secret (needed to compute codes) and the last time step accepted,
-- so that a code is never accepted twice.
CREATE TABLE totp_factors (
  user_id INTEGER PRIMARY KEY REFERENCES users(id),
  secret TEXT NOT NULL,
  confirmed_at TEXT,
  last_step INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL
);
CREATE TABLE recovery_codes (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id),
  code_hash TEXT NOT NULL,
  used_at TEXT
);
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);
-- Web sessions: the cookie value is never stored, only its SHA-256 digest. stage: 'full', or
-- 'second-factor' / 'enrol-second-factor' between the password and the TOTP code.
CREATE TABLE http_sessions (
  id INTEGER PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  user_id INTEGER NOT NULL REFERENCES users(id),
  method TEXT NOT NULL,
  stage TEXT NOT NULL,
  csrf_token TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  remote TEXT,
  user_agent TEXT,
  revoked_at INTEGER
);
CREATE INDEX http_sessions_user ON http_sessions(user_id);
`,
  },
  {
    version: 6,
    name: 'audit trail: who managed credentials (actor)',
    // Credential management (app passwords, second-factor reset, password) is audited with who
    // acted; authentication attempts leave it null.
    sql: `ALTER TABLE auth_audit ADD COLUMN actor TEXT;`,
  },
  {
    version: 7,
    name: 'message files reference-counted: blob_garbage filled by triggers',
    // A message file may be shared (one blob for every local recipient, COPY, the queue). Each
    // time a row that references a blob goes — a message expunged, a folder or a deleted
    // mailbox's content removed, a queue item sent or failed — a trigger records the blob as a
    // candidate in the same transaction, whatever code path removed the row. The collector
    // (store/blob-collector.ts) removes the file once no row references it any more.
    sql: `
CREATE TABLE blob_garbage (
  blob_id TEXT PRIMARY KEY,
  since TEXT NOT NULL
);
CREATE TRIGGER messages_blob_released AFTER DELETE ON messages BEGIN
  INSERT OR IGNORE INTO blob_garbage (blob_id, since) VALUES (OLD.blob_id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
END;
CREATE TRIGGER queue_blob_done AFTER UPDATE OF status ON outbound_queue WHEN NEW.status <> 'queued' BEGIN
  INSERT OR IGNORE INTO blob_garbage (blob_id, since) VALUES (NEW.blob_id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
END;
CREATE TRIGGER queue_blob_released AFTER DELETE ON outbound_queue BEGIN
  INSERT OR IGNORE INTO blob_garbage (blob_id, since) VALUES (OLD.blob_id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
END;
-- Files left behind before this version: every analysed blob no row references any more.
INSERT OR IGNORE INTO blob_garbage (blob_id, since)
  SELECT blob_id, strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM blob_meta
  WHERE blob_id NOT IN (SELECT blob_id FROM messages)
    AND blob_id NOT IN (SELECT blob_id FROM outbound_queue WHERE status = 'queued');
`,
  },
  {
    version: 8,
    name: 'absence messages and the replies sent under them',
    // Golden rule 3 (docs/policy.md): one absence per mailbox; one row per sender answered, so
    // that a sender gets at most one reply per period (RFC 5230 §4.2, RFC 3834 §2).
    sql: `
CREATE TABLE absences (
  mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes(id),
  starts_at TEXT,
  ends_at TEXT,
  subject TEXT,
  body TEXT,
  external_body TEXT,
  substitute TEXT,
  updated_at TEXT NOT NULL,
  updated_by TEXT NOT NULL
);
CREATE TABLE absence_replies (
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
  sender TEXT NOT NULL COLLATE NOCASE,
  last_reply_at INTEGER NOT NULL,
  PRIMARY KEY (mailbox_id, sender)
);
`,
  },
  {
    version: 9,
    name: 'golden rules 1, 2 and 4: mailbox activity, rule notices, urgency replies',
    // docs/policy.md. mailbox_activity: when a mailbox was last used (never content) and where it
    // stands in rule 2 (warned, suspended, objection, the substitute named once deleted), with
    // its own reading threshold (rule 1). rule_notices: at most one notice per mailbox, rule and
    // Paris day; the notice's message file is kept so that notices never count as unread mail.
    // urgency_replies: at most one urgency answer per sender per period (RFC 3834 §2).
    sql: `
CREATE TABLE mailbox_activity (
  mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes(id),
  last_login_at INTEGER,
  last_read_at INTEGER,
  last_sent_at INTEGER,
  reading_threshold_hours REAL,
  unused_warned_at INTEGER,
  objection_at INTEGER,
  suspended_at INTEGER,
  deleted_substitute TEXT
);
CREATE TABLE rule_notices (
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
  kind TEXT NOT NULL,
  day TEXT NOT NULL,
  level INTEGER NOT NULL,
  blob_id TEXT,
  sent_at INTEGER NOT NULL,
  PRIMARY KEY (mailbox_id, kind, day)
);
CREATE INDEX rule_notices_blob ON rule_notices(blob_id);
CREATE TABLE urgency_replies (
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
  sender TEXT NOT NULL COLLATE NOCASE,
  last_reply_at INTEGER NOT NULL,
  PRIMARY KEY (mailbox_id, sender)
);
`,
  },
  {
    version: 10,
    name: 'recipients sent per user and day (content policy)',
    // Medical-only content (docs/policy.md): recipients of submitted messages per user and per
    // day (Europe/Paris, YYYY-MM-DD), counted in the delivery's own transaction.
    sql: `
CREATE TABLE recipients_per_day (
  user_id INTEGER NOT NULL REFERENCES users(id),
  day TEXT NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (user_id, day)
);
`,
  },
  {
    version: 11,
    name: 'usage indicators: content-free message rows, mailbox state history',
    // Issue 10, docs/indicators.md. usage_messages: one row per message and way (sent by a
    // mailbox of ours / received into one), written in the delivery's transaction: the
    // mailbox's structure and type, the peer class, attachment and XDM flags — never an
    // address, a subject or content. mailbox_state_changes: every state change, filled by a
    // trigger whatever code path changed it (the monthly counts of suspended and deleted
    // mailboxes, and which were active at a month's end). Mailboxes already suspended or
    // deleted get one row at their last update.
    sql: `
CREATE TABLE usage_messages (
  id INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  structure_id INTEGER REFERENCES structures(id),
  mailbox_type TEXT NOT NULL CHECK (mailbox_type IN ('PER','ORG','APP','CAB')),
  flow TEXT NOT NULL CHECK (flow IN ('sent','received')),
  peer TEXT NOT NULL CHECK (peer IN ('internal','operator','patient')),
  attachment INTEGER NOT NULL,
  xdm INTEGER NOT NULL
);
CREATE INDEX usage_messages_at ON usage_messages(at);
CREATE TABLE mailbox_state_changes (
  id INTEGER PRIMARY KEY,
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
  at TEXT NOT NULL,
  state TEXT NOT NULL
);
CREATE INDEX mailbox_state_changes_at ON mailbox_state_changes(at);
CREATE INDEX mailbox_state_changes_mailbox ON mailbox_state_changes(mailbox_id, at);
CREATE TRIGGER mailbox_state_changed AFTER UPDATE OF state ON mailboxes WHEN NEW.state <> OLD.state BEGIN
  INSERT INTO mailbox_state_changes (mailbox_id, at, state) VALUES (NEW.id, NEW.updated_at, NEW.state);
END;
INSERT INTO mailbox_state_changes (mailbox_id, at, state) SELECT id, updated_at, state FROM mailboxes WHERE state <> 'active';
`,
  },
  {
    version: 12,
    name: 'functional traces per mailbox',
    // Issue 10, docs/traces.md: who did what to a mailbox, when, from where (delivered, read,
    // moved, deleted, sent, grant changed, absence set…), a delegate's actions named as such.
    // detail is content-free JSON (folder names, counts, UIDs, rights): never a subject, a
    // correspondent's address or content. Purged after audit.traceRetentionMonths.
    sql: `
CREATE TABLE mailbox_traces (
  id INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
  action TEXT NOT NULL,
  actor_user_id INTEGER REFERENCES users(id),
  actor_login TEXT NOT NULL,
  delegate INTEGER NOT NULL CHECK (delegate IN (0, 1)),
  protocol TEXT NOT NULL CHECK (protocol IN ('imap','submission','mx','web','cli','rules','system')),
  remote TEXT,
  detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX mailbox_traces_mailbox ON mailbox_traces(mailbox_id, at);
CREATE INDEX mailbox_traces_at ON mailbox_traces(at);
`,
  },
  {
    version: 13,
    name: 'web preferences per user; messages by received date',
    // Issue 9, docs/mail-api.md: GET/PUT /api/v1/preferences (signature, list density, remote
    // content); the JSON is validated by the mail API before it is stored. The index serves the
    // API's message lists (newest first, keyset paging on (internal_date, id)) in O(page).
    sql: `
CREATE TABLE user_preferences (
  user_id INTEGER PRIMARY KEY REFERENCES users(id),
  prefs TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX messages_folder_date ON messages(folder_id, internal_date, id);
`,
  },
  {
    version: 14,
    name: 'delivery tracking per submitted message and recipient; return path of stored messages',
    // Issue 9 / 11, docs/receipts.md. submissions: one row per message submitted by a mailbox of
    // ours (written in the delivery's transaction); submission_recipients: where each recipient
    // stands (queued → relayed → delivered / failed, then displayed / processed / error once an MDN
    // comes back). The outbound queue names the tracking row it moves. messages.return_path: the
    // envelope sender a message was delivered with (RFC 5321 §4.4: what Return-Path would say;
    // NULL when unknown, e.g. IMAP APPEND), which the MDN rules compare with
    // Disposition-Notification-To (RFC 8098 §2.1).
    sql: `
CREATE TABLE submissions (
  id INTEGER PRIMARY KEY,
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
  user_id INTEGER REFERENCES users(id),
  email_id INTEGER,
  message_id TEXT,
  from_address TEXT NOT NULL,
  subject TEXT NOT NULL,
  sent_at TEXT NOT NULL,
  envid TEXT
);
CREATE INDEX submissions_mailbox ON submissions(mailbox_id, id);
CREATE INDEX submissions_message_id ON submissions(mailbox_id, message_id);
CREATE INDEX submissions_envid ON submissions(mailbox_id, envid) WHERE envid IS NOT NULL;
CREATE TABLE submission_recipients (
  id INTEGER PRIMARY KEY,
  submission_id INTEGER NOT NULL REFERENCES submissions(id) ON DELETE CASCADE,
  address TEXT NOT NULL COLLATE NOCASE,
  status TEXT NOT NULL CHECK (status IN ('queued','relayed','delivered','failed','displayed','processed','error')),
  detail TEXT,
  updated_at TEXT NOT NULL
);
CREATE INDEX submission_recipients_submission ON submission_recipients(submission_id);
ALTER TABLE outbound_queue ADD COLUMN submission_id INTEGER REFERENCES submissions(id);
ALTER TABLE outbound_queue ADD COLUMN submission_recipient_id INTEGER REFERENCES submission_recipients(id);
ALTER TABLE messages ADD COLUMN return_path TEXT;
`,
  },
  {
    version: 15,
    name: 'patient conversations (Mon espace santé stand-in)',
    // Issue 11, docs/patients.md: at an operator hosting the patient domain, one row per patient
    // mailbox and professional. A professional's message opens (or reopens) the conversation,
    // one ending it ([FIN] / X-MSS-MES: FIN) closes it; the patient may write to the
    // professional only while it is open. Written in the delivery's transaction.
    sql: `
CREATE TABLE patient_conversations (
  patient_mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
  professional TEXT NOT NULL,
  opened_at TEXT NOT NULL,
  last_message_at TEXT NOT NULL,
  closed_at TEXT,
  PRIMARY KEY (patient_mailbox_id, professional)
);
`,
  },
  {
    version: 16,
    name: 'software API tokens and webhooks',
    // Issue 11, docs/software-api.md: bearer tokens of API clients (digest only) and the webhooks
    // told of each message arriving in an INBOX. A webhook's cursor is the last message row id its
    // endpoint acknowledged: the feed is at-least-once, in arrival order, with stable event ids.
    // The secret signs the bodies (HMAC-SHA256), so it is kept, encrypted by the secrets key.
    sql: `
CREATE TABLE api_tokens (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id),
  label TEXT NOT NULL,
  secret_hash TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  created_by TEXT NOT NULL,
  last_used_at TEXT,
  last_used_from TEXT,
  revoked_at TEXT
);
CREATE TABLE webhooks (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id),
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
  url TEXT NOT NULL,
  secret TEXT NOT NULL,
  created_at TEXT NOT NULL,
  revoked_at TEXT,
  cursor INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  failing_since INTEGER,
  last_error TEXT,
  delivered INTEGER NOT NULL DEFAULT 0,
  abandoned INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX webhooks_due ON webhooks(next_attempt_at) WHERE revoked_at IS NULL;
`,
  },
  {
    version: 17,
    name: 'header search index',
    // Issue 15 (big folders), mail/header-index.ts: per message file (content-addressed, one row
    // per blob), the folded values SEARCH compares for FROM/TO/CC/BCC (a_*), SUBJECT (s_subject)
    // and HEADER on common fields (h_*), joined by "\n" as UTF-8 blobs; NULL when the field is
    // absent. `version` is the normalisation's: rows of another version are recomputed on use.
    // Files analysed before this version get their row on first search (lazily).
    sql: `
CREATE TABLE search_headers (
  blob_id TEXT PRIMARY KEY,
  version INTEGER NOT NULL,
  a_from BLOB, a_to BLOB, a_cc BLOB, a_bcc BLOB, s_subject BLOB,
  h_from BLOB, h_to BLOB, h_cc BLOB, h_bcc BLOB, h_subject BLOB, h_message_id BLOB,
  h_in_reply_to BLOB, h_references BLOB, h_reply_to BLOB, h_sender BLOB
) WITHOUT ROWID;
-- Whether the message's file has its row at version 1 (kept by the two triggers): SEARCH lists a
-- folder's unindexed messages through the partial index instead of probing every file's row.
-- A later version of the normalisation needs a migration resetting this and the triggers.
ALTER TABLE messages ADD COLUMN header_indexed INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_header_unindexed ON messages(folder_id) WHERE header_indexed = 0;
CREATE TRIGGER messages_header_indexed AFTER INSERT ON messages
  WHEN EXISTS (SELECT 1 FROM search_headers WHERE blob_id = NEW.blob_id AND version = 1)
BEGIN
  UPDATE messages SET header_indexed = 1 WHERE id = NEW.id;
END;
CREATE TRIGGER search_headers_indexed AFTER INSERT ON search_headers WHEN NEW.version = 1
BEGIN
  UPDATE messages SET header_indexed = 1 WHERE blob_id = NEW.blob_id AND header_indexed = 0;
END;
`,
  },
  {
    version: 18,
    name: 'queue leases, leader leases, shared lockout',
    // Issue 12 (several processes and nodes): a queue item is leased to the worker that claimed it
    // (claimQueueItems) until lease_until (epoch ms), so two workers never attempt it at once; a
    // worker that dies leaves a lease that expires. `leases`: named leader leases (core/leader.ts).
    // `auth_failures`: the brute-force lockout's failed attempts (auth/), epoch ms, read by every
    // process instead of a counter in memory.
    sql: `
ALTER TABLE outbound_queue ADD COLUMN lease_owner TEXT;
ALTER TABLE outbound_queue ADD COLUMN lease_until INTEGER;   -- epoch ms
CREATE TABLE leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, until INTEGER NOT NULL);
CREATE TABLE auth_failures (key TEXT NOT NULL, at INTEGER NOT NULL);   -- epoch ms
CREATE INDEX auth_failures_key ON auth_failures(key, at);
`,
  },
  {
    version: 19,
    name: 'message files: pins and removal claims shared by every process (store/message-files.ts)',
    // Issue 12: a put of a message file pins its id until the transaction referencing it commits;
    // a removal claims the id (removing_since, epoch ms) before the file goes. Both are write
    // transactions, so SQLite serializes them across processes (WAL: one writer at a time).
    sql: `
CREATE TABLE blob_pins (
  blob_id TEXT NOT NULL,
  token TEXT NOT NULL,
  until INTEGER NOT NULL,
  PRIMARY KEY (blob_id, token)
) WITHOUT ROWID;
CREATE INDEX blob_pins_until ON blob_pins(until);
ALTER TABLE blob_garbage ADD COLUMN removing_since INTEGER;
`,
  },
  {
    version: 20,
    name: 'Idempotency-Key answers of the mail API, shared by every process (http/sending.ts)',
    // Issue 13: (user, route, key) → the answer, recorded in the transaction of the submission it
    // answers, so a retry after a crash or on another process replays it; created_at epoch ms,
    // rows older than 24 h are ignored and purged.
    sql: `
CREATE TABLE idempotency_keys (
  user_id INTEGER NOT NULL,
  route TEXT NOT NULL,
  key TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  submission_id INTEGER,
  email_id INTEGER,
  answer TEXT NOT NULL,
  PRIMARY KEY (user_id, route, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
`,
  },
  {
    version: 22,
    name: 'header search index: keyed tokens and sealed values when encryption at rest is on',
    // Issue 13 (encryption at rest, phase 2), store/search-seal.ts: with a sealer, a row's columns
    // hold keyed trigram tokens instead of the folded values, `vals` the values sealed under the
    // KEK `key_id` names (NULL: a plaintext row, as before). The table is rebuilt: key_id before
    // the columns (read for every row a big-folder scan visits) and vals after them, and as a
    // rowid table — a sealed row (~1.5 KB of tokens and sealed values for a small message) is
    // over the ~1,000 bytes a WITHOUT ROWID row keeps in its page (4 KiB pages), so its last
    // columns went to overflow pages: at 5,000 messages HEADER Message-ID took 11 ms of CPU
    // against 3 ms as a rowid table (row up to ~4,000 bytes in page), plaintext rows unchanged
    // (the equality of blob_id then goes through the primary key's index). The triggers of
    // migration 17 are dropped with the table (and messages_header_indexed, which names it: a
    // RENAME re-parses every trigger) and created again unchanged.
    sql: `
DROP TRIGGER messages_header_indexed;
CREATE TABLE search_headers_v22 (
  blob_id TEXT PRIMARY KEY,
  version INTEGER NOT NULL,
  key_id TEXT,
  a_from BLOB, a_to BLOB, a_cc BLOB, a_bcc BLOB, s_subject BLOB,
  h_from BLOB, h_to BLOB, h_cc BLOB, h_bcc BLOB, h_subject BLOB, h_message_id BLOB,
  h_in_reply_to BLOB, h_references BLOB, h_reply_to BLOB, h_sender BLOB,
  vals BLOB
);
INSERT INTO search_headers_v22 (blob_id, version, a_from, a_to, a_cc, a_bcc, s_subject, h_from, h_to, h_cc, h_bcc, h_subject, h_message_id, h_in_reply_to, h_references, h_reply_to, h_sender)
  SELECT blob_id, version, a_from, a_to, a_cc, a_bcc, s_subject, h_from, h_to, h_cc, h_bcc, h_subject, h_message_id, h_in_reply_to, h_references, h_reply_to, h_sender FROM search_headers;
DROP TABLE search_headers;
ALTER TABLE search_headers_v22 RENAME TO search_headers;
CREATE TRIGGER messages_header_indexed AFTER INSERT ON messages
  WHEN EXISTS (SELECT 1 FROM search_headers WHERE blob_id = NEW.blob_id AND version = 1)
BEGIN
  UPDATE messages SET header_indexed = 1 WHERE id = NEW.id;
END;
CREATE TRIGGER search_headers_indexed AFTER INSERT ON search_headers WHEN NEW.version = 1
BEGIN
  UPDATE messages SET header_indexed = 1 WHERE blob_id = NEW.blob_id AND header_indexed = 0;
END;
`,
  },
  {
    version: 23,
    name: 'URLAUTH mailbox access keys (RFC 4467 §3), per user and folder',
    // docs/imap.md "URLAUTH": the secret the INTERNAL tokens of the URLs a user issued for a folder
    // are computed with (32 random bytes, sealed by the store's sealer when encryption at rest is
    // on: store/urlauth-keys.ts). RESETKEY replaces or removes it; it goes with the folder or user.
    // The integer id is the row key the sealed secret is bound to (`urlauth_keys.secret:<id>`,
    // store/sealed-rows.ts, as submissions.subject), so that `caducee keys` re-seals it like every
    // sealed column; AUTOINCREMENT: an id is never reused, so no removed row's value opens in a
    // later one.
    sql: `
CREATE TABLE urlauth_keys (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
  secret BLOB NOT NULL,
  created_at TEXT NOT NULL,
  UNIQUE (user_id, folder_id)
);
CREATE INDEX urlauth_keys_folder ON urlauth_keys(folder_id);
`,
  },
  {
    version: 24,
    name: 'METADATA entries (RFC 5464), per folder or for the server, shared or per user',
    // docs/imap.md "METADATA", store/metadata.ts: folder_id NULL for a server entry, user_id NULL
    // for a /shared entry (else the user whose /private entry it is); the entry name in lower case
    // (RFC 5464 §3.2: case-insensitive). The value is sealed under the integer id when encryption
    // at rest is on (`metadata.value:<id>`, store/sealed-rows.ts); AUTOINCREMENT: an id is never
    // reused, so no removed row's value opens in a later one. The unique index takes NULL as 0 (a
    // folder or user id is never 0) so that a server or shared entry is unique too.
    sql: `
CREATE TABLE metadata (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  folder_id INTEGER REFERENCES folders(id) ON DELETE CASCADE,
  user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
  entry TEXT NOT NULL,
  value BLOB NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX metadata_key ON metadata(coalesce(folder_id, 0), coalesce(user_id, 0), entry);
CREATE INDEX metadata_folder ON metadata(folder_id);
CREATE INDEX metadata_user ON metadata(user_id);
`,
  },
  {
    version: 25,
    name: 'usage counters per folder (messages, bytes), kept by triggers on messages',
    // Issue 15: the quota check of every APPEND (RFC 9208 §5.1) summed the sizes of the whole
    // mailbox (8–18 ms at 100,000 messages). Each folder now carries its count and bytes, kept in
    // the transaction of every insert, delete or move of a message row whatever the code path
    // (append, delivery, copy, move, expunge, deletion of a folder or a mailbox); mailboxUsage sums
    // the folders of the mailbox. Initialised from the rows in this migration's own transaction:
    // a crash before its commit leaves neither columns nor triggers, and the migration runs again.
    sql: `
ALTER TABLE folders ADD COLUMN usage_messages INTEGER NOT NULL DEFAULT 0;
ALTER TABLE folders ADD COLUMN usage_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE folders SET
  usage_messages = (SELECT COUNT(*) FROM messages m WHERE m.folder_id = folders.id),
  usage_bytes = (SELECT COALESCE(SUM(m.size), 0) FROM messages m WHERE m.folder_id = folders.id);
CREATE TRIGGER messages_usage_added AFTER INSERT ON messages
BEGIN
  UPDATE folders SET usage_messages = usage_messages + 1, usage_bytes = usage_bytes + NEW.size WHERE id = NEW.folder_id;
END;
CREATE TRIGGER messages_usage_removed AFTER DELETE ON messages
BEGIN
  UPDATE folders SET usage_messages = usage_messages - 1, usage_bytes = usage_bytes - OLD.size WHERE id = OLD.folder_id;
END;
CREATE TRIGGER messages_usage_moved AFTER UPDATE OF folder_id, size ON messages
  WHEN NEW.folder_id IS NOT OLD.folder_id OR NEW.size IS NOT OLD.size
BEGIN
  UPDATE folders SET usage_messages = usage_messages - 1, usage_bytes = usage_bytes - OLD.size WHERE id = OLD.folder_id;
  UPDATE folders SET usage_messages = usage_messages + 1, usage_bytes = usage_bytes + NEW.size WHERE id = NEW.folder_id;
END;
`,
  },
  {
    version: 26,
    name: 'header search index recomputed: fields mixing UTF-8 and latin1 bytes (binToTextMixed)',
    // Issue 15 (8-bit headers): the values SEARCH compares now read the UTF-8 sequences of a field
    // that also holds latin1 bytes as UTF-8 (mime/text.ts binToTextMixed), where the whole field
    // was read as latin1. The rows hold the old values, and messages.header_indexed tracks version
    // 1 only (migration 17), so the rows are dropped rather than given a version 2: every message
    // is then "unindexed" (SEARCH reads it, as before migration 17) until the header backfill
    // (mail/message-index.ts startHeaderBackfill, in chunks, the event loop free between them)
    // records its file's row again, with the current values. Plaintext and sealed rows alike.
    sql: `
DELETE FROM search_headers;
UPDATE messages SET header_indexed = 0 WHERE header_indexed = 1;
`,
  },
];
