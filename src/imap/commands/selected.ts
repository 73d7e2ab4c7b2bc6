// Selecting a folder and working in it (RFC 9051 §6.3.2–6.3.3, §6.4): SELECT and EXAMINE (with
// RFC 7162 CONDSTORE/QRESYNC), CLOSE, UNSELECT (RFC 3691), EXPUNGE and UID EXPUNGE (RFC 4315),
// CHECK, SEARCH (RFC 4731 ESEARCH, RFC 5182 SEARCHRES), FETCH, STORE, COPY and MOVE (RFC 6851),
// SORT and THREAD (RFC 5256).
import { bad, no } from '../errors.js';
import { fetchMessage, type FetchContext } from '../fetch.js';
import { orderedSequenceSet, quoted, sequenceSet as encodeSet } from '../protocol/encoder.js';
import type { Command, PartialRange, SearchKey, SearchReturn, SequenceSet } from '../protocol/types.js';
import { runSearch } from '../../mail/search.js';
import { MAX_SORT_CONTEXT_RESULT, MAX_UPDATE_CONTEXTS, SearchUpdates, type UpdateEvaluator } from '../search-updates.js';
import { sortItems, threadOrderedSubject, threadReferences, threadToString, type SortItem } from '../sort-thread.js';
import { FolderView } from '../view.js';
import { checkQuota } from './acl.js';
import { announceKeywords, destinationFolder, folderOf, nameOut, notifyChanged, writeFlagList, type Handlers, type SessionContext } from './context.js';
import { traceSelected, traceStore } from './trace.js';

export const selectedCommands = {
  SELECT: (ctx, cmd) => selectCommand(ctx, cmd),
  EXAMINE: (ctx, cmd) => selectCommand(ctx, cmd),
  CLOSE: (ctx, cmd) => close(ctx, cmd.name),
  UNSELECT: (ctx, cmd) => close(ctx, cmd.name),
  CHECK: async () => 'CHECK completed',
  EXPUNGE: (ctx) => expunge(ctx),
  'UID EXPUNGE': (ctx, cmd) => expunge(ctx, cmd.set),
  SEARCH: (ctx, cmd, tag) => search(ctx, false, cmd, tag),
  'UID SEARCH': (ctx, cmd, tag) => search(ctx, true, cmd, tag),
  FETCH: (ctx, cmd) => fetchMessages(ctx, false, cmd),
  'UID FETCH': (ctx, cmd) => fetchMessages(ctx, true, cmd),
  STORE: (ctx, cmd) => storeFlags(ctx, false, cmd),
  'UID STORE': (ctx, cmd) => storeFlags(ctx, true, cmd),
  COPY: (ctx, cmd) => copy(ctx, false, false, cmd.set, cmd.mailbox),
  'UID COPY': (ctx, cmd) => copy(ctx, true, false, cmd.set, cmd.mailbox),
  MOVE: (ctx, cmd) => copy(ctx, false, true, cmd.set, cmd.mailbox),
  'UID MOVE': (ctx, cmd) => copy(ctx, true, true, cmd.set, cmd.mailbox),
  SORT: (ctx, cmd, tag) => sortOrThread(ctx, cmd, tag),
  'UID SORT': (ctx, cmd, tag) => sortOrThread(ctx, cmd, tag),
  THREAD: (ctx, cmd, tag) => sortOrThread(ctx, cmd, tag),
  'UID THREAD': (ctx, cmd, tag) => sortOrThread(ctx, cmd, tag),
  CANCELUPDATE: async (ctx, cmd) => {
    // RFC 5267 §4.3.5: no further updates for the contexts named (all of them must exist).
    const unknown = ctx.searchUpdates?.view === ctx.view ? ctx.searchUpdates!.cancel(cmd.tags) : cmd.tags;
    if (unknown.length) throw no(undefined, `no update context for tag ${unknown.map((t) => quoted(t)).join(', ')}; nothing cancelled`);
    return 'CANCELUPDATE completed, no further updates';
  },
} satisfies Partial<Handlers>;

/** Expands a sequence set against the current view into sequence numbers or UIDs (RFC 9051 §9 seq-number). */
function expandSet(set: SequenceSet, max: number): number[] {
  const out = new Set<number>();
  for (const r of set.ranges) {
    let from = r.from === Infinity ? max : r.from;
    let to = r.to === Infinity ? max : r.to;
    if (from > to) [from, to] = [to, from];
    for (let i = Math.max(from, 1); i <= Math.min(to, max); i++) out.add(i);
  }
  return [...out].sort((a, b) => a - b);
}

