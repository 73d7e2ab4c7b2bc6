// METADATA (RFC 5464) over real TLS sockets against the demo: GETMETADATA (MAXSIZE, DEPTH),
// SETMETADATA, server entries, /private entries per user on a delegated mailbox, the response
// codes, and core's access decision (RFC 5464 §3.3, docs/imap.md "METADATA"); and imapflow's
// response parser reading what GETMETADATA sends (literal values, LONGENTRIES). Users: the physician
// (users[0], owner of the PER mailbox) and the secretariat (users[1], granted read or manage).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { imapDemo } from './support/imap-demo.js';

describe('IMAP METADATA (RFC 5464)', () => {
  const d = imapDemo();
  const tagged = (lines: string[]) => lines.at(-1)!;

  test('GETMETADATA and SETMETADATA on a folder and the server: values, NIL, DEPTH, MAXSIZE, limits', async () => {
    const c = await d.connect(0);
    assert.match((await c.cmd('CAPABILITY')).join('\n'), / METADATA /);
    await c.cmd('CREATE Meta');
    assert.match(tagged(await c.exchange('SETMETADATA Meta (/shared/comment "Dossiers de cardiologie" /private/comment {8+}\r\nà trier)')), /OK SETMETADATA completed/);
    let r = await c.cmd('GETMETADATA Meta (/shared/comment /private/comment /shared/absent)');
    assert.deepEqual(r.slice(0, -1), ['* METADATA Meta (/private/comment {8}', 'à trier /shared/comment "Dossiers de cardiologie")'], r.join('\n'));
    // Entry names are case-insensitive (§3.2); options after the mailbox as in §4.2.1's example.
    r = await c.cmd('GETMETADATA Meta (MAXSIZE 10) /SHARED/Comment');
    assert.match(r.at(-1)!, /OK \[METADATA LONGENTRIES 23\] GETMETADATA completed$/);
    assert.equal(r.length, 1, 'the long value left out');
    // DEPTH (§4.2.2).
    await c.cmd('SETMETADATA Meta (/private/vendor/caducee/a "1" /private/vendor/caducee/a/b "2")');
    r = await c.cmd('GETMETADATA (DEPTH 1) Meta /private/vendor/caducee');
    assert.equal(r[0], '* METADATA Meta (/private/vendor/caducee/a "1")');
    r = await c.cmd('GETMETADATA (DEPTH infinity) Meta /private');
    assert.equal(r[0], '* METADATA Meta (/private/comment {8}');
    assert.match(r[1], /^à trier \/private\/vendor\/caducee\/a "1" \/private\/vendor\/caducee\/a\/b "2"\)$/);
    // NIL removes; nothing returned for what does not exist.
    await c.cmd('SETMETADATA Meta (/private/comment NIL)');
    r = await c.cmd('GETMETADATA Meta /private/comment');
    assert.equal(r.length, 1, r.join('\n'));
    // Binary value as literal8, sent back as literal8.
    await c.cmd('SETMETADATA Meta (/private/vendor/caducee/bin ~{3+}\r\na\0b)');
    r = await c.cmd('GETMETADATA Meta /private/vendor/caducee/bin');
    assert.equal(r[0], '* METADATA Meta (/private/vendor/caducee/bin ~{3}');
    // Limits: MAXSIZE and TOOMANY, nothing half-stored.
    const big = 'x'.repeat(64 * 1024 + 1);
    assert.match(tagged(await c.exchange(`SETMETADATA Meta (/private/a "1" /private/big {${big.length}+}\r\n${big})`)), /NO \[METADATA MAXSIZE 65536\]/);
    assert.equal((await c.cmd('GETMETADATA Meta /private/a')).length, 1, 'nothing stored');
    const many = Array.from({ length: 98 }, (_, i) => `/private/n${i} "v"`).join(' ');
    assert.match(tagged(await c.exchange(`SETMETADATA Meta (${many})`)), /NO \[METADATA TOOMANY\]/);
    assert.equal((await c.cmd('GETMETADATA Meta /private/n0')).length, 1, 'nothing stored');
    // Syntax: entry names must be under /private or /shared, no wildcards (§3.2).
    assert.match(tagged(await c.exchange('GETMETADATA Meta /comment')), /BAD .*\/private or \/shared/);
    assert.match(tagged(await c.exchange('SETMETADATA Meta (/shared/a* "x")')), /BAD /);
    assert.match(tagged(await c.exchange('GETMETADATA (DEPTH 2) Meta /shared')), /BAD .*DEPTH/);
    assert.match(tagged(await c.exchange('GETMETADATA Absent /shared/comment')), /NO \[NONEXISTENT\]/);
    // Server entries (mailbox ""): /private per user; /shared the operator's.
    assert.match(tagged(await c.exchange('SETMETADATA "" (/private/vendor/caducee/theme "sombre")')), /OK/);
    assert.equal((await c.cmd('GETMETADATA "" /private/vendor/caducee/theme'))[0], '* METADATA "" (/private/vendor/caducee/theme "sombre")');
    assert.match(tagged(await c.exchange('SETMETADATA "" (/shared/comment "x")')), /NO \[NOPERM\]/);
    // Follows RENAME, goes with DELETE.
    await c.cmd('SETMETADATA Meta (/shared/comment "suit")');
    await c.cmd('RENAME Meta Meta2');
    assert.equal((await c.cmd('GETMETADATA Meta2 /shared/comment'))[0], '* METADATA Meta2 (/shared/comment "suit")');
    await c.cmd('DELETE Meta2');
    await c.cmd('CREATE Meta2');
    assert.equal((await c.cmd('GETMETADATA Meta2 /shared/comment')).length, 1, 'a new folder of the same name has none');
    const s = await d.connect(1);
    assert.equal((await s.cmd('GETMETADATA "" /private/vendor/caducee/theme')).length, 1, "another user's private server entry is not seen");
  });

  test('a delegated mailbox: /private per user, /shared seen by all; read grant: no /shared writes; no grant: NOPERM', async () => {
    const [claire, secretary] = d.layout.operators[0].users;
    const doc = await d.connect(0);
    const sec = await d.connect(1);
    await doc.cmd('CREATE Partage');
    await doc.cmd(`SETACL INBOX ${secretary.login} lrs`);
    await doc.cmd('SETMETADATA Partage (/shared/comment "Resultats" /private/comment "note de Claire")');
    const list = await sec.cmd('LIST "" "*"');
    const name = list.map((l) => /"([^"]*\/Partage)"$/.exec(l)?.[1]).find(Boolean);
    assert.ok(name, list.join('\n'));
    const q = `"${name}"`;
    let r = await sec.cmd(`GETMETADATA ${q} (/shared/comment /private/comment)`);
    assert.equal(r.length, 2, r.join('\n'));
    assert.match(r[0], /\(\/shared\/comment "Resultats"\)$/);
    assert.ok(!r.join('\n').includes('Claire'), "Claire's private entry is hers");
    assert.match(tagged(await sec.exchange(`SETMETADATA ${q} (/private/comment "note du secretariat")`)), /OK/);
    assert.match(tagged(await sec.exchange(`SETMETADATA ${q} (/shared/comment "change")`)), /NO \[NOPERM\].*"w"/);
    r = await doc.cmd('GETMETADATA Partage /private/comment');
    assert.equal(r[0], '* METADATA Partage (/private/comment "note de Claire")', 'per user');
    // Manage grant: /shared writes allowed.
    await doc.cmd(`SETACL INBOX ${secretary.login} +a`);
    assert.match(tagged(await sec.exchange(`SETMETADATA ${q} (/shared/comment "relu")`)), /OK/);
    assert.equal((await doc.cmd('GETMETADATA Partage /shared/comment'))[0], '* METADATA Partage (/shared/comment "relu")');
    // No grant at all: the folder is no longer there for the secretariat.
    await doc.cmd(`DELETEACL INBOX ${secretary.login}`);
    assert.match(tagged(await sec.exchange(`GETMETADATA ${q} /shared/comment`)), /NO \[(NONEXISTENT|NOPERM)\]/);
    void claire;
  });
  test('/private/specialuse (RFC 6154 §4): the folder\'s special use as LIST shows it, read-only', async () => {
    const [claire, secretary] = d.layout.operators[0].users;
    const c = await d.connect(0);
    // The default folders: the value LIST gives (RFC 6154 §2), a quoted string.
    let r = await c.cmd('GETMETADATA Sent /private/specialuse');
    assert.equal(r[0], '* METADATA Sent (/private/specialuse "\\\\Sent")');
    const listed = async () => (await c.cmd('LIST (SPECIAL-USE) "" "*"')).flatMap((l) => /^\* LIST \((?:\\HasNoChildren )?(\\\w+)\) "\/" (\S+)$/.exec(l)?.slice(1, 3).reverse().join('=') ?? []);
    assert.ok((await listed()).includes('Sent=\\Sent'));
    // None for INBOX or a folder without special use (§4's NIL: absent).
    assert.equal((await c.cmd('GETMETADATA INBOX /private/specialuse')).length, 1);
    // CREATE … (USE (…)) (RFC 6154 §3): the entry follows; with DEPTH among the other /private ones.
    await c.cmd('CREATE Classement (USE (\\Archive))');
    await c.cmd('SETMETADATA Classement (/private/comment "a classer" /private/vendor/caducee/x "1")');
    r = await c.cmd('GETMETADATA (DEPTH infinity) Classement /private');
    assert.equal(r[0], '* METADATA Classement (/private/comment "a classer" /private/specialuse "\\\\Archive" /private/vendor/caducee/x "1")');
    // Not settable (§4: the server "MAY allow" it; Caducée keeps special uses the folder's): NO,
    // nothing of the command stored, LIST unchanged.
    for (const v of ['"\\\\Trash"', 'NIL']) {
      assert.match(tagged(await c.exchange(`SETMETADATA Sent (/private/comment "x" /private/specialuse ${v})`)), /^t\d+ NO \[CANNOT\] \/private\/specialuse shows the folder's special use/);
    }
    assert.equal((await c.cmd('GETMETADATA Sent /private/comment')).length, 1, 'nothing stored');
    assert.equal((await c.cmd('GETMETADATA Sent /private/specialuse'))[0], '* METADATA Sent (/private/specialuse "\\\\Sent")');
    assert.deepEqual((await listed()).filter((x) => !x.startsWith('Partag')).sort(), ['Classement=\\Archive', 'Drafts=\\Drafts', 'Junk=\\Junk', 'Sent=\\Sent', 'Trash=\\Trash']);
    // A delegate reading the mailbox sees the same special uses (they are the folder's).
    await c.cmd(`SETACL INBOX ${secretary.login} lrs`);
    const s = await d.connect(1);
    await s.cmd('ENABLE UTF8=ACCEPT');
    r = await s.cmd(`GETMETADATA "Autres utilisateurs/${claire.addresses[0]}/Classement" /private/specialuse`);
    assert.equal(r[0], `* METADATA "Autres utilisateurs/${claire.addresses[0]}/Classement" (/private/specialuse "\\\\Archive")`);
    await c.cmd(`DELETEACL INBOX ${secretary.login}`);
  });

  test('imapflow: SETMETADATA through its command writer, GETMETADATA responses through its parser', async () => {
    const u = d.layout.operators[0].users[0];
    const client = new ImapFlow({ host: '127.0.0.1', port: d.demo.operators[0].ports.imaps, secure: true, tls: { ca: d.ca, servername: 'localhost' }, auth: { user: u.login, pass: u.appPassword }, logger: false });
    await client.connect();
    try {
      assert.ok((client as any).capabilities.has('METADATA'));
      // exec() resolves with the tagged response and `next`, the parser's go-ahead (imapflow's own commands call it).
      const exec = async (...args: unknown[]) => {
        const r = await (client as any).exec(...args);
        r.next();
        return r;
      };
      // A value with CRLF, sent as a literal.
      const value = 'Ligne 1\r\nLigne 2 : compte rendu';
      const set = await exec('SETMETADATA', [{ type: 'ATOM', value: 'INBOX' }, [{ type: 'ATOM', value: '/shared/comment' }, { type: 'LITERAL', value }, { type: 'ATOM', value: '/private/comment' }, { type: 'STRING', value: 'court' }]]);
      assert.equal(set.response.command, 'OK');
      const got: any[] = [];
      const get = await exec('GETMETADATA', [{ type: 'ATOM', value: 'INBOX' }, [{ type: 'ATOM', value: '/shared/comment' }, { type: 'ATOM', value: '/private/comment' }]], { untagged: { METADATA: async (u: any) => void got.push(u.attributes) } });
      assert.equal(get.response.command, 'OK');
      assert.equal(got.length, 1);
      const [mailbox, list] = got[0];
      assert.equal(mailbox.value, 'INBOX');
      const pairs = Object.fromEntries(list.reduce((acc: string[][], x: any, i: number) => (i % 2 ? (acc[acc.length - 1].push(Buffer.from(x.value).toString('utf8')), acc) : [...acc, [x.value]]), []));
      assert.deepEqual(pairs, { '/private/comment': 'court', '/shared/comment': value });
      // RFC 6154 §4's entry as imapflow reads it: the attribute LIST gives.
      const uses: any[] = [];
      await exec('GETMETADATA', [{ type: 'ATOM', value: 'Drafts' }, { type: 'ATOM', value: '/private/specialuse' }], { untagged: { METADATA: async (u: any) => void uses.push(u.attributes) } });
      assert.equal(uses.length, 1);
      assert.deepEqual([uses[0][1][0].value, Buffer.from(uses[0][1][1].value).toString('utf8')], ['/private/specialuse', '\\Drafts']);
      const listed = await client.list();
      assert.equal(listed.find((m) => m.path === 'Drafts')?.specialUse, '\\Drafts');
      // MAXSIZE: the OK's response code as imapflow reads it.
      const long = await exec('GETMETADATA', [[{ type: 'ATOM', value: 'MAXSIZE' }, { type: 'ATOM', value: '5' }], { type: 'ATOM', value: 'INBOX' }, { type: 'ATOM', value: '/shared/comment' }]);
      assert.equal(long.response.command, 'OK');
      assert.match(JSON.stringify(long.response.attributes), /LONGENTRIES/);
    } finally {
      await client.logout();
    }
  });
});
