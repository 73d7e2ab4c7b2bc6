// BODY[section] and BINARY[section] contents, after Dovecot 2.3.21's imap-msgpart.c and
// index-mail-binary.c:
//  - part numbers: a non-multipart part has only part 1 (itself); inside a message/rfc822 part the
//    numbering continues in the encapsulated message (so for a top-level message/rfc822, [1] is the
//    whole encapsulated message and [1.1] its body when it is not multipart);
//  - [n.MIME] is the part's own MIME header (for a message/rfc822 part: its Content-* header, not
//    the encapsulated message's header); [n.HEADER], [n.TEXT], [n.HEADER.FIELDS (..)] need a
//    message/rfc822 part and apply to the encapsulated message;
//  - a part that does not exist, or HEADER/TEXT of a part that is not message/rfc822, gives the
//    empty string (Dovecot answers "" rather than NIL or NO);
//  - HEADER.FIELDS (NOT) gives the matching header lines as written, then the blank line if the
//    header had one;
//  - output line ends are CRLF (bare LFs converted, as Dovecot does for mbox/maildir files stored
//    with LF) and NUL bytes become 0x80 (IMAP literals can't carry NUL); BINARY keeps NULs.
import { parseHeaderBlock } from './headers.js';
import { decodeBase64, decodeQuotedPrintable } from './text.js';
import type { MessageInfo, Part, SectionSpec } from './types.js';

const EMPTY = new Uint8Array(0);
const CRLF = Buffer.from('\r\n', 'latin1');

function asBuffer(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** imap_msgpart_find(): the part a section number designates, or null. */
export function findPart(root: Part, path: number[]): Part | null {
  let part: Part | null = root;
  for (let k = 0; k < path.length && part !== null; k++) {
    const num = path[k];
    const more = k + 1 < path.length;
    if (!Number.isInteger(num) || num < 1) return null;
    if (part.children !== undefined) {
      part = part.children[num - 1] ?? null;
    } else if (num !== 1 || (more && part.message === undefined)) {
      part = null;
    }
    if (part !== null && part.message !== undefined && more) part = part.message.root;
  }
  return part;
}

/** Bare LF → CRLF, and (unless keepNul) NUL → 0x80, over raw[start, end). */
function convert(raw: Buffer, start: number, end: number, crlf: boolean, nul: boolean): Uint8Array {
  if (end <= start) return EMPTY;
  const src = raw.subarray(start, end);
  if (!crlf && !nul) return src;
  let bare = 0;
  if (crlf) for (let i = src.indexOf(0x0a); i >= 0; i = src.indexOf(0x0a, i + 1)) if (i === 0 || src[i - 1] !== 0x0d) bare++;
  const hasNul = nul && src.indexOf(0) >= 0;
  if (bare === 0 && !hasNul) return src;
  const out = Buffer.allocUnsafe(src.length + bare);
  let o = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === 0x0a && crlf && (i === 0 || src[i - 1] !== 0x0d)) out[o++] = 0x0d;
    out[o++] = c === 0 && nul ? 0x80 : c;
  }
  return out;
}

interface Resolved {
  /** contiguous raw range */
  range?: { start: number; end: number };
  /** header-fields filter */
  filter?: { start: number; end: number; fields: string[]; not: boolean; root?: boolean };
  empty?: true;
}

/** RFC 9051 §6.4.5 HEADER / TEXT of a message: the top one, or the one a message/rfc822 part holds. */
function headerOrText(message: Part, kind: 'header' | 'text'): Resolved {
  if (kind === 'header') return { range: { start: message.headerStart, end: message.bodyStart } };
  return { range: { start: message.bodyStart, end: message.bodyEnd } };
}

