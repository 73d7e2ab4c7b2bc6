// Test harness: Debian's Dovecot (dovecot-imapd) as an IMAP baseline, a private instance on loopback.
//
// Each DovecotPeer lives in its own directory DIR, started with `dovecot -c DIR/dovecot.conf`
// and stopped with `doveadm -c DIR/dovecot.conf stop`; nothing under /etc/dovecot is read.
//
// Layout of DIR (mode 0755: the mail processes run as nobody and must reach home/):
//   dovecot.conf         generated configuration
//   cert.pem, key.pem    a self-signed certificate for 127.0.0.1 / localhost (made with the
//                        openssl CLI) unless certFile/keyFile are given
//   run/                 base_dir (sockets, master.pid)
//   state/               state_dir
//   home/<user>/Maildir  each user's mail (static userdb: uid nobody, gid nogroup)
//   dovecot.log          log_path
//
// Any user name logs in with the one password (static passdb). The only listener is IMAPS on
// 127.0.0.1:port (the plain IMAP listener is on port 0, i.e. off) unless `starttlsPort` is
// asked for, which adds a plain listener where STARTTLS is required before LOGIN
// (ssl = required).
//
// Things learnt running it this way (Dovecot 2.3.19, Debian 12, as root):
// - `dovecot -c FILE` daemonizes and returns at once; until the auth process is up the greeting
//   is "* OK Waiting for authentication process to respond.." (the real greeting follows), so
//   start() waits for a greeting announcing CAPABILITY.
// - `doveadm -c FILE stop` takes ~2.5 s (it waits for the master to exit).
// - The default limit of 10 connections per user and IP is raised: test suites open many.
// - URLAUTH is announced only with both imap_urlauth_host and mail_attribute_dict set. Then
//   GENURLAUTH and a user's own URLFETCH work, but a URLFETCH of another user's URL (through
//   the imap-urlauth service) panics imap-urlauth-login in 2.3.19 ("sasl-server.c: line 470
//   (sasl_server_auth_begin): assertion failed"), and the client gets NO after retries (~6 s).
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { findExecutable, installExitHook, isAlive, liveMasters, lookupUser, runPeerCommand } from './which.js';
import { freePort } from './postfix.js';

const execFileP = promisify(execFile);

export interface DovecotPeerOptions {
  /** Private directory (created; default: a new temporary directory, removed by stop()). */
  dir?: string;
  /** Password of every user (static passdb). Default "conformance-password". */
  password?: string;
  /** 127.0.0.1 port of the IMAPS listener (default: a free port). */
  port?: number;
  /** Also listen for plain IMAP (STARTTLS required before LOGIN) on this port (0: a free port). */
  starttlsPort?: number;
  /** Server certificate and key (PEM files); default: a self-signed one for 127.0.0.1 and localhost. */
  certFile?: string;
  keyFile?: string;
  /**
   * Announce URLAUTH (RFC 4467): sets imap_urlauth_host (the host IMAP URLs must name; true means
   * 127.0.0.1) and mail_attribute_dict, which Dovecot needs before it announces URLAUTH.
   */
  urlauth?: boolean | string;
  /** Extra dovecot.conf lines, appended. */
  extraConfig?: string;
}

const TIMEOUT_MS = 20_000;


export class DovecotPeer {
  readonly host = '127.0.0.1';
  /** IMAPS (implicit TLS) port. */
  port = 0;
  /** Plain IMAP port with STARTTLS, when asked for. */
  starttlsPort: number | undefined;
  readonly configFile: string;
  readonly logFile: string;
  /** PEM of the server certificate (self-signed: also the CA to verify it with). */
  certPem = '';
  private masterPid: number | undefined;
  private stopping: Promise<void> | undefined;

  private constructor(
    readonly dir: string,
    readonly password: string,
    private readonly ownsDir: boolean,
  ) {
    this.configFile = join(dir, 'dovecot.conf');
    this.logFile = join(dir, 'dovecot.log');
  }

