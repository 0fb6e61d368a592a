// A Pod on the host network has its node's address: the policy's port there may be the kubelet's or another
// tenant's. Such a Pod is a pull or restore target only when its policy says allowHostNetwork; until then
// it stays unprotected, says why, and still becomes Ready (its gate is opened).
import type { V1Pod } from '@kubernetes/client-node';
import { apps, core, createNamespace, eventually, isReady } from './cluster.js';
import { condition, createPolicy, installOperator, kubectl, policy, warningEvents } from './operator.js';
import { appDeployment } from '../../harness/deployment.js';
import { READINESS_GATE } from '../../src/api/index.js';
import { COUNT_APP_IMAGE } from '../../harness/images.js';

const ns = 'it-hostnet';
const image = COUNT_APP_IMAGE;
/** Unused by the node's own components (kubelet 10250, kube-proxy 10249/10256, the policy agent 9080). */
const PORT = 18080;

beforeAll(async () => {
  await installOperator();
  await createNamespace(ns);
  await apps.createNamespacedDeployment({
    namespace: ns,
    body: appDeployment('hostapp', ns, 1, {
      hostNetwork: true,
      terminationGracePeriodSeconds: 5,
      readinessGates: [{ conditionType: READINESS_GATE }],
      containers: [
        {
          name: 'app',
          image,
          env: [{ name: 'PORT', value: String(PORT) }],
          ports: [{ name: 'http', containerPort: PORT }],
          readinessProbe: { httpGet: { path: '/readyz', port: PORT }, periodSeconds: 1 },
        },
      ],
    }),
  });
  await createPolicy(ns, 'hostapp', {
    selector: { matchLabels: { app: 'hostapp' } },
    mode: 'http',
    intervalSeconds: 1,
    port: PORT,
  });
});

describe('a hostNetwork Pod', () => {
  it('is refused (Event, condition, gate opened, no checkpoint) until its policy allows it', async () => {
    const pod = await eventually(
      'the hostNetwork Pod Ready with its gate opened by the operator',
      async () => {
        const list = await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=hostapp' });
        return list.items.find((p: V1Pod) => isReady(p) && !p.metadata?.deletionTimestamp);
      },
      120_000,
    );
    // Its address is its node's: that is what makes it a host-network Pod.
    expect(pod.status?.podIP).toBe(pod.status?.hostIP);
    const gate = pod.status?.conditions?.find((c) => c.type === READINESS_GATE);
    expect(gate).toMatchObject({ status: 'True', reason: 'HostNetworkRefused' });
    const events = await eventually('a HostNetworkRefused Event', async () => {
      const all = await warningEvents(ns, pod.metadata!.name!);
      return all.some((e) => e.startsWith('HostNetworkRefused:')) ? all : undefined;
    });
    expect(events.join('\n')).toMatch(/allowHostNetwork: true/);
    const refused = await eventually('the policy says why it protects nothing', async () => {
      const p = await policy(ns, 'hostapp');
      return condition(p, 'Degraded')?.reason === 'HostNetworkRefused' ? p : undefined;
    });
    expect(condition(refused, 'Degraded')?.message).toContain(pod.metadata!.name!);
    expect(refused.status?.protectedPods ?? 0).toBe(0);
    // A few intervals later still nothing was pulled from the node's port.
    await new Promise((r) => setTimeout(r, 3000));
    expect((await policy(ns, 'hostapp')).status?.checkpoints ?? []).toEqual([]);

    await kubectl(
      '-n',
      ns,
      'patch',
      'pullstatepolicy',
      'hostapp',
      '--type',
      'merge',
      '-p',
      '{"spec":{"allowHostNetwork":true}}',
    );
    const allowed = await eventually(
      'a checkpoint of the hostNetwork Pod once the policy allows it',
      async () => {
        const p = await policy(ns, 'hostapp');
        return (p.status?.checkpoints ?? []).some((c) => c.pod === pod.metadata!.name) ? p : undefined;
      },
      60_000,
    );
    expect(allowed.status?.protectedPods).toBe(1);
    expect(condition(allowed, 'Degraded')?.reason).not.toBe('HostNetworkRefused');
  });
});
