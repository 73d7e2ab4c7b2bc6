// Folder management in the authenticated state (RFC 9051 §6.3): NAMESPACE (RFC 2342), CREATE
// (with RFC 6154 special-use), DELETE, RENAME, SUBSCRIBE/UNSUBSCRIBE, LIST (RFC 5258
// LIST-EXTENDED, RFC 5819 LIST-STATUS) and LSUB, STATUS, APPEND (RFC 3502 MULTIAPPEND).
import type { Folder } from '../../model/index.js';
import { hasEightBitHeader, sectionBytes, storableForm } from '../../mime/index.js';
import type { PutBlob } from '../../store/message-files.js';
import { bad, no } from '../errors.js';
import { compileListPattern, ListPatternTooLong, type NameMatcher } from '../list-pattern.js';
import { DELIMITER, OTHER_PREFIX, SHARED_PREFIX, type MailboxAccess } from '../namespace.js';
import { quoted, sequenceSet as encodeSet } from '../protocol/encoder.js';
import { encodeMutf7 } from '../protocol/mutf7.js';
import { parseImapMessageUrl } from '../protocol/imap-url.js';
import type { AppendMessage, CatenatePart, ListCommand, StatusItem } from '../protocol/types.js';
import { checkQuota } from './acl.js';
import { decodeName, destinationFolder, folderOf, foldersChanged, nameOut, notifyChanged, requireRight, resolveOrThrow, type Handlers, type SessionContext } from './context.js';

const SPECIAL_USES = ['\\All', '\\Archive', '\\Drafts', '\\Flagged', '\\Junk', '\\Sent', '\\Trash'];

export const mailboxCommands = {
  NAMESPACE: async (ctx) => {
    // RFC 2342 / RFC 9051 §6.3.10
    // RFC 9051 §9 namespace-descr: the prefix is a string (quoted), never an atom.
    const prefix = (p: string) => quoted(ctx.utf8 ? p : encodeMutf7(p), { utf8: ctx.utf8 });
    const other = ctx.ns!.entries.some((e) => e.prefix.startsWith(OTHER_PREFIX)) ? `((${prefix(OTHER_PREFIX)} "/"))` : 'NIL';
    const shared = ctx.ns!.entries.some((e) => e.prefix.startsWith(SHARED_PREFIX)) ? `((${prefix(SHARED_PREFIX)} "/"))` : 'NIL';
    ctx.write(`* NAMESPACE (("" "/")) ${other} ${shared}\r\n`);
    return 'NAMESPACE completed';
  },
  CREATE: (ctx, cmd) => create(ctx, cmd.mailbox, cmd.specialUse),
  DELETE: (ctx, cmd) => deleteFolder(ctx, cmd.mailbox),
  RENAME: (ctx, cmd) => rename(ctx, cmd.from, cmd.to),
  SUBSCRIBE: (ctx, cmd) => subscribe(ctx, cmd),
  UNSUBSCRIBE: (ctx, cmd) => subscribe(ctx, cmd),
  LIST: (ctx, cmd) => list(ctx, cmd),
  LSUB: (ctx, cmd) => list(ctx, { reference: cmd.reference, patterns: [cmd.pattern], selection: ['SUBSCRIBED'], returns: [] }, 'LSUB'),
  STATUS: (ctx, cmd) => status(ctx, cmd.mailbox, cmd.items),
  APPEND: (ctx, cmd) => append(ctx, cmd.mailbox, cmd.messages),
} satisfies Partial<Handlers>;

async function subscribe(ctx: SessionContext, cmd: { name: 'SUBSCRIBE' | 'UNSUBSCRIBE'; mailbox: string }): Promise<string> {
  const r = resolveOrThrow(ctx, cmd.mailbox, false);
  await ctx.s.store.setSubscribed(r.access.mailbox.id, r.folder, cmd.name === 'SUBSCRIBE');
  foldersChanged(ctx, r.access.mailbox.id);
  return `${cmd.name} completed`;
}

