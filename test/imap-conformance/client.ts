// A small IMAP client connection for the conformance runner: it sees the raw bytes, sends
// exactly what it is given (pipelined commands, synchronizing literals or LITERAL+), and
// hands every response back in order. No interpretation beyond what the runner needs:
// capabilities, and literal continuation ("+") handling for the commands it sends.
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { parseArgs, showBytes, type ImapArg } from './imap-args.js';
import type { CommandPart } from './script.js';

export type TlsMode = 'implicit' | 'starttls' | 'none';

export interface ConnectOptions {
  host: string;
  port: number;
  tls: TlsMode;
  /** CA certificate(s), PEM, to verify the server with; without it the system CAs are used. */
  ca?: string;
  /** Name to verify in the server certificate (default: host). */
  servername?: string;
  /** Do not verify the server certificate at all. */
  insecure?: boolean;
  /** Time allowed to connect and get the greeting (and STARTTLS done). */
  timeoutMs: number;
  /** Connection label used in tags and traces ("1", "2", ...). */
  label: string;
  /** Receives a line for every line sent and every response received. */
  trace?: (line: string) => void;
}

export interface Response {
  kind: 'untagged' | 'tagged' | 'continuation';
  /** The tag of a tagged response. */
  tag?: string;
  /** The whole response, literals included, without the final CRLF (binary string). */
  raw: string;
  /** Arguments after `* ` or after the tag (none for a continuation). */
  args: ImapArg[];
}

export class ConnectionClosed extends Error {}
export class ReadTimeout extends Error {}

/** A command on its way: the text to write, cut after each synchronizing literal's `{n}` (a continuation is awaited there). */
export interface OutgoingCommand {
  tag: string;
  chunks: string[];
  sent: number;
  /** The server answered before it had all of it (e.g. NO instead of "+"): the rest was not sent. */
  aborted: boolean;
}

/** Builds the wire form of `tag parts…`: literals as `{n+}` with LITERAL+, else `{n}` and a wait for "+". */
export function buildCommand(tag: string, parts: CommandPart[], literalPlus: boolean): OutgoingCommand {
  const chunks: string[] = [];
  let text = `${tag} `;
  for (const p of parts) {
    if (p.kind === 'text') {
      text += p.text;
      continue;
    }
    const header = `${p.binary ? '~' : ''}{${p.data.length}${literalPlus ? '+' : ''}}\r\n`;
    if (literalPlus) text += header + p.data;
    else {
      chunks.push(text + header);
      text = p.data;
    }
  }
  chunks.push(`${text}\r\n`);
  return { tag, chunks, sent: 0, aborted: false };
}

const LITERAL_AT_END = /(~?)\{(\d+)\+?\}\r?$/;

export class ImapConnection {
  capabilities: string[] = [];
  closed = false;
  closeReason: string | undefined;
  /** Bytes written and read, for statistics. */
  bytesIn = 0;
  bytesOut = 0;

