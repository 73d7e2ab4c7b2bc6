// Reads an IHE XDM package (IHE ITI TF-1 §16, TF-3 §4.2; ANS CI-SIS "volet partage de documents
// de santé" for the French codes): unzip safely (zip.ts), find IHE_XDM/SUBSETnn/METADATA.XML,
// parse the ebRIM SubmitObjectsRequest, and return the documents with their metadata, their
// bytes, and the checks of size and SHA-1 against the metadata.
// Real packages deviate from the profile in many ways; each deviation is reported as a warning
// with its place, and only what is unsafe or unreadable throws (XdmError).
import { createHash } from 'node:crypto';
import { readCdaHeader, type CdaPatient } from './cda.js';
import { attr, decodeXmlBytes, findDeep, insKind, kid, kids, localized, parseXml, slots, UUID, type InsKind, type XNode } from './ebrim.js';
import { XdmError } from './errors.js';
import { DEFAULT_ZIP_LIMITS, safeUnzip, type ZipEntry, type ZipLimits, type ZipWarning } from './zip.js';

export type XdmWarning = ZipWarning;

export interface XdmCode {
  code: string;
  codingScheme?: string;
  displayName?: string;
}

export interface XdmPatientId {
  id: string;
  oid: string;
  kind: InsKind;
}

export interface XdmAuthor {
  person?: string;
  institutions: string[];
  roles: string[];
  specialties: string[];
  telecoms: string[];
}

export interface XdmDocument {
  /** Path of the document file inside the archive (normalised, as stored otherwise). */
  path: string;
  entryUuid?: string;
  uniqueId?: string;
  title?: string;
  mimeType?: string;
  /** Real size and SHA-1 (hex) of the bytes; `declaredSize`/`declaredHash` from the metadata. */
  size: number;
  hash: string;
  declaredSize?: number;
  declaredHash?: string;
  classCode?: XdmCode;
  typeCode?: XdmCode;
  formatCode?: XdmCode;
  confidentialityCode?: XdmCode;
  healthcareFacilityTypeCode?: XdmCode;
  practiceSettingCode?: XdmCode;
  patientId?: XdmPatientId;
  sourcePatientId?: string;
  creationTime?: string;
  languageCode?: string;
  authors: XdmAuthor[];
  cda?: { code?: string; codeSystem?: string; displayName?: string; title?: string; patient: CdaPatient };
  bytes: Uint8Array;
}

export interface XdmSubmissionSet {
  entryUuid?: string;
  uniqueId?: string;
  sourceId?: string;
  patientId?: XdmPatientId;
  submissionTime?: string;
  title?: string;
  contentTypeCode?: XdmCode;
  authors: XdmAuthor[];
  intendedRecipients: string[];
}

export interface XdmPackage {
  documents: XdmDocument[];
  submissionSet: XdmSubmissionSet;
  /** Path of the METADATA.XML read (the first subset when there are several). */
  metadataPath: string;
  warnings: XdmWarning[];
}

export interface XdmReadLimits extends ZipLimits {
  /** Largest METADATA.XML parsed (real ones are kilobytes; parsing is what takes time). */
  maxMetadataBytes: number;
  /** Most subsets (METADATA.XML files) read; the others are reported and left out. */
  maxSubsets: number;
}
export const DEFAULT_XDM_LIMITS: XdmReadLimits = { ...DEFAULT_ZIP_LIMITS, maxMetadataBytes: 4 * 1024 * 1024, maxSubsets: 20 };

const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');

/** HL7 v2 CX `id^^^&oid&ISO` (ITI TF-3 §4.2.3.1.7 patientId) → its parts. */
export function parseCx(cx: string): XdmPatientId | undefined {
  const m = /^([^^]*)\^[^^]*\^[^^]*\^([^^]*)/.exec(cx.trim());
  if (!m) return undefined;
  const aa = m[2]!.split('&');
  const oid = aa[1] ?? '';
  if (!m[1] || !oid) return undefined;
  return { id: m[1], oid, kind: insKind(oid) };
}

interface Subset {
  metadata: ZipEntry;
  /** Prefix of the subset's files: 'IHE_XDM/SUBSET01/' (or 'IHE_XDM/SUBSET01' when the '/' is missing). */
  prefix: string;
}

