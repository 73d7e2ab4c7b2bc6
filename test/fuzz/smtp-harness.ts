// Seeded fuzzing of the SMTP handlers behind smtp-server (src/smtp/submission.ts, src/smtp/mx.ts
// and the shared pieces of src/smtp/common.ts) over real sockets on 127.0.0.1: one operator of a
// local demo trust space (src/demo/space.ts); each iteration is a session on its submission port
// (mode 'submission': STARTTLS + AUTH PLAIN) or its MX (mode 'mx': STARTTLS with the other
// operator's IGC-Santé-style certificate — mutual TLS — or now and then no certificate or a
// personal one, which the trust service must refuse with a reply), with
// random command sequences before and after STARTTLS (valid and odd MAIL/RCPT
// parameters, RSET, NOOP, VRFY, HELP, unknown verbs, NULs, 8-bit bytes, long lines) and DATA
// bodies with bare LF, bare CR, NULs and 8-bit bytes, sometimes cut off by closing the socket.
// Properties: every command line gets exactly one final reply within 10 s (a hang fails the
// iteration) and a new connection is always greeted (the server did not crash); afterwards
// (check()): every message row's blob is readable, every DATA the server accepted was stored,
// and no DATA it refused or that was cut off left a message behind (each body carries a token).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../../src/demo/space.js';
import { fileBlobs, sqliteDb, tempDir, testLogger } from '../helpers.js';
import { FuzzFailure, iterationSeed, Rng } from './rng.js';

export interface SmtpStats {
  iterations: number;
  /** Connections opened (per-session mode: one per iteration; stream mode: one per session, plus the final probe). */
  sessions: number;
  commands: number;
  replies: Record<string, number>;
  dataAccepted: number;
  dataRefused: number;
  dataCut: number;
  /** Stream mode: iterations that ended by closing the connection (mid-DATA or mid-line). */
  cut: number;
  closedByServer: number;
  /** Stream mode: sessions that could not send (no TLS, no acceptable certificate). */
  untrustedSessions: number;
}

export function newSmtpStats(): SmtpStats {
  return { iterations: 0, sessions: 0, commands: 0, replies: {}, dataAccepted: 0, dataRefused: 0, dataCut: 0, cut: 0, closedByServer: 0, untrustedSessions: 0 };
}

/** Stream mode (SmtpFuzzTarget.stream): how iterations are spread over long-lived sessions. */
export interface StreamOptions {
  /** Sessions running at once; worker w runs iterations w, w + concurrency, w + 2·concurrency… */
  concurrency: number;
  /** A session is closed (QUIT) and a new one opened after this many iterations. */
  sessionIterations: number;
  /** Share of iterations that end by closing the connection (mid-DATA when DATA was reached). */
  cutRate: number;
  /** Called after each iteration with the number done so far. */
  progress?: (done: number) => void;
  /** Asked before each iteration: true ends the run early (the CLI's Ctrl-C), sessions closed cleanly. */
  stop?: () => boolean;
  /** Replay: run only this worker, from iteration `from` (the first one of the failing session) to `to`. */
  only?: { worker: number; from: number; to: number };
}

export const DEFAULT_STREAM: StreamOptions = { concurrency: 12, sessionIterations: 1000, cutRate: 0.01 };

const REPLY_TIMEOUT_MS = 10_000;

/** A line-oriented client that counts final replies (RFC 5321 §4.2.1: "ddd " ends a reply). */
class Client {
  private buf = '';
  private finals: string[] = [];
  private waiter: (() => void) | null = null;
  closed = false;
  constructor(public socket: net.Socket) {
    this.attach(socket);
  }
  attach(s: net.Socket): void {
    this.socket = s;
    s.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i).replace(/\r$/, '');
        this.buf = this.buf.slice(i + 1);
        if (/^\d{3}( |$)/.test(line)) this.finals.push(line);
      }
      this.waiter?.();
    });
    s.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    s.on('error', () => {});
  }
  detach(): void {
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('close');
  }
  /** The next final reply; null when the server closed the connection first. */
  async reply(): Promise<string | null> {
    const deadline = Date.now() + REPLY_TIMEOUT_MS;
    while (this.finals.length === 0) {
      if (this.closed) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no reply within 10 s');
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiter = () => {
          clearTimeout(t);
          r();
        };
      });
      this.waiter = null;
    }
    return this.finals.shift()!;
  }
  write(b: Buffer | string): void {
    if (!this.closed) this.socket.write(b);
  }
}

