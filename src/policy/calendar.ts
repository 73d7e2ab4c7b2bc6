// French business days (golden rule 1, the reading guard: "24 hours" count business days only).
// Pure: a day is a calendar day in Europe/Paris (Intl gives the offset, summer time included);
// weekends and the eleven French public holidays (Code du travail, art. L3133-1) are not business
// days. Easter Sunday by the anonymous Gregorian algorithm (Meeus/Jones/Butcher).

export const PARIS = 'Europe/Paris';
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** A calendar day: year, month 1–12, day 1–31. */
export interface CivilDate {
  y: number;
  m: number;
  d: number;
}

const iso = (c: CivilDate) => `${c.y}-${String(c.m).padStart(2, '0')}-${String(c.d).padStart(2, '0')}`;

/** Easter Sunday of year `y` (Gregorian calendar): the anonymous algorithm. */
export function easterSunday(y: number): CivilDate {
  const a = y % 19;
  const b = Math.floor(y / 100);
  const c = y % 100;
  const d = Math.floor(b / 4);
  const e = b % 4;
  const f = Math.floor((b + 8) / 25);
  const g = Math.floor((b - f + 1) / 3);
  const h = (19 * a + b - d - g + 15) % 30;
  const i = Math.floor(c / 4);
  const k = c % 4;
  const l = (32 + 2 * e + 2 * i - h - k) % 7;
  const m = Math.floor((a + 11 * h + 22 * l) / 451);
  const month = Math.floor((h + l - 7 * m + 114) / 31);
  const day = ((h + l - 7 * m + 114) % 31) + 1;
  return { y, m: month, d: day };
}

/** The civil date `n` days after `c` (n may be negative). */
export function addDays(c: CivilDate, n: number): CivilDate {
  const t = new Date(Date.UTC(c.y, c.m - 1, c.d + n));
  return { y: t.getUTCFullYear(), m: t.getUTCMonth() + 1, d: t.getUTCDate() };
}

const holidayCache = new Map<number, Map<string, string>>();

/** French public holidays of year `y` (Code du travail L3133-1), ISO date → name. */
export function frenchHolidays(y: number): Map<string, string> {
  let h = holidayCache.get(y);
  if (h) return h;
  const easter = easterSunday(y);
  const fixed: [number, number, string][] = [
    [1, 1, "Jour de l'an"],
    [5, 1, 'Fête du Travail'],
    [5, 8, 'Victoire 1945'],
    [7, 14, 'Fête nationale'],
    [8, 15, 'Assomption'],
    [11, 1, 'Toussaint'],
    [11, 11, 'Armistice 1918'],
    [12, 25, 'Noël'],
  ];
  h = new Map(fixed.map(([m, d, name]) => [iso({ y, m, d }), name]));
  h.set(iso(addDays(easter, 1)), 'Lundi de Pâques');
  h.set(iso(addDays(easter, 39)), 'Ascension');
  h.set(iso(addDays(easter, 50)), 'Lundi de Pentecôte');
  holidayCache.set(y, h);
  return h;
}

/** Weekday of a civil date: 0 Sunday … 6 Saturday. */
const weekday = (c: CivilDate) => new Date(Date.UTC(c.y, c.m - 1, c.d)).getUTCDay();

/** Whether `c` is a business day in France: Monday to Friday, not a public holiday. */
export function isBusinessDay(c: CivilDate): boolean {
  const w = weekday(c);
  return w !== 0 && w !== 6 && !frenchHolidays(c.y).has(iso(c));
}

const parisParts = new Intl.DateTimeFormat('en-GB', {
  timeZone: PARIS,
  hourCycle: 'h23',
  year: 'numeric',
  month: 'numeric',
  day: 'numeric',
  hour: 'numeric',
  minute: 'numeric',
  second: 'numeric',
});

/** The Paris wall-clock time of instant `t` (epoch ms), as if it were UTC (epoch ms). */
function parisWallClock(t: number): number {
  const p: Record<string, number> = {};
  for (const x of parisParts.formatToParts(new Date(t))) if (x.type !== 'literal') p[x.type] = Number(x.value);
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) + (t % 1000 + 1000) % 1000;
}

/** The calendar day of instant `t` in Paris. */
export function parisDate(t: Date | number): CivilDate {
  const w = new Date(parisWallClock(+t));
  return { y: w.getUTCFullYear(), m: w.getUTCMonth() + 1, d: w.getUTCDate() };
}

/** The Paris calendar day of `t` as YYYY-MM-DD (the key of "at most one notice per day"). */
export function parisDay(t: Date | number): string {
  return iso(parisDate(t));
}

/** The instant Paris midnight starts the civil day `c` (offset +01:00 or +02:00, from Intl). */
export function parisMidnight(c: CivilDate): number {
  const wall = Date.UTC(c.y, c.m - 1, c.d);
  // Offset at a guess of the instant, then at the corrected one (changes happen at 02:00/03:00, never at midnight).
  let t = wall - (parisWallClock(wall) - wall);
  t = wall - (parisWallClock(t) - t);
  return t;
}

/**
 * Milliseconds of business time between `from` and `to`: the part of the interval that falls on
 * French business days (Paris time). A message received on Friday at 10:00 reaches 24 business
 * hours on Monday at 10:00 (Tuesday if Monday is a holiday).
 */
export function businessMsBetween(from: Date | number, to: Date | number): number {
  const a = +from;
  const b = +to;
  if (!(b > a)) return 0;
  let total = 0;
  let day = parisDate(a);
  for (let start = parisMidnight(day); start < b; ) {
    const next = addDays(day, 1);
    const end = parisMidnight(next);
    if (isBusinessDay(day)) total += Math.max(0, Math.min(end, b) - Math.max(start, a));
    day = next;
    start = end;
    // A guard against a runaway loop on absurd inputs (about 30 years).
    if (end - a > 11_000 * DAY_MS) break;
  }
  return total;
}

/** Business hours between two instants (see businessMsBetween). */
export function businessHoursBetween(from: Date | number, to: Date | number): number {
  return businessMsBetween(from, to) / HOUR_MS;
}
