// Incremental parser of the IMAP client byte stream: frames commands (lines, synchronizing and
// non-synchronizing literals) and hands each complete command to the grammar (grammar.ts).
// Pure: no sockets, no fs, no timers. Any chunking of the input gives the same events.
//
// Framing rules:
// - RFC 9051 §2.2.1 / §4.3: a line ending with "{n}" (synchronizing literal) is followed by n
//   octets only after the server's "+" continuation; before sending it the command prefix is
//   checked, and a BAD (command event, ok:false) is emitted instead when it is already invalid —
//   "to reject the command and prevent the client from sending any more of the command"
//   (RFC 3501 §2.2.1). A literal over maxLiteralSize gives 'literal-too-big' (NO [TOOBIG]).
// - RFC 7888: "{n+}" is a non-synchronizing literal; its n octets follow at once. They are always
//   consumed as literal data (never read as commands — that would allow command injection),
//   whatever was announced: up to 4096 octets they are accepted (LITERAL-, RFC 7888 §4, part of
//   IMAP4rev2, RFC 9051 §4.3); larger ones need LITERAL+ (setCapabilities) and maxLiteralSize,
//   else the command is rejected with BAD [TOOBIG] and the octets are discarded.
// - RFC 3516 / RFC 4466 §3: "~{n}" / "~{n+}" is a literal8 (binary), accepted by the grammar
//   only as APPEND message data and only with setCapabilities({ binary: true }).
// - A line that is too long (outside literals) gives an immediate error and the rest of the
//   command is discarded (still honouring literal framing) up to its end.
// - The command ends at the first CRLF (LF alone is tolerated) that is not announcing a literal;
//   an empty line between commands is ignored. A line ending in "{n}"/"{n+}" always announces a
//   literal, even after an unbalanced DQUOTE: a valid line ends so only when announcing one, and
//   for an invalid line this is the safe reading — a synchronizing literal is refused before the
//   "+" anyway, and the octets of a non-synchronizing one are never read as commands.

import { INCOMPLETE, parseCommand, tagOf, type CommandInput } from './grammar.js';
import type { ParsedCommand } from './types.js';

export interface ParserOptions {
  /** Largest number of non-literal octets in one command (all its lines), default 65536. */
  maxLineLength?: number;
  /** Largest literal, default 64 MiB. */
  maxLiteralSize?: number;
  /**
   * Commands after which push() stops and keeps the following input buffered until the next
   * push() or resume(), so the server can switch modes first (expectLine for IDLE/AUTHENTICATE;
   * reset() after STARTTLS so plaintext pipelined before the TLS handshake is dropped, the
   * STARTTLS command-injection class of attacks). Default ['STARTTLS', 'AUTHENTICATE', 'IDLE'];
   * a conforming client sends nothing after these before the server answers.
   */
  pauseAfter?: readonly string[];
}

export type ParserEvent =
  /** A complete command (with its literals), or a precise syntax error (tag known when possible). */
  | { type: 'command'; parsed: ParsedCommand }
  /** A synchronizing literal {n} was announced and accepted: the server must now send "+ <text>\r\n". */
  | { type: 'continue'; text: string }
  /** A synchronizing literal over the limit: answer `tag NO [TOOBIG]`; the command is over (RFC 7888 §4, RFC 9051 §7.1). */
  | { type: 'literal-too-big'; tag: string | null; size: number }
  /** The raw line requested by expectLine() (IDLE's DONE, an AUTHENTICATE response), without CRLF. */
  | { type: 'line'; text: string };

export interface ParserCapabilities {
  /** LITERAL+ announced (RFC 7888 §3): non-synchronizing literals of any size up to maxLiteralSize. */
  literalPlus?: boolean;
  /** UTF8=ACCEPT enabled (RFC 6855 §3): UTF-8 allowed in quoted strings. */
  utf8Accept?: boolean;
  /** BINARY announced (RFC 3516): literal8 allowed in APPEND. */
  binary?: boolean;
}

const LF = 0x0a;
const CR = 0x0d;
/** RFC 7888 §4 (LITERAL-) / RFC 9051 §4.3: non-synchronizing literals up to 4096 octets. */
const LITERAL_MINUS_MAX = 4096;
const TAIL = 40; // octets kept from a discarded line, enough to recognise a literal announcement
const EMPTY = Buffer.alloc(0);

