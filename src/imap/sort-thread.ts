// SORT and THREAD (RFC 5256; DISPLAYFROM/DISPLAYTO of RFC 5957). Sort keys are precomputed by
// the message index (mime/), compared as UTF-8 bytes; ties fall back to sequence order.
import type { MessageInfo } from '../mime/index.js';
import type { SortKey } from './protocol/types.js';

export interface SortItem {
  seq: number;
  uid: number;
  size: number;
  internalDate: string;
  info: MessageInfo;
}

/** The MessageInfo fields SORT compares. */
type SortFields = Pick<MessageInfo, 'sentDate' | 'size' | 'baseSubject' | 'fromSort' | 'toSort' | 'ccSort' | 'displayFrom' | 'displayTo'>;

/** What SORT needs of a message (a SortItem, or the slim copy an update context keeps). */
export interface Sortable {
  uid: number;
  internalDate: string;
  info: SortFields;
}

/** A copy of `i` holding only what SORT compares (kept by RFC 5267 update contexts). */
export function slimSortable(i: Sortable): Sortable {
  const f = i.info;
  return {
    uid: i.uid,
    internalDate: i.internalDate,
    info: { sentDate: f.sentDate, size: f.size, baseSubject: f.baseSubject, fromSort: f.fromSort, toSort: f.toSort, ccSort: f.ccSort, displayFrom: f.displayFrom, displayTo: f.displayTo },
  };
}

function sentTime(i: Sortable): number {
  // RFC 5256 §2.2: the sent date, or the internal date when the Date: header is missing or invalid.
  const t = i.info.sentDate ? Date.parse(i.info.sentDate) : NaN;
  return Number.isNaN(t) ? Date.parse(i.internalDate) : t;
}

const bytes = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/** The text sort keys (RFC 5256 §3, RFC 5957 §3) and the precomputed MessageInfo field each compares. */
const TEXT_KEY_FIELD = {
  SUBJECT: 'baseSubject',
  FROM: 'fromSort',
  TO: 'toSort',
  CC: 'ccSort',
  DISPLAYFROM: 'displayFrom',
  DISPLAYTO: 'displayTo',
} as const satisfies Record<Exclude<SortKey['key'], 'ARRIVAL' | 'DATE' | 'SIZE'>, keyof MessageInfo>;

function compareKey(k: SortKey['key'], a: Sortable, b: Sortable): number {
  switch (k) {
    case 'ARRIVAL':
      return Date.parse(a.internalDate) - Date.parse(b.internalDate);
    case 'DATE':
      return sentTime(a) - sentTime(b);
    case 'SIZE':
      return a.info.size - b.info.size;
    default: {
      const field = TEXT_KEY_FIELD[k];
      return bytes(a.info[field], b.info[field]);
    }
  }
}

/**
 * The SORT order of two messages (RFC 5256 §3): the keys in turn, REVERSE inverting one key; ties
 * in sequence order, which is UID order (compared by UID so that an order kept across changes of
 * sequence numbers, RFC 5267 update contexts, stays the same).
 */
export function compareSortItems(a: Sortable, b: Sortable, keys: SortKey[]): number {
  for (const k of keys) {
    const c = compareKey(k.key, a, b);
    if (c !== 0) return k.reverse ? -c : c;
  }
  return a.uid - b.uid; // RFC 5256 §3: ties in sequence order
}

export function sortItems(items: SortItem[], keys: SortKey[]): SortItem[] {
  return [...items].sort((a, b) => compareSortItems(a, b, keys));
}

/** A thread tree node: a message, or a placeholder (dummy) for a referenced but absent message. */
interface Node {
  item?: SortItem;
  id: string;
  parent?: Node;
  children: Node[];
}

/** Serialises threads: "(a b (c d)(e))" (RFC 5256 §4). */
export function threadToString(roots: { id: number | null; children: any[] }[]): string {
  const one = (n: { id: number | null; children: any[] }): string => {
    // A chain a → b → c is written "a b c"; several children are each parenthesised.
    let s = n.id !== null ? String(n.id) : '';
    let cur = n;
    while (cur.children.length === 1) {
      cur = cur.children[0];
      s += (s ? ' ' : '') + (cur.id !== null ? String(cur.id) : '');
    }
    if (cur.children.length > 1) s += (s ? ' ' : '') + cur.children.map((c: any) => `(${one(c)})`).join('');
    return s;
  };
  return roots.map((r) => `(${one(r)})`).join('');
}

type Out = { id: number | null; children: Out[] };

/** RFC 5256 §3 (a) ORDEREDSUBJECT. */
export function threadOrderedSubject(items: SortItem[], idOf: (i: SortItem) => number): Out[] {
  const sorted = [...items].sort((a, b) => bytes(a.info.baseSubject, b.info.baseSubject) || sentTime(a) - sentTime(b) || a.seq - b.seq);
  const threads: SortItem[][] = [];
  for (const i of sorted) {
    const last = threads[threads.length - 1];
    if (last && last[0].info.baseSubject === i.info.baseSubject) last.push(i);
    else threads.push([i]);
  }
  threads.sort((a, b) => sentTime(a[0]) - sentTime(b[0]) || a[0].seq - b[0].seq);
  // The first message is the parent; all the others are its children.
  return threads.map((t) => ({ id: idOf(t[0]), children: t.slice(1).map((c) => ({ id: idOf(c), children: [] })) }));
}

