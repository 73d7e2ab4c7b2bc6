// `caducee directory import FILE`: streams the national extraction into a new snapshot and
// switches to it atomically (store/directory). Constant memory: one line at a time, the
// store's page cache bounded; a failure at any point leaves the previous snapshot in force.
import type { SnapshotInfo, SnapshotWriter, Rejection } from '../store/directory/types.js';
import { ExtractionError, parseHeader, parseLine, readExtractionLines, type HeaderMap, type ReadProgress } from './extraction.js';

export interface ImportOptions {
  file: string;
  writer: SnapshotWriter;
  /** Called per chunk read (bytes of the file) and at each finishing phase. */
  onProgress?: (p: ReadProgress & { lines: number; phase: string }) => void;
}

export interface ImportSummary extends SnapshotInfo {
  /** Columns of the published format the header lacked (filled empty). */
  missingColumns: string[];
  /** Header columns we do not know (ignored). */
  unknownColumns: string[];
}

const KEEP_REJECTIONS = 1000;

export async function importExtraction(o: ImportOptions): Promise<ImportSummary> {
  let header: HeaderMap | undefined;
  let linesRead = 0;
  let rejected = 0;
  const rejections: Rejection[] = [];
  let lastProgress: ReadProgress = { bytesRead: 0, totalBytes: 0 };
  try {
    const { entryName } = await readExtractionLines(
      o.file,
      {
        line(text, lineNo, bytes) {
          if (!header) {
            header = parseHeader(text);
            return;
          }
          if (text.trim() === '') return; // blank lines (e.g. at the end) are not data
          linesRead++;
          const r = parseLine(text, header);
          if (r.ok) {
            // The line is the stored form: its bytes are copied as they are (not encoded again).
            if (r.entry.line === text) r.entry.lineBytes = bytes;
            o.writer.add(r.entry, lineNo);
          }
          else {
            rejected++;
            if (rejections.length < KEEP_REJECTIONS) rejections.push({ line: lineNo, reason: r.reason });
          }
        },
      },
      (p) => {
        lastProgress = p;
        o.onProgress?.({ ...p, lines: linesRead, phase: 'reading' });
      },
      o.writer.drain ? () => o.writer.drain!() : undefined,
    );
    if (!header) throw new ExtractionError(`${o.file} is empty: expected a header line then one line per mailbox`);
    const info = await o.writer.commit(
      { source: o.file, sourceEntry: entryName ?? null, linesRead, rejected, rejections },
      (phase) => o.onProgress?.({ ...lastProgress, lines: linesRead, phase }),
    );
    return { ...info, missingColumns: header.missing, unknownColumns: header.unknown };
  } catch (e) {
    await o.writer.abort();
    throw e;
  }
}

/** A one-line progress bar for a terminal (stderr), quiet otherwise. */
export function progressBar(stream: NodeJS.WriteStream = process.stderr) {
  if (!stream.isTTY) return { update: () => {}, done: () => {} };
  let last = 0;
  let shown = false;
  return {
    update(p: ReadProgress & { lines: number; phase: string }) {
      const now = Date.now();
      if (now - last < 100 && p.phase === 'reading') return;
      last = now;
      const ratio = p.totalBytes ? Math.min(1, p.bytesRead / p.totalBytes) : 0;
      const width = 30;
      const filled = Math.round(ratio * width);
      const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
      const text = p.phase === 'reading' ? `${bar} ${(ratio * 100).toFixed(0).padStart(3)}%  ${p.lines.toLocaleString('en-US')} lines` : `${bar} ${p.phase}…`;
      stream.write(`\r\x1b[2K${text}`);
      shown = true;
    },
    done() {
      if (shown) stream.write('\r\x1b[2K');
    },
  };
}
