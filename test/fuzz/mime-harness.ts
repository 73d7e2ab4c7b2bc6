// Seeded fuzzing of MIME analysis (src/mime): real messages of test/mime/corpus.ts, mutated
// (byte flips, truncation, boundary lines duplicated/cut, header folding, huge lines, NULs,
// 8-bit bytes, bare CR/LF, splices of two messages), then analyzed and used the way the IMAP
// server uses the result. src/mime documents no error: any exception is a defect.
// Properties: analyzeMessage() returns; every part's byte ranges are ordered and inside the
// message (children inside their parent); the result survives its JSON persistence unchanged;
// BODYSTRUCTURE, BODY and ENVELOPE serialise; every section (HEADER, TEXT, MIME, part,
// HEADER.FIELDS), BINARY and the SEARCH extractors run on every part; a raw sectionRange lies
// inside the message and equals sectionBytes there.
import { analyzeMessage, binaryContent, bodyStructure, envelopeSexp, headerValues, searchableText, sectionBytes, sectionRange, type MessageInfo, type Part, type SectionSpec } from '../../src/mime/index.js';
import { sexpToBytes, sexpToString } from '../../src/imap/fetch.js';
import { CORPUS, randomCorpus } from '../mime/corpus.js';
import { FuzzFailure, mutateBytes, Rng } from './rng.js';

const SEEDS: Buffer[] = [...CORPUS.map((c) => c.raw), ...randomCorpus(40, 7).map((c) => c.raw)];

export interface MimeStats {
  iterations: number;
  bytes: number;
  parts: number;
  sections: number;
  bareLf: number;
  nul: number;
  binaryErrors: number;
}

export function newMimeStats(): MimeStats {
  return { iterations: 0, bytes: 0, parts: 0, sections: 0, bareLf: 0, nul: 0, binaryErrors: 0 };
}

/** Offsets of the lines that start with "--" (boundary candidates). */
function dashLines(b: Buffer): [number, number][] {
  const out: [number, number][] = [];
  let i = 0;
  while (i < b.length) {
    let e = b.indexOf(10, i);
    if (e < 0) e = b.length - 1;
    if (b[i] === 0x2d && b[i + 1] === 0x2d) out.push([i, e + 1]);
    i = e + 1;
  }
  return out;
}

function mimeMutate(rng: Rng, input: Buffer): Buffer {
  let b = input;
  const rounds = rng.range(1, 4);
  for (let k = 0; k < rounds; k++) {
    const at = rng.int(b.length + 1);
    switch (rng.int(8)) {
      case 0: {
        // duplicate, drop or cut a boundary line
        const lines = dashLines(b);
        if (lines.length === 0) break;
        const [s, e] = rng.pick(lines);
        const r = rng.int(3);
        if (r === 0) b = Buffer.concat([b.subarray(0, e), b.subarray(s, e), b.subarray(e)]);
        else if (r === 1) b = Buffer.concat([b.subarray(0, s), b.subarray(e)]);
        else b = Buffer.concat([b.subarray(0, s + rng.int(e - s)), b.subarray(e)]);
        break;
      }
      case 1: {
        // header folding: a line break plus whitespace somewhere in the first kilobyte
        const p = rng.int(Math.min(b.length, 1024) + 1);
        b = Buffer.concat([b.subarray(0, p), Buffer.from(rng.pick(['\r\n ', '\r\n\t', '\n ', '\r\n \r\n', '\r\n'])), b.subarray(p)]);
        break;
      }
      case 2: {
        // huge line (mostly moderate: the test must stay fast)
        const n = rng.bool(0.1) ? rng.range(20000, 100000) : rng.range(900, 5000);
        b = Buffer.concat([b.subarray(0, at), Buffer.alloc(n, rng.pick([0x61, 0x3d, 0x20, 0x2d, 0x80])), b.subarray(at)]);
        break;
      }
      case 3: {
        // all line ends bare LF, or CRLF turned into bare CR
        const s = b.toString('latin1');
        b = Buffer.from(rng.bool() ? s.replace(/\r\n/g, '\n') : s.replace(/\r\n/g, '\r'), 'latin1');
        break;
      }
      case 4: {
        // splice: head of this message, tail of another
        const other = rng.pick(SEEDS);
        b = Buffer.concat([b.subarray(0, at), other.subarray(rng.int(other.length + 1))]);
        break;
      }
      case 5: {
        // odd header lines
        const p = rng.int(Math.min(b.length, 512) + 1);
        const h = rng.pick([
          'Content-Type: multipart/mixed; boundary=""\r\n',
          'Content-Type: multipart/mixed\r\n',
          'Content-Type: message/rfc822\r\n',
          'Content-Type: multipart/digest; boundary=a\r\n',
          'Content-Transfer-Encoding: base64\r\n',
          'Content-Transfer-Encoding: x-unknown\r\n',
          'Content-Type: text/plain; charset*=utf-8\'\'%C3; name*0="a"; name*1*=%E9\r\n',
          'Subject: =?utf-8?b?w6k=?= =?iso-8859-1?q?=E9?= =?x?y?z?=\r\n',
          'From: <@a,@b:c@d>, "x\\" <y>, g: ;\r\n',
          ': empty name\r\n',
          'no colon at all\r\n',
          'Date: 31 Feb 99999 25:61:61 +9999\r\n',
          'References: <a@b> <c@d\r\n',
        ]);
        b = Buffer.concat([b.subarray(0, p), Buffer.from(h, 'latin1'), b.subarray(p)]);
        break;
      }
      default:
        b = mutateBytes(rng, b, 1);
    }
  }
  return b;
}

