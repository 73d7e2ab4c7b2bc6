// Shared SMTP pieces: enhanced status codes (RFC 2034, RFC 3463) through a real smtp-server,
// the Received trace header (RFC 5321 §4.4), the header/body split of a DATA stream, and the
// replies after a failed DATA.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { test } from 'node:test';
import { rfc5322Date } from '../mime/date.js';
import { BareLfToCrlf, drain, envelopeAddressRefusal, installEnhancedStatusPatch, normalizedLineEnds, receivedHeader, replyDataFailure, smtpError, smtpUtf8Refusal, SMTPServer, splitHeader } from './common.js';

/** A line-oriented SMTP client on a raw socket: what is on the wire, nothing interpreted. */
async function dialogue(port: number, commands: string[]): Promise<string[]> {
  const socket = net.connect(port, '127.0.0.1');
  socket.setEncoding('utf8');
  let buffer = '';
  const replies: string[] = [];
  let waiting: (() => void) | undefined;
  socket.on('data', (d: string) => {
    buffer += d;
    let i: number;
    // RFC 5321 §4.2.1: the last line of a reply has a space after the code.
    while ((i = buffer.indexOf('\r\n')) >= 0) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      if (/^\d{3} /.test(line)) replies.push(line), waiting?.();
    }
  });
  const next = () => new Promise<void>((resolve) => (waiting = resolve));
  await next(); // greeting
  for (const c of commands) {
    socket.write(c + '\r\n');
    await next();
  }
  socket.end();
  return replies;
}

test('enhanced status codes: our own precise code is sent once, the library adds one to the others (RFC 2034 §3, RFC 3463)', async () => {
  installEnhancedStatusPatch();
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'],
    hideENHANCEDSTATUSCODES: false,
    logger: false,
    onRcptTo(address, _session, cb) {
      if (address.address.startsWith('policy')) return cb(smtpError(550, '5.7.1', 'not allowed by policy'));
      const plain = Object.assign(new Error('no such user here'), { responseCode: 550 });
      cb(plain);
    },
  });
  server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  try {
    const port = (server.server.address() as AddressInfo).port;
    const replies = await dialogue(port, ['EHLO client.test', 'MAIL FROM:<a@a.test>', 'RCPT TO:<policy@b.test>', 'RCPT TO:<other@b.test>', 'QUIT']);
    assert.match(replies[1]!, /^250 /);
    assert.equal(replies[3], '550 5.7.1 not allowed by policy');
    // Without a code of ours, smtp-server derives one from the reply code.
    assert.match(replies[4]!, /^550 5\.\d+\.\d+ no such user here$/);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('smtpError: reply code and enhanced code first in the text (RFC 3463 §2)', () => {
  const e = smtpError(452, '4.3.1', 'insufficient storage, try later');
  assert.ok(e instanceof Error);
  assert.equal(e.responseCode, 452);
  assert.equal(e.message, '4.3.1 insufficient storage, try later');
});

test('rfc5322Date: RFC 5322 §3.3 date-time in UTC, numeric zone', () => {
  assert.equal(rfc5322Date(new Date(Date.UTC(2026, 0, 5, 7, 3, 9))), 'Mon, 05 Jan 2026 07:03:09 +0000');
  assert.match(rfc5322Date(), /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} \+0000$/);
});

test('receivedHeader: RFC 5321 §4.4 from/by/with/id/for clauses and date, TLS details in a comment', () => {
  const date = new Date(Date.UTC(2026, 10, 26, 9, 0, 0));
  const h = receivedHeader({
    helo: 'mx.b.mssante.test',
    remoteAddress: '::ffff:192.0.2.7',
    by: 'mx.a.mssante.test',
    protocol: 'ESMTPS',
    tls: { version: 'TLSv1.3', name: 'TLS_AES_256_GCM_SHA384' },
    peerDn: 'CN=mx.b.mssante.test (test),O=Opérateur B',
    id: 'abc123',
    forAddress: 'claire@a.mssante.test',
    date,
  });
  assert.equal(
    h,
    'Received: from mx.b.mssante.test ([192.0.2.7])\r\n' +
      '\tby mx.a.mssante.test (Caducée) with ESMTPS id abc123 (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384; client certificate CN=mx.b.mssante.test test,O=Opérateur B)\r\n' +
      '\tfor <claire@a.mssante.test>;\r\n' +
      '\tThu, 26 Nov 2026 09:00:00 +0000\r\n',
  );
  // Folded lines start with white space (RFC 5322 §2.2.3); the date follows the last ";".
  for (const line of h.split('\r\n').slice(1, -1)) assert.match(line, /^\t/);
  assert.match(h, /;\r\n\t[^;]+\r\n$/);
});

