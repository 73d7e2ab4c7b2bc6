// Composition root: builds the services of one operator from its configuration and starts
// its listeners. `caducee start` and `caducee demo` both come through here.
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import type { SMTPServer } from 'smtp-server';
import { Authenticator } from './auth/index.js';
import { OidcTokenVerifier, resolveOidcSettings } from './auth/oidc.js';
import { SecretBox } from './auth/secret-box.js';
import type { Config } from './config/index.js';
import { Core } from './core/index.js';
import { OutboundWorker } from './delivery/worker.js';
import { loadTrustAnchors, x509, type TrustAnchors } from './pki/index.js';
import { serverTlsOptions } from './pki/tls-server.js';
import { createImapServer, type ImapListener } from './imap/server.js';
import { FolderSnapshots } from './imap/folder-snapshots.js';
import { MessageIndex, startHeaderBackfill } from './mail/message-index.js';
import { SubmissionPipeline } from './mail/submission.js';
import { MailService } from './mail/service.js';
import { AbsenceResponder, AbsenceSettingsService } from './policy/absence-service.js';
import { ReceiptService } from './policy/mdn-service.js';
import { reportReader } from './policy/receipts.js';
import { ContentPolicy } from './policy/content-service.js';
import { PatientPolicy } from './policy/patient-service.js';
import { defaultSystemAddress, RulesEngine } from './policy/rules-engine.js';
import { UrgencyResponder, type DeliveredMessage } from './policy/urgency.js';
import { createMxServer } from './smtp/mx.js';
import { createSubmissionServer } from './smtp/submission.js';
import { BlobCollector } from './store/blob-collector.js';
import { Leadership, type LeaderService } from './store/leader.js';
import { ConnectionLimiter } from './net/limits.js';
import { WebhookDispatcher } from './integration/webhooks.js';
import { inboundDescriber } from './integration/inbound.js';
import type { MessageFiles } from './store/message-files.js';
import { ensurePrivateDir, exposedStatePaths } from './store/permissions.js';
import { openMessageFiles } from './store/open-message-files.js';
import { StoreChannelTransport } from './relay/channel.js';
import type { Store } from './store/types.js';
import { TrustService } from './trust/index.js';
import { TrustListSource } from './trust/source.js';
import { CrlRefresher } from './trust/crl-refresh.js';
import { ocspStaplerFor, type OcspStapler } from './trust/ocsp-stapling.js';
import { openDirectory, type DirectoryRuntime } from './directory/runtime.js';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { startHttpServer, type HttpServer, type WebAuthOptions } from './http/app.js';
import { clientSettings } from './http/autoconfig.js';
import { purgeIdempotentAnswers } from './http/sending.js';
import { Metrics } from './audit/metrics.js';
import { UsageMeter } from './audit/usage.js';
import { startTracePurge } from './audit/traces.js';
import { startMetricsServer, type MetricsServer } from './http/metrics-server.js';
import { EventRelay, type RelayTransport } from './relay/index.js';
import { openStore, StartupError } from './open-store.js';

// The CLI's administration commands import these from open-store.ts without loading the operator.
export { openStore, StartupError };

/** Where `npm run build:webmail` (run by npm install and the first npm start) puts the webmail. */
export const WEBMAIL_DIST = fileURLToPath(new URL('../webmail/dist', import.meta.url));


export interface Operator {
  config: Config;
  store: Store;
  /** Message files: a directory (shared by the nodes when there are several) or PostgreSQL (store.blobs). */
  blobs: MessageFiles;
  blobCollector: BlobCollector;
  core: Core;
  trust: TrustService;
  trustList: TrustListSource;
  /** CRLs downloaded from the distribution points on a schedule (tls.crlRefresh). */
  crls: CrlRefresher;
  /** The OCSP response of our own certificate, fetched on a schedule and stapled by every TLS listener (tls.ocsp); undefined when off. */
  ocsp: OcspStapler | undefined;
  outbound: OutboundWorker;
  /**
   * The leader lease 'operator-leader' (cluster.leaderLeaseSeconds): while this process holds it,
   * it runs the once-per-operator services (golden rules, message-file collector, header backfill,
   * trace and lockout purges, webhooks).
   */
  leadership: Leadership;
  /** National directory + our mailboxes, served over HTTP(S) (JSON API, FHIR). */
  directory: DirectoryRuntime;
  /** Golden rules 1 and 2 (reading guard, unused addresses), run on a timer (policy.runEveryMinutes). */
  rules: RulesEngine;
  /** Read receipts and integration acknowledgements (RFC 8098 MDNs, docs/receipts.md): the webmail and API call it. */
  receipts: ReceiptService;
  ports: { mx: number; submission: number; submissions: number; http: number; https: number; imap: number; imaps: number };
  host: string;
  /** Prometheus metrics of this operator (served on `metrics.listen` when a port is set). */
  metrics: Metrics;
  /** The metrics listener's port; undefined when off (not in `ports`: the demo writes those to listen.*). */
  metricsPort: number | undefined;
  /** Core events to and from the other processes or nodes of this operator (src/relay), when started with a transport. */
  relay: EventRelay | undefined;
  logger: Logger;
  reloadAnchors(): void;
  stop(): Promise<void>;
}

