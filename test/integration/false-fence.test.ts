// A healthy node is never fenced (#27). Protected apps run in http-sf mode behind the example NetworkPolicy
// (their state port admits the helpers alone, so the leader's own probes of them go unanswered), the helpers
// are restarted with `kubectl rollout restart` (each node's helper is silent for seconds), and then the
// leader is deleted. Throughout, a watch of the Nodes and of the app Pods records any fence taint and any
// Pod deleted; afterwards no app was restored and checkpoints resume.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Watch, type V1Node, type V1Pod } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { FENCE_TAINT, OPERATOR_NAMESPACE } from '../../src/api/index.js';
import { stats } from '../../harness/failover.js';
import { core, createNamespace, eventually, kc, readyPods } from './cluster.js';
import { helperRolloutDone, installOperator, kubectl, leader, policy } from './operator.js';

const ns = 'it-false-fence';
const APP = 'count-app';

// Example manifests are edited as plain parsed YAML.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = Record<string, any>;

function applyExample(file: string, edit: (doc: Doc) => void = () => undefined): void {
  const docs = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Doc);
  docs.forEach(edit);
  execFileSync('kubectl', ['--kubeconfig', '.local/kubeconfig', 'apply', '-n', ns, '-f', '-'], {
    input: docs.map((d) => JSON.stringify(d)).join('\n'),
  });
}

const fences: string[] = [];
const deletedPods: string[] = [];
const watches: AbortController[] = [];

async function watchFor<T>(path: string, onEvent: (type: string, obj: T) => void): Promise<void> {
  const w = await new Watch(kc).watch(path, {}, onEvent, () => undefined);
  watches.push(w);
}

/** Sequences of every app Pod's newest checkpoint. */
async function sequences(): Promise<Map<string, number>> {
  const p = await policy(ns, APP);
  return new Map((p.status?.checkpoints ?? []).filter((c) => !c.orphaned).map((c) => [c.podUID, c.sequence]));
}

beforeAll(async () => {
  await installOperator();
  await createNamespace(ns);
  applyExample('examples/count-app/policy.yaml', (d) => {
    if (d.kind === 'Deployment') d.spec.replicas = 3;
  });
  applyExample('examples/count-app/networkpolicy.yaml');
  await eventually('3 app Pods Ready', async () => (await readyPods(ns, `app=${APP}`)).length === 3, 120_000);
  await eventually('a checkpoint of every app Pod', async () => (await sequences()).size === 3);
  await watchFor<V1Node>('/api/v1/nodes', (_type, node) => {
    if ((node.spec?.taints ?? []).some((t) => t.key === FENCE_TAINT)) fences.push(node.metadata!.name!);
  });
  await watchFor<V1Pod>(`/api/v1/namespaces/${ns}/pods`, (type, pod) => {
    if (type === 'DELETED' || pod.metadata?.deletionTimestamp) deletedPods.push(pod.metadata!.name!);
  });
});

afterAll(() => {
  for (const w of watches) w.abort();
});

/** The operator's Restored Events in the namespace: what each names, and how often. */
async function restoredEvents(): Promise<string[]> {
  const events = await core.listNamespacedEvent({ namespace: ns, fieldSelector: 'reason=Restored' });
  return events.items.map((e) => `${e.involvedObject.name} x${e.count ?? 1}`).sort();
}

describe('no false fence', () => {
  it('the state port really is closed to the leader: the NetworkPolicy is enforced', async () => {
    const [pod] = await readyPods(ns, `app=${APP}`);
    // The test runs on the host, like any client outside the policy: its GET must go unanswered.
    expect(await stats(pod!.status!.podIP!, 1500)).toBeUndefined();
  });

  it('helpers restarted and the leader deleted: no taint, no Pod deleted, nothing restored, checkpoints resume', async () => {
    const pods = await readyPods(ns, `app=${APP}`);
    const before = await sequences();
    // Restores into the fresh Pods at their start (copies a policy of this name left, e.g. a run before on the
    // same cluster) are no false restore: only what happens from the rollout on counts.
    const restoredBefore = await restoredEvents();
    await kubectl('rollout', 'restart', '-n', OPERATOR_NAMESPACE, 'daemonset/pull-state-helper');
    await helperRolloutDone('240s');
    const old = await leader();
    expect(old).toBeDefined();
    await core.deleteNamespacedPod({ name: old!, namespace: OPERATOR_NAMESPACE });
    await eventually(
      'a new leader',
      async () => {
        const now = await leader();
        return now && now !== old ? now : undefined;
      },
      120_000,
    );
    await eventually(
      'checkpoints of every app Pod resume',
      async () => {
        const now = await sequences();
        return pods.every((p) => (now.get(p.metadata!.uid!) ?? 0) > (before.get(p.metadata!.uid!) ?? 0) + 2);
      },
      120_000,
    );
    expect(fences).toEqual([]);
    expect(deletedPods).toEqual([]);
    const after = await readyPods(ns, `app=${APP}`);
    expect(after.map((p) => p.metadata!.uid).sort()).toEqual(pods.map((p) => p.metadata!.uid).sort());
    // Nothing was restored into the live apps: the operator's Restored Events name none of them.
    expect(await restoredEvents()).toEqual(restoredBefore);
  });
});
