// The directory over HTTPS with a web session: a practitioner sees their own liste-rouge
// mailbox (and the answer is marked private); the public (plain HTTP, or HTTPS without a
// session) and other users never do.
import assert from 'node:assert/strict';
import https from 'node:https';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Core } from '../src/core/index.js';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { tempDir, testLogger } from './helpers.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
}

function request(url: string, o: { ca: string; method?: string; cookie?: string; cert?: { cert: string; key: string }; json?: unknown }): Promise<Answer> {
  const u = new URL(url);
  const lib = u.protocol === 'https:' ? https : http;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (o.cookie) headers.cookie = o.cookie;
  if (o.json !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const r = lib.request(
      u,
      { method: o.method ?? 'GET', headers, ca: o.ca, agent: false, ...(o.cert ? { cert: readFileSync(o.cert.cert), key: readFileSync(o.cert.key) } : {}) } as https.RequestOptions,
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text && /json/.test(String(res.headers['content-type'])) ? JSON.parse(text) : text }));
      },
    );
    r.on('error', reject);
    r.end(o.json === undefined ? undefined : JSON.stringify(o.json));
  });
}

describe('directory answers for a logged-in user', () => {
  const { dir, cleanup } = tempDir('caducee-dir-session-');
  let layout: DemoLayout;
  let demo: RunningDemo;
  let ca: string;
  const SECRET = 'consultation.privee@a.mssante.test';
  before(async () => {
    layout = await prepareDemo(dir, { ports: 'ephemeral' });
    demo = await startDemo(layout, { logger: testLogger(), psc: false });
    ca = readFileSync(layout.caBundle, 'utf8');
    const A = demo.operators[0];
    const core = new Core(A.store, A.config.operator.domains);
    await core.createMailbox({ address: SECRET, type: 'PER', displayName: 'Dr Claire Martin — consultations privées', owner: 'claire.martin', listeRouge: true });
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  /** A full web session by CPS-like certificate; returns the cookie header value. */
  const sessionOf = async (cert: { cert: string; key: string }) => {
    const r = await request(`${layout.operators[0].https}/api/auth/certificate`, { ca, method: 'POST', cert, json: {} });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const c = (r.headers['set-cookie'] ?? []).find((x) => x.startsWith('__Host-caducee_session='))!;
    return c.split(';')[0];
  };

  test('the owner sees their liste-rouge mailbox; the public and others do not', async () => {
    const A = layout.operators[0];
    const paths = [`/api/directory/search?address=consultation.privee`, `/api/directory/autocomplete?q=martin`, `/fhir/Practitioner?mailbox-mss:contains=consultation.privee`];
    const has = (a: Answer) => JSON.stringify(a.body).includes(SECRET);
    const claireCookie = await sessionOf(A.certificates.personal);
    // The organisation certificate's application account is another user.
    const otherCookie = await sessionOf(A.certificates.organisation);
    for (const p of paths) {
      const pub = await request(`${A.http}${p}`, { ca });
      assert.equal(pub.status, 200, p);
      assert.equal(has(pub), false, `public HTTP ${p}`);
      const anon = await request(`${A.https}${p}`, { ca });
      assert.equal(has(anon), false, `HTTPS without a session ${p}`);
      assert.equal(anon.headers['cache-control'], undefined);
      const other = await request(`${A.https}${p}`, { ca, cookie: otherCookie });
      assert.equal(has(other), false, `another user ${p}`);
      const mine = await request(`${A.https}${p}`, { ca, cookie: claireCookie });
      assert.equal(mine.status, 200, p);
      assert.equal(has(mine), true, `the owner ${p}: ${JSON.stringify(mine.body).slice(0, 300)}`);
      assert.equal(mine.headers['cache-control'], 'private, no-store');
    }
  });
});
