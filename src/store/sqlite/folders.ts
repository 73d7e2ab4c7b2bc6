// Folders and their messages (FolderStore) in SQLite: UIDs, flags, MODSEQ, expunge, copy and move.
import type { AppendedMessage, FlagUpdate, FolderMessage, FolderStatus, FolderStore } from '../types.js';
import type Database from 'better-sqlite3';
import { SqlitePart, wrapUnique } from './connection.js';
import { rowFolder, rowFolderMessage, rowMessage, splitFlags } from '../rows.js';
import { nextFlags, normaliseFlags } from '../flags.js';
import { checkSearchColumns, writeAnalysis } from './blob-meta.js';

/** Inserts a folder inside the caller's transaction (also used by delivery, which files into folders created on demand). */
export function insertFolder(db: Database.Database, mailboxId: number, name: string, specialUse: string | null): unknown {
  // A recreated name must get a new UIDVALIDITY (RFC 9051 §2.3.1.1): the mailbox remembers
  // the last one it issued, so none is ever reused, even for a folder deleted meanwhile.
  const prev: any = db.prepare('SELECT last_uid_validity v FROM mailboxes WHERE id = ?').get(mailboxId);
  const uidValidity = Math.max(Math.floor(Date.now() / 1000), (prev?.v ?? 0) + 1) >>> 0;
  db.prepare('UPDATE mailboxes SET last_uid_validity = ? WHERE id = ?').run(uidValidity, mailboxId);
  return db.prepare('INSERT INTO folders (mailbox_id, name, special_use, uid_validity) VALUES (?, ?, ?, ?) RETURNING *').get(mailboxId, name, specialUse, uidValidity);
}

export class SqliteFolders extends SqlitePart implements FolderStore {
  async getFolder(mailboxId: number, name: string) {
    return this.one('SELECT * FROM folders WHERE mailbox_id = ? AND name = ?', rowFolder, mailboxId, name);
  }
  async listFolders(mailboxId: number) {
    return this.q('SELECT * FROM folders WHERE mailbox_id = ? ORDER BY id').all(mailboxId).map(rowFolder);
  }
  async listMessages(folderId: number) {
    return this.q('SELECT * FROM messages WHERE folder_id = ? ORDER BY uid').all(folderId).map(rowMessage);
  }

  async getMessage(id: number) {
    return this.one('SELECT * FROM messages WHERE id = ?', rowMessage, id);
  }

  async pageMessages(folderId: number, o: { by: 'internalDate' | 'size'; desc: boolean; after?: { key: string | number; id: number } | null; limit: number }) {
    const col = o.by === 'size' ? 'size' : 'internal_date';
    const dir = o.desc ? 'DESC' : 'ASC';
    const cmp = o.desc ? '<' : '>';
    const rows = o.after
      ? this.q(`SELECT * FROM messages WHERE folder_id = ? AND (${col}, id) ${cmp} (?, ?) ORDER BY ${col} ${dir}, id ${dir} LIMIT ?`).all(folderId, o.after.key, o.after.id, o.limit)
      : this.q(`SELECT * FROM messages WHERE folder_id = ? ORDER BY ${col} ${dir}, id ${dir} LIMIT ?`).all(folderId, o.limit);
    const total = (this.q('SELECT COUNT(*) n FROM messages WHERE folder_id = ?').get(folderId) as { n: number }).n;
    return { messages: rows.map(rowMessage), total };
  }

  async getMessageByUid(folderId: number, uid: number) {
    return this.one('SELECT * FROM messages WHERE folder_id = ? AND uid = ?', rowMessage, folderId, uid);
  }

