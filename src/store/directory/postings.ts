// The search index of a directory snapshot: inverted lists ("postings"), term → the ranks of the
// entries carrying it, ascending. It replaces three FTS5 tables (names, all words, address
// trigrams): the queries the directory serves are ANDs and ORs of whole terms and prefixes
// streamed in rank order and stopped at a page, which needs doclists and nothing of FTS5's
// tokenizers, positions or segment merging — and building FTS5 was two thirds of an import.
//
// Storage: one WITHOUT ROWID table per index, key (term, last rank of the chunk), each row a
// chunk of at most CHUNK ranks encoded as varint deltas. Building: ranks arrive in increasing
// order, so each term's list is appended to; (term, rank) pairs are buffered in typed arrays
// per segment (bounded memory), then counting-sorted by term (stable: ranks stay ascending) and
// written term by term in key order. A later segment's chunks of a term all sort after the
// earlier ones (their ranks are higher): no merge is ever needed.
//
// Reading: a cursor per term seeks the first rank ≥ x (one indexed lookup per chunk); AND is a
// leapfrog intersection, OR the least of its children. A query thus streams its matches in
// rank order and its cost follows the page asked for, not the number of matches.
import type Database from 'better-sqlite3';

/** Most ranks in one chunk row. */
export const CHUNK = 256;

export const postingsDDL = (table: string) =>
  `CREATE TABLE ${table} (term TEXT NOT NULL, last INTEGER NOT NULL, ranks BLOB NOT NULL, PRIMARY KEY (term, last)) WITHOUT ROWID;`;

/** Appends an unsigned varint (LEB128) to buf at pos; returns the new pos. */
function putVarint(buf: Buffer, pos: number, v: number): number {
  while (v >= 0x80) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}

/**
 * The numbered terms of an import (vocabulary.ts TermDictionary gives the numbers on the
 * reading thread): number → term, and back, grown as batches bring new terms.
 */
export class TermTable {
  readonly terms: string[] = [];
  readonly ids = new Map<string, number>();
  append(fresh: readonly string[]) {
    for (const t of fresh) {
      this.ids.set(t, this.terms.length);
      this.terms.push(t);
    }
  }
}

/** Pair keys at or above LIT are a segment's own (text) terms, below it numbered terms. */
const LIT = 1 << 30;

/**
 * Builds one postings table during an import (inside the import's transaction). Terms come
 * numbered (`addId`, a TermTable's number) or as text (`add`, `addTrigrams`: numbered here,
 * per segment).
 */
export class PostingsBuilder {
  /** Last rank added per numbered term (repeats in one entry are dropped). */
  private lastRank = new Int32Array(1 << 12);
  /** Segment in which each numbered term was last seen, and the numbered terms of this segment. */
  private seenIn = new Int32Array(1 << 12);
  private present: number[] = [];
  private segment = 1;
  /** This segment's text terms: term → index, and back, and their last rank. */
  private lit = new Map<string, number>();
  private litTerms: string[] = [];
  private litLastRank = new Int32Array(1 << 12);
  private keyOf: Int32Array;
  private rankOf: Int32Array;
  private n = 0;
  /** Rank of the last pair: a segment is written between entries, never inside one. */
  private lastPushed = 0;
  private readonly ins: Database.Statement;
  private readonly buf = Buffer.alloc(CHUNK * 5 + 16);

  constructor(
    db: Database.Database,
    table: string,
    /** Pairs buffered before a segment is written (8 bytes each). */
    private readonly segmentPairs = 1_000_000,
    private readonly numbered: TermTable = new TermTable(),
  ) {
    this.ins = db.prepare(`INSERT INTO ${table} (term, last, ranks) VALUES (?, ?, ?)`);
    this.keyOf = new Int32Array(segmentPairs + 1024);
    this.rankOf = new Int32Array(segmentPairs + 1024);
  }

  /** Adds rank to the list of a numbered term; ranks must come in non-decreasing order. */
  addId(id: number, rank: number) {
    if (id >= this.lastRank.length) this.growNumbered(id);
    if (this.lastRank[id] === rank) return;
    this.lastRank[id] = rank;
    this.push(id, rank); // may start a new segment: seenIn is checked after
    if (this.seenIn[id] !== this.segment) {
      this.seenIn[id] = this.segment;
      this.present.push(id);
    }
  }

  /** Whether a numbered term has any rank (in this table). */
  hasId(id: number): boolean {
    return id < this.lastRank.length && this.lastRank[id] !== 0;
  }

