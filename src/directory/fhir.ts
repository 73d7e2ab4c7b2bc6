// FHIR R4 facade of the directory, shaped like the ANS Annuaire Santé API (/fhir/v2,
// github.com/ansforge/annuaire-sante-fhir-documentation): Practitioner, PractitionerRole,
// Organization, a mailbox as a ContactPoint (telecom) with system=email and two extensions (FR Core
// email type = MSSANTE, ANS as-ext-mailbox-mss-metadata). PER with an RPPS only and CAB on
// Practitioner, PER with RPPS + structure on PractitionerRole, ORG and APP on Organization.
// Spec references: FHIR R4 (4.0.1) http.html (read, search), search.html (string parameters,
// modifiers :exact / :contains, _count, paging links), bundle.html (searchset),
// operationoutcome.html, capabilitystatement.html.
import { EXTENSIONS, SYSTEMS } from './codes.js';
import { cityOf, roleId, type DirectoryEntry, type ResourceKind } from '../directory-model/entry.js';
import { MAX_DEPTH, practitionerKey, PUBLIC, structureKeys, type DirectoryService, type SearchParams, type Viewer } from './service.js';

export const FHIR_JSON = 'application/fhir+json';
export const RESOURCE_TYPES = ['Practitioner', 'PractitionerRole', 'Organization'] as const;
export type ResourceType = (typeof RESOURCE_TYPES)[number];
export type Resource = Record<string, unknown> & { resourceType: string };

/** An HTTP-level FHIR failure: status and an OperationOutcome issue code (R4 valueset issue-type). */
export class FhirError extends Error {
  override name = 'FhirError';
  constructor(
    readonly status: number,
    readonly code: 'invalid' | 'not-found' | 'not-supported' | 'exception' | 'too-costly' | 'processing',
    message: string,
  ) {
    super(message);
  }
}

export function operationOutcome(code: string, diagnostics: string, severity: 'error' | 'warning' | 'information' = 'error'): Resource {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics }] };
}

// ---- mapping -------------------------------------------------------------------------------

const yesNo = (v: string): boolean | undefined => (/^(o|oui|y|yes|true|1)$/i.test(v) ? true : /^(n|non|no|false|0)$/i.test(v) ? false : undefined);

/** The mailbox as the ANS guide writes it: a telecom with the two MSSanté extensions. */
export function mailboxTelecom(e: DirectoryEntry): Resource {
  const meta: Record<string, unknown>[] = [{ url: 'type', valueCodeableConcept: { coding: [{ system: SYSTEMS.typeBal, code: e.type }] } }];
  if (e.description) meta.push({ url: 'description', valueString: e.description });
  if (e.service) meta.push({ url: 'service', valueString: e.service });
  meta.push({ url: 'listeRouge', valueBoolean: e.listeRouge });
  const digitization = yesNo(e.digitization);
  if (digitization !== undefined) meta.push({ url: 'digitization', valueBoolean: digitization });
  return {
    extension: [
      { url: EXTENSIONS.emailType, valueCoding: { system: SYSTEMS.typeMessagerie, code: 'MSSANTE', display: 'Messagerie MSSanté' } },
      { url: EXTENSIONS.mailboxMetadata, extension: meta },
    ],
    system: 'email',
    value: e.address,
    use: 'work',
  } as unknown as Resource;
}

function address(e: DirectoryEntry): Record<string, unknown> | undefined {
  const l4 = [e.l4Number, e.l4NumberExt, e.l4StreetType, e.l4Street].filter(Boolean).join(' ');
  const line = [e.l2, e.l3, l4, e.l5].filter(Boolean);
  const city = cityOf(e);
  if (!line.length && !city && !e.postalCode) return undefined;
  const a: Record<string, unknown> = { use: 'work', type: 'both' };
  if (line.length) a.line = line;
  if (city) a.city = city;
  if (e.department) a.district = e.department;
  if (e.postalCode) a.postalCode = e.postalCode;
  if (e.country) a.country = e.country;
  const text = [...line, e.l6].filter(Boolean).join(', ');
  if (text) a.text = text; // FHIR strings are never empty (R4 datatypes.html#string)
  return a;
}

const coding = (system: string, code: string, display: string) => ({ coding: [{ system, code, ...(display ? { display } : {}) }] });
const identifierType = (code: string) => ({ coding: [{ system: SYSTEMS.identifierType, code }] });

