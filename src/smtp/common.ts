// Shared pieces of the MX and submission servers built on smtp-server.
import { isIPv6 } from 'node:net';
import { PassThrough, pipeline, Transform, type Readable } from 'node:stream';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { rfc5322Date } from '../mime/date.js';
import { BlobSizeExceededError } from '../store/message-files.js';

const ENHANCED_PREFIX = /^[245]\.\d{1,3}\.\d{1,3} /;

// smtp-server announces ENHANCEDSTATUSCODES (RFC 2034) but derives the enhanced code from the
// reply code alone (every 550 becomes 5.1.1). Our refusals carry their own precise code at the
// start of the message ("5.7.1 ..."): for those, tell the library not to add another one.
let patched = false;
export function installEnhancedStatusPatch(): void {
  if (patched) return;
  patched = true;
  const proto = (SMTPConnection as any).prototype;
  const send = proto.send;
  proto.send = function (code: number, data: unknown, context?: unknown) {
    if (typeof data === 'string' && ENHANCED_PREFIX.test(data)) return send.call(this, code, data, false);
    return send.call(this, code, data, context);
  };
  // RFC 5321 §4.1.2: smtp-server refuses a control character in a MAIL FROM / RCPT TO path with
  // a bare "Bad ... address syntax"; say which character and where (envelopeAddressRefusal).
  for (const [handler, role] of [
    ['handler_MAIL', 'sender'],
    ['handler_RCPT', 'recipient'],
  ] as const) {
    const original = proto[handler];
    proto[handler] = function (this: { send(code: number, data: string, context?: unknown): void }, command: Buffer | string, callback: () => void) {
      const path = /<([^<>]*)>/.exec(String(command ?? ''))?.[1];
      const refusal = path === undefined ? null : envelopeAddressRefusal(path, role);
      if (!refusal) return original.call(this, command, callback);
      this.send(refusal.responseCode, refusal.message);
      callback();
    };
  }
}

export interface SmtpError extends Error {
  responseCode: number;
}

/** An error smtp-server turns into the reply `code enhanced message` (RFC 3463 code first). */
export function smtpError(code: number, enhanced: string, message: string): SmtpError {
  const e = new Error(`${enhanced} ${message}`) as SmtpError;
  e.responseCode = code;
  return e;
}

/**
 * Builds a Received trace header (RFC 5321 §4.4) with the TLS details (RFC 8314 §7 style
 * comment). The client certificate subject is recorded for trust-space sessions.
 */
export function receivedHeader(o: {
  helo: string;
  remoteAddress: string;
  by: string;
  protocol: 'ESMTPS' | 'ESMTPSA';
  tls?: { version?: string; name?: string } | null;
  peerDn?: string;
  id: string;
  forAddress?: string;
  date?: Date;
}): string {
  const tlsComment = o.tls?.name ? ` (using ${o.tls.version ?? 'TLS'} with cipher ${o.tls.name}${o.peerDn ? `; client certificate ${o.peerDn.replace(/[()\\]/g, '')}` : ''})` : '';
  const from = `from ${sanitize(o.helo)} (${addressLiteral(o.remoteAddress)})`;
  const forPart = o.forAddress ? `\r\n\tfor <${o.forAddress}>` : '';
  return `Received: ${from}\r\n\tby ${o.by} (Caducée) with ${o.protocol} id ${o.id}${tlsComment}${forPart};\r\n\t${rfc5322Date(o.date)}\r\n`;
}

/** RFC 5321 §4.1.3 address literal: [192.0.2.1], [IPv6:2001:db8::1]; IPv4-mapped IPv6 as IPv4. */
function addressLiteral(address: string): string {
  const a = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  return isIPv6(a) ? `[IPv6:${a}]` : `[${a}]`;
}

function sanitize(s: string): string {
  return (s || 'unknown').replace(/[^\x21-\x7e]/g, '?').slice(0, 255);
}

/**
 * Splits a message stream into its header block (up to and including the empty line, RFC 5322
 * §2.1) and a stream of the rest, without reading the body into memory.
 */
