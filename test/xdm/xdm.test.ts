// src/xdm: round trip (build → read: same documents, hashes, no warning), every wild deviation
// alone and combined (read, with its warnings at their place), unsafe archives refused with
// their XdmError code, and the message around a package (subject, X-MSS-*, attachments).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { unzipSync } from 'fflate';
import { buildXdm, readXdm, xdmMessage, XdmError } from '../../src/xdm/index.js';
import { combine, DEVIATIONS, entriesOf, PATIENT, rezip, sampleCda, sampleInput, samplePackage, samplePdf, UNSAFE } from './corpus.js';

const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');

describe('xdm build → read', () => {
  it('round trip: same documents, bytes, hashes, codes, patient; no warning', () => {
    const input = sampleInput();
    const built = buildXdm(input);
    const pkg = readXdm(built.zip);
    assert.deepEqual(pkg.warnings, []);
    assert.equal(pkg.documents.length, 2);
    pkg.documents.forEach((d, i) => {
      assert.deepEqual(Buffer.from(d.bytes), Buffer.from(input.documents[i]!.bytes));
      assert.equal(d.hash, sha1(input.documents[i]!.bytes));
      assert.equal(d.declaredHash, d.hash);
      assert.equal(d.size, input.documents[i]!.bytes.length);
      assert.equal(d.declaredSize, d.size);
      assert.equal(d.uniqueId, built.documents[i]!.uniqueId);
      assert.match(d.uniqueId!, /^2\.25\.\d+$/);
      assert.match(d.entryUuid!, /^urn:uuid:[0-9a-f-]{36}$/);
      assert.deepEqual(d.patientId, { id: PATIENT.ins, oid: PATIENT.oid, kind: 'test' });
      assert.equal(d.mimeType, input.documents[i]!.mimeType);
      assert.equal(d.typeCode?.code, '11502-2');
      assert.equal(d.typeCode?.codingScheme, '2.16.840.1.113883.6.1');
      assert.equal(d.classCode?.code, '10');
      assert.equal(d.creationTime, '20261207093000');
      assert.equal(d.authors[0]?.person, '810001234567^MARTIN^Paul^^^^^^&1.2.250.1.71.4.2.1&ISO');
    });
    assert.deepEqual(pkg.documents.map((d) => d.path), ['IHE_XDM/SUBSET01/DOC0001.XML', 'IHE_XDM/SUBSET01/DOC0002.PDF']);
    assert.equal(pkg.documents[0]!.formatCode?.code, 'urn:ihe:iti:xds:2017:mimeTypeSufficient');
    assert.equal(pkg.documents[1]!.formatCode?.code, 'urn:ihe:iti:xds-sd:pdf:2008');
    assert.deepEqual(pkg.documents[0]!.cda, {
      code: '11502-2',
      codeSystem: '2.16.840.1.113883.6.1',
      displayName: "CR d'examens biologiques",
      title: "Compte rendu d'examens biologiques",
      patient: { ins: PATIENT.ins, oid: PATIENT.oid, kind: 'test', family: 'DURAND', given: 'Élodie Marie', birthTime: '19790312', gender: 'F' },
    });
    assert.equal(pkg.documents[1]!.cda, undefined);
    assert.equal(pkg.submissionSet.uniqueId, built.submissionSetUniqueId);
    assert.equal(pkg.submissionSet.submissionTime, '20261207093000');
    assert.deepEqual(pkg.submissionSet.patientId, { id: PATIENT.ins, oid: PATIENT.oid, kind: 'test' });
    assert.equal(pkg.submissionSet.title, input.title);
    assert.deepEqual(built.cdaCodes, ['11502-2']);
  });

  it('builds strictly to the profile: 8.3 upper-case names, README.TXT, INDEX.HTM, METADATA.XML', () => {
    const names = Object.keys(unzipSync(buildXdm(sampleInput({ documents: [{ mimeType: 'text/xml', bytes: Buffer.from(sampleCda()), name: 'compte-rendu biologie é.xml' }] })).zip)).sort();
    assert.deepEqual(names, ['IHE_XDM/SUBSET01/COMPTERE.XML', 'IHE_XDM/SUBSET01/METADATA.XML', 'INDEX.HTM', 'README.TXT']);
    for (const n of names) for (const seg of n.split('/')) assert.match(seg, /^[A-Z0-9_]{1,8}(\.[A-Z0-9]{1,3})?$/, seg);
  });

  it('file names stay unique: a given name never takes a generated one', () => {
    const cda = Buffer.from(sampleCda());
    const names = Object.keys(unzipSync(buildXdm(sampleInput({ documents: [{ mimeType: 'text/xml', bytes: cda, name: 'doc0002.xml' }, { mimeType: 'text/xml', bytes: cda }, { mimeType: 'text/xml', bytes: cda, name: 'README.xml' }] })).zip)).filter((n) => n.startsWith('IHE_XDM/SUBSET01/DOC'));
    assert.deepEqual(names.sort(), ['IHE_XDM/SUBSET01/DOC0001.XML', 'IHE_XDM/SUBSET01/DOC0002.XML', 'IHE_XDM/SUBSET01/DOC0003.XML']);
  });

  it('refuses bad build input with a precise XdmError', () => {
    const cases: [Parameters<typeof buildXdm>[0], RegExp][] = [
      [sampleInput({ documents: [] }), /at least one document/],
      [sampleInput({ patient: { ...PATIENT, oid: '1.2.3' } }), /not an INS OID/],
      [sampleInput({ patient: { ...PATIENT, birthDate: '12/03/1979' } }), /not YYYY-MM-DD/],
      [sampleInput({ documents: [{ mimeType: 'text/xml', bytes: Buffer.from(sampleCda({ ins: '123456789012345' })) }] }), /CDA patient 123456789012345/],
      [sampleInput({ documents: [{ mimeType: 'text/xml', bytes: Buffer.from('<a>') }] }), /not well-formed XML/],
      [sampleInput({ documents: [{ mimeType: 'application/pdf', bytes: samplePdf() }] }), /needs a typeCode/],
    ];
    for (const [input, re] of cases) assert.throws(() => buildXdm(input), (e: unknown) => e instanceof XdmError && e.code === 'bad-input' && re.test(e.message));
  });
});