async function create(ctx: SessionContext, name: string, specialUse?: string[]): Promise<string> {
  const decoded = decodeName(ctx, name, true).replace(/\/+$/, ''); // RFC 9051 §6.3.4: trailing delimiter
  const r = ctx.ns!.resolve(decoded);
  if (!r) throw no('CANNOT', `cannot create ${name}: outside your mailboxes`);
  if (r.folder === 'INBOX') throw no('ALREADYEXISTS', 'INBOX already exists');
  await requireRight(ctx, r.access, 'k');
  if (specialUse?.length) {
    const bad = specialUse.filter((u) => !SPECIAL_USES.some((x) => x.toLowerCase() === u.toLowerCase()));
    if (bad.length) throw no('USEATTR', `unknown special-use ${bad.join(' ')}`);
  }
  if (await ctx.s.store.getFolder(r.access.mailbox.id, r.folder)) throw no('ALREADYEXISTS', `${name} already exists`);
  // Create missing parents too (RFC 9051 §6.3.4: superior hierarchical names).
  const parts = r.folder.split(DELIMITER);
  for (let i = 1; i < parts.length; i++) {
    const parent = parts.slice(0, i).join(DELIMITER);
    if (parent && !(await ctx.s.store.getFolder(r.access.mailbox.id, parent))) await ctx.s.store.createFolder(r.access.mailbox.id, parent);
  }
  const use = specialUse?.length ? SPECIAL_USES.find((x) => x.toLowerCase() === specialUse[0].toLowerCase())! : null;
  await ctx.s.store.createFolder(r.access.mailbox.id, r.folder, use);
  foldersChanged(ctx, r.access.mailbox.id);
  return 'CREATE completed';
}

async function deleteFolder(ctx: SessionContext, name: string): Promise<string> {
  const { r, folder } = await folderOf(ctx, name);
  if (r.folder === 'INBOX') throw no('CANNOT', 'INBOX cannot be deleted');
  await requireRight(ctx, r.access, 'x');
  const all = await ctx.s.store.listFolders(r.access.mailbox.id);
  // RFC 9051 §6.3.5: a name with inferior names cannot be removed while... we keep it simple
  // and refuse, saying why, rather than leaving a \Noselect placeholder.
  if (all.some((f) => f.name.startsWith(r.folder + DELIMITER))) throw no('INUSE', `${name} has subfolders: delete them first`);
  if (ctx.view?.folderId === folder.id) {
    ctx.view = undefined;
    ctx.state = 'auth';
  }
  const { messages } = await ctx.s.store.folderStatus(folder.id);
  await ctx.s.store.deleteFolder(folder.id);
  notifyChanged(ctx, folder.id);
  foldersChanged(ctx, r.access.mailbox.id);
  // Functional trace (docs/traces.md): the folder and how many messages went with it.
  await ctx.s.core.trace(r.access.mailbox, 'folder-deleted', { protocol: 'imap', user: ctx.user ?? null, remote: ctx.remote }, { folder: folder.name, messages });
  return 'DELETE completed';
}

async function rename(ctx: SessionContext, from: string, to: string): Promise<string> {
  const { r, folder } = await folderOf(ctx, from);
  const t = ctx.ns!.resolve(decodeName(ctx, to, true).replace(/\/+$/, ''));
  if (!t || t.access.mailbox.id !== r.access.mailbox.id) throw no('CANNOT', 'a folder can only be renamed within the same mailbox');
  await requireRight(ctx, r.access, 'x');
  if (await ctx.s.store.getFolder(t.access.mailbox.id, t.folder)) throw no('ALREADYEXISTS', `${to} already exists`);
  if (r.folder === 'INBOX') {
    // RFC 9051 §6.3.6: renaming INBOX moves its messages to the new name; INBOX stays, empty.
    const target = await ctx.s.store.createFolder(r.access.mailbox.id, t.folder);
    const uids = (await ctx.s.store.folderMessages(folder.id)).map((m) => m.uid);
    await ctx.s.store.copyMessages(folder.id, uids, target.id, true);
    notifyChanged(ctx, folder.id);
    foldersChanged(ctx, r.access.mailbox.id);
    return 'RENAME completed';
  }
  const parts = t.folder.split(DELIMITER);
  for (let i = 1; i < parts.length; i++) {
    const parent = parts.slice(0, i).join(DELIMITER);
    if (!(await ctx.s.store.getFolder(r.access.mailbox.id, parent))) await ctx.s.store.createFolder(r.access.mailbox.id, parent);
  }
  await ctx.s.store.renameFolder(r.access.mailbox.id, r.folder, t.folder, DELIMITER);
  foldersChanged(ctx, r.access.mailbox.id);
  return 'RENAME completed';
}

