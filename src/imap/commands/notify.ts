// RFC 5465 NOTIFY: the client asks for events on the selected folder (sent at once, not only at
// the end of commands) and on other folders (as untagged STATUS responses). Supported events:
// MessageNew (with FETCH attributes for the selected folder), MessageExpunge, FlagChange; others
// get NO [BADEVENT]. Watched folders are those the user may read: core decides ("r", RFC 5465
// §5: "l" and "r"), at NOTIFY time and again at each event (§5.9: access may be lost later).
import type { Folder } from '../../model/index.js';
import { bad, no } from '../errors.js';
import { fetchMessage, type FetchContext } from '../fetch.js';
import type { MailboxAccess } from '../namespace.js';
import type { Command, FetchAttribute, NotifyFilter } from '../protocol/types.js';
import { decodeName, nameOut, type Handlers, type SessionContext } from './context.js';

const SUPPORTED = new Set(['MESSAGENEW', 'MESSAGEEXPUNGE', 'FLAGCHANGE']);
const SUPPORTED_NAMES = 'MessageNew MessageExpunge FlagChange';

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
  if (cmd.groups === null) {
    ctx.notify = undefined; // NOTIFY NONE
    return 'NOTIFY completed, no notifications';
  }
  // §3.1: an unsupported event type is NO [BADEVENT (the events supported)], not BAD.
  const unsupported = cmd.groups.flatMap((g) => g.events.map((e) => e.name)).filter((n) => !SUPPORTED.has(n));
  if (unsupported.length) throw no(`BADEVENT (${SUPPORTED_NAMES})`, `unsupported event ${unsupported[0]}`);
  const state: NotifyState = { watched: new Map(), pending: new Set() };
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
    for (const f of await foldersOf(ctx, g.filter)) {
      // §3.1: a mailbox the user may not read is ignored.
      if (!(await canRead(f.access))) continue;
      const w = state.watched.get(f.folder.id);
      if (w) for (const e of events) w.events.add(e);
      else if (events.size) state.watched.set(f.folder.id, { ...f, events });
    }
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
 * MessageNew/MessageExpunge (with HIGHESTMODSEQ once CONDSTORE is enabled), UNSEEN — or
 * UIDVALIDITY and HIGHESTMODSEQ with CONDSTORE — for FlagChange; only when one of them changed.
 */
export async function sendNotifyStatus(ctx: SessionContext): Promise<void> {
  const n = ctx.notify;
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
    if (w.events.has('MESSAGENEW') || w.events.has('MESSAGEEXPUNGE')) items.push('MESSAGES', 'UIDNEXT');
    if (w.events.has('FLAGCHANGE')) items.push(...(ctx.condstore ? ['UIDVALIDITY'] : ['UNSEEN']));
    if (ctx.condstore && !items.includes('HIGHESTMODSEQ')) items.push('HIGHESTMODSEQ');
    const v = await statusValues(ctx, w);
    const changed = items.filter((i) => i !== 'UIDVALIDITY' && i !== 'HIGHESTMODSEQ').some((i) => w.last?.[i] !== v[i]) || (ctx.condstore && w.last?.HIGHESTMODSEQ !== v.HIGHESTMODSEQ);
    w.last = v;
    if (changed) ctx.write(statusLine(ctx, w.name, v, items));
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
