// Runs Dovecot imaptest's scripted IMAP tests against a server, over real sockets, the way
// imaptest's test-exec.c runs them (release-2.3 branch):
//
// Setup, by the script's `state:` (each state does the ones before it):
//   nonauth   connect only (and the greeting);
//   auth      LOGIN on every connection (unless greeted with PREAUTH); then, on connection 1, CAPABILITY (unless LOGIN's OK
//             carried it): a script needing a capability the server lacks is skipped; LIST and
//             LSUB "" "<mailbox>*" and DELETE / UNSUBSCRIBE of everything they name (children
//             first; NO is ignored);
//   created   CREATE <mailbox> (not for INBOX);
//   appended  APPEND the mbox messages (`messages:`; the From_ line date as INTERNALDATE);
//   selected  SELECT <mailbox> on every connection (one logged in as another user, from a
//             `user N:` header, first CREATEs its own <mailbox>, NO ignored).
// For `state: nonauth` the capabilities checked are those announced before login.
// Then each command group is sent (pipelined when it has several commands), and every
// response is matched (see match.ts) until all its tagged replies are in. Other connections'
// responses wait in their own queues meanwhile, as imaptest stops reading them. A bare
// `append` appends the next mbox message to <mailbox> with its INTERNALDATE; `append ARGS`
// without a message body appends the next mbox message with ARGS. Failures do not stop the
// script (as in imaptest), except a timeout or an unexpected disconnection.
import { existsSync, readFileSync } from 'node:fs';
import { argsToString, astring, atom, equalsCI, parseArgs, quotable, quoteString, showBytes, upperAscii, type ImapArg } from './imap-args.js';
import { buildCommand, ConnectionClosed, ImapConnection, ReadTimeout, type ConnectOptions, type Response } from './client.js';
import { expandAll, expandArgsForDisplay, FULL, matchArgsAtomic, UninitializedVariable, type MatchContext } from './match.js';
import { imapDateTime, MboxSource, parseMbox } from './mbox.js';
import { imaptestTestsDir } from '../support/reference-data.js';
import { commandText, describeCommand, listScripts, loadScript, STARTUP_STATES, type CommandGroup, type CommandPart, type Script, type ScriptCommand } from './script.js';

/** Where and how to connect (see ConnectOptions), then the test users. */
export interface RunOptions extends Pick<ConnectOptions, 'host' | 'port' | 'tls' | 'ca' | 'servername' | 'insecure'> {
  user: string;
  password: string;
  /** The second user, for scripts with `user 2: $user2` (skipped without it). */
  user2?: string;
  password2?: string;
  /** Prepended to the test mailbox name `imaptest` ($mailbox), e.g. "INBOX." on a server whose personal namespace has a prefix. */
  mailboxPrefix?: string;
  /** Directory of the scripts and .mbox files (default: imaptestTestsDir() of test/support/reference-data.ts). */
  testsDir?: string;
  /** Time allowed for each command's tagged reply, and for connecting (default 10 s). */
  commandTimeoutMs?: number;
  /** Send literals as LITERAL+ when the server announces it (default true, as imaptest). */
  literalPlus?: boolean;
  /** Environment for the scripts' !ifenv (default process.env). */
  env?: Record<string, string | undefined>;
}

export type ScriptStatus = 'pass' | 'fail' | 'skip';

