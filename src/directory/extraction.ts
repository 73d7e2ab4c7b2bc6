// The national extraction "Extraction_Correspondance_MSSante_AAAAMMJJhhmm.txt" (the Annuaire
// Santé's public daily extraction, annuaire.sante.fr): UTF-8, '|'-separated, one header line, one
// line per mailbox, 31 columns. Columns are matched by header name, tolerantly (accents, case,
// spacing, the " structure BAL" suffix some copies add to the address columns, a BOM, CRLF line
// ends).
import { createReadStream, statSync } from 'node:fs';
import { once } from 'node:events';
import { createInflateRaw, type InflateRaw } from 'node:zlib';
import { Unzip, UnzipPassThrough, type AsyncFlateStreamHandler, type UnzipDecoder } from 'fflate';
import { isValidAddress } from '../core/index.js';
import { MAILBOX_TYPES, type MailboxType } from '../model/index.js';
import { COLUMNS, resourceKindOf, safeKey, type DirectoryEntry, type ExtractionFields } from '../directory-model/entry.js';
import { fold, sortKey } from '../directory-model/normalize.js';

export const FIELD_NAMES = COLUMNS.map(([f]) => f);

/** "Raison Sociale structure BAL", "raison sociale", "RAISON_SOCIALE" → "raisonsociale". */
export function headerKey(h: string): string {
  return fold(h)
    .replace(/[^a-z0-9]/g, '')
    .replace(/structurebal$/, '');
}

const HEADER_INDEX = new Map(COLUMNS.map(([f, h]) => [headerKey(h), f]));

export class ExtractionError extends Error {
  override name = 'ExtractionError';
}

export interface HeaderMap {
  /** Field for each column position (undefined: unknown column, ignored). */
  fields: (keyof ExtractionFields | undefined)[];
  missing: string[];
  unknown: string[];
}

/** Maps a header line to field names; the address and BAL type columns are required. */
export function parseHeader(line: string): HeaderMap {
  const cols = line.replace(/^\uFEFF/, '').split('|');
  const fields = cols.map((c) => HEADER_INDEX.get(headerKey(c)));
  const seen = new Set(fields.filter(Boolean));
  const missing = COLUMNS.filter(([f]) => !seen.has(f)).map(([, h]) => h);
  const unknown = cols.filter((_, i) => !fields[i]).map((c) => c.trim());
  if (!seen.has('address') || !seen.has('balType'))
    throw new ExtractionError(
      `the first line is not an extraction header: no "Adresse BAL" / "Type de BAL" column (got ${JSON.stringify(line.slice(0, 120))}). ` +
        'Give the Extraction_Correspondance_MSSante_*.txt file of the Annuaire Santé, or the ZIP that carries it.',
    );
  return { fields, missing, unknown };
}

export type LineResult = { ok: true; entry: DirectoryEntry } | { ok: false; reason: string };

/** Column position of each field in this file's header (-1: absent), and whether it is the published order. */
function positions(header: HeaderMap): { pos: number[]; identity: boolean } {
  const cached = (header as any)._pos as { pos: number[]; identity: boolean } | undefined;
  if (cached) return cached;
  const pos = FIELD_NAMES.map((f) => header.fields.indexOf(f));
  const r = { pos, identity: header.fields.length === FIELD_NAMES.length && pos.every((p, i) => p === i) };
  (header as any)._pos = r;
  return r;
}

/** Set by field() when a value had spaces around it (the line is then not stored as it is). */
let trimmed = false;

function field(cols: string[], pos: number[], i: number): string {
  const p = pos[i];
  if (p < 0) return '';
  const raw = cols[p];
  const v = raw.trim();
  if (v.length !== raw.length) trimmed = true;
  return v;
}

