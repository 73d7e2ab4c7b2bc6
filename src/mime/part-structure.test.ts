// BODYPARTSTRUCTURE (RFC 5524 §3) of a part, stored and BINARY forms (the imaptest script
// urlauth-binary checks the same against the server, with Dovecot's expected output).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analyzeMessage } from './analyze.js';
import { partStructureAt } from './part-structure.js';

const msg = Buffer.from(
  [
    'From: a@b.test',
    'Content-Type: multipart/mixed; boundary="b"',
    '',
    '--b',
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Transfer-Encoding: base64',
    '',
    'aGVs',
    'bG8gd29y',
    'bGQ=',
    '',
    '--b',
    'Content-Type: application/octet-stream',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'a=3Db=00c',
    '--b--',
    '',
  ].join('\r\n'),
);

describe('BODYPARTSTRUCTURE (RFC 5524)', () => {
  const info = analyzeMessage(msg);
  it('stored form: the part as in BODYSTRUCTURE, extension data included', () => {
    assert.deepEqual(partStructureAt(msg, info, [1], false), ['text', 'plain', ['charset', 'us-ascii'], null, null, 'base64', 22, 3, null, null, null, null]);
  });
  it('BINARY form: decoded sizes and line counts, the encoding as stored', () => {
    assert.deepEqual(partStructureAt(msg, info, [1], true), ['text', 'plain', ['charset', 'us-ascii'], null, null, 'base64', 11, 0, null, null, null, null]);
    assert.deepEqual((partStructureAt(msg, info, [2], true) as unknown[]).slice(5, 7), ['quoted-printable', 5]);
    const whole = partStructureAt(msg, info, [], true) as unknown[];
    assert.equal((whole[0] as unknown[])[6], 11);
    assert.equal(whole[2], 'mixed');
  });
  it('a part that does not exist: null', () => {
    assert.equal(partStructureAt(msg, info, [3], false), null);
    assert.equal(partStructureAt(msg, info, [1, 2], true), null);
  });
});
