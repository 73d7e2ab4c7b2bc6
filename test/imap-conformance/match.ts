// Matching server replies against a script's expected replies, and expanding variables in
// commands — imaptest's rules (test-exec.c of its release-2.3 branch):
//
// - Strings (atoms, quoted strings and literals alike) compare case-insensitively (ASCII);
//   NIL only matches NIL; a list only matches a list.
// - `$name` / `${name}`: a variable with a value matches exactly that value (case-sensitively);
//   one without a value takes it from the reply, up to the first character (case-insensitive)
//   equal to what follows it in the pattern (or the end of the argument), and keeps it for
//   the rest of the script. `$` alone matches any one argument, a list included (a named
//   variable never matches a list or NIL). `$$` is a literal `$`. `$N` (a number) is the
//   current sequence number of the message that had number N when the command was sent,
//   following the EXPUNGEs received since.
// - Lists match in order and in full unless they begin with `$!` directives:
//   `$!unordered[=n]` (elements, or chains of n elements, in any order; extra elements allowed
//   unless `$!noextra`), `$!ordered`, `$!noextra` / `$!extra`, `$!ignore=X` (an extra X is fine
//   with noextra), `$!ban=X` (an extra X is not fine without noextra).
// - Untagged OK/NO/BAD/BYE and tagged replies match as a prefix: the reply may have more
//   arguments, and the last expected argument may be a prefix of the reply's.
// - Strings end at their first NUL byte, as the C strings imaptest compares.
// Variables taken during an attempt that fails are given back (imaptest only does this per
// reply line; doing it per attempt can only avoid spurious mismatches).
import { astring, atom, equalsCI, upperAscii, type ImapArg } from './imap-args.js';

/** Returned by matchArgs/matchList when everything matched (imaptest's UINT_MAX). */
export const FULL = Number.POSITIVE_INFINITY;

const VAR_CHAR = /[A-Za-z0-9_]/;

export interface MatchContext {
  vars: Map<string, string>;
  /** Current sequence for a message that had sequence `n` when the group started ($N). */
  relativeSeq(n: number): string;
}

function snapshot(ctx: MatchContext): Map<string, string> {
  return new Map(ctx.vars);
}

function restore(ctx: MatchContext, saved: Map<string, string>): void {
  ctx.vars.clear();
  for (const [k, v] of saved) ctx.vars.set(k, v);
}

/**
 * imaptest compares C strings: a string stops at its first NUL byte, on both sides. So does
 * this matcher (append-binary relies on it: its expected BINARY[1] literal is one byte short
 * of the 7 its own BINARY.SIZE[1] expects, unnoticed because both start with a NUL).
 */
export function cString(s: string): string {
  const nul = s.indexOf('\0');
  return nul < 0 ? s : s.slice(0, nul);
}

/** Reads a variable reference at pattern[i] (just after `$`): its name and where the pattern continues. */
function readVarName(pattern: string, i: number): { name: string; next: number } {
  if (pattern[i] === '{') {
    const close = pattern.indexOf('}', i + 1);
    if (close < 0) return { name: pattern.slice(i + 1), next: pattern.length };
    return { name: pattern.slice(i + 1, close), next: close + 1 };
  }
  let j = i;
  while (j < pattern.length && VAR_CHAR.test(pattern[j]!)) j++;
  return { name: pattern.slice(i, j), next: j };
}

function lookup(ctx: MatchContext, name: string): string | undefined {
  if (/^\d+$/.test(name)) return ctx.relativeSeq(Number(name));
  if (name === '') return undefined;
  return ctx.vars.get(name);
}

/** First character the rest of the pattern will produce, if it can be known ('' = end of pattern). */
function firstCharOf(ctx: MatchContext, pattern: string, i: number): string | undefined {
  if (i >= pattern.length) return '';
  if (pattern[i] !== '$') return pattern[i];
  if (pattern[i + 1] === '$') return '$';
  if (i + 1 >= pattern.length) return undefined;
  const v = readVarName(pattern, i + 1);
  const value = lookup(ctx, v.name);
  if (value === undefined) return undefined;
  if (value === '') return firstCharOf(ctx, pattern, v.next);
  return value[0];
}

