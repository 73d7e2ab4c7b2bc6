// Seeded fuzzing of the XDM reader (src/xdm readXdm). Seeds: packages built by buildXdm (1–3
// CDA/PDF documents, seeded UUIDs) and the wild deviations of test/xdm/corpus.ts. Mutations: at
// the byte level on the zip; at the archive level (entries renamed with odd separators, case,
// '..', absolute paths, duplicated, dropped, rezipped with data descriptors); inside METADATA.XML
// and the CDA (elements dropped/duplicated, attributes and slot values changed, truncation,
// entities, DOCTYPE, CDATA, BOMs, prefixes, byte mutations); INDEX.HTM/README.TXT links.
// Properties: readXdm returns or throws XdmError, nothing else; on success every document has
// bytes whose size and SHA-1 are the reported ones, a declared hash or size that differs is
// reported as a warning, paths are normalised (no '..', no '\', not absolute), every warning has
// a place and a message, the result survives JSON; an unmutated seed reads back its documents.
import { createHash } from 'node:crypto';
import { buildXdm, readXdm, XdmError, type XdmBuilt } from '../../src/xdm/index.js';
import { combine, DEVIATIONS, entriesOf, rezip, sampleCda, sampleInput, samplePdf, type Files } from '../xdm/corpus.js';
import { FuzzFailure, mutateBytes, Rng } from './rng.js';

export interface XdmStats {
  iterations: number;
  bytes: number;
  read: number;
  rejected: Record<string, number>;
  documents: number;
  warnings: number;
  roundTrips: number;
  maxMs: number;
}

export function newXdmStats(): XdmStats {
  return { iterations: 0, bytes: 0, read: 0, rejected: {}, documents: 0, warnings: 0, roundTrips: 0, maxMs: 0 };
}

interface Seed {
  files: Files;
  built?: XdmBuilt;
  descriptors: boolean;
}

let seeds: Seed[] | undefined;

function seededUuid(rng: Rng): () => string {
  return () => {
    const h = rng.bytes(16).toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
  };
}

function loadSeeds(): Seed[] {
  if (seeds) return seeds;
  const rng = new Rng(0x5eed);
  const list: Seed[] = [];
  const docs = [
    { mimeType: 'text/xml' as const, bytes: Buffer.from(sampleCda()) },
    { mimeType: 'application/pdf' as const, bytes: samplePdf(), typeCode: { code: '11502-2', codingScheme: '2.16.840.1.113883.6.1', displayName: 'CR' } },
    { mimeType: 'text/xml' as const, bytes: Buffer.from(sampleCda({ code: '34112-3', displayName: 'CR hospitalisation', body: 'x'.repeat(300) })) },
  ];
  for (const pick of [[0], [1], [0, 1], [0, 1, 2], [2, 0]]) {
    const built = buildXdm(sampleInput({ documents: pick.map((i) => docs[i]!), uuid: seededUuid(rng) }));
    list.push({ files: entriesOf(built.zip), built, descriptors: false });
  }
  const base = list[2]!.files;
  for (const d of DEVIATIONS) list.push({ files: d.apply(base), descriptors: !!d.descriptors });
  for (let i = 0; i + 2 < DEVIATIONS.length; i += 3) {
    const c = combine([DEVIATIONS[i]!, DEVIATIONS[i + 2]!]);
    list.push({ files: c.apply(base), descriptors: !!c.descriptors });
  }
  return (seeds = list);
}

const enc = (s: string) => Buffer.from(s, 'utf8');
const dec = (b: Uint8Array) => Buffer.from(b).toString('utf8');

const XML_SNIPPETS = [
  '<!DOCTYPE x [<!ENTITY e "eeee">]>',
  '&e;',
  '&amp;',
  '&#0;',
  '&#x1F600;',
  '<![CDATA[<rim:Slot>]]>',
  '<!-- c -->',
  '<?pi x?>',
  '\ufeff',
  '<rim:Slot name="URI"><rim:ValueList><rim:Value>../../X</rim:Value></rim:ValueList></rim:Slot>',
  '<rim:Slot name="URI"><rim:ValueList><rim:Value>1|DOC</rim:Value><rim:Value>2|0001.XML</rim:Value></rim:ValueList></rim:Slot>',
  '<rim:Slot name="hash"><rim:ValueList><rim:Value>zz</rim:Value></rim:ValueList></rim:Slot>',
  '<rim:Slot name="size"><rim:ValueList><rim:Value>99999999999999999999</rim:Value></rim:ValueList></rim:Slot>',
  '<rim:ExtrinsicObject id="x" mimeType="text/xml"/>',
  '<rim:ExtrinsicObject/>',
  '<rim:RegistryPackage id="p"/>',
  '<rim:ExternalIdentifier identificationScheme="urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427" value="^^^&amp;&amp;ISO"/>',
  '<rim:Classification classificationScheme="urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"/>',
  '<a:b xmlns:a="x">',
  '</rim:RegistryObjectList>',
  '<ClinicalDocument>',
  '<recordTarget><patientRole><id/></patientRole></recordTarget>',
  '<SubmitObjectsRequest><RegistryObjectList/></SubmitObjectsRequest>',
  '"',
  "'",
  '<',
  '>',
  '\0',
];

