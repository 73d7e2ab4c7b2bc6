// The mail service IMAP and the mail API share (docs/mail-api.md): the mailboxes a user may open
// with their folders and counts, message summaries from the cached mime/ analysis, one message's
// parts, flags, move, delete, search (the IMAP SEARCH engine, mail/search.ts). Every access
// decision is Core's (rightsOn / imapRights): a folder or message of a mailbox the user may not
// read is NotFound (never revealed); a right missing on a readable mailbox is AccessDenied.
// Every change announces 'folder-changed' { folderId } on Core.events, as IMAP does, so IMAP
// IDLE sessions and the API's event stream see it.
import { createHash } from 'node:crypto';
import { AccessDenied, CoreError, NotFound, type Core, type Folder, type FoldersChange, type GrantRight, type Mailbox, type StoredMessage, type User } from '../core/index.js';
import { binaryContent, headerValues, type Addr as ImapAddr, type MessageInfo, type Part } from '../mime/index.js';
import { binToTextMixed, decodeCharset, decodeWords } from '../mime/text.js';
import { fieldValueOneLine, parseHeaderBlock } from '../mime/headers.js';
import type { MessageFiles } from '../store/message-files.js';
import type { FolderMessage, Store } from '../store/types.js';
import type { MessageIndex } from './message-index.js';
import { runSearch } from './search.js';
import type { SearchKey } from './search-key.js';
import { readXdm, XdmError, type XdmCode } from '../xdm/index.js';

export interface Addr {
  name: string | null;
  email: string;
}

export type FolderRole = 'inbox' | 'sent' | 'drafts' | 'trash' | 'junk' | 'archive' | null;

export interface FolderInfo {
  id: string;
  name: string;
  role: FolderRole;
  totalEmails: number;
  unreadEmails: number;
  state: string;
}

export interface MailboxInfo {
  address: string;
  displayName: string;
  type: Mailbox['type'];
  role: 'own' | 'delegated' | 'shared';
  rights: GrantRight[];
  folders: FolderInfo[];
}

export interface EmailSummary {
  id: string;
  folderId: string;
  mailbox: string;
  threadId: string;
  receivedAt: string;
  sentAt: string | null;
  from: Addr[];
  to: Addr[];
  cc: Addr[];
  subject: string;
  preview: string;
  size: number;
  seen: boolean;
  flagged: boolean;
  answered: boolean;
  draft: boolean;
  keywords: string[];
  attachmentCount: number;
  xdm: boolean;
  patient: boolean;
  readReceiptRequested: boolean;
}

export interface Attachment {
  partId: string;
  name: string | null;
  type: string;
  size: number;
  disposition: string | null;
  cid: string | null;
}

/** One document of an IHE_XDM.ZIP attachment (issue 11; mssante.md §5), as src/xdm reads it. */
export interface XdmDocumentInfo {
  /** The part holding the IHE_XDM.ZIP (download: /api/v1/emails/{id}/parts/{partId}). */
  partId: string;
  /** Path of the document inside the archive. */
  path: string;
  title: string | null;
  mimeType: string | null;
  size: number;
  /** SHA-1 (hex) of the document's bytes, as read. */
  hash: string;
  /** The patient's identifier (INS) with its OID and kind (NIR, NIA, test, other). */
  patient: { id: string; oid: string; kind: string } | null;
  typeCode: XdmCode | null;
  classCode: XdmCode | null;
  /** The CDA's own code (X-MSS-CODECDA) when the document is a CDA R2. */
  cdaCode: string | null;
  /** Deviations from the profile found in the package (each one in `caducee xdm inspect`). */
  warnings: number;
}

/** What the XDM attachments of a message hold: documents, and the packages that could not be read. */
export interface XdmContent {
  documents: XdmDocumentInfo[];
  unreadable: { partId: string; error: string }[];
}

export interface Email extends EmailSummary {
  messageId: string | null;
  inReplyTo: string[];
  references: string[];
  replyTo: Addr[];
  sender: Addr[];
  bcc: Addr[];
  headers: { name: string; value: string }[];
  textBody: string | null;
  htmlBody: string | null;
  attachments: Attachment[];
  dispositionNotificationTo: Addr[];
  mdnSent: boolean;
  /** Present when an IHE_XDM.ZIP is attached: its documents (the webmail shows them). */
  documents?: XdmDocumentInfo[];
  /** IHE_XDM.ZIP attachments that could not be read (unsafe or malformed), with the reason. */
  documentErrors?: { partId: string; error: string }[];
}

