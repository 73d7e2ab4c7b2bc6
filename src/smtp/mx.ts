// Inbound MX of the MSSanté trust space: STARTTLS then a client certificate checked by trust/,
// local active mailboxes only, no relaying, one transaction before 250.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { domainOf, type Core, type Mailbox } from '../core/index.js';
import { sendDeliveredDsn } from './success-dsn.js';
import type { AbsenceResponder } from '../policy/absence-service.js';
import type { DeliveredMessage } from '../policy/urgency.js';
import type { ContentPolicy } from '../policy/content-service.js';
import type { PatientPolicy } from '../policy/patient-service.js';
import { patientReplyText, type AutomaticAnswerReason } from '../policy/patients.js';
import type { Metrics } from '../audit/metrics.js';
import type { UsageMeter } from '../audit/usage.js';
import { meterRefusals } from './refusals.js';
import { limitConnections } from './limits.js';
import type { ConnectionLimiter } from '../net/limits.js';
import { BlobSizeExceededError, type MessageFiles } from '../store/message-files.js';
import { serverTlsOptions } from '../pki/tls-server.js';
import { peerChainFromTls, type TrustService } from '../trust/index.js';
import { deliveryAnalysis } from '../mail/message-index.js';
import { reportsIn } from '../policy/receipts.js';
import type { IncomingReport } from '../store/types.js';
import { installEnhancedStatusPatch, replyDataFailure, receivedHeader, SMTPServer, smtpError, normalizedLineEnds, smtpUtf8Refusal, messageBytes } from './common.js';

export interface MxOptions {
  hostname: string;
  key: string | Buffer;
  cert: string | Buffer;
  ca: string | Buffer;
  maxMessageSize: number;
  maxRecipients: number;
  socketTimeoutMs: number;
  core: Core;
  blobs: MessageFiles;
  trust: TrustService;
  logger: Logger;
  postmaster: string;
  /** Golden rule 3: absence replies, after the commit (policy/). */
  absence?: { afterDelivery(d: DeliveredMessage): Promise<void> };
  /** Medical-only content: bulk-looking mail is filed in "Non médical" instead of INBOX (policy/). */
  content?: ContentPolicy;
  /** Usage indicators: the message's content-free rows, stored with it (audit/usage.ts). */
  usage?: UsageMeter;
  /** Prometheus: refusals by stage and enhanced code (audit/metrics.ts). */
  metrics?: Metrics;
  /** Open connections per client address and in all (issue 13): 421 beyond (smtp/limits.ts). */
  limiter?: ConnectionLimiter;
  /** Patients: at the Mon espace santé stand-in, INS, conversations, automatic answers (policy/). */
  patients?: PatientPolicy;
}

interface MxSessionState {
  chain: Uint8Array[];
  peerDn?: string;
  /** Recipients of this transaction answered automatically instead of delivered (stand-in). */
  patientAnswers?: { rcpt: string; reason: AutomaticAnswerReason }[];
}

const state = new WeakMap<SMTPServerSession, MxSessionState>();

