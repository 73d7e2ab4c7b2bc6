// Seeded fuzzing of the IMAP command parser, shared by fuzz.test.ts (in the suite) and
// fuzz-cli.ts (long runs). Deterministic: everything derives from the seed. No I/O here.
//
// Each iteration builds:
//  - a stream of valid commands from a small grammar (random case, tags, atoms/quoted/literal
//    strings, sync and non-sync literals, literal8, nested search keys, ...), which must parse
//    to ok:true with the expected tag and name, with one 'continue' per synchronizing literal;
//  - a mixed stream of valid commands, mutated valid commands (byte flips, truncation, inserted
//    CRLF, huge numbers, unbalanced parens/brackets, deletions, duplications) and random bytes;
// both pipelined and fed whole, in odd-sized chunks and (sometimes) one octet at a time.
// Properties: no exception; identical events whatever the chunking; after any garbage, CRLF
// (plus the octets of a pending literal) and a NOOP, the NOOP parses.

import { CommandParser, type ParserCapabilities, type ParserEvent, type ParserOptions } from '../../src/imap/protocol/parser.js';

/** xorshift128+-like generator on 32-bit words (sfc32), seeded by splitmix32. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** 0 <= n < max */
  int(max: number): number {
    return Math.floor((this.u32() / 4294967296) * max);
  }

  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  bool(p = 0.5): boolean {
    return this.u32() / 4294967296 < p;
  }

  pick<T>(arr: readonly T[]): T {
    return arr[this.int(arr.length)];
  }
}

type Piece = string | Buffer;

export interface GeneratedCommand {
  bytes: Buffer;
  tag: string;
  name: string;
  /** Synchronizing literals in it: one 'continue' event each. */
  syncLiterals: number;
  /** Raw lines sent after the command (IDLE's DONE, an AUTHENTICATE response). */
  lines: number;
}

const ATOM_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#&\'+,-./:;<=>?@^_`|~';
const TAG_CHARS = ATOM_CHARS.replace('+', '') + ']';
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const UTF8_SAMPLES = ['é', 'ç', 'Ω', '日本', '€', '😀', 'ß'];

/**
 * Generates valid commands. `utf8` = UTF8=ACCEPT enabled (8-bit allowed in quoted strings); it
 * turns on once the generator has written an ENABLE of UTF8=ACCEPT or IMAP4rev2 (RFC 6855 §3,
 * RFC 9051 §4.3), as the session switches its parser then (feed() does the same).
 */
export class CommandGenerator {
  private syncLits = 0;
  private counter = 0;

  constructor(
    private readonly rng: Rng,
    public utf8: boolean,
  ) {}

  private kw(s: string): string {
    const r = this.rng;
    return r.bool(0.6) ? s : [...s].map((c) => (r.bool() ? c.toLowerCase() : c.toUpperCase())).join('');
  }

  private atom(min = 1, max = 8, chars = ATOM_CHARS): string {
    let s = '';
    const n = this.rng.range(min, max);
    for (let i = 0; i < n; i++) s += this.rng.pick([...chars]);
    return s;
  }

  private text(max: number, allowCrLf: boolean): string {
    let s = '';
    const n = this.rng.int(max + 1);
    for (let i = 0; i < n; i++) {
      const k = this.rng.int(20);
      if (k < 14) s += String.fromCharCode(this.rng.range(0x20, 0x7e));
      else if (k < 17) s += this.rng.pick(UTF8_SAMPLES);
      else if (allowCrLf) s += this.rng.pick(['\r\n', '\n', '\t']);
      else s += 'x';
    }
    return s;
  }

  private literal(data: Buffer, binary = false): Buffer {
    const sync = this.rng.bool(0.3);
    if (sync) this.syncLits++;
    return Buffer.concat([Buffer.from(`${binary ? '~' : ''}{${data.length}${sync ? '' : '+'}}\r\n`), data]);
  }

  private quoted(): string {
    let s = '';
    const n = this.rng.int(12);
    for (let i = 0; i < n; i++) {
      const k = this.rng.int(20);
      if (k < 2) s += '\\"';
      else if (k < 4) s += '\\\\';
      else if (k < 6 && this.utf8) s += this.rng.pick(UTF8_SAMPLES);
      else {
        const c = String.fromCharCode(this.rng.range(0x20, 0x7e));
        s += c === '"' || c === '\\' ? 'q' : c;
      }
    }
    return `"${s}"`;
  }

  /** RFC 9051 astring: atom, quoted or literal. */
  astring(): Piece {
    const k = this.rng.int(10);
    if (k < 5) return this.atom(1, 10, ATOM_CHARS + ']');
    if (k < 8) return this.quoted();
    return this.literal(Buffer.from(this.text(30, true), 'utf8'));
  }

  private string(): Piece {
    return this.rng.bool(0.7) ? this.quoted() : this.literal(Buffer.from(this.text(20, true), 'utf8'));
  }

