// Folders and their messages (FolderStore) in PostgreSQL: UIDs, flags, MODSEQ, expunge, copy and
// move. Same semantics as sqlite/folders.ts, statement for statement, with what several nodes on
// one database need on top:
// - UIDs and modseqs come from `UPDATE folders SET uid_next = uid_next + 1, highest_modseq =
//   highest_modseq + 1 … RETURNING` inside the transaction: the folder's row lock serializes the
//   writers of one folder until they commit, so UIDs are consecutive and modseqs commit in order
//   (RFC 7162 §3.1.1: a session that has seen modseq N never misses a change ≤ N committed later).
// - Locks are taken folder rows first (in id order), then message rows (docs/postgres-store.md): a
//   read-modify-write of flags (STORE, an MDN's keyword), EXPUNGE and MOVE lock their folders
//   before they read, so two sessions storing flags at once do not lose each other's change and
//   no two transactions wait for each other in opposite orders.
// - \Recent is claimed by an `UPDATE … WHERE recent = 1 RETURNING` (RFC 3501 §2.3.2: one session
//   only sees a message as recent), and what a SELECT reads comes from one statement (one snapshot).
import type { AppendedMessage, FlagUpdate, FolderMessage, FolderStatus, FolderStore } from '../types.js';
import { writeAnalyses } from './blob-meta.js';
import { dropPins } from './blob-pins.js';
import type pg from 'pg';
import { nextFlags, normaliseFlags } from '../flags.js';
import { PgPart, StoreConflictError, type PgClient } from './connection.js';
import { insertFolder } from './folders-shared.js';
import { checkStorableName, hasNul } from './text.js';
import { rowFolder, rowFolderMessage, rowMessage, splitFlags } from '../rows.js';

/** A unique violation named as SQLite's wrapUnique names it (`folder X already exists`). */
async function named<T>(what: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof StoreConflictError) throw Object.assign(new StoreConflictError(`${what} already exists`), { cause: e });
    throw e;
  }
}

/** A flag test on messages.flags (space-separated): case-insensitive like SQLite's LIKE (RFC 9051 §2.3.2: flags compare without case). */
const hasFlag = (flag: string) => `strpos(lower(' ' || flags || ' '), ' ${flag.toLowerCase()} ') > 0`;
const SEEN = hasFlag('\\Seen');
const DELETED = hasFlag('\\Deleted');

/**
 * Locks folder rows (in id order, the lock the modseq bump takes) inside the caller's transaction,
 * before any message row: what is read next is read after the folder's other writers committed.
 */
export async function lockFolders(c: PgClient, folderIds: number[]): Promise<void> {
  await c.query('SELECT id FROM folders WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE', [folderIds]);
}

/** Bumps and returns the folder's HIGHESTMODSEQ (RFC 7162 §3.1.1: strictly increasing), inside the caller's transaction. */
async function bumpModseq(c: PgClient, folderId: number): Promise<number> {
  const r = await c.query('UPDATE folders SET highest_modseq = highest_modseq + 1 WHERE id = $1 RETURNING highest_modseq', [folderId]);
  if (!r.rows[0]) throw new Error(`folder #${folderId} not found`);
  return r.rows[0].highest_modseq;
}

/** Records expunged UIDs with the modseq of their removal (RFC 7162 §3.2.10 VANISHED, QRESYNC). */
async function recordExpunged(c: PgClient, folderId: number, uids: number[], modseq: number): Promise<void> {
  await c.query(
    `INSERT INTO expunged (folder_id, uid, modseq) SELECT $1, u, $3 FROM unnest($2::bigint[]) u
     ON CONFLICT (folder_id, uid) DO UPDATE SET modseq = EXCLUDED.modseq`,
    [folderId, [...new Set(uids)], modseq], // once each: ON CONFLICT cannot update a row twice in one statement
  );
}

const VIEW_COLUMNS = 'uid, flags, modseq, size, internal_date, blob_id, recent';

