// IMAP argument lists, as read from a server response or from an imaptest script line.
//
// All text here is "binary" JavaScript strings: one char per byte (latin1), so literals with
// 8-bit or NUL bytes survive unchanged and lengths are byte counts.
//
// The tokenizer follows Dovecot's imap-parser with the flags imaptest uses for both server
// input and script lines (ATOM_ALLCHARS, LITERAL8, LITERAL_TYPE):
// - an atom runs until SP, CR or LF, or until ')' inside a list; any other byte, '[' ']' '('
//   '{' '"' included, is part of it once the atom has started. So `BODY[HEADER.FIELDS (FROM)]`
//   is the atom `BODY[HEADER.FIELDS`, the list `(FROM)` and the atom `]`, on both sides alike;
// - `(` starts a list, `"` a quoted string (backslash escapes), `{n}` / `{n+}` / `~{n}`
//   followed by CRLF a literal of n bytes (a literal8 with `~`);
// - the atom NIL (any case) is NIL;
// - a ')' outside any list is part of an atom (ALLCHARS).
// In tolerant mode (server input), an unterminated quoted string or list is closed at the end
// of the line instead of being an error: free-form response text must never stop the runner.

export type ImapArg =
  | { type: 'atom'; value: string }
  | { type: 'string'; value: string; form: 'quoted' | 'literal' | 'literal8' }
  | { type: 'nil' }
  | { type: 'list'; items: ImapArg[] };

export class ImapParseError extends Error {}

/** Parses a whole line (literals embedded as `{n}\r\n` + n bytes) into its arguments. */
export function parseArgs(text: string, opts: { tolerant?: boolean } = {}): ImapArg[] {
  const tolerant = opts.tolerant ?? false;
  const top: ImapArg[] = [];
  const stack: ImapArg[][] = [top];
  let i = 0;
  const n = text.length;
  const cur = (): ImapArg[] => stack[stack.length - 1]!;

  while (i < n) {
    const c = text[i]!;
    if (c === ' ') {
      i++;
      continue;
    }
    if (c === '\r' || c === '\n') {
      // End of the line: anything after a line break outside a literal is not ours to parse.
      break;
    }
    if (c === '(') {
      const list: ImapArg = { type: 'list', items: [] };
      cur().push(list);
      stack.push(list.items);
      i++;
      continue;
    }
    if (c === ')' && stack.length > 1) {
      stack.pop();
      i++;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      let value = '';
      let closed = false;
      while (j < n) {
        const d = text[j]!;
        if (d === '\\' && j + 1 < n) {
          value += text[j + 1];
          j += 2;
          continue;
        }
        if (d === '"') {
          closed = true;
          j++;
          break;
        }
        value += d;
        j++;
      }
      if (!closed && !tolerant) throw new ImapParseError(`unterminated quoted string at offset ${i}`);
      cur().push({ type: 'string', value, form: 'quoted' });
      i = j;
      continue;
    }
    if (c === '{' || (c === '~' && text[i + 1] === '{')) {
      const lit = /^(~?)\{(\d+)\+?\}\r?\n/.exec(text.slice(i, i + 40));
      if (lit) {
        const size = Number(lit[2]);
        const start = i + lit[0].length;
        if (start + size > n) {
          if (!tolerant) throw new ImapParseError(`literal of ${size} bytes at offset ${i} is truncated`);
        }
        cur().push({ type: 'string', value: text.slice(start, start + size), form: lit[1] ? 'literal8' : 'literal' });
        i = start + size;
        continue;
      }
      // not a literal: an atom starting with '{' or '~'
    }
    // atom
    let j = i;
    while (j < n) {
      const d = text[j]!;
      if (d === ' ' || d === '\r' || d === '\n') break;
      if (d === ')' && stack.length > 1) break;
      j++;
    }
    const value = text.slice(i, j);
    cur().push(value.toUpperCase() === 'NIL' ? { type: 'nil' } : { type: 'atom', value });
    i = j;
  }
  if (stack.length > 1 && !tolerant) throw new ImapParseError('unclosed list');
  return top;
}

/** The string value of an atom, quoted string or literal (imap_arg_get_astring); undefined for NIL and lists. */
export function astring(arg: ImapArg | undefined): string | undefined {
  if (!arg) return undefined;
  if (arg.type === 'atom' || arg.type === 'string') return arg.value;
  return undefined;
}

/** An atom's value, or undefined. */
export function atom(arg: ImapArg | undefined): string | undefined {
  return arg?.type === 'atom' ? arg.value : undefined;
}

const MAX_SHOWN_LITERAL = 300;

/** Readable rendering of arguments (like imap_args_to_str), long literals shortened, control bytes escaped. */
export function argsToString(args: ImapArg[]): string {
  return args.map(argToString).join(' ');
}

function argToString(a: ImapArg): string {
  switch (a.type) {
    case 'nil':
      return 'NIL';
    case 'atom':
      return a.value;
    case 'list':
      return `(${argsToString(a.items)})`;
    case 'string':
      if (a.form === 'quoted') return `"${a.value.replace(/[\\"]/g, (m) => `\\${m}`)}"`;
      return `${a.form === 'literal8' ? '~' : ''}{${a.value.length}}${showBytes(a.value, MAX_SHOWN_LITERAL)}`;
  }
}

/** Shows binary text on one line: CR, LF, TAB as \\r \\n \\t, other controls and 8-bit bytes as \\xNN (a backslash stays itself); long text cut. */
export function showBytes(s: string, max = 2000): string {
  const cut = s.length > max ? s.slice(0, max) : s;
  const shown = cut.replace(/[\x00-\x1f\x7f-\xff]/g, (ch) => {
    if (ch === '\r') return '\\r';
    if (ch === '\n') return '\\n';
    if (ch === '\t') return '\\t';
    return `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
  return s.length > max ? `${shown}…(+${s.length - max} bytes)` : shown;
}

/** True when `s` can be sent as an IMAP quoted string (no CR, LF, NUL or 8-bit byte). */
export function quotable(s: string): boolean {
  return !/[\r\n\x00\x80-\xff]/.test(s);
}

/** An IMAP quoted string (check quotable() first). */
export function quoteString(s: string): string {
  return `"${s.replace(/[\\"]/g, (m) => `\\${m}`)}"`;
}

/** ASCII-only case folding, as Dovecot's i_toupper: 8-bit bytes compare exactly. */
export function upperAscii(s: string): string {
  return s.replace(/[a-z]+/g, (m) => m.toUpperCase());
}

export function equalsCI(a: string, b: string): boolean {
  return a.length === b.length && upperAscii(a) === upperAscii(b);
}
