// Read side of the national directory snapshot (dataDir/directory.sqlite, snapshot-format.ts).
//
// Atomic re-import: a new snapshot is built in a fresh file beside the current one, made
// durable, then renamed over directory.sqlite in one step (rename(2) is atomic). Readers hold
// the old file open until they notice the new one (inode change, checked at most every
// `recheckMs`), so a search never sees a half import, and a failed import leaves the previous
// snapshot untouched. Nobody writes directory.sqlite in place, so there is no journal to trip over.
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import path from 'node:path';
import type { DirectoryEntry, ResourceKind } from '../../directory-model/entry.js';
import { allClausesMatch } from '../../directory-model/match.js';
import { entryTokens } from '../../directory-model/tokens.js';
import { allOf, anyOf, cursorOf, ListCache, LOAD_AFTER, postingsTable, ranksOf, SliceCursor, type Cursor, type Expr, type PostingsTable } from './postings.js';
import { containsExpression, Domains, EXPAND_MAX, kindsClause, namesByNamespace, planQuery, termCount, type Expand } from './query-plan.js';
import { keyIndexed, NAME_PREFIXES } from './vocabulary.js';
import { decodeEntry, SCHEMA_VERSION, SNAPSHOT_FILE } from './snapshot-format.js';
import type { DirectorySnapshotReader, IndexQuery, SearchPage, SnapshotInfo } from './types.js';

/**
 * Memory for the postings lists kept in memory (postings.ts ListCache). The three indexes of a
 * 1,000,000-line snapshot hold 56 MB of postings, of which a day of queries walks the long lists
 * (name prefixes, common words, codes such as t_per).
 */
const LIST_CACHE_BYTES = 32 * 1024 * 1024;
/** Rows of idx_names read per slice of the warm-up (about a millisecond). */
const WARM_ROWS = 1000;

/**
 * Snapshot schemas this reader serves: the current one, and 6 (every practitioner and structure
 * key in idx_all), so that an operator upgraded from schema 6 keeps its directory until the next
 * daily import replaces the file (docs/directory.md "Upgrading").
 */
const READABLE_SCHEMAS = [6, SCHEMA_VERSION];

/** Ranks read per statement from the entries' key indexes (reader keyCursor). */
const KEY_SLICE = 64;

/** Most candidates examined for one query before stopping (address conditions, column checks). */
const SCAN_CAP = 20_000;

/** Most addresses (ranks) one `:contains` query reads when the index cannot narrow it (addressCandidates 'scan'), and most per statement. */
const SCAN_ROWS = 20_000;
const SCAN_SLICE = 2_000;

interface OpenSnapshot {
  db: Database.Database;
  ino: number;
  mtimeMs: number;
  stmts: Map<string, Database.Statement>;
  /** The snapshot's schema (SCHEMA_VERSION, or an older one still served: READABLE_SCHEMAS). */
  schema: number;
  info?: SnapshotInfo;
  /** The vocabulary table lists every term (prefixes can be expanded). */
  vocabulary?: boolean;
  indexes?: Record<'names' | 'all' | 'addr', PostingsTable>;
  /** The domain terms of idx_addr ("@a.mssante.fr"), read once. */
  domains?: Domains;
  /** The domain terms read so far (the warm-up reads them in slices). */
  domainWalk?: { after: string; out: string[] };
  /** Whether idx_all has any "pp_…" / "st_…" list (keys not of [0-9A-Z]: rare, often none). */
  keyLists?: Record<'pp_key' | 'st_key', boolean>;
}

/** In idx_names, a prefix of up to NAME_PREFIXES characters is its own term ("*" + prefix). */
const namePrefix = (p: string) => (p.length <= NAME_PREFIXES ? '*' + p : undefined);

export class SqliteDirectoryReader implements DirectorySnapshotReader {
  private current: OpenSnapshot | undefined;
  private lastCheck = 0;
  readonly file: string;

