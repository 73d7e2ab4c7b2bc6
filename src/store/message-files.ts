// Message files: what every consumer uses (MessageFiles), whichever place holds the bytes —
// files under a directory (store/blobs.ts, BlobStore: dataDir/blobs, or a mount shared by the
// nodes) or PostgreSQL rows (store/postgres/message-files.ts, PgMessageFiles: chunked bytea).
// Content-addressed: the id is the SHA-256 of the bytes, computed while they stream in; a file
// is written once, complete and durable *before* the transaction that references it commits.
//
// ## Removal against put: the pin/removal handshake, kept in the store
// A file may be shared (recipients, COPY, the queue) and is removed once nothing references it
// (store/blob-collector.ts). A put of the same content can race that removal, on another process
// or node: the put's file *is* the one being removed, and the transaction referencing it commits
// afterwards. The two sides meet in the store (BlobMetaStore: blob_pins, and
// blob_garbage.removing_since, the claim), whose transactions serialize them:
//
//   put P of content X                            removal C of X
//   P1 write a temporary copy, durable; X = hash   C1 claimBlobRemoval(X, S = now): one write
//   P2 pinBlob(X, token): one write transaction;      transaction; refused while a live pin or a
//      refused while a removal of X is claimed:       claim younger than the lease holds X;
//      P waits (for the local removal's promise,      dropped when a row references X; else
//      else polls with backoff) and asks again        removing_since = S
//   P3 the copy becomes X (rename + directory      C2 only if now − S < lease/2: the file goes
//      fsync; PostgreSQL: in P2's transaction)        (unlink + directory fsync); else abandoned
//   P4 the caller commits the referencing rows     C3 forgetBlobGarbage(X, S)
//   P5 release(): the pin goes (batched; a pin
//      not released expires after pinMs), or
//      in P4's own transaction (the MX's delivery:
//      DeliveryRequest.releasePins; APPEND: the
//      pins given to appendMessages)
// putMany (a MULTIAPPEND's files, BlobStore) runs P1 for every file, then P2 for all in one
// transaction (pinBlobs; a refused id waits as above), then P3's renames, then one fsync per shard
// directory after every rename into it: each file is durable under its name before the caller's
// P4, as with put().
// In PostgreSQL (PgMessageFiles), C1–C3 are one transaction and P2–P3 one statement, each under
// the id's advisory lock (postgres/blob-pins.ts): no claim is left between them, so e and f do
// not arise and (2) below does not apply.
//
// Interleavings it survives:
//  a. P2 before C1: C1 sees the pin and refuses (the candidate stays); after P4, a later C1 sees
//     the reference and drops the candidate.
//  b. C1 before P2: P2 sees the claim and waits until C3 (or the claim's lease) is over, then
//     pins, and P3 writes X again after C2 removed it: P4's rows point at P's own copy.
//  c. Two puts of X: both pin, both rename the same bytes (atomic): a reader sees one whole copy.
//  d. Two removals of X (two nodes' collectors): the second claim sees the first and refuses.
//  e. C crashes after C1 (or after C2): the claim stays; after removalLeaseMs a put clears it and
//     pins (a) and a collector claims again and repeats C2 and C3 (unlink of a missing file is a
//     no-op). A put waits at most the lease (30 s by default) in that case, well inside an SMTP
//     client's DATA timeout (RFC 5321 §4.5.3.2.6: 10 minutes).
//  f. C stalls after C1 (event loop, GC, NFS): past lease/2 it abandons before unlinking.
//  g. P crashes after P2 or P3: no reference commits; the pin expires; the file is an orphan the
//     next start's scan removes (a claim like any other).
//  h. A reader: only a committed reference leads to X, and a referenced X is never claimed (the
//     claim checks the references in its own transaction).
// Not survived: (1) a put whose referencing transaction commits more than pinMs (10 minutes)
// after its pin; (2) a removal stalled for more than lease/2 (15 s) between its time check and
// its unlink while a put took its expired claim over — clocks of the nodes must agree within
// seconds (NTP), and a shared file system must carry out an unlink within that time (a hard
// NFS mount retries for ever: a server outage longer than that stalls both sides). A new
// reference to an existing id must come from a put or from a row that still references it in
// the same transaction (COPY, a queued item's sent copy).
import type { Readable } from 'node:stream';
import type { BlobMetaStore } from './types.js';

export class BlobSizeExceededError extends Error {
  override name = 'BlobSizeExceededError';
  constructor(readonly limit: number) {
    super(`message exceeds the size limit of ${limit} bytes`);
  }
}

export interface BlobInfo {
  id: string;
  size: number;
}

export interface PutBlob extends BlobInfo {
  /**
   * Ends the put's protection of the file against removal: call it once the transaction that
   * references the blob has committed (or will not). Unreleased, the protection ends by itself
   * after the store's pin time. The returned promise (which never rejects) settles when the
   * pin is gone from the store; callers need not wait for it.
   */
  release(): Promise<void>;
  /**
   * The put's pin (blob_pins), for the transaction that references the file to drop in its own
   * commit (DeliveryRequest.releasePins: no transaction of its own for the release). Once that
   * transaction committed, call releasedByCommit(): release() then does nothing.
   */
  readonly pin: { blobId: string; token: string };
  releasedByCommit(): void;
}

