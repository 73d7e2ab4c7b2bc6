// Test harness: Debian's Postfix as another MSSanté operator, run as a private instance on loopback.
//
// Each PostfixPeer lives entirely in its own directory DIR (main.cf, master.cf, queue, data,
// Maildir, log), started with `postfix -c DIR start`. Nothing under /etc/postfix is read or
// written: as root, `postfix -c DIR`, `sendmail -C DIR` and `postqueue -c DIR` accept a
// non-default configuration directory without it being listed in the default main.cf's
// alternate_config_directories (that check applies only to unprivileged callers), and the
// system instance may stay unconfigured ("No configuration"). Several peers run side by side
// as long as their directories and ports differ.
//
// Layout of DIR:
//   main.cf, master.cf      generated configuration
//   transport, tls_policy   texthash maps for `routes`
//   queue/                  queue_directory (created by `postfix check`)
//   data/                   data_directory, owned by mail_owner (postfix)
//   mail/inbox/             the virtual mailbox: ONE Maildir shared by every recipient of
//                           `domain` (virtual_mailbox_maps = static:inbox/); the virtual
//                           delivery agent adds a `Delivered-To: <recipient>` header, which
//                           tells recipients apart (see messagesFor()).
//   postfix.log             maillog_file, via the postlog service
//
// Delivery to the Maildir runs as `nobody`, so DIR and all its ancestors must be traversable
// by others (mode o+x); start() checks this and says which directory is not.
//
// Things learnt running it this way (Postfix 3.7, Debian 12, as root):
// - `postfix check` needs queue_directory to exist (it creates the subdirectories). Because
//   the queue, data and Maildir live under the configuration directory, check logs harmless
//   "not owned by root" / "group or other writable" warnings about them.
// - Postfix refuses to use main.cf (and texthash files) modified within the last second:
//   it re-reads them every 300 ms until they settle (~2 s per command). The generated files
//   are backdated, which brings start() from ~2.5 s down to ~0.4 s.
// - `start` repeats the checks `check` just did; the queue/quick-start marker (the one
//   `postfix quick-stop` leaves) skips them once.
// - `postfix stop` polls with `sleep 1`; stop() uses `postfix abort` (the same SIGTERM to the
//   master, no wait) and polls the master and its daemons itself (~50 ms).
// - With smtpd_tls_req_ccert=yes, a client without a certificate (or with an untrusted one)
//   gets "421 4.7.1 <host> Error: No client certificate presented" / "... Client
//   certificate not trusted" in reply to its EHLO after STARTTLS; it never reaches MAIL.
import { createServer, connect } from 'node:net';
import { chmod, chown, mkdir, readFile, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { findExecutable, installExitHook, isAlive, liveMasters, lookupUser, runPeerCommand } from './which.js';

export interface PostfixRoute {
  /** Host of the next hop (an IP literal: Postfix is given `[host]:port`, no DNS). */
  host: string;
  port: number;
  /** DNS name expected in the peer's certificate (smtp_tls_secure_cert_match for this next hop). */
  certName: string;
}

export interface PostfixPeerOptions {
  /** Private config+queue+data dir (created). It and its ancestors must be world-traversable. */
  dir: string;
  /** The virtual mailbox domain it receives for, e.g. "c.mssante.test". */
  domain: string;
  /** myhostname, matching its certificate CN/SAN, e.g. "mx.c.mssante.test". */
  hostname: string;
  /** 127.0.0.1 port of its trust-space MX listener (0/undefined: a free port is picked). */
  port?: number;
  /** Its server certificate (also presented as client certificate outbound), PEM, leaf first then chain. */
  certFile: string;
  keyFile: string;
  /** CA bundle it trusts (root + intermediate), PEM. */
  caFile: string;
  /** Default true: smtpd_tls_security_level=encrypt + smtpd_tls_req_ccert=yes. False: TLS still required, client certificate asked but optional. */
  requireClientCert?: boolean;
  /**
   * Default true: certFile/keyFile are also presented as client certificate outbound
   * (smtp_tls_cert_file/smtp_tls_key_file). False: they are left out of main.cf, so outbound
   * sessions are still TLS with the server verified, but present no client certificate.
   */
  clientCert?: boolean;
  /** Outbound routes: domain -> smtp:[host]:port, with smtp_tls_security_level=secure and match=certName. */
  routes?: Record<string, PostfixRoute>;
  /** Domains it relays for (relay_domains: reject_unauth_destination then accepts them), each needing a route. */
  relayDomains?: string[];
  messageSizeLimit?: number;
}

export interface MaildirMessage {
  path: string;
  raw: Buffer;
}

const POSTFIX_TIMEOUT_MS = 30_000;


export class PostfixPeer {
  readonly dir: string;
  readonly port: number;
  readonly logFile: string;
  readonly domain: string;
  readonly hostname: string;
  /** The Maildir shared by all recipients of `domain`. */
  readonly maildir: string;

  private masterPid: number | undefined;
  /** Size of the log file before this start: log() shows only this instance's lines. */
  private logOffset = 0;
  private stopping: Promise<void> | undefined;

  private constructor(dir: string, port: number, domain: string, hostname: string) {
    this.dir = dir;
    this.port = port;
    this.domain = domain;
    this.hostname = hostname;
    this.logFile = join(dir, 'postfix.log');
    this.maildir = join(dir, 'mail', 'inbox');
  }

  /**
   * Writes main.cf/master.cf, runs `postfix -c DIR check` then `start`, waits until the listener
   * accepts connections. Throws (with the log tail) on failure, leaving nothing running.
   */
  static async start(o: PostfixPeerOptions): Promise<PostfixPeer> {
    if (o.port && o.port > 0) return PostfixPeer.startOn(o, o.port);
    // A port found free may be taken before the master binds it: try again with another one.
    for (let attempt = 1; ; attempt++) {
      try {
        return await PostfixPeer.startOn(o, await freePort());
      } catch (err) {
        if (attempt >= 3 || !/Address already in use/.test((err as Error).message)) throw err;
      }
    }
  }

  private static async startOn(o: PostfixPeerOptions, port: number): Promise<PostfixPeer> {
    const postfix = postfixBinary();
    const dir = resolve(o.dir);
    const peer = new PostfixPeer(dir, port, o.domain, o.hostname);
    installExitHook();

    const postfixUser = lookupUser('postfix');
    if (!postfixUser) throw new Error('PostfixPeer: no "postfix" user on this machine (is Debian\'s postfix installed?)');
    const mailUser = lookupUser('nobody') ?? { uid: 65534, gid: 65534 };

    for (const f of [o.certFile, o.keyFile, o.caFile]) {
      // Postfix would only notice at the first TLS handshake; fail now instead.
      if (!statSync(resolve(f), { throwIfNoEntry: false })?.isFile()) throw new Error(`PostfixPeer: no such file ${f}`);
    }
    await mkdir(dir, { recursive: true });
    await chmod(dir, 0o755);
    assertTraversable(dir);
    const dataDir = join(dir, 'data');
    const mailBase = join(dir, 'mail');
    await mkdir(join(dir, 'queue'), { recursive: true, mode: 0o755 });
    await mkdir(dataDir, { recursive: true });
    await chown(dataDir, postfixUser.uid, postfixUser.gid);
    await chmod(dataDir, 0o700);
    await mkdir(mailBase, { recursive: true });
    await chown(mailBase, mailUser.uid, mailUser.gid);
    await chmod(mailBase, 0o755);
    await writeFile(peer.logFile, '', { flag: 'a' });
    peer.logOffset = (await stat(peer.logFile)).size;

    const routes = o.routes ?? {};
    const transport: string[] = [];
    const policy = new Map<string, string>();
    for (const [domain, r] of Object.entries(routes)) {
      const nexthop = `[${r.host}]:${r.port}`;
      transport.push(`${domain} smtp:${nexthop}`);
      // Policy is keyed by next hop; two routes to one host:port must expect the same name.
      policy.set(nexthop, `${nexthop} secure match=${r.certName}`);
    }
    const files: [string, string][] = [
      ['transport', transport.join('\n') + '\n'],
      ['tls_policy', [...policy.values()].join('\n') + '\n'],
      ['main.cf', mainCf(o, dir, mailUser)],
      ['master.cf', masterCf(o, port)],
    ];
    // Postfix will not read a configuration or texthash file modified within the last second
    // or so: it re-reads it every 300 ms until it has settled, ~2 s per command. Backdate them.
    const settled = new Date(Date.now() - 60_000);
    for (const [name, text] of files) {
      await writeFile(join(dir, name), text);
      await utimes(join(dir, name), settled, settled);
    }

    try {
      await run(postfix, ['-c', dir, 'check'], dir);
      // `start` would repeat the same checks; this marker (what `postfix quick-stop` leaves)
      // makes postfix-script skip them once.
      await writeFile(join(dir, 'queue', 'quick-start'), '');
      await run(postfix, ['-c', dir, 'start'], dir);
      peer.masterPid = await readMasterPid(dir);
      liveMasters.add(peer.masterPid);
      await waitForPort(port, 10_000, () => peer.masterPid !== undefined && isAlive(peer.masterPid));
    } catch (err) {
      const tail = await peer.logTail();
      await peer.stop().catch(() => undefined);
      throw new Error(`PostfixPeer for ${o.domain} failed to start in ${dir}: ${(err as Error).message}\n--- log tail ---\n${tail}`);
    }
    return peer;
  }

  /** Stops the instance and waits for the master and its children to exit. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    let pid = this.masterPid;
    if (pid === undefined) {
      // start() failed before reading master.pid: trust the file only if it names a live master.
      const fromFile = await readMasterPid(this.dir).catch(() => undefined);
      if (fromFile !== undefined && processName(fromFile) === 'master') pid = fromFile;
    }
    if (pid === undefined || !isAlive(pid)) {
      if (pid !== undefined) liveMasters.delete(pid);
      return;
    }
    const children = childrenOf(pid);
    // `postfix abort` sends the master the same SIGTERM as `postfix stop` (which then polls
    // with `sleep 1`); the master terminates its daemons and exits. Poll faster ourselves for
    // the master and the daemons it had.
    await run(postfixBinary(), ['-c', this.dir, 'abort'], this.dir).catch(() => undefined);
    if (!(await waitForExit([pid, ...children], 10_000))) {
      for (const p of [pid, ...children]) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await waitForExit([pid, ...children], 5_000);
    }
    liveMasters.delete(pid);
  }

  /** The log of this instance since start() (earlier runs in the same dir are left out). */
  async log(): Promise<string> {
    const buf = await readFile(this.logFile).catch(() => Buffer.alloc(0));
    return buf.subarray(this.logOffset).toString('utf8');
  }

  private async logTail(lines = 40): Promise<string> {
    return (await this.log()).split('\n').slice(-lines - 1).join('\n');
  }

  /** Waits until a log line matches `re`; rejects with the log tail after `timeoutMs`. */
  async waitForLog(re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = (await this.log()).match(re);
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`PostfixPeer: no log line matching ${re} within ${timeoutMs} ms\n--- log tail ---\n${await this.logTail()}`);
      await sleep(100);
    }
  }

  /** Messages delivered to the shared Maildir (new/ and cur/), oldest first. */
  async maildirMessages(): Promise<MaildirMessage[]> {
    const found: { path: string; raw: Buffer; mtime: number }[] = [];
    for (const sub of ['new', 'cur']) {
      const d = join(this.maildir, sub);
      const names = await readdir(d).catch(() => [] as string[]);
      for (const name of names) {
        if (name.startsWith('.')) continue;
        const path = join(d, name);
        try {
          const [raw, st] = await Promise.all([readFile(path), stat(path)]);
          found.push({ path, raw, mtime: st.mtimeMs });
        } catch {
          /* moved meanwhile */
        }
      }
    }
    found.sort((a, b) => a.mtime - b.mtime || a.path.localeCompare(b.path));
    return found.map(({ path, raw }) => ({ path, raw }));
  }

  /** Messages of the shared Maildir delivered to `recipient` (by the Delivered-To header). */
  async messagesFor(recipient: string): Promise<MaildirMessage[]> {
    const want = recipient.toLowerCase();
    return (await this.maildirMessages()).filter((m) => deliveredTo(m.raw).includes(want));
  }

  /** Waits until the Maildir holds at least `n` messages; rejects with the log tail after `timeoutMs`. */
  async waitForMessages(n: number, timeoutMs = 10_000): Promise<MaildirMessage[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const msgs = await this.maildirMessages();
      if (msgs.length >= n) return msgs;
      if (Date.now() > deadline) throw new Error(`PostfixPeer: ${msgs.length}/${n} messages in ${this.maildir} after ${timeoutMs} ms\n--- log tail ---\n${await this.logTail()}`);
      await sleep(100);
    }
  }

  /** Injects a message (sendmail -C DIR -f from -- to...); Postfix then delivers it itself (locally or via its routes). */
  async sendmail(raw: Buffer | string, from: string, to: string[]): Promise<void> {
    if (to.length === 0) throw new Error('PostfixPeer.sendmail: no recipient');
    const sendmail = findExecutable('sendmail');
    if (!sendmail) throw new Error('PostfixPeer.sendmail: sendmail not found');
    await run(sendmail, ['-C', this.dir, '-i', '-f', from, '--', ...to], this.dir, typeof raw === 'string' ? Buffer.from(raw) : raw);
  }

  /** Attempts delivery of all queued mail now (postfix -c DIR flush). */
  async flush(): Promise<void> {
    await run(postfixBinary(), ['-c', this.dir, 'flush'], this.dir);
  }
}

