// The structure of one part of a message, as RFC 5524's URLFETCH BODYPARTSTRUCTURE gives it: the
// part's entry in BODYSTRUCTURE (RFC 9051 §7.5.2, extension data included), and the same for the
// BINARY form of the part (RFC 5524 §3: "the body part structure of the data that BINARY
// returns"), laid out as Dovecot 2.3 does: every base64 or quoted-printable leaf inside the part
// then has the size and line count of its decoded content, a message/rfc822 part the size and
// line count of its BINARY form; the other fields (types, parameters, encodings) stay as stored.
import { partStructure } from './bodystructure.js';
import { binaryContent, findPart } from './section.js';
import { decodeBase64, decodeQuotedPrintable } from './text.js';
import type { MessageInfo, Part, Sexp } from './types.js';

function lineCount(data: Uint8Array): number {
  let n = 0;
  for (let i = data.indexOf(0x0a); i >= 0; i = data.indexOf(0x0a, i + 1)) n++;
  return n;
}

/** The part as its BINARY form would be analysed; null when some leaf cannot be decoded. */
function binaryPart(raw: Buffer, info: MessageInfo, p: Part): Part | null {
  if (p.children !== undefined) {
    const children: Part[] = [];
    for (const c of p.children) {
      const b = binaryPart(raw, info, c);
      if (b === null) return null;
      children.push(b);
    }
    return { ...p, children };
  }
  if (p.message !== undefined) {
    const root = binaryPart(raw, info, p.message.root);
    const data = binaryContent(raw, info, p.path);
    if (root === null || data === null || 'error' in data) return null;
    return { ...p, size: data.data.length, lines: lineCount(data.data), message: { ...p.message, root } };
  }
  if (p.transferDecoding === 'unknown') return null;
  if (p.transferDecoding === 'none') return p;
  const body = raw.subarray(p.bodyStart, p.bodyEnd);
  const data = p.transferDecoding === 'base64' ? decodeBase64(body, true) : decodeQuotedPrintable(body, true);
  if (data === null) return null;
  return { ...p, size: data.length, ...(p.lines !== undefined ? { lines: lineCount(data) } : {}) };
}

/**
 * BODYPARTSTRUCTURE of the part `path` designates ([]: the whole message), of its stored form or
 * (`binary`) of its BINARY form; null when the part does not exist, or (binary) cannot be decoded.
 */
export function partStructureAt(raw: Uint8Array, info: MessageInfo, path: number[], binary: boolean): Sexp | null {
  const part = path.length === 0 ? info.root : findPart(info.root, path);
  if (part === null) return null;
  if (!binary) return partStructure(part, true);
  const b = binaryPart(Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength), info, part);
  return b === null ? null : partStructure(b, true);
}