/**
 * Expands `pattern` against `input` (test_expand_input): literal characters must match
 * case-insensitively, known variables exactly; unknown ones are captured into ctx.vars.
 * Returns the expanded pattern, or undefined on a mismatch.
 */
export function expandInput(ctx: MatchContext, pattern: string, input: string): string | undefined {
  let out = '';
  let pi = 0;
  let ii = 0;
  while (pi < pattern.length) {
    const c = pattern[pi]!;
    if (c !== '$' || pattern[pi + 1] === '$') {
      const lit = c === '$' ? '$' : c;
      if (c === '$') pi++;
      if (ii >= input.length || upperAscii(lit) !== upperAscii(input[ii]!)) return undefined;
      out += lit;
      pi++;
      ii++;
      continue;
    }
    const v = readVarName(pattern, pi + 1);
    pi = v.next;
    let value = lookup(ctx, v.name);
    if (value === undefined) {
      // Capture up to the character that follows in the pattern (or to the end).
      const stop = firstCharOf(ctx, pattern, pi);
      let end = ii;
      if (stop === undefined || stop === '') end = input.length;
      else {
        const s = upperAscii(stop);
        while (end < input.length && upperAscii(input[end]!) !== s) end++;
      }
      value = input.slice(ii, end);
      if (v.name !== '') ctx.vars.set(v.name, value);
    }
    if (input.slice(ii, ii + value.length) !== value) return undefined;
    out += value;
    ii += value.length;
  }
  return out;
}

/**
 * Matches expected arguments against received ones in order (test_imap_match_args). Returns
 * FULL on a match, else how many arguments matched before the first mismatch.
 * `max` limits how many expected arguments are compared (for chains); `prefix` is the
 * status-reply mode (extra received arguments allowed, last expected one a prefix).
 */
export function matchArgs(ctx: MatchContext, match: ImapArg[], args: ImapArg[], max = Number.POSITIVE_INFINITY, prefix = false): number {
  let ret = 0;
  let mi = 0;
  let ai = 0;
  for (; mi < match.length && max > 0; mi++, ai++, max--) {
    const m = match[mi]!;
    const a = args[ai];
    switch (m.type) {
      case 'nil':
        if (a?.type !== 'nil') return ret;
        break;
      case 'atom':
      case 'string': {
        if (m.value === '$' && a?.type === 'list') break;
        const full = astring(a);
        if (full === undefined) return ret;
        const astr = cString(full);
        const mstr = expandInput(ctx, cString(m.value), astr);
        if (mstr === undefined) return ret;
        if (prefix && mi === match.length - 1) {
          if (!upperAscii(astr).startsWith(upperAscii(mstr))) return ret;
        } else if (!equalsCI(astr, mstr)) return ret;
        break;
      }
      case 'list': {
        if (a?.type !== 'list') return ret;
        const sub = matchList(ctx, m.items, a.items);
        if (sub !== FULL) return ret + sub;
        break;
      }
    }
    ret++;
  }
  if (prefix || ai >= args.length || max === 0) return FULL;
  return ret;
}

interface Directives {
  unordered: boolean;
  chain: number;
  noextra: boolean;
  ignores: string[];
  bans: string[];
  rest: ImapArg[];
}

/** Reads the `$!` directives at the start of an expected list. */
export function readDirectives(items: ImapArg[]): Directives {
  let unordered = false;
  let chain = 1;
  let noextra: boolean | undefined;
  const ignores: string[] = [];
  const bans: string[] = [];
  let k = 0;
  for (; k < items.length; k++) {
    const a = atom(items[k]);
    if (a === undefined || !a.startsWith('$!')) break;
    const d = a.slice(2);
    if (d.startsWith('unordered')) {
      unordered = true;
      if (noextra === undefined) noextra = false;
      if (d[9] === '=') chain = Math.max(1, Number.parseInt(d.slice(10), 10) || 1);
    } else if (d === 'ordered') unordered = false;
    else if (d === 'extra') noextra = false;
    else if (d === 'noextra') noextra = true;
    else if (d.startsWith('ignore=')) ignores.push(d.slice(7));
    else if (d.startsWith('ban=')) bans.push(d.slice(4));
    else throw new Error(`unknown directive ${a}`);
  }
  return { unordered, chain, noextra: noextra ?? true, ignores, bans, rest: items.slice(k) };
}

