// Test support (used by src/mime/*.test.ts only): reads Dovecot imaptest scripted tests and their
// mbox fixtures the way imaptest does, plays the FETCH/SEARCH/SORT commands against this module's
// API and compares with the expected untagged replies (imaptest rules: case-insensitive strings,
// FETCH items unordered, $variables bound on first use, "!" lines must not match).
import { readFileSync } from 'node:fs';
import { imaptestTestsDir } from '../support/reference-data.js';
import {
  analyzeMessage,
  binaryContent,
  bodyStructure,
  envelopeSexp,
  headerValues,
  normalizeForSearch,
  searchableText,
  sectionBytes,
  type MessageInfo,
  type SectionSpec,
  type Sexp,
} from '../../src/mime/index.js';

/** The tests import the module's API through this file, with the harness. */
export * from '../../src/mime/index.js';

export const IMAPTEST_DIR = imaptestTestsDir();

/**
 * Test-only IMAP serializer: NIL, digits, "quoted" with \\ and \" escaped; lists space-separated,
 * except that the lists opening a list are written side by side, as the IMAP grammar wants for
 * the parts of a multipart (1*body SP media-subtype) and the addresses of an address list
 * ("(" 1*address ")"): "((a)(b) "mixed")". This is exactly Dovecot's layout.
 */