  /** RFC 5464 §3.2 entry: under /private or /shared, components without "*", "%" or "/" (`top`: the top alone allowed). */
  private metadataEntry(top: boolean): Piece {
    const r = this.rng;
    const parts = Array.from({ length: r.range(top ? 0 : 1, 3) }, () => this.atom(1, 6, 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._'));
    const entry = ['', this.kw(r.pick(['private', 'shared'])), ...parts].join('/');
    const k = r.int(10);
    return k < 6 ? entry : k < 9 ? `"${entry}"` : this.literal(Buffer.from(entry));
  }

  private mailbox(): Piece {
    return this.rng.bool(0.2) ? this.kw('INBOX') : this.astring();
  }

  private listMailbox(): Piece {
    if (this.rng.bool(0.3)) return this.astring();
    return this.atom(0, 4) + this.rng.pick(['%', '*', ']', '/%', '']) + this.atom(1, 3);
  }

  private nz(): string {
    return String(this.rng.bool(0.8) ? this.rng.range(1, 2000) : this.rng.range(1, 4294967295));
  }

  private modseq(zero = false): string {
    if (zero && this.rng.bool(0.1)) return '0';
    if (this.rng.bool(0.1)) return '9223372036854775807';
    return String(this.rng.range(1, 1e9)) + (this.rng.bool() ? String(this.rng.range(0, 999999)) : '');
  }

  seqSet(star = true, dollar = true): string {
    if (dollar && this.rng.bool(0.05)) return '$';
    const parts: string[] = [];
    const n = this.rng.range(1, 4);
    for (let i = 0; i < n; i++) {
      const one = () => (star && this.rng.bool(0.15) ? '*' : this.nz());
      parts.push(this.rng.bool(0.5) ? `${one()}:${one()}` : one());
    }
    return parts.join(',');
  }

  private flag(): string {
    return this.rng.bool(0.6) ? this.kw(this.rng.pick(['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft'])) : this.rng.pick(['$Forwarded', '$MDNSent', '$Junk']) + (this.rng.bool() ? '' : this.atom(1, 3));
  }

  private flagList(): string {
    const flags = Array.from({ length: this.rng.int(4) }, () => this.flag());
    return `(${flags.join(' ')})`;
  }

  private date(): string {
    const y = this.rng.range(1970, 2099);
    const m = this.rng.int(12);
    const d = this.rng.range(1, 28);
    const s = `${d}-${this.kw(MONTHS[m])}-${y}`;
    return this.rng.bool(0.2) ? `"${s}"` : s;
  }

  private dateTime(): string {
    const d = this.rng.range(1, 28);
    const day = d < 10 && this.rng.bool() ? ` ${d}` : String(d).padStart(2, '0');
    const p2 = (n: number) => String(n).padStart(2, '0');
    return `"${day}-${MONTHS[this.rng.int(12)]}-${this.rng.range(1990, 2030)} ${p2(this.rng.int(24))}:${p2(this.rng.int(60))}:${p2(this.rng.int(60))} ${this.rng.pick(['+', '-'])}${p2(this.rng.int(13))}${p2(this.rng.pick([0, 30, 45]))}"`;
  }

  private searchKey(depth: number): Piece[] {
    const r = this.rng;
    const leaf = depth > 3 || r.bool(0.6);
    if (!leaf) {
      const k = r.int(3);
      if (k === 0) return [this.kw('NOT'), ' ', ...this.searchKey(depth + 1)];
      if (k === 1) return [this.kw('OR'), ' ', ...this.searchKey(depth + 1), ' ', ...this.searchKey(depth + 1)];
      const keys: Piece[] = ['('];
      const n = r.range(1, 3);
      for (let i = 0; i < n; i++) keys.push(...(i ? [' '] : []), ...this.searchKey(depth + 1));
      keys.push(')');
      return keys;
    }
    const simple = ['ALL', 'ANSWERED', 'DELETED', 'DRAFT', 'FLAGGED', 'NEW', 'OLD', 'RECENT', 'SEEN', 'UNANSWERED', 'UNDELETED', 'UNDRAFT', 'UNFLAGGED', 'UNSEEN'];
    switch (r.int(12)) {
      case 0:
      case 1:
        return [this.kw(r.pick(simple))];
      case 2:
        return [this.kw(r.pick(['BCC', 'BODY', 'CC', 'FROM', 'SUBJECT', 'TEXT', 'TO'])), ' ', this.astring()];
      case 3:
        return [this.kw(r.pick(['BEFORE', 'ON', 'SINCE', 'SENTBEFORE', 'SENTON', 'SENTSINCE'])), ' ', this.date()];
      case 4:
        return [this.kw('HEADER'), ' ', this.astring(), ' ', this.astring()];
      case 5:
        return [this.kw(r.pick(['KEYWORD', 'UNKEYWORD'])), ' ', this.atom(1, 6)];
      case 6:
        return [this.kw(r.pick(['LARGER', 'SMALLER'])), ' ', String(r.int(1e9))];
      case 7:
        return [this.kw('UID'), ' ', this.seqSet()];
      case 8:
        return [this.seqSet()];
      case 9:
        return [this.kw(r.pick(['OLDER', 'YOUNGER'])), ' ', this.nz()];
      case 10:
        return r.bool()
          ? [this.kw('MODSEQ'), ' ', this.modseq(true)]
          : [this.kw('MODSEQ'), ' ', `"/flags/${r.pick(['\\\\Seen', '$junk', 'kw'])}"`, ' ', r.pick(['priv', 'shared', 'all']), ' ', this.modseq(true)];
      default:
        return ['$'];
    }
  }

  private searchKeys(): Piece[] {
    const out: Piece[] = [];
    const n = this.rng.range(1, 3);
    for (let i = 0; i < n; i++) out.push(...(i ? [' '] : []), ...this.searchKey(0));
    return out;
  }

  /** RFC 4731 / RFC 5182 / RFC 5267 §5 return options; PARTIAL (never with ALL, §4.4) takes a range in either order. */
  private returnOpts(): string {
    const r = this.rng;
    const opts = ['MIN', 'MAX', 'ALL', 'COUNT', 'SAVE', 'CONTEXT', 'UPDATE'].filter(() => r.bool(0.35)).map((o) => this.kw(o));
    if (r.bool(0.3) && !opts.some((o) => o.toUpperCase() === 'ALL')) opts.splice(r.int(opts.length + 1), 0, `${this.kw('PARTIAL')} ${this.nz()}:${this.nz()}`);
    return `${this.kw('RETURN')} (${opts.join(' ')}) `;
  }

  private section(): Piece[] {
    const r = this.rng;
    const part = r.bool(0.5) ? Array.from({ length: r.range(1, 3) }, () => r.range(1, 9)).join('.') : '';
    const texts = part ? ['HEADER', 'TEXT', 'MIME', 'HEADER.FIELDS', 'HEADER.FIELDS.NOT', ''] : ['HEADER', 'TEXT', 'HEADER.FIELDS', 'HEADER.FIELDS.NOT', ''];
    const t = r.pick(texts);
    const out: Piece[] = ['[', part];
    if (t) out.push(part ? '.' : '', this.kw(t));
    if (t.startsWith('HEADER.FIELDS')) {
      out.push(' (');
      const n = r.range(1, 3);
      for (let i = 0; i < n; i++) out.push(...(i ? [' '] : []), this.astring());
      out.push(')');
    }
    out.push(']');
    return out;
  }

  private partial(): string {
    return this.rng.bool(0.3) ? `<${this.rng.int(10000)}.${this.rng.range(1, 10000)}>` : '';
  }

  private fetchAtt(): Piece[] {
    const r = this.rng;
    switch (r.int(6)) {
      case 0:
      case 1:
        return [this.kw(r.pick(['UID', 'FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODYSTRUCTURE', 'BODY', 'RFC822', 'RFC822.HEADER', 'RFC822.TEXT', 'MODSEQ', 'SAVEDATE', 'EMAILID']))];
      case 2:
      case 3:
        return [this.kw(r.pick(['BODY', 'BODY.PEEK'])), ...this.section(), this.partial()];
      case 4: {
        const part = r.bool() ? Array.from({ length: r.range(1, 3) }, () => r.range(1, 9)).join('.') : '';
        return [this.kw(r.pick(['BINARY', 'BINARY.PEEK'])), `[${part}]`, this.partial()];
      }
      default:
        return [this.kw('BINARY.SIZE'), `[${r.bool() ? r.range(1, 5) : ''}]`];
    }
  }

  private fetch(uid: boolean): Piece[] {
    const r = this.rng;
    const out: Piece[] = [this.kw('FETCH'), ' ', this.seqSet(), ' '];
    if (r.bool(0.2)) out.push(this.kw(r.pick(['ALL', 'FAST', 'FULL'])));
    else if (r.bool(0.3)) out.push(...this.fetchAtt());
    else {
      out.push('(');
      const n = r.range(1, 4);
      for (let i = 0; i < n; i++) out.push(...(i ? [' '] : []), ...this.fetchAtt());
      out.push(')');
    }
    if (r.bool(0.2)) out.push(` (${this.kw('CHANGEDSINCE')} ${this.modseq()}${uid && r.bool() ? ' ' + this.kw('VANISHED') : ''})`);
    return out;
  }

  private store(): Piece[] {
    const r = this.rng;
    const out: Piece[] = [this.kw('STORE'), ' ', this.seqSet(), ' '];
    if (r.bool(0.2)) out.push(`(${this.kw('UNCHANGEDSINCE')} ${this.modseq(true)}) `);
    out.push(r.pick(['', '+', '-']), this.kw(r.pick(['FLAGS', 'FLAGS.SILENT'])), ' ');
    out.push(r.bool(0.7) ? this.flagList() : Array.from({ length: r.range(1, 3) }, () => this.flag()).join(' '));
    return out;
  }

  private charset(): string {
    return this.rng.pick(['UTF-8', 'US-ASCII', '"UTF-8"', 'utf-8']);
  }

  private statusAtts(): string {
    const all = ['MESSAGES', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN', 'DELETED', 'SIZE', 'RECENT', 'HIGHESTMODSEQ', 'APPENDLIMIT'];
    const items = all.filter(() => this.rng.bool(0.4));
    if (items.length === 0) items.push('MESSAGES');
    return `(${items.map((i) => this.kw(i)).join(' ')})`;
  }

  /** One valid command: [bytes, name, extra raw lines]. */
  command(): GeneratedCommand {
    const r = this.rng;
    this.syncLits = 0;
    const tag = this.atom(1, 4, TAG_CHARS) + String(this.counter++);
    let lines = 0;
    let after = '';
    let name: string;
    let body: Piece[];
    const which = r.int(45);
    const uid = r.bool(0.3);
    const U = (n: string) => (uid ? `UID ${n}` : n);
    const pre: Piece[] = uid ? [this.kw('UID'), ' '] : [];
    switch (which) {
      case 0: {
        name = r.pick(['CAPABILITY', 'NOOP', 'LOGOUT', 'NAMESPACE', 'UNSELECT', 'CLOSE', 'EXPUNGE', 'CHECK', 'STARTTLS']);
        body = [this.kw(name)];
        break;
      }
      case 1:
        name = 'IDLE';
        body = [this.kw('IDLE')];
        after = `${this.kw('DONE')}\r\n`;
        lines = 1;
        break;
      case 2:
        name = 'LOGIN';
        body = [this.kw('LOGIN'), ' ', this.astring(), ' ', this.astring()];
        break;
      case 3: {
        name = 'AUTHENTICATE';
        const ir = r.bool() ? ' ' + r.pick(['=', 'AHVzZXIAcGFzcw==', 'dGVzdA==', 'YWJj']) : '';
        body = [this.kw('AUTHENTICATE'), ' ', this.kw(r.pick(['PLAIN', 'LOGIN', 'XOAUTH2', 'SCRAM-SHA-256'])), ir];
        if (!ir) {
          after = r.pick(['dGVzdA==', '', '*']) + '\r\n';
          lines = 1;
        }
        break;
      }
      case 4: {
        name = 'ID';
        if (r.bool(0.2)) body = [this.kw('ID'), ' ', this.kw('NIL')];
        else {
          body = [this.kw('ID'), ' ('];
          const n = r.int(4);
          for (let i = 0; i < n; i++) body.push(...(i ? [' '] : []), `"f${i}"`, ' ', r.bool(0.2) ? 'NIL' : this.string());
          body.push(')');
        }
        break;
      }
      case 5:
        name = 'ENABLE';
        const caps = Array.from({ length: r.range(1, 3) }, () => r.pick(['CONDSTORE', 'QRESYNC', 'UTF8=ACCEPT', 'IMAP4rev2', 'X-FOO']));
        body = [this.kw('ENABLE'), ...caps.map((c) => ' ' + this.kw(c))];
        if (caps.includes('UTF8=ACCEPT') || caps.includes('IMAP4rev2')) this.utf8 = true;
        break;
      case 6:
      case 7: {
        name = r.pick(['SELECT', 'EXAMINE']);
        body = [this.kw(name), ' ', this.mailbox()];
        const k = r.int(4);
        if (k === 1) body.push(` (${this.kw('CONDSTORE')})`);
        if (k >= 2) {
          let q = `${this.nz()} ${this.modseq()}`;
          if (r.bool()) q += ' ' + this.seqSet(false, false);
          if (r.bool()) q += ` (${this.seqSet(false, false)} ${this.seqSet(false, false)})`;
          body.push(` (${k === 3 ? this.kw('CONDSTORE') + ' ' : ''}${this.kw('QRESYNC')} (${q}))`);
        }
        break;
      }
      case 8: {
        name = 'CREATE';
        body = [this.kw('CREATE'), ' ', this.mailbox()];
        if (r.bool(0.3)) body.push(` (${this.kw('USE')} (${['\\Drafts', '\\Sent', '\\Trash', '\\Archive'].filter(() => r.bool(0.4)).join(' ')}))`);
        break;
      }
      case 9:
        name = r.pick(['DELETE', 'SUBSCRIBE', 'UNSUBSCRIBE', 'GETQUOTAROOT', 'GETACL', 'MYRIGHTS']);
        body = [this.kw(name), ' ', this.mailbox()];
        break;
      case 10:
        name = 'RENAME';
        body = [this.kw('RENAME'), ' ', this.mailbox(), ' ', this.mailbox()];
        break;
      case 11:
      case 12: {
        name = 'LIST';
        body = [this.kw('LIST'), ' '];
        if (r.bool(0.4)) {
          const opts = ['SUBSCRIBED', 'REMOTE', 'SPECIAL-USE'].filter(() => r.bool(0.4));
          if (opts.includes('SUBSCRIBED') && r.bool()) opts.push('RECURSIVEMATCH');
          body.push(`(${opts.map((o) => this.kw(o)).join(' ')}) `);
        }
        body.push(this.astring(), ' ');
        if (r.bool(0.3)) {
          body.push('(');
          const n = r.range(1, 3);
          for (let i = 0; i < n; i++) body.push(...(i ? [' '] : []), this.listMailbox());
          body.push(')');
        } else body.push(this.listMailbox());
        if (r.bool(0.4)) {
          const ret = ['SUBSCRIBED', 'CHILDREN', 'SPECIAL-USE', 'MYRIGHTS'].filter(() => r.bool(0.4)).map((o) => this.kw(o));
          if (r.bool()) ret.push(`${this.kw('STATUS')} ${this.statusAtts()}`);
          body.push(` ${this.kw('RETURN')} (${ret.join(' ')})`);
        }
        break;
      }
      case 13:
        name = 'LSUB';
        body = [this.kw('LSUB'), ' ', this.astring(), ' ', this.listMailbox()];
        break;
      case 14:
        name = 'STATUS';
        body = [this.kw('STATUS'), ' ', this.mailbox(), ' ', this.statusAtts()];
        break;
      case 15:
      case 16: {
        name = 'APPEND';
        body = [this.kw('APPEND'), ' ', this.mailbox()];
        const n = r.bool(0.7) ? 1 : r.range(2, 4);
        for (let i = 0; i < n; i++) {
          if (r.bool(0.5)) body.push(' ', this.flagList());
          if (r.bool(0.3)) body.push(' ', this.dateTime());
          if (r.bool(0.25)) {
            // RFC 4469 §5: "CATENATE" SP "(" cat-part *(SP cat-part) ")"
            body.push(' ', this.kw('CATENATE'), ' (');
            const parts = r.range(1, 4);
            for (let k = 0; k < parts; k++) {
              if (k) body.push(' ');
              const kind = r.int(5);
              if (kind < 2) body.push(this.kw('URL'), ' ', r.bool() ? `"/${this.atom(1, 6)};UIDVALIDITY=${this.nz()}/;UID=${this.nz()}/;SECTION=${r.pick(['HEADER', '1', 'TEXT', '1.MIME'])}"` : this.astring());
              else if (kind < 4) body.push(this.kw('TEXT'), ' ', this.literal(Buffer.from(this.text(40, true), 'utf8')));
              // RFC 6855 §4: cat-part =/ utf8-literal
              else body.push(this.kw('UTF8'), ' (', this.literal(Buffer.from(this.text(40, true), 'utf8'), true), ')');
            }
            body.push(')');
            continue;
          }
          const binary = r.bool(0.2);
          const len = r.int(120);
          const data = Buffer.alloc(len);
          for (let k = 0; k < len; k++) data[k] = binary ? r.int(256) : r.range(1, 255);
          // RFC 6855 §4: append-data =/ "UTF8" SP "(" literal8 ")"
          if (r.bool(0.15)) body.push(' ', this.kw('UTF8'), ' (', this.literal(data, true), ')');
          else body.push(' ', this.literal(data, binary));
        }
        break;
      }
      case 17:
        name = 'GETQUOTA';
        body = [this.kw('GETQUOTA'), ' ', this.astring()];
        break;
      case 18: {
        name = 'SETQUOTA';
        const res = ['STORAGE', 'MESSAGE', 'MAILBOX'].filter(() => r.bool(0.5)).map((x) => `${this.kw(x)} ${r.int(1e9)}`);
        body = [this.kw('SETQUOTA'), ' ', this.astring(), ` (${res.join(' ')})`];
        break;
      }
      case 19:
        name = 'SETACL';
        body = [this.kw('SETACL'), ' ', this.mailbox(), ' ', this.astring(), ' ', r.pick(['', '+', '-']) + r.pick(['lrs', 'lrswipkxtea', 'r'])];
        break;
      case 20:
        name = r.pick(['DELETEACL', 'LISTRIGHTS']);
        body = [this.kw(name), ' ', this.mailbox(), ' ', this.astring()];
        break;
      case 21:
      case 22:
      case 23: {
        name = U('SEARCH');
        body = [...pre, this.kw('SEARCH'), ' '];
        if (r.bool(0.3)) body.push(this.returnOpts());
        if (r.bool(0.3)) body.push(`${this.kw('CHARSET')} ${this.charset()} `);
        body.push(...this.searchKeys());
        break;
      }
      case 24:
      case 25:
      case 26:
      case 27:
        name = U('FETCH');
        body = [...pre, ...this.fetch(uid)];
        break;
      case 28:
      case 29:
        name = U('STORE');
        body = [...pre, ...this.store()];
        break;
      case 30:
      case 31: {
        const base = r.pick(['COPY', 'MOVE']);
        name = U(base);
        body = [...pre, this.kw(base), ' ', this.seqSet(), ' ', this.mailbox()];
        break;
      }
      case 32:
      case 33: {
        name = U('SORT');
        const keys = Array.from({ length: r.range(1, 3) }, () => (r.bool(0.3) ? this.kw('REVERSE') + ' ' : '') + this.kw(r.pick(['ARRIVAL', 'CC', 'DATE', 'FROM', 'SIZE', 'SUBJECT', 'TO', 'DISPLAYFROM', 'DISPLAYTO'])));
        body = [...pre, this.kw('SORT'), ' ', r.bool(0.2) ? this.returnOpts() : '', `(${keys.join(' ')}) ${this.charset()} `, ...this.searchKeys()];
        break;
      }
      case 34:
        name = U('THREAD');
        body = [...pre, this.kw('THREAD'), ' ', this.kw(r.pick(['REFERENCES', 'ORDEREDSUBJECT', 'REFS'])), ` ${this.charset()} `, ...this.searchKeys()];
        break;
      case 37: {
        // RFC 5465 §8: "NOTIFY" SP ("NONE" / "SET" [SP "STATUS"] SP event-groups), with the §5/§6.1 rules kept
        name = 'NOTIFY';
        if (r.bool(0.2)) {
          body = [this.kw('NOTIFY'), ' ', this.kw('NONE')];
          break;
        }
        body = [this.kw('NOTIFY'), ' ', this.kw('SET'), r.bool() ? ' ' + this.kw('STATUS') : ''];
        const groups = r.range(1, 3);
        for (let k = 0; k < groups; k++) {
          const sel = k === 0 && r.bool(0.4);
          const filter = sel
            ? this.kw(r.pick(['SELECTED', 'SELECTED-DELAYED']))
            : r.bool(0.5)
              ? this.kw(r.pick(['INBOXES', 'PERSONAL', 'SUBSCRIBED']))
              : [this.kw(r.pick(['SUBTREE', 'MAILBOXES'])), ' ', r.bool() ? this.mailbox() : ['(', this.mailbox(), ' ', this.mailbox(), ')']].flat();
          body.push(' (', ...[filter].flat(), ' ');
          if (r.bool(0.15)) body.push(this.kw('NONE'));
          else {
            const ev: Piece[] = [];
            if (r.bool(0.8)) {
              ev.push(this.kw('MessageNew'));
              if (sel && r.bool(0.4)) ev.push(' (', ...this.fetchAtt(), ')');
              ev.push(' ', this.kw('MessageExpunge'));
              if (r.bool()) ev.push(' ', this.kw('FlagChange'));
            } else ev.push(this.kw(sel ? 'FlagChange' : r.pick(['MailboxName', 'SubscriptionChange'])));
            if (sel && ev.length === 1) ev.splice(0, 1, this.kw('MessageNew'), ' ', this.kw('MessageExpunge'));
            body.push('(', ...ev, ')');
          }
          body.push(')');
        }
        break;
      }
      case 36:
        // RFC 5267 §5: "CANCELUPDATE" 1*(SP quoted)
        name = 'CANCELUPDATE';
        body = [this.kw('CANCELUPDATE'), ...Array.from({ length: r.range(1, 3) }, () => ' ' + this.quoted())];
        break;
      case 40: {
        // RFC 4467 §9: "GENURLAUTH" 1*(SP url-rump SP mechanism)
        name = 'GENURLAUTH';
        body = [this.kw('GENURLAUTH')];
        for (let i = 0, n = r.range(1, 2); i < n; i++) body.push(' ', this.astring(), ' ', this.kw(r.pick(['INTERNAL', 'XSAMPLE', 'X-1.2'])));
        break;
      }
      case 41: {
        // RFC 4467 §9 / RFC 5524 §3: "URLFETCH" 1*(SP (url / "(" url *(SP param) ")"))
        name = 'URLFETCH';
        body = [this.kw('URLFETCH')];
        for (let i = 0, n = r.range(1, 3); i < n; i++) {
          if (r.bool()) body.push(' ', this.astring());
          else body.push(' (', this.astring(), ...[r.pick(['BODY', 'BINARY']), 'BODYPARTSTRUCTURE'].filter(() => r.bool()).map((p) => ' ' + this.kw(p)), ')');
        }
        break;
      }
      case 42:
        // RFC 4467 §9: "RESETKEY" [SP mailbox *(SP mechanism)]
        name = 'RESETKEY';
        body = [this.kw('RESETKEY'), ...(r.bool(0.3) ? [] : [' ', this.mailbox(), ...(r.bool() ? [' ' + this.kw('INTERNAL')] : [])])];
        break;
      case 43: {
        // RFC 5464 §5: "GETMETADATA" [SP "(" option *(SP option) ")"] SP mailbox SP entries
        name = 'GETMETADATA';
        const opts = [r.bool() ? `${this.kw('MAXSIZE')} ${r.int(100000)}` : '', r.bool() ? `${this.kw('DEPTH')} ${this.kw(r.pick(['0', '1', 'infinity']))}` : ''].filter(Boolean);
        body = [this.kw('GETMETADATA'), ...(opts.length ? [` (${opts.join(' ')})`] : []), ' ', r.bool(0.2) ? '""' : this.mailbox(), ' '];
        if (r.bool()) body.push(this.metadataEntry(true));
        else {
          body.push('(');
          for (let i = 0, n = r.range(1, 3); i < n; i++) body.push(i ? ' ' : '', this.metadataEntry(true));
          body.push(')');
        }
        break;
      }
      case 44: {
        // RFC 5464 §5: "SETMETADATA" SP mailbox SP "(" entry SP (nstring / literal8) *(...) ")"
        name = 'SETMETADATA';
        body = [this.kw('SETMETADATA'), ' ', r.bool(0.2) ? '""' : this.mailbox(), ' ('];
        for (let i = 0, n = r.range(1, 3); i < n; i++) {
          body.push(i ? ' ' : '', this.metadataEntry(false), ' ');
          const k = r.int(10);
          if (k < 2) body.push(this.kw('NIL'));
          else if (k < 3) body.push(this.literal(Buffer.from(Array.from({ length: r.int(20) }, () => r.int(256))), true));
          else body.push(this.string());
        }
        body.push(')');
        break;
      }
      case 35:
        name = 'UID EXPUNGE';
        body = [this.kw('UID'), ' ', this.kw('EXPUNGE'), ' ', this.seqSet()];
        break;
      default: {
        name = r.pick(['NOOP', 'CHECK', 'LOGOUT']);
        body = [this.kw(name)];
      }
    }
    const bytes = Buffer.concat([Buffer.from(tag + ' '), ...body.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)), Buffer.from('\r\n' + after)]);
    return { bytes, tag, name, syncLiterals: this.syncLits, lines };
  }
}

/** Mutates a valid command: byte flips, truncation, CRLF insertion, huge numbers, unbalanced brackets, deletions, duplications. */
export function mutate(rng: Rng, input: Buffer): Buffer {
  let b = Buffer.from(input);
  const n = rng.range(1, 3);
  for (let k = 0; k < n; k++) {
    const at = b.length ? rng.int(b.length) : 0;
    switch (rng.int(8)) {
      case 0: // byte flip
        if (b.length) b[at] = rng.bool() ? b[at] ^ (1 << rng.int(8)) : rng.int(256);
        break;
      case 1: // truncation
        b = b.subarray(0, at);
        break;
      case 2: // inserted CRLF
        b = Buffer.concat([b.subarray(0, at), Buffer.from(rng.pick(['\r\n', '\n', '\r'])), b.subarray(at)]);
        break;
      case 3: {
        // huge number
        const text = b.toString('latin1');
        const runs = [...text.matchAll(/\d+/g)];
        const huge = rng.pick(['99999999999999999999999', '18446744073709551616', '9223372036854775808', '4294967296', '0', '00000000000000000000001']);
        if (runs.length) {
          const m = rng.pick(runs);
          b = Buffer.concat([b.subarray(0, m.index), Buffer.from(huge), b.subarray(m.index! + m[0].length)]);
        } else b = Buffer.concat([b.subarray(0, at), Buffer.from(huge), b.subarray(at)]);
        break;
      }
      case 4: // unbalanced parens / brackets / braces / quotes
        b = Buffer.concat([b.subarray(0, at), Buffer.from(rng.pick(['(', ')', '[', ']', '{', '}', '"', '<', '>', '((((', '))'])), b.subarray(at)]);
        break;
      case 5: {
        // remove one bracket
        const idx = [...b.keys()].filter((i) => '()[]{}"<>'.includes(String.fromCharCode(b[i])));
        if (idx.length) {
          const i = rng.pick(idx);
          b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
        }
        break;
      }
      case 6: {
        // delete a range
        const len = rng.range(1, 8);
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + len))]);
        break;
      }
      default: {
        // duplicate a range
        const len = rng.range(1, 16);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]);
      }
    }
  }
  return b;
}

