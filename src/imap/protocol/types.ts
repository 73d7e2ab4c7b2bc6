// The IMAP command syntax tree produced by the pure parser (parser.ts) and consumed by the
// server's command handlers. RFC 9051 (IMAP4rev2) and RFC 3501 (IMAP4rev1) §9 formal syntax,
// plus the extensions the server announces. No I/O here.

import type { SearchKey, SequenceSet } from '../../mail/search-key.js';
export type { SearchKey, SequenceSet };

/** A mailbox name as sent (after literal/quoted decoding), not yet mUTF-7 decoded. */
export type MailboxName = string;

/** RFC 9051 §6.4.5 fetch items. */
export type Section =
  | { kind: 'full' } // BODY[]
  | { kind: 'header'; part: number[] } // [HEADER] or [1.2.HEADER] (part empty = top)
  | { kind: 'header.fields'; part: number[]; fields: string[]; not: boolean }
  | { kind: 'text'; part: number[] }
  | { kind: 'mime'; part: number[] } // [1.2.MIME]
  | { kind: 'part'; part: number[] }; // [1.2]

export type FetchAttribute =
  | { kind: 'uid' }
  | { kind: 'flags' }
  | { kind: 'internaldate' }
  | { kind: 'rfc822.size' }
  | { kind: 'envelope' }
  | { kind: 'bodystructure' }
  | { kind: 'body-structure' } // BODY (non-extensible bodystructure)
  | { kind: 'rfc822' } // = BODY[] with response name RFC822
  | { kind: 'rfc822.header' }
  | { kind: 'rfc822.text' }
  | { kind: 'modseq' } // RFC 7162
  | { kind: 'savedate' } // RFC 8514 (optional)
  | { kind: 'emailid' } // RFC 8474 (optional)
  | { kind: 'body'; section: Section; peek: boolean; partial?: { offset: number; length: number } }
  | { kind: 'binary'; part: number[]; peek: boolean; partial?: { offset: number; length: number } } // RFC 3516
  | { kind: 'binary.size'; part: number[] };


export type StoreAction = { op: 'set' | 'add' | 'remove'; silent: boolean; flags: string[] };

export type StatusItem = 'MESSAGES' | 'UIDNEXT' | 'UIDVALIDITY' | 'UNSEEN' | 'DELETED' | 'SIZE' | 'RECENT' | 'HIGHESTMODSEQ' | 'APPENDLIMIT';

/** RFC 4469 §5 cat-part: a TEXT literal, or the URL of a message or part to copy in. */
/** `utf8`: the part came as RFC 6855 §4 `UTF8 (~{n})` (cat-part =/ utf8-literal), a literal8. */
export type CatenatePart = { kind: 'text'; data: Uint8Array; utf8?: boolean } | { kind: 'url'; url: string };

export interface AppendMessage {
  flags: string[];
  date?: string; // date-time as sent, "dd-Mon-yyyy hh:mm:ss +zzzz"
  /** The literal (or literal8 with binary=true); empty when `catenate` gives the message. */
  data: Uint8Array;
  binary: boolean;
  /** RFC 6855 §4: sent as the `UTF8 (~{n})` data item (a message with UTF-8 headers; binary is true too). */
  utf8?: boolean;
  /** RFC 4469 CATENATE: the message is these parts joined (the server resolves the URLs). */
  catenate?: CatenatePart[];
}

export interface ListCommand {
  reference: MailboxName;
  patterns: MailboxName[];
  selection: string[]; // RFC 5258 selection options, upper case: SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE
  returns: { name: string; items?: string[] }[]; // RETURN (SUBSCRIBED CHILDREN SPECIAL-USE STATUS (MESSAGES ...))
}

export type SortKey = { key: 'ARRIVAL' | 'CC' | 'DATE' | 'FROM' | 'SIZE' | 'SUBJECT' | 'TO' | 'DISPLAYFROM' | 'DISPLAYTO'; reverse: boolean };

/**
 * RFC 4731 ESEARCH return options / RFC 9051 §6.4.4 RETURN, RFC 5182 SAVE, RFC 5267 §4 CONTEXT,
 * UPDATE and PARTIAL (the PARTIAL range is the command's `partial`).
 */
export type SearchReturn = ('MIN' | 'MAX' | 'ALL' | 'COUNT' | 'SAVE' | 'CONTEXT' | 'UPDATE' | 'PARTIAL')[];

/** RFC 5267 §4.4 partial-range "from:to" (1-based positions in the result, from <= to after normalisation). */
export type PartialRange = { from: number; to: number };

