// The event relay over the PostgreSQL store's notification channel (src/relay/channel.ts over
// store/postgres/notifications.ts: LISTEN/NOTIFY): two relays on one real database stand for two
// nodes of one operator. What one publishes reaches the other, marked as relayed,
// and is never echoed back; a relay whose LISTEN connection the server kills reconnects and emits
// 'resync' (and asks the other to resync too).
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import pino from 'pino';
import { EventRelay, FROM_RELAY, isRelayed, sanitize, type ResyncEvent } from '../src/relay/index.js';
import { StoreChannelTransport } from '../src/relay/channel.js';
import { notificationChannelName, PgNotificationChannel } from '../src/store/postgres/notifications.js';
import { waitFor } from './helpers.js';
import { pgTestDatabase } from './support/postgres.js';

const logger = pino({ level: 'silent' });

/** The next `name` event on `e` (the guard only keeps a broken relay from hanging the run). */
async function next<T>(e: EventEmitter, name: string, what: string): Promise<T> {
  const [v] = await once(e, name, { signal: AbortSignal.timeout(10_000) }).catch(() => {
    throw new Error(`no '${name}' event: ${what}`);
  });
  return v as T;
}

describe('sanitize: ids only cross processes', () => {
  test('addresses, subjects and unknown fields are dropped; a missing id refuses the event', () => {
    assert.deepEqual(sanitize('delivered', { mailboxId: 1, folderId: 2, uid: 3, messageId: 4, subject: 'Résultats', from: 'a@b.fr' }), { mailboxId: 1, folderId: 2, uid: 3, messageId: 4 });
    assert.equal(sanitize('delivered', { mailboxId: 1, folderId: 2, uid: 3 }), null);
    assert.deepEqual(sanitize('folder-changed', { folderId: 5, kind: 'created', ids: ['e9'] }), { folderId: 5, kind: 'created', ids: ['e9'] });
    // Anything but API ids in `ids`: the folder alone.
    assert.deepEqual(sanitize('folder-changed', { folderId: 5, kind: 'created', ids: ['dr.martin@hopital.fr'] }), { folderId: 5 });
    assert.deepEqual(sanitize('queued', undefined), {});
    assert.deepEqual(sanitize('folders-changed', { mailboxId: 3, name: 'Dossier Dupont' }), { mailboxId: 3 });
    assert.deepEqual(sanitize('metadata-changed', { mailboxId: 3, folderId: 4, userId: 5, shared: ['/shared/comment'], private: ['/private/x y'], value: 'Dupont' }), { userId: 5, mailboxId: 3, folderId: 4, shared: ['/shared/comment'], private: [] });
    assert.deepEqual(sanitize('metadata-changed', { mailboxId: null, folderId: null, userId: 5, shared: [], private: ['/private/vendor/x/theme'] }), { userId: 5, mailboxId: null, folderId: null, shared: [], private: ['/private/vendor/x/theme'] });
  });
});

