import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION, type PullStatePolicyStatus } from '../../api/index.js';
import { statusCode } from '../../kube/api-error.js';
import { errorMessage, type Logger } from '../../runtime/logger.js';
import { conditionsKey } from '../kube/conditions.js';
import { WorkQueue, type ReconcileResult } from '../kube/workqueue.js';
import { systemClock, type Clock } from '../kube/clock.js';

/**
 * Changes written at once: conditions, the last restore and the generation observed (users, `kubectl wait` and
 * Argo CD's health check wait for those; a new generation alone once waited up to intervalSeconds).
 */
const urgentKey = (s: PullStatePolicyStatus) =>
  `${conditionsKey(s.conditions)}|${s.observedGeneration ?? 0}|${JSON.stringify(s.lastRestore ?? null)}`;

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** The design's floor for routine writes: max(intervalSeconds, 5 s) per policy. */
export const MIN_STATUS_PERIOD_MS = 5000;
/** Requests for one policy within this window are computed once (condition changes wait this long at most). */
const COALESCE_MS = 100;
/** A failed write is tried again after 2 s, doubling up to 30 s. */
const RETRY = { baseMs: 2000, maxMs: 30_000 };

export interface DesiredStatus {
  status: PullStatePolicyStatus;
  /** Routine changes (new timestamps) are written at most once per this period. */
  periodMs: number;
}

/** Writes a policy's status (the API server's status subresource; tests pass their own). */
export type StatusPatch = (
  namespace: string,
  name: string,
  status: PullStatePolicyStatus,
) => Promise<unknown>;

interface Written {
  json: string;
  conditions: string;
  at: number;
  status: PullStatePolicyStatus;
}

/** JSON with object keys sorted: the API server returns a custom resource's fields in its own order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object')
    return `{${Object.keys(v)
      // As JSON and the API server do: an undefined field is no field.
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

/**
 * Whether the stored status still holds what was written (pure). Objects are merged by the patch, so fields
 * the controller never wrote (or stopped writing) do not count; arrays and values must be equal.
 */
export function holdsWritten(stored: unknown, wrote: unknown): boolean {
  if (wrote !== null && typeof wrote === 'object' && !Array.isArray(wrote)) {
    if (stored === null || typeof stored !== 'object' || Array.isArray(stored)) return false;
    return Object.entries(wrote).every(([k, w]) => holdsWritten((stored as Record<string, unknown>)[k], w));
  }
  return canonical(stored) === canonical(wrote);
}

/** When the next write may happen (pure): now for condition changes, else once the period has passed. */
export function nextWriteAt(
  previous: Pick<Written, 'json' | 'conditions' | 'at'> | undefined,
  desired: { json: string; conditions: string },
  periodMs: number,
): number | undefined {
  if (previous?.json === desired.json) return undefined;
  if (!previous || previous.conditions !== desired.conditions) return 0;
  return previous.at + periodMs;
}

/**
 * Coalesces status writes: any number of requests for a policy within its period become one merge patch of
 * the status subresource; a change of conditions is written at once. Each policy is a key of one work
 * queue: a request adds it after COALESCE_MS, a routine change waits in the queue until its period has
 * passed, a failed write is retried with back-off, and a request during a write runs once more after it.
 */
export class StatusWriter {
  private patch: (namespace: string, name: string, status: PullStatePolicyStatus) => Promise<unknown>;
  private written = new Map<string, Written>();
  private readonly queue: WorkQueue;

  constructor(
    kc: KubeConfig | StatusPatch,
    private readonly compute: (key: string) => DesiredStatus | undefined,
    // Only the counter's `inc`: a prom-client Counter is one, and so is a test's stand-in.
    private readonly metrics: { statusWrites: { inc(): void } },
    private readonly log: Logger,
    o: { signal?: AbortSignal; clock?: Clock; concurrency?: number } = {},
  ) {
    this.clock = o.clock ?? systemClock;
    if (typeof kc === 'function') this.patch = kc;
    else {
      const api = kc.makeApiClient(CustomObjectsApi);
      this.patch = (namespace, name, status) =>
        api.patchNamespacedCustomObjectStatus(
          { group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { status } },
          mergePatch,
        );
    }
    this.queue = new WorkQueue((key) => this.evaluate(key), {
      concurrency: o.concurrency ?? 4,
      signal: o.signal,
      clock: o.clock,
      backoff: RETRY,
      onError: (key, err, retryInMs) =>
        log.warn('status write failed, retrying', { policy: key, error: errorMessage(err), retryInMs }),
    });
  }

  private readonly clock: Clock;

  /**
   * The status the API holds now (each reconcile of the policy). The first time (after a takeover) it is what
   * was written, so an unchanged status is not rewritten. Later, a stored status that no longer holds what this
   * writer wrote was replaced by someone else (`kubectl edit --subresource=status`, an older controller): it is
   * written again at once, level-based, rather than when the computed status happens to change.
   */
  observe(key: string, status: PullStatePolicyStatus | undefined): void {
    const written = this.written.get(key);
    if (written) {
      if (!holdsWritten(status ?? {}, written.status)) {
        // Written again within the routine period, at once only if the conditions differ: right after a
        // write the cache still shows the status before it, and rewriting at once each time kept the window
        // open (a write per Pod event).
        written.json = '';
        if (urgentKey(status ?? {}) !== written.conditions) written.conditions = '';
        this.request(key);
      }
      return;
    }
    if (!status) return;
    this.written.set(key, {
      json: JSON.stringify(status),
      conditions: urgentKey(status),
      at: this.clock.monotonic(),
      status,
    });
  }

  forget(key: string): void {
    this.queue.forget(key);
    this.written.delete(key);
  }

  /**
   * A policy's status may have changed. Requests within COALESCE_MS are computed once: a policy over many
   * Pods gets a request per pull report, and computing its status each time would cost O(Pods²) per period.
   */
  request(key: string): void {
    this.queue.addAfter(key, COALESCE_MS);
  }

  /** Writes the policy's status if it changed and may be written now; else again when it may. */
  private async evaluate(key: string): Promise<ReconcileResult> {
    const desired = this.compute(key);
    if (!desired) return;
    const json = JSON.stringify(desired.status);
    const conditions = urgentKey(desired.status);
    const at = nextWriteAt(
      this.written.get(key),
      { json, conditions },
      Math.max(desired.periodMs, MIN_STATUS_PERIOD_MS),
    );
    if (at === undefined) return;
    const wait = at - this.clock.monotonic();
    if (wait > 0) return { requeueAfterMs: wait };
    const [namespace, name] = key.split('/') as [string, string];
    try {
      await this.patch(namespace, name, desired.status);
    } catch (err) {
      // The policy is gone: nothing to write, ever.
      if (statusCode(err) === 404) return void this.written.delete(key);
      throw err;
    }
    this.metrics.statusWrites.inc();
    this.written.set(key, { json, conditions, at: this.clock.monotonic(), status: desired.status });
  }
}
