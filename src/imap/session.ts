// One IMAP connection: the state machine of RFC 9051 §3 (not authenticated, authenticated,
// selected, logout), the parser queue, command dispatch in order (pipelined commands are
// answered in order), and untagged updates at the points §7 allows. The commands themselves
// are in commands/ (one file per group, over the SessionContext this class implements);
// protocol parsing and encoding are pure and live in protocol/; access decisions come from
// core/; SQL stays in store/.
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { SaslServer } from '../auth/sasl.js';
import { AccessDenied, CoreError, NotFound, type User } from '../core/index.js';
import { peerCertificateChain } from '../trust/index.js';
import { aclCommands } from './commands/acl.js';
import { authCommands, capabilities } from './commands/auth.js';
import { writeFlagList, type Handlers, type ImapServices, type SessionContext, type SessionState } from './commands/context.js';
import { endIdle, idleCommands, pushIdleUpdates } from './commands/idle.js';
import { mailboxCommands } from './commands/mailboxes.js';
import { fetchNewMessages, notifyCommands, recordMailboxEvent, sendNotifyStatus, type NotifyState } from './commands/notify.js';
import { refreshSearchUpdates, selectedCommands } from './commands/selected.js';
import { urlauthCommands } from './commands/urlauth.js';
import { metadataCommands } from './commands/metadata.js';
import { bad, ImapError, no } from './errors.js';
import type { UserNamespace } from './namespace.js';
import { CommandParser, type ParserEvent } from './protocol/parser.js';
import type { Command } from './protocol/types.js';
import type { SearchUpdates } from './search-updates.js';
import type { FolderView, ViewUpdate } from './view.js';

export type { ImapServices } from './commands/context.js';

/** Commands of the connection itself; the groups' tables complete the set (checked by the type). */
const connectionCommands = {
  NOOP: async () => 'NOOP completed',
  LOGOUT: async (ctx) => {
    // RFC 3501 §9: resp-text is 7-bit (TEXT-CHAR) for IMAP4rev1 clients: no "é" here.
    ctx.write('* BYE Caducee IMAP logging out\r\n');
    ctx.state = 'logout';
    return '';
  },
} satisfies Partial<Handlers>;

/** RFC 9051 §5.4: the autologout timer, at least 30 minutes. */
const AUTOLOGOUT_MS = 30 * 60 * 1000;

/**
 * Every command's handler but STARTTLS (it replaces the socket: ImapSession.startTls); a
 * command without a handler is a type error here.
 */
const HANDLERS: Handlers<Exclude<Command['name'], 'STARTTLS'>> = { ...connectionCommands, ...authCommands, ...mailboxCommands, ...aclCommands, ...idleCommands, ...selectedCommands, ...notifyCommands, ...urlauthCommands, ...metadataCommands };

export class ImapSession implements SessionContext {
  private socket: Socket;
  readonly remote: string | null;
  readonly local: string | null;
  // ENABLE pauses too, so commands pipelined after ENABLE IMAP4rev2 / UTF8=ACCEPT are parsed with UTF-8 allowed.
  readonly parser = new CommandParser({ pauseAfter: ['STARTTLS', 'AUTHENTICATE', 'IDLE', 'ENABLE'] });
  state: SessionState = 'notauth';
  user?: User;
  ns?: UserNamespace;
  view?: FolderView;
  readonly enabled = new Set<string>();
  savedSearch: number[] = [];
  searchUpdates?: SearchUpdates;
  notify?: NotifyState;
  notifyOverflow = false;
  /** RFC 5465 notifications being sent between commands (a command waits for them). */
  private notifying?: Promise<void>;
  /**
   * A push scheduled and not started yet: pushes are coalesced (a push reports everything pending
   * when it runs), so a client that does not read while events keep coming holds one pending push,
   * not one closure per event. `selected`: it must also report the selected folder's changes.
   */
  private queuedPush?: { selected: boolean };
  readonly idle = { tag: null as string | null, pushing: false, again: false };
  private readonly queue: ParserEvent[] = [];
  private busy = false;
  private lineWaiter?: (line: string) => void;
  private closed = false;
  /** performance.now() at the connection, and at its last input or output (expire()). */
  private readonly openedAt = performance.now();
  private lastActivity = this.openedAt;
  private saslServer?: SaslServer;

  /**
   * A folder changed ('delivered', 'folder-changed' from core): called by the listener
   * (server.ts), which subscribes once for all its sessions (issue 15: not three listeners and
   * their closures per session).
   */
  changed(e: { folderId: number }) {
    if (this.closed) return;
    if (this.notify) this.onNotifyChange(e.folderId);
    if (this.idle.tag && this.view && e.folderId === this.view.folderId) void this.push();
  }

