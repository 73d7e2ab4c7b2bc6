// Structures, practitioners and user accounts (AccountStore) in PostgreSQL.
import type { Practitioner, Structure, StructureIdType } from '../../model/index.js';
import type { AccountStore } from '../types.js';
import { now, PgPart, StoreConflictError, wrapUnique } from './connection.js';
import { checkStorableName, hasNul, storable } from './text.js';
import { rowPractitioner, rowStructure, rowUser } from '../rows.js';

export class PgAccounts extends PgPart implements AccountStore {
  async getPreferences(userId: number) {
    return (await this.one('SELECT prefs FROM user_preferences WHERE user_id = $1', (r) => r.prefs as string, userId));
  }

  async setPreferences(userId: number, json: string) {
    await this.query(
      'INSERT INTO user_preferences (user_id, prefs, updated_at) VALUES ($1, $2, $3) ON CONFLICT (user_id) DO UPDATE SET prefs = excluded.prefs, updated_at = excluded.updated_at',
      [userId, json, now()],
    );
  }

  async createStructure(s: { idType: StructureIdType; idValue: string; name: string }) {
    checkStorableName('structure identifier', s.idValue);
    return wrapUnique(`structure ${s.idType} ${s.idValue}`, async () => {
      const [r] = await this.query('INSERT INTO structures (id_type, id_value, name, created_at) VALUES ($1, $2, $3, $4) RETURNING *', [s.idType, s.idValue, storable(s.name), now()]);
      return rowStructure(r);
    });
  }
  async findStructure(idType: StructureIdType, idValue: string) {
    if (hasNul(idValue)) return undefined; // no stored identifier has one (text.ts)
    return this.one('SELECT * FROM structures WHERE id_type = $1 AND id_value = $2', rowStructure, idType, idValue);
  }
  async getStructure(id: number) {
    return this.one('SELECT * FROM structures WHERE id = $1', rowStructure, id);
  }
  async listStructures() {
    return (await this.query('SELECT * FROM structures ORDER BY id')).map(rowStructure);
  }

  async createPractitioner(p: Omit<Practitioner, 'id' | 'createdAt'>) {
    checkStorableName('RPPS', p.rpps);
    return wrapUnique(`practitioner RPPS ${p.rpps}`, async () => {
      const [r] = await this.query(
        'INSERT INTO practitioners (rpps, family_name, given_name, civility, profession_code, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *',
        [p.rpps, storable(p.familyName), storable(p.givenName), storable(p.civility ?? null), storable(p.professionCode ?? null), now()],
      );
      return rowPractitioner(r);
    });
  }
  async findPractitionerByRpps(rpps: string) {
    if (hasNul(rpps)) return undefined;
    return this.one('SELECT * FROM practitioners WHERE rpps = $1', rowPractitioner, rpps);
  }
  async getPractitioner(id: number) {
    return this.one('SELECT * FROM practitioners WHERE id = $1', rowPractitioner, id);
  }
  async listPractitioners() {
    return (await this.query('SELECT * FROM practitioners ORDER BY id')).map(rowPractitioner);
  }

  async createUser(u: { login: string; displayName: string; practitionerId: number | null; passwordHash: string | null }) {
    // Logins are unique whatever the case of their ASCII letters (the users_login index on
    // lower(login) in the "C" collation: SQLite's NOCASE, migrations.ts).
    checkStorableName('login', u.login);
    return wrapUnique(`user ${u.login}`, async () => {
      const [r] = await this.query('INSERT INTO users (login, display_name, practitioner_id, password_hash, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING *', [
        u.login,
        storable(u.displayName),
        u.practitionerId,
        u.passwordHash,
        now(),
      ]);
      return rowUser(r);
    });
  }
  async getUser(id: number) {
    return this.one('SELECT * FROM users WHERE id = $1', rowUser, id);
  }
  async findUserByLogin(login: string) {
    if (hasNul(login)) return undefined;
    return this.one('SELECT * FROM users WHERE lower(login) = lower($1::text COLLATE "C")', (r) => ({ ...rowUser(r), passwordHash: r.password_hash as string | null }), login);
  }
  async setUserPassword(id: number, passwordHash: string) {
    await this.query('UPDATE users SET password_hash = $1 WHERE id = $2', [passwordHash, id]);
  }
  async listUsers() {
    return (await this.query('SELECT * FROM users ORDER BY id')).map(rowUser);
  }
  async findUserByRpps(rpps: string) {
    if (hasNul(rpps)) return undefined;
    return this.one('SELECT u.* FROM users u JOIN practitioners p ON p.id = u.practitioner_id WHERE p.rpps = $1 ORDER BY u.id LIMIT 1', rowUser, rpps);
  }
  async applicationAccount(structure: Structure) {
    const found = await this.one('SELECT * FROM users WHERE structure_id = $1', rowUser, structure.id);
    if (found) return found;
    // A login that no person can choose (":" is refused in user logins by the CLI and core).
    const login = `app:${structure.idType.toLowerCase()}:${structure.idValue}`;
    // Two nodes creating it at once get the one row: the partial unique index
    // users_structure_account arbitrates (the loser's insert does nothing) — unless the loser's
    // insert got past that index before the winner's row was there and then met the winner's
    // login in users_login, which is a unique violation (not an arbiter index): found next.
    let created: any;
    try {
      [created] = await this.query(
        `INSERT INTO users (login, display_name, practitioner_id, password_hash, created_at, structure_id) VALUES ($1, $2, NULL, NULL, $3, $4)
         ON CONFLICT (structure_id) WHERE structure_id IS NOT NULL DO NOTHING RETURNING *`,
        [login, storable(`Application — ${structure.name}`), now(), structure.id],
      );
    } catch (e) {
      if (!(e instanceof StoreConflictError)) throw e;
    }
    if (created) return rowUser(created);
    const existing = await this.one('SELECT * FROM users WHERE structure_id = $1', rowUser, structure.id);
    if (!existing) throw new Error(`application account of structure #${structure.id}: neither created nor found; try again`);
    return existing;
  }
}
