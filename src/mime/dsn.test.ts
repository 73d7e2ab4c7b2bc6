// The DSN builder (RFC 3464 fields in an RFC 6522 multipart/report), read back with mailsplit and
// mailparser — the structure a mail client or another MTA sees — and wantsDsn (RFC 3461 NOTIFY).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { Headers, Splitter } from '@zone-eu/mailsplit';
import { simpleParser } from 'mailparser';
import { buildDsn, wantsDsn, type DsnInput } from './dsn.js';

interface Part {
  contentType: string;
  headers: Headers;
  /** Raw (still transfer-encoded) body. */
  body: Buffer;
  parent: string | null;
}

/** The MIME parts of a message, in order, as mailsplit reads them. */
async function parts(raw: Buffer): Promise<Part[]> {
  const out: Part[] = [];
  const splitter = new Splitter();
  splitter.on('data', (d: any) => {
    if (d.type === 'node') out.push({ contentType: d.contentType, headers: d.headers, body: Buffer.alloc(0), parent: d.parentNode ? d.parentNode.contentType : null });
    else if (d.type === 'body') out[out.length - 1]!.body = Buffer.concat([out[out.length - 1]!.body, d.value]);
  });
  splitter.end(raw);
  await once(splitter, 'end');
  return out;
}

/** RFC 3464 §2.1: the delivery-status body is groups of header-formatted fields, separated by blank lines. */
function fieldGroups(body: Buffer): Headers[] {
  return body
    .toString('utf8')
    .split(/\r\n\r\n/)
    .filter((g) => g.trim())
    .map((g) => new Headers(Buffer.from(g + '\r\n\r\n')));
}

const ORIGINAL = Buffer.from(
  [
    'From: Dr Martin <claire.martin@a.mssante.test>',
    'To: <b@b.mssante.test>, <c@b.mssante.test>',
    // RFC 2047 encoded word, as clients send French subjects.
    'Subject: =?UTF-8?Q?R=C3=A9sultats_d=E2=80=99analyse?=',
    'Message-ID: <m1@a.mssante.test>',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Corps confidentiel : résultats du patient.',
    '',
  ].join('\r\n'),
);

function input(over: Partial<DsnInput> = {}): DsnInput {
  return {
    reportingMta: 'mx.a.mssante.test',
    postmaster: 'postmaster@a.mssante.test',
    to: 'claire.martin@a.mssante.test',
    envid: 'QQ-2026-42',
    arrivalDate: new Date(Date.UTC(2026, 10, 26, 9, 0, 0)),
    ret: 'HDRS',
    recipients: [
      {
        recipient: 'b@b.mssante.test',
        orcpt: 'rfc822;B@b.mssante.test',
        action: 'failed',
        status: '5.1.1',
        remoteMta: 'mx.b.mssante.test',
        diagnostic: '550 5.1.1 <b@b.mssante.test>: Recipient address rejected\r\n(second line)',
        lastAttempt: new Date(Date.UTC(2026, 10, 26, 9, 5, 0)),
      },
      { recipient: 'c@b.mssante.test', orcpt: 'c@b.mssante.test', action: 'delivered', status: '2.0.0', remoteMta: 'mx.b.mssante.test', lastAttempt: new Date(Date.UTC(2026, 10, 26, 9, 5, 0)) },
    ],
    original: ORIGINAL,
    ...over,
  };
}

test('RFC 6522 multipart/report; report-type=delivery-status: human part, then the status, then the returned headers (RET=HDRS)', async () => {
  const raw = await buildDsn(input());
  const p = await parts(raw);
  assert.deepEqual(
    p.map((x) => [x.contentType, x.parent]),
    [
      ['multipart/report', null],
      // RFC 6522 §3: the first part is human-readable, the second the machine-readable report.
      ['text/plain', 'multipart/report'],
      ['message/delivery-status', 'multipart/report'],
      // RFC 3461 §4.3 RET=HDRS, RFC 6522 §4: the original's header only.
      ['text/rfc822-headers', 'multipart/report'],
    ],
  );
  // RFC 6522 §3: report-type is required and names the second part's type.
  assert.equal(p[0]!.headers.getFirst('content-type').match(/report-type=([\w-]+)/i)?.[1], 'delivery-status');
  const parsed = await simpleParser(raw);
  const headers = parsed.attachments.find((a) => a.contentType === 'text/rfc822-headers');
  assert.ok(headers, 'the headers part is there');
  assert.match(headers.content.toString(), /^Message-ID: <m1@a\.mssante\.test>$/m);
  assert.ok(!raw.toString().includes('Corps confidentiel'), 'RET=HDRS: the body is not returned');
  assert.ok(!parsed.attachments.some((a) => a.contentType === 'message/rfc822'));
});

