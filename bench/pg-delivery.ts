// The store's part of a message's way in and out, SQLite against PostgreSQL with one and two nodes
// (issue 12: the linear model of how many nodes an operator needs wants CPU and database round
// trips per message). See bench/README.md, "pg-delivery.ts".
//
//   node --import tsx bench/pg-delivery.ts [--messages N] [--concurrency C] [--json]
//
// Three workloads per engine, each message one deliver() (one transaction), as the MX commits it:
//   one-folder  every message to the same INBOX (the folder's row lock serializes them)
//   spread      messages over 20 mailboxes (what an operator's intake looks like)
//   queue       N remote recipients queued, then claimed in batches of 20 and completed as sent by
//               the queue workers (one per node)
// Figures: messages/s, this process's CPU ms per message (the store's code and the driver),
// PostgreSQL's CPU ms per message (its backends serving this run, read from /proc: the server must
// run on this machine), round trips per message (queries sent, BEGIN and COMMIT included).
// "2 nodes" are two PgStore pools in this one process: the database's side of two nodes, not their
// CPU (which a node's own process would add).
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { benchDir, cleanupAll, clientCpuMs, installSignalHandlers, intOption, onCleanup, parseArgsOrUsage } from './common.js';
import { pgTestDatabase } from '../test/support/postgres.js';
import { PgStore } from '../src/store/postgres/index.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import type { DeliveryRequest, Store } from '../src/store/types.js';

const usage = (msg: string): never => {
  process.stderr.write(`pg-delivery: ${msg}\nusage: node --import tsx bench/pg-delivery.ts [--messages N] [--concurrency C] [--json]\n`);
  process.exit(2);
};
const args = parseArgsOrUsage(process.argv.slice(2), { messages: { type: 'string' }, concurrency: { type: 'string' }, json: { type: 'boolean' } }, usage);
const int = intOption(usage);
const MESSAGES = int(args.messages ?? '2000', 'messages', 100, 100_000);
const CONCURRENCY = int(args.concurrency ?? '8', 'concurrency', 1, 64);
installSignalHandlers('pg-delivery', 20 * 60_000);

// Round trips: every query a pg client sends (pool.query goes through Client#query too).
let roundTrips = 0;
const clientQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...a: unknown[]) {
  roundTrips++;
  return (clientQuery as (...x: unknown[]) => unknown).apply(this, a);
} as typeof pg.Client.prototype.query;

/** CPU ms (utime+stime) of a process, 0 when it is gone. */
function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

interface Engine {
  name: string;
  /** The stores messages alternate over (one per node). */
  nodes: Store[];
  /** PostgreSQL backends serving the nodes (after warm-up), for their CPU. */
  backends(): Promise<number[]>;
  close(): Promise<void>;
}

interface Result {
  engine: string;
  workload: string;
  messages: number;
  perSecond: number;
  nodeCpuMsPerMessage: number;
  postgresCpuMsPerMessage: number | null;
  roundTripsPerMessage: number | null;
}

const blob = (n: number) => n.toString(16).padStart(64, '0');

async function seed(s: Store, tag: string): Promise<number[]> {
  const st = await s.createStructure({ idType: 'SIRET', idValue: '13000000000019', name: 'Bench' });
  const ids: number[] = [];
  for (let i = 0; i < 20; i++) ids.push((await s.createMailbox({ address: `m${i}.${tag}@bench.test`, type: 'ORG', displayName: `M${i}`, ownerUserId: null, practitionerId: null, structureId: st.id, listeRouge: false })).id);
  return ids;
}

/** Runs `total` jobs with CONCURRENCY workers; job i on node i % nodes. */
async function run(total: number, job: (i: number) => Promise<unknown>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < total) await job(next++);
    }),
  );
}

async function measure(e: Engine, workload: string, count: number, body: () => Promise<void>): Promise<Result> {
  // Backends present at the start count from there; one a pool opened during the run (it closes
  // connections idle for 10 s) counts whole, its start included.
  const before = new Map((await e.backends()).map((p) => [p, cpuMs(p)]));
  const rt0 = roundTrips;
  const cpu0 = clientCpuMs();
  const t0 = performance.now();
  await body();
  const wall = performance.now() - t0;
  const cpu = clientCpuMs() - cpu0;
  const pids = [...new Set([...before.keys(), ...(await e.backends())])];
  const pgCpu = pids.reduce((n, p) => n + Math.max(0, cpuMs(p) - (before.get(p) ?? 0)), 0);
  return {
    engine: e.name,
    workload,
    messages: count,
    perSecond: Math.round((count / wall) * 1000),
    nodeCpuMsPerMessage: +(cpu / count).toFixed(3),
    postgresCpuMsPerMessage: pids.length ? +(pgCpu / count).toFixed(3) : null,
    roundTripsPerMessage: e.name === 'sqlite' ? null : +((roundTrips - rt0) / count).toFixed(2),
  };
}

