// The MSSanté header fields (ANS Référentiel #2 "API LPS", ECO.2.4.x; ../shared/docs/mssante.md
// §4): X-MSS-CODECDA, X-MSS-INS, X-MSS-NIL, X-MSS-MES. Submission checks their syntax and refuses
// with 550 5.6.0 and a precise text; nobody rewrites them: the submission server keeps the
// header lines it does not change byte for byte, the MX and IMAP store and serve the message
// as received (docs/patients.md). Pure: no store, no network.
import { Headers } from '@zone-eu/mailsplit';
import { headerBlock } from './absence.js';
import { isPatientAddress, type PatientSettings } from './patients.js';

export const MSS_HEADERS = ['x-mss-codecda', 'x-mss-ins', 'x-mss-nil', 'x-mss-mes'] as const;

export type MssHeaderRule = 'x-mss-codecda' | 'x-mss-ins' | 'x-mss-nil' | 'x-mss-mes' | 'x-mss-mes-recipients';

export interface MssHeaderRefusal {
  rule: MssHeaderRule;
  code: 550;
  /** RFC 3463 X.6.0: other or undefined media error (the message content is not acceptable). */
  enhanced: '5.6.0';
  text: string;
}

/** One CDA document code: a code of the document's `code` element (LOINC "11488-4", ANS "CERT_DECL"…). */
const CDA_CODE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const MAX_NIL = 256;

/** The value of a header field, unfolded (RFC 5322 §2.2.3), without the surrounding white space. */
const value = (v: string) => String(v ?? '').replace(/\r?\n(?=[ \t])/g, '').trim();

/** The values of every `name` field (mailsplit's get() returns whole lines, name included). */
export const fieldValues = (h: Headers, name: string): string[] => h.get(name).map((line: string) => line.slice(line.indexOf(':') + 1));

const refuse = (rule: MssHeaderRule, text: string): MssHeaderRefusal => ({ rule, code: 550, enhanced: '5.6.0', text });

/**
 * Checks the MSSanté fields of a submitted message's header block against the envelope
 * recipients. null: acceptable (absent fields are acceptable: they are set by software when
 * they apply).
 */
export function checkMssHeaders(o: { header: Buffer; recipients: string[]; patients: Pick<PatientSettings, 'domain'> }): MssHeaderRefusal | null {
  const h = new Headers(headerBlock(o.header));
  for (const name of MSS_HEADERS) {
    // One field each: a second value would leave the receiving software to guess which counts.
    // X-MSS-CODECDA is multi-valued (ECO.2.4.x "multi-valué"; the ANS text gives no syntax):
    // one field per code (what src/xdm writes) and comma-separated codes are both accepted.
    if (name === 'x-mss-codecda') continue;
    if (fieldValues(h, name).length > 1) return refuse(name, `le champ ${canonical(name)} apparaît ${fieldValues(h, name).length} fois ; il doit être unique`);
  }
  // ECO.2.4.x: X-MSS-INS is "O" (qualified INS) or "N" (not qualified), nothing else.
  const ins = fieldValues(h, 'x-mss-ins');
  if (ins.length && !['O', 'N'].includes(value(ins[0])))
    return refuse('x-mss-ins', `X-MSS-INS: ${quote(value(ins[0]))} invalide ; valeurs admises : O (INS qualifié) ou N (INS non qualifié)`);
  // ECO.2.4.x: X-MSS-CODECDA carries the code of each CDA document of the XDM archive, several
  // values separated by commas.
  const codes = fieldValues(h, 'x-mss-codecda');
  if (codes.length) {
    const tokens = codes.flatMap((c) => value(c).split(',').map((t) => t.trim()));
    const bad = tokens.find((t) => !CDA_CODE.test(t));
    if (bad !== undefined)
      return refuse(
        'x-mss-codecda',
        bad === ''
          ? 'X-MSS-CODECDA : valeur vide ; une liste de codes de documents CDA séparés par des virgules est attendue'
          : `X-MSS-CODECDA : code ${quote(bad)} invalide ; une liste de codes de documents CDA (lettres, chiffres, . _ : -) séparés par des virgules est attendue`,
      );
  }
  // ECO.2.4.x: X-MSS-NIL carries the software's reference: one line of visible text.
  const nil = fieldValues(h, 'x-mss-nil');
  if (nil.length) {
    const v = value(nil[0]);
    if (!v || v.length > MAX_NIL || /[\x00-\x1f\x7f]/.test(v))
      return refuse('x-mss-nil', `X-MSS-NIL : la référence du logiciel doit être un texte d'une ligne de 1 à ${MAX_NIL} caractères`);
  }
  // ECO.2.4.x and mssante.md §8: X-MSS-MES: FIN ends a conversation with a patient; it is used
  // only towards patients.
  const mes = fieldValues(h, 'x-mss-mes');
  if (mes.length) {
    const v = value(mes[0]);
    if (v !== 'FIN') return refuse('x-mss-mes', `X-MSS-MES: ${quote(v)} invalide ; seule la valeur FIN (clore l'échange avec un patient) est définie`);
    const others = o.recipients.filter((r) => !isPatientAddress(r, o.patients));
    if (others.length)
      return refuse(
        'x-mss-mes-recipients',
        `X-MSS-MES: FIN s'emploie seulement vers des patients (@${o.patients.domain}) ; destinataire(s) non patient(s) : ${others.slice(0, 3).join(', ')}${others.length > 3 ? '…' : ''}`,
      );
  }
  return null;
}

const canonical = (name: string) => name.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase()).replace(/Mss|Codecda|Ins|Nil|Mes/g, (s) => s.toUpperCase());
const quote = (v: string) => `"${v.length > 40 ? `${v.slice(0, 40)}…` : v}"`;
