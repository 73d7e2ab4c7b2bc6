// The national directory in its own SQLite files (better-sqlite3), apart from the operator's
// store: dataDir/directory.sqlite holds the current snapshot of the national extraction, and
// dataDir/directory-state.sqlite what we published of our own mailboxes.
//
// Atomic re-import: a new snapshot is built in a fresh file beside the current one, made
// durable, then renamed over directory.sqlite in one step (rename(2) is atomic). Readers hold
// the old file open until they notice the new one (inode change, checked at most every
// `recheckMs`), so a search never sees a half import, and a failed import leaves the previous
// snapshot untouched. Nobody writes directory.sqlite in place, so there is no journal to trip over.
//
// Search index (https://sqlite.org/fts5.html): the rank of an entry is its line order in the
// extraction, and it is the rowid of two FTS5 tables, so a query streams matches in rank order
// and stops at its LIMIT: its cost follows the page asked for, not the number of matches.
// - fts_names: the name tokens, with prefix indexes of 1 to 3 characters (autocomplete);
// - fts_all: every word plus "prefix_value" code tokens (type, profession, city, postal code, …),
//   for free text with filters; conditions on one column are then checked on the candidates.
// - addr: a trigram table (FTS5 trigram tokenizer, SQLite ≥ 3.34) for address `:contains`;
//   candidates are checked, the index giving a superset.
// Tokens are normalised by directory/normalize.ts before they get here (FTS5 "unicode61"
// then only splits at spaces), so accent, case, hyphen and apostrophe rules live in one place.
import Database from 'better-sqlite3';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { COLUMNS, entryTokens, type EntryTokens } from '../../directory/extraction.js';
import { allClausesMatch } from '../../directory/match.js';
import type { DirectoryEntry, ExtractionFields, ResourceKind } from '../../directory/model.js';
import type { Word } from '../../directory/normalize.js';
import type {
  Clause,
  DirectorySnapshotReader,
  IndexQuery,
  PublicationStore,
  PublishedMailbox,
  Rejection,
  SearchPage,
  SnapshotInfo,
  SnapshotWriter,
} from './types.js';

export const SNAPSHOT_FILE = 'directory.sqlite';
export const STATE_FILE = 'directory-state.sqlite';
const SCHEMA_VERSION = 4;

export class DirectoryStoreError extends Error {
  override name = 'DirectoryStoreError';
}

const FIELD_KEYS = COLUMNS.map(([f]) => f);

function decodeEntry(r: any): DirectoryEntry {
  const vals = (r.f as string).split('|');
  const f = {} as ExtractionFields;
  for (let i = 0; i < FIELD_KEYS.length; i++) f[FIELD_KEYS[i]] = vals[i] ?? '';
  const e: DirectoryEntry = {
    ...f,
    source: 'national',
    type: f.balType as DirectoryEntry['type'],
    ppKey: r.pp_key,
    stKey: r.st_key,
    kind: r.kind,
    sortKey: '',
    listeRouge: false,
    description: '',
    ownerUserId: null,
  };
  return e; // sortKey stays empty: nothing sorts national entries by it after the import
}

function encodeFields(e: ExtractionFields & { line?: string }): string {
  if (e.line) return e.line;
  let s = e.balType;
  for (let i = 1; i < FIELD_KEYS.length; i++) s += '|' + (e[FIELD_KEYS[i]] ?? '');
  return s; // fields were split at '|' from one line: they hold neither '|' nor a line end
}

// ---- FTS5 query text --------------------------------------------------------------------------
// Tokens are pre-normalised to [a-z0-9_] (directory/normalize.ts), so quoting is always safe.

/** Whole terms of the index starting with a prefix, or undefined when too many (or unknown). */
type Expand = (prefix: string) => string[] | undefined;

const quote = (t: string) => `"${t.replace(/"/g, '""')}"`;
/** A sub-expression that can never match (its term is dropped before FTS5 sees it). */
const NEVER = null;

/** Set when a prefix could not be rewritten into whole terms (FTS5 will merge its doclists). */
interface PlanNotes {
  broad: boolean;
  /** Prefixes up to this length have their own FTS5 prefix index (fts_names: 3): never broad. */
  indexedUpTo: number;
}

