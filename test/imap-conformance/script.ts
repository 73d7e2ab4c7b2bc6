// Parser for Dovecot imaptest's scripted tests (see ../shared/conformance/imaptest/scripted_test.md).
//
// A script is a header (`key: value` lines up to the first empty line) and then commands, each
// with the untagged replies it expects and its tagged reply. What this parser accepts and how
// it reads it follows imaptest's own parser (test-parser.c of its release-2.3 branch):
//
// - Header keys: capabilities, connections ("n" = 2), messages ("all" or a count; default
//   "all", as scripted_test.md says — imaptest itself changed its default to 0 in 2021, which
//   leaves urlauth2, written before, without the two messages it fetches), state (nonauth, auth, created, appended,
//   selected; default selected), ignore_extra_untagged (y… = yes; default yes), and
//   `user N: NAME` (connection N logs in as NAME; `$user2` means the second test user).
// - Lines starting with '#' are comments; empty lines separate nothing but are allowed.
// - `!ifenv VAR` / `!ifnenv VAR` / `!else` / `!endif` include lines by environment variable;
//   `!sleep TIME` and `!output TEXT` attach to the current command group.
// - Multi-line literals: a line ending in `{{{` (or `~{{{` for a literal8) continues with raw
//   lines up to one starting with `}}}`; the literal is those lines, each ended by CRLF (a
//   literal8 keeps each line's own bytes and ends it with LF only), minus the last line's
//   ending. What follows `}}}` on that line continues the logical line (it may open another).
// - With more than one connection every command starts with its connection number (1..n).
// - Method 1: `[conn] OK|NO|BAD|"" command` then `* reply` lines: a group of its own.
//   Method 2: `[conn] command`, `* reply` lines, then `OK|NO|BAD|"" [prefix…]`.
//   Method 3: `[conn] tagN command` lines (pipelined in one group), `* reply` lines, then a
//   `tagN OK|NO|BAD|"" [prefix…]` line for each. The doc also shows the connection number
//   before a reply line (`1 ok [read-write]`, `1 tag1 ok`), which imaptest itself rejects;
//   this parser accepts both forms.
// - Expected untagged replies: `* ` must arrive, `! ` must not, `? ` may. Their lists get
//   imaptest's default `$!` directives (FETCH (…) unordered in pairs, its FLAGS (…) unordered
//   with no extras but \Recent / $HasAttachment / $HasNoAttachment, LIST/LSUB flags
//   unordered, STATUS (…) unordered in pairs) unless the list has directives of its own.
// - Unless a command is LOGOUT or a group expects `* BYE`, an `ok logout` on connection 1 ends
//   the script.
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { atom, parseArgs, showBytes, type ImapArg } from './imap-args.js';

export type StartupState = 'nonauth' | 'auth' | 'created' | 'appended' | 'selected';
export const STARTUP_STATES: readonly StartupState[] = ['nonauth', 'auth', 'created', 'appended', 'selected'];

export type CommandPart = { kind: 'text'; text: string } | { kind: 'literal'; data: string; binary: boolean };

export interface ScriptCommand {
  /** Line of the command in the script (0 for the LOGOUT the parser adds). */
  line: number;
  /** N of a `tagN` pipelining tag, 0 when none. */
  tag: number;
  /** The command as written, after the connection number, tag and inline status: text and literals, variables not expanded. */
  parts: CommandPart[];
  /** Expected tagged reply: status atom (ok/no/bad, or "" for any) and optional prefix arguments. */
  reply: ImapArg[];
}

export type Existence = 'must' | 'mustNot' | 'may';

export interface ExpectedUntagged {
  line: number;
  existence: Existence;
  /** Parsed arguments, default directives inserted. */
  args: ImapArg[];
  /** The line as written (for messages). */
  source: string;
  /** The reply after `* ` / `! ` / `? `, unabridged: a binary string, literals embedded as `{n}\r\n` + data. */
  text: string;
}

