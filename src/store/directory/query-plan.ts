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

function clauseExpr(c: Clause, expand: Expand | undefined, table: 'names' | 'all', notes?: PlanNotes, only?: 'n_' | 'm_'): Expr | typeof NEVER {
  // In idx_all a name word is indexed as "n_word" (a names condition is exact there), the other
  // words as they are: a word anywhere is either. `only`: a names clause in one namespace.
  const namespaces =
    table === 'names' ? [''] : only ? [only] : c.column === 'names' ? ['n_', 'm_'] : c.column === 'person' ? ['n_'] : c.column === 'any' ? ['', 'n_', 'm_'] : [''];
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
  const guards: Expr[] = [];
  for (const c of clauses) {
    const notes: PlanNotes = { broad: false, indexedUpTo: table === 'names' ? NAME_PREFIX_TERMS : 0 };
    const x = clauseExpr(c, expand, table, notes);
    if (x === NEVER) return null;
    if (notes.broad) broad.push({ c, x });
    else narrow.push(x);
    const g = table === 'names' ? prefixGuard(c) : undefined;
    if (g) guards.push(g);
  }
  // The guards first, as one AND: the lists of the expanded words (ORs of up to EXPAND_MAX term
  // cursors, each seeked at every step of a leapfrog) are only asked about ranks where every
  // guard already agrees. "mart sain" intersects the two prefix terms *mar and *sai, a few
  // hundred candidates, instead of walking OR(martin, martel, …) against OR(saint, sainte, …)
  // to the end of an empty intersection.
  // A single guard only repeats its own clause's superset: no intersection to narrow.
  const lead = guards.length >= 2 ? [and(guards)] : [];
  if (!narrow.length) return { expr: and([...lead, ...broad.map((b) => b.x)]), check: [] };
  return { expr: and([...lead, ...narrow]), check: broad.map((b) => b.c) };
}

/**
 * Names-only clauses (two or more) on idx_all, one namespace at a time: an entry's name words
 * are all a person's ("n_word") or all a structure's ("m_word", vocabulary.ts `all`), so the
 * clauses hold together in one namespace or not at all — OR(AND of the words as n_, AND as m_),
 * the same entries as idx_names' AND of the words. Each side intersects shorter lists: "mart
 * sain" is martin* ∩ saint* among persons (a handful of "Saint" family names) or among structures
 * (no "mart…" structure: nothing), where idx_names' saint* holds both and its intersection with
 * martin* walks tens of thousands of ranks to find none. Undefined when a word does not expand
 * into at most EXPAND_MAX whole terms in a namespace (idx_names' prefix terms serve it better);
 * null when nothing can match.
 */
export function namesByNamespace(clauses: Clause[], expand: Expand): Expr | null | undefined {
  if (clauses.length < 2 || clauses.some((c) => c.column !== 'names')) return undefined;
  const sides: Expr[] = [];
  for (const ns of ['n_', 'm_'] as const) {
    const parts: Expr[] = [];
    for (const c of clauses) {
      const notes: PlanNotes = { broad: false, indexedUpTo: 0 };
      const x = clauseExpr(c, expand, 'all', notes, ns);
      if (notes.broad) return undefined;
      if (x === NEVER) {
        parts.length = 0;
        break;
      }
      parts.push(x);
    }
    if (parts.length) sides.push(and(parts));
  }
  return sides.length ? or(sides) : null;
}

/** The cursors a plan opens on its terms and prefixes (a leapfrog step may seek each of them). */
export function termCount(e: Expr): number {
  return e.op === 'and' || e.op === 'or' ? e.of.reduce((n, x) => n + termCount(x), 0) : 1;
}

/** idx_names holds the prefixes of up to this many characters of every name word as terms ("*mar"). */
const NAME_PREFIX_TERMS = 3;

