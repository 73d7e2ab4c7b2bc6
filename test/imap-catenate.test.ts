// RFC 4469 CATENATE over real sockets against the demo: a URL part may name a message in any
// mailbox the user may read — here one delegated to her (its name percent-encoded as UTF-8,
// RFC 5092) — and only while core grants the "r" right: once the grant is withdrawn the same URL
// is NO [BADURL], and nothing is stored. (The imaptest scripts catenate and catenate-multiappend
// cover URLs into the user's own mailboxes, bad UIDVALIDITY and TRYCREATE.)
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { imapDemo } from './support/imap-demo.js';

describe('IMAP CATENATE (RFC 4469) and access', () => {
  const d = imapDemo();
  const session = (i: number) => d.connect(i);

  test('a URL into a mailbox delegated to the user works until the grant is withdrawn', async () => {
    const [claire, secretary] = d.layout.operators[0].users;
    const org = secretary.addresses[0]; // owned by the secretary, readable by Claire (grant "read")
    const sec = await session(1);
    const body = 'From: accueil@a.mssante.test\r\nSubject: planning\r\n\r\nGarde du samedi\r\n';
    const appended = await sec.cmd(`APPEND INBOX {${body.length}+}\r\n${body}`);
    const uid = /APPENDUID (\d+) (\d+)/.exec(appended.at(-1)!)!;

    const doc = await session(0);
    await doc.cmd('CREATE Copies');
    const url = `/Partag%C3%A9s/${org}/INBOX;UIDVALIDITY=${uid[1]}/;UID=${uid[2]}/;SECTION=TEXT`;
    const head = 'From: claire@a.mssante.test\r\nSubject: copie\r\n\r\n';
    await doc.cmd(`APPEND Copies CATENATE (TEXT {${head.length}+}\r\n${head} URL "${url}")`);
    await doc.cmd('SELECT Copies');
    const fetched = await doc.cmd('FETCH 1 BODY.PEEK[]');
    assert.ok(fetched.includes('Garde du samedi'), fetched.join('\n'));
    assert.ok(fetched.includes('Subject: copie'), fetched.join('\n'));

    // The secretary withdraws Claire's read grant (she manages her ORG mailbox): core now refuses
    // "r", and the same URL is a bad URL — saying nothing of the message — with nothing stored.
    await sec.cmd(`DELETEACL INBOX ${claire.login}`);
    const refused = await doc.exchange(`APPEND Copies CATENATE (TEXT {${head.length}+}\r\n${head} URL "${url}")`);
    assert.match(refused.at(-1)!, new RegExp(`^t\\d+ NO \\[BADURL ${url.replace(/[.;/]/g, '\\$&')}\\] no such mailbox, or you may not read it$`));
    assert.match((await doc.cmd('STATUS Copies (MESSAGES)')).join('\n'), /MESSAGES 1\)/);

    // URLs that are not a message of a readable mailbox: BADURL; a URL for another server too.
    for (const bad of [`/${'INBOX'}/;UID=999999`, '/INBOX', `imap://elsewhere.example/INBOX/;UID=1`, `/INBOX/;UID=1/;SECTION=9.9`, '/INBOX/;UID=1;URLAUTH=anonymous:internal:0123456789abcdef']) {
      const r = await doc.exchange(`APPEND Copies CATENATE (URL "${bad}")`);
      assert.match(r.at(-1)!, /^t\d+ NO \[BADURL /, `${bad}: ${r.at(-1)}`);
    }
    // A destination that does not exist: TRYCREATE first, whatever the URLs (RFC 4469 §5).
    assert.match((await doc.exchange(`APPEND Nowhere CATENATE (URL "${url}")`)).at(-1)!, /^t\d+ NO \[TRYCREATE\]/);
  });
});
