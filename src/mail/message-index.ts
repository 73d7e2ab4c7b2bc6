// Message semantics (ENVELOPE, BODYSTRUCTURE, part offsets, sort and search keys) computed once
// per stored message file and kept in the store; IMAP FETCH/SEARCH and the mail API read them,
// never re-parse. The header search row (mail/header-index.ts) is recorded with the analysis.
import { analyzeMessage, MESSAGE_INFO_VERSION, type MessageInfo } from '../mime/index.js';
import type { MessageFiles } from '../store/message-files.js';
import type { DeliveryAnalysis, Store } from '../store/types.js';
import { HEADER_INDEX_VERSION, headerIndexRow } from './header-index.js';
import { SealedValueError } from '../store/value-seal.js';

/**
 * A message's analysis and header search row computed from its bytes at intake, for the delivery
 * to record in its own transaction (DeliveryRequest.analysis) — the records ensureIndexed would
 * otherwise write after the delivery, reading and parsing the file again. Null when the message
 * cannot be analysed (it is then indexed on first use, as before).
 */
export function deliveryAnalysis(raw: Buffer): { info: MessageInfo; analysis: DeliveryAnalysis } | null {
  try {
    const info = analyzeMessage(raw);
    return { info, analysis: { info: JSON.stringify(info), searchHeaders: { version: HEADER_INDEX_VERSION, columns: headerIndexRow(info, raw) } } };
  } catch {
    return null;
  }
}

/** A recorded analysis, if it is at the current MESSAGE_INFO_VERSION (older ones are computed again). */
function currentInfo(stored: string): MessageInfo | undefined {
  const info = JSON.parse(stored) as { version?: unknown };
  return info.version === MESSAGE_INFO_VERSION ? (info as MessageInfo) : undefined;
}

export class MessageIndex {
  private readonly cache = new Map<string, MessageInfo>();

  constructor(
    private readonly store: Store,
    private readonly blobs: MessageFiles,
    private readonly cacheSize = 2000,
  ) {}

  /**
   * The recorded analysis; '' when its row is sealed (docs/encryption.md, "Values in rows") and
   * does not open — altered, or moved from another row: the analysis is a cache of the message
   * file, which authenticates itself, so it is computed again from the file and recorded anew
   * rather than making the message unreadable. A missing key still fails: the file needs it too.
   */
  private async storedAnalysis(blobId: string): Promise<string | undefined> {
    try {
      return await this.store.getBlobMeta(blobId);
    } catch (e) {
      if (!(e instanceof SealedValueError) || !/does not authenticate|truncated/.test(e.message)) throw e;
      return '';
    }
  }

  /** Analyses and records a message file if not done yet; returns its analysis. */
  async ensure(blobId: string): Promise<MessageInfo> {
    const hit = this.cache.get(blobId);
    if (hit) {
      // LRU: refresh the entry's position.
      this.cache.delete(blobId);
      this.cache.set(blobId, hit);
      return hit;
    }
    let info: MessageInfo;
    const stored = await this.storedAnalysis(blobId);
    const parsed = stored ? currentInfo(stored) : undefined;
    if (parsed) info = parsed;
    else if (stored) {
      // Recorded at an older MESSAGE_INFO_VERSION: analysed again (the search row is unchanged:
      // the text values a version change keeps are what it holds).
      info = analyzeMessage(await this.blobs.read(blobId));
      await this.store.setBlobMeta(blobId, JSON.stringify(info));
    } else {
      const raw = await this.blobs.read(blobId);
      info = analyzeMessage(raw);
      await this.store.setBlobMeta(blobId, JSON.stringify(info));
      await this.store.setSearchHeaders(blobId, HEADER_INDEX_VERSION, headerIndexRow(info, raw));
    }
    this.cache.set(blobId, info);
    if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
    return info;
  }

  /**
   * ensure() for files just written whose bytes the caller holds (a MULTIAPPEND's): analysed from
   * those bytes (not read back), the analyses and header search rows recorded in one transaction
   * (store.setBlobAnalyses). Files not in the cache are not looked up in the store first (issue
   * 15: that was one query per message): a file already recorded (the same content stored before)
   * is recorded again, with the same analysis.
   */
  async ensureAllFrom(files: { blobId: string; raw: Buffer | Uint8Array }[]): Promise<void> {
    const a = await this.analyseAll(files);
    await this.store.setBlobAnalyses(a.analyses.flatMap((x, k) => (x ? [{ blobId: files[k].blobId, info: x.info, searchVersion: x.searchHeaders.version, searchColumns: x.searchHeaders.columns }] : [])));
    a.remember();
  }

