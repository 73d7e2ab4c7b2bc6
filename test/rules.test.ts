// Golden rules 1, 2 and 4 (docs/policy.md) on a running demo trust space: real sockets (SMTP
// submission, IMAP, a local FHIR endpoint) and the `caducee rules` command as a process.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { simpleParser, type ParsedMail } from 'mailparser';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import type { Operator } from '../src/main.js';
import { secretDigest } from '../src/auth/index.js';
import { SESSION_COOKIE } from '../src/http/session.js';
import { AbsenceSettingsService } from '../src/policy/absence-service.js';
import { businessHoursBetween, parisDay } from '../src/policy/calendar.js';
import { UrgencyResponder } from '../src/policy/urgency.js';
import { dialogue, folderMessages, rawImap, submitAs, tempDir, testLogger, waitFor } from './helpers.js';

const BIN = path.resolve('bin/caducee.js');
const FAST_QUEUE = { queue: { retrySeconds: [0.3], pollSeconds: 0.1, giveUpSeconds: 600, connectTimeoutSeconds: 3 } };

function caducee(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** As caducee(), without blocking this process (its local FHIR endpoint must answer meanwhile). */
function caduceeAsync(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 }, (err: any, stdout, stderr) => resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr })),
  );
}

/** The first instant after `from` (by steps of one hour) at least `hours` business hours later. */
function businessLater(from: Date, hours: number): Date {
  let t = from.getTime();
  while (businessHoursBetween(from, t) < hours) t += 3_600_000;
  return new Date(t);
}

