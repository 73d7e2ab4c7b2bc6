// MDN rules and format (RFC 8098, ANS guide): when one may be sent, what it says, and that our
// own report reader (mime/report.ts) reads back what the builder wrote.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { simpleParser } from 'mailparser';
import { parseReport } from '../mime/report.js';
import { buildMdn, decideMdn, dispositionField, INTEGRATION_ERRORS } from './mdn.js';

const header = (extra: string) => Buffer.from(`From: Dr A <a@a.test>\r\nTo: b@b.test\r\nSubject: Compte rendu\r\nMessage-ID: <m1@a.test>\r\n${extra}\r\n`);
const dnt = 'Disposition-Notification-To: <a@a.test>\r\n';

test('decideMdn: asked for, not a report, not automatic, to the return path, once', () => {
  const base = { returnPath: 'a@a.test', flags: [] as string[], automatic: true };
  assert.deepEqual(decideMdn({ ...base, header: header(dnt) }), { send: true, to: ['a@a.test'] });
  const reason = (o: Parameters<typeof decideMdn>[0]) => {
    const d = decideMdn(o);
    return d.send ? 'send' : d.reason;
  };
  assert.equal(reason({ ...base, header: header('') }), 'not-requested');
  assert.equal(reason({ ...base, header: header(dnt), flags: ['\\Seen', '$mdnsent'] }), 'already-sent');
  assert.equal(reason({ ...base, header: header(dnt + 'Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n') }), 'is-report');
  assert.equal(reason({ ...base, header: header(dnt + 'Content-Type: multipart/report; report-type="disposition-notification"; boundary=x\r\n') }), 'is-report');
  assert.equal(reason({ ...base, header: header(dnt + 'Auto-Submitted: auto-replied\r\n') }), 'auto-submitted');
  assert.equal(reason({ ...base, header: header(dnt + 'Auto-Submitted: no\r\n') }), 'send');
  assert.equal(reason({ ...base, header: header(dnt), returnPath: '' }), 'null-return-path');
  assert.equal(reason({ ...base, header: header(dnt), returnPath: 'bounces@a.test' }), 'different-address');
  assert.equal(reason({ ...base, header: header(dnt), returnPath: null }), 'different-address', 'an unknown return path is not the same');
  // RFC 8098 §2.1: manually, once the user confirmed the address.
  assert.equal(reason({ ...base, automatic: false, header: header(dnt), returnPath: 'bounces@a.test' }), 'different-address');
  assert.equal(reason({ ...base, automatic: false, confirmed: true, header: header(dnt), returnPath: 'bounces@a.test' }), 'send');
  assert.equal(reason({ ...base, header: header(dnt), returnPath: 'A@A.TEST' }), 'send', 'addresses compare without case');
});

test('dispositionField: RFC 8098 §3.2.6 and the ANS error form', () => {
  assert.equal(dispositionField({ mode: 'manual', type: 'displayed' }), 'manual-action/MDN-sent-manually; displayed');
  assert.equal(dispositionField({ mode: 'automatic', type: 'processed' }), 'automatic-action/MDN-sent-automatically; processed');
  assert.equal(dispositionField({ mode: 'automatic', type: 'processed', error: { code: 904, label: INTEGRATION_ERRORS[904] } }), `automatic-action/MDN-sent-automatically; processed/Error: 904^${INTEGRATION_ERRORS[904]}`);
  assert.deepEqual(Object.keys(INTEGRATION_ERRORS).map(Number), [900, 901, 902, 903, 904, 905, 906]);
});

test('buildMdn: multipart/report read back by the report reader; French human part; error subject and attachments', async () => {
  const pdf = Buffer.from('%PDF-1.4 …');
  const raw = await buildMdn({
    mailbox: { address: 'lps@b.test', displayName: 'Logiciel' },
    to: ['a@a.test'],
    originalHeader: header(dnt),
    disposition: { mode: 'automatic', type: 'processed', error: { code: 905, label: INTEGRATION_ERRORS[905] } },
    hostname: 'mx.b.test',
    attachments: [{ filename: 'cr.pdf', contentType: 'application/pdf', content: pdf }],
  });
  assert.deepEqual(parseReport(raw), {
    kind: 'mdn',
    envid: null,
    originalMessageId: '<m1@a.test>',
    recipients: [{ final: 'lps@b.test', original: 'lps@b.test', status: 'error', detail: `905^${INTEGRATION_ERRORS[905]}` }],
  });
  const p = await simpleParser(raw);
  assert.equal(p.subject, '[KO Intégration système !][905] Compte rendu');
  assert.equal(p.inReplyTo, '<m1@a.test>');
  assert.equal(p.headers.get('auto-submitted'), 'auto-replied');
  assert.match(p.text!, /n'a pas pu être intégré automatiquement/);
  assert.ok(p.attachments.find((a) => a.filename === 'cr.pdf')?.content.equals(pdf));
  const shown = await buildMdn({ mailbox: { address: 'b@b.test', displayName: 'Dr B' }, to: ['a@a.test'], originalHeader: header(dnt), disposition: { mode: 'manual', type: 'displayed' }, hostname: 'mx.b.test' });
  assert.equal(parseReport(shown)?.recipients[0].status, 'displayed');
  assert.equal((await simpleParser(shown)).headers.get('auto-submitted'), undefined, 'a manual MDN is not an automatic answer');
});
