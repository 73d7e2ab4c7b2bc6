// Folder helpers shared by the PostgreSQL parts that create folders inside their own transaction:
// mailboxes.ts (the default folders of a new mailbox), folders.ts (CREATE) and delivery.ts
// (filing into a folder created on demand).
import type { PgClient } from './connection.js';

/**
 * The next UIDVALIDITY of a mailbox, recorded in the same statement (the mailbox row's lock
 * serializes two nodes creating folders at once). A recreated name must get a new UIDVALIDITY
 * (RFC 9051 §2.3.1.1): the mailbox remembers the last one it issued, so none is ever reused, even
 * for a folder deleted meanwhile. 32-bit, as SQLite's insertFolder (`>>> 0`).
 */
export async function nextUidValidity(c: PgClient, mailboxId: number): Promise<number> {
  const r = await c.query<{ v: number }>(
    'UPDATE mailboxes SET last_uid_validity = GREATEST($2::bigint, last_uid_validity + 1) % 4294967296 WHERE id = $1 RETURNING last_uid_validity v',
    [mailboxId, Math.floor(Date.now() / 1000)],
  );
  if (!r.rows.length) throw new Error(`mailbox #${mailboxId} not found: cannot create a folder in it`);
  return r.rows[0].v;
}

/**
 * Inserts a folder inside the caller's transaction (as SQLite's insertFolder): returns the raw
 * folders row (rowFolder, ../rows.ts, turns it into a Folder). A name that exists already is a
 * unique violation (StoreConflictError once tx() rethrows it).
 */
export async function insertFolder(c: PgClient, mailboxId: number, name: string, specialUse: string | null): Promise<any> {
  const uidValidity = await nextUidValidity(c, mailboxId);
  const r = await c.query('INSERT INTO folders (mailbox_id, name, special_use, uid_validity) VALUES ($1, $2, $3, $4) RETURNING *', [mailboxId, name, specialUse, uidValidity]);
  return r.rows[0];
}
