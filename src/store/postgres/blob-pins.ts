// The pin/removal handshake of message files in PostgreSQL (store/message-files.ts has the
// protocol and its interleavings; PG migration 2 the tables and blob_pin()). Shared by PgStore
// (BlobMetaStore, used when the files are on a shared file system) and PgMessageFiles (files as
// chunked bytea).
//
// Why the advisory lock is enough: a pin (blob_pin(), or PgMessageFiles' put transaction) and a
// claim or removal of the same id each take pg_advisory_xact_lock on the id's hash first (in
// blob_lock()), and hold it until they commit. So they run one after the other, and the second
// reads — in statements started after it got the lock, hence with a snapshot taken after the
// first committed (READ COMMITTED) — the pin or the claim of the first. A hash collision of
// two ids only makes them wait for each other. The references a claim checks (messages,
// outbound_queue) are not under the lock, and need not be: a reference is committed either by a
// put's caller, whose pin the claim sees (or which waits for the claim), or in a transaction that
// reads another reference to the same id (COPY), which a claim would have seen.
import type { PgClient, PgConnection } from './connection.js';

/** Whether a message or a queued item references the file (PgStore.isBlobReferenced's SQL). */
export const REFERENCED_SQL =
  "SELECT EXISTS (SELECT 1 FROM messages WHERE blob_id = $1) OR EXISTS (SELECT 1 FROM outbound_queue WHERE blob_id = $1 AND status = 'queued') referenced";

export async function lockBlob(c: PgClient, blobId: string): Promise<void> {
  await c.query('SELECT blob_lock($1)', [blobId]);
}

export async function pinBlob(pg: PgConnection, blobId: string, token: string, now: number, pinMs: number, removalLeaseMs: number): Promise<boolean> {
  const [r] = await pg.query<{ pinned: boolean }>('SELECT blob_pin($1, $2, $3, $4, $5) pinned', [blobId, token, now, pinMs, removalLeaseMs]);
  return r.pinned;
}

/** Drops puts' pins inside the caller's transaction (unpinBlobs; a delivery's or an APPEND's commit, P5). */
export async function dropPins(c: PgClient, pins: { blobId: string; token: string }[]): Promise<void> {
  if (pins.length === 0) return;
  await c.query('DELETE FROM blob_pins p USING unnest($1::text[], $2::text[]) AS u(blob_id, token) WHERE p.blob_id = u.blob_id AND p.token = u.token', [
    pins.map((p) => p.blobId),
    pins.map((p) => p.token),
  ]);
}

export async function unpinBlobs(pg: PgConnection, pins: { blobId: string; token: string }[]): Promise<void> {
  if (pins.length === 0) return;
  // Not waited for by any node: an unpin lost in a crash only lets its pin expire.
  await pg.tx(async (c) => {
    await c.query("SET LOCAL synchronous_commit = 'off'");
    await dropPins(c, pins);
  });
}

export async function pruneBlobPins(pg: PgConnection, now: number): Promise<number> {
  // An expired pin: a put whose process died before its commit (or whose commit failed): its file,
  // if nothing references it, is an orphan — a candidate for the next collection run on any node.
  const r = await pg.query<{ n: number }>(
    'WITH d AS (DELETE FROM blob_pins WHERE until <= $1 RETURNING blob_id), g AS (INSERT INTO blob_garbage (blob_id, since) SELECT DISTINCT blob_id, $2 FROM d ON CONFLICT (blob_id) DO NOTHING) SELECT count(*) n FROM d',
    [now, new Date(now).toISOString()],
  );
  return r[0].n;
}

/**
 * Inside a transaction, after lockBlob: 'held' when a live pin or a claim younger than the lease
 * holds the id (then it is made a candidate if it was not), 'referenced' when a row references it (the candidate dropped),
 * else 'free' (nothing changed yet: the caller claims or removes).
 */
export async function removalCheck(c: PgClient, blobId: string, now: number, removalLeaseMs: number): Promise<'held' | 'referenced' | 'free'> {
  const held = await c.query(
    'SELECT EXISTS (SELECT 1 FROM blob_pins WHERE blob_id = $1 AND until > $2) OR EXISTS (SELECT 1 FROM blob_garbage WHERE blob_id = $1 AND removing_since > $3) held',
    [blobId, now, now - removalLeaseMs],
  );
  if (held.rows[0].held) {
    // A candidate (if it was not one) so that a later run looks again: an orphan whose put
    // crashed stays pinned until its pin expires, and the orphan scan runs only at start.
    await c.query('INSERT INTO blob_garbage (blob_id, since) VALUES ($1, $2) ON CONFLICT (blob_id) DO NOTHING', [blobId, new Date(now).toISOString()]);
    return 'held';
  }
  if ((await c.query(REFERENCED_SQL, [blobId])).rows[0].referenced) {
    await c.query('DELETE FROM blob_garbage WHERE blob_id = $1', [blobId]);
    return 'referenced';
  }
  return 'free';
}

/** Claims the removal of a file kept elsewhere (BlobMetaStore.claimBlobRemoval). */
export async function claimBlobRemoval(pg: PgConnection, blobId: string, now: number, removalLeaseMs: number): Promise<boolean> {
  return pg.tx(async (c) => {
    await lockBlob(c, blobId);
    if ((await removalCheck(c, blobId, now, removalLeaseMs)) !== 'free') return false;
    await c.query('DELETE FROM blob_meta WHERE blob_id = $1', [blobId]);
    await c.query('DELETE FROM search_headers WHERE blob_id = $1', [blobId]);
    await c.query(
      `INSERT INTO blob_garbage (blob_id, since, removing_since) VALUES ($1, $2, $3)
       ON CONFLICT (blob_id) DO UPDATE SET removing_since = excluded.removing_since`,
      [blobId, new Date(now).toISOString(), now],
    );
    return true;
  });
}

export async function forgetBlobGarbage(pg: PgConnection, blobId: string, since: number): Promise<void> {
  await pg.query('DELETE FROM blob_garbage WHERE blob_id = $1 AND removing_since = $2', [blobId, since]);
}
