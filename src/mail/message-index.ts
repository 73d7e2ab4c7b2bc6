// Message semantics (ENVELOPE, BODYSTRUCTURE, part offsets, sort and search keys) computed once
// per stored message file and kept in the store; IMAP FETCH/SEARCH and the mail API read them,
// never re-parse.
import { analyzeMessage, type MessageInfo } from '../mime/index.js';
import type { BlobStore } from '../store/blobs.js';
import type { Store } from '../store/types.js';

export class MessageIndex {
  private readonly cache = new Map<string, MessageInfo>();

  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    private readonly cacheSize = 2000,
  ) {}

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
    const stored = await this.store.getBlobMeta(blobId);
    if (stored) info = JSON.parse(stored) as MessageInfo;
    else {
      info = analyzeMessage(await this.blobs.read(blobId));
      await this.store.setBlobMeta(blobId, JSON.stringify(info));
    }
    this.cache.set(blobId, info);
    if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
    return info;
  }
}
