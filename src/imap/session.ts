// One IMAP connection: the state machine of RFC 9051 §3 (not authenticated, authenticated,
// selected, logout), command dispatch in order (pipelined commands are answered in order),
// and untagged updates at the points §7 allows. Protocol parsing and encoding are pure and live
// in protocol/; access decisions come from core/ (through UserNamespace); SQL stays in store/.
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { AuthResult, Authenticator } from '../auth/index.js';
import { SaslServer, type SaslFailure } from '../auth/sasl.js';
import { peerCertificateChain } from '../trust/index.js';
import { aclToRights, type Core, type GrantRight, type User } from '../core/index.js';
import type { BlobStore } from '../store/blobs.js';
import type { Folder } from '../model/index.js';
import type { Store } from '../store/types.js';
import { fetchMessage, type FetchContext } from './fetch.js';
import { compileListPattern, ListPatternTooLong, type NameMatcher } from './list-pattern.js';
import { DELIMITER, OTHER_PREFIX, SHARED_PREFIX, UserNamespace, type MailboxAccess, type ResolvedName } from './namespace.js';
import { CommandParser, type ParserEvent } from './protocol/parser.js';
import { decodeMutf7, encodeMutf7 } from './protocol/mutf7.js';
import type { AppendMessage, Command, ListCommand, SearchKey, SequenceSet, StatusItem } from './protocol/types.js';
import { astring, quoted, sequenceSet as encodeSet } from './protocol/encoder.js';
import { runSearch } from './search.js';
import { sortItems, threadOrderedSubject, threadReferences, threadToString, type SortItem } from './sort-thread.js';
import { FolderView, type ViewUpdate } from './view.js';
import { MessageIndex } from './message-index.js';

export interface ImapServices {
  core: Core;
  store: Store;
  blobs: BlobStore;
  auth: Authenticator;
  index: MessageIndex;
  logger: Logger;
  hostname: string;
  secureContext: SecureContext;
  /** Key and certificate chain (PEM) for the implicit-TLS listener. */
  tlsKeyCert: { key: string; cert: string };
  /** CA bundle (PEM) whose names are sent when asking clients for a certificate (implicit TLS; for STARTTLS it is in secureContext). */
  ca?: string;
  /** Largest message APPEND accepts (RFC 7889 APPENDLIMIT). */
  appendLimit: number;
  /** Default storage quota per mailbox (BAL) in bytes (RFC 9208), when the BAL has none. */
  defaultQuotaBytes: number;
}

class ImapNo extends Error {
  constructor(
    message: string,
    readonly code?: string,
    readonly kind: 'NO' | 'BAD' = 'NO',
  ) {
    super(message);
  }
}

const SPECIAL_USES = ['\\All', '\\Archive', '\\Drafts', '\\Flagged', '\\Junk', '\\Sent', '\\Trash'];
const SYSTEM_FLAGS = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'];

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

export class ImapSession {
  private socket: Socket;
  private readonly remote: string | null;
  // ENABLE pauses too, so commands pipelined after ENABLE IMAP4rev2 are parsed with UTF-8 allowed.
  private readonly parser = new CommandParser({ pauseAfter: ['STARTTLS', 'AUTHENTICATE', 'IDLE', 'ENABLE'] });
  private state: 'notauth' | 'auth' | 'selected' | 'logout' = 'notauth';
  private user?: User;
  private ns?: UserNamespace;
  private view?: FolderView;
  private viewName?: string;
  private readonly enabled = new Set<string>();
  private readonly queue: ParserEvent[] = [];
  private busy = false;
  private idleTag: string | null = null;
  private lineWaiter?: (line: string) => void;
  private savedSearch: number[] = [];
  private closed = false;
  private readonly log: Logger;
  private readonly onChange = (e: { folderId: number }) => {
    if (this.idleTag && this.view && e.folderId === this.view.folderId) void this.pushIdleUpdates();
  };

  constructor(
    socket: Socket,
    private readonly s: ImapServices,
    private secure: boolean,
    readonly id: string,
  ) {
    this.socket = socket;
    this.remote = socket.remoteAddress ?? null;
    this.log = s.logger.child({ component: 'imap', session: id });
    this.attach(socket);
    s.core.events.on('delivered', this.onChange);
    s.core.events.on('folder-changed', this.onChange);
    this.write(`* OK [CAPABILITY ${this.capabilities().join(' ')}] Caducée MSSanté IMAP ready\r\n`);
  }

  private attach(socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // A TLS error after the handshake (e.g. the client's fatal alert when its renegotiation is
    // refused) leaves the socket open but useless: end the session instead of idling 30 minutes.
    socket.on('error', (e) => (this.log.debug({ err: e.message }, 'socket error'), socket.destroy()));
    socket.on('close', () => this.cleanup());
    socket.setTimeout(30 * 60 * 1000, () => {
      // RFC 9051 §5.4: autologout timer of at least 30 minutes.
      this.write('* BYE autologout: idle for too long\r\n');
      socket.end();
    });
  }

  private cleanup() {
    if (this.closed) return;
    this.closed = true;
    this.s.core.events.off('delivered', this.onChange);
    this.s.core.events.off('folder-changed', this.onChange);
  }

  private write(data: string | Buffer) {
    if (!this.closed && this.socket.writable) this.socket.write(data);
  }

  capabilities(): string[] {
    const caps = ['IMAP4rev1', 'IMAP4rev2', 'LITERAL+', 'ID', 'ENABLE'];
    if (this.state === 'notauth') {
      if (!this.secure) caps.push('STARTTLS', 'LOGINDISABLED'); // RFC 9051 §6.2.3, §11.1
      else caps.push('SASL-IR', ...this.sasl().mechanisms({ clientCertificate: this.peerChain().length > 0 }).map((m) => `AUTH=${m}`));
      return caps;
    }
    caps.push(
      'IDLE',
      'UIDPLUS',
      'MOVE',
      'NAMESPACE',
      'UNSELECT',
      'SPECIAL-USE',
      'CREATE-SPECIAL-USE',
      'CHILDREN',
      'LIST-EXTENDED',
      'LIST-STATUS',
      'STATUS=SIZE',
      'ESEARCH',
      'SEARCHRES',
      'MULTIAPPEND',
      `APPENDLIMIT=${this.s.appendLimit}`,
      'QUOTA',
      'QUOTA=RES-STORAGE',
      'QUOTA=RES-MESSAGE',
      'ACL',
      'RIGHTS=texk',
      'CONDSTORE',
      'QRESYNC',
      'BINARY',
      'SORT',
      'SORT=DISPLAY',
      'THREAD=ORDEREDSUBJECT',
      'THREAD=REFERENCES',
    );
    return caps;
  }

  private get rev2(): boolean {
    return this.enabled.has('IMAP4REV2');
  }

  /** RFC 7162 §3.1: CONDSTORE is enabled by ENABLE, SELECT (CONDSTORE) or any CONDSTORE-enabling command. */
  private get condstore(): boolean {
    return this.enabled.has('CONDSTORE') || this.enabled.has('QRESYNC');
  }

  private get qresync(): boolean {
    return this.enabled.has('QRESYNC');
  }

  private enableCondstore() {
    if (!this.condstore) {
      this.enabled.add('CONDSTORE');
      // RFC 7162 §3.1.2: a CONDSTORE-enabling command in the selected state announces HIGHESTMODSEQ.
      if (this.view) this.write(`* OK [HIGHESTMODSEQ ${this.view.modseq}] CONDSTORE enabled\r\n`);
    }
  }

  // ---- input --------------------------------------------------------------------------------

  private onData(chunk: Buffer) {
    let events: ParserEvent[];
    try {
      events = this.parser.push(chunk);
    } catch (e) {
      this.log.error({ err: e }, 'parser failure');
      this.write('* BYE internal parser error\r\n');
      this.socket.destroy();
      return;
    }
    this.handleEvents(events);
  }

