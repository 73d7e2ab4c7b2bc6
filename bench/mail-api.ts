// Mail API /api/v1 on a big folder: fill the physician's INBOX of a demo operator with N small
// distinct messages (10,000 by default), then time over HTTPS, as the webmail calls it:
//  - list page: GET /api/v1/folders/{INBOX}/emails?limit=50 — the first page, then walking
//    the cursor (p50 / p99), the first request (cold summaries) reported apart;
//  - search: GET /api/v1/search?folder=…&subject=<rare word> (the IMAP SEARCH engine) p50 / p99;
//  - delivery → event stream: a message submitted over SMTP (nodemailer) until its `email`
//    event reaches an open GET /api/v1/events stream.
// Goals (issue 9): list page p99 ≤ 50 ms, delivery to stream ≤ 1 s.
// The operator runs in this process (startDemo), the client is a keep-alive HTTPS agent
// presenting the demo practitioner's certificate (the API's client-certificate caller).
//
//   node --import tsx bench/mail-api.ts [--messages N] [--pages P] [--searches S] [--deliveries D] [--json]
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import nodemailer from 'nodemailer';
import pino from 'pino';
import { prepareDemo, startDemo } from '../src/demo/space.js';
import { benchDir, cleanupAll, installSignalHandlers, intOption, onCleanup, parseArgsOrUsage, percentile } from './common.js';

const usage = (msg: string): never => {
  console.error(`${msg}\nusage: node --import tsx bench/mail-api.ts [--messages N] [--pages P] [--searches S] [--deliveries D] [--json]`);
  process.exit(2);
};
const values = parseArgsOrUsage(process.argv.slice(2), { messages: { type: 'string' }, pages: { type: 'string' }, searches: { type: 'string' }, deliveries: { type: 'string' }, json: { type: 'boolean' } }, usage);
const int = intOption(usage);
const N = int(values.messages ?? '10000', 'messages', 10, 200_000);
const PAGES = int(values.pages ?? '200', 'pages', 10, 10_000);
const SEARCHES = int(values.searches ?? '30', 'searches', 5, 1000);
const DELIVERIES = int(values.deliveries ?? '20', 'deliveries', 1, 500);
const RARE = 'xylophone';

installSignalHandlers('mail-api bench', 20 * 60_000);
const dir = benchDir('caducee-bench-mail-api-');
const layout = await prepareDemo(dir, { ports: 'ephemeral' });
const demo = await startDemo(layout, { logger: pino({ level: 'silent' }), psc: false });
onCleanup('demo', () => demo.stop());
const A = layout.operators[0]!;
const op = demo.operators[0]!;
const claire = A.users[0]!;
const per = claire.addresses[0]!;
const ca = readFileSync(layout.caBundle, 'utf8');
const personal = A.certificates.personal;
const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca, cert: readFileSync(personal.cert, 'utf8'), key: readFileSync(personal.key, 'utf8') });

function get(path: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    https
      .get(new URL(path, A.https), { agent, headers: { accept: 'application/json' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
      })
      .on('error', reject);
  });
}

// ---- fill ------------------------------------------------------------------------------------
const mb = (await op.store.findMailboxByAddress(per))!;
const inbox = (await op.store.getFolder(mb.id, 'INBOX'))!;
const t0 = performance.now();
for (let i = 0; i < N; i++) {
  const subject = i % 1000 === 500 ? `Compte rendu ${RARE} n°${i}` : `Compte rendu n°${i}`;
  const msg = Buffer.from(
    `From: "Dr Paul Bernard" <paul.bernard@b.mssante.test>\r\nTo: <${per}>\r\nSubject: ${subject}\r\nDate: ${new Date(Date.UTC(2026, 0, 1) + i * 60_000).toUTCString()}\r\nMessage-ID: <m${i}@b.mssante.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBonjour,\r\nvoici le compte rendu numéro ${i} du patient.\r\nCordialement\r\n`,
  );
  const b = await op.blobs.put(msg);
  await op.core.deliver({ blobId: b.id, size: b.size, internalDate: new Date(Date.UTC(2026, 0, 1) + i * 60_000), envelopeFrom: 'paul.bernard@b.mssante.test', localMailboxIds: [mb.id], remote: [] });
  b.release();
}
const fillMs = performance.now() - t0;

// ---- list pages ------------------------------------------------------------------------------
const path = `/api/v1/folders/f${inbox.id}/emails?limit=50`;
let t = performance.now();
const first = await get(path);
const firstMs = performance.now() - t;
if (first.status !== 200 || first.body.total < N) throw new Error(`list failed: ${first.status} ${JSON.stringify(first.body).slice(0, 200)}`);
const lists: number[] = [];
let cursor: string | null = first.body.nextCursor;
for (let i = 0; i < PAGES; i++) {
  // Walk the cursor a while, then start again from the top (what scrolling and reloading do).
  const url = i % 20 === 0 || !cursor ? path : `${path}&cursor=${cursor}`;
  t = performance.now();
  const r = await get(url);
  lists.push(performance.now() - t);
  cursor = r.body.nextCursor;
}

