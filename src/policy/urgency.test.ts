// Rule 4 at intake: mailparser reads only the text-bearing start of a message (textBearingPrefix)
// and must find the same subject and text as a parse of the whole first 64 KB did.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simpleParser } from 'mailparser';
import { analyzeMessage } from '../mime/analyze.js';
import { CORPUS, crlf, randomCorpus } from '../../test/mime/corpus.js';
import { headerBlock } from './absence.js';
import { messageUrgencyMarkers, textBearingPrefix } from './urgency.js';

const line = 'JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\n';
const pdf = line.repeat(2000);

const crafted: { name: string; raw: Buffer }[] = [
  {
    name: 'text then a PDF',
    raw: crlf(`From: a@a.example\nSubject: compte rendu\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nBonjour,\nDemande urgente de rappel.\n--b\nContent-Type: application/pdf; name="cr.pdf"\nContent-Transfer-Encoding: base64\n\n${pdf}--b--\n`),
  },
  {
    name: 'HTML only then a PDF',
    raw: crlf(`From: a@a.example\nSubject: cr\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/html\n\n<p>Urgence : rappeler</p>\n--b\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n${pdf}--b--\n`),
  },
  {
    name: 'a PDF, then the text',
    raw: crlf(`From: a@a.example\nSubject: cr\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n${line.repeat(30)}--b\nContent-Type: text/plain\n\nurgent\n--b--\n`),
  },
  {
    name: 'alternative text and HTML, two attachments',
    raw: crlf(`From: a@a.example\nSubject: =?utf-8?q?URGENCE_r=C3=A9sultats?=\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="o"\n\n--o\nContent-Type: multipart/alternative; boundary="i"\n\n--i\nContent-Type: text/plain\n\n> urgent\nMerci\n--i\nContent-Type: text/html\n\n<p>Merci</p>\n--i--\n--o\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\n${line.repeat(80)}--o\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n${pdf}--o--\n`),
  },
  {
    name: 'one base64 attachment, no text',
    raw: crlf(`From: a@a.example\nSubject: urgent\nMIME-Version: 1.0\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename="x.bin"\nContent-Transfer-Encoding: base64\n\n${pdf}`),
  },
];

const READ_LIMIT = 64 * 1024;

test('textBearingPrefix: mailparser finds the same subject and text as on the whole head', async () => {
  let cut = 0;
  for (const { name, raw } of [...crafted, ...CORPUS, ...randomCorpus(400, 7)]) {
    const head = raw.subarray(0, READ_LIMIT);
    const info = analyzeMessage(raw);
    const prefix = textBearingPrefix(head, headerBlock(head), info);
    if (prefix.length < head.length) cut++;
    const whole = await simpleParser(head, { skipHtmlToText: false, skipImageLinks: true, skipTextLinks: true }).catch(() => undefined);
    const part = await simpleParser(prefix, { skipHtmlToText: false, skipImageLinks: true, skipTextLinks: true }).catch(() => undefined);
    assert.equal(part?.subject, whole?.subject, `${name}: subject`);
    assert.equal((part?.text ?? '').trim(), (whole?.text ?? '').trim(), `${name}: text`);
    assert.deepEqual(await messageUrgencyMarkers(head, info), await messageUrgencyMarkers(head), `${name}: markers`);
  }
  assert.ok(cut >= 4, `the crafted messages with trailing attachments are cut (${cut})`);
});

test('the crafted messages carry the markers expected', async () => {
  const markers = async (k: number) => messageUrgencyMarkers(crafted[k].raw.subarray(0, READ_LIMIT), analyzeMessage(crafted[k].raw));
  assert.deepEqual(await markers(0), ['urgente (début du texte)']);
  assert.deepEqual(await markers(2), ['urgent (début du texte)']);
  assert.deepEqual(await markers(3), ['urgence (objet)']);
  assert.deepEqual(await markers(4), ['urgent (objet)']);
});
