// TLS settings every listener shares (IMAP implicit TLS and STARTTLS, SMTP MX, submission and
// submissions, HTTPS): spread into each server's TLS options or secure context, so that a
// hardening decided here holds on every socket the product accepts.
import { constants } from 'node:crypto';

export const serverTlsOptions = {
  // ANS (MSSanté trust space): TLS 1.2 minimum.
  minVersion: 'TLSv1.2',
  // No renegotiation, on any socket: a client-initiated renegotiation costs the server a full
  // handshake per request, and nothing here needs one (RFC 5746 §5: servers may simply refuse to
  // renegotiate). OpenSSL answers a ClientHello after the handshake with a no_renegotiation
  // alert (RFC 5246 §7.2.2) and performs no key exchange. TLS 1.3 has no renegotiation at all
  // (RFC 8446 §4.1.2); this concerns TLS 1.2 sessions. Set on the secure context, it holds for
  // every socket built from it, including STARTTLS upgrades.
  secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
} as const;
