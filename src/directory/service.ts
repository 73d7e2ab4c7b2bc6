// The directory as the operator serves it: the national snapshot (store/directory) merged
// with our own mailboxes (core store), searched with one set of rules, and the liste rouge
// enforced here, in one place: a liste-rouge mailbox is never in public output; its owner and
// the operator's administrators see it (`Viewer`). Over HTTPS a request with a full web session
// is that user's viewer (src/http/directory-routes.ts); other HTTP requests are public; the CLI
// passes another viewer with --admin / --as LOGIN.
import type { Mailbox, Practitioner, Structure } from '../model/index.js';
import type { AccountStore, MailboxStore } from '../store/types.js';
import type { Clause, DirectorySnapshotReader, IndexQuery, SnapshotInfo } from '../store/directory/types.js';
import { PROFESSIONS } from './codes.js';
import { entryFromFields } from './extraction.js';
import { entryTokens, type EntryTokens } from '../directory-model/tokens.js';
import { allClausesMatch } from '../directory-model/match.js';
import { cityOf, displayName, type DirectoryEntry, type ExtractionFields, type ResourceKind } from '../directory-model/entry.js';
import { codeToken, joinedKey, words } from '../directory-model/normalize.js';

/** Who is looking: nobody (public), an administrator, or a user (sees their own liste-rouge mailboxes). */
export interface Viewer {
  admin?: boolean;
  userId?: number;
}
export const PUBLIC: Viewer = Object.freeze({});

export class DirectoryError extends Error {
  override name = 'DirectoryError';
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export interface SearchParams {
  /** Free text: names, structure, profession, city, postal code (all words, prefixes). */
  q?: string;
  /** Words of a person's or a structure's name (prefixes). */
  name?: string;
  /** Words of a person's name only (FHIR Practitioner / PractitionerRole name). */
  personName?: string;
  /** FHIR-like starts-with on the whole family / given name. */
  family?: string;
  given?: string;
  /** Profession code (TRE_G15, e.g. 10) or words of its label. */
  profession?: string;
  /** Savoir-faire code (e.g. SM26) or words of its label. */
  speciality?: string;
  /** City (starts-with, accent-insensitive). */
  city?: string;
  /** Postal code (starts-with: 75 is all of Paris). */
  postalCode?: string;
  /** Structure: national id / FINESS / SIRET, or words of its name. */
  structure?: string;
  /** Words of the structure's name only (FHIR Organization name). */
  orgName?: string;
  /** Mailbox types (TRE_R257). */
  types?: DirectoryEntry['type'][];
  /** Mailbox address: contains (default), exact, or starts-with (FHIR string default). */
  address?: string;
  addressMatch?: 'contains' | 'exact' | 'prefix';
  /** Only mailboxes carried by these FHIR resources. */
  kinds?: ResourceKind[];
  /** Practitioner / structure keys (FHIR identifier search). */
  ppKey?: string;
  stKey?: string;
  /** Whole-value matching instead of starts-with (FHIR :exact) for these parameters. */
  exact?: ('name' | 'family' | 'given' | 'city')[];
}

export interface SearchResult {
  entries: DirectoryEntry[];
  /** More matches exist beyond this page. */
  more: boolean;
  /** The national snapshot stopped at its cap on rows read (SearchPage.capped): a deeper page finds no more. */
  capped?: boolean;
}

/** Deepest result a search pages to (offset + limit): beyond it, refine the query. */
export const MAX_DEPTH = 1000;

interface LocalEntry {
  entry: DirectoryEntry;
  tokens: EntryTokens;
}

/** Our own mailboxes as directory entries (from the core store), refreshed at most every `ttlMs`. */
/** What the directory reads of the operator's store: our own mailboxes, with their practitioners and structures. */
export type LocalMailboxSource = Pick<MailboxStore, 'listMailboxes'> & Pick<AccountStore, 'listPractitioners' | 'listStructures'>;

class LocalMailboxes {
  private cache: { at: number; entries: LocalEntry[]; addresses: Set<string> } | undefined;
  private loading: Promise<void> | undefined;
  /** Converted mailboxes by id, reused while the mailbox, its practitioner and structure are unchanged. */
  private memo = new Map<number, { stamp: string; entry: LocalEntry | undefined }>();

  constructor(
    private readonly store: LocalMailboxSource | undefined,
    private readonly ttlMs: number,
  ) {}

  invalidate() {
    this.cache = undefined;
  }

  async get(): Promise<{ entries: LocalEntry[]; addresses: Set<string> }> {
    if (!this.store) return { entries: [], addresses: new Set() };
    if (this.cache && Date.now() - this.cache.at < this.ttlMs) return this.cache;
    this.loading ??= this.load().finally(() => (this.loading = undefined));
    await this.loading;
    return this.cache!;
  }

