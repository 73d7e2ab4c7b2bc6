// Golden rules 1, 2 and 4 (docs/policy.md) on a running demo trust space: real sockets (SMTP
// submission, IMAP, a local FHIR endpoint) and the `caducee rules` command as a process.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { simpleParser, type ParsedMail } from 'mailparser';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import type { Operator } from '../src/main.js';
import { businessHoursBetween } from '../src/policy/calendar.js';
import { folderMessages, rawImap, submitAs, tempDir, testLogger, waitFor } from './helpers.js';

const BIN = path.resolve('bin/caducee.js');
const FAST_QUEUE = { queue: { retrySeconds: [0.3], pollSeconds: 0.1, giveUpSeconds: 600, connectTimeoutSeconds: 3 } };

function caducee(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The first instant after `from` (by steps of one hour) at least `hours` business hours later. */
function businessLater(from: Date, hours: number): Date {
  let t = from.getTime();
  while (businessHoursBetween(from, t) < hours) t += 3_600_000;
  return new Date(t);
}

describe('golden rules on a demo trust space', () => {
  let cleanup = () => {};
  let layout: DemoLayout;
  let demo: RunningDemo;
  let A: Operator;
  let claire: DemoLayout['operators'][number]['users'][number];
  let secretariat: DemoLayout['operators'][number]['users'][number];
  let configA: string;

  before(async () => {
    let dir: string;
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral', configOverrides: FAST_QUEUE });
    demo = await startDemo(layout, { logger: testLogger(), configOverrides: FAST_QUEUE });
    [A] = demo.operators;
    [claire, secretariat] = layout.operators[0].users;
    configA = layout.operators[0].config;
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  const parsed = async (op: Operator, address: string): Promise<ParsedMail[]> => Promise.all((await folderMessages(op, address)).map((m) => simpleParser(m)));

  describe('rule 1: the reading guard', () => {
    const notices = async (address: string, mailbox: string) => (await parsed(A, address)).filter((m) => m.subject === `Messages non lus dans ${mailbox}`);

    test('the owner, then the secretariat, get one notice each; reading stops them', async () => {
      const doctor = claire.addresses[0];
      const org = secretariat.addresses[0];
      const paul = layout.operators[1].users[0];
      const sent = new Date();
      await submitAs(demo.operators[1].ports.submission, layout.caBundle, paul, { from: paul.addresses[0], to: doctor, subject: 'Résultats de M. DUPONT', text: 'Contenu confidentiel.' });
      await waitFor(async () => (await folderMessages(A, doctor)).length >= 1 || undefined, 'the message at A');

      // Below the threshold: nothing.
      assert.equal((await A.rules.run(businessLater(sent, 20))).readingNotices.length, 0);
      // One business day later (level 1): the owner only, once that day whatever the number of runs.
      const day1 = businessLater(sent, 25);
      const r1 = caducee(['rules', 'run', '--now', day1.toISOString(), '--json', '--config', configA]);
      assert.equal(r1.code, 0, r1.stderr);
      assert.deepEqual(JSON.parse(r1.stdout).readingNotices, [{ mailbox: doctor, level: 1, to: [doctor] }]);
      assert.equal((await A.rules.run(new Date(day1.getTime() + 3_600_000))).readingNotices.length, 0, 'at most one notice per mailbox per day');
      const [n1] = await notices(doctor, doctor);
      assert.ok(n1, 'the notice is in the owner’s INBOX');
      assert.equal(n1.headers.get('auto-submitted'), 'auto-generated');
      assert.equal(n1.from?.value[0].address, `ne-pas-repondre@${layout.operators[0].domain}`);
      assert.match(n1.text ?? '', new RegExp(`de .*${paul.addresses[0].replace(/\./g, '\\.')}.*, reçu le `));
      assert.doesNotMatch(n1.text ?? '', /DUPONT|confidentiel/, 'never the subject or the content');
      assert.equal((await notices(org, doctor)).length, 0, 'not yet the secretariat');

      // Two business days later (level 2): the secretariat (read delegate) too.
      const day2 = businessLater(sent, 49);
      const r2 = await A.rules.run(day2);
      assert.deepEqual(r2.readingNotices, [{ mailbox: doctor, level: 2, to: [doctor, org] }]);
      assert.equal((await notices(org, doctor)).length, 1, 'the secretariat got one notice');
      assert.equal((await A.rules.run(day2)).readingNotices.length, 0);

      // The secretariat reads the message over IMAP (\Seen by an entitled delegate).
      const c = await rawImap(A.ports.imaps, readFileSync(layout.caBundle, 'utf8'));
      assert.match((await c.cmd(`LOGIN ${secretariat.login} "${secretariat.appPassword}"`)).at(-1)!, /OK/);
      // The physician's mailbox as the secretariat sees it (imap/namespace.ts: other users' mailboxes).
      assert.match((await c.cmd(`SELECT "Autres utilisateurs/${doctor}/INBOX"`)).at(-1)!, /OK/);
      assert.match((await c.cmd('STORE 1 +FLAGS (\\Seen)')).at(-1)!, /OK/);
      c.close();
      const mb = await A.core.requireMailbox(doctor);
      assert.ok((await A.store.getActivity(mb.id))?.lastReadAt, 'the read is recorded as activity');
      // The notices themselves are not mail waiting to be read: no further notice.
      assert.equal((await A.rules.run(businessLater(sent, 73))).readingNotices.length, 0);
      assert.equal((await notices(doctor, doctor)).length, 2);
      assert.equal((await notices(org, doctor)).length, 1);
    });
  });
});
