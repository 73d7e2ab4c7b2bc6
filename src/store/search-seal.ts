// The sealed form of a header search row (docs/encryption.md, "The header search index"), shared
// by both engines. With encryption at rest on (a ValueSealer), a search_headers row keeps no
// plaintext:
// - `vals`: ONE value sealed under the current KEK (store/value-seal.ts, context
//   `search_headers:<blob id>`) holding every column's folded values, in the layout of
//   columnFromVals (column index, length, bytes);
// - each column (a_from … h_sender) holds keyed tokens of its values instead of the values (NULL
//   still says the field is absent): of every byte trigram of every value (the values are joined
//   by "\n"; a trigram never spans two) and of every word (see FINE / COARSE), under the column's
//   index, deduplicated and sorted;
// - `key_id`: the KEK whose token key made the tokens. A row of another key (or a plaintext row
//   while encryption is on, or a sealed one while it is off) is treated as unindexed: the search
//   reads the message and records the row again under the current key.
// A needle of 3 bytes or more is narrowed by SQL (every token of its trigrams present in the
// column's tokens: a misaligned match only adds a candidate); a candidate holding the needle's
// word token matches (the needle is a word of the column); the `vals` of the others are opened
// and the exact test of the plaintext index applied (the needle inside the column's joined
// values, byte for byte). A shorter needle opens the `vals` of every row having the field.
// The columns of search_headers, in their fixed order, give the index byte of tokens and `vals`.
import { SEARCH_COLUMN_LIST } from './sqlite/migrations.js';
import type { ValueSealer } from './value-seal.js';

/**
 * Bytes kept of a trigram token. Narrowing only (the sealed values decide), so 4 bytes suffice: a
 * column of n bytes of tokens lets a token of the needle match by chance with probability about
 * n / 2^32 (aligned or not), a few in 10^7, which costs one more value opened. Half the size of
 * 8-byte tokens halves what the scan of a big folder reads.
 */
export const TRIGRAM_TOKEN_BYTES = 4;
/**
 * Bytes kept of a word token. A word token decides alone (the needle IS a word of the column,
 * so it is inside it): 8 bytes, a chance match about n / 2^64.
 */
export const WORD_TOKEN_BYTES = 8;

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

// Words: the runs between separators, for two sets of separators — every ASCII byte that is not a
// letter or digit (names, address parts: "bernard", "mssante"), and only blanks and the
// delimiters of address lists (whole addresses, "paul.bernard@b.mssante.test"). Bytes of 0x80
// and up (UTF-8 of accented letters) belong to words.
const FINE = new Uint8Array(256);
const COARSE = new Uint8Array(256);
for (let b = 0; b < 0x80; b++) FINE[b] = /[0-9A-Za-z]/.test(String.fromCharCode(b)) ? 0 : 1;
for (const ch of ' \t\n\r"(),;<>[]') COARSE[ch.charCodeAt(0)] = 1;

function words(value: Buffer, sep: Uint8Array, into: Map<string, Buffer>): void {
  let start = 0;
  for (let i = 0; i <= value.length; i++) {
    if (i === value.length || sep[value[i]!]) {
      if (i > start) {
        const w = value.subarray(start, i);
        into.set(w.toString('latin1'), w);
      }
      start = i + 1;
    }
  }
}

/** Whether `needle` can be a word of a column (it holds no separator of the coarse set). */
function mayBeWord(needle: Buffer): boolean {
  for (const b of needle) if (COARSE[b]) return false;
  return needle.length > 0;
}

/** One column's trigrams and words, before tokenising. */
interface ColumnGrams {
  column: number;
  grams: Set<number>;
  words: Buffer[];
}

/**
 * The tokens of columns' trigrams (4 bytes each, sorted as numbers) and words (8 bytes each,
 * sorted): one AES block each, all in one call (ValueSealer.blockTokens; a trigram's block is
 * `4 | column | 3 bytes`, a word's `1 + n | 0x80 + column | n bytes`), a word over 14 bytes by
 * HMAC. Sorted: the order of first occurrence would give the sequence of overlapping trigrams,
 * i.e. the text under a substitution.
 */