export interface CommandGroup {
  /** 0-based connection index. */
  connection: number;
  commands: ScriptCommand[];
  untagged: ExpectedUntagged[];
  sleepMs: number;
  output: string[];
  /** The group expects `* BYE`: a disconnection after it is expected. */
  expectsBye: boolean;
}

export type ScriptUser = { kind: 'name'; name: string } | { kind: 'user2' };

export interface Script {
  name: string;
  capabilities: string[];
  connections: number;
  /** Messages to append from the mbox in the `appended`/`selected` states: a count (wrapping around the mbox) or 'all'. */
  messages: number | 'all';
  state: StartupState;
  ignoreExtraUntagged: boolean;
  /** Per-connection user from `user N:` headers (index N-1). */
  users: (ScriptUser | undefined)[];
  requireUser2: boolean;
  groups: CommandGroup[];
}

export class ScriptParseError extends Error {
  constructor(
    readonly script: string,
    readonly line: number,
    message: string,
  ) {
    super(`${script} line ${line}: ${message}`);
  }
}

export interface ParseOptions {
  name: string;
  /** Environment for !ifenv / !ifnenv (default process.env). */
  env?: Record<string, string | undefined>;
}

type Segment = string | { literal: string; binary: boolean };
interface LogicalLine {
  line: number;
  segments: Segment[];
}