describe('golden rules on a demo trust space', () => {
  let cleanup = () => {};
  let layout: DemoLayout;
  let demo: RunningDemo;
  let A: Operator;
  let claire: DemoLayout['operators'][number]['users'][number];
  let secretariat: DemoLayout['operators'][number]['users'][number];
  let configA: string;
  let fhir: http.Server;
  const patches: { method: string; url: string; body: any }[] = [];

  before(async () => {
    let dir: string;
    ({ dir, cleanup } = tempDir());
    // A local FHIR endpoint standing for the national directory (ANS Annuaire Santé API).
    fhir = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        patches.push({ method: req.method!, url: req.url!, body: body ? JSON.parse(body) : undefined });
        res.writeHead(200, { 'content-type': 'application/fhir+json' });
        res.end(JSON.stringify({ resourceType: 'Practitioner', id: 'x' }));
      });
    });
    await new Promise<void>((r) => fhir.listen(0, '127.0.0.1', r));
    const overrides = { ...FAST_QUEUE, directory: { publish: { endpoint: `http://127.0.0.1:${(fhir.address() as AddressInfo).port}/fhir/v2`, retryDelaysSeconds: [0], timeoutSeconds: 5 } } };
    layout = await prepareDemo(dir, { ports: 'ephemeral', configOverrides: overrides });
    demo = await startDemo(layout, { logger: testLogger(), configOverrides: overrides });
    [A] = demo.operators;
    [claire, secretariat] = layout.operators[0].users;
    configA = layout.operators[0].config;
  });
  after(async () => {
    await demo?.stop();
    fhir?.close();
    cleanup();
  });

  const parsed = async (op: Operator, address: string): Promise<ParsedMail[]> => Promise.all((await folderMessages(op, address)).map((m) => simpleParser(m)));

  describe('rule 1: the reading guard', () => {
    const notices = async (address: string, mailbox: string) => (await parsed(A, address)).filter((m) => m.subject === `Messages non lus dans ${mailbox}`);

    test('the owner, then the secretariat, get one notice each; reading stops them', async () => {
      const doctor = claire.addresses[0];
      const org = secretariat.addresses[0];
      const paul = layout.operators[1].users[0];
      const sent = new Date();
      await submitAs(demo.operators[1].ports.submission, layout.caBundle, paul, { from: paul.addresses[0], to: doctor, subject: 'Résultats de M. DUPONT', text: 'Contenu confidentiel.' });
      await waitFor(async () => (await folderMessages(A, doctor)).length >= 1 || undefined, 'the message at A');

      // Below the threshold: nothing.
      assert.equal((await A.rules.run(businessLater(sent, 20))).readingNotices.length, 0);
      // One business day later (level 1): the owner only, once that day whatever the number of runs.
      const day1 = businessLater(sent, 25);
      const r1 = caducee(['rules', 'run', '--now', day1.toISOString(), '--json', '--config', configA]);
      assert.equal(r1.code, 0, r1.stderr);
      assert.deepEqual(JSON.parse(r1.stdout).readingNotices, [{ mailbox: doctor, level: 1, to: [doctor] }]);
      // Later the same Paris day (day1 may be late in the evening: an hour later can be the next day,
      // which may have its own notice).
      const sameDay = [3_600_000, 60_000, 1].map((d) => new Date(day1.getTime() + d)).find((t) => parisDay(t) === parisDay(day1))!;
      assert.equal((await A.rules.run(sameDay)).readingNotices.length, 0, 'at most one notice per mailbox per day');
      const [n1] = await notices(doctor, doctor);
      assert.ok(n1, 'the notice is in the owner’s INBOX');
      assert.equal(n1.headers.get('auto-submitted'), 'auto-generated');
      assert.equal(n1.from?.value[0].address, `ne-pas-repondre@${layout.operators[0].domain}`);
      assert.match(n1.text ?? '', new RegExp(`de .*${paul.addresses[0].replace(/\./g, '\\.')}.*, reçu le `));
      assert.doesNotMatch(n1.text ?? '', /DUPONT|confidentiel/, 'never the subject or the content');
      assert.equal((await notices(org, doctor)).length, 0, 'not yet the secretariat');

      // Two business days later (level 2): the secretariat (read delegate) too.
      const day2 = businessLater(sent, 49);
      const r2 = await A.rules.run(day2);
      assert.deepEqual(r2.readingNotices, [{ mailbox: doctor, level: 2, to: [doctor, org] }]);
      assert.equal((await notices(org, doctor)).length, 1, 'the secretariat got one notice');
      assert.equal((await A.rules.run(day2)).readingNotices.length, 0);

      // The secretariat reads the message over IMAP (\Seen by an entitled delegate).
      const c = await rawImap(A.ports.imaps, readFileSync(layout.caBundle, 'utf8'));
      assert.match((await c.cmd(`LOGIN ${secretariat.login} "${secretariat.appPassword}"`)).at(-1)!, /OK/);
      // The physician's mailbox as the secretariat sees it (imap/namespace.ts: other users' mailboxes).
      assert.match((await c.cmd(`SELECT "Autres utilisateurs/${doctor}/INBOX"`)).at(-1)!, /OK/);
      assert.match((await c.cmd('STORE 1 +FLAGS (\\Seen)')).at(-1)!, /OK/);
      c.close();
      const mb = await A.core.requireMailbox(doctor);
      assert.ok((await A.store.getActivity(mb.id))?.lastReadAt, 'the read is recorded as activity');
      // The notices themselves are not mail waiting to be read: no further notice.
      assert.equal((await A.rules.run(businessLater(sent, 73))).readingNotices.length, 0);
      assert.equal((await notices(doctor, doctor)).length, 2);
      assert.equal((await notices(org, doctor)).length, 1);
    });
  });

  describe('rule 4: not for urgent information', () => {
    const urgentAnswers = async (op: Operator, address: string) => (await parsed(op, address)).filter((m) => /^Message urgent non lu/.test(m.subject ?? ''));
    const absenceReplies = async (op: Operator, address: string) => (await parsed(op, address)).filter((m) => /^Absence : /.test(m.subject ?? ''));

    test('an urgent message is answered only when the recipient is away or behind on reading', async () => {
      const B = demo.operators[1];
      const [paul, accueil] = layout.operators[1].users;
      const doctor = claire.addresses[0];
      const send = (u: typeof paul, subject: string, text = 'Merci de me rappeler.', headers: Record<string, string> = {}) =>
        submitAs(B.ports.submission, layout.caBundle, u, { from: u.addresses[0], to: doctor, subject, text, headers });
      const count = async () => (await folderMessages(A, doctor)).length;

      // Present and up to date with her reading: no answer, however urgent.
      let n = await count();
      await send(paul, 'URGENT : patient hospitalisé');
      await waitFor(async () => (await count()) > n || undefined, 'the first urgent message at A');
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal((await urgentAnswers(B, paul.addresses[0])).length, 0);

      // Away: the urgent message gets the urgency answer (and no absence reply besides);
      // a message without urgency from another sender gets the absence reply only.
      await new AbsenceSettingsService({ core: A.core }).set({ administrator: 'root' }, doctor, { endsAt: new Date(Date.now() + 5 * 86_400_000).toISOString(), substitute: secretariat.addresses[0] });
      n = await count();
      const urgent = await send(paul, 'Résultats', "Bonjour,\nC'est une URGENCE : la kaliémie est à 7.", { 'X-Priority': '3' });
      const answer = await waitFor(async () => (await urgentAnswers(B, paul.addresses[0]))[0], 'the urgency answer at B');
      assert.equal(answer.subject, 'Message urgent non lu : Résultats');
      assert.equal(answer.headers.get('auto-submitted'), 'auto-replied');
      assert.equal(answer.inReplyTo, urgent.messageId);
      assert.match(answer.text ?? '', /a bien été distribué, mais il ne sera pas lu rapidement/);
      assert.match(answer.text ?? '', /appelez par téléphone/);
      assert.match(answer.text ?? '', new RegExp(`écrire à ${secretariat.addresses[0].replace(/\./g, '\\.')}`));
      await send(accueil, 'Planning de la semaine');
      await waitFor(async () => (await absenceReplies(B, accueil.addresses[0]))[0], 'the absence reply to the non-urgent message');
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal((await absenceReplies(B, paul.addresses[0])).length, 0, 'one automatic answer per message: no absence reply besides');
      assert.equal((await urgentAnswers(B, accueil.addresses[0])).length, 0);
      assert.ok((await count()) >= n + 2);
      await new AbsenceSettingsService({ core: A.core }).clear({ administrator: 'root' }, doctor);
    });

    test('behind on reading (two business days later): the urgency answer says so', async () => {
      const B = demo.operators[1];
      const paul = layout.operators[1].users[0];
      const cab = claire.addresses[1];
      await submitAs(B.ports.submission, layout.caBundle, paul, { from: paul.addresses[0], to: cab, subject: 'Compte rendu', text: 'x' });
      const urgent = await submitAs(B.ports.submission, layout.caBundle, paul, { from: paul.addresses[0], to: cab, subject: 'Demande', text: 'x', headers: { Importance: 'High' } });
      await waitFor(async () => (await folderMessages(A, cab)).length >= 2 || undefined, 'both messages at A');
      const later = businessLater(new Date(), 50);
      // The operator's own responder, with its clock two business days ahead.
      const responder = new UrgencyResponder({
        core: A.core,
        blobs: A.blobs,
        trust: A.trust,
        hostname: 'mx.a.mssante.test',
        behindOnReading: async (m, now) => (await A.rules.readingStatus(m, now)).level > 0,
        periodDays: 1,
        logger: testLogger(),
        now: () => later,
      });
      const mb = await A.core.requireMailbox(cab);
      const folder = (await A.store.getFolder(mb.id, 'INBOX'))!;
      const last = (await A.store.listMessages(folder.id)).at(-1)!;
      await responder.afterDelivery({ blobId: last.blobId, envelopeFrom: paul.addresses[0], mailboxIds: [mb.id] });
      const answer = await waitFor(async () => (await urgentAnswers(B, paul.addresses[0])).find((m) => m.inReplyTo === urgent.messageId), 'the answer at B');
      assert.match(answer.text ?? '', /attendent déjà d’être lus/);
      assert.equal(answer.from?.value[0].address, cab);
    });

    test('the composer’s check: urgency words and a local recipient who is away (HTTPS, session, CSRF)', async () => {
      const doctor = claire.addresses[0];
      await new AbsenceSettingsService({ core: A.core }).set({ administrator: 'root' }, doctor, { endsAt: new Date(Date.now() + 5 * 86_400_000).toISOString() });
      const user = await A.core.requireUser(secretariat.login);
      const token = randomBytes(32).toString('base64url');
      const csrf = randomBytes(32).toString('base64url');
      const t = Date.now();
      await A.store.createHttpSession({ tokenHash: secretDigest(token), userId: user.id, method: 'PASSWORD+TOTP', stage: 'full', csrfToken: csrf, createdAt: t, lastSeenAt: t, expiresAt: t + 3_600_000, remote: null, userAgent: null });
      const check = (json: unknown, withCsrf = true) =>
        new Promise<{ status: number; body: any }>((resolve, reject) => {
          const url = new URL('/api/v1/compose/check', layout.operators[0].https!);
          const headers: Record<string, string> = { accept: 'application/json', 'content-type': 'application/json', cookie: `${SESSION_COOKIE}=${token}` };
          if (withCsrf) headers['x-csrf-token'] = csrf;
          const r = https.request(url, { method: 'POST', headers, ca: readFileSync(layout.caBundle), agent: false }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d) => (text += d));
            res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined }));
          });
          r.on('error', reject);
          r.end(JSON.stringify(json));
        });
      const r = await check({ subject: 'Très Urgént', text: 'Bonjour', to: [doctor, 'paul.bernard@b.mssante.test'] });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.urgent, true);
      assert.deepEqual(r.body.markers, ['urgent (objet)']);
      assert.equal(r.body.warn, true);
      assert.deepEqual(r.body.notReadSoon.map((x: any) => [x.address, x.reason]), [[doctor, 'absent']]);
      assert.deepEqual(r.body.refused, [], 'a local mailbox and a liste-blanche domain are accepted');
      // Refused at once (the composer's chip): outside the liste blanche, unknown local mailbox.
      const unknown = `personne.${randomBytes(3).toString('hex')}@${doctor.split('@')[1]}`;
      const outside = await check({ subject: 'x', text: '', to: ['Dr.House@Gmail.com', unknown, 'paul.bernard@b.mssante.test'] });
      assert.equal(outside.status, 200, JSON.stringify(outside.body));
      assert.deepEqual(
        outside.body.refused.map((x: any) => x.address),
        ['dr.house@gmail.com', unknown],
      );
      assert.match(outside.body.refused[0].reason, /hors de l’espace de confiance MSSanté/);
      assert.match(outside.body.refused[1].reason, /Adresse inconnue/);
      const calm = await check({ subject: 'Planning', text: 'Bonjour', to: [doctor] });
      assert.equal(calm.body.urgent, false);
      assert.equal(calm.body.warn, false);
      assert.equal((await check({ subject: 'x' }, false)).body.code, 'csrf');
      await new AbsenceSettingsService({ core: A.core }).clear({ administrator: 'root' }, doctor);
    });
  });

  describe('rule 2: unused addresses', () => {
    test('report, warning, suspension (450), deletion with export and unpublication, then 550 5.1.1 naming the substitute', async () => {
      const B = demo.operators[1];
      const configB = layout.operators[1].config;
      const paul = layout.operators[1].users[0];
      const cab = paul.addresses[1];
      const run = async (args: string[]) => {
        const r = await caduceeAsync([...args, '--config', configB]);
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
        return r.stdout;
      };
      // Published first, as the operator does (caducee directory publish).
      await run(['directory', 'publish']);
      assert.ok(patches.some((p) => JSON.stringify(p.body).includes(cab)), 'the cabinet mailbox was published');
      await new AbsenceSettingsService({ core: B.core }).set({ administrator: 'root' }, cab, { substitute: paul.addresses[0] });
      const day = (n: number) => new Date(Date.now() + n * 86_400_000).toISOString();

      const report = JSON.parse(await run(['rules', 'report', '--json', '--now', day(91)]));
      const row = report.mailboxes.find((m: any) => m.mailbox === cab);
      assert.equal(row.unused.step, 'warn');
      assert.ok(row.unused.idleDays >= 90);

      assert.match(await run(['rules', 'run', '--now', day(91)]), new RegExp(`${cab.replace(/\./g, '\\.')}: warned`));
      const warning = (await parsed(B, cab)).find((m) => m.subject === `Adresse inutilisée : ${cab}`);
      assert.ok(warning, 'the owner is warned in the mailbox itself');
      assert.match(warning.text ?? '', /sera suspendue/);
      // Within the grace period: nothing more. After it: suspended, and the MX answers 450 4.2.1.
      assert.doesNotMatch(await run(['rules', 'run', '--now', day(100)]), new RegExp(`${cab.replace(/\./g, '\\.')}: `));
      assert.match(await run(['rules', 'run', '--now', day(122)]), new RegExp(`${cab.replace(/\./g, '\\.')}: suspended`));
      const a = layout.operators[0];
      const mx = (rcpt: string) =>
        dialogue({ port: B.ports.mx, cert: readFileSync(a.cert, 'utf8'), key: readFileSync(a.key, 'utf8'), commands: [`MAIL FROM:<${claire.addresses[0]}>`, `RCPT TO:<${rcpt}>`] });
      assert.match((await mx(cab))[1], /^450 4\.2\.1 /);

      // Deletion needs the administrator's confirmation.
      const refused = await caduceeAsync(['rules', 'delete', '--mailbox', cab, '--config', configB]);
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /--confirm/);
      const before = patches.length;
      const out = JSON.parse(await run(['rules', 'delete', '--mailbox', cab, '--confirm', '--json']));
      assert.equal(out.substitute, paul.addresses[0]);
      assert.equal(out.unpublished.published, true, out.unpublished.detail);
      assert.ok(out.messages >= 1);
      assert.match(readFileSync(out.export, 'latin1'), /^From MAILER-DAEMON /);
      const del = patches.slice(before);
      assert.equal(del.length, 1);
      assert.equal(del[0].method, 'PATCH');
      assert.deepEqual(
        del[0].body.parameter.map((p: any) => [p.part[0].valueCode, p.part[1].valueString]),
        [['delete', `Practitioner.telecom.where(value='${cab}')`]],
      );
      assert.equal((await B.core.requireMailbox(cab)).state, 'deleted');
      const [, rcpt] = await mx(cab);
      assert.match(rcpt, /^550 5\.1\.1 /);
      assert.match(rcpt, new RegExp(`adresse supprimee, ecrivez a ${paul.addresses[0].replace(/\./g, '\\.')}`));
    });
  });
});
