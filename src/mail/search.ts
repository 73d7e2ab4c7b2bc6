// SEARCH evaluation (RFC 9051 §6.4.4), shared by IMAP (UID SEARCH) and the mail API
// (/api/v1/search). Flags, sizes, dates and sets come from the folder's messages; header keys on
// indexed fields (mail/header-index.ts) are narrowed by one SQL query each; other header keys,
// sent-date and body keys use the message index and, for text, the decoded message content.
import { normalizeForSearch, searchableText } from '../mime/index.js';
import type { MessageFiles } from '../store/message-files.js';
import type { FolderMessage, Store } from '../store/types.js';
import { HEADER_INDEX_VERSION, headerKeyMode, headerSearchValues, indexNeedle, indexedColumn, needsHead } from './header-index.js';
import { readHead, type MessageIndex } from './message-index.js';
import type { SearchKey, SequenceSet } from './search-key.js';

type ViewMessage = FolderMessage;
/** The messages searched, in UID order (an IMAP session's FolderView, or a folder's messages for the API). */
export interface SearchedFolder {
  messages: FolderMessage[];
  /** The folder the messages are in: header keys then use the header index (else every message is read). */
  folderId?: number;
}

export interface SearchContext {
  store: Store;
  blobs: MessageFiles;
  index: MessageIndex;
  saved: number[];
  sequenceTargets(set: SequenceSet, byUid: boolean): { seq: number; uid: number }[];
  /** false: the reference path the equivalence test compares with: no header index, every key evaluated by `matches` per message. */
  useHeaderIndex?: boolean;
}

/** RFC 9051 §6.4.4: case-insensitive substring match, folded the way Dovecot folds (case, accents). */
const fold = normalizeForSearch;

function dayOf(iso: string | null): string | undefined {
  if (!iso) return undefined;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString().slice(0, 10);
}

/** A header key answered by the index: the UIDs it matches, and those whose file has no row yet. */
interface IndexedAnswer {
  matched: Set<number>;
  unindexed: Set<number>;
}

/**
 * Runs one SQL query per indexed header key of `key`. Only messages the store still lists in the
 * folder are answered by the index: the caller checks `covered` (a session's view may still show a
 * message another session expunged; such a message is read as before).
 */
async function indexedAnswers(key: SearchKey, folderId: number, folderSize: number, ctx: SearchContext): Promise<Map<SearchKey, IndexedAnswer>> {
  const out = new Map<SearchKey, IndexedAnswer>();
  const walk = async (k: SearchKey): Promise<void> => {
    if (k.kind === 'header') {
      const column = indexedColumn(k.field, k.viaKeyword);
      const needle = k.value === '' ? Buffer.alloc(0) : indexNeedle(k.value);
      if (column === undefined || needle === undefined) return;
      const r = await ctx.store.searchHeaderCandidates(folderId, column, needle, HEADER_INDEX_VERSION, folderSize);
      out.set(k, { matched: new Set(r.matched), unindexed: new Set(r.unindexed) });
    } else if (k.kind === 'not') await walk(k.key);
    else if (k.kind === 'or') {
      await walk(k.a);
      await walk(k.b);
    } else if (k.kind === 'and') for (const sub of k.keys) await walk(sub);
  };
  await walk(key);
  return out;
}

function hasHeaderKey(k: SearchKey): boolean {
  return k.kind === 'header' || (k.kind === 'not' && hasHeaderKey(k.key)) || (k.kind === 'or' && (hasHeaderKey(k.a) || hasHeaderKey(k.b))) || (k.kind === 'and' && k.keys.some(hasHeaderKey));
}

