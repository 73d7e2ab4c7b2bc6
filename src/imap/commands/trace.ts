// Functional traces of what an IMAP session does in its selected folder (docs/traces.md): read,
// marked deleted, expunged, moved, copied. Core records them (one place decides who is a
// delegate); this only names the folder and the messages (UIDs as a sequence set), never content.
import type { TraceAction } from '../../store/types.js';
import { sequenceSet } from '../protocol/encoder.js';
import type { SessionContext } from './context.js';

/** Records `action` on the selected folder's mailbox for `uids` (nothing when empty). */
export async function traceSelected(ctx: SessionContext, action: TraceAction, uids: number[], extra: Record<string, unknown> = {}): Promise<void> {
  const v = ctx.view;
  if (!v || !uids.length) return;
  const folder = await ctx.s.store.getFolderById(v.folderId).catch(() => undefined);
  const sorted = [...uids].sort((a, b) => a - b);
  await ctx.s.core.trace(v.mailboxId, action, { protocol: 'imap', user: ctx.user ?? null, remote: ctx.remote }, { folder: folder?.name ?? null, messages: sorted.length, uids: sequenceSet(sorted), ...extra });
}

/** A STORE that changed flags: \Seen set is a reading, \Deleted set a deletion mark (RFC 9051 §2.3.2). */
export async function traceStore(ctx: SessionContext, op: 'set' | 'add' | 'remove', flags: string[], uids: number[]): Promise<void> {
  if (op === 'remove') return;
  const has = (f: string) => flags.some((x) => x.toLowerCase() === f);
  if (has('\\seen')) await traceSelected(ctx, 'read', uids);
  if (has('\\deleted')) await traceSelected(ctx, 'marked-deleted', uids);
}