function mainCf(o: PostfixPeerOptions, dir: string, mailUser: { uid: number; gid: number }): string {
  const size = o.messageSizeLimit ?? 10_240_000;
  const p: Record<string, string> = {
    compatibility_level: '3.6',
    queue_directory: join(dir, 'queue'),
    data_directory: join(dir, 'data'),
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    myhostname: o.hostname,
    mydomain: o.domain,
    myorigin: '$myhostname',
    mydestination: '',
    local_transport: 'error:local delivery disabled',
    local_recipient_maps: '',
    alias_maps: '',
    alias_database: '',
    relayhost: '',
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    // Only local submissions (sendmail/pickup, which relay checks never apply to) could use
    // this; the trust-space listener overrides it with an empty mynetworks (master.cf).
    mynetworks: '127.0.0.0/8',
    smtpd_relay_restrictions: 'permit_mynetworks reject_unauth_destination',
    smtpd_banner: '$myhostname ESMTP',
    smtpd_peername_lookup: 'no',
    biff: 'no',
    append_dot_mydomain: 'no',
    readme_directory: 'no',
    message_size_limit: String(size),
    mailbox_size_limit: '0',
    virtual_mailbox_limit: '0',
    virtual_mailbox_domains: o.domain,
    virtual_mailbox_base: join(dir, 'mail'),
    virtual_mailbox_maps: 'static:inbox/',
    virtual_uid_maps: `static:${mailUser.uid}`,
    virtual_gid_maps: `static:${mailUser.gid}`,
    virtual_minimum_uid: String(Math.min(100, mailUser.uid)),
    transport_maps: `texthash:${join(dir, 'transport')}`,
    // Inbound TLS (the listener in master.cf sets the security level and client-cert policy).
    smtpd_tls_cert_file: resolve(o.certFile),
    smtpd_tls_key_file: resolve(o.keyFile),
    smtpd_tls_CAfile: resolve(o.caFile),
    smtpd_tls_security_level: 'encrypt',
    smtpd_tls_mandatory_protocols: '>=TLSv1.2',
    smtpd_tls_protocols: '>=TLSv1.2',
    smtpd_tls_loglevel: '1',
    smtpd_tls_received_header: 'yes',
    smtpd_tls_session_cache_database: '',
    // Outbound TLS: authenticated (secure), with our certificate as client certificate.
    smtp_tls_security_level: 'secure',
    smtp_tls_CAfile: resolve(o.caFile),
    smtp_tls_cert_file: resolve(o.certFile),
    smtp_tls_key_file: resolve(o.keyFile),
    smtp_tls_mandatory_protocols: '>=TLSv1.2',
    smtp_tls_protocols: '>=TLSv1.2',
    smtp_tls_loglevel: '1',
    smtp_tls_session_cache_database: '',
    smtp_tls_policy_maps: `texthash:${join(dir, 'tls_policy')}`,
    // Logging to a file of its own.
    maillog_file: join(dir, 'postfix.log'),
    maillog_file_prefixes: dir,
    // Fast retries for tests.
    queue_run_delay: '1s',
    minimal_backoff_time: '1s',
    maximal_backoff_time: '2s',
  };
  if (o.relayDomains?.length) p.relay_domains = o.relayDomains.join(', ');
  if (o.clientCert === false) {
    delete p.smtp_tls_cert_file;
    delete p.smtp_tls_key_file;
  }
  return (
    `# Generated by test/peers/postfix.ts for ${o.domain}: a private instance, postfix -c ${dir}\n` +
    Object.entries(p)
      .map(([k, v]) => (v === '' ? `${k} =` : `${k} = ${v}`))
      .join('\n') +
    '\n'
  );
}

