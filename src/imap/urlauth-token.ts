// URLAUTH tokens of the INTERNAL mechanism (RFC 4467 §2.4, §7 GENURLAUTH) and the access rule of
// a URLAUTH URL's access identifier (§2.2, as Caducée applies it: docs/imap.md "URLAUTH"). Pure:
// no I/O. The token is HMAC-SHA-256 (RFC 2104) of the rump URL's bytes under the mailbox access key
// of the issuing user and folder (§3), in lower-case hex; a presented token is compared in
// constant time.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { UrlAuthAccess } from './protocol/imap-url.js';

/** RFC 4467 §2.3: the one mechanism this server offers. */
export const URLAUTH_MECHANISM = 'INTERNAL';

/** RFC 4467 §2.4: the INTERNAL token of `rump` under `key` (64 hex digits). */
export function urlAuthToken(key: Uint8Array, rump: string): string {
  return createHmac('sha256', key).update(rump, 'utf8').digest('hex');
}

/**
 * Does `token` (hex, as parsed from the URL) authorize `rump` under `key`? Compared in constant
 * time (timingSafeEqual over the 32 bytes); a token of another length is compared with the
 * expected one all the same, then refused. No key (the folder or the issuer does not exist, or
 * RESETKEY removed it): a random one is used, so the answer takes the same time (RFC 4467 §7:
 * "using random 'plausible' keys ... to prevent timing attacks aimed at identifying mailbox names").
 */
export function urlAuthTokenMatches(key: Uint8Array | undefined, rump: string, token: string): boolean {
  const expected = Buffer.from(urlAuthToken(key ?? randomBytes(32), rump), 'hex');
  const given = /^[0-9a-f]*$/i.test(token) && token.length % 2 === 0 ? Buffer.from(token, 'hex') : Buffer.alloc(0);
  const same = given.length === expected.length ? timingSafeEqual(given, expected) : (timingSafeEqual(expected, expected), false);
  return same && key !== undefined;
}

/**
 * RFC 4467 §2.2: may the authenticated user `login` fetch a URL of access identifier `access`?
 * `user+NAME`: only NAME (logins compare case-insensitively, as core's mayActAs does);
 * `authuser`: any authenticated user of this server; `submit+NAME`: only a message submission
 * entity acting for NAME — Caducée has none (no BURL), so nobody; `anonymous`: nobody (never
 * issued: GENURLAUTH refuses it). This is only the URL's own condition: the read itself is
 * still decided by core (the fetching user's read right on the mailbox).
 */
export function accessAllows(access: UrlAuthAccess, login: string): boolean {
  switch (access.kind) {
    case 'user':
      return access.user.toLowerCase() === login.toLowerCase();
    case 'authuser':
      return true;
    case 'submit':
    case 'anonymous':
      return false;
  }
}
