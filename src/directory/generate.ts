// A realistic synthetic national extraction (same 31 columns as the Annuaire Santé's
// Extraction_Correspondance_MSSante_*.txt published on annuaire.sante.fr) for tests and
// benchmarks: every BAL type, professions and savoir-faire with their codes, structures with
// FINESS/SIRET and postal addresses, accented / apostrophe / hyphenated names, several mailboxes
// for one person. Deterministic for a given seed. No real person's data.
import { closeSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { Zip, ZipDeflate } from 'fflate';
import { CATEGORIES, PROFESSIONS, SAVOIR_FAIRE } from './codes.js';
import { COLUMNS, type ExtractionFields } from '../directory-model/entry.js';
import { fold } from '../directory-model/normalize.js';

const FAMILY = [
  'Martin', 'Bernard', 'Thomas', 'Petit', 'Robert', 'Richard', 'Durand', 'Dubois', 'Moreau', 'Laurent', 'Simon', 'Michel',
  'Lefèvre', 'Leroy', 'Roux', 'David', 'Bertrand', 'Morel', 'Fournier', 'Girard', 'Bonnet', 'Dupont', 'Lambert', 'Fontaine',
  'Rousseau', 'Vincent', 'Müller', 'Lefebvre', 'Faure', 'André', 'Mercier', 'Blanc', 'Guérin', 'Boyer', 'Garnier', 'Chevalier',
  'François', 'Legrand', 'Gauthier', 'Garcia', 'Perrin', 'Robin', 'Clément', 'Morin', 'Nicolas', 'Henry', 'Roussel', 'Mathieu',
  'Gautier', 'Masson', 'Marchand', 'Duval', 'Denis', 'Dumont', 'Marie', 'Lemaire', 'Noël', 'Meyer', 'Dufour', 'Meunier',
  "D'Arc", "N'Diaye", "D'Alembert", "L'Hôte", "D'Almeida", 'Le Goff', 'Le Gall', 'Le Roux', 'De La Fontaine', 'Saint-Just',
  'Dupont-Aignan', 'Martin-Lavigne', 'Lévêque', 'Bécquerel', 'Çelik', 'Nguyễn', 'Oeillet', 'Cœur', 'Hébert', 'Pérez',
  'Ménard', 'Lecœur', 'Brûlé', 'Château', 'Sørensen', 'Da Silva', 'Dos Santos', "O'Neill", 'Ben Saïd', 'El Idrissi',
];
const GIVEN = [
  'Claire', 'Paul', 'Jean', 'Marie', 'Hélène', 'Zoé', 'Anaïs', 'Jérôme', 'François', 'Françoise', 'Léa', 'Chloé', 'Noémie',
  'Jean-Pierre', 'Marie-Hélène', 'Jean-François', 'Anne-Sophie', 'Pierre-Yves', 'Éloïse', 'Aurélien', 'Cécile', 'Ève',
  'Mathéo', 'Raphaël', 'Gaël', 'Inès', 'Maëlle', 'Joël', 'Benoît', 'Loïc', 'Sébastien', 'Stéphane', 'Thérèse', 'Agnès',
  'Émilie', 'Camille', 'Lucas', 'Hugo', 'Louis', 'Nathalie', 'Isabelle', 'Sylvie', 'Catherine', 'Christophe', 'Nicolas',
];
/** City, postal code, department (code and name). */
const CITIES: [string, string, string][] = [
  ['PARIS', '75012', 'Paris (75)'], ['PARIS', '75014', 'Paris (75)'], ['PARIS', '75020', 'Paris (75)'], ['LYON', '69003', 'Rhône (69)'],
  ['LYON', '69008', 'Rhône (69)'], ['MARSEILLE', '13005', 'Bouches-du-Rhône (13)'], ['TOULOUSE', '31059', 'Haute-Garonne (31)'],
  ['NICE', '06000', 'Alpes-Maritimes (06)'], ['NANTES', '44093', 'Loire-Atlantique (44)'], ['STRASBOURG', '67091', 'Bas-Rhin (67)'],
  ['MONTPELLIER', '34295', 'Hérault (34)'], ['BORDEAUX', '33076', 'Gironde (33)'], ['LILLE', '59037', 'Nord (59)'],
  ['RENNES', '35033', 'Ille-et-Vilaine (35)'], ['REIMS', '51092', 'Marne (51)'], ['SAINT-ÉTIENNE', '42055', 'Loire (42)'],
  ["L'HAŸ-LES-ROSES", '94240', 'Val-de-Marne (94)'], ['NÎMES', '30029', 'Gard (30)'], ['BESANÇON', '25030', 'Doubs (25)'],
  ['ORLÉANS', '45067', 'Loiret (45)'], ['CLERMONT-FERRAND', '63003', 'Puy-de-Dôme (63)'], ['BREST', '29609', 'Finistère (29)'],
  ['AJACCIO', '20090', 'Corse-du-Sud (2A)'], ['SAINT-DENIS', '97400', 'La Réunion (974)'], ['FORT-DE-FRANCE', '97200', 'Martinique (972)'],
  ['VILLENEUVE-D’ASCQ', '59650', 'Nord (59)'], ['CHÂLONS-EN-CHAMPAGNE', '51000', 'Marne (51)'], ['ÉVRY-COURCOURONNES', '91000', 'Essonne (91)'],
];
const STREET_TYPES = ['R', 'AV', 'BD', 'PL', 'CHE', 'ALL', 'QUAI', 'RTE'];
const STREETS = ['de la République', 'Victor Hugo', 'Jean Jaurès', 'du Général de Gaulle', 'Pasteur', "de l'Hôpital", 'des Écoles', 'Émile Zola', 'de la Paix', 'Saint-Exupéry'];
const SERVICES = ['Cardiologie', 'Urgences', 'Pédiatrie', 'Radiologie', 'Maternité', 'Oncologie', 'Pharmacie à usage intérieur', 'Laboratoire de biologie', 'Secrétariat médical', 'Médecine interne', "Bureau des entrées"];
const ORG_KINDS: [string, string][] = [
  ['CENTRE HOSPITALIER', 'CH'], ['CENTRE HOSPITALIER UNIVERSITAIRE', 'CHU'], ['CLINIQUE', 'Clinique'], ['CENTRE DE SANTÉ', 'Centre de santé'],
  ['MAISON DE SANTÉ PLURIPROFESSIONNELLE', 'MSP'], ['PHARMACIE', 'Pharmacie'], ['LABORATOIRE DE BIOLOGIE MÉDICALE', 'Laboratoire'], ['EHPAD', 'EHPAD'],
];
const ORG_NAMES = ['Saint-Joseph', 'Sainte-Anne', 'du Parc', 'des Lilas', "de l'Étang", 'Pasteur', 'Jean Mermoz', 'Les Cèdres', 'Notre-Dame', 'du Littoral', 'Émile Roux', 'Val de Saône'];
/** Mailiz-like domains per profession, and hospital/operator domains. */
const PROFESSION_DOMAIN: Record<string, string> = {
  '10': 'medecin.mssante.fr', '21': 'pharmacien.mssante.fr', '40': 'chirurgien-dentiste.mssante.fr', '50': 'sage-femme.mssante.fr',
  '60': 'infirmier.mssante.fr', '70': 'masseur-kinesitherapeute.mssante.fr', '80': 'pedicure-podologue.mssante.fr',
};
const PROFESSION_WEIGHTS: [string, number][] = [
  ['10', 40], ['60', 20], ['21', 10], ['70', 8], ['40', 6], ['50', 4], ['80', 2], ['91', 2], ['93', 2], ['28', 1], ['26', 1], ['92', 1], ['94', 1], ['95', 1], ['96', 1], ['98', 1], ['86', 1], ['81', 1],
];

/** mulberry32: small, fast, deterministic PRNG (numbers in [0, 1)); also used by the benchmarks. */
export function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const slug = (s: string) => fold(s).replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

interface Structure {
  idType: string;
  id: string;
  legalName: string;
  tradeName: string;
  domain: string;
  addr: Pick<ExtractionFields, 'l2' | 'l3' | 'l4Number' | 'l4NumberExt' | 'l4StreetType' | 'l4Street' | 'l5' | 'l6' | 'postalCode' | 'department' | 'country'>;
}

export interface GenerateOptions {
  lines: number;
  seed?: number;
  /** Write a UTF-8 BOM before the header. */
  bom?: boolean;
  /** CRLF line ends (default LF). */
  crlf?: boolean;
  /** Header variant: the structure and address columns suffixed with " structure BAL". */
  structureSuffix?: boolean;
}

/** Yields the header then `lines` data lines (without line ends). */
export function* generateLines(o: GenerateOptions): Generator<string> {
  const rnd = prng(o.seed ?? 1);
  const pick = <T>(a: readonly T[]) => a[Math.floor(rnd() * a.length)];
  const totalWeight = PROFESSION_WEIGHTS.reduce((s, [, w]) => s + w, 0);
  const pickProfession = () => {
    let r = rnd() * totalWeight;
    for (const [c, w] of PROFESSION_WEIGHTS) if ((r -= w) < 0) return c;
    return '10';
  };
  const suffixed = new Set(['legalName', 'tradeName', 'l2', 'l3', 'l4Number', 'l4NumberExt', 'l4StreetType', 'l4Street', 'l5', 'l6', 'postalCode', 'department', 'country']);
  yield COLUMNS.map(([f, h]) => (o.structureSuffix && suffixed.has(f) && !h.endsWith('structure BAL') ? `${h} structure BAL` : h)).join('|');

  const structures: Structure[] = [];
  const nStructures = Math.max(4, Math.ceil(o.lines / 25));
  const newStructure = (i: number): Structure => {
    const [kind, short] = pick(ORG_KINDS);
    const [city, cp, dept] = pick(CITIES);
    const finess = rnd() < 0.75;
    const num = String(100000 + i).padStart(7, '0');
    const id = finess ? cp.slice(0, 2).replace('20', '2A') + num : String(20000000000000 + i * 7919);
    const name = pick(ORG_NAMES);
    const legalName = `${kind} ${name.toUpperCase()}${rnd() < 0.3 ? ' ' + city : ''}`;
    return {
      idType: finess ? '1' : '3',
      id,
      legalName,
      tradeName: rnd() < 0.6 ? `${short} ${name}` : '',
      domain: `${slug(short + '-' + name)}-${i % 1000}.mssante.fr`,
      addr: {
        l2: rnd() < 0.2 ? `Bâtiment ${pick(['A', 'B', 'C', 'Nord', 'Sud'])}` : '',
        l3: rnd() < 0.1 ? `BP ${Math.floor(rnd() * 900) + 100}` : '',
        l4Number: String(Math.floor(rnd() * 200) + 1),
        l4NumberExt: rnd() < 0.05 ? 'B' : '',
        l4StreetType: pick(STREET_TYPES),
        l4Street: pick(STREETS).toUpperCase(),
        l5: rnd() < 0.05 ? 'Lieu-dit Les Près' : '',
        l6: `${cp} ${city}${rnd() < 0.15 ? ' CEDEX' : ''}`,
        postalCode: cp,
        department: dept,
        country: 'FRANCE',
      },
    };
  };
  for (let i = 0; i < nStructures; i++) structures.push(newStructure(i));

  const emptyAddr = { l2: '', l3: '', l4Number: '', l4NumberExt: '', l4StreetType: '', l4Street: '', l5: '', l6: '', postalCode: '', department: '', country: '' };
  const used = new Set<string>();
  const uniqueAddress = (local: string, domain: string) => {
    let a = `${local}@${domain}`;
    for (let n = 2; used.has(a); n++) a = `${local}${n}@${domain}`;
    used.add(a);
    return a;
  };
  const fields = (f: Partial<ExtractionFields>): string => COLUMNS.map(([k]) => f[k] ?? '').join('|');

  let written = 0;
  let person = 0;
  let org = 0;
  while (written < o.lines) {
    const r = rnd();
    if (r < 0.72) {
      // A professional with 1 to 3 mailboxes: PER (Mailiz-like or a structure's), CAB.
      person++;
      const rpps = String(10000000000 + person * 37 + Math.floor(rnd() * 30)).slice(0, 11);
      const family = pick(FAMILY);
      const given = pick(GIVEN);
      const prof = pickProfession();
      const sf = SAVOIR_FAIRE[prof] ? pick(SAVOIR_FAIRE[prof]) : undefined;
      const base = {
        ppIdType: '8',
        ppId: rpps,
        ppNatId: '8' + rpps,
        civility: prof === '10' || prof === '40' || prof === '21' ? (rnd() < 0.08 ? 'PR' : 'DR') : '',
        family: rnd() < 0.5 ? family.toUpperCase() : family,
        given,
        categoryCode: rnd() < 0.97 ? 'C' : pick(['M', 'E']),
        professionCode: prof,
        professionLabel: PROFESSIONS[prof],
        specialityCode: sf?.[0] ?? '',
        specialityLabel: sf?.[1] ?? '',
        digitization: rnd() < 0.7 ? 'O' : 'N',
      };
      const cat = { categoryLabel: CATEGORIES[base.categoryCode] };
      const local = `${slug(given)}.${slug(family)}`.replace(/-/g, '');
      const n = rnd() < 0.7 ? 1 : rnd() < 0.8 ? 2 : 3;
      for (let k = 0; k < n && written < o.lines; k++) {
        if (k === 0 && PROFESSION_DOMAIN[prof] && rnd() < 0.6) {
          // PER with the RPPS only (e.g. Mailiz): Practitioner.telecom.
          const [city, cp, dept] = pick(CITIES);
          const addr = rnd() < 0.5 ? { ...emptyAddr, l4Number: String(Math.floor(rnd() * 90) + 1), l4StreetType: 'R', l4Street: pick(STREETS).toUpperCase(), l6: `${cp} ${city}`, postalCode: cp, department: dept, country: 'FRANCE' } : emptyAddr;
          yield fields({ balType: 'PER', address: uniqueAddress(local, PROFESSION_DOMAIN[prof]), ...base, ...cat, ...addr });
        } else if (k > 0 && rnd() < 0.4) {
          // CAB: the professional's practice mailbox.
          const [city, cp, dept] = pick(CITIES);
          yield fields({
            balType: 'CAB',
            address: uniqueAddress(`cabinet.${slug(family).replace(/-/g, '')}`, `cabinet-${slug(city)}.mssante.fr`),
            ...base,
            ...cat,
            l4Number: String(Math.floor(rnd() * 90) + 1),
            l4StreetType: pick(STREET_TYPES),
            l4Street: pick(STREETS).toUpperCase(),
            l6: `${cp} ${city}`,
            postalCode: cp,
            department: dept,
            country: 'FRANCE',
          });
        } else {
          // PER with RPPS + structure: PractitionerRole.telecom.
          const s = pick(structures);
          yield fields({
            balType: 'PER',
            address: uniqueAddress(local, s.domain),
            ...base,
            ...cat,
            stIdType: s.idType,
            stId: s.idType + s.id,
            service: rnd() < 0.4 ? pick(SERVICES) : '',
            legalName: s.legalName,
            tradeName: s.tradeName,
            ...s.addr,
          });
        }
        written++;
      }
    } else {
      // ORG (most) or APP mailbox of a structure: Organization.telecom.
      org++;
      const s = structures[org % structures.length];
      const app = rnd() < 0.2;
      const service = app ? '' : rnd() < 0.7 ? pick(SERVICES) : '';
      const local = app ? pick(['dmp', 'lps', 'resultats', 'crh', 'imagerie', 'labo']) + '-app' : service ? slug(service) : 'contact';
      yield fields({
        balType: app ? 'APP' : 'ORG',
        address: uniqueAddress(local, s.domain),
        stIdType: s.idType,
        stId: s.idType + s.id,
        service,
        digitization: rnd() < 0.7 ? 'O' : 'N',
        legalName: s.legalName,
        tradeName: s.tradeName,
        ...s.addr,
      });
      written++;
    }
  }
}

/** Writes a synthetic extraction to FILE (.txt, or .zip holding Extraction_Correspondance_MSSante_<date>.txt). */
export async function writeGeneratedExtraction(file: string, o: GenerateOptions): Promise<{ file: string; lines: number; bytes: number }> {
  const eol = o.crlf ? '\r\n' : '\n';
  const fd = openSync(file, 'w');
  let bytes = 0;
  try {
    const zip = /\.zip$/i.test(file);
    let sink: (b: Uint8Array) => void;
    let finish = () => {};
    if (zip) {
      const z = new Zip((err, chunk) => {
        if (err) throw err;
        writeSync(fd, chunk);
      });
      const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 12);
      const entry = new ZipDeflate(`Extraction_Correspondance_MSSante_${stamp}.txt`, { level: 6 });
      z.add(entry);
      sink = (b) => entry.push(b);
      finish = () => {
        entry.push(new Uint8Array(0), true);
        z.end();
      };
    } else sink = (b) => writeSync(fd, b);
    let buf: string[] = [];
    let size = 0;
    let first = true;
    const flush = () => {
      const b = Buffer.from(buf.join(''), 'utf8');
      bytes += b.length;
      sink(b);
      buf = [];
      size = 0;
    };
    for (const line of generateLines(o)) {
      buf.push(first && o.bom ? '\uFEFF' + line + eol : line + eol);
      first = false;
      size += line.length;
      if (size > 1 << 20) flush();
    }
    flush();
    finish();
  } finally {
    closeSync(fd);
  }
  return { file: path.resolve(file), lines: o.lines, bytes };
}
