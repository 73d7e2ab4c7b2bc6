// Pieces shared by the benchmarks (bench/imap-stress.ts, bench/imap-bigfolder.ts,
// bench/imap-idle.ts, bench/mx-load.ts): argument parsing, cleanup/signal handling, /proc readers
// and report helpers. See bench/README.md.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLK_TCK = 100; // Linux USER_HZ, for /proc/<pid>/stat times

// ---- arguments ---------------------------------------------------------------------------------

/** parseArgs (strict) over `argv`; a parse error goes to `usage`. */
export function parseArgsOrUsage<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O, usage: (msg: string) => never) {
  try {
    return parseArgs({ args: argv, options, strict: true }).values;
  } catch (e) {
    usage((e as Error).message);
  }
}

/** A checker of integer options: `int(value, name, lo, hi)` calls `usage` unless lo <= value <= hi. */
export function intOption(usage: (msg: string) => never) {
  return (s: string, name: string, lo: number, hi: number) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < lo || n > hi) usage(`--${name} must be an integer in ${lo}..${hi}`);
    return n;
  };
}

/** Whether Dovecot's binaries (dovecot and doveadm) are installed. */
export async function dovecotInstalled(): Promise<boolean> {
  const { findExecutable } = await import('../test/peers/which.js');
  return !!findExecutable('dovecot') && !!findExecutable('doveadm');
}

/** --target caducee|dovecot|both, by default both when Dovecot can run (`haveDovecot`), caducee otherwise. */
export function dovecotTargetOption(target: string | undefined, haveDovecot: boolean, usage: (msg: string) => never): string {
  const t = target ?? (haveDovecot ? 'both' : 'caducee');
  if (!['caducee', 'dovecot', 'both'].includes(t)) usage('--target must be caducee, dovecot or both');
  return t;
}

export const dovecotTargets = (target: string): ('caducee' | 'dovecot')[] => (target === 'both' ? ['caducee', 'dovecot'] : [target as 'caducee' | 'dovecot']);

// ---- cleanup -----------------------------------------------------------------------------------

const cleanups: { what: string; fn: () => Promise<void> | void }[] = [];
let cleaning: Promise<void> | undefined;
let cleanupErrorPrefix = '';

export function onCleanup(what: string, fn: () => Promise<void> | void): void {
  cleanups.push({ what, fn });
}

/** Runs every registered cleanup once, newest first; never throws. */
export function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c.fn();
      } catch (e) {
        process.stderr.write(`${cleanupErrorPrefix}cleanup "${c.what}" failed: ${(e as Error).message}\n`);
      }
    }
  })();
  return cleaning;
}

/**
 * SIGINT/SIGTERM/SIGHUP and a global watchdog run the cleanups, then exit. With
 * `nameCleanupErrors`, failed cleanups are reported as "name: cleanup … failed".
 */
export function installSignalHandlers(name: string, globalTimeoutMs: number, nameCleanupErrors = false): void {
  if (nameCleanupErrors) cleanupErrorPrefix = `${name}: `;
  for (const [sig, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n${name}: ${sig}, cleaning up…\n`);
      void cleanupAll().finally(() => process.exit(code));
      // A second signal while cleaning up exits at once (the exit hooks still run).
      process.once(sig, () => process.exit(code));
    });
  }
  const watchdog = setTimeout(() => {
    process.stderr.write(`${name}: the run exceeded ${Math.round(globalTimeoutMs / 60_000)} min, aborting\n`);
    void cleanupAll().finally(() => process.exit(1));
  }, globalTimeoutMs);
  watchdog.unref();
}

/** A temporary directory removed by the cleanups (and at exit). */
export function benchDir(prefix: string): string {
  const base = mkdtempSync(path.join(os.tmpdir(), prefix));
  onCleanup('remove the temporary directory', () => rmSync(base, { recursive: true, force: true }));
  process.on('exit', () => {
    if (existsSync(base)) rmSync(base, { recursive: true, force: true });
  });
  return base;
}

// ---- /proc -------------------------------------------------------------------------------------

/** utime+stime (and, with children, cutime+cstime) of a process, in ms; 0 if gone. */
export function procCpuMs(pid: number, withReapedChildren = true): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields after "(comm)": state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17), 1-based.
    const ticks = Number(f[11]) + Number(f[12]) + (withReapedChildren ? Number(f[13]) + Number(f[14]) : 0);
    return (ticks * 1000) / CLK_TCK;
  } catch {
    return 0;
  }
}

function childrenOf(pid: number): number[] {
  try {
    const s = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return s === '' ? [] : s.split(/\s+/).map(Number);
  } catch {
    return [];
  }
}

/** CPU ms of a process tree: live processes plus the children they reaped. */
export function treeCpuMs(root: number): number {
  let total = 0;
  const stack = [root];
  const seen = new Set<number>();
  while (stack.length) {
    const pid = stack.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    total += procCpuMs(pid, true);
    stack.push(...childrenOf(pid));
  }
  return total;
}

/** Processes of a tree (root included). */
export function treePids(root: number): Set<number> {
  const pids = new Set<number>();
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop()!;
    if (pids.has(pid)) continue;
    pids.add(pid);
    stack.push(...childrenOf(pid));
  }
  return pids;
}

/** utime+stime (ms) of every user-space process, by "pid/starttime" (kernel threads left out). */
export function snapshotProcesses(): Map<string, number> {
  const snap = new Map<string, number>();
  let names: string[] = [];
  try {
    names = readdirSync('/proc');
  } catch {
    return snap;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if ((Number(f[6]) & 0x00200000) !== 0) continue; // PF_KTHREAD
      snap.set(`${name}/${f[19]}`, ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK);
    } catch {
      /* exited meanwhile */
    }
  }
  return snap;
}

/**
 * CPU ms used between two snapshots by user-space processes other than `exclude` (the server and
 * this client): a lower bound of the disturbance (time of processes that exited meanwhile is lost;
 * kernel threads, interrupts and steal are not counted).
 */
export function otherProcessesCpuMs(before: Map<string, number>, after: Map<string, number>, exclude: Set<number>): number {
  let total = 0;
  for (const [key, ms] of after) {
    if (exclude.has(Number(key.slice(0, key.indexOf('/'))))) continue;
    total += ms - (before.get(key) ?? 0);
  }
  return total;
}

/** Average number of CPUs used over `wallMs` by other processes (see otherProcessesCpuMs). */
export function otherCpus(before: Map<string, number>, after: Map<string, number>, exclude: Set<number>, wallMs: number): number {
  return otherProcessesCpuMs(before, after, exclude) / Math.max(1, wallMs);
}

export const clientCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

// ---- report helpers ----------------------------------------------------------------------------

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

export function commandLine(): string {
  const script = path.relative(process.cwd(), process.argv[1]) || process.argv[1];
  return ['node', ...process.execArgv, script, ...process.argv.slice(2)].join(' ');
}