function resolve(info: MessageInfo, s: SectionSpec): Resolved | null {
  if (s.kind === 'full' || (s.kind === 'part' && s.part.length === 0)) return { range: { start: 0, end: info.rawSize } };
  const root = info.root;
  if (s.part.length === 0) {
    switch (s.kind) {
      case 'header':
      case 'text':
        return headerOrText(root, s.kind);
      case 'header.fields':
        return { filter: { start: root.headerStart, end: root.bodyStart, fields: s.fields, not: s.not, root: true } };
      case 'mime':
        return null; // [MIME] needs a part number: BAD
    }
  }
  if (s.part.some((n) => !Number.isInteger(n) || n < 1)) return null;
  let part = findPart(root, s.part);
  if (part === null) return { empty: true };
  switch (s.kind) {
    case 'mime':
      return { range: { start: part.headerStart, end: part.bodyStart } };
    case 'part':
      return { range: { start: part.bodyStart, end: part.bodyEnd } };
    default:
      break;
  }
  if (part.message === undefined) return { empty: true };
  part = part.message.root;
  switch (s.kind) {
    case 'header':
    case 'text':
      return headerOrText(part, s.kind);
    case 'header.fields':
      // Dovecot filters the stream from the header start without a length limit: a header cut
      // short by a boundary line goes on being read up to the next empty line.
      return { filter: { start: part.headerStart, end: info.rawSize, fields: s.fields, not: s.not } };
  }
  return null;
}

/**
 * The header lines of raw[start, end) whose name is (not) in `fields`, then the blank line if the
 * header had one; `alwaysEoh` (top-level HEADER.FIELDS, which Dovecot serves from its header
 * cache) always ends with CRLF, which only terminates the last line if that had no newline.
 */
export function filterHeader(raw: Buffer, start: number, end: number, fields: string[], not: boolean, alwaysEoh = false): Buffer {
  const wanted = new Set(fields.map((f) => asciiLower(f)));
  const { fields: all, sawEoh } = parseHeaderBlock(raw, start, end);
  const chunks: Buffer[] = [];
  for (const f of all) {
    const match = f.colon >= 0 && wanted.has(asciiLower(f.name));
    if (match === not) continue;
    for (const [s, e] of f.lines) {
      chunks.push(raw.subarray(s, e));
      if (e < f.end) chunks.push(CRLF); // the line had a newline
    }
  }
  if (alwaysEoh) {
    // Dovecot appends "\n" to the cached header lines, then converts LF to CRLF
    const last = chunks.length > 0 ? chunks[chunks.length - 1] : undefined;
    chunks.push(last !== undefined && last.length > 0 && last[last.length - 1] === 0x0d ? Buffer.from('\n') : CRLF);
  } else if (sawEoh) {
    chunks.push(CRLF);
  }
  return Buffer.concat(chunks);
}

function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

/**
 * BODY[section] contents (RFC 9051 §6.4.5), as Dovecot sends them: CRLF line ends, NUL as 0x80,
 * "" for a part that doesn't exist. null only for a section that is invalid (MIME without part
 * number, part number 0): answer BAD. Partial <o.n> applies to this result.
 */
export function sectionBytes(raw: Uint8Array, info: MessageInfo, s: SectionSpec): Uint8Array | null {
  const buf = asBuffer(raw);
  const r = resolve(info, s);
  if (r === null) return null;
  if (r.empty) return EMPTY;
  if (r.range) return convert(buf, r.range.start, r.range.end, info.bareLf, info.nul);
  const f = r.filter!;
  const out = filterHeader(buf, f.start, f.end, f.fields, f.not, f.root === true && !f.not);
  return info.nul ? convert(out, 0, out.length, false, true) : out;
}

/**
 * The raw byte range holding BODY[section], when the section is sent unchanged from the stored
 * message (so large partial fetches can stream from disk): not for HEADER.FIELDS, nor for a message
 * with bare LFs or NULs (those need conversion). A missing part gives the empty range {0, 0}.
 */
export function sectionRange(info: MessageInfo, s: SectionSpec): { start: number; end: number } | null {
  if (info.bareLf || info.nul) return null;
  const r = resolve(info, s);
  if (r === null || r.filter) return null;
  if (r.empty) return { start: 0, end: 0 };
  return r.range!;
}

