// In-process demo; measures this process's memory before/after N idle IMAPS clients (in a child).
import { spawn } from 'node:child_process';
import { readFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import pino from 'pino';
import { prepareDemo, startDemo } from '../../src/demo/space.js';
const N = Number(process.argv[2] ?? 1000);
const snap = process.argv[3];
const dir = mkdtempSync(path.join('/dev/shm', 'idle-probe-'));
const layout = await prepareDemo(dir, { ports: 'ephemeral' });
const demo = await startDemo(layout, { logger: pino({ level: 'silent' }), psc: false });
const op = layout.operators[0];
const mem = () => { (globalThis as any).gc(); (globalThis as any).gc(); const m = process.memoryUsage(); const st = readFileSync('/proc/self/status', 'utf8'); const rss = Number(/VmRSS:\s+(\d+)/.exec(st)![1]); return { rss, heap: m.heapUsed / 1024, ext: m.external / 1024, ab: m.arrayBuffers / 1024 }; };
// one warm-up client
const run = (n: number) => new Promise<() => void>((resolve, reject) => {
  const c = spawn(process.execPath, ['/tmp/isel/probe/client.mjs', String(op.ports.imaps), Buffer.from(readFileSync(layout.caBundle, 'utf8')).toString('base64'), op.users[0].login, op.users[0].appPassword, String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
  c.stdout.on('data', (d) => { if (String(d).includes('ready')) resolve(() => c.stdin.end()); });
  c.on('exit', (code) => code && reject(new Error('client exit ' + code)));
});
const stopWarm = await run(5);
await new Promise((r) => setTimeout(r, 1000));
const m0 = mem();
const t0 = Date.now();
const stop = await run(N);
await new Promise((r) => setTimeout(r, 3000));
const m1 = mem();
const per = (k: keyof typeof m0) => ((m1[k] - m0[k]) / N).toFixed(2);
console.log(`N=${N} connect ${((Date.now() - t0) / 1000).toFixed(1)} s; KiB/conn: rss ${per('rss')} heap ${per('heap')} external ${per('ext')} arrayBuffers ${per('ab')}; rss ${m0.rss >> 10}→${m1.rss >> 10} MiB`);
if (snap) { v8.writeHeapSnapshot(snap); console.log('snapshot', snap); }
stop(); stopWarm();
await demo.stop();
process.exit(0);