test('RFC 3464 §2.2 per-message and §2.3 per-recipient fields, ENVID and ORCPT echoed', async () => {
  const [, , status] = await parts(await buildDsn(input()));
  const [msg, failed, delivered, ...rest] = fieldGroups(status!.body);
  assert.equal(rest.length, 0, 'one group per message, then one per recipient');
  // §2.2.2 Reporting-MTA: mta-name-type ";" mta-name.
  assert.equal(msg!.getFirst('reporting-mta'), 'dns; mx.a.mssante.test');
  // §2.2.1 Original-Envelope-Id: the ENVID given in MAIL FROM (RFC 3461 §4.4).
  assert.equal(msg!.getFirst('original-envelope-id'), 'QQ-2026-42');
  // §2.2.5 Arrival-Date: an RFC 5322 date-time.
  assert.equal(msg!.getFirst('arrival-date'), 'Thu, 26 Nov 2026 09:00:00 +0000');

  // §2.3.1 Original-Recipient: the ORCPT parameter (RFC 3461 §4.2) as given, address-type first.
  assert.equal(failed!.getFirst('original-recipient'), 'rfc822;B@b.mssante.test');
  // §2.3.2 Final-Recipient: the address the MTA tried.
  assert.equal(failed!.getFirst('final-recipient'), 'rfc822; b@b.mssante.test');
  // §2.3.3 Action, §2.3.4 Status (RFC 3463 code).
  assert.equal(failed!.getFirst('action'), 'failed');
  assert.equal(failed!.getFirst('status'), '5.1.1');
  assert.match(failed!.getFirst('status'), /^[245]\.\d{1,3}\.\d{1,3}$/);
  // §2.3.5 Remote-MTA; §2.3.6 Diagnostic-Code: type "smtp", the reply on one line.
  assert.equal(failed!.getFirst('remote-mta'), 'dns; mx.b.mssante.test');
  assert.equal(failed!.getFirst('diagnostic-code'), 'smtp; 550 5.1.1 <b@b.mssante.test>: Recipient address rejected (second line)');
  assert.equal(failed!.get('diagnostic-code').length, 1);
  // §2.3.7 Last-Attempt-Date.
  assert.equal(failed!.getFirst('last-attempt-date'), 'Thu, 26 Nov 2026 09:05:00 +0000');

  // An ORCPT given without its type is reported as rfc822 (§2.3.1 requires the address-type).
  assert.equal(delivered!.getFirst('original-recipient'), 'rfc822;c@b.mssante.test');
  assert.equal(delivered!.getFirst('action'), 'delivered');
  assert.equal(delivered!.getFirst('status'), '2.0.0');
  assert.equal(delivered!.get('diagnostic-code').length, 0, 'no diagnostic given, none invented');
});

test('without ENVID or ORCPT, the optional fields are left out (RFC 3464 §2.2.1, §2.3.1)', async () => {
  const d = input({ envid: null });
  d.recipients = d.recipients.map((r) => ({ ...r, orcpt: null }));
  const [, , status] = await parts(await buildDsn(d));
  const groups = fieldGroups(status!.body);
  assert.equal(groups[0]!.get('original-envelope-id').length, 0);
  for (const g of groups.slice(1)) assert.equal(g.get('original-recipient').length, 0);
});

test('RET=FULL returns the whole original as message/rfc822 (RFC 3461 §4.3), 8-bit content declared as such', async () => {
  const raw = await buildDsn(input({ ret: 'FULL' }));
  const p = await parts(raw);
  assert.equal(p[3]!.contentType, 'message/rfc822');
  assert.equal(p[3]!.parent, 'multipart/report');
  // RFC 2046 §5.2.1: message/rfc822 is never base64/QP; 8-bit octets mean 8bit (RFC 2045 §6.2).
  assert.equal(p[3]!.headers.getFirst('content-transfer-encoding'), '8bit');
  const parsed = await simpleParser(raw);
  const returned = parsed.attachments.find((a) => a.contentType === 'message/rfc822');
  assert.ok(returned);
  assert.ok(returned.content.equals(ORIGINAL), 'the original, byte for byte');
});