export function ser(x: Sexp): string {
  if (x === null) return 'NIL';
  if (typeof x === 'number') return String(x);
  if (typeof x === 'string') return '"' + x.replace(/[\\"]/g, (c) => '\\' + c) + '"';
  let out = '(';
  let leading = true;
  x.forEach((e, i) => {
    const isList = Array.isArray(e);
    if (i > 0) out += leading && isList ? '' : ' ';
    if (!isList) leading = false;
    out += ser(e);
  });
  return out + ')';
}

const FROM_LINE = /^From \S+\s+\w{3} \w{3}\s+\d{1,2} \d{1,2}:\d{2}(:\d{2})? \d{4}/;

export interface MboxMessage {
  raw: Buffer;
  fromLine: string;
}

/** imaptest's mailbox-source-mbox.c: messages between "From " lines, LF → CRLF. */
export function readMbox(path: string): MboxMessage[] {
  const text = readFileSync(path).toString('latin1');
  const lines = text.split(/(?<=\n)/);
  const out: MboxMessage[] = [];
  let cur: string[] | null = null;
  let fromLine = '';
  for (const line of lines) {
    if (FROM_LINE.test(line)) {
      if (cur !== null && cur.length > 0) out.push({ raw: toCrlf(cur.join('')), fromLine });
      cur = [];
      fromLine = line.replace(/\r?\n$/, '');
      continue;
    }
    cur?.push(line);
  }
  if (cur !== null && cur.length > 0) out.push({ raw: toCrlf(cur.join('')), fromLine });
  return out;
}

function toCrlf(s: string): Buffer {
  return Buffer.from(s.replace(/(?<!\r)\n/g, '\r\n'), 'latin1');
}

// ---------------------------------------------------------------------------------------------
// A small IMAP response parser (atoms may contain [...] with spaces, as fetch item names do).

export type Arg = { t: 'atom'; v: string } | { t: 'str'; v: string } | { t: 'nil' } | { t: 'list'; v: Arg[] };

export function parseArgs(s: string): Arg[] {
  let i = 0;
  const parseList = (close: string | null): Arg[] => {
    const out: Arg[] = [];
    for (;;) {
      while (s[i] === ' ') i++;
      if (i >= s.length) {
        if (close !== null) throw new Error('unterminated list in ' + s);
        return out;
      }
      const c = s[i];
      if (c === close) {
        i++;
        return out;
      }
      if (c === '(') {
        i++;
        out.push({ t: 'list', v: parseList(')') });
      } else if (c === '"') {
        i++;
        let v = '';
        while (s[i] !== '"') {
          if (s[i] === '\\') i++;
          v += s[i++];
        }
        i++;
        out.push({ t: 'str', v });
      } else if (c === '{' || (c === '~' && s[i + 1] === '{')) {
        if (c === '~') i++;
        const m = /^\{(\d+)\}\r\n/.exec(s.slice(i));
        if (m === null) throw new Error('bad literal in ' + s);
        i += m[0].length;
        out.push({ t: 'str', v: s.slice(i, i + Number(m[1])) });
        i += Number(m[1]);
      } else {
        let v = '';
        let depth = 0;
        while (i < s.length) {
          const d = s[i];
          if (d === '[') depth++;
          else if (d === ']') depth--;
          else if (depth === 0 && (d === ' ' || d === '(' || d === ')')) break;
          v += d;
          i++;
        }
        out.push(v.toUpperCase() === 'NIL' ? { t: 'nil' } : { t: 'atom', v });
      }
    }
  };
  return parseList(null);
}

export function sexpToArg(x: Sexp): Arg {
  if (x === null) return { t: 'nil' };
  if (typeof x === 'number') return { t: 'atom', v: String(x) };
  if (typeof x === 'string') return { t: 'str', v: x };
  return { t: 'list', v: x.map(sexpToArg) };
}

/** imaptest matching: case-insensitive text, $var binding, $ wildcard. */
export function argMatch(exp: Arg, got: Arg, vars: Map<string, Arg>): boolean {
  if (exp.t === 'atom' && exp.v.startsWith('$')) {
    if (exp.v === '$') return true;
    const bound = vars.get(exp.v);
    if (bound === undefined) {
      vars.set(exp.v, got);
      return true;
    }
    return argMatch(bound, got, vars);
  }
  if (exp.t === 'nil' || got.t === 'nil') return exp.t === got.t;
  if (exp.t === 'list' || got.t === 'list') {
    if (exp.t !== 'list' || got.t !== 'list' || exp.v.length !== got.v.length) return false;
    return exp.v.every((e, k) => argMatch(e, (got as { v: Arg[] }).v[k], vars));
  }
  return exp.v.toLowerCase() === got.v.toLowerCase();
}

// ---------------------------------------------------------------------------------------------
// Script reading (test-parser.c): {{{ multiline literals }}}, "ok" commands, "*"/"!" replies.

export interface ScriptCommand {
  command: string;
  expect: { mustExist: boolean; line: string }[];
}

export function readScript(name: string): { header: Record<string, string>; commands: ScriptCommand[] } {
  const text = readFileSync(`${IMAPTEST_DIR}/${name}`).toString('latin1');
  const rawLines = text.split('\n');
  if (rawLines[rawLines.length - 1] === '') rawLines.pop();
  // fold {{{ ... }}} blocks into single lines with {n}\r\n literals
  const lines: string[] = [];
  for (let k = 0; k < rawLines.length; k++) {
    let line = rawLines[k];
    while (line.endsWith('{{{')) {
      const binary = line.endsWith('~{{{');
      const prefix = line.slice(0, line.length - (binary ? 4 : 3));
      const body: string[] = [];
      k++;
      while (!rawLines[k].startsWith('}}}')) body.push(rawLines[k++]);
      const content = body.join(binary ? '\n' : '\r\n');
      line = `${prefix}${binary ? '~' : ''}{${Buffer.byteLength(content, 'latin1')}}\r\n${content}${rawLines[k].slice(3)}`;
    }
    lines.push(line);
  }
  const header: Record<string, string> = {};
  let k = 0;
  for (; k < lines.length && lines[k] !== ''; k++) {
    const m = /^([^:]+):\s*(.*)$/.exec(lines[k]);
    if (m) header[m[1].toLowerCase()] = m[2];
  }
  const commands: ScriptCommand[] = [];
  for (; k < lines.length; k++) {
    const line = lines[k];
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('* ') || line.startsWith('! ')) {
      commands[commands.length - 1]?.expect.push({ mustExist: line[0] === '*', line: line.slice(2) });
      continue;
    }
    const m = /^(ok|no|bad)\s+(.*)$/i.exec(line);
    commands.push({ command: m ? m[2] : line, expect: [] });
  }
  return { header, commands };
}

// ---------------------------------------------------------------------------------------------
// FETCH emulation

export interface Mailbox {
  msgs: { raw: Buffer; info: MessageInfo; fromLine: string }[];
}

export function loadMailbox(name: string): Mailbox {
  const path = `${IMAPTEST_DIR}/${name}.mbox`;
  return { msgs: readMbox(path).map((m) => ({ raw: m.raw, info: analyzeMessage(m.raw), fromLine: m.fromLine })) };
}

function parseSeqSet(s: string, count: number): number[] {
  const out: number[] = [];
  for (const r of s.split(',')) {
    const [a, b] = r.split(':').map((x) => (x === '*' ? count : Number(x)));
    const lo = Math.min(a, b ?? a);
    const hi = Math.max(a, b ?? a);
    for (let n = lo; n <= hi; n++) out.push(n);
  }
  return out;
}

/** Splits "(item item[...] item)" into items. */
function fetchItems(s: string): string[] {
  s = s.trim();
  if (s.startsWith('(')) s = s.slice(1, -1);
  const items: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of s) {
    if (c === '[') depth++;
    if (c === ']') depth--;
    if (c === ' ' && depth === 0) {
      if (cur) items.push(cur);
      cur = '';
    } else cur += c;
  }
  if (cur) items.push(cur);
  return items;
}

