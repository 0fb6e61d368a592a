// The local cluster's real nodes behave as a user's nodes do: real sandboxes and restarts, Services and the
// in-cluster API, the kubelet's own pull errors, and faults that act on the real processes and links.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1Deployment,
  type V1PodSpec,
} from '@kubernetes/client-node';
import { appDeployment } from '../../harness/deployment.js';
import { EXEC_IMAGE, createFixtures, fixturePod } from '../../harness/fixture-app.js';
import { leftovers, podLogs, readState } from '../../tools/localcluster/src/cluster.js';
import { inNode, nodePids } from '../../tools/localcluster/src/node.js';
import { nodesDir } from '../../tools/localcluster/src/paths.js';
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

const ns = 'it-localcluster';

/** The probe app (test/fixtures/probe-app.mjs): answers with its Pod name, calls the API and other URLs. */
function probeDeployment(name: string, replicas: number, pod: Partial<V1PodSpec> = {}): V1Deployment {
  return appDeployment(
    name,
    ns,
    replicas,
    fixturePod(
      'probe-app.mjs',
      {
        env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
        readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 },
      },
      { terminationGracePeriodSeconds: 5, ...pod },
    ),
  );
}

async function probe(ip: string, path: string): Promise<{ status: number; body: string }> {
  const res = await httpGet(`http://${ip}:8080${path}`, 8000);
  return JSON.parse(res.body) as { status: number; body: string };
}

const nodeReady = async (name: string) =>
  (await core.readNode({ name })).status?.conditions?.find((c) => c.type === 'Ready')?.status;

beforeAll(async () => {
  await createNamespace(ns);
  await createFixtures(core, ns);
});

