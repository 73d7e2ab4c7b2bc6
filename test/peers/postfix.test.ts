// Proves the PostfixPeer harness against Debian's real Postfix with real mutual TLS:
// a throwaway PKI (root CA -> intermediate CA -> leaf certificates, made with the openssl CLI),
// a Postfix instance acting as operator C (c.mssante.test), nodemailer as operator A, and a
// tiny smtp-server as operator B (b.mssante.test) that Postfix delivers to.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { AddressInfo } from 'node:net';
import type { TLSSocket, PeerCertificate } from 'node:tls';
import nodemailer from 'nodemailer';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { PostfixPeer, freePort } from './postfix.js';
import { requirePeer } from './which.js';

const execFileP = promisify(execFile);

const skip = requirePeer('postfix') ?? requirePeer('openssl');

interface Leaf {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
}
interface Pki {
  /** Self-signed mx.a.mssante.test certificate: right name, untrusted issuer. */
  rogue: Leaf;
  caFile: string;
  ca: string;
  leaf(name: string): Leaf;
}

/** Root CA -> intermediate CA -> one leaf per DNS name (serverAuth+clientAuth, SAN DNS). */
async function makePki(dir: string, names: string[]): Promise<Pki> {
  const ossl = async (...args: string[]) => {
    await execFileP('openssl', args, { cwd: dir });
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await writeFile(
    join(dir, 'ext.cnf'),
    [
      '[ca]',
      'basicConstraints = critical, CA:TRUE, pathlen:0',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid',
      ...names.flatMap((n) => [
        `[${n}]`,
        'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature',
        'extendedKeyUsage = serverAuth, clientAuth',
        `subjectAltName = DNS:${n}`,
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid',
      ]),
      '',
    ].join('\n'),
  );
  await ossl('req', '-x509', ...ec, '-keyout', 'root.key', '-out', 'root.pem', '-days', '2',
    '-subj', '/O=Caducee tests/CN=Test Root CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  await ossl('req', '-new', ...ec, '-keyout', 'int.key', '-out', 'int.csr', '-subj', '/O=Caducee tests/CN=Test Intermediate CA');
  await ossl('x509', '-req', '-in', 'int.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-set_serial', '2',
    '-days', '2', '-out', 'int.pem', '-extfile', 'ext.cnf', '-extensions', 'ca');
  await Promise.all(
    names.map(async (n, i) => {
      await ossl('req', '-new', ...ec, '-keyout', `${n}.key`, '-out', `${n}.csr`, '-subj', `/O=Caducee tests/CN=${n}`);
      await ossl('x509', '-req', '-in', `${n}.csr`, '-CA', 'int.pem', '-CAkey', 'int.key', '-set_serial', String(100 + i),
        '-days', '2', '-out', `${n}.pem`, '-extfile', 'ext.cnf', '-extensions', n);
    }),
  );
  await ossl('req', '-x509', ...ec, '-keyout', 'rogue.key', '-out', 'rogue.pem', '-days', '2',
    '-subj', '/O=Rogue/CN=mx.a.mssante.test', '-addext', 'subjectAltName=DNS:mx.a.mssante.test',
    '-addext', 'extendedKeyUsage=serverAuth,clientAuth');
  const root = await readFile(join(dir, 'root.pem'), 'utf8');
  const int = await readFile(join(dir, 'int.pem'), 'utf8');
  const ca = root + int;
  const caFile = join(dir, 'ca-bundle.pem');
  await writeFile(caFile, ca);
  const leaves = new Map<string, Leaf>();
  for (const n of names) {
    leaves.set(n, {
      cert: await readFile(join(dir, `${n}.pem`), 'utf8'),
      key: await readFile(join(dir, `${n}.key`), 'utf8'),
      certFile: join(dir, `${n}.pem`),
      keyFile: join(dir, `${n}.key`),
    });
  }
  const rogue: Leaf = {
    cert: await readFile(join(dir, 'rogue.pem'), 'utf8'),
    key: await readFile(join(dir, 'rogue.key'), 'utf8'),
    certFile: join(dir, 'rogue.pem'),
    keyFile: join(dir, 'rogue.key'),
  };
  return {
    rogue,
    caFile,
    ca,
    leaf: (n) => {
      const l = leaves.get(n);
      if (!l) throw new Error(`no leaf ${n}`);
      return l;
    },
  };
}

interface Received {
  from: string;
  to: string[];
  raw: Buffer;
  secure: boolean;
  authorized: boolean;
  peerCert: PeerCertificate | undefined;
  clientHostname: string;
}

/** Operator B's MX: STARTTLS required, client certificate requested and verified against the CA. */
async function startReceiver(leaf: Leaf, ca: string, name: string) {
  const received: Received[] = [];
  const tlsBySession = new Map<string, { authorized: boolean; peerCert: PeerCertificate | undefined }>();
  const waiters: (() => void)[] = [];
  const options: SMTPServerOptions = {
    secure: false,
    name,
    key: leaf.key,
    cert: leaf.cert,
    ca,
    requestCert: true,
    rejectUnauthorized: true,
    authOptional: true,
    disabledCommands: ['AUTH'],
    logger: false,
    onSecure(socket, session, cb) {
      const s = socket as TLSSocket;
      const peerCert = s.getPeerCertificate();
      tlsBySession.set(session.id, {
        authorized: s.authorized,
        peerCert: peerCert && Object.keys(peerCert).length > 0 ? peerCert : undefined,
      });
      cb();
    },
    onMailFrom(_addr, session, cb) {
      if (!session.secure) return cb(Object.assign(new Error('Must issue a STARTTLS command first'), { responseCode: 530 }));
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const tls = tlsBySession.get(session.id);
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
          secure: session.secure,
          authorized: tls?.authorized ?? false,
          peerCert: tls?.peerCert,
          clientHostname: session.hostNameAppearsAs,
        });
        waiters.splice(0).forEach((w) => w());
        cb();
      });
    },
  };
  const server = new SMTPServer(options);
  server.on('error', () => undefined);
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => res());
  });
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    received,
    async waitFor(n: number, timeoutMs: number): Promise<Received[]> {
      const deadline = Date.now() + timeoutMs;
      while (received.length < n) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`receiver ${name}: ${received.length}/${n} messages after ${timeoutMs} ms`);
        await new Promise<void>((res) => {
          const t = setTimeout(res, Math.min(left, 200));
          waiters.push(() => {
            clearTimeout(t);
            res();
          });
        });
      }
      return received;
    },
    close: () => new Promise<void>((res) => server.close(() => res())),
  };
}

