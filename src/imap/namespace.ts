// How a user's accessible MSSanté mailboxes (BALs) appear as IMAP folders (RFC 2342 NAMESPACE):
//   personal  ""                      the user's primary mailbox (their PER, else the first they own)
//   other     "Autres utilisateurs/"  PER/CAB mailboxes of other users delegated to this user
//   shared    "Partagés/"             organisational (ORG/APP) mailboxes the user owns or is a
//                                     member of, and the user's other own mailboxes
// e.g. "Autres utilisateurs/claire.martin@a.mssante.test/INBOX". Names are Unicode here;
// the protocol layer converts to and from modified UTF-7.
import type { Core } from '../core/index.js';
import type { GrantRight, Mailbox, User } from '../model/index.js';

export const DELIMITER = '/';
export const OTHER_PREFIX = 'Autres utilisateurs/';
export const SHARED_PREFIX = 'Partagés/';

export interface MailboxAccess {
  mailbox: Mailbox;
  rights: Set<GrantRight>;
  owned: boolean;
  /** IMAP prefix under which this BAL's folders appear ("" for the personal namespace). */
  prefix: string;
}

export interface ResolvedName {
  access: MailboxAccess;
  /** Folder name inside the BAL ("INBOX", "Sent", "Projets/2026"). */
  folder: string;
}

/**
 * Issue 15 (memory of idling sessions): the namespaces still held by a session, one per user, so
 * that the next session of the same user whose namespace comes out equal shares it instead of
 * keeping its own copy (~2.6 KB: the mailboxes, their rights and prefixes). A mail client opens
 * several connections per account (Thunderbird up to 5); each still loads its namespace from core
 * at login, and a namespace is never changed after that (a session keeps the rights of its login).
 */
const held = new Map<number, WeakRef<UserNamespace>>();
const forget = new FinalizationRegistry<number>((userId) => {
  if (held.get(userId)?.deref() === undefined) held.delete(userId);
});

export class UserNamespace {
  private constructor(
    readonly user: User,
    readonly entries: MailboxAccess[],
    /** Everything above, serialised: two namespaces with the same one are interchangeable. */
    private readonly fingerprint: string,
  ) {}

  /** An equal namespace another session holds, else this one (then held for the next sessions). */
  private static share(ns: UserNamespace): UserNamespace {
    const other = held.get(ns.user.id)?.deref();
    if (other && other.fingerprint === ns.fingerprint) return other;
    held.set(ns.user.id, new WeakRef(ns));
    forget.register(ns, ns.user.id);
    return ns;
  }

  static async load(core: Core, user: User): Promise<UserNamespace> {
    // Which mailboxes are readable is core's decision (architecture invariant 3).
    const acc = await core.readableMailboxes(user);
    const owned = acc.filter((a) => a.owned);
    const primary = owned.find((a) => a.mailbox.type === 'PER') ?? owned[0];
    const entries: MailboxAccess[] = acc.map((a) => {
      let prefix: string;
      if (a === primary) prefix = '';
      else if (!a.owned && (a.mailbox.type === 'PER' || a.mailbox.type === 'CAB')) prefix = `${OTHER_PREFIX}${a.mailbox.address}/`;
      else prefix = `${SHARED_PREFIX}${a.mailbox.address}/`;
      return { ...a, prefix };
    });
    const fingerprint = JSON.stringify([user, entries.map((e) => [e.mailbox, [...e.rights].sort(), e.owned, e.prefix])]);
    return UserNamespace.share(new UserNamespace(user, entries, fingerprint));
  }

  get personal(): MailboxAccess | undefined {
    return this.entries.find((e) => e.prefix === '');
  }

  /** RFC 9051 §5.1: INBOX is case-insensitive; other names are case-sensitive. */
  static canonicalFolder(folder: string): string {
    if (folder.toUpperCase() === 'INBOX') return 'INBOX';
    if (folder.toUpperCase().startsWith('INBOX/')) return 'INBOX' + folder.slice(5);
    return folder;
  }

  /** Maps an IMAP name (Unicode) to the BAL and folder it designates, or undefined. */
  resolve(name: string): ResolvedName | undefined {
    let best: MailboxAccess | undefined;
    for (const e of this.entries) {
      if (e.prefix === '') continue;
      if (name.startsWith(e.prefix) && (!best || e.prefix.length > best.prefix.length)) best = e;
    }
    if (best) {
      const folder = name.slice(best.prefix.length);
      return folder ? { access: best, folder: UserNamespace.canonicalFolder(folder) } : undefined;
    }
    if (name.startsWith(OTHER_PREFIX) || name.startsWith(SHARED_PREFIX)) return undefined;
    const p = this.personal;
    return p && name ? { access: p, folder: UserNamespace.canonicalFolder(name) } : undefined;
  }

  /** The IMAP name of a folder of a BAL. */
  nameOf(access: MailboxAccess, folder: string): string {
    return access.prefix + folder;
  }
}
