// SEARCH evaluation (RFC 9051 §6.4.4), shared by IMAP (UID SEARCH) and the mail API
// (/api/v1/search). Flags, sizes, dates and sets come from the folder's messages; header, body
// and sent-date keys use the message index and, for text, the decoded message content.
import { headerValues, normalizeForSearch, searchableText } from '../mime/index.js';
import type { BlobStore } from '../store/blobs.js';
import type { FolderMessage, Store } from '../store/types.js';
import type { MessageIndex } from './message-index.js';
import type { SearchKey, SequenceSet } from './search-key.js';

type ViewMessage = FolderMessage;
/** The messages searched, in UID order (an IMAP session's FolderView, or a folder's messages for the API). */
export interface SearchedFolder {
  messages: FolderMessage[];
}

export interface SearchContext {
  store: Store;
  blobs: BlobStore;
  index: MessageIndex;
  saved: number[];
  sequenceTargets(set: SequenceSet, byUid: boolean): { seq: number; uid: number }[];
}

/** RFC 9051 §6.4.4: case-insensitive substring match, folded the way Dovecot folds (case, accents). */
const fold = normalizeForSearch;

async function readHead(blobs: BlobStore, blobId: string, end: number): Promise<Buffer> {
  if (end <= 0) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const c of blobs.stream(blobId, { start: 0, end: end - 1 })) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function dayOf(iso: string | null): string | undefined {
  if (!iso) return undefined;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString().slice(0, 10);
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
  for (let i = 0; i < view.messages.length; i++) {
    const m = view.messages[i];
    const raw: { buf?: Buffer; head?: Buffer } = {};
    if (await matches(key, m, i + 1, ctx, raw, uidSet, saved)) out.push({ seq: i + 1, uid: m.uid });
  }
  return out;
}

async function matches(
  k: SearchKey,
  m: ViewMessage,
  seq: number,
  ctx: SearchContext,
  raw: { buf?: Buffer; head?: Buffer },
  uidSet: (k: any, byUid: boolean) => Set<number>,
  saved: Set<number>,
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
      const info = await ctx.index.ensure(m.blobId);
      const f = k.field.toLowerCase();
      // FROM/TO/CC/BCC search the address list, SUBJECT the decoded subject; HEADER the raw field.
      const mode = !k.viaKeyword ? 'plain' : f === 'subject' ? 'subject' : 'address';
      let values: string[];
      if (mode === 'subject' && info.envelope.subject !== null && !/\n/.test(info.envelope.subject)) {
        // Fast path: the decoded first Subject: kept by the index (no file read). A message with
        // several Subject: fields (malformed, RFC 5322 §3.6 allows one) is searched on the first.
        values = [info.subject.replace(/[ \t\r\n]+/g, ' ')];
      } else {
        // Only the top-level header block is read from the message file, not the whole message.
        const head = raw.buf ?? (raw.head ??= await readHead(ctx.blobs, m.blobId, info.root.bodyStart));
        values = headerValues(head, info, k.field, mode);
      }
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
      return !(await matches(k.key, m, seq, ctx, raw, uidSet, saved));
    case 'or':
      return (await matches(k.a, m, seq, ctx, raw, uidSet, saved)) || (await matches(k.b, m, seq, ctx, raw, uidSet, saved));
    case 'and':
      for (const sub of k.keys) if (!(await matches(sub, m, seq, ctx, raw, uidSet, saved))) return false;
      return true;
  }
}
