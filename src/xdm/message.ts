// The message around an XDM package (ANS Référentiel #2 "API LPS" ECO.2.4.x, mssante.md §4 §5):
// subject `XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de naissance>`, IHE_XDM.ZIP attached with
// the PDF rendition beside it when given, X-MSS-CODECDA (one header field per CDA code, absent
// without CDA), X-MSS-INS (O: qualified identity, N: otherwise; set whenever a CDA is attached).
// The MIME is written by nodemailer's MailComposer.
import MailComposer from 'nodemailer/lib/mail-composer';
import { frenchDate, type XdmBuildPatient } from './build.js';
import { XdmError } from './errors.js';

export interface XdmMessageInput {
  from: string | { name?: string; address: string };
  to: string[];
  cc?: string[];
  /** The document's label (libellé), e.g. « Compte rendu d'hospitalisation ». */
  label: string;
  patient: Pick<XdmBuildPatient, 'family' | 'given' | 'birthDate' | 'qualified'>;
  zip: Uint8Array;
  /** CDA codes of the package (buildXdm's cdaCodes): X-MSS-CODECDA, one field per code. */
  cdaCodes: string[];
  pdf?: { filename?: string; bytes: Uint8Array };
  /** The body text (French); default: a short line naming the attachments. */
  text?: string;
  /** X-MSS-NIL: the sending software's reference. */
  nil?: string;
  /** Ask for a reading/processing receipt (MDN, RFC 8098 §2.1) at this address. */
  dispositionNotificationTo?: string;
  messageId?: string;
  date?: Date;
}

export interface XdmMessage {
  subject: string;
  /** The MSSanté header fields set, in order (name, value). */
  headers: [string, string][];
  raw: Buffer;
}

/** One header line: no CR/LF from user text (RFC 5322 §2.2). */
const oneLine = (s: string) => s.replace(/[\r\n]+/g, ' ').replace(/\s+/g, ' ').trim();

/** mssante.md §5: the subject convention for documents. */
export function xdmSubject(label: string, p: Pick<XdmBuildPatient, 'family' | 'given' | 'birthDate'>): string {
  return oneLine(`XDM/1.0/DDM+${label} ${p.family.toUpperCase()} ${p.given} ${frenchDate(p.birthDate)}`);
}

export async function xdmMessage(m: XdmMessageInput): Promise<XdmMessage> {
  if (m.to.length === 0) throw new XdmError('bad-input', 'the message needs at least one recipient');
  for (const c of m.cdaCodes) if (!/^[\x21-\x7e]+$/.test(c)) throw new XdmError('bad-input', `CDA code "${c}" cannot be an X-MSS-CODECDA value`);
  const subject = xdmSubject(m.label, m.patient);
  const headers: [string, string][] = [];
  for (const c of m.cdaCodes) headers.push(['X-MSS-CODECDA', c]);
  if (m.cdaCodes.length) headers.push(['X-MSS-INS', m.patient.qualified ? 'O' : 'N']);
  if (m.nil) headers.push(['X-MSS-NIL', oneLine(m.nil)]);
  const attachments: object[] = [{ filename: 'IHE_XDM.ZIP', content: Buffer.from(m.zip), contentType: 'application/zip' }];
  if (m.pdf) attachments.push({ filename: m.pdf.filename ?? 'DOCUMENT.PDF', content: Buffer.from(m.pdf.bytes), contentType: 'application/pdf' });
  const text =
    m.text ??
    `Bonjour,\n\nVeuillez trouver ci-joint : ${oneLine(m.label)} concernant ${m.patient.family.toUpperCase()} ${m.patient.given}, né(e) le ${frenchDate(m.patient.birthDate)}${m.pdf ? ' (document structuré IHE_XDM.ZIP et sa version PDF)' : ' (document structuré IHE_XDM.ZIP)'}.\n`;
  const mail = {
    from: m.from,
    to: m.to,
    ...(m.cc?.length ? { cc: m.cc } : {}),
    subject,
    text,
    date: m.date ?? new Date(),
    ...(m.messageId ? { messageId: m.messageId } : {}),
    headers: [...headers.map(([key, value]) => ({ key, value })), ...(m.dispositionNotificationTo ? [{ key: 'Disposition-Notification-To', value: m.dispositionNotificationTo }] : [])],
    attachments,
  };
  const composer = new MailComposer(mail as any).compile();
  const raw = await new Promise<Buffer>((resolve, reject) => composer.build((err: Error | null, buf: Buffer) => (err ? reject(err) : resolve(buf))));
  return { subject, headers, raw: msSpelling(raw) };
}

/**
 * MailComposer writes field names in its own case (X-Mss-Codecda). Field names are
 * case-insensitive (RFC 5322 §1.2.2), but software in the field compares the ANS spelling: the
 * top-level header block gets X-MSS-CODECDA / X-MSS-INS / X-MSS-NIL back (names only).
 */
function msSpelling(raw: Buffer): Buffer {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return raw;
  const head = raw.subarray(0, end).toString('latin1').replace(/^X-Mss-(Codecda|Ins|Nil):/gim, (_m, n: string) => `X-MSS-${n.toUpperCase()}:`);
  return Buffer.concat([Buffer.from(head, 'latin1'), raw.subarray(end)]);
}
