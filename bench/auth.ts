// Cost of one authentication per method, in one process (bench/README.md):
//   node --import tsx bench/auth.ts [--iterations N]
// - account password (argon2id, the web's first factor): the baseline;
// - app password (SHA-256 digest lookup; what IMAP/SMTP clients use);
// - TOTP second factor;
// - OIDC access token (local JWKS check against a real local provider, keys cached);
// - client certificate (chain + CRL check through the trust service).
// Each figure: mean wall time per attempt over N sequential attempts, and the ratio to argon2id.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { Authenticator, hashNewPassword } from '../src/auth/index.js';
import { SecretBox } from '../src/auth/secret-box.js';
import { OidcTokenVerifier, resolveOidcSettings } from '../src/auth/oidc.js';
import { Core } from '../src/core/index.js';
import { loginWithBrowserFlow } from '../test/support/oidc-browser.js';
import { startDemoOidcProvider } from '../src/demo/oidc-provider.js';
import { loadTrustAnchors, TestPki, x509 } from '../src/pki/index.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import { TrustService } from '../src/trust/index.js';
import { benchDir, cleanupAll, installSignalHandlers, intOption, parseArgsOrUsage } from './common.js';

const usage = (msg: string): never => {
  process.stderr.write(`${msg}\nusage: node --import tsx bench/auth.ts [--iterations N]\n`);
  process.exit(2);
};
const args = parseArgsOrUsage(process.argv.slice(2), { iterations: { type: 'string', default: '200' } }, usage);
const N = intOption(usage)(args.iterations!, 'iterations', 10, 100000);

installSignalHandlers('bench/auth', 10 * 60_000);
const dir = benchDir('caducee-bench-auth-');
const log = pino({ level: 'silent' });
try {
  const pki = await TestPki.create(path.join(dir, 'pki'));
  const anchors = loadTrustAnchors(readFileSync(pki.caBundlePath, 'utf8'), [readFileSync(await pki.writeCrl(), 'utf8')]);
  const trust = new TrustService({ anchors: () => anchors, list: () => undefined as any, routes: {}, logger: log });
  const store = SqliteStore.open(path.join(dir, 'caducee.sqlite'));
  const core = new Core(store, ['bench.mssante.test']);
  await core.createPractitioner({ rpps: '10001234567', givenName: 'Claire', familyName: 'Martin' });
  const user = await core.createUser({ login: 'claire', displayName: 'Claire', passwordHash: await hashNewPassword('correct horse battery'), rpps: '10001234567' });
  const provider = await startDemoOidcProvider({
    users: [{ rpps: '10001234567', givenName: 'Claire', familyName: 'Martin', login: 'claire', password: 'correct horse battery' }],
    clients: [{ clientId: 'bench', redirectUris: ['http://127.0.0.1/cb'] }],
    audience: 'urn:bench',
    accessTokenTtlSeconds: 3600,
  });
  const verifier = new OidcTokenVerifier(resolveOidcSettings({ issuer: provider.issuer, clientId: 'bench', audience: ['urn:bench'], acrValues: ['eidas1'], allowInsecureLoopback: true, introspection: false, jwksCacheSeconds: 600 }), log);
  // Lockout out of the way: every attempt here succeeds anyway.
  const auth = new Authenticator(store, { bearer: verifier, certificates: trust, access: core, secrets: SecretBox.fromFile(path.join(dir, 'secrets.key')), lockout: { windowMs: 1000, maxPerLogin: 1e9, maxPerAddress: 1e9 } });
  const { password: app } = await auth.createAppPassword(user, 'bench', { protocol: 'cli', actor: 'bench', remote: null });
  const token = (await loginWithBrowserFlow({ issuer: provider.issuer, clientId: 'bench', redirectUri: 'http://127.0.0.1/cb', login: 'claire', password: 'correct horse battery', resource: provider.resource })).accessToken;
  const personal = await pki.issuePersonal({ rpps: '10001234567', givenName: 'Claire', surname: 'Martin' });
  const chain = personal.chainPem
    .split(/(?=-----BEGIN CERTIFICATE-----)/)
    .filter((p) => p.includes('BEGIN'))
    .map((p) => new Uint8Array(new x509.X509Certificate(p).rawData));
  const { generate } = await import('otplib');
  const { secret } = await auth.beginTotpEnrolment(user, 'bench');
  await auth.confirmTotpEnrolment(user, await generate({ secret }), { protocol: 'http', method: 'TOTP', remote: null });

  const ctx = { protocol: 'imap' as const, method: 'BENCH', remote: '127.0.0.1' };
  const measure = async (name: string, n: number, fn: (i: number) => Promise<{ ok: boolean }>) => {
    const r0 = await fn(-1);
    if (!r0.ok) throw new Error(`${name}: the first attempt failed`);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) if (!(await fn(i)).ok) throw new Error(`${name}: attempt ${i} failed`);
    return { name, n, ms: Number(process.hrtime.bigint() - t0) / 1e6 / n };
  };
  const results = [
    await measure('account password (argon2id, web 1st factor)', Math.max(10, Math.floor(N / 10)), () => auth.password('claire', 'correct horse battery', ctx)),
    await measure('app password (IMAP/SMTP PLAIN, LOGIN)', N, () => auth.mailPassword('claire', app, ctx)),
    await measure('OIDC access token (XOAUTH2/OAUTHBEARER, JWKS cached)', N, () => auth.bearer(token, 'claire', ctx)),
    await measure('client certificate (EXTERNAL: chain, CRL)', N, () => auth.certificate(chain, null, ctx)),
    // TOTP: each code is accepted once per step, so this measures the refusal path of a replay
    // (same HMAC work, one more UPDATE that changes nothing).
    await measure('TOTP code check (replayed code, refused)', N, async (i) => (i < 0 ? { ok: true } : { ok: !(await auth.secondFactor(user, await generate({ secret }), ctx)).ok })),
  ];
  const base = results[0].ms;
  process.stdout.write(`authentication cost per attempt (${N} attempts each, argon2id ${results[0].n}), each recorded in the audit trail:\n`);
  for (const r of results) process.stdout.write(`  ${r.name.padEnd(56)} ${r.ms.toFixed(3).padStart(9)} ms   ratio to argon2id ${(r.ms / base).toFixed(4)}\n`);
  await provider.stop();
  await store.close();
} finally {
  await cleanupAll();
}
