// Safe unzip for XDM packages, on fflate. Two passes:
//  1. the central directory (fflate `unzipSync` with a filter that inflates nothing) gives every
//     entry's name, method and declared sizes: entry count, per-entry and total declared size,
//     compression ratio and names (traversal, absolute paths, drive letters, NUL) are checked
//     before one byte is inflated;
//  2. the entries are inflated with fflate's streaming `Unzip` fed in small chunks, counting the
//     bytes each entry really produces: an entry producing more than it declared (or than the
//     limits) stops the run at once, so a lying header cannot make us inflate a bomb.
// Errors are XdmError with a precise message; nothing here throws anything else.
import { Unzip, UnzipInflate, unzipSync } from 'fflate';
import { XdmError } from './errors.js';

export interface ZipLimits {
  /** Most entries in the archive (central directory). */
  maxEntries: number;
  /** Most uncompressed bytes of one entry. */
  maxEntryBytes: number;
  /** Most uncompressed bytes of all entries together. */
  maxTotalBytes: number;
  /** Highest uncompressed/compressed ratio of an entry larger than `ratioFloorBytes`. */
  maxRatio: number;
  /** Entries up to this uncompressed size are not held to `maxRatio` (tiny files compress well). */
  ratioFloorBytes: number;
}

export const DEFAULT_ZIP_LIMITS: ZipLimits = {
  maxEntries: 1000,
  maxEntryBytes: 64 * 1024 * 1024,
  maxTotalBytes: 128 * 1024 * 1024,
  maxRatio: 200,
  ratioFloorBytes: 256 * 1024,
};

export interface ZipEntry {
  /** The name as stored in the archive. */
  rawName: string;
  /** Normalised: '/' separators, no leading './', no trailing '/'. */
  name: string;
  /** Directory entry (name ends with '/'). */
  directory: boolean;
  bytes: Uint8Array;
}

export interface ZipWarning {
  place: string;
  message: string;
}

/** Feeding chunk: bounds what one inflate step can produce (deflate tops out near 1032:1, so 16 MiB) before the count is checked. */
const CHUNK = 16384;

/** Normalises an entry name or throws XdmError('unsafe-path'). Backslashes are reported. */
export function normaliseEntryName(raw: string, warnings: ZipWarning[]): string {
  if (raw.includes('\0')) throw new XdmError('unsafe-path', `entry name ${JSON.stringify(raw)} contains a NUL byte`);
  let name = raw;
  if (name.includes('\\')) {
    warnings.push({ place: raw, message: 'backslashes in the entry name (read as /; APPNOTE 4.4.17 requires /)' });
    name = name.replace(/\\/g, '/');
  }
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw new XdmError('unsafe-path', `entry ${JSON.stringify(raw)} has an absolute path`);
  const parts = name.split('/').filter((p, i, all) => p !== '' || i === all.length - 1);
  if (parts.some((p) => p === '..')) throw new XdmError('unsafe-path', `entry ${JSON.stringify(raw)} leaves the archive (a .. path segment)`);
  const normalised = parts.filter((p) => p !== '.' && p !== '').join('/');
  // Checked again once "." segments are gone: "./C:x" would otherwise come out as the drive-relative "C:x".
  if (/^[A-Za-z]:/.test(normalised)) throw new XdmError('unsafe-path', `entry ${JSON.stringify(raw)} has an absolute path`);
  return normalised;
}

