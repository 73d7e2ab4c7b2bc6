// The content policy's decisions, table-driven: each row says which rule it checks.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig } from '../config/index.js';
import {
  bulkMarkers,
  CONTENT_DEFAULTS,
  decideRecipient,
  decideSubmittedContent,
  inboundFiling,
  NON_MEDICAL_KEYWORD,
  parisDay,
  replyText,
  sendingLimits,
  type ContentSettings,
} from './content.js';

const settings: ContentSettings = { ...CONTENT_DEFAULTS, appDailyVolume: { 'labo@hopital.mssante.fr': 2000 } };
const person = { address: 'claire@hopital.mssante.fr', type: 'PER' as const };
const app = { address: 'labo@hopital.mssante.fr', type: 'APP' as const };

function header(extra: string[] = []): string {
  return ['From: Claire <claire@hopital.mssante.fr>', 'To: paul@clinique.mssante.fr', 'Subject: Compte rendu', ...extra, '', ''].join('\r\n');
}

describe('sending limits', () => {
  test('the defaults are 50 per message and 500 per day, in code and in the configuration', () => {
    assert.equal(CONTENT_DEFAULTS.maxRecipientsPerMessage, 50);
    assert.equal(CONTENT_DEFAULTS.maxRecipientsPerDay, 500);
    assert.deepEqual(parseConfig({}).policy.content, CONTENT_DEFAULTS);
    assert.deepEqual(parseConfig({ policy: { content: { appDailyVolume: { 'Labo@X.mssante.fr': 9 } } } }).policy.content.appDailyVolume, { 'labo@x.mssante.fr': 9 });
    assert.throws(() => parseConfig({ policy: { content: { maxRecipientsPerDay: 0 } } }), /policy\.content\.maxRecipientsPerDay/);
  });

  test('an APP mailbox with a declared volume: that volume a day, no per-message limit; otherwise the defaults', () => {
    assert.deepEqual(sendingLimits(app, settings), { perMessage: null, perDay: 2000, source: 'declared-volume' });
    assert.deepEqual(sendingLimits({ ...app, address: 'LABO@hopital.mssante.fr' }, settings).perDay, 2000);
    assert.deepEqual(sendingLimits({ ...app, address: 'autre@hopital.mssante.fr' }, settings), { perMessage: 50, perDay: 500, source: 'default' });
    // A declared volume counts only for an APP mailbox.
    assert.deepEqual(sendingLimits({ ...person, address: app.address }, settings).perDay, 500);
  });

  const rows: { name: string; inMessage: number; sentToday: number; sender: typeof person | typeof app; expect: null | [number, string, string] }[] = [
    { name: 'the first recipient', inMessage: 0, sentToday: 0, sender: person, expect: null },
    { name: 'the 50th recipient of a message', inMessage: 49, sentToday: 0, sender: person, expect: null },
    { name: 'the 51st: 452 4.5.3 (RFC 5321 §4.5.3.1.10)', inMessage: 50, sentToday: 0, sender: person, expect: [452, '4.5.3', 'recipients-per-message'] },
    { name: 'the 500th of the day', inMessage: 9, sentToday: 490, sender: person, expect: null },
    { name: 'the 501st of the day: 450 4.7.1', inMessage: 10, sentToday: 490, sender: person, expect: [450, '4.7.1', 'recipients-per-day'] },
    { name: 'the daily limit counts earlier messages only', inMessage: 0, sentToday: 500, sender: person, expect: [450, '4.7.1', 'recipients-per-day'] },
    { name: 'APP with a declared volume: the 51st of a message is fine', inMessage: 50, sentToday: 0, sender: app, expect: null },
    { name: 'APP with a declared volume: its own daily volume', inMessage: 1, sentToday: 1999, sender: app, expect: [450, '4.7.1', 'recipients-per-day'] },
  ];
  for (const r of rows)
    test(r.name, () => {
      const d = decideRecipient({ inMessage: r.inMessage, sentToday: r.sentToday, limits: sendingLimits(r.sender, settings) });
      assert.deepEqual(d && [d.code, d.enhanced, d.rule], r.expect);
    });

  test('the day is the calendar day in Paris (UTC+1 in winter, UTC+2 in summer)', () => {
    assert.equal(parisDay(new Date('2026-12-10T22:59:59Z')), '2026-12-10');
    assert.equal(parisDay(new Date('2026-12-10T23:00:00Z')), '2026-12-11');
    assert.equal(parisDay(new Date('2026-07-14T21:59:59Z')), '2026-07-14');
    assert.equal(parisDay(new Date('2026-07-14T22:00:00Z')), '2026-07-15');
  });
});