/** The command/reply exchange of one stream-mode session, with its log for failure reports. */
class Exchange {
  c: Client | null = null;
  tls = false;
  tlsAnonymous = false;
  peerCert = false;
  iteration: { index: number; seed: number } | null = null;
  readonly log: string[] = [];
  constructor(
    private readonly stats: SmtpStats,
    private readonly where: (index: number | undefined) => string,
    private readonly upgrade: (c: Client) => Promise<void>,
  ) {}
  fail(m: string): never {
    const it = this.iteration ? `iteration ${this.iteration.index} (iteration seed ${this.iteration.seed})` : 'opening the session';
    throw new FuzzFailure(`${m}; ${it}, ${this.where(this.iteration?.index)}; session so far: ${JSON.stringify(this.log.slice(-16))}`, this.iteration?.seed ?? 0);
  }
  /** Sends a line (CRLF added) or raw bytes; the final reply, null when the server closed first. */
  async send(line: string | Buffer, opts: { upgrade: boolean } = { upgrade: true }): Promise<string | null> {
    const c = this.c!;
    this.log.push(typeof line === 'string' ? line.slice(0, 120) : `<${line.length} bytes>`);
    if (this.log.length > 64) this.log.splice(0, 32);
    this.stats.commands++;
    c.write(typeof line === 'string' ? Buffer.from(line + '\r\n', 'latin1') : line);
    let r: string | null;
    try {
      r = await c.reply();
    } catch (e) {
      return this.fail(`${(e as Error).message} to ${JSON.stringify(this.log[this.log.length - 1])}`);
    }
    const k = r === null ? 'closed' : r.slice(0, 3);
    this.stats.replies[k] = (this.stats.replies[k] ?? 0) + 1;
    this.log.push(`→ ${r}`);
    if (opts.upgrade && !this.tls && r !== null && r.startsWith('220') && typeof line === 'string' && /^starttls$/i.test(line)) {
      // a STARTTLS in the noise of a cleartext session, accepted: RFC 3207 §4.2, the client
      // starts TLS now (without a certificate: the session cannot send on the MX)
      await this.upgrade(c);
      this.tls = true;
      this.tlsAnonymous = true;
    }
    return r;
  }
}

export class SmtpFuzzTarget {
  private constructor(
    private readonly demo: RunningDemo,
    private readonly layout: DemoLayout,
    private readonly cleanup: () => void,
    private readonly ca: string,
    readonly mode: 'submission' | 'mx',
  ) {}
  /** Tokens of DATA the server accepted (must be stored) and refused or cut off (must not be). */
  readonly accepted = new Set<string>();
  readonly notStored = new Set<string>();

  static async start(mode: 'submission' | 'mx' = 'submission'): Promise<SmtpFuzzTarget> {
    const { dir, cleanup } = tempDir('caducee-fuzz-smtp-');
    const layout = await prepareDemo(dir, { ports: 'ephemeral' });
    // Limits out of the way: the fuzzer sends far more than a person would in a day.
    const content = { maxRecipientsPerMessage: 1000, maxRecipientsPerDay: 1_000_000_000 };
    const demo = await startDemo(layout, { logger: testLogger(), psc: false, configOverrides: { policy: { content } } });
    return new SmtpFuzzTarget(demo, layout, cleanup, readFileSync(layout.caBundle, 'utf8'), mode);
  }