function term(word: string, prefix: boolean, expand?: Expand, ns = '', notes?: PlanNotes): string | typeof NEVER {
  const t = ns + word;
  if (!prefix) return quote(t);
  const terms = expand?.(t);
  if (!terms) {
    if (notes && t.length > notes.indexedUpTo) notes.broad = true;
    return `${quote(t)}*`;
  }
  if (terms.length === 0) return NEVER;
  // A prefix rewritten as its whole terms: FTS5 streams an OR of terms lazily, while a prefix
  // query (without a prefix index of that length) merges every matching doclist first.
  return terms.length === 1 ? quote(terms[0]) : `(${terms.map(quote).join(' OR ')})`;
}

function wordExpr(w: Word, prefix: boolean, expand?: Expand, ns = '', notes?: PlanNotes): string | typeof NEVER {
  const whole = term(w.joined, prefix, expand, ns, notes);
  if (w.parts.length <= 1) return whole;
  // A compound word ("jean-pierre"): its joined form, or every part (the last one as a prefix).
  const parts: string[] = [];
  for (let i = 0; i < w.parts.length; i++) {
    const x = term(w.parts[i], prefix && i === w.parts.length - 1, expand, ns, notes);
    if (x === NEVER) return whole;
    parts.push(x);
  }
  return whole === NEVER ? `(${parts.join(' AND ')})` : `(${whole} OR (${parts.join(' AND ')}))`;
}

function clauseExpr(c: Clause, expand: Expand | undefined, table: 'names' | 'all', notes?: PlanNotes): string | typeof NEVER {
  // In fts_all a name word is indexed as "n_word" (a names condition is exact there), the other
  // words as they are: a word anywhere is either.
  const namespaces =
    table === 'names' ? [''] : c.column === 'names' ? ['n_', 'm_'] : c.column === 'person' ? ['n_'] : c.column === 'any' ? ['', 'n_', 'm_'] : [''];
  const alts = c.words
    .flatMap((w) => namespaces.map((ns) => wordExpr(w, c.prefix, expand, ns, notes)))
    .filter((x): x is string => x !== NEVER);
  if (!alts.length) return NEVER;
  return alts.length === 1 ? alts[0] : `(${alts.join(' OR ')})`;
}

/**
 * FTS5 MATCH text: every clause AND-ed (FTS5 §3.7 boolean operators, §3.3 prefix queries), or
 * null when a clause cannot match anything.
 */
export function matchExpression(clauses: Clause[], expand?: Expand, table: 'names' | 'all' = 'all'): string | null {
  const parts: string[] = [];
  for (const c of clauses) {
    const x = clauseExpr(c, expand, table);
    if (x === NEVER) return null;
    parts.push(x);
  }
  return parts.join(' AND ');
}

/**
 * Splits the clauses between the index and in-memory checks: a clause whose prefix is too broad
 * to rewrite into whole terms (a letter or two of a common word) would make FTS5 merge huge
 * doclists before the first row, so it is checked on each candidate instead — unless nothing
 * else can drive the query. Returns null when a clause cannot match anything.
 */
function planQuery(clauses: Clause[], expand: Expand | undefined, table: 'names' | 'all'): { expr: string; check: Clause[] } | null {
  const narrow: string[] = [];
  const broad: { c: Clause; x: string }[] = [];
  for (const c of clauses) {
    const notes: PlanNotes = { broad: false, indexedUpTo: table === 'names' ? 3 : 0 };
    const x = clauseExpr(c, expand, table, notes);
    if (x === NEVER) return null;
    if (notes.broad) broad.push({ c, x });
    else narrow.push(x);
  }
  if (!narrow.length) return { expr: broad.map((b) => b.x).join(' AND '), check: [] };
  return { expr: narrow.join(' AND '), check: broad.map((b) => b.c) };
}

/** Prefixes with more whole terms than this stay FTS5 prefix queries. */
const EXPAND_MAX = 64;

function trigramExpression(value: string): string {
  const grams = new Set<string>();
  for (let i = 0; i + 3 <= value.length; i++) grams.add(value.slice(i, i + 3));
  return [...grams].map((g) => `"${g.replace(/"/g, '""')}"`).join(' AND ');
}

