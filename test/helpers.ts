// Shared test helpers: temporary directories, waiting, reading mailboxes, probing an MX.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import pino from 'pino';
import type { Operator } from '../src/main.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { BlobStore } from '../src/store/blobs.js';
import { installKeyPool } from './support/key-pool.js';

// Test PKIs take their RSA keys from a pool generated once (test/support/key-pool.ts).
installKeyPool();

export const testLogger = () => pino({ level: process.env.CADUCEE_TEST_LOG ?? 'silent' });

/** A fresh temporary directory; call the returned cleanup in an `after` hook. */
export function tempDir(prefix = 'caducee-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function waitFor<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, what: string, timeoutMs = 15000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Raw messages in a mailbox folder of a running operator. */
export async function folderMessages(op: Operator, address: string, folder = 'INBOX'): Promise<Buffer[]> {
  const mb = await op.store.findMailboxByAddress(address);
  if (!mb) throw new Error(`no mailbox ${address}`);
  const f = await op.store.getFolder(mb.id, folder);
  const msgs = await op.store.listMessages(f!.id);
  return Promise.all(msgs.map((m) => op.blobs.read(m.blobId)));
}

/** The SQLite database of an operator on the embedded store (checks that read rows directly). */
export function sqliteDb(op: Operator): SqliteStore['db'] {
  if (!(op.store instanceof SqliteStore)) throw new Error('this check reads the SQLite file: run the operator on the embedded store (store.kind sqlite)');
  return op.store.db;
}

/** The message-file directory of an operator keeping its files on disk (store.blobs.kind files). */
export function fileBlobs(op: Operator): BlobStore {
  if (!(op.blobs instanceof BlobStore)) throw new Error('this check reads message files on disk: run the operator with store.blobs.kind files');
  return op.blobs;
}

/** Count of every message stored by an operator, all mailboxes and folders. */
export function totalMessages(op: Operator): number {
  return (sqliteDb(op).prepare('SELECT COUNT(*) n FROM messages').get() as any).n;
}

export interface ProbeResult {
  /** The step that failed ('connect', 'mail', 'rcpt', 'data'), or 'sent'. */
  stage: string;
  code?: number;
  response?: string;
  accepted?: string[];
  rejected?: { recipient: string; code?: number; response?: string }[];
}

/** Talks to an SMTP server as a peer would, reporting exactly where and how it was refused. */
export async function probe(o: {
  port: number;
  cert?: string;
  key?: string;
  ca?: string;
  noTls?: boolean;
  implicitTls?: boolean;
  auth?: { user: string; pass: string };
  from: string;
  to: string[];
  raw?: Buffer | string;
  size?: number;
  dsn?: { notify?: string[]; ret?: string; envid?: string };
}): Promise<ProbeResult> {
  const conn = new SMTPConnection({
    host: '127.0.0.1',
    port: o.port,
    secure: !!o.implicitTls,
    ignoreTLS: !!o.noTls,
    requireTLS: !o.noTls && !o.implicitTls,
    name: 'probe.test',
    connectionTimeout: 5000,
    tls: { cert: o.cert, key: o.key, ca: o.ca, rejectUnauthorized: !!o.ca, servername: 'localhost' },
  } as any);
  conn.on('error', () => {});
  try {
    await new Promise<void>((resolve, reject) => {
      conn.once('error', reject);
      conn.connect(() => resolve());
    });
    if (o.auth) {
      const r = await new Promise<any>((resolve) => conn.login(o.auth as any, (err: any) => resolve(err)));
      if (r) return { stage: 'auth', code: r.responseCode, response: r.response };
    }
    const raw = o.raw ?? `From: <${o.from}>\r\nTo: <${o.to[0]}>\r\nSubject: probe\r\nMessage-ID: <${Math.random()}@probe.test>\r\nDate: ${new Date().toUTCString()}\r\n\r\nprobe\r\n`;
    const envelope: any = { from: o.from, to: o.to, size: o.size };
    if (o.dsn) envelope.dsn = o.dsn;
    const info: any = await new Promise((resolve) => conn.send(envelope, raw as any, (err: any, inf: any) => resolve(err ? { err } : inf)));
    if (info.err) {
      const e = info.err;
      const stage = e.command === 'MAIL FROM' ? 'mail' : e.command === 'RCPT TO' ? 'rcpt' : e.command === 'DATA' || e.command === 'DATA (end)' ? 'data' : String(e.command ?? e.code);
      return {
        stage,
        code: e.responseCode,
        response: e.response ?? e.message,
        rejected: (e.rejectedErrors ?? []).map((r: any) => ({ recipient: r.recipient, code: r.responseCode, response: r.response })),
      };
    }
    return {
      stage: 'sent',
      code: 250,
      response: info.response,
      accepted: info.accepted,
      rejected: (info.rejectedErrors ?? []).map((r: any) => ({ recipient: r.recipient, code: r.responseCode, response: r.response })),
    };
  } catch (e: any) {
    return { stage: 'connect', code: e.responseCode, response: e.response ?? e.message };
  } finally {
    conn.close();
  }
}

/**
 * A hand-driven SMTP session: greeting and EHLO done, over STARTTLS (default) or implicit TLS,
 * optionally presenting a client certificate (PEM text). `send` resolves with the final reply
 * line of each command, for what a well-behaved client library refuses to send.
 */
export async function smtpSession(o: { port: number; implicitTls?: boolean; ca?: string; cert?: string; key?: string }) {
  const net = await import('node:net');
  const tls = await import('node:tls');
  const tlsOptions = { cert: o.cert, key: o.key, ...(o.ca ? { ca: o.ca, servername: 'localhost' } : { rejectUnauthorized: false }) };
  let socket: import('node:net').Socket = o.implicitTls ? tls.connect({ host: '127.0.0.1', port: o.port, ...tlsOptions }) : net.connect(o.port, '127.0.0.1');
  let buf = '';
  const waiters: ((line: string) => void)[] = [];
  const onData = (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\r\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (/^\d{3} /.test(line)) waiters.shift()?.(line);
    }
  };
  socket.on('data', onData);
  const reply = () => new Promise<string>((r) => waiters.push(r));
  const send = async (cmd: string) => {
    const p = reply();
    socket.write(cmd + '\r\n');
    return p;
  };
  await reply();
  await send('EHLO probe.test');
  if (!o.implicitTls) {
    await send('STARTTLS');
    socket.off('data', onData);
    socket = await new Promise((resolve, reject) => {
      const s = tls.connect({ socket, ...tlsOptions }, () => resolve(s));
      s.once('error', reject);
    });
    socket.on('data', onData);
    await send('EHLO probe.test');
  }
  return {
    send,
    close() {
      socket.write('QUIT\r\n');
      setTimeout(() => socket.destroy(), 100);
    },
  };
}

