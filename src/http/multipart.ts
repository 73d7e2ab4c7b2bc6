// multipart/form-data requests of the mail API (@fastify/multipart, RFC 7578): one JSON field
// describing the request and files beside it, read into memory under the operator's message
// size limit (413 problem+json with a French detail beyond it).
import type { FastifyRequest } from 'fastify';
import { AuthProblem } from './session.js';
import { invalid as invalidField } from './input.js';

export interface MultipartFile {
  filename: string;
  contentType: string;
  content: Buffer;
}

export interface MultipartLimits {
  /** The operator's message size: per file and for all files together. */
  maxBytes: number;
  files: number;
  fieldSize: number;
  /** French texts of the 413 answers: one file too large, all files too large. */
  fileTooLarge: string;
  totalTooLarge: string;
}

/**
 * Reads the parts: `field` (JSON, required) and the files. A missing or unreadable JSON field is
 * a 400 naming it (`what`: the French name of what it should hold).
 */
export async function readMultipart(req: FastifyRequest, field: string, what: string, l: MultipartLimits): Promise<{ json: unknown; files: MultipartFile[] }> {
  const invalid = (detail: string) => invalidField(detail, field);
  let json: unknown;
  let seen = false;
  const files: MultipartFile[] = [];
  let total = 0;
  for await (const part of req.parts({ limits: { fileSize: l.maxBytes, files: l.files, fields: 5, fieldSize: l.fieldSize } })) {
    if (part.type === 'file') {
      const content = await part.toBuffer().catch((e) => Promise.reject(e?.code === 'FST_REQ_FILE_TOO_LARGE' ? new AuthProblem(413, 'too-large', l.fileTooLarge) : e));
      total += content.length;
      if (total > l.maxBytes) throw new AuthProblem(413, 'too-large', l.totalTooLarge);
      files.push({ filename: part.filename || '', contentType: (part.mimetype || 'application/octet-stream').toLowerCase(), content });
    } else if (part.fieldname === field) {
      try {
        // @fastify/multipart already parses a field sent as application/json.
        json = typeof part.value === 'string' ? JSON.parse(part.value) : part.value;
        seen = true;
      } catch {
        throw invalid(`Le champ « ${field} » doit contenir ${what} en JSON.`);
      }
    }
  }
  if (!seen) throw invalid(`Le champ « ${field} » (${what} en JSON) manque.`);
  return { json, files };
}
