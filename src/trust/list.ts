// The MSSanté trust list ("liste blanche") published by the ANS:
// https://github.com/ansforge/MSS-liste-blanche (listeblanchemssante.xml + checksum).
//
// Document shape (copied from the published files):
//   <?xml version="1.0" encoding="UTF-8"?>
//   <ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema">
//     <DateDeGeneration>2025-03-13T14:54:10Z</DateDeGeneration>
//     <ListeDomaines>
//       <Domaine>
//         <Nom>…</Nom> <Description>…</Description>
//         <DNCertificatOperateur>CN=…,OU=…,O=…,ST=…,C=FR</DNCertificatOperateur>
//         <ResponsableContact>…</ResponsableContact> (one or more)
//         <SupportContact>…</SupportContact> <DateMAJ>…</DateMAJ>
//       </Domaine>*
//     </ListeDomaines>
//   (published copies lack the closing </ListeBlancheMSSante>)
//
// XML is read with fast-xml-parser (validator for well-formedness, parser for content);
// nothing here parses XML by hand. The only repair is the known truncation: a document
// that ends right after a complete </ListeDomaines> gets its missing root closing tag.

import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import { DnError, normalizeDn, type Rdn } from '../pki/dn.js';

export const TRUST_LIST_NAMESPACE = 'https://listeblanche.mssante.fr/schema';
export const TRUST_LIST_ROOT = 'ListeBlancheMSSante';

export class TrustListError extends Error {
  override name = 'TrustListError';
}

/** One published `Domaine` element. */
export interface TrustEntry {
  /** `Nom`: the MSSanté mail domain, as published (trimmed). */
  domain: string;
  /** `DNCertificatOperateur`: subject DN of the operator's server certificate, as published (trimmed). */
  operatorDn: string;
  description?: string;
  /** `DateMAJ`, as published (ISO 8601 in practice). */
  dateMaj?: string;
  /** `ResponsableContact` elements, in order. */
  responsables?: string[];
  /** `SupportContact`. */
  support?: string;
}

export interface TrustList {
  /** `DateDeGeneration`, as published. */
  generatedAt?: string;
  /** Entries as published, in document order (entries with a missing domain or an unparsable DN are skipped, with a warning). */
  entries: TrustEntry[];
  /** Number of distinct domains (case-insensitive). */
  domains: number;
  /** Number of distinct operator DNs, compared as distinguished names (dnEquals). */
  dns: number;
  /** Number of distinct operator DN strings as written (spacing, quoting and case variants count separately). */
  dnSpellings: number;
  /** What was repaired, skipped or found suspicious, in English. */
  warnings: string[];
  /** Distinct operator DNs listed for a domain (case-insensitive), each as written at its first occurrence; [] when not listed. */
  lookup(domain: string): string[];
  isListed(domain: string): boolean;
  /** True when `dn` equals (dnEquals semantics) one of the DNs listed for `domain`. A malformed DN is never listed. */
  isDnListedFor(domain: string, dn: string | readonly Rdn[]): boolean;
}

/** Lookup key of a domain: trimmed, lower-cased, without a trailing dot (RFC 4343: DNS names are case-insensitive). */
export function normalizeDomain(domain: string): string {
  return domain.trim().toLowerCase().replace(/\.$/, '');
}

// RFC 1123 §2.1 host name labels (letters, digits, hyphens), at least two labels.
const DOMAIN_RE = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

interface DomainRecord {
  dns: string[];
  keys: Set<string>;
}

// ---------------------------------------------------------------------------------
// Reading

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeInput(input: string | Uint8Array): string {
  if (typeof input === 'string') return input.charCodeAt(0) === 0xfeff ? input.slice(1) : input;
  if (!(input instanceof Uint8Array)) {
    throw new TrustListError(`expected the trust list as a string or bytes, found ${typeof input}`);
  }
  const b = input;
  if (b.length >= 2 && ((b[0] === 0xff && b[1] === 0xfe) || (b[0] === 0xfe && b[1] === 0xff))) {
    throw new TrustListError('expected a UTF-8 XML document (as the ANS publishes), found UTF-16 (byte order mark)');
  }
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) {
    throw new TrustListError('expected an XML document, found gzip-compressed data');
  }
  if (b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && b[2] === 0x03 && b[3] === 0x04) {
    throw new TrustListError('expected an XML document, found a ZIP archive');
  }
  try {
    return utf8.decode(b); // TextDecoder strips a UTF-8 BOM
  } catch {
    throw new TrustListError('expected a UTF-8 XML document, found bytes that are not valid UTF-8');
  }
}

