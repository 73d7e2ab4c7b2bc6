// Builds a new national directory snapshot file (snapshot-format.ts) and switches to it:
// synchronously, on whichever thread owns it — the import's own thread, or the import worker
// (import-worker.ts) so that parsing and SQLite run on two cores. The switch is atomic and
// durable: fsync the new file, rename(2) it over directory.sqlite, fsync the directory.
import Database from 'better-sqlite3';
import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ADDR_DDL, DirectoryStoreError, SCHEMA_VERSION, SNAPSHOT_DDL, SNAPSHOT_FILE, type Row } from './snapshot-format.js';
import type { Rejection, SnapshotInfo, SnapshotWriter } from './types.js';

/** Code tokens that are only ever matched whole (never expanded from a prefix). */
const WHOLE_ONLY = /^(t_|k_|pp_|st_|p_|s_)/;

/** Past this many distinct terms, the vocabulary is dropped (the snapshot is marked partial). */
const VOCABULARY_CAP = 1_500_000;

export type CommitMeta = Parameters<SnapshotWriter['commit']>[0];

/** A private file being built: no journal, no fsync per transaction (one fsync at the end). */
function openBuildFile(file: string): Database.Database {
  rmSync(file, { force: true });
  const db = new Database(file);
  db.pragma('page_size = 8192');
  db.pragma('journal_mode = OFF');
  db.pragma('synchronous = OFF');
  db.pragma('locking_mode = EXCLUSIVE');
  db.pragma('cache_size = -65536'); // 64 MiB of page cache per file: the import's memory bound
  return db;
}

/**
 * The trigram index of addresses, built in a side file by the reading thread (it has spare
 * time while the other thread inserts), then copied into the snapshot by the builder.
 */
export class AddressIndexBuilder {
  private readonly db: Database.Database;
  private readonly ins: Database.Statement;
  constructor(readonly file: string) {
    this.db = openBuildFile(file);
    this.db.exec(ADDR_DDL);
    this.ins = this.db.prepare('INSERT INTO addr (rowid, a) VALUES (?, ?)');
    this.db.exec('BEGIN');
  }
  add(rank: number, addressLc: string) {
    this.ins.run(rank, addressLc);
  }
  finish() {
    this.db.exec('COMMIT');
    this.db.close();
  }
  abort() {
    if (this.db.open) this.db.close();
    rmSync(this.file, { force: true });
  }
}

/**
 * Builds the new snapshot file (synchronously, on whichever thread owns it) and switches to it.
 * Used in-process, or inside the import worker (import-worker.ts) so that parsing and SQLite
 * run on two cores.
 */
export class SnapshotBuilder {
  private readonly db: Database.Database;
  private readonly insEntry: Database.Statement;
  private readonly insNames: Database.Statement;
  private readonly insAll: Database.Statement;
  private readonly insAddr: Database.Statement | undefined;
  private readonly firstLineOf: Database.Statement;
  private readonly dups: Rejection[] = [];
  private readonly dupRows: [number, string][] = [];
  private closed = false;
  private imported = 0;
  /**
   * The distinct terms of fts_all but whole-only codes, kept so that a prefix query can be
   * rewritten into its few whole terms, which FTS5 streams lazily (a raw prefix query merges every
   * matching doclist first). Its size follows the vocabulary (names, places), not the number of
   * lines; past VOCABULARY_CAP terms the snapshot is marked partial and prefix queries go to
   * FTS5 as they are.
   */
  private vocabulary: Set<string> | undefined = new Set();

