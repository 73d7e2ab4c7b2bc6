// The sealed form of a header search row (docs/encryption.md, "The header search index"), shared
// by both engines. With encryption at rest on (a ValueSealer), a search_headers row keeps no
// plaintext:
// - `vals`: ONE value sealed under the current KEK (store/value-seal.ts, context
//   `search_headers:<blob id>`) holding every column's folded values, in the layout below;
// - each column (a_from … h_sender) holds the keyed tokens of the byte trigrams of its values
//   instead of the values (NULL still says the field is absent): for every value (the values are
//   joined by "\n"; a trigram never spans two), every 3-byte window, tokenised with the column's
//   index (ValueSealer.blockTokens), deduplicated and SORTED — the order of first occurrence
//   would give the sequence of overlapping trigrams, i.e. the text under a substitution;
// - `key_id`: the KEK whose token key made the tokens. A row of another key (or a plaintext row
//   while encryption is on, or a sealed one while it is off) is treated as unindexed: the search
//   reads the message and records the row again under the current key.
// A needle of 3 bytes or more is narrowed by SQL (every token of its trigrams present in the
// column's tokens: a misaligned match only adds a candidate), then each candidate's `vals` is
// opened and the exact test of the plaintext index applied (the needle inside the column's joined
// values, byte for byte). A shorter needle opens the `vals` of every row having the field.
// The columns of search_headers, in their fixed order, give the index byte of tokens and `vals`.
import { SEARCH_COLUMN_LIST } from './sqlite/migrations.js';
import type { ValueSealer } from './value-seal.js';

/**
 * Bytes kept of each token. Narrowing only (the sealed values decide), so 4 bytes suffice: a
 * column of n tokens lets a token of the needle match by chance with probability about
 * 4n / 2^32 (aligned or not), a few in 10^8, which costs one more value opened. Half the size of
 * 8-byte tokens halves what the scan of a big folder reads.
 */
export const SEARCH_TOKEN_BYTES = 4;

/** The AAD context of a row's sealed values (a value moved to another row does not open). */
export const searchValsContext = (blobId: string) => `search_headers:${blobId}`;

const COLUMN_INDEX = new Map<string, number>(SEARCH_COLUMN_LIST.map((c, i) => [c, i]));

function columnIndex(column: string): number {
  const i = COLUMN_INDEX.get(column);
  if (i === undefined) throw new Error(`unknown search column ${column}`);
  return i;
}

/** The distinct byte trigrams of `value` split at "\n", as 24-bit numbers. */
function trigrams(value: Buffer, into: Set<number>): void {
  let start = 0;
  for (let i = 0; i <= value.length; i++) {
    if (i === value.length || value[i] === 0x0a) {
      for (let j = start; j + 3 <= i; j++) into.add((value[j]! << 16) | (value[j + 1]! << 8) | value[j + 2]!);
      start = i + 1;
    }
  }
}

function tokensOf(sealer: ValueSealer, column: string, grams: Set<number>): Buffer[] {
  const c = columnIndex(column);
  const inputs = [...grams].map((g) => Buffer.from([c, g >> 16, (g >> 8) & 0xff, g & 0xff]));
  return sealer.blockTokens(inputs, SEARCH_TOKEN_BYTES);
}

/** What a search_headers row stores: the plaintext columns (key_id NULL) or the sealed form. */
export interface StoredSearchRow {
  keyId: string | null;
  columns: Record<string, Buffer | null>;
  vals: Buffer | null;
}

/** The stored form of a row of mail/header-index.ts (`columns`: folded values joined by "\n"). */
export function storedSearchRow(sealer: ValueSealer | undefined, blobId: string, columns: Record<string, Buffer | null>): StoredSearchRow {
  for (const n of Object.keys(columns)) columnIndex(n);
  if (!sealer) return { keyId: null, columns, vals: null };
  const out: Record<string, Buffer | null> = {};
  const parts: Buffer[] = [];
  for (const [column, v] of Object.entries(columns)) {
    if (v === null) {
      out[column] = null;
      continue;
    }
    const head = Buffer.alloc(5);
    head[0] = columnIndex(column);
    head.writeUInt32BE(v.length, 1);
    parts.push(head, v);
    const grams = new Set<number>();
    trigrams(v, grams);
    out[column] = Buffer.concat(tokensOf(sealer, column, grams).sort(Buffer.compare));
  }
  return { keyId: sealer.keys.currentId, columns: out, vals: sealer.seal(Buffer.concat(parts), searchValsContext(blobId)) };
}

