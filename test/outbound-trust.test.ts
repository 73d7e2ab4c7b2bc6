// Outbound checks: A defers, then bounces, mail to peers whose certificate is untrusted or not
// listed for their domain; no envelope is ever sent to them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { simpleParser } from 'mailparser';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { prepareDemo, startDemo, type DemoLayout, type RunningDemo } from '../src/demo/space.js';
import { TestPki } from '../src/pki/index.js';
import { folderMessages, tempDir, testLogger, waitFor } from './helpers.js';

const OVERRIDES = { queue: { retrySeconds: [0.3], pollSeconds: 0.1, giveUpSeconds: 2, connectTimeoutSeconds: 3 } };

describe('outbound trust checks', () => {
  let layout: DemoLayout;
  let dir: string;
  let cleanup = () => {};
  let demo: RunningDemo;
  const fakes: SMTPServer[] = [];
  const envelopesSeen: string[] = [];

  before(async () => {
    ({ dir, cleanup } = tempDir());
    // c: listed, but its server presents a certificate from another CA (same DN text).
    // d: listed, but its server presents a demo-CA certificate whose DN is not the listed one.
    layout = await prepareDemo(dir, {
      ports: 'ephemeral',
      peers: [
        { domain: 'c.mssante.test', host: '127.0.0.1', port: 1 },
        { domain: 'd.mssante.test', host: '127.0.0.1', port: 1 },
      ],
      configOverrides: OVERRIDES,
    });
    demo = await startDemo(layout, { logger: testLogger(), configOverrides: OVERRIDES });
    const pki = await TestPki.load(layout.pkiDir);
    const other = await TestPki.create(path.join(dir, 'other'), { name: 'AUTRE IGC' });
    const cFake = await other.issueServer({ host: 'mx.c.mssante.test', siret: '99999999900018', org: 'OPERATEUR EXTERNE C.MSSANTE.TEST', dept: 'Paris (75)', altNames: ['localhost'] });
    const dFake = await pki.issueServer({ host: 'imposteur.d.mssante.test', siret: '99999999900018', org: 'IMPOSTEUR', dept: 'Paris (75)', altNames: ['localhost'] });
    for (const [domain, c] of [
      ['c.mssante.test', cFake],
      ['d.mssante.test', dFake],
    ] as const) {
      const s = new SMTPServer({
        secure: false,
        key: c.keyPem,
        cert: c.chainPem,
        authOptional: true,
        logger: false,
        onMailFrom(addr, _s, cb) {
          envelopesSeen.push(`${domain}:${addr.address}`);
          cb();
        },
        onData(stream, _s, cb) {
          stream.resume();
          stream.on('end', () => cb());
        },
      });
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
      fakes.push(s);
      demo.operators[0].config.routes[domain] = `127.0.0.1:${(s.server.address() as AddressInfo).port}`;
    }
  });
  after(async () => {
    await demo?.stop();
    await Promise.all(fakes.map((s) => new Promise((r) => s.close(() => r(undefined)))));
    cleanup();
  });

  test('untrusted and unlisted peers: deferred, then one DSN each, no envelope sent', async () => {
    const A = demo.operators[0];
    const claire = layout.operators[0].users[0];
    const t = nodemailer.createTransport({
      host: '127.0.0.1',
      port: A.ports.submission,
      requireTLS: true,
      auth: { user: claire.login, pass: claire.appPassword },
      tls: { ca: readFileSync(layout.caBundle), servername: 'localhost' },
    });
    await t.sendMail({ from: claire.addresses[0], to: 'dr.x@c.mssante.test', subject: 'Vers C', text: 'x' });
    await t.sendMail({ from: claire.addresses[0], to: 'dr.y@d.mssante.test', subject: 'Vers D', text: 'y' });
    const failed = await waitFor(async () => {
      const f = await A.store.listQueue({ status: 'failed' });
      return f.length === 2 ? f : undefined;
    }, 'both given up');
    for (const f of failed) assert.ok(f.attempts >= 2, `deferred before bouncing (attempts=${f.attempts})`);
    const c = failed.find((f) => f.domain === 'c.mssante.test')!;
    const d = failed.find((f) => f.domain === 'd.mssante.test')!;
    assert.match(c.lastError!, /certificate refused \(untrusted\)/);
    assert.match(d.lastError!, /CN=imposteur\.d\.mssante\.test.*is not listed for d\.mssante\.test/);
    const dsns = await waitFor(async () => {
      const m = await folderMessages(A, claire.addresses[0]);
      return m.length === 2 ? m : undefined;
    }, 'two DSNs');
    const texts = await Promise.all(dsns.map((m) => simpleParser(m)));
    assert.deepEqual(texts.map((p) => p.subject).sort(), ['Échec de distribution : Vers C', 'Échec de distribution : Vers D']);
    for (const m of dsns) assert.match(m.toString(), /Status: 5\.7\.[15]/);
    assert.deepEqual(envelopesSeen, [], 'no MAIL FROM reached an untrusted peer');
  });
});