  private async load() {
    const store = this.store!;
    const [mailboxes, practitioners, structures] = await Promise.all([store.listMailboxes(), store.listPractitioners(), store.listStructures()]);
    const pById = new Map(practitioners.map((p) => [p.id, p]));
    const sById = new Map(structures.map((s) => [s.id, s]));
    const entries: LocalEntry[] = [];
    const addresses = new Set<string>();
    const memo = new Map<number, { stamp: string; entry: LocalEntry | undefined }>();
    for (const m of mailboxes) {
      addresses.add(m.address.toLowerCase()); // even deleted ones: never shown from the national copy either
      if (m.state === 'deleted') continue;
      const p = m.practitionerId ? pById.get(m.practitionerId) : undefined;
      const st = m.structureId ? sById.get(m.structureId) : undefined;
      // Everything the entry is made of (liste rouge included: a stale copy must never leak).
      const stamp = JSON.stringify([m.updatedAt, m.state, m.listeRouge, m.service, m.description, m.displayName, m.ownerUserId, p, st]);
      let x = this.memo.get(m.id);
      if (!x || x.stamp !== stamp) {
        const e = localEntry(m, p, st);
        x = { stamp, entry: e ? { entry: e, tokens: entryTokens(e) } : undefined };
      }
      memo.set(m.id, x);
      if (x.entry) entries.push(x.entry);
    }
    this.memo = memo;
    this.cache = { at: Date.now(), entries, addresses };
  }
}

/** One of our mailboxes in the extraction's shape (the fields the national directory would publish). */
export function localEntry(m: Mailbox, p: Practitioner | undefined, s: Structure | undefined): DirectoryEntry | undefined {
  const f: ExtractionFields = {
    balType: m.type,
    address: m.address,
    ppIdType: p ? '8' : '',
    ppId: p?.rpps ?? '',
    ppNatId: p ? '8' + p.rpps : '', // Identification nationale PP = type (8 RPPS) + RPPS (ansforge/IG-fhir-annuaire)
    stIdType: s ? (s.idType === 'FINESS' ? '1' : '3') : '',
    stId: s ? (s.idType === 'FINESS' ? '1' : '3') + s.idValue : '',
    service: m.service ?? '',
    civility: p?.civility ?? '',
    family: p?.familyName ?? '',
    given: p?.givenName ?? '',
    categoryCode: '',
    categoryLabel: '',
    professionCode: p?.professionCode ?? '',
    professionLabel: (p?.professionCode && PROFESSIONS[p.professionCode]) || '',
    specialityCode: '',
    specialityLabel: '',
    digitization: '',
    legalName: s?.name ?? (m.type === 'ORG' || m.type === 'APP' ? m.displayName : ''),
    tradeName: '',
    l2: '',
    l3: '',
    l4Number: '',
    l4NumberExt: '',
    l4StreetType: '',
    l4Street: '',
    l5: '',
    l6: '',
    postalCode: '',
    department: '',
    country: '',
  };
  const r = entryFromFields(f, 'local', { listeRouge: m.listeRouge, description: m.description ?? '', ownerUserId: m.ownerUserId });
  return r.ok ? r.entry : undefined;
}

const code = (prefix: string, value: string, prefixMatch = false): Clause => {
  const t = codeToken(prefix, value);
  return { column: 'codes', words: [{ parts: [t], joined: t }], prefix: prefixMatch };
};
const wordsClauses = (text: string | undefined, column: Clause['column'], prefix = true): Clause[] =>
  words(text).map((w) => ({ column, words: [w], prefix }));

/** Identifier forms accepted for a structure: national id (1 + FINESS, 3 + SIRET), FINESS (9), SIRET (14). */
export function structureKeys(id: string): string[] {
  const v = id.trim().toUpperCase();
  if (/^[0-9][0-9AB][0-9]{7}$/.test(v)) return ['1' + v];
  if (/^[0-9]{14}$/.test(v)) return ['3' + v];
  return [v];
}
/** Practitioner key from an RPPS (11 digits) or an Identification nationale PP (8 + RPPS, 0 + ADELI). */
export function practitionerKey(id: string): string {
  const v = id.trim();
  return /^[0-9]{11}$/.test(v) ? '8' + v : v;
}

export class DirectoryService {
  private readonly local: LocalMailboxes;

  constructor(
    readonly snapshot: DirectorySnapshotReader,
    readonly store?: LocalMailboxSource,
    opts: { localTtlMs?: number } = {},
  ) {
    this.local = new LocalMailboxes(store, opts.localTtlMs ?? 2000);
  }

  /** Our own mailboxes changed (same process): the next search sees it at once. */
  invalidateLocal() {
    this.local.invalidate();
  }

