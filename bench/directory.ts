// National directory at scale: generate a synthetic extraction of N lines, import it with the
// real CLI (`caducee directory import`, wall time and peak RSS of that process), then measure
// search latency over HTTP against a directory server in another process (so the client never
// shares its event loop), with a realistic mix of queries sampled from the generated file.
//
//   node --import tsx bench/directory.ts [--lines 1000000] [--queries 3000] [--extraction FILE.zip] [--dir DIR] [--keep] [--json]
//   node --import tsx bench/directory.ts --search-only DATA_DIR --extraction FILE.zip [--lines N] [--queries N] [--node-flags='…']
//
// --search-only measures search against the snapshot already imported in DATA_DIR (the
// extraction it came from gives the queries): no generation, no import.
// --extraction reuses a file made by `caducee directory generate --lines N --out FILE.zip` (N must
// match --lines: queries are sampled from it) instead of generating one.
//
// Goals (issue 16): import ≤ 10 s wall and ≤ 300 MB peak RSS, search p99 ≤ 3 ms for every kind,
// at 1M entries. The import's phases (read/parse, insert, index, compare, swap) come from its
// --json summary. See bench/README.md.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, createReadStream, createWriteStream } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance, PerformanceObserver } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(REPO, 'bin/caducee.js');

/** GET over the agent's keep-alive socket; resolves with the status once the last byte is read. */
function httpGet(agent: http.Agent, port: number, p: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

/** What the client process sends back for one batch of requests (its clock, its GC pauses). */
interface ClientRun {
  runs: { ms: number; status: number; t0: number }[];
  gcs: { start: number; ms: number }[];
  cpuMs: number;
}


// ---- child mode: the directory HTTP server ------------------------------------------------------
// Besides serving, it measures each request on the server side (from Node's 'request' event to
// the response's 'finish': wall and process CPU, and the part spent inside the directory
// service's calls), and its GC pauses; the parent reads them over the IPC channel.
if (process.argv[2] === '--serve') {
  const { parseConfig } = await import('../src/config/index.js');
  const { openDirectory } = await import('../src/directory/runtime.js');
  const { startHttpServer } = await import('../src/http/app.js');
  const { PerformanceObserver } = await import('node:perf_hooks');
  const v8 = await import('node:v8');
  const config = parseConfig({ dataDir: process.argv[3] });
  const rt = openDirectory(config);
  type Rec = { wall: number; cpu: number; svcWall: number; svcCpu: number; start: number; thr: number; svcThr: number };
  // process.cpuUsage() sums every thread of the process (V8's compiler and GC helpers, libuv's
  // pool). The event loop's own CPU is that minus the other threads' (their schedstat: nanoseconds
  // on a CPU, Linux). The main thread's own schedstat cannot be used: while it runs, the kernel
  // updates it only at a tick or a switch (a 1 ms busy loop reads as 0.04–1.6 ms).
  const { openSync, readSync, readdirSync, readFileSync: readText, closeSync } = await import('node:fs');
  const schedBuf = Buffer.alloc(64);
  const schedMs = (fd: number) => {
    try {
      const n = readSync(fd, schedBuf, 0, 64, 0);
      return Number(schedBuf.toString('latin1', 0, n).split(' ', 1)[0]) / 1e6;
    } catch {
      return 0; // the thread ended
    }
  };
  let others: { tid: string; fd: number }[] = [];
  const openOthers = () => {
    for (const o of others) closeSync(o.fd);
    others = readdirSync('/proc/self/task')
      .filter((tid) => tid !== String(process.pid))
      .map((tid) => ({ tid, fd: openSync(`/proc/self/task/${tid}/schedstat`, 'r') }));
  };
  openOthers();
  const othersMs = () => {
    let t = 0;
    for (const o of others) t += schedMs(o.fd);
    return t;
  };
  const thrMs = () => cpuMs() - othersMs();
  // Every thread's CPU so far, by name (/proc/self/task/TID/comm), for the run's totals.
  const threadsMs = () => {
    const out: Record<string, number> = {};
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        const name = readText(`/proc/self/task/${tid}/comm`, 'utf8').trim() + (tid === String(process.pid) ? ' (main)' : ` ${Number(tid) - process.pid}`);
        out[name] = (out[name] ?? 0) + Number(readText(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ', 1)[0]) / 1e6;
      } catch {}
    }
    return out;
  };
  let threads0 = threadsMs();
  let recs: Rec[] = [];
  let gcs: { start: number; ms: number; kind: number }[] = [];
  let cur: Rec | undefined;
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  // The directory calls a request makes (search, autocomplete, FHIR search), timed in place.
  // FHIR search and autocomplete call search inside: only the outermost call counts.
  let depth = 0;
  const wrap = (o: any, name: string) => {
    const f = o[name].bind(o);
    o[name] = async (...a: unknown[]) => {
      if (depth++ > 0 || !cur) {
        try {
          return await f(...a);
        } finally {
          depth--;
        }
      }
      const rec = cur;
      const t0 = performance.now();
      const c0 = cpuMs();
      const h0 = thrMs();
      try {
        return await f(...a);
      } finally {
        depth--;
        rec.svcWall += performance.now() - t0;
        rec.svcCpu += cpuMs() - c0;
        rec.svcThr += thrMs() - h0;
      }
    };
  };
  wrap(rt.fhir, 'search');
  wrap(rt.service, 'autocomplete');
  wrap(rt.service, 'search');
  new PerformanceObserver((l) => {
    for (const e of l.getEntries()) gcs.push({ start: e.startTime, ms: e.duration, kind: (e as any).detail?.kind ?? 0 });
  }).observe({ entryTypes: ['gc'] });
  const server = await startHttpServer({ host: '127.0.0.1', port: 0, logger: rt.logger, directory: rt.routes() });
  server.app.server.prependListener('request', (_req, res) => {
    const rec: Rec = { wall: 0, cpu: 0, svcWall: 0, svcCpu: 0, start: performance.now(), thr: 0, svcThr: 0 };
    const c0 = cpuMs();
    const h0 = thrMs();
    cur = rec;
    res.once('finish', () => {
      rec.wall = performance.now() - rec.start;
      rec.cpu = cpuMs() - c0;
      rec.thr = thrMs() - h0;
      recs.push(rec);
      cur = undefined;
    });
  });
  process.on('message', (m: any) => {
    if (m === 'reset') {
      process.stdout.write('-- reset\n');
      recs = [];
      gcs = [];
      threads0 = threadsMs();
      openOthers();
      process.send!('ok');
    } else if (m === 'stats') {
      const t = threadsMs();
      const threads = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, +(v - (threads0[k] ?? 0)).toFixed(1)]).filter(([, v]) => (v as number) > 0));
      process.send!({ recs, gcs, threads, newSpaceMb: (v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space')?.space_size ?? 0) / 2 ** 20 });
    }
  });
  process.stdout.write(JSON.stringify({ port: server.port }) + '\n');
  process.on('SIGTERM', async () => {
    await server.close();
    await rt.close();
    process.exit(0);
  });
  await new Promise(() => {});
}

// ---- child mode: the measuring client ------------------------------------------------------------
// The client runs in its own small process: the parent holds the unzipped extraction and tsx's
// compiled modules, whose major GCs (8 pauses, 169 ms at 200k lines) would otherwise land inside
// the timed requests. It times each request from the write of the request to the last byte of the
// response (keep-alive, one socket, sequential) and reports its own GC pauses, so a slow request
// the client itself delayed is told apart from one the server or the scheduler delayed.
if (process.argv[2] === '--client') {
  const port = Number(process.argv[3]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const gcs: { start: number; ms: number }[] = [];
  new PerformanceObserver((l) => {
    for (const e of l.getEntries()) gcs.push({ start: e.startTime, ms: e.duration });
  }).observe({ entryTypes: ['gc'] });
  process.on('message', async (m: { paths: string[] }) => {
    gcs.length = 0;
    const runs: ClientRun['runs'] = [];
    const u0 = process.cpuUsage();
    for (const p of m.paths) {
      const t0 = performance.now();
      const status = await httpGet(agent, port, p);
      runs.push({ ms: performance.now() - t0, status, t0 });
    }
    const u = process.cpuUsage(u0);
    process.send!({ runs, gcs, cpuMs: (u.user + u.system) / 1000 } satisfies ClientRun);
  });
  process.send!('ready');
  await new Promise(() => {});
}

const { values: args } = parseArgs({
  options: {
    lines: { type: 'string', default: '1000000' },
    queries: { type: 'string', default: '3000' },
    dir: { type: 'string' },
    extraction: { type: 'string' },
    'search-only': { type: 'string' },
    'server-prof': { type: 'string' },
    'in-process': { type: 'boolean', default: false },
    'node-flags': { type: 'string', default: '' },
    'server-log': { type: 'string' },
    'queries-out': { type: 'string' },
    warmup: { type: 'string', default: '300' },
    slowest: { type: 'string', default: '0' },
    keep: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const LINES = Number(args.lines);
const QUERIES = Number(args.queries);
const WARMUP = Number(args.warmup);
if (!Number.isInteger(LINES) || LINES < 1000 || !Number.isInteger(QUERIES) || QUERIES < 100) {
  process.stderr.write('usage: bench/directory.ts [--lines N≥1000] [--queries N≥100] [--extraction FILE.zip] [--dir DIR] [--keep] [--json]\n');
  process.exit(2);
}
const dir = args.dir ? (mkdirSync(path.resolve(args.dir), { recursive: true }), path.resolve(args.dir)) : mkdtempSync(path.join(os.tmpdir(), 'caducee-bench-directory-'));
const searchOnly = args['search-only'] ? path.resolve(args['search-only']) : undefined;
if (searchOnly && !args.extraction) {
  process.stderr.write('--search-only needs --extraction (the file the snapshot was imported from: queries are sampled from it)\n');
  process.exit(2);
}
const dataDir = searchOnly ?? path.join(dir, 'data');
const config = path.join(dir, 'caducee.yaml');
writeFileSync(config, `dataDir: ${JSON.stringify(dataDir)}\nlog:\n  level: warn\n`);
const command = `node --import tsx bench/directory.ts --lines ${LINES} --queries ${QUERIES}${args['search-only'] ? ' --search-only ' + args['search-only'] : ''}${args['node-flags'] ? ` --node-flags '${args['node-flags']}'` : ''}${WARMUP !== 300 ? ` --warmup ${WARMUP}` : ''}`;
let server: ReturnType<typeof spawn> | undefined;
const cleanup = () => {
  server?.kill('SIGTERM');
  if (!args.keep && !args.dir) rmSync(dir, { recursive: true, force: true });
};
process.on('SIGINT', () => (cleanup(), process.exit(130)));

/** Runs a CLI command, sampling its peak RSS (VmHWM, whole process, threads included). */
function run(cmd: string[]): Promise<{ ms: number; peakRssMb: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, ...cmd], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    let peakKb = 0;
    child.stdout.on('data', (d) => (stdout += d));
    const sample = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peakKb = Math.max(peakKb, Number(m[1]));
      } catch {}
    }, 50);
    child.on('exit', (code) => {
      clearInterval(sample);
      if (code !== 0) reject(new Error(`caducee ${cmd.join(' ')} exited with ${code}`));
      else resolve({ ms: performance.now() - t0, peakRssMb: peakKb / 1024, stdout });
    });
  });
}

