// A throw-away PostgreSQL database for one test file (shared spec of issue 12): created on the
// admin URL's server, dropped by drop(). Unreachable server: a skip reason off CI, an error on CI.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export async function pgTestDatabase(): Promise<{ url: string; drop(): Promise<void> } | { skip: string }> {
  const ADMIN_URL = process.env.CADUCEE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const name = `caducee_t_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  try {
    await admin.connect();
  } catch (e) {
    const reason = `PostgreSQL unreachable at ${ADMIN_URL.replace(/\/\/[^@/]*@/, '//')} (${(e as Error).message}); set CADUCEE_TEST_PG_URL`;
    if (process.env.CI) throw new Error(reason);
    return { skip: reason };
  }
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(ADMIN_URL);
  url.pathname = '/' + name;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: ADMIN_URL });
      await c.connect();
      try {
        await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
        await c.query(`DROP DATABASE IF EXISTS ${name}`);
      } finally {
        await c.end();
      }
    },
  };
}