/** Matches an expected list (with its directives) against a received list (test_imap_match_list). */
export function matchList(ctx: MatchContext, matchItems: ImapArg[], args: ImapArg[]): number {
  const d = readDirectives(matchItems);
  if (!d.unordered) return matchArgs(ctx, d.rest, args, Number.POSITIVE_INFINITY, false);
  const chain = d.chain;
  if (args.length % chain !== 0 || d.rest.length % chain !== 0) return 0;
  const matched = new Array<boolean>(args.length).fill(false);
  let ret = 0;
  for (let mi = 0; mi < d.rest.length; mi += chain, ret++) {
    let found = false;
    for (let i = 0; i < args.length; i += chain) {
      const saved = snapshot(ctx);
      if (matchArgs(ctx, d.rest.slice(mi, mi + chain), args.slice(i, i + chain), chain, false) === FULL) {
        matched[i] = true;
        found = true;
        break;
      }
      restore(ctx, saved);
    }
    if (!found) return ret;
  }
  const inList = (list: string[], s: string): boolean => list.some((x) => equalsCI(x, s));
  for (let i = 0; i < args.length; i += chain) {
    if (matched[i]) continue;
    const s = astring(args[i]);
    if (s === undefined) continue;
    if (d.noextra) {
      if (!inList(d.ignores, s)) return ret;
    } else if (d.bans.length > 0 && inList(d.bans, s)) return ret;
  }
  return FULL;
}

/** Matches with variables given back on failure. */
export function matchArgsAtomic(ctx: MatchContext, match: ImapArg[], args: ImapArg[], prefix: boolean): { count: number; added: string[] } {
  const saved = snapshot(ctx);
  const count = matchArgs(ctx, match, args, Number.POSITIVE_INFINITY, prefix);
  if (count !== FULL) {
    restore(ctx, saved);
    return { count, added: [] };
  }
  return { count, added: [...ctx.vars.keys()].filter((k) => !saved.has(k)) };
}

export class UninitializedVariable extends Error {
  constructor(readonly variable: string) {
    super(`uninitialized variable: $${variable}`);
  }
}

/**
 * Expands variables in command text (test_expand_all): `$$` -> `$`, `$!directive` dropped,
 * `$N` relative sequences, `$name` / `${name}`; a lone `$` at the end stays. Throws
 * UninitializedVariable for a variable without a value unless `keepUnknown` (then it is
 * left as `$`, for messages).
 */
export function expandAll(ctx: MatchContext, text: string, keepUnknown = false): string {
  let out = '';
  for (let i = 0; i < text.length; ) {
    const c = text[i]!;
    if (c !== '$' || i === text.length - 1) {
      out += c;
      i++;
      continue;
    }
    const n = text[i + 1]!;
    if (n === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (n === '!') {
      let j = i + 1;
      while (j < text.length && text[j] !== ' ') j++;
      i = j + 1;
      continue;
    }
    const v = readVarName(text, i + 1);
    const value = lookup(ctx, v.name);
    if (value === undefined) {
      if (!keepUnknown) throw new UninitializedVariable(v.name);
      out += '$';
      out += text.slice(i + 1, v.next);
    } else out += value;
    i = v.next;
  }
  return out;
}

/** Expands the variables of expected arguments that have a value, for failure messages. */
export function expandArgsForDisplay(ctx: MatchContext, args: ImapArg[]): ImapArg[] {
  return args.map((a): ImapArg => {
    if (a.type === 'list') return { type: 'list', items: expandArgsForDisplay(ctx, a.items) };
    if (a.type === 'atom' && a.value.startsWith('$!')) return a;
    if (a.type === 'atom' || a.type === 'string') return { ...a, value: expandAll(ctx, a.value, true) };
    return a;
  });
}