async function workloads(e: Engine): Promise<Result[]> {
  const mailboxes = await seed(e.nodes[0], e.name.replace(/\W/g, ''));
  const node = (i: number) => e.nodes[i % e.nodes.length];
  const intake = (i: number, to: number): DeliveryRequest => ({
    blobId: blob(i),
    size: 10_240,
    internalDate: new Date(),
    envelopeFrom: 'a@a.mssante.test',
    localMailboxIds: [to],
    remote: [],
    usage: [{ at: new Date().toISOString(), structureId: null, mailboxType: 'ORG', flow: 'received', peer: 'operator', attachment: false, xdm: false }],
  });
  // Warm-up: every pool connection opened, statements planned once.
  await run(CONCURRENCY * 4 * e.nodes.length, (i) => node(i).deliver(intake(1e6 + i, mailboxes[i % 20])));
  const results: Result[] = [];
  results.push(await measure(e, 'one-folder', MESSAGES, () => run(MESSAGES, (i) => node(i).deliver(intake(i, mailboxes[0])))));
  results.push(await measure(e, 'spread', MESSAGES, () => run(MESSAGES, (i) => node(i).deliver(intake(MESSAGES + i, mailboxes[i % 20])))));
  // The queue: items queued (not measured), then claimed and completed by one worker per node.
  await run(MESSAGES, (i) =>
    node(i).deliver({ ...intake(2 * MESSAGES + i, mailboxes[0]), localMailboxIds: [], remote: [{ recipient: `r${i}@peer.test`, domain: 'peer.test', notify: null, orcpt: null }], senderMailboxId: mailboxes[0] }),
  );
  results.push(
    await measure(e, 'queue', MESSAGES, async () => {
      await Promise.all(
        e.nodes.map(async (s, n) => {
          for (;;) {
            const batch = await s.claimQueueItems(`bench-${n}`, Date.now(), 20, 60_000);
            if (batch.length === 0) return;
            await s.completeQueueItems({ sent: batch.map((q) => q.id), failed: [], deferred: [], dsns: [] });
          }
        }),
      );
    }),
  );
  const left = (await e.nodes[0].listQueue({ status: 'queued' })).length;
  if (left) throw new Error(`queue workload: ${left} items left queued`);
  return results;
}

async function sqliteEngine(): Promise<Engine> {
  const dir = benchDir('caducee-pg-delivery-');
  const s = SqliteStore.open(path.join(dir, 'store.db'));
  return { name: 'sqlite', nodes: [s], backends: async () => [], close: () => s.close() };
}

async function pgEngine(url: string, nodes: number): Promise<Engine> {
  const schema = `bench_${nodes}`;
  const stores: PgStore[] = [];
  for (let i = 0; i < nodes; i++) stores.push(await PgStore.open(url, { schema, poolSize: Math.max(1, Math.ceil(CONCURRENCY / nodes)) }));
  const db = new URL(url).pathname.slice(1);
  return {
    name: `postgres-${nodes}-node${nodes > 1 ? 's' : ''}`,
    nodes: stores as unknown as Store[],
    async backends() {
      // Our database's backends: the pools' connections, the one asking included (this run's only clients of it).
      return (await stores[0].connection.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [db])).map((r) => r.pid);
    },
    async close() {
      for (const s of stores) await s.close();
    },
  };
}

const results: Result[] = [];
try {
  const db = await pgTestDatabase();
  if ('skip' in db) throw new Error(db.skip);
  onCleanup('drop the database', () => db.drop());
  for (const make of [() => sqliteEngine(), () => pgEngine(db.url, 1), () => pgEngine(db.url, 2)]) {
    const e = await make();
    try {
      results.push(...(await workloads(e)));
    } finally {
      await e.close();
    }
  }
  console.log(`pg-delivery: ${MESSAGES} messages per workload, concurrency ${CONCURRENCY}, ${os.cpus().length} CPUs, load average ${os.loadavg()[0].toFixed(1)} at the end`);
  console.log(['engine', 'workload', 'msg/s', 'node CPU ms/msg', 'PG CPU ms/msg', 'round trips/msg'].join('\t'));
  for (const r of results) console.log([r.engine, r.workload, r.perSecond, r.nodeCpuMsPerMessage, r.postgresCpuMsPerMessage ?? '-', r.roundTripsPerMessage ?? '-'].join('\t'));
  if (args.json) console.log(JSON.stringify({ messages: MESSAGES, concurrency: CONCURRENCY, results }));
} catch (e) {
  process.stderr.write(`pg-delivery: ${(e as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await cleanupAll();
}