function excerpt(text: string, max = 60): string {
  const t = text.trim().replace(/\s+/g, ' ');
  return JSON.stringify(t.length > max ? `${t.slice(0, max)}…` : t);
}

/** Recognizes common non-list inputs before XML validation, to say precisely what was found. */
function rejectObviousNonXml(text: string): void {
  const trimmed = text.trimStart();
  if (trimmed === '') {
    throw new TrustListError(
      `expected an XML document with root element <${TRUST_LIST_ROOT}>, found ${text.length === 0 ? 'an empty input' : 'only white space'}`,
    );
  }
  const head = trimmed.slice(0, 2048);
  if (/^(<\?xml[^>]*>\s*)?(<!--[\s\S]*?-->\s*)*(<!doctype\s+html|<html[\s>])/i.test(head)) {
    const title = /<title[^>]*>([^<]{0,200})<\/title>/i.exec(head)?.[1]?.trim();
    throw new TrustListError(
      `expected an XML document with root element <${TRUST_LIST_ROOT}>, found an HTML page${title ? ` (title ${JSON.stringify(title)})` : ''}`,
    );
  }
  if (trimmed[0] === '{' || trimmed[0] === '[') {
    throw new TrustListError(`expected an XML document with root element <${TRUST_LIST_ROOT}>, found JSON (starts with ${excerpt(trimmed, 40)})`);
  }
  if (trimmed[0] !== '<') {
    throw new TrustListError(`expected an XML document with root element <${TRUST_LIST_ROOT}>, found text starting with ${excerpt(trimmed, 40)}`);
  }
}

type ValidationFailure = { code: string; msg: string; line?: number; col?: number };

function validate(text: string): ValidationFailure | null {
  const r = XMLValidator.validate(text);
  return r === true ? null : (r.err as ValidationFailure);
}

/** Elements the validator found open at end of input, or null when the error is of another kind. */
function unclosedElements(err: ValidationFailure): string[] | null {
  const one = /^Unclosed tag '([^']+)'/.exec(err.msg);
  if (one) return [one[1]!];
  const many = /^Invalid '(\[[\s\S]*\])' found/.exec(err.msg);
  if (many) {
    try {
      const names = JSON.parse(many[1]!) as unknown;
      if (Array.isArray(names) && names.every((x) => typeof x === 'string')) return names as string[];
    } catch {
      /* fall through */
    }
  }
  return null;
}

function describeValidationError(err: ValidationFailure): string {
  const open = unclosedElements(err);
  if (open) {
    return (
      `expected a complete XML document, found one that ends before ${open.map((e) => `<${e}>`).join(' > ')} ` +
      `${open.length > 1 ? 'are' : 'is'} closed: the list is truncated ` +
      `(only a missing final </${TRUST_LIST_ROOT}> right after </ListeDomaines> is repaired)`
    );
  }
  const where = err.line !== undefined ? ` at line ${err.line}${err.col !== undefined ? `, column ${err.col}` : ''}` : '';
  return `expected a well-formed XML document, found an XML error${where}: ${err.msg}`;
}

function asArray<T>(v: T | T[] | undefined): T[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** Text content of a leaf element, or undefined when absent or not a leaf. */
function textOf(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const t = (v as Record<string, unknown>)['#text'];
    const keys = Object.keys(v).filter((k) => !k.startsWith('@_') && k !== '#text');
    if (keys.length === 0) return t === undefined ? '' : String(t);
  }
  return undefined;
}