export type SortKey = 'receivedAt' | 'sentAt' | 'from' | 'subject' | 'size';
export interface Paging {
  sort: SortKey;
  order: 'asc' | 'desc';
  limit: number;
  cursor?: string | null;
}
export interface Page {
  emails: EmailSummary[];
  total: number;
  nextCursor: string | null;
  state: string;
}

/** What a summary takes from the message file (the same for every copy of it): cached per file. */
interface StaticSummary {
  threadId: string;
  sentAt: string | null;
  from: Addr[];
  to: Addr[];
  cc: Addr[];
  subject: string;
  preview: string;
  attachmentCount: number;
  xdm: boolean;
  patient: boolean;
  readReceiptRequested: boolean;
  fromKey: string;
}

export interface MailServiceOptions {
  core: Core;
  store: Store;
  blobs: MessageFiles;
  index: MessageIndex;
  /** Addresses of patients (`patient` on summaries): default patient.mssante.fr. */
  patientDomain?: string;
  /** Summaries kept in memory (by message file). */
  cacheSize?: number;
}

export const folderIdOf = (id: number) => `f${id}`;
export const emailIdOf = (id: number) => `e${id}`;
const parseId = (s: string, prefix: string): number | null => (new RegExp(`^${prefix}[1-9][0-9]{0,14}$`).test(s) ? Number(s.slice(1)) : null);

/** RFC 6154 special use → folder role (INBOX by name, RFC 9051 §5.1). */
function roleOf(f: Folder): FolderRole {
  if (f.name.toUpperCase() === 'INBOX') return 'inbox';
  switch ((f.specialUse ?? '').toLowerCase()) {
    case '\\sent':
      return 'sent';
    case '\\drafts':
      return 'drafts';
    case '\\trash':
      return 'trash';
    case '\\junk':
      return 'junk';
    case '\\archive':
      return 'archive';
    default:
      return null;
  }
}

const addrs = (list: ImapAddr[] | null): Addr[] =>
  (list ?? []).filter((a) => a.mailbox !== null && a.host !== null).map((a) => ({ name: a.name ? decodeWords(a.name) : null, email: `${a.mailbox}@${a.host}` }));

