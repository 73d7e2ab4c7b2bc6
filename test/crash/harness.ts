// Crash-safety harness (issue 13 "Crash safety, proven"): an operator runs as its own process
// (`caducee start`); a peer operator's MX client sends messages over mutual TLS while the
// harness kills the operator with SIGKILL at random moments and starts it again on the same
// state. At the end it counts, over IMAP and in the stopped store:
//   - every message that got 250 is present exactly once, byte-identical (RFC 5321 §4.2.5:
//     250 after DATA takes responsibility for the message; architecture invariant 1);
//   - no message is present twice (each transaction carries a fresh Message-ID; the harness
//     never re-sends one), and none is partial (every stored body is exactly what was sent);
//   - no message row references a missing file, and after the final start no file is left
//     that no row references (the blob collector's start sweep, store/blob-collector.ts).
// A message whose transaction was cut by a kill before the 250 may be present (the commit
// happened, the reply did not reach us) or not; the figures say how many of each.
// Used by test/crash-safety.test.ts (short, seeded) and bench/crash-safety.ts (long).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ImapFlow } from 'imapflow';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { createServer } from 'node:net';
import https from 'node:https';
import { writeFileSync } from 'node:fs';
import YAML from 'yaml';
import { prepareDemo } from '../../src/demo/space.js';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** Waits until the operator's outbound queue holds nothing queued (read-only look at its store). */
async function queueDrained(dataDir: string, timeoutMs = 120_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const db = new Database(path.join(dataDir, 'caducee.sqlite'), { readonly: true, fileMustExist: true });
    const n = (db.prepare("SELECT COUNT(*) n FROM outbound_queue WHERE status = 'queued'").get() as { n: number }).n;
    db.close();
    if (n === 0) return;
    if (Date.now() > until) throw new Error(`outbound queue still holds ${n} item(s) after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface CrashRunOptions {
  dir: string;
  messages: number;
  kills: number;
  seed: number;
  /** Parallel clients (default 4). */
  concurrency?: number;
  /**
   * 'mx': a peer operator's MX client over mutual TLS (250 after DATA); 'append': IMAP APPEND by
   * the mailbox's user (tagged OK); 'queue': submission (250) at the killed operator towards a
   * user of a second operator process (never killed): the outbound queue must resume after each
   * kill; duplicates at the peer measure the at-least-once window (peer said 250, we were killed
   * before recording it). 'web': the mail API (`POST /api/v1/submissions`, HTTPS, an API token
   * `cad_…` of the sending user) with an `Idempotency-Key` per message; a request cut by a kill
   * is sent again with the same key once the operator is back (what a client does), so an
   * acknowledged message present twice means the key was not honoured across the restart.
   */
  mode?: 'mx' | 'append' | 'queue' | 'web';
  log?: (line: string) => void;
}

export interface CrashRunResult {
  sent: number;
  acknowledged: number;
  /** Transactions cut by a kill before the reply. */
  cut: number;
  /** Of the cut ones, how many were nevertheless stored (committed, reply lost). */
  cutButStored: number;
  kills: number;
  restarts: number;
  /** Acknowledged messages missing or not byte-identical: must be empty. */
  lost: string[];
  corrupt: string[];
  /** Message-IDs present more than once: must be empty ('queue' mode: the at-least-once window, reported). */
  duplicated: string[];
  /** Messages present that the harness never sent: must be empty. */
  unknown: string[];
  /** Rows whose file is missing, and files no row references after the final start: must be 0. */
  danglingRows: number;
  orphanFiles: number;
  /** 'web': cut requests sent again with their Idempotency-Key, and how many were answered as replays. */
  retried?: number;
  replayed?: number;
  /** 'web': of `duplicated`, those whose request had been cut and sent again with the same key. */
  duplicatedRetries?: string[];
  wallMs: number;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same run plan. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BIN = path.resolve('bin/caducee.js');
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** `caducee start` for the operator; resolves with its process and MX/IMAP ports once it is listening. */
function startOperator(config: string): Promise<{ child: ChildProcess; mx: number; imaps: number; submission: number; https: number; collected: Promise<void> }> {
  return new Promise((resolve, reject) => {
    // One process (`caducee start` forks one worker per CPU by default): SIGKILL hits the very
    // process that holds the transactions.
    const child = spawn(process.execPath, [BIN, 'start', '--workers', '1', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let started = false;
    // The message-file collector's first run (start sweep: orphans of interrupted puts) is a
    // leader service: it runs once this process holds the leader lease.
    let collectedNow!: () => void;
    const collected = new Promise<void>((r) => (collectedNow = r));
    const onData = (d: Buffer) => {
      out += d;
      let i: number;
      while ((i = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, i);
        out = out.slice(i + 1);
        try {
          const j = JSON.parse(line);
          if (j.msg === 'operator started' && !started) {
            started = true;
            resolve({ child, mx: j.mx, imaps: j.imaps, submission: j.submission, https: j.https, collected });
          } else if (j.msg === 'message files collected') collectedNow();
        } catch {
          /* not JSON */
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d) => (err += d));
    child.once('exit', (code, sig) => reject(new Error(`caducee start exited (${code ?? sig}) before listening: ${err.slice(-2000)}`)));
  });
}

function message(n: number, from: string, to: string, random: () => number): { id: string; raw: Buffer } {
  const id = `<crash-${n}-${Math.floor(random() * 1e9)}@harness.test>`;
  // 1–40 KiB bodies: some transactions are cut in the middle of DATA.
  const lines: string[] = [];
  const size = 1024 + Math.floor(random() * 40 * 1024);
  for (let len = 0, k = 0; len < size; k++) {
    const l = `ligne ${k} du message ${n} ${'x'.repeat(Math.floor(random() * 60))}`;
    lines.push(l);
    len += l.length + 2;
  }
  const raw = Buffer.from(
    `From: <${from}>\r\nTo: <${to}>\r\nSubject: crash ${n}\r\nMessage-ID: ${id}\r\nDate: ${new Date().toUTCString()}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${lines.join('\r\n')}\r\nFIN ${n}\r\n`,
  );
  return { id, raw };
}

export async function runCrashHarness(o: CrashRunOptions): Promise<CrashRunResult> {
  const log = o.log ?? (() => {});
  const t0 = Date.now();
  const random = rng(o.seed);
  const layout = await prepareDemo(path.join(o.dir, 'space'), { ports: 'ephemeral' });
  const [A, B] = layout.operators;
  const ca = readFileSync(layout.caBundle, 'utf8');
  const queueMode = o.mode === 'queue';
  let peer: Awaited<ReturnType<typeof startOperator>> | undefined;
  if (queueMode) {
    // A runs as a second process on a fixed free port that B's route names; B retries every second.
    const port = await freePort();
    const edit = (file: string, fn: (c: any) => void) => {
      const c = YAML.parse(readFileSync(file, 'utf8'));
      fn(c);
      writeFileSync(file, YAML.stringify(c));
    };
    edit(A.config, (c) => (c.listen.mx = port));
    edit(B.config, (c) => {
      c.routes[A.domain] = `127.0.0.1:${port}`;
      // leaseSeconds: the items B's killed process had claimed are claimable by its successor
      // after this (the default is 90 s; a live process renews its leases every third of it).
      c.queue = { ...c.queue, retrySeconds: [1], pollSeconds: 0.2, leaseSeconds: 10 };
      // Thousands of messages from one user in a day: above the medical-content daily limit (500).
      c.policy = { ...c.policy, content: { ...c.policy?.content, maxRecipientsPerDay: 1_000_000 } };
    });
    peer = await startOperator(A.config);
  }
  // The leader lease of a killed process passes to its successor when it expires: 3 s (the
  // shortest), so that each restarted process soon runs the leader services (the collector's sweep).
  const yaml = YAML.parse(readFileSync(B.config, 'utf8'));
  yaml.cluster = { ...yaml.cluster, leaderLeaseSeconds: 3 };
  // web: hundreds of messages from one user in a day: above the daily recipient limit (500).
  if (o.mode === 'web') yaml.policy = { ...yaml.policy, content: { ...yaml.policy?.content, maxRecipientsPerDay: 1_000_000 } };
  writeFileSync(B.config, YAML.stringify(yaml));
  // A's server certificate is also its client certificate towards B's MX (mutual TLS).
  const clientTls = { key: readFileSync(A.key, 'utf8'), cert: readFileSync(A.chain, 'utf8'), ca, servername: 'localhost' };
  // mx/append: B's user receives; queue: B's user sends (submission at B) to A's user.
  const recipient = queueMode ? A.users[0] : B.users[0];
  const to = recipient.addresses[0];
  const sender = queueMode ? B.users[0] : A.users[0];
  const from = sender.addresses[0];
  // web: B's practitioner sends from their own mailbox to the secretariat's (local delivery);
  // the practitioner holds `read` on it (demo grants), so one token sees both copies.
  const webFrom = B.users[0].addresses[0];
  const webTo = B.users[1].addresses[0];
  let token = '';
  if (o.mode === 'web') {
    // What `caducee api-client token add` prints (the store's Authenticator.createApiToken).
    const out = execFileSync(process.execPath, [BIN, 'api-client', 'token', 'add', '--login', B.users[0].login, '--label', 'harnais de coupure', '--config', B.config], { encoding: 'utf8' });
    token = /cad_\S+/.exec(out)?.[0] ?? '';
    if (!token) throw new Error(`no API token in: ${out}`);
  }

  let current = await startOperator(B.config);
  let restarts = 0;
  let kills = 0;
  let down = false;
  const acked = new Map<string, string>(); // Message-ID → sha256 of the bytes sent
  const cutIds = new Map<string, string>();
  let sent = 0;

  /**
   * One SMTP transaction: over the MX with A's client certificate (mutual TLS), or over
   * submission with the user's app password (`login`). An SMTP reply (4xx/5xx) is a refusal; a
   * connection lost once the transaction started leaves the outcome unknown ('cut').
   */
  const smtpOne = (port: number, m: { id: string; raw: Buffer }, login?: { user: string; pass: string }) =>
    new Promise<'acked' | 'refused' | 'cut'>((resolve) => {
      const tlsOptions = login ? { ca, servername: 'localhost' } : clientTls;
      const c = new SMTPConnection({ host: '127.0.0.1', port, secure: false, requireTLS: true, tls: tlsOptions, name: A.hostname, socketTimeout: 15_000, connectionTimeout: 5_000 } as any);
      let state: 'connecting' | 'data' = 'connecting';
      let settled = false;
      const done = (r: 'acked' | 'refused' | 'cut') => {
        if (settled) return;
        settled = true;
        try {
          c.close();
        } catch {
          /* closed */
        }
        resolve(r);
      };
      c.on('error', () => done(state === 'data' ? 'cut' : 'refused'));
      c.on('end', () => done(state === 'data' ? 'cut' : 'refused'));
      const transaction = () => {
        state = 'data'; // from here on a kill may come after the commit: count it as cut
        c.send({ from, to: [to] }, m.raw, (err: any, info: any) => {
          if (err) return done(err.responseCode && err.responseCode >= 400 && err.responseCode < 600 && !/ECONNRESET|EPIPE|ETIMEDOUT|closed/i.test(String(err.code ?? err.message)) ? 'refused' : 'cut');
          done(/^250/.test(String(info?.response ?? '')) ? 'acked' : 'refused');
        });
      };
      c.connect(() => (login ? c.login(login as any, (err: any) => (err ? done('refused') : transaction())) : transaction()));
    });

  // RFC 9051 §6.3.12: the tagged OK of APPEND says the message was added to the mailbox.
  const appendOne = (port: number, m: { id: string; raw: Buffer }) =>
    new Promise<'acked' | 'refused' | 'cut'>((resolve) => {
      const c = new ImapFlow({ host: '127.0.0.1', port, secure: true, tls: { ca, servername: 'localhost' }, auth: { user: recipient.login, pass: recipient.appPassword }, logger: false, socketTimeout: 15_000 } as any);
      let state: 'connecting' | 'data' = 'connecting';
      let settled = false;
      const done = (r: 'acked' | 'refused' | 'cut') => {
        if (settled) return;
        settled = true;
        c.close();
        resolve(r);
      };
      c.on('error', () => done(state === 'data' ? 'cut' : 'refused'));
      c.on('close', () => done(state === 'data' ? 'cut' : 'refused'));
      c.connect().then(
        () => {
          state = 'data';
          c.append('INBOX', m.raw).then(
            (r: any) => done(r ? 'acked' : 'cut'),
            () => done('cut'),
          );
        },
        () => done('refused'),
      );
    });

  /** One HTTPS request to the killed operator's mail API with the user's token. */
  const api = (port: number, method: string, p: string, body?: string, headers: Record<string, string> = {}, agent?: https.Agent) =>
    new Promise<{ status: number; replayed: boolean; body: Buffer }>((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port,
          method,
          path: p,
          ca,
          servername: 'localhost',
          agent: agent ?? false,
          timeout: 15_000,
          headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}), ...headers },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode!, replayed: res.headers['idempotent-replayed'] === 'true', body: Buffer.concat(chunks) }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end(body);
    });
  const texts = new Map<string, string>(); // web: subject marker → text sent
  const webRefusals: string[] = [];
  let retried = 0;
  let replayed = 0;
  // docs/mail-api.md: 201 only once the copy in Sent and the delivery are committed; a repeated
  // Idempotency-Key answers the first result (`Idempotent-Replayed: true`) without sending again.
  const webOne = async (port: number, id: string) => {
    const body = JSON.stringify({ from: webFrom, to: [webTo], cc: [], bcc: [], subject: id, text: texts.get(id) });
    try {
      const r = await api(port, 'POST', '/api/v1/submissions', body, { 'idempotency-key': `key-${id}` });
      if (r.status === 201) return r.replayed ? 'replayed' : 'acked';
      webRefusals.push(`${r.status} ${r.body.toString().slice(0, 200)}`);
      return 'refused';
    } catch (e: any) {
      // Nothing reached the operator (down at connect): refused; otherwise the outcome is unknown.
      return e.code === 'ECONNREFUSED' ? 'refused' : 'cut';
    }
  };
  const webMessage = (n: number) => {
    const id = `crash-web-${n}-${Math.floor(random() * 1e9)}`;
    // 1–16 KiB of short ASCII lines (sent as 7bit: the stored text is the text sent).
    const lines: string[] = [];
    const size = 1024 + Math.floor(random() * 15 * 1024);
    for (let len = 0, k = 0; len < size; k++) {
      const l = `ligne ${k} du message ${n} ${'x'.repeat(Math.floor(random() * 40))}`;
      lines.push(l);
      len += l.length + 1;
    }
    texts.set(id, `${lines.join('\n')}\nFIN ${n}`);
    return id;
  };

  let next = 0;
  const worker = async () => {
    while (next < o.messages) {
      if (down) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      const n = next++;
      if (o.mode === 'web') {
        const id = webMessage(n);
        sent++;
        let r = await webOne(current.https, id);
        if (r === 'cut') {
          cutIds.set(id, sha(texts.get(id)!));
          // The client tries again with the same key once the operator is back.
          for (let tries = 0; r === 'cut' && tries < 20; tries++) {
            while (down) await new Promise((res) => setTimeout(res, 20));
            retried++;
            r = await webOne(current.https, id);
          }
          if (r === 'replayed') replayed++;
        }
        if (r === 'acked' || r === 'replayed') acked.set(id, sha(texts.get(id)!));
        continue;
      }
      const m = message(n, from, to, random);
      sent++;
      const r = o.mode === 'append' ? await appendOne(current.imaps, m) : queueMode ? await smtpOne(current.submission, m, { user: sender.login, pass: sender.appPassword }) : await smtpOne(current.mx, m);
      if (r === 'acked') acked.set(m.id, sha(m.raw));
      else if (r === 'cut') cutIds.set(m.id, sha(m.raw));
      // 'refused' (the operator was down at connect): nothing was transferred; the next number follows.
    }
  };

  // The killer: at random moments while messages flow, SIGKILL then start again on the same state.
  const killer = (async () => {
    for (let k = 0; k < o.kills; k++) {
      const target = Math.floor(((k + 1) * o.messages) / (o.kills + 1) + (random() - 0.5) * (o.messages / (o.kills + 1)) * 0.5);
      while (acked.size + cutIds.size < target && next < o.messages) await new Promise((r) => setTimeout(r, 5));
      if (next >= o.messages) break;
      await new Promise((r) => setTimeout(r, Math.floor(random() * 40)));
      down = true;
      current.child.kill('SIGKILL');
      await new Promise((r) => current.child.once('exit', r));
      kills++;
      log(`kill ${kills}: ${acked.size} acknowledged, ${cutIds.size} cut so far`);
      current = await startOperator(B.config);
      restarts++;
      down = false;
    }
  })();
  await Promise.all([...Array.from({ length: o.concurrency ?? 4 }, worker), killer]);

  // Final count over IMAP on the running operator (after a last restart, so the start sweep ran).
  current.child.kill('SIGKILL');
  await new Promise((r) => current.child.once('exit', r));
  current = await startOperator(B.config);
  restarts++;
  if (queueMode) await queueDrained(B.dataDir);
  const present = new Map<string, string[]>();
  // web: the copy in Sent and the delivered copy, each keyed by its subject marker.
  const presentSent = new Map<string, string[]>();
  if (o.mode === 'web') {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 4 });
    const get = async (p: string) => {
      const r = await api(current.https, 'GET', p, undefined, {}, agent);
      if (r.status !== 200) throw new Error(`GET ${p}: ${r.status} ${r.body.toString().slice(0, 300)}`);
      return r.body;
    };
    const boxes = JSON.parse((await get('/api/v1/mailboxes')).toString()).mailboxes as { address: string; folders: { id: string; role: string | null }[] }[];
    const folderOf = (address: string, role: string) => boxes.find((b) => b.address === address)?.folders.find((f) => f.role === role)?.id;
    for (const [folder, into] of [
      [folderOf(webFrom, 'sent'), presentSent],
      [folderOf(webTo, 'inbox'), present],
    ] as const) {
      if (!folder) throw new Error('Sent or INBOX folder not listed by /api/v1/mailboxes');
      let cursor: string | null = null;
      do {
        const page = JSON.parse((await get(`/api/v1/folders/${folder}/emails?limit=200${cursor ? `&cursor=${cursor}` : ''}`)).toString()) as { emails: { id: string; subject: string }[]; nextCursor: string | null };
        for (const e of page.emails) {
          if (!e.subject.startsWith('crash-web-')) continue;
          const raw = (await get(`/api/v1/emails/${e.id}/raw`)).toString('latin1').replace(/\r\n/g, '\n');
          const text = texts.get(e.subject);
          // Byte-identical text, ending with its FIN line: nothing partial.
          into.set(e.subject, [...(into.get(e.subject) ?? []), text !== undefined && raw.includes(text) ? sha(text) : 'partial']);
        }
        cursor = page.nextCursor;
      } while (cursor);
    }
    agent.destroy();
  } else {
  const imap = new ImapFlow({ host: '127.0.0.1', port: queueMode ? peer!.imaps : current.imaps, secure: true, tls: { ca, servername: 'localhost' }, auth: { user: recipient.login, pass: recipient.appPassword }, logger: false });
  await imap.connect();
  try {
    const lock = await imap.getMailboxLock('INBOX');
    try {
      if ((imap.mailbox as any).exists > 0)
        for await (const msg of imap.fetch('1:*', { source: true, envelope: true })) {
          const id = msg.envelope?.messageId ?? '';
          // Stored messages may start with Received: trace fields (MX, submission); compare what follows.
          const src = msg.source!;
          const start = src.indexOf('From: <');
          const body = start >= 0 ? src.subarray(start) : src;
          present.set(id, [...(present.get(id) ?? []), sha(body)]);
        }
    } finally {
      lock.release();
    }
  } finally {
    await imap.logout().catch(() => imap.close());
  }
  }
  // The final process's start sweep, once it leads (the killed one's lease expired), before the
  // files are counted.
  await current.collected;
  current.child.kill('SIGTERM');
  await new Promise((r) => current.child.once('exit', r));
  if (peer) {
    peer.child.kill('SIGTERM');
    await new Promise((r) => peer!.child.once('exit', r));
  }

  const lost: string[] = [];
  const corrupt: string[] = [];
  const duplicated: string[] = [];
  const unknown: string[] = [];
  let cutButStored = 0;
  // web: both copies are judged (Sent, then the recipient's INBOX; labelled `sent:` / `inbox:`).
  const views = o.mode === 'web' ? ([['sent:', presentSent], ['inbox:', present]] as const) : ([['', present]] as const);
  for (const [label, view] of views) {
    for (const [id, h] of acked) {
      const got = view.get(id);
      if (!got) lost.push(label + id);
      else if (!got.some((g) => g === h)) corrupt.push(label + id);
      else if (got.some((g) => g !== h)) corrupt.push(label + id); // a partial second copy
    }
    for (const [id, h] of cutIds) {
      const got = view.get(id);
      if (!got) continue;
      if (label !== 'inbox:' && !acked.has(id)) cutButStored++;
      if (!acked.has(id) && !got.every((g) => g === h)) corrupt.push(label + id); // a partial message made visible
    }
    duplicated.push(...[...view].filter(([, v]) => v.length > 1).map(([k]) => label + k));
    unknown.push(...[...view.keys()].filter((id) => (id.startsWith('<crash-') || id.startsWith('crash-web-')) && !acked.has(id) && !cutIds.has(id)).map((k) => label + k));
  }
  // web: a cut request stored before the kill shows as a replay of its retry (or as a duplicate).
  if (o.mode === 'web') cutButStored += replayed + new Set(duplicated.filter((d) => cutIds.has(d.slice(d.indexOf(':') + 1))).map((d) => d.slice(d.indexOf(':') + 1))).size;
  if (webRefusals.length) log(`web refusals (${webRefusals.length}): ${webRefusals.slice(0, 3).join(' | ')}`);

  // The store, stopped: rows ⇄ files.
  const db = new Database(path.join(B.dataDir, 'caducee.sqlite'), { readonly: true });
  const referenced = new Set((db.prepare("SELECT blob_id FROM messages UNION SELECT blob_id FROM outbound_queue WHERE status = 'queued'").all() as { blob_id: string }[]).map((r) => r.blob_id));
  // Files whose last row went since the collector's last run are recorded candidates, not orphans.
  const candidates = new Set((db.prepare('SELECT blob_id FROM blob_garbage').all() as { blob_id: string }[]).map((r) => r.blob_id));
  db.close();
  const blobDir = path.join(B.dataDir, 'blobs');
  const files = new Set<string>();
  for (const sub of readdirSync(blobDir)) if (/^[0-9a-f]{2}$/.test(sub)) for (const f of readdirSync(path.join(blobDir, sub))) if (/^[0-9a-f]{64}$/.test(f)) files.add(f);
  const danglingRows = [...referenced].filter((id) => !existsSync(path.join(blobDir, id.slice(0, 2), id))).length;
  const orphanFiles = [...files].filter((f) => !referenced.has(f) && !candidates.has(f)).length;

  return { sent, acknowledged: acked.size, cut: cutIds.size, cutButStored, kills, restarts, lost, corrupt, duplicated, unknown, danglingRows, orphanFiles, ...(o.mode === 'web' ? { retried, replayed, duplicatedRetries: duplicated.filter((d) => cutIds.has(d.slice(d.indexOf(':') + 1))) } : {}), wallMs: Date.now() - t0 };
}
