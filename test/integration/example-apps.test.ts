// The example apps in Go and Python (#29), each applied as a user would (examples/<app>/app.yaml: Deployment
// with the readiness gate, PullStatePolicy, NetworkPolicy) and run from the image the local cluster assembles
// for it: a crash and a Pod deletion each end with a Ready Pod whose counter was restored.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { aheadAllowed, failoverTrial, stats } from '../../harness/failover.js';
import { GO_APP_IMAGE, PYTHON_APP_IMAGE } from '../../harness/images.js';
import { BRIDGE_IP } from '../../tools/localcluster/src/addressing.js';
import { core, createNamespace } from './cluster.js';
import { checkpointedPod, installOperator, policy } from './operator.js';

/** One interval of updates (10 per second at 1 s), plus one for the test's own sampling. */
const MAX_LOST = 11;

const apps = [
  { name: 'go-app', ns: 'it-example-go', image: GO_APP_IMAGE },
  { name: 'python-app', ns: 'it-example-python', image: PYTHON_APP_IMAGE },
] as const;

function kubectlApply(ns: string, docs: object[]): void {
  execFileSync('kubectl', ['--kubeconfig', '.local/kubeconfig', 'apply', '-n', ns, '-f', '-'], {
    input: docs.map((d) => JSON.stringify(d)).join('\n'),
  });
}

const checkpointed = (ns: string, name: string) => checkpointedPod(ns, `app=${name}`, name, 120_000);

beforeAll(async () => {
  await installOperator();
  for (const a of apps) {
    await createNamespace(a.ns);
    const docs = parseAllDocuments(readFileSync(`examples/${a.name}/app.yaml`, 'utf8')).map(
      (d) => d.toJS() as { kind: string; spec: { template?: { spec: { containers: { image: string }[] } } } },
    );
    // The example as published, with the image of this checkout's version.
    expect(docs.find((d) => d.kind === 'Deployment')!.spec.template!.spec.containers[0]!.image).toBe(a.image);
    // The tests read the app's counters from the host: beside the example's own NetworkPolicy (they add up).
    const hostAccess = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'it-host-access' },
      spec: {
        podSelector: {},
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ ipBlock: { cidr: `${BRIDGE_IP}/32` } }] }],
      },
    };
    kubectlApply(a.ns, [...docs, hostAccess]);
  }
  for (const a of apps) await checkpointed(a.ns, a.name);
}, 400_000);

afterAll(async () => {
  for (const a of apps) await core.deleteNamespace({ name: a.ns }).catch(() => undefined);
});

describe.each(apps)('the $name example', ({ name, ns }) => {
  it('crash: the restarted container gets its counter back, once', async () => {
    await checkpointed(ns, name);
    const r = await failoverTrial(ns, `app=${name}`, 'crash');
    expect(r.restoredCount).not.toBeNull();
    expect(r.lostUpdates).toBeLessThanOrEqual(MAX_LOST);
    expect(r.lostUpdates).toBeGreaterThanOrEqual(-aheadAllowed(r));
    await new Promise((res) => setTimeout(res, 3000));
    const pod = await core.readNamespacedPod({ name: r.podAfter, namespace: ns });
    expect((await stats(pod.status!.podIP!, 1000))?.restores).toBe(1);
    expect((await policy(ns, name)).status?.lastRestore).toMatchObject({
      result: 'Succeeded',
      pod: r.podAfter,
    });
  });

  it('kubectl delete pod: the replacement continues where the old Pod stopped', async () => {
    await checkpointed(ns, name);
    const r = await failoverTrial(ns, `app=${name}`, 'delete');
    expect(r.podAfter).not.toBe(r.podBefore);
    // The app stops counting at SIGTERM and keeps serving GET: the final pull has its last value.
    expect(r.lostUpdates).toBe(0);
  });
});
