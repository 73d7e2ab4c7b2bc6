// RFC 5465 NOTIFY: the client asks for events on the selected folder (sent at once, not only at
// the end of commands) and on other folders (as untagged STATUS responses). Supported events:
// MessageNew (with FETCH attributes for the selected folder), MessageExpunge, FlagChange;
// MailboxName and SubscriptionChange (§5.4, §5.5: unsolicited LIST), MailboxMetadataChange and
// ServerMetadataChange (§5.6, §5.7: unsolicited METADATA, RFC 5464 §4.4.2); AnnotationChange gets
// NO [BADEVENT] (no ANNOTATE). Watched folders are those the user may read: core decides ("r",
// RFC 5465 §5: "l" and "r"), at NOTIFY time and again at each event (§5.9: access may be lost
// later; a grant given or withdrawn shows as the mailbox's folders appearing or going, §5.4).
import type { FoldersChange, MetadataChange } from '../../core/index.js';
import type { Folder } from '../../model/index.js';
import { bad, no } from '../errors.js';
import { fetchMessage, type FetchContext } from '../fetch.js';
import { UserNamespace, type MailboxAccess } from '../namespace.js';
import type { Command, FetchAttribute, NotifyFilter } from '../protocol/types.js';
import { astring } from '../protocol/encoder.js';
import { decodeName, nameOut, type Handlers, type SessionContext } from './context.js';

/**
 * RFC 5465 §5.8: how many METADATA entry names (§5.6, §5.7) may wait for one session — busy in a
 * long command (a big FETCH to a client that reads slowly), or behind a push the client does not
 * read — before the server stops notifying it. Past it, the waiting list is dropped, `* OK
 * [NOTIFICATIONOVERFLOW]` goes out where the notifications would have, and the session behaves
 * as if NOTIFY NONE had been received (the client can issue NOTIFY SET again). The other pending
 * events are sets of folder and mailbox ids (one entry per folder however many changes), bounded
 * by what the user holds.
 */
export const NOTIFY_MAX_PENDING = 1000;

/** The message events (§5.1–5.3): they make a folder watched for STATUS. */
const MESSAGE_EVENTS = new Set(['MESSAGENEW', 'MESSAGEEXPUNGE', 'FLAGCHANGE']);

const SUPPORTED = new Set(['MESSAGENEW', 'MESSAGEEXPUNGE', 'FLAGCHANGE', 'MAILBOXNAME', 'SUBSCRIPTIONCHANGE', 'MAILBOXMETADATACHANGE', 'SERVERMETADATACHANGE']);
const SUPPORTED_NAMES = 'MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange MailboxMetadataChange ServerMetadataChange';

/** A mailbox specifier other than SELECTED, names decoded (matched at each event: §5.4 names change). */
type Spec = { kind: 'PERSONAL' | 'INBOXES' | 'SUBSCRIBED' } | { kind: 'SUBTREE' | 'MAILBOXES'; names: string[] };

/** What the client was told of one mailbox's folders (id → name in the mailbox) and subscriptions. */
interface Known {
  folders: Map<number, string>;
  subs: Set<string>;
}

/** RFC 5465 §5.4–5.7: the groups asking for mailbox-list and metadata events, and what is pending. */
interface MailboxEvents {
  name: Spec[];
  subscription: Spec[];
  metadata: Spec[];
  server: boolean;
  /** By mailbox id: taken at NOTIFY time, updated as differences are reported. */
  known: Map<number, Known>;
  /** Mailboxes whose folders or subscriptions changed; `namespace`: a grant of the user changed. */
  pending: Set<number>;
  namespace: boolean;
  metadataChanges: MetadataChange[];
  /** How many entry names metadataChanges holds for this session (bounded by NOTIFY_MAX_PENDING). */
  metadataEntries: number;
}

interface Watched {
  access: MailboxAccess;
  folder: Folder;
  name: string;
  events: Set<string>;
  /** The values last reported (STATUS items), to send only what changed. */
  last?: Record<string, number>;
}