describe('xdm read: packages in the wild', () => {
  const base = entriesOf(samplePackage().zip);
  const original = readXdm(samplePackage().zip).documents;
  const check = (d: (typeof DEVIATIONS)[number]) => {
    const pkg = readXdm(rezip(d.apply(base), d.descriptors));
    assert.equal(pkg.documents.length, 2, `${d.name}: ${JSON.stringify(pkg.warnings)}`);
    pkg.documents.forEach((doc, i) => assert.deepEqual(Buffer.from(doc.bytes), Buffer.from(original[i]!.bytes), `${d.name}: document ${i} bytes`));
    for (const re of d.warnings) assert.ok(pkg.warnings.some((w) => re.test(w.message) && w.place.length > 0), `${d.name}: a warning ${re} in ${JSON.stringify(pkg.warnings)}`);
    if (d.warnings.length === 0) assert.deepEqual(pkg.warnings, [], d.name);
    assert.equal(pkg.documents[0]!.cda?.code, '11502-2', d.name);
    return pkg;
  };
  for (const d of DEVIATIONS) it(d.name, () => void check(d));
  it('combined: every pair of path/metadata deviations', () => {
    let n = 0;
    for (let i = 0; i < DEVIATIONS.length; i++)
      for (let j = i + 1; j < DEVIATIONS.length; j++) {
        const a = DEVIATIONS[i]!;
        const b = DEVIATIONS[j]!;
        // Exclusive deviations (two ways to place or find the same thing) are not combined.
        const places = ['no IHE_XDM root', 'wrapper folder', 'missing / after SUBSET01', 'other subset name'];
        const finds = ['no URI slot', 'no URI nor hash slot', 'wrong URI', 'no hash slot', 'wrong hash'];
        const sizes = ['no size slot', 'wrong size'];
        const indexes = ['INDEX links to a missing file', 'README names a missing file', 'no README nor INDEX'];
        if ((places.includes(a.name) && places.includes(b.name)) || (finds.includes(a.name) && finds.includes(b.name)) || (indexes.includes(a.name) && indexes.includes(b.name)) || (sizes.includes(a.name) && sizes.includes(b.name))) continue;
        if ((a.name === 'mixed case' || b.name === 'mixed case') && [a.name, b.name].some((x) => places.includes(x))) continue;
        const c = combine([a, b]);
        check(c);
        n++;
      }
    assert.ok(n > 150, `${n} combinations`);
  });
  it('an INDEX.HTM of 20,000 links beside 900 files: each missing target one warning', () => {
    const links = Array.from({ length: 20000 }, (_, i) => `<a href="IHE_XDM/SUBSET01/F${i}.TXT"></a>`).join(''); // under the 1 MiB looked at
    const files = base.map(([n, b]) => [n, n === 'INDEX.HTM' ? Buffer.from(`<html><body>${links}</body></html>`) : b] as [string, Uint8Array]);
    for (let i = 0; i < 900; i++) files.push([`IHE_XDM/SUBSET01/F${i}.TXT`, Buffer.from(String(i))]);
    const pkg = readXdm(rezip(files));
    assert.equal(pkg.documents.length, 2);
    assert.equal(pkg.warnings.filter((w) => w.place === 'INDEX.HTM' && /links to IHE_XDM\/SUBSET01\/F\d+\.TXT, which is not in the archive/.test(w.message)).length, 19100);
  });
  it('an 8 MB CDA (embedded rendition): its header is read, its body left unparsed', () => {
    const cda = Buffer.from(sampleCda({ body: randomBytes(6 * 1024 * 1024).toString('base64') }));
    const pkg = readXdm(buildXdm(sampleInput({ documents: [{ mimeType: 'text/xml', bytes: cda }] })).zip);
    assert.deepEqual(pkg.warnings, []);
    assert.equal(pkg.documents[0]!.size, cda.length);
    assert.equal(pkg.documents[0]!.cda?.code, '11502-2');
    assert.equal(pkg.documents[0]!.cda?.patient.ins, PATIENT.ins);
  });
  it('more subsets than maxSubsets: the first are read, the rest reported', () => {
    const files = base.flatMap(([n, b]) => (n.startsWith('IHE_XDM/SUBSET01/') ? [1, 2, 3].map((k) => [n.replace('SUBSET01', `SUBSET0${k}`), b] as [string, Uint8Array]) : [[n, b] as [string, Uint8Array]]));
    const pkg = readXdm(rezip(files), { maxSubsets: 2 });
    assert.equal(pkg.documents.length, 4);
    assert.ok(pkg.warnings.some((w) => w.place === 'IHE_XDM/SUBSET03/METADATA.XML' && /3 METADATA\.XML files: only the first 2 are read/.test(w.message)));
  });
  it('500 entries without URI looking for their file by hash among 900 files: each file hashed once (hashing per lookup would be 29 GB)', () => {
    const meta = base.find(([n]) => n.endsWith('METADATA.XML'))![1];
    const xml = Buffer.from(meta).toString('utf8');
    const eo = /<rim:ExtrinsicObject[\s\S]*?<\/rim:ExtrinsicObject>/.exec(xml)![0].replace(/<rim:Slot name="URI">[\s\S]*?<\/rim:Slot>/, '').replace(/(<rim:Slot name="hash">\s*<rim:ValueList>\s*<rim:Value>)[0-9a-f]{40}/, `$1${'1'.repeat(40)}`);
    const many = xml.replace('<rim:Association', `${eo.repeat(500)}<rim:Association`);
    const files: [string, Uint8Array][] = base.map(([n, b]) => [n, n.endsWith('METADATA.XML') ? Buffer.from(many) : b]);
    for (let i = 0; i < 900; i++) files.push([`IHE_XDM/SUBSET01/F${i}.BIN`, randomBytes(64 * 1024)]);
    const pkg = readXdm(rezip(files, false, 0), { maxMetadataBytes: 16 * 1024 * 1024 });
    assert.equal(pkg.documents.length, 2);
    assert.equal(pkg.warnings.filter((w) => /document file not found/.test(w.message)).length, 500);
  });
  it('all tolerable deviations at once', () => {
    const pkg = check(combine(['backslash paths', 'wrapper folder', 'mixed case', 'data descriptors', 'SOAP envelope with SAML and XOP', 'no size slot', 'wrong hash', 'UTF-8 BOM', 'CRLF metadata', 'INDEX links to a missing file'].map((n) => DEVIATIONS.find((d) => d.name === n)!)));
    assert.ok(pkg.warnings.length >= 8);
  });
});

