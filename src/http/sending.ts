// The one sending path of the mail API: POST /api/v1/submissions (a draft composed by
// MailComposer) and POST /api/v1/documents (an IHE XDM message built by src/xdm) both call
// `ApiSender.send`, which runs the submission pipeline SMTP submission runs (mail/submission.ts):
// sender right (Core.maySendAs), each recipient (trust space, patients), the header checks
// (X-MSS-*, Sender:), the size limits, then one commit with the copy in Sent and the tracking
// row (architecture invariant 1: a 201 means all of it is stored). `Idempotency-Key` is honoured
// here for both routes: a repeated key answers the first result without sending again; the key
// is committed with the message, so this survives a restart and holds across processes.
import { randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Headers } from '@zone-eu/mailsplit';
import { isValidAddress, type User } from '../core/index.js';
import type { MailService } from '../mail/service.js';
import { SubmissionRefusal, type AcceptedRecipient, type SubmissionPipeline } from '../mail/submission.js';
import type { MessageFiles } from '../store/message-files.js';
import { BlobSizeExceededError } from '../store/blobs.js';
import { IdempotencyKeyTakenError } from '../store/errors.js';
import type { NewQueueItem, Store } from '../store/types.js';
import { AuthProblem } from './session.js';

/** French wording of a recipient refusal (the SMTP reply stays in the log and `smtp`). */
/** French reasons of recipient refusals (also used by POST /api/v1/compose/check). */
export const RECIPIENT_REASONS: Record<string, string> = {
  'no-such-mailbox': 'Adresse inconnue : aucune boîte aux lettres MSSanté ne porte cette adresse.',
  suspended: 'Boîte aux lettres temporairement suspendue : réessayez plus tard.',
  'outside-trust-space': 'Domaine hors de l’espace de confiance MSSanté : seules les adresses MSSanté peuvent recevoir ce message.',
  temporary: 'Vérification momentanément impossible : réessayez dans un instant.',
};

const invalid = (detail: string, field?: string) => new AuthProblem(400, 'invalid-request', detail, field ? { field } : {});
const IDEMPOTENCY_TTL_MS = 24 * 3600_000;

/**
 * Removes the Idempotency-Key answers older than 24 h (a lookup ignores them already): run hourly
 * by the leader process (main.ts), so one process of a cluster does it.
 */
export function purgeIdempotentAnswers(store: Pick<Store, 'purgeIdempotentAnswers'>, now = Date.now()): Promise<number> {
  return store.purgeIdempotentAnswers(now - IDEMPOTENCY_TTL_MS);
}

/** An Idempotency-Key as scoped: its caller and route (docs/mail-api.md). */
export interface IdempotencyKey {
  userId: number;
  route: string;
  key: string;
}

/** What is sent: the envelope, and the message composed once the recipients are accepted. */
export interface Outgoing {
  from: string;
  to: string[];
  cc: string[];
  bcc: string[];
  subject: string;
  /** RFC 3461 §4.1 NOTIFY for every recipient. */
  notify?: NewQueueItem['notify'];
  /** The whole message (header + body), built after the recipients were accepted. */
  compose: () => Promise<Buffer>;
}

/** The EmailSubmission answered by both routes (docs/mail-api.md). */
export interface SubmissionResult {
  id: string;
  emailId: string;
  messageId: string;
  from: string;
  sender: string | null;
  subject: string;
  sentAt: string;
  recipients: { address: string; status: string; detail: string | null; updatedAt: string }[];
}

/**
 * mssante.md §8, ANS ECO.2.4.x: `X-MSS-MES: FIN` — the professional ends the conversation with a
 * patient (the pipeline refuses it towards anyone else). Added with the ANS spelling (MailComposer
 * would write X-Mss-Mes).
 */
export function withEndOfConversation(message: Buffer): Buffer {
  const { header, body } = splitMessage(message);
  const headers = new Headers(header);
  headers.remove('X-MSS-MES');
  headers.add('X-MSS-MES', 'FIN');
  return Buffer.concat([headers.build(), body]);
}

function splitMessage(buf: Buffer) {
  const i = buf.indexOf('\r\n\r\n');
  return i < 0 ? { header: buf, body: Buffer.alloc(0) } : { header: buf.subarray(0, i + 2), body: buf.subarray(i + 2) };
}

export class ApiSender {
  private readonly inflight = new Map<string, Promise<{ status: number; body: unknown; replayed: boolean }>>();

