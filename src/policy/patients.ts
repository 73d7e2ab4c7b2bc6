// Messaging with patients (Mon espace santé): patient addresses `<INS>@patient.mssante.fr`, the
// size limit towards patients, the end of a conversation ([FIN]) and the conversation rule of
// the service (only a professional starts; after [FIN] the patient cannot answer). Pure: no
// store, no network (policy/patient-service.ts acts on it). docs/patients.md;
// ../shared/docs/mssante.md §2 and §8.
import { randomBytes } from 'node:crypto';
import { Headers } from '@zone-eu/mailsplit';
import libmime from 'libmime';
import MailComposer from 'nodemailer/lib/mail-composer';
import { headerBlock } from './absence.js';

/** Mon espace santé's domain in production (mssante.md §2). */
export const DEFAULT_PATIENT_DOMAIN = 'patient.mssante.fr';
/** 25 MB towards patients (mssante.md §8, secondary source), in bytes. */
export const DEFAULT_PATIENT_MAX_MESSAGE_SIZE = 25 * 1024 * 1024;

export interface PatientSettings {
  /** The domain of patient mailboxes (lower case). */
  domain: string;
  /** Largest message accepted towards patients, bytes. */
  maxMessageSize: number;
}

export const PATIENT_DEFAULTS: PatientSettings = { domain: DEFAULT_PATIENT_DOMAIN, maxMessageSize: DEFAULT_PATIENT_MAX_MESSAGE_SIZE };

/** The rules a refusal can name (logged, and quoted in the SMTP reply). */
export type PatientRule =
  | 'patient-address'
  | 'patient-size'
  | 'patient-conversation-not-started'
  | 'patient-conversation-closed'
  | 'patient-not-a-professional';

export interface PatientRefusal {
  rule: PatientRule;
  code: number;
  enhanced: string;
  /** French text of the reply (accents removed for the SMTP reply, RFC 5321 §4.2). */
  text: string;
}

/** The SMTP reply text of a refusal: US-ASCII (RFC 5321 §4.2), the rule named at the end. */
export function patientReplyText(r: { text: string; rule: string }): string {
  const ascii = r.text.normalize('NFD').replace(/\p{M}/gu, '').replace(/[^\x20-\x7e]/g, '?');
  return `${ascii} [rule ${r.rule}]`;
}

const domainPart = (address: string) => address.slice(address.lastIndexOf('@') + 1).toLowerCase();
const localPart = (address: string) => address.slice(0, address.lastIndexOf('@'));

export function isPatientAddress(address: string, s: Pick<PatientSettings, 'domain'>): boolean {
  return address.includes('@') && domainPart(address) === s.domain.toLowerCase();
}

export type InsProblem = { rule: 'length' | 'characters' | 'sex' | 'month' | 'key'; detail: string };

/**
 * Whether `ins` is a well-formed INS (the patient's NIR, or a NIA, 15 characters): 13 digits of
 * identity then a 2-digit key. Checks: length; digits only, except the Corsican departments
 * "2A"/"2B" in positions 6–7; first digit 1 or 2 (NIR, 3/4 for some born abroad) or 7/8 (NIA,
 * temporary number); month 01–12, 20–42 or 50–99 (INSEE's codes for an unknown month); and the
 * key: 97 − (first 13 digits mod 97), where 2A counts as 19 and 2B as 18 (INSEE's NIR key rule).
 */
export function insProblem(ins: string): InsProblem | null {
  if (ins.length !== 15) return { rule: 'length', detail: `${ins.length} caractères au lieu de 15` };
  const corsica = /^[0-9]{5}(2A|2B)[0-9]{8}$/i.exec(ins);
  if (!/^[0-9]{15}$/.test(ins) && !corsica)
    return { rule: 'characters', detail: 'seulement des chiffres (et 2A ou 2B pour un département corse)' };
  if (!/^[123478]/.test(ins)) return { rule: 'sex', detail: `premier chiffre ${ins[0]} : 1 ou 2 (NIR), 7 ou 8 (NIA) attendu` };
  const month = Number(ins.slice(3, 5));
  if (!((month >= 1 && month <= 12) || (month >= 20 && month <= 42) || month >= 50))
    return { rule: 'month', detail: `mois de naissance ${ins.slice(3, 5)} impossible` };
  let digits = ins.slice(0, 13);
  if (corsica) digits = digits.slice(0, 5) + (corsica[1].toUpperCase() === '2A' ? '19' : '18') + digits.slice(7);
  const expected = 97 - Number(BigInt(digits) % 97n);
  const given = Number(ins.slice(13));
  if (expected !== given) return { rule: 'key', detail: `clé ${ins.slice(13)} au lieu de ${String(expected).padStart(2, '0')}` };
  return null;
}