  private growNumbered(id: number) {
    let size = this.lastRank.length;
    while (size <= id) size *= 2;
    const l = new Int32Array(size);
    l.set(this.lastRank);
    this.lastRank = l;
    const s = new Int32Array(size);
    s.set(this.seenIn);
    this.seenIn = s;
  }

  /**
   * Adds rank to term's list (a term given as text); ranks must come in non-decreasing order.
   * `own`: the string is a flat one of its own (not a slice of a bigger one), kept as it is.
   */
  add(term: string, rank: number, own = false) {
    this.startEntry(rank);
    let i = this.lit.get(term);
    if (i === undefined) i = this.newLiteral(term, own);
    else if (this.litLastRank[i] === rank) return;
    this.litLastRank[i] = rank;
    this.push(LIT + i, rank);
  }

  /**
   * Adds rank to the lists of every trigram of text[0, end) (3 UTF-16 units). Trigrams of 7-bit
   * characters are looked up by their 21-bit code in a flat table (no string made per trigram).
   */
  addTrigrams(text: string, rank: number, end = text.length) {
    this.startEntry(rank);
    const ascii = this.ascii;
    for (let k = 0; k + 3 <= end; k++) {
      const a = text.charCodeAt(k);
      const b = text.charCodeAt(k + 1);
      const c = text.charCodeAt(k + 2);
      if ((a | b | c) < 128) {
        const code = (a << 14) | (b << 7) | c;
        let i = ascii[code] - 1;
        if (i < 0) {
          i = this.newLiteral(text.slice(k, k + 3));
          ascii[code] = i + 1;
        } else if (this.litLastRank[i] === rank) continue;
        this.litLastRank[i] = rank;
        this.push(LIT + i, rank);
      } else this.add(text.slice(k, k + 3), rank);
    }
  }

  /** Term index + 1 of each 7-bit trigram in this segment (0: none yet). */
  private ascii = new Int32Array(0);

  /** Trigram mode: allocates the 7-bit table (8 MiB). */
  trigrams(): this {
    this.ascii = new Int32Array(1 << 21);
    return this;
  }

  private newLiteral(term: string, own = false): number {
    // A fresh copy: a slice of a bigger string would keep all of it alive.
    if (!own && term.length >= 13) term = Buffer.from(term).toString();
    const i = this.litTerms.length;
    this.lit.set(term, i);
    this.litTerms.push(term);
    if (i >= this.litLastRank.length) {
      const g = new Int32Array(this.litLastRank.length * 2);
      g.set(this.litLastRank);
      this.litLastRank = g;
    }
    this.litLastRank[i] = 0;
    return i;
  }

  /** Before the first pair of an entry: writes the segment if it is full (so that no entry spans two). */
  private startEntry(rank: number) {
    if (this.n >= this.segmentPairs && rank !== this.lastPushed) this.flush();
  }

  private push(key: number, rank: number) {
    if (rank !== this.lastPushed) {
      if (this.n >= this.segmentPairs) this.flush();
      this.lastPushed = rank;
    }
    const n = this.n;
    if (n === this.keyOf.length) {
      // One entry with more terms than the headroom: grow (rare).
      const k = new Int32Array(n * 2);
      k.set(this.keyOf);
      this.keyOf = k;
      const r = new Int32Array(n * 2);
      r.set(this.rankOf);
      this.rankOf = r;
    }
    this.keyOf[n] = key;
    this.rankOf[n] = rank;
    this.n = n + 1;
  }