export interface NotifyState {
  /** SELECTED / SELECTED-DELAYED: message events of the selected folder; FETCH attributes for new messages. */
  selected?: { delayed: boolean; events: Set<string>; fetch?: FetchAttribute[] };
  /** Other folders, by folder id. */
  watched: Map<number, Watched>;
  /** Folders with a change not reported yet (reported between commands, or at the end of the running one). */
  pending: Set<number>;
  /** MailboxName, SubscriptionChange, MailboxMetadataChange, ServerMetadataChange asked for. */
  mailboxEvents?: MailboxEvents;
}

export const notifyCommands = {
  NOTIFY: (ctx, cmd) => notify(ctx, cmd),
} satisfies Partial<Handlers>;

/** The folders a mailbox specifier names, among those of the user's namespace (RFC 5465 §6.2–6.6). */
async function foldersOf(ctx: SessionContext, f: Exclude<NotifyFilter, { kind: 'SELECTED' | 'SELECTED-DELAYED' }>): Promise<{ access: MailboxAccess; folder: Folder; name: string }[]> {
  const out: { access: MailboxAccess; folder: Folder; name: string }[] = [];
  const names = f.kind === 'SUBTREE' || f.kind === 'MAILBOXES' ? f.mailboxes.map((n) => decodeName(ctx, n)) : [];
  for (const a of ctx.ns!.entries) {
    // §6.2/§6.3: PERSONAL is the personal namespace; INBOXES is treated as PERSONAL (allowed).
    if ((f.kind === 'PERSONAL' || f.kind === 'INBOXES') && a.prefix !== '') continue;
    const subs = f.kind === 'SUBSCRIBED' ? new Set(await ctx.s.store.listSubscriptions(a.mailbox.id)) : undefined;
    for (const folder of await ctx.s.store.listFolders(a.mailbox.id)) {
      const name = ctx.ns!.nameOf(a, folder.name);
      const hit =
        f.kind === 'PERSONAL' || f.kind === 'INBOXES'
          ? true
          : f.kind === 'SUBSCRIBED'
            ? subs!.has(folder.name)
            : f.kind === 'MAILBOXES'
              ? names.includes(name) // §6.6: no wildcard expansion
              : names.some((n) => name === n || name.startsWith(n + '/')); // §6.5
      if (hit) out.push({ access: a, folder, name });
    }
  }
  return out;
}