  constructor(private readonly o: { mail: MailService; pipeline: SubmissionPipeline; blobs: MessageFiles; maxMessageSize: number }) {}

  private get tooLarge() {
    return new AuthProblem(413, 'too-large', `Le message dépasse la taille maximale de ${Math.floor(this.o.maxMessageSize / 1048576)} Mo.`);
  }

  /**
   * Runs `handler` once per (caller, route, Idempotency-Key): a repeated key gets the first answer
   * back with `Idempotent-Replayed: true` and nothing is sent again. The key and its answer are
   * committed with the message (DeliveryRequest.idempotency), so this holds after a crash or a
   * restart, and across `--workers` processes and nodes; answers are kept 24 h.
   */
  async idempotent(req: FastifyRequest, reply: FastifyReply, user: User, handler: (key: IdempotencyKey | null) => Promise<{ status: number; body: unknown }>) {
    const header = req.headers['idempotency-key'];
    const key: IdempotencyKey | null = typeof header === 'string' && header.length ? { userId: user.id, route: req.routeOptions.url ?? req.url, key: header.slice(0, 200) } : null;
    if (!key) {
      const r = await handler(null);
      return reply.code(r.status).send(r.body);
    }
    const replay = (r: { status: number; body: unknown }) => reply.code(r.status).header('idempotent-replayed', 'true').send(r.body);
    const id = JSON.stringify([key.userId, key.route, key.key]);
    // A repeat arriving in this process while the first is being sent waits for its answer (never
    // sends twice); a failed first try is not remembered: the client may try again with the same key.
    const running = this.inflight.get(id);
    if (running) return replay(await running);
    const p = (async () => {
      const hit = await this.recorded(key);
      if (hit) return { ...hit, replayed: true };
      try {
        return { ...(await handler(key)), replayed: false };
      } catch (e) {
        // Another process or node committed the key first: this delivery rolled back whole
        // (the key is unique, inserted in the same transaction); its answer is the winner's.
        if (!(e instanceof IdempotencyKeyTakenError)) throw e;
        const won = await this.recorded(key);
        if (!won) throw e;
        req.log.info({ route: key.route }, 'Idempotency-Key committed by another process: its answer replayed');
        return { ...won, replayed: true };
      }
    })();
    this.inflight.set(id, p);
    try {
      const r = await p;
      return r.replayed ? replay(r) : reply.code(r.status).send(r.body);
    } finally {
      this.inflight.delete(id);
    }
  }

  /** The answer committed with `key` in the last 24 h, rebuilt with its ids. */
  private async recorded(key: IdempotencyKey): Promise<{ status: number; body: unknown } | undefined> {
    const r = await this.o.pipeline.o.core.store.getIdempotentAnswer(key.userId, key.route, key.key, Date.now() - IDEMPOTENCY_TTL_MS);
    if (!r) return undefined;
    const rest = JSON.parse(r.answer) as Omit<SubmissionResult, 'id' | 'emailId'>;
    return { status: 201, body: { id: r.submissionId !== null ? `s${r.submissionId}` : `s${r.emailId}`, emailId: `e${r.emailId}`, ...rest } satisfies SubmissionResult };
  }