function practitionerIdentifiers(e: DirectoryEntry) {
  const ids: Record<string, unknown>[] = [];
  const idNat = e.ppNatId || e.ppIdType + e.ppId;
  ids.push({ use: 'official', type: identifierType('IDNPS'), system: SYSTEMS.idNatPs, value: idNat });
  if (e.ppIdType === '8' && /^[0-9]{11}$/.test(e.ppId)) ids.push({ use: 'official', type: identifierType('RPPS'), system: SYSTEMS.rpps, value: e.ppId });
  return ids;
}

function structureIdentifiers(e: DirectoryEntry) {
  const ids: Record<string, unknown>[] = [{ use: 'official', type: identifierType('IDNST'), system: SYSTEMS.idNatSt, value: e.stId || e.stKey }];
  const raw = e.stId;
  if (e.stIdType === '1' && /^1[0-9][0-9AB][0-9]{7}$/.test(raw)) ids.push({ use: 'official', system: SYSTEMS.finess, value: raw.slice(1) });
  if (e.stIdType === '3' && /^3[0-9]{14}$/.test(raw)) ids.push({ use: 'official', type: identifierType('SIRET'), system: SYSTEMS.siret, value: raw.slice(1) });
  return ids;
}

function personName(e: DirectoryEntry) {
  const n: Record<string, unknown> = { use: 'usual' };
  if (e.family) n.family = e.family;
  if (e.given) n.given = [e.given];
  if (e.civility) n.prefix = [e.civility];
  return n;
}

const uniqueBy = <T>(xs: T[], key: (x: T) => string) => {
  const seen = new Set<string>();
  return xs.filter((x) => (seen.has(key(x)) ? false : (seen.add(key(x)), true)));
};

/** Practitioner: the person (from any of their lines), telecom = PER without structure and CAB. */
export function practitionerResource(id: string, entries: DirectoryEntry[]): Resource {
  const p = entries[0];
  const qualification: Record<string, unknown>[] = [];
  for (const e of uniqueBy(entries.filter((x) => x.professionCode), (x) => x.professionCode)) qualification.push({ code: coding(SYSTEMS.profession, e.professionCode, e.professionLabel) });
  for (const e of uniqueBy(entries.filter((x) => x.specialityCode), (x) => x.specialityCode)) qualification.push({ code: coding(SYSTEMS.savoirFaire, e.specialityCode, e.specialityLabel) });
  const own = entries.filter((e) => e.kind === 'Practitioner');
  const addresses = uniqueBy(own.map(address).filter((a): a is Record<string, unknown> => !!a), (a) => String(a.text));
  const r: Resource = { resourceType: 'Practitioner', id, identifier: practitionerIdentifiers(p), active: true, name: [personName(p)] };
  if (own.length) r.telecom = own.map(mailboxTelecom);
  if (addresses.length) r.address = addresses;
  if (qualification.length) r.qualification = qualification;
  return r;
}

/** PractitionerRole: the practitioner in a structure, telecom = PER with RPPS + structure. */
export function roleResource(entries: DirectoryEntry[]): Resource {
  const e = entries[0];
  const r: Resource = {
    resourceType: 'PractitionerRole',
    id: roleId(e),
    active: true,
    practitioner: { reference: `Practitioner/${e.ppKey}`, ...(e.given || e.family ? { display: [e.given, e.family].filter(Boolean).join(' ') } : {}) },
    organization: { reference: `Organization/${e.stKey}`, ...(e.legalName ? { display: e.legalName } : {}) },
  };
  if (e.professionCode) r.code = [coding(SYSTEMS.profession, e.professionCode, e.professionLabel)];
  if (e.specialityCode) r.specialty = [coding(SYSTEMS.savoirFaire, e.specialityCode, e.specialityLabel)];
  r.telecom = entries.map(mailboxTelecom);
  return r;
}

/** Organization: the structure (from any of its lines), telecom = ORG and APP. */
export function organizationResource(id: string, any: DirectoryEntry, mailboxes: DirectoryEntry[]): Resource {
  const named = mailboxes.find((e) => e.legalName) ?? any;
  const r: Resource = { resourceType: 'Organization', id, identifier: structureIdentifiers(named), active: true };
  if (named.legalName) r.name = named.legalName;
  const alias = uniqueBy([...mailboxes, any].map((e) => e.tradeName).filter(Boolean), (x) => x);
  if (alias.length) r.alias = alias;
  if (mailboxes.length) r.telecom = mailboxes.map(mailboxTelecom);
  const a = address(mailboxes.find((e) => address(e)) ?? any);
  if (a) r.address = [a];
  return r;
}

// ---- search parameters ------------------------------------------------------------------

