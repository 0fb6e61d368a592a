import type { V1Pod } from '@kubernetes/client-node';
import { REASONS, parseSpec, type IPullStatePolicy } from '../../api/index.js';
import type { Logger } from '../../runtime/logger.js';
import { policyKey, type CheckpointBook } from '../checkpoints/checkpoint-book.js';
import type { Checkpointer } from '../checkpoints/checkpointer.js';
import type { ProtectedPod } from '../checkpoints/protected-pod.js';
import { podRef } from '../kube/object-refs.js';
import { appContainerWarning } from '../kube/app-container.js';
import { isHelperPod } from '../kube/cluster-view.js';
import type { EventRecorder } from '../kube/events.js';
import type { Informer } from '../kube/informer.js';
import { matchesSelector } from '../kube/label-selector.js';
import { workloadOf } from '../kube/workload-of.js';
import { hostNetworkRefusal, type Refusal } from './host-network.js';
import { buildStatus, type StatusInput } from './policy-status.js';
import type { DesiredStatus, StatusWriter } from './status-writer.js';
import type { ReconcileResult } from '../kube/workqueue.js';
import type { Restorer } from '../restores/restorer.js';
import type { FaultDetector } from '../failover/fault-detector.js';
import { systemClock, type Clock } from '../kube/clock.js';

export interface PolicyReconcilerDeps {
  policies: Informer<IPullStatePolicy>;
  pods: Informer<V1Pod>;
  book: CheckpointBook;
  checkpointer: Checkpointer;
  status: StatusWriter;
  events: EventRecorder;
  log: Logger;
  operatorNamespace: string;
  restorer: Restorer;
  detector: FaultDetector;
  /** Problems of annotated workloads, keyed by the managed policy's key (set by the workload reconciler). */
  annotationProblems: ReadonlyMap<string, string>;
  clock?: Clock;
}

/** A Pod whose state can be pulled: running, with an IP, not being deleted. */
export function isPullable(pod: V1Pod): boolean {
  return pod.status?.phase === 'Running' && !!pod.status.podIP && !pod.metadata?.deletionTimestamp;
}

/**
 * One reconciler per PullStatePolicy: reads the policy and the Pods it selects from the caches, makes the
 * checkpointer protect exactly those Pods, and asks for the status to be written. Idempotent: running it
 * twice changes nothing.
 */
export class PolicyReconciler {
  private invalid = new Map<string, string>();
  /** Per policy: Pods it selects that an older policy protects, counted by that policy's name. */
  private conflicts = new Map<string, Map<string, number>>();
  /** Per policy: names of the selected Pods left out because they use hostNetwork. */
  private hostNetwork = new Map<string, string[]>();

  constructor(private readonly d: PolicyReconcilerDeps) {}

  /** Policies a Pod change may concern: those selecting it now, and the one protecting it so far. */
  keysForPod(pod: V1Pod): string[] {
    const ns = pod.metadata?.namespace ?? '';
    const keys = new Set<string>();
    for (const p of this.d.policies.list(ns)) {
      if (matchesSelector(p.spec?.selector, pod.metadata?.labels)) keys.add(policyKey(ns, p.metadata!.name!));
    }
    const owner = this.d.checkpointer.ownerOf(pod.metadata?.uid ?? '');
    if (owner) keys.add(owner);
    return [...keys];
  }

  /**
   * The policy that protects a Pod several policies select: the oldest valid one (then by name). A rule every
   * leader computes the same way from the API alone, so it holds across a takeover.
   */
  protector(pod: V1Pod): IPullStatePolicy | undefined {
    const ns = pod.metadata?.namespace ?? '';
    const time = (p: IPullStatePolicy) => Date.parse(String(p.metadata?.creationTimestamp ?? '')) || 0;
    return this.d.policies
      .list(ns)
      .filter((p) => matchesSelector(p.spec?.selector, pod.metadata?.labels) && parseSpec(p.spec).ok)
      .sort((a, b) => time(a) - time(b) || a.metadata!.name!.localeCompare(b.metadata!.name!))[0];
  }

  /**
   * Why a Pod that a policy selects is still left unprotected (for the gate keeper, which then opens its
   * gate); undefined when it is protected or no policy selects it.
   */
  refusal(pod: V1Pod): Refusal | undefined {
    const policy = this.protector(pod);
    if (!policy) return undefined;
    const parsed = parseSpec(policy.spec);
    return parsed.ok ? hostNetworkRefusal(pod, parsed.value) : undefined;
  }

