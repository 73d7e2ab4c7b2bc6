// URLAUTH (RFC 4467 §7: GENURLAUTH, URLFETCH, RESETKEY) with URLAUTH=BINARY (RFC 5524: BINARY and
// BODYPARTSTRUCTURE in URLFETCH), inside Caducée's trust model (docs/imap.md "URLAUTH"):
//  - a URL is never a bearer capability on its own. URLFETCH is done for the authenticated
//    fetching user and needs BOTH the URL's own condition (token, expiry, access identifier) AND
//    core's access decision for that user on the URL's mailbox (the read right a SELECT/FETCH by
//    that user would need), checked at every fetch: a withdrawn grant stops the URL at once;
//  - `anonymous` URLs are refused at GENURLAUTH; `submit+` URLs never fetch (no submission entity);
//  - the read is traced as the fetching user's (docs/traces.md), never the issuer's;
//  - the issuer needs the read right to issue, and the URL dies with the issuer's access too.
import type { User } from '../../core/index.js';
import type { Folder, Mailbox } from '../../model/index.js';
import { partStructureAt, binaryContent, sectionBytes } from '../../mime/index.js';
import { sexpToBytes } from '../fetch.js';
import { no } from '../errors.js';
import { UserNamespace } from '../namespace.js';
import { astring } from '../protocol/encoder.js';
import { parseImapMessageUrl, type ImapMessageUrl } from '../protocol/imap-url.js';
import type { UrlFetchArg } from '../protocol/types.js';
import { accessAllows, URLAUTH_MECHANISM, urlAuthToken, urlAuthTokenMatches } from '../urlauth-token.js';
import { folderOf, type Handlers, type SessionContext } from './context.js';

export const urlauthCommands = {
  GENURLAUTH: (ctx, cmd) => genUrlAuth(ctx, cmd.urls),
  URLFETCH: (ctx, cmd) => urlFetch(ctx, cmd.urls),
  RESETKEY: (ctx, cmd) => resetKey(ctx, cmd.mailbox, cmd.mechanisms),
} satisfies Partial<Handlers>;

/** RFC 4469 §6 / RFC 4467 §7: resp-text-code "BADURL" SP url-resp-text (no "]", CR or LF in it). */
function badurl(url: string, why: string) {
  return no(`BADURL ${url.replace(/[^\x01-\x09\x0b\x0c\x0e-\x5c\x5e-\x7f]/gu, (c) => encodeURIComponent(c))}`, why);
}

/**
 * Does the URL's host name this server? Its configured host name, or the address the client
 * reached this session on (a client that knows the server by its IP address: imaptest's URLs
 * name 127.0.0.1). The port is not compared (RFC 5092 §3.2: one server may listen on several).
 */
function namesThisServer(ctx: SessionContext, host: string | undefined): boolean {
  if (host === undefined) return false;
  if (host === ctx.s.hostname.toLowerCase()) return true;
  const bare = (a: string) => a.replace(/^\[|\]$/g, '').replace(/^::ffff:(?=[0-9.]+$)/i, '').toLowerCase();
  return ctx.local !== null && bare(host) === bare(ctx.local);
}

/** The folder a URL names in `user`'s namespace, if `user` may read it (core decides), with its mailbox. */
async function readableFolder(ctx: SessionContext, user: User, ns: UserNamespace, u: ImapMessageUrl): Promise<{ mailbox: Mailbox; folder: Folder } | undefined> {
  const r = ns.resolve(u.mailbox);
  if (!r) return undefined;
  if (!(await ctx.s.core.imapRights(user, r.access.mailbox)).includes('r')) return undefined;
  const folder = await ctx.s.store.getFolder(r.access.mailbox.id, r.folder);
  return folder ? { mailbox: r.access.mailbox, folder } : undefined;
}

/**
 * RFC 4467 §7 GENURLAUTH: for each rump URL (absolute, naming this server and the session's user,
 * ending in ";URLAUTH=<access>", optionally with ";EXPIRE="), the URL with ":internal:<token>".
 * All or nothing: the first URL that cannot be authorized is NO [BADURL <url>], no URL is given.
 */