async function notify(ctx: SessionContext, cmd: Extract<Command, { name: 'NOTIFY' }>): Promise<string> {
  sendOverflow(ctx); // an overflow before this command is reported before its responses
  if (cmd.groups === null) {
    ctx.notify = undefined; // NOTIFY NONE
    return 'NOTIFY completed, no notifications';
  }
  // §3.1: an unsupported event type is NO [BADEVENT (the events supported)], not BAD.
  const unsupported = cmd.groups.flatMap((g) => g.events.map((e) => e.name)).filter((n) => !SUPPORTED.has(n));
  if (unsupported.length) throw no(`BADEVENT (${SUPPORTED_NAMES})`, `unsupported event ${unsupported[0]}`);
  const state: NotifyState = { watched: new Map(), pending: new Set() };
  const me: MailboxEvents = { name: [], subscription: [], metadata: [], server: false, known: new Map(), pending: new Set(), namespace: false, metadataChanges: [], metadataEntries: 0 };
  const rights = new Map<MailboxAccess, string>();
  const canRead = async (a: MailboxAccess) => {
    let r = rights.get(a);
    if (r === undefined) rights.set(a, (r = await ctx.s.core.imapRights(ctx.user!, a.mailbox)));
    return r.includes('l') && r.includes('r');
  };
  for (const g of cmd.groups) {
    const events = new Set(g.events.map((e) => e.name));
    if (g.filter.kind === 'SELECTED' || g.filter.kind === 'SELECTED-DELAYED') {
      const fetch = g.events.flatMap((e) => ('fetch' in e && e.fetch ? e.fetch : []));
      // §5.2: the client SHOULD NOT ask for attributes that set \Seen; this server refuses them.
      if (fetch.some((a) => (a.kind === 'body' || a.kind === 'binary') && !a.peek) || fetch.some((a) => a.kind === 'rfc822' || a.kind === 'rfc822.text')) {
        throw bad('CLIENTBUG', 'MessageNew FETCH attributes must not set \\Seen (use BODY.PEEK / BINARY.PEEK)');
      }
      state.selected = { delayed: g.filter.kind === 'SELECTED-DELAYED', events, ...(fetch.length ? { fetch } : {}) };
      continue;
    }
    const spec: Spec = g.filter.kind === 'SUBTREE' || g.filter.kind === 'MAILBOXES' ? { kind: g.filter.kind, names: g.filter.mailboxes.map((n) => decodeName(ctx, n)) } : { kind: g.filter.kind };
    if (events.has('MAILBOXNAME')) me.name.push(spec);
    if (events.has('SUBSCRIPTIONCHANGE')) me.subscription.push(spec);
    if (events.has('MAILBOXMETADATACHANGE')) me.metadata.push(spec);
    if (events.has('SERVERMETADATACHANGE')) me.server = true;
    for (const f of await foldersOf(ctx, g.filter)) {
      // §3.1: a mailbox the user may not read is ignored.
      if (!(await canRead(f.access))) continue;
      const w = state.watched.get(f.folder.id);
      if (w) for (const e of events) w.events.add(e);
      else if ([...events].some((e) => MESSAGE_EVENTS.has(e))) state.watched.set(f.folder.id, { ...f, events });
    }
  }
  if (me.name.length || me.subscription.length || me.metadata.length || me.server) {
    if (me.name.length || me.subscription.length) for (const a of ctx.ns!.entries) me.known.set(a.mailbox.id, await knownOf(ctx, a.mailbox.id));
    state.mailboxEvents = me;
  }
  ctx.notify = state;
  if (cmd.status) {
    // §3.1: with STATUS, a STATUS response for each watched folder other than the selected one:
    // MessageNew → MESSAGES UIDNEXT UIDVALIDITY; MessageExpunge → MESSAGES; FlagChange (this server
    // has CONDSTORE) → UIDVALIDITY HIGHESTMODSEQ.
    for (const w of state.watched.values()) {
      if (w.folder.id === ctx.view?.folderId) continue;
      const items = new Set<string>();
      if (w.events.has('MESSAGENEW')) ['MESSAGES', 'UIDNEXT', 'UIDVALIDITY'].forEach((i) => items.add(i));
      if (w.events.has('MESSAGEEXPUNGE')) items.add('MESSAGES');
      if (w.events.has('FLAGCHANGE')) ['UIDVALIDITY', 'HIGHESTMODSEQ'].forEach((i) => items.add(i));
      const values = await statusValues(ctx, w);
      w.last = values;
      ctx.write(statusLine(ctx, w.name, values, ['MESSAGES', 'UIDNEXT', 'UIDVALIDITY', 'HIGHESTMODSEQ'].filter((i) => items.has(i))));
    }
  }
  return 'NOTIFY completed';
}

async function statusValues(ctx: SessionContext, w: Watched): Promise<Record<string, number>> {
  const st = await ctx.s.store.folderStatus(w.folder.id);
  return { MESSAGES: st.messages, UIDNEXT: st.uidNext, UIDVALIDITY: w.folder.uidValidity, UNSEEN: st.unseen, HIGHESTMODSEQ: st.highestModseq };
}

function statusLine(ctx: SessionContext, name: string, v: Record<string, number>, items: string[]): string {
  return `* STATUS ${nameOut(ctx, name)} (${items.map((i) => `${i} ${v[i]}`).join(' ')})\r\n`;
}