describe('EventRelay over PostgreSQL LISTEN/NOTIFY', () => {
  let db: { url: string; drop(): Promise<void> } | undefined;
  let skip: string | undefined;
  before(async () => {
    const r = await pgTestDatabase();
    if ('skip' in r) skip = r.skip;
    else db = r;
  });
  after(async () => {
    await db?.drop();
  });

  /** A relay of operator `name` over a notification channel of schema `schema` (what PgStore.openNotificationChannel opens). */
  function transport(name = 'hopital-a.mssante.test', schema = 'public') {
    const channel = new PgNotificationChannel(db!.url, schema, { logger, backoffMs: { min: 50, max: 500 } });
    return { channel, transport: new StoreChannelTransport(channel, name, { logger }) };
  }

  function node(resyncEveryMs = 0) {
    const events = new EventEmitter();
    const { channel, transport: t } = transport();
    const relay = new EventRelay(events, t, { logger, resyncEveryMs });
    return { events, channel, relay };
  }

  test("the channel's PostgreSQL name: schema and operator, a plain identifier of at most 63 bytes, as earlier versions named it", () => {
    assert.equal(notificationChannelName('public', 'hopital-a.mssante.test'), 'caducee_public_hopital_a_mssante_test');
    const long = notificationChannelName('operateur_regional', 'messagerie-securisee.centre-hospitalier-universitaire.mssante.fr');
    assert.match(long, /^caducee_operateur_regional_messagerie_securise_[0-9a-f]{16}$/);
    assert.equal(long.length, 63);
    assert.notEqual(notificationChannelName('public', 'a.mssante.test'), notificationChannelName('other', 'a.mssante.test'));
  });

  test('an event published by one relay arrives at the other, ids only, and is not echoed', async (t) => {
    if (skip) return t.skip(skip);
    const a = node();
    const b = node();
    await a.relay.start();
    await b.relay.start();
    try {
      const seenByA: unknown[] = [];
      a.events.on('delivered', (e) => seenByA.push(e));
      const arrived = next<Record<string, unknown>>(b.events, 'delivered', 'the delivery published by relay A never reached relay B');
      a.events.emit('delivered', { mailboxId: 7, folderId: 11, uid: 3, messageId: 42, subject: 'never relayed' });
      const e = await arrived;
      assert.deepEqual({ ...e }, { mailboxId: 7, folderId: 11, uid: 3, messageId: 42 });
      assert.equal(isRelayed(e), true);
      assert.equal((e as any)[FROM_RELAY], true);

      // B re-emitted it locally but never published it again; A's own NOTIFY came back to A and was dropped.
      // A round trip B → A after it proves A has processed everything sent before.
      const back = next<Record<string, unknown>>(a.events, 'grants-changed', 'relay B could not reach relay A');
      b.events.emit('grants-changed', { mailboxId: 7, userId: 5 });
      assert.deepEqual({ ...(await back) }, { mailboxId: 7, userId: 5 });
      assert.equal(seenByA.length, 1, 'A saw its own delivery once: no echo');
      assert.equal(isRelayed(seenByA[0]), false);
      assert.equal(b.relay.counters.published, 1, 'B published only its own grants change');
      assert.equal(a.relay.counters.published, 1);
      assert.equal(a.relay.counters.received, 1);
      assert.equal(b.relay.counters.received, 1);

      // 'queued' carries nothing; another operator's channel (another name, or the same name in
      // another schema) hears nothing.
      const otherEvents = new EventEmitter();
      const otherRelay = new EventRelay(otherEvents, transport('hopital-b.mssante.test').transport, { logger, resyncEveryMs: 0 });
      const elsewhereEvents = new EventEmitter();
      const elsewhere = new EventRelay(elsewhereEvents, transport('hopital-a.mssante.test', 'operateur_b').transport, { logger, resyncEveryMs: 0 });
      await elsewhere.start();
      await otherRelay.start();
      try {
        const q = next<unknown>(b.events, 'queued', "relay A's 'queued' never reached relay B");
        a.events.emit('queued');
        assert.equal(isRelayed(await q), true);
        const fence = next(otherEvents, 'submission', "the other operator's own round trip failed");
        // A message on the other channel (published by a second relay there) proves its listener works.
        const other2Events = new EventEmitter();
        const other2 = new EventRelay(other2Events, transport('hopital-b.mssante.test').transport, { logger, resyncEveryMs: 0 });
        await other2.start();
        other2Events.emit('submission', { id: 1, mailboxId: 2 });
        await fence;
        await other2.stop();
        assert.equal(otherRelay.counters.received, 1, "the other operator's relay heard only its own channel");
        assert.equal(elsewhere.counters.received, 0, 'the same operator name in another schema heard nothing');
      } finally {
        await otherRelay.stop();
        await elsewhere.stop();
      }
    } finally {
      await a.relay.stop();
      await b.relay.stop();
    }
  });

  test("a relay whose connection is killed reconnects, emits 'resync' and asks the others to resync", async (t) => {
    if (skip) return t.skip(skip);
    const a = node();
    const b = node();
    await a.relay.start();
    await b.relay.start();
    try {
      const pid = a.channel.backendPid;
      assert.ok(pid, 'the LISTEN connection has a server process');
      const resyncA = next<ResyncEvent>(a.events, 'resync', 'relay A never reported its reconnection');
      const resyncB = next<ResyncEvent>(b.events, 'resync', 'relay B was never asked to resync');
      const admin = new pg.Client({ connectionString: db!.url });
      await admin.connect();
      try {
        const r = await admin.query('SELECT pg_terminate_backend($1) AS ok', [pid]);
        assert.equal(r.rows[0].ok, true);
      } finally {
        await admin.end();
      }
      assert.deepEqual(await resyncA, { reason: 'gap' });
      assert.deepEqual(await resyncB, { reason: 'peer-gap' });
      assert.equal(a.channel.reconnects, 1);
      assert.notEqual(a.channel.backendPid, pid, 'a new LISTEN connection');
      // Listening again: B's next event reaches A.
      const arrived = next<Record<string, unknown>>(a.events, 'folder-changed', 'relay A does not listen after its reconnection');
      b.events.emit('folder-changed', { folderId: 3, kind: 'changed', ids: ['e1', 'e2'] });
      assert.deepEqual({ ...(await arrived) }, { folderId: 3, kind: 'changed', ids: ['e1', 'e2'] });
    } finally {
      await a.relay.stop();
      await b.relay.stop();
    }
  });

  test('while the database refuses connections the relay retries with backoff, then listens again', async (t) => {
    if (skip) return t.skip(skip);
    const a = node();
    const b = node();
    await a.relay.start();
    await b.relay.start();
    const name = new URL(db!.url).pathname.slice(1);
    const admin = new pg.Client({ connectionString: process.env.CADUCEE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test' });
    await admin.connect();
    try {
      const resync = next<ResyncEvent>(a.events, 'resync', 'relay A never reported its reconnection');
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend($1)', [a.channel.backendPid]);
      await waitFor(() => a.channel.failedAttempts >= 2, 'relay A to fail reconnecting while connections are refused');
      assert.equal(a.channel.reconnects, 0);
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
      assert.deepEqual(await resync, { reason: 'gap' });
      assert.equal(a.channel.reconnects, 1);
      const arrived = next<Record<string, unknown>>(a.events, 'submission', 'relay A does not listen after its reconnection');
      b.events.emit('submission', { id: 12, mailboxId: 3 });
      assert.deepEqual({ ...(await arrived) }, { id: 12, mailboxId: 3 });
    } finally {
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`).catch(() => {});
      await admin.end();
      await a.relay.stop();
      await b.relay.stop();
    }
  });

  test('a folder change naming more ids than NOTIFY carries arrives as the folder alone', async (t) => {
    if (skip) return t.skip(skip);
    const a = node();
    const b = node();
    await a.relay.start();
    await b.relay.start();
    try {
      const ids = Array.from({ length: 2000 }, (_, i) => `e${1_000_000 + i}`);
      const arrived = next<Record<string, unknown>>(b.events, 'folder-changed', 'the oversized folder change never arrived');
      a.events.emit('folder-changed', { folderId: 9, kind: 'destroyed', ids });
      assert.deepEqual({ ...(await arrived) }, { folderId: 9 });
      assert.equal(a.relay.counters.dropped, 0);
    } finally {
      await a.relay.stop();
      await b.relay.stop();
    }
  });

  test("the safety poll emits 'resync' on its own", async (t) => {
    if (skip) return t.skip(skip);
    const a = node(20);
    await a.relay.start();
    try {
      assert.deepEqual(await next<ResyncEvent>(a.events, 'resync', 'no safety poll'), { reason: 'poll' });
    } finally {
      await a.relay.stop();
    }
  });
});
