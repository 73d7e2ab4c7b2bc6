// The FTS5 query text of a directory search (https://sqlite.org/fts5.html), pure: from the
// clauses of a query to a MATCH expression, prefixes rewritten into whole terms where the
// snapshot's vocabulary allows, and clauses too broad for the index left to in-memory checks.
import type { ResourceKind } from '../../directory-model/entry.js';
import type { Clause } from '../../directory-model/match.js';
import type { Word } from '../../directory-model/normalize.js';

// Tokens are pre-normalised to [a-z0-9_] (directory-model/normalize.ts), so quoting is always safe.

/** Whole terms of the index starting with a prefix, or undefined when too many (or unknown). */
export type Expand = (prefix: string) => string[] | undefined;

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
export function planQuery(clauses: Clause[], expand: Expand | undefined, table: 'names' | 'all'): { expr: string; check: Clause[] } | null {
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
export const EXPAND_MAX = 64;

export function trigramExpression(value: string): string {
  const grams = new Set<string>();
  for (let i = 0; i + 3 <= value.length; i++) grams.add(value.slice(i, i + 3));
  return [...grams].map((g) => `"${g.replace(/"/g, '""')}"`).join(' AND ');
}

/** The condition "carried by one of these resources", on the k_ code tokens. */
export const kindsClause = (kinds: ResourceKind[]): Clause => ({
  column: 'codes',
  words: kinds.map((k) => ({ parts: ['k_' + k.toLowerCase()], joined: 'k_' + k.toLowerCase() })),
  prefix: false,
});