const IMAPISH = Buffer.from('{}()[]<>"\\ \r\n0123456789+*$~%:,.aAzZ');

/** Random bytes, either uniform or biased towards IMAP syntax characters. */
export function garbage(rng: Rng): Buffer {
  const len = rng.int(rng.bool(0.9) ? 64 : 400);
  const b = Buffer.alloc(len);
  const biased = rng.bool();
  for (let i = 0; i < len; i++) b[i] = biased ? IMAPISH[rng.int(IMAPISH.length)] : rng.int(256);
  return b;
}

/** Splits into odd-sized chunks. */
export function chunkSizes(rng: Rng, total: number): number[] {
  const sizes: number[] = [];
  let left = total;
  while (left > 0) {
    const n = Math.min(left, rng.pick([1, 1, 2, 3, 5, 7, 11, 13, 17, 64, 127, 1000, 4093]));
    sizes.push(n);
    left -= n;
  }
  return sizes;
}

export interface FeedResult {
  events: ParserEvent[];
  parser: CommandParser;
}

/**
 * Feeds a stream to a new parser in the given chunks, like a server would: after an IDLE or an
 * AUTHENTICATE without initial response it asks for a raw line (expectLine), then resumes.
 */
export function feed(stream: Buffer, sizes: readonly number[] | null, caps: ParserCapabilities, opts: ParserOptions, parser?: CommandParser): FeedResult {
  // The session's pauses (src/imap/session.ts): ENABLE too, so that it can switch to UTF-8.
  const p = parser ?? new CommandParser({ pauseAfter: ['STARTTLS', 'AUTHENTICATE', 'IDLE', 'ENABLE'], ...opts });
  if (!parser) p.setCapabilities(caps);
  const events: ParserEvent[] = [];
  const react = (evs: ParserEvent[]) => {
    for (const e of evs) {
      events.push(e);
      if (e.type === 'command' && e.parsed.ok) {
        const c = e.parsed.command;
        if (c.name === 'IDLE' || (c.name === 'AUTHENTICATE' && c.initialResponse === undefined)) p.expectLine();
        // src/imap/commands/auth.ts: ENABLE UTF8=ACCEPT / IMAP4rev2 allows UTF-8 in quoted strings.
        if (c.name === 'ENABLE' && c.capabilities.some((x) => /^(UTF8=ACCEPT|IMAP4REV2)$/i.test(x))) p.setCapabilities({ utf8Accept: true });
      }
    }
  };
  const drain = () => {
    for (;;) {
      const evs = p.resume();
      if (evs.length === 0) return;
      react(evs);
    }
  };
  if (sizes === null) {
    react(p.push(stream));
    drain();
  } else {
    let off = 0;
    for (const n of sizes) {
      react(p.push(stream.subarray(off, off + n)));
      drain();
      off += n;
    }
  }
  return { events, parser: p };
}