export async function runSearch(key: SearchKey, view: SearchedFolder, ctx: SearchContext): Promise<{ seq: number; uid: number }[]> {
  const out: { seq: number; uid: number }[] = [];
  const setCache = new Map<SearchKey, Set<number>>();
  // RFC 9051 §6.4.4: a sequence number outside the mailbox simply matches nothing in a search key.
  const safeTargets = (set: SequenceSet, byUid: boolean) => {
    try {
      return ctx.sequenceTargets(set, byUid);
    } catch {
      return [];
    }
  };
  const uidSet = (k: SearchKey & { set: SequenceSet }, byUid: boolean) => {
    let s = setCache.get(k);
    if (!s) {
      s = new Set(safeTargets(k.set, byUid).map((t) => t.uid));
      setCache.set(k, s);
    }
    return s;
  };
  const saved = new Set(ctx.saved);
  let indexed: Indexed | undefined;
  if (ctx.useHeaderIndex !== false && view.folderId !== undefined && hasHeaderKey(key)) {
    const answers = await indexedAnswers(key, view.folderId, view.messages.length, ctx);
    // The UIDs the store lists in the folder: those of the view it answers for (one list, only
    // when the view holds a message the store no longer has; see isCovered).
    if (answers.size > 0) indexed = { answers, folderUids: await folderUidsIfNeeded(view, ctx), lazilyIndexed: new Set() };
  }
  for (let i = 0; i < view.messages.length; i++) {
    const m = view.messages[i];
    // Decided from the folder's data and the index when possible (no promise per message: a
    // big folder's SEARCH ALL, flag or indexed header search stays a plain loop).
    let hit = ctx.useHeaderIndex === false ? undefined : decide(key, m, uidSet, saved, indexed);
    if (hit === undefined) hit = await matches(key, m, i + 1, ctx, {}, uidSet, saved, indexed);
    if (hit) out.push({ seq: i + 1, uid: m.uid });
  }
  return out;
}

const hasFlagOf = (m: ViewMessage, f: string) => m.flags.some((x) => x.toLowerCase() === f.toLowerCase());

/**
 * The answer of `matches` when it needs neither the message file nor its analysis; undefined
 * otherwise (the caller then runs `matches`). Same rules as `matches`, case by case.
 */
function decide(k: SearchKey, m: ViewMessage, uidSet: (k: any, byUid: boolean) => Set<number>, saved: Set<number>, indexed?: Indexed): boolean | undefined {
  switch (k.kind) {
    case 'all':
      return true;
    case 'seq':
      return uidSet(k, false).has(m.uid);
    case 'uid':
      return uidSet(k, true).has(m.uid);
    case 'savedresult':
      return saved.has(m.uid);
    case 'flag':
      return hasFlagOf(m, k.flag) === k.set;
    case 'recent':
      return m.recent === k.set;
    case 'new':
      return m.recent && !hasFlagOf(m, '\\Seen');
    case 'old':
      return !m.recent;
    case 'size':
      return k.op === 'larger' ? m.size > k.n : m.size < k.n;
    case 'date': {
      if (k.which !== 'internal') return undefined;
      const day = dayOf(m.internalDate);
      if (!day) return false;
      return k.op === 'before' ? day < k.date : k.op === 'on' ? day === k.date : day >= k.date;
    }
    case 'modseq':
      return m.modseq >= Number(k.modseq);
    case 'header': {
      const answer = indexed?.answers.get(k);
      if (answer === undefined || (indexed!.folderUids !== undefined && !indexed!.folderUids.has(m.uid))) return undefined;
      if (answer.matched.has(m.uid)) return true;
      return answer.unindexed.has(m.uid) ? undefined : false;
    }
    case 'not': {
      const d = decide(k.key, m, uidSet, saved, indexed);
      return d === undefined ? undefined : !d;
    }
    case 'or': {
      const a = decide(k.a, m, uidSet, saved, indexed);
      if (a === true) return true;
      const b = decide(k.b, m, uidSet, saved, indexed);
      if (b === true) return true;
      return a === false && b === false ? false : undefined;
    }
    case 'and': {
      let unknown = false;
      for (const sub of k.keys) {
        const d = decide(sub, m, uidSet, saved, indexed);
        if (d === false) return false;
        if (d === undefined) unknown = true;
      }
      return unknown ? undefined : true;
    }
    default:
      // older/younger depend on the clock, body/text on the file: left to `matches`.
      return undefined;
  }
}

interface Indexed {
  answers: Map<SearchKey, IndexedAnswer>;
  /** undefined: the store lists every message of the view. */
  folderUids: Set<number> | undefined;
  /** Files whose row this search recorded (one header key is enough to record it). */
  lazilyIndexed: Set<string>;
}

/**
 * undefined when every message of the view is still in the folder (the usual case, checked by
 * one count: UIDs only grow, so the store's messages up to the view's last UID are the view's
 * ones when they are as many); else the UIDs the store lists.
 */
