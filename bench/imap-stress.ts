// IMAP stress: many clients doing an imaptest-like mix of commands against one mailbox for a
// fixed time, against Caducée (operator A of a demo space, in a child process) and, when
// Debian's Dovecot is installed, against a private Dovecot (test/peers/dovecot.ts).
//
//   node --import tsx bench/imap-stress.ts [--clients N] [--duration S] [--messages M]
//                                          [--target caducee|dovecot|both] [--server-nodelay]
//                                          [--cpu-prof DIR] [--json]
//
// This file also exports the IMAP pieces the other IMAP benchmarks share (bench/imap-bigfolder.ts,
// bench/imap-idle.ts): RawImap (a lean pipelining IMAP client), startCaducee (the demo server in a
// child process), more /proc readers and report helpers; what every benchmark shares is in
// bench/common.ts. See bench/README.md.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { DemoLayout } from '../src/demo/space.js';
import { prng } from '../src/directory/generate.js';
import {
  REPO,
  benchDir,
  cleanupAll,
  clientCpuMs,
  commandLine,
  dovecotInstalled,
  dovecotTargetOption,
  dovecotTargets,
  installSignalHandlers,
  intOption,
  onCleanup,
  otherCpus,
  parseArgsOrUsage,
  percentile,
  procCpuMs,
  snapshotProcesses,
  treeCpuMs,
  treePids,
} from './common.js';


// ---- a lean IMAP client ------------------------------------------------------------------------

export interface ImapReply {
  tag: string;
  status: 'OK' | 'NO' | 'BAD';
  /** The tagged line after the status. */
  text: string;
  /** Untagged responses received while this command was the oldest in flight (when kept). */
  untagged: string[];
  /** How many untagged responses that was (counted even when not kept). */
  untaggedCount: number;
  /** Literal bytes in those responses. */
  literalBytes: number;
  /** Milliseconds from writing the command to its tagged reply. */
  ms: number;
}

interface Pending {
  tag: string;
  start: number;
  keep: boolean;
  untagged: string[];
  untaggedCount: number;
  literalBytes: number;
  resolve: (r: ImapReply) => void;
  reject: (e: Error) => void;
}

export interface RawImapOptions {
  host?: string;
  port: number;
  /** Implicit TLS (IMAPS); plain TCP otherwise (no STARTTLS: the benchmarks use IMAPS). */
  tls: boolean;
  /** CA certificate(s) (PEM) to verify the server with. */
  ca?: string | Buffer;
  servername?: string;
  timeoutMs?: number;
  /** Tag prefix (default "a"). */
  tagPrefix?: string;
}

/**
 * A minimal IMAP client for load generation: writes commands as given (pipelining allowed;
 * literals must be LITERAL+ `{n+}`), matches tagged replies, skips literal data in responses
 * (counting its bytes) and hands untagged lines to `onUntagged` and to the oldest command in
 * flight. No parsing beyond that: cheap enough to measure the server, not the client.
 */
export class RawImap {
  onUntagged?: (line: string) => void;
  onContinuation?: (line: string) => void;
  onClose?: (err?: Error) => void;
  closed = false;
  private socket!: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private literalLeft = 0;
  private partial = '';
  private partialLiteralBytes = 0;
  private seq = 0;
  private readonly pending: Pending[] = [];
  private readonly byTag = new Map<string, Pending>();
  private greetingWaiter?: { resolve: (l: string) => void; reject: (e: Error) => void };
  private readonly tagPrefix: string;

  private constructor(tagPrefix: string) {
    this.tagPrefix = tagPrefix;
  }

