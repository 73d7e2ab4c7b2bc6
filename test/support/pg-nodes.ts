// Two nodes of one operator on PostgreSQL for a test file: two PgStore instances (two pools, as
// two nodes have them) on one throw-away database (./postgres.ts), closed and the database dropped
// after the file's tests (an after() hook registered here).
import { after } from 'node:test';
import { PgStore } from '../../src/store/postgres/index.js';
import { pgTestDatabase } from './postgres.js';

export async function pgTwoNodes(o: { poolSize: number }): Promise<{ a: PgStore; b: PgStore } | { skip: string }> {
  const db = await pgTestDatabase();
  if ('skip' in db) return db;
  let nodes: PgStore[] = [];
  after(async () => {
    await Promise.all(nodes.map((s) => s.close()));
    await db.drop();
  });
  nodes = await Promise.all([PgStore.open(db.url, o), PgStore.open(db.url, o)]);
  return { a: nodes[0]!, b: nodes[1]! };
}
