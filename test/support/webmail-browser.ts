// Driving the webmail in a real browser: Debian's chromium (headless) through playwright-core
// (no browser download), axe-core injected for the RGAA 4.1 / WCAG 2.1 AA checks tools can make,
// screenshots at 1280 px and 360 px under test-output/webmail/.
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { ensureWebmailBuilt as buildWebmail } from '../../src/cli/webmail-build.js';

export const CHROMIUM = process.env.CADUCEE_CHROMIUM ?? '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const SHOTS = path.join(ROOT, 'test-output', 'webmail');

/** Builds webmail/dist when missing or older than its sources (as npm install / npm start do). */
export function ensureWebmailBuilt(): void {
  if (buildWebmail(() => {}) === 'unavailable') throw new Error('the webmail cannot be built (webmail/src or vite missing)');
}

export async function launch(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  // --no-sandbox: CI and these machines run tests as root, where Chromium's sandbox cannot start.
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: string[];
}

/** axe-core run on the page (evaluated through the DevTools protocol: the page's CSP stays on). */
export async function axe(page: Page): Promise<AxeViolation[]> {
  // Injected once per document (the webmail is a single-page app: it stays through its screens).
  if (!(await page.evaluate(() => typeof (globalThis as any).axe?.run === 'function'))) await page.evaluate(AXE);
  return page.evaluate(async () => {
    const r = await (globalThis as any).axe.run((globalThis as any).document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
    return r.violations.map((v: any) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n: any) => n.target.join(' ')) }));
  });
}

/** Serious or critical violations only (the bar), and screenshots at 1280 and 360 px. */
export async function checkScreen(page: Page, name: string): Promise<AxeViolation[]> {
  mkdirSync(SHOTS, { recursive: true });
  const size = page.viewportSize() ?? { width: 1280, height: 800 };
  const bad: AxeViolation[] = [];
  for (const width of [1280, 360]) {
    await page.setViewportSize({ width, height: width === 360 ? 740 : 800 });
    await page.waitForTimeout(50);
    await page.screenshot({ path: path.join(SHOTS, `${name}-${width}.png`) });
    for (const v of await axe(page)) if (v.impact === 'serious' || v.impact === 'critical') bad.push({ ...v, id: `${v.id}@${width}px` });
  }
  await page.setViewportSize(size);
  return bad;
}

/** First login of a demo user in the browser: password, TOTP enrolment; returns the recovery codes. */
export async function firstLogin(page: Page, base: string, login: string, password: string): Promise<string[]> {
  const { generate } = await import('otplib');
  await page.goto(base + '/');
  await page.getByLabel('Identifiant').fill(login);
  await page.getByLabel('Mot de passe').fill(password);
  await page.getByRole('button', { name: 'Se connecter' }).click();
  const secret = (await page.getByTestId('totp-secret').textContent())!.replace(/\s+/g, '');
  await page.getByLabel('Code affiché par l’application').fill(await generate({ secret }));
  await page.getByRole('button', { name: 'Activer' }).click();
  const codes = await page.locator('.recovery-codes code').allTextContents();
  await page.getByRole('button', { name: /accéder à ma messagerie/ }).click();
  await page.getByRole('button', { name: 'Nouveau message' }).waitFor();
  return codes;
}

/** Delivers `n` small messages into a mailbox's INBOX through Core (as the MX would, without SMTP). */
export async function fillInbox(op: { store: any; blobs: any; core: any }, address: string, n: number, from = 'paul.bernard@b.mssante.test'): Promise<void> {
  const mb = await op.store.findMailboxByAddress(address);
  for (let i = 0; i < n; i++) {
    const date = new Date(Date.UTC(2026, 0, 1) + i * 60_000);
    const msg = Buffer.from(
      `From: <${from}>\r\nTo: <${address}>\r\nSubject: Compte rendu n°${i}\r\nDate: ${date.toUTCString()}\r\nMessage-ID: <fill${i}.${Date.now()}@b.mssante.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCompte rendu ${i}.\r\n`,
    );
    const b = await op.blobs.put(msg);
    await op.core.deliver({ blobId: b.id, size: b.size, internalDate: date, envelopeFrom: from, localMailboxIds: [mb.id], remote: [] });
    b.release();
  }
}

/** Scrolls the message list to its end in steps, one per animation frame; frame times and DOM rows seen. */
export async function scrollList(page: Page, step = 600): Promise<{ frames: number[]; maxRows: number; reachedEnd: boolean }> {
  return page.evaluate(async (step) => {
    const d = (globalThis as any).document;
    const el = d.querySelector('.vlist');
    const frames: number[] = [];
    let maxRows = 0;
    let last = (globalThis as any).performance.now();
    const deadline = last + 60_000;
    while (el.scrollTop + el.clientHeight < el.scrollHeight - 2 && last < deadline) {
      el.scrollTop += step;
      await new Promise((r) => (globalThis as any).requestAnimationFrame(r));
      const now = (globalThis as any).performance.now();
      frames.push(now - last);
      last = now;
      maxRows = Math.max(maxRows, d.querySelectorAll('.vrow').length);
    }
    return { frames, maxRows, reachedEnd: el.scrollTop + el.clientHeight >= el.scrollHeight - 2 };
  }, step);
}