const parser = new XMLParser({
  ignoreAttributes: false, // to read xmlns on the root
  attributeNamePrefix: '@_',
  parseTagValue: false, // keep every value as the published string (OU=318310021300028 is not a number)
  parseAttributeValue: false,
  trimValues: true,
  jPath: false, // callbacks get a matcher instead of a built path string: cheaper
  isArray: (name) => name === 'Domaine' || name === 'ResponsableContact',
});

/**
 * Parses the ANS trust list. Throws TrustListError when the input is not a trust list
 * (empty, HTML, JSON, malformed or truncated XML, another root element, no ListeDomaines).
 */
export function parseTrustList(input: string | Uint8Array): TrustList {
  let text = decodeInput(input);
  rejectObviousNonXml(text);
  const warnings: string[] = [];

  // The published copies lack the closing root tag. Repair exactly that case: the
  // document ends with a complete </ListeDomaines> and the root is the only open element.
  let failure: ValidationFailure | null;
  const end = text.trimEnd();
  if (end.endsWith('</ListeDomaines>') && !text.includes(`</${TRUST_LIST_ROOT}>`)) {
    const repaired = `${end}\n</${TRUST_LIST_ROOT}>\n`;
    failure = validate(repaired);
    if (failure === null) {
      text = repaired;
      warnings.push(`the closing </${TRUST_LIST_ROOT}> tag was missing after </ListeDomaines>; it was added`);
    } else {
      failure = validate(text);
    }
  } else {
    failure = validate(text);
  }
  if (failure) throw new TrustListError(describeValidationError(failure));

  let doc: Record<string, unknown>;
  try {
    doc = parser.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new TrustListError(`expected a well-formed XML document, found an XML error: ${(err as Error).message}`);
  }
  // ANS listeblanchemssante.xml: a single root <ListeBlancheMSSante> (github.com/ansforge/MSS-liste-blanche).
  const roots = Object.keys(doc).filter((k) => !k.startsWith('?') && !k.startsWith('#'));
  if (roots.length !== 1 || roots[0] !== TRUST_LIST_ROOT) {
    throw new TrustListError(
      `expected root element <${TRUST_LIST_ROOT}>, found ${roots.length ? roots.map((r) => `<${r}>`).join(', ') : 'no element'}`,
    );
  }
  const root = doc[TRUST_LIST_ROOT];
  if (!root || typeof root !== 'object' || Array.isArray(root)) {
    throw new TrustListError(`expected <${TRUST_LIST_ROOT}> to contain <ListeDomaines>, found an empty root element`);
  }
  const rootObj = root as Record<string, unknown>;
  const ns = rootObj['@_xmlns']; // ANS: xmlns="https://listeblanche.mssante.fr/schema"
  if (ns !== undefined && ns !== TRUST_LIST_NAMESPACE) {
    warnings.push(`root namespace is ${JSON.stringify(ns)}, expected ${JSON.stringify(TRUST_LIST_NAMESPACE)}`);
  }
  const generated = asArray(rootObj['DateDeGeneration']); // ANS: generation timestamp, e.g. 2025-03-13T14:54:10Z
  const generatedAt = generated.length ? textOf(generated[0])?.trim() || undefined : undefined;
  if (generated.length > 1) warnings.push(`${generated.length} <DateDeGeneration> elements; the first one is used`);
  if (generatedAt === undefined) warnings.push('no <DateDeGeneration>');

  if (!('ListeDomaines' in rootObj)) {
    const found = Object.keys(rootObj).filter((k) => !k.startsWith('@_') && k !== '#text');
    throw new TrustListError(
      `expected <ListeDomaines> inside <${TRUST_LIST_ROOT}>, found ${found.length ? found.map((k) => `<${k}>`).join(', ') : 'no child element'}`,
    );
  }
  // ANS: ListeDomaines/Domaine*, one Domaine per (domain, operator certificate).
  const domaines: unknown[] = [];
  for (const ld of asArray(rootObj['ListeDomaines'])) {
    if (ld && typeof ld === 'object') domaines.push(...asArray((ld as Record<string, unknown>)['Domaine']));
  }

  const entries: TrustEntry[] = [];
  const byDomain = new Map<string, DomainRecord>();
  const dnKeyCache = new Map<string, string | DnError>();
  const spellingsByKey = new Map<string, Set<string>>();
  const markupEntries: string[] = [];
  const lateEntries: string[] = [];
  const generatedTime = generatedAt !== undefined && !Number.isNaN(Date.parse(generatedAt)) ? Date.parse(generatedAt) : undefined;
  let duplicates = 0;
  let firstDuplicate = '';

  domaines.forEach((d, index) => {
    const pos = `entry ${index + 1}`;
    if (!d || typeof d !== 'object') {
      warnings.push(`${pos}: empty <Domaine>; skipped`);
      return;
    }
    const o = d as Record<string, unknown>;
    const domain = textOf(o['Nom'])?.trim(); // ANS: Nom = the MSSanté mail domain
    if (!domain) {
      warnings.push(`${pos}: missing, empty or repeated <Nom>; skipped`);
      return;
    }
    const operatorDn = textOf(o['DNCertificatOperateur'])?.trim(); // ANS: subject DN of the operator's server certificate
    if (!operatorDn) {
      warnings.push(`${pos} (${domain}): missing, empty or repeated <DNCertificatOperateur>; skipped`);
      return;
    }
    let key = dnKeyCache.get(operatorDn);
    if (key === undefined) {
      try {
        key = normalizeDn(operatorDn);
        if (key === '') throw new DnError('empty DN', operatorDn);
      } catch (err) {
        if (!(err instanceof DnError)) throw err;
        key = err;
      }
      dnKeyCache.set(operatorDn, key);
    }
    if (key instanceof DnError) {
      warnings.push(`${pos} (${domain}): operator DN ${JSON.stringify(operatorDn)} cannot be parsed (${key.message}); skipped`);
      return;
    }
    if (!DOMAIN_RE.test(domain)) {
      warnings.push(`${pos}: domain ${JSON.stringify(domain)} is not a valid DNS name; kept as published`);
    }

    const entry: TrustEntry = { domain, operatorDn };
    const description = textOf(o['Description']);
    if (description !== undefined) entry.description = description;
    const responsables = asArray(o['ResponsableContact']).map(textOf).filter((x): x is string => x !== undefined);
    if (responsables.length) entry.responsables = responsables;
    const support = textOf(o['SupportContact']);
    if (support !== undefined) entry.support = support;
    const dateMaj = textOf(o['DateMAJ']);
    if (dateMaj !== undefined) entry.dateMaj = dateMaj;
    // Seen in the real lists: contacts such as "ResponsableContact>06 …" (escaped tag debris).
    if (/[<>]/.test(`${responsables.join(' ')} ${support ?? ''}`)) markupEntries.push(`${index + 1} (${domain})`);
    if (dateMaj !== undefined && generatedTime !== undefined && Date.parse(dateMaj) > generatedTime) {
      lateEntries.push(`${index + 1} (${domain}, ${dateMaj})`);
    }
    entries.push(entry);

    let spellings = spellingsByKey.get(key);
    if (!spellings) spellingsByKey.set(key, (spellings = new Set()));
    spellings.add(operatorDn);

    const dkey = normalizeDomain(domain);
    let rec = byDomain.get(dkey);
    if (!rec) byDomain.set(dkey, (rec = { dns: [], keys: new Set() }));
    if (rec.keys.has(key)) {
      duplicates++;
      firstDuplicate ||= `${domain} / ${operatorDn}`;
    } else {
      rec.keys.add(key);
      rec.dns.push(operatorDn);
    }
  });

  if (entries.length === 0) warnings.push('the list has no usable <Domaine> entry');
  const some = (xs: string[]): string => (xs.length > 8 ? `${xs.slice(0, 8).join(', ')}, …` : xs.join(', '));
  if (markupEntries.length) {
    warnings.push(`${markupEntries.length} entr${markupEntries.length > 1 ? 'ies have' : 'y has'} contact fields containing escaped markup (kept as published): entries ${some(markupEntries)}`);
  }
  if (lateEntries.length) {
    warnings.push(`${lateEntries.length} entr${lateEntries.length > 1 ? 'ies have' : 'y has'} a <DateMAJ> later than <DateDeGeneration> ${generatedAt}: entries ${some(lateEntries)}`);
  }
  if (duplicates) {
    warnings.push(`${duplicates} entr${duplicates > 1 ? 'ies repeat' : 'y repeats'} a (domain, operator DN) pair already listed (first: ${firstDuplicate})`);
  }
  const variants = [...spellingsByKey.values()].filter((s) => s.size > 1);
  if (variants.length) {
    const first = [...variants[0]!].map((s) => JSON.stringify(s)).join(' and ');
    warnings.push(`${variants.length} operator DN${variants.length > 1 ? 's are' : ' is'} written in several ways that are equal as distinguished names (e.g. ${first})`);
  }

  let dnSpellings = 0;
  for (const s of spellingsByKey.values()) dnSpellings += s.size;

  return {
    ...(generatedAt !== undefined ? { generatedAt } : {}),
    entries,
    domains: byDomain.size,
    dns: spellingsByKey.size,
    dnSpellings,
    warnings,
    lookup(domain: string): string[] {
      return [...(byDomain.get(normalizeDomain(domain))?.dns ?? [])];
    },
    isListed(domain: string): boolean {
      return byDomain.has(normalizeDomain(domain));
    },
    isDnListedFor(domain: string, dn: string | readonly Rdn[]): boolean {
      const rec = byDomain.get(normalizeDomain(domain));
      if (!rec) return false;
      let k: string;
      try {
        k = normalizeDn(dn);
      } catch (err) {
        if (err instanceof DnError) return false;
        throw err;
      }
      return k !== '' && rec.keys.has(k);
    },
  };
}