async function folderUidsIfNeeded(view: SearchedFolder, ctx: SearchContext): Promise<Set<number> | undefined> {
  const n = view.messages.length;
  if (n === 0) return undefined;
  const lastUid = view.messages[n - 1].uid;
  if ((await ctx.store.countMessagesUpTo(view.folderId!, lastUid)) === n) return undefined;
  return new Set(await ctx.store.folderUids(view.folderId!));
}

async function matches(
  k: SearchKey,
  m: ViewMessage,
  seq: number,
  ctx: SearchContext,
  raw: { buf?: Buffer; head?: Buffer },
  uidSet: (k: any, byUid: boolean) => Set<number>,
  saved: Set<number>,
  indexed?: Indexed,
): Promise<boolean> {
  const hasFlag = (f: string) => m.flags.some((x) => x.toLowerCase() === f.toLowerCase());
  const getRaw = async () => (raw.buf ??= await ctx.blobs.read(m.blobId));
  switch (k.kind) {
    case 'all':
      return true;
    case 'seq':
      return uidSet(k, false).has(m.uid);
    case 'uid':
      return uidSet(k, true).has(m.uid);
    case 'savedresult':
      return saved.has(m.uid);
    case 'flag':
      return hasFlag(k.flag) === k.set;
    case 'recent':
      return m.recent === k.set;
    case 'new':
      return m.recent && !hasFlag('\\Seen');
    case 'old':
      return !m.recent;
    case 'size':
      return k.op === 'larger' ? m.size > k.n : m.size < k.n;
    case 'date': {
      let day: string | undefined;
      if (k.which === 'internal') day = dayOf(m.internalDate);
      else {
        // RFC 9051 §6.4.4: SENT* compare the Date: header's own date, ignoring time and zone;
        // a message without a valid Date: counts as 1970-01-01 (as Dovecot does).
        const sent = (await ctx.index.ensure(m.blobId)).sentDate;
        day = sent ? sent.slice(0, 10) : '1970-01-01';
      }
      if (!day) return false;
      return k.op === 'before' ? day < k.date : k.op === 'on' ? day === k.date : day >= k.date;
    }
    case 'older':
    case 'younger': {
      const age = (Date.now() - new Date(m.internalDate).getTime()) / 1000;
      return k.kind === 'older' ? age >= k.seconds : age <= k.seconds;
    }
    case 'header': {
      const answer = indexed?.answers.get(k);
      if (answer !== undefined && (indexed!.folderUids === undefined || indexed!.folderUids.has(m.uid))) {
        if (answer.matched.has(m.uid)) return true;
        if (!answer.unindexed.has(m.uid)) return false;
        // A message file analysed before the index existed: record its row now (read below), once.
        if (!indexed!.lazilyIndexed.has(m.blobId)) {
          indexed!.lazilyIndexed.add(m.blobId);
          await ctx.index.indexHeaders(m.blobId);
        }
      }
      const info = await ctx.index.ensure(m.blobId);
      // FROM/TO/CC/BCC search the address list, SUBJECT the decoded subject; HEADER the raw field.
      // Only the top-level header block is read from the message file, not the whole message.
      const mode = headerKeyMode(k.field, k.viaKeyword);
      if (!raw.buf && !raw.head && needsHead(info, mode)) raw.head = await readHead(ctx.blobs, m.blobId, info.root.bodyStart);
      const head = raw.buf ?? raw.head;
      const values = headerSearchValues(info, () => head!, k.field, mode);
      // RFC 9051 §6.4.4: HEADER with an empty string matches every message that has the field.
      if (k.value === '') return values.length > 0;
      const needle = fold(k.value);
      return values.some((v) => fold(v).includes(needle));
    }
    case 'body':
    case 'text': {
      const info = await ctx.index.ensure(m.blobId);
      return fold(searchableText(await getRaw(), info, k.kind)).includes(fold(k.value));
    }
    case 'modseq':
      return m.modseq >= Number(k.modseq);
    case 'not':
      return !(await matches(k.key, m, seq, ctx, raw, uidSet, saved, indexed));
    case 'or':
      return (await matches(k.a, m, seq, ctx, raw, uidSet, saved, indexed)) || (await matches(k.b, m, seq, ctx, raw, uidSet, saved, indexed));
    case 'and':
      for (const sub of k.keys) if (!(await matches(sub, m, seq, ctx, raw, uidSet, saved, indexed))) return false;
      return true;
  }
}
