// SEARCH inputs, after Dovecot 2.3.21's index-search.c / message-search.c:
//  - HEADER <name> <s>: each value of the field (unfolded, one leading space dropped, RFC 2047
//    decoded); an empty <s> matches when the field exists;
//  - FROM/TO/CC/BCC <s>: the value parsed as an address list and written back normalized
//    ("Name <user@host>", groups as "group: a@b, c@d;"), then decoded ('address' mode);
//  - SUBJECT <s>: runs of whitespace compressed to one space, then decoded ('subject' mode);
//  - BODY/TEXT: decoded text of the text/* (and message/* leaf) bodies, TEXT adding every header
//    of every part. Matching is a substring test after normalizeForSearch() on both sides.
//    (Parsing the headers again here is fine: SEARCH BODY/TEXT reads the whole message anyway.)
import { parseAddressList, writeAddressList } from './address.js';
import { fieldValueImap, fieldValueOneLine, parseHeaderBlock, type RawField } from './headers.js';
import { parseContentTypeValue } from './rfc822.js';
import { binToTextMixed, decodeCharset, decodeBase64, decodeQuotedPrintable, decodeWords, latin1 } from './text.js';
import type { MessageInfo, Part } from './types.js';

export type HeaderSearchMode = 'plain' | 'address' | 'subject';

function asBuffer(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

function decodedValue(buf: Buffer, f: RawField, mode: HeaderSearchMode): string {
  let v = fieldValueOneLine(buf, f);
  if (mode === 'address') v = writeAddressList(parseAddressList(v));
  else if (mode === 'subject') v = v.replace(/[ \t\r\n]+/g, ' ');
  return decodeWords(binToTextMixed(v));
}

/**
 * The decoded values of every `field` header of the top-level message, in order (empty array: the
 * field is absent). mode: 'plain' for SEARCH HEADER, 'address' for FROM/TO/CC/BCC, 'subject' for
 * SUBJECT.
 */
export function headerValues(raw: Uint8Array, info: MessageInfo, field: string, mode: HeaderSearchMode = 'plain'): string[] {
  const buf = asBuffer(raw);
  const { fields } = parseHeaderBlock(buf, info.root.headerStart, info.root.bodyStart);
  const lname = field.toLowerCase();
  const out: string[] = [];
  for (const f of fields) if (f.colon >= 0 && f.name.toLowerCase() === lname) out.push(decodedValue(buf, f, mode));
  return out;
}

/**
 * headerValues() of several (field, mode) pairs at once, the header block parsed once (the
 * header search index computes fifteen per message: issue 15). Same values, same order.
 */
export function headerValuesMany(raw: Uint8Array, info: MessageInfo, wanted: { field: string; mode: HeaderSearchMode }[]): string[][] {
  const buf = asBuffer(raw);
  const { fields } = parseHeaderBlock(buf, info.root.headerStart, info.root.bodyStart);
  const byName = new Map<string, RawField[]>();
  for (const f of fields) {
    if (f.colon < 0) continue;
    const lname = f.name.toLowerCase();
    const list = byName.get(lname);
    if (list) list.push(f);
    else byName.set(lname, [f]);
  }
  return wanted.map((w) => (byName.get(w.field.toLowerCase()) ?? []).map((f) => decodedValue(buf, f, w.mode)));
}

function headerText(buf: Buffer, part: Part): string {
  const { fields } = parseHeaderBlock(buf, part.headerStart, part.bodyStart);
  let out = '';
  for (const f of fields) {
    const name = f.colon >= 0 ? latin1(buf, f.lines[0][0], f.colon + 1) + ' ' : '';
    out += binToTextMixed(name) + decodeWords(binToTextMixed(fieldValueOneLine(buf, f))) + '\r\n';
  }
  return out;
}

/**
 * Dovecot (message-search.c) searches a body when the part's last Content-Type header starts with
 * "text/" or "message/", or when it has none ("Content-Type: text" without subtype is not).
 */
function searchedAsText(buf: Buffer, part: Part): boolean {
  const { fields } = parseHeaderBlock(buf, part.headerStart, part.bodyStart);
  let ct: RawField | undefined;
  for (const f of fields) if (f.colon >= 0 && f.name.toLowerCase() === 'content-type') ct = f;
  if (ct === undefined) return true;
  const t = parseContentTypeValue(fieldValueImap(buf, ct)).typeSubtype.toLowerCase();
  return t.startsWith('text/') || t.startsWith('message/');
}

function bodyText(buf: Buffer, part: Part): string {
  let body: Uint8Array = buf.subarray(part.bodyStart, part.bodyEnd);
  if (part.transferDecoding === 'base64') body = decodeBase64(body) ?? body;
  else if (part.transferDecoding === 'quoted-printable') body = decodeQuotedPrintable(body) ?? body;
  const cs = part.params.find(([k]) => k.toLowerCase() === 'charset');
  return decodeCharset(body, cs === undefined ? null : cs[1]);
}

/**
 * Decoded searchable text: 'body' = the bodies of text/* and message/* leaf parts (charset-converted,
 * transfer-decoded); 'text' = that plus every header of the message and of its parts. Parts are
 * separated by "\n" so that a key can't match across them.
 */
export function searchableText(raw: Uint8Array, info: MessageInfo, which: 'body' | 'text'): string {
  const buf = asBuffer(raw);
  const out: string[] = [];
  const walk = (p: Part) => {
    if (which === 'text') out.push(headerText(buf, p));
    if (p.children !== undefined && p.children.length > 0) {
      for (const c of p.children) walk(c);
    } else if (p.message !== undefined) {
      walk(p.message.root);
    } else if (searchedAsText(buf, p)) {
      out.push(bodyText(buf, p));
    }
  };
  walk(info.root);
  return out.join('\n');
}