export class PgFolders extends PgPart implements FolderStore {
  async getFolder(mailboxId: number, name: string) {
    if (hasNul(name)) return undefined; // no stored name has one (text.ts)
    return this.one('SELECT * FROM folders WHERE mailbox_id = $1 AND name = $2', rowFolder, mailboxId, name);
  }
  async listFolders(mailboxId: number) {
    return (await this.query('SELECT * FROM folders WHERE mailbox_id = $1 ORDER BY id', [mailboxId])).map(rowFolder);
  }
  async listMessages(folderId: number) {
    return (await this.query('SELECT * FROM messages WHERE folder_id = $1 ORDER BY uid', [folderId])).map(rowMessage);
  }

  async getMessage(id: number) {
    return this.one('SELECT * FROM messages WHERE id = $1', rowMessage, id);
  }

  async pageMessages(folderId: number, o: { by: 'internalDate' | 'size'; desc: boolean; after?: { key: string | number; id: number } | null; limit: number }) {
    const col = o.by === 'size' ? 'size' : 'internal_date';
    const dir = o.desc ? 'DESC' : 'ASC';
    const cmp = o.desc ? '<' : '>';
    // One statement (one snapshot): the page and the folder's count agree.
    const rows = o.after
      ? await this.query(
          `SELECT m.*, (SELECT COUNT(*) FROM messages WHERE folder_id = $1) AS total FROM messages m WHERE m.folder_id = $1 AND (m.${col}, m.id) ${cmp} ($2, $3) ORDER BY m.${col} ${dir}, m.id ${dir} LIMIT $4`,
          [folderId, o.after.key, o.after.id, o.limit],
        )
      : await this.query(`SELECT m.*, (SELECT COUNT(*) FROM messages WHERE folder_id = $1) AS total FROM messages m WHERE m.folder_id = $1 ORDER BY m.${col} ${dir}, m.id ${dir} LIMIT $2`, [folderId, o.limit]);
    const total = rows.length ? (rows[0].total as number) : ((await this.query('SELECT COUNT(*) AS n FROM messages WHERE folder_id = $1', [folderId]))[0].n as number);
    return { messages: rows.map(rowMessage), total };
  }

  async getMessageByUid(folderId: number, uid: number) {
    return this.one('SELECT * FROM messages WHERE folder_id = $1 AND uid = $2', rowMessage, folderId, uid);
  }

  async createFolder(mailboxId: number, name: string, specialUse: string | null = null) {
    checkStorableName('folder name', name);
    return named(`folder ${name}`, this.tx(async (c) => rowFolder(await insertFolder(c, mailboxId, name, specialUse))));
  }

  async deleteFolder(folderId: number) {
    await this.tx(async (c) => {
      // The folder row first (the lock its deletion needs), then its messages: the lock order of every writer.
      await c.query('SELECT id FROM folders WHERE id = $1 FOR UPDATE', [folderId]);
      await c.query('DELETE FROM messages WHERE folder_id = $1', [folderId]);
      await c.query('DELETE FROM expunged WHERE folder_id = $1', [folderId]);
      await c.query('DELETE FROM folders WHERE id = $1', [folderId]);
    });
  }

  async renameFolder(mailboxId: number, from: string, to: string, delimiter: string) {
    if (hasNul(from)) return; // no such folder (text.ts)
    checkStorableName('folder name', to);
    await named(`folder ${to}`, this.tx(async (c) => {
      // One statement renames the folder and its descendants (names compared and cut in characters).
      await c.query(
        'UPDATE folders SET name = $3 || substr(name, char_length($2) + 1) WHERE mailbox_id = $1 AND (name = $2 OR starts_with(name, $2 || $4))',
        [mailboxId, from, to, delimiter],
      );
    }));
  }

  async getFolderById(folderId: number) {
    return this.one('SELECT * FROM folders WHERE id = $1', rowFolder, folderId);
  }