/** XML-level mutation: elements dropped or duplicated (by tag boundaries), snippets inserted, values changed, truncation. */
function mutateXml(rng: Rng, xml: string): string {
  let s = xml;
  for (let k = rng.range(1, 3); k > 0; k--) {
    const tags = [...s.matchAll(/<[^>]*>/g)];
    const t = tags.length ? rng.pick(tags) : undefined;
    switch (rng.int(8)) {
      case 0: // drop an element with its content, when it closes
        if (t) {
          const name = /^<\/?([\w:.-]+)/.exec(t[0])?.[1];
          const close = name ? s.indexOf(`</${name}>`, t.index!) : -1;
          s = close > 0 ? s.slice(0, t.index!) + s.slice(close + name!.length + 3) : s.slice(0, t.index!) + s.slice(t.index! + t[0].length);
        }
        break;
      case 1: // duplicate an element
        if (t) {
          const name = /^<([\w:.-]+)/.exec(t[0])?.[1];
          const close = name ? s.indexOf(`</${name}>`, t.index!) : -1;
          const end = close > 0 ? close + name!.length + 3 : t.index! + t[0].length;
          s = s.slice(0, end) + s.slice(t.index!, end) + s.slice(end);
        }
        break;
      case 2: {
        const at = t ? t.index! + (rng.bool() ? 0 : t[0].length) : rng.int(s.length + 1);
        s = s.slice(0, at) + rng.pick(XML_SNIPPETS) + s.slice(at);
        break;
      }
      case 3: {
        // change an attribute value
        const attrs = [...s.matchAll(/(\w+)="([^"]*)"/g)];
        if (attrs.length) {
          const a = rng.pick(attrs);
          const v = rng.pick(['', 'x', '0', '-1', '1.2.250.1.213.1.4.8', '1.2.250.1.213.1.4.9', 'text/xml', 'application/pdf', '../x', 'C:\\x', 'DOC0001.XML', 'doc0002.pdf', 'é'.repeat(rng.range(1, 50)), a[2]!.slice(1)]);
          s = s.slice(0, a.index!) + `${a[1]}="${v}"` + s.slice(a.index! + a[0].length);
        }
        break;
      }
      case 4:
        s = s.slice(0, rng.int(s.length + 1));
        break;
      case 5:
        s = rng.bool() ? s.replace(/rim:/g, rng.pick(['', 'ns1:', 'x:'])) : s.replace(/\n/g, rng.pick(['\r\n', '\r', '']));
        break;
      case 6: {
        // change a Value text
        const vals = [...s.matchAll(/<(?:\w+:)?Value>([^<]*)</g)];
        if (vals.length) {
          const v = rng.pick(vals);
          const nv = rng.pick(['', 'DOC0002.PDF', 'IHE_XDM/SUBSET01/DOC0001.XML', '0'.repeat(40), '12', '1|A', '2|B', '^^^&1.2.250.1.213.1.4.8&ISO', 'x'.repeat(rng.range(1, 3000))]);
          s = s.slice(0, v.index!) + v[0].replace(v[1]!, nv) + s.slice(v.index! + v[0].length);
        }
        break;
      }
      default:
        s = dec(mutateBytes(rng, enc(s), 1));
    }
  }
  return s;
}

