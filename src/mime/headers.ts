// Header block parsing on raw bytes, with Dovecot 2.3's message-header-parser.c semantics:
// name = bytes before ':' (LWSP before the colon trimmed), a line without ':' (or with a name over
// 1000 bytes) has an empty name and is all value, continuation lines start with SP/HT, the block
// ends at an empty line or at the end of input. Strings are "binary" (one char per byte).
import { latin1 } from './text.js';

const NAME_MAX_LEN = 1000;

export interface RawField {
  /** Header name as written ("binary" string), without trailing LWSP; "" for a line without ':'. */
  name: string;
  /** Start of the field's first line in the raw message. */
  start: number;
  /** End of the field: after the newline of its last line (or end of input). */
  end: number;
  /** [start, contentEnd) of each physical line, newline (and the CR before it) excluded. */
  lines: [number, number][];
  /** Offset of the ':' in the first line, or -1 (then the whole first line is value). */
  colon: number;
}

export interface HeaderLine {
  /** First byte after the line content ([CR]LF excluded). */
  contentEnd: number;
  /** Start of the next line. */
  next: number;
  /** Newline bytes: 0 (end of input), 1 (LF) or 2 (CRLF). */
  nl: 0 | 1 | 2;
}

export function indexOfByte(buf: Uint8Array, byte: number, from: number, end: number): number {
  const i = buf.indexOf(byte, from);
  return i < 0 || i >= end ? -1 : i;
}

export function readLine(buf: Uint8Array, pos: number, end: number): HeaderLine {
  const lf = indexOfByte(buf, 0x0a, pos, end);
  if (lf < 0) return { contentEnd: end, next: end, nl: 0 };
  if (lf > pos && buf[lf - 1] === 0x0d) return { contentEnd: lf - 1, next: lf + 1, nl: 2 };
  return { contentEnd: lf, next: lf + 1, nl: 1 };
}

/** Starts a field from its first line [start, contentEnd). */
export function newField(buf: Uint8Array, start: number, contentEnd: number, next: number): RawField {
  let colon = indexOfByte(buf, 0x3a, start, contentEnd);
  let name = '';
  if (colon >= 0) {
    let nameEnd = colon;
    while (nameEnd > start && (buf[nameEnd - 1] === 0x20 || buf[nameEnd - 1] === 0x09)) nameEnd--;
    if (nameEnd - start > NAME_MAX_LEN) colon = -1;
    else name = latin1(buf, start, nameEnd);
  }
  return { name, start, end: next, lines: [[start, contentEnd]], colon };
}

export function isLwsp(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/**
 * Parses a header block starting at `start` (up to `end`). Returns the fields and where the block
 * ended (after the empty line, or `end`).
 */
export function parseHeaderBlock(
  buf: Uint8Array,
  start: number,
  end: number,
): { fields: RawField[]; eoh: number; sawEoh: boolean } {
  const fields: RawField[] = [];
  let pos = start;
  let cur: RawField | null = null;
  while (pos < end) {
    const line = readLine(buf, pos, end);
    if (cur !== null && isLwsp(buf[pos])) {
      cur.lines.push([pos, line.contentEnd]);
      cur.end = line.next;
      pos = line.next;
      continue;
    }
    if (line.contentEnd === pos && line.nl !== 0) return { fields, eoh: line.next, sawEoh: true };
    cur = newField(buf, pos, line.contentEnd, line.next);
    fields.push(cur);
    pos = line.next;
  }
  return { fields, eoh: pos, sawEoh: false };
}

/**
 * The field's full value as Dovecot's IMAP code sees it (parser flags SKIP_INITIAL_LWSP | DROP_CR):
 * all LWSP after ':' skipped (only one if the value is nothing but LWSP), each continuation line
 * appended after a "\n" with its leading whitespace (Dovecot 2.3.19; 2.3.21 omits the "\n" before
 * a continuation line of a single byte, which changes nothing visible).
 */
export function fieldValueImap(buf: Uint8Array, f: RawField): string {
  const [s0, e0] = f.lines[0];
  let v = s0;
  if (f.colon >= 0) {
    v = f.colon + 1;
    while (v < e0 && isLwsp(buf[v])) v++;
    if (v === e0 && f.colon + 1 < e0) v = f.colon + 2;
  }
  let out = latin1(buf, v, e0);
  for (let i = 1; i < f.lines.length; i++) {
    const [s, e] = f.lines[i];
    out += '\n' + latin1(buf, s, e);
  }
  return out;
}

/**
 * The field's value as Dovecot's SEARCH sees it (MESSAGE_HEADER_PARSER_FLAG_CLEAN_ONELINE): one LWSP
 * after ':' skipped, continuation lines appended without newline, a leading TAB turned into a space.
 */
export function fieldValueOneLine(buf: Uint8Array, f: RawField): string {
  const [s0, e0] = f.lines[0];
  let v = s0;
  if (f.colon >= 0) {
    v = f.colon + 1;
    if (v < e0 && isLwsp(buf[v])) v++;
  }
  let out = latin1(buf, v, e0);
  for (let i = 1; i < f.lines.length; i++) {
    const [s, e] = f.lines[i];
    if (s < e && buf[s] === 0x09) out += ' ' + latin1(buf, s + 1, e);
    else out += latin1(buf, s, e);
  }
  return out;
}

export function nameIs(f: RawField, lowerName: string): boolean {
  return f.name.length === lowerName.length && f.name.toLowerCase() === lowerName;
}