/**
 * STATUS responses for the watched folders that changed (§5.1–5.3): MESSAGES and UIDNEXT for
 * MessageNew (and the pair), MESSAGES for a lone MessageExpunge (with HIGHESTMODSEQ once CONDSTORE
 * is enabled), UNSEEN — or UIDVALIDITY and HIGHESTMODSEQ with CONDSTORE — for FlagChange; only
 * when an event the folder is watched for happened (a folder watched for one event alone — the
 * deviation from §5 that grammar.ts accepts — hears of that event only). Which events happened is
 * read from the values last reported: UIDNEXT moved → messages were appended (§5.2); fewer
 * messages than the last count plus those appended → some were expunged (§5.3, UIDs are never
 * reused); UNSEEN, or with CONDSTORE HIGHESTMODSEQ, moved → flags changed (§5.1). Without values
 * reported yet (NOTIFY without STATUS) any change is reported.
 */
export async function sendNotifyStatus(ctx: SessionContext): Promise<void> {
  sendOverflow(ctx);
  const n = ctx.notify;
  if (n?.mailboxEvents) await sendMailboxEvents(ctx, n.mailboxEvents);
  if (!n || n.pending.size === 0) return;
  const ids = [...n.pending];
  n.pending.clear();
  for (const id of ids) {
    const w = n.watched.get(id);
    if (!w || id === ctx.view?.folderId) continue;
    // §5.9: a folder whose read access was withdrawn is no longer reported.
    const r = await ctx.s.core.imapRights(ctx.user!, w.access.mailbox);
    if (!r.includes('r')) continue;
    const items: string[] = [];
    if (w.events.has('MESSAGENEW')) items.push('MESSAGES', 'UIDNEXT');
    else if (w.events.has('MESSAGEEXPUNGE')) items.push('MESSAGES');
    if (w.events.has('FLAGCHANGE')) items.push(...(ctx.condstore ? ['UIDVALIDITY'] : ['UNSEEN']));
    if (ctx.condstore) items.push('HIGHESTMODSEQ');
    const v = await statusValues(ctx, w);
    const last = w.last;
    w.last = v;
    const appended = !last || v.UIDNEXT !== last.UIDNEXT;
    const expunged = !last || v.MESSAGES < last.MESSAGES + (v.UIDNEXT - last.UIDNEXT);
    const flagged = !last || (ctx.condstore ? v.HIGHESTMODSEQ !== last.HIGHESTMODSEQ : v.UNSEEN !== last.UNSEEN);
    const happened = (w.events.has('MESSAGENEW') && appended) || (w.events.has('MESSAGEEXPUNGE') && expunged) || (w.events.has('FLAGCHANGE') && flagged);
    if (happened) ctx.write(statusLine(ctx, w.name, v, items));
  }
}

/** §5.2: the FETCH responses asked for with MessageNew, for messages new to the selected folder (after EXISTS). */
export async function fetchNewMessages(ctx: SessionContext, fromSeq: number): Promise<void> {
  const fetch = ctx.notify?.selected?.fetch;
  const v = ctx.view;
  if (!fetch || !v) return;
  const fctx: FetchContext = { store: ctx.s.store, blobs: ctx.s.blobs, index: ctx.s.index, write: (d) => ctx.write(d), drainWait: () => ctx.waitDrain(), utf8: ctx.utf8 };
  for (let seq = fromSeq; seq <= v.messages.length; seq++) {
    const m = v.messages[seq - 1];
    await fetchMessage(fctx, seq, m, fetch, ctx.flagsOut(m));
  }
}

async function knownOf(ctx: SessionContext, mailboxId: number): Promise<Known> {
  const folders = new Map((await ctx.s.store.listFolders(mailboxId)).map((f) => [f.id, f.name] as const));
  return { folders, subs: new Set(await ctx.s.store.listSubscriptions(mailboxId)) };
}

/** Does the specifier take the folder `folder` of `a` (full name `name`)? §6.2–6.6, as foldersOf. */
function specTakes(spec: Spec, a: MailboxAccess, folder: string, name: string, subs: Set<string>): boolean {
  switch (spec.kind) {
    case 'PERSONAL':
    case 'INBOXES':
      return a.prefix === '';
    case 'SUBSCRIBED':
      return subs.has(folder);
    case 'MAILBOXES':
      return spec.names.includes(name);
    case 'SUBTREE':
      return spec.names.some((n) => name === n || name.startsWith(n + '/'));
  }
}

