// SMTP strictness (issue 13, "Hardening"), over the demo's MX with a peer's certificate, bytes on
// the wire: bare LF line ends are normalized as Postfix 3.9's `smtpd_forbid_bare_newline =
// normalize` does (commands and content lines ending in LF are read as if they ended in CRLF;
// only CRLF.CRLF ends the data; the message is stored with CRLF only), and a non-ASCII address
// is refused unless MAIL FROM carried SMTPUTF8 (RFC 6531 §3.4, 553 5.6.7).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { folderMessages, tempDir, testLogger, waitFor } from './helpers.js';
import { Conn, plain } from './support/line-conn.js';

describe('SMTP strictness on the MX', () => {
  let layout: DemoLayout;
  let demo: RunningDemo;
  let cleanup = () => {};
  before(async () => {
    let dir: string;
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral' });
    demo = await startDemo(layout, { logger: testLogger(), psc: false });
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  /** A session from operator B to operator A's MX, after STARTTLS with B's certificate. */
  async function peerSession(): Promise<Conn> {
    const [a, b] = layout.operators;
    const c = new Conn(await plain(demo.operators[0].ports.mx));
    await c.lineMatching(/^220 /);
    await c.send(`EHLO ${b.hostname}`, /^250 /);
    await c.send('STARTTLS', /^220 /);
    await c.upgrade({ ca: readFileSync(a.caBundle, 'utf8'), cert: readFileSync(b.chain, 'utf8'), key: readFileSync(b.key, 'utf8') });
    await c.send(`EHLO ${b.hostname}`, /^250 /);
    return c;
  }

  test('bare LF in commands and content: read as CRLF, stored as CRLF; <LF>.<CR><LF> does not end the data', async () => {
    const [a, b] = layout.operators;
    const to = a.users[0].addresses[0];
    const from = `${b.users[0].login}@${b.domain}`;
    const c = await peerSession();
    try {
      const before = (await folderMessages(demo.operators[0], to)).length;
      // Commands ended by a bare LF are processed like CRLF-ended ones.
      c.socket.write(`MAIL FROM:<${from}>\n`);
      assert.match(await c.lineMatching(/^\d{3} /), /^250 /);
      c.socket.write(`RCPT TO:<${to}>\n`);
      assert.match(await c.lineMatching(/^\d{3} /), /^250 /);
      await c.send('DATA', /^354 /);
      const marker = `bare-lf-${Date.now()}`;
      c.socket.write(`From: <${from}>\nTo: <${to}>\nSubject: ${marker}\n\nline one\nline two\r\nsmuggled?\n.\r\nMAIL FROM:<x@evil.test>\r\nstill content\n\r\n.\r\n`);
      assert.match(await c.lineMatching(/^\d{3} /), /^250 /);
      const stored = await waitFor(async () => (await folderMessages(demo.operators[0], to)).map((m) => m.toString('utf8')).find((m) => m.includes(marker)), 'the message in the INBOX');
      assert.equal((await folderMessages(demo.operators[0], to)).length, before + 1, 'one message, nothing smuggled');
      assert.doesNotMatch(stored, /[^\r]\n/, 'no bare LF in the stored message');
      assert.match(stored, /\r\nline one\r\nline two\r\nsmuggled\?\r\n\.\r\nMAIL FROM:<x@evil\.test>\r\nstill content\r\n\r\n$/);
      // The session goes on normally after the message.
      await c.send('RSET', /^250 /);
    } finally {
      c.socket.destroy();
    }
  });

  test('a non-ASCII address needs SMTPUTF8 on MAIL FROM (553 5.6.7 otherwise)', async () => {
    const [a, b] = layout.operators;
    const from = `${b.users[0].login}@${b.domain}`;
    const c = await peerSession();
    try {
      assert.match(await c.send(`MAIL FROM:<rené@${b.domain}>`, /^\d{3} /), /^553 5\.6\.7 /);
      await c.send(`MAIL FROM:<${from}>`, /^250 /);
      assert.match(await c.send(`RCPT TO:<hélène@${a.domain}>`, /^\d{3} /), /^553 5\.6\.7 /);
      await c.send('RSET', /^250 /);
      // With SMTPUTF8 the address is judged like any other: here, no such mailbox.
      await c.send(`MAIL FROM:<${from}> SMTPUTF8`, /^250 /);
      assert.match(await c.send(`RCPT TO:<hélène@${a.domain}>`, /^\d{3} /), /^550 5\.1\.1 /);
    } finally {
      c.socket.destroy();
    }
  });
});