/** Queries sampled from the file itself: real names, cities, addresses of the data set. */
async function sampleQueries(file: string, n: number, shift = 0): Promise<{ kind: string; path: string }[]> {
  const rows: string[][] = [];
  const every = Math.max(1, Math.floor(LINES / (n / 2)));
  let i = 0;
  for await (const line of createInterface({ input: createReadStream(file) })) {
    if (i++ > 0 && (i + shift) % every === 0) rows.push(line.split('|'));
  }
  const q = encodeURIComponent;
  const out: { kind: string; path: string }[] = [];
  let k = 0;
  while (out.length < n) {
    const r = rows[k % rows.length];
    const [address, family, given, city] = [r[1], r[9], r[10], r[27].replace(/^\d{5}\s+/, '').replace(/\s+CEDEX.*$/, '')];
    const name = family || r[18].split(' ').slice(-1)[0] || 'martin';
    // The resource that carries this mailbox (mssante.md §6): PER + structure on PractitionerRole, …
    const resource = r[0] === 'PER' && r[6] ? 'PractitionerRole' : r[0] === 'PER' || r[0] === 'CAB' ? 'Practitioner' : 'Organization';
    switch (k % 10) {
      case 0: case 1: case 2: // autocomplete while typing a family name (3 to 6 characters)
        out.push({ kind: 'autocomplete', path: `/api/directory/autocomplete?q=${q(name.slice(0, 3 + (k % 4)))}` });
        break;
      case 3: // full name
        out.push({ kind: 'search name', path: `/api/directory/search?q=${q(`${given} ${family}`.trim() || name)}&limit=20` });
        break;
      case 4: // name and city
        out.push({ kind: 'search name+city', path: `/api/directory/search?q=${q(name)}&city=${q(city || 'paris')}&limit=20` });
        break;
      case 5: // profession and postal code
        out.push({ kind: 'search filters', path: `/api/directory/search?profession=${q(r[13] || '10')}&postalCode=${q((r[28] || '75').slice(0, 2))}&limit=20` });
        break;
      case 6: // FHIR practitioner by name
        out.push({ kind: 'FHIR name', path: `/fhir/Practitioner?name=${q(name.slice(0, 5))}&_count=10` });
        break;
      case 7: // FHIR by mailbox, exact
        out.push({ kind: 'FHIR mailbox exact', path: `/fhir/${resource}?mailbox-mss:exact=${q(address)}` });
        break;
      case 8: // FHIR by mailbox, contains (a part of the local part)
        out.push({ kind: 'FHIR mailbox contains', path: `/fhir/${resource}?mailbox-mss:contains=${q(address.split('@')[0].slice(1, 7))}&_count=10` });
        break;
      case 9: // free text with a city and a profession word
        out.push({ kind: 'search free text', path: `/api/directory/search?q=${q(`${name.slice(0, 4)} ${(city || 'lyon').slice(0, 4)}`)}&limit=10` });
        break;
    }
    k++;
  }
  return out;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const get = (port: number, p: string) => httpGet(agent, port, p);

/**
 * --in-process: the same queries against the HTTP server started in this process, over a
 * keep-alive loopback connection (Fastify's inject would be lighter, but it keeps ~10–100 KB per
 * request alive, which then costs GC time), each run twice in a row: CPU time (process.cpuUsage:
 * server and client, no scheduling of a second process) and wall of the first run, and the lesser
 * CPU of the two (the query's own cost, without a GC pause or a list read into memory that hit
 * the first run). --slowest N lists each kind's N costliest queries.
 */
async function inProcess(queries: { kind: string; path: string }[], warmup: { kind: string; path: string }[]) {
  const { parseConfig } = await import('../src/config/index.js');
  const { openDirectory } = await import('../src/directory/runtime.js');
  const { startHttpServer } = await import('../src/http/app.js');
  const rt = openDirectory(parseConfig({ dataDir: dataDir }));
  const srv = await startHttpServer({ host: '127.0.0.1', port: 0, logger: rt.logger, directory: rt.routes() });
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const one = async (p: string) => {
    const t0 = performance.now();
    const c0 = cpu();
    const status = await get(srv.port, p);
    if (status !== 200) throw new Error(`${p}: HTTP ${status}`);
    return { cpu: cpu() - c0, wall: performance.now() - t0 };
  };
  for (const x of warmup) await one(x.path);
  const by: Record<string, { cpu: number[]; wall: number[]; min: number[]; worst: { ms: number; path: string }[] }> = {};
  const t0 = performance.now();
  const c0 = cpu();
  for (const x of queries) {
    const a = await one(x.path);
    const b = await one(x.path);
    const k = (by[x.kind] ??= { cpu: [], wall: [], min: [], worst: [] });
    k.cpu.push(a.cpu);
    k.wall.push(a.wall);
    k.min.push(Math.min(a.cpu, b.cpu));
    k.worst.push({ ms: Math.min(a.cpu, b.cpu), path: x.path });
  }
  const totalCpu = cpu() - c0;
  const totalWall = performance.now() - t0;
  // The HTTP stack and the client alone: a trivial route, measured the same way.
  const trivial = { kind: 'trivial route /healthz', path: '/healthz' };
  for (let i = 0; i < 300; i++) {
    const a = await one(trivial.path);
    const b = await one(trivial.path);
    const k = (by[trivial.kind] ??= { cpu: [], wall: [], min: [], worst: [] });
    k.cpu.push(a.cpu);
    k.wall.push(a.wall);
    k.min.push(Math.min(a.cpu, b.cpu));
  }
  const f = (v: number[]) => `${pct(v, 50).toFixed(2)} / ${pct(v, 90).toFixed(2)} / ${pct(v, 99).toFixed(2)} / ${v[v.length - 1].toFixed(2)}`;
  const lines = [`in process (server and client in one process, loopback HTTP), ${queries.length} queries each run twice, ${(totalCpu / 1000).toFixed(1)} s CPU in ${(totalWall / 1000).toFixed(1)} s; ms p50 / p90 / p99 / max:`];
  for (const [kind, v] of Object.entries(by)) {
    for (const a of [v.cpu, v.wall, v.min]) a.sort((x, y) => x - y);
    lines.push(`  ${kind.padEnd(22)} cpu ${f(v.cpu)}  wall ${f(v.wall)}  least cpu of two ${f(v.min)}`);
    const n = Number(args.slowest);
    if (n > 0) for (const w of v.worst.sort((x, y) => y.ms - x.ms).slice(0, n)) lines.push(`      ${w.ms.toFixed(2)} ms  ${w.path}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  if (args.json) process.stdout.write(JSON.stringify({ command, inProcess: Object.fromEntries(Object.entries(by).map(([k, v]) => [k, { cpu: v.cpu.map((x) => +x.toFixed(3)), min: v.min.map((x) => +x.toFixed(3)) }])) }) + '\n');
  await srv.close();
  await rt.close();
}

const sec = (ms: number) => (ms / 1000).toFixed(1);
const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

try {
  const file = args.extraction ? path.resolve(args.extraction) : path.join(dir, 'Extraction_Correspondance_MSSante_bench.zip');
  if (!args.extraction) process.stderr.write(`generating ${LINES.toLocaleString('en-US')} lines in ${file}…\n`);
  const gen = args.extraction ? { ms: 0 } : await run(['directory', 'generate', '--lines', String(LINES), '--out', file, '--crlf', '--bom']);
  const skipped = { ms: 0, peakRssMb: 0, stdout: '{}' };
  if (!searchOnly) process.stderr.write('importing…\n');
  const imp = searchOnly ? skipped : await run(['directory', 'import', file, '--config', config, '--json']);
  const summary = JSON.parse(imp.stdout);
  const reimp = searchOnly ? skipped : await run(['directory', 'import', file, '--config', config, '--json']);
  const resummary = JSON.parse(reimp.stdout);

  // Queries come from the plain text (unzipped once here, outside any timing).
  const txt = path.join(dir, 'sample.txt');
  {
    const { unzipSync } = await import('fflate');
    const z = unzipSync(readFileSync(file));
    writeFileSync(txt, Object.values(z)[0]);
  }
  const queries = await sampleQueries(txt, QUERIES);
  // --queries-out FILE: the sampled queries as JSON ({kind, path}[]), for measurements elsewhere.
  if (args['queries-out']) writeFileSync(path.resolve(args['queries-out']), JSON.stringify(queries));
  // --warmup N: N requests before the timed ones, sampled from other lines of the file (by
  // default the first 300 timed queries themselves, as before).
  const warmup = WARMUP === 300 ? queries.slice(0, 300) : await sampleQueries(txt, WARMUP, 1);

  if (args['in-process']) {
    await inProcess(queries, warmup);
    cleanup();
    process.exit(0);
  }
  // --server-prof DIR: a CPU profile of the server process (node --cpu-prof), for bench/cpuprofile-top.ts.
  const prof = args['server-prof'] ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(args['server-prof'])] : [];
  // --node-flags '…': V8 / Node options for both children (server and client), e.g. the young
  // generation's settings of docs/directory.md "The floor".
  const nodeFlags = args['node-flags'].split(/\s+/).filter(Boolean);
  server = spawn(process.execPath, [...nodeFlags, ...prof, '--import', 'tsx', fileURLToPath(import.meta.url), '--serve', dataDir], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'], cwd: REPO });
  const port: number = await new Promise((resolve, reject) => {
    // The port is the line {"port": N}; anything else the server prints (V8's --trace-* flags)
    // goes to --server-log FILE.
    const log = args['server-log'] ? createWriteStream(path.resolve(args['server-log'])) : undefined;
    createInterface({ input: server!.stdout! }).on('line', (l) => {
      if (l.startsWith('{"port"')) resolve(JSON.parse(l).port);
      else log?.write(l + '\n');
    });
    server!.once('exit', (c) => reject(new Error(`directory server exited with ${c}`)));
  });
  const client = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', fileURLToPath(import.meta.url), '--client', String(port)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], cwd: REPO });
  await new Promise<void>((resolve, reject) => {
    client.once('message', () => resolve());
    client.once('exit', (c) => reject(new Error(`bench client exited with ${c}`)));
  });
  const measure = (paths: string[]): Promise<ClientRun> => new Promise((resolve) => (client.once('message', (x) => resolve(x as ClientRun)), client.send({ paths })));
  // Warm-up (page cache, JIT), not counted.
  await measure(warmup.map((x) => x.path));
  type ServerStats = { recs: { wall: number; cpu: number; svcWall: number; svcCpu: number; start: number; thr: number; svcThr: number }[]; threads: Record<string, number>; gcs: { start: number; ms: number; kind: number }[]; newSpaceMb: number };
  const ask = <T>(m: string): Promise<T> => new Promise((resolve) => (server!.once('message', (x) => resolve(x as T)), server!.send(m)));
  await ask('reset');
  const measured = await measure(queries.map((x) => x.path));
  const stats = await ask<ServerStats>('stats');
  const times: Record<string, number[]> = {};
  const all: number[] = [];
  const order = measured.runs.map((r, i) => ({ kind: queries[i].kind, ms: r.ms, t0: r.t0 }));
  const errors = measured.runs.filter((r) => r.status !== 200).length;
  for (const o of order) {
    (times[o.kind] ??= []).push(o.ms);
    all.push(o.ms);
  }
  // The HTTP stack alone: a trivial route (/healthz), 1,000 requests.
  await ask('reset');
  const trivialRun = await measure(Array.from({ length: 1000 }, () => '/healthz'));
  const trivial = trivialRun.runs.map((r) => r.ms);
  const trivialStats = await ask<ServerStats>('stats');
  client.kill('SIGTERM');
  const clientGcs = measured.gcs;
  const overlapsClientGc = (o: { t0: number; ms: number }) => clientGcs.some((g) => g.start < o.t0 + o.ms && g.start + g.ms > o.t0);
  // Server-side figures per kind (requests are sequential: the i-th record is the i-th query).
  const server_: Record<string, { wall: number[]; cpu: number[]; svcWall: number[]; svcCpu: number[]; thr: number[]; svcThr: number[] }> = {};
  stats.recs.forEach((r, i) => {
    const k = (server_[order[i]?.kind ?? '?'] ??= { wall: [], cpu: [], svcWall: [], svcCpu: [], thr: [], svcThr: [] });
    k.thr.push(r.thr);
    k.svcThr.push(r.svcThr);
    k.wall.push(r.wall);
    k.cpu.push(r.cpu);
    k.svcWall.push(r.svcWall);
    k.svcCpu.push(r.svcCpu);
  });
  for (const k of Object.values(server_)) for (const v of Object.values(k)) v.sort((a, b) => a - b);
  // The slowest 1 % of requests (client wall): how many overlapped a server GC pause.
  const slow = [...stats.recs.keys()].sort((a, b) => order[b].ms - order[a].ms).slice(0, Math.ceil(order.length / 100));
  const overlapsGc = (r: { start: number; wall: number }) => stats.gcs.some((g) => g.start < r.start + r.wall && g.start + g.ms > r.start);
  const slowWithGc = slow.filter((i) => overlapsGc(stats.recs[i])).length;
  const slowWithClientGc = slow.filter((i) => overlapsClientGc(order[i])).length;
  const slowServerShare = slow.map((i) => stats.recs[i].wall / order[i].ms).sort((a, b) => a - b);
  const gcMs = stats.gcs.map((g) => g.ms).sort((a, b) => a - b);
  trivial.sort((a, b) => a - b);
  all.sort((a, b) => a - b);
  for (const v of Object.values(times)) v.sort((a, b) => a - b);

  const figures = {
    command,
    lines: LINES,
    imported: summary.imported,
    generateSeconds: +(gen.ms / 1000).toFixed(1),
    importSeconds: +(imp.ms / 1000).toFixed(1),
    importPeakRssMb: Math.round(imp.peakRssMb),
    reimportSeconds: +(reimp.ms / 1000).toFixed(1),
    reimportPeakRssMb: Math.round(reimp.peakRssMb),
    importPhasesMs: summary.phases,
    reimportPhasesMs: resummary.phases,
    queries: all.length,
    httpErrors: errors,
    p50ms: +pct(all, 50).toFixed(2),
    p99ms: +pct(all, 99).toFixed(2),
    maxMs: +all[all.length - 1].toFixed(2),
    byKind: Object.fromEntries(Object.entries(times).map(([k, v]) => [k, { n: v.length, p50ms: +pct(v, 50).toFixed(2), p99ms: +pct(v, 99).toFixed(2) }])),
    // Measured in the server process: wall from Node's 'request' event to 'finish', process CPU
    // over the same span, and the part inside the directory service's calls.
    serverByKind: Object.fromEntries(
      Object.entries(server_).map(([k, v]) => [
        k,
        Object.fromEntries(
          (['wall', 'cpu', 'svcWall', 'svcCpu', 'thr', 'svcThr'] as const).map((m) => [m, { p50ms: +pct(v[m], 50).toFixed(3), p90ms: +pct(v[m], 90).toFixed(3), p99ms: +pct(v[m], 99).toFixed(3) }]),
        ),
      ]),
    ),
    trivialRoute: { n: trivial.length, p50ms: +pct(trivial, 50).toFixed(2), p99ms: +pct(trivial, 99).toFixed(2), serverWallP99ms: +pct(trivialStats.recs.map((r) => r.wall).sort((a, b) => a - b), 99).toFixed(3), serverCpuP99ms: +pct(trivialStats.recs.map((r) => r.cpu).sort((a, b) => a - b), 99).toFixed(3) },
    serverGc: { newSpaceMb: stats.newSpaceMb, count: gcMs.length, totalMs: +gcMs.reduce((a, b) => a + b, 0).toFixed(1), p50ms: +(pct(gcMs, 50) ?? 0).toFixed(2), maxMs: +(gcMs[gcMs.length - 1] ?? 0).toFixed(2) },
    clientGc: { count: clientGcs.length, totalMs: +clientGcs.reduce((a, b) => a + b.ms, 0).toFixed(1), maxMs: +Math.max(0, ...clientGcs.map((g) => g.ms)).toFixed(2) },
    // CPU of each of the server's threads during the timed run (ms), by thread name.
    serverThreadsMs: stats.threads,
    clientCpuPerRequestMs: +(measured.cpuMs / measured.runs.length).toFixed(3),
    nodeFlags: args['node-flags'],
    slowest1pct: { n: slow.length, overlappingServerGc: slowWithGc, overlappingClientGc: slowWithClientGc, serverShareP50: +(pct(slowServerShare, 50) ?? 0).toFixed(2) },
  };
  const worstP99 = Math.max(...Object.values(figures.byKind).map((v) => v.p99ms));
  const ok = (searchOnly !== undefined || (figures.importSeconds <= 10 && figures.importPeakRssMb <= 300)) && worstP99 <= 3 && errors === 0;
  const phases = (p: Record<string, number> | undefined) =>
    p ? `read/parse ${sec(p.readMs)} s (insert ${sec(p.insertMs)} s beside it), index ${sec(p.indexMs)} s, compare ${sec(p.compareMs)} s, swap ${sec(p.swapMs)} s` : 'no phases';
  process.stdout.write(
    [
      `command: ${command}`,
      `import of ${LINES.toLocaleString('en-US')} lines (ZIP, caducee directory import): ${figures.importSeconds} s wall, peak RSS ${figures.importPeakRssMb} MB` +
        ` (re-import over it: ${figures.reimportSeconds} s, ${figures.reimportPeakRssMb} MB); generation ${figures.generateSeconds} s`,
      `  phases of the import:    ${phases(figures.importPhasesMs)}`,
      `  phases of the re-import: ${phases(figures.reimportPhasesMs)}`,
      `search over HTTP, ${figures.queries} sequential keep-alive requests: p50 ${figures.p50ms} ms, p99 ${figures.p99ms} ms, max ${figures.maxMs} ms, errors ${errors}`,
      ...Object.entries(figures.byKind).map(([k, v]) => `  ${k.padEnd(22)} n=${String(v.n).padStart(5)}  p50 ${v.p50ms} ms  p99 ${v.p99ms} ms`),
      `server side (process CPU per request, all threads, p50 / p90 / p99 ms; of which inside the directory service; wall p99;\n  then the main thread alone (process CPU minus the other threads' schedstat), the same spans):`,
      ...Object.entries(figures.serverByKind).map(
        ([k, v]) =>
          `  ${k.padEnd(22)} cpu ${v.cpu.p50ms} / ${v.cpu.p90ms} / ${v.cpu.p99ms}  service cpu ${v.svcCpu.p50ms} / ${v.svcCpu.p90ms} / ${v.svcCpu.p99ms}  server wall p99 ${v.wall.p99ms}\n` +
          `  ${''.padEnd(22)} main thread ${v.thr.p50ms} / ${v.thr.p90ms} / ${v.thr.p99ms}  service ${v.svcThr.p50ms} / ${v.svcThr.p90ms} / ${v.svcThr.p99ms}  server wall p50 ${v.wall.p50ms}`,
      ),
      `  server threads' CPU during the run (ms): ${Object.entries(figures.serverThreadsMs).map(([k, v]) => `${k} ${v}`).join(', ')}`,
      `  trivial route /healthz over HTTP: p50 ${figures.trivialRoute.p50ms} ms, p99 ${figures.trivialRoute.p99ms} ms over ${figures.trivialRoute.n} (server wall p99 ${figures.trivialRoute.serverWallP99ms} ms, CPU p99 ${figures.trivialRoute.serverCpuP99ms} ms)`,
      `  server GC during the run (young generation ${figures.serverGc.newSpaceMb} MB): ${figures.serverGc.count} pauses, ${figures.serverGc.totalMs} ms in all, p50 ${figures.serverGc.p50ms} ms, max ${figures.serverGc.maxMs} ms; client GC: ${figures.clientGc.count} pauses, ${figures.clientGc.totalMs} ms, max ${figures.clientGc.maxMs} ms; client CPU ${figures.clientCpuPerRequestMs} ms per request; node flags: ${figures.nodeFlags || 'none'}`,
      `  slowest 1 % (${figures.slowest1pct.n} requests): ${figures.slowest1pct.overlappingServerGc} overlapped a server GC pause, ${figures.slowest1pct.overlappingClientGc} a client one; server wall / client wall, median ${figures.slowest1pct.serverShareP50}`,
      `goals (import ≤ 10 s, peak RSS ≤ 300 MB, p99 ≤ 3 ms for every kind): ${ok ? 'met' : 'NOT met'}`,
    ].join('\n') + '\n',
  );
  if (args.json) process.stdout.write(JSON.stringify(figures) + '\n');
  cleanup();
  process.exit(0);
} catch (e: any) {
  process.stderr.write(`bench failed: ${e.stack ?? e}\n`);
  cleanup();
  process.exit(1);
}
