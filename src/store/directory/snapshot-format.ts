// The layout of a national directory snapshot: dataDir/directory.sqlite, one SQLite file per
// import (better-sqlite3), read by reader.ts and written by snapshot-builder.ts. Shared here:
// the file name, the schema and its version, and how an entry becomes a row and back.
//
// Search index (postings.ts): the rank of an entry is its line order in the extraction, and the
// three indexes map a term to the ranks carrying it, ascending, so a query streams matches in
// rank order and stops at its page: its cost follows the page asked for, not the number of matches.
// - idx_names: the name tokens, plus "*" + their prefixes of 1 to 3 characters (autocomplete);
// - idx_all: every word plus "prefix_value" code tokens (type, profession, city, postal code, …),
//   for free text with filters; conditions on one column are then checked on the candidates.
//   Practitioner and structure keys ("pp_…", "st_…") are there only when not of [0-9A-Z]: the
//   others are read from the entries' indexes on pp_key and st_key (reader.ts keyCursor).
// - idx_addr: the trigrams (3 UTF-16 units) of each address's local part with its "@", and its
//   domain as one term "@domain", for address `:contains`; candidates are checked, the index
//   giving a superset (query-plan.ts containsExpression).
// Tokens are normalised by directory-model/normalize.ts before they get here ([a-z0-9_], split at
// spaces), so accent, case, hyphen and apostrophe rules live in one place.
import { COLUMNS, type DirectoryEntry, type ExtractionFields } from '../../directory-model/entry.js';
import { postingsDDL } from './postings.js';
import type { TermDictionary, TermSink } from './vocabulary.js';

export const SNAPSHOT_FILE = 'directory.sqlite';
/**
 * 7: practitioner and structure keys of [0-9A-Z] have no "pp_…" / "st_…" rows in idx_all, the
 * entries' indexes (pp_key, rank) and (st_key, rank, kind) answer them (vocabulary.ts keyIndexed);
 * 6: idx_addr holds the local part's trigrams and the domain as one term (5: every trigram).
 */
export const SCHEMA_VERSION = 7;

export class DirectoryStoreError extends Error {
  override name = 'DirectoryStoreError';
}

const FIELD_KEYS = COLUMNS.map(([f]) => f);

/**
 * A stored row back to an entry. One object literal with every field named (one hidden class,
 * ~0.6 KB a row): building it from the COLUMNS list (a dynamic object, then a spread) allocated
 * 4.1 KB a row, most of a search's garbage. The order is COLUMNS' (snapshot-format.test.ts).
 */
export function decodeEntry(r: any): DirectoryEntry {
  const v = (r.f as string).split('|');
  const at = (i: number) => v[i] ?? '';
  return {
    balType: at(0),
    address: at(1),
    ppIdType: at(2),
    ppId: at(3),
    ppNatId: at(4),
    stIdType: at(5),
    stId: at(6),
    service: at(7),
    civility: at(8),
    family: at(9),
    given: at(10),
    categoryCode: at(11),
    categoryLabel: at(12),
    professionCode: at(13),
    professionLabel: at(14),
    specialityCode: at(15),
    specialityLabel: at(16),
    digitization: at(17),
    legalName: at(18),
    tradeName: at(19),
    l2: at(20),
    l3: at(21),
    l4Number: at(22),
    l4NumberExt: at(23),
    l4StreetType: at(24),
    l4Street: at(25),
    l5: at(26),
    l6: at(27),
    postalCode: at(28),
    department: at(29),
    country: at(30),
    source: 'national',
    type: v[0] as DirectoryEntry['type'],
    ppKey: r.pp_key,
    stKey: r.st_key,
    kind: r.kind,
    sortKey: '', // nothing sorts national entries by it after the import
    listeRouge: false,
    description: '',
    ownerUserId: null,
  };
}

function encodeFields(e: ExtractionFields & { line?: string }): string {
  if (e.line) return e.line;
  let s = e.balType;
  for (let i = 1; i < FIELD_KEYS.length; i++) s += '|' + (e[FIELD_KEYS[i]] ?? '');
  return s; // fields were split at '|' from one line: they hold neither '|' nor a line end
}

export const SNAPSHOT_DDL = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE entries (rank INTEGER PRIMARY KEY, line_no INTEGER NOT NULL, address_lc TEXT NOT NULL, pp_key TEXT NOT NULL,
  st_key TEXT NOT NULL, kind TEXT NOT NULL, f TEXT NOT NULL);
