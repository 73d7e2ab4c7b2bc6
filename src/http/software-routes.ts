// The software API (issue 11, docs/software-api.md) on top of the mail API: delivery tracking of
// what was sent (docs/receipts.md), read receipts and integration acknowledgements (RFC 8098
// MDNs, ANS format), sending structured documents as an IHE XDM message (src/xdm), the inbound
// feed pulled with a cursor, and the caller's webhooks. Every access decision is Core's (through
// MailService, ReceiptService and registerWebhook); errors are problem+json with a French
// `detail`. Sending goes through the one path POST /api/v1/submissions uses (http/sending.ts).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fastifyMultipart from '@fastify/multipart';
import { z } from 'zod';
import type { Authenticator } from '../auth/index.js';
import type { SecretBox } from '../auth/secret-box.js';
import { NotFound, type Core, type User } from '../core/index.js';
import type { MailService } from '../mail/service.js';
import { ReceiptRefused, receiptRefusalText, type ReceiptService } from '../policy/mdn-service.js';
import { inboundEventId, registerWebhook, WebhookError, type InboundDescriber } from '../integration/webhooks.js';
import type { IntegrationStore, NewQueueItem, TrackedSubmission, TrackingStore } from '../store/types.js';
import type { Webhook } from '../model/index.js';
import { buildXdm, xdmMessage, xdmSubject, XdmError, type XdmBuildDocument } from '../xdm/index.js';
import { requireCaller } from './caller.js';
import { withEndOfConversation, type ApiSender } from './sending.js';
import { readMultipart } from './multipart.js';
import { invalid, parse } from './input.js';
import { AuthProblem } from './session.js';

export interface SoftwareRoutesOptions {
  auth: Authenticator;
  core: Core;
  mail: MailService;
  sender: ApiSender;
  receipts: ReceiptService;
  store: TrackingStore & IntegrationStore;
  /** Seals webhook secrets (auth.secretsKeyFile). */
  secrets: SecretBox;
  /** The one describer of an inbound message (webhook `data` and the pull feed). */
  describe: InboundDescriber;
  maxMessageSize: number;
}

const notFound = (detail = 'Ressource introuvable (ou vous n’y avez pas accès).') => new AuthProblem(404, 'not-found', detail);


const idOf = (s: string, prefix: string): number | null => (new RegExp(`^${prefix}[1-9][0-9]{0,14}$`).test(s) ? Number(s.slice(1)) : null);

function limitOf(v: string | undefined, max = 200, dflt = 50): number {
  const n = v === undefined ? dflt : Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw invalid(`« limit » est un entier de 1 à ${max}.`, 'limit');
  return n;
}

/** The tracking of one submission as the API shows it (docs/mail-api.md EmailSubmission). */
export function submissionView(s: TrackedSubmission, mailbox: string) {
  return {
    id: `s${s.id}`,
    mailbox,
    emailId: s.emailId === null ? null : `e${s.emailId}`,
    messageId: s.messageId,
    from: s.from,
    subject: s.subject,
    sentAt: s.sentAt,
    recipients: s.recipients.map((r) => ({ address: r.address, status: r.status, detail: r.detail, updatedAt: r.updatedAt })),
  };
}

const webhookView = (w: Webhook, mailbox: string) => ({
  id: `w${w.id}`,
  mailbox,
  url: w.url,
  createdAt: w.createdAt,
  lastEventId: w.cursor ? inboundEventId(w.cursor) : null,
  failingSince: w.failingSince === null ? null : new Date(w.failingSince).toISOString(),
  lastError: w.lastError,
  delivered: w.delivered,
  abandoned: w.abandoned,
});

// ---- input ---------------------------------------------------------------------------------

const address = z.string().trim().max(254);
const code = z.object({ code: z.string().min(1).max(64), codingScheme: z.string().max(128).optional(), displayName: z.string().max(256).optional() }).strict();
const base64 = z.string().max(100_000_000).regex(/^[A-Za-z0-9+/\r\n]*={0,2}[\r\n]*$/, 'base64 attendu');
const DocumentSchema = z
  .object({
    content: base64.optional(),
    mimeType: z.enum(['text/xml', 'application/pdf']).optional(),
    name: z.string().max(255).optional(),
    title: z.string().max(500).optional(),
    typeCode: code.optional(),
    classCode: code.optional(),
  })
  .strict();
