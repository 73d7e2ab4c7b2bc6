// Seeded fuzzing of the trust-list parser (src/trust/list.ts parseTrustList): windows of the
// real ANS lists (a few <Domaine> elements between the real head and tail) and documents written
// by buildTrustListXml, mutated at the byte level and at the XML level (elements dropped,
// duplicated, truncated, entities, CDATA, comments, namespace and root changes, BOMs).
// Properties: parseTrustList returns or throws TrustListError, nothing else; on success the
// counts agree with the entries and every listed (domain, DN) pair is found by the lookups;
// an unmutated built document parses back to the entries it was built from.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { buildTrustListXml, parseTrustList, TrustListError, type TrustListBuildEntry } from '../../src/trust/list.js';
import { trustDataDir } from '../support/reference-data.js';
import { FuzzFailure, mutateBytes, Rng } from './rng.js';

interface Source {
  head: string;
  domaines: string[];
  tail: string;
}

/** The real lists, split into head, <Domaine> elements and tail (read once). */
function loadSources(): Source[] {
  const dir = trustDataDir();
  const files = readdirSync(dir).filter((f) => /^listeblanchemssante-.*\.xml$/.test(f));
  if (files.length === 0) throw new Error(`no listeblanchemssante-*.xml in ${dir}: set CADUCEE_TRUST_DATA to the trust-list copies`);
  return files.map((f) => {
    const text = readFileSync(path.join(dir, f), 'utf8');
    const first = text.indexOf('<Domaine>');
    const last = text.lastIndexOf('</Domaine>') + '</Domaine>'.length;
    const domaines = text.slice(first, last).split(/(?<=<\/Domaine>)/);
    return { head: text.slice(0, first), domaines, tail: text.slice(last) };
  });
}

let sources: Source[] | undefined;

export interface TrustStats {
  iterations: number;
  bytes: number;
  parsed: number;
  rejected: number;
  entries: number;
  warnings: number;
  roundTrips: number;
}

export function newTrustStats(): TrustStats {
  return { iterations: 0, bytes: 0, parsed: 0, rejected: 0, entries: 0, warnings: 0, roundTrips: 0 };
}

const DNS = ['CN=medimail-asip.mipih.fr,OU=318310021300028,O=GIP MIPIH,ST=Haute-Garonne (31),C=FR', 'CN=mx.example,O=Op,C=FR', 'CN="a,b"+OU=x\\2C,O=é,C=FR', '1.2.3.4=#0403616263,CN=x', 'CN=x, O = y ,C=FR'];

function randomEntries(rng: Rng): TrustListBuildEntry[] {
  return Array.from({ length: rng.range(0, 5) }, (_, i) => ({
    domain: rng.pick([`d${i}.mssante.fr`, `Sub-${i}.Example.FR.`, 'x', 'a..b', `é${i}.fr`]),
    operatorDn: rng.pick(DNS),
    ...(rng.bool() ? { description: rng.pick(['', 'A & B <c>', 'x]]>y', ' spaces ']) } : {}),
    ...(rng.bool() ? { responsables: [rng.pick(['08 10 61 50 50', '&lt;b&gt;', 'a@b'])] } : {}),
    ...(rng.bool() ? { support: 's' } : {}),
    ...(rng.bool(0.2) ? { dateMaj: '2025-03-14T15:34:10Z' } : {}),
  }));
}

function xmlMutate(rng: Rng, text: string): string {
  let t = text;
  const rounds = rng.range(1, 3);
  for (let k = 0; k < rounds; k++) {
    const at = rng.int(t.length + 1);
    switch (rng.int(8)) {
      case 0:
        t = t.slice(0, at); // truncation
        break;
      case 1: {
        // drop or duplicate an element
        const m = [...t.matchAll(/<(\w+)>[^<]*<\/\1>/g)];
        if (m.length === 0) break;
        const e = rng.pick(m);
        t = rng.bool() ? t.slice(0, e.index) + t.slice(e.index + e[0].length) : t.slice(0, e.index) + e[0] + e[0] + t.slice(e.index + e[0].length);
        break;
      }
      case 2:
        t = t.slice(0, at) + rng.pick(['&amp;', '&lt;', '&#x41;', '&#0;', '&bogus;', '&#xD800;', '&#99999999;', '&']) + t.slice(at);
        break;
      case 3:
        t = t.slice(0, at) + rng.pick(['<![CDATA[x<y]]>', '<!-- c -->', '<?pi x?>', '<!DOCTYPE x [<!ENTITY e "v">]>', '<Domaine/>', '<Domaine><Nom/></Domaine>', '<a b="1" b="2"/>', '</ListeDomaines>', '<ListeDomaines>']) + t.slice(at);
        break;
      case 4:
        t = t.replace(rng.pick(['ListeBlancheMSSante', 'ListeDomaines', 'Domaine', 'Nom', 'DNCertificatOperateur', 'xmlns="https://listeblanche.mssante.fr/schema"']), rng.pick(['X', 'html', '', 'Domaine', 'Nom', 'xmlns="urn:x"']));
        break;
      case 5:
        t = rng.pick(['\ufeff', ' \n', '<?xml version="1.0"?>']) + t;
        break;
      case 6:
        t = t.replace(/<\/ListeBlancheMSSante>\s*$/, '');
        break;
      default: {
        const s = t.indexOf('<DNCertificatOperateur>', at);
        if (s < 0) break;
        const v = s + '<DNCertificatOperateur>'.length;
        t = t.slice(0, v) + rng.pick(['=', ',', '+', '\\', '"', 'CN=', '#zz', '  ', 'OID.2.5.4.3=', '1.2=#0']) + t.slice(v);
      }
    }
  }
  return t;
}