/**
 * BINARY[section] (RFC 3516): the part's body with its Content-Transfer-Encoding removed; for a
 * multipart or message/rfc822 part (or the whole message, part []) every leaf inside is decoded
 * and the headers of decoded leaves get "Content-Transfer-Encoding: binary" instead. A part that
 * doesn't exist gives empty data; an unknown encoding anywhere inside gives UNKNOWN-CTE (answer
 * NO [UNKNOWN-CTE]); base64/quoted-printable data Dovecot's decoders reject gives PARSE (Dovecot
 * answers NO [PARSE] Invalid data in MIME part); null only for an invalid part number (0).
 */
export function binaryContent(
  raw: Uint8Array,
  info: MessageInfo,
  part: number[],
): { data: Uint8Array } | { error: 'UNKNOWN-CTE' | 'PARSE' } | null {
  const buf = asBuffer(raw);
  if (part.some((n) => !Number.isInteger(n) || n < 1)) return null;
  const includeHdr = part.length === 0;
  const p = includeHdr ? info.root : findPart(info.root, part);
  if (p === null) return { data: EMPTY };
  // RFC 3516 §4.2: content in the "binary" encoding is returned byte for byte, bare LFs included
  // (what imaptest's append-binary expects of Dovecot); other content gets CRLF line ends.
  const ctx: BinaryCtx = { buf, chunks: [], copyStart: 0, crlf: info.bareLf && p.encoding.toLowerCase() !== 'binary' };
  const err = addBinaryPart(ctx, p, includeHdr);
  if (err !== null) return { error: err };
  return { data: ctx.chunks.length === 1 ? ctx.chunks[0] : Buffer.concat(ctx.chunks) };
}

interface BinaryCtx {
  buf: Buffer;
  chunks: Uint8Array[];
  copyStart: number;
  crlf: boolean;
}

function copyTo(ctx: BinaryCtx, end: number): void {
  if (end <= ctx.copyStart) return;
  ctx.chunks.push(convert(ctx.buf, ctx.copyStart, end, ctx.crlf, false));
}

function addBinaryPart(ctx: BinaryCtx, part: Part, includeHdr: boolean): 'UNKNOWN-CTE' | 'PARSE' | null {
  const cte = part.transferDecoding;
  if (cte === 'unknown') return 'UNKNOWN-CTE';
  const converted = cte === 'quoted-printable' || cte === 'base64';
  if (!includeHdr) {
    /* body only */
  } else if (converted) {
    if (ctx.copyStart !== 0) copyTo(ctx, part.headerStart);
    ctx.chunks.push(binaryHeader(ctx.buf, part.headerStart, part.bodyStart));
  } else {
    copyTo(ctx, part.bodyStart);
  }
  ctx.copyStart = part.bodyStart;
  const children = part.children ?? (part.message !== undefined ? [part.message.root] : undefined);
  if (children !== undefined && children.length > 0) {
    for (const c of children) {
      const err = addBinaryPart(ctx, c, true);
      if (err !== null) return err;
    }
    copyTo(ctx, part.bodyEnd);
    ctx.copyStart = part.bodyEnd;
    return null;
  }
  if (part.bodyEnd > part.bodyStart) {
    const body = ctx.buf.subarray(part.bodyStart, part.bodyEnd);
    if (converted) {
      const data = cte === 'base64' ? decodeBase64(body, true) : decodeQuotedPrintable(body, true);
      if (data === null) return 'PARSE';
      ctx.chunks.push(data);
    } else {
      ctx.chunks.push(convert(ctx.buf, part.bodyStart, part.bodyEnd, ctx.crlf, false));
    }
  }
  ctx.copyStart = part.bodyEnd;
  return null;
}

/** A decoded part's header: its Content-Transfer-Encoding lines replaced by one saying binary. */
function binaryHeader(buf: Buffer, start: number, end: number): Buffer {
  const { fields, sawEoh } = parseHeaderBlock(buf, start, end);
  const chunks: Buffer[] = [];
  for (const f of fields) {
    if (f.colon >= 0 && asciiLower(f.name) === 'content-transfer-encoding') continue;
    for (const [s, e] of f.lines) {
      chunks.push(buf.subarray(s, e));
      if (e < f.end) chunks.push(CRLF);
    }
  }
  if (sawEoh) chunks.push(Buffer.from('Content-Transfer-Encoding: binary\r\n\r\n', 'latin1'));
  return Buffer.concat(chunks);
}