export async function splitHeader(source: Readable, maxHeaderBytes = 1024 * 1024): Promise<{ header: Buffer; body: Readable; tooLarge: boolean }> {
  const body = new PassThrough();
  let buf = Buffer.alloc(0);
  let done = false;
  return new Promise((resolve, reject) => {
    const finish = (header: Buffer, rest: Buffer, tooLarge: boolean) => {
      done = true;
      if (rest.length) body.write(rest);
      resolve({ header, body, tooLarge });
    };
    const splitter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        if (done) return cb(null, chunk);
        buf = Buffer.concat([buf, chunk]);
        let idx = buf.indexOf('\r\n\r\n');
        let sepLen = 4;
        if (buf.subarray(0, 2).toString() === '\r\n') (idx = 0), (sepLen = 2); // no header at all
        // The limit holds however the stream is chunked: a separator found past it is too late.
        if (idx >= 0 && idx + sepLen <= maxHeaderBytes) {
          finish(buf.subarray(0, idx + sepLen), Buffer.alloc(0), false);
          const rest = buf.subarray(idx + sepLen);
          buf = Buffer.alloc(0);
          return cb(null, rest);
        }
        if (buf.length > maxHeaderBytes) {
          finish(Buffer.alloc(0), Buffer.alloc(0), true);
          const all = buf;
          buf = Buffer.alloc(0);
          return cb(null, all);
        }
        cb();
      },
      flush(cb) {
        if (!done) {
          // Header only, no body: the whole message is header.
          const h = buf.length && !buf.subarray(-2).equals(Buffer.from('\r\n')) ? Buffer.concat([buf, Buffer.from('\r\n')]) : buf;
          finish(h, Buffer.alloc(0), false);
        }
        cb();
      },
    });
    // pipeline, not pipe: when the client goes away mid-DATA, smtp-server destroys the source and
    // the error must reach the body's reader (MessageFiles.put then closes and removes its temporary
    // file) instead of leaving it waiting forever. Readers see the error through iteration or
    // `finished`; the listener below only keeps a reader that merely drains (resume) from
    // turning it into an uncaught exception.
    body.on('error', () => {});
    pipeline(source, splitter, body, (err) => {
      if (err && !done) reject(err);
    });
  });
}

/** Consumes what is left of a DATA stream so the SMTP reply can be sent (RFC 5321 §4.1.1.4). */
export function drain(stream: Readable): Promise<void> {
  if (stream.readableEnded || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('end', resolve);
    stream.once('error', () => resolve());
    stream.resume();
  });
}

/**
 * Answers the end of DATA after a failure: drains the stream, then a precise reply; nothing
 * was committed (the blob, if written, is unreferenced).
 */
export function replyDataFailure(
  stream: Readable,
  e: any,
  maxMessageSize: number,
  cb: (err?: Error | null) => void,
  onUnexpected: (e: unknown) => void,
): void {
  drain(stream).then(() => {
    if (e?.name === 'BlobSizeExceededError') return cb(smtpError(552, '5.3.4', `message too big: the limit is ${maxMessageSize} bytes`));
    if (e?.responseCode) return cb(e);
    onUnexpected(e);
    cb(smtpError(451, '4.3.0', 'temporary failure storing the message, nothing was stored; try again later'));
  });
}

/**
 * The message as the store will keep it — `prefix` (the Received: field) then the content — in
 * one Buffer, so the stored bytes are analysed without reading the file back and written in one
 * go. Beyond `maxSize` bytes the rest is drained (the protocol layer can then answer cleanly,
 * RFC 1870 §6.3: 552) and BlobSizeExceededError is thrown, as MessageFiles.put() does.
 */
export async function messageBytes(source: Readable, prefix: Buffer, maxSize: number): Promise<Buffer> {
  const chunks: Buffer[] = [prefix];
  let size = prefix.length;
  for await (const chunk of source) {
    size += (chunk as Buffer).length;
    if (size <= maxSize) chunks.push(chunk as Buffer);
  }
  if (size > maxSize) throw new BlobSizeExceededError(maxSize);
  return Buffer.concat(chunks, size);
}

export { SMTPServer };

const CRLF = Buffer.from('\r\n');

