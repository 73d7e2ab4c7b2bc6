// IMAP listeners: STARTTLS (143-style, LOGINDISABLED until TLS) and implicit TLS (993-style,
// RFC 8314). Each connection gets an ImapSession.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { serverTlsOptions } from '../pki/tls-server.js';
import { refusalText, type ConnectionLimiter } from '../net/limits.js';
import type { FoldersChange, MetadataChange } from '../core/index.js';
import { ImapSession, type ImapServices } from './session.js';

export interface ImapListener {
  server: net.Server;
  sessions: Set<ImapSession>;
  sockets: Set<net.Socket>;
}

export interface ImapListenerLimits {
  /** Shared by the operator's IMAP listeners: open connections per client address and in all. */
  limiter?: ConnectionLimiter;
  /** A connection that has not authenticated after this long is closed (default 180 s). */
  preAuthSeconds?: number;
  /** Implicit TLS: a handshake not finished after this long is abandoned (default 10 s). */
  handshakeSeconds?: number;
}

export function createImapServer(services: ImapServices, implicitTls: boolean, limits: ImapListenerLimits = {}): ImapListener {
  const sessions = new Set<ImapSession>();
  const sockets = new Set<net.Socket>();
  // Folder changes and resyncs reach every session of the listener through one subscription
  // (issue 15: three listeners per session, each with its closure, cost ~0.9 KB per idling
  // session). A session leaves `sessions` when its connection closes.
  // RFC 5465 §5.4–5.7 (NOTIFY MailboxName, SubscriptionChange, metadata changes): mailboxEvent.
  const listeners: [string, (...args: any[]) => void][] = [
    ['delivered', (e: { folderId: number }) => sessions.forEach((s) => s.changed(e))],
    ['folder-changed', (e: { folderId: number }) => sessions.forEach((s) => s.changed(e))],
    ['resync', () => sessions.forEach((s) => s.resync())],
    ['folders-changed', (change: FoldersChange) => sessions.forEach((s) => s.mailboxEvent({ kind: 'folders', change }))],
    ['grants-changed', (e: { userId: number }) => sessions.forEach((s) => s.mailboxEvent({ kind: 'grants', userId: e.userId }))],
    ['metadata-changed', (change: MetadataChange) => sessions.forEach((s) => s.mailboxEvent({ kind: 'metadata', change }))],
  ];
  for (const [event, listener] of listeners) services.core.events.on(event, listener);
  const onSocket = (socket: net.Socket, secure: boolean) => {
    // Responses are often written in several pieces: without TCP_NODELAY each one waits ~40 ms
    // for the client's delayed ACK (measured by bench/imap-stress.ts).
    socket.setNoDelay(true);
    sockets.add(socket);
    const session = new ImapSession(socket, services, secure, randomBytes(6).toString('hex'));
    sessions.add(session);
    // 'on', not 'once': 'close' comes once, and a once-wrapper per connection costs memory.
    socket.on('close', () => {
      sessions.delete(session);
      sockets.delete(socket);
    });
  };
  // The pre-authentication limit and the autologout timer (ImapSession.expire): one sweep of the
  // listener's sessions, a quarter of the pre-authentication limit apart (at most 10 s), instead
  // of two timers per connection (issue 15).
  const preAuthMs = (limits.preAuthSeconds ?? 180) * 1000;
  const sweep = setInterval(
    () => {
      const now = performance.now();
      for (const session of sessions) session.expire(now, preAuthMs);
    },
    Math.min(preAuthMs / 4, 10_000),
  );
  sweep.unref();
  const server = implicitTls
    ? tls.createServer(
        {
          ...services.tlsKeyCert,
          ...serverTlsOptions, // TLS 1.2 minimum, no renegotiation
          // Ask for (never require) a client certificate, for SASL EXTERNAL (strong authentication
          // with a CPS-like or IGC-Santé organisation certificate, judged by trust/). `ca` lists the
          // acceptable CAs in the CertificateRequest (RFC 8446 §4.2.4, RFC 5246 §7.4.4).
          requestCert: true,
          rejectUnauthorized: false,
          ...(services.ca ? { ca: services.ca } : {}),
          // A client that opens TCP and never finishes the handshake holds a socket: not for long.
          handshakeTimeout: (limits.handshakeSeconds ?? 10) * 1000,
        },
        (s) => onSocket(s, true),
      )
    : net.createServer((s) => {
        if (!(s as any).caduceeRefused) onSocket(s, false);
      });
  server.once('close', () => {
    clearInterval(sweep);
    for (const [event, listener] of listeners) services.core.events.off(event, listener);
  });
  server.on('tlsClientError', () => {});
  // Counted at the TCP connection, before any TLS work: over a limit, a STARTTLS listener says
  // why in IMAP words (RFC 9051 §7.1.5 BYE, UNAVAILABLE code: RFC 5530 §3); an implicit-TLS one
  // cannot speak before a handshake it will not spend, so it closes.
  if (limits.limiter) {
    const limiter = limits.limiter;
    server.prependListener('connection', (raw: net.Socket) => {
      const a = limiter.admit(raw.remoteAddress);
      if (a.ok) return void raw.on('close', a.release); // release is idempotent; no once-wrapper
      services.logger.warn({ component: 'imap', remote: raw.remoteAddress, reason: a.reason, limit: a.limit }, 'connection refused: limit reached');
      if (implicitTls) return void raw.destroy();
      raw.end(`* BYE [UNAVAILABLE] ${refusalText(a)}\r\n`);
      (raw as any).caduceeRefused = true;
    });
  }
  return { server, sessions, sockets };
}
