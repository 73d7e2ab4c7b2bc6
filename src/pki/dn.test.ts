import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DnError, dnEquals, formatDn, normalizeDn, parseDn, prepareValue } from './dn.js';

describe('parseDn', () => {
  it('parses the DN form used by the ANS list', () => {
    assert.deepEqual(parseDn('CN=medimail-asip.mipih.fr,OU=318310021300028,O=GIP MIPIH,ST=Haute-Garonne (31),C=FR'), [
      [{ type: 'CN', value: 'medimail-asip.mipih.fr' }],
      [{ type: 'OU', value: '318310021300028' }],
      [{ type: 'O', value: 'GIP MIPIH' }],
      [{ type: 'ST', value: 'Haute-Garonne (31)' }],
      [{ type: 'C', value: 'FR' }],
    ]);
  });

  it('returns no RDN for the empty DN (RFC 4514 §3)', () => {
    assert.deepEqual(parseDn(''), []);
    assert.deepEqual(parseDn('   '), []);
  });

  it('accepts white space around "," "=" "+" and drops unescaped trailing spaces', () => {
    assert.deepEqual(parseDn(' CN = a b ,  O=x + OU= y  '), [
      [{ type: 'CN', value: 'a b' }],
      [
        { type: 'O', value: 'x' },
        { type: 'OU', value: 'y' },
      ],
    ]);
  });

  it('handles RFC 4514 §3 escapes: specials, hex pairs, UTF-8 sequences, escaped spaces', () => {
    assert.deepEqual(parseDn('CN=a\\,b\\+c\\"d\\\\e\\;f\\<g\\>h\\=i'), [[{ type: 'CN', value: 'a,b+c"d\\e;f<g>h=i' }]]);
    assert.deepEqual(parseDn('CN=a\\2Cb\\2cc'), [[{ type: 'CN', value: 'a,b,c' }]]);
    assert.deepEqual(parseDn('ST=Puy-de-D\\C3\\B4me'), [[{ type: 'ST', value: 'Puy-de-Dôme' }]]);
    assert.deepEqual(parseDn('CN=\\ lead\\ ,O=\\#x'), [[{ type: 'CN', value: ' lead ' }], [{ type: 'O', value: '#x' }]]);
  });

  it('accepts RFC 2253 quoted values and ";" separators', () => {
    assert.deepEqual(parseDn('O="C.H. DE  CADILLAC, SITE 2" ; C=FR'), [[{ type: 'O', value: 'C.H. DE  CADILLAC, SITE 2' }], [{ type: 'C', value: 'FR' }]]);
    assert.deepEqual(parseDn('O="say \\"hi\\""'), [[{ type: 'O', value: 'say "hi"' }]]);
  });

  it('keeps a double quote inside an unquoted value as a character (as written in the ANS list)', () => {
    assert.deepEqual(parseDn('O=CRLCC "PAUL STRAUSS",C=FR')[0], [{ type: 'O', value: 'CRLCC "PAUL STRAUSS"' }]);
  });

  it('maps OIDs and long names to short names, case-insensitively', () => {
    const types = parseDn(
      '2.5.4.3=a,OID.2.5.4.11=b,organizationName=c,l=d,stateOrProvinceName=e,countryName=FR,2.5.4.5=f,emailAddress=g,1.2.840.113549.1.9.1=h,givenName=i,2.5.4.4=j,0.9.2342.19200300.100.1.25=k,userid=l,1.2.3.4=m,foo=n',
    ).map((r) => r[0]!.type);
    assert.deepEqual(types, ['CN', 'OU', 'O', 'L', 'ST', 'C', 'SERIALNUMBER', 'E', 'E', 'GN', 'SN', 'DC', 'UID', '1.2.3.4', 'FOO']);
  });

  it('decodes "#" BER character strings and keeps other BER values as hex (RFC 4514 §2.4)', () => {
    assert.deepEqual(parseDn('CN=#0c03666f6f'), [[{ type: 'CN', value: 'foo' }]]); // UTF8String "foo"
    assert.deepEqual(parseDn('C=#13024652'), [[{ type: 'C', value: 'FR' }]]); // PrintableString "FR"
    assert.deepEqual(parseDn('1.2.3.4=#0401FF'), [[{ type: '1.2.3.4', value: '#0401ff', binary: true }]]);
  });

  for (const bad of [
    'CN',
    'CN=a,',
    ',CN=a',
    'CN=a,,O=b',
    '=a',
    'C N=a',
    'CN=a\\',
    'CN=a\\x',
    'CN=\\C3',
    'CN="abc',
    'CN="a"b',
    'CN=#zz',
    'CN=#123',
    'CN=a+',
    'CN=a\u0000b',
    'C_N=a',
  ]) {
    it(`rejects ${JSON.stringify(bad)} with DnError`, () => {
      assert.throws(() => parseDn(bad), (err: unknown) => err instanceof DnError && err.message.includes('malformed DN'));
    });
  }
});