  private get op() {
    return this.demo.operators[0]!;
  }
  private get user() {
    return this.layout.operators[0]!.users[0]!;
  }
  /** The envelope and From: addresses a session uses: the user's own (submission), the peer operator's (MX). */
  private get senders(): string[] {
    return this.mode === 'mx' ? this.layout.operators[1]!.users[0]!.addresses : this.user.addresses;
  }
  /** MX: the client certificate of a session — the peer operator's (mostly), none, or a personal one (refused). */
  private clientCertificate(rng: Rng): { cert: string; key: string } | undefined {
    const peer = this.layout.operators[1]!;
    const r = rng.int(10);
    if (r === 0) return undefined;
    if (r === 1) return { cert: readFileSync(this.layout.operators[0]!.certificates.personal.cert, 'utf8'), key: readFileSync(this.layout.operators[0]!.certificates.personal.key, 'utf8') };
    return { cert: readFileSync(peer.chain, 'utf8'), key: readFileSync(peer.key, 'utf8') };
  }
  /** The peer operator's certificate chain (PEM), the one the MX trusts. */
  private get peerChain(): string {
    return readFileSync(this.layout.operators[1]!.chain, 'utf8');
  }
  private get locals(): string[] {
    return this.layout.operators[0]!.users.flatMap((u) => u.addresses);
  }

  async close(): Promise<void> {
    await this.demo.stop();
    this.cleanup();
  }

  private command(rng: Rng, authed: boolean): string {
    const me = rng.pick(this.senders);
    const to = rng.pick(this.locals);
    switch (rng.int(16)) {
      case 0:
        return `MAIL FROM:<${me}>${rng.pick(['', ' SIZE=100', ' BODY=8BITMIME', ' SMTPUTF8', ' SIZE=99999999999', ' BODY=BINARYMIME', ' RET=HDRS ENVID=x', ' FOO=bar', ' SIZE=-1', ' SIZE='])}`;
      case 1:
        return rng.pick([`MAIL FROM:<>`, `MAIL FROM:${me}`, 'MAIL FROM:<a@b', 'MAIL FROM: <x@autre.example>', `mail from:<${me.toUpperCase()}>`, 'MAIL FROM:<"a b"@x.example>', 'MAIL', `MAIL FROM:<${'a'.repeat(300)}@x.example>`]);
      case 2:
      case 3:
        return `RCPT TO:<${to}>${rng.pick(['', '', ' NOTIFY=SUCCESS,FAILURE', ' NOTIFY=NEVER', ' ORCPT=rfc822;x@y', ' NOTIFY=BOGUS', ' X=Y'])}`;
      case 4:
        return rng.pick(['RCPT TO:<postmaster>', 'RCPT TO:<nobody@autre.example>', 'RCPT TO:<>', 'RCPT TO:x', 'RCPT TO:<a@b@c>', `RCPT TO:<${'z'.repeat(70)}@${this.locals[0]!.split('@')[1]}>`, 'RCPT']);
      case 5:
        return rng.pick(['RSET', 'NOOP', 'NOOP x', 'HELP', 'VRFY x', 'EXPN list', 'EHLO fuzz.test', 'HELO fuzz.test', 'EHLO', 'HELO']);
      case 6:
        return rng.pick(['BDAT 10 LAST', 'TURN', 'ETRN x', 'XCLIENT ADDR=1.2.3.4', 'AUTH FOO', 'STARTTLS', 'DATA x', '', ' ', 'QUI']);
      case 7:
        return `${rng.pick(['MAIL FROM:<', 'RCPT TO:<', 'NOOP ', 'X'])}${rng.pick(['\0', '\x80\xff', 'é', '\x01\x7f', '\t'])}${rng.pick(['>', '', 'a@b>'])}`;
      case 8:
        return 'NOOP ' + 'a'.repeat(rng.pick([100, 600, 5000]));
      case 9: {
        let s = '';
        const n = rng.range(1, 40);
        for (let i = 0; i < n; i++) {
          const c = rng.int(256);
          s += c === 10 || c === 13 ? 'x' : String.fromCharCode(c);
        }
        return s;
      }
      default:
        return authed ? 'DATA' : rng.pick(['DATA', 'NOOP']);
    }
  }