/** Parses a script's text (a binary string: one char per byte, as read with 'latin1'). */
export function parseScript(text: string, opts: ParseOptions): Script {
  const env = opts.env ?? process.env;
  const fail = (line: number, msg: string): never => {
    throw new ScriptParseError(opts.name, line, msg);
  };
  const script: Script = {
    name: opts.name,
    capabilities: [],
    connections: 1,
    messages: 'all',
    state: 'selected',
    ignoreExtraUntagged: true,
    users: [],
    requireUser2: false,
    groups: [],
  };

  // 1. Physical lines -> logical lines (comments and blank lines dropped, {{{ }}} joined).
  const physical = text.split('\n');
  if (physical[physical.length - 1] === '') physical.pop();
  const logical: { line: number; header: boolean; segments: Segment[] }[] = [];
  let header = true;
  let multi: { start: number; segments: Segment[]; lines: string[]; binary: boolean } | undefined;
  const openLiteral = (prefix: string): { text: string; binary: boolean } => {
    const body = prefix.slice(0, -3);
    if (body.endsWith('~')) return { text: body.slice(0, -1), binary: true };
    return { text: body, binary: false };
  };
  for (let idx = 0; idx < physical.length; idx++) {
    const lineNo = idx + 1;
    const line = physical[idx]!;
    if (multi) {
      if (!line.startsWith('}}}')) {
        multi.lines.push(line);
        continue;
      }
      const ending = multi.binary ? '\n' : '\r\n';
      const data = multi.lines.map((l) => l + ending).join('');
      multi.segments.push({ literal: multi.lines.length === 0 ? '' : data.slice(0, data.length - ending.length), binary: multi.binary });
      const rest = line.slice(3);
      if (rest.endsWith('{{{')) {
        const o = openLiteral(rest);
        multi.segments.push(o.text);
        multi.lines = [];
        multi.binary = o.binary;
        continue;
      }
      multi.segments.push(rest);
      logical.push({ line: multi.start, header, segments: multi.segments });
      multi = undefined;
      continue;
    }
    if (line.trim() === '') {
      header = false;
      continue;
    }
    if (line.startsWith('#')) continue;
    if (line.endsWith('{{{')) {
      const o = openLiteral(line);
      multi = { start: lineNo, segments: [o.text], lines: [], binary: o.binary };
      continue;
    }
    logical.push({ line: lineNo, header, segments: [line] });
  }
  if (multi) fail(multi.start, 'multi-line literal not ended with }}}');

  // 2. Header and commands.
  interface GroupState extends CommandGroup {
    pending: number;
  }
  let group: GroupState | undefined;
  const ifStack: { line: number; elseSeen: boolean; outerSkip: boolean }[] = [];
  let skip = false;

  for (const ll of logical) {
    const { line } = ll;
    if (ll.header) {
      if (ll.segments.length !== 1) fail(line, 'literal in header');
      parseHeaderLine(script, ll.segments[0] as string, (m) => fail(line, m));
      continue;
    }
    const first = ll.segments[0] as string;
    if (first.startsWith('!ifenv ') || first.startsWith('!ifnenv ')) {
      const neg = first.startsWith('!ifnenv ');
      const varName = first.slice(neg ? 8 : 7).trim();
      const have = env[varName] !== undefined;
      ifStack.push({ line, elseSeen: false, outerSkip: skip });
      if (neg ? have : !have) skip = true;
      continue;
    }
    if (first === '!else') {
      const top = ifStack[ifStack.length - 1];
      if (!top) fail(line, '!else without !ifenv');
      if (top!.elseSeen) fail(line, '!else already seen');
      top!.elseSeen = true;
      if (!top!.outerSkip) skip = !skip;
      continue;
    }
    if (first === '!endif') {
      const top = ifStack.pop();
      if (!top) fail(line, '!endif without !ifenv');
      skip = top!.outerSkip;
      continue;
    }
    if (skip) continue;

    if (group) {
      if (first.startsWith('!sleep ')) {
        group.sleepMs = parseDuration(first.slice(7).trim(), (m) => fail(line, m));
        continue;
      }
      if (first.startsWith('!output ')) {
        group.output.push(first.slice(8));
        continue;
      }
      const ex = existenceOf(first);
      if (ex) {
        const flat = flatten(ll.segments).slice(2);
        group.untagged.push(parseUntagged(flat, ex, line, opts.name, group));
        continue;
      }
      if (group.pending > 0) {
        // A tagged reply line, optionally (as the doc shows) after the connection number.
        let body = flatten(ll.segments);
        const conn = /^(\d+) /.exec(body);
        if (conn && script.connections > 1) {
          const after = body.slice(conn[0].length);
          if (getCmdReply(after).reply !== undefined) {
            if (Number(conn[1]) - 1 !== group.connection) fail(line, `reply for connection ${conn[1]} in a group of connection ${group.connection + 1}`);
            body = after;
          }
        }
        const r = getCmdReply(body);
        if (r.reply !== undefined) {
          const cmd = group.commands.find((c) => c.tag === r.tag);
          if (!cmd) fail(line, 'reply for unknown tag');
          if (cmd!.reply.length > 0) fail(line, 'command already has a reply');
          let args: ImapArg[];
          try {
            args = parseArgs(body);
          } catch (e) {
            return fail(line, `bad reply: ${(e as Error).message}`);
          }
          cmd!.reply = r.tag === 0 ? args : args.slice(1);
          group.pending--;
          continue;
        }
      }
    }

    // A new command.
    if (!group || group.pending === 0) {
      group = { connection: 0, commands: [], untagged: [], sleepMs: 0, output: [], expectsBye: false, pending: 0 };
      script.groups.push(group);
    }
    let segs = ll.segments.slice();
    let head = segs[0] as string;
    if (script.connections > 1) {
      const m = /^(\d+)(?: |$)/.exec(head);
      if (!m || Number(m[1]) === 0) fail(line, 'missing connection number');
      const conn = Number(m![1]) - 1;
      if (group.commands.length > 0 && group.connection !== conn) fail(line, 'all pipelined commands must use the same connection');
      group.connection = conn;
      if (conn + 1 > script.connections) script.connections = conn + 1;
      head = head.slice(m![0].length);
    }
    const r = getCmdReply(head);
    head = r.rest;
    if (r.tag === 0) {
      if (group.pending > 0) fail(line, 'missing reply from previous command group');
      if (group.commands.length > 0) fail(line, 'missing reply from previous command group');
    } else if (group.commands.some((c) => c.tag === r.tag)) {
      fail(line, 'tag reused within command group');
    }
    segs[0] = head;
    const parts: CommandPart[] = segs
      .map((s): CommandPart => (typeof s === 'string' ? { kind: 'text', text: s } : { kind: 'literal', data: s.literal, binary: s.binary }))
      .filter((p) => p.kind === 'literal' || p.text !== '');
    const cmd: ScriptCommand = { line, tag: r.tag, parts, reply: r.reply === undefined ? [] : [{ type: 'atom', value: r.reply }] };
    if (r.reply === undefined) group.pending++;
    group.commands.push(cmd);
  }

  if (ifStack.length > 0) fail(ifStack[0]!.line, '!ifenv not closed with !endif');
  if (script.groups.length === 0) fail(physical.length, 'no commands');
  if (group && group.pending > 0) {
    const missing = group.commands.find((c) => c.reply.length === 0)!;
    fail(missing.line, 'missing reply for this command');
  }

  const hasLogout = script.groups.some((g) => g.expectsBye || g.commands.some((c) => commandText(c).trim().toLowerCase() === 'logout'));
  if (!hasLogout) {
    script.groups.push({
      connection: 0,
      commands: [{ line: 0, tag: 0, parts: [{ kind: 'text', text: 'logout' }], reply: [{ type: 'atom', value: 'ok' }] }],
      untagged: [],
      sleepMs: 0,
      output: [],
      expectsBye: false,
    });
  }
  // Strip the parser's bookkeeping.
  script.groups = script.groups.map((g) => ({
    connection: g.connection,
    commands: g.commands,
    untagged: g.untagged,
    sleepMs: g.sleepMs,
    output: g.output,
    expectsBye: g.expectsBye,
  }));
  return script;
}