  /** Connects and waits for the greeting. */
  static connect(o: RawImapOptions): Promise<{ client: RawImap; greeting: string }> {
    const c = new RawImap(o.tagPrefix ?? 'a');
    return new Promise((resolve, reject) => {
      const timeoutMs = o.timeoutMs ?? 30_000;
      const timer = setTimeout(() => {
        c.socket?.destroy();
        reject(new Error(`no IMAP greeting from ${o.host ?? '127.0.0.1'}:${o.port} within ${timeoutMs} ms`));
      }, timeoutMs);
      c.greetingWaiter = {
        resolve: (l) => {
          clearTimeout(timer);
          resolve({ client: c, greeting: l });
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const host = o.host ?? '127.0.0.1';
      c.socket = o.tls ? tls.connect({ host, port: o.port, ca: o.ca, servername: o.servername ?? 'localhost', minVersion: 'TLSv1.2', noDelay: true } as tls.ConnectionOptions) : net.connect({ port: o.port, host, noDelay: true });
      c.socket.setNoDelay(true);
      c.socket.on('data', (d: Buffer) => c.onData(d));
      c.socket.on('error', (e) => c.fail(e));
      c.socket.on('close', () => c.fail(new Error('connection closed')));
    });
  }

  private fail(e: Error) {
    if (this.closed) return;
    this.closed = true;
    this.greetingWaiter?.reject(e);
    this.greetingWaiter = undefined;
    for (const p of this.pending) p.reject(e);
    this.pending.length = 0;
    this.byTag.clear();
    this.onClose?.(e);
  }

  /** Sends one command (`text` without tag and CRLF; a Buffer part is written as is). */
  command(text: string | (string | Buffer)[], opts: { keep?: boolean } = {}): Promise<ImapReply> {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    const tag = `${this.tagPrefix}${++this.seq}`;
    const p = new Promise<ImapReply>((resolve, reject) => {
      const entry: Pending = { tag, start: performance.now(), keep: opts.keep ?? true, untagged: [], untaggedCount: 0, literalBytes: 0, resolve, reject };
      this.pending.push(entry);
      this.byTag.set(tag, entry);
    });
    if (typeof text === 'string') this.socket.write(`${tag} ${text}\r\n`);
    else {
      this.socket.cork();
      this.socket.write(`${tag} `);
      for (const part of text) this.socket.write(part);
      this.socket.write('\r\n');
      this.socket.uncork();
    }
    return p;
  }

  /** Writes a raw line (e.g. DONE to end IDLE). */
  writeLine(line: string) {
    if (!this.closed) this.socket.write(line + '\r\n');
  }

  get inFlight(): number {
    return this.pending.length;
  }

  /** LOGOUT, then close (never throws). */
  async logout(): Promise<void> {
    if (this.closed) return;
    await Promise.race([this.command('LOGOUT').catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);
    this.destroy();
  }

  destroy() {
    this.socket?.destroy();
    this.closed = true;
  }

  private onData(chunk: Buffer) {
    this.buf = this.pos < this.buf.length ? Buffer.concat([this.buf.subarray(this.pos), chunk]) : chunk;
    this.pos = 0;
    const buf = this.buf;
    for (;;) {
      if (this.literalLeft > 0) {
        const take = Math.min(this.literalLeft, buf.length - this.pos);
        this.literalLeft -= take;
        this.partialLiteralBytes += take;
        this.pos += take;
        if (this.literalLeft > 0) break;
        continue;
      }
      const nl = buf.indexOf('\r\n', this.pos, 'latin1');
      if (nl < 0) break;
      const line = buf.toString('latin1', this.pos, nl);
      this.pos = nl + 2;
      const lit = /\{(\d+)\+?\}$/.exec(line);
      if (lit) {
        // The response goes on after the literal's bytes.
        this.partial += line;
        this.literalLeft = Number(lit[1]);
        continue;
      }
      const full = this.partial + line;
      const literalBytes = this.partialLiteralBytes;
      this.partial = '';
      this.partialLiteralBytes = 0;
      this.onLine(full, literalBytes);
    }
  }

  private onLine(line: string, literalBytes: number) {
    if (this.greetingWaiter) {
      const w = this.greetingWaiter;
      this.greetingWaiter = undefined;
      if (/^\* (OK|PREAUTH)/i.test(line)) w.resolve(line);
      else w.reject(new Error(`unexpected greeting: ${line}`));
      return;
    }
    if (line.startsWith('* ')) {
      const p = this.pending[0];
      if (p) {
        p.untaggedCount++;
        p.literalBytes += literalBytes;
        if (p.keep) p.untagged.push(line);
      }
      this.onUntagged?.(line);
      return;
    }
    if (line.startsWith('+')) {
      this.onContinuation?.(line);
      return;
    }
    const sp = line.indexOf(' ');
    const tag = line.slice(0, sp);
    const p = this.byTag.get(tag);
    if (!p) return;
    this.byTag.delete(tag);
    const i = this.pending.indexOf(p);
    if (i >= 0) this.pending.splice(i, 1);
    const rest = line.slice(sp + 1);
    const status = rest.slice(0, rest.indexOf(' ') < 0 ? undefined : rest.indexOf(' ')).toUpperCase() as ImapReply['status'];
    p.resolve({ tag, status, text: rest.slice(status.length + 1), untagged: p.untagged, untaggedCount: p.untaggedCount, literalBytes: p.literalBytes, ms: performance.now() - p.start });
  }
}

/** An IMAP quoted string. */
export const imapQuote = (s: string) => `"${s.replace(/["\\]/g, (c) => '\\' + c)}"`;

/** LOGIN, throwing unless OK. */
export async function login(c: RawImap, user: string, password: string): Promise<void> {
  const r = await c.command(`LOGIN ${imapQuote(user)} ${imapQuote(password)}`);
  if (r.status !== 'OK') throw new Error(`LOGIN ${user}: ${r.status} ${r.text}`);
}

/** A LITERAL+ APPEND command for RawImap.command. */
export function appendCommand(mailbox: string, raw: Buffer, flags: string[] = []): (string | Buffer)[] {
  return [`APPEND ${imapQuote(mailbox)} (${flags.join(' ')}) {${raw.length}+}\r\n`, raw];
}

// ---- messages ----------------------------------------------------------------------------------

const WORDS = ['compte-rendu', 'consultation', 'cardiologie', 'biologie', 'radiologie', 'ordonnance', 'patient', 'résultats', 'urgent', 'suivi', 'bilan', 'échographie', 'hospitalisation', 'sortie', 'courrier', 'avis'];

/** A small, plausible text message (~`bodyBytes` of body), unique by its Message-ID. */
export function makeMessage(n: number, o: { bodyBytes?: number; subject?: string; tag?: string } = {}): Buffer {
  const words = (k: number) => Array.from({ length: k }, (_, i) => WORDS[(n * 7 + i * 3) % WORDS.length]).join(' ');
  const body: string[] = [];
  let size = 0;
  const target = o.bodyBytes ?? 1500;
  for (let i = 0; size < target; i++) {
    const l = `${words(8)} ${n}.${i}`;
    body.push(l);
    size += l.length + 2;
  }
  return Buffer.from(
    [
      'From: Dr Paul Bernard <paul.bernard@b.mssante.test>',
      'To: Dr Claire Martin <claire.martin@a.mssante.test>',
      `Subject: ${o.subject ?? `${words(3)} ${n}`}`,
      `Message-ID: <${o.tag ?? 'bench'}-${n}-${randomBytes(4).toString('hex')}@bench.test>`,
      `Date: ${new Date(Date.UTC(2024, 0, 1) + n * 60_000).toUTCString().replace('GMT', '+0000')}`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      ...body,
      '',
    ].join('\r\n'),
    'utf8',
  );
}

/**
 * APPENDs `count` messages made by `make(i)` over one connection, `window` commands in flight
 * (LITERAL+, pipelined). Returns the elapsed milliseconds; throws on the first refusal.
 */
export async function fill(c: RawImap, mailbox: string, count: number, make: (i: number) => Buffer, o: { window?: number; progress?: (done: number, ms: number) => void; flags?: (i: number) => string[] } = {}): Promise<number> {
  const window = o.window ?? 32;
  const t0 = performance.now();
  let next = 0;
  let done = 0;
  let failure: Error | undefined;
  await new Promise<void>((resolve, reject) => {
    const launch = () => {
      while (!failure && next < count && c.inFlight < window) {
        const i = next++;
        c.command(appendCommand(mailbox, make(i), o.flags?.(i) ?? []), { keep: false }).then(
          (r) => {
            if (r.status !== 'OK') failure ??= new Error(`APPEND #${i}: ${r.status} ${r.text}`);
            done++;
            if (o.progress && done % 1000 === 0) o.progress(done, performance.now() - t0);
            if (failure) reject(failure);
            else if (done === count) resolve();
            else launch();
          },
          (e: Error) => reject(e),
        );
      }
    };
    if (count === 0) resolve();
    else launch();
  });
  return performance.now() - t0;
}

// ---- the Caducée server in a child process -------------------------------------------------------

export interface CaduceeChild {
  layout: DemoLayout;
  child: ChildProcess;
  pid: number;
  stderrTail: () => string;
  stop: () => Promise<void>;
}

/**
 * stop() of a server child: SIGTERM, then SIGKILL after `killAfterMs`; registered as a cleanup,
 * and the child is killed if this process exits first.
 */
function stopperOf(child: ChildProcess, what: string, killAfterMs: number): () => Promise<void> {
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    await exited;
    clearTimeout(timer);
  };
  onCleanup(what, stop);
  process.on('exit', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return stop;
}

/**
 * `caducee demo --dir DIR --json --ephemeral-ports` in a child process (its own event loop);
 * resolves with the layout it prints once listening (`demoArgs`: more `caducee demo` options,
 * e.g. --postgres URL --nodes N). `nofile` raises the child's open-files
 * limit through prlimit(1) when given. The child is stopped by the returned stop() and by the
 * registered cleanups.
 */
export async function startCaducee(
  dir: string,
  o: { nofile?: number; nodeArgs?: string[]; demoArgs?: string[]; log?: (s: string) => void; startupTimeoutMs?: number } = {},
): Promise<CaduceeChild> {
  const nodeArgs = [...(o.nodeArgs ?? []), '--import', 'tsx', 'src/cli/main.ts', 'demo', '--dir', dir, '--json', '--ephemeral-ports', ...(o.demoArgs ?? [])];
  // The CRL server this process prepared for the layout (prepareDemo, ephemeral ports) holds the
  // port its certificates name: the child serves it instead.
  await (await import('../src/demo/space.js')).releasePreparedDemo(dir);
  let cmd = process.execPath;
  let args = nodeArgs;
  if (o.nofile) {
    cmd = 'prlimit';
    args = [`--nofile=${o.nofile}:${o.nofile}`, '--', process.execPath, ...nodeArgs];
  }
  o.log?.(`  starting: ${cmd === 'prlimit' ? 'prlimit ' + args.slice(0, 2).join(' ') + ' ' : ''}node ${nodeArgs.join(' ')}`);
  const child = spawn(cmd, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-16_384);
  });
  const stop = stopperOf(child, 'stop the Caducée demo child', 10_000);
  // 3 minutes: a 2-core machine shared with other work can take more than one to start the demo.
  const timeoutMs = o.startupTimeoutMs ?? 180_000;
  const layout = await new Promise<DemoLayout>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the Caducée demo printed no layout within ${timeoutMs / 1000} s\n${stderr}`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out.slice(0, nl)) as DemoLayout);
      } catch {
        reject(new Error(`the Caducée demo printed something else than its JSON layout: ${out.slice(0, 200)}`));
      }
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`the Caducée demo exited (${code ?? sig}) before listening\n${stderr}`));
    });
  });
  return { layout, child, pid: child.pid!, stderrTail: () => stderr, stop };
}

const CADUCEE_BIN = path.join(REPO, 'bin/caducee.js');

/** The ports a Caducée process logs in its 'operator started' line (0 or absent: that listener is off). */
export type OperatorPorts = Record<'mx' | 'submission' | 'submissions' | 'http' | 'https' | 'imap' | 'imaps', number>;

/**
 * `caducee start --workers N --config <config>` in a child process (an operator as run in
 * production: node:cluster, the primary handing connections to the workers in turn); resolves
 * once all N workers are up (the primary's 'workers started' line; with N = 1 the single
 * process's 'operator started') with the ports the first worker announced. `pid` is the primary's
 * (with N = 1, the one process's): its process tree is the server.
 */
export async function startWorkers(
  config: string,
  workers: number,
  o: { log?: (s: string) => void; cpuProf?: string; startupTimeoutMs?: number } = {},
): Promise<{ pid: number; ports: OperatorPorts; workerPids: number[]; stderrTail: () => string; stop: () => Promise<void> }> {
  const nodeArgs = o.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProf] : [];
  const timeoutMs = o.startupTimeoutMs ?? 180_000;
  o.log?.(`  starting: node ${nodeArgs.join(' ')}${nodeArgs.length ? ' ' : ''}bin/caducee.js start --workers ${workers} --config ${config}`);
  const child = spawn(process.execPath, [...nodeArgs, CADUCEE_BIN, 'start', '--workers', String(workers), '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let warnings = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-16_384)));
  // The primary gives its workers 20 s to stop.
  const stop = stopperOf(child, 'stop caducee start --workers', 25_000);
  const up = await new Promise<{ ports: OperatorPorts; workerPids: number[] }>((resolve, reject) => {
    let out = '';
    let ports: (OperatorPorts & { pid?: number }) | undefined;
    let done = false;
    const timer = setTimeout(() => reject(new Error(`caducee start --workers ${workers} did not start within ${timeoutMs / 1000} s\n${stderr}`)), timeoutMs);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      out += d;
      for (let i = out.indexOf('\n'); i >= 0; i = out.indexOf('\n')) {
        const line = out.slice(0, i);
        out = out.slice(i + 1);
        let j: { msg?: string; mx?: number; level?: number; pid?: number; pids?: number[] };
        try {
          j = JSON.parse(line);
        } catch {
          continue;
        }
        if (j.msg === 'operator started' && typeof j.mx === 'number') ports = j as unknown as OperatorPorts & { pid?: number };
        if ((j.level ?? 0) >= 40) warnings = (warnings + line + '\n').slice(-16_384);
        // `--workers 1` is a single process (no primary): its 'operator started' line is the signal.
        if (!done && (j.msg === 'workers started' || (workers === 1 && ports !== undefined))) {
          done = true;
          clearTimeout(timer);
          if (ports === undefined) reject(new Error(`caducee start --workers ${workers}: 'workers started' without an 'operator started' line giving the ports`));
          else resolve({ ports, workerPids: j.pids ?? [child.pid!] });
        }
      }
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`caducee start --workers ${workers} exited (${code ?? sig}) before listening\n${stderr}`));
    });
  });
  return { pid: child.pid!, ...up, stderrTail: () => warnings + stderr, stop };
}

/**
 * Node arguments preloading a module, written into `dir`, that sets TCP_NODELAY on every socket
 * the server child accepts: an experiment (not a product change) showing what turning Nagle's
 * algorithm off gains. Caducée's listeners leave it on, so a response written in several
 * pieces (untagged lines, then the tagged line) waits for the client's delayed ACK (~40 ms).
 */
export function nodelayPreload(dir: string): string[] {
  const file = path.join(dir, 'nodelay-preload.mjs');
  writeFileSync(
    file,
    `// bench experiment: TCP_NODELAY on every accepted socket of this process
import net from 'node:net';
const emit = net.Server.prototype.emit;
net.Server.prototype.emit = function (ev, sock, ...rest) {
  if (ev === 'connection' && sock && typeof sock.setNoDelay === 'function') sock.setNoDelay(true);
  return emit.call(this, ev, sock, ...rest);
};
`,
  );
  return ['--import', pathToFileURL(file).href];
}

// ---- /proc -------------------------------------------------------------------------------------

/** A field of /proc/<pid>/status in KiB (VmRSS, VmHWM, …); NaN when unreadable. */
export function procStatusKb(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Open file descriptors of a process (NaN when unreadable). */
export function procFdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

/** "Max open files" soft and hard limits of a process, from /proc/<pid>/limits. */
export function procNofile(pid: number | 'self'): { soft: number; hard: number } {
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  const n = (s: string | undefined) => (s === undefined || s === 'unlimited' ? Infinity : Number(s));
  return { soft: n(m?.[1]), hard: n(m?.[2]) };
}

/** A warning line when other processes used more than 0.1 CPU during a measurement. */
export function disturbance(cpus: number): string {
  return cpus > 0.1 ? ` — WARNING: other processes used ${cpus.toFixed(2)} CPUs meanwhile, figures disturbed` : ` (other processes: ${cpus.toFixed(2)} CPUs)`;
}

// ---- report helpers ----------------------------------------------------------------------------

export const f0 = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en') : '—');
export const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '—');
export const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '—');

/** Left-aligned first column, right-aligned others. */
export function table(rows: string[][], leftColumns = 1): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => '  ' + r.map((cell, c) => (c < leftColumns ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).join('\n');
}

/** Header lines: date, command, node, CPUs, load, memory, kernel. */
export function machineFacts(): string[] {
  const cpus = os.cpus();
  return [
    `  date         ${new Date().toISOString()}`,
    `  command      ${commandLine()}`,
    `  node         ${process.version} (${process.platform} ${process.arch})`,
    `  cpus         ${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown'}; load average ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
    `  memory       ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; ${os.type()} ${os.release()}`,
    `  tmpdir       ${os.tmpdir()} (${fsType(os.tmpdir())})`,
  ];
}

function fsType(dir: string): string {
  try {
    // The longest mount point that is a prefix of dir.
    let best = { mnt: '', type: 'unknown' };
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, mnt, type] = line.split(' ');
      if (mnt && (dir === mnt || dir.startsWith(mnt.endsWith('/') ? mnt : mnt + '/')) && mnt.length > best.mnt.length) best = { mnt, type };
    }
    return `${best.type} on ${best.mnt}`;
  } catch {
    return 'unknown';
  }
}