export function parseSection(sec: string): SectionSpec {
  const m = /^((?:\d+\.)*\d+)?\.?(.*)$/s.exec(sec)!;
  const part = m[1] ? m[1].split('.').map(Number) : [];
  const rest = m[2].toUpperCase();
  if (rest === '') return part.length === 0 ? { kind: 'full' } : { kind: 'part', part };
  if (rest === 'HEADER') return { kind: 'header', part };
  if (rest === 'TEXT') return { kind: 'text', part };
  if (rest === 'MIME') return { kind: 'mime', part };
  const hf = /^HEADER\.FIELDS(\.NOT)?\s*\((.*)\)$/s.exec(m[2].toUpperCase());
  if (hf) return { kind: 'header.fields', part, fields: hf[2].trim().split(/\s+/), not: hf[1] !== undefined };
  throw new Error('bad section ' + sec);
}

function partial(data: Uint8Array, p: string | undefined): Uint8Array {
  if (p === undefined) return data;
  const [o, n] = p.split('.').map(Number);
  return data.subarray(Math.min(o, data.length), Math.min(o + n, data.length));
}

/** The FETCH response items (name → value) this module can produce for one message. */
export function fetch(m: Mailbox['msgs'][number], items: string[]): { name: string; value: Arg }[] {
  const out: { name: string; value: Arg }[] = [];
  const bytesArg = (b: Uint8Array): Arg => ({ t: 'str', v: Buffer.from(b).toString('latin1') });
  for (const item of items) {
    const lower = item.toLowerCase();
    if (lower === 'body' || lower === 'bodystructure') {
      out.push({ name: lower, value: sexpToArg(bodyStructure(m.info, lower === 'bodystructure')) });
    } else if (lower === 'envelope') {
      out.push({ name: lower, value: sexpToArg(envelopeSexp(m.info.envelope)) });
    } else if (lower === 'rfc822' || lower === 'rfc822.header' || lower === 'rfc822.text') {
      const spec: SectionSpec =
        lower === 'rfc822' ? { kind: 'full' } : { kind: lower === 'rfc822.header' ? 'header' : 'text', part: [] };
      out.push({ name: lower, value: bytesArg(sectionBytes(m.raw, m.info, spec)!) });
    } else if (lower === 'rfc822.size') {
      out.push({ name: lower, value: { t: 'atom', v: String(m.info.size) } });
    } else {
      const bm = /^(body|binary|binary\.size)(\.peek)?\[(.*)\](?:<(\d+\.\d+)>)?$/is.exec(item);
      if (bm === null) continue; // flags, uid, ...: not ours
      const kind = bm[1].toLowerCase();
      const sec = bm[3];
      const name = `${kind}[${sec}]${bm[4] ? `<${bm[4].split('.')[0]}>` : ''}`.toLowerCase();
      if (kind === 'body') {
        const data = sectionBytes(m.raw, m.info, parseSection(sec))!;
        out.push({ name, value: bytesArg(partial(data, bm[4])) });
      } else {
        const part = sec === '' ? [] : sec.split('.').map(Number);
        const r = binaryContent(m.raw, m.info, part);
        if (r === null || 'error' in r) continue;
        out.push(
          kind === 'binary'
            ? { name, value: bytesArg(partial(r.data, bm[4])) }
            : { name, value: { t: 'atom', v: String(r.data.length) } },
        );
      }
    }
  }
  return out;
}

