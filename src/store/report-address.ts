// The address of a delivery or disposition report's recipient field, as both store engines match
// it to a submission's recipient (sqlite/tracking.ts, postgres/tracking.ts applyReports).

/** "rfc822;a@b" or "<a@b>" → "a@b" (RFC 3464 §2.3.1, RFC 8098 §3.2.4 address-type). */
export function bareAddress(v: string | null): string | null {
  if (!v) return null;
  const a = v.replace(/^\s*rfc822\s*;/i, '').trim().replace(/^<(.*)>$/, '$1').trim();
  return a || null;
}
