import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the leader knows at scrape time, per policy and about the helpers. */
export interface MetricsSample {
  policies: { namespace: string; policy: string; intervalSeconds: number; oldestCheckpointMs: number }[];
  helpersUnavailable: number;
}

/** Every Prometheus metric of the controller, registered once. */
export function createControllerMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const r = [registry];
  // Set by the leader's manager; a standby exports none of the gauges below.
  let sampler: (() => MetricsSample) | undefined;
  const policyInterval = new Gauge({
    name: 'pullstate_policy_interval_seconds',
    help: "A policy's intervalSeconds (alerts compare checkpoint ages with it).",
    labelNames: ['namespace', 'policy'],
    registers: r,
  });
  const oldestCheckpoint = new Gauge({
    name: 'pullstate_policy_oldest_checkpoint_timestamp_seconds',
    help: "Per policy, the oldest of its Pods' newest checkpoints (a Pod without one counts from its start).",
    labelNames: ['namespace', 'policy'],
    registers: r,
    collect() {
      const s = sampler?.();
      policyInterval.reset();
      this.reset();
      for (const p of s?.policies ?? []) {
        const labels = { namespace: p.namespace, policy: p.policy };
        policyInterval.set(labels, p.intervalSeconds);
        this.set(labels, p.oldestCheckpointMs / 1000);
      }
    },
  });
  const helpersUnavailable = new Gauge({
    name: 'pullstate_helpers_unavailable',
    help: 'Ready nodes whose helper is missing or not Ready (their Pods are not checkpointed).',
    registers: r,
    collect() {
      const s = sampler?.();
      if (s) this.set(s.helpersUnavailable);
    },
  });
  const restores = new Counter({
    name: 'pullstate_restores_total',
    help: 'Restores by result.',
    labelNames: ['result'],
    registers: r,
  });
  const pulls = new Counter({
    name: 'pullstate_pulls_total',
    help: 'State pulls by result (success or failure).',
    labelNames: ['result'],
    registers: r,
  });
  // Every label value from the start, so increase() and alerts see a 0 before the first event.
  for (const result of ['Succeeded', 'Failed', 'NothingToRestore']) restores.inc({ result }, 0);
  for (const result of ['success', 'failure']) pulls.inc({ result }, 0);
  const pullFailures = new Counter({
    name: 'pullstate_pull_failures_total',
    help: 'Failed pulls by reason (PullFailed, StateTooLarge, StorageFull, NoTargetNode, HelperUnavailable).',
    labelNames: ['reason'],
    registers: r,
  });
  for (const reason of ['PullFailed', 'StateTooLarge', 'StorageFull', 'NoTargetNode', 'HelperUnavailable'])
    pullFailures.inc({ reason }, 0);
  return {
    pullFailures,
    setSampler: (fn: () => MetricsSample) => {
      sampler = fn;
    },
    policyInterval,
    oldestCheckpoint,
    helpersUnavailable,
    registry,
    pulls,
    pullSeconds: new Histogram({
      name: 'pullstate_pull_duration_seconds',
      help: 'From the start of a pull until every target helper has stored the state.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: r,
    }),
    pullBytes: new Histogram({
      name: 'pullstate_pull_bytes',
      help: 'Size of pulled states.',
      buckets: [256, 1024, 16384, 131072, 1048576, 4194304, 16777216, 67108864, 268435456],
      registers: r,
    }),
    queueDepth: new Gauge({
      name: 'pullstate_workqueue_depth',
      help: 'Keys waiting in the reconcile queue.',
      registers: r,
    }),
    protectedPods: new Gauge({
      name: 'pullstate_protected_pods',
      help: 'Pods whose state is being checkpointed.',
      registers: r,
    }),
    statusWrites: new Counter({
      name: 'pullstate_status_writes_total',
      help: 'PullStatePolicy status writes.',
      registers: r,
    }),
    leader: new Gauge({
      name: 'pullstate_leader',
      help: '1 while this replica holds the leader Lease.',
      registers: r,
    }),
    restores,
    failoverSeconds: new Histogram({
      name: 'pullstate_failover_duration_seconds',
      help: 'From fault detection until the replacement Pod is restored and its readiness gate set.',
      buckets: [0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64],
      registers: r,
    }),
  };
}

export type ControllerMetrics = ReturnType<typeof createControllerMetrics>;
