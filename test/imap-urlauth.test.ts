// URLAUTH (RFC 4467) and URLAUTH=BINARY (RFC 5524) over real TLS sockets against the demo, inside
// Caducée's trust model (docs/imap.md "URLAUTH"): a URL fetches only for a user the URL's access
// identifier names AND core gives the read right on the mailbox, at the time of the fetch; the read
// is traced as that user's. Users: the physician (users[0], owner of the PER mailbox whose folders
// are her personal namespace) and the secretariat (users[1], read grant on that PER mailbox).
// (The imaptest scripts urlauth, urlauth2 and urlauth-binary run in test/imap-conformance.)
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { imapDemo } from './support/imap-demo.js';

describe('IMAP URLAUTH: GENURLAUTH, URLFETCH, RESETKEY and access', () => {
  const d = imapDemo();
  const HOST = '127.0.0.1'; // the address the tests reach the server on (a URL may name it)
  const token = (genurlauth: string[]) => /^\* GENURLAUTH "([^"]+)"$/.exec(genurlauth.find((l) => l.startsWith('* GENURLAUTH'))!)![1];
  /** URLFETCH of one URL: the literal's text, or null for NIL. */
  const fetchText = (lines: string[], url: string): string | null => {
    const i = lines.findIndex((l) => l.startsWith(`* URLFETCH ${url} `));
    assert.ok(i >= 0, `a URLFETCH response for ${url}:\n${lines.join('\n')}`);
    const rest = lines[i].slice(`* URLFETCH ${url} `.length);
    if (rest === 'NIL') return null;
    const n = Number(/\{(\d+)\}$/.exec(rest)![1]);
    return lines.slice(i + 1, -1).join('\r\n').slice(0, n);
  };

  test('issued by the owner, fetched by the user it names while core grants the read right; traced as that user', async () => {
    const [claire, secretary] = d.layout.operators[0].users;
    const op = d.demo.operators[0];
    const per = await op.core.requireMailbox(claire.addresses[0]);
    const doc = await d.connect(0);
    const sec = await d.connect(1);
    assert.match((await doc.cmd('CAPABILITY')).join('\n'), / URLAUTH URLAUTH=BINARY /);
    assert.ok((await doc.cmd('EXAMINE INBOX')).includes('* OK [URLMECH INTERNAL] URLAUTH mechanisms'), 'RFC 4467 §6: URLMECH at SELECT/EXAMINE');
    await doc.cmd('CLOSE');

    const body = 'From: claire.martin@a.mssante.test\r\nSubject: compte rendu\r\n\r\nEchographie normale\r\n';
    const appended = await doc.cmd(`APPEND INBOX {${body.length}+}\r\n${body}`);
    const [, validity, uid] = /APPENDUID (\d+) (\d+)/.exec(appended.at(-1)!)!;
    await doc.cmd('CREATE Autre');
    await doc.cmd(`APPEND Autre {${body.length}+}\r\n${body}`);

    const base = `imap://${claire.login}@${HOST}/INBOX;UIDVALIDITY=${validity}/;UID=${uid}`;
    const forSec = token(await doc.cmd(`GENURLAUTH "${base};URLAUTH=user+${secretary.login}" INTERNAL`));
    assert.match(forSec, new RegExp(`^${base.replace(/[.;/+]/g, '\\$&')};URLAUTH=user\\+${secretary.login}:internal:[0-9a-f]{64}$`));
    const forAny = token(await doc.cmd(`GENURLAUTH "${base};URLAUTH=authuser" INTERNAL`));

    // The secretariat, named by the URL and holding the read grant: the message.
    const tracesBefore = (await op.store.listTraces(per.id)).length;
    assert.equal(fetchText(await sec.cmd(`URLFETCH ${forSec}`), forSec), body);
    // ... traced as the secretariat's read (a delegate), with the issuer named, no content.
    const traces = await op.store.listTraces(per.id);
    const read = traces.slice(tracesBefore).find((t) => t.action === 'read');
    assert.ok(read, JSON.stringify(traces.slice(tracesBefore)));
    assert.equal(read.actorLogin, secretary.login);
    assert.equal(read.delegate, true);
    assert.deepEqual({ ...read.detail }, { folder: 'INBOX', messages: 1, uids: uid, via: 'urlfetch', issuer: claire.login });

    // Wrong user: the owner herself may read the mailbox, but the URL names the secretariat only.
    assert.equal(fetchText(await doc.cmd(`URLFETCH ${forSec}`), forSec), null);
    // Tampered URLs (another message, another mailbox, a wider access, another token): NIL.
    const tampered = [
      forSec.replace(`;UID=${uid}`, `;UID=${Number(uid) + 1}`),
      forSec.replace('/INBOX;', '/Autre;'),
      forSec.replace(`user+${secretary.login}`, 'authuser'),
      forSec.replace(/.$/, (c) => (c === '0' ? '1' : '0')),
      forSec.replace(`${claire.login}@`, `${secretary.login}@`),
    ];
    for (const url of tampered) assert.equal(fetchText(await sec.cmd(`URLFETCH ${url}`), url), null, url);

    // Extended form (RFC 5524): BODYPARTSTRUCTURE and BINARY of the whole message.
    const ext = await sec.cmd(`URLFETCH (${forAny} BODYPARTSTRUCTURE BINARY)`);
    assert.match(ext.join('\n'), new RegExp(`^\\* URLFETCH ${forAny.replace(/[.;/+]/g, '\\$&')} \\(BODYPARTSTRUCTURE \\("text" "plain" \\("charset" "us-ascii"\\) NIL NIL "7bit" 21 1 NIL NIL NIL NIL\\) BINARY \\{${body.length}\\}$`, 'm'));

    // A withdrawn grant stops the URL at once: the owner removes the secretariat's read right.
    await doc.cmd(`DELETEACL INBOX ${secretary.login}`);
    assert.equal(fetchText(await sec.cmd(`URLFETCH ${forAny}`), forAny), null, 'authuser, valid token, no read right: NIL');
    assert.equal(fetchText(await sec.cmd(`URLFETCH ${forSec}`), forSec), null);
    await doc.cmd(`SETACL INBOX ${secretary.login} lrs`);
    assert.equal(fetchText(await sec.cmd(`URLFETCH ${forAny}`), forAny), body, 'the grant given back: the same URL reads again');

    // RESETKEY INBOX: every URL the owner issued for INBOX stops; a new one works.
    const reset = await doc.cmd('RESETKEY INBOX');
    assert.match(reset.at(-1)!, /^t\d+ OK \[URLMECH INTERNAL\]/);
    assert.equal(fetchText(await sec.cmd(`URLFETCH ${forSec} ${forAny}`), forAny), null);
    const again = token(await doc.cmd(`GENURLAUTH "${base};URLAUTH=authuser" INTERNAL`));
    assert.notEqual(again, forAny);
    assert.equal(fetchText(await sec.cmd(`URLFETCH ${again}`), again), body);
    // RESETKEY without arguments: all of them.
    await doc.cmd('RESETKEY');
    assert.equal(fetchText(await sec.cmd(`URLFETCH ${again}`), again), null);
  });

  test(';EXPIRE=: refused at GENURLAUTH once past; a URL fetches until it expires, then NIL', async () => {
    const [claire] = d.layout.operators[0].users;
    const doc = await d.connect(0);
    const body = 'Subject: bref\r\n\r\nA lire vite\r\n';
    const uid = /APPENDUID \d+ (\d+)/.exec((await doc.cmd(`APPEND INBOX {${body.length}+}\r\n${body}`)).at(-1)!)![1];
    const base = `imap://${claire.login}@${HOST}/INBOX/;UID=${uid}`;
    const past = await doc.exchange(`GENURLAUTH "${base};EXPIRE=2020-01-01T00:00:00Z;URLAUTH=user+${claire.login}" INTERNAL`);
    assert.match(past.at(-1)!, /^t\d+ NO \[BADURL .*\] the URL has already expired/);
    const expire = new Date(Date.now() + 1500);
    const url = token(await doc.cmd(`GENURLAUTH "${base};EXPIRE=${expire.toISOString()};URLAUTH=user+${claire.login}" INTERNAL`));
    assert.equal(fetchText(await doc.cmd(`URLFETCH ${url}`), url), body);
    while (Date.now() <= expire.getTime() + 50) await new Promise((r) => setTimeout(r, 100)); // let the expiry pass
    assert.equal(fetchText(await doc.cmd(`URLFETCH ${url}`), url), null);
  });

  test('GENURLAUTH refuses what Caducée does not issue, and malformed URLs, with NO [BADURL]; bad syntax is BAD', async () => {
    const [claire, secretary] = d.layout.operators[0].users;
    const doc = await d.connect(0);
    const body = 'Subject: x\r\n\r\ny\r\n';
    const uid = /APPENDUID \d+ (\d+)/.exec((await doc.cmd(`APPEND INBOX {${body.length}+}\r\n${body}`)).at(-1)!)![1];
    const base = `imap://${claire.login}@${HOST}/INBOX/;UID=${uid}`;
    const cases: [string, RegExp][] = [
      [`"${base};URLAUTH=anonymous" INTERNAL`, /anonymous URLs are refused/],
      [`"${base};URLAUTH=submit+${claire.login}" INTERNAL`, /submit\+ URLs are refused/],
      [`"${base};URLAUTH=user+nobody-here" INTERNAL`, /no such user/],
      [`"imap://${secretary.login}@${HOST}/INBOX/;UID=${uid};URLAUTH=authuser" INTERNAL`, /only authorize URLs naming yourself/],
      [`"imap://${claire.login}@elsewhere.example/INBOX/;UID=${uid};URLAUTH=authuser" INTERNAL`, /another server/],
      [`"/INBOX/;UID=${uid};URLAUTH=authuser" INTERNAL`, /not an IMAP URLAUTH rump URL/],
      [`"${base}" INTERNAL`, /not an IMAP URLAUTH rump URL/],
      [`"${base};URLAUTH=authuser:internal:${'0'.repeat(64)}" INTERNAL`, /already carries a mechanism and token/],
      [`"imap://${claire.login}@${HOST}/INBOX/;UID=999999;URLAUTH=authuser" INTERNAL`, /no such message/],
      [`"imap://${claire.login}@${HOST}/Nulle%20part/;UID=1;URLAUTH=authuser" INTERNAL`, /no such mailbox, or you may not read it/],
      [`"${base};URLAUTH=authuser" XSAMPLE`, /unknown URLAUTH mechanism XSAMPLE/],
    ];
    for (const [args, why] of cases) {
      const r = await doc.exchange(`GENURLAUTH ${args}`);
      assert.match(r.at(-1)!, /^t\d+ NO \[BADURL [^\]]*\] /, args);
      assert.match(r.at(-1)!, why, args);
      assert.ok(!r.some((l) => l.startsWith('* GENURLAUTH')), `${args}: no URL given`);
    }
    // A URLAUTH URL that does not parse, at URLFETCH: NIL (RFC 4467 §7), never an error.
    assert.equal(fetchText(await doc.cmd('URLFETCH imap://x@y/INBOX/;UID=1;URLAUTH=authuser:internal:zz'), 'imap://x@y/INBOX/;UID=1;URLAUTH=authuser:internal:zz'), null);
    for (const bad of ['URLFETCH', 'URLFETCH (x FOO)', 'URLFETCH (x BODY BINARY)', 'GENURLAUTH', 'GENURLAUTH "x"', 'RESETKEY INBOX in/ternal']) {
      assert.match((await doc.exchange(bad)).at(-1)!, /^t\d+ BAD /, bad);
    }
    assert.match((await doc.exchange('RESETKEY INBOX XSAMPLE')).at(-1)!, /^t\d+ NO /);
    assert.match((await doc.exchange('RESETKEY Nulle')).at(-1)!, /^t\d+ NO \[NONEXISTENT\]/);
  });
});