/** Parses one data line into an entry, or says why it is rejected. */
export function parseLine(line: string, header: HeaderMap): LineResult {
  const cols = line.split('|');
  const n = header.fields.length;
  // A trailing '|' (one empty extra field) is tolerated.
  if (cols.length !== n && !(cols.length === n + 1 && cols[n] === '')) return { ok: false, reason: `${cols.length} fields where the header has ${n}` };
  const { pos: p, identity } = positions(header);
  trimmed = false;
  // The entry itself, in one object literal with every field (one hidden class for millions of
  // lines, and no intermediate object of the 31 fields: completed in place).
  const e: DirectoryEntry = {
    balType: field(cols, p, 0), address: field(cols, p, 1), ppIdType: field(cols, p, 2), ppId: field(cols, p, 3), ppNatId: field(cols, p, 4),
    stIdType: field(cols, p, 5), stId: field(cols, p, 6), service: field(cols, p, 7), civility: field(cols, p, 8), family: field(cols, p, 9),
    given: field(cols, p, 10), categoryCode: field(cols, p, 11), categoryLabel: field(cols, p, 12), professionCode: field(cols, p, 13),
    professionLabel: field(cols, p, 14), specialityCode: field(cols, p, 15), specialityLabel: field(cols, p, 16), digitization: field(cols, p, 17),
    legalName: field(cols, p, 18), tradeName: field(cols, p, 19), l2: field(cols, p, 20), l3: field(cols, p, 21), l4Number: field(cols, p, 22),
    l4NumberExt: field(cols, p, 23), l4StreetType: field(cols, p, 24), l4Street: field(cols, p, 25), l5: field(cols, p, 26), l6: field(cols, p, 27),
    postalCode: field(cols, p, 28), department: field(cols, p, 29), country: field(cols, p, 30),
    // Derived by completeEntry (national, never on the liste rouge, not sorted).
    source: 'national', type: 'PER', ppKey: '', stKey: '', kind: 'Practitioner', sortKey: '', listeRouge: false, description: '', ownerUserId: null,
  };
  const reason = completeEntry(e);
  if (reason) return { ok: false, reason };
  // The line itself is the stored form when its columns are in the published order, untrimmed
  // and the type already upper case (the usual case): no need to join 31 fields again.
  if (identity && cols.length === n && !trimmed && e.balType === cols[0]) e.line = line;
  return { ok: true, entry: e };
}

/**
 * Validates an entry's fields (TRE_R257 rules) and derives its type and keys, in place; returns
 * why it is rejected, or undefined.
 */
function completeEntry(e: DirectoryEntry): string | undefined {
  const type = e.balType.toUpperCase() as MailboxType;
  if (!MAILBOX_TYPES.includes(type)) return `unknown Type de BAL ${JSON.stringify(e.balType)} (expected PER, ORG, APP or CAB)`;
  if (!e.address) return 'empty Adresse BAL';
  if (!isValidAddress(e.address)) return `Adresse BAL ${JSON.stringify(e.address.slice(0, 80))} is not a mail address`;
  const ppKey = safeKey(e.ppNatId || (e.ppId ? e.ppIdType + e.ppId : ''));
  const stKey = safeKey(e.stId);
  // TRE_R257-TypeBAL (ANS NOS): PER and CAB belong to a professional, ORG and APP to a structure.
  if ((type === 'PER' || type === 'CAB') && !ppKey) return `a ${type} mailbox without Identifiant PP`;
  if ((type === 'ORG' || type === 'APP') && !stKey) return `an ${type} mailbox without Identification Structure`;
  e.balType = type;
  e.type = type;
  e.ppKey = ppKey;
  e.stKey = stKey;
  e.kind = resourceKindOf(type, !!stKey);
  return undefined;
}

/** Validates fields (TRE_R257 rules) and derives the keys of an entry. */
export function entryFromFields(f: ExtractionFields, source: 'national' | 'local', extra?: { listeRouge?: boolean; description?: string; ownerUserId?: number | null }): LineResult {
  const entry: DirectoryEntry = {
    balType: f.balType, address: f.address, ppIdType: f.ppIdType, ppId: f.ppId, ppNatId: f.ppNatId, stIdType: f.stIdType, stId: f.stId,
    service: f.service, civility: f.civility, family: f.family, given: f.given, categoryCode: f.categoryCode,
    categoryLabel: f.categoryLabel, professionCode: f.professionCode, professionLabel: f.professionLabel,
    specialityCode: f.specialityCode, specialityLabel: f.specialityLabel, digitization: f.digitization, legalName: f.legalName,
    tradeName: f.tradeName, l2: f.l2, l3: f.l3, l4Number: f.l4Number, l4NumberExt: f.l4NumberExt, l4StreetType: f.l4StreetType,
    l4Street: f.l4Street, l5: f.l5, l6: f.l6, postalCode: f.postalCode, department: f.department, country: f.country,
    source,
    type: 'PER', // type, keys and kind: completeEntry
    ppKey: '',
    stKey: '',
    kind: 'Practitioner',
    sortKey: '',
    listeRouge: extra?.listeRouge ?? false,
    description: extra?.description ?? '',
    ownerUserId: extra?.ownerUserId ?? null,
  };
  const reason = completeEntry(entry);
  if (reason) return { ok: false, reason };
  // Only our own mailboxes are sorted by it (in memory); national entries keep the extraction order.
  if (source === 'local') entry.sortKey = entrySortKey(entry);
  return { ok: true, entry };
}

export function entrySortKey(e: DirectoryEntry): string {
  const person = e.family || e.given;
  return (person ? sortKey(e.family, e.given) : sortKey(e.tradeName || e.legalName, e.service)) + ' ' + e.address.toLowerCase();
}

