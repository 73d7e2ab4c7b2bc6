// How long reading a delivery report holds the event loop (docs/receipts.md): parseReport on a
// small DSN and on a RET=FULL DSN returning a 10 MB message (only its first REPORT_READ_LIMIT
// octets are parsed), and the header check every local delivery pays. In-process, no I/O.
//   node --import tsx bench/report-reader.ts [--iterations N]
import { randomBytes } from 'node:crypto';
import { buildDsn } from '../src/mime/dsn.js';
import { parseReport, REPORT_READ_LIMIT, reportType } from '../src/mime/report.js';

const i = process.argv.indexOf('--iterations');
const n = i > 0 ? Math.max(1, Number(process.argv[i + 1]) || 50) : 50;
const head = 'From: a@a.test\r\nTo: b@b.test\r\nSubject: x\r\nMessage-ID: <m1@a.test>\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n';
const big = Buffer.concat([Buffer.from(head), Buffer.from(randomBytes(7_500_000).toString('base64').replace(/.{76}/g, '$&\r\n'))]);
const time = (f: () => unknown) => {
  f(); // warm-up
  const t = performance.now();
  for (let k = 0; k < n; k++) f();
  return (performance.now() - t) / n;
};
for (const ret of ['HDRS', 'FULL'] as const) {
  const raw = await buildDsn({ reportingMta: 'mx.b.test', postmaster: 'postmaster@b.test', to: 'a@a.test', envid: null, arrivalDate: new Date(), ret, recipients: [{ recipient: 'b@b.test', orcpt: null, action: 'failed', status: '5.2.2', diagnostic: '552 5.2.2 full', lastAttempt: new Date() }], original: big });
  console.log(`parseReport, DSN RET=${ret} of ${(raw.length / 1e6).toFixed(1)} MB (limit ${REPORT_READ_LIMIT / 1024} KB): ${time(() => parseReport(raw)).toFixed(2)} ms`);
}
const plain = Buffer.from(head);
console.log(`reportType on a plain header: ${(time(() => reportType(plain)) * 1000).toFixed(1)} µs`);