const COMMON = ['_id', '_count', '_offset', '_format', 'identifier', 'mailbox-mss', 'address-city', 'address-postalcode'];
const PARAMS: Record<ResourceType, string[]> = {
  Practitioner: [...COMMON, 'name', 'family', 'given'],
  PractitionerRole: [...COMMON, 'name', 'family', 'given', 'practitioner', 'organization'],
  Organization: [...COMMON, 'name'],
};
const DOCS: Record<string, [string, string]> = {
  identifier: ['token', 'RPPS (urn:oid:1.2.250.1.71.4.2.1 = 8 + RPPS, or https://rpps.esante.gouv.fr), FINESS (https://finess.esante.gouv.fr), SIRET, national structure id (urn:oid:1.2.250.1.71.4.2.2)'],
  'mailbox-mss': ['string', 'MSSanté mailbox address; :contains, :exact; default starts-with'],
  'address-city': ['string', 'city of the address; :exact'],
  'address-postalcode': ['string', 'postal code (starts-with)'],
  name: ['string', 'any part of the name (starts-with per word); :exact'],
  family: ['string', 'family name (starts-with); :exact'],
  given: ['string', 'given name (starts-with); :exact'],
  practitioner: ['reference', 'Practitioner/id'],
  organization: ['reference', 'Organization/id'],
};

type Query = Record<string, string | string[] | undefined>;

/** `name`, `name:exact`, … → [base, modifier]. */
function splitParam(k: string): [string, string | undefined] {
  const i = k.indexOf(':');
  return i < 0 ? [k, undefined] : [k.slice(0, i), k.slice(i + 1)];
}

function one(v: string | string[] | undefined, name: string): string | undefined {
  if (Array.isArray(v)) {
    if (v.length > 1) throw new FhirError(400, 'not-supported', `${name} is given ${v.length} times: repeating a parameter (AND) is not supported here, use one value`);
    return v[0];
  }
  return v;
}

/** token search value `system|value` or `value` (search.html#token). */
function tokenValue(v: string): { system?: string; value: string } {
  const i = v.indexOf('|');
  return i < 0 ? { value: v } : { system: v.slice(0, i) || undefined, value: v.slice(i + 1) };
}

function identifierKeys(type: ResourceType, raw: string): { ppKeys: string[]; stKeys: string[] } {
  const ppKeys: string[] = [];
  const stKeys: string[] = [];
  for (const part of raw.split(',')) {
    const { system, value } = tokenValue(part.trim());
    if (!value) continue;
    if (system === SYSTEMS.idNatPs || system === SYSTEMS.rpps) ppKeys.push(practitionerKey(value));
    else if (system === SYSTEMS.finess) stKeys.push('1' + value.toUpperCase());
    else if (system === SYSTEMS.siret) stKeys.push('3' + value);
    else if (system === SYSTEMS.idNatSt) stKeys.push(value.toUpperCase());
    else if (system) throw new FhirError(400, 'not-supported', `identifier system ${system} is not known here; use ${SYSTEMS.idNatPs}, ${SYSTEMS.rpps}, ${SYSTEMS.finess}, ${SYSTEMS.siret} or ${SYSTEMS.idNatSt}`);
    else if (type === 'Organization') stKeys.push(...structureKeys(value));
    else if (type === 'Practitioner') ppKeys.push(practitionerKey(value));
    else if (/^[0-9]{11,12}$/.test(value)) ppKeys.push(practitionerKey(value));
    else stKeys.push(...structureKeys(value));
  }
  return { ppKeys, stKeys };
}

export interface SearchRequest {
  type: ResourceType;
  query: Query;
  /** Base URL of the FHIR endpoint, e.g. http://127.0.0.1:2080/fhir */
  base: string;
  /** Prefer: handling=strict (search.html#errors): unknown parameters are errors. */
  strict?: boolean;
}

export class FhirDirectory {
  constructor(private readonly directory: DirectoryService) {}

  capabilityStatement(base: string): Resource {
    return {
      resourceType: 'CapabilityStatement',
      status: 'active',
      date: new Date().toISOString().slice(0, 10),
      publisher: 'Caducée',
      kind: 'instance',
      software: { name: 'Caducée', version: '0.1.0' },
      implementation: { description: 'Annuaire MSSanté (extraction nationale et boîtes de l’opérateur)', url: base },
      fhirVersion: '4.0.1',
      format: ['json'],
      rest: [
        {
          mode: 'server',
          documentation: 'Public directory: liste-rouge mailboxes never appear. Paging with _count (max 100) and _offset (next links).',
          resource: RESOURCE_TYPES.map((type) => ({
            type,
            interaction: [{ code: 'read' }, { code: 'search-type' }],
            searchParam: PARAMS[type]
              .filter((p) => DOCS[p])
              .map((p) => ({ name: p, type: DOCS[p][0], documentation: DOCS[p][1] })),
          })),
        },
      ],
    };
  }

