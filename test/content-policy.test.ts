// Medical-only content (issue 10) over real sockets in a local trust space: recipient limits
// per message and per day at submission (an APP mailbox's declared volume instead), bulk mail
// from a person refused naming the rule, inbound bulk-looking mail filed in "Non médical" with
// the $NonMedical keyword while other mail still reaches INBOX (docs/policy.md).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import type { Operator } from '../src/main.js';
import { parisDay } from '../src/policy/content.js';
import { folderMessages, rawImap, smtpSession, submitAs, tempDir, testLogger, totalMessages } from './helpers.js';

describe('medical-only content between two operators', () => {
  let cleanup = () => {};
  let layout: DemoLayout;
  let demo: RunningDemo;
  let A: Operator;
  let ca: string;
  let claire: DemoLayout['operators'][number]['users'][number];
  let per: string, cab: string, org: string, app: string, paul: string;

  before(async () => {
    let dir: string;
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral' });
    const opA = layout.operators[0];
    app = opA.certificates.organisation.appMailbox;
    // Small limits so that the test reaches them with the demo's few local mailboxes.
    const content = { maxRecipientsPerMessage: 3, maxRecipientsPerDay: 5, appDailyVolume: { [app]: 6 } };
    demo = await startDemo(layout, { logger: testLogger(), configOverrides: { policy: { content } } });
    A = demo.operators[0];
    ca = readFileSync(layout.caBundle, 'utf8');
    claire = opA.users[0];
    [per, cab] = claire.addresses;
    org = opA.users[1].addresses[0];
    paul = layout.operators[1].users[0].addresses[0];
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  /** A submission session authenticated as claire (AUTH PLAIN with her app password). */
  async function asClaire() {
    const s = await smtpSession({ port: A.ports.submission, ca });
    assert.match(await s.send(`AUTH PLAIN ${Buffer.from(`\0${claire.login}\0${claire.appPassword}`).toString('base64')}`), /^235 /);
    return s;
  }
  const message = (from: string, extra: string[] = []) =>
    [`From: ${from}`, `To: ${org}`, 'Subject: Compte rendu', ...extra, '', 'Bonjour, voici le compte rendu.', '.'].join('\r\n');
  const sentToday = async (login: string) => A.store.recipientsSentOn((await A.core.requireUser(login)).id, parisDay(new Date()));

  test('the recipient beyond the per-message limit gets 452 4.5.3 naming the rule (RFC 5321 §4.5.3.1.10)', async () => {
    const s = await asClaire();
    try {
      assert.match(await s.send(`MAIL FROM:<${per}>`), /^250/);
      for (const r of [per, cab, org]) assert.match(await s.send(`RCPT TO:<${r}>`), /^250/, r);
      const fourth = await s.send(`RCPT TO:<${app}>`);
      assert.match(fourth, /^452 4\.5\.3 trop de destinataires : au plus 3 par message/);
      assert.match(fourth, /\[rule recipients-per-message\]$/);
      assert.match(await s.send('RSET'), /^250/);
    } finally {
      s.close();
    }
    assert.equal(await sentToday(claire.login), 0, 'nothing was sent, nothing counted');
  });

  test('a List-Unsubscribe message from a person: 550 5.7.1 at the end of DATA naming the rule; nothing stored', async () => {
    const before = totalMessages(A);
    const s = await asClaire();
    try {
      assert.match(await s.send(`MAIL FROM:<${per}>`), /^250/);
      assert.match(await s.send(`RCPT TO:<${org}>`), /^250/);
      assert.match(await s.send('DATA'), /^354/);
      const reply = await s.send(message(per, ['List-Unsubscribe: <mailto:desabonnement@pub.example>']));
      assert.match(reply, /^550 5\.7\.1 message refuse \(List-Unsubscribe\) : regle : pas de diffusion de masse ni de publicite sur MSSante/);
      assert.match(reply, /\[rule no-bulk-mail\]$/);
    } finally {
      s.close();
    }
    assert.equal(totalMessages(A), before, 'nothing stored');
    assert.equal(await sentToday(claire.login), 0);
  });

  test('the daily limit: refused at RCPT once reached, and at commit when another session used the rest', async () => {
    // 3 recipients committed (the limit is 5 a day).
    const sent = await submitAs(A.ports.submission, layout.caBundle, claire, { from: per, to: [per, cab, org], subject: 'Compte rendu', text: 'Bonjour.' });
    assert.deepEqual(sent.rejected, []);
    assert.equal(await sentToday(claire.login), 3);
    // Two sessions each get two recipients past the RCPT check (3 + 2 ≤ 5 for each alone).
    const [s1, s2] = [await asClaire(), await asClaire()];
    try {
      for (const s of [s1, s2]) {
        assert.match(await s.send(`MAIL FROM:<${per}>`), /^250/);
        assert.match(await s.send(`RCPT TO:<${cab}>`), /^250/);
        assert.match(await s.send(`RCPT TO:<${org}>`), /^250/);
      }
      const third = await s1.send(`RCPT TO:<${per}>`);
      assert.match(third, /^450 4\.7\.1 la limite quotidienne de 5 destinataires est atteinte ; reessayez demain/);
      assert.match(third, /\[rule recipients-per-day\]$/);
      const before = totalMessages(A);
      assert.match(await s1.send('DATA'), /^354/);
      assert.match(await s1.send(message(per)), /^250/);
      assert.equal(await sentToday(claire.login), 5);
      // The second commit would make 7: counted in the delivery's transaction, refused, nothing stored.
      assert.match(await s2.send('DATA'), /^354/);
      const late = await s2.send(message(per));
      assert.match(late, /^450 4\.7\.1 la limite quotidienne de 5 destinataires est atteinte.*\[rule recipients-per-day\]$/);
      assert.equal(totalMessages(A), before + 2, 'only the first session stored its two copies');
      assert.equal(await sentToday(claire.login), 5);
    } finally {
      s1.close();
      s2.close();
    }
  });

  test('an APP mailbox with a declared volume: no per-message limit, its own daily volume, and may mark its mail bulk', async () => {
    const orgCert = layout.operators[0].certificates.organisation;
    const s = await smtpSession({ port: A.ports.submission, ca, cert: readFileSync(orgCert.cert, 'utf8'), key: readFileSync(orgCert.key, 'utf8') });
    try {
      assert.match(await s.send('AUTH EXTERNAL ='), /^235 /);
      assert.match(await s.send(`MAIL FROM:<${app}>`), /^250/);
      for (const r of [per, cab, org, app]) assert.match(await s.send(`RCPT TO:<${r}>`), /^250/, `4 recipients in one message (declared volume): ${r}`);
      assert.match(await s.send('DATA'), /^354/);
      assert.match(await s.send(message(app, ['Precedence: bulk'])), /^250/, 'software may mark its automatic mail');
      assert.match(await s.send(`MAIL FROM:<${app}>`), /^250/);
      assert.match(await s.send(`RCPT TO:<${per}>`), /^250/);
      assert.match(await s.send(`RCPT TO:<${cab}>`), /^250/);
      assert.match(await s.send(`RCPT TO:<${org}>`), /^450 4\.7\.1 le volume quotidien declare pour cette BAL applicative de 6 destinataires est atteinte.*\[rule recipients-per-day\]$/);
    } finally {
      s.close();
    }
  });

  test('inbound bulk from the other operator lands in "Non médical" with $NonMedical; a normal message in INBOX', async () => {
    const B = layout.operators[1];
    const inboxBefore = (await folderMessages(A, per)).length;
    const s = await smtpSession({ port: A.ports.mx, ca, cert: readFileSync(B.chain, 'utf8'), key: readFileSync(B.key, 'utf8') });
    const deliver = async (extra: string[], subject: string) => {
      assert.match(await s.send(`MAIL FROM:<${paul}>`), /^250/);
      assert.match(await s.send(`RCPT TO:<${per}>`), /^250/);
      assert.match(await s.send('DATA'), /^354/);
      const body = [`From: ${paul}`, `To: ${per}`, `Subject: ${subject}`, ...extra, '', 'Texte.', '.'].join('\r\n');
      assert.match(await s.send(body), /^250/, 'delivered, never refused');
    };
    try {
      await deliver(['List-Unsubscribe: <mailto:desabonnement@b.example>', 'List-Id: <lettre.b.example>'], 'Lettre d information');
      await deliver([], 'Avis sur le patient');
    } finally {
      s.close();
    }
    assert.equal((await folderMessages(A, per)).length, inboxBefore + 1, 'the normal message in INBOX only');
    const c = await rawImap(A.ports.imaps, ca);
    try {
      assert.match((await c.cmd(`LOGIN ${claire.login} "${claire.appPassword}"`)).at(-1)!, /^t\d+ OK/);
      // RFC 3501 §5.1.3: modified UTF-7 for an IMAP4rev1 session ("é" is &AOk-).
      const list = (await c.cmd('LIST "" "*"')).join('\n');
      assert.match(list, /"Non m&AOk-dical"/);
      const sel = (await c.cmd('SELECT "Non m&AOk-dical"')).join('\n');
      assert.match(sel, /\* 1 EXISTS/);
      assert.match(sel, /PERMANENTFLAGS \([^)]*\$NonMedical[^)]*\\\*\)/);
      const fetched = (await c.cmd('FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])')).join('\n');
      assert.match(fetched, /FLAGS \(\$NonMedical( \\Recent)?\)/);
      assert.match(fetched, /Subject: Lettre d information/);
      const inbox = (await c.cmd('SELECT INBOX')).join('\n');
      const n = Number(/\* (\d+) EXISTS/.exec(inbox)![1]);
      const last = (await c.cmd(`FETCH ${n} (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])`)).join('\n');
      assert.match(last, /Subject: Avis sur le patient/);
      assert.doesNotMatch(last, /NonMedical/);
    } finally {
      c.close();
    }
  });
});
