// The MIME tree walk: a port of Dovecot 2.3.21's lib-mail/message-parser.c state machine, run over
// the whole message in memory. It records, for every part, its physical position, header size and
// body size exactly as Dovecot's message_part does (boundary prefix matching with the longest
// match among the open boundaries, the [CR]LF before a boundary line belonging to the boundary,
// preamble/epilogue bytes in the multipart's body, a header cut short by a boundary line, parts
// without Content-Type under multipart/digest being message/rfc822, LF-only lines, limits of 100
// nested and 10000 total parts). Offsets are physical byte offsets into the raw message.
import { fieldValueImap, isLwsp, nameIs, newField, readLine, type RawField } from './headers.js';
import { parseContentTypeValue } from './rfc822.js';

export const F_MULTIPART = 1;
export const F_DIGEST = 2;
export const F_RFC822 = 4;
export const F_TEXT = 8;
export const F_IS_MIME = 16;
export const F_OVERFLOW = 32;

const MAX_NESTED = 100;
const MAX_TOTAL = 10000;
const BOUNDARY_STRING_MAX_LEN = 80;
const BOUNDARY_END_MAX_LEN = BOUNDARY_STRING_MAX_LEN + 2 + 2;

export interface PNode {
  parent: PNode | null;
  children: PNode[];
  /** physical_pos: where the part's header starts. */
  start: number;
  hdrSize: number;
  bodySize: number;
  flags: number;
  fields: RawField[];
}

interface Boundary {
  part: PNode;
  b: Uint8Array;
  epilogueFound: boolean;
}

const enum State {
  Header,
  ToBoundary,
  ToEof,
  SkipBoundaryLine,
  Rfc822Init,
  MimeHeaderInit,
  Done,
}

class MimeParser {
  pos = 0;
  readonly end: number;
  readonly root: PNode;
  part: PNode;
  /** Open boundaries, newest last. */
  boundaries: Boundary[] = [];
  lastChrLf = false;
  nested = 0;
  total = 1;
  state: State = State.Header;

  constructor(readonly buf: Uint8Array) {
    this.end = buf.length;
    this.root = newPart(null, 0);
    this.part = this.root;
  }

  run(): PNode {
    let guard = 0;
    while (this.state !== State.Done) {
      if (++guard > 10_000_000) break; // cannot happen: every state consumes input or ends
      switch (this.state) {
        case State.Header:
          this.parseHeader();
          break;
        case State.ToBoundary:
          this.bodyToBoundary();
          break;
        case State.ToEof:
          this.addBlock(this.pos, this.end);
          this.pos = this.end;
          this.state = State.Done;
          break;
        case State.SkipBoundaryLine:
          this.skipBoundaryLine();
          break;
        case State.Rfc822Init:
          this.appendPart();
          this.state = State.Header;
          break;
        case State.MimeHeaderInit:
          this.appendPart();
          this.part.flags |= F_IS_MIME;
          this.state = State.Header;
          break;
      }
    }
    while (this.part.parent !== null) this.finishPart();
    return this.root;
  }

  private addBlock(from: number, to: number): void {
    if (to <= from) return;
    this.part.bodySize += to - from;
    this.lastChrLf = this.buf[to - 1] === 0x0a;
  }

  private appendPart(): void {
    const parent = this.part;
    const child = newPart(parent, parent.start + parent.hdrSize + parent.bodySize);
    parent.children.push(child);
    this.part = child;
    this.nested++;
    this.total++;
  }

  private finishPart(): void {
    const p = this.part;
    const parent = p.parent!;
    parent.bodySize += p.hdrSize + p.bodySize;
    this.nested--;
    this.part = parent;
  }

  private tooManyNested(): boolean {
    return this.nested + 1 >= MAX_NESTED;
  }

