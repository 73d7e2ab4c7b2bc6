// The import's side of a new national directory snapshot: takes the import lock, turns entries
// into rows (snapshot-format.ts), and hands them to a SnapshotBuilder — in the import worker
// (import-worker.ts) when it can be started, else in this thread.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import type { DirectoryEntry } from '../../directory-model/entry.js';
import { SnapshotBuilder, type CommitMeta, type CommitOptions } from './snapshot-builder.js';
import { BatchEncoder, DirectoryStoreError, SNAPSHOT_FILE, type Batch } from './snapshot-format.js';
import { TermDictionary } from './vocabulary.js';
import type { SnapshotInfo, SnapshotWriter } from './types.js';

/** Guards against two imports at once: a lock file holding the importer's pid. */
function takeLock(file: string) {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return;
    } catch (e: any) {
      if (e.code !== 'EEXIST') throw e;
      const pid = Number(readFileSync(file, 'utf8'));
      let alive = pid === process.pid;
      try {
        if (pid > 0 && !alive) process.kill(pid, 0);
        alive = pid > 0;
      } catch (k: any) {
        alive = k.code === 'EPERM';
      }
      if (alive) throw new DirectoryStoreError(`another directory import is running (pid ${pid}); wait for it to finish`);
      rmSync(file, { force: true }); // stale lock of a dead import
    }
  }
  throw new DirectoryStoreError(`cannot take the import lock ${file}`);
}

const BATCH_ROWS = 2000;
/** A batch is also sent when its encoded rows pass this size. */
const BATCH_BYTES = 3 << 19;
const MAX_IN_FLIGHT = 8;
/** Batches read while the worker boots, before the reading waits for it (~60,000 lines, ≤ 48 MB). */
const STARTUP_QUEUE = 32;

/**
 * The import's writer: rows are built here and stored by a SnapshotBuilder, in a worker thread
 * when possible (two cores: reading and parsing here, SQLite there), else in this
 * thread.
 */
export class SqliteSnapshotWriter implements SnapshotWriter {
  private readonly lockFile: string;
  private readonly tmpFile: string;
  private readonly started = Date.now();
  private builder?: SnapshotBuilder;
  private worker?: Worker;
  /** Rows not yet sent to the worker. */
  private readonly dictionary = new TermDictionary();
  private readonly batch = new BatchEncoder(this.dictionary);
  private inFlight = 0;
  private drained: (() => void) | undefined;
  private failure: Error | undefined;
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private nextCall = 1;
  private done = false;
  private rank = 0;
  private onPhase?: (phase: string) => void;
  /** Until the worker is ready (or replaced by this thread's builder): its outcome, and the batches read meanwhile. */
  private startup: Promise<void> | undefined;
  private queued: Batch[] = [];

  private constructor(readonly dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.lockFile = path.join(dataDir, `${SNAPSHOT_FILE}.lock`);
    takeLock(this.lockFile);
    this.tmpFile = path.join(dataDir, `${SNAPSHOT_FILE}.import-${process.pid}`);
  }

  /**
   * Opens a writer; `threaded` (default) runs most of SQLite's work in a worker thread, and falls
   * back to this thread when a worker cannot be started (`onFallback` says why). The worker boots
   * (tsx, better-sqlite3: ~0.3–0.4 s) while the extraction is already being read: the first
   * batches wait here (up to STARTUP_QUEUE) until it is ready, and go to this thread's own
   * builder if it never is.
   */
  static async open(
    dataDir: string,
    opts: { threaded?: boolean; onFallback?: (reason: string) => void; /** The worker's module (tests: one that cannot start). */ workerModule?: string } = {},
  ): Promise<SqliteSnapshotWriter> {
    const w = new SqliteSnapshotWriter(dataDir);
    try {
      if (opts.threaded ?? true) {
        w.startup = w.startWorker(opts.workerModule ?? new URL('./import-worker.ts', import.meta.url).href).then(
          () => w.workerReady(),
          (e: any) => w.fallBack(e, opts.onFallback),
        );
        // Neither outcome throws: a failure becomes the in-thread builder's (or the import's).
        w.startup.catch(() => {});
        return w;
      }
      w.builder = new SnapshotBuilder(dataDir, w.tmpFile);
    } catch (e) {
      await w.abort();
      throw e;
    }
    return w;
  }

  /** The worker answered: the batches read meanwhile go to it, in order. */
  private workerReady() {
    this.startup = undefined;
    const queued = this.queued;
    this.queued = [];
    for (const b of queued) this.post(b);
  }