// ---- reading the file ------------------------------------------------------------------------

export interface LineSink {
  /**
   * Called for each line (without its end), with its 1-based number and its UTF-8 bytes (valid
   * during the call only). Synchronous: the reader waits.
   */
  line(text: string, lineNo: number, bytes: Uint8Array): void;
}

export interface ReadProgress {
  bytesRead: number;
  totalBytes: number;
}

const EXTRACTION_NAME = /(^|\/)Extraction_Correspondance_MSSante[^/]*\.txt$/i;

/**
 * Streams the lines of an extraction (.txt, or the .zip that carries it) with constant memory:
 * chunks are decoded as UTF-8 (a sequence split across chunks is kept whole) and split at LF,
 * a CR before it removed. `onProgress` is called per chunk with the bytes of FILE read so far.
 */
export async function readExtractionLines(
  file: string,
  sink: LineSink,
  onProgress?: (p: ReadProgress) => void,
  afterChunk?: () => Promise<void>,
): Promise<{ entryName?: string }> {
  let totalBytes: number;
  try {
    totalBytes = statSync(file).size;
  } catch (e: any) {
    throw new ExtractionError(`cannot read ${file}: ${e.code ?? e.message}. Check the path.`);
  }
  const splitter = new LineSplitter(sink);
  let bytesRead = 0;
  const isZip = await sniffZip(file);
  if (!isZip) {
    const fd = createReadStream(file, { highWaterMark: 1 << 20 });
    for await (const chunk of fd as AsyncIterable<Buffer>) {
      bytesRead += chunk.length;
      splitter.push(chunk);
      onProgress?.({ bytesRead, totalBytes });
      if (afterChunk) await afterChunk();
    }
    splitter.end();
    return {};
  }
  // ZIP (APPNOTE.TXT §4.3): entries are streamed in order. The extraction is the entry named
  // Extraction_Correspondance_MSSante_*.txt, or else the only .txt entry (found on a second pass).
  const first = await readZipEntry(file, (name) => EXTRACTION_NAME.test(name), splitter, totalBytes, onProgress, afterChunk);
  if (first.chosen) return { entryName: first.chosen };
  const txt = first.names.filter((n) => /\.txt$/i.test(n));
  if (txt.length === 1) {
    const second = await readZipEntry(file, (name) => name === txt[0], splitter, totalBytes, onProgress, afterChunk);
    if (second.chosen) return { entryName: second.chosen };
  }
  throw new ExtractionError(
    `${file} is a ZIP without an extraction entry (entries: ${first.names.slice(0, 5).join(', ') || 'none'}). Expected Extraction_Correspondance_MSSante_*.txt inside.`,
  );
}

/** Compressed bytes read at a time from a ZIP (~6 times as much text once inflated). */
const ZIP_READ = 256 << 10;

