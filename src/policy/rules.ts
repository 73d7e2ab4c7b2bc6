// Golden rules 1, 2 and 4 (docs/policy.md), the pure part: urgency markers, the reading guard's
// escalation, whether a mailbox is unused, and the French texts and messages the rules send.
// No store, no network: policy/rules-engine.ts and policy/urgency.ts act on these decisions.
import { randomBytes } from 'node:crypto';
import { Headers } from '@zone-eu/mailsplit';
import libmime from 'libmime';
import MailComposer from 'nodemailer/lib/mail-composer';
import { DAY_MS } from './absence.js';

// ---- rule 4: urgency markers ---------------------------------------------------------------

/** Lower case, accents removed (NFD then combining marks dropped): « URGENCE », « Urgénce » → « urgence ». */
export function fold(s: string): string {
  return s.normalize('NFD').replace(/\p{M}+/gu, '').toLowerCase();
}

/** urgent, urgente(s), urgence(s) (French); urgent, urgently, urgency (English). */
const URGENT_WORD = /(?<![\p{L}\p{N}])(urgent(e|es|s|ly)?|urgences?|urgency)(?![\p{L}\p{N}])/gu;

/** How many non-empty lines of the text count as "the first lines". */
export const FIRST_LINES = 5;

export interface UrgencyInput {
  subject?: string;
  /** The text of the message (or the draft); only its first lines are looked at. */
  text?: string;
  /** Header fields of a message (raw header block): Importance, Priority, X-Priority. */
  header?: Buffer | string;
}

/**
 * The urgency markers a message or a draft carries: the words urgent / urgence in the subject
 * or the first lines, `Importance: high` (RFC 2156 §5.3), `Priority: urgent` (RFC 2156 §5.3),
 * `X-Priority: 1` (de facto, highest). Accents and case ignored. Empty: not urgent.
 */
export function urgencyMarkers(o: UrgencyInput): string[] {
  const found = new Set<string>();
  const words = (s: string, where: string) => {
    for (const m of fold(s).matchAll(URGENT_WORD)) found.add(`${m[1]} (${where})`);
  };
  if (o.subject) words(o.subject, 'objet');
  if (o.text) {
    const first = o.text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('>'))
      .slice(0, FIRST_LINES)
      .join('\n');
    words(first, 'début du texte');
  }
  if (o.header) {
    const h = new Headers(typeof o.header === 'string' ? Buffer.from(o.header) : o.header);
    const field = (name: string) => fold(h.getFirst(name).trim());
    if (field('importance') === 'high') found.add('Importance: high');
    if (field('priority') === 'urgent') found.add('Priority: urgent');
    if (/^1\b/.test(field('x-priority'))) found.add('X-Priority: 1');
  }
  return [...found];
}

// ---- rule 1: the reading guard ---------------------------------------------------------------

/** Who a reading notice goes to, by level: 1 the owner, 2 and the read delegates, 3 and the administrators. */
export type ReadingAudience = 'owner' | 'delegates' | 'administrators';

/**
 * The escalation level for a mailbox whose oldest unread message has waited `businessHours`:
 * 0 below the threshold; then one level per threshold elapsed, at most 3.
 */
export function readingLevel(businessHours: number, thresholdHours: number): number {
  if (!(businessHours >= thresholdHours)) return 0;
  return Math.min(3, Math.floor(businessHours / thresholdHours));
}

/**
 * The audiences of a level. Administrators are told only about organisational mailboxes (ORG)
 * at level 3, or at once when the mailbox has nobody to read it (no owner, no read delegate).
 */
export function readingAudiences(level: number, o: { type: string; hasReaders: boolean }): ReadingAudience[] {
  if (level <= 0) return [];
  if (!o.hasReaders) return ['administrators'];
  const out: ReadingAudience[] = ['owner'];
  if (level >= 2) out.push('delegates');
  if (level >= 3 && o.type === 'ORG') out.push('administrators');
  return out;
}

// ---- rule 2: unused addresses ----------------------------------------------------------------

export type UnusedStep = { step: 'none' } | { step: 'reset' } | { step: 'warn' } | { step: 'suspend' } | { step: 'reactivate' };

/**
 * What rule 2 does to a mailbox now. `lastUse`: its last login, read or sent message, its
 * creation, or the last objection, whichever is latest (epoch ms).
 */
export function unusedStep(o: {
  state: 'active' | 'suspended' | 'deleted';
  lastUse: number;
  warnedAt: number | null;
  suspendedAt: number | null;
  now: number;
  days: number;
  graceDays: number;
}): UnusedStep {
  if (o.state === 'deleted') return { step: 'none' };
  if (o.state === 'suspended') {
    // Suspended by this rule, then used again (the owner logged in) or objected to: back to active.
    return o.suspendedAt !== null && o.lastUse > o.suspendedAt ? { step: 'reactivate' } : { step: 'none' };
  }
  if (o.warnedAt !== null && o.lastUse > o.warnedAt) return { step: 'reset' };
  if (o.now - o.lastUse < o.days * DAY_MS) return { step: 'none' };
  if (o.warnedAt === null) return { step: 'warn' };
  return o.now - o.warnedAt >= o.graceDays * DAY_MS ? { step: 'suspend' } : { step: 'none' };
}

// ---- messages --------------------------------------------------------------------------------

export const dateFr = (t: Date | number | string) =>
  new Date(t).toLocaleString('fr-FR', { timeZone: 'Europe/Paris', day: 'numeric', month: 'long', year: 'numeric', hour: '2-digit', minute: '2-digit' });

/** One header line: no CR/LF from user text (RFC 5322 §2.2). */
const oneLine = (s: string) => s.replace(/[\r\n]+/g, ' ').trim();

