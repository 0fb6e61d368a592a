// A policy's life as users meet it (#17): a gated Pod no policy protects (deleted policy, selector typo, no
// operator running) gets its gate opened with a reason and an Event; overlapping policies name the one that
// protects; edits apply from the next pull; a policy deleted and created again within the orphan retention
// still restores.
import type { V1PodSpec } from '@kubernetes/client-node';
import { GROUP, OPERATOR_NAMESPACE, PLURAL, READINESS_GATE, VERSION } from '../../src/api/index.js';
import { appDeployment } from '../../harness/deployment.js';
import { stats } from '../../harness/failover.js';
import { createFixtures, fixturePod } from '../../harness/fixture-app.js';
import { apps, core, createNamespace, eventually, httpGet, readyPods } from './cluster.js';
import { createPolicy, custom, installOperator, kubectl, leader, policy } from './operator.js';
import { COUNT_APP_IMAGE } from '../../harness/images.js';

const ns = 'it-lifecycle';
const COUNT_IMAGE = COUNT_APP_IMAGE;

const gatedPod = (): V1PodSpec => ({
  terminationGracePeriodSeconds: 5,
  readinessGates: [{ conditionType: READINESS_GATE }],
  containers: [
    {
      name: 'app',
      image: COUNT_IMAGE,
      ports: [{ containerPort: 8080 }],
      readinessProbe: { httpGet: { path: '/readyz', port: 8080 }, periodSeconds: 1 },
    },
  ],
});

async function deploy(name: string): Promise<void> {
  await apps.createNamespacedDeployment({ namespace: ns, body: appDeployment(name, ns, 1, gatedPod()) });
}

const spec = (app: string) => ({
  selector: { matchLabels: { app } },
  mode: 'http',
  intervalSeconds: 1,
  port: 8080,
});

async function deletePolicy(name: string): Promise<void> {
  await custom.deleteNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    name,
  });
}

/** The gate condition of the app's only Pod, once it is True. */
async function openedGate(app: string, timeoutMs = 60_000) {
  return eventually(
    `${app}: gate opened`,
    async () => {
      const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: `app=${app}` });
      const live = pods.items.filter((p) => !p.metadata?.deletionTimestamp);
      const gate = live[0]?.status?.conditions?.find((c) => c.type === READINESS_GATE);
      return live.length === 1 && gate?.status === 'True' ? { pod: live[0]!, gate } : undefined;
    },
    timeoutMs,
  );
}

