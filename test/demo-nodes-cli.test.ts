// `caducee demo --postgres URL --nodes 2 --json` as a script runs it: the JSON line lists operator
// B's two node processes (pid, ports) under B, each serves IMAP with the printed app password,
// A's configuration file routes to both MX, and SIGTERM stops the demo and its node processes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ImapFlow } from 'imapflow';
import YAML from 'yaml';
import { tempDir, waitFor } from './helpers.js';
import { pgTestDatabase } from './support/postgres.js';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('caducee demo --postgres URL --nodes 2 --json: nodes with pids and ports in the JSON line, each serving; SIGTERM stops them all', { timeout: 180_000 }, async (t) => {
  const db = await pgTestDatabase();
  if ('skip' in db) return t.skip(db.skip);
  const { dir, cleanup } = tempDir('caducee-demo-nodes-');
  const child = spawn(process.execPath, [path.resolve('bin/caducee.js'), 'demo', '--dir', path.join(dir, 'space'), '--json', '--ephemeral-ports', '--no-patients', '--postgres', db.url, '--nodes', '2'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let pids: number[] = [];
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        const i = out.indexOf('\n');
        if (i >= 0) resolve(out.slice(0, i));
      });
      child.once('exit', (code) => reject(new Error(`demo exited (${code}) before printing its JSON line: ${stderr}`)));
    });
    const layout = JSON.parse(line);
    const [A, B] = layout.operators;
    assert.equal(A.nodes, undefined, 'A runs in the demo process');
    assert.equal(B.nodes.length, 2);
    pids = B.nodes.map((n: { pid: number }) => n.pid);
    assert.equal(new Set([...pids, child.pid]).size, 3, 'each node is a process of its own');
    for (const pid of pids) assert.ok(alive(pid), `node process ${pid} runs`);
    assert.deepEqual(B.ports, B.nodes[0].ports);
    assert.deepEqual(YAML.parse(readFileSync(A.config, 'utf8')).routes[B.domain], B.nodes.map((n: any) => `127.0.0.1:${n.ports.mx}`));
    const ca = readFileSync(layout.caBundle, 'utf8');
    const paul = B.users[0];
    for (const n of B.nodes) {
      const imap = new ImapFlow({ host: '127.0.0.1', port: n.ports.imaps, secure: true, tls: { ca, servername: 'localhost' }, auth: { user: paul.login, pass: paul.appPassword }, logger: false });
      await imap.connect();
      assert.ok((await imap.list()).some((f) => f.path === 'INBOX'), `node ${n.node} serves the mailbox`);
      await imap.logout();
    }
  } finally {
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
    await waitFor(() => pids.every((pid) => !alive(pid)), 'the node processes to have exited');
    await db.drop();
    cleanup();
  }
});

test('caducee demo --postgres URL --nodes 2 killed (SIGKILL): its node processes stop by themselves', { timeout: 180_000 }, async (t) => {
  const db = await pgTestDatabase();
  if ('skip' in db) return t.skip(db.skip);
  const { dir, cleanup } = tempDir('caducee-demo-nodes-');
  const child = spawn(process.execPath, [path.resolve('bin/caducee.js'), 'demo', '--dir', path.join(dir, 'space'), '--json', '--ephemeral-ports', '--no-patients', '--postgres', db.url, '--nodes', '2'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  let pids: number[] = [];
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        const i = out.indexOf('\n');
        if (i >= 0) resolve(out.slice(0, i));
      });
      child.once('exit', (code) => reject(new Error(`demo exited (${code}) before printing its JSON line: ${stderr}`)));
    });
    pids = JSON.parse(line).operators[1].nodes.map((n: { pid: number }) => n.pid);
    assert.equal(pids.length, 2);
    assert.ok(pids.every(alive));
  } finally {
    child.kill('SIGKILL');
    // Each node's IPC channel to the demo closes with it: the node stops (SIGKILL cannot be caught).
    await waitFor(() => pids.every((pid) => !alive(pid)), 'the node processes to stop once the demo is gone', 60_000);
    await db.drop();
    cleanup();
  }
});