  /** `ownAddressIndex`: build the trigram index here too (else it comes from an AddressIndexBuilder file). */
  constructor(
    readonly dataDir: string,
    readonly tmpFile: string,
    readonly ownAddressIndex: boolean,
  ) {
    this.db = openBuildFile(tmpFile);
    try {
      this.db.exec(SNAPSHOT_DDL);
      if (ownAddressIndex) this.db.exec(ADDR_DDL);
      this.insEntry = this.db.prepare('INSERT OR IGNORE INTO entries (rank, line_no, address_lc, pp_key, st_key, kind, f) VALUES (?,?,?,?,?,?,?)');
      this.insNames = this.db.prepare('INSERT INTO fts_names (rowid, t) VALUES (?, ?)');
      this.insAll = this.db.prepare('INSERT INTO fts_all (rowid, t) VALUES (?, ?)');
      this.insAddr = ownAddressIndex ? this.db.prepare('INSERT INTO addr (rowid, a) VALUES (?, ?)') : undefined;
      this.firstLineOf = this.db.prepare('SELECT line_no FROM entries WHERE address_lc = ?').pluck();
      this.db.exec('BEGIN');
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  add(r: Row) {
    if (this.insEntry.run(r[0], r[1], r[2], r[3], r[4], r[5], r[6]).changes === 0) {
      // The same address twice: the first line wins, later ones are rejected.
      this.dups.push({ line: r[1], reason: `duplicate Adresse BAL ${r[2]} (first on line ${this.firstLineOf.get(r[2])})` });
      this.dupRows.push([r[0], r[2]]);
      return;
    }
    this.imported++;
    if (r[7]) this.insNames.run(r[0], r[7]);
    this.insAll.run(r[0], r[8]);
    this.insAddr?.run(r[0], r[2]);
    const v = this.vocabulary;
    if (v) {
      for (const t of r[8].split(' ')) if (t && !WHOLE_ONLY.test(t)) v.add(t);
      if (v.size > VOCABULARY_CAP) this.vocabulary = undefined;
    }
  }

  commit(meta: CommitMeta, o: { started: number; addressIndexFile?: string }, onPhase?: (phase: string) => void): SnapshotInfo {
    const db = this.db;
    const imported = this.imported;
    if (imported === 0) throw new DirectoryStoreError('no valid line in the extraction: the previous directory stays in force');
    onPhase?.('indexing');
    const vocabulary = this.vocabulary ? 'complete' : 'partial';
    if (this.vocabulary) {
      const ins = db.prepare('INSERT INTO vocab (term) VALUES (?)');
      for (const t of [...this.vocabulary].sort()) ins.run(t);
      this.vocabulary = undefined;
    }
    if (o.addressIndexFile) {
      // The side file's FTS5 shadow tables (FTS5 §"Shadow tables": _data, _idx, _config) become ours.
      db.exec(`ATTACH DATABASE '${o.addressIndexFile.replace(/'/g, "''")}' AS side`);
      db.exec(ADDR_DDL);
      // Shadow tables are write-protected (SQLITE_DBCONFIG_DEFENSIVE) except in unsafe mode: only for this copy.
      db.unsafeMode(true);
      db.exec('DELETE FROM addr_data; DELETE FROM addr_idx; DELETE FROM addr_config');
      db.exec('INSERT INTO addr_data SELECT * FROM side.addr_data; INSERT INTO addr_idx SELECT * FROM side.addr_idx; INSERT INTO addr_config SELECT * FROM side.addr_config');
      db.unsafeMode(false);
      db.exec('COMMIT');
      db.exec('DETACH DATABASE side');
      db.exec('BEGIN');
      rmSync(o.addressIndexFile, { force: true });
      // Duplicates were indexed there before we knew: take them out (contentless delete, FTS5 §6.8).
      const del = db.prepare("INSERT INTO addr (addr, rowid, a) VALUES ('delete', ?, ?)");
      for (const [rank, a] of this.dupRows) del.run(rank, a);
    }
    db.exec("CREATE INDEX entries_pp ON entries (pp_key, rank) WHERE pp_key <> ''");
    db.exec("CREATE INDEX entries_st ON entries (st_key, kind, rank) WHERE st_key <> ''");
    db.exec('COMMIT');

    // Comparison with the snapshot in force (by address; a changed line is any field changed).
    onPhase?.('comparing');
    const current = path.join(this.dataDir, SNAPSHOT_FILE);
    let added = imported;
    let removed = 0;
    let changed = 0;
    if (existsSync(current)) {
      try {
        db.exec(`ATTACH DATABASE '${current.replace(/'/g, "''")}' AS prev`); // only read
        const prevCount = (db.prepare('SELECT COUNT(*) n FROM prev.entries').get() as any).n as number;
        const r = db.prepare('SELECT COUNT(*) same, COALESCE(SUM(p.f <> e.f), 0) changed FROM entries e JOIN prev.entries p ON p.address_lc = e.address_lc').get() as any;
        added = imported - r.same;
        removed = prevCount - r.same;
        changed = r.changed;
      } catch {
        // An unreadable previous snapshot: everything counts as added.
      } finally {
        try {
          db.exec('DETACH DATABASE prev');
        } catch {}
      }
    }
    const now = new Date();
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
    };
    const put = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
    put.run('schema', String(SCHEMA_VERSION));
    put.run('info', JSON.stringify(info));
    put.run('vocabulary', vocabulary);
    onPhase?.('switching');
    db.close();
    this.closed = true;
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
    return info;
  }

  abort() {
    if (!this.closed) {
      try {
        this.db?.close();
      } catch {}
      this.closed = true;
    }
    rmSync(this.tmpFile, { force: true });
  }
}
