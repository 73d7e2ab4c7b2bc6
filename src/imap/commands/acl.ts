// Access control lists (RFC 4314) and quotas (RFC 9208). The ACL is the mailbox's grants, read
// and changed through core (the one access-decision point); this file only translates.
import { no } from '../errors.js';
import type { MailboxAccess } from '../namespace.js';
import { astring } from '../protocol/encoder.js';
import type { Command } from '../protocol/types.js';
import { folderOf, nameOut, requireRight, resolveOrThrow, type Handlers, type SessionContext } from './context.js';

export const aclCommands = {
  GETQUOTAROOT: (ctx, cmd) => getQuotaRoot(ctx, cmd.mailbox),
  GETQUOTA: (ctx, cmd) => getQuota(ctx, cmd.root),
  SETQUOTA: async () => {
    // RFC 9208 §4.3: limits are set by the operator's administrators, not by users.
    throw no('NOPERM', 'quota limits are set by the operator (caducee mailbox commands)');
  },
  MYRIGHTS: async (ctx, cmd) => {
    const r = resolveOrThrow(ctx, cmd.mailbox, true);
    ctx.write(`* MYRIGHTS ${nameOut(ctx, ctx.ns!.nameOf(r.access, r.folder))} ${await ctx.s.core.imapRights(ctx.user!, r.access.mailbox)}\r\n`);
    return 'MYRIGHTS completed';
  },
  GETACL: (ctx, cmd) => getAcl(ctx, cmd.mailbox),
  LISTRIGHTS: async (ctx, cmd) => {
    const r = resolveOrThrow(ctx, cmd.mailbox, true);
    await requireRight(ctx, r.access, 'a');
    const name = nameOut(ctx, ctx.ns!.nameOf(r.access, r.folder));
    // RFC 4314 §3.7: rights always granted, then the groups that can be granted.
    ctx.write(`* LISTRIGHTS ${name} ${astring(cmd.identifier)} "" lrs wipkxtea\r\n`);
    return 'LISTRIGHTS completed';
  },
  SETACL: (ctx, cmd) => setAcl(ctx, cmd),
  DELETEACL: (ctx, cmd) => setAcl(ctx, cmd),
} satisfies Partial<Handlers>;

export async function checkQuota(ctx: SessionContext, access: MailboxAccess, bytes: number) {
  const usage = await ctx.s.store.mailboxUsage(access.mailbox.id);
  const limit = quotaOf(ctx, access);
  // RFC 9208 §4.2: OVERQUOTA response code.
  if (usage.bytes + bytes > limit) throw no('OVERQUOTA', `mailbox ${access.mailbox.address} is over its storage quota: delete messages first`);
}

function quotaOf(ctx: SessionContext, access: MailboxAccess): number {
  return (access.mailbox as any).quotaBytes ?? ctx.s.defaultQuotaBytes;
}

async function getQuotaRoot(ctx: SessionContext, name: string): Promise<string> {
  const { r } = await folderOf(ctx, name);
  const root = r.access.mailbox.address;
  ctx.write(`* QUOTAROOT ${nameOut(ctx, ctx.ns!.nameOf(r.access, r.folder))} ${astring(root)}\r\n`);
  ctx.write(await quotaLine(ctx, r.access));
  return 'GETQUOTAROOT completed';
}

async function quotaLine(ctx: SessionContext, a: MailboxAccess): Promise<string> {
  const usage = await ctx.s.store.mailboxUsage(a.mailbox.id);
  // RFC 9208 §5.1: STORAGE in units of 1024 octets.
  return `* QUOTA ${astring(a.mailbox.address)} (STORAGE ${Math.ceil(usage.bytes / 1024)} ${Math.floor(quotaOf(ctx, a) / 1024)})\r\n`;
}

async function getQuota(ctx: SessionContext, root: string): Promise<string> {
  const a = ctx.ns!.entries.find((e) => e.mailbox.address.toLowerCase() === root.toLowerCase());
  if (!a) throw no('NONEXISTENT', `no quota root ${root}`);
  ctx.write(await quotaLine(ctx, a));
  return 'GETQUOTA completed';
}

/** RFC 4314 §3.3 GETACL: the ACL comes from core (owner and grants); a send-only grant has no letters. */
async function getAcl(ctx: SessionContext, name: string): Promise<string> {
  const { r } = await folderOf(ctx, name);
  const parts = (await ctx.s.core.listAcl(ctx.user!, r.access.mailbox.address)).filter((e) => e.acl).map((e) => `${astring(e.login)} ${e.acl}`);
  ctx.write(`* ACL ${nameOut(ctx, ctx.ns!.nameOf(r.access, r.folder))}${parts.length ? ' ' + parts.join(' ') : ''}\r\n`);
  return 'GETACL completed';
}

/** RFC 4314 §3.1–3.2, mapped onto grants by core (per mailbox, not per folder). */
async function setAcl(ctx: SessionContext, cmd: Extract<Command, { name: 'SETACL' | 'DELETEACL' }>): Promise<string> {
  const { r } = await folderOf(ctx, cmd.mailbox);
  const address = r.access.mailbox.address;
  let grant;
  if (cmd.name === 'DELETEACL') grant = await ctx.s.core.removeAcl(ctx.user!, address, cmd.identifier, 'imap', { protocol: 'imap', remote: ctx.remote });
  else {
    // RFC 4314 §3.1: a leading "+" adds the rights, "-" removes them, neither replaces them.
    const spec = cmd.rights;
    const mode = spec[0] === '+' ? 'add' : spec[0] === '-' ? 'remove' : 'set';
    grant = await ctx.s.core.setAcl(ctx.user!, address, cmd.identifier, { letters: mode === 'set' ? spec : spec.slice(1) }, mode, { protocol: 'imap', remote: ctx.remote });
  }
  ctx.log.info({ mailbox: address, target: cmd.identifier, rights: grant?.rights ?? [] }, 'ACL changed');
  return `${cmd.name} completed`;
}
