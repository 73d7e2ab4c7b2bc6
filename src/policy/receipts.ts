// Incoming receipts: the reader Core calls on each local delivery (Core.reportReader) so that a
// DSN (RFC 3464) or an MDN (RFC 8098) reaching a sender's mailbox updates the tracking of the
// message it reports on, in the delivery's own transaction (docs/receipts.md).
import type { MessageFiles } from '../store/message-files.js';
import type { IncomingReport } from '../store/types.js';
import { parseReport, REPORT_READ_LIMIT, reportType } from '../mime/report.js';
import { headerBlock } from './absence.js';

/** Enough for any header block; a report's header is small. */
const HEADER_READ_LIMIT = 64 * 1024;

async function readPrefix(blobs: MessageFiles, blobId: string, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of blobs.stream(blobId, { start: 0, end: limit - 1 })) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * A reader of the reports in stored messages: the header is read first, and only a
 * multipart/report (RFC 6522) is read further — its first REPORT_READ_LIMIT octets, where the
 * report's fields are (mime/report.ts).
 */
/** The reports in a message whose bytes the caller holds (the MX at intake): as reportReader reads them. */
export function reportsIn(raw: Buffer): IncomingReport[] {
  if (!reportType(headerBlock(raw.subarray(0, HEADER_READ_LIMIT)))) return [];
  const report = parseReport(raw.subarray(0, REPORT_READ_LIMIT));
  return report ? [report] : [];
}

export function reportReader(blobs: MessageFiles): (blobId: string) => Promise<IncomingReport[]> {
  return async (blobId) => {
    if (!reportType(headerBlock(await readPrefix(blobs, blobId, HEADER_READ_LIMIT)))) return [];
    const report = parseReport(await readPrefix(blobs, blobId, REPORT_READ_LIMIT));
    return report ? [report] : [];
  };
}
