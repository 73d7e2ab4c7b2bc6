// IMAP IDLE at scale: N connections (10,000 by default) to Caducée's IMAPS listener, each logged
// in with INBOX selected and IDLE running; the server's resident memory before and after (per
// connection); then one message is delivered (SMTP submission, local delivery) and the time until
// the idling clients see "* n EXISTS" is measured.
//
//   node --import tsx bench/imap-idle.ts [--connections N] [--batch B] [--exists-timeout S]
//                                        [--connect-timeout S] [--phased] [--server-nodelay]
//                                        [--cpu-prof DIR] [--json]
//
// The server is operator A of a demo space in a child process (its own event loop and file
// descriptor limit, raised with prlimit when needed). Everything is on 127.0.0.1. See bench/README.md.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { execFileSync } from 'node:child_process';
import {
  benchDir,
  cleanupAll,
  clientCpuMs,
  installSignalHandlers,
  intOption,
  otherCpus,
  parseArgsOrUsage,
  percentile,
  procCpuMs,
  snapshotProcesses,
} from './common.js';
import {
  RawImap,
  disturbance,
  f0,
  f1,
  f2,
  login,
  machineFacts,
  nodelayPreload,
  procFdCount,
  procNofile,
  procStatusKb,
  startCaducee,
} from './imap-stress.js';

interface Options {
  connections: number;
  batch: number;
  existsTimeoutS: number;
  connectTimeoutS: number;
  serverNodelay: boolean;
  /** Every connection logs in and selects first; IDLE starts only once all are connected. */
  phased: boolean;
  cpuProf?: string;
  json: boolean;
}

