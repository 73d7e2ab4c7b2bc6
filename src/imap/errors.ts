// The tagged NO and BAD replies (RFC 9051 §7.1): one error type carrying the status and the
// response code (RFC 5530), thrown by command handlers and written by the dispatcher.

export class ImapError extends Error {
  override name = 'ImapError';
  constructor(
    readonly status: 'NO' | 'BAD',
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }

  /** The tagged response: `tag STATUS [CODE] text`. */
  response(tag: string): string {
    return `${tag} ${this.status} ${this.code ? `[${this.code}] ` : ''}${this.message}\r\n`;
  }
}

/** RFC 9051 §7.1.2 NO: the command was understood and refused. */
export function no(code: string | undefined, message: string): ImapError {
  return new ImapError('NO', message, code);
}

/** RFC 9051 §7.1.3 BAD: the command is wrong (syntax, state, arguments). */
export function bad(code: string | undefined, message: string): ImapError {
  return new ImapError('BAD', message, code);
}
