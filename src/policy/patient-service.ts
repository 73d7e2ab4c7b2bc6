// Messaging with patients at work (docs/patients.md). Every operator: patient addresses checked
// at RCPT, the MSSanté header fields and the size limit towards patients checked at the end of
// DATA (submission). An operator hosting the patient domain (the Mon espace santé stand-in of
// `caducee demo`): the conversation rule (patients answer only inside a conversation a
// professional started and has not ended), conversations opened and closed with each delivery,
// and the automatic answers for an unknown or closed patient mailbox. Decisions are in
// policy/patients.ts and policy/mssante-headers.ts; this adds the store and the log.
import { Headers } from '@zone-eu/mailsplit';
import type { Logger } from 'pino';
import addressparser from 'nodemailer/lib/addressparser';
import { domainOf, type Core } from '../core/index.js';
import type { MessageFiles } from '../store/message-files.js';
import type { PatientConversationChange, PatientStore } from '../store/types.js';
import { decideAbsenceReply, headerBlock } from './absence.js';
import { replyTarget, sendAutomaticReply } from './automatic-reply.js';
import { checkMssHeaders, type MssHeaderRefusal } from './mssante-headers.js';
import {
  buildAutomaticAnswer,
  decidePatientRecipient,
  decidePatientReply,
  decidePatientSize,
  endsConversation,
  isPatientAddress,
  isTestAddress,
  type AutomaticAnswerReason,
  type PatientRefusal,
  type PatientSettings,
} from './patients.js';

export type { PatientRefusal } from './patients.js';
export type { MssHeaderRefusal } from './mssante-headers.js';

/** What the stand-in's MX does with a recipient it hosts. */
export type InboundPatientRecipient = { kind: 'refuse'; refusal: PatientRefusal | { code: number; enhanced: string; text: string; rule: string } } | { kind: 'answer'; reason: AutomaticAnswerReason };

const HEADER_READ_LIMIT = 256 * 1024;

export class PatientPolicy {
  private readonly log: Logger;
  /** This operator hosts the patient domain: it stands in for Mon espace santé. */
  readonly standIn: boolean;

  constructor(
    private readonly o: {
      settings: PatientSettings;
      core: Core;
      store: PatientStore;
      blobs: MessageFiles;
      trust: { isTrustedDomain(domain: string): boolean };
      hostname: string;
      logger: Logger;
    },
  ) {
    this.log = o.logger.child({ component: 'patients' });
    this.standIn = o.core.isLocalDomain(o.settings.domain);
  }

  get settings(): PatientSettings {
    return this.o.settings;
  }

  isPatient(address: string): boolean {
    return isPatientAddress(address, this.o.settings);
  }

  // ---- submission -------------------------------------------------------------------------

  /**
   * RCPT at submission: a patient address must be an INS; a declared SIZE (RFC 1870) over the
   * limit towards patients is refused at once; at the stand-in, a patient writes only inside a
   * conversation a professional started and has not ended.
   */
  async checkRecipient(rcpt: string, sender: { address: string; mailboxId?: number }, declaredSize: number | undefined, session: string): Promise<PatientRefusal | null> {
    const r = await this.decideRecipient(rcpt, sender, declaredSize);
    if (r) this.refused(r, { session, stage: 'rcpt', senderDomain: domainOf(sender.address) });
    return r;
  }

  private async decideRecipient(rcpt: string, sender: { address: string; mailboxId?: number }, declaredSize: number | undefined): Promise<PatientRefusal | null> {
    const address = decidePatientRecipient(rcpt, this.o.settings);
    if (address) return address;
    if (this.isPatient(rcpt) && declaredSize !== undefined) {
      const size = decidePatientSize(declaredSize, this.o.settings);
      if (size) return size;
    }
    if (this.standIn && this.isPatient(sender.address) && sender.mailboxId !== undefined) {
      // mssante.md §8: only a professional starts a conversation; a patient never writes to another patient.
      const conversation = this.isPatient(rcpt) ? undefined : await this.o.store.getPatientConversation(sender.mailboxId, rcpt.toLowerCase());
      return decidePatientReply(rcpt, conversation);
    }
    return null;
  }

  /** End of DATA at submission, the header block: the X-MSS-* fields (550 5.6.0). */
  checkHeader(header: Buffer, recipients: string[], session: string): MssHeaderRefusal | null {
    const r = checkMssHeaders({ header, recipients, patients: this.o.settings });
    if (r) this.refused(r, { session, stage: 'data' });
    return r;
  }

  /** End of DATA (submission, and the stand-in's MX), once stored: the size limit when a recipient is a patient (552 5.3.4). */
  checkSize(size: number, recipients: string[], session: string): PatientRefusal | null {
    const r = recipients.some((a) => this.isPatient(a)) ? decidePatientSize(size, this.o.settings) : null;
    if (r) this.refused(r, { session, stage: 'data' });
    return r;
  }

  // ---- the stand-in's MX --------------------------------------------------------------------

