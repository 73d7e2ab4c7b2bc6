// A whole local MSSanté trust space: a test PKI shaped like IGC-Santé, two operators with
// their own stores, ports and certificates, a trust list naming both (and any external peer),
// and demo mailboxes. Used by `caducee demo` (and so `npm start`) and by the tests.
import { createHash, randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { stringify as toYaml } from 'yaml';
import { parseConfig, type Config } from '../config/index.js';
import { Authenticator, hashNewPassword, type AdminContext } from '../auth/index.js';
import { Core } from '../core/index.js';
import { startOperator, type Operator, openStore } from '../main.js';
import { startDemoPsc, type DemoPscInfo } from './psc.js';
import { RevocationList, TestPki, type IssuedCertificate } from '../pki/index.js';
import { crlBaseUrl, ocspUrl, startCrlServer, type CrlServer } from './crl-server.js';
import { buildTrustListXml } from '../trust/list.js';
import { withInsKey } from '../policy/patients.js';

/** Demo data is set up by `caducee demo` itself (audit trail: command line). */
const DEMO_SETUP: AdminContext = { protocol: 'cli', actor: 'caducee demo', remote: null };

export interface DemoUser {
  login: string;
  /** Account password: web login (first factor; the second is TOTP). Never accepted by IMAP/SMTP. */
  password: string;
  /** App password for mail clients (IMAP, SMTP submission). */
  appPassword: string;
  displayName: string;
  /** Mailboxes this user owns. */
  addresses: string[];
  /** Mailboxes this user reaches through a grant. */
  delegated: string[];
}

/** What every operator of the demo space has: its listeners, files and TLS identity. */
export interface DemoNodeInfo {
  name: string;
  domain: string;
  hostname: string;
  host: string;
  ports: { mx: number; submission: number; submissions: number; http: number; https: number; imap: number; imaps: number };
  config: string;
  dataDir: string;
  caBundle: string;
  crl: string;
  cert: string;
  key: string;
  chain: string;
  dn: string;
  http?: string;
  https?: string;
  /** Its store when not the embedded SQLite file: PostgreSQL, a schema of its own (`caducee demo --postgres`). */
  store?: DemoStore;
  /** The processes serving it when it runs as several nodes (`caducee demo --postgres URL --nodes N`). */
  nodes?: DemoNodeProcessInfo[];
}

/** A demo operator's PostgreSQL store: one schema per operator in the database given to the demo. */
export interface DemoStore {
  kind: 'postgres';
  url: string;
  schema: string;
}

/** One node of an operator running as several (`caducee start --config <config>` each). */
export interface DemoNodeProcessInfo {
  /** 1, 2, …: its name in leases and logs is `<hostname>-node-<node>` (cluster.nodeId). */
  node: number;
  pid: number;
  ports: { mx: number; submission: number; submissions: number; http: number; https: number; imap: number; imaps: number };
  /** Its configuration file: the operator's store, data directory and message files, its own ports. */
  config: string;
}

/** A patient of the Mon espace santé stand-in: logs in like any user (IMAP, submission, web). */
export interface DemoPatientUser extends DemoUser {
  /** The patient's INS (NIR), the local part of their address. */
  ins: string;
  /** 'closed': the patient closed their Mon espace santé profile (mailbox suspended): mail to it gets the automatic answer. */
  state: 'active' | 'closed';
}

/**
 * The third local operator, standing in for Mon espace santé (patients' messaging) on its own
 * domain (default patient.mssante.test): in the trust list, its own ports, patient mailboxes
 * `<INS>@domain`, the conversation rule and the automatic answers (docs/patients.md).
 */
export interface DemoPatientServiceInfo extends DemoNodeInfo {
  users: DemoPatientUser[];
  /** A well-formed INS address with no mailbox: answered automatically ("unknown"). */
  unknownAddress: string;
}

export interface DemoOperatorInfo {
  name: string;
  domain: string;
  hostname: string;
  host: string;
  ports: { mx: number; submission: number; submissions: number; http: number; https: number; imap: number; imaps: number };
  config: string;
  dataDir: string;
  caBundle: string;
  crl: string;
  cert: string;
  key: string;
  chain: string;
  dn: string;
  users: DemoUser[];
  /**
   * Client certificates for strong authentication (issue 5; SASL EXTERNAL over TLS client
   * authentication), issued by the demo CA: PEM certificate (leaf) and PEM private key (PKCS#8)
   * paths. `personal`: a CPS-like certificate of the demo practitioner (serialNumber "8" + RPPS);
   * `organisation`: an IGC-Santé-style organisation certificate of the operator's structure
   * (OU "1" + FINESS or "3" + SIRET), for software using the structure's APP mailbox.
   */
  certificates: DemoCertificates;
  /** Base URL of the HTTP server (JSON API under /api, FHIR directory under /fhir), once started. */
  http?: string;
  /** Base URL of the HTTPS server (web login under /api/auth, the same APIs), once started. */
  https?: string;
  /** Its PostgreSQL store (`caducee demo --postgres`); absent: the SQLite file in dataDir. */
  store?: DemoStore;
  /**
   * Operator B with `--postgres URL --nodes N`: its N processes on one store, data directory and
   * message files; `ports` are then node 1's, and the other operators route to every node's MX.
   */
  nodes?: DemoNodeProcessInfo[];
}

export interface DemoCertificates {
  /** `login`: the practitioner's user; `rpps`: the RPPS in the certificate. */
  personal: { login: string; rpps: string; cert: string; key: string };
  /** `structure`: "FINESS:<id>" or "SIRET:<id>"; `appMailbox`: the structure's APP mailbox. */
  organisation: { structure: string; cert: string; key: string; appMailbox: string };
}

export interface DemoPeerInfo {
  domain: string;
  host: string;
  port: number;
  cert: string;
  key: string;
  chain: string;
  dn: string;
}

export interface DemoLayout {
  dir: string;
  pkiDir: string;
  caBundle: string;
  crl: string;
  /**
   * The demo PKI's CRL distribution points, served over HTTP by the demo (src/demo/crl-server.ts):
   * every certificate of the space names `<baseUrl>/intermediate.crl` or `<baseUrl>/root.crl`.
   * The same server is the PKI's OCSP responder, `http://host:port/ocsp` (src/demo/ocsp-responder.ts),
   * named in the end-entity certificates of spaces made since it exists. Absent in spaces made
   * before distribution points existed.
   */
  crlServer?: { host: string; port: number; baseUrl: string };
  trustList: string;
  operators: DemoOperatorInfo[];
  peers: DemoPeerInfo[];
  /** The Pro Santé Connect stand-in, once started (`caducee demo` only). */
  psc?: DemoPscInfo;
  /** The Mon espace santé stand-in (patients), unless the space was prepared with `patients: false`. */
  patientService?: DemoPatientServiceInfo;
}

interface OperatorSpec {
  name: string;
  domain: string;
  hostname: string;
  org: string;
  siret: string;
  dept: string;
  ports: { mx: number; submission: number; submissions: number; http: number; https: number; imap: number; imaps: number };
  structure: { idType: 'FINESS' | 'SIRET'; idValue: string; name: string };
  practitioner: { rpps: string; givenName: string; familyName: string; login: string; civility: string; professionCode: string };
  secretary: { login: string; displayName: string };
  orgMailbox: { local: string; displayName: string; service: string };
  /** The structure's applicative (APP) mailbox, used by software with the organisation certificate. */
  appMailbox: { local: string; displayName: string };
}

const SPECS: OperatorSpec[] = [
  {
    name: 'Opérateur A — Hôpital de démonstration',
    domain: 'a.mssante.test',
    hostname: 'mx.a.mssante.test',
    org: 'CENTRE HOSPITALIER DEMO A',
    siret: '26750045200011',
    dept: 'Paris (75)',
    ports: { mx: 2525, submission: 2587, submissions: 2465, http: 2080, https: 2443, imap: 2143, imaps: 2993 },
    structure: { idType: 'FINESS', idValue: '750000001', name: 'Centre hospitalier de démonstration A' },
    practitioner: { rpps: '10001234567', givenName: 'Claire', familyName: 'Martin', login: 'claire.martin', civility: 'DR', professionCode: '10' },
    secretary: { login: 'secretariat.cardio', displayName: 'Secrétariat de cardiologie' },
    orgMailbox: { local: 'cardiologie', displayName: 'Service de cardiologie', service: 'Cardiologie' },
    appMailbox: { local: 'lps', displayName: 'Logiciel de démonstration' },
  },
  {
    name: 'Opérateur B — Plateforme régionale de démonstration',
    domain: 'b.mssante.test',
    hostname: 'mx.b.mssante.test',
    org: 'GIP SANTE DEMO B',
    siret: '13000000000019',
    dept: 'Rhône (69)',
    ports: { mx: 3525, submission: 3587, submissions: 3465, http: 3080, https: 3443, imap: 3143, imaps: 3993 },
    structure: { idType: 'SIRET', idValue: '13000000000019', name: 'Maison de santé de démonstration B' },
    practitioner: { rpps: '10007654321', givenName: 'Paul', familyName: 'Bernard', login: 'paul.bernard', civility: 'DR', professionCode: '10' },
    secretary: { login: 'accueil.msp', displayName: 'Accueil de la maison de santé' },
    orgMailbox: { local: 'accueil', displayName: 'Accueil de la maison de santé', service: 'Accueil' },
    appMailbox: { local: 'lps', displayName: 'Logiciel de démonstration' },
  },
];

const password = () => randomBytes(12).toString('base64url');

/** The demo's CRL distribution point with the documented ports (A's are 25xx, B's 35xx). */
export const DEMO_CRL_PORT = 2070;

/**
 * CRL servers started by prepareDemo with ephemeral ports, before the PKI named their URL in its
 * certificates; startDemo adopts them (by demo directory). Unref'd until then.
 */
const preparedCrlServers = new Map<string, CrlServer>();

/**
 * Closes the CRL server prepareDemo started for `dir` (ephemeral ports) when another process is to
 * run the demo (`caducee demo --dir`, as the benches do): that process listens on the port itself.
 */
export async function releasePreparedDemo(dir: string): Promise<void> {
  const key = path.resolve(dir);
  const server = preparedCrlServers.get(key);
  preparedCrlServers.delete(key);
  await server?.close();
}

export interface PrepareOptions {
  /** 'fixed' uses the documented ports (2525…, 3525…); 'ephemeral' lets the system choose. */
  ports?: 'fixed' | 'ephemeral';
  peers?: { domain: string; host: string; port: number }[];
  host?: string;
  /** Overrides merged into both operators' configurations (tests: fast retries). */
  configOverrides?: Record<string, unknown>;
  /** The Mon espace santé stand-in: on (default, domain patient.mssante.test), another domain, or off. */
  patients?: boolean | { domain?: string };
  /**
   * Every operator's store in this PostgreSQL database (`caducee demo --postgres URL`), each in a
   * schema of its own created by the demo (demo_<hash of the directory>_<first label of the domain>).
   */
  postgres?: { url: string };
}

/** The schema of a demo operator's store in the demo's PostgreSQL database: one per directory and operator. */
function demoStore(dir: string, domain: string, opts: PrepareOptions): DemoStore | undefined {
  if (!opts.postgres) return undefined;
  const hash = createHash('sha256').update(path.resolve(dir)).digest('hex').slice(0, 8);
  const label = domain.split('.')[0].toLowerCase().replace(/[^a-z0-9]/g, '_').slice(0, 40);
  return { kind: 'postgres', url: opts.postgres.url, schema: `demo_${hash}_${label}` };
}

/** A demo directory keeps the store kind it was made with (its users live in that store). */
function checkStoreKind(dir: string, ops: { domain: string; store?: DemoStore }[], opts: PrepareOptions) {
  for (const op of ops) {
    if (!!op.store !== !!opts.postgres)
      throw new Error(
        `the demo directory ${dir} was made ${op.store ? 'with --postgres' : 'without --postgres'} (operator ${op.domain}): run the demo ${op.store ? 'with --postgres' : 'without --postgres'} on it, or give another --dir`,
      );
    if (op.store && opts.postgres && op.store.url !== opts.postgres.url) op.store.url = opts.postgres.url;
  }
}

/** A fresh demo operator on PostgreSQL starts from an empty schema (a directory deleted and made again). */
async function emptySchema(store: DemoStore): Promise<void> {
  try {
    const { dropSchema } = await import('../store/postgres/index.js');
    await dropSchema(store.url, store.schema);
  } catch (e: any) {
    if (!/^cannot connect to PostgreSQL/.test(e.message)) throw e;
    throw new Error(`caducee demo --postgres: ${e.message}; check the URL, that PostgreSQL is running and accepts this user`, { cause: e });
  }
}

export const DEFAULT_DEMO_PATIENT_DOMAIN = 'patient.mssante.test';

const PATIENT_SERVICE = {
  name: 'Mon espace santé — service de démonstration (patients)',
  org: 'MON ESPACE SANTE DEMO',
  siret: '18000000000017',
  dept: 'Paris (75)',
  ports: { mx: 4525, submission: 4587, submissions: 4465, http: 4080, https: 4443, imap: 4143, imaps: 4993 },
  structure: { idType: 'SIRET' as const, idValue: '18000000000017', name: 'Mon espace santé (démonstration)' },
  /** Test INS with valid NIR keys (withInsKey); one Corsican (2A). */
  patients: [
    { ins: withInsKey('1850575123456'), login: 'patient.dupont', displayName: 'Jean Dupont', state: 'active' as const },
    { ins: withInsKey('292112A004012'), login: 'patient.santoni', displayName: 'Marie Santoni', state: 'active' as const },
    { ins: withInsKey('2920218004012'), login: 'patient.leroy', displayName: 'Louise Leroy', state: 'active' as const },
    { ins: withInsKey('1780369388021'), login: 'patient.durand', displayName: 'Paul Durand', state: 'closed' as const },
  ],
  unknownIns: withInsKey('1690133055123'),
};

function patientDomainOf(opts: PrepareOptions): string | undefined {
  if (opts.patients === false) return undefined;
  return ((typeof opts.patients === 'object' && opts.patients.domain) || DEFAULT_DEMO_PATIENT_DOMAIN).toLowerCase();
}

/** Creates (or reuses, when `dir` already holds one) the files of a demo trust space. */
export async function prepareDemo(dir: string, opts: PrepareOptions = {}): Promise<DemoLayout> {
  mkdirSync(dir, { recursive: true });
  const layoutFile = path.join(dir, 'demo.json');
  if (existsSync(layoutFile)) {
    const layout = JSON.parse(readFileSync(layoutFile, 'utf8')) as DemoLayout;
    // Spaces made before the HTTP listener existed: give each operator its HTTP port.
    layout.operators.forEach((op, i) => (op.ports.http ??= opts.ports === 'ephemeral' ? 0 : SPECS[i].ports.http));
    layout.operators.forEach((op, i) => (op.ports.https ??= opts.ports === 'ephemeral' ? 0 : SPECS[i].ports.https));
    // New peers may join an existing space.
    const missing = (opts.peers ?? []).filter((p) => !layout.peers.some((q) => q.domain === p.domain));
    // Spaces made before client certificates existed (issue 5) go through the full path below.
    const patientsReady = !patientDomainOf(opts) || layout.patientService?.domain === patientDomainOf(opts);
    checkStoreKind(dir, [...layout.operators, ...(layout.patientService ? [layout.patientService] : [])], opts);
    if (missing.length === 0 && layout.operators.every(hasClientCertificates) && patientsReady) return layout;
  }
  const host = opts.host ?? '127.0.0.1';
  const pkiDir = path.join(dir, 'pki');
  // A new PKI names its CRL distribution points, served by the demo: on the documented port, or,
  // with ephemeral ports, on one chosen now by listening (the server is handed over to startDemo).
  let crlServer: DemoLayout['crlServer'];
  let pki: TestPki;
  if (!TestPki.exists(pkiDir)) {
    if (opts.ports === 'ephemeral') {
      const server = await startCrlServer(pkiDir, host, 0);
      server.server.unref();
      preparedCrlServers.get(path.resolve(dir))?.close();
      preparedCrlServers.set(path.resolve(dir), server);
      crlServer = { host, port: server.port, baseUrl: server.baseUrl };
    } else {
      crlServer = { host, port: DEMO_CRL_PORT, baseUrl: crlBaseUrl(host, DEMO_CRL_PORT) };
    }
    // The same server answers OCSP: end-entity certificates name it (AIA), operators staple its answer.
    pki = await TestPki.create(pkiDir, { crlBaseUrl: crlServer.baseUrl, ocspUrl: ocspUrl(crlServer.host, crlServer.port) });
  } else {
    pki = await TestPki.load(pkiDir);
  }
  const certsDir = path.join(dir, 'certs');
  mkdirSync(certsDir, { recursive: true });

  const previous: DemoLayout | undefined = existsSync(layoutFile) ? JSON.parse(readFileSync(layoutFile, 'utf8')) : undefined;
  crlServer ??= previous?.crlServer;
  if (previous) checkStoreKind(dir, [...previous.operators, ...(previous.patientService ? [previous.patientService] : [])], opts);
  const operators: DemoOperatorInfo[] = [];
  for (const spec of SPECS) {
    const known = previous?.operators.find((o) => o.domain === spec.domain);
    if (known) {
      known.ports.http ??= opts.ports === 'ephemeral' ? 0 : spec.ports.http;
      known.ports.https ??= opts.ports === 'ephemeral' ? 0 : spec.ports.https;
      known.certificates = await clientCertificates(pki, certsDir, spec, known.domain);
      operators.push(known);
      continue;
    }
    const issued = await pki.issueServer({ host: spec.hostname, siret: spec.siret, org: spec.org, dept: spec.dept, altNames: ['localhost', host] });
    const files = await pki.writeIssued(certsDir, spec.hostname, issued);
    const opDir = path.join(dir, spec.domain);
    const ports = opts.ports === 'ephemeral' ? { mx: 0, submission: 0, submissions: 0, http: 0, https: 0, imap: 0, imaps: 0 } : spec.ports;
    const store = demoStore(dir, spec.domain, opts);
    if (store) await emptySchema(store);
    operators.push({
      ...(store ? { store } : {}),
      name: spec.name,
      domain: spec.domain,
      hostname: spec.hostname,
      host,
      ports,
      config: path.join(opDir, 'caducee.yaml'),
      dataDir: path.join(opDir, 'data'),
      caBundle: pki.caBundlePath,
      crl: pki.crlPath,
      cert: files.certPath,
      key: files.keyPath,
      chain: files.chainPath,
      dn: issued.subjectDn,
      users: [],
      certificates: await clientCertificates(pki, certsDir, spec, spec.domain),
    });
  }

  const peers: DemoPeerInfo[] = [...(previous?.peers ?? [])];
  for (const p of opts.peers ?? []) {
    if (peers.some((q) => q.domain === p.domain)) continue;
    const hostname = `mx.${p.domain}`;
    const issued = await pki.issueServer({
      host: hostname,
      siret: '99999999900018',
      org: `OPERATEUR EXTERNE ${p.domain.toUpperCase()}`,
      dept: 'Paris (75)',
      altNames: ['localhost', p.host],
    });
    const files = await pki.writeIssued(certsDir, hostname, issued);
    peers.push({ domain: p.domain, host: p.host, port: p.port, cert: files.certPath, key: files.keyPath, chain: files.chainPath, dn: issued.subjectDn });
  }

  // The Mon espace santé stand-in: a third operator with its own certificate and ports.
  const patientDomain = patientDomainOf(opts);
  let patientService: DemoPatientServiceInfo | undefined = previous?.patientService?.domain === patientDomain ? previous?.patientService : undefined;
  if (patientDomain && !patientService) {
    const hostname = `mx.${patientDomain}`;
    const issued = await pki.issueServer({ host: hostname, siret: PATIENT_SERVICE.siret, org: PATIENT_SERVICE.org, dept: PATIENT_SERVICE.dept, altNames: ['localhost', host] });
    const files = await pki.writeIssued(certsDir, hostname, issued);
    const opDir = path.join(dir, patientDomain);
    const store = demoStore(dir, patientDomain, opts);
    if (store) await emptySchema(store);
    patientService = {
      ...(store ? { store } : {}),
      name: PATIENT_SERVICE.name,
      domain: patientDomain,
      hostname,
      host,
      ports: opts.ports === 'ephemeral' ? { mx: 0, submission: 0, submissions: 0, http: 0, https: 0, imap: 0, imaps: 0 } : { ...PATIENT_SERVICE.ports },
      config: path.join(opDir, 'caducee.yaml'),
      dataDir: path.join(opDir, 'data'),
      caBundle: pki.caBundlePath,
      crl: pki.crlPath,
      cert: files.certPath,
      key: files.keyPath,
      chain: files.chainPath,
      dn: issued.subjectDn,
      users: [],
      unknownAddress: `${PATIENT_SERVICE.unknownIns}@${patientDomain}`,
    };
  }
  const nodes: DemoNodeInfo[] = [...operators, ...(patientService ? [patientService] : [])];

  const trustList = path.join(dir, 'listeblanche.xml');
  writeFileSync(
    trustList,
    buildTrustListXml([
      ...operators.map((o) => ({ domain: o.domain, operatorDn: o.dn, description: o.name })),
      ...peers.map((p) => ({ domain: p.domain, operatorDn: p.dn, description: `Opérateur externe ${p.domain}` })),
      ...(patientService ? [{ domain: patientService.domain, operatorDn: patientService.dn, description: patientService.name }] : []),
    ]),
  );

  // Demo data in each operator's store.
  for (const [i, op] of operators.entries()) {
    if (op.users.length) continue;
    const spec = SPECS[i];
    const raw = configFor(op, nodes, peers, trustList, opts.configOverrides, patientDomain);
    const config = parseConfig(raw, path.dirname(op.config));
    const store = await openStore(config);
    try {
      const core = new Core(store, config.operator.domains);
      await core.createStructure(spec.structure.idType, spec.structure.idValue, spec.structure.name);
      const pr = spec.practitioner;
      await core.createPractitioner({ rpps: pr.rpps, givenName: pr.givenName, familyName: pr.familyName, civility: pr.civility, professionCode: pr.professionCode });
      const docPassword = password();
      const secPassword = password();
      const docName = `Dr ${pr.givenName} ${pr.familyName}`;
      await core.createUser({ login: pr.login, displayName: docName, passwordHash: await hashNewPassword(docPassword), rpps: pr.rpps });
      await core.createUser({ login: spec.secretary.login, displayName: spec.secretary.displayName, passwordHash: await hashNewPassword(secPassword) });
      const per = `${pr.givenName}.${pr.familyName}@${op.domain}`.toLowerCase();
      const cab = `cabinet.${pr.familyName}@${op.domain}`.toLowerCase();
      const org = `${spec.orgMailbox.local}@${op.domain}`;
      await core.createMailbox({ address: per, type: 'PER', displayName: docName, owner: pr.login, structure: spec.structure });
      await core.createMailbox({ address: cab, type: 'CAB', displayName: `Cabinet du ${docName}`, owner: pr.login, rpps: pr.rpps });
      await core.createMailbox({
        address: org,
        type: 'ORG',
        displayName: spec.orgMailbox.displayName,
        owner: spec.secretary.login,
        structure: spec.structure,
        service: spec.orgMailbox.service,
      });
      // The secretariat reads and sends on behalf of the physician (golden rule 1: read daily).
      await core.grant(per, spec.secretary.login, ['read', 'send']);
      await core.grant(org, pr.login, ['read', 'send']);
      // Mail clients never use the account password: each demo user gets an app password.
      const auth = new Authenticator(store);
      const appPassword = async (login: string) => (await auth.createAppPassword(await core.requireUser(login), 'Démo — client de messagerie', DEMO_SETUP)).password;
      op.users = [
        { login: pr.login, password: docPassword, appPassword: await appPassword(pr.login), displayName: docName, addresses: [per, cab], delegated: [org] },
        {
          login: spec.secretary.login,
          password: secPassword,
          appPassword: await appPassword(spec.secretary.login),
          displayName: spec.secretary.displayName,
          addresses: [org],
          delegated: [per],
        },
      ];
    } finally {
      await store.close();
    }
  }
  // Demo spaces made before app passwords existed: give their users one.
  for (const op of operators) {
    if (op.users.every((u) => u.appPassword)) continue;
    const store = await openStore(parseConfig(configFor(op, nodes, peers, trustList, opts.configOverrides, patientDomain), path.dirname(op.config)));
    try {
      const auth = new Authenticator(store);
      for (const u of op.users) {
        const user = u.appPassword ? undefined : await store.findUserByLogin(u.login);
        if (user) u.appPassword = (await auth.createAppPassword(user, 'Démo — client de messagerie', DEMO_SETUP)).password;
      }
    } finally {
      await store.close();
    }
  }
  // The APP mailbox of each structure (also added to spaces made before it existed).
  for (const [i, op] of operators.entries()) {
    const spec = SPECS[i];
    const config = parseConfig(configFor(op, nodes, peers, trustList, opts.configOverrides, patientDomain), path.dirname(op.config));
    const store = await openStore(config);
    try {
      if (!(await store.findMailboxByAddress(op.certificates.organisation.appMailbox))) {
        const core = new Core(store, config.operator.domains);
        await core.createMailbox({ address: op.certificates.organisation.appMailbox, type: 'APP', displayName: spec.appMailbox.displayName, structure: spec.structure });
      }
    } finally {
      await store.close();
    }
  }
  const layout: DemoLayout = {
    dir,
    pkiDir,
    caBundle: pki.caBundlePath,
    crl: pki.crlPath,
    ...(crlServer ? { crlServer } : {}),
    trustList,
    operators,
    peers,
    ...(patientService ? { patientService } : {}),
  };
    // The stand-in's patients (also added to spaces made before it existed).
  if (patientService && patientService.users.length === 0) await createPatients(patientService, nodes, peers, trustList, opts.configOverrides);
  for (const op of nodes) writeConfig(op, nodes, peers, trustList, opts.configOverrides, patientDomain);
  writeFileSync(layoutFile, JSON.stringify(layout, null, 2), { mode: 0o600 });
  return layout;
}

function hasClientCertificates(op: DemoOperatorInfo): boolean {
  const c = op.certificates;
  return !!c && [c.personal.cert, c.personal.key, c.organisation.cert, c.organisation.key].every((f) => existsSync(f));
}

/**
 * The demo practitioner's personal certificate and the structure's organisation certificate,
 * reused when the demo directory already holds them (the PKI lives there too).
 */
async function clientCertificates(pki: TestPki, certsDir: string, spec: OperatorSpec, domain: string): Promise<DemoCertificates> {
  const pr = spec.practitioner;
  const st = spec.structure;
  /** Leaf certificate and key paths of `base` in certsDir, issuing them first when missing. */
  const files = async (base: string, issue: () => Promise<IssuedCertificate>): Promise<{ cert: string; key: string }> => {
    const cert = path.join(certsDir, `${base}.crt.pem`);
    const key = path.join(certsDir, `${base}.key.pem`);
    if (existsSync(cert) && existsSync(key)) return { cert, key };
    const written = await pki.writeIssued(certsDir, base, await issue());
    return { cert: written.certPath, key: written.keyPath };
  };
  const personal = await files(`personal-${pr.login}`, () =>
    pki.issuePersonal({ rpps: pr.rpps, givenName: pr.givenName, surname: pr.familyName, profession: 'Médecin' }),
  );
  const organisation = await files(`organisation-${st.idType.toLowerCase()}-${st.idValue}`, () =>
    pki.issueOrganisation({ id: st.idValue, idType: st.idType, org: st.name, unit: spec.appMailbox.displayName }),
  );
  return {
    personal: { login: pr.login, rpps: pr.rpps, ...personal },
    organisation: { structure: `${st.idType}:${st.idValue}`, ...organisation, appMailbox: `${spec.appMailbox.local}@${domain}` },
  };
}

function configFor(op: DemoNodeInfo, all: DemoNodeInfo[], peers: DemoPeerInfo[], trustList: string, overrides?: Record<string, unknown>, patientDomain?: string) {
  const routes: Record<string, string | string[]> = {};
  // An operator running as several nodes: every node's MX, tried in order (config: routes).
  for (const other of all) if (other !== op) routes[other.domain] = mxRoute(other);
  for (const p of peers) routes[p.domain] = `${p.host}:${p.port}`;
  const base: any = {
    operator: { name: op.name, hostname: op.hostname, domains: [op.domain] },
    dataDir: op.dataDir,
    // PostgreSQL (`caducee demo --postgres`): the nodes of the operator share the store, the data
    // directory (secrets key) and its message files (blobs/ in it).
    ...(op.store ? { store: { kind: 'postgres', url: op.store.url, schema: op.store.schema } } : {}),
    listen: { host: op.host, ...op.ports },
    tls: { cert: op.chain, key: op.key, ca: op.caBundle, crl: [op.crl] }, // chain file: leaf + intermediate
    trust: { list: trustList, refreshMinutes: 1 },
    routes,
    // Demo: retry quickly so a peer coming back is noticed at once; give up after an hour.
    queue: { retrySeconds: [5, 15, 30, 60], giveUpSeconds: 3600 },
    // Demo: every client (mail clients, benchmarks' thousands of IDLE sessions, the other
    // operator) comes from 127.0.0.1, so the per-address limits are the whole budget.
    limits: { connectionsPerAddress: 25_000, connections: 30_000, connectionsPerAddressPerMinute: 1_000_000 },
  };
  // Patients' addresses are on the stand-in's domain (docs/patients.md); the stand-in hosts it.
  if (patientDomain) base.patients = { domain: patientDomain };
  return deepMerge(base, overrides ?? {});
}

/** The static route to an operator of the space: its MX, or each of its nodes' MX in order. */
function mxRoute(op: DemoNodeInfo): string | string[] {
  return op.nodes?.length ? op.nodes.map((n) => `${op.host}:${n.ports.mx}`) : `${op.host}:${op.ports.mx}`;
}

function writeConfig(op: DemoNodeInfo, all: DemoNodeInfo[], peers: DemoPeerInfo[], trustList: string, overrides?: Record<string, unknown>, patientDomain?: string) {
  mkdirSync(path.dirname(op.config), { recursive: true });
  const header = `# Caducée demo operator ${op.domain}, written by \`caducee demo\`.\n# Administration commands act on it with --config ${op.config}\n`;
  writeFileSync(op.config, header + toYaml(configFor(op, all, peers, trustList, overrides, patientDomain)));
}

/**
 * The stand-in's data: its structure, and per test patient a user (app and web passwords) owning
 * the mailbox `<INS>@domain` — an organisational-type mailbox of the service's structure (MSSanté
 * has no patient BAL type), on the liste rouge (never published); a closed profile is suspended.
 */
async function createPatients(ps: DemoPatientServiceInfo, nodes: DemoNodeInfo[], peers: DemoPeerInfo[], trustList: string, overrides?: Record<string, unknown>): Promise<void> {
  const config = parseConfig(configFor(ps, nodes, peers, trustList, overrides, ps.domain), path.dirname(ps.config));
  const store = await openStore(config);
  try {
    const core = new Core(store, config.operator.domains);
    const st = PATIENT_SERVICE.structure;
    if (!(await store.findStructure(st.idType, st.idValue))) await core.createStructure(st.idType, st.idValue, st.name);
    const auth = new Authenticator(store);
    for (const p of PATIENT_SERVICE.patients) {
      const address = `${p.ins}@${ps.domain}`;
      const webPassword = password();
      await core.createUser({ login: p.login, displayName: p.displayName, passwordHash: await hashNewPassword(webPassword) });
      await core.createMailbox({ address, type: 'ORG', displayName: p.displayName, owner: p.login, structure: st, listeRouge: true, description: 'Patient (Mon espace santé, démonstration)' });
      if (p.state === 'closed') await core.setMailboxState(address, 'suspended');
      const appPassword = (await auth.createAppPassword(await core.requireUser(p.login), 'Démo — client de messagerie', DEMO_SETUP)).password;
      ps.users.push({ login: p.login, password: webPassword, appPassword, displayName: p.displayName, addresses: [address], delegated: [], ins: p.ins, state: p.state });
    }
  } finally {
    await store.close();
  }
}

function deepMerge(a: any, b: any): any {
  if (typeof a !== 'object' || a === null || Array.isArray(a) || typeof b !== 'object' || b === null || Array.isArray(b)) return b;
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = k in a ? deepMerge(a[k], v) : v;
  return out;
}

/** A node process of an operator (`caducee demo --postgres URL --nodes N`). */
export interface RunningNode {
  info: DemoNodeProcessInfo;
  child: ChildProcess;
  /** Resolves when the process has exited (its code, or the signal that ended it). */
  exited: Promise<number | NodeJS.Signals | null>;
  /** How many log records of each message (`msg`) the node wrote since it started ('delivered', …). */
  logged: Map<string, number>;
}

export interface RunningDemo {
  layout: DemoLayout;
  /**
   * The operators of health professionals run in this process (A, B; only A when B runs as
   * node processes: see `nodes`).
   */
  operators: Operator[];
  /** Operator B's node processes (`nodes` option on a PostgreSQL space), in order. */
  nodes: RunningNode[];
  /** The Mon espace santé stand-in, when the space has one. */
  patientService?: Operator;
  stop(): Promise<void>;
}

/** Starts both operators; with ephemeral ports, routes and config files are updated to the real ports. */
export async function startDemo(
  layout: DemoLayout,
  opts: {
    logger?: Logger;
    configOverrides?: Record<string, unknown>;
    /** Start the Pro Santé Connect stand-in (default true). */
    psc?: boolean;
    /**
     * Operator B as this many node processes (`caducee start` each) on its PostgreSQL store, the
     * others routing to every node's MX. Needs a space prepared with `postgres`; default: with
     * PostgreSQL, 1 node process; on SQLite, B runs in this process as the others do.
     */
    nodes?: number;
    /**
     * Publish a fresh CRL when the PKI's is past half its life, at start and daily, as a CA does
     * before nextUpdate (default true; tests of the stale-CRL rule turn it off).
     */
    republishCrl?: boolean;
  } = {},
): Promise<RunningDemo> {
  const B = layout.operators[1];
  if (opts.nodes !== undefined && !B?.store)
    throw new Error('--nodes needs --postgres: the nodes of an operator share its PostgreSQL store (give --postgres postgres://user@host:port/database)');
  const nodeCount = B?.store ? Math.max(1, opts.nodes ?? 1) : 0;
  const started: Operator[] = [];
  const nodeProcesses: RunningNode[] = [];
  // The OpenID provider standing in for Pro Santé Connect, first: the operators need its issuer.
  // Its settings go to the running operators only, not to the configuration files (its client
  // secret lives for this run).
  // A caller bringing its own provider (auth.oidc in configOverrides) gets no stand-in.
  // The CRL distribution points first: the operators fetch their CRLs as they start.
  const crl = await startDemoCrl(layout, opts.republishCrl !== false, opts.logger);
  const ownOidc = !!(opts.configOverrides as any)?.auth?.oidc;
  let psc: Awaited<ReturnType<typeof startDemoPsc>> | undefined;
  try {
    psc = opts.psc === false || ownOidc ? undefined : await startDemoPsc(layout, { ephemeral: layout.operators.some((op) => op.ports.mx === 0), logger: opts.logger?.child({ component: 'demo-psc' }) });
  } catch (e) {
    await crl?.stop();
    throw e;
  }
  // Every operator of the space: the two of health professionals, then the Mon espace santé stand-in.
  const nodes: DemoNodeInfo[] = [...layout.operators, ...(layout.patientService ? [layout.patientService] : [])];
  const patientDomain = layout.patientService?.domain;
  // The operators run in this process: all of them, or all but B when B runs as node processes.
  const local = nodes.filter((op) => !(nodeCount && op === B));
  if (nodeCount) delete B.nodes; // a previous run's nodes: gone
  const overrides = psc ? deepMerge(psc.configOverrides, opts.configOverrides ?? {}) : opts.configOverrides;
  let patientService: Operator | undefined;
  try {
    for (const op of local) {
      const raw = configFor(op, nodes, layout.peers, layout.trustList, overrides, patientDomain);
      const config: Config = parseConfig(raw, path.dirname(op.config));
      const running = await startOperator(config, { logger: opts.logger?.child({ operator: op.domain }) });
      if (op === layout.patientService) patientService = running;
      else started.push(running);
    }
  } catch (e) {
    await Promise.all([...started, ...(patientService ? [patientService] : [])].map((s) => s.stop()));
    await psc?.stop();
    await crl?.stop();
    throw e;
  }
  layout.psc = psc?.info;
  // Publish the actual ports: in the layout, each operator's routes, and the config files.
  const running = [...started, ...(patientService ? [patientService] : [])];
  local.forEach((op, i) => (op.ports = { ...running[i].ports }));
  if (nodeCount) {
    // B's nodes start once the others' ports are known (their routes name them).
    try {
      nodeProcesses.push(...(await startNodes(B, nodeCount, nodes, layout, overrides, patientDomain, opts.logger)));
    } catch (e) {
      await Promise.all(running.map((s) => s.stop()));
      await psc?.stop();
      await crl?.stop();
      throw e;
    }
    B.nodes = nodeProcesses.map((n) => n.info);
    B.ports = { ...B.nodes[0].ports };
  }
  nodes.forEach((op) => (op.http = `http://${op.host}:${op.ports.http}`));
  nodes.forEach((op) => (op.https = `https://${op.host}:${op.ports.https}`));
  local.forEach((op, i) => {
    for (const other of nodes) if (other !== op) running[i].config.routes[other.domain] = mxRoute(other);
  });
  nodes.forEach((op) => writeConfig(op, nodes, layout.peers, layout.trustList, opts.configOverrides, patientDomain));
  writeFileSync(path.join(layout.dir, 'demo.json'), JSON.stringify(layout, null, 2), { mode: 0o600 });
  const demo: RunningDemo = {
    layout,
    operators: started,
    nodes: nodeProcesses,
    patientService,
    async stop() {
      // What runs now: tests restart an operator and put it in its place.
      await Promise.all([...demo.nodes.map(stopNode), ...[...demo.operators, ...(demo.patientService ? [demo.patientService] : [])].map((s) => s.stop())]);
      await psc?.stop();
      await crl?.stop();
    },
  };
  return demo;
}

/**
 * Serves the demo PKI's CRLs at the distribution points its certificates name (the server
 * prepareDemo started on an ephemeral port, or a new one on the layout's port), and keeps the CRL
 * fresh: a new one when the current is past half its life, at start and then daily.
 */
async function startDemoCrl(layout: DemoLayout, republish: boolean, logger: Logger | undefined): Promise<{ stop(): Promise<void> } | undefined> {
  if (!layout.crlServer) return undefined;
  const key = path.resolve(layout.dir);
  let server = preparedCrlServers.get(key);
  preparedCrlServers.delete(key);
  if (server) server.server.ref();
  else {
    try {
      server = await startCrlServer(layout.pkiDir, layout.crlServer.host, layout.crlServer.port);
    } catch (e: any) {
      throw new Error(`cannot serve the demo CRLs on ${layout.crlServer.baseUrl} (the port the demo certificates name): ${e.message}`);
    }
  }
  const freshen = async () => {
    try {
      const crl = RevocationList.parse(readFileSync(path.join(layout.pkiDir, 'intermediate.crl')));
      const life = (crl.nextUpdate?.getTime() ?? Infinity) - crl.thisUpdate.getTime();
      if (Date.now() < crl.thisUpdate.getTime() + life / 2) return;
      await (await TestPki.load(layout.pkiDir)).writeCrl();
      logger?.info({ url: layout.crlServer?.baseUrl }, 'demo PKI: a new CRL is published');
    } catch (e: any) {
      logger?.warn({ err: e.message }, 'demo PKI: the CRL could not be republished');
    }
  };
  let timer: NodeJS.Timeout | undefined;
  if (republish) {
    await freshen();
    timer = setInterval(() => void freshen(), 24 * 3_600_000);
    timer.unref();
  }
  const running = server;
  return {
    async stop() {
      clearInterval(timer);
      await running.close();
    },
  };
}

const CADUCEE_BIN = fileURLToPath(new URL('../../bin/caducee.js', import.meta.url));

/**
 * Starts `count` processes of operator `op` (`caducee start --workers 1 --config node-<i>.yaml`):
 * the operator's configuration (same PostgreSQL store, data directory and message files) with
 * ports of their own (the documented ones + i - 1, or chosen by the system) and a node name.
 * Resolves once each has logged 'operator started' (its real ports).
 */
async function startNodes(
  op: DemoOperatorInfo,
  count: number,
  all: DemoNodeInfo[],
  layout: DemoLayout,
  overrides: Record<string, unknown> | undefined,
  patientDomain: string | undefined,
  logger: Logger | undefined,
): Promise<RunningNode[]> {
  const base = configFor(op, all, layout.peers, layout.trustList, overrides, patientDomain);
  const starting = Array.from({ length: count }, (_, k) => {
    const node = k + 1;
    const ports = Object.fromEntries(Object.entries(op.ports).map(([name, p]) => [name, p ? p + k : 0])) as DemoNodeProcessInfo['ports'];
    const config = path.join(path.dirname(op.config), `node-${node}.yaml`);
    const raw = deepMerge(base, { listen: { ...ports }, cluster: { nodeId: `${op.hostname}-node-${node}` } });
    const header = `# Caducée demo operator ${op.domain}, node ${node} of ${count}, written by \`caducee demo --postgres\` (holds this run's secrets).\n`;
    writeFileSync(config, header + toYaml(raw), { mode: 0o600 });
    return startNode(node, config, logger?.child({ operator: op.domain, node }));
  });
  const settled = await Promise.allSettled(starting);
  const up = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(up.map(stopNode));
    throw failed.reason;
  }
  return up;
}

