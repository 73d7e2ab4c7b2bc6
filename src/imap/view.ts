// The state of a selected folder as one session sees it: message sequence numbers, flags and
// the modseq up to which changes were reported. Changes by other sessions (or deliveries) are
// found by modseq in the store and turned into untagged EXISTS / EXPUNGE / FETCH responses
// only at the points RFC 9051 §7 allows them.
import type { FolderMessage, Store } from '../store/types.js';

/** A message as the session knows it (flags and modseq updated as changes are reported). */
export type ViewMessage = FolderMessage;

export type ViewUpdate =
  | { kind: 'expunge'; seq: number; uid: number }
  | { kind: 'exists'; count: number }
  | { kind: 'flags'; seq: number; msg: ViewMessage }
  /** New keywords appeared: `flags` is the folder's whole flag list, to send as FLAGS (and PERMANENTFLAGS) before any FETCH shows them. */
  | { kind: 'keywords'; flags: string[] };

/** RFC 9051 §2.3.2 system flags (\Recent is session state, never listed in FLAGS). */
export const SYSTEM_FLAGS = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'];
const isSystem = (f: string) => SYSTEM_FLAGS.some((s) => s.toLowerCase() === f.toLowerCase()) || f.toLowerCase() === '\\recent';

const sameFlags = (a: string[], b: string[]) => a.length === b.length && a.every((f) => b.some((g) => g.toLowerCase() === f.toLowerCase()));

export class FolderView {
  /** In UID order; a message is found by binary search (seqOf), no per-message map (big folders). */
  messages: ViewMessage[];
  /** Highest modseq whose changes this session has seen or reported. */
  modseq: number;
  /** UIDs expunged by others but not yet announced (held back during FETCH/STORE/SEARCH). */
  private pendingExpunges = new Set<number>();
  /**
   * Keywords (and flag extensions) this session was told about in an untagged FLAGS response,
   * by lower-cased name (flags compare case-insensitively). RFC 9051 §7.3.5 / RFC 3501 §7.2.6:
   * the client records the FLAGS list, so no FETCH may show a flag outside it.
   */
  private announced = new Map<string, string>();
  /**
   * UIDs whose flags changed or that appeared since the last takeChanged(), recorded only while
   * an RFC 5267 update context needs them (search-updates.ts); undefined otherwise.
   */
  private changed?: Set<number>;

  constructor(
    readonly folderId: number,
    readonly mailboxId: number,
    readonly readOnly: boolean,
    readonly uidValidity: number,
    /**
     * The folder's messages in UID order: the array is the view's from now on; the messages may be
     * shared with other views (folder-snapshots.ts), so the view never edits one in place.
     */
    msgs: FolderMessage[],
    modseq: number,
  ) {
    this.messages = msgs;
    this.modseq = modseq;
    // Messages with the same flags mostly share one array (the store reads them so): each distinct
    // array is looked at once (a big folder has a handful).
    this.announceNew(new Set(msgs.map((m) => m.flags)));
  }

  /** Sequence number of the first message without \Seen (SELECT's [UNSEEN n]), 0 when none. */
  firstUnseen(): number {
    const seen = new Map<string[], boolean>();
    for (let i = 0; i < this.messages.length; i++) {
      const f = this.messages[i].flags;
      let s = seen.get(f);
      if (s === undefined) seen.set(f, (s = f.some((x) => x.toLowerCase() === '\\seen')));
      if (!s) return i + 1;
    }
    return 0;
  }

  /** Messages with \Recent in this session (RECENT). */
  get recentCount(): number {
    let n = 0;
    for (const m of this.messages) if (m.recent) n++;
    return n;
  }

  /** The flag list to send in FLAGS (and, with \\*, in PERMANENTFLAGS): system flags, then every keyword announced. */
  get flagList(): string[] {
    return [...SYSTEM_FLAGS, ...this.announced.values()];
  }

  /**
   * Records the keywords of `lists` that were not announced yet; true when there were any (the
   * caller then sends FLAGS with `flagList` before the FETCH responses showing them).
   */
  announceNew(lists: Iterable<string[]>): boolean {
    let added = false;
    for (const flags of lists) {
      for (const f of flags) {
        if (isSystem(f) || this.announced.has(f.toLowerCase())) continue;
        this.announced.set(f.toLowerCase(), f);
        added = true;
      }
    }
    return added;
  }

  get exists(): number {
    return this.messages.length;
  }

