// IMAP message URLs (RFC 5092) as CATENATE takes them (RFC 4469 §5).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseImapMessageUrl as parse } from './imap-url.js';

describe('IMAP message URLs (RFC 5092)', () => {
  it('relative forms of the imaptest catenate script', () => {
    assert.deepEqual(parse('/imaptest/;uid=3/;section=header'), { mailbox: 'imaptest', uid: 3, urlauth: false, section: { kind: 'header', part: [] } });
    assert.deepEqual(parse('/imaptest;uidvalidity=77/;uid=3/;section=1'), { mailbox: 'imaptest', uidValidity: 77, uid: 3, urlauth: false, section: { kind: 'part', part: [1] } });
    assert.deepEqual(parse('/imaptest/;UID=4/;PARTIAL=100000.1'), { mailbox: 'imaptest', uid: 4, urlauth: false, partial: { offset: 100000, length: 1 } });
    assert.deepEqual(parse('/INBOX/;UID=4'), { mailbox: 'INBOX', uid: 4, urlauth: false });
  });
  it('absolute form, UTF-8 percent-encoded names, sections parsed by the command grammar', () => {
    assert.deepEqual(parse('imap://claire.martin@imap.a.test:993/Partag%C3%A9s/org%40a.test/INBOX/;UID=20/;SECTION=1.2.MIME/;PARTIAL=0'), {
      host: 'imap.a.test',
      user: 'claire.martin',
      mailbox: 'Partagés/org@a.test/INBOX',
      uid: 20,
      urlauth: false,
      section: { kind: 'mime', part: [1, 2] },
      partial: { offset: 0 },
    });
    assert.deepEqual(parse('/a/;UID=1/;SECTION=HEADER.FIELDS%20(FROM%20TO)')?.section, { kind: 'header.fields', part: [], fields: ['FROM', 'TO'], not: false });
    assert.equal(parse(`imap://u@h/a/;UID=1;URLAUTH=anonymous:internal:${'0'.repeat(32)}`)?.urlauth, true);
  });
  it('rejects what is not a message URL', () => {
    for (const bad of [
      '',
      'INBOX/;UID=1', // neither absolute nor server-relative
      '/INBOX', // no UID
      '/INBOX/;UID=0',
      '/INBOX/;UID=4294967296',
      '/INBOX/;UID=x',
      '/INBOX;UIDVALIDITY=/;UID=1',
      '/INBOX;FOO=1/;UID=1',
      '/INBOX/;SECTION=1/;UID=1', // out of order
      '/INBOX/;UID=1/;UID=2',
      '/INBOX/;UID=1/;SECTION=FOO',
      '/INBOX/;UID=1/;SECTION=1%5D',
      '/INBOX/;UID=1/;SECTION=1%0D%0A',
      '/INBOX/;UID=1/;PARTIAL=1.0',
      '/IN%ZZBOX/;UID=1',
      '/%C3/;UID=1', // invalid UTF-8
      'imap://host', // no path
      `/${'a'.repeat(5000)}/;UID=1`,
    ]) {
      assert.equal(parse(bad), null, bad);
    }
  });
});

