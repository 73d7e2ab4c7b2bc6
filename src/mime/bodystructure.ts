// BODY / BODYSTRUCTURE as an IMAP data tree, laid out like Dovecot's imap_bodystructure_write().
// A field whose header bytes are not valid UTF-8 goes out as those bytes (Part.wire; issue 15).
import { envelopeSexp } from './envelope.js';
import type { MessageInfo, Part, PartWire, Sexp } from './types.js';

const asBytes = (s: string): Uint8Array => Buffer.from(s, 'latin1');

/** The part with the fields `Part.wire` keeps as bytes made leaves of bytes (other strings stay text). */
function withWireLeaves(p: Part, w: PartWire): { [K in keyof PartWire]-?: unknown } & Part {
  const bytes = (k: keyof PartWire, v: unknown): unknown => {
    if (!(k in w)) return v;
    const conv = (x: unknown): unknown => (typeof x === 'string' ? asBytes(x) : Array.isArray(x) ? x.map(conv) : x);
    return conv(w[k]);
  };
  return { ...p, type: bytes('type', p.type), subtype: bytes('subtype', p.subtype), params: bytes('params', p.params), id: bytes('id', p.id), description: bytes('description', p.description), encoding: bytes('encoding', p.encoding), md5: bytes('md5', p.md5), disposition: bytes('disposition', p.disposition), language: bytes('language', p.language), location: bytes('location', p.location) } as never;
}

function paramList(ps: readonly (readonly Sexp[])[]): Sexp {
  if (ps.length === 0) return null;
  const out: Sexp[] = [];
  for (const [k, v] of ps) out.push(k, v);
  return out;
}

function commonExt(p: Part): Sexp[] {
  return [p.disposition === null ? null : [p.disposition[0], paramList(p.disposition[1])], p.language === null ? null : p.language, p.location];
}

const EMPTY_BODY: Sexp[] = ['text', 'plain', ['charset', 'us-ascii'], null, null, '7bit', 0, 0];

/**
 * The body structure of one part (without the surrounding list of a multipart child). A part with
 * `wire` fields is first given byte leaves for them (Sexp strings and Uint8Arrays mix freely).
 */
export function partStructure(part: Part, extensible: boolean): Sexp[] {
  const p = part.wire === undefined ? part : (withWireLeaves(part, part.wire) as unknown as Part);
  if (p.children !== undefined) {
    const out: Sexp[] = [];
    if (p.children.length === 0) {
      out.push(extensible ? [...EMPTY_BODY, null, null, null, null] : [...EMPTY_BODY]);
    } else {
      for (const c of p.children) out.push(partStructure(c, extensible));
    }
    out.push(p.subtype);
    if (extensible) out.push(paramList(p.params), ...commonExt(p));
    return out;
  }
  const out: Sexp[] = [p.type, p.subtype, paramList(p.params), p.id, p.description, p.encoding, p.size];
  if (p.message !== undefined) {
    out.push(envelopeSexp(p.message.envelope, p.message.envelopeWire), partStructure(p.message.root, extensible), p.lines ?? 0);
  } else if (p.lines !== undefined) {
    out.push(p.lines);
  }
  if (extensible) out.push(p.md5, ...commonExt(p));
  return out;
}

/** FETCH BODYSTRUCTURE (extensible = true) or BODY (false) of the message. */
export function bodyStructure(info: MessageInfo, extensible: boolean): Sexp {
  return partStructure(info.root, extensible);
}
