// Load generator for a trust-space MX: N messages of each size over M concurrent mutual-TLS
// connections, against Caducée (operator B of a demo space, in a child process) and against
// Debian's Postfix set up as a receiving operator (test/peers/postfix.ts), with the same client.
//
//   node --import tsx bench/mx-load.ts [--messages N] [--concurrency M] [--sizes 10k,1m]
//                                      [--target caducee|postfix|both] [--json]
//                                      [--workers N | --postgres URL [--nodes N]] [--cpu-prof DIR] [--encrypt]
//
// Operator B (Caducée) runs as: the demo in one process (default); `caducee start --workers N
// --config <B's config>` on the prepared SQLite space (--workers); or `caducee demo --postgres URL
// --nodes N` on a database of its own created on URL's server and dropped at the end (--postgres),
// the load spread over the nodes' MX ports round robin.
//
// See bench/README.md for what is measured and how to read the figures.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import pg from 'pg';
import { prepareDemo, type DemoLayout } from '../src/demo/space.js';
import { TestPki } from '../src/pki/index.js';
import { PostfixPeer } from '../test/peers/postfix.js';
import { findExecutable } from '../test/peers/which.js';
import { pgTestDatabase } from '../test/support/postgres.js';
import { startCaducee, startWorkers } from './imap-stress.js';
import {
  benchDir,
  cleanupAll,
  clientCpuMs,
  commandLine,
  installSignalHandlers,
  onCleanup,
  otherProcessesCpuMs,
  parseArgsOrUsage,
  percentile,
  procCpuMs,
  snapshotProcesses,
  treeCpuMs,
  treePids,
} from './common.js';

const FROM = 'a@a.mssante.test';
const CLIENT_NAME = 'mx.a.mssante.test';
const POSTFIX_DOMAIN = 'c.mssante.test';
const POSTFIX_HOST = `mx.${POSTFIX_DOMAIN}`;
const POSTFIX_RCPT = `paul.bernard@${POSTFIX_DOMAIN}`;

// Bounds: everything this script starts is limited in count, size and time.
const MAX_MESSAGES = 5000;
const MAX_CONCURRENCY = 32; // Postfix's anvil allows 50 connections per client by default
const MAX_SIZE = 10_000_000; // the Postfix harness' message_size_limit is 10,240,000 bytes
const MAX_SIZES = 4;
const PHASE_TIMEOUT_MS = 180_000; // sending one size to one target
const DELIVERY_TIMEOUT_MS = 120_000; // Postfix: from the last 250 until the Maildir holds all
const GLOBAL_TIMEOUT_MS = 20 * 60_000; // the whole run, setup and cleanup included
const STARTUP_TIMEOUT_MS = 60_000; // the Caducée demo child printing its layout
const MAX_WORKERS = 8; // --workers, --nodes
/** PostgreSQL's statistics: a backend flushes them at most once a second, an idle one within 10 s. */
const PG_STATS_SETTLE_MS = 11_000;
/** Before each Caducée phase on PostgreSQL: commits of the idle operator over this long (background work). */
const PG_IDLE_SAMPLE_MS = 10_000;

// ---- arguments ---------------------------------------------------------------------------------

interface SizeSpec {
  label: string;
  bytes: number;
}

interface Options {
  messages: number | undefined;
  concurrency: number;
  sizes: SizeSpec[];
  targets: ('caducee' | 'postfix')[];
  json: boolean;
  /** B as `caducee start --workers N` (SQLite). */
  workers: number | undefined;
  /** B as `caducee demo --postgres` nodes: the server URL (a database is created on it). */
  postgres: string | undefined;
  nodes: number | undefined;
  /** --workers only: run B under `node --cpu-prof --cpu-prof-dir DIR` (one .cpuprofile per process, written at exit). */
  cpuProf: string | undefined;
  /** `caducee demo --encrypt`: message files encrypted at rest (docs/encryption.md). */
  encrypt: boolean;
}

function usage(msg: string): never {
  process.stderr.write(
    `mx-load: ${msg}\nusage: node --import tsx bench/mx-load.ts [--messages N] [--concurrency M] [--sizes 10k,1m] [--target caducee|postfix|both] [--json] [--workers N | --postgres URL [--nodes N]] [--cpu-prof DIR] [--encrypt]\n`,
  );
  process.exit(2);
}

function parseSize(s: string): SizeSpec {
  const m = /^(\d+(?:\.\d+)?)([km]?)b?$/i.exec(s.trim());
  if (!m) usage(`bad size "${s}" (expected e.g. 512, 10k, 1m)`);
  const mult = { '': 1, k: 1024, m: 1024 * 1024 }[m[2].toLowerCase() as '' | 'k' | 'm'];
  const bytes = Math.round(Number(m[1]) * mult);
  if (bytes < 512 || bytes > MAX_SIZE) usage(`size ${s} out of range (512 bytes .. ${MAX_SIZE} bytes)`);
  return { label: s.trim().toLowerCase(), bytes };
}