// ---- the stress mix ----------------------------------------------------------------------------

type Op = 'SELECT' | 'FETCH FLAGS' | 'FETCH ENVELOPE' | 'FETCH BODY.PEEK[]' | 'STORE ±FLAGS' | 'STORE +\\Deleted' | 'EXPUNGE' | 'APPEND' | 'NOOP';

/** Relative weights, roughly imaptest's default mix without IDLE, SEARCH or LOGOUT/LOGIN churn. */
const MIX: [Op, number][] = [
  ['SELECT', 4],
  ['FETCH FLAGS', 18],
  ['FETCH ENVELOPE', 14],
  ['FETCH BODY.PEEK[]', 14],
  ['STORE ±FLAGS', 18],
  ['STORE +\\Deleted', 6],
  ['EXPUNGE', 6],
  ['APPEND', 8],
  ['NOOP', 12],
];
const OPS = MIX.map(([op]) => op);
const MIX_TOTAL = MIX.reduce((n, [, w]) => n + w, 0);

/** An IMAP server under test: where to log in, and how to read its processes' costs. */
export interface ImapTarget {
  name: string;
  port: number;
  ca: string;
  user: string;
  password: string;
  /** CPU ms used so far by the server's processes. */
  serverCpuMs(): number;
  /** Server resident memory (KiB), when measurable (NaN otherwise). */
  serverRssKb(): number;
  /** The server's processes now. */
  serverPids(): Set<number>;
}
type StressTarget = ImapTarget;