async function warningsOn(pod: string): Promise<string[]> {
  const list = await core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${pod}` });
  return list.items.filter((e) => e.type === 'Warning').map((e) => `${e.reason}: ${e.message}`);
}

beforeAll(async () => {
  await installOperator();
  await createNamespace(ns);
});

describe('a gated Pod no policy protects', () => {
  it('is opened with reason NoPolicy and a Warning Event when its policy was deleted', async () => {
    await deploy('orphaned');
    await createPolicy(ns, 'orphaned', spec('orphaned'));
    const first = await openedGate('orphaned');
    expect(first.gate.reason).not.toBe('NoPolicy');
    await deletePolicy('orphaned');
    await core.deleteNamespacedPod({ name: first.pod.metadata!.name!, namespace: ns });
    const next = await eventually('the replacement', async () => {
      const o = await openedGate('orphaned');
      return o.pod.metadata!.uid !== first.pod.metadata!.uid ? o : undefined;
    });
    expect(next.gate.reason).toBe('NoPolicy');
    expect(next.gate.message).toContain('no PullStatePolicy in namespace it-lifecycle selects this Pod');
    // The kubelet turns the Pod Ready at its next status sync after the gate opened.
    await eventually(
      'the replacement Ready',
      async () => (await readyPods(ns, 'app=orphaned')).length === 1 || undefined,
      15_000,
    );
    expect((await warningsOn(next.pod.metadata!.name!)).some((e) => e.startsWith('NoPolicy:'))).toBe(true);
  });

  it('is opened when the selector has a typo, and protected once a policy selects it', async () => {
    await deploy('typo');
    await createPolicy(ns, 'typo', spec('typ0'));
    const { pod, gate } = await openedGate('typo');
    expect(gate.reason).toBe('NoPolicy');
    // Fixing the selector protects the running Pod from then on.
    await kubectl(
      'patch',
      'pullstatepolicy',
      'typo',
      '-n',
      ns,
      '--type',
      'merge',
      '-p',
      JSON.stringify({ spec: { selector: { matchLabels: { app: 'typo' } } } }),
    );
    await eventually('the Pod checkpointed', async () =>
      (await policy(ns, 'typo')).status?.checkpoints?.some((c) => c.podUID === pod.metadata!.uid),
    );
  });

  it('is opened once the operator runs again, after it was created while no controller ran', async () => {
    await kubectl('scale', '-n', OPERATOR_NAMESPACE, 'deployment/pull-state-controller', '--replicas=0');
    try {
      await eventually(
        'no controller',
        async () =>
          (await readyPods(OPERATOR_NAMESPACE, 'app.kubernetes.io/component=controller')).length === 0,
      );
      await deploy('nooperator');
      await eventually('the Pod running, not Ready', async () => {
        const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=nooperator' });
        return pods.items[0]?.status?.phase === 'Running';
      });
      await new Promise((r) => setTimeout(r, 3000));
      expect(await readyPods(ns, 'app=nooperator')).toHaveLength(0);
    } finally {
      await kubectl('scale', '-n', OPERATOR_NAMESPACE, 'deployment/pull-state-controller', '--replicas=2');
    }
    const { gate } = await openedGate('nooperator', 90_000);
    expect(gate.reason).toBe('NoPolicy');
  });
});

describe('two policies selecting the same Pod', () => {
  it('the older protects it; the other says so, also after a leader change', async () => {
    await deploy('shared');
    await createPolicy(ns, 'shared-old', spec('shared'));
    await new Promise((r) => setTimeout(r, 1100)); // creation timestamps are whole seconds
    await createPolicy(ns, 'shared-new', spec('shared'));
    const { pod } = await openedGate('shared');
    const check = async () => {
      await eventually('the older policy protects, the newer reports the conflict', async () => {
        const older = await policy(ns, 'shared-old');
        const newer = await policy(ns, 'shared-new');
        const degraded = newer.status?.conditions?.find((c) => c.type === 'Degraded');
        return (
          older.status?.protectedPods === 1 &&
          older.status.checkpoints?.some((c) => c.podUID === pod.metadata!.uid) &&
          newer.status?.protectedPods === 0 &&
          degraded?.reason === 'Conflict' &&
          degraded.message?.includes('1 selected Pod protected by the older policy shared-old')
        );
      });
    };
    await check();
    expect(await kubectl('get', 'psp', '-n', ns, 'shared-new')).toMatch(
      /shared-new\s+http\s+1\s+0\s+.*Conflict/,
    );
    const events = await core.listNamespacedEvent({
      namespace: ns,
      fieldSelector: 'involvedObject.name=shared-new',
    });
    expect(events.items.some((e) => e.reason === 'Conflict' && e.type === 'Warning')).toBe(true);
    const old = await eventually('a leader', () => leader());
    await core.deleteNamespacedPod({ name: old, namespace: OPERATOR_NAMESPACE, gracePeriodSeconds: 0 });
    await eventually(
      'a new leader',
      async () => {
        const now = await leader();
        return now && now !== old;
      },
      60_000,
    );
    await check();
  });
});

describe('a policy deleted and created again within the orphan retention', () => {
  it('still restores: its copies wait for it', async () => {
    await deploy('again');
    await createPolicy(ns, 'again', spec('again'));
    const { pod } = await openedGate('again');
    await eventually('a checkpoint', async () =>
      (await policy(ns, 'again')).status?.checkpoints?.some((c) => c.podUID === pod.metadata!.uid),
    );
    await deletePolicy('again');
    await new Promise((r) => setTimeout(r, 2000));
    await createPolicy(ns, 'again', spec('again'));
    await eventually('checkpointed again under the new policy', async () =>
      (await policy(ns, 'again')).status?.checkpoints?.some((c) => c.podUID === pod.metadata!.uid),
    );
    const before = (await stats(pod.status!.podIP!, 1000))!.count;
    await core.deleteNamespacedPod({ name: pod.metadata!.name!, namespace: ns });
    const after = await eventually(
      'the replacement restored',
      async () => {
        const [p] = await readyPods(ns, 'app=again');
        if (!p || p.metadata!.uid === pod.metadata!.uid) return undefined;
        const s = await stats(p.status!.podIP!, 1000);
        return s && s.restores === 1 ? s : undefined;
      },
      60_000,
    );
    expect(after.restoredCount).toBeGreaterThanOrEqual(before);
  });
});

describe('edits take effect without a restart', () => {
  it('interval, path, port, mode and selector: each applies from the next pull, as the app sees it', async () => {
    await createFixtures(core, ns);
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: appDeployment(
        'edits',
        ns,
        1,
        fixturePod('state-app.mjs', {
          env: [{ name: 'PORT2', value: '8081' }],
          readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1 },
          // The operator's fast-failover probes use the liveness target; the kubelet's own are rare.
          livenessProbe: { httpGet: { path: '/live', port: 8080 }, periodSeconds: 60 },
        }),
      ),
    });
    await createPolicy(ns, 'edits', {
      ...spec('edits'),
      mode: 'http-sf',
      failover: { periodMilliseconds: 500, failureThreshold: 3 },
    });
    const [pod] = await eventually('edits Ready', async () => {
      const p = await readyPods(ns, 'app=edits');
      return p.length === 1 ? p : undefined;
    });
    const ip = pod!.status!.podIP!;
    const hits = async () => (await httpGet(`http://${ip}:8080/hits`)).body;
    /** Requests per path during `ms`. */
    const during = async (ms: number) => {
      const a = JSON.parse(await hits()) as Record<string, number>;
      await new Promise((r) => setTimeout(r, ms));
      const b = JSON.parse(await hits()) as Record<string, number>;
      const d = (path: string) => (b[path] ?? 0) - (a[path] ?? 0);
      return {
        state: d(':8080/state'),
        snapshot: d(':8080/snapshot'),
        snapshot8081: d(':8081/snapshot'),
        live: d(':8080/live'),
      };
    };
    const edit = async (patch: Record<string, unknown>) => {
      await kubectl(
        'patch',
        'pullstatepolicy',
        'edits',
        '-n',
        ns,
        '--type',
        'merge',
        '-p',
        JSON.stringify({ spec: patch }),
      );
      await new Promise((r) => setTimeout(r, 3000)); // the next pull (at most 2 s) under the new spec
    };
    await eventually('pulled', async () => (await during(2000)).state > 0);
    // http-sf at 1 s: a pull a second, a probe every 500 ms.
    const base = await during(6000);
    expect(base.state).toBeGreaterThanOrEqual(4);
    expect(base.state).toBeLessThanOrEqual(8);
    expect(base.live).toBeGreaterThanOrEqual(8);
    await edit({ intervalSeconds: 3 });
    const slower = await during(9000);
    expect(slower.state).toBeGreaterThanOrEqual(2);
    expect(slower.state).toBeLessThanOrEqual(4);
    await edit({ path: '/snapshot' });
    const moved = await during(6000);
    expect(moved.state).toBe(0);
    expect(moved.snapshot).toBeGreaterThanOrEqual(1);
    await edit({ port: 8081 });
    const otherPort = await during(6000);
    expect(otherPort.snapshot).toBe(0);
    expect(otherPort.snapshot8081).toBeGreaterThanOrEqual(1);
    await edit({ mode: 'http' });
    const noProbes = await during(4000);
    expect(noProbes.live).toBeLessThanOrEqual(1); // at most the kubelet's own liveness probe
    expect(noProbes.snapshot8081).toBeGreaterThanOrEqual(1);
    await edit({ selector: { matchLabels: { app: 'nothing' } } });
    const released = await during(6000);
    expect(released.snapshot + released.state + released.snapshot8081).toBe(0);
    expect((await policy(ns, 'edits')).status?.protectedPods).toBe(0);
  });
});

