// Message flags as both store engines keep them (one space-separated TEXT column, compared
// without case): what STORE makes of a message's flags (sqlite/folders.ts, postgres/folders.ts).

/** Flags are kept as one space-separated string; system flags keep their RFC 9051 §2.3.2 spelling. */
export function normaliseFlags(flags: string[]): string[] {
  const seen = new Map<string, string>();
  for (const f of flags) if (f && f !== '\\Recent') seen.set(f.toLowerCase(), f);
  return [...seen.values()];
}

/**
 * A message's flags after STORE `op` with `wanted` (normalised already) on `cur` (RFC 9051 §6.4.6:
 * FLAGS replaces, +FLAGS adds, -FLAGS removes), or undefined when that changes nothing (compared
 * without case): the message then keeps its modseq (RFC 7162 §3.2).
 */
export function nextFlags(cur: string[], op: 'set' | 'add' | 'remove', wanted: string[]): string[] | undefined {
  let next: string[];
  if (op === 'set') next = wanted;
  else if (op === 'add') next = normaliseFlags([...cur, ...wanted]);
  else {
    const drop = new Set(wanted.map((f) => f.toLowerCase()));
    next = cur.filter((f) => !drop.has(f.toLowerCase()));
  }
  const same = next.length === cur.length && next.every((f) => cur.some((c) => c.toLowerCase() === f.toLowerCase()));
  return same ? undefined : next;
}
