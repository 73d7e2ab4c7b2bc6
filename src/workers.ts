// `caducee start --workers N`: one operator served by N processes on one machine (node:cluster).
// The primary runs no listener and no service of its own: it forks the workers, forwards the
// relay's messages between them (relay/cluster.ts), restarts a worker that dies (with backoff),
// and forwards SIGTERM/SIGINT (stop) and SIGHUP (reload CA/CRL files). Each worker runs the whole
// operator (startOperator); the cluster module shares each listening socket between the workers
// and the primary hands accepted connections to them in turn (SCHED_RR), ports 0 included: the
// Nth listener of every worker gets the same port as the first worker's Nth listener.
//
// SQLite is shared by the workers in WAL mode (readers never wait; one writer at a time, the
// others wait up to the busy timeout: store/sqlite). The first worker starts alone (it migrates
// the database, and a configuration error is reported once, by it); the others then start together.
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import pino from 'pino';
import type { Config } from './config/index.js';
import { startOperator, storeRelayTransport, type Operator } from './main.js';
import { ClusterWorkerTransport, forwardRelayMessages } from './relay/cluster.js';
import type { RelayTransport } from './relay/index.js';
import type { Store } from './store/types.js';

/** Worker → primary: the operator is up (its ports). */
interface ReadyMessage {
  caducee: 'ready';
  ports: Operator['ports'];
}
const isReady = (m: unknown): m is ReadyMessage => typeof m === 'object' && m !== null && (m as ReadyMessage).caducee === 'ready';

/** Set in the environment of the first worker only: it logs the startup lines (printed once). */
const ANNOUNCE_ENV = 'CADUCEE_WORKER_ANNOUNCE';

export interface PrimaryOptions {
  workers: number;
  logger: Logger;
  /** Restart delays: the first, doubled after each quick death up to the last (default 500 ms … 30 s). */
  backoffMs?: { min: number; max: number };
}

/** A worker that lived this long before dying is restarted after the shortest delay again. */
const STABLE_MS = 60_000;

/**
 * The cluster primary. Resolves with the exit status once every worker has stopped (after
 * SIGTERM/SIGINT), or when the first worker could not start (its own status: it printed why).
 */
export function runPrimary(o: PrimaryOptions): Promise<number> {
  // Round robin in the primary (the default off Windows, stated so that it stays so).
  cluster.schedulingPolicy = cluster.SCHED_RR;
  const log = o.logger;
  const { min, max } = o.backoffMs ?? { min: 500, max: 30_000 };
  /** Live workers and when each was forked. */
  const started = new Map<Worker, number>();
  const readyPids = new Set<number>();
  let announcedAll = false;
  let quickDeaths = 0;
  let stopping = false;
  let firstReady = false;
  const stopForwarding = forwardRelayMessages(cluster);

  return new Promise<number>((resolve) => {
    const fork = (announce: boolean) => {
      const w = cluster.fork(announce ? { [ANNOUNCE_ENV]: '1' } : {});
      started.set(w, Date.now());
      w.on('message', (m) => {
        if (!isReady(m)) return;
        if (!firstReady) {
          firstReady = true;
          for (let i = 1; i < o.workers; i++) fork(false);
        }
        readyPids.add(w.process.pid!);
        if (announcedAll) log.info({ pid: w.process.pid, workers: [...readyPids] }, 'worker restarted');
        else if (readyPids.size === o.workers) {
          announcedAll = true;
          log.info({ workers: o.workers, pids: [...readyPids] }, 'workers started');
        }
      });
      w.on('exit', (code, signal) => {
        const lived = Date.now() - (started.get(w) ?? Date.now());
        started.delete(w);
        readyPids.delete(w.process.pid!);
        if (stopping) {
          if (started.size === 0) finish(0);
          return;
        }
        if (!firstReady) {
          // The first worker could not start: a configuration or environment error it printed itself.
          stopForwarding();
          resolve(typeof code === 'number' && code !== 0 ? code : 1);
          return;
        }
        quickDeaths = lived >= STABLE_MS ? 0 : quickDeaths + 1;
        const delay = Math.min(max, min * 2 ** Math.max(0, quickDeaths - 1));
        log.error({ pid: w.process.pid, code, signal, restartInMs: delay }, 'worker died; restarting it');
        setTimeout(() => {
          if (!stopping) fork(false);
        }, delay).unref();
      });
    };

    let finished = false;
    const finish = (status: number) => {
      if (finished) return;
      finished = true;
      stopForwarding();
      resolve(status);
    };
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping the workers');
      if (!started.size) return finish(0);
      for (const w of started.keys()) w.process.kill('SIGTERM');
      // A worker still running after the grace period is killed.
      setTimeout(() => {
        for (const w of started.keys()) w.process.kill('SIGKILL');
      }, 20_000).unref();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      for (const w of started.keys()) w.process.kill('SIGHUP');
    });
    fork(true);
  });
}

/**
 * A cluster worker: the whole operator, its Core events relayed through the primary (or through
 * `relay` when given: over PostgreSQL the workers listen to the database like any node). Stops on
 * SIGTERM/SIGINT and when the primary is gone (IPC channel closed).
 */
export async function runWorker(config: Config, relay?: RelayTransport): Promise<Operator> {
  const worker = cluster.worker!;
  const logger = pino({ level: config.log.level, base: { operator: config.operator.hostname, pid: process.pid, worker: worker.id } });
  // Over PostgreSQL every worker listens to the database like any node (the other nodes' events
  // reach it there); on SQLite the primary forwards the events between the workers.
  const chosen = (store: Store) => relay ?? storeRelayTransport(store, config, logger) ?? new ClusterWorkerTransport();
  const op = await startOperator(config, { logger, relay: chosen, announce: process.env[ANNOUNCE_ENV] === '1' });
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= op.stop().then(
      () => process.exit(0),
      (e) => {
        logger.error({ err: e?.message }, 'worker stop failed');
        process.exit(1);
      },
    ));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.on('SIGHUP', () => op.reloadAnchors());
  process.once('disconnect', stop);
  process.send!({ caducee: 'ready', ports: op.ports } satisfies ReadyMessage);
  return op;
}
