// BODY / BODYSTRUCTURE as an IMAP data tree, laid out like Dovecot's imap_bodystructure_write().
// A field whose header bytes are not valid UTF-8 goes out as those bytes (Part.wire; issue 15).
import { envelopeSexp } from './envelope.js';
import type { MessageInfo, Part, PartWire, Sexp } from './types.js';

type Leaf = (s: string) => Sexp;
const asText: Leaf = (s) => s;
const asBytes: Leaf = (s) => Buffer.from(s, 'latin1');

/** The part's field `k` as sent: its text, or the stored bytes where `Part.wire` keeps them. */
function field<K extends keyof PartWire>(p: Part, k: K): { v: Part[K]; leaf: Leaf } {
  if (p.wire !== undefined && k in p.wire) return { v: p.wire[k] as Part[K], leaf: asBytes };
  return { v: p[k], leaf: asText };
}

function str(p: Part, k: 'type' | 'subtype' | 'id' | 'description' | 'encoding' | 'md5' | 'location'): Sexp {
  const { v, leaf } = field(p, k);
  return v === null ? null : leaf(v);
}

function paramsSexp(ps: [string, string][], leaf: Leaf): Sexp {
  if (ps.length === 0) return null;
  const out: Sexp[] = [];
  for (const [k, v] of ps) out.push(leaf(k), leaf(v));
  return out;
}

function commonExt(p: Part): Sexp[] {
  const d = field(p, 'disposition');
  const l = field(p, 'language');
  return [d.v === null ? null : [d.leaf(d.v[0]), paramsSexp(d.v[1], d.leaf)], l.v === null ? null : l.v.map(l.leaf), str(p, 'location')];
}

function params(p: Part): Sexp {
  const { v, leaf } = field(p, 'params');
  return paramsSexp(v, leaf);
}

const EMPTY_BODY: Sexp[] = ['text', 'plain', ['charset', 'us-ascii'], null, null, '7bit', 0, 0];

/** The body structure of one part (without the surrounding list of a multipart child). */
export function partStructure(p: Part, extensible: boolean): Sexp[] {
  if (p.children !== undefined) {
    const out: Sexp[] = [];
    if (p.children.length === 0) {
      out.push(extensible ? [...EMPTY_BODY, null, null, null, null] : [...EMPTY_BODY]);
    } else {
      for (const c of p.children) out.push(partStructure(c, extensible));
    }
    out.push(str(p, 'subtype'));
    if (extensible) out.push(params(p), ...commonExt(p));
    return out;
  }
  const out: Sexp[] = [str(p, 'type'), str(p, 'subtype'), params(p), str(p, 'id'), str(p, 'description'), str(p, 'encoding'), p.size];
  if (p.message !== undefined) {
    out.push(envelopeSexp(p.message.envelope, p.message.envelopeWire), partStructure(p.message.root, extensible), p.lines ?? 0);
  } else if (p.lines !== undefined) {
    out.push(p.lines);
  }
  if (extensible) out.push(str(p, 'md5'), ...commonExt(p));
  return out;
}

/** FETCH BODYSTRUCTURE (extensible = true) or BODY (false) of the message. */
export function bodyStructure(info: MessageInfo, extensible: boolean): Sexp {
  return partStructure(info.root, extensible);
}
