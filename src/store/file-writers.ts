// Durable file writes off the event loop, for BlobStore.putMany (a MULTIAPPEND's message files,
// issue 15): a few worker threads that make the system calls synchronously — open, write, fsync,
// close per file; rename, then one fsync per directory — instead of one trip through libuv's pool
// per call (five to seven per file, each a thread handoff: about three quarters of the CPU the
// files cost on that path). The event loop only posts one message per worker and batch step.
// Several workers, so that on a disk their fsyncs overlap as the pool's did. The workers are
// plain JavaScript (node:fs only), referenced only while a request is pending.
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
function writeAll(fd, buf) {
  for (let off = 0; off < buf.length; ) off += fs.writeSync(fd, buf, off, buf.length - off);
}
parentPort.on('message', (m) => {
  try {
    if (m.op === 'write') {
      const data = Buffer.from(m.data);
      for (const f of m.files) {
        const fd = fs.openSync(f.path, 'w', 0o600);
        try {
          writeAll(fd, data.subarray(f.start, f.end));
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
      }
    } else if (m.op === 'place') {
      for (const d of m.dirs) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
      for (const [from, to] of m.renames) fs.renameSync(from, to);
      for (const d of m.syncDirs) {
        const fd = fs.openSync(d, 'r');
        try {
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
      }
    }
    parentPort.postMessage({ id: m.id });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: { message: e.message, code: e.code } });
  }
});
`;

type Request = { op: 'write'; files: { path: string; parts: Buffer[] }[] } | { op: 'place'; dirs: string[]; renames: [string, string][]; syncDirs: string[] };

class FileWriter {
  private worker?: Worker;
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: unknown) => void }>();
  private seq = 0;

  run(req: Request): Promise<void> {
    const w = this.start();
    const id = ++this.seq;
    const done = new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    if (this.pending.size === 1) w.ref();
    if (req.op === 'write') {
      // One buffer of its own holding every file of the request, moved to the worker (no copy).
      const total = req.files.reduce((n, f) => n + f.parts.reduce((m, p) => m + p.length, 0), 0);
      const data = Buffer.allocUnsafeSlow(total);
      let off = 0;
      const files = req.files.map((f) => {
        const start = off;
        for (const p of f.parts) off += p.copy(data, off);
        return { path: f.path, start, end: off };
      });
      const ab = data.buffer as ArrayBuffer;
      w.postMessage({ id, op: 'write', files, data: ab }, [ab]);
    } else w.postMessage({ id, ...req });
    return done;
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER_SOURCE, { eval: true });
    w.unref();
    w.on('message', (m: { id: number; error?: { message: string; code?: string } }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) w.unref();
      if (m.error) p.reject(Object.assign(new Error(m.error.message), m.error.code ? { code: m.error.code } : {}));
      else p.resolve();
    });
    const fail = (e: unknown) => {
      if (this.worker === w) this.worker = undefined;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`file writer thread exited (code ${code})`)));
    this.worker = w;
    return w;
  }
}

/** A few FileWriters; a batch is split among them in contiguous slices. */
export class FileWriters {
  private readonly writers: FileWriter[];

  constructor(count = 4) {
    this.writers = Array.from({ length: count }, () => new FileWriter());
  }

  /** Each file written whole and fsynced (mode 0600); rejects with the first failure once all ended. */
  async writeDurable(files: { path: string; parts: Buffer[] }[]): Promise<void> {
    await this.split(files, (w, slice) => w.run({ op: 'write', files: slice }));
  }

  /**
   * `dirs` created if missing, every rename done, then each directory of `syncDirs` fsynced (by the
   * writer that renamed into it, after its renames). Renames into one directory go to one writer.
   */
  async place(renames: [string, string][], dirOf: (to: string) => string): Promise<void> {
    const byDir = new Map<string, [string, string][]>();
    for (const r of renames) {
      const d = dirOf(r[1]);
      const list = byDir.get(d);
      if (list) list.push(r);
      else byDir.set(d, [r]);
    }
    const groups = [...byDir.entries()];
    await this.split(groups, (w, slice) => {
      const dirs = slice.map(([d]) => d);
      return w.run({ op: 'place', dirs, renames: slice.flatMap(([, rs]) => rs), syncDirs: dirs });
    });
  }

  private async split<T>(items: T[], fn: (w: FileWriter, slice: T[]) => Promise<void>): Promise<void> {
    if (items.length === 0) return;
    const n = Math.min(this.writers.length, items.length);
    const per = Math.ceil(items.length / n);
    const slices = Array.from({ length: n }, (_, k) => items.slice(k * per, (k + 1) * per)).filter((s) => s.length > 0);
    const results = await Promise.allSettled(slices.map((slice, k) => fn(this.writers[k], slice)));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }
}