async function selectCommand(ctx: SessionContext, cmd: Extract<Command, { name: 'SELECT' | 'EXAMINE' }>): Promise<string> {
  if (cmd.qresync && !ctx.qresync) throw bad('CLIENTBUG', 'QRESYNC parameters need ENABLE QRESYNC first (RFC 7162 §3.2.5)');
  if (cmd.condstore) ctx.enabled.add('CONDSTORE');
  return select(ctx, cmd.mailbox, cmd.name === 'EXAMINE', cmd.qresync);
}

async function close(ctx: SessionContext, name: 'CLOSE' | 'UNSELECT'): Promise<string> {
  const v = ctx.view!;
  // RFC 9051 §6.4.1: CLOSE expunges silently when the mailbox was selected read-write.
  const gone = name === 'CLOSE' && !v.readOnly && (await mayExpunge(ctx, v)) ? await ctx.s.store.expunge(v.folderId) : [];
  if (gone.length) await traceSelected(ctx, 'deleted', gone);
  ctx.view = undefined;
  ctx.searchUpdates = undefined; // RFC 5267 §4.3: updates cease with the selection
  ctx.state = 'auth';
  if (gone.length) notifyChanged(ctx, v.folderId);
  return `${name} completed`;
}

async function select(ctx: SessionContext, name: string, readOnly: boolean, qresync?: Extract<Command, { name: 'SELECT' | 'EXAMINE' }>['qresync']): Promise<string> {
  if (ctx.view) {
    // RFC 9051 §6.3.2: selecting another mailbox closes the current one (no expunge).
    ctx.view = undefined;
    ctx.searchUpdates = undefined;
    ctx.state = 'auth';
    // RFC 7162 §3.2.11 / RFC 9051 §6.3.2: CLOSED marks where the old mailbox's responses end.
    ctx.write('* OK [CLOSED] previous mailbox closed\r\n');
  }
  const { r, folder } = await folderOf(ctx, name);
  const acl = await ctx.s.core.imapRights(ctx.user!, r.access.mailbox);
  if (!acl.includes('r')) throw no('NOPERM', `you may not read ${r.access.mailbox.address}`);
  const ro = readOnly || !acl.includes('s') || r.access.mailbox.state === 'suspended';
  // Issue 15: SELECT at 100,000 messages in ≤ 100 ms: a big folder is brought up to date from the
  // process's snapshot of it (changes since its modseq), else read whole (the view's columns only).
  const { messages: msgs, ...st } = await ctx.s.snapshots.open(ctx.s.store, folder, !ro);
  const view = new FolderView(folder.id, r.access.mailbox.id, ro, folder.uidValidity, msgs, st.highestModseq);
  ctx.view = view;
  ctx.state = 'selected';
  ctx.write(`* ${msgs.length} EXISTS\r\n`);
  if (!ctx.rev2) ctx.write(`* ${view.recentCount} RECENT\r\n`);
  // RFC 9051 §7.3.5: FLAGS lists every keyword present in the folder (the view recorded them as announced).
  writeFlagList(ctx, view);
  const firstUnseen = ctx.rev2 ? 0 : view.firstUnseen();
  if (firstUnseen > 0) ctx.write(`* OK [UNSEEN ${firstUnseen}] first unseen\r\n`);
  ctx.write(`* OK [UIDVALIDITY ${folder.uidValidity}] UIDs valid\r\n`);
  ctx.write(`* OK [UIDNEXT ${st.uidNext}] predicted next UID\r\n`);
  // RFC 4467 §6: the URLAUTH mechanisms of the mailbox (INTERNAL; docs/imap.md "URLAUTH").
  ctx.write('* OK [URLMECH INTERNAL] URLAUTH mechanisms\r\n');
  // RFC 7162 §3.1.2.1: HIGHESTMODSEQ once CONDSTORE is enabled.
  if (ctx.condstore) ctx.write(`* OK [HIGHESTMODSEQ ${st.highestModseq}] highest modseq\r\n`);
  if (qresync && qresync.uidValidity === folder.uidValidity) {
    // RFC 7162 §3.2.5.1: report what changed since the client's modseq: VANISHED (EARLIER)
    // for expunged UIDs (within known-uids when given), then FETCH for changed messages.
    const since = Number(qresync.modseq);
    const maxUid = msgs.length ? msgs[msgs.length - 1].uid : 0;
    const known = qresync.knownUids ? new Set(expandSet(qresync.knownUids, Math.max(maxUid, st.uidNext))) : undefined;
    const gone = (await ctx.s.store.expungedSince(folder.id, since)).filter((u) => !known || known.has(u));
    if (gone.length) ctx.write(`* VANISHED (EARLIER) ${encodeSet(gone)}\r\n`);
    for (const m of view.messages) {
      if (m.modseq > since && (!known || known.has(m.uid))) ctx.write(`* ${view.seqOf(m.uid)} FETCH (UID ${m.uid} FLAGS (${ctx.flagsOut(m).join(' ')}) MODSEQ (${m.modseq}))\r\n`);
    }
  }
  if (ctx.rev2) ctx.write(`* LIST () "/" ${nameOut(ctx, ctx.ns!.nameOf(r.access, r.folder))}\r\n`);
  return `[${ro ? 'READ-ONLY' : 'READ-WRITE'}] ${readOnly ? 'EXAMINE' : 'SELECT'} completed`;
}

