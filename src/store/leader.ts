// Leader-only services (issue 12): work that must run once per operator — the golden rules'
// timer, the message-file collector, the webhook dispatcher, purges — whatever the number of
// processes and nodes. A `Leadership` holds a named lease in the store (LeaseStore), renews it
// every ttl/3, and runs its services only while it holds the lease:
//   - gained (the lease was free or expired): the services are started, in order;
//   - lost (a renewal refused, a store error, or no successful renewal for 5/6 of the ttl, e.g. a
//     stalled database): the services are stopped, in reverse order, before anything else — so
//     they are stopped before the lease can expire and another process start its own;
//   - stop(): the services are stopped, then the lease released, so another process takes over
//     at its next renewal rather than after the ttl.
// The lease's `until` is the acquiring process's clock: the nodes' clocks must agree (NTP) to
// well within ttl/6.
// It lives in store/ (the lowest room that knows LeaseStore), next to the blob collector.
import type { Logger } from 'pino';
import type { LeaseStore } from './types.js';

/** A service run by the leader only; restartable (it may gain and lose the lease several times). */
export interface LeaderService {
  readonly name: string;
  start(): void | Promise<void>;
  stop(): void | Promise<void>;
}

export interface LeadershipOptions {
  store: LeaseStore;
  /** The lease's name, one per operator (e.g. 'operator-leader'). */
  leaseName: string;
  /** This process's name on the lease: unique among live processes (node id, pid, random). */
  owner: string;
  ttlMs: number;
  services: LeaderService[];
  logger: Logger;
  now?: () => number;
}

export class Leadership {
  #leader = false;
  #stopped = true;
  #renewTimer?: NodeJS.Timeout;
  #expiryTimer?: NodeJS.Timeout;
  #ticking?: Promise<void>;
  /** Service starts and stops, one transition at a time. */
  #transitions: Promise<void> = Promise.resolve();
  readonly #o: LeadershipOptions;
  readonly #now: () => number;
  readonly #log: Logger;

  constructor(o: LeadershipOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#log = o.logger.child({ component: 'leader', lease: o.leaseName });
  }

  /** Whether this process holds the lease (its services are running or starting). */
  get isLeader(): boolean {
    return this.#leader;
  }

  /** Tries the lease now (resolves when that try and the services' start, if gained, are done), then every ttl/3. */
  start(): Promise<void> {
    this.#stopped = false;
    this.#renewTimer = setInterval(() => void this.tick(), this.#o.ttlMs / 3);
    this.#renewTimer.unref();
    return this.tick();
  }

  /** Stops the services if leader, then releases the lease. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#renewTimer);
    clearTimeout(this.#expiryTimer);
    await this.#ticking;
    const was = this.#leader;
    await this.#transition(false, 'stopping');
    if (was) await this.#o.store.releaseLease(this.#o.leaseName, this.#o.owner).catch((err) => this.#log.warn({ err }, 'could not release the leader lease: another process takes over when it expires'));
  }

  /** One acquisition or renewal (the timer calls it; tests too). Never overlaps itself. */
  tick(): Promise<void> {
    this.#ticking ??= this.#renew().finally(() => (this.#ticking = undefined));
    return this.#ticking;
  }

  async #renew(): Promise<void> {
    if (this.#stopped) return;
    const { store, leaseName, owner, ttlMs } = this.#o;
    const t = this.#now();
    let held: boolean;
    try {
      held = await store.acquireLease(leaseName, owner, t, ttlMs);
    } catch (err) {
      // The store cannot say who leads: assume another process may (its lease may have expired ours).
      if (this.#leader) this.#log.error({ err }, 'leader lease renewal failed: stopping the leader services');
      else this.#log.warn({ err }, 'leader lease: the store could not be asked');
      return this.#transition(false, 'store error');
    }
    if (this.#stopped) return;
    // The services stop at 5/6 of the ttl without a renewal: before another process may take over.
    const stopAt = t + (ttlMs * 5) / 6;
    if (held && stopAt > this.#now()) {
      clearTimeout(this.#expiryTimer);
      this.#expiryTimer = setTimeout(() => {
        this.#log.error({ ttlMs }, 'leader lease not renewed in time: stopping the leader services');
        void this.#transition(false, 'not renewed');
      }, stopAt - this.#now());
      this.#expiryTimer.unref();
      return this.#transition(true, 'acquired');
    }
    if (this.#leader) this.#log.warn({ held }, 'leader lease lost: stopping the leader services');
    return this.#transition(false, 'lost');
  }

  /** Starts (leader) or stops (not leader) the services, after any transition under way. */
  #transition(leader: boolean, reason: string): Promise<void> {
    const run = async () => {
      if (leader === this.#leader) return;
      this.#leader = leader;
      if (leader) {
        this.#log.info({ owner: this.#o.owner, services: this.#o.services.map((s) => s.name) }, 'leader lease acquired: starting the leader services');
        for (const s of this.#o.services) {
          try {
            await s.start();
          } catch (err) {
            this.#log.error({ err, service: s.name }, 'leader service failed to start');
          }
        }
      } else {
        clearTimeout(this.#expiryTimer);
        for (const s of [...this.#o.services].reverse()) {
          try {
            await s.stop();
          } catch (err) {
            this.#log.error({ err, service: s.name }, 'leader service failed to stop');
          }
        }
        this.#log.info({ owner: this.#o.owner, reason }, 'leader services stopped');
      }
    };
    this.#transitions = this.#transitions.then(run);
    return this.#transitions;
  }
}