// ---------------------------------------------------------------------------------
// Writing (a local trust space publishing its own list in the ANS format)

export interface TrustListBuildEntry {
  domain: string;
  operatorDn: string;
  description?: string;
  responsables?: string[];
  support?: string;
  /** DateMAJ; defaults to generatedAt. */
  dateMaj?: Date | string;
}

function isoSeconds(d: Date): string {
  if (Number.isNaN(d.getTime())) throw new TrustListError('invalid date');
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z'); // the ANS writes 2025-03-13T14:54:10Z
}

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  format: true,
  indentBy: '    ',
  suppressEmptyNode: false,
});

/**
 * Builds a trust list document in the ANS format (same root, namespace, element names
 * and order as listeblanchemssante.xml, properly closed). Every operator DN must parse.
 */
export function buildTrustListXml(entries: readonly TrustListBuildEntry[], generatedAt: Date = new Date()): string {
  const generated = isoSeconds(generatedAt);
  const domaines = entries.map((e, i) => {
    const domain = e.domain?.trim();
    if (!domain) throw new TrustListError(`entry ${i + 1}: empty domain`);
    const dn = e.operatorDn?.trim();
    try {
      if (!dn || normalizeDn(dn) === '') throw new DnError('empty DN', dn ?? '');
    } catch (err) {
      if (err instanceof DnError) throw new TrustListError(`entry ${i + 1} (${domain}): invalid operator DN: ${err.message}`);
      throw err;
    }
    const dateMaj = e.dateMaj === undefined ? generated : typeof e.dateMaj === 'string' ? e.dateMaj : isoSeconds(e.dateMaj);
    const el: Record<string, unknown> = {
      Nom: domain,
      Description: e.description ?? '',
      DNCertificatOperateur: dn,
    };
    if (e.responsables?.length) el['ResponsableContact'] = e.responsables;
    if (e.support !== undefined) el['SupportContact'] = e.support;
    el['DateMAJ'] = dateMaj;
    return el;
  });
  const xml = builder.build({
    '?xml': { '@_version': '1.0', '@_encoding': 'UTF-8' },
    [TRUST_LIST_ROOT]: {
      '@_xmlns': TRUST_LIST_NAMESPACE,
      DateDeGeneration: generated,
      ListeDomaines: domaines.length ? { Domaine: domaines } : '',
    },
  }) as string;
  return xml;
}