/** Lists and inflates a zip archive under `limits`. */
export function safeUnzip(zip: Uint8Array, limits: ZipLimits, warnings: ZipWarning[]): ZipEntry[] {
  interface Declared {
    rawName: string;
    size: number;
    originalSize: number;
    compression: number;
  }
  const declared: Declared[] = [];
  try {
    unzipSync(zip, {
      filter(f) {
        if (declared.length >= limits.maxEntries) throw new XdmError('too-many-entries', `the archive has more than ${limits.maxEntries} entries`);
        declared.push({ rawName: f.name, size: f.size, originalSize: f.originalSize, compression: f.compression });
        return false;
      },
    });
  } catch (e) {
    if (e instanceof XdmError) throw e;
    throw new XdmError('not-a-zip', `not a readable zip archive: ${(e as Error).message}`);
  }
  if (declared.length === 0) throw new XdmError('not-a-zip', 'the zip archive is empty');

  const byRaw = new Map<string, Declared>();
  const names = new Set<string>();
  let total = 0;
  for (const d of declared) {
    const name = normaliseEntryName(d.rawName, warnings);
    if (byRaw.has(d.rawName) || (name !== '' && names.has(name.toUpperCase())))
      throw new XdmError('duplicate-entry', `the archive holds ${JSON.stringify(d.rawName)} twice`);
    byRaw.set(d.rawName, d);
    names.add(name.toUpperCase());
    if (d.compression !== 0 && d.compression !== 8)
      throw new XdmError('unsupported-compression', `entry ${JSON.stringify(d.rawName)} uses compression method ${d.compression} (only stored and deflate are read)`);
    if (d.originalSize > limits.maxEntryBytes)
      throw new XdmError('entry-too-large', `entry ${JSON.stringify(d.rawName)} declares ${d.originalSize} bytes uncompressed, above the limit of ${limits.maxEntryBytes}`);
    total += d.originalSize;
    if (total > limits.maxTotalBytes) throw new XdmError('archive-too-large', `the entries declare more than ${limits.maxTotalBytes} bytes uncompressed in all`);
    if (d.originalSize > limits.ratioFloorBytes && d.originalSize / Math.max(1, d.size) > limits.maxRatio)
      throw new XdmError('compression-ratio', `entry ${JSON.stringify(d.rawName)} declares a compression ratio of ${Math.round(d.originalSize / Math.max(1, d.size))}:1, above ${limits.maxRatio}:1 (zip bomb)`);
    if (d.compression === 0 && d.size !== d.originalSize)
      throw new XdmError('size-mismatch', `stored entry ${JSON.stringify(d.rawName)} declares ${d.size} bytes compressed and ${d.originalSize} uncompressed`);
  }

  // Pass 2: inflate, counting.
  const out = new Map<string, Uint8Array>();
  let produced = 0;
  let failure: XdmError | undefined;
  const stop = (e: XdmError): never => {
    failure ??= e;
    throw e;
  };
  const unzip = new Unzip((file) => {
    const d = byRaw.get(file.name);
    if (!d) {
      warnings.push({ place: file.name, message: 'a local entry missing from the central directory: ignored' });
      file.ondata = () => {};
      return;
    }
    if (out.has(file.name)) stop(new XdmError('duplicate-entry', `the archive holds ${JSON.stringify(file.name)} twice`));
    const chunks: Uint8Array[] = [];
    let n = 0;
    file.ondata = (err, data, final) => {
      if (failure) throw failure;
      if (err) stop(new XdmError('corrupt-entry', `entry ${JSON.stringify(file.name)} cannot be inflated: ${err.message}`));
      n += data.length;
      produced += data.length;
      if (n > d.originalSize)
        stop(new XdmError('size-mismatch', `entry ${JSON.stringify(file.name)} inflates to more than the ${d.originalSize} bytes it declares`));
      if (produced > limits.maxTotalBytes) stop(new XdmError('archive-too-large', `the entries inflate to more than ${limits.maxTotalBytes} bytes in all`));
      if (data.length) chunks.push(data);
      if (final) {
        if (n !== d.originalSize) stop(new XdmError('size-mismatch', `entry ${JSON.stringify(file.name)} inflates to ${n} bytes, not the ${d.originalSize} it declares`));
        out.set(file.name, concat(chunks, n));
      }
    };
    file.start();
  });
  unzip.register(UnzipInflate);
  try {
    for (let i = 0; i < zip.length; i += CHUNK) unzip.push(zip.subarray(i, Math.min(zip.length, i + CHUNK)), i + CHUNK >= zip.length);
  } catch (e) {
    if (failure) throw failure;
    if (e instanceof XdmError) throw e;
    throw new XdmError('corrupt-entry', `the zip archive cannot be read: ${(e as Error).message}`);
  }
  if (failure) throw failure;

  const entries: ZipEntry[] = [];
  for (const d of declared) {
    const directory = d.rawName.endsWith('/') || d.rawName.endsWith('\\');
    const bytes = out.get(d.rawName);
    if (!bytes && !(directory && d.originalSize === 0)) {
      if (d.originalSize === 0) {
        entries.push({ rawName: d.rawName, name: normaliseEntryName(d.rawName, []), directory, bytes: new Uint8Array(0) });
        continue;
      }
      throw new XdmError('corrupt-entry', `entry ${JSON.stringify(d.rawName)} is listed in the central directory but its data cannot be found`);
    }
    entries.push({ rawName: d.rawName, name: normaliseEntryName(d.rawName, []), directory, bytes: bytes ?? new Uint8Array(0) });
  }
  return entries;
}

function concat(chunks: Uint8Array[], n: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const b = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    b.set(c, at);
    at += c.length;
  }
  return b;
}