export interface ScriptResult {
  name: string;
  status: ScriptStatus;
  /** Why it failed (all failures, the first one first) or was skipped. */
  reason?: string;
  /** Every line sent and received, with `#` notes (setup, each script command). */
  transcript: string[];
  durationMs: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_TRANSCRIPT_LINES = 20_000;
const MAX_FAILURES_REPORTED = 5;

/** The tests directory: $IMAPTEST_TESTS_DIR, else the reference checkout beside the repository (test/support/reference-data.ts). */
export function defaultTestsDir(): string {
  return imaptestTestsDir();
}

/** Runs one script; never throws (a runner error is a failure with its reason). */
export async function runScript(name: string, opts: RunOptions): Promise<ScriptResult> {
  const started = Date.now();
  const transcript: string[] = [];
  const dir = opts.testsDir ?? defaultTestsDir();
  const done = (status: ScriptStatus, reason?: string): ScriptResult => ({ name, status, reason, transcript, durationMs: Date.now() - started });
  let script: Script;
  let source: MboxSource;
  try {
    const loaded = loadScript(dir, name, opts.env);
    script = loaded.script;
    source = new MboxSource(parseMbox(readFileSync(loaded.mboxPath).toString('latin1'), loaded.mboxPath));
  } catch (e) {
    return done('fail', `cannot read the script: ${(e as Error).message}`);
  }
  const run = new ScriptRun(script, source, opts, transcript);
  try {
    const r = await run.execute();
    return done(r.status, r.reason);
  } catch (e) {
    return done('fail', `runner error: ${(e as Error).stack ?? String(e)}`);
  } finally {
    await run.closeAll();
  }
}

export interface RunAllOptions {
  /** Only these scripts (names as in the tests directory). */
  only?: string[];
  /** Scripts expected to fail: name -> reason. */
  knownFailures?: Record<string, string>;
  /** Scripts not to run: name -> reason (reported as skipped; ignored for scripts named in `only`). */
  skip?: Record<string, string>;
  /** Called after each script. */
  onResult?: (r: ScriptResult) => void;
}

export interface RunSummary {
  results: ScriptResult[];
  /** Scripts considered (ran + skipped). */
  total: number;
  /** Scripts run to a verdict (passed + failed). */
  ran: number;
  passed: number;
  failed: number;
  skipped: number;
  /** Failed and not listed as known failures. */
  newFailures: ScriptResult[];
  /** Failed, as listed. */
  knownFailed: ScriptResult[];
  /** Listed as known failures but passed: the list must be updated. */
  fixed: string[];
  /** Names in the known-failure list that are not scripts. */
  unknownKnownFailures: string[];
  durationMs: number;
}

/** Runs the scripts one after the other (they share the test mailboxes). */
export async function runAll(opts: RunOptions, o: RunAllOptions = {}): Promise<RunSummary> {
  const started = Date.now();
  const dir = opts.testsDir ?? defaultTestsDir();
  if (!existsSync(dir)) throw new Error(`imaptest scripts not found in ${dir} (set IMAPTEST_TESTS_DIR or testsDir)`);
  const all = listScripts(dir);
  let names = all;
  if (o.only && o.only.length > 0) {
    const unknown = o.only.filter((n) => !all.includes(n));
    if (unknown.length > 0) throw new Error(`no such script: ${unknown.join(', ')}`);
    names = all.filter((n) => o.only!.includes(n));
  }
  const known = o.knownFailures ?? {};
  const results: ScriptResult[] = [];
  for (const name of names) {
    const skipReason = o.skip?.[name];
    const r: ScriptResult =
      skipReason !== undefined && !o.only?.includes(name)
        ? { name, status: 'skip', reason: skipReason, transcript: [], durationMs: 0 }
        : await runScript(name, opts);
    results.push(r);
    o.onResult?.(r);
  }
  const failedList = results.filter((r) => r.status === 'fail');
  return {
    results,
    total: results.length,
    ran: results.filter((r) => r.status !== 'skip').length,
    passed: results.filter((r) => r.status === 'pass').length,
    failed: failedList.length,
    skipped: results.filter((r) => r.status === 'skip').length,
    newFailures: failedList.filter((r) => !(r.name in known)),
    knownFailed: failedList.filter((r) => r.name in known),
    fixed: results.filter((r) => r.status === 'pass' && r.name in known).map((r) => r.name),
    unknownKnownFailures: Object.keys(known).filter((n) => !all.includes(n)),
    durationMs: Date.now() - started,
  };
}

// ---------------------------------------------------------------------------------------------

interface Conn {
  index: number;
  conn: ImapConnection;
  user: string;
  password: string;
  /** Messages this connection knows of in its selected mailbox (EXISTS minus EXPUNGEs). */
  exists: number;
  logoutSent: boolean;
  seenBye: boolean;
  /** The greeting was PREAUTH: no LOGIN. */
  preauth: boolean;
}

class SetupError extends Error {}
class Abort extends Error {}

interface GroupState {
  group: CommandGroup;
  index: number;
  cs: Conn;
  ctx: MatchContext;
  seqmap: number[];
  found: boolean[];
  best: { count: number; raw: string }[];
  mismatches: number;
  firstExtra: string | undefined;
  untaggedReceived: string[];
  sent: { cmd: ScriptCommand; tag: string; done: boolean; reply?: string }[];
}

class ScriptRun {
  private conns: Conn[] = [];
  private readonly vars = new Map<string, string>();
  private readonly failures: string[] = [];
  private readonly timeoutMs: number;
  private readonly mailbox: string;
  private caps: string[] = [];