function parseOptions(argv: string[]): Options {
  const v = parseArgsOrUsage(
    argv,
    {
      messages: { type: 'string' },
      concurrency: { type: 'string' },
      sizes: { type: 'string' },
      target: { type: 'string' },
      json: { type: 'boolean' },
      workers: { type: 'string' },
      postgres: { type: 'string' },
      nodes: { type: 'string' },
      'cpu-prof': { type: 'string' },
      encrypt: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    usage,
  );
  if (v.help) usage('help');
  const int = (name: string, s: string | undefined, max: number): number | undefined => {
    if (s === undefined) return undefined;
    if (!/^\d+$/.test(s) || Number(s) < 1 || Number(s) > max) usage(`--${name} must be an integer in 1..${max}`);
    return Number(s);
  };
  const sizes = (v.sizes ?? '10k,1m').split(',').filter((s) => s.trim() !== '').map(parseSize);
  if (sizes.length === 0 || sizes.length > MAX_SIZES) usage(`--sizes takes 1..${MAX_SIZES} sizes`);
  const target = (v.target ?? 'both').toLowerCase();
  if (!['caducee', 'postfix', 'both'].includes(target)) usage('--target is caducee, postfix or both');
  const workers = int('workers', v.workers, MAX_WORKERS);
  const nodes = int('nodes', v.nodes, MAX_WORKERS);
  if (nodes !== undefined && v.postgres === undefined) usage('--nodes needs --postgres URL (the nodes share a PostgreSQL database)');
  if (workers !== undefined && v.postgres !== undefined) usage('--workers is for the SQLite space; with --postgres use --nodes (each node is `caducee start --workers 1`)');
  if (v.postgres !== undefined && !/^postgres(ql)?:\/\//.test(v.postgres)) usage('--postgres takes a URL postgres://user@host:port/database (the server a bench database is created on)');
  if (v['cpu-prof'] !== undefined && workers === undefined) usage('--cpu-prof needs --workers N (B as `caducee start`, profiled)');
  if (v.encrypt && workers !== undefined) usage('--encrypt runs B as the demo (or --postgres nodes), not --workers');
  return {
    encrypt: v.encrypt ?? false,
    workers,
    cpuProf: v['cpu-prof'] !== undefined ? path.resolve(v['cpu-prof']) : undefined,
    postgres: v.postgres,
    nodes: v.postgres !== undefined ? (nodes ?? 1) : undefined,
    messages: int('messages', v.messages, MAX_MESSAGES),
    concurrency: int('concurrency', v.concurrency, MAX_CONCURRENCY) ?? 8,
    sizes,
    targets: target === 'both' ? ['caducee', 'postfix'] : [target as 'caducee' | 'postfix'],
    json: !!v.json,
  };
}

/** Default message count: 200 for small messages, 40 from 512 KiB up (1 MB by default). */
const defaultCount = (bytes: number) => (bytes < 512 * 1024 ? 200 : 40);

// ---- messages ----------------------------------------------------------------------------------

/** A base64-looking body of 76-character CRLF lines, shared by all messages of one size. */
function makeBody(bytes: number): Buffer {
  const lines = Math.max(1, Math.floor(bytes / 78));
  const text = randomBytes(Math.ceil((lines * 76 * 3) / 4)).toString('base64').slice(0, lines * 76);
  const out = Buffer.allocUnsafe(lines * 78);
  for (let i = 0; i < lines; i++) {
    out.write(text.slice(i * 76, i * 76 + 76), i * 78, 'latin1');
    out.write('\r\n', i * 78 + 76, 'latin1');
  }
  return out;
}

class MessageFactory {
  private readonly body: Buffer;
  private readonly runId = randomBytes(6).toString('hex');
  constructor(
    readonly size: SizeSpec,
    readonly to: string,
  ) {
    // Headers take ~330 bytes; the body makes up the rest so each message is about `bytes` long.
    this.body = makeBody(Math.max(78, size.bytes - 330));
  }
  make(tag: string, i: number): Buffer {
    const head =
      `From: Banc de charge <${FROM}>\r\n` +
      `To: <${this.to}>\r\n` +
      `Subject: mx-load ${this.size.label} ${tag} #${i}\r\n` +
      `Message-ID: <${this.runId}.${this.size.label}.${tag}.${i}@a.mssante.test>\r\n` +
      `Date: ${new Date().toUTCString().replace('GMT', '+0000')}\r\n` +
      `MIME-Version: 1.0\r\n` +
      `Content-Type: application/octet-stream; name="bench.bin"\r\n` +
      `Content-Disposition: attachment; filename="bench.bin"\r\n` +
      `Content-Transfer-Encoding: base64\r\n\r\n`;
    return Buffer.concat([Buffer.from(head, 'latin1'), this.body]);
  }
}

// ---- SMTP client -------------------------------------------------------------------------------

interface ClientTls {
  /** Operator A's leaf + intermediate, PEM. */
  chain: string;
  key: string;
  ca: string;
}

interface TargetInfo {
  name: string;
  /** MX ports (one per node): connections go to them round robin, as DNS/TCP load balancing would. */
  ports: number[];
  /** Name expected in the server certificate (SNI and identity check). */
  servername: string;
  rcpt: string;
}

type SendError = Error & { code?: string; responseCode?: number; response?: string; command?: string };

const roundRobin = new WeakMap<TargetInfo, number>();

function openConnection(t: TargetInfo, tls: ClientTls): Promise<SMTPConnection> {
  const k = roundRobin.get(t) ?? 0;
  roundRobin.set(t, k + 1);
  const conn = new SMTPConnection({
    host: '127.0.0.1',
    port: t.ports[k % t.ports.length],
    secure: false,
    requireTLS: true,
    name: CLIENT_NAME,
    servername: t.servername,
    connectionTimeout: 15_000,
    greetingTimeout: 15_000,
    socketTimeout: 60_000,
    socketCloseTimeout: 0,
    tls: { cert: tls.chain, key: tls.key, ca: tls.ca, servername: t.servername, rejectUnauthorized: true, minVersion: 'TLSv1.2' },
  });
  // Errors also reach the callbacks; without a listener an 'error' event would throw.
  conn.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    conn.connect((err) => {
      if (err) {
        conn.close();
        return reject(err);
      }
      if (!conn.secure) {
        conn.close();
        return reject(new Error('connection is not TLS after STARTTLS'));
      }
      resolve(conn);
    });
  });
}