CREATE TABLE vocab (term TEXT PRIMARY KEY) WITHOUT ROWID;
${postingsDDL('idx_names')}
${postingsDDL('idx_all')}
${postingsDDL('idx_addr')}
CREATE TABLE entry_digest (n INTEGER PRIMARY KEY, data BLOB NOT NULL);
`;

/**
 * entry_digest: per entry, in rank order, 16 bytes = two 32-bit hashes of its address (lower
 * case, UTF-8) and two of its stored fields (`f`, UTF-8), little-endian Int32, in blobs of up to
 * DIGEST_ROWS entries. Only the next import reads it, to count added / removed / changed entries
 * without reading the previous snapshot's entries (an older file without it is compared by SQL).
 * Readers ignore it: the schema version stays the same.
 */
export const DIGEST_ROWS = 4096;

/** Two 32-bit hashes of bytes[s, e) into out[at], out[at + 1] (FNV-1a and a multiply-xorshift). */
export function digestBytes(bytes: Uint8Array, s: number, e: number, out: Int32Array, at: number) {
  let h1 = 0x811c9dc5 | 0;
  let h2 = (0x27d4eb2f ^ (e - s)) | 0;
  for (let i = s; i < e; i++) {
    const c = bytes[i];
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  out[at] = h1;
  out[at + 1] = h2;
}
/**
 * Batches of rows sent to the import worker, in two transferred buffers (moved, not copied):
 * - text, UTF-8, ROW_FIELDS fields per row each followed by FS: address (lower case), pp_key,
 *   st_key, kind, the 31 fields, then the row's terms without a number (space-separated) for
 *   idx_names and for idx_all (vocabulary.ts: practitioner and structure codes of keys not of
 *   [0-9A-Z], and every new term once the dictionary is full);
 * - numbers, per row: rank, line number, the count then the numbers of its idx_names terms,
 *   the count then the numbers of its idx_all terms;
 * with the terms numbered since the previous batch, in number order. Fields never hold FS:
 * they come from '|'-separated text lines and normalised tokens.
 */
export const FS = '\u0001';
/** Text fields per row. */
export const ROW_FIELDS = 7;

export interface Batch {
  text: ArrayBuffer;
  textLength: number;
  numbers: ArrayBuffer;
  numbersLength: number;
  fresh: string[];
}

/**
 * Encodes rows straight into the batch buffers (no batch string, no field kept alive between
 * rows: the rows' garbage dies young). Terms are numbered by the TermDictionary.
 */
export class BatchEncoder {
  private buf: Buffer;
  private pos = 0;
  private nums: Int32Array;
  private n = 0;
  private literals: string[] = [];
  rows = 0;
  /** Collects a row's terms: numbers into the number buffer, text into `literals`. */
  private readonly sink: TermSink = {
    id: (id) => {
      if (this.n === this.nums.length) this.growNumbers();
      this.nums[this.n++] = id;
    },
    literal: (t) => {
      this.literals.push(t);
    },
  };

  constructor(
    private readonly dictionary: TermDictionary,
    private readonly size = 1 << 20,
  ) {
    this.buf = Buffer.allocUnsafeSlow(size);
    this.nums = new Int32Array(size >> 3);
  }

  get bytes() {
    return this.pos + 4 * this.n;
  }

  private growNumbers() {
    const g = new Int32Array(this.nums.length * 2);
    g.set(this.nums);
    this.nums = g;
  }

  private put(s: string) {
    // Short fields (keys, kind, the address, term lists) are nearly always ASCII: copied by code
    // unit, which costs less than a call into buf.write (six per row); any other goes through it.
    const buf = this.buf;
    let pos = this.pos;
    let i = 0;
    if (s.length <= 96) {
      for (; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c >= 128) break;
        buf[pos + i] = c;
      }
    }
    if (i === s.length) pos += i;
    else pos += buf.write(s, pos);
    buf[pos++] = 1; // FS
    this.pos = pos;
  }

  /** Writes the row's terms of one index (count, then numbers) and returns its text terms. */
  private terms(fill: (out: TermSink) => void): string {
    if (this.n === this.nums.length) this.growNumbers();
    const at = this.n++;
    this.literals.length = 0;
    fill(this.sink);
    this.nums[at] = this.n - at - 1;
    return this.literals.length ? this.literals.join(' ') : '';
  }

  add(rank: number, e: DirectoryEntry, lineNo: number) {
    const raw = e.lineBytes;
    const f = raw ? '' : encodeFields(e);
    const address = e.address.toLowerCase();
    if (this.n + 2 > this.nums.length) this.growNumbers();
    this.nums[this.n++] = rank;
    this.nums[this.n++] = lineNo;
    const namesLiterals = this.terms((out) => this.dictionary.namesOf(e, out));
    const allLiterals = this.terms((out) => this.dictionary.allOf(e, out));
    // At most 3 UTF-8 bytes per UTF-16 unit.
    const need = (raw ? raw.length : 0) + 3 * (f.length + address.length + e.ppKey.length + e.stKey.length + e.kind.length + namesLiterals.length + allLiterals.length) + 16;
    if (this.buf.length - this.pos < need) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.pos + need));
      this.buf.copy(bigger, 0, 0, this.pos);
      this.buf = bigger;
    }
    this.put(address);
    this.put(e.ppKey);
    this.put(e.stKey);
    this.put(e.kind);
    if (raw) {
      this.buf.set(raw, this.pos);
      this.pos += raw.length;
      this.buf[this.pos++] = 1; // FS
    } else this.put(f);
    this.put(namesLiterals);
    this.put(allLiterals);
    this.rows++;
  }

  /** The encoded rows, and fresh buffers for the next batch. */
  take(): Batch {
    const out: Batch = {
      text: this.buf.buffer as ArrayBuffer,
      textLength: this.pos,
      numbers: this.nums.buffer as ArrayBuffer,
      numbersLength: this.n,
      fresh: this.dictionary.take(),
    };
    this.buf = Buffer.allocUnsafeSlow(this.size);
    this.nums = new Int32Array(this.size >> 3);
    this.pos = 0;
    this.n = 0;
    this.rows = 0;
    return out;
  }
}