  /** boundary_line_find() at a line start L; null when the line isn't an open boundary. */
  private boundaryLineFind(L: number): Boundary | null {
    const buf = this.buf;
    if (this.end - L < 2) return null;
    if (buf[L] !== 0x2d || buf[L + 1] !== 0x2d) return null;
    if (this.total >= MAX_TOTAL) {
      this.part.flags |= F_OVERFLOW;
      return null;
    }
    const data = L + 2;
    const size = this.end - data;
    const lf = buf.indexOf(0x0a, data);
    let findSize = size;
    let trailingDashes = false;
    if (lf >= 0) {
      findSize = lf - data;
      if (findSize > 0 && buf[data + findSize - 1] === 0x0d) findSize--;
      if (findSize > 2 && buf[data + findSize - 1] === 0x2d && buf[data + findSize - 2] === 0x2d) trailingDashes = true;
    } else if (findSize > BOUNDARY_END_MAX_LEN) {
      findSize = BOUNDARY_END_MAX_LEN;
    }
    let best: Boundary | null = null;
    for (let i = this.boundaries.length - 1; i >= 0; i--) {
      const b = this.boundaries[i];
      const len = b.b.length;
      if (len <= findSize && bytesEqual(buf, data, b.b) && (best === null || best.b.length < len)) {
        best = b;
        if (len === findSize || (len === findSize - 2 && trailingDashes)) break;
      }
    }
    if (best === null) return null;
    const len = best.b.length;
    best.epilogueFound = size >= len + 2 && buf[data + len] === 0x2d && buf[data + len + 1] === 0x2d;
    return best;
  }

  private parseHeader(): void {
    const buf = this.buf;
    const part = this.part;
    const hdrStart = this.pos;
    let lastBoundary: string | null = null;
    let seenContentType = false;
    let multipart = false;
    let prevNl = 0;
    let cur: RawField | null = null;
    let cut = false;

    let eoh = false;
    for (;;) {
      const pos = this.pos;
      const haveData = pos < this.end;
      if (haveData && lastBoundary !== null && (part.flags & F_IS_MIME) !== 0 && isEohAt(buf, pos, this.end)) {
        if (!this.tooManyNested()) {
          this.boundaries.push({ part, b: Buffer.from(lastBoundary, 'latin1'), epilogueFound: false });
          multipart = true;
          lastBoundary = null;
        } else {
          part.flags |= F_OVERFLOW;
          part.flags &= ~F_MULTIPART;
        }
      }
      // A boundary line ends the header, even right after its blank line: the newline before the
      // boundary line belongs to the boundary (then the part has no blank line and no body).
      if (haveData && this.boundaries.length > 0) {
        const b = this.boundaryLineFind(pos);
        if (b !== null && b.part !== part) {
          cut = true;
          break;
        }
      }
      if (eoh || !haveData) break;
      const line = readLine(buf, pos, this.end);
      const continued = cur !== null && prevNl !== 0 && isLwsp(buf[pos]);
      if (!continued && line.contentEnd === pos && line.nl !== 0) {
        // the empty line ending the header
        this.pos = line.next;
        prevNl = line.nl;
        eoh = true;
        continue;
      }
      if (continued) {
        cur!.lines.push([pos, line.contentEnd]);
        cur!.end = line.next;
      } else {
        cur = newField(buf, pos, line.contentEnd, line.next);
        part.fields.push(cur);
        if (nameIs(cur, 'mime-version') || nameIs(cur, 'content-type')) part.flags |= F_IS_MIME;
      }
      this.pos = line.next;
      prevNl = line.nl;
      const continues = line.nl !== 0 && line.next < this.end && isLwsp(buf[line.next]);
      if (!continues && !seenContentType && nameIs(cur!, 'content-type')) {
        seenContentType = true;
        const ct = parseContentTypeValue(fieldValueImap(buf, cur!));
        const lc = ct.typeSubtype.toLowerCase();
        if (lc === 'message/rfc822') part.flags |= F_RFC822;
        else if (lc.startsWith('text') && (lc.length === 4 || lc[4] === '/')) part.flags |= F_TEXT;
        else if (lc.startsWith('multipart/')) {
          part.flags |= F_MULTIPART;
          if (lc.slice(10) === 'digest') part.flags |= F_DIGEST;
        }
        if (ct.ok && (part.flags & F_MULTIPART) !== 0 && lastBoundary === null) {
          const b = ct.params.find(([k]) => k.toLowerCase() === 'boundary');
          if (b !== undefined) lastBoundary = b[1].slice(0, BOUNDARY_STRING_MAX_LEN);
        }
      }
    }

    part.hdrSize = this.pos - hdrStart;
    if (cut && prevNl > 0 && part.parent !== null) {
      part.hdrSize -= prevNl;
      part.parent.bodySize += prevNl;
    }

    // end of headers
    if ((part.flags & F_IS_MIME) === 0) part.flags = 0;
    if (!seenContentType || (part.flags & F_IS_MIME) === 0) {
      if (part.parent !== null && (part.parent.flags & F_DIGEST) !== 0) part.flags |= F_RFC822;
      else part.flags |= F_TEXT;
    }
    this.lastChrLf = true;
    if (multipart) {
      this.state = State.ToBoundary;
    } else if ((part.flags & F_RFC822) === 0) {
      this.state = this.boundaries.length > 0 ? State.ToBoundary : State.ToEof;
    } else if (!this.tooManyNested() && this.total < MAX_TOTAL) {
      this.state = State.Rfc822Init;
    } else {
      part.flags |= F_OVERFLOW;
      part.flags &= ~F_RFC822;
      this.state = this.boundaries.length > 0 ? State.ToBoundary : State.ToEof;
    }
  }

