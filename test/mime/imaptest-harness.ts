// Test support for the MIME tests: plays the FETCH/SEARCH/SORT commands of Dovecot imaptest's
// scripted tests against src/mime. Scripts, .mbox fixtures, reply parsing and matching are
// test/imap-conformance's (the reader and matcher the conformance suite runs against real
// servers); BODY, BODYSTRUCTURE and ENVELOPE are written by the IMAP server's own serialiser
// (sexpToBytes of src/imap/fetch.ts) and literals by its encoder, so the shipped code is what
// is compared with imaptest's expected replies.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { sexpToBytes } from '../../src/imap/fetch.js';
import { literal, literal8 } from '../../src/imap/protocol/encoder.js';
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
import { argsToString, atom, parseArgs, type ImapArg } from '../imap-conformance/imap-args.js';
import { FULL, matchArgsAtomic, type MatchContext } from '../imap-conformance/match.js';
import { parseMbox } from '../imap-conformance/mbox.js';
import { loadScript, type CommandGroup, type ExpectedUntagged, type Script, type ScriptCommand } from '../imap-conformance/script.js';
import { imaptestTestsDir } from '../support/reference-data.js';

export const IMAPTEST_DIR = imaptestTestsDir();

export interface MboxMessage {
  /** The message with CRLF line ends. */
  raw: Buffer;
  /** INTERNALDATE imaptest gives it (the From_ line's date). */
  time: Date;
}

/** An imaptest .mbox fixture, read by test/imap-conformance/mbox.ts (imaptest's rules). */
export function readMbox(path: string): MboxMessage[] {
  return parseMbox(readFileSync(path).toString('latin1'), basename(path)).map((m) => ({ raw: Buffer.from(m.data, 'latin1'), time: m.time }));
}

/** A data tree as the IMAP server writes it for an IMAP4rev1 session (sexpToBytes), parsed back into an argument. */
export function serialized(x: Sexp): ImapArg {
  return parseArgs(sexpToBytes(x).toString('latin1'))[0]!;
}

export interface Mailbox {
  msgs: { raw: Buffer; info: MessageInfo; time: Date }[];
}

export interface Imaptest {
  script: Script;
  /** The script's messages (its own .mbox, else default.mbox, as imaptest picks them). */
  mailbox: Mailbox;
}

/** Reads script `name` of the imaptest suite and analyses its messages. */
export function loadImaptest(name: string): Imaptest {
  const { script, mboxPath } = loadScript(IMAPTEST_DIR, name, {});
  const msgs = readMbox(mboxPath).map((m) => ({ raw: m.raw, info: analyzeMessage(m.raw), time: m.time }));
  return { script, mailbox: { msgs } };
}

/** A command's text; the commands played here have no literals. */
export function commandLine(script: Script, cmd: ScriptCommand): string {
  return cmd.parts
    .map((p) => {
      if (p.kind === 'literal') throw new Error(`${script.name} line ${cmd.line}: a literal in a command the MIME harness plays is not supported`);
      return p.text;
    })
    .join('');
}

/** The untagged replies of `group` expected to be a `name` reply (`* 1 FETCH …`, `* SEARCH …`). */
export function expectedReplies(group: CommandGroup, name: string): ExpectedUntagged[] {
  return group.untagged.filter((e) => {
    const a0 = atom(e.args[0]);
    const reply = a0 !== undefined && /^[0-9$]/.test(a0) ? atom(e.args[1]) : a0;
    return reply?.toLowerCase() === name;
  });
}

/** A match context without EXPUNGEs: $N is N. */
export function matchContext(): MatchContext {
  return { vars: new Map(), relativeSeq: (n) => String(n) };
}

// ---------------------------------------------------------------------------------------------
// FETCH emulation

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

/**
 * The untagged FETCH reply this module gives for one message, as the IMAP server writes it
 * (item names echoed, structures by sexpToBytes, contents as literals, BINARY with NUL bytes as
 * literal8 — src/imap/fetch.ts), parsed back with the conformance suite's reader. Items that are
 * not the MIME module's (FLAGS, UID, MODSEQ, ...) are left out.
 */