/** A valid key for the 13 first characters (demo data, tests). */
export function withInsKey(first13: string): string {
  const corsica = /^[0-9]{5}(2A|2B)/i.exec(first13);
  const digits = corsica ? first13.slice(0, 5) + (corsica[1].toUpperCase() === '2A' ? '19' : '18') + first13.slice(7) : first13;
  return first13 + String(97 - Number(BigInt(digits) % 97n)).padStart(2, '0');
}

/**
 * The service's test address (mssante.md §8): publishers test against it in production, and it
 * answers automatically. Not an INS, and not refused for that.
 */
export const TEST_LOCAL_PART = 'reponse.automatique-test';

export function isTestAddress(address: string, s: Pick<PatientSettings, 'domain'>): boolean {
  return isPatientAddress(address, s) && localPart(address).toLowerCase() === TEST_LOCAL_PART;
}

/** RCPT towards a patient: the local part must be an INS (553 5.1.3 otherwise, naming the rule). */
export function decidePatientRecipient(address: string, s: Pick<PatientSettings, 'domain'>): PatientRefusal | null {
  if (!isPatientAddress(address, s) || isTestAddress(address, s)) return null;
  const p = insProblem(localPart(address));
  if (!p) return null;
  // RFC 5321 §4.2.3: 553 "mailbox name not allowed"; RFC 3463 X.1.3: bad destination mailbox address syntax.
  return {
    rule: 'patient-address',
    code: 553,
    enhanced: '5.1.3',
    text: `${address} : adresse patient invalide (${p.detail}) ; l'adresse d'un patient est son INS de 15 chiffres, clé NIR valide, @${s.domain}`,
  };
}

/** A message (of `size` bytes) towards patients over the limit: 552 5.3.4 naming the limit. */
export function decidePatientSize(size: number, s: PatientSettings): PatientRefusal | null {
  if (size <= s.maxMessageSize) return null;
  // RFC 5321 §4.5.3.1.10 / RFC 1870: 552 for a message too big; RFC 3463 X.3.4: message too big for system.
  return {
    rule: 'patient-size',
    code: 552,
    enhanced: '5.3.4',
    text: `message trop volumineux pour un patient (Mon espace santé) : ${size} octets, la limite vers les patients est de ${s.maxMessageSize} octets (${formatMb(s.maxMessageSize)})`,
  };
}

const formatMb = (n: number) => `${Math.round((n / (1024 * 1024)) * 10) / 10} Mo`;

/**
 * Whether a message ends the conversation with the patient (mssante.md §8): its subject is
 * exactly `[FIN]`, or it carries `X-MSS-MES: FIN`.
 */
export function endsConversation(header: Buffer): boolean {
  const h = new Headers(headerBlock(header));
  const subject = unfold(h.getFirst('subject'));
  if (libmime.decodeWords(subject).trim() === '[FIN]') return true;
  return h.get('x-mss-mes').some((line: string) => unfold(line.slice(line.indexOf(':') + 1)).trim() === 'FIN');
}

const unfold = (v: string) => String(v ?? '').replace(/\r?\n[ \t]/g, ' ');

export type ConversationState = { openedAt: string; closedAt: string | null } | undefined;

/**
 * A patient writing to `professional` (at the Mon espace santé stand-in): only inside a
 * conversation the professional started, and not after [FIN].
 */