  private body(rng: Rng, token: string): Buffer {
    const me = this.senders[0]!;
    const eol = () => rng.pick(['\r\n', '\r\n', '\n', '\r', '\r\n']);
    let s = `From: ${me}${eol()}To: ${this.locals[0]}${eol()}Subject: compte rendu ${token}${eol()}Message-ID: <${token}@fuzz.test>${eol()}`;
    if (rng.bool(0.2)) s += `X-Odd:${rng.pick(['\0', '\x80', ' \t', 'é'])}${eol()}`;
    s += eol();
    const n = rng.range(0, 20);
    for (let i = 0; i < n; i++) {
      s += rng.pick(['Bonjour,', 'résultats', '\0\0', '\x80\xfe', '.', '..', 'a'.repeat(rng.pick([10, 998, 3000])), '=', '-- ', '', 'x\r.\rx', '.\r', '\r.', 'QUIT', 'RSET', 'MAIL FROM:<a@b>', '\xef\xbb\xbfBOM', '\t\x0b\x0c']) + eol();
    }
    s += `token ${token}`;
    // dot-stuffing after every LF (smtp-server removes a dot that follows LF); CRLF "." CRLF ends DATA
    s = s.replace(/\n\./g, '\n..');
    return Buffer.from(s, 'latin1');
  }

  private async connect(): Promise<Client> {
    const socket = net.connect(this.mode === 'mx' ? this.op.ports.mx : this.op.ports.submission, '127.0.0.1');
    return new Client(socket);
  }

