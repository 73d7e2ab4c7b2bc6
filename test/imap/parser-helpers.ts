// Helpers of the IMAP command parser tests (src/imap/protocol/parser*.test.ts).
import assert from 'node:assert/strict';
import { CommandParser, type ParserCapabilities, type ParserEvent, type ParserOptions } from '../../src/imap/protocol/parser.js';
import type { Command, ParsedCommand, SearchKey } from '../../src/imap/protocol/types.js';

export const ALL_CAPS: ParserCapabilities = { literalPlus: true, binary: true };

export function parser(caps: ParserCapabilities = ALL_CAPS, opts?: ParserOptions): CommandParser {
  const p = new CommandParser(opts);
  p.setCapabilities(caps);
  return p;
}

/** All events for `input`, fed in one chunk (draining pauses). */
export function events(input: string | Uint8Array, caps: ParserCapabilities = ALL_CAPS, opts?: ParserOptions): ParserEvent[] {
  const p = parser(caps, opts);
  const out = p.push(typeof input === 'string' ? Buffer.from(input, 'utf8') : input);
  for (let more = p.resume(); more.length; more = p.resume()) out.push(...more);
  return out;
}

/** The same, fed one octet at a time. */
export function eventsBytewise(input: string | Uint8Array, caps: ParserCapabilities = ALL_CAPS, opts?: ParserOptions): ParserEvent[] {
  const p = parser(caps, opts);
  const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  const out: ParserEvent[] = [];
  for (const b of bytes) out.push(...p.push(Uint8Array.of(b)));
  for (let more = p.resume(); more.length; more = p.resume()) out.push(...more);
  return out;
}

export function commands(input: string | Uint8Array, caps?: ParserCapabilities): ParsedCommand[] {
  return events(input, caps)
    .filter((e): e is Extract<ParserEvent, { type: 'command' }> => e.type === 'command')
    .map((e) => e.parsed);
}

/** Parses one command line (CRLF added) and returns its AST; fails on an error. */
export function cmd(line: string, caps?: ParserCapabilities): Command {
  const all = commands(line + '\r\n', caps);
  assert.equal(all.length, 1, `one command expected for ${JSON.stringify(line)}`);
  const p = all[0];
  if (!p.ok) assert.fail(`${JSON.stringify(line)} failed: ${p.message}`);
  return p.command;
}

/** Parses one command line and returns its error. */
export function bad(line: string, caps?: ParserCapabilities): { tag: string | null; message: string; code?: string } {
  const all = commands(line + '\r\n', caps);
  assert.equal(all.length, 1, `one command expected for ${JSON.stringify(line)}`);
  const p = all[0];
  if (p.ok) assert.fail(`${JSON.stringify(line)} parsed: ${JSON.stringify(p.command, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`);
  return p;
}

export function searchKey(line: string, caps?: ParserCapabilities): SearchKey {
  const c = cmd(line, caps);
  assert.ok(c.name === 'SEARCH' || c.name === 'UID SEARCH');
  return c.key;
}

export const set = (...ranges: [number, number][]) => ({ ranges: ranges.map(([from, to]) => ({ from, to })) });
export const INF = Infinity;
