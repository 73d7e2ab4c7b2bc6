// SASL XOAUTH2 and OAUTHBEARER messages: parse what the client sends, build the error
// challenge the server sends before failing. Pure functions, no I/O; the callers (IMAP,
// SMTP) do the base64 framing of their protocol.
//
// XOAUTH2: Google's mechanism (https://developers.google.com/workspace/gmail/imap/xoauth2-protocol),
// what most mail clients speak. OAUTHBEARER: RFC 7628, with the GS2 header of RFC 5801.

/** RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const MAX_MESSAGE = 64 * 1024;

/** Strict UTF-8 decoding: invalid sequences make the message malformed instead of becoming U+FFFD. */
function utf8(raw: Buffer): string | null {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    return null;
  }
}

/**
 * RFC 6750 §2.1 credentials = "Bearer" 1*SP b64token. The scheme name is case-insensitive
 * (RFC 7235 §2.1); one or more spaces, nothing after the token.
 */
function bearerToken(value: string): string | null {
  const m = /^bearer +(\S+)$/i.exec(value);
  if (!m) return null;
  return B64TOKEN.test(m[1]!) ? m[1]! : null;
}

// ---- XOAUTH2 ----------------------------------------------------------------------------

/**
 * XOAUTH2 initial client response: "user=" {User} "^Aauth=Bearer " {Access Token} "^A^A"
 * (Google's XOAUTH2 protocol, "The SASL XOAUTH2 Mechanism"). Null when malformed.
 */
export function parseXoauth2(raw: Buffer): { user: string; token: string } | null {
  if (raw.length === 0 || raw.length > MAX_MESSAGE) return null;
  const text = utf8(raw);
  if (text === null) return null;
  // Terminated by ^A^A: the last field is followed by ^A, then one more ^A.
  if (!text.endsWith('\x01\x01')) return null;
  const fields = text.slice(0, -2).split('\x01');
  // Exactly the two fields, in this order: user=..., auth=...
  if (fields.length !== 2) return null;
  const [userField, authField] = fields as [string, string];
  if (!userField.startsWith('user=') || !authField.startsWith('auth=')) return null;
  const user = userField.slice('user='.length);
  if (!user) return null;
  const token = bearerToken(authField.slice('auth='.length));
  return token ? { user, token } : null;
}

/**
 * The JSON error the server sends as a last challenge before failing an XOAUTH2 attempt, as
 * Google does: {"status":"401","schemes":"bearer","scope":"..."}. The client then answers
 * with an empty response and gets the failure. The caller base64-encodes it.
 */
export function xoauth2ErrorChallenge(opts: { status: '400' | '401'; scope?: string }): Buffer {
  const body: Record<string, string> = { status: opts.status, schemes: 'bearer' };
  if (opts.scope !== undefined) body.scope = opts.scope;
  return Buffer.from(JSON.stringify(body), 'utf8');
}

// ---- OAUTHBEARER (RFC 7628) -------------------------------------------------------------

export interface OauthbearerResponse {
  /** gs2-authzid: the identity to act as, or null when the client sent none. */
  authzid: string | null;
  token: string;
  host?: string;
  port?: string;
}

/**
 * RFC 5801 §4: saslname = 1*(UTF8-char-safe / "=2C" / "=3D"); "," and "=" appear only
 * escaped, NUL not at all. Null when the escaping is wrong or the name empty.
 */
function decodeSaslname(s: string): string | null {
  if (!s) return null;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    // RFC 5801 §4: UTF8-1-safe = %x01-2B / %x2D-3C / %x3E-7F: no ",", and no NUL either.
    if (c === ',' || c === '\0') return null;
    if (c === '=') {
      const esc = s.slice(i + 1, i + 3);
      if (esc === '2C') out += ',';
      else if (esc === '3D') out += '=';
      else return null;
      i += 2;
    } else out += c;
  }
  return out;
}

