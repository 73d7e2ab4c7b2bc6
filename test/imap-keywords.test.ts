// Keywords under concurrency (issue 15): every session is told about a keyword by an untagged
// FLAGS (and PERMANENTFLAGS) before any FETCH shows it (RFC 9051 §7.3.5, RFC 3501 §7.2.6),
// whether it set the keyword itself, another session did, or a new message carried it. Real
// sockets against the demo; every response stream is recorded and checked line by line.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { imapDemo } from './support/imap-demo.js';

const SYSTEM = new Set(['\\answered', '\\flagged', '\\deleted', '\\seen', '\\draft', '\\recent']);

/** Keywords in a FLAGS list, lower-cased (system flags and \Recent left out). */
const keywordsOf = (list: string) => list.split(' ').filter((f) => f && !SYSTEM.has(f.toLowerCase())).map((f) => f.toLowerCase());

/**
 * Walks a response stream and fails at the first FETCH showing a keyword no earlier FLAGS
 * response announced on that connection; checks PERMANENTFLAGS follows each FLAGS with the same
 * keywords and \*. Returns the keywords announced.
 */
function checkStream(lines: string[], who: string): Set<string> {
  const announced = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    const flags = /^\* FLAGS \(([^)]*)\)$/.exec(l);
    if (flags) {
      for (const k of keywordsOf(flags[1])) announced.add(k);
      const perm = /^\* OK \[PERMANENTFLAGS \(([^)]*)\)\]/.exec(lines[i + 1] ?? '');
      assert.ok(perm, `${who}: FLAGS not followed by PERMANENTFLAGS at line ${i}: ${lines[i + 1]}`);
      assert.deepEqual(new Set(keywordsOf(perm[1]).filter((k) => k !== '\\*')), new Set(keywordsOf(flags[1])), `${who}: PERMANENTFLAGS keywords differ from FLAGS at line ${i}`);
      assert.match(perm[1], /\\\*/, `${who}: PERMANENTFLAGS without \\* at line ${i}`);
      continue;
    }
    const fetch = /^\* \d+ FETCH \(.*FLAGS \(([^)]*)\)/.exec(l);
    if (fetch) for (const k of keywordsOf(fetch[1])) assert.ok(announced.has(k), `${who}: line ${i} shows keyword ${k} before any FLAGS announced it:\n${lines.slice(Math.max(0, i - 5), i + 1).join('\n')}`);
  }
  return announced;
}

const message = (i: number) => `From: a@a.mssante.test\r\nTo: b@a.mssante.test\r\nSubject: keywords ${i}\r\nMessage-ID: <kw${i}@a.mssante.test>\r\n\r\nbody ${i}\r\n`;
const appendCmd = (folder: string, flags: string, i: number) => {
  const m = message(i);
  return `APPEND ${folder} (${flags}) {${Buffer.byteLength(m)}+}\r\n${m}`;
};

