// Debian's testssl.sh against the TLS listeners of a demo operator (issue 13, "Hardening"). The
// test parses testssl's JSON findings and fails on any rated MEDIUM, HIGH or CRITICAL, or on a
// scan that could not run (FATAL), except the findings inherent to the IGC-Santé profile and to
// the demo's private PKI, listed in EXEMPT with the reason.
// The six listeners — MX (STARTTLS smtp), submission (STARTTLS and implicit TLS), IMAP (STARTTLS
// and implicit TLS) and HTTPS — share one TLS configuration (src/pki/tls-server.ts). The test
// proves it first, in process: each one's TLS fingerprint (test/support/tls-fingerprint.ts:
// versions, suites and groups in the server's order, chain, OCSP staple) must equal the MX's.
// Then testssl.sh runs its whole TLS scan once, on the MX, the trust-space listener, through
// STARTTLS, and the HTTP checks (headers, HSTS, BREACH) on HTTPS. Renegotiation, the one TLS
// behaviour the listeners' own socket code could change, is tested on each listener by
// test/tls-renegotiation.test.ts.
// `.ci/run` installs testssl.sh; outside CI, the test is skipped (with a diagnostic) when it is
// not installed. Slow (about a minute: testssl opens hundreds of connections and forks a few
// thousand subshells per scan).
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { tempDir, testLogger } from './helpers.js';
import { tlsListeners } from './support/line-conn.js';
import { tlsFingerprint } from './support/tls-fingerprint.js';

/** Debian's package installs the script as `testssl`; upstream names it `testssl.sh`. */
function findTestssl(): string | null {
  for (const name of ['testssl', 'testssl.sh']) {
    try {
      execFileSync(name, ['--version'], { stdio: 'ignore', timeout: 60_000 });
      return name;
    } catch {}
  }
  return null;
}

/** Finding ids accepted whatever their severity, and why. */
const EXEMPT: Record<string, string> = {
  // IGC-Santé issues server certificates valid 3 years; testssl rates more than 825 days MEDIUM.
  cert_validityPeriod: 'IGC-Santé server certificates are valid 3 years',
};

interface Finding {
  id: string;
  severity: string;
  finding: string;
}

