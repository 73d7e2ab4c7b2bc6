// Webhooks of the software API (src/integration/webhooks.ts): real HTTPS endpoints on 127.0.0.1
// with a certificate of a test PKI; messages delivered through Core into an APP mailbox.
// Checked: order, signature, stable event ids, at-least-once across an endpoint that is down,
// backoff then abandonment after the retry period, revocation when the grant goes, and the
// registration rules (https only, read right decided by Core).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import https from 'node:https';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { TestPki } from '../src/pki/test-pki.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { BlobStore } from '../src/store/blobs.js';
import { Core, type Mailbox, type User } from '../src/core/index.js';
import { SecretBox } from '../src/auth/secret-box.js';
import { Authenticator } from '../src/auth/index.js';
import { registerWebhook, verifyWebhookSignature, WebhookDispatcher, WebhookError, SIGNATURE_HEADER, EVENT_ID_HEADER } from '../src/integration/webhooks.js';
import { tempDir, testLogger, waitFor } from './helpers.js';
import { randomBytes } from 'node:crypto';

const DOMAIN = 'hopital.mssante.test';
let tmp: ReturnType<typeof tempDir>;
let pki: TestPki;
let server: { key: string; cert: string; ca: string };
let store: SqliteStore;
let blobs: BlobStore;
let core: Core;
let app: Mailbox;
let client: User;
let other: User;
const secrets = SecretBox.fromKey(randomBytes(32));

before(async () => {
  tmp = tempDir();
  pki = await TestPki.create(path.join(tmp.dir, 'pki'));
  const leaf = await pki.issueServer({ host: 'localhost', siret: '12345678901234', org: 'Éditeur DPI', dept: 'Paris (75)', altNames: ['127.0.0.1'] });
  server = { key: leaf.keyPem, cert: leaf.chainPem, ca: (await import('node:fs')).readFileSync(pki.caBundlePath, 'utf8') };
  store = SqliteStore.open(path.join(tmp.dir, 'caducee.db'));
  blobs = new BlobStore(path.join(tmp.dir, 'blobs'), store);
  core = new Core(store, [DOMAIN]);
  await core.createStructure('FINESS', '750712184', 'Hôpital Saint-Exemple');
  app = await core.createMailbox({ address: `dpi@${DOMAIN}`, type: 'APP', displayName: 'DPI', structure: { idType: 'FINESS', idValue: '750712184' } });
  client = await core.createUser({ login: 'api.dpi', displayName: 'Intégration DPI' });
  other = await core.createUser({ login: 'stranger', displayName: 'Sans droit' });
  await core.grant(app.address, client.login, ['read', 'send']);
});

after(async () => {
  await store.close();
  tmp.cleanup();
});

async function deliver(subject: string): Promise<void> {
  const raw = Buffer.from(`From: a@other.test\r\nTo: ${app.address}\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@t>\r\n\r\nbody ${subject}\r\n`);
  const blob = await blobs.put(raw);
  await core.deliver({ blobId: blob.id, size: blob.size, internalDate: new Date(), envelopeFrom: 'a@other.test', localMailboxIds: [app.id], remote: [] });
  blob.release();
}

