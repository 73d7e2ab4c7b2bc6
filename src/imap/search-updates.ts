// RFC 5267 §4.3 update contexts: after SEARCH/SORT RETURN (UPDATE ...), the session tells the
// client how the result changes, in ESEARCH responses carrying ADDTO and REMOVEFROM, until the
// mailbox is no longer selected or CANCELUPDATE names the context.
//
// Evaluation follows RFC 5267 Appendix B: the search program is re-run only on the messages that
// changed (new, or flags changed: FolderView.takeChanged) and each context keeps its result (the
// UIDs; for SORT the order, with the few fields SORT compares), so nothing reads the whole folder
// again. Sequence numbers and "$" in the search program were resolved to UIDs when the context was
// created (RFC 5267 §4.3: "evaluated at the time the command is received"). Expunged messages are
// removed by expunging(), called before the EXPUNGE/VANISHED responses (§4.3.4: "MUST be sent
// prior to the expunge notification itself"); additions go out after EXISTS (§4.3.3).
import { orderedSequenceSet, quoted, sequenceSet as encodeSet } from './protocol/encoder.js';
import type { SearchKey, SortKey } from './protocol/types.js';
import { compareSortItems, slimSortable, type Sortable } from './sort-thread.js';
import type { FolderView, ViewMessage } from './view.js';

/** Update contexts a session may hold at once (RFC 5267 §4.3.1: at least one; §6: limit them). */
export const MAX_UPDATE_CONTEXTS = 8;
/** Largest result a SORT update context keeps (its order is held in memory); beyond: NOUPDATE. */
export const MAX_SORT_CONTEXT_RESULT = 10_000;

/** How an update context re-evaluates messages (given by the command layer: the SEARCH engine and the message index). */
export interface UpdateEvaluator {
  /** The UIDs among `messages` that match `key`. */
  matching(key: SearchKey, messages: ViewMessage[]): Promise<Set<number>>;
  /** What SORT compares for one message. */
  sortable(m: ViewMessage): Promise<Sortable>;
}

interface SearchContext {
  tag: string;
  byUid: boolean;
  key: SearchKey;
  /** UIDs in the result. */
  members: Set<number>;
}

interface SortContext extends SearchContext {
  keys: SortKey[];
  /** The result in the requested order. */
  order: Sortable[];
}

type Context = SearchContext | SortContext;

const isSort = (c: Context): c is SortContext => 'keys' in c;

export class SearchUpdates {
  private readonly contexts = new Map<string, Context>();

  constructor(readonly view: FolderView) {}

  get size(): number {
    return this.contexts.size;
  }

  has(tag: string): boolean {
    return this.contexts.has(tag);
  }

  /** A SEARCH context over `uids` (the result just sent). */
  addSearch(tag: string, byUid: boolean, key: SearchKey, uids: number[]): void {
    this.contexts.set(tag, { tag, byUid, key, members: new Set(uids) });
    this.view.trackChanges(true);
  }

  /** A SORT context over `sorted` (the result just sent, in its order). */
  addSort(tag: string, byUid: boolean, key: SearchKey, keys: SortKey[], sorted: Sortable[]): void {
    this.contexts.set(tag, { tag, byUid, key, keys, members: new Set(sorted.map((s) => s.uid)), order: sorted.map(slimSortable) });
    this.view.trackChanges(true);
  }

  /** RFC 5267 §4.3.5 CANCELUPDATE: the tags that name no context (nothing cancelled then), else [] and they are cancelled. */
  cancel(tags: string[]): string[] {
    const unknown = tags.filter((t) => !this.contexts.has(t));
    if (unknown.length) return unknown;
    for (const t of tags) this.contexts.delete(t);
    if (this.contexts.size === 0) this.view.trackChanges(false);
    return [];
  }

  /**
   * REMOVEFROM for messages about to be announced expunged (`seq`: their number before any of them
   * is removed). Call before writing the EXPUNGE or VANISHED responses.
   */
  expunging(gone: { uid: number; seq: number }[], write: (line: string) => void): void {
    if (gone.length === 0) return;
    for (const c of this.contexts.values()) {
      const hit = gone.filter((g) => c.members.has(g.uid));
      if (hit.length === 0) continue;
      for (const g of hit) c.members.delete(g.uid);
      const id = (g: { uid: number; seq: number }) => (c.byUid ? g.uid : g.seq);
      if (!isSort(c)) {
        write(line(c, `REMOVEFROM (0 ${encodeSet(hit.map(id))})`));
        continue;
      }
      const seqOf = new Map(hit.map((g) => [g.uid, g.seq]));
      write(line(c, `REMOVEFROM (${removals(c, (uid) => (c.byUid ? uid : seqOf.get(uid)!)).join(' ')})`));
    }
  }

