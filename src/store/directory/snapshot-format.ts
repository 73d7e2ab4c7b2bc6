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
// - idx_addr: the addresses' trigrams (3 UTF-16 units) for address `:contains`; candidates are
//   checked, the index giving a superset.
// Tokens are normalised by directory-model/normalize.ts before they get here ([a-z0-9_], split at
// spaces), so accent, case, hyphen and apostrophe rules live in one place.
import { COLUMNS, type DirectoryEntry, type ExtractionFields } from '../../directory-model/entry.js';
import type { EntryTokens } from '../../directory-model/tokens.js';
import { postingsDDL } from './postings.js';

export const SNAPSHOT_FILE = 'directory.sqlite';
export const SCHEMA_VERSION = 5;

export class DirectoryStoreError extends Error {
  override name = 'DirectoryStoreError';
}

const FIELD_KEYS = COLUMNS.map(([f]) => f);

export function decodeEntry(r: any): DirectoryEntry {
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

export const SNAPSHOT_DDL = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE entries (rank INTEGER PRIMARY KEY, line_no INTEGER NOT NULL, address_lc TEXT NOT NULL, pp_key TEXT NOT NULL,
  st_key TEXT NOT NULL, kind TEXT NOT NULL, f TEXT NOT NULL);
CREATE TABLE vocab (term TEXT PRIMARY KEY) WITHOUT ROWID;
${postingsDDL('idx_names')}
${postingsDDL('idx_all')}
${postingsDDL('idx_addr')}
`;
/** Prefixes of name words indexed in idx_names (as "*" + prefix): autocomplete's first letters. */
export const NAME_PREFIXES = 3;

/** One row of a new snapshot, computed on the reading thread, which also gives the rank. */
export type Row = [rank: number, lineNo: number, addressLc: string, ppKey: string, stKey: string, kind: string, fields: string, names: string, all: string];
/** Fields of a Row. */
export const ROW_FIELDS = 9;

/** idx_names text: the name tokens, space-separated. */
const namesText = (t: EntryTokens): string => t.names.join(' ');

/**
 * idx_all text: a person's name words as "n_word", a structure's display name as "m_word" (name
 * conditions stay exact next to filters, and person-only ones never scan structures), the other
 * words as they are, then the code tokens. Repeats are indexed once. Built with one join (flat
 * strings: appending would make ropes, slow to flatten when the batch is encoded).
 */
function allText(t: EntryTokens): string {
  const ns = t.isPerson ? 'n_' : 'm_';
  const out: string[] = [];
  for (const w of t.names) out.push(ns + w);
  for (const w of t.org) out.push(w);
  for (const w of t.work) out.push(w);
  for (const w of t.place) out.push(w);
  for (const w of t.other) out.push(w);
  for (const c of t.codes) out.push(c);
  return out.join(' ');
}

export function rowOf(rank: number, e: DirectoryEntry, t: EntryTokens, lineNo: number): Row {
  return [rank, lineNo, e.address.toLowerCase(), e.ppKey, e.stKey, e.kind, encodeFields(e), namesText(t), allText(t)];
}

/**
 * Batches of rows sent to the import worker: UTF-8, every field followed by FS (ROW_FIELDS per
 * row), so that the worker decodes and splits a batch once. Fields never hold FS: they come from
 * '|'-separated text lines and normalised tokens.
 */
export const FS = '\u0001';

/**
 * Encodes rows straight into a UTF-8 buffer (fields followed by FS), sent to the worker as a
 * transferred ArrayBuffer: no batch string, no field kept alive between rows (the rows' garbage
 * dies young), nothing copied between threads.
 */
export class BatchEncoder {
  private buf: Buffer;
  private pos = 0;
  rows = 0;

  constructor(private readonly size = 1 << 21) {
    this.buf = Buffer.allocUnsafeSlow(size);
  }

  get bytes() {
    return this.pos;
  }

  private put(s: string) {
    this.pos += this.buf.write(s, this.pos);
    this.buf[this.pos++] = 1; // FS
  }

  add(rank: number, e: DirectoryEntry, t: EntryTokens, lineNo: number) {
    const f = encodeFields(e);
    const names = namesText(t);
    const all = allText(t);
    const address = e.address.toLowerCase();
    // At most 3 UTF-8 bytes per UTF-16 unit.
    const need = 3 * (f.length + names.length + all.length + address.length + e.ppKey.length + e.stKey.length + e.kind.length) + 64;
    if (this.buf.length - this.pos < need) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.pos + need));
      this.buf.copy(bigger, 0, 0, this.pos);
      this.buf = bigger;
    }
    this.put(String(rank));
    this.put(String(lineNo));
    this.put(address);
    this.put(e.ppKey);
    this.put(e.stKey);
    this.put(e.kind);
    this.put(f);
    this.put(names);
    this.put(all);
    this.rows++;
  }

  /** The encoded rows (bytes 0 … length of buffer), and a fresh buffer for the next batch. */
  take(): { buffer: ArrayBuffer; length: number } {
    const out = { buffer: this.buf.buffer as ArrayBuffer, length: this.pos };
    this.buf = Buffer.allocUnsafeSlow(this.size);
    this.pos = 0;
    this.rows = 0;
    return out;
  }
}

/** The fields of a batch (ROW_FIELDS per row, in Row order; numbers as text). */
export const splitBatch = (batch: string): string[] => batch.split(FS);
