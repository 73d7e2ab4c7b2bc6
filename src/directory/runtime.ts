// The directory inside a running operator (and the CLI): the snapshot reader, the service that
// merges our own mailboxes, the FHIR facade, and the HTTP and HTTPS servers that serve them
// (with the web authentication routes, docs/authentication.md).
import path from 'node:path';
import pino, { type Logger } from 'pino';
import type { Config } from '../config/index.js';
import { startHttpServer, type HttpServer, type WebAuthOptions } from '../http/app.js';
import { SqlitePublicationStore } from '../store/directory/publication.js';
import { SqliteDirectoryReader } from '../store/directory/reader.js';
import { SqliteSnapshotWriter } from '../store/directory/snapshot-writer.js';
import type { Store } from '../store/types.js';
import { FhirDirectory } from './fhir.js';
import { DirectoryService } from './service.js';

export class DirectoryRuntime {
  readonly reader: SqliteDirectoryReader;
  readonly service: DirectoryService;
  readonly fhir: FhirDirectory;
  http: HttpServer | undefined;
  https: HttpServer | undefined;

  constructor(
    readonly config: Config,
    readonly store: Store | undefined,
    readonly logger: Logger,
  ) {
    let lastError = '';
    this.reader = new SqliteDirectoryReader(config.dataDir, {
      recheckMs: config.directory.recheckSeconds * 1000,
      // A finished import replaces the file: the next search uses it, no restart needed.
      onSwitch: (info) => logger.info({ importedAt: info?.importedAt, entries: info?.imported, source: info && path.basename(info.source) }, 'directory snapshot in force'),
      onError: (message) => {
        if (message !== lastError) logger.warn(message);
        lastError = message;
      },
    });
    this.service = new DirectoryService(this.reader, store);
    this.fhir = new FhirDirectory(this.service);
  }

  /**
   * Starts the plain HTTP server (JSON API + FHIR) on host:port. With `web`, the /api/auth routes
   * exist there too but answer 403 (HTTPS required) to every request.
   */
  async listen(host: string, port: number, web?: WebAuthOptions): Promise<HttpServer> {
    this.http = await startHttpServer({ host, port, logger: this.logger, directory: this.routes(), web });
    this.logger.info({ host, port: this.http.port }, 'HTTP (directory API, FHIR) listening');
    return this.http;
  }

  /**
   * Starts the HTTPS server: the same app plus web authentication (sessions, password + TOTP,
   * client certificates checked against `tls.ca`).
   */
  async listenHttps(host: string, port: number, tls: { key: string; cert: string; ca: string }, web?: WebAuthOptions): Promise<HttpServer> {
    this.https = await startHttpServer({ host, port, logger: this.logger, directory: this.routes(), web, https: tls });
    this.logger.info({ host, port: this.https.port }, 'HTTPS (web login, directory API, FHIR) listening');
    return this.https;
  }

  private routes() {
    return { directory: this.service, fhir: this.fhir, publicUrl: this.config.http.publicUrl };
  }

  async close() {
    await Promise.all([this.http?.close(), this.https?.close()]);
    this.http = undefined;
    this.https = undefined;
    await this.reader.close();
  }
}

export function openDirectory(config: Config, store?: Store, logger: Logger = pino({ level: 'silent' })): DirectoryRuntime {
  return new DirectoryRuntime(config, store, logger.child({ component: 'directory' }));
}

export const openSnapshotWriter = (config: Config, opts?: { threaded?: boolean; onFallback?: (reason: string) => void }) => SqliteSnapshotWriter.open(config.dataDir, opts);
export const openPublicationStore = (config: Config) => new SqlitePublicationStore(config.dataDir);