function closeConnection(conn: SMTPConnection): void {
  try {
    conn.quit();
  } catch {
    /* already closed */
  }
  setTimeout(() => conn.close(), 1000).unref();
}

function send(conn: SMTPConnection, to: string, raw: Buffer): Promise<{ ok: true; response: string } | { ok: false; err: SendError }> {
  return new Promise((resolve) => {
    conn.send({ from: FROM, to: [to], size: raw.length }, raw, (err, info) => {
      if (err) return resolve({ ok: false, err: err as SendError });
      if (!info || info.accepted.length !== 1 || !/^2\d\d/.test(info.response)) {
        const e: SendError = new Error(`not accepted: ${info?.response ?? '(no response)'}`);
        return resolve({ ok: false, err: e });
      }
      resolve({ ok: true, response: info.response });
    });
  });
}

/** True when the error leaves the SMTP session usable (a refusal), false when the connection is gone. */
function sessionSurvives(conn: SMTPConnection, e: SendError): boolean {
  return !conn.destroyed && (e.code === 'EENVELOPE' || e.code === 'EMESSAGE') && e.responseCode !== 421;
}

const describeError = (e: SendError) => `${e.command ? e.command + ': ' : ''}${(e.response ?? e.message).split('\n')[0]}`;

function resetSession(conn: SMTPConnection): Promise<boolean> {
  return new Promise((resolve) => conn.reset((err) => resolve(!err)));
}

// ---- one phase: one size against one target ----------------------------------------------------

interface PhaseResult {
  target: string;
  size: string;
  sizeBytes: number;
  sent: number;
  accepted: number;
  bytesAccepted: number;
  wallMs: number;
  msgPerSec: number;
  mbPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  connectP50Ms: number;
  errors: Record<string, number>;
  /** Caducée on PostgreSQL: the database's side of the phase (see Target.db). */
  db?: DbPhase;
  /** Messages found at the destination (Caducée: rows in B's store; Postfix: files in the Maildir). */
  delivered?: number;
  /** Postfix: from the first MAIL FROM until the Maildir held every accepted message. */
  allDeliveredMs?: number;
  deliveredPerSec?: number;
  serverCpuMs?: number;
  clientCpuMs: number;
  /** Average number of CPUs used by other user-space processes during the phase (a lower bound). */
  otherCpus: number;
}

interface Target extends TargetInfo {
  /** How many messages the destination holds now. */
  countDelivered(): Promise<number>;
  /** Postfix: wait until `n` are delivered; returns when that happened (performance.now()). */
  waitDelivered?(n: number, timeoutMs: number): Promise<number>;
  /** CPU ms used so far by the server processes. */
  serverCpuMs(): number;
  /** The server's processes now. */
  serverPids(): Set<number>;
  /** Caducée on PostgreSQL: the bench database's statistics and backends. */
  db?: DbProbe;
}

// ---- PostgreSQL's side -------------------------------------------------------------------------

interface DbCounters {
  /** pg_stat_database.xact_commit of the bench database. */
  commits: number;
  /** Σ n_tup_ins + n_tup_upd + n_tup_del over B's schema (pg_stat_user_tables). */
  tupleWrites: number;
}

interface DbPhase {
  /** Commits in the phase, the idle operator's background commits and this probe's own reads taken off. */
  commits: number;
  /** The idle operator's commits per second, measured before the phase (taken off `commits`). */
  idleCommitsPerSec: number;
  tupleWrites: number;
  /** CPU ms of the bench database's backends (pg_stat_activity → /proc/<pid>/stat). */
  backendCpuMs: number;
  /** CPU ms of the server's walwriter, checkpointer and background writer (shared by every database). */
  backgroundCpuMs: number;
  /** Backends of the bench database seen during the phase. */
  backends: number;
}