export function fetchReply(seq: number, m: Mailbox['msgs'][number], items: string[]): ImapArg[] {
  const out: string[] = [];
  const bytes = (b: Uint8Array, binary = false): string => Buffer.from(binary ? literal8(b) : literal(b)).toString('latin1');
  for (const item of items) {
    const lower = item.toLowerCase();
    if (lower === 'body' || lower === 'bodystructure') {
      out.push(`${item.toUpperCase()} ${sexpToBytes(bodyStructure(m.info, lower === 'bodystructure')).toString('latin1')}`);
    } else if (lower === 'envelope') {
      out.push(`ENVELOPE ${sexpToBytes(envelopeSexp(m.info.envelope, m.info.envelopeWire)).toString('latin1')}`);
    } else if (lower === 'rfc822' || lower === 'rfc822.header' || lower === 'rfc822.text') {
      const spec: SectionSpec =
        lower === 'rfc822' ? { kind: 'full' } : { kind: lower === 'rfc822.header' ? 'header' : 'text', part: [] };
      out.push(`${item.toUpperCase()} ${bytes(sectionBytes(m.raw, m.info, spec)!)}`);
    } else if (lower === 'rfc822.size') {
      out.push(`RFC822.SIZE ${m.info.size}`);
    } else {
      const bm = /^(body|binary|binary\.size)(\.peek)?\[(.*)\](?:<(\d+\.\d+)>)?$/is.exec(item);
      if (bm === null) continue; // flags, uid, ...: not ours
      const kind = bm[1].toUpperCase();
      const sec = bm[3];
      const name = `${kind}[${sec}]${bm[4] ? `<${bm[4].split('.')[0]}>` : ''}`;
      if (kind === 'BODY') {
        const data = sectionBytes(m.raw, m.info, parseSection(sec))!;
        out.push(`${name} ${bytes(partial(data, bm[4]))}`);
      } else {
        const part = sec === '' ? [] : sec.split('.').map(Number);
        const r = binaryContent(m.raw, m.info, part);
        if (r === null || 'error' in r) continue;
        if (kind === 'BINARY') {
          const d = partial(r.data, bm[4]);
          out.push(`${name} ${bytes(d, d.includes(0))}`);
        } else out.push(`${name} ${r.data.length}`);
      }
    }
  }
  return parseArgs(`${seq} FETCH (${out.join(' ')})`);
}

/** An expected FETCH reply without the items this harness does not produce; undefined when none is left. */
function mimeItemsOnly(args: ImapArg[]): ImapArg[] | undefined {
  const list = args[2];
  if (list?.type !== 'list') return undefined;
  const directives = list.items.filter((a) => atom(a)?.startsWith('$!'));
  const rest = list.items.slice(directives.length);
  const kept: ImapArg[] = [];
  for (let k = 0; k + 1 < rest.length; k += 2) {
    if (/^(flags|uid|modseq)$/i.test(atom(rest[k]) ?? '')) continue;
    kept.push(rest[k]!, rest[k + 1]!);
  }
  if (kept.length === 0) return undefined;
  return [args[0]!, args[1]!, { type: 'list', items: [...directives, ...kept] }];
}

/**
 * Plays the FETCH commands of a command group and matches the group's expected FETCH replies
 * the way imaptest does (test/imap-conformance/match.ts): a `*` line must match one of the
 * replies, a `!` line none. Returns the problems found (empty = all expectations met).
 */
export function checkFetch(t: Imaptest, group: CommandGroup, ctx: MatchContext): { problems: string[]; checked: number } {
  const mb = t.mailbox;
  const replies: ImapArg[][] = [];
  const commands: string[] = [];
  for (const cmd of group.commands) {
    const line = commandLine(t.script, cmd);
    const m = /^fetch\s+(\S+)\s+(.*)$/i.exec(line);
    if (m === null) continue;
    commands.push(line);
    const items = fetchItems(m[2]);
    for (const seq of parseSeqSet(m[1], mb.msgs.length)) replies.push(fetchReply(seq, mb.msgs[seq - 1], items));
  }
  const problems: string[] = [];
  let checked = 0;
  if (commands.length === 0) return { problems, checked };
  for (const e of expectedReplies(group, 'fetch')) {
    const expected = mimeItemsOnly(e.args);
    if (expected === undefined || e.existence === 'may') continue;
    checked++;
    const hit = replies.some((r) => matchArgsAtomic(ctx, expected, r, false).count === FULL);
    const shown = replies.map((r) => `    ${argsToString(r).slice(0, 600)}`).join('\n');
    if (e.existence === 'must' && !hit) problems.push(`${commands.join(' / ')}: line ${e.line} not matched: ${e.source}\n  replies:\n${shown}`);
    if (e.existence === 'mustNot' && hit) problems.push(`${commands.join(' / ')}: line ${e.line} must not match but does: ${e.source}`);
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
