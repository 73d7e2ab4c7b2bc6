// Message submission (RFC 6409) for users: STARTTLS (587-style) and implicit TLS (465-style,
// RFC 8314). AUTH only over TLS, through the shared auth module; a user may send only as a
// mailbox they own or hold a send-on-behalf grant for; recipients outside the trust space are
// refused at RCPT.
import { finished } from 'node:stream/promises';
import { Headers } from '@zone-eu/mailsplit';
import type { Logger } from 'pino';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { SaslServer } from '../auth/sasl.js';
import { serverTlsOptions } from '../pki/tls-server.js';
import { peerCertificateChain } from '../trust/index.js';
import { installSaslMechanisms, type SmtpSaslOptions } from './sasl.js';
import type { Authenticator } from '../auth/index.js';
import { domainOf, type Core } from '../core/index.js';
import type { User } from '../model/index.js';
import { BlobSizeExceededError, type MessageFiles } from '../store/message-files.js';
import type { NewQueueItem } from '../store/types.js';
import type { TrustService } from '../trust/index.js';
import type { AbsenceResponder } from '../policy/absence-service.js';
import type { ContentPolicy } from '../policy/content-service.js';
import type { PatientPolicy } from '../policy/patient-service.js';
import { SubmissionPipeline, SubmissionRefusal, type AcceptedRecipient, type Submitter } from '../mail/submission.js';
import type { Metrics } from '../audit/metrics.js';
import type { UsageMeter } from '../audit/usage.js';
import { meterRefusals } from './refusals.js';
import { limitConnections } from './limits.js';
import type { ConnectionLimiter } from '../net/limits.js';
import { installEnhancedStatusPatch, replyDataFailure, receivedHeader, SMTPServer, smtpError, splitHeader, normalizedLineEnds, smtpUtf8Refusal } from './common.js';

export interface SubmissionOptions {
  hostname: string;
  key: string | Buffer;
  cert: string | Buffer;
  /** CA bundle named when asking clients for a certificate (SASL EXTERNAL, issue 5). */
  ca?: string | Buffer;
  /** true: implicit TLS (465-style); false: STARTTLS required before AUTH (587-style). */
  implicitTls: boolean;
  maxMessageSize: number;
  maxRecipients: number;
  socketTimeoutMs: number;
  core: Core;
  auth: Authenticator;
  blobs: MessageFiles;
  trust: TrustService;
  logger: Logger;
  /** Golden rule 3: absence replies of local recipients, after the commit (policy/). */
  absence?: Pick<AbsenceResponder, 'afterDelivery'>;
  /** Medical-only content: recipient limits and bulk refusals (policy/). */
  content?: ContentPolicy;
  /** Usage indicators: the message's content-free rows, stored with it (audit/usage.ts). */
  usage?: UsageMeter;
  /** Prometheus: refusals by stage and enhanced code (audit/metrics.ts). */
  metrics?: Metrics;
  /** Open connections per client address and in all (issue 13): 421 beyond (smtp/limits.ts). */
  limiter?: ConnectionLimiter;
  /** The shared submission pipeline (mail/submission.ts); built from the options above when absent. */
  pipeline?: SubmissionPipeline;
  /** Patients (Mon espace santé) and the X-MSS-* fields (policy/patient-service.ts), for a pipeline built here. */
  patients?: PatientPolicy;
}

interface SubState {
  submitter: Submitter;
  rcpts: AcceptedRecipient[];
}
const state = new WeakMap<SMTPServerSession, SubState>();