async function mayExpunge(ctx: SessionContext, v: FolderView): Promise<boolean> {
  const a = ctx.ns!.entries.find((e) => e.mailbox.id === v.mailboxId);
  return !!a && (await ctx.s.core.imapRights(ctx.user!, a.mailbox)).includes('e');
}

async function expunge(ctx: SessionContext, uidSet?: SequenceSet): Promise<string> {
  const v = ctx.view!;
  if (v.readOnly) throw no('READ-ONLY', 'mailbox is read-only');
  if (!(await mayExpunge(ctx, v))) throw no('NOPERM', 'you may not expunge in this mailbox');
  const maxUid = v.messages.length ? v.messages[v.messages.length - 1].uid : 0;
  const uids = uidSet ? expandSet(uidSet, maxUid).filter((u) => v.byUidGet(u)) : undefined;
  // Report others' changes first, so our EXPUNGE numbers are correct.
  await ctx.flushUpdates(true);
  const gone = await ctx.s.store.expunge(v.folderId, uids);
  announceExpunged(ctx, v, gone);
  if (gone.length) notifyChanged(ctx, v.folderId);
  await traceSelected(ctx, 'deleted', gone);
  return 'EXPUNGE completed';
}

function announceExpunged(ctx: SessionContext, v: FolderView, uids: number[]) {
  // RFC 5267 §4.3.4: REMOVEFROM before the EXPUNGE / VANISHED responses, with numbers still valid.
  if (ctx.searchUpdates?.view === v) {
    const gone = uids.flatMap((uid) => {
      const seq = v.seqOf(uid);
      return seq === undefined ? [] : [{ uid, seq }];
    });
    ctx.searchUpdates.expunging(gone, (l) => ctx.write(l));
  }
  const seqs = v.removeOwn(uids);
  if (ctx.qresync) {
    if (uids.length) ctx.write(`* VANISHED ${encodeSet(uids)}\r\n`);
  } else for (const seq of seqs) ctx.write(`* ${seq} EXPUNGE\r\n`);
}

/** Resolves a set to messages of the view (UID or sequence numbers). */
function resolveTargets(ctx: SessionContext, set: SequenceSet, byUid: boolean): { seq: number; uid: number }[] {
  const v = ctx.view!;
  if (set.saved) {
    const saved = new Set(ctx.savedSearch);
    return v.messages.map((m, i) => ({ seq: i + 1, uid: m.uid })).filter((m) => saved.has(m.uid));
  }
  if (byUid) {
    const maxUid = v.messages.length ? v.messages[v.messages.length - 1].uid : 0;
    // RFC 9051 §6.4.8: "*" in a UID set is the largest UID in use.
    const uids = new Set(expandSet(set, maxUid));
    return v.messages.map((m, i) => ({ seq: i + 1, uid: m.uid })).filter((m) => uids.has(m.uid));
  }
  const max = v.messages.length;
  for (const r of set.ranges) {
    for (const n of [r.from, r.to]) if (n !== Infinity && (n < 1 || n > max)) throw bad(undefined, `invalid message sequence number ${n} (mailbox has ${max} messages)`);
  }
  return expandSet(set, max).map((seq) => ({ seq, uid: v.messages[seq - 1].uid }));
}

/** The search context a session's searches run with (the SEARCH engine over its view). */
function searchContext(ctx: SessionContext) {
  return { store: ctx.s.store, blobs: ctx.s.blobs, index: ctx.s.index, saved: ctx.savedSearch, sequenceTargets: (set: SequenceSet, uid: boolean) => resolveTargets(ctx, set, uid) };
}

/**
 * The search program of an update context: message sequence numbers and "$" are resolved to UIDs
 * now (RFC 5267 §4.3: "any message sequence numbers used in the search program are evaluated at
 * the time the command is received").
 */
