// TLS settings every listener shares (IMAP implicit TLS and STARTTLS, SMTP MX, submission and
// submissions, HTTPS): spread into each server's TLS options or secure context, so that a
// hardening decided here holds on every socket the product accepts.
//
// The profile follows ANSSI's "Recommandations de sécurité relatives à TLS" (v1.2, 2020):
// TLS 1.2 and 1.3 only (R3/R4), key exchange with forward secrecy only (R6: ECDHE), AEAD
// encryption only (R8: AES-GCM, ChaCha20-Poly1305; no CBC, so no LUCKY13-class padding
// oracle), the server's order of preference (R10), and elliptic curves among those it lists.
import { constants } from 'node:crypto';

/**
 * TLS 1.2 suites, most preferred first (OpenSSL names). Only ECDHE key exchange (no plain RSA
 * key transport: no forward secrecy, and the ROBOT/Bleichenbacher class), only AEAD ciphers.
 * ECDSA suites come first for a certificate with an EC key; an RSA certificate uses the RSA ones.
 * DHE is left out: finite-field groups are slower, and RFC 7919 negotiation is not universal.
 */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** TLS 1.3 suites (RFC 8446 §B.4): all AEAD with ephemeral key exchange; AES-256 first. */
export const TLS13_CIPHERSUITES = ['TLS_AES_256_GCM_SHA384', 'TLS_AES_128_GCM_SHA256', 'TLS_CHACHA20_POLY1305_SHA256'].join(':');

export const serverTlsOptions = {
  // ANS (MSSanté trust space): TLS 1.2 minimum; ANSSI R3: TLS 1.3 preferred, TLS 1.2 allowed.
  minVersion: 'TLSv1.2',
  maxVersion: 'TLSv1.3',
  // Node's `ciphers` string carries both lists: TLS 1.3 suite names are recognised by their
  // TLS_ prefix and set with SSL_CTX_set_ciphersuites, the rest with SSL_CTX_set_cipher_list.
  ciphers: `${TLS13_CIPHERSUITES}:${TLS12_CIPHERS}`,
  // ANSSI R10: the server chooses the suite from its own order, not the client's.
  honorCipherOrder: true,
  // ECDHE groups (RFC 8422 §5.1.1 / RFC 8446 §4.2.7): X25519 then NIST P-256 and P-384.
  ecdhCurve: 'X25519:P-256:P-384',
  // No renegotiation, on any socket: a client-initiated renegotiation costs the server a full
  // handshake per request, and nothing here needs one (RFC 5746 §5: servers may simply refuse to
  // renegotiate). OpenSSL answers a ClientHello after the handshake with a no_renegotiation
  // alert (RFC 5246 §7.2.2) and performs no key exchange. TLS 1.3 has no renegotiation at all
  // (RFC 8446 §4.1.2); this concerns TLS 1.2 sessions. Set on the secure context, it holds for
  // every socket built from it, including STARTTLS upgrades. (Node adds
  // SSL_OP_CIPHER_SERVER_PREFERENCE for honorCipherOrder to these flags.)
  secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
} as const;