  /** Writes the buffered pairs (a segment) and empties the buffer. */
  flush() {
    const n = this.n;
    if (n) {
      // Terms of the segment in key order (the native string sort), so that the B-tree gets
      // appends; then a counting sort of the pairs by that order (stable: ranks stay ascending).
      const present = this.present;
      const litTerms = this.litTerms;
      const sorted: string[] = new Array(present.length + litTerms.length);
      for (let i = 0; i < present.length; i++) sorted[i] = this.numbered.terms[present[i]];
      for (let i = 0; i < litTerms.length; i++) sorted[present.length + i] = litTerms[i];
      sorted.sort();
      const count = sorted.length;
      const litSlot = new Int32Array(litTerms.length);
      if (this.slotOfNumbered.length < this.numbered.terms.length) this.slotOfNumbered = new Int32Array(this.numbered.terms.length * 2);
      const idSlot = this.slotOfNumbered;
      for (let s = 0; s < count; s++) {
        const t = sorted[s];
        const i = this.lit.get(t);
        if (i !== undefined) litSlot[i] = s;
        else idSlot[this.numbered.ids.get(t)!] = s;
      }
      const start = new Int32Array(count + 1);
      const keyOf = this.keyOf;
      for (let i = 0; i < n; i++) {
        const k = keyOf[i];
        keyOf[i] = k >= LIT ? litSlot[k - LIT] : idSlot[k];
        start[keyOf[i] + 1]++;
      }
      for (let t = 0; t < count; t++) start[t + 1] += start[t];
      const fill = start.slice(0, count);
      const byTerm = new Int32Array(n);
      const rankOf = this.rankOf;
      for (let i = 0; i < n; i++) byTerm[fill[keyOf[i]]++] = rankOf[i];
      const buf = this.buf;
      for (let s = 0; s < count; s++) {
        const term = sorted[s];
        for (let i = start[s], end = start[s + 1]; i < end; ) {
          const stop = Math.min(end, i + CHUNK);
          let prev = 0;
          let pos = 0;
          for (let j = i; j < stop; j++) {
            pos = putVarint(buf, pos, byTerm[j] - prev);
            prev = byTerm[j];
          }
          this.ins.run(term, prev, buf.subarray(0, pos));
          i = stop;
        }
      }
    }
    this.n = 0;
    this.segment++;
    this.present = [];
    if (this.litTerms.length) {
      this.lit = new Map();
      this.litTerms = [];
      if (this.ascii.length) this.ascii.fill(0);
    }
  }

  /**
   * Writes the last segment and lets go of the segment buffers (about 8 MB, 16 MB with the
   * trigram table): nothing may be added after. hasId still answers.
   */
  finish() {
    this.flush();
    this.keyOf = new Int32Array(0);
    this.rankOf = new Int32Array(0);
    this.ascii = new Int32Array(0);
    this.lit = new Map();
    this.slotOfNumbered = new Int32Array(0);
  }

  /** Sorted position of each numbered term in the segment being written. */
  private slotOfNumbered = new Int32Array(0);
}

// ---- reading --------------------------------------------------------------------------------

export const END = Number.MAX_SAFE_INTEGER;

/** Ranks in ascending order: seek(x) is the first rank ≥ x (END past the last). */
export interface Cursor {
  seek(x: number): number;
}

/** The statements a cursor reads chunks with (prepared once per snapshot and table). */
export interface PostingsTable {
  /** (term, x) → the chunk holding the first rank ≥ x: {last, ranks}. */
  chunkFrom: Database.Statement;
  /** (from, to) → every chunk of the terms in [from, to): {term, ranks}, in key order. */
  range: Database.Statement;
  /** term → every chunk of it. */
  lists: Database.Statement;
  /** term → every chunk of it, {last, ranks}, in rank order. */
  chunks: Database.Statement;
  /** Ranks are 1…maxRank. */
  maxRank: number;
  /** Long lists kept in memory once a query has walked them (shared by the snapshot's tables). */
  cache?: ListCache;
  /** This table's name, part of the cache's keys. */
  name: string;
  /** A cursor for a term served elsewhere than this table's lists (undefined: its list here). */
  termCursor?: (term: string) => Cursor | undefined;
}

export function postingsTable(db: Database.Database, table: string, maxRank: number, cache?: ListCache): PostingsTable {
  return {
    chunkFrom: db.prepare(`SELECT last, ranks FROM ${table} WHERE term = ? AND last >= ? ORDER BY term, last LIMIT 1`),
    range: db.prepare(`SELECT term, ranks FROM ${table} WHERE term >= ? AND term < ?`),
    lists: db.prepare(`SELECT ranks FROM ${table} WHERE term = ?`).pluck(),
    chunks: db.prepare(`SELECT last, ranks FROM ${table} WHERE term = ? ORDER BY term, last`),
    maxRank,
    cache,
    name: table,
  };
}

function decode(blob: Uint8Array, out: number[] | Int32Array, from = 0, to = blob.length): number {
  let n = 0;
  let prev = 0;
  for (let i = from; i < to; ) {
    let v = 0;
    let mul = 1;
    let b: number;
    do {
      b = blob[i++];
      v += (b & 0x7f) * mul;
      mul *= 128;
    } while (b & 0x80);
    prev += v;
    out[n++] = prev;
  }
  return n;
}