function parseHeaderLine(script: Script, line: string, fail: (m: string) => never): void {
  const colon = line.indexOf(':');
  if (colon < 0) fail("missing ':' in header line");
  const key = line.slice(0, colon).trimEnd().toLowerCase();
  const value = line.slice(colon + 1).trim();
  switch (key) {
    case 'capabilities':
      script.capabilities = value.split(/ +/).filter((c) => c !== '');
      return;
    case 'connections': {
      const n = value === 'n' ? 2 : Number.parseInt(value, 10);
      if (!Number.isInteger(n) || n < 1) fail(`bad connections value ${JSON.stringify(value)}`);
      script.connections = n;
      return;
    }
    case 'ignore_extra_untagged':
      script.ignoreExtraUntagged = value.startsWith('y');
      return;
    case 'messages': {
      if (value === 'all') script.messages = 'all';
      else {
        const n = Number.parseInt(value, 10);
        if (!Number.isInteger(n) || n < 0) fail(`bad messages value ${JSON.stringify(value)}`);
        script.messages = n;
      }
      return;
    }
    case 'state': {
      const s = value.toLowerCase() as StartupState;
      if (!STARTUP_STATES.includes(s)) fail(`unknown state ${JSON.stringify(value)}`);
      script.state = s;
      return;
    }
  }
  const user = /^user (\d+)$/.exec(key);
  if (user && Number(user[1]) > 0) {
    const idx = Number(user[1]) - 1;
    if (value === '$user2' || value === '${user2}') {
      script.requireUser2 = true;
      script.users[idx] = { kind: 'user2' };
    } else {
      script.users[idx] = { kind: 'name', name: value };
    }
    return;
  }
  fail(`unknown header setting ${JSON.stringify(key)}`);
}

function existenceOf(line: string): Existence | undefined {
  if (line.startsWith('* ')) return 'must';
  if (line.startsWith('! ')) return 'mustNot';
  if (line.startsWith('? ')) return 'may';
  return undefined;
}

