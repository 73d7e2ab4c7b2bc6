// The rooms of src/ import each other only downwards (docs/architecture.md, "Layers"): this test
// reads every import of every .ts file under src/, maps it to a room-level edge, and fails on an
// edge outside the allowed set written in docs/architecture.md (its ```layers block, parsed here,
// so the document and the test cannot disagree) and on any cycle between rooms. It plays the part
// Go's compiler plays for mox's packages.
//
// Test files (*.test.ts) are not held to the block: nothing imports them (checked below), so they
// cannot close a cycle, and a test next to the code may drive it through a room above it or use
// test/ helpers. Production files may import neither a test file nor anything outside src/.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SRC = path.join(REPO, 'src');
const ARCHITECTURE = path.join(REPO, 'docs/architecture.md');
/** The files directly in src/ (main.ts): the composition root. */
const ROOT = 'root';

/**
 * Edges that break the layering today and are being fixed elsewhere (issue 14). Each must still
 * occur: a listed violation that no longer does fails the test, so the list only shrinks.
 */
const KNOWN_VIOLATIONS: { from: string; to: string; reason: string }[] = [];

// ---- reading imports ----------------------------------------------------------------------------

/**
 * The source with comments and the insides of strings, template literals and regular-expression
 * literals blanked out (newlines kept, so offsets and line numbers still match). A module
 * specifier is then read back from the original source at the blanked string's place.
 */
function codeOnly(src: string): string {
  const out = src.split('');
  const blank = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (out[k] !== '\n') out[k] = ' ';
  };
  // Modes: code (with the brace depth opened inside a template's ${ }) or template text.
  const stack: { mode: 'code' | 'template'; depth: number }[] = [{ mode: 'code', depth: 0 }];
  let prev = ''; // last significant code character (regex-or-division decision)
  let prevWord = '';
  let i = 0;
  const n = src.length;
  while (i < n) {
    const top = stack[stack.length - 1]!;
    const c = src[i]!;
    if (top.mode === 'template') {
      if (c === '\\') {
        blank(i, i + 2);
        i += 2;
      } else if (c === '`') {
        stack.pop();
        prev = '`';
        i++;
      } else if (c === '$' && src[i + 1] === '{') {
        stack.push({ mode: 'code', depth: 0 });
        prev = '{';
        i += 2;
      } else {
        blank(i, i + 1);
        i++;
      }
      continue;
    }
    if (c === '/' && src[i + 1] === '/') {
      const end = src.indexOf('\n', i);
      const stop = end === -1 ? n : end;
      blank(i, stop);
      i = stop;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end === -1 ? n : end + 2;
      blank(i, stop);
      i = stop;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < n && src[j] !== c && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1;
      blank(i + 1, j);
      i = j + 1;
      prev = c;
    } else if (c === '`') {
      stack.push({ mode: 'template', depth: 0 });
      i++;
    } else if (c === '/' && (prev === '' || '(,=:[!&|?{};+-*%<>~^'.includes(prev) || /^(return|typeof|case|in|of|delete|void|throw|new|yield|await|else|do)$/.test(prevWord))) {
      // A regular-expression literal: up to the closing unescaped '/' outside a [class].
      let j = i + 1;
      let inClass = false;
      while (j < n && src[j] !== '\n') {
        const d = src[j]!;
        if (d === '\\') j++;
        else if (d === '[') inClass = true;
        else if (d === ']') inClass = false;
        else if (d === '/' && !inClass) break;
        j++;
      }
      blank(i + 1, j);
      i = j + 1;
      prev = '/';
      prevWord = '';
    } else {
      if (c === '{') top.depth++;
      if (c === '}') {
        if (top.depth === 0 && stack.length > 1) {
          stack.pop(); // back to the template text after ${ … }
          i++;
          continue;
        }
        top.depth--;
      }
      if (/[A-Za-z0-9_$]/.test(c)) {
        let j = i;
        while (j < n && /[A-Za-z0-9_$]/.test(src[j]!)) j++;
        prevWord = src.slice(i, j);
        prev = src[j - 1]!;
        i = j;
        continue;
      }
      if (!/\s/.test(c)) {
        prev = c;
        prevWord = '';
      }
      i++;
    }
  }
  return out.join('');
}