const DocumentsSchema = z
  .object({
    from: address,
    to: z.array(address).min(1).max(100),
    cc: z.array(address).max(100).default([]),
    // The document's label (libellé) in the subject `XDM/1.0/DDM+<libellé> <NOM> <prénom> <date>`.
    title: z.string().min(1).max(200),
    documents: z.array(DocumentSchema).max(20).default([]),
    // A PDF rendition attached beside IHE_XDM.ZIP (ANS: the readable version of the CDA).
    rendition: z.object({ content: base64, name: z.string().max(255).optional() }).strict().optional(),
    patient: z
      .object({
        ins: z.string().regex(/^[0-9A-Za-z]{13,15}$/, 'INS de 13 à 15 caractères'),
        oid: z.string().regex(/^[0-2](\.[0-9]+)+$/, 'OID attendu (NIR 1.2.250.1.213.1.4.8, NIA …4.9, test …4.10 / …4.11)'),
        family: z.string().min(1).max(100),
        given: z.string().min(1).max(100),
        birthDate: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'date AAAA-MM-JJ'),
        gender: z.enum(['M', 'F', 'U']),
        qualified: z.boolean(),
      })
      .strict(),
    author: z
      .object({
        rpps: z.string().regex(/^\d{11}$/).optional(),
        family: z.string().max(100).optional(),
        given: z.string().max(100).optional(),
        institution: z.object({ name: z.string().max(200), finess: z.string().max(20).optional() }).strict().optional(),
        role: z.string().max(100).optional(),
        email: z.string().max(254).optional(),
      })
      .strict()
      .default({}),
    text: z.string().max(100_000).optional(),
    nil: z.string().max(200).optional(),
    options: z
      .object({
        readReceipt: z.boolean().optional(),
        notify: z.union([z.array(z.enum(['SUCCESS', 'FAILURE', 'DELAY'])).min(1).max(3), z.tuple([z.literal('NEVER')])]).optional(),
        endConversation: z.boolean().optional(),
      })
      .strict()
      .default({}),
  })
  .strict();
type DocumentsInput = z.infer<typeof DocumentsSchema>;

const IntegrationSchema = z.discriminatedUnion('status', [
  z.object({ status: z.literal('processed') }).strict(),
  z.object({ status: z.literal('error'), code: z.number().int().min(900).max(906), label: z.string().max(200).optional() }).strict(),
]);

const WebhookSchema = z.object({ mailbox: address, url: z.string().max(2000), since: z.enum(['now', 'all']).default('now') }).strict();

// ---- the routes ------------------------------------------------------------------------------

