// Publication of our own mailboxes to the national directory (Annuaire Santé FHIR API, ANS
// documentation github.com/ansforge/annuaire-sante-fhir-documentation): what changed since the last
// successful publication becomes FHIR PATCH requests with a FHIRPath Patch `Parameters` body (FHIR
// R4 fhirpatch.html: insert, replace, delete on `telecom.where(value='…')`), conditional on the
// practitioner's RPPS or the structure's FINESS/SIRET (FHIR R4 http.html#patch, conditional patch).
// A liste-rouge mailbox is never published: one that was published and went on the liste rouge is
// deleted there. A change is recorded as published only once the national directory accepted it.
import type { Logger } from 'pino';
import type { PublicationStore, PublishedMailbox } from '../store/directory/types.js';
import { SYSTEMS } from './codes.js';
import { FHIR_JSON, mailboxTelecom } from './fhir.js';
import type { DirectoryEntry, ResourceKind } from '../directory-model/entry.js';
import { localEntry, type LocalMailboxSource } from './service.js';

export interface PatchOperation {
  type: 'insert' | 'replace' | 'delete';
  address: string;
  /** The ContactPoint as it will be published (insert, replace). */
  telecom?: Record<string, unknown>;
}

export interface PatchRequest {
  resourceType: ResourceKind;
  /** Conditional query, e.g. identifier=urn:oid:1.2.250.1.71.4.2.1|810001234567 (unencoded). */
  condition: string;
  operations: PatchOperation[];
  /** FHIRPath Patch body (Parameters). */
  body: Record<string, unknown>;
}

export interface PublicationPlan {
  requests: PatchRequest[];
  /** Our mailboxes that cannot be published, and why. */
  skipped: { address: string; reason: string }[];
}

interface Desired {
  address: string;
  resourceType: ResourceKind;
  condition: string;
  telecom: Record<string, unknown>;
}

/** Conditional search of the resource carrying a mailbox (RPPS / FINESS / SIRET identifiers). */
export function conditionFor(e: DirectoryEntry): string | undefined {
  const pp = e.ppNatId ? `${SYSTEMS.idNatPs}|${e.ppNatId}` : undefined;
  const st =
    e.stIdType === '1' && e.stId.length === 10 ? `${SYSTEMS.finess}|${e.stId.slice(1)}` : e.stIdType === '3' && e.stId.length === 15 ? `${SYSTEMS.siret}|${e.stId.slice(1)}` : undefined;
  if (e.kind === 'Practitioner') return pp && `identifier=${pp}`;
  if (e.kind === 'Organization') return st && `identifier=${st}`;
  // PractitionerRole: the role of this practitioner in this structure (chained search, search.html#chaining).
  return pp && st ? `practitioner.identifier=${pp}&organization.identifier=${st}` : undefined;
}

/** A FHIRPath string literal (FHIRPath §3.2: backslash escapes). */
const fhirPathString = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

function operationParameter(resourceType: ResourceKind, op: PatchOperation) {
  const list = `${resourceType}.telecom`;
  const where = `${list}.where(value=${fhirPathString(op.address)})`;
  const part: Record<string, unknown>[] = [{ name: 'type', valueCode: op.type }];
  if (op.type === 'insert') part.push({ name: 'path', valueString: list }, { name: 'index', valueInteger: 0 }, { name: 'value', valueContactPoint: op.telecom });
  else if (op.type === 'replace') part.push({ name: 'path', valueString: where }, { name: 'value', valueContactPoint: op.telecom });
  else part.push({ name: 'path', valueString: where });
  return { name: 'operation', part };
}

export function patchBody(resourceType: ResourceKind, operations: PatchOperation[]) {
  return { resourceType: 'Parameters', parameter: operations.map((o) => operationParameter(resourceType, o)) };
}

/** What our mailboxes should look like in the national directory now. */
async function desiredState(store: LocalMailboxSource): Promise<{ desired: Map<string, Desired>; skipped: PublicationPlan['skipped'] }> {
  const [mailboxes, practitioners, structures] = await Promise.all([store.listMailboxes(), store.listPractitioners(), store.listStructures()]);
  const pById = new Map(practitioners.map((p) => [p.id, p]));
  const sById = new Map(structures.map((s) => [s.id, s]));
  const desired = new Map<string, Desired>();
  const skipped: PublicationPlan['skipped'] = [];
  for (const m of mailboxes) {
    if (m.state === 'deleted' || m.listeRouge) continue; // liste rouge: never published (ansforge/IG-fhir-annuaire)
    const e = localEntry(m, m.practitionerId ? pById.get(m.practitionerId) : undefined, m.structureId ? sById.get(m.structureId) : undefined);
    if (!e) {
      skipped.push({ address: m.address, reason: 'incomplete mailbox (no practitioner or structure)' });
      continue;
    }
    const condition = conditionFor(e);
    if (!condition) {
      skipped.push({ address: m.address, reason: `no RPPS / FINESS / SIRET identifier to find its ${e.kind} in the national directory` });
      continue;
    }
    desired.set(m.address.toLowerCase(), { address: m.address, resourceType: e.kind, condition, telecom: mailboxTelecom(e) });
  }
  return { desired, skipped };
}