/** A term's whole list in memory: the last rank of each chunk, and the chunks' bytes end to end. */
interface MemoryList {
  lasts: Float64Array;
  /** Chunk i is bytes[ends[i - 1] ?? 0, ends[i]). */
  ends: Int32Array;
  bytes: Uint8Array;
}

/**
 * Long postings lists kept in memory, as stored (varint deltas, about 1 byte per rank in a long
 * list), least recently used evicted past a byte budget. A cursor that has had to look up
 * LOAD_AFTER chunks of one list in a query (a leapfrog intersection seeking through a long list
 * for a rarer partner: a B-tree descent per chunk) reads the rest of it at once, in one sequential
 * scan, and later queries seek in memory (a binary search, then one chunk decoded). Per snapshot:
 * a new import starts empty.
 */
export class ListCache {
  private readonly lists = new Map<string, MemoryList | null>();
  private bytes = 0;
  constructor(readonly budget: number) {}

  /** The list if it is in memory (and marks it recently used). */
  get(t: PostingsTable, term: string): MemoryList | undefined {
    const key = t.name + '\u0000' + term;
    const l = this.lists.get(key);
    if (!l) return undefined;
    this.lists.delete(key);
    this.lists.set(key, l);
    return l;
  }

  /** Reads the whole list into memory (undefined when it alone would not fit the budget). */
  load(t: PostingsTable, term: string): MemoryList | undefined {
    const key = t.name + '\u0000' + term;
    const known = this.lists.get(key);
    if (known !== undefined) return known ?? undefined;
    return this.put(t, term, t.chunks.all(term) as { last: number; ranks: Uint8Array }[]);
  }

  /** Keeps a list read elsewhere (every chunk of the term, in rank order); undefined when it alone would not fit. */
  put(t: PostingsTable, term: string, rows: { last: number; ranks: Uint8Array }[]): MemoryList | undefined {
    const key = t.name + '\u0000' + term;
    let size = 0;
    for (const r of rows) size += r.ranks.length;
    if (size + 16 * rows.length > this.budget) {
      this.lists.set(key, null); // too long to keep: not tried again (a null costs nothing against the budget)
      return undefined;
    }
    const l: MemoryList = { lasts: new Float64Array(rows.length), ends: new Int32Array(rows.length), bytes: new Uint8Array(size) };
    let at = 0;
    rows.forEach((r, i) => {
      l.bytes.set(r.ranks, at);
      at += r.ranks.length;
      l.ends[i] = at;
      l.lasts[i] = r.last;
    });
    this.lists.set(key, l);
    this.bytes += size + 16 * rows.length;
    for (const [k, v] of this.lists) {
      if (this.bytes <= this.budget) break;
      if (k === key) continue;
      if (v) this.bytes -= v.bytes.length + 16 * v.lasts.length;
      this.lists.delete(k);
    }
    return l;
  }

  /** Whether the list is in memory or known too long (no need to read it). */
  has(t: PostingsTable, term: string): boolean {
    return this.lists.has(t.name + '\u0000' + term);
  }

  /** Bytes held (tests, figures). */
  get size() {
    return this.bytes;
  }
}

/** Chunk lookups of one list in one query after which the whole list is read into the cache. */
export const LOAD_AFTER = 3;

class TermCursor implements Cursor {
  /** The chunk being read, decoded (a chunk holds at most CHUNK ranks; ranks fit 31 bits). */
  private readonly ranks = new Int32Array(CHUNK);
  private len = 0;
  private pos = 0;
  private chunkLast = 0;
  private cur = 0;
  private lookups = 0;
  private list: MemoryList | undefined;
  /** In a list in memory: the chunk decoded (-1: none yet). */
  private chunk = -1;

  constructor(
    private readonly t: PostingsTable,
    private readonly term: string,
  ) {
    this.list = t.cache?.get(t, term);
  }

