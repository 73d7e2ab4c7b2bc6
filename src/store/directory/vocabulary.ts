// The vocabulary of a new snapshot: the distinct terms of idx_all but whole-only codes, stored in
// the `vocab` table so that a prefix query can be rewritten into its few whole terms, whose
// postings stream lazily (a raw prefix reads every list of its range first, postings.ts). Collected on the
// reading thread from the entry's tokens (no re-splitting of the indexed text): its size follows
// the vocabulary (names, places), not the number of lines; past VOCABULARY_CAP terms it is dropped
// and the snapshot is marked partial (prefix queries then read their whole range).
import type { EntryTokens } from '../../directory-model/tokens.js';

/** Past this many distinct terms, the vocabulary is dropped (the snapshot is marked partial). */
export const VOCABULARY_CAP = 1_500_000;

/** Code tokens that can be searched as a prefix (the others — t_, k_, pp_, st_, p_, s_ — only whole). */
const PREFIX_CODES = /^(cp|cy|fa|gi)_/;

export class Vocabulary {
  private persons = new Set<string>();
  private structures = new Set<string>();
  private words = new Set<string>();
  private full = false;

  add(t: EntryTokens) {
    if (this.full) return;
    const names = t.isPerson ? this.persons : this.structures;
    for (const w of t.names) names.add(w);
    const words = this.words;
    for (const w of t.org) words.add(w);
    for (const w of t.work) words.add(w);
    for (const w of t.place) words.add(w);
    for (const w of t.other) words.add(w);
    for (const c of t.codes) if (PREFIX_CODES.test(c)) words.add(c);
    if (this.persons.size + this.structures.size + words.size > VOCABULARY_CAP) {
      this.full = true;
      this.persons.clear();
      this.structures.clear();
      this.words.clear();
    }
  }

  /** The terms as indexed in idx_all ("n_" / "m_" before name words), sorted; undefined past the cap. */
  terms(): string[] | undefined {
    if (this.full) return undefined;
    const out: string[] = [...this.words];
    for (const w of this.persons) out.push('n_' + w);
    for (const w of this.structures) out.push('m_' + w);
    return out.sort();
  }
}