interface ImportRef {
  specifier: string;
  line: number;
}

// `import x from '…'`, `import type { A } from '…'`, `import '…'`, `export * from '…'`,
// `export { a } from '…'` (a statement starting a line or after ; or }), and `import('…')`.
// Matched on the blanked code, so the specifier group is spaces: its text is read from the source.
const STATIC_RE = /(?:^|[;}])[ \t]*(?:import|export)\s+(?:[\w\s{},*$]+?\s*from\s*)?(['"])([^'"\n]+)\1/dgm;
const DYNAMIC_RE = /\bimport\s*\(\s*(['"])([^'"\n]+)\1\s*[,)]/dg;

function importsOf(src: string): ImportRef[] {
  const code = codeOnly(src);
  const refs: ImportRef[] = [];
  for (const re of [STATIC_RE, DYNAMIC_RE]) {
    for (const m of code.matchAll(re)) {
      const [start, end] = m.indices![2]!;
      refs.push({ specifier: src.slice(start, end), line: code.slice(0, start).split('\n').length });
    }
  }
  return refs.sort((a, b) => a.line - b.line);
}

// ---- the import graph of src/ -------------------------------------------------------------------

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return tsFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** Resolves a relative specifier the way NodeNext does for TypeScript sources ('./x.js' → x.ts). */
function resolve(from: string, specifier: string): string | undefined {
  const base = path.resolve(path.dirname(from), specifier);
  const candidates = [base, base.replace(/\.js$/, '.ts'), base.replace(/\.mjs$/, '.mts'), base + '.ts', path.join(base, 'index.ts')];
  return candidates.find((c) => existsSync(c) && statSync(c).isFile());
}

/** The room of a file under src/ (its top folder, or `root`); undefined outside src/. */
function roomOf(file: string): string | undefined {
  const rel = path.relative(SRC, file);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
  const parts = rel.split(path.sep);
  return parts.length > 1 ? parts[0] : ROOT;
}

const isTest = (file: string) => file.endsWith('.test.ts');
const rel = (file: string) => path.relative(REPO, file);

interface Edge {
  from: string;
  to: string;
  /** Every import making this edge, as "src/x/y.ts:12". */
  sites: string[];
}

interface Graph {
  rooms: string[];
  edges: Map<string, Edge>; // key "from→to"
  unresolved: string[];
  forbiddenTargets: string[];
  /** Production files outside src/store/ importing a database driver, as "src/x/y.ts:12 imports 'pg'". */
  driverImports: string[];
}

/**
 * The database drivers: only src/store/ may import them (architecture invariant 4, "only store/
 * knows tables": SQL, LISTEN/NOTIFY and connections included). A driver's subpath counts too.
 */
const DRIVERS = ['pg', 'pg-native', 'pg-cursor', 'pg-query-stream', 'pg-copy-streams', 'better-sqlite3', 'node:sqlite', 'sqlite3'];
const isDriver = (specifier: string) => DRIVERS.some((d) => specifier === d || specifier.startsWith(`${d}/`));

function readGraph(): Graph {
  const edges = new Map<string, Edge>();
  const unresolved: string[] = [];
  const forbiddenTargets: string[] = [];
  const driverImports: string[] = [];
  const files = tsFiles(SRC);
  for (const file of files) {
    for (const ref of importsOf(readFileSync(file, 'utf8'))) {
      if (!ref.specifier.startsWith('.')) {
        // A package or node: builtin.
        if (isDriver(ref.specifier) && !isTest(file) && roomOf(file) !== 'store') driverImports.push(`${rel(file)}:${ref.line} imports '${ref.specifier}'`);
        continue;
      }
      const site = `${rel(file)}:${ref.line}`;
      const target = resolve(file, ref.specifier);
      if (!target) {
        unresolved.push(`${site} imports '${ref.specifier}', which is no file`);
        continue;
      }
      if (isTest(file)) continue; // see the header: tests are leaves
      const to = roomOf(target);
      if (to === undefined) forbiddenTargets.push(`${site} imports ${rel(target)}, outside src/`);
      else if (isTest(target)) forbiddenTargets.push(`${site} imports the test file ${rel(target)}`);
      const from = roomOf(file)!;
      if (to === undefined || to === from) continue;
      const key = `${from}→${to}`;
      const e = edges.get(key) ?? { from, to, sites: [] };
      e.sites.push(site);
      edges.set(key, e);
    }
  }
  const rooms = [...new Set(files.map((f) => roomOf(f)!))].sort();
  return { rooms, edges, unresolved, forbiddenTargets, driverImports };
}

// ---- the allowed set ----------------------------------------------------------------------------

function readAllowed(): Map<string, Set<string>> {
  const md = readFileSync(ARCHITECTURE, 'utf8');
  const blocks = [...md.matchAll(/^```layers\n([\s\S]*?)^```/gm)];
  assert.equal(blocks.length, 1, `docs/architecture.md must hold exactly one \`\`\`layers block (found ${blocks.length})`);
  const allowed = new Map<string, Set<string>>();
  for (const [k, raw] of blocks[0]![1]!.split('\n').entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const m = /^([\w-]+):(.*)$/.exec(line);
    assert.ok(m, `docs/architecture.md layers block, line ${k + 1}: expected "room: rooms it may import", got "${raw}"`);
    assert.ok(!allowed.has(m[1]!), `docs/architecture.md layers block: room ${m[1]} is listed twice`);
    allowed.set(m[1]!, new Set(m[2]!.split(/\s+/).filter(Boolean)));
  }
  return allowed;
}

/** Cycles among the rooms of a graph: one per strongly connected component (Tarjan), as room paths. */
function cyclesOf(nodes: string[], next: (n: string) => string[]): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of next(v)) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || next(v).includes(v)) components.push(comp);
    }
  };
  for (const v of nodes) if (!idx.has(v)) visit(v);
  // One concrete cycle per component: a shortest way back to its first room (breadth first).
  return components.map((comp) => {
    const inComp = new Set(comp);
    const start = [...comp].sort()[0]!;
    const cameFrom = new Map<string, string>();
    const queue = [start];
    while (queue.length) {
      const v = queue.shift()!;
      for (const w of next(v)) {
        if (!inComp.has(w)) continue;
        if (w === start) {
          const cycle = [v];
          for (let u = v; u !== start; ) cycle.unshift((u = cameFrom.get(u)!));
          return [...cycle, start];
        }
        if (!cameFrom.has(w)) {
          cameFrom.set(w, v);
          queue.push(w);
        }
      }
    }
    throw new Error(`no cycle through ${start} in component ${comp.join(', ')}`);
  });
}