/** RFC 9051 §6.3.9 with RFC 5258 (LIST-EXTENDED), RFC 5819 (LIST-STATUS), RFC 6154. */
async function list(ctx: SessionContext, cmd: ListCommand, verb: 'LIST' | 'LSUB' = 'LIST'): Promise<string> {
  const ref = decodeName(ctx, cmd.reference);
  const patterns = cmd.patterns.map((p) => decodeName(ctx, p));
  const selSubscribed = cmd.selection.includes('SUBSCRIBED');
  const recursive = cmd.selection.includes('RECURSIVEMATCH');
  const selSpecial = cmd.selection.includes('SPECIAL-USE');
  const ret = new Map(cmd.returns.map((r) => [r.name.toUpperCase(), r.items]));
  const wantSubscribed = ret.has('SUBSCRIBED') || selSubscribed;
  const statusItems = ret.get('STATUS') as StatusItem[] | undefined;
  const rightsOf = ret.has('MYRIGHTS') ? new Map<MailboxAccess, string>() : undefined;

  if (verb === 'LIST' && patterns.length === 1 && patterns[0] === '' && !selSubscribed) {
    // RFC 9051 §6.3.9: empty pattern returns the delimiter and root.
    ctx.write(`* LIST (\\Noselect) "/" ""\r\n`);
    return 'LIST completed';
  }
  // All names the user can see, with their attributes.
  type Entry = { name: string; folder?: Folder; access: MailboxAccess; subscribed: boolean; exists: boolean };
  const entries: Entry[] = [];
  for (const a of ctx.ns!.entries) {
    const folders = await ctx.s.store.listFolders(a.mailbox.id);
    const subs = new Set(await ctx.s.store.listSubscriptions(a.mailbox.id));
    for (const f of folders) entries.push({ name: ctx.ns!.nameOf(a, f.name), folder: f, access: a, subscribed: subs.has(f.name), exists: true });
    for (const s of subs) if (!folders.some((f) => f.name === s)) entries.push({ name: ctx.ns!.nameOf(a, s), access: a, subscribed: true, exists: false });
    if (a.prefix) {
      // The namespace levels themselves appear as \Noselect containers.
      const levels = a.prefix.replace(/\/$/, '').split(DELIMITER);
      for (let i = 1; i <= levels.length; i++) {
        const n = levels.slice(0, i).join(DELIMITER);
        if (!entries.some((e) => e.name === n)) entries.push({ name: n, access: a, subscribed: false, exists: false });
      }
    }
  }
  let full: NameMatcher[];
  try {
    full = patterns.map((p) => compileListPattern(ref + p, DELIMITER));
  } catch (e) {
    if (e instanceof ListPatternTooLong) throw bad('LIMIT', e.message);
    throw e;
  }
  // Each name is matched once; the LSUB and RECURSIVEMATCH rules below look the answers up.
  const matches = new Set(entries.filter((e) => full.some((m) => m(e.name))).map((e) => e.name));
  const names = new Set(entries.filter((e) => e.exists || e.subscribed).map((e) => e.name));
  const out: string[] = [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const matched = matches.has(e.name);
    let childInfo = false;
    if (verb === 'LSUB' && !e.subscribed) {
      // RFC 3501 §6.3.9: with "%", a level holding subscribed names is returned \Noselect.
      if (matched && entries.some((c) => c.subscribed && c.name.startsWith(e.name + DELIMITER) && !matches.has(c.name))) {
        out.push(`* LSUB (\\Noselect) "/" ${nameOut(ctx, e.name)}\r\n`);
      }
      continue;
    }
    if (selSubscribed) {
      if (!e.subscribed) {
        // RFC 5258 §3.5: RECURSIVEMATCH returns, with CHILDINFO, a matching name that has a
        // subscribed descendant which the patterns do not match themselves.
        if (!(recursive && matched && entries.some((c) => c.subscribed && c.name.startsWith(e.name + DELIMITER) && !matches.has(c.name)))) continue;
        childInfo = true;
      } else if (!matched) continue;
    } else if (!matched) continue;
    if (!e.exists && !e.subscribed && !e.folder && !e.name) continue;
    const attrs: string[] = [];
    const hasChildren = [...names].some((n) => n.startsWith(e.name + DELIMITER)) || entries.some((c) => c !== e && c.name.startsWith(e.name + DELIMITER));
    if (!e.exists) attrs.push(e.folder || !e.subscribed ? '\\Noselect' : '\\NonExistent');
    // CHILDREN (RFC 3348) and SPECIAL-USE attributes are always returned, asked for or not.
    attrs.push(hasChildren ? '\\HasChildren' : '\\HasNoChildren');
    if (wantSubscribed && e.subscribed) attrs.push('\\Subscribed');
    if (e.folder?.specialUse) attrs.push(e.folder.specialUse);
    if (selSpecial && !e.folder?.specialUse) continue;
    if (verb === 'LSUB') {
      const a = attrs.filter((x) => x === '\\Noselect');
      out.push(`* LSUB (${a.join(' ')}) "/" ${nameOut(ctx, e.name)}\r\n`);
      continue;
    }
    const ext = childInfo ? ` ("CHILDINFO" ("SUBSCRIBED"))` : '';
    out.push(`* LIST (${attrs.join(' ')}) "/" ${nameOut(ctx, e.name)}${ext}\r\n`);
    if (statusItems && e.folder) out.push(await statusLine(ctx, e.name, e.folder, statusItems));
    if (rightsOf && e.folder) {
      // RFC 8440 §3: MYRIGHTS after the LIST response of each selectable mailbox; the rights
      // come from core (RFC 4314 §3.8 response), one decision per MSSanté mailbox (BAL).
      let rights = rightsOf.get(e.access);
      if (rights === undefined) rightsOf.set(e.access, (rights = await ctx.s.core.imapRights(ctx.user!, e.access.mailbox)));
      out.push(`* MYRIGHTS ${nameOut(ctx, e.name)} ${rights || '""'}\r\n`);
    }
  }
  for (const l of out) ctx.write(l);
  return `${verb} completed`;
}