  private socket: Socket | TLSSocket;
  private buf = '';
  private queue: Response[] = [];
  private waiter: { resolve: (r: Response) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | undefined;
  private tagCounter = 0;
  private outQueue: OutgoingCommand[] = [];
  private waitingContinuation: OutgoingCommand | undefined;
  private readonly onData = (chunk: Buffer): void => this.receive(chunk);

  private constructor(
    socket: Socket | TLSSocket,
    readonly opts: ConnectOptions,
  ) {
    this.socket = socket;
    this.attach(socket);
  }

  /** Connects (TLS as asked), reads the greeting, does STARTTLS when asked. */
  static async open(opts: ConnectOptions): Promise<{ conn: ImapConnection; greeting: Response }> {
    const socket = await openSocket(opts);
    const conn = new ImapConnection(socket, opts);
    try {
      const greeting = await conn.read(opts.timeoutMs);
      if (greeting.kind !== 'untagged' || !/^(OK|PREAUTH)$/i.test(atomText(greeting.args[0]))) {
        throw new Error(`bad greeting: ${showBytes(greeting.raw, 300)}`);
      }
      if (opts.tls === 'starttls') {
        const tag = conn.newTag();
        conn.submit(buildCommand(tag, [{ kind: 'text', text: 'STARTTLS' }], false));
        for (;;) {
          const r = await conn.read(opts.timeoutMs);
          if (r.kind === 'tagged' && r.tag === tag) {
            if (!/^OK$/i.test(atomText(r.args[0]))) throw new Error(`STARTTLS refused: ${showBytes(r.raw, 300)}`);
            break;
          }
        }
        await conn.upgradeToTls();
      }
      return { conn, greeting };
    } catch (err) {
      conn.destroy();
      throw err;
    }
  }

  /** Next tag: `<label>.<n>`. */
  newTag(): string {
    return `${this.opts.label}.${++this.tagCounter}`;
  }

  /** Queues a command for writing (in order after those already queued). */
  submit(cmd: OutgoingCommand): void {
    this.outQueue.push(cmd);
    this.pump();
  }

  /** Next response (continuations for our own literals are consumed here, not returned). */
  read(timeoutMs: number): Promise<Response> {
    const r = this.queue.shift();
    if (r) return Promise.resolve(r);
    if (this.closed) return Promise.reject(new ConnectionClosed(this.closeReason ?? 'connection closed'));
    if (this.waiter) return Promise.reject(new Error('concurrent read on one connection'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new ReadTimeout(`no response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  /** Responses already received and not yet read. */
  queued(): number {
    return this.queue.length;
  }

  destroy(): void {
    if (!this.closed) {
      this.closed = true;
      this.closeReason = 'closed by the runner';
    }
    this.socket.destroy();
  }

  /** Sends LOGOUT if still connected and closes, without waiting more than `timeoutMs`. */
  async logoutAndClose(timeoutMs = 1000): Promise<void> {
    if (this.closed) return;
    const tag = this.newTag();
    try {
      this.submit(buildCommand(tag, [{ kind: 'text', text: 'LOGOUT' }], false));
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        const r = await this.read(left);
        if (r.kind === 'tagged' && r.tag === tag) break;
      }
    } catch {
      /* closed or slow: destroy anyway */
    }
    this.destroy();
  }

  private trace(line: string): void {
    this.opts.trace?.(line);
  }

  private write(s: string): void {
    if (this.closed) return;
    this.bytesOut += s.length;
    for (const l of s.replace(/\r\n$/, '').split('\r\n')) this.trace(`C${this.opts.label}: ${showBytes(l, 500)}`);
    this.socket.write(Buffer.from(s, 'latin1'));
  }

  private pump(): void {
    while (!this.waitingContinuation && this.outQueue.length > 0 && !this.closed) {
      const cmd = this.outQueue[0]!;
      this.write(cmd.chunks[cmd.sent++]!);
      if (cmd.sent < cmd.chunks.length) this.waitingContinuation = cmd;
      else this.outQueue.shift();
    }
  }

  private attach(socket: Socket | TLSSocket): void {
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('error', (e) => this.closedBy(`socket error: ${e.message}`));
    socket.on('close', () => this.closedBy('connection closed by the server'));
  }

  private closedBy(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    this.trace(`--${this.opts.label}: ${reason}`);
    const w = this.waiter;
    if (w && this.queue.length === 0) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.reject(new ConnectionClosed(reason));
    }
  }

  private async upgradeToTls(): Promise<void> {
    if (this.buf !== '' || this.queue.length > 0) throw new Error('data received after STARTTLS OK, before the TLS handshake');
    const plain = this.socket as Socket;
    plain.removeListener('data', this.onData);
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    const secure = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ socket: plain, ...tlsOptions(this.opts) }, () => resolve(s));
      s.once('error', reject);
      setTimeout(() => reject(new Error('TLS handshake timed out')), this.opts.timeoutMs).unref();
    });
    secure.removeAllListeners('error');
    this.socket = secure;
    this.attach(secure);
    this.capabilities = [];
  }

  private receive(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    this.buf += chunk.toString('latin1');
    for (;;) {
      const r = this.extract();
      if (!r) break;
      this.deliver(r);
    }
  }

  /** Cuts one complete response (with its literals) off the input buffer. */
  private extract(): Response | undefined {
    let lineStart = 0;
    for (;;) {
      const nl = this.buf.indexOf('\n', lineStart);
      if (nl < 0) return undefined;
      const lineText = this.buf.slice(lineStart, nl);
      const lit = LITERAL_AT_END.exec(lineText);
      if (lit) {
        const end = nl + 1 + Number(lit[2]);
        if (this.buf.length < end) return undefined;
        lineStart = end;
        continue;
      }
      const raw = this.buf.slice(0, nl).replace(/\r$/, '');
      this.buf = this.buf.slice(nl + 1);
      return parseResponse(raw);
    }
  }

  private deliver(r: Response): void {
    this.trace(`S${this.opts.label}: ${showBytes(r.raw, 2000)}`);
    this.noteCapabilities(r);
    if (r.kind === 'continuation' && this.waitingContinuation) {
      const cmd = this.waitingContinuation;
      this.waitingContinuation = undefined;
      this.write(cmd.chunks[cmd.sent++]!);
      if (cmd.sent < cmd.chunks.length) this.waitingContinuation = cmd;
      else this.outQueue.shift();
      this.pump();
      return;
    }
    if (r.kind === 'tagged') {
      const idx = this.outQueue.findIndex((c) => c.tag === r.tag);
      if (idx >= 0) {
        // Answered before all of it was sent (refused literal): drop the rest.
        const cmd = this.outQueue[idx]!;
        cmd.aborted = true;
        this.outQueue.splice(idx, 1);
        if (this.waitingContinuation === cmd) this.waitingContinuation = undefined;
        this.pump();
      }
    }
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.resolve(r);
    } else this.queue.push(r);
  }

  private noteCapabilities(r: Response): void {
    if (r.kind === 'untagged' && /^CAPABILITY$/i.test(atomText(r.args[0]))) {
      this.capabilities = r.args.slice(1).map(atomText).filter((c) => c !== '');
      return;
    }
    const m = /\[CAPABILITY ([^\]]*)\]/i.exec(r.raw);
    if (m && r.kind !== 'continuation') this.capabilities = m[1]!.split(' ').filter((c) => c !== '');
  }
}

function atomText(a: ImapArg | undefined): string {
  return a && (a.type === 'atom' || a.type === 'string') ? a.value : '';
}

export function parseResponse(raw: string): Response {
  if (raw === '+' || raw.startsWith('+ ')) return { kind: 'continuation', raw, args: [] };
  if (raw.startsWith('* ')) return { kind: 'untagged', raw, args: parseArgs(raw.slice(2), { tolerant: true }) };
  const sp = raw.indexOf(' ');
  const tag = sp < 0 ? raw : raw.slice(0, sp);
  return { kind: 'tagged', tag, raw, args: sp < 0 ? [] : parseArgs(raw.slice(sp + 1), { tolerant: true }) };
}

function tlsOptions(o: ConnectOptions): { ca?: string; servername?: string; rejectUnauthorized: boolean } {
  const servername = o.servername ?? (isIP(o.host) ? undefined : o.host);
  return { ca: o.ca, servername, rejectUnauthorized: !o.insecure };
}

function openSocket(o: ConnectOptions): Promise<Socket | TLSSocket> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`connecting to ${o.host}:${o.port} timed out after ${o.timeoutMs} ms`));
    }, o.timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      resolve(s);
    };
    const s: Socket | TLSSocket =
      o.tls === 'implicit' ? tlsConnect({ host: o.host, port: o.port, ...tlsOptions(o) }, done) : netConnect({ host: o.host, port: o.port }, done);
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`connecting to ${o.host}:${o.port}: ${e.message}`));
    });
  });
}
