import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION, type PullStatePolicyStatus } from '../../api/index.js';
import { statusCode } from '../../kube/api-error.js';
import { errorMessage, type Logger } from '../../runtime/logger.js';
import { conditionsKey } from '../kube/conditions.js';

/** Changes written at once: conditions and the last restore (users wait for those). */
const urgentKey = (s: PullStatePolicyStatus) =>
  `${conditionsKey(s.conditions)}|${JSON.stringify(s.lastRestore ?? null)}`;
import type { ControllerMetrics } from '../metrics.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** The design's floor for routine writes: max(intervalSeconds, 5 s) per policy. */
export const MIN_STATUS_PERIOD_MS = 5000;
/** Requests for one policy within this window are computed once (condition changes wait this long at most). */
const COALESCE_MS = 100;

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
}

/** When the next write may happen (pure): now for condition changes, else once the period has passed. */
export function nextWriteAt(
  previous: Written | undefined,
  desired: { json: string; conditions: string },
  periodMs: number,
): number | undefined {
  if (previous?.json === desired.json) return undefined;
  if (!previous || previous.conditions !== desired.conditions) return 0;
  return previous.at + periodMs;
}

/**
 * Coalesces status writes: any number of requests for a policy within its period become one merge patch of
 * the status subresource; a change of conditions is written at once.
 */
export class StatusWriter {
  private patch: (namespace: string, name: string, status: PullStatePolicyStatus) => Promise<unknown>;
  private written = new Map<string, Written>();
  private timers = new Map<string, NodeJS.Timeout>();
  private inFlight = new Set<string>();
  private again = new Set<string>();
  private coalescing = new Set<string>();

  constructor(
    kc: KubeConfig | StatusPatch,
    private readonly compute: (key: string) => DesiredStatus | undefined,
    private readonly metrics: Pick<ControllerMetrics, 'statusWrites'>,
    private readonly log: Logger,
  ) {
    if (typeof kc === 'function') this.patch = kc;
    else {
      const api = kc.makeApiClient(CustomObjectsApi);
      this.patch = (namespace, name, status) =>
        api.patchNamespacedCustomObjectStatus(
          { group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { status } },
          mergePatch,
        );
    }
  }

  /** Seeds what the API already holds (after a takeover), so an unchanged status is not rewritten. */
  seed(key: string, status: PullStatePolicyStatus | undefined): void {
    if (!status || this.written.has(key)) return;
    this.written.set(key, {
      json: JSON.stringify(status),
      conditions: urgentKey(status),
      at: Date.now(),
    });
  }

  forget(key: string): void {
    clearTimeout(this.timers.get(key));
    this.timers.delete(key);
    this.written.delete(key);
  }

  /**
   * A policy's status may have changed. Requests within COALESCE_MS are computed once: a policy over many
   * Pods gets a request per pull report, and computing its status each time would cost O(Pods²) per period.
   */
  request(key: string): void {
    if (this.coalescing.has(key)) return;
    this.coalescing.add(key);
    setTimeout(() => {
      this.coalescing.delete(key);
      this.evaluate(key);
    }, COALESCE_MS).unref();
  }

  private evaluate(key: string): void {
    if (this.inFlight.has(key)) {
      this.again.add(key);
      return;
    }
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
    const wait = at - Date.now();
    if (wait > 0) {
      if (!this.timers.has(key)) {
        const t = setTimeout(() => {
          this.timers.delete(key);
          this.evaluate(key);
        }, wait);
        t.unref();
        this.timers.set(key, t);
      }
      return;
    }
    clearTimeout(this.timers.get(key));
    this.timers.delete(key);
    void this.write(key, desired.status, json, conditions);
  }

  private async write(
    key: string,
    status: PullStatePolicyStatus,
    json: string,
    conditions: string,
  ): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    this.inFlight.add(key);
    try {
      await this.patch(namespace, name, status);
      this.metrics.statusWrites.inc();
      this.written.set(key, { json, conditions, at: Date.now() });
    } catch (err) {
      if (statusCode(err) === 404) this.forget(key);
      else {
        this.log.warn('status write failed, retrying', { policy: key, error: errorMessage(err) });
        const t = setTimeout(() => {
          this.timers.delete(key);
          this.evaluate(key);
        }, 2000);
        t.unref();
        this.timers.set(key, t);
      }
    } finally {
      this.inFlight.delete(key);
      if (this.again.delete(key)) this.evaluate(key);
    }
  }
}
