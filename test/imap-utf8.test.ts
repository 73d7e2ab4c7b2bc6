// 8-bit header bytes and UTF8=ACCEPT (issue 15, RFC 6855), over real sockets.
//
// 1. Against Dovecot as a real peer (Debian's dovecot-imapd, a private instance on loopback): a
//    corpus of messages whose header fields carry valid UTF-8, Latin-1, encoded-words, the three
//    mixed in one field, 8-bit parameters (filename) and an encapsulated message with a Latin-1
//    header is APPENDed to both servers; FETCH ENVELOPE, BODYSTRUCTURE and
//    BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] from an IMAP4rev1 session must give the same bytes.
//    Only the form of a string may differ (quoted or literal: the same bytes either way).
//    Dovecot 2.3.19 does not announce UTF8=ACCEPT, so it takes the APPEND of a session that did
//    not enable it; Caducée announces it and must refuse that (RFC 6855 §4), so its APPENDs are
//    made after ENABLE UTF8=ACCEPT. No other difference with the RFCs was found.
// 2. Caducée alone: the session switch (ENABLE UTF8=ACCEPT, IMAP4rev2), UTF-8 header strings and
//    mailbox names, the APPEND UTF8 data item, the refusals RFC 6855 §3/§4 ask for.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ImapArg } from './imap-conformance/imap-args.js';
import { fetchReplies } from './mime/dovecot-oracle.js';
import { DovecotPeer } from './peers/dovecot.js';
import { requirePeer } from './peers/which.js';
import { connectBytes, type BytesConnection } from './support/imap-bytes.js';
import { imapDemo } from './support/imap-demo.js';

const crlf = (s: string) => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'latin1');
/** Text whose non-ASCII characters are written as UTF-8 (a "binary" string of those bytes). */
const u8 = (s: string) => Buffer.from(s, 'utf8').toString('latin1');

/** The corpus, as bytes (latin1 strings: "\xe9" is the byte 0xE9, u8("é") the bytes C3 A9). */
const CORPUS: { name: string; raw: Buffer }[] = [
  {
    name: 'valid UTF-8',
    raw: crlf(`From: ${u8('Émile Zola')} <emile@zola.example>
To: ${u8('Zoé Durand')} <zoe@hopital.example>
Subject: ${u8('Compte-rendu opératoire — été')}
Message-ID: <utf8-1@zola.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Texte.
`),
  },
  {
    name: 'Latin-1',
    raw: crlf(`From: \xc9mile Zola <emile@zola.example>
To: Zo\xe9 Durand <zoe@hopital.example>
Subject: Compte-rendu op\xe9ratoire d'\xe9t\xe9
MIME-Version: 1.0
Content-Type: text/plain; charset=iso-8859-1

Texte.
`),
  },
  {
    name: 'encoded-words',
    raw: crlf(`From: =?ISO-8859-1?Q?=C9mile_Zola?= <emile@zola.example>
To: =?UTF-8?B?Wm/DqSBEdXJhbmQ=?= <zoe@hopital.example>
Subject: =?UTF-8?Q?Compte-rendu_op=C3=A9ratoire?= du =?ISO-8859-1?Q?d=E9but?=

Texte.
`),
  },
  {
    name: 'UTF-8, Latin-1 and encoded-words in one field',
    raw: crlf(`From: "Z${u8('ö')}e M\xfcller =?UTF-8?Q?=C3=A9?=" <zoe@x.example>
To: ${u8('jérôme@hôpital.example')}, Ren\xe9 <rene@x.example>
Cc: =?UTF-8?B?QW5uw6k=?= <anne@x.example>, ${u8('Bérénice')} <b@x.example>
Subject: caf${u8('é')} (UTF-8), caf\xe9 (Latin-1), =?UTF-8?Q?caf=C3=A9?= (encod${u8('é')})
 et une ligne pli\xe9e
Message-ID: <mix-\xe9@x.example>

Texte.
`),
  },
  {
    name: '8-bit parameters',
    raw: crlf(`From: a@x.example
Subject: pieces jointes
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b8"

--b8
Content-Type: text/plain; charset=utf-8

Voir les pi${u8('è')}ces jointes.
--b8
Content-Type: application/pdf; name="r\xe9sultat.pdf"
Content-Disposition: attachment; filename="compte-rendu-${u8('été')}.pdf"
Content-Description: R\xe9sultats d'analyse ${u8('—')} ${u8('été')}
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--b8--
`),
  },
  {
    name: 'message/rfc822 with a Latin-1 header',
    raw: crlf(`From: a@x.example
Subject: transfert
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="m8"

--m8
Content-Type: message/rfc822

From: Fran\xe7oise <f@x.example>
Subject: ${u8('Résultat')} d'\xe9chographie
Content-Type: text/plain; name="\xe9cho.txt"

Texte.
--m8--
`),
  },
];