/**
 * RFC 7628 §3.1 initial client response:
 *   client-resp = (gs2-header kvsep *kvpair kvsep) / kvsep
 *   kvpair      = key "=" value kvsep ;  key = 1*(ALPHA) ;  kvsep = %x01
 *   value       = *(VCHAR / SP / HTAB / CR / LF)
 * with gs2-header = gs2-cbind-flag "," [ gs2-authzid ] "," (RFC 5801 §4) and the "auth" key
 * holding "Bearer <token>" (RFC 7628 §3.1, RFC 6750 §2.1). Null when malformed, when "auth" is
 * missing, and for the lone kvsep a client sends after an error challenge (RFC 7628 §3.2.3;
 * src/auth/sasl.ts fails the exchange whatever that answer is).
 */
export function parseOauthbearer(raw: Buffer): OauthbearerResponse | null {
  if (raw.length === 0 || raw.length > MAX_MESSAGE) return null;
  const text = utf8(raw);
  if (text === null) return null;

  // RFC 5801 §4: gs2-cbind-flag = ("p=" cb-name) / "n" / "y". OAUTHBEARER has no channel
  // binding (RFC 7628 §3.1 / §4.1 "n" or "y"): "p=" is refused.
  const flagEnd = text.indexOf(',');
  if (flagEnd < 0) return null;
  const flag = text.slice(0, flagEnd);
  if (flag !== 'n' && flag !== 'y') return null;
  const authzEnd = text.indexOf(',', flagEnd + 1);
  if (authzEnd < 0) return null;
  const authzField = text.slice(flagEnd + 1, authzEnd);
  let authzid: string | null = null;
  if (authzField !== '') {
    // RFC 5801 §4: gs2-authzid = "a=" saslname
    if (!authzField.startsWith('a=')) return null;
    authzid = decodeSaslname(authzField.slice(2));
    if (authzid === null) return null;
  }

  // After the gs2-header: kvsep, then kvpairs each ending in kvsep, then the final kvsep.
  const rest = text.slice(authzEnd + 1);
  if (!rest.startsWith('\x01') || !rest.endsWith('\x01\x01') || rest.length < 3) return null;
  const pairs = rest.slice(1, -2).split('\x01');
  const kv = new Map<string, string>();
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) return null;
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    if (!/^[A-Za-z]+$/.test(key)) return null; // key = 1*(ALPHA)
    if (!/^[\x21-\x7e \t\r\n]*$/.test(value)) return null; // value = *(VCHAR / SP / HTAB / CR / LF)
    if (kv.has(key)) return null; // one value per key
    kv.set(key, value);
  }
  const auth = kv.get('auth');
  if (auth === undefined) return null;
  const token = bearerToken(auth);
  if (!token) return null;
  const out: OauthbearerResponse = { authzid, token };
  // RFC 7628 §3.1: "host" and "port" are what the client connected to (informative).
  const host = kv.get('host');
  const port = kv.get('port');
  if (host !== undefined) out.host = host;
  if (port !== undefined) {
    if (!/^[0-9]{1,5}$/.test(port)) return null;
    out.port = port;
  }
  return out;
}

/**
 * RFC 7628 §3.2.2 server error response: a JSON object with "status" (an RFC 6750 §3.1 error
 * code), optional "scope" and optional "openid-configuration" (discovery document URL),
 * UTF-8. Sent as a challenge; the caller base64-encodes it.
 */
export function oauthbearerErrorChallenge(opts: {
  status: 'invalid_token' | 'invalid_request' | 'insufficient_scope';
  scope?: string;
  openidConfiguration?: string;
}): Buffer {
  const body: Record<string, string> = { status: opts.status };
  if (opts.scope !== undefined) body.scope = opts.scope;
  if (opts.openidConfiguration !== undefined) body['openid-configuration'] = opts.openidConfiguration;
  return Buffer.from(JSON.stringify(body), 'utf8');
}