function masterCf(o: PostfixPeerOptions, port: number): string {
  const requireCert = o.requireClientCert ?? true;
  // No "smtp inet" (0.0.0.0:25) line: the only listener is the trust-space MX on loopback.
  // chroot column is n everywhere: the queue lives in a private directory with no chroot set up.
  const listener = [
    `127.0.0.1:${port} inet n - n - - smtpd`,
    `  -o smtpd_tls_security_level=encrypt`,
    `  -o smtpd_tls_ask_ccert=yes`,
    `  -o smtpd_tls_req_ccert=${requireCert ? 'yes' : 'no'}`,
    // The MX must never relay: no trusted networks, only our own domain as destination.
    `  -o mynetworks=`,
    `  -o smtpd_relay_restrictions=reject_unauth_destination`,
  ];
  const services = `
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;
  return `# Generated by test/peers/postfix.ts for ${o.domain}\n${listener.join('\n')}\n${services}`;
}

function postfixBinary(): string {
  const p = findExecutable('postfix');
  if (!p) throw new Error("postfix not installed (run .ci/run to install Debian's postfix)");
  return p;
}

const run = (cmd: string, args: string[], dir: string, input?: Buffer) =>
  runPeerCommand(cmd, args, { timeoutMs: POSTFIX_TIMEOUT_MS, env: { ...process.env, MAIL_CONFIG: dir }, input });

