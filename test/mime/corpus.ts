// Test support (src/mime/mime.test.ts, test/mime/dovecot-diff.test.ts): hand-made messages
// covering the MIME cases the module must get exactly right, as raw bytes. `crlf()` turns "\n" into "\r\n".

export function crlf(s: string): Buffer {
  return Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'latin1');
}
export function lf(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}
export function utf8crlf(s: string): Buffer {
  return Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'utf8');
}

export const CORPUS: { name: string; raw: Buffer }[] = [
  {
    name: 'nested multipart',
    raw: utf8crlf(`From: "Dr. Jean Dupont" <jean.dupont@hopital.example>
To: a@b.example, "Martin, Claire" <claire@c.example>
Subject: Résultats
Date: Mon, 3 Feb 2025 10:20:30 +0100
Message-ID: <abc.123@hopital.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

This is a multi-part message in MIME format.
--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Bonjour =C3=A9t=C3=A9
--inner
Content-Type: text/html; charset="utf-8"

<p>Bonjour</p>
--inner--

--outer
Content-Type: application/pdf; name="cr.pdf"
Content-Disposition: attachment; filename="cr.pdf"; size=12
Content-Transfer-Encoding: base64
Content-ID: <part1@x>
Content-Description: Compte
 rendu
Content-Language: fr, en-GB
Content-Location: http://example/cr.pdf
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==

JVBERi0xLjQK
--outer--
epilogue text
`),
  },
  {
    name: 'message/rfc822 in multipart',
    raw: crlf(`From: a@b.example
Subject: fwd
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=XX

--XX
Content-Type: text/plain

see attached
--XX
Content-Type: message/rfc822; name=orig.eml
Content-Disposition: inline

From: Orig <orig@x.example>
To: group: m1@x.example, m2@x.example;, "Q \\"quoted\\" name" <q@x.example>
Cc: undisclosed-recipients:;
Subject: =?utf-8?q?caf=C3=A9?=
Date: 1 Jan 99 12:00 GMT
In-Reply-To: <prev@x.example> (comment)
Message-Id: <orig@x.example>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=YY

--YY
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: 8bit

caf\xe9
--YY--
--XX--
`),
  },
  {
    name: 'message/rfc822 without MIME in the inner message',
    raw: crlf(`Content-Type: message/rfc822

Subject: inner
Content-Type: multipart/mixed; boundary=zz

--zz

a
--zz--
`),
  },
  {
    name: 'multipart/digest',
    raw: crlf(`MIME-Version: 1.0
Content-Type: multipart/digest; boundary=d

--d

Subject: one

body one
--d
Content-Type: text/plain

not a message
--d
Content-Type: message/rfc822

Subject: three

body three
--d--
`),
  },
  { name: 'missing closing boundary', raw: crlf(`Content-Type: multipart/mixed; boundary=a\n\n--a\n\npart one\n--a\nContent-Type: text/plain\n\npart two, no end\n`) },
  {
    name: 'boundary prefixes and garbage boundary lines',
    raw: crlf(`Content-Type: multipart/mixed; boundary="b"

--bx
not a boundary line? (prefix match: it is one)
--b
Content-Type: multipart/mixed; boundary="bb"

--bb
inner 1
--b
outer boundary closes inner without its end
--b--trailing garbage
--b
after the end: epilogue
`),
  },
  { name: 'boundary in header', raw: crlf(`Content-Type: multipart/mixed; boundary=q\n\n--q\nContent-Type: text/plain\n--q\nX: y\n\nz\n--q--\n`) },
  { name: 'no boundary parameter', raw: crlf(`Content-Type: multipart/mixed\n\n--x\n\nhello\n--x--\n`) },
  { name: 'empty multipart', raw: crlf(`Content-Type: multipart/mixed; boundary=e\n\npreamble only\n`) },
  { name: 'multipart ends at EOF right after a boundary', raw: crlf(`Content-Type: multipart/mixed; boundary=e\n\n--e\n\nx\n--e\n`) },
  { name: 'boundary at end without newline', raw: Buffer.from('Content-Type: multipart/mixed; boundary=e\r\n\r\n--e\r\n\r\nx\r\n--e--', 'latin1') },
  {
    name: 'LF-only message',
    raw: lf(`From: lf@x.example
Subject: LF only
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="L"

--L
Content-Type: text/plain

line 1
line 2

--L
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: base64

aGVsbG8K
--L--
`),
  },
  { name: 'mixed CRLF and LF', raw: Buffer.from('Subject: mixed\r\nX-A: 1\n\r\nline\nline2\r\n\n', 'latin1') },
  {
    name: '8-bit UTF-8 headers',
    raw: utf8crlf(`From: Émile Zola <emile@zola.example>
To: Zoé <zoe@x.example>
Subject: Compte-rendu opératoire — été
Content-Type: text/plain; charset=utf-8; name="rapport-é.txt"
Content-Disposition: attachment; filename="rapport-é.txt"
MIME-Version: 1.0

Texte accentué.
`),
  },
  {
    name: '8-bit latin1 headers',
    raw: crlf(`From: \xc9mile <emile@zola.example>
Subject: r\xe9sum\xe9

corps
`),
  },
  {
    name: 'RFC 2231 parameters',
    raw: crlf(`MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=r

--r
Content-Type: application/octet-stream;
 name*0="long";
 name*1="name.txt"
Content-Disposition: attachment;
 filename*0*=utf-8''%C3%A9t%C3%A9;
 filename*1="-suite.txt"

x
--r
Content-Type: text/plain; title*=us-ascii'en'This%20is; title*1=odd; FORMAT=flowed
Content-Disposition: inline; filename*2=c; filename*0=a

y
--r
Content-Type: text/plain; charset="utf-8"; name==?utf-8?b?w6l0w6k=?=; x=y;; z
Content-Disposition: attachment; filename="a\\"b"; creation-date="Tue, 1 Jan 2002 10:00:00 +0000"

z
--r--
`),
  },
  {
    name: 'addresses',
    raw: crlf(`From: user@domain (Real Name), <@route1,@route2:r@d.example>, "" <e@d.example>
Sender:
Reply-To: broken <a@b
To: a.b.@c.example, .x@y.example, plain, "quoted@local"@d.example, Name Only
Cc: group: ;, empty:;,=?utf-8?q?Gr=C3=BCppe?=: g@x.example;
Bcc: <>, @nodomain, x@[1.2.3.4], y@ex ample . org
Subject:  spaced   out  subject\t
Date: Tue, 31 Dec 2024 23:59:60 -1130
In-Reply-To: a <b@c> d
Message-ID:
 <folded@id>

x
`),
  },
  {
    name: 'duplicate headers',
    raw: crlf(`Subject: first
Subject: second
From: a@x.example
From: b@x.example
Date: Wed, 1 Jan 2020 00:00:00 +0000
Date: Thu, 2 Jan 2020 00:00:00 +0000
Message-ID: <one@x>
Message-ID: <two@x>
Content-Type: text/plain; charset=a
Content-Type: text/html; charset=b
Content-Transfer-Encoding: base64
Content-Transfer-Encoding: 7bit

eA==
`),
  },
  { name: 'no header at all', raw: crlf(`\nbody only\n`) },
  { name: 'header only, no blank line', raw: crlf(`Subject: only a header\nFrom: x@y.example\n`) },
  { name: 'header only without final newline', raw: Buffer.from('Subject: x', 'latin1') },
  { name: 'empty message', raw: Buffer.alloc(0) },
  {
    name: 'header oddities',
    raw: crlf(`Subject : colon after space
X-No-Colon line
 continued no colon
X-Empty:
X-Tab:\tvalue
Content-Type: text/plain
 ; charset=us-ascii
 ; format=flowed
From:
 folded@example.org

body
`),
  },
  { name: 'NUL bytes', raw: Buffer.from('Subject: a\x00b\r\nFrom: n\x00l@x.example\r\n\r\nbody \x00 nul\r\n', 'latin1') },
  {
    name: 'transfer encodings',
    raw: crlf(`MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=t

--t
Content-Transfer-Encoding: QUOTED-PRINTABLE

soft=
break =3D=20
--t
Content-Transfer-Encoding: Base64

YWJj
ZA==
--t
Content-Transfer-Encoding: 8bit
Content-Type: text/plain; charset=iso-8859-1

\xe9t\xe9
--t
Content-Transfer-Encoding: binary

bin
--t--
`),
  },
  { name: 'unknown transfer encoding', raw: crlf(`MIME-Version: 1.0\nContent-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 x\n`) },
  { name: 'CTE without MIME-Version is ignored', raw: crlf(`Content-Transfer-Encoding: base64\nContent-Disposition: attachment\n\naGk=\n`) },
  {
    name: 'content-type oddities',
    raw: crlf(`MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=c

--c
Content-Type: text

no subtype
--c
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII

upper case
--c
Content-Type: text/plain garbage

strict parse failure
--c
Content-Type: ; charset=x

empty type
--c
Content-Type: message/global

Subject: global

inner
--c
Content-Type: Message/RFC822

Subject: upper rfc822

inner2
--c
Content-Type: image/png
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--c--
`),
  },
  {
    name: 'multipart/report with delivery-status',
    raw: crlf(`From: MAILER-DAEMON@mx.example
To: user@x.example
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="DSN.1"

--DSN.1
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

The mail could not be delivered.

--DSN.1
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example

Final-Recipient: rfc822; nobody@y.example
Action: failed
Status: 5.1.1

--DSN.1
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: user@x.example
Subject: hello

--DSN.1--
`),
  },
  {
    name: 'subjects for SORT',
    raw: crlf(`Subject: Re: [liste] Fwd: RE: [fwd: Compte rendu] (fwd)\nFrom: "=?iso-8859-1?q?=C9lise?=" <e@x.example>\nTo: =?utf-8?b?w4l2YQ==?= <eva@x.example>\n\nx\n`),
  },
  { name: 'long line', raw: crlf(`Subject: long\n\n${'x'.repeat(20000)}\n`) },
  {
    name: 'deep nesting',
    raw: crlf(
      Array.from({ length: 8 }, (_, i) => `Content-Type: multipart/mixed; boundary=n${i}\n\n--n${i}\n`).join('') +
        'Content-Type: text/plain\n\ndeep\n' +
        Array.from({ length: 8 }, (_, i) => `--n${7 - i}--\n`).join(''),
    ),
  },
];