  /** Bumps and returns the folder's HIGHESTMODSEQ (RFC 7162 §3.1.1: strictly increasing). */
  #bumpModseq(folderId: number): number {
    const r: any = this.q('UPDATE folders SET highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING highest_modseq').get(folderId);
    if (!r) throw new Error(`folder #${folderId} not found`);
    return r.highest_modseq;
  }

  async createFolder(mailboxId: number, name: string, specialUse: string | null = null) {
    return wrapUnique(`folder ${name}`, () => this.db.transaction(() => rowFolder(insertFolder(this.db, mailboxId, name, specialUse)))());
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
    return this.one('SELECT * FROM folders WHERE id = ?', rowFolder, folderId);
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
      // raw(false): openFolder runs the same cached statement in raw mode (the mode sticks to the
      // statement), so each caller sets the mode it reads.
      const rows = this.q('SELECT uid, flags, modseq, size, internal_date, blob_id, recent FROM messages WHERE folder_id = ? ORDER BY uid').raw(false).all(folderId).map(rowFolderMessage);
      if (opts.clearRecent && rows.some((r) => r.recent)) this.q('UPDATE messages SET recent = 0 WHERE folder_id = ? AND recent = 1').run(folderId);
      return rows;
    })();
  }

  async countMessagesUpTo(folderId: number, uid: number) {
    return (this.q('SELECT COUNT(*) n FROM messages WHERE folder_id = ? AND uid <= ?').get(folderId, uid) as { n: number }).n;
  }

  async folderUids(folderId: number) {
    return this.q('SELECT uid FROM messages WHERE folder_id = ? ORDER BY uid').pluck(true).all(folderId) as number[];
  }

  async openFolder(folderId: number, opts: { clearRecent?: boolean } = {}) {
    // Issue 15 (big folders): one transaction, the view's columns only, rows read as arrays (no
    // intermediate objects) and the folder's counters from its own row (no aggregate over messages).
    return this.db.transaction(() => {
      const f = this.q('SELECT uid_next, highest_modseq FROM folders WHERE id = ?').get(folderId) as { uid_next: number; highest_modseq: number } | undefined;
      if (!f) throw new Error(`folder #${folderId} not found`);
      const rows = this.q('SELECT uid, flags, modseq, size, internal_date, blob_id, recent FROM messages WHERE folder_id = ? ORDER BY uid').raw(true).all(folderId) as [number, string, number, number, string, string, number][];
      const messages: FolderMessage[] = new Array(rows.length);
      // Messages with the same flags share one array (a folder has few distinct flag sets): the
      // view replaces a message's array on a change, never edits it in place.
      const flagLists = new Map<string, string[]>();
      let recent = false;
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i];
        if (r[6]) recent = true;
        let flags = flagLists.get(r[1] ?? '');
        if (flags === undefined) flagLists.set(r[1] ?? '', (flags = r[1] ? r[1].split(' ') : []));
        messages[i] = { uid: r[0], flags, modseq: r[2], size: r[3], internalDate: r[4], blobId: r[5], recent: !!r[6] };
      }
      if (opts.clearRecent && recent) this.q('UPDATE messages SET recent = 0 WHERE folder_id = ? AND recent = 1').run(folderId);
      let recentFrom = f.uid_next;
      if (!opts.clearRecent) for (const m of messages) if (m.recent) { recentFrom = m.uid; break; }
      return { messages, uidNext: f.uid_next, highestModseq: f.highest_modseq, recentFrom };
    })();
  }

  async reopenFolder(folderId: number, since: { modseq: number; recentFrom: number }, opts: { clearRecent?: boolean } = {}) {
    // Issue 15: what changed since a snapshot of the folder, in one transaction. Every row with a
    // UID below `since.recentFrom` has \Recent cleared, so the \Recent rows are found through the
    // (folder_id, uid) index, not by reading the folder.
    return this.db.transaction(() => {
      const f = this.q('SELECT uid_next, highest_modseq FROM folders WHERE id = ?').get(folderId) as { uid_next: number; highest_modseq: number } | undefined;
      if (!f) throw new Error(`folder #${folderId} not found`);
      const changed = f.highest_modseq > since.modseq ? (this.q('SELECT uid, flags, modseq, size, internal_date, blob_id, recent FROM messages WHERE folder_id = ? AND modseq > ? ORDER BY uid /* reopen */').raw(false).all(folderId, since.modseq).map(rowFolderMessage)) : [];
      const expunged = f.highest_modseq > since.modseq ? (this.q('SELECT uid AS gone FROM expunged WHERE folder_id = ? AND modseq > ? ORDER BY uid').pluck(true).all(folderId, since.modseq) as number[]) : [];
      const recentUids = this.q('SELECT uid AS recent_uid FROM messages WHERE folder_id = ? AND uid >= ? AND recent = 1 ORDER BY uid').pluck(true).all(folderId, since.recentFrom) as number[];
      if (opts.clearRecent && recentUids.length) this.q('UPDATE messages SET recent = 0 WHERE folder_id = ? AND uid >= ? AND recent = 1').run(folderId, since.recentFrom);
      const recentFrom = opts.clearRecent || recentUids.length === 0 ? f.uid_next : recentUids[0];
      return { uidNext: f.uid_next, highestModseq: f.highest_modseq, changed, expunged, recentUids, recentFrom };
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

  async appendMessages(folderId: number, ms: AppendedMessage[]) {
    const rows = ms.map((m) => [m.blobId, m.size, m.internalDate.toISOString(), normaliseFlags(m.flags).join(' ')] as const);
    for (const m of ms) if (m.analysis) checkSearchColumns(m.analysis.searchHeaders.columns);
    return this.db.transaction(() => {
      // The analyses first (issue 15: in the messages' own commit): the rows inserted below find
      // their header search row (the trigger of migration 17 marks them indexed).
      for (const m of ms) if (m.analysis) writeAnalysis(this.connection, m.blobId, m.analysis);
      // The puts' pins end with this commit, which references their files (store/message-files.ts, P5).
      const unpin = this.q('DELETE FROM blob_pins WHERE blob_id = ? AND token = ?');
      for (const m of ms) if (m.pin) unpin.run(m.pin.blobId, m.pin.token);
      const f = this.q('UPDATE folders SET uid_next = uid_next + ?, highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING uid_next - ? AS first, highest_modseq').get(rows.length, folderId, rows.length) as
        | { first: number; highest_modseq: number }
        | undefined;
      if (!f) throw new Error(`folder #${folderId} not found`);
      const ins = this.q('INSERT INTO messages (folder_id, uid, blob_id, size, internal_date, flags, modseq) VALUES (?, ?, ?, ?, ?, ?, ?)');
      rows.forEach((r, i) => ins.run(folderId, f.first + i, r[0], r[1], r[2], r[3], f.highest_modseq));
      return { uids: rows.map((_, i) => f.first + i), modseq: f.highest_modseq };
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
        const cur = splitFlags(r.flags);
        const next = nextFlags(cur, op, wanted);
        if (!next) {
          // Unchanged: still reported to the client, with its current modseq (RFC 7162 §3.2).
          updated.push({ uid, flags: cur, modseq: r.modseq });
          continue;
        }
        if (!modseq) modseq = this.#bumpModseq(folderId);
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
      const modseq = this.#bumpModseq(folderId);
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
      const ins = this.q('INSERT INTO messages (folder_id, uid, blob_id, size, internal_date, flags, modseq, recent, return_path) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)');
      const map: { from: number; to: number }[] = [];
      const rows = uids.map((u) => get.get(fromFolderId, u) as any).filter(Boolean);
      if (rows.length === 0) return map;
      const dst: any = this.db
        .prepare('UPDATE folders SET uid_next = uid_next + ?, highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING uid_next - ? AS first, highest_modseq')
        .get(rows.length, toFolderId, rows.length);
      rows.forEach((r, i) => {
        ins.run(toFolderId, dst.first + i, r.blob_id, r.size, r.internal_date, r.flags, dst.highest_modseq, r.return_path ?? null); // the copy keeps its envelope sender (docs/receipts.md)
        map.push({ from: r.uid, to: dst.first + i });
      });
      if (move) {
        // RFC 6851 §3.3: the source messages are expunged as part of the same operation.
        const modseq = this.#bumpModseq(fromFolderId);
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
    // Issue 15: the folders' counters (migration 25, kept by triggers on messages), not a sum over every message.
    const r: any = this.q('SELECT COALESCE(SUM(usage_messages), 0) n, COALESCE(SUM(usage_bytes), 0) bytes FROM folders WHERE mailbox_id = ?').get(mailboxId);
    return { bytes: r.bytes as number, messages: r.n as number };
  }
}
