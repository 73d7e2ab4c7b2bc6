// `caducee xdm …`: IHE XDM packages at the command line (docs/lps.md).
//
//   caducee xdm inspect FILE [--json]
//       FILE: an IHE_XDM.ZIP, or a message (.eml) or mailbox (.mbox) carrying one (parsed with
//       mailparser). Prints the documents, the patient, the checks and every warning.
//       exit 0: read (warnings or not); 2: unreadable or unsafe, one line on stderr.
//   caducee xdm build --cda F.xml [--cda G.xml] [--pdf F.pdf] --ins … --oid … --family … --given …
//       --birth-date YYYY-MM-DD [--gender M|F|U] [--qualified] --out OUT.zip
//       [--eml OUT.eml --from ADDR --to ADDR [--to …] [--label …]]
//       Builds the package strictly to the profile (CDA documents inside; a PDF inside only when
//       there is no CDA) and, with --eml, the MSSanté message around it (PDF beside the zip).
//       exit 2 on bad input, one line on stderr.
import { processIo, type CliIo } from './io.js';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import type { Command } from 'commander';
import { buildXdm, readCdaHeader, readXdm, xdmMessage, XdmError, type XdmBuildDocument, type XdmCode, type XdmPackage } from '../xdm/index.js';

export const EXIT_BAD_INPUT = 2;

export type XdmCliIo = CliIo;

class CliFailure extends Error {}

