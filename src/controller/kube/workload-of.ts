import type { V1Pod } from '@kubernetes/client-node';
import { WORKLOAD_PATTERN } from '../../api/index.js';

/**
 * The workload a Pod belongs to, as `<Kind>/<name>` in its namespace (pure): its controller owner, with a
 * Deployment's ReplicaSet named after the Deployment (the ReplicaSet is `<deployment>-<pod-template-hash>`,
 * and a rollout makes a new one: the workload is the same), and `Pod/<name>` for a Pod no controller owns.
 * Copies carry it so that an orphaned copy goes only into a replacement of the same workload.
 */
export function workloadOf(pod: V1Pod): string | undefined {
  const owner = (pod.metadata?.ownerReferences ?? []).find((o) => o.controller);
  let workload = owner ? `${owner.kind}/${owner.name}` : `Pod/${pod.metadata?.name ?? ''}`;
  const hash = pod.metadata?.labels?.['pod-template-hash'];
  if (owner?.kind === 'ReplicaSet' && hash && owner.name.endsWith(`-${hash}`))
    workload = `Deployment/${owner.name.slice(0, -hash.length - 1)}`;
  // An owner kind or name no copy could carry (a custom controller's) leaves the Pod without one: its copies
  // then go into no new Pod, which is safe, where a guess could be another workload's.
  return WORKLOAD_PATTERN.test(workload) ? workload : undefined;
}
