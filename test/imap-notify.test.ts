// RFC 5465 NOTIFY over real sockets against the demo: STATUS for watched folders and unsolicited
// EXISTS + FETCH for the selected one, sent while the client is silent (no command, no IDLE);
// nothing for folders not watched, nothing after NOTIFY NONE; unsupported events NO [BADEVENT];
// MailboxName and SubscriptionChange (unsolicited LIST, §5.4, §5.5: CREATE, RENAME, DELETE,
// (UN)SUBSCRIBE by another session, a grant given or withdrawn), MailboxMetadataChange and
// ServerMetadataChange (unsolicited METADATA, §5.6, §5.7).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { imapDemo } from './support/imap-demo.js';

const appendCmd = (folder: string, subject: string) => {
  const m = `From: a@a.mssante.test\r\nSubject: ${subject}\r\n\r\nbody\r\n`;
  return `APPEND ${folder} {${m.length}+}\r\n${m}`;
};

describe('IMAP NOTIFY (RFC 5465)', () => {
  const d = imapDemo();
  const session = async () => {
    const c = await d.connect(0);
    return c;
  };

  test('watched folders and the selected one are reported between commands', async () => {
    const b = await session();
    await b.cmd('CREATE Watched');
    await b.cmd('CREATE Other');
    await b.cmd('CREATE Sel');
    const a = await session();
    await a.cmd('SELECT Sel');
    const set = await a.cmd('NOTIFY SET STATUS (SELECTED (MessageNew (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)]) MessageExpunge)) (MAILBOXES Watched (MessageNew MessageExpunge FlagChange))');
    assert.ok(set.some((l) => /^\* STATUS Watched \(MESSAGES 0 UIDNEXT 1 UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)$/.test(l)), set.join('\n'));
    assert.ok(!set.some((l) => /STATUS (Sel|Other)/.test(l)), set.join('\n'));

    // Another session appends to the watched folder: A hears it without sending anything.
    let from = a.lines.length;
    await b.cmd(appendCmd('Watched', 'w1'));
    await a.waitLine((l) => l === '* STATUS Watched (MESSAGES 1 UIDNEXT 2 UNSEEN 1)', from);
    // A flag change there (FlagChange, no CONDSTORE): UNSEEN.
    await b.cmd('SELECT Watched');
    await b.cmd('STORE 1 +FLAGS (\\Seen)');
    await a.waitLine((l) => l === '* STATUS Watched (MESSAGES 1 UIDNEXT 2 UNSEEN 0)', from);

    // A new message in the selected folder: EXISTS, then the FETCH asked for, unsolicited.
    from = a.lines.length;
    await b.cmd(appendCmd('Sel', 'hello-notify'));
    await a.waitLine((l) => l === '* 1 EXISTS', from);
    await a.waitLine((l) => /^\* 1 FETCH \(UID \d+ BODY\[HEADER\.FIELDS \(SUBJECT\)\] \{\d+\}$/.test(l), from);
    await a.waitLine((l) => l === 'Subject: hello-notify', from);

    // A folder not watched: nothing, even at the next command.
    from = a.lines.length;
    await b.cmd(appendCmd('Other', 'o1'));
    const noop = await a.cmd('NOOP');
    assert.ok(!a.lines.slice(from).some((l) => l.startsWith('* STATUS')), noop.join('\n'));

    // Unsupported events: NO [BADEVENT] listing those supported; the NOTIFY in force stays.
    const refused = await a.exchange('NOTIFY SET (PERSONAL (MessageNew MessageExpunge AnnotationChange))');
    assert.equal(
      refused.at(-1)!.replace(/^t\d+ /, ''),
      'NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange MailboxMetadataChange ServerMetadataChange)] unsupported event ANNOTATIONCHANGE',
    );
    // RFC 5465 §5: MessageNew without MessageExpunge is BAD for the selected folder (for other
    // folders Caducée accepts it: the next test).
    assert.match((await a.exchange('NOTIFY SET (SELECTED (MessageNew))')).at(-1)!, /^t\d+ BAD .*must be given together/);

    // During IDLE too (RFC 5465 §4), and with CONDSTORE enabled FlagChange gives HIGHESTMODSEQ.
    await a.cmd('NOTIFY SET (MAILBOXES Watched (MessageNew MessageExpunge FlagChange))');
    await a.cmd('ENABLE CONDSTORE');
    from = a.lines.length;
    a.send('idle1 IDLE\r\n');
    await a.waitLine((l) => l.startsWith('+ '), from);
    await b.cmd('STORE 1 -FLAGS (\\Seen)');
    await a.waitLine((l) => /^\* STATUS Watched \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)$/.test(l), from);
    a.send('DONE\r\n');
    await a.waitLine((l) => l.startsWith('idle1 OK'), from);

    // NOTIFY NONE: no more reports.
    await a.cmd('NOTIFY NONE');
    from = a.lines.length;
    await b.cmd(appendCmd('Watched', 'w2'));
    await a.cmd('NOOP');
    assert.ok(!a.lines.slice(from).some((l) => l.startsWith('* STATUS')), a.lines.slice(from).join('\n'));
  });

  test('a lone MessageNew, MessageExpunge or FlagChange for another folder: its STATUS items, and only its event (deviation from RFC 5465 §5, as Dovecot)', async () => {
    const b = await session();
    await b.cmd('CREATE Lone');
    await b.cmd(appendCmd('Lone', 'l1'));
    const news = await session();
    const expunges = await session();
    const flags = await session();
    // §3.1's items for the events named: MessageNew → MESSAGES UIDNEXT UIDVALIDITY; MessageExpunge
    // → MESSAGES; FlagChange (CONDSTORE is announced) → UIDVALIDITY HIGHESTMODSEQ.
    const n = await news.cmd('NOTIFY SET STATUS (MAILBOXES Lone (MessageNew))');
    assert.ok(n.some((l) => /^\* STATUS Lone \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+\)$/.test(l)), n.join('\n'));
    const e = await expunges.cmd('NOTIFY SET STATUS (MAILBOXES Lone (MessageExpunge))');
    assert.ok(e.includes('* STATUS Lone (MESSAGES 1)'), e.join('\n'));
    const f = await flags.cmd('NOTIFY SET STATUS (MAILBOXES Lone (FlagChange))');
    assert.ok(f.some((l) => /^\* STATUS Lone \(UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)$/.test(l)), f.join('\n'));
    const from = [news, expunges, flags].map((c) => c.lines.length);
    // A flag change: only the FlagChange session hears of it.
    await b.cmd('SELECT Lone');
    await b.cmd('STORE 1 +FLAGS (\\Seen)');
    await flags.waitLine((l) => l === '* STATUS Lone (UNSEEN 0)', from[2]);
    // A new message: the MessageNew session (MESSAGES UIDNEXT), not the MessageExpunge one.
    await b.cmd(appendCmd('Lone', 'l2'));
    await news.waitLine((l) => l === '* STATUS Lone (MESSAGES 2 UIDNEXT 3)', from[0]);
    // An expunge: the MessageExpunge session (MESSAGES), not the MessageNew one.
    await b.cmd('STORE 1 +FLAGS (\\Deleted)');
    await b.cmd('EXPUNGE');
    await expunges.waitLine((l) => l === '* STATUS Lone (MESSAGES 1)', from[1]);
    for (const c of [news, expunges, flags]) await c.cmd('NOOP');
    const heard = (i: number) => [news, expunges, flags][i]!.lines.slice(from[i]).filter((l) => l.startsWith('* STATUS'));
    assert.deepEqual(heard(0), ['* STATUS Lone (MESSAGES 2 UIDNEXT 3)']);
    assert.deepEqual(heard(1), ['* STATUS Lone (MESSAGES 1)']);
    // Without CONDSTORE FlagChange reports UNSEEN (\Deleted does not move it); the new, unseen
    // message moved it too, and a change of UNSEEN is all this session can be told.
    assert.deepEqual(heard(2), ['* STATUS Lone (UNSEEN 0)', '* STATUS Lone (UNSEEN 1)']);
  });

  test('NOTIFICATIONOVERFLOW: events piling up during a long command are dropped and NOTIFY is off (RFC 5465 §5.8)', { timeout: 120_000 }, async () => {
    const a = await session();
    const b = await session();
    // A FETCH of 16 MiB that a client not reading keeps running (the server waits for the socket).
    const line = 'x'.repeat(9998) + '\r\n';
    const big = `From: a@a.mssante.test\r\nSubject: big\r\n\r\n${line.repeat(100)}`;
    await b.cmd('CREATE Gros');
    await b.cmd(`APPEND Gros {${big.length}+}\r\n${big}`);
    await b.cmd('SELECT Gros');
    for (let i = 0; i < 4; i++) await b.cmd('COPY 1:* Gros');
    await a.cmd('NOTIFY SET (PERSONAL (MailboxMetadataChange))');
    await a.cmd('SELECT Gros');
    const from = a.lines.length;
    const tag = a.nextTag;
    a.pause();
    a.send(`${tag} FETCH 1:* BODY.PEEK[]\r\n`);
    await new Promise((r) => setTimeout(r, 200));
    // Meanwhile another session changes 1,600 entries (100 per command: set, then removed).
    const entries = Array.from({ length: 100 }, (_, i) => `/private/e${i}`);
    for (let k = 0; k < 16; k++) await b.cmd(`SETMETADATA INBOX (${entries.map((e) => `${e} ${k % 2 ? 'NIL' : '"v"'}`).join(' ')})`);
    a.resume();
    const end = await a.waitLine((l) => l.startsWith(`${tag} `), from, 60_000);
    assert.match(a.lines[end]!, new RegExp(`^${tag} OK`));
    const during = a.lines.slice(from, end);
    const firstFetch = during.findIndex((l) => /^\* 1 FETCH /.test(l));
    assert.ok(firstFetch >= 0);
    assert.equal(during.filter((l) => l.startsWith('* OK [NOTIFICATIONOVERFLOW]')).length, 1, 'one overflow response, before the tagged OK');
    assert.deepEqual(during.slice(firstFetch).filter((l) => l.startsWith('* METADATA')), [], 'the waiting list was dropped');
    // As after NOTIFY NONE: nothing more…
    let after = a.lines.length;
    await b.cmd('SETMETADATA INBOX (/shared/comment "encore")');
    await a.cmd('NOOP');
    assert.ok(!a.lines.slice(after).some((l) => l.startsWith('* METADATA') || l.includes('NOTIFICATIONOVERFLOW')), a.lines.slice(after).join('\n'));
    // …until the client sets NOTIFY again.
    await a.cmd('NOTIFY SET (PERSONAL (MailboxMetadataChange))');
    after = a.lines.length;
    await b.cmd('SETMETADATA INBOX (/shared/comment NIL)');
    await a.waitLine((l) => l === '* METADATA INBOX /shared/comment', after);
  });

  test('a folder of a mailbox whose read grant is withdrawn is no longer reported (RFC 5465 §5.9)', async () => {
    const [claire, secretary] = d.layout.operators[0].users;
    const org = secretary.addresses[0]; // the secretary's ORG mailbox, readable by Claire
    const sec = await d.connect(1);
    const a = await session();
    const name = `"Partagés/${org}/INBOX"`;
    await a.cmd('ENABLE IMAP4rev2'); // UTF-8 names
    const set = await a.cmd(`NOTIFY SET STATUS (MAILBOXES ${name} (MessageNew MessageExpunge))`);
    assert.ok(set.some((l) => l.startsWith(`* STATUS ${name} (MESSAGES `)), set.join('\n'));
    let from = a.lines.length;
    await sec.cmd(appendCmd('INBOX', 'org-1'));
    await a.waitLine((l) => l.startsWith(`* STATUS ${name} (MESSAGES `), from);
    await sec.cmd(`DELETEACL INBOX ${claire.login}`);
    from = a.lines.length;
    await sec.cmd(appendCmd('INBOX', 'org-2'));
    await a.cmd('NOOP');
    assert.ok(!a.lines.slice(from).some((l) => l.startsWith('* STATUS')), a.lines.slice(from).join('\n'));
  });
  test('MailboxName and SubscriptionChange: CREATE, RENAME, (UN)SUBSCRIBE, DELETE by another session as unsolicited LIST (RFC 5465 §5.4, §5.5)', async () => {
    const a = await session();
    const b = await session();
    await a.cmd('NOTIFY SET (PERSONAL (MailboxName SubscriptionChange))');
    const sub = await session();
    await sub.cmd('NOTIFY SET (SUBTREE Projets (MailboxName))');
    let from = a.lines.length;
    const subFrom = sub.lines.length;
    await b.cmd('CREATE Nouveau');
    await a.waitLine((l) => l === '* LIST () "/" Nouveau', from);
    await b.cmd('RENAME Nouveau Renomme');
    await a.waitLine((l) => l === '* LIST () "/" Renomme ("OLDNAME" (Nouveau))', from);
    await b.cmd('SUBSCRIBE Renomme');
    await a.waitLine((l) => l === '* LIST (\\Subscribed) "/" Renomme', from);
    from = a.lines.length;
    await b.cmd('UNSUBSCRIBE Renomme');
    await a.waitLine((l) => l === '* LIST () "/" Renomme', from);
    await b.cmd('DELETE Renomme');
    await a.waitLine((l) => l === '* LIST (\\NonExistent) "/" Renomme', from);
    // SUBTREE: only names under Projets.
    await b.cmd('CREATE Projets/Echographie');
    await sub.waitLine((l) => l === '* LIST () "/" Projets/Echographie', subFrom);
    assert.ok(!sub.lines.slice(subFrom).some((l) => /Nouveau|Renomme/.test(l)), sub.lines.slice(subFrom).join('\n'));
    assert.ok(sub.lines.slice(subFrom).some((l) => l === '* LIST () "/" Projets'), 'the parent CREATE made is under the subtree too');
    // NOTIFY NONE: nothing more.
    await a.cmd('NOTIFY NONE');
    from = a.lines.length;
    await b.cmd('CREATE Apres');
    await a.cmd('NOOP');
    assert.ok(!a.lines.slice(from).some((l) => l.startsWith('* LIST')), a.lines.slice(from).join('\n'));
  });

  test('MailboxName: a grant withdrawn or given makes the mailbox\'s folders go or appear (RFC 5465 §5.4, §5.9)', async () => {
    const [claire, secretary] = d.layout.operators[0].users;
    const doc = await d.connect(0);
    const sec = await d.connect(1);
    await sec.cmd('ENABLE UTF8=ACCEPT');
    await sec.cmd('NOTIFY SET (SUBTREE "Autres utilisateurs" (MailboxName))');
    const inbox = `"Autres utilisateurs/${claire.addresses[0]}/INBOX"`;
    await doc.exchange(`SETACL INBOX ${secretary.login} lrs`);
    let from = sec.lines.length;
    await doc.cmd(`DELETEACL INBOX ${secretary.login}`);
    await sec.waitLine((l) => l === `* LIST (\\NonExistent) "/" ${inbox}`, from);
    from = sec.lines.length;
    await doc.cmd(`SETACL INBOX ${secretary.login} lrs`);
    await sec.waitLine((l) => l === `* LIST () "/" ${inbox}`, from);
    // The session now resolves the name again (its namespace follows what it was told).
    await sec.cmd(`STATUS ${inbox} (MESSAGES)`);
  });

  test('MailboxMetadataChange and ServerMetadataChange: unsolicited METADATA with the entry names (RFC 5465 §5.6, §5.7; RFC 5464 §4.4.2)', async () => {
    const a = await session();
    const b = await session();
    const other = await d.connect(1);
    await a.cmd('NOTIFY SET (PERSONAL (MailboxMetadataChange ServerMetadataChange))');
    const from = a.lines.length;
    await b.cmd('SETMETADATA INBOX (/shared/comment "Dossiers" /private/comment "a moi")');
    await a.waitLine((l) => l === '* METADATA INBOX /shared/comment /private/comment', from);
    await b.cmd('SETMETADATA "" (/private/vendor/caducee/theme "sombre")');
    await a.waitLine((l) => l === '* METADATA "" /private/vendor/caducee/theme', from);
    // Another user's private server entry is not this user's business.
    await other.cmd('SETMETADATA "" (/private/vendor/caducee/theme "clair")');
    await a.cmd('NOOP');
    assert.equal(a.lines.slice(from).filter((l) => l.startsWith('* METADATA ""')).length, 1, a.lines.slice(from).join('\n'));
  });
});