async function statusLine(ctx: SessionContext, name: string, folder: Folder, items: StatusItem[]): Promise<string> {
  const st = await ctx.s.store.folderStatus(folder.id);
  const vals: string[] = [];
  for (const i of items) {
    const k = i.toUpperCase();
    if (k === 'MESSAGES') vals.push(`MESSAGES ${st.messages}`);
    else if (k === 'UIDNEXT') vals.push(`UIDNEXT ${st.uidNext}`);
    else if (k === 'UIDVALIDITY') vals.push(`UIDVALIDITY ${st.uidValidity}`);
    else if (k === 'UNSEEN') vals.push(`UNSEEN ${st.unseen}`);
    else if (k === 'DELETED') vals.push(`DELETED ${st.deleted}`);
    else if (k === 'SIZE') vals.push(`SIZE ${st.size}`); // RFC 8438
    else if (k === 'RECENT') vals.push(`RECENT ${st.recent}`);
    else if (k === 'APPENDLIMIT') vals.push(`APPENDLIMIT ${ctx.s.appendLimit}`);
    else if (k === 'HIGHESTMODSEQ') {
      ctx.enabled.add('CONDSTORE'); // RFC 7162 §3.1: a CONDSTORE-enabling command
      vals.push(`HIGHESTMODSEQ ${st.highestModseq}`);
    }
    else throw bad(undefined, `unknown STATUS item ${i}`);
  }
  return `* STATUS ${nameOut(ctx, name)} (${vals.join(' ')})\r\n`;
}