/**
 * Starts `which` (Caducée: operator A of a demo space in a child process, logged in as claire
 * with her app password; Dovecot: a private instance) under `base`, runs `fn` against it, stops
 * it. `bench` names the benchmark in the log lines.
 */
export async function withImapTarget<R>(
  bench: string,
  which: string,
  base: string,
  o: { serverNodelay: boolean; cpuProf?: string; encrypt?: boolean; workers?: number },
  log: (s: string) => void,
  fn: (t: ImapTarget) => Promise<R>,
): Promise<R> {
  if (which === 'caducee' && o.workers !== undefined) {
    log(`${bench}: target Caducée, \`caducee start --workers ${o.workers}\``);
    // Operator A alone, as an operator runs it, on a space prepared here (its CRL is served by
    // this process: the space's CRL server, which prepareDemo leaves listening).
    const { prepareDemo, releasePreparedDemo } = await import('../src/demo/space.js');
    const layout = await prepareDemo(path.join(base, 'demo'), { ports: 'ephemeral', patients: false });
    onCleanup('close the CRL server of the prepared space', () => releasePreparedDemo(layout.dir));
    const a = layout.operators[0];
    const claire = a.users[0];
    const srv = await startWorkers(a.config, o.workers, { log, cpuProf: o.cpuProf });
    log(`  worker pids ${srv.workerPids.join(', ')} (primary ${srv.pid}), IMAPS 127.0.0.1:${srv.ports.imaps}`);
    const r = await fn({
      name: `Caducée×${o.workers}`,
      port: srv.ports.imaps,
      ca: readFileSync(layout.caBundle, 'utf8'),
      user: claire.login,
      password: claire.appPassword,
      // The primary and its workers (live ones, and any it reaped).
      serverCpuMs: () => treeCpuMs(srv.pid),
      serverRssKb: () => [...treePids(srv.pid)].reduce((sum, pid) => sum + (procStatusKb(pid, 'VmRSS') || 0), 0),
      serverPids: () => treePids(srv.pid),
    });
    const warnings = srv.stderrTail().split('\n').filter((l) => l.trim() !== '');
    if (warnings.length) log(`  the Caducée child logged ${warnings.length} line(s) at warn or above; last: ${warnings[warnings.length - 1].slice(0, 400)}`);
    await srv.stop();
    return r;
  }
  if (which === 'caducee') {
    log(`${bench}: target Caducée`);
    // The child prepares the layout (`caducee demo --dir`): prepared here, the CRL server on the
    // port the new PKI names would stay in this process (src/demo/space.ts hands it over to a
    // startDemo of the same process only), and the child's would fail with EADDRINUSE.
    const layout0 = { dir: path.join(base, 'demo') };
    const nodeArgs = [...(o.serverNodelay ? nodelayPreload(base) : []), ...(o.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProf] : [])];
    const srv = await startCaducee(layout0.dir, { log, nodeArgs, demoArgs: o.encrypt ? ['--encrypt'] : [] });
    const a = srv.layout.operators[0];
    const claire = a.users[0];
    const r = await fn({
      name: (o.serverNodelay ? 'Caducée+NODELAY' : 'Caducée') + (o.encrypt ? '+enc' : ''),
      port: a.ports.imaps,
      ca: readFileSync(srv.layout.caBundle, 'utf8'),
      user: claire.login,
      password: claire.appPassword,
      serverCpuMs: () => procCpuMs(srv.pid),
      serverRssKb: () => procStatusKb(srv.pid, 'VmRSS'),
      serverPids: () => new Set([srv.pid]),
    });
    const warnings = srv.stderrTail().split('\n').filter((l) => l.trim() !== '');
    if (warnings.length) log(`  the Caducée child logged ${warnings.length} line(s) at warn or above; last: ${warnings[warnings.length - 1].slice(0, 400)}`);
    await srv.stop();
    return r;
  }
  log(`${bench}: target Dovecot`);
  const { DovecotPeer } = await import('../test/peers/dovecot.js');
  const peer = await DovecotPeer.start({ dir: path.join(base, 'dovecot') });
  onCleanup('stop Dovecot', () => peer.stop());
  const masterPid = Number(readFileSync(path.join(peer.dir, 'run', 'master.pid'), 'utf8').trim());
  const r = await fn({ name: 'Dovecot', port: peer.port, ca: peer.certPem, user: 'claire', password: peer.password, serverCpuMs: () => treeCpuMs(masterPid), serverRssKb: () => NaN, serverPids: () => treePids(masterPid) });
  await peer.stop();
  return r;
}

