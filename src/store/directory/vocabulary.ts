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
import { cityOf, type DirectoryEntry } from '../../directory-model/entry.js';
import { codeToken, joinedKey, tokensOf } from '../../directory-model/normalize.js';
import { entryTokens, type EntryTokens } from '../../directory-model/tokens.js';

/** Past this many distinct terms, no new number is given (the snapshot's vocabulary is marked partial). */
export const VOCABULARY_CAP = 1_500_000;

/** Prefixes of name words indexed in idx_names (as "*" + prefix): autocomplete's first letters. */
export const NAME_PREFIXES = 3;

/**
 * Terms of idx_all that a prefix query may expand to: words, "n_" / "m_" name words and the
 * starts-with codes cp_, cy_, fa_, gi_ (not the whole-only t_, k_, p_, s_, pp_, st_).
 */
export const isVocabularyTerm = (t: string) => t.indexOf('_') < 0 || /^(n|m|cp|cy|fa|gi)_/.test(t);

/**
 * Whether a practitioner or structure key is found through the entries table's indexes
 * (entries_pp, entries_st: schema 7) rather than a "pp_…" / "st_…" postings row: a key of
 * [0-9A-Z] only, whose code token is "pp_" + the key in lower case, so that a query's token
 * gives back the one such key (upper case of the rest). Others (a dot, a lower-case letter:
 * entry.ts safeKey) keep their postings row; the reader ORs both (reader.ts keyCursor).
 * Nearly every key is such: one postings row per line less to write (~0.75 s per 200,000 lines).
 */
export function keyIndexed(key: string): boolean {
  if (!key) return false;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90))) return false;
  }
  return true;
}

/** Codes nearly unique per line (practitioner, structure): never numbered, always sent as text. */
const isLiteralCode = (c: string) => c.charCodeAt(2) === 95 /* _ */ && ((c.charCodeAt(0) === 112 && c.charCodeAt(1) === 112) || (c.charCodeAt(0) === 115 && c.charCodeAt(1) === 116));

/** Field values whose term numbers are kept per cache (then the cache starts again). */
const VALUE_CACHE_MAX = 50_000;

/** A bounded map from a field value to what its terms are (their numbers). */
class ValueCache<T> {
  private map = new Map<string, T>();
  get(value: string) {
    return this.map.get(value);
  }
  set(value: string, ids: T) {
    if (this.map.size >= VALUE_CACHE_MAX) this.map = new Map();
    this.map.set(value, ids);
  }
}
class ValueIds extends ValueCache<number[]> {}

/**
 * The numbers of a person's family or given name: its idx_names terms, its idx_all "n_" words
 * and its "fa_" / "gi_" code. One lookup of the value for the three (they were three caches: a
 * tenth of the reading thread went to these Map lookups).
 */
interface PersonName {
  names: number[];
  person: number[];
  code: number;
}
const NO_NAME: PersonName = { names: [], person: [], code: -1 };

/** "pp_" + code as codeToken makes it, without its regular expressions when the code is already [0-9a-z]. */
function codeLiteral(prefix: string, v: string): string {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 122))) return codeToken(prefix, v);
  }
  return prefix + v;
}

/** The receiving side of a line's terms: numbers, or text for terms without a number. */
export interface TermSink {
  id(id: number): void;
  literal(term: string): void;
}