const ITEMS = 'ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]';
const NAMES = ['ENVELOPE', 'BODYSTRUCTURE', 'BODY[HEADER.FIELDS (SUBJECT FROM)]'];

/** An argument without the form of its strings (quoted, literal): only their bytes are compared. */
type Plain = { t: 'atom'; v: string } | { t: 'str'; v: string } | { t: 'nil' } | { t: 'list'; v: Plain[] };
function plain(a: ImapArg | undefined): Plain | undefined {
  if (a === undefined) return undefined;
  if (a.type === 'nil') return { t: 'nil' };
  if (a.type === 'atom') return { t: 'atom', v: a.value };
  if (a.type === 'string') return { t: 'str', v: a.value };
  return { t: 'list', v: a.items.map((x) => plain(x)!) };
}

/** The strings of an argument, depth first ("binary" strings). */
function strings(a: ImapArg | undefined, out: string[] = []): string[] {
  if (a?.type === 'string') out.push(a.value);
  if (a?.type === 'list') for (const x of a.items) strings(x, out);
  return out;
}

async function appendAll(c: BytesConnection, mailbox: string): Promise<void> {
  await c.cmd(`CREATE ${mailbox}`);
  for (const m of CORPUS) await c.cmd(`APPEND ${mailbox} {${m.raw.length}+}\r\n`, m.raw);
}