/** Reads the bench database's statistics and its backends' CPU (the server must run on this machine). */
class DbProbe {
  /** Reads this probe made (each one a transaction counted in xact_commit). */
  reads = 0;
  private constructor(
    private readonly client: pg.Client,
    readonly dbName: string,
    readonly schema: string,
  ) {}
  static async open(url: string, schema: string): Promise<DbProbe> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    onCleanup('close the PostgreSQL probe', () => client.end());
    return new DbProbe(client, decodeURIComponent(new URL(url).pathname.slice(1)), schema);
  }
  async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    this.reads++;
    return (await this.client.query<R>(sql, params)).rows;
  }
  async counters(): Promise<DbCounters> {
    const [d] = await this.query<{ c: string }>('SELECT xact_commit::text c FROM pg_stat_database WHERE datname = $1', [this.dbName]);
    const [t] = await this.query<{ w: string | null }>('SELECT SUM(n_tup_ins + n_tup_upd + n_tup_del)::text w FROM pg_stat_user_tables WHERE schemaname = $1', [this.schema]);
    return { commits: Number(d?.c ?? 0), tupleWrites: Number(t?.w ?? 0) };
  }
  /** Backends of the bench database (this probe's own left out), and the server's shared writers. */
  async pids(): Promise<{ backends: number[]; background: number[] }> {
    const rows = await this.query<{ pid: number; datname: string | null; backend_type: string }>(
      "SELECT pid, datname, backend_type FROM pg_stat_activity WHERE (datname = $1 AND pid <> pg_backend_pid()) OR backend_type IN ('walwriter', 'checkpointer', 'background writer')",
      [this.dbName],
    );
    return { backends: rows.filter((r) => r.datname === this.dbName).map((r) => r.pid), background: rows.filter((r) => r.datname !== this.dbName).map((r) => r.pid) };
  }
  async countMessages(): Promise<number> {
    const [r] = await this.query<{ n: string }>(`SELECT COUNT(*)::text n FROM ${pg.escapeIdentifier(this.schema)}.messages`);
    return Number(r.n);
  }
}

/** CPU ms of processes (no children), by pid. */
const cpuByPid = (pids: Iterable<number>) => new Map([...pids].map((p) => [p, procCpuMs(p, false)]));
/** CPU used between two readings: processes present at the end, from 0 when they started meanwhile. */
function cpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, ms] of after) total += ms - (before.get(pid) ?? 0);
  return total;
}