// ---- search ----------------------------------------------------------------------------------
const searches: number[] = [];
let hits = 0;
// The server runs in this process: its CPU time is the process's (the client's share is small).
let cpu0 = process.cpuUsage();
for (let i = 0; i < SEARCHES; i++) {
  t = performance.now();
  const r = await get(`/api/v1/search?folder=f${inbox.id}&subject=${RARE}&limit=50`);
  searches.push(performance.now() - t);
  hits = r.body.total;
}
const cpuOf = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000 / SEARCHES;
const searchCpuMs = cpuOf(process.cpuUsage(cpu0));
const fromSearches: number[] = [];
let fromHits = 0;
cpu0 = process.cpuUsage();
for (let i = 0; i < SEARCHES; i++) {
  t = performance.now();
  const r = await get(`/api/v1/search?folder=f${inbox.id}&from=nobody&limit=50`);
  fromSearches.push(performance.now() - t);
  fromHits = r.body.total;
}
const fromCpuMs = cpuOf(process.cpuUsage(cpu0));

// ---- delivery → event stream --------------------------------------------------------------------
const arrivals = new Map<string, number>();
const stream = await new Promise<import('node:http').ClientRequest>((resolve, reject) => {
  const req = https.request(new URL('/api/v1/events', A.https), { ca, cert: readFileSync(personal.cert, 'utf8'), key: readFileSync(personal.key, 'utf8'), agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (/^event: email$/m.test(block) && data) for (const id of JSON.parse(data).ids ?? []) arrivals.set(id, performance.now());
      }
    });
    resolve(req);
  });
  req.on('error', reject);
  req.end();
});
const transport = nodemailer.createTransport({ host: '127.0.0.1', port: A.ports.submission, secure: false, requireTLS: true, pool: true, maxConnections: 1, auth: { user: claire.login, pass: claire.appPassword }, tls: { ca, servername: 'localhost' } });
const latencies: number[] = [];
for (let i = 0; i < DELIVERIES; i++) {
  const before = arrivals.size;
  const start = performance.now();
  await transport.sendMail({ from: per, to: per, subject: `live ${i}`, text: 'x' });
  const deadline = Date.now() + 5000;
  while (arrivals.size === before && Date.now() < deadline) await new Promise((r) => setImmediate(r));
  if (arrivals.size === before) throw new Error('no event within 5 s');
  latencies.push([...arrivals.values()].pop()! - start);
}
transport.close();
stream.destroy();
agent.destroy();

const sorted = (a: number[]) => [...a].sort((x, y) => x - y);
const fig = {
  messages: N,
  fillSeconds: +(fillMs / 1000).toFixed(1),
  listFirstMs: +firstMs.toFixed(1),
  listP50Ms: +percentile(sorted(lists), 50).toFixed(1),
  listP99Ms: +percentile(sorted(lists), 99).toFixed(1),
  searchHits: hits,
  searchP50Ms: +percentile(sorted(searches), 50).toFixed(1),
  searchP99Ms: +percentile(sorted(searches), 99).toFixed(1),
  deliveryToStreamP50Ms: +percentile(sorted(latencies), 50).toFixed(1),
  deliveryToStreamMaxMs: +Math.max(...latencies).toFixed(1),
};
console.log(`mail API, folder of ${N} messages (filled in ${fig.fillSeconds} s)`);
console.log(`  list page (50)      first ${fig.listFirstMs} ms   p50 ${fig.listP50Ms} ms   p99 ${fig.listP99Ms} ms   (goal p99 ≤ 50 ms)  [${PAGES} requests]`);
console.log(`  search SUBJECT      p50 ${fig.searchP50Ms} ms   p99 ${fig.searchP99Ms} ms   CPU ${searchCpuMs.toFixed(1)} ms/search   (${hits} hits)  [${SEARCHES} requests]`);
console.log(`  search FROM         p50 ${percentile(sorted(fromSearches), 50).toFixed(1)} ms   p99 ${percentile(sorted(fromSearches), 99).toFixed(1)} ms   CPU ${fromCpuMs.toFixed(1)} ms/search   (${fromHits} hits)  [${SEARCHES} requests]`);
console.log(`  delivery → stream   p50 ${fig.deliveryToStreamP50Ms} ms   max ${fig.deliveryToStreamMaxMs} ms   (goal ≤ 1000 ms; SMTP submission included)  [${DELIVERIES}]`);
if (values.json) console.log(JSON.stringify(fig));
await cleanupAll();
process.exit(0);
