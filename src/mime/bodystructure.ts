// BODY / BODYSTRUCTURE as an IMAP data tree, laid out like Dovecot's imap_bodystructure_write().
import { envelopeSexp } from './envelope.js';
import type { MessageInfo, Part, Sexp } from './types.js';

function paramsSexp(ps: [string, string][]): Sexp {
  if (ps.length === 0) return null;
  const out: Sexp[] = [];
  for (const [k, v] of ps) out.push(k, v);
  return out;
}

function commonExt(p: Part): Sexp[] {
  return [
    p.disposition === null ? null : [p.disposition[0], paramsSexp(p.disposition[1])],
    p.language === null ? null : p.language,
    p.location,
  ];
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
    out.push(p.subtype);
    if (extensible) out.push(paramsSexp(p.params), ...commonExt(p));
    return out;
  }
  const out: Sexp[] = [p.type, p.subtype, paramsSexp(p.params), p.id, p.description, p.encoding, p.size];
  if (p.message !== undefined) {
    out.push(envelopeSexp(p.message.envelope), partStructure(p.message.root, extensible), p.lines ?? 0);
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
