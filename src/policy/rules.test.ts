import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { readingAudiences, readingLevel, unusedStep, urgencyMarkers } from './rules.js';

const DAY = 86_400_000;

describe('rule 4: urgency markers (accents and case ignored)', () => {
  const cases: [string, Parameters<typeof urgencyMarkers>[0], string[]][] = [
    ['URGENT in the subject', { subject: 'URGENT : résultats' }, ['urgent (objet)']],
    ['« Urgence » with an accent', { subject: 'Ürgence' }, ['urgence (objet)']],
    ['urgente in the first lines', { text: 'Bonjour,\nDemande urgente de rappel.' }, ['urgente (début du texte)']],
    ['English: urgently', { text: 'Please call urgently' }, ['urgently (début du texte)']],
    ['not in the sixth line', { text: 'a\nb\nc\nd\ne\nurgent' }, []],
    ['quoted lines do not count', { text: '> urgent\nMerci' }, []],
    ['a word containing it does not count', { subject: 'insurgent nonurgent' }, []],
    ['Importance: high', { header: 'Importance: High\r\n\r\n' }, ['Importance: high']],
    ['Priority: urgent', { header: 'Priority: urgent\r\n\r\n' }, ['Priority: urgent']],
    ['X-Priority: 1 (Highest)', { header: 'X-Priority: 1 (Highest)\r\n\r\n' }, ['X-Priority: 1']],
    ['X-Priority: 3 is normal', { header: 'X-Priority: 3\r\n\r\n' }, []],
    ['nothing', { subject: 'Compte rendu', text: 'Bonjour' }, []],
  ];
  for (const [name, input, want] of cases) test(name, () => assert.deepEqual(urgencyMarkers(input), want));
});

describe('rule 1: escalation', () => {
  test('levels by thresholds elapsed, at most 3', () => {
    assert.deepEqual([0, 23.9, 24, 47, 48, 72, 500].map((h) => readingLevel(h, 24)), [0, 0, 1, 1, 2, 3, 3]);
  });
  test('audiences', () => {
    assert.deepEqual(readingAudiences(1, { type: 'PER', hasReaders: true }), ['owner']);
    assert.deepEqual(readingAudiences(2, { type: 'PER', hasReaders: true }), ['owner', 'delegates']);
    assert.deepEqual(readingAudiences(3, { type: 'PER', hasReaders: true }), ['owner', 'delegates']);
    assert.deepEqual(readingAudiences(3, { type: 'ORG', hasReaders: true }), ['owner', 'delegates', 'administrators']);
    assert.deepEqual(readingAudiences(1, { type: 'ORG', hasReaders: false }), ['administrators']);
  });
});

describe('rule 2: unused addresses', () => {
  const now = Date.parse('2026-06-01T10:00:00Z');
  const base = { state: 'active' as const, lastUse: now - 10 * DAY, warnedAt: null, suspendedAt: null, now, days: 90, graceDays: 30 };
  const cases: [string, Partial<Parameters<typeof unusedStep>[0]>, string][] = [
    ['used recently', {}, 'none'],
    ['unused 90 days: warn', { lastUse: now - 90 * DAY }, 'warn'],
    ['warned 10 days ago: wait', { lastUse: now - 100 * DAY, warnedAt: now - 10 * DAY }, 'none'],
    ['warned 30 days ago: suspend', { lastUse: now - 120 * DAY, warnedAt: now - 30 * DAY }, 'suspend'],
    ['used after the warning: reset', { lastUse: now - DAY, warnedAt: now - 2 * DAY }, 'reset'],
    ['suspended by the rule, then used: reactivate', { state: 'suspended', lastUse: now - DAY, suspendedAt: now - 2 * DAY }, 'reactivate'],
    ['suspended by an administrator: left alone', { state: 'suspended', lastUse: now - 200 * DAY }, 'none'],
    ['deleted: nothing', { state: 'deleted' }, 'none'],
  ];
  for (const [name, over, want] of cases) test(name, () => assert.equal(unusedStep({ ...base, ...over }).step, want));
});
