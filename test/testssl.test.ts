// Debian's testssl.sh against every TLS listener of a demo operator (issue 13, "Hardening"):
// MX (STARTTLS smtp), submission (STARTTLS and implicit TLS), IMAP (STARTTLS and implicit TLS)
// and HTTPS. The test parses testssl's JSON findings and fails on any rated MEDIUM, HIGH or
// CRITICAL, or on a scan that could not run (FATAL), except the findings inherent to the
// IGC-Santé profile and to the demo's private PKI, listed in EXEMPT with the reason.
// `.ci/run` installs testssl.sh; outside CI, the test is skipped (with a diagnostic) when it is
// not installed. Slow (a few minutes: testssl opens hundreds of connections per listener); the
// listeners are scanned in parallel, the whole scan on the MX and HTTPS.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { tempDir, testLogger } from './helpers.js';

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
    if (skip) return;
    assert.ok(testssl, 'testssl.sh must be installed in CI (.ci/run installs the Debian package testssl.sh)');
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral' });
    demo = await startDemo(layout, { logger: testLogger(), psc: false });
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  test('MX, submission, submissions, IMAP, IMAPS, HTTPS', { skip }, async (t0) => {
    const p = demo.operators[0].ports;
    // Every listener spreads the same TLS settings (src/pki/tls-server.ts: versions, suites and
    // their order, curves, no renegotiation) into its context, and the certificate and chain are
    // the operator's on each. So the whole scan — certificate and chain, forward secrecy, every
    // vulnerability check — runs on the MX (STARTTLS through smtp-server) and on HTTPS (plus the
    // headers, HSTS and BREACH), and the other four listeners get what their own socket code
    // decides: protocols, cipher order, renegotiation, LUCKY13 and ROBOT. test/tls-profile.test.ts
    // checks the full chain and the suites on every listener with Node's own client, and
    // test/tls-renegotiation.test.ts renegotiation. testssl.sh forks about 1,300 subshells before
    // its first check (strace -f -c), 13 s of CPU per listener on a quiet machine; the whole scan
    // costs 67 s of CPU, the listener's own checks 27 s.
    const full = ['--protocols', '--server-defaults', '--server-preference', '--fs', '--vulnerable'];
    const own = ['--protocols', '--server-preference', '--renegotiation', '--lucky13', '--robot'];
    const targets: { name: string; port: number; checks: string[]; starttls?: 'smtp' | 'imap'; http?: boolean }[] = [
      { name: 'mx', port: p.mx, checks: full, starttls: 'smtp' },
      { name: 'submission', port: p.submission, checks: own, starttls: 'smtp' },
      { name: 'submissions', port: p.submissions, checks: own },
      { name: 'imap', port: p.imap, checks: own, starttls: 'imap' },
      { name: 'imaps', port: p.imaps, checks: own },
      { name: 'https', port: p.https, checks: [...full, '--headers'], http: true },
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
      // A real scan happened: the protocol and cipher-order checks are in the report.
      for (const id of ['TLS1_2', 'TLS1_3', 'cipher_order']) assert.ok(findings.some((f) => f.id === id || f.id.startsWith(`${id}-`)), `${t.name}: no ${id} finding, did testssl.sh reach the listener? ${JSON.stringify(findings.slice(0, 5))}`);
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
      for (const id of ['LUCKY13', 'ROBOT', 'cipher_order', 'secure_client_renego', ...(t.http ? ['HSTS_time'] : [])]) {
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
