// Runs imaptest's scripted tests against any IMAP server and prints per-script results.
//
//   node --import tsx test/imap-conformance/cli.ts --host 127.0.0.1 --port 993 --tls implicit \
//     --user U --password P [--only name,...] [--verbose]
//
// Options:
//   --host H --port N           server (default host 127.0.0.1)
//   --tls implicit|starttls|none
//   --user U --password P       test user (its mailboxes named imaptest* are deleted!)
//   --user2 U --password2 P     second user, for scripts with `user 2: $user2`
//   --ca FILE                   CA certificate(s) to verify the server with (PEM)
//   --servername NAME           name to verify in the server certificate
//   --insecure                  do not verify the server certificate
//   --mailbox-prefix P          prefix of the test mailbox name "imaptest"
//   --only a,b,c                only these scripts
//   --tests-dir DIR             scripts directory (default ../shared/conformance/imaptest/tests)
//   --timeout MS                per-command timeout (default 10000)
//   --no-literal-plus           synchronizing literals even when LITERAL+ is announced
//   --known-failures FILE       JSON {script: reason}: listed failures don't count as new
//   --verbose                   failure transcripts too (--verbose twice: every transcript)
//   --dovecot                   start a private Dovecot (test/peers/dovecot.ts) and run against it,
//                               with its known failures and skips (known-failures.ts)
// Exit status: 0 when no new failure (and no listed failure passing), 1 otherwise, 2 on usage errors.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runAll, type RunOptions, type ScriptResult } from './runner.js';
import type { TlsMode } from './client.js';

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string' },
        tls: { type: 'string', default: 'implicit' },
        user: { type: 'string' },
        password: { type: 'string' },
        user2: { type: 'string' },
        password2: { type: 'string' },
        ca: { type: 'string' },
        servername: { type: 'string' },
        insecure: { type: 'boolean', default: false },
        'mailbox-prefix': { type: 'string' },
        only: { type: 'string' },
        'tests-dir': { type: 'string' },
        timeout: { type: 'string' },
        'no-literal-plus': { type: 'boolean', default: false },
        'known-failures': { type: 'string' },
        verbose: { type: 'boolean', multiple: true },
        dovecot: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      allowPositionals: false,
    }));
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  if (values.help) {
    console.log(readFileSync(new URL(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n'));
    return 0;
  }
  const verbose = values.verbose?.length ?? 0;
  const tls = values.tls as TlsMode;
  if (!['implicit', 'starttls', 'none'].includes(tls)) {
    console.error('--tls must be implicit, starttls or none');
    return 2;
  }
  let stopPeer: (() => Promise<void>) | undefined;
  let opts: RunOptions;
  let skip: Record<string, string> | undefined;
  let knownFailures: Record<string, string> = {};
  if (values.dovecot) {
    const { DovecotPeer } = await import('../peers/dovecot.js');
    const { dovecotTarget } = await import('./conformance.js');
    const { DOVECOT_KNOWN_FAILURES } = await import('./known-failures.js');
    const peer = await DovecotPeer.start({ starttlsPort: tls === 'starttls' ? 0 : undefined, urlauth: true });
    stopPeer = () => peer.stop();
    const { name: _name, skip: dovecotSkip, ...target } = dovecotTarget(peer);
    opts = target;
    if (tls === 'starttls') {
      opts.port = peer.starttlsPort!;
      opts.tls = 'starttls';
    }
    if (values.user) opts.user = values.user;
    if (values.user2) opts.user2 = values.user2;
    skip = dovecotSkip;
    knownFailures = DOVECOT_KNOWN_FAILURES;
    console.log(`Dovecot started in ${peer.dir}, port ${opts.port} (${opts.tls})`);
  } else {
    if (!values.port || !values.user || values.password === undefined) {
      console.error('--port, --user and --password are required (or --dovecot)');
      return 2;
    }
    opts = {
      host: values.host!,
      port: Number(values.port),
      tls,
      ca: values.ca ? readFileSync(values.ca, 'utf8') : undefined,
      user: values.user,
      password: values.password,
      user2: values.user2,
      password2: values.password2,
    };
  }
  if (values.servername) opts.servername = values.servername;
  if (values.insecure) opts.insecure = true;
  if (values['mailbox-prefix'] !== undefined) opts.mailboxPrefix = values['mailbox-prefix'];
  if (values['tests-dir']) opts.testsDir = values['tests-dir'];
  if (values.timeout) opts.commandTimeoutMs = Number(values.timeout);
  if (values['no-literal-plus']) opts.literalPlus = false;
  if (values['known-failures']) knownFailures = JSON.parse(readFileSync(values['known-failures'], 'utf8'));
  const only = values.only ? values.only.split(',').map((s) => s.trim()).filter((s) => s !== '') : undefined;

  try {
    const summary = await runAll(opts, {
      only,
      knownFailures,
      skip,
      onResult: (r: ScriptResult) => {
        const mark = r.status === 'pass' ? 'PASS' : r.status === 'skip' ? 'SKIP' : r.name in knownFailures ? 'FAIL (known)' : 'FAIL';
        const reason = r.status === 'skip' ? `: ${r.reason}` : '';
        console.log(`${mark.padEnd(12)} ${r.name} (${r.durationMs} ms)${reason}`);
        if (r.status === 'fail') console.log(indent(r.reason ?? ''));
        if ((r.status === 'fail' && verbose >= 1) || verbose >= 2) console.log(indent(r.transcript.join('\n')));
      },
    });
    console.log(
      `\n${summary.total} scripts: ran ${summary.ran}, passed ${summary.passed}, failed ${summary.failed} (${summary.knownFailed.length} known), skipped ${summary.skipped}, in ${(summary.durationMs / 1000).toFixed(1)} s`,
    );
    if (summary.fixed.length > 0) console.log(`listed as known failures but passed: ${summary.fixed.join(', ')}`);
    if (summary.unknownKnownFailures.length > 0) console.log(`known failures naming no script: ${summary.unknownKnownFailures.join(', ')}`);
    return summary.newFailures.length === 0 && summary.fixed.length === 0 ? 0 : 1;
  } finally {
    await stopPeer?.();
  }
}

function indent(s: string): string {
  return s
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error(e);
    process.exitCode = 2;
  },
);
