// What a command group sees of its IMAP session (session.ts implements it), the handler table
// type that lets session.ts check every command has exactly one handler, and the helpers the
// groups share: mailbox names in and out, resolving a name, rights, change notification.
import type { SecureContext, Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import type { Authenticator } from '../../auth/index.js';
import type { SaslServer } from '../../auth/sasl.js';
import type { Core, FoldersChange, User } from '../../core/index.js';
import type { Folder } from '../../model/index.js';
import type { MessageFiles } from '../../store/message-files.js';
import type { Store } from '../../store/types.js';
import { ImapError, no } from '../errors.js';
import type { MessageIndex } from '../../mail/message-index.js';
import type { MailboxAccess, ResolvedName, UserNamespace } from '../namespace.js';
import { astring } from '../protocol/encoder.js';
import { decodeMutf7, encodeMutf7 } from '../protocol/mutf7.js';
import type { CommandParser, ParserEvent } from '../protocol/parser.js';
import type { Command } from '../protocol/types.js';
import type { SearchUpdates } from '../search-updates.js';
import type { NotifyState } from './notify.js';
import type { FolderView } from '../view.js';
import type { FolderSnapshots } from '../folder-snapshots.js';

export interface ImapServices {
  core: Core;
  store: Store;
  blobs: MessageFiles;
  auth: Authenticator;
  index: MessageIndex;
  logger: Logger;
  hostname: string;
  secureContext: SecureContext;
  /**
   * The server handed to the STARTTLS upgrade's TLSSocket (its `server` option): Node asks its
   * 'OCSPRequest' listeners for the OCSP response to staple (trust/ocsp-stapling.ts). None: no staple.
   */
  startTlsServer?: TlsServer;
  /** Key and certificate chain (PEM) for the implicit-TLS listener. */
  tlsKeyCert: { key: string; cert: string };
  /** CA bundle (PEM) whose names are sent when asking clients for a certificate (implicit TLS; for STARTTLS it is in secureContext). */
  ca?: string;
  /** Largest message APPEND accepts (RFC 7889 APPENDLIMIT). */
  appendLimit: number;
  /** Default storage quota per mailbox (BAL) in bytes (RFC 9208), when the BAL has none. */
  defaultQuotaBytes: number;
  /** Big folders' message lists kept between SELECTs (issue 15); one per process, shared by the listeners. */
  snapshots: FolderSnapshots;
}

/** RFC 9051 §3: not authenticated, authenticated, selected, logout. */
export type SessionState = 'notauth' | 'auth' | 'selected' | 'logout';

/** The session as the command groups use it: its state, the services, and how to answer. */
export interface SessionContext {
  readonly s: ImapServices;
  readonly log: Logger;
  readonly remote: string | null;
  /** The address the client reached this session on (URLAUTH: a URL may name the server by it). */
  readonly local: string | null;
  readonly secure: boolean;
  readonly parser: CommandParser;
  readonly sasl: SaslServer;
  state: SessionState;
  /** Set once authenticated (the dispatcher lets no command that needs them run before). */
  user?: User;
  ns?: UserNamespace;
  /** The selected folder (state 'selected'). */
  view?: FolderView;
  /** Extensions turned on by ENABLE or by a command that enables them (upper case). */
  readonly enabled: Set<string>;
  readonly rev2: boolean;
  /** UTF-8 session: ENABLE UTF8=ACCEPT (RFC 6855 §3) or IMAP4rev2 (RFC 9051 §4.3). */
  readonly utf8: boolean;
  readonly condstore: boolean;
  readonly qresync: boolean;
  /** RFC 5182 SEARCHRES: the UIDs saved by SEARCH RETURN (SAVE), referred to as "$". */
  savedSearch: number[];
  /** RFC 5267 update contexts of the selected folder (stale, and dropped, once `view` is another). */
  searchUpdates?: SearchUpdates;
  /** RFC 5465 NOTIFY SET in force (undefined: never set, or NOTIFY NONE). */
  notify?: NotifyState;
  /** RFC 5465 §5.8: notifications overflowed (NOTIFY is off); `* OK [NOTIFICATIONOVERFLOW]` is owed to the client. */
  notifyOverflow: boolean;
  /** RFC 2177 IDLE: the tag of the running IDLE, and whether updates are being pushed. */
  /** `again`: a change was announced while a push was running (it may have read the store before that change): push once more. */
  readonly idle: { tag: string | null; pushing: boolean; again: boolean };
  write(data: string | Buffer): void;
  enableCondstore(): void;
  /** The client certificate chain presented during the TLS handshake (leaf first; empty: none). */
  peerChain(): Uint8Array[];
  /** Reads one raw line from the client (AUTHENTICATE exchanges). */
  readLine(): Promise<string>;
  handleEvents(events: ParserEvent[]): void;
  /** Resolves once the socket has room again (large FETCH responses). */
  waitDrain(): Promise<void>;
  /** Sends the untagged updates of the selected folder (EXPUNGE only when `allowExpunge`). */
  flushUpdates(allowExpunge: boolean): Promise<void>;
  /** A message's flags as sent: with \Recent for IMAP4rev1 clients. */
  flagsOut(m: { flags: string[]; recent: boolean }): string[];
}

/** The commands named `N` (several names may share one shape, e.g. FETCH and UID FETCH). */
export type CommandOf<N extends Command['name']> = Command & { name: N };

/** Runs a command; returns the tagged OK text, or null when the handler answers itself (IDLE, STARTTLS). */
export type Handler<N extends Command['name']> = (ctx: SessionContext, cmd: CommandOf<N>, tag: string) => Promise<string | null>;

/** Handlers by command name; session.ts joins the groups' tables into one covering every command. */
export type Handlers<N extends Command['name'] = Command['name']> = { [K in N]: Handler<K> };

/**
 * UTF-8 names once IMAP4rev2 (RFC 9051 §5.1) or UTF8=ACCEPT (RFC 6855 §3: "MUST use UTF-8, not
 * modified UTF-7") is enabled; modified UTF-7 (RFC 3501 §5.1.3) otherwise.
 */
export function nameOut(ctx: SessionContext, name: string): string {
  return ctx.utf8 ? astring(name, { utf8: true }) : astring(encodeMutf7(name));
}

/**
 * Client name → Unicode. A name that is not valid modified UTF-7 is taken as written when it
 * is only looked up (it then simply does not exist); creating one is refused (`strict`).
 */
export function decodeName(ctx: SessionContext, name: string, strict = false): string {
  if (ctx.utf8) return name;
  try {
    return decodeMutf7(name);
  } catch {
    if (!strict) return name;
    throw no('CANNOT', `mailbox name ${JSON.stringify(name)} is not valid modified UTF-7 (RFC 3501 §5.1.3)`);
  }
}

export function resolveOrThrow(ctx: SessionContext, name: string, mustExistLater: boolean): ResolvedName {
  const r = ctx.ns!.resolve(decodeName(ctx, name));
  if (!r) throw no('NONEXISTENT', `no mailbox ${name}${mustExistLater ? '' : ''}`);
  return r;
}

export async function folderOf(ctx: SessionContext, name: string): Promise<{ r: ResolvedName; folder: Folder }> {
  const r = resolveOrThrow(ctx, name, true);
  const folder = await ctx.s.store.getFolder(r.access.mailbox.id, r.folder);
  if (!folder) throw no('NONEXISTENT', `mailbox ${name} does not exist`);
  return { r, folder };
}

export async function requireRight(ctx: SessionContext, access: MailboxAccess, right: string) {
  const acl = await ctx.s.core.imapRights(ctx.user!, access.mailbox);
  if (!acl.includes(right)) throw no('NOPERM', `you do not have the right to do this on ${access.mailbox.address} (RFC 4314 right "${right}" missing)`);
}

/**
 * Untagged FLAGS and PERMANENTFLAGS for the selected folder: at SELECT, and again whenever a
 * keyword the session was not told about is about to show in a FETCH (RFC 9051 §7.3.5 FLAGS,
 * whose list the client records; §7.1 PERMANENTFLAGS, with \* as keywords may be created).
 */
export function writeFlagList(ctx: SessionContext, v: FolderView) {
  const flags = v.flagList;
  ctx.write(`* FLAGS (${flags.join(' ')})\r\n`);
  ctx.write(`* OK [PERMANENTFLAGS (${v.readOnly ? '' : [...flags, '\\*'].join(' ')})] ${v.readOnly ? 'read-only' : 'flags permitted'}\r\n`);
}

/** Announces (FLAGS, PERMANENTFLAGS) the keywords among `lists` the session was not told about yet; call before writing FETCH responses showing them. */
export function announceKeywords(ctx: SessionContext, v: FolderView, lists: Iterable<string[]>) {
  if (v.announceNew(lists)) writeFlagList(ctx, v);
}

export function notifyChanged(ctx: SessionContext, folderId: number) {
  ctx.s.core.events.emit('folder-changed', { folderId });
}

/** The folder list or subscriptions of `mailboxId` changed (RFC 5465 §5.4, §5.5: NOTIFY MailboxName, SubscriptionChange). */
export function foldersChanged(ctx: SessionContext, mailboxId: number) {
  ctx.s.core.events.emit('folders-changed', { mailboxId } satisfies FoldersChange);
}

/**
 * The folder APPEND, COPY or MOVE put messages into: it must exist (RFC 9051 §6.3.12, §6.4.7:
 * NO [TRYCREATE] tells the client it may CREATE it first) and the user must hold "i" on it.
 */
export async function destinationFolder(ctx: SessionContext, name: string): Promise<{ r: ResolvedName; folder: Folder }> {
  let dest: { r: ResolvedName; folder: Folder };
  try {
    dest = await folderOf(ctx, name);
  } catch (e) {
    if (e instanceof ImapError && e.code === 'NONEXISTENT') throw no('TRYCREATE', `mailbox ${name} does not exist`);
    throw e;
  }
  await requireRight(ctx, dest.r.access, 'i');
  return dest;
}