  /**
   * RFC 5465 §3.1: with NOTIFY the client listens "all the time": a change to a watched folder is
   * reported at once when no command runs (else at the end of the running one), and a change to
   * the selected folder too with SELECTED (SELECTED-DELAYED: without EXPUNGE, §6.1.2). Pushes are
   * chained and a command waits for them, so that responses never interleave.
   */
  private onNotifyChange(folderId: number) {
    const n = this.notify!;
    const selected = this.view?.folderId === folderId;
    if (!selected && n.watched.has(folderId)) n.pending.add(folderId);
    else if (!(selected && n.selected)) return;
    if (this.busy || this.state === 'logout') return; // reported at the end of the running command
    if (selected && this.idle.tag) return; // the IDLE push reports it
    this.notifyLater(selected);
  }

  /**
   * RFC 5465 §5.4–5.7: a mailbox-level event (server.ts calls this for every session): folders
   * created, deleted, renamed or (un)subscribed, a grant of this user changed, METADATA entries
   * changed. Reported like the changes of watched folders: at once between commands, else at the
   * end of the running one.
   */
  mailboxEvent(e: Parameters<typeof recordMailboxEvent>[1]) {
    if (this.closed || !this.notify || !recordMailboxEvent(this, e)) return;
    if (this.busy || this.state === 'logout') return;
    this.notifyLater(false);
  }

  /**
   * Pushes what NOTIFY has pending (with `selected`, the selected folder's changes too) after the
   * pushes in progress (chained: responses never interleave; a command waits for them). One push
   * at most waits to start (queuedPush).
   */
  private notifyLater(selected: boolean) {
    if (this.queuedPush) {
      this.queuedPush.selected ||= selected;
      return;
    }
    const q = (this.queuedPush = { selected });
    const run = async () => {
      if (this.queuedPush === q) this.queuedPush = undefined;
      if (this.busy || this.closed) return;
      const sel = this.notify?.selected;
      if (q.selected && sel && this.view) await this.flushUpdates(!sel.delayed);
      else await sendNotifyStatus(this);
    };
    const p = (this.notifying ?? Promise.resolve()).then(run).catch((e) => this.log.warn({ err: e?.message }, 'NOTIFY update failed; the client sees the changes at its next command'));
    this.notifying = p.finally(() => {
      if (this.notifying === p) this.notifying = undefined;
    });
  }
  /**
   * 'resync' (src/relay): events from other processes or nodes may have been missed (a
   * reconnection), or the safety poll: an idling session compares its folder's HIGHESTMODSEQ
   * with the store's (one cheap read) and reports what it finds (RFC 7162 §3.1 modseq order).
   */
  resync() {
    if (!this.closed && this.idle.tag && this.view) void this.push();
  }

  private push() {
    return pushIdleUpdates(this).catch((e) => this.log.warn({ err: e?.message }, 'IDLE update failed; the client sees the changes at its next command'));
  }

  constructor(
    socket: Socket,
    readonly s: ImapServices,
    public secure: boolean,
    readonly id: string,
  ) {
    this.socket = socket;
    this.remote = socket.remoteAddress ?? null;
    this.local = socket.localAddress ?? null;
    this.attach(socket);
    this.write(`* OK [CAPABILITY ${this.capabilities().join(' ')}] Caducee MSSante IMAP ready\r\n`); // 7-bit resp-text (RFC 3501 §9)
  }

  private attach(socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // A TLS error after the handshake (e.g. the client's fatal alert when its renegotiation is
    // refused) leaves the socket open but useless: end the session instead of idling 30 minutes.
    socket.on('error', (e) => (this.log.debug({ err: e.message }, 'socket error'), socket.destroy()));
    socket.on('close', () => this.cleanup());
  }

  /**
   * Called now and then by the listener (server.ts: one sweep for all its sessions, issue 15:
   * not two timers per connection). Before authentication a client gets `preAuthMs` (RFC 9051
   * §5.4 sets no lower bound there; Dovecot closes unauthenticated connections after 3 minutes
   * too); after, the autologout timer of at least 30 minutes (RFC 9051 §5.4) since the last
   * input or output, as Node's socket timeout counted it before.
   */
  expire(now: number, preAuthMs: number) {
    if (this.closed || this.state === 'logout') return;
    if (this.state === 'notauth' && now - this.openedAt >= preAuthMs) {
      this.write('* BYE [UNAVAILABLE] no authentication in time: connect again when ready\r\n');
      this.state = 'logout';
      this.socket.end();
      const socket = this.socket;
      setTimeout(() => socket.destroy(), 2000).unref();
    } else if (now - this.lastActivity >= AUTOLOGOUT_MS) {
      this.write('* BYE autologout: idle for too long\r\n');
      this.state = 'logout';
      this.socket.end();
    }
  }

