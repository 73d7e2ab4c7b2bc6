// Two nodes of one operator on PostgreSQL (issue 12, tests 2 and 4), as `caducee demo --postgres
// URL --nodes 2` runs them: operator B is two `caducee start` processes on one PostgreSQL store
// (a schema of its own), one data directory and one message-file directory; operator A runs in
// this process (also on PostgreSQL) and routes to both of B's MX. Everything goes through the real
// protocols (imapflow, nodemailer, HTTPS):
//   - a submission accepted by node 1 is seen by an IMAP IDLE session on node 2 (relay over
//     LISTEN/NOTIFY); flags stored on node 2 reach node 1 with the same CONDSTORE modseq;
//   - a 500-message outbound burst submitted to both nodes, with both nodes' queue workers
//     claiming from the one queue: each message arrives exactly once at A (counted there);
//   - a TOTP code used on one node is refused on the other; failed logins on node 1 lock the
//     login on node 2 (IMAP and HTTPS);
//   - node 1 SIGKILLed during an intake of 1,000 messages over MX (mutual TLS, A's certificate):
//     every acknowledged message is present once, and node 2 keeps serving (the clients of node 1
//     move to node 2, as A's route would).
import assert from 'node:assert/strict';
import https from 'node:https';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { generate } from 'otplib';
import pg from 'pg';
import { CookieJar } from 'tough-cookie';
import { prepareDemo, startDemo, type DemoLayout, type DemoOperatorInfo, type RunningDemo } from '../src/demo/space.js';
import { extractionText, writeExtraction } from './directory-fixture.js';
import { rawImap, tempDir, testLogger, waitFor } from './helpers.js';
import { pgTestDatabase } from './support/postgres.js';

/** A browser for the JSON API: cookie jar (Secure, __Host- prefix enforced), CSRF token, the demo CA. */
class Browser {
  jar = new CookieJar();
  csrf: string | undefined;
  constructor(
    readonly base: string,
    readonly ca: string,
  ) {}

  async req(method: string, p: string, json?: unknown, extra: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: any }> {
    const url = new URL(p, this.base);
    const headers: Record<string, string> = { accept: 'application/json', ...extra };
    const cookie = await this.jar.getCookieString(url.href);
    if (cookie) headers.cookie = cookie;
    if (this.csrf) headers['x-csrf-token'] = this.csrf;
    const payload = json === undefined ? undefined : JSON.stringify(json);
    if (payload) headers['content-type'] = 'application/json';
    const res = await new Promise<http.IncomingMessage & { text: string }>((resolve, reject) => {
      const r = https.request(url, { method, headers, ca: this.ca, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve(Object.assign(res, { text })));
      });
      r.on('error', reject);
      r.end(payload);
    });
    for (const c of res.headers['set-cookie'] ?? []) await this.jar.setCookie(c, url.href);
    const body = res.text && /json/.test(String(res.headers['content-type'])) ? JSON.parse(res.text) : res.text;
    if (body?.csrfToken) this.csrf = body.csrfToken;
    return { status: res.statusCode!, headers: res.headers, body };
  }
}

const totp = (secret: string, offsetSeconds = 0) => generate({ secret, epoch: Math.floor(Date.now() / 1000) + offsetSeconds });

/** Settings of every operator of the space (written to the node configurations too). */
const OVERRIDES = {
  // Five failures lock a login; every client here comes from 127.0.0.1.
  auth: { lockout: { maxPerLogin: 5, maxPerAddress: 100_000 } },
  // The burst: 500 messages from one user in a day (the medical-content default is 500 recipients a day).
  policy: { content: { maxRecipientsPerDay: 1_000_000 } },
  queue: { retrySeconds: [1, 2, 5], pollSeconds: 0.2 },
};

