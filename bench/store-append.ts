// The SQLite store's part of a MULTIAPPEND fill, alone (issue 15): appendMessages with batches of
// analysed messages into one folder, as IMAP's APPEND commits them (the messages, their analyses
// and header search rows in one transaction; no files, no network), and this process's CPU per
// message as the folder grows. See bench/README.md, "store-append.ts".
//
//   node --import tsx bench/store-append.ts [--messages 100000] [--batch 500] [--every 20000] [--sequential-ids]
//
// --sequential-ids: the file ids (the key of blob_meta, search_headers and the messages_blob
// index) made increasing instead of SHA-256 hex: what an integer or time-ordered key would save
// (an experiment, not a product setting: the ids are no longer the content's hash).
import { createHash } from 'node:crypto';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { HEADER_INDEX_VERSION, headerIndexRow } from '../src/mail/header-index.js';
import { analyzeMessage } from '../src/mime/analyze.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import type { AppendedMessage } from '../src/store/types.js';
import { benchDir, cleanupAll, clientCpuMs, installSignalHandlers, intOption, parseArgsOrUsage } from './common.js';
import { makeMessage } from './imap-stress.js';

const usage = (msg: string): never => {
  process.stderr.write(`store-append: ${msg}\nusage: node --import tsx bench/store-append.ts [--messages N] [--batch B] [--every E] [--sequential-ids]\n`);
  process.exit(2);
};

async function main() {
  const v = parseArgsOrUsage(
    process.argv.slice(2),
    { messages: { type: 'string', default: '100000' }, batch: { type: 'string', default: '500' }, every: { type: 'string', default: '20000' }, 'sequential-ids': { type: 'boolean', default: false } },
    usage,
  );
  const int = intOption(usage);
  const messages = int(v.messages!, 'messages', 1000, 1_000_000);
  const batch = int(v.batch!, 'batch', 1, 5000);
  const every = int(v.every!, 'every', batch, messages);
  installSignalHandlers('store-append', 60 * 60_000);
  const store = SqliteStore.open(path.join(benchDir('caducee-store-append-'), 'caducee.sqlite'));
  const mailbox = await store.createMailbox({ address: 'big@a.mssante.test', type: 'PER', displayName: 'Big', ownerUserId: null, practitionerId: null, structureId: null, listeRouge: false });
  const folder = await store.createFolder(mailbox.id, 'Big');
  console.log(`store-append: ${messages} messages in batches of ${batch}, file ids ${v['sequential-ids'] ? 'increasing' : 'SHA-256 hex'}; CPU of appendMessages per message, by ${every}`);
  let cpu = 0;
  let wall = 0;
  for (let i = 0; i < messages; i += batch) {
    const items: AppendedMessage[] = [];
    for (let k = i; k < Math.min(messages, i + batch); k++) {
      // The bigfolder bench's messages (~620 bytes), analysed as APPEND does (MessageIndex.analyseAll).
      const raw = makeMessage(k, { bodyBytes: 200, tag: 'big' });
      const info = analyzeMessage(raw);
      const hash = createHash('sha256').update(raw).digest('hex');
      const blobId = v['sequential-ids'] ? String(k).padStart(12, '0') + hash.slice(12) : hash;
      items.push({ blobId, size: raw.length, flags: ['\\Seen'], internalDate: new Date(), analysis: { info: JSON.stringify(info), searchHeaders: { version: HEADER_INDEX_VERSION, columns: headerIndexRow(info, raw) } } });
    }
    const c0 = clientCpuMs();
    const t0 = performance.now();
    await store.appendMessages(folder.id, items);
    cpu += clientCpuMs() - c0;
    wall += performance.now() - t0;
    const done = Math.min(messages, i + batch);
    if (done % every === 0 || done === messages) {
      const n = done % every || every;
      const wal = store.db.pragma('wal_checkpoint(PASSIVE)') as { log: number }[];
      console.log(`  ${String(done).padStart(8)}: ${(cpu / n).toFixed(3)} ms CPU, ${(wall / n).toFixed(3)} ms wall per message; last commit's WAL ${wal[0].log} pages`);
      cpu = 0;
      wall = 0;
    }
  }
  console.log(`  database ${store.db.pragma('page_count', { simple: true })} pages of ${store.db.pragma('page_size', { simple: true })} bytes`);
  await store.close();
  await cleanupAll();
}

main().then(
  () => process.exit(0),
  async (e) => {
    process.stderr.write(`store-append: ${(e as Error).stack ?? e}\n`);
    await cleanupAll();
    process.exit(1);
  },
);