/** imaptest's test_get_cmd_reply: optional `tagN`, then optional OK/NO/BAD/"" and the rest of the line. */
function getCmdReply(line: string): { tag: number; reply: string | undefined; rest: string } {
  let tag = 0;
  let rest = line;
  const word = (s: string): string => {
    const sp = s.indexOf(' ');
    return sp < 0 ? s : s.slice(0, sp);
  };
  let w = word(rest);
  if (w.toLowerCase().startsWith('tag')) {
    const sp = rest.indexOf(' ');
    const num = w.slice(3);
    if (sp >= 0 && /^\d+$/.test(num) && Number(num) > 0) {
      tag = Number(num);
      rest = rest.slice(sp + 1);
      w = word(rest);
    }
  }
  let reply: string | undefined;
  const lw = w.toLowerCase();
  if (lw === 'ok' || lw === 'no' || lw === 'bad') reply = lw;
  else if (w === '""') reply = '';
  if (reply !== undefined) {
    rest = rest.slice(w.length);
    if (rest.startsWith(' ')) rest = rest.slice(1);
  }
  return { tag, reply, rest };
}

/** Segments back to one string with `{n}\r\n` (or `~{n}\r\n`) before each literal, as imaptest builds it. */
function flatten(segments: Segment[]): string {
  return segments.map((s) => (typeof s === 'string' ? s : `${s.binary ? '~' : ''}{${s.literal.length}}\r\n${s.literal}`)).join('');
}

function parseDuration(v: string, fail: (m: string) => never): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|msecs?|milliseconds?|s|secs?|seconds?|m|mins?|minutes?)?$/i.exec(v);
  if (!m) fail(`bad !sleep value ${JSON.stringify(v)}`);
  const n = Number(m![1]);
  const unit = (m![2] ?? 's').toLowerCase();
  if (unit.startsWith('ms') || unit.startsWith('milli')) return n;
  if (unit.startsWith('m')) return n * 60_000;
  return n * 1000;
}

interface DirCtx {
  parent?: DirCtx;
  replyName: string;
  /** Last atom seen before this list in the parent (lowercase), as imaptest tracks it. */
  prevAtom?: string;
  parentChainIdx: number;
  chainCount: number;
  directives: boolean;
}

function parseUntagged(text: string, existence: Existence, line: number, name: string, group: CommandGroup): ExpectedUntagged {
  let args: ImapArg[];
  try {
    args = parseArgs(text);
  } catch (e) {
    throw new ScriptParseError(name, line, `bad untagged reply: ${(e as Error).message}`);
  }
  let replyName = '';
  const a0 = atom(args[0]);
  if (a0 !== undefined) {
    replyName = a0;
    if (a0.startsWith('$') || /^[0-9]/.test(a0)) replyName = atom(args[1]) ?? '';
  }
  const ctx: DirCtx = { replyName, parentChainIdx: 0, chainCount: 1, directives: false };
  const err = handleDirectives(ctx, args);
  if (err) throw new ScriptParseError(name, line, err);
  if (replyName.slice(0, 3).toUpperCase() === 'BYE') {
    if (existence === 'must') group.expectsBye = true;
    else if (existence === 'may') throw new ScriptParseError(name, line, '? BYE is not supported');
  }
  return { line, existence, args, text, source: `${existence === 'must' ? '*' : existence === 'mustNot' ? '!' : '?'} ${showBytes(text, 400)}` };
}

/** Validates `$!` directives and inserts imaptest's defaults, recursively (test_parse_untagged_handle_directives). */
function handleDirectives(ctx: DirCtx, items: ImapArg[]): string | undefined {
  for (const it of items) {
    const a = atom(it);
    if (a === undefined || !a.startsWith('$!')) break;
    const d = a.slice(2);
    if (d.startsWith('unordered')) {
      if (d === 'unordered') {
        /* ok */
      } else if (/^unordered=\d+$/.test(d) && Number(d.slice(10)) > 0) {
        ctx.chainCount = Number(d.slice(10));
      } else return `broken $!unordered directive: ${a}`;
    } else if (!(d === 'ordered' || d === 'noextra' || d === 'extra' || d.startsWith('ignore=') || d.startsWith('ban='))) {
      return `unknown directive: ${a}`;
    }
    ctx.directives = true;
  }
  if (!ctx.directives) addDefaultDirectives(ctx, items);
  let directiveCount = 0;
  for (const it of items) {
    const a = atom(it);
    if (a === undefined || !a.startsWith('$!')) break;
    directiveCount++;
  }
  if ((items.length - directiveCount) % ctx.chainCount !== 0) return `invalid list argument count, chain size=${ctx.chainCount}`;

  let prevAtom: string | undefined;
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    if (it.type === 'atom') prevAtom = it.value.toLowerCase();
    if (it.type !== 'list') continue;
    const sub: DirCtx = {
      parent: ctx,
      replyName: ctx.replyName.toLowerCase(),
      prevAtom,
      parentChainIdx: ctx.chainCount === 1 ? i : i % ctx.chainCount,
      chainCount: 1,
      directives: false,
    };
    const err = handleDirectives(sub, it.items);
    if (err) return err;
  }
  return undefined;
}