  private async starttls(c: Client, client?: { cert: string; key: string }): Promise<void> {
    c.detach();
    const s = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const t = tls.connect({ socket: c.socket, ca: this.ca, servername: 'localhost', ...(client ?? {}) }, () => resolve(t));
      t.once('error', reject);
    });
    c.closed = false;
    c.attach(s);
  }

  /** One session; throws FuzzFailure when a property does not hold. */
  async iteration(iseed: number, stats: SmtpStats): Promise<void> {
    const rng = new Rng(iseed);
    stats.iterations++;
    stats.sessions++;
    const log: string[] = [];
    const fail = (m: string): never => {
      throw new FuzzFailure(`${m}; session so far: ${JSON.stringify(log.slice(-12))}`, iseed);
    };
    const c = await this.connect();
    const count = (r: string | null) => {
      const k = r === null ? 'closed' : r.slice(0, 3);
      stats.replies[k] = (stats.replies[k] ?? 0) + 1;
    };
    const send = async (line: string | Buffer): Promise<string | null> => {
      log.push(typeof line === 'string' ? line.slice(0, 120) : `<${line.length} bytes>`);
      stats.commands++;
      c.write(typeof line === 'string' ? Buffer.from(line + '\r\n', 'latin1') : line);
      let r: string | null;
      try {
        r = await c.reply();
      } catch (e) {
        return fail(`${(e as Error).message} to ${JSON.stringify(log[log.length - 1])}`);
      }
      count(r);
      log.push(`→ ${r}`);
      return r;
    };
    try {
      const greeting = await c.reply().catch((e: Error) => fail(`greeting: ${e.message}`));
      if (greeting === null || !greeting.startsWith('220')) fail(`bad greeting ${greeting}`);
      if ((await send('EHLO fuzz.test')) === null) return;
      for (let k = rng.int(3); k > 0; k--) if ((await send(this.command(rng, false))) === null) return void stats.closedByServer++;
      let authed = false;
      let trusted = false; // may send: AUTH succeeded, or the peer operator's certificate (MX)
      if (rng.bool(0.9)) {
        const r = await send('STARTTLS');
        if (r === null) return void stats.closedByServer++;
        if (r.startsWith('220')) {
          const client = this.mode === 'mx' ? this.clientCertificate(rng) : undefined;
          await this.starttls(c, client);
          if ((await send('EHLO fuzz.test')) === null) return void stats.closedByServer++;
          if (this.mode === 'mx') {
            // No AUTH between operators: the certificate is the identity (trust/ judges it at MAIL).
            authed = !!client;
            trusted = client?.cert === this.peerChain;
          } else {
            const a = await send(`AUTH PLAIN ${Buffer.from(`\0${this.user.login}\0${this.user.appPassword}`).toString('base64')}`);
            if (a === null) return void stats.closedByServer++;
            authed = a.startsWith('235');
            if (!authed) fail(`AUTH PLAIN refused: ${a}`);
            trusted = true;
          }
        }
      }
      const steps = rng.range(1, 14);
      for (let k = 0; k < steps; k++) {
        // a valid transaction now and then, so that DATA is reached
        const line = authed && rng.bool(0.15) ? `MAIL FROM:<${this.senders[0]}>` : authed && rng.bool(0.15) ? `RCPT TO:<${rng.pick(this.locals)}>` : this.command(rng, authed);
        const r = await send(line);
        if (r === null) return void stats.closedByServer++;
        // 354 opens DATA, also for "DATA x": smtp-server ignores text after DATA (RFC 5321 §4.1.1.4 has none)
        if (!r.startsWith('354')) continue;
        const token = `fz${iseed.toString(36)}x${k}`;
        const body = this.body(rng, token);
        if (rng.bool(0.15)) {
          // cut off mid-DATA: the client goes away
          c.write(body.subarray(0, rng.int(body.length + 1)));
          this.notStored.add(token);
          stats.dataCut++;
          c.socket.destroy();
          return;
        }
        const end = await send(Buffer.concat([body, Buffer.from('\r\n.\r\n')]));
        if (end === null) {
          this.notStored.add(token);
          return void stats.closedByServer++;
        }
        if (end.startsWith('250')) {
          if (!trusted) fail(`a session without ${this.mode === 'mx' ? "the peer operator's certificate" : 'AUTH'} got DATA ${token} accepted: ${end}`);
          this.accepted.add(token);
          stats.dataAccepted++;
        } else {
          this.notStored.add(token);
          stats.dataRefused++;
        }
      }
      await send('QUIT');
    } finally {
      c.socket.destroy();
    }
    // the server still greets a new connection
    const probe = await this.connect();
    try {
      const g = await probe.reply().catch((e: Error) => fail(`after the session, a new connection: ${e.message}`));
      if (g === null || !g.startsWith('220')) fail(`after the session, a new connection got ${g}`);
    } finally {
      probe.socket.destroy();
    }
  }

  // ---- Stream mode: many iterations per long-lived session ----------------------------------
  // An iteration is RSET (the separator) and then a mutated command sequence on a session that
  // stays open: a transaction (MAIL with odd parameters, RCPTs, DATA with a body of bare LF,
  // bare CR, NULs, 8-bit bytes) with noise commands in between, or a random sequence (unknown
  // verbs, NULs, 8-bit, long lines, VRFY, HELP, RSET, NOOP, BDAT — smtp-server does not offer
  // CHUNKING, RFC 3030, so BDAT must be refused like any unknown verb). A session is opened
  // as in the per-session mode (greeting, EHLO, 0–2 commands before STARTTLS, STARTTLS with the
  // certificate of the mode, AUTH PLAIN on submission; now and then no STARTTLS) and replaced
  // when the server closes it (421 after ten unrecognised commands, 421 after ten
  // unauthenticated ones), when an iteration cuts the connection (cutRate), and every
  // sessionIterations iterations. Each new connection must be greeted (the server survived).

  /** Opens a session; `trusted`: it may send (AUTH succeeded / the peer operator's certificate). */
  private async openSession(rng: Rng, stats: SmtpStats, x: Exchange): Promise<{ c: Client; trusted: boolean } | null> {
    stats.sessions++;
    const c = await this.connect();
    x.c = c;
    const greeting = await c.reply().catch((e: Error) => x.fail(`greeting of a new session: ${e.message}`));
    if (greeting === null || !greeting.startsWith('220')) x.fail(`a new session got ${greeting} instead of a 220 greeting`);
    if ((await x.send('EHLO fuzz.test')) === null) return null;
    for (let k = rng.int(3); k > 0; k--) if ((await x.send(this.command(rng, false))) === null) return null;
    if (x.tls) {
      // a random STARTTLS above was answered 220 and the handshake is done
    } else if (rng.bool(0.05)) {
      return { c, trusted: false };
    } else {
      const r = await x.send('STARTTLS', { upgrade: false });
      if (r === null) return null;
      if (!r.startsWith('220')) x.fail(`STARTTLS refused: ${r}`);
      const client = this.mode === 'mx' ? this.clientCertificate(rng) : undefined;
      await this.starttls(c, client);
      x.tls = true;
      if (this.mode === 'mx' && !client) x.tlsAnonymous = true;
      if (this.mode === 'mx') x.peerCert = client?.cert === this.peerChain;
    }
    if ((await x.send('EHLO fuzz.test')) === null) return null;
    if (this.mode === 'mx') return { c, trusted: x.peerCert };
    if (!x.tls) return { c, trusted: false };
    const a = await x.send(`AUTH PLAIN ${Buffer.from(`\0${this.user.login}\0${this.user.appPassword}`).toString('base64')}`);
    if (a === null) return null;
    if (!a.startsWith('235')) x.fail(`AUTH PLAIN refused: ${a}`);
    return { c, trusted: true };
  }

  /** One iteration on an open session; false when the session is over (closed by either side). */
  private async streamIteration(i: number, rng: Rng, trusted: boolean, cutRate: number, stats: SmtpStats, x: Exchange): Promise<boolean> {
    stats.iterations++;
    const cut = rng.bool(cutRate);
    // RFC 5321 §4.1.1.5: RSET clears the transaction; smtp-server answers it 250 whatever the state.
    const r0 = await x.send('RSET');
    if (r0 === null || r0.startsWith('421')) return void stats.closedByServer++, false; // 421: the server closes (RFC 5321 §3.8)
    if (!r0.startsWith('250')) x.fail(`RSET answered ${r0}`);
    const noise = () => (rng.bool(0.3) ? [this.command(rng, trusted)] : []);
    const lines: string[] = [];
    if (rng.bool(0.45)) {
      // a transaction, mostly valid, mutated
      lines.push(...noise(), rng.bool(0.8) ? `MAIL FROM:<${rng.pick(this.senders)}>${rng.pick(['', '', ' BODY=8BITMIME', ' SIZE=2000', ' SMTPUTF8', ' BODY=7BIT', ' RET=FULL ENVID=fz', ' SIZE=abc', ' X=Y'])}` : this.command(rng, trusted));
      for (let n = rng.range(1, 3); n > 0; n--) lines.push(...noise(), rng.bool(0.85) ? `RCPT TO:<${rng.pick(this.locals)}>${rng.pick(['', '', ' NOTIFY=SUCCESS', ' NOTIFY=NEVER', ' ORCPT=rfc822;' + rng.pick(this.locals)])}` : this.command(rng, trusted));
      lines.push(...noise(), rng.pick(['DATA', 'DATA', 'DATA', 'DATA', 'data', 'DATA x', 'BDAT 100 LAST', 'BDAT 0']));
    } else {
      for (let n = rng.range(1, 6); n > 0; n--) lines.push(this.command(rng, trusted));
    }
    for (let k = 0; k < lines.length; k++) {
      const r = await x.send(lines[k]!);
      if (r === null) return void stats.closedByServer++, false;
      if (!r.startsWith('354')) continue;
      const token = `fz${i.toString(36)}x${k}`;
      const body = this.body(rng, token);
      if (cut) {
        // the client goes away in the middle of DATA
        x.c!.write(body.subarray(0, rng.int(body.length + 1)));
        this.notStored.add(token);
        stats.dataCut++;
        stats.cut++;
        x.c!.socket.destroy();
        return false;
      }
      const end = await x.send(Buffer.concat([body, Buffer.from('\r\n.\r\n')]));
      if (end === null) {
        this.notStored.add(token);
        return void stats.closedByServer++, false;
      }
      if (end.startsWith('250')) {
        if (!trusted) x.fail(`a session without ${this.mode === 'mx' ? "the peer operator's certificate" : 'AUTH'} got DATA ${token} accepted: ${end}`);
        this.accepted.add(token);
        stats.dataAccepted++;
      } else {
        this.notStored.add(token);
        stats.dataRefused++;
      }
    }
    if (cut) {
      // the client goes away in the middle of a command line
      x.c!.write(Buffer.from(this.command(rng, trusted).slice(0, rng.range(0, 20)), 'latin1'));
      stats.cut++;
      x.c!.socket.destroy();
      return false;
    }
    return true;
  }

  /**
   * Runs `iterations` iterations (run seed `seed`) over `opts.concurrency` long-lived sessions at
   * once; throws FuzzFailure (with the worker and the first iteration of the failing session,
   * which `opts.only` replays) when a property does not hold. Then a new connection is greeted.
   */
  async stream(seed: number, iterations: number, stats: SmtpStats, opts: StreamOptions = DEFAULT_STREAM): Promise<void> {
    let done = 0;
    let failed = false; // the first failure stops every worker, so that check() sees a quiet server
    const worker = async (w: number, from: number, to: number) => {
      let session: { c: Client; trusted: boolean } | null = null;
      let ran = 0;
      let first = from;
      let x: Exchange | null = null;
      try {
        let failedOpens = 0;
        for (let i = from; i < to && !failed && !opts.stop?.(); ) {
          const iseed = iterationSeed(seed, i);
          if (session && (session.c.closed || ran >= opts.sessionIterations)) {
            if (!session.c.closed) await x!.send('QUIT');
            session.c.socket.destroy();
            session = null;
          }
          if (!session) {
            first = i;
            ran = 0;
            x = new Exchange(stats, (at) => `worker ${w} of ${opts.concurrency}, session opened at iteration ${first} (replay: --concurrency ${opts.concurrency} --replay ${w}:${first}:${at ?? first})`, (c) => this.starttls(c));
            // the session's own randomness, from its first iteration's seed
            session = await this.openSession(new Rng((iseed ^ 0x5e55 ^ Math.imul(failedOpens, 0x9e3779b1)) >>> 0), stats, x);
            if (!session) {
              // closed while opening (e.g. 421 after random commands): this iteration runs on the next one
              stats.closedByServer++;
              if (++failedOpens >= 20) x.fail('the server closed 20 new sessions in a row before they were ready');
              continue;
            }
            failedOpens = 0;
            if (!session.trusted) stats.untrustedSessions++;
          }
          x!.iteration = { index: i, seed: iseed };
          ran++;
          const open = await this.streamIteration(i, new Rng(iseed), session.trusted, opts.cutRate, stats, x!);
          if (!open) {
            session.c.socket.destroy();
            session = null;
          }
          opts.progress?.(++done);
          i += opts.concurrency;
        }
        if (session && !session.c.closed) await x!.send('QUIT');
      } finally {
        session?.c.socket.destroy();
      }
    };
    const run = (w: number, from: number, to: number) =>
      worker(w, from, to).catch((e: unknown) => {
        failed = true;
        throw e;
      });
    const results = await Promise.allSettled(opts.only ? [run(opts.only.worker, opts.only.from, opts.only.to + 1)] : Array.from({ length: opts.concurrency }, (_, w) => run(w, w, iterations)));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
    // the server still greets a new connection
    stats.sessions++;
    const probe = await this.connect();
    try {
      const g = await probe.reply();
      if (g === null || !g.startsWith('220')) throw new Error(`after the run, a new connection got ${g}`);
    } finally {
      probe.socket.destroy();
    }
  }

  /** After the sessions: rows reference readable blobs; accepted DATA stored, the rest not. */
  async check(): Promise<{ rows: number }> {
    // submissions are delivered before the 250; give the per-message work a moment anyway
    await new Promise((r) => setTimeout(r, 200));
    const rows = sqliteDb(this.op).prepare('SELECT blob_id FROM messages').all() as { blob_id: string }[];
    const stored = new Set<string>();
    for (const { blob_id } of rows) {
      let raw: Buffer;
      try {
        raw = await this.op.blobs.read(blob_id);
      } catch (e) {
        throw new Error(`message row references blob ${blob_id}, which cannot be read: ${(e as Error).message}`);
      }
      for (const m of raw.toString('latin1').matchAll(/token (fz[0-9a-z]+x\d+)/g)) stored.add(m[1]!);
    }
    for (const t of this.accepted) if (!stored.has(t)) throw new Error(`DATA ${t} was accepted (250) but no stored message holds it`);
    for (const t of this.notStored) if (stored.has(t)) throw new Error(`DATA ${t} was refused or cut off, yet a stored message holds it`);
    // A DATA cut off by the client must not leave its half-written file (nor its descriptor)
    // behind: the put sees the connection's end and removes its temporary file.
    const tmp = path.join(fileBlobs(this.op).dir, 'tmp');
    for (let waited = 0; readdirSync(tmp).length > 0; waited += 100) {
      if (waited >= 10_000) throw new Error(`half-written message files left in ${tmp}: ${readdirSync(tmp).join(', ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { rows: rows.length };
  }
}
