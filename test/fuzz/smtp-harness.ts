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
import { sqliteDb, tempDir, testLogger } from '../helpers.js';
import { FuzzFailure, Rng } from './rng.js';

export interface SmtpStats {
  iterations: number;
  commands: number;
  replies: Record<string, number>;
  dataAccepted: number;
  dataRefused: number;
  dataCut: number;
  closedByServer: number;
}

export function newSmtpStats(): SmtpStats {
  return { iterations: 0, commands: 0, replies: {}, dataAccepted: 0, dataRefused: 0, dataCut: 0, closedByServer: 0 };
}

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
    const content = { maxRecipientsPerMessage: 1000, maxRecipientsPerDay: 1_000_000 };
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
      s += rng.pick(['Bonjour,', 'résultats', '\0\0', '\x80\xfe', '.', '..', 'a'.repeat(rng.pick([10, 998, 3000])), '=', '-- ', '']) + eol();
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
          } else {
            const a = await send(`AUTH PLAIN ${Buffer.from(`\0${this.user.login}\0${this.user.appPassword}`).toString('base64')}`);
            if (a === null) return void stats.closedByServer++;
            authed = a.startsWith('235');
            if (!authed) fail(`AUTH PLAIN refused: ${a}`);
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
    const tmp = path.join(this.op.blobs.dir, 'tmp');
    for (let waited = 0; readdirSync(tmp).length > 0; waited += 100) {
      if (waited >= 10_000) throw new Error(`half-written message files left in ${tmp}: ${readdirSync(tmp).join(', ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { rows: rows.length };
  }
}