function freezeKey(ctx: SessionContext, k: SearchKey): SearchKey {
  const uids = (set: SequenceSet, byUid: boolean) => {
    let targets: { uid: number }[];
    try {
      targets = resolveTargets(ctx, set, byUid);
    } catch {
      targets = []; // RFC 9051 §6.4.4: a number outside the mailbox matches nothing
    }
    const ranges: { from: number; to: number }[] = [];
    for (const { uid } of targets) {
      const last = ranges[ranges.length - 1];
      if (last && last.to + 1 === uid) last.to = uid;
      else ranges.push({ from: uid, to: uid });
    }
    return { kind: 'uid' as const, set: { ranges } };
  };
  switch (k.kind) {
    case 'seq':
      return uids(k.set, false);
    case 'savedresult':
      return uids({ ranges: [], saved: true }, true);
    case 'not':
      return { kind: 'not', key: freezeKey(ctx, k.key) };
    case 'or':
      return { kind: 'or', a: freezeKey(ctx, k.a), b: freezeKey(ctx, k.b) };
    case 'and':
      return { kind: 'and', keys: k.keys.map((x) => freezeKey(ctx, x)) };
    case 'uid':
      return k.set.saved ? uids(k.set, true) : k;
    default:
      return k;
  }
}

/** From this many changed messages on, an update context's header keys use the header index. */
const INDEXED_REEVALUATION = 200;

/** How the session's update contexts re-evaluate changed messages (search-updates.ts). */
function updateEvaluator(ctx: SessionContext): UpdateEvaluator {
  return {
    // A few changed messages are read (their analysis is cached); many (a STORE 1:*) use the
    // folder's header index, as a full SEARCH does.
    matching: async (key, messages) => {
      const folder = messages.length >= INDEXED_REEVALUATION ? { messages, folderId: ctx.view!.folderId } : { messages };
      return new Set((await runSearch(key, folder, searchContext(ctx))).map((m) => messages[m.seq - 1].uid));
    },
    sortable: async (m) => ({ uid: m.uid, internalDate: m.internalDate, info: await ctx.s.index.ensure(m.blobId) }),
  };
}

/** Sends the ADDTO / REMOVEFROM of the session's update contexts for what changed (RFC 5267 §4.3). */
export async function refreshSearchUpdates(ctx: SessionContext): Promise<void> {
  const u = ctx.searchUpdates;
  if (!u) return;
  if (u.view !== ctx.view) {
    // RFC 5267 §4.3: "Updates will cease when the mailbox is no longer selected".
    ctx.searchUpdates = undefined;
    return;
  }
  await u.refresh(updateEvaluator(ctx), (l) => ctx.write(l));
}

/**
 * RFC 5267 §4.3: may `tag` open an update context? BAD when the tag already names one (the
 * command is rejected); false with an untagged NO [NOUPDATE] when the server will not keep it
 * (§4.3.1: the other return options are still honoured).
 */
function mayUpdate(ctx: SessionContext, tag: string, resultSize?: number): boolean {
  const u = ctx.searchUpdates?.view === ctx.view ? ctx.searchUpdates : undefined;
  if (u?.has(tag)) throw bad('CLIENTBUG', `tag ${quoted(tag)} already names an update context (RFC 5267 §4.3: tags must not be reused)`);
  if ((u?.size ?? 0) >= MAX_UPDATE_CONTEXTS) {
    ctx.write(`* NO [NOUPDATE ${quoted(tag)}] too many update contexts (at most ${MAX_UPDATE_CONTEXTS}); CANCELUPDATE one first\r\n`);
    return false;
  }
  if (resultSize !== undefined && resultSize > MAX_SORT_CONTEXT_RESULT) {
    ctx.write(`* NO [NOUPDATE ${quoted(tag)}] sorted result too large to keep updated (more than ${MAX_SORT_CONTEXT_RESULT} messages)\r\n`);
    return false;
  }
  return true;
}

function updatesFor(ctx: SessionContext): SearchUpdates {
  if (ctx.searchUpdates?.view !== ctx.view) ctx.searchUpdates = new SearchUpdates(ctx.view!);
  return ctx.searchUpdates!;
}

/**
 * The ESEARCH response (RFC 4731 §3.1, RFC 9051 §7.3.4) of SEARCH, or of SORT with RFC 5267 ESORT
 * (`sorted`: `ids` are in the requested order, §3.1), with RFC 5267 §4.4 PARTIAL. undefined when
 * nothing is to be sent (RETURN (SAVE) alone, RFC 5182 §2.4).
 */
