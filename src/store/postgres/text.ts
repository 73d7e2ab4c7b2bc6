// PostgreSQL's text types cannot hold U+0000 (SQLite's can): a query carrying one fails with
// 22021 "invalid byte sequence". The parts of branch pg-mail keep that engine difference from
// reaching callers: a lookup by a name containing NUL finds nothing (no stored name has one), free
// text from outside (a peer's reply or report, a header) is stored with NUL as U+FFFD, and a name
// or flag to store with one is refused with an error saying so.

/** Whether `s` has a NUL character (then it matches no stored text). */
export const hasNul = (s: string): boolean => s.includes('\0');

/** Free text as PostgreSQL can store it: each NUL becomes U+FFFD (the replacement character). */
export function storable<T extends string | null | undefined>(s: T): T {
  return (typeof s === 'string' && s.includes('\0') ? s.replace(/\0/g, '\uFFFD') : s) as T;
}

/** Throws unless `s` can be stored as a name (folder name, flag): what and why in the message. */
export function checkStorableName(what: string, s: string): void {
  if (hasNul(s)) throw new Error(`${what} ${JSON.stringify(s)} contains a NUL character, which the PostgreSQL store cannot hold: choose a name without it`);
}
