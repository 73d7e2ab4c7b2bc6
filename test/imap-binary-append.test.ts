// APPEND of a literal8 (RFC 3516 §4.4) holding a part in the binary encoding with NUL bytes:
// stored losslessly as Dovecot does — the part re-encoded as base64, which BODYSTRUCTURE
// announces — so that BODY[] loses no byte and BINARY[1] gives back the original bytes. Real
// sockets against the demo.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { tempDir, testLogger } from './helpers.js';
import { connectBytes as connect } from './support/imap-bytes.js';

/** The literal (or literal8) following `item` in a FETCH response. */
function literalAfter(resp: Buffer, item: string): Buffer {
  const s = resp.toString('latin1');
  const m = new RegExp(`${item.replace(/[[\].]/g, '\\$&')} ~?\\{(\\d+)\\}\\r\\n`).exec(s);
  assert.ok(m, `${item} with a literal in:\n${s}`);
  const start = m.index + m[0].length;
  return resp.subarray(start, start + Number(m[1]));
}

describe('APPEND literal8 with NUL bytes (RFC 3516 §4.4)', () => {
  let layout: DemoLayout;
  let demo: RunningDemo;
  let cleanup = () => {};
  before(async () => {
    let dir: string;
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral' });
    demo = await startDemo(layout, { logger: testLogger() });
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  test('BODYSTRUCTURE says base64, BODY[] keeps every byte, BINARY[1] gives the original bytes', async () => {
    const op = layout.operators[0];
    const c = await connect(op.ports.imaps, readFileSync(layout.caBundle, 'utf8'));
    try {
      await c.cmd(`LOGIN "${op.users[0].login}" "${op.users[0].appPassword}"`);
      await c.cmd('CREATE bin8');
      const original = Buffer.concat([Buffer.from('nul\x00here\r\n\x00\x00\xff\xfe bytes', 'latin1'), Buffer.alloc(120, 0x61), Buffer.from('\x00\r\n', 'latin1')]);
      const header =
        'From: a@example.org\r\nSubject: nul\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n' +
        '--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: binary\r\nContent-Disposition: inline\r\n\r\n';
      const message = Buffer.concat([Buffer.from(header, 'latin1'), original, Buffer.from('\r\n--b--\r\n', 'latin1')]);
      await c.cmd(`APPEND bin8 ~{${message.length}+}\r\n`, message);
      await c.cmd('SELECT bin8');

      const bs = (await c.cmd('FETCH 1 (BODYSTRUCTURE)')).toString('latin1');
      assert.match(bs, /\("text" "plain" \("charset" "utf-8"\) NIL NIL "base64" \d+ \d+ NIL \("inline" NIL\) NIL NIL\)/i, bs);

      const body = literalAfter(await c.cmd('FETCH 1 (BODY.PEEK[])'), 'BODY[]');
      assert.ok(!body.includes(0), 'BODY[] holds no NUL');
      assert.ok(!body.includes(0x80), 'BODY[] has no NUL turned into 0x80');
      assert.match(body.toString('latin1'), /\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: inline\r\n\r\n/);
      // the stored form is the message itself: its base64 part decodes to the original bytes
      const b64 = /\r\n\r\n([A-Za-z0-9+/=\r\n]+)\r\n--b--/.exec(body.toString('latin1'))![1];
      assert.ok(b64.split('\r\n').every((l) => l.length <= 76), 'base64 lines of at most 76 characters');
      assert.deepEqual(Buffer.from(b64.replace(/\r\n/g, ''), 'base64'), original);

      const bin = await c.cmd('FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])');
      assert.deepEqual(literalAfter(bin, 'BINARY[1]'), original);
      assert.match(bin.toString('latin1'), new RegExp(`BINARY\\.SIZE\\[1\\] ${original.length}\\b`));
    } finally {
      c.close();
    }
  });
});