export function createSubmissionServer(o: SubmissionOptions): SMTPServer {
  installEnhancedStatusPatch();
  installSaslMechanisms();
  const log = o.logger.child({ component: o.implicitTls ? 'submissions' : 'submission' });
  const sasl = new SaslServer(o.auth);
  const pipeline = o.pipeline ?? new SubmissionPipeline({ core: o.core, trust: o.trust, hostname: o.hostname, logger: o.logger, absence: o.absence, content: o.content, usage: o.usage, patients: o.patients });
  /** A refusal as its SMTP reply; anything else is a temporary failure (451 4.3.0), logged. */
  const refusalOr = (e: unknown, what: string, text: string) => {
    if (e instanceof SubmissionRefusal) return smtpError(e.code, e.enhanced, e.message);
    log.error({ err: e }, what);
    return smtpError(451, '4.3.0', text);
  };
  const chains = new WeakMap<SMTPServerSession, Uint8Array[]>();
  const server: SMTPServer = new SMTPServer(limitConnections(meterRefusals({
    name: o.hostname,
    banner: 'Caducée MSSanté submission',
    secure: o.implicitTls,
    key: o.key,
    cert: o.cert,
    // Ask for (never require) a client certificate: clients with a CPS-like or organisation
    // certificate may use SASL EXTERNAL; the certificate is judged by trust/, not by the handshake.
    ...(o.ca ? { ca: o.ca } : {}),
    requestCert: true,
    rejectUnauthorized: false,
    ...serverTlsOptions, // TLS 1.2 minimum, no renegotiation (STARTTLS and implicit TLS)
    size: o.maxMessageSize,
    maxRecipients: o.maxRecipients,
    socketTimeout: o.socketTimeoutMs,
    authMethods: sasl.mechanisms({ clientCertificate: true }),
    allowInsecureAuth: false, // RFC 8314 §3: no credentials over cleartext
    authOptional: false,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: false,
    logger: false,
    onSecure(socket: Socket | TLSSocket, session: SMTPServerSession, cb: (err?: Error | null) => void) {
      chains.set(session, peerCertificateChain(socket as TLSSocket));
      cb();
    },
    // Every AUTH mechanism runs through src/auth/sasl.ts (installSaslMechanisms); RFC 8314 §3:
    // smtp-server refuses AUTH before TLS (538) since allowInsecureAuth is false.
    caduceeSasl: {
      sasl,
      peerChain: (session: SMTPServerSession) => chains.get(session) ?? [],
      onSuccess: (session: SMTPServerSession, user: User, mechanism: string) => log.info({ session: session.id, user: user.login, mechanism }, 'authenticated'),
      onFailure: (session: SMTPServerSession, reason: string, mechanism: string) => log.info({ session: session.id, remote: session.remoteAddress, reason, mechanism }, 'authentication failed'),
    } satisfies SmtpSaslOptions,
    onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void) {
      const utf8 = smtpUtf8Refusal(address.address, session); // RFC 6531 §3.4
      if (utf8) return cb(utf8);
      const user = session.user as unknown as User;
      pipeline.checkEnvelopeSender(user, address.address).then(
        (submitter) => {
          state.set(session, { submitter, rcpts: [] });
          cb();
        },
        (e) => cb(refusalOr(e, 'sender check failed', 'temporary failure checking the sender')),
      );
    },
    onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void) {
      const utf8 = smtpUtf8Refusal(address.address, session); // RFC 6531 §3.4
      if (utf8) return cb(utf8);
      const st = state.get(session)!;
      const dsn = (address as any).dsn as { notify?: string[]; orcpt?: string } | undefined;
      // RFC 1870: the SIZE declared at MAIL FROM (the size limit towards patients is checked at RCPT too).
      const declaredSize = Number((session.envelope.mailFrom as any)?.args?.SIZE) || undefined;
      pipeline.checkRecipient(st.submitter, address.address, { notify: (dsn?.notify as NewQueueItem['notify']) ?? null, orcpt: dsn?.orcpt ?? null }, st.rcpts.length, session.id, declaredSize).then(
        (rcpt) => {
          st.rcpts.push(rcpt);
          cb();
        },
        (e) => cb(refusalOr(e, 'recipient check failed', 'temporary failure checking the recipient')),
      );
    },
    onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void) {
      const st = state.get(session)!;
      (async () => {
        const { header, body, tooLarge } = await splitHeader(normalizedLineEnds(stream)); // bare LF → CRLF (Postfix's "normalize")
        if (tooLarge) {
          body.resume();
          await finished(body).catch(() => {});
          throw smtpError(552, '5.3.4', 'header block too large');
        }
        const headers = new Headers(header);
        // From: authors, Sender:, bulk, Date and Message-ID: the shared pipeline (mail/submission.ts).
        try {
          await pipeline.prepareHeader(st.submitter, headers, header, session.id, session.envelope.rcptTo.map((r) => r.address));
        } catch (e) {
          body.resume();
          throw e instanceof SubmissionRefusal ? smtpError(e.code, e.enhanced, e.message) : e;
        }
        const rcpts = session.envelope.rcptTo;
        const received = receivedHeader({
          helo: session.hostNameAppearsAs,
          remoteAddress: session.remoteAddress,
          by: o.hostname,
          protocol: 'ESMTPSA',
          tls: session.tlsOptions as any,
          id: session.id,
          forAddress: rcpts.length === 1 ? rcpts[0].address : undefined,
        });
        const prefix = Buffer.concat([Buffer.from(received), headers.build()]);
        const blob = await o.blobs.put(body, { prefix, maxSize: o.maxMessageSize + prefix.length });
        if (stream.sizeExceeded) throw new BlobSizeExceededError(o.maxMessageSize);
        // The size limit towards patients (552 5.3.4 naming it); nothing committed.
        try {
          pipeline.checkSize(blob.size, session.envelope.rcptTo.map((r) => r.address), session.id);
        } catch (e) {
          blob.release();
          throw e instanceof SubmissionRefusal ? smtpError(e.code, e.enhanced, e.message) : e;
        }
        const env = session.envelope;
        const dsn = (env as any).dsn as { ret?: string | null; envid?: string | null } | undefined;
        await pipeline
          .commit({
            submitter: st.submitter,
            rcpts: st.rcpts,
            blob,
            envelopeFrom: env.mailFrom ? env.mailFrom.address : '',
            ret: (dsn?.ret as 'FULL' | 'HDRS' | null) ?? null,
            envid: dsn?.envid ?? null,
            origin: { protocol: 'submission', user: st.submitter.user, remote: session.remoteAddress ?? null },
            sessionId: session.id,
            header: prefix,
          })
          .catch((e) => Promise.reject(e instanceof SubmissionRefusal ? smtpError(e.code, e.enhanced, e.message) : e));
        blob.release();
        log.info({ session: session.id, user: st.submitter.user.login, size: blob.size, local: st.rcpts.filter((r) => r.local).length, remote: st.rcpts.filter((r) => r.domain).length }, 'message submitted');
      })().then(
        () => cb(null, `2.6.0 message ${session.id} accepted`),
        (e) => replyDataFailure(stream, e, o.maxMessageSize, cb, (err) => log.error({ err, session: session.id }, 'submission failed')),
      );
    },
  } as any, o.metrics, 'submission'), o.limiter, (remote, reason) => log.warn({ remote, reason }, 'connection refused: limit reached')));
  server.on('error', (err: Error) => log.warn({ err: err.message }, 'submission connection error'));
  return server;
}

export { domainOf };
