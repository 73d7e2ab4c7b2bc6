// Webmail first load (issue 9 benchmark): bytes of JS + CSS transferred (gzip, as served) on a
// cold load of https://<operator>/, and the time to interactive in headless Chromium — from
// navigation start to the login form rendered by React and ready for input (median of N cold
// loads, each in a fresh browser context: empty cache). Goal: first load ≤ 300 KB.
//
//   node --import tsx bench/webmail.ts [--loads 5] [--messages 10000] [--json]     (npm run bench:webmail)
//
// With --messages N (default 10000; 0: skip; needs the mail API), the physician's INBOX gets N
// messages and the list is scrolled to its end one step per frame: frame times and DOM rows.
//
// Needs /usr/bin/chromium (or CADUCEE_CHROMIUM). A demo operator pair runs in this process on
// ephemeral ports, under a temporary directory removed at the end.
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { prepareDemo, startDemo } from '../src/demo/space.js';
import { ensureWebmailBuilt } from '../src/cli/webmail-build.js';
import { tempDir } from '../test/helpers.js';
import { CHROMIUM, fillInbox, firstLogin, launch, scrollList } from '../test/support/webmail-browser.js';

const { values } = parseArgs({ options: { loads: { type: 'string', default: '5' }, messages: { type: 'string', default: '10000' }, json: { type: 'boolean', default: false } } });
const messages = Math.max(0, Math.min(100_000, Number(values.messages) || 0));
const loads = Math.max(1, Math.min(50, Number(values.loads) || 5));
if (!existsSync(CHROMIUM)) {
  process.stderr.write(`bench/webmail: ${CHROMIUM} is absent (apt-get install chromium)\n`);
  process.exit(2);
}
if (ensureWebmailBuilt(() => {}) === 'unavailable') {
  process.stderr.write('bench/webmail: the webmail cannot be built\n');
  process.exit(2);
}

const { dir, cleanup } = tempDir('caducee-bench-');
const layout = await prepareDemo(dir, { ports: 'ephemeral' });
const demo = await startDemo(layout, { logger: pino({ level: 'silent' }), psc: false });
const browser = await launch();
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
try {
  const results: { bytes: Record<string, number>; tti: number }[] = [];
  for (let i = 0; i < loads; i++) {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    const bytes: Record<string, number> = { js: 0, css: 0, html: 0, other: 0 };
    const pending: Promise<void>[] = [];
    page.on('requestfinished', (req) =>
      pending.push(
        req.sizes().then(async (s) => {
          const type = (await req.response())?.headers()['content-type'] ?? '';
          const kind = /javascript/.test(type) ? 'js' : /css/.test(type) ? 'css' : /html/.test(type) ? 'html' : 'other';
          bytes[kind]! += s.responseBodySize; // as transferred (gzip), headers excluded
        }),
      ),
    );
    await page.goto(`${layout.operators[0].https}/`, { waitUntil: 'commit' });
    // Interactive: React has rendered the login form and its first field can take input.
    const tti = await (await page.waitForFunction(() => {
      const el = (globalThis as any).document.querySelector('#login');
      return el && !el.disabled ? (globalThis as any).performance.now() : false;
    }, undefined, { polling: 'raf' })).jsonValue();
    await page.waitForLoadState('networkidle');
    await Promise.all(pending);
    results.push({ bytes, tti });
    await ctx.close();
  }
  // A folder of `messages` messages: scroll it to the end, one step per frame.
  let scroll: { messages: number; frameP50Ms: number; frameP95Ms: number; maxDomRows: number; fillSeconds: number } | undefined;
  if (messages > 0) {
    const t0 = performance.now();
    await fillInbox(demo.operators[0]!, layout.operators[0]!.users[0]!.addresses[0]!, messages);
    const fillSeconds = Math.round((performance.now() - t0) / 100) / 10;
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    const u = layout.operators[0]!.users[0]!;
    await firstLogin(page, layout.operators[0]!.https!, u.login, u.password);
    if ((await page.locator('[data-row="0"]').count()) === 0) await page.locator('[data-row="0"]').waitFor({ timeout: 10_000 });
    const r = await scrollList(page, 800);
    const f = [...r.frames].sort((a, b) => a - b);
    scroll = { messages, frameP50Ms: Math.round(f[Math.floor(f.length / 2)]! * 10) / 10, frameP95Ms: Math.round(f[Math.floor(f.length * 0.95)]! * 10) / 10, maxDomRows: r.maxRows, fillSeconds };
    await ctx.close();
  }
  const first = results[0]!.bytes;
  const out = {
    loads,
    jsGzipBytes: first.js,
    cssGzipBytes: first.css,
    htmlBytes: first.html,
    firstLoadJsCssKB: Math.round(((first.js + first.css) / 1024) * 10) / 10,
    timeToInteractiveMsMedian: Math.round(median(results.map((r) => r.tti))),
    timeToInteractiveMsMax: Math.round(Math.max(...results.map((r) => r.tti))),
    goalKB: 300,
    ...(scroll ? { scroll } : {}),
  };
  if (values.json) process.stdout.write(JSON.stringify(out) + '\n');
  else {
    process.stdout.write(`webmail first load (cold cache, ${loads} loads)\n`);
    process.stdout.write(`  JS  ${out.jsGzipBytes} B gzip\n  CSS ${out.cssGzipBytes} B gzip\n  HTML ${out.htmlBytes} B\n`);
    process.stdout.write(`  JS + CSS transferred: ${out.firstLoadJsCssKB} KB (goal ≤ ${out.goalKB} KB)\n`);
    process.stdout.write(`  time to interactive: median ${out.timeToInteractiveMsMedian} ms, max ${out.timeToInteractiveMsMax} ms\n`);
    if (scroll)
      process.stdout.write(
        `list of ${scroll.messages} messages (filled in ${scroll.fillSeconds} s), scrolled to the end 800 px per frame: frame p50 ${scroll.frameP50Ms} ms, p95 ${scroll.frameP95Ms} ms; at most ${scroll.maxDomRows} rows in the DOM\n`,
      );
  }
  process.exitCode = out.firstLoadJsCssKB <= out.goalKB ? 0 : 1;
} finally {
  await browser.close();
  await demo.stop();
  cleanup();
}
