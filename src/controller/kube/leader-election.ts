import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { microTime } from '../../kube/micro-time.js';
import { statusCode } from '../../kube/api-error.js';
import { systemClock, type Clock } from './clock.js';

/** The Lease calls the elector makes. */
export type LeaseApi = Pick<
  CoordinationV1Api,
  'readNamespacedLease' | 'createNamespacedLease' | 'replaceNamespacedLease'
>;

/** What the elector logs through: a winston Logger is one, and so is a test's silent stand-in. */
export interface ElectionLog {
  info(message: string, meta?: object): unknown;
  warn(message: string, meta?: object): unknown;
  error(message: string, meta?: object): unknown;
}

interface ElectionSettings {
  namespace: string;
  name: string;
  identity: string;
  log: ElectionLog;
  /** A standby takes over at the earliest this long after it last saw the Lease change (whole seconds). */
  leaseDurationMs?: number;
  /**
   * The leader acts at most this long after the start of its last successful renewal, then steps down: it is
   * shorter than the lease, so a standby that takes over never overlaps with it.
   */
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  clock?: Clock;
}

/** The Lease calls are `api` if given (tests pass scripted ones), else made from `kc`: one of them is needed. */
export type LeaderElectionOptions = ElectionSettings &
  ({ kc: KubeConfig; api?: LeaseApi } | { kc?: undefined; api: LeaseApi });

/**
 * Judges expiry as client-go does: by the local time at which this replica last saw the Lease record change,
 * never by the `renewTime` written with the holder's clock. With skewed clocks the holder's timestamps can
 * look stale (two leaders) or fresh forever (no leader); a record that has not changed for a whole lease
 * duration of local time has expired, whatever it says.
 */
export class LeaseObserver {
  private record?: string;
  private observedAt = 0;
  private expiresAt?: number;

  constructor(private readonly clock: Clock = systemClock) {}

  /** Records the Lease as read now; returns whether someone else's hold on it has run out. */
  observe(lease: V1Lease): boolean {
    const spec = lease.spec ?? {};
    const record = JSON.stringify([
      spec.holderIdentity ?? '',
      String(spec.renewTime ?? ''),
      String(spec.acquireTime ?? ''),
      spec.leaseDurationSeconds ?? 0,
      spec.leaseTransitions ?? 0,
    ]);
    const now = this.clock.monotonic();
    if (record !== this.record) {
      this.record = record;
      this.observedAt = now;
    }
    this.expiresAt = spec.holderIdentity ? this.observedAt + (spec.leaseDurationSeconds ?? 15) * 1000 : now;
    return this.expiresAt <= now;
  }

  /** When the hold last observed runs out unless the record changes meanwhile (local clock). */
  expiry(): number | undefined {
    return this.expiresAt;
  }
}

/** The Lease timings a replica runs with unless told otherwise (see LEADER_ELECTION_RULE). */
export const LEADER_ELECTION_DEFAULTS = {
  leaseDurationMs: 5_000,
  renewDeadlineMs: 4_000,
  retryPeriodMs: 500,
};

export const LEADER_ELECTION_RULE =
  'retry period < renew deadline <= lease duration - max(1 s, 20 % of it) (a leader must step down, with time to spare for a late timer, before a standby may take over)';

/** What a leader keeps between stepping down and a standby's earliest takeover: a late timer, a slow exit. */
const marginMs = (leaseDurationMs: number) => Math.max(1000, leaseDurationMs * 0.2);

/** Why the timings are unsafe or unusable, or undefined. */
export function leaderElectionTimingsError(t: {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}): string | undefined {
  if (t.leaseDurationMs % 1000 !== 0)
    return `the lease duration must be whole seconds, got ${t.leaseDurationMs} ms`;
  if (!(
    t.retryPeriodMs < t.renewDeadlineMs &&
    t.renewDeadlineMs <= t.leaseDurationMs - marginMs(t.leaseDurationMs)
  ))
    return `got retry period ${t.retryPeriodMs} ms, renew deadline ${t.renewDeadlineMs} ms, lease duration ${t.leaseDurationMs} ms; allowed: ${LEADER_ELECTION_RULE}`;
  return undefined;
}

/**
 * Lease-based leader election as client-go does it: try every retry period; the holder renews and steps down
 * once it has not renewed within the renew deadline; `release` hands over at once on graceful shutdown.
 *
 * The renew deadline runs from the *start* of the last renewal that succeeded, not from its answer: the write
 * may have landed (and been seen by a standby) any time after the request left, so only its start bounds
 * when a standby's lease clock began. client-go counts from the answer plus a retry period, so a renewal
 * that took 8 s of a 10 s deadline let a leader act 20 s after a write a standby timed against 15 s.
 */
export class LeaderElector {
  private api: LeaseApi;
  private leading = false;
  /** When the last successful renewal was sent. */
  private lastRenew = 0;
  private cancelTimer = () => {};
  private cancelWatchdog = () => {};
  private stopped = false;
  private readonly observer: LeaseObserver;
  private readonly clock: Clock;
  private readonly timings: typeof LEADER_ELECTION_DEFAULTS;

