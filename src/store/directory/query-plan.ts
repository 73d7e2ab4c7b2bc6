// The query tree of a directory search over the snapshot's postings (postings.ts), pure: from
// the clauses of a query to an AND/OR tree of terms and prefixes, prefixes rewritten into whole
// terms where the snapshot's vocabulary allows, and clauses too broad for the index left to
// in-memory checks.
import type { ResourceKind } from '../../directory-model/entry.js';
import type { Clause } from '../../directory-model/match.js';
import type { Word } from '../../directory-model/normalize.js';
import type { Expr } from './postings.js';

export type { Expr };

/** Whole terms of the index starting with a prefix, or undefined when too many (or unknown). */
export type Expand = (prefix: string) => string[] | undefined;

/** A sub-expression that can never match (its term is dropped). */
const NEVER = null;

/** Set when a prefix could not be rewritten into whole terms (every term of its range is read). */
interface PlanNotes {
  broad: boolean;
  /** Prefixes up to this length have their own index terms (idx_names: 3): never broad. */
  indexedUpTo: number;
}

const and = (of: Expr[]): Expr => (of.length === 1 ? of[0] : { op: 'and', of });
const or = (of: Expr[]): Expr => (of.length === 1 ? of[0] : { op: 'or', of });

function term(word: string, prefix: boolean, expand?: Expand, ns = '', notes?: PlanNotes): Expr | typeof NEVER {
  const t = ns + word;
  if (!prefix) return { op: 'term', term: t };
  const terms = expand?.(t);
  if (!terms) {
    if (notes && t.length > notes.indexedUpTo) notes.broad = true;
    return { op: 'prefix', term: t };
  }
  if (terms.length === 0) return NEVER;
  // A prefix rewritten as its whole terms: an OR of term cursors streams lazily, while a broad
  // prefix reads every list of its range first.
  return or(terms.map((x) => ({ op: 'term', term: x })));
}

function wordExpr(w: Word, prefix: boolean, expand?: Expand, ns = '', notes?: PlanNotes): Expr | typeof NEVER {
  const whole = term(w.joined, prefix, expand, ns, notes);
  if (w.parts.length <= 1) return whole;
  // A compound word ("jean-pierre"): its joined form, or every part (the last one as a prefix).
  const parts: Expr[] = [];
  for (let i = 0; i < w.parts.length; i++) {
    const x = term(w.parts[i], prefix && i === w.parts.length - 1, expand, ns, notes);
    if (x === NEVER) return whole;
    parts.push(x);
  }
  return whole === NEVER ? and(parts) : or([whole, and(parts)]);
}

function clauseExpr(c: Clause, expand: Expand | undefined, table: 'names' | 'all', notes?: PlanNotes): Expr | typeof NEVER {
  // In idx_all a name word is indexed as "n_word" (a names condition is exact there), the other
  // words as they are: a word anywhere is either.
  const namespaces =
    table === 'names' ? [''] : c.column === 'names' ? ['n_', 'm_'] : c.column === 'person' ? ['n_'] : c.column === 'any' ? ['', 'n_', 'm_'] : [''];
  const alts = c.words.flatMap((w) => namespaces.map((ns) => wordExpr(w, c.prefix, expand, ns, notes))).filter((x): x is Expr => x !== NEVER);
  if (!alts.length) return NEVER;
  return or(alts);
}

/** Every clause AND-ed, or null when a clause cannot match anything. */
export function matchExpression(clauses: Clause[], expand?: Expand, table: 'names' | 'all' = 'all'): Expr | null {
  const parts: Expr[] = [];
  for (const c of clauses) {
    const x = clauseExpr(c, expand, table);
    if (x === NEVER) return null;
    parts.push(x);
  }
  return and(parts);
}

/**
 * Splits the clauses between the index and in-memory checks: a clause whose prefix is too broad
 * to rewrite into whole terms (a letter or two of a common word) would read huge lists before
 * the first row, so it is checked on each candidate instead — unless nothing else can drive the
 * query. Returns null when a clause cannot match anything.
 */
export function planQuery(clauses: Clause[], expand: Expand | undefined, table: 'names' | 'all'): { expr: Expr; check: Clause[] } | null {
  const narrow: Expr[] = [];
  const broad: { c: Clause; x: Expr }[] = [];
  for (const c of clauses) {
    const notes: PlanNotes = { broad: false, indexedUpTo: table === 'names' ? 3 : 0 };
    const x = clauseExpr(c, expand, table, notes);
    if (x === NEVER) return null;
    if (notes.broad) broad.push({ c, x });
    else narrow.push(x);
  }
  if (!narrow.length) return { expr: and(broad.map((b) => b.x)), check: [] };
  return { expr: and(narrow), check: broad.map((b) => b.c) };
}

/** Prefixes with more whole terms than this stay prefix nodes (their whole range is read). */
export const EXPAND_MAX = 64;

/** Every trigram of the value (3 UTF-16 units, as idx_addr indexes addresses), AND-ed. */
export function trigramExpression(value: string): Expr {
  const grams = new Set<string>();
  for (let i = 0; i + 3 <= value.length; i++) grams.add(value.slice(i, i + 3));
  return and([...grams].map((g) => ({ op: 'term', term: g })));
}

/** The condition "carried by one of these resources", on the k_ code tokens. */
export const kindsClause = (kinds: ResourceKind[]): Clause => ({
  column: 'codes',
  words: kinds.map((k) => ({ parts: ['k_' + k.toLowerCase()], joined: 'k_' + k.toLowerCase() })),
  prefix: false,
});