const takes = (specs: Spec[], a: MailboxAccess, folder: string, name: string, subs: Set<string>) => specs.some((s) => specTakes(s, a, folder, name, subs));

/**
 * Records a mailbox-level event for the session (server.ts calls it for every session): true when
 * it concerns what the session asked for, and is then reported between commands or at the end of
 * the running one (sendNotifyStatus).
 */
export function recordMailboxEvent(ctx: SessionContext, e: { kind: 'folders'; change: FoldersChange } | { kind: 'grants'; userId: number } | { kind: 'metadata'; change: MetadataChange }): boolean {
  const me = ctx.notify?.mailboxEvents;
  if (!me || !ctx.ns) return false;
  if (e.kind === 'folders') {
    if (!me.name.length && !me.subscription.length) return false;
    if (!ctx.ns.entries.some((a) => a.mailbox.id === e.change.mailboxId)) return false;
    me.pending.add(e.change.mailboxId);
    return true;
  }
  if (e.kind === 'grants') {
    // §5.9 / §5.4: a grant given or withdrawn makes a mailbox's folders appear or go.
    if (e.userId !== ctx.user!.id || !me.name.length) return false;
    me.namespace = true;
    return true;
  }
  const c = e.change;
  if (c.folderId === null ? !me.server : !me.metadata.length) return false;
  // /private entries of another user are not this session's (RFC 5464 §3.3).
  if (c.userId !== ctx.user!.id && c.shared.length === 0) return false;
  const entries = c.shared.length + (c.userId === ctx.user!.id ? c.private.length : 0);
  if (me.metadataEntries + entries > NOTIFY_MAX_PENDING) {
    // RFC 5465 §5.8: "unable or unwilling to deliver as many notifications as it is being asked
    // to": drop what waits, stop notifying ("as if a NOTIFY NONE command had just been
    // received"), and owe the client the untagged OK [NOTIFICATIONOVERFLOW] (sendOverflow).
    ctx.notify = undefined;
    ctx.notifyOverflow = true;
    ctx.log.info({ pending: me.metadataEntries + entries }, 'NOTIFY overflow: notifications stopped for this session');
    return true;
  }
  me.metadataChanges.push(c);
  me.metadataEntries += entries;
  return true;
}

/** RFC 5465 §5.8: the untagged OK [NOTIFICATIONOVERFLOW] owed since an overflow, sent once where notifications go out. */
function sendOverflow(ctx: SessionContext): void {
  if (!ctx.notifyOverflow) return;
  ctx.notifyOverflow = false;
  ctx.write('* OK [NOTIFICATIONOVERFLOW] too many notifications waiting: NOTIFY is off, issue NOTIFY SET again\r\n');
}

/** RFC 5465 §5.4: `* LIST (attributes) "/" name` [with §5.4's OLDNAME extended item for a rename]. */
function listLine(ctx: SessionContext, attrs: string[], name: string, oldName?: string): string {
  return `* LIST (${attrs.join(' ')}) "/" ${nameOut(ctx, name)}${oldName !== undefined ? ` ("OLDNAME" (${nameOut(ctx, oldName)}))` : ''}\r\n`;
}