/** An HTTPS endpoint that records what it receives and answers `status()`. */
async function endpoint(status: (subject: string) => number) {
  const got: { id: string; body: string; signature: string; subject: string }[] = [];
  const srv = https.createServer({ key: server.key, cert: server.cert }, (req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts).toString('utf8');
      const subject = JSON.parse(body).data.subject;
      const code = status(subject);
      if (code < 300) got.push({ id: String(req.headers[EVENT_ID_HEADER]), body, signature: String(req.headers[SIGNATURE_HEADER]), subject });
      res.writeHead(code).end();
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { got, url: `https://127.0.0.1:${(srv.address() as AddressInfo).port}/hook`, close: () => new Promise<void>((r) => (srv.closeAllConnections(), srv.close(() => r()))) };
}

const describe = async (_m: Mailbox, msg: { blobId: string }) => {
  const text = (await import('node:fs')).readFileSync(blobs.pathOf(msg.blobId), 'utf8');
  return { subject: /^Subject: (.*)$/m.exec(text)![1].trim() };
};

test('registration: https only, no credentials in the URL, and the read right (decided by Core)', async () => {
  const o = { core, store, secrets };
  await assert.rejects(registerWebhook(o, client, app.address, 'http://127.0.0.1/x'), (e: any) => e instanceof WebhookError && /must use https/.test(e.message));
  await assert.rejects(registerWebhook(o, client, app.address, 'https://u:p@127.0.0.1/x'), /no credentials/);
  await assert.rejects(registerWebhook(o, client, app.address, 'not a url'), /is not a URL/);
  await assert.rejects(registerWebhook(o, other, app.address, 'https://127.0.0.1/x'), /may not read/);
});

test('events go out in order, signed, with stable ids; an endpoint down gets them later, none lost', async () => {
  let code = 200;
  const ep = await endpoint(() => code);
  let clock = Date.now();
  await deliver('before-registration');
  const { webhook, secret } = await registerWebhook({ core, store, secrets }, client, app.address, ep.url, 'now');
  const d = new WebhookDispatcher({ store, core, secrets, describe, logger: testLogger(), ca: server.ca, pollSeconds: 0.05, now: () => clock });
  d.start();
  try {
    for (const s of ['one', 'two', 'three']) await deliver(s);
    await waitFor(() => ep.got.length >= 3, 'three events');
    assert.deepEqual(ep.got.map((g) => g.subject), ['one', 'two', 'three'], 'in arrival order; not the message from before the registration');
    for (const g of ep.got) assert.ok(verifyWebhookSignature(secret, g.body, g.signature, Math.floor(clock / 1000)), 'signature verifies');
    assert.ok(!verifyWebhookSignature(secret, ep.got[0].body + ' ', ep.got[0].signature, Math.floor(clock / 1000)), 'a changed body does not verify');
    assert.ok(!verifyWebhookSignature('other', ep.got[0].body, ep.got[0].signature, Math.floor(clock / 1000)), 'another secret does not verify');

    // The endpoint fails: the event is retried with backoff, and the same id comes back later.
    code = 503;
    await deliver('four');
    await waitFor(async () => ((await store.getWebhook(webhook.id))!.attempts >= 1 ? true : undefined), 'a failed try recorded');
    const failing = (await store.getWebhook(webhook.id))!;
    assert.equal(failing.lastError, 'HTTP 503');
    assert.ok(failing.nextAttemptAt >= clock + 4000, 'backoff: not before ~5 s');
    await deliver('five');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(ep.got.length, 3, 'nothing is skipped while the head event fails');
    code = 200;
    clock += 10 * 60_000; // past the backoff
    d.kick();
    await waitFor(() => ep.got.length >= 5, 'the two waiting events');
    assert.deepEqual(ep.got.map((g) => g.subject), ['one', 'two', 'three', 'four', 'five']);
    assert.equal(new Set(ep.got.map((g) => g.id)).size, 5, 'one id per message');
    const done = (await store.getWebhook(webhook.id))!;
    assert.equal(done.delivered, 5);
    assert.equal(done.failingSince, null);
  } finally {
    await d.stop();
    await store.revokeWebhook(webhook.id);
    await ep.close();
  }
});

test('an event refused for the whole retry period is abandoned; the feed goes on', async () => {
  // This endpoint never takes the event "refused".
  const ep = await endpoint((subject) => (subject === 'refused' ? 500 : 200));
  let clock = Date.now();
  const { webhook } = await registerWebhook({ core, store, secrets }, client, app.address, ep.url, 'now');
  const d = new WebhookDispatcher({ store, core, secrets, describe, logger: testLogger(), ca: server.ca, pollSeconds: 3600, retryHours: 1, now: () => clock });
  d.start();
  try {
    await deliver('refused');
    await waitFor(async () => ((await store.getWebhook(webhook.id))!.attempts >= 1 ? true : undefined), 'first failure');
    await deliver('after');
    clock += 2 * 3_600_000; // beyond retryHours
    d.kick();
    await waitFor(() => ep.got.length >= 1, 'the next event');
    assert.deepEqual(ep.got.map((g) => g.subject), ['after']);
    assert.equal((await store.getWebhook(webhook.id))!.abandoned, 1);
  } finally {
    await d.stop();
    await store.revokeWebhook(webhook.id);
    await ep.close();
  }
});

test('a grant withdrawn stops the feed: the webhook is revoked at the next pass', async () => {
  const ep = await endpoint(() => 200);
  const reader = await core.createUser({ login: 'reader.tmp', displayName: 'Lecteur' });
  await core.grant(app.address, reader.login, ['read']);
  const { webhook } = await registerWebhook({ core, store, secrets }, reader, app.address, ep.url, 'now');
  await core.grant(app.address, reader.login, []);
  const d = new WebhookDispatcher({ store, core, secrets, describe, logger: testLogger(), ca: server.ca, pollSeconds: 3600 });
  d.start();
  try {
    await deliver('private');
    await waitFor(async () => ((await store.getWebhook(webhook.id))!.revokedAt ? true : undefined), 'revoked');
    assert.equal(ep.got.length, 0, 'nothing was sent to a user without the read right');
  } finally {
    await d.stop();
    await ep.close();
  }
});

test('API tokens: bearer secret shown once, digest stored, revocable, audited', async () => {
  const auth = new Authenticator(store);
  const ctx = { protocol: 'cli' as const, actor: 'admin', remote: null };
  const { token, secret } = await auth.createApiToken(client, 'DPI — site Nord', ctx);
  assert.match(secret, /^cad_[A-Za-z0-9_-]{43}$/);
  const ok = await auth.apiToken(secret, { protocol: 'http', method: 'API-TOKEN', remote: '127.0.0.1' });
  assert.ok(ok.ok && ok.user.login === client.login);
  assert.equal((await auth.apiToken(secret.slice(0, -1) + 'x', { protocol: 'http', method: 'API-TOKEN', remote: '127.0.0.1' })).ok, false);
  assert.ok(!JSON.stringify(await store.listApiTokens()).includes(secret.slice(4)), 'the secret is not stored');
  await auth.revokeApiToken(token.id, ctx);
  assert.equal((await auth.apiToken(secret, { protocol: 'http', method: 'API-TOKEN', remote: '127.0.0.1' })).ok, false, 'revoked');
  const audit = await store.listAuthAudit(20);
  assert.ok(audit.some((a) => a.method === 'API-TOKEN-CREATE' && a.actor === 'admin'));
  assert.ok(audit.some((a) => a.method === 'API-TOKEN' && a.success));
});