  /**
   * The analyses of files just written, from the bytes in hand, for the caller to record in its own
   * transaction (APPEND: store.appendMessages, issue 15 — one commit for the analyses and the
   * messages): one per file, null for a file in the cache (recorded already) or repeated in the
   * batch. remember() caches them once that transaction committed.
   */
  async analyseAll(files: { blobId: string; raw: Buffer | Uint8Array }[]): Promise<{ analyses: (DeliveryAnalysis | null)[]; remember(): void }> {
    const analyses: (DeliveryAnalysis | null)[] = [];
    const infos = new Map<string, MessageInfo>();
    let bytes = 0;
    for (const f of files) {
      if (infos.has(f.blobId) || this.cache.has(f.blobId)) {
        analyses.push(null);
        continue;
      }
      const buf = Buffer.isBuffer(f.raw) ? f.raw : Buffer.from(f.raw.buffer, f.raw.byteOffset, f.raw.byteLength);
      const info = analyzeMessage(buf);
      infos.set(f.blobId, info);
      analyses.push({ info: JSON.stringify(info), searchHeaders: { version: HEADER_INDEX_VERSION, columns: headerIndexRow(info, buf) } });
      // The event loop breathes between chunks of a big batch (no input stalls the process).
      if ((bytes += buf.length) > 1 << 20) {
        bytes = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    return {
      analyses,
      remember: () => {
        for (const [id, info] of infos) {
          this.cache.set(id, info);
          if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
        }
      },
    };
  }

  /**
   * ensure() plus the header search row when missing (a file analysed elsewhere first, e.g. by the
   * usage indicators before its delivery): what the delivery hook calls.
   */
  async ensureIndexed(blobId: string): Promise<MessageInfo> {
    const info = await this.ensure(blobId);
    if (!(await this.store.hasSearchHeaders(blobId, HEADER_INDEX_VERSION))) await this.indexHeaders(blobId);
    return info;
  }

  /**
   * Records the header search row of a message file analysed before it existed (or at another
   * version); reads only the top-level header block. Returns the row.
   */
  async indexHeaders(blobId: string): Promise<Record<string, Buffer | null>> {
    const info = await this.ensure(blobId);
    const head = await readHead(this.blobs, blobId, info.root.bodyStart);
    const row = headerIndexRow(info, head);
    await this.store.setSearchHeaders(blobId, HEADER_INDEX_VERSION, row);
    return row;
  }
}

/**
 * Records the header search rows of the files analysed before migration 17, in chunks of `chunk`
 * files with the event loop free between them (setImmediate), until none is left or `stop()`.
 * A file that cannot be read is skipped (it stays unindexed: SEARCH reads it, as before).
 */
export function startHeaderBackfill(index: MessageIndex, store: Store, log: { info(o: object, m: string): void; warn(o: object, m: string): void }, chunk = 200): { stop(): Promise<void> } {
  let stopped = false;
  const failed = new Set<string>();
  const run = async () => {
    let done = 0;
    for (;;) {
      if (stopped) return;
      const ids = (await store.blobsWithoutSearchHeaders(chunk + failed.size)).filter((id) => !failed.has(id)).slice(0, chunk);
      if (ids.length === 0) break;
      for (const id of ids) {
        if (stopped) return;
        try {
          await index.indexHeaders(id);
          done++;
        } catch (e: any) {
          failed.add(id);
          log.warn({ blobId: id, err: e?.message }, 'header search backfill: file not indexed (searched by reading it)');
        }
      }
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (done > 0) log.info({ files: done }, 'header search backfill done');
  };
  const running = run().catch((e: any) => {
    if (!stopped) log.warn({ err: e?.message }, 'header search backfill stopped');
  });
  return {
    async stop() {
      stopped = true;
      await running;
    },
  };
}

/** The first `end` bytes of a message file (its top-level header block when end = bodyStart). */
export async function readHead(blobs: MessageFiles, blobId: string, end: number): Promise<Buffer> {
  if (end <= 0) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const c of blobs.stream(blobId, { start: 0, end: end - 1 })) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