interface StressResult {
  target: string;
  clients: number;
  seconds: number;
  seedMessages: number;
  seedMs: number;
  finalMessages: number;
  byOp: Record<string, { n: number; no: number; bad: number; lat: number[] }>;
  errors: Record<string, number>;
  connectionsLost: number;
  serverCpuMs: number;
  clientCpuMs: number;
  /** Average CPUs used by other processes during the run (a lower bound). */
  otherCpus: number;
}

/** Deterministic pseudo-random numbers (mulberry32), so both targets get the same sequence of operations. */
const rng = prng;

async function runStress(t: StressTarget, o: { clients: number; seconds: number; messages: number }, log: (s: string) => void): Promise<StressResult> {
  const connect = async (label: string) => {
    const { client } = await RawImap.connect({ port: t.port, tls: true, ca: t.ca, servername: 'localhost', tagPrefix: label });
    await login(client, t.user, t.password);
    return client;
  };
  // Seed the mailbox.
  const seeder = await connect('s');
  let seq = 0;
  const seedMs = await fill(seeder, 'INBOX', o.messages, (i) => makeMessage(i, { tag: 'seed' }), { window: 16, flags: (i) => (i % 2 ? ['\\Seen'] : []) });
  log(`  ${t.name}: seeded ${o.messages} messages in ${(seedMs / 1000).toFixed(1)} s (${f1((o.messages * 1000) / seedMs)} APPEND/s, 16 in flight)`);
  await seeder.logout();

  const result: StressResult = {
    target: t.name,
    clients: o.clients,
    seconds: o.seconds,
    seedMessages: o.messages,
    seedMs,
    finalMessages: 0,
    byOp: Object.fromEntries(OPS.map((op) => [op, { n: 0, no: 0, bad: 0, lat: [] as number[] }])),
    errors: {},
    connectionsLost: 0,
    serverCpuMs: 0,
    clientCpuMs: 0,
    otherCpus: 0,
  };
  const noteError = (op: string, r: ImapReply) => {
    const key = `${op}: ${r.status} ${r.text.replace(/\d+/g, 'N').slice(0, 120)}`;
    result.errors[key] = (result.errors[key] ?? 0) + 1;
  };

  // Connect, log in and select everyone before the clock starts.
  const sessions = await Promise.all(
    Array.from({ length: o.clients }, async (_, k) => {
      const c = await connect(`c${k}x`);
      const s = { c, exists: 0, random: rng(1000 + k) };
      c.onUntagged = (line) => {
        const m = /^\* (\d+) (EXISTS|EXPUNGE)\b/i.exec(line);
        if (!m) return;
        if (m[2].toUpperCase() === 'EXISTS') s.exists = Number(m[1]);
        else s.exists--;
      };
      const r = await c.command('SELECT INBOX', { keep: false });
      if (r.status !== 'OK') throw new Error(`SELECT: ${r.status} ${r.text}`);
      return s;
    }),
  );
  log(`  ${t.name}: ${o.clients} clients logged in and selected; running the mix for ${o.seconds} s…`);

  const cpu0 = t.serverCpuMs();
  const client0 = clientCpuMs();
  const snap0 = snapshotProcesses();
  const t0 = performance.now();
  const deadline = t0 + o.seconds * 1000;
  await Promise.all(
    sessions.map(async (s) => {
      const { c, random } = s;
      const pick = (): Op => {
        let x = random() * MIX_TOTAL;
        for (const [op, w] of MIX) if ((x -= w) < 0) return op;
        return 'NOOP';
      };
      const range = (len: number) => {
        const a = 1 + Math.floor(random() * s.exists);
        const b = Math.min(s.exists, a + len - 1);
        return a === b ? `${a}` : `${a}:${b}`;
      };
      while (performance.now() < deadline && !c.closed) {
        let op = pick();
        if (s.exists === 0 && !['SELECT', 'APPEND', 'NOOP', 'EXPUNGE'].includes(op)) op = 'APPEND';
        let cmd: string | (string | Buffer)[];
        switch (op) {
          case 'SELECT':
            cmd = 'SELECT INBOX';
            break;
          case 'FETCH FLAGS':
            cmd = `FETCH ${range(10)} (FLAGS)`;
            break;
          case 'FETCH ENVELOPE':
            cmd = `FETCH ${range(5)} (UID ENVELOPE)`;
            break;
          case 'FETCH BODY.PEEK[]':
            cmd = `FETCH ${range(1)} (UID BODY.PEEK[])`;
            break;
          case 'STORE ±FLAGS': {
            const flag = random() < 0.6 ? '\\Seen' : '\\Flagged';
            cmd = `STORE ${range(5)} ${random() < 0.5 ? '+' : '-'}FLAGS (${flag})`;
            break;
          }
          case 'STORE +\\Deleted':
            cmd = `STORE ${range(1)} +FLAGS.SILENT (\\Deleted)`;
            break;
          case 'EXPUNGE':
            cmd = 'EXPUNGE';
            break;
          case 'APPEND':
            cmd = appendCommand('INBOX', makeMessage(o.messages + ++seq, { tag: 'stress' }));
            break;
          default:
            cmd = 'NOOP';
        }
        if (op === 'SELECT') s.exists = 0; // the SELECT's EXISTS sets it again
        let r: ImapReply;
        try {
          r = await c.command(cmd, { keep: false });
        } catch (e) {
          result.connectionsLost++;
          result.errors[`${op}: ${(e as Error).message}`] = (result.errors[`${op}: ${(e as Error).message}`] ?? 0) + 1;
          break;
        }
        const stats = result.byOp[op];
        stats.n++;
        stats.lat.push(r.ms);
        if (r.status !== 'OK') {
          if (r.status === 'NO') stats.no++;
          else stats.bad++;
          noteError(op, r);
        }
      }
    }),
  );
  const wallMs = performance.now() - t0;
  result.seconds = wallMs / 1000;
  result.serverCpuMs = t.serverCpuMs() - cpu0;
  result.clientCpuMs = clientCpuMs() - client0;
  result.otherCpus = otherCpus(snap0, snapshotProcesses(), new Set([process.pid, ...t.serverPids()]), wallMs);
  const probe = sessions.find((s) => !s.c.closed);
  if (probe) {
    const r = await probe.c.command('STATUS INBOX (MESSAGES)');
    result.finalMessages = Number(/MESSAGES (\d+)/.exec(r.untagged.join(' '))?.[1] ?? NaN);
  }
  await Promise.all(sessions.map((s) => s.c.logout()));
  return result;
}

