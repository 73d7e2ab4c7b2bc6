// Usage indicators and Prometheus metrics (issue 10) across a local trust space: a known set of
// messages (inside operator A, to operator B, back from B; with an attachment, with an IHE XDM
// package), logins over submission and IMAP, then `caducee indicators` (a real process) and a
// scrape of /metrics. The counts must match what the test did, and no address or subject may
// appear in the indicators.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { monthlyIndicators, INDICATOR_COLUMNS, type IndicatorRow } from '../src/audit/indicators.js';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import type { Operator } from '../src/main.js';
import { folderMessages, rawImap, submitAs, tempDir, testLogger, waitFor } from './helpers.js';

const BIN = path.resolve('bin/caducee.js');
const OVERRIDES = {
  queue: { retrySeconds: [0.3], pollSeconds: 0.1, giveUpSeconds: 600, connectTimeoutSeconds: 3 },
  metrics: { listen: { host: '127.0.0.1', port: 0 } },
};
const SUBJECTS = ['Compte rendu DUPONT Jean', 'Ordonnance MARTIN', 'Résultats biologie LEROY', 'XDM/1.0/DDM+CR DURAND Anne 19700101', 'Réponse BERNARD'];

function caducee(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const thisMonth = () => new Date().toISOString().slice(0, 7);

/** The value of the row matching `match` (0 when absent). */
function value(rows: IndicatorRow[], match: Partial<IndicatorRow>): number {
  const hits = rows.filter((r) => Object.entries(match).every(([k, v]) => (r as any)[k] === v));
  return hits.reduce((n, r) => n + r.value, 0);
}

/** GET on the metrics listener, one connection per request (the CLI runs block this process). */
function get(op: Operator, url: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) =>
    http
      .get({ host: '127.0.0.1', port: op.metricsPort, path: url, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type'] ?? ''), body }));
      })
      .on('error', reject),
  );
}

async function scrape(op: Operator): Promise<string> {
  const r = await get(op, '/metrics');
  assert.equal(r.status, 200);
  assert.match(r.type, /^text\/plain/);
  return r.body;
}

/** The value of one series in the exposition text (0 when absent). */
function series(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return 0;
}

