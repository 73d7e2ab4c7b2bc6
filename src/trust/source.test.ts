import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { buildTrustListXml, TrustListError, type TrustList } from './list.js';
import { parseChecksumText, sha256Hex, TrustListSource } from './source.js';

const MIPIH = 'CN=medimail-asip.mipih.fr,OU=318310021300028,O=GIP MIPIH,ST=Haute-Garonne (31),C=FR';
const V1 = buildTrustListXml([{ domain: 'a.mssante.fr', operatorDn: MIPIH }], new Date('2025-01-01T00:00:00Z'));
const V2 = buildTrustListXml(
  [
    { domain: 'a.mssante.fr', operatorDn: MIPIH },
    { domain: 'b.mssante.fr', operatorDn: 'CN=mss.b.fr,O=B,C=FR' },
  ],
  new Date('2025-02-01T00:00:00Z'),
);
const EMPTY = buildTrustListXml([], new Date('2025-03-01T00:00:00Z'));

type LogLine = { level: number; msg: string; [k: string]: unknown };
function captureLogger(): { logger: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { logger, lines };
}
const WARN = 40;

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'caducee-trust-'));
}

describe('TrustListSource with a file', () => {
  let dir: string;
  before(() => {
    dir = tempDir();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('loads, keeps the last good list on garbage, picks up a new valid list', async () => {
    const file = join(dir, 'list1.xml');
    writeFileSync(file, V1);
    const { logger, lines } = captureLogger();
    const src = new TrustListSource({ source: file, logger });
    assert.throws(() => src.current(), /not loaded yet/);
    const updates: TrustList[] = [];
    src.on('updated', (l) => updates.push(l));

    const first = await src.load();
    assert.equal(first.entries.length, 1);
    assert.equal(src.current(), first);
    assert.equal(updates.length, 1);

    for (const garbage of ['', '<html><body>502 Bad Gateway</body></html>', V2.slice(0, V2.length / 2), '{"x":1}']) {
      writeFileSync(file, garbage);
      const r = await src.refresh();
      assert.equal(r.ok, false);
      assert.equal(src.current(), first, 'the last good list stays in force');
      const warn = lines.filter((l) => l.level === WARN).at(-1)!;
      assert.equal(warn.msg, 'trust list refresh failed; keeping the last good list');
      assert.equal(warn['source'], file);
      assert.equal(typeof warn['error'], 'string');
      assert.deepEqual((warn['keptList'] as { entries: number }).entries, 1);
    }
    assert.equal(updates.length, 1);
    assert.match(src.status().lastError!, /expected/);

    writeFileSync(file, V2);
    const r = await src.refresh();
    assert.ok(r.ok && r.changed);
    assert.equal(src.current().entries.length, 2);
    assert.ok(src.current().isListed('b.mssante.fr'));
    assert.equal(updates.length, 2);
    assert.equal(updates[1], src.current());
    assert.equal(src.status().lastError, undefined);
    assert.equal(src.status().sha256, sha256Hex(Buffer.from(V2)));

    // Same bytes again: no new list, no event.
    const same = await src.refresh();
    assert.ok(same.ok && !same.changed);
    assert.equal(updates.length, 2);
  });

  it('keeps the last good list when the file disappears', async () => {
    const file = join(dir, 'list2.xml');
    writeFileSync(file, V1);
    const src = new TrustListSource({ source: file, logger: captureLogger().logger });
    const first = await src.load();
    rmSync(file);
    const r = await src.refresh();
    assert.ok(!r.ok && /ENOENT/.test(r.error));
    assert.equal(src.current(), first);
  });

  it('refuses to replace a non-empty list by an empty one', async () => {
    const file = join(dir, 'list3.xml');
    writeFileSync(file, V1);
    const src = new TrustListSource({ source: file, logger: captureLogger().logger });
    const first = await src.load();
    writeFileSync(file, EMPTY);
    const r = await src.refresh();
    assert.ok(!r.ok && /no usable entry/.test(r.error));
    assert.equal(src.current(), first);
  });

  it('verifies a pinned SHA-256', async () => {
    const file = join(dir, 'list4.xml');
    writeFileSync(file, V1);
    const good = new TrustListSource({ source: file, sha256: sha256Hex(Buffer.from(V1)).toUpperCase(), logger: captureLogger().logger });
    await good.load();
    writeFileSync(file, V2); // a valid list, but not the pinned one
    const r = await good.refresh();
    assert.ok(!r.ok && r.error.startsWith(`SHA-256 mismatch: expected ${sha256Hex(Buffer.from(V1))}, got ${sha256Hex(Buffer.from(V2))}`));
    assert.equal(good.current().entries.length, 1);

    const bad = new TrustListSource({ source: file, sha256: '0'.repeat(64), logger: captureLogger().logger });
    await assert.rejects(bad.load(), (err: unknown) => err instanceof TrustListError && /cannot load the trust list from .*: SHA-256 mismatch/.test(err.message));
    assert.throws(() => bad.current(), /not loaded yet/);
  });

  it('follows a checksum file (the ANS `checksum`, digest possibly written twice)', async () => {
    const file = join(dir, 'list5.xml');
    const sum = join(dir, 'checksum');
    writeFileSync(file, V1);
    writeFileSync(sum, sha256Hex(Buffer.from(V1)));
    const { logger, lines } = captureLogger();
    const src = new TrustListSource({ source: file, sha256: sum, logger });
    await src.load();
    writeFileSync(file, V2); // list replaced, checksum not yet
    const r = await src.refresh();
    assert.ok(!r.ok && /SHA-256 mismatch/.test(r.error));
    assert.equal(src.current().entries.length, 1);
    assert.ok(lines.some((l) => l.level === WARN && /SHA-256 mismatch/.test(String(l['error']))));
    const d2 = sha256Hex(Buffer.from(V2));
    writeFileSync(sum, d2 + d2); // written twice in a row, as in a published copy
    const r2 = await src.refresh();
    assert.ok(r2.ok && r2.changed);
    assert.equal(src.current().entries.length, 2);
    writeFileSync(sum, 'not a digest');
    writeFileSync(file, V1);
    const r3 = await src.refresh();
    assert.ok(!r3.ok && /expected a SHA-256 hex digest/.test(r3.error));
    assert.equal(src.current().entries.length, 2);
  });

  it('refreshes on a timer after start() and stops after stop()', async () => {
    const file = join(dir, 'list6.xml');
    writeFileSync(file, V1);
    const src = new TrustListSource({ source: file, refreshIntervalMs: 20, logger: captureLogger().logger });
    await src.load();
    src.start();
    // The refresh timer is unref'd (it must not keep a process alive): hold the loop open here.
    const guard = setTimeout(() => src.emit('refresh-failed', 'test timeout: no refresh within 5 s'), 5000);
    try {
      writeFileSync(file, V2);
      const outcome = await Promise.race([
        once(src, 'updated').then(([l]) => l as TrustList),
        once(src, 'refresh-failed').then(([e]) => String(e)),
      ]);
      assert.ok(typeof outcome !== 'string', String(outcome));
      assert.equal(outcome.entries.length, 2);
    } finally {
      clearTimeout(guard);
      src.stop();
    }
  });

  it('shares one attempt between concurrent refreshes', async () => {
    const file = join(dir, 'list7.xml');
    writeFileSync(file, V1);
    const src = new TrustListSource({ source: file, logger: captureLogger().logger });
    const [a, b] = [src.refresh(), src.refresh()];
    assert.equal(a, b);
    assert.ok((await a).ok);
  });

  it('rejects plain http:// and unknown schemes at construction', () => {
    assert.throws(() => new TrustListSource({ source: 'http://example.org/l.xml' }), /plain http:\/\/ is not accepted/);
    assert.throws(() => new TrustListSource({ source: 'ftp://example.org/l.xml' }), /unsupported URL scheme/);
    assert.throws(() => new TrustListSource({ source: '/x', sha256: 'http://example.org/checksum' }), /sha256: plain http/);
    assert.throws(() => new TrustListSource({ source: '/x', sha256: 'abcd' }), /expected a SHA-256 hex digest \(64 hex digits\), found 4/);
  });
});

describe('TrustListSource over HTTPS', () => {
  let dir: string;
  let server: Server;
  let base: string;
  let cert: string;
  let opensslError: string | undefined;
  const routes = new Map<string, { status: number; body: string }>();

  before(async () => {
    dir = tempDir();
    try {
      execFileSync(
        'openssl',
        [
          'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
          '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1',
          '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
        ],
        { stdio: 'pipe' },
      );
    } catch (err) {
      opensslError = `openssl unavailable: ${(err as Error).message}`;
      // In CI nothing skips: .ci/run installs openssl.
      if (process.env['CI']) throw new Error(`CI must not skip: ${opensslError}`);
      return;
    }
    cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
    server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert }, (req, res) => {
      const r = routes.get(req.url ?? '') ?? { status: 404, body: 'not found' };
      res.writeHead(r.status, { 'content-type': 'application/xml' });
      res.end(r.body);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    if (server) {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads over HTTPS with an extra CA, checks the checksum URL, keeps the last good list on failures', async (t) => {
    if (opensslError) return t.skip(opensslError);
    routes.set('/listeblanchemssante.xml', { status: 200, body: V1 });
    routes.set('/checksum', { status: 200, body: `${sha256Hex(Buffer.from(V1))}\n` });
    const { logger, lines } = captureLogger();
    const src = new TrustListSource({ source: `${base}/listeblanchemssante.xml`, sha256: `${base}/checksum`, ca: cert, logger });
    const first = await src.load();
    assert.equal(first.entries.length, 1);

    routes.set('/listeblanchemssante.xml', { status: 200, body: '<html><head><title>Maintenance</title></head></html>' });
    routes.set('/checksum', { status: 200, body: sha256Hex(Buffer.from('<html><head><title>Maintenance</title></head></html>')) });
    let r = await src.refresh();
    assert.ok(!r.ok && /found an HTML page \(title "Maintenance"\)/.test(r.error), !r.ok ? r.error : '');
    assert.equal(src.current(), first);

    routes.set('/listeblanchemssante.xml', { status: 503, body: 'down' });
    r = await src.refresh();
    assert.ok(!r.ok && r.error.startsWith(`HTTP 503 Service Unavailable from ${base}/listeblanchemssante.xml`), !r.ok ? r.error : '');
    assert.equal(src.current(), first);

    routes.set('/listeblanchemssante.xml', { status: 200, body: V2 });
    r = await src.refresh(); // checksum still the old one
    assert.ok(!r.ok && /SHA-256 mismatch/.test(r.error));
    assert.equal(src.current(), first);

    routes.set('/checksum', { status: 200, body: sha256Hex(Buffer.from(V2)) });
    r = await src.refresh();
    assert.ok(r.ok && r.changed);
    assert.equal(src.current().entries.length, 2);
    assert.equal(lines.filter((l) => l.level === WARN).length, 3);
  });

  it('does not trust the self-signed server without the CA (global fetch)', async (t) => {
    if (opensslError) return t.skip(opensslError);
    routes.set('/l.xml', { status: 200, body: V1 });
    const src = new TrustListSource({ source: `${base}/l.xml`, logger: captureLogger().logger });
    await assert.rejects(src.load(), (err: unknown) => err instanceof TrustListError && /fetch failed: .*(self[- ]signed|certificate)/i.test(err.message));
  });

  it('uses an injected fetch', async () => {
    const seen: string[] = [];
    const fetchImpl = (async (input: string | URL | Request) => {
      seen.push(String(input));
      return new Response(V2, { status: 200 });
    }) as typeof fetch;
    const src = new TrustListSource({ source: 'https://listeblanche.example/l.xml', fetchImpl, logger: captureLogger().logger });
    assert.equal((await src.load()).entries.length, 2);
    assert.deepEqual(seen, ['https://listeblanche.example/l.xml']);
  });
});

describe('parseChecksumText', () => {
  const d = 'fcec0113fe62c11c551882adc97f9eb254665d41fc31404cf984a0672cd9b2b2';
  it('reads the ANS forms and common tool outputs', () => {
    assert.equal(parseChecksumText(d), d);
    assert.equal(parseChecksumText(`${d.toUpperCase()} \n`), d);
    assert.equal(parseChecksumText(d + d), d); // written twice in a row
    assert.equal(parseChecksumText(`${d}\n${d}\n`), d);
    assert.equal(parseChecksumText(`${d}  listeblanchemssante.xml\n`), d); // sha256sum
    assert.equal(parseChecksumText(`SHA256 (listeblanchemssante.xml) = ${d}\n`), d); // BSD
  });
  it('rejects anything else', () => {
    assert.throws(() => parseChecksumText(''), /found none/);
    assert.throws(() => parseChecksumText('<html>oops</html>'), /found none/);
    assert.throws(() => parseChecksumText(d.slice(0, 40)), /found 40 hex digits/);
    assert.throws(() => parseChecksumText(d + d.replace('f', '0')), /not one SHA-256 digest written twice/);
    assert.throws(() => parseChecksumText(`${d}\n${'1'.repeat(64)}`), /2 different SHA-256 digests/);
  });
});
