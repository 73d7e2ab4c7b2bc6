// The search criteria of the SEARCH engine (mail/search.ts), as IMAP's parser produces them
// (RFC 9051 §6.4.4 and §9 formal syntax) and the mail API builds them (docs/mail-api.md §search).

/** A sequence set (RFC 9051 §9 sequence-set): ranges; `*` is represented as Infinity. */
export interface SequenceSet {
  ranges: { from: number; to: number }[]; // from <= to after normalisation; '*' = Infinity
  /** `$` (RFC 5182 SEARCHRES saved result), only when the set is exactly "$". */
  saved?: boolean;
}

/** RFC 9051 §6.4.4 search keys, plus RFC 7162 MODSEQ, RFC 5032 OLDER/YOUNGER (optional). */
export type SearchKey =
  | { kind: 'all' }
  | { kind: 'seq'; set: SequenceSet }
  | { kind: 'uid'; set: SequenceSet }
  | { kind: 'flag'; flag: string; set: boolean } // ANSWERED/UNANSWERED, KEYWORD/UNKEYWORD, SEEN...; set=false for UN*
  | { kind: 'new' } // RECENT UNSEEN (rev1)
  | { kind: 'old' }
  | { kind: 'recent'; set: boolean }
  | { kind: 'header'; field: string; value: string; /** true for the FROM/TO/CC/BCC/SUBJECT keys (not HEADER) */ viaKeyword?: boolean } // FROM/TO/CC/BCC/SUBJECT map to header with that field name
  | { kind: 'body'; value: string }
  | { kind: 'text'; value: string }
  | { kind: 'date'; which: 'internal' | 'sent'; op: 'before' | 'on' | 'since'; date: string /* YYYY-MM-DD */ }
  | { kind: 'size'; op: 'larger' | 'smaller'; n: number }
  | { kind: 'not'; key: SearchKey }
  | { kind: 'or'; a: SearchKey; b: SearchKey }
  | { kind: 'and'; keys: SearchKey[] } // parenthesised list or top level
  | { kind: 'modseq'; modseq: bigint; entry?: { name: string; type: 'priv' | 'shared' | 'all' } }
  | { kind: 'older' | 'younger'; seconds: number }
  | { kind: 'savedresult' }; // `$`
