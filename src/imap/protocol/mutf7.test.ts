import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeMutf7, encodeMutf7, isValidMutf7, Mutf7Error } from './mutf7.js';

describe('modified UTF-7 (RFC 3501 §5.1.3)', () => {
  it('RFC 3501 example: ~peter/mail/台北/日本語', () => {
    assert.equal(encodeMutf7('~peter/mail/台北/日本語'), '~peter/mail/&U,BTFw-/&ZeVnLIqe-');
    assert.equal(decodeMutf7('~peter/mail/&U,BTFw-/&ZeVnLIqe-'), '~peter/mail/台北/日本語');
  });
  it('printable ASCII represents itself, "&" is "&-"', () => {
    assert.equal(encodeMutf7('Sent Items'), 'Sent Items');
    assert.equal(encodeMutf7('A&B'), 'A&-B');
    assert.equal(decodeMutf7('A&-B&-'), 'A&B&');
    assert.equal(encodeMutf7(' !~'), ' !~');
  });
  it('French names', () => {
    assert.equal(encodeMutf7('Éléments envoyés'), '&AMk-l&AOk-ments envoy&AOk-s');
    assert.equal(decodeMutf7('&AMk-l&AOk-ments envoy&AOk-s'), 'Éléments envoyés');
    assert.equal(encodeMutf7('Boîte de réception'), 'Bo&AO4-te de r&AOk-ception');
    assert.equal(encodeMutf7('éé'), '&AOkA6Q-');
  });
  it('control characters and astral-plane characters are base64-encoded', () => {
    assert.equal(encodeMutf7('a\tb'), 'a&AAk-b');
    assert.equal(encodeMutf7('\x7f'), '&AH8-');
    assert.equal(encodeMutf7('😀'), '&2D3eAA-');
    assert.equal(decodeMutf7('&2D3eAA-'), '😀');
  });
  it('encode rejects lone surrogates', () => {
    assert.throws(() => encodeMutf7('a\ud800b'), Mutf7Error);
    assert.throws(() => encodeMutf7('\udc00'), Mutf7Error);
  });
  it('decode is strict', () => {
    const invalid: [string, RegExp][] = [
      ['é', /invalid character U\+00E9 at index 0/],
      ['a\tb', /invalid character U\+0009/],
      ['&AOk', /unterminated base64 run/],
      ['&AO/-', /invalid modified base64 character "\/"/],
      ['&AOk=-', /invalid modified base64 character "="/],
      ['&A-', /truncated base64 run/],
      ['&AOkA-', /truncated base64 run/],
      ['&AOl-', /non-zero padding bits/],
      ['&AGE-', /printable US-ASCII character "a" encoded/],
      ['&ACY-', /printable US-ASCII character "&" encoded/],
      ['&AOk-&AOk-', /null shift at index 4/],
      ['&2D0-', /unpaired high surrogate/],
      ['&3gA-', /unpaired low surrogate/],
      ['&2D3YPQ-', /unpaired high surrogate/],
    ];
    for (const [s, re] of invalid) {
      assert.throws(() => decodeMutf7(s), (e: unknown) => e instanceof Mutf7Error && re.test(e.message), s);
      assert.equal(isValidMutf7(s), false, s);
    }
  });
  it('"&-" right after a run is not a null shift', () => {
    assert.equal(decodeMutf7('&AOk-&-'), 'é&');
  });
  it('round-trips random strings, and encodes canonically', () => {
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const pool = ['a', 'Z', '&', '-', ' ', '/', '.', 'é', 'ß', '日', '\t', '\x7f', '😀', '€', '~', '+', ','];
    for (let n = 0; n < 2000; n++) {
      let s = '';
      const len = Math.floor(rnd() * 12);
      for (let i = 0; i < len; i++) s += pool[Math.floor(rnd() * pool.length)];
      const enc = encodeMutf7(s);
      assert.match(enc, /^[\x20-\x7e]*$/);
      assert.equal(decodeMutf7(enc), s);
      assert.equal(encodeMutf7(decodeMutf7(enc)), enc);
    }
  });
});
