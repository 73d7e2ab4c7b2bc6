// Builds an IHE XDM package strictly to the profile (IHE ITI TF-1 §16.1, TF-3 §4.2 and §4.3.1
// media structure; ANS MSSanté: IHE_XDM.ZIP, 8.3 upper-case names): README.TXT, INDEX.HTM,
// IHE_XDM/SUBSET01/METADATA.XML (ebRIM SubmitObjectsRequest with size and SHA-1 of every
// document) and the documents IHE_XDM/SUBSET01/DOC0001.XML, DOC0002.PDF, … XML is written by
// fast-xml-parser's XMLBuilder, the zip by fflate.
import { createHash, randomUUID as cryptoUuid } from 'node:crypto';
import { XMLBuilder, XMLValidator } from 'fast-xml-parser';
import { zipSync, type Zippable } from 'fflate';
import { readCdaHeader } from './cda.js';
import { INS_OID, NS_LCM, NS_RIM, UUID } from './ebrim.js';
import { XdmError } from './errors.js';
import type { XdmCode } from './read.js';

export interface XdmBuildDocument {
  /** Wanted file name; made 8.3 upper case (DOCnnnn.XML / .PDF when absent or unusable). */
  name?: string;
  mimeType: 'text/xml' | 'application/pdf';
  bytes: Uint8Array;
  title?: string;
  /** Defaults: the CDA's own code (LOINC) for a CDA; for a PDF, required. */
  typeCode?: XdmCode;
  classCode?: XdmCode;
  formatCode?: XdmCode;
  confidentialityCode?: XdmCode;
  healthcareFacilityTypeCode?: XdmCode;
  practiceSettingCode?: XdmCode;
  /** UTC; default: the package's `now`. */
  creationTime?: Date;
  languageCode?: string;
}

export interface XdmBuildPatient {
  /** INS matricule (NIR or NIA, 15 characters) */
  ins: string;
  /** INS OID: NIR 1.2.250.1.213.1.4.8, NIA …4.9, test …4.10 / …4.11 */
  oid: string;
  family: string;
  given: string;
  /** YYYY-MM-DD */
  birthDate: string;
  gender: 'M' | 'F' | 'U';
  /** Identity qualified (INS qualifiée): X-MSS-INS: O */
  qualified: boolean;
}

export interface XdmBuildAuthor {
  /** RPPS number (11 digits): written as the national id 8<RPPS> (ANS: idNatPs) */
  rpps?: string;
  family?: string;
  given?: string;
  institution?: { name: string; finess?: string };
  role?: string;
  specialty?: XdmCode;
  /** The author's MSSanté address */
  email?: string;
}

export interface XdmBuildInput {
  documents: XdmBuildDocument[];
  patient: XdmBuildPatient;
  author: XdmBuildAuthor;
  /** Title of the submission set */
  title?: string;
  /** Submission set sourceId (an OID of the sending system); default: Caducée's */
  sourceId?: string;
  intendedRecipients?: string[];
  contentTypeCode?: XdmCode;
  now?: Date;
  /** UUID source (default crypto.randomUUID); tests pass a seeded one for reproducible packages. */
  uuid?: () => string;
}

export interface XdmBuilt {
  zip: Uint8Array;
  submissionSetUniqueId: string;
  documents: { path: string; uniqueId: string; entryUuid: string; mimeType: string; size: number; hash: string; cdaCode?: string; typeCode: XdmCode }[];
  /** One value per CDA document, in order (X-MSS-CODECDA). */
  cdaCodes: string[];
}

/** Caducée's sourceId when the caller gives none (a UUID-derived OID, ITU-T X.667). */
export const CADUCEE_SOURCE_ID = uuidOid('6f0c1f9e-2a51-4f0b-9d3e-5cadcee00001');

/** ITU-T X.667 / RFC 4122: the OID 2.25.<UUID as an integer>. */
export function uuidOid(uuid: string): string {
  return `2.25.${BigInt(`0x${uuid.replace(/-/g, '')}`).toString(10)}`;
}