/** A copy of buf[s, e) as a Buffer (the caller may reuse its chunk after push() returns). */
function copy(buf: Uint8Array, s: number, e: number): Buffer {
  return Buffer.from(buf.subarray(s, e));
}

function concat(chunks: Buffer[], total: number): Buffer {
  if (chunks.length === 1) return chunks[0];
  return Buffer.concat(chunks, total);
}

/** Recognises a literal announcement at the end of a line: ["~"] "{" 1*DIGIT ["+"] "}". */
function literalAnnouncement(line: Uint8Array): { size: number; sync: boolean } | null {
  let p = line.length - 1;
  if (p < 0 || line[p] !== 0x7d) return null;
  p--;
  let sync = true;
  if (p >= 0 && line[p] === 0x2b) {
    sync = false;
    p--;
  }
  const end = p + 1;
  while (p >= 0 && line[p] >= 0x30 && line[p] <= 0x39) p--;
  if (p + 1 === end || p < 0 || line[p] !== 0x7b) return null;
  let digits = '';
  for (let i = p + 1; i < end; i++) digits += String.fromCharCode(line[i]);
  return { size: Number(digits), sync };
}

/** One Set per list of pausing commands, shared by every parser (one per connection) given it. */
const pauseSets = new Map<string, ReadonlySet<string>>();
function pauseSet(names: readonly string[]): ReadonlySet<string> {
  const key = names.join(' ');
  let s = pauseSets.get(key);
  if (!s) pauseSets.set(key, (s = new Set(names)));
  return s;
}

export class CommandParser {
  private readonly maxLine: number;
  private readonly maxLiteral: number;
  private readonly pauseAfter: ReadonlySet<string>;
  private caps = { literalPlus: false, utf8Accept: false, binary: false };

  /** Input received but not processed yet (after a pause). */
  private queue: Uint8Array[] = [];

  // ---- the command being framed
  private lines: Buffer[] = [];
  private literals: Buffer[] = [];
  private cur: Buffer[] = []; // chunks of the current line
  private curLen = 0;
  private textBytes = 0; // non-literal octets of this command so far
  private litRemaining = 0; // > 0: inside literal data
  private litChunks: Buffer[] = [];
  private litLen = 0;
  /** The command was already answered (line too long, literal too big): skip it to its end. */
  private discard = false;
  private tail: Buffer = EMPTY; // last octets of the current line while discarding

  // ---- line mode
  private rawLine = false; // the current line is delivered raw
  private wantLine = false; // the line after the current command is delivered raw

  constructor(opts: ParserOptions = {}) {
    this.maxLine = opts.maxLineLength ?? 65536;
    this.maxLiteral = opts.maxLiteralSize ?? 64 * 1024 * 1024;
    this.pauseAfter = pauseSet(opts.pauseAfter ?? ['STARTTLS', 'AUTHENTICATE', 'IDLE']);
  }

  /** What the session has announced or enabled; applies to commands completed from now on. */
  setCapabilities(c: ParserCapabilities): void {
    if (c.literalPlus !== undefined) this.caps.literalPlus = c.literalPlus;
    if (c.utf8Accept !== undefined) this.caps.utf8Accept = c.utf8Accept;
    if (c.binary !== undefined) this.caps.binary = c.binary;
  }

  /**
   * The next CRLF-terminated line is delivered raw as {type:'line'} (IDLE's DONE, RFC 2177 §3;
   * an AUTHENTICATE response, RFC 9051 §6.2.2), then the parser is back in command mode. Called
   * between commands (normally right after the IDLE/AUTHENTICATE event) it applies to the line
   * being received; called while a command is being framed, to the line after that command.
   */
  expectLine(): void {
    if (this.litRemaining === 0 && this.lines.length === 0 && !this.discard) this.rawLine = true;
    else this.wantLine = true;
  }

