// The MX's own part of a message between the end of DATA and the answers after the commit, in
// one process, without the network, the SMTP parser or the database commit: what branch mxcpu
// changed, measured in CPU time (process.cpuUsage: user + system) so that a loaded machine
// disturbs it less than a wall-clock rate.
//   old: put(stream) through a FileHandle, the file read back whole, the urgency responder's
//        64 KiB read of the file and mailparser over all of it
//   new: the bytes kept from DATA (messageBytes), put(bytes) through a descriptor, mailparser
//        over the text-bearing start only (messageUrgencyMarkers with the analysis)
// Both analyse the message (deliveryAnalysis), as the MX does. Messages: the mx-load shape (one
// base64 attachment, no text) and a letter with a PDF (a text part, then the attachment).
//   node --import tsx bench/mx-intake-path.ts [--messages N] [--size BYTES] [--concurrency M]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { simpleParser } from 'mailparser';
import { deliveryAnalysis } from '../src/mail/message-index.js';
import { headerBlock } from '../src/policy/absence.js';
import { urgencyMarkers } from '../src/policy/rules.js';
import { messageUrgencyMarkers } from '../src/policy/urgency.js';
import { messageBytes } from '../src/smtp/common.js';
import { BlobStore } from '../src/store/blobs.js';
import { eachLimited } from '../src/store/message-files.js';
import { SqliteStore } from '../src/store/sqlite/index.js';

const { values } = parseArgs({ options: { messages: { type: 'string' }, size: { type: 'string' }, concurrency: { type: 'string' } } });
const n = Number(values.messages ?? 2000);
const size = Number(values.size ?? 10240);
const concurrency = Number(values.concurrency ?? 8);
const READ_LIMIT = 64 * 1024;

const base64 = (bytes: number) => randomBytes(Math.ceil((bytes * 3) / 4)).toString('base64').replace(/.{76}/g, '$&\r\n') + '\r\n';
const shapes: Record<string, (i: number) => Buffer> = {
  'attachment only (mx-load)': (i) =>
    Buffer.from(`From: <a@a.mssante.test>\r\nTo: <p@b.mssante.test>\r\nSubject: bench ${i}\r\nMessage-ID: <${i}.${Date.now()}@a>\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n${base64(size - 300)}`),
  'letter + PDF': (i) =>
    Buffer.from(`From: <a@a.mssante.test>\r\nTo: <p@b.mssante.test>\r\nSubject: compte rendu ${i}\r\nMessage-ID: <${i}.${Date.now()}@a>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBonjour,\r\nveuillez trouver le compte rendu.\r\nCordialement\r\n--b\r\nContent-Type: application/pdf; name="cr.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n${base64(size - 500)}--b--\r\n`),
};

const dir = mkdtempSync(path.join(os.tmpdir(), 'caducee-intake-'));
const store = SqliteStore.open(path.join(dir, 'db.sqlite'));
const blobs = new BlobStore(path.join(dir, 'blobs'), store);
const prefix = Buffer.from('Received: from mx.a.mssante.test by mx.b.mssante.test with ESMTPS; Tue, 8 Dec 2026 02:00:00 +0000\r\n');
const chunked = (raw: Buffer) => Readable.from(Array.from({ length: Math.ceil(raw.length / 16384) }, (_, k) => raw.subarray(k * 16384, (k + 1) * 16384)));

async function oldPath(body: Buffer): Promise<number> {
  const blob = await blobs.put(chunked(body), { prefix, maxSize: 1e9 });
  const raw = await blobs.read(blob.id);
  deliveryAnalysis(raw);
  const chunks: Buffer[] = [];
  for await (const c of blobs.stream(blob.id, { start: 0, end: READ_LIMIT - 1 })) chunks.push(c as Buffer);
  const head = Buffer.concat(chunks);
  const parsed = await simpleParser(head, { skipHtmlToText: false, skipImageLinks: true, skipTextLinks: true }).catch(() => undefined);
  await blob.release();
  return urgencyMarkers({ subject: parsed?.subject, text: parsed?.text ?? '', header: headerBlock(head) }).length;
}

async function newPath(body: Buffer): Promise<number> {
  const raw = await messageBytes(chunked(body), prefix, 1e9);
  const blob = await blobs.put(raw);
  const analyzed = deliveryAnalysis(raw);
  const markers = await messageUrgencyMarkers(raw.subarray(0, READ_LIMIT), analyzed?.info);
  await blob.release();
  return markers.length;
}

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
console.log(`mx-intake-path: ${n} messages of ${size} B per run, ${concurrency} at a time; load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
try {
  for (const [shape, make] of Object.entries(shapes)) {
    const bodies = Array.from({ length: n }, (_, i) => make(i));
    const results: Record<string, number[]> = { old: [], new: [] };
    for (let round = 0; round < 3; round++) {
      for (const [name, f] of [['old', oldPath], ['new', newPath]] as const) {
        const c0 = cpuMs();
        await eachLimited(bodies, concurrency, async (b) => void (await f(b)));
        results[name].push((cpuMs() - c0) / n);
      }
    }
    // The first round warms both paths up; the figure is the median of the three.
    const med = (a: number[]) => [...a].sort((x, y) => x - y)[1];
    console.log(`  ${shape}: old ${med(results.old).toFixed(3)} ms CPU/msg, new ${med(results.new).toFixed(3)} ms CPU/msg (rounds: old ${results.old.map((x) => x.toFixed(3)).join(', ')}; new ${results.new.map((x) => x.toFixed(3)).join(', ')})`);
  }
  console.log(`  load after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
