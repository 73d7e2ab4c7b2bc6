// Golden rule 4 for the webmail's composer: POST /api/v1/compose/check, called before sending,
// tells whether the draft carries urgency markers and which local recipients will not read it
// soon (away, or behind on reading), so that the webmail can warn the sender to phone instead.
// It also names at once the recipients the sending would refuse (`refused`): unknown local
// mailboxes (Core.resolveRecipient) and domains outside the liste blanche (the trust service),
// the same decisions and French reasons as POST /api/v1/submissions' 422 (http/sending.ts).
// A full web session and the CSRF header are required (http/session.ts); nothing is stored.
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isValidAddress, type Core } from '../core/index.js';
import { urgencyMarkers } from '../policy/rules.js';
import type { UrgencyResponder } from '../policy/urgency.js';
import type { TrustService } from '../trust/index.js';
import { RECIPIENT_REASONS } from './sending.js';
import { AuthProblem, requireSession } from './session.js';

export interface ComposeRoutesOptions {
  urgency: Pick<UrgencyResponder, 'notReadSoon'>;
  core: Pick<Core, 'resolveRecipient'>;
  /** The trust-decision point: is a remote domain in the liste blanche. */
  trust: Pick<TrustService, 'isTrustedDomain'>;
}

const MAX_RECIPIENTS = 100;
const MAX_TEXT = 100_000;

function requireTls(req: FastifyRequest) {
  if (!(req.raw.socket as TLSSocket).encrypted)
    throw new AuthProblem(403, 'https-required', 'Connexion refusée : utilisez l’adresse https:// de la messagerie.', {}, {}, 'HTTPS required');
}

function input(body: unknown): { subject: string; text: string; to: string[] } {
  const bad = (detail: string, field?: string) => new AuthProblem(400, 'invalid-request', detail, field ? { field } : {});
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw bad('Le corps de la requête doit être un objet JSON (ComposeCheckRequest).');
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!['subject', 'text', 'to'].includes(k)) throw bad(`Champ inconnu « ${k} » : utilisez subject, text, to.`, k);
  const str = (k: string) => {
    const v = b[k] ?? '';
    if (typeof v !== 'string') throw bad(`Le champ « ${k} » doit être une chaîne.`, k);
    if (v.length > MAX_TEXT) throw bad(`Le champ « ${k} » dépasse ${MAX_TEXT} caractères.`, k);
    return v;
  };
  const to = b.to ?? [];
  if (!Array.isArray(to) || to.some((a) => typeof a !== 'string')) throw bad('Le champ « to » doit être une liste d’adresses.', 'to');
  if (to.length > MAX_RECIPIENTS) throw bad(`Au plus ${MAX_RECIPIENTS} destinataires.`, 'to');
  return { subject: str('subject'), text: str('text'), to: to as string[] };
}

export function registerComposeRoutes(app: FastifyInstance, o: ComposeRoutesOptions) {
  app.post('/api/v1/compose/check', async (req, reply) => {
    requireTls(req);
    await requireSession(req);
    const draft = input(req.body);
    const markers = urgencyMarkers({ subject: draft.subject, text: draft.text });
    const now = new Date();
    const recipients: object[] = [];
    const refused: { address: string; reason: string }[] = [];
    for (const address of new Set(draft.to.map((a) => a.trim().toLowerCase()))) {
      if (!isValidAddress(address)) {
        refused.push({ address, reason: 'Adresse invalide : vérifiez son orthographe (nom@domaine).' });
        continue;
      }
      const r = await o.core.resolveRecipient(address);
      // The same outcomes as the submission pipeline (mail/submission.ts checkRecipient).
      if (r.kind === 'unknown' || r.kind === 'deleted') refused.push({ address, reason: RECIPIENT_REASONS['no-such-mailbox']! });
      else if (r.kind === 'remote' && !o.trust.isTrustedDomain(r.domain)) refused.push({ address, reason: RECIPIENT_REASONS['outside-trust-space']! });
      if (r.kind !== 'local') continue;
      const why = await o.urgency.notReadSoon(r.mailbox, now);
      if (why) recipients.push({ address: r.mailbox.address, ...why });
    }
    return reply.send({ urgent: markers.length > 0, markers, notReadSoon: recipients, warn: markers.length > 0 && recipients.length > 0, refused });
  });
}
