// Summarises V8 .cpuprofile files (node --cpu-prof) by self time: the top functions, and the
// same grouped by package or source file, with total (self + callees) time for functions.
//
//   node --import tsx bench/cpuprofile-top.ts FILE.cpuprofile [...] [--top N] [--by function|file|package]
//
//   … --stacks SUBSTRING   the heaviest stacks (callers) through the functions whose key contains SUBSTRING
//
// Several files are added up (e.g. the workers of one run). Times are sampled (≈1 ms interval).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' }, by: { type: 'string' }, stacks: { type: 'string' } } });
const top = Number(values.top ?? 30);
const by = (values.by ?? 'function') as 'function' | 'file' | 'package';
if (!positionals.length || !['function', 'file', 'package'].includes(by)) {
  process.stderr.write('usage: node --import tsx bench/cpuprofile-top.ts FILE.cpuprofile [...] [--top N] [--by function|file|package]\n');
  process.exit(2);
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const src = url.search(/\/(src|bench|test)\//);
  if (src >= 0) return url.slice(src + 1);
  return url.replace(/^file:\/\//, '');
}
function packageOf(url: string): string {
  if (!url) return '(native/vm)';
  if (url.startsWith('node:')) return url;
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const src = /\/src\/([^/]+)/.exec(url);
  return src ? `src/${src[1]}` : shortUrl(url);
}
function keyOf(f: CallFrame): string {
  if (by === 'package') return packageOf(f.url);
  if (by === 'file') return f.url ? shortUrl(f.url) : `(${f.functionName || 'anonymous'})`;
  return `${f.functionName || '(anonymous)'} ${f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : ''}`.trim();
}

const stacks = new Map<string, number>();
const self = new Map<string, number>();
const total = new Map<string, number>();
let all = 0;
for (const file of positionals) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const name = n.callFrame.functionName;
    if (name === '(idle)') continue;
    all += us;
    const k = keyOf(n.callFrame);
    self.set(k, (self.get(k) ?? 0) + us);
    if (values.stacks) {
      const chain: string[] = [];
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) chain.push(keyOf(byId.get(cur)!.callFrame));
      const at = chain.findIndex((k) => k.includes(values.stacks!));
      if (at >= 0) {
        const s = chain.slice(at, at + 12).join('\n      < ');
        stacks.set(s, (stacks.get(s) ?? 0) + us);
      }
    }
    // Total: each distinct key on the stack once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const kk = keyOf(byId.get(cur)!.callFrame);
      if (seen.has(kk)) continue;
      seen.add(kk);
      total.set(kk, (total.get(kk) ?? 0) + us);
    }
  }
}
const ms = (us: number) => (us / 1000).toFixed(0).padStart(7);
const pct = (us: number) => ((100 * us) / all).toFixed(1).padStart(5);
process.stdout.write(`busy (non-idle) samples: ${(all / 1000).toFixed(0)} ms in ${positionals.length} profile(s); top ${top} by self time, grouped by ${by}\n`);
process.stdout.write(`   self ms  self%  total ms total%  ${by}\n`);
for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  process.stdout.write(`  ${ms(us)}  ${pct(us)}  ${ms(total.get(k) ?? 0)}  ${pct(total.get(k) ?? 0)}  ${k}\n`);
}
if (by === 'function') {
  process.stdout.write(`\ntop ${top} by total time (self + callees)\n`);
  for (const [k, us] of [...total].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  ${ms(us)}  ${pct(us)}  ${k}\n`);
}
if (values.stacks) {
  process.stdout.write(`\nheaviest stacks through "${values.stacks}"\n`);
  for (const [k, us] of [...stacks].sort((a, b) => b[1] - a[1]).slice(0, 8)) process.stdout.write(`  ${ms(us)}  ${pct(us)}  ${k}\n\n`);
}
