// Worker thread of a directory import: owns the new snapshot's SQLite connection while the
// main thread reads and parses the extraction (snapshot-writer.ts, SqliteSnapshotWriter).
import { parentPort, workerData } from 'node:worker_threads';
import { SnapshotBuilder } from './snapshot-builder.js';

const port = parentPort!;
let builder: SnapshotBuilder | undefined;
let failed = false;

try {
  builder = new SnapshotBuilder(workerData.dataDir, workerData.tmpFile);
} catch (e: any) {
  failed = true;
  port.postMessage({ type: 'error', message: `cannot create the new directory snapshot: ${e.message}` });
}

port.on('message', (m: any) => {
  if (failed || !builder) {
    if (m.type === 'call') port.postMessage({ type: 'reply', id: m.id, error: 'the import worker failed to start' });
    return;
  }
  try {
    if (m.type === 'rows') {
      builder.addBatch(m.batch);
      port.postMessage({ type: 'ack' });
    } else if (m.type === 'call' && m.op === 'ready') {
      port.postMessage({ type: 'reply', id: m.id, value: true });
    } else if (m.type === 'call' && m.op === 'commit') {
      const info = builder.commit(m.arg.meta, m.arg.o, (phase) => port.postMessage({ type: 'phase', phase }));
      port.postMessage({ type: 'reply', id: m.id, value: info });
    }
  } catch (e: any) {
    failed = true;
    builder.abort();
    if (m.type === 'call') port.postMessage({ type: 'reply', id: m.id, error: e.message });
    else port.postMessage({ type: 'error', message: e.message });
  }
});
