import { readFileSync } from 'node:fs';
import { createControllerMetrics, type MetricsSample } from '../../../src/controller/metrics.js';
import { helperMetrics } from '../../../src/helper/metrics.js';
import type { BlobStore } from '../../../src/helper/blob-store.js';

/** The lines of one metric in the exposition text, without HELP and TYPE. */
const lines = (text: string, name: string) =>
  text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));

const sample = (policies: string[], existing = policies): MetricsSample => ({
  policies: policies.map((key) => {
    const [namespace, policy] = key.split('/') as [string, string];
    return { namespace, policy, intervalSeconds: 1, oldestCheckpointMs: 1_700_000_000_000 };
  }),
  existingPolicies: new Set(existing),
  helpersUnavailable: 0,
});

describe('controller metrics', () => {
  it("show each policy's interval and checkpoint time on the first scrape, and the current values on every scrape", async () => {
    const m = createControllerMetrics();
    let now = sample(['a/p1']);
    m.setSampler(() => now);
    const first = await m.registry.metrics();
    expect(lines(first, 'pullstate_policy_interval_seconds')).toEqual([
      'pullstate_policy_interval_seconds{namespace="a",policy="p1"} 1',
    ]);
    expect(lines(first, 'pullstate_policy_oldest_checkpoint_timestamp_seconds')).toEqual([
      'pullstate_policy_oldest_checkpoint_timestamp_seconds{namespace="a",policy="p1"} 1700000000',
    ]);
    now = sample(['a/p2']);
    const second = await m.registry.metrics();
    expect(lines(second, 'pullstate_policy_interval_seconds')).toEqual([
      'pullstate_policy_interval_seconds{namespace="a",policy="p2"} 1',
    ]);
  });

  it('count pulls and restores per policy with one spelling of results, every value from 0, until the policy goes', async () => {
    const m = createControllerMetrics();
    let now = sample(['a/p1', 'b/p2']);
    m.setSampler(() => now);
    m.pulls.inc({ namespace: 'a', policy: 'p1' }, 'Succeeded');
    m.pulls.inc({ namespace: 'a', policy: 'p1' }, 'Succeeded');
    m.pullFailures.inc({ namespace: 'b', policy: 'p2' }, 'StorageFull');
    m.restores.inc({ namespace: 'a', policy: 'p1' }, 'Failed');
    const text = await m.registry.metrics();
    // Every existing policy has every value, its first event or not.
    expect(lines(text, 'pullstate_pulls_total')).toEqual([
      'pullstate_pulls_total{namespace="a",policy="p1",result="Succeeded"} 2',
      'pullstate_pulls_total{namespace="a",policy="p1",result="Failed"} 0',
      'pullstate_pulls_total{namespace="b",policy="p2",result="Succeeded"} 0',
      'pullstate_pulls_total{namespace="b",policy="p2",result="Failed"} 0',
    ]);
    expect(lines(text, 'pullstate_pull_failures_total')).toHaveLength(10);
    expect(lines(text, 'pullstate_pull_failures_total')).toContain(
      'pullstate_pull_failures_total{namespace="b",policy="p2",reason="StorageFull"} 1',
    );
    expect(lines(text, 'pullstate_restores_total').slice(0, 3)).toEqual([
      'pullstate_restores_total{namespace="a",policy="p1",result="Succeeded"} 0',
      'pullstate_restores_total{namespace="a",policy="p1",result="Failed"} 1',
      'pullstate_restores_total{namespace="a",policy="p1",result="NothingToRestore"} 0',
    ]);
    // A policy with no Pods at the moment keeps its counters; a deleted one loses them at the next scrape.
    now = sample([], ['a/p1']);
    const after = await m.registry.metrics();
    expect(lines(after, 'pullstate_pulls_total')).toHaveLength(2);
    expect(lines(after, 'pullstate_pull_failures_total')).toHaveLength(5);
    expect(lines(after, 'pullstate_pull_failures_total').join('\n')).not.toContain('policy="p2"');
    now = sample([], []);
    expect(lines(await m.registry.metrics(), 'pullstate_pulls_total')).toEqual([]);
  });

  it('say which build runs, in the controller and in the helper', async () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const info = `{version="${version}",nodejs="${process.version}"} 1`;
    expect(lines(await createControllerMetrics().registry.metrics(), 'pullstate_build_info')).toEqual([
      `pullstate_build_info${info}`,
    ]);
    const store = {
      list: () => [],
      usedBytes: () => 0,
      usedBytesByNamespace: () => new Map(),
      memory: () => ({ uploads: 0, cacheBytes: 0 }),
    };
    const helper = helperMetrics(store as unknown as BlobStore);
    expect(lines(await helper.registry.metrics(), 'pullstate_helper_build_info')).toEqual([
      `pullstate_helper_build_info${info}`,
    ]);
  });
});
