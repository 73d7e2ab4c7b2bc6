// The indexed header search (issue 15, big folders): per message file, the normalised values the
// SEARCH engine (mail/search.ts) compares for FROM/TO/CC/BCC/SUBJECT and for HEADER on the common
// fields, kept in the store (migration 17, one row per blob) so that SEARCH narrows candidates with
// SQL instead of reading every message. The values are computed by the very function the engine
// uses (headerSearchValues), then folded (normalizeForSearch), so both paths give the same answer.
// With encryption at rest the store keeps keyed tokens and a sealed value instead of these values
// and applies the same test after opening its candidates (store/search-seal.ts).
import { headerValues, headerValuesMany, normalizeForSearch, type HeaderSearchMode, type MessageInfo } from '../mime/index.js';

/**
 * The version of the rows' values. The stores track version 1 only (`messages.header_indexed`,
 * SQLite migration 17), so a change of headerSearchValues or normalizeForSearch is rolled out by a
 * migration that drops the rows instead (SQLite 26 / PostgreSQL 9: binToTextMixed); the header
 * backfill then records them again.
 */
export const HEADER_INDEX_VERSION = 1;

/** A column of the index: the field (lower case) and the engine's mode for it. */
export interface IndexedHeader {
  column: string;
  field: string;
  mode: HeaderSearchMode;
}

const ADDRESS_FIELDS = ['from', 'to', 'cc', 'bcc'];
/** HEADER <field> on these fields is answered from the index; other fields read the messages. */
const PLAIN_FIELDS = ['from', 'to', 'cc', 'bcc', 'subject', 'message-id', 'in-reply-to', 'references', 'reply-to', 'sender'];

export const INDEXED_HEADERS: IndexedHeader[] = [
  ...ADDRESS_FIELDS.map((f) => ({ column: `a_${f}`, field: f, mode: 'address' as const })),
  { column: 's_subject', field: 'subject', mode: 'subject' },
  ...PLAIN_FIELDS.map((f) => ({ column: `h_${f.replace(/-/g, '_')}`, field: f, mode: 'plain' as const })),
];

/** The mode the engine applies to a header key (RFC 9051 §6.4.4: FROM/TO/CC/BCC/SUBJECT vs HEADER). */
export function headerKeyMode(field: string, viaKeyword: boolean | undefined): HeaderSearchMode {
  const f = field.toLowerCase();
  return !viaKeyword ? 'plain' : f === 'subject' ? 'subject' : 'address';
}

/** The index column answering a header key, or undefined when the key must read the messages. */
export function indexedColumn(field: string, viaKeyword: boolean | undefined): string | undefined {
  const f = field.toLowerCase();
  const mode = headerKeyMode(f, viaKeyword);
  return INDEXED_HEADERS.find((h) => h.field === f && h.mode === mode)?.column;
}

/**
 * The values the engine matches for a header key (before folding): `head` is the message's
 * top-level header block (bytes 0..info.root.bodyStart) or the whole message.
 */
/** Whether headerSearchValues needs the header block (false: the analysis answers alone). */
export function needsHead(info: MessageInfo, mode: HeaderSearchMode): boolean {
  return !(mode === 'subject' && info.envelope.subject !== null && !/\n/.test(info.envelope.subject));
}

export function headerSearchValues(info: MessageInfo, head: () => Buffer, field: string, mode: HeaderSearchMode): string[] {
  if (!needsHead(info, mode)) {
    // Fast path: the decoded first Subject: kept by the index (no file read). A message with
    // several Subject: fields (malformed, RFC 5322 §3.6 allows one) is searched on the first.
    return [info.subject.replace(/[ \t\r\n]+/g, ' ')];
  }
  return headerValues(head(), info, field, mode);
}

/**
 * One row of the index: per column, the folded values joined by "\n" as UTF-8 (null when the
 * field is absent). A needle without "\n" matches the joined bytes exactly when it matches one
 * value (UTF-8 is self-synchronising), so the SQL test is instr(column, needle) > 0.
 */
export function headerIndexRow(info: MessageInfo, head: Buffer): Record<string, Buffer | null> {
  const row: Record<string, Buffer | null> = {};
  // headerSearchValues() per column, the header block parsed once for the columns that need it.
  const fromHead = INDEXED_HEADERS.filter((h) => needsHead(info, h.mode));
  const parsed = fromHead.length ? headerValuesMany(head, info, fromHead) : [];
  for (const h of INDEXED_HEADERS) {
    const k = fromHead.indexOf(h);
    const values = k >= 0 ? parsed[k] : headerSearchValues(info, () => head, h.field, h.mode);
    row[h.column] = values.length === 0 ? null : Buffer.from(values.map((v) => normalizeForSearch(v)).join('\n'), 'utf8');
  }
  return row;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * The needle as the index compares it, or undefined when the index cannot answer exactly: a
 * "\n" would span two values; a lone surrogate or U+FFFD would compare differently once in UTF-8.
 */
export function indexNeedle(value: string): Buffer | undefined {
  const folded = normalizeForSearch(value);
  if (folded.includes('\n') || folded.includes('\uFFFD') || LONE_SURROGATE.test(folded)) return undefined;
  return Buffer.from(folded, 'utf8');
}