// French default codes (ANS CI-SIS JDV: J06 classCode, J57 confidentiality, J02 facility type,
// J04 practice setting; formatCode from IHE "mimeTypeSufficient" / XDS-SD for a PDF).
const DEFAULTS = {
  classCode: { code: '10', codingScheme: '1.2.250.1.213.1.1.4.1', displayName: 'Compte rendu' },
  confidentialityCode: { code: 'N', codingScheme: '2.16.840.1.113883.5.25', displayName: 'Normal' },
  healthcareFacilityTypeCode: { code: 'SA01', codingScheme: '1.2.250.1.71.4.2.4', displayName: 'Etablissement Public de santé' },
  practiceSettingCode: { code: 'ETABLISSEMENT', codingScheme: '1.2.250.1.213.1.1.4.9', displayName: 'Etablissement de santé' },
  formatXml: { code: 'urn:ihe:iti:xds:2017:mimeTypeSufficient', codingScheme: '1.3.6.1.4.1.19376.1.2.3', displayName: 'Format de document non spécifié' },
  formatPdf: { code: 'urn:ihe:iti:xds-sd:pdf:2008', codingScheme: '1.3.6.1.4.1.19376.1.2.3', displayName: 'Document à corps non structuré en Pdf/A-1' },
  contentTypeCode: { code: '04', codingScheme: '1.2.250.1.213.1.1.4.12', displayName: 'Hospitalisation de jour' },
} satisfies Record<string, XdmCode>;

const INS_OIDS = new Set<string>(Object.values(INS_OID));

