// XDS metadata vocabulary (IHE ITI TF-3 §4.2, ebRIM 3.0) and the XML helpers of src/xdm.
import { XMLParser } from 'fast-xml-parser';
import { XdmError } from './errors.js';

export const NS_RIM = 'urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0';
export const NS_LCM = 'urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0';

// IHE ITI TF-3 §4.2.5 (registry object type / classification scheme / identification scheme UUIDs)
export const UUID = {
  documentEntryStable: 'urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1',
  submissionSetNode: 'urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd',
  deClassCode: 'urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a',
  deTypeCode: 'urn:uuid:f0306f51-975f-434e-a61c-c59651d33983',
  deFormatCode: 'urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d',
  deAuthor: 'urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d',
  deConfidentialityCode: 'urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f',
  deHealthcareFacilityTypeCode: 'urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1',
  dePracticeSettingCode: 'urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead',
  dePatientId: 'urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427',
  deUniqueId: 'urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab',
  ssUniqueId: 'urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8',
  ssSourceId: 'urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832',
  ssPatientId: 'urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446',
  ssContentTypeCode: 'urn:uuid:aa543740-bdda-424e-8c96-df4873be8500',
  ssAuthor: 'urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d',
  hasMember: 'urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember',
  classification: 'urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification',
  externalIdentifier: 'urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier',
} as const;

/** INS OIDs (ANS référentiel INS): NIR, NIA, and the two test OIDs. mssante.md §5. */
export const INS_OID = { NIR: '1.2.250.1.213.1.4.8', NIA: '1.2.250.1.213.1.4.9', TEST_NIR: '1.2.250.1.213.1.4.10', TEST_NIA: '1.2.250.1.213.1.4.11' } as const;

export type InsKind = 'NIR' | 'NIA' | 'test' | 'other';
export function insKind(oid: string): InsKind {
  if (oid === INS_OID.NIR) return 'NIR';
  if (oid === INS_OID.NIA) return 'NIA';
  if (oid === INS_OID.TEST_NIR || oid === INS_OID.TEST_NIA) return 'test';
  return 'other';
}

/** A parsed XML element: attributes under '@_name', children by local name (always arrays), text under '#text'. */
export type XNode = Record<string, unknown>;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  removeNSPrefix: true, // any namespace prefix (rim:, ns2:, none) reads the same
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true, // only the five XML entities and character references: a DOCTYPE is refused before parsing
  htmlEntities: false,
  jPath: false,
  isArray: (_name, _path, _leaf, isAttribute) => !isAttribute,
});

// CDA documents can be tens of MB (embedded PDF renditions in base64): only the header is read,
// the body (ClinicalDocument/component) is kept as unparsed text by fast-xml-parser's stopNodes,
// and the document is not validated as a whole — reading a 20 MB CDA stays well under a second.
const cdaParser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true,
  htmlEntities: false,
  stopNodes: ['ClinicalDocument.component'],
  isArray: (_name, _path, _leaf, isAttribute) => !isAttribute,
});

/** Parses a CDA's header (DOCTYPE refused; the body left unparsed). Throws XdmError('bad-metadata'). */
export function parseCdaXml(text: string, what: string): XNode {
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw new XdmError('bad-metadata', `${what} has a DOCTYPE or entity declaration (refused: entity expansion)`);
  try {
    return cdaParser.parse(text) as XNode;
  } catch (e) {
    throw new XdmError('bad-metadata', `${what} is not well-formed XML: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** Parses XML text (DOCTYPE refused: no entity expansion, no external entities). Throws XdmError('bad-metadata'). */
export function parseXml(text: string, what: string): XNode {
  if (/<!DOCTYPE/i.test(text)) throw new XdmError('bad-metadata', `${what} has a DOCTYPE declaration (refused: entity expansion)`);
  if (/<!ENTITY/i.test(text)) throw new XdmError('bad-metadata', `${what} declares an entity (refused)`);
  try {
    return parser.parse(text, true) as XNode;
  } catch (e) {
    throw new XdmError('bad-metadata', `${what} is not well-formed XML: ${(e as Error).message.split('\n')[0]}`);
  }
}

export function kids(node: XNode | undefined, name: string): XNode[] {
  const v = node?.[name];
  return Array.isArray(v) ? (v.filter((x) => x && typeof x === 'object') as XNode[]) : [];
}
export function kid(node: XNode | undefined, name: string): XNode | undefined {
  return kids(node, name)[0];
}
export function attr(node: XNode | undefined, name: string): string | undefined {
  const v = node?.[`@_${name}`];
  return typeof v === 'string' ? v : undefined;
}
/** Text of a leaf element given as a string or as an object with '#text'. */
export function text(node: unknown): string | undefined {
  if (typeof node === 'string') return node;
  if (node && typeof node === 'object' && !Array.isArray(node)) {
    const t = (node as XNode)['#text'];
    return typeof t === 'string' ? t : t === undefined ? '' : String(t);
  }
  return undefined;
}
export function texts(node: XNode | undefined, name: string): string[] {
  const v = node?.[name];
  if (!Array.isArray(v)) return [];
  return v.map(text).filter((x): x is string => x !== undefined);
}

/** Finds the first element named `name` anywhere below `node` (breadth first, bounded). */
export function findDeep(node: XNode, name: string, budget = 10000): { node: XNode; path: string[] } | undefined {
  // A queue read by index (Array#shift is linear) and never longer than the budget.
  const queue: { node: XNode; path: string[] }[] = [{ node, path: [] }];
  for (let at = 0; at < queue.length; at++) {
    const cur = queue[at]!;
    for (const [k, v] of Object.entries(cur.node)) {
      if (k.startsWith('@_') || k === '#text' || !Array.isArray(v)) continue;
      for (const child of v) {
        if (!child || typeof child !== 'object') continue;
        if (k === name) return { node: child as XNode, path: [...cur.path, k] };
        if (queue.length < budget) queue.push({ node: child as XNode, path: [...cur.path, k] });
      }
    }
  }
  return undefined;
}

/** ebRIM Slot values by slot name. */
export function slots(node: XNode | undefined): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const s of kids(node, 'Slot')) {
    const name = attr(s, 'name');
    if (!name) continue;
    const values = kids(s, 'ValueList').flatMap((vl) => texts(vl, 'Value'));
    const list = m.get(name);
    if (list) list.push(...values);
    else m.set(name, values);
  }
  return m;
}

/** The LocalizedString value of a Name or Description child. */
export function localized(node: XNode | undefined, child: 'Name' | 'Description'): string | undefined {
  return attr(kid(kid(node, child), 'LocalizedString'), 'value');
}

/** Decodes bytes as XML text: UTF-8 (BOM reported and dropped) or UTF-16 with a BOM. */
export function decodeXmlBytes(bytes: Uint8Array, place: string, warnings: { place: string; message: string }[]): string {
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    warnings.push({ place, message: 'UTF-8 byte order mark (ignored)' });
    return new TextDecoder('utf-8').decode(bytes.subarray(3));
  }
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    warnings.push({ place, message: 'UTF-16 text with a byte order mark (read; the profile uses UTF-8)' });
    return new TextDecoder(bytes[0] === 0xff ? 'utf-16le' : 'utf-16be').decode(bytes.subarray(2));
  }
  return new TextDecoder('utf-8').decode(bytes);
}
