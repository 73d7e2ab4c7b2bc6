import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  oauthbearerErrorChallenge,
  parseOauthbearer,
  parseXoauth2,
  xoauth2ErrorChallenge,
} from './sasl-codec.js';

const b = (s: string) => Buffer.from(s, 'utf8');
const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl';

test('XOAUTH2: the example of Google\'s specification', () => {
  // "user=someuser@example.com^Aauth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg^A^A"
  const raw = Buffer.from('dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==', 'base64');
  assert.deepEqual(parseXoauth2(raw), { user: 'someuser@example.com', token: 'ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg' });
});

test('XOAUTH2: JWT token, non-ASCII user, case-insensitive scheme', () => {
  assert.deepEqual(parseXoauth2(b(`user=hélène.dupont@a.mssante.test\x01auth=Bearer ${JWT}\x01\x01`)), { user: 'hélène.dupont@a.mssante.test', token: JWT });
  assert.deepEqual(parseXoauth2(b(`user=u\x01auth=bearer ${JWT}\x01\x01`)), { user: 'u', token: JWT });
  assert.deepEqual(parseXoauth2(b(`user=u\x01auth=Bearer   ${JWT}\x01\x01`)), { user: 'u', token: JWT });
});

test('XOAUTH2: malformed inputs', () => {
  const bad = [
    '',
    `user=u\x01auth=Bearer ${JWT}\x01`, // one ^A at the end
    `user=u\x01auth=Bearer ${JWT}`, // no terminator
    `user=u\x01auth=Bearer ${JWT}\x01\x01\x01`, // an empty third field
    `auth=Bearer ${JWT}\x01user=u\x01\x01`, // order
    `user=\x01auth=Bearer ${JWT}\x01\x01`, // empty user
    `user=u\x01auth=Basic dTpw\x01\x01`, // not Bearer
    `user=u\x01auth=Bearer\x01\x01`, // no token
    `user=u\x01auth=Bearer \x01\x01`, // empty token
    `user=u\x01auth=Bearer ${JWT} extra\x01\x01`, // trailing junk
    `user=u\x01auth=Bearer tok\u00e9n\x01\x01`, // not a b64token
    `user=u\x01auth=Bearer a=b\x01\x01`, // "=" only at the end of a b64token
    `user=u\x01x=y\x01auth=Bearer ${JWT}\x01\x01`, // unknown field
    `usr=u\x01auth=Bearer ${JWT}\x01\x01`,
  ];
  for (const s of bad) assert.equal(parseXoauth2(b(s)), null, JSON.stringify(s));
  assert.equal(parseXoauth2(Buffer.concat([b('user='), Buffer.from([0xff, 0xfe]), b(`\x01auth=Bearer ${JWT}\x01\x01`)])), null, 'invalid UTF-8');
  assert.equal(parseXoauth2(Buffer.alloc(70_000, 0x61)), null, 'oversized');
});

test('XOAUTH2: error challenge JSON', () => {
  assert.deepEqual(JSON.parse(xoauth2ErrorChallenge({ status: '401', scope: 'openid scope_all' }).toString('utf8')), {
    status: '401',
    schemes: 'bearer',
    scope: 'openid scope_all',
  });
  const noScope = xoauth2ErrorChallenge({ status: '400' }).toString('utf8');
  assert.equal(noScope, '{"status":"400","schemes":"bearer"}');
});

test('OAUTHBEARER: the example of RFC 7628 §4.1', () => {
  // n,a=user@example.com,^Ahost=server.example.com^Aport=143^Aauth=Bearer vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg==^A^A
  const raw = Buffer.from(
    'bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2c9PQEB',
    'base64',
  );
  assert.deepEqual(parseOauthbearer(raw), {
    authzid: 'user@example.com',
    token: 'vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg==',
    host: 'server.example.com',
    port: '143',
  });
});

test('OAUTHBEARER: no authzid, "y" flag, escaped saslname, unknown keys ignored', () => {
  assert.deepEqual(parseOauthbearer(b(`n,,\x01auth=Bearer ${JWT}\x01\x01`)), { authzid: null, token: JWT });
  assert.deepEqual(parseOauthbearer(b(`y,,\x01auth=Bearer ${JWT}\x01\x01`)), { authzid: null, token: JWT });
  assert.deepEqual(parseOauthbearer(b(`n,a=a=2Cb=3Dc,\x01auth=Bearer ${JWT}\x01\x01`)), { authzid: 'a,b=c', token: JWT });
  assert.deepEqual(parseOauthbearer(b(`n,a=sécrétariat@a.mssante.test,\x01mfa=otp code\x01auth=Bearer ${JWT}\x01\x01`)), {
    authzid: 'sécrétariat@a.mssante.test',
    token: JWT,
  });
});

test('OAUTHBEARER: malformed inputs', () => {
  const t = `auth=Bearer ${JWT}`;
  const bad = [
    '',
    '\x01', // the dummy response is not a credential
    `p=tls-unique,,\x01${t}\x01\x01`, // channel binding refused
    `x,,\x01${t}\x01\x01`, // unknown flag
    `n\x01${t}\x01\x01`, // no gs2 header
    `n,\x01${t}\x01\x01`, // gs2 header cut short
    `n,u=user,\x01${t}\x01\x01`, // not "a="
    `n,a=,\x01${t}\x01\x01`, // empty saslname
    `n,a=x=2,\x01${t}\x01\x01`, // truncated escape
    `n,a=x=41,\x01${t}\x01\x01`, // only =2C and =3D exist
    `n,a=u\x00v,\x01${t}\x01\x01`, // NUL is not UTF8-char-safe (RFC 5801 §4; found by test/fuzz/sasl.test.ts)
    `n,,${t}\x01\x01`, // kvsep missing after the header
    `n,,\x01${t}\x01`, // final kvsep missing
    `n,,\x01${t}`, // no kvsep at all
    `n,,\x01\x01`, // no auth
    `n,,\x01host=h\x01\x01`, // no auth
    `n,,\x01${t}\x01${t}\x01\x01`, // auth twice
    `n,,\x01=v\x01${t}\x01\x01`, // empty key
    `n,,\x01ho-st=h\x01${t}\x01\x01`, // key not ALPHA
    `n,,\x01host=h\u00e9\x01${t}\x01\x01`, // value not VCHAR
    `n,,\x01nokey\x01${t}\x01\x01`, // pair without "="
    `n,,\x01auth=Basic dTpw\x01\x01`,
    `n,,\x01auth=Bearer\x01\x01`,
    `n,,\x01auth=Bearer a b\x01\x01`,
    `n,,\x01port=imap\x01${t}\x01\x01`,
  ];
  for (const s of bad) assert.equal(parseOauthbearer(b(s)), null, JSON.stringify(s));
});

test('OAUTHBEARER: error challenge JSON (RFC 7628 §3.2.2)', () => {
  const j = JSON.parse(
    oauthbearerErrorChallenge({ status: 'invalid_token', scope: 'openid scope_all', openidConfiguration: 'https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet/.well-known/openid-configuration' }).toString('utf8'),
  );
  assert.deepEqual(j, {
    status: 'invalid_token',
    scope: 'openid scope_all',
    'openid-configuration': 'https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet/.well-known/openid-configuration',
  });
  assert.equal(oauthbearerErrorChallenge({ status: 'invalid_request' }).toString('utf8'), '{"status":"invalid_request"}');
});