function mutateName(rng: Rng, name: string): string {
  switch (rng.int(9)) {
    case 0:
      return name.replace(/\//g, '\\');
    case 1:
      return name.toLowerCase();
    case 2:
      return `../${name}`;
    case 3:
      return `/${name}`;
    case 4:
      return `C:${name}`;
    case 5:
      return `${rng.pick(['WRAP/', './', 'a//', 'IHE_XDM/'])}${name}`;
    case 6:
      return name.replace('SUBSET01/', rng.pick(['SUBSET01', 'SUBSET02/', 'S/', '']));
    case 7:
      return `${name}${rng.pick(['/', '\0', ' ', '.', 'é'])}`;
    default:
      return name.replace('METADATA', rng.pick(['METADATA', 'METADAT', 'metadata']));
  }
}

/** One mutated package. */
export function mutatePackage(rng: Rng, seed: Seed): Uint8Array {
  let files: Files = seed.files.map(([n, b]) => [n, b]);
  let descriptors = seed.descriptors;
  const rounds = rng.range(1, 3);
  for (let k = 0; k < rounds; k++) {
    const i = rng.int(files.length);
    const [n, b] = files[i]!;
    switch (rng.int(7)) {
      case 0:
      case 1:
        if (/METADATA|\.XML$/i.test(n)) files[i] = [n, enc(mutateXml(rng, dec(b)))];
        else files[i] = [n, mutateBytes(rng, Buffer.from(b))];
        break;
      case 2: {
        const meta = files.findIndex(([x]) => /METADATA\.XML$/i.test(x));
        if (meta >= 0) files[meta] = [files[meta]![0], enc(mutateXml(rng, dec(files[meta]![1])))];
        break;
      }
      case 3:
        files[i] = [mutateName(rng, n), b];
        break;
      case 4:
        if (rng.bool()) files.splice(i, 1);
        else files.push([rng.bool() ? n : `${n}.COPY`, b]);
        break;
      case 5:
        descriptors = !descriptors;
        break;
      default:
        if (/INDEX\.HTM$/i.test(n)) files[i] = [n, enc(dec(b).replace('</ul>', `<li><a href="${rng.pick(['X.XML', '../Y', '%zz', 'javascript:x', 'IHE_XDM/SUBSET01/'])}">l</a></li></ul>`))];
        else files[i] = [n, Buffer.from(b).subarray(0, rng.int(b.length + 1))];
    }
  }
  const names = new Set<string>();
  files = files.filter(([n]) => !names.has(n) && !!names.add(n)); // fflate's zip keys are unique
  let zip: Uint8Array;
  const level = rng.bool(0.6) ? 0 : 1; // stored entries mostly: deflating dominated the iteration time
  try {
    zip = rezip(files, descriptors, level);
  } catch {
    zip = rezip(files.filter(([n]) => Buffer.byteLength(n) < 65535), false, level);
  }
  return rng.bool(0.25) ? mutateBytes(rng, Buffer.from(zip)) : zip;
}

const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');

export function xdmIteration(iseed: number, stats: XdmStats): void {
  const rng = new Rng(iseed);
  const all = loadSeeds();
  const seed = rng.pick(all);
  stats.iterations++;
  const unmutated = rng.bool(0.03);
  const zip = unmutated ? rezip(seed.files, seed.descriptors) : mutatePackage(rng, seed);
  stats.bytes += zip.length;
  const t = performance.now();
  let pkg;
  try {
    pkg = readXdm(zip);
  } catch (e) {
    if (!(e instanceof XdmError)) throw new FuzzFailure(`readXdm threw ${e instanceof Error ? e.stack : String(e)}`, iseed);
    if (unmutated) throw new FuzzFailure(`an unmutated seed was refused: ${e.message}`, iseed);
    stats.rejected[e.code] = (stats.rejected[e.code] ?? 0) + 1;
    return;
  } finally {
    stats.maxMs = Math.max(stats.maxMs, Math.round(performance.now() - t));
  }
  stats.read++;
  if (pkg.documents.length === 0) throw new FuzzFailure('a package read with no document', iseed);
  for (const d of pkg.documents) {
    stats.documents++;
    if (d.size !== d.bytes.length) throw new FuzzFailure(`document ${d.path}: size ${d.size} but ${d.bytes.length} bytes`, iseed);
    if (d.hash !== sha1(d.bytes)) throw new FuzzFailure(`document ${d.path}: hash is not the bytes' SHA-1`, iseed);
    if (d.declaredHash !== undefined && d.declaredHash !== d.hash && !pkg.warnings.some((w) => w.message.includes(d.declaredHash!)))
      throw new FuzzFailure(`document ${d.path}: hash mismatch without a warning`, iseed);
    if (d.declaredSize !== undefined && d.declaredSize !== d.size && !pkg.warnings.some((w) => w.message.includes(`size slot says ${d.declaredSize}`)))
      throw new FuzzFailure(`document ${d.path}: size mismatch without a warning`, iseed);
    if (d.path.split('/').includes('..') || d.path.includes('\\') || d.path.startsWith('/') || /^[A-Za-z]:/.test(d.path)) throw new FuzzFailure(`unsafe document path ${JSON.stringify(d.path)}`, iseed);
  }
  for (const w of pkg.warnings) {
    stats.warnings++;
    if (typeof w.place !== 'string' || !w.place || typeof w.message !== 'string' || !w.message) throw new FuzzFailure(`a warning without place or message: ${JSON.stringify(w)}`, iseed);
  }
  JSON.parse(JSON.stringify({ ...pkg, documents: pkg.documents.map(({ bytes: _b, ...d }) => d) }));
  if (unmutated) {
    const expected = seed.files.filter(([n]) => /DOC\d+\.(XML|PDF)$/i.test(n));
    if (pkg.documents.length !== expected.length) throw new FuzzFailure(`unmutated seed: ${pkg.documents.length} documents, expected ${expected.length}`, iseed);
    if (seed.built && pkg.warnings.length) throw new FuzzFailure(`built seed read with warnings: ${JSON.stringify(pkg.warnings)}`, iseed);
    stats.roundTrips++;
  }
}
