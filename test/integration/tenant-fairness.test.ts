// Two tenants on the same helpers (#28): a hog whose states are larger than its namespace's share of each
// helper's disk, pulled every second from three Pods, plus six apps that drip their answers (a byte a
// second) on the victim's node, and a victim with a small app. The hog gets a clear condition and Event and
// nothing of it is stored; the drips hold only their namespace's pull slots; the victim is checkpointed at
// its interval all along; no helper restarts and each stays within its memory bound (its own RSS metric).
// The helpers run with 4 pull slots, 2 per namespace: six drips would hold all four without the share (with 4
// per namespace the victim got 16 checkpoints in 31 s, and this test failed).
import { createFixtures, fixturePod } from '../../harness/fixture-app.js';
import { appDeployment } from '../../harness/deployment.js';
import { OPERATOR_NAMESPACE, REASONS } from '../../src/api/index.js';
import { apps, core, createNamespace, eventually } from './cluster.js';
import {
  condition,
  createPolicy,
  helperPods,
  helperRolloutDone,
  installOperator,
  kubectl,
  policy,
  warningEvents,
} from './operator.js';

const MiB = 1024 * 1024;
/** Each namespace's share of a helper's disk in this test (the default is half of --quota-bytes, 8 GiB). */
const SHARE = 16 * MiB;
const HOG_STATE = 24 * MiB;
/** The helper's memory bound: cache (256 MiB by default) + 32 uploads of 1 MiB + Node.js itself. */
const RSS_BOUND = 450 * MiB;

const HELPER_ENV = {
  HELPER_NAMESPACE_QUOTA_BYTES: String(SHARE),
  HELPER_PULL_CONCURRENCY: '4',
  HELPER_PULL_CONCURRENCY_PER_NAMESPACE: '2',
};

async function setHelperEnv(...assignments: string[]): Promise<void> {
  await kubectl('set', 'env', '-n', OPERATOR_NAMESPACE, 'daemonset/pull-state-helper', ...assignments);
  await helperRolloutDone();
}

async function helperMetrics(): Promise<{ pod: string; text: string }[]> {
  return Promise.all(
    (await helperPods()).map(async (p) => ({
      pod: p.metadata!.name!,
      text: await (await fetch(`http://${p.status!.podIP}:9501/metrics`)).text(),
    })),
  );
}

const sample = (text: string, re: RegExp) => [...text.matchAll(re)].reduce((sum, m) => sum + Number(m[1]), 0);

async function stateApp(
  ns: string,
  name: string,
  replicas: number,
  env: Record<string, string>,
  o: { node?: string; intervalSeconds?: number } = {},
) {
  await apps.createNamespacedDeployment({
    namespace: ns,
    body: appDeployment(
      name,
      ns,
      replicas,
      fixturePod(
        'state-app.mjs',
        {
          env: Object.entries(env).map(([n, value]) => ({ name: n, value })),
          readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1 },
        },
        o.node ? { nodeSelector: { 'kubernetes.io/hostname': o.node } } : {},
      ),
    ),
  });
  await createPolicy(ns, name, {
    selector: { matchLabels: { app: name } },
    mode: 'http',
    // The CRD wants timeoutSeconds <= intervalSeconds.
    intervalSeconds: o.intervalSeconds ?? 1,
    timeoutSeconds: o.intervalSeconds ?? 1,
    port: 8080,
    maxStateBytes: 64 * MiB,
    copies: 2,
  });
}

beforeAll(async () => {
  await installOperator();
  await setHelperEnv(...Object.entries(HELPER_ENV).map(([k, v]) => `${k}=${v}`));
  for (const ns of ['it-hog', 'it-victim']) {
    await createNamespace(ns);
    await createFixtures(core, ns);
  }
}, 300_000);

afterAll(async () => {
  for (const ns of ['it-hog', 'it-victim']) await core.deleteNamespace({ name: ns }).catch(() => undefined);
  await setHelperEnv(...Object.keys(HELPER_ENV).map((k) => `${k}-`));
}, 300_000);

