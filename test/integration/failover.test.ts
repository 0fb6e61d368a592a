// Failover and restore (#5) end to end with the count app at interval 1 s in http-sf mode: every fault ends
// with a Ready replacement whose counter was restored, losing at most one interval of updates.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { aheadAllowed, failoverTrial, PARTITION_MAX_LOST, stats } from '../../harness/failover.js';
import { core, createNamespace, eventually, kc } from './cluster.js';
import { placeBesideLeader } from '../../harness/leader-placement.js';
import { checkpointedPod, installOperator, leader, policy } from './operator.js';
import { FENCE_TAINT, OPERATOR_NAMESPACE } from '../../src/api/index.js';

const ns = 'it-failover';
/** One interval of count-app updates (10 per second at 1 s), plus one for the sampling of the test itself. */
const MAX_LOST = 11;

// Example manifests are edited as plain parsed YAML.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = Record<string, any>;

async function applyExample(file: string, edit: (doc: Doc) => void = () => undefined): Promise<void> {
  const docs = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Doc);
  docs.forEach(edit);
  execFileSync('kubectl', ['--kubeconfig', '.local/kubeconfig', 'apply', '-n', ns, '-f', '-'], {
    input: docs.map((d) => JSON.stringify(d)).join('\n'),
  });
}

const checkpointed = (selector: string, name: string) => checkpointedPod(ns, selector, name);

beforeAll(async () => {
  await installOperator();
  await createNamespace(ns);
  await applyExample('examples/count-app/policy.yaml');
  await checkpointed('app=count-app', 'count-app');
});

describe('failover with the count app (interval 1 s, http-sf)', () => {
  it('crash: the restarted container gets its counter back', async () => {
    const r = await failoverTrial(ns, 'app=count-app', 'crash');
    expect(r.restoredCount).not.toBeNull();
    expect(r.lostUpdates).toBeLessThanOrEqual(MAX_LOST);
    // Exactly one restore into the new process: a second one would roll back what it did since.
    await new Promise((res) => setTimeout(res, 3000));
    const pod = await core.readNamespacedPod({ name: r.podAfter, namespace: ns });
    expect((await stats(pod.status!.podIP!, 1000))?.restores).toBe(1);
    // Not more than was there: the last sample before the kill may be one tick older than the checkpoint.
    expect(r.lostUpdates).toBeGreaterThanOrEqual(-aheadAllowed(r));
    const p = await policy(ns, 'count-app');
    expect(p.status?.lastRestore).toMatchObject({ result: 'Succeeded', pod: r.podAfter });
  });

  it('kubectl delete pod: the replacement continues exactly where the old Pod stopped', async () => {
    await checkpointed('app=count-app', 'count-app');
    const r = await failoverTrial(ns, 'app=count-app', 'delete');
    expect(r.podAfter).not.toBe(r.podBefore);
    expect(r.lostUpdates).toBe(0);
  });

  it.each(['crash', 'delete'] as const)(
    '%s with the controller leader killed right after: the new leader restores the counter',
    async (fault) => {
      await checkpointed('app=count-app', 'count-app');
      const old = await eventually('a leader', () => leader());
      const r = await failoverTrial(ns, 'app=count-app', fault, {
        hook: async () => {
          await core.deleteNamespacedPod({ name: old, namespace: OPERATOR_NAMESPACE, gracePeriodSeconds: 0 });
        },
      });
      expect(r.restoredCount).not.toBeNull();
      // A dead leader takes no final checkpoint: the last periodic one, at most one interval before the
      // fault, is restored. (After a delete the app counts on until the kubelet delivers SIGTERM, which the
      // operator cannot see without a live leader.)
      expect(
        (fault === 'delete' ? r.countBeforeFault : r.countAtFault) - r.restoredCount!,
      ).toBeLessThanOrEqual(MAX_LOST);
      expect(r.lostUpdates).toBeGreaterThanOrEqual(-aheadAllowed(r));
      expect(await leader()).not.toBe(old);
      // Exactly one restore into the new process, whichever leader did it (the new one may repeat the
      // request of the old one: the helper does not push it twice).
      await new Promise((res) => setTimeout(res, 3000));
      const pod = await core.readNamespacedPod({ name: r.podAfter, namespace: ns });
      expect((await stats(pod.status!.podIP!, 1000))?.restores).toBe(1);
    },
  );

  it('node partition: the node is fenced, the replacement runs elsewhere with the counter restored', async () => {
    await checkpointed('app=count-app', 'count-app');
    const r = await failoverTrial(ns, 'app=count-app', 'partition');
    expect(r.nodeAfter).not.toBe(r.nodeBefore);
    expect(r.lostUpdates).toBeLessThanOrEqual(PARTITION_MAX_LOST);
    await eventually(
      'fence removed after heal',
      async () => {
        const n = await core.readNode({ name: r.nodeBefore });
        const ready = n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
        return ready && !(n.spec?.taints ?? []).some((t) => t.key === FENCE_TAINT);
      },
      90_000,
    );
  });

  it("partition of the controller leader's own node: a standby takes over, fences it and restores the counter elsewhere", async () => {
    await checkpointed('app=count-app', 'count-app');
    const node = await placeBesideLeader(kc, ns, 'count-app', 'app=count-app');
    await checkpointed('app=count-app', 'count-app');
    const old = await eventually('a leader', () => leader());
    const r = await failoverTrial(ns, 'app=count-app', 'partition');
    expect(r.nodeBefore).toBe(node);
    expect(r.nodeAfter).not.toBe(node);
    expect(r.lostUpdates).toBeLessThanOrEqual(PARTITION_MAX_LOST);
    expect(r.lostUpdates).toBeGreaterThanOrEqual(-aheadAllowed(r));
    const now = await leader();
    expect(now).toBeDefined();
    expect(now).not.toBe(old);
    await new Promise((res) => setTimeout(res, 3000));
    const pod = await core.readNamespacedPod({ name: r.podAfter, namespace: ns });
    expect((await stats(pod.status!.podIP!, 1000))?.restores).toBe(1);
    await eventually(
      'fence removed after heal',
      async () => {
        const n = await core.readNode({ name: node });
        const ready = n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
        return ready && !(n.spec?.taints ?? []).some((t) => t.key === FENCE_TAINT);
      },
      90_000,
    );
  });

  it('a Pod without the readiness gate is restored too', async () => {
    await applyExample('examples/count-app/policy.yaml', (d) => {
      d.metadata.name = 'nogate';
      if (d.kind === 'Deployment') {
        d.metadata.labels = { app: 'nogate' };
        d.spec.selector.matchLabels = { app: 'nogate' };
        d.spec.template.metadata.labels = { app: 'nogate' };
        delete d.spec.template.spec.readinessGates;
      } else d.spec.selector.matchLabels = { app: 'nogate' };
    });
    await checkpointed('app=nogate', 'nogate');
    const r = await failoverTrial(ns, 'app=nogate', 'delete');
    expect(r.podAfter).not.toBe(r.podBefore);
    expect(r.lostUpdates).toBeLessThanOrEqual(MAX_LOST);
  });
});
