// LIST/LSUB mailbox patterns (RFC 9051 §6.3.9): "*" matches zero or more characters, "%" zero or
// more characters other than the hierarchy delimiter. Pure and linear: a pattern is compiled once
// into tokens and run as a set of states over the name (Thompson's construction), so matching costs
// at most |name| × |pattern| steps whatever the wildcards. A regular expression built from the
// wildcards (".*" and "[^/]*") backtracks exponentially on patterns such as "*%*%*%*%*%a": one such
// LIST froze the whole process for minutes, every protocol with it.

/** Longest reference + pattern accepted; longer ones get `BAD [LIMIT]` (RFC 5530 §3). */
export const MAX_LIST_PATTERN = 1024;

const STAR = -1;
const PERCENT = -2;

export class ListPatternTooLong extends Error {
  override name = 'ListPatternTooLong';
  constructor(readonly length: number) {
    super(`LIST pattern of ${length} characters is longer than the ${MAX_LIST_PATTERN} this server accepts`);
  }
}

export type NameMatcher = (name: string) => boolean;

/**
 * Compiles a LIST pattern (reference already joined) into a matcher. `delimiter` is the hierarchy
 * delimiter "%" stops at. RFC 9051 §5.1: INBOX is case-insensitive, in the pattern as in the name.
 */
export function compileListPattern(pattern: string, delimiter = '/'): NameMatcher {
  if (pattern.length > MAX_LIST_PATTERN) throw new ListPatternTooLong(pattern.length);
  const main = compile(pattern, delimiter);
  const inboxPrefix = new RegExp(`^inbox(${escapeRe(delimiter)}|$)`, 'i');
  if (!inboxPrefix.test(pattern)) return main;
  const inbox = compile('INBOX' + pattern.slice(5), delimiter);
  return (name) => main(name) || (name.startsWith('INBOX') && inboxPrefix.test(name) && inbox(name));
}

function compile(pattern: string, delimiter: string): NameMatcher {
  // Tokens: a character code, STAR or PERCENT. A run of wildcards is one token: "*" if it holds a
  // "*" (whatever "%" adds, "*" covers), else "%" — the run matches the same names, with fewer states.
  const tokens: number[] = [];
  for (let i = 0; i < pattern.length; ) {
    const c = pattern.charCodeAt(i);
    if (c === 42 /* * */ || c === 37 /* % */) {
      let star = false;
      for (; i < pattern.length && (pattern[i] === '*' || pattern[i] === '%'); i++) if (pattern[i] === '*') star = true;
      tokens.push(star ? STAR : PERCENT);
    } else {
      tokens.push(c);
      i++;
    }
  }
  const n = tokens.length;
  const delim = delimiter.charCodeAt(0);
  // Two state lists reused across calls; `seen` marks states already in the list being built.
  let cur = new Int32Array(n + 1);
  let next = new Int32Array(n + 1);
  const seen = new Uint32Array(n + 1);
  let generation = 0;
  return (name) => {
    let curLen = 0;
    const add = (list: Int32Array, len: number, s: number): number => {
      // A wildcard also matches the empty string: adding its state adds the one after it.
      while (seen[s] !== generation) {
        seen[s] = generation;
        list[len++] = s;
        if (s === n || tokens[s] >= 0) break;
        s++;
      }
      return len;
    };
    generation++;
    curLen = add(cur, 0, 0);
    for (let i = 0; i < name.length && curLen > 0; i++) {
      const c = name.charCodeAt(i);
      generation++;
      let nextLen = 0;
      for (let k = 0; k < curLen; k++) {
        const s = cur[k];
        if (s === n) continue;
        const t = tokens[s];
        if (t === STAR || (t === PERCENT && c !== delim)) nextLen = add(next, nextLen, s);
        else if (t === c) nextLen = add(next, nextLen, s + 1);
      }
      [cur, next] = [next, cur];
      curLen = nextLen;
    }
    for (let k = 0; k < curLen; k++) if (cur[k] === n) return true;
    return false;
  };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