/** Finds the METADATA.XML files and reports how their place deviates from IHE_XDM/SUBSETnn/. */
function findSubsets(entries: ZipEntry[], warnings: XdmWarning[]): Subset[] {
  const subsets: Subset[] = [];
  for (const e of entries) {
    if (e.directory) continue;
    const segs = e.name.split('/');
    const last = segs[segs.length - 1]!;
    let dir: string[];
    let prefix: string;
    if (/^METADATA\.XML$/i.test(last)) {
      dir = segs.slice(0, -1);
      prefix = dir.length ? `${dir.join('/')}/` : '';
    } else {
      const m = /^(SUBSET[^/]*?)METADATA\.XML$/i.exec(last);
      if (!m) continue;
      dir = [...segs.slice(0, -1), m[1]!];
      prefix = [...segs.slice(0, -1), m[1]!].join('/');
      warnings.push({ place: e.rawName, message: `no "/" between ${m[1]} and METADATA.XML (read as ${dir.join('/')}/METADATA.XML)` });
    }
    const xdmAt = dir.findIndex((d) => d.toUpperCase() === 'IHE_XDM');
    if (dir.length === 0) warnings.push({ place: e.rawName, message: 'METADATA.XML at the archive root, not in IHE_XDM/SUBSETnn/' });
    else if (xdmAt === -1) warnings.push({ place: e.rawName, message: 'no IHE_XDM/ root folder' });
    else if (xdmAt > 0) warnings.push({ place: e.rawName, message: `IHE_XDM/ is inside a wrapper folder ${dir.slice(0, xdmAt).join('/')}/` });
    if (xdmAt !== -1 && xdmAt !== dir.length - 2) warnings.push({ place: e.rawName, message: 'METADATA.XML is not directly in a subset folder of IHE_XDM/' });
    const subset = dir[dir.length - 1];
    if (subset !== undefined && !/^SUBSET\d+$/i.test(subset)) warnings.push({ place: e.rawName, message: `subset folder "${subset}" is not named SUBSETnn` });
    subsets.push({ metadata: e, prefix });
  }
  return subsets.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}

function code(c: XNode | undefined): XdmCode | undefined {
  if (!c) return undefined;
  const value = attr(c, 'nodeRepresentation');
  if (value === undefined) return undefined;
  const scheme = slots(c).get('codingScheme')?.[0];
  const display = localized(c, 'Name');
  return { code: value, ...(scheme ? { codingScheme: scheme } : {}), ...(display ? { displayName: display } : {}) };
}

function author(c: XNode): XdmAuthor {
  const s = slots(c);
  const person = s.get('authorPerson')?.[0];
  return {
    ...(person ? { person } : {}),
    institutions: s.get('authorInstitution') ?? [],
    roles: s.get('authorRole') ?? [],
    specialties: s.get('authorSpecialty') ?? [],
    telecoms: s.get('authorTelecommunication') ?? [],
  };
}

/** The URI slot: one value, or the XDS.b long form `1|…`, `2|…` split over several values. */
function uriOf(values: string[] | undefined): string | undefined {
  if (!values || values.length === 0) return undefined;
  if (values.length === 1) return values[0];
  const parts = values.map((v) => /^(\d+)\|(.*)$/s.exec(v)).filter((m): m is RegExpExecArray => !!m);
  if (parts.length !== values.length) return values[0];
  return parts
    .sort((a, b) => Number(a[1]) - Number(b[1]))
    .map((m) => m[2])
    .join('');
}

