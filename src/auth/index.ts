// The shared authentication module: SMTP submission (and later IMAP and the web) call this and
// nothing else to authenticate. Passwords are hashed with argon2id (RFC 9106).
import { hash, verify, Algorithm } from '@node-rs/argon2';
import type { Store } from '../store/types.js';
import type { User } from '../core/model.js';

// RFC 9106 §4 second recommended option (64 MiB, 3 passes), lanes 1 to stay cheap on small hosts.
const ARGON2_OPTIONS = { algorithm: Algorithm.Argon2id, memoryCost: 65536, timeCost: 3, parallelism: 1 } as const;

export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2_OPTIONS);
}

/** Where an authentication attempt comes from, for the audit trail. */
export interface AuthContext {
  protocol: 'smtp' | 'imap' | 'http' | 'unknown';
  /** SASL mechanism or command: PLAIN, LOGIN, … */
  method: string;
  remote: string | null;
}

export type AuthResult = { ok: true; user: User } | { ok: false; reason: 'unknown-user' | 'bad-password' | 'disabled' | 'no-password' | 'locked' };

/**
 * Brute-force protection: failures counted per login and per remote address in a sliding
 * window; past the limit, attempts are refused without checking the password until the window
 * has passed. Applies to unknown logins too, so a lockout reveals nothing. In memory, per process.
 */
export interface LockoutPolicy {
  windowMs: number;
  maxPerLogin: number;
  maxPerAddress: number;
}

export const DEFAULT_LOCKOUT: LockoutPolicy = { windowMs: 15 * 60_000, maxPerLogin: 10, maxPerAddress: 50 };

class FailureCounter {
  private readonly failures = new Map<string, number[]>();
  constructor(private readonly windowMs: number) {}
  count(key: string, now: number): number {
    const list = this.failures.get(key);
    if (!list) return 0;
    const recent = list.filter((t) => now - t < this.windowMs);
    if (recent.length) this.failures.set(key, recent);
    else this.failures.delete(key);
    return recent.length;
  }
  add(key: string, now: number): void {
    const list = this.failures.get(key) ?? [];
    list.push(now);
    this.failures.set(key, list);
  }
  clear(key: string): void {
    this.failures.delete(key);
  }
}

// A fixed hash verified for unknown users so that timing does not reveal which logins exist.
let dummyHash: Promise<string> | undefined;

export class Authenticator {
  private readonly byLogin: FailureCounter;
  private readonly byAddress: FailureCounter;

  constructor(
    private readonly store: Store,
    private readonly lockout: LockoutPolicy = DEFAULT_LOCKOUT,
    private readonly now: () => number = Date.now,
  ) {
    this.byLogin = new FailureCounter(lockout.windowMs);
    this.byAddress = new FailureCounter(lockout.windowMs);
  }

  /** Is this login or address locked out right now? */
  private locked(login: string, remote: string | null): boolean {
    const t = this.now();
    return this.byLogin.count(login.toLowerCase(), t) >= this.lockout.maxPerLogin || (!!remote && this.byAddress.count(remote, t) >= this.lockout.maxPerAddress);
  }

  /**
   * Checks a password and records the attempt in the audit trail (who, method, address, when,
   * outcome — never the password).
   */
  async password(login: string, password: string, ctx: AuthContext = { protocol: 'unknown', method: 'PASSWORD', remote: null }): Promise<AuthResult> {
    const r: AuthResult = this.locked(login, ctx.remote) ? { ok: false, reason: 'locked' } : await this.checkPassword(login, password);
    const t = this.now();
    if (!r.ok && r.reason !== 'locked') {
      this.byLogin.add(login.toLowerCase(), t);
      if (ctx.remote) this.byAddress.add(ctx.remote, t);
    } else if (r.ok) this.byLogin.clear(login.toLowerCase());
    await this.store.recordAuth({
      at: new Date().toISOString(),
      login,
      userId: r.ok ? r.user.id : null,
      protocol: ctx.protocol,
      method: ctx.method,
      remote: ctx.remote,
      success: r.ok,
      reason: r.ok ? null : r.reason,
    });
    return r;
  }

  private async checkPassword(login: string, password: string): Promise<AuthResult> {
    const u = await this.store.findUserByLogin(login);
    if (!u || !u.passwordHash) {
      dummyHash ??= hashPassword('caducee-timing-equaliser');
      await verify(await dummyHash, password).catch(() => false);
      return { ok: false, reason: u ? 'no-password' : 'unknown-user' };
    }
    const good = await verify(u.passwordHash, password).catch(() => false);
    if (!good) return { ok: false, reason: 'bad-password' };
    if (u.state !== 'active') return { ok: false, reason: 'disabled' };
    const { passwordHash: _omit, ...user } = u;
    return { ok: true, user };
  }
}