function readRequired(file: string | undefined, what: string, setting: string): string {
  if (!file) throw new StartupError(`${what} is not configured: set ${setting} in the configuration file`);
  try {
    return readFileSync(file, 'utf8');
  } catch (e: any) {
    throw new StartupError(`cannot read ${what} ${file} (${setting}): ${e.code ?? e.message}`);
  }
}


/**
 * How this process reaches the operator's other processes and nodes when the store says so: over a
 * PostgreSQL store, the store's notification channel (LISTEN/NOTIFY, store/postgres/notifications.ts)
 * under the operator's host name (relay/channel.ts). Undefined on SQLite (one process, or
 * `--workers` through the cluster primary).
 */
export function storeRelayTransport(store: Store, config: Config, logger: Logger): RelayTransport | undefined {
  const channel = store.openNotificationChannel({ logger });
  return channel && new StoreChannelTransport(channel, config.operator.hostname, { logger });
}

/** Golden rules 1 and 2 for an operator (the running one, or `caducee rules` at the command line). */
export function rulesEngine(config: Config, core: Core, blobs: MessageFiles, logger: Logger, unpublish?: (address: string) => Promise<{ published: boolean; detail: string }>): RulesEngine {
  const p = config.policy;
  return new RulesEngine({
    core,
    blobs,
    hostname: config.operator.hostname,
    systemAddress: p.systemAddress ?? defaultSystemAddress(config.operator.domains, config.operator.hostname),
    administrators: p.administrators,
    readingThresholdHours: p.reading.thresholdHours,
    unusedDays: p.unused.days,
    graceDays: p.unused.graceDays,
    exportDir: path.join(config.dataDir, 'exports'),
    unpublish,
    logger,
  });
}

export interface StartOptions {
  logger?: Logger;
  /**
   * How this process reaches the other processes or nodes of the operator (relay/cluster.ts for
   * `caducee start --workers N`, relay/channel.ts over a shared PostgreSQL database), or a function
   * choosing it once the store is open: Core events are then relayed (src/relay). None (or the
   * function returns none): over a PostgreSQL store, the store's notification channel
   * (storeRelayTransport); on SQLite, one process, events stay in it.
   */
  relay?: RelayTransport | ((store: Store) => RelayTransport | undefined);
  /**
   * Log the startup lines (listeners, 'operator started') at info (default) or, false, at debug:
   * with several workers only the first one announces them, so they are printed once.
   */
  announce?: boolean;
}