  private handleEvents(events: ParserEvent[]) {
    for (const ev of events) {
      if (ev.type === 'continue') this.write(`+ ${ev.text}\r\n`);
      else if (ev.type === 'line' && this.lineWaiter) {
        // An AUTHENTICATE exchange is waiting for this line (the command is still running).
        const w = this.lineWaiter;
        this.lineWaiter = undefined;
        w(ev.text);
      } else this.queue.push(ev);
    }
    void this.drain();
  }

  private async drain() {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.queue.length && !this.closed) {
        const ev = this.queue.shift()!;
        if (ev.type === 'line') {
          const w = this.lineWaiter;
          this.lineWaiter = undefined;
          if (w) w(ev.text);
          else if (this.idleTag) await this.endIdle(ev.text);
          continue;
        }
        if (ev.type === 'literal-too-big') {
          this.write(`${ev.tag ?? '*'} NO [TOOBIG] literal of ${ev.size} bytes is larger than this server accepts\r\n`);
          continue;
        }
        if (ev.type !== 'command') continue;
        const p = ev.parsed;
        if (!p.ok) {
          // RFC 9051 §6.4.4: an unknown charset is NO [BADCHARSET (...)], other syntax errors BAD.
          if (p.code === 'BADCHARSET') this.write(`${p.tag ?? '*'} NO [BADCHARSET (US-ASCII UTF-8)] ${p.message}\r\n`);
          else this.write(`${p.tag ?? '*'} BAD ${p.code ? `[${p.code}] ` : ''}${p.message}\r\n`);
          continue;
        }
        await this.execute(p.tag, p.command);
        // The parser pauses after STARTTLS, AUTHENTICATE, IDLE and ENABLE; carry on with what
        // the client pipelined, now that the mode is set.
        if (!this.closed) this.handleEvents(this.parser.resume());
      }
    } finally {
      this.busy = false;
    }
  }

  /** Reads one raw line from the client (AUTHENTICATE exchanges). */
  private readLine(): Promise<string> {
    this.parser.expectLine();
    const p = new Promise<string>((resolve) => (this.lineWaiter = resolve));
    this.handleEvents(this.parser.resume());
    return p;
  }

  // ---- dispatch -----------------------------------------------------------------------------

  private async execute(tag: string, cmd: Command) {
    const name = cmd.name;
    try {
      const allowed = this.allowedIn(name);
      if (!allowed) throw new ImapNo(`${name} is not allowed ${this.state === 'notauth' ? 'before authentication' : this.state === 'auth' ? 'without a selected mailbox' : 'now'}`, undefined, 'BAD');
      const text = await this.run(tag, cmd);
      if (this.state === 'logout') {
        this.write(`${tag} OK LOGOUT completed\r\n`);
        this.socket.end();
        return;
      }
      if (text === null) return; // IDLE: tagged reply later
      // RFC 9051 §7.5.1: no EXPUNGE while answering FETCH, STORE or SEARCH (by sequence number).
      const noExpunge = ['FETCH', 'STORE', 'SEARCH', 'SORT', 'THREAD'].includes(name);
      await this.flushUpdates(!noExpunge);
      this.write(`${tag} OK ${text}\r\n`);
    } catch (e: any) {
      if (e instanceof ImapNo) {
        this.write(`${tag} ${e.kind} ${e.code ? `[${e.code}] ` : ''}${e.message}\r\n`);
      } else if (e?.imapCode) {
        // RFC 3516 §4.3: UNKNOWN-CTE (or PARSE) from a BINARY fetch.
        this.write(`${tag} NO [${e.imapCode}] ${e.message}\r\n`);
      } else {
        this.log.error({ err: e, command: name }, 'command failed');
        this.write(`${tag} NO [SERVERBUG] ${name} failed on the server side; nothing was changed, try again\r\n`);
      }
    }
  }

  private allowedIn(name: Command['name']): boolean {
    const any = ['CAPABILITY', 'NOOP', 'LOGOUT', 'ID'];
    const notauth = ['STARTTLS', 'LOGIN', 'AUTHENTICATE'];
    const selected = ['CLOSE', 'UNSELECT', 'EXPUNGE', 'UID EXPUNGE', 'CHECK', 'SEARCH', 'UID SEARCH', 'FETCH', 'UID FETCH', 'STORE', 'UID STORE', 'COPY', 'UID COPY', 'MOVE', 'UID MOVE', 'SORT', 'UID SORT', 'THREAD', 'UID THREAD'];
    if (any.includes(name)) return true;
    if (this.state === 'notauth') return notauth.includes(name);
    if (notauth.includes(name)) return false;
    if (selected.includes(name)) return this.state === 'selected';
    return true;
  }

  private async flushUpdates(allowExpunge: boolean) {
    if (!this.view) return;
    const updates = await this.view.refresh(this.s.store, allowExpunge, await this.s.store.folderModseq(this.view.folderId));
    this.writeUpdates(updates);
  }

  private writeUpdates(updates: ViewUpdate[]) {
    for (const u of updates) {
      // RFC 7162 §3.2.10: with QRESYNC enabled, VANISHED replaces EXPUNGE.
      if (u.kind === 'expunge') this.write(this.qresync ? `* VANISHED ${u.uid}\r\n` : `* ${u.seq} EXPUNGE\r\n`);
      else if (u.kind === 'exists') {
        this.write(`* ${u.count} EXISTS\r\n`);
        if (!this.rev2) this.write(`* ${this.view!.messages.filter((m) => m.recent).length} RECENT\r\n`);
      } else this.write(`* ${u.seq} FETCH (UID ${u.msg.uid} FLAGS (${this.flagsOut(u.msg).join(' ')})${this.condstore ? ` MODSEQ (${u.msg.modseq})` : ''})\r\n`);
    }
  }

  private flagsOut(m: { flags: string[]; recent: boolean }): string[] {
    return !this.rev2 && m.recent ? [...m.flags, '\\Recent'] : m.flags;
  }

  private async run(tag: string, cmd: Command): Promise<string | null> {
    switch (cmd.name) {
      case 'CAPABILITY':
        this.write(`* CAPABILITY ${this.capabilities().join(' ')}\r\n`);
        return 'CAPABILITY completed';
      case 'NOOP':
      case 'CHECK':
        return `${cmd.name} completed`;
      case 'LOGOUT':
        this.write('* BYE Caducée IMAP logging out\r\n');
        this.state = 'logout';
        return '';
      case 'ID': {
        // RFC 2971: identify the server; the client's parameters are only logged (no content).
        this.write(`* ID ("name" "Caducée" "vendor" "Caducée" "support-url" "https://github.com/caducee")\r\n`);
        if (cmd.params) this.log.debug({ client: cmd.params.name ?? null }, 'client id');
        return 'ID completed';
      }
      case 'STARTTLS':
        return this.startTls(tag);
      case 'LOGIN':
        if (!this.secure) throw new ImapNo('LOGIN is disabled before STARTTLS: credentials are never accepted in clear', 'PRIVACYREQUIRED');
        return this.login(cmd.user, cmd.password);
      case 'AUTHENTICATE':
        return this.authenticate(cmd.mechanism, cmd.initialResponse);
      case 'ENABLE': {
        const done: string[] = [];
        for (const c of cmd.capabilities.map((x) => x.toUpperCase())) {
          if ((c === 'CONDSTORE' || c === 'QRESYNC') && !this.enabled.has(c)) {
            // RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
            this.enabled.add(c);
            done.push(c);
            continue;
          }
          if (c === 'IMAP4REV2' && !this.enabled.has(c)) {
            this.enabled.add(c);
            done.push('IMAP4rev2');
            this.parser.setCapabilities({ literalPlus: true, utf8Accept: true });
          }
        }
        this.write(`* ENABLED${done.length ? ' ' + done.join(' ') : ''}\r\n`);
        return 'ENABLE completed';
      }
      case 'NAMESPACE': {
        // RFC 2342 / RFC 9051 §6.3.10
        // RFC 9051 §9 namespace-descr: the prefix is a string (quoted), never an atom.
        const prefix = (p: string) => quoted(this.rev2 ? p : encodeMutf7(p), { utf8: this.rev2 });
        const other = this.ns!.entries.some((e) => e.prefix.startsWith(OTHER_PREFIX)) ? `((${prefix(OTHER_PREFIX)} "/"))` : 'NIL';
        const shared = this.ns!.entries.some((e) => e.prefix.startsWith(SHARED_PREFIX)) ? `((${prefix(SHARED_PREFIX)} "/"))` : 'NIL';
        this.write(`* NAMESPACE (("" "/")) ${other} ${shared}\r\n`);
        return 'NAMESPACE completed';
      }
      case 'SELECT':
      case 'EXAMINE':
        if (cmd.qresync && !this.qresync) throw new ImapNo('QRESYNC parameters need ENABLE QRESYNC first (RFC 7162 §3.2.5)', 'CLIENTBUG', 'BAD');
        if (cmd.condstore) this.enabled.add('CONDSTORE');
        return this.select(cmd.mailbox, cmd.name === 'EXAMINE', cmd.qresync);
      case 'CREATE':
        return this.create(cmd.mailbox, cmd.specialUse);
      case 'DELETE':
        return this.deleteFolder(cmd.mailbox);
      case 'RENAME':
        return this.rename(cmd.from, cmd.to);
      case 'SUBSCRIBE':
      case 'UNSUBSCRIBE': {
        const r = this.resolveOrThrow(cmd.mailbox, false);
        await this.s.store.setSubscribed(r.access.mailbox.id, r.folder, cmd.name === 'SUBSCRIBE');
        return `${cmd.name} completed`;
      }
      case 'LIST':
        return this.list(cmd);
      case 'LSUB':
        return this.list({ reference: cmd.reference, patterns: [cmd.pattern], selection: ['SUBSCRIBED'], returns: [] }, 'LSUB');
      case 'STATUS':
        return this.status(cmd.mailbox, cmd.items);
      case 'APPEND':
        return this.append(cmd.mailbox, cmd.messages);
      case 'IDLE':
        return this.idle(tag);
      case 'CLOSE':
      case 'UNSELECT': {
        const v = this.view!;
        // RFC 9051 §6.4.1: CLOSE expunges silently when the mailbox was selected read-write.
        const gone = cmd.name === 'CLOSE' && !v.readOnly && (await this.mayExpunge(v)) ? await this.s.store.expunge(v.folderId) : [];
        this.view = undefined;
        this.state = 'auth';
        if (gone.length) this.notifyChanged(v.folderId);
        return `${cmd.name} completed`;
      }
      case 'EXPUNGE':
      case 'UID EXPUNGE':
        return this.expunge(cmd.name === 'UID EXPUNGE' ? cmd.set : undefined);
      case 'SEARCH':
      case 'UID SEARCH':
        return this.search(cmd.name === 'UID SEARCH', cmd.key, cmd.returns, cmd.charset, tag);
      case 'FETCH':
      case 'UID FETCH':
        return this.fetch(cmd.name === 'UID FETCH', cmd);
      case 'STORE':
      case 'UID STORE':
        return this.store(cmd.name === 'UID STORE', cmd);
      case 'COPY':
      case 'UID COPY':
      case 'MOVE':
      case 'UID MOVE':
        return this.copy(cmd.name.startsWith('UID'), cmd.name.endsWith('MOVE'), cmd.set, cmd.mailbox);
      case 'SORT':
      case 'UID SORT':
      case 'THREAD':
      case 'UID THREAD':
        return this.sortOrThread(cmd);
      case 'GETQUOTAROOT':
        return this.getQuotaRoot(cmd.mailbox);
      case 'GETQUOTA':
        return this.getQuota(cmd.root);
      case 'SETQUOTA':
        // RFC 9208 §4.3: limits are set by the operator's administrators, not by users.
        throw new ImapNo('quota limits are set by the operator (caducee mailbox commands)', 'NOPERM');
      case 'MYRIGHTS': {
        const r = this.resolveOrThrow(cmd.mailbox, true);
        this.write(`* MYRIGHTS ${this.nameOut(this.ns!.nameOf(r.access, r.folder))} ${await this.s.core.imapRights(this.user!, r.access.mailbox)}\r\n`);
        return 'MYRIGHTS completed';
      }
      case 'GETACL':
        return this.getAcl(cmd.mailbox);
      case 'LISTRIGHTS': {
        const r = this.resolveOrThrow(cmd.mailbox, true);
        await this.requireRight(r.access, 'a');
        const name = this.nameOut(this.ns!.nameOf(r.access, r.folder));
        // RFC 4314 §3.7: rights always granted, then the groups that can be granted.
        this.write(`* LISTRIGHTS ${name} ${astring(cmd.identifier)} "" lrs wipkxtea\r\n`);
        return 'LISTRIGHTS completed';
      }
      case 'SETACL':
      case 'DELETEACL':
        return this.setAcl(cmd);
      default:
        throw new ImapNo(`${(cmd as any).name} is not supported`, undefined, 'BAD');
    }
  }

  // ---- not authenticated --------------------------------------------------------------------

  private async startTls(tag: string): Promise<string | null> {
    if (this.secure) throw new ImapNo('TLS is already active', undefined, 'BAD');
    // RFC 9051 §6.2.1: the tagged OK, then the TLS negotiation starts at once.
    this.write(`${tag} OK Begin TLS negotiation now\r\n`);
    const plain = this.socket;
    // RFC 9051 §6.2.1 / RFC 3207-class injection: drop anything the client pipelined in clear.
    this.parser.reset();
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.setTimeout(0);
    // Request (never require) a client certificate for SASL EXTERNAL; the acceptable CAs come
    // from secureContext (built with the CA bundle), the certificate is judged by trust/.
    const secure = new TLSSocket(plain, { isServer: true, secureContext: this.s.secureContext, requestCert: true, rejectUnauthorized: false });
    await new Promise<void>((resolve) => {
      secure.once('secure', () => resolve());
      secure.once('error', () => resolve());
    });
    if (!secure.encrypted || secure.destroyed) {
      this.cleanup();
      plain.destroy();
      return null;
    }
    this.socket = secure;
    this.secure = true;
    this.attach(secure);
    // A TLSSocket built by hand (not by a tls.Server) reports TLS errors after the handshake
    // only as '_tlsError', never 'error' (smtp-server listens to it the same way): end the session.
    secure.on('_tlsError', (e: Error) => (this.log.debug({ err: e.message }, 'TLS error'), secure.destroy()));
    return null;
  }

  private saslServer?: SaslServer;
  private sasl(): SaslServer {
    return (this.saslServer ??= new SaslServer(this.s.auth));
  }

  /** The client certificate chain presented during the TLS handshake (leaf first; empty: none). */
  private peerChain(): Uint8Array[] {
    return this.socket instanceof TLSSocket ? peerCertificateChain(this.socket) : [];
  }

  private async login(user: string, password: string): Promise<string> {
    // Mail clients use app passwords, never the account password (src/auth).
    const r = await this.s.auth.mailPassword(user, password, { protocol: 'imap', method: 'LOGIN', remote: this.remote });
    if (!r.ok) this.refuse(r);
    return this.authenticated(r.user);
  }

  /** RFC 5530 response codes: AUTHENTICATIONFAILED without saying whether the login exists; UNAVAILABLE when locked out. */
  private refuse(r: Extract<AuthResult, { ok: false }> | SaslFailure): never {
    this.log.info({ reason: r.reason }, 'authentication failed');
    if (r.reason === 'locked') throw new ImapNo('too many failed login attempts from this account or address: try again in a few minutes', 'UNAVAILABLE');
    if ('message' in r && r.temporary) throw new ImapNo(r.message, 'UNAVAILABLE');
    if ('message' in r) throw new ImapNo(r.message, r.reason === 'identity-mismatch' ? 'AUTHORIZATIONFAILED' : 'AUTHENTICATIONFAILED');
    throw new ImapNo('authentication failed: wrong login or app password (mail clients need an app password, not the account password)', 'AUTHENTICATIONFAILED');
  }

  private async authenticated(user: User): Promise<string> {
    // RFC 3516: literal8 (~{n}) accepted in APPEND once BINARY is announced.
    this.parser.setCapabilities({ literalPlus: true, binary: true });
    this.user = user;
    this.ns = await UserNamespace.load(this.s.core, user);
    this.state = 'auth';
    this.log.info({ user: user.login }, 'authenticated');
    return `[CAPABILITY ${this.capabilities().join(' ')}] logged in`;
  }

  // RFC 9051 §6.2.2 AUTHENTICATE; RFC 4959 SASL-IR initial response ("=" is an empty one).
  private async authenticate(mechanism: string, initial?: string): Promise<string> {
    if (!this.secure) throw new ImapNo('authentication is disabled before STARTTLS', 'PRIVACYREQUIRED');
    const ex = this.sasl().start(mechanism, { protocol: 'imap', remote: this.remote, peerChain: () => this.peerChain() });
    if (!ex) throw new ImapNo(`authentication mechanism ${mechanism} is not offered here (see the AUTH= capabilities)`, 'CANNOT');
    const decode = (line: string): Buffer => {
      const t = line.trim();
      // RFC 9051 §6.2.2: "*" cancels the exchange.
      if (t === '*') throw new ImapNo('authentication cancelled', undefined, 'BAD');
      if (t !== '=' && !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(t)) throw new ImapNo('SASL response is not valid base64', undefined, 'BAD');
      return Buffer.from(t === '=' ? '' : t, 'base64');
    };
    let step = await ex.step(initial !== undefined ? decode(initial) : null);
    while (step.type === 'challenge') {
      this.write(`+ ${step.data.toString('base64')}\r\n`);
      step = await ex.step(decode(await this.readLine()));
    }
    if (step.type === 'success') return this.authenticated(step.user);
    if (step.reason === 'malformed') throw new ImapNo(step.message, undefined, 'BAD');
    if (step.errorChallenge) {
      // XOAUTH2 / RFC 7628 §3.2.2: the error goes out as a challenge; the client's answer ends it.
      this.write(`+ ${step.errorChallenge.toString('base64')}\r\n`);
      await this.readLine();
    }
    this.refuse(step);
  }

  // ---- names --------------------------------------------------------------------------------

  /** RFC 9051 §5.1: UTF-8 names once IMAP4rev2 is enabled; modified UTF-7 (RFC 3501 §5.1.3) otherwise. */
  private nameOut(name: string): string {
    return this.rev2 ? astring(name, { utf8: true }) : astring(encodeMutf7(name));
  }

  /**
   * Client name → Unicode. A name that is not valid modified UTF-7 is taken as written when it
   * is only looked up (it then simply does not exist); creating one is refused (`strict`).
   */
  private decodeName(name: string, strict = false): string {
    if (this.rev2) return name;
    try {
      return decodeMutf7(name);
    } catch {
      if (!strict) return name;
      throw new ImapNo(`mailbox name ${JSON.stringify(name)} is not valid modified UTF-7 (RFC 3501 §5.1.3)`, 'CANNOT');
    }
  }

  private resolveOrThrow(name: string, mustExistLater: boolean): ResolvedName {
    const r = this.ns!.resolve(this.decodeName(name));
    if (!r) throw new ImapNo(`no mailbox ${name}${mustExistLater ? '' : ''}`, 'NONEXISTENT');
    return r;
  }

  private async folderOf(name: string): Promise<{ r: ResolvedName; folder: Folder }> {
    const r = this.resolveOrThrow(name, true);
    const folder = await this.s.store.getFolder(r.access.mailbox.id, r.folder);
    if (!folder) throw new ImapNo(`mailbox ${name} does not exist`, 'NONEXISTENT');
    return { r, folder };
  }

  private async requireRight(access: MailboxAccess, right: string) {
    const acl = await this.s.core.imapRights(this.user!, access.mailbox);
    if (!acl.includes(right)) throw new ImapNo(`you do not have the right to do this on ${access.mailbox.address} (RFC 4314 right "${right}" missing)`, 'NOPERM');
  }

  private notifyChanged(folderId: number) {
    this.s.core.events.emit('folder-changed', { folderId });
  }

  // ---- authenticated ------------------------------------------------------------------------

  private async select(name: string, readOnly: boolean, qresync?: Extract<Command, { name: 'SELECT' | 'EXAMINE' }>['qresync']): Promise<string> {
    if (this.view) {
      // RFC 9051 §6.3.2: selecting another mailbox closes the current one (no expunge).
      this.view = undefined;
      this.state = 'auth';
      // RFC 7162 §3.2.11 / RFC 9051 §6.3.2: CLOSED marks where the old mailbox's responses end.
      this.write('* OK [CLOSED] previous mailbox closed\r\n');
    }
    const { r, folder } = await this.folderOf(name);
    const acl = await this.s.core.imapRights(this.user!, r.access.mailbox);
    if (!acl.includes('r')) throw new ImapNo(`you may not read ${r.access.mailbox.address}`, 'NOPERM');
    const ro = readOnly || !acl.includes('s') || r.access.mailbox.state === 'suspended';
    const st = await this.s.store.folderStatus(folder.id);
    const msgs = await this.s.store.folderMessages(folder.id, { clearRecent: !ro });
    const view = new FolderView(folder.id, r.access.mailbox.id, ro, folder.uidValidity, msgs, st.highestModseq);
    this.view = view;
    this.viewName = name;
    this.state = 'selected';
    const keywords = new Set<string>();
    for (const m of msgs) for (const f of m.flags) if (!f.startsWith('\\')) keywords.add(f);
    const flags = [...SYSTEM_FLAGS, ...keywords];
    this.write(`* ${msgs.length} EXISTS\r\n`);
    if (!this.rev2) this.write(`* ${msgs.filter((m) => m.recent).length} RECENT\r\n`);
    this.write(`* FLAGS (${flags.join(' ')})\r\n`);
    this.write(`* OK [PERMANENTFLAGS (${ro ? '' : [...flags, '\\*'].join(' ')})] ${ro ? 'read-only' : 'flags permitted'}\r\n`);
    const firstUnseen = msgs.findIndex((m) => !m.flags.some((f) => f.toLowerCase() === '\\seen'));
    if (firstUnseen >= 0 && !this.rev2) this.write(`* OK [UNSEEN ${firstUnseen + 1}] first unseen\r\n`);
    this.write(`* OK [UIDVALIDITY ${folder.uidValidity}] UIDs valid\r\n`);
    this.write(`* OK [UIDNEXT ${st.uidNext}] predicted next UID\r\n`);
    // RFC 7162 §3.1.2.1: HIGHESTMODSEQ once CONDSTORE is enabled.
    if (this.condstore) this.write(`* OK [HIGHESTMODSEQ ${st.highestModseq}] highest modseq\r\n`);
    if (qresync && qresync.uidValidity === folder.uidValidity) {
      // RFC 7162 §3.2.5.1: report what changed since the client's modseq: VANISHED (EARLIER)
      // for expunged UIDs (within known-uids when given), then FETCH for changed messages.
      const since = Number(qresync.modseq);
      const maxUid = msgs.length ? msgs[msgs.length - 1].uid : 0;
      const known = qresync.knownUids ? new Set(expandSet(qresync.knownUids, Math.max(maxUid, st.uidNext))) : undefined;
      const gone = (await this.s.store.expungedSince(folder.id, since)).filter((u) => !known || known.has(u));
      if (gone.length) this.write(`* VANISHED (EARLIER) ${encodeSet(gone)}\r\n`);
      for (const m of view.messages) {
        if (m.modseq > since && (!known || known.has(m.uid))) this.write(`* ${view.seqOf(m.uid)} FETCH (UID ${m.uid} FLAGS (${this.flagsOut(m).join(' ')}) MODSEQ (${m.modseq}))\r\n`);
      }
    }
    if (this.rev2) this.write(`* LIST () "/" ${this.nameOut(this.ns!.nameOf(r.access, r.folder))}\r\n`);
    return `[${ro ? 'READ-ONLY' : 'READ-WRITE'}] ${readOnly ? 'EXAMINE' : 'SELECT'} completed`;
  }

  private async create(name: string, specialUse?: string[]): Promise<string> {
    const decoded = this.decodeName(name, true).replace(/\/+$/, ''); // RFC 9051 §6.3.4: trailing delimiter
    const r = this.ns!.resolve(decoded);
    if (!r) throw new ImapNo(`cannot create ${name}: outside your mailboxes`, 'CANNOT');
    if (r.folder === 'INBOX') throw new ImapNo('INBOX already exists', 'ALREADYEXISTS');
    await this.requireRight(r.access, 'k');
    if (specialUse?.length) {
      const bad = specialUse.filter((u) => !SPECIAL_USES.some((x) => x.toLowerCase() === u.toLowerCase()));
      if (bad.length) throw new ImapNo(`unknown special-use ${bad.join(' ')}`, 'USEATTR');
    }
    if (await this.s.store.getFolder(r.access.mailbox.id, r.folder)) throw new ImapNo(`${name} already exists`, 'ALREADYEXISTS');
    // Create missing parents too (RFC 9051 §6.3.4: superior hierarchical names).
    const parts = r.folder.split(DELIMITER);
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join(DELIMITER);
      if (parent && !(await this.s.store.getFolder(r.access.mailbox.id, parent))) await this.s.store.createFolder(r.access.mailbox.id, parent);
    }
    const use = specialUse?.length ? SPECIAL_USES.find((x) => x.toLowerCase() === specialUse[0].toLowerCase())! : null;
    await this.s.store.createFolder(r.access.mailbox.id, r.folder, use);
    return 'CREATE completed';
  }

  private async deleteFolder(name: string): Promise<string> {
    const { r, folder } = await this.folderOf(name);
    if (r.folder === 'INBOX') throw new ImapNo('INBOX cannot be deleted', 'CANNOT');
    await this.requireRight(r.access, 'x');
    const all = await this.s.store.listFolders(r.access.mailbox.id);
    // RFC 9051 §6.3.5: a name with inferior names cannot be removed while... we keep it simple
    // and refuse, saying why, rather than leaving a \Noselect placeholder.
    if (all.some((f) => f.name.startsWith(r.folder + DELIMITER))) throw new ImapNo(`${name} has subfolders: delete them first`, 'INUSE');
    if (this.view?.folderId === folder.id) {
      this.view = undefined;
      this.state = 'auth';
    }
    await this.s.store.deleteFolder(folder.id);
    this.notifyChanged(folder.id);
    return 'DELETE completed';
  }

  private async rename(from: string, to: string): Promise<string> {
    const { r, folder } = await this.folderOf(from);
    const t = this.ns!.resolve(this.decodeName(to, true).replace(/\/+$/, ''));
    if (!t || t.access.mailbox.id !== r.access.mailbox.id) throw new ImapNo('a folder can only be renamed within the same mailbox', 'CANNOT');
    await this.requireRight(r.access, 'x');
    if (await this.s.store.getFolder(t.access.mailbox.id, t.folder)) throw new ImapNo(`${to} already exists`, 'ALREADYEXISTS');
    if (r.folder === 'INBOX') {
      // RFC 9051 §6.3.6: renaming INBOX moves its messages to the new name; INBOX stays, empty.
      const target = await this.s.store.createFolder(r.access.mailbox.id, t.folder);
      const uids = (await this.s.store.folderMessages(folder.id)).map((m) => m.uid);
      await this.s.store.copyMessages(folder.id, uids, target.id, true);
      this.notifyChanged(folder.id);
      return 'RENAME completed';
    }
    const parts = t.folder.split(DELIMITER);
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join(DELIMITER);
      if (!(await this.s.store.getFolder(r.access.mailbox.id, parent))) await this.s.store.createFolder(r.access.mailbox.id, parent);
    }
    await this.s.store.renameFolder(r.access.mailbox.id, r.folder, t.folder, DELIMITER);
    return 'RENAME completed';
  }

  /** RFC 9051 §6.3.9 with RFC 5258 (LIST-EXTENDED), RFC 5819 (LIST-STATUS), RFC 6154. */
  private async list(cmd: ListCommand, verb: 'LIST' | 'LSUB' = 'LIST'): Promise<string> {
    const ref = this.decodeName(cmd.reference);
    const patterns = cmd.patterns.map((p) => this.decodeName(p));
    const selSubscribed = cmd.selection.includes('SUBSCRIBED');
    const recursive = cmd.selection.includes('RECURSIVEMATCH');
    const selSpecial = cmd.selection.includes('SPECIAL-USE');
    const ret = new Map(cmd.returns.map((r) => [r.name.toUpperCase(), r.items]));
    const wantSubscribed = ret.has('SUBSCRIBED') || selSubscribed;
    const statusItems = ret.get('STATUS') as StatusItem[] | undefined;

    if (verb === 'LIST' && patterns.length === 1 && patterns[0] === '' && !selSubscribed) {
      // RFC 9051 §6.3.9: empty pattern returns the delimiter and root.
      this.write(`* LIST (\\Noselect) "/" ""\r\n`);
      return 'LIST completed';
    }
    // All names the user can see, with their attributes.
    type Entry = { name: string; folder?: Folder; access: MailboxAccess; subscribed: boolean; exists: boolean };
    const entries: Entry[] = [];
    for (const a of this.ns!.entries) {
      const folders = await this.s.store.listFolders(a.mailbox.id);
      const subs = new Set(await this.s.store.listSubscriptions(a.mailbox.id));
      for (const f of folders) entries.push({ name: this.ns!.nameOf(a, f.name), folder: f, access: a, subscribed: subs.has(f.name), exists: true });
      for (const s of subs) if (!folders.some((f) => f.name === s)) entries.push({ name: this.ns!.nameOf(a, s), access: a, subscribed: true, exists: false });
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
      if (e instanceof ListPatternTooLong) throw new ImapNo(e.message, 'LIMIT', 'BAD');
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
          out.push(`* LSUB (\\Noselect) "/" ${this.nameOut(e.name)}\r\n`);
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
        out.push(`* LSUB (${a.join(' ')}) "/" ${this.nameOut(e.name)}\r\n`);
        continue;
      }
      const ext = childInfo ? ` ("CHILDINFO" ("SUBSCRIBED"))` : '';
      out.push(`* LIST (${attrs.join(' ')}) "/" ${this.nameOut(e.name)}${ext}\r\n`);
      if (statusItems && e.folder) out.push(await this.statusLine(e.name, e.folder, statusItems));
    }
    for (const l of out) this.write(l);
    return `${verb} completed`;
  }

  private async statusLine(name: string, folder: Folder, items: StatusItem[]): Promise<string> {
    const st = await this.s.store.folderStatus(folder.id);
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
      else if (k === 'APPENDLIMIT') vals.push(`APPENDLIMIT ${this.s.appendLimit}`);
      else if (k === 'HIGHESTMODSEQ') {
        this.enabled.add('CONDSTORE'); // RFC 7162 §3.1: a CONDSTORE-enabling command
        vals.push(`HIGHESTMODSEQ ${st.highestModseq}`);
      }
      else throw new ImapNo(`unknown STATUS item ${i}`, undefined, 'BAD');
    }
    return `* STATUS ${this.nameOut(name)} (${vals.join(' ')})\r\n`;
  }

  private async status(name: string, items: StatusItem[]): Promise<string> {
    const { r, folder } = await this.folderOf(name);
    await this.requireRight(r.access, 'r');
    this.write(await this.statusLine(this.ns!.nameOf(r.access, r.folder), folder, items));
    return 'STATUS completed';
  }

  private async append(name: string, messages: AppendMessage[]): Promise<string> {
    let target: { r: ResolvedName; folder: Folder };
    try {
      target = await this.folderOf(name);
    } catch (e) {
      // RFC 9051 §6.3.12: tell the client it may CREATE first.
      if (e instanceof ImapNo && e.code === 'NONEXISTENT') throw new ImapNo(`mailbox ${name} does not exist`, 'TRYCREATE');
      throw e;
    }
    await this.requireRight(target.r.access, 'i');
    for (const m of messages) {
      if (m.data.length > this.s.appendLimit) throw new ImapNo(`message of ${m.data.length} bytes exceeds APPENDLIMIT ${this.s.appendLimit}`, 'TOOBIG');
      if (m.data.length === 0) throw new ImapNo('empty message', undefined, 'BAD');
    }
    const total = messages.reduce((n, m) => n + m.data.length, 0);
    await this.checkQuota(target.r.access, total);
    const uids: number[] = [];
    // RFC 3502 MULTIAPPEND: all or nothing. Blobs first (durable), then one commit per message;
    // a failure midway expunges what was added.
    const added: number[] = [];
    try {
      for (const m of messages) {
        const blob = await this.s.blobs.put(Buffer.from(m.data));
        await this.s.index.ensure(blob.id);
        const date = m.date ? parseImapDate(m.date) : new Date();
        if (!date) throw new ImapNo(`invalid date-time ${m.date}`, undefined, 'BAD');
        const r = await this.s.store.appendMessage(target.folder.id, { blobId: blob.id, size: blob.size, flags: m.flags.filter((f) => f.toLowerCase() !== '\\recent'), internalDate: date });
        added.push(r.uid);
        uids.push(r.uid);
      }
    } catch (e) {
      if (added.length) {
        await this.s.store.storeFlags(target.folder.id, added, 'add', ['\\Deleted']);
        await this.s.store.expunge(target.folder.id, added);
      }
      throw e;
    }
    this.notifyChanged(target.folder.id);
    // RFC 4315 §3: APPENDUID uidvalidity uid-set.
    return `[APPENDUID ${target.folder.uidValidity} ${encodeSet(uids)}] APPEND completed`;
  }

  private async checkQuota(access: MailboxAccess, bytes: number) {
    const usage = await this.s.store.mailboxUsage(access.mailbox.id);
    const limit = this.quotaOf(access);
    // RFC 9208 §4.2: OVERQUOTA response code.
    if (usage.bytes + bytes > limit) throw new ImapNo(`mailbox ${access.mailbox.address} is over its storage quota: delete messages first`, 'OVERQUOTA');
  }

  private quotaOf(access: MailboxAccess): number {
    return (access.mailbox as any).quotaBytes ?? this.s.defaultQuotaBytes;
  }

  private async getQuotaRoot(name: string): Promise<string> {
    const { r } = await this.folderOf(name);
    const root = r.access.mailbox.address;
    this.write(`* QUOTAROOT ${this.nameOut(this.ns!.nameOf(r.access, r.folder))} ${astring(root)}\r\n`);
    this.write(await this.quotaLine(r.access));
    return 'GETQUOTAROOT completed';
  }

  private async quotaLine(a: MailboxAccess): Promise<string> {
    const usage = await this.s.store.mailboxUsage(a.mailbox.id);
    // RFC 9208 §5.1: STORAGE in units of 1024 octets.
    return `* QUOTA ${astring(a.mailbox.address)} (STORAGE ${Math.ceil(usage.bytes / 1024)} ${Math.floor(this.quotaOf(a) / 1024)})\r\n`;
  }

  private async getQuota(root: string): Promise<string> {
    const a = this.ns!.entries.find((e) => e.mailbox.address.toLowerCase() === root.toLowerCase());
    if (!a) throw new ImapNo(`no quota root ${root}`, 'NONEXISTENT');
    this.write(await this.quotaLine(a));
    return 'GETQUOTA completed';
  }

  private async getAcl(name: string): Promise<string> {
    const { r } = await this.folderOf(name);
    await this.requireRight(r.access, 'a');
    const parts: string[] = [];
    const mb = r.access.mailbox;
    if (mb.ownerUserId) {
      const owner = await this.s.store.getUser(mb.ownerUserId);
      if (owner) parts.push(`${astring(owner.login)} lrswipkxtea`);
    }
    for (const g of await this.s.store.listGrants({ mailboxId: mb.id })) {
      const u = await this.s.store.getUser(g.userId);
      const acl = await this.s.core.imapRights(u!, mb);
      if (u && acl) parts.push(`${astring(u.login)} ${acl}`);
    }
    this.write(`* ACL ${this.nameOut(this.ns!.nameOf(r.access, r.folder))}${parts.length ? ' ' + parts.join(' ') : ''}\r\n`);
    return 'GETACL completed';
  }

  /** RFC 4314 §3.1–3.2, mapped onto grants (per mailbox, not per folder). */
  private async setAcl(cmd: Extract<Command, { name: 'SETACL' | 'DELETEACL' }>): Promise<string> {
    const { r } = await this.folderOf(cmd.mailbox);
    await this.requireRight(r.access, 'a');
    const target = await this.s.store.findUserByLogin(cmd.identifier);
    if (!target) throw new ImapNo(`no user ${cmd.identifier}`, 'NONEXISTENT');
    if (target.id === r.access.mailbox.ownerUserId) throw new ImapNo('the owner’s rights cannot be changed', 'CANNOT');
    const current = (await this.s.store.listGrants({ mailboxId: r.access.mailbox.id, userId: target.id }))[0]?.rights ?? [];
    let rights: GrantRight[] = current.filter((x) => x === 'send'); // send-on-behalf is not an IMAP right: keep it
    if (cmd.name === 'SETACL') {
      const spec = cmd.rights;
      const mod = spec[0] === '+' || spec[0] === '-' ? spec[0] : '';
      const letters = mod ? spec.slice(1) : spec;
      const existing = aclToRights(await this.s.core.imapRights(target as any, r.access.mailbox));
      const asked = aclToRights(letters);
      const nonsend = mod === '+' ? [...new Set([...existing, ...asked])] : mod === '-' ? existing.filter((x) => !asked.includes(x)) : asked;
      rights = [...rights, ...nonsend];
    }
    if (rights.length) await this.s.store.setGrant(r.access.mailbox.id, target.id, rights);
    else await this.s.store.removeGrant(r.access.mailbox.id, target.id);
    this.log.info({ mailbox: r.access.mailbox.address, target: target.login, rights }, 'ACL changed');
    return `${cmd.name} completed`;
  }

  // ---- IDLE (RFC 2177) ----------------------------------------------------------------------

  private async idle(tag: string): Promise<string | null> {
    this.idleTag = tag;
    this.write('+ idling\r\n');
    this.parser.expectLine();
    await this.pushIdleUpdates();
    this.handleEvents(this.parser.resume());
    return null;
  }

  private idleBusy = false;
  private async pushIdleUpdates() {
    if (this.idleBusy || !this.view) return;
    this.idleBusy = true;
    try {
      await this.flushUpdates(true);
    } finally {
      this.idleBusy = false;
    }
  }

  private async endIdle(line: string) {
    const tag = this.idleTag!;
    this.idleTag = null;
    if (line.trim().toUpperCase() !== 'DONE') {
      this.write(`${tag} BAD expected DONE to end IDLE\r\n`);
      return;
    }
    await this.flushUpdates(true);
    this.write(`${tag} OK IDLE terminated\r\n`);
  }

  // ---- selected -----------------------------------------------------------------------------

  private async mayExpunge(v: FolderView): Promise<boolean> {
    const a = this.ns!.entries.find((e) => e.mailbox.id === v.mailboxId);
    return !!a && (await this.s.core.imapRights(this.user!, a.mailbox)).includes('e');
  }

  private async expunge(uidSet?: SequenceSet): Promise<string> {
    const v = this.view!;
    if (v.readOnly) throw new ImapNo('mailbox is read-only', 'READ-ONLY');
    if (!(await this.mayExpunge(v))) throw new ImapNo('you may not expunge in this mailbox', 'NOPERM');
    const maxUid = v.messages.length ? v.messages[v.messages.length - 1].uid : 0;
    const uids = uidSet ? expandSet(uidSet, maxUid).filter((u) => v.byUidGet(u)) : undefined;
    // Report others' changes first, so our EXPUNGE numbers are correct.
    await this.flushUpdates(true);
    const gone = await this.s.store.expunge(v.folderId, uids);
    this.announceExpunged(v, gone);
    if (gone.length) this.notifyChanged(v.folderId);
    return 'EXPUNGE completed';
  }

  private announceExpunged(v: FolderView, uids: number[]) {
    const seqs = v.removeOwn(uids);
    if (this.qresync) {
      if (uids.length) this.write(`* VANISHED ${encodeSet(uids)}\r\n`);
    } else for (const seq of seqs) this.write(`* ${seq} EXPUNGE\r\n`);
  }

  /** Resolves a set to messages of the view (UID or sequence numbers). */
  private targets(set: SequenceSet, byUid: boolean): { seq: number; uid: number }[] {
    const v = this.view!;
    if (set.saved) {
      const saved = new Set(this.savedSearch);
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
      for (const n of [r.from, r.to]) if (n !== Infinity && (n < 1 || n > max)) throw new ImapNo(`invalid message sequence number ${n} (mailbox has ${max} messages)`, undefined, 'BAD');
    }
    return expandSet(set, max).map((seq) => ({ seq, uid: v.messages[seq - 1].uid }));
  }

  private async search(byUid: boolean, key: SearchKey, returns: string[] | undefined, charset: string | undefined, tag: string): Promise<string> {
    if (charset && !/^(utf-8|us-ascii)$/i.test(charset)) throw new ImapNo(`charset ${charset} is not supported`, 'BADCHARSET (UTF-8 US-ASCII)');
    const v = this.view!;
    const matches = await runSearch(key, v, { store: this.s.store, blobs: this.s.blobs, index: this.s.index, saved: this.savedSearch, sequenceTargets: (set, uid) => this.targets(set, uid) });
    const ids = matches.map((m) => (byUid ? m.uid : m.seq));
    // RFC 7162 §3.1.5: a MODSEQ search key adds the highest mod-sequence of the matches.
    const usesModseq = JSON.stringify(key, (_k, val) => (typeof val === 'bigint' ? val.toString() : val)).includes('"kind":"modseq"');
    if (usesModseq) this.enableCondstore();
    // RFC 7162 §3.1.5 with RFC 4731: the MODSEQ is the highest of the messages actually returned
    // (only the MIN and/or MAX message when neither ALL nor COUNT was asked).
    let returned = matches;
    const ropts = returns?.map((r) => r.toUpperCase()) ?? [];
    if (returns && ropts.length && !ropts.includes('ALL') && !ropts.includes('COUNT') && matches.length) {
      const by = (m: { seq: number; uid: number }) => (byUid ? m.uid : m.seq);
      const sortedM = [...matches].sort((a, b) => by(a) - by(b));
      returned = [...(ropts.includes('MIN') ? [sortedM[0]] : []), ...(ropts.includes('MAX') ? [sortedM[sortedM.length - 1]] : [])];
    }
    const highest = usesModseq && returned.length ? Math.max(...returned.map((m) => v.byUidGet(m.uid)?.modseq ?? 0)) : 0;
    if (returns !== undefined) {
      // RFC 4731 ESEARCH; RFC 5182 SAVE.
      const opts = returns.length ? returns.map((r) => r.toUpperCase()) : ['ALL'];
      if (opts.includes('SAVE')) this.savedSearch = matches.map((m) => m.uid);
      const parts: string[] = [];
      if (opts.includes('MIN') && ids.length) parts.push(`MIN ${Math.min(...ids)}`);
      if (opts.includes('MAX') && ids.length) parts.push(`MAX ${Math.max(...ids)}`);
      if (opts.includes('ALL') && ids.length) parts.push(`ALL ${encodeSet(ids)}`);
      if (opts.includes('COUNT')) parts.push(`COUNT ${ids.length}`);
      if (highest) parts.push(`MODSEQ ${highest}`);
      if (!(opts.length === 1 && opts[0] === 'SAVE')) this.write(`* ESEARCH (TAG ${quoted(tag)})${byUid ? ' UID' : ''}${parts.length ? ' ' + parts.join(' ') : ''}\r\n`);
    } else if (this.rev2) {
      this.write(`* ESEARCH (TAG ${quoted(tag)})${byUid ? ' UID' : ''}${ids.length ? ` ALL ${encodeSet(ids)}` : ''}${highest ? ` MODSEQ ${highest}` : ''}\r\n`);
    } else {
      this.write(`* SEARCH${ids.length ? ' ' + ids.join(' ') : ''}${highest ? ` (MODSEQ ${highest})` : ''}\r\n`);
    }
    return `${byUid ? 'UID ' : ''}SEARCH completed`;
  }

  private async fetch(byUid: boolean, cmd: Extract<Command, { name: 'FETCH' | 'UID FETCH' }>): Promise<string> {
    const v = this.view!;
    let targets = this.targets(cmd.set, byUid);
    const attrs = [...cmd.attributes];
    if (byUid && !attrs.some((a) => a.kind === 'uid')) attrs.unshift({ kind: 'uid' });
    if (attrs.some((a) => a.kind === 'modseq')) this.enableCondstore();
    if (cmd.changedSince !== undefined) {
      // RFC 7162 §3.1.4.1: CHANGEDSINCE returns only messages changed after it, with MODSEQ.
      this.enableCondstore();
      const since = Number(cmd.changedSince);
      if (cmd.vanished) {
        // RFC 7162 §3.2.6: VANISHED needs QRESYNC and UID FETCH; expunged UIDs of the set first.
        if (!this.qresync || !byUid) throw new ImapNo('VANISHED needs ENABLE QRESYNC and UID FETCH', 'CLIENTBUG', 'BAD');
        const maxUid = Math.max(v.messages.length ? v.messages[v.messages.length - 1].uid : 0, ...(await this.s.store.expungedSince(v.folderId, since)));
        const inSet = new Set(expandSet(cmd.set, maxUid));
        const gone = (await this.s.store.expungedSince(v.folderId, since)).filter((u) => inSet.has(u) && !v.byUidGet(u));
        if (gone.length) this.write(`* VANISHED (EARLIER) ${encodeSet(gone)}\r\n`);
      }
      targets = targets.filter((t) => (v.byUidGet(t.uid)?.modseq ?? 0) > since);
      if (!attrs.some((a) => a.kind === 'modseq')) attrs.push({ kind: 'modseq' });
    }
    const setsSeen = !v.readOnly && attrs.some((a) => (a.kind === 'body' && !a.peek) || a.kind === 'rfc822' || a.kind === 'rfc822.text' || (a.kind === 'binary' && !a.peek));
    const ctx: FetchContext = { store: this.s.store, blobs: this.s.blobs, index: this.s.index, write: (d) => this.write(d), drainWait: () => this.waitDrain() };
    for (const t of targets) {
      const m = v.byUidGet(t.uid);
      if (!m) continue;
      let flagsChanged = false;
      if (setsSeen && !m.flags.some((f) => f.toLowerCase() === '\\seen')) {
        // RFC 9051 §6.4.5: BODY[...] (not PEEK) sets \Seen.
        const r = await this.s.store.storeFlags(v.folderId, [m.uid], 'add', ['\\Seen']);
        const u = r.updated[0];
        if (u) v.applyOwnFlags(u.uid, u.flags, u.modseq);
        flagsChanged = true;
      }
      let withFlags = flagsChanged && !attrs.some((a) => a.kind === 'flags') ? [...attrs, { kind: 'flags' as const }] : attrs;
      if (flagsChanged && this.condstore && !withFlags.some((a) => a.kind === 'modseq')) withFlags = [...withFlags, { kind: 'modseq' as const }];
      await fetchMessage(ctx, t.seq, m, withFlags, this.flagsOut(m));
    }
    if (setsSeen) this.notifyChanged(v.folderId);
    return `${byUid ? 'UID ' : ''}FETCH completed`;
  }

  /** RFC 5256 SORT and THREAD over the messages matching the search key. */
  private async sortOrThread(cmd: Extract<Command, { name: 'SORT' | 'UID SORT' | 'THREAD' | 'UID THREAD' }>): Promise<string> {
    if (!/^(utf-8|us-ascii)$/i.test(cmd.charset)) throw new ImapNo(`charset ${cmd.charset} is not supported`, 'BADCHARSET (UTF-8 US-ASCII)');
    const v = this.view!;
    const byUid = cmd.name.startsWith('UID');
    const matches = await runSearch(cmd.key, v, { store: this.s.store, blobs: this.s.blobs, index: this.s.index, saved: this.savedSearch, sequenceTargets: (set, uid) => this.targets(set, uid) });
    const items: SortItem[] = [];
    for (const m of matches) {
      const msg = v.byUidGet(m.uid)!;
      items.push({ seq: m.seq, uid: m.uid, size: msg.size, internalDate: msg.internalDate, info: await this.s.index.ensure(msg.blobId) });
    }
    const idOf = (i: SortItem) => (byUid ? i.uid : i.seq);
    if (cmd.name === 'SORT' || cmd.name === 'UID SORT') {
      const sorted = sortItems(items, cmd.keys).map(idOf);
      this.write(`* SORT${sorted.length ? ' ' + sorted.join(' ') : ''}\r\n`);
      return `${cmd.name} completed`;
    }
    if (cmd.name !== 'THREAD' && cmd.name !== 'UID THREAD') throw new Error('unreachable');
    const alg = cmd.algorithm.toUpperCase();
    let threads;
    if (alg === 'ORDEREDSUBJECT') threads = threadOrderedSubject(items, idOf);
    else if (alg === 'REFERENCES') threads = threadReferences(items, idOf);
    else throw new ImapNo(`unknown threading algorithm ${cmd.algorithm}`, undefined, 'BAD');
    const out = threadToString(threads);
    this.write(`* THREAD${out ? ' ' + out : ''}\r\n`);
    return `${cmd.name} completed`;
  }

  private waitDrain(): Promise<void> {
    if (!this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((r) => this.socket.once('drain', () => r()));
  }

  private async store(byUid: boolean, cmd: Extract<Command, { name: 'STORE' | 'UID STORE' }>): Promise<string> {
    const v = this.view!;
    if (v.readOnly) throw new ImapNo('mailbox is read-only', 'READ-ONLY');
    const targets = this.targets(cmd.set, byUid);
    const a = this.ns!.entries.find((e) => e.mailbox.id === v.mailboxId)!;
    const acl = await this.s.core.imapRights(this.user!, a.mailbox);
    const flags = cmd.action.flags.filter((f) => f.toLowerCase() !== '\\recent');
    // RFC 4314 §4: \Seen needs "s", \Deleted "t", other flags "w".
    for (const f of flags) {
      const need = f.toLowerCase() === '\\seen' ? 's' : f.toLowerCase() === '\\deleted' ? 't' : 'w';
      if (!acl.includes(need)) throw new ImapNo(`you may not change the flag ${f} here`, 'NOPERM');
    }
    if (cmd.unchangedSince !== undefined) this.enableCondstore();
    const unchangedSince = cmd.unchangedSince !== undefined ? Number(cmd.unchangedSince) : undefined;
    const r = await this.s.store.storeFlags(v.folderId, targets.map((t) => t.uid), cmd.action.op, flags, unchangedSince);
    for (const u of r.updated) {
      const before = v.byUidGet(u.uid)?.modseq;
      v.applyOwnFlags(u.uid, u.flags, u.modseq);
      // RFC 7162 §3.1.3: with .SILENT, a FETCH is still sent when CONDSTORE reports a new MODSEQ.
      const changed = before !== u.modseq;
      if (!cmd.action.silent || (this.condstore && unchangedSince !== undefined && changed)) {
        const m = v.byUidGet(u.uid)!;
        const flagsPart = cmd.action.silent ? '' : `FLAGS (${this.flagsOut(m).join(' ')})`;
        const modseqPart = this.condstore ? `MODSEQ (${u.modseq})` : '';
        this.write(`* ${v.seqOf(u.uid)} FETCH (${[byUid ? `UID ${u.uid}` : '', flagsPart, modseqPart].filter(Boolean).join(' ')})\r\n`);
      }
    }
    if (r.updated.length) this.notifyChanged(v.folderId);
    if (r.modifiedUids.length) {
      // RFC 7162 §3.1.3: MODIFIED lists the messages that failed the UNCHANGEDSINCE test.
      const ids = byUid ? r.modifiedUids : r.modifiedUids.map((u) => v.seqOf(u)!).sort((a, b) => a - b);
      return `[MODIFIED ${encodeSet(ids)}] conditional STORE failed for some messages`;
    }
    return `${byUid ? 'UID ' : ''}STORE completed`;
  }

  private async copy(byUid: boolean, move: boolean, set: SequenceSet, mailbox: string): Promise<string> {
    const v = this.view!;
    let dest: { r: ResolvedName; folder: Folder };
    try {
      dest = await this.folderOf(mailbox);
    } catch (e) {
      if (e instanceof ImapNo && e.code === 'NONEXISTENT') throw new ImapNo(`mailbox ${mailbox} does not exist`, 'TRYCREATE');
      throw e;
    }
    await this.requireRight(dest.r.access, 'i');
    if (move) {
      if (v.readOnly) throw new ImapNo('mailbox is read-only', 'READ-ONLY');
      if (!(await this.mayExpunge(v))) throw new ImapNo('you may not move messages out of this mailbox', 'NOPERM');
    }
    const targets = this.targets(set, byUid);
    const verb = `${byUid ? 'UID ' : ''}${move ? 'MOVE' : 'COPY'}`;
    if (targets.length === 0) return `${verb} completed (no messages)`;
    const size = targets.reduce((n, t) => n + (v.byUidGet(t.uid)?.size ?? 0), 0);
    if (dest.r.access.mailbox.id !== v.mailboxId) await this.checkQuota(dest.r.access, size);
    const map = await this.s.store.copyMessages(v.folderId, targets.map((t) => t.uid), dest.folder.id, move);
    this.notifyChanged(dest.folder.id);
    // RFC 4315 §3 COPYUID; for MOVE it is sent untagged before the EXPUNGEs (RFC 6851 §4.3).
    const copyuid = `COPYUID ${dest.folder.uidValidity} ${encodeSet(map.map((m) => m.from))} ${encodeSet(map.map((m) => m.to))}`;
    if (move) {
      this.write(`* OK [${copyuid}] moved\r\n`);
      await this.flushUpdates(true);
      this.announceExpunged(v, map.map((m) => m.from));
      this.notifyChanged(v.folderId);
      return `${verb} completed`;
    }
    return `[${copyuid}] ${verb} completed`;
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

