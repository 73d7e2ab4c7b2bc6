// FETCH responses (RFC 9051 §6.4.5, §7.5.2; RFC 3516 BINARY). Structures come from the message
// index; body sections that are one contiguous byte range are streamed from the message file,
// so a partial fetch of a large message reads only the bytes asked for.
import { bodyStructure, envelopeSexp, sectionBytes, sectionRange, binaryContent, type Sexp } from '../mime/index.js';
import type { MessageFiles } from '../store/message-files.js';
import type { Store } from '../store/types.js';
import { no } from './errors.js';
import type { MessageIndex } from '../mail/message-index.js';
import { headerString, imapDate, nstring, type StringOptions } from './protocol/encoder.js';
import type { FetchAttribute, Section } from './protocol/types.js';
import type { ViewMessage } from './view.js';

export interface FetchContext {
  store: Store;
  blobs: MessageFiles;
  index: MessageIndex;
  write(data: string | Buffer): void;
  drainWait(): Promise<void>;
  /** The session takes UTF-8 (ENABLE UTF8=ACCEPT or IMAP4rev2): header strings are sent as UTF-8. */
  utf8: boolean;
}

/**
 * Serialises an IMAP data tree: text strings quoted, or literals when needed (UTF-8 quoted
 * strings only for a UTF-8 session); header bytes (Uint8Array) by headerString — exactly as
 * stored for an IMAP4rev1 session, as UTF-8 for a UTF-8 session.
 */
export function sexpToBytes(v: Sexp, opts: StringOptions = {}): Buffer {
  const w = { text: '', chunks: [] as Buffer[] };
  writeSexp(v, opts, w);
  if (w.chunks.length === 0) return Buffer.from(w.text, 'utf8');
  w.chunks.push(Buffer.from(w.text, 'utf8'));
  return Buffer.concat(w.chunks);
}

/** Text is gathered in a string (UTF-8 once done); raw header bytes in a literal end it as a chunk. */
function writeSexp(v: Sexp, opts: StringOptions, w: { text: string; chunks: Buffer[] }): void {
  if (v === null) w.text += 'NIL';
  else if (typeof v === 'number') w.text += String(v);
  else if (typeof v === 'string') w.text += nstring(v, opts);
  else if (v instanceof Uint8Array) {
    const b = headerString(v, opts);
    if (opts.utf8 || b[0] === 0x22) w.text += b.toString(opts.utf8 ? 'utf8' : 'latin1'); // UTF-8 text, or a 7-bit quoted string
    else {
      w.chunks.push(Buffer.from(w.text, 'utf8'), b);
      w.text = '';
    }
  } else {
    // RFC 9051 §9: body-type-mpart is 1*body with no separator, and an address list is
    // "(" 1*address ")": lists at the head of a list are written side by side.
    w.text += '(';
    let leading = true;
    v.forEach((e, i) => {
      const isList = Array.isArray(e);
      if (i > 0 && !(leading && isList)) w.text += ' ';
      if (!isList) leading = false;
      writeSexp(e, opts, w);
    });
    w.text += ')';
  }
}

/** sexpToBytes as text (UTF-8), for structures whose strings are valid UTF-8 (tests, logs). */
export function sexpToString(v: Sexp, opts: StringOptions = {}): string {
  return sexpToBytes(v, opts).toString('utf8');
}

function sectionName(s: Section): string {
  const p = 'part' in s && s.part.length ? s.part.join('.') : '';
  switch (s.kind) {
    case 'full':
      return '';
    case 'part':
      return p;
    case 'header':
    case 'text':
    case 'mime':
      return (p ? p + '.' : '') + s.kind.toUpperCase();
    case 'header.fields':
      return `${p ? p + '.' : ''}HEADER.FIELDS${s.not ? '.NOT' : ''} (${s.fields.map((f) => f.toUpperCase()).join(' ')})`;
  }
}

