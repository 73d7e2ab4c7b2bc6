// The meaning of a search condition on an entry's tokens, in memory. The store's full-text
// index finds candidates with the same semantics; this decides column-restricted conditions on
// them, and matches our own mailboxes (which are not in the national snapshot).
import type { Word } from './normalize.js';
import type { EntryTokens } from './tokens.js';

/** One condition of a search; all the conditions of a query must hold. */
export interface Clause {
  /** Where the word must be found: a token column (tokens.ts EntryTokens), or any word column. */
  column: 'names' | 'person' | 'org' | 'work' | 'place' | 'other' | 'codes' | 'any';
  /** Normalised words, alternatives (OR); a word matches its joined form, or all its parts. */
  words: Word[];
  /** Starts-with (true) or whole-token (false) match. */
  prefix: boolean;
}

function has(tokens: string[], t: string, prefix: boolean): boolean {
  if (prefix) {
    for (const x of tokens) if (x.startsWith(t)) return true;
    return false;
  }
  return tokens.includes(t);
}

function columnTokens(t: EntryTokens, c: Clause['column']): string[] {
  switch (c) {
    case 'names':
      return t.names;
    case 'person':
      return t.isPerson ? t.names : [];
    case 'org':
      return t.org;
    case 'work':
      return t.work;
    case 'place':
      return t.place;
    case 'other':
      return t.other;
    case 'codes':
      return t.codes;
    case 'any':
      return t.names.concat(t.org, t.work, t.place, t.other);
  }
}

/** One of the clause's words matches: its joined form, or all its parts (the last one as a prefix in prefix mode). */
export function clauseMatches(t: EntryTokens, c: Clause): boolean {
  const tokens = columnTokens(t, c.column);
  return c.words.some((w) => {
    if (has(tokens, w.joined, c.prefix)) return true;
    if (w.parts.length < 2) return false;
    const last = w.parts.length - 1;
    return w.parts.every((p, i) => has(tokens, p, c.prefix && i === last));
  });
}

export const allClausesMatch = (t: EntryTokens, clauses: Clause[]) => clauses.every((c) => clauseMatches(t, c));
