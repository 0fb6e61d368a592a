import { REASONS, type PullAssignment, type PullReport } from '../../api/index.js';
import { appRestartCount } from '../kube/app-container.js';
import type { HelperEndpoint } from '../kube/cluster-view.js';
import { probeTarget } from '../failover/probe-target.js';
import { hostNetworkMark } from '../policies/host-network.js';
import type { CheckpointRecord } from './checkpoint-book.js';
import type { ProtectedPod } from './protected-pod.js';
import { chooseTargets } from './target-nodes.js';

/** Why nothing is checkpointed, and what the user can do about it. */
export function noTargetMessage(e: ProtectedPod): string {
  const node = e.pod.spec?.nodeName ?? '';
  return e.spec.sameNodeCopy === 'WhenNoOtherNode'
    ? `no node has a Ready helper to hold a copy, not even ${node}`
    : `no node but the Pod's own (${node}) has a Ready helper, and a copy there would die with it; ` +
        `set sameNodeCopy: WhenNoOtherNode to keep one there (a single-node cluster), or add a node`;
}

/** The policy condition reason of a failed pull. */
export function failureReason(report: Extract<PullReport, { ok: false }>): string {
  switch (report.reason) {
    case 'StateTooLarge':
      return REASONS.stateTooLarge;
    case 'StorageFull':
      return REASONS.storageFull;
    case 'HelperUnavailable':
      return REASONS.helperUnavailable;
    case 'NoTargetNode':
      return REASONS.noTargetNode;
    case 'PullFailed':
    case 'Restarted':
      return REASONS.pullFailed;
  }
}

/**
 * What a Pod's helper pulls: the Pod's address and the policy's spec, the target nodes chosen now, the process
 * the copies are of; `paused` while the Pod must not be pulled (its restore is not done: its start state must
 * never replace the copies).
 */
export function pullAssignment(
  e: ProtectedPod,
  r: CheckpointRecord,
  usable: Map<string, HelperEndpoint>,
  load: Map<string, number>,
  paused: boolean,
): PullAssignment {
  const pod = e.pod;
  const current = [...r.copies.values()].sort((a, b) => b.sequence - a.sequence).map((c) => c.node);
  const targets = chooseTargets({
    podNode: pod.spec?.nodeName ?? '',
    copies: e.spec.copies,
    current,
    candidates: [...usable.keys()].map((node) => ({ node, load: load.get(node) ?? 0 })),
    key: r.podUID,
    sameNodeWhenAlone: e.spec.sameNodeCopy === 'WhenNoOtherNode',
  });
  return {
    namespace: r.namespace,
    policy: e.policy,
    policyUID: e.policyUID,
    pod: r.pod,
    podUID: r.podUID,
    ...(e.workload !== undefined ? { workload: e.workload } : {}),
    podIP: pod.status!.podIP!,
    ...hostNetworkMark(pod, e.spec),
    port: e.spec.port,
    path: e.spec.path,
    intervalMs: Math.round(e.spec.intervalSeconds * 1000),
    timeoutMs: Math.round(e.spec.timeoutSeconds * 1000),
    maxBytes: e.spec.maxStateBytes,
    restartCount: appRestartCount(pod, e.spec),
    targets: targets.map((node) => ({ node, url: usable.get(node)!.url })),
    ...(r.instance !== undefined ? { instance: r.instance } : {}),
    lastSequence: r.lastSequence,
    ...(paused ? { paused: true } : {}),
    ...(e.spec.mode === 'http-sf'
      ? {
          probe: {
            ...probeTarget(pod, e.spec),
            periodMs: e.spec.failover.periodMilliseconds,
            failureThreshold: e.spec.failover.failureThreshold,
          },
        }
      : {}),
  };
}