/**
 * A condition implied by a names clause and served by one idx_names prefix term: a prefix word
 * longer than the prefix terms (one word, one part: "martin" as a prefix implies "*mar"). A
 * compound word is left out (its parts may match other words: "d-arc" is met by "D" and "Arcy").
 */
function prefixGuard(c: Clause): Expr | undefined {
  if (!c.prefix || c.words.length !== 1 || c.words[0].parts.length > 1) return undefined;
  const w = c.words[0].joined;
  if (w.length <= NAME_PREFIX_TERMS) return undefined;
  return { op: 'prefix', term: w.slice(0, NAME_PREFIX_TERMS) };
}

/** Prefixes with more whole terms than this stay prefix nodes (their whole range is read). */
export const EXPAND_MAX = 64;

/** Every trigram of the value (3 UTF-16 units), AND-ed. */
function trigrams(value: string): Expr {
  const grams = new Set<string>();
  for (let i = 0; i + 3 <= value.length; i++) grams.add(value.slice(i, i + 3));
  return and([...grams].map((g) => ({ op: 'term', term: g })));
}

/**
 * The domain terms of idx_addr ("@a.mssante.fr"), sorted: those starting with a value by binary
 * search, those containing it through an index of their 7-bit trigrams (built at the first such
 * question: tens of thousands of domains, a millisecond per scan of them all otherwise), or, for a
 * value shorter than a trigram or with other characters, by one scan of a string of them all.
 */
export class Domains {
  readonly terms: readonly string[];
  private readonly text: string;
  /** Trigram code (3 × 7 bits) → the ids of the domains holding it, ascending. */
  private grams: Map<number, Int32Array> | undefined;
  constructor(terms: readonly string[]) {
    this.terms = [...terms].sort();
    this.text = '\n' + this.terms.join('\n') + '\n';
  }

  /** Domain terms containing value (starting with it when `start`), at most DOMAINS_MAX + 1 of them, in term order. */
  matching(value: string, start: boolean): string[] {
    if (value.includes('\n')) return [];
    if (start) {
      // The first term ≥ value, then every term starting with it.
      const t = this.terms;
      let lo = 0;
      let hi = t.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (t[mid] < value) lo = mid + 1;
        else hi = mid;
      }
      const out: string[] = [];
      for (let i = lo; i < t.length && out.length <= DOMAINS_MAX && t[i].startsWith(value); i++) out.push(t[i]);
      return out;
    }
    const codes = trigramCodes(value);
    if (codes) {
      this.grams ??= this.indexTrigrams();
      // The rarest of the value's trigrams gives the candidates, each checked.
      let ids: Int32Array | undefined;
      for (const c of codes) {
        const l = this.grams.get(c);
        if (!l) return [];
        if (!ids || l.length < ids.length) ids = l;
      }
      const out: string[] = [];
      for (let i = 0; i < ids!.length && out.length <= DOMAINS_MAX; i++) if (this.terms[ids![i]].includes(value)) out.push(this.terms[ids![i]]);
      return out;
    }
    const out: string[] = [];
    for (let i = this.text.indexOf(value); i >= 0 && out.length <= DOMAINS_MAX; ) {
      const from = this.text.lastIndexOf('\n', i - 1) + 1;
      const to = this.text.indexOf('\n', i);
      out.push(this.text.slice(from, to));
      i = this.text.indexOf(value, to);
    }
    return out;
  }

  private indexTrigrams(): Map<number, Int32Array> {
    this.indexSome(Infinity);
    return this.grams!;
  }

  /** The trigram index being built: the next terms to index and the lists so far. */
  private building: { next: number; lists: Map<number, number[]> } | undefined;

  /** Indexes up to `max` more terms (a warm-up does it in slices); true when the index is complete. */
  indexSome(max: number): boolean {
    if (this.grams) return true;
    const b = (this.building ??= { next: 0, lists: new Map() });
    const end = Math.min(this.terms.length, b.next + max);
    for (let id = b.next; id < end; id++) {
      const codes = trigramCodes(this.terms[id], true);
      if (!codes) continue;
      for (const c of codes) {
        const l = b.lists.get(c);
        if (!l) b.lists.set(c, [id]);
        else l.push(id);
      }
    }
    b.next = end;
    if (end < this.terms.length) return false;
    const out = new Map<number, Int32Array>();
    for (const [c, l] of b.lists) out.set(c, Int32Array.from(l));
    this.grams = out;
    this.building = undefined;
    return true;
  }
}

