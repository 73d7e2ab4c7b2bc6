// RFC 5267 update contexts over real sockets against the demo: ADDTO / REMOVEFROM caused by other
// sessions (at NOOP and while idling), their order around EXISTS and EXPUNGE, SORT context
// positions, NOUPDATE, tag reuse, CANCELUPDATE and the end of updates when another mailbox is
// selected. (The imaptest scripts search-context-update*, search-partial, sort-partial and esort
// cover the single-session cases.)
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_UPDATE_CONTEXTS } from '../src/imap/search-updates.js';
import { imapDemo } from './support/imap-demo.js';

const message = (subject: string) => `From: a@a.mssante.test\r\nTo: b@a.mssante.test\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@a.mssante.test>\r\n\r\nbody\r\n`;
const appendCmd = (folder: string, flags: string, subject: string) => {
  const m = message(subject);
  return `APPEND ${folder} (${flags}) {${Buffer.byteLength(m)}+}\r\n${m}`;
};
const uidOf = (lines: string[]) => Number(/APPENDUID \d+ (\d+)/.exec(lines.at(-1)!)![1]);

describe('RFC 5267 update contexts (CONTEXT=SEARCH, CONTEXT=SORT)', () => {
  const d = imapDemo();
  const session = async (folder?: string) => {
    const c = await d.connect(0);
    if (folder) await c.cmd(`SELECT ${folder}`);
    return c;
  };
  const index = (lines: string[], re: RegExp) => {
    const i = lines.findIndex((l) => re.test(l));
    assert.ok(i >= 0, `no line matching ${re}:\n${lines.join('\n')}`);
    return i;
  };

  test('a UID SORT context follows other sessions: ADDTO after EXISTS at its sort position, REMOVEFROM before EXPUNGE', async () => {
    const other = await session();
    await other.cmd('CREATE CTX1');
    const uid: Record<string, number> = {};
    for (const s of ['bravo', 'delta', 'foxtrot']) uid[s] = uidOf(await other.cmd(appendCmd('CTX1', '', s)));
    await other.cmd('SELECT CTX1');
    const a = await session('CTX1');
    const tag = a.nextTag;
    const first = await a.cmd('UID SORT RETURN (UPDATE ALL COUNT) (SUBJECT) UTF-8 UNSEEN');
    assert.ok(first.includes(`* ESEARCH (TAG "${tag}") UID ALL ${uid.bravo}:${uid.foxtrot} COUNT 3`), first.join('\n'));
    assert.match(first.at(-1)!, /OK UID SORT completed, will notify/);

    // A new message sorting between bravo and delta: position 2, after the EXISTS announcing it.
    uid.charlie = uidOf(await other.cmd(appendCmd('CTX1', '', 'charlie')));
    let got = await a.cmd('NOOP');
    assert.ok(index(got, /^\* 4 EXISTS$/) < index(got, new RegExp(`^\\* ESEARCH \\(TAG "${tag}"\\) UID ADDTO \\(2 ${uid.charlie}\\)$`)), got.join('\n'));

    // \Seen set elsewhere on delta (position 3): it leaves the result.
    await other.cmd(`UID STORE ${uid.delta} +FLAGS (\\Seen)`);
    got = await a.cmd('NOOP');
    assert.ok(got.includes(`* ESEARCH (TAG "${tag}") UID REMOVEFROM (3 ${uid.delta})`), got.join('\n'));

    // bravo expunged elsewhere: REMOVEFROM (position 1) comes before the EXPUNGE.
    await other.cmd(`UID STORE ${uid.bravo} +FLAGS (\\Deleted)`);
    await other.cmd('EXPUNGE');
    got = await a.cmd('NOOP');
    assert.ok(index(got, new RegExp(`^\\* ESEARCH \\(TAG "${tag}"\\) UID REMOVEFROM \\(1 ${uid.bravo}\\)$`)) < index(got, /^\* 1 EXPUNGE$/), got.join('\n'));
    // A flag change that does not alter the result sends nothing.
    await other.cmd(`UID STORE ${uid.foxtrot} +FLAGS (\\Flagged)`);
    got = await a.cmd('NOOP');
    assert.ok(!got.some((l) => l.startsWith('* ESEARCH')), got.join('\n'));

    // The result the client now holds is what a new SORT gives.
    const again = await a.cmd('UID SORT RETURN (ALL) (SUBJECT) UTF-8 UNSEEN');
    assert.ok(again.some((l) => l.endsWith(`UID ALL ${uid.charlie},${uid.foxtrot}`)), again.join('\n'));
  });

  test('a SEARCH context notifies an idling session; CANCELUPDATE stops it; another SELECT ends it', async () => {
    const other = await session();
    await other.cmd('CREATE CTX2');
    for (const s of ['one', 'two', 'three']) await other.cmd(appendCmd('CTX2', '', s));
    await other.cmd('SELECT CTX2');
    const a = await session('CTX2');
    const tag = a.nextTag;
    assert.ok((await a.cmd('SEARCH RETURN (UPDATE) FLAGGED')).includes(`* ESEARCH (TAG "${tag}")`));
    const tag2 = a.nextTag;
    await a.cmd('SEARCH RETURN (UPDATE COUNT) UNFLAGGED');

    const from = a.lines.length;
    a.send('idle1 IDLE\r\n');
    await a.waitLine((l) => l.startsWith('+ '), from);
    await other.cmd('STORE 2,3 +FLAGS (\\Flagged)');
    await a.waitLine((l) => l === `* ESEARCH (TAG "${tag}") ADDTO (0 2:3)`, from);
    await a.waitLine((l) => l === `* ESEARCH (TAG "${tag2}") REMOVEFROM (0 2:3)`, from);
    a.send('DONE\r\n');
    await a.waitLine((l) => l.startsWith('idle1 OK'), from);

    // Unknown tag: NO, and nothing is cancelled; then the real cancel.
    assert.match((await a.exchange(`CANCELUPDATE "${tag}" "nosuch"`)).at(-1)!, /^t\d+ NO .*"nosuch"/);
    await a.cmd(`CANCELUPDATE "${tag}"`);
    await other.cmd('STORE 1 +FLAGS (\\Flagged)');
    let got = await a.cmd('NOOP');
    assert.ok(!got.some((l) => l.includes(`"${tag}"`)), got.join('\n'));
    assert.ok(got.includes(`* ESEARCH (TAG "${tag2}") REMOVEFROM (0 1)`), got.join('\n'));

    // Selecting the folder again ends every context (RFC 5267 §4.3).
    await a.cmd('SELECT CTX2');
    await other.cmd('STORE 1:3 -FLAGS (\\Flagged)');
    got = await a.cmd('NOOP');
    assert.ok(!got.some((l) => l.startsWith('* ESEARCH')), got.join('\n'));
  });

  test('a change to many messages re-evaluates header keys through the index: the same answer as a new SEARCH', async () => {
    const other = await session();
    await other.cmd('CREATE CTX4');
    for (let i = 0; i < 210; i++) {
      const m = `From: ${i % 3 ? 'bob' : 'alice'}@a.mssante.test\r\nSubject: n${i}\r\n\r\nbody\r\n`;
      other.send(`p${i} APPEND CTX4 {${m.length}+}\r\n${m}\r\n`);
    }
    await other.waitLine((l) => l.startsWith('p209 OK'));
    await other.cmd('SELECT CTX4');
    const a = await session('CTX4');
    const tag = a.nextTag;
    await a.cmd('UID SEARCH RETURN (UPDATE) FROM alice SEEN');
    await other.cmd('STORE 1:* +FLAGS.SILENT (\\Seen)');
    const got = await a.cmd('NOOP');
    const expected = (await a.cmd('UID SEARCH RETURN (ALL) FROM alice SEEN')).find((l) => l.startsWith('* ESEARCH'))!.replace(/.* ALL /, '');
    assert.ok(got.includes(`* ESEARCH (TAG "${tag}") UID ADDTO (0 ${expected})`), `${expected}\n${got.filter((l) => l.includes('ESEARCH')).join('\n')}`);
    assert.equal(expected.split(',').length, 70); // every third message, none adjacent
  });

  test('tag reuse is BAD, contexts beyond the limit get NOUPDATE, sequence numbers are fixed when the context is made', async () => {
    const other = await session();
    await other.cmd('CREATE CTX3');
    for (const s of ['m1', 'm2', 'm3']) await other.cmd(appendCmd('CTX3', '', s));
    await other.cmd('SELECT CTX3');
    const a = await session('CTX3');
    // "2:3" means the messages that are 2 and 3 now, whatever their numbers later.
    const seqTag = a.nextTag;
    assert.ok((await a.cmd('SEARCH RETURN (UPDATE ALL) 2:3 SEEN')).includes(`* ESEARCH (TAG "${seqTag}")`));
    await other.cmd('STORE 1 +FLAGS (\\Deleted)');
    await other.cmd('EXPUNGE');
    await a.cmd('NOOP');
    await other.cmd('STORE 1 +FLAGS (\\Seen)'); // was message 2
    await other.cmd(appendCmd('CTX3', '\\Seen', 'm4')); // a new message 3: not in "2:3" as evaluated
    const got = await a.cmd('NOOP');
    assert.ok(got.includes(`* ESEARCH (TAG "${seqTag}") ADDTO (0 1)`), got.join('\n'));

    for (let i = 1; i < MAX_UPDATE_CONTEXTS; i++) await a.cmd('SEARCH RETURN (UPDATE) ALL');
    const refusedTag = a.nextTag;
    const refused = await a.cmd('SEARCH RETURN (UPDATE COUNT) ALL');
    assert.ok(refused.includes(`* NO [NOUPDATE "${refusedTag}"] too many update contexts (at most ${MAX_UPDATE_CONTEXTS}); CANCELUPDATE one first`), refused.join('\n'));
    assert.ok(refused.includes(`* ESEARCH (TAG "${refusedTag}") COUNT 3`), 'the other return options are still honoured');
    // A tag already naming a context: BAD (RFC 5267 §4.3), whatever the command.
    a.send(`${seqTag} UID SORT RETURN (UPDATE) (ARRIVAL) UTF-8 ALL\r\n`);
    await a.waitLine((l) => l.startsWith(`${seqTag} BAD [CLIENTBUG]`));
  });
});