  async read(type: ResourceType, id: string, viewer: Viewer = PUBLIC): Promise<Resource> {
    const r = await this.build(type, id, viewer);
    if (!r) throw new FhirError(404, 'not-found', `${type}/${id} is not in the directory`);
    return r;
  }

  private async build(type: ResourceType, id: string, viewer: Viewer): Promise<Resource | undefined> {
    if (!/^[A-Za-z0-9\-.]{1,64}$/.test(id)) return undefined;
    if (type === 'Practitioner') {
      const entries = await this.directory.practitionerEntries(id, viewer);
      return entries.length ? practitionerResource(id, entries) : undefined;
    }
    if (type === 'Organization') {
      const mailboxes = await this.directory.structureEntries(id, 'Organization', viewer);
      const any = mailboxes[0] ?? (await this.directory.structureEntries(id, undefined, viewer, 1))[0];
      return any ? organizationResource(id, any, mailboxes) : undefined;
    }
    const dash = id.indexOf('-');
    if (dash < 0) return undefined;
    const [ppKey, stKey] = [id.slice(0, dash), id.slice(dash + 1)];
    const entries = (await this.directory.practitionerEntries(ppKey, viewer)).filter((e) => e.kind === 'PractitionerRole' && e.stKey === stKey);
    return entries.length ? roleResource(entries) : undefined;
  }

