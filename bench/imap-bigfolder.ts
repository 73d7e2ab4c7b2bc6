// IMAP big folder: fill one folder with many small messages (100,000 by default), then time what
// a client does on opening it: SELECT, FETCH 1:* (FLAGS), UID SEARCH ALL / UNSEEN / SUBJECT,
// UID FETCH of the last 50 (ENVELOPE), and NOOP / STATUS (the per-command overhead there).
// Caducée runs in a child process (operator A of a demo space); Dovecot too when installed.
//
//   node --import tsx bench/imap-bigfolder.ts [--messages N] [--fill multiappend|append]
//        [--batch B] [--connections C] [--repeat R] [--target caducee|dovecot|both]
//        [--server-nodelay] [--cpu-prof DIR] [--encrypt] [--workers N] [--fill-only] [--json]
//
// --fill-only: stop after the fill (its rate and server CPU), no timed commands.
//
// --workers N: Caducée runs as `caducee start --workers N` (node:cluster: the primary hands the
// connections to the workers in turn, so the fill's connections land on different processes) on
// a space prepared by this script, instead of the one-process demo; server CPU is the whole
// process tree's, and the fill's CPU per process is printed.
//
// After the fill, every target is checked: `UID SEARCH ALL` gives N distinct UIDs, strictly
// increasing, and (where QUOTA answers) the usage grew by N messages and their size.
//
// --encrypt: Caducée's demo with encryption at rest (caducee demo --encrypt: a key file, message
// files and the header search index sealed; docs/encryption.md).
//
// See bench/README.md.
import { chmodSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  benchDir,
  cleanupAll,
  dovecotInstalled,
  dovecotTargetOption,
  dovecotTargets,
  installSignalHandlers,
  intOption,
  otherCpus,
  parseArgsOrUsage,
  procCpuMs,
  snapshotProcesses,
} from './common.js';
import {
  RawImap,
  appendCommand,
  disturbance,
  f0,
  f1,
  f2,
  imapQuote,
  login,
  machineFacts,
  makeMessage,
  table,
  withImapTarget,
  type ImapTarget,
} from './imap-stress.js';

const FOLDER = 'Big';
/** One message in RARE carries this word in its Subject (the SUBJECT search). */
const RARE_WORD = 'xylophone';
const RARE = 100;
/** One message in UNSEEN_EVERY is left without \Seen. */
const UNSEEN_EVERY = 10;

interface Options {
  messages: number;
  fill: 'multiappend' | 'append';
  batch: number;
  connections: number;
  repeat: number;
  targets: ('caducee' | 'dovecot')[];
  serverNodelay: boolean;
  cpuProf?: string;
  /** `caducee demo --encrypt`: encryption at rest (sealed message files and header search rows). */
  encrypt: boolean;
  /** Caducée as `caducee start --workers N` instead of the demo. */
  workers?: number;
  /** Stop after the fill. */
  fillOnly: boolean;
  json: boolean;
}

function usage(msg: string): never {
  process.stderr.write(
    `imap-bigfolder: ${msg}\nusage: node --import tsx bench/imap-bigfolder.ts [--messages N] [--fill multiappend|append] [--batch B] [--connections C] [--repeat R] [--target caducee|dovecot|both] [--server-nodelay] [--cpu-prof DIR] [--encrypt] [--workers N] [--fill-only] [--json]\n`,
  );
  process.exit(2);
}