const lf = (s: string | Buffer) => s.toString().replace(/\r\n/g, '\n');

describe('PostfixPeer: Debian Postfix as operator C on loopback, mutual TLS', { skip, timeout: 60_000 }, () => {
  let tmp: string;
  let pki: Pki;
  let peer: PostfixPeer | undefined;
  let peerE: PostfixPeer | undefined;
  let receiverB: Awaited<ReturnType<typeof startReceiver>> | undefined;
  let receiverD: Awaited<ReturnType<typeof startReceiver>> | undefined;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'caducee-postfix-'));
    await chmod(tmp, 0o755); // Postfix's virtual delivery agent (as nobody) must traverse it
    const pkiDir = join(tmp, 'pki');
    await execFileP('mkdir', ['-p', pkiDir]);
    pki = await makePki(pkiDir, ['mx.a.mssante.test', 'mx.b.mssante.test', 'mx.c.mssante.test', 'mx.e.mssante.test']);
    const b = pki.leaf('mx.b.mssante.test');
    receiverB = await startReceiver(b, pki.ca, 'mx.b.mssante.test');
    // Same certificate (mx.b) on another port, routed as if it were d.mssante.test's MX:
    // Postfix must refuse to deliver there (certificate name mismatch).
    receiverD = await startReceiver(b, pki.ca, 'mx.d.mssante.test');
    const c = pki.leaf('mx.c.mssante.test');
    const e = pki.leaf('mx.e.mssante.test');
    const portE = await freePort();
    // Two private instances started side by side: C (routes to B, D and E) and E (another Postfix).
    const started = await Promise.allSettled([
      PostfixPeer.start({
        dir: join(tmp, 'postfix-c'),
        domain: 'c.mssante.test',
        hostname: 'mx.c.mssante.test',
        certFile: c.certFile,
        keyFile: c.keyFile,
        caFile: pki.caFile,
        routes: {
          'b.mssante.test': { host: '127.0.0.1', port: receiverB.port, certName: 'mx.b.mssante.test' },
          'd.mssante.test': { host: '127.0.0.1', port: receiverD.port, certName: 'mx.d.mssante.test' },
          'e.mssante.test': { host: '127.0.0.1', port: portE, certName: 'mx.e.mssante.test' },
        },
      }),
      PostfixPeer.start({
        dir: join(tmp, 'postfix-e'),
        domain: 'e.mssante.test',
        hostname: 'mx.e.mssante.test',
        port: portE,
        certFile: e.certFile,
        keyFile: e.keyFile,
        caFile: pki.caFile,
      }),
    ]);
    // Keep whichever started, so that after() stops it even if the other failed.
    if (started[0].status === 'fulfilled') peer = started[0].value;
    if (started[1].status === 'fulfilled') peerE = started[1].value;
    for (const r of started) if (r.status === 'rejected') throw r.reason;
  });

  after(async () => {
    await Promise.all([peer?.stop(), peerE?.stop()]);
    await receiverB?.close();
    await receiverD?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  /** Operator A's client; `client` is the client certificate (default: mx.a's, from the trusted CA). */
  function transport(client: { cert?: string; key?: string } = pki.leaf('mx.a.mssante.test')) {
    return nodemailer.createTransport({
      host: '127.0.0.1',
      port: peer!.port,
      secure: false,
      requireTLS: true,
      name: 'mx.a.mssante.test',
      tls: { ca: pki.ca, cert: client.cert, key: client.key, servername: 'mx.c.mssante.test' },
      connectionTimeout: 5_000,
      greetingTimeout: 5_000,
      socketTimeout: 10_000,
    });
  }

  it('receives over STARTTLS with a trusted client certificate and delivers to the Maildir intact', async () => {
    const body =
      'Compte rendu de consultation — patient fictif, données de test.\r\n' +
      '.Une ligne qui commence par un point.\r\n' +
      'Fin.\r\n';
    const raw =
      'From: Dr A <dr.a@a.mssante.test>\r\n' +
      'To: Alice <alice@c.mssante.test>\r\n' +
      'Subject: harness inbound\r\n' +
      'Message-ID: <inbound-1@a.mssante.test>\r\n' +
      'MIME-Version: 1.0\r\n' +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      'Content-Transfer-Encoding: 8bit\r\n' +
      '\r\n' +
      body;
    const t = transport();
    try {
      const info = await t.sendMail({
        envelope: { from: 'dr.a@a.mssante.test', to: ['alice@c.mssante.test'] },
        raw: Buffer.from(raw, 'utf8'),
      });
      assert.deepEqual(info.accepted, ['alice@c.mssante.test']);
      assert.match(info.response, /^250 2\.0\.0 Ok: queued as /);
    } finally {
      t.close();
    }
    const [msg] = await peer!.waitForMessages(1, 10_000);
    assert.ok(msg);
    const text = msg.raw.toString('utf8');
    assert.ok(text.endsWith('\n\n' + lf(body)), `body not intact:\n${text}`);
    assert.match(text, /^Delivered-To: alice@c\.mssante\.test$/m);
    assert.match(text, /^Message-ID: <inbound-1@a\.mssante\.test>$/m);
    assert.match(text, /Client CN "mx\.a\.mssante\.test", Issuer "Test Intermediate CA" \(verified OK\)/);
    assert.equal((await peer!.messagesFor('alice@c.mssante.test')).length, 1);
    await peer!.waitForLog(/Trusted TLS connection established from \S+\[127\.0\.0\.1\]/);
    await peer!.waitForLog(/to=<alice@c\.mssante\.test>, relay=virtual, .*status=sent/);
  });

  it('refuses the session after STARTTLS when no client certificate is presented', async () => {
    const t = transport({});
    try {
      await assert.rejects(
        t.sendMail({
          envelope: { from: 'someone@a.mssante.test', to: ['alice@c.mssante.test'] },
          raw: 'Subject: no cert\r\n\r\nshould not arrive\r\n',
        }),
        (err: Error & { responseCode?: number; response?: string }) => {
          // Postfix answers the post-STARTTLS EHLO with 421 and hangs up: no MAIL/RCPT is possible.
          assert.equal(err.responseCode, 421, err.message);
          assert.equal(err.response, '421 4.7.1 mx.c.mssante.test Error: No client certificate presented');
          return true;
        },
      );
    } finally {
      t.close();
    }
    await peer!.waitForLog(/NOQUEUE: abort: TLS from \S+\[127\.0\.0\.1\]: No client certificate presented/);
    assert.equal((await peer!.maildirMessages()).filter((m) => m.raw.includes('should not arrive')).length, 0);
  });

  it('refuses the session when the client certificate is not from a trusted CA', async () => {
    const rogue = pki.rogue;
    const t = transport({ cert: rogue.cert, key: rogue.key });
    try {
      await assert.rejects(
        t.sendMail({
          envelope: { from: 'someone@a.mssante.test', to: ['alice@c.mssante.test'] },
          raw: 'Subject: rogue cert\r\n\r\nshould not arrive either\r\n',
        }),
        (err: Error & { responseCode?: number; response?: string }) => {
          assert.equal(err.responseCode, 421, err.message);
          assert.equal(err.response, '421 4.7.1 mx.c.mssante.test Error: Client certificate not trusted');
          return true;
        },
      );
    } finally {
      t.close();
    }
    await peer!.waitForLog(/Untrusted TLS connection established from \S+\[127\.0\.0\.1\]/);
    assert.equal((await peer!.maildirMessages()).filter((m) => m.raw.includes('should not arrive')).length, 0);
  });

  it('does not relay: RCPT for other domains is refused, even for a domain it routes', async () => {
    for (const rcpt of ['bob@elsewhere.test', 'bob@b.mssante.test']) {
      const t = transport();
      try {
        await assert.rejects(
          t.sendMail({
            envelope: { from: 'dr.a@a.mssante.test', to: [rcpt] },
            raw: 'Subject: relay attempt\r\n\r\nrelay attempt\r\n',
          }),
          (err: Error & { responseCode?: number; response?: string }) => {
            assert.equal(err.responseCode, 554, err.message);
            assert.match(err.response ?? '', /5\.7\.1 .*Relay access denied/);
            return true;
          },
        );
      } finally {
        t.close();
      }
    }
    await peer!.waitForLog(/NOQUEUE: reject: RCPT from \S+: 554 5\.7\.1 <bob@b\.mssante\.test>: Relay access denied/);
    assert.equal(receiverB!.received.length, 0);
  });

  it('delivers outbound via its route over verified TLS, presenting its client certificate', async () => {
    const raw =
      'From: Dr C <dr.c@c.mssante.test>\r\n' +
      'To: Bob <bob@b.mssante.test>\r\n' +
      'Subject: harness outbound\r\n' +
      'Message-ID: <outbound-1@c.mssante.test>\r\n' +
      '\r\n' +
      'Bonjour Bob.\r\n';
    await peer!.sendmail(raw, 'dr.c@c.mssante.test', ['bob@b.mssante.test']);
    const [got] = await receiverB!.waitFor(1, 15_000);
    assert.ok(got);
    assert.equal(got.from, 'dr.c@c.mssante.test');
    assert.deepEqual(got.to, ['bob@b.mssante.test']);
    assert.equal(got.secure, true);
    assert.equal(got.authorized, true);
    assert.equal(got.peerCert?.subject?.CN, 'mx.c.mssante.test');
    assert.equal(got.clientHostname, 'mx.c.mssante.test');
    assert.match(lf(got.raw), /^Message-ID: <outbound-1@c\.mssante\.test>$/m);
    assert.ok(lf(got.raw).endsWith('\n\nBonjour Bob.\n'));
    await peer!.waitForLog(new RegExp(`Verified TLS connection established to 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${receiverB!.port}`));
    await peer!.waitForLog(/to=<bob@b\.mssante\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent/);
  });

  it('defers instead of delivering when the next hop\'s certificate does not match the route', async () => {
    await peer!.sendmail('Subject: to d\r\n\r\nmust not leave\r\n', 'dr.c@c.mssante.test', ['dan@d.mssante.test']);
    await peer!.waitForLog(/to=<dan@d\.mssante\.test>, .*status=deferred \(.*[Cc]ertificate/, 10_000);
    assert.equal(receiverD!.received.length, 0);
  });

  it('runs two instances at once: Postfix C delivers to Postfix E over mutual TLS', async () => {
    assert.notEqual(peer!.port, peerE!.port);
    await peer!.sendmail(
      'From: dr.c@c.mssante.test\r\nTo: eve@e.mssante.test\r\nSubject: C to E\r\n\r\nPostfix to Postfix.\r\n',
      'dr.c@c.mssante.test',
      ['eve@e.mssante.test'],
    );
    const [msg] = await peerE!.waitForMessages(1, 15_000);
    assert.ok(msg);
    assert.ok(msg.raw.toString().endsWith('\n\nPostfix to Postfix.\n'));
    assert.match(msg.raw.toString(), /Client CN "mx\.c\.mssante\.test", Issuer "Test Intermediate CA" \(verified OK\)/);
    await peer!.waitForLog(new RegExp(`Verified TLS connection established to 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${peerE!.port}`));
    await peerE!.waitForLog(/Trusted TLS connection established from/);
    assert.equal((await peer!.messagesFor('eve@e.mssante.test')).length, 0);
  });
});
