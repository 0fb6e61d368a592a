// Helpers for tests that run the operator as installed by `kubectl apply -k .` on the local cluster.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CoordinationV1Api, CustomObjectsApi, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import {
  GROUP,
  helperAudience,
  OPERATOR_NAMESPACE,
  PLURAL,
  VERSION,
  type IPullStatePolicy,
} from '../../src/api/index.js';
import { helperFetch } from '../../harness/helper-https.js';
import { apps, core, eventually, kc, readyPods } from './cluster.js';
import { appDeployment } from '../../harness/deployment.js';
import { fixturePod } from '../../harness/fixture-app.js';
import { podLogs } from '../../tools/localcluster/src/cluster.js';
import { BRIDGE_IP } from '../../tools/localcluster/src/addressing.js';

const run = promisify(execFile);
export const custom = kc.makeApiClient(CustomObjectsApi);
export const coordination = kc.makeApiClient(CoordinationV1Api);

async function kubectlApply(object: object): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile(
      'kubectl',
      ['--kubeconfig', '.local/kubeconfig', 'apply', '-f', '-'],
      (err: Error | null) => (err ? reject(err) : resolve()),
    );
    child.stdin!.end(JSON.stringify(object));
  });
}

export async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await run('kubectl', ['--kubeconfig', '.local/kubeconfig', ...args]);
  return stdout;
}

/**
 * The install's NetworkPolicies admit only the operator's own Pods (and labelled scrapers) to the helper API
 * and the metrics ports, and the local cluster enforces them. The tests read helpers and metrics from the
 * host, which reaches Pods as the bridge address and is no Pod: this adds the host, and only the host
 * (policies add up; nothing the install allows or denies between Pods changes).
 */
const hostAccess = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'it-host-access', namespace: OPERATOR_NAMESPACE },
  spec: {
    podSelector: { matchLabels: { 'app.kubernetes.io/name': 'pull-state-operator' } },
    policyTypes: ['Ingress'],
    ingress: [{ from: [{ ipBlock: { cidr: `${BRIDGE_IP}/32` } }] }],
  },
};

/** Installs the operator with the real manifests and waits for 2 controllers and a helper on every node. */
export async function installOperator(): Promise<void> {
  await kubectl('apply', '--server-side', '--force-conflicts', '-k', '.');
  await kubectlApply(hostAccess);
  const nodes = (await core.listNode()).items.length;
  await eventually('helpers Ready on every node', async () => (await helperPods()).length === nodes, 90_000);
  await eventually('2 controllers Ready', async () => (await controllerPods()).length === 2, 90_000);
  await eventually('a leader', () => leader(), 60_000);
}

/**
 * Scales the controllers and waits: for 0 until no controller Pod is left at all (not even terminating),
 * else until that many are Ready and one of them leads.
 */
export async function scaleControllers(replicas: number): Promise<void> {
  await kubectl(
    'scale',
    '-n',
    OPERATOR_NAMESPACE,
    'deployment/pull-state-controller',
    `--replicas=${replicas}`,
  );
  if (replicas > 0) {
    await eventually(
      'a leader again',
      async () => ((await controllerPods()).length === replicas ? leader() : undefined),
      120_000,
    );
    return;
  }
  await eventually(
    'controller Pods gone',
    async () =>
      (
        await core.listNamespacedPod({
          namespace: OPERATOR_NAMESPACE,
          labelSelector: 'app.kubernetes.io/component=controller',
        })
      ).items.length === 0 || undefined,
    60_000,
  );
}

export const helperPods = () => readyPods(OPERATOR_NAMESPACE, 'app.kubernetes.io/component=helper');
export const controllerPods = () => readyPods(OPERATOR_NAMESPACE, 'app.kubernetes.io/component=controller');

export async function leader(): Promise<string | undefined> {
  const lease = await coordination.readNamespacedLease({
    name: 'pull-state-operator-leader',
    namespace: OPERATOR_NAMESPACE,
  });
  const holder = lease.spec?.holderIdentity;
  const renewed = lease.spec?.renewTime ? new Date(lease.spec.renewTime).getTime() : 0;
  return holder && Date.now() - renewed < 15_000 ? holder : undefined;
}

/**
 * What the leader logged about `mentioning` (its last `lines` such lines), for the message of a failed wait:
 * a controller Pod killed by a later test takes its logs with it.
 */
export async function leaderLog(mentioning: string, lines = 30): Promise<string> {
  const holder = await leader().catch(() => undefined);
  if (!holder) return '(no leader)';
  try {
    const text = podLogs(`${OPERATOR_NAMESPACE}/${holder}`);
    return text
      .split('\n')
      .filter((l) => l.includes(mentioning))
      .slice(-lines)
      .join('\n');
  } catch (err) {
    return `(no log: ${String(err)})`;
  }
}

/**
 * Every generation of a Pod's state on every helper (time, process id, the body's start) and the helpers' log
 * lines about it: what a failed restore assertion needs to tell a wrong copy from a wrong choice.
 */