  constructor(private readonly o: LeaderElectionOptions) {
    this.api = o.kc === undefined ? o.api : (o.api ?? o.kc.makeApiClient(CoordinationV1Api));
    this.clock = o.clock ?? systemClock;
    this.observer = new LeaseObserver(this.clock);
    this.timings = {
      leaseDurationMs: o.leaseDurationMs ?? LEADER_ELECTION_DEFAULTS.leaseDurationMs,
      renewDeadlineMs: o.renewDeadlineMs ?? LEADER_ELECTION_DEFAULTS.renewDeadlineMs,
      retryPeriodMs: o.retryPeriodMs ?? LEADER_ELECTION_DEFAULTS.retryPeriodMs,
    };
    const unsafe = leaderElectionTimingsError(this.timings);
    if (unsafe) throw new Error(`leader election: ${unsafe}`);
  }

  /** Whether this replica may act now: it leads, within the renew deadline of its last renewal. */
  isLeading(): boolean {
    return this.leading && this.clock.monotonic() < this.lastRenew + this.timings.renewDeadlineMs;
  }

  /**
   * Resolves once this replica leads; `onLost` runs if leadership is lost afterwards. An attempt every retry
   * period (from the start of the one before); a leader's attempt may take only what is left of its renew
   * deadline. The deadline is kept by a timer of its own: a request to an API server that cannot be reached
   * (the leader's node is partitioned) may hang for a minute, and a leader that waited for it would act on
   * alongside its successor.
   */
  run(onLost: () => void): Promise<void> {
    const { retryPeriodMs: retry, renewDeadlineMs: deadline } = this.timings;
    const stepDown = () => {
      if (!this.leading || this.stopped) return;
      this.leading = false;
      this.stopped = true;
      this.cancelTimer();
      this.o.log.error('lost leadership', {
        identity: this.o.identity,
        sinceRenewalMs: Math.round(this.clock.monotonic() - this.lastRenew),
        renewDeadlineMs: deadline,
      });
      onLost();
    };
    return new Promise((resolve) => {
      const tick = async () => {
        if (this.stopped) return;
        const started = this.clock.monotonic();
        const budget = this.leading ? this.lastRenew + deadline - started : deadline;
        let ok = false;
        try {
          // An attempt that takes longer than its budget counts as failed (it may still land later).
          ok = await withTimeout(this.tryAcquireOrRenew(), Math.max(1, budget));
        } catch (err) {
          this.o.log.warn('leader election: lease update failed', { error: String(err) });
        }
        if (this.stopped) return;
        if (ok) {
          this.lastRenew = started;
          this.cancelWatchdog();
          this.cancelWatchdog = this.clock.setTimeout(
            stepDown,
            Math.max(0, started + deadline - this.clock.monotonic()),
          );
          if (!this.leading) {
            this.leading = true;
            this.o.log.info('became leader', {
              lease: `${this.o.namespace}/${this.o.name}`,
              identity: this.o.identity,
            });
            resolve();
          }
        }
        // A standby also tries the moment the hold it saw runs out, not up to a retry period later.
        const expiry = this.leading ? undefined : this.observer.expiry();
        const next =
          expiry !== undefined && expiry > this.clock.monotonic()
            ? Math.min(started + retry, expiry)
            : started + retry;
        this.cancelTimer = this.clock.setTimeout(
          () => void tick(),
          Math.max(0, next - this.clock.monotonic()),
        );
      };
      void tick();
    });
  }

  /** Stops renewing and, if leading, empties the Lease so a standby takes over without waiting for expiry. */
  async release(): Promise<void> {
    this.stopped = true;
    this.cancelTimer();
    this.cancelWatchdog();
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.api.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace });
      if (lease.spec?.holderIdentity !== this.o.identity) return;
      const acquired = lease.spec.acquireTime;
      lease.spec = {
        ...lease.spec,
        holderIdentity: undefined,
        leaseDurationSeconds: 1,
        acquireTime: acquired ? (microTime(new Date(acquired)) as unknown as Date) : undefined,
        renewTime: microTime() as unknown as Date,
      };
      await this.api.replaceNamespacedLease({ name: this.o.name, namespace: this.o.namespace, body: lease });
      this.o.log.info('released leadership');
    } catch (err) {
      this.o.log.warn('could not release the lease', { error: String(err) });
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = microTime() as unknown as Date;
    const leaseDurationSeconds = this.timings.leaseDurationMs / 1000;
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace });
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
      await this.api.createNamespacedLease({
        namespace: this.o.namespace,
        body: {
          metadata: { name: this.o.name, namespace: this.o.namespace },
          spec: {
            holderIdentity: this.o.identity,
            leaseDurationSeconds,
            acquireTime: now,
            renewTime: now,
            leaseTransitions: 0,
          },
        },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    // Read MicroTimes come back as Dates, which would be written with three fractional digits and refused.
    const asMicro = (d: Date | undefined) => (d ? (microTime(new Date(d)) as unknown as Date) : undefined);
    const mine = spec.holderIdentity === this.o.identity;
    const expired = this.observer.observe(lease);
    if (!mine && !expired) return false;
    lease.spec = {
      ...spec,
      acquireTime: asMicro(spec.acquireTime),
      holderIdentity: this.o.identity,
      leaseDurationSeconds,
      renewTime: now,
      ...(mine ? {} : { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }),
    };
    try {
      // replace carries resourceVersion: if another replica wrote in between, this fails with 409.
      await this.api.replaceNamespacedLease({ name: this.o.name, namespace: this.o.namespace, body: lease });
      return true;
    } catch (err) {
      if (statusCode(err) === 409) return false;
      throw err;
    }
  }
}

/** The promise's value, or a rejection once `ms` have passed. */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from the API server within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
