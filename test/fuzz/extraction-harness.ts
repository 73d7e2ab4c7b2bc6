// Seeded fuzzing of the extraction importer's line parsing (src/directory/extraction.ts
// parseHeader / parseLine): lines of the synthetic national extraction (src/directory/generate.ts,
// same columns and value shapes as the published file), mutated by column (shuffled, dropped,
// duplicated, renamed with accents/case/" structure BAL", extra or missing '|', spaces, empty
// required fields) and by byte (decoded as UTF-8 the way the reader does).
// Properties: parseHeader returns or throws ExtractionError; parseLine never throws and returns
// ok with a valid entry (known type, non-empty address, the keys its type needs) or a reason;
// an unmutated line under an unmutated header parses, and `entry.line` (the stored form) is
// the line itself when set.
import { MAILBOX_TYPES } from '../../src/model/index.js';
import { ExtractionError, parseHeader, parseLine, type HeaderMap } from '../../src/directory/extraction.js';
import { generateLines } from '../../src/directory/generate.js';
import { FuzzFailure, mutateBytes, Rng } from './rng.js';

let seedLines: { header: string; suffixed: string; lines: string[] } | undefined;

function load() {
  const lines = [...generateLines({ lines: 400, seed: 13 })];
  const suffixed = [...generateLines({ lines: 1, seed: 13, structureSuffix: true })][0]!;
  return { header: lines[0]!, suffixed, lines: lines.slice(1) };
}

export interface ExtractionStats {
  iterations: number;
  headersRejected: number;
  lines: number;
  ok: number;
  rejected: number;
  storedAsIs: number;
}

export function newExtractionStats(): ExtractionStats {
  return { iterations: 0, headersRejected: 0, lines: 0, ok: 0, rejected: 0, storedAsIs: 0 };
}

function columnMutate(rng: Rng, line: string, header: boolean): string {
  let cols = line.split('|');
  const rounds = rng.range(1, 3);
  for (let k = 0; k < rounds; k++) {
    const i = rng.int(cols.length);
    switch (rng.int(header ? 7 : 6)) {
      case 0:
        cols.splice(i, 1);
        break;
      case 1:
        cols.splice(i, 0, cols[i] ?? '');
        break;
      case 2: {
        const j = rng.int(cols.length);
        [cols[i], cols[j]] = [cols[j]!, cols[i]!];
        break;
      }
      case 3:
        cols[i] = rng.pick(['', ' ', `  ${cols[i]}  `, '\t', '\u00a0', 'é', '"x"', '@', 'a@b', 'PER', 'per', 'ORG', 'xx@yy.mssante.fr ']);
        break;
      case 4:
        cols = rng.bool() ? [...cols, ''] : [...cols, 'x'];
        break;
      case 5:
        cols[i] = (cols[i] ?? '') + rng.pick(['|', '||', '\r', '\u0000', '\ufeff', '\ud800']);
        break;
      default:
        cols[i] = rng.pick([(cols[i] ?? '').toUpperCase(), (cols[i] ?? '').normalize('NFD'), `${cols[i]} structure BAL`, (cols[i] ?? '').replace(/ /g, '_'), '\ufeff' + cols[i]]);
    }
  }
  return cols.join('|');
}

function mutate(rng: Rng, line: string, header: boolean): string {
  return rng.bool(0.6) ? columnMutate(rng, line, header) : mutateBytes(rng, Buffer.from(line, 'utf8')).toString('utf8');
}

/** One iteration; throws FuzzFailure when a property does not hold. */
export function extractionIteration(iseed: number, stats: ExtractionStats): void {
  seedLines ??= load();
  const rng = new Rng(iseed);
  stats.iterations++;
  const cleanHeader = rng.bool(0.8) ? seedLines.header : seedLines.suffixed;
  const headerMutated = rng.bool(0.3);
  const headerLine = headerMutated ? mutate(rng, cleanHeader, true) : cleanHeader;
  const fail = (m: string, line?: string): never => {
    throw new FuzzFailure(`${m}; header ${JSON.stringify(headerLine)}${line === undefined ? '' : `; line ${JSON.stringify(line)}`}`, iseed);
  };
  let header: HeaderMap;
  try {
    header = parseHeader(headerLine);
  } catch (e) {
    if (e instanceof ExtractionError) {
      if (!headerMutated) fail('the generated header was refused');
      stats.headersRejected++;
      return;
    }
    return fail(`parseHeader threw ${e instanceof Error ? e.stack : String(e)}`);
  }
  const n = rng.range(1, 20);
  for (let k = 0; k < n; k++) {
    const clean = rng.pick(seedLines.lines);
    const mutated = rng.bool(0.7);
    const line = mutated ? mutate(rng, clean, false) : clean;
    stats.lines++;
    let r: ReturnType<typeof parseLine>;
    try {
      r = parseLine(line, header);
    } catch (e) {
      return fail(`parseLine threw ${e instanceof Error ? e.stack : String(e)}`, line);
    }
    if (!r.ok) {
      if (!r.reason) fail('rejected without a reason', line);
      if (!mutated && !headerMutated) fail(`a generated line was rejected: ${r.reason}`, line);
      stats.rejected++;
      continue;
    }
    stats.ok++;
    const e = r.entry;
    if (!(MAILBOX_TYPES as readonly string[]).includes(e.balType) || !e.address) fail(`accepted an entry of type ${e.balType} address ${JSON.stringify(e.address)}`, line);
    if ((e.balType === 'PER' || e.balType === 'CAB') && !e.ppKey) fail('a PER/CAB entry without ppKey', line);
    if ((e.balType === 'ORG' || e.balType === 'APP') && !e.stKey) fail('an ORG/APP entry without stKey', line);
    if (e.line !== undefined) {
      if (e.line !== line) fail('entry.line differs from the line', line);
      stats.storedAsIs++;
    }
  }
}
