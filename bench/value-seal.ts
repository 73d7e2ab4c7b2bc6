// The CPU cost of sealing and opening row values (store/value-seal.ts, docs/encryption.md "Values
// in rows"): a tracking subject (~60 B), an absence text (~600 B) and the cached analysis of a
// message with attachments (blob_meta.info, a few KB of JSON from mime/ analyzeMessage).
//   node --import tsx bench/value-seal.ts [--rounds N]
import { parseArgs } from 'node:util';
import { analyzeMessage } from '../src/mime/index.js';
import { KeyRing } from '../src/store/keyring.js';
import { ValueSealer } from '../src/store/value-seal.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '20000' } } });
const rounds = Number(values.rounds);
const attachment = (n: number) =>
  `--b\r\nContent-Type: application/pdf; name="compte-rendu-${n}.pdf"\r\nContent-Disposition: attachment; filename="compte-rendu-${n}.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n`;
const message = Buffer.from(
  'From: "Dr Claire Martin" <claire.martin@hopital.mssante.test>\r\nTo: accueil@clinique.mssante.test, "Dr Jean Dupont" <jean.dupont@clinique.mssante.test>\r\n' +
    'Subject: =?UTF-8?Q?Compte_rendu_op=C3=A9ratoire?=\r\nMessage-ID: <a1@hopital.mssante.test>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n' +
    'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBonjour,\r\n' +
    [1, 2, 3, 4].map(attachment).join('') +
    '--b--\r\n',
);
const values_: [string, string][] = [
  ['submissions.subject', 'Compte rendu opératoire de Mme Durand (bilan post-opératoire)'],
  ['absences.body', 'Je suis absente du cabinet jusqu’au 4 janvier. '.repeat(12)],
  ['blob_meta.info', JSON.stringify(analyzeMessage(message))],
];
const sealer = new ValueSealer(KeyRing.generate());
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
process.stdout.write(`value-seal: ${rounds} rounds each, node ${process.version}, load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
for (const [column, text] of values_) {
  const context = `${column}:42`;
  for (let i = 0; i < 1000; i++) sealer.open(sealer.seal(text, context), context); // warm-up
  let t = cpu();
  const sealed: Buffer[] = [];
  for (let i = 0; i < rounds; i++) sealed.push(sealer.seal(text, context));
  const sealUs = ((cpu() - t) * 1000) / rounds;
  t = cpu();
  for (const v of sealed) sealer.open(v, context);
  const openUs = ((cpu() - t) * 1000) / rounds;
  process.stdout.write(`  ${column.padEnd(20)} ${String(Buffer.byteLength(text)).padStart(5)} B → ${String(sealed[0]!.length).padStart(5)} B sealed: seal ${sealUs.toFixed(1)} µs CPU, open ${openUs.toFixed(1)} µs CPU\n`);
}
