// analyzeMessage(): one pass over a stored message producing everything FETCH (BODYSTRUCTURE, BODY,
// ENVELOPE, section offsets, sizes), SORT and THREAD need, as plain JSON. Per-part data follows
// Dovecot 2.3.21's message-part-data.c; sizes are Dovecot's "virtual" sizes (CRLF line ends).
import { parseAddressList } from './address.js';
import { buildEnvelopes, emptyEnvelope, headerStrdup, nolf, TextOf } from './envelope.js';
import { fieldValueImap, type RawField } from './headers.js';
import { F_DIGEST, F_IS_MIME, F_MULTIPART, F_RFC822, parseMime, type PNode } from './parser.js';
import { parseContentTypeValue, Rfc822Parser, rfc2231Parse } from './rfc822.js';
import { baseSubject, isoWithOffset, messageIds, normalizeForSearch, parseDate } from './sortkeys.js';
import { binToTextMixed, decodeWords } from './text.js';
import { MESSAGE_INFO_VERSION, type MessageInfo, type Part, type PartWire, type TransferDecoding } from './types.js';

/** Sorted LF positions, to count lines and bare LFs (LF without CR) in any byte range. */
export class LineIndex {
  readonly lf: Int32Array;
  readonly bare: Int32Array;

  constructor(buf: Uint8Array) {
    let lf: Int32Array<ArrayBuffer> = new Int32Array(1024);
    let bare: Int32Array<ArrayBuffer> = new Int32Array(16);
    let nLf = 0;
    let nBare = 0;
    for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, i + 1)) {
      if (nLf === lf.length) lf = grow(lf);
      lf[nLf++] = i;
      if (i === 0 || buf[i - 1] !== 0x0d) {
        if (nBare === bare.length) bare = grow(bare);
        bare[nBare++] = i;
      }
    }
    this.lf = lf.slice(0, nLf);
    this.bare = bare.slice(0, nBare);
  }

  private static lowerBound(a: Int32Array, x: number): number {
    let lo = 0;
    let hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (a[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  lines(start: number, end: number): number {
    return end <= start ? 0 : LineIndex.lowerBound(this.lf, end) - LineIndex.lowerBound(this.lf, start);
  }

  /** Size with every bare LF counted as CRLF. */
  virtual(start: number, end: number): number {
    if (end <= start) return 0;
    if (this.bare.length === 0) return end - start;
    return end - start + LineIndex.lowerBound(this.bare, end) - LineIndex.lowerBound(this.bare, start);
  }
}

function grow(a: Int32Array): Int32Array<ArrayBuffer> {
  const b = new Int32Array(a.length * 2);
  b.set(a);
  return b;
}

interface PartData {
  contentType: string | null;
  contentSubtype: string | null;
  params: [string, string][];
  id: string | null;
  md5: string | null;
  description: string | null;
  location: string | null;
  cte: string | null;
  disposition: string | null;
  dispositionParams: [string, string][];
  language: string[] | null;
}

function emptyData(): PartData {
  return {
    contentType: null,
    contentSubtype: null,
    params: [],
    id: null,
    md5: null,
    description: null,
    location: null,
    cte: null,
    disposition: null,
    dispositionParams: [],
    language: null,
  };
}

/** message_part_data_parse_from_header() over a part's Content-* fields. */
function partData(buf: Uint8Array, node: PNode): PartData {
  const d = emptyData();
  if ((node.flags & F_IS_MIME) === 0) return d; // no MIME-Version / Content-Type: Content-* is ignored
  for (const f of node.fields) {
    const lname = f.name.toLowerCase();
    if (!lname.startsWith('content-')) continue;
    const name = lname.slice(8);
    const value = () => fieldValueImap(buf, f);
    switch (name) {
      case 'id':
      case 'md5':
      case 'location':
      case 'description':
        if (d[name] === null) d[name] = headerStrdup(value()); // the first such field counts
        break;
      case 'type':
        if (d.contentType === null) {
          const ct = parseContentTypeValue(value());
          d.contentType = ct.type;
          d.contentSubtype = ct.subtype;
          d.params = ct.params;
        }
        break;
      case 'transfer-encoding':
        if (d.cte === null) {
          const p = new Rfc822Parser(value());
          p.skipLwsp();
          const tok = { v: '' };
          if (p.parseMimeToken(tok) >= 0 && p.skipLwsp() === 0 && tok.v.length > 0) d.cte = tok.v;
        }
        break;
      case 'language':
        if (d.language === null) {
          const p = new Rfc822Parser(value());
          const langs: string[] = [];
          p.skipLwsp();
          for (;;) {
            const tok = { v: '' };
            if (p.parseAtom(tok) < 0) break;
            langs.push(tok.v);
            if (p.i >= p.end || p.cur() !== 0x2c) break;
            p.i++;
            p.skipLwsp();
          }
          if (langs.length > 0) d.language = langs;
        }
        break;
      case 'disposition':
        if (d.dispositionParams.length === 0) {
          const p = new Rfc822Parser(value());
          p.skipLwsp();
          const tok = { v: '' };
          if (p.parseMimeToken(tok) >= 0) {
            d.disposition = tok.v;
            d.dispositionParams = rfc2231Parse(p).params;
          }
        }
        break;
    }
  }
  return d;
}

/** message_decoder_parse_cte() on the part's last Content-Transfer-Encoding header. */
function transferDecoding(buf: Uint8Array, node: PNode): TransferDecoding {
  let field: RawField | null = null;
  for (const f of node.fields) if (f.name.toLowerCase() === 'content-transfer-encoding') field = f;
  if (field === null) return 'none';
  const p = new Rfc822Parser(fieldValueImap(buf, field));
  p.skipLwsp();
  const tok = { v: '' };
  p.parseMimeToken(tok);
  switch (tok.v.toLowerCase()) {
    case '7bit':
    case '8bit':
    case 'binary':
      return 'none';
    case 'base64':
      return 'base64';
    case 'quoted-printable':
      return 'quoted-printable';
    default:
      return 'unknown';
  }
}

// The text forms (subject, sort keys, Message-ID for THREAD): a field mixing UTF-8 and latin1
// bytes reads its UTF-8 part right (binToTextMixed); the wire forms keep the bytes (envelope.ts).
const t = binToTextMixed;

function ieq(a: string | null, b: string): boolean {
  return a !== null && a.length === b.length && a.toLowerCase() === b;
}

/** How each BODYSTRUCTURE field of a part is made text (defined once: settleWire runs for every part). */
const TO_TEXT: { [K in keyof PartWire]-?: (t: TextOf, v: Part[K]) => Part[K] } = {
  type: (t, v) => t.str(v),
  subtype: (t, v) => t.str(v),
  params: (t, v) => t.pairs(v),
  id: (t, v) => t.str(v),
  description: (t, v) => t.str(v),
  encoding: (t, v) => t.str(v),
  md5: (t, v) => t.str(v),
  disposition: (t, v) => (v === null ? null : [t.str(v[0]), t.pairs(v[1])]),
  language: (t, v) => (v === null ? null : v.map((x) => t.str(x))),
  location: (t, v) => t.str(v),
};
const WIRE_FIELDS = Object.keys(TO_TEXT) as (keyof PartWire)[];

/**
 * Turns the part's BODYSTRUCTURE fields (built as "binary" strings) into text, keeping the bytes
 * of the fields that are not valid UTF-8 in `part.wire` (issue 15).
 */
function settleWire(part: Part): void {
  let wire: Record<string, unknown> | undefined;
  const p = part as unknown as Record<string, unknown>;
  const t = new TextOf();
  for (const k of WIRE_FIELDS) {
    t.bad = false;
    const bin = p[k];
    p[k] = (TO_TEXT[k] as (t: TextOf, v: unknown) => unknown)(t, bin);
    if (t.bad) (wire ??= {})[k] = bin;
  }
  if (wire !== undefined) part.wire = wire as PartWire;
}

class Builder {
  constructor(
    readonly buf: Uint8Array,
    readonly idx: LineIndex,
  ) {}

  build(node: PNode, path: number[]): Part {
    const part = this.buildBinary(node, path);
    settleWire(part);
    return part;
  }

  /** The part with its BODYSTRUCTURE strings still "binary" (settleWire makes them text). */
  private buildBinary(node: PNode, path: number[]): Part {
    const d = partData(this.buf, node);
    const headerStart = node.start;
    const bodyStart = node.start + node.hdrSize;
    const bodyEnd = bodyStart + node.bodySize;
    const part: Part = {
      path,
      type: '',
      subtype: '',
      params: [],
      id: d.id === null ? null : nolf(d.id),
      description: d.description === null ? null : nolf(d.description),
      encoding: d.cte ?? '7bit',
      size: this.idx.virtual(bodyStart, bodyEnd),
      md5: d.md5 === null ? null : nolf(d.md5),
      disposition: d.disposition === null ? null : [d.disposition, d.dispositionParams],
      language: d.language,
      location: d.location === null ? null : nolf(d.location),
      headerStart,
      bodyStart,
      bodyEnd,
      headerSize: this.idx.virtual(headerStart, bodyStart),
      transferDecoding: transferDecoding(this.buf, node),
    };
    if ((node.flags & F_MULTIPART) !== 0) {
      part.type = d.contentType ?? 'multipart';
      part.subtype = d.contentSubtype ?? '';
      part.params = d.params;
      part.children = node.children.map((c, i) => this.build(c, [...path, i + 1]));
      return part;
    }
    let text: boolean;
    if ((node.flags & F_RFC822) !== 0) {
      part.type = 'message';
      part.subtype = 'rfc822';
      text = false;
    } else if (
      (d.contentType !== null &&
        ((ieq(d.contentType, 'message') && ieq(d.contentSubtype, 'rfc822')) || ieq(d.contentType, 'multipart'))) ||
      (d.contentType === null && node.parent !== null && (node.parent.flags & F_DIGEST) !== 0)
    ) {
      // a part left unparsed because the MIME part limits were reached
      part.type = 'application';
      part.subtype = 'octet-stream';
      text = false;
    } else if (d.contentType === null) {
      part.type = 'text';
      part.subtype = 'plain';
      text = true;
    } else {
      part.type = d.contentType;
      part.subtype = d.contentSubtype ?? '';
      text = ieq(d.contentType, 'text');
    }
    part.params = [...d.params];
    if (text && !d.params.some(([k]) => k.toLowerCase() === 'charset')) part.params.push(['charset', 'us-ascii']);
    if (text) part.lines = this.idx.lines(bodyStart, bodyEnd);
    if ((node.flags & F_RFC822) !== 0) {
      part.lines = this.idx.lines(bodyStart, bodyEnd);
      const child = node.children[0];
      if (child !== undefined) {
        const env = child.fields.length > 0 ? buildEnvelopes(this.buf, child.fields) : { envelope: emptyEnvelope() };
        part.message = {
          envelope: env.envelope,
          root: this.build(child, path),
          ...(env.wire ? { envelopeWire: env.wire } : {}),
        };
      }
    }
    return part;
  }
}

function first(fields: RawField[], lname: string): RawField | undefined {
  return fields.find((f) => f.name.toLowerCase() === lname);
}

function firstAddress(buf: Uint8Array, fields: RawField[], lname: string) {
  const f = first(fields, lname);
  if (f === undefined) return undefined;
  return parseAddressList(fieldValueImap(buf, f), 1)[0];
}

/** SORT FROM/TO/CC key: the first address' mailbox. */
function mailboxKey(buf: Uint8Array, fields: RawField[], lname: string): string {
  const a = firstAddress(buf, fields, lname);
  return normalizeForSearch(t(a?.mailbox ?? ''));
}

/** SORT DISPLAYFROM/DISPLAYTO key (RFC 5957): decoded display name, else the addr-spec. */
function displayKey(buf: Uint8Array, fields: RawField[], lname: string): string {
  const a = firstAddress(buf, fields, lname);
  if (a === undefined) return '';
  let s = '';
  if (a.name !== null) s = decodeWords(t(a.name));
  if (s === '') {
    if (a.mailbox !== null && a.domain !== null) s = t(a.mailbox) + '@' + t(a.domain);
    else if (a.mailbox !== null) s = t(a.mailbox);
  }
  return normalizeForSearch(s);
}

/** Unfolds a header value and decodes its RFC 2047 words. */
export function decodeHeaderText(value: string): string {
  return decodeWords(t(headerStrdup(value.replace(/\r?\n/g, ''))));
}

export function analyzeMessage(raw: Uint8Array): MessageInfo {
  const buf = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const idx = new LineIndex(buf);
  const rootNode = parseMime(buf);
  const root = new Builder(buf, idx).build(rootNode, []);
  const fields = rootNode.fields;

  const dateField = first(fields, 'date');
  let sentDate: string | null = null;
  if (dateField !== undefined) {
    const d = parseDate(fieldValueImap(buf, dateField));
    if (d !== null) sentDate = isoWithOffset(d.time, d.tz);
  }
  const subjectField = first(fields, 'subject');
  const subject = subjectField === undefined ? '' : decodeHeaderText(fieldValueImap(buf, subjectField));
  const base = subjectField === undefined ? { key: '', replyOrForward: false } : baseSubject(subject);

  const msgIdField = first(fields, 'message-id');
  const msgId = msgIdField === undefined ? undefined : messageIds(fieldValueImap(buf, msgIdField), 1)[0];
  let references: string[] = [];
  const refField = first(fields, 'references');
  if (refField !== undefined) references = messageIds(fieldValueImap(buf, refField));
  if (references.length === 0) {
    const irt = first(fields, 'in-reply-to');
    if (irt !== undefined) references = messageIds(fieldValueImap(buf, irt), 1);
  }

  const envelopes = fields.length > 0 ? buildEnvelopes(buf, fields) : { envelope: emptyEnvelope() };
  return {
    version: MESSAGE_INFO_VERSION,
    size: idx.virtual(0, buf.length),
    rawSize: buf.length,
    bareLf: idx.bare.length > 0,
    nul: buf.indexOf(0) >= 0,
    envelope: envelopes.envelope,
    ...(envelopes.wire ? { envelopeWire: envelopes.wire } : {}),
    root,
    sentDate,
    subject,
    baseSubject: base.key,
    subjectIsReplyOrForward: base.replyOrForward,
    fromSort: mailboxKey(buf, fields, 'from'),
    toSort: mailboxKey(buf, fields, 'to'),
    ccSort: mailboxKey(buf, fields, 'cc'),
    displayFrom: displayKey(buf, fields, 'from'),
    displayTo: displayKey(buf, fields, 'to'),
    messageId: msgId === undefined ? null : t(msgId),
    references: references.map(t),
  };
}


/**
 * Whether a header field of the message — the top-level header or any part's (MIME part headers,
 * encapsulated messages' headers) — holds an 8-bit byte. RFC 6855 §4: a server announcing
 * UTF8=ACCEPT refuses such a message from an APPEND of a client that has not enabled it.
 */
export function hasEightBitHeader(raw: Uint8Array): boolean {
  const buf = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  if (!buf.some((b) => b >= 0x80)) return false;
  const walk = (n: PNode): boolean => {
    for (let i = n.start; i < n.start + n.hdrSize; i++) if (buf[i] >= 0x80) return true;
    return n.children.some(walk);
  };
  return walk(parseMime(buf));
}