async function readMasterPid(dir: string): Promise<number> {
  const text = await readFile(join(dir, 'queue', 'pid', 'master.pid'), 'utf8');
  const pid = Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`bad master.pid in ${dir}: ${JSON.stringify(text)}`);
  return pid;
}

function processName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Direct children of `pid` (Linux /proc), e.g. the daemons of a Postfix master. */
function childrenOf(pid: number): number[] {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return kids === '' ? [] : kids.split(/\s+/).map(Number);
  } catch {
    return [];
  }
}

async function waitForExit(pids: number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(isAlive)) {
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
  return true;
}

/** A port free right now on 127.0.0.1 (bind to :0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePromise(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number, stillRunning: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        res(true);
      });
      s.once('error', () => res(false));
    });
    if (ok) return;
    if (!stillRunning()) throw new Error('the Postfix master exited');
    if (Date.now() > deadline) throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** The virtual delivery agent runs as nobody: every directory down to DIR must be o+x. */
function assertTraversable(dir: string): void {
  for (let d = dir; ; d = dirname(d)) {
    const mode = statSync(d).mode;
    if ((mode & 0o001) === 0) {
      throw new Error(`PostfixPeer: ${d} is not traversable by others (mode ${(mode & 0o777).toString(8)}); Postfix delivers as nobody under ${dir}: chmod o+x ${d}`);
    }
    if (dirname(d) === d) break;
  }
}

function deliveredTo(raw: Buffer): string[] {
  const head = raw.toString('latin1').split(/\r?\n\r?\n/, 1)[0] ?? '';
  return [...head.matchAll(/^Delivered-To:\s*(.+)$/gim)].map((m) => m[1]!.trim().toLowerCase());
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