/** Deterministic pseudo-random messages with tangled MIME structure (for the Dovecot diff). */
export function randomCorpus(count: number, seed = 1): { name: string; raw: Buffer }[] {
  let x = seed >>> 0 || 1;
  const rnd = (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
  const pick = <T>(a: T[]): T => a[rnd(a.length)];
  const boundaries = ['a', 'ab', 'a-b', 'b', '=_x', 'a b', 'z'];
  const headerPool = [
    'From: "A, B" <a@b.example>',
    'To: g: x@y.example, z@w.example;',
    'Subject: Re: [x] test =?utf-8?q?=C3=A9?=',
    'Cc: c@d.example (C)',
    'Date: Fri, 13 Mar 2020 13:13:13 +0100',
    'Message-ID: <m@x>',
    'X-Junk: --a',
    'Content-Description: d',
    'Content-ID: <i@x>',
    'Content-Disposition: attachment; filename=f.txt',
    'Content-Language: fr',
    'Content-Transfer-Encoding: quoted-printable',
    'Content-Transfer-Encoding: base64',
    'From: <@r1,@r2:x@y.example>, "q\\"x" <q@y.example>, bad@, @, <>',
    'To: x (comment (nested)) @ y . example, ";"@z.example',
    'Cc: =?iso-8859-1?q?Andr=E9?= <andre@x.example>, undisclosed:;',
    'Bcc: a@b.example\n\t(continued), c@d.example',
    'Subject: Fwd: Re:  [tag]   (fwd)\n  folded',
    'Subject: =?utf-8?b?w6l0w6k=?= =?utf-8?q?_r=C3=A9sum=C3=A9?=',
    'Date: 5 Jan 21 01:02 PST',
    'Date: Mon, 32 Foo 2020 25:61:61 +9999',
    'Date: Tue, 1 Feb 2022 10:00:00 -0330 (NDT)',
    'In-Reply-To: <a@b> <c@d>',
    'References: <r1@x>\n <r2@x> junk <r3 @ x>',
    'Message-ID: <"quoted local"@x>',
    'Content-Type: text/plain; charset*0=utf; charset*1=-8',
    'Content-Type: application/x-y; name*=utf-8\'fr\'%C3%A9t%C3%A9.pdf',
    'Content-Type: text/html; charset="iso-8859-1"; format=flowed; delsp=yes',
    'Content-Type: multipart/alternative; boundary=""',
    'Content-Disposition: inline; filename*0="a"; filename*1="b"; filename*3="d"',
    'Content-Disposition: ATTACHMENT',
    'Content-Language: en-US (English), fr',
    'Content-Location:\n http://x.example/\n a',
    'Content-MD5: abc==',
    'X-No-Colon-Line',
    'X-8bit: caf\xe9',
    'X-Folded: a\n\tb\n c',
    'Content-Type: message/partial; id="x"; number=1',
  ];
  const bodyPool = ['hello', 'aGVsbG8=', 'x=3Dy=\n', '', '--a', '--ab--', '-- a', 'text\n\n', '--b\n', 'bad=ZZqp', 'aGVsbG8', 'caf\xe9 \xe9t\xe9', '=\n', 'a \t\n'];

  const gen = (depth: number): string => {
    const hdrs: string[] = [];
    for (let i = rnd(4); i > 0; i--) hdrs.push(pick(headerPool));
    const kind = depth > 3 ? 3 : rnd(6);
    let body = '';
    if (kind === 0 || kind === 1) {
      const b = pick(boundaries);
      hdrs.push(`Content-Type: multipart/${kind === 0 ? 'mixed' : 'digest'}; boundary="${b}"`);
      if (rnd(3) === 0) hdrs.push('MIME-Version: 1.0');
      if (rnd(2)) body += 'preamble\n';
      const n = rnd(4);
      for (let i = 0; i < n; i++) {
        body += `--${b}${rnd(5) === 0 ? ' junk' : ''}\n`;
        body += gen(depth + 1);
        body += '\n';
      }
      const end = rnd(5);
      if (end < 3) body += `--${b}--\n`;
      if (end === 0) body += 'epilogue\n';
    } else if (kind === 2) {
      hdrs.push(rnd(2) ? 'Content-Type: message/rfc822' : 'Content-Type: MESSAGE/RFC822; x=y');
      body += gen(depth + 1);
    } else {
      if (rnd(2)) hdrs.push(pick(['Content-Type: text/plain; charset=utf-8', 'Content-Type: application/octet-stream', 'Content-Type: text']));
      body += pick(bodyPool) + '\n' + (rnd(2) ? pick(bodyPool) + '\n' : '');
    }
    return hdrs.join('\n') + (rnd(8) === 0 ? '\n' : '\n\n') + body;
  };

  const out: { name: string; raw: Buffer }[] = [];
  for (let i = 0; i < count; i++) {
    let s = gen(0);
    const eol = rnd(4);
    let raw = eol === 0 ? lf(s) : crlf(s);
    if (eol === 1) raw = Buffer.from(s.replace(/\n/g, () => (rnd(2) ? '\r\n' : '\n')), 'latin1');
    if (rnd(6) === 0 && raw.length > 10) raw = raw.subarray(0, raw.length - 1 - rnd(10));
    if (raw.length === 0) raw = crlf('Subject: empty\n');
    out.push({ name: `random #${i}`, raw });
  }
  return out;
}