/** Reads an XDM zip. Throws XdmError when unsafe or unreadable; every other deviation is a warning. */
export function readXdm(zip: Uint8Array, limits: Partial<XdmReadLimits> = {}): XdmPackage {
  const warnings: XdmWarning[] = [];
  const lim = { ...DEFAULT_XDM_LIMITS, ...limits };
  const entries = safeUnzip(zip, lim, warnings);
  const files = entries.filter((e) => !e.directory);
  for (const e of files) if (e.name !== e.name.toUpperCase()) warnings.push({ place: e.rawName, message: 'file name not in upper case (the profile uses upper-case 8.3 names)' });
  const byUpper = new Map(files.map((e) => [e.name.toUpperCase(), e]));

  const subsets = findSubsets(entries, warnings);
  if (subsets.length === 0) throw new XdmError('no-metadata', 'no IHE_XDM/SUBSETnn/METADATA.XML in the archive: not an XDM package');
  for (const s of subsets)
    if (s.metadata.bytes.length > lim.maxMetadataBytes) throw new XdmError('bad-metadata', `${s.metadata.rawName} is ${s.metadata.bytes.length} bytes, above the ${lim.maxMetadataBytes} read`);
  if (subsets.length > lim.maxSubsets) {
    warnings.push({ place: subsets[lim.maxSubsets]!.metadata.rawName, message: `${subsets.length} METADATA.XML files: only the first ${lim.maxSubsets} are read` });
    subsets.length = lim.maxSubsets;
  }
  if (subsets.length > 1) warnings.push({ place: subsets[1]!.metadata.rawName, message: `${subsets.length} METADATA.XML files: the documents of all are read, the submission set of the first` });

  const claimed = new Set<ZipEntry>(subsets.map((s) => s.metadata));
  const documents: XdmDocument[] = [];
  let submissionSet: XdmSubmissionSet | undefined;
  for (const subset of subsets) {
    const r = readSubset(subset, files, byUpper, claimed, warnings, lim.maxEntries);
    documents.push(...r.documents);
    submissionSet ??= r.submissionSet;
  }
  checkIndexFiles(files, byUpper, warnings);
  if (documents.length === 0) throw new XdmError('no-documents', `no document of ${subsets[0]!.metadata.rawName} could be found in the archive`);
  return { documents, submissionSet: submissionSet!, metadataPath: subsets[0]!.metadata.name, warnings };
}