/** Most candidates examined for one query before stopping (address conditions, column checks). */
const SCAN_CAP = 20_000;

// ---- reader -------------------------------------------------------------------------------------

interface OpenSnapshot {
  db: Database.Database;
  ino: number;
  mtimeMs: number;
  stmts: Map<string, Database.Statement>;
  info?: SnapshotInfo;
  /** The vocabulary table lists every term (prefixes can be expanded). */
  vocabulary?: boolean;
}

export class SqliteDirectoryReader implements DirectorySnapshotReader {
  private current: OpenSnapshot | undefined;
  private lastCheck = 0;
  readonly file: string;

  constructor(
    readonly dataDir: string,
    private readonly opts: { recheckMs?: number; onSwitch?: (info: SnapshotInfo | undefined) => void; onError?: (message: string) => void } = {},
  ) {
    this.file = path.join(dataDir, SNAPSHOT_FILE);
  }

  /** The snapshot in force, reopened when an import has replaced the file. */
  private snap(): OpenSnapshot | undefined {
    const now = Date.now();
    if (this.current && now - this.lastCheck < (this.opts.recheckMs ?? 500)) return this.current;
    this.lastCheck = now;
    let st: { ino: number; mtimeMs: number } | undefined;
    try {
      st = statSync(this.file);
    } catch {
      st = undefined;
    }
    if (!st) return this.current; // no snapshot yet (or removed by hand: keep serving what we have)
    if (this.current && st.ino === this.current.ino && st.mtimeMs === this.current.mtimeMs) return this.current;
    let db: Database.Database | undefined;
    try {
      db = new Database(this.file, { readonly: true, fileMustExist: true });
      db.pragma('mmap_size = 1073741824');
      db.pragma('cache_size = -65536');
      const v = (db.prepare("SELECT value FROM meta WHERE key = 'schema'").get() as any)?.value;
      if (Number(v) !== SCHEMA_VERSION) throw new Error(`schema version ${v}, expected ${SCHEMA_VERSION}`);
    } catch (e: any) {
      db?.close();
      // A file we cannot read: keep the previous snapshot (if any), say so once per file.
      this.opts.onError?.(`directory snapshot ${this.file} cannot be opened (${e.message}); run caducee directory import again`);
      if (this.current) {
        this.current.ino = st.ino;
        this.current.mtimeMs = st.mtimeMs;
      }
      return this.current;
    }
    const prev = this.current;
    this.current = { db, ino: st.ino, mtimeMs: st.mtimeMs, stmts: new Map() };
    prev?.db.close();
    this.opts.onSwitch?.(this.readInfo(this.current));
    return this.current;
  }

  private stmt(s: OpenSnapshot, sql: string): Database.Statement {
    let p = s.stmts.get(sql);
    if (!p) {
      p = s.db.prepare(sql);
      s.stmts.set(sql, p);
    }
    return p;
  }

  private readInfo(s: OpenSnapshot): SnapshotInfo | undefined {
    if (!s.info) {
      const r = this.stmt(s, "SELECT value FROM meta WHERE key = 'info'").get() as any;
      s.info = r ? JSON.parse(r.value) : undefined;
    }
    return s.info;
  }

  async info() {
    const s = this.snap();
    return s ? this.readInfo(s) : undefined;
  }

  async count() {
    const s = this.snap();
    return s ? (this.stmt(s, 'SELECT COUNT(*) n FROM entries').get() as any).n : 0;
  }

  async search(q: IndexQuery, limit: number): Promise<SearchPage> {
    return this.searchSync(q, limit);
  }

  /** Expansion of prefixes into whole terms through the vocabulary table (complete vocabularies only). */
  /** `namespaces`: the vocabulary stores fts_names' words in their fts_all forms ("n_word", "m_word"). */
  private expander(s: OpenSnapshot, minLength: number, namespaces = ['']): Expand | undefined {
    if (s.vocabulary === undefined) s.vocabulary = (this.stmt(s, "SELECT value FROM meta WHERE key = 'vocabulary'").pluck().get() as string) === 'complete';
    if (!s.vocabulary) return undefined;
    const range = this.stmt(s, 'SELECT term FROM vocab WHERE term >= ? AND term < ? LIMIT ?').pluck();
    return (prefix) => {
      if (prefix.length < minLength) return undefined;
      const found = new Set<string>();
      for (const ns of namespaces) {
        for (const t of range.all(ns + prefix, ns + prefix + '\uffff', EXPAND_MAX + 1) as string[]) found.add(t.slice(ns.length));
        if (found.size > EXPAND_MAX) return undefined;
      }
      return [...found];
    };
  }