async function runPhase(t: Target, tls: ClientTls, size: SizeSpec, n: number, m: number, log: (s: string) => void): Promise<PhaseResult> {
  const factory = new MessageFactory(size, t.rcpt);
  const workers = Math.min(m, n);
  const errors: Record<string, number> = {};
  const noteError = (e: SendError) => {
    const k = describeError(e);
    errors[k] = (errors[k] ?? 0) + 1;
  };

  // Connections are set up (TCP, banner, EHLO, STARTTLS + mutual TLS handshake, EHLO) before the clock starts.
  const connectTimes: number[] = [];
  const conns = await Promise.all(
    Array.from({ length: workers }, async () => {
      const t0 = performance.now();
      const c = await openConnection(t, tls);
      connectTimes.push(performance.now() - t0);
      return c;
    }),
  );
  const live = new Set(conns);
  try {
    // Warm-up, not counted: one message per connection (JIT, daemons and caches on both sides).
    const beforeWarmup = await t.countDelivered();
    const warm = await Promise.all(conns.map((c, i) => send(c, t.rcpt, factory.make('warmup', i))));
    const warmOk = warm.filter((r) => r.ok).length;
    const warmFail = warm.find((r): r is { ok: false; err: SendError } => !r.ok);
    if (warmOk === 0 && warmFail) throw new Error(`${t.name} refused every warm-up message: ${describeError(warmFail.err)}`);
    for (const [i, r] of warm.entries()) if (!r.ok && sessionSurvives(conns[i], r.err)) await resetSession(conns[i]);
    // Postfix delivers the warm-up messages after their 250: let that finish before the clock starts.
    if (t.waitDelivered) await t.waitDelivered(beforeWarmup + warmOk, DELIVERY_TIMEOUT_MS);
    const baseline = await t.countDelivered();

    // PostgreSQL: statistics settled, then the idle operator's background commits (leases, queue
    // polls…) sampled, to be taken off the phase's.
    let idle: { commits: number; tupleWrites: number } | undefined;
    let db1: DbCounters | undefined;
    let db1At = 0;
    let reads1 = 0;
    if (t.db) {
      log(`  ${size.label}: PostgreSQL statistics: settling ${PG_STATS_SETTLE_MS / 1000} s, then ${PG_IDLE_SAMPLE_MS / 1000} s of idle background…`);
      await sleep(PG_STATS_SETTLE_MS);
      const reads0 = t.db.reads;
      const db0 = await t.db.counters();
      const db0At = performance.now();
      await sleep(PG_IDLE_SAMPLE_MS);
      reads1 = t.db.reads;
      db1 = await t.db.counters();
      db1At = performance.now();
      const secs = (db1At - db0At) / 1000;
      idle = { commits: Math.max(0, db1.commits - db0.commits - (reads1 - reads0)) / secs, tupleWrites: Math.max(0, db1.tupleWrites - db0.tupleWrites) / secs };
    }
    const dbPids0 = t.db ? await t.db.pids() : undefined;
    const dbCpu0 = dbPids0 ? cpuByPid(dbPids0.backends) : undefined;
    const bgCpu0 = dbPids0 ? cpuByPid(dbPids0.background) : undefined;

    const latencies: number[] = [];
    let next = 0;
    let accepted = 0;
    let bytesAccepted = 0;
    let sent = 0;
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      for (const c of live) c.close();
    }, PHASE_TIMEOUT_MS);

    const procs0 = snapshotProcesses();
    const serverPids0 = t.serverPids();
    const serverCpu0 = t.serverCpuMs();
    const clientCpu0 = clientCpuMs();
    const start = performance.now();
    await Promise.all(
      conns.map(async (first) => {
        let conn: SMTPConnection | undefined = first;
        let reconnects = 0;
        while (!timedOut) {
          const i = next++;
          if (i >= n) break;
          if (!conn) {
            if (reconnects >= 3) break;
            reconnects++;
            try {
              conn = await openConnection(t, tls);
              live.add(conn);
            } catch (e) {
              noteError(e as SendError);
              conn = undefined;
              continue; // this message number is skipped, never sent (reported below)
            }
          }
          const raw = factory.make('m', i);
          sent++;
          const t0 = performance.now();
          const r = await send(conn, t.rcpt, raw);
          const dt = performance.now() - t0;
          if (r.ok) {
            accepted++;
            bytesAccepted += raw.length;
            latencies.push(dt);
          } else {
            noteError(r.err);
            if (!(sessionSurvives(conn, r.err) && (await resetSession(conn)))) {
              live.delete(conn);
              conn.close();
              conn = undefined;
            }
          }
        }
        // Workers that ran out of messages stop here; `conn` is closed in finally.
        if (conn) live.add(conn);
      }),
    );
    const end = performance.now();
    clearTimeout(deadline);
    if (timedOut) errors[`phase timed out after ${PHASE_TIMEOUT_MS / 1000} s`] = n - accepted;
    // Indexes taken by a worker that could not reconnect were never sent.
    if (sent < n && !timedOut) errors['not sent (connection lost)'] = (errors['not sent (connection lost)'] ?? 0) + (n - sent);

    const wallMs = end - start;
    let delivered: number | undefined;
    let allDeliveredMs: number | undefined;
    if (t.waitDelivered) {
      try {
        const at = await t.waitDelivered(baseline + accepted, DELIVERY_TIMEOUT_MS);
        allDeliveredMs = at - start;
      } catch (e) {
        log(`  ${t.name} ${size.label}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    // CPU over the same window for the server, this client and the whole machine: from the first
    // MAIL FROM to the last 250 (Caducée stores before replying) or to the last Maildir delivery (Postfix).
    const serverCpuMs = t.serverCpuMs() - serverCpu0;
    const clientCpu = clientCpuMs() - clientCpu0;
    const dbPids1 = t.db ? await t.db.pids() : undefined;
    const windowMs = performance.now() - start;
    const exclude = new Set([process.pid, ...serverPids0, ...t.serverPids(), ...(dbPids0?.backends ?? []), ...(dbPids1?.backends ?? []), ...(dbPids1?.background ?? [])]);
    let db: DbPhase | undefined;
    if (t.db && dbPids1 && db1 && idle) {
      const backendCpuMs = cpuDelta(dbCpu0!, cpuByPid(new Set([...dbPids0!.backends, ...dbPids1.backends])));
      const backgroundCpuMs = cpuDelta(bgCpu0!, cpuByPid(dbPids1.background));
      await sleep(PG_STATS_SETTLE_MS);
      const reads2 = t.db.reads;
      const db2 = await t.db.counters();
      const secs = (performance.now() - db1At) / 1000;
      db = {
        commits: db2.commits - db1.commits - (reads2 - reads1) - idle.commits * secs,
        idleCommitsPerSec: idle.commits,
        tupleWrites: db2.tupleWrites - db1.tupleWrites - idle.tupleWrites * secs,
        backendCpuMs,
        backgroundCpuMs,
        backends: new Set([...dbPids0!.backends, ...dbPids1.backends]).size,
      };
    }
    const otherMs = otherProcessesCpuMs(procs0, snapshotProcesses(), exclude);
    delivered = (await t.countDelivered()) - baseline;
    latencies.sort((a, b) => a - b);
    connectTimes.sort((a, b) => a - b);
    return {
      target: t.name,
      size: size.label,
      sizeBytes: size.bytes,
      sent,
      accepted,
      bytesAccepted,
      wallMs,
      msgPerSec: accepted / (wallMs / 1000),
      mbPerSec: bytesAccepted / 1e6 / (wallMs / 1000),
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      maxMs: latencies.length ? latencies[latencies.length - 1] : NaN,
      connectP50Ms: percentile(connectTimes, 50),
      errors,
      delivered,
      allDeliveredMs,
      deliveredPerSec: allDeliveredMs !== undefined ? accepted / (allDeliveredMs / 1000) : undefined,
      serverCpuMs,
      db,
      clientCpuMs: clientCpu,
      otherCpus: Math.max(0, otherMs) / windowMs,
    };
  } finally {
    for (const c of live) closeConnection(c);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- targets -----------------------------------------------------------------------------------

/** Messages stored by a Caducée operator (all mailboxes and folders), read from its SQLite store. */
function caduceeStoredCount(dataDir: string): number {
  const db = new Database(path.join(dataDir, 'caducee.sqlite'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM messages').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

async function maildirCount(maildir: string): Promise<number> {
  let n = 0;
  for (const sub of ['new', 'cur']) {
    const names = await readdir(path.join(maildir, sub)).catch(() => [] as string[]);
    for (const name of names) if (!name.startsWith('.')) n++;
  }
  return n;
}

async function startPostfix(base: string, layout: DemoLayout, log: (s: string) => void): Promise<PostfixPeer> {
  // A server certificate for the Postfix operator from the same demo PKI (leaf + intermediate).
  const pki = await TestPki.load(layout.pkiDir);
  const issued = await pki.issueServer({
    host: POSTFIX_HOST,
    siret: '99999999900018',
    org: `OPERATEUR POSTFIX ${POSTFIX_DOMAIN.toUpperCase()}`,
    dept: 'Paris (75)',
    altNames: ['localhost', '127.0.0.1'],
  });
  const files = await pki.writeIssued(path.join(base, 'postfix-certs'), POSTFIX_HOST, issued);
  log(`  starting: PostfixPeer ${POSTFIX_DOMAIN} (TLS required, client certificate required, durable queue)`);
  const peer = await PostfixPeer.start({
    dir: path.join(base, 'postfix'),
    domain: POSTFIX_DOMAIN,
    hostname: POSTFIX_HOST,
    certFile: files.chainPath,
    keyFile: files.keyPath,
    caFile: layout.caBundle,
    requireClientCert: true,
  });
  onCleanup('stop Postfix', () => peer.stop());
  return peer;
}

/** A database of this run on the server at `serverUrl` (created through its URL's database), dropped by cleanup. */
async function createBenchDatabase(serverUrl: string): Promise<{ url: string; name: string }> {
  const name = `caducee_bench_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  try {
    await admin.connect();
  } catch (e) {
    throw new Error(`--postgres: cannot connect to ${serverUrl.replace(/\/\/[^@/]*@/, '//')} (${(e as Error).message}); check the URL and that PostgreSQL runs`);
  }
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  onCleanup(`drop the PostgreSQL database ${name}`, async () => {
    const c = new pg.Client({ connectionString: serverUrl });
    await c.connect();
    try {
      await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
      await c.query(`DROP DATABASE IF EXISTS ${name}`);
    } finally {
      await c.end();
    }
  });
  const url = new URL(serverUrl);
  url.pathname = '/' + name;
  return { url: url.toString(), name };
}

// ---- output ------------------------------------------------------------------------------------

const f1 = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '—' : x.toFixed(1));
const f0 = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '—' : x.toFixed(0));
const f2 = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '—' : x.toFixed(2));

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => '  ' + r.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).join('\n');
}

