// Shared fixtures of the directory tests: a small hand-written national extraction (with the
// quirks of real files) and an operator store with our own mailboxes, one on the liste rouge.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { zipSync, strToU8 } from 'fflate';
import { Core } from '../src/core/index.js';
import { generateLines } from '../src/directory/generate.js';
import { COLUMNS, type ExtractionFields } from '../src/directory-model/entry.js';
import { SqliteStore } from '../src/store/sqlite/index.js';

export const HEADER = COLUMNS.map(([, h]) => h);
export const line = (f: Partial<ExtractionFields>) => COLUMNS.map(([k]) => f[k] ?? '').join('|');

const CHU = { stIdType: '1', stId: '1750712184', legalName: 'CENTRE HOSPITALIER UNIVERSITAIRE SAINT-MARTIN', tradeName: 'CHU Saint-Martin', l4Number: '10', l4StreetType: 'R', l4Street: 'DE LA PAIX', l6: '42055 SAINT-ÉTIENNE CEDEX', postalCode: '42055', department: 'Loire (42)', country: 'FRANCE' };
const MED = { ppIdType: '8', civility: 'DR', categoryCode: 'C', categoryLabel: 'Civil', professionCode: '10', professionLabel: 'Médecin' };

/** Named lines every test can rely on (line numbers: header is line 1). */
export const KNOWN: Partial<ExtractionFields>[] = [
  { balType: 'PER', address: 'eloise.lecoeur@medecin.mssante.fr', ...MED, ppId: '10000000001', ppNatId: '810000000001', family: 'LECŒUR', given: 'Éloïse', specialityCode: 'SM04', specialityLabel: 'Cardiologie et maladies vasculaires', l6: '75012 PARIS', postalCode: '75012', l4Number: '3', l4StreetType: 'R', l4Street: 'DE PICPUS' },
  { balType: 'CAB', address: 'cabinet.lecoeur@cabinet-paris.mssante.fr', ...MED, ppId: '10000000001', ppNatId: '810000000001', family: 'LECŒUR', given: 'Éloïse', specialityCode: 'SM04', specialityLabel: 'Cardiologie et maladies vasculaires', l6: '75012 PARIS', postalCode: '75012' },
  { balType: 'PER', address: 'eloise.lecoeur@chu-saint-martin.mssante.fr', ...MED, ppId: '10000000001', ppNatId: '810000000001', family: 'LECŒUR', given: 'Éloïse', specialityCode: 'SM04', specialityLabel: 'Cardiologie et maladies vasculaires', service: 'Cardiologie', ...CHU },
  { balType: 'PER', address: "jp.dalembert@medecin.mssante.fr", ...MED, ppId: '10000000002', ppNatId: '810000000002', family: "D'ALEMBERT", given: 'Jean-Pierre', specialityCode: 'SM54', specialityLabel: 'Médecine générale', l6: "94240 L'HAŸ-LES-ROSES", postalCode: '94240' },
  { balType: 'PER', address: 'paul.martin@medecin.mssante.fr', ...MED, ppId: '10000000003', ppNatId: '810000000003', family: 'MARTIN', given: 'Paul', specialityCode: 'SM54', specialityLabel: 'Médecine générale', l6: '69003 LYON', postalCode: '69003' },
  { balType: 'PER', address: 'zoe.martinez@infirmier.mssante.fr', ppIdType: '8', ppId: '10000000004', ppNatId: '810000000004', family: 'Martinez', given: 'Zoé', professionCode: '60', professionLabel: 'Infirmier', l6: '69003 LYON', postalCode: '69003' },
  { balType: 'PER', address: 'luc.durand@chu-saint-martin.mssante.fr', ppIdType: '8', ppId: '10000000005', ppNatId: '810000000005', family: 'Durand', given: 'Luc', professionCode: '70', professionLabel: 'Masseur-Kinésithérapeute', ...CHU },
  { balType: 'ORG', address: 'urgences@chu-saint-martin.mssante.fr', service: 'Urgences', digitization: 'O', ...CHU },
  { balType: 'APP', address: 'dmp-app@chu-saint-martin.mssante.fr', ...CHU },
];

