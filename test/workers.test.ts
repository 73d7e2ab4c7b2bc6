// `caducee start --workers 2` (src/workers.ts) on SQLite, with a demo operator's configuration
// and ephemeral ports: the primary prints the startup lines once; an IMAP IDLE session held by
// one worker sees every message submitted over separate SMTP connections, which round robin
// spreads over both workers (the 'message submitted' log lines name two worker pids), through
// the relay (src/relay/cluster.ts); messages to the other operator (started in this process)
// arrive there exactly once; a worker killed outright is restarted; SIGTERM stops everything
// with status 0. Two sessions on the two workers MULTIAPPEND into one folder at once: every
// message once, UIDs strictly increasing, the usage counters exact.
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
import { Conn, connectTls } from './support/line-conn.js';

const { dir, cleanup } = tempDir('caducee-workers-');
after(() => cleanup());

/** `caducee start --workers N -c configFile` in a child process, its JSON log lines collected. */
function startWorkers(configFile: string, workers: number) {
  const child = spawn(process.execPath, [path.resolve('bin/caducee.js'), 'start', '--workers', String(workers), '-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
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
  return { child, lines, logged, exited, stderr: () => stderr };
}

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

  const { child, lines, logged, exited, stderr } = startWorkers(configFile, 2);
  let imap: ImapFlow | undefined;
  let store: SqliteStore | undefined;
  try {
    const ready = await waitFor(() => logged('workers started')[0] ?? (child.exitCode !== null && Promise.reject(new Error(`caducee start exited: ${stderr()}`))), `the primary's 'workers started' line (output: ${JSON.stringify(lines.map((l) => l.msg ?? l.text))}; stderr: ${stderr()})`, 120_000);
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
    assert.equal(code, 0, stderr());
  }
});