  private cleanup() {
    if (this.closed) return;
    this.closed = true;
  }

  /**
   * A child logger made at each use and not kept (issue 15: a session logs at login and on
   * errors; 10,000 idling sessions need not hold 10,000 loggers).
   */
  get log(): Logger {
    return this.s.logger.child({ component: 'imap', session: this.id });
  }

  write(data: string | Buffer) {
    this.lastActivity = performance.now();
    if (!this.closed && this.socket.writable) this.socket.write(data);
  }

  capabilities(): string[] {
    return capabilities(this);
  }

  get sasl(): SaslServer {
    return (this.saslServer ??= new SaslServer(this.s.auth));
  }

  get rev2(): boolean {
    return this.enabled.has('IMAP4REV2');
  }

  /** UTF-8 in quoted strings, mailbox names and header strings: ENABLE UTF8=ACCEPT (RFC 6855 §3) or IMAP4rev2 (RFC 9051 §4.3, §5.1). */
  get utf8(): boolean {
    return this.rev2 || this.enabled.has('UTF8=ACCEPT');
  }

  /** RFC 7162 §3.1: CONDSTORE is enabled by ENABLE, SELECT (CONDSTORE) or any CONDSTORE-enabling command. */
  get condstore(): boolean {
    return this.enabled.has('CONDSTORE') || this.enabled.has('QRESYNC');
  }

  get qresync(): boolean {
    return this.enabled.has('QRESYNC');
  }

  enableCondstore() {
    if (!this.condstore) {
      this.enabled.add('CONDSTORE');
      // RFC 7162 §3.1.2: a CONDSTORE-enabling command in the selected state announces HIGHESTMODSEQ.
      if (this.view) this.write(`* OK [HIGHESTMODSEQ ${this.view.modseq}] CONDSTORE enabled\r\n`);
    }
  }

  // ---- input --------------------------------------------------------------------------------

