import type { V1Pod } from '@kubernetes/client-node';
import { READINESS_GATE, REASONS } from '../../api/index.js';
import type { Logger } from '../../runtime/logger.js';
import { podRef } from '../kube/object-refs.js';
import type { EventRecorder } from '../kube/events.js';
import { WorkQueue } from '../kube/workqueue.js';
import type { Refusal } from '../policies/host-network.js';
import { gateTrue, hasGate, type GateWriter } from './readiness-gate.js';
import type { Clock } from '../kube/clock.js';

/** How long a gated Pod may stay without a policy before its gate is opened (a policy applied with it arrives). */
export const NO_POLICY_GRACE_MS = 5000;

export interface GateKeeperDeps {
  gate: Pick<GateWriter, 'set'>;
  events: Pick<EventRecorder, 'record'>;
  log: Logger;
  /** The Pod as the cache holds it now, if it still exists with this UID. */
  currentPod: (namespace: string, name: string, uid: string) => V1Pod | undefined;
  /** Whether some policy selects the Pod (and so will restore it or open its gate). */
  selected: (pod: V1Pod) => boolean;
  /** Why the policy that selects the Pod still leaves it unprotected (e.g. hostNetwork), if it does. */
  refusal?: (pod: V1Pod) => Refusal | undefined;
  graceMs?: number;
  /** Ends the waits (leadership lost, shutdown). */
  signal?: AbortSignal;
  clock?: Clock;
}

/** A queue key names the Pod exactly: its namespace, name and UID. */
const podKey = (pod: V1Pod) => `${pod.metadata?.namespace}/${pod.metadata?.name}/${pod.metadata?.uid}`;

/**
 * Opens the readiness gate of Pods that carry it while no policy selects them (the policy was deleted, its
 * selector does not match, it lives in another namespace) or the one that selects them refuses them (a
 * hostNetwork Pod the policy does not allow): such a Pod would otherwise never become Ready and
 * lose its traffic for good. It waits a few seconds first, so a policy applied together with its workload
 * still gets to restore; a Warning Event on the Pod says which gate was opened and why.
 */
export class GateKeeper {
  /** Pods waiting out the grace period, each a key due when it ends. */
  private readonly queue: WorkQueue;

  constructor(private readonly d: GateKeeperDeps) {
    this.queue = new WorkQueue(
      (key) => {
        const [namespace, name, uid] = key.split('/') as [string, string, string];
        return this.open(namespace, name, uid);
      },
      {
        concurrency: 4,
        signal: d.signal,
        clock: d.clock,
        onError: (key, err, retryInMs) =>
          d.log.warn('could not open a readiness gate, will retry', {
            pod: key,
            error: String(err),
            retryInMs,
          }),
      },
    );
  }

  /** Looks at a Pod after any change of it or of the policies in its namespace. */
  podChanged(pod: V1Pod): void {
    // The grace period counts from the first look: a later change does not push it back.
    if (this.waiting(pod)) this.queue.addAfter(podKey(pod), this.d.graceMs ?? NO_POLICY_GRACE_MS);
    else this.queue.forget(podKey(pod));
  }

  private waiting(pod: V1Pod): boolean {
    if (!hasGate(pod) || gateTrue(pod) || pod.metadata?.deletionTimestamp) return false;
    return !this.d.selected(pod) || this.d.refusal?.(pod) !== undefined;
  }

  private async open(namespace: string, name: string, uid: string): Promise<void> {
    const pod = this.d.currentPod(namespace, name, uid);
    if (!pod || !this.waiting(pod)) return;
    const refusal = this.d.selected(pod) ? this.d.refusal?.(pod) : undefined;
    const { reason, message } = refusal
      ? {
          reason: refusal.reason,
          message: `${refusal.message}; the operator opened its readiness gate ${READINESS_GATE} so it can become Ready`,
        }
      : {
          reason: REASONS.noPolicy,
          message: `no PullStatePolicy in namespace ${namespace} selects this Pod: the operator opened its readiness gate ${READINESS_GATE} so it can become Ready; it is protected as soon as a policy selects it`,
        };
    await this.d.gate.set(pod, 'True', reason, message);
    this.d.log.warn('opened the readiness gate of a Pod no policy protects', {
      pod: name,
      namespace,
      reason,
    });
    this.d.events.record(podRef(pod), 'Warning', reason, message);
  }
}