  seqOf(uid: number): number | undefined {
    // Binary search: messages are in UID order.
    let lo = 0;
    let hi = this.messages.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const u = this.messages[mid].uid;
      if (u === uid) return mid + 1;
      if (u < uid) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  byUidGet(uid: number): ViewMessage | undefined {
    const seq = this.seqOf(uid);
    return seq === undefined ? undefined : this.messages[seq - 1];
  }

  /** Records a change this session made itself (so it is not reported again). */
  applyOwnFlags(uid: number, flags: string[], modseq: number): void {
    const seq = this.seqOf(uid);
    // Sessions share message objects with the folder snapshot: replace, never edit in place.
    if (seq !== undefined) this.messages[seq - 1] = { ...this.messages[seq - 1], flags, modseq };
    if (seq !== undefined) this.changed?.add(uid);
  }

  /** Starts (or stops) recording which messages change (RFC 5267 update contexts). */
  trackChanges(on: boolean): void {
    this.changed = on ? (this.changed ?? new Set()) : undefined;
  }

  /** The UIDs recorded since the last call (flags changed, or new), and starts afresh. */
  takeChanged(): number[] {
    if (!this.changed || this.changed.size === 0) return [];
    const out = [...this.changed];
    this.changed.clear();
    return out;
  }

  /** Removes messages this session expunged itself; returns their sequence numbers, highest first (each valid when announced, RFC 9051 §7.5.1). */
  removeOwn(uids: number[]): number[] {
    const seqs: number[] = [];
    for (const uid of [...uids].sort((a, b) => b - a)) {
      const seq = this.seqOf(uid);
      if (seq === undefined) continue;
      this.messages.splice(seq - 1, 1);
      this.pendingExpunges.delete(uid);
      seqs.push(seq);
    }
    return seqs;
  }

  /**
   * Brings the view up to date with the store. `allowExpunge` false during FETCH, STORE and
   * SEARCH (RFC 9051 §7.5.1): expunges are then remembered and announced later.
   */
  async refresh(store: Store, allowExpunge: boolean, highestModseq: number): Promise<ViewUpdate[]> {
    const updates: ViewUpdate[] = [];
    const flagged: ViewMessage[] = [];
    const added: ViewMessage[] = [];
    if (highestModseq > this.modseq) {
      const gone = await store.expungedSince(this.folderId, this.modseq);
      for (const u of gone) if (this.seqOf(u) !== undefined) this.pendingExpunges.add(u);
      const changed = await store.changedSince(this.folderId, this.modseq);
      const maxUid = this.messages.length ? this.messages[this.messages.length - 1].uid : 0;
      for (const c of changed) {
        const seq = this.seqOf(c.uid);
        if (seq !== undefined) {
          // A new object: the old one may be shared with other views (folder-snapshots.ts).
          const known = this.messages[seq - 1];
          const updated = { ...known, flags: c.flags, modseq: c.modseq };
          this.messages[seq - 1] = updated;
          if (!sameFlags(known.flags, c.flags)) flagged.push(updated);
        } else if (c.uid > maxUid) added.push({ ...c });
      }
      this.modseq = highestModseq;
      if (added.length && !this.readOnly) {
        // RFC 3501 §2.3.2: \Recent belongs to the first session that is notified of a message.
        const claimed = new Set(await store.claimRecent(this.folderId, added.map((m) => m.uid)));
        for (const m of added) m.recent = claimed.has(m.uid);
      }
    }
    // Expunges first, then flag changes numbered after them, then the new count (RFC 9051 §7.5.1).
    if (allowExpunge) updates.push(...this.flushExpunges());
    // RFC 9051 §7.3.5: keywords set by other sessions or carried by new messages are announced
    // by FLAGS before the FETCH responses below (and any later FETCH of the new messages).
    if (this.announceNew([...flagged, ...added].map((m) => m.flags))) updates.push({ kind: 'keywords', flags: this.flagList });
    for (const m of [...flagged, ...added]) this.changed?.add(m.uid);
    for (const m of flagged) {
      const seq = this.seqOf(m.uid);
      if (seq !== undefined) updates.push({ kind: 'flags', seq, msg: m });
    }
    if (added.length) {
      for (const m of added) this.messages.push(m);
      updates.push({ kind: 'exists', count: this.messages.length });
    }
    return updates;
  }

  private flushExpunges(): ViewUpdate[] {
    if (!this.pendingExpunges.size) return [];
    const out: ViewUpdate[] = [];
    // Highest sequence first, so every announced number is valid when announced.
    for (const uid of [...this.pendingExpunges].sort((a, b) => b - a)) {
      const seq = this.seqOf(uid);
      if (seq === undefined) continue;
      this.messages.splice(seq - 1, 1);
      out.push({ kind: 'expunge', seq, uid });
    }
    this.pendingExpunges.clear();
    return out;
  }
}
