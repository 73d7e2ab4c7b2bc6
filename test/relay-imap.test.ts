// IMAP IDLE across nodes (src/relay): two nodes of one operator (two startOperator on one SQLite
// file, as two processes would share it), their Core events relayed over a real PostgreSQL
// LISTEN/NOTIFY channel. An IDLE session on node 2 sees a message submitted on node 1 (the event
// only names the folder: node 2 reads the shared store by modseq); a change no event announced
// (a notification lost while node 2's LISTEN connection was down) is reported after node 2's
// relay reconnects and emits 'resync'.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import pg from 'pg';
import { loadConfig, type Config } from '../src/config/index.js';
import { prepareDemo, type DemoLayout } from '../src/demo/space.js';
import { startOperator, type Operator } from '../src/main.js';
import { StoreChannelTransport } from '../src/relay/channel.js';
import { PgNotificationChannel } from '../src/store/postgres/notifications.js';
import { submitAs, tempDir, testLogger, waitFor } from './helpers.js';
import { pgTestDatabase } from './support/postgres.js';

describe('IMAP IDLE with events relayed between nodes over PostgreSQL', () => {
  const { dir, cleanup } = tempDir('caducee-relay-imap-');
  let db: { url: string; drop(): Promise<void> } | undefined;
  let skip: string | undefined;
  let layout: DemoLayout;
  const nodes: Operator[] = [];
  const channels: PgNotificationChannel[] = [];

  before(async () => {
    const r = await pgTestDatabase();
    if ('skip' in r) return void (skip = r.skip);
    db = r;
    layout = await prepareDemo(path.join(dir, 'space'), { ports: 'ephemeral', patients: false });
    const A = layout.operators[0];
    const config: Config = loadConfig(A.config);
    // No safety poll: only the relay (or a resync it emits) can tell node 2 of node 1's changes.
    config.events.resyncSeconds = 0;
    for (let i = 0; i < 2; i++) {
      const channel = new PgNotificationChannel(db.url, 'public', { logger: testLogger(), backoffMs: { min: 50, max: 500 } });
      channels.push(channel);
      nodes.push(await startOperator(structuredClone(config), { logger: testLogger(), relay: new StoreChannelTransport(channel, A.domain, { logger: testLogger() }) }));
    }
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    await db?.drop();
    cleanup();
  });

  test('node 2 sees what node 1 accepted, and catches up by modseq after its relay reconnects', async (t) => {
    if (skip) return t.skip(skip);
    const [one, two] = nodes;
    const A = layout.operators[0];
    const claire = A.users[0];
    const address = claire.addresses[0];
    const ca = readFileSync(layout.caBundle, 'utf8');
    const imap = new ImapFlow({ host: '127.0.0.1', port: two.ports.imaps, secure: true, tls: { ca, servername: 'localhost' }, auth: { user: claire.login, pass: claire.appPassword }, logger: false });
    await imap.connect();
    try {
      const box = await imap.mailboxOpen('INBOX');
      let seen = box.exists;
      const start = seen;
      imap.on('exists', (e: { count: number }) => (seen = Math.max(seen, e.count)));
      void imap.idle();

      // Accepted by node 1 (its SMTP submission), announced to node 2 by NOTIFY.
      await submitAs(one.ports.submission, layout.caBundle, claire, { from: address, to: address, subject: 'Compte rendu opératoire', text: 'Texte' });
      const accepted = performance.now();
      await waitFor(() => seen === start + 1, 'the IDLE session on node 2 to see the message node 1 accepted');
      // Printed, not asserted (no timed assertions): the 250 on node 1 → EXISTS on node 2.
      t.diagnostic(`node 1's 250 → node 2's EXISTS: ${Math.round(performance.now() - accepted)} ms (waitFor polls every 50 ms)`);
      assert.ok(two.relay!.counters.received >= 1);
      assert.equal(two.relay!.counters.published, 0, 'node 2 never republished what it received');

      // A message no event announces (written to the shared store directly, as a NOTIFY lost
      // while node 2's LISTEN connection is down would leave it), then that connection is killed.
      const mailbox = (await one.store.findMailboxByAddress(address))!;
      const inbox = (await one.store.getFolder(mailbox.id, 'INBOX'))!;
      const blob = await one.blobs.put(Buffer.from(`From: ${address}\r\nTo: ${address}\r\nSubject: Sans annonce\r\n\r\nTexte\r\n`));
      await one.store.appendMessage(inbox.id, { blobId: blob.id, size: blob.size, flags: [], internalDate: new Date() });
      blob.release();
      const admin = new pg.Client({ connectionString: db!.url });
      await admin.connect();
      try {
        await admin.query('SELECT pg_terminate_backend($1)', [channels[1].backendPid]);
      } finally {
        await admin.end();
      }
      // Node 2's relay reconnects, emits 'resync': the session compares HIGHESTMODSEQ and reports the message.
      await waitFor(() => seen === start + 2, "the IDLE session on node 2 to catch up after its relay's reconnection");
      assert.equal(channels[1].reconnects, 1);
      assert.ok(two.relay!.counters.resyncs >= 1);
    } finally {
      await imap.logout().catch(() => imap.close());
    }
  });
});
