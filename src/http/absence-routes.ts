// The absence message of a mailbox over the web API (golden rule 3; the webmail's settings):
// GET / PUT / DELETE /api/v1/mailboxes/:address/absence. A full web session is required, and the
// CSRF header on PUT and DELETE (http/session.ts); who may read or change it is Core's decision
// (the owner or a delegate with the manage right), checked by policy/.
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AccessDenied, CoreError, NotFound } from '../core/index.js';
import type { AbsenceInput, AbsenceSettingsService } from '../policy/absence-service.js';
import { AuthProblem, requireSession } from './session.js';

export interface AbsenceRoutesOptions {
  absences: AbsenceSettingsService;
}

/** Core's refusals as RFC 9457 problems with a code: 404 unknown mailbox, 403 not allowed, 400 bad input. */
function problem(e: unknown): unknown {
  if (e instanceof NotFound) return new AuthProblem(404, 'not-found', `Boîte aux lettres inconnue (${e.message}).`);
  if (e instanceof AccessDenied) return new AuthProblem(403, 'forbidden', `Seul le titulaire de la boîte ou un délégué avec le droit de gestion peut consulter ou modifier son message d’absence (${e.message}).`);
  if (e instanceof CoreError) return new AuthProblem(400, 'invalid-request', `Message d’absence refusé : ${e.message}`);
  return e;
}

const noAbsence = (address: string) => new AuthProblem(404, 'no-absence', `${address} n’a pas de message d’absence.`);

/** Session cookies travel over HTTPS only: the plain HTTP listener refuses these routes. */
function requireTls(req: FastifyRequest) {
  if (!(req.raw.socket as TLSSocket).encrypted)
    throw new AuthProblem(403, 'https-required', 'Connexion refusée : utilisez l’adresse https:// de la messagerie.', {}, {}, 'HTTPS required');
}

const FIELDS = ['startsAt', 'endsAt', 'subject', 'body', 'externalBody', 'substitute'] as const;

function input(body: unknown): AbsenceInput {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new AuthProblem(400, 'invalid-request', 'Le corps de la requête doit être un objet JSON (AbsenceRequest).');
  const out: AbsenceInput = {};
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (!(FIELDS as readonly string[]).includes(k)) throw new AuthProblem(400, 'invalid-request', `Champ inconnu « ${k} » : utilisez ${FIELDS.join(', ')}.`, { field: k });
    if (v !== null && typeof v !== 'string') throw new AuthProblem(400, 'invalid-request', `Le champ « ${k} » doit être une chaîne ou null.`, { field: k });
    out[k as (typeof FIELDS)[number]] = v;
  }
  return out;
}

export function registerAbsenceRoutes(app: FastifyInstance, o: AbsenceRoutesOptions) {
  const path = '/api/v1/mailboxes/:address/absence';
  app.get(path, async (req, reply) => {
    requireTls(req);
    const { user } = await requireSession(req);
    const { address } = req.params as { address: string };
    const v = await o.absences.get({ user }, address).catch((e) => Promise.reject(problem(e)));
    if (!v) throw noAbsence(address);
    return reply.send(v);
  });
  app.put(path, async (req, reply) => {
    requireTls(req);
    const { user } = await requireSession(req);
    const { address } = req.params as { address: string };
    const v = await o.absences.set({ user, remote: req.ip }, address, input(req.body)).catch((e) => Promise.reject(problem(e)));
    return reply.send(v);
  });
  app.delete(path, async (req, reply) => {
    requireTls(req);
    const { user } = await requireSession(req);
    const { address } = req.params as { address: string };
    const had = await o.absences.clear({ user, remote: req.ip }, address).catch((e) => Promise.reject(problem(e)));
    if (!had) throw noAbsence(address);
    return reply.code(204).send();
  });
}
