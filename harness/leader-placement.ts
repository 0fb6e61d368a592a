// Puts a Deployment's one Pod on the node the controller leader runs on, so that a partition of that node
// takes both: the case where a standby must take over before anything can be restored. Shared by the bench
// (its leader-partition fault) and the failover integration test.
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1Pod,
} from '@kubernetes/client-node';
import { setHeaderOptions, PatchStrategy } from '@kubernetes/client-node';
import { OPERATOR_NAMESPACE } from '../src/api/index.js';
import { eventually } from './poll.js';

const LEASE = 'pull-state-operator-leader';

const isReady = (p: V1Pod) =>
  !p.metadata?.deletionTimestamp &&
  (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

/**
 * Moves the Deployment's one Pod beside the controller leader (a preferred node affinity, so its replacement
 * may go anywhere once that node is fenced), and returns the node. A leader on a node apps do not run on
 * (the control plane's NoSchedule taint) is deleted until a standby on a worker leads.
 */
export async function placeBesideLeader(
  kc: KubeConfig,
  namespace: string,
  deployment: string,
  selector: string,
  log: (line: string) => void = () => undefined,
): Promise<string> {
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const leases = kc.makeApiClient(CoordinationV1Api);
  const holder = async () =>
    (await leases.readNamespacedLease({ name: LEASE, namespace: OPERATOR_NAMESPACE })).spec?.holderIdentity ??
    '';
  for (let attempt = 1; ; attempt++) {
    if (attempt > 10)
      throw new Error(`could not place ${deployment} beside the controller leader in 10 tries`);
    const leader = await eventually(
      'a controller leader and a standby, both Ready',
      async () => {
        const ready = (await core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE })).items.filter(
          (p) => isReady(p) && p.metadata?.labels?.['app.kubernetes.io/component'] === 'controller',
        );
        const h = await holder();
        return ready.length === 2 ? ready.find((p) => p.metadata!.name === h) : undefined;
      },
      // A leader that lost its Lease exits and comes back as a standby; after several losses in a row the
      // kubelet's restart back-off (up to 5 min) holds it.
      360_000,
    );
    const node = leader.spec!.nodeName!;
    const tainted = ((await core.readNode({ name: node })).spec?.taints ?? []).some(
      (t) => t.effect === 'NoSchedule' || t.effect === 'NoExecute',
    );
    if (tainted) {
      const name = leader.metadata!.name!;
      log(`leader ${name} is on ${node}, where apps cannot run: deleting it`);
      await core.deleteNamespacedPod({ name, namespace: OPERATOR_NAMESPACE });
      await eventually('another leader', async () => {
        const h = await holder();
        return h !== '' && h !== name;
      });
      continue;
    }
    const pods = async () => (await core.listNamespacedPod({ namespace, labelSelector: selector })).items;
    const [only, ...more] = await pods();
    if (only && more.length === 0 && isReady(only) && only.spec?.nodeName === node) return node;
    const affinity = {
      nodeAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          {
            weight: 100,
            preference: {
              matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [node] }],
            },
          },
        ],
      },
    };
    await apps.patchNamespacedDeployment(
      { name: deployment, namespace, body: { spec: { template: { spec: { affinity } } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    // The patch rolls the Pod out unless the affinity named this node already (a replacement went
    // elsewhere): then the Pod is deleted, and its replacement prefers the node too.
    await new Promise((r) => setTimeout(r, 1000));
    for (const p of await pods())
      if (!p.metadata?.deletionTimestamp && p.spec?.nodeName !== node && isReady(p))
        await core.deleteNamespacedPod({ name: p.metadata!.name!, namespace });
    await eventually(
      `${deployment} Ready on ${node}`,
      async () => {
        const [p, ...rest] = await pods();
        return p && rest.length === 0 && isReady(p) && p.spec?.nodeName === node;
      },
      180_000,
    );
  }
}
