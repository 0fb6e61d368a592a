import type { V1Pod } from '@kubernetes/client-node';
import { READINESS_GATE, REASONS } from '../../api/index.js';
import type { Logger } from '../../runtime/logger.js';
import { podRef } from '../checkpoints/checkpointer.js';
import type { EventRecorder } from '../kube/events.js';
import { gateTrue, hasGate, type GateWriter } from './readiness-gate.js';

/** How long a gated Pod may stay without a policy before its gate is opened (a policy applied with it arrives). */
export const NO_POLICY_GRACE_MS = 5000;

export interface GateKeeperDeps {
  gate: GateWriter;
  events: EventRecorder;
  log: Logger;
  /** The Pod as the cache holds it now, if it still exists with this UID. */
  currentPod: (namespace: string, name: string, uid: string) => V1Pod | undefined;
  /** Whether some policy selects the Pod (and so will restore it or open its gate). */
  selected: (pod: V1Pod) => boolean;
  graceMs?: number;
}

/**
 * Opens the readiness gate of Pods that carry it while no policy selects them (the policy was deleted, its
 * selector does not match, it lives in another namespace): such a Pod would otherwise never become Ready and
 * lose its traffic for good. It waits a few seconds first, so a policy applied together with its workload
 * still gets to restore; a Warning Event on the Pod says which gate was opened and why.
 */
export class GateKeeper {
  private timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly d: GateKeeperDeps) {}

  /** Looks at a Pod after any change of it or of the policies in its namespace. */
  podChanged(pod: V1Pod): void {
    const uid = pod.metadata?.uid ?? '';
    if (!this.waiting(pod)) {
      clearTimeout(this.timers.get(uid));
      this.timers.delete(uid);
      return;
    }
    if (this.timers.has(uid)) return;
    const timer = setTimeout(() => {
      this.timers.delete(uid);
      void this.open(pod.metadata!.namespace!, pod.metadata!.name!, uid);
    }, this.d.graceMs ?? NO_POLICY_GRACE_MS);
    timer.unref();
    this.timers.set(uid, timer);
  }

  stop(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private waiting(pod: V1Pod): boolean {
    return hasGate(pod) && !gateTrue(pod) && !pod.metadata?.deletionTimestamp && !this.d.selected(pod);
  }

  private async open(namespace: string, name: string, uid: string): Promise<void> {
    const pod = this.d.currentPod(namespace, name, uid);
    if (!pod || !this.waiting(pod)) return;
    const message = `no PullStatePolicy in namespace ${namespace} selects this Pod: the operator opened its readiness gate ${READINESS_GATE} so it can become Ready; it is protected as soon as a policy selects it`;
    await this.d.gate.set(pod, 'True', REASONS.noPolicy, message);
    this.d.log.warn('opened the readiness gate of a Pod no policy protects', { pod: name, namespace });
    this.d.events.record(podRef(pod), 'Warning', REASONS.noPolicy, message);
  }
}