  seek(x: number): number {
    if (this.cur >= x) return this.cur;
    if (x > this.chunkLast) {
      if (!this.list && this.t.cache && ++this.lookups > LOAD_AFTER) this.list = this.t.cache.load(this.t, this.term);
      const l = this.list;
      if (l) {
        // Galloping then binary search for the first chunk whose last rank is ≥ x.
        const lasts = l.lasts;
        let lo = this.chunk + 1;
        let step = 1;
        let hi = lo;
        while (hi < lasts.length && lasts[hi] < x) {
          lo = hi + 1;
          hi += step;
          step *= 2;
        }
        if (hi > lasts.length) hi = lasts.length;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (lasts[mid] < x) lo = mid + 1;
          else hi = mid;
        }
        if (lo >= lasts.length) return (this.cur = END);
        this.len = decode(l.bytes, this.ranks, lo === 0 ? 0 : l.ends[lo - 1], l.ends[lo]);
        this.chunk = lo;
        this.chunkLast = lasts[lo];
      } else {
        const row = this.t.chunkFrom.get(this.term, x) as { last: number; ranks: Buffer } | undefined;
        if (!row) return (this.cur = END);
        this.len = decode(row.ranks, this.ranks);
        this.chunkLast = row.last;
      }
      this.pos = 0;
    }
    // x ≤ chunkLast: the answer is in this chunk.
    const r = this.ranks;
    let p = this.pos;
    while (r[p] < x) p++;
    this.pos = p;
    return (this.cur = r[p]);
  }
}

class AndCursor implements Cursor {
  constructor(private readonly of: Cursor[]) {}
  seek(x: number): number {
    let target = x;
    for (;;) {
      let agreed = true;
      for (const c of this.of) {
        const r = c.seek(target);
        if (r === END) return END;
        if (r !== target) {
          target = r;
          agreed = false;
        }
      }
      if (agreed) return target;
    }
  }
}

class OrCursor implements Cursor {
  constructor(private readonly of: Cursor[]) {}
  seek(x: number): number {
    let least = END;
    for (const c of this.of) {
      const r = c.seek(x);
      if (r < least) least = r;
    }
    return least;
  }
}

/** Ranks in a bitmap, built once (a broad prefix: every chunk of every term in a key range). */
class BitmapCursor implements Cursor {
  private cur = 0;
  /** The same bytes by 4: empty stretches are skipped a word at a time. */
  private readonly words: Uint32Array;
  constructor(private readonly bits: Uint8Array) {
    this.words = new Uint32Array(bits.buffer, bits.byteOffset, bits.length >> 2);
  }
  seek(x: number): number {
    if (this.cur >= x) return this.cur;
    const b = this.bits;
    const w = this.words;
    let i = x;
    while (i < b.length) {
      if ((i & 3) === 0 && i >> 2 < w.length && w[i >> 2] === 0) {
        i += 4;
        continue;
      }
      if (b[i]) return (this.cur = i);
      i++;
    }
    return (this.cur = END);
  }
}

const EMPTY: Cursor = { seek: () => END };

/**
 * Ranks read from an SQL index in slices: `from(x)` gives the next ranks ≥ x, ascending, at most
 * `slice` of them (fewer: the last). A seek within the slice read costs no query.
 */
export class SliceCursor implements Cursor {
  private ranks: number[] = [];
  private pos = 0;
  private cur = 0;
  private done = false;
  constructor(
    private readonly from: (x: number) => number[],
    private readonly slice: number,
  ) {}
  seek(x: number): number {
    if (this.cur >= x) return this.cur;
    const r = this.ranks;
    if (r.length && x <= r[r.length - 1]) {
      let p = this.pos;
      while (r[p] < x) p++;
      this.pos = p;
      return (this.cur = r[p]);
    }
    if (this.done) return (this.cur = END);
    this.ranks = this.from(x);
    this.pos = 0;
    if (this.ranks.length < this.slice) this.done = true;
    return (this.cur = this.ranks.length ? this.ranks[0] : END);
  }
}

/** The query tree a plan gives (query-plan.ts). */
export type Expr =
  | { op: 'term'; term: string }
  | { op: 'prefix'; term: string }
  | { op: 'and'; of: Expr[] }
  | { op: 'or'; of: Expr[] };

/**
 * A cursor over the matches of expr. A prefix node is served by `prefixTerm` when the index has
 * a term for it (the names index keeps prefixes of 1 to 3 characters), else by every term that
 * is the prefix followed by letters and digits (no "_": a code token "pp_…" is not a word
 * starting with "p"), read once into a bitmap.
 */