/**
 * Message content with every bare LF turned into CRLF, as Postfix 3.9's default
 * `smtpd_forbid_bare_newline = normalize` does (postconf(5)): "allow command or message
 * content lines ending in the non-standard <LF>, and process them as if the client sent the
 * standard <CR><LF>". RFC 5321 §2.3.8: lines end with CRLF only. smtp-server already requires
 * the standard end of data <CR><LF>.<CR><LF> (a "<LF>.<CR><LF>" stays content), and splits
 * command lines on CRLF or bare LF alike, which is the same normalization for commands.
 * The stored message is thus in canonical form, and a peer reading it later cannot find a
 * different line structure in it than we did (SMTP smuggling, CVE-2023-51764 class).
 */
export class BareLfToCrlf extends Transform {
  private lastWasCr = false;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    const parts: Buffer[] = [];
    let start = 0;
    for (let i = chunk.indexOf(0x0a); i >= 0; i = chunk.indexOf(0x0a, i + 1)) {
      const afterCr = i > 0 ? chunk[i - 1] === 0x0d : this.lastWasCr;
      if (afterCr) continue;
      parts.push(chunk.subarray(start, i), CRLF);
      start = i + 1;
    }
    if (chunk.length) this.lastWasCr = chunk[chunk.length - 1] === 0x0d;
    if (start === 0) return cb(null, chunk);
    parts.push(chunk.subarray(start));
    cb(null, Buffer.concat(parts));
  }
}

/** `stream` read through BareLfToCrlf; an error of `stream` ends the result with that error. */
export function normalizedLineEnds(stream: Readable): Readable {
  // pipeline: a client leaving mid-DATA (source destroyed, with or without an error) ends the
  // reader with an error instead of leaving it waiting.
  return pipeline(stream, new BareLfToCrlf(), () => {});
}

/**
 * RFC 5321 §4.1.2: a Mailbox holds no control character — atext (RFC 5322 §3.2.3) has none,
 * qtextSMTP is %d32-33 / %d35-91 / %d93-126 and quoted-pairSMTP %d92 %d32-126 — so NUL, the other
 * C0 controls and DEL are a syntax error in MAIL FROM and RCPT TO. smtp-server refuses them too;
 * stores cannot keep NUL in text (PostgreSQL), and no peer could be named with it. Reply 501
 * (RFC 5321 §4.2.2, syntax error in parameters) with X.1.7 for the sender and X.1.3 for a
 * recipient (RFC 3463 §3.2). smtp-server refuses such a path itself, tersely: the MX and
 * submission servers' patch (installEnhancedStatusPatch) answers with this reply first.
 */
export function envelopeAddressRefusal(address: string, role: 'sender' | 'recipient'): SmtpError | null {
  const at = address.search(/[\x00-\x1f\x7f]/);
  if (at < 0) return null;
  const code = address.charCodeAt(at);
  const what = code === 0 ? 'NUL' : code === 0x7f ? 'DEL' : `control character 0x${code.toString(16).padStart(2, '0')}`;
  return role === 'sender'
    ? smtpError(501, '5.1.7', `bad sender address syntax: ${what} at position ${at + 1} is not allowed in a mailbox (RFC 5321 section 4.1.2)`)
    : smtpError(501, '5.1.3', `bad recipient address syntax: ${what} at position ${at + 1} is not allowed in a mailbox (RFC 5321 section 4.1.2)`);
}

/**
 * RFC 6531 §3.4: a non-ASCII (UTF-8) mailbox may appear in MAIL FROM or RCPT TO only in a
 * transaction whose MAIL command carried the SMTPUTF8 parameter; otherwise RFC 6531 §3.5's
 * reply, 553 with X.6.7 "Non-ASCII addresses not permitted for that sender/recipient" (RFC 5248).
 * smtp-server accepts such addresses either way; the MX and submission servers call this first.
 */
export function smtpUtf8Refusal(address: string, session: { envelope: { smtpUtf8?: boolean } }): SmtpError | null {
  if (session.envelope.smtpUtf8 || /^[\x00-\x7f]*$/.test(address)) return null;
  return smtpError(553, '5.6.7', `non-ASCII address <${address}> without the SMTPUTF8 parameter on MAIL FROM (RFC 6531)`);
}
