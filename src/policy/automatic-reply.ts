// Automatic answers sent on a mailbox's behalf (the absence reply of rule 3, the urgency answer of
// rule 4): where one may go, and how it leaves. One place, so that both keep the same rules.
import { domainOf, type Core, type Mailbox } from '../core/index.js';
import type { MessageFiles } from '../store/message-files.js';

export type ReplyTarget = { kind: 'local'; mailbox: Mailbox } | { kind: 'remote'; domain: string };

/**
 * Where an automatic answer to `sender` can go: one of our active mailboxes, or a domain of the
 * MSSanté trust space — never outside it. Otherwise, why not.
 */
export async function replyTarget(
  core: Core,
  trust: { isTrustedDomain(domain: string): boolean },
  sender: string,
): Promise<ReplyTarget | { refused: 'outside-trust-space' | 'cannot-receive'; detail: string }> {
  const target = await core.resolveRecipient(sender);
  if (target.kind === 'remote') return trust.isTrustedDomain(target.domain) ? target : { refused: 'outside-trust-space', detail: target.domain };
  if (target.kind === 'local') return target;
  return { refused: 'cannot-receive', detail: target.kind };
}

/** Stores and sends one automatic answer to `sender` (a local INBOX, or the outbound queue). */
export async function sendAutomaticReply(o: { core: Core; blobs: MessageFiles }, raw: Buffer, sender: string, target: ReplyTarget, now: Date): Promise<void> {
  const blob = await o.blobs.put(raw);
  try {
    // RFC 3834 §3.3: the answer's MAIL FROM is null (<>), so that nothing answers it in turn;
    // RFC 3461 §4.1: and it asks for no DSN (NOTIFY=NEVER).
    await o.core.deliver({
      blobId: blob.id,
      size: blob.size,
      internalDate: now,
      envelopeFrom: '',
      localMailboxIds: target.kind === 'local' ? [target.mailbox.id] : [],
      remote: target.kind === 'remote' ? [{ recipient: sender, domain: domainOf(sender), notify: ['NEVER'], orcpt: null }] : [],
    });
  } finally {
    blob.release();
  }
}
