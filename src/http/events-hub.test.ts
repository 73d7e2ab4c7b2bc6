// The event stream's hub on 'resync' (src/relay): a folder that moved without any event reaching
// this process (a change on another node whose notification was lost) is announced as `folder`
// at the next resync, once; after a relay reconnection every stream also gets `reset`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Core } from '../core/index.js';
import { SqliteStore } from '../store/sqlite/index.js';
import { EventHub } from './events-routes.js';

describe('EventHub on resync', () => {
  const store = SqliteStore.open(':memory:');
  const core = new Core(store, ['x.mssante.test']);
  const address = 'claire.martin@x.mssante.test';
  let mailboxId: number;
  let inboxId: number;
  let hub: EventHub;

  before(async () => {
    await core.createPractitioner({ rpps: '10101010101', familyName: 'Martin', givenName: 'Claire' });
    await core.createUser({ login: 'claire', displayName: 'Claire Martin', rpps: '10101010101' });
    const m = await core.createMailbox({ address, type: 'PER', displayName: 'Dr Claire Martin', owner: 'claire' });
    mailboxId = m.id;
    inboxId = (await store.getFolder(m.id, 'INBOX'))!.id;
    hub = new EventHub(core);
  });
  after(async () => {
    hub.close();
    await store.close();
  });

  /** Resolves with the events the hub pushes until `settled` (the resync's own promise chain) is done. */
  async function pushedDuring(fn: () => void, settled: () => Promise<void>) {
    const got: { type: string; data: Record<string, unknown> }[] = [];
    const off = hub.subscribe((e) => got.push({ type: e.type, data: e.data }));
    fn();
    await settled();
    off();
    return got;
  }
  const idle = () => hub.idle();

  test('a folder changed unannounced is pushed as `folder` at the next poll, once; a gap also resets', async () => {
    const unwatch = hub.watch([mailboxId]);
    await idle();
    // Written to the store directly: no event announces it.
    await store.appendMessage(inboxId, { blobId: 'a'.repeat(64), size: 10, flags: [], internalDate: new Date() });
    const first = await pushedDuring(() => core.events.emit('resync', { reason: 'poll' }), idle);
    assert.deepEqual(first, [{ type: 'folder', data: { mailbox: address, folderId: `f${inboxId}` } }]);
    // Nothing moved since: the next poll pushes nothing.
    assert.deepEqual(await pushedDuring(() => core.events.emit('resync', { reason: 'poll' }), idle), []);
    // A relay reconnection: every stream reloads.
    const gap = await pushedDuring(() => core.events.emit('resync', { reason: 'gap' }), idle);
    assert.deepEqual(gap, [{ type: 'reset', data: {} }]);
    unwatch();
  });
});