export function decidePatientReply(professional: string, conversation: ConversationState): PatientRefusal | null {
  if (!conversation)
    return {
      rule: 'patient-conversation-not-started',
      code: 550,
      enhanced: '5.7.1',
      text: `${professional} : seul un professionnel de santé peut engager un échange avec un patient ; vous pourrez répondre à un message qu'il vous aura envoyé`,
    };
  if (conversation.closedAt)
    return {
      rule: 'patient-conversation-closed',
      code: 550,
      enhanced: '5.7.1',
      text: `${professional} : le professionnel a clos cet échange ([FIN]) le ${conversation.closedAt.slice(0, 10)} ; il n'est plus possible d'y répondre`,
    };
  return null;
}

/** Why the stand-in answers automatically instead of delivering. */
export type AutomaticAnswerReason = 'unknown' | 'closed' | 'test';

/** The French text of the automatic answer (the real service answers each case, mssante.md §8). */
export function automaticAnswerText(reason: AutomaticAnswerReason, patient: string): string {
  const lines = ['Bonjour,', ''];
  if (reason === 'unknown')
    lines.push(
      `Votre message à ${patient} n'a pas été remis : aucune messagerie Mon espace santé n'est ouverte pour ce patient`,
      "(identifiant INS inconnu, ou le patient s'est opposé à la création de son profil Mon espace santé).",
    );
  else if (reason === 'closed')
    lines.push(
      `Votre message à ${patient} n'a pas été remis : la messagerie Mon espace santé de ce patient est fermée`,
      '(profil clôturé ou messagerie désactivée par le patient).',
    );
  else
    lines.push(
      `Votre message à l'adresse de test ${patient} a bien été reçu par Mon espace santé ; il n'est remis à aucun patient.`,
      'Le service répond automatiquement, comme ici, quand la messagerie du patient est inconnue (INS inconnu ou',
      'opposition du patient) ou fermée (profil clôturé) ; un patient ne peut plus répondre après un message',
      "d'objet [FIN] (ou portant l'en-tête X-MSS-MES: FIN).",
    );
  if (reason !== 'test') lines.push('', "Vérifiez l'INS du patient, ou transmettez l'information par un autre moyen.");
  lines.push(
    '',
    '-- ',
    'Message automatique de Mon espace santé : inutile d’y répondre.',
    '',
  );
  return lines.join('\r\n');
}

/** The automatic answer itself (RFC 3834 §3: from the service, to the envelope sender). */
export async function buildAutomaticAnswer(o: {
  reason: AutomaticAnswerReason;
  patient: string;
  from: string;
  to: string;
  originalHeader: Buffer;
  hostname: string;
  date?: Date;
}): Promise<Buffer> {
  const h = new Headers(headerBlock(o.originalHeader));
  const original = libmime.decodeWords(unfold(h.getFirst('subject'))).replace(/[\r\n]+/g, ' ').trim();
  // RFC 3834 §3.1.5: a subject derived from the original one.
  const prefix = 'Réponse automatique';
  // RFC 3834 §3.1.3 / RFC 5322 §3.6.4: In-Reply-To and References name the original.
  const msgId = h.getFirst('message-id').trim();
  const refs: string[] = [...((h.getFirst('references') || h.getFirst('in-reply-to')).match(/<[^<>\s]+>/g) ?? [])];
  if (msgId) refs.push(msgId);
  const mail: any = {
    from: { name: 'Mon espace santé', address: o.from },
    to: o.to,
    subject: original ? `${prefix} : ${original}` : prefix,
    date: o.date ?? new Date(),
    text: automaticAnswerText(o.reason, o.patient),
    // RFC 3834 §5: marks the answer as automatic, so that no responder answers it in turn.
    headers: { 'Auto-Submitted': 'auto-replied' },
    messageId: `<mes.${randomBytes(12).toString('hex')}@${o.hostname}>`,
  };
  if (msgId) mail.inReplyTo = msgId;
  if (refs.length) mail.references = refs.slice(-20);
  const composer = new MailComposer(mail).compile();
  return new Promise((resolve, reject) => composer.build((err: Error | null, buf: Buffer) => (err ? reject(err) : resolve(buf))));
}
