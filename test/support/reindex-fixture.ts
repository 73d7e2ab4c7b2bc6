// The header-index recomputation migrations (SQLite 26, PostgreSQL 9; docs/imap.md "Known
// limits"): one fixture and one check for the migration tests of both engines.
import assert from 'node:assert/strict';
import { HEADER_INDEX_VERSION } from '../../src/mail/header-index.js';
import type { Store } from '../../src/store/types.js';

const BLOB = 'b'.repeat(64);

/** A message whose file has its header index row, with a value the old decoding gave ("Ã\x89bauche"). */
export async function messageWithOldIndexRow(s: Store): Promise<number> {
  const mb = await s.createMailbox({ address: 'r@op.test', type: 'PER', displayName: 'R', ownerUserId: null, practitionerId: null, structureId: null, listeRouge: false });
  const box = (await s.getFolder(mb.id, 'INBOX'))!;
  await s.appendMessage(box.id, { blobId: BLOB, size: 5, flags: [], internalDate: new Date() });
  await s.setSearchHeaders(BLOB, HEADER_INDEX_VERSION, { s_subject: Buffer.from('Ã\x89bauche', 'utf8') });
  assert.deepEqual(await s.blobsWithoutSearchHeaders(10), []);
  assert.deepEqual((await s.searchHeaderCandidates(box.id, 's_subject', Buffer.from('bauche'), HEADER_INDEX_VERSION, 1)).matched, [1]);
  return box.id;
}

/** After the migration: no row, the message unindexed (SEARCH reads it), the backfill takes its file; recorded again, indexed again. */
export async function assertRecomputed(s: Store, folderId: number): Promise<void> {
  assert.equal(await s.hasSearchHeaders(BLOB, HEADER_INDEX_VERSION), false);
  assert.deepEqual(await s.blobsWithoutSearchHeaders(10), [BLOB], 'the backfill takes it');
  assert.deepEqual(await s.searchHeaderCandidates(folderId, 's_subject', Buffer.from('bauche'), HEADER_INDEX_VERSION, 1), { matched: [], unindexed: [1] });
  await s.setSearchHeaders(BLOB, HEADER_INDEX_VERSION, { s_subject: Buffer.from('ébauche', 'utf8') });
  assert.deepEqual(await s.searchHeaderCandidates(folderId, 's_subject', Buffer.from('ébauche'), HEADER_INDEX_VERSION, 1), { matched: [1], unindexed: [] });
}