  /** Up to `limit` entries matching the query, in rank order; `more` if another one matched. */
  searchSync(q: IndexQuery, limit: number): SearchPage {
    const s = this.snap();
    if (!s || limit <= 0) return { entries: [], more: false };
    const kinds = q.kinds?.length ? new Set(q.kinds) : undefined;
    const byRank = this.stmt(s, 'SELECT * FROM entries WHERE rank = ?');
    const want = limit + 1;
    const out: DirectoryEntry[] = [];
    if (q.address) {
      // Address candidates: the resource kind from its column first, then the other conditions on tokens.
      const candidates = this.addressCandidates(s, q.address, kinds);
      return this.collect(candidates, byRank, (e) => !q.clauses.length || allClausesMatch(entryTokens(e), q.clauses), want, limit, out);
    }
    const clauses = kinds ? [...q.clauses, kindsClause([...kinds])] : q.clauses;
    // Conditions the index cannot decide by itself (a word of the structure, profession or place
    // columns) are checked on each candidate.
    const columnChecks = clauses.filter((c) => c.column === 'org' || c.column === 'work' || c.column === 'place' || c.column === 'other');
    let candidates: Iterable<number>;
    if (clauses.length && clauses.every((c) => c.column === 'names')) {
      // Names only (name search, autocomplete): the names index decides alone; its prefix
      // indexes serve prefixes of up to 3 characters directly.
      const plan = planQuery(clauses, this.expander(s, 4, ['n_', 'm_']), 'names');
      if (!plan) return { entries: [], more: false };
      const check = plan.check;
      candidates = this.stmt(s, 'SELECT rowid FROM fts_names WHERE fts_names MATCH ?').pluck().iterate(plan.expr) as Iterable<number>;
      return this.collect(candidates, byRank, (e) => !check.length || allClausesMatch(entryTokens(e), check), want, limit, out);
    } else if (clauses.length) {
      const plan = planQuery(clauses, this.expander(s, 1), 'all');
      if (!plan) return { entries: [], more: false };
      const check = [...columnChecks, ...plan.check];
      candidates = this.stmt(s, 'SELECT rowid FROM fts_all WHERE fts_all MATCH ?').pluck().iterate(plan.expr) as Iterable<number>;
      return this.collect(candidates, byRank, (e) => !check.length || allClausesMatch(entryTokens(e), check), want, limit, out);
    }
    candidates = this.stmt(s, 'SELECT rank FROM entries ORDER BY rank').pluck().iterate() as Iterable<number>;
    return this.collect(candidates, byRank, () => true, want, limit, out);
  }

  private collect(candidates: Iterable<number>, byRank: Database.Statement, accept: (e: DirectoryEntry) => boolean, want: number, limit: number, out: DirectoryEntry[]): SearchPage {
    let seen = 0;
    const it = candidates[Symbol.iterator]();
    try {
      for (let r = it.next(); !r.done; r = it.next()) {
        if (++seen > SCAN_CAP) break;
        const e = decodeEntry(byRank.get(r.value));
        if (!accept(e)) continue;
        out.push(e);
        if (out.length >= want) break;
      }
    } finally {
      it.return?.();
    }
    return { entries: out.slice(0, limit), more: out.length > limit || seen > SCAN_CAP };
  }