  private bodyToBoundary(): void {
    const buf = this.buf;
    const start = this.pos;
    if (start >= this.end) {
      this.state = State.Done;
      return;
    }
    if (this.lastChrLf) {
      const b = this.boundaryLineFind(start);
      if (b !== null) {
        this.partFinish(b, start, true, start);
        return;
      }
    }
    let from = start;
    for (;;) {
      const lf = findLineStartingWithDashes(buf, from, this.end);
      if (lf < 0) {
        this.addBlock(start, this.end);
        this.pos = this.end;
        this.state = State.Done;
        return;
      }
      const L = lf + 1;
      const b = this.boundaryLineFind(L);
      if (b !== null) {
        let nlStart = lf;
        if (lf > start && buf[lf - 1] === 0x0d) nlStart--;
        this.addBlock(start, nlStart);
        this.partFinish(b, L, false, nlStart);
        return;
      }
      from = L;
    }
  }

  private partFinish(b: Boundary, L: number, firstLine: boolean, nlStart: number): void {
    while (this.part !== b.part) this.finishPart();
    const epilogue = b.epilogueFound;
    const idx = this.boundaries.indexOf(b);
    // the closing delimiter removes this boundary; any boundary opened after it is forgotten
    this.boundaries.length = epilogue ? idx : idx + 1;
    const blockStart = firstLine ? L : nlStart;
    const lineSize = (firstLine ? 0 : L - nlStart) + 2 + b.b.length + (epilogue ? 2 : 0);
    this.addBlock(blockStart, blockStart + lineSize);
    this.pos = blockStart + lineSize;
    this.state = State.SkipBoundaryLine;
  }

  private skipBoundaryLine(): void {
    if (this.pos >= this.end) {
      this.state = State.Done;
      return;
    }
    const lf = this.buf.indexOf(0x0a, this.pos);
    if (lf < 0) {
      this.addBlock(this.pos, this.end);
      this.pos = this.end;
      this.state = State.Done;
      return;
    }
    this.addBlock(this.pos, lf + 1);
    this.pos = lf + 1;
    const top = this.boundaries.length > 0 ? this.boundaries[this.boundaries.length - 1] : null;
    if (top === null || top.part !== this.part) {
      this.state = top !== null ? State.ToBoundary : State.ToEof;
    } else {
      this.state = State.MimeHeaderInit;
    }
  }
}

function newPart(parent: PNode | null, start: number): PNode {
  return { parent, children: [], start, hdrSize: 0, bodySize: 0, flags: 0, fields: [] };
}

function isEohAt(buf: Uint8Array, pos: number, end: number): boolean {
  if (buf[pos] === 0x0a) return true;
  return buf[pos] === 0x0d && pos + 1 < end && buf[pos + 1] === 0x0a;
}

function bytesEqual(buf: Uint8Array, at: number, b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (buf[at + i] !== b[i]) return false;
  return true;
}

const LF_DASH_DASH = Buffer.from('\n--', 'latin1');

/** The LF (at or after `from`) that ends a line followed by one starting with "--", or -1. */
function findLineStartingWithDashes(buf: Uint8Array, from: number, end: number): number {
  const i = (buf as Buffer).indexOf(LF_DASH_DASH, from);
  return i < 0 || i >= end ? -1 : i;
}

export function parseMime(buf: Uint8Array): PNode {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return new MimeParser(b).run();
}