function esearchResponse(tag: string, byUid: boolean, ids: number[], returns: SearchReturn, partial: PartialRange | undefined, highest: number, sorted: boolean): string | undefined {
  // RFC 4731 §3.1: RETURN () means ALL; RFC 5267 §4.2: CONTEXT is a hint this server ignores.
  const opts = returns.filter((o) => o !== 'CONTEXT');
  if (opts.length === 0) opts.push('ALL');
  if (opts.length === 1 && opts[0] === 'SAVE') return undefined;
  const set = (list: number[]) => (sorted ? orderedSequenceSet(list) : encodeSet(list));
  const parts: string[] = [];
  if (ids.length) {
    // RFC 5267 §3.1 (ESORT): MIN and MAX are the first and last messages in the sort order.
    if (opts.includes('MIN')) parts.push(`MIN ${sorted ? ids[0] : Math.min(...ids)}`);
    if (opts.includes('MAX')) parts.push(`MAX ${sorted ? ids[ids.length - 1] : Math.max(...ids)}`);
    if (opts.includes('ALL')) parts.push(`ALL ${set(ids)}`);
  }
  if (partial) {
    // RFC 5267 §4.4: the results at positions from..to (1-based) of the ordered result, NIL when none.
    const slice = ids.slice(partial.from - 1, partial.to);
    parts.push(`PARTIAL (${partial.from}:${partial.to} ${slice.length ? set(slice) : 'NIL'})`);
  }
  if (opts.includes('COUNT')) parts.push(`COUNT ${ids.length}`);
  if (highest) parts.push(`MODSEQ ${highest}`);
  return `* ESEARCH (TAG ${quoted(tag)})${byUid ? ' UID' : ''}${parts.length ? ' ' + parts.join(' ') : ''}\r\n`;
}

/** RFC 7162 §3.1.5: does the search program use MODSEQ (CONDSTORE-enabling, MODSEQ in the result)? */
function usesModseq(key: SearchKey): boolean {
  switch (key.kind) {
    case 'modseq':
      return true;
    case 'not':
      return usesModseq(key.key);
    case 'or':
      return usesModseq(key.a) || usesModseq(key.b);
    case 'and':
      return key.keys.some(usesModseq);
    default:
      return false;
  }
}

/**
 * RFC 7162 §3.1.5 with RFC 4731: the MODSEQ is the highest of the messages actually returned
 * (only the MIN and/or MAX message when neither ALL nor COUNT was asked). `ordered` in the result's order.
 */
function highestModseq(v: FolderView, ordered: { uid: number }[], ids: number[], returns: SearchReturn | undefined, sorted: boolean): number {
  if (!ordered.length) return 0;
  let returned = ordered;
  const ropts = returns ?? [];
  if (returns && ropts.length && !ropts.includes('ALL') && !ropts.includes('COUNT') && !ropts.includes('PARTIAL') && ropts.some((o) => o === 'MIN' || o === 'MAX')) {
    let lo = 0;
    let hi = ordered.length - 1;
    if (!sorted) {
      for (let i = 0; i < ids.length; i++) {
        if (ids[i] < ids[lo]) lo = i;
        if (ids[i] > ids[hi]) hi = i;
      }
    }
    returned = [...(ropts.includes('MIN') ? [ordered[lo]] : []), ...(ropts.includes('MAX') ? [ordered[hi]] : [])];
  }
  let max = 0;
  for (const m of returned) max = Math.max(max, v.byUidGet(m.uid)?.modseq ?? 0);
  return max;
}

async function search(ctx: SessionContext, byUid: boolean, cmd: Extract<Command, { name: 'SEARCH' | 'UID SEARCH' }>, tag: string): Promise<string> {
  const { key, returns, charset, partial } = cmd;
  // RFC 6855 §3: after ENABLE UTF8=ACCEPT a SEARCH with a charset SHOULD get BAD (conflicting labels).
  if (charset !== undefined && ctx.enabled.has('UTF8=ACCEPT')) throw bad(undefined, `SEARCH CHARSET ${charset} after ENABLE UTF8=ACCEPT: search strings are UTF-8, leave the charset out (RFC 6855 §3)`);
  if (charset && !/^(utf-8|us-ascii)$/i.test(charset)) throw no('BADCHARSET (UTF-8 US-ASCII)', `charset ${charset} is not supported`);
  const v = ctx.view!;
  const update = returns?.includes('UPDATE') && mayUpdate(ctx, tag);
  const frozen = update ? freezeKey(ctx, key) : key;
  const matches = await runSearch(key, v, searchContext(ctx));
  const ids = matches.map((m) => (byUid ? m.uid : m.seq));
  // RFC 7162 §3.1.5: a MODSEQ search key adds the highest mod-sequence of the matches.
  const modseqKey = usesModseq(key);
  if (modseqKey) ctx.enableCondstore();
  const highest = modseqKey ? highestModseq(v, matches, ids, returns, false) : 0;
  if (returns !== undefined) {
    // RFC 4731 ESEARCH; RFC 5182 SAVE; RFC 5267 §4 CONTEXT=SEARCH (UPDATE, PARTIAL).
    if (returns.includes('SAVE')) ctx.savedSearch = matches.map((m) => m.uid);
    const out = esearchResponse(tag, byUid, ids, returns, partial, highest, false);
    if (out) ctx.write(out);
    if (update) updatesFor(ctx).addSearch(tag, byUid, frozen, matches.map((m) => m.uid));
  } else if (ctx.rev2) {
    ctx.write(`* ESEARCH (TAG ${quoted(tag)})${byUid ? ' UID' : ''}${ids.length ? ` ALL ${encodeSet(ids)}` : ''}${highest ? ` MODSEQ ${highest}` : ''}\r\n`);
  } else {
    ctx.write(`* SEARCH${ids.length ? ' ' + ids.join(' ') : ''}${highest ? ` (MODSEQ ${highest})` : ''}\r\n`);
  }
  return `${byUid ? 'UID ' : ''}SEARCH completed${update ? ', will notify' : ''}`;
}

