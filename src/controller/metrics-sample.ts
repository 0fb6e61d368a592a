import type { V1Node } from '@kubernetes/client-node';
import type { IPullStatePolicy } from '../api/index.js';
import type { CheckpointBook } from './checkpoints/checkpoint-book.js';
import type { ProtectedPod } from './checkpoints/protected-pod.js';
import type { ClusterView } from './kube/cluster-view.js';
import type { MetricsSample } from './metrics.js';

/** Per-policy checkpoint ages and helper availability, read at scrape time. */
export function metricsSample(o: {
  protectedPods: readonly ProtectedPod[];
  book: Pick<CheckpointBook, 'get'>;
  view: Pick<ClusterView, 'helpers' | 'nodeReady'>;
  nodes: readonly V1Node[];
  policies: readonly IPullStatePolicy[];
}): MetricsSample {
  const policies = new Map<string, MetricsSample['policies'][number]>();
  for (const p of o.protectedPods) {
    const newest = o.book.get(p.pod.metadata!.uid!)?.generations[0];
    // A Pod without a checkpoint counts from its start: a policy that never checkpoints alerts.
    const at = newest
      ? (newest.pulledAt ?? Date.parse(newest.storedAt))
      : Date.parse(String(p.pod.status?.startTime ?? p.pod.metadata?.creationTimestamp ?? new Date()));
    const entry = policies.get(p.policyKey) ?? {
      namespace: p.pod.metadata!.namespace!,
      policy: p.policy,
      intervalSeconds: p.spec.intervalSeconds,
      oldestCheckpointMs: at,
    };
    entry.oldestCheckpointMs = Math.min(entry.oldestCheckpointMs, at);
    policies.set(p.policyKey, entry);
  }
  const helpers = o.view.helpers();
  const helpersUnavailable = o.nodes.filter(
    (n) => o.view.nodeReady(n.metadata!.name!) && !helpers.get(n.metadata!.name!)?.ready,
  ).length;
  const existingPolicies = new Set(o.policies.map((p) => `${p.metadata!.namespace}/${p.metadata!.name}`));
  return { policies: [...policies.values()], existingPolicies, helpersUnavailable };
}