/** Plays `fetch <set> <items>` and returns the problems found (empty = all expectations met). */
export function checkFetch(mb: Mailbox, cmd: ScriptCommand, vars: Map<string, Arg>): { problems: string[]; checked: number } {
  const m = /^fetch\s+(\S+)\s+(.*)$/i.exec(cmd.command)!;
  const seqs = parseSeqSet(m[1], mb.msgs.length);
  const items = fetchItems(m[2]);
  const responses = new Map<number, { name: string; value: Arg }[]>();
  for (const seq of seqs) responses.set(seq, fetch(mb.msgs[seq - 1], items));
  const problems: string[] = [];
  let checked = 0;
  for (const e of cmd.expect) {
    const args = parseArgs(e.line);
    const seq = Number((args[0] as { v: string }).v);
    const list = (args[2] as { v: Arg[] }).v;
    const got = responses.get(seq) ?? [];
    let allMatch = true;
    for (let k = 0; k + 1 < list.length; k += 2) {
      const name = (list[k] as { v: string }).v.toLowerCase();
      const mine = got.find((g) => g.name === name);
      if (mine === undefined) {
        if (/^(flags|uid|modseq)$/.test(name)) continue;
        problems.push(`${cmd.command}: no ${name} produced`);
        allMatch = false;
        continue;
      }
      checked++;
      const ok = argMatch(list[k + 1], mine.value, vars);
      if (!ok) allMatch = false;
      if (!ok && e.mustExist) problems.push(`${cmd.command}: ${name}: expected ${JSON.stringify(list[k + 1])}, got ${JSON.stringify(mine.value)}`);
    }
    if (!e.mustExist && allMatch) problems.push(`${cmd.command}: forbidden reply matched: ${e.line}`);
  }
  return { problems, checked };
}

// ---------------------------------------------------------------------------------------------
// SEARCH emulation (only the keys the header/address/body scripts use)

function contains(hay: string, needle: string): boolean {
  return normalizeForSearch(hay).includes(normalizeForSearch(needle));
}

export function searchMatch(m: Mailbox['msgs'][number], tokens: string[]): boolean {
  let i = 0;
  const next = (): string => {
    const t = tokens[i++];
    return t.startsWith('"') ? t.slice(1, -1) : t;
  };
  const one = (): boolean => {
    const key = next().toLowerCase();
    switch (key) {
      case 'all':
        return true;
      case 'not':
        return !one();
      case 'subject': {
        const s = next();
        return headerValues(m.raw, m.info, 'subject', 'subject').some((v) => contains(v, s));
      }
      case 'from':
      case 'to':
      case 'cc':
      case 'bcc': {
        const s = next();
        return headerValues(m.raw, m.info, key, 'address').some((v) => contains(v, s));
      }
      case 'header': {
        const h = next();
        const s = next();
        const vals = headerValues(m.raw, m.info, h);
        return s === '' ? vals.length > 0 : vals.some((v) => contains(v, s));
      }
      case 'body':
      case 'text': {
        const s = next();
        return contains(searchableText(m.raw, m.info, key), s);
      }
      default:
        throw new Error('unsupported search key ' + key);
    }
  };
  let ok = true;
  while (i < tokens.length) ok = one() && ok;
  return ok;
}

export function tokenize(s: string): string[] {
  return s.match(/"[^"]*"|\S+/g) ?? [];
}