describe('8-bit header strings and UTF8=ACCEPT (issue 15, RFC 6855)', () => {
  const space = imapDemo();
  /** A logged-in IMAPS connection to operator A as user `user`. */
  const caducee = async (user = 0) => {
    const c = space.track(await connectBytes(space.demo.operators[0].ports.imaps, space.ca));
    const u = space.layout.operators[0].users[user]!;
    await c.cmd(`LOGIN ${u.login} "${u.appPassword}"`);
    return c;
  };

  describe('against Dovecot', { skip: requirePeer('dovecot') ?? requirePeer('openssl') }, () => {
    let peer: DovecotPeer;
    before(async () => {
      peer = await DovecotPeer.start();
    });
    after(async () => {
      await peer?.stop();
    });

    test('IMAP4rev1: ENVELOPE, BODYSTRUCTURE and HEADER.FIELDS carry the header bytes as Dovecot sends them', { timeout: 60_000 }, async () => {
      // Caducée: appended after ENABLE UTF8=ACCEPT (RFC 6855 §4), fetched by an IMAP4rev1 session
      const w = await caducee();
      await w.cmd('ENABLE UTF8=ACCEPT');
      await appendAll(w, 'cmp8');
      const r = await caducee();
      await r.cmd('SELECT cmp8');
      const mine = fetchReplies((await r.cmd(`FETCH 1:${CORPUS.length} (${ITEMS})`)).toString('latin1'));

      const d = space.track(await connectBytes(peer.port, peer.certPem));
      await d.cmd(`LOGIN claire "${peer.password}"`);
      await appendAll(d, 'cmp8');
      await d.cmd('SELECT cmp8');
      const theirs = fetchReplies((await d.cmd(`FETCH 1:${CORPUS.length} (${ITEMS})`)).toString('latin1'));

      const problems: string[] = [];
      CORPUS.forEach((m, i) => {
        for (const item of NAMES) {
          const a = JSON.stringify(plain(mine.get(i + 1)?.get(item)));
          const b = JSON.stringify(plain(theirs.get(i + 1)?.get(item)));
          if (a === undefined || a !== b) problems.push(`${m.name} ${item}:\n  dovecot ${b}\n  caducee ${a}`);
        }
      });
      assert.deepEqual(problems, []);

      // The bytes themselves, whatever Dovecot does: no charset guessing in an IMAP4rev1 session.
      const env = (n: number) => strings(mine.get(n)?.get('ENVELOPE'));
      assert.ok(env(1).includes(u8('Compte-rendu opératoire — été')), 'valid UTF-8 as stored');
      assert.ok(env(2).includes("Compte-rendu op\xe9ratoire d'\xe9t\xe9"), 'Latin-1 as stored (0xE9, not C3 A9)');
      assert.ok(env(2).includes('\xc9mile Zola'));
      assert.ok(env(3).includes('=?UTF-8?Q?Compte-rendu_op=C3=A9ratoire?= du =?ISO-8859-1?Q?d=E9but?='), 'encoded-words left encoded');
      assert.ok(env(4).includes(`caf${u8('é')} (UTF-8), caf\xe9 (Latin-1), =?UTF-8?Q?caf=C3=A9?= (encod${u8('é')}) et une ligne pli\xe9e`), 'the mixed Subject as stored, unfolded');
      assert.ok(env(4).includes(u8('jérôme')) && env(4).includes(u8('hôpital.example')), 'UTF-8 local part and domain (RFC 6532)');
      const bs5 = strings(mine.get(5)?.get('BODYSTRUCTURE'));
      assert.ok(bs5.includes('r\xe9sultat.pdf') && bs5.includes(`compte-rendu-${u8('été')}.pdf`), '8-bit parameters as stored');
      assert.ok(strings(mine.get(6)?.get('BODYSTRUCTURE')).includes(`${u8('Résultat')} d'\xe9chographie`), 'the encapsulated message too');
      assert.equal(strings(mine.get(2)?.get('BODY[HEADER.FIELDS (SUBJECT FROM)]'))[0], "From: \xc9mile Zola <emile@zola.example>\r\nSubject: Compte-rendu op\xe9ratoire d'\xe9t\xe9\r\n\r\n");
      // RFC 3501 §4.3: 8-bit characters only in literals, never in a quoted string
      const raw = mine.get(2)?.get('ENVELOPE');
      const forms = (a: ImapArg | undefined, out: string[] = []): string[] => {
        if (a?.type === 'string' && /[\x80-\xff]/.test(a.value)) out.push(a.form);
        if (a?.type === 'list') for (const x of a.items) forms(x, out);
        return out;
      };
      assert.ok(forms(raw).length > 0 && forms(raw).every((f) => f === 'literal'), `8-bit strings as literals: ${forms(raw)}`);
    });
  });

  describe('Caducée: the session switch', () => {
    before(async () => {
      const w = await caducee(1);
      await w.cmd('ENABLE UTF8=ACCEPT');
      await appendAll(w, 'sw8');
    });

    test('UTF8=ACCEPT is announced once authenticated; ENABLE is refused before', async () => {
      const c = space.track(await connectBytes(space.demo.operators[0].ports.imaps, space.ca));
      assert.equal((await c.exchange('ENABLE UTF8=ACCEPT')).status, 'BAD');
      // no UTF-8 in a quoted string before ENABLE (RFC 6855 §3): the server's name as a literal
      assert.ok((await c.cmd('ID NIL')).toString('utf8').includes('"name" {8}\r\nCaducée "vendor"'));
      const u = space.layout.operators[0].users[1]!;
      const login = (await c.cmd(`LOGIN ${u.login} "${u.appPassword}"`)).toString('latin1');
      assert.match(login, /\[CAPABILITY [^\]]* UTF8=ACCEPT\b/);
      assert.match((await c.cmd('ENABLE UTF8=ACCEPT')).toString('latin1'), /^\* ENABLED UTF8=ACCEPT\r\n/m);
      assert.ok((await c.cmd('ID NIL')).toString('utf8').includes('("name" "Caducée" "vendor" "Caducée"'));
      // once only
      assert.match((await c.cmd('ENABLE UTF8=ACCEPT')).toString('latin1'), /^\* ENABLED\r\n/m);
    });

    for (const enable of ['UTF8=ACCEPT', 'IMAP4rev2']) {
      test(`after ENABLE ${enable}: header strings are UTF-8, quoted; bytes that are not UTF-8 as Latin-1 characters`, async () => {
        const c = await caducee(1);
        await c.cmd(`ENABLE ${enable}`);
        await c.cmd('SELECT sw8');
        const out = await c.cmd(`FETCH 1:${CORPUS.length} (ENVELOPE BODYSTRUCTURE)`);
        const untagged = out.subarray(0, out.lastIndexOf('\r\nt') + 2);
        assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(untagged), 'the responses are valid UTF-8');
        const text = untagged.toString('utf8');
        assert.ok(!/\{\d+\}\r\n/.test(text), 'no literal: every header string is quotable once UTF-8');
        assert.ok(text.includes('"Compte-rendu opératoire — été"'));
        assert.ok(text.includes(`"Compte-rendu opératoire d'été"`), 'Latin-1 bytes as the characters they stand for');
        assert.ok(text.includes('"café (UTF-8), café (Latin-1), =?UTF-8?Q?caf=C3=A9?= (encodé) et une ligne pliée"'), 'the mixed Subject: valid UTF-8 kept, Latin-1 bytes converted');
        assert.ok(text.includes('"jérôme" "hôpital.example"'));
        assert.ok(text.includes('"résultat.pdf"') && text.includes('"compte-rendu-été.pdf"'));
        assert.ok(text.includes(`"Résultat d'échographie"`));
        // HEADER.FIELDS is message content: the stored bytes, whatever the session
        const hf = await c.cmd('FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])');
        assert.ok(hf.toString('latin1').includes("Subject: Compte-rendu op\xe9ratoire d'\xe9t\xe9\r\n"));
      });
    }

    test('mailbox names: UTF-8 after ENABLE UTF8=ACCEPT, modified UTF-7 otherwise (RFC 6855 §3)', async () => {
      const c = await caducee(1);
      assert.equal((await c.exchange(`CREATE "${u8('Résultats')}"`)).status, 'BAD', '8-bit in a quoted string before ENABLE');
      await c.cmd('ENABLE UTF8=ACCEPT');
      await c.cmd(`CREATE "${u8('Résultats')}"`);
      const list = (await c.cmd('LIST "" "R*"')).toString('utf8');
      assert.ok(list.includes('"/" "Résultats"\r\n'), list);
      await c.cmd(`SELECT "${u8('Résultats')}"`);
      const rev1 = await caducee(1);
      assert.ok((await rev1.cmd('LIST "" "R*"')).toString('latin1').includes('"/" R&AOk-sultats\r\n'));
    });

    test('APPEND: 8-bit header bytes refused without ENABLE UTF8=ACCEPT (RFC 6855 §4); the UTF8 data item', async () => {
      const c = await caducee(1);
      await c.cmd('CREATE ap8');
      const latin1 = CORPUS[1].raw;
      const r = await c.exchange(`APPEND ap8 {${latin1.length}+}\r\n`, latin1);
      assert.equal(r.status, 'NO', r.text);
      assert.match(r.text, /ENABLE UTF8=ACCEPT/);
      const r2 = await c.exchange(`APPEND ap8 UTF8 (~{${latin1.length}+}\r\n`, latin1, ')');
      assert.equal(r2.status, 'NO', 'the UTF8 item does not replace the ENABLE');
      // 8-bit only in the body, or in a MULTIAPPEND: the same rule, all or nothing
      const body8 = crlf('Subject: plain\n\ncorps accentu\xe9\n');
      await c.cmd(`APPEND ap8 {${body8.length}+}\r\n`, body8);
      const multi = await c.exchange(`APPEND ap8 {${body8.length}+}\r\n`, body8, ` {${latin1.length}+}\r\n`, latin1);
      assert.equal(multi.status, 'NO');
      assert.match((await c.cmd('STATUS ap8 (MESSAGES)')).toString('latin1'), /MESSAGES 1\)/);

      await c.cmd('ENABLE UTF8=ACCEPT');
      await c.cmd(`APPEND ap8 {${latin1.length}+}\r\n`, latin1);
      const utf8 = CORPUS[0].raw;
      const ok = (await c.cmd(`APPEND ap8 (\\Seen) UTF8 (~{${utf8.length}+}\r\n`, utf8, ')')).toString('latin1');
      assert.match(ok, /APPENDUID \d+ 3\]/);
      await c.cmd('SELECT ap8');
      const back = (await c.cmd('FETCH 3 (FLAGS BODY.PEEK[])')).toString('latin1');
      assert.ok(back.includes(utf8.toString('latin1')), 'stored as sent');
      assert.match(back, /\\Seen/);
    });

    test('SEARCH and SORT read the UTF-8 sequences of a field that also holds Latin-1 bytes as UTF-8: header index, reading, sort key', async () => {
      const c = await caducee(1);
      await c.cmd('ENABLE UTF8=ACCEPT');
      await c.cmd('CREATE mix8');
      // One Subject: "Ébauche" in UTF-8, "plié" in Latin-1 (so the field as a whole is not UTF-8).
      const mixed = crlf(`From: a@x.example\nSubject: ${u8('Ébauche')} du compte rendu pli\xe9\n\nTexte.\n`);
      const plain = crlf('From: b@x.example\nSubject: Bravo\n\nTexte.\n');
      await c.cmd(`APPEND mix8 {${mixed.length}+}\r\n`, mixed);
      await c.cmd(`APPEND mix8 {${plain.length}+}\r\n`, plain);
      await c.cmd('SELECT mix8');
      const numbers = async (cmd: string, resp: string) => new RegExp(`^\\* ${resp}([\\d ]*)\r$`, 'm').exec((await c.cmd(cmd)).toString('latin1'))?.[1].trim();
      // SUBJECT is answered by the header index, TEXT by reading the message: both see "Ébauche"
      // (read as Latin-1, the field gave "Ã\x89bauche") and still "plié".
      assert.equal(await numbers(`SEARCH SUBJECT "${u8('ébauche')}"`, 'SEARCH'), '1');
      assert.equal(await numbers(`SEARCH TEXT "${u8('ébauche')}"`, 'SEARCH'), '1');
      assert.equal(await numbers(`SEARCH SUBJECT "${u8('compte rendu plié')}"`, 'SEARCH'), '1');
      // SORT's subject key (RFC 5256 §2.1): "ÉBAUCHE…" sorts after "BRAVO" (read as Latin-1 it began
      // with "Ã", before).
      assert.equal(await numbers('SORT (SUBJECT) UTF-8 ALL', 'SORT'), '2 1');
    });

    test('SEARCH: a CHARSET after ENABLE UTF8=ACCEPT is BAD (RFC 6855 §3); UTF-8 quoted search strings work', async () => {
      const c = await caducee(1);
      await c.cmd('SELECT sw8');
      assert.match((await c.cmd('SEARCH CHARSET UTF-8 SUBJECT "x"')).toString('latin1'), /^\* SEARCH/m);
      await c.cmd('ENABLE UTF8=ACCEPT');
      assert.equal((await c.exchange('SEARCH CHARSET UTF-8 SUBJECT "x"')).status, 'BAD');
      const found = (await c.cmd(`SEARCH SUBJECT "${u8('opératoire')}"`)).toString('latin1');
      assert.match(found, /^\* SEARCH 1 2 3\r\n/m);
    });
  });
});
