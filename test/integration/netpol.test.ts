// NetworkPolicies are enforced on the local cluster's nodes (kube-network-policies), and the API server
// reaches the kubelets, so the real kubectl's logs, exec, port-forward and `run -i` work as on any cluster.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { NetworkingV1Api, type V1Pod } from '@kubernetes/client-node';
import { createFixtures, fixturePod, EXEC_IMAGE } from '../../harness/fixture-app.js';
import { readState } from '../../tools/localcluster/src/cluster.js';
import { NETPOL_TABLE, inNode } from '../../tools/localcluster/src/node.js';
import { kubeconfigPath } from '../../tools/localcluster/src/paths.js';
import { core, createNamespace, eventually, httpGet, isReady, kc } from './cluster.js';

const run = promisify(execFile);
const networking = kc.makeApiClient(NetworkingV1Api);

const ns = 'it-netpol';
const openNs = 'it-netpol-open';

/** The probe app (test/fixtures/probe-app.mjs) pinned to a node, Ready through an HTTP probe every second. */
function probePod(namespace: string, name: string, node: string, labels: Record<string, string>): V1Pod {
  return {
    metadata: { name, namespace, labels },
    spec: fixturePod(
      'probe-app.mjs',
      {
        env: [{ name: 'POD_NAME', value: name }],
        readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1, failureThreshold: 1 },
      },
      { nodeSelector: { 'kubernetes.io/hostname': node } },
    ),
  };
}

/** What `from` gets for GET http://<to>:8080/ from its own network: {status: 0} when nothing answers. */
async function fetchFrom(from: V1Pod, to: V1Pod): Promise<{ status: number; body: string }> {
  const url = encodeURIComponent(`http://${to.status!.podIP}:8080/`);
  const res = await httpGet(`http://${from.status!.podIP}:8080/fetch?url=${url}`, 8000);
  const answer = JSON.parse(res.body) as { status: number; body: string };
  return { status: answer.status, body: answer.status === 200 ? podName(answer.body) : '' };
}

/** The probe app's own answer at `/` is {status: 200, body: <Pod name>}. */
const podName = (body: string): string => (JSON.parse(body) as { body: string }).body;

async function readyPod(namespace: string, name: string): Promise<V1Pod> {
  return eventually(`${namespace}/${name} Ready`, async () => {
    const p = await core.readNamespacedPod({ name, namespace });
    return isReady(p) ? p : undefined;
  });
}

const kubectl = (...args: string[]) =>
  run('kubectl', ['--kubeconfig', kubeconfigPath, ...args], { timeout: 60_000 });

// Same node as the server (bridged on the node's cni0) and another node (routed over the host bridge).
const SERVER_NODE = 'worker-1';
const OTHER_NODE = 'worker-2';
let server: V1Pod;
let openServer: V1Pod;
const clients: V1Pod[] = [];
const strangers: V1Pod[] = [];

beforeAll(async () => {
  await Promise.all([createNamespace(ns), createNamespace(openNs)]);
  await Promise.all([createFixtures(core, ns), createFixtures(core, openNs)]);
  const pods = [
    probePod(ns, 'server', SERVER_NODE, { app: 'server' }),
    probePod(openNs, 'server', SERVER_NODE, { app: 'server' }),
    ...[SERVER_NODE, OTHER_NODE].flatMap((node) => [
      probePod(ns, `client-${node}`, node, { role: 'client' }),
      probePod(ns, `stranger-${node}`, node, {}),
    ]),
  ];
  await Promise.all(
    pods.map((body) => core.createNamespacedPod({ namespace: body.metadata!.namespace!, body })),
  );
  const ready = await Promise.all(pods.map((p) => readyPod(p.metadata!.namespace!, p.metadata!.name!)));
  [server, openServer] = ready as [V1Pod, V1Pod];
  for (const p of ready.slice(2)) (p.metadata!.labels?.role === 'client' ? clients : strangers).push(p);
});

