// METADATA (RFC 5464): GETMETADATA and SETMETADATA on folders and on the server (mailbox ""),
// /shared entries seen by every holder of the mailbox, /private ones per user (also on a folder of
// a delegated mailbox). Who may read and write is core's decision (Core.metadataRights, RFC 5464
// §3.3 over the mailbox's rights); this file only translates. Values are user content (a comment
// may name a patient): sealed at rest by the store when encryption is on, never logged.
// docs/imap.md "METADATA".
import type { MetadataChange } from '../../core/index.js';
import type { Folder } from '../../model/index.js';
import { storableMetadataValue } from '../../store/metadata.js';
import type { MetadataEntry } from '../../store/types.js';
import { no } from '../errors.js';
import type { MailboxAccess } from '../namespace.js';
import { canQuote, literal, literal8, quoted } from '../protocol/encoder.js';
import type { MetadataDepth } from '../protocol/types.js';
import { folderOf, nameOut, type Handlers, type SessionContext } from './context.js';

/** Largest value of one entry, in octets (RFC 5464 §4.3 [METADATA MAXSIZE n]). */
export const METADATA_MAX_VALUE = 64 * 1024;
/** Most entries of one folder (or of the server) a user sees: the shared ones and theirs (§4.3 [METADATA TOOMANY]). */
export const METADATA_MAX_ENTRIES = 100;

/** What a METADATA command names: a folder (with its mailbox) or the server. */
interface Place {
  folder: Folder | null;
  access: MailboxAccess | null;
  /** The name as sent back in METADATA responses. */
  out: string;
}

export const metadataCommands = {
  GETMETADATA: (ctx, cmd) => getMetadata(ctx, cmd.mailbox, cmd.entries, cmd.depth, cmd.maxSize),
  SETMETADATA: (ctx, cmd) => setMetadata(ctx, cmd.mailbox, cmd.values),
} satisfies Partial<Handlers>;

/** RFC 5464 §4.2/§4.3: mailbox "" names the server; any other must exist (NO [NONEXISTENT]). */
async function placeOf(ctx: SessionContext, name: string): Promise<Place> {
  if (name === '') return { folder: null, access: null, out: '""' };
  const { r, folder } = await folderOf(ctx, name);
  return { folder, access: r.access, out: nameOut(ctx, ctx.ns!.nameOf(r.access, r.folder)) };
}

async function rightsOf(ctx: SessionContext, p: Place) {
  return ctx.s.core.metadataRights(ctx.user!, p.access?.mailbox ?? null);
}

const isShared = (entry: string) => entry.toLowerCase().startsWith('/shared');

/**
 * RFC 6154 §4: "/private/specialuse" shows a folder's special-use attributes "presented the same
 * way they would be presented in the LIST command response" — here computed from the folder, the
 * very value LIST sends (commands/mailboxes.ts), so the two are always in step; a folder without
 * one has no such entry (§4's NIL: absent entries are not returned). Not settable (see setMetadata).
 */
const SPECIALUSE = '/private/specialuse';

/** The entries `ctx.user` sees on `p`: the stored ones, and /private/specialuse for a folder with a special use. */
async function entriesOf(ctx: SessionContext, p: Place): Promise<MetadataEntry[]> {
  // A row of that name stored before it had a meaning is hidden by the computed entry.
  const stored = (await ctx.s.store.listMetadata(p.folder?.id ?? null, ctx.user!.id)).filter((e) => !(p.folder && e.entry === SPECIALUSE));
  if (!p.folder?.specialUse) return stored;
  const at = stored.findIndex((e) => e.entry > SPECIALUSE);
  const use = { entry: SPECIALUSE, value: Buffer.from(p.folder.specialUse, 'utf8') };
  return at < 0 ? [...stored, use] : [...stored.slice(0, at), use, ...stored.slice(at)];
}

/** RFC 5464 §5 value = nstring / literal8: quoted when it can be, a literal, or literal8 when it holds NUL. */
export function metadataValue(ctx: SessionContext, v: Buffer): string | Buffer {
  if (v.includes(0)) return literal8(v);
  const text = v.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(v) && canQuote(text, { utf8: ctx.utf8 })) return quoted(text, { utf8: ctx.utf8 });
  return literal(v);
}

/** Does `name` fall under the requested `entry` at `depth` (RFC 5464 §4.2.2)? Both in lower case. */
function under(name: string, entry: string, depth: MetadataDepth): boolean {
  if (name === entry) return true;
  if (depth === 0 || !name.startsWith(entry + '/')) return false;
  return depth === 'infinity' || !name.slice(entry.length + 1).includes('/');
}

/**
 * RFC 5464 §4.2 GETMETADATA: one METADATA response with the entries that exist (none: no
 * response); §4.2.1 MAXSIZE leaves out larger values and says the largest one's size in
 * OK [METADATA LONGENTRIES n]; §4.2.2 DEPTH adds children (1) or all descendants (infinity).
 */
