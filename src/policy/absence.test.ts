// The absence decision and reply, table-driven: each row cites the rule it checks.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { simpleParser } from 'mailparser';
import { buildAbsenceReply, DAY_MS, decideAbsenceReply, type NoReplyReason } from './absence.js';

const ME = 'dr.absent@hopital-b.mssante.fr';
const SENDER = 'claire.martin@hopital-a.mssante.fr';
const NOW = new Date('2026-12-10T10:00:00Z');

function header(extra: string[] = [], to = `Dr Absent <${ME}>`): string {
  return [`From: Claire <${SENDER}>`, `To: ${to}`, 'Subject: Compte rendu', 'Message-ID: <m1@hopital-a>', ...extra, '', ''].join('\r\n');
}

const base = { window: { startsAt: null as string | null, endsAt: null as string | null }, mailbox: ME, envelopeFrom: SENDER, header: header(), now: NOW, periodMs: 7 * DAY_MS };

const cases: { name: string; over: Partial<typeof base> & { lastReplyAt?: number }; expect: true | NoReplyReason }[] = [
  { name: 'a personal message in the period is answered', over: {}, expect: true },
  { name: 'Cc counts as addressed (RFC 5230 §4.5)', over: { header: header([`Cc: ${ME}`], 'someone@else.fr') }, expect: true },
  { name: 'the address is matched without case (RFC 5321 §2.4 domains; local parts here are lower-case)', over: { header: header([], ME.toUpperCase()) }, expect: true },
  { name: 'Auto-Submitted: no is a human message (RFC 3834 §5)', over: { header: header(['Auto-Submitted: no']) }, expect: true },
  { name: 'before the start: no reply', over: { window: { startsAt: '2026-12-11T00:00:00Z', endsAt: null } }, expect: 'not-in-period' },
  { name: 'after the end: no reply', over: { window: { startsAt: null, endsAt: '2026-12-10T09:00:00Z' } }, expect: 'not-in-period' },
  { name: 'null return path (RFC 3834 §2, a DSN or another responder)', over: { envelopeFrom: '' }, expect: 'null-sender' },
  { name: 'MAILER-DAEMON (RFC 5230 §4.6)', over: { envelopeFrom: 'MAILER-DAEMON@hopital-a.mssante.fr' }, expect: 'automatic-sender' },
  { name: 'owner-* list address (RFC 5230 §4.6)', over: { envelopeFrom: 'owner-cardio@hopital-a.mssante.fr' }, expect: 'automatic-sender' },
  { name: '*-request list address (RFC 5230 §4.6)', over: { envelopeFrom: 'cardio-request@hopital-a.mssante.fr' }, expect: 'automatic-sender' },
  { name: 'noreply sender', over: { envelopeFrom: 'no-reply@hopital-a.mssante.fr' }, expect: 'automatic-sender' },
  { name: 'its own address (RFC 3834 §2, loops)', over: { envelopeFrom: ME }, expect: 'own-address' },
  { name: 'Auto-Submitted: auto-generated (RFC 3834 §2, RFC 5230 §4.6)', over: { header: header(['Auto-Submitted: auto-generated']) }, expect: 'auto-submitted' },
  { name: 'Auto-Submitted: auto-replied (another absence)', over: { header: header(['Auto-Submitted: auto-replied; owner-email="x@y.fr"']) }, expect: 'auto-submitted' },
  { name: 'Precedence: bulk (RFC 3834 §2)', over: { header: header(['Precedence: bulk']) }, expect: 'precedence' },
  { name: 'Precedence: list', over: { header: header(['Precedence: list']) }, expect: 'precedence' },
  { name: 'Precedence: junk (RFC 5230 §4.6)', over: { header: header(['Precedence: junk']) }, expect: 'precedence' },
  { name: 'List-Id (RFC 2919; RFC 5230 §4.6)', over: { header: header(['List-Id: <cardio.hopital-a>']) }, expect: 'list' },
  { name: 'List-Unsubscribe (RFC 2369)', over: { header: header(['List-Unsubscribe: <mailto:x@y.fr>']) }, expect: 'list' },
  {
    name: 'a DSN (RFC 3464) with a sender (RFC 3834 §2)',
    over: { header: header(['Content-Type: multipart/report; report-type=delivery-status; boundary="b"']) },
    expect: 'report',
  },
  {
    name: 'an MDN (RFC 8098)',
    over: { header: header(['Content-Type: multipart/report; report-type=disposition-notification; boundary="b"']) },
    expect: 'report',
  },
  { name: 'Bcc only: not addressed by name (RFC 5230 §4.5)', over: { header: header([], 'undisclosed-recipients:;') }, expect: 'not-addressed' },
  { name: 'answered 2 days ago: not again in a 7-day period (RFC 5230 §4.2)', over: { lastReplyAt: NOW.getTime() - 2 * DAY_MS }, expect: 'already-replied' },
  { name: 'answered 8 days ago: answered again', over: { lastReplyAt: NOW.getTime() - 8 * DAY_MS }, expect: true },
];

