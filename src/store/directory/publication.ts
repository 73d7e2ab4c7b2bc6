// What this operator published of its own mailboxes to the national directory:
// dataDir/directory-state.sqlite (better-sqlite3, WAL), apart from the snapshot files.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { PublicationStore, PublishedMailbox } from './types.js';

export const STATE_FILE = 'directory-state.sqlite';

export class SqlitePublicationStore implements PublicationStore {
  private readonly db: Database.Database;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.db = new Database(path.join(dataDir, STATE_FILE));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`CREATE TABLE IF NOT EXISTS published_mailboxes (
  address TEXT PRIMARY KEY COLLATE NOCASE,
  resource_type TEXT NOT NULL,
  condition TEXT NOT NULL,
  telecom TEXT NOT NULL,
  published_at TEXT NOT NULL)`);
  }

  async listPublished(): Promise<PublishedMailbox[]> {
    return this.db
      .prepare('SELECT * FROM published_mailboxes ORDER BY address')
      .all()
      .map((r: any) => ({ address: r.address, resourceType: r.resource_type, condition: r.condition, telecom: r.telecom, publishedAt: r.published_at }));
  }

  async recordPublished(upserts: Omit<PublishedMailbox, 'publishedAt'>[], removed: string[]) {
    const at = new Date().toISOString();
    const up = this.db.prepare(
      'INSERT INTO published_mailboxes (address, resource_type, condition, telecom, published_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET resource_type = excluded.resource_type, condition = excluded.condition, telecom = excluded.telecom, published_at = excluded.published_at',
    );
    const del = this.db.prepare('DELETE FROM published_mailboxes WHERE address = ?');
    this.db.transaction(() => {
      for (const u of upserts) up.run(u.address, u.resourceType, u.condition, u.telecom, at);
      for (const a of removed) del.run(a);
    })();
  }

  async close() {
    if (this.db.open) this.db.close();
  }
}
