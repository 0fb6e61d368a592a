import {
  ApiException,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1Deployment,
  type V1PodSpec,
} from '@kubernetes/client-node';
import {
  apps,
  cluster,
  core,
  createNamespace,
  eventually,
  httpGet,
  isReady,
  kubeConfig,
  readyPods,
} from './cluster.js';
import { readdirSync, existsSync } from 'node:fs';
import { appDeployment } from '../support/deployment.js';
import { join } from 'node:path';

const ns = 'it-localcluster';

/** A tiny HTTP app that answers with its Pod name, run through the verbatim-exec image. */
function echoDeployment(name: string, replicas: number, extra: Partial<V1PodSpec> = {}): V1Deployment {
  return appDeployment(name, ns, replicas, {
    terminationGracePeriodSeconds: 2,
    containers: [
      {
        name: 'echo',
        image: 'localcluster/exec',
        command: [
          'node',
          '-e',
          "require('http').createServer((q,r)=>r.end(process.env.POD_NAME)).listen(8080)",
        ],
        env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
        readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 },
      },
    ],
    ...extra,
  });
}

beforeAll(async () => {
  await createNamespace(ns);
});

describe('local cluster', () => {
  it('registers a tainted control-plane node and Ready workers', async () => {
    const nodes = await core.listNode();
    const byName = new Map(nodes.items.map((n) => [n.metadata!.name!, n]));
    expect([...byName.keys()].sort()).toEqual(['control-plane', 'worker-1', 'worker-2', 'worker-3']);
    for (const n of nodes.items) {
      expect(n.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
      expect(n.status?.nodeInfo?.kubeletVersion).toMatch(/^v1\.\d+\.\d+$/);
    }
    const cp = byName.get('control-plane')!;
    expect(cp.metadata?.labels).toHaveProperty(['node-role.kubernetes.io/control-plane']);
    expect(cp.spec?.taints).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }),
      ]),
    );
  });

  it('runs 2 replicas on one port, each answering on its own Pod IP', async () => {
    await apps.createNamespacedDeployment({ namespace: ns, body: echoDeployment('echo', 2) });
    const pods = await eventually('2 ready echo Pods', async () => {
      const ready = await readyPods(ns, 'app=echo');
      return ready.length === 2 ? ready : undefined;
    });
    await eventually('Deployment Available', async () => {
      const d = await apps.readNamespacedDeployment({ name: 'echo', namespace: ns });
      return d.status?.conditions?.some((c) => c.type === 'Available' && c.status === 'True');
    });
    const ips = pods.map((p) => p.status!.podIP!);
    expect(new Set(ips).size).toBe(2);
    for (const pod of pods) {
      const res = await httpGet(`http://${pod.status!.podIP}:8080/`);
      expect(res.body).toBe(pod.metadata!.name);
    }
  });

  it('restarts a crashed container with restartCount 1 and keeps its logs', async () => {
    const [pod] = await readyPods(ns, 'app=echo');
    const name = pod!.metadata!.name!;
    await cluster('fault', 'crash', `${ns}/${name}`);
    const after = await eventually('restarted and ready', async () => {
      const p = await core.readNamespacedPod({ name, namespace: ns });
      return p.status?.containerStatuses?.[0]?.restartCount === 1 && isReady(p) ? p : undefined;
    });
    expect(after.status?.containerStatuses?.[0]?.lastState?.terminated?.exitCode).toBe(137);
    expect((await httpGet(`http://${after.status!.podIP}:8080/`)).body).toBe(name);
    expect(await cluster('logs', `${ns}/${name}`)).toMatch(
      /exited code=null signal=SIGKILL[\s\S]*starting node/,
    );
  });

  it('runs a DaemonSet Pod on every node', async () => {
    await apps.createNamespacedDaemonSet({
      namespace: ns,
      body: {
        metadata: { name: 'ds', namespace: ns },
        spec: {
          selector: { matchLabels: { app: 'ds' } },
          template: {
            metadata: { labels: { app: 'ds' } },
            spec: {
              tolerations: [{ operator: 'Exists' }],
              containers: [{ name: 's', image: 'localcluster/exec', command: ['sleep', '3600'] }],
            },
          },
        },
      },
    });
    const nodes = await eventually('a ds Pod on each node', async () => {
      const ready = await readyPods(ns, 'app=ds');
      return ready.length === 4 ? ready.map((p) => p.spec!.nodeName!).sort() : undefined;
    });
    expect(nodes).toEqual(['control-plane', 'worker-1', 'worker-2', 'worker-3']);
  });

  it('gives a Pod a ServiceAccount token that is refused what its RBAC does not allow', async () => {
    const [pod] = await readyPods(ns, 'app=ds');
    const dir = join('.local/cluster/nodes', pod!.spec!.nodeName!, 'pods', `${ns}_${pod!.metadata!.name}`);
    expect(existsSync(join(dir, 'kubeconfig'))).toBe(true);
    const podCore = kubeConfig(join(dir, 'kubeconfig')).makeApiClient(CoreV1Api);
    const err = await podCore.listNamespacedPod({ namespace: ns }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiException);
    expect((err as ApiException<unknown>).code).toBe(403);
    expect(String((err as ApiException<unknown>).body)).toContain(`system:serviceaccount:${ns}:default`);
  });

  it('reports an unknown image as ErrImagePull instead of crashing', async () => {
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'bad-image', namespace: ns },
        spec: { containers: [{ name: 'c', image: 'nope/nothing:1' }] },
      },
    });
    const waiting = await eventually('ErrImagePull', async () => {
      const p = await core.readNamespacedPod({ name: 'bad-image', namespace: ns });
      const w = p.status?.containerStatuses?.[0]?.state?.waiting;
      return w?.reason === 'ErrImagePull' ? w : undefined;
    });
    expect(waiting.message).toMatch(/not known to the local cluster; known images: localcluster\/exec/);
  });

  it('keeps a Pod with a readiness gate not Ready until the gate condition is True', async () => {
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'gated', namespace: ns },
        spec: {
          readinessGates: [{ conditionType: 'example.com/gate' }],
          containers: [{ name: 'c', image: 'localcluster/exec', command: ['sleep', '3600'] }],
        },
      },
    });
    await eventually('ContainersReady', async () => {
      const p = await core.readNamespacedPod({ name: 'gated', namespace: ns });
      return p.status?.conditions?.some((c) => c.type === 'ContainersReady' && c.status === 'True');
    });
    expect(isReady(await core.readNamespacedPod({ name: 'gated', namespace: ns }))).toBe(false);
    await core.patchNamespacedPodStatus(
      {
        name: 'gated',
        namespace: ns,
        body: {
          status: {
            conditions: [{ type: 'example.com/gate', status: 'True', lastTransitionTime: new Date() }],
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
    await eventually('Ready after the gate', async () =>
      isReady(await core.readNamespacedPod({ name: 'gated', namespace: ns })),
    );
  });

  it('deletes gracefully: SIGTERM, then the API object is removed', async () => {
    await core.deleteNamespacedPod({ name: 'gated', namespace: ns });
    await eventually(
      'gated Pod removed',
      async () =>
        core.readNamespacedPod({ name: 'gated', namespace: ns }).then(
          () => false,
          () => true,
        ),
      45_000,
    );
    const podDirs = readdirSync('.local/cluster/nodes').flatMap((n) =>
      existsSync(join('.local/cluster/nodes', n, 'pods', `${ns}_gated`)) ? [n] : [],
    );
    expect(podDirs.length).toBe(1);
  });

  it('partitions a node: it goes NotReady and its Pods are replaced on other nodes', async () => {
    const tolerations = ['node.kubernetes.io/unreachable', 'node.kubernetes.io/not-ready'].map((key) => ({
      key,
      operator: 'Exists',
      effect: 'NoExecute',
      tolerationSeconds: 2,
    }));
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: echoDeployment('part', 1, { tolerations }),
    });
    const [pod] = await eventually('part Pod ready', async () => {
      const ready = await readyPods(ns, 'app=part');
      return ready.length === 1 ? ready : undefined;
    });
    const node = pod!.spec!.nodeName!;
    await cluster('fault', 'partition', node);
    try {
      await expect(httpGet(`http://${pod!.status!.podIP}:8080/`, 1000)).rejects.toThrow();
      await eventually(`${node} NotReady`, async () => {
        const n = await core.readNode({ name: node });
        return n.status?.conditions?.find((c) => c.type === 'Ready')?.status !== 'True';
      });
      const replacement = await eventually('replacement Ready on another node', async () => {
        const ready = await readyPods(ns, 'app=part');
        return ready.find((p) => p.spec?.nodeName !== node);
      });
      expect((await httpGet(`http://${replacement.status!.podIP}:8080/`)).body).toBe(
        replacement.metadata!.name,
      );
    } finally {
      await cluster('fault', 'heal', node);
    }
    await eventually(`${node} Ready again`, async () => {
      const n = await core.readNode({ name: node });
      return n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    });
  });
});
