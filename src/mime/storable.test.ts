// storableForm(): the stored form of a literal8 APPEND (RFC 3516 §4.4, Dovecot's base64 re-encoding).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeMessage, binaryContent, bodyStructure, storableForm } from './index.js';

const b = (s: string) => Buffer.from(s, 'latin1');
const binOf = (raw: Uint8Array, path: number[]) => {
  const r = binaryContent(raw, analyzeMessage(raw), path);
  assert.ok(r !== null && 'data' in r);
  return Buffer.from(r.data);
};

test('a binary part is re-encoded as base64 in place, the rest of the message untouched', () => {
  const content = Buffer.concat([b('x\x00y\r\n'), Buffer.alloc(200, 0x7a)]);
  const raw = Buffer.concat([
    b('MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nContent-Transfer-Encoding: BINARY\r\nContent-Type: application/octet-stream\r\n\r\n'),
    content,
    b('\r\n--q\r\nContent-Type: text/plain\r\n\r\nplain\r\n--q--\r\n'),
  ]);
  const { data, converted } = storableForm(raw);
  assert.deepEqual(converted, [{ path: [1], declared: 'binary' }]);
  const s = Buffer.from(data).toString('latin1');
  const b64 = content.toString('base64');
  const lines = b64.match(/.{1,76}/g)!.join('\r\n');
  assert.equal(
    s,
    'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nContent-Transfer-Encoding: base64\r\nContent-Type: application/octet-stream\r\n\r\n' +
      lines +
      '\r\n--q\r\nContent-Type: text/plain\r\n\r\nplain\r\n--q--\r\n',
  );
  assert.equal((bodyStructure(analyzeMessage(data), false) as unknown[][])[0][5], 'base64');
  assert.deepEqual(binOf(data, [1]), content);
  assert.deepEqual(binOf(data, [2]), binOf(raw, [2]));
});

test('a 7bit/8bit part holding NUL gets a Content-Transfer-Encoding: base64 (also inside message/rfc822)', () => {
  const raw = b(
    'MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nin\x00ner\r\n',
  );
  const { data, converted } = storableForm(raw);
  assert.deepEqual(converted, [{ path: [1, 1], declared: '7bit' }]);
  assert.match(Buffer.from(data).toString('latin1'), /Content-Type: text\/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naW4AbmVyDQo=$/);
  assert.deepEqual(binOf(data, [1, 1]), b('in\x00ner\r\n'));
});

test('single-part binary message; a part without NUL in 8bit stays as it is', () => {
  const raw = b('MIME-Version: 1.0\r\nContent-Transfer-Encoding: binary\r\n\r\nab\x00c');
  const { data, converted } = storableForm(raw);
  assert.deepEqual(converted, [{ path: [1], declared: 'binary' }]);
  assert.equal(Buffer.from(data).toString('latin1'), 'MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\nYWIAYw==');
  const plain = b('MIME-Version: 1.0\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\xe9t\xe9\r\n');
  assert.equal(storableForm(plain).data, plain);
});

test('Content-* fields that do not count (no MIME-Version): stored as received', () => {
  const raw = b('Subject: x\r\n\r\nno mime \x00\r\n');
  assert.deepEqual(storableForm(raw), { data: raw, converted: [] });
  const binNoMime = b('Subject: x\r\nContent-Transfer-Encoding: binary\r\n\r\nno mime \x00\r\n');
  assert.deepEqual(storableForm(binNoMime).converted, []);
});
