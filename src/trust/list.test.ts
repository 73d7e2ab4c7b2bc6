import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { XMLValidator } from 'fast-xml-parser';
import { buildTrustListXml, parseTrustList, TRUST_LIST_NAMESPACE, TrustListError, type TrustList } from './list.js';
import { trustDataDir } from '../../test/support/reference-data.js';

// Real copies of the ANS list (located by test/support/reference-data.ts; override with CADUCEE_TRUST_DATA).
const DATA = trustDataDir();
const MAY = `${DATA}/listeblanchemssante-2025-05.xml`;
const MARCH = `${DATA}/listeblanchemssante-2025-03-14.xml`;
const MAY_SHA256 = 'fcec0113fe62c11c551882adc97f9eb254665d41fc31404cf984a0672cd9b2b2'; // published beside the May copy
const skipNoData = existsSync(MAY) && existsSync(MARCH) ? false : `reference data not found in ${DATA}`;
// In CI nothing skips: the reference data is part of the CI checkout.
if (skipNoData && process.env['CI']) throw new Error(`${skipNoData}: CI must run the real-list tests`);

const MIPIH = 'CN=medimail-asip.mipih.fr,OU=318310021300028,O=GIP MIPIH,ST=Haute-Garonne (31),C=FR';

function doc(domaines: string, opts: { close?: boolean } = {}): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?><ListeBlancheMSSante xmlns="${TRUST_LIST_NAMESPACE}">\n` +
    `<DateDeGeneration>2025-03-13T14:54:10Z</DateDeGeneration>\n<ListeDomaines>\n${domaines}\n</ListeDomaines>\n` +
    (opts.close === false ? '' : '</ListeBlancheMSSante>\n')
  );
}
function domaine(nom: string, dn: string, extra = ''): string {
  return `<Domaine><Nom>${nom}</Nom><Description>d</Description><DNCertificatOperateur>${dn}</DNCertificatOperateur>${extra}<DateMAJ>2025-01-01T00:00:00Z</DateMAJ></Domaine>`;
}

function timed(bytes: Buffer): { list: TrustList; ms: number } {
  const t = performance.now();
  const list = parseTrustList(bytes);
  return { list, ms: performance.now() - t };
}

describe('the real ANS lists', { skip: skipNoData }, () => {
  it('May 2025 copy: published SHA-256, 619 entries, missing root tag repaired', (t) => {
    const bytes = readFileSync(MAY);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), MAY_SHA256);
    const { list, ms } = timed(bytes);
    t.diagnostic(`parsed ${list.entries.length} entries in ${ms.toFixed(1)} ms`);
    assert.equal(list.entries.length, 619);
    assert.equal(list.generatedAt, '2025-03-13T14:54:10Z');
    assert.equal(list.domains, 516);
    assert.equal(list.dns, 35);
    assert.match(list.warnings[0]!, /closing <\/ListeBlancheMSSante> tag was missing/);
    assert.deepEqual(list.entries[0], {
      domain: 'nddtestasmae.mssante.fr',
      operatorDn: MIPIH,
      description: 'BREST LA SAUVEGARDE',
      responsables: ['08 10  61 50 50, medimail.diffusion@mipih.fr'],
      support: '08 10  61 50 50, medimail.technique@mipih.fr',
      dateMaj: '2025-03-14T15:34:10Z',
    });
    assert.equal(list.entries.at(-1)!.domain, 'apta78.mssante.fr'); // as published, in order
    // Quirk of this copy: an entry updated after the list's generation date.
    assert.ok(list.warnings.some((w) => w.includes('later than <DateDeGeneration>') && w.includes('nddtestasmae')));
  });

  it('March 2025 national list: 6,554 entries, 5,002 domains, 392 DN spellings = 384 distinct DNs', (t) => {
    const { list, ms } = timed(readFileSync(MARCH));
    t.diagnostic(`parsed ${list.entries.length} entries in ${ms.toFixed(1)} ms`);
    assert.equal(list.entries.length, 6554);
    assert.equal(list.domains, 5002);
    // 392 distinct strings as written; 8 pairs of them are the same DN written with quotes,
    // doubled spaces or ", " separators, so 384 distinct distinguished names.
    assert.equal(list.dnSpellings, 392);
    assert.equal(list.dns, 384);
    assert.ok(list.warnings.some((w) => /^8 operator DNs are written in several ways/.test(w)));
    assert.ok(list.warnings.some((w) => /^28 entries repeat a \(domain, operator DN\) pair/.test(w)));
    assert.ok(list.warnings.some((w) => w.includes('"sessad@ase.ditepbeziers.mssante.fr" is not a valid DNS name')));
  });

  it('looks domains up case-insensitively and lists each operator DN once', () => {
    const list = parseTrustList(readFileSync(MARCH));
    assert.ok(list.isListed('adsea29.mssante.fr'));
    assert.ok(list.isListed('ADSEA29.MSSANTE.FR.'));
    assert.ok(list.isListed('uc-cmp.mssante.fr')); // published as UC-CMP.mssante.fr
    assert.equal(list.isListed('nope.mssante.fr'), false);
    assert.deepEqual(list.lookup('nope.mssante.fr'), []);
    assert.deepEqual(list.lookup('adsea29.mssante.fr'), [MIPIH]);
    // One domain under several operator certificates.
    assert.deepEqual(list.lookup('3c-ccconcorde.mssante.fr'), [
      'CN=smtp-1.sante.santnet.com,OU=341459958900028,O=DEDALUS HEALTHCARE FRANCE,ST=Gironde (33),C=FR',
      'CN=smtp-2.sante.santnet.com,OU=341459958900028,O=DEDALUS HEALTHCARE FRANCE,ST=Gironde (33),C=FR',
    ]);
    assert.equal(list.lookup('15-20.mssante.fr').length, 5);
    // Listed twice, once with O="C.H. DE  CADILLAC" and once unquoted: one DN, first spelling.
    assert.deepEqual(list.lookup('ch-cadillac.mssante.fr'), ['CN=mss.ch-cadillac.fr,OU=1330781295,O="C.H. DE  CADILLAC",ST=Gironde (33),C=FR']);
    // The Apicrypt gateway, listed with ", " separators.
    assert.ok(list.lookup('mssante.apicrypt.org').includes('CN=mailin.interop-mssante.apicrypt.org, OU=343975235300037, O=APICEM, ST=Nord (59), C=FR'));
  });

  it('checks a DN for a domain with DN semantics', () => {
    const list = parseTrustList(readFileSync(MARCH));
    const d = 'mssante.apicrypt.org';
    assert.ok(list.isDnListedFor(d, 'CN=mailin.interop-mssante.apicrypt.org,OU=343975235300037,O=APICEM,ST=Nord (59),C=FR'));
    assert.ok(list.isDnListedFor(d.toUpperCase(), 'cn=MAILIN.interop-mssante.apicrypt.org , ou=343975235300037,o=apicem,st=NORD (59),c=fr'));
    assert.equal(list.isDnListedFor(d, 'CN=evil.example,OU=343975235300037,O=APICEM,ST=Nord (59),C=FR'), false);
    assert.equal(list.isDnListedFor(d, 'C=FR,ST=Nord (59),O=APICEM,OU=343975235300037,CN=mailin.interop-mssante.apicrypt.org'), false);
    assert.equal(list.isDnListedFor(d, MIPIH), false); // listed, but for other domains
    assert.equal(list.isDnListedFor('adsea29.mssante.fr', MIPIH), true);
    assert.equal(list.isDnListedFor('nope.mssante.fr', MIPIH), false);
    assert.equal(list.isDnListedFor('adsea29.mssante.fr', 'CN=medimail-asip.mipih.fr,,C=FR'), false); // malformed
    assert.equal(list.isDnListedFor('adsea29.mssante.fr', ''), false);
    assert.ok(list.isDnListedFor('ch-cadillac.mssante.fr', 'CN=mss.ch-cadillac.fr,OU=1330781295,O=C.H. DE CADILLAC,ST=Gironde (33),C=FR'));
  });

  it('decodes XML entities and keeps odd contact fields as published', () => {
    const list = parseTrustList(readFileSync(MARCH));
    const e = list.entries.find((x) => x.domain === 'age-et-vie.mssante.fr')!;
    assert.equal(e.description, 'Domaine de messagerie MSSanté SSIAD AGE & VIE');
    const acsea = list.entries.find((x) => x.domain === 'acsea.mssante.fr')!;
    assert.deepEqual(acsea.responsables, ['06 04 59 42 38, jl.lyncee@normand-esante.fr</ResponsableContact']);
    assert.ok(list.warnings.some((w) => /^8 entries have contact fields containing escaped markup/.test(w)));
  });

  it('rebuilds the May list in the ANS format and reads it back identically', () => {
    const list = parseTrustList(readFileSync(MAY));
    const xml = buildTrustListXml(
      list.entries.map((e) => ({ ...e })),
      new Date(list.generatedAt!),
    );
    const again = parseTrustList(xml);
    assert.deepEqual(again.entries, list.entries);
    assert.equal(again.generatedAt, list.generatedAt);
    assert.equal(again.warnings.some((w) => w.includes('closing')), false);
  });
});

describe('parseTrustList on small documents', () => {
  it('reads a well-formed list without warnings', () => {
    const list = parseTrustList(doc(domaine('a.mssante.fr', MIPIH)));
    assert.deepEqual(list.warnings, []);
    assert.equal(list.entries.length, 1);
    assert.equal(list.generatedAt, '2025-03-13T14:54:10Z');
  });

  it('repairs only a missing root closing tag after </ListeDomaines>', () => {
    const list = parseTrustList(doc(domaine('a.mssante.fr', MIPIH), { close: false }) + '\n\n');
    assert.equal(list.entries.length, 1);
    assert.deepEqual(list.warnings, ['the closing </ListeBlancheMSSante> tag was missing after </ListeDomaines>; it was added']);
  });

  it('keeps every ResponsableContact of an entry', () => {
    const list = parseTrustList(
      doc(domaine('a.mssante.fr', MIPIH, '<ResponsableContact>01, a@x.fr</ResponsableContact><ResponsableContact>02, b@x.fr</ResponsableContact><SupportContact>s</SupportContact>')),
    );
    assert.deepEqual(list.entries[0]!.responsables, ['01, a@x.fr', '02, b@x.fr']);
    assert.equal(list.entries[0]!.support, 's');
  });

  it('skips an entry whose DN cannot be parsed, with a warning, and keeps the rest', () => {
    const list = parseTrustList(doc([domaine('a.mssante.fr', 'CN=x,,O=y'), domaine('b.mssante.fr', MIPIH), domaine('c.mssante.fr', '')].join('\n')));
    assert.deepEqual(
      list.entries.map((e) => e.domain),
      ['b.mssante.fr'],
    );
    assert.equal(list.isListed('a.mssante.fr'), false);
    assert.match(list.warnings[0]!, /^entry 1 \(a\.mssante\.fr\): operator DN "CN=x,,O=y" cannot be parsed .*; skipped$/);
    assert.match(list.warnings[1]!, /^entry 3 \(c\.mssante\.fr\): missing, empty or repeated <DNCertificatOperateur>; skipped$/);
  });

  it('warns about another namespace and about an empty list', () => {
    const list = parseTrustList('<ListeBlancheMSSante xmlns="urn:other"><ListeDomaines/></ListeBlancheMSSante>');
    assert.equal(list.entries.length, 0);
    assert.ok(list.warnings.some((w) => w.startsWith('root namespace is "urn:other"')));
    assert.ok(list.warnings.includes('the list has no usable <Domaine> entry'));
  });

  const may = skipNoData ? doc(domaine('a.mssante.fr', MIPIH), { close: false }) : readFileSync(MAY, 'utf8');
  const rejects: [string, string | Buffer, RegExp][] = [
    ['an empty input', '', /expected an XML document with root element <ListeBlancheMSSante>, found an empty input/],
    ['white space', ' \n\t', /found only white space/],
    ['an HTML error page', '<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head><body></body></html>', /found an HTML page \(title "503 Service Unavailable"\)/],
    ['JSON', '{"ListeDomaines": []}', /expected an XML document .* found JSON/],
    ['plain text', 'Not Found', /found text starting with "Not Found"/],
    ['another XML document', '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><entry/></feed>', /expected root element <ListeBlancheMSSante>, found <feed>/],
    ['two roots', '<ListeBlancheMSSante><ListeDomaines/></ListeBlancheMSSante><x/>', /expected root element <ListeBlancheMSSante>, found <ListeBlancheMSSante>, <x>/],
    ['a list cut in the middle of an entry', may.slice(0, may.lastIndexOf('<Nom>') + 10), /ends before <ListeBlancheMSSante> > <ListeDomaines> > <Domaine> > <Nom> are closed: the list is truncated/],
    ['a list cut after a complete </Domaine>', may.slice(0, may.lastIndexOf('</Domaine>') + 10), /ends before <ListeBlancheMSSante> > <ListeDomaines> are closed: the list is truncated/],
    ['a list cut inside a tag', may.slice(0, may.lastIndexOf('</Domaine>') + 5), /expected a well-formed XML document, found an XML error at line \d+, column \d+/],
    ['mismatched tags', '<ListeBlancheMSSante><ListeDomaines></ListeBlancheMSSante>', /expected a well-formed XML document, found an XML error at line 1/],
    ['a root without ListeDomaines', '<ListeBlancheMSSante><DateDeGeneration>x</DateDeGeneration></ListeBlancheMSSante>', /expected <ListeDomaines> inside <ListeBlancheMSSante>, found <DateDeGeneration>/],
    ['an empty root', '<ListeBlancheMSSante/>', /expected <ListeBlancheMSSante> to contain <ListeDomaines>/],
    ['gzip data', gzipSync(Buffer.from(may)), /expected an XML document, found gzip-compressed data/],
    ['bytes that are not UTF-8', Buffer.from([0x3c, 0x61, 0xff, 0x3e]), /found bytes that are not valid UTF-8/],
  ];
  for (const [what, input, message] of rejects) {
    it(`rejects ${what}`, () => {
      assert.throws(
        () => parseTrustList(input),
        (err: unknown) => {
          assert.ok(err instanceof TrustListError, `expected TrustListError, got ${String(err)}`);
          assert.match(err.message, message);
          return true;
        },
      );
    });
  }
});

describe('buildTrustListXml', () => {
  const entries = [
    {
      domain: 'ch-test.mssante.fr',
      operatorDn: 'CN=mss.ch-test.fr,OU=1330781295,O=C.H. \\"A & B\\" <TEST>,ST=Gironde (33),C=FR',
      description: 'Hôpital « A & B » <test>',
      responsables: ['01 02 03 04 05, a@ch-test.fr', "06 07, l'équipe@ch-test.fr"],
      support: 'support@ch-test.fr',
      dateMaj: '2025-02-01T10:00:00Z',
    },
    { domain: 'ch-test.mssante.fr', operatorDn: 'CN=mss2.ch-test.fr,O=CH TEST,C=FR' },
    { domain: 'autre.mssante.fr', operatorDn: 'CN=a\\,b+OU=x,O=y', description: '' },
  ];
  const when = new Date('2025-06-01T12:34:56.789Z');

  it('writes a well-formed document in the ANS format', () => {
    const xml = buildTrustListXml(entries, when);
    assert.equal(XMLValidator.validate(xml), true);
    assert.ok(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema">'));
    assert.ok(xml.includes('<DateDeGeneration>2025-06-01T12:34:56Z</DateDeGeneration>'));
    assert.ok(xml.trimEnd().endsWith('</ListeBlancheMSSante>'));
    const order = ['<Nom>', '<Description>', '<DNCertificatOperateur>', '<ResponsableContact>', '<SupportContact>', '<DateMAJ>'].map((t) => xml.indexOf(t));
    assert.deepEqual([...order].sort((a, b) => a - b), order);
  });

  it('round-trips', () => {
    const list = parseTrustList(buildTrustListXml(entries, when));
    assert.deepEqual(list.warnings, []);
    assert.equal(list.generatedAt, '2025-06-01T12:34:56Z');
    assert.deepEqual(list.entries, [
      entries[0],
      { domain: 'ch-test.mssante.fr', operatorDn: 'CN=mss2.ch-test.fr,O=CH TEST,C=FR', description: '', dateMaj: '2025-06-01T12:34:56Z' },
      { domain: 'autre.mssante.fr', operatorDn: 'CN=a\\,b+OU=x,O=y', description: '', dateMaj: '2025-06-01T12:34:56Z' },
    ]);
    assert.deepEqual(list.lookup('CH-TEST.mssante.fr'), [entries[0]!.operatorDn, entries[1]!.operatorDn]);
    assert.ok(list.isDnListedFor('autre.mssante.fr', 'OU=x + CN=a\\2Cb, O=Y'));
  });

  it('round-trips an empty list', () => {
    const list = parseTrustList(buildTrustListXml([], when));
    assert.equal(list.entries.length, 0);
    assert.equal(list.generatedAt, '2025-06-01T12:34:56Z');
  });

  it('refuses an invalid DN or an empty domain', () => {
    assert.throws(() => buildTrustListXml([{ domain: 'a.mssante.fr', operatorDn: 'CN=a,,O=b' }]), /entry 1 \(a\.mssante\.fr\): invalid operator DN/);
    assert.throws(() => buildTrustListXml([{ domain: 'a.mssante.fr', operatorDn: '' }]), TrustListError);
    assert.throws(() => buildTrustListXml([{ domain: ' ', operatorDn: MIPIH }]), /entry 1: empty domain/);
  });
});
