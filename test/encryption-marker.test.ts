// Encryption at rest, the marker test (issue 13, docs/encryption.md). A demo trust space runs with
// store.encryption.keyFile; messages carrying a marker in the Subject, a quoted-printable body and
// a base64 attachment are sent to a remote operator (submission → outbound queue → MX) and to a
// local mailbox, a draft is APPENDed over IMAP, and an absence message is set. Then:
// 1. every message file under each operator's message-file directory is scanned for the marker in
//    plain (any case), base64 (the three alignments, line breaks ignored) and quoted-printable
//    form: nothing — and the messages still read back with the marker over IMAP;
// 2. the WHOLE state directory (databases, WAL, logs at debug level, everything) is scanned the
//    same way, and each SQLite table and column too: where plaintext is still found is the
//    inventory of docs/encryption.md ("what is not encrypted yet"). The test fails on a place not
//    in that list and on a listed place that is now clean (the list stays true both ways).
import assert from 'node:assert/strict';
import { chmodSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import { pino } from 'pino';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { KeyRing, writeKeyFile } from '../src/store/keyring.js';
import { startOperator, StartupError } from '../src/main.js';
import { fileBlobs, folderMessages, sqliteDb, tempDir, waitFor } from './helpers.js';

const CORE = 'Mqz7Kx-rapport';
const MARKER = `${CORE}-été`;

/** The forms the marker may take in stored bytes; each a predicate over a latin1 string. */
function markerForms(): { name: string; found: (s: string, flat: string) => boolean }[] {
  const lower = CORE.toLowerCase();
  const m = Buffer.from(CORE);
  // base64 at the three alignments: only the characters that depend on the marker's bytes alone.
  const b64 = [0, 1, 2].map((k) => {
    const enc = Buffer.concat([Buffer.alloc(k), m]).toString('base64');
    const from = [0, 2, 3][k];
    const to = Math.floor((k + m.length) / 3) * 4;
    return enc.slice(from, to);
  });
  const qp = Buffer.from(MARKER)
    .toString('latin1')
    .replace(/[\x80-\xff]/g, (c) => '=' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'))
    .toLowerCase();
  return [
    { name: 'plain', found: (s) => s.toLowerCase().includes(lower) },
    { name: 'base64', found: (_s, flat) => b64.some((b) => flat.includes(b)) },
    { name: 'quoted-printable', found: (_s, flat) => flat.toLowerCase().includes(qp) },
  ];
}
const FORMS = markerForms();
function scan(bytes: Buffer): string[] {
  const s = bytes.toString('latin1');
  // Line breaks (and QP soft breaks) removed: base64 and QP lines may cut the marker.
  const flat = s.replace(/=\r?\n/g, '').replace(/[\r\n]/g, '');
  return FORMS.filter((f) => f.found(s, flat)).map((f) => f.name);
}
function* walk(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (e.isFile()) yield p;
  }
}

/**
 * Where plaintext is still found (docs/encryption.md, "What is not encrypted yet"): table.column
 * of the SQLite store, and state files by their name. Both ways checked. blob_meta.info and
 * submissions.subject are sealed since phase 2 (store/sealed-rows.ts), search_headers too
 * (store/search-seal.ts): none is left.
 */
const KNOWN_COLUMNS: string[] = [];
/** State files holding the marker (the SQLite database and its WAL held the rows above): none left; the debug logs hold none. */
const KNOWN_FILES: string[] = [];

describe('encryption at rest: the marker test', () => {
  let dir: string;
  let layout: DemoLayout;
  let demo: RunningDemo | undefined;
  let cleanup = () => {};
  let logFile: string;
  before(async () => {
    ({ dir, cleanup } = tempDir('caducee-marker-'));
    layout = await prepareDemo(path.join(dir, 'demo'), { ports: 'ephemeral' });
    const keyFile = path.join(dir, 'keys', 'keyring.json');
    writeKeyFile(keyFile, KeyRing.generate(), { exclusive: true });
    logFile = path.join(dir, 'demo', 'logs', 'operators.log');
    const logger = pino({ level: 'debug' }, pino.destination({ dest: logFile, mkdir: true, sync: true }));
    demo = await startDemo(layout, { logger, psc: false, configOverrides: { store: { encryption: { keyFile } } } });
  });
  after(async () => {
    await demo?.stop();
    cleanup();
  });

  test('message files hold no marker in any form; everything reads back; the state inventory matches docs/encryption.md', async () => {
    const [A, B] = demo!.operators;
    const a = layout.operators[0].users[0];
    const b = layout.operators[1].users[0];
    const ca = readFileSync(layout.caBundle, 'utf8');
    const smtp = nodemailer.createTransport({ host: '127.0.0.1', port: A.ports.submission, secure: false, requireTLS: true, auth: { user: a.login, pass: a.appPassword }, tls: { ca, servername: 'localhost' } });
    await smtp.sendMail({
      from: a.addresses[0],
      to: [b.addresses[0], a.addresses[0]],
      subject: `Compte rendu ${MARKER}`,
      text: `Bonjour,\n\nle compte rendu ${MARKER} est joint.\n`,
      textEncoding: 'quoted-printable',
      attachments: [{ filename: 'cr.txt', content: Buffer.from(`Résultat ${MARKER} confidentiel\n`.repeat(3)), contentType: 'text/plain', encoding: 'base64' } as any],
    });
    smtp.close();
    const got = await waitFor(async () => (await folderMessages(B, b.addresses[0])).find((m) => m.includes(CORE)), 'the message at operator B');
    assert.match(got.toString('latin1'), /Subject: =\?UTF-8\?Q\?Compte_rendu_Mqz7Kx-rapport/);
    // A draft over IMAP (APPEND).
    const imap = new ImapFlow({ host: '127.0.0.1', port: A.ports.imaps, secure: true, tls: { ca, servername: 'localhost' }, auth: { user: a.login, pass: a.appPassword }, logger: false });
    await imap.connect();
    await imap.append('Drafts', Buffer.from(`From: ${a.addresses[0]}\r\nSubject: Brouillon ${CORE}\r\n\r\nBrouillon ${CORE}\r\n`), ['\\Draft']);
    // Read back over IMAP: the delivered copy in A's INBOX, whole and a partial FETCH.
    const lock = await imap.getMailboxLock('INBOX');
    try {
      const msg = await waitFor(async () => {
        for await (const m of imap.fetch('1:*', { source: true, envelope: true })) if (m.source?.includes(CORE)) return m;
        return undefined;
      }, 'the local copy in A INBOX');
      assert.match(msg.envelope!.subject!, new RegExp(MARKER));
      const { content } = await imap.download(String(msg.seq), '2', {});
      const chunks: Buffer[] = [];
      for await (const c of content!) chunks.push(c as Buffer);
      assert.match(Buffer.concat(chunks).toString('utf8'), new RegExp(MARKER));
      // SEARCH answered by the sealed header index (tokens, then the opened values): the message
      // found by a part of its Subject, a From: and a Message-ID needle; a near miss finds nothing.
      assert.deepEqual(await imap.search({ subject: MARKER.toLowerCase() }, { uid: true }), [msg.uid]);
      assert.deepEqual(await imap.search({ subject: CORE, from: a.addresses[0].slice(0, 4) }, { uid: true }), [msg.uid]);
      assert.deepEqual(await imap.search({ subject: `${CORE}x` }, { uid: true }), []);
    } finally {
      lock.release();
      await imap.logout();
    }

    // An absence message with the marker (the texts a professional writes: sealed rows too),
    // set once every message is in, so that no automatic reply goes out.
    const box = (await A.store.findMailboxByAddress(a.addresses[0]))!;
    await A.store.setAbsence({ mailboxId: box.id, startsAt: null, endsAt: null, subject: `Congés ${MARKER}`, body: `Absente, ${MARKER}.`, externalBody: `Écrivez au secrétariat ${MARKER}.`, substitute: null, updatedBy: a.login });
    assert.equal((await A.store.getAbsence(box.id))!.body, `Absente, ${MARKER}.`);

    // 1. The message files: nothing in any form.
    let files = 0;
    for (const op of [A, B]) {
      for (const f of walk(fileBlobs(op).dir)) {
        files++;
        assert.deepEqual(scan(readFileSync(f)), [], `marker found in message file ${f}`);
      }
    }
    assert.ok(files >= 3, `message files scanned: ${files}`);

    // 2. The whole state directory, file by file, and the SQLite tables column by column.
    await new Promise((r) => setTimeout(r, 200)); // the log destination is sync; this lets the last lines land
    const foundFiles = new Set<string>();
    for (const f of walk(path.join(dir, 'demo'))) {
      const forms = scan(readFileSync(f));
      if (forms.length) {
        const rel = path.relative(path.join(dir, 'demo'), f);
        // Per operator the same names: keep the part under the operator's data directory.
        const name = /(^|\/)(caducee\.sqlite(-wal|-shm)?)$/.exec(rel)?.[2] ?? rel;
        foundFiles.add(name);
        process.stdout.write(`# plaintext marker (${forms.join(', ')}) in ${rel} (${statSync(f).size} B)\n`);
      }
    }
    const foundColumns = new Set<string>();
    for (const op of [A, B]) {
      const db = sqliteDb(op);
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as { name: string }[];
      for (const { name } of tables) {
        const cols = db.prepare(`PRAGMA table_info("${name}")`).all() as { name: string }[];
        for (const c of cols) {
          const rows = db.prepare(`SELECT CAST("${c.name}" AS BLOB) v FROM "${name}" WHERE "${c.name}" IS NOT NULL`).all() as { v: Buffer }[];
          const forms = new Set(rows.flatMap((r) => scan(Buffer.isBuffer(r.v) ? r.v : Buffer.from(String(r.v)))));
          if (forms.size) {
            foundColumns.add(`${name}.${c.name}`);
            process.stdout.write(`# plaintext marker (${[...forms].join(', ')}) in ${op.config.operator.hostname} ${name}.${c.name}\n`);
          }
        }
      }
    }
    assert.deepEqual([...foundColumns].sort(), [...KNOWN_COLUMNS].sort(), 'columns holding plaintext: update docs/encryption.md and KNOWN_COLUMNS together');
    // The -wal may or may not hold it when scanned (checkpoints): the database file or its WAL must.
    const files2 = [...foundFiles].map((f) => (f === 'caducee.sqlite-wal' ? 'caducee.sqlite' : f));
    assert.deepEqual([...new Set(files2)].sort(), [...KNOWN_FILES].sort(), 'state files holding plaintext: update docs/encryption.md and KNOWN_FILES together');
    assert.ok(statSync(logFile).size > 1000, 'the debug log was written (and scanned)');
  });

  test('a key file other local users can read: the operator refuses to start, naming the file and the fix', async () => {
    const config = demo!.operators[0].config;
    await demo!.stop();
    demo = undefined;
    const keyFile = config.store.encryption.keyFile!;
    chmodSync(keyFile, 0o644);
    await assert.rejects(startOperator(config, { logger: pino({ level: 'silent' }) }), (e: any) => e instanceof StartupError && e.message.includes(`${keyFile} (store.encryption.keyFile) has mode 0644`) && e.message.includes(`chmod 600 ${keyFile}`));
    chmodSync(keyFile, 0o600);
  });
});