  /** Writes the configuration, starts Dovecot, waits until it greets on the IMAPS port. */
  static async start(o: DovecotPeerOptions = {}): Promise<DovecotPeer> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await DovecotPeer.startOnce(o);
      } catch (err) {
        // A port found free may be taken before Dovecot binds it: try again with others.
        if (attempt >= 3 || o.port || !/Address already in use/i.test((err as Error).message)) throw err;
      }
    }
  }

  private static async startOnce(o: DovecotPeerOptions): Promise<DovecotPeer> {
    const dovecot = binary('dovecot');
    const ownsDir = o.dir === undefined;
    const dir = o.dir ? resolve(o.dir) : await mkdtemp(join(tmpdir(), 'caducee-dovecot-'));
    const peer = new DovecotPeer(dir, o.password ?? 'conformance-password', ownsDir);
    installExitHook();
    try {
      await mkdir(dir, { recursive: true });
      await chmod(dir, 0o755);
      const mailUser = lookupUser('nobody') ?? { uid: 65534, gid: 65534 };
      const home = join(dir, 'home');
      await mkdir(home, { recursive: true });
      await chown(home, mailUser.uid, mailUser.gid);
      await chmod(home, 0o755);
      const own = !o.certFile || !o.keyFile;
      const certFile = own ? join(dir, 'cert.pem') : resolve(o.certFile!);
      const keyFile = own ? join(dir, 'key.pem') : resolve(o.keyFile!);
      if (own) await selfSignedCert(certFile, keyFile);
      peer.certPem = await readFile(certFile, 'utf8');
      peer.port = o.port && o.port > 0 ? o.port : await freePort();
      if (o.starttlsPort !== undefined) {
        peer.starttlsPort = o.starttlsPort;
        while (!peer.starttlsPort || peer.starttlsPort === peer.port) peer.starttlsPort = await freePort();
      }
      let extra = o.extraConfig ?? '';
      if (o.urlauth) {
        const host = o.urlauth === true ? '127.0.0.1' : o.urlauth;
        extra = `imap_urlauth_host = ${host}\nmail_attribute_dict = file:%h/dovecot-attributes\n${extra}`;
      }
      await writeFile(peer.configFile, config(peer, dir, certFile, keyFile, extra));
      await writeFile(peer.logFile, '', { flag: 'a' });

      await run(dovecot, ['-c', peer.configFile]);
      peer.masterPid = await readPid(join(dir, 'run', 'master.pid'));
      liveMasters.add(peer.masterPid);
      await peer.waitForGreeting();
      return peer;
    } catch (err) {
      const log = await peer.log().catch(() => '');
      await peer.stop().catch(() => undefined);
      throw new Error(`DovecotPeer failed to start in ${dir}: ${(err as Error).message}\n--- log ---\n${log.split('\n').slice(-30).join('\n')}`);
    }
  }

  /** Stops Dovecot (`doveadm -c FILE stop`), waits for the master to exit, removes a temporary dir. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const pid = this.masterPid ?? (await readPid(join(this.dir, 'run', 'master.pid')).catch(() => undefined));
    if (pid !== undefined && isAlive(pid)) {
      await run(binary('doveadm'), ['-c', this.configFile, 'stop']).catch(() => undefined);
      if (!(await waitForExit(pid, 10_000))) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        await waitForExit(pid, 5_000);
      }
    }
    if (pid !== undefined) liveMasters.delete(pid);
    if (this.ownsDir) await rm(this.dir, { recursive: true, force: true });
  }

  /** Dovecot's log so far. */
  async log(): Promise<string> {
    return readFile(this.logFile, 'utf8');
  }

  /** Waits for a real greeting (with CAPABILITY) on the IMAPS port: the auth process is up. */
  private async waitForGreeting(): Promise<void> {
    const deadline = Date.now() + TIMEOUT_MS;
    let last = '';
    for (;;) {
      const line = await new Promise<string>((res) => {
        const s = tlsConnect({ host: this.host, port: this.port, ca: this.certPem }, () => undefined);
        let buf = '';
        const t = setTimeout(() => {
          s.destroy();
          res(buf);
        }, 2000);
        s.on('data', (d: Buffer) => {
          buf += d.toString('latin1');
          if (/\[CAPABILITY [^\]]*\]/.test(buf)) {
            clearTimeout(t);
            s.destroy();
            res(buf);
          }
        });
        s.on('error', (e) => {
          clearTimeout(t);
          res(`error: ${e.message}`);
        });
      });
      if (/\[CAPABILITY /.test(line)) return;
      last = line;
      if (this.masterPid !== undefined && !isAlive(this.masterPid)) throw new Error('the Dovecot master exited');
      if (Date.now() > deadline) throw new Error(`no IMAP greeting on ${this.host}:${this.port} within ${TIMEOUT_MS} ms (last: ${last.trim()})`);
      await sleep(100);
    }
  }
}

function config(peer: DovecotPeer, dir: string, certFile: string, keyFile: string, extra?: string): string {
  return `# Generated by test/peers/dovecot.ts: a private instance, dovecot -c ${peer.configFile}
protocols = imap
listen = 127.0.0.1
base_dir = ${join(dir, 'run')}
state_dir = ${join(dir, 'state')}
log_path = ${peer.logFile}
instance_name = caducee-dovecot-${peer.port}
ssl = required
ssl_cert = <${certFile}
ssl_key = <${keyFile}
mail_location = maildir:~/Maildir
auth_mechanisms = plain
mail_max_userip_connections = 1000
passdb {
  driver = static
  args = password=${peer.password}
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=${join(dir, 'home')}/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${peer.starttlsPort ?? 0}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = ${peer.port}
  }
}
${extra ?? ''}
`;
}

async function selfSignedCert(certFile: string, keyFile: string): Promise<void> {
  const openssl = findExecutable('openssl');
  if (!openssl) throw new Error('openssl not installed (run .ci/run to install openssl)');
  await execFileP(openssl, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-days',
    '2',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
  await chmod(keyFile, 0o600);
}

function binary(name: string): string {
  const p = findExecutable(name);
  if (!p) throw new Error(`${name} not installed (run .ci/run to install dovecot-imapd)`);
  return p;
}

const run = (cmd: string, args: string[]) => runPeerCommand(cmd, args, { timeoutMs: TIMEOUT_MS });

async function readPid(file: string): Promise<number> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      const pid = Number.parseInt((await readFile(file, 'utf8')).trim(), 10);
      if (Number.isInteger(pid) && pid > 0) return pid;
    } catch {
      /* not yet written */
    }
    if (Date.now() > deadline) throw new Error(`no pid in ${file}`);
    await sleep(20);
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
  return true;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
