import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import { formatLogLine, prettyDestination } from './pretty-log.js';

test('a pino record becomes one readable line; non-JSON passes through', () => {
  const line = JSON.stringify({ level: 30, time: Date.UTC(2026, 0, 1, 9, 5, 7), pid: 1, hostname: 'h', operator: 'a.mssante.test', component: 'smtp', msg: 'message delivered', recipients: 2, from: 'a b' });
  assert.match(formatLogLine(line), /^\d\d:\d\d:\d\d INFO  \[a\.mssante\.test smtp\] message delivered {2}recipients=2 from="a b"$/);
  assert.equal(formatLogLine('plain text'), 'plain text');
});

test('held lines wait for release(); warnings do not', async () => {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d) => (text += d));
  const dest = prettyDestination(out, { hold: true });
  const log = pino({ level: 'info' }, dest);
  log.info('starting');
  log.warn('careful');
  await new Promise((r) => setImmediate(r));
  assert.match(text, /WARN {2}careful/);
  assert.doesNotMatch(text, /starting/);
  dest.release();
  log.info('after');
  await new Promise((r) => setImmediate(r));
  assert.match(text, /careful\n.*starting\n.*after\n$/);
});