async function compile(mail: any): Promise<Buffer> {
  const composer = new MailComposer(mail).compile();
  return new Promise((resolve, reject) => composer.build((err: Error | null, buf: Buffer) => (err ? reject(err) : resolve(buf))));
}

/** A notice from the operator's system address (rules 1 and 2): French text, no content of any message. */
export async function buildNotice(o: { from: string; to: string[]; subject: string; text: string; hostname: string; date: Date }): Promise<Buffer> {
  return compile({
    from: { name: 'Messagerie sécurisée de santé', address: o.from },
    to: o.to,
    subject: oneLine(o.subject),
    date: o.date,
    text: o.text,
    // RFC 3834 §5: generated by a process, not in answer to a message; nothing answers it.
    headers: { 'Auto-Submitted': 'auto-generated' },
    // RFC 5322 §3.6.4: a unique Message-ID under our host name.
    messageId: `<rules.${randomBytes(12).toString('hex')}@${o.hostname}>`,
  });
}

/** Rule 1: « messages non lus » — the sender and date of each, never a subject or a body. */
export function readingNoticeText(o: { mailbox: string; thresholdHours: number; unread: { from: string; date: string }[]; more: number; level: number }): string {
  const lines = [
    'Bonjour,',
    '',
    `La boîte aux lettres ${o.mailbox} contient des messages non lus depuis plus de ${o.thresholdHours} heures ouvrées :`,
    '',
    ...o.unread.map((u) => `- de ${u.from}, reçu le ${dateFr(u.date)}`),
  ];
  if (o.more > 0) lines.push(`- et ${o.more} autre(s) message(s)`);
  lines.push(
    '',
    "La messagerie sécurisée de santé doit être relevée chaque jour ouvré (règle d'or n° 1 de MSSanté).",
    o.level >= 2 ? 'Ce rappel est aussi adressé aux personnes qui ont accès à cette boîte (secrétariat).' : "Merci de lire ces messages ou d'en confier la lecture à une personne habilitée.",
    '',
    '-- ',
    'Message automatique : inutile d’y répondre.',
    '',
  );
  return lines.join('\r\n');
}

/** Rule 2: « adresse inutilisée » — the warning before suspension. */
export function unusedNoticeText(o: { mailbox: string; days: number; lastUse: number; suspendOn: number }): string {
  return [
    'Bonjour,',
    '',
    `La boîte aux lettres ${o.mailbox} n'a pas été utilisée depuis ${o.days} jours (dernière activité : ${dateFr(o.lastUse)}).`,
    `Sans connexion, lecture ou envoi d'ici le ${dateFr(o.suspendOn)}, elle sera suspendue, puis supprimée sur confirmation d'un administrateur`,
    "(un export de son contenu est alors remis à son titulaire et l'adresse est retirée de l'annuaire santé).",
    "Pour la conserver, il suffit de s'y connecter, ou de demander à l'administrateur de l'opérateur de la garder.",
    '',
    "Règle d'or n° 2 de MSSanté : les adresses inutilisées sont supprimées.",
    '',
    '-- ',
    'Message automatique : inutile d’y répondre.',
    '',
  ].join('\r\n');
}

/** Rule 4: the answer to an urgent message whose recipient will not read it soon. */
export function urgencyReplyText(o: { mailbox: string; reason: 'absent' | 'unread'; until: string | null; substitute: string | null }): string {
  const lines = ['Bonjour,', '', `Votre message à ${o.mailbox} a bien été distribué, mais il ne sera pas lu rapidement :`];
  if (o.reason === 'absent') lines.push(o.until ? `son destinataire est absent jusqu'au ${dateFr(o.until)}.` : 'son destinataire est absent.');
  else lines.push('des messages y attendent déjà d’être lus depuis plus longtemps que le délai de lecture habituel.');
  lines.push('', "La messagerie sécurisée de santé ne doit pas être utilisée pour des informations urgentes : pour une urgence, appelez par téléphone.");
  if (o.substitute) lines.push('', `Vous pouvez aussi écrire à ${o.substitute}.`);
  lines.push('', '-- ', 'Message automatique : inutile d’y répondre.', '');
  return lines.join('\r\n');
}

/** Rule 4: the answer itself (RFC 3834 §3: From the recipient, threaded, Auto-Submitted: auto-replied). */
export async function buildUrgencyReply(o: { mailbox: { address: string; displayName: string }; to: string; originalHeader: Buffer; text: string; hostname: string; date: Date }): Promise<Buffer> {
  const h = new Headers(o.originalHeader);
  const original = oneLine(libmime.decodeWords(h.getFirst('subject')));
  // RFC 3834 §3.1.5: a subject derived from the original one.
  const subject = original ? `Message urgent non lu : ${original}` : 'Message urgent non lu';
  // RFC 5322 §3.6.4 (and RFC 3834 §3.1): In-Reply-To and References.
  const msgId = h.getFirst('message-id').trim();
  const refs: string[] = [...((h.getFirst('references') || h.getFirst('in-reply-to')).match(/<[^<>\s]+>/g) ?? [])];
  if (msgId) refs.push(msgId);
  const mail: any = {
    from: { name: oneLine(o.mailbox.displayName), address: o.mailbox.address },
    to: o.to,
    subject,
    date: o.date,
    text: o.text,
    // RFC 3834 §5: an automatic response; no other responder answers it.
    headers: { 'Auto-Submitted': 'auto-replied' },
    messageId: `<urgence.${randomBytes(12).toString('hex')}@${o.hostname}>`,
  };
  if (msgId) mail.inReplyTo = msgId;
  if (refs.length) mail.references = refs.slice(-20);
  return compile(mail);
}
