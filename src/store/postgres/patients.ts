// Patient conversations (PatientStore) in PostgreSQL: the Mon espace santé stand-in's memory of
// who started an exchange with which patient, and whether it was ended ([FIN]). docs/patients.md.
import type { PatientStore } from '../types.js';
import { PgPart } from './connection.js';
import { hasNul } from './text.js';
import { rowPatientConversation } from '../rows.js';

export class PgPatients extends PgPart implements PatientStore {
  async getPatientConversation(patientMailboxId: number, professional: string) {
    if (hasNul(professional)) return undefined; // no stored address has one (text.ts)
    return this.one(
      'SELECT * FROM patient_conversations WHERE patient_mailbox_id = $1 AND professional = $2',
      rowPatientConversation,
      patientMailboxId,
      professional.toLowerCase(),
    );
  }
}

// Conversation changes written by a delivery: conversations.ts (branch pg-mail), re-exported
// under the SQLite file's export name.
export { applyConversationChanges } from './conversations.js';