export async function startOperator(config: Config, opts: StartOptions = {}): Promise<Operator> {
  const logger = opts.logger ?? pino({ level: config.log.level, base: { operator: config.operator.hostname } });
  const announce = opts.announce === false ? 'debug' : 'info';
  const key = readRequired(config.tls.key, 'the TLS private key', 'tls.key');
  const certLeaf = readRequired(config.tls.cert, 'the TLS certificate', 'tls.cert');
  const chain = config.tls.chain ? readRequired(config.tls.chain, 'the TLS certificate chain', 'tls.chain') : '';
  const cert = chain ? `${certLeaf.trim()}\n${chain.trim()}\n` : certLeaf;
  const caPem = readRequired(config.tls.ca, 'the trust anchors (IGC-Santé CA bundle)', 'tls.ca');

  let anchors: TrustAnchors;
  const loadAnchors = () => {
    const crls = config.tls.crl.map((f) => readRequired(f, 'the CRL', 'tls.crl'));
    anchors = loadTrustAnchors(caPem, crls);
  };
  loadAnchors();

  if (!config.trust.list) throw new StartupError('no trust list configured: set trust.list to the liste blanche file or https:// URL');
  const trustList = new TrustListSource({
    source: config.trust.list,
    sha256: config.trust.sha256,
    refreshIntervalMs: config.trust.refreshMinutes * 60_000,
    logger: logger.child({ component: 'trust-list' }),
  });
  try {
    await trustList.load();
  } catch (e: any) {
    throw new StartupError(`cannot load the trust list ${config.trust.list}: ${e.message}`);
  }
  trustList.start();
  // CRLs are republished regularly: re-read the anchors and CRL files on the same schedule
  // as the trust list (and on SIGHUP in `caducee start`). A broken file keeps the last good set.
  const anchorTimer = setInterval(() => {
    try {
      loadAnchors();
    } catch (e: any) {
      logger.warn({ err: e.message }, 'CRL / CA reload failed; the previous anchors stay in force');
    }
  }, config.trust.refreshMinutes * 60_000);
  anchorTimer.unref();
  // CRLs from the distribution points (tls.crlRefresh, docs/trust-space.md "Revocation"): fetched in
  // the background, each verified against its issuer, swapped in whole over the configured anchors.
  const cr = config.tls.crlRefresh;
  let ownCertificates: x509.X509Certificate[] = [];
  try {
    ownCertificates = loadTrustAnchors(cert).certs;
  } catch {
    // a certificate file the TLS listeners accept but this reader does not: no distribution points from it
  }
  const crls = new CrlRefresher({
    base: () => anchors,
    ownCertificates,
    distributionPoints: cr.distributionPoints,
    urls: cr.urls,
    intervalMs: cr.intervalMinutes * 60_000,
    timeoutMs: cr.timeoutSeconds * 1000,
    maxBytes: cr.maxBytes,
    logger: logger.child({ component: 'crl' }),
  });
  // OCSP stapling of our own certificate (tls.ocsp, docs/trust-space.md "OCSP stapling"): the
  // responder our certificate names (or tls.ocsp.responderUrl), asked in the background; every TLS
  // listener staples the last good response.
  const ocspPlan = ocspStaplerFor(config.tls.ocsp, ownCertificates, crls.anchors().certs, logger.child({ component: 'ocsp' }));
  const ocsp = ocspPlan.stapler;
  if (ocsp) logger[announce]({ responder: ocsp.url }, 'OCSP stapling on');
  else logger[announce]({ reason: ocspPlan.reason }, 'OCSP stapling off');

  // State files are for the service user only: a data directory or state file that other local
  // users can read stops the start, naming the fix (store/permissions.ts).
  ensurePrivateDir(config.dataDir);
  // The message files too when they live on a mount of their own (store.blobs.dir).
  const exposed = exposedStatePaths(config.dataDir, config.store.blobs.kind === 'files' ? config.store.blobs.dir : undefined);
  if (exposed.length)
    throw new StartupError(
      `state readable by other local users (dataDir ${config.dataDir}): ${exposed.map((e) => `${e.path} has mode ${e.mode}`).join(', ')}; ` +
        `run ${exposed.map((e) => `\`${e.fix}\``).join(' and ')} as the service user, then start again`,
    );
  const store = await openStore(config);
  // This process's name in the store's leases (queue claims, leader lease): unique among live processes.
  const processId = `${config.cluster.nodeId ?? hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  // A failed pin release is harmless (the pin expires), but worth a warning.
  let blobs: MessageFiles;
  try {
    const keys = store.sealer?.keys;
    blobs = await openMessageFiles(config, store, { keys: keys ?? null, onError: (err) => logger.warn({ err }, 'message file pin release failed; it expires by itself') });
    // docs/encryption.md: which key new message files are sealed with (the id, never the key).
    if (keys) logger.info({ keyId: keys.currentId, keys: keys.keys.length }, 'message files encrypted at rest');
    else logger.info('message files not encrypted at rest (store.encryption not configured)');
  } catch (e: any) {
    await store.close();
    throw new StartupError(e.message);
  }
  const core = new Core(store, config.operator.domains);
  // Deliveries, flag changes and grants made by the other processes or nodes wake this one's
  // IMAP IDLE sessions, event streams, queue worker and webhooks (architecture invariant 6).
  // Started before the listeners (below), so that no session misses another process's event.
  const relayTransport = (typeof opts.relay === 'function' ? opts.relay(store) : opts.relay) ?? storeRelayTransport(store, config, logger);
  const relay = relayTransport ? new EventRelay(core.events, relayTransport, { logger, resyncEveryMs: config.events.resyncSeconds * 1000 }) : undefined;
  // DSNs and MDNs reaching a sender's mailbox update the tracking of what it sent (docs/receipts.md).
  core.reportReader = reportReader(blobs);
  // Prometheus metrics (docs/indicators.md); the IMAP session count is read from the listeners on scrape.
  const metrics = new Metrics({ store, imapSessions: () => imapListeners.reduce((n, l) => n + l.sessions.size, 0), staleCrlIssuers: () => crls.staleIssuers().length, ocspStapled: () => !!ocsp?.current() });
  crls.on('refreshed', (r) => {
    if (r.updated) metrics.crlRefreshes.inc({ outcome: 'updated' }, r.updated);
    if (r.unchanged) metrics.crlRefreshes.inc({ outcome: 'unchanged' }, r.unchanged);
    if (r.failed) metrics.crlRefreshes.inc({ outcome: 'failed' }, r.failed);
  });
  crls.start();
  ocsp?.on('refreshed', (outcome) => metrics.ocspRefreshes.inc({ outcome }));
  ocsp?.start();
  // Usage indicators: each accepted message's content-free rows, stored with it.
  const usage = new UsageMeter({ store, blobs, metrics, logger: logger.child({ component: 'usage' }), patientDomain: config.patients.domain });
  const trust = new TrustService({
    anchors: () => crls.anchors(),
    list: () => trustList.current(),
    routes: config.routes,
    logger,
    crlGraceMs: cr.staleGraceHours * 3_600_000,
    onCertificateRefused: (failure) => metrics.certificateRefusals.inc({ failure }),
  });
  const lk = config.auth.lockout;
  let bearer: OidcTokenVerifier | undefined;
  if (config.auth.oidc) {
    try {
      bearer = new OidcTokenVerifier(resolveOidcSettings(config.auth.oidc, config.http.publicUrl), logger.child({ component: 'oidc' }));
    } catch (e: any) {
      await store.close();
      throw new StartupError(`OpenID Connect (auth.oidc) is misconfigured: ${e.message}`);
    }
  }
  let secrets: SecretBox;
  try {
    secrets = SecretBox.fromFile(config.auth.secretsKeyFile!);
  } catch (e: any) {
    await store.close();
    throw new StartupError(e.message);
  }
  const auth = new Authenticator(store, {
    // TOTP secrets are kept encrypted under a key of their own.
    secrets,
    // Whether a token's or certificate's holder may act as the identity a client names: core decides.
    access: core,
    // Access tokens (SASL XOAUTH2 / OAUTHBEARER) are checked against the configured provider.
    bearer,
    lockout: { windowMs: lk.windowMinutes * 60_000, maxPerLogin: lk.maxPerLogin, maxPerAddress: lk.maxPerAddress },
    // Client certificates are judged by the trust service, the same code as the trust space's.
    certificates: trust,
    // Metrics: logins by protocol, method and outcome.
    onAttempt: (e) => metrics.login(e),
  });

  const common = {
    hostname: config.operator.hostname,
    key,
    cert,
    maxMessageSize: config.smtp.maxMessageSize,
    maxRecipients: config.smtp.maxRecipients,
    socketTimeoutMs: config.smtp.socketTimeoutSeconds * 1000,
    core,
    blobs,
    trust,
    logger,
  };
  const postmaster = `postmaster@${config.operator.domains[0] ?? config.operator.hostname}`;
  // Golden rule 3: absence replies after each committed delivery, only inside the trust space.
  const absenceReplies = new AbsenceResponder({ core, blobs, trust, hostname: config.operator.hostname, periodDays: config.policy.absence.periodDays, logger, notices: metrics });
  // Golden rules 1 and 2 (reading guard, unused addresses); rule 4 asks rule 1 whether a recipient is behind on reading.
  const rules = rulesEngine(config, core, blobs, logger);
  // Golden rule 4: an urgent message for a recipient away or behind on reading is answered at once
  // (before the absence reply, which then stays silent for that sender).
  const urgency = new UrgencyResponder({
    core,
    blobs,
    trust,
    hostname: config.operator.hostname,
    behindOnReading: async (m, now) => (await rules.readingStatus(m, now)).level > 0,
    periodDays: config.policy.urgency.periodDays,
    logger,
  });
  // RFC 8098 MDNs sent by our mailboxes (read receipts, integration acknowledgements).
  const receipts = new ReceiptService({ core, blobs, trust, hostname: config.operator.hostname, logger });
  const absence = {
    async afterDelivery(d: DeliveredMessage) {
      await urgency.afterDelivery(d);
      await absenceReplies.afterDelivery(d);
    },
  };
  // Medical-only content: sending limits and bulk refusals at submission, bulk filing at the MX.
  const content = new ContentPolicy({ settings: config.policy.content, store, blobs, logger });
  // Patients (Mon espace santé): INS addresses, X-MSS-* fields, size towards patients; the
  // stand-in's conversations and automatic answers when this operator hosts the patient domain.
  const patients = new PatientPolicy({ settings: config.patients, core, store, blobs, trust, hostname: config.operator.hostname, logger });
  // Resource limits: one client address (or /64) cannot hold every connection (issue 13).
  const lim = config.limits;
  const limiter = () => new ConnectionLimiter({ perAddress: lim.connectionsPerAddress, total: lim.connections, perAddressPerMinute: lim.connectionsPerAddressPerMinute });
  const mx = createMxServer({ ...common, ca: caPem, postmaster, absence, content, usage, metrics, patients, limiter: limiter() });
  // One submission pipeline for SMTP submission and the mail API's sending (mail/submission.ts).
  const pipeline = new SubmissionPipeline({ core, trust, hostname: config.operator.hostname, logger, absence, content, usage, patients });
  const submissionLimiter = limiter();
  const submission = createSubmissionServer({ ...common, ca: caPem, auth, implicitTls: false, absence, content, usage, metrics, pipeline, patients, limiter: submissionLimiter });
  const submissions = createSubmissionServer({ ...common, ca: caPem, auth, implicitTls: true, absence, content, usage, metrics, pipeline, patients, limiter: submissionLimiter });
  // smtp-server makes every TLSSocket itself (STARTTLS and implicit TLS) over its net.Server.
  for (const s of [mx, submission, submissions]) ocsp?.attach(s.server, { key, cert });

  const outbound = new OutboundWorker({
    store,
    core,
    blobs,
    trust,
    hostname: config.operator.hostname,
    postmaster,
    tls: () => ({ key, cert, ca: caPem }),
    retrySeconds: config.queue.retrySeconds,
    giveUpSeconds: config.queue.giveUpSeconds,
    pollSeconds: config.queue.pollSeconds,
    concurrency: config.queue.concurrency,
    connectTimeoutSeconds: config.queue.connectTimeoutSeconds,
    leaseSeconds: config.queue.leaseSeconds,
    owner: processId,
    logger,
    metrics,
  });

  // IMAP: message semantics and the header search row are indexed once per stored message (at
  // delivery, or on first use).
  const index = new MessageIndex(store, blobs);
  core.events.on('stored', (e: { blobId: string; indexed?: boolean }) => {
    if (e.indexed) return; // analysed at intake, recorded with the delivery (DeliveryRequest.analysis)
    index.ensureIndexed(e.blobId).catch((err) => logger.warn({ err: err.message, blobId: e.blobId }, 'message indexing failed; retried on first use'));
  });
  const imapServices = {
    core,
    store,
    blobs,
    auth,
    index,
    logger,
    hostname: config.operator.hostname,
    // ca: the CAs named when IMAP asks clients for a certificate (SASL EXTERNAL, issue 5).
    // The STARTTLS upgrade's context: TLS 1.2 minimum, no renegotiation (pki/tls-server.ts).
    secureContext: tls.createSecureContext({ key, cert, ca: caPem, ...serverTlsOptions }),
    startTlsServer: ocsp?.holder({ key, cert }),
    tlsKeyCert: { key, cert },
    ca: caPem,
    appendLimit: config.smtp.maxMessageSize,
    defaultQuotaBytes: config.imap.defaultQuotaBytes,
    snapshots: new FolderSnapshots(config.imap.snapshotMinMessages, config.imap.snapshotMaxMessages),
  };
  const imapLimits = { limiter: limiter(), preAuthSeconds: lim.preAuthSeconds, handshakeSeconds: lim.handshakeSeconds };
  const imap = createImapServer(imapServices, false, imapLimits);
  const imaps = createImapServer(imapServices, true, imapLimits);
  if (imaps.server instanceof tls.Server) ocsp?.attach(imaps.server);
  const imapListeners: ImapListener[] = [];
  const listenImap = (l: ImapListener, port: number, what: string) =>
    new Promise<number>((resolve, reject) => {
      l.server.once('error', (e: any) => reject(new StartupError(`cannot listen for ${what} on ${config.listen.host}:${port}: ${e.code ?? e.message}`)));
      l.server.listen(port, config.listen.host, () => {
        imapListeners.push(l);
        resolve((l.server.address() as AddressInfo).port);
      });
    });
  const closeImap = () =>
    Promise.all(
      imapListeners.map(
        (l) =>
          new Promise<void>((resolve) => {
            for (const s of l.sockets) s.destroy();
            l.server.close(() => resolve());
          }),
      ),
    );

  const directory = openDirectory(config, store, logger);
  const mailService = new MailService({ core, store, blobs, index, patientDomain: config.patients.domain });
  // What software is told of an inbound message: one describer for webhooks and the pull feed.
  // `ports` is known once the listeners are up (the links name the HTTPS port).
  let httpsPort: number | undefined;
  const describeInbound = inboundDescriber({ mail: mailService, messages: store, publicUrl: () => config.http.publicUrl?.replace(/\/$/, '') ?? `https://${config.operator.hostname}:${httpsPort ?? 443}` });
  // Web authentication, served over HTTPS (and refused over plain HTTP): docs/authentication.md.
  const web: WebAuthOptions = {
    auth,
    store,
    totpIssuer: config.auth.totpIssuer,
    lockoutSeconds: Math.ceil(lk.windowMinutes * 60),
    session: { idleMs: config.auth.session.idleMinutes * 60_000, maxMs: config.auth.session.maxHours * 3_600_000 },
    publicUrl: config.http.publicUrl,
    // OpenID Connect web login (Pro Santé Connect); settings already checked with the token verifier above.
    oidc: config.auth.oidc ? { settings: resolveOidcSettings(config.auth.oidc, config.http.publicUrl), logger } : undefined,
    // Absence messages set from the webmail; a substitute at another operator must be in the directory.
    absence: { absences: new AbsenceSettingsService({ core, directoryKnows: async (a) => !!(await directory.service.byAddress(a)) }) },
    // Golden rule 4: the composer asks whether a draft is urgent and its local recipients away or behind on reading.
    compose: { urgency, core, trust },
    // The mail API /api/v1 (docs/mail-api.md): the same Core decisions as IMAP, the same submission pipeline as SMTP.
    mail: {
      core,
      mail: mailService,
      pipeline,
      blobs,
      store,
      maxMessageSize: config.smtp.maxMessageSize,
      patientDomain: config.patients.domain,
      logger,
      // The software API (docs/software-api.md): tracking, receipts, documents, inbound feed, webhooks.
      software: { receipts, store, secrets, describe: describeInbound },
    },
  };

  // The directory is served by the HTTP servers of http/ (the plain one answers 403 to /api/auth:
  // HTTPS required); the HTTPS one also asks for client certificates checked against `tls.ca`.
  const httpServers: HttpServer[] = [];
  const httpLimiter = limiter();
  // What mail software is told (docs/lps.md); completed with the bound ports once every listener is up.
  let clients = clientSettings(config);
  // The webmail (docs/webmail.md): built by npm install / the first npm start into webmail/dist.
  const webmail = config.http.webmailDir === false ? undefined : { dir: config.http.webmailDir ?? WEBMAIL_DIST };
  const listenHttp = async (port: number, https?: { key: string; cert: string; ca: string }): Promise<number> => {
    const s = await startHttpServer({ host: config.listen.host, port, logger: directory.logger, directory: directory.routes(), web, https, limiter: httpLimiter, autoconfig: () => clients, webmail }).catch((e) =>
      Promise.reject(new StartupError(e.message)),
    );
    httpServers.push(s);
    if (https) ocsp?.attach(s.app.server as unknown as tls.Server);
    directory.logger[announce]({ host: config.listen.host, port: s.port }, https ? 'HTTPS (web login, directory API, FHIR) listening' : 'HTTP (directory API, FHIR) listening');
    return s.port;
  };
  const closeHttp = () => Promise.all(httpServers.map((s) => s.close()));
  let metricsServer: MetricsServer | undefined;
  const closeMetrics = () => metricsServer?.close();

  const servers: SMTPServer[] = [];
  const listen = (s: SMTPServer, port: number, what: string) =>
    new Promise<number>((resolve, reject) => {
      const onError = (e: any) =>
        reject(new StartupError(`cannot listen for ${what} on ${config.listen.host}:${port}: ${e.code ?? e.message}${e.code === 'EADDRINUSE' ? ' (port already in use: choose another in listen.*)' : ''}`));
      s.server.once('error', onError);
      s.listen(port, config.listen.host, () => {
        s.server.off('error', onError);
        servers.push(s);
        resolve((s.server.address() as AddressInfo).port);
      });
    });
  let ports: Operator['ports'];
  try {
    await relay?.start().catch((e) => Promise.reject(new StartupError(e.message)));
    ports = {
      mx: await listen(mx, config.listen.mx, 'the MX'),
      submission: await listen(submission, config.listen.submission, 'submission'),
      submissions: await listen(submissions, config.listen.submissions, 'submission over TLS'),
      http: await listenHttp(config.listen.http),
      https: await listenHttp(config.listen.https, { key, cert, ca: caPem }),
      imap: await listenImap(imap, config.listen.imap, 'IMAP'),
      imaps: await listenImap(imaps, config.listen.imaps, 'IMAP over TLS'),
    };
    clients = clientSettings(config, ports);
    httpsPort = ports.https;
    const ml = config.metrics.listen;
    if (ml.port !== undefined) {
      const m = await startMetricsServer({ metrics, host: ml.host, port: ml.port, onError: (e) => logger.error({ err: e }, 'metrics collection failed') }).catch((e) =>
        Promise.reject(new StartupError(e.message)),
      );
      metricsServer = m;
      logger[announce]({ host: ml.host, port: m.port }, 'Prometheus metrics listening (GET /metrics)');
    }
  } catch (e) {
    await closeImap();
    await closeMetrics();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(() => r(undefined)))));
    trustList.stop();
    ocsp?.stop();
    clearInterval(anchorTimer);
    await closeHttp();
    await directory.close();
    await relay?.stop();
    await store.close();
    throw e;
  }
  // Every process runs a queue worker: each attempt works on items it claimed (DeliveryStore.claimQueueItems).
  outbound.start();
  // Medical software: each message arriving in an INBOX is POSTed to the webhooks registered for it.
  const wh = config.integrations.webhooks;
  let webhookCa: string | undefined;
  try {
    webhookCa = wh.caFile ? readFileSync(path.resolve(wh.caFile), 'utf8') : undefined;
  } catch (e: any) {
    logger.error({ file: wh.caFile, err: e.code ?? e.message }, 'cannot read integrations.webhooks.caFile: webhooks use the system CAs only');
  }
  // Leader only: two dispatchers would read the same cursor and POST the same event at once, and a
  // late one could repeat an older event after a newer one (the cursor's compare-and-set keeps the
  // position right, not the endpoint's order).
  const webhooks = new WebhookDispatcher({
    store,
    core,
    secrets,
    ca: webhookCa,
    retryHours: wh.retryHours,
    pollSeconds: wh.pollSeconds,
    logger,
    describe: describeInbound,
  });
  // Golden rules 1 and 2: applied every policy.runEveryMinutes (idempotent per day; the timer never keeps the process alive).
  let rulesTimer: NodeJS.Timeout | undefined;
  let rulesRun: Promise<void> | undefined;
  const rulesService: LeaderService = {
    name: 'golden-rules',
    start() {
      if (config.policy.runEveryMinutes <= 0) return;
      rulesTimer = setInterval(() => {
        rulesRun ??= rules
          .run(new Date())
          .then(
            () => {},
            (e) => logger.error({ err: e?.message ?? String(e) }, 'golden rules run failed'),
          )
          .finally(() => (rulesRun = undefined));
      }, config.policy.runEveryMinutes * 60_000);
      rulesTimer.unref();
    },
    async stop() {
      clearInterval(rulesTimer);
      await rulesRun;
    },
  };
  // Message files no row references any more are removed (expunge, deleted mailboxes, sent queue).
  const blobCollector = new BlobCollector(store, blobs, logger.child({ component: 'blobs' }));
  // Header search rows of the files analysed before migration 17, in small chunks (docs/imap.md).
  let headerBackfill: { stop(): Promise<void> } | undefined;
  // Functional traces older than audit.traceRetentionMonths are removed, at start and daily.
  let stopTracePurge: (() => void) | undefined;
  // Failed logins older than the lockout window are forgotten (they count no more), at start and hourly.
  let lockoutTimer: NodeJS.Timeout | undefined;
  const purgeLockout = () =>
    auth.purgeLockout().then(
      (n) => n && logger.debug({ removed: n }, 'expired login failures forgotten'),
      (e) => logger.error({ err: e?.message ?? String(e) }, 'login failure purge failed'),
    );
  let idempotencyTimer: NodeJS.Timeout | undefined;
  const purgeIdempotency = () =>
    purgeIdempotentAnswers(store).then(
      (n) => n && logger.debug({ removed: n }, 'expired Idempotency-Key answers removed'),
      (e) => logger.error({ err: e?.message ?? String(e) }, 'Idempotency-Key answer purge failed'),
    );
  const leadership = new Leadership({
    store,
    leaseName: 'operator-leader',
    owner: processId,
    ttlMs: config.cluster.leaderLeaseSeconds * 1000,
    logger,
    services: [
      rulesService,
      { name: 'blob-collector', start: () => blobCollector.start(), stop: () => blobCollector.stop() },
      { name: 'header-backfill', start: () => void (headerBackfill = startHeaderBackfill(index, store, logger.child({ component: 'search-index' }))), stop: () => headerBackfill?.stop() },
      { name: 'trace-purge', start: () => void (stopTracePurge = startTracePurge(store, config.audit.traceRetentionMonths, logger.child({ component: 'traces' }))), stop: () => stopTracePurge?.() },
      {
        name: 'lockout-purge',
        start() {
          void purgeLockout();
          lockoutTimer = setInterval(purgeLockout, 3_600_000);
          lockoutTimer.unref();
        },
        stop: () => clearInterval(lockoutTimer),
      },
      {
        // The mail API's Idempotency-Key answers expire after 24 h (http/sending.ts).
        name: 'idempotency-purge',
        start() {
          void purgeIdempotency();
          idempotencyTimer = setInterval(purgeIdempotency, 3_600_000);
          idempotencyTimer.unref();
        },
        stop: () => clearInterval(idempotencyTimer),
      },
      { name: 'webhooks', start: () => webhooks.start(), stop: () => webhooks.stop() },
    ],
  });
  // The first try is awaited: a single process leads (and runs these) by the time it has started.
  await leadership.start();
  logger[announce]({ host: config.listen.host, ...ports, domains: config.operator.domains }, 'operator started');

  let stopped = false;
  return {
    config,
    store,
    blobs,
    blobCollector,
    receipts,
    core,
    trust,
    trustList,
    crls,
    ocsp,
    outbound,
    leadership,
    directory,
    rules,
    ports,
    host: config.listen.host,
    metrics,
    metricsPort: metricsServer?.port,
    relay,
    logger,
    reloadAnchors: loadAnchors,
    async stop() {
      if (stopped) return;
      stopped = true;
      await relay?.stop();
      trustList.stop();
      crls.stop();
      ocsp?.stop();
      clearInterval(anchorTimer);
      await leadership.stop();
      await outbound.stop();
      await closeHttp();
      await closeMetrics();
      await directory.close();
      await closeImap();
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              // smtp-server waits for open sessions; force-close after a short grace period.
              const t = setTimeout(() => {
                for (const c of (s as any).connections ?? []) c._socket?.destroy?.();
                resolve();
              }, 1500);
              s.close(() => {
                clearTimeout(t);
                resolve();
              });
            }),
        ),
      );
      await store.close();
      logger.info('operator stopped');
    },
  };
}