  /** type search (http.html#search), as a searchset Bundle with self / next / previous links. */
  async search(req: SearchRequest, viewer: Viewer = PUBLIC): Promise<Resource> {
    const { type, query } = req;
    const allowed = new Set(PARAMS[type]);
    const p: SearchParams = { kinds: kindsFor(type) };
    let count = 20;
    let offset = 0;
    const used: [string, string][] = [];
    let idFilter: string | undefined;
    for (const [key, raw] of Object.entries(query)) {
      if (raw === undefined) continue;
      const [base, mod] = splitParam(key);
      if (!allowed.has(base)) {
        if (req.strict) throw new FhirError(400, 'not-supported', `search parameter ${key} is not supported on ${type} (supported: ${PARAMS[type].join(', ')})`);
        continue; // lenient handling (search.html#errors): unknown parameters are ignored, and left out of the self link
      }
      const v = one(raw, key)!;
      used.push([key, v]);
      const noMod = (what: string) => {
        if (mod) throw new FhirError(400, 'not-supported', `modifier :${mod} is not supported on ${what}`);
      };
      switch (base) {
        case '_count': {
          noMod(base);
          const n = Number(v);
          if (!Number.isInteger(n) || n < 0) throw new FhirError(400, 'invalid', `_count must be a whole number (got ${JSON.stringify(v)})`);
          count = Math.min(n, 100);
          break;
        }
        case '_offset': {
          noMod(base);
          const n = Number(v);
          if (!Number.isInteger(n) || n < 0) throw new FhirError(400, 'invalid', `_offset must be a whole number (got ${JSON.stringify(v)})`);
          offset = n;
          break;
        }
        case '_format':
          if (!/json/i.test(v)) throw new FhirError(406, 'not-supported', `only JSON is served (_format=${v}); ask for application/fhir+json`);
          break;
        case '_id':
          noMod(base);
          idFilter = v;
          break;
        case 'identifier': {
          noMod(base);
          const { ppKeys, stKeys } = identifierKeys(type, v);
          if (ppKeys.length > 1 || stKeys.length > 1) throw new FhirError(400, 'not-supported', 'identifier: one value at a time (no comma lists)');
          if (type === 'Organization' && ppKeys.length) throw new FhirError(400, 'invalid', 'an Organization identifier is a FINESS, SIRET or national structure id, not an RPPS');
          if (type === 'Practitioner' && stKeys.length) throw new FhirError(400, 'invalid', 'a Practitioner identifier is an RPPS / national PP id, not a FINESS');
          if (ppKeys[0]) p.ppKey = ppKeys[0];
          if (stKeys[0]) p.stKey = stKeys[0];
          break;
        }
        case 'mailbox-mss':
          if (mod && mod !== 'contains' && mod !== 'exact') throw new FhirError(400, 'not-supported', `mailbox-mss supports :contains and :exact, not :${mod}`);
          p.address = v;
          p.addressMatch = mod === 'contains' ? 'contains' : mod === 'exact' ? 'exact' : 'prefix';
          break;
        case 'address-city':
          if (mod && mod !== 'exact') throw new FhirError(400, 'not-supported', `address-city supports :exact, not :${mod}`);
          p.city = v;
          break;
        case 'address-postalcode':
          noMod(base);
          p.postalCode = v;
          break;
        case 'name':
          if (mod && mod !== 'exact') throw new FhirError(400, 'not-supported', `name supports :exact, not :${mod}`);
          if (type === 'Organization') p.orgName = v;
          else p.personName = v;
          break;
        case 'family':
        case 'given':
          if (mod && mod !== 'exact') throw new FhirError(400, 'not-supported', `${base} supports :exact, not :${mod}`);
          p[base] = v;
          break;
        case 'practitioner':
        case 'organization': {
          noMod(base);
          const ref = v.replace(/^.*\/(?=[^/]+$)/, '');
          if (base === 'practitioner') p.ppKey = ref;
          else p.stKey = ref;
          break;
        }
      }
      if (mod === 'exact' && (base === 'name' || base === 'family' || base === 'given' || base === 'address-city')) (p.exact ??= []).push(base === 'address-city' ? 'city' : base);
    }
    if (offset + count > MAX_DEPTH) throw new FhirError(400, 'too-costly', `paging stops at ${MAX_DEPTH} results (_offset + _count): refine the search`);

    // Matching lines, grouped into resources in rank order.
    const keyOf = (e: DirectoryEntry) => (type === 'Practitioner' ? e.ppKey : type === 'Organization' ? e.stKey : roleId(e));
    const keys: string[] = [];
    let more = false;
    if (idFilter !== undefined) {
      const r = await this.build(type, idFilter, viewer);
      if (r && (await this.matchesFilters(type, idFilter, p, viewer))) keys.push(idFilter);
    } else {
      const want = offset + count + 1;
      let limit = Math.min(MAX_DEPTH, want * 2);
      for (;;) {
        const res = await this.directory.search(p, { limit }, viewer);
        keys.length = 0;
        const seen = new Set<string>();
        for (const e of res.entries) {
          const k = keyOf(e);
          if (!k || seen.has(k)) continue;
          seen.add(k);
          keys.push(k);
        }
        // Capped (the snapshot stopped at its cap on rows read): a larger limit reads the same rows.
        if (keys.length >= want || !res.more || res.capped || limit >= MAX_DEPTH) {
          more = keys.length >= want || (res.more && (limit >= MAX_DEPTH || !!res.capped));
          break;
        }
        limit = Math.min(MAX_DEPTH, limit * 2);
      }
    }
    const page = keys.slice(offset, offset + count);
    const resources = (await Promise.all(page.map((k) => this.build(type, k, viewer)))).filter((r): r is Resource => !!r);

    const link = (o: number) => {
      const qs = new URLSearchParams(used.filter(([k]) => k !== '_offset' && k !== '_count'));
      qs.set('_count', String(count));
      if (o) qs.set('_offset', String(o));
      return `${req.base}/${type}?${qs.toString()}`;
    };
    const links = [{ relation: 'self', url: link(offset) }];
    if (more && offset + count < MAX_DEPTH) links.push({ relation: 'next', url: link(offset + count) });
    if (offset > 0) links.push({ relation: 'previous', url: link(Math.max(0, offset - count)) });
    const bundle: Resource = {
      resourceType: 'Bundle',
      type: 'searchset',
      timestamp: new Date().toISOString(),
      link: links,
    };
    if (!more) bundle.total = keys.length;
    if (resources.length) bundle.entry = resources.map((r) => ({ fullUrl: `${req.base}/${r.resourceType}/${r.id}`, resource: r, search: { mode: 'match' } }));
    return bundle;
  }

  /** `_id` with other parameters: does the resource also satisfy them? */
  private async matchesFilters(type: ResourceType, id: string, p: SearchParams, viewer: Viewer): Promise<boolean> {
    const filtered = { ...p };
    if (type === 'Practitioner') filtered.ppKey = id;
    else if (type === 'Organization') filtered.stKey = id;
    else {
      const dash = id.indexOf('-');
      filtered.ppKey = id.slice(0, dash);
      filtered.stKey = id.slice(dash + 1);
    }
    return (await this.directory.search(filtered, { limit: 1 }, viewer)).entries.length > 0;
  }
}

/** Lines that make a resource of `type` findable: a Practitioner from any of its lines, etc. */
function kindsFor(type: ResourceType): ResourceKind[] {
  if (type === 'Practitioner') return ['Practitioner', 'PractitionerRole'];
  if (type === 'Organization') return ['Organization', 'PractitionerRole'];
  return ['PractitionerRole'];
}

