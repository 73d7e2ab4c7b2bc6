// Connection limits every listener applies (issue 13, resource limits): at most
// `perAddress` open connections from one client address and `total` on the listener, so
// that one client (or a slowloris holding sockets open) cannot take every descriptor and the
// memory of sessions that everyone shares. A connection over a limit is answered in its
// protocol's words where it has one (IMAP `* BYE`, SMTP `421`) and closed at once.
//
// IPv6 clients are counted per /64 (one host usually owns a whole /64: counting single
// addresses would let it open 2^64 × perAddress connections). IPv4-mapped IPv6 addresses
// count as their IPv4 address.
import { isIPv6 } from 'node:net';

export interface ConnectionLimitSettings {
  perAddress: number;
  total: number;
  /**
   * New connections one address may open per minute (a token bucket of this size, refilled
   * continuously): a client reconnecting in a loop is slowed down even while it keeps few open.
   * Undefined: no rate limit.
   */
  perAddressPerMinute?: number;
}

/** A token bucket per address key: `tokens` left at `at` (ms). */
interface Bucket {
  tokens: number;
  at: number;
}

/** The key a client is counted under: its IPv4 address, or its IPv6 /64 prefix. */
export function addressKey(remote: string | undefined | null): string {
  if (!remote) return '?';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remote);
  if (mapped) return mapped[1];
  if (!isIPv6(remote)) return remote;
  // Expand :: and keep the first four groups (RFC 4291 §2.2).
  const [head, tail = ''] = remote.split('%')[0].split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = remote.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.slice(0, 4).map((g) => parseInt(g || '0', 16).toString(16)).join(':') + '::/64';
}

export type Admission = { ok: true; release: () => void } | { ok: false; reason: 'address' | 'total' | 'rate'; limit: number };

export class ConnectionLimiter {
  private readonly byKey = new Map<string, number>();
  private readonly buckets = new Map<string, Bucket>();
  private open = 0;
  private admitted = 0;

  constructor(
    readonly settings: ConnectionLimitSettings,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one token from `key`'s bucket, or says the rate is exceeded. */
  private takeToken(key: string): boolean {
    const rate = this.settings.perAddressPerMinute;
    if (rate === undefined) return true;
    const t = this.now();
    const b = this.buckets.get(key) ?? { tokens: rate, at: t };
    b.tokens = Math.min(rate, b.tokens + ((t - b.at) * rate) / 60_000);
    b.at = t;
    if (b.tokens < 1) {
      this.buckets.set(key, b);
      return false;
    }
    b.tokens -= 1;
    this.buckets.set(key, b);
    // Buckets that have filled up again say nothing: dropped now and then, so that the map
    // holds only addresses seen within about a minute (bounded by the connection rate itself).
    if (++this.admitted % 1024 === 0)
      for (const [k, v] of this.buckets) if (v.tokens + ((t - v.at) * rate) / 60_000 >= rate) this.buckets.delete(k);
    return true;
  }

  /** Counts a new connection from `remote`, or says which limit it is over. `release` is idempotent. */
  admit(remote: string | undefined | null): Admission {
    const key = addressKey(remote);
    const n = this.byKey.get(key) ?? 0;
    if (this.open >= this.settings.total) return { ok: false, reason: 'total', limit: this.settings.total };
    if (n >= this.settings.perAddress) return { ok: false, reason: 'address', limit: this.settings.perAddress };
    if (!this.takeToken(key)) return { ok: false, reason: 'rate', limit: this.settings.perAddressPerMinute! };
    this.byKey.set(key, n + 1);
    this.open++;
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.open--;
        const m = (this.byKey.get(key) ?? 1) - 1;
        if (m <= 0) this.byKey.delete(key);
        else this.byKey.set(key, m);
      },
    };
  }

  /** Open connections now (all, or from one address's key). */
  count(remote?: string): number {
    return remote === undefined ? this.open : (this.byKey.get(addressKey(remote)) ?? 0);
  }
}

/** French-free, protocol-neutral text of a refusal (logs, SMTP 421 text, IMAP BYE text). */
export function refusalText(a: Extract<Admission, { ok: false }>): string {
  if (a.reason === 'address') return `too many connections from your address (at most ${a.limit}): close some and try again`;
  if (a.reason === 'rate') return `too many new connections from your address (at most ${a.limit} a minute): try again in a moment`;
  return `too many connections to this server (at most ${a.limit}): try again in a moment`;
}