/** Changes since the last publication, grouped into one PATCH per resource. */
export async function planPublication(store: LocalMailboxSource, pub: PublicationStore): Promise<PublicationPlan> {
  const { desired, skipped } = await desiredState(store);
  const published = new Map((await pub.listPublished()).map((p) => [p.address.toLowerCase(), p]));
  const groups = new Map<string, { resourceType: ResourceKind; condition: string; operations: PatchOperation[] }>();
  const add = (resourceType: ResourceKind, condition: string, op: PatchOperation) => {
    const k = `${resourceType}?${condition}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { resourceType, condition, operations: [] }));
    g.operations.push(op);
  };
  for (const [k, d] of desired) {
    const p = published.get(k);
    if (!p) add(d.resourceType, d.condition, { type: 'insert', address: d.address, telecom: d.telecom });
    else if (p.resourceType !== d.resourceType || p.condition !== d.condition) {
      add(p.resourceType, p.condition, { type: 'delete', address: p.address });
      add(d.resourceType, d.condition, { type: 'insert', address: d.address, telecom: d.telecom });
    } else if (p.telecom !== JSON.stringify(d.telecom)) add(d.resourceType, d.condition, { type: 'replace', address: d.address, telecom: d.telecom });
  }
  for (const [k, p] of published) if (!desired.has(k)) add(p.resourceType, p.condition, { type: 'delete', address: p.address });
  const requests = [...groups.values()].map((g) => ({ ...g, body: patchBody(g.resourceType, g.operations) }));
  return { requests, skipped };
}

export interface PublishOptions {
  /** FHIR base of the national directory, e.g. https://…/fhir/v2 */
  endpoint: string;
  apiKey?: string;
  apiKeyHeader: string;
  /** Delays before each retry (ms); its length is the number of retries. */
  retryDelaysMs: number[];
  timeoutMs: number;
  logger?: Logger;
  fetchImpl?: typeof fetch;
}

export interface PublishResult {
  sent: number;
  published: string[];
  failed: { resource: string; status?: number; error: string; attempts: number }[];
}

export function requestUrl(endpoint: string, r: PatchRequest): string {
  const qs = r.condition
    .split('&')
    .map((kv) => {
      const i = kv.indexOf('=');
      return `${encodeURIComponent(kv.slice(0, i))}=${encodeURIComponent(kv.slice(i + 1))}`;
    })
    .join('&');
  return `${endpoint.replace(/\/$/, '')}/${r.resourceType}?${qs}`;
}

const retryable = (status: number) => status === 408 || status === 429 || status >= 500;

/** Sends the plan; each resource's changes are recorded as published only after a 2xx. */
export async function publish(plan: PublicationPlan, pub: PublicationStore, o: PublishOptions): Promise<PublishResult> {
  const doFetch = o.fetchImpl ?? fetch;
  const result: PublishResult = { sent: 0, published: [], failed: [] };
  for (const r of plan.requests) {
    const url = requestUrl(o.endpoint, r);
    const resource = `${r.resourceType}?${r.condition}`;
    let attempts = 0;
    let last: { status?: number; error: string } = { error: 'not sent' };
    for (;;) {
      attempts++;
      try {
        const res = await doFetch(url, {
          method: 'PATCH',
          headers: { 'content-type': FHIR_JSON, accept: FHIR_JSON, ...(o.apiKey ? { [o.apiKeyHeader]: o.apiKey } : {}) },
          body: JSON.stringify(r.body),
          signal: AbortSignal.timeout(o.timeoutMs),
        });
        const text = await res.text().catch(() => '');
        if (res.ok) {
          last = { status: res.status, error: '' };
          break;
        }
        last = { status: res.status, error: `HTTP ${res.status}${outcomeText(text)}` };
        if (!retryable(res.status)) break;
      } catch (e: any) {
        last = { error: e?.name === 'TimeoutError' ? `no answer within ${o.timeoutMs} ms` : `${e?.cause?.code ?? e?.message ?? e}` };
      }
      if (attempts > o.retryDelaysMs.length) break;
      o.logger?.warn({ resource: r.resourceType, status: last.status, attempt: attempts, error: last.error }, 'directory publication failed, retrying');
      await new Promise((res) => setTimeout(res, o.retryDelaysMs[attempts - 1]));
    }
    result.sent++;
    if (last.error) {
      o.logger?.error({ resource: r.resourceType, status: last.status, attempts, error: last.error }, 'directory publication failed');
      result.failed.push({ resource, status: last.status, error: last.error, attempts });
      continue;
    }
    const upserts: Omit<PublishedMailbox, 'publishedAt'>[] = [];
    const removed: string[] = [];
    for (const op of r.operations) {
      if (op.type === 'delete') {
        // A delete+insert pair (resource change) keeps the new record: remove only if not re-inserted.
        if (!plan.requests.some((q) => q.operations.some((x) => x.type === 'insert' && x.address === op.address))) removed.push(op.address);
      } else upserts.push({ address: op.address, resourceType: r.resourceType, condition: r.condition, telecom: JSON.stringify(op.telecom) });
    }
    await pub.recordPublished(upserts, removed);
    result.published.push(...r.operations.map((op) => op.address));
    o.logger?.info({ resource: r.resourceType, operations: r.operations.length }, 'published to the national directory');
  }
  return result;
}

function outcomeText(body: string): string {
  try {
    const j = JSON.parse(body);
    const d = j?.issue?.[0]?.diagnostics ?? j?.detail;
    return d ? `: ${String(d).slice(0, 300)}` : '';
  } catch {
    return body ? `: ${body.slice(0, 200)}` : '';
  }
}