describe('bulk mail', () => {
  const rows: { name: string; extra: string[]; submission: string[]; inbound: string[] }[] = [
    { name: 'a personal message', extra: [], submission: [], inbound: [] },
    { name: 'List-Unsubscribe (RFC 2369 §3.2)', extra: ['List-Unsubscribe: <mailto:unsub@pub.example>'], submission: ['List-Unsubscribe'], inbound: ['List-Unsubscribe'] },
    { name: 'one-click unsubscribe (RFC 8058)', extra: ['List-Unsubscribe: <https://pub.example/u>', 'List-Unsubscribe-Post: List-Unsubscribe=One-Click'], submission: ['List-Unsubscribe', 'List-Unsubscribe-Post'], inbound: ['List-Unsubscribe', 'List-Unsubscribe-Post'] },
    { name: 'Precedence: bulk', extra: ['Precedence: Bulk'], submission: ['Precedence: bulk'], inbound: ['Precedence: bulk'] },
    { name: 'Precedence: list', extra: ['Precedence: list'], submission: ['Precedence: list'], inbound: ['Precedence: list'] },
    { name: 'Precedence: junk', extra: ['Precedence: junk'], submission: ['Precedence: junk'], inbound: ['Precedence: junk'] },
    { name: 'Precedence: urgent is not a bulk marker', extra: ['Precedence: urgent'], submission: [], inbound: [] },
    { name: 'List-Id (RFC 2919) counts inbound only', extra: ['List-Id: <cardio.hopital.mssante.fr>'], submission: [], inbound: ['List-Id'] },
    {
      name: 'a DSN is never bulk (RFC 3464, RFC 6522)',
      extra: ['Precedence: bulk', 'Content-Type: multipart/report; report-type=delivery-status; boundary="b"'],
      submission: [],
      inbound: [],
    },
    { name: 'an MDN is never bulk (RFC 8098)', extra: ['List-Id: <x.example>', 'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"'], submission: [], inbound: [] },
  ];
  for (const r of rows)
    test(r.name, () => {
      assert.deepEqual(bulkMarkers(header(r.extra), { inbound: false }), r.submission);
      assert.deepEqual(bulkMarkers(header(r.extra), { inbound: true }), r.inbound);
    });

  test('from a person: 550 5.7.1 naming the rule, in ASCII (RFC 5321 §4.2); from an APP mailbox: accepted', () => {
    const bulk = header(['List-Unsubscribe: <mailto:unsub@pub.example>']);
    for (const type of ['PER', 'ORG', 'CAB'] as const) {
      const r = decideSubmittedContent({ header: bulk, senderType: type });
      assert.ok(r, type);
      assert.deepEqual([r.code, r.enhanced, r.rule], [550, '5.7.1', 'no-bulk-mail']);
      assert.match(r.text, /règle : pas de diffusion de masse ni de publicité sur MSSanté/);
      const wire = replyText(r);
      assert.match(wire, /^message refuse \(List-Unsubscribe\) : regle : pas de diffusion de masse ni de publicite sur MSSante/);
      assert.match(wire, /\[rule no-bulk-mail\]$/);
      assert.match(wire, /^[\x20-\x7e]+$/);
    }
    assert.equal(decideSubmittedContent({ header: bulk, senderType: 'APP' }), null);
    assert.equal(decideSubmittedContent({ header: header(), senderType: 'PER' }), null);
  });

  test('inbound: bulk-looking mail is filed in the configured folder with $NonMedical; other mail in INBOX', () => {
    assert.deepEqual(inboundFiling(header(['Precedence: bulk']), settings), { folder: 'Non médical', flags: [NON_MEDICAL_KEYWORD], markers: ['Precedence: bulk'] });
    assert.equal(inboundFiling(header(), settings), null);
    assert.equal(NON_MEDICAL_KEYWORD, '$NonMedical');
  });
});
