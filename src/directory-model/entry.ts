// The directory's data model: one entry per MSSanté mailbox, from the national extraction
// (Extraction_Correspondance_MSSante, annuaire.sante.fr) or from this operator's own store. A pure room below both
// directory/ (the service) and store/directory/ (its persistence), so that the store never
// imports the service: types, the extraction's column order, and functions of an entry alone.
import type { MailboxType } from '../model/index.js';

/** The 31 fields of one extraction line, named (columns matched by header, see directory/extraction.ts). */
export interface ExtractionFields {
  balType: string;
  address: string;
  ppIdType: string;
  ppId: string;
  ppNatId: string;
  stIdType: string;
  stId: string;
  service: string;
  civility: string;
  family: string;
  given: string;
  categoryCode: string;
  categoryLabel: string;
  professionCode: string;
  professionLabel: string;
  specialityCode: string;
  specialityLabel: string;
  digitization: string;
  legalName: string;
  tradeName: string;
  l2: string;
  l3: string;
  l4Number: string;
  l4NumberExt: string;
  l4StreetType: string;
  l4Street: string;
  l5: string;
  l6: string;
  postalCode: string;
  department: string;
  country: string;
}

/** The 31 columns in the published order: field name and header as published. */
export const COLUMNS: [keyof ExtractionFields, string][] = [
  ['balType', 'Type de BAL'],
  ['address', 'Adresse BAL'],
  ['ppIdType', 'Type Identifiant PP'],
  ['ppId', 'Identifiant PP'],
  ['ppNatId', 'Identification nationale PP'],
  ['stIdType', 'Type identifiant structure'],
  ['stId', 'Identification Structure'],
  ['service', 'Service de rattachement'],
  ['civility', "Civilité d'exercice"],
  ['family', "Nom d'exercice"],
  ['given', "Prénom d'exercice"],
  ['categoryCode', 'Catégorie profession'],
  ['categoryLabel', 'Libellé de catégorie profession'],
  ['professionCode', 'Code Profession'],
  ['professionLabel', 'Libellé Profession'],
  ['specialityCode', 'Code savoir-faire'],
  ['specialityLabel', 'Libellé savoir-faire'],
  ['digitization', 'Dématérialisation'],
  ['legalName', 'Raison Sociale structure BAL'],
  ['tradeName', 'Enseigne commerciale structure BAL'],
  ['l2', 'L2COMPLEMENTLOCALISATION'],
  ['l3', 'L3COMPLEMENTDISTRIBUTION'],
  ['l4Number', 'L4NUMEROVOIE'],
  ['l4NumberExt', 'L4COMPLEMENTNUMEROVOIE'],
  ['l4StreetType', 'NL4TYPEVOIE'],
  ['l4Street', 'L4LIBELLEVOIE'],
  ['l5', 'L5LIEUDITMENTION'],
  ['l6', 'L6LIGNEACHEMINEMENT'],
  ['postalCode', 'Code postal'],
  ['department', 'Département'],
  ['country', 'Pays'],
];

/**
 * Which FHIR resource carries the mailbox as a telecom (ANS IG, github.com/ansforge/IG-fhir-annuaire):
 * PER with an RPPS only and CAB on Practitioner, PER with RPPS + structure on PractitionerRole,
 * ORG and APP on Organization.
 */
export type ResourceKind = 'Practitioner' | 'PractitionerRole' | 'Organization';

export interface DirectoryEntry extends ExtractionFields {
  source: 'national' | 'local';
  type: MailboxType;
  /** Practitioner key ("Identification nationale PP", e.g. 810001234567), FHIR-id safe; '' if none. */
  ppKey: string;
  /** Structure key ("Identification Structure", e.g. 1750712184), FHIR-id safe; '' if none. */
  stKey: string;
  kind: ResourceKind;
  sortKey: string;
  /** Only our own mailboxes can be on the liste rouge (the national extraction never lists them). */
  listeRouge: boolean;
  /** Free description (our own mailboxes). */
  description: string;
  /** Owning user of our own mailboxes (never shown; decides liste-rouge visibility). */
  ownerUserId: number | null;
  /** The 31 fields joined by '|' in the published order, when the extraction line is exactly that. */
  line?: string;
  /** `line` in UTF-8, when the import has it (valid while the entry is being added only). */
  lineBytes?: Uint8Array;
}

/** FHIR ids are [A-Za-z0-9-.]{1,64}: keys keep letters, digits and dots; '-' joins a role id. */
export function safeKey(s: string): string {
  // Nearly every key is already safe (digits, letters): returned as it is, without the
  // regular expressions (two per imported line).
  if (s.length <= 31) {
    let i = 0;
    for (; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 46)) break;
    }
    if (i === s.length) return s;
  }
  return s.trim().replace(/[^A-Za-z0-9.]/g, '.').slice(0, 31);
}

export function resourceKindOf(type: MailboxType, hasStructure: boolean): ResourceKind {
  if (type === 'ORG' || type === 'APP') return 'Organization';
  if (type === 'PER' && hasStructure) return 'PractitionerRole';
  return 'Practitioner';
}

export const roleId = (e: { ppKey: string; stKey: string }) => `${e.ppKey}-${e.stKey}`;

/** Id of the FHIR resource that carries this entry's mailbox. */
export function resourceIdOf(e: DirectoryEntry): string {
  return e.kind === 'Organization' ? e.stKey : e.kind === 'PractitionerRole' ? roleId(e) : e.ppKey;
}

/** Display name: "DR Claire MARTIN" for a person, the structure's name otherwise. */
export function displayName(e: ExtractionFields & { type: MailboxType }): string {
  if (e.family || e.given) return [e.given, e.family].filter(Boolean).join(' ');
  return e.tradeName || e.legalName || e.service || e.address;
}

/** City from L6 (ligne d'acheminement "75012 PARIS CEDEX 12"): postal code and CEDEX removed. */
export function cityOf(e: { l6: string; postalCode: string }): string {
  let s = e.l6.trim();
  if (e.postalCode && s.startsWith(e.postalCode)) s = s.slice(e.postalCode.length);
  s = s.replace(/^\s*\d{5}\s+/, '').replace(/\s+CEDEX(\s+\d+)?\s*$/i, '');
  return s.trim();
}
