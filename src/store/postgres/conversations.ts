// Patient conversations written by a delivery (the Mon espace santé stand-in, docs/patients.md):
// PgDelivery.deliver calls this inside its transaction, as SqliteDelivery calls sqlite/patients.ts.
import type { PatientConversationChange } from '../types.js';
import type { PgClient } from './connection.js';

/**
 * Applies conversation changes inside the caller's transaction: a professional's message opens the
 * conversation, or reopens one they had closed (a new exchange); an ending message closes it,
 * recording when. Each change is one upsert, so two nodes delivering for one pair at once both apply.
 */
export async function applyConversationChanges(c: PgClient, changes: PatientConversationChange[]): Promise<void> {
  for (const ch of changes) {
    const who = ch.professional.toLowerCase();
    if (ch.action === 'open')
      await c.query(
        `INSERT INTO patient_conversations (patient_mailbox_id, professional, opened_at, last_message_at, closed_at) VALUES ($1, $2, $3, $3, NULL)
         ON CONFLICT (patient_mailbox_id, professional) DO UPDATE SET
           opened_at = CASE WHEN patient_conversations.closed_at IS NULL THEN patient_conversations.opened_at ELSE EXCLUDED.opened_at END,
           last_message_at = EXCLUDED.last_message_at, closed_at = NULL`,
        [ch.patientMailboxId, who, ch.at],
      );
    else
      await c.query(
        `INSERT INTO patient_conversations (patient_mailbox_id, professional, opened_at, last_message_at, closed_at) VALUES ($1, $2, $3, $3, $3)
         ON CONFLICT (patient_mailbox_id, professional) DO UPDATE SET last_message_at = EXCLUDED.last_message_at, closed_at = EXCLUDED.closed_at`,
        [ch.patientMailboxId, who, ch.at],
      );
  }
}