  /** Feeds client octets; returns the events they complete (stops early after a pauseAfter command). */
  push(chunk: Uint8Array): ParserEvent[] {
    // kept beyond this call only when input is already queued (paused): copy it then
    if (chunk.length > 0) this.queue.push(this.queue.length > 0 ? copy(chunk, 0, chunk.length) : chunk);
    return this.run();
  }

  /** Continues with input kept after a pause (same as push of an empty chunk). */
  resume(): ParserEvent[] {
    return this.run();
  }

  /** Octets received and not yet processed (kept after a pause). */
  get pendingBytes(): number {
    let n = 0;
    for (const q of this.queue) n += q.length;
    return n;
  }

  /** Octets of literal data still expected by the command being framed (0 outside literals). */
  get literalRemaining(): number {
    return this.litRemaining;
  }

  /** True while a command is partly received (some of its octets arrived, its end has not). */
  get inCommand(): boolean {
    return this.lines.length > 0 || this.curLen > 0 || this.litRemaining > 0 || this.discard || this.tail.length > 0;
  }

  /** True when the next line will be delivered raw (expectLine was called and the line has not ended). */
  get expectingLine(): boolean {
    return this.rawLine || this.wantLine;
  }

  /** Forgets everything: buffered input, the command being framed, line mode (e.g. after STARTTLS). */
  reset(): void {
    this.queue = [];
    this.rawLine = false;
    this.wantLine = false;
    this.endCommand();
  }

  private run(): ParserEvent[] {
    const out: ParserEvent[] = [];
    while (this.queue.length > 0) {
      const buf = this.queue[0];
      const { used, paused } = this.consume(buf, out);
      if (used >= buf.length) this.queue.shift();
      else this.queue[0] = copy(buf, used, buf.length); // a copy: the caller may reuse its chunk
      if (paused) break;
    }
    return out;
  }

  private consume(buf: Uint8Array, out: ParserEvent[]): { used: number; paused: boolean } {
    let i = 0;
    while (i < buf.length) {
      if (this.litRemaining > 0) {
        const n = Math.min(this.litRemaining, buf.length - i);
        if (!this.discard) {
          this.litChunks.push(copy(buf, i, i + n));
          this.litLen += n;
        }
        this.litRemaining -= n;
        i += n;
        if (this.litRemaining === 0) this.endLiteral();
        continue;
      }
      const lf = buf.indexOf(LF, i);
      const end = lf === -1 ? buf.length : lf;
      this.appendText(buf, i, end, out);
      if (lf === -1) return { used: buf.length, paused: false };
      i = lf + 1;
      if (this.endOfLine(out)) return { used: i, paused: true };
    }
    return { used: i, paused: false };
  }

  private appendText(buf: Uint8Array, s: number, e: number, out: ParserEvent[]): void {
    const n = e - s;
    if (n === 0) return;
    if (!this.discard) {
      if (this.textBytes + n <= this.maxLine) {
        this.cur.push(copy(buf, s, e));
        this.curLen += n;
        this.textBytes += n;
        return;
      }
      // Line too long: answer now (the tag is known when it is within the accepted octets),
      // then discard the rest of the command.
      const allowed = Math.max(0, this.maxLine - this.textBytes);
      if (allowed > 0) {
        this.cur.push(copy(buf, s, s + allowed));
        this.curLen += allowed;
      }
      const line = concat(this.cur, this.curLen);
      const tag = this.rawLine ? null : tagOf(this.lines.length > 0 ? this.lines[0] : line);
      out.push({ type: 'command', parsed: { ok: false, tag, message: `line too long (more than ${this.maxLine} octets outside literals)` } });
      this.discard = true;
      this.tail = copy(line, Math.max(0, line.length - TAIL), line.length);
      this.cur = [];
      this.curLen = 0;
      s += allowed;
    }
    // keep the last TAIL octets of the line to recognise a literal announcement at its end
    const add = buf.subarray(Math.max(s, e - TAIL), e);
    const keepOld = Math.min(this.tail.length, TAIL - add.length);
    const merged = Buffer.allocUnsafe(keepOld + add.length);
    merged.set(this.tail.subarray(this.tail.length - keepOld), 0);
    merged.set(add, keepOld);
    this.tail = merged;
  }

