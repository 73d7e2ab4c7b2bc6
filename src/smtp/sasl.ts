// SMTP AUTH (RFC 4954) driven by our protocol-neutral SASL mechanisms (src/auth/sasl.ts).
// smtp-server looks mechanisms up as `SASL_<NAME>` on its sasl module; for servers created
// with a `caduceeSasl` option we install handlers that pump 334 challenges through a
// SaslExchange. Servers without it (the MX) keep the library's behaviour.
import saslModule from 'smtp-server/lib/sasl.js';
import type { SMTPServerSession } from 'smtp-server';
import type { User } from '../model/index.js';
import type { SaslServer, SaslStep } from '../auth/sasl.js';

export interface SmtpSaslOptions {
  sasl: SaslServer;
  /** The client certificate chain of a session (captured in onSecure). */
  peerChain(session: SMTPServerSession): Uint8Array[];
  onSuccess(session: SMTPServerSession, user: User, mechanism: string): void;
  onFailure(session: SMTPServerSession, reason: string, mechanism: string): void;
}

export const SMTP_MECHANISMS = ['PLAIN', 'LOGIN', 'XOAUTH2', 'OAUTHBEARER', 'EXTERNAL'] as const;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

let installed = false;
export function installSaslMechanisms(): void {
  if (installed) return;
  installed = true;
  const table = saslModule as unknown as Record<string, (this: any, args: string[], cb: () => void) => void>;
  for (const mech of SMTP_MECHANISMS) {
    const original = table[`SASL_${mech}`];
    table[`SASL_${mech}`] = function (this: any, args: string[], callback: () => void) {
      const o: SmtpSaslOptions | undefined = this._server.options.caduceeSasl;
      if (!o) {
        if (original) return original.call(this, args, callback);
        this.send(504, 'Error: Unrecognized authentication type');
        return callback();
      }
      run(this, o, mech, args, callback);
    };
  }
}

function run(conn: any, o: SmtpSaslOptions, mech: string, args: string[], callback: () => void): void {
  const session: SMTPServerSession = conn.session;
  if (args.length > 1) {
    conn.send(501, '5.5.4 syntax: AUTH <mechanism> [initial-response]');
    return callback();
  }
  const ex = o.sasl.start(mech, { protocol: 'smtp', remote: session.remoteAddress ?? null, peerChain: () => o.peerChain(session) });
  if (!ex) {
    conn.send(504, `5.5.4 authentication mechanism ${mech} is not offered here`);
    return callback();
  }
  /** Decodes a client line; null after replying (cancelled or not base64). */
  const decode = (line: string): Buffer | null => {
    const t = line.trim();
    // RFC 4954 §4: "*" cancels; reply 501.
    if (t === '*') {
      conn.send(501, '5.7.0 authentication cancelled');
      return null;
    }
    if (t !== '=' && !BASE64.test(t)) {
      conn.send(501, '5.5.2 SASL response is not valid base64');
      return null;
    }
    return Buffer.from(t === '=' ? '' : t, 'base64');
  };
  const finish = (step: Exclude<SaslStep, { type: 'challenge' }>, cb: () => void) => {
    if (step.type === 'success') {
      session.user = step.user as any;
      o.onSuccess(session, step.user, mech);
      conn.session.transmissionType = conn._transmissionType();
      conn.send(235, '2.7.0 authentication successful');
      return cb();
    }
    o.onFailure(session, step.reason, mech);
    // RFC 4954 §6 codes: 454 4.7.0 temporary, 501 malformed, 535 5.7.8 refused.
    if (step.temporary) conn.send(454, `4.7.0 ${step.message}`);
    else if (step.reason === 'malformed') conn.send(501, `5.5.2 ${step.message}`);
    else conn.send(535, `5.7.8 ${step.message}`);
    cb();
  };
  const handle = (step: SaslStep, cb: () => void) => {
    if (step.type === 'challenge') {
      conn._nextHandler = (line: Buffer | string, next: () => void) => {
        const data = decode(line.toString());
        if (!data) return next();
        ex.step(data).then((s) => handle(s, next), (e) => fail(e, next));
      };
      conn.send(334, step.data.toString('base64'));
      return cb();
    }
    if (step.type === 'failure' && step.errorChallenge) {
      // XOAUTH2 / RFC 7628 §3.2.2: the error is a 334 challenge; the client's answer ends it.
      const final = step;
      conn._nextHandler = (_line: unknown, next: () => void) => finish({ ...final, errorChallenge: undefined }, next);
      conn.send(334, step.errorChallenge.toString('base64'));
      return cb();
    }
    finish(step, cb);
  };
  const fail = (e: Error, cb: () => void) => {
    conn._server.logger?.error?.({ err: e.message }, 'SASL exchange failed');
    conn.send(454, '4.7.0 temporary authentication failure: try again later');
    cb();
  };
  const initial = args.length ? decode(args[0]) : null;
  if (args.length && !initial) return callback();
  ex.step(initial).then((s) => handle(s, callback), (e) => fail(e, callback));
}
