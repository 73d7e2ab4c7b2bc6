// Connection limits on the SMTP listeners (issue 13, src/net/limits.ts): over a limit the
// client is greeted with 421 (RFC 5321 §3.8, §4.2.3: service not available, closing the
// transmission channel), so a well-behaved MTA retries later instead of bouncing.
import type { SMTPServerSession } from 'smtp-server';
import { refusalText, type ConnectionLimiter } from '../net/limits.js';
import { smtpError } from './common.js';

/** Returns `options` with onConnect/onClose hooks counting connections in `limiter` (unchanged without one). */
export function limitConnections<T extends Record<string, any>>(options: T, limiter: ConnectionLimiter | undefined, onRefused?: (remote: string, reason: string) => void): T {
  if (!limiter) return options;
  const releases = new WeakMap<SMTPServerSession, () => void>();
  const { onConnect, onClose } = options;
  return {
    ...options,
    onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void) {
      const a = limiter.admit(session.remoteAddress);
      if (!a.ok) {
        onRefused?.(session.remoteAddress, a.reason);
        // RFC 3463 §3.5: 4.3.2 "system not accepting network messages" when the server as a whole
        // is full; 4.7.0 (security or policy status) for this address's own limit.
        return cb(smtpError(421, a.reason === 'total' ? '4.3.2' : '4.7.0', refusalText(a)));
      }
      releases.set(session, a.release);
      if (typeof onConnect === 'function') return onConnect(session, cb);
      cb();
    },
    onClose(session: SMTPServerSession, ...rest: unknown[]) {
      releases.get(session)?.();
      releases.delete(session);
      if (typeof onClose === 'function') onClose(session, ...rest);
    },
  };
}