  constructor(
    private readonly script: Script,
    private readonly source: MboxSource,
    private readonly opts: RunOptions,
    private readonly transcript: string[],
  ) {
    this.timeoutMs = opts.commandTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.mailbox = `${opts.mailboxPrefix ?? ''}imaptest`;
  }

  private note(line: string): void {
    if (this.transcript.length < MAX_TRANSCRIPT_LINES) this.transcript.push(line);
    else if (this.transcript.length === MAX_TRANSCRIPT_LINES) this.transcript.push('# (transcript truncated)');
  }

  async execute(): Promise<{ status: ScriptStatus; reason?: string }> {
    const s = this.script;
    if (s.requireUser2 && !this.opts.user2) return { status: 'skip', reason: 'needs a second user (user2 not given)' };
    try {
      await this.connectAll();
      const level = STARTUP_STATES.indexOf(s.state);
      if (s.state === 'nonauth') {
        await this.ensureCapabilities(this.conns[0]!);
      } else {
        for (const c of this.conns) if (!c.preauth) await this.login(c);
        await this.ensureCapabilities(this.conns[0]!);
      }
      this.caps = this.conns[0]!.conn.capabilities;
      const missing = s.capabilities.filter((want) => !this.caps.some((have) => equalsCI(have, want)));
      if (missing.length > 0) {
        await this.closeAll();
        return { status: 'skip', reason: `server lacks capabilit${missing.length > 1 ? 'ies' : 'y'} ${missing.join(' ')}` };
      }
      if (level >= STARTUP_STATES.indexOf('auth')) await this.deleteMailboxes(this.conns[0]!);
      if (level >= STARTUP_STATES.indexOf('created') && upperAscii(this.mailbox) !== 'INBOX') {
        await this.setup(this.conns[0]!, `CREATE ${quoteString(this.mailbox)}`);
      }
      if (level >= STARTUP_STATES.indexOf('appended')) await this.appendMessages(this.conns[0]!);
      if (level >= STARTUP_STATES.indexOf('selected')) {
        for (const c of this.conns) {
          // A connection logged in as another user (`user N:`) has its own, maybe missing, test mailbox.
          if (c.user !== this.conns[0]!.user && upperAscii(this.mailbox) !== 'INBOX') {
            await this.setup(c, `CREATE ${quoteString(this.mailbox)}`, { allowNo: true });
          }
          await this.setup(c, `SELECT ${quoteString(this.mailbox)}`, { select: true });
        }
      }
    } catch (e) {
      if (e instanceof SetupError || e instanceof ConnectionClosed || e instanceof ReadTimeout) {
        return { status: 'fail', reason: `setup (state ${s.state}) failed: ${e.message}` };
      }
      throw e;
    }
    this.initVariables();
    this.note('# setup done, script starts');
    for (let i = 0; i < s.groups.length; i++) {
      try {
        await this.runGroup(i);
      } catch (e) {
        if (e instanceof Abort) break;
        throw e;
      }
    }
    if (this.failures.length === 0) return { status: 'pass' };
    const shown = this.failures.slice(0, MAX_FAILURES_REPORTED);
    const more = this.failures.length - shown.length;
    return { status: 'fail', reason: shown.join('\n\n') + (more > 0 ? `\n\n(and ${more} more failures)` : '') };
  }

