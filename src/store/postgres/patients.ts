// Patient conversations (PatientStore) in PostgreSQL: the Mon espace santé stand-in's memory of
// who started an exchange with which patient, and whether it was ended ([FIN]). docs/patients.md.
import type { PatientConversationChange, PatientStore } from '../types.js';
import { PgPart, type PgClient } from './connection.js';

export class PgPatients extends PgPart implements PatientStore {
  async getPatientConversation(patientMailboxId: number, professional: string) {
    return this.one(
      'SELECT * FROM patient_conversations WHERE patient_mailbox_id = $1 AND professional = $2',
      (r) => ({ patientMailboxId: r.patient_mailbox_id, professional: r.professional, openedAt: r.opened_at, lastMessageAt: r.last_message_at, closedAt: r.closed_at }),
      patientMailboxId,
      professional.toLowerCase(),
    );
  }
}

/**
 * Applies conversation changes inside the caller's transaction (PgDelivery.deliver): a
 * professional's message opens the conversation, or reopens one they had closed (a new
 * exchange); an ending message closes it, recording when.
 */
export async function applyConversationChanges(c: PgClient, changes: PatientConversationChange[]): Promise<void> {
  for (const ch of changes) {
    const who = ch.professional.toLowerCase();
    if (ch.action === 'open')
      await c.query(
        `INSERT INTO patient_conversations (patient_mailbox_id, professional, opened_at, last_message_at, closed_at) VALUES ($1, $2, $3, $3, NULL)
         ON CONFLICT (patient_mailbox_id, professional) DO UPDATE SET
           opened_at = CASE WHEN patient_conversations.closed_at IS NULL THEN patient_conversations.opened_at ELSE excluded.opened_at END,
           last_message_at = excluded.last_message_at, closed_at = NULL`,
        [ch.patientMailboxId, who, ch.at],
      );
    else
      await c.query(
        `INSERT INTO patient_conversations (patient_mailbox_id, professional, opened_at, last_message_at, closed_at) VALUES ($1, $2, $3, $3, $3)
         ON CONFLICT (patient_mailbox_id, professional) DO UPDATE SET last_message_at = excluded.last_message_at, closed_at = excluded.closed_at`,
        [ch.patientMailboxId, who, ch.at],
      );
  }
}