/** Header variant and quirks: BOM, CRLF, " structure BAL" suffixes, a bad line, a duplicate, a blank line. */
export function extractionText(extra: Partial<ExtractionFields>[] = [], opts: { noise?: number; omit?: string[]; change?: Partial<ExtractionFields> } = {}): string {
  const header = COLUMNS.map(([f, h]) => (['l2', 'l3', 'l6', 'postalCode', 'department', 'country'].includes(f) ? `${h} structure BAL` : h)).join('|');
  const rows = [...KNOWN, ...extra]
    .filter((f) => !opts.omit?.includes(f.address!))
    .map((f) => (opts.change?.address === f.address ? { ...f, ...opts.change } : f))
    .map(line);
  rows.splice(3, 0, 'XYZ|bad@x.mssante.fr' + '|'.repeat(29)); // line 5: unknown BAL type
  rows.push(line(KNOWN[0])); // duplicate address
  if (opts.noise) rows.push(...[...generateLines({ lines: opts.noise, seed: 3 })].slice(1));
  return '\uFEFF' + [header, ...rows, ''].join('\r\n');
}

export function writeExtraction(dir: string, name: string, text: string, zip = false): string {
  const file = path.join(dir, name);
  if (zip) writeFileSync(file, zipSync({ 'README.txt': strToU8('Annuaire Santé'), 'Extraction_Correspondance_MSSante_202501010000.txt': strToU8(text) }));
  else writeFileSync(file, text);
  return file;
}

/** Our operator: a practitioner also in the national data, mailboxes of every kind, one on the liste rouge. */
export async function ourMailboxes(dataDir: string) {
  const store = SqliteStore.open(path.join(dataDir, 'caducee.sqlite'));
  const core = new Core(store, ['x.mssante.test']);
  await core.createStructure('FINESS', '750712184', 'Hôpital Démo X');
  await core.createPractitioner({ rpps: '10000000001', familyName: 'Lecœur', givenName: 'Éloïse', civility: 'DR', professionCode: '10' });
  await core.createPractitioner({ rpps: '10000000099', familyName: 'Secret', givenName: 'Rouge', professionCode: '10' });
  const owner = await core.createUser({ login: 'rouge', displayName: 'Dr Rouge Secret', rpps: '10000000099' });
  await core.createUser({ login: 'other', displayName: 'Other' });
  await core.createMailbox({ address: 'eloise.lecoeur@x.mssante.test', type: 'PER', displayName: 'Dr Éloïse Lecœur', rpps: '10000000001' });
  await core.createMailbox({ address: 'cardio@x.mssante.test', type: 'ORG', displayName: 'Cardiologie', structure: { idType: 'FINESS', idValue: '750712184' }, service: 'Cardiologie' });
  await core.createMailbox({ address: 'rouge.secret@x.mssante.test', type: 'PER', displayName: 'Dr Rouge Secret', owner: 'rouge', listeRouge: true });
  return { store, core, ownerId: owner.id };
}

/**
 * A snapshot of the known lines, `extra` and `noise` generated ones, imported in one thread into
 * DIR/data of a fresh temporary directory, with a reader on it (no warm-up, no caching of the
 * file's state) and every entry in rank order (the tests' in-memory reference).
 */
export async function importedReader(extra: Partial<ExtractionFields>[], noise: number) {
  const { tempDir } = await import('./helpers.js');
  const { importExtraction } = await import('../src/directory/import.js');
  const { SqliteSnapshotWriter } = await import('../src/store/directory/snapshot-writer.js');
  const { SqliteDirectoryReader } = await import('../src/store/directory/reader.js');
  const { dir, cleanup } = tempDir();
  const dataDir = path.join(dir, 'data');
  const file = writeExtraction(dir, 'ext.txt', extractionText(extra, { noise }));
  const s = await importExtraction({ file, writer: await SqliteSnapshotWriter.open(dataDir, { threaded: false }) });
  const reader = new SqliteDirectoryReader(dataDir, { recheckMs: 0, warm: false });
  const everything = reader.searchSync({ clauses: [] }, 100_000).entries;
  if (everything.length !== s.imported) throw new Error(`${everything.length} entries read, ${s.imported} imported`);
  return { dir, dataDir, reader, everything, imported: s.imported, cleanup };
}