/** Whether a stored file is sealed (encryption at rest, docs/encryption.md), and by which keys. */
export type KeyState = { kind: 'missing' } | { kind: 'plain' } | { kind: 'sealed'; keyIds: string[] };

/** Where message files live; every consumer of message bytes uses this. */
export interface MessageFiles {
  /**
   * Writes `prefix` then the source's bytes, durably; returns the blob id (SHA-256, hex) pinned
   * until release(). Throws BlobSizeExceededError (after draining the stream, so the protocol
   * layer can answer cleanly) when the content exceeds `maxSize`.
   */
  put(source: Readable | Buffer, opts?: { prefix?: Buffer; maxSize?: number }): Promise<PutBlob>;
  /**
   * put() of several whole messages at once (a MULTIAPPEND's): resolves once every one is durable
   * and pinned, with their PutBlobs in order; on a failure none is left pinned.
   */
  putMany(sources: Buffer[]): Promise<PutBlob[]>;
  /** The whole file. */
  read(id: string): Promise<Buffer>;
  /** The file's bytes from `range.start` to `range.end` inclusive (as fs.createReadStream). */
  stream(id: string, range?: { start: number; end: number }): Readable;
  size(id: string): Promise<number>;
  /** Every stored id (the orphan scan: files a crash left before their transaction). */
  ids(): AsyncGenerator<string>;
  /**
   * Removes the file if nothing references it and no put holds it (claim, removal, forget: the
   * protocol above); false when it stays (pinned, claimed elsewhere, or referenced — then the
   * candidate is dropped). A removal reported done survives a crash.
   */
  removeIfUnreferenced(id: string): Promise<boolean>;
  /** Removes temporary copies older than `olderThanMs` (puts a crash interrupted); returns how many. */
  cleanTmp(olderThanMs: number): Promise<number>;
  /** Forgets expired pins (the collector calls it after each run). */
  prunePins(): Promise<void>;
  // Encryption at rest (store/sealed.ts, docs/encryption.md): with a keyring, put() seals every
  // file (the id is then an HMAC of the content under a key derived from the KEK, not its
  // SHA-256) and read()/stream()/size() open sealed and plaintext files alike.
  /** Sealed or plaintext, and the key ids of its key slots. */
  keyState(id: string): Promise<KeyState>;
  /** Re-wraps the file's data key under the current KEK; the content is not re-encrypted. */
  rewrap(id: string): Promise<'rewrapped' | 'current' | 'plain' | 'missing'>;
  /** Seals a plaintext file (written before encryption was configured) in place; its id stays. */
  seal(id: string): Promise<'sealed' | 'already' | 'missing'>;
}

/** The store's side of the handshake (every Store has it). */
export type BlobPinStore = Pick<BlobMetaStore, 'pinBlob' | 'unpinBlobs' | 'pruneBlobPins' | 'claimBlobRemoval' | 'forgetBlobGarbage'> & Partial<Pick<BlobMetaStore, 'pinBlobs'>>;

export interface PinTimes {
  /** How long a put's pin protects its file if not released (ms). Default 10 minutes. */
  pinMs?: number;
  /** How long a removal's claim holds the id before a put or another collector may take it over (ms). Default 30 s. */
  removalLeaseMs?: number;
}

export const DEFAULT_PIN_MS = 10 * 60_000;
export const DEFAULT_REMOVAL_LEASE_MS = 30_000;

/**
 * Releases of pins, batched: the releases of one turn of the event loop go to the store in one
 * transaction. A failure is only reported: the pins expire by themselves.
 */
export class PinReleaser {
  private pending: { blobId: string; token: string }[] = [];
  private flushing?: Promise<void>;

  constructor(
    private readonly store: Pick<BlobMetaStore, 'unpinBlobs'>,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  /** The PutBlob of a put whose pin is (blobId, token). */
  putBlob(blobId: string, size: number, token: string): PutBlob {
    let done = false;
    return {
      id: blobId,
      size,
      pin: { blobId, token },
      release: () => (done ? Promise.resolve() : ((done = true), this.release(blobId, token))),
      releasedByCommit: () => void (done = true),
    };
  }

  release(blobId: string, token: string): Promise<void> {
    this.pending.push({ blobId, token });
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      const batch = this.pending;
      this.pending = [];
      this.flushing = undefined;
      try {
        await this.store.unpinBlobs(batch);
      } catch (err) {
        this.onError(err);
      }
    });
    return this.flushing;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs `fn` on every item, at most `limit` at a time; rejects with the first failure once the running ones ended. */
export async function eachLimited<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { e: unknown } | undefined;
  const worker = async () => {
    while (!failed && next < items.length) {
      const k = next++;
      try {
        await fn(items[k], k);
      } catch (e) {
        failed ??= { e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed) throw failed.e;
}
