// The demo's stand-in for Pro Santé Connect: a real OpenID provider (src/demo/oidc-provider.ts)
// whose users are the demo practitioners, so that PSC-style web login and XOAUTH2 /
// OAUTHBEARER with a token can be tried locally. Started by `caducee demo` only: `caducee start`
// never starts a provider, it talks to the configured one (auth.oidc).
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { startDemoOidcProvider, type DemoOidcProvider } from './oidc-provider.js';
import type { DemoLayout } from './space.js';

/** Fixed port of the demo provider (with fixed demo ports); 0 with ephemeral ports. */
export const DEMO_PSC_PORT = 2400;
/** `aud` of the demo access tokens: the operators' mail services. */
export const DEMO_PSC_AUDIENCE = 'urn:caducee:demo:messagerie';

export interface DemoPscInfo {
  issuer: string;
  /** Audience of access tokens accepted by the demo operators' IMAP and SMTP. */
  audience: string;
  /** RFC 8707 resource indicator to ask tokens for. */
  resource: string;
  /** A public client (PKCE) for trying a mail client or script: tokens for XOAUTH2 / OAUTHBEARER. */
  softwareClient: { clientId: string; redirectUri: string };
  /** The operators' own client (web login), shared by both demo operators. */
  webClient: { clientId: string };
  /** Who can log in: the demo practitioners, with their account passwords. */
  users: { login: string; rpps: string }[];
}

export interface RunningDemoPsc {
  info: DemoPscInfo;
  /** Configuration merged into both operators (auth.oidc). */
  configOverrides: Record<string, unknown>;
  stop(): Promise<void>;
}

export async function startDemoPsc(layout: DemoLayout, opts: { ephemeral: boolean; logger?: Logger }): Promise<RunningDemoPsc> {
  const users = layout.operators.map((op) => {
    const pr = op.certificates.personal;
    const u = op.users.find((x) => x.login === pr.login);
    if (!u) throw new Error(`demo layout: no user ${pr.login} on ${op.domain}`);
    const [givenName, ...family] = u.displayName.replace(/^Dr /, '').split(' ');
    return { rpps: pr.rpps, givenName, familyName: family.join(' '), login: u.login, password: u.password };
  });
  // The web client's secret lives only for this run: both sides get it from here.
  const webClient = { clientId: 'caducee-demo', clientSecret: randomBytes(24).toString('base64url') };
  const software = { clientId: 'lps-demo', redirectUri: 'http://127.0.0.1/lps-callback' };
  let provider: DemoOidcProvider;
  try {
    provider = await startDemoOidcProvider({
      port: opts.ephemeral ? 0 : DEMO_PSC_PORT,
      users,
      clients: [
        // Both operators' HTTPS callbacks; any loopback port (their ports may be ephemeral).
        { clientId: webClient.clientId, clientSecret: webClient.clientSecret, redirectUris: layout.operators.map((op) => `https://${op.host}/api/auth/oidc/callback`) },
        { clientId: software.clientId, redirectUris: [software.redirectUri] },
      ],
      audience: DEMO_PSC_AUDIENCE,
      loopbackRedirectAnyPort: true,
      logger: opts.logger,
    });
  } catch (e: any) {
    const hint = e.code === 'EADDRINUSE' ? ` (port ${DEMO_PSC_PORT} in use: stop the other demo or use --ephemeral-ports)` : '';
    throw new Error(`cannot start the demo OpenID provider (Pro Santé Connect stand-in): ${e.code ?? e.message}${hint}`);
  }
  return {
    info: {
      issuer: provider.issuer,
      audience: DEMO_PSC_AUDIENCE,
      resource: provider.resource,
      softwareClient: software,
      webClient: { clientId: webClient.clientId },
      users: users.map((u) => ({ login: u.login, rpps: u.rpps })),
    },
    configOverrides: {
      auth: {
        oidc: {
          issuer: provider.issuer,
          clientId: webClient.clientId,
          clientSecret: webClient.clientSecret,
          audience: [DEMO_PSC_AUDIENCE],
          acrValues: ['eidas1'],
          scopes: ['openid', 'scope_all'],
          identifierClaim: 'preferred_username',
          // The demo provider is plain HTTP on loopback; never allowed for a real provider.
          allowInsecureLoopback: true,
        },
      },
    },
    stop: () => provider.stop(),
  };
}
