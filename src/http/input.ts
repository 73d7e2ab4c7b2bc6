// Request input of the mail API: one way to refuse it (400 problem+json, code invalid-request,
// a French detail naming the field) and one way to validate a body against its zod schema.
import type { z } from 'zod';
import { AuthProblem } from './session.js';

export const invalid = (detail: string, field?: string) => new AuthProblem(400, 'invalid-request', detail, field ? { field } : {});

/** The body as `schema` describes it, or a 400 naming the first wrong field (`what`: the French name of the object). */
export function parse<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const r = schema.safeParse(body);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.join('.');
    throw invalid(`${what} invalide${field ? ` (champ « ${field} »)` : ''} : ${issue.message}`, field || undefined);
  }
  return r.data;
}
