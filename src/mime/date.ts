// Dates in message headers, written by SMTP (Received, Date) and by the DSN builder.

/** Formats the date-time of RFC 5322 §3.3 in UTC. */
export function rfc5322Date(d = new Date()): string {
  return d.toUTCString().replace(/GMT$/, '+0000');
}
