// The software API (docs/software-api.md) between two demo operators over real HTTPS, SMTP and
// IMAP: API tokens in requireCaller (grants decide, revocation at once); POST /api/v1/documents
// as A's APP mailbox → B's APP mailbox, fetched over IMAP and read with src/xdm (documents
// byte-identical, hashes, X-MSS-CODECDA / X-MSS-INS); B's software gets the signed webhook (an
// HTTPS receiver under the demo CA) and pulls the same event; tracking at A goes delivered (the
// destination's DSN, NOTIFY=SUCCESS), then error 902 when B acknowledges the integration, and
// A's APP mailbox holds the ANS MDN; a read receipt through /mdn → displayed.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { simpleParser } from 'mailparser';
import { Authenticator } from '../src/auth/index.js';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { verifyWebhookSignature, EVENT_ID_HEADER, SIGNATURE_HEADER } from '../src/integration/webhooks.js';
import type { Operator } from '../src/main.js';
import type { User } from '../src/model/index.js';
import { TestPki } from '../src/pki/test-pki.js';
import { readXdm } from '../src/xdm/index.js';
import { tempDir, testLogger, waitFor } from './helpers.js';
import { PATIENT, sampleCda, samplePdf } from './xdm/corpus.js';

const FAST_QUEUE = { queue: { retrySeconds: [0.3], pollSeconds: 0.1, giveUpSeconds: 600, connectTimeoutSeconds: 3 } };
const ADMIN = { protocol: 'cli' as const, actor: 'test', remote: null };

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
}

/** One HTTPS request with a bearer token (API clients send no cookie and no CSRF header). */
function call(base: string, ca: string, token: string, method: string, p: string, json?: unknown, headers: Record<string, string> = {}): Promise<Res> {
  const url = new URL(p, base);
  const payload = json === undefined ? undefined : Buffer.isBuffer(json) ? json : Buffer.from(JSON.stringify(json));
  return new Promise((resolve, reject) => {
    const r = https.request(
      url,
      { method, ca, agent: false, headers: { accept: 'application/json', authorization: `Bearer ${token}`, ...(payload ? { 'content-type': 'application/json' } : {}), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d) => chunks.push(d));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode!, headers: res.headers, body: text && /json/.test(String(res.headers['content-type'])) ? JSON.parse(text) : text });
        });
      },
    );
    r.on('error', reject);
    r.end(payload);
  });
}