  /** The worker could not start: this thread builds the snapshot, from the batches read meanwhile. */
  private async fallBack(e: any, onFallback?: (reason: string) => void) {
    onFallback?.(`import worker unavailable (${e.message}); importing in one thread`);
    const w = this.worker;
    this.worker = undefined; // its later events are ignored
    await w?.terminate().catch(() => {});
    this.failure = undefined;
    try {
      this.builder = new SnapshotBuilder(this.dataDir, this.tmpFile);
      const queued = this.queued;
      this.queued = [];
      for (const b of queued) this.builder.addBatch(b);
    } catch (x: any) {
      this.fail(x);
    } finally {
      this.startup = undefined;
      this.wake();
    }
  }

  private async startWorker(here: string) {
    const { Worker } = await import('node:worker_threads');
    // The worker runs TypeScript like the CLI does: tsx's loader (a dependency) is registered
    // in the worker first, then the worker module is imported. Its young generation is kept
    // small (8 MB instead of V8's default, up to 48): its garbage dies young (batches, decoded
    // addresses), and at 200,000 lines the import's peak RSS went from 296–298 to 268–275 MB, CPU
    // unchanged (load ~12).
    const tsxApi = import.meta.resolve('tsx/esm/api');
    const boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(here)}); })`;
    const w = new Worker(boot, { eval: true, workerData: { dataDir: this.dataDir, tmpFile: this.tmpFile }, resourceLimits: { maxOldGenerationSizeMb: 512, maxYoungGenerationSizeMb: 8 } });
    this.worker = w as unknown as Worker;
    w.on('message', (m: any) => {
      if (this.worker !== w) return;
      if (m.type === 'ack') {
        this.inFlight--;
        if (this.inFlight < MAX_IN_FLIGHT) this.wake();
      } else if (m.type === 'error') {
        this.fail(new DirectoryStoreError(m.message));
      } else if (m.type === 'reply') {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.error) p?.reject(new DirectoryStoreError(m.error));
        else p?.resolve(m.value);
      } else if (m.type === 'phase') {
        this.onPhase?.(m.phase);
      }
    });
    w.on('error', (e) => {
      if (this.worker === w) this.fail(e);
    });
    w.on('exit', (code) => {
      if (this.worker === w && !this.done) this.fail(new DirectoryStoreError(`the import worker stopped (exit code ${code})`));
    });
    await this.call('ready', undefined);
  }

  private fail(e: Error) {
    if (!this.failure) this.failure = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    this.wake();
  }

  /** Lets a reading that waits in drain() go on. */
  private wake() {
    const d = this.drained;
    this.drained = undefined;
    d?.();
  }

  private call(op: string, arg: unknown): Promise<any> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextCall++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker!.postMessage({ type: 'call', id, op, arg });
    });
  }

  /** The import has failed (a worker that fails to start is replaced, not a failure). */
  private get failed(): Error | undefined {
    return this.startup ? undefined : this.failure;
  }

  add(e: DirectoryEntry, lineNo: number) {
    if (this.failed) throw this.failed;
    const rank = ++this.rank;
    this.batch.add(rank, e, lineNo);
    if (this.batch.rows >= BATCH_ROWS || this.batch.bytes >= BATCH_BYTES) this.flush();
  }

  private flush() {
    if (!this.batch.rows) return;
    const batch = this.batch.take();
    if (this.builder) return this.builder.addBatch(batch);
    if (this.startup) this.queued.push(batch);
    else this.post(batch);
  }

  private post(batch: Batch) {
    if (!this.worker) return;
    this.inFlight++;
    // Both buffers are transferred (moved, not copied) to the worker.
    this.worker.postMessage({ type: 'rows', batch }, [batch.text, batch.numbers]);
  }

  /** Resolves when the worker has caught up enough (bounded memory between the two threads). */
  drain(): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.startup ? this.queued.length < STARTUP_QUEUE : !this.worker || this.inFlight < MAX_IN_FLIGHT) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.drained = () => (this.failed ? reject(this.failed) : resolve());
    });
  }

  async commit(meta: CommitMeta, onPhase?: (phase: string) => void): Promise<SnapshotInfo> {
    try {
      let info: SnapshotInfo;
      this.flush();
      await this.startup;
      if (this.failure) throw this.failure;
      const o: CommitOptions = { started: this.started, readMs: Date.now() - this.started, vocabularyComplete: !this.dictionary.full };
      if (this.builder) info = this.builder.commit(meta, o, onPhase);
      else {
        this.onPhase = onPhase;
        info = await this.call('commit', { meta, o });
      }
      this.done = true;
      await this.worker?.terminate();
      rmSync(this.lockFile, { force: true });
      return info;
    } catch (e) {
      await this.abort();
      throw e;
    }
  }

  async abort() {
    this.done = true;
    await this.startup;
    this.done = true;
    this.queued = [];
    this.builder?.abort();
    if (this.worker) {
      await this.worker.terminate().catch(() => {});
      this.worker = undefined;
    }
    rmSync(this.tmpFile, { force: true });
    rmSync(this.lockFile, { force: true });
  }
}
