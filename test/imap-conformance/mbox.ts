// The `.mbox` fixtures of imaptest's scripted tests, read as imaptest reads them
// (mailbox-source-mbox.c of its release-2.3 branch):
//
// - A message starts after a line `From <sender> <asctime date> [<+-hhmm>]` that parses as a
//   From_ line, and runs up to the next such line; everything in between is the message,
//   including the empty line just before the next From_ line.
// - There is NO `>From` unescaping: imaptest appends the lines as they are (a `>From ` line stays
//   `>From `, and a `From ` line that does not parse as a From_ line stays in the message).
// - Line ends are sent as CRLF (a bare LF becomes CRLF; an existing CRLF is kept).
// - The From_ line's date is the message's INTERNALDATE for the setup APPENDs (and the bare
//   `append` command): with a numeric zone it is that zone; without one it is the runner's
//   local time zone (imaptest uses mktime()).
// - The messages are handed out in order and wrap around to the first one after the last
//   (for `messages: N` larger than the mbox).

export interface MboxMessage {
  /** 0-based position in the mbox. */
  index: number;
  /** The message, a binary string (one char per byte) with CRLF line ends. */
  data: string;
  /** INTERNALDATE: the instant of the From_ line's date. */
  time: Date;
  /** Zone of that date, minutes east of UTC. */
  tzOffsetMinutes: number;
  fromLine: string;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * Parses a From_ line (`From sender  Sat Mar 24 23:00:00 2007 +0200`; seconds, the zone and a
 * zone name before the year are optional). Undefined when the line is not one.
 */
export function parseFromLine(line: string): { time: Date; tzOffsetMinutes: number } | undefined {
  const m =
    /^From (?:"[^"]*"|\S*) +(?:[A-Za-z]{3},? +)?([A-Za-z]{3}) +(\d{1,2}) +(\d{1,2}):(\d{2})(?::(\d{2}))? +(?:[A-Za-z]{2,5} +)?(?:([+-]\d{4}) +)?(\d{4})(?: +([+-])(\d{2})(\d{2}))?(?: .*)?\r?$/.exec(
      line,
    );
  if (!m) return undefined;
  const month = MONTHS.findIndex((mm) => mm.toLowerCase() === m[1]!.toLowerCase());
  if (month < 0) return undefined;
  const [day, hour, min, sec, year] = [Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5] ?? 0), Number(m[7])];
  if (day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) return undefined;
  let tz: number | undefined;
  const zoneBefore = m[6];
  if (m[8] !== undefined) tz = (m[8] === '-' ? -1 : 1) * (Number(m[9]) * 60 + Number(m[10]));
  else if (zoneBefore !== undefined) tz = (zoneBefore[0] === '-' ? -1 : 1) * (Number(zoneBefore.slice(1, 3)) * 60 + Number(zoneBefore.slice(3, 5)));
  if (tz !== undefined) {
    const utc = Date.UTC(year, month, day, hour, min, sec) - tz * 60_000;
    return { time: new Date(utc), tzOffsetMinutes: tz };
  }
  const local = new Date(year, month, day, hour, min, sec);
  return { time: local, tzOffsetMinutes: -local.getTimezoneOffset() };
}

/** Splits an mbox (binary string, one char per byte) into its messages. Throws on a file that is not an mbox. */
export function parseMbox(content: string, name = 'mbox'): MboxMessage[] {
  // Lines with their line ends, so the message bytes are the file's bytes.
  const lines: string[] = [];
  for (let pos = 0; pos < content.length; ) {
    const nl = content.indexOf('\n', pos);
    const end = nl < 0 ? content.length : nl + 1;
    lines.push(content.slice(pos, end));
    pos = end;
  }
  if (lines.length === 0) throw new Error(`${name}: empty mbox file`);
  const stripEol = (l: string): string => l.replace(/\r?\n$/, '');
  const messages: MboxMessage[] = [];
  let i = 0;
  const first = parseFromLine(stripEol(lines[0]!));
  if (!first) throw new Error(`${name}: not an mbox file (no From_ line first)`);
  while (i < lines.length) {
    const fromLine = stripEol(lines[i]!);
    const from = parseFromLine(fromLine);
    if (!from) throw new Error(`${name}: From_ line expected at line ${i + 1}`);
    i++;
    const start = i;
    while (i < lines.length) {
      // A From_ line right after the previous one (an empty message) is kept as body, as imaptest does.
      if (i !== start && parseFromLine(stripEol(lines[i]!))) break;
      i++;
    }
    if (i === start) throw new Error(`${name}: mbox file ends with a From_ line`);
    const raw = lines.slice(start, i).join('');
    messages.push({
      index: messages.length,
      data: raw.replace(/\r?\n/g, '\r\n'),
      time: from.time,
      tzOffsetMinutes: from.tzOffsetMinutes,
      fromLine,
    });
  }
  return messages;
}

/** IMAP date-time of a message's INTERNALDATE in its own zone: `24-Mar-2007 23:00:00 +0200`. */
export function imapDateTime(m: { time: Date; tzOffsetMinutes: number }): string {
  const d = new Date(m.time.getTime() + m.tzOffsetMinutes * 60_000);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const tz = Math.abs(m.tzOffsetMinutes);
  const sign = m.tzOffsetMinutes < 0 ? '-' : '+';
  return (
    `${p2(d.getUTCDate())}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()} ` +
    `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} ${sign}${p2(Math.floor(tz / 60))}${p2(tz % 60)}`
  );
}

/** Hands out the mbox's messages in order, wrapping around; shared by all connections of a script. */
export class MboxSource {
  private next_ = 0;
  constructor(readonly messages: MboxMessage[]) {
    if (messages.length === 0) throw new Error('MboxSource: no messages');
  }
  /** True when every message has been handed out at least once since the start (or the last wrap). */
  eof(): boolean {
    return this.next_ >= this.messages.length;
  }
  next(): MboxMessage {
    if (this.next_ >= this.messages.length) this.next_ = 0;
    return this.messages[this.next_++]!;
  }
}