/** RFC 5256 §3 (b) REFERENCES (the JWZ algorithm). */
export function threadReferences(items: SortItem[], idOf: (i: SortItem) => number): Out[] {
  const byId = new Map<string, Node>();
  const get = (id: string) => {
    let n = byId.get(id);
    if (!n) byId.set(id, (n = { id, children: [] }));
    return n;
  };
  const isAncestor = (a: Node, b: Node) => {
    for (let p: Node | undefined = b; p; p = p.parent) if (p === a) return true;
    return false;
  };
  const link = (parent: Node, child: Node) => {
    if (child.parent || parent === child || isAncestor(child, parent)) return;
    child.parent = parent;
    parent.children.push(child);
  };
  let unique = 0;
  for (const it of items) {
    // (1)(A): a message without a Message-ID, or with a duplicate one, gets a unique id.
    let mid = it.info.messageId ?? '';
    if (!mid || byId.get(mid)?.item) mid = `\u0000unique-${unique++}`;
    const node = get(mid);
    node.item = it;
    // (1)(B): link the references in order, never creating a loop or relinking a parent.
    const refs = it.info.references.filter((r) => r);
    let prev: Node | undefined;
    for (const r of refs) {
      const n = get(r);
      if (prev && !n.parent) link(prev, n);
      prev = n;
    }
    // (1)(C): the message's parent is the last reference (replacing any earlier guess).
    if (node.parent) {
      node.parent.children = node.parent.children.filter((c) => c !== node);
      node.parent = undefined;
    }
    if (prev && prev !== node && !isAncestor(node, prev)) link(prev, node);
  }
  // (2) root set
  let roots = [...byId.values()].filter((n) => !n.parent);
  // (3) prune dummies
  const prune = (list: Node[], atRoot: boolean): Node[] => {
    const out: Node[] = [];
    for (const n of list) {
      n.children = prune(n.children, false);
      for (const c of n.children) c.parent = n;
      if (!n.item) {
        if (n.children.length === 0) continue;
        if (!atRoot || n.children.length === 1) {
          for (const c of n.children) c.parent = n.parent;
          out.push(...n.children);
          continue;
        }
      }
      out.push(n);
    }
    return out;
  };
  roots = prune(roots, true);
  for (const r of roots) r.parent = undefined;
  // Sorting by sent date, at every level (4, 6); a dummy takes the date of its first child.
  const firstItem = (n: Node): SortItem => n.item ?? firstItem(sortLevel(n.children)[0]);
  const sortLevel = (list: Node[]): Node[] => {
    list.sort((a, b) => {
      const ia = firstItem(a);
      const ib = firstItem(b);
      return sentTime(ia) - sentTime(ib) || ia.seq - ib.seq;
    });
    return list;
  };
  for (const n of byId.values()) sortLevel(n.children);
  sortLevel(roots);
  // (5) group the root set by base subject.
  const subjectOf = (n: Node) => firstItem(n).info.baseSubject;
  const table = new Map<string, Node>();
  for (const r of roots) {
    const subj = subjectOf(r);
    if (!subj) continue;
    const old = table.get(subj);
    // (5)(B): prefer a dummy, else a message that is not a reply or forward.
    if (!old || (!r.item && old.item) || (old.item && r.item && old.item.info.subjectIsReplyOrForward && !r.item.info.subjectIsReplyOrForward)) table.set(subj, r);
  }
  const merged: Node[] = [];
  for (const r of roots) {
    const subj = subjectOf(r);
    const c = subj ? table.get(subj)! : undefined;
    if (!c || c === r) {
      merged.push(r);
      continue;
    }
    // (5)(C)
    if (!c.item && !r.item) {
      for (const ch of r.children) (ch.parent = c), c.children.push(ch);
    } else if (!c.item) {
      r.parent = c;
      c.children.push(r);
    } else if (!r.item) {
      const container = r;
      c.parent = container;
      // the dummy r takes c's place
      const idx = merged.indexOf(c);
      container.children.push(c);
      if (idx >= 0) merged[idx] = container;
      table.set(subj, container);
    } else if (!c.item.info.subjectIsReplyOrForward && r.item.info.subjectIsReplyOrForward) {
      r.parent = c;
      c.children.push(r);
    } else {
      const dummy: Node = { id: `\u0000dummy-${unique++}`, children: [c, r] };
      c.parent = dummy;
      r.parent = dummy;
      const idx = merged.indexOf(c);
      if (idx >= 0) merged[idx] = dummy;
      else merged.push(dummy);
      table.set(subj, dummy);
    }
  }
  // (6) sort again after merging.
  const sortAll = (list: Node[]) => {
    sortLevel(list);
    for (const n of list) sortAll(n.children);
  };
  const finalRoots = merged.filter((n) => !n.parent);
  sortAll(finalRoots);
  const toOut = (n: Node): Out => ({ id: n.item ? idOf(n.item) : null, children: n.children.map(toOut) });
  return finalRoots.map(toOut);
}
