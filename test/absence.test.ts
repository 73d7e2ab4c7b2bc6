// Golden rule 3 across a local trust space: an absent practitioner at operator B answers a
// colleague at operator A once per period, over the trust space, and never answers automatic,
// list, report or Bcc-only mail (RFC 3834, RFC 5230).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { after, before, describe, test } from 'node:test';
import { simpleParser, type ParsedMail } from 'mailparser';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { secretDigest } from '../src/auth/index.js';
import { AccessDenied } from '../src/core/index.js';
import { SESSION_COOKIE } from '../src/http/session.js';
import type { Operator } from '../src/main.js';
import { AbsenceSettingsService } from '../src/policy/absence-service.js';
import { folderMessages, submitAs, tempDir, testLogger, waitFor } from './helpers.js';

const FAST_QUEUE = { queue: { retrySeconds: [0.3], pollSeconds: 0.1, giveUpSeconds: 600, connectTimeoutSeconds: 3 } };

describe('absence message (golden rule 3) between two operators', () => {
  let cleanup = () => {};
  let layout: DemoLayout;
  let demo: RunningDemo;
  let A: Operator;
  let B: Operator;
  let claire: DemoLayout['operators'][number]['users'][number];
  let secretariatA: DemoLayout['operators'][number]['users'][number];
  let paul: string;
  let substitute: string;

  before(async () => {
    let dir: string;
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral', configOverrides: FAST_QUEUE });
    demo = await startDemo(layout, { logger: testLogger(), configOverrides: FAST_QUEUE });
    [A, B] = demo.operators;
    [claire, secretariatA] = layout.operators[0].users;
    paul = layout.operators[1].users[0].addresses[0];
    substitute = layout.operators[1].users[1].addresses[0];
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  const absences = () => new AbsenceSettingsService({ core: B.core });

  /** Parsed absence replies in a mailbox of A. */
  async function replies(address: string): Promise<ParsedMail[]> {
    const all = await Promise.all((await folderMessages(A, address)).map((m) => simpleParser(m)));
    return all.filter((m) => /^Absence : /.test(m.subject ?? ''));
  }

  /** Waits until `address`'s INBOX at B holds `n` messages (the delivery and its hook ran). */
  const arrivedAtB = (n: number) => waitFor(async () => (await folderMessages(B, paul)).length >= n || undefined, `${n} message(s) at ${paul}`);

  test('only the owner or a manage delegate sets it (Core decides)', async () => {
    const s = absences();
    const secretary = await B.core.requireUser(layout.operators[1].users[1].login);
    await assert.rejects(s.set({ user: secretary }, paul, { body: 'x' }), AccessDenied, 'a read+send delegate may not');
    const owner = await B.core.requireUser(layout.operators[1].users[0].login);
    const v = await s.set({ user: owner }, paul, { endsAt: new Date(Date.now() + 10 * 86_400_000).toISOString(), substitute });
    assert.equal(v.active, true);
    assert.equal(v.substitute, substitute);
    assert.equal(v.updatedBy, owner.login);
    await assert.rejects(s.set({ administrator: 'root' }, paul, { substitute: 'nobody@example.org' }), /not in the national directory/);
  });

  test('the first message is answered once over the trust space; the second within the period is not', async () => {
    const send = (subject: string) =>
      submitAs(A.ports.submission, layout.caBundle, claire, {
        from: claire.addresses[0],
        to: paul,
        subject,
        text: 'Bonjour, voici le compte rendu.',
      });
    const first = await send('Compte rendu DUPONT');
    const reply = await waitFor(async () => (await replies(claire.addresses[0]))[0], 'the absence reply at A');
    await send('Compte rendu DURAND');
    await arrivedAtB(2);
    // The second message was handled by the time the responder logged; give the queue time anyway.
    await new Promise((r) => setTimeout(r, 1500));
    const all = await replies(claire.addresses[0]);
    assert.equal(all.length, 1, 'exactly one reply per sender per period (RFC 5230 §4.2)');
    assert.equal(reply.subject, 'Absence : Compte rendu DUPONT');
    assert.equal(reply.headers.get('auto-submitted'), 'auto-replied');
    assert.equal(reply.inReplyTo, first.messageId);
    assert.equal(reply.from?.value[0].address, paul);
    assert.match(reply.text ?? '', /Je suis absent\(e\) jusqu'au/);
    assert.match(reply.text ?? '', new RegExp(`Pendant mon absence, écrivez à ${substitute.replace(/\./g, '\\.')}`));
    // It left B with a null reverse-path (RFC 5230 §5.1) and went over the trust space.
    const queued = (await B.store.listQueue()).filter((q) => q.recipient === claire.addresses[0]);
    assert.equal(queued.length, 1);
    assert.equal(queued[0].envelopeFrom, '');
    assert.equal(queued[0].status, 'sent');
  });

  test('automatic, list, report and Bcc-only messages are never answered', async () => {
    const from = secretariatA.addresses[0];
    const send = (mail: any) => submitAs(A.ports.submission, layout.caBundle, secretariatA, { from, ...mail, envelope: { from, to: [paul] } });
    const before = (await folderMessages(B, paul)).length;
    await send({ to: paul, subject: 'Rappel automatique', text: 'x', headers: { 'Auto-Submitted': 'auto-generated' } });
    await send({ to: paul, subject: 'Lettre du service', text: 'x', headers: { 'List-Id': '<cardio.hopital-a.mssante.test>' } });
    await send({
      to: paul,
      subject: 'Avis de distribution',
      raw: [
        `From: <${from}>`,
        `To: <${paul}>`,
        'Subject: Avis de distribution',
        `Message-ID: <dsn.${Date.now()}@test>`,
        'MIME-Version: 1.0',
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
        '',
        '--b',
        'Content-Type: text/plain',
        '',
        'Remis.',
        '--b',
        'Content-Type: message/delivery-status',
        '',
        'Reporting-MTA: dns; mx.test',
        '',
        'Final-Recipient: rfc822; x@test',
        'Action: delivered',
        'Status: 2.0.0',
        '--b--',
        '',
      ].join('\r\n'),
    });
    await send({ to: 'undisclosed-recipients:;', subject: 'Copie cachée', text: 'x' });
    // The List-Id message is filed in "Non médical", not INBOX (content policy, docs/policy.md).
    await arrivedAtB(before + 3);
    await waitFor(async () => (await B.store.findMailboxByAddress(paul).then((m) => B.store.getFolder(m!.id, 'Non médical'))) && (await folderMessages(B, paul, 'Non médical')).length === 1, 'the list message in "Non médical"');
    // A human message from the same sender afterwards is answered: the four above were judged
    // (not merely slow) and none of them used up the sender's one reply.
    const human = await send({ to: paul, subject: 'Question', text: 'Une question.' });
    const reply = await waitFor(async () => (await replies(from))[0], 'the reply to the human message');
    await new Promise((r) => setTimeout(r, 500));
    const all = await replies(from);
    assert.deepEqual(
      all.map((m) => m.subject),
      ['Absence : Question'],
    );
    assert.equal(reply.inReplyTo, human.messageId);
  });

  test('a colleague of the same structure at the same operator gets the internal text in her INBOX (submission path)', async () => {
    await absences().set({ administrator: 'root' }, paul, { body: 'Texte pour mes collègues.', externalBody: 'Texte pour les correspondants extérieurs.', substitute });
    const colleague = layout.operators[1].users[1];
    const from = colleague.addresses[0];
    const replyTo = async () => {
      const all = await Promise.all((await folderMessages(B, from)).map((m) => simpleParser(m)));
      return all.filter((m) => /^Absence : /.test(m.subject ?? ''));
    };
    await submitAs(B.ports.submission, layout.caBundle, colleague, { from, to: paul, subject: 'Planning', text: 'Le planning de janvier.' });
    const [reply] = await waitFor(async () => {
      const r = await replyTo();
      return r.length ? r : undefined;
    }, 'the local absence reply');
    assert.equal(reply.subject, 'Absence : Planning');
    assert.match(reply.text ?? '', /^Texte pour mes collègues\./);
    assert.doesNotMatch(reply.text ?? '', /extérieurs/);
  });

  /** A full web session of `login` at B, as the login routes leave it (cookie token, CSRF token). */
  async function webSession(login: string) {
    const user = await B.core.requireUser(login);
    const token = randomBytes(32).toString('base64url');
    const csrf = randomBytes(32).toString('base64url');
    const t = Date.now();
    await B.store.createHttpSession({ tokenHash: secretDigest(token), userId: user.id, method: 'PASSWORD+TOTP', stage: 'full', csrfToken: csrf, createdAt: t, lastSeenAt: t, expiresAt: t + 3_600_000, remote: null, userAgent: null });
    return { token, csrf };
  }

  function call(base: string, method: string, path: string, o: { token?: string; csrf?: string; json?: unknown } = {}): Promise<{ status: number; body: any }> {
    const url = new URL(path, base);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (o.token) headers.cookie = `${SESSION_COOKIE}=${o.token}`;
    if (o.csrf) headers['x-csrf-token'] = o.csrf;
    const payload = o.json === undefined ? undefined : JSON.stringify(o.json);
    if (payload) headers['content-type'] = 'application/json';
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const r = lib.request(url, { method, headers, ca: readFileSync(layout.caBundle), agent: false } as https.RequestOptions, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined }));
      });
      r.on('error', reject);
      r.end(payload);
    });
  }

  test('web API: the owner reads, sets and clears it; a read+send delegate may not; CSRF and HTTPS required', async () => {
    const base = layout.operators[1].https!;
    const path = `/api/v1/mailboxes/${encodeURIComponent(paul)}/absence`;
    const owner = await webSession(layout.operators[1].users[0].login);
    const secretary = await webSession(layout.operators[1].users[1].login);
    const got = await call(base, 'GET', path, owner);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    assert.equal(got.body.substitute, substitute);
    const body = { endsAt: '2099-01-10T18:00:00+01:00', subject: 'Congés', body: 'Je reviens le 10 janvier.', externalBody: null, substitute: null };
    assert.equal((await call(base, 'PUT', path, { token: owner.token, json: body })).body.code, 'csrf');
    const put = await call(base, 'PUT', path, { ...owner, json: body });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual([put.body.endsAt, put.body.subject, put.body.substitute, put.body.active], ['2099-01-10T17:00:00.000Z', 'Congés', null, true]);
    const bad = await call(base, 'PUT', path, { ...owner, json: { endsAt: 'lundi' } });
    assert.deepEqual([bad.status, bad.body.code], [400, 'invalid-request']);
    const denied = await call(base, 'PUT', path, { ...secretary, json: body });
    assert.deepEqual([denied.status, denied.body.code], [403, 'forbidden']);
    assert.equal((await call(base, 'GET', path, secretary)).status, 403);
    assert.equal((await call(base, 'GET', path)).status, 401);
    const plain = await call(`http://${layout.operators[1].host}:${B.ports.http}`, 'GET', path, owner);
    assert.deepEqual([plain.status, plain.body.code], [403, 'https-required']);
    assert.equal((await call(base, 'DELETE', path, owner)).status, 204);
    assert.deepEqual((await call(base, 'GET', path, owner)).body.code, 'no-absence');
    assert.equal(await absences().get({ administrator: 'root' }, paul), undefined);
  });
});