async function readInput(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (e) {
    throw new CliFailure(`cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

const isZip = (b: Uint8Array) => b[0] === 0x50 && b[1] === 0x4b && (b[2] === 3 || b[2] === 5 || b[2] === 7);

/** The zip attachments of a message or of every message of an mbox (RFC 4155 "From " separator lines). */
async function zipsInMessages(bytes: Buffer): Promise<{ where: string; zip: Buffer }[]> {
  const text = bytes.toString('latin1');
  const starts = text.startsWith('From ') ? [...text.matchAll(/^From .*$/gm)].map((m) => m.index!) : [0];
  const out: { where: string; zip: Buffer }[] = [];
  for (let i = 0; i < starts.length; i++) {
    let msg = bytes.subarray(starts[i], starts[i + 1] ?? bytes.length);
    if (starts.length > 1 || text.startsWith('From ')) msg = msg.subarray(msg.indexOf(0x0a) + 1);
    const parsed = await simpleParser(msg, { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true });
    for (const a of parsed.attachments)
      if (/\.zip$/i.test(a.filename ?? '') || /zip/i.test(a.contentType) || isZip(a.content))
        out.push({ where: `${starts.length > 1 ? `message ${i + 1}, ` : ''}attachment ${a.filename ?? '(no name)'}${parsed.subject ? ` of "${parsed.subject}"` : ''}`, zip: a.content });
  }
  return out;
}

function summary(pkg: XdmPackage, where: string): string {
  const lines = [`${where}: ${pkg.documents.length} document(s), metadata ${pkg.metadataPath}`];
  const ss = pkg.submissionSet;
  lines.push(`  submission set: ${ss.title ?? '(no title)'}; uniqueId ${ss.uniqueId ?? '-'}; sourceId ${ss.sourceId ?? '-'}; submitted ${ss.submissionTime ?? '-'}`);
  if (ss.patientId) lines.push(`  patient: ${ss.patientId.id} (${ss.patientId.kind}, OID ${ss.patientId.oid})`);
  const c = (x?: XdmCode) => (x ? `${x.code}${x.displayName ? ` ${x.displayName}` : ''}` : '-');
  for (const d of pkg.documents) {
    lines.push(`  - ${d.path}: ${d.mimeType ?? '(no type)'}, ${d.size} bytes, SHA-1 ${d.hash}`);
    lines.push(`    title: ${d.title ?? '-'}; uniqueId ${d.uniqueId ?? '-'}; created ${d.creationTime ?? '-'}`);
    lines.push(`    classCode ${c(d.classCode)}; typeCode ${c(d.typeCode)}; formatCode ${c(d.formatCode)}`);
    if (d.patientId) lines.push(`    patientId ${d.patientId.id} (${d.patientId.kind}, OID ${d.patientId.oid})`);
    lines.push(`    size ${d.declaredSize === undefined ? 'not declared' : d.declaredSize === d.size ? 'checked' : `MISMATCH (declared ${d.declaredSize})`}; hash ${d.declaredHash === undefined ? 'not declared' : d.declaredHash === d.hash ? 'checked' : `MISMATCH (declared ${d.declaredHash})`}`);
    for (const a of d.authors) lines.push(`    author ${[a.person, ...a.institutions].filter(Boolean).join(', ') || '-'}`);
    if (d.cda) {
      const p = d.cda.patient;
      lines.push(`    CDA: code ${d.cda.code ?? '-'} ${d.cda.displayName ?? ''}`.trimEnd());
      lines.push(`    CDA patient: ${[p.family, p.given].filter(Boolean).join(' ') || '-'}, born ${p.birthTime ?? '-'}, ${p.gender ?? '-'}, INS ${p.ins ?? '-'} (${p.kind ?? '-'})`);
    }
  }
  lines.push(`  warnings: ${pkg.warnings.length}`);
  for (const w of pkg.warnings) lines.push(`    - ${w.place}: ${w.message}`);
  return `${lines.join('\n')}\n`;
}

function parseCode(v: string): XdmCode {
  const [code, displayName, codingScheme] = v.split('^');
  if (!code) throw new CliFailure(`--type-code "${v}" is not CODE[^DISPLAY[^SYSTEM]]`);
  return { code, ...(displayName ? { displayName } : {}), codingScheme: codingScheme || '2.16.840.1.113883.6.1' };
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

interface BuildOpts {
  cda: string[];
  pdf?: string;
  ins: string;
  oid: string;
  family: string;
  given: string;
  birthDate: string;
  gender?: string;
  qualified?: boolean;
  out: string;
  eml?: string;
  from?: string;
  to: string[];
  label?: string;
  title?: string;
  typeCode?: string;
  authorRpps?: string;
  authorFamily?: string;
  authorGiven?: string;
  authorInstitution?: string;
}

export function registerXdmCommands(program: Command, io: XdmCliIo = processIo): Command {
  const xdm = program.command('xdm').description('IHE XDM packages (IHE_XDM.ZIP): inspect and build');
  const run =
    <A extends unknown[]>(name: string, fn: (...args: A) => Promise<void>) =>
    async (...args: A): Promise<void> => {
      try {
        await fn(...args);
      } catch (err) {
        if (!(err instanceof CliFailure) && !(err instanceof XdmError)) throw err;
        io.stderr(`caducee xdm ${name}: ${err.message}\n`);
        io.setExitCode(EXIT_BAD_INPUT);
      }
    };

  xdm
    .command('inspect')
    .description('read an IHE_XDM.ZIP (or the ones a .eml/.mbox carries): documents, patient, checks, warnings')
    .argument('<file>', 'IHE_XDM.ZIP, .eml or .mbox')
    .option('--json', 'one JSON object per package (document bytes left out)')
    .action(
      run('inspect', async (file: string, opts: { json?: boolean }) => {
        const bytes = await readInput(file, 'file');
        const zips = isZip(bytes) ? [{ where: path.basename(file), zip: bytes }] : await zipsInMessages(bytes);
        if (zips.length === 0) throw new CliFailure(`${file} is neither a zip archive nor a message with a zip attachment`);
        let failed: string | undefined;
        for (const z of zips) {
          try {
            const pkg = readXdm(z.zip);
            if (opts.json) io.stdout(`${JSON.stringify({ source: z.where, ...pkg, documents: pkg.documents.map(({ bytes: _b, ...d }) => d) })}\n`);
            else io.stdout(summary(pkg, z.where));
          } catch (e) {
            if (!(e instanceof XdmError)) throw e;
            failed ??= `${z.where}: ${e.message}`;
          }
        }
        if (failed) throw new CliFailure(failed);
        io.setExitCode(0);
      }),
    );

  xdm
    .command('build')
    .description('build an IHE_XDM.ZIP strictly to the profile, and optionally the MSSanté message around it')
    .option('--cda <file>', 'CDA R2 document (repeatable)', collect, [])
    .option('--pdf <file>', 'PDF: the rendition beside the zip in the message; inside the zip when there is no CDA')
    .requiredOption('--ins <ins>', "patient's INS (matricule)")
    .requiredOption('--oid <oid>', 'INS OID: 1.2.250.1.213.1.4.8 (NIR), …4.9 (NIA), …4.10/…4.11 (test)')
    .requiredOption('--family <name>', 'birth family name')
    .requiredOption('--given <name>', 'first given name')
    .requiredOption('--birth-date <date>', 'YYYY-MM-DD')
    .option('--gender <g>', 'M, F or U (default: from the CDA, else U)')
    .option('--qualified', 'the INS is qualified (X-MSS-INS: O)')
    .requiredOption('--out <file>', 'where to write IHE_XDM.ZIP')
    .option('--eml <file>', 'also write the message (RFC 5322) around the package')
    .option('--from <address>', 'sender (with --eml)')
    .option('--to <address>', 'recipient (with --eml; repeatable)', collect, [])
    .option('--label <text>', 'document label in the subject (default: the CDA display name)')
    .option('--title <text>', 'submission set title')
    .option('--type-code <code>', 'typeCode of a PDF without CDA: CODE[^DISPLAY[^SYSTEM]] (LOINC by default)')
    .option('--author-rpps <rpps>', "author's RPPS number")
    .option('--author-family <name>', "author's family name")
    .option('--author-given <name>', "author's given name")
    .option('--author-institution <name>', "author's institution")
    .action(
      run('build', async (o: BuildOpts) => {
        if (o.cda.length === 0 && !o.pdf) throw new CliFailure('give at least one --cda or a --pdf');
        if (o.gender !== undefined && !['M', 'F', 'U'].includes(o.gender)) throw new CliFailure(`--gender "${o.gender}" must be M, F or U`);
        if (o.eml && (!o.from || o.to.length === 0)) throw new CliFailure('--eml needs --from and at least one --to');
        const documents: XdmBuildDocument[] = [];
        let gender = o.gender as 'M' | 'F' | 'U' | undefined;
        let label = o.label;
        for (const f of o.cda) {
          const bytes = await readInput(f, 'CDA');
          let h;
          try {
            h = readCdaHeader(bytes.toString('utf8'), f);
          } catch (e) {
            throw new CliFailure(`${f}: ${(e as Error).message}`);
          }
          if (!h) throw new CliFailure(`${f} is not a CDA R2 ClinicalDocument`);
          if (!gender && (h.patient.gender === 'M' || h.patient.gender === 'F')) gender = h.patient.gender;
          label ??= h.displayName ?? h.title;
          documents.push({ mimeType: 'text/xml', bytes });
        }
        const pdf = o.pdf ? await readInput(o.pdf, 'PDF') : undefined;
        if (pdf && pdf.subarray(0, 5).toString('latin1') !== '%PDF-') throw new CliFailure(`${o.pdf} is not a PDF (no %PDF- header)`);
        if (pdf && documents.length === 0) {
          if (!o.typeCode) throw new CliFailure('a PDF without CDA needs --type-code CODE[^DISPLAY[^SYSTEM]]');
          const typeCode = parseCode(o.typeCode);
          label ??= typeCode.displayName;
          documents.push({ mimeType: 'application/pdf', bytes: pdf, typeCode, name: path.basename(o.pdf!) });
        }
        const patient = { ins: o.ins, oid: o.oid, family: o.family, given: o.given, birthDate: o.birthDate, gender: gender ?? 'U', qualified: !!o.qualified };
        const author = {
          ...(o.authorRpps ? { rpps: o.authorRpps } : {}),
          ...(o.authorFamily ? { family: o.authorFamily } : {}),
          ...(o.authorGiven ? { given: o.authorGiven } : {}),
          ...(o.authorInstitution ? { institution: { name: o.authorInstitution } } : {}),
          ...(o.from ? { email: o.from } : {}),
        };
        const built = buildXdm({ documents, patient, author, ...(o.title ? { title: o.title } : {}), ...(o.to.length ? { intendedRecipients: o.to } : {}) });
        await writeOut(o.out, built.zip);
        io.stdout(`${o.out}: ${built.documents.length} document(s), ${built.zip.length} bytes${built.cdaCodes.length ? `, CDA codes ${built.cdaCodes.join(', ')}` : ''}\n`);
        if (o.eml) {
          const m = await xdmMessage({ from: o.from!, to: o.to, label: label ?? 'Document', patient, zip: built.zip, cdaCodes: built.cdaCodes, ...(pdf && o.cda.length ? { pdf: { bytes: pdf, filename: path.basename(o.pdf!).toUpperCase() } } : {}) });
          await writeOut(o.eml, m.raw);
          io.stdout(`${o.eml}: ${m.subject}\n`);
        }
        io.setExitCode(0);
      }),
    );
  return xdm;
}

async function writeOut(file: string, bytes: Uint8Array) {
  try {
    await writeFile(file, bytes);
  } catch (e) {
    throw new CliFailure(`cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