  async listSubscriptions(mailboxId: number) {
    return (await this.query('SELECT name FROM subscriptions WHERE mailbox_id = $1 ORDER BY name', [mailboxId])).map((r) => r.name as string);
  }

  async setSubscribed(mailboxId: number, name: string, subscribed: boolean) {
    if (hasNul(name)) {
      if (subscribed) checkStorableName('subscribed name', name);
      return; // not subscribed (text.ts)
    }
    if (subscribed) await this.query('INSERT INTO subscriptions (mailbox_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING', [mailboxId, name]);
    else await this.query('DELETE FROM subscriptions WHERE mailbox_id = $1 AND name = $2', [mailboxId, name]);
  }

  async folderModseq(folderId: number) {
    const r = (await this.query('SELECT highest_modseq FROM folders WHERE id = $1', [folderId]))[0];
    if (!r) throw new Error(`folder #${folderId} not found`);
    return r.highest_modseq as number;
  }

  async folderStatus(folderId: number): Promise<FolderStatus> {
    // One statement, one snapshot: the counts, UIDNEXT and HIGHESTMODSEQ describe the same state
    // even while other nodes append (RFC 9051 §6.3.11 STATUS).
    const r = (
      await this.query(
        `SELECT f.uid_next, f.uid_validity, f.highest_modseq, c.n, c.size, c.recent, c.unseen, c.deleted,
                CASE WHEN c.unseen > 0 THEN (SELECT COUNT(*) FROM messages m2 WHERE m2.folder_id = f.id AND m2.uid <= c.first_unseen) END AS first_unseen_seq
         FROM folders f CROSS JOIN LATERAL (
           SELECT COUNT(*) AS n, COALESCE(SUM(size), 0)::bigint AS size, COALESCE(SUM(recent), 0)::bigint AS recent,
                  COUNT(*) FILTER (WHERE NOT ${SEEN}) AS unseen, COUNT(*) FILTER (WHERE ${DELETED}) AS deleted,
                  MIN(uid) FILTER (WHERE NOT ${SEEN}) AS first_unseen
           FROM messages WHERE folder_id = f.id) c
         WHERE f.id = $1`,
        [folderId],
      )
    )[0];
    if (!r) throw new Error(`folder #${folderId} not found`);
    return {
      messages: r.n,
      recent: r.recent,
      unseen: r.unseen,
      deleted: r.deleted,
      size: r.size,
      uidNext: r.uid_next,
      uidValidity: r.uid_validity,
      highestModseq: r.highest_modseq,
      firstUnseenSeq: r.first_unseen_seq ?? null,
    };
  }