// ---- main --------------------------------------------------------------------------------------

interface Options {
  clients: number;
  seconds: number;
  messages: number;
  targets: ('caducee' | 'dovecot')[];
  serverNodelay: boolean;
  cpuProf?: string;
  json: boolean;
  /** `caducee demo --encrypt`: message files encrypted at rest. */
  encrypt: boolean;
}

function usage(msg: string): never {
  process.stderr.write(`imap-stress: ${msg}\nusage: node --import tsx bench/imap-stress.ts [--clients N] [--duration S] [--messages M] [--target caducee|dovecot|both] [--server-nodelay] [--cpu-prof DIR] [--encrypt] [--json]\n`);
  process.exit(2);
}

async function parseOptions(argv: string[]): Promise<Options> {
  const v = parseArgsOrUsage(
    argv,
    {
      clients: { type: 'string', default: '20' },
      duration: { type: 'string', default: '20' },
      messages: { type: 'string', default: '1000' },
      target: { type: 'string' },
      'server-nodelay': { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      json: { type: 'boolean', default: false },
      encrypt: { type: 'boolean', default: false },
    },
    usage,
  );
  const int = intOption(usage);
  const haveDovecot = await dovecotInstalled();
  const target = dovecotTargetOption(v.target, haveDovecot, usage);
  if (target !== 'caducee' && !haveDovecot) usage('Dovecot is not installed (Debian: dovecot-imapd; .ci/run installs it)');
  if (target !== 'caducee' && process.getuid?.() !== 0) usage('Dovecot runs as root here (test/peers/dovecot.ts): run as root or use --target caducee');
  return {
    clients: int(v.clients!, 'clients', 1, 500),
    seconds: int(v.duration!, 'duration', 1, 600),
    messages: int(v.messages!, 'messages', 10, 20_000),
    targets: dovecotTargets(target),
    serverNodelay: v['server-nodelay']!,
    cpuProf: v['cpu-prof'] ? path.resolve(v['cpu-prof']) : undefined,
    json: v.json!,
    encrypt: v.encrypt!,
  };
}

async function main(): Promise<number> {
  const opts = await parseOptions(process.argv.slice(2));
  installSignalHandlers('imap-stress', 15 * 60_000 + opts.seconds * 2000);
  const log = (s: string) => process.stderr.write(s + '\n');
  const out = (s = '') => process.stdout.write(s + '\n');

  out('IMAP stress benchmark (bench/imap-stress.ts)');
  for (const l of machineFacts()) out(l);
  out(`  workload     ${opts.clients} clients × ${opts.seconds} s on one INBOX seeded with ${opts.messages} messages (~1.9 KB each); IMAPS, one command at a time per client`);
  out(`               mix (weights): ${MIX.map(([op, w]) => `${op} ${w}`).join(', ')}`);
  out('               sequence numbers from each client\'s own EXISTS/EXPUNGE tracking; same pseudo-random sequence for every target');

  const base = benchDir('caducee-imap-stress-');
  // Dovecot's mail processes run as nobody and must traverse this directory.
  chmodSync(base, 0o755);
  const results: StressResult[] = [];
  for (const which of opts.targets) results.push(await withImapTarget('imap-stress', which, base, opts, log, (t) => runStress(t, opts, log)));

  // ---- report ----
  out();
  for (const r of results) {
    const total = Object.values(r.byOp).reduce((n, s) => n + s.n, 0);
    out(`${r.target}: ${f0(total)} commands in ${r.seconds.toFixed(1)} s = ${f0(total / r.seconds)} commands/s; server CPU ${f2(r.serverCpuMs / 1000 / r.seconds)} cores (${f2(r.serverCpuMs / total)} ms/command), client CPU ${f2(r.clientCpuMs / 1000 / r.seconds)} cores; INBOX ${r.seedMessages} → ${r.finalMessages} messages; seed ${f1((r.seedMessages * 1000) / r.seedMs)} APPEND/s${disturbance(r.otherCpus)}`);
  }
  out();
  const header = ['command'];
  for (const r of results) header.push(`${r.target} /s`, 'p50 ms', 'p99 ms', 'NO/BAD');
  if (results.length === 2) header.push(`${results[0].target}/${results[1].target}`);
  const rows = [header];
  for (const op of [...OPS, 'total']) {
    const row = [op];
    const rates: number[] = [];
    for (const r of results) {
      const stats = op === 'total' ? Object.values(r.byOp).reduce((a, s) => ({ n: a.n + s.n, no: a.no + s.no, bad: a.bad + s.bad, lat: a.lat.concat(s.lat) }), { n: 0, no: 0, bad: 0, lat: [] as number[] }) : r.byOp[op];
      const lat = [...stats.lat].sort((x, y) => x - y);
      const rate = stats.n / r.seconds;
      rates.push(rate);
      row.push(f1(rate), f2(percentile(lat, 50)), f1(percentile(lat, 99)), `${stats.no}/${stats.bad}`);
    }
    if (results.length === 2) row.push(f2(rates[0] / rates[1]));
    rows.push(row);
  }
  out('Commands per second (p50/p99: latency per command as the client saw it, ms)');
  out(table(rows));
  let failures = 0;
  for (const r of results) {
    const errs = Object.entries(r.errors);
    if (errs.length === 0) out(`  ${r.target}: no errors`);
    for (const [k, n] of errs.sort((a, b) => b[1] - a[1])) out(`  ${r.target}: ${n} × ${k}`);
    failures += errs.reduce((n, [, c]) => n + c, 0);
  }
  if (opts.json) {
    out(
      JSON.stringify(
        results.map((r) => ({
          ...r,
          byOp: Object.fromEntries(Object.entries(r.byOp).map(([op, s]) => [op, { n: s.n, perSecond: s.n / r.seconds, no: s.no, bad: s.bad, p50: percentile([...s.lat].sort((x, y) => x - y), 50), p99: percentile([...s.lat].sort((x, y) => x - y), 99) }])),
        })),
      ),
    );
  }
  await cleanupAll();
  return failures === 0 ? 0 : 1;
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  main().then(
    (code) => process.exit(code),
    async (e) => {
      process.stderr.write(`imap-stress: ${(e as Error).stack ?? e}\n`);
      await cleanupAll();
      process.exit(1);
    },
  );
}
