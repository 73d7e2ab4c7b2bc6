// The form in which a message APPENDed as a literal8 (RFC 3516 §4.4: binary content in APPEND) is
// stored, so that no byte is lost and BINARY[] gives back what the client sent. Dovecot's choice
// (lib-mail istream-binary-converter.c, used by its APPEND of a literal8) is followed: the body of
// every leaf part declared "Content-Transfer-Encoding: binary" is re-encoded as base64 (lines of
// 76 characters, CRLF, the last line without a line end, as Dovecot writes it) and that header
// line says base64; nothing else of the header changes. One addition: a leaf part in the
// 7bit/8bit encodings whose body holds NUL is re-encoded the same way (Dovecot stores it as is,
// and its BODY[] then shows the NULs as 0x80). Multipart and message/rfc822 parts are never
// re-encoded (RFC 2045 §6.4 and RFC 2046 §5.2.1 allow them only 7bit, 8bit or binary). NULs in a
// header can't be re-encoded and stay (BODY[] shows them as 0x80).
import { encode as base64Encode, wrap as base64Wrap } from 'nodemailer/lib/base64';
import { analyzeMessage } from './analyze.js';
import { parseHeaderBlock } from './headers.js';
import { binaryContent, findPart } from './section.js';
import type { MessageInfo, Part } from './types.js';

export interface StorableForm {
  /** The bytes to store: `raw` itself when nothing was re-encoded. */
  data: Uint8Array;
  /** The re-encoded parts, with the encoding they were declared in ("binary", "7bit", "8bit"). */
  converted: { path: number[]; declared: string }[];
}

const CTE_BASE64 = Buffer.from('Content-Transfer-Encoding: base64\r\n', 'latin1');

/**
 * Storable form of a message received as a literal8 (see the top of this file). Checked before it
 * is returned: the re-encoded message has the same parts and every re-encoded part's BINARY[]
 * content equals the original's, and BODYSTRUCTURE says base64 for it; when that doesn't hold (a
 * part whose Content-* fields don't count, for lack of MIME-Version), only the parts declared binary are re-encoded, and failing that the
 * message is stored as received.
 */
export function storableForm(raw: Uint8Array, info: MessageInfo = analyzeMessage(raw)): StorableForm {
  const buf = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const candidates: Candidate[] = [];
  walkLeaves(info.root, null, (part, bodyPath) => {
    const declared = part.encoding.toLowerCase();
    const wanted = declared === 'binary' || ((declared === '7bit' || declared === '8bit') && buf.subarray(part.bodyStart, part.bodyEnd).includes(0));
    if (!wanted) return;
    // the content BINARY[] gives (bare LFs of a 7bit/8bit part already made CRLF) is what is encoded
    const content = binaryContent(buf, info, bodyPath);
    if (content !== null && 'data' in content) candidates.push({ part, bodyPath, declared, content: content.data });
  });
  if (candidates.length === 0) return { data: raw, converted: [] };
  for (const chosen of [candidates, candidates.filter((c) => c.declared === 'binary')]) {
    if (chosen.length === 0) continue;
    const data = reencode(buf, chosen);
    if (sameContent(info, data, chosen)) return { data, converted: chosen.map((c) => ({ path: c.bodyPath, declared: c.declared })) };
  }
  return { data: raw, converted: [] };
}

interface Candidate {
  part: Part;
  /** Its number in BINARY[...]: a message's (or encapsulated message's) single part is [..., 1]. */
  bodyPath: number[];
  declared: string;
  content: Uint8Array;
}

/** `inMessage`: the number of the message/rfc822 part whose encapsulated message `p` is the root of. */
function walkLeaves(p: Part, inMessage: number[] | null, f: (p: Part, bodyPath: number[]) => void): void {
  const own = p.path.length > 0 ? p.path : [1];
  if (p.children !== undefined) p.children.forEach((c) => walkLeaves(c, null, f));
  else if (p.message !== undefined) walkLeaves(p.message.root, own, f);
  else f(p, inMessage !== null ? [...inMessage, 1] : own);
}

/** The message with each part's body base64-encoded and its Content-Transfer-Encoding saying so. */
function reencode(buf: Buffer, chosen: Candidate[]): Buffer {
  const chunks: Buffer[] = [];
  let pos = 0;
  for (const { part: p, content } of [...chosen].sort((a, b) => a.part.headerStart - b.part.headerStart)) {
    const { fields, eoh, sawEoh } = parseHeaderBlock(buf, p.headerStart, p.bodyStart);
    // The first Content-Transfer-Encoding field is the one that counts (message-part-data.c):
    // it is replaced where it stands; any later ones go, so that no reader sees two encodings.
    const ctes = fields.filter((f) => f.colon >= 0 && f.name.toLowerCase() === 'content-transfer-encoding');
    if (ctes.length > 0) {
      for (const [k, f] of ctes.entries()) {
        chunks.push(buf.subarray(pos, f.start));
        if (k === 0) chunks.push(CTE_BASE64);
        pos = f.end;
      }
    } else {
      // none (7bit by default): one is added at the end of the header
      const at = sawEoh ? eoh - (buf[eoh - 2] === 0x0d ? 2 : 1) : eoh;
      chunks.push(buf.subarray(pos, at), CTE_BASE64);
      pos = at;
      if (!sawEoh) chunks.push(Buffer.from('\r\n'));
    }
    chunks.push(buf.subarray(pos, p.bodyStart));
    chunks.push(Buffer.from(base64Wrap(base64Encode(Buffer.from(content.buffer, content.byteOffset, content.byteLength)), 76), 'latin1'));
    pos = p.bodyEnd;
  }
  chunks.push(buf.subarray(pos));
  return Buffer.concat(chunks);
}

function pathsOf(p: Part, out: string[] = []): string[] {
  out.push(`${p.path.join('.')}:${p.children ? 'multi' : p.message ? 'message' : 'leaf'}`);
  p.children?.forEach((c) => pathsOf(c, out));
  if (p.message) pathsOf(p.message.root, out);
  return out;
}

function sameContent(infoBefore: MessageInfo, after: Buffer, chosen: Candidate[]): boolean {
  const infoAfter = analyzeMessage(after);
  if (pathsOf(infoBefore.root).join() !== pathsOf(infoAfter.root).join()) return false;
  return chosen.every((c) => {
    // BODYSTRUCTURE must announce base64 (BINARY[] alone decodes a CTE that doesn't count for it)
    if (findPart(infoAfter.root, c.bodyPath)?.encoding.toLowerCase() !== 'base64') return false;
    const b = binaryContent(after, infoAfter, c.bodyPath);
    return b !== null && 'data' in b && Buffer.compare(c.content, b.data) === 0;
  });
}