  /**
   * Claims \Recent on every message of the folder that has it (inside the caller's transaction):
   * the UIDs this session is the first to see (RFC 3501 §2.3.2). Concurrent claimers wait on the
   * rows and re-check `recent = 1`, so each message is claimed once.
   */
  async #claimAllRecent(c: PgClient, folderId: number): Promise<Set<number>> {
    const r = await c.query('UPDATE messages SET recent = 0 WHERE folder_id = $1 AND recent = 1 RETURNING uid', [folderId]);
    return new Set(r.rows.map((x) => x.uid as number));
  }

  async folderMessages(folderId: number, opts: { clearRecent?: boolean } = {}) {
    if (!opts.clearRecent) return (await this.query(`SELECT ${VIEW_COLUMNS} FROM messages WHERE folder_id = $1 ORDER BY uid`, [folderId])).map(rowFolderMessage);
    return this.tx(async (c) => {
      const claimed = await this.#claimAllRecent(c, folderId);
      const rows = (await c.query(`SELECT ${VIEW_COLUMNS} FROM messages WHERE folder_id = $1 ORDER BY uid`, [folderId])).rows.map(rowFolderMessage);
      for (const m of rows) m.recent = claimed.has(m.uid);
      return rows;
    });
  }

  async countMessagesUpTo(folderId: number, uid: number) {
    return (await this.query('SELECT COUNT(*) AS n FROM messages WHERE folder_id = $1 AND uid <= $2', [folderId, uid]))[0].n as number;
  }

  async folderUids(folderId: number) {
    return (await this.query('SELECT uid FROM messages WHERE folder_id = $1 ORDER BY uid', [folderId])).map((r) => r.uid as number);
  }

  async openFolder(folderId: number, opts: { clearRecent?: boolean } = {}) {
    // The folder's counters and its messages from one statement (one snapshot: no message with a
    // UID ≥ the UIDNEXT read, whatever other nodes commit meanwhile). Rows as arrays, messages with
    // the same flags sharing one array (issue 15, as sqlite/folders.ts).
    // `c` is the pool or the transaction's pg client, both of which take a query config (rowMode).
    const read = async (c: pg.Pool | PgClient, claimed: Set<number> | undefined) => {
      const r = await (c as pg.Pool).query({
        text: `SELECT f.uid_next, f.highest_modseq, m.uid, m.flags, m.modseq, m.size, m.internal_date, m.blob_id, m.recent
               FROM folders f LEFT JOIN messages m ON m.folder_id = f.id WHERE f.id = $1 ORDER BY m.uid`,
        values: [folderId],
        rowMode: 'array',
      });
      const rows = r.rows as [number, number, number | null, string, number, number, string, string, number][];
      if (rows.length === 0) throw new Error(`folder #${folderId} not found`);
      const uidNext = rows[0][0];
      const highestModseq = rows[0][1];
      const flagLists = new Map<string, string[]>();
      const messages: FolderMessage[] = [];
      // Every row below recentFrom has \Recent cleared in the store (reopenFolder's starting point).
      let recentFrom = uidNext;
      for (const x of rows) {
        if (x[2] === null) continue; // the LEFT JOIN's row of an empty folder
        let flags = flagLists.get(x[3] ?? '');
        if (flags === undefined) flagLists.set(x[3] ?? '', (flags = x[3] ? x[3].split(' ') : []));
        if (x[8] && x[2] < recentFrom) recentFrom = x[2];
        messages.push({ uid: x[2], flags, modseq: x[4], size: x[5], internalDate: x[6], blobId: x[7], recent: claimed ? claimed.has(x[2]) : !!x[8] });
      }
      return { messages, uidNext, highestModseq, recentFrom };
    };
    if (!opts.clearRecent) return read(this.connection.pool, undefined);
    return this.tx(async (c) => read(c, await this.#claimAllRecent(c, folderId)));
  }

  async reopenFolder(folderId: number, since: { modseq: number; recentFrom: number }, opts: { clearRecent?: boolean } = {}) {
    // Issue 15: what changed since a snapshot of the folder. The \Recent claim first (rows below
    // since.recentFrom have it cleared: the unique (folder_id, uid) index finds the others), then
    // the folder's counters, the changed rows, the expunged UIDs and the \Recent rows left, from
    // one statement (one snapshot, as openFolder).
    const read = async (c: pg.Pool | PgClient, claimed: number[] | undefined) => {
      const r = await (c as pg.Pool).query({
        text: `SELECT 0 AS k, uid_next AS uid, highest_modseq AS modseq, NULL AS flags, NULL::bigint AS size, NULL AS internal_date, NULL AS blob_id, NULL::integer AS recent FROM folders WHERE id = $1
               UNION ALL SELECT 1, uid, modseq, flags, size, internal_date, blob_id, recent FROM messages WHERE folder_id = $1 AND modseq > $2
               UNION ALL SELECT 2, uid, modseq, NULL, NULL, NULL, NULL, NULL FROM expunged WHERE folder_id = $1 AND modseq > $2
               UNION ALL SELECT 3, uid, modseq, NULL, NULL, NULL, NULL, NULL FROM messages WHERE folder_id = $1 AND uid >= $3 AND recent = 1
               ORDER BY 1, 2`,
        values: [folderId, since.modseq, since.recentFrom],
        rowMode: 'array',
      });
      const rows = r.rows as [number, number, number, string | null, number | null, string | null, string | null, number | null][];
      if (rows.length === 0 || rows[0][0] !== 0) throw new Error(`folder #${folderId} not found`);
      const [, uidNext, highestModseq] = rows[0];
      const changed: FolderMessage[] = [];
      const expunged: number[] = [];
      const left: number[] = [];
      const claimedSet = claimed && new Set(claimed);
      for (const x of rows) {
        if (x[0] === 1) changed.push({ uid: x[1], flags: splitFlags(x[3]), modseq: x[2], size: x[4]!, internalDate: x[5]!, blobId: x[6]!, recent: claimedSet ? claimedSet.has(x[1]) : !!x[7] });
        else if (x[0] === 2) expunged.push(x[1]);
        else if (x[0] === 3) left.push(x[1]);
      }
      return { uidNext, highestModseq, changed, expunged, recentUids: claimed ?? left, recentFrom: left.length ? left[0] : uidNext };
    };
    if (!opts.clearRecent) return read(this.connection.pool, undefined);
    return this.tx(async (c) => {
      const claimed = await c.query('UPDATE messages SET recent = 0 WHERE folder_id = $1 AND uid >= $2 AND recent = 1 RETURNING uid', [folderId, since.recentFrom]);
      return read(c, claimed.rows.map((x) => x.uid as number).sort((a, b) => a - b));
    });
  }

  async claimRecent(folderId: number, uids: number[]) {
    if (uids.length === 0) return [];
    const r = await this.query('UPDATE messages SET recent = 0 WHERE folder_id = $1 AND uid = ANY($2::bigint[]) AND recent = 1 RETURNING uid', [folderId, uids]);
    const claimed = new Set(r.map((x) => x.uid as number));
    return uids.filter((u) => claimed.delete(u)); // in the order asked, once each
  }

  async changedSince(folderId: number, modseq: number) {
    return (await this.query(`SELECT ${VIEW_COLUMNS} FROM messages WHERE folder_id = $1 AND modseq > $2 ORDER BY uid`, [folderId, modseq])).map(rowFolderMessage);
  }

  async expungedSince(folderId: number, modseq: number) {
    return (await this.query('SELECT uid FROM expunged WHERE folder_id = $1 AND modseq > $2 ORDER BY uid', [folderId, modseq])).map((r) => r.uid as number);
  }

  async appendMessage(folderId: number, m: { blobId: string; size: number; flags: string[]; internalDate: Date }) {
    for (const f of m.flags) checkStorableName('flag', f);
    return this.tx(async (c) => {
      // One statement: the UID and modseq taken under the folder's row lock, the message inserted with them.
      const r = await c.query(
        `WITH f AS (UPDATE folders SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1 WHERE id = $1 RETURNING id, uid_next - 1 AS uid, highest_modseq)
         INSERT INTO messages (folder_id, uid, blob_id, size, internal_date, flags, modseq) SELECT f.id, f.uid, $2, $3, $4, $5, f.highest_modseq FROM f
         RETURNING uid, modseq`,
        [folderId, m.blobId, m.size, m.internalDate.toISOString(), normaliseFlags(m.flags).join(' ')],
      );
      if (!r.rows[0]) throw new Error(`folder #${folderId} not found`);
      return { uid: r.rows[0].uid as number, modseq: r.rows[0].modseq as number };
    });
  }

  async appendMessages(folderId: number, ms: AppendedMessage[]) {
    for (const m of ms) for (const f of m.flags) checkStorableName('flag', f);
    return this.tx(async (c) => {
      // The analyses first (issue 15: in the messages' own commit): the rows inserted below find
      // their header search row (messages_header_indexed).
      await writeAnalyses(c, this.connection.sealer, ms.flatMap((m) => (m.analysis ? [{ blobId: m.blobId, analysis: m.analysis }] : [])));
      // The puts' pins end with this commit, which references their files (store/message-files.ts, P5).
      await dropPins(c, ms.flatMap((m) => (m.pin ? [m.pin] : [])));
      // The UIDs and the modseq taken under the folder's row lock, the rows inserted with them.
      const f = await c.query('UPDATE folders SET uid_next = uid_next + $2, highest_modseq = highest_modseq + 1 WHERE id = $1 RETURNING uid_next - $2 AS first, highest_modseq', [folderId, ms.length]);
      if (!f.rows[0]) throw new Error(`folder #${folderId} not found`);
      const first = f.rows[0].first as number;
      const modseq = f.rows[0].highest_modseq as number;
      const uids = ms.map((_, i) => first + i);
      await c.query(
        `INSERT INTO messages (folder_id, uid, blob_id, size, internal_date, flags, modseq)
         SELECT $1, x.uid, x.blob_id, x.size, x.internal_date, x.flags, $2 FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::text[]) AS x(uid, blob_id, size, internal_date, flags)`,
        [folderId, modseq, uids, ms.map((m) => m.blobId), ms.map((m) => m.size), ms.map((m) => m.internalDate.toISOString()), ms.map((m) => normaliseFlags(m.flags).join(' '))],
      );
      return { uids, modseq };
    });
  }

  async storeFlags(folderId: number, uids: number[], op: 'set' | 'add' | 'remove', flags: string[], unchangedSince?: number) {
    if (op === 'remove') flags = flags.filter((f) => !hasNul(f)); // no stored flag has one
    for (const f of flags) checkStorableName('flag', f);
    return this.tx(async (c) => {
      const updated: FlagUpdate[] = [];
      const modifiedUids: number[] = [];
      // The folder, then the rows, are locked before the rows are read: a concurrent STORE on another
      // node waits, then reads what this one wrote (no lost update), and UNCHANGEDSINCE compares
      // with the committed modseq.
      await lockFolders(c, [folderId]);
      const rows = new Map<number, { flags: string; modseq: number }>(
        (await c.query('SELECT uid, flags, modseq FROM messages WHERE folder_id = $1 AND uid = ANY($2::bigint[]) ORDER BY uid FOR UPDATE', [folderId, uids])).rows.map((r) => [r.uid, r]),
      );
      const wanted = normaliseFlags(flags);
      let modseq = 0;
      const changes: { uid: number; flags: string }[] = [];
      for (const uid of uids) {
        const r = rows.get(uid);
        if (!r) continue;
        // RFC 7162 §3.1.3: a message modified since UNCHANGEDSINCE is left as it is and reported.
        if (unchangedSince !== undefined && r.modseq > unchangedSince) {
          modifiedUids.push(uid);
          continue;
        }
        const cur = splitFlags(r.flags);
        const next = nextFlags(cur, op, wanted);
        if (!next) {
          // Unchanged: still reported to the client, with its current modseq (RFC 7162 §3.2).
          updated.push({ uid, flags: cur, modseq: r.modseq });
          continue;
        }
        if (!modseq) modseq = await bumpModseq(c, folderId);
        changes.push({ uid, flags: next.join(' ') });
        updated.push({ uid, flags: next, modseq });
        rows.set(uid, { flags: next.join(' '), modseq }); // a UID named twice sees its new flags, as in SQLite
      }
      if (changes.length)
        await c.query(
          'UPDATE messages m SET flags = x.flags, modseq = $2 FROM unnest($3::bigint[], $4::text[]) AS x(uid, flags) WHERE m.folder_id = $1 AND m.uid = x.uid',
          [folderId, modseq, changes.map((x) => x.uid), changes.map((x) => x.flags)],
        );
      return { updated, modifiedUids };
    });
  }

  async expunge(folderId: number, uids?: number[]) {
    return this.tx(async (c) => {
      // The folder locked first (held until commit: this expunge is ordered with the folder's other
      // writers), then the rows, then the modseq (taken only when something was removed).
      await lockFolders(c, [folderId]);
      const r = uids
        ? await c.query(`DELETE FROM messages WHERE folder_id = $1 AND ${DELETED} AND uid = ANY($2::bigint[]) RETURNING uid`, [folderId, uids])
        : await c.query(`DELETE FROM messages WHERE folder_id = $1 AND ${DELETED} RETURNING uid`, [folderId]);
      const gone = r.rows.map((x) => x.uid as number).sort((a, b) => a - b);
      if (gone.length === 0) return [];
      await recordExpunged(c, folderId, gone, await bumpModseq(c, folderId));
      return gone;
    });
  }

  async copyMessages(fromFolderId: number, uids: number[], toFolderId: number, move: boolean) {
    return this.tx(async (c) => {
      const map: { from: number; to: number }[] = [];
      // The folders first (a move: both, in id order), then a move's source rows: two sessions
      // moving the same message move it once (the second reads after the first committed).
      await lockFolders(c, move ? [fromFolderId, toFolderId] : [toFolderId]);
      const found = (
        await c.query(`SELECT uid, blob_id, size, internal_date, flags, return_path FROM messages WHERE folder_id = $1 AND uid = ANY($2::bigint[])${move ? ' FOR UPDATE' : ''}`, [fromFolderId, uids])
      ).rows;
      const byUid = new Map(found.map((r) => [r.uid as number, r]));
      const rows = uids.map((u) => byUid.get(u)).filter((r): r is NonNullable<typeof r> => !!r);
      if (rows.length === 0) return map;
      const dst = (
        await c.query('UPDATE folders SET uid_next = uid_next + $1, highest_modseq = highest_modseq + 1 WHERE id = $2 RETURNING uid_next - $1 AS first, highest_modseq', [rows.length, toFolderId])
      ).rows[0];
      if (!dst) throw new Error(`folder #${toFolderId} not found`);
      rows.forEach((r, i) => map.push({ from: r.uid, to: dst.first + i }));
      // The copy keeps its envelope sender (docs/receipts.md); RFC 9051 §6.4.7: flags copied, \Recent set.
      await c.query(
        `INSERT INTO messages (folder_id, uid, blob_id, size, internal_date, flags, modseq, recent, return_path)
         SELECT $1, x.uid, x.blob_id, x.size, x.internal_date, x.flags, $2, 1, x.return_path
         FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[]) WITH ORDINALITY AS x(uid, blob_id, size, internal_date, flags, return_path, n)
         ORDER BY x.n`,
        [toFolderId, dst.highest_modseq, map.map((m) => m.to), rows.map((r) => r.blob_id), rows.map((r) => r.size), rows.map((r) => r.internal_date), rows.map((r) => r.flags), rows.map((r) => r.return_path ?? null)],
      );
      if (move) {
        // RFC 6851 §3.3: the source messages are expunged as part of the same operation.
        const modseq = await bumpModseq(c, fromFolderId);
        const moved = rows.map((r) => r.uid as number);
        await c.query('DELETE FROM messages WHERE folder_id = $1 AND uid = ANY($2::bigint[])', [fromFolderId, moved]);
        await recordExpunged(c, fromFolderId, moved, modseq);
      }
      return map;
    });
  }

  async mailboxUsage(mailboxId: number) {
    // Issue 15: the folders' counters (migration 8, kept by triggers on messages), not a sum over every message.
    const r = (await this.query('SELECT COALESCE(SUM(usage_messages), 0)::bigint AS n, COALESCE(SUM(usage_bytes), 0)::bigint AS bytes FROM folders WHERE mailbox_id = $1', [mailboxId]))[0];
    return { bytes: r.bytes as number, messages: r.n as number };
  }
}
