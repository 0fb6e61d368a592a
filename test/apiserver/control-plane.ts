// The API-server tier's control plane: etcd and kube-apiserver only, on 127.0.0.1, with the project's CRDs.
// Run by the tier's global setup and teardown (`tsx test/apiserver/control-plane.ts up|down`), in a process of
// its own, as the integration tier runs the cluster's CLI.
import { mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ApiextensionsV1Api, KubeConfig, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { binaryPath, ensureBinaries } from '../../tools/localcluster/src/build.js';
import { startControlPlane, stopControlPlane } from '../../tools/localcluster/src/controlplane.js';
import { repoRoot } from '../../tools/localcluster/src/paths.js';
import { eventually } from '../../harness/poll.js';
import { TIER_DIR, KUBECONFIG } from './paths.js';

const crdDir = join(repoRoot, 'crds');

async function applyCrds(kc: KubeConfig): Promise<void> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  const crds = readdirSync(crdDir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => parse(readFileSync(join(crdDir, f), 'utf8')) as V1CustomResourceDefinition);
  await Promise.all(crds.map((body) => api.createCustomResourceDefinition({ body })));
  await Promise.all(
    crds.map((crd) =>
      eventually(
        `CRD ${crd.metadata!.name} Established`,
        async () => {
          const c = await api.readCustomResourceDefinition({ name: crd.metadata!.name! });
          return c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True');
        },
        30_000,
        100,
      ),
    ),
  );
}

async function up(): Promise<void> {
  const started = Date.now();
  // Waits for a build another process is doing (`npm test` builds in the background); at once when cached.
  await ensureBinaries();
  // Whatever a crashed run left.
  await stopControlPlane(TIER_DIR);
  rmSync(TIER_DIR, { recursive: true, force: true });
  // Run through links of our own: the local cluster's `down` kills whatever runs from the cache.
  const bin = join(TIER_DIR, 'bin');
  mkdirSync(bin, { recursive: true });
  for (const c of ['etcd', 'kube-apiserver'] as const) symlinkSync(binaryPath(c), join(bin, c));
  await startControlPlane({
    dir: TIER_DIR,
    address: '127.0.0.1',
    nodeMonitorGracePeriodSeconds: 40,
    tolerationSeconds: 300,
    log: (line) => console.log(line.replace('localcluster:', 'apiserver tier:')),
    components: 'apiserver',
    binDir: bin,
  });
  const kc = new KubeConfig();
  kc.loadFromFile(KUBECONFIG);
  await applyCrds(kc);
  console.log(`apiserver tier: up in ${((Date.now() - started) / 1000).toFixed(1)}s (${KUBECONFIG})`);
}

async function down(): Promise<void> {
  await stopControlPlane(TIER_DIR);
  // KEEP_APISERVER_TIER=1 keeps the logs (kube-apiserver.log, etcd.log) for a failed run.
  if (process.env.KEEP_APISERVER_TIER !== '1') rmSync(TIER_DIR, { recursive: true, force: true });
}

const command = process.argv[2];
(command === 'up' ? up() : command === 'down' ? down() : Promise.reject(new Error('usage: up|down'))).catch(
  (err: unknown) => {
    console.error(`apiserver tier: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
