// Real IMAP clients against Caducée's IMAP server: imapflow (Node) and Python's imaplib.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { submitAs, tempDir, testLogger, waitFor } from './helpers.js';

const OVERRIDES = { queue: { retrySeconds: [0.3], pollSeconds: 0.1, giveUpSeconds: 600, connectTimeoutSeconds: 3 } };

describe('IMAP with real clients', () => {
  let layout: DemoLayout;
  let demo: RunningDemo;
  let cleanup = () => {};
  let dir: string;

  before(async () => {
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral', configOverrides: OVERRIDES });
    demo = await startDemo(layout, { logger: testLogger(), configOverrides: OVERRIDES });
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  const client = (user: { login: string; appPassword: string }, opId = 0, implicit = true) =>
    new ImapFlow({
      host: '127.0.0.1',
      port: implicit ? demo.operators[opId].ports.imaps : demo.operators[opId].ports.imap,
      secure: implicit,
      doSTARTTLS: implicit ? undefined : true,
      auth: { user: user.login, pass: user.appPassword },
      tls: { ca: readFileSync(layout.caBundle), servername: 'localhost' } as any,
      logger: false,
    } as any);

  test('imapflow: login, list, idle receives a delivery from the other operator, fetch, search, move', async () => {
    const claire = layout.operators[0].users[0];
    const paul = layout.operators[1].users[0];
    const c = client(claire);
    await c.connect();
    try {
      const list = await c.list();
      const names = list.map((m) => m.path);
      for (const n of ['INBOX', 'Sent', 'Drafts', 'Trash', 'Junk']) assert.ok(names.includes(n), `${n} listed: ${names.join(', ')}`);
      assert.equal(list.find((m) => m.path === 'Sent')?.specialUse, '\\Sent');
      assert.ok(names.some((n) => n.startsWith('Partagés/cardiologie@a.mssante.test')), `delegated ORG mailbox listed under the shared namespace: ${names.join(', ')}`);
      const lock = await c.getMailboxLock('INBOX');
      try {
        const existsEvent = new Promise<number>((resolve) => c.on('exists', (d: any) => resolve(d.count)));
        const idle = c.idle();
        await submitAs(demo.operators[1].ports.submission, layout.caBundle, paul, {
          from: paul.addresses[0],
          to: claire.addresses[0],
          subject: 'Résultats de biologie',
          text: 'Bonjour, voici les résultats.',
        });
        const count = await Promise.race([existsEvent, new Promise<number>((_, rej) => setTimeout(() => rej(new Error('no EXISTS during IDLE')), 10000))]);
        assert.equal(count, 1);
        void idle;
        const msgs = [];
        for await (const m of c.fetch('1:*', { envelope: true, source: true, flags: true, bodyStructure: true, uid: true })) msgs.push(m);
        assert.equal(msgs.length, 1);
        assert.equal(msgs[0].envelope?.subject, 'Résultats de biologie');
        assert.equal(msgs[0].envelope?.from?.[0].address, paul.addresses[0]);
        assert.match(msgs[0].source!.toString(), /voici les r=C3=A9sultats|voici les résultats/);
        const found = await c.search({ subject: 'biologie' }, { uid: true });
        assert.deepEqual(found, [msgs[0].uid]);
        assert.deepEqual(await c.search({ subject: 'radiologie' }), []);
        await c.mailboxCreate('Patients/Dupont');
        const moved = await c.messageMove(String(msgs[0].uid), 'Patients/Dupont', { uid: true });
        assert.ok(moved && (moved as any).uidMap?.size === 1, 'MOVE returned a COPYUID map');
      } finally {
        lock.release();
      }
      const st = (await c.status('Patients/Dupont', { messages: true, unseen: true })) as any;
      assert.equal(st.messages, 1);
      assert.equal(st.unseen, 1, 'imapflow fetches the source with BODY.PEEK: still unseen');
      assert.equal(((await c.status('INBOX', { messages: true })) as any).messages, 0);
    } finally {
      await c.logout();
    }
  });

  test('a secretary with a read grant sees the physician mailbox under "Autres utilisateurs"', async () => {
    const secretary = layout.operators[0].users[1];
    const claire = layout.operators[0].users[0];
    const c = client(secretary, 0, false);
    await c.connect();
    try {
      const names = (await c.list()).map((m) => m.path);
      const other = `Autres utilisateurs/${claire.addresses[0]}/INBOX`;
      assert.ok(names.includes(other), names.join(', '));
      const st = (await c.status(`Autres utilisateurs/${claire.addresses[0]}/Patients/Dupont`, { messages: true })) as any;
      assert.equal(st.messages, 1);
      // The practice mailbox (CAB) is not delegated to the secretary: not visible.
      assert.ok(!names.some((n) => n.includes('cabinet.martin')));
    } finally {
      await c.logout();
    }
  });

  test("Python's imaplib: STARTTLS, login, select, search, fetch, store, expunge", async () => {
    const claire = layout.operators[0].users[0];
    await submitAs(demo.operators[0].ports.submission, layout.caBundle, claire, { from: claire.addresses[0], to: claire.addresses[0], subject: 'Note pour moi', text: 'ligne 1\nligne 2' });
    await waitFor(async () => (await demo.operators[0].store.folderStatus((await demo.operators[0].store.getFolder((await demo.operators[0].store.findMailboxByAddress(claire.addresses[0]))!.id, 'INBOX'))!.id)).messages === 1, 'local delivery');
    const script = path.join(dir, 'imap.py');
    writeFileSync(
      script,
      `import imaplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[3])
ctx.check_hostname = False
M = imaplib.IMAP4('127.0.0.1', int(sys.argv[4]))
assert 'LOGINDISABLED' in M.capabilities, M.capabilities
M.starttls(ssl_context=ctx)
M.login(sys.argv[1], sys.argv[2])
typ, data = M.select('INBOX')
assert typ == 'OK' and data == [b'1'], data
typ, data = M.search(None, 'SUBJECT', '"Note pour"')
assert data == [b'1'], data
typ, data = M.fetch('1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)] FLAGS)')
assert b'Subject: Note pour moi' in data[0][1], data
typ, data = M.store('1', '+FLAGS', '(\\\\Deleted)')
assert b'\\\\Deleted' in data[0], data
typ, data = M.expunge()
assert data == [b'1'], data
typ, data = M.select('INBOX')
assert data == [b'0'], data
M.logout()
print('imaplib ok')
`,
    );
    // Asynchronous: the server under test runs in this very process.
    const r = await promisify(execFile)('python3', [script, claire.login, claire.appPassword, layout.caBundle, String(demo.operators[0].ports.imap)], { encoding: 'utf8', timeout: 30000 });
    assert.match(r.stdout, /imaplib ok/);
  });
});
