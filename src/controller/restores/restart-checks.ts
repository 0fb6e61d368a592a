import type { V1Pod } from '@kubernetes/client-node';
import { errorMessage, type Logger } from '../../runtime/logger.js';
import { backoffDelay } from '../../runtime/backoff.js';
import { WorkQueue, type ReconcileResult } from '../kube/workqueue.js';
import { RETRY, type RestoreTarget } from './restore-runs.js';
import type { Clock } from '../kube/clock.js';

/** A restart being checked by pulls: which process answers. */
interface RestartCheck {
  t: RestoreTarget;
  attempts: number;
}

/**
 * Restarts being checked by pulls (the `Verifying` phase of protection.ts): an app that names its process is
 * pulled until it answers, and its answer tells a new process (restored from the copies) from the one
 * restored already (left alone).
 */
export class RestartChecks {
  private readonly verifying = new Map<string, RestartCheck>();
  private readonly checks: WorkQueue;

  constructor(
    private readonly d: {
      log: Logger;
      /** The Pod as the cache holds it now, if it still exists with this UID and is not terminating. */
      livePod: (namespace: string, name: string, uid: string) => V1Pod | undefined;
      /** Pulls a Pod now (to learn which process answers). */
      pullNow: (podUID: string) => Promise<void>;
      signal?: AbortSignal;
      clock?: Clock;
    },
  ) {
    this.checks = new WorkQueue((uid) => this.checkRestart(uid), {
      concurrency: 256,
      signal: d.signal,
      clock: d.clock,
      backoff: RETRY,
      onError: (key, err, retryInMs) =>
        d.log.error('restart check crashed, will retry', {
          podUID: key,
          error: errorMessage(err),
          retryInMs,
        }),
    });
    d.signal?.addEventListener('abort', () => this.verifying.clear(), { once: true });
  }

  has(podUID: string): boolean {
    return this.verifying.has(podUID);
  }

  /** Ends the check of a Pod; whether one was running. */
  end(podUID: string): boolean {
    return this.verifying.delete(podUID);
  }

  forget(podUID: string): void {
    this.verifying.delete(podUID);
    this.checks.forget(podUID);
  }

  /**
   * The API shows a restart of an app that names its process: pull it until it answers. A new process is
   * restored from the copies (the pull is refused as a restart); the process restored already (a restart
   * seen first by a pull, or by a previous leader) is left alone. Either way it is restored exactly once.
   */
  verify(t: RestoreTarget): void {
    const uid = t.pod.metadata!.uid!;
    if (this.verifying.has(uid)) return;
    this.verifying.set(uid, { t, attempts: 0 });
    this.checks.add(uid);
  }

  /** One pull of a restart under check; again after a short back-off until the pull settles it. */
  private async checkRestart(uid: string): Promise<ReconcileResult> {
    const check = this.verifying.get(uid);
    if (!check) return;
    const pod = check.t.pod;
    if (!this.d.livePod(pod.metadata!.namespace!, pod.metadata!.name!, uid)) {
      this.verifying.delete(uid);
      return;
    }
    await this.d.pullNow(uid);
    if (this.verifying.get(uid) !== check) return;
    check.attempts++;
    return { requeueAfterMs: backoffDelay(check.attempts, RETRY) };
  }
}