// ---- the checks ---------------------------------------------------------------------------------

describe('layering of src/ (docs/architecture.md, Layers)', () => {
  const graph = readGraph();
  const allowed = readAllowed();
  const known = new Set(KNOWN_VIOLATIONS.map((v) => `${v.from}→${v.to}`));
  const production = [...graph.edges.values()].filter((e) => !known.has(`${e.from}→${e.to}`));

  test('the import reader sees every import form, and nothing in comments, strings or templates', () => {
    const src = [
      "import a from './a.js';",
      "import type { B } from '../b/index.js';",
      'import {',
      '  c,',
      '  type D,',
      "} from './c.js'; export * from './e.js';",
      "import './side-effect.js';",
      "export { f } from './f.js';",
      "const g = await import('./g.js');",
      "// import h from './h.js';",
      "/* import('./i.js') */ const re = /import '.\\/j.js'/;",
      "const s = `import k from './k.js' ${x ? `import('./l.js')` : ''}`;",
      "const t = 'import m from \\'./m.js\\'';",
      "const u = 1 / 2; const v = import('./n.js');",
      'const w = "import(\'./o.js\')"; const y = "export * from \'./p.js\'";',
    ].join('\n');
    assert.deepEqual(importsOf(src), [
      { specifier: './a.js', line: 1 },
      { specifier: '../b/index.js', line: 2 },
      { specifier: './c.js', line: 6 },
      { specifier: './e.js', line: 6 },
      { specifier: './side-effect.js', line: 7 },
      { specifier: './f.js', line: 8 },
      { specifier: './g.js', line: 9 },
      { specifier: './n.js', line: 14 },
    ]);
  });

  test('the layers block names every room under src/, only known rooms, and has no cycle itself', () => {
    const missing = graph.rooms.filter((r) => !allowed.has(r));
    assert.deepEqual(missing, [], `rooms under src/ without a line in the docs/architecture.md layers block: ${missing.join(', ')}: add them`);
    for (const [room, targets] of allowed) {
      for (const t of targets) assert.ok(allowed.has(t), `docs/architecture.md layers block: ${room} may import "${t}", which is no room of the block`);
    }
    const cycles = cyclesOf([...allowed.keys()], (r) => [...allowed.get(r)!]);
    assert.deepEqual(cycles.map((c) => c.join(' → ')), [], 'the allowed set of docs/architecture.md must itself point one way');
  });

  test('every relative import resolves to a file (else the reader misread something)', () => {
    assert.deepEqual(graph.unresolved, []);
  });

  test('production files import neither test files nor anything outside src/', () => {
    assert.deepEqual(graph.forbiddenTargets, []);
  });

  test('only src/store/ imports a database driver (no SQL, LISTEN or connection of its own in relay/, demo/, …)', () => {
    assert.ok(isDriver('pg') && isDriver('better-sqlite3') && isDriver('node:sqlite') && isDriver('pg/lib/client') && !isDriver('pgp') && !isDriver('pino'));
    assert.deepEqual(graph.driverImports, [], 'move the code speaking to the database into src/store/ (behind an interface of store/types.ts)');
  });

  test('every edge between rooms is in the allowed set', () => {
    const bad = production
      .filter((e) => !allowed.get(e.from)?.has(e.to))
      .map((e) => `${e.from} → ${e.to} (${e.sites.join(', ')})`);
    assert.deepEqual(
      bad,
      [],
      `imports outside the allowed set of docs/architecture.md (Layers):\n  ${bad.join('\n  ')}\n` +
        'Move the imported thing down to a room both may use, or (if the layering itself is wrong) change the block and say why there.',
    );
  });

  test('no cycle between rooms', () => {
    const next = (r: string) => production.filter((e) => e.from === r).map((e) => e.to);
    const cycles = cyclesOf(graph.rooms, next).map((c) =>
      c
        .slice(1)
        .map((to, k) => `${c[k]} → ${to} (${graph.edges.get(`${c[k]}→${to}`)!.sites[0]})`)
        .join(', '),
    );
    assert.deepEqual(cycles, [], `cycles between rooms:\n  ${cycles.join('\n  ')}`);
  });

  test('every known violation still occurs and is still outside the allowed set', () => {
    for (const v of KNOWN_VIOLATIONS) {
      const e = graph.edges.get(`${v.from}→${v.to}`);
      assert.ok(e, `${v.from} → ${v.to} no longer occurs: remove it from KNOWN_VIOLATIONS in test/layering.test.ts`);
      assert.ok(!allowed.get(v.from)?.has(v.to), `${v.from} → ${v.to} is allowed by docs/architecture.md: remove it from KNOWN_VIOLATIONS`);
    }
  });
});