function expectTrustError(f: () => void, fail: (m: string) => never): boolean {
  try {
    f();
    return true;
  } catch (e) {
    if (e instanceof TrustListError) return false;
    return fail(`threw ${e instanceof Error ? e.stack : String(e)}`);
  }
}

/** One iteration; throws FuzzFailure when a property does not hold. */
export function trustIteration(iseed: number, stats: TrustStats): void {
  sources ??= loadSources();
  const rng = new Rng(iseed);
  stats.iterations++;
  let doc: string;
  if (rng.bool(0.6)) {
    const src = rng.pick(sources);
    const n = rng.range(0, 8);
    const from = rng.int(src.domaines.length);
    doc = src.head + src.domaines.slice(from, from + n).join('') + src.tail;
  } else {
    const entries = randomEntries(rng);
    let built: string | undefined;
    const fail0 = (m: string): never => {
      throw new FuzzFailure(`buildTrustListXml ${m}; entries ${JSON.stringify(entries)}`, iseed);
    };
    expectTrustError(() => {
      built = buildTrustListXml(entries, new Date(Date.UTC(2025, 2, 13)));
    }, fail0);
    if (built === undefined) return;
    if (rng.bool(0.1)) {
      const back = parseTrustList(built);
      const valid = entries.filter((e) => e.domain.trim());
      if (back.entries.length !== valid.length) fail0(`round trip: ${valid.length} entries built, ${back.entries.length} read back (${back.warnings.join('; ')})`);
      back.entries.forEach((e, i) => {
        if (e.domain !== valid[i]!.domain.trim() || e.operatorDn !== valid[i]!.operatorDn.trim()) fail0(`round trip: entry ${i} read back as ${JSON.stringify(e)}`);
      });
      stats.roundTrips++;
    }
    doc = built;
  }
  const mutated = rng.bool(0.5) ? xmlMutate(rng, doc) : doc;
  const input: string | Buffer = rng.bool(0.7) ? mutateBytes(rng, Buffer.from(mutated, 'utf8')) : mutated;
  stats.bytes += input.length;
  const fail = (m: string): never => {
    const b = Buffer.isBuffer(input) ? input : Buffer.from(input, 'utf8');
    throw new FuzzFailure(`parseTrustList ${m}; input (base64) ${b.toString('base64').slice(0, 6000)}`, iseed);
  };
  let list: ReturnType<typeof parseTrustList> | undefined;
  if (!expectTrustError(() => (list = parseTrustList(input)), fail)) {
    stats.rejected++;
    return;
  }
  stats.parsed++;
  stats.entries += list!.entries.length;
  stats.warnings += list!.warnings.length;
  try {
    const domains = new Set(list!.entries.map((e) => e.domain.trim().toLowerCase().replace(/\.$/, '')));
    if (list!.domains !== domains.size) fail(`domains = ${list!.domains}, ${domains.size} distinct in entries`);
    for (const e of list!.entries) {
      if (!list!.isListed(e.domain)) fail(`${e.domain} listed but isListed() is false`);
      if (!list!.isDnListedFor(e.domain, e.operatorDn)) fail(`${e.operatorDn} listed for ${e.domain} but isDnListedFor() is false`);
    }
    list!.isDnListedFor('x.example', 'CN=\\');
  } catch (e) {
    if (e instanceof FuzzFailure) throw e;
    fail(`lookups threw ${e instanceof Error ? e.stack : String(e)}`);
  }
}