export function cursorOf(t: PostingsTable, e: Expr, prefixTerm?: (p: string) => string | undefined): Cursor {
  switch (e.op) {
    case 'term':
      return t.termCursor?.(e.term) ?? new TermCursor(t, e.term);
    case 'and':
      return e.of.length === 1 ? cursorOf(t, e.of[0], prefixTerm) : new AndCursor(e.of.map((x) => cursorOf(t, x, prefixTerm)));
    case 'or':
      return e.of.length === 1 ? cursorOf(t, e.of[0], prefixTerm) : new OrCursor(e.of.map((x) => cursorOf(t, x, prefixTerm)));
    case 'prefix': {
      const direct = prefixTerm?.(e.term);
      if (direct !== undefined) return new TermCursor(t, direct);
      const bits = new Uint8Array((t.maxRank + 4) & ~3); // whole words for BitmapCursor
      let any = false;
      const out: number[] = [];
      const scan = (from: string, to: string) => {
        for (const row of t.range.iterate(from, to) as Iterable<{ term: string; ranks: Buffer }>) {
          const rest = row.term.slice(e.term.length);
          if (rest.includes('_')) continue;
          const n = decode(row.ranks, out);
          for (let i = 0; i < n; i++) bits[out[i]] = 1;
          any = true;
        }
      };
      // Terms are [a-z0-9_] (directory-model/normalize.ts): the term itself, then prefix +
      // [0-9…] and prefix + [a-z…], skipping prefix + "_…" (codes).
      scan(e.term, e.term + '0');
      scan(e.term + '0', e.term + ':');
      scan(e.term + 'a', e.term + '{');
      return any ? new BitmapCursor(bits) : EMPTY;
    }
  }
}

/** Matches of every cursor (cursors may read different tables: ranks are the same entries). */
export const allOf = (cs: Cursor[]): Cursor => (cs.length === 1 ? cs[0] : new AndCursor(cs));
/** Matches of any of the cursors. */
export const anyOf = (cs: Cursor[]): Cursor => (cs.length === 1 ? cs[0] : new OrCursor(cs));

/** Ranks of a cursor, ascending, lazily. */
export function* ranksOf(c: Cursor): Generator<number> {
  for (let r = c.seek(1); r !== END; r = c.seek(r + 1)) yield r;
}

// ---- duplicate addresses during a build --------------------------------------------------------

/**
 * The addresses of a snapshot being built, so that a duplicate is found without a unique index
 * during the load (the index is built once at the end, by sorting, rather than by a million
 * random inserts). Open addressing on two 32-bit hashes; a slot holds the rank of the first entry
 * with that address, and a hash match is confirmed on the stored address (`addressOf`): exact.
 */
export class AddressSet {
  private h1s: Int32Array;
  private h2s: Int32Array;
  private ranks: Int32Array;
  private size = 0;

  constructor(
    private readonly addressOf: (rank: number) => string | undefined,
    capacity = 1 << 16,
  ) {
    this.h1s = new Int32Array(capacity);
    this.h2s = new Int32Array(capacity);
    this.ranks = new Int32Array(capacity);
  }

  /** The rank of the earlier entry with this address, or else 0 after recording it at `rank`. */
  addOrFind(address: string, rank: number): number {
    // FNV-1a and a multiplicative hash, over UTF-16 units.
    let h1 = 0x811c9dc5 | 0;
    let h2 = 0x27d4eb2f | 0;
    for (let i = 0; i < address.length; i++) {
      const c = address.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 + c, 0x9e3779b1) ^ (h2 >>> 15);
    }
    const mask = this.ranks.length - 1;
    let slot = h1 & mask;
    for (;;) {
      const r = this.ranks[slot];
      if (r === 0) break;
      if (this.h1s[slot] === h1 && this.h2s[slot] === h2 && this.addressOf(r) === address) return r;
      slot = (slot + 1) & mask;
    }
    this.h1s[slot] = h1;
    this.h2s[slot] = h2;
    this.ranks[slot] = rank;
    if (++this.size * 2 > this.ranks.length) this.grow();
    return 0;
  }

  /** Lets go of the table (24 MB at a million addresses): nothing may be added after. */
  release() {
    this.h1s = this.h2s = this.ranks = new Int32Array(0);
  }

  private grow() {
    const { h1s, h2s, ranks } = this;
    const cap = ranks.length * 2;
    const mask = cap - 1;
    this.h1s = new Int32Array(cap);
    this.h2s = new Int32Array(cap);
    this.ranks = new Int32Array(cap);
    for (let i = 0; i < ranks.length; i++) {
      if (!ranks[i]) continue;
      let slot = h1s[i] & mask;
      while (this.ranks[slot]) slot = (slot + 1) & mask;
      this.h1s[slot] = h1s[i];
      this.h2s[slot] = h2s[i];
      this.ranks[slot] = ranks[i];
    }
  }
}