describe('testssl.sh finds nothing rated MEDIUM or above on any listener', { timeout: 30 * 60_000 }, () => {
  const testssl = findTestssl();
  const skip = !testssl && !process.env.CI ? 'testssl.sh is not installed (apt-get install testssl.sh); it runs in CI (.ci/run)' : false;
  let layout: DemoLayout;
  let demo: RunningDemo;
  let dir: string;
  let cleanup = () => {};
  before(async () => {
    // The demo runs even without testssl.sh: the fingerprint test needs only Node's TLS client.
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral' });
    demo = await startDemo(layout, { logger: testLogger(), psc: false });
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  test('the six TLS listeners negotiate alike: the same fingerprint as the MX', async () => {
    const listeners = tlsListeners(() => demo.operators[0].ports);
    const fingerprints = Object.fromEntries(await Promise.all(Object.entries(listeners).map(async ([name, open]) => [name, await tlsFingerprint(open)] as const)));
    const mx = fingerprints['SMTP STARTTLS (mx)']!;
    // A real probe: TLS 1.2 and 1.3 suites, groups and the chain (leaf + intermediate) were seen.
    assert.ok(mx.tls12Suites.length && mx.tls13Suites.length && mx.tls13Groups.length && mx.chain.length === 2, JSON.stringify(mx));
    for (const [name, f] of Object.entries(fingerprints)) assert.deepEqual(f, mx, `${name} negotiates unlike the MX`);
    assert.equal(Object.keys(fingerprints).length, 6);
  });

  test('testssl.sh: the whole TLS scan on the MX, the HTTP checks on HTTPS', { skip }, async (t0) => {
    assert.ok(testssl, 'testssl.sh must be installed in CI (.ci/run installs the Debian package testssl.sh)');
    const p = demo.operators[0].ports;
    // testssl.sh forks about 1,300 subshells before its first check (strace -f -c): some 13 s of
    // CPU per run on a quiet machine, the whole scan 67 s. With the listeners proven alike (test
    // above), the whole scan runs once, on the MX, and HTTPS gets what only it has: the HTTP
    // headers (HSTS, ...) and BREACH (HTTP compression).
    const full = ['--protocols', '--server-defaults', '--server-preference', '--fs', '--vulnerable'];
    const targets: { name: string; port: number; checks: string[]; starttls?: 'smtp' | 'imap'; http?: boolean }[] = [
      { name: 'mx', port: p.mx, checks: full, starttls: 'smtp' },
      { name: 'https', port: p.https, checks: ['--headers', '--breach'], http: true },
    ];
    const run = promisify(execFile);
    const started = Date.now();
    const results = await Promise.all(
      targets.map(async (t) => {
        const json = path.join(dir, `testssl-${t.name}.json`);
        const args = [
          '--quiet', '--warnings', 'off', '--color', '0', '--nodns', 'none',
          '--add-ca', layout.caBundle, '--jsonfile', json,
          // Protocols, server defaults (certificate, chain), server preference (cipher order),
          // forward secrecy, vulnerabilities (renegotiation, LUCKY13, ROBOT, ...); headers on HTTPS.
          ...t.checks,
          ...(t.starttls ? ['--starttls', t.starttls] : []),
          `127.0.0.1:${t.port}`,
        ];
        // testssl's exit status counts findings and failed checks; the JSON is what we judge.
        await run(testssl!, args, { maxBuffer: 64 * 1024 * 1024, timeout: 25 * 60_000 }).catch((e) => {
          if (e.killed) throw new Error(`testssl.sh on ${t.name} timed out`);
        });
        return { t, findings: JSON.parse(readFileSync(json, 'utf8')) as Finding[] };
      }),
    );
    const problems: string[] = [];
    for (const { t, findings } of results) {
      // A real scan happened: the protocol and cipher-order checks (HTTP: the headers) are in the report.
      for (const id of t.http ? ['HSTS_time', 'BREACH'] : ['TLS1_2', 'TLS1_3', 'cipher_order']) assert.ok(findings.some((f) => f.id === id || f.id.startsWith(`${id}-`)), `${t.name}: no ${id} finding, did testssl.sh reach the listener? ${JSON.stringify(findings.slice(0, 5))}`);
      // What the issue measured, rated OK by testssl itself: no CBC suite (LUCKY13), no RSA key
      // transport (ROBOT), the server's cipher order, client renegotiation refused; HSTS on HTTPS.
      // The demo's certificates name a CRL distribution point (RFC 5280 §4.2.1.13), as IGC-Santé's do:
      // testssl.sh reports it and raises no cert_revocation finding.
      if (t.checks.includes('--server-defaults') && !findings.some((f) => f.id === 'cert_crlDistributionPoints' && /^http:\/\//.test(f.finding))) problems.push(`${t.name}: no CRL distribution point reported`);
      // They also name the demo's OCSP responder (RFC 5280 §4.2.2.1), and every listener staples its
      // answer (docs/trust-space.md "OCSP stapling"): testssl.sh reports OCSP_stapling "offered" and,
      // asking the responder itself, cert_ocspRevoked "not revoked".
      if (t.checks.includes('--server-defaults')) {
        for (const [id, finding] of [['OCSP_stapling', 'offered'], ['cert_ocspRevoked', 'not revoked']]) {
          const f = findings.find((x) => x.id === id);
          if (f?.severity !== 'OK' || f.finding !== finding) problems.push(`${t.name}: ${id} ${f ? `${f.severity}: ${f.finding}` : 'missing from the report'} (expected OK: ${finding})`);
        }
      }
      for (const id of t.http ? ['HSTS_time', 'BREACH'] : ['LUCKY13', 'ROBOT', 'cipher_order', 'secure_client_renego']) {
        const f = findings.find((x) => x.id === id);
        if (f?.severity !== 'OK') problems.push(`${t.name}: ${id} ${f ? `${f.severity}: ${f.finding}` : 'missing from the report'}`);
      }
      for (const f of findings) {
        if (!['MEDIUM', 'HIGH', 'CRITICAL', 'FATAL'].includes(f.severity)) continue;
        if (EXEMPT[f.id] && f.severity !== 'FATAL') continue;
        problems.push(`${t.name}: ${f.id} ${f.severity}: ${f.finding}`);
      }
    }
    t0.diagnostic(`testssl.sh over ${targets.length} listeners: ${Math.round((Date.now() - started) / 1000)} s`);
    assert.deepEqual(problems, []);
  });
});
