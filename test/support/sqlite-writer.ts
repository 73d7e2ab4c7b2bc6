// A process writing to a shared SQLite store (test/sqlite-processes.test.ts): `n` times, appends
// a message to a folder then reads the folder claiming \Recent (a transaction that reads before
// it writes). Prints `done <n>` and exits 0, or prints the error and exits 1.
import { SqliteStore } from '../../src/store/sqlite/index.js';

const [file, folder, count] = process.argv.slice(2);
const store = SqliteStore.open(file!);
try {
  for (let i = 0; i < Number(count); i++) {
    await store.appendMessage(Number(folder), { blobId: `${process.pid}`.padStart(64, '0'), size: 1, flags: [], internalDate: new Date() });
    await store.folderMessages(Number(folder), { clearRecent: true });
  }
  process.stdout.write(`done ${count}\n`);
} catch (e: any) {
  process.stdout.write(`failed: ${e.code ?? ''} ${e.message}\n`);
  process.exitCode = 1;
} finally {
  await store.close();
}
