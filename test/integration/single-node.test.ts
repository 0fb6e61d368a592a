// A cluster where only the Pod's own node runs a helper (#29): a single-node kind or minikube, or the other
// helpers down. Made here by keeping the helper DaemonSet on one node; put back afterwards for the other suites.
// With `sameNodeCopy: Never` (the default) the policy says NoTargetNode and what to do; with `WhenNoOtherNode`
// the copy is kept on the Pod's own node, a crash and a deletion are restored, the condition says what is not
// protected, and the copy leaves the node once another node has a helper again.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { aheadAllowed, failoverTrial } from '../../harness/failover.js';
import { GROUP, OPERATOR_NAMESPACE, PLURAL, VERSION } from '../../src/api/index.js';
import { apps, core, createNamespace, eventually, readyPods } from './cluster.js';
import {
  checkpointedPod,
  condition,
  custom,
  helperPods,
  helperRolloutDone,
  installOperator,
  leader,
  policy,
} from './operator.js';

// Its own namespace each run: a rerun on the same cluster would otherwise get the last run's copies restored
// (orphans of the same workload, kept an hour), held on nodes whose helpers this test removes.
const ns = `it-single-node-${Date.now().toString(36)}`;
const name = 'count-app';
/** One interval of count-app updates (10 per second at 1 s), plus one for the test's own sampling. */
const MAX_LOST = 11;
const HELPERS = 'pull-state-helper';

interface Doc {
  kind: string;
  spec: { template: { spec: Record<string, unknown> } };
}

/** The node the app and the only helper run on: a worker, not the leader's, so the controller is undisturbed. */
let node: string;

async function helpersOnlyOn(only: string | undefined): Promise<void> {
  const ds = await apps.readNamespacedDaemonSet({ name: HELPERS, namespace: OPERATOR_NAMESPACE });
  const has = ds.spec!.template.spec!.affinity !== undefined;
  const ops = only
    ? [
        {
          op: has ? 'replace' : 'add',
          path: '/spec/template/spec/affinity',
          value: {
            nodeAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [
                  { matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [only] }] },
                ],
              },
            },
          },
        },
      ]
    : has
      ? [{ op: 'remove', path: '/spec/template/spec/affinity' }]
      : [];
  if (ops.length === 0) return;
  execFileSync('kubectl', [
    '--kubeconfig',
    '.local/kubeconfig',
    'patch',
    '-n',
    OPERATOR_NAMESPACE,
    `daemonset/${HELPERS}`,
    '--type=json',
    '-p',
    JSON.stringify(ops),
  ]);
  await helperRolloutDone('240s');
}

async function setSameNodeCopy(value: 'Never' | 'WhenNoOtherNode'): Promise<void> {
  await custom.patchNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    name,
    body: [{ op: 'add', path: '/spec/sameNodeCopy', value }],
  });
}

const degraded = async () => condition(await policy(ns, name), 'Degraded');

beforeAll(async () => {
  // A run cut short leaves the helpers on one node: the install waits for one on every node.
  await helpersOnlyOn(undefined);
  await installOperator();
  await createNamespace(ns);
  const lead = await eventually('a leader', () => leader());
  const leaderNode = (await core.readNamespacedPod({ name: lead, namespace: OPERATOR_NAMESPACE })).spec!
    .nodeName;
  const nodes = await core.listNode();
  node = nodes.items
    .filter((n) => !(n.spec?.taints ?? []).some((t) => t.effect === 'NoSchedule'))
    .map((n) => n.metadata!.name!)
    .filter((n) => n !== leaderNode)
    .sort()[0]!;
  await helpersOnlyOn(node);
  await eventually('helpers on one node only', async () => {
    const pods = await helperPods();
    return pods.length === 1 && pods[0]!.spec!.nodeName === node;
  });
  const docs = parseAllDocuments(readFileSync('examples/count-app/policy.yaml', 'utf8')).map(
    (d) => d.toJS() as Doc,
  );
  for (const d of docs)
    if (d.kind === 'Deployment') d.spec.template.spec.nodeSelector = { 'kubernetes.io/hostname': node };
  execFileSync('kubectl', ['--kubeconfig', '.local/kubeconfig', 'apply', '-n', ns, '-f', '-'], {
    input: docs.map((d) => JSON.stringify(d)).join('\n'),
  });
}, 400_000);

afterAll(async () => {
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
  await helpersOnlyOn(undefined);
}, 300_000);

describe('a cluster where only the Pod’s own node has a helper', () => {
  it('sameNodeCopy Never (the default): Degraded NoTargetNode naming the way out, nothing checkpointed, the Pod Ready', async () => {
    const c = await eventually(
      'Degraded NoTargetNode',
      async () => {
        const d = await degraded();
        return d?.reason === 'NoTargetNode' ? d : undefined;
      },
      90_000,
    );
    expect(c.status).toBe('True');
    expect(c.message).toContain(`no node but the Pod's own (${node}) has a Ready helper`);
    expect(c.message).toContain('set sameNodeCopy: WhenNoOtherNode');
    // Not held hostage: a Pod with nothing to restore becomes Ready without a checkpoint.
    const ready = await eventually('the app Ready', async () => {
      const p = await readyPods(ns, `app=${name}`);
      return p.length === 1 ? p : undefined;
    });
    expect(ready[0]!.spec!.nodeName).toBe(node);
    expect((await policy(ns, name)).status?.checkpoints ?? []).toEqual([]);
  });

  it('sameNodeCopy WhenNoOtherNode: the copy is on the Pod’s node, and the condition says the node’s loss is not covered', async () => {
    await setSameNodeCopy('WhenNoOtherNode');
    await checkpointedPod(ns, `app=${name}`, name);
    const p = await policy(ns, name);
    expect(p.status!.checkpoints!.map((c) => c.node)).toEqual([node]);
    const c = await eventually('Degraded SameNodeCopy', async () => {
      const d = await degraded();
      return d?.reason === 'SameNodeCopy' ? d : undefined;
    });
    expect(c.message).toContain(`on ${node}`);
    expect(c.message).toContain('the loss of its node is not');
  });

  it('a crash is restored from the copy on the same node', async () => {
    await checkpointedPod(ns, `app=${name}`, name);
    const r = await failoverTrial(ns, `app=${name}`, 'crash');
    expect(r.restoredCount).not.toBeNull();
    expect(r.lostUpdates).toBeLessThanOrEqual(MAX_LOST);
    expect(r.lostUpdates).toBeGreaterThanOrEqual(-aheadAllowed(r));
  });

  it('a deleted Pod’s replacement continues where it stopped', async () => {
    await checkpointedPod(ns, `app=${name}`, name);
    const r = await failoverTrial(ns, `app=${name}`, 'delete');
    expect(r.podAfter).not.toBe(r.podBefore);
    expect(r.lostUpdates).toBe(0);
  });

  it('once another node has a helper again, the copy moves there and the policy is no longer Degraded', async () => {
    await helpersOnlyOn(undefined);
    const moved = await eventually(
      'the copy on another node',
      async () => {
        const p = await policy(ns, name);
        const live = p.status?.checkpoints?.filter((c) => !c.orphaned) ?? [];
        return live.length === 1 && live[0]!.nodes!.every((n) => n !== node) ? live[0] : undefined;
      },
      120_000,
    );
    expect(moved.node).not.toBe(node);
    await eventually('Degraded AsExpected', async () => (await degraded())?.reason === 'AsExpected');
  });
});
