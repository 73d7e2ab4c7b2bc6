// `npm test` takes its file list from test/run-order.mjs (longest files first): it must name
// every *.test.ts under test/ and src/ once, as `find` sees them, and package.json must use it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
// @ts-expect-error: a plain ES module without types (it runs before tsx is loaded)
import { LONGEST_FIRST, runOrder } from './run-order.mjs';

const root = path.resolve(import.meta.dirname, '..');

test('npm test runs every test file once, the longest first', () => {
  const order: string[] = runOrder(root);
  const found = execFileSync('find', ['test', 'src', '-name', '*.test.ts'], { cwd: root, encoding: 'utf8' }).trim().split('\n');
  assert.deepEqual([...order].sort(), [...found].sort(), 'the run order and `find test src -name *.test.ts` differ');
  assert.equal(new Set(order).size, order.length, 'a file listed twice');
  assert.deepEqual(order.slice(0, LONGEST_FIRST.length), LONGEST_FIRST);
  const script = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).scripts.test as string;
  assert.match(script, /^files=\$\(node test\/run-order\.mjs\) && node --import tsx --test --test-concurrency=2 \$files$/);
});

test('a stale name in the longest-first list is an error, not a file left out', () => {
  LONGEST_FIRST.push('test/no-such-file.test.ts');
  try {
    assert.throws(() => runOrder(root), /no-such-file\.test\.ts/);
  } finally {
    LONGEST_FIRST.pop();
  }
});
