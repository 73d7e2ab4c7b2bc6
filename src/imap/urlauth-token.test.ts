// URLAUTH INTERNAL tokens (RFC 4467 §2.4) and the access identifier rule (§2.2), without a server.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { parseImapMessageUrl } from './protocol/imap-url.js';
import { accessAllows, urlAuthToken, urlAuthTokenMatches } from './urlauth-token.js';

describe('URLAUTH INTERNAL token', () => {
  const key = randomBytes(32);
  const rump = 'imap://claire.martin@imap.a.test/INBOX/;UID=20;URLAUTH=user+secretariat';
  it('is HMAC-SHA-256 of the rump URL: 64 hex digits, the same for the same key and rump', () => {
    const t = urlAuthToken(key, rump);
    assert.match(t, /^[0-9a-f]{64}$/);
    assert.equal(urlAuthToken(key, rump), t);
    assert.equal(urlAuthTokenMatches(key, rump, t), true);
    assert.equal(urlAuthTokenMatches(key, rump, t.toUpperCase()), true, 'hex compares case-insensitively');
  });
  it('does not match a tampered URL, another mailbox, another user, another key, a cut token, or no key', () => {
    const t = urlAuthToken(key, rump);
    assert.equal(urlAuthTokenMatches(key, rump.replace('UID=20', 'UID=21'), t), false, 'another message');
    assert.equal(urlAuthTokenMatches(key, rump.replace('/INBOX/', '/Archives/'), t), false, 'another mailbox');
    assert.equal(urlAuthTokenMatches(key, rump.replace('user+secretariat', 'user+intrus'), t), false, 'another access identifier');
    assert.equal(urlAuthTokenMatches(key, rump.replace('user+secretariat', 'authuser'), t), false, 'a wider access identifier');
    assert.equal(urlAuthTokenMatches(randomBytes(32), rump, t), false, 'another key (after RESETKEY)');
    assert.equal(urlAuthTokenMatches(key, rump, t.slice(0, 32)), false, 'a shorter token');
    assert.equal(urlAuthTokenMatches(key, rump, `${t.slice(0, 63)}${t[63] === '0' ? '1' : '0'}`), false, 'one digit changed');
    assert.equal(urlAuthTokenMatches(undefined, rump, t), false, 'no key (removed, or no such mailbox)');
  });
  it('an expiry is part of the rump the token signs', () => {
    const u = parseImapMessageUrl(`imap://a@h/INBOX/;UID=1;EXPIRE=2026-12-08T10:00:00Z;URLAUTH=authuser:internal:${'0'.repeat(64)}`)!;
    const t = urlAuthToken(key, u.auth!.rump);
    const later = parseImapMessageUrl(`imap://a@h/INBOX/;UID=1;EXPIRE=2027-12-08T10:00:00Z;URLAUTH=authuser:internal:${t}`)!;
    assert.equal(urlAuthTokenMatches(key, later.auth!.rump, later.auth!.token!), false, 'moving the expiry breaks the token');
  });
});

describe('URLAUTH access identifiers (RFC 4467 §2.2) as Caducée applies them', () => {
  it('user+NAME: only NAME; authuser: any authenticated user; submit+ and anonymous: nobody', () => {
    assert.equal(accessAllows({ kind: 'user', user: 'secretariat' }, 'secretariat'), true);
    assert.equal(accessAllows({ kind: 'user', user: 'Secretariat' }, 'secretariat'), true, 'logins compare case-insensitively');
    assert.equal(accessAllows({ kind: 'user', user: 'secretariat' }, 'claire.martin'), false, 'wrong user');
    assert.equal(accessAllows({ kind: 'authuser' }, 'claire.martin'), true);
    assert.equal(accessAllows({ kind: 'submit', user: 'claire.martin' }, 'claire.martin'), false);
    assert.equal(accessAllows({ kind: 'anonymous' }, 'claire.martin'), false);
  });
});
