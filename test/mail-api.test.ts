// The mail API /api/v1 over real HTTPS against `caducee demo` (docs/mail-api.md): the three
// ways to call it (web session + CSRF, Pro Santé Connect bearer token, client certificate), the
// secretariat reading and sending on behalf of the physician (Sender: in the stored bytes),
// guessed ids of another's resources answered 404, CSRF and foreign Origin refused on every
// state-changing route of the OpenAPI document, JSON and multipart sending with a
// byte-identical attachment, delete → Trash → expunge, stable cursor paging, the event stream
// receiving an SMTP delivery within a second, and every registered /api route described.
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { RouteOptions } from 'fastify';
import { generate } from 'otplib';
import { CookieJar } from 'tough-cookie';
import { Authenticator } from '../src/auth/index.js';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { buildHttpApp } from '../src/http/app.js';
import { MailService } from '../src/mail/service.js';
import { SubmissionPipeline } from '../src/mail/submission.js';
import { MessageIndex } from '../src/mail/message-index.js';
import { ReceiptService } from '../src/policy/mdn-service.js';
import { SecretBox } from '../src/auth/secret-box.js';
import { loginWithBrowserFlow } from './support/oidc-browser.js';
import { folderMessages, submitAs, tempDir, testLogger, waitFor } from './helpers.js';

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
  raw: Buffer;
}

/** A client: cookie jar, CSRF token, optional client certificate and bearer token. */
class Client {
  jar = new CookieJar();
  csrf: string | undefined;
  constructor(
    readonly base: string,
    readonly ca: string,
    readonly o: { cert?: { cert: string; key: string }; bearer?: string } = {},
  ) {}

  async req(method: string, path: string, opt: { json?: unknown; body?: Buffer; type?: string; headers?: Record<string, string>; csrf?: boolean } = {}): Promise<Res> {
    const url = new URL(path, this.base);
    const headers: Record<string, string> = { accept: 'application/json', ...opt.headers };
    const cookie = await this.jar.getCookieString(url.href);
    if (cookie) headers.cookie = cookie;
    if (this.o.bearer) headers.authorization = `Bearer ${this.o.bearer}`;
    if (opt.csrf !== false && this.csrf && !('x-csrf-token' in headers)) headers['x-csrf-token'] = this.csrf;
    let payload: Buffer | undefined;
    if (opt.json !== undefined) {
      payload = Buffer.from(JSON.stringify(opt.json));
      headers['content-type'] ??= 'application/json';
    } else if (opt.body) {
      payload = opt.body;
      headers['content-type'] ??= opt.type ?? 'application/octet-stream';
    }
    const lib = url.protocol === 'https:' ? https : http;
    const res = await new Promise<http.IncomingMessage & { raw: Buffer }>((resolve, reject) => {
      const r = lib.request(url, { method, headers, ca: this.ca, agent: false, ...(this.o.cert ?? {}) } as https.RequestOptions, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d) => chunks.push(d));
        res.on('end', () => resolve(Object.assign(res, { raw: Buffer.concat(chunks) })));
      });
      r.on('error', reject);
      r.end(payload);
    });
    for (const c of res.headers['set-cookie'] ?? []) await this.jar.setCookie(c, url.href);
    const text = res.raw.toString('utf8');
    const body = text && /json/.test(String(res.headers['content-type'])) ? JSON.parse(text) : text;
    if (body?.csrfToken) this.csrf = body.csrfToken;
    return { status: res.statusCode!, headers: res.headers, body, raw: res.raw };
  }
}

/** An open SSE stream: events parsed as they arrive. */
function openEvents(base: string, ca: string, client: Client, headers: Record<string, string> = {}) {
  const events: { id: string; event: string; data: any; at: number }[] = [];
  let req: http.ClientRequest;
  const ready = (async () => {
    const cookie = await client.jar.getCookieString(base);
    return new Promise<void>((resolve, reject) => {
      req = https.request(new URL('/api/v1/events', base), { headers: { cookie, accept: 'text/event-stream', ...headers }, ca, agent: false }, (res) => {
        assert.equal(res.statusCode, 200);
        assert.match(String(res.headers['content-type']), /^text\/event-stream/);
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          buf += d;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const f: Record<string, string> = {};
            for (const line of block.split('\n')) {
              const m = /^([a-z]+): ?(.*)$/.exec(line);
              if (m) f[m[1]!] = m[2]!;
            }
            if (f.event) events.push({ id: f.id ?? '', event: f.event, data: JSON.parse(f.data ?? '{}'), at: Date.now() });
          }
        });
        resolve();
      });
      req.on('error', (e) => (events.length ? undefined : reject(e)));
      req.end();
    });
  })();
  return { events, ready, close: () => req?.destroy() };
}