function usage(msg: string): never {
  process.stderr.write(
    `imap-idle: ${msg}\nusage: node --import tsx bench/imap-idle.ts [--connections N] [--batch B] [--exists-timeout S] [--connect-timeout S] [--phased] [--server-nodelay] [--cpu-prof DIR] [--json]\n`,
  );
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const v = parseArgsOrUsage(
    argv,
    {
      connections: { type: 'string', default: '10000' },
      batch: { type: 'string', default: '50' },
      'exists-timeout': { type: 'string', default: '120' },
      'connect-timeout': { type: 'string', default: '1800' },
      'server-nodelay': { type: 'boolean', default: false },
      phased: { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    usage,
  );
  const int = intOption(usage);
  return {
    connections: int(v.connections!, 'connections', 1, 25_000),
    batch: int(v.batch!, 'batch', 1, 1000),
    existsTimeoutS: int(v['exists-timeout']!, 'exists-timeout', 1, 600),
    connectTimeoutS: int(v['connect-timeout']!, 'connect-timeout', 10, 7200),
    serverNodelay: v['server-nodelay']!,
    phased: v.phased!,
    cpuProf: v['cpu-prof'] ? path.resolve(v['cpu-prof']) : undefined,
    json: v.json!,
  };
}

/** Makes sure this process may open `need` files: raises its own soft limit with prlimit(1) if the hard limit allows. */
function ensureOwnNofile(need: number, log: (s: string) => void): { soft: number; hard: number; raised: boolean } {
  const lim = procNofile('self');
  if (lim.soft >= need) return { ...lim, raised: false };
  if (lim.hard < need) throw new Error(`this process may open ${lim.hard} files at most (hard limit) but needs ${need}: raise it (e.g. \`ulimit -Hn ${need}\` as root) and run again`);
  log(`  raising this process' open-files limit: prlimit --pid ${process.pid} --nofile=${need}:${lim.hard}`);
  execFileSync('prlimit', [`--pid`, String(process.pid), `--nofile=${need}:${lim.hard === Infinity ? 'unlimited' : lim.hard}`]);
  const now = procNofile('self');
  if (now.soft < need) throw new Error(`prlimit did not raise the limit (soft ${now.soft})`);
  return { ...now, raised: true };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface IdleClient {
  c: RawImap;
  sawExistsAt?: number;
}

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  installSignalHandlers('imap-idle', o.connectTimeoutS * 1000 + 15 * 60_000);
  const log = (s: string) => process.stderr.write(s + '\n');
  const out = (s = '') => process.stdout.write(s + '\n');
  out('IMAP IDLE benchmark (bench/imap-idle.ts)');
  for (const l of machineFacts()) out(l);

  const need = o.connections + 1000;
  const own = ensureOwnNofile(need, log);
  const portRange = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  if (portRange[1] - portRange[0] + 1 < o.connections + 100) throw new Error(`only ${portRange[1] - portRange[0] + 1} ephemeral ports (${portRange.join('-')}) for ${o.connections} connections from 127.0.0.1`);

  const base = benchDir('caducee-imap-idle-');
  const { prepareDemo } = await import('../src/demo/space.js');
  const layout0 = await prepareDemo(path.join(base, 'demo'), { ports: 'ephemeral' });
  const nodeArgs = [...(o.serverNodelay ? nodelayPreload(base) : []), ...(o.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProf] : [])];
  const inherited = procNofile('self').soft;
  const srv = await startCaducee(layout0.dir, { log, nodeArgs, nofile: inherited < need ? need : undefined });
  // prlimit execs node in place: the child's pid is the server's.
  const serverLimit = procNofile(srv.pid);
  const a = srv.layout.operators[0];
  const claire = a.users[0];
  const ca = readFileSync(srv.layout.caBundle, 'utf8');
  out(`  limits       open files: this process ${own.soft}${own.raised ? ' (raised with prlimit)' : ''}, server child ${serverLimit.soft}${inherited < need ? ' (prlimit --nofile)' : ' (inherited)'}; ephemeral ports ${portRange.join('-')}; libuv threadpool ${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}`);
  out(
    `  workload     ${f0(o.connections)} IMAPS connections as ${claire.login}: TLS, LOGIN, SELECT INBOX, ${o.phased ? 'then IDLE once all are connected (--phased)' : 'IDLE'}; ${o.batch} connecting at a time;`,
  );
  out(`               then one message submitted (STARTTLS submission, local delivery to the same INBOX)${o.serverNodelay ? '; server with TCP_NODELAY (experiment)' : ''}`);

  const open = async (label: string): Promise<RawImap> => {
    const { client } = await RawImap.connect({ port: a.ports.imaps, tls: true, ca, servername: 'localhost', tagPrefix: label, timeoutMs: 120_000 });
    await login(client, claire.login, claire.appPassword);
    const r = await client.command('SELECT INBOX', { keep: false });
    if (r.status !== 'OK') throw new Error(`SELECT: ${r.status} ${r.text}`);
    return client;
  };
  const startIdle = (client: RawImap) =>
    new Promise<void>((resolve, reject) => {
      client.onContinuation = () => {
        client.onContinuation = undefined;
        resolve();
      };
      client.command('IDLE', { keep: false }).then(
        (r) => reject(new Error(`IDLE ended: ${r.status} ${r.text}`)),
        (e) => reject(e),
      );
    });

  // Warm-up (the first login allocates Argon2's memory, the first SELECT compiles statements…), then the baseline.
  const warm = await open('w');
  await startIdle(warm);
  warm.writeLine('DONE');
  await sleep(200);
  await warm.logout();
  await sleep(2000);
  const rssBefore = procStatusKb(srv.pid, 'VmRSS');
  const fdBefore = procFdCount(srv.pid);
  const cpuBefore = procCpuMs(srv.pid);
  const snap0 = snapshotProcesses();
  const mine = new Set([process.pid, srv.pid]);
  out(`  server       pid ${srv.pid}; before: VmRSS ${f1(rssBefore / 1024)} MiB, ${fdBefore} open fds (after one warm-up session)`);

  // Connect in batches.
  const clients: IdleClient[] = [];
  const connectErrors: Record<string, number> = {};
  let lost = 0;
  const t0 = performance.now();
  let lastLog = t0;
  let next = 0;
  const connectDeadline = t0 + o.connectTimeoutS * 1000;
  const phase = { connect: [] as number[] };
  const worker = async () => {
    while (next < o.connections && performance.now() < connectDeadline) {
      const k = next++;
      const t1 = performance.now();
      try {
        const client = await open(`i${k}x`);
        if (!o.phased) await startIdle(client);
        phase.connect.push(performance.now() - t1);
        const ic: IdleClient = { c: client };
        client.onUntagged = (line) => {
          if (ic.sawExistsAt === undefined && / EXISTS$/i.test(line)) ic.sawExistsAt = performance.now();
        };
        client.onClose = () => lost++;
        clients.push(ic);
      } catch (e) {
        const key = (e as Error).message.replace(/\d+/g, 'N').slice(0, 120);
        connectErrors[key] = (connectErrors[key] ?? 0) + 1;
      }
      const now = performance.now();
      if (now - lastLog > 10_000) {
        lastLog = now;
        const rate = (clients.length * 1000) / (now - t0);
        log(
          `  ${f0(clients.length)}/${f0(o.connections)} idling after ${f0((now - t0) / 1000)} s (${f1(rate)}/s, ETA ${f0((o.connections - clients.length) / Math.max(rate, 0.01))} s); server RSS ${f0(procStatusKb(srv.pid, 'VmRSS') / 1024)} MiB, CPU ${f2((procCpuMs(srv.pid) - cpuBefore) / (now - t0))} cores`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: o.batch }, worker));
  if (o.phased) {
    // Everyone is logged in with INBOX selected: now IDLE, in batches.
    const tIdle = performance.now();
    for (let i = 0; i < clients.length; i += o.batch) await Promise.all(clients.slice(i, i + o.batch).map((ic) => startIdle(ic.c)));
    log(`  phased: ${clients.length} sessions entered IDLE in ${f1((performance.now() - tIdle) / 1000)} s`);
  }
  const connectMs = performance.now() - t0;
  const connectServerCpuMs = procCpuMs(srv.pid) - cpuBefore;
  const otherConnect = otherCpus(snap0, snapshotProcesses(), mine, connectMs);
  log(`  ${clients.length} idling after ${f1(connectMs / 1000)} s`);
  await sleep(5000);
  const rssAfter = procStatusKb(srv.pid, 'VmRSS');
  const hwm = procStatusKb(srv.pid, 'VmHWM');
  const fdAfter = procFdCount(srv.pid);
  const n = clients.length;

  // Deliver one message and watch the EXISTS arrive.
  const nodemailer = (await import('nodemailer')).default;
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: a.ports.submission, secure: false, requireTLS: true, auth: { user: claire.login, pass: claire.appPassword }, tls: { ca, servername: 'localhost' } });
  // Warm the submission path (TLS, Argon2 login) with a no-op verify, so the timed send measures delivery.
  await transport.verify();
  const cpuD0 = procCpuMs(srv.pid);
  const client0 = clientCpuMs();
  const snapD = snapshotProcesses();
  const tSend = performance.now();
  await transport.sendMail({ from: claire.addresses[0], to: claire.addresses[0], subject: 'IDLE benchmark', text: 'one message for every idling session' });
  const tAccepted = performance.now();
  const deadline = tAccepted + o.existsTimeoutS * 1000;
  while (performance.now() < deadline && clients.some((c) => c.sawExistsAt === undefined && !c.c.closed)) await sleep(5);
  const tDone = performance.now();
  const deliverServerCpuMs = procCpuMs(srv.pid) - cpuD0;
  const deliverClientCpuMs = clientCpuMs() - client0;
  const otherDeliver = otherCpus(snapD, snapshotProcesses(), mine, tDone - tSend);
  transport.close();
  const seen = clients.filter((c) => c.sawExistsAt !== undefined).map((c) => c.sawExistsAt! - tSend).sort((x, y) => x - y);
  const sample = clients.slice(0, 100).filter((c) => c.sawExistsAt !== undefined).map((c) => c.sawExistsAt! - tSend).sort((x, y) => x - y);

  // Report.
  out();
  const conn = [...phase.connect].sort((x, y) => x - y);
  out(`Connections: ${f0(n)}/${f0(o.connections)} idling after ${f1(connectMs / 1000)} s (${f1((n * 1000) / connectMs)} connections/s; per connection TLS+LOGIN+SELECT+IDLE p50 ${f0(percentile(conn, 50))} ms, p99 ${f0(percentile(conn, 99))} ms with ${o.batch} in parallel)`);
  out(`  server CPU while connecting: ${f1(connectServerCpuMs / 1000)} s = ${f1(connectServerCpuMs / Math.max(1, n))} ms per connection (${f2(connectServerCpuMs / connectMs)} cores)${disturbance(otherConnect)}`);
  for (const [k, v] of Object.entries(connectErrors)) out(`  connect error × ${v}: ${k}`);
  out(`Server memory (VmRSS of pid ${srv.pid}): before ${f1(rssBefore / 1024)} MiB, with ${f0(n)} idling ${f1(rssAfter / 1024)} MiB → ${f1((rssAfter - rssBefore) / Math.max(1, n))} KiB per connection; peak (VmHWM) ${f1(hwm / 1024)} MiB; open fds ${fdBefore} → ${fdAfter}`);
  out(`Delivery: submission accepted (250) after ${f1(tAccepted - tSend)} ms; EXISTS seen by ${f0(seen.length)}/${f0(n)} idling clients${lost ? ` (${lost} connections lost)` : ''}`);
  out(
    `  ms from the start of the submission: first ${f1(seen[0])}, p50 ${f1(percentile(seen, 50))}, p90 ${f1(percentile(seen, 90))}, p99 ${f1(percentile(seen, 99))}, last ${f1(seen[seen.length - 1])}; first 100 clients: p50 ${f1(percentile(sample, 50))}, last ${f1(sample[sample.length - 1])}`,
  );
  const accepted = tAccepted - tSend;
  out(`  ms after the 250 reply: first ${f1(seen[0] - accepted)}, p50 ${f1(percentile(seen, 50) - accepted)}, p99 ${f1(percentile(seen, 99) - accepted)}, last ${f1(seen[seen.length - 1] - accepted)} (negative: the EXISTS came before the 250)`);
  out(`  server CPU for the delivery and ${f0(n)} notifications: ${f0(deliverServerCpuMs)} ms (${f2((deliverServerCpuMs * 1000) / Math.max(1, n))} µs per session); client CPU ${f0(deliverClientCpuMs)} ms; waited ${f1((tDone - tAccepted) / 1000)} s${disturbance(otherDeliver)}`);
  if (o.json) {
    out(
      JSON.stringify({
        connections: n,
        asked: o.connections,
        connectMs,
        connectServerCpuMs,
        rssBeforeKb: rssBefore,
        rssAfterKb: rssAfter,
        perConnectionKb: (rssAfter - rssBefore) / Math.max(1, n),
        hwmKb: hwm,
        acceptedMs: tAccepted - tSend,
        existsSeen: seen.length,
        existsMs: { first: seen[0], p50: percentile(seen, 50), p90: percentile(seen, 90), p99: percentile(seen, 99), last: seen[seen.length - 1] },
        deliverServerCpuMs,
        otherCpusConnect: otherConnect,
        otherCpusDeliver: otherDeliver,
      }),
    );
  }

  // Close the connections in batches (a burst of 10,000 closes is fine for the kernel, but be gentle).
  log('  closing the connections…');
  for (let i = 0; i < clients.length; i += 500) {
    for (const c of clients.slice(i, i + 500)) c.c.destroy();
    await sleep(20);
  }
  if (o.cpuProf) {
    await srv.stop();
    log(`  server CPU profile written under ${o.cpuProf}`);
  }
  await cleanupAll();
  return seen.length === n && n === o.connections ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  async (e) => {
    process.stderr.write(`imap-idle: ${(e as Error).stack ?? e}\n`);
    await cleanupAll();
    process.exit(1);
  },
);