export type Command =
  // any state
  | { name: 'CAPABILITY' }
  | { name: 'NOOP' }
  | { name: 'LOGOUT' }
  | { name: 'ID'; params: Record<string, string | null> | null } // RFC 2971
  // not authenticated
  | { name: 'STARTTLS' }
  | { name: 'LOGIN'; user: string; password: string }
  | { name: 'AUTHENTICATE'; mechanism: string; initialResponse?: string /* base64, '=' = empty (RFC 4959) */ }
  // authenticated
  | { name: 'ENABLE'; capabilities: string[] }
  | { name: 'SELECT' | 'EXAMINE'; mailbox: MailboxName; condstore: boolean; qresync?: { uidValidity: number; modseq: bigint; knownUids?: SequenceSet; seqMatch?: { seqs: SequenceSet; uids: SequenceSet } } }
  | { name: 'CREATE'; mailbox: MailboxName; specialUse?: string[] }
  | { name: 'DELETE'; mailbox: MailboxName }
  | { name: 'RENAME'; from: MailboxName; to: MailboxName }
  | { name: 'SUBSCRIBE' | 'UNSUBSCRIBE'; mailbox: MailboxName }
  | ({ name: 'LIST' } & ListCommand)
  | { name: 'LSUB'; reference: MailboxName; pattern: MailboxName }
  | { name: 'NAMESPACE' }
  | { name: 'STATUS'; mailbox: MailboxName; items: StatusItem[] }
  | { name: 'APPEND'; mailbox: MailboxName; messages: AppendMessage[] } // MULTIAPPEND (RFC 3502) gives several
  | { name: 'IDLE' }
  | { name: 'GETQUOTA'; root: string }
  | { name: 'GETQUOTAROOT'; mailbox: MailboxName }
  | { name: 'SETQUOTA'; root: string; limits: { resource: string; limit: number }[] }
  | { name: 'SETACL'; mailbox: MailboxName; identifier: string; rights: string }
  | { name: 'DELETEACL'; mailbox: MailboxName; identifier: string }
  | { name: 'GETACL'; mailbox: MailboxName }
  | { name: 'LISTRIGHTS'; mailbox: MailboxName; identifier: string }
  | { name: 'MYRIGHTS'; mailbox: MailboxName }
  // RFC 5464 §4.2–4.3 METADATA (authenticated or selected); mailbox "" = the server
  | { name: 'GETMETADATA'; mailbox: MailboxName; maxSize?: number; depth: MetadataDepth; entries: string[] }
  | { name: 'SETMETADATA'; mailbox: MailboxName; values: { entry: string; value: Uint8Array | null }[] }
  // RFC 4467 §7 URLAUTH (authenticated or selected)
  | { name: 'GENURLAUTH'; urls: { url: string; mechanism: string }[] }
  | { name: 'URLFETCH'; urls: UrlFetchArg[] }
  | { name: 'RESETKEY'; mailbox?: MailboxName; mechanisms: string[] }
  // selected
  | { name: 'CLOSE' }
  | { name: 'UNSELECT' }
  | { name: 'EXPUNGE' }
  | { name: 'UID EXPUNGE'; set: SequenceSet }
  | { name: 'CHECK' }
  | { name: 'SEARCH' | 'UID SEARCH'; charset?: string; returns?: SearchReturn; partial?: PartialRange; key: SearchKey }
  | { name: 'FETCH' | 'UID FETCH'; set: SequenceSet; attributes: FetchAttribute[]; macro?: 'ALL' | 'FAST' | 'FULL'; changedSince?: bigint; vanished?: boolean }
  | { name: 'STORE' | 'UID STORE'; set: SequenceSet; action: StoreAction; unchangedSince?: bigint }
  | { name: 'COPY' | 'UID COPY' | 'MOVE' | 'UID MOVE'; set: SequenceSet; mailbox: MailboxName }
  | { name: 'SORT' | 'UID SORT'; keys: SortKey[]; charset: string; key: SearchKey; returns?: SearchReturn; partial?: PartialRange }
  | { name: 'CANCELUPDATE'; tags: string[] } // RFC 5267 §4.3.5
  | { name: 'NOTIFY'; status: boolean; groups: NotifyGroup[] | null } // RFC 5465 §3.1; null = NOTIFY NONE
  | { name: 'THREAD' | 'UID THREAD'; algorithm: 'REFERENCES' | 'ORDEREDSUBJECT' | string; charset: string; key: SearchKey };

/**
 * One URLFETCH argument: RFC 4467 §7 url, or RFC 5524 §3 "(" url *(SP url-fetch-param) ")" with
 * its parameters (upper case: BODY, BINARY, BODYPARTSTRUCTURE); `extended` for the second form.
 */
export interface UrlFetchArg {
  url: string;
  extended: boolean;
  params: ('BODY' | 'BINARY' | 'BODYPARTSTRUCTURE')[];
}

/** RFC 5464 §4.2.2 DEPTH: the entry only ("0"), its children too ("1"), or all its descendants ("infinity"). */
export type MetadataDepth = 0 | 1 | 'infinity';

/** RFC 5465 §8 event (event-ext kept as sent, upper case): MessageNew may carry FETCH attributes. */
export type NotifyEvent = { name: 'MESSAGENEW'; fetch?: FetchAttribute[] } | { name: string };

/** RFC 5465 §6 mailbox specifiers (filter-mailboxes). */
export type NotifyFilter = { kind: 'SELECTED' | 'SELECTED-DELAYED' | 'INBOXES' | 'PERSONAL' | 'SUBSCRIBED' } | { kind: 'SUBTREE' | 'MAILBOXES'; mailboxes: MailboxName[] };

/** RFC 5465 §8 event-group; `events` empty for NONE. */
export interface NotifyGroup {
  filter: NotifyFilter;
  events: NotifyEvent[];
}

/** One complete command line (with its literals) as the parser delivers it. */
export type ParsedCommand =
  | { ok: true; tag: string; command: Command }
  | { ok: false; tag: string | null; /** Text for `tag BAD text` (or `* BAD` when no tag). */ message: string; /** Response code, e.g. 'CLIENTBUG', 'TOOBIG', 'BADCHARSET'. */ code?: string };