describe('absence: when to reply (RFC 3834 §2, RFC 5230 §4)', () => {
  for (const c of cases) {
    test(c.name, () => {
      const d = decideAbsenceReply({ ...base, ...c.over });
      if (c.expect === true) assert.deepEqual(d, { reply: true, sender: (c.over.envelopeFrom ?? SENDER).toLowerCase() });
      else {
        assert.equal(d.reply, false);
        assert.equal(!d.reply && d.reason, c.expect);
      }
    });
  }
});

describe('absence: the reply (RFC 3834 §3, §5; RFC 5322 §3.6.4)', () => {
  test('French subject, threading, Auto-Submitted, substitute and reminder', async () => {
    const original = Buffer.from(header(['References: <m0@hopital-a>', 'Subject: =?UTF-8?Q?R=C3=A9sultats?=']).replace('Subject: Compte rendu\r\n', ''));
    const raw = await buildAbsenceReply({
      mailbox: { address: ME, displayName: 'Dr Absent' },
      to: SENDER,
      originalHeader: original,
      settings: { subject: null, text: null, endsAt: '2026-12-24T17:00:00Z', substitute: 'dr.remplacant@hopital-b.mssante.fr' },
      hostname: 'mx.hopital-b.test',
      date: NOW,
    });
    const m = await simpleParser(raw);
    assert.equal(m.subject, 'Absence : Résultats');
    assert.equal(m.headers.get('auto-submitted'), 'auto-replied');
    assert.equal(m.inReplyTo, '<m1@hopital-a>');
    assert.deepEqual(m.references, ['<m0@hopital-a>', '<m1@hopital-a>']);
    assert.equal(m.from?.value[0].address, ME);
    assert.equal((m.to as any).value[0].address, SENDER);
    assert.match(m.messageId ?? '', /@mx\.hopital-b\.test>$/);
    assert.match(m.text ?? '', /jusqu'au 24 décembre 2026/);
    assert.match(m.text ?? '', /Pendant mon absence, écrivez à dr\.remplacant@hopital-b\.mssante\.fr\./);
    assert.match(m.text ?? '', /pas être utilisée pour des informations urgentes/);
  });

  test("the user's subject prefix and text replace the defaults", async () => {
    const raw = await buildAbsenceReply({
      mailbox: { address: ME, displayName: 'Dr Absent' },
      to: SENDER,
      originalHeader: Buffer.from(header()),
      settings: { subject: 'Congés', text: 'Je reviens lundi.\nBien à vous.', endsAt: null, substitute: null },
      hostname: 'mx.hopital-b.test',
    });
    const m = await simpleParser(raw);
    assert.equal(m.subject, 'Congés : Compte rendu');
    assert.match(m.text ?? '', /^Je reviens lundi\.\nBien à vous\./);
    assert.doesNotMatch(m.text ?? '', /Pendant mon absence/);
  });
});

describe('absence: the period setting (RFC 5230 §4.1)', () => {
  test('7 days by default; less than 1 day is refused with the setting named', async () => {
    const { parseConfig, ConfigError } = await import('../config/index.js');
    assert.equal(parseConfig({}).policy.absence.periodDays, 7);
    assert.equal(parseConfig({ policy: { absence: { periodDays: 1 } } }).policy.absence.periodDays, 1);
    assert.throws(() => parseConfig({ policy: { absence: { periodDays: 0.5 } } }), (e: any) => e instanceof ConfigError && /policy\.absence\.periodDays: .*at least 1 day/.test(e.message));
  });
});