  async closeAll(): Promise<void> {
    const conns = this.conns;
    this.conns = [];
    await Promise.all(conns.map((c) => (c.logoutSent ? Promise.resolve(c.conn.destroy()) : c.conn.logoutAndClose(500))));
  }

  // ---- setup -------------------------------------------------------------------------------

  private async connectAll(): Promise<void> {
    for (let i = 0; i < this.script.connections; i++) {
      const u = this.script.users[i];
      let user = this.opts.user;
      let password = this.opts.password;
      if (u?.kind === 'user2') {
        user = this.opts.user2!;
        password = this.opts.password2 ?? this.opts.password;
      } else if (u?.kind === 'name') user = u.name;
      this.note(`# connection ${i + 1}: connecting to ${this.opts.host}:${this.opts.port} (${this.opts.tls})`);
      let opened;
      try {
        opened = await ImapConnection.open({
          host: this.opts.host,
          port: this.opts.port,
          tls: this.opts.tls,
          ca: this.opts.ca,
          servername: this.opts.servername,
          insecure: this.opts.insecure,
          timeoutMs: this.timeoutMs,
          label: String(i + 1),
          trace: (l) => this.note(l),
        });
      } catch (e) {
        throw new SetupError(`connection ${i + 1}: ${(e as Error).message}`);
      }
      const preauth = equalsCI(atom(opened.greeting.args[0]) ?? '', 'PREAUTH');
      this.conns.push({ index: i, conn: opened.conn, user, password, exists: 0, logoutSent: false, seenBye: false, preauth });
    }
  }

  private literalPlus(c: Conn): boolean {
    const caps = c.conn.capabilities.length > 0 ? c.conn.capabilities : this.caps;
    return this.opts.literalPlus !== false && caps.some((x) => equalsCI(x, 'LITERAL+'));
  }

  /** Sends a setup command and reads up to its tagged reply, which must be OK (NO tolerated with allowNo). */
  private async setup(c: Conn, text: string | CommandPart[], o: { allowNo?: boolean; select?: boolean } = {}): Promise<Response[]> {
    const parts: CommandPart[] = typeof text === 'string' ? [{ kind: 'text', text }] : text;
    const tag = c.conn.newTag();
    if (o.select) c.exists = 0;
    c.conn.submit(buildCommand(tag, parts, this.literalPlus(c)));
    const untagged: Response[] = [];
    for (;;) {
      const r = await c.conn.read(this.timeoutMs);
      if (r.kind === 'untagged') {
        untagged.push(r);
        this.track(c, r, undefined);
        continue;
      }
      if (r.kind === 'tagged' && r.tag === tag) {
        const status = upperAscii(atom(r.args[0]) ?? '');
        if (status === 'OK' || (status === 'NO' && o.allowNo)) return untagged;
        throw new SetupError(`connection ${c.index + 1}: ${showBytes(commandText({ line: 0, tag: 0, parts, reply: [] }), 200)} failed: ${showBytes(r.raw, 300)}`);
      }
      throw new SetupError(`connection ${c.index + 1}: unexpected response ${showBytes(r.raw, 300)}`);
    }
  }

  private async login(c: Conn): Promise<void> {
    if (!quotable(c.user) || !quotable(c.password)) {
      await this.setup(c, [
        { kind: 'text', text: 'LOGIN ' },
        { kind: 'literal', data: c.user, binary: false },
        { kind: 'text', text: ' ' },
        { kind: 'literal', data: c.password, binary: false },
      ]);
    } else await this.setup(c, `LOGIN ${quoteString(c.user)} ${quoteString(c.password)}`);
  }