async function fetchMessages(ctx: SessionContext, byUid: boolean, cmd: Extract<Command, { name: 'FETCH' | 'UID FETCH' }>): Promise<string> {
  const v = ctx.view!;
  let targets = resolveTargets(ctx, cmd.set, byUid);
  const attrs = [...cmd.attributes];
  if (byUid && !attrs.some((a) => a.kind === 'uid')) attrs.unshift({ kind: 'uid' });
  if (attrs.some((a) => a.kind === 'modseq')) ctx.enableCondstore();
  if (cmd.changedSince !== undefined) {
    // RFC 7162 §3.1.4.1: CHANGEDSINCE returns only messages changed after it, with MODSEQ.
    ctx.enableCondstore();
    const since = Number(cmd.changedSince);
    if (cmd.vanished) {
      // RFC 7162 §3.2.6: VANISHED needs QRESYNC and UID FETCH; expunged UIDs of the set first.
      if (!ctx.qresync || !byUid) throw bad('CLIENTBUG', 'VANISHED needs ENABLE QRESYNC and UID FETCH');
      const maxUid = Math.max(v.messages.length ? v.messages[v.messages.length - 1].uid : 0, ...(await ctx.s.store.expungedSince(v.folderId, since)));
      const inSet = new Set(expandSet(cmd.set, maxUid));
      const gone = (await ctx.s.store.expungedSince(v.folderId, since)).filter((u) => inSet.has(u) && !v.byUidGet(u));
      if (gone.length) ctx.write(`* VANISHED (EARLIER) ${encodeSet(gone)}\r\n`);
    }
    targets = targets.filter((t) => (v.byUidGet(t.uid)?.modseq ?? 0) > since);
    if (!attrs.some((a) => a.kind === 'modseq')) attrs.push({ kind: 'modseq' });
  }
  const setsSeen = !v.readOnly && attrs.some((a) => (a.kind === 'body' && !a.peek) || a.kind === 'rfc822' || a.kind === 'rfc822.text' || (a.kind === 'binary' && !a.peek));
  let seenSet = false;
  const seenUids: number[] = [];
  const fetchCtx: FetchContext = { store: ctx.s.store, blobs: ctx.s.blobs, index: ctx.s.index, write: (d) => ctx.write(d), drainWait: () => ctx.waitDrain(), utf8: ctx.utf8 };
  for (const t of targets) {
    let m = v.byUidGet(t.uid);
    if (!m) continue;
    let flagsChanged = false;
    if (setsSeen && !m.flags.some((f) => f.toLowerCase() === '\\seen')) {
      // RFC 9051 §6.4.5: BODY[...] (not PEEK) sets \Seen.
      const r = await ctx.s.store.storeFlags(v.folderId, [m.uid], 'add', ['\\Seen']);
      const u = r.updated[0];
      if (u) v.applyOwnFlags(u.uid, u.flags, u.modseq);
      m = v.byUidGet(t.uid) ?? m; // applyOwnFlags replaced it (messages are never edited in place)
      flagsChanged = true;
      seenSet = true;
      if (u) seenUids.push(u.uid);
    }
    let withFlags = flagsChanged && !attrs.some((a) => a.kind === 'flags') ? [...attrs, { kind: 'flags' as const }] : attrs;
    if (flagsChanged && ctx.condstore && !withFlags.some((a) => a.kind === 'modseq')) withFlags = [...withFlags, { kind: 'modseq' as const }];
    // RFC 9051 §7.3.5: never show a keyword the session was not told about (normally all are).
    if (withFlags.some((a) => a.kind === 'flags')) announceKeywords(ctx, v, [m.flags]);
    await fetchMessage(fetchCtx, t.seq, m, withFlags, ctx.flagsOut(m));
  }
  if (setsSeen) notifyChanged(ctx, v.folderId);
  // Golden rules 1 and 2: a message read by an entitled user (the ACL allowed it) is activity.
  if (seenSet) await ctx.s.core.recordActivity([v.mailboxId], 'read');
  await traceSelected(ctx, 'read', seenUids);
  return `${byUid ? 'UID ' : ''}FETCH completed`;
}

