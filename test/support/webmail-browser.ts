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
  await page.evaluate(AXE);
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
