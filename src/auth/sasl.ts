// SASL (RFC 4422) mechanisms, independent of the protocol that carries them: IMAP AUTHENTICATE
// (RFC 9051 §6.2.2) and SMTP AUTH (RFC 4954) both pump base64 lines through a SaslExchange.
// PLAIN and LOGIN take app passwords; XOAUTH2 and OAUTHBEARER (RFC 7628) take OpenID Connect
// access tokens; EXTERNAL (RFC 4422 appendix A) takes the TLS client certificate.
import type { User } from '../model/index.js';
import type { AuthContext, AuthFailureReason, Authenticator } from './index.js';
import { oauthbearerErrorChallenge, parseOauthbearer, parseXoauth2, xoauth2ErrorChallenge } from './sasl-codec.js';

export interface SaslContext {
  protocol: AuthContext['protocol'];
  remote: string | null;
  /** The client's certificate chain from the TLS handshake, leaf first (empty: none). */
  peerChain(): Uint8Array[];
}

export type SaslFailure = {
  type: 'failure';
  reason: AuthFailureReason | 'malformed';
  /** Protocol-neutral text for the client; says nothing about whether the login exists. */
  message: string;
  /** Try again later (lockout): IMAP [UNAVAILABLE], SMTP 454 4.7.0. */
  temporary: boolean;
  /** XOAUTH2 / OAUTHBEARER: sent as a last challenge before the failure (the client answers it). */
  errorChallenge?: Buffer;
};

export type SaslStep = { type: 'challenge'; data: Buffer } | { type: 'success'; user: User } | SaslFailure;

export interface SaslExchange {
  readonly mechanism: string;
  /** First call: the initial response (RFC 4959 / 4954), or null when none was sent. */
  step(response: Buffer | null): Promise<SaslStep>;
}

const MESSAGES: Partial<Record<SaslFailure['reason'], string>> = {
  locked: 'too many failed login attempts from this account or address: try again in a few minutes',
  unavailable: 'the identity provider (Pro Santé Connect) cannot be reached to check the token: try again in a few minutes',
  'invalid-token': 'the access token was refused (expired, wrong issuer or audience, or not valid): get a new one from Pro Santé Connect',
  'unknown-identifier': 'no account at this operator matches this identity',
  'identity-mismatch': 'the authenticated identity may not act as the requested user',
  'bad-certificate': 'the client certificate was refused (missing, untrusted, expired or revoked)',
  'not-configured': 'this authentication method is not configured on this server',
  malformed: 'malformed SASL response',
};

function failure(reason: SaslFailure['reason'], extra: Partial<SaslFailure> = {}): SaslFailure {
  return {
    type: 'failure',
    reason,
    temporary: reason === 'locked' || reason === 'unavailable',
    // RFC 4954 §6 / RFC 5530: the same words whether the login exists or the password is wrong.
    message: MESSAGES[reason] ?? 'authentication failed: wrong login or app password (mail clients need an app password, not the account password)',
    ...extra,
  };
}

export class SaslServer {
  constructor(private readonly auth: Authenticator) {}

  /** Mechanisms to announce (only ever after TLS). EXTERNAL only when a client certificate was presented. */
  mechanisms(o: { clientCertificate: boolean }): string[] {
    const m = ['PLAIN', 'LOGIN'];
    if (this.auth.bearerVerifier) m.push('XOAUTH2', 'OAUTHBEARER');
    if (this.auth.certificates && o.clientCertificate) m.push('EXTERNAL');
    return m;
  }

  /** An exchange for `mechanism`, or undefined when it is not offered. */
  start(mechanism: string, ctx: SaslContext): SaslExchange | undefined {
    const mech = mechanism.toUpperCase();
    // EXTERNAL is accepted (and fails with a clear reason) even without a certificate: SMTP
    // announces its mechanisms once, before knowing whether one was presented.
    const offered = this.mechanisms({ clientCertificate: true });
    if (!offered.includes(mech)) return undefined;
    const actx = (method: string): AuthContext => ({ protocol: ctx.protocol, method, remote: ctx.remote });
    const done = (r: Awaited<ReturnType<Authenticator['mailPassword']>>, extra: Partial<SaslFailure> = {}): SaslStep =>
      r.ok ? { type: 'success', user: r.user } : failure(r.reason, extra);

    switch (mech) {
      case 'PLAIN':
        return oneShot(mech, async (data) => {
          // RFC 4616 §2: [authzid] NUL authcid NUL passwd
          const parts = data.toString('utf8').split('\0');
          if (parts.length !== 3 || !parts[1]) return failure('malformed');
          if (parts[0] && parts[0] !== parts[1]) return failure('identity-mismatch');
          return done(await this.auth.mailPassword(parts[1], parts[2], actx(mech)));
        });
      case 'LOGIN': {
        // draft-murchison-sasl-login: "Username:" then "Password:" challenges.
        let login: string | undefined;
        const auth = this.auth;
        return {
          mechanism: mech,
          async step(response) {
            if (login === undefined) {
              if (response === null) return { type: 'challenge', data: Buffer.from('Username:') };
              login = response.toString('utf8');
              if (!login) return failure('malformed');
              return { type: 'challenge', data: Buffer.from('Password:') };
            }
            if (response === null) return failure('malformed');
            return done(await auth.mailPassword(login, response.toString('utf8'), actx(mech)));
          },
        };
      }
      case 'XOAUTH2':
        return oneShot(mech, async (data) => {
          const p = parseXoauth2(data);
          if (!p) return failure('malformed');
          const r = await this.auth.bearer(p.token, p.user || null, actx(mech));
          // XOAUTH2: a JSON error challenge precedes the failure (the client answers with an empty line).
          return done(r, { errorChallenge: xoauth2ErrorChallenge({ status: r.ok || r.reason === 'invalid-token' ? '401' : '400' }) });
        });
      case 'OAUTHBEARER':
        return oneShot(mech, async (data) => {
          const p = parseOauthbearer(data);
          if (!p) return failure('malformed', { errorChallenge: oauthbearerErrorChallenge({ status: 'invalid_request' }) });
          const r = await this.auth.bearer(p.token, p.authzid, actx(mech));
          // RFC 7628 §3.2.2: the error is a server challenge; the client replies %x01, then fails.
          return done(r, { errorChallenge: oauthbearerErrorChallenge({ status: 'invalid_token' }) });
        });
      case 'EXTERNAL':
        return oneShot(mech, async (data) => {
          // RFC 4422 appendix A: the response is the authorization identity, empty for "as myself".
          const authzid = data.toString('utf8');
          return done(await this.auth.certificate(ctx.peerChain(), authzid || null, actx(mech)));
        });
    }
    return undefined;
  }
}

/** A mechanism whose only client message is the (possibly empty) initial response. */
function oneShot(mechanism: string, finish: (data: Buffer) => Promise<SaslStep>): SaslExchange {
  let asked = false;
  return {
    mechanism,
    async step(response) {
      if (response === null) {
        if (asked) return failure('malformed');
        asked = true;
        // RFC 4422 §5: no initial response → an empty challenge asks for it.
        return { type: 'challenge', data: Buffer.alloc(0) };
      }
      return finish(response);
    },
  };
}
