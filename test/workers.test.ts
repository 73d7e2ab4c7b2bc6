// `caducee start --workers 2` (src/workers.ts) on SQLite, with a demo operator's configuration
// and ephemeral ports: the primary prints the startup lines once; an IMAP IDLE session held by
// one worker sees every message submitted over separate SMTP connections, which round robin
// spreads over both workers (the 'message submitted' log lines name two worker pids), through
// the relay (src/relay/cluster.ts); messages to the other operator (started in this process)
// arrive there exactly once; a worker killed outright is restarted; SIGTERM stops everything
// with status 0.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import YAML from 'yaml';
import { loadConfig } from '../src/config/index.js';
import { prepareDemo } from '../src/demo/space.js';
import { startOperator } from '../src/main.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { folderMessages, submitAs, tempDir, testLogger, waitFor } from './helpers.js';

const { dir, cleanup } = tempDir('caducee-workers-');
after(() => cleanup());

test('--workers 2: one IDLE session sees the submissions both workers accepted; remote mail leaves once', async () => {
  const layout = await prepareDemo(path.join(dir, 'space'), { ports: 'ephemeral', patients: false });
  const [A, B] = layout.operators;
  // The peer operator, in this process: it counts what reaches it.
  const peer = await startOperator(loadConfig(B.config), { logger: testLogger() });
  const config = YAML.parse(readFileSync(A.config, 'utf8'));
  config.routes[B.domain] = `127.0.0.1:${peer.ports.mx}`;
  // No safety poll: the IDLE session learns of the other worker's deliveries through the relay only.
  config.events = { resyncSeconds: 0 };
  const configFile = path.join(path.dirname(A.config), 'workers.yaml');
  writeFileSync(configFile, YAML.stringify(config));

  const child = spawn(process.execPath, [path.resolve('bin/caducee.js'), 'start', '--workers', '2', '-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines: any[] = [];
  let partial = '';
  child.stdout.on('data', (d) => {
    partial += d;
    let i;
    while ((i = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, i);
      partial = partial.slice(i + 1);
      try {
        lines.push(JSON.parse(line));
      } catch {
        lines.push({ text: line });
      }
    }
  });
  const logged = (msg: string) => lines.filter((l) => l.msg === msg);
  let imap: ImapFlow | undefined;
  let store: SqliteStore | undefined;
  try {
    const ready = await waitFor(() => logged('workers started')[0] ?? (child.exitCode !== null && Promise.reject(new Error(`caducee start exited: ${stderr}`))), `the primary's 'workers started' line (output: ${JSON.stringify(lines.map((l) => l.msg ?? l.text))}; stderr: ${stderr})`, 120_000);
    assert.equal(ready.workers, 2);
    assert.equal(ready.pids.length, 2);
    const started = logged('operator started');
    assert.equal(started.length, 1, 'the startup line is printed once');
    const ports = started[0];
    for (const k of ['mx', 'submission', 'submissions', 'http', 'https', 'imap', 'imaps']) assert.ok(ports[k] > 0, `port ${k}`);

    const claire = A.users[0];
    const address = claire.addresses[0];
    const ca = readFileSync(layout.caBundle, 'utf8');
    imap = new ImapFlow({ host: '127.0.0.1', port: ports.imaps, secure: true, tls: { ca, servername: 'localhost' }, auth: { user: claire.login, pass: claire.appPassword }, logger: false });
    await imap.connect();
    const box = await imap.mailboxOpen('INBOX');
    const before = box.exists;
    let seen = before;
    imap.on('exists', (e: { count: number }) => (seen = Math.max(seen, e.count)));
    void imap.idle();

    // Separate connections: round robin hands them to both workers in turn.
    const count = 6;
    for (let i = 0; i < count; i++) {
      await submitAs(ports.submission, layout.caBundle, claire, { from: address, to: address, subject: `Compte rendu ${i}`, text: `Message ${i}` });
    }
    // The log lines may follow the 250 replies by a moment (another process's stdout).
    const submitted = await waitFor(() => logged('message submitted').length >= count && logged('message submitted'), "the workers' 'message submitted' lines");
    assert.equal(submitted.length, count);
    const pids = new Set(submitted.map((l) => l.pid));
    assert.equal(pids.size, 2, `both workers accepted submissions (pids ${[...pids].join(', ')})`);
    for (const pid of pids) assert.ok(ready.pids.includes(pid));
    // Every one reaches the IDLE session, whichever worker holds it.
    await waitFor(() => seen >= before + count, `the IDLE session to see ${count} new messages (it saw ${seen - before})`);
    assert.equal(seen, before + count);

    // Mail for the other operator: both workers' queue workers run; each message arrives once.
    const paul = B.users[0].addresses[0];
    const remote = 4;
    for (let i = 0; i < remote; i++) {
      await submitAs(ports.submission, layout.caBundle, claire, { from: address, to: paul, subject: `Avis ${i}`, text: `Avis ${i}` });
    }
    store = SqliteStore.open(path.join(config.dataDir, 'caducee.sqlite'));
    const db = store.db;
    await waitFor(() => (db.prepare("SELECT COUNT(*) n FROM outbound_queue WHERE status = 'queued'").get() as { n: number }).n === 0, "operator A's queue to drain");
    const sent = (db.prepare("SELECT COUNT(*) n FROM outbound_queue WHERE status = 'sent'").get() as { n: number }).n;
    assert.equal(sent, remote);
    const arrived = (await folderMessages(peer, paul)).map((m) => /^Subject: (.*)$/m.exec(m.toString('utf8'))?.[1]?.trim());
    assert.deepEqual(arrived.filter((s) => s?.startsWith('Avis')).sort(), Array.from({ length: remote }, (_, i) => `Avis ${i}`));

    // A worker killed outright is replaced; the operator keeps accepting mail on its ports.
    await imap.logout().catch(() => imap?.close());
    imap = undefined;
    process.kill(ready.pids[1], 'SIGKILL');
    const restarted = await waitFor(() => logged('worker restarted')[0], 'the primary to restart the killed worker', 60_000);
    assert.ok(!ready.pids.includes(restarted.pid));
    assert.equal(logged('worker died; restarting it').length, 1);
    assert.equal(logged('worker died; restarting it')[0].signal, 'SIGKILL');
    for (let i = 0; i < 2; i++) await submitAs(ports.submission, layout.caBundle, claire, { from: address, to: address, subject: `Après ${i}`, text: 'Texte' });
  } finally {
    await imap?.logout().catch(() => imap?.close());
    await store?.close();
    child.kill('SIGTERM');
    const code = await exited;
    await peer.stop();
    assert.equal(code, 0, stderr);
  }
});