  reconcile(key: string): ReconcileResult {
    const [namespace, name] = key.split('/') as [string, string];
    const policy = this.d.policies.get(name, namespace);
    if (!policy) {
      this.d.checkpointer.stopPolicy(key);
      this.d.detector.sync(this.d.checkpointer.protectedPods());
      this.d.status.forget(key);
      this.d.restorer.forgetPolicy(key);
      this.invalid.delete(key);
      this.conflicts.delete(key);
      this.hostNetwork.delete(key);
      return;
    }
    this.d.status.observe(key, policy.status);
    const parsed = parseSpec(policy.spec);
    if (!parsed.ok) {
      const message = `invalid spec: ${parsed.errors.join('; ')}`;
      if (this.invalid.get(key) !== message) {
        this.d.log.warn('invalid PullStatePolicy', { policy: key, message });
        this.d.events.record(
          { apiVersion: policy.apiVersion, kind: policy.kind, name, namespace, uid: policy.metadata?.uid },
          'Warning',
          REASONS.invalidSpec,
          message,
        );
      }
      this.invalid.set(key, message);
      this.d.checkpointer.stopPolicy(key);
      this.d.status.request(key);
      return;
    }
    this.invalid.delete(key);
    const elsewhere = new Map<string, number>();
    const refused: V1Pod[] = [];
    const entries: ProtectedPod[] = this.d.pods
      .list(namespace)
      .filter((pod) => matchesSelector(parsed.value.selector, pod.metadata?.labels))
      .filter((pod) => isPullable(pod) && !isHelperPod(pod, this.d.operatorNamespace))
      .filter((pod) => {
        const owner = this.protector(pod)?.metadata?.name;
        if (!owner || owner === name) return true;
        elsewhere.set(owner, (elsewhere.get(owner) ?? 0) + 1);
        return false;
      })
      .filter((pod) => {
        const refusal = hostNetworkRefusal(pod, parsed.value);
        if (!refusal) return true;
        refused.push(pod);
        // One Event per Pod and message: the recorder drops repeats.
        this.d.events.record(podRef(pod), 'Warning', refusal.reason, refusal.message);
        return false;
      })
      .map((pod) => {
        const workload = workloadOf(pod);
        return {
          policyKey: key,
          policy: name,
          policyUID: policy.metadata?.uid ?? '',
          ...(workload !== undefined ? { workload } : {}),
          spec: parsed.value,
          pod,
        };
      });
    this.noteConflicts(key, policy, elsewhere);
    if (refused.length > 0) this.hostNetwork.set(key, refused.map((p) => p.metadata!.name!).sort());
    else this.hostNetwork.delete(key);
    for (const e of entries) this.noteAppContainer(e);
    this.d.checkpointer.sync(key, entries);
    const live = new Set(entries.map((e) => e.pod.metadata!.uid!));
    const orphans = this.d.book
      .forPolicy(namespace, name)
      .filter((r) => !live.has(r.podUID) && !this.d.checkpointer.ownerOf(r.podUID));
    this.d.restorer.consider(entries, orphans);
    this.d.detector.sync(this.d.checkpointer.protectedPods());
    this.d.status.request(key);
  }

  /** A guessed app container is worth telling (the recorder keeps it to one Event per Pod and message). */
  private noteAppContainer(e: ProtectedPod): void {
    const warning = appContainerWarning(e.pod, e.spec);
    if (!warning) return;
    this.d.events.record(podRef(e.pod), 'Warning', REASONS.appContainerGuessed, warning);
  }

  private noteConflicts(key: string, policy: IPullStatePolicy, elsewhere: Map<string, number>): void {
    const before = conflictText(this.conflicts.get(key));
    const now = conflictText(elsewhere);
    if (elsewhere.size > 0) this.conflicts.set(key, elsewhere);
    else this.conflicts.delete(key);
    if (now && now !== before) {
      const { name, namespace, uid } = policy.metadata ?? {};
      this.d.log.warn('policy overlaps an older one', { policy: key, conflict: now });
      this.d.events.record(
        { apiVersion: policy.apiVersion, kind: policy.kind, name, namespace, uid },
        'Warning',
        REASONS.conflict,
        now,
      );
    }
  }

  /** The status the policy should show now (called by the status writer when it is time to write). */
  desiredStatus(key: string): DesiredStatus | undefined {
    const [namespace, name] = key.split('/') as [string, string];
    const policy = this.d.policies.get(name, namespace);
    if (!policy) return undefined;
    const protectedUIDs = new Set(
      this.d.checkpointer
        .protectedPods()
        .filter((e) => e.policyKey === key)
        .map((e) => e.pod.metadata!.uid!),
    );
    const invalid = this.invalid.get(key);
    const annotation = this.d.annotationProblems.get(key);
    const conflict = conflictText(this.conflicts.get(key));
    const hostNetwork = hostNetworkText(this.hostNetwork.get(key));
    const problem: StatusInput['problem'] = invalid
      ? { reason: REASONS.invalidSpec, message: invalid, blocking: true }
      : annotation
        ? {
            reason: REASONS.invalidAnnotation,
            message: `${annotation}; the last valid settings stay in effect`,
            blocking: false,
          }
        : conflict
          ? { reason: REASONS.conflict, message: conflict, blocking: false }
          : hostNetwork
            ? { reason: REASONS.hostNetworkRefused, message: hostNetwork, blocking: false }
            : undefined;
    const lastRestore = this.d.restorer.lastRestore.get(key);
    const status = buildStatus({
      generation: policy.metadata?.generation ?? 0,
      previous: lastRestore ? { ...policy.status, lastRestore } : policy.status,
      protectedUIDs,
      records: this.d.book.forPolicy(namespace, name),
      ...(problem ? { problem } : {}),
      now: new Date((this.d.clock ?? systemClock).now()),
    });
    const interval = typeof policy.spec?.intervalSeconds === 'number' ? policy.spec.intervalSeconds : 10;
    return { status, periodMs: interval * 1000 };
  }
}

/** What a policy's status says about Pods it selects that older policies protect (empty: none). */
function conflictText(elsewhere: ReadonlyMap<string, number> | undefined): string {
  if (!elsewhere || elsewhere.size === 0) return '';
  const parts = [...elsewhere]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([owner, n]) => `${n} selected Pod${n === 1 ? '' : 's'} protected by the older policy ${owner}`);
  return `${parts.join('; ')}: a Pod is protected by one policy only, the oldest that selects it`;
}

function hostNetworkText(names: string[] | undefined): string | undefined {
  if (!names || names.length === 0) return undefined;
  const shown = names.slice(0, 5).join(', ') + (names.length > 5 ? `, and ${names.length - 5} more` : '');
  return `${names.length} selected Pod(s) use hostNetwork and are not protected (${shown}): their state port is a port of their node; set spec.allowHostNetwork: true if it is the app's`;
}