async function genUrlAuth(ctx: SessionContext, urls: { url: string; mechanism: string }[]): Promise<string> {
  const user = ctx.user!;
  const out: string[] = [];
  for (const { url, mechanism } of urls) {
    // RFC 4467 §2.3, §7: INTERNAL is the one mechanism offered (URLMECH INTERNAL).
    if (mechanism !== URLAUTH_MECHANISM) throw badurl(url, `unknown URLAUTH mechanism ${mechanism}: this server offers INTERNAL only`);
    const u = parseImapMessageUrl(url);
    if (!u || !u.auth) throw badurl(url, 'not an IMAP URLAUTH rump URL: imap://<you>@<this server>/<mailbox>/;UID=<uid>[/;SECTION=…][;EXPIRE=…];URLAUTH=<access> (RFC 4467 §2, RFC 5092 §11)');
    if (u.auth.token !== undefined) throw badurl(url, 'the URL already carries a mechanism and token: give the rump URL, ending with ;URLAUTH=<access> (RFC 4467 §7)');
    if (!namesThisServer(ctx, u.host)) throw badurl(url, `the URL names another server than ${ctx.s.hostname}`);
    if (u.user!.toLowerCase() !== user.login.toLowerCase()) throw badurl(url, `you may only authorize URLs naming yourself (${user.login}) as their user (RFC 4467 §7)`);
    if (u.auth.expire !== undefined && u.auth.expire <= Date.now()) throw badurl(url, 'the URL has already expired (;EXPIRE=)');
    // RFC 4467 §2.2 access identifiers, as Caducée's trust model allows them (docs/imap.md).
    const access = u.auth.access;
    if (access.kind === 'anonymous') throw badurl(url, 'anonymous URLs are refused: health data is read only by authenticated users holding the read right (use user+<login> or authuser)');
    if (access.kind === 'submit') throw badurl(url, 'submit+ URLs are refused: this server has no message submission entity that fetches URLs (BURL, RFC 4468)');
    if (access.kind === 'user' && !(await ctx.s.store.findUserByLogin(access.user))) throw badurl(url, `user+${access.user}: no such user on this server`);
    // The issuer reads the message themselves: the read right, from core.
    const place = await readableFolder(ctx, user, ctx.ns!, u);
    if (!place) throw badurl(url, 'no such mailbox, or you may not read it');
    if (u.uidValidity !== undefined && u.uidValidity !== place.folder.uidValidity) throw badurl(url, 'UIDVALIDITY does not match (RFC 5092 §6)');
    if (!(await ctx.s.store.getMessageByUid(place.folder.id, u.uid))) throw badurl(url, 'no such message');
    // RFC 4467 §3: the key of this user and mailbox (folder), made at the first GENURLAUTH.
    const key = (await ctx.s.store.urlAuthKey(user.id, place.folder.id, true))!;
    // RFC 4467 §2.4, §7: the token is computed over the rump URL, then appended.
    out.push(`${url}:internal:${urlAuthToken(key, u.auth.rump)}`);
  }
  // RFC 4467 §9: genurlauth-data = "*" SP "GENURLAUTH" 1*(SP url-full), each a string.
  ctx.write(`* GENURLAUTH ${out.map((u) => `"${u}"`).join(' ')}\r\n`);
  return 'GENURLAUTH completed';
}

/** What one URLFETCH URL gives, or null (NIL). */
interface Fetched {
  structure?: Buffer;
  body?: { data: Uint8Array; binary: boolean };
}

/**
 * The checks of one URLFETCH URL (RFC 4467 §7), then its data. Every refusal is the same NIL,
 * whatever failed (RFC 4467 §7 gives no reason; the token is checked even when the mailbox does not
 * exist, under a random key, so timing does not tell mailbox names apart).
 */
