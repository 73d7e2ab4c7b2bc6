// IMAP access and synchronisation details: ACL mapped onto grants (and access-checked), QUOTA,
// CONDSTORE/QRESYNC, cross-session updates, and a mailbox that is not delegated stays invisible.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import { fileBlobs, probe, rawImap, submitAs } from './helpers.js';
import { imapDemo } from './support/imap-demo.js';

describe('IMAP access, ACL and resynchronisation', () => {
  const space = imapDemo();
  const login = async (i: number) => {
    const u = space.layout.operators[0].users[i];
    const c = await rawImap(space.demo.operators[0].ports.imaps, space.ca);
    const r = await c.cmd(`LOGIN ${u.login} "${u.appPassword}"`);
    assert.match(r.at(-1)!, /^t\d+ OK /);
    return c;
  };

  test('ACL follows the grants and only a manager may change it', async () => {
    const claire = space.layout.operators[0].users[0];
    const sec = space.layout.operators[0].users[1];
    const doc = await login(0);
    const s = await login(1);
    try {
      const other = `"Autres utilisateurs/${claire.addresses[0]}/INBOX"`;
      assert.match((await s.cmd(`MYRIGHTS ${other}`)).join('\n'), /\* MYRIGHTS .* lrs\r?$/m);
      // The secretary holds read + send, not manage: she may not read or change the ACL.
      assert.match((await s.cmd(`GETACL ${other}`)).at(-1)!, /^t\d+ NO \[NOPERM\]/);
      assert.match((await s.cmd(`SETACL ${other} ${sec.login} lrswipkxtea`)).at(-1)!, /^t\d+ NO \[NOPERM\]/);
      // The owner sees and changes it; the change is a grant change (send-on-behalf is kept).
      assert.match((await doc.cmd('GETACL INBOX')).join('\n'), new RegExp(`\\* ACL INBOX ${claire.login} lrswipkxtea ${sec.login} lrs`));
      assert.match((await doc.cmd(`SETACL INBOX ${sec.login} +a`)).at(-1)!, /^t\d+ OK/);
      const mb = (await space.demo.operators[0].store.findMailboxByAddress(claire.addresses[0]))!;
      const secUser = (await space.demo.operators[0].store.findUserByLogin(sec.login))!;
      const g = await space.demo.operators[0].store.listGrants({ mailboxId: mb.id, userId: secUser.id });
      assert.deepEqual(g[0].rights, ['manage', 'read', 'send']);
      assert.match((await s.cmd(`MYRIGHTS ${other}`)).join('\n'), /lrswipkxtea/);
      assert.match((await doc.cmd(`DELETEACL INBOX ${sec.login}`)).at(-1)!, /^t\d+ OK/);
      assert.deepEqual((await space.demo.operators[0].store.listGrants({ mailboxId: mb.id, userId: secUser.id }))[0].rights, ['send']);
      // Without the read grant the secretary no longer sees the physician's mailbox.
      const s2 = await login(1);
      assert.doesNotMatch((await s2.cmd('LIST "" "*"')).join('\n'), /Autres utilisateurs/);
      assert.match((await s2.cmd(`SELECT ${other}`)).at(-1)!, /^t\d+ NO /);
      s2.close();
      await space.demo.operators[0].core.grant(claire.addresses[0], sec.login, ['read', 'send']);
    } finally {
      doc.close();
      s.close();
    }
  });

  test('LIST RETURN (MYRIGHTS) gives each mailbox the rights core grants (RFC 8440)', async () => {
    const claire = space.layout.operators[0].users[0];
    const s = await login(1);
    try {
      const lines = (await s.cmd('LIST "" "*" RETURN (MYRIGHTS)')).map((l) => l.trimEnd());
      const delegated = `"Autres utilisateurs/${claire.addresses[0]}/INBOX"`;
      // the secretary reads the physician's mailbox (grant "read") and owns her ORG mailbox
      const i = lines.indexOf(`* LIST (\\HasNoChildren) "/" ${delegated}`);
      assert.ok(i >= 0, lines.join('\n'));
      assert.equal(lines[i + 1], `* MYRIGHTS ${delegated} lrs`);
      assert.ok(lines.includes('* MYRIGHTS INBOX lrswipkxtea'), lines.join('\n'));
      // \Noselect levels (the namespace prefixes) get no MYRIGHTS
      assert.ok(!lines.some((l) => /^\* MYRIGHTS "?Autres utilisateurs"? /.test(l)), lines.join('\n'));
      assert.match((await s.cmd('CAPABILITY')).join('\n'), / LIST-MYRIGHTS /);
    } finally {
      s.close();
    }
  });

  test('QUOTA per mailbox, and over-quota APPEND is refused with OVERQUOTA', async () => {
    const c = await login(0);
    try {
      const r = await c.cmd('GETQUOTAROOT INBOX');
      assert.match(r.join('\n'), /\* QUOTAROOT INBOX claire\.martin@a\.mssante\.test/);
      assert.match(r.join('\n'), /\* QUOTA claire\.martin@a\.mssante\.test \(STORAGE \d+ 5242880\)/);
      assert.match((await c.cmd('SETQUOTA claire.martin@a.mssante.test (STORAGE 1)')).at(-1)!, /^t\d+ NO \[NOPERM\]/);
    } finally {
      c.close();
    }
  });

  test('CONDSTORE and QRESYNC: changes since a modseq, VANISHED, UNCHANGEDSINCE', async () => {
    const claire = space.layout.operators[0].users[0];
    for (const subject of ['un', 'deux', 'trois'])
      await submitAs(space.demo.operators[0].ports.submission, space.layout.caBundle, claire, { from: claire.addresses[0], to: claire.addresses[0], subject, text: subject });
    const a = await login(0);
    const b = await login(0);
    try {
      assert.match((await a.cmd('ENABLE QRESYNC')).join('\n'), /\* ENABLED QRESYNC/);
      const sel = (await a.cmd('SELECT INBOX')).join('\n');
      const uidValidity = /UIDVALIDITY (\d+)/.exec(sel)![1];
      const modseq = Number(/HIGHESTMODSEQ (\d+)/.exec(sel)![1]);
      assert.match(sel, /\* 3 EXISTS/);
      // Another session flags one message and expunges another.
      await b.cmd('SELECT INBOX');
      await b.cmd('UID STORE 1 +FLAGS (\\Flagged)');
      await b.cmd('UID STORE 2 +FLAGS (\\Deleted)');
      await b.cmd('EXPUNGE');
      // The first session sees FETCH with MODSEQ and VANISHED (not EXPUNGE) at its next command.
      const noop = (await a.cmd('NOOP')).join('\n');
      assert.match(noop, /\* VANISHED 2/);
      assert.match(noop, /\* \d+ FETCH \(UID 1 FLAGS \(\\Flagged( \\Recent)?\) MODSEQ \(\d+\)\)/);
      assert.doesNotMatch(noop, /EXPUNGE/);
      // A reconnecting client resynchronises from its old modseq.
      const c = await login(0);
      await c.cmd('ENABLE QRESYNC');
      const re = (await c.cmd(`SELECT INBOX (QRESYNC (${uidValidity} ${modseq} 1:3))`)).join('\n');
      assert.match(re, /\* VANISHED \(EARLIER\) 2/);
      assert.match(re, /FETCH \(UID 1 FLAGS \(\\Flagged( \\Recent)?\) MODSEQ/);
      // UNCHANGEDSINCE older than the message's modseq fails for that message.
      const st = (await c.cmd(`UID STORE 1 (UNCHANGEDSINCE ${modseq}) +FLAGS (\\Seen)`)).at(-1)!;
      assert.match(st, /^t\d+ OK \[MODIFIED 1\]/);
      const changed = (await c.cmd(`UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${modseq} VANISHED)`)).join('\n');
      assert.match(changed, /\* VANISHED \(EARLIER\) 2/);
      assert.match(changed, /UID 1 .*MODSEQ/);
      assert.doesNotMatch(changed, /UID 3 /);
      c.close();
    } finally {
      a.close();
      b.close();
    }
  });

  test('every authentication success and failure is audited, without the secret', async () => {
    const claire = space.layout.operators[0].users[0];
    const c = await rawImap(space.demo.operators[0].ports.imaps, space.ca);
    assert.match((await c.cmd(`LOGIN ${claire.login} "mauvais-mot-de-passe"`)).at(-1)!, /^t\d+ NO \[AUTHENTICATIONFAILED\]/);
    // The account password is for the web (with a second factor): mail clients need an app password.
    assert.match((await c.cmd(`LOGIN ${claire.login} "${claire.password}"`)).at(-1)!, /^t\d+ NO \[AUTHENTICATIONFAILED\] .*app password/);
    assert.match((await c.cmd(`LOGIN ${claire.login} "${claire.appPassword}"`)).at(-1)!, /^t\d+ OK /);
    c.close();
    const smtp = await probe({ port: space.demo.operators[0].ports.submission, ca: space.ca, auth: { user: 'inconnu', pass: 'x'.repeat(16) }, from: claire.addresses[0], to: [claire.addresses[0]] });
    assert.equal(smtp.code, 535);
    // Asynchronous: the server under test runs in this process.
    const out = await promisify(execFile)(process.execPath, [path.resolve('bin/caducee.js'), 'audit', 'tail', '--json', '-n', '50', '--config', space.layout.operators[0].config], { encoding: 'utf8' });
    const rows = out.stdout.trim().split('\n').map((l) => JSON.parse(l));
    const imapFail = rows.find((r) => r.protocol === 'imap' && !r.success && r.login === claire.login);
    const imapOk = rows.find((r) => r.protocol === 'imap' && r.success && r.login === claire.login);
    const smtpFail = rows.find((r) => r.protocol === 'smtp' && r.login === 'inconnu');
    assert.ok(imapFail && imapOk && smtpFail, JSON.stringify(rows));
    assert.equal(imapFail.reason, 'bad-password');
    assert.equal(imapFail.method, 'LOGIN');
    assert.equal(imapOk.remote, '127.0.0.1');
    assert.equal(smtpFail.reason, 'unknown-user');
    assert.doesNotMatch(out.stdout, /mauvais-mot-de-passe|xxxxxxxxxxxxxxxx/);
    assert.ok(!out.stdout.includes(claire.password) && !out.stdout.includes(claire.appPassword), 'no password in the audit trail');
  });
  // Issue 14: a LIST pattern of wildcard pairs made the regular-expression matcher backtrack for
  // minutes, stopping every service of both operators. It must answer at once, correctly, and the
  // other operator's IMAP must keep answering meanwhile.
  test('LIST with many wildcards answers at once; an overlong pattern is refused with BAD [LIMIT]', async () => {
    const s = await login(1); // the secretary sees delegated mailboxes: long names with delimiters
    const other = await login(0);
    try {
      const pending = s.cmd('LIST "" "' + '*%'.repeat(12) + 'a"');
      assert.match((await other.cmd('NOOP')).at(-1)!, /^t\d+ OK/);
      const r = await pending;
      assert.match(r.at(-1)!, /^t\d+ OK LIST completed/);
      assert.ok(r.every((l) => !l.startsWith('* LIST') || /a"?$/.test(l)), r.join('\n'));
      const drafts = await s.cmd('LIST "" "' + '*%'.repeat(12) + 'Drafts"');
      assert.ok(drafts.filter((l) => l.startsWith('* LIST')).length >= 2, drafts.join('\n'));
      assert.match((await s.cmd('LIST "" "' + '*'.repeat(1100) + '"')).at(-1)!, /^t\d+ BAD \[LIMIT\] /);
    } finally {
      s.close();
      other.close();
    }
  });
  // Issue 14: deleted mail never left the disk. After STORE \\Deleted + EXPUNGE the message file
  // and its analysis are removed by the collector.
  test('an expunged message leaves the disk', async () => {
    const c = await login(0);
    try {
      const raw = `Subject: effacement ${Date.now()}\r\nFrom: a@b.test\r\n\r\nà effacer\r\n`;
      const bytes = Buffer.from(raw);
      const r = await c.cmd(`APPEND INBOX {${bytes.length}}`, [raw]);
      assert.match(r.at(-1)!, /^t\d+ OK /);
      const uid = /APPENDUID \d+ (\d+)/.exec(r.at(-1)!)![1];
      const op = space.demo.operators[0];
      const file = fileBlobs(op).pathOf(createHash('sha256').update(bytes).digest('hex'));
      assert.ok(existsSync(file));
      assert.match((await c.cmd('SELECT INBOX')).at(-1)!, /^t\d+ OK/);
      assert.match((await c.cmd(`UID FETCH ${uid} BODY[]`)).at(-1)!, /^t\d+ OK/); // analysed, so blob_meta has a row
      await op.blobCollector.run();
      assert.ok(existsSync(file), 'referenced: kept');
      assert.match((await c.cmd(`UID STORE ${uid} +FLAGS (\\Deleted)`)).at(-1)!, /^t\d+ OK/);
      assert.match((await c.cmd('EXPUNGE')).at(-1)!, /^t\d+ OK/);
      await op.blobCollector.run();
      assert.ok(!existsSync(file), 'the message file is removed');
    } finally {
      c.close();
    }
  });
});