  /** Re-evaluates the messages that changed since the last call and writes ADDTO / REMOVEFROM. */
  async refresh(ev: UpdateEvaluator, write: (line: string) => void): Promise<void> {
    const changedUids = this.view.takeChanged();
    if (changedUids.length === 0 || this.contexts.size === 0) return;
    const v = this.view;
    const changed = changedUids.sort((a, b) => a - b).flatMap((u) => v.byUidGet(u) ?? []);
    for (const c of [...this.contexts.values()]) {
      const now = await ev.matching(c.key, changed);
      const added = changed.filter((m) => now.has(m.uid) && !c.members.has(m.uid));
      const removed = changed.filter((m) => !now.has(m.uid) && c.members.has(m.uid));
      if (added.length === 0 && removed.length === 0) continue;
      const id = (uid: number) => (c.byUid ? uid : v.seqOf(uid)!);
      for (const m of removed) c.members.delete(m.uid);
      for (const m of added) c.members.add(m.uid);
      if (!isSort(c)) {
        // §4.3.3/§4.3.4: position 0 for SEARCH contexts, the set in mailbox order.
        const parts: string[] = [];
        if (removed.length) parts.push(`REMOVEFROM (0 ${encodeSet(removed.map((m) => id(m.uid)))})`);
        if (added.length) parts.push(`ADDTO (0 ${encodeSet(added.map((m) => id(m.uid)))})`);
        write(line(c, parts.join(' ')));
        continue;
      }
      const parts: string[] = [];
      if (removed.length) parts.push(`REMOVEFROM (${removals(c, id).join(' ')})`);
      if (added.length) {
        const items = await Promise.all(added.map((m) => ev.sortable(m)));
        parts.push(`ADDTO (${insertions(c, items, id).join(' ')})`);
      }
      write(line(c, parts.join(' ')));
    }
  }
}

function line(c: Context, data: string): string {
  return `* ESEARCH (TAG ${quoted(c.tag)})${c.byUid ? ' UID' : ''} ${data}\r\n`;
}

/**
 * Removes from a SORT context's order the messages no longer in `members`; returns the
 * REMOVEFROM pairs (§4.3.4: "position SP set", the first of the set at that position before
 * removal), last position first so that each pair's position stays valid when it is processed.
 */
function removals(c: SortContext, id: (uid: number) => number): string[] {
  const runs: { pos: number; ids: number[] }[] = [];
  const kept: Sortable[] = [];
  c.order.forEach((s, i) => {
    if (c.members.has(s.uid)) {
      kept.push(s);
      return;
    }
    const last = runs[runs.length - 1];
    if (last && last.pos + last.ids.length === i + 1) last.ids.push(id(s.uid));
    else runs.push({ pos: i + 1, ids: [id(s.uid)] });
  });
  c.order = kept;
  return runs.reverse().map((r) => `${r.pos} ${orderedSequenceSet(r.ids)}`);
}

/** Inserts `items` into a SORT context's order; returns the ADDTO pairs, first position first (§4.3.3). */
function insertions(c: SortContext, items: Sortable[], id: (uid: number) => number): string[] {
  const fresh = new Set<number>();
  for (const it of items) {
    const s = slimSortable(it);
    // binary search for the first element that sorts after s
    let lo = 0;
    let hi = c.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareSortItems(c.order[mid], s, c.keys) <= 0) lo = mid + 1;
      else hi = mid;
    }
    c.order.splice(lo, 0, s);
    fresh.add(s.uid);
  }
  const runs: { pos: number; ids: number[] }[] = [];
  c.order.forEach((s, i) => {
    if (!fresh.has(s.uid)) return;
    const last = runs[runs.length - 1];
    if (last && last.pos + last.ids.length === i + 1) last.ids.push(id(s.uid));
    else runs.push({ pos: i + 1, ids: [id(s.uid)] });
  });
  return runs.map((r) => `${r.pos} ${orderedSequenceSet(r.ids)}`);
}
