// CDA R2 header reading (HL7 CDA R2 §4.2; ANS CI-SIS "structuration minimale"): the document
// code and the patient identity of recordTarget/patientRole (INS as id with an INS OID).
import { attr, insKind, INS_OID, kid, kids, parseCdaXml, texts, type InsKind, type XNode } from './ebrim.js';

export interface CdaPatient {
  /** The INS (matricule) when an id carries an INS OID, else the first id's extension. */
  ins?: string;
  oid?: string;
  kind?: InsKind;
  family?: string;
  given?: string;
  birthTime?: string;
  gender?: string;
}

export interface CdaHeader {
  code?: string;
  codeSystem?: string;
  displayName?: string;
  title?: string;
  id?: string;
  effectiveTime?: string;
  patient: CdaPatient;
}

const INS_OIDS = new Set<string>(Object.values(INS_OID));

/** Reads a CDA R2 header; undefined when the text is not a ClinicalDocument. Throws XdmError on non-XML. */
export function readCdaHeader(xml: string, what: string): CdaHeader | undefined {
  const root = kid(parseCdaXml(xml, what), 'ClinicalDocument');
  if (!root) return undefined;
  const code = kid(root, 'code');
  const role = kid(kid(root, 'recordTarget'), 'patientRole');
  const ids = kids(role, 'id');
  // CI-SIS: the INS is recordTarget/patientRole/id with root = an INS OID.
  const insId = ids.find((i) => INS_OIDS.has(attr(i, 'root') ?? '')) ?? ids[0];
  const pat = kid(role, 'patient');
  const name = kid(pat, 'name');
  const given = texts(name, 'given').filter((x) => !!x);
  const oid = attr(insId, 'root');
  const patient: CdaPatient = {
    ins: attr(insId, 'extension'),
    oid,
    kind: oid ? insKind(oid) : undefined,
    family: texts(name, 'family')[0] || undefined,
    given: given.length ? given.join(' ') : undefined,
    birthTime: attr(kid(pat, 'birthTime'), 'value'),
    gender: attr(kid(pat, 'administrativeGenderCode'), 'code'),
  };
  return {
    code: attr(code, 'code'),
    codeSystem: attr(code, 'codeSystem'),
    displayName: attr(code, 'displayName'),
    title: texts(root, 'title')[0] || undefined,
    id: [attr(kid(root, 'id'), 'root'), attr(kid(root, 'id'), 'extension')].filter(Boolean).join('^') || undefined,
    effectiveTime: attr(kid(root, 'effectiveTime'), 'value'),
    patient: Object.fromEntries(Object.entries(patient).filter(([, v]) => v !== undefined)) as CdaPatient,
  };
}

export type { XNode };
