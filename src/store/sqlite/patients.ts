// Patient conversations (PatientStore) in SQLite: the Mon espace santé stand-in's memory of who
// started an exchange with which patient, and whether it was ended ([FIN]). docs/patients.md.
import type { PatientConversationChange, PatientStore } from '../types.js';
import { SqlitePart, type SqliteConnection } from './connection.js';
import { rowPatientConversation } from '../rows.js';

export class SqlitePatients extends SqlitePart implements PatientStore {
  async getPatientConversation(patientMailboxId: number, professional: string) {
    const r: any = this.q('SELECT * FROM patient_conversations WHERE patient_mailbox_id = ? AND professional = ?').get(patientMailboxId, professional.toLowerCase());
    if (!r) return undefined;
    return rowPatientConversation(r);
  }
}

/**
 * Applies conversation changes inside the caller's transaction (SqliteDelivery.deliver): a
 * professional's message opens the conversation, or reopens one they had closed (a new
 * exchange); an ending message closes it, recording when.
 */
export function applyConversationChanges(part: SqliteConnection, changes: PatientConversationChange[]): void {
  const open = part.q(
    `INSERT INTO patient_conversations (patient_mailbox_id, professional, opened_at, last_message_at, closed_at) VALUES (?, ?, ?, ?, NULL)
     ON CONFLICT (patient_mailbox_id, professional) DO UPDATE SET
       opened_at = CASE WHEN closed_at IS NULL THEN opened_at ELSE excluded.opened_at END,
       last_message_at = excluded.last_message_at, closed_at = NULL`,
  );
  const close = part.q(
    `INSERT INTO patient_conversations (patient_mailbox_id, professional, opened_at, last_message_at, closed_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (patient_mailbox_id, professional) DO UPDATE SET last_message_at = excluded.last_message_at, closed_at = excluded.closed_at`,
  );
  for (const c of changes) {
    const who = c.professional.toLowerCase();
    if (c.action === 'open') open.run(c.patientMailboxId, who, c.at, c.at);
    else close.run(c.patientMailboxId, who, c.at, c.at, c.at);
  }
}
