// Message submission (RFC 6409) for users: STARTTLS (587-style) and implicit TLS (465-style,
// RFC 8314). AUTH only over TLS, through the shared auth module; a user may send only as a
// mailbox they own or hold a send-on-behalf grant for; recipients outside the trust space are
// refused at RCPT.
import { randomBytes } from 'node:crypto';
import { finished } from 'node:stream/promises';
import { Headers } from '@zone-eu/mailsplit';
import addressparser from 'nodemailer/lib/addressparser';
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
import { BlobSizeExceededError, type BlobStore } from '../store/blobs.js';
import type { NewQueueItem } from '../store/types.js';
import type { TrustService } from '../trust/index.js';
import type { AbsenceResponder } from '../policy/absence-service.js';
import type { ContentPolicy, ContentSender } from '../policy/content-service.js';
import { replyText } from '../policy/content.js';
import { patientReplyText } from '../policy/patients.js';
import type { PatientPolicy } from '../policy/patient-service.js';
import type { Metrics } from '../audit/metrics.js';
import type { UsageMeter } from '../audit/usage.js';
import { rfc5322Date } from '../mime/date.js';
import { meterRefusals } from './refusals.js';
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
  blobs: BlobStore;
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
  /** Patients (Mon espace santé) and the X-MSS-* fields: INS, size, conversations (policy/). */
  patients?: PatientPolicy;
}

type Rcpt = { address: string; local?: number; domain?: string; notify?: NewQueueItem['notify']; orcpt?: string | null };
interface SubState {
  user: User;
  senderMailboxId?: number;
  /** The MAIL FROM mailbox, whose type and address set the content policy's limits. */
  sender: ContentSender;
  rcpts: Rcpt[];
}
const state = new WeakMap<SMTPServerSession, SubState>();

function addressesIn(value: string): string[] {
  const out: string[] = [];
  const walk = (list: any[]) => {
    for (const a of list) {
      if (a.group) walk(a.group);
      else if (a.address) out.push(a.address);
    }
  };
  walk(addressparser(value) as any[]);
  return out;
}

