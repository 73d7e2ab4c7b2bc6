// The webmail's build (docs/webmail.md): `npm install` runs it (the `prepare` script); `caducee
// demo` and `caducee start` run it again when webmail/dist is missing or older than
// webmail/src, so a fresh clone installed with --ignore-scripts, or an edited source, still
// serves the current webmail. Vite runs in a child process: the operator never loads it.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function newest(dir: string): number {
  let t = 0;
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    const s = statSync(p);
    t = Math.max(t, s.isDirectory() ? newest(p) : s.mtimeMs);
  }
  return t;
}

/** 'fresh' | 'built' | 'unavailable' (no sources or no Vite: an installed package without them). */
export function ensureWebmailBuilt(log: (line: string) => void = (l) => process.stderr.write(l + '\n')): 'fresh' | 'built' | 'unavailable' {
  const src = path.join(ROOT, 'webmail', 'src');
  const index = path.join(ROOT, 'webmail', 'dist', 'index.html');
  const vite = path.join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
  if (!existsSync(src)) return existsSync(index) ? 'fresh' : 'unavailable';
  const sources = Math.max(newest(src), statSync(path.join(ROOT, 'webmail', 'index.html')).mtimeMs);
  if (existsSync(index) && statSync(index).mtimeMs >= sources) return 'fresh';
  if (!existsSync(vite)) return 'unavailable';
  log('Construction du webmail (vite build)… / building the webmail');
  const r = spawnSync(process.execPath, [vite, 'build', '--config', 'webmail/vite.config.ts'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) {
    log(`webmail build failed: ${String(r.stderr).trim()}`);
    return 'unavailable';
  }
  return 'built';
}
