// Big folders (issue 15: SELECT ≤ 100 ms at 100,000 messages): the process keeps, per big folder,
// the message list a SELECT read last (a snapshot at the folder's HIGHESTMODSEQ then) and brings
// it up to date at the next SELECT from the store's changes since that modseq (every change bumps
// it, RFC 7162 §3.1.1: new and changed rows by their modseq, expunges from the expunged table),
// instead of reading every row again. The snapshot is only a cache of the store: it is checked
// against the store at every SELECT (one transaction, store.reopenFolder), so changes made by other
// processes or nodes are seen as by openFolder.
//
// Messages are shared between the snapshot and the views built from it and never edited in place
// (FolderView replaces a message whose flags change). Snapshot messages carry `recent: false`;
// \Recent is per session (RFC 3501 §2.3.2) and comes from the store at each SELECT: every row
// below the snapshot's `recentFrom` has it cleared, so the store finds the others by UID range.
import type { FolderMessage, Store } from '../store/types.js';

/** Folders smaller than this are read whole at each SELECT (fast enough; no memory kept). */
export const SNAPSHOT_MIN_MESSAGES = 2000;
/** Messages kept in all snapshots of the process at most (≈ 200 bytes each); least recently selected folders go first. */
export const SNAPSHOT_MAX_MESSAGES = 500_000;

interface Snapshot {
  mailboxId: number;
  uidValidity: number;
  modseq: number;
  recentFrom: number;
  messages: readonly FolderMessage[];
}

export interface OpenedFolder {
  /** The session's own array (its view may push and splice); messages shared, never to be edited. */
  messages: FolderMessage[];
  uidNext: number;
  highestModseq: number;
}

export class FolderSnapshots {
  private readonly snapshots = new Map<number, Snapshot>();
  private total = 0;

  constructor(
    private readonly minMessages = SNAPSHOT_MIN_MESSAGES,
    private readonly maxMessages = SNAPSHOT_MAX_MESSAGES,
  ) {}

  /** SELECT's read of the folder: from its snapshot when there is one, else whole (store.openFolder). */
  async open(store: Store, folder: { id: number; mailboxId: number; uidValidity: number }, clearRecent: boolean): Promise<OpenedFolder> {
    const snap = this.snapshots.get(folder.id);
    // The same folder: a deleted folder's id may be reused, never with the same mailbox and
    // UIDVALIDITY (a mailbox never issues one twice, sqlite/folders.ts insertFolder).
    if (snap && snap.mailboxId === folder.mailboxId && snap.uidValidity === folder.uidValidity) {
      const r = await store.reopenFolder(folder.id, { modseq: snap.modseq, recentFrom: snap.recentFrom }, { clearRecent });
      // A snapshot newer than the store cannot be brought up to date: read the folder whole.
      if (r.highestModseq >= snap.modseq) {
        const messages = r.changed.length || r.expunged.length ? mergeChanges(snap.messages, r.changed, r.expunged) : snap.messages;
        this.keep(folder, { mailboxId: folder.mailboxId, uidValidity: folder.uidValidity, modseq: r.highestModseq, recentFrom: r.recentFrom, messages });
        return { messages: withRecent(messages, r.recentUids), uidNext: r.uidNext, highestModseq: r.highestModseq };
      }
    }
    const r = await store.openFolder(folder.id, { clearRecent });
    if (r.messages.length >= this.minMessages) {
      const messages = r.messages.map((m) => (m.recent ? { ...m, recent: false } : m));
      this.keep(folder, { mailboxId: folder.mailboxId, uidValidity: folder.uidValidity, modseq: r.highestModseq, recentFrom: r.recentFrom, messages });
    } else this.drop(folder.id);
    return { messages: r.messages, uidNext: r.uidNext, highestModseq: r.highestModseq };
  }

  /** Messages held by all snapshots (for tests and figures). */
  get size(): number {
    return this.total;
  }

  private keep(folder: { id: number }, snap: Snapshot) {
    this.drop(folder.id);
    if (snap.messages.length < this.minMessages || snap.messages.length > this.maxMessages) return;
    // Map order is insertion order: re-inserting makes this folder the most recently used.
    this.snapshots.set(folder.id, snap);
    this.total += snap.messages.length;
    for (const [id, s] of this.snapshots) {
      if (this.total <= this.maxMessages) break;
      this.snapshots.delete(id);
      this.total -= s.messages.length;
    }
  }

  private drop(folderId: number) {
    const old = this.snapshots.get(folderId);
    if (!old) return;
    this.snapshots.delete(folderId);
    this.total -= old.messages.length;
  }
}

/** The snapshot's messages with the store's changes applied: a merge by UID (both in UID order). */
export function mergeChanges(old: readonly FolderMessage[], changed: FolderMessage[], expunged: number[]): FolderMessage[] {
  const gone = new Set(expunged);
  const out: FolderMessage[] = [];
  const fresh = (m: FolderMessage) => (m.recent ? { ...m, recent: false } : m);
  let j = 0;
  for (const m of old) {
    while (j < changed.length && changed[j].uid < m.uid) out.push(fresh(changed[j++]));
    if (j < changed.length && changed[j].uid === m.uid) out.push(fresh(changed[j++]));
    else if (!gone.has(m.uid)) out.push(m);
  }
  while (j < changed.length) out.push(fresh(changed[j++]));
  return out;
}

/** A session's copy of the messages, those of `recentUids` (ascending) with \Recent set. */
function withRecent(messages: readonly FolderMessage[], recentUids: number[]): FolderMessage[] {
  const out = messages.slice();
  if (recentUids.length === 0) return out;
  // Recent messages are the newest: walk back from the end.
  let k = recentUids.length - 1;
  for (let i = out.length - 1; i >= 0 && k >= 0; i--) {
    while (k >= 0 && recentUids[k] > out[i].uid) k--;
    if (k >= 0 && recentUids[k] === out[i].uid) out[i] = { ...out[i], recent: true };
  }
  return out;
}