  info(): Promise<SnapshotInfo | undefined> {
    return this.snapshot.info();
  }

  private visible(e: DirectoryEntry, viewer: Viewer): boolean {
    if (!e.listeRouge) return true;
    return !!viewer.admin || (viewer.userId !== undefined && viewer.userId === e.ownerUserId);
  }

  /** Filter conditions (everything but the free text), as index clauses. */
  filterClauses(p: SearchParams): Clause[] {
    const c: Clause[] = [];
    const exact = new Set(p.exact ?? []);
    c.push(...wordsClauses(p.name, 'names', !exact.has('name')));
    c.push(...wordsClauses(p.personName, 'person', !exact.has('name')));
    c.push(...wordsClauses(p.orgName, 'org', !exact.has('name')));
    if (p.family && joinedKey(p.family)) c.push(code('fa_', joinedKey(p.family), !exact.has('family')));
    if (p.given && joinedKey(p.given)) c.push(code('gi_', joinedKey(p.given), !exact.has('given')));
    if (p.profession) {
      if (/^\s*[0-9]+\s*$/.test(p.profession)) c.push(code('p_', p.profession.trim()));
      else c.push(...wordsClauses(p.profession, 'work'));
    }
    if (p.speciality) {
      if (/^\s*[A-Za-z]{1,4}[0-9]{1,4}\s*$/.test(p.speciality)) c.push(code('s_', p.speciality.trim()));
      else c.push(...wordsClauses(p.speciality, 'work'));
    }
    if (p.city && joinedKey(p.city)) c.push(code('cy_', joinedKey(p.city), !exact.has('city')));
    if (p.postalCode?.trim()) c.push(code('cp_', p.postalCode.trim(), true));
    if (p.structure?.trim()) {
      const v = p.structure.trim();
      if (/^[0-9][0-9AB]?[0-9]{7,14}$/i.test(v)) {
        const keys = structureKeys(v).concat(/^[0-9]{10,15}$/.test(v) ? [v] : []);
        c.push({ column: 'codes', words: [...new Set(keys)].map((k) => ({ parts: [codeToken('st_', k)], joined: codeToken('st_', k) })), prefix: false });
      } else c.push(...wordsClauses(v, 'org'));
    }
    if (p.stKey) c.push(code('st_', p.stKey));
    if (p.ppKey) c.push(code('pp_', p.ppKey));
    if (p.types?.length) {
      const ts = [...new Set(p.types)];
      c.push({ column: 'codes', words: ts.map((t) => ({ parts: ['t_' + t.toLowerCase()], joined: 't_' + t.toLowerCase() })), prefix: false });
    }
    return c;
  }

  /**
   * Ranked search. Tiers, best first: the free-text words are whole words of the name, then
   * prefixes of the name, then prefixes anywhere (structure, profession, city, …); within a tier,
   * our own mailboxes first, then the national ones in extraction order. A national entry whose
   * address is one of ours is replaced by ours (fresher, and liste rouge applies).
   */
  async search(p: SearchParams, page: { limit: number; offset?: number }, viewer: Viewer = PUBLIC): Promise<SearchResult> {
    const offset = page.offset ?? 0;
    const limit = page.limit;
    if (offset + limit > MAX_DEPTH) throw new DirectoryError(`a search pages to at most ${MAX_DEPTH} results (offset + limit): refine the query`);
    const need = offset + limit;
    const filters = this.filterClauses(p);
    const address = p.address?.trim() ? { mode: p.addressMatch ?? 'contains', value: p.address.trim().toLowerCase() } : undefined;
    const qWords = words(p.q);
    const tiers: Clause[][] = qWords.length
      ? [
          qWords.map((w) => ({ column: 'names', words: [w], prefix: false }) as Clause),
          qWords.map((w) => ({ column: 'names', words: [w], prefix: true }) as Clause),
          qWords.map((w) => ({ column: 'any', words: [w], prefix: true }) as Clause),
        ]
      : [[]];
    const local = await this.local.get();
    const out: DirectoryEntry[] = [];
    const seen = new Set<string>();
    let more = false;
    let capped = false;
    for (const text of tiers) {
      const clauses = [...text, ...filters];
      // Ours first.
      for (const l of local.entries) {
        if (!this.visible(l.entry, viewer) || seen.has(l.entry.address.toLowerCase())) continue;
        if (p.kinds?.length && !p.kinds.includes(l.entry.kind)) continue;
        if (address && !addressMatches(l.entry.address, address)) continue;
        if (!allClausesMatch(l.tokens, clauses)) continue;
        seen.add(l.entry.address.toLowerCase());
        out.push(l.entry);
      }
      if (out.length > need) {
        more = true;
        break;
      }
      // Then the national snapshot, skipping what we already have and our own addresses.
      const q: IndexQuery = { clauses, address, kinds: p.kinds };
      const target = need - out.length + 1;
      let ask = target + seen.size;
      for (;;) {
        const r = await this.snapshot.search(q, ask);
        const fresh: DirectoryEntry[] = [];
        for (const e of r.entries) {
          const a = e.address.toLowerCase();
          if (seen.has(a) || local.addresses.has(a)) continue;
          fresh.push(e);
          if (fresh.length >= target) break;
        }
        if (r.capped) capped = true;
        // Capped: a larger `ask` would read the same rows again.
        if (fresh.length >= target || !r.more || r.capped || ask > 4 * MAX_DEPTH + local.addresses.size) {
          for (const e of fresh) {
            seen.add(e.address.toLowerCase());
            out.push(e);
          }
          if (r.more) more = true;
          break;
        }
        ask *= 2; // earlier tiers and our own addresses took places: ask for more
      }
      if (out.length > need) {
        more = true;
        break;
      }
    }
    const result: SearchResult = { entries: out.slice(offset, offset + limit), more: more || out.length > offset + limit };
    if (capped) result.capped = true;
    return result;
  }

