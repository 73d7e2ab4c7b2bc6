// Revocation at run time (issue 13, "TLS profile"): the demo serves its PKI's CRLs at the
// distribution points its certificates name, and the operators download them on a schedule
// (tls.crlRefresh). Real sockets: the demo's CRL server over HTTP, a peer presenting its client
// certificate to operator A's MX over STARTTLS. The CRL files of tls.crl are left out here, so
// what the operator knows of revocation comes from the downloads alone.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import type { Operator } from '../src/main.js';
import { TestPki, x509 } from '../src/pki/index.js';
import { probe, tempDir, testLogger, waitFor } from './helpers.js';

const PEER = { domain: 'c.mssante.test', host: '127.0.0.1', port: 1 };

/** Every distribution point A follows has given it a CRL. */
const allFetched = (A: Operator) => A.crls.status().length > 0 && A.crls.status().every((s) => s.fetchedAt);

/** Resolves with the next refresh round's outcome for `url` (an 'updated' or a 'refresh-failed'). */
function nextOutcome(A: Operator, url: string): Promise<{ updated: true } | { updated: false; error: string }> {
  return new Promise((resolve) => {
    const onUpdated = (u: string) => {
      if (u !== url) return;
      done();
      resolve({ updated: true });
    };
    const onFailed = (u: string, error: string) => {
      if (u !== url) return;
      done();
      resolve({ updated: false, error });
    };
    const done = () => {
      A.crls.off('updated', onUpdated);
      A.crls.off('refresh-failed', onFailed);
    };
    A.crls.on('updated', onUpdated);
    A.crls.on('refresh-failed', onFailed);
  });
}

/** The value of a counter or gauge of A's metrics, for the given labels. */
async function metric(A: Operator, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await A.metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (m?.values ?? []).find((x) => Object.entries(labels).every(([k, val]) => (x.labels as Record<string, unknown>)[k] === val));
  return Number(v?.value ?? 0);
}