/** RFC 5256 SORT and THREAD over the messages matching the search key. */
async function sortOrThread(ctx: SessionContext, cmd: Extract<Command, { name: 'SORT' | 'UID SORT' | 'THREAD' | 'UID THREAD' }>, tag: string): Promise<string> {
  if (!/^(utf-8|us-ascii)$/i.test(cmd.charset)) throw no('BADCHARSET (UTF-8 US-ASCII)', `charset ${cmd.charset} is not supported`);
  const v = ctx.view!;
  const byUid = cmd.name.startsWith('UID');
  const returns = cmd.name === 'SORT' || cmd.name === 'UID SORT' ? cmd.returns : undefined;
  const wantsUpdate = !!returns?.includes('UPDATE');
  // RFC 5267 §4.3: a reused tag is BAD before anything is sent.
  if (wantsUpdate && ctx.searchUpdates?.view === v && ctx.searchUpdates.has(tag)) mayUpdate(ctx, tag);
  const frozen = wantsUpdate ? freezeKey(ctx, cmd.key) : cmd.key;
  const matches = await runSearch(cmd.key, v, searchContext(ctx));
  const items: SortItem[] = [];
  for (const m of matches) {
    const msg = v.byUidGet(m.uid)!;
    items.push({ seq: m.seq, uid: m.uid, size: msg.size, internalDate: msg.internalDate, info: await ctx.s.index.ensure(msg.blobId) });
  }
  const idOf = (i: SortItem) => (byUid ? i.uid : i.seq);
  if (cmd.name === 'SORT' || cmd.name === 'UID SORT') {
    const sortedItems = sortItems(items, cmd.keys);
    const sorted = sortedItems.map(idOf);
    if (returns === undefined) {
      ctx.write(`* SORT${sorted.length ? ' ' + sorted.join(' ') : ''}\r\n`);
      return `${cmd.name} completed`;
    }
    // RFC 5267 §3 ESORT: the ESEARCH response, results in the sort order; §4 CONTEXT=SORT.
    const modseqKey = usesModseq(cmd.key);
    if (modseqKey) ctx.enableCondstore();
    const highest = modseqKey ? highestModseq(v, sortedItems, sorted, returns, true) : 0;
    if (returns.includes('SAVE')) ctx.savedSearch = matches.map((m) => m.uid);
    const update = wantsUpdate && mayUpdate(ctx, tag, sortedItems.length);
    const out = esearchResponse(tag, byUid, sorted, returns, cmd.partial, highest, true);
    if (out) ctx.write(out);
    if (update) updatesFor(ctx).addSort(tag, byUid, frozen, cmd.keys, sortedItems);
    return `${cmd.name} completed${update ? ', will notify' : ''}`;
  }
  if (cmd.name !== 'THREAD' && cmd.name !== 'UID THREAD') throw new Error('unreachable');
  const alg = cmd.algorithm.toUpperCase();
  let threads;
  if (alg === 'ORDEREDSUBJECT') threads = threadOrderedSubject(items, idOf);
  else if (alg === 'REFERENCES') threads = threadReferences(items, idOf);
  else throw bad(undefined, `unknown threading algorithm ${cmd.algorithm}`);
  const out = threadToString(threads);
  ctx.write(`* THREAD${out ? ' ' + out : ''}\r\n`);
  return `${cmd.name} completed`;
}