function tokenize(sealer: ValueSealer, cols: ColumnGrams[]): { trigrams: Uint32Array; words: Buffer[] }[] {
  let n = 0;
  for (const c of cols) n += c.grams.size + c.words.filter((w) => w.length <= 14).length;
  const blocks = Buffer.alloc(16 * n);
  let k = 0;
  for (const c of cols) {
    for (const g of c.grams) {
      blocks[k] = 4;
      blocks[k + 1] = c.column;
      blocks[k + 2] = g >> 16;
      blocks[k + 3] = (g >> 8) & 0xff;
      blocks[k + 4] = g & 0xff;
      k += 16;
    }
    for (const w of c.words)
      if (w.length <= 14) {
        blocks[k] = 1 + w.length;
        blocks[k + 1] = 0x80 | c.column;
        w.copy(blocks, k + 2);
        k += 16;
      }
  }
  const out = sealer.blockTokens(blocks);
  k = 0;
  return cols.map((c) => {
    const tri = new Uint32Array(c.grams.size);
    for (let i = 0; i < tri.length; i++, k += 16) tri[i] = out.readUInt32BE(k);
    const words: Buffer[] = [];
    for (const w of c.words) {
      if (w.length <= 14) {
        words.push(out.subarray(k, k + WORD_TOKEN_BYTES));
        k += 16;
      } else words.push(sealer.token(Buffer.concat([Buffer.from([0x80 | c.column]), w]), WORD_TOKEN_BYTES));
    }
    return { trigrams: tri.sort(), words: words.sort(Buffer.compare) };
  });
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
  const present: [string, ColumnGrams][] = [];
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
    const ws = new Map<string, Buffer>();
    words(v, FINE, ws);
    words(v, COARSE, ws);
    present.push([column, { column: columnIndex(column), grams, words: [...ws.values()] }]);
  }
  const tokens = tokenize(
    sealer,
    present.map(([, g]) => g),
  );
  present.forEach(([column], i) => {
    const t = tokens[i]!;
    const buf = Buffer.alloc(TRIGRAM_TOKEN_BYTES * t.trigrams.length + WORD_TOKEN_BYTES * t.words.length);
    t.trigrams.forEach((v, j) => buf.writeUInt32BE(v, TRIGRAM_TOKEN_BYTES * j));
    t.words.forEach((w, j) => w.copy(buf, TRIGRAM_TOKEN_BYTES * t.trigrams.length + WORD_TOKEN_BYTES * j));
    out[column] = buf;
  });
  return { keyId: sealer.keys.currentId, columns: out, vals: sealer.seal(Buffer.concat(parts), searchValsContext(blobId)) };
}

/**
 * The needle's tokens for one column: those of its trigrams (all inside the column's tokens for
 * the needle to be in it; none below 3 bytes), and its word token when it can be a word (inside:
 * the needle surely is).
 */
export function needleTokens(sealer: ValueSealer, column: string, needle: Buffer): { trigrams: Buffer[]; word: Buffer | undefined } {
  const grams = new Set<number>();
  trigrams(needle, grams);
  const [t] = tokenize(sealer, [{ column: columnIndex(column), grams, words: mayBeWord(needle) ? [needle] : [] }]);
  return {
    trigrams: [...t!.trigrams].map((v) => {
      const b = Buffer.alloc(TRIGRAM_TOKEN_BYTES);
      b.writeUInt32BE(v);
      return b;
    }),
    word: t!.words[0],
  };
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
 * candidate's sealed values are then opened for the exact test, except on rows holding `sure`
 * (the needle's word token: the needle is a word of the column).
 */
export interface HeaderQueryPlan {
  terms: Buffer[] | null;
  verify: boolean;
  sure: Buffer | undefined;
  /** The key_id a usable row has (null: plaintext rows, encryption off). */
  keyId: string | null;
}

export function headerQueryPlan(sealer: ValueSealer | undefined, column: string, needle: Buffer): HeaderQueryPlan {
  columnIndex(column);
  const keyId = sealer?.keys.currentId ?? null;
  // RFC 9051 §6.4.4: an empty string matches every message that has the field.
  if (needle.length === 0) return { terms: null, verify: false, sure: undefined, keyId };
  if (!sealer) return { terms: [needle], verify: false, sure: undefined, keyId };
  const t = needleTokens(sealer, column, needle);
  let terms = t.trigrams;
  if (terms.length > MAX_NEEDLE_TOKENS) terms = Array.from({ length: MAX_NEEDLE_TOKENS }, (_, i) => terms[Math.round((i * (terms.length - 1)) / (MAX_NEEDLE_TOKENS - 1))]!);
  return { terms: terms.length === 0 ? null : terms, verify: true, sure: t.word, keyId };
}

/** A row the narrowing query returns: the message, whether its row is usable (current key), its file and sealed values. */
export interface HeaderCandidate {
  uid: number;
  ok: boolean | number;
  /** The row holds the needle's word token (the sealed values are then not fetched). */
  sure?: boolean | number | null;
  /** The file (null on a row holding the needle's word: not needed). */
  blob_id: string | null;
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
    else if (!plan.verify || r.sure) matched.push(r.uid);
    else {
      const blob = r.blob_id!;
      let v = verdicts.get(blob);
      if (!verdicts.has(blob)) {
        try {
          v = r.vals !== null && sealedRowMatches(sealer!, blob, r.vals, column, needle);
        } catch {
          v = undefined;
        }
        verdicts.set(blob, v);
      }
      if (v === undefined) unindexed.push(r.uid);
      else if (v) matched.push(r.uid);
    }
  }
  return { matched, unindexed };
}
