// Index tokens of a directory entry, by column: what the national snapshot's full-text index
// holds (store/directory/) and what in-memory matching of our own mailboxes checks
// (directory/service.ts), computed by one function so that both agree.
import { cityOf, type DirectoryEntry } from './entry.js';
import { codeToken, indexTokens, joinedKey } from './normalize.js';

/**
 * Index tokens of an entry, by column. The store indexes names alone (fast name search and
 * autocomplete) and all words together with code tokens (free text with filters); a condition
 * on one column is then checked on these same tokens (match.ts, clauseMatches).
 * - names: the person (family, given) or, for ORG/APP, the structure's names and service;
 * - org: the structure's legal and trade names and the service;
 * - work: profession, savoir-faire and category labels;
 * - place: city, postal code, department;
 * - other: description (our own mailboxes);
 * - codes: exact / starts-with filter tokens "prefix_value" ('_' never occurs in a word):
 *   t_ type, k_ resource kind, p_ profession, s_ savoir-faire, cp_ postal code, cy_ city,
 *   fa_ family, gi_ given, pp_ practitioner, st_ structure.
 */
export interface EntryTokens {
  /** The names are a person's (PER, CAB), not a structure's (ORG, APP). */
  isPerson: boolean;
  names: string[];
  org: string[];
  work: string[];
  place: string[];
  other: string[];
  codes: string[];
}

export function entryTokens(e: DirectoryEntry): EntryTokens {
  const names: string[] = [];
  const org: string[] = [];
  const work: string[] = [];
  const place: string[] = [];
  const other: string[] = [];
  if (e.family || e.given) {
    indexTokens(e.family, names);
    indexTokens(e.given, names);
  } else {
    indexTokens(e.legalName, names);
    indexTokens(e.tradeName, names);
    indexTokens(e.service, names);
  }
  if (e.stKey) {
    indexTokens(e.legalName, org);
    indexTokens(e.tradeName, org);
    indexTokens(e.service, org);
  }
  const city = cityOf(e);
  indexTokens(e.professionLabel, work);
  indexTokens(e.specialityLabel, work);
  indexTokens(city, place);
  if (e.postalCode) place.push(e.postalCode.toLowerCase());
  if (e.description) indexTokens(e.description, other);
  const codes = ['t_' + e.type.toLowerCase(), 'k_' + e.kind.toLowerCase()];
  if (e.ppKey) codes.push(codeToken('pp_', e.ppKey));
  if (e.stKey) codes.push(codeToken('st_', e.stKey));
  if (e.professionCode) codes.push(codeToken('p_', e.professionCode));
  if (e.specialityCode) codes.push(codeToken('s_', e.specialityCode));
  if (e.postalCode) codes.push(codeToken('cp_', e.postalCode));
  if (city) codes.push('cy_' + joinedKey(city));
  if (e.family) codes.push('fa_' + joinedKey(e.family));
  if (e.given) codes.push('gi_' + joinedKey(e.given));
  return { isPerson: !!(e.family || e.given), names, org, work, place, other, codes };
}