it('a hog beyond its share gets StorageFull; the victim keeps its interval; helpers stay within their memory bound', async () => {
  const restartsBefore = new Map(
    (await helperPods()).map((p) => [p.metadata!.name!, p.status?.containerStatuses?.[0]?.restartCount ?? 0]),
  );
  const workers = (await core.listNode()).items
    .map((n) => n.metadata!)
    .filter((m) => m.labels?.['node-role.kubernetes.io/control-plane'] === undefined)
    .map((m) => m.name!);
  const node = workers[0]!;
  await stateApp('it-victim', 'victim', 1, { STATE_BYTES: '1024' }, { node });
  await eventually('a first checkpoint of the victim', async () => {
    const p = await policy('it-victim', 'victim');
    return (p.status?.checkpoints?.length ?? 0) > 0;
  });
  await stateApp('it-hog', 'hog', 3, { STATE_BYTES: String(HOG_STATE) }, { intervalSeconds: 5 });
  // 60 bytes at a byte a second: every pull of them holds its slot until its 20 s timeout, every 20 s.
  await stateApp('it-hog', 'drip', 6, { STATE_BYTES: '60', DRIP_MS: '1000' }, { node, intervalSeconds: 20 });

  // The hog's policy says why nothing of it is stored, and so do Events.
  const degraded = await eventually(
    'the hog Degraded with StorageFull',
    async () => {
      const c = condition(await policy('it-hog', 'hog'), 'Degraded');
      return c?.reason === REASONS.storageFull ? c : undefined;
    },
    120_000,
  );
  expect(degraded.status).toBe('True');
  expect(degraded.message).toMatch(/namespace it-hog has used its share of this helper's storage/);
  expect((await warningEvents('it-hog', 'hog')).join('\n')).toMatch(/StorageFull/);

  // While the hog keeps trying (backed off), the victim is checkpointed every second or so.
  const victimPulls = async () =>
    sample(
      (await helperMetrics()).map((m) => m.text).join('\n'),
      /^pullstate_helper_pulls_total\{namespace="it-victim",result="Succeeded"\} (\d+)/gm,
    );
  let maxRss = 0;
  const before = await victimPulls();
  const started = Date.now();
  while (Date.now() - started < 30_000) {
    for (const m of await helperMetrics())
      maxRss = Math.max(maxRss, sample(m.text, /^process_resident_memory_bytes (\d+)/gm));
    await new Promise((r) => setTimeout(r, 2000));
  }
  const pulled = (await victimPulls()) - before;
  const seconds = (Date.now() - started) / 1000;
  const metrics = (await helperMetrics()).map((m) => m.text).join('\n');
  const hogStored = sample(metrics, /^pullstate_helper_namespace_stored_bytes\{namespace="it-hog"\} (\d+)/gm);
  const hogRefused = sample(
    metrics,
    /^pullstate_helper_uploads_refused_total\{namespace="it-hog",reason="NamespaceShareExceeded"\} (\d+)/gm,
  );
  console.log(
    `victim: ${pulled} checkpoints in ${seconds.toFixed(0)} s at a 1 s interval beside 6 drips on ${node}; hog: ${hogRefused} copies refused, ` +
      `${hogStored} bytes stored; largest helper RSS ${(maxRss / MiB).toFixed(0)} MiB (bound ${RSS_BOUND / MiB} MiB)`,
  );
  expect(pulled).toBeGreaterThanOrEqual(seconds * 0.75);
  expect(hogRefused).toBeGreaterThan(0);
  expect(hogStored).toBe(0);
  expect(maxRss).toBeGreaterThan(0);
  expect(maxRss).toBeLessThan(RSS_BOUND);
  for (const p of await helperPods()) {
    const s = p.status?.containerStatuses?.[0];
    expect({ pod: p.metadata!.name, restarts: s?.restartCount ?? 0 }).toEqual({
      pod: p.metadata!.name,
      restarts: restartsBefore.get(p.metadata!.name!) ?? 0,
    });
  }
}, 300_000);