test('receivedHeader: IPv6 address literal (RFC 5321 §4.1.3), a hostile HELO neutralised, no TLS comment without TLS', () => {
  const h = receivedHeader({ helo: 'evil\r\nX-Injected: yes (', remoteAddress: '2001:db8::25', by: 'submission.a.test', protocol: 'ESMTPSA', id: 'q1' });
  assert.match(h, /^Received: from evil\?\?X-Injected:\?yes\?\( \(\[IPv6:2001:db8::25\]\)\r\n/);
  assert.equal(h.split('\r\n').length, 4, 'no line injected');
  assert.ok(!h.includes('using'), 'no TLS comment');
  assert.ok(!h.includes(' for '), 'no for clause without an address');
  assert.match(receivedHeader({ helo: '', remoteAddress: '::1', by: 'x', protocol: 'ESMTPS', id: '1' }), /^Received: from unknown \(\[IPv6:::1\]\)/);
});

/** Feeds `chunks` one by one, as a socket would. */
const chunked = (chunks: (string | Buffer)[]) => Readable.from(chunks.map((c) => Buffer.from(c)), { objectMode: false });
async function readAll(r: Readable): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts).toString();
}

test('splitHeader: the header block up to the empty line (RFC 5322 §2.1), the body streamed, whatever the chunking', async () => {
  const message = 'Subject: x\r\nFrom: a@a.test\r\n\r\nline 1\r\n\r\nline 2\r\n';
  for (const size of [1, 2, 3, 5, 7, 1000]) {
    const chunks: string[] = [];
    for (let i = 0; i < message.length; i += size) chunks.push(message.slice(i, i + size));
    const { header, body, tooLarge } = await splitHeader(chunked(chunks));
    assert.equal(tooLarge, false);
    assert.equal(header.toString(), 'Subject: x\r\nFrom: a@a.test\r\n\r\n', `chunks of ${size}`);
    assert.equal(await readAll(body), 'line 1\r\n\r\nline 2\r\n', `chunks of ${size}`);
  }
});

test('splitHeader: no header at all, header only, header only without its last CRLF', async () => {
  let r = await splitHeader(chunked(['\r\nbody only\r\n']));
  assert.equal(r.header.toString(), '\r\n');
  assert.equal(await readAll(r.body), 'body only\r\n');
  r = await splitHeader(chunked(['Subject: x\r\n']));
  assert.equal(r.header.toString(), 'Subject: x\r\n');
  assert.equal(await readAll(r.body), '');
  r = await splitHeader(chunked(['Subject: x']));
  assert.equal(r.header.toString(), 'Subject: x\r\n', 'the line is completed');
});

test('splitHeader: a header block over the limit is reported, the whole message left in the body, in one chunk or many', async () => {
  const big = 'X-Big: ' + 'a'.repeat(200) + '\r\n\r\nbody\r\n';
  for (const chunks of [[big], big.match(/[\s\S]{1,16}/g)!]) {
    const r = await splitHeader(chunked(chunks), 100);
    assert.equal(r.tooLarge, true, `${chunks.length} chunk(s)`);
    assert.equal(r.header.length, 0);
    assert.equal(await readAll(r.body), big);
  }
  const fits = await splitHeader(chunked([big]), 1000);
  assert.equal(fits.tooLarge, false);
});

test('splitHeader: a source destroyed mid-body (the client left during DATA) fails the body, never leaves it waiting', async () => {
  const source = new PassThrough();
  const split = splitHeader(source);
  source.write('Subject: coupé\r\n\r\ndébut du corps');
  const { body } = await split;
  const read = (async () => {
    for await (const _ of body) void _;
  })();
  source.destroy(Object.assign(new Error('Connection closed before the message was received in full'), { code: 'ECONNECTION' }));
  // Before the fix the body never ended nor failed, and the message files' put kept its file open for ever.
  const outcome = await Promise.race([read.then(() => 'ended', (e: Error) => `failed: ${e.message}`), new Promise((r) => setTimeout(() => r('still waiting'), 5000))]);
  assert.match(String(outcome), /^failed: /);
});

test('drain: consumes the rest of a DATA stream, even an ended or failing one', async () => {
  const s = new PassThrough();
  const done = drain(s);
  s.write('a'.repeat(100_000));
  s.end();
  await done;
  assert.equal(s.readableEnded, true);
  await drain(s); // already ended: resolves at once
  const failing = new PassThrough();
  const d = drain(failing);
  failing.destroy(new Error('socket closed'));
  await d;
});