/** The tokens a sealed column must all hold for `needle` to be in it (none below 3 bytes). */
export function needleTokens(sealer: ValueSealer, column: string, needle: Buffer): Buffer[] {
  const grams = new Set<number>();
  trigrams(needle, grams);
  return tokensOf(sealer, column, grams);
}

/** One column's joined values from a row's opened `vals` (null: the field is absent). */
export function columnFromVals(opened: Buffer, column: string): Buffer | null {
  const want = columnIndex(column);
  for (let i = 0; i + 5 <= opened.length; ) {
    const len = opened.readUInt32BE(i + 1);
    if (opened[i] === want) return opened.subarray(i + 5, i + 5 + len);
    i += 5 + len;
  }
  return null;
}

/**
 * The exact test of the plaintext index on a sealed row (instr(column, needle) > 0 there): opens
 * the row's values (SealedValueError when altered or moved) and looks for the needle's bytes.
 */
export function sealedRowMatches(sealer: ValueSealer, blobId: string, vals: Buffer, column: string, needle: Buffer): boolean {
  const v = columnFromVals(sealer.open(vals, searchValsContext(blobId)), column);
  return v !== null && v.includes(needle);
}

/** At most this many tokens narrow a long needle (spread over it): the sealed values decide anyway. */
const MAX_NEEDLE_TOKENS = 6;

/**
 * How a store narrows one header key: `terms` null means "the column is not NULL" (the field is
 * present), else each term must be inside the column (instr / position); `verify`: each
 * candidate's sealed values are then opened for the exact test.
 */
export interface HeaderQueryPlan {
  terms: Buffer[] | null;
  verify: boolean;
  /** The key_id a usable row has (null: plaintext rows, encryption off). */
  keyId: string | null;
}

export function headerQueryPlan(sealer: ValueSealer | undefined, column: string, needle: Buffer): HeaderQueryPlan {
  columnIndex(column);
  const keyId = sealer?.keys.currentId ?? null;
  // RFC 9051 §6.4.4: an empty string matches every message that has the field.
  if (needle.length === 0) return { terms: null, verify: false, keyId };
  if (!sealer) return { terms: [needle], verify: false, keyId };
  let terms = needleTokens(sealer, column, needle);
  if (terms.length > MAX_NEEDLE_TOKENS) terms = Array.from({ length: MAX_NEEDLE_TOKENS }, (_, i) => terms[Math.round((i * (terms.length - 1)) / (MAX_NEEDLE_TOKENS - 1))]!);
  return { terms: terms.length === 0 ? null : terms, verify: true, keyId };
}

/** A row the narrowing query returns: the message, whether its row is usable (current key), its file and sealed values. */
export interface HeaderCandidate {
  uid: number;
  ok: boolean | number;
  blob_id: string;
  vals: Buffer | null;
}

/**
 * The answer from the narrowing query's rows: rows of another key are unindexed (the search reads
 * those messages and records their rows again); candidates of a sealed index are kept when their
 * opened values hold the needle. A row whose values do not open (altered) is unindexed too: the
 * message itself then answers, and its row is written again.
 */
export function headerAnswer(sealer: ValueSealer | undefined, plan: HeaderQueryPlan, column: string, needle: Buffer, rows: HeaderCandidate[]): { matched: number[]; unindexed: number[] } {
  const matched: number[] = [];
  const unindexed: number[] = [];
  const verdicts = new Map<string, boolean | undefined>();
  for (const r of rows) {
    if (!r.ok) unindexed.push(r.uid);
    else if (!plan.verify) matched.push(r.uid);
    else {
      let v = verdicts.get(r.blob_id);
      if (!verdicts.has(r.blob_id)) {
        try {
          v = r.vals !== null && sealedRowMatches(sealer!, r.blob_id, r.vals, column, needle);
        } catch {
          v = undefined;
        }
        verdicts.set(r.blob_id, v);
      }
      if (v === undefined) unindexed.push(r.uid);
      else if (v) matched.push(r.uid);
    }
  }
  return { matched, unindexed };
}