/** A parameter value: RFC 2231 (name*=charset''pct, possibly in continuations, already joined) or RFC 2047 words. */
function param(list: [string, string][] | undefined, name: string): string | null {
  if (!list) return null;
  for (const [k, v] of list) {
    const key = k.toLowerCase();
    if (key === `${name}*`) {
      // RFC 2231 §4: charset'language'percent-encoded
      const m = /^([^']*)'[^']*'(.*)$/s.exec(v);
      if (m) {
        try {
          return decodeCharset(Buffer.from(m[2]!.replace(/%([0-9A-Fa-f]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16))), 'latin1'), m[1] || 'utf-8');
        } catch {
          return v;
        }
      }
      return v;
    }
  }
  for (const [k, v] of list) if (k.toLowerCase() === name) return decodeWords(v);
  return null;
}

interface Leaf {
  part: Part;
  partId: string;
  attachment: boolean;
}

/** The leaves of a message (a message/rfc822 part is one leaf: an attached message). */
function leaves(info: MessageInfo): Leaf[] {
  const out: Leaf[] = [];
  const walk = (p: Part, top: boolean) => {
    if (p.children) {
      for (const c of p.children) walk(c, false);
      return;
    }
    const type = `${p.type}/${p.subtype}`.toLowerCase();
    const disp = p.disposition?.[0]?.toLowerCase() ?? null;
    const name = param(p.disposition?.[1], 'filename') ?? param(p.params, 'name');
    const attachment = disp === 'attachment' || !!name || !(type === 'text/plain' || type === 'text/html') || (top && false);
    // RFC 3501 §6.4.5: a non-multipart message's body is part 1.
    out.push({ part: p, partId: p.path.length ? p.path.join('.') : '1', attachment });
  };
  walk(info.root, true);
  return out;
}

function attachmentOf(l: Leaf): Attachment {
  const p = l.part;
  return {
    partId: l.partId,
    name: param(p.disposition?.[1], 'filename') ?? param(p.params, 'name'),
    type: `${p.type}/${p.subtype}`.toLowerCase(),
    size: p.size,
    disposition: p.disposition?.[0]?.toLowerCase() ?? null,
    cid: p.id ? p.id.replace(/^<|>$/g, '') : null,
  };
}

/** A leaf's decoded content as text in its declared charset. */
function leafText(raw: Buffer, info: MessageInfo, l: Leaf): string | null {
  const c = binaryContent(raw, info, l.partId.split('.').map(Number));
  if (!c || !('data' in c)) return null;
  return decodeCharset(c.data, param(l.part.params, 'charset'));
}

const XDM_NAME = /^ihe_xdm\.zip$/i;

/**
 * The documents of every IHE_XDM.ZIP attachment (src/xdm: safe unzip with its limits, so a
 * bomb is refused before it is inflated), or undefined when the message has none.
 */
function xdmContent(raw: Buffer, info: MessageInfo, ls: Leaf[]): XdmContent | undefined {
  const zips = ls.filter((l) => l.attachment && XDM_NAME.test(attachmentOf(l).name ?? ''));
  if (!zips.length) return undefined;
  const out: XdmContent = { documents: [], unreadable: [] };
  for (const l of zips) {
    const c = binaryContent(raw, info, l.partId.split('.').map(Number));
    if (!c || !('data' in c)) {
      out.unreadable.push({ partId: l.partId, error: 'the part cannot be decoded' });
      continue;
    }
    try {
      const pkg = readXdm(c.data);
      for (const d of pkg.documents)
        out.documents.push({
          partId: l.partId,
          path: d.path,
          title: d.title ?? d.cda?.title ?? null,
          mimeType: d.mimeType ?? null,
          size: d.size,
          hash: d.hash,
          patient: d.patientId ? { id: d.patientId.id, oid: d.patientId.oid, kind: d.patientId.kind } : null,
          typeCode: d.typeCode ?? null,
          classCode: d.classCode ?? null,
          cdaCode: d.cda?.code ?? null,
          warnings: pkg.warnings.length,
        });
    } catch (e) {
      if (!(e instanceof XdmError)) throw e;
      out.unreadable.push({ partId: l.partId, error: e.message });
    }
  }
  return out;
}

function flagsOf(flags: string[]) {
  const has = (f: string) => flags.some((x) => x.toLowerCase() === f.toLowerCase());
  return {
    seen: has('\\Seen'),
    flagged: has('\\Flagged'),
    answered: has('\\Answered'),
    draft: has('\\Draft'),
    keywords: flags.filter((f) => !f.startsWith('\\')),
  };
}

const hashId = (prefix: string, s: string) => prefix + createHash('sha256').update(s).digest('base64url').slice(0, 16);

/** Opaque keyset cursor: the last item's sort key and id. */
const encodeCursor = (key: string | number, id: number) => Buffer.from(JSON.stringify([key, id])).toString('base64url');
function decodeCursor(c: string): [string | number, number] {
  try {
    const v = JSON.parse(Buffer.from(c, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && (typeof v[0] === 'string' || typeof v[0] === 'number') && Number.isInteger(v[1])) return v as [string | number, number];
  } catch {
    // below
  }
  throw new CoreError('invalid cursor');
}

export interface Located {
  mailbox: Mailbox;
  folder: Folder;
  /** RFC 4314 letters the user holds on the mailbox (Core.imapRights). */
  acl: string;
}

export class MailService {
  private readonly summaries = new Map<string, StaticSummary>();
  /** XDM contents by message file (reading a package unzips it: done once per file). */
  private readonly xdmByBlob = new Map<string, XdmContent | undefined>();
  private readonly patientDomain: string;

  constructor(readonly o: MailServiceOptions) {
    this.patientDomain = (o.patientDomain ?? 'patient.mssante.fr').toLowerCase();
  }

  // ---- mailboxes and folders ----------------------------------------------------------------

  /** Every mailbox `user` may open or send as, with rights and (when readable) folders. */
  async mailboxesOf(user: User): Promise<MailboxInfo[]> {
    const out: MailboxInfo[] = [];
    for (const a of await this.o.core.accessibleMailboxes(user)) {
      const m = a.mailbox;
      const role = a.owned ? (m.type === 'ORG' || m.type === 'APP' ? (m.ownerUserId === user.id ? 'own' : 'shared') : 'own') : m.type === 'ORG' || m.type === 'APP' ? 'shared' : 'delegated';
      const readable = a.owned || a.rights.has('read') || a.rights.has('manage');
      out.push({
        address: m.address,
        displayName: m.displayName,
        type: m.type,
        role,
        rights: [...a.rights].sort(),
        folders: readable ? await this.foldersOf(m) : [],
      });
    }
    return out;
  }

  async foldersOf(m: Mailbox): Promise<FolderInfo[]> {
    const out: FolderInfo[] = [];
    for (const f of await this.o.store.listFolders(m.id)) {
      const st = await this.o.store.folderStatus(f.id);
      out.push({ id: folderIdOf(f.id), name: f.name, role: roleOf(f), totalEmails: st.messages, unreadEmails: st.unseen, state: String(st.highestModseq) });
    }
    return out;
  }

  /** A short string that changes when the mailboxes, their rights or any folder changes. */
  static state(mailboxes: MailboxInfo[]): string {
    return hashId('', JSON.stringify(mailboxes.map((m) => [m.address, m.rights, m.folders.map((f) => [f.id, f.name, f.state])])));
  }

  /** The mailbox `address` if `user` may read its content; NotFound otherwise (never revealed). */
  async readableMailbox(user: User, address: string): Promise<{ mailbox: Mailbox; acl: string }> {
    const m = await this.o.store.findMailboxByAddress(address);
    if (!m || m.state === 'deleted') throw new NotFound(`no mailbox ${address}`);
    const acl = await this.o.core.imapRights(user, m);
    if (!acl.includes('r')) throw new NotFound(`no mailbox ${address}`);
    return { mailbox: m, acl };
  }

  /** The folder `id` (f<n>) if `user` may read its mailbox; NotFound otherwise. */
  async readableFolder(user: User, id: string): Promise<Located> {
    const n = parseId(id, 'f');
    const folder = n === null ? undefined : await this.o.store.getFolderById(n);
    if (!folder) throw new NotFound(`no folder ${id}`);
    const mailbox = await this.o.store.getMailbox(folder.mailboxId);
    if (!mailbox || mailbox.state === 'deleted') throw new NotFound(`no folder ${id}`);
    const acl = await this.o.core.imapRights(user, mailbox);
    if (!acl.includes('r')) throw new NotFound(`no folder ${id}`);
    return { mailbox, folder, acl };
  }

  /** The message `id` (e<n>) if `user` may read its mailbox; NotFound otherwise. */
  async readableEmail(user: User, id: string): Promise<Located & { msg: StoredMessage }> {
    const n = parseId(id, 'e');
    const msg = n === null ? undefined : await this.o.store.getMessage(n);
    if (!msg) throw new NotFound(`no email ${id}`);
    const loc = await this.readableFolder(user, folderIdOf(msg.folderId)).catch(() => Promise.reject(new NotFound(`no email ${id}`)));
    return { ...loc, msg };
  }

  private static need(loc: Located, letters: string, what: string) {
    for (const l of letters) if (!loc.acl.includes(l)) throw new AccessDenied(`${what} needs the manage right on ${loc.mailbox.address}`);
  }

  /** The folder with this RFC 6154 special use (created when missing). */
  async folderByRole(mailboxId: number, use: string): Promise<Folder> {
    const f = (await this.o.store.listFolders(mailboxId)).find((x) => (x.specialUse ?? '').toLowerCase() === use.toLowerCase());
    if (f) return f;
    const name = use.slice(1);
    const existing = await this.o.store.getFolder(mailboxId, name);
    if (existing) return existing;
    const created = await this.o.store.createFolder(mailboxId, name, use);
    this.o.core.events.emit('folders-changed', { mailboxId } satisfies FoldersChange); // RFC 5465 §5.4 for IMAP NOTIFY
    return created;
  }

  // ---- summaries ------------------------------------------------------------------------------

  private async staticSummary(blobId: string): Promise<StaticSummary> {
    const hit = this.summaries.get(blobId);
    if (hit) return hit;
    const info = await this.o.index.ensure(blobId);
    const raw = await this.o.blobs.read(blobId);
    const ls = leaves(info);
    const atts = ls.filter((l) => l.attachment);
    const textLeaf = ls.find((l) => !l.attachment && l.part.subtype.toLowerCase() === 'plain') ?? ls.find((l) => !l.attachment);
    let preview = '';
    if (textLeaf) {
      let t = leafText(raw, info, textLeaf) ?? '';
      if (textLeaf.part.subtype.toLowerCase() === 'html') t = t.replace(/<(style|script)[^>]*>[\s\S]*?<\/\1>/gi, ' ').replace(/<[^>]*>/g, ' ').replace(/&nbsp;/g, ' ');
      preview = t.replace(/\s+/g, ' ').trim().slice(0, 200);
    }
    const env = info.envelope;
    const from = addrs(env.from);
    const to = addrs(env.to);
    const cc = addrs(env.cc);
    const patient = [...from, ...to, ...cc].some((a) => a.email.toLowerCase().endsWith(`@${this.patientDomain}`));
    const s: StaticSummary = {
      // Thread: the first message of the References chain (RFC 5256 §2.2), else this message.
      threadId: hashId('t', info.references[0] ?? info.messageId ?? blobId),
      sentAt: info.sentDate ? new Date(info.sentDate).toISOString() : null,
      from,
      to,
      cc,
      subject: info.subject,
      preview,
      attachmentCount: atts.length,
      xdm: atts.some((l) => (attachmentOf(l).name ?? '').toUpperCase() === 'IHE_XDM.ZIP'),
      patient,
      // RFC 8098 §2.1: Disposition-Notification-To asks for a read receipt.
      readReceiptRequested: headerValues(raw, info, 'Disposition-Notification-To').length > 0,
      fromKey: info.displayFrom,
    };
    this.summaries.set(blobId, s);
    if (this.summaries.size > (this.o.cacheSize ?? 20_000)) this.summaries.delete(this.summaries.keys().next().value!);
    return s;
  }

  async summary(mailbox: Mailbox, msg: StoredMessage): Promise<EmailSummary> {
    const { fromKey: _k, ...s } = await this.staticSummary(msg.blobId);
    return {
      id: emailIdOf(msg.id),
      folderId: folderIdOf(msg.folderId),
      mailbox: mailbox.address,
      receivedAt: new Date(msg.internalDate).toISOString(),
      size: msg.size,
      ...flagsOf(msg.flags),
      ...s,
    };
  }

  // ---- listing and search ---------------------------------------------------------------------

  private async sortKey(m: StoredMessage, sort: SortKey): Promise<string | number> {
    switch (sort) {
      case 'receivedAt':
        return m.internalDate; // ISO 8601 UTC as stored (the store's keyset order)
      case 'size':
        return m.size;
      case 'sentAt':
        return (await this.staticSummary(m.blobId)).sentAt ?? '';
      case 'from':
        return (await this.staticSummary(m.blobId)).fromKey;
      case 'subject':
        return (await this.o.index.ensure(m.blobId)).baseSubject;
    }
  }

  /** One page of `msgs` sorted by (key, id), after the cursor. */
  private async page(mailboxOf: (m: StoredMessage) => Mailbox, msgs: StoredMessage[], p: Paging, state: string): Promise<Page> {
    const keyed: { m: StoredMessage; k: string | number }[] = [];
    for (const m of msgs) keyed.push({ m, k: await this.sortKey(m, p.sort) });
    const dir = p.order === 'asc' ? 1 : -1;
    const cmp = (ak: string | number, aid: number, bk: string | number, bid: number) => dir * (ak < bk ? -1 : ak > bk ? 1 : aid - bid);
    keyed.sort((a, b) => cmp(a.k, a.m.id, b.k, b.m.id));
    let start = 0;
    if (p.cursor) {
      const [ck, cid] = decodeCursor(p.cursor);
      // First item strictly after the cursor (binary search: the list is sorted by the same order).
      let lo = 0;
      let hi = keyed.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cmp(keyed[mid]!.k, keyed[mid]!.m.id, ck, cid) <= 0) lo = mid + 1;
        else hi = mid;
      }
      start = lo;
    }
    const slice = keyed.slice(start, start + p.limit);
    // The summaries' file reads overlap (a cold page reads up to `limit` message files).
    const emails = await Promise.all(slice.map(({ m }) => this.summary(mailboxOf(m), m)));
    const last = slice[slice.length - 1];
    const nextCursor = last && start + p.limit < keyed.length ? encodeCursor(last.k, last.m.id) : null;
    return { emails, total: keyed.length, nextCursor, state };
  }

  async list(user: User, folderId: string, p: Paging): Promise<Page> {
    const loc = await this.readableFolder(user, folderId);
    const state = String(await this.o.store.folderModseq(loc.folder.id));
    if (p.sort === 'receivedAt' || p.sort === 'size') {
      // Keyset paging in the store (an index on (folder, received date, id)): O(page), not O(folder).
      const after = p.cursor ? decodeCursor(p.cursor) : null;
      const by = p.sort === 'size' ? 'size' : 'internalDate';
      if (after && typeof after[0] !== (by === 'size' ? 'number' : 'string')) throw new CoreError('invalid cursor');
      const { messages, total } = await this.o.store.pageMessages(loc.folder.id, { by, desc: p.order === 'desc', after: after && { key: after[0], id: after[1] }, limit: p.limit + 1 });
      const page = messages.slice(0, p.limit);
      // The summaries' file reads overlap (a cold page reads up to `limit` message files).
      const emails = await Promise.all(page.map((m) => this.summary(loc.mailbox, m)));
      const last = page[page.length - 1];
      const nextCursor = last && messages.length > p.limit ? encodeCursor(by === 'size' ? last.size : last.internalDate, last.id) : null;
      return { emails, total, nextCursor, state };
    }
    const msgs = await this.o.store.listMessages(loc.folder.id);
    return this.page(() => loc.mailbox, msgs, p, state);
  }

  /**
   * Runs the SEARCH engine (the same evaluation as IMAP UID SEARCH, RFC 9051 §6.4.4) over one
   * folder or every folder of a readable mailbox.
   */
  async search(user: User, where: { mailbox?: string; folderId?: string }, key: SearchKey, p: Paging): Promise<Page> {
    let located: Located[];
    if (where.folderId) {
      const loc = await this.readableFolder(user, where.folderId);
      if (where.mailbox && loc.mailbox.address.toLowerCase() !== where.mailbox.toLowerCase()) throw new NotFound(`no folder ${where.folderId} in ${where.mailbox}`);
      located = [loc];
    } else if (where.mailbox) {
      const { mailbox, acl } = await this.readableMailbox(user, where.mailbox);
      located = (await this.o.store.listFolders(mailbox.id)).map((folder) => ({ mailbox, folder, acl }));
    } else {
      located = [];
      for (const a of await this.o.core.readableMailboxes(user)) {
        const acl = await this.o.core.imapRights(user, a.mailbox);
        for (const folder of await this.o.store.listFolders(a.mailbox.id)) located.push({ mailbox: a.mailbox, folder, acl });
      }
    }
    const found: StoredMessage[] = [];
    const mailboxes = new Map<number, Mailbox>();
    const states: string[] = [];
    for (const loc of located) {
      const fm: FolderMessage[] = await this.o.store.folderMessages(loc.folder.id);
      states.push(`${loc.folder.id}:${await this.o.store.folderModseq(loc.folder.id)}`);
      const hits = await runSearch(key, { messages: fm, folderId: loc.folder.id }, { store: this.o.store, blobs: this.o.blobs, index: this.o.index, saved: [], sequenceTargets: () => [] });
      if (!hits.length) continue;
      const uids = new Set(hits.map((h) => h.uid));
      for (const m of await this.o.store.listMessages(loc.folder.id)) if (uids.has(m.uid)) found.push(m);
      mailboxes.set(loc.folder.id, loc.mailbox);
    }
    return this.page((m) => mailboxes.get(m.folderId)!, found, p, hashId('', states.join(',')));
  }

  // ---- one message ----------------------------------------------------------------------------

  async email(user: User, id: string): Promise<Email> {
    const { mailbox, msg } = await this.readableEmail(user, id);
    const info = await this.o.index.ensure(msg.blobId);
    const raw = await this.o.blobs.read(msg.blobId);
    const ls = leaves(info);
    const body = (sub: string) => {
      const l = ls.find((x) => !x.attachment && x.part.subtype.toLowerCase() === sub);
      return l ? leafText(raw, info, l) : null;
    };
    const headers = headerValuesAll(raw, info);
    const hv = (name: string) => headers.filter((h) => h.name.toLowerCase() === name);
    const list = (name: string): Addr[] => {
      const v = headerValues(raw, info, name, 'address');
      return v.length ? parseAddrLines(v) : [];
    };
    const ids = (name: string) => hv(name).flatMap((h) => h.value.match(/<[^<>\s]+>/g) ?? []).map((s) => s.slice(1, -1));
    const env = info.envelope;
    const xdm = this.xdm(msg.blobId, raw, info, ls);
    return {
      ...(await this.summary(mailbox, msg)),
      messageId: info.messageId,
      inReplyTo: ids('in-reply-to'),
      references: ids('references'),
      replyTo: addrs(env.replyTo),
      sender: addrs(env.sender),
      bcc: addrs(env.bcc),
      headers,
      textBody: body('plain'),
      htmlBody: body('html'),
      attachments: ls.filter((l) => l.attachment).map(attachmentOf),
      dispositionNotificationTo: list('Disposition-Notification-To'),
      mdnSent: msg.flags.some((f) => f.toLowerCase() === '$mdnsent'),
      ...(xdm ? { documents: xdm.documents, ...(xdm.unreadable.length ? { documentErrors: xdm.unreadable } : {}) } : {}),
    };
  }

  /**
   * What software is told of a stored message without an access check (the caller decided it:
   * the webhook dispatcher and the pull route ask Core first): the summary, the Message-ID, the
   * MSSanté header fields as received, the attachments with their part ids, the XDM documents.
   */
  async describe(mailbox: Mailbox, msg: StoredMessage) {
    const info = await this.o.index.ensure(msg.blobId);
    const raw = await this.o.blobs.read(msg.blobId);
    const ls = leaves(info);
    const headers = headerValuesAll(raw, info);
    const first = (name: string) => headers.find((h) => h.name.toLowerCase() === name)?.value ?? null;
    const dnt = headerValues(raw, info, 'Disposition-Notification-To', 'address');
    return {
      summary: await this.summary(mailbox, msg),
      messageId: info.messageId,
      // ANS client référentiel ECO.2.4.x: kept as received.
      // X-MSS-CODECDA: one code per CDA, as one comma-separated field or one field per code.
      mss: {
        codeCda: headers.filter((h) => h.name.toLowerCase() === 'x-mss-codecda').flatMap((h) => h.value.split(',').map((c) => c.trim()).filter(Boolean)),
        ins: first('x-mss-ins'),
        nil: first('x-mss-nil'),
        mes: first('x-mss-mes'),
      },
      dispositionNotificationTo: dnt.length ? parseAddrLines(dnt) : [],
      attachments: ls.filter((l) => l.attachment).map(attachmentOf),
      xdm: this.xdm(msg.blobId, raw, info, ls),
    };
  }

  private xdm(blobId: string, raw: Buffer, info: MessageInfo, ls: Leaf[]): XdmContent | undefined {
    if (this.xdmByBlob.has(blobId)) return this.xdmByBlob.get(blobId);
    const c = xdmContent(raw, info, ls);
    this.xdmByBlob.set(blobId, c);
    if (this.xdmByBlob.size > 1000) this.xdmByBlob.delete(this.xdmByBlob.keys().next().value!);
    return c;
  }

  async raw(user: User, id: string): Promise<{ data: Buffer; subject: string }> {
    const { msg } = await this.readableEmail(user, id);
    const info = await this.o.index.ensure(msg.blobId);
    return { data: await this.o.blobs.read(msg.blobId), subject: info.subject };
  }

  /** One leaf, decoded (Content-Transfer-Encoding removed): an attachment download. */
  async part(user: User, id: string, partId: string): Promise<{ data: Uint8Array; attachment: Attachment }> {
    const { msg } = await this.readableEmail(user, id);
    const info = await this.o.index.ensure(msg.blobId);
    const leaf = leaves(info).find((l) => l.partId === partId);
    if (!leaf) throw new NotFound(`no part ${partId} in ${id}`);
    const c = binaryContent(await this.o.blobs.read(msg.blobId), info, partId.split('.').map(Number));
    if (!c || !('data' in c)) throw new CoreError(`part ${partId} of ${id} cannot be decoded (${c && 'error' in c ? c.error : 'invalid'})`);
    return { data: c.data, attachment: attachmentOf(leaf) };
  }

  // ---- changes ----------------------------------------------------------------------------------

  /** 'folder-changed' as IMAP emits it ({ folderId }), with what changed for the API's event stream. */
  private changed(folderId: number, kind: 'created' | 'changed' | 'destroyed', ids: string[]) {
    this.o.core.events.emit('folder-changed', { folderId, kind, ids });
  }

  /**
   * Flag changes (RFC 4314 §4: \Seen needs "s", other flags "w"), then the summary. A \Seen set
   * by an entitled user is reading activity (golden rule 1).
   */
  async setFlags(user: User, id: string, ch: { seen?: boolean; flagged?: boolean; answered?: boolean; keywords?: { add?: string[]; remove?: string[] } }, remote: string | null = null): Promise<EmailSummary> {
    const loc = await this.readableEmail(user, id);
    const add: string[] = [];
    const remove: string[] = [];
    const put = (on: boolean | undefined, flag: string) => (on === undefined ? undefined : (on ? add : remove).push(flag));
    put(ch.seen, '\\Seen');
    put(ch.flagged, '\\Flagged');
    put(ch.answered, '\\Answered');
    add.push(...(ch.keywords?.add ?? []));
    remove.push(...(ch.keywords?.remove ?? []));
    const needsW = [...add, ...remove].some((f) => f !== '\\Seen');
    if (needsW) MailService.need(loc, 'w', 'changing flags');
    if ([...add, ...remove].includes('\\Seen')) MailService.need(loc, 's', 'marking as read');
    if (add.length) await this.o.store.storeFlags(loc.folder.id, [loc.msg.uid], 'add', add);
    if (remove.length) await this.o.store.storeFlags(loc.folder.id, [loc.msg.uid], 'remove', remove);
    if (add.length || remove.length) {
      // Traces as IMAP's STORE (imap/commands/trace.ts): \Seen set is a reading (docs/traces.md).
      if (add.includes('\\Seen')) {
        await this.o.core.recordActivity([loc.mailbox.id], 'read');
        await this.o.core.trace(loc.mailbox, 'read', { protocol: 'web', user, remote }, { folder: loc.folder.name, messages: 1, uids: String(loc.msg.uid) });
      }
      this.changed(loc.folder.id, 'changed', [id]);
    }
    const now = (await this.o.store.getMessage(loc.msg.id))!;
    return this.summary(loc.mailbox, now);
  }

  /** Moves the message to another folder of the same mailbox (RFC 6851 semantics: needs manage); returns the new id. */
  async move(user: User, id: string, folderId: string, remote: string | null = null): Promise<string> {
    const loc = await this.readableEmail(user, id);
    const target = await this.readableFolder(user, folderId);
    if (target.mailbox.id !== loc.mailbox.id) throw new CoreError('a message moves only between folders of the same mailbox');
    if (target.folder.id === loc.folder.id) return id;
    MailService.need(loc, 'te', 'moving a message');
    MailService.need(target, 'i', 'moving a message');
    return this.moveTo(loc, target.folder, user, remote);
  }

  private async moveTo(loc: Located & { msg: StoredMessage }, to: Folder, user: User, remote: string | null): Promise<string> {
    const map = await this.o.store.copyMessages(loc.folder.id, [loc.msg.uid], to.id, true);
    const moved = map[0] ? await this.o.store.getMessageByUid(to.id, map[0].to) : undefined;
    if (!moved) throw new NotFound(`no email ${emailIdOf(loc.msg.id)}`);
    await this.o.core.trace(loc.mailbox, 'moved', { protocol: 'web', user, remote }, { folder: loc.folder.name, messages: 1, uids: String(loc.msg.uid), to: to.name });
    this.changed(loc.folder.id, 'destroyed', [emailIdOf(loc.msg.id)]);
    this.changed(to.id, 'created', [emailIdOf(moved.id)]);
    return emailIdOf(moved.id);
  }

  /** Delete: to the mailbox's Trash (RFC 6154 \Trash); in Trash already, expunged for good. */
  async remove(user: User, id: string, remote: string | null = null): Promise<void> {
    const loc = await this.readableEmail(user, id);
    MailService.need(loc, 'te', 'deleting a message');
    const trash = await this.folderByRole(loc.mailbox.id, '\\Trash');
    if (trash.id !== loc.folder.id) {
      await this.moveTo(loc, trash, user, remote);
      return;
    }
    await this.o.store.storeFlags(loc.folder.id, [loc.msg.uid], 'add', ['\\Deleted']);
    await this.o.store.expunge(loc.folder.id, [loc.msg.uid]);
    await this.o.core.trace(loc.mailbox, 'deleted', { protocol: 'web', user, remote }, { folder: loc.folder.name, messages: 1, uids: String(loc.msg.uid) });
    this.changed(loc.folder.id, 'destroyed', [id]);
  }

  /** Stores a message file in the role folder (Drafts, Sent) of `mailbox` with `flags`; returns the new id. */
  async append(mailbox: Mailbox, use: '\\Drafts' | '\\Sent', blob: { id: string; size: number }, flags: string[]): Promise<{ id: string; folderId: number }> {
    const folder = await this.folderByRole(mailbox.id, use);
    const r = await this.o.store.appendMessage(folder.id, { blobId: blob.id, size: blob.size, flags, internalDate: new Date() });
    this.o.core.events.emit('stored', { blobId: blob.id });
    const m = await this.o.store.getMessageByUid(folder.id, r.uid);
    this.changed(folder.id, 'created', [emailIdOf(m!.id)]);
    return { id: emailIdOf(m!.id), folderId: folder.id };
  }

  /** Removes a draft for good (Drafts folder only; needs the manage right). */
  async removeDraft(user: User, id: string): Promise<Located & { msg: StoredMessage }> {
    const loc = await this.readableEmail(user, id);
    if ((loc.folder.specialUse ?? '').toLowerCase() !== '\\drafts') throw new NotFound(`no draft ${id}`);
    MailService.need(loc, 'te', 'deleting a draft');
    await this.o.store.storeFlags(loc.folder.id, [loc.msg.uid], 'add', ['\\Deleted']);
    await this.o.store.expunge(loc.folder.id, [loc.msg.uid]);
    this.changed(loc.folder.id, 'destroyed', [id]);
    return loc;
  }
}

/** Every top-level header field, unfolded, RFC 2047-decoded. */
function headerValuesAll(raw: Buffer, info: MessageInfo): { name: string; value: string }[] {
  const { fields } = parseHeaderBlock(raw, info.root.headerStart, info.root.bodyStart);
  return fields.filter((f) => f.colon >= 0).map((f) => ({ name: f.name, value: decodeWords(binToTextMixed(fieldValueOneLine(raw, f))).trim() }));
}

/** Address values (already decoded by headerValues 'address' mode: "Name <a@b>, …") → Addr[]. */
function parseAddrLines(values: string[]): Addr[] {
  const out: Addr[] = [];
  for (const v of values)
    for (const m of v.matchAll(/(?:"?([^",<]*?)"?\s*)?<([^<>\s]+@[^<>\s]+)>|([^\s,<>"]+@[^\s,<>"]+)/g)) {
      const email = m[2] ?? m[3];
      if (email) out.push({ name: m[1]?.trim() || null, email });
    }
  return out;
}