describe('dnEquals', () => {
  // Spellings found in the March 2025 national list for the same certificate.
  const same: [string, string][] = [
    [
      'CN=mailin.interop-mssante.apicrypt.org, OU=343975235300037, O=APICEM, ST=Nord (59), C=FR',
      'CN=mailin.interop-mssante.apicrypt.org,OU=343975235300037,O=APICEM,ST=Nord (59),C=FR',
    ],
    [
      'CN=mss.ch-cadillac.fr,OU=1330781295,O="C.H. DE  CADILLAC",ST=Gironde (33),C=FR',
      'CN=mss.ch-cadillac.fr,OU=1330781295,O=C.H. DE  CADILLAC,ST=Gironde (33),C=FR',
    ],
    ['CN=mss.chu-limoges.fr,O=C H U  DE  LIMOGES,C=FR', 'CN=mss.chu-limoges.fr,O=C H U DE LIMOGES,C=FR'],
    ['CN=smtp-1.mssante.adista.fr ,OU=332315971500305', 'CN=smtp-1.mssante.adista.fr,OU=332315971500305'],
    ['CN=MSSANTE.PROGINOV.FR,O=PROGINOV', 'cn=mssante.proginov.fr,o=Proginov'],
    ['CN=a;O=b', 'CN=a,O=b'],
    ['2.5.4.3=a,2.5.4.10=b', 'CN=a,O=b'],
    ['CN=a+OU=b,C=FR', 'OU=b + CN=a,C=FR'], // RFC 4514 §2.2: AVA order inside an RDN is not significant
    ['O=a\u00A0b', 'O=a b'], // RFC 4518 §2.2: NO-BREAK SPACE maps to SPACE
    ['CN=caf\\C3\\A9', 'CN=CAFÉ'],
    ['CN=#0c03666f6f', 'CN=FOO'],
  ];
  for (const [a, b] of same) {
    it(`${a}  ==  ${b}`, () => {
      assert.ok(dnEquals(a, b));
      assert.ok(dnEquals(b, a));
      assert.equal(normalizeDn(a), normalizeDn(b));
    });
  }

  const different: [string, string][] = [
    ['CN=mss.ch-cadillac.fr,O=C.H. DE CADILLAC', 'CN=mss.ch-cadillac.fr,O=C.H. DE CADILLA'],
    ['CN=smtp-1.mssante.adista.fr,C=FR', 'CN=smtp-2.mssante.adista.fr,C=FR'],
    ['CN=a,O=b', 'O=b,CN=a'], // RDN order matters
    ['CN=a,O=b', 'CN=a,O=b,C=FR'],
    ['CN=a,O=b', 'CN=a,OU=b'],
    ['CN=a+OU=b', 'CN=a,OU=b'],
    ['O=CENTRE HOSPITALIER "FRANCK-JOLY"', 'O=CENTRE HOSPITALIER FRANCK-JOLY'],
    ['O=ab', 'O=a b'],
    ['CN=e', 'CN=é'],
    ['CN=a', ''],
  ];
  for (const [a, b] of different) {
    it(`${a}  !=  ${b}`, () => {
      assert.equal(dnEquals(a, b), false);
      assert.notEqual(normalizeDn(a), normalizeDn(b));
    });
  }

  it('treats a malformed DN as equal to nothing, itself included', () => {
    assert.equal(dnEquals('CN=a,,O=b', 'CN=a,,O=b'), false);
    assert.equal(dnEquals('CN=a', 'CN=a\\'), false);
  });

  it('accepts parsed RDNs', () => {
    assert.ok(dnEquals(parseDn('CN=A,O=B'), 'cn=a, o=b'));
  });

  it('gives keys usable in a Map', () => {
    const m = new Map([[normalizeDn('CN=mss.esante-bfc.fr,OU=313002582800018,O=GIP GRADES BFC,ST=Doubs (25),C=FR'), 'bfc']]);
    assert.equal(m.get(normalizeDn('cn = MSS.esante-bfc.fr , ou=313002582800018, o="GIP  GRADES BFC", st=Doubs (25), c=fr')), 'bfc');
  });
});

describe('prepareValue (RFC 4518-style)', () => {
  it('trims, collapses spaces, folds case, normalizes NFKC, drops invisible characters', () => {
    assert.equal(prepareValue('  C H U   DE\tLIMOGES '), 'c h u de limoges');
    assert.equal(prepareValue('Stra\u00DFe'), 'strasse');
    assert.equal(prepareValue('\uFB01nance'), 'finance'); // "ﬁ" ligature
    assert.equal(prepareValue('ab\u200Bc\u00AD'), 'abc');
    assert.equal(prepareValue('Cafe\u0301'), 'café'); // combining accent composed
  });
});

describe('formatDn', () => {
  it('escapes per RFC 4514 §2.4 and round-trips', () => {
    const rdns = [
      [{ type: 'CN', value: ' #lead, "q" +;<>\\ trail ' }],
      [
        { type: 'O', value: 'Hôpital' },
        { type: 'OU', value: '' },
      ],
      [{ type: '1.2.3.4', value: '#0401ff', binary: true }],
    ];
    const s = formatDn(rdns);
    assert.equal(s, 'CN=\\ #lead\\, \\"q\\" \\+\\;\\<\\>\\\\ trail\\ ,O=Hôpital+OU=,1.2.3.4=#0401ff');
    assert.deepEqual(parseDn(s), rdns);
  });

  it('writes a canonical spelling that equals the original', () => {
    const orig = 'CN=mailin.interop-mssante.apicrypt.org, OU=343975235300037, O=APICEM, ST=Nord (59), C=FR';
    assert.equal(formatDn(parseDn(orig)), 'CN=mailin.interop-mssante.apicrypt.org,OU=343975235300037,O=APICEM,ST=Nord (59),C=FR');
    assert.ok(dnEquals(formatDn(parseDn(orig)), orig));
  });
});