describe('annotation mode', () => {
  it('follows the same rules: once the annotations are removed, the next gated Pod is opened (NoPolicy)', async () => {
    const d = appDeployment('annotated', ns, 1, gatedPod());
    d.metadata!.annotations = {
      'hitachienergy.com/ps_mode': 'http',
      'hitachienergy.com/ps_interval': '1',
      'hitachienergy.com/ps_port': '8080',
      'hitachienergy.com/ps_path': '/state',
    };
    await apps.createNamespacedDeployment({ namespace: ns, body: d });
    const first = await openedGate('annotated');
    expect(first.gate.reason).not.toBe('NoPolicy');
    const none = Object.fromEntries(Object.keys(d.metadata!.annotations).map((k) => [k, null]));
    await kubectl(
      'patch',
      'deployment',
      'annotated',
      '-n',
      ns,
      '--type=merge',
      '-p',
      JSON.stringify({ metadata: { annotations: none } }),
    );
    await eventually('managed policy deleted', async () =>
      policy(ns, 'annotated').then(
        () => false,
        () => true,
      ),
    );
    await core.deleteNamespacedPod({ name: first.pod.metadata!.name!, namespace: ns });
    const next = await eventually('the replacement opened', async () => {
      const o = await openedGate('annotated');
      return o.pod.metadata!.uid !== first.pod.metadata!.uid ? o : undefined;
    });
    expect(next.gate.reason).toBe('NoPolicy');
  });
});
