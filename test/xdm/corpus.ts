// Test corpus for src/xdm: a realistic CDA R2 and PDF, packages built by buildXdm, and "wild"
// packages rebuilt from them with each deviation real senders produce (alone and combined),
// plus unsafe archives (zip bombs, entry floods, traversal, absolute paths, size lies).
// Every case says what the reader must answer: the warnings (by pattern) or the XdmError code.
import { randomBytes } from 'node:crypto';
import { Zip, ZipDeflate, ZipPassThrough, unzipSync, zipSync, type Zippable } from 'fflate';
import { buildXdm, type XdmBuildInput, type XdmBuilt } from '../../src/xdm/index.js';

export const PATIENT = { ins: '279035121518989', oid: '1.2.250.1.213.1.4.10', family: 'Durand', given: 'Élodie', birthDate: '1979-03-12', gender: 'F' as const, qualified: true };

/** A CDA R2 header as French CI-SIS documents carry it (CR de biologie, LOINC 11502-2). */
export function sampleCda(o: { ins?: string; oid?: string; code?: string; displayName?: string; body?: string } = {}): string {
  const ins = o.ins ?? PATIENT.ins;
  const oid = o.oid ?? PATIENT.oid;
  return `<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <realmCode code="FR"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="1.2.250.1.213.1.1.1.1"/>
  <id root="1.2.250.1.213.1.1.9" extension="CR-${ins}-1"/>
  <code code="${o.code ?? '11502-2'}" codeSystem="2.16.840.1.113883.6.1" displayName="${o.displayName ?? 'CR d&apos;examens biologiques'}"/>
  <title>Compte rendu d'examens biologiques</title>
  <effectiveTime value="20261207093000+0100"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
  <languageCode code="fr-FR"/>
  <recordTarget>
    <patientRole>
      <id root="${oid}" extension="${ins}"/>
      <id root="1.2.250.1.71.4.2.7" extension="IPP-000123"/>
      <patient>
        <name><family qualifier="BR">DURAND</family><given>Élodie</given><given>Marie</given></name>
        <administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>
        <birthTime value="19790312"/>
      </patient>
    </patientRole>
  </recordTarget>
  <component><nonXMLBody><text mediaType="text/plain">${o.body ?? 'Hémoglobine 13,2 g/dL'}</text></nonXMLBody></component>
</ClinicalDocument>
`;
}

