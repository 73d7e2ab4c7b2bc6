// The relay's node:cluster transport, for `caducee start --workers N` on one machine: a worker
// sends its messages to the primary over the IPC channel, the primary forwards each to every
// other worker. IPC between a live primary and worker loses nothing, so this transport reports
// no gaps (a worker that dies takes its sessions with it; its replacement starts fresh).
import type { Cluster, Worker } from 'node:cluster';
import type { RelayHandlers, RelayTransport } from './index.js';

interface RelayIpcMessage {
  caducee: 'relay';
  payload: string;
}

const isRelayMessage = (m: unknown): m is RelayIpcMessage =>
  typeof m === 'object' && m !== null && (m as RelayIpcMessage).caducee === 'relay' && typeof (m as RelayIpcMessage).payload === 'string';

/** In a cluster worker: publishes to the primary, receives what the primary forwards. */
export class ClusterWorkerTransport implements RelayTransport {
  readonly kind = 'cluster';
  /** IPC has no small limit; this one keeps a runaway event from flooding every worker. */
  readonly maxPayloadBytes = 64 * 1024;
  private onMessage?: (m: unknown) => void;

  constructor(private readonly proc: NodeJS.Process = process) {
    if (!proc.send) throw new Error('the cluster relay runs in a cluster worker (a process with an IPC channel to its primary)');
  }

  async start(h: RelayHandlers): Promise<void> {
    this.onMessage = (m) => {
      if (isRelayMessage(m)) h.message(m.payload);
    };
    this.proc.on('message', this.onMessage);
  }

  publish(payload: string): boolean {
    if (!this.proc.connected || !this.proc.send) return false;
    this.proc.send({ caducee: 'relay', payload } satisfies RelayIpcMessage);
    return true;
  }

  async close(): Promise<void> {
    if (this.onMessage) this.proc.off('message', this.onMessage);
    this.onMessage = undefined;
  }
}

/**
 * In the cluster primary: forwards each worker's relay message to every other live worker.
 * Returns the function that stops forwarding. `onForward` counts what crossed (tests, logs).
 */
export function forwardRelayMessages(cluster: Cluster, onForward?: (from: Worker) => void): () => void {
  const l = (from: Worker, m: unknown) => {
    if (!isRelayMessage(m)) return;
    for (const w of Object.values(cluster.workers ?? {})) {
      if (w && w !== from && w.isConnected()) w.send(m);
    }
    onForward?.(from);
  };
  cluster.on('message', l);
  return () => cluster.off('message', l);
}