function startNode(node: number, config: string, logger: Logger | undefined): Promise<RunningNode> {
  return new Promise((resolve, reject) => {
    // The IPC channel ties the node to this process: it stops when the demo ends, even killed.
    const child = spawn(process.execPath, [CADUCEE_BIN, 'start', '--workers', '1', '--config', config], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const exited = new Promise<number | NodeJS.Signals | null>((r) => child.once('exit', (code, signal) => r(code ?? signal)));
    let up = false;
    const logged = new Map<string, number>();
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      out += d;
      for (let i = out.indexOf('\n'); i >= 0; i = out.indexOf('\n')) {
        const line = out.slice(0, i);
        out = out.slice(i + 1);
        let j: any;
        try {
          j = JSON.parse(line);
        } catch {
          continue;
        }
        if (!up && j.msg === 'operator started') {
          up = true;
          const { mx, submission, submissions, http, https, imap, imaps } = j;
          resolve({ info: { node, pid: child.pid!, ports: { mx, submission, submissions, http, https, imap, imaps }, config }, child, exited, logged });
          continue;
        }
        if (typeof j.msg === 'string') logged.set(j.msg, (logged.get(j.msg) ?? 0) + 1);
        if (up && j.level >= 40) logger?.[j.level >= 50 ? 'error' : 'warn']({ pid: child.pid, detail: j }, `node: ${j.msg}`);
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      if (up) logger?.error({ pid: child.pid, stderr: d.slice(-2000) }, 'node wrote to stderr');
      else err += d;
    });
    void exited.then((status) => {
      if (!up) reject(new Error(`node ${node} (caducee start --config ${config}) exited (${status}) before listening: ${err.slice(-2000).trim()}`));
      else logger?.info({ pid: child.pid, status }, 'node exited');
    });
  });
}

/** SIGTERM, then SIGKILL if still running after 20 s; resolves once it has exited. */
async function stopNode(n: RunningNode): Promise<void> {
  if (n.child.exitCode !== null || n.child.signalCode !== null) return;
  n.child.kill('SIGTERM');
  const timer = setTimeout(() => n.child.kill('SIGKILL'), 20_000);
  await n.exited;
  clearTimeout(timer);
}
