// Identification and authentication: CAPABILITY, ID (RFC 2971), LOGIN and AUTHENTICATE (RFC
// 9051 §6.2, over TLS only; SASL mechanisms in auth/sasl.ts), ENABLE (RFC 5161). STARTTLS
// replaces the connection's socket and lives with the connection in session.ts.
import type { AuthResult } from '../../auth/index.js';
import type { SaslFailure } from '../../auth/sasl.js';
import type { User } from '../../core/index.js';
import { bad, no } from '../errors.js';
import { quoted } from '../protocol/encoder.js';
import { UserNamespace } from '../namespace.js';
import type { Handlers, SessionContext } from './context.js';

/** What the server announces in its state (RFC 9051 §6.1.1); SASL mechanisms only over TLS. */
export function capabilities(ctx: SessionContext): string[] {
  const caps = ['IMAP4rev1', 'IMAP4rev2', 'LITERAL+', 'ID', 'ENABLE'];
  if (ctx.state === 'notauth') {
    if (!ctx.secure) caps.push('STARTTLS', 'LOGINDISABLED'); // RFC 9051 §6.2.3, §11.1
    else caps.push('SASL-IR', ...ctx.sasl.mechanisms({ clientCertificate: ctx.peerChain().length > 0 }).map((m) => `AUTH=${m}`));
    return caps;
  }
  caps.push(
    'IDLE',
    'UIDPLUS',
    'MOVE',
    'NAMESPACE',
    'UNSELECT',
    'SPECIAL-USE',
    'CREATE-SPECIAL-USE',
    'CHILDREN',
    'LIST-EXTENDED',
    'LIST-STATUS',
    'LIST-MYRIGHTS', // RFC 8440
    'METADATA', // RFC 5464 §1: mailbox and server entries (docs/imap.md "METADATA")
    'STATUS=SIZE',
    'ESEARCH',
    'SEARCHRES',
    'ESORT', // RFC 5267 §3
    'CONTEXT=SEARCH', // RFC 5267 §4
    'CONTEXT=SORT',
    'NOTIFY', // RFC 5465
    'MULTIAPPEND',
    'CATENATE', // RFC 4469
    'URLAUTH', // RFC 4467 (docs/imap.md "URLAUTH": with core's access decision at every URLFETCH)
    'URLAUTH=BINARY', // RFC 5524
    `APPENDLIMIT=${ctx.s.appendLimit}`,
    'QUOTA',
    'QUOTA=RES-STORAGE',
    'QUOTA=RES-MESSAGE',
    'ACL',
    'RIGHTS=texk',
    'CONDSTORE',
    'QRESYNC',
    'BINARY',
    'SORT',
    'SORT=DISPLAY',
    'THREAD=ORDEREDSUBJECT',
    'THREAD=REFERENCES',
    'UTF8=ACCEPT', // RFC 6855 §3
  );
  return caps;
}

export const authCommands = {
  CAPABILITY: async (ctx) => {
    ctx.write(`* CAPABILITY ${capabilities(ctx).join(' ')}\r\n`);
    return 'CAPABILITY completed';
  },
  ID: async (ctx, cmd) => {
    // RFC 2971: identify the server; the client's parameters are only logged (no content). "é"
    // in a quoted string only for a UTF-8 session (RFC 6855 §3), a literal otherwise.
    const q = (s: string) => quoted(s, { utf8: ctx.utf8 });
    ctx.write(`* ID (${['name', 'Caducée', 'vendor', 'Caducée', 'support-url', 'https://github.com/caducee'].map(q).join(' ')})\r\n`);
    if (cmd.params) ctx.log.debug({ client: cmd.params.name ?? null }, 'client id');
    return 'ID completed';
  },
  LOGIN: async (ctx, cmd) => {
    if (!ctx.secure) throw no('PRIVACYREQUIRED', 'LOGIN is disabled before STARTTLS: credentials are never accepted in clear');
    return login(ctx, cmd.user, cmd.password);
  },
  AUTHENTICATE: (ctx, cmd) => authenticate(ctx, cmd.mechanism, cmd.initialResponse),
  ENABLE: async (ctx, cmd) => {
    const done: string[] = [];
    for (const c of cmd.capabilities.map((x) => x.toUpperCase())) {
      if ((c === 'CONDSTORE' || c === 'QRESYNC') && !ctx.enabled.has(c)) {
        // RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
        ctx.enabled.add(c);
        done.push(c);
        continue;
      }
      if (c === 'IMAP4REV2' && !ctx.enabled.has(c)) {
        ctx.enabled.add(c);
        done.push('IMAP4rev2');
        ctx.parser.setCapabilities({ literalPlus: true, utf8Accept: true });
      }
      if (c === 'UTF8=ACCEPT' && !ctx.enabled.has(c)) {
        // RFC 6855 §3: from now on UTF-8 in quoted strings both ways, UTF-8 mailbox names, header
        // strings as UTF-8 (fetch.ts), the APPEND UTF8 data item (§4) and no SEARCH CHARSET.
        ctx.enabled.add(c);
        done.push('UTF8=ACCEPT');
        ctx.parser.setCapabilities({ literalPlus: true, utf8Accept: true });
      }
    }
    ctx.write(`* ENABLED${done.length ? ' ' + done.join(' ') : ''}\r\n`);
    return 'ENABLE completed';
  },
} satisfies Partial<Handlers>;

