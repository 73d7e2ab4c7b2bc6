// Text normalisation for directory search: accent- and case-insensitive, and tolerant of a
// missing hyphen or apostrophe ("D'Arc" is found by "darc", "d'arc", "d arc"; "Jean-Pierre" by
// "jeanpierre", "jean pierre", "jean-pi"). Index and query go through the same functions, so
// the national index (store/directory) and our own mailboxes (matched in memory) agree.
//
// The import calls these a few million times: pure-ASCII text takes a fast path, and results
// for repeated values (labels, cities, common names) come from small bounded caches.

const LIGATURES: Record<string, string> = { œ: 'oe', æ: 'ae', ß: 'ss', ø: 'o', đ: 'd', ł: 'l', ı: 'i' };
const ASCII_NO_BACKTICK = /^[\x20-\x5f\x61-\x7e]*$/;
const CACHE_MAX = 50_000;

function boundedCache<V>() {
  const m = new Map<string, V>();
  return {
    get: (k: string) => m.get(k),
    set(k: string, v: V) {
      if (m.size >= CACHE_MAX) m.clear();
      m.set(k, v);
    },
  };
}

const foldCache = boundedCache<string>();

/** Lower case, no diacritics, ligatures expanded; apostrophe and dash variants become ' and -. */
export function fold(s: string): string {
  if (ASCII_NO_BACKTICK.test(s)) return s.toLowerCase();
  let r = foldCache.get(s);
  if (r === undefined) {
    r = s
      .normalize('NFD')
      .replace(/\p{M}+/gu, '')
      .toLowerCase()
      .replace(/[œæßøđłı]/g, (c) => LIGATURES[c])
      .replace(/[’‘ʼ`´′]/g, "'")
      .replace(/[‐‑‒–—―−]/g, '-');
    foldCache.set(s, r);
  }
  return r;
}

/** A word of the text: its parts (split at hyphens and apostrophes) and the parts joined. */
export interface Word {
  parts: string[];
  joined: string;
}

/** Splits text into words; a word keeps its hyphen/apostrophe-separated parts together. */
export function words(s: string | null | undefined): Word[] {
  if (!s) return [];
  const out: Word[] = [];
  for (const w of fold(s).split(/[^a-z0-9'-]+/)) {
    if (!w) continue;
    if (!/['-]/.test(w)) {
      out.push({ parts: [w], joined: w });
      continue;
    }
    const parts = w.split(/['-]+/).filter(Boolean);
    if (parts.length) out.push({ parts, joined: parts.join('') });
  }
  return out;
}

const tokenCache = boundedCache<string[]>();

/** Index tokens of a text: every part and, for compound words, the joined form. */
export function tokensOf(s: string | null | undefined): string[] {
  if (!s) return [];
  let r = tokenCache.get(s);
  if (r === undefined) {
    r = [];
    for (const w of words(s)) {
      for (const p of w.parts) r.push(p);
      if (w.parts.length > 1) r.push(w.joined);
    }
    tokenCache.set(s, r);
  }
  return r;
}

/** Appends the index tokens of `s` to `into`. */
export function indexTokens(s: string | null | undefined, into: string[] = []): string[] {
  if (s) for (const t of tokensOf(s)) into.push(t);
  return into;
}

const joinedCache = boundedCache<string>();

/** The whole text as one key (starts-with searches on a whole value: family, city). */
export function joinedKey(s: string | null | undefined): string {
  if (!s) return '';
  let r = joinedCache.get(s);
  if (r === undefined) {
    r = words(s)
      .map((w) => w.joined)
      .join('');
    joinedCache.set(s, r);
  }
  return r;
}

/** Sort key: names in alphabetical order, accent-insensitive, words separated by one space. */
export function sortKey(...parts: (string | null | undefined)[]): string {
  let out = '';
  for (const p of parts) {
    if (!p) continue;
    for (const w of words(p)) out += (out ? ' ' : '') + w.joined;
  }
  return out;
}

/** Only [a-z0-9] remains: identifiers and codes as index tokens, after a prefix such as "cp_". */
export const codeToken = (prefix: string, value: string | null | undefined) => (value ? prefix + fold(value).replace(/[^a-z0-9]/g, '') : '');

/** The words of a search query (empty words dropped). */
export const queryWords = (q: string | null | undefined): Word[] => words(q);
