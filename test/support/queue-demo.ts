// The demo trust space of the queue-claim tests (test/queue-claims.test.ts on SQLite,
// test/queue-claims-postgres.test.ts on PostgreSQL): operators A and B with a fast queue, and
// more queue workers of A over a store of the test's choice (another process's connection to A's
// SQLite file, or another node's PgStore pool), each stopped with its store by stop().
import { readFileSync } from 'node:fs';
import type pino from 'pino';
import { Core } from '../../src/core/index.js';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../../src/demo/space.js';
import { OutboundWorker } from '../../src/delivery/worker.js';
import type { Operator } from '../../src/main.js';
import type { Store } from '../../src/store/types.js';
import { tempDir, testLogger } from '../helpers.js';

export const FAST_QUEUE = { queue: { retrySeconds: [0.3], pollSeconds: 0.1, giveUpSeconds: 600, connectTimeoutSeconds: 3 } };

export interface QueueDemo {
  layout: DemoLayout;
  demo: RunningDemo;
  A: Operator;
  B: Operator;
  /** Run by stop(), last first, before the demo stops. */
  closers: (() => Promise<unknown>)[];
  /** A queue worker of operator A over `store` (closed with the worker by stop()), not started. */
  worker(store: Store & { close(): Promise<void> }, o?: { leaseSeconds?: number; attemptLimitSeconds?: number; stopGraceSeconds?: number; concurrency?: number; logger?: pino.Logger }): OutboundWorker;
  stop(): Promise<void>;
}

export async function startQueueDemo(): Promise<QueueDemo> {
  const { dir, cleanup } = tempDir();
  let layout: DemoLayout;
  let demo: RunningDemo;
  try {
    layout = await prepareDemo(dir, { ports: 'ephemeral', configOverrides: FAST_QUEUE });
    demo = await startDemo(layout, { logger: testLogger(), configOverrides: FAST_QUEUE });
  } catch (e) {
    cleanup();
    throw e;
  }
  const [A, B] = demo.operators as [Operator, Operator];
  const closers: (() => Promise<unknown>)[] = [];
  const a = layout.operators[0];
  return {
    layout,
    demo,
    A,
    B,
    closers,
    worker(store, o = {}) {
      const worker = new OutboundWorker({
        store,
        core: new Core(store, A.config.operator.domains),
        blobs: A.blobs,
        trust: A.trust,
        hostname: A.config.operator.hostname,
        postmaster: `postmaster@${A.config.operator.domains[0]}`,
        tls: () => ({ key: readFileSync(a.key, 'utf8'), cert: readFileSync(a.chain, 'utf8'), ca: readFileSync(layout.caBundle, 'utf8') }),
        retrySeconds: FAST_QUEUE.queue.retrySeconds,
        giveUpSeconds: FAST_QUEUE.queue.giveUpSeconds,
        pollSeconds: FAST_QUEUE.queue.pollSeconds,
        concurrency: o.concurrency ?? 4,
        connectTimeoutSeconds: FAST_QUEUE.queue.connectTimeoutSeconds,
        leaseSeconds: o.leaseSeconds,
        attemptLimitSeconds: o.attemptLimitSeconds,
        stopGraceSeconds: o.stopGraceSeconds,
        logger: o.logger ?? testLogger(),
      });
      closers.push(async () => {
        await worker.stop();
        await store.close();
      });
      return worker;
    },
    async stop() {
      for (const c of closers.reverse()) await c();
      await demo.stop();
      cleanup();
    },
  };
}
