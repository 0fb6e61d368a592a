import { registerBuildInfo } from '../runtime/build-info.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the leader knows at scrape time, per policy and about the helpers. */
export interface MetricsSample {
  policies: { namespace: string; policy: string; intervalSeconds: number; oldestCheckpointMs: number }[];
  /** Every PullStatePolicy that exists (`namespace/name`): the series of the others are dropped. */
  existingPolicies: Set<string>;
  helpersUnavailable: number;
}

/** Every value of a result label, from the start, so increase() and alerts see a 0 before the first event. */
export const PULL_RESULTS = ['Succeeded', 'Failed'] as const;
export const RESTORE_RESULTS = ['Succeeded', 'Failed', 'NothingToRestore'] as const;
export const PULL_FAILURE_REASONS = [
  'PullFailed',
  'StateTooLarge',
  'StorageFull',
  'NoTargetNode',
  'HelperUnavailable',
] as const;

/** The labels of a policy's series. */
export interface PolicyLabels {
  namespace: string;
  policy: string;
}

/**
 * Per-policy counters with bounded cardinality: when scraped, every existing policy has each of its result
 * (or reason) values, 0 before its first event (so increase() and alerts see the start), and the series of
 * deleted policies are dropped.
 */
class PolicyCounter<L extends string> {
  readonly counter: Counter<'namespace' | 'policy' | L>;
  private known = new Set<string>();

  constructor(
    o: { name: string; help: string; registers: Registry[] },
    private readonly label: L,
    private readonly values: readonly string[],
    existingPolicies: () => Set<string> | undefined,
  ) {
    const sync = (existing: Set<string>) => this.sync(existing);
    this.counter = new Counter({
      ...o,
      labelNames: ['namespace', 'policy', label] as ('namespace' | 'policy' | L)[],
      collect() {
        const existing = existingPolicies();
        if (existing) sync(existing);
      },
    });
  }

  inc(p: PolicyLabels, value: string): void {
    this.ensure(`${p.namespace}/${p.policy}`);
    this.counter.inc(this.labels(p, value));
  }

  private sync(existing: Set<string>): void {
    for (const key of existing) this.ensure(key);
    for (const key of this.known) {
      if (existing.has(key)) continue;
      this.known.delete(key);
      for (const v of this.values) this.counter.remove(this.labels(policyOf(key), v));
    }
  }

  private ensure(key: string): void {
    if (this.known.has(key)) return;
    this.known.add(key);
    for (const v of this.values) this.counter.inc(this.labels(policyOf(key), v), 0);
  }

  private labels(p: PolicyLabels, value: string) {
    return { namespace: p.namespace, policy: p.policy, [this.label]: value } as Record<
      'namespace' | 'policy' | L,
      string
    >;
  }
}

const policyOf = (key: string): PolicyLabels => {
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), policy: key.slice(slash + 1) };
};

/** Every Prometheus metric of the controller, registered once. */
export function createControllerMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const r = [registry];
  // Set by the leader's manager; a standby exports none of the gauges below.
  let sampler: (() => MetricsSample) | undefined;
  registerBuildInfo(registry, 'pullstate_build_info');
  // Each gauge fills itself when scraped: one set inside another's collect() showed the previous scrape's
  // values (and none on the first), since prom-client may read it before that collect() runs.
  const policyInterval = new Gauge({
    name: 'pullstate_policy_interval_seconds',
    help: "A policy's intervalSeconds (alerts compare checkpoint ages with it).",
    labelNames: ['namespace', 'policy'],
    registers: r,
    collect() {
      this.reset();
      for (const p of sampler?.().policies ?? [])
        this.set({ namespace: p.namespace, policy: p.policy }, p.intervalSeconds);
    },
  });
  const oldestCheckpoint = new Gauge({
    name: 'pullstate_policy_oldest_checkpoint_timestamp_seconds',
    help: "Per policy, the oldest of its Pods' newest checkpoints (a Pod without one counts from its start).",
    labelNames: ['namespace', 'policy'],
    registers: r,
    collect() {
      const s = sampler?.();
      this.reset();
      for (const p of s?.policies ?? [])
        this.set({ namespace: p.namespace, policy: p.policy }, p.oldestCheckpointMs / 1000);
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
  const existing = () => sampler?.().existingPolicies;
  const restores = new PolicyCounter(
    {
      name: 'pullstate_restores_total',
      help: `Restores by policy and result (${RESTORE_RESULTS.join(', ')}).`,
      registers: r,
    },
    'result',
    RESTORE_RESULTS,
    existing,
  );
  const pulls = new PolicyCounter(
    {
      name: 'pullstate_pulls_total',
      help: `State pulls by policy and result (${PULL_RESULTS.join(', ')}).`,
      registers: r,
    },
    'result',
    PULL_RESULTS,
    existing,
  );
  const pullFailures = new PolicyCounter(
    {
      name: 'pullstate_pull_failures_total',
      help: `Failed pulls by policy and reason (${PULL_FAILURE_REASONS.join(', ')}).`,
      registers: r,
    },
    'reason',
    PULL_FAILURE_REASONS,
    existing,
  );
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