async function status(ctx: SessionContext, name: string, items: StatusItem[]): Promise<string> {
  const { r, folder } = await folderOf(ctx, name);
  await requireRight(ctx, r.access, 'r');
  ctx.write(await statusLine(ctx, ctx.ns!.nameOf(r.access, r.folder), folder, items));
  return 'STATUS completed';
}

/**
 * RFC 4469 §5: the octets a CATENATE URL names — a message, or a section of it (as FETCH BODY[]
 * gives it), or a partial range of that — read only from a mailbox the user may read: the name
 * is resolved in the user's namespace and the "r" right comes from core (the access decision
 * point). Anything else is NO [BADURL <url>], saying nothing about what exists.
 */
async function catenateUrl(ctx: SessionContext, url: string): Promise<Uint8Array> {
  // RFC 4469 §6: resp-text-code =/ "BADURL" SP url-resp-text (no "]", CR or LF in it).
  const badurl = (why: string) => no(`BADURL ${url.replace(/[^\x01-\x09\x0b\x0c\x0e-\x5c\x5e-\x7f]/gu, (c) => encodeURIComponent(c))}`, why);
  const u = parseImapMessageUrl(url);
  if (!u) throw badurl('not an IMAP URL naming a message (RFC 5092)');
  if (u.urlauth) throw badurl('URLAUTH is not supported by this server');
  if (u.host !== undefined && (u.host !== ctx.s.hostname.toLowerCase() || (u.user !== undefined && u.user !== ctx.user!.login))) throw badurl('the URL names another server or user');
  const r = ctx.ns!.resolve(u.mailbox);
  const acl = r ? await ctx.s.core.imapRights(ctx.user!, r.access.mailbox) : '';
  const folder = r && acl.includes('r') ? await ctx.s.store.getFolder(r.access.mailbox.id, r.folder) : undefined;
  if (!folder) throw badurl('no such mailbox, or you may not read it');
  if (u.uidValidity !== undefined && u.uidValidity !== folder.uidValidity) throw badurl('UIDVALIDITY does not match (RFC 5092 §6)');
  const msg = await ctx.s.store.getMessageByUid(folder.id, u.uid);
  if (!msg) throw badurl('no such message');
  const data = sectionBytes(await ctx.s.blobs.read(msg.blobId), await ctx.s.index.ensure(msg.blobId), u.section ?? { kind: 'full' });
  if (!data) throw badurl('no such section in the message');
  if (!u.partial) return data;
  // RFC 5092 §5 ipartial: from the offset, at most the length (nothing past the end).
  const start = Math.min(u.partial.offset, data.length);
  return data.subarray(start, u.partial.length === undefined ? data.length : Math.min(data.length, start + u.partial.length));
}

/** RFC 4469 CATENATE: the message the parts make, URL parts resolved in order; TOOBIG past APPENDLIMIT. */
async function catenate(ctx: SessionContext, parts: CatenatePart[]): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (const p of parts) {
    const d = p.kind === 'text' ? p.data : await catenateUrl(ctx, p.url);
    size += d.length;
    // RFC 4469 §4: TOOBIG when the resulting message is larger than the server accepts.
    if (size > ctx.s.appendLimit) throw no('TOOBIG', `the catenated message exceeds APPENDLIMIT ${ctx.s.appendLimit}`);
    chunks.push(d);
  }
  return Buffer.concat(chunks, size);
}