describe('xdm read: unsafe or unreadable archives are refused', () => {
  for (const u of UNSAFE)
    it(u.name, () => {
      const zip = u.zip();
      assert.throws(
        () => readXdm(zip, u.limits),
        (e: unknown) => e instanceof XdmError && e.code === u.code && u.message.test(e.message),
      );
    });
});

describe('xdm message', () => {
  it('subject, X-MSS-CODECDA per CDA code, X-MSS-INS, IHE_XDM.ZIP and the PDF beside it', async () => {
    const two = buildXdm(sampleInput({ documents: [{ mimeType: 'text/xml', bytes: Buffer.from(sampleCda()) }, { mimeType: 'text/xml', bytes: Buffer.from(sampleCda({ code: '34112-3', displayName: 'Hospitalisation' })) }] }));
    const pdf = samplePdf();
    const m = await xdmMessage({ from: 'paul.martin@ch-test.mssante.fr', to: ['labo@ch-test.mssante.fr'], label: "CR d'examens biologiques", patient: PATIENT, zip: two.zip, cdaCodes: two.cdaCodes, pdf: { bytes: pdf }, nil: 'LPS-TEST-1.0' });
    assert.equal(m.subject, "XDM/1.0/DDM+CR d'examens biologiques DURAND Élodie 12/03/1979");
    const parsed = await simpleParser(m.raw);
    assert.equal(parsed.subject, m.subject);
    const lines = parsed.headerLines.map((h) => h.line);
    assert.deepEqual(lines.filter((l) => /^X-MSS-CODECDA:/i.test(l)), ['X-MSS-CODECDA: 11502-2', 'X-MSS-CODECDA: 34112-3']);
    assert.deepEqual(lines.filter((l) => /^X-MSS-INS:/i.test(l)), ['X-MSS-INS: O']);
    assert.deepEqual(lines.filter((l) => /^X-MSS-NIL:/i.test(l)), ['X-MSS-NIL: LPS-TEST-1.0']);
    assert.deepEqual(parsed.attachments.map((a) => [a.filename, a.contentType]), [['IHE_XDM.ZIP', 'application/zip'], ['DOCUMENT.PDF', 'application/pdf']]);
    assert.deepEqual(parsed.attachments[0]!.content, Buffer.from(two.zip));
    assert.deepEqual(parsed.attachments[1]!.content, pdf);
    assert.deepEqual(readXdm(parsed.attachments[0]!.content).documents.map((d) => d.cda?.code), ['11502-2', '34112-3']);
    const pdfOnly = buildXdm(sampleInput({ documents: [sampleInput().documents[1]!] }));
    const m2 = await xdmMessage({ from: 'a@x.mssante.fr', to: ['b@y.mssante.fr'], label: 'CR', patient: { ...PATIENT, qualified: false }, zip: pdfOnly.zip, cdaCodes: pdfOnly.cdaCodes });
    assert.doesNotMatch(m2.raw.toString('latin1'), /X-MSS-(CODECDA|INS)/i, 'absent without a CDA');
  });
});
