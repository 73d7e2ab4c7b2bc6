// Functional traces per mailbox (issue 10, docs/traces.md) across a local trust space: a
// message delivered by a peer, a delegate reading, moving, deleting and sending on behalf, the
// owner changing a grant and setting an absence; `caducee audit mailbox` (a real process)
// exports who did what, a delegate's actions named as such, and nothing of the content.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { purgeTraces, retentionCutoff } from '../src/audit/traces.js';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import type { Operator } from '../src/main.js';
import { AbsenceSettingsService } from '../src/policy/absence-service.js';
import { folderMessages, rawImap, submitAs, tempDir, testLogger, waitFor } from './helpers.js';

const BIN = path.resolve('bin/caducee.js');
const FAST_QUEUE = { queue: { retrySeconds: [0.3], pollSeconds: 0.1, giveUpSeconds: 600, connectTimeoutSeconds: 3 } };

function caducee(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('functional traces per mailbox', () => {
  let cleanup = () => {};
  let layout: DemoLayout;
  let demo: RunningDemo;
  let A: Operator;
  before(async () => {
    let dir: string;
    ({ dir, cleanup } = tempDir());
    layout = await prepareDemo(dir, { ports: 'ephemeral', configOverrides: FAST_QUEUE });
    demo = await startDemo(layout, { logger: testLogger(), configOverrides: FAST_QUEUE });
    A = demo.operators[0];
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  test('who did what, when, from where — a delegate named as such, no content exported', async () => {
    const ca = readFileSync(layout.caBundle, 'utf8');
    const [claire, sec] = layout.operators[0].users;
    const paul = layout.operators[1].users[0];
    const physician = claire.addresses[0];
    // Three messages from operator B's practitioner, over the trust space.
    const subjects = ['Compte rendu DUPONT', 'Compte rendu DURAND', 'Compte rendu MARTIN'];
    for (const subject of subjects)
      await submitAs(demo.operators[1].ports.submission, layout.caBundle, paul, { from: paul.addresses[0], to: physician, subject, text: 'Bilan sanguin confidentiel.' });
    await waitFor(async () => (await folderMessages(A, physician)).length >= 3 || undefined, 'three messages at the physician');

    const imap = async (u: typeof claire) => {
      const c = await rawImap(A.ports.imaps, ca);
      assert.match((await c.cmd(`LOGIN ${u.login} "${u.appPassword}"`)).at(-1)!, /^t\d+ OK /);
      return c;
    };
    const ok = (r: string[]) => assert.match(r.at(-1)!, /^t\d+ OK/, r.join('\n'));
    // The owner lets the secretary manage (move, delete) too: a grant change by the owner.
    const doc = await imap(claire);
    ok(await doc.cmd(`SETACL INBOX ${sec.login} +a`));
    doc.close();
    const s = await imap(sec);
    const other = `"Autres utilisateurs/${physician}/INBOX"`;
    const sel = await s.cmd(`SELECT ${other}`);
    ok(sel);
    const uids = (await s.cmd('UID SEARCH ALL')).join('\n').match(/\* SEARCH ([\d ]+)/)![1].trim().split(' ').map(Number);
    assert.equal(uids.length, 3);
    ok(await s.cmd(`UID STORE ${uids[0]} +FLAGS (\\Seen)`));
    ok(await s.cmd(`UID MOVE ${uids[1]} "Autres utilisateurs/${physician}/Trash"`));
    ok(await s.cmd(`UID STORE ${uids[2]} +FLAGS.SILENT (\\Deleted)`));
    ok(await s.cmd('EXPUNGE'));
    s.close();
    // The secretary sends on behalf of the physician (send grant: Sender: is set).
    await submitAs(A.ports.submission, layout.caBundle, sec, { from: physician, to: paul.addresses[0], subject: 'Rendez-vous LEBLANC', text: 'Rappel du rendez-vous.' });
    // The owner sets an absence (on the web, as the service the route calls).
    const owner = await A.core.requireUser(claire.login);
    await new AbsenceSettingsService({ core: A.core }).set({ user: owner, remote: '192.0.2.7' }, physician, {
      endsAt: new Date(Date.now() + 5 * 86_400_000).toISOString(),
      subject: 'Congés SECRETS',
      body: 'Texte PRIVE de l’absence',
    });

    const r = caducee(['audit', 'mailbox', '--mailbox', physician, '--json', '--config', layout.operators[0].config]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    for (const l of lines) assert.deepEqual(Object.keys(l), ['at', 'mailbox', 'action', 'actor', 'delegate', 'protocol', 'remote', 'detail']);
    const find = (action: string, actor?: string) => {
      const l = lines.find((x) => x.action === action && (!actor || x.actor === actor));
      assert.ok(l, `a ${action} trace${actor ? ` by ${actor}` : ''} in\n${r.stdout}`);
      return l;
    };
    const delivered = lines.filter((l) => l.action === 'delivered');
    assert.equal(delivered.length, 3);
    for (const d of delivered) {
      assert.equal(d.protocol, 'mx');
      assert.equal(d.delegate, false);
      assert.equal(d.actor, 'system');
      assert.equal(d.detail.folder, 'INBOX');
      assert.equal(d.detail.fromDomain, layout.operators[1].domain);
    }
    const grant = find('grant-changed', claire.login);
    assert.equal(grant.delegate, false);
    assert.equal(grant.protocol, 'imap');
    assert.deepEqual(grant.detail, { user: sec.login, before: ['read', 'send'], rights: ['manage', 'read', 'send'] });
    const read = find('read', sec.login);
    assert.equal(read.delegate, true);
    assert.equal(read.protocol, 'imap');
    assert.ok(read.remote, 'the client address is kept');
    assert.deepEqual(read.detail, { folder: 'INBOX', messages: 1, uids: String(uids[0]) });
    const moved = find('moved', sec.login);
    assert.deepEqual([moved.delegate, moved.detail.uids, moved.detail.to], [true, String(uids[1]), 'Trash']);
    assert.equal(find('marked-deleted', sec.login).detail.uids, String(uids[2]));
    const deleted = find('deleted', sec.login);
    assert.deepEqual([deleted.delegate, deleted.detail.messages, deleted.detail.uids], [true, 1, String(uids[2])]);
    const sent = find('sent', sec.login);
    assert.deepEqual([sent.delegate, sent.protocol, sent.detail.recipients], [true, 'submission', 1]);
    const absence = find('absence-set', claire.login);
    assert.deepEqual([absence.delegate, absence.protocol, absence.remote, absence.detail.substitute], [false, 'web', '192.0.2.7', false]);
    // Oldest first.
    assert.deepEqual(lines.map((l) => l.at), [...lines.map((l) => l.at)].sort());
    // Never content: no subject, no text, no correspondent's address.
    for (const secret of [...subjects, 'Rendez-vous', 'LEBLANC', 'Bilan', 'SECRETS', 'PRIVE', paul.addresses[0], paul.login])
      assert.ok(!r.stdout.includes(secret), `the export must not contain ${JSON.stringify(secret)}`);

    // CSV (the default): a header and one record per trace; --since in the future: none.
    const csv = caducee(['audit', 'mailbox', '--mailbox', physician, '--config', layout.operators[0].config]);
    assert.equal(csv.code, 0, csv.stderr);
    const records = csv.stdout.split('\r\n').filter(Boolean);
    assert.equal(records[0], 'at,mailbox,action,actor,delegate,protocol,remote,detail');
    assert.equal(records.length, lines.length + 1);
    const later = caducee(['audit', 'mailbox', '--mailbox', physician, '--json', '--since', '2999-01-01', '--config', layout.operators[0].config]);
    assert.deepEqual([later.code, later.stdout], [0, '']);
    const badDate = caducee(['audit', 'mailbox', '--mailbox', physician, '--since', 'yesterday', '--config', layout.operators[0].config]);
    assert.equal(badDate.code, 2);
    assert.match(badDate.stderr, /--since "yesterday": give a date/);
  });

  test('traces older than the retention period are purged', async () => {
    const mb = (await A.store.findMailboxByAddress(layout.operators[0].users[0].addresses[0]))!;
    const now = new Date('2031-03-31T10:00:00Z');
    assert.equal(retentionCutoff(now, 12).toISOString(), '2030-03-31T10:00:00.000Z');
    assert.equal(retentionCutoff(now, 1).toISOString(), '2031-02-28T10:00:00.000Z');
    const origin = { protocol: 'cli' as const, actor: 'root' };
    await A.core.trace(mb, 'state-changed', origin, { mark: 'old' }, new Date('2030-03-31T09:59:59Z'));
    await A.core.trace(mb, 'state-changed', origin, { mark: 'kept' }, new Date('2030-03-31T10:00:00Z'));
    const before = (await A.store.listTraces(mb.id)).length;
    assert.ok(before > 2, 'the first test left traces (recorded today, long before the cutoff)');
    // Twelve months before `now`: the mark one second before the cutoff and today's traces go.
    const removed = await purgeTraces(A.store, 12, now);
    const left = await A.store.listTraces(mb.id);
    assert.ok(removed >= before - 1, `${removed} removed (other mailboxes included)`);
    assert.ok(left.some((t) => t.detail.mark === 'kept'));
    assert.ok(!left.some((t) => t.detail.mark === 'old'));
    assert.equal(left.length, 1, `everything before the cutoff went (${before} before)`);
    assert.equal(left[0].delegate, true, 'an administrator at the command line acts as a delegate');
  });
});