describe('IMAP keywords are announced by FLAGS before any FETCH shows them', () => {
  const d = imapDemo();
  const session = async (folder?: string) => {
    const c = await d.connect(0);
    if (folder) await c.cmd(`SELECT ${folder}`);
    return c;
  };
  const before_ = (lines: string[], a: RegExp, b: RegExp) => {
    const i = lines.findIndex((l) => a.test(l));
    const j = lines.findIndex((l) => b.test(l));
    assert.ok(i >= 0, `no line matching ${a}:\n${lines.join('\n')}`);
    assert.ok(j >= 0, `no line matching ${b}:\n${lines.join('\n')}`);
    assert.ok(i < j, `${a} must come before ${b}:\n${lines.join('\n')}`);
  };

  test('own STORE, another session (NOOP and IDLE), and an APPEND carrying a keyword', async () => {
    const a = await session();
    await a.cmd('CREATE KW1');
    for (let i = 1; i <= 3; i++) await a.cmd(appendCmd('KW1', '\\Seen', i));
    await a.cmd('SELECT KW1');
    const b = await session('KW1');
    const idler = await session('KW1');

    // A's own STORE: FLAGS and PERMANENTFLAGS with $Label1 come before the FETCH showing it.
    const own = await a.cmd('STORE 1 +FLAGS ($Label1)');
    before_(own, /^\* FLAGS \(.*\$Label1/, /^\* 1 FETCH \(FLAGS \(.*\$Label1/);
    assert.match(own.join('\n'), /\* OK \[PERMANENTFLAGS \(.*\$Label1.*\\\*\)\]/);

    // B learns it at its next NOOP, FLAGS first.
    const noop = await b.cmd('NOOP');
    before_(noop, /^\* FLAGS \(.*\$Label1/, /^\* 1 FETCH \(UID \d+ FLAGS \(.*\$Label1/);

    // An idling session is told FLAGS before the FETCH.
    const from = idler.lines.length;
    idler.send('t-idle IDLE\r\n');
    await idler.waitLine((l) => l.startsWith('+ '), from);
    await a.cmd('STORE 2 +FLAGS ($Idle1)');
    const f = await idler.waitLine((l) => /^\* 2 FETCH .*\$Idle1/.test(l), from);
    before_(idler.lines.slice(from, f + 1), /^\* FLAGS \(.*\$Idle1/, /^\* 2 FETCH .*\$Idle1/);
    idler.send('DONE\r\n');
    await idler.waitLine((l) => l.startsWith('t-idle OK'), from);

    // A message APPENDed by a third session with a new keyword: announced with EXISTS, before B fetches it.
    const c = await session();
    await c.cmd(appendCmd('KW1', '$Appended', 4));
    const seen = await b.cmd('NOOP');
    before_(seen, /^\* FLAGS \(.*\$Appended/, /^\* 4 EXISTS/);
    assert.match((await b.cmd('FETCH 4 (FLAGS)')).join('\n'), /\* 4 FETCH \(FLAGS \(.*\$Appended/);
    // The same with .SILENT: A's own stream still gets FLAGS before a later FETCH shows it.
    await a.cmd('STORE 3 +FLAGS.SILENT ($Quiet)');
    assert.match((await a.cmd('FETCH 3 (FLAGS)')).join('\n'), /\* 3 FETCH \(FLAGS \(.*\$Quiet/);
    await a.cmd('NOOP');

    // A fresh SELECT lists every keyword present in the folder.
    const d = await session();
    const sel = await d.cmd('SELECT KW1');
    for (const k of ['$Label1', '$Idle1', '$Appended', '$Quiet']) assert.match(sel.join('\n'), new RegExp(`^\\* FLAGS \\(.*\\${k}`, 'm'), k);

    for (const [who, s] of Object.entries({ a, idler, d })) checkStream(s.lines, who);
    const bKnows = checkStream(b.lines, 'b');
    for (const k of ['$label1', '$idle1', '$appended']) assert.ok(bKnows.has(k), `b was never told about ${k}`);
  });

  test('5 concurrent sessions × 20 STOREs of new keywords: no FETCH shows an unannounced keyword', async () => {
    const setup = await session();
    await setup.cmd('CREATE KW2');
    for (let i = 1; i <= 6; i++) await setup.cmd(appendCmd('KW2', '', 100 + i));
    const sessions = await Promise.all([0, 1, 2, 3, 4].map(() => session('KW2')));
    const idler = await session('KW2');
    const idleFrom = idler.lines.length;
    idler.send('t-idle IDLE\r\n');
    await idler.waitLine((l) => l.startsWith('+ '), idleFrom);
    await Promise.all(
      sessions.map(async (s, si) => {
        for (let j = 0; j < 20; j++) {
          const msg = ((si + j) % 6) + 1;
          // Mixed forms: plain STORE, UID STORE, .SILENT, removal, and NOOP / FETCH between them.
          if (j % 5 === 4) await s.cmd(`STORE ${msg} -FLAGS ($S${si}K${j - 1})`);
          else if (j % 3 === 0) await s.cmd(`UID STORE 1:* +FLAGS ($S${si}K${j})`);
          else if (j % 7 === 1) await s.cmd(`STORE ${msg} +FLAGS.SILENT ($S${si}K${j})`);
          else await s.cmd(`STORE ${msg} +FLAGS ($S${si}K${j})`);
          await s.cmd(j % 2 ? 'NOOP' : 'FETCH 1:* (FLAGS)');
        }
      }),
    );
    for (const s of sessions) await s.cmd('FETCH 1:* (FLAGS)');
    // Every keyword stored is now known by every session (they saw all changes since).
    const expected = new Set<string>();
    for (let si = 0; si < 5; si++) for (let j = 0; j < 20; j++) if (j % 5 !== 4) expected.add(`$s${si}k${j}`);
    sessions.forEach((s, i) => {
      const known = checkStream(s.lines, `session ${i}`);
      for (const k of expected) assert.ok(known.has(k), `session ${i} was never told about ${k}`);
    });
    idler.send('DONE\r\n');
    await idler.waitLine((l) => l.startsWith('t-idle OK'), idleFrom);
    await idler.cmd('NOOP');
    const idleKnown = checkStream(idler.lines, 'idler');
    for (const k of expected) assert.ok(idleKnown.has(k), `the idling session was never told about ${k}`);
    assert.ok(idler.lines.filter((l) => /^\* \d+ FETCH /.test(l)).length > 20, 'the idling session saw the changes');
  });
});
