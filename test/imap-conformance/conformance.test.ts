// imaptest's scripted IMAP tests against a private Dovecot (Debian's dovecot-imapd): proves the
// runner. Dovecot is imaptest's reference server, so every script its capabilities cover must
// pass; a failure here is a runner bug until shown otherwise (known-failures.ts says why each
// listed one is not). Also: STARTTLS and synchronizing literals, and negative controls showing
// the runner does catch wrong replies.
//
// Caducée's IMAP server will get the same suite through runConformance() (conformance.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DovecotPeer } from '../peers/dovecot.js';
import { inCI, requirePeer } from '../peers/which.js';
import { dovecotTarget, formatReport, runConformance } from './conformance.js';
import { DOVECOT_KNOWN_FAILURES } from './known-failures.js';
import { defaultTestsDir, runAll, runScript } from './runner.js';

const testsDir = defaultTestsDir();
function scriptsMissing(): string | undefined {
  if (existsSync(testsDir)) return undefined;
  const reason = `imaptest scripts not found in ${testsDir}`;
  if (inCI()) throw new Error(`CI must not skip: ${reason}`);
  return reason;
}
const skip = requirePeer('dovecot') ?? requirePeer('openssl') ?? scriptsMissing();

describe('imaptest scripts against Dovecot', { skip }, () => {
  let peer: DovecotPeer;
  before(async () => {
    peer = await DovecotPeer.start({ urlauth: true, starttlsPort: 0 });
  });
  after(async () => {
    await peer?.stop();
  });

  it('passes every script Dovecot announces the capabilities for (known failures listed)', { timeout: 120_000 }, async (t) => {
    const report = await runConformance(dovecotTarget(peer), DOVECOT_KNOWN_FAILURES);
    const text = formatReport(report, DOVECOT_KNOWN_FAILURES);
    for (const line of text.split('\n')) t.diagnostic(line);
    assert.deepEqual(report.problems, [], text);
    assert.ok(report.passed >= 65, `only ${report.passed} scripts passed\n${text}`);
  });

  it('works over STARTTLS with synchronizing literals', { timeout: 60_000 }, async () => {
    const { skip: _skip, name: _name, ...target } = dovecotTarget(peer);
    const opts = { ...target, port: peer.starttlsPort!, tls: 'starttls' as const, literalPlus: false };
    const summary = await runAll(opts, { only: ['append', 'append-binary', 'catenate', 'multiappend', 'pipeline', 'expunge', 'fetch-body'] });
    const bad = summary.results.filter((r) => r.status !== 'pass').map((r) => `${r.name}: ${r.status} ${r.reason ?? ''}`);
    assert.deepEqual(bad, []);
    const literal = summary.results.find((r) => r.name === 'multiappend')!.transcript;
    assert.ok(literal.some((l) => /^S1: \+ /.test(l)), 'a "+" continuation was awaited');
    assert.ok(literal.some((l) => /^C1: \d+\.\d+ STARTTLS$/.test(l)));
  });

  it('catches wrong replies (negative controls)', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'imaptest-neg-'));
    try {
      copyFileSync(join(testsDir, 'default.mbox'), join(dir, 'default.mbox'));
      const scripts: Record<string, { text: string; status: 'fail' | 'skip'; reason: RegExp }> = {
        'neg-tagged': { text: 'state: auth\n\nno list "" ""\n', status: 'fail', reason: /expected tagged reply 'no', got '[\d.]+ OK/ },
        'neg-missing': {
          text: 'messages: 2\n\nok fetch 1 flags\n* 1 fetch (flags (\\seen))\n',
          status: 'fail',
          reason: /missing 1 untagged reply[\s\S]*best match: \* 1 FETCH \(FLAGS/,
        },
        'neg-must-not': {
          text: 'messages: 2\n\nok status $mailbox (messages)\n! status $mailbox (messages 2)\n',
          status: 'fail',
          reason: /unexpected untagged reply: \* STATUS imaptest \(MESSAGES 2\)/,
        },
        'neg-extra': {
          text: 'messages: 2\nstate: appended\nignore_extra_untagged: no\n\nok select $mailbox\n* 2 exists\n',
          status: 'fail',
          reason: /unexpected untagged replies \(ignore_extra_untagged: no\)/,
        },
        'neg-variable': {
          text: 'messages: 2\n\nok fetch 1 uid\n* 1 fetch (uid $u)\nok fetch 2 uid\n* 2 fetch (uid $u)\n',
          status: 'fail',
          reason: /line 6[\s\S]*expanded: 2 fetch \(\$!unordered=2 uid 1\)/,
        },
        'neg-relative-seq': {
          text: 'connections: 2\nmessages: 3\n\n1 ok store 1 +flags \\deleted\n1 ok expunge\n2 ok noop\n* $2 expunge\n',
          status: 'fail',
          reason: /missing 1 untagged reply[\s\S]*first missing \(line 7\): \* \$2 expunge[\s\S]*best match: \* 1 EXPUNGE/,
        },
        'neg-undefined-variable': { text: 'state: auth\n\nok status $nothing (messages)\n', status: 'fail', reason: /uninitialized variable: \$nothing/ },
        'neg-capability': { text: 'capabilities: X-NOT-A-CAPABILITY\nstate: auth\n\nok noop\n', status: 'skip', reason: /lacks capability X-NOT-A-CAPABILITY/ },
      };
      for (const [name, s] of Object.entries(scripts)) writeFileSync(join(dir, name), s.text);
      const { skip: _skip, name: _name, ...target } = dovecotTarget(peer);
      for (const [name, s] of Object.entries(scripts)) {
        const r = await runScript(name, { ...target, testsDir: dir });
        assert.equal(r.status, s.status, `${name}: ${r.reason}`);
        assert.match(r.reason ?? '', s.reason, name);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
