// IMAP listeners: STARTTLS (143-style, LOGINDISABLED until TLS) and implicit TLS (993-style,
// RFC 8314). Each connection gets an ImapSession.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { serverTlsOptions } from '../pki/tls-server.js';
import { ImapSession, type ImapServices } from './session.js';

export interface ImapListener {
  server: net.Server;
  sessions: Set<ImapSession>;
  sockets: Set<net.Socket>;
}

export function createImapServer(services: ImapServices, implicitTls: boolean): ImapListener {
  const sessions = new Set<ImapSession>();
  const sockets = new Set<net.Socket>();
  const onSocket = (socket: net.Socket, secure: boolean) => {
    // Responses are often written in several pieces: without TCP_NODELAY each one waits ~40 ms
    // for the client's delayed ACK (measured by bench/imap-stress.ts).
    socket.setNoDelay(true);
    sockets.add(socket);
    const session = new ImapSession(socket, services, secure, randomBytes(6).toString('hex'));
    sessions.add(session);
    socket.once('close', () => {
      sessions.delete(session);
      sockets.delete(socket);
    });
  };
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
        },
        (s) => onSocket(s, true),
      )
    : net.createServer((s) => onSocket(s, false));
  server.on('tlsClientError', () => {});
  return { server, sessions, sockets };
}
