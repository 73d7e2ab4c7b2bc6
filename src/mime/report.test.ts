// Reading DSNs (RFC 3464) and MDNs (RFC 8098): what they say of which recipients of which message.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { buildDsn } from './dsn.js';
import { parseDisposition, parseReport, REPORT_READ_LIMIT, reportType, trackingFields } from './report.js';

const original = (body = 'corps\r\n') => Buffer.from(`From: a@a.test\r\nTo: b@b.test\r\nSubject: =?UTF-8?Q?R=C3=A9sultat?=\r\nMessage-ID:\r\n <m1@a.test>\r\n\r\n${body}`);
const dsn = (o: Partial<Parameters<typeof buildDsn>[0]> = {}) =>
  buildDsn({
    reportingMta: 'mx.b.test',
    postmaster: 'postmaster@b.test',
    to: 'a@a.test',
    envid: 'env-1',
    arrivalDate: new Date(),
    ret: 'HDRS',
    recipients: [
      { recipient: 'b@b.test', orcpt: 'rfc822;B@b.test', action: 'failed', status: '5.1.1', diagnostic: '550 5.1.1 unknown', lastAttempt: new Date() },
      { recipient: 'c@b.test', orcpt: null, action: 'delivered', status: '2.0.0', lastAttempt: new Date() },
      { recipient: 'd@b.test', orcpt: null, action: 'delayed', status: '4.4.1', lastAttempt: new Date() },
    ],
    original: original(),
    ...o,
  });

test('a DSN: envelope id, returned Message-ID, final status per recipient (delayed says nothing final)', async () => {
  assert.deepEqual(parseReport(await dsn()), {
    kind: 'dsn',
    envid: 'env-1',
    originalMessageId: '<m1@a.test>',
    recipients: [
      { final: 'b@b.test', original: 'B@b.test', status: 'failed', detail: '550 5.1.1 unknown' },
      { final: 'c@b.test', original: null, status: 'delivered', detail: null },
    ],
  });
});

test('RET=FULL with a large original: only the first octets are read, the match still works', async () => {
  const big = original(randomBytes(3 * REPORT_READ_LIMIT).toString('base64').replace(/.{76}/g, '$&\r\n'));
  const r = parseReport(await dsn({ ret: 'FULL', envid: null, original: big }));
  assert.equal(r?.originalMessageId, '<m1@a.test>');
  assert.equal(r?.recipients.length, 2);
});

test('not a report, or a report saying nothing usable: null', async () => {
  assert.equal(parseReport(original()), null);
  assert.equal(reportType(original()), null);
  assert.equal(reportType('Content-Type: multipart/report; report-type="delivery-status"; boundary=x\r\n\r\n'), 'delivery-status');
  assert.equal(reportType('Content-Type: multipart/report; report-type=other; boundary=x\r\n\r\n'), null);
  // Neither an envelope id nor a returned header: nothing to match on.
  const raw = (await dsn({ envid: null })).toString().replace(/Message-ID:\r\n <m1@a.test>\r\n/, '');
  assert.equal(parseReport(Buffer.from(raw)), null);
  assert.equal(parseReport(Buffer.from('Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x\r\n\r\n\r\n--x--\r\n')), null);
});

test('Disposition (RFC 8098 §3.2.6) and the tracking fields of a submission', () => {
  assert.deepEqual(parseDisposition('automatic-action/MDN-sent-automatically; processed/Error: 902^Identifiant patient inconnu'), { type: 'processed', error: '902^Identifiant patient inconnu', automatic: true });
  assert.deepEqual(parseDisposition('manual-action/MDN-sent-manually;displayed'), { type: 'displayed', error: null, automatic: false });
  assert.equal(parseDisposition('displayed'), null);
  assert.deepEqual(trackingFields(original()), { messageId: '<m1@a.test>', subject: 'Résultat' });
});