async function getMetadata(ctx: SessionContext, name: string, entries: string[], depth: MetadataDepth, maxSize?: number): Promise<string> {
  const p = await placeOf(ctx, name);
  // RFC 5464 §3.3: "l" and one of "r", "s", "w", "i", "p" (core decides); NO otherwise.
  if (!(await rightsOf(ctx, p)).read) throw no('NOPERM', `you may not read the metadata of ${name} (RFC 5464 §3.3: rights "l" and one of "rswip" needed)`);
  const wanted = entries.map((e) => e.toLowerCase());
  const found = (await entriesOf(ctx, p)).filter((e) => wanted.some((w) => under(e.entry, w, depth)));
  let longest = 0;
  const parts: (string | Buffer)[] = [];
  for (const e of found) {
    if (maxSize !== undefined && e.value.length > maxSize) {
      longest = Math.max(longest, e.value.length);
      continue;
    }
    parts.push(parts.length ? ' ' : '', e.entry, ' ', metadataValue(ctx, e.value));
  }
  // RFC 5464 §4.4.1: metadata-resp = "METADATA" SP mailbox SP entry-values.
  if (parts.length) ctx.write(Buffer.concat([`* METADATA ${p.out} (`, ...parts, ')\r\n'].map((x) => (typeof x === 'string' ? Buffer.from(x, 'utf8') : x))));
  // RFC 5464 §4.2.1: the size of the largest entry left out.
  return longest ? `[METADATA LONGENTRIES ${longest}] GETMETADATA completed` : 'GETMETADATA completed';
}

/**
 * RFC 5464 §4.3 SETMETADATA: every entry set (NIL: removed) or none. Refusals: NOPERM (core's
 * decision, §3.3), [METADATA MAXSIZE n] for a value over the limit, [METADATA TOOMANY] when the
 * folder would hold more entries than the limit.
 */
async function setMetadata(ctx: SessionContext, name: string, values: { entry: string; value: Uint8Array | null }[]): Promise<string> {
  const p = await placeOf(ctx, name);
  const rights = await rightsOf(ctx, p);
  for (const v of values) {
    const shared = isShared(v.entry);
    if (shared ? !rights.writeShared : !rights.writePrivate) {
      if (!p.access && shared) throw no('NOPERM', `server entries under /shared are set by the operator, not by users (RFC 5464 §3.2.1.1); set ${v.entry.replace(/^\/shared/i, '/private')} for yourself`);
      throw no('NOPERM', shared ? `you may not set /shared entries on ${name}: that needs the "w" right (a manage grant), the entry being seen by every holder of the mailbox` : `you may not set metadata on ${name} (RFC 5464 §3.3: rights "l" and one of "rswip" needed)`);
    }
    // RFC 6154 §4: a server "MAY allow" special uses to be set through METADATA; Caducée does
    // not. A folder's special use is the folder's, shared by every holder of the MSSanté mailbox
    // (the mail service files sent copies and drafts by it), not one user's /private value; it is
    // given at CREATE (RFC 6154 §3, CREATE-SPECIAL-USE) or by the server. NO, nothing changed.
    if (p.folder && v.entry.toLowerCase() === SPECIALUSE)
      throw no('CANNOT', `${SPECIALUSE} shows the folder's special use (RFC 6154 §4), shared by every holder of the mailbox: it cannot be set; create a folder with CREATE name (USE (\\Archive)) instead`);
    // RFC 5464 §4.3: NO [METADATA MAXSIZE n], n the largest value accepted.
    if (v.value && v.value.length > METADATA_MAX_VALUE) throw no(`METADATA MAXSIZE ${METADATA_MAX_VALUE}`, `the value of ${v.entry} is ${v.value.length} octets, over the ${METADATA_MAX_VALUE} this server keeps`);
    if (v.value && !storableMetadataValue(v.value)) throw no('CANNOT', `the value of ${v.entry} starts with the octets that mark a sealed value (NUL "CV" 0x01): change its first octet`);
  }
  const changes = values.map((v) => ({ entry: v.entry, value: v.value === null ? null : Buffer.from(v.value) }));
  // RFC 5464 §4.3: NO [METADATA TOOMANY] and nothing changed.
  if (!(await ctx.s.store.setMetadata(p.folder?.id ?? null, ctx.user!.id, changes, METADATA_MAX_ENTRIES)))
    throw no('METADATA TOOMANY', `${name === '' ? 'the server' : name} would hold more than ${METADATA_MAX_ENTRIES} entries: remove some (value NIL) first`);
  ctx.log.info({ mailbox: p.access?.mailbox.address ?? null, entries: values.length }, 'metadata changed');
  ctx.s.core.events.emit('metadata-changed', {
    mailboxId: p.access?.mailbox.id ?? null,
    folderId: p.folder?.id ?? null,
    shared: values.filter((v) => isShared(v.entry)).map((v) => v.entry.toLowerCase()),
    private: values.filter((v) => !isShared(v.entry)).map((v) => v.entry.toLowerCase()),
    userId: ctx.user!.id,
  } satisfies MetadataChange);
  return 'SETMETADATA completed';
}