  private async ensureCapabilities(c: Conn): Promise<void> {
    if (c.conn.capabilities.length === 0) await this.setup(c, 'CAPABILITY');
  }

  private astringParts(prefix: string, value: string, suffix = ''): CommandPart[] {
    if (quotable(value)) return [{ kind: 'text', text: `${prefix}${quoteString(value)}${suffix}` }];
    return [
      { kind: 'text', text: prefix },
      { kind: 'literal', data: value, binary: false },
      { kind: 'text', text: suffix },
    ];
  }

  private async deleteMailboxes(c: Conn): Promise<void> {
    const pattern = quoteString(`${this.mailbox}*`);
    const names = (rs: Response[], kind: string): string[] =>
      rs
        .filter((r) => equalsCI(atom(r.args[0]) ?? '', kind) && r.args[1]?.type === 'list')
        .map((r) => astring(r.args[3]))
        .filter((n): n is string => n !== undefined);
    const listed = names(await this.setup(c, `LIST "" ${pattern}`), 'LIST');
    const subscribed = names(await this.setup(c, `LSUB "" ${pattern}`), 'LSUB');
    const desc = (a: string, b: string): number => {
      const x = a.toLowerCase();
      const y = b.toLowerCase();
      return x < y ? 1 : x > y ? -1 : 0;
    };
    for (const n of [...new Set(listed)].sort(desc)) await this.setup(c, this.astringParts('DELETE ', n), { allowNo: true });
    for (const n of [...new Set(subscribed)].sort(desc)) await this.setup(c, this.astringParts('UNSUBSCRIBE ', n), { allowNo: true });
  }

  private async appendMessages(c: Conn): Promise<void> {
    const m = this.script.messages;
    if (m === 'all') {
      while (!this.source.eof()) await this.setup(c, this.appendParts(`APPEND ${quoteString(this.mailbox)}`, true));
    } else {
      for (let i = 0; i < m; i++) await this.setup(c, this.appendParts(`APPEND ${quoteString(this.mailbox)}`, true));
    }
  }

  /** `<args> ["<internaldate>"] {n}` + the next mbox message. */
  private appendParts(args: string, withDate: boolean): CommandPart[] {
    const msg = this.source.next();
    const date = withDate ? ` "${imapDateTime(msg)}"` : '';
    return [
      { kind: 'text', text: `${args}${date} ` },
      { kind: 'literal', data: msg.data, binary: false },
    ];
  }

  private initVariables(): void {
    for (const c of this.conns) {
      const sfx = c.index === 0 ? '' : String(c.index + 1);
      const at = c.user.indexOf('@');
      this.vars.set(`user${sfx}`, c.user);
      this.vars.set(`username${sfx}`, at < 0 ? c.user : c.user.slice(0, at));
      this.vars.set(`domain${sfx}`, at < 0 ? this.opts.host : c.user.slice(at + 1));
      this.vars.set(`password${sfx}`, c.password);
    }
    this.vars.set('mailbox', this.mailbox);
    this.vars.set('mailbox_url', mailboxUrl(this.mailbox));
  }

  /** Tracks what a connection knows of its mailbox; EXPUNGEs also move the group's relative sequences. */
  private track(c: Conn, r: Response, g: GroupState | undefined): void {
    if (r.kind !== 'untagged') return;
    const a0 = atom(r.args[0]) ?? '';
    const a1 = upperAscii(atom(r.args[1]) ?? '');
    if (/^\d+$/.test(a0)) {
      const n = Number(a0);
      if (a1 === 'EXISTS') c.exists = n;
      else if (a1 === 'EXPUNGE') {
        c.exists = Math.max(0, c.exists - 1);
        if (g) {
          const seqs = g.seqmap;
          if (n <= seqs.length) {
            for (let i = n - 1; i < seqs.length; i++) {
              if (seqs[i]! >= n) seqs[i] = seqs[i] === n ? 0 : seqs[i]! - 1;
            }
          }
        }
      }
    } else if (upperAscii(a0) === 'BYE') c.seenBye = true;
  }

