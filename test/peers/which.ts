// Locating the real peer programs (Debian packages) that some tests run against.
//
// Outside CI a missing peer makes the test skip with a reason; in CI (process.env.CI set)
// nothing may skip: a missing peer is an error, since .ci/run installs every peer.
import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Directories searched after $PATH: daemons' front ends live in sbin, often not on a user's PATH. */
const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** Full path of an executable `name` on $PATH, then /usr/local/sbin, /usr/sbin, /sbin, then `extraDirs`. */
export function findExecutable(name: string, extraDirs: string[] = []): string | undefined {
  if (name.includes('/')) return isExecutableFile(name) ? name : undefined;
  const pathDirs = (process.env.PATH ?? '').split(delimiter).filter((d) => d !== '');
  const seen = new Set<string>();
  for (const dir of [...pathDirs, ...SBIN_DIRS, ...extraDirs]) {
    if (seen.has(dir)) continue;
    seen.add(dir);
    const candidate = join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Programs that must all be present for a peer to be usable, and the Debian packages bringing them. */
const PEERS: Record<string, { programs: string[]; packages: string }> = {
  postfix: { programs: ['postfix', 'postconf', 'sendmail'], packages: "Debian's postfix" },
  swaks: { programs: ['swaks'], packages: 'swaks, libnet-ssleay-perl and libio-socket-ssl-perl' },
  openssl: { programs: ['openssl'], packages: 'openssl' },
  mbsync: { programs: ['mbsync'], packages: 'isync' },
  python3: { programs: ['python3'], packages: 'python3' },
  dovecot: { programs: ['dovecot', 'doveadm'], packages: 'dovecot-imapd and dovecot-lmtpd' },
  chromium: { programs: ['chromium'], packages: 'chromium' },
};

/** True when running under CI, where every peer must be installed and nothing may skip. */
export function inCI(): boolean {
  const v = process.env.CI;
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

/** Why `peer` can't be used here (e.g. "postfix not installed (run .ci/run to install Debian's postfix)"), or undefined when it can. */
function missingReason(peer: string): string | undefined {
  const spec = PEERS[peer] ?? { programs: [peer], packages: peer };
  const missing = spec.programs.filter((p) => findExecutable(p) === undefined);
  if (missing.length === 0) return undefined;
  const what = missing.includes(peer) ? peer : `${peer} (${missing.join(', ')} missing)`;
  return `${what} not installed (run .ci/run to install ${spec.packages})`;
}

/**
 * Skip reason for a test needing `peer`, or undefined when the peer is installed.
 * In CI this never returns a reason: a missing peer throws instead (see requirePeer).
 */
export function skipReason(peer: string): string | undefined {
  return requirePeer(peer);
}

/**
 * For `test(name, { skip: requirePeer('postfix') }, ...)`: undefined when the peer is installed;
 * outside CI a skip reason when it is missing; in CI a missing peer throws, failing the test file.
 */
export function requirePeer(peer: string): string | undefined {
  const reason = missingReason(peer);
  if (reason === undefined) return undefined;
  if (inCI()) throw new Error(`CI must not skip: ${reason}`);
  return reason;
}

/** Peer master processes still running in this process, stopped on exit if a test forgot (or crashed before) stop(). */
export const liveMasters = new Set<number>();
let exitHookInstalled = false;
export function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of liveMasters) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
  });
}

/**
 * Runs a peer's administration command (postfix, doveadm, sendmail…): resolves with its output
 * (stdout + stderr) on exit 0, rejects naming the command otherwise, kills it after `timeoutMs`.
 * Waits for 'exit', not 'close': daemons (`dovecot`, `postfix start`) keep our pipes open.
 */
export function runPeerCommand(cmd: string, args: string[], o: { timeoutMs: number; env?: NodeJS.ProcessEnv; input?: Buffer }): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { env: o.env ?? process.env, stdio: [o.input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs);
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // Let what the process wrote before exiting arrive, then stop listening to the pipes.
      setTimeout(() => {
        child.stdout!.destroy();
        child.stderr!.destroy();
        if (code === 0) resolvePromise(out);
        else reject(new Error(`${cmd} ${args.join(' ')} exited ${code ?? signal}: ${out.trim()}`));
      }, 20);
    });
    if (o.input) {
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(o.input);
    }
  });
}

/** Is process `pid` running? A zombie still answers kill(0): it counts as gone. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The uid and gid of a system user, from /etc/passwd (peers drop privileges to it); undefined when absent. */
export function lookupUser(name: string): { uid: number; gid: number } | undefined {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {
    /* no passwd */
  }
  return undefined;
}