async function fetchOne(ctx: SessionContext, arg: UrlFetchArg): Promise<Fetched | null> {
  const fetcher = ctx.user!;
  const u = parseImapMessageUrl(arg.url);
  const auth = u?.auth;
  if (!u || !auth || auth.token === undefined || auth.mechanism !== URLAUTH_MECHANISM) return null;
  if (!namesThisServer(ctx, u.host)) return null;
  // RFC 4467 §2.2: the URL's own access condition on the authenticated fetching user.
  if (!accessAllows(auth.access, fetcher.login)) return null;
  // RFC 5092 §11 expire: an expired URL fetches nothing.
  if (auth.expire !== undefined && auth.expire <= Date.now()) return null;
  // The issuer (the URL's user) and the folder in the issuer's namespace: the key is theirs.
  const found = await ctx.s.store.findUserByLogin(u.user!);
  let issuer: User | undefined;
  if (found && found.state === 'active') {
    const { passwordHash: _h, ...rest } = found;
    issuer = rest;
  }
  const place = issuer ? await readableFolder(ctx, issuer, await UserNamespace.load(ctx.s.core, issuer), u) : undefined;
  const key = place && issuer ? await ctx.s.store.urlAuthKey(issuer.id, place.folder.id, false) : undefined;
  if (!urlAuthTokenMatches(key, auth.rump, auth.token)) return null;
  if (!place || !issuer) return null;
  // Core's access decision for the fetching user (architecture invariant 3): the read right on
  // the mailbox, as SELECT/FETCH by that user would need — checked now, not when the URL was made.
  if (!(await ctx.s.core.imapRights(fetcher, place.mailbox)).includes('r') || place.mailbox.state === 'deleted') return null;
  if (u.uidValidity !== undefined && u.uidValidity !== place.folder.uidValidity) return null;
  const msg = await ctx.s.store.getMessageByUid(place.folder.id, u.uid);
  if (!msg) return null;
  const raw = await ctx.s.blobs.read(msg.blobId);
  const info = await ctx.s.index.ensure(msg.blobId);
  const section = u.section ?? { kind: 'full' as const };
  const params = new Set(arg.params);
  // RFC 5524 §3: an extended URL without BODY or BINARY still returns the body (as Dovecot).
  const wantBinary = params.has('BINARY');
  const wantBody = !arg.extended || params.has('BODY') || (!wantBinary && !params.has('BODYPARTSTRUCTURE'));
  // BINARY and BODYPARTSTRUCTURE name a body part: the whole message or [n.n…], not HEADER/TEXT/MIME.
  const partPath = section.kind === 'full' ? [] : section.kind === 'part' ? section.part : null;
  const out: Fetched = {};
  if (params.has('BODYPARTSTRUCTURE')) {
    if (partPath === null) return null;
    const s = partStructureAt(raw, info, partPath, wantBinary);
    if (s === null) return null;
    out.structure = sexpToBytes(s, { utf8: ctx.utf8 });
  }
  let data: Uint8Array | null = null;
  if (wantBinary) {
    if (partPath === null) return null;
    const b = binaryContent(raw, info, partPath);
    if (b === null || 'error' in b) return null;
    data = b.data;
  } else if (wantBody) {
    data = sectionBytes(raw, info, section);
    if (data === null) return null;
  }
  if (data !== null) {
    if (u.partial) {
      // RFC 5092 §5 ipartial: from the offset, at most the length.
      const start = Math.min(u.partial.offset, data.length);
      data = data.subarray(start, u.partial.length === undefined ? data.length : Math.min(data.length, start + u.partial.length));
    }
    out.body = { data, binary: wantBinary };
  }
  // docs/traces.md: a read of the message by the fetching user (a delegate when not the owner),
  // never content; the issuer is named as where the URL came from.
  await ctx.s.core.trace(place.mailbox, 'read', { protocol: 'imap', user: fetcher, remote: ctx.remote }, { folder: place.folder.name, messages: 1, uids: String(u.uid), via: 'urlfetch', issuer: issuer.login });
  return out;
}

/**
 * RFC 4467 §7 URLFETCH (with RFC 5524 §3's extended form): one untagged URLFETCH per URL, in
 * order: the data as a literal (BINARY as literal8 when it holds NUL), or NIL.
 */
async function urlFetch(ctx: SessionContext, urls: UrlFetchArg[]): Promise<string> {
  for (const arg of urls) {
    const r = await fetchOne(ctx, arg);
    const head = `* URLFETCH ${astring(arg.url)} `;
    if (r === null) {
      ctx.write(`${head}NIL\r\n`);
    } else if (!arg.extended) {
      // RFC 4467 §9: urlfetch-data = "*" SP "URLFETCH" 1*(SP url SP nstring)
      const data = r.body!.data;
      ctx.write(`${head}{${data.length}}\r\n`);
      ctx.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      ctx.write('\r\n');
    } else {
      // RFC 5524 §3: "(" [BODYPARTSTRUCTURE SP "(" … ")"] [SP] [(BODY SP nstring) / (BINARY SP nstring8)] ")"
      const items: (string | Buffer)[] = [];
      if (r.structure) items.push(Buffer.concat([Buffer.from('BODYPARTSTRUCTURE '), r.structure]));
      ctx.write(`${head}(`);
      if (items.length) ctx.write(items[0]);
      if (r.body) {
        const d = r.body.data;
        const tilde = r.body.binary && d.includes(0) ? '~' : '';
        ctx.write(`${items.length ? ' ' : ''}${r.body.binary ? 'BINARY' : 'BODY'} ${tilde}{${d.length}}\r\n`);
        ctx.write(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
      }
      ctx.write(')\r\n');
    }
    await ctx.waitDrain();
  }
  return 'URLFETCH completed';
}

/**
 * RFC 4467 §7 RESETKEY: with a mailbox, a new access key for it in the user's key table (every
 * URL the user issued for that mailbox stops working); without, every key of the user removed.
 */
async function resetKey(ctx: SessionContext, mailbox: string | undefined, mechanisms: string[]): Promise<string> {
  const user = ctx.user!;
  if (mailbox === undefined) {
    await ctx.s.store.removeUrlAuthKeys(user.id);
    return 'RESETKEY completed: every URLAUTH URL you issued is revoked';
  }
  const unknown = mechanisms.filter((m) => m !== URLAUTH_MECHANISM);
  if (unknown.length) throw no(undefined, `unknown URLAUTH mechanism ${unknown.join(' ')}: this server offers INTERNAL only`);
  const { folder } = await folderOf(ctx, mailbox);
  await ctx.s.store.resetUrlAuthKey(user.id, folder.id);
  // RFC 4467 §6, §7: URLMECH lists the mechanisms of the mailbox (INTERNAL always).
  return `[URLMECH ${URLAUTH_MECHANISM}] RESETKEY completed: the URLAUTH URLs you issued for this mailbox are revoked`;
}
