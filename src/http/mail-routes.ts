// The mail API /api/v1 (docs/mail-api.md, the contract the webmail and medical software build
// on): mailboxes and folders, message lists and search, one message, raw and part downloads,
// flags / move / delete, uploads, drafts, sending, grants, preferences. HTTPS only; the caller
// is a web session (CSRF + Origin on state-changing requests, session.ts), a Bearer token or a
// client certificate (caller.ts). Every access decision is Core's, through mail/service.ts
// (reading, flags, moves) and mail/submission.ts (sending: the same pipeline as SMTP
// submission); errors are RFC 9457 problems with a French `detail` and a stable `code`.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fastifyMultipart from '@fastify/multipart';
import MailComposer from 'nodemailer/lib/mail-composer';
import { z } from 'zod';
import type { Logger } from 'pino';
import type { Authenticator } from '../auth/index.js';
import { AccessDenied, CoreError, isValidAddress, NotFound, type Core, type User } from '../core/index.js';
import { MailService, type Paging, type SortKey } from '../mail/service.js';
import type { SearchKey } from '../mail/search-key.js';
import type { SubmissionPipeline } from '../mail/submission.js';
import type { MessageFiles } from '../store/message-files.js';
import type { AccountStore, NewQueueItem } from '../store/types.js';
import { requireCaller } from './caller.js';
import { withEndOfConversation, type ApiSender } from './sending.js';
import { readMultipart } from './multipart.js';
import { invalid, parse } from './input.js';
import { AuthProblem } from './session.js';

export interface MailRoutesOptions {
  auth: Authenticator;
  core: Core;
  mail: MailService;
  pipeline: SubmissionPipeline;
  blobs: MessageFiles;
  store: Pick<AccountStore, 'getPreferences' | 'setPreferences'>;
  maxMessageSize: number;
  /** Patient addresses (Mon espace santé, docs/patients.md): told to clients by GET /me. */
  patientDomain?: string;
  logger: Logger;
  /** The one sending path (POST /submissions and POST /documents). */
  sender: ApiSender;
}

// ---- problems ------------------------------------------------------------------------------

const notFound = (detail = 'Ressource introuvable (ou vous n’y avez pas accès).') => new AuthProblem(404, 'not-found', detail);

/** Core's and the mail service's refusals as problems: 404 never reveals what the caller may not see. */
function problem(e: unknown): unknown {
  if (e instanceof AuthProblem) return e;
  if (e instanceof NotFound) return notFound();
  if (e instanceof AccessDenied) return new AuthProblem(403, 'forbidden', `Action non autorisée sur cette boîte aux lettres : ${e.message}.`);
  if (e instanceof CoreError) return invalid(`Requête refusée : ${e.message}.`);
  return e;
}
const mapped = <T>(p: Promise<T>) => p.catch((e) => Promise.reject(problem(e)));


// ---- input -----------------------------------------------------------------------------------

const address = z.string().trim().max(254);
const DraftSchema = z
  .object({
    from: address,
    to: z.array(address).max(500).default([]),
    cc: z.array(address).max(500).default([]),
    bcc: z.array(address).max(500).default([]),
    subject: z.string().max(998).default(''),
    text: z.string().max(5_000_000).default(''),
    html: z.string().max(10_000_000).optional(),
    attachments: z
      .array(z.union([z.object({ uploadId: z.string().max(64) }).strict(), z.object({ emailId: z.string().max(32), partId: z.string().max(64) }).strict()]))
      .max(100)
      .default([]),
    inReplyTo: z.string().max(998).optional(),
    references: z.array(z.string().max(998)).max(100).optional(),
    notify: z.union([z.array(z.enum(['SUCCESS', 'FAILURE', 'DELAY'])).min(1).max(3), z.tuple([z.literal('NEVER')])]).optional(),
    readReceipt: z.boolean().optional(),
    // mssante.md §8: end the conversation with the patient (X-MSS-MES: FIN).
    endConversation: z.boolean().optional(),
    draftId: z.string().max(32).optional(),
  })
  .strict();
type Draft = z.infer<typeof DraftSchema>;

