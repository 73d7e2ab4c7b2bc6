// The directory inside a running operator (and the CLI): the snapshot reader, the service that
// merges our own mailboxes, and the FHIR facade. Serving them over HTTP(S) is the composition
// root's job (src/main.ts, with http/app.ts): a service room does not start protocol servers.
import path from 'node:path';
import pino, { type Logger } from 'pino';
import type { Config } from '../config/index.js';
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

  /** What the directory routes of http/ serve (http/directory-routes.ts DirectoryRoutesOptions). */
  routes(): { directory: DirectoryService; fhir: FhirDirectory; publicUrl: string | undefined } {
    return { directory: this.service, fhir: this.fhir, publicUrl: this.config.http.publicUrl };
  }

  async close() {
    await this.reader.close();
  }
}

export function openDirectory(config: Config, store?: Store, logger: Logger = pino({ level: 'silent' })): DirectoryRuntime {
  return new DirectoryRuntime(config, store, logger.child({ component: 'directory' }));
}

export const openSnapshotWriter = (config: Config, opts?: { threaded?: boolean; onFallback?: (reason: string) => void }) => SqliteSnapshotWriter.open(config.dataDir, opts);
export const openPublicationStore = (config: Config) => new SqlitePublicationStore(config.dataDir);