export function registerSoftwareRoutes(app: FastifyInstance, o: SoftwareRoutesOptions) {
  const caller = (req: FastifyRequest) => requireCaller(req, o.auth);

  /** Mailboxes whose content `user` may read (Core), by id → address. */
  const readable = async (user: User) => new Map((await o.core.readableMailboxes(user)).filter((a) => a.owned || a.rights.has('read')).map((a) => [a.mailbox.id, a.mailbox.address] as const));

  // ---- tracking (docs/receipts.md): what became of each sent message, per recipient ----------

  app.get('/api/v1/submissions', async (req) => {
    const { user } = await caller(req);
    const q = req.query as Record<string, string | undefined>;
    const limit = limitOf(q.limit);
    let beforeId: number | undefined;
    if (q.cursor !== undefined) {
      const n = idOf(q.cursor, 's');
      if (n === null) throw invalid('Curseur invalide : reprenez la liste depuis le début.', 'cursor');
      beforeId = n;
    }
    const boxes = await readable(user);
    const rows = boxes.size ? await o.store.listSubmissions([...boxes.keys()], { beforeId, limit: limit + 1 }) : [];
    const page = rows.slice(0, limit);
    return { submissions: page.map((s) => submissionView(s, boxes.get(s.mailboxId)!)), nextCursor: rows.length > limit ? `s${page[page.length - 1]!.id}` : null };
  });

  app.get('/api/v1/submissions/:id', async (req) => {
    const { user } = await caller(req);
    const n = idOf((req.params as { id: string }).id, 's');
    const s = n === null ? undefined : await o.store.getSubmission(n);
    const boxes = await readable(user);
    if (!s || !boxes.has(s.mailboxId)) throw notFound();
    return submissionView(s, boxes.get(s.mailboxId)!);
  });

  // ---- receipts (RFC 8098, ANS integration acknowledgements) ---------------------------------

  const receiptProblem = (e: unknown) => {
    if (e instanceof ReceiptRefused) return new AuthProblem(e.reason === 'already-sent' ? 409 : 400, e.reason === 'already-sent' ? 'already-sent' : 'receipt-refused', receiptRefusalText(e.reason), { reason: e.reason });
    if (e instanceof NotFound) return notFound();
    return e;
  };
  const emailRef = (req: FastifyRequest) => {
    const n = idOf((req.params as { id: string }).id, 'e');
    if (n === null) throw notFound();
    return { emailId: n };
  };

  app.post('/api/v1/emails/:id/mdn', async (req) => {
    const { user } = await caller(req);
    const ref = emailRef(req);
    const body = parse(z.object({ confirmed: z.boolean().optional() }).strict(), req.body ?? {}, 'Accusé de lecture');
    // RFC 8098 §3.2.6: manual-action/MDN-sent-manually; displayed.
    const r = await o.receipts.sendReadReceipt(user, ref, { confirmed: body.confirmed }).catch((e) => Promise.reject(receiptProblem(e)));
    return { sent: 'mdn', to: r.to };
  });

  app.post('/api/v1/emails/:id/integration', async (req) => {
    const { user } = await caller(req);
    const ref = emailRef(req);
    const b = parse(IntegrationSchema, req.body, 'Accusé d’intégration');
    // ANS guide: processed, or processed/Error: <code>^<libellé> (900–906).
    const r = await o.receipts.acknowledgeIntegration(user, ref, b.status === 'processed' ? { ok: true } : { code: b.code, label: b.label }).catch((e) => Promise.reject(receiptProblem(e)));
    return { sent: r.sent, to: r.to, ...(r.reason ? { reason: r.reason } : {}) };
  });

  // ---- inbound feed (pull) and webhooks (push) -------------------------------------------------

  app.get('/api/v1/mailboxes/:address/inbound', async (req) => {
    const { user } = await caller(req);
    const { address: addr } = req.params as { address: string };
    const q = req.query as Record<string, string | undefined>;
    let after = 0;
    if (q.after !== undefined) {
      // The cursor is the last event id seen (m<n>: the message row id), or the bare number.
      const m = /^m?(0|[1-9][0-9]{0,14})$/.exec(q.after);
      if (!m) throw invalid('« after » est un identifiant d’événement (m<n>).', 'after');
      after = Number(m[1]);
    }
    const limit = limitOf(q.limit, 100, 20);
    const { mailbox } = await o.mail.readableMailbox(user, addr).catch((e) => Promise.reject(e instanceof NotFound ? notFound() : e));
    const rows = await o.store.inboundAfter(mailbox.id, after, limit);
    const events = [];
    for (const m of rows) events.push({ id: inboundEventId(m.id), type: 'email.received', mailbox: mailbox.address, createdAt: new Date(m.internalDate).toISOString(), data: await o.describe(mailbox, m) });
    return { events, nextCursor: rows.length ? inboundEventId(rows[rows.length - 1]!.id) : q.after !== undefined ? inboundEventId(after) : null };
  });

  app.post('/api/v1/webhooks', async (req, reply) => {
    const { user } = await caller(req);
    const b = parse(WebhookSchema, req.body, 'Webhook');
    // Core decides (read right); a mailbox the caller may not read is not revealed.
    const { mailbox } = await o.mail.readableMailbox(user, b.mailbox).catch((e) => Promise.reject(e instanceof NotFound ? notFound() : e));
    const r = await registerWebhook({ core: o.core, store: o.store, secrets: o.secrets }, user, mailbox.address, b.url, b.since).catch((e) =>
      Promise.reject(e instanceof WebhookError ? invalid(`Webhook refusé : ${e.message}.`, 'url') : e),
    );
    // The signing secret is shown once, here (kept sealed under the secrets key).
    return reply.code(201).send({ ...webhookView(r.webhook, mailbox.address), secret: r.secret });
  });

  app.get('/api/v1/webhooks', async (req) => {
    const { user } = await caller(req);
    const out = [];
    for (const w of await o.store.listWebhooks({ userId: user.id })) {
      if (w.revokedAt) continue;
      const m = await o.core.store.getMailbox(w.mailboxId);
      if (m) out.push(webhookView(w, m.address));
    }
    return { webhooks: out };
  });

  app.delete('/api/v1/webhooks/:id', async (req, reply) => {
    const { user } = await caller(req);
    const n = idOf((req.params as { id: string }).id, 'w');
    const w = n === null ? undefined : await o.store.getWebhook(n);
    if (!w || w.userId !== user.id || w.revokedAt) throw notFound();
    await o.store.revokeWebhook(w.id);
    return reply.code(204).send();
  });

  // ---- documents: an IHE XDM message built and sent ------------------------------------------

  /** The XDM package and the message around it (src/xdm), from the request's documents. */
  async function documentMessage(d: DocumentsInput, files: { name: string; mimeType: string; bytes: Buffer }[], displayName: string): Promise<Buffer> {
    const docs: XdmBuildDocument[] = [];
    d.documents.forEach((x, i) => {
      const file = files[i];
      const bytes = x.content !== undefined ? Buffer.from(x.content, 'base64') : file?.bytes;
      if (!bytes?.length) throw invalid(`Document ${i + 1} : contenu manquant (champ « content » en base64, ou un fichier joint).`, `documents.${i}.content`);
      const mimeType = x.mimeType ?? (file?.mimeType === 'application/pdf' ? 'application/pdf' : /xml/.test(file?.mimeType ?? '') ? 'text/xml' : undefined);
      if (!mimeType) throw invalid(`Document ${i + 1} : type attendu text/xml (CDA R2) ou application/pdf.`, `documents.${i}.mimeType`);
      docs.push({ mimeType, bytes, ...(x.name ?? file?.name ? { name: x.name ?? file?.name } : {}), ...(x.title ? { title: x.title } : {}), ...(x.typeCode ? { typeCode: x.typeCode } : {}), ...(x.classCode ? { classCode: x.classCode } : {}) });
    });
    for (const f of files.slice(d.documents.length)) {
      const mimeType = f.mimeType === 'application/pdf' ? 'application/pdf' : /xml/.test(f.mimeType) ? 'text/xml' : undefined;
      if (!mimeType) throw invalid(`Fichier « ${f.name} » : type attendu text/xml (CDA R2) ou application/pdf.`, 'documents');
      docs.push({ mimeType, bytes: f.bytes, name: f.name });
    }
    if (!docs.length) throw invalid('Ajoutez au moins un document (CDA R2 en XML ou PDF).', 'documents');
    try {
      const built = buildXdm({ documents: docs, patient: d.patient, author: { ...d.author, email: d.author.email ?? d.from }, title: d.title, intendedRecipients: [...d.to, ...d.cc] });
      const m = await xdmMessage({
        from: { name: displayName, address: d.from },
        to: d.to,
        cc: d.cc,
        label: d.title,
        patient: d.patient,
        zip: built.zip,
        cdaCodes: built.cdaCodes,
        ...(d.rendition ? { pdf: { filename: d.rendition.name, bytes: Buffer.from(d.rendition.content, 'base64') } } : {}),
        ...(d.text !== undefined ? { text: d.text } : {}),
        ...(d.nil ? { nil: d.nil } : {}),
        // RFC 8098 §2.1: the receipt (processing by the software, or reading) comes back to the sender.
        ...(d.options.readReceipt ? { dispositionNotificationTo: d.from } : {}),
      });
      return d.options.endConversation ? withEndOfConversation(m.raw) : m.raw;
    } catch (e) {
      if (e instanceof XdmError) throw invalid(`Documents refusés (paquet IHE XDM impossible à construire) : ${e.message}.`, 'documents');
      throw e;
    }
  }

  app.register(async (scope) => {
    await scope.register(fastifyMultipart, { limits: { fileSize: o.maxMessageSize } });
    // Base64 is 4/3 of the bytes: the JSON body may be that much larger than a message.
    const bodyLimit = Math.ceil(o.maxMessageSize * 1.4) + 65536;
    scope.post('/api/v1/documents', { bodyLimit }, async (req, reply) => {
      const { user } = await caller(req);
      return o.sender.idempotent(req, reply, user, async (key) => {
        let json: unknown;
        const files: { name: string; mimeType: string; bytes: Buffer }[] = [];
        if (req.isMultipart()) {
          const read = await readMultipart(req, 'metadata', 'la description', {
            maxBytes: o.maxMessageSize,
            files: 20,
            fieldSize: 1048576,
            fileTooLarge: 'Document trop volumineux.',
            totalTooLarge: `Les documents dépassent la taille maximale de ${Math.floor(o.maxMessageSize / 1048576)} Mo.`,
          });
          json = read.json;
          for (const f of read.files) files.push({ name: f.filename || 'DOCUMENT', mimeType: f.contentType, bytes: f.content });
        } else json = req.body;
        const d = parse(DocumentsSchema, json, 'Envoi de documents');
        const mb = await o.core.store.findMailboxByAddress(d.from);
        const raw = await documentMessage(d, files, mb?.displayName ?? '');
        const subject = xdmSubject(d.title, d.patient);
        // The one sending path (http/sending.ts), shared with POST /api/v1/submissions.
        const result = await o.sender.send(
          user,
          { from: d.from, to: d.to, cc: d.cc, bcc: [], subject, notify: (d.options.notify as NewQueueItem['notify']) ?? null, compose: async () => raw },
          req.ip ?? null,
          req.log,
          key,
        );
        return { status: 201, body: result };
      });
    });
  });
}
