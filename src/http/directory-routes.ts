// HTTP routes of the directory: the JSON search and autocomplete API and the FHIR R4 facade.
// Every request is public for now (authentication arrives with a later issue): liste-rouge
// mailboxes never appear here.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { FHIR_JSON, FhirError, RESOURCE_TYPES, type FhirDirectory, type ResourceType } from '../directory/fhir.js';
import { displayName } from '../directory-model/entry.js';
import { entrySummary, PUBLIC, type DirectoryService, type SearchParams, type Viewer } from '../directory/service.js';
import { MAILBOX_TYPES, type MailboxType } from '../model/index.js';
import { HttpProblem } from './problem.js';

/**
 * Who is asking: over HTTPS with a full web session, that user (they see their own liste-rouge
 * mailboxes, the directory service decides); otherwise — plain HTTP, no session — the public.
 */
async function viewerOf(req: FastifyRequest, reply: FastifyReply): Promise<Viewer> {
  if (!req.server.hasDecorator('sessions')) return PUBLIC;
  const cur = await req.server.sessions.current(req);
  if (cur?.session.stage !== 'full') return PUBLIC;
  // An answer for one user only: never kept by a shared cache.
  reply.header('cache-control', 'private, no-store').header('vary', 'Cookie');
  return { userId: cur.user.id };
}

export interface DirectoryRoutesOptions {
  directory: DirectoryService;
  fhir: FhirDirectory;
  /** Public base URL (e.g. https://annuaire.example.fr) for links; default: from the request. */
  publicUrl?: string;
}

type Q = Record<string, string | string[] | undefined>;

function str(q: Q, k: string): string | undefined {
  const v = q[k];
  if (Array.isArray(v)) throw new HttpProblem(400, 'Bad Request', `${k} is given ${v.length} times: give it once`);
  return v === undefined || v === '' ? undefined : v;
}

function int(q: Q, k: string, def: number, min: number, max: number): number {
  const v = str(q, k);
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new HttpProblem(400, 'Bad Request', `${k} must be a whole number ≥ ${min} (got ${JSON.stringify(v)})`);
  return Math.min(n, max);
}

/** Search parameters of the JSON API (docs/directory.md). */
export function apiSearchParams(q: Q): SearchParams {
  const types = str(q, 'type')
    ?.split(',')
    .map((t) => t.trim().toUpperCase())
    .filter(Boolean);
  for (const t of types ?? []) if (!MAILBOX_TYPES.includes(t as MailboxType)) throw new HttpProblem(400, 'Bad Request', `type ${t} is not a mailbox type: use ${MAILBOX_TYPES.join(', ')}`);
  const addressMatch = str(q, 'addressMatch') ?? 'contains';
  if (!['contains', 'exact', 'prefix'].includes(addressMatch)) throw new HttpProblem(400, 'Bad Request', 'addressMatch is contains, exact or prefix');
  return {
    q: str(q, 'q'),
    name: str(q, 'name'),
    profession: str(q, 'profession'),
    speciality: str(q, 'speciality'),
    city: str(q, 'city'),
    postalCode: str(q, 'postalCode'),
    structure: str(q, 'structure'),
    types: types as MailboxType[] | undefined,
    address: str(q, 'address'),
    addressMatch: addressMatch as SearchParams['addressMatch'],
  };
}

export function registerDirectoryRoutes(app: FastifyInstance, o: DirectoryRoutesOptions) {
  const base = (req: FastifyRequest) => (o.publicUrl ?? `${req.protocol}://${req.host}`).replace(/\/$/, '');

  // ---- JSON API -----------------------------------------------------------------------------
  app.get('/api/directory/search', async (req, reply) => {
    const q = req.query as Q;
    const params = apiSearchParams(q);
    if (!Object.values(params).some((v) => v !== undefined && v !== 'contains'))
      throw new HttpProblem(400, 'Bad Request', 'give q (free text) or at least one of name, profession, speciality, city, postalCode, structure, type, address');
    const limit = int(q, 'limit', 20, 1, 100);
    const offset = int(q, 'offset', 0, 0, 1_000_000);
    const r = await o.directory.search(params, { limit, offset }, await viewerOf(req, reply));
    const body: Record<string, unknown> = { results: r.entries.map(entrySummary), offset, limit, more: r.more };
    if (r.more) {
      const qs = new URLSearchParams(Object.entries(q).filter(([k, v]) => k !== 'offset' && typeof v === 'string') as [string, string][]);
      qs.set('offset', String(offset + limit));
      body.next = `${base(req)}/api/directory/search?${qs}`;
    }
    return body;
  });

  app.get('/api/directory/autocomplete', async (req, reply) => {
    const q = req.query as Q;
    const text = str(q, 'q');
    if (!text) throw new HttpProblem(400, 'Bad Request', 'give q, the text being typed');
    const limit = int(q, 'limit', 10, 1, 10);
    const entries = await o.directory.autocomplete(text, limit, await viewerOf(req, reply));
    return {
      suggestions: entries.map((e) => {
        const s = entrySummary(e);
        const detail = [s.profession?.label, s.structure?.name, s.city].filter(Boolean).join(' — ');
        return { label: displayName(e), address: e.address, type: e.type, ...(detail ? { detail } : {}) };
      }),
    };
  });

  app.get('/api/directory/status', async () => {
    const info = await o.directory.info();
    if (!info) return { imported: false };
    return { imported: true, importedAt: info.importedAt, entries: info.imported, added: info.added, removed: info.removed, changed: info.changed };
  });

  // ---- FHIR R4 ------------------------------------------------------------------------------
  const fhirBase = (req: FastifyRequest) => `${base(req)}/fhir`;
  const checkAccept = (req: FastifyRequest) => {
    const accept = String(req.headers.accept ?? '');
    // http.html#mime-type: JSON only here; an XML-only Accept gets 406.
    if (accept && /xml/i.test(accept) && !/json|\*\/\*/i.test(accept)) throw new FhirError(406, 'not-supported', 'only application/fhir+json is served');
  };
  const isType = (t: string): t is ResourceType => (RESOURCE_TYPES as readonly string[]).includes(t);

  app.get('/fhir/metadata', async (req, reply) => {
    checkAccept(req);
    return reply.type(FHIR_JSON).send(o.fhir.capabilityStatement(fhirBase(req)));
  });

  app.get('/fhir/:type', async (req, reply) => {
    checkAccept(req);
    const { type } = req.params as { type: string };
    if (!isType(type)) throw new FhirError(404, 'not-supported', `resource type ${type} is not served here (served: ${RESOURCE_TYPES.join(', ')})`);
    const strict = /handling\s*=\s*strict/i.test(String(req.headers.prefer ?? ''));
    const bundle = await o.fhir.search({ type, query: req.query as Q, base: fhirBase(req), strict }, await viewerOf(req, reply));
    return reply.type(FHIR_JSON).send(bundle);
  });

  app.get('/fhir/:type/:id', async (req, reply) => {
    checkAccept(req);
    const { type, id } = req.params as { type: string; id: string };
    if (!isType(type)) throw new FhirError(404, 'not-supported', `resource type ${type} is not served here (served: ${RESOURCE_TYPES.join(', ')})`);
    return reply.type(FHIR_JSON).send(await o.fhir.read(type, id, await viewerOf(req, reply)));
  });
}