function postfixVersion(): string {
  const postconf = findExecutable('postconf');
  if (!postconf) return 'not installed';
  try {
    // postconf -d mail_version is quick and touches nothing.
    return execFileSync(postconf, ['-d', 'mail_version'], { encoding: 'utf8' }).replace(/^.*=\s*/, '').trim();
  } catch {
    return 'unknown';
  }
}

// ---- main --------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  installSignalHandlers('mx-load', GLOBAL_TIMEOUT_MS, true);
  const log = (s: string) => process.stderr.write(s + '\n');
  const out = (s = '') => process.stdout.write(s + '\n');

  const cpus = os.cpus();
  const counts = opts.sizes.map((s) => opts.messages ?? defaultCount(s.bytes));
  out('Caducée MX load benchmark (bench/mx-load.ts)');
  out(`  date         ${new Date().toISOString()}`);
  out(`  command      ${commandLine()}`);
  out(`  node         ${process.version} (${process.platform} ${process.arch})`);
  out(`  cpus         ${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown'}; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  out(`  memory       ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; ${os.type()} ${os.release()}`);
  out(
    `  caducee      operator B as ${
      opts.workers !== undefined
        ? `\`caducee start --workers ${opts.workers}\` (SQLite)`
        : opts.postgres
          ? `${opts.nodes} node process(es) on PostgreSQL (\`caducee demo --postgres URL --nodes ${opts.nodes}\`; each node one process, \`caducee start --workers 1\`), connections round robin over the nodes' MX`
          : 'the demo in one process (SQLite)'
    }${opts.encrypt ? '; message files encrypted at rest (caducee demo --encrypt)' : ''
    }`,
  );
  out(`  postfix      ${opts.targets.includes('postfix') ? postfixVersion() : '(not run)'}`);
  out(`  workload     ${opts.sizes.map((s, i) => `${counts[i]} × ${s.label} (${s.bytes.toLocaleString('en')} B)`).join(', ')}; ${opts.concurrency} concurrent connections`);
  out(`               STARTTLS + client certificate of operator A, MAIL FROM <${FROM}>, 1 recipient, persistent connections`);
  out(`               (nodemailer SMTPConnection, PIPELINING), 1 uncounted warm-up message per connection and size`);
  out();

  const base = benchDir('caducee-bench-');
  // Postfix's virtual delivery agent runs as nobody and must traverse this directory.
  chmodSync(base, 0o755);

  // --postgres: a database of this run's own on that server, dropped at the end.
  const pgDb = opts.postgres && opts.targets.includes('caducee') ? await createBenchDatabase(opts.postgres) : undefined;
  if (pgDb) log(`mx-load: PostgreSQL database ${pgDb.name} created`);
  log(`mx-load: preparing a demo trust space in ${base}`);
  // The layout (PKI, operators' stores, trust list) is made here; `caducee demo --dir` reuses it.
  const layout = await prepareDemo(path.join(base, 'demo'), { ports: 'ephemeral', ...(pgDb ? { postgres: { url: pgDb.url } } : {}) });
  const a = layout.operators[0];
  const tls: ClientTls = { chain: readFileSync(a.chain, 'utf8'), key: readFileSync(a.key, 'utf8'), ca: readFileSync(layout.caBundle, 'utf8') };

  const results: PhaseResult[] = [];
  for (const which of opts.targets) {
    if (which === 'caducee') {
      log('mx-load: target Caducée');
      const b0 = layout.operators[1];
      let target: Target;
      let stderrTail: () => string;
      let stop: () => Promise<void>;
      if (opts.workers !== undefined) {
        // B alone, as an operator runs it: `caducee start --workers N` on the prepared configuration.
        const w = await startWorkers(b0.config, opts.workers, { log, cpuProf: opts.cpuProf, startupTimeoutMs: STARTUP_TIMEOUT_MS });
        ({ stderrTail, stop } = w);
        target = {
          name: 'Caducée',
          ports: [w.ports.mx],
          servername: b0.hostname,
          rcpt: b0.users[0].addresses[0],
          countDelivered: async () => caduceeStoredCount(b0.dataDir),
          // The primary and its workers (live ones, and any it reaped).
          serverCpuMs: () => treeCpuMs(w.pid),
          serverPids: () => treePids(w.pid),
        };
      } else {
        const demoArgs = [...(pgDb ? ['--postgres', pgDb.url, '--nodes', String(opts.nodes ?? 1)] : []), ...(opts.encrypt ? ['--encrypt'] : [])];
        const c = await startCaducee(layout.dir, { log, startupTimeoutMs: STARTUP_TIMEOUT_MS, demoArgs });
        stderrTail = c.stderrTail;
        stop = c.stop;
        const b = c.layout.operators[1];
        const nodes = b.nodes ?? [];
        if (pgDb && (!b.store || nodes.length !== opts.nodes)) throw new Error(`the demo printed ${nodes.length} node(s) for ${b.domain}, expected ${opts.nodes} on PostgreSQL`);
        const probe = pgDb && b.store ? await DbProbe.open(pgDb.url, b.store.schema) : undefined;
        target = {
          name: 'Caducée',
          ports: nodes.length ? nodes.map((n) => n.ports.mx) : [b.ports.mx],
          servername: b.hostname,
          rcpt: b.users[0].addresses[0],
          countDelivered: async () => (probe ? probe.countMessages() : caduceeStoredCount(b.dataDir)),
          // Nodes: each one's process tree (`caducee start --workers 1`: one process);
          // the demo process itself (A, the PSC stand-in, idle here) is not B.
          serverCpuMs: () => (nodes.length ? nodes.reduce((sum, n) => sum + treeCpuMs(n.pid), 0) : procCpuMs(c.pid, true)),
          serverPids: () => (nodes.length ? new Set(nodes.flatMap((n) => [...treePids(n.pid)])) : new Set([c.pid])),
          db: probe,
        };
        if (nodes.length) log(`  ${b.domain}: ${nodes.length} node(s), pids ${nodes.map((n) => n.pid).join(', ')}, database ${probe!.dbName} schema ${probe!.schema}`);
      }
      log(`  MX 127.0.0.1:${target.ports.join(',')}, recipient ${target.rcpt}`);
      for (const [i, size] of opts.sizes.entries()) {
        log(`  ${size.label}: ${counts[i]} messages over ${opts.concurrency} connections…`);
        const r = await runPhase(target, tls, size, counts[i], opts.concurrency, log);
        results.push(r);
        log(`  ${size.label}: ${r.accepted}/${counts[i]} accepted in ${(r.wallMs / 1000).toFixed(2)} s (connection setup p50 ${f1(r.connectP50Ms)} ms)`);
      }
      const warnings = stderrTail().split('\n').filter((l) => l.trim() !== '');
      if (warnings.length) log(`  the Caducée child logged ${warnings.length} line(s) at warn or above; last: ${warnings[warnings.length - 1].slice(0, 300)}`);
      // Stop it now so it does not share the machine with Postfix.
      await stop();
    } else {
      log('mx-load: target Postfix');
      const peer = await startPostfix(base, layout, log);
      const masterPid = Number(readFileSync(path.join(peer.dir, 'queue', 'pid', 'master.pid'), 'utf8').trim());
      const target: Target = {
        name: 'Postfix',
        ports: [peer.port],
        servername: POSTFIX_HOST,
        rcpt: POSTFIX_RCPT,
        countDelivered: () => maildirCount(peer.maildir),
        async waitDelivered(n, timeoutMs) {
          const deadline = performance.now() + timeoutMs;
          for (;;) {
            if ((await maildirCount(peer.maildir)) >= n) return performance.now();
            if (performance.now() > deadline) throw new Error(`only ${await maildirCount(peer.maildir)}/${n} messages in the Maildir after ${timeoutMs / 1000} s`);
            await new Promise((r) => setTimeout(r, 5));
          }
        },
        serverCpuMs: () => treeCpuMs(masterPid),
        serverPids: () => treePids(masterPid),
      };
      log(`  MX 127.0.0.1:${target.ports.join(',')}, recipient ${target.rcpt}`);
      for (const [i, size] of opts.sizes.entries()) {
        log(`  ${size.label}: ${counts[i]} messages over ${opts.concurrency} connections…`);
        const r = await runPhase(target, tls, size, counts[i], opts.concurrency, log);
        results.push(r);
        log(`  ${size.label}: ${r.accepted}/${counts[i]} accepted in ${(r.wallMs / 1000).toFixed(2)} s, all delivered after ${f2((r.allDeliveredMs ?? NaN) / 1000)} s (connection setup p50 ${f1(r.connectP50Ms)} ms)`);
      }
      // Cross-check the Maildir once: every file is one of ours, for the right recipient.
      const msgs = await peer.messagesFor(POSTFIX_RCPT);
      log(`  Maildir: ${msgs.length} message(s) delivered to ${POSTFIX_RCPT} (warm-up included)`);
      await peer.stop();
    }
  }

  // ---- report ----
  const rows: string[][] = [
    ['target', 'size', 'accepted', 'msg/s', 'MB/s', 'p50 ms', 'p99 ms', 'max ms', 'delivered', 'all delivered', 'deliv. msg/s', 'server CPU ms/msg', 'client CPU ms/msg', 'other CPUs'],
  ];
  for (const r of results) {
    rows.push([
      r.target,
      r.size,
      `${r.accepted}/${r.sent}`,
      f1(r.msgPerSec),
      f2(r.mbPerSec),
      f1(r.p50Ms),
      f1(r.p99Ms),
      f1(r.maxMs),
      r.delivered === undefined ? '—' : String(r.delivered),
      r.target === 'Caducée' ? 'at 250' : r.allDeliveredMs === undefined ? 'timeout' : `${f2(r.allDeliveredMs / 1000)} s`,
      r.target === 'Caducée' ? f1(r.msgPerSec) : f1(r.deliveredPerSec),
      r.serverCpuMs === undefined ? '—' : f1(r.serverCpuMs / Math.max(1, r.accepted)),
      f1(r.clientCpuMs / Math.max(1, r.accepted)),
      f2(r.otherCpus),
    ]);
  }
  out('Results (MB = 10^6 bytes of message data; latency = MAIL FROM … 250 after DATA, per message)');
  out(table(rows));
  for (const r of results) {
    for (const [k, v] of Object.entries(r.errors)) out(`  ${r.target} ${r.size}: ${v} × ${k}`);
  }
  const busy = results.filter((r) => r.otherCpus > 0.1);
  if (busy.length) {
    out(`  warning: other processes used ${busy.map((r) => `${f2(r.otherCpus)} CPU during ${r.target} ${r.size}`).join(', ')}`);
    out(`           (of ${cpus.length} CPUs): the machine was not quiet, these figures are disturbed`);
  }

  const dbResults = results.filter((r) => r.db);
  if (dbResults.length) {
    out();
    out('PostgreSQL (per accepted message; the idle operator\'s background commits and tuple writes, sampled for 10 s before each phase, taken off)');
    const dbRows: string[][] = [['target', 'size', 'B CPU ms', 'PG backends CPU ms', 'PG wal/ckpt/bgwriter CPU ms', 'commits', 'tuple writes', 'backends', 'idle commits/s']];
    for (const r of dbResults) {
      const n = Math.max(1, r.accepted);
      const d = r.db!;
      dbRows.push([r.target, r.size, f1((r.serverCpuMs ?? NaN) / n), f1(d.backendCpuMs / n), f2(d.backgroundCpuMs / n), f1(d.commits / n), f1(d.tupleWrites / n), String(d.backends), f1(d.idleCommitsPerSec)]);
    }
    out(table(dbRows));
    out('  commits: pg_stat_database.xact_commit of the bench database (each a transaction: round trips are at least this);');
    out('  tuple writes: n_tup_ins + n_tup_upd + n_tup_del of B\'s schema (pg_stat_user_tables); CPU: /proc/<pid>/stat of the');
    out('  database\'s backends (pg_stat_activity) and of the server\'s shared writers (they serve every database on the server).');
  }

  const ratioRows: string[][] = [['size', 'msg/s', 'MB/s', 'p50', 'p99', 'msg/s vs Postfix delivered']];
  for (const size of opts.sizes) {
    const c = results.find((r) => r.target === 'Caducée' && r.size === size.label);
    const p = results.find((r) => r.target === 'Postfix' && r.size === size.label);
    if (!c || !p) continue;
    ratioRows.push([size.label, f2(c.msgPerSec / p.msgPerSec), f2(c.mbPerSec / p.mbPerSec), f2(c.p50Ms / p.p50Ms), f2(c.p99Ms / p.p99Ms), f2(c.msgPerSec / (p.deliveredPerSec ?? NaN))]);
  }
  if (ratioRows.length > 1) {
    out();
    out('Ratio Caducée / Postfix (throughput: > 1 means Caducée is faster; latency: > 1 means Caducée is slower)');
    out(table(ratioRows));
  }
  if (opts.json) out(JSON.stringify({ command: commandLine(), node: process.version, cpus: cpus.length, results }));

  const incomplete = results.some((r) => r.accepted < r.sent || r.sent < (opts.messages ?? defaultCount(r.sizeBytes)) || r.delivered !== r.accepted);
  return incomplete ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  process.stderr.write(`mx-load: ${(e as Error).stack ?? e}\n`);
  code = 1;
} finally {
  await cleanupAll();
}
process.exit(code);