async function parseOptions(argv: string[]): Promise<Options> {
  const v = parseArgsOrUsage(
    argv,
    {
      messages: { type: 'string', default: '100000' },
      fill: { type: 'string', default: 'multiappend' },
      batch: { type: 'string', default: '500' },
      connections: { type: 'string', default: '2' },
      repeat: { type: 'string', default: '3' },
      target: { type: 'string' },
      'server-nodelay': { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      encrypt: { type: 'boolean', default: false },
      workers: { type: 'string' },
      'fill-only': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    usage,
  );
  const int = intOption(usage);
  if (v.fill !== 'multiappend' && v.fill !== 'append') usage('--fill must be multiappend or append');
  const haveDovecot = (await dovecotInstalled()) && process.getuid?.() === 0;
  const target = dovecotTargetOption(v.target, haveDovecot, usage);
  if (v.encrypt && target !== 'caducee') usage('--encrypt applies to Caducée only: use --target caducee');
  if (v.encrypt && v.workers !== undefined) usage('--encrypt runs Caducée as the demo, not --workers');
  if (v.workers !== undefined && v['server-nodelay']) usage('--server-nodelay runs Caducée as the demo, not --workers');
  if (target !== 'caducee' && !haveDovecot) usage('Dovecot must be installed (dovecot-imapd) and this must run as root for --target dovecot|both');
  return {
    messages: int(v.messages!, 'messages', 100, 500_000),
    fill: v.fill,
    batch: int(v.batch!, 'batch', 1, 5000),
    connections: int(v.connections!, 'connections', 1, 16),
    repeat: int(v.repeat!, 'repeat', 1, 20),
    targets: dovecotTargets(target),
    serverNodelay: v['server-nodelay']!,
    cpuProf: v['cpu-prof'] ? path.resolve(v['cpu-prof']) : undefined,
    encrypt: v.encrypt!,
    workers: v.workers === undefined ? undefined : int(v.workers, 'workers', 1, 8),
    fillOnly: v['fill-only']!,
    json: v.json!,
  };
}

/** Message i: ~600 bytes, \Seen except one in UNSEEN_EVERY, the rare word in one Subject in RARE. */
const message = (i: number) => makeMessage(i, { bodyBytes: 200, tag: 'big', subject: i % RARE === 0 ? `avis ${RARE_WORD} ${i}` : undefined });
const flagsOf = (i: number) => (i % UNSEEN_EVERY === 0 ? [] : ['\\Seen']);

type Target = ImapTarget;

interface Timing {
  what: string;
  runs: number[];
  /** Untagged responses / result size of the last run (a sanity check). */
  check: string;
  serverCpuMs: number;
}

interface BigResult {
  target: string;
  messages: number;
  fillMs: number;
  fillServerCpuMs: number;
  rssAfterFillKb: number;
  rssAfterSelectKb: number;
  timings: Timing[];
  /** Average CPUs used by other processes during the fill, and during the timed commands. */
  otherCpusFill: number;
  otherCpusTimed: number;
}

async function connect(t: Target, label: string): Promise<RawImap> {
  const { client } = await RawImap.connect({ port: t.port, tls: true, ca: t.ca, servername: 'localhost', tagPrefix: label, timeoutMs: 60_000 });
  await login(client, t.user, t.password);
  // RFC 6855 §4: the messages carry 8-bit UTF-8 Subjects; Caducée refuses them without this.
  // Dovecot 2.3 does not announce UTF8=ACCEPT: its ENABLE answers OK, enabling nothing.
  const r = await client.command('ENABLE UTF8=ACCEPT');
  if (r.status !== 'OK') throw new Error(`ENABLE UTF8=ACCEPT: ${r.status} ${r.text}`);
  return client;
}

/** The quota root's STORAGE usage of FOLDER (KiB, RFC 9208 §5.1); undefined where QUOTA does not answer. */
async function storageKb(c: RawImap): Promise<number | undefined> {
  const r = await c.command(`GETQUOTAROOT ${imapQuote(FOLDER)}`);
  if (r.status !== 'OK') return undefined;
  const m = r.untagged.map((l) => /^\* QUOTA .*\(.*\bSTORAGE (\d+) \d+/i.exec(l)).find(Boolean);
  return m ? Number(m[1]) : undefined;
}

/**
 * Fills FOLDER with o.messages messages over o.connections connections; prints progress. Returns
 * the fill's wall time, the bytes APPENDed and the quota usage before the fill.
 */
async function fillFolder(t: Target, o: Options, log: (s: string) => void): Promise<{ ms: number; bytes: number; storageKbBefore?: number }> {
  const conns = await Promise.all(Array.from({ length: o.connections }, (_, k) => connect(t, `f${k}x`)));
  const r = await conns[0].command(`CREATE ${imapQuote(FOLDER)}`);
  if (r.status !== 'OK') throw new Error(`CREATE ${FOLDER}: ${r.status} ${r.text}`);
  const storageKbBefore = await storageKb(conns[0]);
  let bytes = 0;
  let next = 0;
  let done = 0;
  let lastReport = 0;
  const t0 = performance.now();
  let lastT = t0;
  let lastDone = 0;
  const progress = () => {
    if (done - lastReport < 10_000 && done !== o.messages) return;
    lastReport = done - (done % 10_000);
    const now = performance.now();
    log(`  ${t.name}: ${f0(done)}/${f0(o.messages)} stored, ${f0((done * 1000) / (now - t0))} msg/s overall, ${f0(((done - lastDone) * 1000) / (now - lastT))} msg/s lately${Number.isFinite(t.serverRssKb()) ? `; server RSS ${f0(t.serverRssKb() / 1024)} MiB` : ''}`);
    lastT = now;
    lastDone = done;
  };
  const batch = o.fill === 'multiappend' ? o.batch : 1;
  // Each connection keeps `window` commands in flight: MULTIAPPEND batches, or single LITERAL+ APPENDs.
  const window = o.fill === 'multiappend' ? 2 : 32;
  await Promise.all(
    conns.map(async (c) => {
      const inflight = new Set<Promise<void>>();
      while (next < o.messages) {
        const first = next;
        const n = Math.min(batch, o.messages - first);
        next += n;
        const parts: (string | Buffer)[] = [`APPEND ${imapQuote(FOLDER)}`];
        for (let i = first; i < first + n; i++) {
          const [head, raw] = appendCommand(FOLDER, message(i), flagsOf(i));
          bytes += (raw as Buffer).length;
          // appendCommand gives `APPEND "Big" (flags) {n+}\r\n`; keep what follows the mailbox.
          parts.push(' ' + (head as string).slice(`APPEND ${imapQuote(FOLDER)} `.length), raw);
        }
        const p = c.command(parts, { keep: false }).then((reply) => {
          if (reply.status !== 'OK') throw new Error(`APPEND of messages ${first}..${first + n - 1}: ${reply.status} ${reply.text}`);
          done += n;
          progress();
        });
        const tracked: Promise<void> = p.finally(() => inflight.delete(tracked));
        inflight.add(tracked);
        if (inflight.size >= window) await Promise.race(inflight);
      }
      await Promise.all(inflight);
    }),
  );
  const ms = performance.now() - t0;
  await Promise.all(conns.map((c) => c.logout()));
  return { ms, bytes, storageKbBefore };
}

/**
 * What the fill stored, checked (not timed): as many messages as APPENDed, their UIDs distinct and
 * strictly increasing in sequence order, UIDNEXT above the last, STATUS SIZE (RFC 8438, summed over
 * the messages) the bytes APPENDed, and the quota usage (Caducée: per-folder counters kept by
 * triggers) grown by as much. Throws on a mismatch.
 */
async function checkFill(t: Target, o: Options, fill: { bytes: number; storageKbBefore?: number }, log: (s: string) => void): Promise<void> {
  const c = await connect(t, 'k');
  try {
    const st = await c.command(`STATUS ${imapQuote(FOLDER)} (MESSAGES UIDNEXT SIZE)`);
    const status = st.status === 'OK' ? st : await c.command(`STATUS ${imapQuote(FOLDER)} (MESSAGES UIDNEXT)`);
    if (status.status !== 'OK') throw new Error(`STATUS ${FOLDER}: ${status.status} ${status.text}`);
    const item = (k: string) => {
      const m = new RegExp(`\\b${k} (\\d+)`, 'i').exec(status.untagged.join(' '));
      return m ? Number(m[1]) : undefined;
    };
    const sel = await c.command(`EXAMINE ${imapQuote(FOLDER)}`, { keep: false });
    if (sel.status !== 'OK') throw new Error(`EXAMINE ${FOLDER}: ${sel.status} ${sel.text}`);
    const f = await c.command('FETCH 1:* (UID)');
    if (f.status !== 'OK') throw new Error(`FETCH 1:* (UID): ${f.status} ${f.text}`);
    const uids = f.untagged.map((l) => /^\* (\d+) FETCH \(.*\bUID (\d+)/i.exec(l)).filter((m) => m !== null).map((m) => [Number(m[1]), Number(m[2])]);
    const problems: string[] = [];
    if (item('MESSAGES') !== o.messages) problems.push(`STATUS MESSAGES ${item('MESSAGES')}, expected ${o.messages}`);
    if (uids.length !== o.messages) problems.push(`${uids.length} FETCH (UID) responses, expected ${o.messages}`);
    uids.sort((a, b) => a[0] - b[0]);
    for (let i = 0; i < uids.length; i++) {
      if (uids[i][0] !== i + 1) problems.push(`sequence numbers not 1..N (position ${i}: ${uids[i][0]})`);
      else if (i > 0 && uids[i][1] <= uids[i - 1][1]) problems.push(`UID ${uids[i][1]} at ${i + 1} does not follow UID ${uids[i - 1][1]}`);
      if (problems.length > 5) break;
    }
    const last = uids.length ? uids[uids.length - 1][1] : 0;
    if (item('UIDNEXT') !== undefined && item('UIDNEXT')! <= last) problems.push(`UIDNEXT ${item('UIDNEXT')} not above the last UID ${last}`);
    const size = item('SIZE');
    if (size !== undefined && size !== fill.bytes) problems.push(`STATUS SIZE ${size}, expected the ${fill.bytes} bytes APPENDed`);
    const after = await storageKb(c);
    let quota = 'no QUOTA';
    if (after !== undefined && fill.storageKbBefore !== undefined) {
      const grown = after - fill.storageKbBefore;
      // RFC 9208 §5.1: KiB rounded up, before and after: within one of the bytes' KiB.
      if (Math.abs(grown - fill.bytes / 1024) > 1) problems.push(`quota STORAGE grew by ${grown} KiB, expected ${(fill.bytes / 1024).toFixed(1)}`);
      quota = `quota STORAGE +${grown} KiB`;
    }
    if (problems.length) throw new Error(`${t.name}: the fill's result is wrong: ${problems.join('; ')}`);
    log(`  ${t.name}: checked: ${uids.length} messages, UIDs ${uids[0]?.[1]}..${last} strictly increasing, UIDNEXT ${item('UIDNEXT')}${size !== undefined ? `, SIZE ${size} B` : ''}, ${quota}`);
  } finally {
    await c.logout();
  }
}

async function timeCommands(t: Target, o: Options, log: (s: string) => void): Promise<{ timings: Timing[]; rssAfterSelectKb: number }> {
  const timings: Timing[] = [];
  let rssAfterSelectKb = NaN;
  const c = await connect(t, 't');
  let exists = 0;
  let lastUids: number[] = [];
  c.onUntagged = (line) => {
    const m = /^\* (\d+) EXISTS/i.exec(line);
    if (m) exists = Number(m[1]);
  };
  const timed = async (what: string, cmd: () => string, check: (r: Awaited<ReturnType<RawImap['command']>>) => string, keep = false) => {
    const runs: number[] = [];
    let last = '';
    const cpu0 = t.serverCpuMs();
    for (let k = 0; k < o.repeat; k++) {
      const r = await c.command(cmd(), { keep });
      if (r.status !== 'OK') throw new Error(`${what}: ${r.status} ${r.text}`);
      runs.push(r.ms);
      last = check(r);
    }
    const timing = { what, runs, check: last, serverCpuMs: (t.serverCpuMs() - cpu0) / o.repeat };
    timings.push(timing);
    log(`  ${t.name}: ${what}: ${runs.map((ms) => f1(ms)).join(', ')} ms (${last})`);
    return timing;
  };
  await timed(`SELECT ${FOLDER}`, () => `SELECT ${imapQuote(FOLDER)}`, () => `${f0(exists)} EXISTS`);
  rssAfterSelectKb = t.serverRssKb();
  await timed('NOOP', () => 'NOOP', (r) => `${r.untaggedCount} untagged`);
  await timed(`STATUS ${FOLDER} (MESSAGES UNSEEN)`, () => `STATUS ${imapQuote(FOLDER)} (MESSAGES UNSEEN)`, (r) => r.untagged.join(' ').replace(/^.*\(/, '(').slice(0, 60), true);
  await timed('FETCH 1:* (FLAGS)', () => 'FETCH 1:* (FLAGS)', (r) => `${f0(r.untaggedCount)} FETCH responses`);
  const count = (r: { untagged: string[] }) => {
    const line = r.untagged.find((l) => /^\* (SEARCH|ESEARCH)/i.test(l)) ?? '';
    const nums = line.replace(/^\* SEARCH ?/i, '').trim();
    const uids = nums === '' ? [] : nums.split(' ').map(Number);
    return uids;
  };
  await timed('UID SEARCH ALL', () => 'UID SEARCH ALL', (r) => {
    const uids = count(r);
    lastUids = uids.slice(-50);
    return `${f0(uids.length)} UIDs`;
  }, true);
  await timed('UID SEARCH UNSEEN', () => 'UID SEARCH UNSEEN', (r) => `${f0(count(r).length)} UIDs`, true);
  await timed(`UID SEARCH SUBJECT ${RARE_WORD}`, () => `UID SEARCH SUBJECT ${RARE_WORD}`, (r) => `${f0(count(r).length)} UIDs`, true);
  // Issue 15 (big folders): header searches at 100,000 messages answer in ≤ 200 ms.
  await timed('UID SEARCH FROM bernard', () => 'UID SEARCH FROM bernard', (r) => `${f0(count(r).length)} UIDs`, true);
  await timed('UID SEARCH TO nobody', () => 'UID SEARCH TO nobody', (r) => `${f0(count(r).length)} UIDs`, true);
  await timed('UID SEARCH HEADER Message-ID <big-4242-', () => 'UID SEARCH HEADER Message-ID <big-4242-', (r) => `${f0(count(r).length)} UIDs`, true);
  await timed(`UID SEARCH UNSEEN SUBJECT ${RARE_WORD}`, () => `UID SEARCH UNSEEN SUBJECT ${RARE_WORD}`, (r) => `${f0(count(r).length)} UIDs`, true);
  if (lastUids.length) {
    const set = lastUids.length && lastUids[lastUids.length - 1] - lastUids[0] === lastUids.length - 1 ? `${lastUids[0]}:${lastUids[lastUids.length - 1]}` : lastUids.join(',');
    await timed(`UID FETCH <last 50> (ENVELOPE)`, () => `UID FETCH ${set} (ENVELOPE)`, (r) => `${r.untaggedCount} FETCH responses`);
  }
  // RFC 5267 update contexts: the cost of a flag change (one message, then all of them) without a
  // context, then with one whose result is every message (FROM bernard) and one with no result.
  if (lastUids.length) {
    const one = lastUids[lastUids.length - 1];
    // Each alternates adding and removing its keyword, so that every run changes the messages.
    let flip1 = 0;
    let flipAll = 0;
    const store1 = () => `UID STORE ${one} ${flip1++ % 2 ? '-' : '+'}FLAGS ($Ctx)`;
    const storeAll = () => `STORE 1:* ${flipAll++ % 2 ? '-' : '+'}FLAGS.SILENT ($CtxAll)`;
    const events = (r: { untagged: string[] }) => `${r.untagged.filter((l) => /^\* ESEARCH/i.test(l)).length} ESEARCH`;
    await timed('UID STORE <1 message> ±FLAGS, no context', store1, events, true);
    await timed('STORE 1:* ±FLAGS.SILENT, no context', storeAll, events, true);
    for (const q of ['UID SEARCH RETURN (UPDATE COUNT) FROM bernard', `UID SEARCH RETURN (UPDATE COUNT) SUBJECT ${RARE_WORD} KEYWORD $CtxAll`]) {
      const r = await c.command(q, { keep: true });
      if (r.status !== 'OK') throw new Error(`${q}: ${r.status} ${r.text}`);
      log(`  ${t.name}: ${q}: ${f1(r.ms)} ms (${r.untagged.join(' ').slice(0, 60)})`);
    }
    await timed('UID STORE <1 message> ±FLAGS, 2 contexts', store1, events, true);
    await timed('STORE 1:* ±FLAGS.SILENT, 2 contexts', storeAll, events, true);
  }
  await c.logout();
  return { timings, rssAfterSelectKb };
}

async function runTarget(t: Target, o: Options, log: (s: string) => void): Promise<BigResult> {
  log(`  ${t.name}: filling ${FOLDER} with ${f0(o.messages)} messages (${o.fill === 'multiappend' ? `MULTIAPPEND batches of ${o.batch}, 2 in flight` : 'single LITERAL+ APPENDs, 32 in flight'} per connection, ${o.connections} connection(s))…`);
  const cpu0 = t.serverCpuMs();
  const perPid0 = new Map([...t.serverPids()].map((pid) => [pid, procCpuMs(pid, false)]));
  const snap0 = snapshotProcesses();
  const fill = await fillFolder(t, o, log);
  const fillMs = fill.ms;
  const fillServerCpuMs = t.serverCpuMs() - cpu0;
  const snap1 = snapshotProcesses();
  const otherCpusFill = otherCpus(snap0, snap1, new Set([process.pid, ...t.serverPids()]), fillMs);
  log(`  ${t.name}: filled in ${f1(fillMs / 1000)} s = ${f0((o.messages * 1000) / fillMs)} msg/s${disturbance(otherCpusFill)}`);
  // Where the server's CPU went: one figure per process (several for Dovecot and --workers).
  const perPid = [...t.serverPids()].map((pid) => [pid, procCpuMs(pid, false) - (perPid0.get(pid) ?? 0)] as const).filter(([, ms]) => ms >= 10);
  if (perPid.length > 1) log(`  ${t.name}: fill CPU by process: ${perPid.map(([pid, ms]) => `${pid} ${f2(ms / 1000)} s`).join(', ')}`);
  await checkFill(t, o, fill, log);
  const rssAfterFillKb = t.serverRssKb();
  if (o.fillOnly) return { target: t.name, messages: o.messages, fillMs, fillServerCpuMs, rssAfterFillKb, rssAfterSelectKb: NaN, timings: [], otherCpusFill, otherCpusTimed: 0 };
  const t1 = performance.now();
  const { timings, rssAfterSelectKb } = await timeCommands(t, o, log);
  const otherCpusTimed = otherCpus(snap1, snapshotProcesses(), new Set([process.pid, ...t.serverPids()]), performance.now() - t1);
  return { target: t.name, messages: o.messages, fillMs, fillServerCpuMs, rssAfterFillKb, rssAfterSelectKb, timings, otherCpusFill, otherCpusTimed };
}

async function main(): Promise<number> {
  const opts = await parseOptions(process.argv.slice(2));
  installSignalHandlers('imap-bigfolder', 3 * 60 * 60_000);
  const log = (s: string) => process.stderr.write(s + '\n');
  const out = (s = '') => process.stdout.write(s + '\n');
  out('IMAP big-folder benchmark (bench/imap-bigfolder.ts)');
  for (const l of machineFacts()) out(l);
  out(`  workload     ${f0(opts.messages)} messages (~620 B each; 1 in ${UNSEEN_EVERY} unseen, 1 in ${RARE} with "${RARE_WORD}" in its Subject) APPENDed to "${FOLDER}" over IMAPS,`);
  out(`               ${opts.fill === 'multiappend' ? `MULTIAPPEND batches of ${opts.batch}` : 'single APPENDs (LITERAL+, pipelined)'}, ${opts.connections} connection(s); then each command ${opts.repeat} times on a fresh connection`);
  if (opts.encrypt) out('  encryption   at rest (caducee demo --encrypt): message files and header search rows sealed');
  if (opts.workers !== undefined) out(`  caducee      \`caducee start --workers ${opts.workers}\` (node:cluster, round robin; server CPU = the primary and its workers)`);

  const base = benchDir('caducee-imap-bigfolder-');
  chmodSync(base, 0o755); // Dovecot's mail processes (nobody) must traverse it
  const results: BigResult[] = [];
  for (const which of opts.targets) results.push(await withImapTarget('imap-bigfolder', which, base, opts, log, (t) => runTarget(t, opts, log)));

  out();
  for (const r of results) {
    out(
      `${r.target}: fill ${f0(r.messages)} messages in ${f1(r.fillMs / 1000)} s = ${f0((r.messages * 1000) / r.fillMs)} msg/s (server CPU ${f2(r.fillServerCpuMs / r.messages)} ms/msg)` +
        (Number.isFinite(r.rssAfterFillKb) ? `; server RSS ${f0(r.rssAfterFillKb / 1024)} MiB after the fill${Number.isFinite(r.rssAfterSelectKb) ? `, ${f0(r.rssAfterSelectKb / 1024)} MiB after SELECT` : ''}` : ''),
    );
    out(`  during the fill${disturbance(r.otherCpusFill)}${opts.fillOnly ? '' : `; during the timed commands${disturbance(r.otherCpusTimed)}`}`);
  }
  if (opts.fillOnly) {
    if (results.length === 2) out(`fill rate ${results[0].target}/${results[1].target}: ${f2(results[1].fillMs / results[0].fillMs)}`);
    if (opts.json) out(JSON.stringify(results));
    await cleanupAll();
    return 0;
  }
  out();
  const header = ['command'];
  for (const r of results) header.push(`${r.target} 1st ms`, 'best ms', 'server CPU ms', 'result');
  if (results.length === 2) header.push(`best ${results[0].target}/${results[1].target}`);
  const rows = [header];
  for (const [i, tm] of results[0].timings.entries()) {
    const row = [tm.what];
    const best: number[] = [];
    for (const r of results) {
      const x = r.timings[i];
      best.push(Math.min(...x.runs));
      row.push(f1(x.runs[0]), f1(Math.min(...x.runs)), f1(x.serverCpuMs), x.check);
    }
    if (results.length === 2) row.push(f1(best[0] / best[1]));
    rows.push(row);
  }
  out(`Times as the client saw them (from writing the command to its tagged reply), ${opts.repeat} run(s) each`);
  out(table(rows));
  if (opts.json) out(JSON.stringify(results));
  await cleanupAll();
  return 0;
}

main().then(
  (code) => process.exit(code),
  async (e) => {
    process.stderr.write(`imap-bigfolder: ${(e as Error).stack ?? e}\n`);
    await cleanupAll();
    process.exit(1);
  },
);