function addDefaultDirectives(ctx: DirCtx, items: ImapArg[]): void {
  const parent = ctx.parent;
  if (!parent) return;
  const insert = (...ds: string[]): void => {
    items.unshift(...ds.map((value): ImapArg => ({ type: 'atom', value })));
  };
  const name = ctx.replyName;
  const parentIsTop = parent.parent === undefined;
  if (name === 'list' || name === 'lsub') {
    // list|lsub (flags) sep mailbox
    if (parentIsTop && parent.parentChainIdx === 0 && ctx.parentChainIdx === 1) insert('$!unordered');
  } else if (name === 'status') {
    // status <mailbox> (reply)
    if (parentIsTop && parent.parentChainIdx === 0 && ctx.parentChainIdx === 2) insert('$!unordered=2');
  } else if (name === 'fetch') {
    if (parentIsTop && parent.parentChainIdx === 0 && ctx.parentChainIdx === 2) {
      // <seq> fetch (reply)
      insert('$!unordered=2');
    } else if (
      parent.parent !== undefined &&
      parent.parent.parent === undefined &&
      parent.parent.parentChainIdx === 0 &&
      parent.parentChainIdx === 2 &&
      ctx.prevAtom === 'flags'
    ) {
      // <seq> fetch (flags (..))
      insert('$!unordered', '$!noextra', '$!ignore=\\recent', '$!ignore=$HasAttachment', '$!ignore=$HasNoAttachment');
    }
  }
}

/** The command's text with literals shown as `{n}`, for messages. */
export function commandText(cmd: ScriptCommand): string {
  return cmd.parts.map((p) => (p.kind === 'text' ? p.text : `${p.binary ? '~' : ''}{${p.data.length}}`)).join('');
}

/** The script line of a command as written (connection number, tag and status included), for messages. */
export function describeCommand(script: Script, group: CommandGroup, cmd: ScriptCommand): string {
  const conn = script.connections > 1 ? `${group.connection + 1} ` : '';
  const tag = cmd.tag ? `tag${cmd.tag} ` : '';
  return `${conn}${tag}${showBytes(commandText(cmd), 300)}`;
}

// ---------------------------------------------------------------------------------------------
// Files

/** Script names in `dir`: regular files not ending in .mbox, sorted (directories such as broken/ are not tests). */
export function listScripts(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => !f.startsWith('.') && !f.endsWith('.mbox'))
    .filter((f) => statSync(join(dir, f)).isFile())
    .sort();
}

export interface LoadedScript {
  script: Script;
  /** The mbox whose messages are appended: `<name>.mbox`, or default.mbox. */
  mboxPath: string;
}

/** Reads and parses `dir/name`; its mbox is `dir/name.mbox` when present, else `dir/default.mbox`. */
export function loadScript(dir: string, name: string, env?: Record<string, string | undefined>): LoadedScript {
  const text = readFileSync(join(dir, name)).toString('latin1');
  const script = parseScript(text, { name, env });
  const own = join(dir, `${name}.mbox`);
  return { script, mboxPath: existsSync(own) ? own : join(dir, 'default.mbox') };
}
