// Races of the controller's building blocks, each against the real API server: an informer whose first list
// fails must not call itself synced, and fencing a node must not drop a taint written in between.
import {
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import { FENCE_TAINT } from '../../src/api/index.js';
import { Informer } from '../../src/controller/kube/informer.js';
import { setFence } from '../../src/controller/failover/node-fence.js';
import { createLogger } from '../../src/runtime/logger.js';
import { core, createNamespace, eventually, kc } from './cluster.js';

const ns = 'it-races';
const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const log = createLogger('test', 'error');

/** A client that authenticates as a fresh ServiceAccount of `ns`, with no rights yet. */
async function serviceAccountClient(name: string): Promise<KubeConfig> {
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name, namespace: ns } } });
  const token = await core.createNamespacedServiceAccountToken({
    name,
    namespace: ns,
    body: { spec: { audiences: [], expirationSeconds: 600 } },
  });
  const cluster = kc.getCurrentCluster()!;
  const sa = new KubeConfig();
  sa.loadFromOptions({
    clusters: [cluster],
    users: [{ name, token: token.status!.token }],
    contexts: [{ name, cluster: cluster.name, user: name }],
    currentContext: name,
  });
  return sa;
}

beforeAll(async () => {
  await createNamespace(ns);
});

describe('informer', () => {
  it('is not synced while its first list fails, and syncs with the real contents once it succeeds', async () => {
    const saKc = await serviceAccountClient('lister');
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'present-before-sync', namespace: ns }, data: { a: '1' } },
    });
    const saCore = saKc.makeApiClient(CoreV1Api);
    const informer = new Informer<V1ConfigMap>({
      name: 'configmaps',
      kc: saKc,
      path: `/api/v1/namespaces/${ns}/configmaps`,
      list: () => saCore.listNamespacedConfigMap({ namespace: ns }),
      log,
    });
    let synced = false;
    const started = informer.start().then(() => (synced = true));
    try {
      // The list is forbidden (403): an informer that called this synced would hand out an empty cache.
      await new Promise((r) => setTimeout(r, 3000));
      expect(synced).toBe(false);
      await rbac.createNamespacedRole({
        namespace: ns,
        body: {
          metadata: { name: 'lister', namespace: ns },
          rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['list', 'watch'] }],
        },
      });
      await rbac.createNamespacedRoleBinding({
        namespace: ns,
        body: {
          metadata: { name: 'lister', namespace: ns },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'lister' },
          subjects: [{ kind: 'ServiceAccount', name: 'lister', namespace: ns }],
        },
      });
      await eventually('the informer synced after its retries', async () => synced, 60_000);
      await started;
      expect(informer.list(ns).map((c) => c.metadata?.name)).toContain('present-before-sync');
    } finally {
      await informer.stop();
    }
  });
});

describe('node fence', () => {
  const node = 'worker-1';
  const other = { key: 'example.com/written-in-between', effect: 'NoSchedule' };

  async function taintKeys(): Promise<string[]> {
    return ((await core.readNode({ name: node })).spec?.taints ?? []).map((t) => t.key);
  }

  async function removeTestTaints(): Promise<void> {
    const n = await core.readNode({ name: node });
    const taints = (n.spec?.taints ?? []).filter((t) => t.key !== other.key && t.key !== FENCE_TAINT);
    await core.patchNode({ name: node, body: { spec: { taints } } }, merge);
  }

  it('keeps a taint another controller adds between its read and its write', async () => {
    let writes = 0;
    try {
      await setFence(core, node, true, async () => {
        // The node lifecycle controller (here: the test) adds a taint after the fence was computed.
        const n = await core.readNode({ name: node });
        if ((n.spec?.taints ?? []).some((t) => t.key === other.key)) return;
        writes++;
        await core.patchNode(
          { name: node, body: { spec: { taints: [...(n.spec?.taints ?? []), other] } } },
          merge,
        );
      });
      expect(writes).toBe(1);
      expect(await taintKeys()).toEqual(expect.arrayContaining([FENCE_TAINT, other.key]));
      await setFence(core, node, false);
      const after = await taintKeys();
      expect(after).toContain(other.key);
      expect(after).not.toContain(FENCE_TAINT);
    } finally {
      await removeTestTaints();
    }
  });
});