export function createSubmissionServer(o: SubmissionOptions): SMTPServer {
  installEnhancedStatusPatch();
  installSaslMechanisms();
  const log = o.logger.child({ component: o.implicitTls ? 'submissions' : 'submission' });
  const sasl = new SaslServer(o.auth);
  const chains = new WeakMap<SMTPServerSession, Uint8Array[]>();
  const server: SMTPServer = new SMTPServer(meterRefusals({
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
      if (!address.address) return cb(smtpError(550, '5.7.1', 'the null sender <> cannot be used for submission'));
      o.core.maySendAs(user, address.address).then(
        (d) => {
          if (!d.ok) return cb(smtpError(550, '5.7.1', d.reason));
          state.set(session, { user, senderMailboxId: d.mailbox.id, sender: { address: d.mailbox.address, type: d.mailbox.type }, rcpts: [] });
          cb();
        },
        (e) => (log.error({ err: e }, 'sender check failed'), cb(smtpError(451, '4.3.0', 'temporary failure checking the sender'))),
      );
    },
    onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void) {
      const utf8 = smtpUtf8Refusal(address.address, session); // RFC 6531 §3.4
      if (utf8) return cb(utf8);
      const st = state.get(session)!;
      const dsn = (address as any).dsn as { notify?: string[]; orcpt?: string } | undefined;
      const base = { address: address.address, notify: (dsn?.notify as NewQueueItem['notify']) ?? null, orcpt: dsn?.orcpt ?? null };
      // Medical-only content: the per-message and per-day recipient limits, checked for a
      // recipient that would otherwise be accepted (the reply names the rule).
      const accept = (rcpt: Rcpt) => {
        if (!o.content) return (st.rcpts.push(rcpt), cb());
        o.content.checkRecipient(st.user, st.sender, st.rcpts.length, session.id).then(
          (refusal) => {
            if (refusal) return cb(smtpError(refusal.code, refusal.enhanced, replyText(refusal)));
            st.rcpts.push(rcpt);
            cb();
          },
          (e) => (log.error({ err: e }, 'recipient limit check failed'), cb(smtpError(451, '4.3.0', 'temporary failure checking the recipient limits'))),
        );
      };
      const resolve = () => o.core.resolveRecipient(address.address).then(
        (r) => {
          switch (r.kind) {
            case 'local':
              return accept({ ...base, local: r.mailbox.id });
            case 'unknown':
            case 'deleted':
              return cb(smtpError(550, '5.1.1', `${address.address}: no such mailbox`));
            case 'suspended':
              return cb(smtpError(450, '4.2.1', `${address.address}: mailbox temporarily suspended`));
            case 'remote':
              if (!o.trust.isTrustedDomain(r.domain))
                return cb(
                  smtpError(
                    550,
                    '5.7.1',
                    `${r.domain} is outside the MSSanté trust space (not in the liste blanche): MSSanté mail can only be sent to MSSanté addresses`,
                  ),
                );
              return accept({ ...base, domain: r.domain });
          }
        },
        (e) => (log.error({ err: e }, 'recipient check failed'), cb(smtpError(451, '4.3.0', 'temporary failure checking the recipient'))),
      );
      // ---- patients (policy/patient-service.ts): INS address, declared SIZE (RFC 1870), the
      // Mon espace santé stand-in's conversation rule; then the usual resolution.
      if (!o.patients) return void resolve();
      const declaredSize = Number((session.envelope.mailFrom as any)?.args?.SIZE) || undefined;
      o.patients.checkRecipient(address.address, { address: st.sender.address, mailboxId: st.senderMailboxId }, declaredSize, session.id).then(
        (p) => (p ? cb(smtpError(p.code, p.enhanced, patientReplyText(p))) : void resolve()),
        (e) => (log.error({ err: e }, 'patient recipient check failed'), cb(smtpError(451, '4.3.0', 'temporary failure checking the recipient'))),
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
        // RFC 5322 §3.6: From is required. Every author must be a mailbox the user may send as.
        const fromValue = headers.getFirst('from');
        const authors = fromValue ? addressesIn(fromValue) : [];
        if (authors.length === 0) {
          body.resume();
          throw smtpError(550, '5.6.0', 'the message has no From: header with an address (RFC 5322 §3.6.2)');
        }
        let onBehalf = false;
        for (const a of authors) {
          const d = await o.core.maySendAs(st.user, a);
          if (!d.ok) {
            body.resume();
            throw smtpError(550, '5.7.1', `From: ${d.reason}`);
          }
          onBehalf ||= d.onBehalf;
        }
        // RFC 5322 §3.6.2: when the author is not the agent sending, Sender names the agent.
        if (onBehalf || authors.length > 1) {
          const own = await o.core.primaryMailboxOf(st.user);
          if (!own) {
            body.resume();
            throw smtpError(550, '5.7.1', `${st.user.login} has no mailbox of their own to appear as Sender: of a message sent on behalf of ${authors[0]}`);
          }
          headers.update('Sender', own.address);
        } else if (headers.hasHeader('sender')) {
          headers.remove('sender');
        }
        // Medical-only content: no mass mailing from a person (550 5.7.1 naming the rule).
        const bulk = o.content?.checkSubmittedHeader(header, st.sender, st.user, session.id);
        if (bulk) {
          body.resume();
          throw smtpError(bulk.code, bulk.enhanced, replyText(bulk));
        }
        // ---- patients (policy/patient-service.ts): X-MSS-* fields' syntax, X-MSS-MES: FIN only towards patients (550 5.6.0).
        const mss = o.patients?.checkHeader(header, session.envelope.rcptTo.map((r) => r.address), session.id);
        if (mss) {
          body.resume();
          throw smtpError(mss.code, mss.enhanced, patientReplyText(mss));
        }
        // RFC 6409 §8.2–8.3: the submission server may add a missing Date and Message-ID.
        if (!headers.hasHeader('date')) headers.add('Date', rfc5322Date(), Infinity);
        if (!headers.hasHeader('message-id')) headers.add('Message-ID', `<${randomBytes(12).toString('hex')}@${o.hostname}>`, Infinity);
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
        // ---- patients: the size limit towards patients (552 5.3.4 naming it); nothing committed.
        const tooBig = o.patients?.checkSize(blob.size, session.envelope.rcptTo.map((r) => r.address), session.id);
        if (tooBig) throw (blob.release(), smtpError(tooBig.code, tooBig.enhanced, patientReplyText(tooBig)));
        const env = session.envelope;
        const dsn = (env as any).dsn as { ret?: string | null; envid?: string | null } | undefined;
        const localIds = st.rcpts.filter((r) => r.local !== undefined).map((r) => r.local!);
        const usage = await o.usage?.submitted({
          blobId: blob.id,
          senderMailboxId: st.senderMailboxId ?? null,
          localMailboxIds: localIds,
          remoteRecipients: st.rcpts.filter((r) => r.domain).map((r) => r.address),
        });
        await o.core.deliver({
          blobId: blob.id,
          size: blob.size,
          internalDate: new Date(),
          envelopeFrom: env.mailFrom ? env.mailFrom.address : '',
          localMailboxIds: st.rcpts.filter((r) => r.local !== undefined).map((r) => r.local!),
          remote: st.rcpts
            .filter((r) => r.domain)
            .map((r) => ({ recipient: r.address, domain: r.domain!, notify: r.notify ?? null, orcpt: r.orcpt ?? null })),
          ret: (dsn?.ret as 'FULL' | 'HDRS' | null) ?? null,
          envid: dsn?.envid ?? null,
          senderMailboxId: st.senderMailboxId ?? null,
          // Counted at commit, in the delivery's transaction: concurrent sessions cannot overshoot.
          dailyRecipients: o.content?.dailyCounter(st.user, st.sender, st.rcpts.length) ?? null,
          usage,
        }, { protocol: 'submission', user: st.user, remote: session.remoteAddress ?? null }).catch((e) => {
          const refusal = o.content?.refusalFor(e, st.user, st.sender, session.id);
          throw refusal ? smtpError(refusal.code, refusal.enhanced, replyText(refusal)) : e;
        });
        blob.release();
        if (usage) o.usage!.committed(usage);
        // Golden rule 2: a message sent is activity of the sending mailbox (never its content).
        if (st.senderMailboxId !== undefined) await o.core.recordActivity([st.senderMailboxId], 'sent');
        log.info({ session: session.id, user: st.user.login, size: blob.size, local: st.rcpts.filter((r) => r.local).length, remote: st.rcpts.filter((r) => r.domain).length }, 'message submitted');
        // Local recipients who are away answer after the commit, off the reply path.
        if (o.absence && localIds.length) {
          const absence = o.absence;
          setImmediate(() => void absence.afterDelivery({ blobId: blob.id, envelopeFrom: env.mailFrom ? env.mailFrom.address : '', mailboxIds: localIds }));
        }
      })().then(
        () => cb(null, `2.6.0 message ${session.id} accepted`),
        (e) => replyDataFailure(stream, e, o.maxMessageSize, cb, (err) => log.error({ err, session: session.id }, 'submission failed')),
      );
    },
  } as any, o.metrics, 'submission'));
  server.on('error', (err: Error) => log.warn({ err: err.message }, 'submission connection error'));
  return server;
}

export { domainOf };