function readSubset(subset: Subset, files: ZipEntry[], byUpper: Map<string, ZipEntry>, claimed: Set<ZipEntry>, warnings: XdmWarning[], maxDocuments: number) {
  const place = subset.metadata.rawName;
  const xml = decodeXmlBytes(subset.metadata.bytes, place, warnings);
  const root = parseXml(xml, place);
  let sor: XNode | undefined = kid(root, 'SubmitObjectsRequest');
  if (!sor) {
    const found = findDeep(root, 'SubmitObjectsRequest');
    if (found) {
      sor = found.node;
      warnings.push({ place, message: `SubmitObjectsRequest wrapped in ${found.path.slice(0, -1).join('/')} (read; the profile has it as the root element)` });
    }
  }
  let list = kid(sor, 'RegistryObjectList');
  if (!list) {
    const found = findDeep(root, 'RegistryObjectList');
    if (!found) throw new XdmError('bad-metadata', `${place} has no SubmitObjectsRequest/RegistryObjectList: not XDS metadata`);
    list = found.node;
    warnings.push({ place, message: `RegistryObjectList found at ${found.path.join('/')} without a SubmitObjectsRequest` });
  }

  // Top-level Classifications and ExternalIdentifiers, indexed once by the object they describe
  // (a filter per object would be objects × classifications on a crafted METADATA.XML).
  const index = (xs: XNode[], key: string) => {
    const m = new Map<string, XNode[]>();
    for (const x of xs) {
      const k = attr(x, key);
      if (k === undefined) continue;
      const list = m.get(k);
      if (list) list.push(x);
      else m.set(k, [x]);
    }
    return m;
  };
  const topClassifications = index(kids(list, 'Classification'), 'classifiedObject');
  const topIdentifiers = index(kids(list, 'ExternalIdentifier'), 'registryObject');
  const classificationsOf = (obj: XNode, id: string | undefined) => [...kids(obj, 'Classification'), ...((id && topClassifications.get(id)) || [])];
  const identifiersOf = (obj: XNode, id: string | undefined) => [...kids(obj, 'ExternalIdentifier'), ...((id && topIdentifiers.get(id)) || [])];
  const byScheme = (cs: XNode[], scheme: string) => cs.filter((c) => attr(c, 'classificationScheme') === scheme);
  const identifier = (xs: XNode[], scheme: string, name: string) =>
    attr(
      xs.find((x) => attr(x, 'identificationScheme') === scheme) ?? xs.find((x) => localized(x, 'Name') === name),
      'value',
    );
  const patient = (cx: string | undefined, where: string): XdmPatientId | undefined => {
    if (cx === undefined) return undefined;
    const p = parseCx(cx);
    if (!p) warnings.push({ place: where, message: `patientId "${cx}" is not an HL7 CX id^^^&OID&ISO` });
    return p;
  };

  // Submission set: the RegistryPackage classified as one (ITI TF-3 §4.2.1.2).
  const packages = kids(list, 'RegistryPackage').slice(0, 100); // a package has one submission set; crafted lists stop here
  const ssNodeOf = (p: XNode) => classificationsOf(p, attr(p, 'id')).some((c) => attr(c, 'classificationNode') === UUID.submissionSetNode);
  let ss = packages.find(ssNodeOf);
  if (!ss && packages.length) {
    ss = packages[0];
    warnings.push({ place: `${place} RegistryPackage ${attr(ss, 'id') ?? ''}`.trim(), message: 'no RegistryPackage is classified as a SubmissionSet: the first one is read as the submission set' });
  }
  if (!ss) warnings.push({ place, message: 'no SubmissionSet RegistryPackage' });
  const ssId = ss ? attr(ss, 'id') : undefined;
  const ssIdents = ss ? identifiersOf(ss, ssId) : [];
  const ssClass = ss ? classificationsOf(ss, ssId) : [];
  const ssSlots = slots(ss);
  const submissionSet: XdmSubmissionSet = {
    ...(ssId ? { entryUuid: ssId } : {}),
    ...opt('uniqueId', identifier(ssIdents, UUID.ssUniqueId, 'XDSSubmissionSet.uniqueId')),
    ...opt('sourceId', identifier(ssIdents, UUID.ssSourceId, 'XDSSubmissionSet.sourceId')),
    ...opt('patientId', patient(identifier(ssIdents, UUID.ssPatientId, 'XDSSubmissionSet.patientId'), `${place} SubmissionSet patientId`)),
    ...opt('submissionTime', ssSlots.get('submissionTime')?.[0]),
    ...opt('title', localized(ss, 'Name')),
    ...opt('contentTypeCode', code(byScheme(ssClass, UUID.ssContentTypeCode)[0])),
    authors: byScheme(ssClass, UUID.ssAuthor).map(author),
    intendedRecipients: ssSlots.get('intendedRecipient') ?? [],
  };

  const subsetFiles = files.filter((f) => f.name.toUpperCase().startsWith(subset.prefix.toUpperCase()) && !claimed.has(f));
  const documents: XdmDocument[] = [];
  const pending: { eo: XNode; where: string; doc: Omit<XdmDocument, 'bytes' | 'size' | 'hash' | 'path'>; declaredHash?: string; declaredSize?: number }[] = [];
  const extrinsic = kids(list, 'ExtrinsicObject');
  // Each DocumentEntry needs a file and the archive holds at most maxEntries: more is not a package.
  if (extrinsic.length > maxDocuments) throw new XdmError('bad-metadata', `${place} lists ${extrinsic.length} DocumentEntries, more than the ${maxDocuments} files an archive may hold`);
  for (const eo of extrinsic) {
    const id = attr(eo, 'id');
    const where = `${place} DocumentEntry ${id ?? '(no id)'}`;
    const objectType = attr(eo, 'objectType');
    if (objectType !== undefined && objectType !== UUID.documentEntryStable) warnings.push({ place: where, message: `objectType ${objectType} is not a stable DocumentEntry` });
    const s = slots(eo);
    const cs = classificationsOf(eo, id);
    const xs = identifiersOf(eo, id);
    const sizeText = s.get('size')?.[0];
    const hashText = s.get('hash')?.[0];
    let declaredSize: number | undefined;
    if (sizeText === undefined) warnings.push({ place: where, message: 'no size slot' });
    else if (!/^\d{1,15}$/.test(sizeText.trim())) warnings.push({ place: where, message: `size slot "${sizeText}" is not a number` });
    else declaredSize = Number(sizeText.trim());
    let declaredHash: string | undefined;
    if (hashText === undefined) warnings.push({ place: where, message: 'no hash slot' });
    else if (!/^[0-9a-fA-F]{40}$/.test(hashText.trim())) warnings.push({ place: where, message: `hash slot "${hashText}" is not a SHA-1 in hex` });
    else declaredHash = hashText.trim().toLowerCase();
    const doc = {
      ...opt('entryUuid', id),
      ...opt('uniqueId', identifier(xs, UUID.deUniqueId, 'XDSDocumentEntry.uniqueId')),
      ...opt('title', localized(eo, 'Name')),
      ...opt('mimeType', attr(eo, 'mimeType')),
      ...opt('declaredSize', declaredSize),
      ...opt('declaredHash', declaredHash),
      ...opt('classCode', code(byScheme(cs, UUID.deClassCode)[0])),
      ...opt('typeCode', code(byScheme(cs, UUID.deTypeCode)[0])),
      ...opt('formatCode', code(byScheme(cs, UUID.deFormatCode)[0])),
      ...opt('confidentialityCode', code(byScheme(cs, UUID.deConfidentialityCode)[0])),
      ...opt('healthcareFacilityTypeCode', code(byScheme(cs, UUID.deHealthcareFacilityTypeCode)[0])),
      ...opt('practiceSettingCode', code(byScheme(cs, UUID.dePracticeSettingCode)[0])),
      ...opt('patientId', patient(identifier(xs, UUID.dePatientId, 'XDSDocumentEntry.patientId'), `${where} patientId`)),
      ...opt('sourcePatientId', s.get('sourcePatientId')?.[0]),
      ...opt('creationTime', s.get('creationTime')?.[0]),
      ...opt('languageCode', s.get('languageCode')?.[0]),
      authors: byScheme(cs, UUID.deAuthor).map(author),
    };
    if (!doc.mimeType) warnings.push({ place: where, message: 'no mimeType attribute' });
    pending.push({ eo, where, doc, declaredHash, declaredSize });
  }
  if (pending.length === 0) warnings.push({ place, message: 'no ExtrinsicObject (DocumentEntry) in the metadata' });

  const baseNames = new Map<ZipEntry, string>();
  const baseName = (f: ZipEntry) => baseNames.get(f) ?? baseNames.set(f, f.name.toUpperCase().split('/').pop()!).get(f)!;
  // Locate each document's file: the URI slot, relative to the subset folder (ITI TF-3 §4.2.3.2.24).
  const located = new Map<number, ZipEntry>();
  const take = (i: number, f: ZipEntry) => {
    located.set(i, f);
    claimed.add(f);
  };
  pending.forEach((p, i) => {
    const uri = uriOf(slots(p.eo).get('URI'));
    if (uri === undefined) {
      warnings.push({ place: p.where, message: 'no URI slot: the file is looked for by hash, then by order' });
      return;
    }
    const rel = uri.replace(/\\/g, '/').replace(/^\.\//, '');
    const exact = byUpper.get(`${subset.prefix}${rel}`.toUpperCase()) ?? (subset.prefix.endsWith('/') ? undefined : byUpper.get(`${subset.prefix}/${rel}`.toUpperCase()));
    if (exact && !claimed.has(exact)) return take(i, exact);
    const base = rel.split('/').pop()!.toUpperCase();
    const other = files.find((f) => !claimed.has(f) && baseName(f) === base);
    if (other) {
      warnings.push({ place: p.where, message: `URI "${uri}" not found beside METADATA.XML; ${other.rawName} of the same name is read` });
      return take(i, other);
    }
    warnings.push({ place: p.where, message: `URI "${uri}" names no file of the archive` });
  });
  // Each file hashed once, however many entries look for theirs (no quadratic hashing).
  const hashes = new Map<ZipEntry, string>();
  const hashOf = (x: ZipEntry) => hashes.get(x) ?? hashes.set(x, sha1(x.bytes)).get(x)!;
  pending.forEach((p, i) => {
    if (located.has(i) || !p.declaredHash) return;
    const f = subsetFiles.find((x) => !claimed.has(x) && hashOf(x) === p.declaredHash);
    if (f) {
      warnings.push({ place: p.where, message: `file found by its hash: ${f.rawName}` });
      take(i, f);
    }
  });
  const unclaimed = subsetFiles.filter((f) => !claimed.has(f) && !/^(README\.TXT|INDEX\.HTM)$/i.test(f.name.split('/').pop()!));
  const missing = pending.map((_, i) => i).filter((i) => !located.has(i));
  if (missing.length && missing.length === unclaimed.length)
    missing.forEach((i, k) => {
      warnings.push({ place: pending[i]!.where, message: `file taken by order in the subset folder: ${unclaimed[k]!.rawName}` });
      take(i, unclaimed[k]!);
    });

  pending.forEach((p, i) => {
    const f = located.get(i);
    if (!f) {
      warnings.push({ place: p.where, message: 'document file not found: the document is left out' });
      return;
    }
    const hash = hashOf(f);
    if (p.declaredSize !== undefined && p.declaredSize !== f.bytes.length) warnings.push({ place: p.where, message: `size slot says ${p.declaredSize} bytes, ${f.rawName} has ${f.bytes.length}` });
    if (p.declaredHash !== undefined && p.declaredHash !== hash) warnings.push({ place: p.where, message: `hash slot says ${p.declaredHash}, ${f.rawName} has SHA-1 ${hash}` });
    const doc: XdmDocument = { path: f.name, ...p.doc, size: f.bytes.length, hash, bytes: f.bytes };
    const cda = readCda(doc, f, warnings);
    if (cda) doc.cda = cda;
    documents.push(doc);
  });
  return { documents, submissionSet };
}

function readCda(doc: XdmDocument, f: ZipEntry, warnings: XdmWarning[]): XdmDocument['cda'] {
  const xmlish = doc.mimeType === 'text/xml' || doc.mimeType === 'application/xml' || /\.XML$/i.test(f.name);
  if (!xmlish) return undefined;
  const head = f.bytes.subarray(0, 4096);
  if (!Buffer.from(head).toString('latin1').includes('ClinicalDocument')) return undefined;
  try {
    const h = readCdaHeader(decodeXmlBytes(f.bytes, f.rawName, warnings), f.rawName);
    if (!h) return undefined;
    const { code: c, codeSystem, displayName, title, patient } = h;
    if (c === undefined) warnings.push({ place: f.rawName, message: 'CDA without a ClinicalDocument/code' });
    if (doc.patientId && patient.ins && (patient.ins !== doc.patientId.id || patient.oid !== doc.patientId.oid))
      warnings.push({ place: f.rawName, message: `CDA patient ${patient.ins}^${patient.oid ?? ''} differs from the metadata patientId ${doc.patientId.id}^${doc.patientId.oid}` });
    return { ...opt('code', c), ...opt('codeSystem', codeSystem), ...opt('displayName', displayName), ...opt('title', title), patient };
  } catch (e) {
    warnings.push({ place: f.rawName, message: `CDA header not read: ${(e as Error).message}` });
    return undefined;
  }
}

/** README.TXT and INDEX.HTM: present (the profile requires them) and linking to files that exist. */
function checkIndexFiles(files: ZipEntry[], byUpper: Map<string, ZipEntry>, warnings: XdmWarning[]) {
  // Every folder of the archive (a link may name a folder): one set, so a long INDEX stays linear.
  const folders = new Set<string>();
  for (const k of byUpper.keys()) for (let i = k.indexOf('/'); i > 0; i = k.indexOf('/', i + 1)) folders.add(k.slice(0, i));
  for (const want of ['README.TXT', 'INDEX.HTM']) {
    const found = files.filter((f) => f.name.toUpperCase().split('/').pop() === want);
    if (found.length === 0) {
      warnings.push({ place: want, message: `no ${want} (required by the profile, optional on read)` });
      continue;
    }
    for (const f of found) {
      const dir = f.name.includes('/') ? f.name.slice(0, f.name.lastIndexOf('/') + 1) : '';
      const body = Buffer.from(f.bytes.subarray(0, 1024 * 1024)).toString('latin1');
      const links =
        want === 'INDEX.HTM'
          ? [...body.matchAll(/href\s*=\s*["']([^"'#?]+)/gi)].map((m) => m[1]!).filter((h) => !/^[a-z][a-z0-9+.-]*:/i.test(h))
          : [...body.matchAll(/IHE_XDM[\\/][A-Za-z0-9_./\\-]+/g)].map((m) => m[0].replace(/[.]+$/, ''));
      for (const link of new Set(links)) {
        let target: string;
        try {
          target = decodeURIComponent(link).replace(/\\/g, '/').replace(/^\.\//, '');
        } catch {
          target = link;
        }
        const full = (dir + target).toUpperCase().replace(/\/+$/, '');
        const bare = target.toUpperCase().replace(/\/+$/, '');
        if (!byUpper.has(full) && !byUpper.has(bare) && !folders.has(full) && !folders.has(bare))
          warnings.push({ place: f.rawName, message: `links to ${link}, which is not in the archive` });
      }
    }
  }
}

function opt<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined || value === '' ? {} : { [key]: value }) as { [P in K]?: V };
}