async function storeFlags(ctx: SessionContext, byUid: boolean, cmd: Extract<Command, { name: 'STORE' | 'UID STORE' }>): Promise<string> {
  const v = ctx.view!;
  if (v.readOnly) throw no('READ-ONLY', 'mailbox is read-only');
  const targets = resolveTargets(ctx, cmd.set, byUid);
  const a = ctx.ns!.entries.find((e) => e.mailbox.id === v.mailboxId)!;
  const acl = await ctx.s.core.imapRights(ctx.user!, a.mailbox);
  const flags = cmd.action.flags.filter((f) => f.toLowerCase() !== '\\recent');
  // RFC 4314 §4: \Seen needs "s", \Deleted "t", other flags "w".
  for (const f of flags) {
    const need = f.toLowerCase() === '\\seen' ? 's' : f.toLowerCase() === '\\deleted' ? 't' : 'w';
    if (!acl.includes(need)) throw no('NOPERM', `you may not change the flag ${f} here`);
  }
  if (cmd.unchangedSince !== undefined) ctx.enableCondstore();
  const unchangedSince = cmd.unchangedSince !== undefined ? Number(cmd.unchangedSince) : undefined;
  const r = await ctx.s.store.storeFlags(v.folderId, targets.map((t) => t.uid), cmd.action.op, flags, unchangedSince);
  // RFC 9051 §7.3.5: a keyword new to the folder is announced by FLAGS before the FETCH showing it
  // (also with .SILENT, so the session's FLAGS list stays that of the folder).
  announceKeywords(ctx, v, r.updated.map((u) => u.flags));
  for (const u of r.updated) {
    const before = v.byUidGet(u.uid)?.modseq;
    v.applyOwnFlags(u.uid, u.flags, u.modseq);
    // RFC 7162 §3.1.3: with .SILENT, a FETCH is still sent when CONDSTORE reports a new MODSEQ.
    const changed = before !== u.modseq;
    if (!cmd.action.silent || (ctx.condstore && unchangedSince !== undefined && changed)) {
      const m = v.byUidGet(u.uid)!;
      const flagsPart = cmd.action.silent ? '' : `FLAGS (${ctx.flagsOut(m).join(' ')})`;
      const modseqPart = ctx.condstore ? `MODSEQ (${u.modseq})` : '';
      ctx.write(`* ${v.seqOf(u.uid)} FETCH (${[byUid ? `UID ${u.uid}` : '', flagsPart, modseqPart].filter(Boolean).join(' ')})\r\n`);
    }
  }
  if (r.updated.length) notifyChanged(ctx, v.folderId);
  // Golden rules 1 and 2: \Seen set by an entitled user ("s" right checked above) is activity.
  if (r.updated.length && cmd.action.op !== 'remove' && flags.some((f) => f.toLowerCase() === '\\seen')) await ctx.s.core.recordActivity([v.mailboxId], 'read');
  await traceStore(ctx, cmd.action.op, flags, r.updated.map((u) => u.uid));
  if (r.modifiedUids.length) {
    // RFC 7162 §3.1.3: MODIFIED lists the messages that failed the UNCHANGEDSINCE test.
    const ids = byUid ? r.modifiedUids : r.modifiedUids.map((u) => v.seqOf(u)!).sort((a, b) => a - b);
    return `[MODIFIED ${encodeSet(ids)}] conditional STORE failed for some messages`;
  }
  return `${byUid ? 'UID ' : ''}STORE completed`;
}

async function copy(ctx: SessionContext, byUid: boolean, move: boolean, set: SequenceSet, mailbox: string): Promise<string> {
  const v = ctx.view!;
  const dest = await destinationFolder(ctx, mailbox);
  if (move) {
    if (v.readOnly) throw no('READ-ONLY', 'mailbox is read-only');
    if (!(await mayExpunge(ctx, v))) throw no('NOPERM', 'you may not move messages out of this mailbox');
  }
  const targets = resolveTargets(ctx, set, byUid);
  const verb = `${byUid ? 'UID ' : ''}${move ? 'MOVE' : 'COPY'}`;
  if (targets.length === 0) return `${verb} completed (no messages)`;
  const size = targets.reduce((n, t) => n + (v.byUidGet(t.uid)?.size ?? 0), 0);
  if (dest.r.access.mailbox.id !== v.mailboxId) await checkQuota(ctx, dest.r.access, size);
  const map = await ctx.s.store.copyMessages(v.folderId, targets.map((t) => t.uid), dest.folder.id, move);
  notifyChanged(ctx, dest.folder.id);
  // RFC 4315 §3 COPYUID; for MOVE it is sent untagged before the EXPUNGEs (RFC 6851 §4.3).
  const into = { to: dest.folder.name, ...(dest.r.access.mailbox.id !== v.mailboxId ? { toMailbox: dest.r.access.mailbox.address } : {}) };
  await traceSelected(ctx, move ? 'moved' : 'copied', map.map((m) => m.from), into);
  const copyuid = `COPYUID ${dest.folder.uidValidity} ${encodeSet(map.map((m) => m.from))} ${encodeSet(map.map((m) => m.to))}`;
  if (move) {
    ctx.write(`* OK [${copyuid}] moved\r\n`);
    await ctx.flushUpdates(true);
    announceExpunged(ctx, v, map.map((m) => m.from));
    notifyChanged(ctx, v.folderId);
    return `${verb} completed`;
  }
  return `[${copyuid}] ${verb} completed`;
}