async function readRange(blobs: MessageFiles, id: string, start: number, end: number): Promise<Buffer> {
  if (end <= start) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const c of blobs.stream(id, { start, end: end - 1 })) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function fetchMessage(ctx: FetchContext, seq: number, m: ViewMessage, attrs: FetchAttribute[], flagsOut: string[]): Promise<void> {
  // One entry per FETCH item: its chunks (a literal's data follows its "{n}\r\n" header).
  const parts: (string | Buffer)[][] = [];
  let raw: Buffer | undefined;
  const opts: StringOptions = { utf8: ctx.utf8 };
  const info = attrs.some((a) => !['uid', 'flags', 'internaldate', 'modseq'].includes(a.kind)) ? await ctx.index.ensure(m.blobId) : undefined;
  const getRaw = async () => (raw ??= await ctx.blobs.read(m.blobId));
  const literal = (name: string, data: Buffer, binary = false) => {
    parts.push([`${name} ${binary ? '~' : ''}{${data.length}}\r\n`, data]);
  };
  const item = (text: string) => parts.push([text]);
  const structure = (name: string, v: Sexp) => parts.push([Buffer.concat([Buffer.from(`${name} `), sexpToBytes(v, opts)])]);
  for (const a of attrs) {
    switch (a.kind) {
      case 'uid':
        item(`UID ${m.uid}`);
        break;
      case 'flags':
        item(`FLAGS (${flagsOut.join(' ')})`);
        break;
      case 'internaldate':
        item(`INTERNALDATE "${imapDate(new Date(m.internalDate))}"`);
        break;
      case 'rfc822.size':
        // Sizes count line ends as CRLF, consistent with BODY[] (RFC 9051 §6.4.5).
        item(`RFC822.SIZE ${info?.size ?? m.size}`);
        break;
      case 'modseq':
        item(`MODSEQ (${m.modseq})`);
        break;
      // Header strings: the stored bytes for IMAP4rev1, UTF-8 for a UTF-8 session (issue 15).
      case 'envelope':
        structure('ENVELOPE', envelopeSexp(info!.envelope, info!.envelopeWire));
        break;
      case 'bodystructure':
        structure('BODYSTRUCTURE', bodyStructure(info!, true));
        break;
      case 'body-structure':
        structure('BODY', bodyStructure(info!, false));
        break;
      case 'rfc822':
        literal('RFC822', await getRaw());
        break;
      case 'rfc822.header':
        literal('RFC822.HEADER', Buffer.from(sectionBytes(await getRaw(), info!, { kind: 'header', part: [] }) ?? Buffer.alloc(0)));
        break;
      case 'rfc822.text':
        literal('RFC822.TEXT', Buffer.from(sectionBytes(await getRaw(), info!, { kind: 'text', part: [] }) ?? Buffer.alloc(0)));
        break;
      case 'body': {
        const name = `BODY[${sectionName(a.section)}]${a.partial ? `<${a.partial.offset}>` : ''}`;
        const range = sectionRange(info!, a.section as any);
        let data: Buffer;
        if (range) {
          let { start, end } = range;
          if (a.partial) {
            start = Math.min(start + a.partial.offset, end);
            end = Math.min(start + a.partial.length, end);
          }
          data = await readRange(ctx.blobs, m.blobId, start, end);
        } else {
          const full = sectionBytes(await getRaw(), info!, a.section as any);
          let d = Buffer.from(full ?? Buffer.alloc(0));
          if (a.partial) d = d.subarray(Math.min(a.partial.offset, d.length), Math.min(a.partial.offset + a.partial.length, d.length));
          data = d;
        }
        literal(name, data);
        break;
      }
      case 'binary':
      case 'binary.size': {
        const r = binaryContent(await getRaw(), info!, a.part);
        // RFC 3516 §4.3: UNKNOWN-CTE for an encoding we cannot decode; PARSE for broken data.
        if (r && 'error' in r) throw no(r.error, r.error === 'PARSE' ? 'Invalid data in MIME part' : 'unknown Content-Transfer-Encoding');
        const data = Buffer.from(r?.data ?? Buffer.alloc(0));
        if (a.kind === 'binary.size') {
          item(`BINARY.SIZE[${a.part.join('.')}] ${data.length}`);
          break;
        }
        let d = data;
        if (a.partial) d = d.subarray(Math.min(a.partial.offset, d.length), Math.min(a.partial.offset + a.partial.length, d.length));
        // RFC 3516 §4.3: literal8 when the content has NUL bytes.
        literal(`BINARY[${a.part.join('.')}]${a.partial ? `<${a.partial.offset}>` : ''}`, d, d.includes(0));
        break;
      }
      default:
        break;
    }
  }
  // Items joined by spaces.
  const out: (string | Buffer)[] = [`* ${seq} FETCH (`];
  parts.forEach((p, i) => {
    if (i > 0) out.push(' ');
    out.push(...p);
  });
  out.push(')\r\n');
  for (const o of out) ctx.write(o);
  await ctx.drainWait();
}
