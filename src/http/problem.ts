// Error bodies: RFC 9457 problem details (JSON APIs) and FHIR OperationOutcome (FHIR routes).
import type { FastifyReply } from 'fastify';
import { FHIR_JSON, operationOutcome } from '../directory/fhir.js';

export const PROBLEM_JSON = 'application/problem+json';

/** An /api failure with its HTTP status (RFC 9457 problem details). */
export class HttpProblem extends Error {
  override name = 'HttpProblem';
  constructor(
    readonly status: number,
    readonly title: string,
    detail: string,
  ) {
    super(detail);
  }
}

export function sendProblem(reply: FastifyReply, status: number, title: string, detail: string, instance?: string) {
  return reply
    .code(status)
    .type(PROBLEM_JSON)
    .send({ type: 'about:blank', title, status, detail, ...(instance ? { instance } : {}) });
}

export function sendOutcome(reply: FastifyReply, status: number, code: string, diagnostics: string) {
  return reply.code(status).type(FHIR_JSON).send(operationOutcome(code, diagnostics));
}