const typeTerm = (v: string) => 't_' + v.toLowerCase();
const kindTerm = (v: string) => 'k_' + v.toLowerCase();
const professionTerm = (v: string) => codeToken('p_', v);
const specialityTerm = (v: string) => codeToken('s_', v);

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
  all(t: EntryTokens, out: TermSink, keys: { ppKey: string; stKey: string }) {
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
      if (!isLiteralCode(c)) this.plainTerm(c, out);
      else if (!keyIndexed(c.charCodeAt(0) === 112 ? keys.ppKey : keys.stKey)) out.literal(c);
    }
  }

  // ---- an entry's terms from its field values -------------------------------------------------
  //
  // namesOf / allOf give the same terms as names / all of entryTokens(e) (directory-model/tokens.ts,
  // the one definition; vocabulary.test.ts compares them), but from caches keyed by field value:
  // a value seen before (a family name, a label, a city line) costs one Map lookup instead of its
  // normalisation, splitting and one lookup per term. Near the cap (a value's new terms could
  // fill the dictionary) they go through entryTokens and names / all, whose rules then apply.

  private readonly nameIdsOf = new ValueIds();
  private readonly structureIdsOf = new ValueIds();
  private readonly plainIdsOf = new ValueIds();
  /**
   * l6 → its postal code and the numbers of the city words, postal code, cp_ and cy_ codes: a
   * hit when the postal code is the same (l6 starts with it, nearly always; a concatenated key
   * cost a string to flatten and hash per line).
   */
  private readonly placeIdsOf = new ValueCache<{ postalCode: string; ids: number[] }>();
  /** One code's number, by value. */
  private readonly typeIds = new ValueIds();
  private readonly kindIds = new ValueIds();
  private readonly professionIds = new ValueIds();
  private readonly specialityIds = new ValueIds();
  private slowEntry: DirectoryEntry | undefined;
  private slowTokens: EntryTokens | undefined;

  /** Whether the entry's new terms cannot reach the cap (each character starts at most a few terms). */
  private roomFor(e: DirectoryEntry): boolean {
    const text = e.family.length + e.given.length + e.legalName.length + e.tradeName.length + e.service.length + e.professionLabel.length + e.specialityLabel.length + e.l6.length + (e.description?.length ?? 0);
    return !this.full && this.count + 8 * text + 64 < VOCABULARY_CAP;
  }

  private tokensFor(e: DirectoryEntry): EntryTokens {
    if (this.slowEntry !== e) {
      this.slowEntry = e;
      this.slowTokens = entryTokens(e);
    }
    return this.slowTokens!;
  }

  private emit(ids: number[], out: TermSink) {
    for (let i = 0; i < ids.length; i++) out.id(ids[i]);
  }

  /** Numbers of a name word's idx_names terms: the word and its prefix terms. */
  private nameWordIds(w: string): number[] {
    let wIds = this.nameTerms.get(w);
    if (wIds === undefined) {
      const terms = [w];
      for (let k = 1, m = Math.min(NAME_PREFIXES, w.length); k <= m; k++) terms.push('*' + w.slice(0, k));
      wIds = terms.map((x) => this.number(this.plain, x, x));
      this.nameTerms.set(w, wIds);
    }
    return wIds;
  }

  /** Numbers of the idx_names terms of a value's words (each word and its prefix terms). */
  private nameIds(value: string, out: TermSink) {
    if (!value) return;
    let ids = this.nameIdsOf.get(value);
    if (ids === undefined) {
      ids = [];
      for (const w of tokensOf(value)) for (const id of this.nameWordIds(w)) ids.push(id);
      this.nameIdsOf.set(value, ids);
    }
    this.emit(ids, out);
  }

  private readonly familyOf = new ValueCache<PersonName>();
  private readonly givenOf = new ValueCache<PersonName>();
  /** The person names namesOf looked up, for allOf of the same entry. */
  private named: { e: DirectoryEntry | undefined; family: PersonName; given: PersonName } = { e: undefined, family: NO_NAME, given: NO_NAME };

  /** A family ("fa_") or given ("gi_") name's numbers (PersonName). */
  private personName(cache: ValueCache<PersonName>, code: string, value: string): PersonName {
    if (!value) return NO_NAME;
    let r = cache.get(value);
    if (r === undefined) {
      const names: number[] = [];
      const person: number[] = [];
      for (const w of tokensOf(value)) {
        for (const id of this.nameWordIds(w)) names.push(id);
        let id = this.person.get(w);
        if (id === undefined) id = this.number(this.person, w, 'n_' + w);
        person.push(id);
      }
      const t = code + joinedKey(value);
      r = { names, person, code: this.number(this.plain, t, t) };
      cache.set(value, r);
    }
    return r;
  }

  /** The entry's family and given names' numbers (looked up once for namesOf and allOf). */
  private personNames(e: DirectoryEntry) {
    const n = this.named;
    if (n.e !== e) {
      n.e = e;
      n.family = this.personName(this.familyOf, 'fa_', e.family);
      n.given = this.personName(this.givenOf, 'gi_', e.given);
    }
    return n;
  }

  /** Numbers of a value's words as "n_word" (a person's) or "m_word" (a structure's). */
  private nsIds(cache: ValueIds, ns: Map<string, number>, prefix: string, value: string, out: TermSink) {
    if (!value) return;
    let ids = cache.get(value);
    if (ids === undefined) {
      ids = [];
      for (const w of tokensOf(value)) {
        let id = ns.get(w);
        if (id === undefined) id = this.number(ns, w, prefix + w);
        ids.push(id);
      }
      cache.set(value, ids);
    }
    this.emit(ids, out);
  }

  /** Numbers of a value's words as they are. */
  private plainIds(value: string, out: TermSink) {
    if (!value) return;
    let ids = this.plainIdsOf.get(value);
    if (ids === undefined) {
      ids = tokensOf(value).map((w) => this.number(this.plain, w, w));
      this.plainIdsOf.set(value, ids);
    }
    this.emit(ids, out);
  }

  /** Number of the code term `make(value)` (cached by value). */
  private codeId(cache: ValueIds, value: string, make: (v: string) => string, out: TermSink) {
    let ids = cache.get(value);
    if (ids === undefined) {
      const t = make(value);
      ids = [this.number(this.plain, t, t)];
      cache.set(value, ids);
    }
    out.id(ids[0]);
  }

  /** idx_names terms of an entry (names(entryTokens(e)), from caches). */
  namesOf(e: DirectoryEntry, out: TermSink) {
    if (!this.roomFor(e)) return this.names(this.tokensFor(e), out);
    if (e.family || e.given) {
      const { family, given } = this.personNames(e);
      this.emit(family.names, out);
      this.emit(given.names, out);
    } else {
      this.nameIds(e.legalName, out);
      this.nameIds(e.tradeName, out);
      this.nameIds(e.service, out);
    }
  }

  /** idx_all terms of an entry (all(entryTokens(e)), from caches; the same terms, in another order). */
  allOf(e: DirectoryEntry, out: TermSink) {
    if (!this.roomFor(e)) return this.all(this.tokensFor(e), out, e);
    const person = e.family || e.given ? this.personNames(e) : undefined;
    if (person) {
      this.emit(person.family.person, out);
      this.emit(person.given.person, out);
    } else {
      this.nsIds(this.structureIdsOf, this.structure, 'm_', e.legalName, out);
      this.nsIds(this.structureIdsOf, this.structure, 'm_', e.tradeName, out);
      this.nsIds(this.structureIdsOf, this.structure, 'm_', e.service, out);
    }
    if (e.stKey) {
      this.plainIds(e.legalName, out);
      this.plainIds(e.tradeName, out);
      this.plainIds(e.service, out);
    }
    this.plainIds(e.professionLabel, out);
    this.plainIds(e.specialityLabel, out);
    const known = this.placeIdsOf.get(e.l6);
    let place = known !== undefined && known.postalCode === e.postalCode ? known.ids : undefined;
    if (place === undefined) {
      place = [];
      const sink: TermSink = { id: (id) => place!.push(id), literal: () => {} };
      const city = cityOf(e);
      this.plainIds(city, sink);
      if (e.postalCode) {
        const pc = e.postalCode.toLowerCase();
        place.push(this.number(this.plain, pc, pc));
        const cp = codeToken('cp_', e.postalCode);
        place.push(this.number(this.plain, cp, cp));
      }
      if (city) {
        const cy = 'cy_' + joinedKey(city);
        place.push(this.number(this.plain, cy, cy));
      }
      this.placeIdsOf.set(e.l6, { postalCode: e.postalCode, ids: place });
    }
    this.emit(place, out);
    if (e.description) this.plainIds(e.description, out);
    this.codeId(this.typeIds, e.type, typeTerm, out);
    this.codeId(this.kindIds, e.kind, kindTerm, out);
    if (e.ppKey && !keyIndexed(e.ppKey)) out.literal(codeLiteral('pp_', e.ppKey));
    if (e.stKey && !keyIndexed(e.stKey)) out.literal(codeLiteral('st_', e.stKey));
    if (e.professionCode) this.codeId(this.professionIds, e.professionCode, professionTerm, out);
    if (e.specialityCode) this.codeId(this.specialityIds, e.specialityCode, specialityTerm, out);
    if (person && e.family) out.id(person.family.code);
    if (person && e.given) out.id(person.given.code);
  }

  /** The terms numbered since the last call, in number order (the worker appends them). */
  take(): string[] {
    const f = this.fresh;
    this.fresh = [];
    return f;
  }
}
