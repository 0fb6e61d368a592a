// Shared helpers for integration tests: clients for the local cluster and polling.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AppsV1Api, CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';

const run = promisify(execFile);

import { eventually } from '../../harness/poll.js';

export { eventually };

export function kubeConfig(path = '.local/kubeconfig'): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

export const kc = kubeConfig();
export const core = kc.makeApiClient(CoreV1Api);
export const apps = kc.makeApiClient(AppsV1Api);

export async function cluster(...args: string[]): Promise<string> {
  const { stdout } = await run('npx', ['tsx', 'tools/localcluster/src/cli.ts', ...args]);
  return stdout;
}

export async function createNamespace(name: string): Promise<void> {
  await core.deleteNamespace({ name }).catch(() => undefined);
  await eventually(`namespace ${name} gone`, async () =>
    core.readNamespace({ name }).then(
      () => false,
      () => true,
    ),
  );
  await core.createNamespace({ body: { metadata: { name } } });
  // ServiceAccount admission needs the namespace's default ServiceAccount, made by the controller manager.
  await eventually(`default ServiceAccount in ${name}`, () =>
    core.readNamespacedServiceAccount({ name: 'default', namespace: name }),
  );
}

export function isReady(pod: V1Pod): boolean {
  return (
    pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true &&
    !pod.metadata?.deletionTimestamp
  );
}

export async function readyPods(namespace: string, selector: string): Promise<V1Pod[]> {
  const list = await core.listNamespacedPod({ namespace, labelSelector: selector });
  return list.items.filter(isReady);
}

export async function httpGet(url: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, body: await res.text() };
}