  /**
   * RCPT at the stand-in's MX for a patient address: a malformed INS is refused; an unknown or
   * closed patient mailbox is accepted and answered automatically (as the real service does),
   * a declared SIZE over the limit towards patients refused (RFC 1870),
   * except for a null sender, which nobody could answer (RFC 3834 §2): refused. null: deliver
   * as usual.
   */
  async inboundRecipient(rcpt: string, envelopeFrom: string, declaredSize?: number): Promise<InboundPatientRecipient | null> {
    if (!this.standIn || !this.isPatient(rcpt)) return null;
    const bad = decidePatientRecipient(rcpt, this.o.settings) ?? (declaredSize !== undefined ? decidePatientSize(declaredSize, this.o.settings) : null);
    if (bad) return { kind: 'refuse', refusal: bad };
    const r = await this.o.core.resolveRecipient(rcpt);
    if (r.kind === 'local') return null;
    // mssante.md §8: the service's test address answers automatically.
    const reason: AutomaticAnswerReason = isTestAddress(rcpt, this.o.settings) ? 'test' : r.kind === 'unknown' ? 'unknown' : 'closed';
    if (!envelopeFrom)
      return {
        kind: 'refuse',
        refusal: { rule: `patient-mailbox-${reason}`, code: 550, enhanced: '5.1.1', text: `${rcpt} : ${reason === 'closed' ? 'messagerie Mon espace sante fermee' : reason === 'test' ? 'adresse de test, sans reponse possible a un expediteur nul' : 'aucune messagerie Mon espace sante pour ce patient'}` },
      };
    return { kind: 'answer', reason };
  }

  /**
   * The conversations a message delivered at the stand-in opens or closes: a message from a
   * professional (not a patient address) to patient mailboxes opens the conversation with its
   * authors (From) and its envelope sender, or closes it when it ends the conversation
   * ([FIN] subject or X-MSS-MES: FIN).
   */
  async conversationChanges(blobId: string, envelopeFrom: string, mailboxIds: number[]): Promise<PatientConversationChange[]> {
    if (!this.standIn || !envelopeFrom || this.isPatient(envelopeFrom)) return [];
    const header = await this.readHeader(blobId);
    const professionals = new Set([envelopeFrom.toLowerCase(), ...authors(header).filter((a) => !this.isPatient(a))]);
    const action = endsConversation(header) ? 'close' : 'open';
    const at = new Date().toISOString();
    const out: PatientConversationChange[] = [];
    for (const id of new Set(mailboxIds)) {
      const m = await this.o.core.store.getMailbox(id);
      if (!m || !this.isPatient(m.address)) continue;
      for (const professional of professionals) out.push({ patientMailboxId: id, professional, action, at });
    }
    if (out.length) this.log.info({ action, patients: new Set(out.map((c) => c.patientMailboxId)).size, professionalDomain: domainOf(envelopeFrom) }, `patient conversation ${action === 'open' ? 'opened' : 'closed'}`);
    return out;
  }

  /**
   * The automatic answers of the stand-in for recipients without an open mailbox, sent to the
   * envelope sender before the message is acknowledged (the answer is the only trace of it).
   * RFC 3834 §2: never to an automatic message, a list or a report.
   */
  async answerAutomatically(blobId: string, envelopeFrom: string, answers: { rcpt: string; reason: AutomaticAnswerReason }[], session: string): Promise<void> {
    if (!answers.length || !envelopeFrom) return;
    const header = await this.readHeader(blobId);
    const now = new Date();
    for (const a of answers) {
      // The checks of every automatic answer (RFC 3834 §2, RFC 5230 §4), without the To/Cc
      // requirement: the service answers for each recipient of the envelope.
      const d = decideAbsenceReply({ window: { startsAt: null, endsAt: null }, mailbox: a.rcpt, envelopeFrom, header, now, periodMs: 0 });
      if (!d.reply && d.reason !== 'not-addressed') {
        this.log.info({ session, reason: d.reason }, 'no automatic answer');
        continue;
      }
      const target = await replyTarget(this.o.core, this.o.trust, envelopeFrom);
      if ('refused' in target) {
        this.log.info({ session, refused: target.refused }, 'automatic answer cannot be sent');
        continue;
      }
      const raw = await buildAutomaticAnswer({ reason: a.reason, patient: a.rcpt, from: `ne-pas-repondre@${this.o.settings.domain}`, to: envelopeFrom, originalHeader: header, hostname: this.o.hostname, date: now });
      await sendAutomaticReply(this.o, raw, envelopeFrom, target, now);
      this.log.info({ session, reason: a.reason, senderDomain: domainOf(envelopeFrom) }, 'automatic answer for a patient mailbox');
    }
  }

  private async readHeader(blobId: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of this.o.blobs.stream(blobId, { start: 0, end: HEADER_READ_LIMIT - 1 })) chunks.push(c as Buffer);
    return headerBlock(Buffer.concat(chunks));
  }

  private refused(r: { rule: string; code: number; enhanced: string }, ctx: Record<string, unknown>): void {
    this.log.info({ ...ctx, rule: r.rule, code: `${r.code} ${r.enhanced}` }, 'patient policy refusal');
  }
}

/** The addresses of the From field (lower case). */
function authors(header: Buffer): string[] {
  const from = new Headers(header).getFirst('from');
  if (!from) return [];
  const out: string[] = [];
  const walk = (list: any[]) => {
    for (const a of list) {
      if (a.group) walk(a.group);
      else if (a.address) out.push(String(a.address).toLowerCase());
    }
  };
  walk(addressparser(from) as any[]);
  return out;
}

