import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressKey, ConnectionLimiter } from './limits.js';

test('addresses are counted per IPv4 address and per IPv6 /64', () => {
  assert.equal(addressKey('192.0.2.7'), '192.0.2.7');
  assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:db8:1:2::9'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(addressKey('::1'), '0:0:0:0::/64');
  assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
});

test('per-address and total limits; release frees exactly once', () => {
  const l = new ConnectionLimiter({ perAddress: 2, total: 3 });
  const a1 = l.admit('192.0.2.1');
  const a2 = l.admit('192.0.2.1');
  assert.ok(a1.ok && a2.ok);
  const a3 = l.admit('192.0.2.1');
  assert.deepEqual(a3, { ok: false, reason: 'address', limit: 2 });
  const b1 = l.admit('2001:db8::1');
  assert.ok(b1.ok);
  assert.deepEqual(l.admit('198.51.100.1'), { ok: false, reason: 'total', limit: 3 });
  assert.ok(a1.ok);
  a1.release();
  a1.release();
  assert.equal(l.count(), 2);
  assert.equal(l.count('192.0.2.1'), 1);
  assert.ok(l.admit('192.0.2.1').ok);
  assert.deepEqual(l.admit('2001:db8::2'), { ok: false, reason: 'total', limit: 3 });
});

test('per-address connection rate: a token bucket of perAddressPerMinute, refilled continuously, per address', () => {
  let t = 1_000_000;
  const l = new ConnectionLimiter({ perAddress: 100, total: 1000, perAddressPerMinute: 3 }, () => t);
  for (let i = 0; i < 3; i++) {
    const a = l.admit('192.0.2.1');
    assert.ok(a.ok);
    a.release(); // closed at once: the open count stays low, the rate still counts
  }
  assert.deepEqual(l.admit('192.0.2.1'), { ok: false, reason: 'rate', limit: 3 });
  assert.ok(l.admit('192.0.2.2').ok, 'another address has its own bucket');
  t += 19_999;
  assert.equal(l.admit('192.0.2.1').ok, false, 'not yet a whole token (one every 20 s)');
  t += 1;
  assert.ok(l.admit('192.0.2.1').ok);
  assert.equal(l.admit('192.0.2.1').ok, false);
  t += 10 * 60_000;
  for (let i = 0; i < 3; i++) assert.ok(l.admit('192.0.2.1').ok, 'the bucket holds at most a minute of tokens');
  assert.equal(l.admit('192.0.2.1').ok, false);
  // Without the setting: no rate limit.
  const free = new ConnectionLimiter({ perAddress: 10_000, total: 10_000 });
  for (let i = 0; i < 5000; i++) {
    const a = free.admit('192.0.2.1');
    assert.ok(a.ok);
    a.release();
  }
});