  /** At most 10 suggestions for what is being typed (names first). */
  async autocomplete(q: string, limit = 10, viewer: Viewer = PUBLIC): Promise<DirectoryEntry[]> {
    if (!words(q).length) return [];
    return (await this.search({ q }, { limit: Math.min(Math.max(limit, 1), 10) }, viewer)).entries;
  }

  /** One mailbox by address (ours first). */
  async byAddress(address: string, viewer: Viewer = PUBLIC): Promise<DirectoryEntry | undefined> {
    const a = address.trim().toLowerCase();
    const local = await this.local.get();
    const mine = local.entries.find((l) => l.entry.address.toLowerCase() === a);
    if (mine) return this.visible(mine.entry, viewer) ? mine.entry : undefined;
    if (local.addresses.has(a)) return undefined; // ours, deleted
    return this.snapshot.byAddress(a);
  }

  /** Every visible mailbox of a practitioner (ours and national), ours first. */
  async practitionerEntries(ppKey: string, viewer: Viewer = PUBLIC): Promise<DirectoryEntry[]> {
    const local = await this.local.get();
    const mine = local.entries.filter((l) => l.entry.ppKey === ppKey).map((l) => l.entry);
    const national = (await this.snapshot.byPractitioner(ppKey, 500)).filter((e) => !local.addresses.has(e.address.toLowerCase()));
    return [...mine.filter((e) => this.visible(e, viewer)), ...national];
  }

  /** A structure's visible entries (ours and national); `kind` narrows to one resource's mailboxes. */
  async structureEntries(stKey: string, kind: ResourceKind | undefined, viewer: Viewer = PUBLIC, limit = 500): Promise<DirectoryEntry[]> {
    const local = await this.local.get();
    const mine = local.entries.filter((l) => l.entry.stKey === stKey && (!kind || l.entry.kind === kind)).map((l) => l.entry);
    const national = (await this.snapshot.byStructure(stKey, kind, limit)).filter((e) => !local.addresses.has(e.address.toLowerCase()));
    return [...mine.filter((e) => this.visible(e, viewer)), ...national];
  }

}

export function addressMatches(address: string, a: { mode: 'contains' | 'exact' | 'prefix'; value: string }): boolean {
  const x = address.toLowerCase();
  return a.mode === 'exact' ? x === a.value : a.mode === 'prefix' ? x.startsWith(a.value) : x.includes(a.value);
}

/** A compact, public view of an entry (JSON API, CLI). */
export function entrySummary(e: DirectoryEntry) {
  const city = cityOf(e);
  return {
    address: e.address,
    type: e.type,
    name: displayName(e),
    ...(e.family || e.given ? { family: e.family, given: e.given, civility: e.civility || undefined } : {}),
    ...(e.professionCode ? { profession: { code: e.professionCode, label: e.professionLabel } } : {}),
    ...(e.specialityCode ? { speciality: { code: e.specialityCode, label: e.specialityLabel } } : {}),
    ...(e.stKey ? { structure: { id: e.stId, name: e.legalName || undefined, tradeName: e.tradeName || undefined } } : {}),
    ...(e.service ? { service: e.service } : {}),
    ...(city || e.postalCode ? { city: city || undefined, postalCode: e.postalCode || undefined } : {}),
    ...(e.ppNatId || e.ppId ? { idNatPs: e.ppNatId || e.ppIdType + e.ppId } : {}),
    source: e.source,
    ...(e.listeRouge ? { listeRouge: true } : {}),
  };
}