const totp = (secret: string, offsetSeconds = 0) => generate({ secret, epoch: Math.floor(Date.now() / 1000) + offsetSeconds });

describe('mail API /api/v1 over HTTPS', { timeout: 180_000 }, () => {
  const { dir, cleanup } = tempDir('caducee-mail-api-');
  let layout: DemoLayout;
  let demo: RunningDemo;
  let ca: string;
  let base: string;
  let claire: Client; // session by CPS certificate
  let secretariat: Client; // session by password + TOTP
  const A = () => layout.operators[0]!;
  const op = () => demo.operators[0]!;
  const claireUser = () => A().users[0]!;
  const secUser = () => A().users[1]!;
  const per = () => claireUser().addresses[0]!; // claire.martin@…  (secretariat: read + send)
  const cab = () => claireUser().addresses[1]!; // cabinet.martin@… (secretariat: nothing)
  const org = () => secUser().addresses[0]!; // the secretariat's ORG mailbox

  const folderOf = async (c: Client, address: string, role: string) => {
    const me = await c.req('GET', '/api/v1/mailboxes');
    const mb = me.body.mailboxes.find((m: any) => m.address === address);
    return mb.folders.find((f: any) => f.role === role).id as string;
  };

  before(async () => {
    layout = await prepareDemo(dir, { ports: 'ephemeral' });
    demo = await startDemo(layout, { logger: testLogger() });
    ca = readFileSync(layout.caBundle, 'utf8');
    base = A().https!;
    const personal = A().certificates.personal;
    claire = new Client(base, ca, { cert: { cert: readFileSync(personal.cert, 'utf8'), key: readFileSync(personal.key, 'utf8') } });
    assert.equal((await claire.req('POST', '/api/auth/certificate', { json: {} })).status, 200);
    secretariat = new Client(base, ca);
    const r = await secretariat.req('POST', '/api/auth/login', { json: { login: secUser().login, password: secUser().password } });
    assert.equal(r.body.stage, 'enrol-second-factor');
    const full = await secretariat.req('POST', '/api/auth/second-factor/enrol', { json: { code: await totp(r.body.totp.secret) } });
    assert.equal(full.status, 200, JSON.stringify(full.body));
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  test('HTTPS only; no caller: 401', async () => {
    const plain = await new Client(A().http!, ca).req('GET', '/api/v1/me');
    assert.equal(plain.status, 403);
    assert.equal(plain.body.code, 'https-required');
    const none = await new Client(base, ca).req('GET', '/api/v1/me');
    assert.equal(none.status, 401);
    assert.equal(none.body.code, 'not-authenticated');
    assert.match(String(none.headers['content-type']), /^application\/problem\+json/);
  });

  test('the secretariat sees the physician’s mailbox as delegated, reads a delivery, and the event stream has it', async (t) => {
    const me = await secretariat.req('GET', '/api/v1/me');
    assert.equal(me.status, 200);
    assert.equal(me.body.login, secUser().login);
    const delegated = me.body.mailboxes.find((m: any) => m.address === per());
    assert.deepEqual({ role: delegated.role, rights: delegated.rights }, { role: 'delegated', rights: ['read', 'send'] });
    assert.ok(delegated.folders.some((f: any) => f.role === 'inbox' && f.name === 'INBOX'));
    assert.equal(me.body.mailboxes.find((m: any) => m.address === org()).role, 'own');
    assert.ok(!me.body.mailboxes.some((m: any) => m.address === cab()), 'no right on the CAB mailbox: not listed');

    const stream = openEvents(base, ca, secretariat);
    await stream.ready;
    const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n'), randomBytes(3000)]);
    const sentAt = Date.now();
    await submitAs(A().ports.submission, layout.caBundle, claireUser(), {
      from: per(),
      to: per(),
      subject: 'Compte rendu — échographie',
      text: 'Bonjour,\nveuillez trouver le compte rendu.\n',
      attachments: [{ filename: 'compte-rendu échographie.pdf', content: pdf, contentType: 'application/pdf' }],
    });
    const ev = await waitFor(() => stream.events.find((e) => e.event === 'email' && e.data.kind === 'created' && e.data.mailbox === per()), 'the delivery event', 5000);
    stream.close();
    // The latency is measured by bench/mail-api.ts (goal ≤ 1 s), not asserted here.
    t.diagnostic(`delivery → stream ${ev.at - sentAt} ms`);
    const inbox = await folderOf(secretariat, per(), 'inbox');
    assert.equal(ev.data.folderId, inbox);

    const list = await secretariat.req('GET', `/api/v1/folders/${inbox}/emails?limit=10`);
    assert.equal(list.status, 200);
    const summary = list.body.emails.find((e: any) => e.id === ev.data.ids[0]);
    assert.equal(summary.subject, 'Compte rendu — échographie');
    assert.equal(summary.attachmentCount, 1);
    assert.equal(summary.seen, false);
    assert.match(summary.preview, /veuillez trouver le compte rendu/);

    const email = await secretariat.req('GET', `/api/v1/emails/${summary.id}`);
    assert.equal(email.status, 200);
    assert.match(email.body.textBody, /veuillez trouver/);
    const att = email.body.attachments[0];
    assert.equal(att.name, 'compte-rendu échographie.pdf');
    assert.equal(att.type, 'application/pdf');
    const part = await secretariat.req('GET', `/api/v1/emails/${summary.id}/parts/${att.partId}`);
    assert.equal(part.status, 200);
    assert.ok(part.raw.equals(pdf), 'the attachment downloads byte-identical');
    assert.match(String(part.headers['content-disposition']), /^attachment; filename="compte-rendu echographie.pdf"; filename\*=UTF-8''compte-rendu%20%C3%A9chographie\.pdf$/);
    assert.equal(part.headers['x-content-type-options'], 'nosniff');
    const raw = await secretariat.req('GET', `/api/v1/emails/${summary.id}/raw`);
    assert.match(String(raw.headers['content-type']), /^message\/rfc822/);
    assert.ok(raw.raw.includes(Buffer.from('Subject: ')));

    // The read right includes \Seen (RFC 4314 "s"), not \Flagged ("w": manage).
    const seen = await secretariat.req('PATCH', `/api/v1/emails/${summary.id}`, { json: { seen: true } });
    assert.equal(seen.status, 200);
    assert.equal(seen.body.seen, true);
    const flag = await secretariat.req('PATCH', `/api/v1/emails/${summary.id}`, { json: { flagged: true } });
    assert.equal(flag.status, 403);
    assert.equal(flag.body.code, 'forbidden');
    // Searching runs the IMAP SEARCH engine.
    const found = await secretariat.req('GET', `/api/v1/search?mailbox=${encodeURIComponent(per())}&subject=${encodeURIComponent('COMPTE RENDU')}`);
    assert.equal(found.status, 200);
    assert.deepEqual(found.body.emails.map((e: any) => e.id), [summary.id], 'case-insensitive SUBJECT as IMAP SEARCH folds it');
    const none = await secretariat.req('GET', `/api/v1/search?folder=${inbox}&text=introuvable-xyz`);
    assert.equal(none.body.total, 0);
  });

  test('the secretariat sends on behalf of the physician: Sender: set in the stored bytes, copy in Sent', async () => {
    const r = await secretariat.req('POST', '/api/v1/submissions', { json: { from: per(), to: [cab()], subject: 'Rendez-vous confirmé', text: 'Le rendez-vous de M. Durand est confirmé.', readReceipt: true } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.sender, org());
    assert.deepEqual(r.body.recipients.map((x: any) => [x.address, x.status]), [[cab(), 'delivered']]);
    const got = (await folderMessages(op(), cab())).find((b) => b.includes(Buffer.from('M. Durand')));
    assert.ok(got, 'delivered to the CAB mailbox');
    const head = got.subarray(0, got.indexOf('\r\n\r\n')).toString();
    assert.match(head, new RegExp(`^From: .*<${per().replace('.', '\\.')}>`, 'm'));
    assert.match(head, new RegExp(`^Sender: ${org().replace('.', '\\.')}`, 'm'));
    assert.match(head, new RegExp(`^Disposition-Notification-To: ${per().replace('.', '\\.')}`, 'm'));
    assert.match(head, /^Message-ID: </m);
    const sent = await secretariat.req('GET', `/api/v1/emails/${r.body.emailId}`);
    assert.equal(sent.status, 200);
    assert.equal(sent.body.mailbox, per());
    assert.deepEqual(sent.body.sender, [{ name: null, email: org() }]);
    // Not allowed to send as the CAB mailbox (no send grant): 403, nothing stored.
    const before = (await folderMessages(op(), per())).length;
    const refused = await secretariat.req('POST', '/api/v1/submissions', { json: { from: cab(), to: [per()], subject: 'x', text: 'x' } });
    assert.equal(refused.status, 403);
    assert.equal((await folderMessages(op(), per())).length, before);
    // Recipients outside the trust space or unknown: 422 with per-recipient reasons, nothing sent.
    const bad = await secretariat.req('POST', '/api/v1/submissions', { json: { from: per(), to: [cab(), 'quelqu.un@gmail.com', `inconnu@${A().domain}`], subject: 'x', text: 'x' } });
    assert.equal(bad.status, 422);
    assert.equal(bad.body.code, 'recipient-refused');
    assert.deepEqual(bad.body.recipients.map((x: any) => x.address).sort(), ['quelqu.un@gmail.com', `inconnu@${A().domain}`].sort());
    assert.match(bad.body.recipients.find((x: any) => x.address === 'quelqu.un@gmail.com').reason, /espace de confiance/);
    assert.match(bad.body.recipients.find((x: any) => x.address === 'quelqu.un@gmail.com').smtp, /^550 5\.7\.1 /);
  });

  test('JSON with an upload and multipart sending: the other mailbox receives the attachment byte-identical; Idempotency-Key', async () => {
    const file = randomBytes(50_000);
    const up = await claire.req('POST', '/api/v1/uploads', { body: file, type: 'application/octet-stream', headers: { 'x-filename': encodeURIComponent('résultats.bin') } });
    assert.equal(up.status, 201, JSON.stringify(up.body));
    assert.equal(up.body.name, 'résultats.bin');
    const key = randomBytes(8).toString('hex');
    const draft = { from: per(), to: [org()], subject: 'Résultats', text: 'Ci-joint.', attachments: [{ uploadId: up.body.uploadId }] };
    const r1 = await claire.req('POST', '/api/v1/submissions', { json: draft, headers: { 'idempotency-key': key } });
    assert.equal(r1.status, 201, JSON.stringify(r1.body));
    const r2 = await claire.req('POST', '/api/v1/submissions', { json: draft, headers: { 'idempotency-key': key } });
    assert.equal(r2.status, 201);
    assert.equal(r2.body.id, r1.body.id, 'replayed, not sent twice');
    assert.equal((await folderMessages(op(), org())).filter((b) => b.includes(Buffer.from('Subject: =?UTF-8?Q?R=C3=A9sultats?='))).length, 1);

    // multipart/form-data: the Draft JSON in `message`, the file as a part.
    const pdf = Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(20_000)]);
    const boundary = `----caducee${randomBytes(8).toString('hex')}`;
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="message"\r\nContent-Type: application/json\r\n\r\n`),
      Buffer.from(JSON.stringify({ from: per(), to: [org()], subject: 'Ordonnance', text: 'Voir pièce jointe.' })),
      Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="ordonnance.pdf"\r\nContent-Type: application/pdf\r\n\r\n`),
      pdf,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const m = await claire.req('POST', '/api/v1/submissions', { body, type: `multipart/form-data; boundary=${boundary}` });
    assert.equal(m.status, 201, JSON.stringify(m.body));
    // The secretariat (owner of the ORG mailbox) downloads it byte-identical.
    const inbox = await folderOf(secretariat, org(), 'inbox');
    const list = await secretariat.req('GET', `/api/v1/folders/${inbox}/emails`);
    for (const [subject, bytes] of [
      ['Ordonnance', pdf],
      ['Résultats', file],
    ] as const) {
      const e = list.body.emails.find((x: any) => x.subject === subject);
      assert.ok(e, subject);
      const full = await secretariat.req('GET', `/api/v1/emails/${e.id}`);
      const part = await secretariat.req('GET', `/api/v1/emails/${e.id}/parts/${full.body.attachments[0].partId}`);
      assert.ok(part.raw.equals(bytes), `${subject}: attachment byte-identical`);
    }
    // Forwarding: a draft takes a part of a readable message (the copy in Sent) as attachment.
    const sentCopy = await claire.req('GET', `/api/v1/emails/${m.body.emailId}`);
    assert.equal(sentCopy.body.attachments[0].name, 'ordonnance.pdf');
    const fwd = await claire.req('POST', '/api/v1/drafts', { json: { from: per(), to: [org()], subject: 'TR: Ordonnance', text: '', attachments: [{ emailId: m.body.emailId, partId: sentCopy.body.attachments[0].partId }] } });
    assert.equal(fwd.status, 201, JSON.stringify(fwd.body));
    const fwdEmail = await claire.req('GET', `/api/v1/emails/${fwd.body.id}`);
    assert.ok((await claire.req('GET', `/api/v1/emails/${fwd.body.id}/parts/${fwdEmail.body.attachments[0].partId}`)).raw.equals(pdf), 'forwarded byte-identical');
    // A part of a message the caller may not read cannot be attached (404, nothing stored).
    const cabInbox = await folderOf(claire, cab(), 'inbox');
    const cabMsg = (await claire.req('GET', `/api/v1/folders/${cabInbox}/emails`)).body.emails[0].id;
    const steal = await secretariat.req('POST', '/api/v1/drafts', { json: { from: org(), to: [per()], subject: 'x', text: '', attachments: [{ emailId: cabMsg, partId: '1' }] } });
    assert.equal(steal.status, 404);
  });

  test('guessed ids of a mailbox without any right: 404; grants: 404 without right, 403 without manage, through Core for the owner', async () => {
    // A message in the CAB mailbox (the secretariat holds nothing on it).
    const cabInbox = await folderOf(claire, cab(), 'inbox');
    const cabList = await claire.req('GET', `/api/v1/folders/${cabInbox}/emails`);
    const cabEmail = cabList.body.emails[0].id;
    for (const [method, path, json] of [
      ['GET', `/api/v1/folders/${cabInbox}/emails`],
      ['GET', `/api/v1/emails/${cabEmail}`],
      ['GET', `/api/v1/emails/${cabEmail}/raw`],
      ['GET', `/api/v1/emails/${cabEmail}/parts/1`],
      ['PATCH', `/api/v1/emails/${cabEmail}`, { seen: true }],
      ['POST', `/api/v1/emails/${cabEmail}/move`, { folderId: cabInbox }],
      ['DELETE', `/api/v1/emails/${cabEmail}`],
      ['GET', `/api/v1/search?mailbox=${encodeURIComponent(cab())}&text=a`],
      ['GET', `/api/v1/folders/f999999/emails`],
      ['GET', `/api/v1/emails/e999999`],
      ['GET', `/api/v1/mailboxes/${cab()}/grants`],
      ['PUT', `/api/v1/mailboxes/${cab()}/grants/${secUser().login}`, { rights: ['read'] }],
    ] as [string, string, unknown?][]) {
      const r = await secretariat.req(method, path, json === undefined ? {} : { json });
      assert.equal(r.status, 404, `${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'not-found');
    }
    const visible = await secretariat.req('GET', `/api/v1/mailboxes/${per()}/grants`);
    assert.equal(visible.status, 403);
    assert.equal(visible.body.code, 'forbidden');
    // The owner manages through Core: give, see, remove.
    const give = await claire.req('PUT', `/api/v1/mailboxes/${cab()}/grants/${secUser().login}`, { json: { rights: ['read'] } });
    assert.equal(give.status, 200, JSON.stringify(give.body));
    const grants = await claire.req('GET', `/api/v1/mailboxes/${cab()}/grants`);
    assert.deepEqual(grants.body.grants.find((g: any) => g.login === secUser().login).rights, ['read']);
    assert.equal((await secretariat.req('GET', `/api/v1/emails/${cabEmail}`)).status, 200, 'readable once granted');
    assert.equal((await claire.req('DELETE', `/api/v1/mailboxes/${cab()}/grants/${secUser().login}`)).status, 204);
    assert.equal((await secretariat.req('GET', `/api/v1/emails/${cabEmail}`)).status, 404);
  });

  test('CSRF and foreign Origin are refused on every state-changing /api/v1 route', async () => {
    const doc = (await claire.req('GET', '/api/openapi.json')).body;
    let checked = 0;
    for (const [path, ops] of Object.entries<any>(doc.paths)) {
      if (!path.startsWith('/api/v1/')) continue;
      for (const method of Object.keys(ops)) {
        if (!['post', 'put', 'patch', 'delete'].includes(method)) continue;
        const url = path.replace('{address}', per()).replace('{login}', secUser().login).replace(/\{id\}/g, 'e1').replace('{folderId}', 'f1').replace('{partId}', '1');
        const body = method === 'delete' ? {} : { json: {} };
        const noToken = await secretariat.req(method.toUpperCase(), url, { ...body, csrf: false });
        assert.equal(noToken.status, 403, `${method} ${url} without X-CSRF-Token`);
        assert.equal(noToken.body.code, 'csrf', `${method} ${url}`);
        const foreign = await secretariat.req(method.toUpperCase(), url, { ...body, headers: { origin: 'https://evil.example' } });
        assert.equal(foreign.status, 403, `${method} ${url} from a foreign Origin`);
        assert.equal(foreign.body.code, 'foreign-origin');
        checked++;
      }
    }
    assert.ok(checked >= 12, `${checked} state-changing routes checked`);
  });

  test('delete moves to Trash, then expunges; drafts live in Drafts', async () => {
    await submitAs(A().ports.submission, layout.caBundle, claireUser(), { from: per(), to: cab(), subject: 'À supprimer', text: 'x' });
    const inbox = await folderOf(claire, cab(), 'inbox');
    const trash = await folderOf(claire, cab(), 'trash');
    const e = await waitFor(async () => (await claire.req('GET', `/api/v1/folders/${inbox}/emails`)).body.emails.find((x: any) => x.subject === 'À supprimer'), 'the message');
    assert.equal((await claire.req('DELETE', `/api/v1/emails/${e.id}`)).status, 204);
    assert.equal((await claire.req('GET', `/api/v1/emails/${e.id}`)).status, 404, 'moved: the old id is gone');
    const inTrash = (await claire.req('GET', `/api/v1/folders/${trash}/emails`)).body.emails.find((x: any) => x.subject === 'À supprimer');
    assert.ok(inTrash, 'in Trash');
    assert.equal((await claire.req('DELETE', `/api/v1/emails/${inTrash.id}`)).status, 204);
    assert.equal((await claire.req('GET', `/api/v1/emails/${inTrash.id}`)).status, 404);
    assert.ok(!(await claire.req('GET', `/api/v1/folders/${trash}/emails`)).body.emails.some((x: any) => x.subject === 'À supprimer'), 'expunged');

    const d = await claire.req('POST', '/api/v1/drafts', { json: { from: cab(), to: [per()], bcc: [org()], subject: 'Brouillon', text: 'en cours' } });
    assert.equal(d.status, 201, JSON.stringify(d.body));
    const draft = await claire.req('GET', `/api/v1/emails/${d.body.id}`);
    assert.equal(draft.body.draft, true);
    assert.deepEqual(draft.body.bcc, [{ name: null, email: org() }], 'a draft keeps its Bcc');
    const replaced = await claire.req('PUT', `/api/v1/drafts/${d.body.id}`, { json: { from: cab(), to: [per()], subject: 'Brouillon v2', text: 'fini' } });
    assert.equal(replaced.status, 200);
    assert.equal((await claire.req('GET', `/api/v1/emails/${d.body.id}`)).status, 404);
    const sent = await claire.req('POST', '/api/v1/submissions', { json: { from: cab(), to: [per()], subject: 'Brouillon v2', text: 'fini', draftId: replaced.body.id } });
    assert.equal(sent.status, 201);
    assert.equal((await claire.req('GET', `/api/v1/emails/${replaced.body.id}`)).status, 404, 'the draft is removed once sent');
  });

  test('cursor paging is stable while messages arrive', async () => {
    const mb = await op().store.findMailboxByAddress(per());
    const f = await op().store.getFolder(mb!.id, 'INBOX');
    const deliver = async (i: number, at = new Date(Date.now() - i * 1000)) => {
      const b = await op().blobs.put(Buffer.from(`From: <${per()}>\r\nTo: <${per()}>\r\nSubject: page ${i}\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\nmessage ${i}\r\n`));
      await op().core.deliver({ blobId: b.id, size: b.size, internalDate: at, envelopeFrom: per(), localMailboxIds: [mb!.id], remote: [] });
      b.release();
    };
    for (let i = 0; i < 9; i++) await deliver(i);
    const all = (await op().store.listMessages(f!.id)).length;
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r: Res = await claire.req('GET', `/api/v1/folders/f${f!.id}/emails?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(r.status, 200);
      seen.push(...r.body.emails.map((e: any) => e.id));
      cursor = r.body.nextCursor;
      if (pages++ === 1) await deliver(100, new Date(Date.now() + 3600_000)); // arrives mid-walk, newest first: before the cursor
    } while (cursor);
    assert.equal(new Set(seen).size, seen.length, 'no message twice');
    assert.equal(seen.length, all, 'every message present at the start, once');
    const bySize = await claire.req('GET', `/api/v1/folders/f${f!.id}/emails?sort=size&order=asc&limit=200`);
    const sizes = bySize.body.emails.map((e: any) => e.size);
    assert.deepEqual(sizes, [...sizes].sort((a, b) => a - b));
    assert.equal((await claire.req('GET', `/api/v1/folders/f${f!.id}/emails?limit=201`)).status, 400);
    assert.equal((await claire.req('GET', `/api/v1/folders/f${f!.id}/emails?cursor=bad!`)).body.code, 'invalid-request');
  });

  test('software callers: a Pro Santé Connect bearer token and client certificates (personal, organisation)', async () => {
    const token = (await loginWithBrowserFlow({ issuer: layout.psc!.issuer, clientId: layout.psc!.softwareClient.clientId, redirectUri: layout.psc!.softwareClient.redirectUri, login: claireUser().login, password: claireUser().password, resource: layout.psc!.resource })).accessToken;
    const bearer = new Client(base, ca, { bearer: token });
    const me = await bearer.req('GET', '/api/v1/me');
    assert.equal(me.status, 200, JSON.stringify(me.body));
    assert.equal(me.body.login, claireUser().login);
    // No CSRF token for a bearer caller.
    const prefs = await bearer.req('PUT', '/api/v1/preferences', { json: { signature: 'Dr Claire Martin — Cardiologie', listDensity: 'compact' } });
    assert.equal(prefs.status, 200, JSON.stringify(prefs.body));
    assert.equal((await claire.req('GET', '/api/v1/preferences')).body.signature, 'Dr Claire Martin — Cardiologie');
    const bad = await new Client(base, ca, { bearer: `${token.slice(0, -4)}AAAA` }).req('GET', '/api/v1/me');
    assert.equal(bad.status, 401);
    assert.match(String(bad.headers['www-authenticate']), /^Bearer error="invalid_token"/);

    const personal = A().certificates.personal;
    const byCert = new Client(base, ca, { cert: { cert: readFileSync(personal.cert, 'utf8'), key: readFileSync(personal.key, 'utf8') } });
    assert.equal((await byCert.req('GET', '/api/v1/me')).body.login, claireUser().login);
    const orgCert = A().certificates.organisation;
    const app = new Client(base, ca, { cert: { cert: readFileSync(orgCert.cert, 'utf8'), key: readFileSync(orgCert.key, 'utf8') } });
    const appMe = await app.req('GET', '/api/v1/me');
    assert.equal(appMe.status, 200, JSON.stringify(appMe.body));
    assert.deepEqual(appMe.body.mailboxes.map((m: any) => m.address), [orgCert.appMailbox]);
    assert.equal((await app.req('GET', `/api/v1/search?mailbox=${encodeURIComponent(per())}&text=a`)).status, 404, 'the application account reads only its APP mailbox');
  });

  test('the event stream: resume with Last-Event-ID replays what was missed; unknown tokens reset', async () => {
    const s1 = openEvents(base, ca, claire);
    await s1.ready;
    await submitAs(A().ports.submission, layout.caBundle, claireUser(), { from: per(), to: cab(), subject: 'premier', text: 'x' });
    const first = await waitFor(() => s1.events.find((e) => e.event === 'email' && e.data.mailbox === cab()), 'first event');
    s1.close();
    await submitAs(A().ports.submission, layout.caBundle, claireUser(), { from: per(), to: cab(), subject: 'manqué', text: 'x' });
    const s2 = openEvents(base, ca, claire, { 'last-event-id': first.id });
    await s2.ready;
    await waitFor(() => s2.events.find((e) => e.event === 'email' && e.data.mailbox === cab() && e.id !== first.id), 'the missed event replayed');
    s2.close();
    const s3 = openEvents(base, ca, claire, { 'last-event-id': 'deadbeef-1' });
    await s3.ready;
    await waitFor(() => s3.events.find((e) => e.event === 'reset'), 'reset');
    s3.close();
    // The secretariat's stream does not carry events of the CAB mailbox.
    const s4 = openEvents(base, ca, secretariat);
    await s4.ready;
    await submitAs(A().ports.submission, layout.caBundle, claireUser(), { from: per(), to: [cab(), per()], subject: 'deux', text: 'x' });
    await waitFor(() => s4.events.find((e) => e.event === 'email' && e.data.mailbox === per()), 'the PER delivery');
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!s4.events.some((e) => e.data.mailbox === cab()), 'no event of a mailbox the caller may not read');
    s4.close();
  });

  test('OpenAPI: every registered /api route is described', async () => {
    const routes: RouteOptions[] = [];
    const o = op();
    const app = buildHttpApp({
      logger: testLogger(),
      onRoute: (r) => routes.push(r),
      web: {
        auth: new Authenticator(o.store),
        store: o.store,
        totpIssuer: 'test',
        lockoutSeconds: 60,
        session: { idleMs: 60_000, maxMs: 3_600_000 },
        mail: {
          core: o.core,
          mail: new MailService({ core: o.core, store: o.store, blobs: o.blobs, index: new MessageIndex(o.store, o.blobs) }),
          pipeline: new SubmissionPipeline({ core: o.core, trust: o.trust, hostname: 'test', logger: testLogger() }),
          blobs: o.blobs,
          store: o.store,
          maxMessageSize: 1_000_000,
          logger: testLogger(),
          // The software API's routes (docs/software-api.md) are described too.
          software: {
            receipts: new ReceiptService({ core: o.core, blobs: o.blobs, trust: o.trust, hostname: 'test', logger: testLogger() }),
            store: o.store,
            secrets: SecretBox.fromKey(randomBytes(32)),
            describe: async () => ({}),
          },
        },
      },
    });
    await app.ready();
    const doc = (await app.inject({ method: 'GET', url: '/api/openapi.json' })).json();
    await app.close();
    const api = routes.filter((r) => r.url.startsWith('/api/v1/'));
    assert.ok(api.length >= 20, `${api.length} /api/v1 routes`);
    for (const r of routes.filter((x) => x.url.startsWith('/api/') && x.url !== '/api/openapi.json'))
      for (const m of [r.method].flat()) {
        if (m === 'HEAD') continue;
        const p = r.url.replace(/:(\w+)/g, '{$1}');
        const d = doc.paths[p]?.[m.toLowerCase()];
        assert.ok(d, `${m} ${r.url} is not in the OpenAPI document`);
        if (p.startsWith('/api/v1/') && p !== '/api/v1/compose/check' && !p.endsWith('/absence')) {
          assert.ok(d.responses['401'] && d.responses['403'], `${m} ${p}: 401 and 403 documented`);
          assert.ok(d.security.some((s: any) => 'bearer' in s) && d.security.some((s: any) => 'clientCertificate' in s), `${m} ${p}: the three ways`);
        }
      }
  });
});