  private onData(chunk: Buffer) {
    this.lastActivity = performance.now();
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

  handleEvents(events: ParserEvent[]) {
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
          else if (this.idle.tag) await endIdle(this, ev.text);
          continue;
        }
        if (ev.type === 'literal-too-big') {
          this.write(no('TOOBIG', `literal of ${ev.size} bytes is larger than this server accepts`).response(ev.tag ?? '*'));
          continue;
        }
        if (ev.type !== 'command') continue;
        const p = ev.parsed;
        if (!p.ok) {
          // RFC 9051 §6.4.4: an unknown charset is NO [BADCHARSET (...)], other syntax errors BAD.
          this.write((p.code === 'BADCHARSET' ? no('BADCHARSET (US-ASCII UTF-8)', p.message) : bad(p.code, p.message)).response(p.tag ?? '*'));
          continue;
        }
        if (this.notifying) await this.notifying;
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
  readLine(): Promise<string> {
    this.parser.expectLine();
    const p = new Promise<string>((resolve) => (this.lineWaiter = resolve));
    this.handleEvents(this.parser.resume());
    return p;
  }

  /** The client certificate chain presented during the TLS handshake (leaf first; empty: none). */
  peerChain(): Uint8Array[] {
    return this.socket instanceof TLSSocket ? peerCertificateChain(this.socket) : [];
  }

  waitDrain(): Promise<void> {
    if (!this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((r) => this.socket.once('drain', () => r()));
  }

  // ---- dispatch -----------------------------------------------------------------------------

  private async execute(tag: string, cmd: Command) {
    const name = cmd.name;
    try {
      const allowed = this.allowedIn(name);
      if (!allowed) throw bad(undefined, `${name} is not allowed ${this.state === 'notauth' ? 'before authentication' : this.state === 'auth' ? 'without a selected mailbox' : 'now'}`);
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
    } catch (e) {
      if (e instanceof ImapError) {
        this.write(e.response(tag));
      } else if (e instanceof CoreError) {
        // A refusal from core (the access decision point), in RFC 5530 response codes.
        this.write(no(e instanceof AccessDenied ? 'NOPERM' : e instanceof NotFound ? 'NONEXISTENT' : 'CANNOT', e.message).response(tag));
      } else {
        this.log.error({ err: e, command: name }, 'command failed');
        this.write(`${tag} NO [SERVERBUG] ${name} failed on the server side; nothing was changed, try again\r\n`);
      }
    }
  }

  private allowedIn(name: Command['name']): boolean {
    const any = ['CAPABILITY', 'NOOP', 'LOGOUT', 'ID'];
    const notauth = ['STARTTLS', 'LOGIN', 'AUTHENTICATE'];
    const selected = ['CLOSE', 'UNSELECT', 'EXPUNGE', 'UID EXPUNGE', 'CHECK', 'SEARCH', 'UID SEARCH', 'FETCH', 'UID FETCH', 'STORE', 'UID STORE', 'COPY', 'UID COPY', 'MOVE', 'UID MOVE', 'SORT', 'UID SORT', 'THREAD', 'UID THREAD', 'CANCELUPDATE'];
    if (any.includes(name)) return true;
    if (this.state === 'notauth') return notauth.includes(name);
    if (notauth.includes(name)) return false;
    if (selected.includes(name)) return this.state === 'selected';
    return true;
  }

  private run(tag: string, cmd: Command): Promise<string | null> {
    if (cmd.name === 'STARTTLS') return this.startTls(tag);
    const handler = HANDLERS[cmd.name] as Handler | undefined;
    if (!handler) throw bad(undefined, `${cmd.name} is not supported`);
    return handler(this, cmd, tag);
  }

  async flushUpdates(allowExpunge: boolean) {
    if (this.notify || this.notifyOverflow) await sendNotifyStatus(this); // RFC 5465: other folders' changes seen meanwhile (§5.8: or the overflow)
    if (!this.view) return;
    const known = this.view.messages.length;
    const updates = await this.view.refresh(this.s.store, allowExpunge, await this.s.store.folderModseq(this.view.folderId));
    this.writeUpdates(updates);
    // RFC 5267 §4.3.2: ADDTO / REMOVEFROM with the FETCH and EXISTS responses that caused them.
    await refreshSearchUpdates(this);
    // RFC 5465 §5.2: the FETCH asked for with MessageNew, after EXISTS and any ADDTO.
    if (this.notify?.selected?.fetch && updates.some((u) => u.kind === 'exists')) {
      await fetchNewMessages(this, known - updates.filter((u) => u.kind === 'expunge').length + 1);
    }
  }

  private writeUpdates(updates: ViewUpdate[]) {
    // RFC 5267 §4.3.4: REMOVEFROM for expunged messages before the EXPUNGE (or VANISHED) itself.
    const gone = updates.flatMap((u) => (u.kind === 'expunge' ? [{ uid: u.uid, seq: u.seq }] : []));
    if (gone.length && this.searchUpdates?.view === this.view) this.searchUpdates!.expunging(gone, (l) => this.write(l));
    for (const u of updates) {
      // RFC 7162 §3.2.10: with QRESYNC enabled, VANISHED replaces EXPUNGE.
      if (u.kind === 'keywords') writeFlagList(this, this.view!);
      else if (u.kind === 'expunge') this.write(this.qresync ? `* VANISHED ${u.uid}\r\n` : `* ${u.seq} EXPUNGE\r\n`);
      else if (u.kind === 'exists') {
        this.write(`* ${u.count} EXISTS\r\n`);
        if (!this.rev2) this.write(`* ${this.view!.recentCount} RECENT\r\n`);
      } else this.write(`* ${u.seq} FETCH (UID ${u.msg.uid} FLAGS (${this.flagsOut(u.msg).join(' ')})${this.condstore ? ` MODSEQ (${u.msg.modseq})` : ''})\r\n`);
    }
  }

  flagsOut(m: { flags: string[]; recent: boolean }): string[] {
    return !this.rev2 && m.recent ? [...m.flags, '\\Recent'] : m.flags;
  }

  // ---- STARTTLS (RFC 9051 §6.2.1) -----------------------------------------------------------

  private async startTls(tag: string): Promise<string | null> {
    if (this.secure) throw bad(undefined, 'TLS is already active');
    // RFC 9051 §6.2.1: the tagged OK, then the TLS negotiation starts at once.
    this.write(`${tag} OK Begin TLS negotiation now\r\n`);
    const plain = this.socket;
    // RFC 9051 §6.2.1 / RFC 3207-class injection: drop anything the client pipelined in clear.
    this.parser.reset();
    plain.removeAllListeners('data');
    // The 'close' listeners stay: the plain socket closes with the TLS one, and the listener's
    // own (the sessions it notifies, the per-address connection count) must run then too.
    // Request (never require) a client certificate for SASL EXTERNAL; the acceptable CAs come
    // from secureContext (built with the CA bundle), the certificate is judged by trust/.
    // `server`: where Node asks for the OCSP response to staple (RFC 6066 §8), as for implicit TLS.
    const secure = new TLSSocket(plain, {
      isServer: true,
      secureContext: this.s.secureContext,
      requestCert: true,
      rejectUnauthorized: false,
      ...(this.s.startTlsServer ? { server: this.s.startTlsServer } : {}),
    });
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
}

/** A handler over any command: HANDLERS[cmd.name] pairs each name with its own, which TypeScript cannot follow through the index. */
type Handler = (ctx: SessionContext, cmd: Command, tag: string) => Promise<string | null>;