export function createMxServer(o: MxOptions): SMTPServer {
  installEnhancedStatusPatch();
  const log = o.logger.child({ component: 'mx' });
  const server: SMTPServer = new SMTPServer(limitConnections(meterRefusals({
    name: o.hostname,
    banner: 'Caducée MSSanté MX',
    secure: false,
    key: o.key,
    cert: o.cert,
    ca: o.ca,
    // Ask for the peer's certificate but judge it ourselves in trust/ so that each refusal
    // gets a precise reply instead of a failed handshake.
    requestCert: true,
    rejectUnauthorized: false,
    ...serverTlsOptions, // ANS: TLS 1.2 minimum in the trust space; no renegotiation
    size: o.maxMessageSize, // RFC 1870 SIZE
    maxRecipients: o.maxRecipients,
    socketTimeout: o.socketTimeoutMs,
    disabledCommands: ['AUTH'], // peers authenticate with their certificate, never with AUTH
    hideENHANCEDSTATUSCODES: false, // RFC 2034
    hideDSN: false, // RFC 3461
    hidePIPELINING: false, // RFC 2920
    hide8BITMIME: false, // RFC 6152
    authOptional: true,
    logger: false,
    onSecure(socket: Socket | TLSSocket, session: SMTPServerSession, cb: (err?: Error | null) => void) {
      const chain = peerChainFromTls((socket as TLSSocket).getPeerCertificate?.(true));
      state.set(session, { chain });
      cb();
    },
    onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void) {
      const utf8 = smtpUtf8Refusal(address.address, session); // RFC 6531 §3.4
      if (utf8) return cb(utf8);
      // RFC 3207 §4: the trust space accepts mail only over TLS.
      if (!session.secure) return cb(smtpError(530, '5.7.0', 'Must issue a STARTTLS command first: the MSSanté trust space requires TLS'));
      const st = state.get(session) ?? { chain: [] };
      const mailFromDomain = address.address ? domainOf(address.address) : null;
      o.trust
        .checkInboundPeer(st.chain, mailFromDomain)
        .then((d) => {
          if (!d.ok) {
            log.warn({ session: session.id, remote: session.remoteAddress, mailFromDomain, reason: d.message }, 'peer refused');
            return cb(smtpError(d.code, d.enhanced, d.message));
          }
          st.peerDn = d.dn;
          st.patientAnswers = [];
          state.set(session, st);
          cb();
        })
        .catch((e) => {
          log.error({ err: e, session: session.id }, 'trust check failed');
          cb(smtpError(451, '4.3.0', 'temporary failure while checking the peer certificate, try again later'));
        });
    },
    onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb: (err?: Error | null) => void) {
      const utf8 = smtpUtf8Refusal(address.address, session); // RFC 6531 §3.4
      if (utf8) return cb(utf8);
      const resolve = () => o.core
        .resolveRecipient(address.address)
        .then((r) => {
          switch (r.kind) {
            case 'local':
              return cb();
            case 'remote':
              // RFC 5321 §3.6.2: no open relaying; the trust space never relays, ever.
              return cb(smtpError(550, '5.7.1', `relaying denied: ${r.domain} is not a domain of this operator`));
            case 'unknown':
              return cb(smtpError(550, '5.1.1', `${address.address}: no such mailbox here`));
            case 'deleted':
              // RFC 3463 X.1.1: bad destination mailbox. Golden rule 2: a deleted (unused) address
              // names, in French, the substitute its absence message gave (docs/policy.md); without
              // accents, as reply text is US-ASCII (RFC 5321 §4.2).
              return cb(
                smtpError(
                  550,
                  '5.1.1',
                  r.substitute ? `${address.address} : adresse supprimee, ecrivez a ${r.substitute}` : `${address.address}: no such mailbox here (adresse supprimee)`,
                ),
              );
            case 'suspended':
              // RFC 3463 X.2.1: mailbox disabled, not accepting messages (temporary).
              return cb(smtpError(450, '4.2.1', `${address.address}: mailbox temporarily suspended, try again later`));
          }
        })
        .catch((e) => {
          log.error({ err: e }, 'recipient lookup failed');
          cb(smtpError(451, '4.3.0', 'temporary failure looking up the recipient'));
        });
      // ---- patients (policy/patient-service.ts): at the Mon espace santé stand-in, a malformed
      // INS is refused; an unknown or closed patient mailbox is accepted and answered automatically.
      const st = state.get(session);
      (o.patients ? o.patients.inboundRecipient(address.address, session.envelope.mailFrom ? session.envelope.mailFrom.address : '', Number((session.envelope.mailFrom as any)?.args?.SIZE) || undefined) : Promise.resolve(null))
        .then((p) => {
          if (!p) return void resolve();
          if (p.kind === 'refuse') return cb(smtpError(p.refusal.code, p.refusal.enhanced, patientReplyText(p.refusal)));
          st?.patientAnswers?.push({ rcpt: address.address, reason: p.reason });
          cb();
        })
        .catch((e) => {
          log.error({ err: e }, 'patient recipient lookup failed');
          cb(smtpError(451, '4.3.0', 'temporary failure looking up the recipient'));
        });
    },
    onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void) {
      const st = state.get(session);
      const rcpts = session.envelope.rcptTo;
      const prefix = Buffer.from(
        receivedHeader({
          helo: session.hostNameAppearsAs,
          remoteAddress: session.remoteAddress,
          by: o.hostname,
          protocol: 'ESMTPS',
          tls: session.tlsOptions as any,
          peerDn: st?.peerDn,
          id: session.id,
          forAddress: rcpts.length === 1 ? rcpts[0].address : undefined,
        }),
      );
      (async () => {
        // Bare LF → CRLF (Postfix's "normalize", smtp/common.ts). The bytes stay in hand: every
        // look at the message before the commit (its analysis and header search row, recorded in
        // the delivery's transaction; the usage traits, the filing, the reports it carries) and
        // the urgency and absence answers after it use them, never a read of the stored file.
        const raw = await messageBytes(normalizedLineEnds(stream), prefix, o.maxMessageSize + prefix.length);
        if (stream.sizeExceeded) throw new BlobSizeExceededError(o.maxMessageSize);
        const blob = await o.blobs.put(raw);
        // ---- patients: the size limit towards patients, on the bytes the peer sent (552 5.3.4).
        const tooBig = o.patients?.checkSize(blob.size - prefix.length, rcpts.map((r) => r.address), session.id);
        if (tooBig) throw (blob.release(), smtpError(tooBig.code, tooBig.enhanced, patientReplyText(tooBig)));
        // Recipients were checked at RCPT; re-resolve in case a mailbox changed meanwhile.
        const ids: number[] = [];
        const mailboxes: Mailbox[] = [];
        const answers = st?.patientAnswers ?? [];
        for (const r of rcpts) {
          if (answers.some((a) => a.rcpt === r.address)) continue; // answered automatically (patients)
          const res = await o.core.resolveRecipient(r.address);
          if (res.kind !== 'local') throw smtpError(450, '4.2.1', `${r.address} became unavailable during the transaction, try again`);
          ids.push(res.mailbox.id);
          mailboxes.push(res.mailbox);
        }
        const env = session.envelope;
        const analyzed = deliveryAnalysis(raw);
        // Delivered, never refused: bulk-looking mail goes to its own folder, tagged (docs/policy.md).
        const filing = o.content ? await o.content.inboundFiling(blob.id, session.id, raw) : null;
        const usage = await o.usage?.received({ blobId: blob.id, envelopeFrom: env.mailFrom ? env.mailFrom.address : '', localMailboxIds: ids, info: analyzed?.info, mailboxes });
        // docs/receipts.md: a DSN or MDN updates the tracking of the message it reports on (unreadable: none).
        let reports: IncomingReport[] = [];
        try {
          if (ids.length) reports = reportsIn(raw);
        } catch {
          // delivered all the same
        }
        const copies = await o.core.deliver({
          releasePins: [blob.pin],
          analysis: analyzed?.analysis ?? null,
          reports,
          blobId: blob.id,
          size: blob.size,
          internalDate: new Date(),
          envelopeFrom: env.mailFrom ? env.mailFrom.address : '',
          localMailboxIds: ids,
          remote: [],
          filing,
          usage,
          // Patients: conversations a professional opens or ends ([FIN]) at the stand-in, same transaction.
          conversations: await o.patients?.conversationChanges(blob.id, env.mailFrom ? env.mailFrom.address : '', ids),
        }, { protocol: 'mx', remote: session.remoteAddress ?? null });
        // Patients: the stand-in's automatic answers, queued before the 250 (their only trace).
        blob.releasedByCommit(); // the delivery's commit dropped the pin
        await o.patients?.answerAutomatically(blob.id, env.mailFrom ? env.mailFrom.address : '', answers, session.id);
        if (usage) o.usage!.committed(usage);
        log.info({ session: session.id, peer: st?.peerDn, size: blob.size, recipients: ids.length }, 'message accepted');
        const dsn = (env as any).dsn as { ret?: string | null; envid?: string | null } | undefined;
        // After the commit and off the reply path: the receipt DSN must not delay the 250.
        setImmediate(() =>
          sendDeliveredDsn({
            core: o.core,
            blobs: o.blobs,
            hostname: o.hostname,
            postmaster: o.postmaster,
            envelopeFrom: env.mailFrom ? env.mailFrom.address : '',
            envid: dsn?.envid ?? null,
            ret: (dsn?.ret as 'FULL' | 'HDRS' | null) ?? null,
            arrivalDate: new Date(),
            blobId: blob.id,
            recipients: rcpts.filter((r: any) => !answers.some((a) => a.rcpt === r.address)).map((r: any) => ({ address: r.address, notify: r.dsn?.notify ?? null, orcpt: r.dsn?.orcpt ?? null })),
            logger: log,
          }).catch((e) => log.error({ err: e }, 'success DSN failed')),
        );
        // Absence replies: also after the commit and off the reply path (never affect the 250).
        if (o.absence) {
          const absence = o.absence;
          setImmediate(() => void absence.afterDelivery({ blobId: blob.id, envelopeFrom: env.mailFrom ? env.mailFrom.address : '', mailboxIds: ids, raw, info: analyzed?.info }));
        }
        return copies;
      })().then(
        () => cb(null, `2.6.0 message ${session.id} stored for ${rcpts.length} recipient(s)`),
        (e) => replyDataFailure(stream, e, o.maxMessageSize, cb, (err) => log.error({ err, session: session.id }, 'delivery failed')),
      );
    },
  } as any, o.metrics, 'mx'), o.limiter, (remote, reason) => log.warn({ remote, reason }, 'connection refused: limit reached')));
  server.on('error', (err: Error) => log.warn({ err: err.message }, 'mx connection error'));
  return server;
}
