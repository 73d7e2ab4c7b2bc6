// Structures, practitioners and user accounts (AccountStore) in SQLite.
import type { Practitioner, Structure, StructureIdType } from '../../model/index.js';
import type { AccountStore } from '../types.js';
import { now, SqlitePart, wrapUnique } from './connection.js';
import { rowPractitioner, rowStructure, rowUser } from '../rows.js';

export class SqliteAccounts extends SqlitePart implements AccountStore {
  async getPreferences(userId: number) {
    return (this.q('SELECT prefs FROM user_preferences WHERE user_id = ?').get(userId) as { prefs: string } | undefined)?.prefs;
  }

  async setPreferences(userId: number, json: string) {
    this.q('INSERT INTO user_preferences (user_id, prefs, updated_at) VALUES (?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET prefs = excluded.prefs, updated_at = excluded.updated_at').run(userId, json, now());
  }

  async createStructure(s: { idType: StructureIdType; idValue: string; name: string }) {
    return wrapUnique(`structure ${s.idType} ${s.idValue}`, () => {
      const r = this.db
        .prepare('INSERT INTO structures (id_type, id_value, name, created_at) VALUES (?, ?, ?, ?) RETURNING *')
        .get(s.idType, s.idValue, s.name, now());
      return rowStructure(r);
    });
  }
  async findStructure(idType: StructureIdType, idValue: string) {
    return this.one('SELECT * FROM structures WHERE id_type = ? AND id_value = ?', rowStructure, idType, idValue);
  }
  async getStructure(id: number) {
    return this.one('SELECT * FROM structures WHERE id = ?', rowStructure, id);
  }
  async listStructures() {
    return this.q('SELECT * FROM structures ORDER BY id').all().map(rowStructure);
  }

  async createPractitioner(p: Omit<Practitioner, 'id' | 'createdAt'>) {
    return wrapUnique(`practitioner RPPS ${p.rpps}`, () =>
      rowPractitioner(
        this.db
          .prepare('INSERT INTO practitioners (rpps, family_name, given_name, civility, profession_code, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING *')
          .get(p.rpps, p.familyName, p.givenName, p.civility ?? null, p.professionCode ?? null, now()),
      ),
    );
  }
  async findPractitionerByRpps(rpps: string) {
    return this.one('SELECT * FROM practitioners WHERE rpps = ?', rowPractitioner, rpps);
  }
  async getPractitioner(id: number) {
    return this.one('SELECT * FROM practitioners WHERE id = ?', rowPractitioner, id);
  }
  async listPractitioners() {
    return this.q('SELECT * FROM practitioners ORDER BY id').all().map(rowPractitioner);
  }

  async createUser(u: { login: string; displayName: string; practitionerId: number | null; passwordHash: string | null }) {
    return wrapUnique(`user ${u.login}`, () =>
      rowUser(
        this.db
          .prepare('INSERT INTO users (login, display_name, practitioner_id, password_hash, created_at) VALUES (?, ?, ?, ?, ?) RETURNING *')
          .get(u.login, u.displayName, u.practitionerId, u.passwordHash, now()),
      ),
    );
  }
  async getUser(id: number) {
    return this.one('SELECT * FROM users WHERE id = ?', rowUser, id);
  }
  async findUserByLogin(login: string) {
    const r: any = this.q('SELECT * FROM users WHERE login = ?').get(login);
    return r ? { ...rowUser(r), passwordHash: r.password_hash as string | null } : undefined;
  }
  async setUserPassword(id: number, passwordHash: string) {
    this.q('UPDATE users SET password_hash = ? WHERE id = ?').run(passwordHash, id);
  }
  async listUsers() {
    return this.q('SELECT * FROM users ORDER BY id').all().map(rowUser);
  }
  async findUserByRpps(rpps: string) {
    return this.one('SELECT u.* FROM users u JOIN practitioners p ON p.id = u.practitioner_id WHERE p.rpps = ? ORDER BY u.id LIMIT 1', rowUser, rpps);
  }
  async applicationAccount(structure: Structure) {
    return this.db.transaction(() => {
      const r = this.q('SELECT * FROM users WHERE structure_id = ?').get(structure.id);
      if (r) return rowUser(r);
      // A login that no person can choose (":" is refused in user logins by the CLI and core).
      const login = `app:${structure.idType.toLowerCase()}:${structure.idValue}`;
      return rowUser(
        this.q('INSERT INTO users (login, display_name, practitioner_id, password_hash, created_at, structure_id) VALUES (?, ?, NULL, NULL, ?, ?) RETURNING *').get(
          login,
          `Application — ${structure.name}`,
          now(),
          structure.id,
        ),
      );
    })();
  }
}
