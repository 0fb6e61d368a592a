// Test apps that are plain scripts (test/fixtures/*.mjs) run as Pods of the local cluster's
// `localcluster/exec` image: the script comes in through a ConfigMap, the host's Node.js runs it.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { CoreV1Api, V1Container, V1PodSpec } from '@kubernetes/client-node';

/** Runs `command`/`args` verbatim with the host's /usr and /etc; a tag, so the kubelet never tries a pull. */
export const EXEC_IMAGE = 'localcluster/exec:1';
export const FIXTURES_CONFIGMAP = 'test-fixtures';
const FIXTURES_DIR = 'test/fixtures';
const MOUNT = '/fixtures';

/** Creates (or replaces) the ConfigMap holding every fixture script in `namespace`. */
export async function createFixtures(core: CoreV1Api, namespace: string): Promise<void> {
  const data: Record<string, string> = {};
  for (const f of readdirSync(FIXTURES_DIR)) data[f] = readFileSync(join(FIXTURES_DIR, f), 'utf8');
  await core.deleteNamespacedConfigMap({ name: FIXTURES_CONFIGMAP, namespace }).catch(() => undefined);
  await core.createNamespacedConfigMap({
    namespace,
    body: { metadata: { name: FIXTURES_CONFIGMAP, namespace }, data },
  });
}

/** A Pod spec running `node /fixtures/<script>` with the fixtures mounted; `container` adds to the container. */
export function fixturePod(
  script: string,
  container: Partial<V1Container> = {},
  pod: Partial<V1PodSpec> = {},
): V1PodSpec {
  return {
    terminationGracePeriodSeconds: 1,
    ...pod,
    containers: [
      {
        name: 'app',
        image: EXEC_IMAGE,
        command: ['node', `${MOUNT}/${script}`],
        ...container,
        volumeMounts: [
          { name: 'fixtures', mountPath: MOUNT, readOnly: true },
          ...(container.volumeMounts ?? []),
        ],
      },
    ],
    volumes: [{ name: 'fixtures', configMap: { name: FIXTURES_CONFIGMAP } }, ...(pod.volumes ?? [])],
  };
}
