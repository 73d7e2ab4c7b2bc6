// Builds a new national directory snapshot file (snapshot-format.ts) and switches to it:
// synchronously, on whichever thread owns it — the import's own thread, or the import worker
// (import-worker.ts) so that parsing and SQLite run on two cores. The switch is atomic and
// durable: fsync the new file, rename(2) it over directory.sqlite, fsync the directory.
import Database from 'better-sqlite3';
import { closeSync, existsSync, fdatasync, fsyncSync, openSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { AddressSet, PostingsBuilder, TermTable } from './postings.js';
import { DIGEST_ROWS, digestBytes, DirectoryStoreError, ROW_FIELDS, SCHEMA_VERSION, SNAPSHOT_DDL, SNAPSHOT_FILE, type Batch } from './snapshot-format.js';
import { isVocabularyTerm } from './vocabulary.js';
import type { ImportPhases, Rejection, SnapshotInfo, SnapshotWriter } from './types.js';

export type CommitMeta = Parameters<SnapshotWriter['commit']>[0];

/** Batches (of up to 2,000 rows, about 1 MB of file) between two early write-backs. */
const SYNC_BATCHES = 24;

/** What the builder's commit needs besides the summary. */
export interface CommitOptions {
  /** Start of the import (Date.now()), for its duration. */
  started: number;
  /** Time spent reading and parsing until the commit (the reading thread's figure). */
  readMs: number;
  /** The term dictionary stayed under its cap (vocabulary.ts): the vocabulary is complete. */
  vocabularyComplete: boolean;
}

/** A private file being built: no journal, no fsync per transaction (one fsync at the end). */
function openBuildFile(file: string): Database.Database {
  rmSync(file, { force: true });
  const db = new Database(file);
  db.pragma('page_size = 32768'); // fewer, fuller pages for the appends (−3 % CPU against 8192)
  db.pragma('journal_mode = OFF');
  db.pragma('synchronous = OFF');
  db.pragma('locking_mode = EXCLUSIVE');
  db.pragma('cache_size = -16384'); // 16 MiB of page cache: every table is written in key order (appends)
  return db;
}

/**
 * Builds the new snapshot file (synchronously, on whichever thread owns it) and switches to it.
 * Used in-process, or inside the import worker (import-worker.ts) so that parsing and SQLite
 * run on two cores.
 */
export class SnapshotBuilder {
  private readonly db: Database.Database;
  private readonly insEntry: Database.Statement;
  private readonly names: PostingsBuilder;
  private readonly all: PostingsBuilder;
  private readonly addr: PostingsBuilder;
  private readonly lineOf: Database.Statement;
  private readonly addresses: AddressSet;
  /** The numbered terms (vocabulary.ts TermDictionary, on the reading thread). */
  private readonly numbered = new TermTable();
  private readonly dups: Rejection[] = [];
  private closed = false;
  private imported = 0;
  /** Time spent in add(): the insert phase. */
  private insertMs = 0;
  /** Digests of the entries not yet written to entry_digest (snapshot-format.ts). */
  private readonly digest = new Int32Array(4 * DIGEST_ROWS);
  private digested = 0;
  private readonly insDigest: Database.Statement;
  /**
   * Early write-back: every SYNC_BATCHES batches, an fdatasync of the file on libuv's pool (not
   * this thread), so that the disk writes what SQLite has written so far while the load goes on,
   * and the final fsync before the rename has only the rest to wait for. The file is not made
   * visible by these (durability still comes from the final fsync).
   */
  private syncFd = -1;
  private syncing = false;
  private batchesSinceSync = 0;

  constructor(
    readonly dataDir: string,
    readonly tmpFile: string,
  ) {
    this.db = openBuildFile(tmpFile);
    try {
      this.db.exec(SNAPSHOT_DDL);
      // Text fields are bound as the batch's UTF-8 bytes and made TEXT by SQLite (no JS string).
      this.insEntry = this.db.prepare(
        'INSERT INTO entries (rank, line_no, address_lc, pp_key, st_key, kind, f) VALUES (?,?,?,CAST(? AS TEXT),CAST(? AS TEXT),CAST(? AS TEXT),CAST(? AS TEXT))',
      );
      this.names = new PostingsBuilder(this.db, 'idx_names', undefined, this.numbered);
      this.all = new PostingsBuilder(this.db, 'idx_all', undefined, this.numbered);
      this.addr = new PostingsBuilder(this.db, 'idx_addr').trigrams();
      this.insDigest = this.db.prepare('INSERT INTO entry_digest (data) VALUES (?)');
      this.lineOf = this.db.prepare('SELECT line_no FROM entries WHERE rank = ?').pluck();
      const addressOf = this.db.prepare('SELECT address_lc FROM entries WHERE rank = ?').pluck();
      this.addresses = new AddressSet((rank) => addressOf.get(rank) as string | undefined);
      this.db.exec('BEGIN');
      this.syncFd = openSync(tmpFile, 'r');
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  /** Adds a batch of rows (snapshot-format.ts BatchEncoder). */
  addBatch(b: Batch) {
    const t0 = performance.now();
    this.numbered.append(b.fresh);
    const bytes = Buffer.from(b.text, 0, b.textLength);
    const nums = new Int32Array(b.numbers, 0, b.numbersLength);
    let k = 0;
    let p = 0;
    /** End of the field starting at p (its FS). */
    const end = () => bytes.indexOf(1, p);
    while (p < bytes.length) {
      const rank = nums[k];
      const lineNo = nums[k + 1];
      const nNames = nums[k + 2];
      const names = k + 3;
      const nAll = nums[names + nNames];
      const all = names + nNames + 1;
      k = all + nAll;
      let e = end();
      const address = bytes.toString('utf8', p, e);
      const addressAt = p;
      const addressEnd = e;
      p = e + 1;
      const first = this.addresses.addOrFind(address, rank);
      if (first) {
        // The same address twice: the first line wins, later ones are rejected.
        this.dups.push({ line: lineNo, reason: `duplicate Adresse BAL ${address} (first on line ${this.lineOf.get(first)})` });
        for (let skip = 0; skip < ROW_FIELDS - 1; skip++) p = end() + 1;
        continue;
      }
      const fields: Buffer[] = [];
      for (let f = 0; f < 4; f++) {
        e = end();
        fields.push(bytes.subarray(p, e));
        p = e + 1;
      }
      this.insEntry.run(rank, lineNo, address, fields[0], fields[1], fields[2], fields[3]);
      this.imported++;
      // The entry's digest (entry_digest) from the bytes as stored: the lower-case address and the
      // fields. Hashed here, not on the reading thread: since schema 7 this thread has the time.
      digestBytes(bytes, addressAt, addressEnd, this.digest, 4 * this.digested);
      digestBytes(fields[3], 0, fields[3].length, this.digest, 4 * this.digested + 2);
      if (++this.digested === DIGEST_ROWS) this.flushDigest();
      for (let j = names, stop = names + nNames; j < stop; j++) this.names.addId(nums[j], rank);
      e = end();
      if (e > p) this.literals(bytes, p, e, this.names, rank);
      p = e + 1;
      for (let j = all, stop = all + nAll; j < stop; j++) this.all.addId(nums[j], rank);
      e = end();
      if (e > p) this.literals(bytes, p, e, this.all, rank);
      p = e + 1;
      // idx_addr: trigrams of "local@" and of the domain's first two characters ("n@m", "@me": a
      // value across the "@" stays selective), and the domain as one term (query-plan.ts containsExpression).
      const at = address.lastIndexOf('@');
      this.addr.addTrigrams(address, rank, Math.min(address.length, at + 3));
      this.addr.add(address.slice(at), rank);
    }
    this.insertMs += performance.now() - t0;
    if (++this.batchesSinceSync >= SYNC_BATCHES && !this.syncing) this.writeBack();
  }

  /** Starts an fdatasync of what is written so far, on libuv's pool (see syncFd). */
  private writeBack() {
    if (this.syncFd < 0) return;
    this.batchesSinceSync = 0;
    this.syncing = true;
    fdatasync(this.syncFd, () => (this.syncing = false));
  }

  /**
   * Closed at the end even if a write-back is still under way (the worker may be stopped before
   * its callback runs): the kernel finishes a started fdatasync on its own file reference, and
   * one not yet started fails with EBADF or syncs whatever file got the number (harmless).
   */
  private closeSyncFd() {
    if (this.syncFd < 0) return;
    try {
      closeSync(this.syncFd);
    } catch {}
    this.syncFd = -1;
  }

  /** Adds the space-separated text terms of bytes[p, e) (ASCII: normalised tokens), each its own string. */
  private literals(bytes: Buffer, p: number, e: number, to: PostingsBuilder, rank: number) {
    while (p < e) {
      let t = bytes.indexOf(32, p);
      if (t < 0 || t > e) t = e;
      to.add(bytes.toString('latin1', p, t), rank, true);
      p = t + 1;
    }
  }

  private flushDigest() {
    if (!this.digested) return;
    this.insDigest.run(Buffer.from(this.digest.buffer, 0, 16 * this.digested));
    this.digested = 0;
  }

  commit(meta: CommitMeta, o: CommitOptions, onPhase?: (phase: string) => void): SnapshotInfo {
    const db = this.db;
    const imported = this.imported;
    if (imported === 0) throw new DirectoryStoreError('no valid line in the extraction: the previous directory stays in force');
    onPhase?.('indexing');
    let t0 = performance.now();
    // The load's pages go to the disk while the indexes are built (commit runs to its end
    // without returning to the event loop: a write-back may still be under way, another is fine).
    this.writeBack();
    this.flushDigest();
    // The load's buffers go before the indexes and the comparison allocate theirs (peak RSS).
    this.names.finish();
    this.all.finish();
    this.addr.finish();
    this.addresses.release();
    const vocabulary = o.vocabularyComplete ? 'complete' : 'partial';
    if (o.vocabularyComplete) {
      // idx_all's numbered terms a prefix may expand to, sorted (appends to the vocab B-tree).
      const terms = this.numbered.terms;
      const vocab: string[] = [];
      for (let id = 0; id < terms.length; id++) if (this.all.hasId(id) && isVocabularyTerm(terms[id])) vocab.push(terms[id]);
      vocab.sort();
      const ins = db.prepare('INSERT INTO vocab (term) VALUES (?)');
      for (const t of vocab) ins.run(t);
    }
    // Built once, by sorting, after the load (duplicates were dropped by the AddressSet).
    db.exec('CREATE UNIQUE INDEX entries_address ON entries (address_lc)');
    // By key then rank: they answer the practitioner and structure conditions of a search in
    // rank order (reader.ts keyCursor; schema 7: no "pp_…" / "st_…" postings rows for those keys),
    // and the FHIR lookups by key (kind read from the index).
    db.exec("CREATE INDEX entries_pp ON entries (pp_key, rank) WHERE pp_key <> ''");
    db.exec("CREATE INDEX entries_st ON entries (st_key, rank, kind) WHERE st_key <> ''");
    db.exec('COMMIT');
    this.writeBack(); // the indexes' pages, during the comparison
    const indexMs = performance.now() - t0;

    // Comparison with the snapshot in force (by address; a changed line is any field changed).
    onPhase?.('comparing');
    t0 = performance.now();
    const current = path.join(this.dataDir, SNAPSHOT_FILE);
    let added = imported;
    let removed = 0;
    let changed = 0;
    if (existsSync(current)) {
      try {
        db.exec(`ATTACH DATABASE '${current.replace(/'/g, "''")}' AS prev`); // only read
        const hasDigest = db.prepare("SELECT 1 FROM prev.sqlite_master WHERE type = 'table' AND name = 'entry_digest'").get() !== undefined;
        let r: { prevCount: number; same: number; changed: number };
        if (hasDigest) r = compareDigests(db);
        else {
          // A snapshot of an earlier version (no entry_digest): compare the stored entries. Not
          // through mmap: it halves this at 1M lines, but both files' pages then count in the
          // import's RSS (over 1 GB at 1M lines, against a 300 MB bound).
          const prevCount = (db.prepare('SELECT COUNT(*) n FROM prev.entries').get() as any).n as number;
          const x = db.prepare('SELECT COUNT(*) same, COALESCE(SUM(p.f <> e.f), 0) changed FROM entries e JOIN prev.entries p ON p.address_lc = e.address_lc').get() as any;
          r = { prevCount, same: x.same, changed: x.changed };
        }
        added = imported - r.same;
        removed = r.prevCount - r.same;
        changed = r.changed;
      } catch {
        // An unreadable previous snapshot: everything counts as added.
      } finally {
        try {
          db.exec('DETACH DATABASE prev');
        } catch {}
      }
    }
    const compareMs = performance.now() - t0;
    const now = new Date();
    const phases: ImportPhases = { readMs: Math.round(o.readMs), insertMs: Math.round(this.insertMs), indexMs: Math.round(indexMs), compareMs: Math.round(compareMs), swapMs: 0 };
    const info: SnapshotInfo = {
      ...meta,
      generation: `${now.toISOString()}#${process.pid}`,
      importedAt: now.toISOString(),
      imported,
      rejected: meta.rejected + this.dups.length,
      rejections: [...meta.rejections, ...this.dups].sort((a, b) => a.line - b.line).slice(0, 1000),
      added,
      removed,
      changed,
      durationMs: Date.now() - o.started,
      phases,
    };
    const put = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
    put.run('schema', String(SCHEMA_VERSION));
    put.run('info', JSON.stringify(info));
    put.run('vocabulary', vocabulary);
    onPhase?.('switching');
    t0 = performance.now();
    db.close();
    this.closed = true;
    this.closeSyncFd();
    // Durable before it becomes visible: fsync the file, rename over (atomic), fsync the directory.
    const fd = openSync(this.tmpFile, 'r+');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(this.tmpFile, current);
    try {
      const dfd = openSync(this.dataDir, 'r');
      fsyncSync(dfd);
      closeSync(dfd);
    } catch {}
    phases.swapMs = Math.round(performance.now() - t0); // in the returned summary (the stored one was written before)
    info.durationMs = Date.now() - o.started;
    return info;
  }

  abort() {
    if (!this.closed) {
      try {
        this.db?.close();
      } catch {}
      this.closed = true;
    }
    this.closeSyncFd();
    rmSync(this.tmpFile, { force: true });
  }
}

/**
 * Added / removed / changed against the previous snapshot (attached as `prev`) from the two
 * files' entry_digest tables (snapshot-format.ts): the previous digests go into an open-addressing
 * table keyed by the address hash (64 bits), then each new entry is looked up; a different
 * fields hash (64 bits) is a changed entry. Reads 16 bytes per entry of each file instead of
 * every entry of both. Two distinct addresses with the same 64-bit hash would be counted as one
 * (about 1 in 10^7 for two snapshots of a million entries): these are the summary's counts only.
 */
function compareDigests(db: Database.Database): { prevCount: number; same: number; changed: number } {
  const prevCount = ((db.prepare('SELECT COALESCE(SUM(length(data)), 0) FROM prev.entry_digest').pluck().get() as number) / 16) | 0;
  let cap = 1024;
  while (cap < 2 * prevCount) cap *= 2;
  const mask = cap - 1;
  const slots = new Int32Array(4 * cap);
  const used = new Uint8Array(cap);
  /** The blob's numbers (a view when aligned, else a copy). */
  const ints = (b: Buffer) => (b.byteOffset % 4 === 0 ? new Int32Array(b.buffer, b.byteOffset, b.length >> 2) : new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)));
  for (const b of db.prepare('SELECT data FROM prev.entry_digest ORDER BY n').pluck().iterate() as Iterable<Buffer>) {
    const v = ints(b);
    for (let i = 0; i < v.length; i += 4) {
      let s = v[i] & mask;
      while (used[s]) s = (s + 1) & mask;
      used[s] = 1;
      slots.set(v.subarray(i, i + 4), 4 * s);
    }
  }
  let same = 0;
  let changed = 0;
  for (const b of db.prepare('SELECT data FROM main.entry_digest ORDER BY n').pluck().iterate() as Iterable<Buffer>) {
    const v = ints(b);
    for (let i = 0; i < v.length; i += 4) {
      for (let s = v[i] & mask; used[s]; s = (s + 1) & mask) {
        const k = 4 * s;
        if (slots[k] === v[i] && slots[k + 1] === v[i + 1]) {
          same++;
          if (slots[k + 2] !== v[i + 2] || slots[k + 3] !== v[i + 3]) changed++;
          break;
        }
      }
    }
  }
  return { prevCount, same, changed };
}
