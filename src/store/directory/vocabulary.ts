// The term dictionary of a new snapshot, on the reading thread: every index term gets a number
// the first time it is seen, and the import worker receives numbers, not words (the new terms'
// text once, with the batch that first uses them). The worker then keeps postings by number: no
// word is encoded, decoded, split or hashed again per line. Its size follows the *vocabulary*
// (names, places, labels, codes — not lines); past VOCABULARY_CAP terms no new number is given
// and later new terms travel as text (`literal`), the snapshot's `vocab` table is then left empty
// and marked partial (prefix queries read their whole range instead).
//
// The vocabulary stored in the snapshot (table `vocab`, to rewrite a prefix into its few whole
// terms) is the dictionary's idx_all terms but whole-only codes: computed by the worker at the
// end (isVocabularyTerm).
import type { EntryTokens } from '../../directory-model/tokens.js';

/** Past this many distinct terms, no new number is given (the snapshot's vocabulary is marked partial). */
export const VOCABULARY_CAP = 1_500_000;

/** Prefixes of name words indexed in idx_names (as "*" + prefix): autocomplete's first letters. */
export const NAME_PREFIXES = 3;

/**
 * Terms of idx_all that a prefix query may expand to: words, "n_" / "m_" name words and the
 * starts-with codes cp_, cy_, fa_, gi_ (not the whole-only t_, k_, p_, s_, pp_, st_).
 */
export const isVocabularyTerm = (t: string) => t.indexOf('_') < 0 || /^(n|m|cp|cy|fa|gi)_/.test(t);

/** Codes nearly unique per line (practitioner, structure): never numbered, always sent as text. */
const isLiteralCode = (c: string) => c.charCodeAt(2) === 95 /* _ */ && ((c.charCodeAt(0) === 112 && c.charCodeAt(1) === 112) || (c.charCodeAt(0) === 115 && c.charCodeAt(1) === 116));

/** The receiving side of a line's terms: numbers, or text for terms without a number. */
export interface TermSink {
  id(id: number): void;
  literal(term: string): void;
}

export class TermDictionary {
  private readonly plain = new Map<string, number>();
  /** A person's name word → the number of "n_" + word; a structure's → "m_" + word. */
  private readonly person = new Map<string, number>();
  private readonly structure = new Map<string, number>();
  /** A name word → the numbers of the word and of its prefix terms "*" + 1 to 3 characters. */
  private readonly nameTerms = new Map<string, number[]>();
  private count = 0;
  /** Terms numbered since the last take(), in number order. */
  private fresh: string[] = [];
  full = false;

  get size() {
    return this.count;
  }

  private number(map: Map<string, number>, key: string, term: string): number {
    let id = map.get(key);
    if (id === undefined) {
      if (this.full) return -1;
      id = this.count++;
      map.set(key, id);
      this.fresh.push(term);
      if (this.count >= VOCABULARY_CAP) this.full = true;
    }
    return id;
  }

  private plainTerm(term: string, out: TermSink) {
    const id = this.number(this.plain, term, term);
    if (id < 0) out.literal(term);
    else out.id(id);
  }

  /** idx_names terms of an entry: its name words and their prefix terms. */
  names(t: EntryTokens, out: TermSink) {
    for (const w of t.names) {
      let ids = this.nameTerms.get(w);
      if (ids === undefined) {
        const terms = [w];
        for (let k = 1, m = Math.min(NAME_PREFIXES, w.length); k <= m; k++) terms.push('*' + w.slice(0, k));
        ids = terms.map((x) => this.number(this.plain, x, x));
        if (ids.includes(-1)) {
          // Dictionary full: a term without a number goes as text (always: it never gets one later).
          ids.forEach((id, i) => (id < 0 ? out.literal(terms[i]) : out.id(id)));
          continue;
        }
        this.nameTerms.set(w, ids);
      }
      for (let i = 0; i < ids.length; i++) out.id(ids[i]);
    }
  }

  /**
   * idx_all terms of an entry: a person's name words as "n_word", a structure's display name as
   * "m_word" (name conditions stay exact next to filters, and person-only ones never scan
   * structures), the other words as they are, then the code tokens.
   */
  all(t: EntryTokens, out: TermSink) {
    const ns = t.isPerson ? this.person : this.structure;
    const prefix = t.isPerson ? 'n_' : 'm_';
    for (const w of t.names) {
      let id = ns.get(w);
      if (id === undefined) id = this.number(ns, w, prefix + w);
      if (id < 0) out.literal(prefix + w);
      else out.id(id);
    }
    for (const w of t.org) this.plainTerm(w, out);
    for (const w of t.work) this.plainTerm(w, out);
    for (const w of t.place) this.plainTerm(w, out);
    for (const w of t.other) this.plainTerm(w, out);
    for (const c of t.codes) {
      if (isLiteralCode(c)) out.literal(c);
      else this.plainTerm(c, out);
    }
  }

  /** The terms numbered since the last call, in number order (the worker appends them). */
  take(): string[] {
    const f = this.fresh;
    this.fresh = [];
    return f;
  }
}