  /** Sends `m` as `user` from the web/API (`origin.remote`): the shared path of both routes. */
  async send(user: User, m: Outgoing, remote: string | null, log: FastifyRequest['log'], idempotency: IdempotencyKey | null = null): Promise<SubmissionResult> {
    const { pipeline } = this.o;
    if (!isValidAddress(m.from)) throw invalid('Adresse d’expéditeur invalide.', 'from');
    const all = [...new Set([...m.to, ...m.cc, ...m.bcc].map((a) => a.toLowerCase()))];
    if (!all.length) throw invalid('Ajoutez au moins un destinataire.', 'to');
    for (const a of all) if (!isValidAddress(a)) throw invalid(`Adresse de destinataire invalide : ${a}.`, 'to');
    const sessionId = `web-${randomBytes(6).toString('hex')}`;
    // The same pipeline as SMTP submission: sender, each recipient, header, commit.
    const submitter = await pipeline.checkEnvelopeSender(user, m.from).catch((e) => {
      if (e instanceof SubmissionRefusal) throw new AuthProblem(403, 'forbidden', `Vous ne pouvez pas envoyer au nom de ${m.from} (ni titulaire de la boîte, ni délégué avec le droit d’envoi).`);
      throw e;
    });
    const notify: NewQueueItem['notify'] = m.notify ?? null; // RFC 3461 §4.1 NOTIFY
    const accepted: AcceptedRecipient[] = [];
    const refused: { address: string; reason: string; smtp: string }[] = [];
    for (const a of all) {
      try {
        accepted.push(await pipeline.checkRecipient(submitter, a, { notify, orcpt: `rfc822;${a}` }, accepted.length, sessionId));
      } catch (e) {
        if (!(e instanceof SubmissionRefusal)) throw e;
        refused.push({ address: a, reason: e.detail ?? RECIPIENT_REASONS[e.kind] ?? e.message, smtp: `${e.code} ${e.enhanced} ${e.message}` });
      }
    }
    if (refused.length)
      throw new AuthProblem(422, 'recipient-refused', `Message non envoyé : ${refused.length === 1 ? 'un destinataire est refusé' : `${refused.length} destinataires sont refusés`}. Rien n’a été envoyé.`, { recipients: refused }, {}, 'Unprocessable Content');
    const buf = await m.compose();
    const { header, body } = splitMessage(buf);
    const headers = new Headers(header);
    const prepared = await pipeline.prepareHeader(submitter, headers, header, sessionId, accepted.map((r) => r.address)).catch((e) => {
      if (e instanceof SubmissionRefusal) throw e.kind === 'sender' ? new AuthProblem(403, 'forbidden', `Envoi refusé : ${e.message}.`) : new AuthProblem(422, 'recipient-refused', `Envoi refusé : ${e.detail ?? e.message}`, { recipients: [] }, {}, 'Unprocessable Content');
      throw e;
    });
    const message = Buffer.concat([headers.build(), body]);
    if (message.length > this.o.maxMessageSize) throw this.tooLarge;
    // Towards patients (Mon espace santé) the limit is lower (docs/patients.md).
    try {
      pipeline.checkSize(message.length, accepted.map((r) => r.address), sessionId);
    } catch (e) {
      if (e instanceof SubmissionRefusal) throw new AuthProblem(413, 'too-large', e.detail ?? e.message);
      throw e;
    }
    const messageId = (headers.getFirst('message-id') || '').trim().replace(/^<|>$/g, '');
    const at = new Date().toISOString();
    // The answer but its ids (known once committed), recorded with the message under the key.
    const answer: Omit<SubmissionResult, 'id' | 'emailId'> = {
      messageId,
      from: m.from,
      sender: prepared.sender?.address ?? null,
      subject: m.subject,
      sentAt: at,
      recipients: accepted.map((r) => ({ address: r.address, status: r.local !== undefined ? 'delivered' : 'queued', detail: null, updatedAt: at })),
    };
    const blob = await this.o.blobs.put(message, { maxSize: this.o.maxMessageSize + 65536 }).catch((e) => Promise.reject(e instanceof BlobSizeExceededError ? new AuthProblem(413, 'too-large', 'Message trop volumineux.') : e));
    let sent: { id: string; submission: number | undefined };
    try {
      // The copy in Sent of the From mailbox (RFC 6154 \Sent), committed with the delivery:
      // one transaction (architecture invariant 1), answered 201 only after it.
      const sentFolder = await this.o.mail.folderByRole(submitter.senderMailboxId, '\\Sent');
      const copies = await pipeline
        .commit({ submitter, rcpts: accepted, blob, envelopeFrom: m.from, origin: { protocol: 'web', user, remote }, sessionId, senderCopy: { mailboxId: submitter.senderMailboxId, folderId: sentFolder.id, flags: ['\\Seen'] }, header: headers.build(), idempotency: idempotency && { ...idempotency, at: Date.now(), ttlMs: IDEMPOTENCY_TTL_MS, answer: JSON.stringify(answer) } })
        .catch((e) => Promise.reject(e instanceof SubmissionRefusal ? new AuthProblem(422, 'recipient-refused', `Envoi refusé : ${e.message}`, { recipients: [] }, {}, 'Unprocessable Content') : e));
      const own = copies.find((c) => c.sentCopy)!;
      // The tracking row recorded in the same transaction (docs/receipts.md) names the submission.
      sent = { id: `e${own.messageId}`, submission: copies.submissionChanges?.[0]?.id };
    } finally {
      blob.release();
    }
    log.info({ user: user.login, local: accepted.filter((r) => r.local !== undefined).length, remote: accepted.filter((r) => r.domain).length, size: blob.size }, 'message submitted (web)');
    return {
      id: sent.submission !== undefined ? `s${sent.submission}` : `s${sent.id.slice(1)}`,
      emailId: sent.id,
      ...answer,
    };
  }
}