/** Reports what recordMailboxEvent kept: folders come and gone, renamed, (un)subscribed; metadata entries changed. */
async function sendMailboxEvents(ctx: SessionContext, me: MailboxEvents): Promise<void> {
  if (me.namespace) {
    me.namespace = false;
    // The user's mailboxes as core sees them now; the session takes them (its names resolve in them).
    const before = ctx.ns!;
    const after = await UserNamespace.load(ctx.s.core, ctx.user!);
    for (const a of before.entries) {
      if (after.entries.some((b) => b.mailbox.id === a.mailbox.id)) continue;
      const k = me.known.get(a.mailbox.id) ?? (await knownOf(ctx, a.mailbox.id));
      // §5.4: a mailbox that is no longer accessible is reported as \NonExistent.
      for (const folder of k.folders.values()) {
        const name = before.nameOf(a, folder);
        if (takes(me.name, a, folder, name, k.subs)) ctx.write(listLine(ctx, ['\\NonExistent'], name));
      }
      me.known.delete(a.mailbox.id);
    }
    for (const a of after.entries) {
      if (before.entries.some((b) => b.mailbox.id === a.mailbox.id)) continue;
      const k = await knownOf(ctx, a.mailbox.id);
      for (const folder of k.folders.values()) {
        const name = after.nameOf(a, folder);
        if (takes(me.name, a, folder, name, k.subs)) ctx.write(listLine(ctx, [], name));
      }
      me.known.set(a.mailbox.id, k);
    }
    ctx.ns = after;
  }
  const ids = [...me.pending];
  me.pending.clear();
  for (const id of ids) {
    const a = ctx.ns!.entries.find((x) => x.mailbox.id === id);
    const before = me.known.get(id);
    if (!a || !before) continue;
    // §5.9: a mailbox the user can no longer read is not reported on.
    const r = await ctx.s.core.imapRights(ctx.user!, a.mailbox);
    if (!r.includes('l')) continue;
    const now = await knownOf(ctx, id);
    const nameOf = (folder: string) => ctx.ns!.nameOf(a, folder);
    if (me.name.length) {
      for (const [fid, folder] of before.folders) {
        const renamed = now.folders.get(fid);
        if (renamed === undefined) {
          if (takes(me.name, a, folder, nameOf(folder), before.subs)) ctx.write(listLine(ctx, ['\\NonExistent'], nameOf(folder)));
        } else if (renamed !== folder && (takes(me.name, a, folder, nameOf(folder), before.subs) || takes(me.name, a, renamed, nameOf(renamed), now.subs))) {
          ctx.write(listLine(ctx, [], nameOf(renamed), nameOf(folder)));
        }
      }
      for (const [fid, folder] of now.folders) if (!before.folders.has(fid) && takes(me.name, a, folder, nameOf(folder), now.subs)) ctx.write(listLine(ctx, [], nameOf(folder)));
    }
    if (me.subscription.length) {
      // §5.5: LIST with \Subscribed when a name was subscribed, without it when unsubscribed.
      for (const folder of now.subs) if (!before.subs.has(folder) && takes(me.subscription, a, folder, nameOf(folder), now.subs)) ctx.write(listLine(ctx, ['\\Subscribed'], nameOf(folder)));
      for (const folder of before.subs) if (!now.subs.has(folder) && takes(me.subscription, a, folder, nameOf(folder), before.subs)) ctx.write(listLine(ctx, [], nameOf(folder)));
    }
    me.known.set(id, now);
  }
  const changes = me.metadataChanges.splice(0);
  me.metadataEntries = 0;
  for (const c of changes) {
    const entries = [...c.shared, ...(c.userId === ctx.user!.id ? c.private : [])];
    if (!entries.length) continue;
    if (c.folderId === null) {
      // §5.7: server entries, RFC 5464 §4.4.2 unsolicited form (entry names only).
      ctx.write(`* METADATA "" ${entries.map((e) => astring(e)).join(' ')}\r\n`);
      continue;
    }
    const a = ctx.ns!.entries.find((x) => x.mailbox.id === c.mailboxId);
    if (!a) continue;
    const folder = await ctx.s.store.getFolderById(c.folderId);
    if (!folder) continue;
    const name = ctx.ns!.nameOf(a, folder.name);
    if (!takes(me.metadata, a, folder.name, name, new Set(await ctx.s.store.listSubscriptions(a.mailbox.id)))) continue;
    // §5.6 (and RFC 5464 §3.3): only for a mailbox whose metadata the user may read.
    if (!(await ctx.s.core.metadataRights(ctx.user!, a.mailbox)).read) continue;
    ctx.write(`* METADATA ${nameOut(ctx, name)} ${entries.map((e) => astring(e)).join(' ')}\r\n`);
  }
}