  // ---- script ------------------------------------------------------------------------------

  private fail(g: GroupState, msg: string, o: { showReplies?: boolean } = {}): void {
    const s = this.script;
    const first = g.group.commands[0]!;
    const where =
      first.line > 0
        ? `line ${first.line} (command ${g.index + 1}/${s.groups.length})`
        : `the closing LOGOUT (command ${g.index + 1}/${s.groups.length})`;
    const cmds = g.group.commands.map((c) => `    ${describeCommand(s, g.group, c)}`).join('\n');
    let text = `${where}:\n${cmds}\n  ${msg.replace(/\n/g, '\n  ')}`;
    if (o.showReplies !== false) {
      const rs = g.untaggedReceived;
      if (rs.length > 0) {
        const shown = rs.slice(0, 15).map((r) => `    * ${showBytes(r, 400)}`);
        if (rs.length > 15) shown.push(`    … and ${rs.length - 15} more`);
        text += `\n  untagged replies received:\n${shown.join('\n')}`;
      } else text += '\n  untagged replies received: none';
      const tagged = g.sent.filter((x) => x.reply !== undefined).map((x) => `    ${showBytes(x.reply!, 300)}`);
      if (tagged.length > 0) text += `\n  tagged replies:\n${tagged.join('\n')}`;
    }
    this.failures.push(text);
    this.note(`# FAILED: ${text.replace(/\n/g, '\n#   ')}`);
  }