describe('local cluster', () => {
  it('registers a tainted control-plane node and Ready workers running containerd', async () => {
    const nodes = await core.listNode();
    const byName = new Map(nodes.items.map((n) => [n.metadata!.name!, n]));
    expect([...byName.keys()].sort()).toEqual(['control-plane', 'worker-1', 'worker-2', 'worker-3']);
    for (const n of nodes.items) {
      expect(n.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
      expect(n.status?.nodeInfo?.kubeletVersion).toMatch(/^v1\.\d+\.\d+$/);
      expect(n.status?.nodeInfo?.containerRuntimeVersion).toMatch(/^containerd:\/\/2\./);
    }
    const cp = byName.get('control-plane')!;
    expect(cp.metadata?.labels).toHaveProperty(['node-role.kubernetes.io/control-plane']);
    expect(cp.spec?.taints).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }),
      ]),
    );
  });

  it('refuses a fault against an unknown node or Pod, or a node in the wrong state, saying what is allowed', async () => {
    const stderr = (p: Promise<unknown>) =>
      p.then(
        () => 'exit 0',
        (e: { code?: number; stderr?: string }) => `exit ${e.code}: ${e.stderr ?? ''}`,
      );
    expect(await stderr(cluster('fault', 'partition', 'worker-9'))).toMatch(
      /^exit 2: [\s\S]*unknown node "worker-9"; nodes: control-plane, worker-1, worker-2, worker-3/,
    );
    expect(await stderr(cluster('fault', 'crash', `${ns}/nope`))).toMatch(
      /^exit 2: [\s\S]*pod it-localcluster\/nope not found/,
    );
    expect(await stderr(cluster('fault', 'start', 'worker-1'))).toMatch(
      /^exit 2: [\s\S]*node worker-1 is Running; only a stopped node can be started/,
    );
  });

  it('runs 2 replicas on one port, each answering on its own Pod IP', async () => {
    await apps.createNamespacedDeployment({ namespace: ns, body: probeDeployment('echo', 2) });
    const pods = await eventually('2 ready echo Pods', async () => {
      const ready = await readyPods(ns, 'app=echo');
      return ready.length === 2 ? ready : undefined;
    });
    await eventually('Deployment Available', async () => {
      const d = await apps.readNamespacedDeployment({ name: 'echo', namespace: ns });
      return d.status?.conditions?.some((c) => c.type === 'Available' && c.status === 'True');
    });
    expect(new Set(pods.map((p) => p.status!.podIP)).size).toBe(2);
    for (const pod of pods) expect((await probe(pod.status!.podIP!, '/')).body).toBe(pod.metadata!.name);
  });

  it('reaches the API server through the kubernetes Service with the Pod token, which RBAC limits', async () => {
    const [pod] = await readyPods(ns, 'app=echo');
    const version = await eventually('GET /version from inside a Pod', async () => {
      const r = await probe(pod!.status!.podIP!, '/api?path=/version');
      return r.status === 200 ? r : undefined;
    });
    expect(JSON.parse(version.body).gitVersion).toMatch(/^v1\.36\./);
    const pods = await probe(pod!.status!.podIP!, `/api?path=/api/v1/namespaces/${ns}/pods`);
    expect(pods.status).toBe(403);
    expect(pods.body).toContain(`system:serviceaccount:${ns}:default`);
  });

  it('routes a ClusterIP Service to its Pods from Pods on every node', async () => {
    await core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: 'echo', namespace: ns },
        spec: { selector: { app: 'echo' }, ports: [{ port: 80, targetPort: 8080 }] },
      },
    });
    await apps.createNamespacedDaemonSet({
      namespace: ns,
      body: {
        metadata: { name: 'client', namespace: ns },
        spec: {
          selector: { matchLabels: { app: 'client' } },
          template: {
            metadata: { labels: { app: 'client' } },
            spec: fixturePod(
              'probe-app.mjs',
              { readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 } },
              { tolerations: [{ operator: 'Exists' }] },
            ),
          },
        },
      },
    });
    const clients = await eventually('a client Pod on each node', async () => {
      const ready = await readyPods(ns, 'app=client');
      return ready.length === 4 ? ready : undefined;
    });
    expect(clients.map((p) => p.spec!.nodeName).sort()).toEqual([
      'control-plane',
      'worker-1',
      'worker-2',
      'worker-3',
    ]);
    const echoNames = (await readyPods(ns, 'app=echo')).map((p) => p.metadata!.name);
    for (const client of clients) {
      const r = await eventually(`Service answers from ${client.spec!.nodeName}`, async () => {
        const a = await probe(
          client.status!.podIP!,
          `/fetch?url=${encodeURIComponent(`http://echo.${ns}.svc`)}`,
        );
        // No cluster DNS runs here: fall back to the Service IP.
        if (a.status === 200) return a;
        const svc = await core.readNamespacedService({ name: 'echo', namespace: ns });
        const b = await probe(
          client.status!.podIP!,
          `/fetch?url=${encodeURIComponent(`http://${svc.spec!.clusterIP}/`)}`,
        );
        return b.status === 200 ? b : undefined;
      });
      expect(echoNames).toContain(JSON.parse(r.body).body);
    }
  });

  it('restarts a crashed container with restartCount 1 and keeps the logs of both runs', async () => {
    const [pod] = await readyPods(ns, 'app=echo');
    const name = pod!.metadata!.name!;
    await cluster('fault', 'crash', `${ns}/${name}`);
    const after = await eventually('restarted and ready', async () => {
      const p = await core.readNamespacedPod({ name, namespace: ns });
      return p.status?.containerStatuses?.[0]?.restartCount === 1 && isReady(p) ? p : undefined;
    });
    expect(after.status?.containerStatuses?.[0]?.lastState?.terminated?.exitCode).toBe(137);
    expect((await probe(after.status!.podIP!, '/')).body).toBe(name);
    const logs = await cluster('logs', `${ns}/${name}`);
    expect(logs.match(/starting pid \d+/g)?.length).toBe(2);
  });

  it('reports an unknown image with the kubelet pull error, and never leaves the machine for it', async () => {
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
      return w?.reason === 'ErrImagePull' || w?.reason === 'ImagePullBackOff' ? w : undefined;
    });
    expect(waiting.message).toMatch(/nope\/nothing:1/);
    const events = await core.listNamespacedEvent({
      namespace: ns,
      fieldSelector: 'involvedObject.name=bad-image',
    });
    expect(events.items.map((e) => e.message).join('\n')).toMatch(
      /127\.0\.0\.1:1: connect: connection refused/,
    );
  });

  it('keeps a Pod with a readiness gate not Ready until the gate condition is True', async () => {
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'gated', namespace: ns },
        spec: {
          readinessGates: [{ conditionType: 'example.com/gate' }],
          terminationGracePeriodSeconds: 30,
          containers: [{ name: 'c', image: EXEC_IMAGE, command: ['sleep', '3600'] }],
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

  it('deletes gracefully: the app gets SIGTERM, then the API object is removed', async () => {
    const [pod] = await readyPods(ns, 'app=echo');
    const name = pod!.metadata!.name!;
    await core.deleteNamespacedPod({ name, namespace: ns });
    // The kubelet removes a Pod's logs with the Pod: read them while it terminates.
    await eventually('the app logged SIGTERM', async () =>
      /got SIGTERM/.test(
        (() => {
          try {
            return podLogs(`${ns}/${name}`);
          } catch {
            return '';
          }
        })(),
      ),
    );
    await eventually('echo Pod removed', async () =>
      core.readNamespacedPod({ name, namespace: ns }).then(
        () => false,
        () => true,
      ),
    );
  });

  it('partitions a node: NotReady in the API while its Pod keeps running and answering inside the node', async () => {
    const tolerations = ['node.kubernetes.io/unreachable', 'node.kubernetes.io/not-ready'].map((key) => ({
      key,
      operator: 'Exists',
      effect: 'NoExecute',
      tolerationSeconds: 2,
    }));
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: probeDeployment('part', 1, { tolerations }),
    });
    const [pod] = await eventually('part Pod ready', async () => {
      const ready = await readyPods(ns, 'app=part');
      return ready.length === 1 ? ready : undefined;
    });
    const node = pod!.spec!.nodeName!;
    const ip = pod!.status!.podIP!;
    const insideNode = () =>
      inNode(
        node,
        ['node', '-e', `fetch('http://${ip}:8080/').then(r=>r.text()).then(t=>console.log(t))`],
        5000,
      );
    await cluster('fault', 'partition', node);
    try {
      await expect(httpGet(`http://${ip}:8080/`, 1000)).rejects.toThrow();
      await eventually(`${node} NotReady`, async () => (await nodeReady(node)) !== 'True');
      // The kubelet of a partitioned node keeps its Pods running; they answer inside the node.
      expect(JSON.parse(await insideNode()).body).toBe(pod!.metadata!.name);
      const replacement = await eventually('replacement Ready on another node', async () => {
        const ready = await readyPods(ns, 'app=part');
        return ready.find((p) => p.spec?.nodeName !== node);
      });
      expect((await probe(replacement.status!.podIP!, '/')).body).toBe(replacement.metadata!.name);
      expect(JSON.parse(await insideNode()).body).toBe(pod!.metadata!.name);
    } finally {
      await cluster('fault', 'heal', node);
    }
    await eventually(`${node} Ready again`, async () => (await nodeReady(node)) === 'True');
  });

  it('stops a node as a power loss would (every process gone) and boots it again', async () => {
    const state = readState()!;
    const spec = state.nodes.find((n) => n.name === 'worker-3')!;
    expect(nodePids(spec).length).toBeGreaterThan(3);
    await cluster('fault', 'stop', 'worker-3');
    expect(nodePids(spec)).toEqual([]);
    expect(await cluster('status')).toMatch(/worker-3\s+\S+\s+Stopped/);
    await eventually('worker-3 NotReady', async () => (await nodeReady('worker-3')) !== 'True');
    await cluster('fault', 'start', 'worker-3');
    // A boot cleans up the sandboxes of every Pod that died with the node; on a busy machine that took more
    // than 90 s once. If it takes longer still, the kubelet's own words say why.
    await eventually(
      'worker-3 Ready again',
      async () => (await nodeReady('worker-3')) === 'True',
      180_000,
    ).catch((err: unknown) => {
      const log = readFileSync(join(nodesDir, 'worker-3', 'logs', 'kubelet.log'), 'utf8');
      throw new Error(
        `${String(err)}\nkubelet log (last 40 lines):\n${log.split('\n').slice(-40).join('\n')}`,
      );
    });
    await eventually('the client DaemonSet Pod runs on worker-3 again', async () =>
      (await readyPods(ns, 'app=client')).some((p) => p.spec?.nodeName === 'worker-3'),
    );
  });

  it('leaves nothing behind after down, and comes up again', async () => {
    await core.deleteNamespace({ name: ns });
    await cluster('down');
    expect(await leftovers()).toEqual([]);
    await cluster('up');
    // A new cluster has a new CA and token: a new client.
    const fresh = kubeConfig().makeApiClient(CoreV1Api);
    await eventually('4 nodes Ready', async () => {
      const nodes = await fresh.listNode();
      return (
        nodes.items.filter((n) =>
          n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        ).length === 4
      );
    });
  });
});