describe('two nodes of one operator on PostgreSQL (caducee demo --postgres --nodes 2)', { timeout: 600_000 }, () => {
  const { dir, cleanup } = tempDir('caducee-nodes-');
  let db: { url: string; drop(): Promise<void> } | undefined;
  let skip: string | undefined;
  let layout: DemoLayout;
  let demo: RunningDemo | undefined;
  let ca: string;
  let A: DemoOperatorInfo;
  let B: DemoOperatorInfo;
  const imapClients: ImapFlow[] = [];

  before(async () => {
    const r = await pgTestDatabase();
    if ('skip' in r) return void (skip = r.skip);
    db = r;
    layout = await prepareDemo(path.join(dir, 'space'), { ports: 'ephemeral', patients: false, postgres: { url: db.url }, configOverrides: OVERRIDES });
    demo = await startDemo(layout, { nodes: 2, psc: false, logger: testLogger(), configOverrides: OVERRIDES });
    [A, B] = layout.operators;
    ca = readFileSync(layout.caBundle, 'utf8');
  });
  after(async () => {
    for (const c of imapClients) c.close();
    await demo?.stop();
    await db?.drop();
    cleanup();
  });

  const node = (i: 1 | 2) => B.nodes![i - 1].ports;
  const imap = async (port: number, user: { login: string; appPassword: string }) => {
    const c = new ImapFlow({ host: '127.0.0.1', port, secure: true, tls: { ca, servername: 'localhost' }, auth: { user: user.login, pass: user.appPassword }, logger: false });
    imapClients.push(c);
    await c.connect();
    return c;
  };
  /** Message-IDs in `user`'s INBOX at `port`, with how many times each is there. */
  const messageIds = async (port: number, user: { login: string; appPassword: string }, prefix: string) => {
    const c = await imap(port, user);
    const ids = new Map<string, number>();
    try {
      const box = await c.mailboxOpen('INBOX', { readOnly: true });
      if (box.exists)
        for await (const m of c.fetch('1:*', { envelope: true })) {
          const id = m.envelope?.messageId ?? '';
          if (id.startsWith(prefix)) ids.set(id, (ids.get(id) ?? 0) + 1);
        }
    } finally {
      await c.logout();
    }
    return ids;
  };

  test('the demo line: B as two node processes on one PostgreSQL schema, A routing to both MX', async (t) => {
    if (skip) return t.skip(skip);
    assert.equal(B.nodes?.length, 2);
    assert.notEqual(B.nodes![0].pid, B.nodes![1].pid);
    assert.deepEqual(B.ports, B.nodes![0].ports);
    assert.equal(B.store?.kind, 'postgres');
    assert.notEqual(A.store?.schema, B.store?.schema, 'one schema per operator');
    assert.deepEqual(demo!.operators[0].config.routes[B.domain], [`127.0.0.1:${node(1).mx}`, `127.0.0.1:${node(2).mx}`]);
    for (const n of demo!.nodes) assert.equal(n.child.exitCode, null, `node ${n.info.node} runs`);
  });

  test('a submission accepted by node 1 is seen by IDLE on node 2; flags stored on node 2 reach node 1 with the same modseq', async (t) => {
    if (skip) return t.skip(skip);
    const paul = B.users[0];
    const address = paul.addresses[0];
    const two = await imap(node(2).imaps, paul);
    // imapflow updates its mailbox object as the session goes: the counts are copied.
    const start = (await two.mailboxOpen('INBOX')).exists;
    let seen = start;
    two.on('exists', (e: { count: number }) => (seen = Math.max(seen, e.count)));
    void two.idle();
    const sent = await nodemailer
      .createTransport({ host: '127.0.0.1', port: node(1).submission, secure: false, requireTLS: true, auth: { user: paul.login, pass: paul.appPassword }, tls: { ca, servername: 'localhost' } })
      .sendMail({ from: address, to: address, subject: 'Compte rendu — nœud 1', text: 'Texte', messageId: '<idle-1@nodes.test>' });
    assert.match(sent.response, /^250 /);
    await waitFor(() => seen === start + 1, 'the IDLE session on node 2 to see the message node 1 accepted');

    // CONDSTORE (RFC 7162 §3.1): node 1's session, selected before the change, learns of it
    // (unsolicited FETCH while idling, then FETCH CHANGEDSINCE) with the modseq node 2 reported.
    const one = await imap(node(1).imaps, paul);
    const h0 = (await one.mailboxOpen('INBOX')).highestModseq!;
    const [target] = (await one.search({ header: { 'message-id': '<idle-1@nodes.test>' } }, { uid: true })) || [];
    assert.ok(target, 'node 1 reads the message from the shared store');
    const pushed: { uid?: number; flags: Set<string>; modseq?: bigint }[] = [];
    one.on('flags', (e: { uid?: number; flags: Set<string>; modseq?: bigint }) => pushed.push(e));
    void one.idle();
    await two.messageFlagsAdd(String(target), ['\\Flagged', '$Urgent'], { uid: true });
    const onTwo = await two.fetchOne(String(target), { uid: true, flags: true }, { uid: true });
    assert.ok(onTwo, 'node 2 fetches the message');
    assert.ok(onTwo.flags!.has('\\Flagged'));
    assert.ok(onTwo.modseq! > h0, 'the store raised the modseq');
    const push = await waitFor(() => pushed.find((e) => e.flags.has('\\Flagged')), 'node 1 to push the flag change made on node 2');
    assert.equal(push.modseq, onTwo.modseq, 'the modseq node 1 announces is the one node 2 gave');
    const changed = [];
    for await (const m of one.fetch('1:*', { uid: true, flags: true }, { uid: true, changedSince: h0 })) changed.push(m);
    assert.deepEqual(
      changed.map((m) => [m.uid, [...m.flags!].sort(), m.modseq]),
      [[target, ['$Urgent', '\\Flagged'], onTwo.modseq]],
    );
    const status1 = await one.status('INBOX', { highestModseq: true });
    assert.ok(status1);
    assert.equal(status1.highestModseq, onTwo.modseq, 'both nodes report one HIGHESTMODSEQ');
    await one.logout();
    await two.logout();
  });

  test('500 messages submitted to both nodes, both queue workers running: each delivered once at the peer', async (t) => {
    if (skip) return t.skip(skip);
    const paul = B.users[0];
    const claire = A.users[0];
    const N = 500;
    // Two pooled connections per node: the burst is split between them.
    const transports = [1, 2].map((i) =>
      nodemailer.createTransport({ pool: true, maxConnections: 2, host: '127.0.0.1', port: node(i as 1 | 2).submission, secure: false, requireTLS: true, auth: { user: paul.login, pass: paul.appPassword }, tls: { ca, servername: 'localhost' } }),
    );
    try {
      const results = await Promise.all(
        Array.from({ length: N }, (_, n) =>
          transports[n % 2].sendMail({ from: paul.addresses[0], to: claire.addresses[0], subject: `Rafale ${n}`, text: `message ${n}`, messageId: `<burst-${n}@nodes.test>` }),
        ),
      );
      assert.ok(results.every((r) => /^250 /.test(r.response)));
    } finally {
      for (const tr of transports) tr.close();
    }
    // The queue drains: nothing queued or leased is left in B's schema, and A holds them all.
    const admin = new pg.Client({ connectionString: db!.url });
    await admin.connect();
    try {
      await waitFor(
        async () => {
          const r = await admin.query(`SELECT COUNT(*)::int n FROM ${B.store!.schema}.outbound_queue WHERE status = 'queued' OR lease_owner IS NOT NULL`);
          return r.rows[0].n === 0;
        },
        "B's outbound queue to drain",
        240_000,
      );
      const statuses = await admin.query(`SELECT status, COUNT(*)::int n FROM ${B.store!.schema}.outbound_queue GROUP BY status ORDER BY status`);
      t.diagnostic(`B's queue: ${JSON.stringify(statuses.rows)}`);
    } finally {
      await admin.end();
    }
    // Each item delivered by one worker, once: the nodes' 'delivered' records add up to the burst
    // (the IDLE test's message stayed local), and each node's worker took part.
    const delivered = demo!.nodes.map((n) => n.logged.get('delivered') ?? 0);
    t.diagnostic(`delivered by node 1: ${delivered[0]}, by node 2: ${delivered[1]}`);
    assert.equal(delivered[0] + delivered[1], N);
    assert.ok(delivered.every((k) => k > 0), 'both nodes\' queue workers delivered');
    const at = await messageIds(A.ports.imaps, claire, '<burst-');
    const twice = [...at].filter(([, k]) => k > 1).map(([id]) => id);
    const missing = Array.from({ length: N }, (_, n) => `<burst-${n}@nodes.test>`).filter((id) => !at.has(id));
    assert.deepEqual(twice, [], 'no message delivered twice');
    assert.deepEqual(missing, [], 'every message delivered');
    assert.equal(at.size, N);
  });

  test('TOTP: a code used on node 1 is refused on node 2 (and the next step is accepted there, once)', async (t) => {
    if (skip) return t.skip(skip);
    const paul = B.users[0];
    const web = (i: 1 | 2) => new Browser(`https://127.0.0.1:${node(i).https}`, ca);
    const b1 = web(1);
    const first = await b1.req('POST', '/api/auth/login', { login: paul.login, password: paul.password });
    assert.equal(first.body.stage, 'enrol-second-factor', JSON.stringify(first.body));
    const secret: string = first.body.totp.secret;
    const code = await totp(secret);
    const enrolled = await b1.req('POST', '/api/auth/second-factor/enrol', { code });
    assert.equal(enrolled.status, 200, JSON.stringify(enrolled.body));

    const b2 = web(2);
    assert.deepEqual((await b2.req('POST', '/api/auth/login', { login: paul.login, password: paul.password })).body, { stage: 'second-factor' });
    const replayed = await b2.req('POST', '/api/auth/second-factor', { code });
    assert.equal(replayed.status, 401);
    assert.equal(replayed.body.code, 'replayed-code', 'node 2 knows the step node 1 consumed');

    // The next step's code: accepted on node 2, then refused on node 1.
    const next = await totp(secret, 30);
    const ok = await b2.req('POST', '/api/auth/second-factor', { code: next });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.method, 'PASSWORD+TOTP');
    const b1again = web(1);
    await b1again.req('POST', '/api/auth/login', { login: paul.login, password: paul.password });
    const again = await b1again.req('POST', '/api/auth/second-factor', { code: next });
    assert.equal(again.status, 401);
    assert.equal(again.body.code, 'replayed-code');
  });

  test('Idempotency-Key: an answer of node 1 is replayed by node 2; one new key sent to both nodes at once is sent once', async (t) => {
    if (skip) return t.skip(skip);
    const [paul, accueil] = B.users;
    const b1 = new Browser(`https://127.0.0.1:${node(1).https}`, ca);
    const first = await b1.req('POST', '/api/auth/login', { login: accueil.login, password: accueil.password });
    assert.equal(first.body.stage, 'enrol-second-factor', JSON.stringify(first.body));
    const enrolled = await b1.req('POST', '/api/auth/second-factor/enrol', { code: await totp(first.body.totp.secret) });
    assert.equal(enrolled.status, 200, JSON.stringify(enrolled.body));
    // The same web session on node 2 (sessions are rows of the shared schema).
    const b2 = Object.assign(new Browser(`https://127.0.0.1:${node(2).https}`, ca), { jar: b1.jar, csrf: b1.csrf });
    const draft = (subject: string) => ({ from: accueil.addresses[0], to: [paul.addresses[0]], subject, text: 'Une seule fois.' });
    const tag = `${process.pid}-${Date.now()}`;
    const r1 = await b1.req('POST', '/api/v1/submissions', draft(`Clé ${tag} A`), { 'idempotency-key': `a-${tag}` });
    assert.equal(r1.status, 201, JSON.stringify(r1.body));
    assert.equal(r1.headers['idempotent-replayed'], undefined);
    const r2 = await b2.req('POST', '/api/v1/submissions', draft(`Clé ${tag} A`), { 'idempotency-key': `a-${tag}` });
    assert.equal(r2.status, 201, JSON.stringify(r2.body));
    assert.equal(r2.headers['idempotent-replayed'], 'true', 'node 2 replays the answer node 1 committed');
    assert.deepEqual(r2.body, r1.body);
    // One new key at both nodes at once: the key's unique row decides, the loser replays the winner's answer.
    const both = await Promise.all([b1, b2].map((b) => b.req('POST', '/api/v1/submissions', draft(`Clé ${tag} B`), { 'idempotency-key': `b-${tag}` })));
    assert.deepEqual(both.map((r) => r.status), [201, 201], JSON.stringify(both.map((r) => r.body)));
    assert.deepEqual(both[0].body, both[1].body, 'one submission');
    assert.equal(both.filter((r) => r.headers['idempotent-replayed'] === 'true').length, 1);
    const listed = (await b1.req('GET', '/api/v1/submissions?limit=100')).body.submissions as { subject: string }[];
    assert.deepEqual(
      [`Clé ${tag} A`, `Clé ${tag} B`].map((s) => listed.filter((x) => x.subject === s).length),
      [1, 1],
      'each sent once',
    );
  });

  test('lockout: failed logins on node 1 lock the login on node 2 (IMAP and HTTPS)', async (t) => {
    if (skip) return t.skip(skip);
    const accueil = B.users[1];
    const one = await rawImap(node(1).imaps, ca);
    try {
      for (let i = 0; i < 5; i++) assert.match((await one.cmd(`LOGIN ${accueil.login} wrong-${i}`)).at(-1)!, /^t\d+ NO \[AUTHENTICATIONFAILED\]/);
    } finally {
      one.close();
    }
    const two = await rawImap(node(2).imaps, ca);
    try {
      assert.match((await two.cmd(`LOGIN ${accueil.login} ${accueil.appPassword}`)).at(-1)!, /^t\d+ NO \[UNAVAILABLE\] too many failed login attempts/);
    } finally {
      two.close();
    }
    const web2 = new Browser(`https://127.0.0.1:${node(2).https}`, ca);
    const r = await web2.req('POST', '/api/auth/login', { login: accueil.login, password: accueil.password });
    assert.equal(r.status, 429);
    assert.equal(r.body.code, 'locked');
  });

  test('a directory import run against node 1 is served by node 2 within seconds (the shared data directory)', async (t) => {
    if (skip) return t.skip(skip);
    const address = `zelie.noeud.${process.pid}@medecin.mssante.fr`;
    const file = writeExtraction(dir, 'Extraction_Correspondance_MSSante_nodes.txt', extractionText([{ balType: 'PER', address, ppIdType: '8', ppId: '10000000099', ppNatId: '810000000099', family: 'NOEUD', given: 'Zélie', professionCode: '60', professionLabel: 'Infirmier', l6: '69003 LYON', postalCode: '69003' }]));
    // The administrator's command on node 1's configuration (its data directory is node 2's too).
    const out = execFileSync(process.execPath, [path.resolve('bin/caducee.js'), 'directory', 'import', file, '--config', B.nodes![0].config, '--json'], { encoding: 'utf8' });
    assert.ok(JSON.parse(out.trim().split('\n').pop()!).imported > 0, out);
    const search = () =>
      new Promise<any>((resolve, reject) =>
        http.get(`http://127.0.0.1:${node(2).http}/api/directory/search?q=${encodeURIComponent('zelie noeud')}&limit=5`, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve(JSON.parse(text)));
        }).on('error', reject),
      );
    const found = await waitFor(async () => JSON.stringify(await search()).includes(address) || undefined, 'node 2 serving the new import', 20_000);
    assert.equal(found, true);
  });

  test('node 1 SIGKILLed during an intake of 1,000 messages over MX: every acknowledged message present once, node 2 keeps serving', async (t) => {
    if (skip) return t.skip(skip);
    const N = 1000;
    const KILL_AFTER = 300;
    const paul = B.users[0];
    const to = paul.addresses[0];
    const from = A.users[0].addresses[0];
    // A's server certificate is its client certificate towards B's MX (mutual TLS, the trust space).
    const clientTls = { key: readFileSync(A.key, 'utf8'), cert: readFileSync(A.chain, 'utf8'), ca, servername: 'localhost' };
    const acked: string[] = [];
    const cut: string[] = [];
    let ackedAfterKill = 0;
    let killed = false;
    let next = 0;
    const [node1, node2] = demo!.nodes;

    /** One connection: transactions one after the other until it fails or the messages run out. */
    const session = (port: number) =>
      new Promise<void>((resolve) => {
        const c = new SMTPConnection({ host: '127.0.0.1', port, secure: false, requireTLS: true, tls: clientTls, name: A.hostname, socketTimeout: 15_000, connectionTimeout: 5_000 } as any);
        let inFlight: string | undefined;
        let closed = false;
        const end = () => {
          if (closed) return;
          closed = true;
          // A transaction cut by the connection's end: committed or not, never acknowledged.
          if (inFlight) cut.push(inFlight);
          inFlight = undefined;
          try {
            c.close();
          } catch {
            /* closed */
          }
          resolve();
        };
        c.on('error', end);
        c.on('end', end);
        const one = () => {
          if (next >= N) return end();
          const n = next++;
          const id = `<intake-${n}@nodes.test>`;
          inFlight = id;
          const raw = `From: <${from}>\r\nTo: <${to}>\r\nSubject: Admission ${n}\r\nMessage-ID: ${id}\r\nDate: ${new Date().toUTCString()}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nmessage ${n} ${'x'.repeat(1500)}\r\n`;
          c.send({ from, to: [to] }, raw, (err: any, info: any) => {
            if (err) return end();
            inFlight = undefined;
            if (!/^250 /.test(String(info?.response))) return cut.push(id), end();
            acked.push(id);
            if (killed) ackedAfterKill++;
            one();
          });
        };
        c.connect(() => one());
      });
    /** A client of B: connects to node 1 while it lives, else to node 2 (A's route, in order). */
    const client = async (prefer: 1 | 2) => {
      while (next < N) await session(prefer === 1 && !killed ? node(1).mx : node(2).mx);
    };
    const killer = (async () => {
      await waitFor(() => acked.length >= KILL_AFTER || next >= N, `${KILL_AFTER} acknowledged messages`, 300_000);
      killed = true;
      node1.child.kill('SIGKILL');
      assert.equal(await node1.exited, 'SIGKILL');
    })();
    await Promise.all([client(1), client(1), client(2), client(2), killer]);
    t.diagnostic(`${acked.length} acknowledged (${ackedAfterKill} after the kill), ${cut.length} cut by it`);
    assert.ok(ackedAfterKill > 0, 'node 2 acknowledged messages after node 1 died');
    assert.equal(acked.length + cut.length, N, 'every message was either acknowledged or cut by the kill');

    // Counted on node 2 (still serving, IMAP): each acknowledged message once; cut ones at most once.
    const present = await messageIds(node(2).imaps, paul, '<intake-');
    const missing = acked.filter((id) => !present.has(id));
    const twice = [...present].filter(([, k]) => k > 1).map(([id]) => id);
    const unknown = [...present.keys()].filter((id) => !acked.includes(id) && !cut.includes(id));
    assert.deepEqual(missing, [], 'every acknowledged message is present');
    assert.deepEqual(twice, [], 'no message is present twice');
    assert.deepEqual(unknown, []);
    t.diagnostic(`of the ${cut.length} cut transactions, ${cut.filter((id) => present.has(id)).length} committed before the kill`);
    assert.equal(node2.child.exitCode, null, 'node 2 still runs');
  });
});