const PreferencesSchema = z
  .object({
    signature: z.string().max(10_000).default(''),
    signatureHtml: z.string().max(50_000).optional(),
    listDensity: z.enum(['comfortable', 'compact']).default('comfortable'),
    remoteContent: z.enum(['ask', 'never']).default('ask'),
  })
  .strict();
const DEFAULT_PREFERENCES = PreferencesSchema.parse({});

const FlagsSchema = z
  .object({
    seen: z.boolean().optional(),
    flagged: z.boolean().optional(),
    answered: z.boolean().optional(),
    keywords: z
      .object({
        // RFC 9051 §9 flag-keyword = atom (no system flag through keywords)
        add: z.array(z.string().regex(/^[^\\(){ %*"\]\x00-\x20\x7f]{1,100}$/)).max(50).optional(),
        remove: z.array(z.string().regex(/^[^\\(){ %*"\]\x00-\x20\x7f]{1,100}$/)).max(50).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();


const SORTS: SortKey[] = ['receivedAt', 'sentAt', 'from', 'subject', 'size'];
function paging(q: Record<string, string | undefined>): Paging {
  const sort = (q.sort ?? 'receivedAt') as SortKey;
  if (!SORTS.includes(sort)) throw invalid(`Tri inconnu « ${q.sort} » : utilisez ${SORTS.join(', ')}.`, 'sort');
  const order = q.order ?? 'desc';
  if (order !== 'asc' && order !== 'desc') throw invalid('« order » vaut asc ou desc.', 'order');
  const limit = q.limit === undefined ? 50 : Number(q.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw invalid('« limit » est un entier de 1 à 200.', 'limit');
  if (q.cursor !== undefined && (q.cursor.length > 500 || !/^[A-Za-z0-9_-]+$/.test(q.cursor))) throw invalid('Curseur invalide : reprenez la liste depuis le début.', 'cursor');
  return { sort, order, limit, cursor: q.cursor ?? null };
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;
/** The API's search criteria as an IMAP SEARCH key (RFC 9051 §6.4.4): FROM, TO, SUBJECT, TEXT, SINCE/BEFORE, (UN)SEEN, (UN)FLAGGED. */
function searchKey(q: Record<string, string | undefined>): SearchKey {
  const keys: SearchKey[] = [];
  const text = (k: string, v: string | undefined) => {
    if (v === undefined) return;
    if (v.length > 500) throw invalid(`Le critère « ${k} » est trop long.`, k);
    return v;
  };
  const bool = (k: string) => {
    const v = q[k];
    if (v === undefined) return undefined;
    if (v !== 'true' && v !== 'false') throw invalid(`« ${k} » vaut true ou false.`, k);
    return v === 'true';
  };
  const from = text('from', q.from);
  if (from !== undefined) keys.push({ kind: 'header', field: 'FROM', value: from, viaKeyword: true });
  const to = text('to', q.to);
  // TO in the API means any recipient: TO or CC (RFC 9051 keys OR'd).
  if (to !== undefined) keys.push({ kind: 'or', a: { kind: 'header', field: 'TO', value: to, viaKeyword: true }, b: { kind: 'header', field: 'CC', value: to, viaKeyword: true } });
  const subject = text('subject', q.subject);
  if (subject !== undefined) keys.push({ kind: 'header', field: 'SUBJECT', value: subject, viaKeyword: true });
  const t = text('text', q.text);
  if (t !== undefined) keys.push({ kind: 'text', value: t });
  for (const [k, op] of [
    ['after', 'since'],
    ['before', 'before'],
  ] as const) {
    const v = q[k];
    if (v === undefined) continue;
    if (!DAY.test(v) || Number.isNaN(Date.parse(v))) throw invalid(`« ${k} » est une date AAAA-MM-JJ.`, k);
    keys.push({ kind: 'date', which: 'internal', op, date: v });
  }
  const seen = bool('seen');
  if (seen !== undefined) keys.push({ kind: 'flag', flag: '\\Seen', set: seen });
  const flagged = bool('flagged');
  if (flagged !== undefined) keys.push({ kind: 'flag', flag: '\\Flagged', set: flagged });
  const hasAttachment = bool('hasAttachment');
  // Attachments: a multipart/mixed message (its Content-Type); refined on the summaries below.
  if (hasAttachment !== undefined) keys.push(hasAttachment ? { kind: 'header', field: 'Content-Type', value: 'multipart/mixed' } : { kind: 'not', key: { kind: 'header', field: 'Content-Type', value: 'multipart/mixed' } });
  if (!keys.length) throw invalid('Donnez au moins un critère de recherche (from, to, subject, text, after, before, seen, flagged, hasAttachment).');
  return keys.length === 1 ? keys[0]! : { kind: 'and', keys };
}

// ---- uploads (kept in memory, per user, 24 h) -----------------------------------------------

interface Upload {
  userId: number;
  name: string;
  type: string;
  data: Buffer;
  at: number;
}
const UPLOAD_TTL_MS = 24 * 3600_000;

/** RFC 6266 §4.3: Content-Disposition with an ASCII fallback and the UTF-8 filename* (RFC 8187). */
export function contentDisposition(kind: 'attachment' | 'inline', name: string): string {
  const ascii = name.normalize('NFD').replace(/\p{M}/gu, '').replace(/[^\x20-\x7e]|["\\%;]/g, '_') || 'fichier';
  const star = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${star}`;
}

// ---- the routes --------------------------------------------------------------------------------

export function registerMailRoutes(app: FastifyInstance, o: MailRoutesOptions) {
  const uploads = new Map<string, Upload>();
  const caller = (req: FastifyRequest) => requireCaller(req, o.auth);
  const remote = (req: FastifyRequest) => req.ip ?? null;

  const sweep = () => {
    const t = Date.now();
    for (const [k, u] of uploads) if (t - u.at > UPLOAD_TTL_MS) uploads.delete(k);
  };

  async function me(user: User) {
    const mailboxes = await o.mail.mailboxesOf(user);
    return { mailboxes, state: MailService.state(mailboxes) };
  }

  app.get('/api/v1/me', async (req) => {
    const { user } = await caller(req);
    const m = await me(user);
    return { login: user.login, displayName: user.displayName, maxMessageSize: o.maxMessageSize, patientDomain: o.patientDomain ?? 'patient.mssante.fr', ...m };
  });

  app.get('/api/v1/mailboxes', async (req) => me((await caller(req)).user));

  app.get('/api/v1/folders/:folderId/emails', async (req) => {
    const { user } = await caller(req);
    const { folderId } = req.params as { folderId: string };
    return mapped(o.mail.list(user, folderId, paging(req.query as Record<string, string>)));
  });

  app.get('/api/v1/search', async (req) => {
    const { user } = await caller(req);
    const q = req.query as Record<string, string | undefined>;
    const key = searchKey(q);
    const page = await mapped(o.mail.search(user, { mailbox: q.mailbox, folderId: q.folder }, key, paging(q as Record<string, string>)));
    return page;
  });

  app.get('/api/v1/emails/:id', async (req) => {
    const { user } = await caller(req);
    return mapped(o.mail.email(user, (req.params as { id: string }).id));
  });

  app.get('/api/v1/emails/:id/raw', async (req, reply) => {
    const { user } = await caller(req);
    const { id } = req.params as { id: string };
    const r = await mapped(o.mail.raw(user, id));
    return reply
      .type('message/rfc822')
      .header('content-disposition', contentDisposition('attachment', `${(r.subject || id).slice(0, 80)}.eml`))
      .header('x-content-type-options', 'nosniff')
      .send(r.data);
  });

  app.get('/api/v1/emails/:id/parts/:partId', async (req, reply) => {
    const { user } = await caller(req);
    const { id, partId } = req.params as { id: string; partId: string };
    if (!/^[1-9][0-9]{0,3}(\.[1-9][0-9]{0,3}){0,20}$/.test(partId)) throw notFound();
    const p = await mapped(o.mail.part(user, id, partId));
    // The part is always a download (never rendered by the browser in our origin): RFC 6266.
    const type = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/.test(p.attachment.type) ? p.attachment.type : 'application/octet-stream';
    return reply
      .type(type)
      .header('content-disposition', contentDisposition('attachment', p.attachment.name ?? `partie-${partId}`))
      .header('x-content-type-options', 'nosniff')
      .send(Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength));
  });

  app.patch('/api/v1/emails/:id', async (req) => {
    const { user } = await caller(req);
    const body = parse(FlagsSchema, req.body, 'Modification');
    return mapped(o.mail.setFlags(user, (req.params as { id: string }).id, body, remote(req)));
  });

  app.post('/api/v1/emails/:id/move', async (req) => {
    const { user } = await caller(req);
    const { folderId } = parse(z.object({ folderId: z.string().max(32) }).strict(), req.body, 'Déplacement');
    return { id: await mapped(o.mail.move(user, (req.params as { id: string }).id, folderId, remote(req))) };
  });

  app.delete('/api/v1/emails/:id', async (req, reply) => {
    const { user } = await caller(req);
    await mapped(o.mail.remove(user, (req.params as { id: string }).id, remote(req)));
    return reply.code(204).send();
  });

  // ---- grants (Core's ACL operations: the one access-decision point) --------------------------

  /** A refusal on a mailbox the caller holds no right on is 404 (its existence is not revealed). */
  const grantProblem = async (user: User, addr: string, e: unknown) => {
    if (e instanceof AccessDenied) {
      const m = await o.core.store.findMailboxByAddress(addr);
      if (!m || (await o.core.rightsOn(user, m)).size === 0) return notFound();
      return new AuthProblem(403, 'forbidden', 'Seul le titulaire de la boîte ou un délégué avec le droit de gestion peut voir ou changer ses délégations.');
    }
    return problem(e);
  };

  app.get('/api/v1/mailboxes/:address/grants', async (req) => {
    const { user } = await caller(req);
    const { address: addr } = req.params as { address: string };
    const acl = await o.core.listAcl(user, addr).catch(async (e) => Promise.reject(await grantProblem(user, addr, e)));
    const grants = [];
    for (const a of acl) {
      const u = await o.core.store.findUserByLogin(a.login);
      grants.push({ login: a.login, displayName: u?.displayName ?? a.login, rights: a.rights, owner: a.owner });
    }
    return { grants };
  });

  app.put('/api/v1/mailboxes/:address/grants/:login', async (req) => {
    const { user } = await caller(req);
    const { address: addr, login } = req.params as { address: string; login: string };
    const { rights } = parse(z.object({ rights: z.array(z.enum(['read', 'send', 'manage'])).max(3) }).strict(), req.body, 'Délégation');
    const g = await o.core.setAcl(user, addr, login, { rights }, 'set', { protocol: 'web', remote: remote(req) }).catch(async (e) => Promise.reject(await grantProblem(user, addr, e)));
    const u = await o.core.store.findUserByLogin(login);
    return { login, displayName: u?.displayName ?? login, rights: g?.rights ?? [], owner: false };
  });

  app.delete('/api/v1/mailboxes/:address/grants/:login', async (req, reply) => {
    const { user } = await caller(req);
    const { address: addr, login } = req.params as { address: string; login: string };
    await o.core.removeAcl(user, addr, login, 'grant', { protocol: 'web', remote: remote(req) }).catch(async (e) => Promise.reject(await grantProblem(user, addr, e)));
    return reply.code(204).send();
  });

  // ---- preferences -----------------------------------------------------------------------------

  app.get('/api/v1/preferences', async (req) => {
    const { user } = await caller(req);
    const stored = await o.store.getPreferences(user.id);
    return stored ? { ...DEFAULT_PREFERENCES, ...JSON.parse(stored) } : DEFAULT_PREFERENCES;
  });

  app.put('/api/v1/preferences', async (req) => {
    const { user } = await caller(req);
    const prefs = parse(PreferencesSchema, req.body, 'Préférences');
    await o.store.setPreferences(user.id, JSON.stringify(prefs));
    return prefs;
  });

  // ---- composing: uploads, drafts, submissions ---------------------------------------------------

  /** The attachments a draft names, with the caller's right to each (uploads: their own; parts: readable messages). */
  async function attachmentsOf(user: User, d: Draft, extra: { filename: string; contentType: string; content: Buffer }[]) {
    const out = [...extra];
    for (const a of d.attachments) {
      if ('uploadId' in a) {
        const u = uploads.get(a.uploadId);
        if (!u || u.userId !== user.id) throw invalid(`Pièce jointe ${a.uploadId} introuvable (envoyée il y a plus de 24 h ?) : joignez-la de nouveau.`, 'attachments');
        out.push({ filename: u.name, contentType: u.type, content: u.data });
      } else {
        const p = await mapped(o.mail.part(user, a.emailId, a.partId));
        out.push({ filename: p.attachment.name ?? `partie-${a.partId}`, contentType: p.attachment.type, content: Buffer.from(p.data) });
      }
    }
    const total = out.reduce((n, a) => n + a.content.length, 0);
    if (total > o.maxMessageSize) throw new AuthProblem(413, 'too-large', `Le message dépasse la taille maximale de ${Math.floor(o.maxMessageSize / 1048576)} Mo.`);
    return out;
  }

  /** The message as the draft describes it (nodemailer's MailComposer: never hand-written MIME). */
  async function compose(user: User, d: Draft, extra: { filename: string; contentType: string; content: Buffer }[], keepBcc: boolean): Promise<Buffer> {
    const mb = await o.core.store.findMailboxByAddress(d.from);
    const refs = d.references?.length ? d.references : d.inReplyTo ? [d.inReplyTo] : undefined;
    const mail = {
      from: { name: mb?.displayName ?? '', address: d.from },
      to: d.to,
      cc: d.cc,
      bcc: d.bcc,
      subject: d.subject,
      text: d.text,
      ...(d.html !== undefined ? { html: d.html } : {}),
      attachments: await attachmentsOf(user, d, extra),
      ...(d.inReplyTo ? { inReplyTo: d.inReplyTo } : {}),
      ...(refs ? { references: refs } : {}),
      // RFC 8098 §2.1: a read receipt is asked with Disposition-Notification-To (the author).
      ...(d.readReceipt ? { headers: { 'Disposition-Notification-To': d.from } } : {}),
    };
    const node = new MailComposer(mail as any).compile();
    (node as any).keepBcc = keepBcc;
    const built = await new Promise<Buffer>((resolve, reject) => node.build((err: Error | null, buf: Buffer) => (err ? reject(err) : resolve(buf))));
    return d.endConversation ? withEndOfConversation(built) : built;
  }

  /** Reads a Draft from JSON or multipart/form-data (`message` field + files). */
  async function readDraft(req: FastifyRequest): Promise<{ draft: Draft; files: { filename: string; contentType: string; content: Buffer }[] }> {
    if (!req.isMultipart()) return { draft: parse(DraftSchema, req.body, 'Message'), files: [] };
    const mb = Math.floor(o.maxMessageSize / 1048576);
    const { json, files } = await readMultipart(req, 'message', 'le brouillon', {
      maxBytes: o.maxMessageSize,
      files: 100,
      fieldSize: 16 * 1048576,
      fileTooLarge: 'Pièce jointe trop volumineuse.',
      totalTooLarge: `Le message dépasse la taille maximale de ${mb} Mo.`,
    });
    return { draft: parse(DraftSchema, json, 'Message'), files: files.map((f) => ({ ...f, filename: f.filename || 'fichier' })) };
  }

  async function saveDraft(user: User, d: Draft, files: { filename: string; contentType: string; content: Buffer }[]) {
    if (!isValidAddress(d.from)) throw invalid('Adresse d’expéditeur invalide.', 'from');
    const dec = await o.core.maySendAs(user, d.from);
    if (!dec.ok) throw new AuthProblem(403, 'forbidden', `Vous ne pouvez pas écrire au nom de ${d.from}.`);
    const buf = await compose(user, d, files, true);
    if (buf.length > o.maxMessageSize) throw new AuthProblem(413, 'too-large', 'Brouillon trop volumineux.');
    const blob = await o.blobs.put(buf);
    try {
      // RFC 9051 §2.3.2: \Draft marks a message being composed.
      return await o.mail.append(dec.mailbox, '\\Drafts', blob, ['\\Draft', '\\Seen']);
    } finally {
      blob.release();
    }
  }

  app.register(async (scope) => {
    await scope.register(fastifyMultipart, { limits: { fileSize: o.maxMessageSize } });

    // JSON drafts may carry a whole message's text: the route's limit is the message size's.
    const bodyLimit = Math.ceil(o.maxMessageSize * 1.4) + 65536;
    scope.post('/api/v1/drafts', { bodyLimit }, async (req, reply) => {
      const { user } = await caller(req);
      const { draft, files } = await readDraft(req);
      const r = await saveDraft(user, draft, files);
      return reply.code(201).send({ id: r.id });
    });

    scope.put('/api/v1/drafts/:id', { bodyLimit }, async (req) => {
      const { user } = await caller(req);
      const { id } = req.params as { id: string };
      const { draft, files } = await readDraft(req);
      await mapped(o.mail.readableEmail(user, id)).then((loc) => {
        if ((loc.folder.specialUse ?? '').toLowerCase() !== '\\drafts') throw notFound();
      });
      const r = await saveDraft(user, draft, files);
      await mapped(o.mail.removeDraft(user, id));
      return { id: r.id };
    });

    scope.delete('/api/v1/drafts/:id', async (req, reply) => {
      const { user } = await caller(req);
      await mapped(o.mail.removeDraft(user, (req.params as { id: string }).id));
      return reply.code(204).send();
    });

    scope.post('/api/v1/submissions', { bodyLimit }, async (req, reply) => {
      const { user } = await caller(req);
      return o.sender.idempotent(req, reply, user, async (key) => {
        const { draft: d, files } = await readDraft(req);
        // The one sending path (http/sending.ts), shared with POST /api/v1/documents.
        const result = await o.sender.send(
          user,
          { from: d.from, to: d.to, cc: d.cc, bcc: d.bcc, subject: d.subject, notify: (d.notify as NewQueueItem['notify']) ?? null, compose: () => compose(user, d, files, false) },
          remote(req),
          req.log,
          key,
        );
        if (d.draftId) await o.mail.removeDraft(user, d.draftId).catch(() => undefined);
        for (const a of d.attachments) if ('uploadId' in a) uploads.delete(a.uploadId);
        return { status: 201, body: result };
      });
    });
  });

  // Uploads: the raw body of any type, refused before it is read when Content-Length is too large.
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: o.maxMessageSize }, (_req, body, done) => done(null, body));
    scope.post(
      '/api/v1/uploads',
      {
        onRequest: async (req) => {
          await caller(req);
          const len = Number(req.headers['content-length']);
          if (Number.isFinite(len) && len > o.maxMessageSize) throw new AuthProblem(413, 'too-large', `Fichier trop volumineux : au plus ${Math.floor(o.maxMessageSize / 1048576)} Mo.`);
        },
      },
      async (req, reply) => {
        const { user } = await caller(req);
        const data = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        if (!data.length) throw invalid('Fichier vide.');
        let name = 'fichier';
        const raw = req.headers['x-filename'];
        if (typeof raw === 'string' && raw.length) {
          try {
            name = decodeURIComponent(raw).replace(/[\x00-\x1f\x7f/\\]/g, '_').slice(0, 255) || 'fichier';
          } catch {
            throw invalid('En-tête X-Filename : nom de fichier en UTF-8 encodé en pourcentage attendu.', 'X-Filename');
          }
        }
        const type = String(req.headers['content-type'] ?? 'application/octet-stream').split(';')[0]!.trim().toLowerCase() || 'application/octet-stream';
        sweep();
        const mine = [...uploads.values()].filter((u) => u.userId === user.id).reduce((n, u) => n + u.data.length, 0);
        if (mine + data.length > 4 * o.maxMessageSize) throw new AuthProblem(413, 'too-large', 'Trop de pièces jointes en attente : envoyez ou abandonnez vos brouillons, ou attendez 24 h.');
        const uploadId = `u${randomBytes(12).toString('base64url')}`;
        uploads.set(uploadId, { userId: user.id, name, type, data, at: Date.now() });
        return reply.code(201).send({ uploadId, name, type, size: data.length });
      },
    );
  });
}