/** A small valid PDF 1.4 (one page, one line of text). */
export function samplePdf(text = 'Compte rendu'): Buffer {
  const objs = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    null,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  const stream = `BT /F1 12 Tf 72 770 Td (${text}) Tj ET`;
  objs[3] = `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`;
  let out = '%PDF-1.4\n%\xe2\xe3\xcf\xd3\n';
  const offsets: number[] = [];
  objs.forEach((o, i) => {
    offsets.push(Buffer.byteLength(out, 'latin1'));
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = Buffer.byteLength(out, 'latin1');
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  out += `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

export function sampleInput(over: Partial<XdmBuildInput> = {}): XdmBuildInput {
  return {
    documents: [
      { mimeType: 'text/xml', bytes: Buffer.from(sampleCda(), 'utf8') },
      { mimeType: 'application/pdf', bytes: samplePdf(), typeCode: { code: '11502-2', codingScheme: '2.16.840.1.113883.6.1', displayName: "CR d'examens biologiques" }, title: 'CR biologie (PDF)' },
    ],
    patient: PATIENT,
    author: { rpps: '10001234567', family: 'MARTIN', given: 'Paul', institution: { name: 'CH de Test', finess: '750000001' }, email: 'paul.martin@ch-test.mssante.fr' },
    title: "Compte rendu d'examens biologiques",
    now: new Date('2026-12-07T09:30:00Z'),
    ...over,
  };
}

/** UUIDs from a counter (v4 layout): the sample package is the same bytes on every run. */
function counterUuid(): () => string {
  let n = 0;
  return () => `00000000-0000-4000-8000-${(++n).toString(16).padStart(12, '0')}`;
}

let cached: XdmBuilt | undefined;
export function samplePackage(): XdmBuilt {
  return (cached ??= buildXdm(sampleInput({ uuid: counterUuid() })));
}

export type Files = [string, Uint8Array][];

/** The entries of a zip, in order. */
export function entriesOf(zip: Uint8Array): Files {
  return Object.entries(unzipSync(zip));
}

/** Rezips entries; `descriptors`: fflate's streaming Zip (general-purpose bit 3 data descriptors). */
export function rezip(files: Files, descriptors = false, level: 0 | 1 | 6 | 9 = 6): Uint8Array {
  if (!descriptors) {
    const z: Zippable = {};
    for (const [n, b] of files) z[n] = [b, { level }];
    return zipSync(z, { mtime: new Date('2026-12-07T09:30:00Z') });
  }
  const chunks: Uint8Array[] = [];
  const zip = new Zip((err, data) => {
    if (err) throw err;
    chunks.push(data);
  });
  files.forEach(([n, b], i) => {
    const f = i % 2 ? new ZipPassThrough(n) : new ZipDeflate(n, { level });
    zip.add(f);
    f.push(b, true);
  });
  zip.end();
  return Buffer.concat(chunks);
}

const enc = (s: string) => Buffer.from(s, 'utf8');
const dec = (b: Uint8Array) => Buffer.from(b).toString('utf8');
const isMeta = (n: string) => /METADATA\.XML$/i.test(n);
const mapMeta = (files: Files, f: (xml: string) => string): Files => files.map(([n, b]) => [n, isMeta(n) ? enc(f(dec(b))) : b]);
const rename = (files: Files, f: (n: string) => string): Files => files.map(([n, b]) => [f(n), b]);
const dropSlot = (xml: string, name: string) => xml.replace(new RegExp(`<rim:Slot name="${name}">[\\s\\S]*?</rim:Slot>`, 'g'), '');

export interface Deviation {
  name: string;
  apply(files: Files): Files;
  /** Patterns each a warning must match (at least one warning per pattern). */
  warnings: RegExp[];
  descriptors?: boolean;
}

/** Each deviation of real packages the reader must tolerate (issue 11). */
export const DEVIATIONS: Deviation[] = [
  { name: 'backslash paths', apply: (f) => rename(f, (n) => n.replace(/\//g, '\\')), warnings: [/backslashes/] },
  { name: 'no IHE_XDM root', apply: (f) => rename(f, (n) => n.replace(/^IHE_XDM\//, '')), warnings: [/no IHE_XDM\/ root/] },
  { name: 'wrapper folder', apply: (f) => rename(f, (n) => `EXPORT_2026/${n}`), warnings: [/wrapper folder EXPORT_2026/] },
  { name: 'missing / after SUBSET01', apply: (f) => rename(f, (n) => n.replace('SUBSET01/', 'SUBSET01')), warnings: [/no "\/" between SUBSET01 and METADATA\.XML/] },
  { name: 'other subset name', apply: (f) => rename(f, (n) => n.replace('SUBSET01', 'LOT_A')), warnings: [/subset folder "LOT_A" is not named SUBSETnn/] },
  { name: 'mixed case', apply: (f) => rename(f, (n) => n.replace('METADATA.XML', 'Metadata.xml').replace('DOC0001.XML', 'doc0001.xml')), warnings: [/not in upper case/] },
  { name: 'data descriptors', apply: (f) => f, warnings: [], descriptors: true },
  {
    name: 'SOAP envelope with SAML and XOP',
    apply: (f) =>
      mapMeta(
        f,
        (x) => `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://www.w3.org/2003/05/soap-envelope" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:xop="http://www.w3.org/2004/08/xop/include">
 <soapenv:Header><wsse:Security><saml2:Assertion ID="_a1" IssueInstant="2026-12-07T09:30:00Z" Version="2.0"><saml2:Issuer>CN=lps</saml2:Issuer></saml2:Assertion></wsse:Security></soapenv:Header>
 <soapenv:Body><xdsb:ProvideAndRegisterDocumentSetRequest xmlns:xdsb="urn:ihe:iti:xds-b:2007">
 ${x.replace(/<\?xml[^>]*\?>/, '')}
 <xdsb:Document id="doc1"><xop:Include href="cid:1.doc@caducee"/></xdsb:Document>
 </xdsb:ProvideAndRegisterDocumentSetRequest></soapenv:Body></soapenv:Envelope>`,
      ),
    warnings: [/SubmitObjectsRequest wrapped in Envelope\/Body\/ProvideAndRegisterDocumentSetRequest/],
  },
  { name: 'other namespace prefixes', apply: (f) => mapMeta(f, (x) => x.replace(/rim:/g, 'ns2:').replace(/xmlns:ns2=/, 'xmlns:ns2=').replace(/lcm:/g, 'ns4:')), warnings: [] },
  { name: 'default namespace, no prefix', apply: (f) => mapMeta(f, (x) => x.replace(/<(\/?)rim:/g, '<$1').replace(/<(\/?)lcm:/g, '<$1').replace(/xmlns:rim="[^"]*"/, '')), warnings: [] },
  { name: 'no hash slot', apply: (f) => mapMeta(f, (x) => dropSlot(x, 'hash')), warnings: [/no hash slot/] },
  { name: 'no size slot', apply: (f) => mapMeta(f, (x) => dropSlot(x, 'size')), warnings: [/no size slot/] },
  { name: 'no URI slot', apply: (f) => mapMeta(f, (x) => dropSlot(x, 'URI')), warnings: [/no URI slot/, /file found by its hash/] },
  { name: 'no URI nor hash slot', apply: (f) => mapMeta(f, (x) => dropSlot(dropSlot(x, 'URI'), 'hash')), warnings: [/no URI slot/, /taken by order/] },
  { name: 'wrong hash', apply: (f) => mapMeta(f, (x) => x.replace(/(<rim:Slot name="hash">\s*<rim:ValueList>\s*<rim:Value>)[0-9a-f]{40}/, '$10000000000000000000000000000000000000000')), warnings: [/hash slot says 0{40}/] },
  { name: 'wrong size', apply: (f) => mapMeta(f, (x) => x.replace(/(<rim:Slot name="size">\s*<rim:ValueList>\s*<rim:Value>)\d+/, '$11')), warnings: [/size slot says 1 bytes/] },
  { name: 'wrong URI', apply: (f) => mapMeta(f, (x) => x.replace(/(<rim:Slot name="URI">\s*<rim:ValueList>\s*<rim:Value>)DOC0001\.XML/, '$1DOC9999.XML')), warnings: [/URI "DOC9999\.XML" names no file/, /file found by its hash/] },
  { name: 'INDEX links to a missing file', apply: (f) => f.map(([n, b]) => [n, /(^|\/)INDEX\.HTM$/.test(n) ? enc(dec(b).replace('</ul>', '<li><a href="IHE_XDM/SUBSET01/DOC0099.XML">absent</a></li></ul>')) : b]), warnings: [/links to IHE_XDM\/SUBSET01\/DOC0099\.XML/] },
  { name: 'README names a missing file', apply: (f) => f.map(([n, b]) => [n, /(^|\/)README\.TXT$/.test(n) ? enc(`${dec(b)}  IHE_XDM/SUBSET01/DOC0042.PDF\r\n`) : b]), warnings: [/README\.TXT.*|links to IHE_XDM\/SUBSET01\/DOC0042\.PDF/] },
  { name: 'no README nor INDEX', apply: (f) => f.filter(([n]) => !/^(README\.TXT|INDEX\.HTM)$/.test(n)), warnings: [/no README\.TXT/, /no INDEX\.HTM/] },
  { name: 'UTF-8 BOM', apply: (f) => f.map(([n, b]) => [n, isMeta(n) ? Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b]) : b]), warnings: [/byte order mark/] },
  { name: 'CRLF metadata', apply: (f) => mapMeta(f, (x) => x.replace(/\r?\n/g, '\r\n')), warnings: [] },
  { name: 'LF-only README', apply: (f) => f.map(([n, b]) => [n, /(^|\/)README\.TXT$/.test(n) ? enc(dec(b).replace(/\r\n/g, '\n')) : b]), warnings: [] },
];

const RENAMES = ['no IHE_XDM root', 'wrapper folder', 'missing / after SUBSET01', 'other subset name', 'mixed case'];
const PREFIXES = ['other namespace prefixes', 'default namespace, no prefix'];
const stage = (d: Deviation) => (d.name === 'backslash paths' ? 3 : RENAMES.includes(d.name) ? 2 : PREFIXES.includes(d.name) ? 1 : 0);

/** Applies several deviations in order (combined cases). */
export function combine(ds: Deviation[]): Deviation {
  return {
    name: ds.map((d) => d.name).join(' + '),
    // content changes first, then renames, backslashes last (the renames match '/')
    apply: (f) => [...ds].sort((a, b) => stage(a) - stage(b)).reduce((acc, d) => d.apply(acc), f),
    warnings: ds.flatMap((d) => d.warnings),
    descriptors: ds.some((d) => d.descriptors),
  };
}

/** Writes a 32-bit little-endian size into every local (offset 22) and central (offset 24) header of `name`. */
export function lieAboutSize(zip: Uint8Array, name: string, size: number): Uint8Array {
  const b = Buffer.from(zip);
  const nb = Buffer.from(name, 'utf8');
  for (let i = 0; i + 46 < b.length; i++) {
    const sig = b.readUInt32LE(i);
    if (sig === 0x04034b50 && b.readUInt16LE(i + 26) === nb.length && b.subarray(i + 30, i + 30 + nb.length).equals(nb)) b.writeUInt32LE(size, i + 22);
    if (sig === 0x02014b50 && b.readUInt16LE(i + 28) === nb.length && b.subarray(i + 46, i + 46 + nb.length).equals(nb)) b.writeUInt32LE(size, i + 24);
  }
  return b;
}

export interface UnsafeCase {
  name: string;
  zip: () => Uint8Array;
  code: string;
  message: RegExp;
  limits?: Partial<import('../../src/xdm/index.js').XdmReadLimits>;
}

export const UNSAFE: UnsafeCase[] = [
  { name: 'zip bomb by ratio', zip: () => zipSync({ 'IHE_XDM/SUBSET01/DOC0001.XML': [new Uint8Array(20 * 1024 * 1024), { level: 9 }] }), code: 'compression-ratio', message: /compression ratio of \d+:1, above 200:1/ },
  { name: 'huge entry count', zip: () => zipSync(Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`F${i}.TXT`, [new Uint8Array(1), { level: 0 }]]))), code: 'too-many-entries', message: /more than 1000 entries/ },
  { name: 'path traversal', zip: () => rezip([...entriesOf(samplePackage().zip), ['IHE_XDM/SUBSET01/../../../etc/cron.d/x', enc('x')]]), code: 'unsafe-path', message: /leaves the archive/ },
  { name: 'backslash traversal', zip: () => rezip([...entriesOf(samplePackage().zip), ['..\\..\\WINDOWS\\X.DLL', enc('x')]]), code: 'unsafe-path', message: /leaves the archive/ },
  { name: 'absolute path', zip: () => rezip([['/etc/passwd', enc('x')], ...entriesOf(samplePackage().zip)]), code: 'unsafe-path', message: /absolute path/ },
  { name: 'drive letter', zip: () => rezip([['C:\\AUTOEXEC.BAT', enc('x')], ...entriesOf(samplePackage().zip)]), code: 'unsafe-path', message: /absolute path/ },
  // Found by the xdm fuzzer (seed 20261207, iteration 791,471): "./" hid the drive letter until normalised.
  { name: 'drive letter behind ./', zip: () => rezip([['./C:IHE_XDM/SUBSET01/DOC0002.PDF', enc('x')], ...entriesOf(samplePackage().zip)]), code: 'unsafe-path', message: /absolute path/ },
  {
    // Declares 1,000 bytes (under every limit), inflates to 8 MiB: stopped while inflating.
    name: 'declared size lie (smaller)',
    zip: () => lieAboutSize(zipSync({ 'IHE_XDM/SUBSET01/DOC0001.XML': [new Uint8Array(8 * 1024 * 1024), { level: 9 }] }), 'IHE_XDM/SUBSET01/DOC0001.XML', 1000),
    code: 'size-mismatch',
    message: /inflates to more than the 1000 bytes it declares/,
  },
  {
    name: 'declared size lie (larger)',
    zip: () => lieAboutSize(rezip(entriesOf(samplePackage().zip)), 'IHE_XDM/SUBSET01/METADATA.XML', 3000000000),
    code: 'entry-too-large',
    message: /declares 3000000000 bytes uncompressed/,
  },
  { name: 'total size', limits: { maxTotalBytes: 5 * 1024 * 1024 }, zip: () => zipSync(Object.fromEntries(Array.from({ length: 3 }, (_, i) => [`F${i}.BIN`, [new Uint8Array(2 * 1024 * 1024).map((_, k) => (k * 7919 + i) & 0xff), { level: 0 }]]))), code: 'archive-too-large', message: /more than 5242880 bytes uncompressed in all/ },
  { name: 'huge METADATA.XML', zip: () => rezip(mapMeta(entriesOf(samplePackage().zip), (x) => x.replace('</lcm:SubmitObjectsRequest>', `<!--${randomBytes(4 * 1024 * 1024).toString('base64')}--></lcm:SubmitObjectsRequest>`))), code: 'bad-metadata', message: /METADATA\.XML is \d+ bytes, above the 4194304 read/ },
  { name: 'more DocumentEntries than files may exist', zip: () => rezip(mapMeta(entriesOf(samplePackage().zip), (x) => x.replace('<rim:Association', `${'<rim:ExtrinsicObject id="x"/>'.repeat(1001)}<rim:Association`))), code: 'bad-metadata', message: /lists 1003 DocumentEntries, more than the 1000 files/ },
  { name: 'not a zip', zip: () => enc('Bonjour, ceci n’est pas une archive'), code: 'not-a-zip', message: /not a readable zip archive/ },
  { name: 'no METADATA.XML', zip: () => zipSync({ 'README.TXT': enc('x'), 'DOCS/A.PDF': samplePdf() }), code: 'no-metadata', message: /no IHE_XDM\/SUBSETnn\/METADATA\.XML/ },
  { name: 'DOCTYPE in metadata', zip: () => rezip(mapMeta(entriesOf(samplePackage().zip), (x) => x.replace('?>', '?><!DOCTYPE x [<!ENTITY a "aaaa">]>'))), code: 'bad-metadata', message: /DOCTYPE declaration/ },
  { name: 'metadata not XML', zip: () => rezip(mapMeta(entriesOf(samplePackage().zip), (x) => x.slice(0, 200))), code: 'bad-metadata', message: /not well-formed XML/ },
];
