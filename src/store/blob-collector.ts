// Removes message files nothing references any more. Rows that reference a file are counted by
// the store itself: each removal of one (expunge, folder or mailbox deletion, queue item sent or
// failed) records the file as a candidate in the same transaction (migration 7's triggers). For
// each candidate, oldest first, MessageFiles.removeIfUnreferenced:
//   1. one transaction decides: still referenced → candidate dropped; pinned by a put in progress
//      or claimed by another collector → kept for a later run; else its analysis is forgotten and
//      the removal claimed (claimBlobRemoval), the candidate kept;
//   2. the file is removed and its directory fsynced (or its PostgreSQL rows deleted);
//   3. the candidate is forgotten.
// A crash after 1 or 2 leaves the candidate, so a later run repeats 2 and 3: no crash can leave
// a row pointing at a removed file, and none leaves a removed file's candidate behind forever.
// Several processes and nodes may run collectors on one store: the claim keeps them apart, and
// a put of the same content on any of them is kept out of the way (store/message-files.ts).
import type { Logger } from 'pino';
import type { MessageFiles } from './message-files.js';
import type { BlobMetaStore } from './types.js';

export interface BlobCollectorOptions {
  /** How often candidates are collected (ms). */
  intervalMs?: number;
  /** Candidates handled per batch; the event loop is yielded between batches. */
  batch?: number;
  /** Temporary files (interrupted puts) older than this are removed at start (ms). */
  tmpMaxAgeMs?: number;
}

export interface CollectionResult {
  removed: number;
  kept: number;
}

export class BlobCollector {
  private timer?: NodeJS.Timeout;
  private running?: Promise<CollectionResult>;

  constructor(
    private readonly store: Pick<BlobMetaStore, 'blobGarbage' | 'isBlobReferenced'>,
    private readonly blobs: MessageFiles,
    private readonly logger: Logger,
    private readonly opts: BlobCollectorOptions = {},
  ) {}

  /** Runs once now (with the orphan scan and the temporary-file sweep), then every intervalMs. */
  start(): void {
    const first = async () => {
      const tmp = await this.blobs.cleanTmp(this.opts.tmpMaxAgeMs ?? 3_600_000);
      const orphans = await this.scanOrphans();
      const r = await this.run();
      this.logger.info({ tmpRemoved: tmp, orphansRemoved: orphans, ...r }, 'message files collected');
    };
    first().catch((err) => this.logger.error({ err }, 'message file collection failed'));
    this.timer = setInterval(() => {
      this.run()
        .then((r) => r.removed && this.logger.debug(r, 'message files collected'))
        .catch((err) => this.logger.error({ err }, 'message file collection failed'));
    }, this.opts.intervalMs ?? 60_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => {});
  }

  /** Collects every current candidate; concurrent calls share one run. */
  run(): Promise<CollectionResult> {
    this.running ??= this.collect().finally(() => (this.running = undefined));
    return this.running;
  }

  private async collect(): Promise<CollectionResult> {
    const result: CollectionResult = { removed: 0, kept: 0 };
    const batch = this.opts.batch ?? 256;
    const seen = new Set<string>();
    // Expired pins first: their files (puts that died before their commit) become candidates of this run.
    await this.blobs.prunePins();
    for (;;) {
      const ids = (await this.store.blobGarbage(batch + seen.size)).filter((id) => !seen.has(id));
      if (ids.length === 0) break;
      for (const id of ids) {
        seen.add(id);
        // Not removed: either still referenced (the claim dropped the candidate) or pinned by a
        // put in progress, or claimed by another collector (the candidate stays for a later run).
        if (await this.blobs.removeIfUnreferenced(id)) result.removed++;
        else result.kept++;
      }
      await new Promise((r) => setImmediate(r));
    }
    return result;
  }

  /** Files on disk that no row references (a crash between a put and its commit). */
  async scanOrphans(): Promise<number> {
    let n = 0;
    let sinceYield = 0;
    for await (const id of this.blobs.ids()) {
      if (++sinceYield % 256 === 0) await new Promise((r) => setImmediate(r));
      if (await this.store.isBlobReferenced(id)) continue;
      if (await this.blobs.removeIfUnreferenced(id)) n++;
    }
    return n;
  }
}