async function append(ctx: SessionContext, name: string, sent: AppendMessage[]): Promise<string> {
  // RFC 4469 §5 with RFC 3502: the destination first (NO [TRYCREATE] even when a URL is bad),
  // then every CATENATE resolved before anything is stored.
  const target = await destinationFolder(ctx, name);
  const messages: AppendMessage[] = [];
  for (const m of sent) {
    // A CATENATE holding an RFC 6855 §4 UTF8 (~{n}) part is a literal8 message: stored as one.
    const binary = m.binary || (m.catenate?.some((p) => p.kind === 'text' && p.utf8) ?? false);
    messages.push(m.catenate ? { ...m, binary, data: await catenate(ctx, m.catenate) } : m);
  }
  for (const [k, m] of messages.entries()) {
    if (m.data.length > ctx.s.appendLimit) throw no('TOOBIG', `message of ${m.data.length} bytes exceeds APPENDLIMIT ${ctx.s.appendLimit}`);
    if (m.data.length === 0) throw bad(undefined, 'empty message');
    // RFC 6855 §4: announcing UTF8=ACCEPT, the server MUST refuse with NO an APPEND holding an
    // 8-bit character in header fields from a client that has not issued ENABLE UTF8=ACCEPT
    // (IMAP4rev2 takes UTF-8 headers: RFC 9051 §4.3, RFC 6532). Dovecot 2.3 does not announce
    // UTF8=ACCEPT and takes such messages.
    if (!ctx.utf8 && hasEightBitHeader(m.data)) {
      throw no(undefined, `message ${k + 1} has 8-bit characters in its header fields: send ENABLE UTF8=ACCEPT first (RFC 6855 §4), or encode them (RFC 2047)`);
    }
  }
  // RFC 3516 §4.4: data sent as literal8 is stored losslessly — parts in the binary encoding (or
  // holding NUL) re-encoded as base64, as Dovecot does (src/mime/storable.ts).
  const stored = messages.map((m) => (m.binary ? storableForm(m.data).data : m.data));
  const total = stored.reduce((n, d) => n + d.length, 0);
  const dates = messages.map((m) => {
    const date = m.date ? parseImapDate(m.date) : new Date();
    if (!date) throw bad(undefined, `invalid date-time ${m.date}`);
    return date;
  });
  await checkQuota(ctx, target.r.access, total);
  // RFC 3502 §6.3.11 MULTIAPPEND: all or nothing. The message files first, all durable and
  // pinned (putMany: written and fsynced together, pinned in one transaction, each directory
  // fsynced once), analysed from the bytes in hand, then every message with its analysis in one
  // transaction (issue 15: batched); the tagged OK only after that commit. A failure before the commit leaves only
  // unreferenced files, which the collector removes.
  let blobs: PutBlob[] = [];
  try {
    // Views, not copies, of the literals.
    blobs = await ctx.s.blobs.putMany(stored.map((d) => (Buffer.isBuffer(d) ? d : Buffer.from(d.buffer, d.byteOffset, d.byteLength))));
    const { analyses, remember } = await ctx.s.index.analyseAll(blobs.map((b, k) => ({ blobId: b.id, raw: stored[k] })));
    const items = messages.map((m, k) => ({ blobId: blobs[k].id, size: blobs[k].size, flags: m.flags.filter((f) => f.toLowerCase() !== '\\recent'), internalDate: dates[k], analysis: analyses[k], pin: blobs[k].pin }));
    // The analyses and header search rows committed with the messages, and the puts' pins dropped
    // by that commit (issue 15: one transaction).
    const { uids } = await ctx.s.store.appendMessages(target.folder.id, items);
    for (const b of blobs) b.releasedByCommit();
    remember();
    notifyChanged(ctx, target.folder.id);
    // RFC 4315 §3: APPENDUID uidvalidity uid-set.
    return `[APPENDUID ${target.folder.uidValidity} ${encodeSet(uids)}] APPEND completed`;
  } finally {
    for (const b of blobs) b?.release();
  }
}

/** RFC 9051 §9 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz". */
export function parseImapDate(s: string): Date | undefined {
  const m = /^\s?(\d{1,2})-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$/i.exec(s.trim());
  if (!m) return undefined;
  const month = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'].indexOf(m[2].toLowerCase());
  const utc = Date.UTC(+m[3], month, +m[1], +m[4], +m[5], +m[6]);
  const offset = (m[7] === '-' ? -1 : 1) * (+m[8] * 60 + +m[9]) * 60000;
  return new Date(utc - offset);
}