describe('CRLs from the demo\'s distribution points, refreshed on a schedule', () => {
  let dir: string;
  let cleanup = () => {};
  let layout: DemoLayout;
  let demo: RunningDemo;
  let A: Operator;
  let pki: TestPki;
  let intermediateUrl: string;
  let preRevocation: Buffer;
  const peer = { cert: '', key: '' };
  const send = () => probe({ port: A.ports.mx, ...peer, from: `cabinet@${PEER.domain}`, to: [layout.operators[0].users[0].addresses[0]] });

  before(async () => {
    ({ dir, cleanup } = tempDir());
    const overrides = { tls: { crl: [], crlRefresh: { intervalMinutes: 0.01 } } }; // every 0.6 s
    layout = await prepareDemo(dir, { ports: 'ephemeral', patients: false, peers: [PEER], configOverrides: overrides });
    demo = await startDemo(layout, { logger: testLogger(), psc: false, configOverrides: overrides });
    A = demo.operators[0]!;
    pki = await TestPki.load(layout.pkiDir);
    intermediateUrl = pki.crlUrlOf('intermediate')!;
    const p = layout.peers[0]!;
    peer.cert = readFileSync(p.chain, 'utf8');
    peer.key = readFileSync(p.key, 'utf8');
    await waitFor(() => allFetched(A), 'the first CRL downloads');
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  test('the demo serves DER CRLs as application/pkix-crl at the URLs its certificates name', async () => {
    assert.equal(pki.crlBaseUrl, layout.crlServer!.baseUrl);
    assert.deepEqual(A.crls.urls().sort(), [pki.crlUrlOf('intermediate'), pki.crlUrlOf('root')].sort(), 'from the CA bundle (root.crl) and our own certificate (intermediate.crl)');
    const res = await fetch(intermediateUrl);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/pkix-crl');
    const der = new Uint8Array(await res.arrayBuffer());
    assert.deepEqual(der, new Uint8Array(readFileSync(pki.intermediateCrlPath)));
    new x509.X509Crl(der); // DER a library reads
    assert.equal((await fetch(new URL('/crl/other.crl', intermediateUrl))).status, 404);
    assert.equal((await fetch(intermediateUrl, { method: 'POST' })).status, 405);
  });

  test('a peer certificate revoked in the demo PKI is accepted before and refused after the scheduled refresh, without restart', async () => {
    const before = await send();
    assert.equal(before.stage, 'sent', JSON.stringify(before));
    const refusedBefore = await metric(A, 'caducee_certificate_refusals_total', { failure: 'revoked' });
    const serial = new x509.X509Certificate(peer.cert).serialNumber;
    preRevocation = readFileSync(pki.intermediateCrlPath);
    const outcome = nextOutcome(A, intermediateUrl);
    await pki.revoke(serial, 1); // publishes a new CRL at the distribution point
    assert.deepEqual(await outcome, { updated: true });
    const after = await send();
    assert.equal(after.stage, 'mail', JSON.stringify(after));
    assert.equal(after.code, 454);
    assert.match(after.response!, /^454 4\.7\.5 client certificate refused \(revoked\): .*reason keyCompromise/);
    assert.equal(await metric(A, 'caducee_certificate_refusals_total', { failure: 'revoked' }), refusedBefore + 1);
    assert.ok((await metric(A, 'caducee_crl_refreshes_total', { outcome: 'updated' })) >= 3);
  });

  test('a CRL with a bad signature, or older than the one in force, is rejected and the previous one kept', async () => {
    const good = readFileSync(pki.intermediateCrlPath);
    const inForce = A.crls.status().find((s) => s.url === intermediateUrl)!;
    try {
      const forged = Buffer.from(good);
      forged[forged.length - 1]! ^= 0x01; // last byte of the signature
      let outcome = nextOutcome(A, intermediateUrl);
      writeFileSync(pki.intermediateCrlPath, forged);
      let r = await outcome;
      assert.equal(r.updated, false);
      assert.match((r as { error: string }).error, /signature of the CRL does not verify with the key of CN=AC TEST IGC-SANTE ELEMENTAIRE ORGANISATIONS/);
      // A replayed older CRL (validly signed, from before the revocation) must not bring the peer back.
      outcome = nextOutcome(A, intermediateUrl);
      writeFileSync(pki.intermediateCrlPath, preRevocation);
      r = await outcome;
      assert.equal(r.updated, false);
      assert.match((r as { error: string }).error, /is older than the one in force \(cRLNumber \d+\)/);
      const status = A.crls.status().find((s) => s.url === intermediateUrl)!;
      assert.equal(status.crlNumber, inForce.crlNumber, 'the previous CRL stays in force');
      assert.match(status.lastError!, /older/);
      const stillRefused = await send();
      assert.match(stillRefused.response!, /^454 4\.7\.5 client certificate refused \(revoked\)/);
      assert.ok((await metric(A, 'caducee_crl_refreshes_total', { outcome: 'failed' })) >= 2);
    } finally {
      writeFileSync(pki.intermediateCrlPath, good);
    }
  });
});

describe('a stale CRL (nextUpdate passed, no newer one obtained): used within the grace period, then the issuer\'s certificates are refused', () => {
  let cleanup = () => {};
  let layout: DemoLayout;
  let demo: RunningDemo;
  let A: Operator;
  let pki: TestPki;
  const peer = { cert: '', key: '' };
  const send = () => probe({ port: A.ports.mx, ...peer, from: `cabinet@${PEER.domain}`, to: [layout.operators[0].users[0].addresses[0]] });
  const DAY = 86_400_000;

  before(async () => {
    let dir: string;
    ({ dir, cleanup } = tempDir());
    // Default grace: 24 hours (tls.crlRefresh.staleGraceHours).
    const overrides = { tls: { crl: [], crlRefresh: { intervalMinutes: 0.01 } } };
    layout = await prepareDemo(dir, { ports: 'ephemeral', patients: false, peers: [PEER], configOverrides: overrides });
    pki = await TestPki.load(layout.pkiDir);
    // The CA stopped publishing two days ago: its last CRLs' nextUpdate is 2 days past.
    await pki.writeCrl({ thisUpdate: new Date(Date.now() - 10 * DAY), nextUpdate: new Date(Date.now() - 2 * DAY) });
    demo = await startDemo(layout, { logger: testLogger(), psc: false, configOverrides: overrides, republishCrl: false });
    A = demo.operators[0]!;
    const p = layout.peers[0]!;
    peer.cert = readFileSync(p.chain, 'utf8');
    peer.key = readFileSync(p.key, 'utf8');
    await waitFor(() => allFetched(A), 'the first CRL downloads');
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  test('past the grace period: refused with 454 4.7.5 (revocation-unknown), logged and metered; within it: accepted; fresh: accepted', async () => {
    const stale = await send();
    assert.equal(stale.stage, 'mail', JSON.stringify(stale));
    assert.match(stale.response!, /^454 4\.7\.5 client certificate refused \(revocation-unknown\): the CRL of CN=AC .* is stale \(its nextUpdate .* has passed by more than the 24 h allowed/);
    assert.equal(await metric(A, 'caducee_certificate_refusals_total', { failure: 'revocation-unknown' }), 1);
    assert.equal(await metric(A, 'caducee_crl_stale_issuers'), 2, 'the root and the intermediate');

    // Within the grace period: a newer CRL, itself past its nextUpdate by an hour.
    const url = pki.crlUrlOf('intermediate')!;
    let outcome = nextOutcome(A, url);
    await pki.writeCrl({ thisUpdate: new Date(Date.now() - DAY), nextUpdate: new Date(Date.now() - 3_600_000) });
    assert.deepEqual(await outcome, { updated: true });
    await waitFor(() => A.crls.status().every((s) => s.nextUpdate && s.nextUpdate.getTime() > Date.now() - 2 * 3_600_000), 'both CRLs replaced');
    const late = await send();
    assert.equal(late.stage, 'sent', JSON.stringify(late));
    assert.equal(await metric(A, 'caducee_crl_stale_issuers'), 2, 'still past nextUpdate, within the grace');

    // The CA publishes again: nothing is stale.
    outcome = nextOutcome(A, url);
    await pki.writeCrl();
    assert.deepEqual(await outcome, { updated: true });
    await waitFor(() => A.crls.status().every((s) => s.nextUpdate && s.nextUpdate.getTime() > Date.now()), 'both CRLs fresh');
    assert.equal((await send()).stage, 'sent');
    assert.equal(await metric(A, 'caducee_crl_stale_issuers'), 0);
  });
});