  private async runGroup(index: number): Promise<void> {
    const s = this.script;
    const group = s.groups[index]!;
    const cs = this.conns[group.connection];
    const seqmap = Array.from({ length: cs?.exists ?? 0 }, (_, i) => i + 1);
    const ctx: MatchContext = {
      vars: this.vars,
      relativeSeq: (n) => {
        if (n === 0) return '<zero seq>';
        if (n > seqmap.length) return '<out of range>';
        return seqmap[n - 1] === 0 ? '<expunged>' : String(seqmap[n - 1]);
      },
    };
    const g: GroupState = {
      group,
      index,
      cs: cs!,
      ctx,
      seqmap,
      found: group.untagged.map(() => false),
      best: [],
      mismatches: 0,
      firstExtra: undefined,
      untaggedReceived: [],
      sent: [],
    };
    const label = group.commands.map((c) => describeCommand(s, group, c)).join(' | ');
    this.note(`# ${group.commands[0]!.line > 0 ? `line ${group.commands[0]!.line}` : 'end'}: ${label}`);
    if (!cs || cs.conn.closed) {
      this.fail(g, `connection ${group.connection + 1} is ${cs ? `closed (${cs.conn.closeReason})` : 'missing'}`, { showReplies: false });
      throw new Abort();
    }

    // Send the group's commands (pipelined).
    for (const cmd of group.commands) {
      let parts: CommandPart[];
      try {
        parts = this.commandParts(cmd, ctx);
      } catch (e) {
        if (e instanceof UninitializedVariable) {
          this.fail(g, `${e.message} (not sent)`, { showReplies: false });
          // Commands already sent in this group still get their replies read.
          if (g.sent.length === 0) return;
          break;
        }
        throw e;
      }
      const text = upperAscii(firstWords(parts));
      const tag = cs.conn.newTag();
      if (cmd.line === 0 || text === 'LOGOUT' || group.expectsBye) cs.logoutSent = true;
      if (/^(SELECT|EXAMINE) /.test(text)) cs.exists = 0;
      cs.conn.submit(buildCommand(tag, parts, this.literalPlus(cs)));
      g.sent.push({ cmd, tag, done: false });
    }

    // Read until every tagged reply is in.
    while (g.sent.some((x) => !x.done)) {
      let r: Response;
      try {
        r = await cs.conn.read(this.timeoutMs);
      } catch (e) {
        if (e instanceof ConnectionClosed) {
          if (group.expectsBye && cs.seenBye) {
            for (const x of g.sent) {
              if (x.done) continue;
              if (!(x.cmd.reply.length === 1 && astring(x.cmd.reply[0]) === '')) {
                this.fail(g, `expected tagged reply '${argsToString(x.cmd.reply)}', but the server disconnected after BYE (only "" is allowed when BYE happens)`);
              }
            }
            break;
          }
          this.fail(g, `unexpected disconnection: ${e.message}`);
          throw new Abort();
        }
        if (e instanceof ReadTimeout) {
          const waiting = g.sent.filter((x) => !x.done).map((x) => x.tag);
          this.fail(g, `timed out: no tagged reply for ${waiting.join(', ')} within ${this.timeoutMs} ms`);
          throw new Abort();
        }
        throw e;
      }
      if (r.kind === 'continuation') {
        this.fail(g, `unexpected continuation request: ${showBytes(r.raw, 200)}`);
        continue;
      }
      if (r.kind === 'untagged') {
        g.untaggedReceived.push(r.raw.slice(2));
        this.matchUntagged(g, r);
        this.track(cs, r, g);
        continue;
      }
      const entry = g.sent.find((x) => x.tag === r.tag && !x.done);
      if (!entry) {
        this.fail(g, `tagged reply for a tag not sent: ${showBytes(r.raw, 300)}`);
        continue;
      }
      entry.done = true;
      entry.reply = r.raw;
      const status = upperAscii(atom(r.args[0]) ?? '');
      if (status === 'OK' && /^(CLOSE|UNSELECT)$/.test(upperAscii(firstWords(entry.cmd.parts)))) cs.exists = 0;
      this.vars.set('tag', entry.tag);
      const m = matchArgsAtomic(ctx, entry.cmd.reply, r.args, true);
      this.vars.delete('tag');
      if (m.count !== FULL) {
        this.fail(g, `expected tagged reply '${argsToString(expandArgsForDisplay(ctx, entry.cmd.reply))}', got '${showBytes(r.raw, 500)}'`);
      }
    }

    // Untagged replies that should have come.
    const missing = group.untagged.map((u, i) => ({ u, i })).filter(({ u, i }) => u.existence === 'must' && !g.found[i]);
    if (missing.length > 0) {
      const { u, i } = missing[0]!;
      const best = g.best[i];
      this.fail(
        g,
        `missing ${missing.length} untagged repl${missing.length > 1 ? 'ies' : 'y'} (${g.mismatches} replies matched nothing)\n` +
          `first missing (line ${u.line}): ${u.source}\n` +
          `  expanded: ${showBytes(argsToString(expandArgsForDisplay(ctx, u.args)), 600)}\n` +
          `  best match: ${best ? showBytes(best.raw, 600) : '(none)'}` +
          (missing.length > 1 ? `\nalso missing: ${missing.slice(1, 6).map((x) => `line ${x.u.line}`).join(', ')}` : ''),
      );
    }
    if (g.firstExtra !== undefined) {
      this.fail(g, `${g.mismatches} unexpected untagged replies (ignore_extra_untagged: no), first: ${showBytes(g.firstExtra, 400)}`);
    }
    for (const out of group.output) this.note(`# output: ${expandAll(ctx, out, true)}`);
    if (group.sleepMs > 0) await new Promise((r) => setTimeout(r, group.sleepMs));
  }

  /** The command to send: variables expanded; `append` without a message gets the next mbox message. */
  private commandParts(cmd: ScriptCommand, ctx: MatchContext): CommandPart[] {
    const parts = cmd.parts.map((p): CommandPart => (p.kind === 'text' ? { kind: 'text', text: expandAll(ctx, p.text) } : p));
    const onlyText = parts.every((p) => p.kind === 'text');
    const text = parts.map((p) => (p.kind === 'text' ? p.text : '')).join('');
    if (onlyText && equalsCI(text, 'append')) {
      return this.appendParts(`APPEND ${quoteString(this.mailbox)}`, true);
    }
    if (/^append /i.test(text) && !appendHasBody(parts)) {
      const rest = flattenParts(parts).slice(7);
      return this.appendParts(`APPEND ${rest}`, false);
    }
    return parts;
  }

