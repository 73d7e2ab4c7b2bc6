// Nomenclatures (NOS, "nomenclatures des objets de santé", published by the ANS) used by the
// directory: code systems of the FHIR facade and the code lists of the synthetic extraction.
// The extraction itself carries every label it uses: these lists only feed `generate` and give
// a label to our own practitioners' profession codes. See docs/directory.md for what is inferred.

/** FHIR canonical URL of a NOS code system (pattern of the ANS terminology server). */
export const nos = (id: string) => `https://mos.esante.gouv.fr/NOS/${id}/FHIR/${id.replace('_', '-')}`;

export const SYSTEMS = {
  /** TRE_R257-TypeBAL: PER, ORG, APP, CAB (ANS NOS, mos.esante.gouv.fr/NOS/TRE_R257-TypeBAL). */
  typeBal: nos('TRE_R257-TypeBAL'),
  /** TRE_R256-TypeMessagerie: MSSANTE (value of fr-core-contact-point-email-type). */
  typeMessagerie: nos('TRE_R256-TypeMessagerie'),
  /** TRE_G15-ProfessionSante: profession codes (10 médecin, 21 pharmacien, …). */
  profession: nos('TRE_G15-ProfessionSante'),
  /** TRE_R38-SpecialiteOrdinale: savoir-faire (SM.. spécialités ordinales). */
  savoirFaire: nos('TRE_R38-SpecialiteOrdinale'),
  /** TRE_R09-CategorieProfessionnelle: C civil, M militaire, E étudiant. */
  categorie: nos('TRE_R09-CategorieProfessionnelle'),
  /** TRE_R11-CiviliteExercice: DR, PR, … */
  civiliteExercice: nos('TRE_R11-CiviliteExercice'),
  /** Identification nationale PP (type digit + RPPS/ADELI): ANS IG ansforge/IG-fhir-annuaire. */
  idNatPs: 'urn:oid:1.2.250.1.71.4.2.1',
  /** RPPS number alone (11 digits). */
  rpps: 'https://rpps.esante.gouv.fr',
  /** Identification nationale structure (type digit + FINESS/SIRET/…). */
  idNatSt: 'urn:oid:1.2.250.1.71.4.2.2',
  finess: 'https://finess.esante.gouv.fr',
  siret: 'https://sirene.fr',
  /** FR Core identifier types (IDNPS, RPPS, IDNST, FINEG, SIRET). */
  identifierType: 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203',
} as const;

export const EXTENSIONS = {
  /** FR Core: type of an e-mail ContactPoint (MSSANTE, …). */
  emailType: 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type',
  /** ANS Annuaire: metadata of an MSSanté mailbox (type, listeRouge, description, service, responsible, …). */
  mailboxMetadata: 'https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-ext-mailbox-mss-metadata',
} as const;

/** TRE_G08-TypeIdentifiantPersonne digits used in "Identification nationale PP". */
export const PP_ID_TYPES: Record<string, string> = { '0': 'ADELI', '8': 'RPPS' };
/** TRE_G07-TypeIdentifiantStructure digits used in "Identification Structure" (inferred mapping). */
export const STRUCTURE_ID_TYPES: Record<string, string> = { '1': 'FINESS', '2': 'SIREN', '3': 'SIRET', '4': 'RPPS-RANG' };

/** TRE_G15-ProfessionSante: the professions found in the extraction. */
export const PROFESSIONS: Record<string, string> = {
  '10': 'Médecin',
  '21': 'Pharmacien',
  '26': 'Audioprothésiste',
  '28': 'Opticien-Lunetier',
  '40': 'Chirurgien-Dentiste',
  '50': 'Sage-Femme',
  '60': 'Infirmier',
  '70': 'Masseur-Kinésithérapeute',
  '80': 'Pédicure-Podologue',
  '81': 'Orthoprothésiste',
  '86': 'Technicien de laboratoire médical',
  '91': 'Orthophoniste',
  '92': 'Orthoptiste',
  '93': 'Psychologue',
  '94': 'Ergothérapeute',
  '95': 'Diététicien',
  '96': 'Psychomotricien',
  '98': 'Manipulateur ERM',
};

/** Savoir-faire by profession, shaped like TRE_R38 (synthetic data; labels as published, numbers indicative). */
export const SAVOIR_FAIRE: Record<string, [string, string][]> = {
  '10': [
    ['SM54', 'Médecine générale'],
    ['SM26', 'Qualifié en Médecine Générale'],
    ['SM04', 'Cardiologie et maladies vasculaires'],
    ['SM15', 'Dermatologie et vénéréologie'],
    ['SM19', 'Endocrinologie et métabolisme'],
    ['SM24', 'Gastro-entérologie et hépatologie'],
    ['SM29', 'Gynécologie-obstétrique'],
    ['SM32', 'Neurologie'],
    ['SM38', 'Ophtalmologie'],
    ['SM40', 'Oto-rhino-laryngologie'],
    ['SM42', 'Pédiatrie'],
    ['SM43', 'Pneumologie'],
    ['SM44', 'Psychiatrie'],
    ['SM47', 'Radio-diagnostic'],
    ['SM49', 'Rhumatologie'],
    ['SM02', 'Anesthésie-réanimation'],
  ],
  '40': [
    ['SCD01', 'Orthopédie dento-faciale'],
    ['SCD02', 'Chirurgie orale'],
    ['SCD03', 'Médecine bucco-dentaire'],
  ],
  '21': [
    ['PH01', 'Pharmacie d’officine'],
    ['PH02', 'Pharmacie hospitalière'],
  ],
};

/** TRE_R09-CategorieProfessionnelle. */
export const CATEGORIES: Record<string, string> = { C: 'Civil', M: 'Militaire', E: 'Etudiant' };

export const professionLabel = (code: string | null | undefined) => (code ? PROFESSIONS[code] : undefined);
