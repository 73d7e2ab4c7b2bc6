// MULTIAPPEND (RFC 3502) all or nothing (issue 15: batched in one transaction): a batch whose
// last message is refused (a bad date-time, over quota) stores none of its messages; a good batch
// is one transaction: consecutive UIDs, one APPENDUID, one modseq, and another session sees all
// its messages at once. Real sockets against the demo.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { tempDir, testLogger } from './helpers.js';
import { Conn, connectTls } from './support/line-conn.js';

/** Small enough for a batch of three 100 KB messages to be over it, once the test's other messages are in. */
const QUOTA = 250_000;
const OVERRIDES = { imap: { defaultQuotaBytes: QUOTA } };

const message = (n: number, body = 'corps du message') => `From: a@example.org\r\nTo: b@example.org\r\nSubject: lot ${n}\r\nMessage-ID: <lot-${n}@example.org>\r\n\r\n${body}\r\n`;
/** A MULTIAPPEND command with LITERAL+ literals: each item `(flags) "date" {n+}` then the message. */
const multiappend = (tag: string, folder: string, items: { date?: string; body: string }[]) =>
  `${tag} APPEND ${folder}` + items.map((i) => ` (\\Seen)${i.date ? ` "${i.date}"` : ''} {${Buffer.byteLength(i.body, 'latin1')}+}\r\n${i.body}`).join('') + '\r\n';

describe('MULTIAPPEND: one transaction, all or nothing (RFC 3502)', () => {
  let layout: DemoLayout;
  let demo: RunningDemo;
  let cleanup = () => {};
  const open: Conn[] = [];
  before(async () => {
    let dir: string;
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral', configOverrides: OVERRIDES });
    demo = await startDemo(layout, { logger: testLogger(), configOverrides: OVERRIDES });
  });
  after(async () => {
    for (const c of open) c.socket.destroy();
    await demo?.stop();
    cleanup();
  });

  const login = async () => {
    const op = layout.operators[0];
    const c = new Conn(await connectTls({ port: op.ports.imaps }, { ca: readFileSync(layout.caBundle, 'utf8') }));
    open.push(c);
    await c.lineMatching(/^\* OK/);
    await c.send(`l LOGIN "${op.users[0].login}" "${op.users[0].appPassword}"`, /^l OK/);
    return c;
  };
  const status = async (c: Conn) => {
    c.socket.write('s STATUS Lots (MESSAGES UIDNEXT)\r\n');
    const line = await c.lineMatching(/^\* STATUS/);
    await c.lineMatching(/^s OK/);
    const m = /MESSAGES (\d+) UIDNEXT (\d+)/.exec(line)!;
    return { messages: Number(m[1]), uidNext: Number(m[2]) };
  };

  test('a batch stores all its messages or none', async () => {
    const a = await login();
    const b = await login();
    await a.send('c CREATE Lots', /^c OK/);
    await b.send('x SELECT Lots', /^x OK/);
    const empty = await status(a);

    // RFC 3502 §6.3.11: the last message's date-time is invalid: the command fails, none is appended.
    a.socket.write(multiappend('m1', 'Lots', [{ body: message(1) }, { body: message(2) }, { date: '31-Foo-2026 10:00:00 +0100', body: message(3) }]));
    assert.match(await a.lineMatching(/^m1 /), /^m1 BAD /);
    assert.deepEqual(await status(a), empty, 'no message of the refused batch is stored');

    // A good batch: consecutive UIDs in one APPENDUID (RFC 4315 §3), seen at once by the other session.
    a.socket.write(multiappend('m2', 'Lots', [1, 2, 3].map((n) => ({ date: '07-Dec-2026 17:00:00 +0100', body: message(n) }))));
    const ok = await a.lineMatching(/^m2 /);
    const uid0 = empty.uidNext;
    assert.match(ok, new RegExp(`^m2 OK \\[APPENDUID \\d+ ${uid0}:${uid0 + 2}\\]`));
    assert.equal((await b.send('n NOOP', /^\* \d+ EXISTS|^n OK/)).replace(/^\* (\d+) EXISTS$/, '$1'), '3', 'one EXISTS for the whole batch');
    await b.lineMatching(/^n OK/);
    b.socket.write('f UID FETCH 1:* (UID FLAGS INTERNALDATE)\r\n');
    for (let k = 0; k < 3; k++) assert.match(await b.lineMatching(/^\* \d+ FETCH/), new RegExp(`UID ${uid0 + k} FLAGS \\(\\\\Seen( \\\\Recent)?\\) INTERNALDATE "07-Dec-2026 16:00:00 \\+0000"`));
    await b.lineMatching(/^f OK/);
    // One transaction: the three messages share the modseq it took (RFC 7162 §3.1.1, as a COPY).
    b.socket.write(`q UID FETCH ${uid0}:${uid0 + 2} (MODSEQ)\r\n`);
    const modseqs = new Set<string>();
    for (let k = 0; k < 3; k++) modseqs.add(/MODSEQ \((\d+)\)/.exec(await b.lineMatching(/^\* \d+ FETCH/))![1]);
    await b.lineMatching(/^q OK/);
    assert.equal(modseqs.size, 1, `one modseq for the batch: ${[...modseqs]}`);

    // Over the quota as a whole (each message alone would fit): RFC 9208 §4.2 OVERQUOTA, nothing stored.
    const before_ = await status(a);
    const big = (n: number) => message(10 + n, 'x'.repeat(100_000));
    a.socket.write(multiappend('m3', 'Lots', [1, 2, 3].map((n) => ({ body: big(n) }))));
    assert.match(await a.lineMatching(/^m3 /), /^m3 NO \[OVERQUOTA\]/);
    assert.deepEqual(await status(a), before_, 'no message of the batch over quota is stored');
  });
});