  private matchUntagged(g: GroupState, r: Response): void {
    const s = this.script;
    const expected = g.group.untagged;
    if (expected.length === 0 && (s.ignoreExtraUntagged || g.cs.logoutSent)) return;
    const prefix = /^(OK|NO|BAD|BYE)$/i.test(atom(r.args[0]) ?? '');
    const first = g.sent[0];
    const tag = first && !first.done ? first.tag : undefined;
    let foundSome = false;
    for (let i = 0; i < expected.length; i++) {
      if (g.found[i]) continue;
      const e = expected[i]!;
      if (tag !== undefined) this.vars.set('tag', tag);
      const m = matchArgsAtomic(g.ctx, e.args, r.args, prefix);
      this.vars.delete('tag');
      if (m.count === FULL) {
        if (e.existence === 'mustNot') {
          this.fail(g, `unexpected untagged reply: ${showBytes(r.raw, 500)}\n  matches the line ${e.line} that must not: ${e.source}`);
          return;
        }
        g.found[i] = true;
        foundSome = true;
        continue;
      }
      const best = g.best[i];
      if (!best || best.count < m.count) g.best[i] = { count: m.count, raw: r.raw };
    }
    if (!foundSome) {
      g.mismatches++;
      if (!s.ignoreExtraUntagged && g.firstExtra === undefined) g.firstExtra = r.raw;
    }
  }
}

/** The text parts' leading words (up to the first literal), trimmed: e.g. "LOGOUT", "SELECT imaptest". */
function firstWords(parts: CommandPart[]): string {
  let t = '';
  for (const p of parts) {
    if (p.kind !== 'text') break;
    t += p.text;
  }
  return t.trim();
}

function flattenParts(parts: CommandPart[]): string {
  return parts.map((p) => (p.kind === 'text' ? p.text : `${p.binary ? '~' : ''}{${p.data.length}}\r\n${p.data}`)).join('');
}

/** imaptest's append_has_body: after `append`, `mailbox [(flags)] ["datetime"]` is followed by a literal or CATENATE. */
function appendHasBody(parts: CommandPart[]): boolean {
  if (parts.some((p) => p.kind === 'literal')) return true;
  let args: ImapArg[];
  try {
    args = parseArgs(flattenParts(parts).slice(7), { tolerant: true });
  } catch {
    return false;
  }
  if (args.length === 0) return false;
  let i = 1;
  if (args[i]?.type === 'list') i++;
  if (args[i]?.type === 'string' && (args[i] as { form: string }).form === 'quoted') i++;
  const a = args[i];
  return (a?.type === 'string' && a.form !== 'quoted') || equalsCI(atom(a) ?? '', 'catenate');
}

/** $mailbox_url: the mailbox name (modified UTF-7) as UTF-8, percent-encoded for an IMAP URL path (';' included). */
export function mailboxUrl(mailbox: string): string {
  const utf8 = Buffer.from(decodeMutf7(mailbox), 'utf8');
  let out = '';
  for (const b of utf8) {
    const ch = String.fromCharCode(b);
    if (/[A-Za-z0-9\-._~!$&'()*+,=:@/]/.test(ch)) out += ch;
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Modified UTF-7 (RFC 3501 §5.1.3) to a JavaScript string. */
export function decodeMutf7(s: string): string {
  return s.replace(/&([^-]*)-/g, (_, b64: string) => {
    if (b64 === '') return '&';
    const bytes = Buffer.from(b64.replace(/,/g, '/'), 'base64');
    let out = '';
    for (let i = 0; i + 1 < bytes.length; i += 2) out += String.fromCharCode((bytes[i]! << 8) | bytes[i + 1]!);
    return out;
  });
}