export async function helperGenerations(pod: V1Pod): Promise<string> {
  const uid = pod.metadata!.uid!;
  const out: string[] = [];
  for (const h of await helperPods()) {
    const headers = { authorization: `Bearer ${await controllerHelperToken(h.spec!.nodeName!)}` };
    const base = `https://${h.status!.podIP}:9500/v1/blobs`;
    try {
      const inv = (await (await helperFetch(kc, `${base}?podUID=${uid}`, { headers })).json()) as {
        blobs: { sequence: number; pulledAt?: number; instance?: string }[];
      };
      for (const b of inv.blobs) {
        const body = await (
          await helperFetch(kc, `${base}/${pod.metadata!.namespace}/${uid}?sequence=${b.sequence}`, {
            headers,
          })
        ).text();
        const at = new Date(b.pulledAt ?? b.sequence).toISOString();
        out.push(
          `${h.spec!.nodeName} #${b.sequence} pulled ${at} instance ${b.instance ?? '-'}: ${body.slice(0, 200)}`,
        );
      }
      const log = podLogs(`${OPERATOR_NAMESPACE}/${h.metadata!.name}`)
        .split('\n')
        .filter((l) => l.includes(pod.metadata!.name!) || l.includes(uid))
        .slice(-20);
      if (log.length > 0) out.push(`${h.spec!.nodeName} helper log:`, ...log);
    } catch (err) {
      out.push(`${h.spec!.nodeName}: ${String(err)}`);
    }
  }
  return out.join('\n');
}

export async function policy(namespace: string, name: string): Promise<IPullStatePolicy> {
  return (await custom.getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural: PLURAL,
    name,
  })) as IPullStatePolicy;
}

export async function createPolicy(
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
): Promise<void> {
  await custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural: PLURAL,
    body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'PullStatePolicy', metadata: { name, namespace }, spec },
  });
}

/**
 * The state-app fixture (it answers as the test tells it, see test/fixtures/state-app.mjs) as Deployment
 * `name` with label app=<name>. Needs the fixtures ConfigMap of the namespace (createFixtures).
 */
export function stateAppDeployment(namespace: string, name: string, replicas: number): V1Deployment {
  return appDeployment(
    name,
    namespace,
    replicas,
    fixturePod('state-app.mjs', {
      readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1 },
    }),
  );
}

/** The state app protected by a policy of the same name: mode http, every second, plus `spec`. */
export async function protectedStateApp(
  namespace: string,
  name: string,
  replicas: number,
  spec: Record<string, unknown> = {},
): Promise<void> {
  await apps.createNamespacedDeployment({ namespace, body: stateAppDeployment(namespace, name, replicas) });
  await createPolicy(namespace, name, {
    selector: { matchLabels: { app: name } },
    mode: 'http',
    intervalSeconds: 1,
    timeoutSeconds: 1,
    port: 8080,
    ...spec,
  });
}

export function condition(p: IPullStatePolicy, type: string) {
  return p.status?.conditions?.find((c) => c.type === type);
}

/** Waits until the helper DaemonSet's rollout (after a restart or a change of its Pod spec) is done. */
export async function helperRolloutDone(timeout = '180s'): Promise<void> {
  await kubectl(
    'rollout',
    'status',
    '-n',
    OPERATOR_NAMESPACE,
    'daemonset/pull-state-helper',
    `--timeout=${timeout}`,
  );
}

/** A token of the controller's ServiceAccount for the helpers' audience: what the controller calls them with. */
/** A token of the controller's identity for the helper on `node` (what the controller sends it). */
export async function controllerHelperToken(node: string): Promise<string> {
  const t = await core.createNamespacedServiceAccountToken({
    name: 'pull-state-controller',
    namespace: OPERATOR_NAMESPACE,
    body: { spec: { audiences: [helperAudience(node)], expirationSeconds: 600 } },
  });
  return t.status!.token;
}

export async function helperUrlOn(node: string): Promise<string> {
  const pod = (await helperPods()).find((p: V1Pod) => p.spec?.nodeName === node);
  if (!pod) throw new Error(`no Ready helper on ${node}`);
  return `https://${pod.status!.podIP}:9500`;
}

export async function warningEvents(namespace: string, name: string): Promise<string[]> {
  const list = await core.listNamespacedEvent({
    namespace,
    fieldSelector: `involvedObject.name=${name},type=Warning`,
  });
  return list.items.map((e) => `${e.reason}: ${e.message}`);
}

/**
 * Waits for the one Ready Pod `selector` selects in `namespace` and a checkpoint of it in `policyName`'s status,
 * then a little more: a trial starts from a Pod whose state is being kept.
 */
export async function checkpointedPod(
  namespace: string,
  selector: string,
  policyName: string,
  readyTimeoutMs = 90_000,
): Promise<void> {
  const [pod] = await eventually(
    `${selector} Ready`,
    async () => {
      const p = await readyPods(namespace, selector);
      return p.length === 1 ? p : undefined;
    },
    readyTimeoutMs,
  );
  await eventually('a checkpoint of the Pod', async () =>
    (await policy(namespace, policyName)).status?.checkpoints?.some(
      (c) => c.podUID === pod!.metadata!.uid && !c.orphaned,
    ),
  );
  await new Promise((r) => setTimeout(r, 1500));
}