async function readZipEntry(
  file: string,
  wanted: (name: string) => boolean,
  splitter: LineSplitter,
  totalBytes: number,
  onProgress?: (p: ReadProgress) => void,
  afterChunk?: () => Promise<void>,
): Promise<{ chosen?: string; names: string[] }> {
  const fd = createReadStream(file, { highWaterMark: ZIP_READ });
  let bytesRead = 0;
  let chosen: string | undefined;
  let done = false;
  let failure: Error | undefined;
  const names: string[] = [];
  // Deflate (APPNOTE.TXT §4.4.5, method 8) by Node's zlib (native, on libuv's thread pool)
  // rather than fflate's JavaScript inflater: fflate still reads the ZIP's structure and hands
  // the entry's compressed bytes to this decoder.
  let inflater: InflateRaw | undefined;
  /** Writes the inflater has not finished yet, and who waits for none to be left. */
  let pendingWrites = 0;
  let idle: (() => void) | undefined;
  const written = () => {
    if (--pendingWrites === 0) idle?.();
  };
  class NodeInflate implements UnzipDecoder {
    static compression = 8;
    ondata!: AsyncFlateStreamHandler;
    private readonly z = createInflateRaw({ chunkSize: 128 << 10 });
    constructor() {
      inflater = this.z;
      this.z.on('data', (d: Buffer) => this.ondata(null, d as Uint8Array<ArrayBuffer>, false));
      this.z.on('end', () => this.ondata(null, new Uint8Array(0), true));
      this.z.on('error', (e) => this.ondata(e as any, null as any, true));
      this.z.on('close', () => idle?.());
    }
    push(data: Uint8Array, final: boolean) {
      if (data.length) {
        pendingWrites++;
        this.z.write(data, written);
      }
      if (final) this.z.end();
    }
    terminate() {
      this.z.destroy();
    }
  }
  const unzip = new Unzip((f) => {
    names.push(f.name);
    if (chosen || !wanted(f.name)) return;
    if (f.compression !== 0 && f.compression !== 8) {
      failure = new ExtractionError(`${file}: entry ${f.name} uses ZIP compression method ${f.compression}; only stored and deflate are supported`);
      return;
    }
    chosen = f.name;
    f.ondata = (err, data, final) => {
      if (failure) return;
      if (err) {
        failure = new ExtractionError(`${file}: entry ${f.name} is corrupt (${err.message}). Download the ZIP again.`);
        return;
      }
      try {
        splitter.push(data);
        if (final) {
          splitter.end();
          done = true;
        }
      } catch (e: any) {
        failure = e;
        inflater?.destroy();
      }
    };
    f.start();
  });
  unzip.register(NodeInflate);
  unzip.register(UnzipPassThrough);
  /** Waits until the inflater has consumed what it was given (its output handed to the splitter). */
  const inflated = async () => {
    if (!inflater || inflater.destroyed || pendingWrites === 0) return;
    await new Promise<void>((resolve) => (idle = resolve));
    idle = undefined;
  };
  try {
    for await (const chunk of fd as AsyncIterable<Buffer>) {
      bytesRead += chunk.length;
      try {
        unzip.push(chunk);
      } catch (e: any) {
        failure ??= new ExtractionError(`${file} is not a readable ZIP (${e.message}). Download it again.`);
      }
      await inflated();
      if (failure) throw failure;
      onProgress?.({ bytesRead, totalBytes });
      if (done) break;
      if (afterChunk) await afterChunk();
    }
    if (!done && !failure) {
      try {
        unzip.push(new Uint8Array(0), true);
      } catch (e: any) {
        failure = new ExtractionError(`${file} is not a readable ZIP (${e.message}). Download it again.`);
      }
    }
    // The inflater's last output (or its error) comes after its input ended.
    const z = inflater;
    if (z && chosen && !done && !failure && z.writableEnded && !z.destroyed) await Promise.race([once(z, 'end'), once(z, 'close'), once(z, 'error').catch(() => {})]);
    if (failure) throw failure;
    if (chosen && !done) throw new ExtractionError(`${file}: the ZIP ends before the end of ${chosen} (truncated download?). Download it again.`);
    return { chosen, names };
  } finally {
    fd.destroy();
    inflater?.destroy();
  }
}

async function sniffZip(file: string): Promise<boolean> {
  const { open } = await import('node:fs/promises');
  const h = await open(file, 'r');
  try {
    const b = Buffer.alloc(4);
    await h.read(b, 0, 4, 0);
    return b.readUInt32LE(0) === 0x04034b50; // local file header signature
  } finally {
    await h.close();
  }
}

/**
 * Splits the bytes at LF (a byte that never occurs inside a UTF-8 sequence), removes a trailing
 * CR and a leading BOM, and decodes each line on its own: no string is made of a whole chunk
 * (which one character beyond Latin-1 would make two bytes per character throughout), and the
 * sink gets the line's bytes too (stored as they are when the line is).
 */
class LineSplitter {
  /** The start of a line cut at the end of the previous chunk (a copy). */
  private carry: Buffer | undefined;
  private lineNo = 0;
  constructor(private readonly sink: LineSink) {}

  push(chunk: Uint8Array) {
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    let start = 0;
    if (this.carry) {
      const nl = buf.indexOf(10);
      if (nl < 0) {
        this.carry = Buffer.concat([this.carry, buf]);
        return;
      }
      const line = Buffer.concat([this.carry, buf.subarray(0, nl)]);
      this.carry = undefined;
      this.emit(line, 0, line.length);
      start = nl + 1;
    }
    for (;;) {
      const nl = buf.indexOf(10, start);
      if (nl < 0) break;
      this.emit(buf, start, nl);
      start = nl + 1;
    }
    // A copy: the chunk's memory is not ours to keep.
    if (start < buf.length) this.carry = Buffer.from(buf.subarray(start));
  }

  end() {
    const last = this.carry;
    this.carry = undefined;
    if (last?.length) this.emit(last, 0, last.length);
  }

  private emit(buf: Buffer, start: number, end: number) {
    this.lineNo++;
    if (end > start && buf[end - 1] === 13) end--;
    if (this.lineNo === 1 && end - start >= 3 && buf[start] === 0xef && buf[start + 1] === 0xbb && buf[start + 2] === 0xbf) start += 3;
    this.sink.line(buf.toString('utf8', start, end), this.lineNo, buf.subarray(start, end));
  }
}