test('replyDataFailure: 552 5.3.4 for an oversized message, an SMTP error as is, anything else 451 4.3.0 and reported (RFC 5321 §4.2.2, RFC 3463)', async () => {
  const run = (e: unknown) =>
    new Promise<{ err: any; unexpected: unknown[] }>((resolve) => {
      const stream = Readable.from([Buffer.from('rest of the message')]);
      const unexpected: unknown[] = [];
      replyDataFailure(stream, e, 1234, (err) => resolve({ err, unexpected }), (x) => unexpected.push(x));
    });
  const big = await run(Object.assign(new Error('too big'), { name: 'BlobSizeExceededError' }));
  assert.equal(big.err.responseCode, 552);
  assert.equal(big.err.message, '5.3.4 message too big: the limit is 1234 bytes');
  const policy = smtpError(550, '5.7.1', 'refused');
  const own = await run(policy);
  assert.equal(own.err, policy);
  assert.equal(own.unexpected.length, 0);
  const bug = new Error('disk full');
  const other = await run(bug);
  assert.equal(other.err.responseCode, 451);
  assert.match(other.err.message, /^4\.3\.0 temporary failure storing the message, nothing was stored/);
  assert.deepEqual(other.unexpected, [bug]);
});

test('BareLfToCrlf: every bare LF becomes CRLF, whatever the chunking; CRLF and bare CR are kept', async () => {
  const input = 'a\nb\r\nc\rd\n\n.\r\n..e\n';
  const expected = 'a\r\nb\r\nc\rd\r\n\r\n.\r\n..e\r\n';
  for (let size = 1; size <= input.length; size++) {
    const chunks: Buffer[] = [];
    for (let i = 0; i < input.length; i += size) chunks.push(Buffer.from(input.slice(i, i + size)));
    const out = Readable.from(chunks).pipe(new BareLfToCrlf());
    assert.equal(await readAll(out), expected, `chunks of ${size}`);
  }
});

test('normalizedLineEnds: an error of the source ends the normalized stream with it', async () => {
  const src = new PassThrough();
  const out = normalizedLineEnds(src);
  src.write('x\n');
  src.destroy(new Error('connection lost'));
  await assert.rejects(readAll(out), /connection lost/);
});

test('smtpUtf8Refusal: a non-ASCII address only with SMTPUTF8 on MAIL FROM (RFC 6531 §3.4)', () => {
  assert.equal(smtpUtf8Refusal('rene@a.test', { envelope: {} }), null);
  assert.equal(smtpUtf8Refusal('rené@a.test', { envelope: { smtpUtf8: true } }), null);
  const e = smtpUtf8Refusal('rené@a.test', { envelope: { smtpUtf8: false } });
  assert.equal(e?.responseCode, 553);
  assert.match(String(e?.message), /^5\.6\.7 /);
});

test('envelopeAddressRefusal: NUL, C0 controls and DEL in MAIL FROM / RCPT TO get a precise 501 on the wire, through the servers\' patch (RFC 5321 §4.1.2)', async () => {
  assert.equal(envelopeAddressRefusal('"a b"@a.test', 'sender'), null);
  assert.equal(envelopeAddressRefusal('', 'sender'), null, 'the null reverse-path');
  installEnhancedStatusPatch();
  const server = new SMTPServer({ disabledCommands: ['STARTTLS', 'AUTH'], hideENHANCEDSTATUSCODES: false, logger: false });
  server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  try {
    const port = (server.server.address() as AddressInfo).port;
    const replies = await dialogue(port, ['EHLO client.test', 'MAIL FROM:<a\0b@a.test>', 'MAIL FROM:<a@a.test>', 'RCPT TO:<x\x7fy@b.test>', 'RCPT TO:<"x\x01y"@b.test>', 'RCPT TO:<ok@b.test>', 'QUIT']);
    assert.equal(replies[2], '501 5.1.7 bad sender address syntax: NUL at position 2 is not allowed in a mailbox (RFC 5321 section 4.1.2)');
    assert.match(replies[3]!, /^250 /);
    assert.equal(replies[4], '501 5.1.3 bad recipient address syntax: DEL at position 2 is not allowed in a mailbox (RFC 5321 section 4.1.2)');
    assert.match(replies[5]!, /^501 5\.1\.3 bad recipient address syntax: control character 0x01 at position 3 /);
    assert.match(replies[6]!, /^250 /);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});