// Issue 15 (the fill spread over processes): two sessions held by two workers MULTIAPPEND into
// one folder at the same time. UIDs are allocated inside each batch's IMMEDIATE transaction
// (store/sqlite/folders.ts appendMessages; SQLite's one writer lock, the other process waiting
// up to busy_timeout): every message is stored once, the UIDs of each commit follow those of the
// one before (no gap, no duplicate, in row order), each APPENDUID names exactly its batch's UIDs,
// and the folder's usage counters (triggers of migration 25) equal its messages' count and bytes.
test('--workers 2: two workers MULTIAPPEND into one folder at once: every message once, UIDs strictly increasing, usage counters exact', async () => {
  const layout = await prepareDemo(path.join(dir, 'space-fill'), { ports: 'ephemeral', patients: false });
  const A = layout.operators[0];
  const config = YAML.parse(readFileSync(A.config, 'utf8'));
  const { child, logged, exited, stderr } = startWorkers(A.config, 2);
  const ca = readFileSync(layout.caBundle, 'utf8');
  const claire = A.users[0];
  const open: Conn[] = [];
  let store: SqliteStore | undefined;
  try {
    const ready = await waitFor(() => logged('workers started')[0] ?? (child.exitCode !== null && Promise.reject(new Error(`caducee start exited: ${stderr()}`))), "the primary's 'workers started' line", 120_000);
    const { imaps } = logged('operator started')[0];
    // One session per worker: each login's 'authenticated' line names the worker (pid) holding it.
    const byPid = new Map<number, Conn>();
    for (let k = 0; k < 8 && byPid.size < 2; k++) {
      const c = new Conn(await connectTls({ port: imaps }, { ca }));
      open.push(c);
      await c.lineMatching(/^\* OK/);
      const before = logged('authenticated').length;
      await c.send(`l LOGIN "${claire.login}" "${claire.appPassword}"`, /^l OK/);
      const line = await waitFor(() => logged('authenticated')[before], "the login's 'authenticated' line");
      if (!byPid.has(line.pid)) byPid.set(line.pid, c);
    }
    assert.equal(byPid.size, 2, 'round robin gave sessions to both workers');
    for (const pid of byPid.keys()) assert.ok(ready.pids.includes(pid));
    const sessions = [...byPid.values()];
    await sessions[0].send('c CREATE Lots', /^c OK/);

    // Each session sends all its batches at once (pipelined, LITERAL+), both sessions together.
    const BATCHES = 8;
    const PER_BATCH = 40;
    const message = (s: number, b: number, i: number) =>
      `From: a@example.org\r\nTo: b@example.org\r\nSubject: lot ${s}.${b}.${i}\r\nMessage-ID: <lot-${s}-${b}-${i}@example.org>\r\n\r\n${'corps '.repeat(1 + ((s * 7 + b * 3 + i) % 50))}\r\n`;
    let bytes = 0;
    const replies = await Promise.all(
      sessions.map(async (c, s) => {
        let out = '';
        for (let b = 0; b < BATCHES; b++) {
          out += `m${b} APPEND Lots`;
          for (let i = 0; i < PER_BATCH; i++) {
            const m = message(s, b, i);
            bytes += Buffer.byteLength(m);
            out += ` (\\Seen) {${Buffer.byteLength(m)}+}\r\n${m}`;
          }
          out += '\r\n';
        }
        c.socket.write(out);
        const tagged: string[] = [];
        for (let b = 0; b < BATCHES; b++) tagged.push(await c.lineMatching(new RegExp(`^m${b} `)));
        return tagged;
      }),
    );
    const total = sessions.length * BATCHES * PER_BATCH;
    const allUids: number[] = [];
    for (const tagged of replies) {
      let last = 0;
      for (const line of tagged) {
        // RFC 4315 §3: one APPENDUID per batch; a batch is one transaction, so its UIDs are consecutive.
        const m = /^m\d+ OK \[APPENDUID \d+ (\d+):(\d+)\]/.exec(line);
        assert.ok(m, line);
        const [first, lastOfBatch] = [Number(m[1]), Number(m[2])];
        assert.equal(lastOfBatch - first + 1, PER_BATCH, line);
        assert.ok(first > last, `a session's later batch gets later UIDs (${line} after ${last})`);
        last = lastOfBatch;
        for (let u = first; u <= lastOfBatch; u++) allUids.push(u);
      }
    }
    assert.deepEqual(allUids.sort((x, y) => x - y), Array.from({ length: total }, (_, i) => i + 1), 'the batches of both workers share out UIDs 1..N, none twice');

    // The store: each message once, in row order with strictly increasing UIDs, indexed, no pin left.
    store = SqliteStore.open(path.join(config.dataDir, 'caducee.sqlite'));
    const db = store.db;
    const folder = db.prepare("SELECT f.id, f.uid_next, f.usage_messages, f.usage_bytes FROM folders f JOIN mailboxes m ON m.id = f.mailbox_id WHERE m.address = ? AND f.name = 'Lots'").get(claire.addresses[0]) as any;
    const rows = db.prepare('SELECT uid, blob_id, size, header_indexed FROM messages WHERE folder_id = ? ORDER BY id').all(folder.id) as any[];
    assert.equal(rows.length, total);
    rows.forEach((r, i) => assert.ok(i === 0 || r.uid > rows[i - 1].uid, `row ${i}: UID ${r.uid} after ${rows[i - 1]?.uid}`));
    assert.equal(new Set(rows.map((r) => r.blob_id)).size, total, 'every message stored once (distinct contents, distinct files)');
    assert.equal(folder.uid_next, total + 1);
    assert.equal(folder.usage_messages, total, 'usage counter: messages');
    assert.equal(folder.usage_bytes, bytes, 'usage counter: bytes');
    assert.equal(rows.reduce((n, r) => n + r.size, 0), bytes);
    assert.equal(rows.filter((r) => r.header_indexed !== 1).length, 0, 'every message has its header search row');
    const pinned = db.prepare('SELECT COUNT(*) n FROM blob_pins').get() as { n: number };
    assert.equal(pinned.n, 0, "the puts' pins ended with the commits");

    // Over IMAP, from both workers: every Message-ID once.
    for (const [s, c] of sessions.entries()) {
      await c.send(`e${s} EXAMINE Lots`, new RegExp(`^e${s} OK`));
      c.socket.write(`f${s} UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])\r\n`);
      const ids: string[] = [];
      for (;;) {
        const line = await c.lineMatching(new RegExp(`^Message-ID: |^f${s} `, 'i'));
        if (line.startsWith(`f${s} `)) {
          assert.match(line, /^f\d OK/);
          break;
        }
        ids.push(line.slice('Message-ID: '.length));
      }
      assert.equal(new Set(ids).size, total, `session ${s} reads ${total} distinct messages`);
      assert.equal(ids.length, total);
    }
  } finally {
    for (const c of open) c.socket.destroy();
    await store?.close();
    child.kill('SIGTERM');
    const code = await exited;
    assert.equal(code, 0, stderr());
  }
});