function* walk(p: Part, depth = 0): Generator<Part> {
  yield p;
  if (depth > 200) return;
  for (const c of p.children ?? []) yield* walk(c, depth + 1);
  if (p.message) yield* walk(p.message.root, depth + 1);
}

function checkRanges(p: Part, lo: number, hi: number, raw: number, fail: (m: string) => never): void {
  if (!(lo <= p.headerStart && p.headerStart <= p.bodyStart && p.bodyStart <= p.bodyEnd && p.bodyEnd <= hi && hi <= raw)) {
    fail(`part ${p.path.join('.') || '[]'}: ranges ${p.headerStart}/${p.bodyStart}/${p.bodyEnd} outside [${lo}, ${hi}]`);
  }
  if (p.size < 0 || p.headerSize < 0 || (p.lines ?? 0) < 0) fail(`part ${p.path.join('.')}: negative size`);
  for (const c of p.children ?? []) checkRanges(c, p.bodyStart, p.bodyEnd, raw, fail);
  if (p.message) checkRanges(p.message.root, p.bodyStart, p.bodyEnd, raw, fail);
}

function exercise(raw: Buffer, info: MessageInfo, stats: MimeStats, fail: (m: string) => never): void {
  sexpToString(bodyStructure(info, true));
  sexpToString(bodyStructure(info, false));
  sexpToString(envelopeSexp(info.envelope));
  sexpToBytes(envelopeSexp(info.envelope, info.envelopeWire));
  sexpToBytes(envelopeSexp(info.envelope, info.envelopeWire), { utf8: true });
  sexpToBytes(bodyStructure(info, true), { utf8: true });
  for (const f of ['subject', 'from', 'to', 'x-junk']) headerValues(raw, info, f, f === 'subject' ? 'subject' : f === 'x-junk' ? 'plain' : 'address');
  searchableText(raw, info, 'body');
  searchableText(raw, info, 'text');
  const specs: SectionSpec[] = [{ kind: 'full' }, { kind: 'header', part: [] }, { kind: 'text', part: [] }, { kind: 'header.fields', part: [], fields: ['subject', 'from'], not: false }, { kind: 'header.fields', part: [], fields: ['subject'], not: true }];
  for (const p of walk(info.root)) {
    stats.parts++;
    if (p.path.length === 0) continue;
    specs.push({ kind: 'part', part: p.path }, { kind: 'mime', part: p.path }, { kind: 'header', part: p.path }, { kind: 'text', part: p.path });
    specs.push({ kind: 'header.fields', part: p.path, fields: ['content-type'], not: false });
  }
  specs.push({ kind: 'part', part: [99] }, { kind: 'mime', part: [1, 99, 3] });
  for (const s of specs.slice(0, 60)) {
    stats.sections++;
    const bytes = sectionBytes(raw, info, s);
    const range = sectionRange(info, s);
    if (range !== null) {
      if (range.start < 0 || range.start > range.end || range.end > raw.length) fail(`sectionRange ${JSON.stringify(s)} = ${range.start}..${range.end} outside the message`);
      if (bytes !== null && !Buffer.from(bytes).equals(raw.subarray(range.start, range.end))) fail(`sectionRange and sectionBytes disagree for ${JSON.stringify(s)}`);
    }
  }
  for (const p of [...walk(info.root)].slice(0, 30)) {
    const b = binaryContent(raw, info, p.path);
    if (b !== null && 'error' in b) stats.binaryErrors++;
  }
}

/** One iteration; throws FuzzFailure when a property does not hold. */
export function mimeIteration(iseed: number, stats: MimeStats): void {
  const rng = new Rng(iseed);
  const raw = mimeMutate(rng, rng.pick(SEEDS));
  stats.iterations++;
  stats.bytes += raw.length;
  const fail = (m: string): never => {
    throw new FuzzFailure(`${m}; input (base64) ${raw.toString('base64').slice(0, 4000)}`, iseed);
  };
  let info: MessageInfo;
  try {
    info = analyzeMessage(raw);
  } catch (e) {
    return fail(`analyzeMessage threw: ${e instanceof Error ? e.stack : String(e)}`);
  }
  if (info.rawSize !== raw.length) fail(`rawSize ${info.rawSize} != ${raw.length}`);
  if (info.size < info.rawSize) fail(`size ${info.size} < rawSize ${info.rawSize}`);
  if (info.bareLf) stats.bareLf++;
  if (info.nul) stats.nul++;
  checkRanges(info.root, 0, raw.length, raw.length, fail);
  const json = JSON.stringify(info);
  if (JSON.stringify(JSON.parse(json)) !== json) fail('MessageInfo does not survive JSON');
  try {
    exercise(raw, JSON.parse(json) as MessageInfo, stats, fail);
  } catch (e) {
    if (e instanceof FuzzFailure) throw e;
    fail(`using the analysis threw: ${e instanceof Error ? e.stack : String(e)}`);
  }
}