  /** Candidates (ranks, ascending) for an address condition, each checked against the value. */
  private *addressCandidates(s: OpenSnapshot, a: NonNullable<IndexQuery['address']>, kinds: Set<ResourceKind> | undefined): Generator<number> {
    const value = a.value.toLowerCase();
    const ok = (r: { kind: ResourceKind } | undefined) => !!r && (!kinds || kinds.has(r.kind));
    if (a.mode === 'exact') {
      const r = this.stmt(s, 'SELECT rank, kind FROM entries WHERE address_lc = ?').get(value) as { rank: number; kind: ResourceKind } | undefined;
      if (ok(r)) yield r!.rank;
      return;
    }
    if (a.mode === 'prefix') {
      // Range scan on the address index, then back to rank order.
      const rows = this.stmt(s, 'SELECT rank, kind FROM entries WHERE address_lc >= ? AND address_lc < ? LIMIT ?').all(value, value + '\uffff', SCAN_CAP) as { rank: number; kind: ResourceKind }[];
      yield* rows
        .filter(ok)
        .map((r) => r.rank)
        .sort((x, y) => x - y);
      return;
    }
    // contains: trigram candidates in rank order; the index gives a superset, so each is checked.
    if (value.length < 3) {
      for (const r of this.stmt(s, 'SELECT rank, kind FROM entries WHERE instr(address_lc, ?) > 0').iterate(value) as Iterable<{ rank: number; kind: ResourceKind }>) if (ok(r)) yield r.rank;
      return;
    }
    const row = this.stmt(s, 'SELECT address_lc a, kind FROM entries WHERE rank = ?');
    let seen = 0;
    for (const r of this.stmt(s, 'SELECT rowid FROM addr WHERE addr MATCH ?').pluck().iterate(trigramExpression(value)) as Iterable<number>) {
      if (++seen > SCAN_CAP) return;
      const x = row.get(r) as { a: string; kind: ResourceKind } | undefined;
      if (x && x.a.includes(value) && ok(x)) yield r;
    }
  }

  async byAddress(address: string) {
    const s = this.snap();
    if (!s) return undefined;
    const r = this.stmt(s, 'SELECT * FROM entries WHERE address_lc = ?').get(address.toLowerCase());
    return r ? decodeEntry(r) : undefined;
  }

  async byPractitioner(ppKey: string, limit: number) {
    const s = this.snap();
    if (!s || !ppKey) return [];
    return this.stmt(s, "SELECT * FROM entries WHERE pp_key = ? AND pp_key <> '' ORDER BY rank LIMIT ?").all(ppKey, limit).map(decodeEntry);
  }

  async byStructure(stKey: string, kind: ResourceKind | undefined, limit: number) {
    const s = this.snap();
    if (!s || !stKey) return [];
    if (kind) return this.stmt(s, "SELECT * FROM entries WHERE st_key = ? AND st_key <> '' AND kind = ? ORDER BY rank LIMIT ?").all(stKey, kind, limit).map(decodeEntry);
    return this.stmt(s, "SELECT * FROM entries WHERE st_key = ? AND st_key <> '' ORDER BY rank LIMIT ?").all(stKey, limit).map(decodeEntry);
  }

  async close() {
    this.current?.db.close();
    this.current = undefined;
  }
}

const kindsClause = (kinds: ResourceKind[]): Clause => ({
  column: 'codes',
  words: kinds.map((k) => ({ parts: ['k_' + k.toLowerCase()], joined: 'k_' + k.toLowerCase() })),
  prefix: false,
});

// ---- writer (import) ------------------------------------------------------------------------------

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

/** One row of a new snapshot, computed on the reading thread, which also gives the rank. */
type Row = [rank: number, lineNo: number, addressLc: string, ppKey: string, stKey: string, kind: string, fields: string, names: string, all: string];

function rowOf(rank: number, e: DirectoryEntry, t: EntryTokens, lineNo: number): Row {
  // fts_all: a person's name words as "n_word", a structure's display name as "m_word" (name
  // conditions stay exact next to filters, and person-only ones never scan structures), the
  // other words as they are, then the code tokens. FTS5 ignores repeats.
  let all = '';
  const ns = t.isPerson ? 'n_' : 'm_';
  for (const w of t.names) all += ns + w + ' ';
  for (const col of [t.org, t.work, t.place, t.other]) for (const w of col) all += w + ' ';
  let names = '';
  for (const w of t.names) names += (names ? ' ' : '') + w;
  return [rank, lineNo, e.address.toLowerCase(), e.ppKey, e.stKey, e.kind, encodeFields(e), names, all + t.codes.join(' ')];
}