/**
 * The distinct codes ((a << 14) | (b << 7) | c) of a text's trigrams; undefined when it is shorter
 * than 3 or (unless `skipOthers`, which leaves such trigrams out) has a character beyond 7 bits.
 */
function trigramCodes(text: string, skipOthers = false): Set<number> | undefined {
  if (text.length < 3) return undefined;
  const out = new Set<number>();
  for (let k = 0; k + 3 <= text.length; k++) {
    const a = text.charCodeAt(k);
    const b = text.charCodeAt(k + 1);
    const c = text.charCodeAt(k + 2);
    if ((a | b | c) >= 128) {
      if (skipOthers) continue;
      return undefined;
    }
    out.add((a << 14) | (b << 7) | c);
  }
  return out;
}

/** Domains matching a `contains` value with an "@" up to this many narrow its trigrams (an AND); beyond, the trigrams alone drive. */
export const DOMAINS_OR = 4;
/** Domains matching a `contains` value beyond this many: the entries are scanned instead. */
export const DOMAINS_MAX = 64;

/**
 * Candidates for "the address contains value" in idx_addr, which holds the trigrams of each
 * address up to the domain's second character ("claire.martin@a." gives … "in@", "n@a", "@a.";
 * not the rest of the domain's: the domains are few and their trigrams the longest lists) and
 * the domain as one term ("@a.mssante.fr"). `domains` are those terms. A value with an "@" is a
 * suffix of "local@" and a prefix of the domain; one without is inside the local part or inside
 * a domain. The answer is a superset (each candidate
 * is checked); null: nothing can match; 'scan': the index cannot narrow (the caller scans).
 */
export function containsExpression(value: string, domains: Domains): Expr | null | 'scan' {
  const at = value.indexOf('@');
  // An OR of their lists, read lazily: a page of matches reads a chunk or two of each domain
  // (a bitmap of them all read every chunk of every domain first, 1 MB per query at 1M entries).
  const terms = (ds: string[]): Expr => or(ds.map((d) => ({ op: 'term', term: d })));
  if (at >= 0) {
    if (value.indexOf('@', at + 1) >= 0) return null; // an address has one "@" (RFC 5321 §4.1.2, as imported)
    const local = value.slice(0, at + 1);
    const domain = value.slice(at + 1);
    const ds = domain ? domains.matching('@' + domain, true) : undefined;
    if (ds && !ds.length) return null;
    // The indexed trigrams run to the domain's second character.
    const indexed = value.slice(0, at + 3);
    if (indexed.length >= 3) {
      const grams = trigrams(indexed);
      // Its domains narrow further when they are few; else the local side alone drives (checked after).
      return ds && ds.length <= DOMAINS_OR ? and([grams, terms(ds)]) : grams;
    }
    return ds && ds.length <= DOMAINS_MAX ? terms(ds) : 'scan';
  }
  if (value.length < 3) return 'scan';
  const ds = domains.matching(value, false);
  if (ds.length > DOMAINS_MAX) return 'scan';
  return or([trigrams(value), ...(ds.length ? [terms(ds)] : [])]);
}

/** The condition "carried by one of these resources", on the k_ code tokens. */
export const kindsClause = (kinds: ResourceKind[]): Clause => ({
  column: 'codes',
  words: kinds.map((k) => ({ parts: ['k_' + k.toLowerCase()], joined: 'k_' + k.toLowerCase() })),
  prefix: false,
});