describe('usage indicators and metrics', () => {
  let cleanup = () => {};
  let layout: DemoLayout;
  let demo: RunningDemo;
  let A: Operator;
  let B: Operator;

  before(async () => {
    let dir: string;
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral', configOverrides: OVERRIDES });
    demo = await startDemo(layout, { logger: testLogger(), configOverrides: OVERRIDES });
    [A, B] = demo.operators;
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  test('the metrics listener is off the public ports, on loopback, and answers only /metrics', async () => {
    assert.ok(A.metricsPort);
    assert.ok(!Object.values(A.ports).includes(A.metricsPort!));
    assert.equal((await get(A, '/')).status, 404);
    const text = await scrape(A);
    for (const name of ['caducee_queue_depth', 'caducee_queue_oldest_age_seconds', 'caducee_imap_sessions', 'caducee_web_sessions']) assert.match(text, new RegExp(`^${name} `, 'm'));
  });

  test('counts match what was sent and who logged in; no address or subject appears', async () => {
    const month = thisMonth();
    const before = await monthlyIndicators(A.store, month);
    const metricsBefore = await scrape(A);
    const [claire] = layout.operators[0].users;
    const paul = layout.operators[1].users[0];
    const claireAddr = claire.addresses[0];
    const sender = (await A.store.findMailboxByAddress(claireAddr))!;
    const org = (await A.store.listMailboxes({ type: 'ORG' }))[0];
    const structureOf = async (id: number | null) => (id === null ? { structure_id_type: '', structure_id: '' } : await A.store.getStructure(id).then((s) => ({ structure_id_type: s!.idType, structure_id: s!.idValue })));
    const senderKey = { ...(await structureOf(sender.structureId)), mailbox_type: sender.type };
    const orgKey = { ...(await structureOf(org.structureId)), mailbox_type: org.type };
    const pdf = { filename: 'compte-rendu.pdf', content: Buffer.from('%PDF-1.4 demo'), contentType: 'application/pdf' };
    const xdm = { filename: 'IHE_XDM.ZIP', content: Buffer.from('PK demo'), contentType: 'application/zip' };
    const send = (to: string, subject: string, attachments: object[] = []) => submitAs(A.ports.submission, layout.caBundle, claire, { from: claireAddr, to, subject, text: 'Bonjour.', attachments });

    // Inside A: plain, and with an XDM package; to B: plain, and with a PDF.
    await send(org.address, SUBJECTS[0]);
    await send(org.address, SUBJECTS[3], [xdm]);
    await send(paul.addresses[0], SUBJECTS[1]);
    await send(paul.addresses[0], SUBJECTS[2], [pdf]);
    // A refusal: outside the trust space (550 5.7.1 at RCPT).
    await assert.rejects(send('someone@example.org', 'x'), /5\.7\.1/);
    await waitFor(async () => (await folderMessages(B, paul.addresses[0])).length >= 2 || undefined, 'two messages at B');
    // From B to A: received from another operator, with an attachment.
    await submitAs(B.ports.submission, layout.caBundle, paul, { from: paul.addresses[0], to: claireAddr, subject: SUBJECTS[4], text: 'Merci.', attachments: [pdf] });
    await waitFor(async () => (await folderMessages(A, claireAddr)).length >= 1 || undefined, 'the reply at A');

    // IMAP: one good login (kept open for the sessions gauge), one bad.
    const imap = await rawImap(A.ports.imaps, readFileSync(layout.caBundle, 'utf8'));
    const ok = await imap.cmd(`LOGIN ${claire.login} "${claire.appPassword}"`);
    assert.match(ok.at(-1)!, /^t1 OK/);
    const bad = await rawImap(A.ports.imaps, readFileSync(layout.caBundle, 'utf8'));
    assert.match((await bad.cmd(`LOGIN ${claire.login} "not-the-password"`)).at(-1)!, /^t1 NO/);
    bad.close();
    // The closed one leaves once the server sees the close; the open one stays counted.
    await waitFor(async () => series(await scrape(A), 'caducee_imap_sessions') === 1 || undefined, 'one open IMAP session in the gauge');
    imap.close();

    // The indicators, as the administrator gets them.
    const r = caducee(['indicators', '--month', month, '--format', 'json', '--config', layout.operators[0].config]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.format, 'caducee-indicators');
    assert.equal(doc.version, 1);
    assert.deepEqual(doc.columns, [...INDICATOR_COLUMNS]);
    const rows: IndicatorRow[] = doc.rows;
    for (const row of rows) assert.deepEqual(Object.keys(row), [...INDICATOR_COLUMNS]);
    const delta = (m: Partial<IndicatorRow>) => value(rows, m) - value(before, m);

    assert.equal(delta({ ...senderKey, indicator: 'messages_sent', peer: 'internal' }), 2);
    assert.equal(delta({ ...senderKey, indicator: 'messages_sent_with_attachment', peer: 'internal' }), 1);
    assert.equal(delta({ ...senderKey, indicator: 'messages_sent_with_xdm', peer: 'internal' }), 1);
    assert.equal(delta({ ...senderKey, indicator: 'messages_sent', peer: 'operator' }), 2);
    assert.equal(delta({ ...senderKey, indicator: 'messages_sent_with_attachment', peer: 'operator' }), 1);
    assert.equal(delta({ ...senderKey, indicator: 'messages_sent_with_xdm', peer: 'operator' }), 0);
    assert.equal(delta({ ...senderKey, indicator: 'messages_sent', peer: 'patient' }), 0);
    assert.equal(delta({ ...orgKey, indicator: 'messages_received', peer: 'internal' }), 2);
    assert.equal(delta({ ...orgKey, indicator: 'messages_received_with_xdm', peer: 'internal' }), 1);
    assert.equal(delta({ ...senderKey, indicator: 'messages_received', peer: 'operator' }), 1);
    assert.equal(delta({ ...senderKey, indicator: 'messages_received_with_attachment', peer: 'operator' }), 1);
    // Operator-wide totals: nothing counted twice or elsewhere.
    assert.equal(delta({ indicator: 'messages_sent' }), 4);
    assert.equal(delta({ indicator: 'messages_received' }), 3);
    // Mailboxes: the demo's are active, none suspended or deleted.
    assert.ok(value(rows, { ...senderKey, indicator: 'mailboxes_active' }) >= 1);
    assert.equal(value(rows, { indicator: 'mailboxes_deleted' }), 0);
    // Connections: five submissions (the refused one logged in too), one IMAP success and one failure.
    assert.equal(delta({ indicator: 'connections', protocol: 'submission', outcome: 'success' }), 5);
    assert.equal(delta({ indicator: 'connections', protocol: 'imap', method: 'LOGIN', outcome: 'success' }), 1);
    assert.equal(delta({ indicator: 'connections', protocol: 'imap', method: 'LOGIN', outcome: 'failure' }), 1);

    // Content-free: no address, no subject, no login.
    const csv = caducee(['indicators', '--month', month, '--config', layout.operators[0].config]);
    assert.equal(csv.code, 0, csv.stderr);
    assert.equal(csv.stdout.split('\r\n')[0], INDICATOR_COLUMNS.join(','));
    assert.equal(csv.stdout.split('\r\n').length - 2, rows.length);
    for (const out of [r.stdout, csv.stdout]) {
      assert.doesNotMatch(out, /@/, 'no address');
      for (const s of [...SUBJECTS, claire.login, 'compte-rendu.pdf', 'IHE_XDM']) assert.ok(!out.includes(s), `${s} must not appear`);
    }

    // The metrics moved the same way.
    const m = await scrape(A);
    const moved = (name: string, labels: Record<string, string>) => series(m, name, labels) - series(metricsBefore, name, labels);
    assert.equal(moved('caducee_messages_total', { flow: 'sent', peer: 'internal' }), 2);
    assert.equal(moved('caducee_messages_total', { flow: 'sent', peer: 'operator' }), 2);
    assert.equal(moved('caducee_messages_total', { flow: 'received', peer: 'internal' }), 2);
    assert.equal(moved('caducee_messages_total', { flow: 'received', peer: 'operator' }), 1);
    assert.equal(moved('caducee_smtp_refusals_total', { listener: 'submission', stage: 'rcpt', code: '5.7.1' }), 1);
    assert.equal(moved('caducee_logins_total', { protocol: 'imap', method: 'LOGIN', outcome: 'failure' }), 1);
    assert.equal(moved('caducee_logins_total', { protocol: 'imap', method: 'LOGIN', outcome: 'success' }), 1);
    assert.ok(moved('caducee_outbound_attempts_total', { result: 'sent' }) >= 2);
    assert.equal(series(m, 'caducee_queue_depth'), 0);
    assert.doesNotMatch(m, /@/, 'no address in the metrics');
    // B received two messages from A through its MX.
    assert.equal(series(await scrape(B), 'caducee_messages_total', { flow: 'received', peer: 'operator' }), 2);
  });

  test('a month that is not YYYY-MM is refused with a clear message', () => {
    const r = caducee(['indicators', '--month', '2026-13', '--config', layout.operators[0].config]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /give it as YYYY-MM/);
  });
});