/** STARTTLS, then `commands` one by one; their replies. */
export async function dialogue(o: { port: number; cert?: string; key?: string; commands: string[] }): Promise<string[]> {
  const s = await smtpSession(o);
  try {
    const replies: string[] = [];
    for (const c of o.commands) replies.push(await s.send(c));
    return replies;
  } finally {
    s.close();
  }
}

/** Submits a message as a demo user through an operator's STARTTLS submission port. */
export async function submitAs(port: number, caBundle: string, user: { login: string; appPassword: string }, mail: any) {
  const nodemailer = (await import('nodemailer')).default;
  return nodemailer
    .createTransport({
      host: '127.0.0.1',
      port,
      secure: false,
      requireTLS: true,
      auth: { user: user.login, pass: user.appPassword },
      tls: { ca: readFileSync(caBundle), servername: 'localhost' },
    })
    .sendMail(mail);
}

/**
 * A minimal line-based IMAP client over implicit TLS, for exact protocol assertions over implicit TLS, optionally presenting a client certificate (PEM
 * file paths). `cmd` answers continuation requests ("+ …") with `replies` in order (an empty
 * line once they run out, which ends a SASL error exchange).
 */
export async function rawImap(port: number, ca: string, clientCert?: { cert: string; key: string }) {
  const tls = await import('node:tls');
  const { readFileSync } = await import('node:fs');
  const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...(clientCert ? { cert: readFileSync(clientCert.cert), key: readFileSync(clientCert.key) } : {}) });
  let buf = '';
  let waiting: (() => void) | undefined;
  socket.on('data', (d) => {
    buf += d.toString('utf8');
    waiting?.();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  const nextLineUntil = async (pred: (line: string) => boolean): Promise<string[]> => {
    const lines: string[] = [];
    for (;;) {
      let i;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        lines.push(line);
        if (pred(line)) return lines;
      }
      await new Promise<void>((r) => (waiting = r));
    }
  };
  const greeting = (await nextLineUntil((l) => l.startsWith('* OK')))[0];
  let n = 0;
  return {
    greeting,
    /** Sends a command; resolves with every response line up to and including the tagged one. */
    async cmd(text: string, replies: string[] = []): Promise<string[]> {
      const tag = `t${++n}`;
      socket.write(`${tag} ${text}\r\n`);
      const out: string[] = [];
      for (;;) {
        const lines = await nextLineUntil((l) => l.startsWith(`${tag} `) || l.startsWith('+'));
        out.push(...lines);
        if (lines.at(-1)!.startsWith(`${tag} `)) return out;
        socket.write(`${replies.shift() ?? ''}\r\n`);
      }
    },
    close() {
      socket.destroy();
    },
  };
}