describe('software API between two operators', { timeout: 180_000 }, () => {
  const { dir, cleanup } = tempDir('caducee-software-api-');
  let layout: DemoLayout;
  let demo: RunningDemo;
  let ca: string;
  let A: Operator;
  let B: Operator;
  let appA: string;
  let appB: string;
  let tokenA: string;
  let tokenB: string;
  let userB: User;
  let receiver: https.Server;
  let hookUrl: string;
  const received: { id: string; signature: string; body: string }[] = [];
  const baseA = () => layout.operators[0]!.https!;
  const baseB = () => layout.operators[1]!.https!;

  /** An API client account with read + send on the operator's APP mailbox (grants through Core), and its token. */
  async function apiClient(op: Operator, login: string, mailbox: string): Promise<{ user: User; token: string; tokenId: number }> {
    const user = await op.core.createUser({ login, displayName: `Logiciel ${login}` });
    await op.core.grant(mailbox, login, ['read', 'send']);
    const { token, secret } = await new Authenticator(op.store).createApiToken(user, 'DPI test', ADMIN);
    return { user, token: secret, tokenId: token.id };
  }

  before(async () => {
    layout = await prepareDemo(dir, { ports: 'ephemeral', configOverrides: FAST_QUEUE });
    // Webhook endpoints under the demo's PKI (integrations.webhooks.caFile), polled quickly.
    demo = await startDemo(layout, { logger: testLogger(), psc: false, configOverrides: { ...FAST_QUEUE, integrations: { webhooks: { caFile: layout.caBundle, pollSeconds: 0.2 } } } });
    [A, B] = demo.operators as [Operator, Operator];
    ca = readFileSync(layout.caBundle, 'utf8');
    appA = layout.operators[0]!.certificates.organisation.appMailbox;
    appB = layout.operators[1]!.certificates.organisation.appMailbox;
    tokenA = (await apiClient(A, 'api.dpi-a', appA)).token;
    const b = await apiClient(B, 'api.dpi-b', appB);
    tokenB = b.token;
    userB = b.user;
    // B's software: an HTTPS endpoint with a certificate of the demo's PKI.
    const pki = await TestPki.load(layout.pkiDir);
    const leaf = await pki.issueServer({ host: 'localhost', siret: '12345678901234', org: 'Éditeur DPI', dept: 'Paris (75)', altNames: ['127.0.0.1'] });
    receiver = https.createServer({ key: leaf.keyPem, cert: leaf.chainPem }, (req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c) => parts.push(c));
      req.on('end', () => {
        received.push({ id: String(req.headers[EVENT_ID_HEADER]), signature: String(req.headers[SIGNATURE_HEADER]), body: Buffer.concat(parts).toString('utf8') });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    hookUrl = `https://127.0.0.1:${(receiver.address() as AddressInfo).port}/mssante`;
  });
  after(async () => {
    receiver?.closeAllConnections();
    await new Promise((r) => (receiver ? receiver.close(r) : r(undefined)));
    await demo?.stop();
    cleanup();
  });

  test('API tokens: the token opens what its grants open (404 elsewhere); a revoked token is refused at once', async () => {
    const me = await call(baseA(), ca, tokenA, 'GET', '/api/v1/me');
    assert.equal(me.status, 200, JSON.stringify(me.body));
    assert.equal(me.body.login, 'api.dpi-a');
    assert.deepEqual(
      me.body.mailboxes.map((m: any) => m.address),
      [appA],
      'only the APP mailbox its grant opens',
    );
    // Claire's INBOX: a real folder id of a mailbox the token has no grant on.
    const claire = await A.store.findMailboxByAddress(layout.operators[0]!.users[0]!.addresses[0]!);
    const inbox = await A.store.getFolder(claire!.id, 'INBOX');
    const other = await call(baseA(), ca, tokenA, 'GET', `/api/v1/folders/f${inbox!.id}/emails`);
    assert.equal(other.status, 404);
    assert.equal(other.body.code, 'not-found');
    assert.equal((await call(baseA(), ca, tokenA, 'GET', `/api/v1/mailboxes/${claire!.address}/inbound`)).status, 404);

    const spare = await apiClient(A, 'api.spare', appA);
    assert.equal((await call(baseA(), ca, spare.token, 'GET', '/api/v1/me')).status, 200);
    await new Authenticator(A.store).revokeApiToken(spare.tokenId, ADMIN);
    const refused = await call(baseA(), ca, spare.token, 'GET', '/api/v1/me');
    assert.equal(refused.status, 401);
    assert.equal(refused.body.code, 'not-authenticated');
    assert.match(String(refused.headers['www-authenticate']), /invalid_token/);
    assert.match(refused.body.detail, /Jeton d’API refusé/);
    const wrong = await call(baseA(), ca, `cad_${randomBytes(32).toString('base64url')}`, 'GET', '/api/v1/me');
    assert.equal(wrong.status, 401);
  });

  test('documents: A’s software → B’s APP mailbox; webhook and pull; DSN → delivered; integration error 902 → MDN; read receipt → displayed', async (t) => {
    // B's software registers its endpoint: the secret is shown once.
    const hook = await call(baseB(), ca, tokenB, 'POST', '/api/v1/webhooks', { mailbox: appB, url: hookUrl });
    assert.equal(hook.status, 201, JSON.stringify(hook.body));
    const secret: string = hook.body.secret;
    assert.ok(secret.length >= 32);
    const listed = await call(baseB(), ca, tokenB, 'GET', '/api/v1/webhooks');
    assert.equal(listed.body.webhooks.length, 1);
    assert.equal(listed.body.webhooks[0].secret, undefined, 'the secret is never shown again');
    assert.equal((await call(baseB(), ca, tokenB, 'POST', '/api/v1/webhooks', { mailbox: appB, url: 'http://127.0.0.1/x' })).status, 400);

    const cda = Buffer.from(sampleCda(), 'utf8');
    const pdf = samplePdf('CR biologie');
    const request = {
      from: appA,
      to: [appB],
      title: "Compte rendu d'examens biologiques",
      documents: [
        { content: cda.toString('base64'), mimeType: 'text/xml' },
        { content: pdf.toString('base64'), mimeType: 'application/pdf', title: 'CR biologie (PDF)', typeCode: { code: '11502-2', codingScheme: '2.16.840.1.113883.6.1', displayName: "CR d'examens biologiques" } },
      ],
      patient: PATIENT,
      author: { rpps: '10001234567', family: 'MARTIN', given: 'Paul', institution: { name: 'CH de Test', finess: '750000001' } },
      nil: 'DPI-Test 1.0',
      options: { readReceipt: true, notify: ['SUCCESS', 'FAILURE'] },
    };
    const key = `doc-${randomBytes(4).toString('hex')}`;
    const t0 = Date.now();
    const sent = await call(baseA(), ca, tokenA, 'POST', '/api/v1/documents', request, { 'idempotency-key': key });
    const t1 = Date.now();
    assert.equal(sent.status, 201, JSON.stringify(sent.body));
    assert.match(sent.body.id, /^s\d+$/);
    assert.match(sent.body.subject, /^XDM\/1\.0\/DDM\+Compte rendu d'examens biologiques DURAND Élodie 12\/03\/1979$/);
    const again = await call(baseA(), ca, tokenA, 'POST', '/api/v1/documents', request, { 'idempotency-key': key });
    assert.equal(again.status, 201);
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.equal(again.body.id, sent.body.id, 'the same submission: nothing sent twice');

    // B's software: the webhook, signed, then the same event by pull.
    const ev = await waitFor(() => received.find((r) => JSON.parse(r.body).data.subject === sent.body.subject), 'the webhook', 20_000);
    // Figures, not assertions (a shared machine): the answer, then the webhook at the other operator.
    t.diagnostic(`POST /documents answered in ${t1 - t0} ms; webhook at B ${Date.now() - t1} ms after the 201`);
    assert.ok(verifyWebhookSignature(secret, ev.body, ev.signature), 'signature verifies over the raw body');
    const payload = JSON.parse(ev.body);
    assert.equal(payload.id, ev.id);
    assert.equal(payload.mailbox, appB);
    const data = payload.data;
    assert.deepEqual(data.mss.codeCda, ['11502-2']);
    assert.equal(data.mss.ins, 'O');
    assert.equal(data.mss.nil, 'DPI-Test 1.0');
    assert.equal(data.xdm, true);
    assert.equal(data.documents.length, 2);
    const zipPart = data.attachments.find((a: any) => a.name === 'IHE_XDM.ZIP');
    assert.ok(zipPart, 'the IHE_XDM.ZIP attachment with its part id');
    for (const d of data.documents) {
      assert.equal(d.partId, zipPart.partId);
      assert.deepEqual(d.patient, { id: PATIENT.ins, oid: PATIENT.oid, kind: 'test' });
    }
    assert.deepEqual(
      data.documents.map((d: any) => [d.mimeType, d.size, d.hash]),
      [
        ['text/xml', cda.length, createHash('sha1').update(cda).digest('hex')],
        ['application/pdf', pdf.length, createHash('sha1').update(pdf).digest('hex')],
      ],
    );
    const pulled = await call(baseB(), ca, tokenB, 'GET', `/api/v1/mailboxes/${appB}/inbound?limit=100`);
    assert.equal(pulled.status, 200);
    const same = pulled.body.events.find((e: any) => e.id === ev.id);
    assert.ok(same, 'the pull feed has the webhook’s event id');
    assert.deepEqual(same.data, data, 'one describer: the same data');
    const after = await call(baseB(), ca, tokenB, 'GET', `/api/v1/mailboxes/${appB}/inbound?after=${ev.id}`);
    assert.ok(!after.body.events.some((e: any) => e.id === ev.id), 'after the cursor: not again');
    // The part link downloads the package itself.
    const zipDownload = await new Promise<Buffer>((resolve, reject) => {
      https
        // The published link names B's host name: resolved to the loopback here (no DNS in tests).
        .get(new URL(zipPart.download), { ca, agent: false, headers: { authorization: `Bearer ${tokenB}` }, lookup: ((_h: string, o: any, cb: any) => (o?.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4))) as any }, (res) => {
          const c: Buffer[] = [];
          res.on('data', (d) => c.push(d));
          res.on('end', () => resolve(Buffer.concat(c)));
        })
        .on('error', reject);
    });
    assert.equal(readXdm(zipDownload).documents.length, 2);
    // GET /emails/{id} has the documents (the webmail shows them).
    const email = await call(baseB(), ca, tokenB, 'GET', `/api/v1/emails/${data.emailId}`);
    assert.deepEqual(email.body.documents, data.documents.map(({ download: _d, ...d }: any) => d));

    // IMAP at B (the software's account with an app password): the documents byte-identical.
    const { password } = await new Authenticator(B.store).createAppPassword(userB, 'imap test', ADMIN);
    const imap = new ImapFlow({ host: '127.0.0.1', port: B.ports.imaps, secure: true, auth: { user: 'api.dpi-b', pass: password }, tls: { ca: readFileSync(layout.caBundle), servername: 'localhost' } as any, logger: false } as any);
    await imap.connect();
    let raw: Buffer;
    try {
      const boxes = await imap.list();
      const inbox = boxes.find((b) => b.path.endsWith('INBOX') && b.path.includes(appB.split('@')[0]!)) ?? boxes.find((b) => /INBOX$/.test(b.path))!;
      const lock = await imap.getMailboxLock(inbox.path);
      try {
        const msgs = [];
        for await (const m of imap.fetch('1:*', { source: true, envelope: true })) msgs.push(m);
        raw = msgs.find((m) => m.envelope?.subject === sent.body.subject)!.source!;
      } finally {
        lock.release();
      }
    } finally {
      await imap.logout();
    }
    assert.ok(raw, 'the message over IMAP');
    const head = raw.subarray(0, raw.indexOf('\r\n\r\n')).toString('latin1');
    assert.match(head, /^X-MSS-CODECDA: 11502-2\r?$/m);
    assert.match(head, /^X-MSS-INS: O\r?$/m);
    const parsed = await simpleParser(raw);
    const pkg = readXdm(parsed.attachments.find((a) => a.filename === 'IHE_XDM.ZIP')!.content);
    assert.deepEqual(Buffer.from(pkg.documents[0]!.bytes), cda);
    assert.deepEqual(Buffer.from(pkg.documents[1]!.bytes), pdf);
    for (const d of pkg.documents) assert.equal(d.hash, d.declaredHash, 'SHA-1 as the metadata says');

    // A's tracking: delivered once B's DSN (NOTIFY=SUCCESS) is back.
    const tracking = (want: string) =>
      waitFor(async () => {
        const r = await call(baseA(), ca, tokenA, 'GET', `/api/v1/submissions/${sent.body.id}`);
        return r.body.recipients?.[0]?.status === want ? r.body : undefined;
      }, `tracking ${want}`, 20_000);
    await tracking('delivered');
    const list = await call(baseA(), ca, tokenA, 'GET', '/api/v1/submissions?limit=1');
    assert.equal(list.body.submissions[0].id, sent.body.id);
    assert.equal((await call(baseB(), ca, tokenB, 'GET', `/api/v1/submissions/${sent.body.id}`)).status, 404, 'B’s token sees nothing of A’s tracking');

    // B's software could not find the patient: integration error 902 → MDN in the ANS format.
    const ack = await call(baseB(), ca, tokenB, 'POST', `/api/v1/emails/${data.emailId}/integration`, { status: 'error', code: 902 });
    assert.equal(ack.status, 200, JSON.stringify(ack.body));
    assert.equal(ack.body.sent, 'mdn');
    const twice = await call(baseB(), ca, tokenB, 'POST', `/api/v1/emails/${data.emailId}/integration`, { status: 'processed' });
    assert.equal(twice.status, 409);
    assert.match(twice.body.detail, /déjà été envoyé/);
    assert.equal((await call(baseB(), ca, tokenB, 'POST', `/api/v1/emails/${data.emailId}/integration`, { status: 'error', code: 907 })).status, 400);
    const errored = await tracking('error');
    assert.match(errored.recipients[0].detail, /902/);
    const mdn = await waitFor(async () => {
      const inbox = await call(baseA(), ca, tokenA, 'GET', '/api/v1/me');
      const f = inbox.body.mailboxes[0].folders.find((x: any) => x.role === 'inbox');
      const page = await call(baseA(), ca, tokenA, 'GET', `/api/v1/folders/${f.id}/emails?limit=50`);
      return page.body.emails.find((e: any) => e.subject === `[KO Intégration système !][902] ${sent.body.subject}`);
    }, 'the MDN in A’s APP mailbox', 20_000);
    const mdnRaw = (await call(baseA(), ca, tokenA, 'GET', `/api/v1/emails/${mdn.id}/raw`)).body as string;
    assert.match(mdnRaw, /report-type="?disposition-notification/);
    assert.match(mdnRaw, /processed\/Error: 902\^/);

    // A read receipt asked by a second message: /mdn → displayed; once only.
    const second = await call(baseA(), ca, tokenA, 'POST', '/api/v1/submissions', { from: appA, to: [appB], subject: 'Lecture demandée', text: 'Bonjour.', readReceipt: true });
    assert.equal(second.status, 201, JSON.stringify(second.body));
    const ev2 = await waitFor(() => received.map((r) => JSON.parse(r.body)).find((p) => p.data.subject === 'Lecture demandée'), 'the second webhook', 20_000);
    const read = await call(baseB(), ca, tokenB, 'POST', `/api/v1/emails/${ev2.data.emailId}/mdn`, {});
    assert.equal(read.status, 200, JSON.stringify(read.body));
    assert.deepEqual(read.body.to, [appA]);
    assert.equal((await call(baseB(), ca, tokenB, 'POST', `/api/v1/emails/${ev2.data.emailId}/mdn`, {})).status, 409);
    await waitFor(async () => ((await call(baseA(), ca, tokenA, 'GET', `/api/v1/submissions/${second.body.id}`)).body.recipients[0].status === 'displayed' ? true : undefined), 'displayed', 20_000);
    // The first message's MDN is not a message asking for a receipt: 400 with the French reason.
    const notAsked = await call(baseA(), ca, tokenA, 'POST', `/api/v1/emails/${mdn.id}/mdn`, {});
    assert.equal(notAsked.status, 400);
    assert.equal(notAsked.body.code, 'receipt-refused');

    // The webhook is the caller's: another software cannot see or revoke it; its owner can.
    const otherB = await apiClient(B, 'api.other-b', appB);
    assert.deepEqual((await call(baseB(), ca, otherB.token, 'GET', '/api/v1/webhooks')).body.webhooks, []);
    assert.equal((await call(baseB(), ca, otherB.token, 'DELETE', `/api/v1/webhooks/${hook.body.id}`)).status, 404);
    assert.equal((await call(baseB(), ca, tokenB, 'DELETE', `/api/v1/webhooks/${hook.body.id}`)).status, 204);
    assert.deepEqual((await call(baseB(), ca, tokenB, 'GET', '/api/v1/webhooks')).body.webhooks, []);
  });
  test('multipart documents, X-MSS-MES: FIN (draft kept, refused towards a professional), the submission events of the stream', async () => {
    // The event stream with the API token: tracking changes arrive as `event: submission`.
    const events: { event: string; data: any }[] = [];
    const stream = https.request(new URL('/api/v1/events', baseA()), { ca, agent: false, headers: { accept: 'text/event-stream', authorization: `Bearer ${tokenA}` } }, (res) => {
      assert.equal(res.statusCode, 200);
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const f: Record<string, string> = {};
          for (const line of buf.slice(0, i).split('\n')) {
            const m = /^([a-z]+): ?(.*)$/.exec(line);
            if (m) f[m[1]!] = m[2]!;
          }
          buf = buf.slice(i + 2);
          if (f.event) events.push({ event: f.event, data: JSON.parse(f.data ?? '{}') });
        }
      });
    });
    stream.on('error', () => undefined);
    stream.end();
    try {
      // multipart/form-data: the description in `metadata`, the CDA as a file part.
      const cda = Buffer.from(sampleCda(), 'utf8');
      const boundary = `----caducee${randomBytes(8).toString('hex')}`;
      const body = Buffer.concat([
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="metadata"\r\nContent-Type: application/json\r\n\r\n`),
        Buffer.from(JSON.stringify({ from: appA, to: [appB], title: 'CR multipart', patient: PATIENT, options: { notify: ['SUCCESS'] } })),
        Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="cr.xml"\r\nContent-Type: text/xml\r\n\r\n`),
        cda,
        Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="crh.xml"\r\nContent-Type: text/xml\r\n\r\n`),
        Buffer.from(sampleCda({ code: '34112-3', displayName: "CR d'hospitalisation" }), 'utf8'),
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]);
      const sent = await call(baseA(), ca, tokenA, 'POST', '/api/v1/documents', body, { 'content-type': `multipart/form-data; boundary=${boundary}` });
      assert.equal(sent.status, 201, JSON.stringify(sent.body));
      const ev = await waitFor(() => events.find((e) => e.event === 'submission' && e.data.id === sent.body.id), 'a submission event', 20_000);
      assert.equal(ev.data.mailbox, appA);
      const copy = (await call(baseA(), ca, tokenA, 'GET', `/api/v1/emails/${sent.body.emailId}`)).body;
      assert.deepEqual(copy.documents.map((x: any) => x.cdaCode), ['11502-2', '34112-3'], 'the Sent copy shows its documents');
      // ECO.2.4.1 (multi-valued): one X-MSS-CODECDA field per CDA, as src/xdm writes them; the pipeline accepts it.
      const sentRaw = (await call(baseA(), ca, tokenA, 'GET', `/api/v1/emails/${sent.body.emailId}/raw`)).body as string;
      assert.deepEqual(sentRaw.slice(0, sentRaw.indexOf('\r\n\r\n')).match(/^X-MSS-CODECDA:.*$/gm), ['X-MSS-CODECDA: 11502-2', 'X-MSS-CODECDA: 34112-3']);

      // The same Idempotency-Key twice at once: one message, the second waits for the first's answer.
      const k = `race-${randomBytes(4).toString('hex')}`;
      const plain = { from: appA, to: [appB], subject: 'Deux fois la même clé', text: 'Une seule fois.' };
      const [r1, r2] = await Promise.all([0, 1].map(() => call(baseA(), ca, tokenA, 'POST', '/api/v1/submissions', plain, { 'idempotency-key': k })));
      assert.deepEqual([r1!.status, r2!.status], [201, 201]);
      assert.equal(r1!.body.id, r2!.body.id, 'one submission');
      assert.equal([r1, r2].filter((r) => r!.headers['idempotent-replayed'] === 'true').length, 1);

      // An IHE_XDM.ZIP that is no zip: the message shows why its documents cannot be read.
      const up = await call(baseA(), ca, tokenA, 'POST', '/api/v1/uploads', randomBytes(2000), { 'content-type': 'application/zip', 'x-filename': 'IHE_XDM.ZIP' });
      assert.equal(up.status, 201, JSON.stringify(up.body));
      const broken = await call(baseA(), ca, tokenA, 'POST', '/api/v1/submissions', { from: appA, to: [appB], subject: 'Archive abîmée', text: 'Voir pièce jointe.', attachments: [{ uploadId: up.body.uploadId }] });
      assert.equal(broken.status, 201, JSON.stringify(broken.body));
      const shown = (await call(baseA(), ca, tokenA, 'GET', `/api/v1/emails/${broken.body.emailId}`)).body;
      assert.deepEqual(shown.documents, []);
      assert.equal(shown.documentErrors.length, 1);
      assert.equal(shown.documentErrors[0].partId, shown.attachments[0].partId);

      // Bad documents: a precise French refusal, nothing sent.
      const bad = await call(baseA(), ca, tokenA, 'POST', '/api/v1/documents', { from: appA, to: [appB], title: 'Sans document', patient: PATIENT });
      assert.equal(bad.status, 400);
      assert.match(bad.body.detail, /au moins un document/);

      // endConversation: the draft keeps X-MSS-MES: FIN; towards a professional the pipeline refuses it.
      const draft = await call(baseA(), ca, tokenA, 'POST', '/api/v1/drafts', { from: appA, to: [appB], subject: 'Fin', text: 'Fin.', endConversation: true });
      assert.equal(draft.status, 201, JSON.stringify(draft.body));
      assert.match((await call(baseA(), ca, tokenA, 'GET', `/api/v1/emails/${draft.body.id}/raw`)).body, /^X-MSS-MES: FIN\r?$/m);
      const fin = await call(baseA(), ca, tokenA, 'POST', '/api/v1/submissions', { from: appA, to: [appB], subject: 'Fin', text: 'Fin.', endConversation: true });
      assert.equal(fin.status, 422, JSON.stringify(fin.body));
      assert.match(fin.body.detail, /X-MSS-MES/);
    } finally {
      stream.destroy();
    }
  });
});