  /** At LF. Returns true when processing must pause after the command just emitted. */
  private endOfLine(out: ParserEvent[]): boolean {
    let line = this.discard ? this.tail : concat(this.cur, this.curLen);
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    this.cur = [];
    this.curLen = 0;
    this.tail = EMPTY;

    if (this.rawLine) {
      this.rawLine = false;
      if (!this.discard) out.push({ type: 'line', text: Buffer.from(line.buffer, line.byteOffset, line.length).toString('utf8') });
      this.endCommand();
      return false;
    }
    if (!this.discard && this.lines.length === 0 && line.length === 0) {
      this.endCommand(); // empty line between commands: ignored
      return false;
    }
    const lit = literalAnnouncement(line);
    if (!lit) {
      if (this.discard) {
        this.endCommand();
        return false;
      }
      this.lines.push(line);
      const parsed = this.parse(true);
      out.push({ type: 'command', parsed });
      this.endCommand();
      return parsed.ok && this.pauseAfter.has(parsed.command.name);
    }
    if (this.discard) {
      // A synchronizing literal of an already answered command is never sent (no "+"); a
      // non-synchronizing one is on its way and is skipped.
      if (lit.sync) this.endCommand();
      else this.startLiteral(lit.size);
      return false;
    }
    this.lines.push(line);
    const tag = tagOf(this.lines[0]);
    if (lit.sync) {
      if (lit.size > this.maxLiteral) {
        out.push({ type: 'literal-too-big', tag, size: lit.size });
        this.endCommand();
        return false;
      }
      // RFC 3501 §2.2.1: reject an invalid command before asking for its literal.
      const pre = this.parse(false);
      if (pre !== INCOMPLETE) {
        out.push({ type: 'command', parsed: pre });
        this.endCommand();
        return pre.ok && this.pauseAfter.has(pre.command.name);
      }
      out.push({ type: 'continue', text: 'Ready for literal data' });
      this.startLiteral(lit.size);
      return false;
    }
    const limit = this.caps.literalPlus ? this.maxLiteral : Math.min(this.maxLiteral, LITERAL_MINUS_MAX);
    if (lit.size > limit) {
      const message =
        this.caps.literalPlus || lit.size > this.maxLiteral
          ? `non-synchronizing literal of ${lit.size} octets is larger than this server accepts (${this.maxLiteral})`
          : `non-synchronizing literal of ${lit.size} octets is larger than 4096 (LITERAL-, RFC 7888 §4); use a synchronizing literal`;
      out.push({ type: 'command', parsed: { ok: false, tag, message, code: 'TOOBIG' } });
      this.discard = true;
    }
    this.startLiteral(lit.size);
    return false;
  }

  private startLiteral(size: number): void {
    this.litRemaining = size;
    this.litChunks = [];
    this.litLen = 0;
    if (size === 0) this.endLiteral();
  }

  private endLiteral(): void {
    if (!this.discard) this.literals.push(concat(this.litChunks, this.litLen));
    this.litChunks = [];
    this.litLen = 0;
  }

  private parse(complete: false): ParsedCommand | typeof INCOMPLETE;
  private parse(complete: true): ParsedCommand;
  private parse(complete: boolean): ParsedCommand | typeof INCOMPLETE {
    const input: CommandInput = { lines: this.lines, literals: this.literals, complete };
    try {
      return parseCommand(input, { utf8Accept: this.caps.utf8Accept, binary: this.caps.binary });
    } catch (e) {
      if (e === INCOMPLETE) {
        if (complete) return { ok: false, tag: tagOf(this.lines[0]), message: 'internal parser error: incomplete complete command' };
        return INCOMPLETE;
      }
      return { ok: false, tag: tagOf(this.lines[0]), message: `internal parser error: ${e instanceof Error ? e.message : String(e)}` };
    }
  }

  private endCommand(): void {
    this.lines = [];
    this.literals = [];
    this.cur = [];
    this.curLen = 0;
    this.textBytes = 0;
    this.litRemaining = 0;
    this.litChunks = [];
    this.litLen = 0;
    this.discard = false;
    this.tail = EMPTY;
    if (this.wantLine) {
      this.wantLine = false;
      this.rawLine = true;
    }
  }
}
