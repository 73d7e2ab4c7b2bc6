// Operator configuration: one zod schema, read from a YAML/JSON file plus environment variables,
// with defaults that need no setup. Paths in a file are relative to that file's directory.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const port = z.number().int().min(0).max(65535);
const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, 'expected HOST:PORT, e.g. 127.0.0.1:2525');

export const configSchema = z
  .object({
    operator: z
      .object({
        /** Human name of the operator, used in Received headers and DSNs. */
        name: z.string().min(1).default('Caducée'),
        /** This server's host name: SMTP greeting, Received headers, certificate CN. */
        hostname: z.string().min(1).default('localhost'),
        /** Mail domains this operator hosts mailboxes for (must be in the trust list to receive). */
        domains: z.array(z.string().min(1)).default([]),
      })
      .default({ name: 'Caducée', hostname: 'localhost', domains: [] }),
    /** Where the store, message blobs and queue live. */
    dataDir: z.string().default('./var'),
    /**
     * The database (docs/configuration.md): the embedded SQLite file in dataDir (one machine), or
     * PostgreSQL (several processes or nodes of one operator share it; issue 12). And where the
     * message files live (`blobs`).
     */
    store: z
      .object({
        kind: z.enum(['sqlite', 'postgres']).default('sqlite'),
        /** postgres://user@host:port/database (libpq URL; password better in PGPASSWORD or ~/.pgpass). Required with kind postgres. */
        url: z.string().min(1).optional(),
        /** One schema per operator when several share a database. */
        schema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lower-case SQL identifier (letters, digits, _)').default('public'),
        /** PostgreSQL connections per process (each `--workers` process has its own pool). */
        poolSize: z.number().int().min(1).max(500).default(10),
        /** Longest statement before PostgreSQL cancels it (ms). */
        statementTimeoutMs: z.number().int().min(100).default(30_000),
        /** Longest wait for a new connection to the server (ms). */
        connectTimeoutMs: z.number().int().min(100).default(10_000),
        /**
         * Where message files live (store/message-files.ts, docs/configuration.md): `files` under
         * `dir` (default <dataDir>/blobs; for several nodes, a shared mount: NFS or CephFS) or
         * `postgres`, inside the PostgreSQL store (chunked bytea; needs the PostgreSQL store).
         */
        blobs: z
          .discriminatedUnion('kind', [z.object({ kind: z.literal('files'), dir: z.string().min(1).optional() }).strict(), z.object({ kind: z.literal('postgres') }).strict()])
          .default({ kind: 'files' }),
        /**
         * Encryption at rest of the message files (docs/encryption.md): the keyring of
         * key-encryption keys from `keyFile` (JSON, mode 0600, created by `caducee keys init`;
         * keep it outside dataDir and its backups) or printed by `keyCommand` (argv, run at start
         * without a shell: a KMS / HSM client). Neither: message files are written in plaintext.
         */
        encryption: z
          .object({
            keyFile: z.string().min(1).optional(),
            keyCommand: z.array(z.string().min(1)).min(1).optional(),
          })
          .strict()
          .refine((e) => !(e.keyFile && e.keyCommand), { message: 'store.encryption: keyFile or keyCommand, not both' })
          .prefault({}),
      })
      .strict()
      .superRefine((st, ctx) => {
        if (st.kind === 'postgres' && !st.url) ctx.addIssue({ code: 'custom', path: ['url'], message: 'store.kind postgres needs store.url (postgres://user@host:port/database) or CADUCEE_POSTGRES_URL' });
        if (st.kind === 'sqlite' && st.url) ctx.addIssue({ code: 'custom', path: ['url'], message: 'store.url is only read with store.kind postgres: set kind: postgres, or remove url' });
      })
      .prefault({}),
    listen: z
      .object({
        host: z.string().default('127.0.0.1'),
        /** Inter-operator MX (trust space, mutual TLS). 25 in production. */
        mx: port.default(2525),
        /** Submission with STARTTLS (587-style). */
        submission: port.default(2587),
        /** Submission with implicit TLS (465-style). */
        submissions: port.default(2465),
        /** HTTP: JSON APIs and the FHIR directory (docs/directory.md). 0 = any free port. */
        http: port.default(2080),
        /** HTTPS: web login, sessions and every authenticated API; client certificates (CPS) accepted. */
        https: port.default(2443),
        /** IMAP with STARTTLS (143-style); LOGINDISABLED until TLS. */
        imap: port.default(2143),
        /** IMAP with implicit TLS (993-style). */
        imaps: port.default(2993),
      })
      .default({ host: '127.0.0.1', mx: 2525, submission: 2587, submissions: 2465, http: 2080, https: 2443, imap: 2143, imaps: 2993 }),
    tls: z
      .object({
        /** PEM server certificate (IGC-Santé SERV SSL), also presented as client certificate to peers. */
        cert: z.string().optional(),
        /** PEM chain sent after the leaf (intermediate CA), optional. */
        chain: z.string().optional(),
        key: z.string().optional(),
        /** PEM bundle of trust anchors: IGC-Santé root and intermediate CAs. */
        ca: z.string().optional(),
        /** CRL files (PEM or DER) checked for revocation. */
        crl: z.array(z.string()).default([]),
        /**
         * CRLs fetched on a schedule (trust/crl-refresh.ts, docs/trust-space.md "Revocation"): from
         * the CRL distribution points of the CA bundle's certificates and of our own certificate
         * chain, plus `urls`; each verified against its issuer in the CA bundle and swapped in whole.
         */
        crlRefresh: z
          .object({
            /** More CRL URLs (http:// or https://), e.g. those of CAs whose CRL no certificate of ours names. */
            urls: z.array(z.string().regex(/^https?:\/\/[^\s]+$/i, 'expected an http:// or https:// URL')).default([]),
            /** Follow the distribution points (RFC 5280 §4.2.1.13) named in tls.ca and tls.cert / tls.chain. */
            distributionPoints: z.boolean().default(true),
            /** Minutes between two refreshes (the first one runs at start, in the background). */
            intervalMinutes: z.number().positive().default(60),
            /** Longest a CRL download may take, connection included (seconds). */
            timeoutSeconds: z.number().positive().default(30),
            /** Largest CRL accepted (bytes). */
            maxBytes: z.number().int().positive().default(64 * 1024 * 1024),
            /**
             * Hours a CRL may stay past its nextUpdate (no newer one obtained) before the certificates
             * of its issuer are refused (454 4.7.5, "revocation-unknown").
             */
            staleGraceHours: z.number().min(0).default(24),
          })
          .strict()
          .default({ urls: [], distributionPoints: true, intervalMinutes: 60, timeoutSeconds: 30, maxBytes: 64 * 1024 * 1024, staleGraceHours: 24 }),
        /**
         * OCSP stapling of our own certificate (trust/ocsp-stapling.ts, docs/trust-space.md
         * "OCSP stapling"): its status fetched in the background, checked, and stapled by every
         * TLS listener.
         */
        ocsp: z
          .object({
            /** Staple when a responder is known (responderUrl, or our certificate's Authority Information Access). */
            staple: z.boolean().default(true),
            /** The responder to ask instead of the one our certificate names (RFC 5280 §4.2.2.1). */
            responderUrl: z.string().regex(/^https?:\/\/[^\s]+$/i, 'expected an http:// or https:// URL').optional(),
            /** Longest time between two requests (minutes); earlier when the response's nextUpdate is near. */
            refreshMinutes: z.number().positive().default(60),
            /** Longest an OCSP exchange may take, connection included (seconds). */
            timeoutSeconds: z.number().positive().default(10),
            /** Largest OCSP response accepted (bytes). */
            maxBytes: z.number().int().positive().default(64 * 1024),
          })
          .strict()
          .default({ staple: true, refreshMinutes: 60, timeoutSeconds: 10, maxBytes: 64 * 1024 }),
      })
      .default({
        crl: [],
        crlRefresh: { urls: [], distributionPoints: true, intervalMinutes: 60, timeoutSeconds: 30, maxBytes: 64 * 1024 * 1024, staleGraceHours: 24 },
        ocsp: { staple: true, refreshMinutes: 60, timeoutSeconds: 10, maxBytes: 64 * 1024 },
      }),
    trust: z
      .object({
        /** Trust list (liste blanche) as a file path or an https:// URL. */
        list: z.string().optional(),
        /** Expected SHA-256 (hex) of the list as published beside it. */
        sha256: z.string().min(1).optional(),
        refreshMinutes: z.number().positive().default(60),
      })
      .default({ refreshMinutes: 60 }),
    /**
     * Static routes: domain → HOST:PORT, or a list of them tried in order like MX records of equal
     * preference (a domain served by several nodes). Other domains use DNS MX, port 25.
     */
    routes: z.record(z.string(), z.union([hostPort, z.array(hostPort).min(1, 'a route lists at least one HOST:PORT')])).default({}),
    smtp: z
      .object({
        /** Largest message accepted (bytes), announced with SIZE (RFC 1870). */
        maxMessageSize: z.number().int().positive().default(50 * 1024 * 1024),
        maxRecipients: z.number().int().positive().default(100),
        /** Seconds a client may stay idle. */
        socketTimeoutSeconds: z.number().positive().default(300),
      })
      .default({ maxMessageSize: 50 * 1024 * 1024, maxRecipients: 100, socketTimeoutSeconds: 300 }),
    imap: z
      .object({
        /** Storage quota per mailbox (BAL) unless set on the mailbox, bytes (RFC 9208 STORAGE). */
        defaultQuotaBytes: z.number().int().positive().default(5 * 1024 * 1024 * 1024),
        /** A folder with at least this many messages keeps a snapshot of its message list between SELECTs (issue 15, imap/folder-snapshots.ts). */
        snapshotMinMessages: z.number().int().positive().default(2000),
        /** Messages kept in all folder snapshots of the process at most (≈ 200 bytes each); 0: no snapshots. */
        snapshotMaxMessages: z.number().int().nonnegative().default(500_000),
      })
      .default({ defaultQuotaBytes: 5 * 1024 * 1024 * 1024, snapshotMinMessages: 2000, snapshotMaxMessages: 500_000 }),
    /** Resource limits per listener family (IMAP, SMTP MX, submission, HTTPS): docs/configuration.md. */
    limits: z
      .object({
        /** Open connections from one client address (IPv6: one /64) per family. */
        connectionsPerAddress: z.number().int().positive().default(50),
        /** Open connections per family in all. */
        connections: z.number().int().positive().default(5000),
        /** New connections one client address (IPv6: one /64) may open per minute, per family. */
        connectionsPerAddressPerMinute: z.number().int().positive().default(600),
        /** IMAP: seconds a connection may stay unauthenticated. */
        preAuthSeconds: z.number().positive().default(180),
        /** Implicit-TLS listeners: seconds to finish the TLS handshake. */
        handshakeSeconds: z.number().positive().default(10),
      })
      .strict()
      .prefault({}),
    queue: z
      .object({
        /** Delays between attempts; the last one repeats until give-up. */
        retrySeconds: z.array(z.number().positive()).min(1).default([60, 300, 900, 1800, 3600]),
        /** After this long a message still undelivered is bounced with a DSN (RFC 3464). */
        giveUpSeconds: z.number().positive().default(5 * 24 * 3600),
        /** Warn the sender (delayed DSN) after this long; 0 disables. */
        pollSeconds: z.number().positive().default(1),
        concurrency: z.number().int().positive().default(4),
        connectTimeoutSeconds: z.number().positive().default(30),
        /**
         * How long a worker's claim leases queue items (several processes and nodes share the
         * queue); the worker renews the leases of the items it holds every third of it, so this
         * bounds how long the items of a process that died wait, not how long an attempt runs.
         */
        leaseSeconds: z.number().min(3, 'queue.leaseSeconds must be at least 3 (renewed every third of it)').default(90),
      })
      .default({ retrySeconds: [60, 300, 900, 1800, 3600], giveUpSeconds: 432000, pollSeconds: 1, concurrency: 4, connectTimeoutSeconds: 30, leaseSeconds: 90 }),
    policy: z
      .object({
        /** Golden rule 3, absence messages (docs/policy.md). */
        absence: z
          .object({
            /** At most one reply per sender per this many days (RFC 5230 §4.1: 7 by default, at least 1). */
            periodDays: z.number().min(1, 'policy.absence.periodDays must be at least 1 day (RFC 5230 §4.1)').default(7),
          })
          .strict()
          .default({ periodDays: 7 }),
        /** Medical-only content: sending limits, bulk mail (docs/policy.md). */
        content: z
          .object({
            /** At most this many recipients per submitted message (RCPT beyond: 452 4.5.3). */
            maxRecipientsPerMessage: z.number().int().positive().default(50),
            /** At most this many recipients per user and per day (Europe/Paris). */
            maxRecipientsPerDay: z.number().int().positive().default(500),
            /** APP mailboxes' declared daily volume by address: replaces both limits for that sender. */
            appDailyVolume: z
              .record(z.string().email(), z.number().int().positive())
              .default({})
              .transform((m) => Object.fromEntries(Object.entries(m).map(([a, n]) => [a.toLowerCase(), n]))),
            /** Folder receiving inbound bulk-looking mail (keyword $NonMedical), created when needed. */
            nonMedicalFolder: z.string().min(1).default('Non médical'),
          })
          .strict()
          .default({ maxRecipientsPerMessage: 50, maxRecipientsPerDay: 500, appDailyVolume: {}, nonMedicalFolder: 'Non médical' }),
        /** Sender of the rules' notices (null MAIL FROM); default ne-pas-repondre@<first operator domain>. */
        systemAddress: z.string().min(3).optional(),
        /** Addresses of the administrators told about organisational mailboxes nobody reads and about unused mailboxes. */
        administrators: z.array(z.string().min(3)).default([]),
        /** Golden rule 1, the reading guard. */
        reading: z
          .object({
            /** Unread for longer than this many business hours (French business days) raises a notice; per mailbox: `caducee rules threshold`. */
            thresholdHours: z.number().positive('policy.reading.thresholdHours must be more than 0').default(24),
          })
          .strict()
          .prefault({}),
        /** Golden rule 2, unused addresses. */
        unused: z
          .object({
            /** A mailbox without login, read or sent message for this many days is reported and its owner warned. */
            days: z.number().int().min(1, 'policy.unused.days must be at least 1').default(90),
            /** Days after the warning, without activity or objection, before the mailbox is suspended. */
            graceDays: z.number().int().min(0).default(30),
          })
          .strict()
          .prefault({}),
        /** Golden rule 4: at most one urgency answer per sender and mailbox per this many days (RFC 3834 §2). */
        urgency: z.object({ periodDays: z.number().min(1, 'policy.urgency.periodDays must be at least 1 day').default(1) }).strict().prefault({}),
        /** How often a running operator applies rules 1 and 2 (minutes; 0: never, `caducee rules run` only). */
        runEveryMinutes: z.number().min(0).default(15),
      })
      .strict()
      .prefault({}),
    /** Medical software integration (docs/software-api.md). */
    integrations: z
      .object({
        webhooks: z
          .object({
            /** How long one event is retried (exponential backoff, 5 s doubling, 1 h at most) before it is abandoned. */
            retryHours: z.number().positive().max(24 * 30).default(24),
            /** Polling period when no delivery wakes the dispatcher. */
            pollSeconds: z.number().positive().default(5),
            /** PEM file of extra CAs trusted for webhook endpoints (a hospital's private PKI), besides the system's. */
            caFile: z.string().min(1).optional(),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    /**
     * Messaging with patients, Mon espace santé (docs/patients.md): addresses `<INS>@domain`
     * checked at RCPT, the size limit towards patients. An operator whose operator.domains
     * include this domain acts as the Mon espace santé stand-in (the demo's third operator).
     */
    patients: z
      .object({
        /** Domain of patient mailboxes. */
        domain: z.string().min(1).default('patient.mssante.fr').transform((d) => d.toLowerCase()),
        /** Largest message accepted towards patients, bytes (25 MB). */
        maxMessageSize: z.number().int().positive().default(25 * 1024 * 1024),
      })
      .strict()
      .prefault({}),
    http: z
      .object({
        /** Public base URL used in links (FHIR fullUrl, paging); default: from each request's Host. */
        publicUrl: z.string().url().optional(),
        /** The webmail's build output served at / over HTTPS; default: webmail/dist of this installation; false: no webmail. */
        webmailDir: z.union([z.string().min(1), z.literal(false)]).optional(),
      })
      .strict()
      .default({}),
    /**
     * What mail software is told (autoconfiguration, Autodiscover, `caducee dns records`): the
     * host names and ports clients connect to, which differ from listen.* when a load balancer or
     * port mapping sits in front (production: 993, 143, 465, 587). Defaults: operator.hostname and
     * the listen.* ports. docs/lps.md.
     */
    clients: z
      .object({
        imapHost: z.string().min(1).optional(),
        smtpHost: z.string().min(1).optional(),
        imapsPort: port.min(1).optional(),
        imapPort: port.min(1).optional(),
        submissionsPort: port.min(1).optional(),
        submissionPort: port.min(1).optional(),
        /** The operator's short name in mail software (Thunderbird displayShortName); default operator.name. */
        shortName: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    directory: z
      .object({
        /** How often a running operator looks for a newly imported snapshot (seconds). */
        recheckSeconds: z.number().positive().default(1),
        publish: z
          .object({
            /** FHIR base of the national directory (ANS Annuaire Santé API, e.g. …/fhir/v2). */
            endpoint: z.string().url().optional(),
            /** API key sent in `apiKeyHeader` (better from CADUCEE_DIRECTORY_API_KEY than in the file). */
            apiKey: z.string().min(1).optional(),
            apiKeyHeader: z.string().min(1).default('ESANTE-API-KEY'),
            /** Delays before each retry of a failed request; their count is the number of retries. */
            retryDelaysSeconds: z.array(z.number().nonnegative()).default([1, 5, 30]),
            timeoutSeconds: z.number().positive().default(30),
          })
          .strict()
          .default({ apiKeyHeader: 'ESANTE-API-KEY', retryDelaysSeconds: [1, 5, 30], timeoutSeconds: 30 }),
      })
      .strict()
      .default({ recheckSeconds: 1, publish: { apiKeyHeader: 'ESANTE-API-KEY', retryDelaysSeconds: [1, 5, 30], timeoutSeconds: 30 } }),
    auth: z
      .object({
        /** Brute-force protection (per process): failures per login and per remote address in a sliding window. */
        lockout: z
          .object({
            windowMinutes: z.number().positive().default(15),
            maxPerLogin: z.number().int().positive().default(10),
            maxPerAddress: z.number().int().positive().default(50),
          })
          .strict()
          .default({ windowMinutes: 15, maxPerLogin: 10, maxPerAddress: 50 }),
        /** Web sessions (HTTPS only): idle and absolute lifetimes. */
        session: z
          .object({
            idleMinutes: z.number().positive().default(30),
            maxHours: z.number().positive().default(12),
          })
          .strict()
          .default({ idleMinutes: 30, maxHours: 12 }),
        /**
         * Key (32 bytes, base64; created with mode 0600 when missing) that encrypts the TOTP
         * secrets in the database. Default: <dataDir>/secrets.key. Keep it out of database
         * backups (or back it up separately): without it, enrolled second factors must be reset.
         */
        secretsKeyFile: z.string().min(1).optional(),
        /** TOTP issuer name shown in authenticator apps (RFC 6238; otpauth URI "issuer"). */
        totpIssuer: z.string().min(1).default('Caducée MSSanté'),
        /**
         * OpenID Connect provider: Pro Santé Connect (preset "psc") or any compliant provider.
         * Web login uses the authorization-code flow with PKCE; IMAP and SMTP accept its access
         * tokens with SASL XOAUTH2 / OAUTHBEARER. See docs/authentication.md.
         */
        oidc: z
          .object({
            /** "psc" fills issuer, scopes, acr and the identifier claim for Pro Santé Connect (production). */
            preset: z.enum(['psc', 'psc-bas']).optional(),
            issuer: z.string().url().optional(),
            clientId: z.string().min(1).optional(),
            /** Better from CADUCEE_OIDC_CLIENT_SECRET than in the file. */
            clientSecret: z.string().min(1).optional(),
            /** Where the provider sends the browser back; default: <http.publicUrl>/api/auth/oidc/callback. */
            redirectUri: z.string().url().optional(),
            scopes: z.array(z.string().min(1)).optional(),
            /** acr_values asked for at login, and the acr values an access token must carry (PSC: eidas1). */
            acrValues: z.array(z.string().min(1)).optional(),
            /** Accepted `aud` values of access tokens presented over IMAP/SMTP; default: [clientId]. */
            audience: z.array(z.string().min(1)).optional(),
            /** Claim carrying the professional's national identifier (PSC: preferred_username = "8" + RPPS). */
            identifierClaim: z.string().min(1).optional(),
            /** Check access tokens by RFC 7662 introspection (needs clientId/clientSecret) instead of locally (JWKS). */
            introspection: z.boolean().default(false),
            /** Seconds a fetched JWKS is kept before it is fetched again (a new kid refetches at once). */
            jwksCacheSeconds: z.number().positive().default(600),
            /** Allow an http:// issuer on a loopback address (local demo provider, tests). Never for production. */
            allowInsecureLoopback: z.boolean().default(false),
          })
          .strict()
          .optional(),
      })
      .strict()
      .default({
        lockout: { windowMinutes: 15, maxPerLogin: 10, maxPerAddress: 50 },
        session: { idleMinutes: 30, maxHours: 12 },
        totpIssuer: 'Caducée MSSanté',
      }),
    /**
     * Prometheus metrics (docs/indicators.md): GET /metrics on a listener of its own, never on
     * the public ports. Off unless `listen.port` is set (0: any free port); loopback by default.
     */
    metrics: z
      .object({
        listen: z
          .object({
            host: z.string().min(1).default('127.0.0.1'),
            port: port.optional(),
          })
          .strict()
          .default({ host: '127.0.0.1' }),
      })
      .strict()
      .default({ listen: { host: '127.0.0.1' } }),
    /** Functional traces per mailbox (docs/traces.md). */
    audit: z
      .object({
        /** Traces older than this many months are removed (checked daily by a running operator). */
        traceRetentionMonths: z.number().int().min(1, 'audit.traceRetentionMonths must be at least 1 month').default(12),
      })
      .strict()
      .prefault({}),
    /**
     * Several processes or nodes of one operator on one store (issue 12, docs/configuration.md):
     * this process's node name, and the leader lease under which the once-per-operator work runs.
     */
    cluster: z
      .object({
        /** This node's name in leases and logs (default: the machine's host name); unique per node. */
        nodeId: z.string().min(1).optional(),
        /** The leader lease's length; renewed every third of it. A dead leader is replaced after at most this. */
        leaderLeaseSeconds: z.number().min(3, 'cluster.leaderLeaseSeconds must be at least 3 (renewed every third of it)').default(30),
      })
      .strict()
      .prefault({}),
    /**
     * Core events across processes and nodes (src/relay; `caducee start --workers N`, PostgreSQL):
     * every `resyncSeconds` the IMAP IDLE sessions and event streams compare what they show with
     * the store, whatever the relay delivered (a safety net; 0: never).
     */
    events: z
      .object({
        resyncSeconds: z.number().min(0).default(30),
      })
      .strict()
      .prefault({}),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .default({ level: 'info' }),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Environment variables that override the file; documented in docs/configuration.md. */
const ENV: Record<string, (c: any, v: string) => void> = {
  CADUCEE_DATA_DIR: (c, v) => (c.dataDir = v),
  CADUCEE_POSTGRES_URL: (c, v) => (c.store = { ...(c.store ?? {}), kind: 'postgres', url: v }),
  CADUCEE_BLOBS_DIR: (c, v) => ((c.store ??= {}).blobs = { kind: 'files', dir: v }),
  CADUCEE_HOSTNAME: (c, v) => ((c.operator ??= {}).hostname = v),
  CADUCEE_DOMAINS: (c, v) => ((c.operator ??= {}).domains = v.split(',').map((s) => s.trim()).filter(Boolean)),
  CADUCEE_LISTEN_HOST: (c, v) => ((c.listen ??= {}).host = v),
  CADUCEE_MX_PORT: (c, v) => ((c.listen ??= {}).mx = num('CADUCEE_MX_PORT', v)),
  CADUCEE_SUBMISSION_PORT: (c, v) => ((c.listen ??= {}).submission = num('CADUCEE_SUBMISSION_PORT', v)),
  CADUCEE_SUBMISSIONS_PORT: (c, v) => ((c.listen ??= {}).submissions = num('CADUCEE_SUBMISSIONS_PORT', v)),
  CADUCEE_IMAP_PORT: (c, v) => ((c.listen ??= {}).imap = num('CADUCEE_IMAP_PORT', v)),
  CADUCEE_IMAPS_PORT: (c, v) => ((c.listen ??= {}).imaps = num('CADUCEE_IMAPS_PORT', v)),
  CADUCEE_TRUST_LIST: (c, v) => ((c.trust ??= {}).list = v),
  CADUCEE_TRUST_LIST_SHA256: (c, v) => ((c.trust ??= {}).sha256 = v),
  CADUCEE_MAX_MESSAGE_SIZE: (c, v) => ((c.smtp ??= {}).maxMessageSize = num('CADUCEE_MAX_MESSAGE_SIZE', v)),
  CADUCEE_HTTP_PORT: (c, v) => ((c.listen ??= {}).http = num('CADUCEE_HTTP_PORT', v)),
  CADUCEE_ENCRYPTION_KEY_FILE: (c, v) => (((c.store ??= {}).encryption ??= {}).keyFile = v),
  CADUCEE_SECRETS_KEY_FILE: (c, v) => ((c.auth ??= {}).secretsKeyFile = v),
  CADUCEE_OIDC_CLIENT_SECRET: (c, v) => (((c.auth ??= {}).oidc ??= {}).clientSecret = v),
  CADUCEE_HTTPS_PORT: (c, v) => ((c.listen ??= {}).https = num('CADUCEE_HTTPS_PORT', v)),
  CADUCEE_DIRECTORY_API_KEY: (c, v) => (((c.directory ??= {}).publish ??= {}).apiKey = v),
  CADUCEE_METRICS_HOST: (c, v) => (((c.metrics ??= {}).listen ??= {}).host = v),
  CADUCEE_METRICS_PORT: (c, v) => (((c.metrics ??= {}).listen ??= {}).port = num('CADUCEE_METRICS_PORT', v)),
  CADUCEE_LOG_LEVEL: (c, v) => ((c.log ??= {}).level = v),
  CADUCEE_NODE_ID: (c, v) => ((c.cluster ??= {}).nodeId = v),
};

function num(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new ConfigError(`${name}=${JSON.stringify(v)} is not a number`);
  return n;
}

const PATH_KEYS: [string, string][] = [
  ['tls', 'cert'],
  ['tls', 'chain'],
  ['tls', 'key'],
  ['tls', 'ca'],
];

/** Validate a raw object (from a file, or built in code) into a Config; `baseDir` resolves relative paths. */
export function parseConfig(raw: unknown, baseDir = process.cwd(), source = 'configuration'): Config {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  - ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid ${source}:\n${lines.join('\n')}\nFix these settings (see docs/configuration.md).`);
  }
  const c = result.data;
  c.dataDir = path.resolve(baseDir, c.dataDir);
  if (c.store.blobs.kind === 'files') c.store.blobs.dir = c.store.blobs.dir ? path.resolve(baseDir, c.store.blobs.dir) : path.join(c.dataDir, 'blobs');
  if (c.store.encryption.keyFile) c.store.encryption.keyFile = path.resolve(baseDir, c.store.encryption.keyFile);
  for (const [a, b] of PATH_KEYS) {
    const sect = (c as any)[a];
    if (sect?.[b]) sect[b] = path.resolve(baseDir, sect[b]);
  }
  c.tls.crl = c.tls.crl.map((p) => path.resolve(baseDir, p));
  c.auth.secretsKeyFile = c.auth.secretsKeyFile ? path.resolve(baseDir, c.auth.secretsKeyFile) : path.join(c.dataDir, 'secrets.key');
  if (c.trust.list && !/^https:\/\//i.test(c.trust.list)) c.trust.list = path.resolve(baseDir, c.trust.list);
  if (c.trust.sha256 && !/^[0-9a-f]{64}$/i.test(c.trust.sha256) && !/^https:\/\//i.test(c.trust.sha256)) c.trust.sha256 = path.resolve(baseDir, c.trust.sha256);
  if (typeof c.http.webmailDir === 'string') c.http.webmailDir = path.resolve(baseDir, c.http.webmailDir);
  c.operator.domains = c.operator.domains.map((d) => d.toLowerCase());
  const routes: Record<string, string | string[]> = {};
  for (const [d, hp] of Object.entries(c.routes)) routes[d.toLowerCase()] = hp;
  c.routes = routes;
  return c;
}

/** Load a configuration file (YAML or JSON) if given, then apply CADUCEE_* environment overrides. */
export function loadConfig(file?: string, env: NodeJS.ProcessEnv = process.env): Config {
  let raw: any = {};
  let baseDir = process.cwd();
  const f = file ?? env.CADUCEE_CONFIG;
  if (f) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (e: any) {
      throw new ConfigError(`cannot read configuration file ${f}: ${e.code ?? e.message}. Check the --config path.`);
    }
    try {
      raw = parseYaml(text) ?? {}; // YAML is a superset of JSON
    } catch (e: any) {
      throw new ConfigError(`configuration file ${f} is not valid YAML/JSON: ${e.message}`);
    }
    baseDir = path.dirname(path.resolve(f));
  }
  for (const [name, apply] of Object.entries(ENV)) {
    const v = env[name];
    if (v !== undefined && v !== '') apply(raw, v);
  }
  return parseConfig(raw, baseDir, f ? `configuration file ${f}` : 'configuration');
}

export function parseHostPort(hp: string): { host: string; port: number } {
  const i = hp.lastIndexOf(':');
  let host = hp.slice(0, i);
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host, port: Number(hp.slice(i + 1)) };
}