describe('NetworkPolicy enforcement', () => {
  it('runs kube-network-policies on every node, its nftables rules in the node network namespace', async () => {
    const state = readState()!;
    expect(state.nodeOptions.networkPolicies).toBe(true);
    for (const n of state.nodes) {
      const table = await inNode(n.name, ['nft', 'list', 'table', 'inet', NETPOL_TABLE]);
      expect(table).toContain('queue num 98');
      expect(table).toContain('meta skuid 0 accept');
    }
  });

  it('admits only role=client Pods to a selected Pod, from its own node and others; the kubelet probes still pass', async () => {
    // Without a policy every Pod answers every Pod: what follows is the policy, not a broken network.
    for (const from of [...clients, ...strangers])
      expect((await fetchFrom(from, server)).body).toBe('server');

    const created = new Date();
    await networking.createNamespacedNetworkPolicy({
      namespace: ns,
      body: {
        metadata: { name: 'server-from-clients', namespace: ns },
        spec: {
          podSelector: { matchLabels: { app: 'server' } },
          policyTypes: ['Ingress'],
          ingress: [
            { _from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ port: 8080 }] },
          ],
        },
      },
    });
    for (const from of strangers)
      await eventually(
        `${from.metadata!.name} refused`,
        async () => (await fetchFrom(from, server)).status === 0,
      );
    for (const from of clients)
      expect(await fetchFrom(from, server)).toEqual({ status: 200, body: 'server' });
    for (const from of strangers) expect((await fetchFrom(from, server)).status).toBe(0);

    // A namespace without policies is untouched, from the same Pods.
    for (const from of [...clients, ...strangers])
      expect((await fetchFrom(from, openServer)).body).toBe('server');

    // The kubelet probes every second with failureThreshold 1: Ready never dropped since the policy.
    const now = await core.readNamespacedPod({ name: 'server', namespace: ns });
    const readyCondition = now.status!.conditions!.find((c) => c.type === 'Ready')!;
    expect(readyCondition.status).toBe('True');
    expect(new Date(readyCondition.lastTransitionTime!).getTime()).toBeLessThan(created.getTime());
    expect(now.status!.containerStatuses![0]!.restartCount).toBe(0);
  });

  it('refuses the host (not a Pod, not the node) at a selected Pod, and serves it elsewhere', async () => {
    // The host reaches Pods over psop0 and the node's uplink: to kube-network-policies that is a forwarded
    // packet from 10.244.0.1, no Pod's IP, so a policy admits it only through an ipBlock.
    await expect(httpGet(`http://${server.status!.podIP}:8080/`, 2000)).rejects.toThrow();
    expect(podName((await httpGet(`http://${openServer.status!.podIP}:8080/`)).body)).toBe('server');
  });

  it('lets everyone in again once the policy is gone', async () => {
    await networking.deleteNamespacedNetworkPolicy({ name: 'server-from-clients', namespace: ns });
    for (const from of strangers)
      await eventually(
        `${from.metadata!.name} admitted`,
        async () => (await fetchFrom(from, server)).status === 200,
      );
    expect(podName((await httpGet(`http://${server.status!.podIP}:8080/`)).body)).toBe('server');
  });
});

describe('kubectl against the local cluster', () => {
  it('prints a container log (kubectl logs)', async () => {
    const { stdout } = await kubectl('-n', ns, 'logs', 'server');
    expect(stdout).toMatch(/^starting pid \d+$/m);
  });

  it('runs a command in a container (kubectl exec)', async () => {
    const { stdout } = await kubectl(
      '-n',
      ns,
      'exec',
      'server',
      '--',
      'python3',
      '-c',
      'import os; print(os.environ["POD_NAME"])',
    );
    expect(stdout.trim()).toBe('server');
  });

  it('forwards a local port to a Pod (kubectl port-forward)', async () => {
    const child = spawn(
      'kubectl',
      ['--kubeconfig', kubeconfigPath, '-n', openNs, 'port-forward', 'pod/server', ':8080'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        child.on('exit', (code) => reject(new Error(`kubectl port-forward exited ${code}: ${out}`)));
      });
      expect(podName((await httpGet(`http://127.0.0.1:${port}/`)).body)).toBe('server');
    } finally {
      child.kill();
    }
  });

  it('runs a one-off Pod attached to stdin and removes it (kubectl run -i --rm)', async () => {
    const child = spawn(
      'kubectl',
      [
        '--kubeconfig',
        kubeconfigPath,
        '-n',
        openNs,
        'run',
        'once',
        '-i',
        '--rm',
        '--restart=Never',
        `--image=${EXEC_IMAGE}`,
        '--image-pull-policy=Never',
        '--command',
        '--',
        'python3',
        '-c',
        'import sys; print(sys.stdin.readline().strip()[::-1])',
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.write('local cluster\n');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect({
      code,
      stdout: stdout.split('\n').filter((l) => l && !l.startsWith('If you') && !l.endsWith('deleted')),
      stderr,
    }).toMatchObject({
      code: 0,
      stdout: ['retsulc lacol'],
    });
    expect(stdout).toMatch(/pod "once" deleted/);
    await eventually('Pod once gone', async () =>
      core.readNamespacedPod({ name: 'once', namespace: openNs }).then(
        () => false,
        () => true,
      ),
    );
  });
});