test('a non-ASCII diagnostic makes the delivery-status part declare 8bit (RFC 2045 §6.2)', async () => {
  const d = input();
  d.recipients = [{ ...d.recipients[0]!, diagnostic: 'délai dépassé' }];
  const [, , status] = await parts(await buildDsn(d));
  assert.equal(status!.headers.getFirst('content-transfer-encoding'), '8bit');
  assert.equal(fieldGroups(status!.body)[1]!.getFirst('diagnostic-code'), 'smtp; délai dépassé');
  const ascii = (await parts(await buildDsn(input())))[2]!;
  assert.equal(ascii.headers.get('content-transfer-encoding').length, 0, 'plain ASCII stays implicit 7bit');
});

test('headers: French subject (encoded words decoded), auto-replied (RFC 3834 §5), threaded to the original', async () => {
  const parsed = await simpleParser(await buildDsn(input()));
  assert.equal(parsed.subject, 'Échec de distribution : Résultats d’analyse');
  assert.equal(parsed.headers.get('auto-submitted'), 'auto-replied');
  assert.equal(parsed.inReplyTo, '<m1@a.mssante.test>');
  assert.equal(parsed.from?.value[0]?.address, 'postmaster@a.mssante.test');
  assert.equal(parsed.to && !Array.isArray(parsed.to) ? parsed.to.value[0]?.address : undefined, 'claire.martin@a.mssante.test');
  const delayed = input();
  delayed.recipients = [{ ...delayed.recipients[0]!, action: 'delayed', status: '4.4.1' }];
  assert.equal((await simpleParser(await buildDsn(delayed))).subject, 'Distribution retardée : Résultats d’analyse');
  const ok = input();
  ok.recipients = [ok.recipients[1]!];
  assert.equal((await simpleParser(await buildDsn(ok))).subject, 'Distribution réussie : Résultats d’analyse');
  const noSubject = input({ original: Buffer.from('From: a@a.mssante.test\r\n\r\nx\r\n') });
  assert.equal((await simpleParser(await buildDsn(noSubject))).subject, 'Échec de distribution : (sans objet)');
});

test('the human part is French: failed and delivered recipients, the reason on one line, the golden-rule reminder', async () => {
  const text = (await simpleParser(await buildDsn(input()))).text!;
  assert.match(text, /^Bonjour,/);
  assert.match(text, /Votre message « Résultats d’analyse » déposé le 26\/11\/2026 10:00:00 n'a pas pu être remis aux destinataires suivants :/, 'arrival in Paris time');
  assert.match(text, /- b@b\.mssante\.test\n\s+Raison : 550 5\.1\.1 <b@b\.mssante\.test>: Recipient address rejected \(second line\)\n/);
  assert.match(text, /a bien été remis au serveur de messagerie des destinataires suivants :\n\n\s+- c@b\.mssante\.test/);
  assert.match(text, /ne doit pas être utilisée pour des informations urgentes/);
  assert.ok(!text.includes('Corps confidentiel'), 'the content is not quoted in the notice');
  const d = input();
  d.recipients = [{ ...d.recipients[0]!, action: 'delayed', status: '4.4.1', diagnostic: undefined }];
  const delayed = (await simpleParser(await buildDsn(d))).text!;
  assert.match(delayed, /La remise de votre message « Résultats d’analyse » est retardée pour :/);
  assert.match(delayed, /Raison : 4\.4\.1/, 'the status stands in for a missing diagnostic');
  assert.match(delayed, /De nouvelles tentatives seront faites automatiquement/);
});

test('wantsDsn: RFC 3461 §4.1 NOTIFY — absent means failures (and delays), NEVER means none', () => {
  assert.equal(wantsDsn(null, 'FAILURE'), true);
  assert.equal(wantsDsn(undefined, 'DELAY'), true);
  assert.equal(wantsDsn([], 'SUCCESS'), false);
  assert.equal(wantsDsn(['NEVER'], 'FAILURE'), false);
  assert.equal(wantsDsn(['SUCCESS'], 'SUCCESS'), true);
  assert.equal(wantsDsn(['SUCCESS'], 'FAILURE'), false);
  assert.equal(wantsDsn(['FAILURE', 'DELAY'], 'DELAY'), true);
  assert.equal(wantsDsn(['FAILURE', 'DELAY'], 'SUCCESS'), false);
});