  constructor(
    readonly dataDir: string,
    private readonly opts: {
      recheckMs?: number;
      onSwitch?: (info: SnapshotInfo | undefined) => void;
      onError?: (message: string) => void;
      /** Read the names index's long lists into memory after opening a snapshot (default true). */
      warm?: boolean;
      /** Most addresses read by one `:contains` scan (default SCAN_ROWS; tests set fewer). */
      scanRows?: number;
    } = {},
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
    let schema = 0;
    try {
      db = new Database(this.file, { readonly: true, fileMustExist: true });
      db.pragma('mmap_size = 1073741824');
      db.pragma('cache_size = -65536');
      // The file is never written in place (an import renames a new one over it): one shared
      // lock, taken at the first read and held until close, instead of a lock, an unlock and
      // two journal stat() calls around every statement (7 system calls: 23 µs of CPU per
      // postings chunk read, 2.8 µs without; docs/directory.md "Search"). Readers still share
      // it; nothing may write this file in place.
      db.pragma('locking_mode = EXCLUSIVE');
      const v = (db.prepare("SELECT value FROM meta WHERE key = 'schema'").get() as any)?.value;
      schema = Number(v);
      if (!READABLE_SCHEMAS.includes(schema)) throw new Error(`schema version ${v}, expected ${SCHEMA_VERSION}`);
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
    this.current = { db, ino: st.ino, mtimeMs: st.mtimeMs, stmts: new Map(), schema };
    prev?.db.close();
    if (this.opts.warm !== false) this.warm(this.current);
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

  private index(s: OpenSnapshot, which: 'names' | 'all' | 'addr'): PostingsTable {
    if (!s.indexes) {
      const max = (this.stmt(s, 'SELECT MAX(rank) FROM entries').pluck().get() as number | null) ?? 0;
      // Long lists walked by queries stay in memory (postings.ts ListCache), for this snapshot.
      const cache = new ListCache(LIST_CACHE_BYTES);
      const all = postingsTable(s.db, 'idx_all', max, cache);
      const own: PostingsTable = { ...all };
      all.termCursor = (term) => this.keyCursor(s, term, () => cursorOf(own, { op: 'term', term }));
      s.indexes = { names: postingsTable(s.db, 'idx_names', max, cache), all, addr: postingsTable(s.db, 'idx_addr', max, cache) };
    }
    return s.indexes[which];
  }

  /**
   * Reads idx_names' long lists (more chunks than a query looks up before reading a whole list)
   * into the snapshot's ListCache, in the background: one key-ordered scan in slices of WARM_ROWS
   * rows on unreferenced timers (no slice holds the event loop long, and a process that is done
   * does not wait), up to half the cache's budget. Autocomplete, name and free-text searches then
   * seek those lists in memory from the first query instead of paying their first reading
   * (1–4 ms for a one- or two-letter prefix at 1M entries). Stops when the snapshot is replaced.
   */
  private warm(s: OpenSnapshot) {
    const t = this.index(s, 'names');
    const cache = t.cache!;
    const slice = s.db.prepare('SELECT term, last, ranks FROM idx_names WHERE (term, last) > (?, ?) ORDER BY term, last LIMIT ?');
    let after: [string, number] = ['', -1];
    let term = '';
    let rows: { last: number; ranks: Uint8Array }[] = [];
    const later = (f: () => void) => setTimeout(f, 0).unref();
    const keep = () => {
      if (rows.length > LOAD_AFTER && !cache.has(t, term)) cache.put(t, term, rows);
      rows = [];
    };
    const step = () => {
      if (this.current !== s) return;
      if (cache.size > cache.budget / 2) return later(addressSide);
      const got = slice.all(after[0], after[1], WARM_ROWS) as { term: string; last: number; ranks: Uint8Array }[];
      for (const r of got) {
        if (r.term !== term) {
          keep();
          term = r.term;
        }
        rows.push(r);
      }
      if (got.length < WARM_ROWS) {
        keep();
        return later(addressSide);
      }
      const last = got[got.length - 1];
      after = [last.term, last.last];
      later(step);
    };
    // Then what the first address `:contains` would otherwise do at once (about 0.3 s of CPU at
    // 1M entries): the domain terms, their trigram index, and the resource kinds' lists.
    const kinds = ['k_practitioner', 'k_practitionerrole', 'k_organization'];
    const addressSide = () => {
      if (this.current !== s) return;
      if (!s.domains) {
        const w = (s.domainWalk ??= { after: '@', out: [] });
        if (!this.walkDomains(s, w, WARM_ROWS)) return later(addressSide);
        s.domains = new Domains(w.out);
      }
      if (!s.domains.indexSome(WARM_ROWS * 4)) return later(addressSide);
      const k = kinds.shift();
      if (k === undefined) return;
      const all = this.index(s, 'all');
      if (cache.size < cache.budget / 2) cache.load(all, k);
      later(addressSide);
    };
    later(step);
  }

  /**
   * A practitioner or structure condition ("pp_" / "st_" + key, as codeToken makes it), schema 7:
   * the entries whose key is the token's rest in upper case come from the entries' index on that
   * key (in rank order, KEY_SLICE ranks per statement), the others (keys with a dot or a
   * lower-case letter, vocabulary.ts keyIndexed) from their idx_all list (`postings`): the same
   * entries as one postings list per key gave.
   */
  private keyCursor(s: OpenSnapshot, term: string, postings: () => Cursor): Cursor | undefined {
    const column = term.startsWith('pp_') ? 'pp_key' : term.startsWith('st_') ? 'st_key' : undefined;
    // Schema 6 (made before the upgrade, served until the next import): every key has its list.
    if (!column || s.schema < 7) return undefined;
    const key = term.slice(3).toUpperCase();
    if (!keyIndexed(key)) return postings();
    const ranks = this.stmt(s, `SELECT rank FROM entries WHERE ${column} = ? AND ${column} <> '' AND rank >= ? ORDER BY rank LIMIT ${KEY_SLICE}`).pluck();
    const fromIndex = new SliceCursor((x) => ranks.all(key, x) as number[], KEY_SLICE);
    // Without any list of that kind in the snapshot, no postings lookup per condition.
    const any = this.stmt(s, 'SELECT 1 FROM idx_all WHERE term >= ? AND term < ? LIMIT 1').pluck();
    s.keyLists ??= { pp_key: any.get('pp_', 'pp`') !== undefined, st_key: any.get('st_', 'st`') !== undefined };
    return s.keyLists[column] ? anyOf([fromIndex, postings()]) : fromIndex;
  }

  /** Ranks matching expr in one index, ascending, lazily. */
  private matches(s: OpenSnapshot, which: 'names' | 'all' | 'addr', expr: Expr): Iterable<number> {
    return ranksOf(cursorOf(this.index(s, which), expr, which === 'names' ? namePrefix : undefined));
  }

  /** Expansion of prefixes into whole terms through the vocabulary table (complete vocabularies only). */
  /** `namespaces`: the vocabulary stores idx_names' words in their idx_all forms ("n_word", "m_word"). */
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
      const cut = { reached: false };
      const candidates = this.addressCandidates(s, q.address, kinds, cut);
      const page = this.collect(candidates, byRank, (e) => !q.clauses.length || allClausesMatch(entryTokens(e), q.clauses), want, limit, out);
      // Stopped at a cap before the end: more may match (the caller narrows the query).
      return cut.reached ? { entries: page.entries, more: true, capped: true } : page;
    }
    const clauses = kinds ? [...q.clauses, kindsClause([...kinds])] : q.clauses;
    // Conditions the index cannot decide by itself (a word of the structure, profession or place
    // columns) are checked on each candidate.
    const columnChecks = clauses.filter((c) => c.column === 'org' || c.column === 'work' || c.column === 'place' || c.column === 'other');
    let candidates: Iterable<number>;
    if (clauses.length && clauses.every((c) => c.column === 'names')) {
      // Names only (name search, autocomplete): the names index decides alone; its prefix
      // terms serve prefixes of up to 3 characters directly.
      const plan = planQuery(clauses, this.expander(s, 4, ['n_', 'm_']), 'names');
      if (!plan) return { entries: [], more: false };
      // Two words or more: in idx_all, persons and structures apart, when the words expand there
      // into no more term cursors than idx_names needs (a leapfrog seeks each at every step: "le
      // r sain" is two prefix terms in idx_names, 16 whole terms in idx_all).
      const all = this.expander(s, 1);
      const split = all ? namesByNamespace(clauses, all) : undefined;
      if (split === null) return { entries: [], more: false };
      if (split && termCount(split) <= termCount(plan.expr)) return this.collect(this.matches(s, 'all', split), byRank, () => true, want, limit, out);
      const check = plan.check;
      candidates = this.matches(s, 'names', plan.expr);
      return this.collect(candidates, byRank, (e) => !check.length || allClausesMatch(entryTokens(e), check), want, limit, out);
    } else if (clauses.length) {
      const plan = planQuery(clauses, this.expander(s, 1), 'all');
      if (!plan) return { entries: [], more: false };
      const check = [...columnChecks, ...plan.check];
      candidates = this.matches(s, 'all', plan.expr);
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
    const page: SearchPage = { entries: out.slice(0, limit), more: out.length > limit || seen > SCAN_CAP };
    if (seen > SCAN_CAP) page.capped = true;
    return page;
  }

  /** Candidates (ranks, ascending) for an address condition, each checked against the value. */
  /** `cut.reached` is set when the candidates stop at a cap (SCAN_CAP, SCAN_ROWS) before their end. */
  private *addressCandidates(s: OpenSnapshot, a: NonNullable<IndexQuery['address']>, kinds: Set<ResourceKind> | undefined, cut: { reached: boolean }): Generator<number> {
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
    // contains: trigram and domain candidates in rank order; the index gives a superset, so each is checked.
    const expr = containsExpression(value, this.domains(s));
    if (expr === null) return;
    if (expr === 'scan') {
      // A value that may lie inside more than EXPAND_MAX domains: the addresses are read in rank
      // slices, at most SCAN_ROWS of them for one query, so that no value makes a request read
      // the whole directory on the event loop every client shares (a million rows: 1.5–2.1 s of
      // CPU when nothing or no entry of the kinds asked for matches; 20,000 rows: ~16 ms, as the
      // SCAN_CAP candidates of the indexed path). Past that, `more` says the answer is partial.
      // SQLite tests each address of a window of ranks and returns the hits alone: a row object
      // per address read cost 2.5 µs, 5 ms per 2,000 (the scan's own reading, ~0.5 µs each).
      // Windows grow from SCAN_SLICE / 4: a common value ("aborat", "harmac") fills its page
      // within a few hundred addresses.
      const slice = this.stmt(s, 'SELECT rank, kind FROM entries WHERE rank > ? AND rank <= ? AND instr(address_lc, ?) > 0 ORDER BY rank');
      const cap = this.opts.scanRows ?? SCAN_ROWS;
      const last = this.index(s, 'all').maxRank;
      let after = 0; // ranks start at 1
      for (let read = 0, size = SCAN_SLICE / 4; after < last; size = Math.min(SCAN_SLICE, size * 2)) {
        if (read >= cap) {
          cut.reached = true;
          return;
        }
        const n = Math.min(size, cap - read);
        const rows = slice.all(after, after + n, value) as { rank: number; kind: ResourceKind }[];
        read += n;
        after += n;
        for (const r of rows) if (ok(r)) yield r.rank;
      }
      return;
    }
    const row = this.stmt(s, 'SELECT address_lc a, kind FROM entries WHERE rank = ?');
    let seen = 0;
    // The resource kinds through idx_all's k_ lists, intersected with the address candidates:
    // an entry of another kind is skipped without reading its row (`/fhir/Organization?mailbox-mss:contains=cabinet`
    // would otherwise read SCAN_CAP rows of CAB mailboxes, all of kind Practitioner).
    let cursor = cursorOf(this.index(s, 'addr'), expr);
    if (kinds) cursor = allOf([cursor, anyOf([...kinds].map((k) => cursorOf(this.index(s, 'all'), { op: 'term', term: 'k_' + k.toLowerCase() })))]);
    for (const r of ranksOf(cursor)) {
      if (++seen > SCAN_CAP) {
        cut.reached = true;
        return;
      }
      const x = row.get(r) as { a: string; kind: ResourceKind } | undefined;
      if (x && x.a.includes(value) && ok(x)) yield r;
    }
  }

  /** idx_addr's domain terms: one index seek per distinct domain ("@" sorts before letters and digits' successors). */
  private domains(s: OpenSnapshot): Domains {
    if (!s.domains) {
      const w = (s.domainWalk ??= { after: '@', out: [] });
      this.walkDomains(s, w, Infinity);
      s.domains = new Domains(w.out);
    }
    return s.domains;
  }

  /** Up to `max` more domain terms of idx_addr (one index seek each); true when all are known. */
  private walkDomains(s: OpenSnapshot, w: { after: string; out: string[] }, max: number): boolean {
    const next = this.stmt(s, "SELECT term FROM idx_addr WHERE term > ? AND term < 'A' ORDER BY term LIMIT 1").pluck();
    for (let n = 0; n < max; n++) {
      const t = next.get(w.after) as string | undefined;
      if (t === undefined) return true;
      // Trigrams "@xy" share the range: a domain term is longer (a domain has a dot).
      if (t.length > 3) w.out.push(t);
      w.after = t;
    }
    return false;
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