/** XDS DTM (ITI TF-3 §4.2.3.1.4): YYYYMMDDhhmmss in UTC. */
export function dtm(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');

/** An 8.3 upper-case file name (ISO 9660 level 1 characters: A–Z 0–9 _). */
function name83(wanted: string | undefined, fallback: string, ext: string, taken: Set<string>): string {
  if (wanted) {
    const dot = wanted.lastIndexOf('.');
    const base = (dot > 0 ? wanted.slice(0, dot) : wanted)
      .normalize('NFD')
      .replace(/[\u0300-\u036f]/g, '')
      .toUpperCase()
      .replace(/[^A-Z0-9_]/g, '')
      .slice(0, 8);
    const n = `${base}.${ext}`;
    if (base && !taken.has(n) && !['README', 'INDEX', 'METADATA'].includes(base)) return n;
  }
  if (!taken.has(`${fallback}.${ext}`)) return `${fallback}.${ext}`;
  for (let i = 1; ; i++) if (!taken.has(`DOC${String(i).padStart(4, '0')}.${ext}`)) return `DOC${String(i).padStart(4, '0')}.${ext}`;
}

const slot = (name: string, values: string[]) => ({ '@_name': name, 'rim:ValueList': { 'rim:Value': values } });
const nameEl = (value: string) => ({ 'rim:LocalizedString': { '@_value': value } });

function classification(randomUUID: () => string, scheme: string, object: string, c: XdmCode) {
  return {
    '@_id': `urn:uuid:${randomUUID()}`,
    '@_objectType': UUID.classification,
    '@_classificationScheme': scheme,
    '@_classifiedObject': object,
    '@_nodeRepresentation': c.code,
    'rim:Slot': [slot('codingScheme', [c.codingScheme ?? ''])],
    'rim:Name': nameEl(c.displayName ?? c.code),
  };
}

function externalIdentifier(randomUUID: () => string, scheme: string, object: string, value: string, name: string) {
  return {
    '@_id': `urn:uuid:${randomUUID()}`,
    '@_objectType': UUID.externalIdentifier,
    '@_identificationScheme': scheme,
    '@_registryObject': object,
    '@_value': value,
    'rim:Name': nameEl(name),
  };
}

function authorClassification(randomUUID: () => string, scheme: string, object: string, a: XdmBuildAuthor) {
  const slots = [];
  // XCN (ITI TF-3 Table 4.2.3.1.7-2); ANS: idNatPs = 8 + RPPS, assigning authority 1.2.250.1.71.4.2.1
  if (a.rpps || a.family) slots.push(slot('authorPerson', [`${a.rpps ? `8${a.rpps}` : ''}^${a.family ?? ''}^${a.given ?? ''}^^^^^^${a.rpps ? '&1.2.250.1.71.4.2.1&ISO' : ''}`]));
  // XON: name^^^^^&OID&ISO^IDNST^^^id (FINESS: 1.2.250.1.71.4.2.2)
  if (a.institution) slots.push(slot('authorInstitution', [`${a.institution.name}${a.institution.finess ? `^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1${a.institution.finess}` : ''}`]));
  if (a.role) slots.push(slot('authorRole', [a.role]));
  if (a.specialty) slots.push(slot('authorSpecialty', [`${a.specialty.code}^${a.specialty.displayName ?? ''}^${a.specialty.codingScheme ?? ''}`]));
  if (a.email) slots.push(slot('authorTelecommunication', [`^^Internet^${a.email}`]));
  return {
    '@_id': `urn:uuid:${randomUUID()}`,
    '@_objectType': UUID.classification,
    '@_classificationScheme': scheme,
    '@_classifiedObject': object,
    '@_nodeRepresentation': '',
    'rim:Slot': slots,
  };
}

const xml = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', format: true, suppressEmptyNode: true, processEntities: true });

/** Builds IHE_XDM.ZIP. Throws XdmError('bad-input') on unusable input (no document, CDA patient mismatch, bad INS). */
export function buildXdm(input: XdmBuildInput): XdmBuilt {
  const randomUUID = input.uuid ?? cryptoUuid;
  const { patient } = input;
  const now = input.now ?? new Date();
  if (input.documents.length === 0) throw new XdmError('bad-input', 'an XDM package needs at least one document');
  if (!/^[0-9A-Za-z]{13,15}$/.test(patient.ins)) throw new XdmError('bad-input', `INS "${patient.ins}" is not a 13–15 character matricule`);
  if (!INS_OIDS.has(patient.oid)) throw new XdmError('bad-input', `OID ${patient.oid} is not an INS OID (NIR 1.2.250.1.213.1.4.8, NIA …4.9, test …4.10/…4.11)`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(patient.birthDate)) throw new XdmError('bad-input', `birth date "${patient.birthDate}" is not YYYY-MM-DD`);
  if (!patient.family.trim() || !patient.given.trim()) throw new XdmError('bad-input', 'the patient needs a family name and a given name');
  const cx = `${patient.ins}^^^&${patient.oid}&ISO`; // ITI TF-3 §4.2.3.1.7 (CX)
  const ssId = `urn:uuid:${randomUUID()}`;
  const ssUnique = uuidOid(randomUUID());

  const taken = new Set<string>();
  const files: Zippable = {};
  const objects: object[] = [];
  const associations: object[] = [];
  const built: XdmBuilt['documents'] = [];
  const cdaCodes: string[] = [];
  input.documents.forEach((d, i) => {
    const ext = d.mimeType === 'application/pdf' ? 'PDF' : 'XML';
    let typeCode = d.typeCode;
    let title = d.title;
    let cdaCode: string | undefined;
    if (d.mimeType === 'text/xml') {
      let h;
      const text = new TextDecoder().decode(d.bytes);
      const valid = XMLValidator.validate(text); // strict on what we send: the whole document is well-formed
      if (valid !== true) throw new XdmError('bad-input', `document ${i + 1} is not well-formed XML: ${valid.err.msg} (line ${valid.err.line})`);
      try {
        h = readCdaHeader(text, `document ${i + 1}`);
      } catch (e) {
        throw new XdmError('bad-input', `document ${i + 1} is not well-formed XML: ${(e as Error).message}`);
      }
      if (!h) throw new XdmError('bad-input', `document ${i + 1} (text/xml) is not a CDA R2 ClinicalDocument`);
      if (!h.code) throw new XdmError('bad-input', `document ${i + 1}: the CDA has no ClinicalDocument/code`);
      if (h.patient.ins !== undefined && (h.patient.ins !== patient.ins || h.patient.oid !== patient.oid))
        throw new XdmError('bad-input', `document ${i + 1}: the CDA patient ${h.patient.ins} (${h.patient.oid}) is not the patient ${patient.ins} (${patient.oid})`);
      cdaCode = h.code;
      cdaCodes.push(h.code);
      typeCode ??= { code: h.code, ...(h.codeSystem ? { codingScheme: h.codeSystem } : {}), displayName: h.displayName ?? h.title ?? h.code };
      title ??= h.title ?? h.displayName;
    }
    if (!typeCode) throw new XdmError('bad-input', `document ${i + 1} (${d.mimeType}) needs a typeCode`);
    title ??= input.title ?? typeCode.displayName ?? 'Document';
    const fileName = name83(d.name, `DOC${String(i + 1).padStart(4, '0')}`, ext, taken);
    taken.add(fileName);
    const path = `IHE_XDM/SUBSET01/${fileName}`;
    files[path] = [d.bytes, { level: d.mimeType === 'application/pdf' ? 0 : 6 }];
    const id = `urn:uuid:${randomUUID()}`;
    const uniqueId = uuidOid(randomUUID());
    const hash = sha1(d.bytes);
    const formatCode = d.formatCode ?? (d.mimeType === 'application/pdf' ? DEFAULTS.formatPdf : DEFAULTS.formatXml);
    objects.push({
      'rim:ExtrinsicObject': {
        '@_id': id,
        '@_objectType': UUID.documentEntryStable,
        '@_mimeType': d.mimeType,
        '@_status': 'urn:oasis:names:tc:ebxml-regrep:StatusType:Approved',
        'rim:Slot': [
          slot('creationTime', [dtm(d.creationTime ?? now)]),
          slot('hash', [hash]),
          slot('languageCode', [d.languageCode ?? 'fr-FR']),
          slot('size', [String(d.bytes.length)]),
          slot('sourcePatientId', [cx]),
          slot('sourcePatientInfo', [
            `PID-3|${cx}`,
            `PID-5|${patient.family.toUpperCase()}^${patient.given}^^^^^L`,
            `PID-7|${patient.birthDate.replace(/-/g, '')}`,
            `PID-8|${patient.gender}`,
          ]),
          slot('URI', [fileName]),
        ],
        'rim:Name': nameEl(title),
        'rim:Classification': [
          authorClassification(randomUUID, UUID.deAuthor, id, input.author),
          classification(randomUUID, UUID.deClassCode, id, d.classCode ?? DEFAULTS.classCode),
          classification(randomUUID, UUID.deConfidentialityCode, id, d.confidentialityCode ?? DEFAULTS.confidentialityCode),
          classification(randomUUID, UUID.deFormatCode, id, formatCode),
          classification(randomUUID, UUID.deHealthcareFacilityTypeCode, id, d.healthcareFacilityTypeCode ?? DEFAULTS.healthcareFacilityTypeCode),
          classification(randomUUID, UUID.dePracticeSettingCode, id, d.practiceSettingCode ?? DEFAULTS.practiceSettingCode),
          classification(randomUUID, UUID.deTypeCode, id, typeCode),
        ],
        'rim:ExternalIdentifier': [externalIdentifier(randomUUID, UUID.dePatientId, id, cx, 'XDSDocumentEntry.patientId'), externalIdentifier(randomUUID, UUID.deUniqueId, id, uniqueId, 'XDSDocumentEntry.uniqueId')],
      },
    });
    associations.push({
      '@_id': `urn:uuid:${randomUUID()}`,
      '@_associationType': UUID.hasMember,
      '@_sourceObject': ssId,
      '@_targetObject': id,
      'rim:Slot': [slot('SubmissionSetStatus', ['Original'])],
    });
    built.push({ path, uniqueId, entryUuid: id, mimeType: d.mimeType, size: d.bytes.length, hash, typeCode, ...(cdaCode ? { cdaCode } : {}) });
  });

  const ssTitle = input.title ?? built[0]!.typeCode.displayName ?? 'Documents';
  const registryPackage = {
    '@_id': ssId,
    '@_objectType': 'urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage',
    'rim:Slot': [slot('submissionTime', [dtm(now)]), ...(input.intendedRecipients?.length ? [slot('intendedRecipient', input.intendedRecipients.map((r) => `|^^Internet^${r}`))] : [])],
    'rim:Name': nameEl(ssTitle),
    'rim:Classification': [authorClassification(randomUUID, UUID.ssAuthor, ssId, input.author), classification(randomUUID, UUID.ssContentTypeCode, ssId, input.contentTypeCode ?? DEFAULTS.contentTypeCode)],
    'rim:ExternalIdentifier': [
      externalIdentifier(randomUUID, UUID.ssUniqueId, ssId, ssUnique, 'XDSSubmissionSet.uniqueId'),
      externalIdentifier(randomUUID, UUID.ssSourceId, ssId, input.sourceId ?? CADUCEE_SOURCE_ID, 'XDSSubmissionSet.sourceId'),
      externalIdentifier(randomUUID, UUID.ssPatientId, ssId, cx, 'XDSSubmissionSet.patientId'),
    ],
  };
  const ssClassification = { '@_id': `urn:uuid:${randomUUID()}`, '@_objectType': UUID.classification, '@_classifiedObject': ssId, '@_classificationNode': UUID.submissionSetNode };
  const metadata = xml.build({
    '?xml': { '@_version': '1.0', '@_encoding': 'UTF-8' },
    'lcm:SubmitObjectsRequest': {
      '@_xmlns:lcm': NS_LCM,
      '@_xmlns:rim': NS_RIM,
      'rim:RegistryObjectList': {
        'rim:RegistryPackage': registryPackage,
        'rim:Classification': ssClassification,
        'rim:ExtrinsicObject': objects.map((o) => (o as { 'rim:ExtrinsicObject': object })['rim:ExtrinsicObject']),
        'rim:Association': associations,
      },
    },
  }) as string;
  files['IHE_XDM/SUBSET01/METADATA.XML'] = [new TextEncoder().encode(metadata), { level: 9 }];

  // ITI TF-1 §16.1.2 / TF-3 §4.3.1.3: README.TXT (the sender) and INDEX.HTM (links to the contents).
  const who = [input.author.given, input.author.family].filter(Boolean).join(' ') || input.author.institution?.name || 'Expéditeur';
  const readme = [
    'Paquet IHE XDM (IHE ITI, Cross-Enterprise Document Media Interchange)',
    '',
    `Expéditeur : ${who}${input.author.email ? ` <${input.author.email}>` : ''}`,
    `Logiciel : Caducée (messagerie MSSanté)`,
    `Date : ${now.toISOString()}`,
    '',
    'Contenu :',
    ...built.map((d) => `  ${d.path}`),
    '  IHE_XDM/SUBSET01/METADATA.XML',
    '',
  ].join('\r\n');
  files['README.TXT'] = [new TextEncoder().encode(readme), { level: 9 }];
  const index = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', format: true, processEntities: true }).build({
    html: {
      '@_xmlns': 'http://www.w3.org/1999/xhtml',
      '@_lang': 'fr',
      head: { meta: { '@_charset': 'utf-8' }, title: 'IHE XDM' },
      body: {
        h1: ssTitle,
        p: `Patient : ${patient.family.toUpperCase()} ${patient.given}, né(e) le ${frenchDate(patient.birthDate)}`,
        ul: {
          li: [
            ...built.map((d, i) => ({ a: { '@_href': d.path, '#text': input.documents[i]!.title ?? d.typeCode.displayName ?? d.path } })),
            { a: { '@_href': 'IHE_XDM/SUBSET01/METADATA.XML', '#text': 'Métadonnées XDS' } },
            { a: { '@_href': 'README.TXT', '#text': 'README.TXT' } },
          ],
        },
      },
    },
  }) as string;
  files['INDEX.HTM'] = [new TextEncoder().encode(`<!DOCTYPE html>\n${index}`), { level: 9 }];

  const zip = zipSync(files, { mtime: now });
  return { zip, submissionSetUniqueId: ssUnique, documents: built, cdaCodes };
}

/** YYYY-MM-DD → DD/MM/YYYY */
export function frenchDate(iso: string): string {
  const [y, m, d] = iso.split('-');
  return `${d}/${m}/${y}`;
}