export function serialize(events: readonly ParserEvent[]): string {
  return JSON.stringify(events, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v === Infinity ? 'Infinity' : v));
}

export interface FuzzStats {
  iterations: number;
  validCommands: number;
  mutated: number;
  garbageItems: number;
  bytes: number;
  okEvents: number;
  errorEvents: number;
  continueEvents: number;
  tooBigEvents: number;
  lineEvents: number;
  bytewiseRuns: number;
  resetsForHugeLiterals: number;
  /** How many valid commands of each name were generated. */
  names: Record<string, number>;
}

export function newStats(): FuzzStats {
  return { iterations: 0, validCommands: 0, mutated: 0, garbageItems: 0, bytes: 0, okEvents: 0, errorEvents: 0, continueEvents: 0, tooBigEvents: 0, lineEvents: 0, bytewiseRuns: 0, resetsForHugeLiterals: 0, names: {} };
}

export class FuzzFailure extends Error {
  constructor(
    message: string,
    readonly iterationSeed: number,
  ) {
    super(`${message} (iteration seed ${iterationSeed})`);
  }
}

/** The seed of iteration i of a run with `seed`. */
export function iterationSeed(seed: number, i: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca77)) >>> 0;
}

function countEvents(stats: FuzzStats, events: readonly ParserEvent[]): void {
  for (const e of events) {
    if (e.type === 'command') {
      if (e.parsed.ok) stats.okEvents++;
      else stats.errorEvents++;
    } else if (e.type === 'continue') stats.continueEvents++;
    else if (e.type === 'literal-too-big') stats.tooBigEvents++;
    else stats.lineEvents++;
  }
}

