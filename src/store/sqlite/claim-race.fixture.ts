// A process claiming queue items from a shared SQLite file until none is left (leases.test.ts
// runs several at once): prints "ready" once its store is open, waits for a line on stdin (so
// that every process starts claiming at the same moment), then prints the ids it claimed as JSON.
import { once } from 'node:events';
import { SqliteStore } from './index.js';

const [file, owner] = process.argv.slice(2);
const store = SqliteStore.open(file);
process.stdout.write('ready\n');
await once(process.stdin, 'data');
const mine: number[] = [];
for (;;) {
  const got = await store.claimQueueItems(owner, Date.now() + 1, 1, 3_600_000);
  if (!got.length) break;
  mine.push(...got.map((i) => i.id));
}
await store.close();
process.stdout.write(JSON.stringify(mine) + '\n');
process.stdin.destroy();