async function login(ctx: SessionContext, user: string, password: string): Promise<string> {
  // Mail clients use app passwords, never the account password (src/auth).
  const r = await ctx.s.auth.mailPassword(user, password, { protocol: 'imap', method: 'LOGIN', remote: ctx.remote });
  if (!r.ok) refuse(ctx, r);
  return authenticated(ctx, r.user);
}

/** RFC 5530 response codes: AUTHENTICATIONFAILED without saying whether the login exists; UNAVAILABLE when locked out. */
function refuse(ctx: SessionContext, r: Extract<AuthResult, { ok: false }> | SaslFailure): never {
  ctx.log.info({ reason: r.reason }, 'authentication failed');
  if (r.reason === 'locked') throw no('UNAVAILABLE', 'too many failed login attempts from this account or address: try again in a few minutes');
  if ('message' in r && r.temporary) throw no('UNAVAILABLE', r.message);
  if ('message' in r) throw no(r.reason === 'identity-mismatch' ? 'AUTHORIZATIONFAILED' : 'AUTHENTICATIONFAILED', r.message);
  throw no('AUTHENTICATIONFAILED', 'authentication failed: wrong login or app password (mail clients need an app password, not the account password)');
}

async function authenticated(ctx: SessionContext, user: User): Promise<string> {
  // RFC 3516: literal8 (~{n}) accepted in APPEND once BINARY is announced.
  ctx.parser.setCapabilities({ literalPlus: true, binary: true });
  ctx.ns = await UserNamespace.load(ctx.s.core, user);
  // The namespace's user: equal to `user`, and shared with the user's other sessions (issue 15).
  ctx.user = ctx.ns.user;
  ctx.state = 'auth';
  ctx.log.info({ user: user.login }, 'authenticated');
  return `[CAPABILITY ${capabilities(ctx).join(' ')}] logged in`;
}

// RFC 9051 §6.2.2 AUTHENTICATE; RFC 4959 SASL-IR initial response ("=" is an empty one).
async function authenticate(ctx: SessionContext, mechanism: string, initial?: string): Promise<string> {
  if (!ctx.secure) throw no('PRIVACYREQUIRED', 'authentication is disabled before STARTTLS');
  const ex = ctx.sasl.start(mechanism, { protocol: 'imap', remote: ctx.remote, peerChain: () => ctx.peerChain() });
  if (!ex) throw no('CANNOT', `authentication mechanism ${mechanism} is not offered here (see the AUTH= capabilities)`);
  const decode = (line: string): Buffer => {
    const t = line.trim();
    // RFC 9051 §6.2.2: "*" cancels the exchange.
    if (t === '*') throw bad(undefined, 'authentication cancelled');
    if (t !== '=' && !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(t)) throw bad(undefined, 'SASL response is not valid base64');
    return Buffer.from(t === '=' ? '' : t, 'base64');
  };
  let step = await ex.step(initial !== undefined ? decode(initial) : null);
  while (step.type === 'challenge') {
    ctx.write(`+ ${step.data.toString('base64')}\r\n`);
    step = await ex.step(decode(await ctx.readLine()));
  }
  if (step.type === 'success') return authenticated(ctx, step.user);
  if (step.reason === 'malformed') throw bad(undefined, step.message);
  if (step.errorChallenge) {
    // XOAUTH2 / RFC 7628 §3.2.2: the error goes out as a challenge; the client's answer ends it.
    ctx.write(`+ ${step.errorChallenge.toString('base64')}\r\n`);
    await ctx.readLine();
  }
  refuse(ctx, step);
}