function checkNoInternalError(events: readonly ParserEvent[], iseed: number): void {
  for (const e of events) {
    if (e.type === 'command' && !e.parsed.ok) {
      if (e.parsed.message.startsWith('internal parser error')) throw new FuzzFailure(`internal error: ${e.parsed.message}`, iseed);
      if (!e.parsed.message) throw new FuzzFailure('empty error message', iseed);
    }
  }
}

/** One fuzz iteration; throws FuzzFailure when a property does not hold. */
export function fuzzIteration(iseed: number, stats: FuzzStats, opts: { bytewise: boolean }): void {
  const rng = new Rng(iseed);
  const utf8 = rng.bool(0.3);
  const caps: ParserCapabilities = { literalPlus: true, binary: true, utf8Accept: utf8 };
  const gen = new CommandGenerator(rng, utf8);
  stats.iterations++;

  // 1. valid commands only: every one parses, with its tag and name
  const valid = Array.from({ length: rng.range(1, 12) }, () => gen.command());
  const validStream = Buffer.concat(valid.map((c) => c.bytes));
  stats.validCommands += valid.length;
  for (const c of valid) stats.names[c.name] = (stats.names[c.name] ?? 0) + 1;
  stats.bytes += validStream.length;
  const runs: ParserEvent[][] = [];
  try {
    runs.push(feed(validStream, null, caps, {}).events);
    runs.push(feed(validStream, chunkSizes(rng, validStream.length), caps, {}).events);
    if (opts.bytewise) {
      runs.push(feed(validStream, Array(validStream.length).fill(1), caps, {}).events);
      stats.bytewiseRuns++;
    }
  } catch (e) {
    throw new FuzzFailure(`exception on valid commands: ${e instanceof Error ? e.stack : String(e)}`, iseed);
  }
  const ref = serialize(runs[0]);
  for (let k = 1; k < runs.length; k++) if (serialize(runs[k]) !== ref) throw new FuzzFailure('events differ with chunking (valid commands)', iseed);
  const cmds = runs[0].filter((e) => e.type === 'command');
  if (cmds.length !== valid.length) throw new FuzzFailure(`expected ${valid.length} commands, got ${cmds.length}: ${serialize(cmds).slice(0, 2000)}`, iseed);
  cmds.forEach((e, i) => {
    const p = e.type === 'command' ? e.parsed : null;
    if (!p || !p.ok) throw new FuzzFailure(`valid command ${JSON.stringify(valid[i].bytes.toString('latin1'))} rejected: ${p && !p.ok ? p.message : ''}`, iseed);
    if (p.tag !== valid[i].tag || p.command.name !== valid[i].name) throw new FuzzFailure(`command ${i}: expected ${valid[i].tag} ${valid[i].name}, got ${p.tag} ${p.command.name}`, iseed);
  });
  const continues = runs[0].filter((e) => e.type === 'continue').length;
  const expectedContinues = valid.reduce((n, c) => n + c.syncLiterals, 0);
  if (continues !== expectedContinues) throw new FuzzFailure(`expected ${expectedContinues} continue events, got ${continues}`, iseed);
  const lines = runs[0].filter((e) => e.type === 'line').length;
  if (lines !== valid.reduce((n, c) => n + c.lines, 0)) throw new FuzzFailure(`unexpected number of line events (${lines})`, iseed);
  countEvents(stats, runs[0]);

  // 2. mixed stream: valid, mutated and random items, pipelined (the parser starts in the
  // iteration's mode again; a valid command after a garbled ENABLE may then be refused)
  gen.utf8 = utf8;
  const items: Buffer[] = [];
  const count = rng.range(1, 10);
  for (let k = 0; k < count; k++) {
    const kind = rng.int(3);
    if (kind === 0) {
      items.push(gen.command().bytes);
      stats.validCommands++;
    } else if (kind === 1) {
      items.push(mutate(rng, gen.command().bytes));
      stats.mutated++;
    } else {
      items.push(garbage(rng));
      stats.garbageItems++;
    }
  }
  const mixed = Buffer.concat(items);
  stats.bytes += mixed.length;
  const popts: ParserOptions = { maxLineLength: rng.pick([65536, 300, 64]), maxLiteralSize: rng.pick([1 << 20, 100, 4096]) };
  const mcaps: ParserCapabilities = { literalPlus: rng.bool(0.7), binary: rng.bool(0.8), utf8Accept: utf8 };
  let whole: FeedResult;
  const mruns: ParserEvent[][] = [];
  try {
    whole = feed(mixed, null, mcaps, popts);
    mruns.push(whole.events);
    mruns.push(feed(mixed, chunkSizes(rng, mixed.length), mcaps, popts).events);
    if (opts.bytewise) mruns.push(feed(mixed, Array(mixed.length).fill(1), mcaps, popts).events);
  } catch (e) {
    throw new FuzzFailure(`exception on mixed stream: ${e instanceof Error ? e.stack : String(e)}`, iseed);
  }
  const mref = serialize(mruns[0]);
  for (let k = 1; k < mruns.length; k++) if (serialize(mruns[k]) !== mref) throw new FuzzFailure('events differ with chunking (mixed stream)', iseed);
  checkNoInternalError(mruns[0], iseed);
  countEvents(stats, mruns[0]);

  // 3. recovery: CRLF — repeated while a command is still being framed (after a literal the
  // garbage announced, whose octets are supplied) or a raw line is expected (the garbage held an
  // IDLE/AUTHENTICATE) — then a NOOP must parse
  const p = whole.parser;
  const rec: ParserEvent[] = [];
  try {
    const step = (b: Buffer) => rec.push(...feed(b, chunkSizes(rng, b.length), mcaps, popts, p).events);
    step(Buffer.from('\r\n'));
    for (let k = 0; k < 6; k++) {
      const pending = p.literalRemaining;
      if (pending > 1 << 20) {
        p.reset(); // a (rejected) huge literal: a server would close the connection
        stats.resetsForHugeLiterals++;
      } else if (pending > 0) step(Buffer.concat([Buffer.alloc(pending, 0x78), Buffer.from('\r\n')]));
      else if (p.expectingLine || p.inCommand) step(Buffer.from('\r\n'));
      else break;
    }
    step(Buffer.from('zz9 NOOP\r\n'));
  } catch (e) {
    throw new FuzzFailure(`exception during recovery: ${e instanceof Error ? e.stack : String(e)}`, iseed);
  }
  checkNoInternalError(rec, iseed);
  const last = rec[rec.length - 1];
  if (!last || last.type !== 'command' || !last.parsed.ok || last.parsed.tag !== 'zz9' || last.parsed.command.name !== 'NOOP') {
    throw new FuzzFailure(`no recovery: NOOP after garbage gave ${serialize(rec).slice(0, 500)}`, iseed);
  }
}
