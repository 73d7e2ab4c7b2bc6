import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { businessHoursBetween, easterSunday, frenchHolidays, isBusinessDay, parisDay, parisMidnight } from './calendar.js';

describe('calendar: Easter (anonymous Gregorian algorithm)', () => {
  const known: [number, string][] = [
    [2000, '2000-04-23'],
    [2019, '2019-04-21'],
    [2024, '2024-03-31'],
    [2025, '2025-04-20'],
    [2026, '2026-04-05'],
    [2027, '2027-03-28'],
    [2038, '2038-04-25'],
  ];
  for (const [y, want] of known)
    test(`${y}: ${want}`, () => {
      const e = easterSunday(y);
      assert.equal(`${e.y}-${String(e.m).padStart(2, '0')}-${String(e.d).padStart(2, '0')}`, want);
    });
});

describe('calendar: French public holidays', () => {
  test('2026: the eleven days', () => {
    assert.deepEqual(
      [...frenchHolidays(2026).keys()].sort(),
      ['2026-01-01', '2026-04-06', '2026-05-01', '2026-05-08', '2026-05-14', '2026-05-25', '2026-07-14', '2026-08-15', '2026-11-01', '2026-11-11', '2026-12-25'],
    );
  });
  const cases: [string, boolean][] = [
    ['2026-04-06', false], // Lundi de Pâques
    ['2026-05-14', false], // Ascension (Easter + 39)
    ['2026-05-25', false], // Lundi de Pentecôte (Easter + 50)
    ['2026-07-14', false],
    ['2026-03-07', false], // Saturday
    ['2026-03-08', false], // Sunday
    ['2026-03-09', true], // Monday
    ['2026-05-15', true], // Friday after Ascension
  ];
  for (const [d, want] of cases)
    test(`${d} is ${want ? '' : 'not '}a business day`, () => {
      const [y, m, dd] = d.split('-').map(Number);
      assert.equal(isBusinessDay({ y, m, d: dd }), want);
    });
});

describe('calendar: Paris days and business hours', () => {
  test('midnight in winter (+01:00) and summer (+02:00)', () => {
    assert.equal(new Date(parisMidnight({ y: 2026, m: 1, d: 15 })).toISOString(), '2026-01-14T23:00:00.000Z');
    assert.equal(new Date(parisMidnight({ y: 2026, m: 7, d: 15 })).toISOString(), '2026-07-14T22:00:00.000Z');
    // The day summer time starts (29 March 2026) and the day after.
    assert.equal(new Date(parisMidnight({ y: 2026, m: 3, d: 30 })).toISOString(), '2026-03-29T22:00:00.000Z');
  });
  test('the Paris day of late-evening UTC instants', () => {
    assert.equal(parisDay(new Date('2026-03-09T23:30:00Z')), '2026-03-10');
    assert.equal(parisDay(new Date('2026-03-09T22:30:00Z')), '2026-03-09');
  });
  const cases: [string, string, string, number][] = [
    ['within one weekday', '2026-03-10T09:00:00+01:00', '2026-03-10T17:00:00+01:00', 8],
    ['Tuesday to Wednesday', '2026-03-10T10:00:00+01:00', '2026-03-11T10:00:00+01:00', 24],
    ['Friday 10:00 to Monday 10:00: the weekend does not count', '2026-03-13T10:00:00+01:00', '2026-03-16T10:00:00+01:00', 24],
    ['Friday 10:00 to Saturday 10:00', '2026-03-13T10:00:00+01:00', '2026-03-14T10:00:00+01:00', 14],
    ['across Easter Monday (6 April 2026)', '2026-04-03T10:00:00+02:00', '2026-04-07T10:00:00+02:00', 24],
    ['a whole weekend', '2026-03-14T00:00:00+01:00', '2026-03-16T00:00:00+01:00', 0],
    ['Saturday to Monday noon', '2026-03-14T08:00:00+01:00', '2026-03-16T12:00:00+01:00', 12],
    ['over the summer-time change (Friday to Monday)', '2026-03-27T10:00:00+01:00', '2026-03-30T10:00:00+02:00', 24],
    ['backwards: zero', '2026-03-11T10:00:00+01:00', '2026-03-10T10:00:00+01:00', 0],
  ];
  for (const [name, a, b, hours] of cases) test(`${name}: ${hours} h`, () => assert.equal(businessHoursBetween(new Date(a), new Date(b)), hours));
});