/** Code tokens that are only ever matched whole (never expanded from a prefix). */
const WHOLE_ONLY = /^(t_|k_|pp_|st_|p_|s_)/;

type CommitMeta = Parameters<SnapshotWriter['commit']>[0];

const SNAPSHOT_DDL = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE entries (rank INTEGER PRIMARY KEY, line_no INTEGER NOT NULL, address_lc TEXT NOT NULL UNIQUE, pp_key TEXT NOT NULL,
  st_key TEXT NOT NULL, kind TEXT NOT NULL, f TEXT NOT NULL);
CREATE VIRTUAL TABLE fts_names USING fts5(t, content='', columnsize=0, detail=none, prefix='1 2 3', tokenize='unicode61 remove_diacritics 0');
CREATE VIRTUAL TABLE fts_all USING fts5(t, content='', columnsize=0, detail=none, tokenize="unicode61 remove_diacritics 0 tokenchars '_'");
CREATE TABLE vocab (term TEXT PRIMARY KEY) WITHOUT ROWID;
`;
const ADDR_DDL = `CREATE VIRTUAL TABLE addr USING fts5(a, content='', columnsize=0, detail=none, tokenize='trigram');`;

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

/** Batches of rows sent to the worker: fields separated by \u0001, rows by \u0002. */
const FS = '\u0001';
const RS = '\u0002';
const BATCH_ROWS = 2000;
const MAX_IN_FLIGHT = 8;
const VOCABULARY_CAP = 1_500_000;

export function decodeBatch(batch: string): Row[] {
  const rows: Row[] = [];
  for (const line of batch.split(RS)) {
    const c = line.split(FS);
    rows.push([Number(c[0]), Number(c[1]), c[2], c[3], c[4], c[5], c[6], c[7], c[8]]);
  }
  return rows;
}

/**
 * The import's writer: rows are built here and stored by a SnapshotBuilder, in a worker thread
 * when possible (two cores: parsing and the address index here, the rest there), else in this
 * thread.
 */
export class SqliteSnapshotWriter implements SnapshotWriter {
  private readonly lockFile: string;
  private readonly tmpFile: string;
  private readonly addrFile: string;
  private readonly started = Date.now();
  private builder?: SnapshotBuilder;
  private addrIndex?: AddressIndexBuilder;
  private worker?: Worker;
  private batch: string[] = [];
  private inFlight = 0;
  private drained: (() => void) | undefined;
  private failure: Error | undefined;
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private nextCall = 1;
  private done = false;
  private rank = 0;
  private onPhase?: (phase: string) => void;

  private constructor(readonly dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.lockFile = path.join(dataDir, `${SNAPSHOT_FILE}.lock`);
    takeLock(this.lockFile);
    this.tmpFile = path.join(dataDir, `${SNAPSHOT_FILE}.import-${process.pid}`);
    this.addrFile = path.join(dataDir, `${SNAPSHOT_FILE}.import-${process.pid}-addresses`);
  }

  /**
   * Opens a writer; `threaded` (default) runs most of SQLite's work in a worker thread, and falls
   * back to this thread when a worker cannot be started (`onFallback` says why).
   */
  static async open(dataDir: string, opts: { threaded?: boolean; onFallback?: (reason: string) => void } = {}): Promise<SqliteSnapshotWriter> {
    const w = new SqliteSnapshotWriter(dataDir);
    try {
      if (opts.threaded ?? true) {
        try {
          w.addrIndex = new AddressIndexBuilder(w.addrFile);
          await w.startWorker();
          return w;
        } catch (e: any) {
          opts.onFallback?.(`import worker unavailable (${e.message}); importing in one thread`);
          w.addrIndex?.abort();
          w.addrIndex = undefined;
          await w.worker?.terminate().catch(() => {});
          w.worker = undefined;
          w.failure = undefined;
          w.done = false;
        }
      }
      w.builder = new SnapshotBuilder(dataDir, w.tmpFile, true);
    } catch (e) {
      await w.abort();
      throw e;
    }
    return w;
  }

  private async startWorker() {
    const { Worker } = await import('node:worker_threads');
    const here = new URL('./import-worker.ts', import.meta.url).href;
    // The worker runs TypeScript like the CLI does: tsx's loader (a dependency) is registered
    // in the worker first, then the worker module is imported.
    const tsxApi = import.meta.resolve('tsx/esm/api');
    const boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(here)}); })`;
    const w = new Worker(boot, { eval: true, workerData: { dataDir: this.dataDir, tmpFile: this.tmpFile }, resourceLimits: { maxOldGenerationSizeMb: 512 } });
    this.worker = w as unknown as Worker;
    w.on('message', (m: any) => {
      if (m.type === 'ack') {
        this.inFlight--;
        if (this.inFlight < MAX_IN_FLIGHT && this.drained) {
          const d = this.drained;
          this.drained = undefined;
          d();
        }
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
    w.on('error', (e) => this.fail(e));
    w.on('exit', (code) => {
      if (!this.done) this.fail(new DirectoryStoreError(`the import worker stopped (exit code ${code})`));
    });
    await this.call('ready', undefined);
  }

  private fail(e: Error) {
    if (!this.failure) this.failure = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
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

  add(e: DirectoryEntry, t: EntryTokens, lineNo: number) {
    if (this.failure) throw this.failure;
    const r = rowOf(++this.rank, e, t, lineNo);
    if (this.builder) return this.builder.add(r);
    this.addrIndex!.add(r[0], r[2]);
    this.batch.push(r.join(FS));
    if (this.batch.length >= BATCH_ROWS) this.flush();
  }

  private flush() {
    if (!this.batch.length || !this.worker) return;
    this.inFlight++;
    this.worker.postMessage({ type: 'rows', batch: this.batch.join(RS) });
    this.batch = [];
  }

  /** Resolves when the worker has caught up enough (bounded memory between the two threads). */
  drain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.worker || this.inFlight < MAX_IN_FLIGHT) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.drained = () => (this.failure ? reject(this.failure) : resolve());
    });
  }

  async commit(meta: CommitMeta, onPhase?: (phase: string) => void): Promise<SnapshotInfo> {
    try {
      let info: SnapshotInfo;
      if (this.builder) info = this.builder.commit(meta, { started: this.started }, onPhase);
      else {
        this.flush();
        this.addrIndex!.finish();
        this.onPhase = onPhase;
        info = await this.call('commit', { meta, o: { started: this.started, addressIndexFile: this.addrFile } });
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
    this.builder?.abort();
    this.addrIndex?.abort();
    if (this.worker) {
      await this.worker.terminate().catch(() => {});
      this.worker = undefined;
    }
    rmSync(this.tmpFile, { force: true });
    rmSync(this.addrFile, { force: true });
    rmSync(this.lockFile, { force: true });
  }
}

// ---- publication state ----------------------------------------------------------------------

export class SqlitePublicationStore implements PublicationStore {
  private readonly db: Database.Database;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.db = new Database(path.join(dataDir, STATE_FILE));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`CREATE TABLE IF NOT EXISTS published_mailboxes (
  address TEXT PRIMARY KEY COLLATE NOCASE,
  resource_type TEXT NOT NULL,
  condition TEXT NOT NULL,
  telecom TEXT NOT NULL,
  published_at TEXT NOT NULL)`);
  }

  async listPublished(): Promise<PublishedMailbox[]> {
    return this.db
      .prepare('SELECT * FROM published_mailboxes ORDER BY address')
      .all()
      .map((r: any) => ({ address: r.address, resourceType: r.resource_type, condition: r.condition, telecom: r.telecom, publishedAt: r.published_at }));
  }

  async recordPublished(upserts: Omit<PublishedMailbox, 'publishedAt'>[], removed: string[]) {
    const at = new Date().toISOString();
    const up = this.db.prepare(
      'INSERT INTO published_mailboxes (address, resource_type, condition, telecom, published_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET resource_type = excluded.resource_type, condition = excluded.condition, telecom = excluded.telecom, published_at = excluded.published_at',
    );
    const del = this.db.prepare('DELETE FROM published_mailboxes WHERE address = ?');
    this.db.transaction(() => {
      for (const u of upserts) up.run(u.address, u.resourceType, u.condition, u.telecom, at);
      for (const a of removed) del.run(a);
    })();
  }

  async close() {
    if (this.db.open) this.db.close();
  }
}
