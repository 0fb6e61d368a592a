// The local cluster as the scenarios use it: its clients, the bench namespace, and the apps and policies
// they create there.
import { execFileSync } from 'node:child_process';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type V1Deployment,
} from '@kubernetes/client-node';
import { GROUP, OPERATOR_NAMESPACE, PLURAL, READINESS_GATE, VERSION } from '../src/api/index.js';
import { appDeployment } from '../harness/deployment.js';
import { eventually } from '../harness/poll.js';

/** What every scenario is given. */
export interface BenchContext {
  core: CoreV1Api;
  apps: AppsV1Api;
  custom: CustomObjectsApi;
  kubeconfig: KubeConfig;
  log: (m: string) => void;
}

export const NS = 'bench';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const kubectl = (...args: string[]) =>
  execFileSync('kubectl', ['--kubeconfig', '.local/kubeconfig', ...args], { encoding: 'utf8' });

export const until = <T>(what: string, f: () => Promise<T | undefined | false>, ms = 120_000) =>
  eventually(what, f, ms);

/**
 * Starts the local cluster if needed, installs the operator and waits for its Pods, and gives the scenarios
 * an empty bench namespace. The clients are made only then, once the cluster (and its kubeconfig) is up.
 */
export async function startCluster(log: (m: string) => void): Promise<BenchContext> {
  log('starting the local cluster and installing the operator');
  execFileSync('npx', ['tsx', 'tools/localcluster/src/cli.ts', 'up'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const kc = new KubeConfig();
  kc.loadFromFile('.local/kubeconfig');
  const ctx: BenchContext = {
    kubeconfig: kc,
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    log,
  };
  kubectl('apply', '--server-side', '--force-conflicts', '-k', '.');
  await until(
    'operator Ready',
    async () =>
      kubectl('get', 'pods', '-n', OPERATOR_NAMESPACE, '--no-headers')
        .split('\n')
        .filter((l) => / 1\/1 /.test(l)).length >= 5,
  );
  await fresh(ctx);
  return ctx;
}

async function fresh({ core }: BenchContext): Promise<void> {
  await core.deleteNamespace({ name: NS }).catch(() => undefined);
  await until('old bench namespace gone', async () =>
    core.readNamespace({ name: NS }).then(
      () => false,
      () => true,
    ),
  );
  await core.createNamespace({ body: { metadata: { name: NS } } });
  await until('default ServiceAccount', () =>
    core.readNamespacedServiceAccount({ name: 'default', namespace: NS }),
  );
}

export function deployment(
  name: string,
  opts: { image: string; command?: string[]; gate: boolean; replicas?: number; env?: Record<string, string> },
): V1Deployment {
  return appDeployment(name, NS, opts.replicas ?? 1, {
    terminationGracePeriodSeconds: 10,
    ...(opts.gate ? { readinessGates: [{ conditionType: READINESS_GATE }] } : {}),
    containers: [
      {
        name: 'app',
        image: opts.image,
        ...(opts.command ? { command: opts.command } : {}),
        env: Object.entries(opts.env ?? {}).map(([name, value]) => ({ name, value })),
        readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1 },
      },
    ],
  });
}

/** A PullStatePolicy for the app labelled `app: <name>`. */
export async function policy(
  { custom }: BenchContext,
  name: string,
  spec: Record<string, unknown>,
): Promise<void> {
  await custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: NS,
    plural: PLURAL,
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'PullStatePolicy',
      metadata: { name },
      spec: { selector: { matchLabels: { app: name } }, ...spec },
    },
  });
}
