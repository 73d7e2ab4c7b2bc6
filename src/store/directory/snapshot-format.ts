// The layout of a national directory snapshot: dataDir/directory.sqlite, one SQLite file per
// import (better-sqlite3), read by reader.ts and written by snapshot-builder.ts. Shared here:
// the file name, the schema and its version, and how an entry becomes a row and back.
//
// Search index (https://sqlite.org/fts5.html): the rank of an entry is its line order in the
// extraction, and it is the rowid of two FTS5 tables, so a query streams matches in rank order
// and stops at its LIMIT: its cost follows the page asked for, not the number of matches.
// - fts_names: the name tokens, with prefix indexes of 1 to 3 characters (autocomplete);
// - fts_all: every word plus "prefix_value" code tokens (type, profession, city, postal code, …),
//   for free text with filters; conditions on one column are then checked on the candidates.
// - addr: a trigram table (FTS5 trigram tokenizer, SQLite ≥ 3.34) for address `:contains`;
//   candidates are checked, the index giving a superset.
// Tokens are normalised by directory-model/normalize.ts before they get here (FTS5 "unicode61"
// then only splits at spaces), so accent, case, hyphen and apostrophe rules live in one place.
import { COLUMNS, type DirectoryEntry, type ExtractionFields } from '../../directory-model/entry.js';
import type { EntryTokens } from '../../directory-model/tokens.js';

export const SNAPSHOT_FILE = 'directory.sqlite';
export const SCHEMA_VERSION = 4;

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
CREATE TABLE entries (rank INTEGER PRIMARY KEY, line_no INTEGER NOT NULL, address_lc TEXT NOT NULL UNIQUE, pp_key TEXT NOT NULL,
  st_key TEXT NOT NULL, kind TEXT NOT NULL, f TEXT NOT NULL);
CREATE VIRTUAL TABLE fts_names USING fts5(t, content='', columnsize=0, detail=none, prefix='1 2 3', tokenize='unicode61 remove_diacritics 0');
CREATE VIRTUAL TABLE fts_all USING fts5(t, content='', columnsize=0, detail=none, tokenize="unicode61 remove_diacritics 0 tokenchars '_'");
CREATE TABLE vocab (term TEXT PRIMARY KEY) WITHOUT ROWID;
`;
export const ADDR_DDL = `CREATE VIRTUAL TABLE addr USING fts5(a, content='', columnsize=0, detail=none, tokenize='trigram');`;

/** One row of a new snapshot, computed on the reading thread, which also gives the rank. */
export type Row = [rank: number, lineNo: number, addressLc: string, ppKey: string, stKey: string, kind: string, fields: string, names: string, all: string];
/** Fields of a Row. */
export const ROW_FIELDS = 9;

/** fts_names text: the name tokens, space-separated. */
function namesText(t: EntryTokens): string {
  const n = t.names;
  if (!n.length) return '';
  let s = n[0];
  for (let i = 1; i < n.length; i++) s += ' ' + n[i];
  return s;
}

/**
 * fts_all text: a person's name words as "n_word", a structure's display name as "m_word" (name
 * conditions stay exact next to filters, and person-only ones never scan structures), the other
 * words as they are, then the code tokens. FTS5 ignores repeats.
 */
function allText(t: EntryTokens): string {
  let all = '';
  const ns = t.isPerson ? 'n_' : 'm_';
  for (const w of t.names) all += ns + w + ' ';
  for (const w of t.org) all += w + ' ';
  for (const w of t.work) all += w + ' ';
  for (const w of t.place) all += w + ' ';
  for (const w of t.other) all += w + ' ';
  const c = t.codes;
  for (let i = 0; i < c.length; i++) all += i ? ' ' + c[i] : c[i];
  return all;
}

export function rowOf(rank: number, e: DirectoryEntry, t: EntryTokens, lineNo: number): Row {
  return [rank, lineNo, e.address.toLowerCase(), e.ppKey, e.stKey, e.kind, encodeFields(e), namesText(t), allText(t)];
}

/**
 * Batches of rows sent to the import worker: one string, every field followed by FS (ROW_FIELDS
 * per row), so that the worker splits a batch once. Fields never hold FS: they come from
 * '|'-separated text lines and normalised tokens.
 */
export const FS = '\u0001';

export function rowText(rank: number, e: DirectoryEntry, t: EntryTokens, lineNo: number): string {
  return rank + FS + lineNo + FS + e.address.toLowerCase() + FS + e.ppKey + FS + e.stKey + FS + e.kind + FS + encodeFields(e) + FS + namesText(t) + FS + allText(t) + FS;
}

/** The fields of a batch (ROW_FIELDS per row, in Row order; numbers as text). */
export const splitBatch = (batch: string): string[] => batch.split(FS);