describe('URLAUTH URLs (RFC 4467 §2, RFC 5092 §11)', () => {
  const T = '0123456789abcdef'.repeat(4);
  it('the imaptest forms: rump and full, user+, authuser, sections', () => {
    const rump = 'imap://claire.martin@127.0.0.1/imaptest/;uid=3;urlauth=user+claire.martin';
    assert.deepEqual(parse(rump), {
      host: '127.0.0.1',
      user: 'claire.martin',
      mailbox: 'imaptest',
      uid: 3,
      urlauth: true,
      auth: { rump, access: { kind: 'user', user: 'claire.martin' } },
    });
    const full = parse(`${rump}:internal:${T.toUpperCase()}`)!;
    assert.deepEqual(full.auth, { rump, access: { kind: 'user', user: 'claire.martin' }, mechanism: 'INTERNAL', token: T });
    const sec = parse(`imap://a@h/x/;uid=1/;section=1.1;urlauth=authuser:internal:${T}`)!;
    assert.deepEqual([sec.section, sec.auth!.access, sec.auth!.rump], [{ kind: 'part', part: [1, 1] }, { kind: 'authuser' }, 'imap://a@h/x/;uid=1/;section=1.1;urlauth=authuser']);
    assert.deepEqual(parse('imap://a@h/x/;UID=1/;PARTIAL=0.10;URLAUTH=submit+b%2Bc')!.auth!.access, { kind: 'submit', user: 'b+c' });
    assert.deepEqual(parse('imap://a@h/x/;UID=1;URLAUTH=ANONYMOUS')!.auth!.access, { kind: 'anonymous' });
  });
  it(';EXPIRE= (RFC 3339 date-time) before ;URLAUTH=, inside the rump', () => {
    const u = parse(`imap://a@h/x/;UID=1;EXPIRE=2026-12-08T10:00:00+01:00;URLAUTH=authuser:internal:${T}`)!;
    assert.equal(u.auth!.expire, Date.parse('2026-12-08T09:00:00Z'));
    assert.equal(u.auth!.rump, 'imap://a@h/x/;UID=1;EXPIRE=2026-12-08T10:00:00+01:00;URLAUTH=authuser');
    assert.equal(parse('imap://a@h/x/;UID=1;EXPIRE=2026-12-08T10:00:00.250Z;URLAUTH=authuser')!.auth!.expire, Date.parse('2026-12-08T10:00:00.250Z'));
  });
  it('rejects malformed URLAUTH URLs', () => {
    for (const bad of [
      `/x/;UID=1;URLAUTH=authuser:internal:${T}`, // relative: RFC 5092 §11 authimapurl is absolute
      `imap://h/x/;UID=1;URLAUTH=authuser:internal:${T}`, // no user
      `imap://a;AUTH=PLAIN@h/x/;UID=1;URLAUTH=authuser`, // ;AUTH= in a URLAUTH URL
      'imap://a@h/x/;UID=1;URLAUTH=', // no access
      'imap://a@h/x/;UID=1;URLAUTH=everyone',
      'imap://a@h/x/;UID=1;URLAUTH=user+',
      'imap://a@h/x/;UID=1;URLAUTH=authuser:internal', // mechanism without token
      'imap://a@h/x/;UID=1;URLAUTH=authuser:internal:abc', // token under 32 hex digits
      `imap://a@h/x/;UID=1;URLAUTH=authuser:internal:${'g'.repeat(32)}`,
      `imap://a@h/x/;UID=1;URLAUTH=authuser:in/ternal:${T}`,
      `imap://a@h/x/;UID=1;URLAUTH=authuser:internal:${T}:more`,
      'imap://a@h/x/;UID=1;EXPIRE=2026-13-01T00:00:00Z;URLAUTH=authuser',
      'imap://a@h/x/;UID=1;EXPIRE=2026-02-31T00:00:00Z;URLAUTH=authuser',
      'imap://a@h/x/;UID=1;EXPIRE=tomorrow;URLAUTH=authuser',
      'imap://a@h/x/;UID=1;EXPIRE=2026-12-08T10:00:00Z', // EXPIRE without URLAUTH
      'imap://a@h/x;URLAUTH=authuser', // no UID: URLAUTH URLs name a message
      'imap://a@h/x/;UID=1/;URLAUTH=authuser', // ";URLAUTH" follows without "/"
      'imap://a@h/x y/;UID=1;URLAUTH=authuser', // RFC 3986: no raw space
      'imap://a@h/"x"/;UID=1;URLAUTH=authuser',
    ]) {
      assert.equal(parse(bad), null, bad);
    }
  });
});

describe('IMAP message URLs: seeded random input', () => {
  it('never throws, and whatever it accepts names a message', async () => {
    const { Rng } = await import('../../../test/imap/fuzz-harness.js');
    const rng = new Rng(0x5092);
    const pieces = ['/', ';', '=', '%', '%C3%A9', '%ZZ', 'UID', 'uidvalidity', 'SECTION', 'PARTIAL', 'URLAUTH', '1', '0', '42', '4294967296', '.', ':', '@', 'imap://', 'INBOX', 'HEADER.FIELDS%20(FROM)', 'é', ']', '\r\n', '(', ')', '"'];
    for (let i = 0; i < 5000; i++) {
      const n = rng.range(0, 14);
      let url = rng.bool(0.5) ? '/INBOX/;UID=' : '';
      for (let k = 0; k < n; k++) url += rng.pick(pieces);
      const u = parse(url);
      if (u) {
        assert.ok(u.uid >= 1 && u.uid <= 4294967295, url);
        assert.equal(typeof u.mailbox, 'string');
      }
    }
  });
});
